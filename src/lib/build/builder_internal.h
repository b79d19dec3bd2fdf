/* Shared between the builder's files; not part of the module's interface. */
#pragma once

#include <json-c/json.h>

#include "../base/hash.h"
#include "builder.h"
#include "dockerfile.h"
#include "dockerignore.h"
#include "instructions.h"
#include "scope.h"
#include "shell_words.h"

struct builder {
    struct ks_engine *e;
    const struct ks_build_opts *o;
    struct ks_dockerignore *ignore; /* the context's .dockerignore; NULL when none */
    struct ks_dockerfile *df;
    struct ks_df_stages st;
    struct ks_build_scope *scope;
    struct ks_shell_lexer lx;
    char **images; /* per stage, once built */
    /* the stage being built */
    char *image;
    json_object *cfg; /* the image config's "Config" as it is becoming */
    bool dirty;       /* cfg differs from image's */
    bool cmd_set;
    char *nop;          /* created_by of the metadata steps not yet in an image */
    json_object *shell; /* SHELL */
    int step, n_steps;
    const char *network; /* RUN --network of the step being run; NULL: the build's */
    /* where the COPY step being run takes its sources */
    int src_fd;
    const struct ks_dockerignore *src_ignore;
    const char *src_image; /* COPY --from: the image's ID; NULL for the context */
};

void bld_progress(struct builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Expands a word of the Dockerfile with the stage's variables. */
int bld_expand(struct builder *b, const char *raw, char **ret, struct ks_error **err);
/* The cache key of a step: the stage's image and config, what the step does, env. */
int bld_cache_key(struct builder *b, const char *what, char *const *env,
                  char out[static KS_SHA256_DIGEST_LEN]);
/* true when the cache has the step's image, which then becomes the stage's. */
bool bld_cached(struct builder *b, const char *key);
void bld_cache_put(struct builder *b, const char *key, const char *id);
/* The step's new image (taken) becomes the stage's. */
void bld_stage_advance(struct builder *b, char *id);
int bld_commit(struct builder *b, int upper_fd, const char *created_by, char **ret,
               struct ks_error **err);
/* A container for a step on image; *ret_id owned by the caller. */
int bld_create_container(struct builder *b, const char *image, json_object *cmd, char *const *env,
                         char **ret_id, struct ks_error **err);
/* The image a FROM or COPY --from names: an earlier stage (name or index) or a local image.
 * *ret owned by the caller. */
int bld_stage_image(struct builder *b, const char *name, char **ret, struct ks_error **err);
void bld_remove_container(struct builder *b, const char *id);
/* The upper directory of a container's snapshot, opened; and its snapshot's name. */
int bld_container_snapshot(struct builder *b, const char *id, char **ret_snapshot,
                           struct ks_error **err);

/* Commits the upper directory of the container snapshot as the step's layer. */
int bld_commit_snapshot(struct builder *b, const char *snapshot, const char *created_by, char **ret,
                        struct ks_error **err);

/* COPY from the build context (builder_copy.c). */
int bld_copy(struct builder *b, const struct ks_df_node *n, struct ks_error **err);
