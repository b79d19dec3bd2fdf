/* The registry's files: repositories (blob and manifest links, tags, referrers) and upload
 * sessions. Names, tags, digests and ids reach here checked (server_route.c), so each is a
 * plain relative path without "..". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/fs.h"
#include "../base/hash.h"
#include "../image/manifest.h"
#include "../image/ref.h"
#include "server_internal.h"

#define STATE_MAX 512

void ks_reg_store_free(struct ks_reg_store *st)
{
    if (st == NULL)
        return;
    ks_closep(&st->repos_fd);
    ks_closep(&st->uploads_fd);
    ks_blobstore_free(st->blobs);
    pthread_mutex_destroy(&st->write_lock);
    free(st->root);
    free(st);
}

static int open_dir(const char *root, const char *sub, struct ks_error **err)
{
    _cleanup_free_ char *p = NULL;
    if (asprintf(&p, "%s/%s", root, sub) < 0)
        return ks_error_set(err, ENOMEM, "registry storage");
    int r = ks_mkdir_p(p, 0700, err);
    if (r < 0)
        return r;
    int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open `%s`", p);
    return fd;
}

int ks_reg_store_open(const char *root, struct ks_reg_store **ret, struct ks_error **err)
{
    _cleanup_(ks_reg_store_free_p) struct ks_reg_store *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return ks_error_set(err, ENOMEM, "registry storage");
    st->repos_fd = st->uploads_fd = -EBADF;
    pthread_mutex_init(&st->write_lock, NULL);
    st->root = strdup(root);
    if (st->root == NULL)
        return ks_error_set(err, ENOMEM, "registry storage");
    int r = ks_blobstore_open(root, &st->blobs, err);
    if (r < 0)
        return r;
    st->repos_fd = open_dir(root, "repositories", err);
    if (st->repos_fd < 0)
        return st->repos_fd;
    st->uploads_fd = open_dir(root, "uploads", err);
    if (st->uploads_fd < 0)
        return st->uploads_fd;
    *ret = TAKE_PTR(st);
    return 0;
}

bool ks_reg_digest_path(const char *digest, char sep, char *buf, size_t len)
{
    if (!ks_is_digest(digest) || strlen(digest) >= len)
        return false;
    strcpy(buf, digest);
    *strchr(buf, ':') = sep;
    return true;
}

/* Opens repositories/<name>/<sub> as a directory (created with create). */
static int repo_dir(struct ks_reg_store *st, const char *name, const char *sub, bool create,
                    struct ks_error **err)
{
    char path[KS_REGISTRY_NAME_MAX + 2 * KS_REG_DIGEST_MAX + 32];
    if (snprintf(path, sizeof(path), "%s/%s", name, sub) >= (int)sizeof(path))
        return ks_error_set_plain(err, ENAMETOOLONG, "repository path too long");
    if (create) {
        int fd = ks_mkdir_p_in_root(st->repos_fd, path, 0700, false, err);
        if (fd < 0)
            return fd;
        close(fd);
    }
    int fd = openat(st->repos_fd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open repository `%s`", name);
    return fd;
}

int ks_reg_repo_exists(struct ks_reg_store *st, const char *name)
{
    static const char *const parts[] = {"_blobs", "_manifests", "_tags"};
    char path[KS_REGISTRY_NAME_MAX + 16];
    for (size_t i = 0; i < KS_ELEMENTSOF(parts); i++) {
        snprintf(path, sizeof(path), "%s/%s", name, parts[i]);
        if (faccessat(st->repos_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            return 1;
    }
    return 0;
}

/* Writes content as dir/leaf in repositories/<name>/<dir>, created as needed. */
static int put_file(struct ks_reg_store *st, const char *name, const char *dir, const char *leaf,
                    const char *content, struct ks_error **err)
{
    _cleanup_close_ int fd = repo_dir(st, name, dir, true, err);
    if (fd < 0)
        return fd;
    pthread_mutex_lock(&st->write_lock);
    int r = ks_write_file_atomic(fd, leaf, content, strlen(content), 0600, err);
    pthread_mutex_unlock(&st->write_lock);
    return r;
}

static int remove_file(struct ks_reg_store *st, const char *name, const char *dir, const char *leaf,
                       struct ks_error **err)
{
    _cleanup_close_ int fd = repo_dir(st, name, dir, false, err);
    if (fd < 0)
        return fd;
    if (unlinkat(fd, leaf, 0) < 0)
        return ks_error_set(err, errno, "remove `%s/%s` of `%s`", dir, leaf, name);
    return 0;
}

/* Splits a digest into the directory "<prefix>/<alg>" and the leaf "<hex>". */
static int digest_parts(const char *prefix, const char *digest, char *dir, size_t dir_len,
                        const char **ret_leaf, struct ks_error **err)
{
    const char *colon = ks_is_digest(digest) ? strchr(digest, ':') : NULL;
    if (colon == NULL)
        return ks_error_msg(err, "invalid digest `%s`", digest ? digest : "");
    snprintf(dir, dir_len, "%s/%.*s", prefix, (int)(colon - digest), digest);
    *ret_leaf = colon + 1;
    return 0;
}

int ks_reg_blob_link(struct ks_reg_store *st, const char *name, const char *digest,
                     struct ks_error **err)
{
    char dir[32];
    const char *leaf;
    int r = digest_parts("_blobs", digest, dir, sizeof(dir), &leaf, err);
    return r < 0 ? r : put_file(st, name, dir, leaf, "", err);
}

int ks_reg_blob_linked(struct ks_reg_store *st, const char *name, const char *digest)
{
    char path[KS_REGISTRY_NAME_MAX + KS_REG_DIGEST_MAX + 16], dp[KS_REG_DIGEST_MAX];
    if (!ks_reg_digest_path(digest, '/', dp, sizeof(dp)))
        return -EINVAL;
    snprintf(path, sizeof(path), "%s/_blobs/%s", name, dp);
    return faccessat(st->repos_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ? 1 : 0;
}

int ks_reg_blob_unlink(struct ks_reg_store *st, const char *name, const char *digest,
                       struct ks_error **err)
{
    char dir[32];
    const char *leaf;
    int r = digest_parts("_blobs", digest, dir, sizeof(dir), &leaf, err);
    return r < 0 ? r : remove_file(st, name, dir, leaf, err);
}

int ks_reg_manifest_link(struct ks_reg_store *st, const char *name, const char *digest,
                         const char *content_type, struct ks_error **err)
{
    char dir[32];
    const char *leaf;
    int r = digest_parts("_manifests", digest, dir, sizeof(dir), &leaf, err);
    return r < 0 ? r : put_file(st, name, dir, leaf, content_type, err);
}

int ks_reg_manifest_get(struct ks_reg_store *st, const char *name, const char *digest,
                        char **ret_type, struct ks_error **err)
{
    char path[KS_REGISTRY_NAME_MAX + KS_REG_DIGEST_MAX + 16], dp[KS_REG_DIGEST_MAX];
    if (!ks_reg_digest_path(digest, '/', dp, sizeof(dp)))
        return ks_error_msg(err, "invalid digest");
    snprintf(path, sizeof(path), "%s/_manifests/%s", name, dp);
    _cleanup_close_ int fd = openat(st->repos_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "manifest `%s` of `%s`", digest, name);
    return ks_read_fd(fd, 256, ret_type, NULL, err);
}

int ks_reg_manifest_load(struct ks_reg_store *st, const char *name, const char *digest,
                         char **ret_type, struct ks_manifest **ret, int64_t *ret_size,
                         struct ks_error **err)
{
    _cleanup_free_ char *type = NULL;
    int r = ks_reg_manifest_get(st, name, digest, &type, err);
    if (r < 0)
        return r;
    _cleanup_close_ int fd = -EBADF;
    if ((r = ks_blobstore_open_blob(st->blobs, digest, &fd, NULL, err)) < 0)
        return r;
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    if ((r = ks_read_fd(fd, KS_MANIFEST_MAX_SIZE, &buf, &len, err)) < 0)
        return r;
    if ((r = ks_manifest_parse(buf, len, type, ret, err)) < 0)
        return r;
    if (ret_size)
        *ret_size = (int64_t)len;
    if (ret_type)
        *ret_type = TAKE_PTR(type);
    return 0;
}

int ks_reg_manifest_unlink(struct ks_reg_store *st, const char *name, const char *digest,
                           struct ks_error **err)
{
    char dir[32];
    const char *leaf;
    int r = digest_parts("_manifests", digest, dir, sizeof(dir), &leaf, err);
    return r < 0 ? r : remove_file(st, name, dir, leaf, err);
}

int ks_reg_tag_set(struct ks_reg_store *st, const char *name, const char *tag, const char *digest,
                   struct ks_error **err)
{
    return put_file(st, name, "_tags", tag, digest, err);
}

int ks_reg_tag_get(struct ks_reg_store *st, const char *name, const char *tag, char *ret,
                   struct ks_error **err)
{
    char path[KS_REGISTRY_NAME_MAX + KS_REGISTRY_TAG_MAX + 16];
    snprintf(path, sizeof(path), "%s/_tags/%s", name, tag);
    _cleanup_close_ int fd = openat(st->repos_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "tag `%s` of `%s`", tag, name);
    _cleanup_free_ char *d = NULL;
    int r = ks_read_fd(fd, KS_REG_DIGEST_MAX, &d, NULL, err);
    if (r < 0)
        return r;
    if (!ks_is_digest(d))
        return ks_error_set_plain(err, EBADMSG, "tag `%s` of `%s` is corrupt", tag, name);
    strcpy(ret, d);
    return 0;
}

int ks_reg_tag_remove(struct ks_reg_store *st, const char *name, const char *tag,
                      struct ks_error **err)
{
    return remove_file(st, name, "_tags", tag, err);
}

int ks_reg_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct strv_builder {
    char **v;
    size_t n, cap;
};

static int strv_add(struct strv_builder *b, const char *s)
{
    if (b->n + 1 >= b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        char **v = realloc(b->v, cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n] = strdup(s);
    if (b->v[b->n] == NULL)
        return -ENOMEM;
    b->v[++b->n] = NULL;
    return 0;
}

static int strv_finish(struct strv_builder *b, char ***ret, size_t *ret_n, struct ks_error **err)
{
    if (b->v == NULL && strv_add(b, "") == 0) {
        free(b->v[0]);
        b->v[0] = NULL;
        b->n = 0;
    }
    if (b->v == NULL)
        return ks_error_set(err, ENOMEM, "list");
    qsort(b->v, b->n, sizeof(*b->v), ks_reg_strcmp_p);
    *ret = b->v;
    if (ret_n)
        *ret_n = b->n;
    return 0;
}

/* The entries of repositories/<name>/<dir> whose names pass ok, with prefix prepended; a missing
 * directory is an empty list. */
static int list_dir(struct ks_reg_store *st, const char *name, const char *dir, const char *prefix,
                    bool (*ok)(const char *), struct strv_builder *b, struct ks_error **err)
{
    struct ks_error *ignored = NULL;
    int fd = repo_dir(st, name, dir, false, &ignored);
    ks_error_free(ignored);
    if (fd < 0)
        return fd == -ENOENT ? 0 : ks_error_set(err, -fd, "list `%s` of `%s`", dir, name);
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return ks_error_set(err, errno, "list `%s`", name);
    }
    struct dirent *de;
    char buf[KS_REG_DIGEST_MAX + 16];
    while ((de = readdir(d)) != NULL) {
        snprintf(buf, sizeof(buf), "%s%s", prefix, de->d_name);
        if (!ok(buf))
            continue;
        if (strv_add(b, buf) < 0)
            return ks_error_set(err, ENOMEM, "list");
    }
    return 0;
}

int ks_reg_list_tags(struct ks_reg_store *st, const char *name, char ***ret, size_t *ret_n,
                     struct ks_error **err)
{
    struct strv_builder b = {0};
    int r = list_dir(st, name, "_tags", "", ks_registry_tag_valid, &b, err);
    if (r < 0) {
        ks_strv_free(b.v);
        return r;
    }
    return strv_finish(&b, ret, ret_n, err);
}

/* The digests under a repository's dir/sha256 and dir/sha512 link directories. */
static int list_digests(struct ks_reg_store *st, const char *name, const char *dir, char ***ret,
                        size_t *ret_n, struct ks_error **err)
{
    struct strv_builder b = {0};
    char sub[64];
    int r = 0;
    for (const char *const *alg = (const char *const[]){"sha256", "sha512", NULL}; *alg && r >= 0;
         alg++) {
        char prefix[16];
        snprintf(sub, sizeof(sub), "%s/%s", dir, *alg);
        snprintf(prefix, sizeof(prefix), "%s:", *alg);
        r = list_dir(st, name, sub, prefix, ks_is_digest, &b, err);
    }
    if (r < 0) {
        ks_strv_free(b.v);
        return r;
    }
    return strv_finish(&b, ret, ret_n, err);
}

int ks_reg_list_manifests(struct ks_reg_store *st, const char *name, char ***ret, size_t *ret_n,
                          struct ks_error **err)
{
    return list_digests(st, name, "_manifests", ret, ret_n, err);
}

int ks_reg_list_blob_links(struct ks_reg_store *st, const char *name, char ***ret,
                           struct ks_error **err)
{
    return list_digests(st, name, "_blobs", ret, NULL, err);
}

static bool dash_digest_ok(const char *s)
{
    char d[KS_REG_DIGEST_MAX];
    if (strlen(s) >= sizeof(d))
        return false;
    strcpy(d, s);
    char *dash = strchr(d, '-');
    if (dash == NULL)
        return false;
    *dash = ':';
    return ks_is_digest(d);
}

int ks_reg_list_referrers(struct ks_reg_store *st, const char *name, const char *subject,
                          char ***ret, size_t *ret_n, struct ks_error **err)
{
    char dir[KS_REG_DIGEST_MAX + 16], sp[KS_REG_DIGEST_MAX];
    if (!ks_reg_digest_path(subject, '-', sp, sizeof(sp)))
        return ks_error_msg(err, "invalid digest");
    snprintf(dir, sizeof(dir), "_referrers/%s", sp);
    struct strv_builder b = {0};
    int r = list_dir(st, name, dir, "", dash_digest_ok, &b, err);
    if (r < 0) {
        ks_strv_free(b.v);
        return r;
    }
    for (size_t i = 0; i < b.n; i++)
        *strchr(b.v[i], '-') = ':';
    return strv_finish(&b, ret, ret_n, err);
}

int ks_reg_referrer_add(struct ks_reg_store *st, const char *name, const char *subject,
                        const char *digest, struct ks_error **err)
{
    char dir[KS_REG_DIGEST_MAX + 16], sp[KS_REG_DIGEST_MAX], dp[KS_REG_DIGEST_MAX];
    if (!ks_reg_digest_path(subject, '-', sp, sizeof(sp)) ||
        !ks_reg_digest_path(digest, '-', dp, sizeof(dp)))
        return ks_error_msg(err, "invalid digest");
    snprintf(dir, sizeof(dir), "_referrers/%s", sp);
    return put_file(st, name, dir, dp, "", err);
}

int ks_reg_referrer_remove(struct ks_reg_store *st, const char *name, const char *subject,
                           const char *digest, struct ks_error **err)
{
    char dir[KS_REG_DIGEST_MAX + 16], sp[KS_REG_DIGEST_MAX], dp[KS_REG_DIGEST_MAX];
    if (!ks_reg_digest_path(subject, '-', sp, sizeof(sp)) ||
        !ks_reg_digest_path(digest, '-', dp, sizeof(dp)))
        return ks_error_msg(err, "invalid digest");
    snprintf(dir, sizeof(dir), "_referrers/%s", sp);
    return remove_file(st, name, dir, dp, err);
}

/* Walks repositories/ depth first: a directory with one of the internal parts is a
 * repository, and nested names are looked for below any directory. */
static int walk_repos(struct ks_reg_store *st, int dfd, char *prefix, size_t prefix_len,
                      unsigned depth, struct strv_builder *b, struct ks_error **err)
{
    if (depth > KS_REGISTRY_MAX_DEPTH)
        return 0;
    _cleanup_closedir_ DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return ks_error_set(err, errno, "list repositories");
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '_' || de->d_name[0] == '.')
            continue;
        size_t n = strlen(de->d_name);
        if (prefix_len + n + 2 > KS_REGISTRY_NAME_MAX + 1)
            continue;
        size_t old = prefix_len;
        if (prefix_len)
            prefix[prefix_len++] = '/';
        memcpy(prefix + prefix_len, de->d_name, n + 1);
        if (ks_registry_name_valid(prefix)) {
            if (ks_reg_repo_exists(st, prefix) == 1 && strv_add(b, prefix) < 0)
                return ks_error_set(err, ENOMEM, "list repositories");
            int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0) {
                int r = walk_repos(st, fd, prefix, prefix_len + n, depth + 1, b, err);
                if (r < 0)
                    return r;
            }
        }
        prefix_len = old;
        prefix[prefix_len] = '\0';
    }
    return 0;
}

int ks_reg_list_repos(struct ks_reg_store *st, char ***ret, size_t *ret_n, struct ks_error **err)
{
    struct strv_builder b = {0};
    char prefix[KS_REGISTRY_NAME_MAX + 2] = "";
    int fd = openat(st->repos_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "list repositories");
    int r = walk_repos(st, fd, prefix, 0, 1, &b, err);
    if (r < 0) {
        ks_strv_free(b.v);
        return r;
    }
    return strv_finish(&b, ret, ret_n, err);
}

/* ---- uploads ---- */

int ks_reg_upload_new(struct ks_reg_store *st, const char *name, char *uuid, struct ks_error **err)
{
    unsigned char rnd[KS_REGISTRY_UUID_LEN / 2];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        return ks_error_set(err, errno ? errno : EIO, "upload id");
    ks_hex(rnd, sizeof(rnd), uuid);
    if (mkdirat(st->uploads_fd, uuid, 0700) < 0)
        return ks_error_set(err, errno, "create upload `%s`", uuid);
    _cleanup_close_ int dfd =
        openat(st->uploads_fd, uuid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "open upload `%s`", uuid);
    _cleanup_close_ int fd = openat(dfd, "data", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return ks_error_set(err, errno, "create upload `%s`", uuid);
    char state[STATE_MAX];
    int n = snprintf(state, sizeof(state), "%s\n0\n", name);
    return ks_write_file_atomic(dfd, "state", state, (size_t)n, 0600, err);
}

/* Reads the state file: the repository and the offset. */
static int read_state(int dfd, const char *uuid, char *name, size_t name_len, uint64_t *offset,
                      struct ks_error **err)
{
    _cleanup_free_ char *s = NULL;
    int r = ks_read_file_at(dfd, "state", &s, NULL, err);
    if (r < 0)
        return r;
    char *nl = strchr(s, '\n');
    char *end = NULL;
    if (nl == NULL || (size_t)(nl - s) >= name_len)
        return ks_error_set_plain(err, EBADMSG, "upload `%s`: corrupt state", uuid);
    memcpy(name, s, (size_t)(nl - s));
    name[nl - s] = '\0';
    errno = 0;
    unsigned long long v = strtoull(nl + 1, &end, 10);
    if (errno || end == nl + 1 || *end != '\n')
        return ks_error_set_plain(err, EBADMSG, "upload `%s`: corrupt state", uuid);
    *offset = v;
    return 0;
}

int ks_reg_upload_open(struct ks_reg_store *st, const char *name, const char *uuid, int *ret_fd,
                       uint64_t *ret_offset, struct ks_error **err)
{
    if (!ks_registry_uuid_valid(uuid))
        return ks_error_set_plain(err, ENOENT, "unknown upload");
    _cleanup_close_ int dfd =
        openat(st->uploads_fd, uuid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "upload `%s`", uuid);
    _cleanup_close_ int fd = openat(dfd, "data", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "upload `%s`", uuid);
    /* Another request on the session: wait a little (a client may send the next request as
     * soon as it has the answer to the last), then give up rather than hold a thread. */
    int r = -1;
    for (int tries = 0; tries < 40 && (r = flock(fd, LOCK_EX | LOCK_NB)) < 0; tries++) {
        if (errno != EWOULDBLOCK)
            return ks_error_set(err, errno, "upload `%s`", uuid);
        usleep(25 * 1000);
    }
    if (r < 0)
        return ks_error_set_plain(err, EBUSY, "upload `%s` is busy", uuid);
    char owner[KS_REGISTRY_NAME_MAX + 1];
    uint64_t offset = 0;
    r = read_state(dfd, uuid, owner, sizeof(owner), &offset, err);
    if (r < 0)
        return r;
    if (strcmp(owner, name) != 0)
        return ks_error_set_plain(err, ENOENT, "upload `%s` belongs to another repository", uuid);
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return ks_error_set(err, errno, "upload `%s`", uuid);
    if ((uint64_t)sb.st_size < offset)
        return ks_error_set_plain(err, EBADMSG, "upload `%s`: data shorter than recorded", uuid);
    if ((uint64_t)sb.st_size > offset && ftruncate(fd, (off_t)offset) < 0)
        return ks_error_set(err, errno, "upload `%s`", uuid);
    *ret_fd = TAKE_FD(fd);
    *ret_offset = offset;
    return 0;
}

int ks_reg_upload_offset(struct ks_reg_store *st, const char *name, const char *uuid,
                         uint64_t *ret_offset, struct ks_error **err)
{
    if (!ks_registry_uuid_valid(uuid))
        return ks_error_set_plain(err, ENOENT, "unknown upload");
    _cleanup_close_ int dfd =
        openat(st->uploads_fd, uuid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "upload `%s`", uuid);
    char owner[KS_REGISTRY_NAME_MAX + 1];
    int r = read_state(dfd, uuid, owner, sizeof(owner), ret_offset, err);
    if (r < 0)
        return r;
    if (strcmp(owner, name) != 0)
        return ks_error_set_plain(err, ENOENT, "upload `%s` belongs to another repository", uuid);
    return 0;
}

int ks_reg_upload_commit(struct ks_reg_store *st, const char *name, const char *uuid, int fd,
                         uint64_t offset, struct ks_error **err)
{
    if (fdatasync(fd) < 0)
        return ks_error_set(err, errno, "upload `%s`", uuid);
    _cleanup_close_ int dfd =
        openat(st->uploads_fd, uuid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "upload `%s`", uuid);
    char state[STATE_MAX];
    int n = snprintf(state, sizeof(state), "%s\n%" PRIu64 "\n", name, offset);
    return ks_write_file_atomic(dfd, "state", state, (size_t)n, 0600, err);
}

int ks_reg_upload_remove(struct ks_reg_store *st, const char *uuid, struct ks_error **err)
{
    if (!ks_registry_uuid_valid(uuid))
        return ks_error_set_plain(err, ENOENT, "unknown upload");
    return ks_rm_rf_at(st->uploads_fd, uuid, err);
}

size_t ks_reg_upload_count(struct ks_reg_store *st, size_t stop_at)
{
    int fd = openat(st->uploads_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return 0;
    }
    size_t n = 0;
    struct dirent *de;
    while (n < stop_at && (de = readdir(d)) != NULL)
        if (ks_registry_uuid_valid(de->d_name))
            n++;
    return n;
}
