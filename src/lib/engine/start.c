/* Starting a container: mount its root file system, write the bundle's config.json, and spawn
 * its kiste-monitor (detached: setsid, reparented away from us) which creates and starts it
 * through kiste-runtime and answers on the sync socket with the init's pid or an error. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../image/snapshot.h"
#include "../net/net.h"
#include "../volume/volume.h"
#include "container.h"

#define SYNC_TIMEOUT_MS 60000
#define SYNC_MAX        65536
#define LOG_MAX_SIZE    ((int64_t)10 << 20)
#define LOG_MAX_FILES   5
#define ARGV_MAX        64

struct argv {
    char *v[ARGV_MAX + 1];
    size_t n;
    bool oom;
};

static void arg(struct argv *a, const char *s)
{
    if (a->n >= ARGV_MAX || s == NULL) {
        a->oom = true;
        return;
    }
    a->v[a->n] = strdup(s);
    if (a->v[a->n] == NULL)
        a->oom = true;
    else
        a->n++;
}

static void argf(struct argv *a, const char *fmt, long long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), fmt, v);
    arg(a, buf);
}

static void argv_free(struct argv *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i]);
    a->n = 0;
}

/* The log options of HostConfig.LogConfig; json-file with Docker's defaults otherwise. */
static int log_args(struct argv *a, struct ks_engine *e, const char *id, json_object *hc,
                    struct ks_error **err)
{
    json_object *lc = ks_json_get(hc, "LogConfig");
    const char *type = ks_json_str(lc, "Type");
    if (type && strcmp(type, "none") == 0)
        return 0;
    if (type && *type && strcmp(type, "json-file") != 0)
        return ks_error_msg(err, "logging driver `%s` is not supported (json-file, none)", type);
    json_object *cfg = ks_json_get(lc, "Config");
    int64_t size = LOG_MAX_SIZE, files = LOG_MAX_FILES;
    const char *s = ks_json_str(cfg, "max-size");
    if (s && ks_parse_size(s, &size) < 0)
        return ks_error_msg(err, "invalid log max-size `%s`", s);
    if ((s = ks_json_str(cfg, "max-file"))) {
        char *end;
        files = strtoll(s, &end, 10);
        if (*end || files < 1 || files > 1000)
            return ks_error_msg(err, "invalid log max-file `%s`", s);
    }
    _cleanup_free_ char *path = ks_container_log_path(e, id);
    arg(a, "--log-path");
    arg(a, path);
    arg(a, "--log-max-size");
    argf(a, "%lld", (long long)size);
    arg(a, "--log-max-files");
    argf(a, "%lld", (long long)files);
    return 0;
}

static void restart_args(struct argv *a, json_object *hc)
{
    json_object *rp = ks_json_get(hc, "RestartPolicy");
    const char *name = ks_json_str(rp, "Name");
    if (name == NULL || *name == '\0' || strcmp(name, "no") == 0)
        return;
    arg(a, "--restart");
    int64_t max = ks_json_int(rp, "MaximumRetryCount", 0);
    if (strcmp(name, "on-failure") == 0 && max > 0) {
        char buf[64];
        snprintf(buf, sizeof(buf), "on-failure:%lld", (long long)max);
        arg(a, buf);
    } else {
        arg(a, name);
    }
}

/* Docker's defaults for the durations a healthcheck leaves at 0. */
static void health_args(struct argv *a, json_object *c)
{
    json_object *h = ks_json_get_type(c, "Healthcheck", json_type_object);
    json_object *test = ks_json_get_type(h, "Test", json_type_array);
    if (test == NULL || json_object_array_length(test) == 0)
        return;
    const char *kind = json_object_get_string(json_object_array_get_idx(test, 0));
    if (kind == NULL || strcmp(kind, "NONE") == 0)
        return;
    _cleanup_json_ json_object *cmd = json_object_new_array();
    if (strcmp(kind, "CMD-SHELL") == 0 && json_object_array_length(test) > 1) {
        json_object_array_add(cmd, json_object_new_string("/bin/sh"));
        json_object_array_add(cmd, json_object_new_string("-c"));
        json_object_array_add(cmd, json_object_get(json_object_array_get_idx(test, 1)));
    } else {
        for (size_t i = strcmp(kind, "CMD") == 0 ? 1 : 0; i < json_object_array_length(test); i++)
            json_object_array_add(cmd, json_object_get(json_object_array_get_idx(test, i)));
    }
    if (json_object_array_length(cmd) == 0)
        return;
    arg(a, "--health-cmd");
    arg(a, ks_json_plain(cmd));
    static const struct {
        const char *key, *flag;
        long long def;
    } d[] = {
        {"Interval", "--health-interval", 30000000000LL},
        {"Timeout", "--health-timeout", 30000000000LL},
        {"Retries", "--health-retries", 3},
        {"StartPeriod", "--health-start-period", 0},
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(d); i++) {
        int64_t v = ks_json_int(h, d[i].key, 0);
        arg(a, d[i].flag);
        argf(a, "%lld", (long long)(v > 0 ? v : d[i].def));
    }
}

struct start_ctx {
    struct ks_engine *e;
    const char *id;
    json_object *config;
    const char *merged;
    const char *bundle;
    const char *run_dir;
    const char *self_exe;
    int sync_fd, attach_fd;
    char dns_netns[4096]; /* the namespace the embedded DNS resolver serves; "": none */
};

/* The embedded DNS resolver's options: the namespace, where the networks' hosts files are, and
 * at most four upstream servers. */
static int dns_args(struct argv *a, const struct start_ctx *s, struct ks_error **err)
{
    _cleanup_strv_ char **up = NULL;
    _cleanup_free_ char *nets = NULL;
    int r = ks_engine_dns_upstreams(s->config, &up, err);
    if (r < 0)
        return r;
    if (asprintf(&nets, "%s/networks", s->e->runroot) < 0)
        return ks_error_set(err, ENOMEM, "monitor command line");
    arg(a, "--dns-netns");
    arg(a, s->dns_netns);
    arg(a, "--dns-networks");
    arg(a, nets);
    for (size_t i = 0; up[i] && i < 4; i++) {
        arg(a, "--dns-upstream");
        arg(a, up[i]);
    }
    return 0;
}

/* Whether the container has a network namespace of its own (not host, not another's). */
static bool owns_network(json_object *hc)
{
    const char *mode = ks_json_str(hc, "NetworkMode");
    return mode == NULL || (strcmp(mode, "host") != 0 && strncmp(mode, "container:", 10) != 0);
}

static int monitor_argv(struct argv *a, const struct start_ctx *s, struct ks_error **err)
{
    _cleanup_free_ char *monitor = NULL, *runtime = NULL,
                        *state_dir = ks_container_dir(s->e, s->id);
    int r = ks_engine_find_binary("kiste-monitor", "KISTE_MONITOR", &monitor, err);
    if (r >= 0)
        r = ks_engine_find_binary("kiste-runtime", "KISTE_RUNTIME", &runtime, err);
    if (r < 0)
        return r;
    json_object *c = ks_json_get(s->config, "Config");
    json_object *hc = ks_json_get(s->config, "HostConfig");
    arg(a, monitor);
    arg(a, "--id");
    arg(a, s->id);
    arg(a, "--runtime");
    arg(a, runtime);
    arg(a, "--runtime-root");
    arg(a, s->e->runtime_root);
    arg(a, "--bundle");
    arg(a, s->bundle);
    arg(a, "--state-dir");
    arg(a, state_dir);
    arg(a, "--run-dir");
    arg(a, s->run_dir);
    r = log_args(a, s->e, s->id, hc, err);
    if (r < 0)
        return r;
    if (ks_json_bool(c, "Tty", false))
        arg(a, "--terminal");
    if (ks_json_bool(c, "OpenStdin", false)) {
        arg(a, "--stdin");
        /* As Docker: a terminal's stdin survives a detach (ctrl-p ctrl-q); StdinOnce only
         * ends a plain pipe with its client. */
        if (ks_json_bool(c, "StdinOnce", false) && !ks_json_bool(c, "Tty", false))
            arg(a, "--stdin-once");
    }
    if (s->attach_fd >= 0) {
        arg(a, "--attach-fd");
        argf(a, "%lld", s->attach_fd);
    }
    arg(a, "--sync-fd");
    argf(a, "%lld", s->sync_fd);
    restart_args(a, hc);
    arg(a, "--rootfs-mount");
    arg(a, s->merged);
    health_args(a, c);
    if (s->dns_netns[0] && (r = dns_args(a, s, err)) < 0)
        return r;
    /* The cleanup command, a kiste of the same roots: --rm's rm (which deletes the runtime's
     * state itself), or the release of what the network holds once the container has exited
     * for good. */
    bool rm = ks_json_bool(hc, "AutoRemove", false);
    if (rm || owns_network(hc)) {
        if (rm)
            arg(a, "--cleanup-deletes");
        arg(a, "--");
        arg(a, s->self_exe);
        arg(a, "--root");
        arg(a, s->e->root);
        arg(a, "--runroot");
        arg(a, s->e->runroot);
        arg(a, rm ? "rm" : "network");
        arg(a, rm ? "-f" : "release");
        arg(a, s->id);
    }
    if (a->oom)
        return ks_error_set(err, ENOMEM, "monitor command line");
    return 0;
}

/* Forks twice so that the monitor is nobody's child here: it outlives this command and is
 * reaped by init (or the nearest subreaper), never left a zombie of ours. */
static int spawn(char *const *argv, int keep1, int keep2, struct ks_error **err)
{
    pid_t pid = fork();
    if (pid < 0)
        return ks_error_set(err, errno, "fork");
    if (pid == 0) {
        pid_t p2 = fork();
        if (p2 != 0)
            _exit(p2 < 0 ? 1 : 0);
        setsid();
        signal(SIGPIPE, SIG_DFL);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        if (keep1 >= 0)
            fcntl(keep1, F_SETFD, 0);
        if (keep2 >= 0)
            fcntl(keep2, F_SETFD, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return ks_error_msg(err, "spawn the monitor: fork failed");
    return 0;
}

/* Reads the monitor's one-line reply; EOF without one means it died before answering. */
static int read_sync(int fd, pid_t *ret_pid, struct ks_error **err)
{
    char buf[SYNC_MAX];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, SYNC_TIMEOUT_MS);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return ks_error_set_plain(err, ETIMEDOUT, "the monitor did not answer");
        ssize_t got = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        len += (size_t)got;
        if (memchr(buf, '\n', len) || len == sizeof(buf) - 1)
            break;
    }
    buf[len] = '\0';
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    if (len == 0)
        return ks_error_msg(err, "the monitor exited without an answer");
    _cleanup_json_ json_object *o = NULL;
    int r = ks_json_parse(buf, len, &o, err);
    if (r < 0)
        return ks_error_wrap(err, "the monitor's answer");
    const char *msg = ks_json_str(o, "error");
    if (msg) {
        int code = (int)ks_json_int(o, "exit_code", 125);
        int e = code == 127 ? ENOENT : code == 126 ? EACCES : EIO;
        return ks_error_set_plain(err, e, "%s", msg);
    }
    *ret_pid = (pid_t)ks_json_int(o, "pid", 0);
    return 0;
}

static int write_bundle(const struct start_ctx *s, const struct ks_spec_gen_opts *go,
                        struct ks_error **err)
{
    _cleanup_json_ json_object *spec = NULL;
    /* --pid/--ipc container:X join X's namespaces: it must be running now. */
    struct ks_isolation_paths iso;
    int r = ks_engine_isolation_resolve(s->e, s->config, &iso, err);
    if (r < 0)
        return r;
    struct ks_spec_gen_opts o = *go;
    o.isolation = &iso;
    r = ks_container_spec_generate(s->config, &o, &spec, err);
    ks_isolation_paths_clear(&iso);
    if (r < 0)
        return r;
    r = ks_mkdir_p(s->bundle, 0700, err);
    if (r < 0)
        return r;
    _cleanup_close_ int dfd = open(s->bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "open `%s`", s->bundle);
    const char *text = ks_json_plain(spec);
    return ks_write_file_replace(dfd, "config.json", text, strlen(text), 0600, err);
}

/* Mounts the rootfs and writes config.json; *ret_merged is owned by the caller. */
static int prepare(struct start_ctx *s, const struct ks_db_container *c, char **ret_merged,
                   struct ks_error **err)
{
    _cleanup_free_ char *overlay = NULL, *merged = NULL, *init = NULL, *netns = NULL, *etc = NULL;
    _cleanup_close_ int rootfd = -EBADF;
    struct ks_net_endpoint *eps = NULL; /* the network's attachments, n_eps of them */
    size_t n_eps = 0;
    if (asprintf(&overlay, "%s/overlay", s->e->root) < 0)
        return ks_error_set(err, ENOMEM, "start");
    /* A container removed when it exits never mounts its upper directory again: skipping
     * overlay's syncs saves a sync of the whole file system when the monitor unmounts it. */
    unsigned mflags = ks_json_bool(ks_json_get(s->config, "HostConfig"), "AutoRemove", false)
                          ? KS_SNAPSHOT_MOUNT_VOLATILE
                          : 0;
    int r = ks_snapshot_container_mount_flags(overlay, c->snapshot, mflags, &merged, err);
    if (r < 0)
        return ks_error_wrap(err, "mount the root file system");
    if (ks_json_bool(ks_json_get(s->config, "HostConfig"), "Init", false)) {
        r = ks_engine_find_binary("kiste-init", "KISTE_INIT", &init, err);
        if (r < 0)
            goto fail;
    }
    rootfd = open(merged, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        r = ks_error_set(err, errno, "open `%s`", merged);
        goto fail;
    }
    /* Docker creates a missing working directory. */
    const char *wd = ks_json_str(ks_json_get(s->config, "Config"), "WorkingDir");
    if (wd && *wd) {
        int wfd = ks_mkdir_p_in_root(rootfd, wd, 0755, false, err);
        if (wfd < 0) {
            r = wfd;
            goto fail;
        }
        close(wfd);
    }
    r = ks_engine_volumes_prepare(s->e, c->id, s->config, rootfd, err);
    if (r < 0)
        goto fail;
    struct ks_net_attach_result net = {0};
    r = ks_net_attach(s->e, c->id, s->config, &net, &eps, &n_eps, err);
    if (r < 0)
        goto fail;
    netns = TAKE_PTR(net.netns_path);
    r = ks_engine_etc_files_write(s->e, c->id, s->config, eps, n_eps, err);
    if (r >= 0)
        r = ks_engine_etc_files_dir(s->e, c->id, s->config, &etc, err);
    if (r < 0)
        goto fail;
    /* On a user-defined network names resolve through the monitor's embedded resolver. */
    for (size_t i = 0; netns && i < n_eps; i++)
        if (eps[i].user_defined)
            snprintf(s->dns_netns, sizeof(s->dns_netns), "%s", netns);
    struct ks_spec_gen_opts go = {
        .id = c->id,
        .rootfs = merged,
        .rootfd = rootfd,
        .init_path = init,
        .netns_path = netns,
        .host_network = net.host_network,
        .etc_dir = etc,
    };
    s->merged = merged;
    r = write_bundle(s, &go, err);
    if (r < 0)
        goto fail;
    ks_net_endpoints_free(eps, n_eps);
    *ret_merged = TAKE_PTR(merged);
    return 0;
fail:
    ks_net_endpoints_free(eps, n_eps);
    ks_net_release_locked(s->e, c->id, NULL);
    ks_snapshot_container_unmount(overlay, c->snapshot, NULL);
    return r;
}

static int spawn_monitor(struct start_ctx *s, pid_t *ret_pid, struct ks_error **err)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
        return ks_error_set(err, errno, "socketpair");
    _cleanup_close_ int mine = pair[0], theirs = pair[1];
    s->sync_fd = theirs;
    struct argv a = {0};
    int r = monitor_argv(&a, s, err);
    if (r >= 0)
        r = spawn(a.v, theirs, s->attach_fd, err);
    argv_free(&a);
    if (r < 0)
        return r;
    close(TAKE_FD(theirs));
    return read_sync(mine, ret_pid, err);
}

int ks_engine_start(struct ks_engine *e, const char *id, const struct ks_container_start_opts *o,
                    pid_t *ret_pid, struct ks_error **err)
{
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    _cleanup_json_ json_object *config = NULL;
    int r = ks_engine_lookup(e, id, &c, &config, err);
    if (r < 0)
        return r;
    /* Two starts at once would spawn two monitors; the second waits and finds it running. */
    _cleanup_close_ int lock = ks_engine_lock(e, c->id, err);
    if (lock < 0)
        return lock;
    _cleanup_free_ char *run = ks_container_run_dir(e, c->id), *bundle = NULL, *marker = NULL;
    if (run == NULL || asprintf(&bundle, "%s/bundle", run) < 0 ||
        asprintf(&marker, "%s/stopping", run) < 0)
        return ks_error_set(err, ENOMEM, "start");
    struct ks_container_state st;
    r = ks_engine_state_settled(e, c->id, &st, err);
    if (r < 0)
        return r;
    ks_engine_state_clear(&st);
    if (st.status == KS_CONTAINER_RUNNING || st.status == KS_CONTAINER_PAUSED) {
        if (ret_pid)
            *ret_pid = st.pid;
        return 0;
    }
    if (st.status == KS_CONTAINER_RESTARTING)
        return ks_error_msg(err, "Container %s is restarting", c->id);
    if (c->snapshot == NULL)
        return ks_error_msg(err, "container %s has no root file system", c->id);
    /* No monitor is at work on it any more: whatever a dead one or an interrupted start left
     * (runtime state, processes, a mounted root file system) goes before the new start. */
    r = ks_engine_repair(e, c->id, &st, err);
    if (r < 0)
        return r;
    r = ks_mkdir_p(run, 0700, err);
    if (r < 0)
        return r;
    unlink(marker);
    char self[4096] = "/proc/self/exe";
    if (o == NULL || o->self_exe == NULL) {
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n > 0)
            self[n] = '\0';
    }
    struct start_ctx s = {
        .e = e,
        .id = c->id,
        .config = config,
        .bundle = bundle,
        .run_dir = run,
        .self_exe = o && o->self_exe ? o->self_exe : self,
        .sync_fd = -EBADF,
        .attach_fd = o ? o->attach_fd : -EBADF,
    };
    _cleanup_free_ char *merged = NULL;
    r = prepare(&s, c, &merged, err);
    if (r < 0) {
        /* Not the command's failure: keep these errnos for the monitor's 126/127. */
        if (err && *err && ((*err)->errnum == ENOENT || (*err)->errnum == EACCES))
            (*err)->errnum = EINVAL;
        return r == -ENOENT || r == -EACCES ? -EINVAL : r;
    }
    s.merged = merged;
    pid_t pid = 0;
    r = spawn_monitor(&s, &pid, err);
    if (r < 0) {
        /* The monitor unmounts on its own failure; this covers a monitor that never ran. */
        _cleanup_free_ char *overlay = NULL;
        if (asprintf(&overlay, "%s/overlay", e->root) >= 0)
            ks_snapshot_container_unmount(overlay, c->snapshot, NULL);
        ks_net_release_locked(e, c->id, NULL);
        return r;
    }
    if (ret_pid)
        *ret_pid = pid;
    return 0;
}
