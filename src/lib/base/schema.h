/* A table-driven JSON schema walker for untrusted documents (config.json, image manifests and
 * configs). The schema is a tree of field descriptions, walked once over the document. Each
 * entry says what JSON type a member must have and, where the format says more (allowed values,
 * ranges, string syntax), what else to check; checks that look across fields are hooks. Every
 * message starts with the document's name and the JSON path of the offending value. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "error.h"

enum ks_schema_kind {
    KS_SCHEMA_STRING = 1,
    KS_SCHEMA_BOOL,
    KS_SCHEMA_INT,
    KS_SCHEMA_OBJECT, /* members described by .fields; other keys are ignored unless .closed */
    KS_SCHEMA_ARRAY,  /* every member described by .elem */
    KS_SCHEMA_MAP,    /* arbitrary keys (checked by .key_rule), every value described by .elem */
};

/* The string rules both formats share; anything more specific is a struct ks_schema_format. */
enum ks_schema_rule {
    KS_RULE_ANY = 0,
    KS_RULE_NONEMPTY,
    KS_RULE_ABSOLUTE,
    KS_RULE_ABSOLUTE_OR_EMPTY,
    KS_RULE_ENV, /* KEY=VALUE with a non-empty KEY */
};

/* A string syntax of a module's own: a failing value is reported as "invalid <what> `<value>`"
 * followed by hint (" (... expected)", or ""). */
struct ks_schema_format {
    bool (*valid)(const char *s, size_t len);
    const char *what;
    const char *hint;
};

/* The JSON path of the value being checked, for error messages. Long keys are truncated. */
struct ks_schema_path {
    const char *doc; /* "config.json", "manifest", "image config": the first word of messages */
    char buf[512];
    size_t len;
};

typedef int (*ks_schema_check_fn)(json_object *v, struct ks_schema_path *p, struct ks_error **err);

struct ks_schema_field {
    const char *name;
    enum ks_schema_kind kind;
    bool required;
    bool nonempty;                             /* ARRAY: at least one member */
    bool closed;                               /* OBJECT: keys outside .fields are errors */
    size_t max_items;                          /* ARRAY: 0 = no limit beyond the document's size */
    enum ks_schema_rule rule;                  /* STRING */
    const struct ks_schema_format *format;     /* STRING */
    enum ks_schema_rule key_rule;              /* MAP */
    const struct ks_schema_format *key_format; /* MAP */
    int64_t min;                               /* INT: inclusive range */
    uint64_t max;                              /* INT */
    const char *const *values;                 /* STRING: the allowed values, NULL-terminated */
    const char *what;                     /* STRING with .values: the noun for an unknown value */
    const struct ks_schema_field *fields; /* OBJECT: ended by an entry without a name */
    const struct ks_schema_field *elem;   /* ARRAY, MAP */
    ks_schema_check_fn check;             /* runs after the value passed its own checks */
};

/* A string member of any content, for arrays and maps of strings. */
extern const struct ks_schema_field ks_schema_elem_string;

/* Shorthands for schema tables. */
/* clang-format off */
#define F_STR(n, ...)          {.name = n, .kind = KS_SCHEMA_STRING, __VA_ARGS__}
#define F_BOOL(n, ...)         {.name = n, .kind = KS_SCHEMA_BOOL, __VA_ARGS__}
#define F_INT(n, lo, hi, ...)  {.name = n, .kind = KS_SCHEMA_INT, .min = lo, .max = hi, __VA_ARGS__}
#define F_I64(n, ...)          F_INT(n, INT64_MIN, INT64_MAX, __VA_ARGS__)
#define F_I32(n, ...)          F_INT(n, INT32_MIN, INT32_MAX, __VA_ARGS__)
#define F_U64(n, ...)          F_INT(n, 0, UINT64_MAX, __VA_ARGS__)
#define F_U32(n, ...)          F_INT(n, 0, UINT32_MAX, __VA_ARGS__)
#define F_U16(n, ...)          F_INT(n, 0, UINT16_MAX, __VA_ARGS__)
#define F_OBJ(n, members, ...) {.name = n, .kind = KS_SCHEMA_OBJECT, .fields = members, __VA_ARGS__}
#define F_ARR(n, element, ...) {.name = n, .kind = KS_SCHEMA_ARRAY, .elem = element, __VA_ARGS__}
#define F_MAP(n, element, ...) {.name = n, .kind = KS_SCHEMA_MAP, .elem = element, __VA_ARGS__}
#define F_STRV(n, ...)         F_ARR(n, &ks_schema_elem_string, __VA_ARGS__)
/* An anonymous object, as the member of an array or map. */
#define F_ELEM_OBJ(members)    &(const struct ks_schema_field){.kind = KS_SCHEMA_OBJECT, .fields = members}
#define F_END                  {.name = NULL}
/* clang-format on */

/* Checks v against f; the first problem found is the error. v may be NULL (JSON null). */
int ks_schema_check(const struct ks_schema_field *f, json_object *v, struct ks_schema_path *p,
                    struct ks_error **err);

/* Values from the document go into messages that a terminal will show: cuts s (len bytes) short
 * to fit buf and replaces control characters. Returns buf. */
const char *ks_schema_quote(char *buf, size_t size, const char *s, size_t len);

/* Path steps: each push returns what ks_schema_pop() takes to undo it (and what follows). */
size_t ks_schema_push_key(struct ks_schema_path *p, const char *key);
size_t ks_schema_push_index(struct ks_schema_path *p, size_t i);
size_t ks_schema_push_map_key(struct ks_schema_path *p, const char *key);
void ks_schema_pop(struct ks_schema_path *p, size_t old);

/* Sets "<doc>: <path>: <message>" (or "<doc>: <message>" at the root) and returns -errnum. */
int ks_schema_fail_errno(struct ks_error **err, int errnum, const struct ks_schema_path *p,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
#define ks_schema_fail(err, p, ...) ks_schema_fail_errno(err, EINVAL, p, __VA_ARGS__)
