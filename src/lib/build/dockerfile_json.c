/* The JSON form of a Dockerfile instruction: a JSON array of strings, read as Go's
 * encoding/json reads it into []interface{} (BuildKit's parseJSON), so that exactly the same
 * inputs count as JSON. Validation is iterative: nesting is tracked in a bit stack. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "dockerfile_internal.h"

/* encoding/json's limit; deeper input is a syntax error (and so the shell form). */
#define JSON_MAX_DEPTH 10000

struct jp {
    const char *s;
    size_t n, pos;
};

static void ws(struct jp *p)
{
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
                             p->s[p->pos] == '\r'))
        p->pos++;
}

static int hex4(const char *s, size_t avail)
{
    if (avail < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A string at p->pos ('"'); decoded into out when out is not NULL. false: invalid. */
static bool string(struct jp *p, struct ks_tbuf *out)
{
    p->pos++;
    while (p->pos < p->n) {
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (p->pos + 1 >= p->n)
                return false;
            char e = p->s[p->pos + 1];
            static const char simple[][2] = {{'"', '"'},  {'\\', '\\'}, {'/', '/'},  {'b', '\b'},
                                             {'f', '\f'}, {'n', '\n'},  {'r', '\r'}, {'t', '\t'}};
            bool done = false;
            for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]) && !done; i++)
                if (e == simple[i][0]) {
                    if (out)
                        ks_tbuf_addc(out, simple[i][1]);
                    p->pos += 2;
                    done = true;
                }
            if (done)
                continue;
            if (e != 'u')
                return false;
            int r = hex4(p->s + p->pos + 2, p->n - p->pos - 2);
            if (r < 0)
                return false;
            p->pos += 6;
            uint32_t cp = (uint32_t)r;
            if (cp >= 0xD800 && cp < 0xE000) {
                int r2 = -1;
                if (p->pos + 1 < p->n && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u')
                    r2 = hex4(p->s + p->pos + 2, p->n - p->pos - 2);
                if (cp < 0xDC00 && r2 >= 0xDC00 && r2 < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)r2 - 0xDC00);
                    p->pos += 6;
                } else {
                    cp = KS_RUNE_ERROR;
                }
            }
            if (out)
                ks_tbuf_addcp(out, cp);
            continue;
        }
        uint32_t cp;
        size_t w = ks_utf8_decode(p->s + p->pos, p->n - p->pos, &cp);
        if (out) {
            if (w == 1 && cp == KS_RUNE_ERROR)
                ks_tbuf_addcp(out, KS_RUNE_ERROR);
            else
                ks_tbuf_add(out, p->s + p->pos, w);
        }
        p->pos += w;
    }
    return false;
}

static bool digits(struct jp *p)
{
    size_t start = p->pos;
    while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++;
    return p->pos > start;
}

static bool number(struct jp *p)
{
    if (p->s[p->pos] == '-')
        p->pos++;
    if (p->pos >= p->n)
        return false;
    if (p->s[p->pos] == '0')
        p->pos++;
    else if (!digits(p))
        return false;
    if (p->pos < p->n && p->s[p->pos] == '.') {
        p->pos++;
        if (!digits(p))
            return false;
    }
    if (p->pos < p->n && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        if (p->pos < p->n && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (!digits(p))
            return false;
    }
    return true;
}

static bool literal(struct jp *p)
{
    static const char *const lits[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t l = strlen(lits[i]);
        if (p->n - p->pos >= l && memcmp(p->s + p->pos, lits[i], l) == 0) {
            p->pos += l;
            return true;
        }
    }
    return false;
}

/* An object key and its ':' at p->pos (after white space). */
static bool key(struct jp *p)
{
    ws(p);
    if (p->pos >= p->n || p->s[p->pos] != '"' || !string(p, NULL))
        return false;
    ws(p);
    if (p->pos >= p->n || p->s[p->pos] != ':')
        return false;
    p->pos++;
    return true;
}

/* The validator's state: the nesting (a bit per level: object or array) and whether an
 * element of the top-level array was something else than a string. */
struct jstate {
    uint8_t stack[JSON_MAX_DEPTH / 8 + 1];
    size_t depth;
    bool non_string;
};

enum { V_INVALID = 0, V_DONE = 1, V_OPENED = 2 };

/* Opens the array or object at p->pos: V_OPENED when a value follows, V_DONE when it was
 * empty and closed at once. */
static int open_container(struct jp *p, struct jstate *st)
{
    char c = p->s[p->pos];
    if (st->depth == 1)
        st->non_string = true;
    if (st->depth >= JSON_MAX_DEPTH)
        return V_INVALID;
    if (c == '{')
        st->stack[st->depth / 8] |= (uint8_t)(1u << (st->depth % 8));
    else
        st->stack[st->depth / 8] &= (uint8_t) ~(1u << (st->depth % 8));
    st->depth++;
    p->pos++;
    ws(p);
    if (p->pos < p->n && p->s[p->pos] == (c == '[' ? ']' : '}')) {
        p->pos++;
        st->depth--;
        return V_DONE;
    }
    if (c == '{' && !key(p))
        return V_INVALID;
    return V_OPENED;
}

/* One value at p->pos; the top-level array's strings go to l. */
static int value(struct jp *p, struct jstate *st, struct df_list *l)
{
    ws(p);
    if (p->pos >= p->n)
        return V_INVALID;
    char c = p->s[p->pos];
    if (c == '[' || c == '{')
        return open_container(p, st);
    if (c == '"') {
        struct ks_tbuf b = {0};
        bool ok = string(p, st->depth == 1 ? &b : NULL);
        if (ok && st->depth == 1)
            df_list_add(l, b.s ? b.s : "", b.len);
        bool oom = b.oom;
        ks_tbuf_free(&b);
        if (oom)
            return -ENOMEM;
        return ok ? V_DONE : V_INVALID;
    }
    if (c == '-' || (c >= '0' && c <= '9') ? !number(p) : !literal(p))
        return V_INVALID;
    st->non_string |= st->depth == 1;
    return V_DONE;
}

int df_json_string_array(const char *rest, struct df_list *l)
{
    struct jp p = {.s = rest, .n = strlen(rest)};
    struct jstate st = {0};
    ws(&p);
    if (p.pos >= p.n || p.s[p.pos] != '[')
        return 0;
    for (;;) {
        int r = value(&p, &st, l);
        if (r <= V_INVALID)
            return r;
        if (r == V_OPENED)
            continue;
        /* after a value: a separator or the end of containers */
        for (;;) {
            ws(&p);
            if (st.depth == 0) {
                if (p.pos != p.n)
                    return 0;
                if (l->oom)
                    return -ENOMEM;
                return st.non_string ? -EINVAL : 1;
            }
            if (p.pos >= p.n)
                return 0;
            bool obj = st.stack[(st.depth - 1) / 8] & (1u << ((st.depth - 1) % 8));
            char sep = p.s[p.pos++];
            if (sep == (obj ? '}' : ']')) {
                st.depth--;
                continue;
            }
            if (sep != ',' || (obj && !key(&p)))
                return 0;
            break;
        }
    }
}
