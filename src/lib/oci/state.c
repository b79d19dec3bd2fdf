/* Per-container records of the runtime: <root>/<id>/state.json, written atomically. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "internal.h"
#include "container.h"
#include "state.h"

unsigned long long ks_proc_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0')
        return 0;
    p += 2;
    char state = *p;
    if (state == 'Z' || state == 'X')
        return 0;
    unsigned long long start = 0;
    int field = 3;
    for (char *s = p; *s; s++) {
        if (*s == ' ') {
            field++;
            if (field == 22) {
                start = strtoull(s + 1, NULL, 10);
                break;
            }
        }
    }
    return start;
}

bool ks_container_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 1024 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
        return false;
    for (const char *c = id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '+' || *c == '-' || *c == '.'))
            return false;
    return true;
}

void ks_state_free(struct ks_state *s)
{
    if (s == NULL)
        return;
    if (s->raw)
        json_object_put(s->raw);
    free(s->dir);
    free(s);
}

int ks_state_load(const char *root, const char *id, struct ks_state **ret, struct ks_error **err)
{
    if (!ks_container_id_valid(id))
        return ks_error_msg(err, "invalid container id `%s`", id);
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/%s", root, id) < 0)
        return ks_error_set(err, ENOMEM, "state");
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/state.json", dir) < 0)
        return ks_error_set(err, ENOMEM, "state");
    json_object *o = NULL;
    struct stat st;
    if (stat(dir, &st) < 0)
        return ks_error_set_plain(err, ENOENT, "container `%s` does not exist", id);
    int r = ks_json_parse_file(path, &o, err);
    if (r < 0) {
        if (errno == ENOENT || r == -ENOENT) {
            ks_error_free(err ? *err : NULL);
            if (err)
                *err = NULL;
            return ks_error_set_plain(err, ENOENT, "container `%s` does not exist", id);
        }
        return r;
    }
    struct ks_state *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        json_object_put(o);
        return ks_error_set(err, ENOMEM, "state");
    }
    s->raw = o;
    s->dir = TAKE_PTR(dir);
    s->id = ks_json_str(o, "id");
    s->bundle = ks_json_str(o, "bundle");
    s->rootfs = ks_json_str(o, "rootfs");
    s->created = ks_json_str(o, "created");
    s->cgroup_path = ks_json_str(o, "cgroupPath");
    s->pid = (pid_t)ks_json_int(o, "pid", 0);
    s->pid_start = (unsigned long long)ks_json_int(o, "pidStart", 0);
    s->config = ks_json_get(o, "config");
    *ret = s;
    return 0;
}

int ks_state_save(int dirfd, json_object *o, struct ks_error **err)
{
    const char *s = ks_json_plain(o);
    return ks_write_file_replace(dirfd, "state.json", s, strlen(s), 0600, err);
}

enum ks_status ks_state_status(const struct ks_state *s, bool *ret_frozen_checked)
{
    (void)ret_frozen_checked;
    if (s->pid <= 0)
        return KS_STATUS_STOPPED;
    unsigned long long st = ks_proc_start_time(s->pid);
    if (st == 0 || st != s->pid_start)
        return KS_STATUS_STOPPED;
    char fifo[4096];
    snprintf(fifo, sizeof(fifo), "%s/exec.fifo", s->dir);
    if (access(fifo, F_OK) == 0)
        return KS_STATUS_CREATED;
    return KS_STATUS_RUNNING;
}

const char *ks_status_name(enum ks_status st)
{
    static const char *const names[] = {
        [KS_STATUS_CREATING] = "creating", [KS_STATUS_CREATED] = "created",
        [KS_STATUS_RUNNING] = "running",   [KS_STATUS_STOPPED] = "stopped",
        [KS_STATUS_PAUSED] = "paused",
    };
    return names[st];
}
