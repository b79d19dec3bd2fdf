/* Text helpers of the build module (text.h). */
#include "text.h"

#include <stdlib.h>
#include <string.h>

static bool tbuf_grow(struct ks_tbuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    if (more > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 32;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (s == NULL) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void ks_tbuf_add(struct ks_tbuf *b, const char *s, size_t n)
{
    if (!tbuf_grow(b, n))
        return;
    if (n)
        memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void ks_tbuf_addc(struct ks_tbuf *b, char c)
{
    ks_tbuf_add(b, &c, 1);
}

void ks_tbuf_adds(struct ks_tbuf *b, const char *s)
{
    ks_tbuf_add(b, s, strlen(s));
}

void ks_tbuf_addcp(struct ks_tbuf *b, uint32_t cp)
{
    char u[4];
    if (cp < 0x80) {
        ks_tbuf_addc(b, (char)cp);
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        ks_tbuf_add(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        ks_tbuf_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        ks_tbuf_add(b, u, 4);
    }
}

char *ks_tbuf_take(struct ks_tbuf *b)
{
    if (!b->oom && b->s == NULL)
        tbuf_grow(b, 0);
    if (b->oom) {
        ks_tbuf_free(b);
        return NULL;
    }
    char *s = b->s;
    b->s[b->len] = '\0';
    *b = (struct ks_tbuf){0};
    return s;
}

void ks_tbuf_free(struct ks_tbuf *b)
{
    free(b->s);
    *b = (struct ks_tbuf){0};
}

size_t ks_utf8_decode(const char *s, size_t n, uint32_t *ret_cp)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[0];
    *ret_cp = KS_RUNE_ERROR;
    if (c < 0x80) {
        *ret_cp = c;
        return 1;
    }
    size_t w;
    uint32_t cp, min;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        w = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        w = 3, cp = c & 0x0F, min = 0x800;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        w = 4, cp = c & 0x07, min = 0x10000;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 1;
    }
    if (n < w || u[1] < lo || u[1] > hi)
        return 1;
    cp = (cp << 6) | (u[1] & 0x3F);
    for (size_t i = 2; i < w; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return 1;
        cp = (cp << 6) | (u[i] & 0x3F);
    }
    if (cp < min)
        return 1;
    *ret_cp = cp;
    return w;
}

bool ks_uni_is_space(uint32_t cp)
{
    switch (cp) {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

size_t ks_utf8_space_len(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    uint32_t cp;
    size_t w = ks_utf8_decode(s, n, &cp);
    if (cp == KS_RUNE_ERROR && w == 1)
        return 0;
    return ks_uni_is_space(cp) ? w : 0;
}

bool ks_uni_is_print(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 0x20 && cp < 0x7F;
    if (cp <= 0xA0 || cp == 0xAD || ks_uni_is_space(cp))
        return false;
    if ((cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
        (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB))
        return false; /* format characters */
    if ((cp >= 0xD800 && cp <= 0xF8FF) || cp >= 0xF0000)
        return false; /* surrogates, private use */
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE || cp > 0x10FFFF)
        return false; /* non-characters */
    if (cp == 0x0600 || cp == 0x06DD || cp == 0x070F || cp == 0x110BD || cp == 0xE0001)
        return false;
    return true;
}

bool ks_uni_is_digit(uint32_t cp)
{
    return cp >= '0' && cp <= '9';
}

bool ks_uni_is_letter(uint32_t cp)
{
    if (cp < 0x80)
        return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    if (!ks_uni_is_print(cp))
        return false;
    if (cp <= 0xBF)
        return cp == 0xAA || cp == 0xB5 || cp == 0xBA;
    if (cp == 0xD7 || cp == 0xF7)
        return false;
    /* general punctuation, symbols, arrows, box drawing, dingbats, CJK punctuation */
    if ((cp >= 0x2000 && cp <= 0x2BFF) || (cp >= 0x3000 && cp <= 0x303F) ||
        (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF20) ||
        (cp >= 0x1F000 && cp <= 0x1FAFF) || (cp >= 0x0300 && cp <= 0x036F))
        return false;
    return true;
}

void ks_tbuf_add_go_quoted(struct ks_tbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    ks_tbuf_addc(b, '"');
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t w = ks_utf8_decode(s + i, n - i, &cp);
        unsigned char c = (unsigned char)s[i];
        if (w == 1 && cp == KS_RUNE_ERROR) {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            ks_tbuf_add(b, e, 4);
        } else if (cp == '"' || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            ks_tbuf_add(b, e, 2);
        } else if (ks_uni_is_print(cp)) {
            ks_tbuf_add(b, s + i, w);
        } else {
            static const char *const named[] = {
                ['\a'] = "\\a", ['\b'] = "\\b", ['\f'] = "\\f", ['\n'] = "\\n",
                ['\r'] = "\\r", ['\t'] = "\\t", ['\v'] = "\\v",
            };
            if (cp < sizeof(named) / sizeof(named[0]) && named[cp]) {
                ks_tbuf_adds(b, named[cp]);
            } else if (cp < 0x20 || cp == 0x7F) {
                char e[4] = {'\\', 'x', hex[cp >> 4], hex[cp & 15]};
                ks_tbuf_add(b, e, 4);
            } else {
                int digits = cp < 0x10000 ? 4 : 8;
                ks_tbuf_adds(b, digits == 4 ? "\\u" : "\\U");
                for (int d = digits - 1; d >= 0; d--)
                    ks_tbuf_addc(b, hex[(cp >> (4 * d)) & 15]);
            }
        }
        i += w;
    }
    ks_tbuf_addc(b, '"');
}
