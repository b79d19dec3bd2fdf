/* The local image store: import, lookup, tags, removal and garbage collection over the state
 * database, the blob store and the overlay layer directories.
 *
 * The compressed blob a layer was imported from is kept (for save and push) and found by its
 * diff_id through <root>/layerblobs/<diff hex>, a one-line file naming the blob's digest: the
 * database schema has no column for it yet. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../engine/db.h"
#include "blobstore.h"
#include "layer.h"
#include "ref.h"
#include "snapshot.h"
#include "store.h"
#include "store_internal.h"

void ks_store_free(struct ks_store *s)
{
    if (s == NULL)
        return;
    ks_db_close(s->db);
    ks_blobstore_free(s->blobs);
    if (s->layerblobs_fd >= 0)
        close(s->layerblobs_fd);
    free(s->root);
    free(s->overlay);
    free(s->lock_path);
    free(s);
}

const char *ks_store_root(struct ks_store *s)
{
    return s->root;
}

struct ks_db *ks_store_db(struct ks_store *s)
{
    return s->db;
}

int ks_store_open(const char *root, struct ks_store **ret, struct ks_error **err)
{
    if (root == NULL || *root == '\0')
        root = KS_STORE_DEFAULT_ROOT;
    _cleanup_store_ struct ks_store *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ks_error_set(err, ENOMEM, "open image store");
    s->layerblobs_fd = -EBADF;
    s->root = strdup(root);
    if (s->root == NULL || asprintf(&s->overlay, "%s/overlay", root) < 0 ||
        asprintf(&s->lock_path, "%s/store.lock", root) < 0)
        return ks_error_set(err, ENOMEM, "open image store");
    int r = ks_db_open(root, &s->db, err);
    if (r >= 0)
        r = ks_blobstore_open(root, &s->blobs, err);
    if (r >= 0)
        r = ks_mkdir_p(s->overlay, 0700, err);
    _cleanup_free_ char *lb = NULL;
    if (r >= 0 && asprintf(&lb, "%s/" KS_STORE_LAYERBLOBS_DIR, root) < 0)
        r = ks_error_set(err, ENOMEM, "open image store");
    if (r >= 0)
        r = ks_mkdir_p(lb, 0700, err);
    if (r < 0)
        return ks_error_wrap(err, "open image store `%s`", root);
    s->layerblobs_fd = open(lb, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->layerblobs_fd < 0)
        return ks_error_set(err, errno, "open `%s`", lb);
    *ret = TAKE_PTR(s);
    return 0;
}

/* --- import --- */

struct keep_job {
    struct ks_store *s;
    int fd;
    off_t start;
    char *blob;
    struct ks_error *err;
    int r;
};

static void *keep_thread(void *data)
{
    struct keep_job *j = data;
    /* Compression is told by the first bytes here; the apply step tells it again. */
    unsigned char magic[6] = {0};
    ssize_t n = pread(j->fd, magic, sizeof(magic), j->start);
    bool compressed = n > 0 && ks_store_compressed(magic, (size_t)n);
    j->r = ks_store_keep_from_file(j->s, j->fd, j->start, compressed, &j->blob, &j->err);
    return NULL;
}

/* Applies tar_fd to the layer directory dest and keeps it as a blob (the compressed stream, or
 * the tar's index); *ret_blob stays NULL when nothing could be kept. A regular file is applied
 * directly while a second thread reads it again (pread, from the page cache) for the blob:
 * cheaper than passing every byte through a socket to an apply thread, which a pipe needs. */
static int import_stream(struct ks_store *s, int tar_fd, int dest, struct ks_layer_result *res,
                         char **ret_blob, struct ks_error **err)
{
    off_t start = lseek(tar_fd, 0, SEEK_CUR);
    struct stat st;
    if (start >= 0 && fstat(tar_fd, &st) == 0 && S_ISREG(st.st_mode)) {
        struct keep_job job = {.s = s, .fd = tar_fd, .start = start};
        pthread_t t;
        int r = pthread_create(&t, NULL, keep_thread, &job);
        if (r != 0)
            return ks_error_set(err, r, "start the layer keeping thread");
        const struct ks_layer_apply_opts o = ks_store_apply_opts();
        r = ks_layer_apply(tar_fd, dest, &o, res, err);
        pthread_join(t, NULL);
        if (r >= 0 && job.r < 0) {
            r = job.r;
            if (err && *err == NULL)
                *err = TAKE_PTR(job.err);
        }
        ks_error_free(job.err);
        if (r < 0) {
            free(job.blob);
            return r;
        }
        *ret_blob = job.blob;
        return 0;
    }
    _cleanup_blob_writer_ struct ks_blob_writer *w = NULL;
    int r = ks_blob_writer_new(s->blobs, NULL, -1, &w, err);
    if (r < 0)
        return r;
    struct ks_store_fd_source src = {.fd = tar_fd};
    bool unsafe = false;
    r = ks_store_stream_layer(ks_store_fd_source, &src, dest, w, res, &unsafe, err);
    ks_store_fd_source_release(&src);
    if (r < 0 || unsafe)
        return r < 0 ? r : 0; /* from a pipe, an unsafe tar is recorded without a blob */
    return ks_blob_writer_commit(w, ret_blob, NULL, err);
}

/* Records the layer (unless its chain is there already: *ret_dup), the image and the tag in one
 * transaction. */
static int import_commit(struct ks_store *s, const char *cache_id, const char *diff_id,
                         int64_t size, const char *id, const char *config, const char *ref,
                         bool *ret_dup, struct ks_error **err)
{
    int r = ks_db_begin(s->db, err);
    if (r < 0)
        return r;
    _cleanup_db_layer_ struct ks_db_layer *old = NULL;
    r = ks_db_layer_get(s->db, KS_DB_LAYER_BY_CHAIN_ID, diff_id, &old, err);
    *ret_dup = r >= 0;
    if (r == -ENOENT) {
        ks_error_free(err ? *err : NULL);
        if (err)
            *err = NULL;
        struct ks_db_layer l = {
            .diff_id = (char *)diff_id,
            .chain_id = (char *)diff_id,
            .cache_id = (char *)cache_id,
            .size = size,
        };
        r = ks_db_layer_put(s->db, &l, err);
    }
    const char *const diffs[] = {diff_id};
    if (r >= 0)
        r = ks_db_image_put(s->db, id, config, diffs, 1, err);
    if (r >= 0 && ref)
        r = ks_db_tag_set(s->db, ref, id, err);
    if (r >= 0)
        r = ks_db_commit(s->db, err);
    if (r < 0)
        ks_db_rollback(s->db);
    return r;
}

static int import_layer(struct ks_store *s, int tar_fd, char **ret_cache, char *ret_diff_id,
                        int64_t *ret_size, struct ks_error **err)
{
    _cleanup_free_ char *cache_id = NULL, *diff_path = NULL, *blob = NULL;
    int r = ks_snapshot_layer_create(s->overlay, NULL, &cache_id, &diff_path, err);
    if (r < 0)
        return r;
    _cleanup_close_ int dfd = open(diff_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        r = ks_error_set(err, errno, "open `%s`", diff_path);
    struct ks_layer_result res;
    if (r >= 0)
        r = import_stream(s, tar_fd, dfd, &res, &blob, err);
    if (r >= 0 && blob)
        r = ks_store_layerblob_record(s, res.diff_id, blob, err);
    if (r < 0) {
        ks_snapshot_layer_remove(s->overlay, cache_id, NULL);
        return r;
    }
    *ret_size = ks_dir_size(dfd);
    memcpy(ret_diff_id, res.diff_id, KS_LAYER_DIGEST_LEN);
    *ret_cache = TAKE_PTR(cache_id);
    return 0;
}

int ks_store_import(struct ks_store *s, int tar_fd, const char *const *changes, const char *ref,
                    const char *message, char **ret_image_id, struct ks_error **err)
{
    _cleanup_free_ char *full_ref = NULL, *cache_id = NULL, *id = NULL;
    int r = ref ? ks_store_tag_ref(ref, &full_ref, err) : 0;
    if (r < 0)
        return r;
    /* Check the changes before reading the input. */
    _cleanup_json_ json_object *probe = NULL;
    r = ks_image_config_import(changes, "sha256:", message, &probe, err);
    if (r < 0)
        return r;

    _cleanup_close_ int lock = ks_store_lock(s, LOCK_SH, err);
    if (lock < 0)
        return lock;
    char diff_id[KS_LAYER_DIGEST_LEN];
    int64_t size = 0;
    r = import_layer(s, tar_fd, &cache_id, diff_id, &size, err);
    if (r < 0)
        return ks_error_wrap(err, "import");

    _cleanup_json_ json_object *config = NULL;
    r = ks_image_config_import(changes, diff_id, message, &config, err);
    const char *text = r >= 0 ? ks_json_plain(config) : NULL;
    if (r >= 0)
        r = ks_blobstore_put(s->blobs, text, strlen(text), &id, err);
    bool dup = false;
    if (r >= 0)
        r = import_commit(s, cache_id, diff_id, size, id, text, full_ref, &dup, err);
    if (r < 0 || dup)
        ks_snapshot_layer_remove(s->overlay, cache_id, NULL);
    if (r < 0)
        return ks_error_wrap(err, "import");
    *ret_image_id = TAKE_PTR(id);
    return 0;
}

/* --- lookup, tags --- */

static void error_clear(struct ks_error **err)
{
    if (err && *err) {
        ks_error_free(*err);
        *err = NULL;
    }
}

static bool is_full_id(const char *s)
{
    const char *hex = strncmp(s, "sha256:", 7) == 0 ? s + 7 : s;
    return strlen(hex) == 64 && ks_is_hex_prefix(hex);
}

/* The image a reference names through a tag or a recorded digest; -ENOENT when none. */
static int lookup_ref(struct ks_store *s, const char *name, char **ret_id, char **ret_full,
                      struct ks_error **err)
{
    _cleanup_ref_ struct ks_ref *ref = NULL;
    if (ks_ref_parse(name, &ref, NULL) < 0)
        return -ENOENT;
    int r;
    _cleanup_free_ char *full = ks_ref_string(ref);
    if (full == NULL)
        return ks_error_set(err, ENOMEM, "look up `%s`", name);
    if (ref->digest) {
        _cleanup_free_ char *repo = ks_ref_repository(ref);
        if (repo == NULL)
            return ks_error_set(err, ENOMEM, "look up `%s`", name);
        r = ks_db_digest_get(s->db, repo, ref->digest, ret_id, err);
    } else {
        r = ks_db_tag_get(s->db, full, ret_id, err);
    }
    if (r == -ENOENT)
        error_clear(err);
    if (r >= 0 && ret_full)
        *ret_full = TAKE_PTR(full);
    return r;
}

static int lookup(struct ks_store *s, const char *name, char **ret_id, char **ret_ref,
                  struct ks_error **err)
{
    int r;
    if (!is_full_id(name)) {
        r = lookup_ref(s, name, ret_id, ret_ref, err);
        if (r != -ENOENT)
            return r;
    }
    if (ks_is_hex_prefix(name)) {
        r = ks_db_image_find_prefix(s->db, name, ret_id, err);
        if (r != -ENOENT)
            return r;
        error_clear(err);
    }
    return ks_error_set_plain(err, ENOENT, "No such image: %s", name);
}

int ks_store_lookup(struct ks_store *s, const char *name_or_id, char **ret_id,
                    struct ks_error **err)
{
    return lookup(s, name_or_id, ret_id, NULL, err);
}

int ks_store_tag(struct ks_store *s, const char *source, const char *target, struct ks_error **err)
{
    _cleanup_free_ char *id = NULL, *full = NULL;
    int r = lookup(s, source, &id, NULL, err);
    if (r >= 0)
        r = ks_store_tag_ref(target, &full, err);
    if (r >= 0)
        r = ks_db_tag_set(s->db, full, id, err);
    return r;
}

int ks_store_untag(struct ks_store *s, const char *ref, struct ks_error **err)
{
    _cleanup_free_ char *full = NULL;
    int r = ks_store_tag_ref(ref, &full, err);
    if (r < 0)
        return r;
    r = ks_db_tag_delete(s->db, full, err);
    if (r == -ENOENT) {
        error_clear(err);
        return ks_error_set_plain(err, ENOENT, "No such image: %s", ref);
    }
    return r;
}

char *ks_store_familiar(const char *s)
{
    _cleanup_ref_ struct ks_ref *ref = NULL;
    if (ks_ref_parse(s, &ref, NULL) < 0)
        return strdup(s);
    return ks_ref_familiar(ref);
}

static int strv_push(char ***v, char *s)
{
    if (s == NULL)
        return -ENOMEM;
    size_t n = *v ? ks_strv_len(*v) : 0;
    char **nv = realloc(*v, (n + 2) * sizeof(char *));
    if (nv == NULL) {
        free(s);
        return -ENOMEM;
    }
    nv[n] = s;
    nv[n + 1] = NULL;
    *v = nv;
    return 0;
}

/* --- removal and garbage collection --- */

/* The ID of a container using the image (owned by the caller), or NULL. */
static char *image_used_by(struct ks_store *s, const char *id)
{
    char *cid = NULL;
    return ks_db_container_using_image(s->db, id, &cid, NULL) == 0 ? cid : NULL;
}

static size_t count_repositories(char **tags)
{
    size_t n = 0;
    for (size_t i = 0; tags[i]; i++) {
        size_t li = strcspn(tags[i], "@");
        const char *c = strrchr(tags[i], ':');
        if (c && (size_t)(c - tags[i]) < li && !strchr(c, '/'))
            li = (size_t)(c - tags[i]);
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strncmp(tags[i], tags[j], li) == 0 &&
                   (tags[j][li] == ':' || tags[j][li] == '@' || tags[j][li] == '\0');
        n += !seen;
    }
    return n;
}

static int remove_locked(struct ks_store *s, const char *id, const char *by_ref, bool force,
                         char ***untagged, char ***deleted, struct ks_error **err)
{
    _cleanup_strv_ char **tags = NULL;
    int r = ks_db_tags_for_image(s->db, id, &tags, err);
    if (r < 0)
        return r;
    if (by_ref) {
        r = ks_db_tag_delete(s->db, by_ref, err);
        if (r < 0)
            return r;
        if (strv_push(untagged, ks_store_familiar(by_ref)) < 0)
            return ks_error_set(err, ENOMEM, "remove");
        if (ks_strv_len(tags) > 1)
            return 0;
    } else if (count_repositories(tags) > 1 && !force) {
        return ks_error_set_plain(err, EBUSY,
                                  "conflict: unable to delete %.12s (must be forced) - image is "
                                  "referenced in multiple repositories",
                                  id + 7);
    }
    _cleanup_free_ char *user = image_used_by(s, id);
    if (user)
        return ks_error_set_plain(err, EBUSY,
                                  "conflict: unable to delete %.12s (must be forced) - image is "
                                  "being used by container %.12s",
                                  id + 7, user);
    for (size_t i = 0; !by_ref && tags[i]; i++) {
        r = ks_db_tag_delete(s->db, tags[i], err);
        if (r < 0)
            return r;
        if (strv_push(untagged, ks_store_familiar(tags[i])) < 0)
            return ks_error_set(err, ENOMEM, "remove");
    }
    r = ks_db_image_delete(s->db, id, err);
    if (r < 0)
        return r;
    if (strv_push(deleted, strdup(id)) < 0)
        return ks_error_set(err, ENOMEM, "remove");
    return 0;
}

int ks_store_remove(struct ks_store *s, const char *name, bool force, char ***ret_untagged,
                    char ***ret_deleted, struct ks_error **err)
{
    _cleanup_free_ char *id = NULL, *by_ref = NULL;
    int r = lookup(s, name, &id, &by_ref, err);
    if (r < 0)
        return r;
    /* A digest reference is removed with its image, as the tags are. */
    if (by_ref && strchr(by_ref, '@')) {
        free(by_ref);
        by_ref = NULL;
    }
    _cleanup_strv_ char **untagged = calloc(1, sizeof(char *));
    _cleanup_strv_ char **deleted = calloc(1, sizeof(char *));
    if (untagged == NULL || deleted == NULL)
        return ks_error_set(err, ENOMEM, "remove");
    r = ks_db_begin(s->db, err);
    if (r < 0)
        return r;
    r = remove_locked(s, id, by_ref, force, &untagged, &deleted, err);
    if (r >= 0)
        r = ks_db_commit(s->db, err);
    if (r < 0) {
        ks_db_rollback(s->db);
        return r;
    }
    if (deleted[0]) {
        r = ks_store_gc(s, err);
        if (r < 0)
            return r;
    }
    if (ret_untagged)
        *ret_untagged = TAKE_PTR(untagged);
    if (ret_deleted)
        *ret_deleted = TAKE_PTR(deleted);
    return 0;
}

/* Forgets every unused layer in one transaction; their cache and diff IDs are returned. */
static int gc_layers_db(struct ks_store *s, char ***caches, char ***diffs, struct ks_error **err)
{
    int r = ks_db_begin(s->db, err);
    if (r < 0)
        return r;
    for (;;) {
        _cleanup_strv_ char **unused = NULL;
        r = ks_db_layers_unused(s->db, &unused, err);
        if (r < 0 || unused[0] == NULL)
            break;
        for (size_t i = 0; r >= 0 && unused[i]; i++) {
            _cleanup_db_layer_ struct ks_db_layer *l = NULL;
            r = ks_db_layer_get(s->db, KS_DB_LAYER_BY_CHAIN_ID, unused[i], &l, err);
            if (r >= 0)
                r = ks_db_layer_delete(s->db, unused[i], err);
            if (r >= 0 && (strv_push(caches, TAKE_PTR(l->cache_id)) < 0 ||
                           strv_push(diffs, TAKE_PTR(l->diff_id)) < 0))
                r = ks_error_set(err, ENOMEM, "collect layers");
        }
        if (r < 0)
            break;
    }
    if (r >= 0)
        r = ks_db_commit(s->db, err);
    if (r < 0)
        ks_db_rollback(s->db);
    return r;
}

struct blob_gc {
    struct ks_store *s;
    char **keep;
    char **drop;
};

static int blob_gc_cb(const char *digest, int64_t size, void *userdata, struct ks_error **err)
{
    struct blob_gc *g = userdata;
    for (size_t i = 0; g->keep && g->keep[i]; i++)
        if (strcmp(g->keep[i], digest) == 0)
            return 0;
    if (strv_push(&g->drop, strdup(digest)) < 0)
        return ks_error_set(err, ENOMEM, "collect blobs");
    return 0;
}

/* The blobs something references: image configs and the layer blobs of recorded layers. */
static int gc_blobs_keep(struct ks_store *s, char ***keep, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r =
        ks_db_prepare(s->db, "SELECT id FROM images UNION SELECT diff_id FROM layers", &st, err);
    if (r < 0)
        return r;
    while ((r = ks_db_step(s->db, st, "collect blobs", err)) > 0) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (v == NULL)
            continue;
        if (strncmp(v, "sha256:", 7) == 0) {
            _cleanup_free_ char *blob = NULL;
            if (ks_read_file_at(s->layerblobs_fd, v + 7, &blob, NULL, NULL) >= 0 &&
                strv_push(keep, TAKE_PTR(blob)) < 0)
                return ks_error_set(err, ENOMEM, "collect blobs");
        }
        if (strv_push(keep, strdup(v)) < 0)
            return ks_error_set(err, ENOMEM, "collect blobs");
    }
    return r;
}

static int gc_blobs(struct ks_store *s, struct ks_error **err)
{
    struct blob_gc g = {.s = s};
    int r = gc_blobs_keep(s, &g.keep, err);
    if (r >= 0)
        r = ks_blobstore_list(s->blobs, blob_gc_cb, &g, err);
    for (size_t i = 0; r >= 0 && g.drop && g.drop[i]; i++) {
        struct ks_error *e = NULL;
        if (ks_blobstore_delete(s->blobs, g.drop[i], &e) < 0 && e->errnum != ENOENT)
            r = ks_error_set_plain(err, e->errnum, "%s", e->msg);
        ks_error_free(e);
    }
    ks_strv_free(g.keep);
    ks_strv_free(g.drop);
    return r;
}

static bool strv_has(char **v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

/* The directories under <root>/overlay that something names: layers and container snapshots. */
static int gc_dirs_keep(struct ks_store *s, char ***keep, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(s->db,
                          "SELECT cache_id FROM layers UNION "
                          "SELECT snapshot FROM containers WHERE snapshot IS NOT NULL",
                          &st, err);
    if (r < 0)
        return r;
    while ((r = ks_db_step(s->db, st, "collect layer directories", err)) > 0) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (v && strv_push(keep, strdup(v)) < 0)
            return ks_error_set(err, ENOMEM, "collect layer directories");
    }
    return r;
}

/* Short links in <root>/overlay/l whose directory is gone. */
static int gc_links(struct ks_store *s, int overlay_fd, struct ks_error **err)
{
    int fd = openat(overlay_fd, "l", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : ks_error_set(err, errno, "open `%s/l`", s->overlay);
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return ks_error_set(err, errno, "open `%s/l`", s->overlay);
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_type != DT_LNK && de->d_type != DT_UNKNOWN)
            continue;
        /* Followed, a link reaches ../<cache id>/diff; ENOENT: that directory is gone. */
        if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 || errno != ENOENT)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
            return ks_error_set(err, errno, "remove `%s/l/%s`", s->overlay, de->d_name);
    }
    return 0;
}

/* Lists the directories under <root>/overlay that keep does not name. */
static int gc_strays(struct ks_store *s, int overlay_fd, char **keep, char ***drop,
                     struct ks_error **err)
{
    int fd = fcntl(overlay_fd, F_DUPFD_CLOEXEC, 3);
    _cleanup_closedir_ DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return ks_error_set(err, errno, "open `%s`", s->overlay);
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
            continue;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            strcmp(de->d_name, "l") == 0 || strv_has(keep, de->d_name))
            continue;
        if (strv_push(drop, strdup(de->d_name)) < 0)
            return ks_error_set(err, ENOMEM, "collect layer directories");
    }
    return 0;
}

/* Removes the layer directories that no layer row and no container names: what an import, a
 * load or a container creation killed between making its directory and recording it left
 * behind. Only under the exclusive lock: every writer holds the shared one from making a
 * directory until its row is committed. */
static int gc_sweep(struct ks_store *s, struct ks_error **err)
{
    _cleanup_strv_ char **keep = NULL, **drop = NULL;
    int r = gc_dirs_keep(s, &keep, err);
    if (r < 0)
        return r;
    _cleanup_close_ int ofd = open(s->overlay, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ofd < 0)
        return ks_error_set(err, errno, "open `%s`", s->overlay);
    r = gc_strays(s, ofd, keep, &drop, err);
    if (r < 0)
        return r;
    for (size_t i = 0; drop && drop[i]; i++) {
        struct stat st;
        if (fstatat(ofd, drop[i], &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        /* A name the snapshot code never makes is not ours to remove (EINVAL). */
        struct ks_error *e = NULL;
        r = ks_snapshot_layer_remove(s->overlay, drop[i], &e);
        if (r < 0 && r != -EINVAL) {
            if (err && *err == NULL)
                *err = TAKE_PTR(e);
            ks_error_free(e);
            return r;
        }
        ks_error_free(e);
    }
    return gc_links(s, ofd, err);
}

int ks_store_gc(struct ks_store *s, struct ks_error **err)
{
    _cleanup_close_ int lock = ks_store_lock(s, LOCK_EX, err);
    if (lock < 0)
        return lock;
    _cleanup_strv_ char **caches = NULL, **diffs = NULL;
    int r = gc_layers_db(s, &caches, &diffs, err);
    if (r < 0)
        return ks_error_wrap(err, "collect layers");
    for (size_t i = 0; caches && caches[i]; i++) {
        r = ks_snapshot_layer_remove(s->overlay, caches[i], err);
        if (r < 0)
            return ks_error_wrap(err, "collect layers");
    }
    for (size_t i = 0; diffs && diffs[i]; i++) {
        _cleanup_db_layer_ struct ks_db_layer *l = NULL;
        if (ks_db_layer_get(s->db, KS_DB_LAYER_BY_DIFF_ID, diffs[i], &l, NULL) == -ENOENT &&
            strncmp(diffs[i], "sha256:", 7) == 0)
            unlinkat(s->layerblobs_fd, diffs[i] + 7, 0);
    }
    r = gc_sweep(s, err);
    if (r < 0)
        return ks_error_wrap(err, "collect layer directories");
    r = gc_blobs(s, err);
    if (r < 0)
        return ks_error_wrap(err, "collect blobs");
    return 0;
}
