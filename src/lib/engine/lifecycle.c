/* Container lifecycle apart from start: the engine's paths, create, lookup, the run-time state
 * read from the monitor's state.json, kill, stop, wait, pause, rename and remove. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/fs.h"
#include "../base/hash.h"
#include "../base/json.h"
#include "../base/log.h"
#include "../image/snapshot.h"
#include "../image/store.h"
#include "../net/net.h"
#include "../oci/container.h"
#include "../volume/volume.h"
#include "container.h"

#define NAME_RETRIES   10
#define POLL_MS        20
#define KILL_WAIT_MS   30000
#define ZERO_TIME      "0001-01-01T00:00:00Z"
#define STATE_MAX_SIZE ((size_t)1 << 20)

int ks_engine_open(const char *root, const char *runroot, struct ks_engine **ret,
                   struct ks_error **err)
{
    _cleanup_(ks_engine_free_p) struct ks_engine *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return ks_error_set(err, ENOMEM, "open engine");
    int r = ks_store_open(root, &e->store, err);
    if (r < 0)
        return r;
    e->root = strdup(ks_store_root(e->store));
    e->runroot = strdup(runroot && *runroot ? runroot : KS_ENGINE_DEFAULT_RUNROOT);
    if (e->root == NULL || e->runroot == NULL ||
        asprintf(&e->runtime_root, "%s/runtime", e->runroot) < 0)
        return ks_error_set(err, ENOMEM, "open engine");
    r = ks_mkdir_p(e->runtime_root, 0700, err);
    if (r < 0)
        return ks_error_wrap(err, "create run root");
    *ret = TAKE_PTR(e);
    return 0;
}

void ks_engine_free(struct ks_engine *e)
{
    if (e == NULL)
        return;
    ks_store_free(e->store);
    free(e->root);
    free(e->runroot);
    free(e->runtime_root);
    free(e);
}

static bool executable(const char *path)
{
    return access(path, X_OK) == 0;
}

int ks_engine_find_binary(const char *name, const char *env, char **ret, struct ks_error **err)
{
    const char *v = env ? getenv(env) : NULL;
    if (v && *v) {
        *ret = strdup(v);
        return *ret ? 0 : ks_error_set(err, ENOMEM, "find %s", name);
    }
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        const char *sub = strcmp(name, "kiste-monitor") == 0   ? "monitor"
                          : strcmp(name, "kiste-runtime") == 0 ? "runtime"
                          : strcmp(name, "kiste-init") == 0    ? "init"
                                                               : NULL;
        char *cand = NULL;
        if (asprintf(&cand, "%s/%s", self, name) >= 0 && executable(cand)) {
            *ret = cand;
            return 0;
        }
        free(cand);
        cand = NULL;
        if (sub && asprintf(&cand, "%s/../%s/%s", self, sub, name) >= 0 && executable(cand)) {
            *ret = cand;
            return 0;
        }
        free(cand);
    }
    const char *path = getenv("PATH");
    _cleanup_free_ char *copy = strdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
    for (char *save = NULL, *p = copy, *dir; copy && (dir = strtok_r(p, ":", &save)); p = NULL) {
        char *cand = NULL;
        if (asprintf(&cand, "%s/%s", dir, name) >= 0 && executable(cand)) {
            *ret = cand;
            return 0;
        }
        free(cand);
    }
    return ks_error_set_plain(err, ENOENT, "cannot find `%s` (set %s)", name, env ? env : "PATH");
}

char *ks_container_dir(struct ks_engine *e, const char *id)
{
    char *p = NULL;
    return asprintf(&p, "%s/containers/%s", e->root, id) < 0 ? NULL : p;
}

char *ks_container_run_dir(struct ks_engine *e, const char *id)
{
    char *p = NULL;
    return asprintf(&p, "%s/containers/%s", e->runroot, id) < 0 ? NULL : p;
}

char *ks_container_log_path(struct ks_engine *e, const char *id)
{
    char *p = NULL;
    return asprintf(&p, "%s/containers/%s/%s-json.log", e->root, id, id) < 0 ? NULL : p;
}

static char *overlay_dir(struct ks_engine *e)
{
    char *p = NULL;
    return asprintf(&p, "%s/overlay", e->root) < 0 ? NULL : p;
}

static int lock_container(struct ks_engine *e, const char *id, int op, struct ks_error **err)
{
    _cleanup_free_ char *dir = ks_container_dir(e, id), *path = NULL;
    if (dir == NULL || asprintf(&path, "%s/lock", dir) < 0)
        return ks_error_set(err, ENOMEM, "lock container");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ks_error_set(err, errno, "lock container `%s`", id);
    while (flock(fd, op) < 0) {
        if (errno != EINTR) {
            int en = errno;
            close(fd);
            return ks_error_set(err, en, "lock container `%s`", id);
        }
    }
    return fd;
}

int ks_engine_lock(struct ks_engine *e, const char *id, struct ks_error **err)
{
    return lock_container(e, id, LOCK_EX, err);
}

int ks_engine_trylock(struct ks_engine *e, const char *id, struct ks_error **err)
{
    return lock_container(e, id, LOCK_EX | LOCK_NB, err);
}

/* --- create --- */

static int new_id(char out[65], struct ks_error **err)
{
    unsigned char buf[32];
    if (getrandom(buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
        return ks_error_set(err, errno ? errno : EIO, "getrandom");
    ks_hex(buf, sizeof(buf), out);
    /* Docker avoids IDs that read as numbers in their short form, which a user could take
     * for a count. */
    bool digits = true;
    for (int i = 0; i < 12 && digits; i++)
        digits = out[i] >= '0' && out[i] <= '9';
    if (digits)
        out[0] = 'a';
    return 0;
}

/* The image's config JSON (NULL when none) and top layer's directory name (NULL without
 * layers). */
static int image_parts(struct ks_engine *e, const char *image_id, json_object **ret_config,
                       char **ret_top, struct ks_error **err)
{
    struct ks_db *db = ks_store_db(e->store);
    _cleanup_db_image_ struct ks_db_image *img = NULL;
    int r = ks_db_image_get(db, image_id, &img, err);
    if (r < 0)
        return r;
    *ret_config = NULL;
    *ret_top = NULL;
    if (img->config) {
        r = ks_json_parse(img->config, strlen(img->config), ret_config, err);
        if (r < 0)
            return ks_error_wrap(err, "image config");
    }
    if (img->n_layers > 0) {
        _cleanup_db_layer_ struct ks_db_layer *l = NULL;
        r = ks_db_layer_get(db, KS_DB_LAYER_BY_CHAIN_ID, img->chain_ids[img->n_layers - 1], &l,
                            err);
        if (r < 0)
            return r;
        *ret_top = TAKE_PTR(l->cache_id);
    }
    return 0;
}

static bool has_command(json_object *config)
{
    json_object *c = ks_json_get(config, "Config");
    json_object *ep = ks_json_get_type(c, "Entrypoint", json_type_array);
    json_object *cmd = ks_json_get_type(c, "Cmd", json_type_array);
    return (ep && json_object_array_length(ep) > 0) || (cmd && json_object_array_length(cmd) > 0);
}

static int record(struct ks_engine *e, struct ks_db_container *c, const char *name,
                  struct ks_error **err)
{
    struct ks_db *db = ks_store_db(e->store);
    if (name) {
        c->name = strdup(name[0] == '/' ? name + 1 : name);
        if (c->name == NULL)
            return ks_error_set(err, ENOMEM, "create container");
        return ks_db_container_put(db, c, err);
    }
    for (unsigned i = 0;; i++) {
        free(c->name);
        c->name = ks_container_name_generate(i);
        if (c->name == NULL)
            return ks_error_set(err, ENOMEM, "create container");
        struct ks_error *e2 = NULL;
        int r = ks_db_container_put(db, c, &e2);
        if (r != -EEXIST || i + 1 >= NAME_RETRIES) {
            if (r < 0) {
                *err = e2;
                return r;
            }
            return 0;
        }
        ks_error_free(e2);
    }
}

int ks_engine_create(struct ks_engine *e, const struct ks_container_create_opts *o, char **ret_id,
                     struct ks_error **err)
{
    if (o->name && !ks_container_name_valid(o->name))
        return ks_error_msg(err,
                            "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                            "allowed",
                            o->name);
    _cleanup_free_ char *image_id = NULL, *top = NULL, *overlay = overlay_dir(e);
    int r = ks_store_lookup(e->store, o->image, &image_id, err);
    if (r < 0)
        return r;
    _cleanup_json_ json_object *image_config = NULL;
    r = image_parts(e, image_id, &image_config, &top, err);
    if (r < 0)
        return r;
    char id[65];
    r = new_id(id, err);
    if (r < 0)
        return r;
    r = ks_container_config_merge(o->config, image_config, id, o->image, err);
    if (r < 0)
        return r;
    if (!has_command(o->config))
        return ks_error_msg(err, "No command specified");
    /* Held until the container is recorded: no volume it uses can be removed meanwhile. */
    _cleanup_close_ int volumes_lock = -EBADF;
    r = ks_engine_volumes_resolve(e, o->config, &volumes_lock, err);
    if (r < 0)
        return r;

    struct ks_db_container c = {
        .id = id,
        .image_id = image_id,
        .image_ref = (char *)o->image,
        .config = (char *)ks_json_plain(o->config),
    };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c.created = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    _cleanup_free_ char *snap = NULL, *dir = ks_container_dir(e, id);
    if (overlay == NULL || dir == NULL)
        return ks_error_set(err, ENOMEM, "create container");
    /* Held until the container is recorded: the store's collector removes layer directories
     * that nothing records, and the snapshot is one until then. */
    _cleanup_close_ int store_lock = ks_store_lock(e->store, LOCK_SH, err);
    if (store_lock < 0)
        return store_lock;
    r = ks_snapshot_container_create(overlay, top, &snap, err);
    if (r < 0)
        return ks_error_wrap(err, "create container");
    c.snapshot = snap;
    r = ks_mkdir_p(dir, 0700, err);
    if (r >= 0)
        r = record(e, &c, o->name, err);
    free(c.name);
    if (r < 0) {
        ks_snapshot_container_remove(overlay, snap, NULL);
        ks_rm_rf_at(AT_FDCWD, dir, NULL);
        close(TAKE_FD(volumes_lock));
        ks_engine_volumes_remove_anonymous(e, c.config, NULL);
        return r;
    }
    *ret_id = strdup(id);
    return *ret_id ? 0 : ks_error_set(err, ENOMEM, "create container");
}

int ks_engine_lookup(struct ks_engine *e, const char *name_or_id, struct ks_db_container **ret,
                     json_object **ret_config, struct ks_error **err)
{
    struct ks_db *db = ks_store_db(e->store);
    _cleanup_free_ char *id = NULL;
    int r = ks_db_container_find(db, name_or_id, &id, err);
    if (r < 0)
        return r;
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    r = ks_db_container_get(db, id, &c, err);
    if (r < 0)
        return r;
    if (ret_config) {
        r = ks_json_parse(c->config, strlen(c->config), ret_config, err);
        if (r < 0)
            return ks_error_wrap(err, "container %s: config", c->id);
    }
    *ret = TAKE_PTR(c);
    return 0;
}

/* --- state --- */

const char *ks_engine_status_name(enum ks_container_status s)
{
    static const char *const names[] = {
        [KS_CONTAINER_CREATED] = "created", [KS_CONTAINER_RUNNING] = "running",
        [KS_CONTAINER_PAUSED] = "paused",   [KS_CONTAINER_RESTARTING] = "restarting",
        [KS_CONTAINER_EXITED] = "exited",   [KS_CONTAINER_DEAD] = "dead",
    };
    return (size_t)s < KS_ELEMENTSOF(names) ? names[s] : "unknown";
}

void ks_engine_state_clear(struct ks_container_state *s)
{
    if (s->health)
        json_object_put(s->health);
    s->health = NULL;
}

bool ks_engine_monitor_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    /* One read of /proc/PID/stat: its "(comm)" is /proc/PID/comm (both cut at 15 bytes), and
     * ps looks at every running container's monitor. */
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, stat, sizeof(stat) - 1);
    close(fd);
    if (n <= 0)
        return false;
    stat[n] = '\0';
    const char *comm = strchr(stat, '(');
    const char *end = strrchr(stat, ')');
    if (comm == NULL || end == NULL || end - comm - 1 < 13 ||
        strncmp(comm + 1, "kiste-monitor", 13))
        return false;
    return end[1] == ' ' && end[2] != 'Z' && end[2] != 'X';
}

static enum ks_container_status status_from(const char *s)
{
    if (s && strcmp(s, "running") == 0)
        return KS_CONTAINER_RUNNING;
    if (s && strcmp(s, "restarting") == 0)
        return KS_CONTAINER_RESTARTING;
    if (s && strcmp(s, "exited") == 0)
        return KS_CONTAINER_EXITED;
    if (s && strcmp(s, "created") == 0)
        return KS_CONTAINER_CREATED;
    return KS_CONTAINER_DEAD;
}

/* U/containers/<id>/paused exists whenever the container may be frozen: it is made before the
 * runtime freezes the container and removed only after the runtime thaws it. Without it a running
 * container is not paused, and its state needs no look at the runtime's cgroup, which reads
 * /proc/self/mountinfo (long with a thousand containers) each time. NULL on ENOMEM. */
static char *paused_marker(struct ks_engine *e, const char *id)
{
    _cleanup_free_ char *run = ks_container_run_dir(e, id);
    char *path = NULL;
    if (run == NULL || asprintf(&path, "%s/paused", run) < 0)
        return NULL;
    return path;
}

static bool runtime_paused(struct ks_engine *e, const char *id)
{
    _cleanup_free_ char *marker = paused_marker(e, id);
    if (marker && access(marker, F_OK) < 0 && errno == ENOENT)
        return false;
    _cleanup_json_ json_object *st = NULL;
    if (ks_container_state(e->runtime_root, id, &st, NULL) < 0)
        return false;
    const char *s = ks_json_str(st, "status");
    return s && strcmp(s, "paused") == 0;
}

/* A reader of state.json as the monitor writes it: one object of scalars, strings without
 * escapes, Health null. Returns 0 with ret filled exactly as the general path would, or -1
 * (ret partly filled) for anything else, which the caller then parses with json-c. ps reads a
 * thousand of these, and json-c allocates a hash table and a tokener for each. */
static const char *flat_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A string without escapes starting at the opening quote: its bounds, or NULL. */
static const char *flat_string(const char *p, const char *end, const char **ret, size_t *ret_len)
{
    if (p >= end || *p != '"')
        return NULL;
    const char *s = ++p;
    while (p < end && *p != '"') {
        if (*p == '\\' || (unsigned char)*p < 0x20)
            return NULL;
        p++;
    }
    if (p >= end)
        return NULL;
    *ret = s;
    *ret_len = (size_t)(p - s);
    return p + 1;
}

enum flat_kind { FLAT_OTHER, FLAT_STRING, FLAT_INT, FLAT_BOOL, FLAT_HEALTH };

/* What state.json's key k must hold, and where it goes in s (NULL for Health and others). */
static enum flat_kind flat_field(struct ks_container_state *s, const char *k, size_t kl,
                                 void **ret_dst, size_t *ret_size)
{
    static const struct {
        const char *key;
        enum flat_kind kind;
        size_t offset, size;
    } fields[] = {
#define F(k, kind, m)                                                                              \
    {k, kind, offsetof(struct ks_container_state, m), sizeof(((struct ks_container_state *)0)->m)}
        F("Status", FLAT_STRING, status), /* decoded by the caller */
        F("Pid", FLAT_INT, pid),
        F("MonitorPid", FLAT_INT, monitor_pid),
        F("ExitCode", FLAT_INT, exit_code),
        F("RestartCount", FLAT_INT, restart_count),
        F("OOMKilled", FLAT_BOOL, oom_killed),
        F("StartedAt", FLAT_STRING, started_at),
        F("FinishedAt", FLAT_STRING, finished_at),
        F("Error", FLAT_STRING, error),
        F("Health", FLAT_HEALTH, health),
#undef F
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(fields); i++) {
        if (strlen(fields[i].key) == kl && memcmp(fields[i].key, k, kl) == 0) {
            *ret_dst = (char *)s + fields[i].offset;
            *ret_size = fields[i].size;
            return fields[i].kind;
        }
    }
    *ret_dst = NULL;
    *ret_size = 0;
    return FLAT_OTHER;
}

/* A JSON integer of at most 18 digits at p (no fraction, no exponent); NULL otherwise. */
static const char *flat_int(const char *p, const char *end, int64_t *ret)
{
    const char *n = p;
    if (p < end && *p == '-')
        p++;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    if (p == digits || p - digits > 18 || (p < end && (*p == '.' || *p == 'e' || *p == 'E')))
        return NULL;
    char num[24];
    snprintf(num, sizeof(num), "%.*s", (int)(p - n), n);
    *ret = strtoll(num, NULL, 10);
    return p;
}

static bool flat_word(const char **p, const char *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - *p) < n || memcmp(*p, word, n) != 0)
        return false;
    *p += n;
    return true;
}

static int state_parse_flat(const char *buf, size_t len, struct ks_container_state *ret)
{
    const char *end = buf + len, *p = flat_ws(buf, end);
    /* A missing Status reads as the general path's status_from(NULL). */
    ret->status = KS_CONTAINER_DEAD;
    if (p >= end || *p++ != '{')
        return -1;
    for (;;) {
        const char *k, *v;
        size_t kl, vl, size;
        void *dst;
        p = flat_string(flat_ws(p, end), end, &k, &kl);
        if (p == NULL || (p = flat_ws(p, end)) >= end || *p++ != ':')
            return -1;
        p = flat_ws(p, end);
        enum flat_kind kind = flat_field(ret, k, kl, &dst, &size);
        int64_t x;
        if (p < end && *p == '"') {
            if ((p = flat_string(p, end, &v, &vl)) == NULL || vl > 4096)
                return -1;
            if (kind != FLAT_STRING && kind != FLAT_OTHER)
                return -1;
            if (dst == &ret->status) {
                char status[16];
                snprintf(status, sizeof(status), "%.*s", (int)vl, v);
                ret->status = vl < sizeof(status) ? status_from(status) : KS_CONTAINER_DEAD;
            } else if (dst) {
                snprintf(dst, size, "%.*s", (int)vl, v);
            }
        } else if (p < end && (*p == '-' || (*p >= '0' && *p <= '9'))) {
            if ((p = flat_int(p, end, &x)) == NULL || (kind != FLAT_INT && kind != FLAT_OTHER))
                return -1;
            if (dst == &ret->restart_count)
                ret->restart_count = x;
            else if (dst == &ret->pid || dst == &ret->monitor_pid)
                *(pid_t *)dst = (pid_t)x;
            else if (dst == &ret->exit_code)
                ret->exit_code = (int)x;
        } else if (flat_word(&p, end, "true") || flat_word(&p, end, "false")) {
            if (kind != FLAT_BOOL && kind != FLAT_OTHER)
                return -1;
            if (kind == FLAT_BOOL)
                ret->oom_killed = p[-1] == 'e' && p[-4] == 't';
        } else if (flat_word(&p, end, "null")) {
            /* Only Health may be null: for the others json-c's path has its own defaults. */
            if (kind != FLAT_HEALTH && kind != FLAT_OTHER)
                return -1;
        } else {
            return -1;
        }
        p = flat_ws(p, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p >= end || *p++ != '}')
            return -1;
        return flat_ws(p, end) == end ? 0 : -1;
    }
}

/* The general reader of state.json; -1 (ret marked dead) when it is unreadable. */
static int state_parse_json(const char *buf, size_t len, struct ks_container_state *ret)
{
    _cleanup_json_ json_object *st = NULL;
    if (len > STATE_MAX_SIZE || ks_json_parse(buf, len, &st, NULL) < 0) {
        /* A half-written file cannot happen (rename); a garbled one is reported as dead. */
        ret->status = KS_CONTAINER_DEAD;
        snprintf(ret->error, sizeof(ret->error), "unreadable state.json");
        return -1;
    }
    ret->status = status_from(ks_json_str(st, "Status"));
    ret->pid = (pid_t)ks_json_int(st, "Pid", 0);
    ret->monitor_pid = (pid_t)ks_json_int(st, "MonitorPid", 0);
    ret->exit_code = (int)ks_json_int(st, "ExitCode", 0);
    ret->restart_count = ks_json_int(st, "RestartCount", 0);
    ret->oom_killed = ks_json_bool(st, "OOMKilled", false);
    const char *s;
    if ((s = ks_json_str(st, "StartedAt")))
        snprintf(ret->started_at, sizeof(ret->started_at), "%s", s);
    if ((s = ks_json_str(st, "FinishedAt")))
        snprintf(ret->finished_at, sizeof(ret->finished_at), "%s", s);
    if ((s = ks_json_str(st, "Error")))
        snprintf(ret->error, sizeof(ret->error), "%s", s);
    json_object *h = ks_json_get_type(st, "Health", json_type_object);
    ret->health = h ? json_object_get(h) : NULL;
    return 0;
}

static int state_read(struct ks_engine *e, const char *id, struct ks_container_state *ret,
                      struct ks_error **err)
{
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->started_at, sizeof(ret->started_at), ZERO_TIME);
    snprintf(ret->finished_at, sizeof(ret->finished_at), ZERO_TIME);
    _cleanup_free_ char *dir = ks_container_dir(e, id);
    if (dir == NULL)
        return ks_error_set(err, ENOMEM, "container state");
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/state.json", dir) < 0)
        return ks_error_set(err, ENOMEM, "container state");
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    struct ks_error *e2 = NULL;
    int r = ks_read_file(path, &buf, &len, &e2);
    if (r == -ENOENT) {
        ks_error_free(e2);
        ret->status = KS_CONTAINER_CREATED;
        return 0;
    }
    if (r < 0) {
        *err = e2;
        return r;
    }
    struct ks_container_state flat = *ret;
    if (len <= STATE_MAX_SIZE && state_parse_flat(buf, len, &flat) == 0)
        *ret = flat;
    else if (state_parse_json(buf, len, ret) < 0)
        return 0;
    bool active = ret->status == KS_CONTAINER_RUNNING || ret->status == KS_CONTAINER_RESTARTING;
    if (active && !ks_engine_monitor_alive(ret->monitor_pid)) {
        ret->status = KS_CONTAINER_EXITED;
        ret->pid = 0;
        if (ret->exit_code == 0)
            ret->exit_code = 255;
        snprintf(ret->error, sizeof(ret->error), "monitor died");
        ret->monitor_died = true;
    } else if (ret->status == KS_CONTAINER_RUNNING && runtime_paused(e, id)) {
        ret->status = KS_CONTAINER_PAUSED;
    }
    if (ret->status != KS_CONTAINER_RUNNING && ret->status != KS_CONTAINER_PAUSED)
        ret->pid = 0;
    return 0;
}

int ks_engine_state_get(struct ks_engine *e, const char *id, struct ks_container_state *ret,
                        struct ks_error **err)
{
    int r = state_read(e, id, ret, err);
    if (r < 0 || !ret->monitor_died)
        return r;
    /* What the dead monitor left (the container's processes, its runtime state, the mounted
     * root file system) is cleaned up by whoever sees it first. A start or remove holding the
     * lock repairs on its own, and a reader never waits for one. */
    _cleanup_close_ int lock = ks_engine_trylock(e, id, NULL);
    if (lock < 0)
        return 0;
    struct ks_container_state now;
    if (state_read(e, id, &now, NULL) < 0)
        return 0;
    if (now.monitor_died)
        ks_engine_repair(e, id, &now, NULL);
    ks_engine_state_clear(&now);
    return 0;
}

bool ks_engine_status_active(enum ks_container_status s)
{
    return s == KS_CONTAINER_RUNNING || s == KS_CONTAINER_PAUSED || s == KS_CONTAINER_RESTARTING;
}

/* --- signals, stop, wait --- */

static int mark_stopping(struct ks_engine *e, const char *id, struct ks_error **err)
{
    _cleanup_free_ char *run = ks_container_run_dir(e, id);
    _cleanup_free_ char *marker = NULL;
    if (run == NULL || asprintf(&marker, "%s/stopping", run) < 0)
        return ks_error_set(err, ENOMEM, "stop");
    int r = ks_mkdir_p(run, 0700, err);
    if (r < 0)
        return r;
    int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ks_error_set(err, errno, "create `%s`", marker);
    close(fd);
    return 0;
}

int ks_engine_kill(struct ks_engine *e, const char *id, int sig, bool stopping,
                   struct ks_error **err)
{
    struct ks_container_state st;
    int r = ks_engine_state_get(e, id, &st, err);
    if (r < 0)
        return r;
    ks_engine_state_clear(&st);
    if (!ks_engine_status_active(st.status))
        return ks_error_set_plain(err, EINVAL, "Container %s is not running", id);
    if (stopping) {
        r = mark_stopping(e, id, err);
        if (r < 0)
            return r;
    }
    if (st.status == KS_CONTAINER_RESTARTING)
        return 0; /* nothing to signal: the marker keeps the monitor from restarting it */
    r = ks_container_kill(e->runtime_root, id, sig, false, err);
    if (r < 0)
        return ks_error_wrap(err, "Cannot kill container %s", id);
    /* A frozen task only acts on the signal once thawed. */
    if (st.status == KS_CONTAINER_PAUSED && (sig == SIGKILL || stopping))
        ks_container_pause(e->runtime_root, id, false, NULL);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ks_engine_wait(struct ks_engine *e, const char *id, int timeout_ms, struct ks_error **err)
{
    int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : INT64_MAX;
    for (;;) {
        struct ks_container_state st;
        int r = ks_engine_state_get(e, id, &st, err);
        if (r < 0)
            return r;
        ks_engine_state_clear(&st);
        if (st.status != KS_CONTAINER_RUNNING && st.status != KS_CONTAINER_PAUSED)
            return st.exit_code;
        if (now_ms() >= deadline)
            return ks_error_set_plain(err, ETIMEDOUT, "container %s did not exit", id);
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static int stop_signal(json_object *config)
{
    int sig = SIGTERM;
    const char *s = ks_json_str(ks_json_get(config, "Config"), "StopSignal");
    if (s && *s && ks_signal_parse(s, &sig) < 0)
        sig = SIGTERM;
    return sig;
}

/* Stops a container with sig, SIGKILL after timeout seconds, until the monitor reports it
 * exited. The stopping marker comes first, so that a container the monitor is about to restart
 * (or has just restarted) is not restarted again; the state is read anew on every round because
 * it may change between any two steps. */
static int stop_with(struct ks_engine *e, const char *id, int sig, int timeout,
                     struct ks_error **err)
{
    struct ks_container_state st;
    int r = ks_engine_state_get(e, id, &st, err);
    if (r < 0)
        return r;
    ks_engine_state_clear(&st);
    if (!ks_engine_status_active(st.status))
        return 0;
    r = mark_stopping(e, id, err);
    if (r < 0)
        return r;
    int64_t kill_at = now_ms() + (int64_t)(timeout > 0 ? timeout : 0) * 1000;
    int64_t give_up = kill_at + KILL_WAIT_MS;
    bool sent = false, killed = false;
    for (;;) {
        r = ks_engine_state_get(e, id, &st, err);
        if (r < 0)
            return r;
        ks_engine_state_clear(&st);
        if (!ks_engine_status_active(st.status))
            return 0;
        if (st.status != KS_CONTAINER_RESTARTING) {
            int s = !sent ? sig : !killed && now_ms() >= kill_at ? SIGKILL : 0;
            if (s) {
                /* It may have exited meanwhile: the next round sees that. */
                ks_container_kill(e->runtime_root, id, s, false, NULL);
                if (st.status == KS_CONTAINER_PAUSED)
                    ks_container_pause(e->runtime_root, id, false, NULL);
                killed |= s == SIGKILL;
                sent = true;
            }
        }
        if (now_ms() >= give_up)
            return ks_error_set_plain(err, ETIMEDOUT, "container %s did not stop", id);
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int ks_engine_stop(struct ks_engine *e, const char *id, int timeout, struct ks_error **err)
{
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    _cleanup_json_ json_object *config = NULL;
    int r = ks_engine_lookup(e, id, &c, &config, err);
    if (r < 0)
        return r;
    if (timeout < 0)
        timeout = (int)ks_json_int(ks_json_get(config, "Config"), "StopTimeout", 10);
    r = stop_with(e, c->id, stop_signal(config), timeout, err);
    if (r >= 0)
        ks_engine_volumes_release(e, c->id);
    /* At once rather than when the monitor's cleanup gets to it: a stopped container's
     * address and ports are free when stop returns. */
    if (r >= 0)
        r = ks_net_release(e, c->id, err);
    return r;
}

int ks_engine_pause(struct ks_engine *e, const char *id, bool pause, struct ks_error **err)
{
    struct ks_container_state st;
    int r = ks_engine_state_get(e, id, &st, err);
    if (r < 0)
        return r;
    ks_engine_state_clear(&st);
    if (pause && st.status == KS_CONTAINER_PAUSED)
        return ks_error_msg(err, "Container %s is already paused", id);
    if (!pause && st.status != KS_CONTAINER_PAUSED)
        return ks_error_msg(err, "Container %s is not paused", id);
    if (pause && st.status != KS_CONTAINER_RUNNING)
        return ks_error_msg(err, "Container %s is not running", id);
    _cleanup_free_ char *marker = paused_marker(e, id);
    if (marker == NULL)
        return ks_error_set(err, ENOMEM, "pause");
    if (pause) {
        _cleanup_close_ int fd = open(marker, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return ks_error_set(err, errno, "create `%s`", marker);
    }
    r = ks_container_pause(e->runtime_root, id, pause, err);
    if ((r < 0) == pause)
        unlink(marker);
    return r;
}

int ks_engine_rename(struct ks_engine *e, const char *id, const char *name, struct ks_error **err)
{
    if (!ks_container_name_valid(name))
        return ks_error_msg(err,
                            "Invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are "
                            "allowed",
                            name);
    return ks_db_container_rename(ks_store_db(e->store), id, name[0] == '/' ? name + 1 : name, err);
}

/* Waits (bounded) for the monitor to finish its own cleanup before removing what it uses. */
static void wait_monitor_gone(pid_t pid)
{
    for (int i = 0; i < 250 && ks_engine_monitor_alive(pid); i++) {
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int ks_engine_remove(struct ks_engine *e, const char *id, bool force, struct ks_error **err)
{
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    int r = ks_engine_lookup(e, id, &c, NULL, err);
    if (r < 0)
        return r;
    _cleanup_close_ int lock = ks_engine_lock(e, c->id, err);
    if (lock < 0)
        return lock;
    struct ks_container_state st;
    r = ks_engine_state_settled(e, c->id, &st, err);
    if (r < 0)
        return r;
    ks_engine_state_clear(&st);
    if (ks_engine_status_active(st.status)) {
        if (!force)
            return ks_error_set_plain(err, EBUSY,
                                      "You cannot remove a %s container %s. Stop the container "
                                      "before attempting removal or force remove",
                                      ks_engine_status_name(st.status), c->id);
        r = stop_with(e, c->id, SIGKILL, 0, err);
        if (r < 0)
            return r;
    }
    if (getpid() != st.monitor_pid)
        wait_monitor_gone(st.monitor_pid);
    struct ks_error *e3 = NULL;
    if (ks_container_delete(e->runtime_root, c->id, true, &e3) < 0 && e3 && e3->errnum != ENOENT)
        ks_debug("runtime delete %s: %s", c->id, e3->msg);
    ks_error_free(e3);
    _cleanup_free_ char *overlay = overlay_dir(e), *dir = ks_container_dir(e, c->id),
                        *run = ks_container_run_dir(e, c->id);
    if (overlay == NULL || dir == NULL || run == NULL)
        return ks_error_set(err, ENOMEM, "remove container");
    if (c->snapshot) {
        r = ks_snapshot_container_remove(overlay, c->snapshot, err);
        if (r < 0)
            return ks_error_wrap(err, "remove container %s", c->id);
    }
    r = ks_net_release_locked(e, c->id, err);
    if (r >= 0)
        r = ks_engine_netns_teardown(e, c->id, err);
    if (r >= 0)
        r = ks_rm_rf_at(AT_FDCWD, run, err);
    if (r >= 0)
        r = ks_rm_rf_at(AT_FDCWD, dir, err);
    if (r < 0)
        return ks_error_wrap(err, "remove container %s", c->id);
    r = ks_db_container_delete(ks_store_db(e->store), c->id, err);
    if (r < 0)
        return r;
    ks_engine_volumes_release(e, c->id);
    /* As Docker: a --rm container takes its anonymous volumes with it. */
    _cleanup_json_ json_object *config = NULL;
    if (ks_json_parse(c->config, strlen(c->config), &config, NULL) >= 0 &&
        ks_json_bool(ks_json_get(config, "HostConfig"), "AutoRemove", false))
        ks_engine_volumes_remove_anonymous(e, c->config, NULL);
    return 0;
}
