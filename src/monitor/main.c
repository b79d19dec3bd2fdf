/* kiste-monitor's command line and start-up: it runs detached from any terminal (the engine
 * forks, setsid()s and executes it), so it holds none of its caller's descriptors, ignores the
 * signals of a session that goes away, and reports its start through the sync fd. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "lib/net/dns.h"
#include "monitor.h"

int64_t mon_now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(FILE *f)
{
    fputs("usage: kiste-monitor --id ID --runtime PATH --runtime-root DIR --bundle DIR\n"
          "         --state-dir DIR --run-dir DIR\n"
          "         [--log-path FILE --log-max-size BYTES --log-max-files N]\n"
          "         [--terminal] [--stdin] [--stdin-once] [--attach-fd N] [--sync-fd N]\n"
          "         [--restart no|always|unless-stopped|on-failure[:N]] [--rootfs-mount DIR]\n"
          "         [--health-cmd JSON-ARRAY --health-interval NS --health-timeout NS\n"
          "          --health-retries N --health-start-period NS]\n"
          "         [--dns-netns PATH --dns-networks DIR [--dns-upstream IP[:PORT]]...]\n"
          "         [[--cleanup-deletes] -- CLEANUP-ARGV...]\n",
          f);
}

static int parse_u64(const char *opt, const char *s, uint64_t *ret, struct ks_error **err)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0)
        return ks_error_msg(err, "--%s: invalid number `%s`", opt, s);
    *ret = v;
    return 0;
}

static int parse_fd(const char *opt, const char *s, int *ret, struct ks_error **err)
{
    uint64_t v;
    int r = parse_u64(opt, s, &v, err);
    if (r < 0)
        return r;
    if (v < 3 || v > INT_MAX || fcntl((int)v, F_GETFD) < 0)
        return ks_error_msg(err, "--%s: %s is not an open descriptor", opt, s);
    *ret = (int)v;
    return 0;
}

/* Docker's Healthcheck.Test form is accepted as well: ["CMD", argv…], ["CMD-SHELL", "cmd"],
 * ["NONE"]; any other array is the command itself. */
static int health_argv(char **v, char ***ret, struct ks_error **err)
{
    *ret = NULL;
    if (v[0] == NULL || strcmp(v[0], "NONE") == 0) {
        ks_strv_free(v);
        return 0;
    }
    if (strcmp(v[0], "CMD") == 0 || strcmp(v[0], "CMD-SHELL") == 0) {
        bool shell = strcmp(v[0], "CMD-SHELL") == 0;
        if (v[1] == NULL || (shell && v[2] != NULL)) {
            ks_strv_free(v);
            return ks_error_msg(err, "--health-cmd: %s needs %s", shell ? "CMD-SHELL" : "CMD",
                                shell ? "exactly one command string" : "a command");
        }
        free(v[0]);
        if (shell) {
            char **sh = calloc(4, sizeof(char *));
            if (sh == NULL || (sh[0] = strdup("/bin/sh")) == NULL ||
                (sh[1] = strdup("-c")) == NULL) {
                ks_strv_free(sh);
                v[0] = NULL;
                ks_strv_free(v + 1);
                free(v);
                return ks_error_set(err, ENOMEM, "--health-cmd");
            }
            sh[2] = v[1];
            free(v);
            *ret = sh;
            return 0;
        }
        memmove(v, v + 1, ks_strv_len(v + 1) * sizeof(char *) + sizeof(char *));
    }
    *ret = v;
    return 0;
}

enum {
    OPT_ID = 256,
    OPT_RUNTIME,
    OPT_RUNTIME_ROOT,
    OPT_BUNDLE,
    OPT_STATE_DIR,
    OPT_RUN_DIR,
    OPT_LOG_PATH,
    OPT_LOG_MAX_SIZE,
    OPT_LOG_MAX_FILES,
    OPT_TERMINAL,
    OPT_STDIN,
    OPT_STDIN_ONCE,
    OPT_ATTACH_FD,
    OPT_SYNC_FD,
    OPT_RESTART,
    OPT_ROOTFS_MOUNT,
    OPT_HEALTH_CMD,
    OPT_HEALTH_INTERVAL,
    OPT_HEALTH_TIMEOUT,
    OPT_HEALTH_RETRIES,
    OPT_HEALTH_START_PERIOD,
    OPT_DNS_NETNS,
    OPT_DNS_NETWORKS,
    OPT_DNS_UPSTREAM,
    OPT_CLEANUP_DELETES,
    OPT_HELP,
};

static int parse_one(struct mon_opts *o, int c, const char *name, const char *arg,
                     struct ks_error **err)
{
    uint64_t v;
    int r = 0;
    switch (c) {
    case OPT_ID:
        o->id = arg;
        break;
    case OPT_RUNTIME:
        o->runtime = arg;
        break;
    case OPT_RUNTIME_ROOT:
        o->runtime_root = arg;
        break;
    case OPT_BUNDLE:
        o->bundle = arg;
        break;
    case OPT_STATE_DIR:
        o->state_dir = arg;
        break;
    case OPT_RUN_DIR:
        o->run_dir = arg;
        break;
    case OPT_LOG_PATH:
        o->log_path = arg;
        break;
    case OPT_LOG_MAX_SIZE:
        r = parse_u64(name, arg, &o->log_max_size, err);
        break;
    case OPT_LOG_MAX_FILES:
        if ((r = parse_u64(name, arg, &v, err)) == 0 && v > 1000)
            r = ks_error_msg(err, "--log-max-files: at most 1000");
        o->log_max_files = (unsigned)v;
        break;
    case OPT_TERMINAL:
        o->terminal = true;
        break;
    case OPT_STDIN:
        o->stdin_open = true;
        break;
    case OPT_STDIN_ONCE:
        o->stdin_once = true;
        break;
    case OPT_ATTACH_FD:
        r = parse_fd(name, arg, &o->attach_fd, err);
        break;
    case OPT_SYNC_FD:
        r = parse_fd(name, arg, &o->sync_fd, err);
        break;
    case OPT_RESTART:
        r = mon_restart_parse(arg, &o->restart, err);
        break;
    case OPT_ROOTFS_MOUNT:
        o->rootfs_mount = arg;
        break;
    case OPT_HEALTH_CMD: {
        char **v0 = NULL;
        ks_strv_free(o->health_cmd);
        o->health_cmd = NULL;
        if ((r = mon_json_parse_strv(arg, &v0, err)) == 0)
            r = health_argv(v0, &o->health_cmd, err);
        if (r < 0)
            ks_error_wrap(err, "--health-cmd");
        break;
    }
    case OPT_HEALTH_INTERVAL:
    case OPT_HEALTH_TIMEOUT:
    case OPT_HEALTH_START_PERIOD:
        if ((r = parse_u64(name, arg, &v, err)) == 0 && v > INT64_MAX / 2)
            r = ks_error_msg(err, "--%s: too large", name);
        *(c == OPT_HEALTH_INTERVAL  ? &o->health_interval
          : c == OPT_HEALTH_TIMEOUT ? &o->health_timeout
                                    : &o->health_start_period) = (int64_t)v;
        break;
    case OPT_HEALTH_RETRIES:
        if ((r = parse_u64(name, arg, &v, err)) == 0 && v > 1000000)
            r = ks_error_msg(err, "--health-retries: too large");
        o->health_retries = (unsigned)v;
        break;
    case OPT_DNS_NETNS:
        o->dns_netns = arg;
        break;
    case OPT_DNS_NETWORKS:
        o->dns_networks = arg;
        break;
    case OPT_CLEANUP_DELETES:
        o->cleanup_deletes = true;
        break;
    case OPT_DNS_UPSTREAM:
        if (ks_dns_server_parse(arg, NULL, NULL) < 0)
            r = ks_error_msg(err, "--dns-upstream: invalid server `%s`", arg);
        else if (o->n_dns_upstreams >= MON_DNS_UPSTREAMS_MAX)
            r = ks_error_msg(err, "--dns-upstream: at most %d servers", MON_DNS_UPSTREAMS_MAX);
        else
            o->dns_upstreams[o->n_dns_upstreams++] = arg;
        break;
    default:
        r = ks_error_msg(err, "invalid option");
    }
    return r;
}

static int parse_args(int argc, char **argv, struct mon_opts *o, struct ks_error **err)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, OPT_ID},
        {"runtime", required_argument, NULL, OPT_RUNTIME},
        {"runtime-root", required_argument, NULL, OPT_RUNTIME_ROOT},
        {"bundle", required_argument, NULL, OPT_BUNDLE},
        {"state-dir", required_argument, NULL, OPT_STATE_DIR},
        {"run-dir", required_argument, NULL, OPT_RUN_DIR},
        {"log-path", required_argument, NULL, OPT_LOG_PATH},
        {"log-max-size", required_argument, NULL, OPT_LOG_MAX_SIZE},
        {"log-max-files", required_argument, NULL, OPT_LOG_MAX_FILES},
        {"terminal", no_argument, NULL, OPT_TERMINAL},
        {"stdin", no_argument, NULL, OPT_STDIN},
        {"stdin-once", no_argument, NULL, OPT_STDIN_ONCE},
        {"attach-fd", required_argument, NULL, OPT_ATTACH_FD},
        {"sync-fd", required_argument, NULL, OPT_SYNC_FD},
        {"restart", required_argument, NULL, OPT_RESTART},
        {"rootfs-mount", required_argument, NULL, OPT_ROOTFS_MOUNT},
        {"health-cmd", required_argument, NULL, OPT_HEALTH_CMD},
        {"health-interval", required_argument, NULL, OPT_HEALTH_INTERVAL},
        {"health-timeout", required_argument, NULL, OPT_HEALTH_TIMEOUT},
        {"health-retries", required_argument, NULL, OPT_HEALTH_RETRIES},
        {"health-start-period", required_argument, NULL, OPT_HEALTH_START_PERIOD},
        {"dns-netns", required_argument, NULL, OPT_DNS_NETNS},
        {"dns-networks", required_argument, NULL, OPT_DNS_NETWORKS},
        {"dns-upstream", required_argument, NULL, OPT_DNS_UPSTREAM},
        {"cleanup-deletes", no_argument, NULL, OPT_CLEANUP_DELETES},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    *o = (struct mon_opts){.attach_fd = -EBADF, .sync_fd = -EBADF, .log_max_files = 1};
    int c, idx;
    opterr = 0;
    /* '+': stop at "--", which begins the cleanup command. */
    while ((c = getopt_long(argc, argv, "+", opts, &idx)) != -1) {
        if (c == OPT_HELP) {
            usage(stdout);
            exit(0);
        }
        if (c == '?' || c == ':')
            return ks_error_msg(err, "invalid option or missing value: `%s`", argv[optind - 1]);
        int r = parse_one(o, c, opts[idx].name, optarg, err);
        if (r < 0)
            return r;
    }
    if (optind < argc)
        o->cleanup_argv = argv + optind;
    if (o->cleanup_deletes && (o->cleanup_argv == NULL || o->restart.kind != MON_RESTART_NO))
        return ks_error_msg(err, "--cleanup-deletes needs a cleanup command and no restart policy");
    if (!o->id || !o->runtime || !o->runtime_root || !o->bundle || !o->state_dir || !o->run_dir)
        return ks_error_msg(err, "--id, --runtime, --runtime-root, --bundle, --state-dir and "
                                 "--run-dir are required");
    if (strchr(o->id, '/') || strcmp(o->id, ".") == 0 || strcmp(o->id, "..") == 0)
        return ks_error_msg(err, "--id: invalid container id `%s`", o->id);
    if (!o->dns_netns != !o->dns_networks)
        return ks_error_msg(err, "--dns-netns and --dns-networks go together");
    /* Docker's defaults for the values a health check leaves at 0. */
    if (o->health_interval == 0)
        o->health_interval = 30 * 1000000000LL;
    if (o->health_timeout == 0)
        o->health_timeout = 30 * 1000000000LL;
    if (o->health_retries == 0)
        o->health_retries = 3;
    return 0;
}

/* Whatever the caller left open, other than the fds named on the command line, is closed: a
 * pipe of the calling shell held here would never see its end. */
static void close_other_fds(const struct mon_opts *o)
{
    int keep[2] = {o->sync_fd, o->attach_fd};
    if (keep[0] > keep[1]) {
        int t = keep[0];
        keep[0] = keep[1];
        keep[1] = t;
    }
    unsigned from = 3;
    for (int i = 0; i < 2; i++) {
        if (keep[i] < 0)
            continue;
        if ((unsigned)keep[i] > from)
            syscall(SYS_close_range, from, (unsigned)keep[i] - 1, 0);
        fcntl(keep[i], F_SETFD, FD_CLOEXEC);
        from = (unsigned)keep[i] + 1;
    }
    syscall(SYS_close_range, from, ~0U, 0);
}

static void stdio_to_devnull(void)
{
    int fd = open("/dev/null", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return;
    for (int i = 0; i < 3; i++)
        if (fd != i)
            dup2(fd, i);
    if (fd > 2)
        close(fd);
}

static void sync_reply_error(int fd, const char *msg, int code)
{
    if (fd < 0)
        return;
    struct mon_buf b = {0};
    mon_buf_puts(&b, "{\"error\":");
    mon_buf_json_str(&b, msg, strlen(msg));
    mon_buf_printf(&b, ",\"exit_code\":%d}\n", code);
    if (!b.oom)
        ks_write_all(fd, b.data, b.len);
    mon_buf_free(&b);
}

/* The monitor works in its run directory (see setup): paths given relative to the caller's
 * directory are made absolute first. The new strings live as long as the process. */
static int absolutize(struct mon_opts *o, struct ks_error **err)
{
    const char **paths[] = {&o->runtime_root, &o->bundle,       &o->state_dir, &o->run_dir,
                            &o->log_path,     &o->rootfs_mount, &o->dns_netns, &o->dns_networks};
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return ks_error_set(err, errno, "getcwd");
    for (size_t i = 0; i < KS_ELEMENTSOF(paths); i++) {
        char *abs;
        if (*paths[i] == NULL || (*paths[i])[0] == '/')
            continue;
        if (asprintf(&abs, "%s/%s", cwd, *paths[i]) < 0)
            return ks_error_set(err, ENOMEM, "path");
        *paths[i] = abs;
    }
    /* A runtime named without a slash is looked up in $PATH (posix_spawnp). */
    if (strchr(o->runtime, '/') && o->runtime[0] != '/') {
        char *abs;
        if (asprintf(&abs, "%s/%s", cwd, o->runtime) < 0)
            return ks_error_set(err, ENOMEM, "path");
        o->runtime = abs;
    }
    return 0;
}

static int setup(struct monitor *m, struct ks_error **err)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    m->sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (m->sig_fd < 0)
        return ks_error_set(err, errno, "signalfd");
    /* The container's init is reparented to us when the runtime's create process exits. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        return ks_error_set(err, errno, "PR_SET_CHILD_SUBREAPER");
    m->devnull = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (m->devnull < 0)
        return ks_error_set(err, errno, "open /dev/null");
    int r = absolutize(&m->o, err);
    if (r < 0)
        return r;
    r = ks_mkdir_p(m->o.run_dir, 0700, err);
    if (r < 0)
        return r;
    if ((r = ks_mkdir_p(m->o.state_dir, 0700, err)) < 0)
        return r;
    /* Our sockets are bound by names relative to the run directory, which may be longer than
     * a socket address holds. */
    if (chdir(m->o.run_dir) < 0)
        return ks_error_set(err, errno, "chdir `%s`", m->o.run_dir);
    m->in_run_dir = true;
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return ks_error_set(err, errno, "getcwd");
    snprintf(m->pid_file, sizeof(m->pid_file), "%s/pid", cwd);
    m->state_dir_fd = open(m->o.state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (m->state_dir_fd < 0)
        return ks_error_set(err, errno, "open `%s`", m->o.state_dir);
    /* A marker left from an earlier run would keep this one from restarting; a policy update
     * left for an earlier run is in the command line now. */
    unlink("stopping");
    unlink("restart-policy");
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if ((r = ks_write_file_replace(AT_FDCWD, "monitor.pid", pid, (size_t)n, 0644, err)) < 0)
        return r;
    if (m->o.log_path && (r = mon_logfile_open(&m->log, m->o.log_path, m->o.log_max_size,
                                               m->o.log_max_files, err)) < 0)
        return r;
    if ((r = mon_attach_listen(m, err)) < 0)
        return r;
    if (m->o.dns_netns && (r = mon_resolver_open(m, err)) < 0)
        return ks_error_wrap(err, "the embedded DNS resolver");
    if (m->o.attach_fd >= 0) {
        fcntl(m->o.attach_fd, F_SETFL, fcntl(m->o.attach_fd, F_GETFL) | O_NONBLOCK);
        mon_attach_add(m, m->o.attach_fd);
        m->clients[0].stdin_client = true;
    }
    return 0;
}

static void exec_cleanup(struct monitor *m)
{
    if (m->o.cleanup_argv == NULL || m->cleanup_taken)
        exit(0);
    if (chdir("/") < 0)
        exit(1);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    execvp(m->o.cleanup_argv[0], m->o.cleanup_argv);
    exit(127);
}

int main(int argc, char **argv)
{
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    /* Zero-initialised, so in .bss: its large buffers cost memory only once touched. */
    static struct monitor mon;
    struct monitor *m = &mon;
    int *fds[] = {
        &m->devnull,    &m->state_dir_fd,    &m->oom_fd,       &m->out_fd, &m->err_fd,
        &m->in_fd,      &m->listen_fd,       &m->log.fd,       &m->sig_fd, &m->restart_timer_fd,
        &m->inotify_fd, &m->health_timer_fd, &m->health_out_fd};
    for (size_t i = 0; i < KS_ELEMENTSOF(fds); i++)
        *fds[i] = -EBADF;
    _cleanup_error_ struct ks_error *err = NULL;
    if (parse_args(argc, argv, &m->o, &err) < 0) {
        fprintf(stderr, "kiste-monitor: %s\n", err->msg);
        sync_reply_error(m->o.sync_fd, err->msg, 125);
        return 125;
    }
    close_other_fds(&m->o);
    stdio_to_devnull();
    setsid();
    memcpy(m->finished_at, "0001-01-01T00:00:00Z", sizeof("0001-01-01T00:00:00Z"));
    memcpy(m->started_at, m->finished_at, sizeof(m->started_at));
    if (setup(m, &err) < 0) {
        sync_reply_error(m->o.sync_fd, err->msg, 125);
        mon_final_cleanup(m);
        return 125;
    }
    int code = 125;
    if (mon_container_start(m, &code, &err) < 0) {
        snprintf(m->error, sizeof(m->error), "%s", err->msg);
        m->exit_code = code;
        m->status = MON_STATUS_EXITED;
        mon_state_write(m);
        sync_reply_error(m->o.sync_fd, err->msg, code);
        mon_final_cleanup(m);
        return code;
    }
    if (m->o.sync_fd >= 0) {
        char reply[64];
        int n = snprintf(reply, sizeof(reply), "{\"pid\":%d}\n", (int)m->init_pid);
        ks_write_all(m->o.sync_fd, reply, (size_t)n);
        close(m->o.sync_fd);
        m->o.sync_fd = -EBADF;
    }
    mon_loop(m);
    mon_resolver_close(m);
    mon_final_cleanup(m);
    exec_cleanup(m);
    return 0;
}
