/* `kiste save`: images from the store to a Docker or OCI archive. Every size and digest is
 * known before the first byte is written (a layer kept compressed is decompressed once to learn
 * its size and check its diff_id), so the archive can be written in sorted order in one go. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../base/archive_shim.h"
#include "../base/fs.h"
#include "../base/hash.h"
#include "../base/json.h"
#include "../engine/db.h"
#include "archive.h"
#include "archive_internal.h"
#include "blobstore.h"
#include "layer_archive.h"
#include "manifest.h"
#include "ref.h"
#include "store_internal.h"

#define COPY_BUF_SIZE (1024 * 1024)
/* A fixed time for every member, so the same images give the same archive. */
#define FIXED_MTIME 0

enum blob_kind { BLOB_CONFIG, BLOB_LAYER, BLOB_MANIFEST };

struct save_layer {
    char diff_id[KS_LAYER_DIGEST_LEN];
    char *blob; /* the stored blob: the diff_id itself or a compressed form */
    int64_t size;
};

struct save_image {
    char *id;
    char **tags; /* full references */
    char *config;
    size_t config_len;
    struct save_layer *layers;
    size_t n_layers;
    char *manifest;
    char manifest_digest[KS_SHA256_DIGEST_LEN];
};

struct save_blob {
    const char *digest;
    enum blob_kind kind;
    const char *data; /* config and manifest */
    const struct save_layer *layer;
    int64_t size;
};

struct save {
    struct ks_store *s;
    enum ks_archive_format format;
    struct save_image *images;
    size_t n_images;
    struct archive *out;
    char *buf;
};

static void save_release(struct save *sv)
{
    for (size_t i = 0; i < sv->n_images; i++) {
        struct save_image *im = &sv->images[i];
        free(im->id);
        ks_strv_free(im->tags);
        free(im->config);
        for (size_t j = 0; j < im->n_layers; j++)
            free(im->layers[j].blob);
        free(im->layers);
        free(im->manifest);
    }
    free(sv->images);
    if (sv->out)
        archive_write_free(sv->out);
    free(sv->buf);
}

/* --- collecting --- */

/* The tag a name stands for when it names the image through one; NULL for IDs and digests. */
static char *tag_of(struct ks_store *s, const char *name, const char *id)
{
    _cleanup_ref_ struct ks_ref *ref = NULL;
    if (ks_ref_parse(name, &ref, NULL) < 0 || ref->digest)
        return NULL;
    _cleanup_free_ char *full = ks_ref_string(ref), *tagged = NULL;
    if (full == NULL || ks_db_tag_get(s->db, full, &tagged, NULL) < 0 || strcmp(tagged, id))
        return NULL;
    return TAKE_PTR(full);
}

/* Reads a layer once from a compressed blob or a tar index: its size, and a check that it
 * still is the layer. */
static int layer_size_compressed(struct ks_store *s, struct save_layer *l, struct ks_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    int r = ks_store_layer_open(s, l->diff_id, l->blob, -EBADF, &fd, err);
    if (r < 0)
        return r;
    struct archive *a = ks_layer_reader_new();
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (a == NULL || md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        r = ks_error_set(err, ENOMEM, "save");
        goto out;
    }
    struct archive_entry *e;
    int64_t total = 0;
    r = archive_read_open_fd(a, fd, COPY_BUF_SIZE);
    if (r == ARCHIVE_OK)
        r = archive_read_next_header(a, &e);
    while (r == ARCHIVE_OK) {
        const void *buf;
        size_t len;
        la_int64_t off;
        r = archive_read_data_block(a, &buf, &len, &off);
        if (r == ARCHIVE_OK) {
            EVP_DigestUpdate(md, buf, len);
            total += (int64_t)len;
        }
    }
    if (r != ARCHIVE_EOF) {
        r = ks_error_set_plain(err, EIO, "layer blob %s: %s", l->blob,
                               archive_error_string(a) ? archive_error_string(a) : "error");
        goto out;
    }
    char got[KS_SHA256_DIGEST_LEN];
    r = ks_sha256_final(md, got);
    if (r >= 0 && strcmp(got, l->diff_id) != 0)
        r = ks_error_set_plain(err, EBADMSG, "layer blob %s gives %s, not layer %s", l->blob, got,
                               l->diff_id);
    l->size = total;
out:
    if (a)
        archive_read_free(a);
    EVP_MD_CTX_free(md);
    return r < 0 ? r : 0;
}

static int collect_layer(struct ks_store *s, const char *diff_id, struct save_layer *l,
                         struct ks_error **err)
{
    snprintf(l->diff_id, sizeof(l->diff_id), "%s", diff_id);
    int r = ks_store_layerblob_get(s, diff_id, &l->blob, err);
    if (r < 0)
        return ks_error_wrap(err, "layer %s has no stored blob", diff_id);
    if (strcmp(l->blob, diff_id) == 0) {
        _cleanup_close_ int fd = -EBADF;
        return ks_blobstore_open_blob(s->blobs, l->blob, &fd, &l->size, err);
    }
    return layer_size_compressed(s, l, err);
}

static int read_config(struct ks_store *s, struct save_image *im, struct ks_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    int r = ks_blobstore_open_blob(s->blobs, im->id, &fd, NULL, err);
    if (r >= 0)
        r = ks_read_fd(fd, KS_IMAGE_CONFIG_MAX_SIZE, &im->config, &im->config_len, err);
    if (r < 0)
        return ks_error_wrap(err, "image config %s", im->id);
    char got[KS_SHA256_DIGEST_LEN];
    if (ks_sha256_hex(im->config, im->config_len, got) < 0 || strcmp(got, im->id) != 0)
        return ks_error_set_plain(err, EBADMSG, "image config %s is corrupt", im->id);
    return 0;
}

static json_object *descriptor(const char *media_type, const char *digest, int64_t size)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "mediaType", json_object_new_string(media_type));
    json_object_object_add(d, "digest", json_object_new_string(digest));
    json_object_object_add(d, "size", json_object_new_int64(size));
    return d;
}

static int build_manifest(struct save_image *im, struct ks_error **err)
{
    _cleanup_json_ json_object *m = json_object_new_object();
    json_object_object_add(m, "schemaVersion", json_object_new_int(2));
    json_object_object_add(m, "mediaType",
                           json_object_new_string(ks_media_type_name(KS_MEDIA_OCI_MANIFEST)));
    json_object_object_add(
        m, "config",
        descriptor(ks_media_type_name(KS_MEDIA_OCI_CONFIG), im->id, (int64_t)im->config_len));
    json_object *layers = json_object_new_array();
    json_object_object_add(m, "layers", layers);
    for (size_t i = 0; i < im->n_layers; i++)
        json_object_array_add(layers, descriptor(ks_media_type_name(KS_MEDIA_OCI_LAYER),
                                                 im->layers[i].diff_id, im->layers[i].size));
    const char *text = ks_json_plain(m);
    im->manifest = text ? strdup(text) : NULL;
    if (im->manifest == NULL ||
        ks_sha256_hex(im->manifest, strlen(im->manifest), im->manifest_digest) < 0)
        return ks_error_set(err, ENOMEM, "save");
    return 0;
}

static int collect_image(struct ks_store *s, struct save_image *im, struct ks_error **err)
{
    _cleanup_db_image_ struct ks_db_image *img = NULL;
    int r = ks_db_image_get(s->db, im->id, &img, err);
    if (r >= 0)
        r = read_config(s, im, err);
    if (r < 0)
        return r;
    im->layers = calloc(img->n_layers + 1, sizeof(*im->layers));
    if (im->layers == NULL)
        return ks_error_set(err, ENOMEM, "save");
    for (size_t i = 0; i < img->n_layers; i++) {
        r = collect_layer(s, img->diff_ids[i], &im->layers[i], err);
        im->n_layers = i + 1;
        if (r < 0)
            return r;
    }
    return build_manifest(im, err);
}

static int collect(struct save *sv, const char *const *names, struct ks_error **err)
{
    for (size_t i = 0; names[i]; i++) {
        _cleanup_free_ char *id = NULL, *tag = NULL;
        int r = ks_store_lookup(sv->s, names[i], &id, err);
        if (r < 0)
            return r;
        tag = tag_of(sv->s, names[i], id);
        struct save_image *im = NULL;
        for (size_t j = 0; j < sv->n_images && im == NULL; j++)
            if (strcmp(sv->images[j].id, id) == 0)
                im = &sv->images[j];
        if (im == NULL) {
            struct save_image *v = reallocarray(sv->images, sv->n_images + 1, sizeof(*v));
            if (v == NULL)
                return ks_error_set(err, ENOMEM, "save");
            sv->images = v;
            im = &v[sv->n_images++];
            *im = (struct save_image){.id = TAKE_PTR(id)};
            r = collect_image(sv->s, im, err);
            if (r < 0)
                return ks_error_wrap(err, "save %s", names[i]);
        }
        if (tag && ks_archive_strv_add(&im->tags, tag) < 0)
            return ks_error_set(err, ENOMEM, "save");
    }
    return 0;
}

/* --- writing --- */

static int archive_fail(struct archive *a, const char *what, struct ks_error **err)
{
    int e = archive_errno(a);
    return ks_error_set_plain(err, e > 0 ? e : EIO, "write %s: %s", what,
                              archive_error_string(a) ? archive_error_string(a) : "error");
}

static int write_header(struct save *sv, const char *name, mode_t type, int64_t size,
                        struct ks_error **err)
{
    struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        return ks_error_set(err, ENOMEM, "save");
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
    archive_entry_set_size(e, type == AE_IFDIR ? 0 : size);
    archive_entry_set_mtime(e, FIXED_MTIME, 0);
    int r = archive_write_header(sv->out, e);
    archive_entry_free(e);
    return r < ARCHIVE_WARN ? archive_fail(sv->out, name, err) : 0;
}

static int write_data(struct save *sv, const char *name, const void *buf, size_t len,
                      struct ks_error **err)
{
    while (len > 0) {
        la_ssize_t n = archive_write_data(sv->out, buf, len);
        if (n <= 0)
            return archive_fail(sv->out, name, err);
        buf = (const char *)buf + n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_member(struct save *sv, const char *name, const char *data, size_t len,
                        struct ks_error **err)
{
    int r = write_header(sv, name, AE_IFREG, (int64_t)len, err);
    return r < 0 ? r : write_data(sv, name, data, len, err);
}

/* The layer's uncompressed tar, decompressing a compressed blob or replaying a tar index on the
 * way. */
static int write_layer_data(struct save *sv, const char *name, const struct save_layer *l,
                            struct ks_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    int r = ks_store_layer_open(sv->s, l->diff_id, l->blob, -EBADF, &fd, err);
    if (r < 0)
        return r;
    int64_t total = 0;
    if (strcmp(l->blob, l->diff_id) == 0) {
        for (;;) {
            ssize_t n = read(fd, sv->buf, COPY_BUF_SIZE);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return ks_error_set(err, errno, "read blob %s", l->blob);
            if (n == 0 || total + n > l->size)
                break;
            total += n;
            r = write_data(sv, name, sv->buf, (size_t)n, err);
            if (r < 0)
                return r;
        }
    } else {
        struct archive *a = ks_layer_reader_new();
        if (a == NULL)
            return ks_error_set(err, ENOMEM, "save");
        struct archive_entry *e;
        int ar = archive_read_open_fd(a, fd, COPY_BUF_SIZE);
        if (ar == ARCHIVE_OK)
            ar = archive_read_next_header(a, &e);
        while (ar == ARCHIVE_OK && r >= 0) {
            const void *buf;
            size_t len;
            la_int64_t off;
            ar = archive_read_data_block(a, &buf, &len, &off);
            if (ar == ARCHIVE_OK && total + (int64_t)len <= l->size) {
                total += (int64_t)len;
                r = write_data(sv, name, buf, len, err);
            }
        }
        archive_read_free(a);
        if (r < 0)
            return r;
    }
    if (total != l->size)
        return ks_error_set_plain(err, EIO, "layer blob %s changed while saving", l->blob);
    return 0;
}

static int cmp_blob(const void *a, const void *b)
{
    return strcmp(((const struct save_blob *)a)->digest, ((const struct save_blob *)b)->digest);
}

/* Every blob once, sorted by digest. */
static int blob_list(struct save *sv, struct save_blob **ret, size_t *ret_n)
{
    size_t cap = 0;
    for (size_t i = 0; i < sv->n_images; i++)
        cap += 2 + sv->images[i].n_layers;
    struct save_blob *v = calloc(cap + 1, sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < sv->n_images; i++) {
        struct save_image *im = &sv->images[i];
        v[n++] = (struct save_blob){im->id, BLOB_CONFIG, im->config, NULL, (int64_t)im->config_len};
        v[n++] = (struct save_blob){im->manifest_digest, BLOB_MANIFEST, im->manifest, NULL,
                                    (int64_t)strlen(im->manifest)};
        for (size_t j = 0; j < im->n_layers; j++)
            v[n++] = (struct save_blob){im->layers[j].diff_id, BLOB_LAYER, NULL, &im->layers[j],
                                        im->layers[j].size};
    }
    qsort(v, n, sizeof(*v), cmp_blob);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || strcmp(v[m - 1].digest, v[i].digest) != 0)
            v[m++] = v[i];
    *ret = v;
    *ret_n = m;
    return 0;
}

static int write_blobs(struct save *sv, struct ks_error **err)
{
    _cleanup_free_ struct save_blob *blobs = NULL;
    size_t n = 0;
    if (blob_list(sv, &blobs, &n) < 0)
        return ks_error_set(err, ENOMEM, "save");
    int r = write_header(sv, "blobs/", AE_IFDIR, 0, err);
    if (r >= 0)
        r = write_header(sv, "blobs/sha256/", AE_IFDIR, 0, err);
    for (size_t i = 0; r >= 0 && i < n; i++) {
        char name[96];
        snprintf(name, sizeof(name), "blobs/sha256/%s", blobs[i].digest + 7);
        if (blobs[i].kind != BLOB_LAYER) {
            r = write_member(sv, name, blobs[i].data, (size_t)blobs[i].size, err);
            continue;
        }
        r = write_header(sv, name, AE_IFREG, blobs[i].size, err);
        if (r >= 0)
            r = write_layer_data(sv, name, blobs[i].layer, err);
    }
    return r;
}

/* "docker.io/library/busybox:latest" → its tag "latest" and familiar name "busybox:latest". */
static int ref_parts(const char *full, char **ret_familiar, char **ret_repo, const char **ret_tag)
{
    _cleanup_ref_ struct ks_ref *ref = NULL;
    if (ks_ref_parse(full, &ref, NULL) < 0 || ref->tag == NULL)
        return -EINVAL;
    *ret_familiar = ks_ref_familiar(ref);
    *ret_tag = strrchr(full, ':') + 1;
    if (ret_repo) {
        free(ref->tag);
        ref->tag = NULL;
        *ret_repo = ks_ref_familiar(ref);
    }
    return *ret_familiar && (!ret_repo || *ret_repo) ? 0 : -ENOMEM;
}

static json_object *index_json(struct save *sv)
{
    json_object *idx = json_object_new_object();
    json_object_object_add(idx, "schemaVersion", json_object_new_int(2));
    json_object_object_add(idx, "mediaType",
                           json_object_new_string(ks_media_type_name(KS_MEDIA_OCI_INDEX)));
    json_object *ms = json_object_new_array();
    json_object_object_add(idx, "manifests", ms);
    for (size_t i = 0; i < sv->n_images; i++) {
        struct save_image *im = &sv->images[i];
        const char *mt = ks_media_type_name(KS_MEDIA_OCI_MANIFEST);
        size_t n = im->tags ? ks_strv_len(im->tags) : 0;
        for (size_t j = 0; j < (n ? n : 1); j++) {
            json_object *d = descriptor(mt, im->manifest_digest, (int64_t)strlen(im->manifest));
            _cleanup_free_ char *fam = NULL;
            const char *tag;
            if (n && ref_parts(im->tags[j], &fam, NULL, &tag) == 0) {
                json_object *ann = json_object_new_object();
                json_object_object_add(ann, "io.containerd.image.name",
                                       json_object_new_string(im->tags[j]));
                json_object_object_add(ann, "org.opencontainers.image.ref.name",
                                       json_object_new_string(tag));
                json_object_object_add(d, "annotations", ann);
            }
            json_object_array_add(ms, d);
        }
    }
    return idx;
}

static json_object *manifest_json(struct save *sv)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < sv->n_images; i++) {
        struct save_image *im = &sv->images[i];
        json_object *m = json_object_new_object();
        char path[96];
        snprintf(path, sizeof(path), "blobs/sha256/%s", im->id + 7);
        json_object_object_add(m, "Config", json_object_new_string(path));
        json_object *tags = NULL;
        for (size_t j = 0; im->tags && im->tags[j]; j++) {
            _cleanup_free_ char *fam = NULL;
            const char *tag;
            if (ref_parts(im->tags[j], &fam, NULL, &tag) < 0)
                continue;
            if (tags == NULL)
                tags = json_object_new_array();
            json_object_array_add(tags, json_object_new_string(fam));
        }
        json_object_object_add(m, "RepoTags", tags);
        json_object *layers = json_object_new_array();
        for (size_t j = 0; j < im->n_layers; j++) {
            snprintf(path, sizeof(path), "blobs/sha256/%s", im->layers[j].diff_id + 7);
            json_object_array_add(layers, json_object_new_string(path));
        }
        json_object_object_add(m, "Layers", layers);
        json_object_array_add(arr, m);
    }
    return arr;
}

/* {"busybox": {"latest": "<top layer hex>"}}, or NULL when no image has a tag. */
static json_object *repositories_json(struct save *sv)
{
    json_object *repos = NULL;
    for (size_t i = 0; i < sv->n_images; i++) {
        struct save_image *im = &sv->images[i];
        for (size_t j = 0; im->n_layers && im->tags && im->tags[j]; j++) {
            _cleanup_free_ char *fam = NULL, *repo = NULL;
            const char *tag;
            if (ref_parts(im->tags[j], &fam, &repo, &tag) < 0)
                continue;
            if (repos == NULL)
                repos = json_object_new_object();
            json_object *r = ks_json_get_type(repos, repo, json_type_object);
            if (r == NULL) {
                r = json_object_new_object();
                json_object_object_add(repos, repo, r);
            }
            json_object_object_add(
                r, tag, json_object_new_string(im->layers[im->n_layers - 1].diff_id + 7));
        }
    }
    return repos;
}

static int write_json(struct save *sv, const char *name, json_object *o, struct ks_error **err)
{
    const char *text = ks_json_plain(o);
    if (text == NULL)
        return ks_error_set(err, ENOMEM, "save");
    return write_member(sv, name, text, strlen(text), err);
}

static int write_archive(struct save *sv, int out_fd, struct ks_error **err)
{
    sv->out = archive_write_new();
    sv->buf = malloc(COPY_BUF_SIZE);
    if (sv->out == NULL || sv->buf == NULL)
        return ks_error_set(err, ENOMEM, "save");
    archive_write_set_format_pax_restricted(sv->out);
    archive_write_set_bytes_per_block(sv->out, 64 * 1024);
    archive_write_set_bytes_in_last_block(sv->out, 1);
    if (archive_write_open_fd(sv->out, out_fd) != ARCHIVE_OK)
        return archive_fail(sv->out, "the archive", err);
    int r = write_blobs(sv, err);
    _cleanup_json_ json_object *idx = index_json(sv);
    if (r >= 0)
        r = write_json(sv, "index.json", idx, err);
    if (r >= 0 && sv->format == KS_ARCHIVE_DOCKER) {
        _cleanup_json_ json_object *m = manifest_json(sv);
        r = write_json(sv, "manifest.json", m, err);
    }
    if (r >= 0) {
        static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
        r = write_member(sv, "oci-layout", layout, strlen(layout), err);
    }
    if (r >= 0 && sv->format == KS_ARCHIVE_DOCKER) {
        _cleanup_json_ json_object *repos = repositories_json(sv);
        if (repos)
            r = write_json(sv, "repositories", repos, err);
    }
    if (r >= 0 && archive_write_close(sv->out) != ARCHIVE_OK)
        r = archive_fail(sv->out, "the archive", err);
    return r;
}

int ks_archive_save(struct ks_store *s, const char *const *names, enum ks_archive_format format,
                    int out_fd, struct ks_error **err)
{
    if (names == NULL || names[0] == NULL)
        return ks_error_msg(err, "save: no image named");
    if (ks_archive_require(err) < 0)
        return -ENOENT;
    _cleanup_(save_release) struct save sv = {.s = s, .format = format};
    /* The layers' blobs must outlive the save: keep the collector out. */
    _cleanup_close_ int lock = ks_store_lock(s, LOCK_SH, err);
    if (lock < 0)
        return lock;
    int r = collect(&sv, names, err);
    if (r >= 0)
        r = write_archive(&sv, out_fd, err);
    return r < 0 ? ks_error_wrap(err, "save") : 0;
}
