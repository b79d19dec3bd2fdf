#include "ref.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/cleanup.h"

/* The grammar, after distribution/reference:
 *   reference := name [":" tag] ["@" digest]
 *   name      := [domain "/"] path
 *   domain    := host [":" port], host := domain-name | "[" ipv6 "]"
 *   path      := component ("/" component)*
 *   component := [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
 *   tag       := [\w][\w.-]{0,127}
 * Hand-written matchers rather than regex(3): the input is untrusted and the grammar small. */

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_word(char c)
{
    return is_alnum(c) || c == '_';
}

static bool is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool is_hex(char c)
{
    return is_lower_hex(c) || (c >= 'A' && c <= 'F');
}

static size_t span_lower_hex(const char *s)
{
    size_t n = 0;
    while (is_lower_hex(s[n]))
        n++;
    return n;
}

bool ks_is_digest(const char *s)
{
    static const struct {
        const char *prefix;
        size_t hex_len;
    } algs[] = {
        {"sha256:", 64},
        {"sha512:", 128},
    };
    if (s == NULL)
        return false;
    for (size_t i = 0; i < KS_ELEMENTSOF(algs); i++) {
        size_t n = strlen(algs[i].prefix);
        if (strncmp(s, algs[i].prefix, n) == 0)
            return span_lower_hex(s + n) == algs[i].hex_len && s[n + algs[i].hex_len] == '\0';
    }
    return false;
}

bool ks_is_hex_prefix(const char *s)
{
    if (s == NULL)
        return false;
    if (strncmp(s, "sha256:", 7) == 0)
        s += 7;
    size_t n = span_lower_hex(s);
    return n >= 1 && n <= 64 && s[n] == '\0';
}

/* One path component of len bytes at s. */
static bool valid_component(const char *s, size_t len)
{
    size_t i = 0;
    for (;;) {
        if (i >= len || !is_lower_alnum(s[i]))
            return false;
        while (i < len && is_lower_alnum(s[i]))
            i++;
        if (i == len)
            return true;
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i++;
            if (i < len && s[i] == '_')
                i++;
        } else if (s[i] == '-') {
            while (i < len && s[i] == '-')
                i++;
        } else {
            return false;
        }
    }
}

/* The first invalid component of path, for the message; path itself when it is empty. */
static const char *check_path(const char *path, size_t *ret_bad_len)
{
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (!valid_component(p, len)) {
            *ret_bad_len = len;
            return p;
        }
        if (slash == NULL)
            return NULL;
        p = slash + 1;
    }
}

/* host [":" port] where host is a dot-separated domain name or a bracketed IPv6 address. */
static bool valid_domain(const char *s)
{
    const char *p = s;
    if (*p == '[') {
        p++;
        const char *start = p;
        while (is_hex(*p) || *p == ':')
            p++;
        if (p == start || *p != ']')
            return false;
        p++;
    } else {
        for (;;) {
            /* [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9] */
            if (!is_alnum(*p))
                return false;
            while (is_alnum(*p) || *p == '-')
                p++;
            if (p[-1] == '-')
                return false;
            if (*p != '.')
                break;
            p++;
        }
    }
    if (*p == ':') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

static bool valid_tag(const char *s)
{
    if (!is_word(s[0]))
        return false;
    size_t n = 1;
    while (is_word(s[n]) || s[n] == '.' || s[n] == '-')
        n++;
    return s[n] == '\0' && n <= KS_REF_TAG_MAX;
}

static bool has_upper(const char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            return true;
    return false;
}

/* Docker's splitDockerDomain: the first component is a domain only when it looks like one,
 * so "user/repo" stays on Docker Hub while "localhost/repo" and "Registry/repo" do not. */
static bool first_is_domain(const char *name, size_t len)
{
    if (memchr(name, '.', len) || memchr(name, ':', len))
        return true;
    if (len == strlen("localhost") && strncmp(name, "localhost", len) == 0)
        return true;
    for (size_t i = 0; i < len; i++)
        if (name[i] >= 'A' && name[i] <= 'Z')
            return true;
    return false;
}

void ks_ref_free(struct ks_ref *r)
{
    if (r == NULL)
        return;
    free(r->domain);
    free(r->path);
    free(r->tag);
    free(r->digest);
    free(r);
}

int ks_ref_parse(const char *s, struct ks_ref **ret, struct ks_error **err)
{
    if (s == NULL || *s == '\0')
        return ks_error_msg(err, "invalid reference ``: empty reference");
    /* No valid reference is this long; bounding it keeps the messages readable too. */
    if (strlen(s) > 4096)
        return ks_error_msg(err, "invalid reference: longer than 4096 bytes");
    /* A bare image id would otherwise read as docker.io/library/<id>:latest. */
    if (strlen(s) == 64 && span_lower_hex(s) == 64)
        return ks_error_msg(err,
                            "invalid reference `%s`: cannot specify 64-byte hexadecimal strings "
                            "as a repository name",
                            s);

    _cleanup_ref_ struct ks_ref *r = calloc(1, sizeof(*r));
    _cleanup_free_ char *name = strdup(s);
    if (r == NULL || name == NULL)
        return ks_error_set(err, ENOMEM, "parse reference");

    char *at = strchr(name, '@');
    if (at) {
        *at = '\0';
        if (!ks_is_digest(at + 1))
            return ks_error_msg(err,
                                "invalid reference `%s`: invalid digest `%s` (sha256: with 64 or "
                                "sha512: with 128 lower-case hex digits expected)",
                                s, at + 1);
        r->digest = strdup(at + 1);
        if (r->digest == NULL)
            return ks_error_set(err, ENOMEM, "parse reference");
    }

    const char *remainder = name;
    char *slash = strchr(name, '/');
    if (slash && first_is_domain(name, (size_t)(slash - name))) {
        *slash = '\0';
        if (!valid_domain(name))
            return ks_error_msg(err, "invalid reference `%s`: invalid registry domain `%s`", s,
                                name);
        r->domain = strdup(strcmp(name, "index.docker.io") == 0 ? KS_REF_DEFAULT_DOMAIN : name);
        remainder = slash + 1;
    } else {
        r->domain = strdup(KS_REF_DEFAULT_DOMAIN);
    }
    if (r->domain == NULL)
        return ks_error_set(err, ENOMEM, "parse reference");

    /* The domain is gone, so a colon left can only start the tag. */
    char *colon = strchr(remainder, ':');
    if (colon) {
        *colon = '\0';
        if (!valid_tag(colon + 1))
            return ks_error_msg(err,
                                "invalid reference `%s`: invalid tag `%s` (at most %d letters, "
                                "digits, '_', '.' and '-', not starting with '.' or '-')",
                                s, colon + 1, KS_REF_TAG_MAX);
        r->tag = strdup(colon + 1);
        if (r->tag == NULL)
            return ks_error_set(err, ENOMEM, "parse reference");
    }

    if (has_upper(remainder))
        return ks_error_msg(err, "invalid reference `%s`: repository name must be lowercase", s);
    size_t bad_len = 0;
    const char *bad = check_path(remainder, &bad_len);
    if (bad) {
        if (*remainder == '\0')
            return ks_error_msg(err, "invalid reference `%s`: empty repository name", s);
        return ks_error_msg(err, "invalid reference `%s`: invalid repository name component `%.*s`",
                            s, (int)bad_len, bad);
    }

    bool library = strcmp(r->domain, KS_REF_DEFAULT_DOMAIN) == 0 && !strchr(remainder, '/');
    if (asprintf(&r->path, "%s%s", library ? "library/" : "", remainder) < 0) {
        r->path = NULL;
        return ks_error_set(err, ENOMEM, "parse reference");
    }
    if (strlen(r->domain) + 1 + strlen(r->path) > KS_REF_NAME_MAX)
        return ks_error_msg(err,
                            "invalid reference `%s`: repository name must not be more than %d "
                            "characters",
                            s, KS_REF_NAME_MAX);

    if (r->tag == NULL && r->digest == NULL) {
        r->tag = strdup(KS_REF_DEFAULT_TAG);
        if (r->tag == NULL)
            return ks_error_set(err, ENOMEM, "parse reference");
    }
    *ret = TAKE_PTR(r);
    return 0;
}

static char *format_ref(const char *domain, const char *path, const struct ks_ref *r)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s%s%s%s%s%s", domain ? domain : "", domain ? "/" : "", path,
                 r->tag ? ":" : "", r->tag ? r->tag : "", r->digest ? "@" : "",
                 r->digest ? r->digest : "") < 0)
        return NULL;
    return s;
}

char *ks_ref_string(const struct ks_ref *r)
{
    return format_ref(r->domain, r->path, r);
}

char *ks_ref_familiar(const struct ks_ref *r)
{
    if (strcmp(r->domain, KS_REF_DEFAULT_DOMAIN) != 0)
        return format_ref(r->domain, r->path, r);
    const char *path = r->path;
    /* "docker.io/lib.x/y" keeps its domain: without it, "lib.x" would read as a registry. */
    const char *slash = strchr(path, '/');
    if (slash && first_is_domain(path, (size_t)(slash - path)))
        return format_ref(r->domain, path, r);
    /* "library/a/b" keeps its prefix: without it, it would name the user "a". */
    if (strncmp(path, "library/", 8) == 0 && !strchr(path + 8, '/'))
        path += 8;
    return format_ref(NULL, path, r);
}

char *ks_ref_repository(const struct ks_ref *r)
{
    char *s = NULL;
    if (asprintf(&s, "%s/%s", r->domain, r->path) < 0)
        return NULL;
    return s;
}

struct ks_ref *ks_ref_dup(const struct ks_ref *r)
{
    _cleanup_ref_ struct ks_ref *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->domain = strdup(r->domain);
    d->path = strdup(r->path);
    if (d->domain == NULL || d->path == NULL)
        return NULL;
    if (r->tag && (d->tag = strdup(r->tag)) == NULL)
        return NULL;
    if (r->digest && (d->digest = strdup(r->digest)) == NULL)
        return NULL;
    return TAKE_PTR(d);
}
