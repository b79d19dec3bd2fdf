/* What the registry client's files share: the session and its authenticated requests. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "client.h"
#include "http.h"

struct ks_registry_token {
    char *scope;
    char *header;    /* "Authorization: Bearer …" */
    int64_t expires; /* CLOCK_MONOTONIC seconds */
};

struct ks_registry {
    char *domain;
    const char *host;
    char *base; /* "https://host[:port]" once known */
    bool insecure;
    struct ks_http_tls tls;
    char *user, *pass;
    bool basic;                      /* the registry asked for Basic: send it with every request */
    struct ks_auth_challenge bearer; /* the last bearer challenge (realm, service) */
    struct ks_registry_token *tokens;
    size_t n_tokens;
};

/* "repository:<path>:pull" (push: "pull,push") into a new string owned by the caller. */
char *ks_registry_scope(const char *path, bool push);

/* base + path (printf-style), owned by the caller; NULL when out of memory. */
char *ks_registry_url(struct ks_registry *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Finds out the scheme once (HTTPS, or HTTP for an insecure registry that does not speak TLS). */
int ks_registry_connect(struct ks_registry *r, struct ks_error **err);

/* The Authorization header line for scope from what is cached (a valid token, or Basic);
 * NULL when there is none. Owned by the caller. */
char *ks_registry_auth_header(struct ks_registry *r, const char *scope);

/* Answers the challenge of a 401 (the WWW-Authenticate value) for scope: Basic with the
 * credentials, or a bearer token from the realm. EACCES when it cannot be answered. */
int ks_registry_authenticate(struct ks_registry *r, const char *challenge, const char *scope,
                             struct ks_error **err);

/* req with the scope's Authorization added; a 401 is answered once and the request repeated.
 * The extra headers of req are kept. resp as ks_http_do. */
int ks_registry_request(struct ks_registry *r, const char *scope, const struct ks_http_req *req,
                        struct ks_http_resp *resp, struct ks_error **err);

/* The registry's error message from a JSON error body ({"errors":[{"code","message"}]}), or
 * the status; a new string owned by the caller. */
char *ks_registry_error_text(const struct ks_http_resp *resp);

/* --- blobs and manifests (client_fetch.c, client_pull.c) --- */

struct ks_descriptor;
struct ks_store;
struct ks_store_layer;

struct ks_fetch_item {
    const struct ks_descriptor *desc; /* the layer blob to download */
    struct ks_store_layer *layer;     /* the pending layer made of it; owned by the caller */
};

/* Downloads the layers of items into pending layers of s, at most a few at a time, each
 * checked against its descriptor's digest and size. On error the first failure is returned;
 * layers made so far are in the items for the caller to free. */
int ks_registry_fetch_layers(struct ks_registry *r, struct ks_store *s, const char *path,
                             struct ks_fetch_item *items, size_t n, ks_progress_fn progress,
                             void *userdata, struct ks_error **err);

/* GETs a manifest by tag or digest (Accept: every manifest and index type), at most
 * KS_MANIFEST_MAX_SIZE bytes; a reference by digest must match it. *ret_body, *ret_type (the
 * Content-Type) and *ret_digest are owned by the caller. Schema 1 is refused. */
int ks_registry_get_manifest(struct ks_registry *r, const char *path, const char *reference,
                             char **ret_body, size_t *ret_len, char **ret_type, char **ret_digest,
                             struct ks_error **err);

/* GETs a small blob (a config) into memory, checked against digest and size. *ret is
 * NUL-terminated and owned by the caller. */
int ks_registry_get_blob(struct ks_registry *r, const char *path, const char *digest, int64_t size,
                         size_t max, char **ret, size_t *ret_len, struct ks_error **err);
