/* Garbage collection of a registry's storage: mark what the kept manifests of every repository
 * reference, then sweep the blob store and the repositories' blob links. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../base/cleanup.h"
#include "../base/fs.h"
#include "../image/manifest.h"
#include "server_internal.h"

struct digest_set {
    char **v;
    size_t n, cap;
    bool sorted;
};

static void set_free(struct digest_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static bool set_has(struct digest_set *s, const char *d)
{
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof(*s->v), ks_reg_strcmp_p);
        s->sorted = true;
    }
    return s->n && bsearch(&d, s->v, s->n, sizeof(*s->v), ks_reg_strcmp_p) != NULL;
}

static int set_add(struct digest_set *s, const char *d)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    if ((s->v[s->n] = strdup(d)) == NULL)
        return -ENOMEM;
    s->n++;
    s->sorted = false;
    return 0;
}

struct gc {
    struct ks_reg_store *st;
    bool dry_run;
    ks_registry_gc_fn fn;
    void *userdata;
    struct ks_registry_gc_stats stats;
    struct digest_set marked;
};

static int mark_manifest(struct gc *gc, const struct ks_manifest *m, const char *digest)
{
    int r = set_add(&gc->marked, digest);
    if (r >= 0 && m && m->kind == KS_MANIFEST_IMAGE) {
        r = set_add(&gc->marked, m->config.digest);
        for (size_t i = 0; r >= 0 && i < m->n_layers; i++)
            r = set_add(&gc->marked, m->layers[i].digest);
    }
    return r;
}

/* With delete_untagged: which manifests of the repository a tag reaches. The sets grow until
 * nothing changes: children of kept indexes, referrers of kept manifests. */
static int reachable(struct gc *gc, const char *name, char **manifests, size_t n,
                     struct ks_manifest **parsed, bool *keep, struct ks_error **err)
{
    _cleanup_strv_ char **tags = NULL;
    int r = ks_reg_list_tags(gc->st, name, &tags, NULL, err);
    if (r < 0)
        return r;
    for (char **t = tags; *t; t++) {
        char d[KS_REG_DIGEST_MAX];
        struct ks_error *e = NULL;
        if (ks_reg_tag_get(gc->st, name, *t, d, &e) == 0)
            for (size_t i = 0; i < n; i++)
                keep[i] |= strcmp(manifests[i], d) == 0;
        ks_error_free(e);
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < n; i++) {
            const struct ks_manifest *m = parsed[i];
            if (m == NULL)
                continue;
            for (size_t j = 0; keep[i] && j < m->n_manifests; j++)
                for (size_t k = 0; k < n; k++)
                    if (!keep[k] && strcmp(manifests[k], m->manifests[j].digest) == 0)
                        keep[k] = changed = true;
            if (!keep[i] && m->subject)
                for (size_t k = 0; k < n; k++)
                    if (keep[k] && strcmp(manifests[k], m->subject->digest) == 0)
                        keep[i] = changed = true;
        }
    }
    return 0;
}

static int gc_repo(struct gc *gc, const char *name, bool delete_untagged, struct ks_error **err)
{
    _cleanup_strv_ char **manifests = NULL;
    size_t n = 0;
    int r = ks_reg_list_manifests(gc->st, name, &manifests, &n, err);
    if (r < 0)
        return r;
    struct ks_manifest **parsed = calloc(n + 1, sizeof(*parsed));
    bool *keep = calloc(n + 1, sizeof(*keep));
    if (parsed == NULL || keep == NULL) {
        r = ks_error_set(err, ENOMEM, "garbage collection");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct ks_error *e = NULL;
        /* one that does not parse keeps only itself */
        ks_reg_manifest_load(gc->st, name, manifests[i], NULL, &parsed[i], NULL, &e);
        ks_error_free(e);
        keep[i] = !delete_untagged;
    }
    if (delete_untagged && (r = reachable(gc, name, manifests, n, parsed, keep, err)) < 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        if (keep[i]) {
            if (mark_manifest(gc, parsed[i], manifests[i]) < 0) {
                r = ks_error_set(err, ENOMEM, "garbage collection");
                goto out;
            }
            continue;
        }
        gc->stats.manifests_removed++;
        if (gc->fn)
            gc->fn("manifest", name, manifests[i], gc->userdata);
        if (gc->dry_run)
            continue;
        struct ks_error *e = NULL;
        if (parsed[i] && parsed[i]->subject)
            ks_reg_referrer_remove(gc->st, name, parsed[i]->subject->digest, manifests[i], &e);
        ks_error_free(TAKE_PTR(e));
        if ((r = ks_reg_manifest_unlink(gc->st, name, manifests[i], err)) < 0)
            goto out;
    }
    r = 0;
out:
    for (size_t i = 0; parsed && i < n; i++)
        ks_manifest_free(parsed[i]);
    free(parsed);
    free(keep);
    return r;
}

static int sweep_blob(const char *digest, int64_t size, void *userdata, struct ks_error **err)
{
    struct gc *gc = userdata;
    if (set_has(&gc->marked, digest))
        return 0;
    gc->stats.blobs_removed++;
    gc->stats.bytes_removed += (uint64_t)size;
    if (gc->fn)
        gc->fn("blob", NULL, digest, gc->userdata);
    if (gc->dry_run)
        return 0;
    int r = ks_blobstore_delete(gc->st->blobs, digest, err);
    return r == -ENOENT ? 0 : r;
}

/* Drops the repositories' links to blobs that are gone. */
static int sweep_links(struct gc *gc, const char *name, struct ks_error **err)
{
    _cleanup_strv_ char **links = NULL;
    int r = ks_reg_list_blob_links(gc->st, name, &links, err);
    if (r < 0)
        return r;
    for (char **l = links; *l; l++) {
        if (ks_blobstore_has(gc->st->blobs, *l, NULL) == 1)
            continue;
        struct ks_error *e = NULL;
        ks_reg_blob_unlink(gc->st, name, *l, &e);
        ks_error_free(e);
    }
    return 0;
}

/* Upload sessions untouched for longer than this are abandoned (Docker's registry purges
 * them after a week too). */
#define UPLOAD_MAX_AGE (7 * 24 * 3600)

static int sweep_uploads(struct gc *gc, struct ks_error **err)
{
    int fd = openat(gc->st->uploads_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "list uploads");
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return ks_error_set(err, errno, "list uploads");
    }
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!ks_registry_uuid_valid(de->d_name))
            continue;
        char state[KS_REGISTRY_UUID_LEN + 16];
        snprintf(state, sizeof(state), "%s/state", de->d_name);
        struct stat st;
        if (fstatat(dirfd(d), state, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            now - st.st_mtime < UPLOAD_MAX_AGE)
            continue;
        gc->stats.uploads_removed++;
        if (gc->fn)
            gc->fn("upload", NULL, de->d_name, gc->userdata);
        if (!gc->dry_run) {
            int r = ks_rm_rf_at(dirfd(d), de->d_name, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int ks_registry_gc(const char *root, bool dry_run, bool delete_untagged, ks_registry_gc_fn fn,
                   void *userdata, struct ks_registry_gc_stats *ret_stats, struct ks_error **err)
{
    _cleanup_(ks_reg_store_free_p) struct ks_reg_store *st = NULL;
    int r = ks_reg_store_open(root, &st, err);
    if (r < 0)
        return ks_error_wrap(err, "registry storage `%s`", root);
    struct gc gc = {.st = st, .dry_run = dry_run, .fn = fn, .userdata = userdata};
    _cleanup_strv_ char **repos = NULL;
    r = ks_reg_list_repos(st, &repos, NULL, err);
    for (char **name = repos; r >= 0 && name && *name; name++)
        r = gc_repo(&gc, *name, delete_untagged, err);
    if (r >= 0)
        r = ks_blobstore_list(st->blobs, sweep_blob, &gc, err);
    for (char **name = repos; r >= 0 && !dry_run && name && *name; name++)
        r = sweep_links(&gc, *name, err);
    if (r >= 0)
        r = sweep_uploads(&gc, err);
    set_free(&gc.marked);
    if (r < 0)
        return ks_error_wrap(err, "garbage collection");
    if (ret_stats)
        *ret_stats = gc.stats;
    return 0;
}
