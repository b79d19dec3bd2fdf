/* Docker's `inspect` document of a container, from its record, its config and its run-time
 * state. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../volume/volume.h"
#include "../net/net.h"
#include "container.h"

static void rfc3339_ns(int64_t ns, char *buf, size_t len)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%09lldZ", base, (long long)(ns % 1000000000));
}

static json_object *state_json(const struct ks_container_state *st)
{
    json_object *s = json_object_new_object();
    enum ks_container_status x = st->status;
    json_object_object_add(s, "Status", json_object_new_string(ks_engine_status_name(x)));
    json_object_object_add(
        s, "Running",
        json_object_new_boolean(x == KS_CONTAINER_RUNNING || x == KS_CONTAINER_PAUSED));
    json_object_object_add(s, "Paused", json_object_new_boolean(x == KS_CONTAINER_PAUSED));
    json_object_object_add(s, "Restarting", json_object_new_boolean(x == KS_CONTAINER_RESTARTING));
    json_object_object_add(s, "OOMKilled", json_object_new_boolean(st->oom_killed));
    json_object_object_add(s, "Dead", json_object_new_boolean(x == KS_CONTAINER_DEAD));
    json_object_object_add(s, "Pid", json_object_new_int64(st->pid));
    json_object_object_add(s, "ExitCode", json_object_new_int64(st->exit_code));
    json_object_object_add(s, "Error", json_object_new_string(st->error));
    json_object_object_add(s, "StartedAt", json_object_new_string(st->started_at));
    json_object_object_add(s, "FinishedAt", json_object_new_string(st->finished_at));
    if (st->health)
        json_object_object_add(s, "Health", json_object_get(st->health));
    return s;
}

/* Path and Args: the entrypoint and command as one list, split at its head. */
static void path_args(json_object *out, json_object *c)
{
    json_object *args = json_object_new_array();
    const char *path = "";
    bool first = true;
    for (const char *const *k = (const char *const[]){"Entrypoint", "Cmd", NULL}; *k; k++) {
        json_object *a = ks_json_get_type(c, *k, json_type_array);
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
            json_object *v = json_object_array_get_idx(a, i);
            if (first)
                path = json_object_get_string(v);
            else
                json_object_array_add(args, json_object_get(v));
            first = false;
        }
    }
    json_object_object_add(out, "Path", json_object_new_string(path ? path : ""));
    json_object_object_add(out, "Args", args);
}

static json_object *graph_driver(struct ks_engine *e, const char *snap)
{
    json_object *g = json_object_new_object();
    json_object *d = json_object_new_object();
    json_object_object_add(g, "Name", json_object_new_string("overlay2"));
    json_object_object_add(g, "Data", d);
    if (snap == NULL)
        return g;
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s/overlay/%s/lower", e->root, snap);
    _cleanup_free_ char *lower = NULL;
    if (ks_read_file(buf, &lower, NULL, NULL) >= 0) {
        /* "l/A:l/B" relative to the store, as absolute paths. */
        char *out = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&out, &n);
        if (f) {
            bool first = true;
            for (char *save = NULL, *p = lower, *tok; (tok = strtok_r(p, ":\n", &save)); p = NULL) {
                fprintf(f, "%s%s/overlay/%s", first ? "" : ":", e->root, tok);
                first = false;
            }
            fclose(f);
            json_object_object_add(d, "LowerDir", json_object_new_string(out));
            free(out);
        }
    }
    static const char *const parts[][2] = {
        {"MergedDir", "merged"}, {"UpperDir", "diff"}, {"WorkDir", "work"}};
    for (size_t i = 0; i < KS_ELEMENTSOF(parts); i++) {
        snprintf(buf, sizeof(buf), "%s/overlay/%s/%s", e->root, snap, parts[i][1]);
        json_object_object_add(d, parts[i][0], json_object_new_string(buf));
    }
    return g;
}

int ks_engine_inspect_json(struct ks_engine *e, const struct ks_db_container *c,
                           json_object *config, json_object **ret, struct ks_error **err)
{
    struct ks_container_state st;
    int r = ks_engine_state_get(e, c->id, &st, err);
    if (r < 0)
        return r;
    _cleanup_json_ json_object *o = json_object_new_object();
    if (o == NULL) {
        ks_engine_state_clear(&st);
        return ks_error_set(err, ENOMEM, "inspect");
    }
    char created[64];
    rfc3339_ns(c->created, created, sizeof(created));
    json_object *cfg = ks_json_get(config, "Config");
    json_object_object_add(o, "Id", json_object_new_string(c->id));
    json_object_object_add(o, "Created", json_object_new_string(created));
    path_args(o, cfg);
    json_object_object_add(o, "State", state_json(&st));
    json_object_object_add(o, "Image", json_object_new_string(c->image_id));
    json_object_object_add(o, "ResolvConfPath", json_object_new_string(""));
    json_object_object_add(o, "HostnamePath", json_object_new_string(""));
    json_object_object_add(o, "HostsPath", json_object_new_string(""));
    const char *type =
        ks_json_str(ks_json_get(ks_json_get(config, "HostConfig"), "LogConfig"), "Type");
    _cleanup_free_ char *log =
        type && strcmp(type, "none") == 0 ? strdup("") : ks_container_log_path(e, c->id);
    json_object_object_add(o, "LogPath", json_object_new_string(log ? log : ""));
    char name[300];
    snprintf(name, sizeof(name), "/%s", c->name);
    json_object_object_add(o, "Name", json_object_new_string(name));
    json_object_object_add(o, "RestartCount", json_object_new_int64(st.restart_count));
    json_object_object_add(o, "Driver", json_object_new_string("overlay2"));
    json_object_object_add(o, "Platform", json_object_new_string("linux"));
    json_object_object_add(o, "MountLabel", json_object_new_string(""));
    json_object_object_add(o, "ProcessLabel", json_object_new_string(""));
    json_object_object_add(o, "AppArmorProfile", json_object_new_string(""));
    json_object_object_add(o, "ExecIDs", NULL);
    json_object_object_add(o, "HostConfig", json_object_get(ks_json_get(config, "HostConfig")));
    json_object_object_add(o, "GraphDriver", graph_driver(e, c->snapshot));
    json_object_object_add(o, "Mounts", ks_engine_volumes_inspect(config));
    json_object_object_add(o, "Config", json_object_get(cfg));
    json_object *ns = NULL;
    bool live = st.status == KS_CONTAINER_RUNNING || st.status == KS_CONTAINER_PAUSED;
    if (ks_net_settings_json(e, c->id, config, live, &ns, NULL) < 0)
        ns = json_object_new_object();
    json_object_object_add(o, "NetworkSettings", ns);
    ks_engine_state_clear(&st);
    *ret = TAKE_PTR(o);
    return 0;
}

int64_t ks_engine_container_size(struct ks_engine *e, const struct ks_db_container *c)
{
    if (c->snapshot == NULL)
        return 0;
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/overlay/%s/diff", e->root, c->snapshot) < 0)
        return 0;
    _cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? 0 : ks_dir_size(fd);
}
