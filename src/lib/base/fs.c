#include "fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>

int ks_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t ks_read_all(int fd, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int ks_read_fd(int fd, size_t max, char **ret, size_t *ret_len, struct ks_error **err)
{
    size_t cap = 4096, len = 0;
    _cleanup_free_ char *buf = malloc(cap + 1);
    if (buf == NULL)
        return ks_error_set(err, ENOMEM, "read");
    for (;;) {
        if (len == cap) {
            if (cap >= max)
                return ks_error_set_plain(err, EFBIG, "file larger than %zu bytes", max);
            cap = cap * 2 > max ? max : cap * 2;
            char *n = realloc(buf, cap + 1);
            if (n == NULL)
                return ks_error_set(err, ENOMEM, "read");
            buf = n;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ks_error_set(err, errno, "read");
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (ret_len)
        *ret_len = len;
    *ret = TAKE_PTR(buf);
    return 0;
}

int ks_read_file_at(int dirfd, const char *path, char **ret, size_t *ret_len, struct ks_error **err)
{
    _cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open `%s`", path);
    int r = ks_read_fd(fd, 256u << 20, ret, ret_len, err);
    if (r < 0)
        return ks_error_wrap(err, "read `%s`", path);
    return 0;
}

int ks_read_file(const char *path, char **ret, size_t *ret_len, struct ks_error **err)
{
    return ks_read_file_at(AT_FDCWD, path, ret, ret_len, err);
}

int ks_write_file_at(int dirfd, const char *path, const char *data, size_t len,
                     struct ks_error **err)
{
    _cleanup_close_ int fd = openat(dirfd, path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open `%s`", path);
    int r = ks_write_all(fd, data, len);
    if (r < 0)
        return ks_error_set(err, -r, "write `%s`", path);
    return 0;
}

int ks_write_file(const char *path, const char *data, size_t len, struct ks_error **err)
{
    return ks_write_file_at(AT_FDCWD, path, data, len, err);
}

static int write_and_rename(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                            bool durable, struct ks_error **err)
{
    char tmp[PATH_MAX];
    /* The thread, not only the process: two threads may replace the same file at once. */
    if (snprintf(tmp, sizeof(tmp), ".%s.tmp-%d", name, (int)gettid()) >= (int)sizeof(tmp))
        return ks_error_set_plain(err, ENAMETOOLONG, "name too long: `%s`", name);
    _cleanup_close_ int fd =
        openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return ks_error_set(err, errno, "create `%s`", tmp);
    int r = ks_write_all(fd, data, len);
    if (r == 0 && durable && fsync(fd) < 0)
        r = -errno;
    if (r < 0) {
        unlinkat(dirfd, tmp, 0);
        return ks_error_set(err, -r, "write `%s`", tmp);
    }
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        r = errno;
        unlinkat(dirfd, tmp, 0);
        return ks_error_set(err, r, "rename `%s`", name);
    }
    return 0;
}

int ks_write_file_atomic(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                         struct ks_error **err)
{
    return write_and_rename(dirfd, name, data, len, mode, true, err);
}

int ks_write_file_replace(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                          struct ks_error **err)
{
    return write_and_rename(dirfd, name, data, len, mode, false, err);
}

int ks_mkdir_p(const char *path, mode_t mode, struct ks_error **err)
{
    _cleanup_free_ char *p = strdup(path);
    if (p == NULL)
        return ks_error_set(err, ENOMEM, "mkdir");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, mode) < 0 && errno != EEXIST)
            return ks_error_set(err, errno, "mkdir `%s`", p);
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return ks_error_set(err, errno, "mkdir `%s`", p);
    return 0;
}

int ks_rm_rf_at(int dirfd, const char *name, struct ks_error **err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : ks_error_set(err, errno, "stat `%s`", name);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
            return ks_error_set(err, errno, "unlink `%s`", name);
        return 0;
    }
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open `%s`", name);
    _cleanup_closedir_ DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return ks_error_set(err, errno, "opendir `%s`", name);
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat cst;
        if (fstatat(fd, de->d_name, &cst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(cst.st_mode) &&
            cst.st_dev != st.st_dev)
            return ks_error_set_plain(err, EBUSY, "`%s/%s` is a mount point", name, de->d_name);
        int r = ks_rm_rf_at(fd, de->d_name, err);
        if (r < 0)
            return r;
    }
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return ks_error_set(err, errno, "rmdir `%s`", name);
    return 0;
}

const char *ks_fd_path(int fd, char *buf, size_t len)
{
    snprintf(buf, len, "/proc/self/fd/%d", fd);
    return buf;
}

/* Resolution by hand: a stack of O_PATH fds, one per directory level below the root, so that
 * ".." pops a level and never leaves the root; symlinks are read and their targets walked in
 * turn (absolute ones from the root). */
#define MAX_DEPTH 256
#define MAX_LINKS 40

struct walk {
    int root;
    int stack[MAX_DEPTH];
    int depth; /* number of fds on the stack; the current dir is stack[depth-1] or root */
    int links;
};

static int walk_cur(struct walk *w)
{
    return w->depth > 0 ? w->stack[w->depth - 1] : w->root;
}

static void walk_reset(struct walk *w)
{
    while (w->depth > 0)
        close(w->stack[--w->depth]);
}

static int walk_path(struct walk *w, const char *path, bool stop_before_last, char *last,
                     size_t last_len, struct ks_error **err);

/* Steps into component c of the current directory; symlinks are followed inside the root. */
static int walk_step(struct walk *w, const char *c, struct ks_error **err)
{
    if (strcmp(c, ".") == 0 || *c == '\0')
        return 0;
    if (strcmp(c, "..") == 0) {
        if (w->depth > 0)
            close(w->stack[--w->depth]);
        return 0;
    }
    int fd = openat(walk_cur(w), c, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(fd, "", target, sizeof(target) - 1);
        close(fd);
        if (n < 0)
            return -errno;
        target[n] = '\0';
        if (++w->links > MAX_LINKS)
            return -ELOOP;
        if (target[0] == '/')
            walk_reset(w);
        return walk_path(w, target, false, NULL, 0, err);
    }
    if (w->depth >= MAX_DEPTH) {
        close(fd);
        return -ENAMETOOLONG;
    }
    w->stack[w->depth++] = fd;
    return 0;
}

/* Walks every component of path; with stop_before_last, the last component is copied into last
 * and not walked. */
static int walk_path(struct walk *w, const char *path, bool stop_before_last, char *last,
                     size_t last_len, struct ks_error **err)
{
    _cleanup_free_ char *copy = strdup(path);
    if (copy == NULL)
        return -ENOMEM;
    char *end = copy + strlen(copy);
    while (end > copy && end[-1] == '/')
        *--end = '\0';
    char *lastc = NULL;
    if (stop_before_last) {
        char *slash = strrchr(copy, '/');
        lastc = slash ? slash + 1 : copy;
        if (slash)
            *slash = '\0';
        else
            copy[0] = '\0', lastc = (char *)path + (path[0] == '/' ? 1 : 0);
        if (strlen(lastc) >= last_len)
            return -ENAMETOOLONG;
        snprintf(last, last_len, "%s", lastc);
    }
    char *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        int r = walk_step(w, c, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Reopens the O_PATH fd with the caller's flags (through its /proc/self/fd link, which names
 * exactly that inode). */
static int reopen(int pathfd, int flags, mode_t mode)
{
    struct stat st;
    if ((flags & O_DIRECTORY) && (fstat(pathfd, &st) < 0 || !S_ISDIR(st.st_mode))) {
        errno = ENOTDIR;
        return -1;
    }
    if (flags & O_PATH)
        return fcntl(pathfd, F_DUPFD_CLOEXEC, 3);
    char p[64];
    return open(ks_fd_path(pathfd, p, sizeof(p)),
                (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC, mode);
}

int ks_open_in_root_fallback(int rootfd, const char *path, int flags, mode_t mode,
                             struct ks_error **err)
{
    struct walk w = {.root = rootfd};
    char last[NAME_MAX + 1] = "";
    int r = walk_path(&w, path, true, last, sizeof(last), err);
    if (r < 0) {
        walk_reset(&w);
        return ks_error_set(err, -r, "resolve `%s` in root", path);
    }
    int fd = -1;
    if (strcmp(last, "..") == 0 && w.depth > 0)
        close(w.stack[--w.depth]);
    if (last[0] == '\0' || strcmp(last, ".") == 0 || strcmp(last, "..") == 0) {
        fd = reopen(walk_cur(&w), flags, mode);
    } else {
        int lfd = openat(walk_cur(&w), last, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (lfd < 0) {
            if (errno == ENOENT && (flags & O_CREAT))
                fd = openat(walk_cur(&w), last, flags | O_NOFOLLOW | O_CLOEXEC, mode);
        } else if (fstat(lfd, &st) == 0 && S_ISLNK(st.st_mode) && !(flags & O_NOFOLLOW)) {
            close(lfd);
            /* Follow the link inside the root; its target ends up on top of the stack. */
            r = walk_step(&w, last, err);
            if (r < 0) {
                walk_reset(&w);
                return ks_error_set(err, -r, "open `%s` in root", path);
            }
            fd = reopen(walk_cur(&w), flags, mode);
        } else if ((flags & O_CREAT) && (flags & O_EXCL)) {
            close(lfd);
            errno = EEXIST;
        } else {
            fd = reopen(lfd, flags, mode);
            int e = errno;
            close(lfd);
            errno = e;
        }
    }
    int e = errno;
    walk_reset(&w);
    if (fd < 0)
        return ks_error_set(err, e, "open `%s` in root", path);
    return fd;
}

static int have_openat2 = -1;

int ks_open_in_root(int rootfd, const char *path, int flags, mode_t mode, struct ks_error **err)
{
    if (have_openat2 != 0) {
        struct open_how how = {
            .flags = (unsigned long long)(flags | O_CLOEXEC),
            .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        const char *p = path;
        while (*p == '/')
            p++;
        int fd = (int)syscall(SYS_openat2, rootfd, *p ? p : ".", &how, sizeof(how));
        if (fd >= 0) {
            have_openat2 = 1;
            return fd;
        }
        if (errno == ENOSYS || errno == EPERM) {
            have_openat2 = 0;
        } else if (errno != EAGAIN && errno != EXDEV) {
            return ks_error_set(err, errno, "open `%s` in root", path);
        }
    }
    return ks_open_in_root_fallback(rootfd, path, flags, mode, err);
}

int ks_mkdir_p_in_root(int rootfd, const char *path, mode_t mode, bool as_file,
                       struct ks_error **err)
{
    _cleanup_free_ char *copy = strdup(path);
    if (copy == NULL)
        return ks_error_set(err, ENOMEM, "mkdir");
    size_t n = strlen(copy);
    while (n > 1 && copy[n - 1] == '/')
        copy[--n] = '\0';
    /* Create each prefix in turn; each is resolved in the root, so a symlink component can only
     * lead to a place inside it. */
    for (char *s = copy + 1;; s++) {
        bool end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        char saved = *s;
        *s = '\0';
        int fd;
        if (end && as_file)
            fd = ks_open_in_root(rootfd, copy, O_PATH, 0, NULL);
        else
            fd = ks_open_in_root(rootfd, copy, O_PATH | O_DIRECTORY, 0, NULL);
        if (fd < 0) {
            /* Create it in its (safely resolved) parent. */
            char *slash = strrchr(copy, '/');
            const char *base = slash ? slash + 1 : copy;
            _cleanup_close_ int parent = -EBADF;
            if (slash && slash != copy) {
                *slash = '\0';
                parent = ks_open_in_root(rootfd, copy, O_PATH | O_DIRECTORY, 0, err);
                *slash = '/';
            } else {
                parent = ks_open_in_root(rootfd, "/", O_PATH | O_DIRECTORY, 0, err);
            }
            if (parent < 0)
                return parent;
            if (end && as_file) {
                int f = openat(parent, base, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (f < 0 && errno != EEXIST)
                    return ks_error_set(err, errno, "create `%s` in root", copy);
                if (f >= 0)
                    close(f);
            } else if (mkdirat(parent, base, mode) < 0 && errno != EEXIST) {
                return ks_error_set(err, errno, "mkdir `%s` in root", copy);
            }
            fd = ks_open_in_root(rootfd, copy, O_PATH | ((end && as_file) ? 0 : O_DIRECTORY), 0,
                                 err);
            if (fd < 0)
                return fd;
        }
        if (end)
            return fd;
        close(fd);
        *s = saved;
    }
}

char *ks_path_clean(const char *path)
{
    size_t n = strlen(path);
    char *out = malloc(n + 2);
    if (out == NULL)
        return NULL;
    bool abs = path[0] == '/';
    size_t o = 0;
    if (abs)
        out[o++] = '/';
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 1 && p[0] == '.') {
            /* skip */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            size_t base = abs ? 1 : 0;
            if (o > base) {
                while (o > base && out[o - 1] != '/')
                    o--;
                if (o > base)
                    o--;
            } else if (!abs) {
                if (o)
                    out[o++] = '/';
                out[o++] = '.';
                out[o++] = '.';
            }
        } else {
            if (o > (abs ? 1u : 0u))
                out[o++] = '/';
            memcpy(out + o, p, len);
            o += len;
        }
        p += len;
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = '\0';
    return out;
}

size_t ks_strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

char **ks_strv_dup(char *const *v)
{
    size_t n = ks_strv_len(v);
    char **r = calloc(n + 1, sizeof(char *));
    if (r == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        r[i] = strdup(v[i]);
        if (r[i] == NULL) {
            ks_strv_free(r);
            return NULL;
        }
    }
    return r;
}

int64_t ks_dir_size(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return 0;
    }
    int64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (!S_ISDIR(st.st_mode)) {
            total += st.st_size;
            continue;
        }
        int sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) {
            total += ks_dir_size(sub);
            close(sub);
        }
    }
    closedir(d);
    return total;
}
