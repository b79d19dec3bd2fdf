/* What the image store's own files (store.c, store_stream.c, store_add.c, the archive code)
 * share and nothing else uses: the store's layout and the helpers that work on it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../base/error.h"
#include "layer.h"
#include "store.h"

struct ks_blobstore;
struct ks_blob_writer;

#define KS_STORE_LAYERBLOBS_DIR "layerblobs"

struct ks_store {
    char *root;
    char *overlay; /* <root>/overlay, the layer directories */
    char *lock_path;
    int layerblobs_fd; /* <root>/layerblobs: <diff hex> → the blob the layer came from */
    struct ks_db *db;
    struct ks_blobstore *blobs;
};

/* Streams a layer from src into the layer directory dest (ks_layer_apply on a thread of its
 * own) and, when w is not NULL, into the blob writer w in the same pass: a compressed stream as
 * it is, an uncompressed tar as its index over dest (tarsplit.h), whose *ret_unsafe (may be
 * NULL) says that dest cannot give the tar back. The blob is not committed. *res is filled in
 * by value. */
int ks_store_stream_layer(ks_store_block_fn src, void *userdata, int dest, struct ks_blob_writer *w,
                          struct ks_layer_result *res, bool *ret_unsafe, struct ks_error **err);

/* Opens the layer's tar for reading from its stored blob: the blob itself (maybe compressed),
 * or, for a tar index, a pipe fed by a thread that replays it over content_dirfd (a directory
 * holding the layer's files; -EBADF: the layer directory the database names for diff_id).
 * *ret_fd is owned by the caller; closing it early ends the replay. */
int ks_store_layer_open(struct ks_store *s, const char *diff_id, const char *blob,
                        int content_dirfd, int *ret_fd, struct ks_error **err);

/* A source over a plain fd, for ks_store_stream_layer; its buffer is freed by
 * ks_store_fd_source_release. */
struct ks_store_fd_source {
    int fd;
    char *buf;
};
int ks_store_fd_source(void *userdata, const void **ret_buf, size_t *ret_len,
                       struct ks_error **err);
void ks_store_fd_source_release(struct ks_store_fd_source *src);

/* Whether a stream starting with these bytes is compressed (gzip, zstd, xz, bzip2). */
bool ks_store_compressed(const void *buf, size_t len);

/* The options every layer of the store is applied with. */
struct ks_layer_apply_opts ks_store_apply_opts(void);

/* Keeps the layer read from fd (a regular file, from offset start, already applied) as a blob:
 * a compressed stream as it is, an uncompressed tar as its index over the layer directory;
 * *ret_blob is NULL when nothing could be kept. */
int ks_store_keep_from_file(struct ks_store *s, int fd, off_t start, bool compressed,
                            char **ret_blob, struct ks_error **err);

/* Records which blob a layer (by diff_id) came from. */
int ks_store_layerblob_record(struct ks_store *s, const char *diff_id, const char *blob,
                              struct ks_error **err);
/* The blob a layer came from, *ret owned by the caller; -ENOENT when none is recorded. */
int ks_store_layerblob_get(struct ks_store *s, const char *diff_id, char **ret,
                           struct ks_error **err);

/* "docker.io/library/busybox:latest" → "busybox:latest"; a copy of s when it does not parse.
 * New string owned by the caller; NULL only when out of memory. */
char *ks_store_familiar(const char *s);

/* Parses a reference to tag (a digest is not a tag); *ret (full form) owned by the caller. */
int ks_store_tag_ref(const char *name, char **ret, struct ks_error **err);
