/* SHA-256 on a thread of its own: the caller reads into one buffer of a small ring while the
 * thread hashes the ones filled before, so hashing a layer costs the reading thread nothing.
 * Internal to src/lib/image. */
#pragma once

#include <stddef.h>

#include "../base/hash.h"

struct ks_bg_hash;

/* Starts the thread with a ring of buffers of buf_size bytes each. 0, or a negative errno.
 * *ret is owned by the caller (ks_bg_hash_free). */
int ks_bg_hash_new(size_t buf_size, struct ks_bg_hash **ret);

/* The next buffer to fill (buf_size bytes), once the thread is done with it. It stays the
 * caller's to read until ks_bg_hash_next is called twice more. */
void *ks_bg_hash_next(struct ks_bg_hash *h);

/* Hands the first len bytes of the buffer that ks_bg_hash_next gave last to the thread. */
void ks_bg_hash_submit(struct ks_bg_hash *h, size_t len);

/* Waits until everything submitted is hashed and writes the digest; the thread ends. 0, or
 * -ENOMEM when libcrypto fails. Nothing may be submitted afterwards. */
int ks_bg_hash_final(struct ks_bg_hash *h, char out[static KS_SHA256_DIGEST_LEN]);

/* Stops the thread (whatever is left unhashed) and frees everything. NULL is fine. */
void ks_bg_hash_free(struct ks_bg_hash *h);
