/* Image layers: applying an OCI/Docker layer tar to a layer directory (in overlayfs form, so the
 * directory can be a lower dir as is), and writing an overlay upper directory back out as a
 * layer tar. The tar is untrusted input: nothing it says can make the apply step write outside
 * the destination directory. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "../base/error.h"

/* A layer whose uncompressed tar stream is larger than this is refused unless the caller sets
 * another limit: it stops decompression bombs long before the disk fills up. */
#define KS_LAYER_DEFAULT_MAX_SIZE (UINT64_C(64) << 30)
/* Entry names (and hardlink targets) longer than this are refused, as PATH_MAX would refuse
 * them later anyway. */
#define KS_LAYER_MAX_NAME 4096
/* "sha256:" + 64 hex digits + NUL */
#define KS_LAYER_DIGEST_LEN 72

struct ks_layer_apply_opts {
    uint64_t max_size;  /* limit on the uncompressed tar bytes; 0: KS_LAYER_DEFAULT_MAX_SIZE */
    bool allow_devices; /* create char and block devices (needs CAP_MKNOD); else refuse them */
    bool userxattr;     /* opaque directories as user.overlay.opaque (overlay's userxattr) */
    bool no_chown;      /* leave every file owned by the caller (rootless extraction) */
    uint32_t uid_shift; /* added to every owner in the tar (user namespace mapping) */
    uint32_t gid_shift;
};

struct ks_layer_result {
    char diff_id[KS_LAYER_DIGEST_LEN]; /* sha256 of the uncompressed tar */
    char digest[KS_LAYER_DIGEST_LEN];  /* sha256 of the bytes read from the fd (the blob) */
    uint64_t size;                     /* bytes read from the fd */
    uint64_t uncompressed_size;        /* bytes of the tar stream */
    uint64_t entries;                  /* tar entries seen */
};

/* Applies the layer read from fd (tar, tar+gzip, tar+zstd, tar+xz or tar+bzip2, detected from
 * its content) to the directory dest_dirfd, in one pass and without a temporary copy. Whiteouts
 * become overlayfs whiteouts (char device 0:0) and opaque markers an opaque xattr on the
 * directory. Entries that would leave the destination (".." components, paths through
 * symlinks, hardlinks to outside) are refused with an error naming the entry; leading "/" is
 * dropped. On error the destination holds a partial layer, which the caller removes. o may be
 * NULL for the defaults. *ret (optional) is filled in by value: nothing to free. */
/* A tar member's path as the apply step cleans it: leading "/" (Docker strips it), empty and "."
 * components dropped, single slashes between the rest; "" is the destination itself. Everything
 * that reads tar paths in the image module uses it, so that they agree on which file a member
 * names. -ENAMETOOLONG over KS_LAYER_MAX_NAME, -EPERM for a ".." component (it would leave the
 * layer), -ENOMEM; else 0 and *ret is owned by the caller. No message: callers name the entry. */
int ks_layer_clean_path(const char *name, char **ret);

int ks_layer_apply(int fd, int dest_dirfd, const struct ks_layer_apply_opts *o,
                   struct ks_layer_result *ret, struct ks_error **err);

struct ks_layer_diff_opts {
    bool use_fixed_mtime; /* reproducible layers: every entry gets fixed_mtime */
    int64_t fixed_mtime;  /* seconds since the epoch */
    bool gzip;            /* compress the output with gzip (the diff_id stays uncompressed) */
    bool userxattr;       /* opaque directories are marked with user.overlay.opaque */
};

/* Writes the overlay upper directory upper_dirfd as an OCI layer tar (PAX) to out_fd: entries
 * in depth-first order with the names of each directory sorted, overlay whiteouts as ".wh."
 * entries, opaque directories followed by their ".wh..wh..opq" marker, files linked within the
 * tree as hardlinks, extended attributes except overlay's own. *ret_diff_id ("sha256:<hex>" of
 * the uncompressed tar, optional) is owned by the caller. o may be NULL for the defaults. */
int ks_layer_diff(int upper_dirfd, int out_fd, const struct ks_layer_diff_opts *o,
                  char **ret_diff_id, struct ks_error **err);
