#include "blobstore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../base/cleanup.h"
#include "../base/fs.h"
#include "../base/hash.h"
#include "ref.h"

enum blob_alg {
    ALG_SHA256,
    ALG_SHA512,
    ALG_MAX,
};

static const struct {
    const char *name;
    size_t hex_len;
    const EVP_MD *(*md)(void);
} algs[ALG_MAX] = {
    [ALG_SHA256] = {"sha256", 64, EVP_sha256},
    [ALG_SHA512] = {"sha512", 128, EVP_sha512},
};

/* The longest digest string: "sha512:" + 128 hex digits + NUL. */
#define DIGEST_MAX 136

struct ks_blobstore {
    char *root;
    int blobs_fd;
    int tmp_fd;
    int alg_fd[ALG_MAX]; /* O_RDONLY, not O_PATH: fsync after a rename needs a real fd */
};

enum writer_state {
    WRITER_OPEN,
    WRITER_FAILED,
    WRITER_DONE,
};

struct ks_blob_writer {
    struct ks_blobstore *store;
    enum blob_alg alg;
    char *expected_digest;
    int64_t expected_size;
    int64_t size;
    EVP_MD_CTX *ctx;
    int fd;
    char tmp_name[64];
    enum writer_state state;
};

/* Validates digest and splits it; *ret_hex points into digest. Only what ks_is_digest accepts
 * gets here, so the hex part is a plain file name: no '/', no "..". */
static int parse_digest(const char *digest, enum blob_alg *ret_alg, const char **ret_hex,
                        struct ks_error **err)
{
    if (!ks_is_digest(digest))
        return ks_error_msg(err, "invalid digest `%s`", digest ? digest : "");
    const char *colon = strchr(digest, ':');
    for (int a = 0; a < ALG_MAX; a++) {
        if (strncmp(digest, algs[a].name, (size_t)(colon - digest)) == 0 &&
            algs[a].name[colon - digest] == '\0') {
            *ret_alg = a;
            *ret_hex = colon + 1;
            return 0;
        }
    }
    return ks_error_msg(err, "unsupported digest algorithm in `%s`", digest);
}

void ks_blobstore_free(struct ks_blobstore *store)
{
    if (store == NULL)
        return;
    ks_closep(&store->blobs_fd);
    ks_closep(&store->tmp_fd);
    for (int a = 0; a < ALG_MAX; a++)
        ks_closep(&store->alg_fd[a]);
    free(store->root);
    free(store);
}

static int open_subdir(int parent_fd, const char *name, const char *root, struct ks_error **err)
{
    if (mkdirat(parent_fd, name, 0700) < 0 && errno != EEXIST)
        return ks_error_set(err, errno, "create `%s/blobs/%s`", root, name);
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return ks_error_set(err, errno, "open `%s/blobs/%s`", root, name);
    return fd;
}

int ks_blobstore_open(const char *root, struct ks_blobstore **ret, struct ks_error **err)
{
    _cleanup_(ks_blobstore_free_p) struct ks_blobstore *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ks_error_set(err, ENOMEM, "open blob store");
    s->blobs_fd = s->tmp_fd = -EBADF;
    for (int a = 0; a < ALG_MAX; a++)
        s->alg_fd[a] = -EBADF;
    s->root = strdup(root);
    _cleanup_free_ char *blobs = NULL;
    if (s->root == NULL || asprintf(&blobs, "%s/blobs", root) < 0) {
        blobs = NULL;
        return ks_error_set(err, ENOMEM, "open blob store");
    }
    int r = ks_mkdir_p(blobs, 0700, err);
    if (r < 0)
        return ks_error_wrap(err, "open blob store `%s`", root);
    s->blobs_fd = open(blobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->blobs_fd < 0)
        return ks_error_set(err, errno, "open `%s`", blobs);
    s->tmp_fd = open_subdir(s->blobs_fd, "tmp", root, err);
    if (s->tmp_fd < 0)
        return s->tmp_fd;
    for (int a = 0; a < ALG_MAX; a++) {
        s->alg_fd[a] = open_subdir(s->blobs_fd, algs[a].name, root, err);
        if (s->alg_fd[a] < 0)
            return s->alg_fd[a];
    }
    *ret = TAKE_PTR(s);
    return 0;
}

/* A name no other writer, in this process or another, picks: the pid keeps processes apart,
 * the random part threads and reused pids. */
static void make_tmp_name(struct ks_blob_writer *w, char *buf, size_t len)
{
    uint64_t rnd;
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rnd = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)w;
    }
    snprintf(buf, len, "%d-%016llx", (int)getpid(), (unsigned long long)rnd);
}

int ks_blob_writer_new(struct ks_blobstore *store, const char *expected_digest,
                       int64_t expected_size, struct ks_blob_writer **ret, struct ks_error **err)
{
    _cleanup_(ks_blob_writer_free_p) struct ks_blob_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return ks_error_set(err, ENOMEM, "new blob writer");
    w->store = store;
    w->fd = -EBADF;
    w->alg = ALG_SHA256;
    w->expected_size = expected_size < 0 ? -1 : expected_size;
    w->state = WRITER_FAILED; /* until everything is set up */
    if (expected_digest) {
        const char *hex;
        int r = parse_digest(expected_digest, &w->alg, &hex, err);
        if (r < 0)
            return r;
        w->expected_digest = strdup(expected_digest);
        if (w->expected_digest == NULL)
            return ks_error_set(err, ENOMEM, "new blob writer");
    }
    w->ctx = EVP_MD_CTX_new();
    if (w->ctx == NULL || !EVP_DigestInit_ex(w->ctx, algs[w->alg].md(), NULL))
        return ks_error_set(err, ENOMEM, "new blob writer: initialise %s", algs[w->alg].name);

    /* tmp_name is set only once the file is ours, so that abort never removes another's. */
    char name[sizeof(w->tmp_name)];
    for (int attempt = 0; w->fd < 0; attempt++) {
        make_tmp_name(w, name, sizeof(name));
        w->fd =
            openat(store->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);
        if (w->fd < 0 && (errno != EEXIST || attempt >= 8))
            return ks_error_set(err, errno, "create `%s/blobs/tmp/%s`", store->root, name);
    }
    memcpy(w->tmp_name, name, sizeof(name));
    w->state = WRITER_OPEN;
    *ret = TAKE_PTR(w);
    return 0;
}

int ks_blob_writer_write(struct ks_blob_writer *w, const void *buf, size_t len,
                         struct ks_error **err)
{
    if (w->state != WRITER_OPEN)
        return ks_error_msg(err, "write blob: the writer was aborted, failed or committed");
    if (w->expected_size >= 0 && (uint64_t)len > (uint64_t)(w->expected_size - w->size)) {
        w->state = WRITER_FAILED;
        return ks_error_set_plain(err, EFBIG, "write blob%s%s: more than the expected %lld bytes",
                                  w->expected_digest ? " " : "",
                                  w->expected_digest ? w->expected_digest : "",
                                  (long long)w->expected_size);
    }
    if (!EVP_DigestUpdate(w->ctx, buf, len)) {
        w->state = WRITER_FAILED;
        return ks_error_set_plain(err, EIO, "write blob: hashing failed");
    }
    int r = ks_write_all(w->fd, buf, len);
    if (r < 0) {
        w->state = WRITER_FAILED;
        return ks_error_set(err, -r, "write `%s/blobs/tmp/%s`", w->store->root, w->tmp_name);
    }
    w->size += (int64_t)len;
    return 0;
}

void ks_blob_writer_abort(struct ks_blob_writer *w)
{
    if (w == NULL)
        return;
    ks_closep(&w->fd);
    w->fd = -EBADF;
    if (w->state != WRITER_DONE && w->tmp_name[0])
        unlinkat(w->store->tmp_fd, w->tmp_name, 0);
    w->tmp_name[0] = '\0';
    if (w->state == WRITER_OPEN)
        w->state = WRITER_FAILED;
}

void ks_blob_writer_free(struct ks_blob_writer *w)
{
    if (w == NULL)
        return;
    ks_blob_writer_abort(w);
    EVP_MD_CTX_free(w->ctx);
    free(w->expected_digest);
    free(w);
}

/* Moves the finished temporary file to its name. Another writer may have stored the same
 * content first; the copies are identical, so theirs stays and ours goes. */
static int install(struct ks_blob_writer *w, const char *hex, struct ks_error **err)
{
    struct ks_blobstore *s = w->store;
    int dir_fd = s->alg_fd[w->alg];
    if (renameat2(s->tmp_fd, w->tmp_name, dir_fd, hex, RENAME_NOREPLACE) < 0) {
        if (errno == EEXIST) {
            unlinkat(s->tmp_fd, w->tmp_name, 0);
            return 0;
        }
        /* File systems without RENAME_NOREPLACE: replacing identical content is harmless. */
        if ((errno != EINVAL && errno != ENOSYS) ||
            renameat(s->tmp_fd, w->tmp_name, dir_fd, hex) < 0)
            return ks_error_set(err, errno, "rename blob into `%s/blobs/%s/%s`", s->root,
                                algs[w->alg].name, hex);
    }
    /* The caller records the blob in the database next; the rename must be durable first. */
    if (fsync(dir_fd) < 0)
        return ks_error_set(err, errno, "fsync `%s/blobs/%s`", s->root, algs[w->alg].name);
    return 0;
}

int ks_blob_writer_commit(struct ks_blob_writer *w, char **ret_digest, int64_t *ret_size,
                          struct ks_error **err)
{
    if (w->state != WRITER_OPEN)
        return ks_error_msg(err, "commit blob: the writer was aborted, failed or committed");
    if (w->expected_size >= 0 && w->size != w->expected_size) {
        ks_blob_writer_abort(w);
        return ks_error_set_plain(
            err, EBADMSG, "commit blob%s%s: size mismatch: expected %lld bytes, got %lld",
            w->expected_digest ? " " : "", w->expected_digest ? w->expected_digest : "",
            (long long)w->expected_size, (long long)w->size);
    }

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_DigestFinal_ex(w->ctx, md, &md_len)) {
        ks_blob_writer_abort(w);
        return ks_error_set_plain(err, EIO, "commit blob: hashing failed");
    }
    char digest[DIGEST_MAX];
    size_t n = strlen(algs[w->alg].name);
    memcpy(digest, algs[w->alg].name, n);
    digest[n] = ':';
    ks_hex(md, md_len, digest + n + 1);
    if (w->expected_digest && strcmp(digest, w->expected_digest) != 0) {
        ks_blob_writer_abort(w);
        return ks_error_set_plain(err, EBADMSG, "commit blob: digest mismatch: expected %s, got %s",
                                  w->expected_digest, digest);
    }

    if (fsync(w->fd) < 0) {
        int e = errno;
        ks_blob_writer_abort(w);
        return ks_error_set(err, e, "fsync `%s/blobs/tmp/%s`", w->store->root, w->tmp_name);
    }
    ks_closep(&w->fd);
    w->fd = -EBADF;
    int r = install(w, digest + n + 1, err);
    if (r < 0) {
        ks_blob_writer_abort(w);
        return r;
    }
    w->state = WRITER_DONE;
    w->tmp_name[0] = '\0';

    if (ret_digest) {
        *ret_digest = strdup(digest);
        if (*ret_digest == NULL)
            return ks_error_set(err, ENOMEM, "commit blob");
    }
    if (ret_size)
        *ret_size = w->size;
    return 0;
}

int ks_blobstore_put(struct ks_blobstore *store, const void *buf, size_t len, char **ret_digest,
                     struct ks_error **err)
{
    _cleanup_(ks_blob_writer_free_p) struct ks_blob_writer *w = NULL;
    int r = ks_blob_writer_new(store, NULL, (int64_t)len, &w, err);
    if (r < 0)
        return r;
    r = ks_blob_writer_write(w, buf, len, err);
    if (r < 0)
        return r;
    return ks_blob_writer_commit(w, ret_digest, NULL, err);
}

int ks_blobstore_open_blob(struct ks_blobstore *store, const char *digest, int *ret_fd,
                           int64_t *ret_size, struct ks_error **err)
{
    enum blob_alg alg;
    const char *hex;
    int r = parse_digest(digest, &alg, &hex, err);
    if (r < 0)
        return r;
    _cleanup_close_ int fd =
        openat(store->alg_fd[alg], hex, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return ks_error_set_plain(err, ENOENT, "blob %s not found", digest);
        return ks_error_set(err, errno, "open blob %s", digest);
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ks_error_set(err, errno, "stat blob %s", digest);
    if (!S_ISREG(st.st_mode))
        return ks_error_set_plain(err, EINVAL, "blob %s is not a regular file", digest);
    if (ret_size)
        *ret_size = (int64_t)st.st_size;
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int ks_blobstore_has(struct ks_blobstore *store, const char *digest, struct ks_error **err)
{
    enum blob_alg alg;
    const char *hex;
    int r = parse_digest(digest, &alg, &hex, err);
    if (r < 0)
        return r;
    struct stat st;
    if (fstatat(store->alg_fd[alg], hex, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return ks_error_set(err, errno, "stat blob %s", digest);
    }
    return S_ISREG(st.st_mode) ? 1 : 0;
}

int ks_blobstore_delete(struct ks_blobstore *store, const char *digest, struct ks_error **err)
{
    enum blob_alg alg;
    const char *hex;
    int r = parse_digest(digest, &alg, &hex, err);
    if (r < 0)
        return r;
    if (unlinkat(store->alg_fd[alg], hex, 0) < 0) {
        if (errno == ENOENT)
            return ks_error_set_plain(err, ENOENT, "blob %s not found", digest);
        return ks_error_set(err, errno, "delete blob %s", digest);
    }
    return 0;
}

static int list_alg(struct ks_blobstore *store, enum blob_alg alg, ks_blob_list_fn fn,
                    void *userdata, struct ks_error **err)
{
    /* fdopendir takes the fd over; the store keeps its own. */
    int fd = openat(store->alg_fd[alg], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open `%s/blobs/%s`", store->root, algs[alg].name);
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return ks_error_set(err, e, "open `%s/blobs/%s`", store->root, algs[alg].name);
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                return ks_error_set(err, errno, "read `%s/blobs/%s`", store->root, algs[alg].name);
            return 0;
        }
        char digest[DIGEST_MAX];
        if (snprintf(digest, sizeof(digest), "%s:%s", algs[alg].name, de->d_name) >=
                (int)sizeof(digest) ||
            !ks_is_digest(digest))
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT) /* deleted meanwhile */
                continue;
            return ks_error_set(err, errno, "stat blob %s", digest);
        }
        if (!S_ISREG(st.st_mode))
            continue;
        int r = fn(digest, (int64_t)st.st_size, userdata, err);
        if (r < 0)
            return r;
    }
}

int ks_blobstore_list(struct ks_blobstore *store, ks_blob_list_fn fn, void *userdata,
                      struct ks_error **err)
{
    for (int a = 0; a < ALG_MAX; a++) {
        int r = list_alg(store, a, fn, userdata, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_blobstore_verify(struct ks_blobstore *store, const char *digest, struct ks_error **err)
{
    enum blob_alg alg;
    const char *hex;
    int r = parse_digest(digest, &alg, &hex, err);
    if (r < 0)
        return r;
    _cleanup_close_ int fd = -EBADF;
    r = ks_blobstore_open_blob(store, digest, &fd, NULL, err);
    if (r < 0)
        return r;

    _cleanup_md_ EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    const size_t bufsize = 128 * 1024;
    _cleanup_free_ unsigned char *buf = malloc(bufsize);
    if (ctx == NULL || buf == NULL || !EVP_DigestInit_ex(ctx, algs[alg].md(), NULL))
        return ks_error_set(err, ENOMEM, "verify blob %s", digest);
    for (;;) {
        ssize_t n = read(fd, buf, bufsize);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ks_error_set(err, errno, "read blob %s", digest);
        if (n == 0)
            break;
        if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
            return ks_error_set_plain(err, EIO, "verify blob %s: hashing failed", digest);
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_DigestFinal_ex(ctx, md, &md_len))
        return ks_error_set_plain(err, EIO, "verify blob %s: hashing failed", digest);
    char actual[DIGEST_MAX];
    ks_hex(md, md_len, actual);
    if (strcmp(actual, hex) != 0)
        return ks_error_set_plain(err, EBADMSG, "blob %s is corrupt: its content hashes to %s:%s",
                                  digest, algs[alg].name, actual);
    return 0;
}
