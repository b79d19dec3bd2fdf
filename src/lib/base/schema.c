#include "schema.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct ks_schema_field ks_schema_elem_string = {.kind = KS_SCHEMA_STRING};

/* ---- paths and errors ---- */

const char *ks_schema_quote(char *buf, size_t size, const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n < len && n + 4 <= size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static void path_appendf(struct ks_schema_path *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void path_appendf(struct ks_schema_path *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->buf + p->len, sizeof(p->buf) - p->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    p->len += (size_t)n;
    if (p->len >= sizeof(p->buf))
        p->len = sizeof(p->buf) - 1;
}

size_t ks_schema_push_key(struct ks_schema_path *p, const char *key)
{
    size_t old = p->len;
    path_appendf(p, "%s%s", p->len ? "." : "", key);
    return old;
}

size_t ks_schema_push_index(struct ks_schema_path *p, size_t i)
{
    size_t old = p->len;
    path_appendf(p, "[%zu]", i);
    return old;
}

size_t ks_schema_push_map_key(struct ks_schema_path *p, const char *key)
{
    size_t old = p->len;
    char q[80];
    path_appendf(p, "[\"%s\"]", ks_schema_quote(q, sizeof(q), key, strlen(key)));
    return old;
}

void ks_schema_pop(struct ks_schema_path *p, size_t old)
{
    p->len = old;
    p->buf[old] = '\0';
}

int ks_schema_fail_errno(struct ks_error **err, int errnum, const struct ks_schema_path *p,
                         const char *fmt, ...)
{
    _cleanup_free_ char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ks_error_set(err, ENOMEM, "%s", p->doc);
    if (p->len == 0)
        return ks_error_set_plain(err, errnum, "%s: %s", p->doc, msg);
    return ks_error_set_plain(err, errnum, "%s: %s: %s", p->doc, p->buf, msg);
}

/* ---- the walk ---- */

static int check_rule(enum ks_schema_rule rule, const struct ks_schema_format *format,
                      const char *s, size_t len, struct ks_schema_path *p, struct ks_error **err)
{
    char q[80];
    /* Strings end up in C APIs (paths, argv, env, file names): an embedded NUL would cut them. */
    if (strlen(s) != len)
        return ks_schema_fail(err, p, "contains a NUL byte");
    switch (rule) {
    case KS_RULE_ANY:
        break;
    case KS_RULE_NONEMPTY:
        if (len == 0)
            return ks_schema_fail(err, p, "must not be empty");
        break;
    case KS_RULE_ABSOLUTE_OR_EMPTY:
        if (len == 0)
            break;
        __attribute__((fallthrough));
    case KS_RULE_ABSOLUTE:
        if (s[0] != '/')
            return ks_schema_fail(err, p, "must be an absolute path, not `%s`",
                                  ks_schema_quote(q, sizeof(q), s, len));
        break;
    case KS_RULE_ENV: {
        const char *eq = strchr(s, '=');
        if (eq == NULL || eq == s)
            return ks_schema_fail(err, p, "expected KEY=VALUE, not `%s`",
                                  ks_schema_quote(q, sizeof(q), s, len));
        break;
    }
    }
    if (format && !format->valid(s, len))
        return ks_schema_fail(err, p, "invalid %s `%s`%s", format->what,
                              ks_schema_quote(q, sizeof(q), s, len),
                              format->hint ? format->hint : "");
    return 0;
}

static bool is_one_of(const char *s, const char *const *values)
{
    for (; *values; values++)
        if (strcmp(s, *values) == 0)
            return true;
    return false;
}

static int check_string(const struct ks_schema_field *f, json_object *v, struct ks_schema_path *p,
                        struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_string))
        return ks_schema_fail(err, p, "expected a string");
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    int r = check_rule(f->rule, f->format, s, len, p, err);
    if (r < 0)
        return r;
    if (f->values && !is_one_of(s, f->values)) {
        char q[80];
        if (f->what)
            return ks_schema_fail(err, p, "unknown %s `%s`", f->what,
                                  ks_schema_quote(q, sizeof(q), s, len));
        return ks_schema_fail(err, p, "unsupported value `%s`",
                              ks_schema_quote(q, sizeof(q), s, len));
    }
    return 0;
}

static int check_int(const struct ks_schema_field *f, json_object *v, struct ks_schema_path *p,
                     struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_int))
        return ks_schema_fail(err, p, "expected an integer");
    /* json-c keeps integers as int64 or, above INT64_MAX, as uint64. */
    int64_t s = json_object_get_int64(v);
    if (s < 0) {
        if (s < f->min)
            return ks_schema_fail(err, p,
                                  "%" PRId64 " is out of range (%" PRId64 " to %" PRIu64 ")", s,
                                  f->min, f->max);
    } else {
        uint64_t u = json_object_get_uint64(v);
        if (u > f->max || (f->min > 0 && u < (uint64_t)f->min))
            return ks_schema_fail(err, p,
                                  "%" PRIu64 " is out of range (%" PRId64 " to %" PRIu64 ")", u,
                                  f->min, f->max);
    }
    return 0;
}

static int check_object(const struct ks_schema_field *f, json_object *v, struct ks_schema_path *p,
                        struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_object))
        return ks_schema_fail(err, p, "expected an object");
    for (const struct ks_schema_field *m = f->fields; m && m->name; m++) {
        json_object *mv = NULL;
        size_t old = ks_schema_push_key(p, m->name);
        int r = 0;
        /* A null member counts as absent, as it does for Go's encoding/json. */
        if (!json_object_object_get_ex(v, m->name, &mv) || mv == NULL)
            r = m->required ? ks_schema_fail(err, p, "required but missing") : 0;
        else
            r = ks_schema_check(m, mv, p, err);
        ks_schema_pop(p, old);
        if (r < 0)
            return r;
    }
    if (f->closed) {
        json_object_object_foreach(v, key, val)
        {
            (void)val;
            bool known = false;
            for (const struct ks_schema_field *m = f->fields; m && m->name; m++)
                known = known || strcmp(m->name, key) == 0;
            if (!known) {
                char q[80];
                return ks_schema_fail(err, p, "unknown key `%s`",
                                      ks_schema_quote(q, sizeof(q), key, strlen(key)));
            }
        }
    }
    return 0;
}

static int check_array(const struct ks_schema_field *f, json_object *v, struct ks_schema_path *p,
                       struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_array))
        return ks_schema_fail(err, p, "expected an array");
    size_t n = json_object_array_length(v);
    if (n == 0 && f->nonempty)
        return ks_schema_fail(err, p, "must not be empty");
    if (f->max_items && n > f->max_items)
        return ks_schema_fail(err, p, "%zu entries, more than the limit of %zu", n, f->max_items);
    for (size_t i = 0; i < n; i++) {
        size_t old = ks_schema_push_index(p, i);
        int r = ks_schema_check(f->elem, json_object_array_get_idx(v, i), p, err);
        ks_schema_pop(p, old);
        if (r < 0)
            return r;
    }
    return 0;
}

static int check_map(const struct ks_schema_field *f, json_object *v, struct ks_schema_path *p,
                     struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_object))
        return ks_schema_fail(err, p, "expected an object");
    json_object_object_foreach(v, key, val)
    {
        size_t old = ks_schema_push_map_key(p, key);
        int r = check_rule(f->key_rule, f->key_format, key, strlen(key), p, err);
        if (r == 0)
            r = ks_schema_check(f->elem, val, p, err);
        ks_schema_pop(p, old);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_schema_check(const struct ks_schema_field *f, json_object *v, struct ks_schema_path *p,
                    struct ks_error **err)
{
    int r = 0;
    /* Members of arrays and maps reach here as NULL when they are JSON null. */
    if (v == NULL)
        return ks_schema_fail(err, p, "unexpected null");
    switch (f->kind) {
    case KS_SCHEMA_STRING:
        r = check_string(f, v, p, err);
        break;
    case KS_SCHEMA_BOOL:
        if (!json_object_is_type(v, json_type_boolean))
            r = ks_schema_fail(err, p, "expected a boolean");
        break;
    case KS_SCHEMA_INT:
        r = check_int(f, v, p, err);
        break;
    case KS_SCHEMA_OBJECT:
        r = check_object(f, v, p, err);
        break;
    case KS_SCHEMA_ARRAY:
        r = check_array(f, v, p, err);
        break;
    case KS_SCHEMA_MAP:
        r = check_map(f, v, p, err);
        break;
    }
    if (r < 0)
        return r;
    return f->check ? f->check(v, p, err) : 0;
}
