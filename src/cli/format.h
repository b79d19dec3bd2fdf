/* Output helpers of the command line (format.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "lib/base/cleanup.h"

/* Docker's human size with three significant digits: "2.13MB". */
void ks_fmt_size(int64_t size, char *buf, size_t len);
/* "About a minute ago", "3 days ago", as Docker's CREATED column. */
void ks_fmt_since(int64_t t, char *buf, size_t len);
/* "2024-05-01 12:00:00 +0000 UTC" */
void ks_fmt_time(int64_t t, char *buf, size_t len);

/* Renders a Go template subset ({{.A.B}}, {{json .A}}) over root to f; -1 for a template it
 * does not understand. */
int ks_fmt_template(FILE *f, const char *tmpl, json_object *root);

/* A copy of s (owned by the caller) with Docker's "\t" and "\n" escapes of --format turned into
 * tabs and newlines; NULL when out of memory. */
char *ks_fmt_unescape(const char *s);
/* Renders each of rows (JSON objects) with a --format template to stdout; a "table …" template
 * prints the header row from header first and aligns the columns. -1 for a template it does
 * not understand, -ENOMEM. */
int ks_fmt_rows(const char *format, json_object *header, json_object **rows, size_t n);

/* Rows of tab-separated cells, printed aligned. */
struct ks_table {
    char ***rows;
    size_t n;
};
int ks_table_add_line(struct ks_table *t, const char *line);
void ks_table_print(FILE *f, const struct ks_table *t);
void ks_table_free(struct ks_table *t);

/* What `inspect` prints of all (a JSON array): each element through the Go-style template
 * format, one per line, or the array as indented JSON when format is NULL. 0, or 1 (with a
 * message) when the template is invalid. */
int ks_cli_print_inspect(json_object *all, const char *format);

struct ks_error;
/* Prints "Error: <message>" (Docker's client prefix), frees e and returns status. */
int ks_cli_fail(struct ks_error *e, int status);
/* Prints "kiste CMD: MSG" and the pointer to --help on stderr; returns 1. */
int ks_cli_usage_error(const char *cmd, const char *msg);
