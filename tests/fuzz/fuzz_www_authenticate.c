/* libFuzzer target: WWW-Authenticate values and token service replies come from registries and
 * token services, which are untrusted. The first byte picks the parser; parsing must survive
 * any input, fail with a message, and what parses must hold the promised invariants. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    bool token = data[0] & 1;
    _cleanup_free_ char *s = strndup((const char *)data + 1, size - 1);
    if (s == NULL)
        return 0;
    struct ks_error *err = NULL;
    if (token) {
        char *tok = NULL;
        int64_t exp = 0;
        if (ks_auth_token_reply_parse(s, strlen(s), &tok, &exp, &err) < 0) {
            if (err == NULL || err->msg == NULL)
                abort();
            ks_error_free(err);
            return 0;
        }
        if (tok == NULL || *tok == '\0' || exp < KS_AUTH_TOKEN_DEFAULT_EXPIRY)
            abort();
        for (const char *p = tok; *p; p++)
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
                abort();
        free(tok);
        return 0;
    }
    struct ks_auth_challenge c;
    if (ks_auth_challenge_parse(s, &c, &err) < 0) {
        if (err == NULL || err->msg == NULL)
            abort();
        ks_error_free(err);
        return 0;
    }
    if (c.scheme != KS_AUTH_BASIC && c.scheme != KS_AUTH_BEARER)
        abort();
    /* Every value came out of the input. */
    const char *vals[] = {c.realm, c.service, c.scope, c.error};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        if (vals[i] && strlen(vals[i]) > strlen(s))
            abort();
    ks_auth_challenge_release(&c);
    return 0;
}
