/* A registry server: the OCI distribution spec 1.1 (Docker's Registry HTTP API v2) over
 * libmicrohttpd, which is loaded with dlopen on first use (base/dl.h).
 *
 * Storage under one root directory:
 *   blobs/                       the content-addressed blob store (image/blobstore.h)
 *   repositories/<name>/_blobs/<alg>/<hex>      a blob belongs to the repository (empty file)
 *   repositories/<name>/_manifests/<alg>/<hex>  a manifest of the repository; holds its
 *                                               content type
 *   repositories/<name>/_tags/<tag>             holds the digest the tag points at
 *   repositories/<name>/_referrers/<alg>-<hex>/<alg>-<hex>  subject → referring manifest
 *   uploads/<uuid>/{data,state}  an upload session: the bytes so far and its repository and
 *                                offset, the offset written after the data is synced
 * Repository name components never start with '_', so the internal directories cannot clash
 * with nested repository names. Every file is replaced atomically (temporary name, rename). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/error.h"

/* Limits on untrusted input. */
#define KS_REGISTRY_NAME_MAX  255 /* a repository name, as Docker's registry has it */
#define KS_REGISTRY_TAG_MAX   128
#define KS_REGISTRY_UUID_LEN  32   /* upload session ids: 32 lowercase hex digits */
#define KS_REGISTRY_LIST_MAX  1000 /* the most entries of one tags or catalog page */
#define KS_REGISTRY_MAX_DEPTH 16   /* the most components of a repository name */

enum ks_registry_route_kind {
    KS_ROUTE_NONE = 0,  /* not a registry path: 404 */
    KS_ROUTE_BASE,      /* /v2/ */
    KS_ROUTE_CATALOG,   /* /v2/_catalog */
    KS_ROUTE_SEARCH,    /* /v1/search */
    KS_ROUTE_TAGS,      /* /v2/<name>/tags/list */
    KS_ROUTE_MANIFEST,  /* /v2/<name>/manifests/<reference> */
    KS_ROUTE_BLOB,      /* /v2/<name>/blobs/<digest> */
    KS_ROUTE_UPLOADS,   /* /v2/<name>/blobs/uploads/ */
    KS_ROUTE_UPLOAD,    /* /v2/<name>/blobs/uploads/<uuid> */
    KS_ROUTE_REFERRERS, /* /v2/<name>/referrers/<digest> */
};

/* Why a path that looks like a registry path was refused, for the error code. */
enum ks_registry_route_error {
    KS_ROUTE_OK = 0,
    KS_ROUTE_ERR_NAME,      /* NAME_INVALID */
    KS_ROUTE_ERR_REFERENCE, /* MANIFEST_INVALID: neither a tag nor a digest */
    KS_ROUTE_ERR_DIGEST,    /* DIGEST_INVALID */
    KS_ROUTE_ERR_UUID,      /* BLOB_UPLOAD_UNKNOWN */
};

struct ks_registry_route {
    enum ks_registry_route_kind kind;
    enum ks_registry_route_error error;
    char name[KS_REGISTRY_NAME_MAX + 1];
    /* A tag, a digest or an upload id, by kind; empty when the route has none. */
    char ref[KS_REGISTRY_TAG_MAX + 64 + 8];
    bool ref_is_digest;
};

/* Splits a request path (already percent-decoded; at most 4096 bytes are looked at) into *ret.
 * kind is KS_ROUTE_NONE for anything unknown; a known shape with a bad name, reference or id
 * keeps its kind and sets error. Never fails otherwise. */
void ks_registry_route_parse(const char *path, struct ks_registry_route *ret);

/* The distribution spec's repository name: components of [a-z0-9]+ joined by '.', '_', "__" or
 * runs of '-', separated by '/', at most KS_REGISTRY_NAME_MAX bytes in all. */
bool ks_registry_name_valid(const char *name);
/* A tag: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. */
bool ks_registry_tag_valid(const char *tag);
/* An upload session id as this server makes them. */
bool ks_registry_uuid_valid(const char *uuid);

/* A PATCH's Content-Range, "<start>-<end>" (a "bytes " or "bytes=" prefix and a "/<total>"
 * suffix are accepted): inclusive byte positions, end ≥ start. -EINVAL when malformed. */
int ks_registry_content_range_parse(const char *s, uint64_t *ret_start, uint64_t *ret_end);

/* A GET's Range header against a blob of size bytes: one range "bytes=a-b", "bytes=a-" or
 * "bytes=-n". 1 with [*ret_start, *ret_end] (inclusive) when satisfiable, 0 when the header is
 * not one this parser takes (the whole blob is served), -ERANGE when unsatisfiable (416). */
int ks_registry_range_parse(const char *s, uint64_t size, uint64_t *ret_start, uint64_t *ret_end);

struct ks_registry_server_opts {
    const char *addr;     /* HOST:PORT or [V6]:PORT; NULL: "0.0.0.0:5000"; port 0 picks one */
    const char *root;     /* storage root, required */
    const char *htpasswd; /* NULL: no authentication */
    const char *tls_cert; /* PEM; both or neither */
    const char *tls_key;
    bool read_only;
    unsigned threads; /* the thread pool's size; 0: 8 */
};

struct ks_registry_server;

/* Loads libmicrohttpd, opens the storage and starts serving in a pool of threads of its own;
 * the call returns once the socket listens. *ret is owned by the caller
 * (ks_registry_server_free, which stops it). */
int ks_registry_server_start(const struct ks_registry_server_opts *opts,
                             struct ks_registry_server **ret, struct ks_error **err);
/* The port the server listens on (useful with port 0). */
uint16_t ks_registry_server_port(const struct ks_registry_server *srv);
/* Stops serving (open connections are closed) and frees everything; NULL is fine. */
void ks_registry_server_free(struct ks_registry_server *srv);
KS_DEFINE_CLEANUP(struct ks_registry_server *, ks_registry_server_free)
#define _cleanup_registry_server_ _cleanup_(ks_registry_server_free_p)

/* What garbage collection removed (or would remove, with dry_run). */
struct ks_registry_gc_stats {
    uint64_t blobs_removed;
    uint64_t bytes_removed;
    uint64_t manifests_removed;
    uint64_t uploads_removed; /* upload sessions untouched for a week */
};

/* Called once per item removed (or that would be): kind is "blob", "manifest" or "upload"
 * (digest is then the session id), name the repository (NULL but for manifests). Strings are
 * valid during the call only. */
typedef void (*ks_registry_gc_fn)(const char *kind, const char *name, const char *digest,
                                  void *userdata);

/* Removes the blobs that no manifest of any repository references, and with delete_untagged
 * first the manifests no tag reaches (directly, through an index, or as a referrer of a kept
 * manifest); then upload sessions abandoned for a week. Meant for a registry that is stopped or
 * read-only: an upload that finishes during the walk may lose its blob. fn may be NULL. */
int ks_registry_gc(const char *root, bool dry_run, bool delete_untagged, ks_registry_gc_fn fn,
                   void *userdata, struct ks_registry_gc_stats *ret_stats, struct ks_error **err);
