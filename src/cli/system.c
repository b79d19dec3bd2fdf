/* `kiste system df`: what images, containers, volumes and the build cache hold on disk, and
 * what of it could be reclaimed, as Docker counts it: a layer shared by several images is
 * counted once; an image is active while a container uses it, and its layers are reclaimable
 * only when no active image shares them; a container's size is its writable layer. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "container.h"
#include "format.h"
#include "lib/base/cleanup.h"
#include "lib/base/fs.h"
#include "lib/base/json.h"
#include "lib/engine/db.h"
#include "lib/image/store.h"
#include "system.h"

struct df_row {
    const char *type;
    int64_t total, active, size, reclaimable;
};

struct df_images {
    struct ks_db *db;
    int64_t total, active;
    int64_t err;
};

/* Marks the layers of images in use: a temporary table keeps this one query. */
static int df_image_cb(const struct ks_db_image *img, void *userdata)
{
    struct df_images *d = userdata;
    d->total++;
    _cleanup_free_ char *user = NULL;
    if (ks_db_container_using_image(d->db, img->id, &user, NULL) < 0)
        return 0;
    d->active++;
    for (size_t i = 0; i < img->n_layers; i++) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if (ks_db_prepare(d->db, "INSERT OR IGNORE INTO temp.df_active VALUES (?)", &st, NULL) < 0)
            return -ENOMEM;
        sqlite3_bind_text(st, 1, img->chain_ids[i], -1, SQLITE_STATIC);
        if (ks_db_step(d->db, st, "record an active layer", NULL) < 0)
            return -EIO;
    }
    return 0;
}

static int64_t query_int(struct ks_db *db, const char *sql, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db, sql, &st, err);
    if (r >= 0)
        r = ks_db_step(db, st, "sum the layer sizes", err);
    if (r < 0)
        return r;
    return r > 0 ? sqlite3_column_int64(st, 0) : 0;
}

static int df_images(struct ks_db *db, struct df_row *row, struct ks_error **err)
{
    int r = ks_db_exec(db,
                       "CREATE TEMP TABLE IF NOT EXISTS df_active (chain_id TEXT PRIMARY KEY);"
                       "DELETE FROM temp.df_active;",
                       err);
    struct df_images d = {.db = db};
    if (r >= 0)
        r = ks_db_images_list(db, df_image_cb, &d, err);
    if (r < 0)
        return r;
    int64_t size = query_int(db, "SELECT COALESCE(SUM(size), 0) FROM layers", err);
    int64_t used = size < 0 ? size
                            : query_int(db,
                                        "SELECT COALESCE(SUM(size), 0) FROM layers WHERE chain_id "
                                        "IN (SELECT chain_id FROM temp.df_active)",
                                        err);
    if (used < 0)
        return (int)used;
    *row = (struct df_row){"Images", d.total, d.active, size, size - used};
    return 0;
}

struct df_containers {
    struct ks_engine *engine;
    struct df_row *row;
};

static int df_container_cb(const struct ks_db_container *c, void *userdata)
{
    struct df_containers *d = userdata;
    int64_t size = ks_engine_container_size(d->engine, c);
    struct ks_container_state st = {0};
    bool running = false;
    if (ks_engine_state_get(d->engine, c->id, &st, NULL) >= 0)
        running = st.status == KS_CONTAINER_RUNNING || st.status == KS_CONTAINER_PAUSED ||
                  st.status == KS_CONTAINER_RESTARTING;
    ks_engine_state_clear(&st);
    d->row->total++;
    d->row->size += size;
    if (running)
        d->row->active++;
    else
        d->row->reclaimable += size;
    return 0;
}

static void print_size_pct(char *buf, size_t len, int64_t part, int64_t whole, bool pct)
{
    char s[32];
    ks_fmt_size(part, s, sizeof(s));
    if (pct && whole > 0)
        snprintf(buf, len, "%s (%d%%)", s, (int)(part * 100 / whole));
    else
        snprintf(buf, len, "%s", s);
}

static int df_print(const struct df_row *rows, size_t n, const char *format)
{
    _cleanup_json_ json_object *header = json_object_new_object();
    json_object_object_add(header, "Type", json_object_new_string("TYPE"));
    json_object_object_add(header, "TotalCount", json_object_new_string("TOTAL"));
    json_object_object_add(header, "Active", json_object_new_string("ACTIVE"));
    json_object_object_add(header, "Size", json_object_new_string("SIZE"));
    json_object_object_add(header, "Reclaimable", json_object_new_string("RECLAIMABLE"));
    json_object *objs[8];
    for (size_t i = 0; i < n; i++) {
        char size[32], recl[48];
        ks_fmt_size(rows[i].size, size, sizeof(size));
        print_size_pct(recl, sizeof(recl), rows[i].reclaimable, rows[i].size, true);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "Type", json_object_new_string(rows[i].type));
        json_object_object_add(o, "TotalCount", json_object_new_int64(rows[i].total));
        json_object_object_add(o, "Active", json_object_new_int64(rows[i].active));
        json_object_object_add(o, "Size", json_object_new_string(size));
        json_object_object_add(o, "Reclaimable", json_object_new_string(recl));
        objs[i] = o;
    }
    const char *tmpl = format ? format
                              : "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t"
                                "{{.Reclaimable}}";
    int r = ks_fmt_rows(tmpl, header, objs, n);
    for (size_t i = 0; i < n; i++)
        json_object_put(objs[i]);
    if (r < 0) {
        fprintf(stderr, "Error: unsupported --format `%s`\n", format);
        return 1;
    }
    return 0;
}

/* -v: Docker's "Local Volumes space usage" table after the summary. */
static void df_print_volumes(json_object *volumes)
{
    struct ks_table t = {0};
    ks_table_add_line(&t, "VOLUME NAME\tLINKS\tSIZE");
    for (size_t i = 0; i < json_object_array_length(volumes); i++) {
        json_object *v = json_object_array_get_idx(volumes, i);
        char size[32], line[512];
        ks_fmt_size(ks_json_int(v, "Size", 0), size, sizeof(size));
        snprintf(line, sizeof(line), "%s\t%lld\t%s", ks_json_str(v, "Name"),
                 (long long)ks_json_int(v, "Links", 0), size);
        ks_table_add_line(&t, line);
    }
    printf("\nLocal Volumes space usage:\n\n");
    ks_table_print(stdout, &t);
    ks_table_free(&t);
}

static int system_df(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'F'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *format = NULL;
    bool verbose = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 'F':
            format = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            printf("Usage: kiste system df [--format TEMPLATE]\n\nShow disk usage\n");
            return 0;
        default:
            return 125;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "Error: \"system df\" accepts no arguments\n");
        return 125;
    }
    struct ks_error *e = NULL;
    _cleanup_engine_ struct ks_engine *engine = NULL;
    if (ks_cli_engine_open(&engine, &e) < 0)
        return ks_cli_fail(e, 125);
    struct df_row rows[4] = {
        {.type = "Images"},
        {.type = "Containers"},
        {.type = "Local Volumes"},
        {.type = "Build Cache"},
    };
    struct ks_db *db = ks_store_db(engine->store);
    struct df_containers dc = {engine, &rows[1]};
    _cleanup_json_ json_object *volumes = NULL;
    if (df_images(db, &rows[0], &e) < 0 ||
        ks_db_containers_list(db, df_container_cb, &dc, &e) < 0 ||
        ks_cli_volume_usage(engine, &rows[2].total, &rows[2].active, &rows[2].size,
                            &rows[2].reclaimable, &volumes, &e) < 0)
        return ks_cli_fail(e, 125);
    int rc = df_print(rows, KS_ELEMENTSOF(rows), format);
    if (rc == 0 && verbose && format == NULL)
        df_print_volumes(volumes);
    return rc;
}

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} system_commands[] = {
    {"df", system_df},
};

int ks_cli_system(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "Usage: kiste system COMMAND\n\nCommands:\n  df     Show disk usage\n"
                   "  info   Display system-wide information\n");
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "info") == 0)
        return ks_cli_info(argc - 1, argv + 1);
    for (size_t i = 0; i < KS_ELEMENTSOF(system_commands); i++)
        if (strcmp(argv[1], system_commands[i].name) == 0)
            return system_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiste system: unknown command `%s`\n", argv[1]);
    return 1;
}
