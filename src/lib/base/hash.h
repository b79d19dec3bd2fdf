/* SHA-256 digests in the "sha256:<hex>" form of OCI descriptors. Compiled into the engine's
 * archive (it needs libcrypto), not the runtime's. */
#pragma once

#include <stddef.h>

#include <openssl/evp.h>

#include "cleanup.h"

/* "sha256:" + 64 hex digits + NUL */
#define KS_SHA256_DIGEST_LEN 72

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void ks_hex(const unsigned char *md, size_t n, char *out);

/* The digest of buf in out. 0, or -ENOMEM when libcrypto fails. */
int ks_sha256_hex(const void *buf, size_t len, char out[static KS_SHA256_DIGEST_LEN]);

/* Finishes a SHA-256 context into out. 0, or -ENOMEM when libcrypto fails. */
int ks_sha256_final(EVP_MD_CTX *md, char out[static KS_SHA256_DIGEST_LEN]);

/* The image spec's chain ID of a layer on parent (a chain ID; NULL for a base layer, whose
 * chain ID is its diff_id): sha256(parent + " " + diff_id), into out. 0, or -ENOMEM. */
int ks_chain_id(const char *parent, const char *diff_id, char out[static KS_SHA256_DIGEST_LEN]);

KS_DEFINE_CLEANUP(EVP_MD_CTX *, EVP_MD_CTX_free)
#define _cleanup_md_ _cleanup_(EVP_MD_CTX_free_p)
