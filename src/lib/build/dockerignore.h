/* .dockerignore: which files of a build context are left out, with Docker's rules.
 * - One pattern a line; a line starting with '#' is a comment; blank lines are skipped; white
 *   space around a pattern is removed.
 * - Patterns are cleaned as Go's filepath.Clean does; a leading '/' is ignored.
 * - '*' matches any run of characters but '/', '?' one character but '/', [...] a character
 *   class ([^...] negated), '\' escapes; "**" matches any number of directories (zero too):
 *   "**" + "/" + rest matches rest in any directory, a trailing "**" everything below.
 * - A pattern that matches a directory excludes everything below it.
 * - '!' makes a pattern an exception that includes again; the last matching pattern wins. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "../base/error.h"

#define KS_DOCKERIGNORE_MAX_PATTERNS 10000
#define KS_DOCKERIGNORE_MAX_PATTERN  4096

struct ks_dockerignore;

/* Reads the patterns of a .dockerignore file of len bytes. *ret is owned by the caller. */
int ks_dockerignore_parse(const char *data, size_t len, struct ks_dockerignore **ret,
                          struct ks_error **err);
void ks_dockerignore_free(struct ks_dockerignore *di);
KS_DEFINE_CLEANUP(struct ks_dockerignore *, ks_dockerignore_free)
#define _cleanup_dockerignore_ _cleanup_(ks_dockerignore_free_p)

/* Whether the context path (relative, '/'-separated; cleaned here) is excluded. */
bool ks_dockerignore_excluded(const struct ks_dockerignore *di, const char *path);

/* For an excluded directory: whether a walk must still enter it, because an exception could
 * include something below it. */
bool ks_dockerignore_walk_excluded_dir(const struct ks_dockerignore *di, const char *dir);

/* The patterns as cleaned, exceptions with their '!'; borrowed, NULL-terminated. */
char *const *ks_dockerignore_patterns(const struct ks_dockerignore *di);
