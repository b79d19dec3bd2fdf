/* BuildKit's shell lexer (shell_words.h). The grammar is small and recursive only through
 * ${name:-word}, whose nesting is bounded by KS_SHELL_MAX_DEPTH. */
#include "shell_words.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../base/fs.h"
#include "text.h"

/* Pattern operators try every prefix, suffix or substring: bound the value they work on. */
#define PATTERN_VALUE_MAX 1024

#define END (-1)

struct words {
    struct ks_tbuf word;
    bool in_word;
    char **v;
    size_t n, cap;
    bool oom;
};

struct lex {
    const struct ks_shell_lexer *lx;
    const char *s;
    size_t n, pos;
    ks_shell_lookup_fn lookup;
    void *ud;
    unsigned depth;
    struct ks_error **err;
};

static void words_push(struct words *w)
{
    if (w->word.len == 0)
        return;
    if (w->n + 2 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        char **v = realloc(w->v, cap * sizeof(*v));
        if (v == NULL) {
            w->oom = true;
            return;
        }
        w->v = v;
        w->cap = cap;
    }
    char *s = ks_tbuf_take(&w->word);
    if (s == NULL) {
        w->oom = true;
        return;
    }
    w->v[w->n++] = s;
    w->v[w->n] = NULL;
    w->in_word = false;
}

static void words_add_raw(struct words *w, const char *s, size_t n)
{
    if (w == NULL)
        return;
    ks_tbuf_add(&w->word, s, n);
    w->in_word = true;
}

static void words_add_cp(struct words *w, uint32_t cp)
{
    if (w == NULL)
        return;
    if (ks_uni_is_space(cp)) {
        if (w->in_word && w->word.len != 0)
            words_push(w);
        return;
    }
    ks_tbuf_addcp(&w->word, cp);
    w->in_word = true;
}

/* Go's `for _, ch := range str { addChar(ch) }`: invalid bytes become U+FFFD. */
static void words_add_string(struct words *w, const char *s, size_t n)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += ks_utf8_decode(s + i, n - i, &cp);
        words_add_cp(w, cp);
    }
}

static void words_free(struct words *w)
{
    ks_tbuf_free(&w->word);
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i]);
    free(w->v);
}

static int32_t peek(struct lex *l)
{
    if (l->pos >= l->n)
        return END;
    uint32_t cp;
    ks_utf8_decode(l->s + l->pos, l->n - l->pos, &cp);
    return (int32_t)cp;
}

static int32_t next(struct lex *l)
{
    if (l->pos >= l->n)
        return END;
    uint32_t cp;
    l->pos += ks_utf8_decode(l->s + l->pos, l->n - l->pos, &cp);
    return (int32_t)cp;
}

static int lex_error(struct lex *l, const char *msg)
{
    return ks_error_msg(l->err, "%s", msg);
}

static int process_stop_on(struct lex *l, int32_t stop, bool raw_escapes, struct ks_tbuf *out,
                           struct words *w);

static int single_quote(struct lex *l, struct ks_tbuf *out)
{
    int32_t ch = next(l);
    if (l->lx->raw_quotes)
        ks_tbuf_addcp(out, (uint32_t)ch);
    for (;;) {
        ch = next(l);
        if (ch == END)
            return lex_error(l,
                             "unexpected end of statement while looking for matching single-quote");
        if (ch == '\'') {
            if (l->lx->raw_quotes)
                ks_tbuf_addcp(out, (uint32_t)ch);
            return 0;
        }
        ks_tbuf_addcp(out, (uint32_t)ch);
    }
}

static int process_dollar(struct lex *l, struct ks_tbuf *out);

static int double_quote(struct lex *l, struct ks_tbuf *out)
{
    int32_t ch = next(l);
    if (l->lx->raw_quotes)
        ks_tbuf_addcp(out, (uint32_t)ch);
    for (;;) {
        int32_t p = peek(l);
        if (p == END)
            return lex_error(l,
                             "unexpected end of statement while looking for matching double-quote");
        if (p == '"') {
            next(l);
            if (l->lx->raw_quotes)
                ks_tbuf_addc(out, '"');
            return 0;
        }
        if (p == '$') {
            int r = process_dollar(l, out);
            if (r < 0)
                return r;
            continue;
        }
        ch = next(l);
        if (ch == l->lx->escape) {
            p = peek(l);
            if (p == END)
                continue; /* an escape at the end of the word is dropped */
            /* only these can be escaped; other escape characters stay as they are */
            if (p == '"' || p == '$' || p == l->lx->escape) {
                if (l->lx->raw_escapes)
                    ks_tbuf_addcp(out, (uint32_t)ch);
                ch = next(l);
            }
        }
        ks_tbuf_addcp(out, (uint32_t)ch);
    }
}

static bool is_special_param(int32_t ch)
{
    return ch == '@' || ch == '*' || ch == '#' || ch == '?' || ch == '-' || ch == '$' ||
           ch == '!' || ch == '0';
}

/* A name: letters, digits and '_'; or a run of digits (positional); or one special
 * parameter character. */
static void process_name(struct lex *l, struct ks_tbuf *name)
{
    for (int32_t ch; (ch = peek(l)) != END;) {
        if (name->len == 0 && ks_uni_is_digit((uint32_t)ch)) {
            while ((ch = peek(l)) != END && ks_uni_is_digit((uint32_t)ch))
                ks_tbuf_addcp(name, (uint32_t)next(l));
            return;
        }
        if (name->len == 0 && is_special_param(ch)) {
            ks_tbuf_addcp(name, (uint32_t)next(l));
            return;
        }
        if (!ks_uni_is_letter((uint32_t)ch) && !ks_uni_is_digit((uint32_t)ch) && ch != '_')
            return;
        ks_tbuf_addcp(name, (uint32_t)next(l));
    }
}

/* One pattern token at p (not '*') against the byte c: *ret_len is the token's length.
 * Bracket expressions take ranges and '!'/'^' negation; an unclosed '[' is literal. */
static bool token_match(const char *p, size_t pn, unsigned char c, size_t *ret_len)
{
    if (p[0] == '?') {
        *ret_len = 1;
        return true;
    }
    if (p[0] == '\\' && pn > 1) {
        *ret_len = 2;
        return (unsigned char)p[1] == c;
    }
    if (p[0] == '[') {
        size_t i = 1;
        bool neg = i < pn && (p[i] == '!' || p[i] == '^');
        i += neg;
        bool match = false;
        for (bool first = true; i < pn && (first || p[i] != ']'); first = false) {
            unsigned char lo = (unsigned char)p[i];
            if (lo == '\\' && i + 1 < pn)
                lo = (unsigned char)p[++i];
            unsigned char hi = lo;
            if (i + 2 < pn && p[i + 1] == '-' && p[i + 2] != ']') {
                hi = (unsigned char)p[i + 2];
                if (hi == '\\' && i + 3 < pn)
                    hi = (unsigned char)p[++i + 2];
                i += 2;
            }
            match |= c >= lo && c <= hi;
            i++;
        }
        if (i < pn) { /* p[i] == ']' */
            *ret_len = i + 1;
            return match != neg;
        }
    }
    *ret_len = 1;
    return (unsigned char)p[0] == c;
}

/* Shell pattern matching of the whole of s: the two-pointer algorithm, which backtracks only
 * to the last '*' and so takes O(len(s) * len(pat)) whatever the pattern. */
static bool glob_match(const char *pat, const char *s, size_t sn)
{
    size_t pn = strlen(pat), pi = 0, si = 0, star_p = SIZE_MAX, star_s = 0;
    while (si < sn) {
        size_t tl = 0;
        if (pi < pn && pat[pi] == '*') {
            star_p = ++pi;
            star_s = si;
        } else if (pi < pn && token_match(pat + pi, pn - pi, (unsigned char)s[si], &tl)) {
            pi += tl;
            si++;
        } else if (star_p != SIZE_MAX) {
            pi = star_p;
            si = ++star_s;
        } else {
            return false;
        }
    }
    while (pi < pn && pat[pi] == '*')
        pi++;
    return pi == pn;
}

static const char *get_env(struct lex *l, const char *name)
{
    return l->lookup ? l->lookup(l->ud, name) : NULL;
}

/* ${name%pat}, ${name#pat} and their greedy forms. */
static int trim_pattern(struct lex *l, const char *value, const char *pat, bool suffix, bool greedy,
                        struct ks_tbuf *out)
{
    size_t n = strlen(value);
    if (n > PATTERN_VALUE_MAX)
        return lex_error(l, "value too long for pattern removal");
    for (size_t k = 0; k <= n; k++) {
        size_t len = greedy ? n - k : k; /* length of the part that is matched */
        if (suffix ? glob_match(pat, value + n - len, len) : glob_match(pat, value, len)) {
            if (suffix)
                ks_tbuf_add(out, value, n - len);
            else
                ks_tbuf_adds(out, value + len);
            return 0;
        }
    }
    ks_tbuf_adds(out, value);
    return 0;
}

/* ${name/pat/repl} and ${name//pat/repl}: the leftmost, longest match. */
static int replace_pattern(struct lex *l, const char *value, const char *pat, const char *repl,
                           bool all, struct ks_tbuf *out)
{
    size_t n = strlen(value);
    if (n > PATTERN_VALUE_MAX)
        return lex_error(l, "value too long for pattern substitution");
    bool done = false;
    for (size_t i = 0; i <= n;) {
        bool found = false;
        size_t e = 0;
        for (size_t cand = n + 1; !done && !found && cand-- > i;)
            if (glob_match(pat, value + i, cand - i))
                found = true, e = cand;
        if (!found) {
            if (i < n)
                ks_tbuf_addc(out, value[i]);
            i++;
            continue;
        }
        ks_tbuf_adds(out, repl);
        done = !all;
        if (e == i) { /* an empty match moves on by one character */
            if (i < n)
                ks_tbuf_addc(out, value[i]);
            i++;
        } else {
            i = e;
        }
    }
    return 0;
}

static int dollar_modifier(struct lex *l, const char *name, int32_t op, bool null_is_unset,
                           struct ks_tbuf *out)
{
    struct ks_tbuf word = {0};
    int r =
        process_stop_on(l, '}', op == '#' || op == '%' ? true : l->lx->raw_escapes, &word, NULL);
    _cleanup_free_ char *w = ks_tbuf_take(&word);
    if (r < 0)
        return r;
    if (w == NULL)
        return ks_error_set(l->err, ENOMEM, "expansion");
    const char *value = get_env(l, name);
    if (value == NULL && l->lx->skip_unset) {
        ks_tbuf_adds(out, "${");
        ks_tbuf_adds(out, name);
        if (null_is_unset)
            ks_tbuf_addc(out, ':');
        ks_tbuf_addcp(out, (uint32_t)op);
        ks_tbuf_adds(out, w);
        ks_tbuf_addc(out, '}');
        return 0;
    }
    bool empty = value == NULL || (null_is_unset && value[0] == '\0');
    switch (op) {
    case '-':
        ks_tbuf_adds(out, empty ? w : value);
        return 0;
    case '+':
        ks_tbuf_adds(out, empty ? "" : w);
        return 0;
    case '?':
        if (value == NULL)
            return ks_error_msg(l->err, "%s: %s", name, w[0] ? w : "is not allowed to be unset");
        if (empty)
            return ks_error_msg(l->err, "%s: %s", name, w[0] ? w : "is not allowed to be empty");
        ks_tbuf_adds(out, value);
        return 0;
    default: { /* '#' or '%' */
        bool greedy = w[0] == (char)op;
        return trim_pattern(l, value ? value : "", w + greedy, op == '%', greedy, out);
    }
    }
}

static int dollar_replace(struct lex *l, const char *name, struct ks_tbuf *out)
{
    bool all = false;
    if (peek(l) == '/') {
        all = true;
        next(l);
    }
    struct ks_tbuf pb = {0}, rb = {0};
    int r = process_stop_on(l, '/', true, &pb, NULL);
    if (r >= 0)
        r = process_stop_on(l, '}', true, &rb, NULL);
    _cleanup_free_ char *pat = ks_tbuf_take(&pb);
    _cleanup_free_ char *repl = ks_tbuf_take(&rb);
    if (r < 0)
        return r;
    if (pat == NULL || repl == NULL)
        return ks_error_set(l->err, ENOMEM, "expansion");
    const char *value = get_env(l, name);
    if (value == NULL && l->lx->skip_unset) {
        ks_tbuf_adds(out, "${");
        ks_tbuf_adds(out, name);
        ks_tbuf_adds(out, all ? "//" : "/");
        ks_tbuf_adds(out, pat);
        ks_tbuf_addc(out, '/');
        ks_tbuf_adds(out, repl);
        ks_tbuf_addc(out, '}');
        return 0;
    }
    return replace_pattern(l, value ? value : "", pat, repl, all, out);
}

static int dollar_braced(struct lex *l, const char *name, struct ks_tbuf *out)
{
    int32_t ch = next(l);
    bool null_is_unset = false;
    if (ch == '}') {
        const char *value = get_env(l, name);
        if (value == NULL && l->lx->skip_unset) {
            ks_tbuf_adds(out, "${");
            ks_tbuf_adds(out, name);
            ks_tbuf_addc(out, '}');
        } else if (value) {
            ks_tbuf_adds(out, value);
        }
        return 0;
    }
    if (ch == ':') {
        null_is_unset = true;
        ch = next(l);
        if (ch != '-' && ch != '+' && ch != '?') {
            /* consume the word as the shell does before complaining */
            struct ks_tbuf skip = {0};
            int r = process_stop_on(l, '}', l->lx->raw_escapes, &skip, NULL);
            ks_tbuf_free(&skip);
            if (r < 0)
                return r;
            if (ch == END)
                return lex_error(l, "syntax error: missing '}'");
            struct ks_tbuf m = {0};
            ks_tbuf_addcp(&m, (uint32_t)ch);
            _cleanup_free_ char *ms = ks_tbuf_take(&m);
            return ks_error_msg(l->err, "unsupported modifier (%s) in substitution", ms ? ms : "?");
        }
    }
    switch (ch) {
    case '-':
    case '+':
    case '?':
    case '#':
    case '%':
        return dollar_modifier(l, name, ch, null_is_unset, out);
    case '/':
        return dollar_replace(l, name, out);
    case END:
        return lex_error(l, "syntax error: missing '}'");
    default:
        return lex_error(l, "missing ':' in substitution");
    }
}

static int process_dollar(struct lex *l, struct ks_tbuf *out)
{
    next(l); /* '$' */
    struct ks_tbuf nb = {0};
    if (peek(l) != '{') {
        process_name(l, &nb);
        _cleanup_free_ char *name = ks_tbuf_take(&nb);
        if (name == NULL)
            return ks_error_set(l->err, ENOMEM, "expansion");
        if (name[0] == '\0') {
            ks_tbuf_addc(out, '$');
            return 0;
        }
        const char *value = get_env(l, name);
        if (value == NULL && l->lx->skip_unset) {
            ks_tbuf_addc(out, '$');
            ks_tbuf_adds(out, name);
        } else if (value) {
            ks_tbuf_adds(out, value);
        }
        return 0;
    }
    next(l); /* '{' */
    int32_t p = peek(l);
    if (p == END)
        return lex_error(l, "syntax error: missing '}'");
    if (p == '{' || p == '}' || p == ':')
        return lex_error(l, "syntax error: bad substitution");
    if (l->depth >= KS_SHELL_MAX_DEPTH)
        return lex_error(l, "substitutions nested too deeply");
    process_name(l, &nb);
    _cleanup_free_ char *name = ks_tbuf_take(&nb);
    if (name == NULL)
        return ks_error_set(l->err, ENOMEM, "expansion");
    l->depth++;
    int r = dollar_braced(l, name, out);
    l->depth--;
    return r;
}

static int process_stop_on(struct lex *l, int32_t stop, bool raw_escapes, struct ks_tbuf *out,
                           struct words *w)
{
    for (int32_t ch; (ch = peek(l)) != END;) {
        if (stop != END && ch == stop) {
            next(l);
            return 0;
        }
        if (ch == '\'' || ch == '"' || ch == '$') {
            struct ks_tbuf tmp = {0};
            int r = ch == '\''  ? single_quote(l, &tmp)
                    : ch == '"' ? double_quote(l, &tmp)
                                : process_dollar(l, &tmp);
            if (r < 0) {
                ks_tbuf_free(&tmp);
                return r;
            }
            if (tmp.len)
                ks_tbuf_add(out, tmp.s, tmp.len);
            if (ch == '$')
                words_add_string(w, tmp.s, tmp.len);
            else
                words_add_raw(w, tmp.s ? tmp.s : "", tmp.len);
            bool oom = tmp.oom;
            ks_tbuf_free(&tmp);
            if (oom)
                return ks_error_set(l->err, ENOMEM, "expansion");
            continue;
        }
        ch = next(l);
        if (ch == l->lx->escape) {
            if (raw_escapes) {
                words_add_raw(w, (const char *)&l->lx->escape, 1);
                ks_tbuf_addc(out, l->lx->escape);
            }
            ch = next(l);
            if (ch == END)
                break;
            struct ks_tbuf one = {0};
            ks_tbuf_addcp(&one, (uint32_t)ch);
            words_add_raw(w, one.s ? one.s : "", one.len);
            ks_tbuf_free(&one);
        } else {
            words_add_cp(w, (uint32_t)ch);
        }
        ks_tbuf_addcp(out, (uint32_t)ch);
    }
    if (stop != END) {
        if (stop == '}')
            return lex_error(l, "syntax error: missing '}'");
        return ks_error_msg(l->err, "unexpected end of statement while looking for matching %c",
                            (char)stop);
    }
    return 0;
}

static int run(const struct ks_shell_lexer *lx, const char *word, ks_shell_lookup_fn lookup,
               void *userdata, char **ret, struct words *w, struct ks_error **err)
{
    struct lex l = {
        .lx = lx, .s = word, .n = strlen(word), .lookup = lookup, .ud = userdata, .err = err};
    struct ks_tbuf out = {0};
    int r = process_stop_on(&l, END, lx->raw_escapes, &out, w);
    if (r < 0) {
        ks_tbuf_free(&out);
        return r;
    }
    char *s = ks_tbuf_take(&out);
    if (s == NULL)
        return ks_error_set(err, ENOMEM, "expansion");
    if (ret)
        *ret = s;
    else
        free(s);
    return 0;
}

int ks_shell_expand_word(const struct ks_shell_lexer *lx, const char *word,
                         ks_shell_lookup_fn lookup, void *userdata, char **ret,
                         struct ks_error **err)
{
    return run(lx, word, lookup, userdata, ret, NULL, err);
}

int ks_shell_expand_words(const struct ks_shell_lexer *lx, const char *word,
                          ks_shell_lookup_fn lookup, void *userdata, char ***ret,
                          struct ks_error **err)
{
    struct words w = {0};
    int r = run(lx, word, lookup, userdata, NULL, &w, err);
    if (r >= 0) {
        words_push(&w);
        if (w.v == NULL && !w.oom) {
            w.v = calloc(1, sizeof(char *));
            w.oom = w.v == NULL;
        }
        if (w.oom || w.word.oom)
            r = ks_error_set(err, ENOMEM, "expansion");
    }
    if (r < 0) {
        words_free(&w);
        return r;
    }
    ks_tbuf_free(&w.word);
    *ret = w.v;
    return 0;
}

const char *ks_shell_lookup_envv(void *userdata, const char *name)
{
    char **env = userdata;
    size_t n = strlen(name);
    const char *found = NULL;
    for (size_t i = 0; env && env[i]; i++)
        if (strncmp(env[i], name, n) == 0 && env[i][n] == '=')
            found = env[i] + n + 1;
    return found;
}
