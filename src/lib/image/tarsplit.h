/* A layer tar kept without its file contents: the layer directory already holds them, so
 * keeping the whole tar as a blob would write every byte of a layer twice. The index keeps the
 * tar's bytes (headers, extended headers, padding, the end blocks) except the data of regular
 * files, which it names by path; replaying it over the layer directory gives the tar back byte
 * for byte, and so its diff_id.
 *
 * Index format: the magic "\0KSIDX1\n", then records: 'R' u32 n, n raw bytes; 'F' u64 size,
 * u16 n, n bytes of path (clean, relative to the layer directory); 'E' at the end. Integers are
 * little-endian. A tar never starts with this magic (a first header starting with NUL is an end
 * block of zeros), so an index is told from a plain blob by its first bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/error.h"

#define KS_TARSPLIT_MAGIC     "\0KSIDX1\n"
#define KS_TARSPLIT_MAGIC_LEN 8

struct ks_blob_writer;
struct ks_tarsplit;

/* Starts an index written to w (borrowed; the caller commits it). *ret is owned by the caller
 * (ks_tarsplit_free). */
int ks_tarsplit_new(struct ks_blob_writer *w, struct ks_tarsplit **ret, struct ks_error **err);
void ks_tarsplit_free(struct ks_tarsplit *t);

/* Feeds the next bytes of the uncompressed tar stream. */
int ks_tarsplit_feed(struct ks_tarsplit *t, const void *buf, size_t len, struct ks_error **err);

/* Ends the index. *ret_unsafe is set when the tar changed a file it had written before (the
 * same path twice, a file under a path later replaced): the layer directory then does not hold
 * that file's bytes and the index cannot give the tar back. */
int ks_tarsplit_finish(struct ks_tarsplit *t, bool *ret_unsafe, struct ks_error **err);

/* A tar member's path cleaned as the layer apply step cleans it: leading "/", empty and "."
 * components dropped. NULL for a path with ".." (refused there) or when out of memory; else a
 * new string owned by the caller ("" for the root). */
char *ks_tarsplit_clean_path(const char *name);

/* Whether the blob open as fd (read from its start, position restored) is an index. */
bool ks_tarsplit_is_index(int fd);

/* Replays the index read from index_fd over the layer directory diff_dirfd, handing the tar's
 * bytes to out in order. A file whose size differs from the recorded one is EBADMSG. */
typedef int (*ks_tarsplit_out_fn)(void *userdata, const void *buf, size_t len,
                                  struct ks_error **err);
int ks_tarsplit_replay(int index_fd, int diff_dirfd, ks_tarsplit_out_fn out, void *userdata,
                       struct ks_error **err);
