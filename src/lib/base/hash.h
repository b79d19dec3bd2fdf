/* SHA-256 digests in the "sha256:<hex>" form of OCI descriptors. Compiled into the engine's
 * archive (it needs libcrypto), not the runtime's. */
#pragma once

#include <stddef.h>

#include <openssl/evp.h>

/* "sha256:" + 64 hex digits + NUL */
#define KS_SHA256_DIGEST_LEN 72

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void ks_hex(const unsigned char *md, size_t n, char *out);

/* The digest of buf in out. 0, or -ENOMEM when libcrypto fails. */
int ks_sha256_hex(const void *buf, size_t len, char out[static KS_SHA256_DIGEST_LEN]);

/* Finishes a SHA-256 context into out. 0, or -ENOMEM when libcrypto fails. */
int ks_sha256_final(EVP_MD_CTX *md, char out[static KS_SHA256_DIGEST_LEN]);
