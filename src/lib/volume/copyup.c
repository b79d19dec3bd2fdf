/* Docker's copy-up: the first use of an empty volume fills it with what the image has at the
 * mount's destination, so that a volume over /var/lib/app starts with the image's files.
 * Everything the image gave them is kept: owners, modes, times, extended attributes (file
 * capabilities among them), symlinks and device nodes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "volume.h"

/* Deeper trees than this are not an image's content. */
#define DEPTH_MAX 256
#define XATTR_MAX 65536

bool ks_volume_dir_empty(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return false;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            return false;
    return true;
}

/* Copies the extended attributes of src to dst (both O_PATH or regular fds, through
 * /proc/self/fd so that symlinks are not followed). Attributes the file system refuses are
 * skipped: a volume on tmpfs keeps what tmpfs can hold. */
static int copy_xattrs(int src, int dst, const char *name, struct ks_error **err)
{
    char sp[64], dp[64];
    snprintf(sp, sizeof(sp), "/proc/self/fd/%d", src);
    snprintf(dp, sizeof(dp), "/proc/self/fd/%d", dst);
    char list[XATTR_MAX];
    ssize_t n = listxattr(sp, list, sizeof(list));
    if (n < 0)
        return errno == ENOTSUP || errno == EPERM
                   ? 0
                   : ks_error_set(err, errno, "list xattrs of `%s`", name);
    _cleanup_free_ char *val = malloc(XATTR_MAX);
    if (val == NULL)
        return ks_error_set(err, ENOMEM, "copy xattrs");
    for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1) {
        ssize_t l = getxattr(sp, list + off, val, XATTR_MAX);
        if (l < 0)
            continue;
        if (setxattr(dp, list + off, val, (size_t)l, 0) < 0 && errno != ENOTSUP && errno != EPERM &&
            errno != EOPNOTSUPP)
            return ks_error_set(err, errno, "set xattr %s of `%s`", list + off, name);
    }
    return 0;
}

static int copy_file(int src, int dst, const char *n, const struct stat *st, struct ks_error **err)
{
    _cleanup_close_ int in = openat(src, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int out =
        openat(dst, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st->st_mode & 0777);
    if (in < 0 || out < 0)
        return ks_error_set(err, errno, "copy `%s`", n);
    for (off_t left = st->st_size; left > 0;) {
        ssize_t c = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
        if (c < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
            c = sendfile(out, in, NULL, (size_t)left);
        if (c < 0)
            return ks_error_set(err, errno, "copy `%s`", n);
        if (c == 0)
            break; /* the file shrank meanwhile */
        left -= c;
    }
    return 0;
}

/* Owner, xattrs, mode (after chown, which clears set-id bits) and times of dst/n from st. */
static int copy_meta(int src, int dst, const char *n, const struct stat *st, struct ks_error **err)
{
    if (fchownat(dst, n, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
        return ks_error_set(err, errno, "chown `%s`", n);
    _cleanup_close_ int s = openat(src, n, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_close_ int d = openat(dst, n, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (s < 0 || d < 0)
        return ks_error_set(err, errno, "open `%s`", n);
    if (!S_ISLNK(st->st_mode)) {
        int r = copy_xattrs(s, d, n, err);
        if (r < 0)
            return r;
        if (fchmodat(dst, n, st->st_mode & 07777, 0) < 0)
            return ks_error_set(err, errno, "chmod `%s`", n);
    }
    struct timespec ts[2] = {st->st_atim, st->st_mtim};
    if (utimensat(dst, n, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return ks_error_set(err, errno, "set times of `%s`", n);
    return 0;
}

static int copy_entry(int src, int dst, const char *n, int depth, struct ks_error **err);

static int copy_dir(int src, int dst, int depth, struct ks_error **err)
{
    if (depth > DEPTH_MAX)
        return ks_error_msg(err, "copy-up: directory tree too deep");
    int fd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open directory");
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return ks_error_set(err, errno, "open directory");
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        int r = copy_entry(src, dst, de->d_name, depth, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int copy_entry(int src, int dst, const char *n, int depth, struct ks_error **err)
{
    struct stat st;
    if (fstatat(src, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return ks_error_set(err, errno, "stat `%s`", n);
    int r = 0;
    if (S_ISDIR(st.st_mode)) {
        if (mkdirat(dst, n, 0700) < 0 && errno != EEXIST)
            return ks_error_set(err, errno, "mkdir `%s`", n);
        _cleanup_close_ int s2 = openat(src, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int d2 = openat(dst, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s2 < 0 || d2 < 0)
            return ks_error_set(err, errno, "open `%s`", n);
        r = copy_dir(s2, d2, depth + 1, err);
    } else if (S_ISLNK(st.st_mode)) {
        char t[PATH_MAX];
        ssize_t l = readlinkat(src, n, t, sizeof(t) - 1);
        if (l < 0)
            return ks_error_set(err, errno, "readlink `%s`", n);
        t[l] = '\0';
        if (symlinkat(t, dst, n) < 0)
            return ks_error_set(err, errno, "symlink `%s`", n);
    } else if (S_ISREG(st.st_mode)) {
        r = copy_file(src, dst, n, &st, err);
    } else if (mknodat(dst, n, st.st_mode, st.st_rdev) < 0) {
        return ks_error_set(err, errno, "mknod `%s`", n);
    }
    if (r < 0)
        return r;
    return copy_meta(src, dst, n, &st, err);
}

int ks_volume_copy_tree(int src, int dst, struct ks_error **err)
{
    int r = copy_dir(src, dst, 0, err);
    if (r < 0)
        return r;
    /* The volume's root takes the directory's owner and mode too, as Docker's copy does. */
    struct stat st;
    if (fstat(src, &st) < 0)
        return ks_error_set(err, errno, "stat");
    if (fchown(dst, st.st_uid, st.st_gid) < 0 || fchmod(dst, st.st_mode & 07777) < 0)
        return ks_error_set(err, errno, "copy owner and mode");
    int s = openat(src, ".", O_PATH | O_CLOEXEC), d = openat(dst, ".", O_PATH | O_CLOEXEC);
    if (s >= 0 && d >= 0)
        r = copy_xattrs(s, d, ".", err);
    if (s >= 0)
        close(s);
    if (d >= 0)
        close(d);
    return r;
}
