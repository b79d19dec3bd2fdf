/* Manifests (by tag and digest), tags lists, referrers, the catalog and Docker Hub's search:
 * the registry's answers about what it holds. Manifests are parsed and checked with the image
 * module's parser before they are stored, and every blob or manifest they point at must already
 * be in the repository. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/fs.h"
#include "../base/json.h"
#include "../image/manifest.h"
#include "../image/ref.h"
#include "server_internal.h"

#define INDEX_TYPE "application/vnd.oci.image.index.v1+json"

/* The digest a manifest route names: the reference itself, or what its tag points at. */
static int resolve(struct ks_reg_req *rq, char *digest, struct ks_error **err)
{
    if (rq->route.ref_is_digest) {
        snprintf(digest, KS_REG_DIGEST_MAX, "%s", rq->route.ref);
        return 0;
    }
    return ks_reg_tag_get(rq->st, rq->route.name, rq->route.ref, digest, err);
}

enum MHD_Result ks_reg_manifest_get_h(struct ks_reg_req *rq)
{
    char digest[KS_REG_DIGEST_MAX];
    _cleanup_error_ struct ks_error *e = NULL;
    _cleanup_free_ char *type = NULL;
    if (resolve(rq, digest, &e) < 0 ||
        ks_reg_manifest_get(rq->st, rq->route.name, digest, &type, &e) < 0)
        return ks_reg_error_from(rq, e, "MANIFEST_UNKNOWN");
    int fd = -EBADF;
    int64_t size = 0;
    if (ks_blobstore_open_blob(rq->st->blobs, digest, &fd, &size, &e) < 0)
        return ks_reg_error_from(rq, e, "MANIFEST_UNKNOWN");
    struct MHD_Response *resp = ks_reg_resp_fd(fd, 0, (uint64_t)size);
    ks_reg_set(resp, "Content-Type", "%s", type);
    ks_reg_set(resp, "Docker-Content-Digest", "%s", digest);
    ks_reg_set(resp, "ETag", "\"%s\"", digest);
    return ks_reg_reply(rq, 200, resp);
}

enum MHD_Result ks_reg_manifest_delete_h(struct ks_reg_req *rq)
{
    const char *name = rq->route.name;
    _cleanup_error_ struct ks_error *e = NULL;
    if (!rq->route.ref_is_digest) {
        if (ks_reg_tag_remove(rq->st, name, rq->route.ref, &e) < 0)
            return ks_reg_error_from(rq, e, "MANIFEST_UNKNOWN");
        return ks_reg_reply_empty(rq, 202);
    }
    const char *digest = rq->route.ref;
    _cleanup_manifest_ struct ks_manifest *m = NULL;
    _cleanup_free_ char *type = NULL;
    if (ks_reg_manifest_get(rq->st, name, digest, &type, &e) < 0)
        return ks_reg_error_from(rq, e, "MANIFEST_UNKNOWN");
    /* A manifest that no longer parses is still deleted; it just has no referrer link. */
    struct ks_error *ignored = NULL;
    if (ks_reg_manifest_load(rq->st, name, digest, NULL, &m, NULL, &ignored) == 0 && m->subject)
        ks_reg_referrer_remove(rq->st, name, m->subject->digest, digest, &ignored);
    ks_error_free(TAKE_PTR(ignored));
    if (ks_reg_manifest_unlink(rq->st, name, digest, &e) < 0)
        return ks_reg_error_from(rq, e, "MANIFEST_UNKNOWN");
    /* tags pointing at it go with it, as no manifest answers them any more */
    _cleanup_strv_ char **tags = NULL;
    if (ks_reg_list_tags(rq->st, name, &tags, NULL, &ignored) == 0) {
        for (char **t = tags; *t; t++) {
            char d[KS_REG_DIGEST_MAX];
            if (ks_reg_tag_get(rq->st, name, *t, d, &ignored) == 0 && strcmp(d, digest) == 0)
                ks_reg_tag_remove(rq->st, name, *t, &ignored);
            ks_error_free(TAKE_PTR(ignored));
        }
    }
    ks_error_free(ignored);
    return ks_reg_reply_empty(rq, 202);
}

static int manifest_data(struct ks_reg_req *rq, const char *data, size_t len)
{
    if (len > rq->body_max - rq->body_len)
        return ks_reg_fail(rq, 413, "SIZE_INVALID", "manifest larger than %zu bytes", rq->body_max);
    memcpy(rq->body + rq->body_len, data, len);
    rq->body_len += len;
    return 0;
}

/* The first descriptor of m that the repository does not have, or NULL. */
static const struct ks_descriptor *missing_reference(struct ks_reg_req *rq,
                                                     const struct ks_manifest *m)
{
    const char *name = rq->route.name;
    if (m->kind == KS_MANIFEST_INDEX) {
        for (size_t i = 0; i < m->n_manifests; i++) {
            _cleanup_free_ char *type = NULL;
            struct ks_error *e = NULL;
            int r = ks_reg_manifest_get(rq->st, name, m->manifests[i].digest, &type, &e);
            ks_error_free(e);
            if (r < 0)
                return &m->manifests[i];
        }
        return NULL;
    }
    if (ks_reg_blob_linked(rq->st, name, m->config.digest) != 1)
        return &m->config;
    for (size_t i = 0; i < m->n_layers; i++) {
        const struct ks_descriptor *d = &m->layers[i];
        /* foreign layers live elsewhere and are never pushed */
        if (ks_media_type_is_foreign(d->type) || d->urls)
            continue;
        if (ks_reg_blob_linked(rq->st, name, d->digest) != 1)
            return d;
    }
    return NULL;
}

/* Stores the body as a blob; with a digest reference, under exactly that digest. */
static int store_body(struct ks_reg_req *rq, char **ret_digest, struct ks_error **err)
{
    _cleanup_blob_writer_ struct ks_blob_writer *w = NULL;
    const char *expect = rq->route.ref_is_digest ? rq->route.ref : NULL;
    int r = ks_blob_writer_new(rq->st->blobs, expect, (int64_t)rq->body_len, &w, err);
    if (r >= 0)
        r = ks_blob_writer_write(w, rq->body, rq->body_len, err);
    if (r >= 0)
        r = ks_blob_writer_commit(w, ret_digest, NULL, err);
    return r;
}

static enum MHD_Result manifest_done(struct ks_reg_req *rq)
{
    const char *name = rq->route.name;
    const char *ct = ks_reg_header(rq, "Content-Type");
    _cleanup_error_ struct ks_error *e = NULL;
    _cleanup_manifest_ struct ks_manifest *m = NULL;
    if (ks_manifest_parse(rq->body, rq->body_len, ct, &m, &e) < 0)
        return ks_reg_error(rq, 400, "MANIFEST_INVALID", "%s", e->msg);
    const struct ks_descriptor *missing = missing_reference(rq, m);
    if (missing)
        return ks_reg_error(rq, 400, "MANIFEST_BLOB_UNKNOWN", "%s is not in repository %s",
                            missing->digest, name);
    _cleanup_free_ char *digest = NULL;
    int r = store_body(rq, &digest, &e);
    if (r == -EBADMSG)
        return ks_reg_error(rq, 400, "DIGEST_INVALID", "%s", e->msg);
    if (r < 0)
        return ks_reg_error_from(rq, e, "MANIFEST_INVALID");
    /* The type the client sent when it names what the document is, else the document's own
     * (a generic or parameterized Content-Type would mislead the clients that pull it). */
    const char *type = ct && ks_media_type_from_string(ct) == m->type ? ct : m->media_type;
    if (type == NULL)
        type = ks_media_type_name(m->type);
    if (ks_reg_manifest_link(rq->st, name, digest, type ? type : "application/json", &e) < 0 ||
        (m->subject && ks_reg_referrer_add(rq->st, name, m->subject->digest, digest, &e) < 0) ||
        (!rq->route.ref_is_digest && ks_reg_tag_set(rq->st, name, rq->route.ref, digest, &e) < 0))
        return ks_reg_error_from(rq, e, "NAME_UNKNOWN");
    struct MHD_Response *resp = ks_reg_resp_buf("", 0, NULL);
    ks_reg_set(resp, "Location", "/v2/%s/manifests/%s", name, digest);
    ks_reg_set(resp, "Docker-Content-Digest", "%s", digest);
    if (m->subject)
        ks_reg_set(resp, "OCI-Subject", "%s", m->subject->digest);
    return ks_reg_reply(rq, 201, resp);
}

enum MHD_Result ks_reg_manifest_begin(struct ks_reg_req *rq)
{
    const char *cls = ks_reg_header(rq, "Content-Length");
    if (cls && strtoull(cls, NULL, 10) > KS_MANIFEST_MAX_SIZE) {
        /* answered once the body is read: a client still sending it would not see an early
         * answer, only a closed connection */
        ks_reg_fail(rq, 413, "SIZE_INVALID", "manifest larger than %zu bytes",
                    KS_MANIFEST_MAX_SIZE);
        rq->on_done = manifest_done;
        return MHD_YES;
    }
    rq->body_max = KS_MANIFEST_MAX_SIZE;
    /* grown to the limit at most; most manifests are a few kilobytes */
    size_t initial = cls ? (size_t)strtoull(cls, NULL, 10) : KS_MANIFEST_MAX_SIZE;
    rq->body = malloc(initial + 1);
    if (rq->body == NULL)
        return MHD_NO;
    rq->body_max = initial;
    rq->on_data = manifest_data;
    rq->on_done = manifest_done;
    return MHD_YES;
}

/* Adds the Link header of the next page. */
static void link_next(struct MHD_Response *resp, const char *path, size_t n, const char *last)
{
    ks_reg_set(resp, "Link", "<%s?n=%zu&last=%s>; rel=\"next\"", path, n, last);
}

static enum MHD_Result reply_page(struct ks_reg_req *rq, char **items, size_t n_items,
                                  const char *key, const char *name, const char *path)
{
    size_t first, count;
    bool more;
    if (ks_reg_page(rq, items, n_items, &first, &count, &more) < 0)
        return ks_reg_error(rq, 400, "PAGINATION_NUMBER_INVALID", "invalid n");
    _cleanup_json_ json_object *o = json_object_new_object();
    json_object *arr = json_object_new_array();
    if (o == NULL || arr == NULL) {
        json_object_put(arr);
        return MHD_NO;
    }
    if (name)
        json_object_object_add(o, "name", json_object_new_string(name));
    for (size_t i = 0; i < count; i++)
        json_object_array_add(arr, json_object_new_string(items[first + i]));
    json_object_object_add(o, key, arr);
    struct MHD_Response *resp = ks_reg_resp_json(o, NULL);
    if (more && count > 0)
        link_next(resp, path, count, items[first + count - 1]);
    return ks_reg_reply(rq, 200, resp);
}

enum MHD_Result ks_reg_tags_list(struct ks_reg_req *rq)
{
    const char *name = rq->route.name;
    if (ks_reg_repo_exists(rq->st, name) != 1)
        return ks_reg_error(rq, 404, "NAME_UNKNOWN", "repository name not known to registry");
    _cleanup_error_ struct ks_error *e = NULL;
    _cleanup_strv_ char **tags = NULL;
    size_t n = 0;
    if (ks_reg_list_tags(rq->st, name, &tags, &n, &e) < 0)
        return ks_reg_error_from(rq, e, "NAME_UNKNOWN");
    char path[KS_REGISTRY_NAME_MAX + 32];
    snprintf(path, sizeof(path), "/v2/%s/tags/list", name);
    return reply_page(rq, tags, n, "tags", name, path);
}

enum MHD_Result ks_reg_catalog(struct ks_reg_req *rq)
{
    _cleanup_error_ struct ks_error *e = NULL;
    _cleanup_strv_ char **repos = NULL;
    size_t n = 0;
    if (ks_reg_list_repos(rq->st, &repos, &n, &e) < 0)
        return ks_reg_error_from(rq, e, "UNKNOWN");
    return reply_page(rq, repos, n, "repositories", NULL, "/v2/_catalog");
}

/* One referrer's descriptor, or NULL when it does not pass the artifactType filter or is gone. */
static json_object *referrer_descriptor(struct ks_reg_req *rq, const char *digest,
                                        const char *filter)
{
    _cleanup_manifest_ struct ks_manifest *m = NULL;
    _cleanup_free_ char *type = NULL;
    int64_t size = 0;
    struct ks_error *e = NULL;
    int r = ks_reg_manifest_load(rq->st, rq->route.name, digest, &type, &m, &size, &e);
    ks_error_free(e);
    if (r < 0)
        return NULL;
    const char *artifact = m->artifact_type;
    if (artifact == NULL && m->kind == KS_MANIFEST_IMAGE)
        artifact = m->config.media_type;
    if (filter && (artifact == NULL || strcmp(filter, artifact) != 0))
        return NULL;
    json_object *d = json_object_new_object();
    if (d == NULL)
        return NULL;
    json_object_object_add(d, "mediaType", json_object_new_string(type));
    json_object_object_add(d, "digest", json_object_new_string(digest));
    json_object_object_add(d, "size", json_object_new_int64(size));
    if (artifact)
        json_object_object_add(d, "artifactType", json_object_new_string(artifact));
    json_object *ann = ks_json_get_type(m->json, "annotations", json_type_object);
    if (ann)
        json_object_object_add(d, "annotations", json_object_get(ann));
    return d;
}

enum MHD_Result ks_reg_referrers(struct ks_reg_req *rq)
{
    const char *filter = ks_reg_arg(rq, "artifactType");
    _cleanup_error_ struct ks_error *e = NULL;
    _cleanup_strv_ char **refs = NULL;
    if (ks_reg_list_referrers(rq->st, rq->route.name, rq->route.ref, &refs, NULL, &e) < 0)
        return ks_reg_error_from(rq, e, "NAME_UNKNOWN");
    _cleanup_json_ json_object *o = json_object_new_object();
    json_object *arr = json_object_new_array();
    if (o == NULL || arr == NULL) {
        json_object_put(arr);
        return MHD_NO;
    }
    json_object_object_add(o, "schemaVersion", json_object_new_int(2));
    json_object_object_add(o, "mediaType", json_object_new_string(INDEX_TYPE));
    json_object_object_add(o, "manifests", arr);
    for (size_t i = 0; refs[i] && i < KS_REGISTRY_LIST_MAX; i++) {
        json_object *d = referrer_descriptor(rq, refs[i], filter);
        if (d)
            json_object_array_add(arr, d);
    }
    struct MHD_Response *resp = ks_reg_resp_json(o, INDEX_TYPE);
    if (filter)
        ks_reg_set(resp, "OCI-Filters-Applied", "artifactType");
    return ks_reg_reply(rq, 200, resp);
}

enum MHD_Result ks_reg_search(struct ks_reg_req *rq)
{
    const char *q = ks_reg_arg(rq, "q");
    const char *ns = ks_reg_arg(rq, "n");
    long limit = ns ? strtol(ns, NULL, 10) : 25;
    if (limit <= 0 || limit > 100)
        limit = limit <= 0 ? 25 : 100;
    if (q == NULL)
        q = "";
    if (strlen(q) > 256)
        return ks_reg_error(rq, 400, "UNSUPPORTED", "query too long");
    _cleanup_error_ struct ks_error *e = NULL;
    _cleanup_strv_ char **repos = NULL;
    if (ks_reg_list_repos(rq->st, &repos, NULL, &e) < 0)
        return ks_reg_error_from(rq, e, "UNKNOWN");
    _cleanup_json_ json_object *o = json_object_new_object();
    json_object *results = json_object_new_array();
    if (o == NULL || results == NULL) {
        json_object_put(results);
        return MHD_NO;
    }
    int64_t total = 0;
    for (char **r = repos; *r; r++) {
        if (*q && strcasestr(*r, q) == NULL)
            continue;
        if (total++ >= limit)
            continue;
        json_object *it = json_object_new_object();
        if (it == NULL)
            return MHD_NO;
        json_object_object_add(it, "name", json_object_new_string(*r));
        json_object_object_add(it, "description", json_object_new_string(""));
        json_object_object_add(it, "star_count", json_object_new_int(0));
        json_object_object_add(it, "is_official", json_object_new_boolean(0));
        json_object_object_add(it, "is_automated", json_object_new_boolean(0));
        json_object_array_add(results, it);
    }
    json_object_object_add(o, "num_results", json_object_new_int64(total));
    json_object_object_add(o, "query", json_object_new_string(q));
    json_object_object_add(o, "results", results);
    return ks_reg_reply(rq, 200, ks_reg_resp_json(o, NULL));
}
