/* The container commands that act on existing containers: stop, kill, rm, wait, pause,
 * unpause, rename, logs, exec, top, port, inspect, `container prune` and the `kiste container …`
 * group. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "container.h"
#include "format.h"
#include "image.h"
#include "lib/base/fs.h"
#include "lib/base/json.h"
#include "lib/image/store.h"
#include "lib/oci/caps.h"
#include "lib/oci/container.h"
#include "lib/volume/volume.h"
#include "logs.h"

/* --- stop, kill, pause, unpause, wait, rm --- */

static int do_stop(struct ks_engine *e, const char *id, void *userdata, struct ks_error **err)
{
    return ks_engine_stop(e, id, *(int *)userdata, err);
}

int ks_cli_stop(int argc, char **argv)
{
    static const struct option opts[] = {
        {"time", required_argument, NULL, 't'},
        {"timeout", required_argument, NULL, 't'},
        {"signal", required_argument, NULL, 's'},
        {0},
    };
    int timeout = -1, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+t:s:", opts, NULL)) != -1) {
        if (c == 't')
            timeout = atoi(optarg);
        else if (c != 's')
            return 1;
    }
    if (ks_cli_nargs("stop", argc - optind, 1, -1, true))
        return 1;
    return ks_cli_for_each(argc, argv, optind, do_stop, &timeout, true);
}

static int do_kill(struct ks_engine *e, const char *id, void *userdata, struct ks_error **err)
{
    return ks_engine_kill(e, id, *(int *)userdata, false, err);
}

int ks_cli_kill(int argc, char **argv)
{
    static const struct option opts[] = {{"signal", required_argument, NULL, 's'}, {0}};
    int sig = SIGKILL, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+s:", opts, NULL)) != -1) {
        if (c != 's')
            return 1;
        if (ks_signal_parse(optarg, &sig) < 0) {
            fprintf(stderr, "Error: invalid signal: %s\n", optarg);
            return 1;
        }
    }
    if (ks_cli_nargs("kill", argc - optind, 1, -1, true))
        return 1;
    return ks_cli_for_each(argc, argv, optind, do_kill, &sig, true);
}

static int do_pause(struct ks_engine *e, const char *id, void *userdata, struct ks_error **err)
{
    return ks_engine_pause(e, id, *(bool *)userdata, err);
}

static int pause_cmd(int argc, char **argv, bool pause)
{
    optind = 1;
    if (getopt_long(argc, argv, "+", (const struct option[]){{0}}, NULL) != -1)
        return 1;
    if (ks_cli_nargs(argv[0], argc - optind, 1, -1, true))
        return 1;
    return ks_cli_for_each(argc, argv, optind, do_pause, &pause, true);
}

int ks_cli_pause(int argc, char **argv)
{
    return pause_cmd(argc, argv, true);
}

int ks_cli_unpause(int argc, char **argv)
{
    return pause_cmd(argc, argv, false);
}

static bool container_gone(struct ks_engine *e, const char *id)
{
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    struct ks_error *err = NULL;
    int r = ks_engine_lookup(e, id, &c, NULL, &err);
    ks_error_free(err);
    return r == -ENOENT;
}

static void sleep_50ms(void)
{
    struct timespec ts = {0, 50000000L};
    nanosleep(&ts, NULL);
}

/* Docker's wait conditions: "not-running" (the default; a container not started yet is waited
 * for through its run), "next-exit" (the end of the run after the current state: a container
 * not running is waited for through its next start) and "removed" (the end of its run, then its
 * removal). */
static int do_wait(struct ks_engine *e, const char *id, void *userdata, struct ks_error **err)
{
    const char *cond = userdata;
    bool next_exit = strcmp(cond, "next-exit") == 0, removed = strcmp(cond, "removed") == 0;
    char started[48] = "";
    for (bool first = true;; first = false) {
        struct ks_container_state st;
        if (removed && container_gone(e, id)) {
            printf("0\n");
            return 0;
        }
        int r = ks_engine_state_get(e, id, &st, err);
        if (r < 0)
            return r;
        ks_engine_state_clear(&st);
        if (first)
            snprintf(started, sizeof(started), "%s", st.started_at);
        if (next_exit ? ks_engine_status_active(st.status) || strcmp(started, st.started_at) != 0
                      : st.status != KS_CONTAINER_CREATED)
            break;
        sleep_50ms();
    }
    int code = ks_engine_wait(e, id, -1, err);
    if (code < 0 && removed && container_gone(e, id)) {
        ks_error_free(TAKE_PTR(*err));
        code = 0;
    }
    if (code < 0)
        return code;
    while (removed && !container_gone(e, id)) {
        struct ks_container_state st;
        if (ks_engine_state_get(e, id, &st, NULL) == 0) {
            if (st.status == KS_CONTAINER_EXITED)
                code = st.exit_code;
            ks_engine_state_clear(&st);
        }
        sleep_50ms();
    }
    printf("%d\n", code);
    fflush(stdout);
    return code;
}

int ks_cli_wait(int argc, char **argv)
{
    static const struct option opts[] = {{"condition", required_argument, NULL, 'c'}, {0}};
    const char *cond = "not-running";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        if (c != 'c')
            return 1;
        cond = optarg;
    }
    if (strcmp(cond, "not-running") != 0 && strcmp(cond, "next-exit") != 0 &&
        strcmp(cond, "removed") != 0) {
        fprintf(stderr,
                "Error: invalid condition \"%s\": must be one of \"not-running\", "
                "\"next-exit\" or \"removed\"\n",
                cond);
        return 1;
    }
    if (ks_cli_nargs("wait", argc - optind, 1, -1, true))
        return 1;
    return ks_cli_for_each(argc, argv, optind, do_wait, (void *)cond, false);
}

struct rm_opts {
    bool force, volumes;
};

/* With -v, the container's anonymous volumes go after it (named ones stay, as Docker's). */
static int do_rm(struct ks_engine *e, const char *id, void *userdata, struct ks_error **err)
{
    const struct rm_opts *o = userdata;
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    int r = o->volumes ? ks_engine_lookup(e, id, &c, NULL, err) : 0;
    if (r < 0)
        return r;
    r = ks_engine_remove(e, id, o->force, err);
    if (r < 0 || c == NULL)
        return r;
    return ks_engine_volumes_remove_anonymous(e, c->config, err);
}

int ks_cli_rm(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"volumes", no_argument, NULL, 'v'},
        {"link", no_argument, NULL, 'l'},
        {0},
    };
    struct rm_opts o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+fvl", opts, NULL)) != -1) {
        if (c == 'f')
            o.force = true;
        else if (c == 'v')
            o.volumes = true;
        else if (c != 'l')
            return 1;
    }
    if (ks_cli_nargs("rm", argc - optind, 1, -1, true))
        return 1;
    return ks_cli_for_each(argc, argv, optind, do_rm, &o, true);
}

int ks_cli_rename(int argc, char **argv)
{
    if (ks_cli_nargs("rename", argc - 1, 2, 2, false))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    if (ks_cli_open_container(argv[1], &e, &c, NULL, &err) < 0 ||
        ks_engine_rename(e, c->id, argv[2], &err) < 0)
        return ks_cli_fail(err, 1);
    return 0;
}

/* --- logs --- */

struct follow {
    struct ks_engine *e;
    const char *id;
};

static bool still_running(void *userdata)
{
    struct follow *f = userdata;
    struct ks_container_state st;
    if (ks_engine_state_get(f->e, f->id, &st, NULL) < 0)
        return false;
    ks_engine_state_clear(&st);
    return ks_engine_status_active(st.status);
}

int ks_cli_container_logs(int argc, char **argv)
{
    static const struct option opts[] = {
        {"follow", no_argument, NULL, 'f'},
        {"timestamps", no_argument, NULL, 't'},
        {"tail", required_argument, NULL, 'n'},
        {"since", required_argument, NULL, 'S'},
        {"until", required_argument, NULL, 'U'},
        {"details", no_argument, NULL, 'D'},
        {0},
    };
    struct ks_logs_opts lo = {.tail = -1};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    struct ks_error *err = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+ftn:", opts, NULL)) != -1) {
        if (c == 'f')
            lo.follow = true;
        else if (c == 't')
            lo.timestamps = true;
        else if (c == 'n') {
            /* As Docker: "all" or a number, a negative one meaning all; anything else fails
             * rather than reading as 0. */
            char *end;
            errno = 0;
            long n = strtol(optarg, &end, 10);
            if (strcmp(optarg, "all") == 0) {
                n = -1;
            } else if (errno || end == optarg || *end) {
                fprintf(stderr, "Error: invalid value for \"tail\": \"%s\"\n", optarg);
                return 1;
            }
            lo.tail = n < 0 ? -1 : n;
        } else if (c == 'S' || c == 'U') {
            if (ks_cli_parse_time_arg(optarg, now_ns, c == 'S' ? &lo.since_ns : &lo.until_ns,
                                      &err) < 0)
                return ks_cli_fail(err, 1);
        } else if (c != 'D')
            return 1;
    }
    if (ks_cli_nargs("logs", argc - optind, 1, 1, false))
        return 1;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    _cleanup_json_ json_object *config = NULL;
    if (ks_cli_open_container(argv[optind], &e, &ct, &config, &err) < 0)
        return ks_cli_fail(err, 1);
    const char *type =
        ks_json_str(ks_json_get(ks_json_get(config, "HostConfig"), "LogConfig"), "Type");
    if (type && strcmp(type, "none") == 0) {
        fprintf(stderr, "Error: configured logging driver does not support reading\n");
        return 1;
    }
    lo.tty = ks_json_bool(ks_json_get(config, "Config"), "Tty", false);
    _cleanup_free_ char *path = ks_container_log_path(e, ct->id);
    struct follow f = {.e = e, .id = ct->id};
    fflush(stdout);
    if (ks_cli_logs(path, &lo, still_running, &f, &err) < 0)
        return ks_cli_fail(err, 1);
    return 0;
}

/* --- exec --- */

static bool env_key_eq(const char *a, const char *b)
{
    size_t la = strcspn(a, "="), lb = strcspn(b, "=");
    return la == lb && strncmp(a, b, la) == 0;
}

/* The -e values replacing or joining the container's. */
static void exec_env(json_object *process, char **envs, size_t n)
{
    json_object *env = ks_json_get_type(process, "env", json_type_array);
    if (env == NULL) {
        env = json_object_new_array();
        json_object_object_add(process, "env", env);
    }
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (size_t j = 0; j < json_object_array_length(env) && !replaced; j++) {
            const char *cur = json_object_get_string(json_object_array_get_idx(env, j));
            if (cur && env_key_eq(cur, envs[i])) {
                json_object_array_put_idx(env, j, json_object_new_string(envs[i]));
                replaced = true;
            }
        }
        if (!replaced)
            json_object_array_add(env, json_object_new_string(envs[i]));
    }
}

struct exec_opts {
    bool detach, interactive, tty, privileged;
    const char *user, *workdir;
    json_object *env; /* {"Env": [...]}: --env-file's lines, then -e's values, in order */
};

static int exec_user(json_object *process, int rootfd, const char *user, struct ks_error **err)
{
    uid_t uid;
    gid_t gid;
    _cleanup_free_ gid_t *gids = NULL;
    _cleanup_free_ char *home = NULL;
    size_t n = 0;
    int r = ks_container_resolve_user(rootfd, user, &uid, &gid, &gids, &n, &home, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *kv = NULL;
    if (asprintf(&kv, "HOME=%s", home) >= 0)
        exec_env(process, &kv, 1);
    ks_process_set_user(process, uid, gid, gids, n);
    return 0;
}

/* Docker's 127 and 126 before the runtime runs: the command is looked up in the container's
 * root file system along the process's PATH (resolved inside the root, never by plain path
 * concatenation). ENOENT and EACCES carry the exit statuses. */
static int exec_find(int rootfd, json_object *process, const char *cmd, struct ks_error **err)
{
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    json_object *env = ks_json_get_type(process, "env", json_type_array);
    for (size_t i = 0; env && i < json_object_array_length(env); i++) {
        const char *kv = json_object_get_string(json_object_array_get_idx(env, i));
        if (kv && strncmp(kv, "PATH=", 5) == 0)
            path = kv + 5;
    }
    _cleanup_free_ char *dirs = strdup(strchr(cmd, '/') ? "" : path);
    bool denied = false;
    for (char *save = NULL, *p = dirs, *d = NULL; dirs; p = NULL) {
        _cleanup_free_ char *full = NULL;
        if (strchr(cmd, '/')) {
            full = strdup(cmd);
        } else {
            d = strtok_r(p, ":", &save);
            if (d == NULL)
                break;
            if (asprintf(&full, "%s/%s", d, cmd) < 0)
                full = NULL;
        }
        if (full == NULL)
            break;
        int fd = ks_open_in_root(rootfd, full, O_PATH | O_CLOEXEC, 0, NULL);
        if (fd >= 0) {
            struct stat st;
            bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
            close(fd);
            if (ok)
                return 0;
            denied = true;
        }
        if (strchr(cmd, '/'))
            break;
    }
    if (denied)
        return ks_error_set_plain(err, EACCES,
                                  "OCI runtime exec failed: exec: \"%s\": permission denied", cmd);
    return ks_error_set_plain(err, ENOENT,
                              "OCI runtime exec failed: exec: \"%s\": executable file not found "
                              "in $PATH",
                              cmd);
}

/* The process.json of an exec: the container's process with the command and options. */
static int exec_process(const char *bundle, const struct exec_opts *o, char **args,
                        json_object **ret, struct ks_error **err)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/config.json", bundle) < 0)
        return ks_error_set(err, ENOMEM, "exec");
    _cleanup_json_ json_object *spec = NULL;
    int r = ks_json_parse_file(path, &spec, err);
    if (r < 0)
        return r;
    json_object *base = ks_json_get_type(spec, "process", json_type_object);
    if (base == NULL)
        return ks_error_msg(err, "the container's config has no process");
    _cleanup_json_ json_object *p = NULL;
    if (json_object_deep_copy(base, &p, NULL) < 0)
        return ks_error_set(err, ENOMEM, "exec");
    json_object *a = json_object_new_array();
    for (size_t i = 0; args[i]; i++)
        json_object_array_add(a, json_object_new_string(args[i]));
    json_object_object_add(p, "args", a);
    json_object_object_add(p, "terminal", json_object_new_boolean(o->tty));
    json_object_object_del(p, "consoleSize");
    if (o->workdir)
        json_object_object_add(p, "cwd", json_object_new_string(o->workdir));
    json_object *extra = ks_json_get_type(o->env, "Env", json_type_array);
    for (size_t i = 0; extra && i < json_object_array_length(extra); i++) {
        char *kv = (char *)json_object_get_string(json_object_array_get_idx(extra, i));
        exec_env(p, &kv, 1);
    }
    if (o->tty) {
        char *t = "TERM=xterm";
        exec_env(p, &t, 1);
    }
    const char *rootfs = ks_json_str(ks_json_get(spec, "root"), "path");
    _cleanup_close_ int rootfd = rootfs ? open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    if (rootfd < 0)
        return ks_error_set(err, errno, "open the container's root file system");
    if (o->user && *o->user) {
        r = exec_user(p, rootfd, o->user, err);
        if (r < 0) {
            if (err && *err)
                (*err)->errnum = EINVAL; /* 126, not the 127 of a missing command */
            return r;
        }
    }
    r = exec_find(rootfd, p, args[0], err);
    if (r < 0)
        return r;
    if (o->privileged) {
        /* Every capability we hold, as with run --privileged: one outside our own bounding set
         * cannot be granted and would fail the exec. */
        json_object *all = ks_caps_all_json(), *held = json_object_new_array();
        for (size_t i = 0; all && i < json_object_array_length(all); i++) {
            json_object *name = json_object_array_get_idx(all, i);
            int cap = ks_caps_from_name(json_object_get_string(name));
            if (cap >= 0 && prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0) == 1)
                json_object_array_add(held, json_object_get(name));
        }
        json_object_put(all);
        json_object *cs = json_object_new_object();
        for (const char *const *s =
                 (const char *const[]){"bounding", "effective", "permitted", NULL};
             *s; s++)
            json_object_object_add(cs, *s, json_object_get(held));
        json_object_put(held);
        json_object_object_add(p, "capabilities", cs);
    }
    *ret = TAKE_PTR(p);
    return 0;
}

/* exec -d -t: the process's terminal needs a holder that outlives this command, as Docker's
 * daemon is one. A session of its own runs the runtime in the foreground, which holds the
 * terminal (its output going nowhere) and removes the process file when the process ends. This
 * command returns once the runtime wrote the process's pid file, as Docker's returns once the
 * process started. */
static int exec_held(char **argv, const char *file, const char *pidfile)
{
    pid_t pid = fork();
    if (pid < 0)
        return 126;
    if (pid == 0) {
        setsid();
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
        pid_t rt = fork();
        if (rt == 0) {
            execv(argv[0], argv);
            _exit(127);
        }
        while (rt > 0 && waitpid(rt, NULL, 0) < 0 && errno == EINTR)
            ;
        unlink(file);
        _exit(0);
    }
    for (int i = 0; i < 3000; i++) {
        struct stat st;
        bool gone = waitpid(pid, NULL, WNOHANG) == pid;
        if (stat(pidfile, &st) == 0 && st.st_size > 0) {
            unlink(pidfile);
            return 0;
        }
        if (gone)
            break;
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    unlink(pidfile);
    fprintf(stderr, "Error: exec failed: the process did not start\n");
    return 126;
}

static int run_exec(struct ks_engine *e, const char *id, const struct exec_opts *o, char **args)
{
    struct ks_error *err = NULL;
    struct ks_container_state st;
    if (ks_engine_state_get(e, id, &st, &err) < 0)
        return ks_cli_fail(err, 1);
    ks_engine_state_clear(&st);
    if (st.status == KS_CONTAINER_PAUSED) {
        fprintf(stderr, "Error: Container %s is paused, unpause the container before exec\n", id);
        return 1;
    }
    if (st.status != KS_CONTAINER_RUNNING) {
        fprintf(stderr, "Error: Container %s is not running\n", id);
        return 1;
    }
    _cleanup_free_ char *run = ks_container_run_dir(e, id), *bundle = NULL, *file = NULL,
                        *runtime = NULL;
    unsigned rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        rnd = (unsigned)getpid();
    if (run == NULL || asprintf(&bundle, "%s/bundle", run) < 0 ||
        asprintf(&file, "%s/exec-%08x.json", run, rnd) < 0)
        return 125;
    _cleanup_json_ json_object *p = NULL;
    if (exec_process(bundle, o, args, &p, &err) < 0)
        return ks_cli_fail(err, err->errnum == ENOENT ? 127 : 126);
    if (ks_engine_find_binary("kiste-runtime", "KISTE_RUNTIME", &runtime, &err) < 0)
        return ks_cli_fail(err, 126);
    const char *text = ks_json_plain(p);
    _cleanup_close_ int dfd = open(run, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 ||
        ks_write_file_replace(dfd, strrchr(file, '/') + 1, text, strlen(text), 0600, &err) < 0)
        return ks_cli_fail(err, 126);
    _cleanup_free_ char *pidfile = NULL;
    bool held = o->detach && o->tty;
    if (held && asprintf(&pidfile, "%s/exec-%08x.pid", run, rnd) < 0)
        return 125;
    char *argv[10] = {runtime, "--root", e->runtime_root, "exec", "--process", file};
    size_t k = 6;
    if (held) {
        argv[k++] = "--pid-file";
        argv[k++] = pidfile;
    } else if (o->detach) {
        argv[k++] = "--detach";
    }
    argv[k++] = (char *)id;
    fflush(stdout);
    if (held)
        return exec_held(argv, file, pidfile);
    pid_t pid = fork();
    if (pid == 0) {
        if (!o->interactive) {
            int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (null >= 0)
                dup2(null, 0);
        }
        execv(runtime, argv);
        _exit(127);
    }
    int status = 0;
    /* The runtime forwards signals to the process; we only wait. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    unlink(file);
    if (pid < 0)
        return 126;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int ks_cli_exec(int argc, char **argv)
{
    static const struct option opts[] = {
        {"detach", no_argument, NULL, 'd'},
        {"interactive", no_argument, NULL, 'i'},
        {"tty", no_argument, NULL, 't'},
        {"user", required_argument, NULL, 'u'},
        {"workdir", required_argument, NULL, 'w'},
        {"env", required_argument, NULL, 'e'},
        {"env-file", required_argument, NULL, 'E'},
        {"privileged", no_argument, NULL, 'P'},
        {"detach-keys", required_argument, NULL, 'k'},
        {0},
    };
    _cleanup_json_ json_object *env = json_object_new_object();
    struct exec_opts o = {.env = env};
    char keys[64];
    size_t keys_len = sizeof(keys);
    struct ks_error *err = NULL;
    int c, r;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+ditu:w:e:", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o.detach = true;
            break;
        case 'i':
            o.interactive = true;
            break;
        case 't':
            o.tty = true;
            break;
        case 'u':
            o.user = optarg;
            break;
        case 'w':
            o.workdir = optarg;
            break;
        case 'e':
        case 'E':
            if ((r = ks_cli_add_env("exec", env, optarg, c == 'E' ? optarg : NULL)))
                return r;
            break;
        case 'P':
            o.privileged = true;
            break;
        case 'k':
            /* Checked as Docker does; detaching from an exec is not available, the keys
             * only matter with a terminal and there they are passed through. */
            if (ks_cli_parse_detach_keys(optarg, keys, &keys_len, &err) < 0)
                return ks_cli_fail(err, 125);
            break;
        default:
            return 125;
        }
    }
    if (ks_cli_nargs("exec", argc - optind, 2, -1, true))
        return 125;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    if (ks_cli_open_container(argv[optind], &e, &ct, NULL, &err) < 0)
        return ks_cli_fail(err, 1);
    return run_exec(e, ct->id, &o, argv + optind + 1);
}

/* --- top, port --- */

static bool pid_in(pid_t pid, const pid_t *pids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (pids[i] == pid)
            return true;
    return false;
}

int ks_cli_top(int argc, char **argv)
{
    if (ks_cli_nargs("top", argc - 1, 1, -1, false))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    if (ks_cli_open_container(argv[1], &e, &ct, NULL, &err) < 0)
        return ks_cli_fail(err, 1);
    _cleanup_free_ pid_t *pids = NULL;
    size_t n = 0;
    if (ks_container_pids(e->runtime_root, ct->id, &pids, &n, &err) < 0) {
        ks_error_free(err);
        fprintf(stderr, "Error: Container %s is not running\n", ct->id);
        return 1;
    }
    /* ps options as Docker passes them, only simple words. */
    char cmd[4096] = "ps";
    for (int i = 2; i < argc; i++) {
        for (const char *p = argv[i]; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == ',' || *p == '='))
                return ks_cli_fail(ks_error_new(EINVAL, "invalid ps option"), 1);
        strncat(cmd, " ", sizeof(cmd) - strlen(cmd) - 1);
        strncat(cmd, argv[i], sizeof(cmd) - strlen(cmd) - 1);
    }
    if (argc == 2)
        strncat(cmd, " -ef", sizeof(cmd) - strlen(cmd) - 1);
    /* As Docker: the container's processes are selected with -q, so that options that select
     * nothing by themselves ("-o pid,comm") still show them; the PID column filters below. */
    for (size_t i = 0; i < n && i < 256; i++) {
        char num[24];
        snprintf(num, sizeof(num), "%s%d", i == 0 ? " -q " : ",", (int)pids[i]);
        strncat(cmd, num, sizeof(cmd) - strlen(cmd) - 1);
    }
    FILE *f = popen(cmd, "re");
    if (f == NULL)
        return 1;
    char line[4096];
    int pid_col = -1, header_cols = 0;
    struct ks_table t = {0};
    for (bool header = true; fgets(line, sizeof(line), f); header = false) {
        line[strcspn(line, "\n")] = '\0';
        char copy[4096], *cols[64];
        snprintf(copy, sizeof(copy), "%s", line);
        int nc = 0;
        for (char *save = NULL, *p = copy, *tok; nc < 64 && (tok = strtok_r(p, " \t", &save));
             p = NULL)
            cols[nc++] = tok;
        if (header) {
            header_cols = nc;
            for (int i = 0; i < nc; i++)
                if (strcmp(cols[i], "PID") == 0)
                    pid_col = i;
        } else if (pid_col < 0 || pid_col >= nc || !pid_in(atoi(cols[pid_col]), pids, n)) {
            continue;
        }
        /* The last column (the command) may hold spaces: keep it whole. */
        char row[4096] = "";
        int last = header_cols < nc ? header_cols : nc;
        const char *tail = line;
        for (int i = 0; i < last - 1 && tail; i++) {
            tail += strspn(tail, " \t");
            tail += strcspn(tail, " \t");
        }
        if (tail)
            tail += strspn(tail, " \t");
        for (int i = 0; i < last - 1; i++) {
            strncat(row, cols[i], sizeof(row) - strlen(row) - 1);
            strncat(row, "\t", sizeof(row) - strlen(row) - 1);
        }
        strncat(row, tail ? tail : "", sizeof(row) - strlen(row) - 1);
        ks_table_add_line(&t, row);
    }
    pclose(f);
    ks_table_print(stdout, &t);
    ks_table_free(&t);
    return 0;
}

int ks_cli_port(int argc, char **argv)
{
    if (ks_cli_nargs("port", argc - 1, 1, -1, false))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    if (ks_cli_open_container(argv[1], &e, &ct, NULL, &err) < 0)
        return ks_cli_fail(err, 1);
    /* No published ports until networking exists. */
    if (argc > 2) {
        fprintf(stderr, "Error: No public port '%s' published for %s\n", argv[2], argv[1]);
        return 1;
    }
    return 0;
}

/* --- inspect --- */

static int inspect_one(struct ks_engine *e, const char *name, const char *type, json_object **ret,
                       struct ks_error **err)
{
    if (type == NULL || strcmp(type, "container") == 0) {
        _cleanup_db_container_ struct ks_db_container *c = NULL;
        _cleanup_json_ json_object *config = NULL;
        struct ks_error *e2 = NULL;
        int r = ks_engine_lookup(e, name, &c, &config, &e2);
        if (r == 0) {
            ks_error_free(e2);
            return ks_engine_inspect_json(e, c, config, ret, err);
        }
        if (r != -ENOENT || type) {
            *err = e2;
            return r;
        }
        ks_error_free(e2);
    }
    _cleanup_free_ char *id = NULL;
    struct ks_error *e3 = NULL;
    int r = ks_store_lookup(e->store, name, &id, &e3);
    ks_error_free(e3);
    if (r == 0)
        return ks_store_inspect_json(e->store, id, ret, err);
    if (type)
        return ks_error_set_plain(err, ENOENT, "No such %s: %s", type, name);
    return ks_error_set_plain(err, ENOENT, "No such object: %s", name);
}

int ks_cli_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"type", required_argument, NULL, 'T'},
        {"size", no_argument, NULL, 's'},
        {0},
    };
    const char *format = NULL, *type = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+f:s", opts, NULL)) != -1) {
        if (c == 'f')
            format = optarg;
        else if (c == 'T')
            type = optarg;
        else if (c != 's')
            return 1;
    }
    if (type && strcmp(type, "container") != 0 && strcmp(type, "image") != 0) {
        fprintf(stderr, "Error: \"%s\" is not a valid value for --type\n", type);
        return 1;
    }
    if (ks_cli_nargs(argv[0], argc - optind, 1, -1, true))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    _cleanup_json_ json_object *all = json_object_new_array();
    int status = 0;
    for (int i = optind; i < argc; i++) {
        json_object *o = NULL;
        if (inspect_one(e, argv[i], type && strcmp(type, "image") == 0 ? "image" : type, &o, &err) <
            0) {
            status = ks_cli_fail(TAKE_PTR(err), 1);
            continue;
        }
        if (format) {
            _cleanup_json_ json_object *row = o;
            if (ks_fmt_rows(format, NULL, &row, 1) < 0) {
                fprintf(stderr, "Error: template parsing error: %s\n", format);
                return 1;
            }
        } else {
            json_object_array_add(all, o);
        }
    }
    if (!format)
        printf("%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY |
                                                               JSON_C_TO_STRING_SPACED |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    return status;
}

/* --- prune and the group --- */

struct prune {
    struct ks_engine *e;
    char **ids;
    size_t n;
};

static int prune_cb(const struct ks_db_container *c, void *userdata)
{
    struct prune *p = userdata;
    struct ks_container_state st;
    if (ks_engine_state_get(p->e, c->id, &st, NULL) < 0)
        return 0;
    ks_engine_state_clear(&st);
    if (st.status != KS_CONTAINER_EXITED && st.status != KS_CONTAINER_CREATED &&
        st.status != KS_CONTAINER_DEAD)
        return 0;
    char **v = realloc(p->ids, (p->n + 2) * sizeof(char *));
    if (v == NULL)
        return -ENOMEM;
    p->ids = v;
    v[p->n++] = strdup(c->id);
    v[p->n] = NULL;
    return 0;
}

static int container_prune(int argc, char **argv)
{
    (void)argc, (void)argv; /* -f: there is no prompt to skip */
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    struct prune p = {.e = e};
    if (ks_db_containers_list(ks_store_db(e->store), prune_cb, &p, &err) < 0)
        return ks_cli_fail(err, 1);
    printf("Deleted Containers:\n");
    for (size_t i = 0; i < p.n; i++) {
        if (ks_engine_remove(e, p.ids[i], false, &err) < 0)
            ks_cli_fail(TAKE_PTR(err), 1);
        else
            printf("%s\n", p.ids[i]);
    }
    ks_strv_free(p.ids);
    printf("\nTotal reclaimed space: 0B\n");
    return 0;
}

int ks_cli_container(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } sub[] = {
        {"create", ks_cli_create},
        {"run", ks_cli_run},
        {"start", ks_cli_start},
        {"stop", ks_cli_stop},
        {"restart", ks_cli_restart},
        {"kill", ks_cli_kill},
        {"rm", ks_cli_rm},
        {"remove", ks_cli_rm},
        {"wait", ks_cli_wait},
        {"pause", ks_cli_pause},
        {"unpause", ks_cli_unpause},
        {"rename", ks_cli_rename},
        {"ls", ks_cli_ps},
        {"list", ks_cli_ps},
        {"ps", ks_cli_ps},
        {"inspect", ks_cli_inspect},
        {"logs", ks_cli_container_logs},
        {"exec", ks_cli_exec},
        {"attach", ks_cli_attach},
        {"top", ks_cli_top},
        {"port", ks_cli_port},
        {"prune", container_prune},
        {"stats", ks_cli_stats},
        {"update", ks_cli_update},
        {"diff", ks_cli_diff},
        {"export", ks_cli_export},
        {"cp", ks_cli_cp},
        {"commit", ks_cli_commit},
    };
    if (argc < 2) {
        fprintf(stderr, "Usage: kiste container COMMAND\n");
        return 1;
    }
    for (size_t i = 0; i < KS_ELEMENTSOF(sub); i++)
        if (strcmp(argv[1], sub[i].name) == 0)
            return sub[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiste container: unknown command `%s`\n", argv[1]);
    return 1;
}
