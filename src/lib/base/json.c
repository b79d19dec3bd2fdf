#include "json.h"

#include <string.h>

#include "fs.h"

int ks_json_parse(const char *buf, size_t len, json_object **ret, struct ks_error **err)
{
    if (len > INT32_MAX)
        return ks_error_set_plain(err, EFBIG, "JSON document too large");
    json_tokener *tok = json_tokener_new_ex(KS_JSON_MAX_DEPTH);
    if (tok == NULL)
        return ks_error_set(err, ENOMEM, "JSON parser");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tok, buf, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t off = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr == json_tokener_continue) {
        json_object_put(o);
        return ks_error_set_plain(err, EINVAL, "invalid JSON: unexpected end of input");
    }
    if (jerr != json_tokener_success || o == NULL) {
        json_object_put(o);
        return ks_error_set_plain(err, EINVAL, "invalid JSON at byte %zu: %s", off,
                                  json_tokener_error_desc(jerr));
    }
    for (size_t i = off; i < len; i++) {
        if (!strchr(" \t\r\n", buf[i])) {
            json_object_put(o);
            return ks_error_set_plain(err, EINVAL, "invalid JSON at byte %zu: trailing data", i);
        }
    }
    *ret = o;
    return 0;
}

int ks_json_parse_file(const char *path, json_object **ret, struct ks_error **err)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = ks_read_file(path, &buf, &len, err);
    if (r < 0)
        return r;
    r = ks_json_parse(buf, len, ret, err);
    if (r < 0)
        return ks_error_wrap(err, "%s", path);
    return 0;
}

json_object *ks_json_get(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o == NULL || !json_object_is_type(o, json_type_object))
        return NULL;
    if (!json_object_object_get_ex(o, key, &v))
        return NULL;
    return v;
}

json_object *ks_json_get_type(json_object *o, const char *key, json_type type)
{
    json_object *v = ks_json_get(o, key);
    return v && json_object_is_type(v, type) ? v : NULL;
}

const char *ks_json_str(json_object *o, const char *key)
{
    json_object *v = ks_json_get_type(o, key, json_type_string);
    return v ? json_object_get_string(v) : NULL;
}

bool ks_json_bool(json_object *o, const char *key, bool def)
{
    json_object *v = ks_json_get_type(o, key, json_type_boolean);
    return v ? json_object_get_boolean(v) : def;
}

int64_t ks_json_int(json_object *o, const char *key, int64_t def)
{
    json_object *v = ks_json_get(o, key);
    if (v && (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return json_object_get_int64(v);
    return def;
}

char **ks_json_strv(json_object *o, const char *key)
{
    json_object *a = ks_json_get_type(o, key, json_type_array);
    if (a == NULL)
        return NULL;
    size_t n = json_object_array_length(a), k = 0;
    char **v = calloc(n + 1, sizeof(char *));
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        json_object *s = json_object_array_get_idx(a, i);
        if (!json_object_is_type(s, json_type_string))
            continue;
        v[k] = strdup(json_object_get_string(s));
        if (v[k] == NULL) {
            ks_strv_free(v);
            return NULL;
        }
        k++;
    }
    return v;
}

const char *ks_json_plain(json_object *o)
{
    return json_object_to_json_string_ext(o,
                                          JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

const char *ks_json_pretty(json_object *o)
{
    return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
}
