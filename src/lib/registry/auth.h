/* Registry authentication: the WWW-Authenticate challenge of a 401 answer and the token
 * service's reply (Docker's token authentication: a GET on the realm with service and scope,
 * answered by {"token" or "access_token", "expires_in"}). Both come from the network, so both
 * are parsed with bounds and every value is checked. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "../base/error.h"

/* Longest header and token reply the parser takes. */
#define KS_AUTH_HEADER_MAX      8192
#define KS_AUTH_TOKEN_REPLY_MAX ((size_t)1 << 20)
/* The lifetime assumed when a token reply names none (Docker's minimum). */
#define KS_AUTH_TOKEN_DEFAULT_EXPIRY 60

enum ks_auth_scheme {
    KS_AUTH_NONE = 0,
    KS_AUTH_BASIC,
    KS_AUTH_BEARER,
};

struct ks_auth_challenge {
    enum ks_auth_scheme scheme;
    char *realm; /* NULL when absent (a bearer challenge then cannot be answered) */
    char *service;
    char *scope;
    char *error; /* e.g. "insufficient_scope" */
};
void ks_auth_challenge_release(struct ks_auth_challenge *c);

/* Parses a WWW-Authenticate value: one or more challenges ("Bearer realm=\"…\",service=…",
 * "Basic realm=…"), parameters as tokens or quoted strings with backslash escapes. A Bearer
 * challenge is preferred to Basic; unknown schemes are skipped. EINVAL for a value that is
 * malformed, over KS_AUTH_HEADER_MAX or names no scheme this client speaks. ret is filled in
 * (strings owned by it; ks_auth_challenge_release). */
int ks_auth_challenge_parse(const char *value, struct ks_auth_challenge *ret,
                            struct ks_error **err);

/* Parses a token service's reply: "token" or else "access_token" (printable ASCII, at most
 * 64 KiB), "expires_in" in seconds (missing or below 60: 60). *ret_token is owned by the
 * caller. */
int ks_auth_token_reply_parse(const char *buf, size_t len, char **ret_token,
                              int64_t *ret_expires_in, struct ks_error **err);
