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

/* For a reader that can seek: how many of the next bytes the index has no use for (the data
 * of a regular file, which the layer directory holds), to pass over with ks_tarsplit_skip
 * rather than read and feed; 0 when the next bytes are needed. */
uint64_t ks_tarsplit_skippable(const struct ks_tarsplit *t);
/* Passes over n bytes, n no more than ks_tarsplit_skippable() said. */
int ks_tarsplit_skip(struct ks_tarsplit *t, uint64_t n, struct ks_error **err);
/* About how many bytes to read next when skipping: small while headers come (the file data
 * after them is skipped), large once the index keeps everything as it is. */
size_t ks_tarsplit_read_size(const struct ks_tarsplit *t, size_t max);

/* Ends the index. *ret_unsafe is set when the tar changed a file it had written before (the
 * same path twice, a file under a path later replaced): the layer directory then does not hold
 * that file's bytes and the index cannot give the tar back. */
int ks_tarsplit_finish(struct ks_tarsplit *t, bool *ret_unsafe, struct ks_error **err);

/* Whether the blob open as fd (read from its start, position restored) is an index. */
bool ks_tarsplit_is_index(int fd);

/* Replays the index read from index_fd over the layer directory diff_dirfd, handing the tar's
 * bytes to out in order. A file whose size differs from the recorded one is EBADMSG. */
typedef int (*ks_tarsplit_out_fn)(void *userdata, const void *buf, size_t len,
                                  struct ks_error **err);
int ks_tarsplit_replay(int index_fd, int diff_dirfd, ks_tarsplit_out_fn out, void *userdata,
                       struct ks_error **err);
