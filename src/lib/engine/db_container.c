/* The containers table: one row per container, written by create/rename/rm. Every function here
 * is a single statement, so each is atomic without a transaction of its own and joins the
 * caller's when one is open. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/json.h"
#include "db.h"

void ks_db_container_free(struct ks_db_container *c)
{
    if (c == NULL)
        return;
    free(c->id);
    free(c->name);
    free(c->image_id);
    free(c->image_ref);
    free(c->config);
    free(c->snapshot);
    free(c->command);
    free(c->labels);
    free(c);
}

/* Docker's Command (Config.Entrypoint then Config.Cmd, joined by spaces) and the labels as
 * "k=v,k=v" in the config's order, both "" for a config that does not parse. Both owned by the
 * caller; -ENOMEM. */
static int summarize(const char *config, char **ret_command, char **ret_labels)
{
    _cleanup_json_ json_object *all = NULL;
    if (config)
        ks_json_parse(config, strlen(config), &all, NULL);
    json_object *c = ks_json_get(all, "Config");
    char *cmd = NULL, *labels = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&cmd, &n);
    if (f == NULL)
        return -ENOMEM;
    bool first = true;
    for (const char *const *k = (const char *const[]){"Entrypoint", "Cmd", NULL}; *k; k++) {
        json_object *a = ks_json_get_type(c, *k, json_type_array);
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
            const char *arg = json_object_get_string(json_object_array_get_idx(a, i));
            fprintf(f, "%s%s", first ? "" : " ", arg ? arg : "(null)");
            first = false;
        }
    }
    if (fclose(f) != 0 || cmd == NULL) {
        free(cmd);
        return -ENOMEM;
    }
    f = open_memstream(&labels, &n);
    if (f == NULL) {
        free(cmd);
        return -ENOMEM;
    }
    json_object *l = ks_json_get_type(c, "Labels", json_type_object);
    first = true;
    if (l) {
        json_object_object_foreach(l, k, v)
        {
            const char *val = json_object_get_string(v);
            fprintf(f, "%s%s=%s", first ? "" : ",", k, val ? val : "(null)");
            first = false;
        }
    }
    if (fclose(f) != 0 || labels == NULL) {
        free(cmd);
        free(labels);
        return -ENOMEM;
    }
    *ret_command = cmd;
    *ret_labels = labels;
    return 0;
}

/* sqlite3_bind_text for parameter i, NULL binding SQL NULL. */
static int bind(struct ks_db *db, sqlite3_stmt *st, int i, const char *s, const char *what,
                struct ks_error **err)
{
    int rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
    return rc == SQLITE_OK ? 0 : ks_db_error(db, rc, what, err);
}

static char *dup_col(sqlite3_stmt *st, int col, bool *oom)
{
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return NULL;
    const unsigned char *t = sqlite3_column_text(st, col);
    char *s = t ? strdup((const char *)t) : NULL;
    if (s == NULL)
        *oom = true;
    return s;
}

/* The name's owner for Docker's conflict message; the ID prefix when it cannot be read. */
static int name_conflict(struct ks_db *db, const char *name, struct ks_error **err)
{
    _cleanup_free_ char *owner = NULL;
    sqlite3_stmt *st = NULL;
    if (ks_db_prepare(db, "SELECT id FROM containers WHERE name = ?1", &st, NULL) == 0) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            owner = t ? strdup((const char *)t) : NULL;
        }
        sqlite3_finalize(st);
    }
    return ks_error_set_plain(err, EEXIST,
                              "Conflict. The container name \"/%s\" is already in use by "
                              "container \"%s\". You have to remove (or rename) that container "
                              "to be able to reuse that name.",
                              name, owner ? owner : "?");
}

int ks_db_container_put(struct ks_db *db, const struct ks_db_container *c, struct ks_error **err)
{
    if (c->id == NULL || c->name == NULL || c->image_id == NULL || c->config == NULL)
        return ks_error_msg(err, "record container: ID, name, image and config are required");
    _cleanup_free_ char *command = NULL, *labels = NULL;
    if (summarize(c->config, &command, &labels) < 0)
        return ks_error_set(err, ENOMEM, "record container");
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db,
                          "INSERT INTO containers (id, name, image_id, image_ref, created, "
                          "config, snapshot, command, labels) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                          &st, err);
    const char *what = "record container";
    if (r >= 0)
        r = bind(db, st, 1, c->id, what, err);
    if (r >= 0)
        r = bind(db, st, 2, c->name, what, err);
    if (r >= 0)
        r = bind(db, st, 3, c->image_id, what, err);
    if (r >= 0)
        r = bind(db, st, 4, c->image_ref ? c->image_ref : c->image_id, what, err);
    if (r >= 0)
        r = bind(db, st, 6, c->config, what, err);
    if (r >= 0)
        r = bind(db, st, 7, c->snapshot, what, err);
    if (r >= 0)
        r = bind(db, st, 8, command, what, err);
    if (r >= 0)
        r = bind(db, st, 9, labels, what, err);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 5, c->created);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return ks_error_set_plain(err, ENOENT, "record container: no such image `%s`", c->image_id);
    if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        sqlite3_reset(st);
        _cleanup_db_container_ struct ks_db_container *same = NULL;
        if (ks_db_container_get(db, c->id, &same, NULL) == 0)
            return ks_error_set_plain(err, EEXIST, "container ID `%s` already exists", c->id);
        return name_conflict(db, c->name, err);
    }
    return ks_db_error(db, rc, what, err);
}

#define SELECT_COLUMNS                                                                             \
    "SELECT id, name, image_id, image_ref, created, config, snapshot, command, labels "            \
    "FROM containers"

static int from_row(sqlite3_stmt *st, struct ks_db_container **ret, struct ks_error **err)
{
    _cleanup_db_container_ struct ks_db_container *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return ks_error_set(err, ENOMEM, "load container");
    bool oom = false;
    c->id = dup_col(st, 0, &oom);
    c->name = dup_col(st, 1, &oom);
    c->image_id = dup_col(st, 2, &oom);
    c->image_ref = dup_col(st, 3, &oom);
    c->created = sqlite3_column_int64(st, 4);
    c->config = dup_col(st, 5, &oom);
    c->snapshot = dup_col(st, 6, &oom);
    c->command = dup_col(st, 7, &oom);
    c->labels = dup_col(st, 8, &oom);
    if (oom)
        return ks_error_set(err, ENOMEM, "load container");
    /* Rows recorded before the columns existed. */
    if ((c->command == NULL || c->labels == NULL) && c->config) {
        free(c->command);
        free(c->labels);
        c->command = c->labels = NULL;
        if (summarize(c->config, &c->command, &c->labels) < 0)
            return ks_error_set(err, ENOMEM, "load container");
    }
    *ret = TAKE_PTR(c);
    return 0;
}

int ks_db_container_get(struct ks_db *db, const char *id, struct ks_db_container **ret,
                        struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db, SELECT_COLUMNS " WHERE id = ?1", &st, err);
    if (r >= 0)
        r = bind(db, st, 1, id, "look up container", err);
    if (r >= 0)
        r = ks_db_step(db, st, "look up container", err);
    if (r < 0)
        return r;
    if (r == 0)
        return ks_error_set_plain(err, ENOENT, "No such container: %s", id);
    return from_row(st, ret, err);
}

/* Runs a query of one text column and collects at most max values into out; the count. */
static int collect(struct ks_db *db, sqlite3_stmt *st, char **out, int max, struct ks_error **err)
{
    int n = 0, r;
    while ((r = ks_db_step(db, st, "find container", err)) > 0) {
        if (n < max) {
            const unsigned char *t = sqlite3_column_text(st, 0);
            out[n] = t ? strdup((const char *)t) : NULL;
            if (out[n] == NULL)
                return ks_error_set(err, ENOMEM, "find container");
        }
        n++;
    }
    return r < 0 ? r : n;
}

static int find_one(struct ks_db *db, const char *sql, const char *arg, char **ret_id,
                    struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db, sql, &st, err);
    if (r >= 0)
        r = bind(db, st, 1, arg, "find container", err);
    if (r < 0)
        return r;
    char *found[1] = {NULL};
    r = collect(db, st, found, 1, err);
    if (r > 0)
        *ret_id = found[0];
    else
        free(found[0]);
    return r;
}

int ks_db_container_find(struct ks_db *db, const char *name_or_id, char **ret_id,
                         struct ks_error **err)
{
    if (name_or_id == NULL || *name_or_id == '\0')
        return ks_error_set_plain(err, ENOENT, "No such container: %s",
                                  name_or_id ? name_or_id : "");
    int r = find_one(db, "SELECT id FROM containers WHERE id = ?1", name_or_id, ret_id, err);
    if (r != 0)
        return r < 0 ? r : 0;
    const char *name = name_or_id[0] == '/' ? name_or_id + 1 : name_or_id;
    r = find_one(db, "SELECT id FROM containers WHERE name = ?1", name, ret_id, err);
    if (r != 0)
        return r < 0 ? r : 0;
    /* Only lowercase hex can be a prefix, which also keeps the GLOB free of wildcards. */
    bool hex = true;
    for (const char *p = name_or_id; *p && hex; p++)
        hex = isdigit((unsigned char)*p) || (*p >= 'a' && *p <= 'f');
    if (hex && strlen(name_or_id) <= 64) {
        _cleanup_free_ char *pattern = NULL;
        if (asprintf(&pattern, "%s*", name_or_id) < 0)
            return ks_error_set(err, ENOMEM, "find container");
        _cleanup_free_ char *id = NULL;
        r = find_one(db, "SELECT id FROM containers WHERE id GLOB ?1", pattern, &id, err);
        if (r < 0)
            return r;
        if (r > 1)
            return ks_error_set_plain(err, ENOTUNIQ, "multiple IDs found with provided prefix: %s",
                                      name_or_id);
        if (r == 1) {
            *ret_id = TAKE_PTR(id);
            return 0;
        }
    }
    return ks_error_set_plain(err, ENOENT, "No such container: %s", name_or_id);
}

/* One UPDATE or DELETE by ID; -ENOENT when no row changed. */
static int write_one(struct ks_db *db, const char *sql, const char *id, const char *value,
                     const char *what, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db, sql, &st, err);
    if (r >= 0)
        r = bind(db, st, 1, id, what, err);
    if (r >= 0 && value)
        r = bind(db, st, 2, value, what, err);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_UNIQUE && value)
        return name_conflict(db, value, err);
    if (rc != SQLITE_DONE)
        return ks_db_error(db, rc, what, err);
    if (sqlite3_changes(ks_db_handle(db)) == 0)
        return ks_error_set_plain(err, ENOENT, "No such container: %s", id);
    return 0;
}

int ks_db_container_rename(struct ks_db *db, const char *id, const char *name,
                           struct ks_error **err)
{
    return write_one(db, "UPDATE containers SET name = ?2 WHERE id = ?1", id, name,
                     "rename container", err);
}

int ks_db_container_set_config(struct ks_db *db, const char *id, const char *config,
                               struct ks_error **err)
{
    if (config == NULL)
        return ks_error_msg(err, "update container: no config");
    _cleanup_free_ char *command = NULL, *labels = NULL;
    if (summarize(config, &command, &labels) < 0)
        return ks_error_set(err, ENOMEM, "update container");
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    const char *what = "update container";
    int r = ks_db_prepare(
        db, "UPDATE containers SET config = ?2, command = ?3, labels = ?4 WHERE id = ?1", &st, err);
    if (r >= 0)
        r = bind(db, st, 1, id, what, err);
    if (r >= 0)
        r = bind(db, st, 2, config, what, err);
    if (r >= 0)
        r = bind(db, st, 3, command, what, err);
    if (r >= 0)
        r = bind(db, st, 4, labels, what, err);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return ks_db_error(db, rc, what, err);
    if (sqlite3_changes(ks_db_handle(db)) == 0)
        return ks_error_set_plain(err, ENOENT, "No such container: %s", id);
    return 0;
}

int ks_db_container_delete(struct ks_db *db, const char *id, struct ks_error **err)
{
    return write_one(db, "DELETE FROM containers WHERE id = ?1", id, NULL, "delete container", err);
}

int ks_db_containers_list(struct ks_db *db, ks_db_container_fn fn, void *userdata,
                          struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db, SELECT_COLUMNS " ORDER BY created DESC, id", &st, err);
    if (r < 0)
        return r;
    while ((r = ks_db_step(db, st, "list containers", err)) > 0) {
        _cleanup_db_container_ struct ks_db_container *c = NULL;
        r = from_row(st, &c, err);
        if (r < 0)
            return r;
        r = fn(c, userdata);
        if (r < 0)
            return ks_error_set(err, -r, "list containers");
    }
    return r;
}

int ks_db_container_using_image(struct ks_db *db, const char *image_id, char **ret_id,
                                struct ks_error **err)
{
    int r = find_one(db, "SELECT id FROM containers WHERE image_id = ?1 ORDER BY created", image_id,
                     ret_id, err);
    if (r < 0)
        return r;
    return r == 0 ? -ENOENT : 0;
}
