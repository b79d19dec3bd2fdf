/* A content-addressed blob store: every blob (layer, manifest, config) lives under
 * <root>/blobs/<algorithm>/<hex>, named by the digest of its content, the layout of an OCI
 * image layout's blobs directory. Blobs are written to <root>/blobs/tmp/ while being hashed,
 * then renamed into place once the digest is known and checked, so a reader never sees a
 * partial blob and a crash leaves at most a stray temporary file.
 *
 * A store handle may be shared by several threads; a writer belongs to one at a time. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/error.h"
#include "../base/hash.h"

/* "sha256:" + 64 hex digits + NUL. */

struct ks_blobstore;
struct ks_blob_writer;

/* Opens the store under root, creating root/blobs/{sha256,sha512,tmp} as needed. *ret is owned
 * by the caller (ks_blobstore_free) and must outlive the writers made from it. */
int ks_blobstore_open(const char *root, struct ks_blobstore **ret, struct ks_error **err);
void ks_blobstore_free(struct ks_blobstore *store);
KS_DEFINE_CLEANUP(struct ks_blobstore *, ks_blobstore_free)
#define _cleanup_blobstore_ _cleanup_(ks_blobstore_free_p)

/* Starts a new blob. With expected_digest (may be NULL; sha256 or sha512) the content is
 * hashed with its algorithm and must match it at commit, else sha256 is used; with
 * expected_size >= 0 the content must be exactly that long (-1: unknown). *ret is owned by the
 * caller (ks_blob_writer_free). */
int ks_blob_writer_new(struct ks_blobstore *store, const char *expected_digest,
                       int64_t expected_size, struct ks_blob_writer **ret, struct ks_error **err);

/* Appends len bytes. Growing beyond expected_size is refused (EFBIG); after any failure the
 * writer only accepts abort or free. */
int ks_blob_writer_write(struct ks_blob_writer *w, const void *buf, size_t len,
                         struct ks_error **err);

/* Checks size and digest against the expected ones, fsyncs the content and renames it into
 * place; a blob with the same digest already there is success (the new copy is dropped). A
 * mismatch is EBADMSG and leaves nothing behind. *ret_digest (may be NULL) is a new string
 * owned by the caller; *ret_size may be NULL. The writer must still be freed. */
int ks_blob_writer_commit(struct ks_blob_writer *w, char **ret_digest, int64_t *ret_size,
                          struct ks_error **err);

/* Removes the temporary file; the writer then only accepts free. */
void ks_blob_writer_abort(struct ks_blob_writer *w);
/* Aborts an uncommitted writer and frees it; NULL is fine. */
void ks_blob_writer_free(struct ks_blob_writer *w);
KS_DEFINE_CLEANUP(struct ks_blob_writer *, ks_blob_writer_free)
#define _cleanup_blob_writer_ _cleanup_(ks_blob_writer_free_p)

/* Stores buf as a sha256 blob. *ret_digest (may be NULL) is a new string owned by the caller. */
int ks_blobstore_put(struct ks_blobstore *store, const void *buf, size_t len, char **ret_digest,
                     struct ks_error **err);

/* Opens a blob for reading. The digest is validated first (ks_is_digest), so it can never act
 * as a path. *ret_fd (O_RDONLY, O_CLOEXEC) is owned by the caller; *ret_size may be NULL. A
 * missing blob is ENOENT. */
int ks_blobstore_open_blob(struct ks_blobstore *store, const char *digest, int *ret_fd,
                           int64_t *ret_size, struct ks_error **err);

/* 1 when the blob is there, 0 when not, negative on error (an invalid digest among them). */
int ks_blobstore_has(struct ks_blobstore *store, const char *digest, struct ks_error **err);

/* Removes a blob. A missing blob is ENOENT, so a caller that does not mind can test errnum. */
int ks_blobstore_delete(struct ks_blobstore *store, const char *digest, struct ks_error **err);

/* Called once per blob with its digest (valid during the call only) and size. A negative return
 * stops the walk and is returned by ks_blobstore_list; the callback may set err. */
typedef int (*ks_blob_list_fn)(const char *digest, int64_t size, void *userdata,
                               struct ks_error **err);

/* Walks every blob, for garbage collection. Files in the blob directories whose names are not
 * digests are skipped, as are the temporary files of writers. Blobs added or removed during
 * the walk may or may not be seen. */
int ks_blobstore_list(struct ks_blobstore *store, ks_blob_list_fn fn, void *userdata,
                      struct ks_error **err);

/* Hashes the stored content again: 0 when it matches its name, EBADMSG when the blob is
 * corrupt (the message names both digests), ENOENT when it is missing. */
int ks_blobstore_verify(struct ks_blobstore *store, const char *digest, struct ks_error **err);
