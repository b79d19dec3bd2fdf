/* `kiste ps`: Docker's container table, its filters and --format. */
#define _XOPEN_SOURCE 700
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "container.h"
#include "format.h"
#include "lib/base/clock.h"
#include "lib/base/json.h"
#include "lib/image/store.h"
#include "lib/net/net.h"
#include "lib/volume/volume.h"

#define DEFAULT_FORMAT                                                                             \
    "table "                                                                                       \
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"

struct ps_filter {
    char *key, *value;
};

struct ps_opts {
    bool all, quiet, size, no_trunc, latest;
    long last;
    const char *format;
    struct ps_filter filters[32];
    size_t n_filters;
    /* before/since resolved to creation times, ancestor to image IDs */
    int64_t before, since;
    char *ancestors[32];
    size_t n_ancestors;
};

struct ps_item {
    struct ks_db_container *c;
    json_object *config; /* parsed only for a label filter */
    struct ks_container_state st;
};

struct ps_list {
    struct ks_engine *e;
    bool need_config; /* a label filter: keep and parse each config */
    struct ps_item *items;
    size_t n, cap;
};

static int collect(const struct ks_db_container *c, void *userdata)
{
    struct ps_list *l = userdata;
    /* Doubling: an item is ~700 bytes, and growing by one copied the list once per container. */
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct ps_item *v = reallocarray(l->items, cap, sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        l->items = v;
        l->cap = cap;
    }
    struct ps_item *it = &l->items[l->n];
    memset(it, 0, sizeof(*it));
    it->c = calloc(1, sizeof(*it->c));
    if (it->c == NULL)
        return -ENOMEM;
    it->c->id = strdup(c->id);
    it->c->name = strdup(c->name);
    it->c->image_id = strdup(c->image_id);
    it->c->image_ref = strdup(c->image_ref);
    it->c->snapshot = c->snapshot ? strdup(c->snapshot) : NULL;
    it->c->command = strdup(c->command ? c->command : "");
    it->c->labels = strdup(c->labels ? c->labels : "");
    it->c->created = c->created;
    /* The command and labels ps prints are columns of their own: parsing every config was most
     * of the time of ps with many containers. */
    if (l->need_config && ks_json_parse(c->config, strlen(c->config), &it->config, NULL) < 0)
        it->config = json_object_new_object();
    ks_engine_state_get(l->e, c->id, &it->st, NULL);
    l->n++;
    return 0;
}

static void list_free(struct ps_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        ks_db_container_free(l->items[i].c);
        json_object_put(l->items[i].config);
        ks_engine_state_clear(&l->items[i].st);
    }
    free(l->items);
}

/* Docker's units.HumanDuration. */
static void human_duration(int64_t d, char *buf, size_t len)
{
    ks_fmt_since((int64_t)time(NULL) - d, buf, len);
    size_t n = strlen(buf);
    if (n > 4 && strcmp(buf + n - 4, " ago") == 0)
        buf[n - 4] = '\0';
}

static int64_t seconds_since(const char *rfc3339)
{
    int64_t t = ks_rfc3339_parse(rfc3339);
    int64_t d = t < 0 ? 0 : (int64_t)time(NULL) - t;
    return d < 0 ? 0 : d;
}

static void status_text(const struct ps_item *it, char *buf, size_t len)
{
    char d[64];
    const struct ks_container_state *st = &it->st;
    switch (st->status) {
    case KS_CONTAINER_CREATED:
        snprintf(buf, len, "Created");
        return;
    case KS_CONTAINER_RESTARTING:
        human_duration(seconds_since(st->finished_at), d, sizeof(d));
        snprintf(buf, len, "Restarting (%d) %s ago", st->exit_code, d);
        return;
    case KS_CONTAINER_EXITED:
        human_duration(seconds_since(st->finished_at), d, sizeof(d));
        snprintf(buf, len, "Exited (%d) %s ago", st->exit_code, d);
        return;
    case KS_CONTAINER_DEAD:
        snprintf(buf, len, "Dead");
        return;
    default:
        break;
    }
    human_duration(seconds_since(st->started_at), d, sizeof(d));
    const char *health = st->health ? ks_json_str(st->health, "Status") : NULL;
    char extra[48] = "";
    if (st->status == KS_CONTAINER_PAUSED)
        snprintf(extra, sizeof(extra), " (Paused)");
    else if (health && strcmp(health, "starting") == 0)
        snprintf(extra, sizeof(extra), " (health: starting)");
    else if (health)
        snprintf(extra, sizeof(extra), " (%s)", health);
    snprintf(buf, len, "Up %s%s", d, extra);
}

/* "path arg arg", Docker's Command, quoted; truncated to 20 characters with "…" unless
 * no_trunc. NULL when out of memory. */
static char *command_text(const char *cmd, bool no_trunc)
{
    size_t len = strlen(cmd);
    if (!no_trunc) {
        /* 20 characters, counting UTF-8 sequences as one. */
        size_t chars = 0, i = 0;
        for (; cmd[i]; i++)
            if (((unsigned char)cmd[i] & 0xc0) != 0x80 && ++chars == 20)
                break;
        if (cmd[i] && chars == 20)
            len = i;
    }
    bool cut = len < strlen(cmd);
    /* Every character may gain a backslash; quotes, "…" (3 bytes) and the NUL. */
    char *q = malloc(2 * len + 6);
    if (q == NULL)
        return NULL;
    char *p = q;
    *p++ = '"';
    for (size_t i = 0; i < len; i++) {
        /* The "…" is not escaped: only the command's own characters are. */
        if (cmd[i] == '"' || cmd[i] == '\\')
            *p++ = '\\';
        *p++ = cmd[i];
    }
    if (cut)
        p = stpcpy(p, "…");
    *p++ = '"';
    *p = '\0';
    return q;
}

static const char *image_text(const struct ps_item *it, char *buf, size_t len)
{
    const char *ref = it->c->image_ref;
    if (strncmp(ref, "sha256:", 7) == 0) {
        snprintf(buf, len, "%.12s", ref + 7);
        return buf;
    }
    return ref;
}

static void size_text(struct ks_engine *e, const struct ps_item *it, char *buf, size_t len)
{
    char a[32], b[32];
    int64_t rw = ks_engine_container_size(e, it->c);
    _cleanup_db_image_ struct ks_db_image *img = NULL;
    int64_t virt = rw;
    if (ks_db_image_get(ks_store_db(e->store), it->c->image_id, &img, NULL) == 0)
        virt += img->size;
    ks_fmt_size(rw, a, sizeof(a));
    ks_fmt_size(virt, b, sizeof(b));
    snprintf(buf, len, "%s (virtual %s)", a, b);
}

/* Whether the template format may print the row's key: it names ".key", or has a "." not
 * followed by a name (as {{json .}}, the whole row). Building only those keys saves most of
 * the work per row of the default table. */
static bool wants(const char *format, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = strchr(format, '.'); p; p = strchr(p + 1, '.')) {
        if (!isalpha((unsigned char)p[1]) || strncmp(p + 1, key, kl) == 0)
            return true;
    }
    return false;
}

static void add(json_object *r, const char *format, const char *key, const char *value)
{
    if (wants(format, key))
        json_object_object_add(r, key, json_object_new_string(value));
}

/* Docker's PORTS: the published and exposed ports of a running container. Owned, or NULL. */
static char *ports_text(struct ks_engine *e, const struct ps_item *it)
{
    if (it->st.status != KS_CONTAINER_RUNNING && it->st.status != KS_CONTAINER_PAUSED)
        return NULL;
    _cleanup_json_ json_object *parsed = NULL;
    json_object *config = it->config;
    /* Parsing a thousand configs costs ps tens of ms: only those that expose ports. */
    if (config == NULL && it->c->config && strstr(it->c->config, "\"ExposedPorts\"") &&
        ks_json_parse(it->c->config, strlen(it->c->config), &parsed, NULL) >= 0)
        config = parsed;
    char *text = NULL;
    return ks_net_ports_summary(e, it->c->id, config, &text, NULL) < 0 ? NULL : text;
}

static json_object *row(struct ks_engine *e, const struct ps_item *it, const struct ps_opts *o,
                        const char *format)
{
    json_object *r = json_object_new_object();
    char buf[256];
    json_object_object_add(r, "ID", json_object_new_string_len(it->c->id, o->no_trunc ? 64 : 12));
    add(r, format, "Image", image_text(it, buf, sizeof(buf)));
    if (wants(format, "Command")) {
        _cleanup_free_ char *cmd = command_text(it->c->command, o->no_trunc);
        add(r, format, "Command", cmd ? cmd : "\"\"");
    }
    int64_t created = it->c->created / 1000000000;
    if (wants(format, "CreatedAt")) {
        ks_fmt_time(created, buf, sizeof(buf));
        add(r, format, "CreatedAt", buf);
    }
    if (wants(format, "RunningFor")) {
        ks_fmt_since(created, buf, sizeof(buf));
        add(r, format, "RunningFor", buf);
    }
    if (wants(format, "Ports")) {
        _cleanup_free_ char *ports = ports_text(e, it);
        add(r, format, "Ports", ports ? ports : "");
    }
    add(r, format, "State", ks_engine_status_name(it->st.status));
    if (wants(format, "Status")) {
        status_text(it, buf, sizeof(buf));
        add(r, format, "Status", buf);
    }
    if (o->size && wants(format, "Size"))
        size_text(e, it, buf, sizeof(buf));
    add(r, format, "Size", o->size ? buf : "");
    add(r, format, "Names", it->c->name);
    add(r, format, "Labels", it->c->labels);
    add(r, format, "Mounts", "");
    add(r, format, "Networks", "");
    return r;
}

static json_object *header(void)
{
    static const char *const h[][2] = {
        {"ID", "CONTAINER ID"},      {"Image", "IMAGE"},        {"Command", "COMMAND"},
        {"CreatedAt", "CREATED AT"}, {"RunningFor", "CREATED"}, {"Ports", "PORTS"},
        {"State", "STATE"},          {"Status", "STATUS"},      {"Size", "SIZE"},
        {"Names", "NAMES"},          {"Labels", "LABELS"},      {"Mounts", "MOUNTS"},
        {"Networks", "NETWORKS"},
    };
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < KS_ELEMENTSOF(h); i++)
        json_object_object_add(o, h[i][0], json_object_new_string(h[i][1]));
    return o;
}

static bool label_match(json_object *labels, const char *want)
{
    const char *eq = strchr(want, '=');
    size_t kl = eq ? (size_t)(eq - want) : strlen(want);
    if (labels == NULL)
        return false;
    json_object_object_foreach(labels, k, v)
    {
        if (strlen(k) == kl && strncmp(k, want, kl) == 0)
            return eq == NULL || strcmp(json_object_get_string(v), eq + 1) == 0;
    }
    return false;
}

/* Docker's rule: values of one key are ORed, different keys ANDed. */
static bool key_match(const struct ps_opts *o, const char *key, const struct ps_item *it)
{
    bool any = false;
    for (size_t i = 0; i < o->n_filters; i++) {
        const struct ps_filter *f = &o->filters[i];
        if (strcmp(f->key, key) != 0)
            continue;
        any = true;
        const char *v = f->value;
        bool m = false;
        if (strcmp(key, "id") == 0)
            m = strncmp(it->c->id, v, strlen(v)) == 0;
        else if (strcmp(key, "name") == 0)
            m = strstr(it->c->name, v[0] == '/' ? v + 1 : v) != NULL;
        else if (strcmp(key, "label") == 0)
            m = label_match(ks_json_get(ks_json_get(it->config, "Config"), "Labels"), v);
        else if (strcmp(key, "status") == 0)
            m = strcmp(ks_engine_status_name(it->st.status), v) == 0;
        else if (strcmp(key, "exited") == 0)
            m = it->st.status == KS_CONTAINER_EXITED && it->st.exit_code == atoi(v);
        else if (strcmp(key, "volume") == 0)
            m = ks_engine_volumes_match(it->config, v);
        else if (strcmp(key, "health") == 0) {
            const char *h = it->st.health ? ks_json_str(it->st.health, "Status") : NULL;
            m = strcmp(h ? h : "none", v) == 0;
        }
        if (m)
            return true;
    }
    return !any;
}

static bool matches(const struct ps_opts *o, const struct ps_item *it)
{
    static const char *const keys[] = {"id",     "name",   "label", "status",
                                       "exited", "health", "volume"};
    for (size_t i = 0; i < KS_ELEMENTSOF(keys); i++) {
        if (!key_match(o, keys[i], it))
            return false;
    }
    if (o->n_ancestors > 0) {
        bool found = false;
        for (size_t i = 0; i < o->n_ancestors && !found; i++)
            found = strcmp(o->ancestors[i], it->c->image_id) == 0;
        if (!found)
            return false;
    }
    if (o->before && it->c->created >= o->before)
        return false;
    if (o->since && it->c->created <= o->since)
        return false;
    return true;
}

static int parse_filters(struct ks_engine *e, struct ps_opts *o)
{
    struct ks_error *err = NULL;
    for (size_t i = 0; i < o->n_filters; i++) {
        const char *k = o->filters[i].key, *v = o->filters[i].value;
        if (strcmp(k, "before") == 0 || strcmp(k, "since") == 0) {
            _cleanup_db_container_ struct ks_db_container *c = NULL;
            if (ks_engine_lookup(e, v, &c, NULL, &err) < 0)
                return ks_cli_fail(err, 1);
            *(strcmp(k, "before") == 0 ? &o->before : &o->since) = c->created;
        } else if (strcmp(k, "ancestor") == 0) {
            char *id = NULL;
            if (ks_store_lookup(e->store, v, &id, &err) < 0) {
                ks_error_free(TAKE_PTR(err));
                id = strdup("none");
            }
            if (o->n_ancestors < KS_ELEMENTSOF(o->ancestors))
                o->ancestors[o->n_ancestors++] = id;
            else
                free(id);
        } else if (strcmp(k, "status") == 0) {
            static const char *const ok[] = {"created", "restarting", "running", "removing",
                                             "paused",  "exited",     "dead"};
            bool valid = false;
            for (size_t j = 0; j < KS_ELEMENTSOF(ok); j++)
                valid |= strcmp(v, ok[j]) == 0;
            if (!valid) {
                fprintf(stderr, "Error: invalid filter 'status=%s'\n", v);
                return 1;
            }
        } else if (strcmp(k, "health") == 0) {
            if (strcmp(v, "starting") != 0 && strcmp(v, "healthy") != 0 &&
                strcmp(v, "unhealthy") != 0 && strcmp(v, "none") != 0) {
                fprintf(stderr, "Error: Unrecognised filter value for health: %s\n", v);
                return 1;
            }
        } else if (strcmp(k, "id") != 0 && strcmp(k, "name") != 0 && strcmp(k, "label") != 0 &&
                   strcmp(k, "exited") != 0 && strcmp(k, "volume") != 0) {
            fprintf(stderr, "Error: invalid filter '%s'\n", k);
            return 1;
        }
    }
    return 0;
}

static int add_filter(struct ps_opts *o, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL || o->n_filters >= KS_ELEMENTSOF(o->filters)) {
        fprintf(stderr, "Error: bad format of filter (expected name=value)\n");
        return 1;
    }
    o->filters[o->n_filters].key = strndup(arg, (size_t)(eq - arg));
    o->filters[o->n_filters].value = strdup(eq + 1);
    o->n_filters++;
    return 0;
}

static void opts_free(struct ps_opts *o)
{
    for (size_t i = 0; i < o->n_filters; i++) {
        free(o->filters[i].key);
        free(o->filters[i].value);
    }
    for (size_t i = 0; i < o->n_ancestors; i++)
        free(o->ancestors[i]);
}

static int parse_args(int argc, char **argv, struct ps_opts *o)
{
    static const struct option opts[] = {
        {"all", no_argument, NULL, 'a'},
        {"quiet", no_argument, NULL, 'q'},
        {"size", no_argument, NULL, 's'},
        {"no-trunc", no_argument, NULL, 'T'},
        {"latest", no_argument, NULL, 'l'},
        {"last", required_argument, NULL, 'n'},
        {"filter", required_argument, NULL, 'f'},
        {"format", required_argument, NULL, 'F'},
        {0},
    };
    int c;
    o->last = -1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+aqsln:f:", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            o->all = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 's':
            o->size = true;
            break;
        case 'T':
            o->no_trunc = true;
            break;
        case 'l':
            o->latest = true;
            break;
        case 'n':
            o->last = atol(optarg);
            break;
        case 'f':
            if (add_filter(o, optarg))
                return 1;
            break;
        case 'F':
            o->format = optarg;
            break;
        default:
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kiste ps: accepts no arguments\n");
        return 1;
    }
    return 0;
}

int ks_cli_ps(int argc, char **argv)
{
    struct ps_opts o = {0};
    int r = parse_args(argc, argv, &o);
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (r == 0 && ks_cli_engine_open(&e, &err) < 0)
        r = ks_cli_fail(err, 1);
    if (r == 0)
        r = parse_filters(e, &o);
    struct ps_list l = {.e = e};
    for (size_t i = 0; i < o.n_filters; i++)
        l.need_config |=
            strcmp(o.filters[i].key, "label") == 0 || strcmp(o.filters[i].key, "volume") == 0;
    if (r == 0 && ks_db_containers_list(ks_store_db(e->store), collect, &l, &err) < 0)
        r = ks_cli_fail(err, 1);
    if (r != 0) {
        list_free(&l);
        opts_free(&o);
        return r;
    }
    long limit = o.latest ? 1 : o.last;
    /* -n and -l look at every container; a status filter too, as Docker does. */
    bool all = o.all || limit >= 0;
    for (size_t i = 0; i < o.n_filters; i++)
        all |= strcmp(o.filters[i].key, "status") == 0 || strcmp(o.filters[i].key, "exited") == 0;
    const char *format = o.quiet ? "{{.ID}}" : o.format ? o.format : NULL;
    char def[256];
    if (format == NULL) {
        snprintf(def, sizeof(def), "%s%s", DEFAULT_FORMAT, o.size ? "\t{{.Size}}" : "");
        format = def;
    }
    json_object **rows = calloc(l.n + 1, sizeof(json_object *));
    size_t n = 0;
    for (size_t i = 0; rows && i < l.n && (limit < 0 || (long)n < limit); i++) {
        const struct ps_item *it = &l.items[i];
        enum ks_container_status s = it->st.status;
        bool up =
            s == KS_CONTAINER_RUNNING || s == KS_CONTAINER_PAUSED || s == KS_CONTAINER_RESTARTING;
        if ((!all && !up) || !matches(&o, it))
            continue;
        rows[n++] = row(e, it, &o, format);
    }
    _cleanup_json_ json_object *h = header();
    r = ks_fmt_rows(format, h, rows, n);
    for (size_t i = 0; i < n; i++)
        json_object_put(rows[i]);
    free(rows);
    list_free(&l);
    opts_free(&o);
    if (r < 0) {
        fprintf(stderr, "Error: template parsing error: %s\n", format);
        return 1;
    }
    return 0;
}
