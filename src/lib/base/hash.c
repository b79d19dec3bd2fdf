#include "hash.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void ks_hex(const unsigned char *md, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static void format(const unsigned char *md, unsigned int n, char *out)
{
    memcpy(out, "sha256:", 7);
    ks_hex(md, n > 32 ? 32 : n, out + 7);
}

int ks_sha256_hex(const void *buf, size_t len, char out[static KS_SHA256_DIGEST_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL))
        return -ENOMEM;
    format(md, n, out);
    return 0;
}

int ks_sha256_final(EVP_MD_CTX *ctx, char out[static KS_SHA256_DIGEST_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_DigestFinal_ex(ctx, md, &n) != 1)
        return -ENOMEM;
    format(md, n, out);
    return 0;
}

int ks_chain_id(const char *parent, const char *diff_id, char out[static KS_SHA256_DIGEST_LEN])
{
    if (parent == NULL) {
        snprintf(out, KS_SHA256_DIGEST_LEN, "%s", diff_id);
        return 0;
    }
    char in[2 * KS_SHA256_DIGEST_LEN + 1];
    int len = snprintf(in, sizeof(in), "%s %s", parent, diff_id);
    if (len < 0 || (size_t)len >= sizeof(in))
        return -EINVAL;
    return ks_sha256_hex(in, (size_t)len, out);
}
