/* The runtime's commands other than run and exec. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "lib/base/json.h"
#include "lib/base/signal.h"
#include "lib/oci/container.h"
#include "lib/oci/spec.h"
#include "runtime.h"

static int report(int r, struct ks_error *e)
{
    if (r >= 0)
        return 0;
    rt_fail("%s", e ? e->msg : strerror(-r));
    ks_error_free(e);
    return 1;
}

static const char *one_id(int argc, char **argv, const char *cmd)
{
    if (optind != argc - 1) {
        rt_fail("%s: expected exactly one container id", cmd);
        return NULL;
    }
    return argv[optind];
}

int rt_parse_create_opts(int argc, char **argv, struct ks_create_opts *o, bool *detach, bool *keep)
{
    static const struct option opts[] = {
        {"bundle", required_argument, NULL, 'b'},
        {"console-socket", required_argument, NULL, 'c'},
        {"pid-file", required_argument, NULL, 'p'},
        {"no-pivot", no_argument, NULL, 'n'},
        {"no-new-keyring", no_argument, NULL, 'k'},
        {"preserve-fds", required_argument, NULL, 'f'},
        {"detach", no_argument, NULL, 'd'},
        {"keep", no_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct ks_create_opts){.bundle = ".", .console_fd = -EBADF};
    int c;
    while ((c = getopt_long(argc, argv, detach ? "b:d" : "b:", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->bundle = optarg;
            break;
        case 'c':
            o->console_socket = optarg;
            break;
        case 'p':
            o->pid_file = optarg;
            break;
        case 'n':
            o->no_pivot = true;
            break;
        case 'k':
            o->no_new_keyring = true;
            break;
        case 'f':
            o->preserve_fds = atoi(optarg);
            break;
        case 'd':
        case 'K':
            /* Only run has these. */
            if (detach == NULL)
                return rt_fail("create: unknown option `%s`", argv[optind - 1]);
            *(c == 'd' ? detach : keep) = true;
            break;
        default:
            return -1;
        }
    }
    if (optind != argc - 1)
        return rt_fail("%s: expected exactly one container id", argv[0]);
    o->id = argv[optind];
    return 0;
}

int rt_create(const struct rt_globals *g, int argc, char **argv)
{
    struct ks_create_opts o;
    if (rt_parse_create_opts(argc, argv, &o, NULL, NULL) != 0)
        return 1;
    struct ks_error *e = NULL;
    pid_t pid;
    int rr = ks_container_create(g->root, &o, &pid, &e);
    return report(rr, e);
}

int rt_start(const struct rt_globals *g, int argc, char **argv)
{
    optind = 1;
    const char *id = one_id(argc, argv, "start");
    if (id == NULL)
        return 1;
    struct ks_error *e = NULL;
    int rr = ks_container_start(g->root, id, &e);
    return report(rr, e);
}

int rt_state(const struct rt_globals *g, int argc, char **argv)
{
    optind = 1;
    const char *id = one_id(argc, argv, "state");
    if (id == NULL)
        return 1;
    struct ks_error *e = NULL;
    json_object *st = NULL;
    int r = ks_container_state(g->root, id, &st, &e);
    if (r < 0)
        return report(r, e);
    printf("%s\n", ks_json_pretty(st));
    json_object_put(st);
    return 0;
}

int rt_parse_signal(const char *s)
{
    int sig;
    return ks_signal_parse(s, &sig) < 0 ? -1 : sig;
}

int rt_kill(const struct rt_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, NULL, 'a'},
        {NULL, 0, NULL, 0},
    };
    bool all = false;
    int c;
    while ((c = getopt_long(argc, argv, "+a", opts, NULL)) != -1) {
        if (c == 'a')
            all = true;
        else
            return 1;
    }
    if (optind >= argc || argc - optind > 2)
        return rt_fail("kill: usage: kill [--all] ID [SIGNAL]");
    const char *id = argv[optind];
    int sig = SIGTERM;
    if (argc - optind == 2 && (sig = rt_parse_signal(argv[optind + 1])) < 0)
        return rt_fail("kill: unknown signal `%s`", argv[optind + 1]);
    struct ks_error *e = NULL;
    int rr = ks_container_kill(g->root, id, sig, all, &e);
    return report(rr, e);
}

int rt_delete(const struct rt_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    bool force = false;
    int c;
    while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        if (c == 'f')
            force = true;
        else
            return 1;
    }
    const char *id = one_id(argc, argv, "delete");
    if (id == NULL)
        return 1;
    struct ks_error *e = NULL;
    int r = ks_container_delete(g->root, id, force, &e);
    /* --force on a container that is already gone is not an error (runc's behaviour). */
    if (r < 0 && force && e && e->errnum == ENOENT) {
        ks_error_free(e);
        return 0;
    }
    return report(r, e);
}

static int pause_resume(const struct rt_globals *g, int argc, char **argv, bool pause)
{
    optind = 1;
    const char *id = one_id(argc, argv, pause ? "pause" : "resume");
    if (id == NULL)
        return 1;
    struct ks_error *e = NULL;
    int rr = ks_container_pause(g->root, id, pause, &e);
    return report(rr, e);
}

int rt_pause(const struct rt_globals *g, int argc, char **argv)
{
    return pause_resume(g, argc, argv, true);
}

int rt_resume(const struct rt_globals *g, int argc, char **argv)
{
    return pause_resume(g, argc, argv, false);
}

int rt_ps(const struct rt_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    const char *format = "table";
    int c;
    while ((c = getopt_long(argc, argv, "+f:", opts, NULL)) != -1) {
        if (c == 'f')
            format = optarg;
        else
            return 1;
    }
    if (optind >= argc)
        return rt_fail("ps: expected a container id");
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
        return rt_fail("ps: --format must be table or json");
    const char *id = argv[optind++];
    struct ks_error *e = NULL;
    pid_t *pids = NULL;
    size_t n = 0;
    int r = ks_container_pids(g->root, id, &pids, &n, &e);
    if (r < 0)
        return report(r, e);
    if (strcmp(format, "json") == 0) {
        printf("[");
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? "," : "", pids[i]);
        printf("]\n");
        free(pids);
        return 0;
    }
    /* The table is ps(1)'s own output, filtered to the container's processes; further
     * arguments are options for ps (default -ef). */
    int pfd[2];
    if (pipe(pfd) < 0) {
        free(pids);
        return rt_fail("ps: pipe: %s", strerror(errno));
    }
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        char **args = calloc((size_t)(argc - optind) + 3, sizeof(char *));
        size_t k = 0;
        args[k++] = "ps";
        if (optind >= argc)
            args[k++] = "-ef";
        for (int i = optind; i < argc; i++)
            args[k++] = argv[i];
        execvp("ps", args);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char *line = NULL;
    size_t cap = 0;
    int pid_col = -1;
    bool header = true;
    while (f && getline(&line, &cap, f) > 0) {
        if (header) {
            fputs(line, stdout);
            header = false;
            /* Find the PID column. */
            char *save = NULL, *copy = strdup(line);
            int col = 0;
            for (char *t = strtok_r(copy, " \t\n", &save); t;
                 t = strtok_r(NULL, " \t\n", &save), col++)
                if (strcmp(t, "PID") == 0)
                    pid_col = col;
            free(copy);
            continue;
        }
        char *save = NULL, *copy = strdup(line);
        int col = 0;
        pid_t p = -1;
        for (char *t = strtok_r(copy, " \t\n", &save); t; t = strtok_r(NULL, " \t\n", &save), col++)
            if (col == pid_col) {
                p = atoi(t);
                break;
            }
        free(copy);
        for (size_t i = 0; i < n; i++)
            if (pids[i] == p) {
                fputs(line, stdout);
                break;
            }
    }
    free(line);
    if (f)
        fclose(f);
    int status = 0;
    waitpid(child, &status, 0);
    free(pids);
    if (pid_col < 0)
        return rt_fail("ps: no PID column in the output of ps");
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int rt_list(const struct rt_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"format", required_argument, NULL, 'f'},
        {NULL, 0, NULL, 0},
    };
    bool quiet = false;
    const char *format = "table";
    int c;
    while ((c = getopt_long(argc, argv, "qf:", opts, NULL)) != -1) {
        if (c == 'q')
            quiet = true;
        else if (c == 'f')
            format = optarg;
        else
            return 1;
    }
    if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
        return rt_fail("list: --format must be table or json");
    struct ks_error *e = NULL;
    json_object *all = NULL;
    int r = ks_container_list(g->root, &all, &e);
    if (r < 0)
        return report(r, e);
    size_t n = json_object_array_length(all);
    if (quiet) {
        for (size_t i = 0; i < n; i++)
            printf("%s\n", ks_json_str(json_object_array_get_idx(all, i), "id"));
    } else if (strcmp(format, "json") == 0) {
        printf("%s\n", ks_json_plain(all));
    } else {
        printf("%-12s %-8s %-10s %-40s %-31s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED",
               "OWNER");
        for (size_t i = 0; i < n; i++) {
            json_object *s = json_object_array_get_idx(all, i);
            printf("%-12s %-8lld %-10s %-40s %-31s %s\n", ks_json_str(s, "id"),
                   (long long)ks_json_int(s, "pid", 0), ks_json_str(s, "status"),
                   ks_json_str(s, "bundle"), ks_json_str(s, "created"), ks_json_str(s, "owner"));
        }
    }
    json_object_put(all);
    return 0;
}

static int parse_u64(const char *s, int64_t *ret)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *s == '\0')
        return -1;
    /* Sizes may carry a unit, as runc accepts for memory values. */
    int64_t mul = 1;
    if (*end) {
        switch (*end) {
        case 'k':
        case 'K':
            mul = 1024;
            break;
        case 'm':
        case 'M':
            mul = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            mul = 1024LL * 1024 * 1024;
            break;
        default:
            return -1;
        }
        end++;
        if (*end == 'b' || *end == 'B')
            end++;
        if (*end)
            return -1;
    }
    *ret = v * mul;
    return 0;
}

int rt_update(const struct rt_globals *g, int argc, char **argv)
{
    enum {
        O_RES = 1,
        O_MEM,
        O_MEMRES,
        O_SWAP,
        O_SHARES,
        O_QUOTA,
        O_PERIOD,
        O_CPUS,
        O_MEMS,
        O_PIDS,
        O_BLKIO,
        O_RTRUN,
        O_RTPER,
        O_KMEM,
        O_KMEMTCP,
    };
    static const struct option opts[] = {
        {"resources", required_argument, NULL, 'r'},
        {"memory", required_argument, NULL, O_MEM},
        {"memory-reservation", required_argument, NULL, O_MEMRES},
        {"memory-swap", required_argument, NULL, O_SWAP},
        {"cpu-shares", required_argument, NULL, O_SHARES},
        {"cpu-quota", required_argument, NULL, O_QUOTA},
        {"cpu-period", required_argument, NULL, O_PERIOD},
        {"cpuset-cpus", required_argument, NULL, O_CPUS},
        {"cpuset-mems", required_argument, NULL, O_MEMS},
        {"pids-limit", required_argument, NULL, O_PIDS},
        {"blkio-weight", required_argument, NULL, O_BLKIO},
        {"cpu-rt-runtime", required_argument, NULL, O_RTRUN},
        {"cpu-rt-period", required_argument, NULL, O_RTPER},
        {"kernel-memory", required_argument, NULL, O_KMEM},
        {"kernel-memory-tcp", required_argument, NULL, O_KMEMTCP},
        {NULL, 0, NULL, 0},
    };
    _cleanup_json_ json_object *res = json_object_new_object();
    const char *file = NULL;
    int c;
    struct {
        int opt;
        const char *group, *key;
        bool is_string;
    } const map[] = {
        {O_MEM, "memory", "limit", false},
        {O_MEMRES, "memory", "reservation", false},
        {O_SWAP, "memory", "swap", false},
        {O_SHARES, "cpu", "shares", false},
        {O_QUOTA, "cpu", "quota", false},
        {O_PERIOD, "cpu", "period", false},
        {O_CPUS, "cpu", "cpus", true},
        {O_MEMS, "cpu", "mems", true},
        {O_PIDS, "pids", "limit", false},
        {O_BLKIO, "blockIO", "weight", false},
        {O_RTRUN, "cpu", "realtimeRuntime", false},
        {O_RTPER, "cpu", "realtimePeriod", false},
        {O_KMEM, "memory", "kernel", false},
        {O_KMEMTCP, "memory", "kernelTCP", false},
    };
    while ((c = getopt_long(argc, argv, "r:", opts, NULL)) != -1) {
        if (c == 'r') {
            file = optarg;
            continue;
        }
        size_t i;
        for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
            if (map[i].opt == c)
                break;
        if (i == sizeof(map) / sizeof(map[0]))
            return 1;
        json_object *grp = ks_json_get(res, map[i].group);
        if (grp == NULL) {
            grp = json_object_new_object();
            json_object_object_add(res, map[i].group, grp);
        }
        if (map[i].is_string) {
            json_object_object_add(grp, map[i].key, json_object_new_string(optarg));
        } else {
            int64_t v;
            if (parse_u64(optarg, &v) < 0)
                return rt_fail("update: --%s: invalid value `%s`", opts[c - O_MEM + 1].name,
                               optarg);
            json_object_object_add(grp, map[i].key, json_object_new_int64(v));
        }
    }
    const char *id = one_id(argc, argv, "update");
    if (id == NULL)
        return 1;
    if (file) {
        json_object *fromfile = NULL;
        struct ks_error *e = NULL;
        char *buf = NULL;
        size_t len = 0;
        int r = strcmp(file, "-") == 0 ? ks_read_fd(STDIN_FILENO, 1 << 20, &buf, &len, &e)
                                       : ks_read_file(file, &buf, &len, &e);
        if (r == 0)
            r = ks_json_parse(buf, len, &fromfile, &e);
        free(buf);
        if (r < 0)
            return report(r, e);
        if (!json_object_is_type(fromfile, json_type_object)) {
            json_object_put(fromfile);
            return rt_fail("update: --resources: expected a JSON object");
        }
        /* Flags given as well override the file's values. */
        json_object_object_foreach(res, k, v)
        {
            json_object_object_add(fromfile, k, json_object_get(v));
        }
        json_object_put(res);
        res = fromfile;
    }
    struct ks_error *e = NULL;
    int rr = ks_container_update(g->root, id, res, &e);
    return report(rr, e);
}

int rt_spec(const struct rt_globals *g, int argc, char **argv)
{
    (void)g;
    static const struct option opts[] = {
        {"rootless", no_argument, NULL, 'r'},
        {"bundle", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    bool rootless = false;
    const char *bundle = ".";
    int c;
    while ((c = getopt_long(argc, argv, "b:", opts, NULL)) != -1) {
        if (c == 'r')
            rootless = true;
        else if (c == 'b')
            bundle = optarg;
        else
            return 1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", bundle);
    if (access(path, F_OK) == 0)
        return rt_fail("spec: `%s` already exists", path);
    _cleanup_json_ json_object *spec = ks_spec_default(rootless);
    const char *s = ks_json_pretty(spec);
    FILE *f = fopen(path, "wx");
    if (f == NULL)
        return rt_fail("spec: create `%s`: %s", path, strerror(errno));
    fprintf(f, "%s\n", s);
    if (fclose(f) != 0)
        return rt_fail("spec: write `%s`: %s", path, strerror(errno));
    return 0;
}

int rt_features(const struct rt_globals *g, int argc, char **argv)
{
    (void)g, (void)argc, (void)argv;
    _cleanup_json_ json_object *f = ks_spec_features();
    printf("%s\n", ks_json_pretty(f));
    return 0;
}

int rt_events(const struct rt_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"stats", no_argument, NULL, 's'},
        {"interval", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (c != 's' && c != 'i')
            return 1;
    const char *id = one_id(argc, argv, "events");
    if (id == NULL)
        return 1;
    struct ks_error *e = NULL;
    json_object *stats = NULL;
    int r = ks_container_stats(g->root, id, &stats, &e);
    if (r < 0)
        return report(r, e);
    _cleanup_json_ json_object *ev = json_object_new_object();
    json_object_object_add(ev, "type", json_object_new_string("stats"));
    json_object_object_add(ev, "id", json_object_new_string(id));
    json_object_object_add(ev, "data", stats);
    printf("%s\n", ks_json_plain(ev));
    return 0;
}
