/* Image archives: `docker save` / `docker load` tar streams and OCI image layout archives.
 *
 * Saving writes the layout that current Docker writes, which both old (20.10) and new Docker
 * read: an OCI image layout (oci-layout, index.json, blobs/sha256/<hex> for configs,
 * uncompressed layer tars and manifests) plus Docker's manifest.json and repositories. The OCI
 * format is the same layout without Docker's two files. Output is deterministic: blobs sorted
 * by digest, fixed times and owners.
 *
 * Loading reads either Docker layout (old: <id>/layer.tar and <config hex>.json; new: blobs/),
 * or an OCI image layout archive, optionally compressed as a whole (gzip, zstd, xz). The
 * archive is untrusted: member names are confined to the archive, JSON members are bounded,
 * every digest is verified. Layers are unpacked while the archive streams, each into a layer
 * directory of its own; an error leaves nothing recorded and removes what was unpacked. */
#pragma once

#include <stdbool.h>

#include "../base/error.h"
#include "store.h"

enum ks_archive_format {
    KS_ARCHIVE_DOCKER = 0, /* `docker save` (OCI layout plus manifest.json and repositories) */
    KS_ARCHIVE_OCI,        /* an OCI image layout archive */
};

/* Writes the images named by names (references or IDs, NULL-terminated) to out_fd as one tar
 * stream. An image named by a tag is saved with that tag (RepoTags, ref name annotations); one
 * named by ID with none. */
int ks_archive_save(struct ks_store *s, const char *const *names, enum ks_archive_format format,
                    int out_fd, struct ks_error **err);

/* One image that a load recorded. */
struct ks_archive_loaded {
    char *id;    /* "sha256:<hex>" */
    char **tags; /* familiar references ("busybox:latest"), NULL-terminated, maybe empty */
};
void ks_archive_loaded_free(struct ks_archive_loaded **v);
KS_DEFINE_CLEANUP(struct ks_archive_loaded **, ks_archive_loaded_free)
#define _cleanup_archive_loaded_ _cleanup_(ks_archive_loaded_free_p)

/* Loads every image of the archive read from in_fd (to its end). *ret is a NULL-terminated
 * vector in the archive's order, owned by the caller (ks_archive_loaded_free); may be NULL. */
int ks_archive_load(struct ks_store *s, int in_fd, struct ks_archive_loaded ***ret,
                    struct ks_error **err);
