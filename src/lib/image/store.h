/* The local image store: images, their tags and their layers, over the state database, the
 * blob store (<root>/blobs) and the overlay layer directories (<root>/overlay).
 *
 * Every change writes its files first (layer directory, blobs) and commits the database rows
 * last, so a crash leaves at most files nobody references, never a row without its files.
 * Imports hold a shared lock on <root>/store.lock from their first file to their commit, and
 * garbage collection an exclusive one, so a collector never removes what an import in flight
 * is about to reference. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "../base/clock.h"
#include "../base/error.h"

struct ks_db;

#define KS_STORE_DEFAULT_ROOT "/var/lib/kiste"

struct ks_store;

/* Opens the store under root (NULL: KS_STORE_DEFAULT_ROOT), creating what is missing. *ret is
 * owned by the caller (ks_store_free). */
int ks_store_open(const char *root, struct ks_store **ret, struct ks_error **err);
void ks_store_free(struct ks_store *s);
KS_DEFINE_CLEANUP(struct ks_store *, ks_store_free)
#define _cleanup_store_ _cleanup_(ks_store_free_p)

/* The storage root, borrowed. */
const char *ks_store_root(struct ks_store *s);
/* The state database, borrowed. */
struct ks_db *ks_store_db(struct ks_store *s);

/* Imports a root file system tarball (tar, tar+gzip, tar+zstd …) read from tar_fd as a
 * one-layer image, as `docker import` does. changes are Dockerfile-style lines (CMD,
 * ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL), NULL-terminated, may be
 * NULL; ref (may be NULL) is tagged to the new image; message becomes the history comment (may
 * be NULL). *ret_image_id ("sha256:<hex>", the config digest) is owned by the caller. */
int ks_store_import(struct ks_store *s, int tar_fd, const char *const *changes, const char *ref,
                    const char *message, char **ret_image_id, struct ks_error **err);

/* Resolves a reference ("busybox", "name:tag", "name@sha256:…") or a full or short image ID.
 * An unknown image is ENOENT with Docker's message "No such image: <name>". *ret_id is owned
 * by the caller. */
int ks_store_lookup(struct ks_store *s, const char *name_or_id, char **ret_id,
                    struct ks_error **err);

/* Points target (a reference with a tag) at the image source names. */
int ks_store_tag(struct ks_store *s, const char *source, const char *target, struct ks_error **err);
/* Removes a tag; ENOENT ("No such image: …") when it does not exist. */
int ks_store_untag(struct ks_store *s, const char *ref, struct ks_error **err);

/* `docker rmi` for one name: a reference is untagged and its image deleted once no tag is left;
 * an ID deletes the image, which is refused (EBUSY, Docker's "conflict" message) when several
 * references name it, unless force; an image a container uses is refused too. Afterwards
 * unused layers and blobs are collected. *ret_untagged (familiar references) and *ret_deleted
 * (image IDs) are NULL-terminated vectors owned by the caller; either may be NULL. */
int ks_store_remove(struct ks_store *s, const char *name, bool force, char ***ret_untagged,
                    char ***ret_deleted, struct ks_error **err);

/* Collects layers no image uses (directory and row), layer directories under <root>/overlay
 * that no layer and no container names (with their dangling short links), and blobs nothing
 * references. Holds the exclusive store lock meanwhile. */
int ks_store_gc(struct ks_store *s, struct ks_error **err);

/* One image as `images` lists it. */
struct ks_store_image {
    char *id;        /* "sha256:<hex>" */
    char **tags;     /* familiar references "busybox:latest", NULL-terminated */
    char **digests;  /* familiar "busybox@sha256:…", NULL-terminated */
    int64_t created; /* the config's creation time, seconds since the epoch */
    int64_t size;    /* bytes of all the layers unpacked */
};
void ks_store_images_free(struct ks_store_image **v);
KS_DEFINE_CLEANUP(struct ks_store_image **, ks_store_images_free)
#define _cleanup_store_images_ _cleanup_(ks_store_images_free_p)

/* Every image, newest first, as a NULL-terminated vector owned by the caller
 * (ks_store_images_free). */
int ks_store_images(struct ks_store *s, struct ks_store_image ***ret, struct ks_error **err);

/* Docker-compatible `image inspect` JSON of the image with this ID (a full ID, as lookup gives
 * it). *ret is owned by the caller (json_object_put). */
int ks_store_inspect_json(struct ks_store *s, const char *id, json_object **ret,
                          struct ks_error **err);

/* The image's history, newest first, as `docker history` shows it: an array of objects with
 * Id ("<missing>" for all but the newest), Created (seconds), CreatedBy, Size, Comment. *ret is
 * owned by the caller. */
int ks_store_history_json(struct ks_store *s, const char *id, json_object **ret,
                          struct ks_error **err);

/* --- image configs (store_config.c) --- */

/* Builds the config of an imported one-layer image: changes applied as Docker's import applies
 * them, the layer's diff_id, a history entry. *ret is owned by the caller. */
int ks_image_config_import(const char *const *changes, const char *diff_id, const char *comment,
                           json_object **ret, struct ks_error **err);

/* Applies Dockerfile-style change lines (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL,
 * VOLUME, STOPSIGNAL; as import and commit take them) to cfg, an image config's "config"
 * object, in place. changes is NULL-terminated and may be NULL. */
int ks_image_config_apply_changes(json_object *cfg, const char *const *changes,
                                  struct ks_error **err);

/* Takes the store lock: LOCK_SH for anything that makes a layer directory or a container
 * snapshot and then records it (held from the directory to the commit of its row), LOCK_EX for
 * the collector. Returns the fd that holds it, owned by the caller. */
int ks_store_lock(struct ks_store *s, int how, struct ks_error **err);

/* --- committing a container (store_commit.c) --- */

struct ks_store_commit_opts {
    const char *image_id; /* the container's image: its layers are the new image's base */
    int upper_dirfd;      /* the container's upper directory, whose changes become a layer */
    json_object *config;  /* the container's "Config" (Cmd, Env …), borrowed; NULL: image's */
    const char *const *changes; /* change lines applied over config; may be NULL */
    const char *comment;        /* the history entry's comment (`-m`); may be NULL */
    const char *author;         /* the image's author (`-a`); may be NULL */
    const char *created_by;     /* the history entry's created_by; may be NULL */
    const char *ref;            /* tagged to the new image; may be NULL */
};

/* `docker commit`: a new image made of the image's layers and one more, the upper directory
 * written out as a layer tar (ks_layer_diff: whiteouts for deleted files, opaque directories),
 * with the container's config and the changes applied and a history entry added. The caller
 * keeps the upper directory still while this runs (pauses the container). *ret_image_id
 * ("sha256:<hex>") is owned by the caller. */
int ks_store_commit(struct ks_store *s, const struct ks_store_commit_opts *o, char **ret_image_id,
                    struct ks_error **err);

/* --- adding images from their layers (store_add.c) ---
 *
 * Loading an archive or pulling from a registry adds an image in two steps: each layer's bytes
 * are streamed into a pending layer (unpacked, hashed, its blob kept), then the image is
 * recorded from its config, the pending layers in order, and its names, in one transaction.
 * Until then nothing is recorded: freeing a pending layer removes what it made. */

struct ks_store_layer;

struct ks_store_layer_opts {
    /* The chain ID of the layer below; NULL for a base layer or, with detached, when the
     * parent is not known yet (an archive's manifest may come after its layers). */
    const char *parent_chain_id;
    /* Unpack into a layer directory of its own, placed on its parent by ks_store_image_add:
     * an overlay layer directory does not depend on its parent's content. */
    bool detached;
    /* Checked after the pass (EBADMSG on a mismatch, nothing kept); NULL when not known. */
    const char *expected_diff_id; /* sha256 of the uncompressed tar */
    const char *expected_digest;  /* sha256 of the bytes read (the blob) */
};

/* Reads one layer (tar, tar+gzip, tar+zstd, tar+xz) from fd to its end: hashes it, keeps it as
 * a blob (a compressed stream as it came, an uncompressed tar as its index over the layer
 * directory: tarsplit.h) and unpacks it into a new layer directory, all in one pass. When it is
 * already there (its chain exists, or for a detached layer with a known diff_id, the diff is
 * unpacked somewhere) the bytes are only hashed and checked. o may be NULL (a detached layer of
 * unknown content). *ret is owned by the caller (ks_store_layer_free). */
int ks_store_layer_add(struct ks_store *s, int fd, const struct ks_store_layer_opts *o,
                       struct ks_store_layer **ret, struct ks_error **err);

/* The same from a source of blocks: fn hands out the next block (*ret_buf borrowed until the
 * next call; length 0 at the end) or returns a negative errno with err set. */
typedef int (*ks_store_block_fn)(void *userdata, const void **ret_buf, size_t *ret_len,
                                 struct ks_error **err);
int ks_store_layer_add_stream(struct ks_store *s, ks_store_block_fn fn, void *userdata,
                              const struct ks_store_layer_opts *o, struct ks_store_layer **ret,
                              struct ks_error **err);

/* The pending layer's diff_id and blob digest ("sha256:<hex>"), borrowed. */
const char *ks_store_layer_diff_id(const struct ks_store_layer *l);
const char *ks_store_layer_digest(const struct ks_store_layer *l);
/* Whether its bytes were compressed (the blob digest differs from the diff_id). */
bool ks_store_layer_compressed(const struct ks_store_layer *l);

/* A pending layer for a layer the store holds already on the chain parent_chain_id (NULL for a
 * base layer) with this diff_id: nothing is read. -ENOENT when the store does not have it.
 * *ret is owned by the caller (ks_store_layer_free). */
int ks_store_layer_existing(struct ks_store *s, const char *parent_chain_id, const char *diff_id,
                            struct ks_store_layer **ret, struct ks_error **err);

/* Frees a pending layer and removes its directory unless an image now uses it. NULL is fine. */
void ks_store_layer_free(struct ks_store_layer *l);
KS_DEFINE_CLEANUP(struct ks_store_layer *, ks_store_layer_free)
#define _cleanup_store_layer_ _cleanup_(ks_store_layer_free_p)

struct ks_store_image_spec {
    const char *config; /* the config JSON, byte for byte: its digest is the image ID */
    size_t config_len;
    struct ks_store_layer *const *layers; /* base first, one per rootfs.diff_ids entry */
    size_t n_layers;
    const char *const *tags;    /* references to tag, NULL-terminated; may be NULL */
    const char *const *digests; /* "repository@sha256:…" manifest digests; may be NULL */
};

/* Records an image from its config and its pending layers: the config must parse and its
 * rootfs.diff_ids must be the layers' diff_ids in order. Layers whose chain exists are shared;
 * the others are placed on their parents (a layer used twice on different parents is unpacked
 * again from its blob). The layers, image, tags and digests are one transaction; on error
 * nothing is recorded. *ret_id ("sha256:<hex>") is owned by the caller; may be NULL. */
int ks_store_image_add(struct ks_store *s, const struct ks_store_image_spec *spec, char **ret_id,
                       struct ks_error **err);

/* --- what a registry push reads (store_stream.c) --- */

struct ks_blobstore;
/* The store's blob store, borrowed: pulls keep manifests there so a push can send them as
 * they were. */
struct ks_blobstore *ks_store_blobs(struct ks_store *s);

/* Opens a layer's bytes as a registry is sent them: its blob when it was kept compressed
 * (*ret_digest and *ret_size that blob's; *ret_compression 1 for gzip, 2 for zstd, 3 for
 * another compression), else the uncompressed tar replayed from its index (*ret_digest the
 * diff_id, *ret_size -1 until read, *ret_compression 0). *ret_digest and *ret_fd are owned by
 * the caller. */
int ks_store_layer_push_open(struct ks_store *s, const char *diff_id, char **ret_digest,
                             int64_t *ret_size, int *ret_compression, int *ret_fd,
                             struct ks_error **err);
