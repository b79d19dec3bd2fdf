/* Applying a layer tar. The blob is read once: a first libarchive reader (format "raw", the
 * compression filters) turns the bytes of the fd into the uncompressed tar stream, and a second
 * one (format tar) reads its entries from that stream through a read callback. Both streams
 * are hashed as they pass, so the digest and the diff_id come out of the same pass: the blob on
 * a thread of its own (bg_hash.h), the tar stream only when a filter made it differ from the
 * blob.
 *
 * Every entry is confined to the destination: its path is cleaned (leading "/" and "." dropped,
 * ".." refused), its parent directory is opened one component at a time without following
 * symlinks, and the entry itself is created with *at() calls on that directory fd. */
#include "layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../base/archive_shim.h"
#include "../base/hash.h"
#include "../base/cleanup.h"
#include "../base/fs.h"
#include "bg_hash.h"
#include "layer_archive.h"

/* Large reads: fewer read calls and fewer trips through libarchive's callbacks per layer. */
#define BLOB_BUF_SIZE (1024 * 1024)
#define WH_PREFIX     ".wh."
#define WH_META       ".wh..wh."
#define WH_OPAQUE     ".wh..wh..opq"

/* Error messages show at most this much of an entry name: a 4 KiB name helps nobody. */
#define NAME_SHOWN 200

struct dir_meta {
    char *path; /* clean path below dest, "" for dest itself */
    mode_t mode;
    struct timespec times[2];
};

struct apply {
    int fd;
    int dest;
    const struct ks_layer_apply_opts *o;
    uint64_t max_size;

    struct ks_bg_hash *blob_hash; /* the blob's bytes, hashed on a thread of its own */
    EVP_MD_CTX *tar_hash;
    uint64_t blob_size;
    uint64_t tar_size;
    struct archive *raw; /* the decompressing reader */
    bool too_big;
    /* No decompression filter: the tar stream is the blob, hashed once as both. */
    bool same_stream;
    int read_errno;
    uint64_t entries_seen;

    /* The parent directory of the previous entry: consecutive entries mostly share it. */
    char *cache_path;
    int cache_fd;

    struct dir_meta *dirs;
    size_t n_dirs, cap_dirs;
};

static void apply_release(struct apply *ap)
{
    ks_bg_hash_free(ap->blob_hash);
    EVP_MD_CTX_free(ap->tar_hash);
    if (ap->raw)
        archive_read_free(ap->raw);
    free(ap->cache_path);
    ks_closep(&ap->cache_fd);
    for (size_t i = 0; i < ap->n_dirs; i++)
        free(ap->dirs[i].path);
    free(ap->dirs);
}

/* ---- the two streams ---- */

static la_ssize_t blob_read(struct archive *a, void *data, const void **buf)
{
    struct apply *ap = data;
    void *b = ks_bg_hash_next(ap->blob_hash);
    ssize_t n;
    do
        n = read(ap->fd, b, BLOB_BUF_SIZE);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        ap->read_errno = errno;
        archive_set_error(a, errno, "reading the layer");
        return -1;
    }
    ks_bg_hash_submit(ap->blob_hash, (size_t)n);
    ap->blob_size += (uint64_t)n;
    *buf = b;
    return n;
}

static la_ssize_t tar_read(struct archive *a, void *data, const void **buf)
{
    struct apply *ap = data;
    size_t size = 0;
    la_int64_t off = 0;
    int r = archive_read_data_block(ap->raw, buf, &size, &off);
    if (r == ARCHIVE_EOF)
        return 0;
    if (r < ARCHIVE_WARN) {
        archive_set_error(a, archive_errno(ap->raw), "decompressing: %s",
                          archive_error_string(ap->raw));
        return -1;
    }
    if (!ap->same_stream)
        EVP_DigestUpdate(ap->tar_hash, *buf, size);
    ap->tar_size += size;
    if (ap->tar_size > ap->max_size) {
        ap->too_big = true;
        archive_set_error(a, EFBIG, "the layer is larger than %llu bytes uncompressed",
                          (unsigned long long)ap->max_size);
        return -1;
    }
    return (la_ssize_t)size;
}

/* ---- paths ---- */

static const char *shown(const char *name, char buf[NAME_SHOWN + 8])
{
    if (strlen(name) <= NAME_SHOWN)
        return name;
    snprintf(buf, NAME_SHOWN + 8, "%.*s...", NAME_SHOWN, name);
    return buf;
}

#define entry_error(err, errnum, name, fmt, ...)                                                   \
    ({                                                                                             \
        char _sb[NAME_SHOWN + 8];                                                                  \
        ks_error_set_plain(err, errnum, "layer entry `%s`: " fmt, shown(name, _sb),                \
                           ##__VA_ARGS__);                                                         \
    })

#define entry_errno(err, errnum, name, fmt, ...)                                                   \
    ({                                                                                             \
        char _sb[NAME_SHOWN + 8];                                                                  \
        ks_error_set(err, errnum, "layer entry `%s`: " fmt, shown(name, _sb), ##__VA_ARGS__);      \
    })

int ks_layer_clean_path(const char *name, char **ret)
{
    size_t total = strlen(name);
    if (total > KS_LAYER_MAX_NAME)
        return -ENAMETOOLONG;
    _cleanup_free_ char *out = malloc(total + 1);
    if (out == NULL)
        return -ENOMEM;
    size_t n = 0;
    const char *p = name;
    while (*p) {
        while (*p == '/')
            p++;
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return -EPERM;
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (n > 0)
                out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        p = end;
    }
    out[n] = '\0';
    *ret = TAKE_PTR(out);
    return 0;
}

/* ks_layer_clean_path with the entry named in the error. */
static int clean_path(const char *entry, const char *name, char **ret, struct ks_error **err)
{
    int r = ks_layer_clean_path(name, ret);
    if (r == -ENAMETOOLONG)
        return entry_error(err, ENAMETOOLONG, entry, "name longer than %d bytes",
                           KS_LAYER_MAX_NAME);
    if (r == -EPERM)
        return entry_error(err, EPERM, entry, "path leaves the layer");
    return r < 0 ? ks_error_set(err, -r, "layer entry") : 0;
}

/* Splits a clean path in place into its directory ("" for dest) and last component. */
static const char *split_last(char *path, const char **ret_dir)
{
    char *slash = strrchr(path, '/');
    if (slash == NULL) {
        *ret_dir = "";
        return path;
    }
    *slash = '\0';
    *ret_dir = path;
    return slash + 1;
}

static int openat2_beneath(int dirfd, const char *path)
{
    struct open_how how = {
        .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    return fd < 0 ? -errno : fd;
}

/* Opens the directory dir (a clean path) below dest, one component at a time and never through
 * a symlink; missing directories are created (0755, as Docker does) when create is set. The
 * caller owns the returned fd. */
static int open_dir(struct apply *ap, const char *entry, const char *dir, bool create,
                    struct ks_error **err)
{
    if (*dir == '\0') {
        int fd = openat(ap->dest, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 ? ks_error_set(err, errno, "opening the layer directory") : fd;
    }
    int fd = openat2_beneath(ap->dest, dir);
    if (fd >= 0)
        return fd;

    _cleanup_free_ char *copy = strdup(dir);
    if (copy == NULL)
        return -ENOMEM;
    _cleanup_close_ int cur = openat(ap->dest, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cur < 0)
        return ks_error_set(err, errno, "opening the layer directory");
    char *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        int next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT && create) {
            if (mkdirat(cur, c, 0755) < 0 && errno != EEXIST)
                return entry_errno(err, errno, entry, "creating directory `%s`", c);
            next = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (next < 0) {
            int e = errno;
            struct stat st;
            if ((e == ELOOP || e == ENOTDIR) && fstatat(cur, c, &st, AT_SYMLINK_NOFOLLOW) == 0)
                return entry_error(err, e, entry, "`%s` in its path is %s", c,
                                   S_ISLNK(st.st_mode) ? "a symlink" : "not a directory");
            return entry_errno(err, e, entry, "opening `%s`", c);
        }
        close(cur);
        cur = next;
    }
    return TAKE_FD(cur);
}

/* The parent directory of an entry, from the cache when it is the previous entry's. The
 * returned fd belongs to ap. */
static int parent_dir(struct apply *ap, const char *entry, const char *dir, struct ks_error **err)
{
    if (ap->cache_path && strcmp(ap->cache_path, dir) == 0)
        return ap->cache_fd;
    int fd = open_dir(ap, entry, dir, true, err);
    if (fd < 0)
        return fd;
    char *p = strdup(dir);
    if (p == NULL) {
        close(fd);
        return -ENOMEM;
    }
    free(ap->cache_path);
    ks_closep(&ap->cache_fd);
    ap->cache_path = p;
    ap->cache_fd = fd;
    return fd;
}

/* Makes room for a new entry called name: an existing entry of another kind (or any, unless
 * both are directories) is removed, a symlink as the link itself. Sets *ret_is_dir when a
 * directory stays in place. The entry kinds call it only after creating the name failed with
 * EEXIST: in a new layer directory nearly every name is new, and a stat before each entry
 * would be wasted. Creation never follows a symlink (O_EXCL, mkdirat, symlinkat, linkat and
 * mknodat all fail on one), so trying first gives nothing away. */
static int make_room(struct apply *ap, const char *entry, int pfd, const char *name,
                     bool new_is_dir, bool *ret_is_dir, struct ks_error **err)
{
    struct stat st;
    if (ret_is_dir)
        *ret_is_dir = false;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return entry_errno(err, errno, entry, "stat");
    }
    if (S_ISDIR(st.st_mode)) {
        if (new_is_dir) {
            if (ret_is_dir)
                *ret_is_dir = true;
            return 0;
        }
        /* The parent cache needs no care: it holds pfd, which is not inside this tree. */
        int r = ks_rm_rf_at(pfd, name, err);
        return r < 0 ? ks_error_wrap(err, "layer entry `%s`", entry) : 0;
    }
    if (unlinkat(pfd, name, 0) < 0 && errno != ENOENT)
        return entry_errno(err, errno, entry, "removing the existing file");
    return 0;
}

/* ---- metadata ---- */

static bool overlay_xattr(const char *name)
{
    return strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0;
}

static int owner(struct apply *ap, const char *entry, struct archive_entry *e, uid_t *uid,
                 gid_t *gid, struct ks_error **err)
{
    int64_t u = archive_entry_uid(e) + (int64_t)ap->o->uid_shift;
    int64_t g = archive_entry_gid(e) + (int64_t)ap->o->gid_shift;
    if (archive_entry_uid(e) < 0 || archive_entry_gid(e) < 0 || u >= UINT32_MAX || g >= UINT32_MAX)
        return entry_error(err, EINVAL, entry, "owner %lld:%lld out of range",
                           (long long)archive_entry_uid(e), (long long)archive_entry_gid(e));
    *uid = (uid_t)u;
    *gid = (gid_t)g;
    return 0;
}

static void entry_times(struct archive_entry *e, struct timespec ts[2])
{
    ts[1].tv_sec = archive_entry_mtime(e);
    ts[1].tv_nsec = archive_entry_mtime_nsec(e);
    if (archive_entry_atime_is_set(e)) {
        ts[0].tv_sec = archive_entry_atime(e);
        ts[0].tv_nsec = archive_entry_atime_nsec(e);
    } else {
        ts[0] = ts[1];
    }
    for (int i = 0; i < 2; i++)
        if (ts[i].tv_nsec < 0 || ts[i].tv_nsec >= 1000000000)
            ts[i].tv_nsec = 0;
}

/* Sets the entry's xattrs on the file open as fd (an O_PATH fd works through /proc). */
static int set_xattrs(const char *entry, int fd, bool opath, struct archive_entry *e,
                      struct ks_error **err)
{
    if (archive_entry_xattr_reset(e) == 0)
        return 0;
    const char *name;
    const void *value;
    size_t size;
    char path[64];
    ks_fd_path(fd, path, sizeof(path));
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
        if (name == NULL || overlay_xattr(name))
            continue;
        int r = opath ? setxattr(path, name, value, size, 0) : fsetxattr(fd, name, value, size, 0);
        if (r < 0 && errno != EOPNOTSUPP)
            return entry_errno(err, errno, entry, "setting xattr %s", name);
    }
    return 0;
}

/* Owner, xattrs, then mode (chown clears setuid bits and file capabilities, so it comes first)
 * and times, on a non-directory, non-symlink node open as fd. */
static int finish_node(struct apply *ap, const char *entry, int fd, bool opath, int pfd,
                       const char *name, struct archive_entry *e, struct ks_error **err)
{
    uid_t uid;
    gid_t gid;
    int r = owner(ap, entry, e, &uid, &gid, err);
    if (r < 0)
        return r;
    /* On a file open for writing, the fd calls spare a path lookup each. */
    if (!ap->o->no_chown &&
        (opath ? fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) : fchown(fd, uid, gid)) < 0)
        return entry_errno(err, errno, entry, "chown");
    r = set_xattrs(entry, fd, opath, e, err);
    if (r < 0)
        return r;
    mode_t mode = archive_entry_perm(e) & 07777;
    if ((opath ? fchmodat(pfd, name, mode, 0) : fchmod(fd, mode)) < 0)
        return entry_errno(err, errno, entry, "chmod");
    struct timespec ts[2];
    entry_times(e, ts);
    if ((opath ? utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) : futimens(fd, ts)) < 0)
        return entry_errno(err, errno, entry, "setting times");
    return 0;
}

/* ---- entry kinds ---- */

static int write_file(struct apply *ap, struct archive *tar, const char *entry, int pfd,
                      const char *name, struct archive_entry *e, struct ks_error **err)
{
    int64_t size = archive_entry_size(e);
    if (size < 0)
        return entry_error(err, EINVAL, entry, "negative size");
    if (archive_entry_sparse_count(e) == 0 && (uint64_t)size > ap->max_size)
        return entry_error(err, EFBIG, entry, "size %lld is over the limit of %llu bytes",
                           (long long)size, (unsigned long long)ap->max_size);
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    _cleanup_close_ int fd = openat(pfd, name, flags, 0600);
    int r;
    if (fd < 0 && errno == EEXIST) {
        r = make_room(ap, entry, pfd, name, false, NULL, err);
        if (r < 0)
            return r;
        fd = openat(pfd, name, flags, 0600);
    }
    if (fd < 0)
        return entry_errno(err, errno, entry, "creating the file");
    int64_t end = 0;
    for (;;) {
        const void *buf;
        size_t len;
        la_int64_t off;
        r = archive_read_data_block(tar, &buf, &len, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN && ap->too_big)
            return ks_error_set_plain(err, EFBIG,
                                      "layer entry `%s`: the layer is larger than %llu bytes "
                                      "uncompressed",
                                      entry, (unsigned long long)ap->max_size);
        if (r < ARCHIVE_WARN)
            return entry_error(err, archive_errno(tar) > 0 ? archive_errno(tar) : EIO, entry, "%s",
                               archive_error_string(tar));
        if (off < 0 || len > (size_t)INT64_MAX - (size_t)off)
            return entry_error(err, EINVAL, entry, "bad data offset");
        const char *p = buf;
        size_t done = 0;
        while (done < len) {
            ssize_t n = pwrite(fd, p + done, len - done, off + (off_t)done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return entry_errno(err, errno, entry, "writing");
            done += (size_t)n;
        }
        if (off + (int64_t)len > end)
            end = off + (int64_t)len;
    }
    /* A sparse file may end in a hole. */
    if (end < size && ftruncate(fd, size) < 0)
        return entry_errno(err, errno, entry, "truncating");
    return finish_node(ap, entry, fd, false, pfd, name, e, err);
}

static int make_dir(struct apply *ap, const char *entry, const char *path, int pfd,
                    const char *name, struct archive_entry *e, struct ks_error **err)
{
    _cleanup_close_ int fd = -EBADF;
    if (pfd < 0) {
        fd = openat(ap->dest, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } else {
        if (mkdirat(pfd, name, 0700) < 0) {
            if (errno != EEXIST)
                return entry_errno(err, errno, entry, "mkdir");
            bool exists;
            int r = make_room(ap, entry, pfd, name, true, &exists, err);
            if (r < 0)
                return r;
            if (!exists && mkdirat(pfd, name, 0700) < 0)
                return entry_errno(err, errno, entry, "mkdir");
        }
        fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0)
        return entry_errno(err, errno, entry, "opening the directory");
    uid_t uid;
    gid_t gid;
    int r = owner(ap, entry, e, &uid, &gid, err);
    if (r < 0)
        return r;
    if (!ap->o->no_chown && fchown(fd, uid, gid) < 0)
        return entry_errno(err, errno, entry, "chown");
    r = set_xattrs(entry, fd, false, e, err);
    if (r < 0)
        return r;
    /* Mode and times wait for the end: entries below would change the times, and a read-only
     * mode would stop a caller without CAP_DAC_OVERRIDE from filling the directory. */
    if (ap->n_dirs == ap->cap_dirs) {
        size_t cap = ap->cap_dirs ? 2 * ap->cap_dirs : 64;
        struct dir_meta *d = reallocarray(ap->dirs, cap, sizeof(*d));
        if (d == NULL)
            return -ENOMEM;
        ap->dirs = d;
        ap->cap_dirs = cap;
    }
    struct dir_meta *d = &ap->dirs[ap->n_dirs];
    d->path = strdup(path);
    if (d->path == NULL)
        return -ENOMEM;
    d->mode = archive_entry_perm(e) & 07777;
    entry_times(e, d->times);
    ap->n_dirs++;
    return 0;
}

static int finish_dirs(struct apply *ap, struct ks_error **err)
{
    for (size_t i = 0; i < ap->n_dirs; i++) {
        struct dir_meta *d = &ap->dirs[i];
        _cleanup_error_ struct ks_error *ignored = NULL;
        /* A directory replaced by a later entry is simply gone. */
        _cleanup_close_ int fd = open_dir(ap, d->path, d->path, false, &ignored);
        if (fd < 0)
            continue;
        if (fchmod(fd, d->mode) < 0)
            return entry_errno(err, errno, d->path, "chmod");
        if (futimens(fd, d->times) < 0)
            return entry_errno(err, errno, d->path, "setting times");
    }
    return 0;
}

static int make_symlink(struct apply *ap, const char *entry, int pfd, const char *name,
                        struct archive_entry *e, struct ks_error **err)
{
    const char *target = archive_entry_symlink(e);
    if (target == NULL || *target == '\0')
        return entry_error(err, EINVAL, entry, "symlink without a target");
    if (strlen(target) > KS_LAYER_MAX_NAME)
        return entry_error(err, ENAMETOOLONG, entry, "symlink target too long");
    int r;
    if (symlinkat(target, pfd, name) < 0) {
        if (errno != EEXIST)
            return entry_errno(err, errno, entry, "symlink");
        r = make_room(ap, entry, pfd, name, false, NULL, err);
        if (r < 0)
            return r;
        if (symlinkat(target, pfd, name) < 0)
            return entry_errno(err, errno, entry, "symlink");
    }
    uid_t uid;
    gid_t gid;
    r = owner(ap, entry, e, &uid, &gid, err);
    if (r < 0)
        return r;
    if (!ap->o->no_chown && fchownat(pfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_errno(err, errno, entry, "chown");
    struct timespec ts[2];
    entry_times(e, ts);
    if (utimensat(pfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_errno(err, errno, entry, "setting times");
    return 0;
}

/* Whether a symlink in a directory depth levels below the root points above the root, or
 * anywhere by an absolute path: hardlinking such a link could hand its target to a later
 * consumer that follows it from the host. */
static bool symlink_leaves(int depth, const char *target)
{
    if (*target == '/')
        return true;
    const char *p = target;
    while (*p) {
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (--depth < 0)
                return true;
        } else if (len > 0 && !(len == 1 && p[0] == '.')) {
            depth++;
        }
        p = *end ? end + 1 : end;
    }
    return false;
}

static int path_depth(const char *dir)
{
    if (*dir == '\0')
        return 0;
    int n = 1;
    for (const char *p = dir; *p; p++)
        n += *p == '/';
    return n;
}

static int make_hardlink(struct apply *ap, const char *entry, const char *path, int pfd,
                         const char *name, const char *link, struct ks_error **err)
{
    _cleanup_free_ char *target = NULL;
    int r = clean_path(entry, link, &target, err);
    if (r < 0)
        return r;
    if (*target == '\0')
        return entry_error(err, EPERM, entry, "hardlink to the layer root");
    if (strcmp(target, path) == 0)
        return 0;
    const char *tdir;
    const char *tname = split_last(target, &tdir);
    _cleanup_error_ struct ks_error *why = NULL;
    _cleanup_close_ int tfd = open_dir(ap, entry, tdir, false, &why);
    if (tfd < 0)
        return entry_error(err, EPERM, entry, "hardlink target `%s` is not in the layer: %s", link,
                           why ? why->msg : "");
    struct stat st;
    if (fstatat(tfd, tname, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_error(err, errno == ENOENT ? EPERM : errno, entry,
                           "hardlink target `%s` is not in the layer", link);
    if (S_ISDIR(st.st_mode))
        return entry_error(err, EPERM, entry, "hardlink to directory `%s`", link);
    if (S_ISLNK(st.st_mode)) {
        char buf[KS_LAYER_MAX_NAME + 1];
        ssize_t n = readlinkat(tfd, tname, buf, sizeof(buf) - 1);
        if (n < 0)
            return entry_errno(err, errno, entry, "reading symlink `%s`", link);
        buf[n] = '\0';
        if (symlink_leaves(path_depth(tdir), buf))
            return entry_error(err, EPERM, entry,
                               "hardlink to symlink `%s` that points out of the layer", link);
    }
    if (linkat(tfd, tname, pfd, name, 0) == 0)
        return 0;
    if (errno != EEXIST)
        return entry_errno(err, errno, entry, "hardlink to `%s`", link);
    r = make_room(ap, entry, pfd, name, false, NULL, err);
    if (r < 0)
        return r;
    if (linkat(tfd, tname, pfd, name, 0) < 0)
        return entry_errno(err, errno, entry, "hardlink to `%s`", link);
    return 0;
}

static int make_node(struct apply *ap, const char *entry, int pfd, const char *name,
                     struct archive_entry *e, struct ks_error **err)
{
    mode_t type = archive_entry_filetype(e);
    dev_t rdev = archive_entry_rdev(e);
    /* A char device 0:0 is an overlay whiteout, which any layer may carry. */
    bool whiteout = type == AE_IFCHR && rdev == 0;
    if ((type == AE_IFCHR || type == AE_IFBLK) && !whiteout && !ap->o->allow_devices)
        return entry_error(err, EPERM, entry, "device nodes are not allowed in this layer");
    if (mknodat(pfd, name, type | 0600, rdev) < 0) {
        if (errno != EEXIST)
            return entry_errno(err, errno, entry, "mknod");
        int r = make_room(ap, entry, pfd, name, false, NULL, err);
        if (r < 0)
            return r;
        if (mknodat(pfd, name, type | 0600, rdev) < 0)
            return entry_errno(err, errno, entry, "mknod");
    }
    _cleanup_close_ int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return entry_errno(err, errno, entry, "opening the node");
    return finish_node(ap, entry, fd, true, pfd, name, e, err);
}

static int whiteout(struct apply *ap, const char *entry, int pfd, const char *name,
                    struct archive_entry *e, struct ks_error **err)
{
    if (strcmp(name, WH_OPAQUE) == 0) {
        const char *key = ap->o->userxattr ? "user.overlay.opaque" : "trusted.overlay.opaque";
        if (fsetxattr(pfd, key, "y", 1, 0) < 0)
            return entry_errno(err, errno, entry, "marking the directory opaque");
        return 0;
    }
    /* Other aufs metadata (.wh..wh.plnk, .wh..wh.aufs) has no meaning here. */
    if (strncmp(name, WH_META, strlen(WH_META)) == 0)
        return 0;
    const char *victim = name + strlen(WH_PREFIX);
    if (*victim == '\0' || strcmp(victim, ".") == 0 || strcmp(victim, "..") == 0)
        return entry_error(err, EPERM, entry, "invalid whiteout");
    int r;
    if (mknodat(pfd, victim, S_IFCHR | 0, makedev(0, 0)) < 0) {
        if (errno != EEXIST)
            return entry_errno(err, errno, entry, "creating the whiteout");
        r = make_room(ap, entry, pfd, victim, false, NULL, err);
        if (r < 0)
            return r;
        if (mknodat(pfd, victim, S_IFCHR | 0, makedev(0, 0)) < 0)
            return entry_errno(err, errno, entry, "creating the whiteout");
    }
    uid_t uid;
    gid_t gid;
    r = owner(ap, entry, e, &uid, &gid, err);
    if (r < 0)
        return r;
    if (!ap->o->no_chown && fchownat(pfd, victim, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        return entry_errno(err, errno, entry, "chown");
    return 0;
}

static int apply_entry(struct apply *ap, struct archive *tar, struct archive_entry *e,
                       struct ks_error **err)
{
    const char *entry = archive_entry_pathname(e);
    if (entry == NULL)
        return ks_error_msg(err, "layer entry without a name");
    _cleanup_free_ char *path = NULL;
    int r = clean_path(entry, entry, &path, err);
    if (r < 0)
        return r;
    const char *link = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);

    if (*path == '\0') {
        if (link == NULL && type == AE_IFDIR)
            return make_dir(ap, entry, path, -EBADF, NULL, e, err);
        return entry_error(err, EPERM, entry, "only a directory can stand for the layer root");
    }
    _cleanup_free_ char *split = strdup(path);
    if (split == NULL)
        return -ENOMEM;
    const char *dir;
    const char *name = split_last(split, &dir);
    int pfd = parent_dir(ap, entry, dir, err);
    if (pfd < 0)
        return pfd;

    if (strncmp(name, WH_PREFIX, strlen(WH_PREFIX)) == 0)
        return whiteout(ap, entry, pfd, name, e, err);
    if (link)
        return make_hardlink(ap, entry, path, pfd, name, link, err);
    switch (type) {
    case AE_IFREG:
        return write_file(ap, tar, entry, pfd, name, e, err);
    case AE_IFDIR:
        return make_dir(ap, entry, path, pfd, name, e, err);
    case AE_IFLNK:
        return make_symlink(ap, entry, pfd, name, e, err);
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
        return make_node(ap, entry, pfd, name, e, err);
    default:
        return entry_error(err, EINVAL, entry, "unsupported entry type 0%o", (unsigned)type);
    }
}

/* ---- the pass ---- */

struct archive *ks_layer_reader_new(void)
{
    struct archive *a = archive_read_new();
    if (a == NULL)
        return NULL;
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_xz(a);
    archive_read_support_filter_bzip2(a);
    archive_read_support_format_raw(a);
    return a;
}

static int archive_fail(struct apply *ap, struct archive *a, const char *what,
                        struct ks_error **err)
{
    if (ap->too_big)
        return ks_error_set_plain(err, EFBIG, "the layer is larger than %llu bytes uncompressed",
                                  (unsigned long long)ap->max_size);
    int e = archive_errno(a);
    return ks_error_set_plain(err, e > 0 ? e : EINVAL, "%s: %s", what,
                              archive_error_string(a) ? archive_error_string(a) : "unknown error");
}

static int read_entries(struct apply *ap, struct ks_error **err)
{
    _cleanup_archive_read_ struct archive *tar = archive_read_new();
    if (tar == NULL)
        return -ENOMEM;
    archive_read_support_format_tar(tar);
    archive_read_support_format_empty(tar);
    if (archive_read_open(tar, ap, NULL, tar_read, NULL) != ARCHIVE_OK)
        return archive_fail(ap, tar, "reading the layer tar", err);
    for (;;) {
        struct archive_entry *e;
        int r = archive_read_next_header(tar, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN)
            return archive_fail(ap, tar, "reading the layer tar", err);
        r = apply_entry(ap, tar, e, err);
        if (r < 0)
            return r;
        ap->entries_seen++;
    }
    return 0;
}

/* Reads what the tar reader left of the streams (the end-of-archive blocks, padding, bytes
 * after the compressed stream), so that both digests cover everything. */
static int drain(struct apply *ap, struct ks_error **err)
{
    for (;;) {
        const void *buf;
        size_t size;
        la_int64_t off;
        int r = archive_read_data_block(ap->raw, &buf, &size, &off);
        if (r == ARCHIVE_EOF)
            break;
        if (r < ARCHIVE_WARN)
            return archive_fail(ap, ap->raw, "decompressing the layer", err);
        if (!ap->same_stream)
            EVP_DigestUpdate(ap->tar_hash, buf, size);
        ap->tar_size += size;
        if (ap->tar_size > ap->max_size) {
            ap->too_big = true;
            return archive_fail(ap, ap->raw, "decompressing the layer", err);
        }
    }
    for (;;) {
        void *b = ks_bg_hash_next(ap->blob_hash);
        ssize_t n = read(ap->fd, b, BLOB_BUF_SIZE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ks_error_set(err, errno, "reading the layer");
        if (n == 0)
            return 0;
        ks_bg_hash_submit(ap->blob_hash, (size_t)n);
        ap->blob_size += (uint64_t)n;
    }
}

static int open_raw(struct apply *ap, bool *ret_empty, struct ks_error **err)
{
    *ret_empty = false;
    ap->raw = ks_layer_reader_new();
    if (ap->raw == NULL)
        return -ENOMEM;
    if (archive_read_open(ap->raw, ap, NULL, blob_read, NULL) != ARCHIVE_OK) {
        /* The raw format takes any byte, so only an empty blob (or a read error) ends here. */
        if (ap->blob_size == 0 && ap->read_errno == 0) {
            *ret_empty = true;
            return 0;
        }
        return archive_fail(ap, ap->raw, "reading the layer", err);
    }
    struct archive_entry *e;
    int r = archive_read_next_header(ap->raw, &e);
    if (r == ARCHIVE_EOF) {
        *ret_empty = true;
        return 0;
    }
    if (r < ARCHIVE_WARN)
        return archive_fail(ap, ap->raw, "decompressing the layer", err);
    /* Without a filter the raw reader hands on the blob's bytes as they are, from the first to
     * the last (it reads the fd to its end), so the diff_id is the digest: hashing the same
     * bytes twice cost a quarter of an import's CPU time. */
    ap->same_stream = archive_filter_count(ap->raw) == 1 &&
                      archive_filter_code(ap->raw, 0) == ARCHIVE_FILTER_NONE;
    return 0;
}

int ks_layer_apply(int fd, int dest_dirfd, const struct ks_layer_apply_opts *o,
                   struct ks_layer_result *ret, struct ks_error **err)
{
    if (ks_archive_require(err) < 0)
        return -ENOENT;
    static const struct ks_layer_apply_opts defaults = {0};
    _cleanup_(apply_release) struct apply ap = {
        .fd = fd,
        .dest = dest_dirfd,
        .o = o ? o : &defaults,
        .cache_fd = -EBADF,
    };
    ap.max_size = ap.o->max_size ? ap.o->max_size : KS_LAYER_DEFAULT_MAX_SIZE;
    int r = ks_bg_hash_new(BLOB_BUF_SIZE, &ap.blob_hash);
    if (r < 0)
        return ks_error_set(err, -r, "setting up the layer digests");
    ap.tar_hash = EVP_MD_CTX_new();
    if (ap.tar_hash == NULL || EVP_DigestInit_ex(ap.tar_hash, EVP_sha256(), NULL) != 1)
        return ks_error_set(err, ENOMEM, "setting up the layer digests");

    /* Read once, front to back: let the kernel read ahead further. Not a regular file (a pipe,
     * a socket): ESPIPE, and nothing changes. */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    bool empty;
    r = open_raw(&ap, &empty, err);
    if (r < 0)
        return r;
    if (!empty) {
        r = read_entries(&ap, err);
        if (r < 0)
            return r;
        r = drain(&ap, err);
        if (r < 0)
            return r;
    }
    r = finish_dirs(&ap, err);
    if (r < 0)
        return r;
    if (ret) {
        *ret = (struct ks_layer_result){
            .size = ap.blob_size,
            .uncompressed_size = ap.tar_size,
            .entries = ap.entries_seen,
        };
        r = ks_bg_hash_final(ap.blob_hash, ret->digest);
        if (r < 0)
            return ks_error_set(err, -r, "finishing the layer digest");
        if (ap.same_stream)
            memcpy(ret->diff_id, ret->digest, sizeof(ret->diff_id));
        else
            ks_sha256_final(ap.tar_hash, ret->diff_id);
    }
    return 0;
}
