/* `pull`: reference → manifest (an index resolved to the platform's manifest) → config →
 * layers not in the store, downloaded in parallel → the image recorded with its tag and
 * repository digest in one transaction. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../base/hash.h"
#include "../image/blobstore.h"
#include "../image/layer.h"
#include "../image/manifest.h"
#include "../image/ref.h"
#include "../image/store.h"
#include "client_internal.h"

static const char *const accept_manifests =
    "Accept: application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5, "
    "application/vnd.docker.distribution.manifest.v1+json;q=0.5";

void ks_pull_result_release(struct ks_pull_result *r)
{
    free(r->image_id);
    free(r->digest);
    *r = (struct ks_pull_result){0};
}

static bool is_schema1(const char *type, const char *body, size_t len)
{
    if (type && strncmp(type, "application/vnd.docker.distribution.manifest.v1", 47) == 0)
        return true;
    /* A schema 1 document served as application/json still says so. */
    const char *p = len < 4096 ? strstr(body, "\"schemaVersion\"") : NULL;
    if (p) {
        p += 15;
        while (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n')
            p++;
        return *p == '1';
    }
    return false;
}

int ks_registry_get_manifest(struct ks_registry *r, const char *path, const char *reference,
                             char **ret_body, size_t *ret_len, char **ret_type, char **ret_digest,
                             struct ks_error **err)
{
    _cleanup_free_ char *scope = ks_registry_scope(path, false);
    int rr = ks_registry_connect(r, err);
    if (rr < 0)
        return rr;
    _cleanup_free_ char *url = ks_registry_url(r, "/v2/%s/manifests/%s", path, reference);
    const char *hdrs[] = {accept_manifests, NULL};
    struct ks_http_req req = {.method = "GET",
                              .url = url,
                              .headers = hdrs,
                              .body_fd = -EBADF,
                              .max_body = KS_MANIFEST_MAX_SIZE};
    struct ks_http_resp resp = {0};
    rr = ks_registry_request(r, scope, &req, &resp, err);
    if (rr == -EFBIG) {
        ks_http_resp_release(&resp);
        return ks_error_wrap(err, "manifest for %s:%s is too large", path, reference);
    }
    if (rr >= 0 && resp.status != 200) {
        _cleanup_free_ char *why = ks_registry_error_text(&resp);
        rr = ks_error_set_plain(err, resp.status == 404 ? ENOENT : EPROTO,
                                "manifest for %s/%s:%s: %s", r->domain, path, reference, why);
    }
    char digest[KS_SHA256_DIGEST_LEN];
    if (rr >= 0 && resp.body == NULL)
        rr = ks_error_set_plain(err, EPROTO, "manifest for %s:%s: empty answer", path, reference);
    if (rr >= 0 && ks_sha256_hex(resp.body, resp.len, digest) < 0)
        rr = ks_error_set(err, ENOMEM, "manifest digest");
    if (rr >= 0 && is_schema1(resp.content_type, resp.body, resp.len))
        rr = ks_error_set_plain(err, ENOTSUP,
                                "%s/%s:%s is a Docker image manifest schema 1, which is not "
                                "supported (push it again with a current client to convert it "
                                "to schema 2)",
                                r->domain, path, reference);
    /* A manifest named by digest is checked against it; by tag, against the digest the
     * registry says it has (when it says one in a form that can be checked). */
    const char *want = ks_is_digest(reference) ? reference : resp.docker_content_digest;
    if (rr >= 0 && want && strncmp(want, "sha256:", 7) == 0 && strcmp(want, digest) != 0)
        rr = ks_error_set_plain(err, EBADMSG,
                                "manifest for %s:%s: digest mismatch: expected %s, "
                                "got %s",
                                path, reference, want, digest);
    if (rr < 0) {
        ks_http_resp_release(&resp);
        return rr;
    }
    *ret_body = TAKE_PTR(resp.body);
    *ret_len = resp.len;
    *ret_type = resp.content_type ? TAKE_PTR(resp.content_type) : NULL;
    *ret_digest = strdup(digest);
    ks_http_resp_release(&resp);
    return 0;
}

int ks_registry_get_blob(struct ks_registry *r, const char *path, const char *digest, int64_t size,
                         size_t max, char **ret, size_t *ret_len, struct ks_error **err)
{
    if (size < 0 || (uint64_t)size > max)
        return ks_error_set_plain(err, EFBIG, "blob %s: %lld bytes is over the limit of %zu",
                                  digest, (long long)size, max);
    _cleanup_free_ char *scope = ks_registry_scope(path, false);
    _cleanup_free_ char *url = ks_registry_url(r, "/v2/%s/blobs/%s", path, digest);
    struct ks_http_req req = {.method = "GET",
                              .url = url,
                              .body_fd = -EBADF,
                              .max_body = (size_t)size,
                              .any_redirect = true};
    struct ks_http_resp resp = {0};
    int rr = ks_registry_request(r, scope, &req, &resp, err);
    if (rr == -EFBIG) {
        ks_http_resp_release(&resp);
        return ks_error_set_plain(err, EBADMSG, "blob %s: larger than its %lld bytes", digest,
                                  (long long)size);
    }
    if (rr >= 0 && resp.status != 200) {
        _cleanup_free_ char *why = ks_registry_error_text(&resp);
        rr = ks_error_set_plain(err, resp.status == 404 ? ENOENT : EPROTO, "blob %s: %s", digest,
                                why);
    }
    char got[KS_SHA256_DIGEST_LEN];
    if (rr >= 0 && (int64_t)resp.len != size)
        rr = ks_error_set_plain(err, EBADMSG, "blob %s: %zu bytes, expected %lld", digest, resp.len,
                                (long long)size);
    if (rr >= 0 && ks_sha256_hex(resp.body ? resp.body : "", resp.len, got) < 0)
        rr = ks_error_set(err, ENOMEM, "digest");
    if (rr >= 0 && strcmp(got, digest) != 0)
        rr = ks_error_set_plain(err, EBADMSG, "blob digest mismatch: expected %s, got %s", digest,
                                got);
    if (rr >= 0) {
        *ret_len = resp.len;
        *ret = resp.body ? TAKE_PTR(resp.body) : strdup("");
    }
    ks_http_resp_release(&resp);
    return rr;
}

/* Resolves the reference to an image manifest, through an index when it is one. */
static int resolve(struct ks_registry *r, const struct ks_ref *ref, const struct ks_pull_opts *o,
                   struct ks_manifest **ret, char **ret_top_digest, char **ret_raw,
                   size_t *ret_raw_len, struct ks_error **err)
{
    const char *reference = ref->digest ? ref->digest : ref->tag;
    _cleanup_free_ char *body = NULL, *type = NULL, *digest = NULL;
    size_t len;
    int rr = ks_registry_get_manifest(r, ref->path, reference, &body, &len, &type, &digest, err);
    if (rr < 0)
        return rr;
    _cleanup_manifest_ struct ks_manifest *m = NULL;
    rr = ks_manifest_parse(body, len, type, &m, err);
    if (rr < 0)
        return ks_error_wrap(err, "%s/%s:%s", r->domain, ref->path, reference);
    *ret_top_digest = TAKE_PTR(digest);
    for (int depth = 0; m->kind == KS_MANIFEST_INDEX; depth++) {
        if (depth >= 2)
            return ks_error_msg(err, "%s: indexes nested too deeply", ref->path);
        struct utsname u;
        uname(&u);
        const struct ks_descriptor *d = NULL;
        rr = ks_index_select_platform(m, o && o->os ? o->os : "linux",
                                      o && o->arch ? o->arch : u.machine, o ? o->variant : NULL, &d,
                                      err);
        if (rr < 0)
            return ks_error_wrap(err, "%s/%s:%s", r->domain, ref->path, reference);
        _cleanup_free_ char *b2 = NULL, *t2 = NULL, *d2 = NULL;
        size_t l2;
        rr = ks_registry_get_manifest(r, ref->path, d->digest, &b2, &l2, &t2, &d2, err);
        if (rr >= 0 && (int64_t)l2 != d->size)
            rr = ks_error_set_plain(err, EBADMSG, "manifest %s: %zu bytes, the index says %lld",
                                    d->digest, l2, (long long)d->size);
        _cleanup_manifest_ struct ks_manifest *m2 = NULL;
        if (rr >= 0)
            rr = ks_manifest_parse(b2, l2, d->media_type ? d->media_type : t2, &m2, err);
        if (rr < 0)
            return rr;
        ks_manifest_free(m);
        m = TAKE_PTR(m2);
        free(body);
        body = TAKE_PTR(b2);
        len = l2;
    }
    *ret = TAKE_PTR(m);
    *ret_raw = TAKE_PTR(body);
    *ret_raw_len = len;
    return 0;
}

struct pulled {
    struct ks_store_layer **layers;
    struct ks_fetch_item *items;
    size_t n;
};

static void pulled_release(struct pulled *p)
{
    for (size_t i = 0; p->layers && i < p->n; i++)
        ks_store_layer_free(p->layers[i]);
    for (size_t i = 0; p->items && i < p->n; i++)
        ks_store_layer_free(p->items[i].layer);
    free(p->layers);
    free(p->items);
}

/* A layer whose blob is in the store already (an earlier pull stopped before it recorded the
 * image, or another image came from the same blob) is unpacked from there rather than
 * downloaded again. 1 when *ret was made so, 0 when it has to be downloaded. */
static int from_local_blob(struct ks_store *s, const struct ks_descriptor *d, const char *short_id,
                           const struct ks_pull_opts *o, struct ks_store_layer **ret)
{
    _cleanup_close_ int fd = -EBADF;
    int64_t size = -1;
    if (ks_blobstore_open_blob(ks_store_blobs(s), d->digest, &fd, &size, NULL) < 0 ||
        size != d->size)
        return 0;
    struct ks_store_layer_opts lo = {.detached = true, .expected_digest = d->digest};
    struct ks_error *e = NULL;
    int r = ks_store_layer_add(s, fd, &lo, ret, &e);
    ks_error_free(e);
    if (r < 0)
        return 0;
    if (o && o->progress)
        o->progress(o->userdata, &(struct ks_progress){.id = short_id, .state = KS_PROGRESS_DONE});
    return 1;
}

/* Layers whose chain the store has are taken as they are; the rest are downloaded. */
static int get_layers(struct ks_registry *r, struct ks_store *s, const struct ks_ref *ref,
                      const struct ks_manifest *m, const struct ks_image_config *cfg,
                      const struct ks_pull_opts *o, struct pulled *p, struct ks_error **err)
{
    size_t n = m->n_layers;
    p->n = n;
    p->layers = calloc(n + 1, sizeof(*p->layers));
    p->items = calloc(n + 1, sizeof(*p->items));
    if (p->layers == NULL || p->items == NULL)
        return ks_error_set(err, ENOMEM, "pull");
    char chain[KS_SHA256_DIGEST_LEN] = "";
    size_t n_fetch = 0;
    bool have_chain = true;
    for (size_t i = 0; i < n; i++) {
        const struct ks_descriptor *d = &m->layers[i];
        if (!ks_media_type_is_layer(d->type))
            return ks_error_msg(err, "layers[%zu]: unsupported media type `%s`", i,
                                d->media_type ? d->media_type : "");
        char short_id[13];
        snprintf(short_id, sizeof(short_id), "%.12s", strchr(d->digest, ':') + 1);
        if (have_chain) {
            struct ks_error *e = NULL;
            int rr =
                ks_store_layer_existing(s, i ? chain : NULL, cfg->diff_ids[i], &p->layers[i], &e);
            ks_error_free(e);
            if (rr >= 0) {
                if (o && o->progress)
                    o->progress(o->userdata,
                                &(struct ks_progress){.id = short_id, .state = KS_PROGRESS_EXISTS});
            } else {
                have_chain = false;
            }
            char next[KS_SHA256_DIGEST_LEN];
            ks_chain_id(i ? chain : NULL, cfg->diff_ids[i], next);
            memcpy(chain, next, sizeof(chain));
        }
        if (p->layers[i] == NULL && from_local_blob(s, d, short_id, o, &p->layers[i]) == 0)
            p->items[n_fetch++].desc = d;
    }
    int rr = ks_registry_fetch_layers(r, s, ref->path, p->items, n_fetch, o ? o->progress : NULL,
                                      o ? o->userdata : NULL, err);
    if (rr < 0)
        return rr;
    for (size_t i = 0, j = 0; i < n; i++)
        if (p->layers[i] == NULL) {
            p->layers[i] = TAKE_PTR(p->items[j].layer);
            j++;
        }
    return 0;
}

static int record(struct ks_store *s, const struct ks_ref *ref, const char *top_digest,
                  const char *config, size_t config_len, struct pulled *p, char **ret_id,
                  struct ks_error **err)
{
    _cleanup_free_ char *repo = ks_ref_repository(ref), *full_tag = NULL, *full_digest = NULL;
    if (repo == NULL || asprintf(&full_digest, "%s@%s", repo, top_digest) < 0)
        return ks_error_set(err, ENOMEM, "pull");
    if (ref->tag && asprintf(&full_tag, "%s:%s", repo, ref->tag) < 0)
        return ks_error_set(err, ENOMEM, "pull");
    const char *tags[] = {full_tag, NULL};
    const char *digests[] = {full_digest, NULL};
    struct ks_store_image_spec spec = {
        .config = config,
        .config_len = config_len,
        .layers = p->layers,
        .n_layers = p->n,
        .tags = tags,
        .digests = digests,
    };
    return ks_store_image_add(s, &spec, ret_id, err);
}

int ks_registry_pull(struct ks_store *s, const char *name, const struct ks_pull_opts *o,
                     struct ks_pull_result *ret, struct ks_error **err)
{
    _cleanup_ref_ struct ks_ref *ref = NULL;
    int rr = ks_ref_parse(name, &ref, err);
    if (rr < 0)
        return rr;
    struct ks_registry_opts ro = {.storage_root = o ? o->storage_root : NULL};
    _cleanup_registry_ struct ks_registry *r = NULL;
    rr = ks_registry_open(ref->domain, &ro, &r, err);
    if (rr < 0)
        return rr;
    _cleanup_manifest_ struct ks_manifest *m = NULL;
    _cleanup_free_ char *top = NULL, *raw = NULL;
    size_t raw_len = 0;
    rr = resolve(r, ref, o, &m, &top, &raw, &raw_len, err);
    if (rr < 0)
        return rr;
    if (o && o->resolved)
        o->resolved(o->userdata, top);
    if (!ks_media_type_is_config(m->config.type))
        return ks_error_msg(err, "%s: not a container image (config media type `%s`)", name,
                            m->config.media_type ? m->config.media_type : "");
    _cleanup_free_ char *config = NULL;
    size_t config_len = 0;
    rr = ks_registry_get_blob(r, ref->path, m->config.digest, m->config.size,
                              KS_IMAGE_CONFIG_MAX_SIZE, &config, &config_len, err);
    if (rr < 0)
        return ks_error_wrap(err, "image config");
    _cleanup_image_config_ struct ks_image_config *cfg = NULL;
    rr = ks_image_config_parse(config, config_len, &cfg, err);
    if (rr < 0)
        return rr;
    if (cfg->n_diff_ids != m->n_layers)
        return ks_error_set_plain(err, EBADMSG,
                                  "the manifest has %zu layers, the config %zu diff_ids",
                                  m->n_layers, cfg->n_diff_ids);
    _cleanup_free_ char *before = NULL;
    _cleanup_free_ char *refstr = ks_ref_string(ref);
    if (refstr && ks_store_lookup(s, refstr, &before, NULL) < 0)
        before = NULL;

    struct pulled p = {0};
    rr = get_layers(r, s, ref, m, cfg, o, &p, err);
    if (rr >= 0)
        rr = record(s, ref, top, config, config_len, &p, &ret->image_id, err);
    pulled_release(&p);
    if (rr < 0)
        return rr;
    /* The manifest itself, so that a push of this image can send it unchanged. */
    ks_blobstore_put(ks_store_blobs(s), raw, raw_len, NULL, NULL);
    ret->digest = TAKE_PTR(top);
    ret->up_to_date = before && strcmp(before, ret->image_id) == 0;
    return 0;
}
