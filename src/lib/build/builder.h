/* `kiste build`: runs a Dockerfile's stages over local images. FROM takes a local image or an
 * earlier stage; ARG, ENV, WORKDIR, USER, CMD, ENTRYPOINT, LABEL, EXPOSE, VOLUME, STOPSIGNAL
 * and SHELL change the image config; RUN runs in a container through the engine and its
 * upper directory becomes a layer (ks_store_commit). A RUN step is reused from the build
 * cache when the same parent image ran the same instruction with the same environment.
 * COPY takes files from the context (filtered by its .dockerignore), or with --from from an
 * earlier stage or a local image, and is reused from the cache when the copied files'
 * contents and metadata (or the --from image) are the same. ADD of local files that are not
 * archives works as COPY. HEALTHCHECK and ONBUILD are recorded; a base image's ONBUILD
 * triggers run after its FROM.
 * Not yet: ADD of URLs and archives, heredocs in COPY, RUN --mount, FROM scratch (refused
 * with a message). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "../base/error.h"

struct ks_engine;

struct ks_build_opts {
    int context_fd;         /* the context directory (COPY's sources, .dockerignore) */
    const char *dockerfile; /* its text */
    size_t dockerfile_len;
    char *const *build_args; /* "NAME=VALUE", NULL-terminated, may be NULL */
    char *const *tags;       /* references to tag the result, NULL-terminated, may be NULL */
    const char *target;      /* a stage name; NULL: the last stage */
    const char *network;     /* RUN's network mode; NULL: "none" */
    bool no_cache;
    /* Progress lines ("Step 1/3 : FROM busybox", " ---> Using cache" …), may be NULL. */
    void (*progress)(void *userdata, const char *line);
    /* Called when a RUN container has exited, to show its output; may be NULL. */
    void (*run_output)(void *userdata, struct ks_engine *e, const char *container_id);
    void *userdata;
};

/* Builds the image; *ret_image_id ("sha256:<hex>") is owned by the caller. A failing RUN is an
 * error whose errnum is 0 and whose message carries the exit code; its container is removed. */
int ks_build(struct ks_engine *e, const struct ks_build_opts *o, char **ret_image_id,
             struct ks_error **err);

/* Empties the build cache under the storage root (`builder prune`): the steps' images stay
 * (untagged ones go with `image prune`), no step is reused any more. *ret_removed (may be
 * NULL) counts the entries removed. */
int ks_build_cache_prune(const char *root, size_t *ret_removed, struct ks_error **err);
