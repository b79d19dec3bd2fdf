/* The registry client's HTTP transport over libcurl, loaded with dlopen on first use (base/dl.h):
 * the table of curl functions the client uses, one-shot requests with bounded in-memory answers,
 * and the per-registry TLS settings every transfer (one-shot or in a multi handle) is set up
 * with. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "../base/error.h"

/* The curl functions the client calls, resolved once for the process. */
struct ks_curl {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    CURLcode (*easy_pause)(CURL *, int);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_cleanup)(CURLM *);
    const char *(*multi_strerror)(CURLMcode);
    char *(*easy_escape)(CURL *, const char *, int);
    void (*free)(void *);
};

/* The loaded table (static, never freed), or NULL with err set when libcurl cannot be loaded. */
const struct ks_curl *ks_curl_get(struct ks_error **err);

/* How transfers to one registry are secured. */
struct ks_http_tls {
    bool verify;   /* check the server's certificate and name */
    char *ca_blob; /* PEM: the system bundle plus certs.d's *.crt; NULL: curl's default */
    size_t ca_len;
    char *cert; /* client certificate and key files (certs.d's *.cert and *.key); may be NULL */
    char *key;
};
void ks_http_tls_release(struct ks_http_tls *t);

/* Applies the common options (TLS, protocols, timeouts, user agent) to a fresh easy handle. */
void ks_http_easy_setup(const struct ks_curl *c, CURL *h, const struct ks_http_tls *tls);

/* Collected response headers of the last response (after redirects). */
struct ks_http_resp {
    long status;
    char *body; /* NUL-terminated; NULL when there was none or the request did not keep it */
    size_t len;
    char *content_type;
    char *www_authenticate; /* the first challenge header */
    char *location;
    char *docker_content_digest;
    char *range;
    char *content_range;
    int64_t content_length; /* -1 when not sent */
    char *effective_url;
    size_t body_max; /* (internal) the cap the request set */
    bool too_big;    /* (internal) the body went over body_max */
};
void ks_http_resp_release(struct ks_http_resp *r);

/* Parses one header line into resp (used by the multi transfers too); status lines reset it. */
void ks_http_resp_header(struct ks_http_resp *r, const char *line, size_t len);

struct ks_http_req {
    const char *method; /* "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE" */
    const char *url;
    const char *const *headers; /* "Name: value", NULL-terminated; may be NULL */
    const void *body;           /* request body in memory; may be NULL */
    size_t body_len;
    int body_fd; /* or read from this fd, body_fd_len bytes; -EBADF: none */
    int64_t body_fd_len;
    size_t max_body;   /* the answer's body is kept up to this many bytes; more is EFBIG */
    bool any_redirect; /* follow redirects to other hosts (blobs); else only the same origin */
    bool no_redirect;  /* do not follow redirects at all (upload locations) */
};

/* One request. The response's status is whatever the server said (a 4xx is not an error
 * here); transport failures (connection, TLS, a body over max_body, a redirect to another
 * origin when not allowed) are. resp is filled in and released by the caller. */
int ks_http_do(const struct ks_http_tls *tls, const struct ks_http_req *req,
               struct ks_http_resp *resp, struct ks_error **err);

/* "scheme://host[:port]" of url, into a new string owned by the caller; NULL when url has no
 * scheme. */
char *ks_http_origin(const char *url);
