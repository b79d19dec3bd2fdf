/* The engine's state database: one SQLite file, <root>/kiste.db, in WAL mode, shared by every
 * short-lived `kiste` process. Writers serialise on BEGIN IMMEDIATE, retried with a back-off on
 * SQLITE_BUSY, so that concurrent commands wait for each other rather than fail with "database
 * is locked". The schema is versioned and migrated forward when the database is opened.
 *
 * Image store tables: a layer is keyed by its chain ID (the same diff on two different parents
 * is two layers with two directories), an image by its config digest.
 *
 * Errors: SQLite result codes are mapped to errno values (SQLITE_BUSY → EBUSY, a constraint →
 * EEXIST or, for a foreign key, ENOENT/EBUSY as documented per function, SQLITE_FULL → ENOSPC
 * …) and the message names the operation. A missing row is -ENOENT. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "../base/error.h"

#define KS_DB_FILE "kiste.db"

struct ks_db;

/* Opens (creating when missing) <root>/kiste.db, creating root too; sets WAL mode, foreign keys
 * and the busy timeout, and applies pending schema migrations. *ret is owned by the caller
 * (ks_db_close). A database written by a newer kiste (a schema version above the one this build
 * knows) is refused with EPROTONOSUPPORT. */
int ks_db_open(const char *root, struct ks_db **ret, struct ks_error **err);

/* Closes the database; an open transaction is rolled back. Accepts NULL. */
void ks_db_close(struct ks_db *db);
KS_DEFINE_CLEANUP(struct ks_db *, ks_db_close)
#define _cleanup_db_ _cleanup_(ks_db_close_p)

/* The schema version this build creates and understands. */
int ks_db_schema_version(void);

/* The underlying connection, borrowed, for queries the typed functions do not cover. */
sqlite3 *ks_db_handle(struct ks_db *db);

/* Transactions. ks_db_begin starts a write transaction (BEGIN IMMEDIATE), waiting for other
 * writers. Transactions do not nest: the typed functions below join the caller's transaction
 * when one is open (through a savepoint) and otherwise run in their own. ks_db_rollback may be
 * called when no transaction is open; it never fails in a way the caller could act on. */
int ks_db_begin(struct ks_db *db, struct ks_error **err);
int ks_db_commit(struct ks_db *db, struct ks_error **err);
void ks_db_rollback(struct ks_db *db);
bool ks_db_in_transaction(struct ks_db *db);

/* Runs one or more SQL statements without results. */
int ks_db_exec(struct ks_db *db, const char *sql, struct ks_error **err);

/* Prepares one statement; *ret is owned by the caller (sqlite3_finalize, or _cleanup_stmt_).
 * The error message quotes the start of the SQL. */
int ks_db_prepare(struct ks_db *db, const char *sql, sqlite3_stmt **ret, struct ks_error **err);

/* Steps a statement: 1 for a row, 0 when done, a negative errno with the message "what: <SQLite
 * message>" on failure. */
int ks_db_step(struct ks_db *db, sqlite3_stmt *stmt, const char *what, struct ks_error **err);

/* Turns an SQLite result code into a negative errno and an error "what: <SQLite message>". */
int ks_db_error(struct ks_db *db, int rc, const char *what, struct ks_error **err);

static inline void ks_db_finalizep(sqlite3_stmt **s)
{
    if (*s)
        sqlite3_finalize(*s);
}
#define _cleanup_stmt_ _cleanup_(ks_db_finalizep)

/* --- layers --- */

struct ks_db_layer {
    char *diff_id;  /* digest of the uncompressed layer tar */
    char *chain_id; /* identity of the layer with everything below it */
    char *parent;   /* chain ID of the layer below, NULL for a base layer */
    char *cache_id; /* directory name under the layer store */
    int64_t size;   /* bytes of the unpacked diff */
    int64_t refcount;
};

void ks_db_layer_free(struct ks_db_layer *l);
KS_DEFINE_CLEANUP(struct ks_db_layer *, ks_db_layer_free)
#define _cleanup_db_layer_ _cleanup_(ks_db_layer_free_p)

enum ks_db_layer_key {
    KS_DB_LAYER_BY_CHAIN_ID,
    KS_DB_LAYER_BY_CACHE_ID,
    /* The same diff may sit on several parents: this finds one of them (the oldest), which is
     * enough to know whether the content is already unpacked somewhere. */
    KS_DB_LAYER_BY_DIFF_ID,
};

/* Looks a layer up; -ENOENT when there is none. *ret is owned by the caller. */
int ks_db_layer_get(struct ks_db *db, enum ks_db_layer_key key, const char *value,
                    struct ks_db_layer **ret, struct ks_error **err);

/* Records a layer (with layer->refcount as its initial count). -EEXIST when the chain ID or the
 * cache ID is already recorded (a concurrent pull won: drop the new directory and use the
 * recorded one); -ENOENT when the parent is not recorded. */
int ks_db_layer_put(struct ks_db *db, const struct ks_db_layer *layer, struct ks_error **err);

/* Adds or drops one reference (an image or a container using the layer as its top) and returns
 * the new count (>= 0). Dropping below zero is -EINVAL; an unknown chain ID is -ENOENT. */
int64_t ks_db_layer_ref(struct ks_db *db, const char *chain_id, struct ks_error **err);
int64_t ks_db_layer_unref(struct ks_db *db, const char *chain_id, struct ks_error **err);

/* Forgets a layer. -EBUSY while it is referenced or another layer has it as parent; -ENOENT
 * when unknown. The caller removes the directory after the commit. */
int ks_db_layer_delete(struct ks_db *db, const char *chain_id, struct ks_error **err);

/* Chain IDs of the layers nobody uses: refcount 0 and no child layer. Deleting them may make
 * their parents unused in turn, so a collector repeats until the list is empty. *ret is a
 * NULL-terminated vector owned by the caller (ks_strv_free), empty when there are none. */
int ks_db_layers_unused(struct ks_db *db, char ***ret, struct ks_error **err);

/* --- images --- */

struct ks_db_image {
    char *id;        /* config digest, "sha256:<hex>" */
    char *config;    /* the image config JSON, NULL when not stored */
    int64_t created; /* when the image entered this store, seconds since the epoch */
    int64_t size;    /* sum of the layers' sizes */
    size_t n_layers;
    char **diff_ids;  /* n_layers entries, base first, NULL-terminated */
    char **chain_ids; /* likewise */
};

void ks_db_image_free(struct ks_db_image *img);
KS_DEFINE_CLEANUP(struct ks_db_image *, ks_db_image_free)
#define _cleanup_db_image_ _cleanup_(ks_db_image_free_p)

/* Records an image whose layers (base first) are already recorded; each layer's chain ID is
 * computed from the diff IDs, and the top layer gains one reference. Replacing an existing
 * image (the same ID) keeps its tags. -ENOENT names a layer that is not recorded. config_json
 * may be NULL. */
int ks_db_image_put(struct ks_db *db, const char *id, const char *config_json,
                    const char *const *diff_ids, size_t n, struct ks_error **err);

/* The image with exactly this ID; -ENOENT when none. *ret is owned by the caller. */
int ks_db_image_get(struct ks_db *db, const char *id, struct ks_db_image **ret,
                    struct ks_error **err);

/* Forgets an image, its tags and digests, and drops the reference on its top layer (the layers
 * themselves stay: see ks_db_layers_unused). -ENOENT when unknown. */
int ks_db_image_delete(struct ks_db *db, const char *id, struct ks_error **err);

/* Resolves a full or abbreviated image ID ("3f5a", "sha256:3f5a…") into *ret_id (owned by the
 * caller). -ENOENT when nothing matches, -ENOTUNIQ naming the count when several do, -EINVAL
 * for a prefix that is not hex. */
int ks_db_image_find_prefix(struct ks_db *db, const char *prefix, char **ret_id,
                            struct ks_error **err);

/* Calls fn for every image, newest first. The image is borrowed for the call. A negative return
 * from fn stops the walk and is returned. */
typedef int (*ks_db_image_fn)(const struct ks_db_image *img, void *userdata);
int ks_db_images_list(struct ks_db *db, ks_db_image_fn fn, void *userdata, struct ks_error **err);

/* --- tags and digests --- */

/* Points the reference ("docker.io/library/nginx:latest") at an image, moving it from the image
 * it named before. -ENOENT when the image is unknown. */
int ks_db_tag_set(struct ks_db *db, const char *ref, const char *image_id, struct ks_error **err);
/* The image a reference names, in *ret_image_id (owned by the caller); -ENOENT when untagged. */
int ks_db_tag_get(struct ks_db *db, const char *ref, char **ret_image_id, struct ks_error **err);
/* -ENOENT when the reference does not exist. */
int ks_db_tag_delete(struct ks_db *db, const char *ref, struct ks_error **err);
/* The references naming an image, sorted, as a NULL-terminated vector owned by the caller
 * (empty, not NULL, when there are none). */
int ks_db_tags_for_image(struct ks_db *db, const char *image_id, char ***ret,
                         struct ks_error **err);
/* "repository@digest" of every manifest recorded for image_id, sorted; a NULL-terminated vector
 * the caller owns. */
int ks_db_digests_for_image(struct ks_db *db, const char *image_id, char ***ret,
                            struct ks_error **err);

/* Records that the manifest with this digest, pulled from repository, is the image image_id
 * (what `kiste images --digests` and pulls by digest use). */
int ks_db_digest_set(struct ks_db *db, const char *repository, const char *digest,
                     const char *image_id, struct ks_error **err);
/* *ret_image_id is owned by the caller; -ENOENT when not recorded. */
int ks_db_digest_get(struct ks_db *db, const char *repository, const char *digest,
                     char **ret_image_id, struct ks_error **err);

/* --- containers (db_container.c) --- */

struct ks_db_container {
    char *id;        /* 64 hex digits */
    char *name;      /* without Docker's leading "/" */
    char *image_id;  /* "sha256:<hex>" */
    char *image_ref; /* the image as the user named it */
    int64_t created; /* nanoseconds since the epoch */
    char *config;    /* Docker-style {"Config": …, "HostConfig": …} JSON */
    char *snapshot;  /* the snapshot's name in the overlay store, NULL when none */
    /* Derived from config by put/set_config (ignored when given): Docker's Command, Entrypoint
     * and Cmd joined by spaces, and the labels as "k=v,k=v" in the config's order. */
    char *command, *labels;
};

void ks_db_container_free(struct ks_db_container *c);
KS_DEFINE_CLEANUP(struct ks_db_container *, ks_db_container_free)
#define _cleanup_db_container_ _cleanup_(ks_db_container_free_p)

/* Records a container. -EEXIST when the name is taken (the message is Docker's "Conflict. The
 * container name "/x" is already in use by container …"), -ENOENT when the image is unknown. */
int ks_db_container_put(struct ks_db *db, const struct ks_db_container *c, struct ks_error **err);

/* The container with exactly this ID; -ENOENT when none. *ret is owned by the caller. */
int ks_db_container_get(struct ks_db *db, const char *id, struct ks_db_container **ret,
                        struct ks_error **err);

/* Resolves what a user typed, as Docker does: a full ID, then a name (with or without the
 * leading "/"), then a unique ID prefix. *ret_id is owned by the caller. -ENOENT ("No such
 * container: x") when nothing matches, -ENOTUNIQ when a prefix matches several. */
int ks_db_container_find(struct ks_db *db, const char *name_or_id, char **ret_id,
                         struct ks_error **err);

/* Renames a container; -EEXIST (Docker's conflict message) when the name is taken, -ENOENT when
 * the container is unknown. */
int ks_db_container_rename(struct ks_db *db, const char *id, const char *name,
                           struct ks_error **err);

/* Replaces the stored config JSON (update, restart count bookkeeping). -ENOENT when unknown. */
int ks_db_container_set_config(struct ks_db *db, const char *id, const char *config,
                               struct ks_error **err);

/* Forgets a container; -ENOENT when unknown. */
int ks_db_container_delete(struct ks_db *db, const char *id, struct ks_error **err);

/* Calls fn for every container, newest first; the record is borrowed for the call. A negative
 * return from fn stops the walk and is returned. */
typedef int (*ks_db_container_fn)(const struct ks_db_container *c, void *userdata);
int ks_db_containers_list(struct ks_db *db, ks_db_container_fn fn, void *userdata,
                          struct ks_error **err);

/* The ID of a container (the oldest) using image_id in *ret_id (owned by the caller); -ENOENT
 * (without a message) when none does. */
int ks_db_container_using_image(struct ks_db *db, const char *image_id, char **ret_id,
                                struct ks_error **err);
