/* Heredocs on a Dockerfile line (RUN <<EOF, COPY <<-"EOF" /x …) and the parse tree's dump. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../base/fs.h"
#include "dockerfile_internal.h"
#include "shell_words.h"

static size_t count_quotes(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\'' || *s == '"';
    return n;
}

/* One word against BuildKit's ^(\d*)<<(-?)([^<]*)$; *ret_name is NULL when it is not a
 * heredoc. */
static int parse_heredoc(const char *word, struct ks_df_heredoc *h, struct ks_error **err)
{
    const char *p = word + strspn(word, "0123456789");
    if (strncmp(p, "<<", 2) != 0)
        return 0;
    unsigned long fd = 0;
    for (const char *d = word; d < p; d++)
        fd = fd < 100000 ? fd * 10 + (unsigned long)(*d - '0') : fd;
    p += 2;
    bool chomp = *p == '-';
    p += chomp;
    if (*p == '\0' || strchr(p, '<'))
        return 0;
    /* The delimiter is quoted when removing the quotes changes it: its content is then taken
     * as it is, without expansion. */
    struct ks_shell_lexer lx = {.escape = '\\', .skip_unset = true};
    _cleanup_strv_ char **words = NULL, **raw = NULL;
    int r = ks_shell_expand_words(&lx, p, NULL, NULL, &words, err);
    if (r < 0)
        return r;
    if (ks_strv_len(words) != 1)
        return 0;
    lx.raw_quotes = true;
    r = ks_shell_expand_words(&lx, p, NULL, NULL, &raw, err);
    if (r < 0)
        return r;
    if (ks_strv_len(raw) != 1)
        return ks_error_msg(err, "internal lexing of heredoc produced inconsistent results: %s", p);
    h->name = strdup(words[0]);
    if (h->name == NULL)
        return ks_error_set(err, ENOMEM, "heredoc");
    h->expand = count_quotes(words[0]) == count_quotes(raw[0]);
    h->chomp = chomp;
    h->fd = (unsigned)fd;
    return 1;
}

int df_heredocs_from_line(const char *line, struct ks_df_heredoc **ret, size_t *ret_n,
                          struct ks_error **err)
{
    struct ks_shell_lexer lx = {.escape = '\\', .raw_quotes = true, .raw_escapes = true};
    _cleanup_strv_ char **words = NULL;
    _cleanup_error_ struct ks_error *ignored = NULL;
    if (ks_shell_expand_words(&lx, line, NULL, NULL, &words, &ignored) < 0)
        return 0; /* a line the lexer refuses has no heredocs */
    struct ks_df_heredoc *v = NULL;
    size_t n = 0;
    for (size_t i = 0; words[i]; i++) {
        struct ks_df_heredoc h = {0};
        int r = parse_heredoc(words[i], &h, err);
        if (r > 0 && n >= KS_DOCKERFILE_MAX_HEREDOCS) {
            free(h.name);
            r = ks_error_msg(err, "more than %d heredocs on one line", KS_DOCKERFILE_MAX_HEREDOCS);
        }
        if (r > 0) {
            struct ks_df_heredoc *nv = realloc(v, (n + 1) * sizeof(*v));
            if (nv == NULL) {
                free(h.name);
                r = ks_error_set(err, ENOMEM, "heredoc");
            } else {
                v = nv;
                v[n++] = h;
            }
        }
        if (r < 0) {
            for (size_t j = 0; j < n; j++)
                free(v[j].name);
            free(v);
            return r;
        }
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

char *ks_df_heredoc_chomp(const char *content)
{
    struct ks_tbuf b = {0};
    for (const char *s = content; *s;) {
        s += strspn(s, "\t");
        size_t n = strcspn(s, "\n");
        ks_tbuf_add(&b, s, n + (s[n] == '\n'));
        s += n + (s[n] == '\n');
    }
    return ks_tbuf_take(&b);
}

/* One instruction's own part of the dump: name, flags, arguments. */
static void dump_level(struct ks_tbuf *b, const struct ks_df_node *n)
{
    struct ks_tbuf t = {0};
    for (const char *c = n->cmd; *c; c++)
        ks_tbuf_addc(&t, *c >= 'A' && *c <= 'Z' ? (char)(*c | 0x20) : *c);
    if (n->n_flags) {
        ks_tbuf_adds(&t, " [");
        for (size_t i = 0; i < n->n_flags; i++) {
            if (i)
                ks_tbuf_addc(&t, ' ');
            ks_tbuf_add_go_quoted(&t, n->flags[i], strlen(n->flags[i]));
        }
        ks_tbuf_addc(&t, ']');
    }
    for (size_t i = 0; i < n->n_args; i++) {
        ks_tbuf_addc(&t, ' ');
        ks_tbuf_add_go_quoted(&t, n->args[i], n->arg_lens[i]);
    }
    /* Go's Dump trims the string: an empty name loses the space after it */
    const char *s = t.s ? t.s : "";
    ks_tbuf_adds(b, s + (n->cmd[0] == '\0' ? strspn(s, " ") : 0));
    b->oom |= t.oom;
    ks_tbuf_free(&t);
}

char *ks_dockerfile_dump(const struct ks_dockerfile *df)
{
    struct ks_tbuf b = {0};
    for (size_t i = 0; i < df->n_nodes; i++) {
        ks_tbuf_addc(&b, '(');
        size_t depth = 0;
        for (const struct ks_df_node *n = &df->nodes[i]; n; n = n->sub, depth++) {
            if (depth)
                ks_tbuf_adds(&b, " (");
            dump_level(&b, n);
        }
        for (size_t d = 0; d < depth; d++)
            ks_tbuf_addc(&b, ')');
        ks_tbuf_addc(&b, '\n');
    }
    return ks_tbuf_take(&b);
}
