/* The Dockerfile parser: the syntax tree BuildKit's parser builds (frontend/dockerfile/parser),
 * one node per instruction, with its flags, arguments, heredocs and lines, and the dump format
 * BuildKit's tests compare against.
 *
 * A Dockerfile is untrusted input: its size, the length of a logical line, the number of
 * instructions and the nesting of ONBUILD are bounded, and nothing recurses on the input. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "../base/error.h"

#define KS_DOCKERFILE_MAX_SIZE     (32u << 20) /* bytes */
#define KS_DOCKERFILE_MAX_LINE     (4u << 20)  /* bytes in one logical line */
#define KS_DOCKERFILE_MAX_NODES    100000      /* instructions */
#define KS_DOCKERFILE_MAX_ONBUILD  8           /* ONBUILD ONBUILD … */
#define KS_DOCKERFILE_MAX_HEREDOCS 64          /* on one line */

enum ks_df_instr {
    KS_DF_UNKNOWN = 0,
    KS_DF_ADD,
    KS_DF_ARG,
    KS_DF_CMD,
    KS_DF_COPY,
    KS_DF_ENTRYPOINT,
    KS_DF_ENV,
    KS_DF_EXPOSE,
    KS_DF_FROM,
    KS_DF_HEALTHCHECK,
    KS_DF_LABEL,
    KS_DF_MAINTAINER,
    KS_DF_ONBUILD,
    KS_DF_RUN,
    KS_DF_SHELL,
    KS_DF_STOPSIGNAL,
    KS_DF_USER,
    KS_DF_VOLUME,
    KS_DF_WORKDIR,
    _KS_DF_INSTR_MAX,
};

/* The lower-case name of an instruction ("run"); NULL for KS_DF_UNKNOWN. */
const char *ks_df_instr_name(enum ks_df_instr i);
/* The instruction for a name in any case; KS_DF_UNKNOWN when it is none. */
enum ks_df_instr ks_df_instr_from_name(const char *name);

struct ks_df_heredoc {
    char *name;    /* the delimiter word, quotes removed */
    char *content; /* the lines up to the delimiter, each with its "\n"; tabs not yet stripped */
    bool expand;   /* the delimiter was not quoted: variables in content are expanded */
    bool chomp;    /* <<-: leading tabs are stripped from each line */
    unsigned fd;   /* 3<<EOF: the file descriptor, 0 when none was given */
};

struct ks_df_node {
    enum ks_df_instr instr;
    char *cmd;    /* the instruction as written ("Run") */
    char **flags; /* "--from=x" …, NULL-terminated */
    size_t n_flags;
    /* The arguments as BuildKit's parse tree holds them: for ENV and LABEL key, value,
     * separator triples; for HEALTHCHECK the type then the command. Strings may hold NUL bytes
     * from JSON escapes: arg_lens gives their lengths. NULL-terminated. */
    char **args;
    size_t *arg_lens;
    size_t n_args;
    struct ks_df_node *sub; /* ONBUILD's instruction; NULL otherwise */
    bool json;              /* JSON (exec) form */
    struct ks_df_heredoc *heredocs;
    size_t n_heredocs;
    char *original;           /* the logical line, continuations joined */
    int start_line, end_line; /* 1-based */
};

struct ks_dockerfile {
    struct ks_df_node *nodes;
    size_t n_nodes;
    char escape;     /* '\\' or '`' */
    char *syntax;    /* the # syntax= directive, NULL when absent */
    char *check;     /* the # check= directive, NULL when absent */
    char **warnings; /* NULL-terminated, may be NULL */
};

/* Parses a Dockerfile of len bytes. On success *ret is owned by the caller
 * (ks_dockerfile_free). Errors name the line: "dockerfile parse error on line N: …". */
int ks_dockerfile_parse(const char *data, size_t len, struct ks_dockerfile **ret,
                        struct ks_error **err);
void ks_dockerfile_free(struct ks_dockerfile *df);
KS_DEFINE_CLEANUP(struct ks_dockerfile *, ks_dockerfile_free)
#define _cleanup_dockerfile_ _cleanup_(ks_dockerfile_free_p)

/* The parse tree in BuildKit's dump format, one line per instruction, each ending in "\n".
 * Owned by the caller; NULL when out of memory. */
char *ks_dockerfile_dump(const struct ks_dockerfile *df);

/* A heredoc's content with the leading tabs of each line removed (for <<-). Owned by the
 * caller; NULL when out of memory. */
char *ks_df_heredoc_chomp(const char *content);
