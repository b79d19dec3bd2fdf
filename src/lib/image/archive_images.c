/* `kiste load`, the second half: what the members of an archive say. Docker's manifest.json
 * wins when present (old and new `docker save` layouts); else index.json of an OCI image layout,
 * following nested indexes to the host's platform. Every image is checked (config digest, its
 * diff_ids against the layers, media types) before the first one is recorded. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/hash.h"
#include "../base/json.h"
#include "archive_internal.h"
#include "manifest.h"
#include "ref.h"
#include "store_internal.h"

#define MAX_INDEX_DEPTH 4

struct plan {
    const char *config; /* borrowed from a member */
    size_t config_len;
    char id[KS_SHA256_DIGEST_LEN];
    struct ks_store_layer **layers;
    size_t n_layers;
    char **tags; /* full references */
};

struct plans {
    struct plan *v;
    size_t n;
};

static void plans_release(struct plans *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].layers);
        ks_strv_free(p->v[i].tags);
    }
    free(p->v);
}

/* The member a manifest points at by path; *ret is NULL when there is none. */
static int find_member(struct ks_archive_members *m, const char *path,
                       struct ks_archive_member **ret, struct ks_error **err)
{
    _cleanup_free_ char *clean = NULL;
    int r = ks_archive_clean_path(path, &clean, err);
    if (r < 0)
        return r;
    *ret = ks_archive_member_find(m, clean, err);
    return *ret == NULL && err && *err ? -ELOOP : 0;
}

/* The in-memory member a manifest points at by path. */
static int json_member(struct ks_archive_members *m, const char *path, const char *what,
                       struct ks_archive_member **ret, struct ks_error **err)
{
    struct ks_archive_member *mb;
    int r = find_member(m, path, &mb, err);
    if (r < 0)
        return r;
    if (mb == NULL)
        return ks_error_set_plain(err, ENOENT, "%s `%.200s` is not in the archive", what, path);
    if (mb->data == NULL)
        return ks_error_set_plain(err, EINVAL, "%s `%.200s` is not a JSON document", what, path);
    *ret = mb;
    return 0;
}

/* The layer a manifest points at by path; one held in memory is unpacked from there. */
static int layer_member(struct ks_store *s, struct ks_archive_members *m, const char *path,
                        struct ks_store_layer **ret, struct ks_error **err)
{
    struct ks_archive_member *mb;
    int r = find_member(m, path, &mb, err);
    if (r < 0)
        return r;
    if (mb == NULL || mb->skipped)
        return ks_error_set_plain(err, ENOENT, "layer `%.200s` is not in the archive", path);
    if (mb->layer_err)
        return ks_error_set_plain(err, mb->layer_err->errnum ? mb->layer_err->errnum : EINVAL,
                                  "layer `%.200s`: %s", path, mb->layer_err->msg);
    if (mb->layer == NULL && mb->data) {
        /* A small layer that looked like JSON: unpack it from memory. */
        _cleanup_close_ int mfd = memfd_create("layer", MFD_CLOEXEC);
        if (mfd < 0)
            return ks_error_set(err, errno, "memfd_create");
        if (ks_write_all(mfd, mb->data, mb->len) < 0 || lseek(mfd, 0, SEEK_SET) < 0)
            return ks_error_set(err, errno, "memfd");
        r = ks_store_layer_add(s, mfd, NULL, &mb->layer, err);
        if (r < 0)
            return ks_error_wrap(err, "layer `%.200s`", path);
    }
    if (mb->layer == NULL)
        return ks_error_set_plain(err, EINVAL, "`%.200s` is not a layer", path);
    *ret = mb->layer;
    return 0;
}

static int check_digest(const char *data, size_t len, const char *want, const char *what,
                        struct ks_error **err)
{
    char got[KS_SHA256_DIGEST_LEN];
    if (strncmp(want, "sha256:", 7) != 0)
        return ks_error_set_plain(err, ENOTSUP, "%s: unsupported digest `%s`", what, want);
    if (ks_sha256_hex(data, len, got) < 0)
        return ks_error_set(err, ENOMEM, "digest");
    if (strcmp(got, want) != 0)
        return ks_error_set_plain(err, EBADMSG, "%s: digest mismatch: expected %s, got %s", what,
                                  want, got);
    return 0;
}

static struct plan *plan_for(struct plans *p, const char *config, size_t len, struct ks_error **err)
{
    char id[KS_SHA256_DIGEST_LEN];
    if (ks_sha256_hex(config, len, id) < 0) {
        ks_error_set(err, ENOMEM, "load");
        return NULL;
    }
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i].id, id) == 0)
            return &p->v[i];
    if (p->n >= KS_ARCHIVE_MAX_IMAGES) {
        ks_error_set_plain(err, E2BIG, "more than %d images", KS_ARCHIVE_MAX_IMAGES);
        return NULL;
    }
    struct plan *v = reallocarray(p->v, p->n + 1, sizeof(*v));
    if (v == NULL) {
        ks_error_set(err, ENOMEM, "load");
        return NULL;
    }
    p->v = v;
    struct plan *pl = &v[p->n++];
    *pl = (struct plan){.config = config, .config_len = len};
    memcpy(pl->id, id, sizeof(id));
    return pl;
}

static int plan_layer(struct plan *pl, struct ks_store_layer *l, struct ks_error **err)
{
    struct ks_store_layer **v = reallocarray(pl->layers, pl->n_layers + 1, sizeof(*v));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "load");
    pl->layers = v;
    v[pl->n_layers++] = l;
    return 0;
}

/* A reference to tag: "name:tag" or a full one; NULL (0) for a bare tag or anything else. */
static int plan_tag(struct plan *pl, const char *s, bool strict, struct ks_error **err)
{
    _cleanup_ref_ struct ks_ref *ref = NULL;
    if (ks_ref_parse(s, &ref, strict ? err : NULL) < 0)
        return strict ? -EINVAL : 0;
    if (ref->digest) {
        if (strict)
            return ks_error_set_plain(err, EINVAL, "`%.200s` is not a tag", s);
        return 0;
    }
    _cleanup_free_ char *full = ks_ref_string(ref);
    if (full == NULL || ks_archive_strv_add(&pl->tags, full) < 0)
        return ks_error_set(err, ENOMEM, "load");
    return 0;
}

/* --- Docker's manifest.json --- */

/* "blobs/sha256/<hex>" and "<hex>.json" name their content's digest; check it. */
static int check_named_config(const char *path, const struct ks_archive_member *mb,
                              struct ks_error **err)
{
    const char *base = strrchr(mb->name, '/');
    base = base ? base + 1 : mb->name;
    char want[KS_SHA256_DIGEST_LEN + 8];
    size_t n = strlen(base);
    if (n == 69 && strcmp(base + 64, ".json") == 0)
        snprintf(want, sizeof(want), "sha256:%.64s", base);
    else if (n == 64 && strncmp(mb->name, "blobs/sha256/", 13) == 0)
        snprintf(want, sizeof(want), "sha256:%s", base);
    else
        return 0;
    if (!ks_is_digest(want))
        return 0;
    return check_digest(mb->data, mb->len, want, path, err);
}

static int docker_entry(struct ks_store *s, struct ks_archive_members *m, struct plans *p,
                        json_object *e, size_t i, struct ks_error **err)
{
    const char *config = ks_json_str(e, "Config");
    json_object *layers = ks_json_get_type(e, "Layers", json_type_array);
    json_object *tags = ks_json_get(e, "RepoTags");
    if (config == NULL || layers == NULL || (tags && !json_object_is_type(tags, json_type_array)))
        return ks_error_set_plain(err, EINVAL,
                                  "manifest.json[%zu]: Config, Layers or RepoTags "
                                  "missing or of the wrong type",
                                  i);
    size_t n = json_object_array_length(layers);
    if (n > KS_MANIFEST_MAX_ITEMS)
        return ks_error_set_plain(err, E2BIG, "manifest.json[%zu]: too many layers", i);
    struct ks_archive_member *cm;
    int r = json_member(m, config, "config", &cm, err);
    if (r >= 0)
        r = check_named_config(config, cm, err);
    if (r < 0)
        return r;
    struct plan *pl = plan_for(p, cm->data, cm->len, err);
    if (pl == NULL)
        return -EINVAL;
    bool fresh = pl->n_layers == 0;
    for (size_t j = 0; j < n; j++) {
        const char *path = json_object_get_string(json_object_array_get_idx(layers, j));
        if (!json_object_is_type(json_object_array_get_idx(layers, j), json_type_string))
            return ks_error_set_plain(err, EINVAL, "manifest.json[%zu].Layers[%zu]: not a string",
                                      i, j);
        struct ks_store_layer *l;
        r = layer_member(s, m, path, &l, err);
        if (r < 0)
            return r;
        if (fresh && (r = plan_layer(pl, l, err)) < 0)
            return r;
    }
    size_t nt = tags ? json_object_array_length(tags) : 0;
    for (size_t j = 0; j < nt && j < KS_MANIFEST_MAX_ITEMS; j++) {
        json_object *t = json_object_array_get_idx(tags, j);
        if (!json_object_is_type(t, json_type_string))
            return ks_error_set_plain(err, EINVAL,
                                      "manifest.json[%zu].RepoTags[%zu]: not a "
                                      "string",
                                      i, j);
        r = plan_tag(pl, json_object_get_string(t), true, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int docker_plans(struct ks_store *s, struct ks_archive_members *m,
                        struct ks_archive_member *mf, struct plans *p, struct ks_error **err)
{
    _cleanup_json_ json_object *doc = NULL;
    int r = ks_json_parse(mf->data, mf->len, &doc, err);
    if (r < 0)
        return ks_error_wrap(err, "manifest.json");
    if (!json_object_is_type(doc, json_type_array))
        return ks_error_msg(err, "manifest.json: not an array");
    size_t n = json_object_array_length(doc);
    if (n > KS_ARCHIVE_MAX_IMAGES)
        return ks_error_set_plain(err, E2BIG, "manifest.json: too many images");
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(doc, i);
        if (!json_object_is_type(e, json_type_object))
            return ks_error_set_plain(err, EINVAL, "manifest.json[%zu]: not an object", i);
        r = docker_entry(s, m, p, e, i, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* --- OCI image layout --- */

static int blob_member(struct ks_archive_members *m, const struct ks_descriptor *d,
                       struct ks_archive_member **ret, struct ks_error **err)
{
    if (strncmp(d->digest, "sha256:", 7) != 0)
        return ks_error_set_plain(err, ENOTSUP, "unsupported digest `%s`", d->digest);
    char path[96];
    snprintf(path, sizeof(path), "blobs/sha256/%s", d->digest + 7);
    int r = json_member(m, path, "blob", ret, err);
    if (r < 0)
        return r;
    if ((int64_t)(*ret)->len != d->size)
        return ks_error_set_plain(err, EBADMSG, "blob %s: size %zu, descriptor says %lld",
                                  d->digest, (*ret)->len, (long long)d->size);
    return check_digest((*ret)->data, (*ret)->len, d->digest, path, err);
}

static int oci_layer(struct ks_store *s, struct ks_archive_members *m, struct plan *pl,
                     const struct ks_descriptor *d, bool fresh, struct ks_error **err)
{
    if (ks_media_type_is_foreign(d->type))
        return ks_error_set_plain(err, ENOTSUP,
                                  "layer %s: foreign (non-distributable) layers are not "
                                  "supported",
                                  d->digest);
    if (!ks_media_type_is_layer(d->type))
        return ks_error_set_plain(err, ENOTSUP, "layer %s: unsupported media type `%s`", d->digest,
                                  d->media_type ? d->media_type : "");
    char path[96];
    snprintf(path, sizeof(path), "blobs/%.6s/%s", d->digest, strchr(d->digest, ':') + 1);
    struct ks_store_layer *l;
    int r = layer_member(s, m, path, &l, err);
    if (r < 0)
        return r;
    if (strcmp(ks_store_layer_digest(l), d->digest) != 0)
        return ks_error_set_plain(err, EBADMSG, "layer %s: digest mismatch (got %s)", d->digest,
                                  ks_store_layer_digest(l));
    if (ks_media_type_compression(d->type) == KS_COMPRESSION_NONE && ks_store_layer_compressed(l))
        return ks_error_set_plain(err, EBADMSG, "layer %s: compressed, media type says not",
                                  d->digest);
    return fresh ? plan_layer(pl, l, err) : 0;
}

static int oci_image(struct ks_store *s, struct ks_archive_members *m, struct plans *p,
                     const struct ks_descriptor *d, const char *name, int depth,
                     struct ks_error **err);

static int oci_index(struct ks_store *s, struct ks_archive_members *m, struct plans *p,
                     const struct ks_manifest *idx, const char *name, int depth,
                     struct ks_error **err)
{
    struct utsname u;
    uname(&u);
    const struct ks_descriptor *d;
    int r = ks_index_select_platform(idx, "linux", u.machine, NULL, &d, err);
    if (r < 0)
        return r;
    return oci_image(s, m, p, d, name, depth + 1, err);
}

static int oci_image(struct ks_store *s, struct ks_archive_members *m, struct plans *p,
                     const struct ks_descriptor *d, const char *name, int depth,
                     struct ks_error **err)
{
    if (depth > MAX_INDEX_DEPTH)
        return ks_error_msg(err, "indexes nested too deeply");
    struct ks_archive_member *mb;
    int r = blob_member(m, d, &mb, err);
    if (r < 0)
        return r;
    _cleanup_manifest_ struct ks_manifest *mf = NULL;
    r = ks_manifest_parse(mb->data, mb->len, d->media_type, &mf, err);
    if (r < 0)
        return ks_error_wrap(err, "manifest %s", d->digest);
    if (mf->kind == KS_MANIFEST_INDEX)
        return oci_index(s, m, p, mf, name, depth, err);
    struct ks_archive_member *cm;
    r = blob_member(m, &mf->config, &cm, err);
    if (r < 0)
        return ks_error_wrap(err, "config of manifest %s", d->digest);
    struct plan *pl = plan_for(p, cm->data, cm->len, err);
    if (pl == NULL)
        return -EINVAL;
    bool fresh = pl->n_layers == 0;
    for (size_t i = 0; i < mf->n_layers; i++) {
        r = oci_layer(s, m, pl, &mf->layers[i], fresh, err);
        if (r < 0)
            return r;
    }
    return name ? plan_tag(pl, name, false, err) : 0;
}

static const char *annotation(const struct ks_descriptor *d, const char *key)
{
    for (size_t i = 0; i < d->n_annotations; i++)
        if (strcmp(d->annotations[i].key, key) == 0)
            return d->annotations[i].value;
    return NULL;
}

static int oci_plans(struct ks_store *s, struct ks_archive_members *m, struct ks_archive_member *ix,
                     struct plans *p, struct ks_error **err)
{
    _cleanup_manifest_ struct ks_manifest *idx = NULL;
    int r = ks_manifest_parse(ix->data, ix->len, NULL, &idx, err);
    if (r < 0)
        return ks_error_wrap(err, "index.json");
    if (idx->kind != KS_MANIFEST_INDEX)
        return ks_error_msg(err, "index.json: not an image index");
    for (size_t i = 0; i < idx->n_manifests; i++) {
        const struct ks_descriptor *d = &idx->manifests[i];
        /* A bare tag ("latest") names no repository: the image loads without a name. */
        const char *name = annotation(d, "io.containerd.image.name");
        const char *ref = annotation(d, "org.opencontainers.image.ref.name");
        if (name == NULL && ref && strpbrk(ref, ":/@"))
            name = ref;
        if (!ks_media_type_is_manifest(d->type) && !ks_media_type_is_index(d->type))
            continue; /* artifacts and the like are not images */
        r = oci_image(s, m, p, d, name, 0, err);
        if (r < 0)
            return ks_error_wrap(err, "index.json: manifests[%zu]", i);
    }
    return 0;
}

/* --- checking and recording --- */

static int check_plan(const struct plan *pl, struct ks_error **err)
{
    _cleanup_image_config_ struct ks_image_config *cfg = NULL;
    int r = ks_image_config_parse(pl->config, pl->config_len, &cfg, err);
    if (r < 0)
        return ks_error_wrap(err, "image %s", pl->id);
    if (cfg->n_diff_ids != pl->n_layers)
        return ks_error_set_plain(err, EBADMSG,
                                  "image %s: the config names %zu layers, the "
                                  "archive %zu",
                                  pl->id, cfg->n_diff_ids, pl->n_layers);
    for (size_t i = 0; i < pl->n_layers; i++)
        if (strcmp(cfg->diff_ids[i], ks_store_layer_diff_id(pl->layers[i])) != 0)
            return ks_error_set_plain(
                err, EBADMSG, "image %s: layer %zu has diff ID %s, the config says %s", pl->id, i,
                ks_store_layer_diff_id(pl->layers[i]), cfg->diff_ids[i]);
    return 0;
}

static int record_plans(struct ks_store *s, struct plans *p, struct ks_archive_loaded ***ret,
                        struct ks_error **err)
{
    struct ks_archive_loaded **out = calloc(p->n + 1, sizeof(*out));
    if (out == NULL)
        return ks_error_set(err, ENOMEM, "load");
    _cleanup_(ks_archive_loaded_free_p) struct ks_archive_loaded **v = out;
    for (size_t i = 0; i < p->n; i++) {
        struct plan *pl = &p->v[i];
        struct ks_store_image_spec spec = {
            .config = pl->config,
            .config_len = pl->config_len,
            .layers = pl->layers,
            .n_layers = pl->n_layers,
            .tags = (const char *const *)pl->tags,
        };
        v[i] = calloc(1, sizeof(**v));
        if (v[i] == NULL)
            return ks_error_set(err, ENOMEM, "load");
        int r = ks_store_image_add(s, &spec, &v[i]->id, err);
        if (r < 0)
            return r;
        size_t n = pl->tags ? ks_strv_len(pl->tags) : 0;
        v[i]->tags = calloc(n + 1, sizeof(char *));
        if (v[i]->tags == NULL)
            return ks_error_set(err, ENOMEM, "load");
        for (size_t j = 0; j < n; j++)
            if ((v[i]->tags[j] = ks_store_familiar(pl->tags[j])) == NULL)
                return ks_error_set(err, ENOMEM, "load");
    }
    if (ret)
        *ret = TAKE_PTR(v);
    return 0;
}

int ks_archive_load_images(struct ks_store *s, struct ks_archive_members *m,
                           struct ks_archive_loaded ***ret, struct ks_error **err)
{
    _cleanup_(plans_release) struct plans p = {0};
    struct ks_archive_member *mf = ks_archive_member_find(m, "manifest.json", err);
    struct ks_archive_member *ix = mf ? NULL : ks_archive_member_find(m, "index.json", err);
    if (err && *err)
        return -ELOOP;
    int r;
    if (mf && mf->data)
        r = docker_plans(s, m, mf, &p, err);
    else if (ix && ix->data)
        r = oci_plans(s, m, ix, &p, err);
    else
        r = ks_error_msg(err, "the archive has neither manifest.json nor index.json");
    for (size_t i = 0; r >= 0 && i < p.n; i++)
        r = check_plan(&p.v[i], err);
    if (r >= 0 && p.n == 0)
        r = ks_error_msg(err, "the archive holds no image");
    if (r < 0)
        return r;
    return record_plans(s, &p, ret, err);
}
