/* WWW-Authenticate challenges and token replies (RFC 7235 syntax, Docker's token protocol). */
#include "auth.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../base/json.h"

#define TOKEN_MAX (64 * 1024)

void ks_auth_challenge_release(struct ks_auth_challenge *c)
{
    free(c->realm);
    free(c->service);
    free(c->scope);
    free(c->error);
    *c = (struct ks_auth_challenge){0};
}

/* RFC 7230 tchar */
static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A token or quoted-string value at p into a new string; *end after it. NULL on a syntax
 * error (an unterminated quote) or out of memory. */
static char *parse_value(const char *p, const char **end)
{
    if (*p != '"') {
        /* token68 and token values: up to the next comma or blank */
        size_t n = strcspn(p, ", \t");
        *end = p + n;
        return strndup(p, n);
    }
    p++;
    size_t cap = strlen(p) + 1, n = 0;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    for (; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1])
            p++;
        out[n++] = *p;
    }
    if (*p != '"') {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    *end = p + 1;
    return out;
}

struct parsed {
    struct ks_auth_challenge basic, bearer;
    bool have_basic, have_bearer;
};

static char **param_slot(struct ks_auth_challenge *c, const char *name, size_t n)
{
    static const struct {
        const char *name;
        size_t off;
    } slots[] = {
        {"realm", offsetof(struct ks_auth_challenge, realm)},
        {"service", offsetof(struct ks_auth_challenge, service)},
        {"scope", offsetof(struct ks_auth_challenge, scope)},
        {"error", offsetof(struct ks_auth_challenge, error)},
    };
    for (size_t i = 0; c && i < KS_ELEMENTSOF(slots); i++)
        if (strlen(slots[i].name) == n && strncasecmp(name, slots[i].name, n) == 0)
            return (char **)((char *)c + slots[i].off);
    return NULL;
}

/* Reads the parameters of one challenge into c (NULL: an unknown scheme, skipped); stops
 * before the next scheme. */
static int parse_params(const char **pp, struct ks_auth_challenge *c)
{
    const char *p = *pp;
    for (;;) {
        p = skip_ws(p);
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        const char *name = p;
        while (is_tchar(*p))
            p++;
        size_t n = (size_t)(p - name);
        const char *q = skip_ws(p);
        if (n == 0)
            return -EINVAL;
        if (*q != '=') {
            /* the next challenge's scheme */
            p = name;
            break;
        }
        q = skip_ws(q + 1);
        const char *end;
        char *v = parse_value(q, &end);
        if (v == NULL)
            return -EINVAL;
        char **slot = param_slot(c, name, n);
        if (slot && *slot == NULL)
            *slot = v;
        else
            free(v);
        p = end;
    }
    *pp = p;
    return 0;
}

int ks_auth_challenge_parse(const char *value, struct ks_auth_challenge *ret, struct ks_error **err)
{
    *ret = (struct ks_auth_challenge){0};
    if (value == NULL || strnlen(value, KS_AUTH_HEADER_MAX + 1) > KS_AUTH_HEADER_MAX)
        return ks_error_msg(err, "WWW-Authenticate: missing or too long");
    struct parsed ps = {0};
    const char *p = value;
    int r = 0;
    for (int guard = 0; r >= 0 && guard < 64; guard++) {
        p = skip_ws(p);
        while (*p == ',' || *p == ' ')
            p++;
        if (*p == '\0')
            break;
        const char *scheme = p;
        while (is_tchar(*p))
            p++;
        size_t n = (size_t)(p - scheme);
        if (n == 0 || (*p != ' ' && *p != '\t' && *p != '\0' && *p != ',')) {
            r = -EINVAL;
            break;
        }
        struct ks_auth_challenge *c = NULL;
        if (n == 6 && strncasecmp(scheme, "bearer", 6) == 0 && !ps.have_bearer)
            c = &ps.bearer, ps.have_bearer = true, c->scheme = KS_AUTH_BEARER;
        else if (n == 5 && strncasecmp(scheme, "basic", 5) == 0 && !ps.have_basic)
            c = &ps.basic, ps.have_basic = true, c->scheme = KS_AUTH_BASIC;
        r = parse_params(&p, c);
    }
    if (r >= 0 && (ps.have_bearer || ps.have_basic)) {
        *ret = ps.have_bearer ? ps.bearer : ps.basic;
        ks_auth_challenge_release(ps.have_bearer ? &ps.basic : &ps.bearer);
        return 0;
    }
    ks_auth_challenge_release(&ps.basic);
    ks_auth_challenge_release(&ps.bearer);
    if (r < 0)
        return ks_error_msg(err, "malformed WWW-Authenticate header");
    return ks_error_msg(err, "WWW-Authenticate names no supported scheme (Basic or Bearer)");
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

int ks_auth_token_reply_parse(const char *buf, size_t len, char **ret_token,
                              int64_t *ret_expires_in, struct ks_error **err)
{
    if (len > KS_AUTH_TOKEN_REPLY_MAX)
        return ks_error_msg(err, "token reply: too large");
    _cleanup_json_ json_object *o = NULL;
    int r = ks_json_parse(buf, len, &o, err);
    if (r < 0)
        return ks_error_wrap(err, "token reply");
    if (!json_object_is_type(o, json_type_object))
        return ks_error_msg(err, "token reply: not a JSON object");
    const char *t = ks_json_str(o, "token");
    if (t == NULL || *t == '\0')
        t = ks_json_str(o, "access_token");
    if (t == NULL || *t == '\0')
        return ks_error_msg(err, "token reply: no token");
    if (strlen(t) > TOKEN_MAX || !printable(t))
        return ks_error_msg(err, "token reply: the token is not a printable string");
    int64_t exp = ks_json_int(o, "expires_in", 0);
    if (exp < KS_AUTH_TOKEN_DEFAULT_EXPIRY)
        exp = KS_AUTH_TOKEN_DEFAULT_EXPIRY;
    if (exp > INT32_MAX)
        exp = INT32_MAX;
    char *tok = strdup(t);
    if (tok == NULL)
        return ks_error_set(err, ENOMEM, "token reply");
    *ret_token = tok;
    *ret_expires_in = exp;
    return 0;
}
