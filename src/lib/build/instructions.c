/* Checking a Dockerfile's instructions (instructions.h). */
#include "instructions.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The flags each instruction accepts (BuildKit's BFlags per instruction). */
static const char *const *const allowed_flags[_KS_DF_INSTR_MAX] = {
    [KS_DF_FROM] = (const char *const[]){"platform", NULL},
    [KS_DF_RUN] = (const char *const[]){"mount", "network", "security", "device", NULL},
    [KS_DF_COPY] =
        (const char *const[]){"from", "chown", "chmod", "link", "parents", "exclude", NULL},
    [KS_DF_ADD] = (const char *const[]){"chown", "chmod", "link", "keep-git-dir", "checksum",
                                        "exclude", "unpack", NULL},
    [KS_DF_HEALTHCHECK] = (const char *const[]){"interval", "timeout", "start-period",
                                                "start-interval", "retries", NULL},
};

const char *ks_df_flag(const struct ks_df_node *n, const char *name)
{
    const char *found = NULL;
    size_t len = strlen(name);
    for (size_t i = 0; i < n->n_flags; i++) {
        const char *f = n->flags[i];
        if (strncmp(f, "--", 2) != 0 || strncmp(f + 2, name, len) != 0)
            continue;
        if (f[2 + len] == '=')
            found = f + 3 + len;
        else if (f[2 + len] == '\0')
            found = "";
    }
    return found;
}

static int check_flags(const struct ks_df_node *n, const char *upper, struct ks_error **err)
{
    const char *const *ok = allowed_flags[n->instr];
    for (size_t i = 0; i < n->n_flags; i++) {
        const char *f = n->flags[i];
        if (strncmp(f, "--", 2) != 0)
            return ks_error_msg(err, "flag \"%s\" must start with --", f);
        size_t len = strcspn(f + 2, "=");
        bool known = false;
        for (size_t k = 0; ok && ok[k] && !known; k++)
            known = strlen(ok[k]) == len && strncmp(ok[k], f + 2, len) == 0;
        if (!known)
            return ks_error_msg(err, "unknown flag: %.*s (%s)", (int)len + 2, f, upper);
    }
    return 0;
}

int ks_df_parse_duration(const char *s, int64_t *ret_ns)
{
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"ns", 1},   {"us", 1e3}, {"\xC2\xB5s", 1e3}, {"\xCE\xBCs", 1e3},
                 {"ms", 1e6}, {"s", 1e9},  {"m", 60e9},        {"h", 3600e9}};
    const char *p = s;
    bool neg = *p == '-';
    p += *p == '-' || *p == '+';
    if (strcmp(p, "0") == 0) {
        *ret_ns = 0;
        return 0;
    }
    if (*p == '\0')
        return -EINVAL;
    double total = 0;
    while (*p) {
        char *end;
        if (!(*p >= '0' && *p <= '9') && *p != '.')
            return -EINVAL;
        double v = strtod(p, &end);
        if (end == p)
            return -EINVAL;
        p = end;
        size_t best = 0, best_len = 0;
        for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
            size_t l = strlen(units[u].unit);
            if (strncmp(p, units[u].unit, l) == 0 && l > best_len)
                best = u, best_len = l;
        }
        if (best_len == 0)
            return -EINVAL; /* a number needs its unit */
        total += v * units[best].ns;
        if (total > 9.2e18)
            return -ERANGE;
        p += best_len;
    }
    *ret_ns = (int64_t)(neg ? -total : total);
    return 0;
}

static int check_healthcheck(const struct ks_df_node *n, struct ks_error **err)
{
    if (n->n_args == 0)
        return ks_error_msg(err, "HEALTHCHECK requires an argument");
    const char *type = n->args[0];
    if (strcasecmp(type, "NONE") == 0) {
        if (n->n_args > 1 || n->n_flags)
            return ks_error_msg(err, "HEALTHCHECK NONE takes no arguments");
        return 0;
    }
    if (strcasecmp(type, "CMD") != 0)
        return ks_error_msg(err, "Unknown type \"%s\" in HEALTHCHECK (try CMD)", type);
    if (n->n_args < 2 || (n->n_args == 2 && !n->json && n->args[1][0] == '\0'))
        return ks_error_msg(err, "Missing command after HEALTHCHECK CMD");
    static const char *const durations[] = {"interval", "timeout", "start-period",
                                            "start-interval"};
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        const char *v = ks_df_flag(n, durations[i]);
        int64_t ns;
        if (v == NULL)
            continue;
        if (ks_df_parse_duration(v, &ns) < 0)
            return ks_error_msg(err, "invalid duration for --%s: \"%s\"", durations[i], v);
        if (ns != 0 && ns < 1000000)
            return ks_error_msg(err, "--%s cannot be less than 1ms", durations[i]);
        if (ns < 0)
            return ks_error_msg(err, "--%s cannot be negative", durations[i]);
    }
    const char *r = ks_df_flag(n, "retries");
    if (r) {
        char *end;
        long v = strtol(r, &end, 10);
        if (*r == '\0' || *end != '\0')
            return ks_error_msg(err, "invalid --retries: \"%s\"", r);
        if (v < 0)
            return ks_error_msg(err, "--retries cannot be negative (%ld)", v);
    }
    return 0;
}

/* BuildKit's stage names: ^[a-z][a-z0-9-_\.]*$ after lower-casing. */
static bool valid_stage_name(const char *s)
{
    if (!(*s >= 'a' && *s <= 'z'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || strchr("-_.", *s)))
            return false;
    return true;
}

static int check_args(const struct ks_df_node *n, const char *upper, struct ks_error **err)
{
    switch (n->instr) {
    case KS_DF_RUN:
    case KS_DF_SHELL:
        if (n->n_args == 0)
            return ks_error_msg(err, "%s requires at least one argument", upper);
        if (n->instr == KS_DF_SHELL && !n->json)
            return ks_error_msg(err, "SHELL requires the arguments to be in JSON form");
        return 0;
    case KS_DF_ENV:
    case KS_DF_LABEL:
        if (n->n_args == 0)
            return ks_error_msg(err, "%s requires at least one argument", upper);
        for (size_t i = 0; i + 2 < n->n_args; i += 3)
            if (n->args[i][0] == '\0')
                return ks_error_msg(err, "%s names can not be blank", upper);
        return 0;
    case KS_DF_ARG:
        if (n->n_args == 0)
            return ks_error_msg(err, "ARG requires at least one argument");
        for (size_t i = 0; i < n->n_args; i++)
            if (n->args[i][0] == '=' || n->args[i][0] == '\0')
                return ks_error_msg(err, "ARG names can not be blank");
        return 0;
    case KS_DF_EXPOSE:
    case KS_DF_VOLUME:
        if (n->n_args == 0)
            return ks_error_msg(err, "%s requires at least one argument", upper);
        for (size_t i = 0; n->instr == KS_DF_VOLUME && i < n->n_args; i++)
            if (n->args[i][0] == '\0')
                return ks_error_msg(err, "VOLUME specified can not be an empty string");
        return 0;
    case KS_DF_WORKDIR:
    case KS_DF_USER:
    case KS_DF_MAINTAINER:
    case KS_DF_STOPSIGNAL:
        if (n->n_args != 1)
            return ks_error_msg(err, "%s requires exactly one argument", upper);
        return 0;
    case KS_DF_ADD:
    case KS_DF_COPY:
        if (n->n_args + n->n_heredocs < 2)
            return ks_error_msg(err,
                                "%s requires at least two arguments, but only one was "
                                "provided. Destination could not be determined",
                                upper);
        return 0;
    case KS_DF_HEALTHCHECK:
        return check_healthcheck(n, err);
    case KS_DF_FROM:
        if (n->n_args != 1 && n->n_args != 3)
            return ks_error_msg(err, "FROM requires either one or three arguments");
        if (n->n_args == 3 && strcasecmp(n->args[1], "AS") != 0)
            return ks_error_msg(err, "when using FROM with 3 arguments, second argument must "
                                     "be \"AS\"");
        return 0;
    default:
        return 0;
    }
}

static int check_node(const struct ks_df_node *n, struct ks_error **err)
{
    char upper[32] = "";
    for (size_t i = 0; n->cmd[i] && i + 1 < sizeof(upper); i++)
        upper[i] = (char)(n->cmd[i] >= 'a' && n->cmd[i] <= 'z' ? n->cmd[i] - 32 : n->cmd[i]);
    if (n->instr == KS_DF_UNKNOWN)
        return ks_error_msg(err, "unknown instruction: %s", n->cmd);
    if (n->instr == KS_DF_ONBUILD) {
        if (n->n_flags)
            return ks_error_msg(err, "ONBUILD does not take flags");
        if (n->sub == NULL)
            return ks_error_msg(err, "ONBUILD requires at least one argument");
        const struct ks_df_node *t = n->sub;
        if (t->instr == KS_DF_ONBUILD)
            return ks_error_msg(err, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
        if (t->instr == KS_DF_FROM || t->instr == KS_DF_MAINTAINER)
            return ks_error_msg(err, "%s isn't allowed as an ONBUILD trigger", t->cmd);
        return check_node(t, err); /* one level: chains were refused above */
    }
    int r = check_flags(n, upper, err);
    if (r < 0)
        return r;
    return check_args(n, upper, err);
}

void ks_df_stages_clear(struct ks_df_stages *s)
{
    for (size_t i = 0; i < s->n; i++)
        free((char *)s->v[i].name);
    free(s->v);
    *s = (struct ks_df_stages){0};
}

static int add_stage(struct ks_df_stages *s, const struct ks_dockerfile *df, size_t idx,
                     struct ks_error **err)
{
    const struct ks_df_node *n = &df->nodes[idx];
    struct ks_df_stage *v = realloc(s->v, (s->n + 1) * sizeof(*v));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "stages");
    s->v = v;
    struct ks_df_stage *st = &s->v[s->n++];
    *st = (struct ks_df_stage){
        .base = n->args[0], .platform = ks_df_flag(n, "platform"), .from = idx, .end = df->n_nodes};
    if (s->n > 1)
        s->v[s->n - 2].end = idx;
    if (n->n_args == 3) {
        char *name = strdup(n->args[2]);
        if (name == NULL)
            return ks_error_set(err, ENOMEM, "stages");
        for (char *c = name; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c | 0x20 : *c);
        st->name = name;
        if (!valid_stage_name(name))
            return ks_error_msg(err,
                                "invalid name for build stage: \"%s\", name can't start with a "
                                "number or contain symbols",
                                n->args[2]);
        for (size_t i = 0; i + 1 < s->n; i++)
            if (s->v[i].name && strcmp(s->v[i].name, name) == 0)
                return ks_error_msg(err, "duplicate stage name \"%s\"", name);
    }
    return 0;
}

int ks_df_check(const struct ks_dockerfile *df, struct ks_df_stages *ret, struct ks_error **err)
{
    struct ks_df_stages s = {0};
    int r = 0;
    for (size_t i = 0; i < df->n_nodes && r >= 0; i++) {
        const struct ks_df_node *n = &df->nodes[i];
        r = check_node(n, err);
        if (r >= 0 && n->instr == KS_DF_FROM)
            r = add_stage(&s, df, i, err);
        else if (r >= 0 && s.n == 0 && n->instr != KS_DF_ARG)
            r = ks_error_msg(err, "no build stage in current context: %s before the first FROM",
                             n->cmd);
        else if (r >= 0 && s.n == 0)
            s.n_global = i + 1;
        if (r < 0)
            ks_error_wrap(err, "dockerfile parse error on line %d", n->start_line);
    }
    if (r >= 0 && s.n == 0)
        r = ks_error_msg(err, "dockerfile parse error on line %d: the Dockerfile has no FROM",
                         df->n_nodes ? df->nodes[df->n_nodes - 1].end_line : 1);
    if (r < 0) {
        ks_df_stages_clear(&s);
        return r;
    }
    *ret = s;
    return 0;
}
