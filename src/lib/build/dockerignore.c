/* .dockerignore patterns (dockerignore.h). A pattern is compiled into tokens and matched by
 * simulating it as a set of states, so matching takes O(len(path) * len(pattern)) time with
 * any pattern: no backtracking. */
#include "dockerignore.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../base/fs.h"
#include "text.h"

enum tok_kind {
    T_LIT,       /* one code point */
    T_ONE,       /* '?': one code point but '/' */
    T_STAR,      /* '*': a run without '/' */
    T_DSTAR_DIR, /* "**" followed by more: any run ending in "/", or nothing */
    T_DSTAR_END, /* "**" at the end: .* */
    T_CLASS,     /* [...] */
};

struct range {
    uint32_t lo, hi;
};

struct tok {
    enum tok_kind kind;
    uint32_t cp;
    bool negated;
    struct range *ranges;
    size_t n_ranges;
};

struct pattern {
    char *text; /* cleaned, without '!' */
    bool exception;
    struct tok *toks;
    size_t n;
};

struct ks_dockerignore {
    struct pattern *p;
    size_t n;
    char **strings; /* ks_dockerignore_patterns() */
    bool has_exceptions;
};

static void pattern_free(struct pattern *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->toks[i].ranges);
    free(p->toks);
    free(p->text);
}

void ks_dockerignore_free(struct ks_dockerignore *di)
{
    if (di == NULL)
        return;
    for (size_t i = 0; i < di->n; i++)
        pattern_free(&di->p[i]);
    free(di->p);
    ks_strv_free(di->strings);
    free(di);
}

static uint32_t next_cp(const char *s, size_t n, size_t *i)
{
    uint32_t cp;
    *i += ks_utf8_decode(s + *i, n - *i, &cp);
    return cp;
}

/* A bracket expression at s[*i] (after '['), as Go's regexp reads a class: '^' negates,
 * a-z ranges, '\' escapes. false when it is not closed. */
static bool parse_class(const char *s, size_t n, size_t *i, struct tok *t)
{
    size_t j = *i;
    if (j < n && s[j] == '^') {
        t->negated = true;
        j++;
    }
    for (bool first = true; j < n && (first || s[j] != ']'); first = false) {
        uint32_t lo = s[j] == '\\' && j + 1 < n ? (j++, next_cp(s, n, &j)) : next_cp(s, n, &j);
        uint32_t hi = lo;
        if (j + 1 < n && s[j] == '-' && s[j + 1] != ']') {
            j++;
            hi = s[j] == '\\' && j + 1 < n ? (j++, next_cp(s, n, &j)) : next_cp(s, n, &j);
        }
        struct range *r = realloc(t->ranges, (t->n_ranges + 1) * sizeof(*r));
        if (r == NULL)
            return false;
        t->ranges = r;
        t->ranges[t->n_ranges++] = (struct range){lo, hi};
    }
    if (j >= n)
        return false;
    *i = j + 1;
    return true;
}

static int compile(struct pattern *p, struct ks_error **err)
{
    const char *s = p->text;
    size_t n = strlen(s);
    p->toks = calloc(n + 1, sizeof(*p->toks));
    if (p->toks == NULL)
        return ks_error_set(err, ENOMEM, ".dockerignore");
    for (size_t i = 0; i < n;) {
        struct tok *t = &p->toks[p->n++];
        if (s[i] == '*' && i + 1 < n && s[i + 1] == '*') {
            i += 2;
            if (i < n && s[i] == '/')
                i++; /* "**\/" is "**" */
            t->kind = i == n ? T_DSTAR_END : T_DSTAR_DIR;
        } else if (s[i] == '*') {
            i++;
            t->kind = T_STAR;
        } else if (s[i] == '?') {
            i++;
            t->kind = T_ONE;
        } else if (s[i] == '[') {
            size_t j = i + 1;
            t->kind = T_CLASS;
            if (!parse_class(s, n, &j, t))
                return ks_error_msg(err, "invalid .dockerignore pattern \"%s\": unclosed [", s);
            i = j;
        } else {
            if (s[i] == '\\' && i + 1 < n)
                i++;
            t->kind = T_LIT;
            t->cp = next_cp(s, n, &i);
        }
    }
    return 0;
}

static bool class_has(const struct tok *t, uint32_t c)
{
    bool in = false;
    for (size_t i = 0; i < t->n_ranges && !in; i++)
        in = c >= t->ranges[i].lo && c <= t->ranges[i].hi;
    return in != t->negated;
}

/* Adds state i and what it reaches without input. */
static void closure(const struct pattern *p, uint8_t *set, size_t i)
{
    for (; i <= p->n && !set[i]; i++) {
        set[i] = 1;
        if (i == p->n)
            return;
        enum tok_kind k = p->toks[i].kind;
        if (k != T_STAR && k != T_DSTAR_DIR && k != T_DSTAR_END)
            return;
    }
}

/* The states are "at token i" (0..n, n accepting) and, for "**" tokens, "inside its run":
 * only the first has the empty move past an optional "**". With parents, a match of a leading
 * directory of path counts too (checked where a '/' is about to be read), in the same pass. */
static bool pattern_match(const struct pattern *p, const char *path, bool parents)
{
    size_t n = strlen(path), w = p->n + 1;
    _cleanup_free_ uint8_t *sets = calloc(4 * w, 1);
    if (sets == NULL)
        return false;
    uint8_t *cur = sets, *next = sets + 2 * w;
    closure(p, cur, 0);
    for (size_t i = 0; i < n;) {
        if (parents && path[i] == '/' && i > 0 && cur[p->n])
            return true;
        uint32_t c = next_cp(path, n, &i);
        memset(next, 0, 2 * w);
        bool any = false;
        for (size_t s = 0; s < p->n; s++) {
            bool at = cur[s], inside = cur[w + s];
            if (!at && !inside)
                continue;
            const struct tok *t = &p->toks[s];
            bool adv = false;
            switch (t->kind) {
            case T_LIT:
                adv = at && c == t->cp;
                break;
            case T_ONE:
                adv = at && c != '/';
                break;
            case T_STAR:
                if (at && c != '/')
                    closure(p, next, s), any = true;
                break;
            case T_DSTAR_END:
                closure(p, next, s), any = true;
                break;
            case T_DSTAR_DIR:
                next[w + s] = 1, any = true;
                adv = c == '/';
                break;
            case T_CLASS:
                adv = at && class_has(t, c);
                break;
            }
            if (adv)
                closure(p, next, s + 1), any = true;
        }
        uint8_t *tmp = cur;
        cur = next;
        next = tmp;
        if (!any)
            break;
    }
    return cur[p->n];
}

static int add_pattern(struct ks_dockerignore *di, char *line, struct ks_error **err)
{
    bool exception = line[0] == '!';
    if (exception) {
        line++;
        size_t a = 0, len = strlen(line);
        while (a < len && strchr(" \t\r\n\v\f", line[a]))
            a++;
        while (len > a && strchr(" \t\r\n\v\f", line[len - 1]))
            line[--len] = '\0';
        line += a;
    }
    if (strlen(line) > KS_DOCKERIGNORE_MAX_PATTERN)
        return ks_error_msg(err, ".dockerignore pattern longer than %d bytes",
                            KS_DOCKERIGNORE_MAX_PATTERN);
    if (di->n >= KS_DOCKERIGNORE_MAX_PATTERNS)
        return ks_error_msg(err, "more than %d .dockerignore patterns",
                            KS_DOCKERIGNORE_MAX_PATTERNS);
    _cleanup_free_ char *clean = line[0] ? ks_path_clean(line) : strdup("");
    if (clean == NULL)
        return ks_error_set(err, ENOMEM, ".dockerignore");
    if (clean[0] == '/' && clean[1] != '\0')
        memmove(clean, clean + 1, strlen(clean));
    struct pattern *v = realloc(di->p, (di->n + 1) * sizeof(*v));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, ".dockerignore");
    di->p = v;
    struct pattern *p = &di->p[di->n++];
    *p = (struct pattern){.text = TAKE_PTR(clean), .exception = exception};
    di->has_exceptions |= exception;
    return compile(p, err);
}

int ks_dockerignore_parse(const char *data, size_t len, struct ks_dockerignore **ret,
                          struct ks_error **err)
{
    _cleanup_(ks_dockerignore_free_p) struct ks_dockerignore *di = calloc(1, sizeof(*di));
    _cleanup_free_ char *copy = strndup(data, len);
    if (di == NULL || copy == NULL)
        return ks_error_set(err, ENOMEM, ".dockerignore");
    char *s = copy;
    if (strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    unsigned lineno = 0;
    for (char *save = NULL, *line = strtok_r(s, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] == '#')
            continue;
        size_t a = 0, n = strlen(line);
        while (a < n && strchr(" \t\r\v\f", line[a]))
            a++;
        while (n > a && strchr(" \t\r\v\f", line[n - 1]))
            line[--n] = '\0';
        if (line[a] == '\0')
            continue;
        int r = add_pattern(di, line + a, err);
        if (r < 0)
            return ks_error_wrap(err, ".dockerignore line %u", lineno);
    }
    di->strings = calloc(di->n + 1, sizeof(char *));
    if (di->strings == NULL)
        return ks_error_set(err, ENOMEM, ".dockerignore");
    for (size_t i = 0; i < di->n; i++)
        if (asprintf(&di->strings[i], "%s%s", di->p[i].exception ? "!" : "", di->p[i].text) < 0)
            return ks_error_set(err, ENOMEM, ".dockerignore");
    *ret = TAKE_PTR(di);
    return 0;
}

bool ks_dockerignore_excluded(const struct ks_dockerignore *di, const char *path)
{
    _cleanup_free_ char *clean = ks_path_clean(path);
    if (clean == NULL)
        return false;
    const char *file = clean[0] == '/' && clean[1] ? clean + 1 : clean;
    bool matched = false;
    for (size_t i = 0; i < di->n; i++) {
        const struct pattern *p = &di->p[i];
        /* an inclusion cannot change an excluded path, nor an exception an included one */
        if (p->exception != matched)
            continue;
        /* a pattern matching a parent directory matches everything below it */
        if (pattern_match(p, file, true))
            matched = !p->exception;
    }
    return matched;
}

bool ks_dockerignore_walk_excluded_dir(const struct ks_dockerignore *di, const char *dir)
{
    if (!di->has_exceptions)
        return false;
    _cleanup_free_ char *clean = ks_path_clean(dir);
    if (clean == NULL)
        return true;
    size_t dn = strlen(clean);
    for (size_t i = 0; i < di->n; i++) {
        const struct pattern *p = &di->p[i];
        if (!p->exception)
            continue;
        /* the literal part of the exception before its first wildcard */
        size_t lit = strcspn(p->text, "*?[\\");
        bool wild = p->text[lit] != '\0';
        /* "dir/…" below dir, or a wildcard that could reach below it */
        if (strncmp(p->text, clean, lit < dn ? lit : dn) == 0 &&
            (lit > dn ? p->text[dn] == '/' : wild || clean[lit] == '/' || clean[lit] == '\0'))
            return true;
    }
    return false;
}

char *const *ks_dockerignore_patterns(const struct ks_dockerignore *di)
{
    return di->strings;
}
