/* Inside the registry server: the storage of repositories and uploads (server_repo.c), the HTTP
 * plumbing over libmicrohttpd (server_http.c), the handlers (server_blobs.c,
 * server_manifests.c), basic authentication (server_auth.c) and garbage collection
 * (server_gc.c). */
#pragma once

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <microhttpd.h>

#include "../base/error.h"
#include "../base/json.h"
#include "../image/blobstore.h"
#include "server.h"

/* "sha512:" + 128 hex digits + NUL */
#define KS_REG_DIGEST_MAX 136

/* ---- storage (server_repo.c) ---- */

struct ks_reg_store {
    char *root;
    int repos_fd;   /* root/repositories */
    int uploads_fd; /* root/uploads */
    struct ks_blobstore *blobs;
    /* ks_write_file_atomic names its temporary file after the process, so two threads must
     * not replace the same file at once: tag and link writes take this lock. */
    pthread_mutex_t write_lock;
};

int ks_reg_store_open(const char *root, struct ks_reg_store **ret, struct ks_error **err);
void ks_reg_store_free(struct ks_reg_store *st);
KS_DEFINE_CLEANUP(struct ks_reg_store *, ks_reg_store_free)

/* 1 when repositories/<name> holds a repository, 0 when not. */
int ks_reg_repo_exists(struct ks_reg_store *st, const char *name);

/* A blob's membership of a repository. has: 1, 0 or negative. */
int ks_reg_blob_link(struct ks_reg_store *st, const char *name, const char *digest,
                     struct ks_error **err);
int ks_reg_blob_linked(struct ks_reg_store *st, const char *name, const char *digest);
int ks_reg_blob_unlink(struct ks_reg_store *st, const char *name, const char *digest,
                       struct ks_error **err);

/* A manifest of a repository and its content type. get: *ret_type owned by the caller; ENOENT
 * when the repository has no such manifest. */
int ks_reg_manifest_link(struct ks_reg_store *st, const char *name, const char *digest,
                         const char *content_type, struct ks_error **err);
int ks_reg_manifest_get(struct ks_reg_store *st, const char *name, const char *digest,
                        char **ret_type, struct ks_error **err);
/* Reads and parses a stored manifest: *ret (ks_manifest_free), *ret_type (may be NULL) and
 * *ret_size (may be NULL) are the caller's. */
struct ks_manifest;
int ks_reg_manifest_load(struct ks_reg_store *st, const char *name, const char *digest,
                         char **ret_type, struct ks_manifest **ret, int64_t *ret_size,
                         struct ks_error **err);
int ks_reg_manifest_unlink(struct ks_reg_store *st, const char *name, const char *digest,
                           struct ks_error **err);

/* Tags. get fills ret (KS_REG_DIGEST_MAX bytes); ENOENT when there is no such tag. */
int ks_reg_tag_set(struct ks_reg_store *st, const char *name, const char *tag, const char *digest,
                   struct ks_error **err);
int ks_reg_tag_get(struct ks_reg_store *st, const char *name, const char *tag, char *ret,
                   struct ks_error **err);
int ks_reg_tag_remove(struct ks_reg_store *st, const char *name, const char *tag,
                      struct ks_error **err);

/* Sorted lists, NULL-terminated, owned by the caller (ks_strv_free). which: "_tags",
 * "_manifests" (as digests) or a subject's referrers (as digests, with subject set). */
int ks_reg_list_tags(struct ks_reg_store *st, const char *name, char ***ret, size_t *ret_n,
                     struct ks_error **err);
int ks_reg_list_manifests(struct ks_reg_store *st, const char *name, char ***ret, size_t *ret_n,
                          struct ks_error **err);
int ks_reg_list_referrers(struct ks_reg_store *st, const char *name, const char *subject,
                          char ***ret, size_t *ret_n, struct ks_error **err);
/* The blobs linked into a repository, as digests. */
int ks_reg_list_blob_links(struct ks_reg_store *st, const char *name, char ***ret,
                           struct ks_error **err);
/* Every repository name, sorted. */
int ks_reg_list_repos(struct ks_reg_store *st, char ***ret, size_t *ret_n, struct ks_error **err);

int ks_reg_referrer_add(struct ks_reg_store *st, const char *name, const char *subject,
                        const char *digest, struct ks_error **err);
int ks_reg_referrer_remove(struct ks_reg_store *st, const char *name, const char *subject,
                           const char *digest, struct ks_error **err);

/* Upload sessions. new fills uuid (KS_REGISTRY_UUID_LEN + 1 bytes). open checks that the
 * session belongs to name, locks it (EBUSY when another request holds it) and cuts off bytes
 * written past the recorded offset by a request that did not finish; *ret_fd (the data, read
 * and write, locked until closed) is owned by the caller. */
int ks_reg_upload_new(struct ks_reg_store *st, const char *name, char *uuid, struct ks_error **err);
int ks_reg_upload_open(struct ks_reg_store *st, const char *name, const char *uuid, int *ret_fd,
                       uint64_t *ret_offset, struct ks_error **err);
/* The session's recorded offset, without taking its lock (a request may be adding to it). */
int ks_reg_upload_offset(struct ks_reg_store *st, const char *name, const char *uuid,
                         uint64_t *ret_offset, struct ks_error **err);
/* Syncs the data and records offset as the session's progress. */
int ks_reg_upload_commit(struct ks_reg_store *st, const char *name, const char *uuid, int fd,
                         uint64_t offset, struct ks_error **err);
int ks_reg_upload_remove(struct ks_reg_store *st, const char *uuid, struct ks_error **err);
/* How many sessions exist (bounded count; for the TOO_MANY_REQUESTS limit). */
size_t ks_reg_upload_count(struct ks_reg_store *st, size_t stop_at);

/* qsort/bsearch comparison of two char * by strcmp. */
int ks_reg_strcmp_p(const void *a, const void *b);

/* "sha256/<hex>" for a checked digest, into buf (at least KS_REG_DIGEST_MAX bytes); false when
 * digest is not one. The same with '-' for a single file name. */
bool ks_reg_digest_path(const char *digest, char sep, char *buf, size_t len);

/* ---- libmicrohttpd, loaded on first use (server_http.c) ---- */

struct ks_mhd {
    __typeof__(MHD_start_daemon) *start_daemon;
    __typeof__(MHD_stop_daemon) *stop_daemon;
    __typeof__(MHD_get_daemon_info) *get_daemon_info;
    __typeof__(MHD_is_feature_supported) *is_feature_supported;
    __typeof__(MHD_lookup_connection_value) *lookup_connection_value;
    __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
    __typeof__(MHD_create_response_from_fd_at_offset64) *create_response_from_fd_at_offset64;
    __typeof__(MHD_add_response_header) *add_response_header;
    __typeof__(MHD_queue_response) *queue_response;
    __typeof__(MHD_destroy_response) *destroy_response;
};
extern struct ks_mhd ks_mhd;

/* ---- requests ---- */

struct ks_htpasswd;

struct ks_registry_server {
    struct MHD_Daemon *daemon;
    struct ks_reg_store *store;
    struct ks_htpasswd *auth;
    bool read_only;
    uint16_t port;
    char *tls_cert;
    char *tls_key;
};

enum ks_reg_method {
    KS_M_OTHER = 0,
    KS_M_GET,
    KS_M_HEAD,
    KS_M_PUT,
    KS_M_POST,
    KS_M_PATCH,
    KS_M_DELETE,
};

struct ks_reg_req;
typedef int (*ks_reg_data_fn)(struct ks_reg_req *rq, const char *data, size_t len);
typedef enum MHD_Result (*ks_reg_done_fn)(struct ks_reg_req *rq);

struct ks_reg_req {
    struct ks_registry_server *srv;
    struct ks_reg_store *st;
    struct MHD_Connection *conn;
    struct ks_registry_route route;
    enum ks_reg_method method;
    /* A request with a body: each piece goes to on_data, then on_done answers. A failure
     * while the body streams in is kept here and answered once the body is consumed. */
    ks_reg_data_fn on_data;
    ks_reg_done_fn on_done;
    unsigned fail_status;
    const char *fail_code;
    char *fail_msg;
    /* body sinks */
    struct ks_blob_writer *writer;
    int upload_fd;
    uint64_t offset;
    char *body;
    size_t body_len, body_max;
    char digest[KS_REG_DIGEST_MAX];
    char uuid[KS_REGISTRY_UUID_LEN + 1];
};

/* Records a failure of the body's processing (the first one counts); returns -1. */
int ks_reg_fail(struct ks_reg_req *rq, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

const char *ks_reg_header(struct ks_reg_req *rq, const char *key);
const char *ks_reg_arg(struct ks_reg_req *rq, const char *key);

/* Responses: created here, headers added with ks_reg_set, then ks_reg_reply adds the common
 * headers, queues and releases the response. */
struct MHD_Response *ks_reg_resp_buf(const void *data, size_t len, const char *content_type);
/* Takes fd (closed by the response, also when this fails). */
struct MHD_Response *ks_reg_resp_fd(int fd, uint64_t offset, uint64_t len);
void ks_reg_set(struct MHD_Response *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
enum MHD_Result ks_reg_reply(struct ks_reg_req *rq, unsigned status, struct MHD_Response *r);
enum MHD_Result ks_reg_reply_empty(struct ks_reg_req *rq, unsigned status);
/* The spec's error body {"errors":[{"code","message","detail"}]}. */
enum MHD_Result ks_reg_error(struct ks_reg_req *rq, unsigned status, const char *code,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The error for a failed storage call: 404 with code for ENOENT, else 500. */
enum MHD_Result ks_reg_error_from(struct ks_reg_req *rq, const struct ks_error *e,
                                  const char *code_404);
/* A response with the JSON of o (o is not released); NULL when out of memory. */
struct MHD_Response *ks_reg_resp_json(struct json_object *o, const char *content_type);

/* Handlers. begin_* set up a request with a body; the others answer at once. */
enum MHD_Result ks_reg_blob_get(struct ks_reg_req *rq);
enum MHD_Result ks_reg_blob_delete(struct ks_reg_req *rq);
enum MHD_Result ks_reg_uploads_begin(struct ks_reg_req *rq);
enum MHD_Result ks_reg_upload_begin(struct ks_reg_req *rq);
enum MHD_Result ks_reg_upload_status(struct ks_reg_req *rq);
enum MHD_Result ks_reg_upload_cancel(struct ks_reg_req *rq);
enum MHD_Result ks_reg_manifest_get_h(struct ks_reg_req *rq);
enum MHD_Result ks_reg_manifest_delete_h(struct ks_reg_req *rq);
enum MHD_Result ks_reg_manifest_begin(struct ks_reg_req *rq);
enum MHD_Result ks_reg_tags_list(struct ks_reg_req *rq);
enum MHD_Result ks_reg_referrers(struct ks_reg_req *rq);
enum MHD_Result ks_reg_catalog(struct ks_reg_req *rq);
enum MHD_Result ks_reg_search(struct ks_reg_req *rq);

/* Pagination of a sorted list by ?n= and ?last=: the first index and count to return, and
 * whether there is more. 400 is answered (and MHD_NO-like failure returned as -1) on a bad n. */
int ks_reg_page(struct ks_reg_req *rq, char **items, size_t n_items, size_t *ret_first,
                size_t *ret_count, bool *ret_more);

/* ---- basic authentication (server_auth.c) ---- */

int ks_htpasswd_load(const char *path, struct ks_htpasswd **ret, struct ks_error **err);
void ks_htpasswd_free(struct ks_htpasswd *h);
/* Whether an Authorization header value carries a user and password of the file. */
bool ks_htpasswd_check(struct ks_htpasswd *h, const char *authorization);
