#include "db.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "../base/hash.h"
#include "../base/cleanup.h"
#include "../base/fs.h"
#include "../base/log.h"

/* How long SQLite's own busy handler waits for a lock, and how long ks_db_begin keeps retrying
 * on top of it. Writers hold the lock for milliseconds; a minute means something is stuck. */
#define BUSY_TIMEOUT_MS   5000
#define BUSY_DEADLINE_MS  60000
#define BACKOFF_MAX_US    100000
#define SAVEPOINT_NAME    "ks_db_tx"
#define SQL_QUOTE_MAX_LEN 48

struct ks_db {
    sqlite3 *sql;
};

/* migrations[i] brings the schema from version i to version i + 1. Never edit a released
 * entry: append a new one. */
static const char *const migrations[] = {
    /* 0 → 1: the image store. Layers are keyed by chain ID, as Docker's layer store keys them:
     * the same diff on two parents is two layers with two directories. */
    "CREATE TABLE layers ("
    "  chain_id TEXT PRIMARY KEY NOT NULL,"
    "  diff_id TEXT NOT NULL,"
    "  parent TEXT REFERENCES layers(chain_id),"
    "  cache_id TEXT NOT NULL UNIQUE,"
    "  size INTEGER NOT NULL DEFAULT 0,"
    "  refcount INTEGER NOT NULL DEFAULT 0 CHECK (refcount >= 0),"
    "  created INTEGER NOT NULL"
    ");"
    "CREATE INDEX layers_diff_id ON layers(diff_id);"
    "CREATE INDEX layers_parent ON layers(parent);"
    "CREATE TABLE images ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  config TEXT,"
    "  created INTEGER NOT NULL,"
    "  size INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE image_layers ("
    "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
    "  position INTEGER NOT NULL,"
    "  diff_id TEXT NOT NULL,"
    "  chain_id TEXT NOT NULL REFERENCES layers(chain_id),"
    "  PRIMARY KEY (image_id, position)"
    ");"
    "CREATE INDEX image_layers_chain_id ON image_layers(chain_id);"
    "CREATE TABLE tags ("
    "  reference TEXT PRIMARY KEY NOT NULL,"
    "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE"
    ");"
    "CREATE INDEX tags_image_id ON tags(image_id);"
    "CREATE TABLE digests ("
    "  repository TEXT NOT NULL,"
    "  digest TEXT NOT NULL,"
    "  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (repository, digest)"
    ");"
    "CREATE INDEX digests_image_id ON digests(image_id);",
    /* 1 → 2: containers. The image reference is kept as the user gave it (ps shows it); the
     * foreign key keeps an image from being deleted under a container. Run-time state is not
     * here: the monitor keeps it in the container's state.json. */
    "CREATE TABLE containers ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT NOT NULL UNIQUE,"
    "  image_id TEXT NOT NULL REFERENCES images(id),"
    "  image_ref TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  config TEXT NOT NULL,"
    "  snapshot TEXT"
    ");"
    "CREATE INDEX containers_image_id ON containers(image_id);",
    /* 2 → 3: what ps prints of the config (Docker's Command, Labels as "k=v,k=v"), so that
     * listing a thousand containers need not parse a thousand configs. NULL in rows written
     * before: readers derive them from the config. */
    "ALTER TABLE containers ADD COLUMN command TEXT;"
    "ALTER TABLE containers ADD COLUMN labels TEXT;",
    /* 3 → 4: networks and the IPAM. An endpoint is a running container's attachment to a
     * network (its address is taken while the row exists); ports are the published ports of
     * running containers, the host side unique. */
    "CREATE TABLE networks ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  name TEXT NOT NULL UNIQUE,"
    "  driver TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  config TEXT NOT NULL"
    ");"
    "CREATE TABLE endpoints ("
    "  network_id TEXT NOT NULL REFERENCES networks(id),"
    "  container_id TEXT NOT NULL,"
    "  ipv4 TEXT,"
    "  mac TEXT,"
    "  veth TEXT,"
    "  ifname TEXT,"
    "  aliases TEXT,"
    "  PRIMARY KEY (network_id, container_id),"
    "  UNIQUE (network_id, ipv4)"
    ");"
    "CREATE INDEX endpoints_container ON endpoints(container_id);"
    "CREATE TABLE ports ("
    "  container_id TEXT NOT NULL,"
    "  proto TEXT NOT NULL,"
    "  host_ip TEXT NOT NULL,"
    "  host_port INTEGER NOT NULL,"
    "  ctr_ip TEXT NOT NULL,"
    "  ctr_port INTEGER NOT NULL,"
    "  PRIMARY KEY (proto, host_ip, host_port)"
    ");"
    "CREATE INDEX ports_container ON ports(container_id);",
};

int ks_db_schema_version(void)
{
    return (int)KS_ELEMENTSOF(migrations);
}

sqlite3 *ks_db_handle(struct ks_db *db)
{
    return db->sql;
}

static int errno_of(sqlite3 *sql, int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return EBUSY;
    case SQLITE_NOMEM:
        return ENOMEM;
    case SQLITE_READONLY:
        return EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return EACCES;
    case SQLITE_FULL:
        return ENOSPC;
    case SQLITE_TOOBIG:
        return E2BIG;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return EUCLEAN;
    case SQLITE_CONSTRAINT:
        return rc == SQLITE_CONSTRAINT_FOREIGNKEY ? ENOENT : EEXIST;
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_MISUSE:
        return EINVAL;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR: {
        int e = sql ? sqlite3_system_errno(sql) : 0;
        return e > 0 ? e : EIO;
    }
    default:
        return EIO;
    }
}

int ks_db_error(struct ks_db *db, int rc, const char *what, struct ks_error **err)
{
    sqlite3 *sql = db ? db->sql : NULL;
    const char *msg = sql && sqlite3_errcode(sql) == rc ? sqlite3_errmsg(sql) : sqlite3_errstr(rc);
    return ks_error_set_plain(err, errno_of(sql, rc), "%s: %s", what, msg);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Runs sql, retrying while it reports SQLITE_BUSY. SQLite's busy handler already waits inside
 * most calls, but not in every case (WAL recovery, a lock upgrade it considers a deadlock), and
 * a user should see a slow command rather than "database is locked". The jitter keeps a crowd of
 * waiting processes from retrying in lock step. */
static int exec_retry(struct ks_db *db, const char *sql, const char *what, struct ks_error **err)
{
    uint64_t deadline = now_us() + (uint64_t)BUSY_DEADLINE_MS * 1000u;
    unsigned seed = (unsigned)getpid() ^ (unsigned)now_us();
    useconds_t delay = 1000;
    int rc;
    for (;;) {
        rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY || now_us() >= deadline)
            break;
        usleep(delay + (useconds_t)(rand_r(&seed) % (delay / 2 + 1)));
        delay = delay * 2 > BACKOFF_MAX_US ? BACKOFF_MAX_US : delay * 2;
    }
    return rc == SQLITE_OK ? 0 : ks_db_error(db, rc, what, err);
}

int ks_db_exec(struct ks_db *db, const char *sql, struct ks_error **err)
{
    int rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int len = (int)strnlen(sql, SQL_QUOTE_MAX_LEN);
        char what[SQL_QUOTE_MAX_LEN + 32];
        snprintf(what, sizeof(what), "execute `%.*s%s`", len, sql, sql[len] ? "…" : "");
        return ks_db_error(db, rc, what, err);
    }
    return 0;
}

int ks_db_prepare(struct ks_db *db, const char *sql, sqlite3_stmt **ret, struct ks_error **err)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db->sql, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        int len = (int)strnlen(sql, SQL_QUOTE_MAX_LEN);
        char what[SQL_QUOTE_MAX_LEN + 32];
        snprintf(what, sizeof(what), "prepare `%.*s%s`", len, sql, sql[len] ? "…" : "");
        return ks_db_error(db, rc, what, err);
    }
    *ret = stmt;
    return 0;
}

int ks_db_step(struct ks_db *db, sqlite3_stmt *stmt, const char *what, struct ks_error **err)
{
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return ks_db_error(db, rc, what, err);
}

bool ks_db_in_transaction(struct ks_db *db)
{
    return !sqlite3_get_autocommit(db->sql);
}

int ks_db_begin(struct ks_db *db, struct ks_error **err)
{
    if (ks_db_in_transaction(db))
        return ks_error_set_plain(err, EBUSY, "begin transaction: a transaction is already open");
    return exec_retry(db, "BEGIN IMMEDIATE", "begin transaction", err);
}

void ks_db_rollback(struct ks_db *db)
{
    if (ks_db_in_transaction(db))
        sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
}

int ks_db_commit(struct ks_db *db, struct ks_error **err)
{
    /* A COMMIT that fails with SQLITE_BUSY leaves the transaction open, so retrying is sound. */
    int r = exec_retry(db, "COMMIT", "commit transaction", err);
    if (r < 0)
        ks_db_rollback(db);
    return r;
}

/* The typed functions' transactions: their own when the caller has none, else a savepoint in
 * the caller's, so that a failing function leaves the caller's earlier work alone. */
struct tx {
    struct ks_db *db;
    bool own;
};

static int tx_begin(struct ks_db *db, bool write, struct tx *tx, struct ks_error **err)
{
    tx->db = db;
    tx->own = !ks_db_in_transaction(db);
    if (!tx->own)
        return exec_retry(db, "SAVEPOINT " SAVEPOINT_NAME, "begin savepoint", err);
    /* A reader gets a deferred transaction: a consistent snapshot without taking the write
     * lock. */
    if (!write)
        return exec_retry(db, "BEGIN DEFERRED", "begin transaction", err);
    return ks_db_begin(db, err);
}

/* Commits when r >= 0, else rolls back; returns r, or the commit's error. */
static int tx_end(struct tx *tx, int r, struct ks_error **err)
{
    if (r >= 0) {
        int c = tx->own ? ks_db_commit(tx->db, err)
                        : exec_retry(tx->db, "RELEASE " SAVEPOINT_NAME, "release savepoint", err);
        return c < 0 ? c : r;
    }
    if (tx->own)
        ks_db_rollback(tx->db);
    else
        sqlite3_exec(tx->db->sql, "ROLLBACK TO " SAVEPOINT_NAME "; RELEASE " SAVEPOINT_NAME, NULL,
                     NULL, NULL);
    return r;
}

static int read_version(struct ks_db *db, int *ret, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db,
                          "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                          "name = 'schema_version'",
                          &st, err);
    if (r < 0)
        return r;
    r = ks_db_step(db, st, "read schema version", err);
    if (r < 0)
        return r;
    if (sqlite3_column_int(st, 0) == 0) {
        *ret = 0;
        return 0;
    }
    _cleanup_stmt_ sqlite3_stmt *v = NULL;
    r = ks_db_prepare(db, "SELECT version FROM schema_version WHERE id = 1", &v, err);
    if (r < 0)
        return r;
    r = ks_db_step(db, v, "read schema version", err);
    if (r < 0)
        return r;
    *ret = r > 0 ? sqlite3_column_int(v, 0) : 0;
    return 0;
}

static int check_version(int version, struct ks_error **err)
{
    if (version > ks_db_schema_version())
        return ks_error_set_plain(err, EPROTONOSUPPORT,
                                  "database schema version %d is newer than this kiste "
                                  "understands (%d): upgrade kiste",
                                  version, ks_db_schema_version());
    return 0;
}

static int migrate_locked(struct ks_db *db, struct ks_error **err)
{
    int r = ks_db_exec(db,
                       "CREATE TABLE IF NOT EXISTS schema_version ("
                       "  id INTEGER PRIMARY KEY CHECK (id = 1),"
                       "  version INTEGER NOT NULL);"
                       "INSERT OR IGNORE INTO schema_version (id, version) VALUES (1, 0);",
                       err);
    if (r < 0)
        return r;
    /* Read again under the write lock: another process may have migrated meanwhile. */
    int version;
    r = read_version(db, &version, err);
    if (r < 0)
        return r;
    r = check_version(version, err);
    if (r < 0)
        return r;
    for (int v = version; v < ks_db_schema_version(); v++) {
        r = ks_db_exec(db, migrations[v], err);
        if (r < 0)
            return ks_error_wrap(err, "migrate schema from version %d", v);
    }
    char sql[80];
    snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d WHERE id = 1",
             ks_db_schema_version());
    return ks_db_exec(db, sql, err);
}

static int migrate(struct ks_db *db, struct ks_error **err)
{
    int version;
    int r = read_version(db, &version, err);
    if (r < 0)
        return r;
    r = check_version(version, err);
    if (r < 0 || version == ks_db_schema_version())
        return r;
    r = ks_db_begin(db, err);
    if (r < 0)
        return r;
    r = migrate_locked(db, err);
    if (r < 0) {
        ks_db_rollback(db);
        return r;
    }
    return ks_db_commit(db, err);
}

static int journal_mode_cb(void *userdata, int ncols, char **values, char **names)
{
    bool *wal = userdata;
    *wal = ncols > 0 && values[0] && strcmp(values[0], "wal") == 0;
    return 0;
}

static int configure(struct ks_db *db, struct ks_error **err)
{
    sqlite3_busy_timeout(db->sql, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db->sql, 1);

    /* Switching to WAL needs a moment of exclusive access when the file is new; other
     * processes opening it at the same time are waited for like any writer. */
    uint64_t deadline = now_us() + (uint64_t)BUSY_DEADLINE_MS * 1000u;
    bool wal = false;
    int rc;
    for (;;) {
        rc = sqlite3_exec(db->sql, "PRAGMA journal_mode = WAL", journal_mode_cb, &wal, NULL);
        if ((rc & 0xff) != SQLITE_BUSY || now_us() >= deadline)
            break;
        usleep(10000);
    }
    if (rc != SQLITE_OK)
        return ks_db_error(db, rc, "set WAL journal mode", err);
    if (!wal)
        ks_warn("state database: the file system does not support WAL mode; concurrent "
                "commands will wait for each other longer");

    /* NORMAL is crash-safe in WAL mode: a killed process never corrupts or half-applies a
     * transaction; only a power loss may drop the last commits. */
    return exec_retry(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL",
                      "configure database", err);
}

int ks_db_open(const char *root, struct ks_db **ret, struct ks_error **err)
{
    int r = ks_mkdir_p(root, 0700, err);
    if (r < 0)
        return ks_error_wrap(err, "open state database");
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/%s", root, KS_DB_FILE) < 0)
        return ks_error_set(err, ENOMEM, "open state database");

    _cleanup_db_ struct ks_db *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return ks_error_set(err, ENOMEM, "open state database");
    int rc = sqlite3_open_v2(
        path, &db->sql, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE, NULL);
    if (rc != SQLITE_OK) {
        r = ks_db_error(db, rc, "open", err);
        return ks_error_wrap(err, "state database `%s`", path);
    }
    r = configure(db, err);
    if (r >= 0)
        r = migrate(db, err);
    if (r < 0)
        return ks_error_wrap(err, "state database `%s`", path);
    *ret = TAKE_PTR(db);
    return 0;
}

void ks_db_close(struct ks_db *db)
{
    if (db == NULL)
        return;
    if (db->sql) {
        ks_db_rollback(db);
        sqlite3_close_v2(db->sql);
    }
    free(db);
}

/* --- row helpers --- */

/* Copies a text column; a NULL column gives NULL. */
static int col_text(sqlite3_stmt *st, int col, char **ret)
{
    *ret = NULL;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    const unsigned char *t = sqlite3_column_text(st, col);
    if (t == NULL)
        return -ENOMEM;
    *ret = strdup((const char *)t);
    return *ret ? 0 : -ENOMEM;
}

static int vbind_texts(struct ks_db *db, sqlite3_stmt *st, const char *what, struct ks_error **err,
                       int n, va_list ap)
{
    int rc = SQLITE_OK;
    for (int i = 1; i <= n && rc == SQLITE_OK; i++) {
        const char *s = va_arg(ap, const char *);
        rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
    }
    return rc == SQLITE_OK ? 0 : ks_db_error(db, rc, what, err);
}

static int bind_texts(struct ks_db *db, sqlite3_stmt *st, const char *what, struct ks_error **err,
                      int n, ...)
{
    va_list ap;
    va_start(ap, n);
    int r = vbind_texts(db, st, what, err, n, ap);
    va_end(ap);
    return r;
}

/* Prepares sql into *st and binds n texts (NULL binds NULL) to ?1 … ?n: the opening of most
 * queries here. */
static int prepare_texts(struct ks_db *db, const char *sql, sqlite3_stmt **st, const char *what,
                         struct ks_error **err, int n, ...)
{
    int r = ks_db_prepare(db, sql, st, err);
    if (r < 0)
        return r;
    va_list ap;
    va_start(ap, n);
    r = vbind_texts(db, *st, what, err, n, ap);
    va_end(ap);
    return r;
}

/* Runs a statement expected to return at most one row with one text column: -ENOENT (without
 * an error message) when there is no row. */
static int query_text(struct ks_db *db, sqlite3_stmt *st, const char *what, char **ret,
                      struct ks_error **err)
{
    int r = ks_db_step(db, st, what, err);
    if (r < 0)
        return r;
    if (r == 0)
        return -ENOENT;
    if (col_text(st, 0, ret) < 0)
        return ks_error_set(err, ENOMEM, "%s", what);
    return 0;
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

/* --- layers --- */

void ks_db_layer_free(struct ks_db_layer *l)
{
    if (l == NULL)
        return;
    free(l->diff_id);
    free(l->chain_id);
    free(l->parent);
    free(l->cache_id);
    free(l);
}

static const char *const layer_key_columns[] = {
    [KS_DB_LAYER_BY_CHAIN_ID] = "chain_id",
    [KS_DB_LAYER_BY_CACHE_ID] = "cache_id",
    [KS_DB_LAYER_BY_DIFF_ID] = "diff_id",
};

int ks_db_layer_get(struct ks_db *db, enum ks_db_layer_key key, const char *value,
                    struct ks_db_layer **ret, struct ks_error **err)
{
    if ((size_t)key >= KS_ELEMENTSOF(layer_key_columns) || value == NULL)
        return ks_error_msg(err, "look up layer: bad key");
    const char *col = layer_key_columns[key];
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT diff_id, chain_id, parent, cache_id, size, refcount FROM layers "
             "WHERE %s = ?1 ORDER BY rowid LIMIT 1",
             col);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db, sql, &st, "look up layer", err, 1, value);
    if (r < 0)
        return r;
    r = ks_db_step(db, st, "look up layer", err);
    if (r < 0)
        return r;
    if (r == 0)
        return ks_error_set_plain(err, ENOENT, "no layer with %s `%s`", col, value);

    _cleanup_db_layer_ struct ks_db_layer *l = calloc(1, sizeof(*l));
    if (l == NULL || col_text(st, 0, &l->diff_id) < 0 || col_text(st, 1, &l->chain_id) < 0 ||
        col_text(st, 2, &l->parent) < 0 || col_text(st, 3, &l->cache_id) < 0)
        return ks_error_set(err, ENOMEM, "look up layer");
    l->size = sqlite3_column_int64(st, 4);
    l->refcount = sqlite3_column_int64(st, 5);
    *ret = TAKE_PTR(l);
    return 0;
}

int ks_db_layer_put(struct ks_db *db, const struct ks_db_layer *layer, struct ks_error **err)
{
    if (layer->diff_id == NULL || layer->chain_id == NULL || layer->cache_id == NULL ||
        layer->refcount < 0)
        return ks_error_msg(err, "record layer: diff ID, chain ID and cache ID are required");
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db,
                          "INSERT INTO layers (chain_id, diff_id, parent, cache_id, size, "
                          "refcount, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                          &st, "record layer", err, 4, layer->chain_id, layer->diff_id,
                          layer->parent, layer->cache_id);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 5, layer->size);
    sqlite3_bind_int64(st, 6, layer->refcount);
    sqlite3_bind_int64(st, 7, now_s());

    struct tx tx;
    r = tx_begin(db, true, &tx, err);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        r = ks_error_set_plain(err, ENOENT, "record layer `%s`: parent layer `%s` is not recorded",
                               layer->chain_id, layer->parent);
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        r = ks_error_set_plain(err, EEXIST,
                               "record layer `%s`: the layer or its cache ID `%s` is already "
                               "recorded",
                               layer->chain_id, layer->cache_id);
    else if (rc != SQLITE_DONE)
        r = ks_db_error(db, rc, "record layer", err);
    return tx_end(&tx, r, err);
}

static int64_t layer_adjust(struct ks_db *db, const char *chain_id, int delta,
                            struct ks_error **err)
{
    const char *what = delta > 0 ? "reference layer" : "release layer";
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db,
                          "UPDATE layers SET refcount = refcount + ?2 "
                          "WHERE chain_id = ?1 AND refcount + ?2 >= 0 RETURNING refcount",
                          &st, what, err, 1, chain_id);
    if (r < 0)
        return r;
    sqlite3_bind_int(st, 2, delta);

    struct tx tx;
    r = tx_begin(db, true, &tx, err);
    if (r < 0)
        return r;
    int64_t count = 0;
    r = ks_db_step(db, st, what, err);
    if (r > 0) {
        count = sqlite3_column_int64(st, 0);
        r = ks_db_step(db, st, what, err);
    } else if (r == 0) {
        /* No row changed: tell an unknown layer from one without references. */
        _cleanup_db_layer_ struct ks_db_layer *l = NULL;
        r = ks_db_layer_get(db, KS_DB_LAYER_BY_CHAIN_ID, chain_id, &l, err);
        if (r >= 0)
            r = ks_error_set_plain(err, EINVAL, "%s `%s`: it has no references left", what,
                                   chain_id);
        else
            ks_error_wrap(err, "%s", what);
    }
    r = tx_end(&tx, r, err);
    return r < 0 ? r : count;
}

int64_t ks_db_layer_ref(struct ks_db *db, const char *chain_id, struct ks_error **err)
{
    return layer_adjust(db, chain_id, 1, err);
}

int64_t ks_db_layer_unref(struct ks_db *db, const char *chain_id, struct ks_error **err)
{
    return layer_adjust(db, chain_id, -1, err);
}

static int layer_delete_locked(struct ks_db *db, const char *chain_id, struct ks_error **err)
{
    _cleanup_db_layer_ struct ks_db_layer *l = NULL;
    int r = ks_db_layer_get(db, KS_DB_LAYER_BY_CHAIN_ID, chain_id, &l, err);
    if (r < 0)
        return ks_error_wrap(err, "delete layer");
    if (l->refcount > 0)
        return ks_error_set_plain(err, EBUSY, "delete layer `%s`: it has %lld references", chain_id,
                                  (long long)l->refcount);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    r = ks_db_prepare(db, "DELETE FROM layers WHERE chain_id = ?1", &st, err);
    if (r < 0)
        return r;
    r = bind_texts(db, st, "delete layer", err, 1, chain_id);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return ks_error_set_plain(
            err, EBUSY, "delete layer `%s`: another layer or an image is built on it", chain_id);
    if (rc != SQLITE_DONE)
        return ks_db_error(db, rc, "delete layer", err);
    return 0;
}

int ks_db_layer_delete(struct ks_db *db, const char *chain_id, struct ks_error **err)
{
    struct tx tx;
    int r = tx_begin(db, true, &tx, err);
    if (r < 0)
        return r;
    return tx_end(&tx, layer_delete_locked(db, chain_id, err), err);
}

/* Collects the first text column of every row into a NULL-terminated vector. */
static int collect_strv(struct ks_db *db, sqlite3_stmt *st, const char *what, char ***ret,
                        struct ks_error **err)
{
    _cleanup_strv_ char **v = calloc(1, sizeof(char *));
    size_t n = 0;
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "%s", what);
    int r;
    while ((r = ks_db_step(db, st, what, err)) > 0) {
        char **nv = realloc(v, (n + 2) * sizeof(char *));
        if (nv == NULL)
            return ks_error_set(err, ENOMEM, "%s", what);
        v = nv;
        v[n + 1] = NULL;
        if (col_text(st, 0, &v[n]) < 0 || v[n] == NULL)
            return ks_error_set(err, ENOMEM, "%s", what);
        n++;
    }
    if (r < 0)
        return r;
    *ret = TAKE_PTR(v);
    return 0;
}

int ks_db_layers_unused(struct ks_db *db, char ***ret, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db,
                          "SELECT chain_id FROM layers AS l WHERE refcount = 0 AND NOT EXISTS "
                          "(SELECT 1 FROM layers AS c WHERE c.parent = l.chain_id) AND NOT "
                          "EXISTS (SELECT 1 FROM image_layers AS i WHERE i.chain_id = "
                          "l.chain_id) ORDER BY created, chain_id",
                          &st, err);
    if (r < 0)
        return r;
    return collect_strv(db, st, "list unused layers", ret, err);
}

/* --- images --- */

void ks_db_image_free(struct ks_db_image *img)
{
    if (img == NULL)
        return;
    free(img->id);
    free(img->config);
    ks_strv_free(img->diff_ids);
    ks_strv_free(img->chain_ids);
    free(img);
}

/* The reference an image holds is on its top layer; the layers below are kept by being
 * parents. */
static int image_top_layer(struct ks_db *db, const char *image_id, char **ret,
                           struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db,
                          "SELECT chain_id FROM image_layers WHERE image_id = ?1 "
                          "ORDER BY position DESC LIMIT 1",
                          &st, "find top layer", err, 1, image_id);
    if (r < 0)
        return r;
    r = query_text(db, st, "find top layer", ret, err);
    if (r == -ENOENT) {
        *ret = NULL;
        return 0;
    }
    return r;
}

static int image_put_layers(struct ks_db *db, const char *id, const char *const *diff_ids, size_t n,
                            int64_t *ret_size, char **ret_top, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *look = NULL, *ins = NULL, *del = NULL;
    int r = ks_db_prepare(db, "SELECT size FROM layers WHERE chain_id = ?1 AND diff_id = ?2", &look,
                          err);
    if (r >= 0)
        r = ks_db_prepare(db,
                          "INSERT INTO image_layers (image_id, position, diff_id, chain_id) "
                          "VALUES (?1, ?2, ?3, ?4)",
                          &ins, err);
    if (r >= 0)
        r = ks_db_prepare(db, "DELETE FROM image_layers WHERE image_id = ?1", &del, err);
    if (r >= 0)
        r = bind_texts(db, del, "record image layers", err, 1, id);
    if (r >= 0)
        r = ks_db_step(db, del, "record image layers", err);
    if (r < 0)
        return r;

    _cleanup_free_ char *chain = NULL;
    int64_t size = 0;
    int rc;
    for (size_t i = 0; i < n; i++) {
        char next_id[KS_SHA256_DIGEST_LEN];
        char *next = ks_chain_id(chain, diff_ids[i], next_id) < 0 ? NULL : strdup(next_id);
        if (next == NULL)
            return ks_error_set(err, ENOMEM, "compute chain ID");
        free(chain);
        chain = next;

        sqlite3_reset(look);
        r = bind_texts(db, look, "look up image layer", err, 2, chain, diff_ids[i]);
        if (r >= 0)
            r = ks_db_step(db, look, "look up image layer", err);
        if (r < 0)
            return r;
        if (r == 0)
            return ks_error_set_plain(err, ENOENT,
                                      "layer %zu (diff `%s`, chain `%s`) is not "
                                      "recorded",
                                      i, diff_ids[i], chain);
        size += sqlite3_column_int64(look, 0);

        sqlite3_reset(ins);
        r = bind_texts(db, ins, "record image layer", err, 4, id, NULL, diff_ids[i], chain);
        if (r >= 0 && (rc = sqlite3_bind_int64(ins, 2, (int64_t)i)) != SQLITE_OK)
            r = ks_db_error(db, rc, "record image layer", err);
        if (r >= 0)
            r = ks_db_step(db, ins, "record image layer", err);
        if (r < 0)
            return r;
    }
    *ret_size = size;
    *ret_top = TAKE_PTR(chain);
    return 0;
}

static int image_put_locked(struct ks_db *db, const char *id, const char *config_json,
                            const char *const *diff_ids, size_t n, struct ks_error **err)
{
    _cleanup_free_ char *old_top = NULL, *new_top = NULL;
    int r = image_top_layer(db, id, &old_top, err);
    if (r < 0)
        return r;

    /* An upsert rather than a replace: deleting the row would cascade to its tags. */
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    r = ks_db_prepare(db,
                      "INSERT INTO images (id, config, created, size) VALUES (?1, ?2, ?3, 0) "
                      "ON CONFLICT (id) DO UPDATE SET config = excluded.config",
                      &st, err);
    if (r < 0)
        return r;
    r = bind_texts(db, st, "record image", err, 2, id, config_json);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 3, now_s());
    r = ks_db_step(db, st, "record image", err);
    if (r < 0)
        return r;

    int64_t size = 0;
    r = image_put_layers(db, id, diff_ids, n, &size, &new_top, err);
    if (r < 0)
        return r;

    _cleanup_stmt_ sqlite3_stmt *upd = NULL;
    r = ks_db_prepare(db, "UPDATE images SET size = ?2 WHERE id = ?1", &upd, err);
    if (r < 0)
        return r;
    r = bind_texts(db, upd, "record image size", err, 1, id);
    if (r < 0)
        return r;
    sqlite3_bind_int64(upd, 2, size);
    r = ks_db_step(db, upd, "record image size", err);
    if (r < 0)
        return r;

    if (new_top) {
        int64_t c = ks_db_layer_ref(db, new_top, err);
        if (c < 0)
            return (int)c;
    }
    if (old_top) {
        int64_t c = ks_db_layer_unref(db, old_top, err);
        if (c < 0)
            return (int)c;
    }
    return 0;
}

int ks_db_image_put(struct ks_db *db, const char *id, const char *config_json,
                    const char *const *diff_ids, size_t n, struct ks_error **err)
{
    if (id == NULL || (n > 0 && diff_ids == NULL))
        return ks_error_msg(err, "record image: missing ID or layers");
    struct tx tx;
    int r = tx_begin(db, true, &tx, err);
    if (r < 0)
        return r;
    r = image_put_locked(db, id, config_json, diff_ids, n, err);
    if (r < 0)
        ks_error_wrap(err, "record image `%s`", id);
    return tx_end(&tx, r, err);
}

static int image_load_layers(struct ks_db *db, struct ks_db_image *img, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db,
                          "SELECT diff_id, chain_id FROM image_layers WHERE image_id = ?1 "
                          "ORDER BY position",
                          &st, "load image layers", err, 1, img->id);
    if (r < 0)
        return r;
    img->diff_ids = calloc(1, sizeof(char *));
    img->chain_ids = calloc(1, sizeof(char *));
    if (img->diff_ids == NULL || img->chain_ids == NULL)
        return ks_error_set(err, ENOMEM, "load image layers");
    size_t n = 0;
    while ((r = ks_db_step(db, st, "load image layers", err)) > 0) {
        char **d = realloc(img->diff_ids, (n + 2) * sizeof(char *));
        if (d)
            img->diff_ids = d;
        char **c = realloc(img->chain_ids, (n + 2) * sizeof(char *));
        if (c)
            img->chain_ids = c;
        if (d == NULL || c == NULL)
            return ks_error_set(err, ENOMEM, "load image layers");
        d[n] = c[n] = d[n + 1] = c[n + 1] = NULL;
        if (col_text(st, 0, &d[n]) < 0 || col_text(st, 1, &c[n]) < 0)
            return ks_error_set(err, ENOMEM, "load image layers");
        img->n_layers = ++n;
    }
    return r;
}

/* Builds an image from a row of (id, config, created, size). */
static int image_from_row(struct ks_db *db, sqlite3_stmt *st, struct ks_db_image **ret,
                          struct ks_error **err)
{
    _cleanup_db_image_ struct ks_db_image *img = calloc(1, sizeof(*img));
    if (img == NULL || col_text(st, 0, &img->id) < 0 || col_text(st, 1, &img->config) < 0)
        return ks_error_set(err, ENOMEM, "load image");
    img->created = sqlite3_column_int64(st, 2);
    img->size = sqlite3_column_int64(st, 3);
    int r = image_load_layers(db, img, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(img);
    return 0;
}

int ks_db_image_get(struct ks_db *db, const char *id, struct ks_db_image **ret,
                    struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r =
        ks_db_prepare(db, "SELECT id, config, created, size FROM images WHERE id = ?1", &st, err);
    if (r < 0)
        return r;
    r = bind_texts(db, st, "look up image", err, 1, id);
    if (r < 0)
        return r;
    struct tx tx;
    r = tx_begin(db, false, &tx, err);
    if (r < 0)
        return r;
    _cleanup_db_image_ struct ks_db_image *img = NULL;
    r = ks_db_step(db, st, "look up image", err);
    if (r == 0)
        r = ks_error_set_plain(err, ENOENT, "no such image `%s`", id);
    else if (r > 0)
        r = image_from_row(db, st, &img, err);
    sqlite3_reset(st);
    r = tx_end(&tx, r, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(img);
    return 0;
}

static int image_delete_locked(struct ks_db *db, const char *id, struct ks_error **err)
{
    _cleanup_free_ char *top = NULL;
    int r = image_top_layer(db, id, &top, err);
    if (r < 0)
        return r;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    r = ks_db_prepare(db, "DELETE FROM images WHERE id = ?1", &st, err);
    if (r < 0)
        return r;
    r = bind_texts(db, st, "delete image", err, 1, id);
    if (r >= 0)
        r = ks_db_step(db, st, "delete image", err);
    if (r < 0)
        return r;
    if (sqlite3_changes(db->sql) == 0)
        return ks_error_set_plain(err, ENOENT, "no such image `%s`", id);
    if (top) {
        int64_t c = ks_db_layer_unref(db, top, err);
        if (c < 0)
            return (int)c;
    }
    return 0;
}

int ks_db_image_delete(struct ks_db *db, const char *id, struct ks_error **err)
{
    struct tx tx;
    int r = tx_begin(db, true, &tx, err);
    if (r < 0)
        return r;
    r = image_delete_locked(db, id, err);
    if (r < 0)
        ks_error_wrap(err, "delete image");
    return tx_end(&tx, r, err);
}

int ks_db_image_find_prefix(struct ks_db *db, const char *prefix, char **ret_id,
                            struct ks_error **err)
{
    /* Only hex after an optional "algorithm:", so that the prefix is safe inside a GLOB. */
    const char *colon = prefix ? strchr(prefix, ':') : NULL;
    const char *hex = colon ? colon + 1 : prefix;
    if (hex == NULL || *hex == '\0')
        return ks_error_set_plain(err, EINVAL, "image ID prefix `%s` is empty",
                                  prefix ? prefix : "");
    for (const char *p = prefix; colon && p < colon; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p))
            return ks_error_set_plain(err, EINVAL, "`%s` is not an image ID", prefix);
    for (const char *p = hex; *p; p++)
        if (!isxdigit((unsigned char)*p))
            return ks_error_set_plain(err, EINVAL, "`%s` is not an image ID", prefix);

    _cleanup_free_ char *pattern = NULL;
    int len = colon ? asprintf(&pattern, "%.*s:%s*", (int)(colon - prefix), prefix, hex)
                    : asprintf(&pattern, "sha256:%s*", hex);
    if (len < 0)
        return ks_error_set(err, ENOMEM, "find image");
    for (char *p = strchr(pattern, ':'); *p; p++)
        *p = (char)tolower((unsigned char)*p);

    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db, "SELECT id FROM images WHERE id GLOB ?1 ORDER BY id", &st,
                          "find image", err, 1, pattern);
    if (r < 0)
        return r;
    _cleanup_strv_ char **ids = NULL;
    r = collect_strv(db, st, "find image", &ids, err);
    if (r < 0)
        return r;
    size_t n = ks_strv_len(ids);
    if (n == 0)
        return ks_error_set_plain(err, ENOENT, "no image with ID `%s`", prefix);
    if (n > 1)
        return ks_error_set_plain(err, ENOTUNIQ,
                                  "image ID prefix `%s` is ambiguous: %zu images "
                                  "match",
                                  prefix, n);
    *ret_id = TAKE_PTR(ids[0]);
    return 0;
}

static int images_walk(struct ks_db *db, ks_db_image_fn fn, void *userdata, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db,
                          "SELECT id, config, created, size FROM images "
                          "ORDER BY created DESC, id",
                          &st, err);
    if (r < 0)
        return r;
    while ((r = ks_db_step(db, st, "list images", err)) > 0) {
        _cleanup_db_image_ struct ks_db_image *img = NULL;
        r = image_from_row(db, st, &img, err);
        if (r < 0)
            return r;
        r = fn(img, userdata);
        if (r < 0)
            return ks_error_set(err, -r, "list images");
    }
    return r;
}

int ks_db_images_list(struct ks_db *db, ks_db_image_fn fn, void *userdata, struct ks_error **err)
{
    struct tx tx;
    int r = tx_begin(db, false, &tx, err);
    if (r < 0)
        return r;
    return tx_end(&tx, images_walk(db, fn, userdata, err), err);
}

/* --- tags and digests --- */

/* Runs a one-statement write binding n texts; a foreign key failure names the image. */
static int write_texts(struct ks_db *db, const char *sql, const char *what, const char *image_id,
                       struct ks_error **err, int n, const char *a, const char *b, const char *c)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db, sql, &st, what, err, n, a, b, c);
    if (r < 0)
        return r;
    struct tx tx;
    r = tx_begin(db, true, &tx, err);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        r = ks_error_set_plain(err, ENOENT, "%s: no such image `%s`", what, image_id);
    else if (rc != SQLITE_DONE)
        r = ks_db_error(db, rc, what, err);
    else
        r = sqlite3_changes(db->sql);
    return tx_end(&tx, r, err);
}

int ks_db_tag_set(struct ks_db *db, const char *ref, const char *image_id, struct ks_error **err)
{
    int r = write_texts(db,
                        "INSERT INTO tags (reference, image_id) VALUES (?1, ?2) "
                        "ON CONFLICT (reference) DO UPDATE SET image_id = excluded.image_id",
                        "tag image", image_id, err, 2, ref, image_id, NULL);
    return r < 0 ? r : 0;
}

int ks_db_tag_get(struct ks_db *db, const char *ref, char **ret_image_id, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db, "SELECT image_id FROM tags WHERE reference = ?1", &st, "look up tag",
                          err, 1, ref);
    if (r < 0)
        return r;
    r = query_text(db, st, "look up tag", ret_image_id, err);
    if (r == -ENOENT)
        return ks_error_set_plain(err, ENOENT, "no such image `%s`", ref);
    return r;
}

int ks_db_tag_delete(struct ks_db *db, const char *ref, struct ks_error **err)
{
    int r = write_texts(db, "DELETE FROM tags WHERE reference = ?1", "untag image", NULL, err, 1,
                        ref, NULL, NULL);
    if (r == 0)
        return ks_error_set_plain(err, ENOENT, "untag: no such reference `%s`", ref);
    return r < 0 ? r : 0;
}

int ks_db_tags_for_image(struct ks_db *db, const char *image_id, char ***ret, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db, "SELECT reference FROM tags WHERE image_id = ?1 ORDER BY reference",
                          &st, "list tags", err, 1, image_id);
    if (r < 0)
        return r;
    return collect_strv(db, st, "list tags", ret, err);
}

int ks_db_digests_for_image(struct ks_db *db, const char *image_id, char ***ret,
                            struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db,
                          "SELECT repository || '@' || digest FROM digests WHERE image_id = ?1 "
                          "ORDER BY 1",
                          &st, "list digests", err, 1, image_id);
    if (r < 0)
        return r;
    return collect_strv(db, st, "list digests", ret, err);
}

int ks_db_digest_set(struct ks_db *db, const char *repository, const char *digest,
                     const char *image_id, struct ks_error **err)
{
    int r = write_texts(db,
                        "INSERT INTO digests (repository, digest, image_id) VALUES (?1, ?2, ?3) "
                        "ON CONFLICT (repository, digest) DO UPDATE SET image_id = "
                        "excluded.image_id",
                        "record manifest digest", image_id, err, 3, repository, digest, image_id);
    return r < 0 ? r : 0;
}

int ks_db_digest_get(struct ks_db *db, const char *repository, const char *digest,
                     char **ret_image_id, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prepare_texts(db, "SELECT image_id FROM digests WHERE repository = ?1 AND digest = ?2",
                          &st, "look up manifest digest", err, 2, repository, digest);
    if (r < 0)
        return r;
    r = query_text(db, st, "look up manifest digest", ret_image_id, err);
    if (r == -ENOENT)
        return ks_error_set_plain(err, ENOENT, "no image for `%s@%s`", repository, digest);
    return r;
}
