/* Writing an overlay upper directory as a layer tar. The tar writer's output is hashed on its
 * way out (the diff_id) and then either written to the fd or handed to a second libarchive
 * writer (format "raw" with the gzip filter), so that the digest of the uncompressed tar comes
 * out of the same single pass. */
#include "layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <search.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../base/archive_shim.h"
#include "../base/hash.h"
#include "../base/cleanup.h"
#include "../base/fs.h"

#define COPY_BUF_SIZE (128 * 1024)

struct seen_inode {
    dev_t dev;
    ino_t ino;
    char *path;
};

struct diff {
    const struct ks_layer_diff_opts *o;
    int out_fd;
    EVP_MD_CTX *hash;
    struct archive *tar;
    struct archive *gz; /* NULL without compression */
    void *inodes;       /* tsearch tree of struct seen_inode */
    int write_errno;
    char *buf;
};

static void seen_free(void *p)
{
    struct seen_inode *s = p;
    free(s->path);
    free(s);
}

static int seen_cmp(const void *a, const void *b)
{
    const struct seen_inode *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return 0;
}

static void diff_release(struct diff *d)
{
    if (d->tar)
        archive_write_free(d->tar);
    if (d->gz)
        archive_write_free(d->gz);
    EVP_MD_CTX_free(d->hash);
    tdestroy(d->inodes, seen_free);
    free(d->buf);
}

static la_ssize_t out_write(struct archive *a, void *data, const void *buf, size_t len)
{
    struct diff *d = data;
    int r = ks_write_all(d->out_fd, buf, len);
    if (r < 0) {
        d->write_errno = -r;
        archive_set_error(a, -r, "writing the layer");
        return -1;
    }
    return (la_ssize_t)len;
}

static la_ssize_t tar_write(struct archive *a, void *data, const void *buf, size_t len)
{
    struct diff *d = data;
    EVP_DigestUpdate(d->hash, buf, len);
    if (d->gz == NULL)
        return out_write(a, data, buf, len);
    la_ssize_t n = archive_write_data(d->gz, buf, len);
    if (n != (la_ssize_t)len) {
        archive_set_error(a, archive_errno(d->gz), "compressing: %s", archive_error_string(d->gz));
        return -1;
    }
    return n;
}

static int archive_fail(struct archive *a, const char *what, struct ks_error **err)
{
    int e = archive_errno(a);
    const char *s = archive_error_string(a);
    return ks_error_set_plain(err, e > 0 ? e : EIO, "layer diff: %s: %s", what,
                              s ? s : "unknown error");
}

static bool skipped_xattr(const char *name)
{
    return strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0;
}

/* Copies the xattrs of fd (an O_PATH fd is read through /proc) into e. */
static int add_xattrs(struct archive_entry *e, int fd, bool opath, const char *path,
                      struct ks_error **err)
{
    char proc[64];
    ks_fd_path(fd, proc, sizeof(proc));
    ssize_t n = opath ? listxattr(proc, NULL, 0) : flistxattr(fd, NULL, 0);
    if (n < 0 && (errno == EOPNOTSUPP || errno == ENOTSUP))
        return 0;
    if (n < 0)
        return ks_error_set(err, errno, "layer diff: listing xattrs of `%s`", path);
    if (n == 0)
        return 0;
    _cleanup_free_ char *names = malloc((size_t)n);
    if (names == NULL)
        return -ENOMEM;
    n = opath ? listxattr(proc, names, (size_t)n) : flistxattr(fd, names, (size_t)n);
    if (n < 0)
        return ks_error_set(err, errno, "layer diff: listing xattrs of `%s`", path);
    for (char *name = names; name < names + n; name += strlen(name) + 1) {
        if (skipped_xattr(name))
            continue;
        ssize_t size = opath ? getxattr(proc, name, NULL, 0) : fgetxattr(fd, name, NULL, 0);
        if (size < 0 && errno == ENODATA)
            continue;
        if (size < 0)
            return ks_error_set(err, errno, "layer diff: reading xattr %s of `%s`", name, path);
        _cleanup_free_ char *value = malloc((size_t)size + 1);
        if (value == NULL)
            return -ENOMEM;
        size = opath ? getxattr(proc, name, value, (size_t)size)
                     : fgetxattr(fd, name, value, (size_t)size);
        if (size < 0)
            return ks_error_set(err, errno, "layer diff: reading xattr %s of `%s`", name, path);
        archive_entry_xattr_add_entry(e, name, value, (size_t)size);
    }
    return 0;
}

static void set_common(struct diff *d, struct archive_entry *e, const char *path,
                       const struct stat *st)
{
    archive_entry_set_pathname(e, path);
    archive_entry_set_uid(e, st->st_uid);
    archive_entry_set_gid(e, st->st_gid);
    archive_entry_set_perm(e, st->st_mode & 07777);
    if (d->o->use_fixed_mtime)
        archive_entry_set_mtime(e, d->o->fixed_mtime, 0);
    else
        archive_entry_set_mtime(e, st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
}

static void archive_entry_freep(struct archive_entry **e)
{
    if (*e)
        archive_entry_free(*e);
}

/* An empty regular file: a whiteout or an opaque marker. */
static int write_marker(struct diff *d, const char *path, const struct stat *st, mode_t perm,
                        struct ks_error **err)
{
    _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        return -ENOMEM;
    set_common(d, e, path, st);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, perm);
    archive_entry_set_size(e, 0);
    if (archive_write_header(d->tar, e) < ARCHIVE_WARN)
        return archive_fail(d->tar, path, err);
    return 0;
}

static int copy_data(struct diff *d, int fd, const char *path, off_t size, struct ks_error **err)
{
    off_t left = size;
    while (left > 0) {
        size_t want = left < COPY_BUF_SIZE ? (size_t)left : COPY_BUF_SIZE;
        ssize_t n = read(fd, d->buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ks_error_set(err, errno, "layer diff: reading `%s`", path);
        if (n == 0)
            break; /* shrunk meanwhile: libarchive pads the entry with zeros */
        if (archive_write_data(d->tar, d->buf, (size_t)n) != n)
            return archive_fail(d->tar, path, err);
        left -= n;
    }
    return 0;
}

/* A regular file seen before under another name becomes a hardlink to that name. Returns the
 * first name, or NULL when this is the first (and then remembers it). */
static int first_link(struct diff *d, const struct stat *st, const char *path,
                      const char **ret_first)
{
    *ret_first = NULL;
    if (st->st_nlink < 2)
        return 0;
    struct seen_inode key = {.dev = st->st_dev, .ino = st->st_ino};
    struct seen_inode **found = tfind(&key, &d->inodes, seen_cmp);
    if (found) {
        *ret_first = (*found)->path;
        return 0;
    }
    struct seen_inode *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    *s = key;
    s->path = strdup(path);
    if (s->path == NULL || tsearch(s, &d->inodes, seen_cmp) == NULL) {
        seen_free(s);
        return -ENOMEM;
    }
    return 0;
}

static int walk_dir(struct diff *d, int dirfd, const char *prefix, struct ks_error **err);

static int write_node(struct diff *d, int dirfd, const char *name, const char *path,
                      struct ks_error **err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return ks_error_set(err, errno, "layer diff: stat `%s`", path);

    /* An overlay whiteout. */
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
        _cleanup_free_ char *wh = NULL;
        const char *slash = strrchr(path, '/');
        int plen = slash ? (int)(slash - path + 1) : 0;
        if (asprintf(&wh, "%.*s.wh.%s", plen, path, name) < 0)
            return -ENOMEM;
        return write_marker(d, wh, &st, 0600, err);
    }
    if (S_ISSOCK(st.st_mode))
        return 0; /* tar cannot hold sockets; Docker leaves them out too */

    _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
    if (e == NULL)
        return -ENOMEM;
    set_common(d, e, path, &st);
    archive_entry_set_filetype(e, st.st_mode & S_IFMT);

    _cleanup_close_ int fd = -EBADF;
    bool opath = false;
    if (S_ISREG(st.st_mode)) {
        const char *first;
        int r = first_link(d, &st, path, &first);
        if (r < 0)
            return r;
        if (first) {
            archive_entry_set_hardlink(e, first);
            archive_entry_set_size(e, 0);
            if (archive_write_header(d->tar, e) < ARCHIVE_WARN)
                return archive_fail(d->tar, path, err);
            return 0;
        }
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
        archive_entry_set_size(e, st.st_size);
    } else if (S_ISDIR(st.st_mode)) {
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    } else if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX + 1];
        ssize_t n = readlinkat(dirfd, name, target, sizeof(target) - 1);
        if (n < 0)
            return ks_error_set(err, errno, "layer diff: readlink `%s`", path);
        target[n] = '\0';
        archive_entry_set_symlink(e, target);
    } else {
        /* Devices and fifos: O_PATH, as opening them could block or have effects. */
        archive_entry_set_rdev(e, st.st_rdev);
        fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        opath = true;
    }
    if (!S_ISLNK(st.st_mode)) {
        if (fd < 0)
            return ks_error_set(err, errno, "layer diff: opening `%s`", path);
        int r = add_xattrs(e, fd, opath, path, err);
        if (r < 0)
            return r;
    }
    if (archive_write_header(d->tar, e) < ARCHIVE_WARN)
        return archive_fail(d->tar, path, err);
    if (S_ISREG(st.st_mode))
        return copy_data(d, fd, path, st.st_size, err);
    if (!S_ISDIR(st.st_mode))
        return 0;

    const char *key = d->o->userxattr ? "user.overlay.opaque" : "trusted.overlay.opaque";
    char v[2];
    ssize_t n = fgetxattr(fd, key, v, sizeof(v));
    if (n == 1 && v[0] == 'y') {
        _cleanup_free_ char *marker = NULL;
        if (asprintf(&marker, "%s/.wh..wh..opq", path) < 0)
            return -ENOMEM;
        int r = write_marker(d, marker, &st, st.st_mode & 0777, err);
        if (r < 0)
            return r;
    }
    _cleanup_free_ char *prefix = NULL;
    if (asprintf(&prefix, "%s/", path) < 0)
        return -ENOMEM;
    return walk_dir(d, fd, prefix, err);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Writes the entries of dirfd (whose path in the tar is prefix) in name order. */
static int walk_dir(struct diff *d, int dirfd, const char *prefix, struct ks_error **err)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "layer diff: opening `%s`", prefix);
    _cleanup_closedir_ DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        close(fd);
        return ks_error_set(err, errno, "layer diff: opening `%s`", prefix);
    }
    _cleanup_strv_ char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(dir)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n + 2 > cap) {
            cap = cap ? 2 * cap : 16;
            char **v = reallocarray(names, cap, sizeof(*v));
            if (v == NULL)
                return -ENOMEM;
            names = v;
        }
        names[n] = strdup(de->d_name);
        if (names[n] == NULL)
            return -ENOMEM;
        names[++n] = NULL;
        errno = 0;
    }
    if (errno != 0)
        return ks_error_set(err, errno, "layer diff: reading `%s`", prefix);
    if (n == 0)
        return 0;
    qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s%s", prefix, names[i]) < 0)
            return -ENOMEM;
        int r = write_node(d, dirfd, names[i], path, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int open_writers(struct diff *d, struct ks_error **err)
{
    if (d->o->gzip) {
        d->gz = archive_write_new();
        if (d->gz == NULL)
            return -ENOMEM;
        _cleanup_(archive_entry_freep) struct archive_entry *e = archive_entry_new();
        if (e == NULL)
            return -ENOMEM;
        archive_entry_set_pathname(e, "layer.tar");
        archive_entry_set_filetype(e, AE_IFREG);
        /* No timestamp in the gzip header: the same tree gives the same blob. */
        if (archive_write_add_filter_gzip(d->gz) != ARCHIVE_OK ||
            archive_write_set_filter_option(d->gz, "gzip", "timestamp", NULL) < ARCHIVE_WARN ||
            archive_write_set_format_raw(d->gz) != ARCHIVE_OK ||
            archive_write_set_bytes_in_last_block(d->gz, 1) != ARCHIVE_OK ||
            archive_write_open(d->gz, d, NULL, out_write, NULL) != ARCHIVE_OK ||
            archive_write_header(d->gz, e) != ARCHIVE_OK)
            return archive_fail(d->gz, "setting up gzip", err);
    }
    d->tar = archive_write_new();
    if (d->tar == NULL)
        return -ENOMEM;
    if (archive_write_set_format_pax_restricted(d->tar) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(d->tar, 1) != ARCHIVE_OK ||
        archive_write_open(d->tar, d, NULL, tar_write, NULL) != ARCHIVE_OK)
        return archive_fail(d->tar, "setting up the tar writer", err);
    return 0;
}

int ks_layer_diff(int upper_dirfd, int out_fd, const struct ks_layer_diff_opts *o,
                  char **ret_diff_id, struct ks_error **err)
{
    if (ks_archive_require(err) < 0)
        return -ENOENT;
    static const struct ks_layer_diff_opts defaults = {0};
    _cleanup_(diff_release) struct diff d = {
        .o = o ? o : &defaults,
        .out_fd = out_fd,
    };
    d.hash = EVP_MD_CTX_new();
    d.buf = malloc(COPY_BUF_SIZE);
    if (d.hash == NULL || d.buf == NULL || EVP_DigestInit_ex(d.hash, EVP_sha256(), NULL) != 1)
        return ks_error_set(err, ENOMEM, "layer diff: setting up the digest");
    int r = open_writers(&d, err);
    if (r < 0)
        return r;
    r = walk_dir(&d, upper_dirfd, "", err);
    if (r < 0)
        return r;
    if (archive_write_close(d.tar) != ARCHIVE_OK)
        return archive_fail(d.tar, "finishing the tar", err);
    if (d.gz && archive_write_close(d.gz) != ARCHIVE_OK)
        return archive_fail(d.gz, "finishing the compressed stream", err);

    char digest[KS_SHA256_DIGEST_LEN];
    ks_sha256_final(d.hash, digest);
    if (ret_diff_id) {
        char *id = strdup(digest);
        if (id == NULL)
            return -ENOMEM;
        *ret_diff_id = id;
    }
    return 0;
}
