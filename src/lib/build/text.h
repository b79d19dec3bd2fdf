/* Text helpers of the build module: a growable byte buffer and the few Unicode facts that
 * BuildKit's Dockerfile grammar depends on (Go's UTF-8 decoding, unicode.IsSpace, IsLetter,
 * IsPrint and strconv.Quote), so that a Dockerfile parses and prints as BuildKit does. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A byte buffer that stays NUL-terminated. An allocation failure is sticky (oom): callers
 * append freely and check once at the end. */
struct ks_tbuf {
    char *s;
    size_t len, cap;
    bool oom;
};

void ks_tbuf_add(struct ks_tbuf *b, const char *s, size_t n);
void ks_tbuf_addc(struct ks_tbuf *b, char c);
void ks_tbuf_adds(struct ks_tbuf *b, const char *s);
/* Appends the UTF-8 encoding of a code point. */
void ks_tbuf_addcp(struct ks_tbuf *b, uint32_t cp);
/* Hands the string over to the caller (free()); an empty buffer gives "". NULL on oom, when
 * the buffer is freed. */
char *ks_tbuf_take(struct ks_tbuf *b);
void ks_tbuf_free(struct ks_tbuf *b);

#define KS_RUNE_ERROR 0xFFFDu

/* Decodes the code point at s (n > 0 bytes available) as Go's utf8.DecodeRune does: an invalid
 * or truncated sequence gives KS_RUNE_ERROR with width 1. Returns the width. */
size_t ks_utf8_decode(const char *s, size_t n, uint32_t *ret_cp);

/* Go's unicode.IsSpace. */
bool ks_uni_is_space(uint32_t cp);
/* Go's unicode.IsLetter: exact for ASCII, an approximation above (no general-category table
 * is carried; code points that are printable and not punctuation or symbols count). */
bool ks_uni_is_letter(uint32_t cp);
/* Go's unicode.IsDigit for ASCII digits (other scripts' digits count as letters above). */
bool ks_uni_is_digit(uint32_t cp);
/* Go's unicode.IsPrint, approximated above ASCII (controls, spaces other than U+0020, format
 * characters, private use, surrogates and non-characters are not printable). */
bool ks_uni_is_print(uint32_t cp);

/* Appends s (n bytes) quoted as Go's strconv.Quote does. */
void ks_tbuf_add_go_quoted(struct ks_tbuf *b, const char *s, size_t n);

/* Length of the Unicode white space at s (0 when none). */
size_t ks_utf8_space_len(const char *s, size_t n);
