/* JSON helpers over json-c. Parsing is bounded (size, depth) because the input is untrusted. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "error.h"

static inline void ks_json_putp(json_object **o)
{
    if (*o)
        json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(ks_json_putp)

#define KS_JSON_MAX_DEPTH 64

/* Parses buf (len bytes) into *ret (owned by the caller). The message names the byte offset of
 * a syntax error. Trailing garbage is an error. */
int ks_json_parse(const char *buf, size_t len, json_object **ret, struct ks_error **err);
int ks_json_parse_file(const char *path, json_object **ret, struct ks_error **err);

/* Borrowed lookups: NULL (or the default) when the key is missing or of another type. */
json_object *ks_json_get(json_object *o, const char *key);
json_object *ks_json_get_type(json_object *o, const char *key, json_type type);
const char *ks_json_str(json_object *o, const char *key);
bool ks_json_bool(json_object *o, const char *key, bool def);
int64_t ks_json_int(json_object *o, const char *key, int64_t def);
/* The array under key as a NULL-terminated string vector (copies, owned by the caller); NULL
 * when missing. Non-string members are skipped (validation rejects them beforehand). */
char **ks_json_strv(json_object *o, const char *key);

/* Plain serialisation without escaped slashes; the string belongs to o. */
const char *ks_json_plain(json_object *o);
const char *ks_json_pretty(json_object *o);
