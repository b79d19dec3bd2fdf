/* Layer streaming and layer bookkeeping shared by import, adding images and archive loading:
 * one pass over a layer's bytes feeds the blob writer and, through a socket, the thread that
 * applies the tar to its layer directory. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/hash.h"
#include "../engine/db.h"
#include "blobstore.h"
#include "ref.h"
#include "store_internal.h"
#include "tarsplit.h"

#define FD_SOURCE_BUF_SIZE (256 * 1024)

int ks_store_lock(struct ks_store *s, int how, struct ks_error **err)
{
    _cleanup_close_ int fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return ks_error_set(err, errno, "open `%s`", s->lock_path);
    while (flock(fd, how) < 0)
        if (errno != EINTR)
            return ks_error_set(err, errno, "lock `%s`", s->lock_path);
    return TAKE_FD(fd);
}

struct ks_layer_apply_opts ks_store_apply_opts(void)
{
    /* Image layers may carry device nodes (a debootstrapped /dev has them), as Docker applies
     * them; the store belongs to root, which can make them. */
    return (struct ks_layer_apply_opts){.allow_devices = geteuid() == 0};
}

struct apply_job {
    int fd;
    int dest;
    struct ks_layer_result res;
    struct ks_error *err;
    int r;
};

static void *apply_thread(void *data)
{
    struct apply_job *j = data;
    const struct ks_layer_apply_opts o = ks_store_apply_opts();
    j->r = ks_layer_apply(j->fd, j->dest, &o, &j->res, &j->err);
    /* Whatever is left unread must not block the writer. */
    shutdown(j->fd, SHUT_RD);
    return NULL;
}

static int send_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

bool ks_store_compressed(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    return (len >= 2 && p[0] == 0x1f && p[1] == 0x8b) ||
           (len >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) ||
           (len >= 6 && memcmp(p,
                               "\xfd"
                               "7zXZ\0",
                               6) == 0) ||
           (len >= 3 && memcmp(p, "BZh", 3) == 0);
}

/* Copies the source into a socket that the apply thread reads and into the blob writer: a
 * compressed stream as it is, an uncompressed tar as its index (tarsplit.h), since the layer
 * directory will hold the files' bytes. */
static int tee_loop(ks_store_block_fn src, void *userdata, int sock, struct ks_blob_writer *w,
                    struct ks_tarsplit **split, struct ks_error **err)
{
    bool first = true;
    for (;;) {
        const void *buf;
        size_t n = 0;
        int r = src(userdata, &buf, &n, err);
        if (r < 0)
            return r;
        if (n == 0)
            return 0;
        if (first && w && !ks_store_compressed(buf, n)) {
            r = ks_tarsplit_new(w, split, err);
            if (r < 0)
                return r;
        }
        first = false;
        if (*split)
            r = ks_tarsplit_feed(*split, buf, n, err);
        else if (w)
            r = ks_blob_writer_write(w, buf, n, err);
        if (r < 0)
            return r;
        if (send_all(sock, buf, n) < 0)
            return 1; /* the apply step stopped early: its error tells why */
    }
}

int ks_store_stream_layer(ks_store_block_fn src, void *userdata, int dest, struct ks_blob_writer *w,
                          struct ks_layer_result *res, bool *ret_unsafe, struct ks_error **err)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return ks_error_set(err, errno, "socketpair");
    _cleanup_close_ int wr = sv[0], rd = sv[1];
    /* Larger socket buffers mean fewer wake-ups of either side per megabyte. */
    int sz = 1 << 20;
    setsockopt(wr, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(rd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    struct apply_job job = {.fd = rd, .dest = dest};
    pthread_t t;
    int r = pthread_create(&t, NULL, apply_thread, &job);
    if (r != 0)
        return ks_error_set(err, r, "start the layer apply thread");
    struct ks_tarsplit *split = NULL;
    r = tee_loop(src, userdata, wr, w, &split, err);
    shutdown(wr, SHUT_WR);
    pthread_join(t, NULL);
    bool unsafe = false;
    if (r == 0 && split)
        r = ks_tarsplit_finish(split, &unsafe, err);
    ks_tarsplit_free(split);
    if (job.r < 0) {
        ks_error_free(err ? *err : NULL);
        if (err) {
            *err = job.err;
            job.err = NULL;
        }
        ks_error_free(job.err);
        return job.r;
    }
    ks_error_free(job.err);
    if (r < 0)
        return r;
    if (r > 0)
        return ks_error_msg(err, "the layer apply step stopped early");
    *res = job.res;
    if (ret_unsafe)
        *ret_unsafe = unsafe;
    return 0;
}

/* Reads fd from start to its end into the writer, through the tar index when split is set. */
static int copy_from_file(int fd, off_t start, struct ks_blob_writer *w, struct ks_tarsplit *split,
                          struct ks_error **err)
{
    _cleanup_free_ char *buf = malloc(FD_SOURCE_BUF_SIZE);
    if (buf == NULL)
        return ks_error_set(err, ENOMEM, "keep the layer");
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ks_error_set(err, errno, "read the layer");
    for (off_t off = start;;) {
        /* The index needs the tar's headers, not its files' data (the layer directory holds
         * it): pass over that data instead of copying it out of the page cache. */
        uint64_t skip = split ? ks_tarsplit_skippable(split) : 0;
        if (skip > 0 && off < st.st_size) {
            uint64_t left = (uint64_t)(st.st_size - off);
            uint64_t n = skip < left ? skip : left;
            int r = ks_tarsplit_skip(split, n, err);
            if (r < 0)
                return r;
            off += (off_t)n;
            continue;
        }
        size_t want = split ? ks_tarsplit_read_size(split, FD_SOURCE_BUF_SIZE) : FD_SOURCE_BUF_SIZE;
        ssize_t n = pread(fd, buf, want, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ks_error_set(err, errno, "read the layer");
        if (n == 0)
            return 0;
        off += n;
        int r = split ? ks_tarsplit_feed(split, buf, (size_t)n, err)
                      : ks_blob_writer_write(w, buf, (size_t)n, err);
        if (r < 0)
            return r;
    }
}

int ks_store_keep_from_file(struct ks_store *s, int fd, off_t start, bool compressed,
                            char **ret_blob, struct ks_error **err)
{
    *ret_blob = NULL;
    for (int pass = compressed ? 1 : 0; pass < 2; pass++) {
        _cleanup_blob_writer_ struct ks_blob_writer *w = NULL;
        int r = ks_blob_writer_new(s->blobs, NULL, -1, &w, err);
        if (r < 0)
            return r;
        struct ks_tarsplit *split = NULL;
        if (pass == 0 && (r = ks_tarsplit_new(w, &split, err)) < 0)
            return r;
        r = copy_from_file(fd, start, w, split, err);
        bool unsafe = false;
        if (r >= 0 && split)
            r = ks_tarsplit_finish(split, &unsafe, err);
        ks_tarsplit_free(split);
        if (r < 0)
            return r;
        /* A tar its directory cannot give back is kept whole (the second pass). */
        if (!unsafe)
            return ks_blob_writer_commit(w, ret_blob, NULL, err);
    }
    return 0;
}

struct replay_job {
    int index_fd;
    int dirfd;
    int out;
};

static int replay_out(void *userdata, const void *buf, size_t len, struct ks_error **err)
{
    struct replay_job *j = userdata;
    int r = send_all(j->out, buf, len);
    return r < 0 ? ks_error_set(err, -r, "replay the layer") : 0;
}

static void *replay_thread(void *data)
{
    struct replay_job *j = data;
    _cleanup_error_ struct ks_error *e = NULL;
    /* A failure shows as a short stream, which the reader's digest check refuses. */
    ks_tarsplit_replay(j->index_fd, j->dirfd, replay_out, j, &e);
    close(j->out);
    close(j->index_fd);
    close(j->dirfd);
    free(j);
    return NULL;
}

int ks_store_layer_open(struct ks_store *s, const char *diff_id, const char *blob,
                        int content_dirfd, int *ret_fd, struct ks_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    int r = ks_blobstore_open_blob(s->blobs, blob, &fd, NULL, err);
    if (r < 0)
        return r;
    if (!ks_tarsplit_is_index(fd)) {
        *ret_fd = TAKE_FD(fd);
        return 0;
    }
    _cleanup_close_ int dirfd = -EBADF;
    if (content_dirfd >= 0) {
        dirfd = fcntl(content_dirfd, F_DUPFD_CLOEXEC, 3);
    } else {
        _cleanup_db_layer_ struct ks_db_layer *l = NULL;
        r = ks_db_layer_get(s->db, KS_DB_LAYER_BY_DIFF_ID, diff_id, &l, err);
        if (r < 0)
            return ks_error_wrap(err, "layer %s", diff_id);
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s/diff", s->overlay, l->cache_id) < 0)
            return ks_error_set(err, ENOMEM, "open layer");
        dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (dirfd < 0)
        return ks_error_set(err, errno, "open the directory of layer %s", diff_id);
    /* A socket rather than a pipe: a reader that stops early must not raise SIGPIPE. */
    int p[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
        return ks_error_set(err, errno, "socketpair");
    shutdown(p[0], SHUT_WR);
    struct replay_job *j = malloc(sizeof(*j));
    if (j == NULL) {
        close(p[0]), close(p[1]);
        return ks_error_set(err, ENOMEM, "open layer");
    }
    *j = (struct replay_job){.index_fd = fd, .dirfd = dirfd, .out = p[1]};
    pthread_t t;
    r = pthread_create(&t, NULL, replay_thread, j);
    if (r != 0) {
        free(j);
        close(p[0]), close(p[1]);
        return ks_error_set(err, r, "start the layer replay thread");
    }
    pthread_detach(t);
    fd = dirfd = -EBADF;
    *ret_fd = p[0];
    return 0;
}

int ks_store_fd_source(void *userdata, const void **ret_buf, size_t *ret_len, struct ks_error **err)
{
    struct ks_store_fd_source *src = userdata;
    if (src->buf == NULL && (src->buf = malloc(FD_SOURCE_BUF_SIZE)) == NULL)
        return ks_error_set(err, ENOMEM, "read the layer");
    for (;;) {
        ssize_t n = read(src->fd, src->buf, FD_SOURCE_BUF_SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ks_error_set(err, errno, "read the layer");
        *ret_buf = src->buf;
        *ret_len = (size_t)n;
        return 0;
    }
}

void ks_store_fd_source_release(struct ks_store_fd_source *src)
{
    free(src->buf);
    src->buf = NULL;
}

int ks_store_layerblob_record(struct ks_store *s, const char *diff_id, const char *blob,
                              struct ks_error **err)
{
    const char *hex = strchr(diff_id, ':') + 1;
    return ks_write_file_atomic(s->layerblobs_fd, hex, blob, strlen(blob), 0600, err);
}

int ks_store_layerblob_get(struct ks_store *s, const char *diff_id, char **ret,
                           struct ks_error **err)
{
    if (!ks_is_digest(diff_id))
        return ks_error_set_plain(err, EINVAL, "invalid diff ID `%s`", diff_id);
    _cleanup_free_ char *blob = NULL;
    size_t len = 0;
    int r = ks_read_file_at(s->layerblobs_fd, strchr(diff_id, ':') + 1, &blob, &len, err);
    if (r < 0)
        return r;
    while (len > 0 && (blob[len - 1] == '\n' || blob[len - 1] == ' '))
        blob[--len] = '\0';
    if (!ks_is_digest(blob))
        return ks_error_set_plain(err, EUCLEAN, "layer `%s`: malformed blob record", diff_id);
    *ret = TAKE_PTR(blob);
    return 0;
}

int ks_store_tag_ref(const char *name, char **ret, struct ks_error **err)
{
    _cleanup_ref_ struct ks_ref *ref = NULL;
    int r = ks_ref_parse(name, &ref, err);
    if (r < 0)
        return r;
    if (ref->digest)
        return ks_error_msg(err, "refusing to create a tag with a digest reference");
    *ret = ks_ref_string(ref);
    return *ret ? 0 : ks_error_set(err, ENOMEM, "tag");
}

struct ks_blobstore *ks_store_blobs(struct ks_store *s)
{
    return s->blobs;
}

int ks_store_layer_push_open(struct ks_store *s, const char *diff_id, char **ret_digest,
                             int64_t *ret_size, int *ret_compression, int *ret_fd,
                             struct ks_error **err)
{
    _cleanup_free_ char *blob = NULL;
    int r = ks_store_layerblob_get(s, diff_id, &blob, err);
    if (r < 0)
        return ks_error_wrap(err, "layer %s has no stored blob", diff_id);
    _cleanup_close_ int fd = -EBADF;
    int64_t size = -1;
    int compression = 0;
    r = ks_blobstore_open_blob(s->blobs, blob, &fd, &size, err);
    if (r < 0)
        return r;
    if (ks_tarsplit_is_index(fd)) {
        /* The tar itself is what the registry gets; its size is known once it is read. */
        close(TAKE_FD(fd));
        r = ks_store_layer_open(s, diff_id, blob, -EBADF, &fd, err);
        if (r < 0)
            return r;
        free(blob);
        if ((blob = strdup(diff_id)) == NULL)
            return ks_error_set(err, ENOMEM, "open layer");
        size = -1;
    } else if (strcmp(blob, diff_id) != 0) {
        unsigned char magic[4] = {0};
        ssize_t n = pread(fd, magic, sizeof(magic), 0);
        compression = n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b        ? 1
                      : n == 4 && memcmp(magic, "\x28\xb5\x2f\xfd", 4) == 0 ? 2
                                                                            : 3;
    }
    *ret_digest = TAKE_PTR(blob);
    *ret_size = size;
    *ret_compression = compression;
    *ret_fd = TAKE_FD(fd);
    return 0;
}
