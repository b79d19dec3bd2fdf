/* `kiste network …` (create, ls, inspect, rm, prune, connect, disconnect) and `kiste port`, with
 * Docker's flags, output and messages. Two more for kiste's own use: `network release ID`
 * (what a container's monitor runs when the container has exited for good) and `network
 * teardown` (deletes the root's bridges and nftables table from the kernel). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "format.h"
#include "lib/base/cleanup.h"
#include "lib/base/json.h"
#include "lib/net/net.h"
#include "network.h"

#define MAX_KV 64

struct kv_list {
    char *v[MAX_KV + 1];
    size_t n;
};

static int kv_add(struct kv_list *l, char *s, const char *what)
{
    if (l->n >= MAX_KV) {
        fprintf(stderr, "Error: too many %s\n", what);
        return -1;
    }
    l->v[l->n++] = s;
    return 0;
}

static int net_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"driver", required_argument, NULL, 'd'},
        {"subnet", required_argument, NULL, 's'},
        {"gateway", required_argument, NULL, 'g'},
        {"ip-range", required_argument, NULL, 'r'},
        {"internal", no_argument, NULL, 'i'},
        {"label", required_argument, NULL, 'l'},
        {"opt", required_argument, NULL, 'o'},
        {"attachable", no_argument, NULL, 'a'},
        {"ipv6", no_argument, NULL, '6'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct ks_net_create_opts o = {0};
    struct kv_list labels = {0}, options = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            o.driver = optarg;
            break;
        case 's':
            o.subnet = optarg;
            break;
        case 'g':
            o.gateway = optarg;
            break;
        case 'r':
            o.ip_range = optarg;
            break;
        case 'i':
            o.internal = true;
            break;
        case 'a':
            break;
        case '6':
            fprintf(stderr, "Error: IPv6 networks are not supported yet\n");
            return 1;
        case 'l':
            if (kv_add(&labels, optarg, "labels") < 0)
                return 1;
            break;
        case 'o':
            if (kv_add(&options, optarg, "options") < 0)
                return 1;
            break;
        case 'h':
            printf("Usage: kiste network create [OPTIONS] NETWORK\n\nOptions: -d --driver "
                   "--subnet --gateway --ip-range --internal --label -o --opt\n");
            return 0;
        default:
            return ks_cli_usage_error("network create", "invalid flag");
        }
    }
    if (ks_cli_nargs("network create", argc - optind, 1, 1, true))
        return 1;
    o.name = argv[optind];
    o.labels = labels.v;
    o.options = options.v;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_free_ char *id = NULL;
    if (ks_cli_engine_open(&e, &err) < 0 || ks_net_network_create(e, &o, &id, &err) < 0)
        return ks_cli_fail(err, 1);
    printf("%s\n", id);
    return 0;
}

struct filters {
    const char *k[16], *v[16];
    size_t n;
};

static bool label_match(json_object *labels, const char *want)
{
    const char *eq = strchr(want, '=');
    _cleanup_free_ char *k = eq ? strndup(want, (size_t)(eq - want)) : strdup(want);
    const char *v = k ? ks_json_str(labels, k) : NULL;
    return v && (eq == NULL || strcmp(v, eq + 1) == 0);
}

static bool matches(const struct filters *f, json_object *net)
{
    /* Docker: values of one key are alternatives, different keys must all match. */
    static const char *const keys[] = {"name", "id", "driver", "label", "type"};
    for (size_t k = 0; k < KS_ELEMENTSOF(keys); k++) {
        bool any = false, hit = false;
        for (size_t i = 0; i < f->n; i++) {
            if (strcmp(f->k[i], keys[k]) != 0)
                continue;
            any = true;
            const char *v = f->v[i];
            const char *name = ks_json_str(net, "Name"), *id = ks_json_str(net, "Id");
            bool pre = strcmp(name, "bridge") == 0 || strcmp(name, "host") == 0 ||
                       strcmp(name, "none") == 0;
            if (k == 0)
                hit |= strstr(name, v) != NULL;
            else if (k == 1)
                hit |= strncmp(id, v, strlen(v)) == 0;
            else if (k == 2)
                hit |= strcmp(ks_json_str(net, "Driver"), v) == 0;
            else if (k == 3)
                hit |= label_match(ks_json_get(net, "Labels"), v);
            else
                hit |= strcmp(v, pre ? "builtin" : "custom") == 0;
        }
        if (any && !hit)
            return false;
    }
    return true;
}

static json_object *ls_row(json_object *net)
{
    json_object *row = json_object_new_object();
    const char *id = ks_json_str(net, "Id");
    char shortid[13];
    snprintf(shortid, sizeof(shortid), "%.12s", id);
    json_object_object_add(row, "ID", json_object_new_string(shortid));
    json_object_object_add(row, "Name", json_object_new_string(ks_json_str(net, "Name")));
    json_object_object_add(row, "Driver", json_object_new_string(ks_json_str(net, "Driver")));
    json_object_object_add(row, "Scope", json_object_new_string("local"));
    json_object_object_add(row, "IPv6", json_object_new_string("false"));
    json_object_object_add(
        row, "Internal",
        json_object_new_string(ks_json_bool(net, "Internal", false) ? "true" : "false"));
    json_object_object_add(row, "CreatedAt", json_object_new_string(ks_json_str(net, "Created")));
    _cleanup_free_ char *labels = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&labels, &len);
    json_object *l = ks_json_get(net, "Labels");
    bool first = true;
    if (f && l) {
        json_object_object_foreach(l, k, v)
        {
            fprintf(f, "%s%s=%s", first ? "" : ",", k, json_object_get_string(v));
            first = false;
        }
    }
    if (f)
        fclose(f);
    json_object_object_add(row, "Labels", json_object_new_string(labels ? labels : ""));
    return row;
}

/* Prints the rows of `network ls` with Docker's table, -q or a --format template. */
static int ls_print(json_object **rows, size_t m, bool quiet, const char *format)
{
    int rc = 0;
    const char *tmpl = quiet ? "{{.ID}}"
                       : format == NULL || strcmp(format, "table") == 0
                           ? "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
                           : format;
    if (format && strcmp(format, "json") == 0) {
        for (size_t i = 0; i < m; i++)
            printf("%s\n", ks_json_plain(rows[i]));
    } else {
        _cleanup_json_ json_object *header = json_object_new_object();
        static const char *const h[][2] = {
            {"ID", "NETWORK ID"}, {"Name", "NAME"},         {"Driver", "DRIVER"},
            {"Scope", "SCOPE"},   {"IPv6", "IPV6"},         {"Internal", "INTERNAL"},
            {"Labels", "LABELS"}, {"CreatedAt", "CREATED"},
        };
        for (size_t i = 0; i < KS_ELEMENTSOF(h); i++)
            json_object_object_add(header, h[i][0], json_object_new_string(h[i][1]));
        if (ks_fmt_rows(tmpl, header, rows, m) < 0) {
            fprintf(stderr, "Error: invalid format `%s`\n", format);
            rc = 1;
        }
    }
    return rc;
}

static int net_ls(int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},        {"filter", required_argument, NULL, 'f'},
        {"format", required_argument, NULL, 'F'}, {"no-trunc", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},         {0},
    };
    struct filters f = {0};
    bool quiet = false, notrunc = false;
    const char *format = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qf:", opts, NULL)) != -1) {
        if (c == 'q') {
            quiet = true;
        } else if (c == 'n') {
            notrunc = true;
        } else if (c == 'F') {
            format = optarg;
        } else if (c == 'f') {
            char *eq = strchr(optarg, '=');
            if (eq == NULL || f.n >= KS_ELEMENTSOF(f.k)) {
                fprintf(stderr, "Error: bad format of filter (expected name=value)\n");
                return 1;
            }
            *eq = '\0';
            if (strcmp(optarg, "name") && strcmp(optarg, "id") && strcmp(optarg, "driver") &&
                strcmp(optarg, "label") && strcmp(optarg, "type")) {
                fprintf(stderr, "Error: invalid filter '%s'\n", optarg);
                return 1;
            }
            f.k[f.n] = optarg;
            f.v[f.n++] = eq + 1;
        } else if (c == 'h') {
            printf("Usage: kiste network ls [-q] [--filter KEY=VALUE] [--format TEMPLATE]\n");
            return 0;
        } else {
            return ks_cli_usage_error("network ls", "invalid flag");
        }
    }
    if (ks_cli_nargs("network ls", argc - optind, 0, 0, true))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_json_ json_object *all = NULL;
    if (ks_cli_engine_open(&e, &err) < 0 || ks_net_network_list(e, &all, &err) < 0)
        return ks_cli_fail(err, 1);
    size_t n = json_object_array_length(all), m = 0;
    _cleanup_free_ json_object **rows = calloc(n + 1, sizeof(*rows));
    if (rows == NULL)
        return ks_cli_fail(NULL, 1);
    for (size_t i = 0; i < n; i++) {
        json_object *net = json_object_array_get_idx(all, i);
        if (!matches(&f, net))
            continue;
        rows[m] = ls_row(net);
        if (notrunc)
            json_object_object_add(rows[m], "ID", json_object_new_string(ks_json_str(net, "Id")));
        m++;
    }
    int rc = ls_print(rows, m, quiet, format);
    for (size_t i = 0; i < m; i++)
        json_object_put(rows[i]);
    return rc;
}

static int net_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0}};
    const char *format = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
        if (c == 'f')
            format = optarg;
        else if (c == 'h') {
            printf("Usage: kiste network inspect [-f FORMAT] NETWORK [NETWORK...]\n");
            return 0;
        } else
            return ks_cli_usage_error("network inspect", "invalid flag");
    }
    if (ks_cli_nargs("network inspect", argc - optind, 1, -1, true))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    _cleanup_json_ json_object *out = json_object_new_array();
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        _cleanup_free_ char *id = NULL;
        json_object *o = NULL;
        if (ks_net_network_find(e, argv[i], &id, &err) < 0 ||
            ks_net_network_inspect(e, id, &o, &err) < 0) {
            rc = ks_cli_fail(err, 1);
            err = NULL;
            continue;
        }
        json_object_array_add(out, o);
    }
    if (ks_cli_print_inspect(out, format) != 0)
        return 1;
    return rc;
}

static int net_rm(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("Usage: kiste network rm NETWORK [NETWORK...]\n");
        return 0;
    }
    if (ks_cli_nargs("network rm", argc - 1, 1, -1, true))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        _cleanup_free_ char *id = NULL;
        if (ks_net_network_find(e, argv[i], &id, &err) < 0 ||
            ks_net_network_remove(e, id, &err) < 0) {
            rc = ks_cli_fail(err, 1);
            err = NULL;
            continue;
        }
        printf("%s\n", argv[i]);
    }
    return rc;
}

static int net_prune(int argc, char **argv)
{
    bool force = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--force") == 0)
            force = true;
        else if (strcmp(argv[i], "--help") == 0) {
            printf("Usage: kiste network prune [-f]\n");
            return 0;
        } else
            return ks_cli_usage_error("network prune", "unknown flag");
    }
    if (!force) {
        fprintf(stderr, "WARNING! This will remove all custom networks not used by at least one "
                        "container.\nAre you sure you want to continue? [y/N] ");
        char ans[16] = "";
        if (fgets(ans, sizeof(ans), stdin) == NULL || (ans[0] != 'y' && ans[0] != 'Y'))
            return 0;
    }
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_strv_ char **names = NULL;
    if (ks_cli_engine_open(&e, &err) < 0 || ks_net_network_prune(e, &names, &err) < 0)
        return ks_cli_fail(err, 1);
    if (names && names[0]) {
        printf("Deleted Networks:\n");
        for (size_t i = 0; names[i]; i++)
            printf("%s\n", names[i]);
    }
    return 0;
}

static int net_connect(int argc, char **argv, bool connect)
{
    static const struct option opts[] = {
        {"ip", required_argument, NULL, 'i'},    {"ip6", required_argument, NULL, '6'},
        {"alias", required_argument, NULL, 'a'}, {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},        {0},
    };
    const char *cmd = connect ? "network connect" : "network disconnect";
    const char *ip = NULL;
    struct kv_list aliases = {0};
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        if (c == 'i' && connect)
            ip = optarg;
        else if (c == 'a' && connect) {
            if (kv_add(&aliases, optarg, "aliases") < 0)
                return 1;
        } else if (c == 'f' && !connect)
            force = true;
        else if (c == '6') {
            fprintf(stderr, "Error: IPv6 is not supported yet\n");
            return 1;
        } else if (c == 'h') {
            printf("Usage: kiste %s [OPTIONS] NETWORK CONTAINER\n", cmd);
            return 0;
        } else
            return ks_cli_usage_error(cmd, "invalid flag");
    }
    if (ks_cli_nargs(cmd, argc - optind, 2, 2, true))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    int r = connect ? ks_net_connect(e, argv[optind + 1], argv[optind], ip, aliases.v, &err)
                    : ks_net_disconnect(e, argv[optind + 1], argv[optind], force, &err);
    return r < 0 ? ks_cli_fail(err, 1) : 0;
}

static int net_connect_cmd(int argc, char **argv)
{
    return net_connect(argc, argv, true);
}

static int net_disconnect_cmd(int argc, char **argv)
{
    return net_connect(argc, argv, false);
}

static int net_release(int argc, char **argv)
{
    if (ks_cli_nargs("network release", argc - 1, 1, 1, false))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0 || ks_net_release(e, argv[1], &err) < 0)
        return ks_cli_fail(err, 1);
    return 0;
}

static int net_teardown(int argc, char **argv)
{
    (void)argv;
    if (ks_cli_nargs("network teardown", argc - 1, 0, 0, false))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0 || ks_net_teardown(e, &err) < 0)
        return ks_cli_fail(err, 1);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"create", net_create},
    {"ls", net_ls},
    {"list", net_ls},
    {"inspect", net_inspect},
    {"rm", net_rm},
    {"remove", net_rm},
    {"prune", net_prune},
    {"connect", net_connect_cmd},
    {"disconnect", net_disconnect_cmd},
    {"release", net_release},
    {"teardown", net_teardown},
};

int ks_cli_network(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "Usage: kiste network COMMAND\n\nCommands:\n"
                   "  connect     Connect a container to a network\n"
                   "  create      Create a network\n"
                   "  disconnect  Disconnect a container from a network\n"
                   "  inspect     Display detailed information on one or more networks\n"
                   "  ls          List networks\n"
                   "  prune       Remove all unused networks\n"
                   "  rm          Remove one or more networks\n"
                   "  teardown    Delete this root's bridges and firewall table from the kernel\n");
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < KS_ELEMENTSOF(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiste network: unknown command `%s`\n", argv[1]);
    return 1;
}

/* --- port --- */

int ks_cli_network_port(int argc, char **argv)
{
    if (ks_cli_nargs("port", argc - 1, 1, 2, false))
        return 1;
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    _cleanup_json_ json_object *config = NULL, *ns = NULL;
    if (ks_cli_open_container(argv[1], &e, &ct, &config, &err) < 0)
        return ks_cli_fail(err, 1);
    struct ks_container_state st;
    if (ks_engine_state_get(e, ct->id, &st, &err) < 0)
        return ks_cli_fail(err, 1);
    ks_engine_state_clear(&st);
    bool live = st.status == KS_CONTAINER_RUNNING || st.status == KS_CONTAINER_PAUSED;
    if (ks_net_settings_json(e, ct->id, config, live, &ns, &err) < 0)
        return ks_cli_fail(err, 1);
    char want[32] = "";
    if (argc > 2)
        snprintf(want, sizeof(want), "%s%s", argv[2], strchr(argv[2], '/') ? "" : "/tcp");
    bool found = false;
    json_object_object_foreach(ks_json_get(ns, "Ports"), key, arr)
    {
        if (*want && strcmp(key, want) != 0)
            continue;
        for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
            json_object *b = json_object_array_get_idx(arr, i);
            if (*want)
                printf("%s:%s\n", ks_json_str(b, "HostIp"), ks_json_str(b, "HostPort"));
            else
                printf("%s -> %s:%s\n", key, ks_json_str(b, "HostIp"), ks_json_str(b, "HostPort"));
            found = true;
        }
    }
    if (*want && !found) {
        fprintf(stderr, "Error: No public port '%s' published for %s\n", want, argv[1]);
        return 1;
    }
    return 0;
}
