/* Output helpers shared by the commands: Docker's human sizes and durations, a small subset of
 * Go templates over JSON values ({{.A.B}}, {{json .A}}), and tabwriter-style tables. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format.h"

#include "lib/base/error.h"
#include "lib/base/json.h"

void ks_fmt_size(int64_t size, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    double v = (double)size;
    size_t u = 0;
    while (v >= 1000.0 && u + 1 < KS_ELEMENTSOF(units)) {
        v /= 1000.0;
        u++;
    }
    snprintf(buf, len, "%.3g%s", v, units[u]);
}

void ks_fmt_since(int64_t t, char *buf, size_t len)
{
    int64_t d = (int64_t)time(NULL) - t;
    if (d < 0)
        d = 0;
    int64_t h = (d + 1800) / 3600;
    if (d < 1)
        snprintf(buf, len, "Less than a second ago");
    else if (d == 1)
        snprintf(buf, len, "1 second ago");
    else if (d < 60)
        snprintf(buf, len, "%lld seconds ago", (long long)d);
    else if (d / 60 == 1)
        snprintf(buf, len, "About a minute ago");
    else if (d < 3600)
        snprintf(buf, len, "%lld minutes ago", (long long)(d / 60));
    else if (h == 1)
        snprintf(buf, len, "About an hour ago");
    else if (h < 48)
        snprintf(buf, len, "%lld hours ago", (long long)h);
    else if (h < 24 * 7 * 2)
        snprintf(buf, len, "%lld days ago", (long long)(h / 24));
    else if (h < 24 * 30 * 2)
        snprintf(buf, len, "%lld weeks ago", (long long)(h / 24 / 7));
    else if (h < 24 * 365 * 2)
        snprintf(buf, len, "%lld months ago", (long long)(h / 24 / 30));
    else
        snprintf(buf, len, "%lld years ago", (long long)(h / 24 / 365));
}

void ks_fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
}

/* Go's %v of a JSON value. */
static void print_value(FILE *f, json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null:
        fputs("<nil>", f);
        break;
    case json_type_array:
        fputc('[', f);
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (i)
                fputc(' ', f);
            print_value(f, json_object_array_get_idx(v, i));
        }
        fputc(']', f);
        break;
    case json_type_object: {
        fputs("map[", f);
        bool first = true;
        json_object_object_foreach(v, k, val)
        {
            fprintf(f, "%s%s:", first ? "" : " ", k);
            print_value(f, val);
            first = false;
        }
        fputc(']', f);
        break;
    }
    default:
        fputs(json_object_get_string(v), f);
        break;
    }
}

/* Follows ".A.B" into root; *ret_missing when a key is not there. */
static json_object *walk_path(json_object *root, const char *path, size_t len, bool *ret_missing)
{
    json_object *cur = root;
    *ret_missing = false;
    const char *end = path + len;
    const char *p = path;
    if (p < end && *p == '.')
        p++;
    while (p < end && cur) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        char key[256];
        if (n == 0)
            break;
        snprintf(key, sizeof(key), "%.*s", (int)n, p);
        json_object *next = NULL;
        if (!json_object_is_type(cur, json_type_object) ||
            !json_object_object_get_ex(cur, key, &next)) {
            *ret_missing = true;
            return NULL;
        }
        cur = next;
        p += n + (dot ? 1 : 0);
    }
    return cur;
}

static int render_action(FILE *f, json_object *root, const char *a, size_t len)
{
    while (len && *a == ' ')
        a++, len--;
    while (len && a[len - 1] == ' ')
        len--;
    bool as_json = false;
    if (len > 5 && strncmp(a, "json ", 5) == 0) {
        as_json = true;
        a += 5, len -= 5;
        while (len && *a == ' ')
            a++, len--;
    }
    if (len == 0 || *a != '.')
        return -1;
    bool missing;
    json_object *v = walk_path(root, a, len, &missing);
    if (as_json)
        fputs(missing ? "null" : json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE),
              f);
    else if (missing)
        fputs("<no value>", f);
    else
        print_value(f, v);
    return 0;
}

int ks_fmt_template(FILE *f, const char *tmpl, json_object *root)
{
    const char *p = tmpl;
    while (*p) {
        const char *open = strstr(p, "{{");
        if (open == NULL) {
            fputs(p, f);
            break;
        }
        fwrite(p, 1, (size_t)(open - p), f);
        const char *close = strstr(open + 2, "}}");
        if (close == NULL)
            return -1;
        if (render_action(f, root, open + 2, (size_t)(close - open - 2)) < 0)
            return -1;
        p = close + 2;
    }
    return 0;
}

/* --- tables --- */

void ks_table_free(struct ks_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        ks_strv_free(t->rows[i]);
    free(t->rows);
    t->rows = NULL;
    t->n = 0;
}

int ks_table_add_line(struct ks_table *t, const char *line)
{
    size_t cols = 1;
    for (const char *p = line; *p; p++)
        cols += *p == '\t';
    char **row = calloc(cols + 1, sizeof(char *));
    char ***rows = realloc(t->rows, (t->n + 1) * sizeof(*rows));
    if (row == NULL || rows == NULL) {
        free(row);
        if (rows)
            t->rows = rows;
        return -1;
    }
    t->rows = rows;
    const char *p = line;
    for (size_t c = 0; c < cols; c++) {
        size_t n = strcspn(p, "\t");
        row[c] = strndup(p, n);
        p += n + (p[n] ? 1 : 0);
    }
    t->rows[t->n++] = row;
    return 0;
}

/* Each column as wide as its widest cell plus three spaces, at least 10, as Docker's
 * tabwriter.NewWriter(out, 10, 1, 3, ' ', 0) pads; the last cell of a row is not padded. */
/* Columns are as wide as their text on a terminal: UTF-8 continuation bytes take no room. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

void ks_table_print(FILE *f, const struct ks_table *t)
{
    size_t widths[32] = {0};
    for (size_t i = 0; i < t->n; i++)
        for (size_t c = 0; c < 32 && t->rows[i][c] && t->rows[i][c + 1]; c++) {
            size_t w = text_width(t->rows[i][c]) + 3;
            if (w < 10)
                w = 10;
            if (w > widths[c])
                widths[c] = w;
        }
    for (size_t i = 0; i < t->n; i++) {
        for (size_t c = 0; t->rows[i][c]; c++) {
            fputs(t->rows[i][c], f);
            if (c < 32 && t->rows[i][c + 1])
                fprintf(f, "%*s", (int)(widths[c] - text_width(t->rows[i][c])), "");
        }
        fputc('\n', f);
    }
}

/* Docker's formats take "\t" and "\n" as escapes. */
char *ks_fmt_unescape(const char *s)
{
    char *out = strdup(s), *o = out;
    if (out == NULL)
        return NULL;
    for (; *s; s++) {
        if (s[0] == '\\' && (s[1] == 't' || s[1] == 'n')) {
            *o++ = s[1] == 't' ? '\t' : '\n';
            s++;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

int ks_fmt_rows(const char *format, json_object *header, json_object **rows, size_t n)
{
    bool table = strncmp(format, "table", 5) == 0 && (format[5] == ' ' || format[5] == '\0');
    _cleanup_free_ char *tmpl = ks_fmt_unescape(table ? format + 5 + (format[5] == ' ') : format);
    if (tmpl == NULL)
        return -ENOMEM;
    struct ks_table t = {0};
    int r = 0;
    for (size_t i = (table ? 0 : 1); i <= n && r == 0; i++) {
        char *line = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&line, &len);
        if (f == NULL)
            return -ENOMEM;
        r = ks_fmt_template(f, tmpl, i == 0 ? header : rows[i - 1]);
        fclose(f);
        if (r == 0 && table)
            r = ks_table_add_line(&t, line);
        else if (r == 0)
            printf("%s\n", line);
        free(line);
    }
    if (r == 0 && table)
        ks_table_print(stdout, &t);
    ks_table_free(&t);
    return r;
}

int ks_cli_fail(struct ks_error *e, int status)
{
    fprintf(stderr, "Error: %s\n", e && e->msg ? e->msg : "unknown error");
    ks_error_free(e);
    return status;
}

int ks_cli_usage_error(const char *cmd, const char *msg)
{
    fprintf(stderr, "kiste %s: %s\nSee 'kiste %s --help'.\n", cmd, msg, cmd);
    return 1;
}

int ks_cli_print_inspect(json_object *all, const char *format)
{
    if (format == NULL) {
        printf("%s\n", ks_json_pretty(all));
        return 0;
    }
    _cleanup_free_ char *tmpl = ks_fmt_unescape(format);
    for (size_t i = 0; tmpl && i < json_object_array_length(all); i++) {
        if (ks_fmt_template(stdout, tmpl, json_object_array_get_idx(all, i)) < 0) {
            fprintf(stderr, "Error: invalid format `%s`\n", format);
            return 1;
        }
        putchar('\n');
    }
    return 0;
}
