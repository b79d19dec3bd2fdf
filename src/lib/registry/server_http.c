/* The registry server's HTTP side: libmicrohttpd loaded with dlopen, its daemon in a pool of
 * threads with epoll, and the dispatch of each request to its handler. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/cleanup.h"
#include "../base/dl.h"
#include "../base/fs.h"
#include "../base/json.h"
#include "../base/log.h"
#include "server_internal.h"

struct ks_mhd ks_mhd;

static pthread_once_t mhd_once = PTHREAD_ONCE_INIT;
static struct ks_error *mhd_error;

static void mhd_load(void)
{
    static const char *const sonames[] = {"libmicrohttpd.so.12", "libmicrohttpd.so", NULL};
    const struct ks_dl_sym syms[] = {
        {"MHD_start_daemon", (void **)&ks_mhd.start_daemon},
        {"MHD_stop_daemon", (void **)&ks_mhd.stop_daemon},
        {"MHD_get_daemon_info", (void **)&ks_mhd.get_daemon_info},
        {"MHD_is_feature_supported", (void **)&ks_mhd.is_feature_supported},
        {"MHD_lookup_connection_value", (void **)&ks_mhd.lookup_connection_value},
        {"MHD_create_response_from_buffer", (void **)&ks_mhd.create_response_from_buffer},
        {"MHD_create_response_from_fd_at_offset64",
         (void **)&ks_mhd.create_response_from_fd_at_offset64},
        {"MHD_add_response_header", (void **)&ks_mhd.add_response_header},
        {"MHD_queue_response", (void **)&ks_mhd.queue_response},
        {"MHD_destroy_response", (void **)&ks_mhd.destroy_response},
    };
    ks_dl_load(sonames, "libmicrohttpd12", syms, KS_ELEMENTSOF(syms), &mhd_error);
}

static int mhd_ready(struct ks_error **err)
{
    pthread_once(&mhd_once, mhd_load);
    if (mhd_error)
        return ks_error_set_plain(err, mhd_error->errnum, "%s", mhd_error->msg);
    return 0;
}

/* ---- responses ---- */

struct MHD_Response *ks_reg_resp_buf(const void *data, size_t len, const char *content_type)
{
    struct MHD_Response *r =
        ks_mhd.create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (r && content_type)
        ks_mhd.add_response_header(r, "Content-Type", content_type);
    return r;
}

struct MHD_Response *ks_reg_resp_fd(int fd, uint64_t offset, uint64_t len)
{
    struct MHD_Response *r = ks_mhd.create_response_from_fd_at_offset64(len, fd, offset);
    if (r == NULL)
        close(fd);
    return r;
}

struct MHD_Response *ks_reg_resp_json(struct json_object *o, const char *content_type)
{
    const char *s = ks_json_plain(o);
    return ks_reg_resp_buf(s, strlen(s), content_type ? content_type : "application/json");
}

void ks_reg_set(struct MHD_Response *r, const char *key, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (r)
        ks_mhd.add_response_header(r, key, buf);
}

enum MHD_Result ks_reg_reply(struct ks_reg_req *rq, unsigned status, struct MHD_Response *r)
{
    /* The session's lock goes before the client hears back: its next request on another
     * connection may come before this one is cleaned up. */
    ks_closep(&rq->upload_fd);
    rq->upload_fd = -EBADF;
    if (r == NULL)
        return MHD_NO; /* out of memory: MHD closes the connection */
    ks_mhd.add_response_header(r, "Docker-Distribution-API-Version", "registry/2.0");
    if (status == 401)
        ks_mhd.add_response_header(r, "WWW-Authenticate", "Basic realm=\"kiste-registry\"");
    enum MHD_Result res = ks_mhd.queue_response(rq->conn, status, r);
    ks_mhd.destroy_response(r);
    return res;
}

enum MHD_Result ks_reg_reply_empty(struct ks_reg_req *rq, unsigned status)
{
    return ks_reg_reply(rq, status, ks_reg_resp_buf("", 0, NULL));
}

static enum MHD_Result verror(struct ks_reg_req *rq, unsigned status, const char *code,
                              const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    _cleanup_json_ json_object *root = json_object_new_object();
    json_object *errors = json_object_new_array();
    json_object *e = json_object_new_object();
    if (root == NULL || errors == NULL || e == NULL) {
        json_object_put(errors);
        json_object_put(e);
        return MHD_NO;
    }
    json_object_object_add(e, "code", json_object_new_string(code));
    json_object_object_add(e, "message", json_object_new_string(msg));
    json_object_object_add(e, "detail", json_object_new_object());
    json_object_array_add(errors, e);
    json_object_object_add(root, "errors", errors);
    return ks_reg_reply(rq, status, ks_reg_resp_json(root, NULL));
}

enum MHD_Result ks_reg_error(struct ks_reg_req *rq, unsigned status, const char *code,
                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result r = verror(rq, status, code, fmt, ap);
    va_end(ap);
    return r;
}

enum MHD_Result ks_reg_error_from(struct ks_reg_req *rq, const struct ks_error *e,
                                  const char *code_404)
{
    const char *msg = e && e->msg ? e->msg : "internal error";
    if (e && e->errnum == ENOENT)
        return ks_reg_error(rq, 404, code_404, "%s", msg);
    ks_warn("registry: %s", msg);
    return ks_reg_error(rq, 500, "UNKNOWN", "%s", msg);
}

int ks_reg_fail(struct ks_reg_req *rq, unsigned status, const char *code, const char *fmt, ...)
{
    if (rq->fail_status)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&rq->fail_msg, fmt, ap) < 0)
        rq->fail_msg = NULL;
    va_end(ap);
    rq->fail_status = status;
    rq->fail_code = code;
    return -1;
}

const char *ks_reg_header(struct ks_reg_req *rq, const char *key)
{
    return ks_mhd.lookup_connection_value(rq->conn, MHD_HEADER_KIND, key);
}

const char *ks_reg_arg(struct ks_reg_req *rq, const char *key)
{
    return ks_mhd.lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

int ks_reg_page(struct ks_reg_req *rq, char **items, size_t n_items, size_t *ret_first,
                size_t *ret_count, bool *ret_more)
{
    const char *ns = ks_reg_arg(rq, "n"), *last = ks_reg_arg(rq, "last");
    size_t n = KS_REGISTRY_LIST_MAX;
    if (ns) {
        char *end = NULL;
        errno = 0;
        long v = strtol(ns, &end, 10);
        if (errno || end == ns || *end || v < 0)
            return -1;
        n = (size_t)v < KS_REGISTRY_LIST_MAX ? (size_t)v : KS_REGISTRY_LIST_MAX;
    }
    size_t first = 0;
    if (last && *last)
        while (first < n_items && strcmp(items[first], last) <= 0)
            first++;
    size_t left = n_items - first;
    *ret_first = first;
    *ret_count = left < n ? left : n;
    *ret_more = left > n;
    return 0;
}

/* ---- dispatch ---- */

static enum ks_reg_method method_of(const char *m)
{
    static const struct {
        const char *name;
        enum ks_reg_method m;
    } methods[] = {
        {"GET", KS_M_GET},   {"HEAD", KS_M_HEAD},   {"PUT", KS_M_PUT},
        {"POST", KS_M_POST}, {"PATCH", KS_M_PATCH}, {"DELETE", KS_M_DELETE},
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(methods); i++)
        if (strcmp(m, methods[i].name) == 0)
            return methods[i].m;
    return KS_M_OTHER;
}

static bool is_write(enum ks_reg_method m)
{
    return m == KS_M_PUT || m == KS_M_POST || m == KS_M_PATCH || m == KS_M_DELETE;
}

static enum MHD_Result route_error(struct ks_reg_req *rq)
{
    switch (rq->route.error) {
    case KS_ROUTE_ERR_NAME:
        return ks_reg_error(rq, 400, "NAME_INVALID", "invalid repository name");
    case KS_ROUTE_ERR_REFERENCE:
        /* A tag that cannot exist is not there: only a write with it is a client's error. */
        if (rq->method == KS_M_GET || rq->method == KS_M_HEAD || rq->method == KS_M_DELETE)
            return ks_reg_error(rq, 404, "MANIFEST_UNKNOWN", "no such tag");
        return ks_reg_error(rq, 400, "MANIFEST_INVALID", "invalid tag or digest");
    case KS_ROUTE_ERR_DIGEST:
        return ks_reg_error(rq, 400, "DIGEST_INVALID", "invalid digest");
    case KS_ROUTE_ERR_UUID:
        return ks_reg_error(rq, 404, "BLOB_UPLOAD_UNKNOWN", "unknown upload");
    case KS_ROUTE_OK:
        break;
    }
    return ks_reg_error(rq, 404, "UNSUPPORTED", "no such endpoint");
}

static enum MHD_Result unsupported(struct ks_reg_req *rq)
{
    return ks_reg_error(rq, 405, "UNSUPPORTED", "method not allowed here");
}

/* The first call of a request: everything but the body is known. */
static enum MHD_Result dispatch(struct ks_reg_req *rq)
{
    struct ks_registry_server *srv = rq->srv;
    if (srv->auth && !ks_htpasswd_check(srv->auth, ks_reg_header(rq, "Authorization")))
        return ks_reg_error(rq, 401, "UNAUTHORIZED", "authentication required");
    if (rq->route.kind == KS_ROUTE_NONE || rq->route.error != KS_ROUTE_OK)
        return route_error(rq);
    if (srv->read_only && is_write(rq->method))
        return ks_reg_error(rq, 405, "UNSUPPORTED", "the registry is read-only");
    enum ks_reg_method m = rq->method;
    bool get = m == KS_M_GET || m == KS_M_HEAD;
    switch (rq->route.kind) {
    case KS_ROUTE_BASE:
        return get ? ks_reg_reply(rq, 200, ks_reg_resp_buf("{}", 2, "application/json"))
                   : unsupported(rq);
    case KS_ROUTE_CATALOG:
        return get ? ks_reg_catalog(rq) : unsupported(rq);
    case KS_ROUTE_SEARCH:
        return get ? ks_reg_search(rq) : unsupported(rq);
    case KS_ROUTE_TAGS:
        return get ? ks_reg_tags_list(rq) : unsupported(rq);
    case KS_ROUTE_REFERRERS:
        return get ? ks_reg_referrers(rq) : unsupported(rq);
    case KS_ROUTE_MANIFEST:
        return get                ? ks_reg_manifest_get_h(rq)
               : m == KS_M_PUT    ? ks_reg_manifest_begin(rq)
               : m == KS_M_DELETE ? ks_reg_manifest_delete_h(rq)
                                  : unsupported(rq);
    case KS_ROUTE_BLOB:
        return get                ? ks_reg_blob_get(rq)
               : m == KS_M_DELETE ? ks_reg_blob_delete(rq)
                                  : unsupported(rq);
    case KS_ROUTE_UPLOADS:
        return m == KS_M_POST ? ks_reg_uploads_begin(rq) : unsupported(rq);
    case KS_ROUTE_UPLOAD:
        return m == KS_M_GET                      ? ks_reg_upload_status(rq)
               : m == KS_M_PATCH || m == KS_M_PUT ? ks_reg_upload_begin(rq)
               : m == KS_M_DELETE                 ? ks_reg_upload_cancel(rq)
                                                  : unsupported(rq);
    case KS_ROUTE_NONE:
        break;
    }
    return route_error(rq);
}

static void req_free(struct ks_reg_req *rq)
{
    if (rq == NULL)
        return;
    ks_blob_writer_free(rq->writer);
    ks_closep(&rq->upload_fd);
    free(rq->body);
    free(rq->fail_msg);
    free(rq);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    struct ks_reg_req *rq = *req_cls;
    if (rq == NULL) {
        rq = calloc(1, sizeof(*rq));
        if (rq == NULL)
            return MHD_NO;
        rq->srv = cls;
        rq->st = rq->srv->store;
        rq->conn = conn;
        rq->upload_fd = -EBADF;
        rq->method = method_of(method);
        ks_registry_route_parse(url, &rq->route);
        *req_cls = rq;
        /* A handler either answers now or sets on_done to answer after the body. */
        enum MHD_Result r = dispatch(rq);
        return rq->on_done || r == MHD_YES ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        if (rq->on_data && !rq->fail_status)
            rq->on_data(rq, upload_data, *upload_data_size);
        *upload_data_size = 0; /* consumed, or dropped after a failure */
        return MHD_YES;
    }
    if (rq->on_done == NULL)
        return MHD_YES; /* answered at the first call */
    ks_reg_done_fn done = rq->on_done;
    rq->on_done = NULL;
    if (rq->fail_status)
        return ks_reg_error(rq, rq->fail_status, rq->fail_code, "%s",
                            rq->fail_msg ? rq->fail_msg : "request failed");
    return done(rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    req_free(*req_cls);
    *req_cls = NULL;
}

/* ---- the daemon ---- */

/* libmicrohttpd's own messages (a client that went away, a TLS handshake that failed) go to
 * the log at debug level: they concern one connection, not the server. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    ks_debug("registry: %s", buf);
}

static int parse_addr(const char *addr, struct sockaddr_storage *ss, struct ks_error **err)
{
    memset(ss, 0, sizeof(*ss));
    const char *colon = strrchr(addr, ':');
    if (colon == NULL)
        return ks_error_msg(err, "--addr: expected HOST:PORT, got `%s`", addr);
    char host[128];
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof(host))
        return ks_error_msg(err, "--addr: host too long");
    memcpy(host, addr, hl);
    host[hl] = '\0';
    char *end = NULL;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
        return ks_error_msg(err, "--addr: invalid port in `%s`", addr);
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
            return ks_error_msg(err, "--addr: invalid IPv6 address `%s`", host + 1);
        return 0;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (hl == 0)
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (strcmp(host, "localhost") == 0)
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return ks_error_msg(err, "--addr: invalid IPv4 address `%s`", host);
    return 0;
}

void ks_registry_server_free(struct ks_registry_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->daemon)
        ks_mhd.stop_daemon(srv->daemon);
    ks_reg_store_free(srv->store);
    ks_htpasswd_free(srv->auth);
    free(srv->tls_cert);
    free(srv->tls_key);
    free(srv);
}

uint16_t ks_registry_server_port(const struct ks_registry_server *srv)
{
    return srv->port;
}

static int load_tls(struct ks_registry_server *srv, const struct ks_registry_server_opts *o,
                    struct ks_error **err)
{
    if (!o->tls_cert && !o->tls_key)
        return 0;
    if (!o->tls_cert || !o->tls_key)
        return ks_error_msg(err, "--tls-cert and --tls-key go together");
    if (ks_mhd.is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return ks_error_set_plain(err, ENOTSUP, "this libmicrohttpd has no TLS support");
    int r = ks_read_file(o->tls_cert, &srv->tls_cert, NULL, err);
    if (r >= 0)
        r = ks_read_file(o->tls_key, &srv->tls_key, NULL, err);
    return r < 0 ? ks_error_wrap(err, "TLS") : 0;
}

int ks_registry_server_start(const struct ks_registry_server_opts *o,
                             struct ks_registry_server **ret, struct ks_error **err)
{
    int r = mhd_ready(err);
    if (r < 0)
        return r;
    struct sockaddr_storage ss;
    r = parse_addr(o->addr ? o->addr : "0.0.0.0:5000", &ss, err);
    if (r < 0)
        return r;
    _cleanup_(ks_registry_server_free_p) struct ks_registry_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return ks_error_set(err, ENOMEM, "registry server");
    srv->read_only = o->read_only;
    r = ks_reg_store_open(o->root, &srv->store, err);
    if (r < 0)
        return ks_error_wrap(err, "registry storage `%s`", o->root);
    if (o->htpasswd && (r = ks_htpasswd_load(o->htpasswd, &srv->auth, err)) < 0)
        return r;
    if ((r = load_tls(srv, o, err)) < 0)
        return r;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (srv->tls_cert)
        flags |= MHD_USE_TLS;
    unsigned threads = o->threads ? o->threads : 8;
    /* The TLS options come last and are left out (MHD_OPTION_END early) without TLS. */
    srv->daemon = ks_mhd.start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_CONNECTION_LIMIT, 512u,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        NULL, srv->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, srv->tls_cert,
        MHD_OPTION_HTTPS_MEM_KEY, srv->tls_key, MHD_OPTION_END);
    if (srv->daemon == NULL)
        return ks_error_set_plain(err, EADDRINUSE, "cannot listen on %s (in use, or not allowed)",
                                  o->addr ? o->addr : "0.0.0.0:5000");
    const union MHD_DaemonInfo *info =
        ks_mhd.get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : 0;
    *ret = TAKE_PTR(srv);
    return 0;
}
