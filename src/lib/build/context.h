/* A build context on disk: its entries as .dockerignore leaves them, and a digest of their
 * content and metadata (not their times) for the build cache's COPY and ADD keys. */
#pragma once

#include <sys/stat.h>

#include "../base/error.h"
#include "../base/hash.h"
#include "dockerignore.h"

#define KS_CONTEXT_MAX_DEPTH 256

/* Called for each entry: path relative to the context root ("a/b"), the entry as name in the
 * directory parent_fd (borrowed for the call), and its lstat. A negative return stops the
 * walk. */
typedef int (*ks_context_fn)(void *userdata, const char *path, int parent_fd, const char *name,
                             const struct stat *st, struct ks_error **err);

/* Walks the entries under sub ("" or "." for all; a path relative to the root) of the context
 * rootfd, depth first, names in byte order, without following symbolic links. Entries di
 * excludes (di may be NULL) are not reported; an excluded directory is entered only when an
 * exception may include something below it. */
int ks_context_walk(int rootfd, const char *sub, const struct ks_dockerignore *di, ks_context_fn fn,
                    void *userdata, struct ks_error **err);

/* The directory that holds path (relative to rootfd), resolved inside rootfd: symbolic links
 * on the way cannot lead out of it. Returns an O_PATH fd (owned by the caller) and the last
 * component in *ret_base (owned; "." for the root itself). */
int ks_context_open_parent(int rootfd, const char *path, char **ret_base, struct ks_error **err);

/* The digest ("sha256:<hex>") of what ks_context_walk reports under sub: paths, types,
 * permission bits, owners, sizes, file contents and link targets. */
int ks_context_digest(int rootfd, const char *sub, const struct ks_dockerignore *di,
                      char out[static KS_SHA256_DIGEST_LEN], struct ks_error **err);
