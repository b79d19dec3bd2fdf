/* The registry session: transport settings (insecure registries, certs.d), credentials, the
 * scheme, and requests that answer authentication challenges. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "client_internal.h"
#include "credentials.h"

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"
#define CERT_FILE_MAX    ((size_t)1 << 20)
#define ERROR_BODY_MAX   ((size_t)64 << 10)

const char *ks_registry_host(const char *domain)
{
    if (strcmp(domain, "docker.io") == 0 || strcmp(domain, "index.docker.io") == 0)
        return "registry-1.docker.io";
    return domain;
}

/* The host of "host:port", "[v6]:port" into buf. */
static void host_part(const char *domain, char *buf, size_t len)
{
    if (domain[0] == '[') {
        const char *end = strchr(domain, ']');
        size_t n = end ? (size_t)(end - domain - 1) : strlen(domain + 1);
        snprintf(buf, len, "%.*s", (int)n, domain + 1);
        return;
    }
    size_t n = strcspn(domain, ":");
    snprintf(buf, len, "%.*s", (int)n, domain);
}

static bool is_loopback(const char *domain)
{
    char host[256];
    host_part(domain, host, sizeof(host));
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
           strcmp(host, "::1") == 0;
}

static bool listed(const char *list_item, const char *domain)
{
    char host[256];
    host_part(domain, host, sizeof(host));
    return strcmp(list_item, domain) == 0 || strcmp(list_item, host) == 0;
}

static bool listed_in_file(const char *path, const char *domain)
{
    _cleanup_json_ json_object *o = NULL;
    if (access(path, R_OK) < 0 || ks_json_parse_file(path, &o, NULL) < 0)
        return false;
    json_object *a = ks_json_get_type(o, "insecure-registries", json_type_array);
    size_t n = a ? json_object_array_length(a) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(a, i));
        if (s && listed(s, domain))
            return true;
    }
    return false;
}

bool ks_registry_insecure(const char *domain, const char *storage_root)
{
    if (is_loopback(domain))
        return true;
    const char *env = getenv("KISTE_INSECURE_REGISTRIES");
    if (env && *env) {
        _cleanup_free_ char *copy = strdup(env);
        char *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save))
            if (listed(t, domain))
                return true;
    }
    _cleanup_free_ char *p1 = NULL, *p2 = NULL;
    if (storage_root && asprintf(&p1, "%s/registries.json", storage_root) >= 0 &&
        listed_in_file(p1, domain))
        return true;
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        (void)!asprintf(&p2, "%s/kiste/registries.json", xdg);
    else if (home && *home)
        (void)!asprintf(&p2, "%s/.config/kiste/registries.json", home);
    return p2 && listed_in_file(p2, domain);
}

static int append_file(char **buf, size_t *len, int dirfd, const char *name, struct ks_error **err)
{
    _cleanup_free_ char *data = NULL;
    size_t n;
    _cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open %s", name);
    int r = ks_read_fd(fd, CERT_FILE_MAX, &data, &n, err);
    if (r < 0)
        return r;
    char *p = realloc(*buf, *len + n + 2);
    if (p == NULL)
        return ks_error_set(err, ENOMEM, "certificates");
    memcpy(p + *len, data, n);
    *len += n;
    p[(*len)++] = '\n';
    p[*len] = '\0';
    *buf = p;
    return 0;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a > b && strcmp(s + a - b, suffix) == 0;
}

/* certs.d/<domain>/: CA certificates and a client certificate. */
static int load_certs_d(struct ks_registry *r, const char *dir, struct ks_error **err)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct ks_http_tls *t = &r->tls;
    t->verify = true;
    r->insecure = false;
    char *buf = NULL;
    size_t len = 0;
    _cleanup_close_ int sys = open(SYSTEM_CA_BUNDLE, O_RDONLY | O_CLOEXEC);
    if (sys >= 0 && append_file(&buf, &len, AT_FDCWD, SYSTEM_CA_BUNDLE, NULL) < 0)
        len = 0;
    struct dirent *de;
    int r2 = 0;
    while (r2 >= 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (has_suffix(de->d_name, ".crt")) {
            r2 = append_file(&buf, &len, dirfd(d), de->d_name, err);
        } else if (has_suffix(de->d_name, ".cert") && t->cert == NULL) {
            size_t n = strlen(de->d_name) - 5;
            if (asprintf(&t->cert, "%s/%s", dir, de->d_name) < 0 ||
                asprintf(&t->key, "%s/%.*s.key", dir, (int)n, de->d_name) < 0)
                r2 = ks_error_set(err, ENOMEM, "certificates");
            else if (access(t->key, R_OK) < 0)
                r2 = ks_error_msg(err, "client certificate %s has no key %s", t->cert, t->key);
        }
    }
    t->ca_blob = buf;
    t->ca_len = len;
    return r2 < 0 ? r2 : 1;
}

static int setup_tls(struct ks_registry *r, struct ks_error **err)
{
    r->tls.verify = !r->insecure;
    const char *env = getenv("KISTE_CERTS_D");
    const char *dirs[] = {env && *env ? env : "/etc/kiste/certs.d",
                          env && *env ? NULL : "/etc/docker/certs.d", NULL};
    for (size_t i = 0; dirs[i]; i++) {
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/%s", dirs[i], r->domain) < 0)
            return ks_error_set(err, ENOMEM, "certificates");
        int rr = load_certs_d(r, p, err);
        if (rr != 0)
            return rr < 0 ? ks_error_wrap(err, "certs.d of %s", r->domain) : 0;
    }
    return 0;
}

int ks_registry_open(const char *domain, const struct ks_registry_opts *o, struct ks_registry **ret,
                     struct ks_error **err)
{
    _cleanup_registry_ struct ks_registry *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->domain = strdup(domain)) == NULL)
        return ks_error_set(err, ENOMEM, "registry");
    r->host = ks_registry_host(r->domain);
    r->insecure = ks_registry_insecure(domain, o ? o->storage_root : NULL);
    int rr = setup_tls(r, err);
    if (rr < 0)
        return rr;
    if (o && o->username && o->password) {
        r->user = strdup(o->username);
        r->pass = strdup(o->password);
    } else {
        struct ks_error *e = NULL;
        rr = ks_creds_get(domain, &r->user, &r->pass, &e);
        /* Broken credentials are not a reason to refuse anonymous access. */
        ks_error_free(e);
    }
    *ret = TAKE_PTR(r);
    return 0;
}

void ks_registry_free(struct ks_registry *r)
{
    if (r == NULL)
        return;
    free(r->domain);
    free(r->base);
    ks_http_tls_release(&r->tls);
    free(r->user);
    if (r->pass)
        explicit_bzero(r->pass, strlen(r->pass));
    free(r->pass);
    ks_auth_challenge_release(&r->bearer);
    for (size_t i = 0; i < r->n_tokens; i++) {
        free(r->tokens[i].scope);
        free(r->tokens[i].header);
    }
    free(r->tokens);
    free(r);
}

char *ks_registry_scope(const char *path, bool push)
{
    char *s = NULL;
    if (asprintf(&s, "repository:%s:%s", path, push ? "pull,push" : "pull") < 0)
        return NULL;
    return s;
}

char *ks_registry_url(struct ks_registry *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *path = NULL;
    int n = vasprintf(&path, fmt, ap);
    va_end(ap);
    char *url = NULL;
    if (n < 0 || asprintf(&url, "%s%s", r->base, path) < 0)
        return NULL;
    return url;
}

static int try_base(struct ks_registry *r, const char *scheme, struct ks_error **err)
{
    free(r->base);
    r->base = NULL;
    if (asprintf(&r->base, "%s://%s", scheme, r->host) < 0)
        return ks_error_set(err, ENOMEM, "registry");
    _cleanup_free_ char *url = ks_registry_url(r, "/v2/");
    struct ks_http_req req = {
        .method = "GET", .url = url, .body_fd = -EBADF, .max_body = ERROR_BODY_MAX};
    struct ks_http_resp resp = {0};
    int rr = ks_http_do(&r->tls, &req, &resp, err);
    ks_http_resp_release(&resp);
    return rr;
}

int ks_registry_connect(struct ks_registry *r, struct ks_error **err)
{
    if (r->base)
        return 0;
    struct ks_error *https_err = NULL;
    int rr = try_base(r, "https", &https_err);
    if (rr >= 0) {
        ks_error_free(https_err);
        return 0;
    }
    if (!r->insecure || r->tls.verify) {
        free(r->base);
        r->base = NULL;
        if (err && *err == NULL)
            *err = https_err;
        else
            ks_error_free(https_err);
        return rr;
    }
    ks_error_free(https_err);
    rr = try_base(r, "http", err);
    if (rr < 0) {
        free(r->base);
        r->base = NULL;
    }
    return rr;
}

static int64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

char *ks_registry_auth_header(struct ks_registry *r, const char *scope)
{
    int64_t now = now_s();
    const char *key = scope ? scope : "";
    for (size_t i = 0; i < r->n_tokens; i++)
        if (strcmp(r->tokens[i].scope, key) == 0 && r->tokens[i].expires > now)
            return strdup(r->tokens[i].header);
    if (r->basic && r->user) {
        _cleanup_free_ char *b64 = ks_creds_encode_auth(r->user, r->pass);
        char *h = NULL;
        if (b64 && asprintf(&h, "Authorization: Basic %s", b64) >= 0)
            return h;
    }
    return NULL;
}

static int cache_token(struct ks_registry *r, const char *scope, const char *token,
                       int64_t expires_in)
{
    struct ks_registry_token *t = NULL;
    for (size_t i = 0; i < r->n_tokens; i++)
        if (strcmp(r->tokens[i].scope, scope) == 0)
            t = &r->tokens[i];
    if (t == NULL) {
        t = reallocarray(r->tokens, r->n_tokens + 1, sizeof(*t));
        if (t == NULL)
            return -ENOMEM;
        r->tokens = t;
        t = &r->tokens[r->n_tokens++];
        *t = (struct ks_registry_token){.scope = strdup(scope)};
    }
    free(t->header);
    t->header = NULL;
    if (asprintf(&t->header, "Authorization: Bearer %s", token) < 0 || t->scope == NULL)
        return -ENOMEM;
    /* A little early, so a token does not run out in the middle of a request. */
    t->expires = now_s() + expires_in - 5;
    return 0;
}

/* Gets a token for scope (NULL: none asked) and caches it under key. */
static int fetch_token(struct ks_registry *r, const char *scope, const char *key,
                       struct ks_error **err)
{
    const struct ks_curl *c = ks_curl_get(err);
    if (c == NULL)
        return -ENOENT;
    if (r->bearer.realm == NULL)
        return ks_error_set_plain(err, EACCES, "%s: bearer challenge without a realm", r->domain);
    if (strncmp(r->bearer.realm, "https://", 8) != 0 &&
        (strncmp(r->bearer.realm, "http://", 7) != 0 || !r->insecure))
        return ks_error_set_plain(err, EACCES, "%s: refusing the token realm `%s`", r->domain,
                                  r->bearer.realm);
    char *esc_service = r->bearer.service ? c->easy_escape(NULL, r->bearer.service, 0) : NULL;
    char *esc_scope = scope ? c->easy_escape(NULL, scope, 0) : NULL;
    _cleanup_free_ char *url = NULL;
    int n = asprintf(&url, "%s%sservice=%s%s%s", r->bearer.realm,
                     strchr(r->bearer.realm, '?') ? "&" : "?", esc_service ? esc_service : "",
                     esc_scope ? "&scope=" : "", esc_scope ? esc_scope : "");
    c->free(esc_service);
    c->free(esc_scope);
    if (n < 0)
        return ks_error_set(err, ENOMEM, "token");
    _cleanup_free_ char *basic = NULL, *b64 = NULL;
    if (r->user) {
        b64 = ks_creds_encode_auth(r->user, r->pass);
        if (b64 == NULL || asprintf(&basic, "Authorization: Basic %s", b64) < 0)
            return ks_error_set(err, ENOMEM, "token");
    }
    const char *hdrs[] = {basic, NULL};
    struct ks_http_req req = {.method = "GET",
                              .url = url,
                              .headers = hdrs,
                              .body_fd = -EBADF,
                              .max_body = KS_AUTH_TOKEN_REPLY_MAX,
                              .any_redirect = true};
    struct ks_http_resp resp = {0};
    int rr = ks_http_do(&r->tls, &req, &resp, err);
    if (rr >= 0 && resp.status != 200) {
        _cleanup_free_ char *why = ks_registry_error_text(&resp);
        rr = ks_error_set_plain(err, EACCES, "%s: getting a token: %s", r->domain, why);
    }
    _cleanup_free_ char *token = NULL;
    int64_t exp = 0;
    if (rr >= 0)
        rr = ks_auth_token_reply_parse(resp.body ? resp.body : "", resp.len, &token, &exp, err);
    ks_http_resp_release(&resp);
    if (rr < 0)
        return rr;
    if (cache_token(r, key, token, exp) < 0)
        return ks_error_set(err, ENOMEM, "token");
    return 0;
}

int ks_registry_authenticate(struct ks_registry *r, const char *challenge, const char *scope,
                             struct ks_error **err)
{
    struct ks_auth_challenge ch;
    int rr = ks_auth_challenge_parse(challenge, &ch, err);
    if (rr < 0)
        return ks_error_set_plain(err, EACCES, "%s: %s", r->domain, (*err)->msg);
    if (ch.scheme == KS_AUTH_BASIC) {
        ks_auth_challenge_release(&ch);
        if (r->user == NULL || r->basic)
            return ks_error_set_plain(err, EACCES, "%s: unauthorized: authentication required",
                                      r->domain);
        r->basic = true;
        return 0;
    }
    ks_auth_challenge_release(&r->bearer);
    r->bearer = ch;
    /* The scope asked for by the client, or the challenge's when the request had none. */
    return fetch_token(r, scope ? scope : r->bearer.scope, scope ? scope : "", err);
}

static int request_once(struct ks_registry *r, const char *scope, const struct ks_http_req *req,
                        struct ks_http_resp *resp, struct ks_error **err)
{
    _cleanup_free_ char *auth = ks_registry_auth_header(r, scope);
    size_t n = 0;
    while (req->headers && req->headers[n])
        n++;
    _cleanup_free_ const char **hdrs = calloc(n + 2, sizeof(char *));
    if (hdrs == NULL)
        return ks_error_set(err, ENOMEM, "request");
    for (size_t i = 0; i < n; i++)
        hdrs[i] = req->headers[i];
    hdrs[n] = auth;
    struct ks_http_req q = *req;
    q.headers = hdrs;
    return ks_http_do(&r->tls, &q, resp, err);
}

int ks_registry_request(struct ks_registry *r, const char *scope, const struct ks_http_req *req,
                        struct ks_http_resp *resp, struct ks_error **err)
{
    int rr = ks_registry_connect(r, err);
    if (rr < 0)
        return rr;
    off_t pos = req->body_fd >= 0 ? lseek(req->body_fd, 0, SEEK_CUR) : -1;
    rr = request_once(r, scope, req, resp, err);
    if (rr < 0 || resp->status != 401)
        return rr;
    if (resp->www_authenticate == NULL)
        return ks_error_set_plain(err, EACCES, "%s: unauthorized (no challenge)", r->domain);
    _cleanup_free_ char *challenge = strdup(resp->www_authenticate);
    rr = ks_registry_authenticate(r, challenge, scope, err);
    if (rr < 0)
        return rr;
    if (pos >= 0 && lseek(req->body_fd, pos, SEEK_SET) < 0)
        return ks_error_set(err, errno, "rewind the upload");
    rr = request_once(r, scope, req, resp, err);
    if (rr >= 0 && resp->status == 401) {
        _cleanup_free_ char *why = ks_registry_error_text(resp);
        return ks_error_set_plain(err, EACCES, "%s: %s", r->domain, why);
    }
    return rr;
}

char *ks_registry_error_text(const struct ks_http_resp *resp)
{
    _cleanup_json_ json_object *o = NULL;
    char *s = NULL;
    if (resp->body && resp->len && ks_json_parse(resp->body, resp->len, &o, NULL) >= 0) {
        json_object *errs = ks_json_get_type(o, "errors", json_type_array);
        json_object *e0 =
            errs && json_object_array_length(errs) ? json_object_array_get_idx(errs, 0) : NULL;
        const char *code = ks_json_str(e0, "code"), *msg = ks_json_str(e0, "message");
        if (msg || code) {
            _cleanup_free_ char *lc = code ? strdup(code) : NULL;
            for (char *p = lc; p && *p; p++)
                *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p == '_' ? ' ' : *p);
            if (asprintf(&s, "%s%s%s", lc ? lc : "", lc && msg ? ": " : "", msg ? msg : "") >= 0)
                return s;
        }
        const char *detail = ks_json_str(o, "details");
        if (detail && asprintf(&s, "%s", detail) >= 0)
            return s;
    }
    if (resp->status == 401 && asprintf(&s, "unauthorized: authentication required") >= 0)
        return s;
    if (asprintf(&s, "HTTP status %ld", resp->status) < 0)
        return NULL;
    return s;
}

int ks_registry_ping(struct ks_registry *r, struct ks_error **err)
{
    int rr = ks_registry_connect(r, err);
    if (rr < 0)
        return rr;
    _cleanup_free_ char *url = ks_registry_url(r, "/v2/");
    struct ks_http_req req = {
        .method = "GET", .url = url, .body_fd = -EBADF, .max_body = ERROR_BODY_MAX};
    struct ks_http_resp resp = {0};
    rr = ks_registry_request(r, NULL, &req, &resp, err);
    if (rr >= 0 && resp.status != 200) {
        _cleanup_free_ char *why = ks_registry_error_text(&resp);
        rr = ks_error_set_plain(err, resp.status == 401 || resp.status == 403 ? EACCES : EPROTO,
                                "%s: %s", r->domain, why);
    }
    /* Login with a bearer registry: the credentials must also get a token. */
    if (rr >= 0 && !r->basic && r->bearer.realm && r->n_tokens == 0)
        rr = fetch_token(r, NULL, "", err);
    ks_http_resp_release(&resp);
    return rr;
}

int ks_registry_tags(struct ks_registry *r, const char *path, char ***ret, struct ks_error **err)
{
    _cleanup_free_ char *scope = ks_registry_scope(path, false);
    int rr = ks_registry_connect(r, err);
    if (rr < 0)
        return rr;
    /* One page as large as registries give (distribution caps n at 1000 by default). */
    _cleanup_free_ char *url = ks_registry_url(r, "/v2/%s/tags/list?n=1000", path);
    if (url == NULL)
        return ks_error_set(err, ENOMEM, "tags");
    struct ks_http_req req = {
        .method = "GET", .url = url, .body_fd = -EBADF, .max_body = (size_t)16 << 20};
    struct ks_http_resp resp = {0};
    rr = ks_registry_request(r, scope, &req, &resp, err);
    if (rr >= 0 && resp.status != 200) {
        _cleanup_free_ char *why = ks_registry_error_text(&resp);
        rr = ks_error_set_plain(err, resp.status == 404 ? ENOENT : EPROTO, "%s: tags: %s", path,
                                why);
    }
    _cleanup_json_ json_object *o = NULL;
    if (rr >= 0)
        rr = ks_json_parse(resp.body ? resp.body : "", resp.len, &o, err);
    ks_http_resp_release(&resp);
    if (rr < 0)
        return rr;
    json_object *a = ks_json_get_type(o, "tags", json_type_array);
    size_t n = a ? json_object_array_length(a) : 0;
    _cleanup_strv_ char **tags = calloc(n + 1, sizeof(char *));
    if (tags == NULL)
        return ks_error_set(err, ENOMEM, "tags");
    for (size_t i = 0, j = 0; i < n; i++) {
        const char *t = json_object_get_string(json_object_array_get_idx(a, i));
        if (t && strlen(t) <= 128 && (tags[j] = strdup(t)))
            j++;
    }
    *ret = TAKE_PTR(tags);
    return 0;
}
