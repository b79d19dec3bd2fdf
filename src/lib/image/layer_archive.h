/* What the image module's libarchive readers share: a reader that undoes a layer's compression
 * and nothing else, and its cleanup. Internal to src/lib/image. */
#pragma once

#include <archive.h>

#include "../base/cleanup.h"

/* A reader of format "raw" with the decompression filters a layer may use (gzip, zstd, xz,
 * bzip2): its one entry is the uncompressed stream. Named filters only, because
 * archive_read_support_filter_all() would also run external programs (lrzip, lzop, grzip) on
 * untrusted input. NULL when out of memory; otherwise owned by the caller (archive_read_free). */
struct archive *ks_layer_reader_new(void);

static inline void ks_archive_read_freep(struct archive **a)
{
    if (*a)
        archive_read_free(*a);
}
#define _cleanup_archive_read_ _cleanup_(ks_archive_read_freep)
