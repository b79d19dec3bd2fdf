/* kiste-monitor's input handling: the --health-cmd array (from an image's Healthcheck, so
 * untrusted) checked against json-c, the JSON escaping of log text checked by parsing it back,
 * and the log line splitter's invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lib/base/fs.h"
#include "monitor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct split_check {
    size_t total;
};

static void check_record(const char *line, size_t len, bool partial, void *userdata)
{
    struct split_check *c = userdata;
    if (len == 0 || len > MON_LINE_MAX)
        abort();
    /* A complete record ends at its only newline; a partial one has none. */
    const char *nl = memchr(line, '\n', len);
    if (partial ? nl != NULL : nl != line + len - 1)
        abort();
    c->total += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 70000)
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';

    char **v = NULL;
    if (mon_json_parse_strv(text, &v, NULL) == 0) {
        json_object *o = json_tokener_parse(text);
        if (o == NULL || !json_object_is_type(o, json_type_array) ||
            json_object_array_length(o) != ks_strv_len(v))
            abort();
        for (size_t i = 0; v[i]; i++)
            if (strcmp(json_object_get_string(json_object_array_get_idx(o, i)), v[i]) != 0)
                abort();
        json_object_put(o);
        ks_strv_free(v);
    }

    /* Escaped text is a valid JSON string whatever the bytes. */
    char *esc = malloc(MON_JSON_ESCAPE_MAX(size) + 3);
    esc[0] = '"';
    size_t n = mon_json_escape(esc + 1, text, size);
    esc[n + 1] = '"';
    esc[n + 2] = '\0';
    json_object *s = json_tokener_parse(esc);
    if (s == NULL || !json_object_is_type(s, json_type_string))
        abort();
    json_object_put(s);
    free(esc);

    static struct mon_splitter sp;
    struct split_check c = {0};
    size_t chunk = size ? (size_t)data[0] * 97 + 1 : 1;
    for (size_t off = 0; off < size; off += chunk)
        mon_split_feed(&sp, text + off, size - off < chunk ? size - off : chunk, check_record, &c);
    mon_split_flush(&sp, check_record, &c);
    if (c.total != size)
        abort();
    free(text);
    return 0;
}
