/* HTTP for the registry client: libcurl through dlopen, one-shot requests with bounded bodies. */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../base/dl.h"
#include "ks-config.h"

static struct ks_curl curl_api;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static struct ks_error *curl_load_err;

static void curl_load(void)
{
    static const char *const sonames[] = {"libcurl.so.4", "libcurl.so", NULL};
    CURLcode (*global_init)(long) = NULL;
    const struct ks_dl_sym syms[] = {
        {"curl_global_init", (void **)&global_init},
        {"curl_easy_init", (void **)&curl_api.easy_init},
        {"curl_easy_setopt", (void **)&curl_api.easy_setopt},
        {"curl_easy_perform", (void **)&curl_api.easy_perform},
        {"curl_easy_getinfo", (void **)&curl_api.easy_getinfo},
        {"curl_easy_cleanup", (void **)&curl_api.easy_cleanup},
        {"curl_easy_pause", (void **)&curl_api.easy_pause},
        {"curl_easy_strerror", (void **)&curl_api.easy_strerror},
        {"curl_slist_append", (void **)&curl_api.slist_append},
        {"curl_slist_free_all", (void **)&curl_api.slist_free_all},
        {"curl_multi_init", (void **)&curl_api.multi_init},
        {"curl_multi_add_handle", (void **)&curl_api.multi_add_handle},
        {"curl_multi_remove_handle", (void **)&curl_api.multi_remove_handle},
        {"curl_multi_perform", (void **)&curl_api.multi_perform},
        {"curl_multi_poll", (void **)&curl_api.multi_poll},
        {"curl_multi_info_read", (void **)&curl_api.multi_info_read},
        {"curl_multi_cleanup", (void **)&curl_api.multi_cleanup},
        {"curl_multi_strerror", (void **)&curl_api.multi_strerror},
        {"curl_easy_escape", (void **)&curl_api.easy_escape},
        {"curl_free", (void **)&curl_api.free},
    };
    if (ks_dl_load(sonames, "libcurl4", syms, KS_ELEMENTSOF(syms), &curl_load_err) < 0)
        return;
    /* Once, before any thread uses curl: curl_global_init is not thread-safe. */
    CURLcode rc = global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        ks_error_set_plain(&curl_load_err, EIO, "curl_global_init: %s", curl_api.easy_strerror(rc));
}

const struct ks_curl *ks_curl_get(struct ks_error **err)
{
    pthread_once(&curl_once, curl_load);
    if (curl_load_err)
        return ks_error_set_plain(err, curl_load_err->errnum, "%s", curl_load_err->msg), NULL;
    return &curl_api;
}

void ks_http_tls_release(struct ks_http_tls *t)
{
    free(t->ca_blob);
    free(t->cert);
    free(t->key);
    *t = (struct ks_http_tls){0};
}

void ks_http_easy_setup(const struct ks_curl *c, CURL *h, const struct ks_http_tls *tls)
{
    c->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    c->easy_setopt(h, CURLOPT_USERAGENT, "kiste/" KS_VERSION);
    c->easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    c->easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    c->easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    /* A stalled transfer (under 1 byte/s for a minute) is an error, not a hang. */
    c->easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    c->easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    c->easy_setopt(h, CURLOPT_SSL_VERIFYPEER, tls && tls->verify ? 1L : 0L);
    c->easy_setopt(h, CURLOPT_SSL_VERIFYHOST, tls && tls->verify ? 2L : 0L);
    if (tls && tls->ca_blob) {
        struct curl_blob b = {.data = tls->ca_blob, .len = tls->ca_len, .flags = CURL_BLOB_COPY};
        c->easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
    }
    if (tls && tls->cert && tls->key) {
        c->easy_setopt(h, CURLOPT_SSLCERT, tls->cert);
        c->easy_setopt(h, CURLOPT_SSLKEY, tls->key);
    }
}

void ks_http_resp_release(struct ks_http_resp *r)
{
    free(r->body);
    free(r->content_type);
    free(r->www_authenticate);
    free(r->location);
    free(r->docker_content_digest);
    free(r->range);
    free(r->content_range);
    free(r->effective_url);
    size_t max = r->body_max;
    *r = (struct ks_http_resp){.content_length = -1, .body_max = max};
}

static void set_header(char **slot, const char *v, size_t n)
{
    free(*slot);
    *slot = strndup(v, n);
}

void ks_http_resp_header(struct ks_http_resp *r, const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or 100 Continue): its headers replace the old. */
        ks_http_resp_release(r);
        const char *sp = memchr(line, ' ', len);
        if (sp)
            r->status = strtol(sp + 1, NULL, 10);
        return;
    }
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return;
    size_t nlen = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        {"content-type", offsetof(struct ks_http_resp, content_type)},
        {"location", offsetof(struct ks_http_resp, location)},
        {"docker-content-digest", offsetof(struct ks_http_resp, docker_content_digest)},
        {"range", offsetof(struct ks_http_resp, range)},
        {"content-range", offsetof(struct ks_http_resp, content_range)},
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(known); i++)
        if (strlen(known[i].name) == nlen && strncasecmp(line, known[i].name, nlen) == 0) {
            set_header((char **)((char *)r + known[i].off), v, vlen);
            return;
        }
    if (nlen == 16 && strncasecmp(line, "www-authenticate", nlen) == 0) {
        if (r->www_authenticate == NULL)
            set_header(&r->www_authenticate, v, vlen);
    } else if (nlen == 14 && strncasecmp(line, "content-length", nlen) == 0) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%.*s", (int)(vlen < 31 ? vlen : 31), v);
        char *end;
        errno = 0;
        long long n = strtoll(buf, &end, 10);
        r->content_length = (errno || *end || n < 0) ? -1 : n;
    }
}

static size_t header_cb(char *buf, size_t size, size_t n, void *userdata)
{
    ks_http_resp_header(userdata, buf, size * n);
    return size * n;
}

static size_t body_cb(char *buf, size_t size, size_t n, void *userdata)
{
    struct ks_http_resp *r = userdata;
    size_t len = size * n;
    if (r->len + len > r->body_max) {
        r->too_big = true;
        return 0;
    }
    char *p = realloc(r->body, r->len + len + 1);
    if (p == NULL)
        return 0;
    memcpy(p + r->len, buf, len);
    r->body = p;
    r->len += len;
    p[r->len] = '\0';
    return len;
}

struct fd_reader {
    int fd;
    int64_t left;
};

static size_t read_cb(char *buf, size_t size, size_t n, void *userdata)
{
    struct fd_reader *f = userdata;
    size_t want = size * n;
    if ((int64_t)want > f->left)
        want = (size_t)f->left;
    if (want == 0)
        return 0;
    ssize_t got;
    do
        got = read(f->fd, buf, want);
    while (got < 0 && errno == EINTR);
    if (got <= 0)
        return CURL_READFUNC_ABORT; /* a file shorter than announced */
    f->left -= got;
    return (size_t)got;
}

char *ks_http_origin(const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return NULL;
    p += 3;
    size_t n = strcspn(p, "/?#");
    return strndup(url, (size_t)(p - url) + n);
}

static bool same_origin(const char *a, const char *b)
{
    _cleanup_free_ char *oa = ks_http_origin(a), *ob = ks_http_origin(b);
    return oa && ob && strcasecmp(oa, ob) == 0;
}

int ks_http_do(const struct ks_http_tls *tls, const struct ks_http_req *req,
               struct ks_http_resp *resp, struct ks_error **err)
{
    const struct ks_curl *c = ks_curl_get(err);
    if (c == NULL)
        return -ENOENT;
    CURL *h = c->easy_init();
    if (h == NULL)
        return ks_error_set(err, ENOMEM, "curl");
    struct curl_slist *hdrs = NULL;
    for (size_t i = 0; req->headers && req->headers[i]; i++)
        hdrs = c->slist_append(hdrs, req->headers[i]);
    ks_http_resp_release(resp);
    resp->body_max = req->max_body;
    ks_http_easy_setup(c, h, tls);
    c->easy_setopt(h, CURLOPT_URL, req->url);
    c->easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    c->easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    c->easy_setopt(h, CURLOPT_HEADERDATA, resp);
    c->easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
    c->easy_setopt(h, CURLOPT_WRITEDATA, resp);
    c->easy_setopt(h, CURLOPT_FOLLOWLOCATION, req->no_redirect ? 0L : 1L);
    c->easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    struct fd_reader fr = {.fd = req->body_fd, .left = req->body_fd_len};
    const char *m = req->method ? req->method : "GET";
    if (strcmp(m, "HEAD") == 0) {
        c->easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (req->body_fd >= 0 && req->body_fd_len > 0) {
        c->easy_setopt(h, CURLOPT_UPLOAD, 1L);
        c->easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
        c->easy_setopt(h, CURLOPT_READDATA, &fr);
        c->easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_fd_len);
        c->easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
    } else if (strcmp(m, "GET") != 0) {
        /* POSTFIELDS sends the body with its length for every method; an empty one as
         * Content-Length: 0, which registries want on PUT and POST. */
        c->easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        c->easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        c->easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
    }
    CURLcode rc = c->easy_perform(h);
    char *eff = NULL;
    c->easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
    resp->effective_url = eff ? strdup(eff) : NULL;
    long code = 0;
    c->easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (code)
        resp->status = code;
    c->easy_cleanup(h);
    c->slist_free_all(hdrs);
    if (resp->too_big)
        return ks_error_set_plain(err, EFBIG, "%s %s: the answer is larger than %zu bytes", m,
                                  req->url, req->max_body);
    if (rc != CURLE_OK)
        return ks_error_set_plain(err, rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO,
                                  "%s %s: %s", m, req->url, c->easy_strerror(rc));
    if (!req->any_redirect && resp->effective_url && !same_origin(resp->effective_url, req->url))
        return ks_error_set_plain(err, EPROTO, "%s %s: refusing the redirect to %s", m, req->url,
                                  resp->effective_url);
    if (resp->content_length >= 0 && strcmp(m, "HEAD") != 0 && resp->body &&
        (size_t)resp->content_length != resp->len)
        return ks_error_set_plain(err, EPROTO, "%s %s: truncated answer (%zu of %lld bytes)", m,
                                  req->url, resp->len, (long long)resp->content_length);
    return 0;
}
