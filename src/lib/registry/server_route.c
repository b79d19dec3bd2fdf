/* Request paths, names and byte ranges of the registry API: pure parsing of untrusted input,
 * with no I/O, so it can be fuzzed on its own. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../image/ref.h"
#include "server.h"

#define PATH_MAX_LOOK 4096

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One component of a name, [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*, of length n. */
static bool component_valid(const char *s, size_t n)
{
    size_t i = 0;
    if (n == 0 || !is_lower_alnum(s[0]))
        return false;
    while (i < n) {
        while (i < n && is_lower_alnum(s[i]))
            i++;
        if (i == n)
            return true;
        /* a separator, then at least one alphanumeric */
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i++;
            if (i < n && s[i] == '_')
                i++;
        } else if (s[i] == '-') {
            while (i < n && s[i] == '-')
                i++;
        } else {
            return false;
        }
        if (i == n || !is_lower_alnum(s[i]))
            return false;
    }
    return true;
}

static bool name_valid_n(const char *name, size_t len)
{
    if (len == 0 || len > KS_REGISTRY_NAME_MAX)
        return false;
    size_t depth = 0;
    for (size_t start = 0; start <= len;) {
        const char *slash = memchr(name + start, '/', len - start);
        size_t end = slash ? (size_t)(slash - name) : len;
        if (!component_valid(name + start, end - start) || ++depth > KS_REGISTRY_MAX_DEPTH)
            return false;
        start = end + 1;
    }
    return true;
}

bool ks_registry_name_valid(const char *name)
{
    return name && name_valid_n(name, strnlen(name, KS_REGISTRY_NAME_MAX + 1));
}

static bool tag_valid_n(const char *t, size_t n)
{
    if (n == 0 || n > KS_REGISTRY_TAG_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || (i > 0 && (c == '.' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}

bool ks_registry_tag_valid(const char *tag)
{
    return tag && tag_valid_n(tag, strnlen(tag, KS_REGISTRY_TAG_MAX + 1));
}

bool ks_registry_uuid_valid(const char *uuid)
{
    if (uuid == NULL || strnlen(uuid, KS_REGISTRY_UUID_LEN + 1) != KS_REGISTRY_UUID_LEN)
        return false;
    for (size_t i = 0; i < KS_REGISTRY_UUID_LEN; i++)
        if (!((uuid[i] >= '0' && uuid[i] <= '9') || (uuid[i] >= 'a' && uuid[i] <= 'f')))
            return false;
    return true;
}

/* Copies n bytes into a buffer of size cap; false when it does not fit. */
static bool copy_n(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        return false;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return true;
}

static void set_name(struct ks_registry_route *r, const char *name, size_t n)
{
    if (!name_valid_n(name, n) || !copy_n(r->name, sizeof(r->name), name, n))
        r->error = KS_ROUTE_ERR_NAME;
}

/* The reference of a manifest route: a digest or a tag. */
static void set_reference(struct ks_registry_route *r, const char *s, size_t n)
{
    if (!copy_n(r->ref, sizeof(r->ref), s, n)) {
        r->ref[0] = '\0';
        r->error = r->error ? r->error : KS_ROUTE_ERR_REFERENCE;
        return;
    }
    if (memchr(s, ':', n)) {
        r->ref_is_digest = true;
        if (!ks_is_digest(r->ref) && !r->error)
            r->error = KS_ROUTE_ERR_DIGEST;
    } else if (!tag_valid_n(s, n) && !r->error) {
        r->error = KS_ROUTE_ERR_REFERENCE;
    }
}

static void set_digest(struct ks_registry_route *r, const char *s, size_t n)
{
    r->ref_is_digest = true;
    if ((!copy_n(r->ref, sizeof(r->ref), s, n) || !ks_is_digest(r->ref)) && !r->error)
        r->error = KS_ROUTE_ERR_DIGEST;
}

/* Whether the path ends in "/<suffix>" after the name; *ret_name_len is the name's length. */
static bool ends_with(const char *rest, size_t len, const char *suffix, size_t *ret_name_len)
{
    size_t n = strlen(suffix);
    if (len <= n + 1 || memcmp(rest + len - n, suffix, n) != 0 || rest[len - n - 1] != '/')
        return false;
    *ret_name_len = len - n - 1;
    return true;
}

/* The last component of rest[0, len): its start, and its parent's length (without the '/'). */
static bool split_last(const char *rest, size_t len, size_t *ret_parent_len, const char **ret_last,
                       size_t *ret_last_len)
{
    const char *slash = NULL;
    for (size_t i = len; i > 0; i--)
        if (rest[i - 1] == '/') {
            slash = rest + i - 1;
            break;
        }
    if (slash == NULL)
        return false;
    *ret_parent_len = (size_t)(slash - rest);
    *ret_last = slash + 1;
    *ret_last_len = len - *ret_parent_len - 1;
    return true;
}

void ks_registry_route_parse(const char *path, struct ks_registry_route *ret)
{
    memset(ret, 0, sizeof(*ret));
    if (path == NULL)
        return;
    size_t len = strnlen(path, PATH_MAX_LOOK + 1);
    if (len > PATH_MAX_LOOK)
        return;
    if (strcmp(path, "/v2") == 0 || strcmp(path, "/v2/") == 0) {
        ret->kind = KS_ROUTE_BASE;
        return;
    }
    if (strcmp(path, "/v2/_catalog") == 0) {
        ret->kind = KS_ROUTE_CATALOG;
        return;
    }
    if (strcmp(path, "/v1/search") == 0) {
        ret->kind = KS_ROUTE_SEARCH;
        return;
    }
    if (strncmp(path, "/v2/", 4) != 0)
        return;
    const char *rest = path + 4;
    len -= 4;

    size_t name_len, parent_len, last_len;
    const char *last;
    if (ends_with(rest, len, "tags/list", &name_len)) {
        ret->kind = KS_ROUTE_TAGS;
        set_name(ret, rest, name_len);
        return;
    }
    if (ends_with(rest, len, "blobs/uploads/", &name_len) ||
        ends_with(rest, len, "blobs/uploads", &name_len)) {
        ret->kind = KS_ROUTE_UPLOADS;
        set_name(ret, rest, name_len);
        return;
    }
    if (!split_last(rest, len, &parent_len, &last, &last_len))
        return;
    if (ends_with(rest, parent_len, "blobs/uploads", &name_len)) {
        ret->kind = KS_ROUTE_UPLOAD;
        set_name(ret, rest, name_len);
        if ((!copy_n(ret->ref, sizeof(ret->ref), last, last_len) ||
             !ks_registry_uuid_valid(ret->ref)) &&
            !ret->error)
            ret->error = KS_ROUTE_ERR_UUID;
        return;
    }
    if (ends_with(rest, parent_len, "manifests", &name_len)) {
        ret->kind = KS_ROUTE_MANIFEST;
        set_name(ret, rest, name_len);
        set_reference(ret, last, last_len);
        return;
    }
    if (ends_with(rest, parent_len, "blobs", &name_len)) {
        ret->kind = KS_ROUTE_BLOB;
        set_name(ret, rest, name_len);
        set_digest(ret, last, last_len);
        return;
    }
    if (ends_with(rest, parent_len, "referrers", &name_len)) {
        ret->kind = KS_ROUTE_REFERRERS;
        set_name(ret, rest, name_len);
        set_digest(ret, last, last_len);
        return;
    }
}

/* A decimal number without sign or leading blanks, up to end (or the first non-digit when
 * end is NULL); *ret_next is where it stopped. */
static bool parse_u64(const char *s, uint64_t *ret, const char **ret_next)
{
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (p == s)
        return false;
    *ret = v;
    *ret_next = p;
    return true;
}

int ks_registry_content_range_parse(const char *s, uint64_t *ret_start, uint64_t *ret_end)
{
    if (s == NULL)
        return -EINVAL;
    if (strncmp(s, "bytes", 5) == 0 && (s[5] == ' ' || s[5] == '='))
        s += 6;
    uint64_t a, b;
    const char *p;
    if (!parse_u64(s, &a, &p) || *p != '-' || !parse_u64(p + 1, &b, &p))
        return -EINVAL;
    if (*p == '/') {
        uint64_t total;
        if (p[1] == '*' && p[2] == '\0')
            p += 2;
        else if (!parse_u64(p + 1, &total, &p) || total <= b)
            return -EINVAL;
    }
    if (*p != '\0' || b < a)
        return -EINVAL;
    *ret_start = a;
    *ret_end = b;
    return 0;
}

int ks_registry_range_parse(const char *s, uint64_t size, uint64_t *ret_start, uint64_t *ret_end)
{
    if (s == NULL || strncmp(s, "bytes=", 6) != 0 || strchr(s, ',') != NULL)
        return 0;
    s += 6;
    uint64_t a, b;
    const char *p;
    if (*s == '-') {
        /* the last n bytes */
        if (!parse_u64(s + 1, &b, &p) || *p != '\0')
            return 0;
        if (b == 0 || size == 0)
            return -ERANGE;
        *ret_start = b >= size ? 0 : size - b;
        *ret_end = size - 1;
        return 1;
    }
    if (!parse_u64(s, &a, &p) || *p != '-')
        return 0;
    if (p[1] == '\0') {
        b = UINT64_MAX;
    } else if (!parse_u64(p + 1, &b, &p) || *p != '\0' || b < a) {
        return 0;
    }
    if (a >= size)
        return -ERANGE;
    *ret_start = a;
    *ret_end = b >= size ? size - 1 : b;
    return 1;
}
