/* The argument parsers of BuildKit's Dockerfile grammar (its line_parsers.go rules): which
 * instruction splits its arguments how. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dockerfile_internal.h"

void df_list_add(struct df_list *l, const char *s, size_t n)
{
    if (l->oom)
        return;
    if (l->n + 2 > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (v)
            l->v = v;
        size_t *lens = v ? realloc(l->lens, cap * sizeof(*lens)) : NULL;
        if (v == NULL || lens == NULL) {
            l->oom = true;
            return;
        }
        l->lens = lens;
        l->cap = cap;
    }
    char *c = malloc(n + 1);
    if (c == NULL) {
        l->oom = true;
        return;
    }
    if (n)
        memcpy(c, s, n);
    c[n] = '\0';
    l->lens[l->n] = n;
    l->v[l->n++] = c;
    l->v[l->n] = NULL;
}

void df_list_free(struct df_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    free(l->lens);
    *l = (struct df_list){0};
}

static void list_adds(struct df_list *l, const char *s)
{
    df_list_add(l, s, strlen(s));
}

/* Go's string(rune(b)) for a single byte: bytes above ASCII become U+0080..U+00FF. */
static void add_byte_rune(struct ks_tbuf *b, unsigned char c)
{
    ks_tbuf_addcp(b, c);
}

static void flag_word_end(struct df_list *flags, struct ks_tbuf *word, bool blank_ok)
{
    if (blank_ok || word->len > 0)
        df_list_add(flags, word->s ? word->s : "", word->len);
    ks_tbuf_free(word);
}

int df_extract_flags(const char *line, struct df_list *flags, const char **ret_rest)
{
    enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
    struct ks_tbuf word = {0};
    char quote = 0;
    bool blank_ok = false;
    size_t n = strlen(line);
    *ret_rest = line + n;
    for (size_t pos = 0; pos <= n; pos++) {
        unsigned char ch = pos < n ? (unsigned char)line[pos] : 0;
        if (phase == IN_SPACES) {
            if (pos == n)
                break;
            if (df_byte_space(ch))
                continue;
            if (ch != '-' || pos + 1 == n || line[pos + 1] != '-') {
                *ret_rest = line + pos;
                break;
            }
            phase = IN_WORD;
        }
        if (pos == n) {
            if (!(word.len == 2 && memcmp(word.s, "--", 2) == 0))
                flag_word_end(flags, &word, blank_ok);
            break;
        }
        if (phase == IN_WORD) {
            if (df_byte_space(ch)) {
                phase = IN_SPACES;
                if (word.len == 2 && memcmp(word.s, "--", 2) == 0) {
                    *ret_rest = line + pos;
                    break;
                }
                flag_word_end(flags, &word, blank_ok);
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = (char)ch;
                blank_ok = true;
                phase = IN_QUOTE;
                continue;
            }
            if (ch == '\\') {
                if (pos + 1 == n)
                    continue;
                ch = (unsigned char)line[++pos];
            }
            add_byte_rune(&word, ch);
            continue;
        }
        /* IN_QUOTE */
        if (ch == (unsigned char)quote) {
            phase = IN_WORD;
            continue;
        }
        if (ch == '\\') {
            if (pos + 1 == n) {
                phase = IN_WORD;
                continue;
            }
            ch = (unsigned char)line[++pos];
        }
        add_byte_rune(&word, ch);
    }
    bool oom = word.oom || flags->oom;
    ks_tbuf_free(&word);
    return oom ? -ENOMEM : 0;
}

static void addrune(struct ks_tbuf *b, const char *s, size_t w, uint32_t cp)
{
    if (w == 1 && cp == KS_RUNE_ERROR)
        ks_tbuf_addcp(b, KS_RUNE_ERROR);
    else
        ks_tbuf_add(b, s, w);
}

/* Words separated by white space, quotes and escapes kept as written (BuildKit's parseWords);
 * they are removed later by the word expansion. */
static void parse_words(const char *rest, char escape, struct df_list *out)
{
    enum { IN_SPACES, IN_WORD, IN_QUOTE } phase = IN_SPACES;
    struct ks_tbuf word = {0};
    uint32_t quote = 0;
    bool blank_ok = false;
    size_t n = strlen(rest);
    uint32_t ch = 0;
    size_t w = 0;
    for (size_t pos = 0; pos <= n; pos += w) {
        if (pos != n)
            w = ks_utf8_decode(rest + pos, n - pos, &ch);
        if (phase == IN_SPACES) {
            if (pos == n)
                break;
            if (ks_uni_is_space(ch))
                continue;
            phase = IN_WORD;
        }
        if (pos == n) {
            if (blank_ok || word.len > 0)
                df_list_add(out, word.s ? word.s : "", word.len);
            break;
        }
        if (phase == IN_WORD) {
            if (ks_uni_is_space(ch)) {
                phase = IN_SPACES;
                if (blank_ok || word.len > 0)
                    df_list_add(out, word.s ? word.s : "", word.len);
                ks_tbuf_free(&word);
                blank_ok = false;
                continue;
            }
            if (ch == '\'' || ch == '"') {
                quote = ch;
                blank_ok = true;
                phase = IN_QUOTE;
            }
            if (ch == (unsigned char)escape) {
                if (pos + w == n)
                    continue; /* an escape at the end of the line is dropped */
                /* outside quotes an escape keeps itself and the next character, even a
                 * quote */
                addrune(&word, rest + pos, w, ch);
                pos += w;
                w = ks_utf8_decode(rest + pos, n - pos, &ch);
            }
            addrune(&word, rest + pos, w, ch);
            continue;
        }
        /* IN_QUOTE */
        if (ch == quote)
            phase = IN_WORD;
        /* the escape works in double quotes only */
        if (ch == (unsigned char)escape && quote != '\'') {
            if (pos + w == n) {
                phase = IN_WORD;
                continue;
            }
            addrune(&word, rest + pos, w, ch);
            pos += w;
            w = ks_utf8_decode(rest + pos, n - pos, &ch);
        }
        addrune(&word, rest + pos, w, ch);
    }
    out->oom |= word.oom;
    ks_tbuf_free(&word);
}

/* Splits at runs of [\t\v\f\r ] (BuildKit's reWhitespace); max 0 for no limit, else at
 * most max parts. */
static void split_ws(const char *s, size_t max, struct df_list *out)
{
    size_t n = 0;
    for (;;) {
        size_t len = strcspn(s, "\t\v\f\r ");
        if (max && n + 1 == max)
            len = strlen(s);
        df_list_add(out, s, len);
        n++;
        s += len;
        if (*s == '\0')
            return;
        s += strspn(s, "\t\v\f\r ");
    }
}

static int parse_name_val(struct ks_df_node *node, const char *rest, char escape,
                          struct df_list *args, struct ks_error **err)
{
    const char *key = node->instr == KS_DF_LABEL ? "LABEL" : "ENV";
    struct df_list words = {0};
    parse_words(rest, escape, &words);
    int r = 0;
    if (words.oom) {
        r = -ENOMEM;
    } else if (words.n == 0) {
        /* nothing */
    } else if (strchr(words.v[0], '=') == NULL) {
        /* the old form: KEY name value */
        struct df_list parts = {0};
        split_ws(rest, 2, &parts);
        if (parts.n < 2) {
            r = ks_error_msg(err, "%s must have two arguments", key);
        } else {
            df_list_add(args, parts.v[0], parts.lens[0]);
            df_list_add(args, parts.v[1], parts.lens[1]);
            list_adds(args, "");
        }
        df_list_free(&parts);
    } else {
        for (size_t i = 0; i < words.n && r == 0; i++) {
            const char *eq = strchr(words.v[i], '=');
            if (eq == NULL) {
                struct ks_tbuf q = {0};
                ks_tbuf_add_go_quoted(&q, words.v[i], words.lens[i]);
                r = ks_error_msg(err,
                                 "Syntax error - can't find = in %s. Must be of the form: "
                                 "name=value",
                                 q.s ? q.s : words.v[i]);
                ks_tbuf_free(&q);
                break;
            }
            df_list_add(args, words.v[i], (size_t)(eq - words.v[i]));
            list_adds(args, eq + 1);
            list_adds(args, "=");
        }
    }
    df_list_free(&words);
    return r;
}

/* JSON form, or else one string (RUN, CMD …) or whitespace-separated words (COPY …). */
static int parse_maybe_json(struct ks_df_node *node, const char *rest, bool to_list,
                            struct df_list *args, struct ks_error **err)
{
    if (!to_list && rest[0] == '\0')
        return 0;
    int r = df_json_string_array(rest, args);
    if (r == 1) {
        node->json = true;
        return 0;
    }
    df_list_free(args);
    if (r == -EINVAL)
        return ks_error_msg(err, "when using JSON array syntax, arrays must be comprised of "
                                 "strings only");
    if (r < 0)
        return ks_error_set(err, -r, "parsing JSON");
    if (to_list) {
        if (rest[0] != '\0')
            split_ws(rest, 0, args);
    } else {
        list_adds(args, rest);
    }
    return 0;
}

static int parse_healthcheck(struct ks_df_node *node, const char *rest, struct df_list *args,
                             struct ks_error **err)
{
    size_t sep = 0, next;
    while (rest[sep] && !df_byte_space((unsigned char)rest[sep]))
        sep++;
    for (next = sep; rest[next] && df_byte_space((unsigned char)rest[next]);)
        next++;
    if (sep == 0)
        return 0;
    df_list_add(args, rest, sep);
    struct df_list cmd = {0};
    int r = parse_maybe_json(node, rest + next, false, &cmd, err);
    for (size_t i = 0; r >= 0 && i < cmd.n; i++)
        df_list_add(args, cmd.v[i], cmd.lens[i]);
    df_list_free(&cmd);
    return r;
}

int df_parse_args(struct ks_df_node *node, const char *rest, char escape, struct ks_error **err)
{
    struct df_list args = {0};
    int r = 0;
    switch (node->instr) {
    case KS_DF_ADD:
    case KS_DF_COPY:
    case KS_DF_VOLUME:
        r = parse_maybe_json(node, rest, true, &args, err);
        break;
    case KS_DF_CMD:
    case KS_DF_ENTRYPOINT:
    case KS_DF_RUN:
    case KS_DF_SHELL:
        r = parse_maybe_json(node, rest, false, &args, err);
        break;
    case KS_DF_ARG:
        parse_words(rest, escape, &args);
        break;
    case KS_DF_ENV:
    case KS_DF_LABEL:
        r = parse_name_val(node, rest, escape, &args, err);
        break;
    case KS_DF_EXPOSE:
    case KS_DF_FROM:
        if (rest[0] != '\0')
            split_ws(rest, 0, &args);
        break;
    case KS_DF_HEALTHCHECK:
        r = parse_healthcheck(node, rest, &args, err);
        break;
    case KS_DF_MAINTAINER:
    case KS_DF_STOPSIGNAL:
    case KS_DF_USER:
    case KS_DF_WORKDIR:
        if (rest[0] != '\0')
            list_adds(&args, rest);
        break;
    case KS_DF_ONBUILD:
        break; /* the caller parses the instruction inside */
    case KS_DF_UNKNOWN:
    case _KS_DF_INSTR_MAX:
        /* BuildKit keeps an unknown instruction with one empty argument */
        list_adds(&args, "");
        break;
    }
    if (r >= 0 && args.oom)
        r = ks_error_set(err, ENOMEM, "parsing arguments");
    if (r < 0) {
        df_list_free(&args);
        return r;
    }
    node->args = args.v;
    node->arg_lens = args.lens;
    node->n_args = args.n;
    return 0;
}
