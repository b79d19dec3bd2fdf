/* `push`: the image's blobs (layers as the store keeps them, the config), each skipped when the
 * registry has it, mounted when it is in another repository of the same registry that the
 * store knows the image from, else uploaded; then the manifest under the tag. A manifest the
 * image was pulled with is sent unchanged (same digest); otherwise an OCI manifest is made. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/hash.h"
#include "../base/json.h"
#include "../engine/db.h"
#include "../image/blobstore.h"
#include "../image/manifest.h"
#include "../image/ref.h"
#include "../image/store.h"
#include "client_internal.h"

#define DEFAULT_CHUNK ((int64_t)16 << 20)
#define SMALL_BODY    ((size_t)64 << 10)

struct push {
    struct ks_store *s;
    struct ks_registry *r;
    const struct ks_ref *ref;
    char *scope;
    const struct ks_push_opts *o;
    int64_t chunk;
    char **mount_from; /* repository paths on this registry the image came from */
    bool hide;         /* no progress (the config, which Docker does not show either) */
};

static void progress(struct push *p, const char *digest, enum ks_progress_state st, int64_t cur,
                     int64_t total, const char *from)
{
    if (p->o == NULL || p->o->progress == NULL || p->hide)
        return;
    char id[13];
    snprintf(id, sizeof(id), "%.12s", strchr(digest, ':') ? strchr(digest, ':') + 1 : digest);
    p->o->progress(
        p->o->userdata,
        &(struct ks_progress){.id = id, .state = st, .current = cur, .total = total, .from = from});
}

static int fail_status(struct ks_http_resp *resp, const char *what, const char *digest,
                       struct ks_error **err)
{
    _cleanup_free_ char *why = ks_registry_error_text(resp);
    return ks_error_set_plain(err, resp->status == 401 || resp->status == 403 ? EACCES : EPROTO,
                              "%s %s: %s", what, digest, why);
}

/* 1 when the registry has the blob (its size in *ret_size), 0 when not. */
static int blob_exists(struct push *p, const char *digest, int64_t *ret_size, struct ks_error **err)
{
    _cleanup_free_ char *url = ks_registry_url(p->r, "/v2/%s/blobs/%s", p->ref->path, digest);
    struct ks_http_req req = {.method = "HEAD",
                              .url = url,
                              .body_fd = -EBADF,
                              .max_body = SMALL_BODY,
                              .any_redirect = true};
    struct ks_http_resp resp = {0};
    int rr = ks_registry_request(p->r, p->scope, &req, &resp, err);
    if (rr >= 0) {
        rr = resp.status == 200 ? 1 : 0;
        if (rr && ret_size)
            *ret_size = resp.content_length;
        if (resp.status != 200 && resp.status != 404)
            rr = fail_status(&resp, "check blob", digest, err);
    }
    ks_http_resp_release(&resp);
    return rr;
}

/* An absolute upload URL from a Location header. */
static char *absolute(struct push *p, const char *location)
{
    if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0)
        return strdup(location);
    return ks_registry_url(p->r, "%s%s", location[0] == '/' ? "" : "/", location);
}

/* Starts an upload, or mounts the blob: 1 when mounted (from *ret_from), else 0 with the upload
 * location in *ret_location. */
static int start_upload(struct push *p, const char *digest, char **ret_location,
                        const char **ret_from, struct ks_error **err)
{
    for (size_t i = 0; p->mount_from && p->mount_from[i]; i++) {
        _cleanup_free_ char *url = ks_registry_url(p->r, "/v2/%s/blobs/uploads/?mount=%s&from=%s",
                                                   p->ref->path, digest, p->mount_from[i]);
        _cleanup_free_ char *scope = NULL;
        /* The token must also allow pulling from the source repository. */
        if (asprintf(&scope, "%s repository:%s:pull", p->scope, p->mount_from[i]) < 0)
            return ks_error_set(err, ENOMEM, "push");
        struct ks_http_req req = {.method = "POST",
                                  .url = url,
                                  .body_fd = -EBADF,
                                  .max_body = SMALL_BODY,
                                  .no_redirect = true};
        struct ks_http_resp resp = {0};
        int rr = ks_registry_request(p->r, scope, &req, &resp, err);
        if (rr >= 0 && resp.status == 201) {
            ks_http_resp_release(&resp);
            *ret_from = p->mount_from[i];
            return 1;
        }
        if (rr >= 0 && resp.status == 202 && resp.location) {
            *ret_location = absolute(p, resp.location);
            ks_http_resp_release(&resp);
            return *ret_location ? 0 : ks_error_set(err, ENOMEM, "push");
        }
        ks_http_resp_release(&resp);
        if (rr < 0)
            return rr;
    }
    _cleanup_free_ char *url = ks_registry_url(p->r, "/v2/%s/blobs/uploads/", p->ref->path);
    struct ks_http_req req = {.method = "POST",
                              .url = url,
                              .body_fd = -EBADF,
                              .max_body = SMALL_BODY,
                              .no_redirect = true};
    struct ks_http_resp resp = {0};
    int rr = ks_registry_request(p->r, p->scope, &req, &resp, err);
    if (rr >= 0 && (resp.status != 202 || resp.location == NULL))
        rr = fail_status(&resp, "start the upload of", digest, err);
    if (rr >= 0 && (*ret_location = absolute(p, resp.location)) == NULL)
        rr = ks_error_set(err, ENOMEM, "push");
    ks_http_resp_release(&resp);
    return rr < 0 ? rr : 0;
}

static int send_request(struct push *p, const char *method, const char *url,
                        const char *const *hdrs, const void *body, size_t len, long want,
                        char **ret_location, const char *digest, struct ks_error **err)
{
    struct ks_http_req req = {.method = method,
                              .url = url,
                              .headers = hdrs,
                              .body = body,
                              .body_len = len,
                              .body_fd = -EBADF,
                              .max_body = SMALL_BODY,
                              .no_redirect = true};
    struct ks_http_resp resp = {0};
    int rr = ks_registry_request(p->r, p->scope, &req, &resp, err);
    if (rr >= 0 && resp.status != want)
        rr = fail_status(&resp, "upload", digest, err);
    if (rr >= 0 && ret_location) {
        free(*ret_location);
        *ret_location = resp.location ? absolute(p, resp.location) : NULL;
        if (*ret_location == NULL)
            rr = ks_error_set_plain(err, EPROTO, "upload %s: no Location in the answer", digest);
    }
    ks_http_resp_release(&resp);
    return rr;
}

/* Uploads what fd gives: one PUT when it fits a chunk, else PATCH chunks and a closing PUT.
 * The bytes are hashed on the way and must give digest. *ret_size: the bytes sent. */
static int upload(struct push *p, char *location, const char *digest, int fd, int64_t total,
                  int64_t *ret_size, struct ks_error **err)
{
    _cleanup_free_ char *buf = malloc((size_t)p->chunk), *loc = location;
    _cleanup_md_ EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (buf == NULL || md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        return ks_error_set(err, ENOMEM, "push");
    static const char octet[] = "Content-Type: application/octet-stream";
    int64_t sent = 0;
    size_t have = 0; /* bytes in buf for the closing PUT */
    for (;;) {
        ssize_t n = ks_read_all(fd, buf, (size_t)p->chunk);
        if (n < 0)
            return ks_error_set(err, (int)-n, "read blob %s", digest);
        if (n == 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)n);
        if (sent == 0 && n < p->chunk) {
            have = (size_t)n; /* everything fits one PUT */
            break;
        }
        char range[96];
        snprintf(range, sizeof(range), "Content-Range: %" PRId64 "-%" PRId64, sent, sent + n - 1);
        const char *hdrs[] = {octet, range, NULL};
        int rr = send_request(p, "PATCH", loc, hdrs, buf, (size_t)n, 202, &loc, digest, err);
        if (rr < 0)
            return rr;
        sent += n;
        progress(p, digest, KS_PROGRESS_TRANSFER, sent, total, NULL);
    }
    char got[KS_SHA256_DIGEST_LEN];
    if (ks_sha256_final(md, got) < 0)
        return ks_error_set(err, ENOMEM, "push");
    if (strcmp(got, digest) != 0)
        return ks_error_set_plain(err, EBADMSG, "blob %s in the store gives %s: store corrupt",
                                  digest, got);
    _cleanup_free_ char *url = NULL;
    if (asprintf(&url, "%s%cdigest=%s", loc, strchr(loc, '?') ? '&' : '?', digest) < 0)
        return ks_error_set(err, ENOMEM, "push");
    const char *hdrs[] = {octet, NULL};
    int rr = send_request(p, "PUT", url, hdrs, buf, have, 201, NULL, digest, err);
    if (rr < 0)
        return rr;
    *ret_size = sent + (int64_t)have;
    progress(p, digest, KS_PROGRESS_TRANSFER, *ret_size, *ret_size, NULL);
    return 0;
}

/* Makes sure the registry has the blob read from fd (digest known, size maybe -1). */
static int push_blob(struct push *p, const char *digest, int fd, int64_t size, int64_t *ret_size,
                     struct ks_error **err)
{
    progress(p, digest, KS_PROGRESS_WAITING, 0, size, NULL);
    int64_t have_size = -1;
    int rr = blob_exists(p, digest, &have_size, err);
    if (rr < 0)
        return rr;
    if (rr > 0 && (size < 0 || have_size < 0 || have_size == size)) {
        *ret_size = size >= 0 ? size : have_size;
        if (*ret_size < 0)
            return ks_error_set_plain(err, EPROTO, "blob %s: the registry gives no size", digest);
        progress(p, digest, KS_PROGRESS_EXISTS, 0, 0, NULL);
        return 0;
    }
    char *location = NULL;
    const char *from = NULL;
    rr = start_upload(p, digest, &location, &from, err);
    if (rr < 0)
        return rr;
    if (rr > 0) {
        /* Mounted: its size is what the registry now says. */
        if (size < 0 && (blob_exists(p, digest, &size, err) < 0 || size < 0))
            return ks_error_set_plain(err, EPROTO, "blob %s: the registry gives no size", digest);
        *ret_size = size;
        progress(p, digest, KS_PROGRESS_MOUNTED, 0, 0, from);
        return 0;
    }
    rr = upload(p, location, digest, fd, size, ret_size, err);
    if (rr < 0)
        return rr;
    if (size >= 0 && *ret_size != size)
        return ks_error_set_plain(err, EBADMSG,
                                  "blob %s: %" PRId64 " bytes sent, %" PRId64 " expected", digest,
                                  *ret_size, size);
    progress(p, digest, KS_PROGRESS_DONE, 0, 0, NULL);
    return 0;
}

struct out_layer {
    char *digest;
    int64_t size;
    int compression;
};

static const char *layer_media_type(int compression)
{
    static const char *const types[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    return compression >= 0 && compression < 3 ? types[compression] : NULL;
}

static int push_layer(struct push *p, const char *diff_id, struct out_layer *l,
                      struct ks_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    int rr =
        ks_store_layer_push_open(p->s, diff_id, &l->digest, &l->size, &l->compression, &fd, err);
    if (rr < 0)
        return rr;
    if (layer_media_type(l->compression) == NULL)
        return ks_error_msg(err,
                            "layer %s is compressed with neither gzip nor zstd: registries "
                            "do not take it",
                            l->digest);
    return push_blob(p, l->digest, fd, l->size, &l->size, err);
}

/* The manifest the image was pulled with, when the store kept it and it still describes
 * exactly these blobs: pushing it unchanged keeps the image's digest. */
static int reuse_manifest(struct push *p, const char *id, char **digests,
                          const struct out_layer *layers, size_t n, char **ret, size_t *ret_len,
                          char **ret_type)
{
    for (size_t i = 0; digests && digests[i]; i++) {
        const char *at = strrchr(digests[i], '@');
        _cleanup_close_ int fd = -EBADF;
        if (at == NULL || ks_blobstore_open_blob(ks_store_blobs(p->s), at + 1, &fd, NULL, NULL) < 0)
            continue;
        _cleanup_free_ char *buf = NULL;
        size_t len;
        _cleanup_manifest_ struct ks_manifest *m = NULL;
        if (ks_read_fd(fd, KS_MANIFEST_MAX_SIZE, &buf, &len, NULL) < 0 ||
            ks_manifest_parse(buf, len, NULL, &m, NULL) < 0 || m->kind != KS_MANIFEST_IMAGE ||
            strcmp(m->config.digest, id) != 0 || m->n_layers != n)
            continue;
        bool same = true;
        for (size_t j = 0; j < n && same; j++)
            same = strcmp(m->layers[j].digest, layers[j].digest) == 0 &&
                   m->layers[j].size == layers[j].size;
        if (!same)
            continue;
        *ret_type = strdup(ks_media_type_name(m->type));
        *ret_len = len;
        *ret = TAKE_PTR(buf);
        return 1;
    }
    return 0;
}

static json_object *descriptor(const char *type, const char *digest, int64_t size)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "mediaType", json_object_new_string(type));
    json_object_object_add(o, "digest", json_object_new_string(digest));
    json_object_object_add(o, "size", json_object_new_int64(size));
    return o;
}

static char *build_manifest(const char *id, int64_t config_size, const struct out_layer *layers,
                            size_t n)
{
    _cleanup_json_ json_object *m = json_object_new_object();
    json_object_object_add(m, "schemaVersion", json_object_new_int(2));
    json_object_object_add(m, "mediaType",
                           json_object_new_string("application/vnd.oci.image.manifest.v1+json"));
    json_object_object_add(m, "config",
                           descriptor("application/vnd.oci.image.config.v1+json", id, config_size));
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, descriptor(layer_media_type(layers[i].compression),
                                            layers[i].digest, layers[i].size));
    json_object_object_add(m, "layers", a);
    return strdup(ks_json_plain(m));
}

/* Other repositories of this registry the image was pulled from or pushed to. */
static char **mount_sources(struct push *p, char **digests)
{
    size_t n = digests ? ks_strv_len(digests) : 0;
    char **v = calloc(n + 1, sizeof(char *));
    for (size_t i = 0, j = 0; v && i < n; i++) {
        _cleanup_ref_ struct ks_ref *ref = NULL;
        if (ks_ref_parse(digests[i], &ref, NULL) < 0 || strcmp(ref->domain, p->ref->domain) ||
            strcmp(ref->path, p->ref->path) == 0)
            continue;
        bool dup = false;
        for (size_t k = 0; k < j; k++)
            dup = dup || strcmp(v[k], ref->path) == 0;
        if (!dup)
            v[j++] = strdup(ref->path);
    }
    return v;
}

static int put_manifest(struct push *p, const char *body, size_t len, const char *type,
                        struct ks_error **err)
{
    _cleanup_free_ char *url =
        ks_registry_url(p->r, "/v2/%s/manifests/%s", p->ref->path, p->ref->tag);
    _cleanup_free_ char *ct = NULL;
    if (url == NULL || asprintf(&ct, "Content-Type: %s", type) < 0)
        return ks_error_set(err, ENOMEM, "push");
    const char *hdrs[] = {ct, NULL};
    struct ks_http_req req = {.method = "PUT",
                              .url = url,
                              .headers = hdrs,
                              .body = body,
                              .body_len = len,
                              .body_fd = -EBADF,
                              .max_body = SMALL_BODY,
                              .no_redirect = true};
    struct ks_http_resp resp = {0};
    int rr = ks_registry_request(p->r, p->scope, &req, &resp, err);
    if (rr >= 0 && resp.status != 201)
        rr = fail_status(&resp, "put manifest", p->ref->tag, err);
    ks_http_resp_release(&resp);
    return rr;
}

static int push_image(struct push *p, const char *id, char **ret_digest, int64_t *ret_size,
                      struct ks_error **err)
{
    _cleanup_close_ int cfd = -EBADF;
    int64_t config_size;
    int rr = ks_blobstore_open_blob(ks_store_blobs(p->s), id, &cfd, &config_size, err);
    _cleanup_free_ char *config = NULL;
    size_t config_len;
    if (rr >= 0)
        rr = ks_read_fd(cfd, KS_IMAGE_CONFIG_MAX_SIZE, &config, &config_len, err);
    _cleanup_image_config_ struct ks_image_config *cfg = NULL;
    if (rr >= 0)
        rr = ks_image_config_parse(config, config_len, &cfg, err);
    if (rr < 0)
        return ks_error_wrap(err, "image config %s", id);
    _cleanup_strv_ char **digests = NULL;
    if (ks_db_digests_for_image(ks_store_db(p->s), id, &digests, NULL) < 0)
        digests = NULL;
    _cleanup_strv_ char **from = mount_sources(p, digests);
    p->mount_from = from;
    size_t n = cfg->n_diff_ids;
    _cleanup_free_ struct out_layer *layers = calloc(n + 1, sizeof(*layers));
    if (layers == NULL)
        return ks_error_set(err, ENOMEM, "push");
    for (size_t i = 0; rr >= 0 && i < n; i++)
        rr = push_layer(p, cfg->diff_ids[i], &layers[i], err);
    p->hide = true;
    if (rr >= 0 && lseek(cfd, 0, SEEK_SET) == 0)
        rr = push_blob(p, id, cfd, config_size, &config_size, err);
    p->hide = false;
    _cleanup_free_ char *manifest = NULL, *type = NULL;
    size_t len = 0;
    if (rr >= 0 && reuse_manifest(p, id, digests, layers, n, &manifest, &len, &type) == 0) {
        manifest = build_manifest(id, config_size, layers, n);
        type = strdup("application/vnd.oci.image.manifest.v1+json");
        len = manifest ? strlen(manifest) : 0;
        if (manifest == NULL || type == NULL)
            rr = ks_error_set(err, ENOMEM, "push");
    }
    for (size_t i = 0; i < n; i++)
        free(layers[i].digest);
    if (rr >= 0)
        rr = put_manifest(p, manifest, len, type, err);
    char digest[KS_SHA256_DIGEST_LEN];
    if (rr >= 0 && ks_sha256_hex(manifest, len, digest) < 0)
        rr = ks_error_set(err, ENOMEM, "push");
    if (rr < 0)
        return rr;
    /* Known from now on as there: `images --digests` shows it, and later pushes to other
     * repositories of this registry mount from it. */
    _cleanup_free_ char *repo = ks_ref_repository(p->ref);
    if (repo)
        ks_db_digest_set(ks_store_db(p->s), repo, digest, id, NULL);
    ks_blobstore_put(ks_store_blobs(p->s), manifest, len, NULL, NULL);
    *ret_digest = strdup(digest);
    *ret_size = (int64_t)len;
    return *ret_digest ? 0 : ks_error_set(err, ENOMEM, "push");
}

int ks_registry_push(struct ks_store *s, const char *name, const struct ks_push_opts *o,
                     char **ret_digest, int64_t *ret_size, struct ks_error **err)
{
    _cleanup_ref_ struct ks_ref *ref = NULL;
    int rr = ks_ref_parse(name, &ref, err);
    if (rr < 0)
        return rr;
    if (ref->tag == NULL)
        return ks_error_msg(err, "push %s: a digest reference cannot be pushed, name a tag", name);
    _cleanup_free_ char *id = NULL, *full = ks_ref_string(ref);
    if (full == NULL)
        return ks_error_set(err, ENOMEM, "push");
    rr = ks_store_lookup(s, full, &id, err);
    if (rr < 0)
        return ks_error_wrap(err, "push %s", name);
    struct ks_registry_opts ro = {.storage_root = o ? o->storage_root : NULL};
    _cleanup_registry_ struct ks_registry *r = NULL;
    rr = ks_registry_open(ref->domain, &ro, &r, err);
    if (rr < 0)
        return rr;
    rr = ks_registry_connect(r, err);
    if (rr < 0)
        return rr;
    struct push p = {.s = s,
                     .r = r,
                     .ref = ref,
                     .o = o,
                     .chunk = o && o->chunk_size > 0 ? o->chunk_size : DEFAULT_CHUNK};
    p.scope = ks_registry_scope(ref->path, true);
    if (p.scope == NULL)
        return ks_error_set(err, ENOMEM, "push");
    rr = push_image(&p, id, ret_digest, ret_size, err);
    free(p.scope);
    return rr;
}
