/* Image references ("busybox", "localhost:5000/a/b:tag", "name@sha256:…"), parsed and
 * normalized the way Docker does it (distribution/reference's ParseNormalizedNamed), so that a
 * name a Docker user types means the same image here. */
#pragma once

#include <stdbool.h>

#include "../base/error.h"

#define KS_REF_DEFAULT_DOMAIN "docker.io"
#define KS_REF_DEFAULT_TAG    "latest"
/* The longest repository name (domain "/" path) after normalization. */
#define KS_REF_NAME_MAX 255
#define KS_REF_TAG_MAX  128

struct ks_ref {
    char *domain; /* "docker.io", "localhost:5000", "[::1]:5000" */
    char *path;   /* "library/busybox", "a/b" */
    char *tag;    /* NULL when only a digest was given */
    char *digest; /* "sha256:<hex>" or NULL */
};

/* Parses s and normalizes it: a missing domain becomes docker.io, a single-component name on
 * docker.io gets "library/", and a reference with neither tag nor digest gets "latest". A first
 * component containing '.' or ':', equal to "localhost" or with an upper-case letter is a
 * registry domain. Errors name the reference and the problem, e.g. "invalid reference `Foo`:
 * repository name must be lowercase". *ret is owned by the caller (ks_ref_free). */
int ks_ref_parse(const char *s, struct ks_ref **ret, struct ks_error **err);

/* The full normalized form "docker.io/library/busybox:latest" (tag and digest when present).
 * New string owned by the caller; NULL only when out of memory. */
char *ks_ref_string(const struct ks_ref *r);

/* Docker's short form: "busybox:latest", "user/repo:tag", "localhost:5000/a/b:tag",
 * "busybox@sha256:…". Parsing it again gives the same reference. New string owned by the
 * caller; NULL only when out of memory. */
char *ks_ref_familiar(const struct ks_ref *r);

/* The repository without tag or digest, "docker.io/library/busybox". New string owned by the
 * caller; NULL only when out of memory. */
char *ks_ref_repository(const struct ks_ref *r);

/* A deep copy owned by the caller; NULL when out of memory. */
struct ks_ref *ks_ref_dup(const struct ks_ref *r);

void ks_ref_free(struct ks_ref *r);
KS_DEFINE_CLEANUP(struct ks_ref *, ks_ref_free)
#define _cleanup_ref_ _cleanup_(ks_ref_free_p)

/* Whether s is a digest the engine can verify: "sha256:" and 64 lower-case hex digits, or
 * "sha512:" and 128. Nothing else (no upper case, no other algorithm), so that a string that
 * passes can be used as a file name. */
bool ks_is_digest(const char *s);

/* Whether s can be a (short) image id: 1 to 64 lower-case hex digits, optionally after
 * "sha256:". */
bool ks_is_hex_prefix(const char *s);
