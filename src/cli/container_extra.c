/* stats --no-stream, update, diff and export. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "container.h"
#include "format.h"
#include "lib/base/fs.h"
#include "lib/base/json.h"
#include "lib/image/snapshot.h"
#include "lib/image/store.h"
#include "lib/oci/container.h"

#define SAMPLE_MS 200

/* Docker's units.BytesSize: binary units, three significant digits. */
static void bytes_size(double v, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < KS_ELEMENTSOF(units)) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, len, "%.4g%s", v, units[u]);
}

struct sample {
    int64_t cpu_ns, mem, limit, pids;
    bool ok;
};

static struct sample sample(struct ks_engine *e, const char *id)
{
    struct sample s = {0};
    _cleanup_json_ json_object *st = NULL;
    if (ks_container_stats(e->runtime_root, id, &st, NULL) < 0)
        return s;
    json_object *d = ks_json_get(st, "data") ? ks_json_get(st, "data") : st;
    s.cpu_ns = ks_json_int(ks_json_get(d, "cpu"), "usage_ns", 0);
    s.mem = ks_json_int(ks_json_get(d, "memory"), "usage", 0);
    s.limit = ks_json_int(ks_json_get(d, "memory"), "limit", 0);
    s.pids = ks_json_int(ks_json_get(d, "pids"), "current", 0);
    s.ok = true;
    return s;
}

struct stats_row {
    char *id, *name;
    struct sample a, b;
};

static int stats_collect(const struct ks_db_container *c, void *userdata)
{
    void **ud = userdata;
    struct ks_engine *e = ud[0];
    struct stats_row **rows = ud[1];
    size_t *n = ud[2];
    struct ks_container_state st;
    if (ks_engine_state_get(e, c->id, &st, NULL) < 0)
        return 0;
    ks_engine_state_clear(&st);
    if (st.status != KS_CONTAINER_RUNNING && st.status != KS_CONTAINER_PAUSED)
        return 0;
    struct stats_row *v = realloc(*rows, (*n + 1) * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    *rows = v;
    v[*n] = (struct stats_row){.id = strdup(c->id), .name = strdup(c->name)};
    (*n)++;
    return 0;
}

/* Samples every row twice and prints the table; CPU % over the interval between the samples,
 * as Docker's first frame compares two. */
static int stats_render(struct ks_engine *e, struct stats_row *rows, size_t n, bool no_trunc,
                        const char *format)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < n; i++)
        rows[i].a = sample(e, rows[i].id);
    struct timespec ts = {0, SAMPLE_MS * 1000000L};
    nanosleep(&ts, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
    struct sysinfo si;
    sysinfo(&si);
    double host_mem = (double)si.totalram * si.mem_unit;
    json_object **out = calloc(n + 1, sizeof(json_object *));
    for (size_t i = 0; out && i < n; i++) {
        struct stats_row *r = &rows[i];
        r->b = sample(e, r->id);
        double limit =
            r->b.limit > 0 && (double)r->b.limit < host_mem ? (double)r->b.limit : host_mem;
        double cpu = r->a.ok && r->b.ok && wall > 0
                         ? (double)(r->b.cpu_ns - r->a.cpu_ns) / wall * 100.0
                         : 0.0;
        char buf[128], u[32], l[32];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "ID", json_object_new_string_len(r->id, no_trunc ? 64 : 12));
        json_object_object_add(o, "Container", json_object_new_string(r->name));
        json_object_object_add(o, "Name", json_object_new_string(r->name));
        snprintf(buf, sizeof(buf), "%.2f%%", cpu < 0 ? 0 : cpu);
        json_object_object_add(o, "CPUPerc", json_object_new_string(buf));
        bytes_size((double)r->b.mem, u, sizeof(u));
        bytes_size(limit, l, sizeof(l));
        snprintf(buf, sizeof(buf), "%s / %s", u, l);
        json_object_object_add(o, "MemUsage", json_object_new_string(buf));
        snprintf(buf, sizeof(buf), "%.2f%%", limit > 0 ? (double)r->b.mem / limit * 100 : 0.0);
        json_object_object_add(o, "MemPerc", json_object_new_string(buf));
        json_object_object_add(o, "NetIO", json_object_new_string("0B / 0B"));
        json_object_object_add(o, "BlockIO", json_object_new_string("0B / 0B"));
        snprintf(buf, sizeof(buf), "%lld", (long long)r->b.pids);
        json_object_object_add(o, "PIDs", json_object_new_string(buf));
        out[i] = o;
    }
    _cleanup_json_ json_object *h = json_object_new_object();
    static const char *const hd[][2] = {
        {"ID", "CONTAINER ID"}, {"Container", "CONTAINER"},        {"Name", "NAME"},
        {"CPUPerc", "CPU %"},   {"MemUsage", "MEM USAGE / LIMIT"}, {"MemPerc", "MEM %"},
        {"NetIO", "NET I/O"},   {"BlockIO", "BLOCK I/O"},          {"PIDs", "PIDS"},
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(hd); i++)
        json_object_object_add(h, hd[i][0], json_object_new_string(hd[i][1]));
    int r = ks_fmt_rows(format ? format
                               : "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t"
                                 "{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
                        h, out, n);
    for (size_t i = 0; out && i < n; i++)
        json_object_put(out[i]);
    free(out);
    return r;
}

int ks_cli_stats(int argc, char **argv)
{
    static const struct option opts[] = {
        {"no-stream", no_argument, NULL, 'n'},
        {"all", no_argument, NULL, 'a'},
        {"no-trunc", no_argument, NULL, 'T'},
        {"format", required_argument, NULL, 'f'},
        {0},
    };
    bool no_trunc = false;
    const char *format = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+a", opts, NULL)) != -1) {
        if (c == 'T')
            no_trunc = true;
        else if (c == 'f')
            format = optarg;
        else if (c != 'n' && c != 'a')
            return 1;
    }
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    struct stats_row *rows = NULL;
    size_t n = 0;
    if (optind < argc) {
        for (int i = optind; i < argc; i++) {
            _cleanup_db_container_ struct ks_db_container *ct = NULL;
            if (ks_engine_lookup(e, argv[i], &ct, NULL, &err) < 0)
                return ks_cli_fail(err, 1);
            struct stats_row *v = realloc(rows, (n + 1) * sizeof(*v));
            if (v == NULL)
                return 1;
            rows = v;
            rows[n++] = (struct stats_row){.id = strdup(ct->id), .name = strdup(ct->name)};
        }
    } else {
        void *ud[] = {e, &rows, &n};
        if (ks_db_containers_list(ks_store_db(e->store), stats_collect, ud, &err) < 0)
            return ks_cli_fail(err, 1);
    }
    int r = stats_render(e, rows, n, no_trunc, format);
    for (size_t i = 0; i < n; i++) {
        free(rows[i].id);
        free(rows[i].name);
    }
    free(rows);
    return r < 0 ? 1 : 0;
}

/* --- update --- */

static int set_size_key(json_object *hc, json_object *mem, const char *key, const char *ockey,
                        const char *v)
{
    int64_t n;
    if (strcmp(v, "-1") == 0)
        n = -1;
    else if (ks_parse_size(v, &n) < 0)
        return -1;
    json_object_object_add(hc, key, json_object_new_int64(n));
    json_object_object_add(mem, ockey, json_object_new_int64(n));
    return 0;
}

/* update's flags: the HostConfig fields into hc, the OCI resources into res. 0 or 1. */
static int update_parse(int argc, char **argv, json_object *hc, json_object *res)
{
    static const struct option opts[] = {
        {"memory", required_argument, NULL, 'm'},
        {"memory-swap", required_argument, NULL, 'S'},
        {"memory-reservation", required_argument, NULL, 'R'},
        {"cpus", required_argument, NULL, 'C'},
        {"cpu-shares", required_argument, NULL, 'c'},
        {"cpuset-cpus", required_argument, NULL, 'P'},
        {"pids-limit", required_argument, NULL, 'p'},
        {"restart", required_argument, NULL, 'r'},
        {0},
    };
    json_object *mem = json_object_new_object(), *cpu = json_object_new_object();
    json_object_object_add(res, "memory", mem);
    json_object_object_add(res, "cpu", cpu);
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+m:c:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            bad |= set_size_key(hc, mem, "Memory", "limit", optarg);
            break;
        case 'S':
            bad |= set_size_key(hc, mem, "MemorySwap", "swap", optarg);
            break;
        case 'R':
            bad |= set_size_key(hc, mem, "MemoryReservation", "reservation", optarg);
            break;
        case 'C': {
            char *end;
            double v = strtod(optarg, &end);
            bad |= *end || v < 0 ? -1 : 0;
            int64_t nano = (int64_t)(v * 1e9 + 0.5);
            json_object_object_add(hc, "NanoCpus", json_object_new_int64(nano));
            json_object_object_add(cpu, "period", json_object_new_int64(100000));
            json_object_object_add(cpu, "quota", json_object_new_int64(nano / 10000));
            break;
        }
        case 'c':
            json_object_object_add(hc, "CpuShares", json_object_new_int64(atoll(optarg)));
            json_object_object_add(cpu, "shares", json_object_new_int64(atoll(optarg)));
            break;
        case 'P':
            json_object_object_add(hc, "CpusetCpus", json_object_new_string(optarg));
            json_object_object_add(cpu, "cpus", json_object_new_string(optarg));
            break;
        case 'p': {
            json_object *p = json_object_new_object();
            json_object_object_add(p, "limit", json_object_new_int64(atoll(optarg)));
            json_object_object_add(res, "pids", p);
            json_object_object_add(hc, "PidsLimit", json_object_new_int64(atoll(optarg)));
            break;
        }
        case 'r': {
            const char *colon = strchr(optarg, ':');
            size_t nl = colon ? (size_t)(colon - optarg) : strlen(optarg);
            bool known = false;
            for (const char *const *k =
                     (const char *const[]){"no", "always", "unless-stopped", "on-failure", NULL};
                 *k; k++)
                known |= strlen(*k) == nl && strncmp(optarg, *k, nl) == 0;
            if (!known || (colon && (strncmp(optarg, "on-failure", nl) != 0 ||
                                     strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
                                     colon[1] == '\0'))) {
                fprintf(stderr, "Error: invalid restart policy '%s'\n", optarg);
                return 1;
            }
            json_object *rp = json_object_new_object();
            json_object_object_add(rp, "Name",
                                   colon ? json_object_new_string_len(optarg, (int)(colon - optarg))
                                         : json_object_new_string(optarg));
            json_object_object_add(rp, "MaximumRetryCount",
                                   json_object_new_int64(colon ? atoll(colon + 1) : 0));
            json_object_object_add(hc, "RestartPolicy", rp);
            break;
        }
        default:
            return 1;
        }
    }
    if (bad) {
        fprintf(stderr, "Error: invalid value\n");
        return 1;
    }
    return 0;
}

/* A running container's monitor took its restart policy from its command line: a new one goes
 * to it as the file restart-policy in the run directory, read at the container's next exit. */
static int restart_policy_to_monitor(struct ks_engine *e, const char *id,
                                     const struct ks_container_state *st, json_object *rp,
                                     struct ks_error **err)
{
    if (rp == NULL || !ks_engine_status_active(st->status))
        return 0;
    char text[64];
    int64_t max = ks_json_int(rp, "MaximumRetryCount", 0);
    const char *name = ks_json_str(rp, "Name");
    int n = max > 0 ? snprintf(text, sizeof(text), "%s:%lld\n", name, (long long)max)
                    : snprintf(text, sizeof(text), "%s\n", name);
    _cleanup_free_ char *run = ks_container_run_dir(e, id);
    _cleanup_close_ int dfd = run ? open(run, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd < 0)
        return ks_error_set(err, errno ? errno : ENOMEM, "open the container's run directory");
    return ks_write_file_replace(dfd, "restart-policy", text, (size_t)n, 0644, err);
}

int ks_cli_update(int argc, char **argv)
{
    _cleanup_json_ json_object *hc = json_object_new_object();
    _cleanup_json_ json_object *res = json_object_new_object();
    if (update_parse(argc, argv, hc, res) != 0)
        return 1;
    if (ks_cli_nargs("update", argc - optind, 1, -1, false))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    int status = 0;
    for (int i = optind; i < argc; i++) {
        _cleanup_db_container_ struct ks_db_container *ct = NULL;
        _cleanup_json_ json_object *config = NULL;
        if (ks_engine_lookup(e, argv[i], &ct, &config, &err) < 0) {
            status = ks_cli_fail(TAKE_PTR(err), 1);
            continue;
        }
        json_object *chc = ks_json_get(config, "HostConfig");
        json_object_object_foreach(hc, k, v) json_object_object_add(chc, k, json_object_get(v));
        struct ks_container_state st;
        if (ks_engine_state_get(e, ct->id, &st, &err) < 0) {
            status = ks_cli_fail(TAKE_PTR(err), 1);
            continue;
        }
        ks_engine_state_clear(&st);
        if ((st.status == KS_CONTAINER_RUNNING || st.status == KS_CONTAINER_PAUSED) &&
            ks_container_update(e->runtime_root, ct->id, res, &err) < 0) {
            status = ks_cli_fail(TAKE_PTR(err), 1);
            continue;
        }
        if (restart_policy_to_monitor(e, ct->id, &st, ks_json_get(hc, "RestartPolicy"), &err) < 0) {
            status = ks_cli_fail(TAKE_PTR(err), 1);
            continue;
        }
        const char *text = ks_json_plain(config);
        if (ks_db_container_set_config(ks_store_db(e->store), ct->id, text, &err) < 0) {
            status = ks_cli_fail(TAKE_PTR(err), 1);
            continue;
        }
        printf("%s\n", argv[i]);
    }
    return status;
}

/* --- diff --- */

struct diff_walk {
    const char *upper;
    int lowers[128];
    size_t n_lowers;
    json_object *lines;
};

static struct diff_walk *g_diff;

static bool in_lower(const char *rel)
{
    for (size_t i = 0; i < g_diff->n_lowers; i++) {
        int fd = ks_open_in_root(g_diff->lowers[i], rel, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, NULL);
        if (fd >= 0) {
            close(fd);
            return true;
        }
    }
    return false;
}

static int diff_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)flag;
    if (ftw->level == 0)
        return 0;
    const char *rel = path + strlen(g_diff->upper);
    char line[4200];
    bool whiteout = S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
    snprintf(line, sizeof(line), "%c %s", whiteout ? 'D' : in_lower(rel) ? 'C' : 'A', rel);
    json_object_array_add(g_diff->lines, json_object_new_string(line));
    return 0;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(json_object_get_string(*(json_object *const *)a) + 2,
                  json_object_get_string(*(json_object *const *)b) + 2);
}

int ks_cli_diff(int argc, char **argv)
{
    if (ks_cli_nargs("diff", argc - 1, 1, 1, false))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    if (ks_cli_open_container(argv[1], &e, &ct, NULL, &err) < 0)
        return ks_cli_fail(err, 1);
    if (ct->snapshot == NULL)
        return 0;
    char upper[4096], path[4096];
    snprintf(upper, sizeof(upper), "%s/overlay/%s/diff", e->root, ct->snapshot);
    struct diff_walk w = {.upper = upper, .lines = json_object_new_array()};
    snprintf(path, sizeof(path), "%s/overlay/%s/lower", e->root, ct->snapshot);
    _cleanup_free_ char *lower = NULL;
    if (ks_read_file(path, &lower, NULL, NULL) >= 0) {
        for (char *save = NULL, *p = lower, *tok;
             (tok = strtok_r(p, ":\n", &save)) && w.n_lowers < KS_ELEMENTSOF(w.lowers); p = NULL) {
            snprintf(path, sizeof(path), "%s/overlay/%s", e->root, tok);
            int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (fd >= 0)
                w.lowers[w.n_lowers++] = fd;
        }
    }
    g_diff = &w;
    nftw(upper, diff_cb, 16, FTW_PHYS | FTW_MOUNT);
    size_t n = json_object_array_length(w.lines);
    json_object_array_sort(w.lines, cmp_line);
    for (size_t i = 0; i < n; i++)
        printf("%s\n", json_object_get_string(json_object_array_get_idx(w.lines, i)));
    for (size_t i = 0; i < w.n_lowers; i++)
        close(w.lowers[i]);
    json_object_put(w.lines);
    return 0;
}

/* --- export --- */

int ks_cli_export(int argc, char **argv)
{
    static const struct option opts[] = {{"output", required_argument, NULL, 'o'}, {0}};
    const char *output = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+o:", opts, NULL)) != -1) {
        if (c != 'o')
            return 1;
        output = optarg;
    }
    if (ks_cli_nargs("export", argc - optind, 1, 1, false))
        return 1;
    if (output == NULL && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "Error: cowardly refusing to save to a terminal. Use the -o flag or "
                        "redirect\n");
        return 1;
    }
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    if (ks_cli_open_container(argv[optind], &e, &ct, NULL, &err) < 0)
        return ks_cli_fail(err, 1);
    char overlay[4096];
    snprintf(overlay, sizeof(overlay), "%s/overlay", e->root);
    struct ks_container_state st;
    if (ks_engine_state_get(e, ct->id, &st, &err) < 0)
        return ks_cli_fail(err, 1);
    ks_engine_state_clear(&st);
    bool mounted_here = st.status != KS_CONTAINER_RUNNING && st.status != KS_CONTAINER_PAUSED;
    _cleanup_free_ char *merged = NULL;
    if (ks_snapshot_container_mount(overlay, ct->snapshot, &merged, &err) < 0)
        return ks_cli_fail(err, 1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (output) {
            int fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
                _exit(1);
        }
        execlp("tar", "tar", "--numeric-owner", "--xattrs", "-C", merged, "-cf", "-", ".",
               (char *)NULL);
        _exit(127);
    }
    int status = 1;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (mounted_here)
        ks_snapshot_container_unmount(overlay, ct->snapshot, NULL);
    return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* --- commit --- */

/* The history entry's created_by, as Docker writes it: the container's command. */
static char *commit_created_by(json_object *config)
{
    json_object *c = ks_json_get(config, "Config");
    size_t len = 0;
    _cleanup_free_ char *out = NULL;
    for (const char *const *k = (const char *const[]){"Entrypoint", "Cmd", NULL}; *k; k++) {
        json_object *a = ks_json_get_type(c, *k, json_type_array);
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
            const char *w = json_object_get_string(json_object_array_get_idx(a, i));
            size_t n = w ? strlen(w) : 0;
            char *grown = realloc(out, len + n + 2);
            if (grown == NULL)
                return NULL;
            out = grown;
            if (len)
                out[len++] = ' ';
            memcpy(out + len, w ? w : "", n);
            len += n;
            out[len] = '\0';
        }
    }
    return out ? TAKE_PTR(out) : strdup("");
}

int ks_cli_commit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"message", required_argument, NULL, 'm'},
        {"author", required_argument, NULL, 'a'},
        {"change", required_argument, NULL, 'c'},
        {"pause", optional_argument, NULL, 'p'},
        {0},
    };
    const char *message = NULL, *author = NULL;
    bool pause = true;
    _cleanup_free_ char **user = calloc((size_t)argc + 1, sizeof(char *));
    if (user == NULL)
        return 1;
    size_t n_user = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+m:a:c:p", opts, NULL)) != -1) {
        if (c == 'm')
            message = optarg;
        else if (c == 'a')
            author = optarg;
        else if (c == 'c')
            user[n_user++] = optarg;
        else if (c == 'p')
            pause = optarg == NULL || strcmp(optarg, "true") == 0;
        else
            return 1;
    }
    if (argc - optind < 1 || argc - optind > 2) {
        fprintf(stderr, "kiste commit: requires 1 or 2 arguments\n");
        return 1;
    }
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    _cleanup_json_ json_object *config = NULL;
    if (ks_cli_open_container(argv[optind], &e, &ct, &config, &err) < 0)
        return ks_cli_fail(err, 1);
    if (ct->snapshot == NULL) {
        fprintf(stderr, "Error: container %s has no file system to commit\n", argv[optind]);
        return 1;
    }
    _cleanup_free_ char *upper_path = NULL, *created_by = commit_created_by(config);
    if (created_by == NULL ||
        asprintf(&upper_path, "%s/overlay/%s/diff", e->root, ct->snapshot) < 0)
        return 1;
    _cleanup_close_ int upper = open(upper_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (upper < 0) {
        fprintf(stderr, "Error: %s: %s\n", upper_path, strerror(errno));
        return 1;
    }
    struct ks_container_state st;
    if (ks_engine_state_get(e, ct->id, &st, &err) < 0)
        return ks_cli_fail(err, 1);
    ks_engine_state_clear(&st);
    /* Frozen, the container cannot change its upper directory while it is written out. */
    bool paused_here =
        pause && st.status == KS_CONTAINER_RUNNING && ks_engine_pause(e, ct->id, true, NULL) == 0;
    const struct ks_store_commit_opts o = {
        .image_id = ct->image_id,
        .upper_dirfd = upper,
        .config = ks_json_get(config, "Config"),
        .changes = (const char *const *)user,
        .comment = message,
        .author = author,
        .created_by = created_by,
        .ref = argc - optind == 2 ? argv[optind + 1] : NULL,
    };
    _cleanup_free_ char *id = NULL;
    int r = ks_store_commit(e->store, &o, &id, &err);
    if (paused_here)
        ks_engine_pause(e, ct->id, false, NULL);
    if (r < 0)
        return ks_cli_fail(err, 1);
    printf("%s\n", id);
    return 0;
}
