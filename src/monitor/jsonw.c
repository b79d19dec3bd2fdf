/* JSON written by hand: the monitor stays a small static binary without json-c (see the memory
 * budget in the containers contract), and the only JSON it reads is one array of strings. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

static bool buf_reserve(struct mon_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void mon_buf_putn(struct mon_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mon_buf_puts(struct mon_buf *b, const char *s)
{
    mon_buf_putn(b, s, strlen(s));
}

void mon_buf_printf(struct mon_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        mon_buf_putn(b, tmp, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void mon_buf_json_str(struct mon_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, MON_JSON_ESCAPE_MAX(n) + 2))
        return;
    b->data[b->len++] = '"';
    b->len += mon_json_escape(b->data + b->len, s, n);
    b->data[b->len++] = '"';
    b->data[b->len] = '\0';
}

void mon_buf_free(struct mon_buf *b)
{
    free(b->data);
    *b = (struct mon_buf){0};
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), 0 when it is not valid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f; /* no UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

size_t mon_json_escape(char *out, const char *in, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)in;
    char *o = out;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t l = utf8_len(s + i, n - i);
            if (l == 0) {
                memcpy(o, "\\ufffd", 6);
                o += 6;
                i++;
            } else if (l == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] & 0xfe) == 0xa8) {
                /* U+2028 and U+2029 end lines in JavaScript. */
                memcpy(o, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
                o += 6;
                i += 3;
            } else {
                memcpy(o, s + i, l);
                o += l;
                i += l;
            }
            continue;
        }
        i++;
        switch (c) {
        case '"':
        case '\\':
            *o++ = '\\';
            *o++ = (char)c;
            continue;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            continue;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            continue;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            continue;
        case '<':
        case '>':
        case '&':
            break;
        default:
            if (c >= 0x20) {
                *o++ = (char)c;
                continue;
            }
        }
        memcpy(o, "\\u00", 4);
        o[4] = hex[c >> 4];
        o[5] = hex[c & 0xf];
        o += 6;
    }
    return (size_t)(o - out);
}

/* --- the one JSON input: an array of strings --- */

#define STRV_MAX_TEXT    (64 * 1024)
#define STRV_MAX_MEMBERS 4096

struct parser {
    const char *p, *end;
};

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hex4(const char *p, unsigned *ret)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *ret = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A \uXXXX escape (with its surrogate pair) at ps->p, just after the 'u'. */
static int parse_unicode(struct parser *ps, unsigned *ret)
{
    unsigned cp, lo;
    if (ps->end - ps->p < 4 || hex4(ps->p, &cp) < 0)
        return -1;
    ps->p += 4;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return -1;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' ||
            hex4(ps->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
            return -1;
        ps->p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    *ret = cp;
    return 0;
}

/* A string at ps->p (after its opening quote) into a new NUL-terminated copy. The decoded
 * string is never longer than its JSON form. */
static char *parse_string(struct parser *ps)
{
    _cleanup_free_ char *out = malloc((size_t)(ps->end - ps->p) + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p++;
        if (c == '"') {
            *o = '\0';
            return TAKE_PTR(out);
        }
        if (c < 0x20)
            return NULL;
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        if (ps->p >= ps->end)
            return NULL;
        char e = *ps->p++;
        unsigned cp;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            *o++ = e;
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u':
            /* \u0000 would cut the argument short: refused. */
            if (parse_unicode(ps, &cp) < 0 || cp == 0)
                return NULL;
            o += put_utf8(o, cp);
            break;
        default:
            return NULL;
        }
    }
    return NULL;
}

int mon_json_parse_strv(const char *text, char ***ret, struct ks_error **err)
{
    size_t len = strlen(text);
    if (len > STRV_MAX_TEXT)
        return ks_error_msg(err, "JSON array: longer than %d bytes", STRV_MAX_TEXT);
    struct parser ps = {.p = text, .end = text + len};
    _cleanup_strv_ char **v = calloc(1, sizeof(char *));
    size_t n = 0;
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "JSON array");
    skip_ws(&ps);
    if (ps.p >= ps.end || *ps.p++ != '[')
        return ks_error_msg(err, "JSON array: expected '['");
    skip_ws(&ps);
    if (ps.p < ps.end && *ps.p == ']') {
        ps.p++;
        goto done;
    }
    for (;;) {
        skip_ws(&ps);
        if (ps.p >= ps.end || *ps.p++ != '"')
            return ks_error_msg(err, "JSON array: member %zu: expected a string", n);
        if (n >= STRV_MAX_MEMBERS)
            return ks_error_msg(err, "JSON array: more than %d members", STRV_MAX_MEMBERS);
        char *s = parse_string(&ps);
        if (s == NULL)
            return ks_error_msg(err, "JSON array: member %zu: invalid string", n);
        char **nv = realloc(v, (n + 2) * sizeof(char *));
        if (nv == NULL) {
            free(s);
            return ks_error_set(err, ENOMEM, "JSON array");
        }
        v = nv;
        v[n++] = s;
        v[n] = NULL;
        skip_ws(&ps);
        if (ps.p < ps.end && *ps.p == ',') {
            ps.p++;
            continue;
        }
        if (ps.p < ps.end && *ps.p == ']') {
            ps.p++;
            break;
        }
        return ks_error_msg(err, "JSON array: expected ',' or ']' after member %zu", n - 1);
    }
done:
    skip_ws(&ps);
    if (ps.p != ps.end)
        return ks_error_msg(err, "JSON array: trailing characters");
    *ret = TAKE_PTR(v);
    return 0;
}
