/* The instructions of a parsed Dockerfile checked as BuildKit checks them before a build
 * (its instructions.Parse): the flags each instruction takes, argument counts, FROM's
 * `AS name`, stage names, HEALTHCHECK's type and durations, what ONBUILD may trigger, and
 * that only ARG comes before the first FROM. The stages are listed for the builder. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "dockerfile.h"

struct ks_df_stage {
    const char *base;     /* FROM's image (not expanded), borrowed from the node */
    const char *name;     /* `AS name`, lower-cased as BuildKit does; NULL when none. Owned */
    const char *platform; /* --platform=, borrowed; NULL when none */
    size_t from;          /* index of the FROM node */
    size_t end;           /* index after the stage's last node */
};

struct ks_df_stages {
    struct ks_df_stage *v;
    size_t n;
    size_t n_global; /* nodes before the first FROM (global ARGs) */
};

/* Checks every instruction of df and lists its stages into *ret (ks_df_stages_clear). Errors
 * name the line: "dockerfile parse error on line N: …". */
int ks_df_check(const struct ks_dockerfile *df, struct ks_df_stages *ret, struct ks_error **err);
void ks_df_stages_clear(struct ks_df_stages *s);

/* The value of the flag --name on a node: "" for a bare --name, NULL when absent (the last
 * one when repeated); borrowed. */
const char *ks_df_flag(const struct ks_df_node *n, const char *name);

/* A Go duration ("1m30s", "500ms", "0") in nanoseconds. */
int ks_df_parse_duration(const char *s, int64_t *ret_ns);
