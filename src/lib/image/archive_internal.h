/* What the two halves of archive loading share: the members read from the stream
 * (archive_load.c) and their interpretation as images (archive_images.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "../base/error.h"
#include "archive.h"
#include "store.h"

/* Limits on what an archive may make the loader hold in memory. */
#define KS_ARCHIVE_MAX_MEMBERS   10000
#define KS_ARCHIVE_MAX_JSON      ((size_t)8 << 20)  /* one JSON member (config, manifest …) */
#define KS_ARCHIVE_MAX_MEMORY    ((size_t)64 << 20) /* all of them together */
#define KS_ARCHIVE_MAX_LINK_HOPS 8
#define KS_ARCHIVE_MAX_IMAGES    10000

/* A member of the archive, by its clean path. */
struct ks_archive_member {
    char *name;
    char *link; /* a symlink or hardlink: the clean path it stands for */
    char *data; /* small members (JSON), NUL-terminated */
    size_t len;
    struct ks_store_layer *layer; /* a member unpacked as a layer while streaming */
    struct ks_error *layer_err;   /* why it could not be one (reported if it is used as one) */
    bool skipped;                 /* too large to hold and not a layer */
};

struct ks_archive_members {
    struct ks_archive_member *v;
    size_t n, cap;
    size_t memory; /* bytes of data held */
};

/* The member named name (a clean path) after following links; NULL when absent. */
struct ks_archive_member *ks_archive_member_find(struct ks_archive_members *m, const char *name,
                                                 struct ks_error **err);

/* Cleans a member path: leading "/" and "./" and empty components dropped; ".." or an empty
 * result refused (EPERM). *ret is owned by the caller. */
int ks_archive_clean_path(const char *name, char **ret, struct ks_error **err);

/* Appends a copy of s to the NULL-terminated vector *v unless it is there already. */
int ks_archive_strv_add(char ***v, const char *s);

/* Turns the members into images and records them: every image is checked before the first is
 * recorded. *ret as for ks_archive_load. */
int ks_archive_load_images(struct ks_store *s, struct ks_archive_members *m,
                           struct ks_archive_loaded ***ret, struct ks_error **err);
