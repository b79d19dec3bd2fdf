/* Word expansion as BuildKit's shell lexer does it for Dockerfile instructions: quotes, the
 * escape character, $var and ${var...} with the modifiers :- :+ :? - + ? # ## % %% / //.
 * There is no command substitution, arithmetic or field splitting beyond words. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "../base/error.h"

/* Nesting of ${...} inside ${...} that is accepted; deeper input is refused. */
#define KS_SHELL_MAX_DEPTH 32

/* Looks a variable up: its value (borrowed; may be "") or NULL when it is not set. */
typedef const char *(*ks_shell_lookup_fn)(void *userdata, const char *name);

struct ks_shell_lexer {
    char escape;      /* '\\' or '`' (the Dockerfile's escape directive) */
    bool raw_quotes;  /* keep the quote characters in the result */
    bool raw_escapes; /* keep the escape characters in the result */
    bool skip_unset;  /* leave references to unset variables as written */
};

/* Expands word into one string, owned by the caller (*ret). */
int ks_shell_expand_word(const struct ks_shell_lexer *lx, const char *word,
                         ks_shell_lookup_fn lookup, void *userdata, char **ret,
                         struct ks_error **err);

/* Expands word and splits it into words at unquoted white space (also white space that an
 * unquoted variable expands to). *ret is a NULL-terminated vector owned by the caller
 * (ks_strv_free). */
int ks_shell_expand_words(const struct ks_shell_lexer *lx, const char *word,
                          ks_shell_lookup_fn lookup, void *userdata, char ***ret,
                          struct ks_error **err);

/* A lookup over a NULL-terminated "KEY=VALUE" vector (userdata), the last entry of a name
 * winning, as BuildKit's tests and ONBUILD triggers use it. */
const char *ks_shell_lookup_envv(void *userdata, const char *name);
