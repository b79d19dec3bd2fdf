/* `search`: Docker Hub's /v1/search, or the repositories of /v2/_catalog whose name contains
 * the term on registries that have no search. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/json.h"
#include "client_internal.h"

#define SEARCH_MAX_BODY ((size_t)16 << 20)
#define CATALOG_PAGE    1000

void ks_search_results_free(struct ks_search_result *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].name);
        free(v[i].description);
    }
    free(v);
}

struct results {
    struct ks_search_result *v;
    size_t n, limit;
};

static int add(struct results *res, const char *name, const char *desc, int64_t stars,
               bool official, bool automated)
{
    if (res->n >= res->limit || name == NULL)
        return 0;
    struct ks_search_result *v = reallocarray(res->v, res->n + 1, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    res->v = v;
    v[res->n] = (struct ks_search_result){.name = strdup(name),
                                          .description = strdup(desc ? desc : ""),
                                          .stars = stars,
                                          .official = official,
                                          .automated = automated};
    if (v[res->n].name == NULL || v[res->n].description == NULL) {
        free(v[res->n].name);
        free(v[res->n].description);
        return -ENOMEM;
    }
    res->n++;
    return 0;
}

static int get_json(struct ks_registry *r, const char *url, const char *scope, long *ret_status,
                    json_object **ret, struct ks_error **err)
{
    struct ks_http_req req = {
        .method = "GET", .url = url, .body_fd = -EBADF, .max_body = SEARCH_MAX_BODY};
    struct ks_http_resp resp = {0};
    int rr = ks_registry_request(r, scope, &req, &resp, err);
    *ret_status = resp.status;
    *ret = NULL;
    if (rr >= 0 && resp.status == 200 && resp.body &&
        ks_json_parse(resp.body, resp.len, ret, NULL) < 0)
        *ret = NULL;
    ks_http_resp_release(&resp);
    return rr;
}

static int v1_search(struct ks_registry *r, const char *base, const char *q, struct results *res,
                     struct ks_error **err)
{
    const struct ks_curl *c = ks_curl_get(err);
    if (c == NULL)
        return -ENOENT;
    char *esc = c->easy_escape(NULL, q, 0);
    _cleanup_free_ char *url = NULL;
    int n = asprintf(&url, "%s/v1/search?q=%s&n=%zu", base, esc ? esc : "", res->limit);
    c->free(esc);
    if (n < 0)
        return ks_error_set(err, ENOMEM, "search");
    long status;
    _cleanup_json_ json_object *o = NULL;
    int rr = get_json(r, url, NULL, &status, &o, err);
    if (rr < 0)
        return rr;
    json_object *a = ks_json_get_type(o, "results", json_type_array);
    if (a == NULL)
        return 0; /* no search here */
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *e = json_object_array_get_idx(a, i);
        if (add(res, ks_json_str(e, "name"), ks_json_str(e, "description"),
                ks_json_int(e, "star_count", 0), ks_json_bool(e, "is_official", false),
                ks_json_bool(e, "is_automated", false)) < 0)
            return ks_error_set(err, ENOMEM, "search");
    }
    return 1;
}

static int catalog(struct ks_registry *r, const char *q, struct results *res, struct ks_error **err)
{
    _cleanup_free_ char *url = ks_registry_url(r, "/v2/_catalog?n=%d", CATALOG_PAGE);
    if (url == NULL)
        return ks_error_set(err, ENOMEM, "search");
    long status;
    _cleanup_json_ json_object *o = NULL;
    int rr = get_json(r, url, "registry:catalog:*", &status, &o, err);
    if (rr < 0)
        return rr;
    json_object *a = ks_json_get_type(o, "repositories", json_type_array);
    if (a == NULL)
        return ks_error_set_plain(err, ENOTSUP,
                                  "%s has neither a search nor a catalog (HTTP status %ld)",
                                  r->domain, status);
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(a, i));
        if (name == NULL || strstr(name, q) == NULL)
            continue;
        _cleanup_free_ char *full = NULL;
        if (asprintf(&full, "%s/%s", r->domain, name) < 0 ||
            add(res, full, "", 0, false, false) < 0)
            return ks_error_set(err, ENOMEM, "search");
    }
    return 0;
}

int ks_registry_search(const char *term, const char *storage_root, size_t limit,
                       struct ks_search_result **ret, size_t *ret_n, struct ks_error **err)
{
    /* "host:port/term" searches that registry, as Docker's client splits the index name. */
    _cleanup_free_ char *domain = NULL;
    const char *q = term;
    const char *slash = strchr(term, '/');
    if (slash) {
        size_t n = (size_t)(slash - term);
        if (memchr(term, '.', n) || memchr(term, ':', n) ||
            (n == 9 && strncmp(term, "localhost", 9) == 0)) {
            domain = strndup(term, n);
            q = slash + 1;
        }
    }
    if (domain == NULL && (domain = strdup("docker.io")) == NULL)
        return ks_error_set(err, ENOMEM, "search");
    struct ks_registry_opts ro = {.storage_root = storage_root};
    _cleanup_registry_ struct ks_registry *r = NULL;
    int rr = ks_registry_open(domain, &ro, &r, err);
    if (rr < 0)
        return rr;
    struct results res = {.limit = limit ? limit : 25};
    if (strcmp(domain, "docker.io") == 0) {
        rr = v1_search(r, "https://index.docker.io", q, &res, err);
    } else {
        rr = ks_registry_connect(r, err);
        if (rr >= 0)
            rr = v1_search(r, r->base, q, &res, err);
        if (rr == 0)
            rr = catalog(r, q, &res, err);
    }
    if (rr < 0) {
        ks_search_results_free(res.v, res.n);
        return rr;
    }
    *ret = res.v;
    *ret_n = res.n;
    return 0;
}
