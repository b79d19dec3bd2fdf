/* Adding an image from its layers: pending layers (unpacked and hashed, not yet recorded) and
 * the one transaction that records an image over them. Archive loading and registry pulls both
 * come through here.
 *
 * A pending layer holds a shared store lock from its first file until it is freed, so that the
 * collector never removes its blob before the image that references it is recorded. */
#include <archive.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/hash.h"
#include "../engine/db.h"
#include "blobstore.h"
#include "layer_archive.h"
#include "manifest.h"
#include "ref.h"
#include "snapshot.h"
#include "store.h"
#include "store_internal.h"

#define MAX_CHAIN_RETRIES 3

struct ks_store_layer {
    struct ks_store *s;
    int lock; /* the shared store lock, held while the layer is pending */
    char diff_id[KS_LAYER_DIGEST_LEN];
    char digest[KS_LAYER_DIGEST_LEN]; /* of the bytes read */
    bool blob_kept;                   /* blob holds the bytes, or the tar's index */
    char blob[KS_LAYER_DIGEST_LEN];
    char *cache_id; /* our layer directory; NULL when nothing was unpacked */
    bool detached;
    char *parent_chain; /* the chain it was unpacked on (not detached); NULL for a base */
    bool used;          /* the directory now belongs to a recorded layer */
    bool emptied;       /* its files moved to a directory on the right parent: */
    char *moved_to;     /* that directory's cache ID */
    int64_t size;       /* bytes of the unpacked files */
};

const char *ks_store_layer_diff_id(const struct ks_store_layer *l)
{
    return l->diff_id;
}

const char *ks_store_layer_digest(const struct ks_store_layer *l)
{
    return l->digest;
}

bool ks_store_layer_compressed(const struct ks_store_layer *l)
{
    return strcmp(l->diff_id, l->digest) != 0;
}

void ks_store_layer_free(struct ks_store_layer *l)
{
    if (l == NULL)
        return;
    if (l->cache_id && !l->used)
        ks_snapshot_layer_remove(l->s->overlay, l->cache_id, NULL);
    free(l->cache_id);
    free(l->moved_to);
    free(l->parent_chain);
    if (l->lock >= 0)
        close(l->lock);
    free(l);
}

/* --- hashing only --- */

struct hash_pass {
    ks_store_block_fn fn;
    void *userdata;
    EVP_MD_CTX *raw;
    struct ks_error *err;
    int r;
};

static la_ssize_t hash_read(struct archive *a, void *data, const void **buf)
{
    struct hash_pass *h = data;
    size_t n = 0;
    h->r = h->fn(h->userdata, buf, &n, &h->err);
    if (h->r < 0) {
        archive_set_error(a, -h->r, "reading the layer");
        return -1;
    }
    EVP_DigestUpdate(h->raw, *buf, n);
    return (la_ssize_t)n;
}

/* Hashes the bytes of a layer already in the store: their digest and, decompressed, their
 * diff_id. The tar itself is not parsed: the digests are what the caller checks. */
static int hash_only(ks_store_block_fn fn, void *userdata, char *ret_diff_id, char *ret_digest,
                     struct ks_error **err)
{
    _cleanup_md_ EVP_MD_CTX *raw = EVP_MD_CTX_new();
    _cleanup_md_ EVP_MD_CTX *tar = EVP_MD_CTX_new();
    _cleanup_archive_read_ struct archive *a = ks_layer_reader_new();
    if (raw == NULL || tar == NULL || a == NULL ||
        EVP_DigestInit_ex(raw, EVP_sha256(), NULL) != 1 ||
        EVP_DigestInit_ex(tar, EVP_sha256(), NULL) != 1)
        return ks_error_set(err, ENOMEM, "hash the layer");
    struct hash_pass h = {.fn = fn, .userdata = userdata, .raw = raw};
    int r = archive_read_open(a, &h, NULL, hash_read, NULL);
    struct archive_entry *e;
    if (r == ARCHIVE_OK)
        r = archive_read_next_header(a, &e);
    while (r == ARCHIVE_OK) {
        const void *buf;
        size_t len;
        la_int64_t off;
        r = archive_read_data_block(a, &buf, &len, &off);
        if (r == ARCHIVE_OK)
            EVP_DigestUpdate(tar, buf, len);
    }
    if (h.r < 0) {
        if (err && *err == NULL) {
            *err = h.err;
            h.err = NULL;
        }
        ks_error_free(h.err);
        return h.r;
    }
    /* An empty stream is an empty tar to the raw reader: nothing to decompress. */
    if (r != ARCHIVE_EOF)
        return ks_error_set_plain(err, EINVAL, "decompressing the layer: %s",
                                  archive_error_string(a) ? archive_error_string(a) : "error");
    /* Whatever the decompressor left unread still belongs to the blob. */
    for (;;) {
        const void *buf;
        size_t n = 0;
        r = fn(userdata, &buf, &n, err);
        if (r < 0)
            return r;
        if (n == 0)
            break;
        EVP_DigestUpdate(raw, buf, n);
    }
    if (ks_sha256_final(raw, ret_digest) < 0 || ks_sha256_final(tar, ret_diff_id) < 0)
        return ks_error_set(err, ENOMEM, "hash the layer");
    return 0;
}

/* --- pending layers --- */

static void clear_error(struct ks_error **err)
{
    if (err && *err) {
        ks_error_free(*err);
        *err = NULL;
    }
}

/* Whether the layer's content is already in the store, so its bytes need only be checked. */
static int already_there(struct ks_store *s, const struct ks_store_layer_opts *o,
                         struct ks_error **err)
{
    if (o->expected_diff_id == NULL)
        return 0;
    if (!ks_is_digest(o->expected_diff_id))
        return ks_error_set_plain(err, EINVAL, "invalid diff ID `%s`", o->expected_diff_id);
    _cleanup_db_layer_ struct ks_db_layer *l = NULL;
    int r;
    if (o->detached) {
        r = ks_db_layer_get(s->db, KS_DB_LAYER_BY_DIFF_ID, o->expected_diff_id, &l, err);
    } else {
        char chain[KS_LAYER_DIGEST_LEN];
        if (ks_chain_id(o->parent_chain_id, o->expected_diff_id, chain) < 0)
            return ks_error_set(err, ENOMEM, "chain ID");
        r = ks_db_layer_get(s->db, KS_DB_LAYER_BY_CHAIN_ID, chain, &l, err);
    }
    if (r == -ENOENT) {
        clear_error(err);
        return 0;
    }
    if (r < 0)
        return r;
    /* A detached layer may still have to be unpacked on another parent later: only skip when
     * its blob is at hand for that. */
    _cleanup_free_ char *blob = NULL;
    if (ks_store_layerblob_get(s, o->expected_diff_id, &blob, NULL) < 0)
        return 0;
    return ks_blobstore_has(s->blobs, blob, NULL) == 1;
}

static int check_digests(const struct ks_store_layer *l, const struct ks_store_layer_opts *o,
                         struct ks_error **err)
{
    if (o->expected_digest && strcmp(o->expected_digest, l->digest) != 0)
        return ks_error_set_plain(err, EBADMSG, "layer digest mismatch: expected %s, got %s",
                                  o->expected_digest, l->digest);
    if (o->expected_diff_id && strcmp(o->expected_diff_id, l->diff_id) != 0)
        return ks_error_set_plain(err, EBADMSG, "layer diff ID mismatch: expected %s, got %s",
                                  o->expected_diff_id, l->diff_id);
    return 0;
}

/* Unpacks the stream into a new layer directory on parent_cache (NULL: none), keeping its
 * bytes as a blob. */
static int unpack(struct ks_store_layer *l, const char *parent_cache, ks_store_block_fn fn,
                  void *userdata, const struct ks_store_layer_opts *o, struct ks_error **err)
{
    struct ks_store *s = l->s;
    _cleanup_free_ char *diff_path = NULL;
    int r = ks_snapshot_layer_create(s->overlay, parent_cache, &l->cache_id, &diff_path, err);
    if (r < 0)
        return r;
    _cleanup_close_ int dfd = open(diff_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "open `%s`", diff_path);
    _cleanup_blob_writer_ struct ks_blob_writer *w = NULL;
    r = ks_blob_writer_new(s->blobs, NULL, -1, &w, err);
    if (r < 0)
        return r;
    struct ks_layer_result res;
    bool unsafe = false;
    r = ks_store_stream_layer(fn, userdata, dfd, w, &res, &unsafe, err);
    if (r < 0)
        return r;
    memcpy(l->diff_id, res.diff_id, sizeof(l->diff_id));
    memcpy(l->digest, res.digest, sizeof(l->digest));
    r = check_digests(l, o, err);
    if (r < 0)
        return r;
    /* A tar that its own directory cannot give back is recorded without a blob (it cannot be
     * saved), since its bytes are gone by now. */
    if (!unsafe) {
        _cleanup_free_ char *blob = NULL;
        r = ks_blob_writer_commit(w, &blob, NULL, err);
        if (r < 0)
            return r;
        snprintf(l->blob, sizeof(l->blob), "%s", blob);
        l->blob_kept = true;
    }
    l->size = ks_dir_size(dfd);
    return 0;
}

int ks_store_layer_add_stream(struct ks_store *s, ks_store_block_fn fn, void *userdata,
                              const struct ks_store_layer_opts *o, struct ks_store_layer **ret,
                              struct ks_error **err)
{
    static const struct ks_store_layer_opts detached = {.detached = true};
    if (o == NULL)
        o = &detached;
    if (o->expected_digest && !ks_is_digest(o->expected_digest))
        return ks_error_set_plain(err, EINVAL, "invalid layer digest `%s`", o->expected_digest);
    _cleanup_(ks_store_layer_free_p) struct ks_store_layer *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return ks_error_set(err, ENOMEM, "add layer");
    l->s = s;
    l->detached = o->detached;
    l->lock = ks_store_lock(s, LOCK_SH, err);
    if (l->lock < 0)
        return l->lock;
    if (o->parent_chain_id && !o->detached &&
        (l->parent_chain = strdup(o->parent_chain_id)) == NULL)
        return ks_error_set(err, ENOMEM, "add layer");

    int r = already_there(s, o, err);
    if (r < 0)
        return r;
    if (r > 0) {
        r = hash_only(fn, userdata, l->diff_id, l->digest, err);
        if (r >= 0)
            r = check_digests(l, o, err);
        if (r < 0)
            return ks_error_wrap(err, "add layer");
        *ret = TAKE_PTR(l);
        return 0;
    }

    _cleanup_free_ char *parent_cache = NULL;
    if (l->parent_chain) {
        _cleanup_db_layer_ struct ks_db_layer *p = NULL;
        r = ks_db_layer_get(s->db, KS_DB_LAYER_BY_CHAIN_ID, l->parent_chain, &p, err);
        if (r < 0)
            return ks_error_wrap(err, "add layer: parent layer `%s`", l->parent_chain);
        parent_cache = TAKE_PTR(p->cache_id);
    }
    r = unpack(l, parent_cache, fn, userdata, o, err);
    if (r < 0)
        return ks_error_wrap(err, "add layer");
    *ret = TAKE_PTR(l);
    return 0;
}

int ks_store_layer_existing(struct ks_store *s, const char *parent_chain_id, const char *diff_id,
                            struct ks_store_layer **ret, struct ks_error **err)
{
    if (!ks_is_digest(diff_id))
        return ks_error_set_plain(err, EINVAL, "invalid diff ID `%s`", diff_id);
    _cleanup_(ks_store_layer_free_p) struct ks_store_layer *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return ks_error_set(err, ENOMEM, "add layer");
    l->s = s;
    /* Taken before the look-up: the collector cannot remove the layer from here on. */
    l->lock = ks_store_lock(s, LOCK_SH, err);
    if (l->lock < 0)
        return l->lock;
    char chain[KS_LAYER_DIGEST_LEN];
    if (ks_chain_id(parent_chain_id, diff_id, chain) < 0)
        return ks_error_set(err, ENOMEM, "chain ID");
    _cleanup_db_layer_ struct ks_db_layer *have = NULL;
    int r = ks_db_layer_get(s->db, KS_DB_LAYER_BY_CHAIN_ID, chain, &have, err);
    if (r < 0)
        return r;
    if (parent_chain_id && (l->parent_chain = strdup(parent_chain_id)) == NULL)
        return ks_error_set(err, ENOMEM, "add layer");
    snprintf(l->diff_id, sizeof(l->diff_id), "%s", diff_id);
    /* The digest of the bytes it came from: its blob's, else the tar's own. */
    _cleanup_free_ char *blob = NULL;
    ks_store_layerblob_get(s, diff_id, &blob, NULL);
    snprintf(l->digest, sizeof(l->digest), "%s", blob ? blob : diff_id);
    *ret = TAKE_PTR(l);
    return 0;
}

int ks_store_layer_add(struct ks_store *s, int fd, const struct ks_store_layer_opts *o,
                       struct ks_store_layer **ret, struct ks_error **err)
{
    struct ks_store_fd_source src = {.fd = fd};
    int r = ks_store_layer_add_stream(s, ks_store_fd_source, &src, o, ret, err);
    ks_store_fd_source_release(&src);
    return r;
}

/* --- recording an image --- */

/* A layer directory this call made or took over for a chain that is not recorded yet. */
struct placed {
    char chain[KS_LAYER_DIGEST_LEN];
    char *cache_id;
    int64_t size;
    struct ks_store_layer *from; /* the pending layer whose directory this is, or NULL */
};

struct add {
    struct ks_store *s;
    const struct ks_store_image_spec *spec;
    char (*chains)[KS_LAYER_DIGEST_LEN];
    char **caches; /* per layer: the cache ID of its chain */
    struct placed *placed;
    size_t n_placed;
};

static void add_release(struct add *a, bool committed)
{
    for (size_t i = 0; i < a->n_placed; i++) {
        struct placed *p = &a->placed[i];
        if (p->from && committed)
            p->from->used = true;
        else if (p->from == NULL && !committed)
            ks_snapshot_layer_remove(a->s->overlay, p->cache_id, NULL);
        if (p->from == NULL)
            free(p->cache_id);
    }
    for (size_t i = 0; a->caches && i < a->spec->n_layers; i++)
        free(a->caches[i]);
    free(a->caches);
    free(a->chains);
    free(a->placed);
    a->caches = NULL, a->chains = NULL, a->placed = NULL, a->n_placed = 0;
}

/* Unpacks a layer again from its blob onto parent_cache: the pending one's directory is taken
 * or sits on another parent. */
static int reapply(struct add *a, struct ks_store_layer *l, const char *parent_cache,
                   char **ret_cache, int64_t *ret_size, struct ks_error **err)
{
    _cleanup_free_ char *blob = NULL, *content = NULL;
    int r = 0;
    if (l->blob_kept)
        blob = strdup(l->blob);
    else
        r = ks_store_layerblob_get(a->s, l->diff_id, &blob, err);
    if (r < 0)
        return r;
    /* Where the files are now, for a blob that is a tar index. */
    const char *holder = l->emptied ? l->moved_to : l->cache_id;
    if (blob == NULL || (holder && asprintf(&content, "%s/%s/diff", a->s->overlay, holder) < 0))
        return ks_error_set(err, ENOMEM, "add image");
    _cleanup_close_ int cfd = content ? open(content, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -EBADF;
    _cleanup_close_ int fd = -EBADF;
    r = ks_store_layer_open(a->s, l->diff_id, blob, cfd, &fd, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *cache = NULL, *diff_path = NULL;
    r = ks_snapshot_layer_create(a->s->overlay, parent_cache, &cache, &diff_path, err);
    if (r < 0)
        return r;
    _cleanup_close_ int dfd = open(diff_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct ks_layer_result res;
    if (dfd < 0)
        r = ks_error_set(err, errno, "open `%s`", diff_path);
    else
        r = ks_layer_apply(fd, dfd, &(struct ks_layer_apply_opts){.allow_devices = geteuid() == 0},
                           &res, err);
    if (r >= 0 && strcmp(res.diff_id, l->diff_id) != 0)
        r = ks_error_set_plain(err, EBADMSG, "blob %s no longer gives layer %s", blob, l->diff_id);
    if (r < 0) {
        ks_snapshot_layer_remove(a->s->overlay, cache, NULL);
        return r;
    }
    *ret_size = ks_dir_size(dfd);
    *ret_cache = TAKE_PTR(cache);
    return 0;
}

/* Moves a detached layer's files onto a new layer directory on parent_cache: only the lower
 * chain differs, the files stay where they are. */
static int place_detached(struct add *a, struct ks_store_layer *l, const char *parent_cache,
                          char **ret_cache, struct ks_error **err)
{
    _cleanup_free_ char *cache = NULL, *diff_path = NULL, *old = NULL;
    int r = ks_snapshot_layer_create(a->s->overlay, parent_cache, &cache, &diff_path, err);
    if (r < 0)
        return r;
    if (asprintf(&old, "%s/%s/diff", a->s->overlay, l->cache_id) < 0)
        r = ks_error_set(err, ENOMEM, "add image");
    else if (renameat2(AT_FDCWD, old, AT_FDCWD, diff_path, RENAME_EXCHANGE) < 0)
        r = ks_error_set(err, errno, "move `%s` to `%s`", old, diff_path);
    if (r < 0) {
        ks_snapshot_layer_remove(a->s->overlay, cache, NULL);
        return r;
    }
    /* The pending layer keeps the empty directory, removed when it is freed. */
    l->emptied = true;
    free(l->moved_to);
    l->moved_to = strdup(cache);
    *ret_cache = TAKE_PTR(cache);
    return 0;
}

static int add_placed(struct add *a, const char *chain, char *cache, int64_t size,
                      struct ks_store_layer *from)
{
    struct placed *p = reallocarray(a->placed, a->n_placed + 1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    a->placed = p;
    p = &a->placed[a->n_placed++];
    memcpy(p->chain, chain, KS_LAYER_DIGEST_LEN);
    p->cache_id = cache;
    p->size = size;
    p->from = from;
    return 0;
}

/* Finds or makes the directory of layer i, whose parent's cache ID is known by now. */
static int layer_dir(struct add *a, size_t i, struct ks_error **err)
{
    struct ks_store *s = a->s;
    struct ks_store_layer *l = a->spec->layers[i];
    const char *parent_cache = i > 0 ? a->caches[i - 1] : NULL;
    const char *parent_chain = i > 0 ? a->chains[i - 1] : NULL;
    _cleanup_db_layer_ struct ks_db_layer *have = NULL;
    int r = ks_db_layer_get(s->db, KS_DB_LAYER_BY_CHAIN_ID, a->chains[i], &have, err);
    if (r >= 0) {
        a->caches[i] = TAKE_PTR(have->cache_id);
        return 0;
    }
    if (r != -ENOENT)
        return r;
    clear_error(err);
    r = 0;
    for (size_t j = 0; j < a->n_placed; j++)
        if (strcmp(a->placed[j].chain, a->chains[i]) == 0)
            return (a->caches[i] = strdup(a->placed[j].cache_id)) ? 0 : -ENOMEM;

    bool free_dir = l->cache_id && !l->used && !l->emptied;
    for (size_t j = 0; free_dir && j < a->n_placed; j++)
        free_dir = a->placed[j].from != l;
    char *cache = NULL;
    int64_t size = l->size;
    struct ks_store_layer *from = NULL;
    bool same_parent = (parent_chain == NULL && l->parent_chain == NULL) ||
                       (parent_chain && l->parent_chain && !strcmp(parent_chain, l->parent_chain));
    if (free_dir && (same_parent || (l->detached && parent_cache == NULL))) {
        cache = l->cache_id;
        from = l;
    } else if (free_dir && l->detached) {
        r = place_detached(a, l, parent_cache, &cache, err);
    } else {
        r = reapply(a, l, parent_cache, &cache, &size, err);
    }
    if (r < 0)
        return r;
    if (add_placed(a, a->chains[i], cache, size, from) < 0) {
        if (from == NULL) {
            ks_snapshot_layer_remove(s->overlay, cache, NULL);
            free(cache);
        }
        return ks_error_set(err, ENOMEM, "add image");
    }
    return (a->caches[i] = strdup(cache)) ? 0 : ks_error_set(err, ENOMEM, "add image");
}

/* The config must describe exactly these layers. */
static int check_config(const struct ks_store_image_spec *spec, struct ks_error **err)
{
    if (spec->config == NULL || memchr(spec->config, '\0', spec->config_len))
        return ks_error_msg(err, "image config: missing or not text");
    _cleanup_image_config_ struct ks_image_config *cfg = NULL;
    int r = ks_image_config_parse(spec->config, spec->config_len, &cfg, err);
    if (r < 0)
        return r;
    if (cfg->n_diff_ids != spec->n_layers)
        return ks_error_set_plain(err, EBADMSG,
                                  "image config names %zu layers (rootfs.diff_ids), %zu given",
                                  cfg->n_diff_ids, spec->n_layers);
    for (size_t i = 0; i < spec->n_layers; i++)
        if (strcmp(cfg->diff_ids[i], spec->layers[i]->diff_id) != 0)
            return ks_error_set_plain(err, EBADMSG,
                                      "layer %zu: diff ID %s does not match the config's %s", i,
                                      spec->layers[i]->diff_id, cfg->diff_ids[i]);
    return 0;
}

/* Splits "repository@digest" and checks both halves; *ret_repo owned by the caller. */
static int parse_digest_ref(const char *s, char **ret_repo, const char **ret_digest,
                            struct ks_error **err)
{
    _cleanup_ref_ struct ks_ref *ref = NULL;
    int r = ks_ref_parse(s, &ref, err);
    if (r < 0)
        return r;
    if (ref->digest == NULL || ref->tag)
        return ks_error_set_plain(err, EINVAL, "`%s` is not a repository@digest reference", s);
    *ret_repo = ks_ref_repository(ref);
    *ret_digest = strrchr(s, '@') + 1;
    return *ret_repo ? 0 : ks_error_set(err, ENOMEM, "digest");
}

static int record(struct add *a, const char *id, char **tags, struct ks_error **err)
{
    const struct ks_store_image_spec *spec = a->spec;
    struct ks_db *db = a->s->db;
    int r = ks_db_begin(db, err);
    for (size_t i = 0, j = 0; r >= 0 && i < spec->n_layers; i++) {
        if (j >= a->n_placed || strcmp(a->placed[j].chain, a->chains[i]) != 0)
            continue;
        struct placed *p = &a->placed[j++];
        struct ks_db_layer l = {
            .diff_id = spec->layers[i]->diff_id,
            .chain_id = p->chain,
            .parent = i > 0 ? a->chains[i - 1] : NULL,
            .cache_id = p->cache_id,
            .size = p->size,
        };
        r = ks_db_layer_put(db, &l, err);
    }
    _cleanup_free_ const char **diffs = calloc(spec->n_layers + 1, sizeof(char *));
    if (r >= 0 && diffs == NULL)
        r = ks_error_set(err, ENOMEM, "add image");
    for (size_t i = 0; r >= 0 && i < spec->n_layers; i++)
        diffs[i] = spec->layers[i]->diff_id;
    if (r >= 0)
        r = ks_db_image_put(db, id, spec->config, diffs, spec->n_layers, err);
    for (size_t i = 0; r >= 0 && tags && tags[i]; i++)
        r = ks_db_tag_set(db, tags[i], id, err);
    for (size_t i = 0; r >= 0 && spec->digests && spec->digests[i]; i++) {
        _cleanup_free_ char *repo = NULL;
        const char *digest;
        r = parse_digest_ref(spec->digests[i], &repo, &digest, err);
        if (r >= 0)
            r = ks_db_digest_set(db, repo, digest, id, err);
    }
    if (r >= 0)
        r = ks_db_commit(db, err);
    if (r < 0)
        ks_db_rollback(db);
    return r;
}

/* Blob records for the layers placed now, so save and push find their bytes. */
static int record_blobs(struct add *a, struct ks_error **err)
{
    for (size_t i = 0; i < a->spec->n_layers; i++) {
        struct ks_store_layer *l = a->spec->layers[i];
        if (!l->blob_kept)
            continue;
        _cleanup_free_ char *have = NULL;
        if (ks_store_layerblob_get(a->s, l->diff_id, &have, NULL) >= 0 &&
            ks_blobstore_has(a->s->blobs, have, NULL) == 1)
            continue;
        int r = ks_store_layerblob_record(a->s, l->diff_id, l->blob, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int add_once(struct add *a, const char *id, char **tags, struct ks_error **err)
{
    size_t n = a->spec->n_layers;
    a->chains = calloc(n + 1, sizeof(*a->chains));
    a->caches = calloc(n + 1, sizeof(char *));
    if (a->chains == NULL || a->caches == NULL)
        return ks_error_set(err, ENOMEM, "add image");
    for (size_t i = 0; i < n; i++)
        if (ks_chain_id(i ? a->chains[i - 1] : NULL, a->spec->layers[i]->diff_id, a->chains[i]) < 0)
            return ks_error_set(err, ENOMEM, "chain ID");
    for (size_t i = 0; i < n; i++) {
        int r = layer_dir(a, i, err);
        if (r < 0)
            return r;
    }
    int r = record_blobs(a, err);
    if (r < 0)
        return r;
    return record(a, id, tags, err);
}

static int check_tags(const struct ks_store_image_spec *spec, char ***ret, struct ks_error **err)
{
    size_t n = spec->tags ? ks_strv_len((char *const *)spec->tags) : 0;
    _cleanup_strv_ char **v = calloc(n + 1, sizeof(char *));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "add image");
    for (size_t i = 0; i < n; i++) {
        int r = ks_store_tag_ref(spec->tags[i], &v[i], err);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; spec->digests && spec->digests[i]; i++) {
        _cleanup_free_ char *repo = NULL;
        const char *digest;
        int r = parse_digest_ref(spec->digests[i], &repo, &digest, err);
        if (r < 0)
            return r;
    }
    *ret = TAKE_PTR(v);
    return 0;
}

int ks_store_image_add(struct ks_store *s, const struct ks_store_image_spec *spec, char **ret_id,
                       struct ks_error **err)
{
    for (size_t i = 0; i < spec->n_layers; i++)
        if (spec->layers == NULL || spec->layers[i] == NULL || spec->layers[i]->s != s)
            return ks_error_msg(err, "add image: layer %zu is not a pending layer of this store",
                                i);
    int r = check_config(spec, err);
    _cleanup_strv_ char **tags = NULL;
    if (r >= 0)
        r = check_tags(spec, &tags, err);
    if (r < 0)
        return ks_error_wrap(err, "add image");
    _cleanup_free_ char *id = NULL;
    _cleanup_close_ int lock = ks_store_lock(s, LOCK_SH, err);
    if (lock < 0)
        return lock;
    r = ks_blobstore_put(s->blobs, spec->config, spec->config_len, &id, err);
    if (r < 0)
        return ks_error_wrap(err, "add image");

    for (int attempt = 0;; attempt++) {
        struct add a = {.s = s, .spec = spec};
        r = add_once(&a, id, tags, err);
        add_release(&a, r >= 0);
        /* A concurrent add recorded one of the same chains first: start again over it. */
        if (r != -EEXIST || attempt + 1 >= MAX_CHAIN_RETRIES)
            break;
        clear_error(err);
    }
    if (r < 0)
        return ks_error_wrap(err, "add image");
    if (ret_id)
        *ret_id = TAKE_PTR(id);
    return 0;
}
