/* `kiste volume …`: create, ls, inspect, rm and prune of the local driver's volumes, with
 * Docker's flags, filters, output and messages. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "container.h"
#include "format.h"
#include "lib/base/json.h"
#include "lib/volume/volume.h"
#include "system.h"

#define FILTERS_MAX 32

struct filter {
    const char *key, *value;
};

struct filters {
    struct filter v[FILTERS_MAX];
    size_t n;
};

static int add_filter(struct filters *f, char *arg)
{
    char *eq = strchr(arg, '=');
    if (eq == NULL || f->n >= FILTERS_MAX) {
        fprintf(stderr, "Error: bad format of filter (expected name=value)\n");
        return -1;
    }
    *eq = '\0';
    f->v[f->n++] = (struct filter){arg, eq + 1};
    return 0;
}

/* "k=v" into labels; "k" alone is "k" with an empty value, as Docker's --label. */
static void add_kv(json_object *o, const char *kv)
{
    const char *eq = strchr(kv, '=');
    _cleanup_free_ char *k = eq ? strndup(kv, (size_t)(eq - kv)) : strdup(kv);
    if (k)
        json_object_object_add(o, k, json_object_new_string(eq ? eq + 1 : ""));
}

/* Opens the engine, the volumes and takes their lock (ret_lock may be NULL: no lock). */
static int open_all(struct ks_engine **e, struct ks_volumes **vs, int *ret_lock,
                    struct ks_error **err)
{
    int r = ks_cli_engine_open(e, err);
    if (r >= 0)
        r = ks_volumes_open((*e)->root, vs, err);
    if (r >= 0 && ret_lock)
        r = *ret_lock = ks_volumes_lock(*vs, err);
    return r;
}

/* --- create --- */

static int volume_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"name", required_argument, NULL, 'n'},  {"driver", required_argument, NULL, 'd'},
        {"label", required_argument, NULL, 'l'}, {"opt", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},        {0},
    };
    _cleanup_json_ json_object *labels = json_object_new_object(),
                               *options = json_object_new_object();
    const char *name = NULL, *driver = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 'd':
            driver = optarg;
            break;
        case 'l':
            add_kv(labels, optarg);
            break;
        case 'o':
            if (strchr(optarg, '=') == NULL)
                return ks_cli_usage_error("volume create", "invalid option, expected key=value");
            add_kv(options, optarg);
            break;
        case 'h':
            printf("Usage: kiste volume create [OPTIONS] [VOLUME]\n\n"
                   "Options: --name, -d/--driver local, --label k=v, -o/--opt k=v\n");
            return 0;
        default:
            return 1;
        }
    }
    if (ks_cli_nargs("volume create", argc - optind, 0, 1, true))
        return 1;
    if (optind < argc) {
        if (name && strcmp(name, argv[optind]) != 0) {
            fprintf(stderr, "Error: conflicting options: either specify --name or provide "
                            "positional arg, not both\n");
            return 1;
        }
        name = argv[optind];
    }
    struct ks_error *e = NULL;
    _cleanup_engine_ struct ks_engine *engine = NULL;
    _cleanup_volumes_ struct ks_volumes *vs = NULL;
    _cleanup_close_ int lock = -EBADF;
    _cleanup_volume_ struct ks_volume *v = NULL;
    struct ks_volume_create_opts o = {
        .name = name, .named = true, .driver = driver, .labels = labels, .options = options};
    if (open_all(&engine, &vs, &lock, &e) < 0 || ks_volume_create(vs, &o, &v, NULL, &e) < 0)
        return ks_cli_fail(e, 1);
    printf("%s\n", v->name);
    return 0;
}

/* --- ls --- */

static bool label_match(json_object *labels, const char *want)
{
    const char *eq = strchr(want, '=');
    _cleanup_free_ char *k = eq ? strndup(want, (size_t)(eq - want)) : strdup(want);
    const char *have = k ? ks_json_str(labels, k) : NULL;
    return have && (eq == NULL || strcmp(have, eq + 1) == 0);
}

/* Docker's rule: values of one key are ORed, different keys ANDed; label!= excludes. */
static bool matches(const struct filters *f, const struct ks_volume *v, json_object *users)
{
    static const char *const keys[] = {"name", "label", "dangling", "driver", "label!"};
    for (size_t k = 0; k < KS_ELEMENTSOF(keys); k++) {
        bool any = false, hit = false;
        for (size_t i = 0; i < f->n; i++) {
            if (strcmp(f->v[i].key, keys[k]) != 0)
                continue;
            any = true;
            const char *x = f->v[i].value;
            if (k == 0)
                hit |= strstr(v->name, x) != NULL;
            else if (k == 1)
                hit |= label_match(v->labels, x);
            else if (k == 2)
                hit |= (ks_json_get(users, v->name) == NULL) ==
                       (strcmp(x, "true") == 0 || strcmp(x, "1") == 0);
            else if (k == 3)
                hit |= strcmp(v->driver, x) == 0;
            else
                hit |= !label_match(v->labels, x);
        }
        if (any && !hit)
            return false;
    }
    return true;
}

static int check_filters(const struct filters *f, bool prune)
{
    for (size_t i = 0; i < f->n; i++) {
        const char *k = f->v[i].key;
        bool ok = strcmp(k, "label") == 0 || strcmp(k, "label!") == 0 ||
                  (prune && strcmp(k, "all") == 0) ||
                  (!prune && (strcmp(k, "name") == 0 || strcmp(k, "dangling") == 0 ||
                              strcmp(k, "driver") == 0));
        if (!ok) {
            fprintf(stderr, "Error: invalid filter '%s'\n", k);
            return 1;
        }
    }
    return 0;
}

static json_object *ls_row(const struct ks_volume *v, json_object *users)
{
    json_object *row = ks_volume_json(v);
    char *labels = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&labels, &len);
    if (f) {
        bool first = true;
        json_object_object_foreach(v->labels, k, val)
        {
            fprintf(f, "%s%s=%s", first ? "" : ",", k, json_object_get_string(val));
            first = false;
        }
        fclose(f);
    }
    json_object_object_add(row, "Labels", json_object_new_string(labels ? labels : ""));
    free(labels);
    json_object *u = ks_json_get(users, v->name);
    char links[24];
    snprintf(links, sizeof(links), "%lld", (long long)(u ? ks_json_int(u, "Links", 0) : 0));
    json_object_object_add(row, "Links", json_object_new_string(links));
    json_object_object_add(row, "Size", json_object_new_string("N/A"));
    return row;
}

static int ls_print(struct ks_volume **v, size_t n, const struct filters *f, json_object *users,
                    bool quiet, const char *format)
{
    _cleanup_free_ json_object **rows = calloc(n + 1, sizeof(*rows));
    if (rows == NULL)
        return ks_cli_fail(NULL, 1);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (matches(f, v[i], users))
            rows[m++] = ls_row(v[i], users);
    int rc = 0;
    if (format && strcmp(format, "json") == 0) {
        for (size_t i = 0; i < m; i++)
            printf("%s\n", ks_json_plain(rows[i]));
    } else {
        const char *tmpl = quiet ? "{{.Name}}"
                           : format == NULL || strcmp(format, "table") == 0
                               ? "table {{.Driver}}\t{{.Name}}"
                               : format;
        _cleanup_json_ json_object *header = json_object_new_object();
        static const char *const h[][2] = {
            {"Driver", "DRIVER"}, {"Name", "VOLUME NAME"},  {"Mountpoint", "MOUNTPOINT"},
            {"Labels", "LABELS"}, {"Scope", "SCOPE"},       {"Links", "LINKS"},
            {"Size", "SIZE"},     {"CreatedAt", "CREATED"},
        };
        for (size_t i = 0; i < KS_ELEMENTSOF(h); i++)
            json_object_object_add(header, h[i][0], json_object_new_string(h[i][1]));
        if (ks_fmt_rows(tmpl, header, rows, m) < 0) {
            fprintf(stderr, "Error: invalid format `%s`\n", format);
            rc = 1;
        }
    }
    for (size_t i = 0; i < m; i++)
        json_object_put(rows[i]);
    return rc;
}

static int volume_ls(int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"filter", required_argument, NULL, 'f'},
        {"format", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct filters f = {0};
    const char *format = NULL;
    bool quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qf:", opts, NULL)) != -1) {
        if (c == 'q')
            quiet = true;
        else if (c == 'f' && add_filter(&f, optarg) < 0)
            return 1;
        else if (c == 'F')
            format = optarg;
        else if (c == 'h') {
            printf("Usage: kiste volume ls [-q] [--filter KEY=VALUE] [--format TEMPLATE]\n");
            return 0;
        } else if (c != 'f')
            return 1;
    }
    if (ks_cli_nargs("volume ls", argc - optind, 0, 0, true) || check_filters(&f, false))
        return 1;
    struct ks_error *e = NULL;
    _cleanup_engine_ struct ks_engine *engine = NULL;
    _cleanup_volumes_ struct ks_volumes *vs = NULL;
    _cleanup_json_ json_object *users = NULL;
    struct ks_volume **v = NULL;
    size_t n = 0;
    if (open_all(&engine, &vs, NULL, &e) < 0)
        return ks_cli_fail(e, 1);
    /* Volumes held by containers that have exited since are unmounted on the way. */
    ks_engine_volumes_release(engine, NULL);
    if (ks_engine_volumes_users(engine, &users, &e) < 0 || ks_volume_list(vs, &v, &n, &e) < 0)
        return ks_cli_fail(e, 1);
    int rc = ls_print(v, n, &f, users, quiet, format);
    ks_volume_list_free(v, n);
    return rc;
}

/* --- inspect --- */

static int volume_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *format = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("Usage: kiste volume inspect [--format TEMPLATE] VOLUME [VOLUME...]\n");
            return 0;
        }
        if (c != 'f')
            return 1;
        format = optarg;
    }
    if (ks_cli_nargs("volume inspect", argc - optind, 1, -1, true))
        return 1;
    struct ks_error *e = NULL;
    _cleanup_engine_ struct ks_engine *engine = NULL;
    _cleanup_volumes_ struct ks_volumes *vs = NULL;
    if (open_all(&engine, &vs, NULL, &e) < 0)
        return ks_cli_fail(e, 1);
    _cleanup_json_ json_object *all = json_object_new_array();
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        _cleanup_volume_ struct ks_volume *v = NULL;
        if (ks_volume_get(vs, argv[i], &v, &e) < 0) {
            rc = ks_cli_fail(TAKE_PTR(e), 1);
            continue;
        }
        json_object_array_add(all, ks_volume_json(v));
    }
    if (ks_cli_print_inspect(all, format) != 0)
        return 1;
    return rc;
}

/* --- rm and prune --- */

/* Removes one volume unless a container uses it (Docker: even a stopped one; -f does not
 * override it). The caller holds the lock and has users. */
static int remove_one(struct ks_volumes *vs, json_object *users, const char *name,
                      struct ks_error **err)
{
    json_object *u = ks_json_get(users, name);
    if (u) {
        json_object *ids = ks_json_get(u, "Containers");
        char list[1024] = "";
        size_t len = 0;
        for (size_t i = 0; i < json_object_array_length(ids) && len + 70 < sizeof(list); i++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
                                    json_object_get_string(json_object_array_get_idx(ids, i)));
        return ks_error_set_plain(err, EBUSY, "remove %s: volume is in use - [%s]", name, list);
    }
    return ks_volume_remove(vs, name, err);
}

static int volume_rm(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("Usage: kiste volume rm [-f] VOLUME [VOLUME...]\n");
            return 0;
        }
        if (c != 'f')
            return 1;
        force = true;
    }
    if (ks_cli_nargs("volume rm", argc - optind, 1, -1, true))
        return 1;
    struct ks_error *e = NULL;
    _cleanup_engine_ struct ks_engine *engine = NULL;
    _cleanup_volumes_ struct ks_volumes *vs = NULL;
    _cleanup_close_ int lock = -EBADF;
    _cleanup_json_ json_object *users = NULL;
    if (open_all(&engine, &vs, &lock, &e) < 0 || ks_engine_volumes_users(engine, &users, &e) < 0)
        return ks_cli_fail(e, 1);
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        int r = remove_one(vs, users, argv[i], &e);
        /* -f: a volume that does not exist is no error. */
        if (r == -ENOENT && force) {
            ks_error_free(TAKE_PTR(e));
            continue;
        }
        if (r < 0)
            rc = ks_cli_fail(TAKE_PTR(e), 1);
        else
            printf("%s\n", argv[i]);
    }
    return rc;
}

static bool confirm(const char *what)
{
    printf("WARNING! This will remove %s.\nAre you sure you want to continue? [y/N] ", what);
    fflush(stdout);
    char line[16] = "";
    if (fgets(line, sizeof(line), stdin) == NULL)
        return false;
    return line[0] == 'y' || line[0] == 'Y';
}

static int prune_run(const struct filters *f, bool all)
{
    struct ks_error *e = NULL;
    _cleanup_engine_ struct ks_engine *engine = NULL;
    _cleanup_volumes_ struct ks_volumes *vs = NULL;
    _cleanup_close_ int lock = -EBADF;
    _cleanup_json_ json_object *users = NULL;
    struct ks_volume **v = NULL;
    size_t n = 0;
    if (open_all(&engine, &vs, &lock, &e) < 0 || ks_engine_volumes_users(engine, &users, &e) < 0 ||
        ks_volume_list(vs, &v, &n, &e) < 0)
        return ks_cli_fail(e, 1);
    int64_t reclaimed = 0;
    bool header = false;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (ks_json_get(users, v[i]->name) || (!all && !v[i]->anonymous) ||
            !matches(f, v[i], users))
            continue;
        int64_t size = ks_volume_size(v[i]);
        if (ks_volume_remove(vs, v[i]->name, &e) < 0) {
            rc = ks_cli_fail(TAKE_PTR(e), 1);
            continue;
        }
        if (!header)
            printf("Deleted Volumes:\n");
        header = true;
        printf("%s\n", v[i]->name);
        reclaimed += size;
    }
    ks_volume_list_free(v, n);
    char size[32];
    ks_fmt_size(reclaimed, size, sizeof(size));
    printf("%sTotal reclaimed space: %s\n", header ? "\n" : "", size);
    return rc;
}

static int volume_prune(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"all", no_argument, NULL, 'a'},
        {"filter", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct filters f = {0};
    bool force = false, all = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "fa", opts, NULL)) != -1) {
        if (c == 'f')
            force = true;
        else if (c == 'a')
            all = true;
        else if (c == 'F' && add_filter(&f, optarg) < 0)
            return 1;
        else if (c == 'h') {
            printf("Usage: kiste volume prune [-f] [-a] [--filter KEY=VALUE]\n");
            return 0;
        } else if (c != 'F')
            return 1;
    }
    if (ks_cli_nargs("volume prune", argc - optind, 0, 0, true) || check_filters(&f, true))
        return 1;
    for (size_t i = 0; i < f.n; i++)
        all |= strcmp(f.v[i].key, "all") == 0 &&
               (strcmp(f.v[i].value, "true") == 0 || strcmp(f.v[i].value, "1") == 0);
    if (!force && !confirm(all ? "all local volumes not used by at least one container"
                               : "anonymous local volumes not used by at least one container"))
        return 0;
    return prune_run(&f, all);
}

/* --- system df --- */

int ks_cli_volume_usage(struct ks_engine *e, int64_t *ret_total, int64_t *ret_active,
                        int64_t *ret_size, int64_t *ret_reclaimable, json_object **ret_rows,
                        struct ks_error **err)
{
    _cleanup_volumes_ struct ks_volumes *vs = NULL;
    _cleanup_json_ json_object *users = NULL;
    struct ks_volume **v = NULL;
    size_t n = 0;
    ks_engine_volumes_release(e, NULL);
    int r = ks_volumes_open(e->root, &vs, err);
    if (r >= 0)
        r = ks_engine_volumes_users(e, &users, err);
    if (r >= 0)
        r = ks_volume_list(vs, &v, &n, err);
    if (r < 0)
        return r;
    json_object *rows = json_object_new_array();
    int64_t active = 0, size = 0, reclaimable = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t s = ks_volume_size(v[i]);
        json_object *u = ks_json_get(users, v[i]->name);
        size += s;
        if (u)
            active++;
        else
            reclaimable += s;
        json_object *row = json_object_new_object();
        json_object_object_add(row, "Name", json_object_new_string(v[i]->name));
        json_object_object_add(row, "Links",
                               json_object_new_int64(u ? ks_json_int(u, "Links", 0) : 0));
        json_object_object_add(row, "Size", json_object_new_int64(s));
        json_object_array_add(rows, row);
    }
    *ret_total = (int64_t)n;
    *ret_active = active;
    *ret_size = size;
    *ret_reclaimable = reclaimable;
    if (ret_rows)
        *ret_rows = rows;
    else
        json_object_put(rows);
    ks_volume_list_free(v, n);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} volume_commands[] = {
    {"create", volume_create},   {"ls", volume_ls}, {"list", volume_ls},
    {"inspect", volume_inspect}, {"rm", volume_rm}, {"remove", volume_rm},
    {"prune", volume_prune},
};

int ks_cli_volume(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "Usage: kiste volume COMMAND\n\nCommands:\n"
                   "  create   Create a volume\n  inspect  Display detailed information on one "
                   "or more volumes\n  ls       List volumes\n  prune    Remove unused local "
                   "volumes\n  rm       Remove one or more volumes\n");
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < KS_ELEMENTSOF(volume_commands); i++)
        if (strcmp(argv[1], volume_commands[i].name) == 0)
            return volume_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiste volume: unknown command `%s`\n", argv[1]);
    return 1;
}
