/* create, run, start, attach and restart: the commands that start containers and attach to
 * them. A foreground container gets one end of a SOCK_SEQPACKET pair as its monitor's first
 * attach client, so no output is lost between the start and the attach. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "container.h"
#include "lib/base/fs.h"
#include "lib/base/json.h"
#include "lib/image/store.h"
#include "pull.h"

#define RM_WAIT_MS 30000

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The image must be here: pulled when it is missing (or always, with --pull always), its
 * progress on stderr as Docker shows it for run and create. */
static int ensure_image(struct ks_engine *e, const struct ks_run_opts *o)
{
    _cleanup_free_ char *id = NULL;
    struct ks_error *err = NULL;
    /* always asks the registry even for an image that is here: never silently the local one. */
    if (o->pull && strcmp(o->pull, "always") == 0)
        return ks_cli_pull_image(o->image, o->platform, false, stderr) == 0 ? 0 : 125;
    if (ks_store_lookup(e->store, o->image, &id, &err) == 0)
        return 0;
    if (err->errnum != ENOENT)
        return ks_cli_fail(err, 125);
    ks_error_free(err);
    if (o->pull && strcmp(o->pull, "never") == 0) {
        fprintf(stderr, "Error: No such image: %s\n", o->image);
        return 125;
    }
    fprintf(stderr, "Unable to find image '%s' locally\n", o->image);
    return ks_cli_pull_image(o->image, o->platform, false, stderr) == 0 ? 0 : 125;
}

static int create_container(struct ks_engine *e, struct ks_run_opts *o, char **ret_id)
{
    int r = ensure_image(e, o);
    if (r != 0)
        return r;
    struct ks_container_create_opts co = {.image = o->image, .name = o->name, .config = o->config};
    struct ks_error *err = NULL;
    _cleanup_strv_ char **warnings = NULL;
    if (ks_container_ulimits_clamp(ks_json_get(o->config, "HostConfig"), &warnings, &err) < 0)
        return ks_cli_fail(err, 125);
    for (size_t i = 0; warnings && warnings[i]; i++)
        fprintf(stderr, "WARNING: %s\n", warnings[i]);
    if (ks_engine_create(e, &co, ret_id, &err) < 0)
        return ks_cli_fail(err, 125);
    return 0;
}

/* create's and run's common start: parses cmd's flags into o, opens the engine into *e and
 * creates the container, its id into *id (owned by the caller). Returns -1 to go on, with o to
 * be freed by the caller; else the command's exit status, with o already freed. */
static int parse_and_create(const char *cmd, int argc, char **argv, struct ks_run_opts *o,
                            struct ks_engine **e, char **id)
{
    struct ks_error *err = NULL;
    int r = ks_cli_parse_run_opts(cmd, argc, argv, o);
    if (r != 0) {
        ks_run_opts_free(o);
        return r < 0 ? 0 : r;
    }
    if (ks_cli_engine_open(e, &err) < 0) {
        ks_run_opts_free(o);
        return ks_cli_fail(err, 125);
    }
    r = create_container(*e, o, id);
    if (r != 0) {
        ks_run_opts_free(o);
        return r;
    }
    return -1;
}

int ks_cli_create(int argc, char **argv)
{
    struct ks_run_opts o;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_free_ char *id = NULL;
    int r = parse_and_create("create", argc, argv, &o, &e, &id);
    if (r >= 0)
        return r;
    ks_run_opts_free(&o);
    printf("%s\n", id);
    return 0;
}

/* A pidfd of the container's monitor, taken while it surely runs (right after the start), or
 * -EBADF. The monitor execs the `rm` of --rm in the same process, so its exit is the moment the
 * container is gone. */
static int monitor_pidfd(struct ks_engine *e, const char *id)
{
    _cleanup_free_ char *run = ks_container_run_dir(e, id);
    pid_t pid = run ? ks_engine_monitor_pid_file(run) : 0;
    int fd = pid > 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
    return fd < 0 ? -EBADF : fd;
}

/* Removes the container of a foreground run --rm once its monitor is gone. We asked the
 * monitor to leave the removal to us (MON_MSG_TAKEOVER): that saves starting kiste once more.
 * Had it not seen the request, the monitor turned into the container's `rm` (same pid) and the
 * container is gone when it is. Without a pidfd, looks every 20 ms, and removes it anyway after
 * RM_WAIT_MS. */
static void wait_removed(struct ks_engine *e, const char *id, int pidfd)
{
    if (pidfd >= 0) {
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        while (poll(&p, 1, RM_WAIT_MS) < 0 && errno == EINTR)
            ;
    } else {
        for (int i = 0; i < RM_WAIT_MS / 20; i++) {
            _cleanup_db_container_ struct ks_db_container *c = NULL;
            if (ks_db_container_get(ks_store_db(e->store), id, &c, NULL) == -ENOENT)
                return;
            sleep_ms(20);
        }
    }
    struct ks_error *err = NULL;
    if (ks_engine_remove(e, id, true, &err) < 0 && err && err->errnum != ENOENT)
        fprintf(stderr, "Error: remove container %s: %s\n", id, err->msg);
    ks_error_free(err);
}

/* A foreground session on fd; the container's exit code, or KS_ATTACH_DETACHED. */
static int session(struct ks_engine *e, const char *id, int fd, json_object *config,
                   bool stdin_open, const char *detach_keys, bool sig_proxy, pid_t pid)
{
    json_object *c = ks_json_get(config, "Config");
    struct ks_attach_opts ao = {
        .tty = ks_json_bool(c, "Tty", false),
        .stdin_open = stdin_open,
        .detach_keys = detach_keys,
        .sig_proxy = sig_proxy && !ks_json_bool(c, "Tty", false),
        .proxy_pid = pid,
    };
    struct ks_error *err = NULL;
    int code = ks_cli_attach_session(fd, &ao, &err);
    if (code == KS_ATTACH_DETACHED)
        return code;
    if (code < 0) {
        ks_error_free(err);
        err = NULL;
        code = ks_engine_wait(e, id, -1, &err);
        if (code < 0)
            return ks_cli_fail(err, 125);
    }
    return code;
}

/* Starts id with a fresh attach pair, the container's end given to the monitor. Returns our end
 * (owned by the caller), the main pid in *pid. With takeover, the monitor is told first that we
 * remove the container after its exit. */
static int start_paired(struct ks_engine *e, const char *id, bool takeover, pid_t *pid,
                        struct ks_error **err)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
        return ks_error_set(err, errno, "socketpair");
    /* Queued before the monitor exists: it is the first message the monitor reads. */
    if (takeover && send(pair[0], (char[]){KS_ATTACH_MSG_TAKEOVER}, 1, MSG_NOSIGNAL) < 0) {
        int r = ks_error_set(err, errno, "attach");
        close(pair[0]);
        close(pair[1]);
        return r;
    }
    struct ks_container_start_opts so = {.attach_fd = pair[1]};
    int r = ks_engine_start(e, id, &so, pid, err);
    close(pair[1]);
    if (r < 0) {
        close(pair[0]);
        return r;
    }
    return pair[0];
}

static int run_foreground(struct ks_engine *e, const char *id, struct ks_run_opts *o)
{
    struct ks_error *err = NULL;
    pid_t pid = 0;
    int fd = start_paired(e, id, o->rm, &pid, &err);
    if (fd < 0) {
        int status = ks_cli_start_status(err);
        if (o->rm)
            ks_engine_remove(e, id, true, NULL);
        return ks_cli_fail(err, status);
    }
    _cleanup_close_ int pidfd = o->rm ? monitor_pidfd(e, id) : -EBADF;
    int code = session(e, id, fd, o->config, o->interactive, o->detach_keys, o->sig_proxy, pid);
    close(fd);
    /* Detached, the container runs on; its monitor removes it when it exits. */
    if (code == KS_ATTACH_DETACHED)
        return 0;
    if (o->rm)
        wait_removed(e, id, pidfd);
    return code;
}

int ks_cli_run(int argc, char **argv)
{
    struct ks_run_opts o;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_free_ char *id = NULL;
    int r = parse_and_create("run", argc, argv, &o, &e, &id);
    if (r >= 0)
        return r;
    if (!o.detach) {
        r = run_foreground(e, id, &o);
        ks_run_opts_free(&o);
        return r;
    }
    struct ks_container_start_opts so = {.attach_fd = -EBADF};
    if (ks_engine_start(e, id, &so, NULL, &err) < 0) {
        int status = ks_cli_start_status(err);
        if (o.rm)
            ks_engine_remove(e, id, true, NULL);
        ks_run_opts_free(&o);
        return ks_cli_fail(err, status);
    }
    ks_run_opts_free(&o);
    printf("%s\n", id);
    return 0;
}

/* Connects to a running container's attach socket, through an fd of its run directory so that
 * a long run root does not overflow the socket address. */
static int connect_attach(struct ks_engine *e, const char *id, struct ks_error **err)
{
    _cleanup_free_ char *run = ks_container_run_dir(e, id);
    if (run == NULL)
        return ks_error_set(err, ENOMEM, "attach");
    _cleanup_close_ int dfd = open(run, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "open `%s`", run);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/attach", dfd);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ks_error_set(err, errno, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int en = errno;
        close(fd);
        return ks_error_set(err, en, "connect to %s/attach", run);
    }
    return fd;
}

/* Attaches to c (started here with a fresh pair unless it is running already). */
static int start_attached(struct ks_engine *e, const struct ks_db_container *c, json_object *config,
                          bool interactive, const char *keys)
{
    struct ks_container_state st;
    struct ks_error *err = NULL;
    if (ks_engine_state_get(e, c->id, &st, &err) < 0)
        return ks_cli_fail(err, 1);
    ks_engine_state_clear(&st);
    int fd;
    pid_t pid = st.pid;
    if (st.status == KS_CONTAINER_RUNNING) {
        fd = connect_attach(e, c->id, &err);
        if (fd < 0)
            return ks_cli_fail(err, 1);
    } else {
        fd = start_paired(e, c->id, false, &pid, &err);
        if (fd < 0)
            return ks_cli_fail(err, ks_cli_start_status(err));
    }
    int code = session(e, c->id, fd, config, interactive, keys, true, pid);
    close(fd);
    return code == KS_ATTACH_DETACHED ? 0 : code;
}

static int do_start(struct ks_engine *e, const char *id, void *userdata, struct ks_error **err)
{
    (void)userdata;
    struct ks_container_start_opts so = {.attach_fd = -EBADF};
    return ks_engine_start(e, id, &so, NULL, err);
}

int ks_cli_start(int argc, char **argv)
{
    static const struct option opts[] = {
        {"attach", no_argument, NULL, 'a'},
        {"interactive", no_argument, NULL, 'i'},
        {"detach-keys", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'H'},
        {0},
    };
    bool attach = false, interactive = false;
    const char *keys = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+ai", opts, NULL)) != -1) {
        if (c == 'a')
            attach = true;
        else if (c == 'i')
            interactive = true;
        else if (c == 'k')
            keys = optarg;
        else if (c == 'H') {
            printf("Usage: kiste start [OPTIONS] CONTAINER [CONTAINER...]\n");
            return 0;
        } else
            return 1;
    }
    if (ks_cli_nargs("start", argc - optind, 1, -1, false))
        return 1;
    if (!attach && !interactive)
        return ks_cli_for_each(argc, argv, optind, do_start, NULL, true);
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    if (argc - optind > 1) {
        fprintf(stderr, "Error: you cannot start and attach multiple containers at once\n");
        return 1;
    }
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    _cleanup_json_ json_object *config = NULL;
    if (ks_engine_lookup(e, argv[optind], &ct, &config, &err) < 0)
        return ks_cli_fail(err, 1);
    return start_attached(e, ct, config, interactive, keys);
}

int ks_cli_attach(int argc, char **argv)
{
    static const struct option opts[] = {
        {"no-stdin", no_argument, NULL, 'n'},
        {"sig-proxy", optional_argument, NULL, 's'},
        {"detach-keys", required_argument, NULL, 'k'},
        {0},
    };
    bool no_stdin = false, proxy = true;
    const char *keys = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        if (c == 'n')
            no_stdin = true;
        else if (c == 's')
            proxy = optarg == NULL || strcmp(optarg, "true") == 0;
        else if (c == 'k')
            keys = optarg;
        else
            return 1;
    }
    if (ks_cli_nargs("attach", argc - optind, 1, 1, false))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    _cleanup_json_ json_object *config = NULL;
    if (ks_cli_open_container(argv[optind], &e, &ct, &config, &err) < 0)
        return ks_cli_fail(err, 1);
    struct ks_container_state st;
    if (ks_engine_state_get(e, ct->id, &st, &err) < 0)
        return ks_cli_fail(err, 1);
    ks_engine_state_clear(&st);
    if (st.status != KS_CONTAINER_RUNNING) {
        fprintf(stderr, "Error: You cannot attach to a stopped container, start it first\n");
        return 1;
    }
    int fd = connect_attach(e, ct->id, &err);
    if (fd < 0)
        return ks_cli_fail(err, 1);
    bool open_stdin = ks_json_bool(ks_json_get(config, "Config"), "OpenStdin", false);
    int code = session(e, ct->id, fd, config, open_stdin && !no_stdin, keys, proxy, st.pid);
    close(fd);
    return code == KS_ATTACH_DETACHED ? 0 : code;
}

static int do_restart(struct ks_engine *e, const char *id, void *userdata, struct ks_error **err)
{
    struct ks_container_start_opts so = {.attach_fd = -EBADF};
    int r = ks_engine_stop(e, id, *(int *)userdata, err);
    return r < 0 ? r : ks_engine_start(e, id, &so, NULL, err);
}

int ks_cli_restart(int argc, char **argv)
{
    static const struct option opts[] = {
        {"time", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 't'},
        {0},
    };
    int timeout = -1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+t:", opts, NULL)) != -1) {
        if (c == 't')
            timeout = atoi(optarg);
        else
            return 1;
    }
    if (ks_cli_nargs("restart", argc - optind, 1, -1, false))
        return 1;
    return ks_cli_for_each(argc, argv, optind, do_restart, &timeout, true);
}
