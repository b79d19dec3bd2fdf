/* The Dockerfile parser (dockerfile.h): lines, parser directives, continuations, comments and
 * heredocs, as BuildKit's parser.Parse reads them. The arguments of each instruction are split
 * in dockerfile_args.c. */
#include "dockerfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../base/fs.h"
#include "dockerfile_internal.h"

static const char *const instr_names[_KS_DF_INSTR_MAX] = {
    [KS_DF_ADD] = "add",
    [KS_DF_ARG] = "arg",
    [KS_DF_CMD] = "cmd",
    [KS_DF_COPY] = "copy",
    [KS_DF_ENTRYPOINT] = "entrypoint",
    [KS_DF_ENV] = "env",
    [KS_DF_EXPOSE] = "expose",
    [KS_DF_FROM] = "from",
    [KS_DF_HEALTHCHECK] = "healthcheck",
    [KS_DF_LABEL] = "label",
    [KS_DF_MAINTAINER] = "maintainer",
    [KS_DF_ONBUILD] = "onbuild",
    [KS_DF_RUN] = "run",
    [KS_DF_SHELL] = "shell",
    [KS_DF_STOPSIGNAL] = "stopsignal",
    [KS_DF_USER] = "user",
    [KS_DF_VOLUME] = "volume",
    [KS_DF_WORKDIR] = "workdir",
};

const char *ks_df_instr_name(enum ks_df_instr i)
{
    return i > KS_DF_UNKNOWN && i < _KS_DF_INSTR_MAX ? instr_names[i] : NULL;
}

enum ks_df_instr ks_df_instr_from_name(const char *name)
{
    for (int i = KS_DF_UNKNOWN + 1; i < _KS_DF_INSTR_MAX; i++)
        if (strcasecmp(name, instr_names[i]) == 0)
            return (enum ks_df_instr)i;
    return KS_DF_UNKNOWN;
}

struct directives {
    bool done;
    bool seen[3];
    char escape;
    char *values[3];
};

enum { DIR_SYNTAX, DIR_ESCAPE, DIR_CHECK };
static const char *const directive_names[] = {
    [DIR_SYNTAX] = "syntax", [DIR_ESCAPE] = "escape", [DIR_CHECK] = "check"};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* A parser directive, "# key=value", while no other line has been seen. The grammar is
 * BuildKit's: ^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$ */
static int directive(struct directives *d, const char *line, struct ks_error **err)
{
    if (d->done)
        return 0;
    const char *p = line;
    d->done = true; /* until proven to be a directive */
    if (*p++ != '#')
        return 0;
    while (is_blank(*p))
        p++;
    const char *k = p;
    if (!((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z'))
        return 0;
    while (((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9'))
        p++;
    size_t klen = (size_t)(p - k);
    while (is_blank(*p))
        p++;
    if (*p++ != '=')
        return 0;
    const char *blanks = p;
    while (is_blank(*p))
        p++;
    const char *v = p;
    size_t vlen = strlen(v);
    if (vlen == 0) {
        if (p == blanks)
            return 0;
        v = p - 1, vlen = 1; /* (.+?) takes the last blank */
    }
    while (vlen > 1 && is_blank(v[vlen - 1]))
        vlen--;
    int which = -1;
    for (int i = 0; i < 3; i++)
        if (strlen(directive_names[i]) == klen && strncasecmp(k, directive_names[i], klen) == 0)
            which = i;
    if (which < 0)
        return 0;
    d->done = false;
    if (d->seen[which])
        return ks_error_msg(err, "only one %s parser directive can be used",
                            directive_names[which]);
    d->seen[which] = true;
    d->values[which] = strndup(v, vlen);
    if (d->values[which] == NULL)
        return ks_error_set(err, ENOMEM, "directive");
    if (which == DIR_ESCAPE) {
        if (vlen != 1 || (v[0] != '\\' && v[0] != '`'))
            return ks_error_msg(err, "invalid escape token '%s' does not match ` or \\",
                                d->values[which]);
        d->escape = v[0];
    }
    return 0;
}

/* Length of the Unicode white space that ends s[0..n), 0 when none. */
static size_t space_suffix(const char *s, size_t n)
{
    for (size_t w = 1; w <= 3 && w <= n; w++) {
        uint32_t cp;
        if (ks_utf8_decode(s + n - w, w, &cp) == w && (w > 1 || cp != KS_RUNE_ERROR) &&
            ks_uni_is_space(cp))
            return w;
    }
    return 0;
}

/* strings.TrimSpace: [*start, *start + *len) is s without Unicode white space at its ends. */
static void trim_space(const char *s, size_t *ret_start, size_t *ret_len)
{
    size_t n = strlen(s), a = 0, w;
    while (a < n && (w = ks_utf8_space_len(s + a, n - a)) > 0)
        a += w;
    while (n > a && (w = space_suffix(s + a, n - a)) > 0)
        n -= w;
    *ret_start = a;
    *ret_len = n - a;
}

static const char *skip_left_space(const char *s)
{
    size_t n = strlen(s), w;
    while ((w = ks_utf8_space_len(s, n)) > 0)
        s += w, n -= w;
    return s;
}

static bool is_comment(const char *line)
{
    return *skip_left_space(line) == '#';
}

/* Removes a line-continuation escape: the escape character at the end of the line (blanks may
 * follow), unless it is itself escaped. Returns true when the line continues. */
static bool trim_continuation(char *line, char escape)
{
    size_t n = strlen(line);
    while (n > 0 && is_blank(line[n - 1]))
        n--;
    if (n == 0 || line[n - 1] != escape || (n >= 2 && line[n - 2] == escape))
        return false;
    line[n - 1] = '\0';
    return true;
}

static void node_free_fields(struct ks_df_node *n)
{
    free(n->cmd);
    ks_strv_free(n->flags);
    for (size_t i = 0; i < n->n_args; i++)
        free(n->args[i]);
    free(n->args);
    free(n->arg_lens);
    for (size_t i = 0; i < n->n_heredocs; i++) {
        free(n->heredocs[i].name);
        free(n->heredocs[i].content);
    }
    free(n->heredocs);
    free(n->original);
}

static void node_free(struct ks_df_node *n)
{
    /* ONBUILD's chain, freed from the top without recursion */
    struct ks_df_node *sub = n->sub;
    node_free_fields(n);
    while (sub) {
        struct ks_df_node *next = sub->sub;
        node_free_fields(sub);
        free(sub);
        sub = next;
    }
}

void ks_dockerfile_free(struct ks_dockerfile *df)
{
    if (df == NULL)
        return;
    for (size_t i = 0; i < df->n_nodes; i++)
        node_free(&df->nodes[i]);
    free(df->nodes);
    free(df->syntax);
    free(df->check);
    ks_strv_free(df->warnings);
    free(df);
}

/* One instruction (and, for ONBUILD, the instructions inside it) from a logical line. */
static int node_from_line(struct ks_df_node *node, const char *line, char escape,
                          struct ks_error **err)
{
    struct ks_df_node *cur = node;
    _cleanup_free_ char *text = strdup(line);
    if (text == NULL)
        return ks_error_set(err, ENOMEM, "parsing");
    for (unsigned depth = 0;; depth++) {
        size_t a, n;
        trim_space(text, &a, &n);
        text[a + n] = '\0';
        const char *t = text + a;
        size_t clen = strcspn(t, "\t\v\f\r ");
        cur->cmd = strndup(t, clen);
        cur->original = strdup(t);
        if (cur->cmd == NULL || cur->original == NULL)
            return ks_error_set(err, ENOMEM, "parsing");
        cur->instr = ks_df_instr_from_name(cur->cmd);
        const char *rest = "";
        struct df_list flags = {0};
        if (t[clen] != '\0') {
            if (df_extract_flags(t + clen + strspn(t + clen, "\t\v\f\r "), &flags, &rest) < 0) {
                df_list_free(&flags);
                return ks_error_set(err, ENOMEM, "parsing flags");
            }
        }
        if (flags.n) {
            cur->flags = flags.v;
            cur->n_flags = flags.n;
            free(flags.lens);
        }
        trim_space(rest, &a, &n);
        _cleanup_free_ char *args = strndup(rest + a, n);
        if (args == NULL)
            return ks_error_set(err, ENOMEM, "parsing");
        if (cur->instr != KS_DF_ONBUILD)
            return df_parse_args(cur, args, escape, err);
        if (args[0] == '\0')
            return 0;
        if (depth + 1 >= KS_DOCKERFILE_MAX_ONBUILD)
            return ks_error_msg(err, "ONBUILD nested more than %d deep", KS_DOCKERFILE_MAX_ONBUILD);
        cur->sub = calloc(1, sizeof(*cur->sub));
        if (cur->sub == NULL)
            return ks_error_set(err, ENOMEM, "parsing");
        cur = cur->sub;
        free(text);
        text = TAKE_PTR(args);
    }
}

static bool can_contain_heredoc(const struct ks_df_node *n)
{
    if (n->instr == KS_DF_ONBUILD && n->sub)
        n = n->sub;
    return (n->instr == KS_DF_ADD || n->instr == KS_DF_COPY || n->instr == KS_DF_RUN) && !n->json;
}

struct lines {
    char *buf; /* the file, each '\n' replaced by NUL as lines are taken */
    size_t len, pos;
    unsigned taken;
};

/* The next line as bufio.ScanLines gives it (without "\n" and one "\r"); NULL at the end. */
static char *next_line(struct lines *l)
{
    if (l->pos >= l->len)
        return NULL;
    char *s = l->buf + l->pos;
    char *nl = memchr(s, '\n', l->len - l->pos);
    size_t n = nl ? (size_t)(nl - s) : l->len - l->pos;
    s[n] = '\0';
    l->pos += n + 1;
    if (n > 0 && s[n - 1] == '\r')
        s[n - 1] = '\0';
    if (l->taken++ == 0 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
        (unsigned char)s[2] == 0xBF)
        s += 3; /* byte-order mark */
    return s;
}

/* Go's trimNewline: trailing "\r" and "\n" characters. */
static void trim_newline(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
}

struct parser {
    struct lines lines;
    struct directives d;
    struct ks_dockerfile *df;
    size_t cap_nodes;
    unsigned line; /* lines read so far */
    struct df_list warnings;
};

static int read_heredocs(struct parser *p, struct ks_df_node *node, const char *line,
                         struct ks_error **err)
{
    int r = df_heredocs_from_line(line, &node->heredocs, &node->n_heredocs, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < node->n_heredocs; i++) {
        struct ks_df_heredoc *h = &node->heredocs[i];
        struct ks_tbuf content = {0};
        bool terminated = false;
        for (char *s; !terminated && (s = next_line(&p->lines));) {
            p->line++;
            _cleanup_free_ char *t = strdup(s);
            if (t == NULL) {
                ks_tbuf_free(&content);
                return ks_error_set(err, ENOMEM, "heredoc");
            }
            trim_newline(t);
            const char *cand = t;
            if (h->chomp)
                cand += strspn(cand, "\t");
            if (strcmp(cand, h->name) == 0) {
                terminated = true;
                break;
            }
            ks_tbuf_adds(&content, s);
            ks_tbuf_addc(&content, '\n');
        }
        if (!terminated) {
            ks_tbuf_free(&content);
            return ks_error_msg(err, "unterminated heredoc");
        }
        h->content = ks_tbuf_take(&content);
        if (h->content == NULL)
            return ks_error_set(err, ENOMEM, "heredoc");
    }
    return 0;
}

static struct ks_df_node *new_node(struct parser *p, struct ks_error **err)
{
    struct ks_dockerfile *df = p->df;
    if (df->n_nodes >= KS_DOCKERFILE_MAX_NODES) {
        ks_error_msg(err, "more than %d instructions", KS_DOCKERFILE_MAX_NODES);
        return NULL;
    }
    if (df->n_nodes == p->cap_nodes) {
        size_t cap = p->cap_nodes ? p->cap_nodes * 2 : 16;
        struct ks_df_node *v = realloc(df->nodes, cap * sizeof(*v));
        if (v == NULL) {
            ks_error_set(err, ENOMEM, "parsing");
            return NULL;
        }
        df->nodes = v;
        p->cap_nodes = cap;
    }
    struct ks_df_node *n = &df->nodes[df->n_nodes++];
    *n = (struct ks_df_node){0};
    return n;
}

/* The rest of a logical line after its first physical line (a continuation). */
static int continue_line(struct parser *p, struct ks_tbuf *line, bool *warn, struct ks_error **err)
{
    for (char *s; (s = next_line(&p->lines));) {
        trim_newline(s);
        int r = directive(&p->d, s, err);
        if (r < 0)
            return r;
        p->line++;
        if (is_comment(s))
            continue;
        if (*skip_left_space(s) == '\0') {
            *warn = true;
            continue;
        }
        bool more = trim_continuation(s, p->d.escape);
        ks_tbuf_adds(line, s);
        if (line->len > KS_DOCKERFILE_MAX_LINE)
            return ks_error_msg(err, "line longer than %u bytes", KS_DOCKERFILE_MAX_LINE);
        if (!more)
            break;
    }
    return 0;
}

/* One instruction; *ret_done when the file has no more. */
static int parse_one(struct parser *p, bool *ret_done, unsigned *ret_start, struct ks_error **err)
{
    char *s = next_line(&p->lines);
    if (s == NULL) {
        *ret_done = true;
        return 0;
    }
    trim_newline(s);
    s = (char *)skip_left_space(s);
    int r = directive(&p->d, s, err);
    *ret_start = p->line + 1;
    if (r < 0)
        return r;
    p->line++;
    if (is_comment(s))
        s[0] = '\0';
    bool more = trim_continuation(s, p->d.escape);
    if (!more && s[0] == '\0')
        return 0;
    struct ks_tbuf line = {0};
    ks_tbuf_adds(&line, s);
    bool warn = false;
    if (more)
        r = continue_line(p, &line, &warn, err);
    _cleanup_free_ char *text = ks_tbuf_take(&line);
    if (r < 0)
        return r;
    if (text == NULL)
        return ks_error_set(err, ENOMEM, "parsing");
    if (warn) {
        _cleanup_free_ char *w = NULL;
        if (asprintf(&w, "line %u: empty continuation line found in: %s", p->line, text) < 0)
            return ks_error_set(err, ENOMEM, "parsing");
        df_list_add(&p->warnings, w, strlen(w));
    }
    struct ks_df_node *node = new_node(p, err);
    if (node == NULL)
        return -EINVAL;
    node->start_line = (int)*ret_start;
    r = node_from_line(node, text, p->d.escape, err);
    if (r >= 0 && can_contain_heredoc(node) && strstr(text, "<<"))
        r = read_heredocs(p, node, text, err);
    node->end_line = (int)p->line;
    return r;
}

static int parse(struct parser *p, struct ks_error **err)
{
    for (bool done = false;;) {
        unsigned start = p->line + 1;
        int r = parse_one(p, &done, &start, err);
        if (r < 0)
            return ks_error_wrap(err, "dockerfile parse error on line %u", start);
        if (done)
            break;
    }
    if (p->df->n_nodes == 0)
        return ks_error_msg(err, "dockerfile parse error on line %u: file with no instructions",
                            p->line ? p->line : 1);
    return 0;
}

int ks_dockerfile_parse(const char *data, size_t len, struct ks_dockerfile **ret,
                        struct ks_error **err)
{
    if (len > KS_DOCKERFILE_MAX_SIZE)
        return ks_error_msg(err, "Dockerfile larger than %u bytes", KS_DOCKERFILE_MAX_SIZE);
    const char *nul = memchr(data, '\0', len);
    if (nul) {
        unsigned line = 1;
        for (const char *c = data; c < nul; c++)
            line += *c == '\n';
        return ks_error_msg(err, "dockerfile parse error on line %u: NUL byte in Dockerfile", line);
    }
    struct parser p = {.d = {.escape = '\\'}};
    p.lines.buf = malloc(len + 4);
    p.df = calloc(1, sizeof(*p.df));
    if (p.lines.buf == NULL || p.df == NULL) {
        free(p.lines.buf);
        free(p.df);
        return ks_error_set(err, ENOMEM, "parsing the Dockerfile");
    }
    memcpy(p.lines.buf, data, len);
    memset(p.lines.buf + len, 0, 4);
    p.lines.len = len;
    int r = parse(&p, err);
    free(p.lines.buf);
    p.df->escape = p.d.escape;
    p.df->syntax = p.d.values[DIR_SYNTAX];
    p.df->check = p.d.values[DIR_CHECK];
    free(p.d.values[DIR_ESCAPE]);
    p.df->warnings = p.warnings.v;
    free(p.warnings.lens);
    if (r >= 0 && p.warnings.oom)
        r = ks_error_set(err, ENOMEM, "parsing the Dockerfile");
    if (r < 0) {
        ks_dockerfile_free(p.df);
        return r;
    }
    *ret = p.df;
    return 0;
}
