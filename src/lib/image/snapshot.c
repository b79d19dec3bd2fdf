#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/fs.h"

#define LINK_DIR        "l"
#define CACHE_ID_BYTES  32
#define LINK_ALPHABET   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#define LINK_ATTEMPTS   16
#define ID_MAX_LEN      128
#define LOWER_ENTRY_LEN (sizeof(LINK_DIR "/") - 1 + KS_SNAPSHOT_LINK_LEN)

/* Names used as path components: no "/", no "." or "..", nothing the options string would
 * have to escape. */
static bool valid_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > ID_MAX_LEN || strcmp(id, ".") == 0 || strcmp(id, "..") == 0 ||
        strcmp(id, LINK_DIR) == 0)
        return false;
    return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static bool valid_link(const char *s, size_t n)
{
    if (n != KS_SNAPSHOT_LINK_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strchr(LINK_ALPHABET, s[i]) == NULL || s[i] == '\0')
            return false;
    return true;
}

static int fill_random(void *buf, size_t len, struct ks_error **err)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = getrandom((char *)buf + got, len - got, 0);
        if (n < 0 && errno != EINTR)
            return ks_error_set(err, errno, "getrandom");
        got += n > 0 ? (size_t)n : 0;
    }
    return 0;
}

static int open_store(const char *store_root, bool create, struct ks_error **err)
{
    if (create) {
        int r = ks_mkdir_p(store_root, 0700, err);
        if (r < 0)
            return r;
    }
    int fd = open(store_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open layer store `%s`", store_root);
    if (create && mkdirat(fd, LINK_DIR, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        close(fd);
        return ks_error_set(err, e, "create `%s/" LINK_DIR "`", store_root);
    }
    return fd;
}

/* Reads <id>/link into buf (at least KS_SNAPSHOT_LINK_LEN + 1 bytes). */
static int read_link(int storefd, const char *id, char *buf, struct ks_error **err)
{
    _cleanup_free_ char *path = NULL, *data = NULL;
    size_t len = 0;
    if (asprintf(&path, "%s/link", id) < 0)
        return ks_error_set(err, ENOMEM, "read layer link");
    int r = ks_read_file_at(storefd, path, &data, &len, err);
    if (r < 0)
        return ks_error_wrap(err, "layer `%s`", id);
    while (len > 0 && data[len - 1] == '\n')
        len--;
    if (!valid_link(data, len))
        return ks_error_set_plain(err, EUCLEAN, "layer `%s`: malformed link file", id);
    memcpy(buf, data, len);
    buf[len] = '\0';
    return 0;
}

/* Reads <id>/lower as a NULL-terminated vector of "l/<short>" entries (empty for a base
 * layer), each checked, so that nothing read from disk can point a mount elsewhere. */
static int read_lower(int storefd, const char *id, char ***ret, struct ks_error **err)
{
    _cleanup_free_ char *path = NULL, *data = NULL;
    size_t len = 0;
    if (asprintf(&path, "%s/lower", id) < 0)
        return ks_error_set(err, ENOMEM, "read layer lower");
    _cleanup_error_ struct ks_error *rerr = NULL;
    int r = ks_read_file_at(storefd, path, &data, &len, &rerr);
    if (r == -ENOENT) {
        *ret = calloc(1, sizeof(char *));
        return *ret ? 0 : ks_error_set(err, ENOMEM, "read layer lower");
    }
    if (r < 0)
        return ks_error_set_plain(err, -r, "layer `%s`: %s", id, rerr->msg);
    while (len > 0 && data[len - 1] == '\n')
        data[--len] = '\0';

    size_t n = len ? 1 : 0;
    for (size_t i = 0; i < len; i++)
        n += data[i] == ':';
    _cleanup_strv_ char **v = calloc(n + 1, sizeof(char *));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "read layer lower");
    char *save = NULL;
    size_t i = 0;
    for (char *tok = strtok_r(data, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        if (i >= n || strncmp(tok, LINK_DIR "/", 2) != 0 || !valid_link(tok + 2, strlen(tok + 2)))
            return ks_error_set_plain(err, EUCLEAN, "layer `%s`: malformed lower file", id);
        if ((v[i++] = strdup(tok)) == NULL)
            return ks_error_set(err, ENOMEM, "read layer lower");
    }
    *ret = TAKE_PTR(v);
    return 0;
}

/* Creates l/<short> → ../<id>/diff under a fresh random name, into link. */
static int make_link(int storefd, const char *id, char *link, struct ks_error **err)
{
    _cleanup_free_ char *target = NULL;
    if (asprintf(&target, "../%s/diff", id) < 0)
        return ks_error_set(err, ENOMEM, "create layer link");
    for (int attempt = 0; attempt < LINK_ATTEMPTS; attempt++) {
        unsigned char rnd[KS_SNAPSHOT_LINK_LEN];
        int r = fill_random(rnd, sizeof(rnd), err);
        if (r < 0)
            return r;
        char name[sizeof(LINK_DIR "/") + KS_SNAPSHOT_LINK_LEN];
        memcpy(name, LINK_DIR "/", 2);
        for (size_t i = 0; i < KS_SNAPSHOT_LINK_LEN; i++)
            name[2 + i] = LINK_ALPHABET[rnd[i] % (sizeof(LINK_ALPHABET) - 1)];
        name[2 + KS_SNAPSHOT_LINK_LEN] = '\0';
        if (symlinkat(target, storefd, name) == 0) {
            memcpy(link, name + 2, KS_SNAPSHOT_LINK_LEN + 1);
            return 0;
        }
        if (errno != EEXIST)
            return ks_error_set(err, errno, "create layer link `%s`", name);
    }
    return ks_error_set_plain(err, EEXIST, "create layer link: no free name");
}

/* Removes l/<link> if it still points at this layer. */
static void remove_link(int storefd, const char *id, const char *link)
{
    char path[sizeof(LINK_DIR "/") + KS_SNAPSHOT_LINK_LEN], target[PATH_MAX], want[PATH_MAX];
    snprintf(path, sizeof(path), LINK_DIR "/%s", link);
    snprintf(want, sizeof(want), "../%s/diff", id);
    ssize_t n = readlinkat(storefd, path, target, sizeof(target) - 1);
    if (n < 0)
        return;
    target[n] = '\0';
    if (strcmp(target, want) == 0)
        unlinkat(storefd, path, 0);
}

static int layer_populate(int storefd, const char *id, const char *lower, struct ks_error **err)
{
    _cleanup_close_ int dfd = openat(storefd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "open layer `%s`", id);
    if (mkdirat(dfd, "diff", 0755) < 0)
        return ks_error_set(err, errno, "create `%s/diff`", id);
    if (mkdirat(dfd, "work", 0700) < 0)
        return ks_error_set(err, errno, "create `%s/work`", id);
    /* No fsync here: the layer counts only once the database records it, and the image store
     * syncs the finished layer before that. */
    if (lower) {
        int r = ks_write_file_replace(dfd, "lower", lower, strlen(lower), 0644, err);
        if (r < 0)
            return r;
    }
    char link[KS_SNAPSHOT_LINK_LEN + 1];
    int r = make_link(storefd, id, link, err);
    if (r < 0)
        return r;
    r = ks_write_file_replace(dfd, "link", link, KS_SNAPSHOT_LINK_LEN, 0644, err);
    if (r < 0)
        remove_link(storefd, id, link);
    return r;
}

/* "l/<parent link>:<parent's lower>", or NULL in *ret for a base layer. */
static int lower_for_child(int storefd, const char *parent, char **ret, struct ks_error **err)
{
    *ret = NULL;
    if (parent == NULL)
        return 0;
    if (!valid_id(parent))
        return ks_error_set_plain(err, EINVAL, "invalid parent layer name `%s`", parent);
    char link[KS_SNAPSHOT_LINK_LEN + 1];
    int r = read_link(storefd, parent, link, err);
    if (r < 0)
        return r;
    _cleanup_strv_ char **plower = NULL;
    r = read_lower(storefd, parent, &plower, err);
    if (r < 0)
        return r;
    size_t n = ks_strv_len(plower);
    char *s = malloc((n + 1) * (LOWER_ENTRY_LEN + 1));
    if (s == NULL)
        return ks_error_set(err, ENOMEM, "layer lower");
    char *p = s + sprintf(s, LINK_DIR "/%s", link);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, ":%s", plower[i]);
    *ret = s;
    return 0;
}

int ks_snapshot_layer_create(const char *store_root, const char *parent_cache_id,
                             char **ret_cache_id, char **ret_diff_path, struct ks_error **err)
{
    _cleanup_close_ int storefd = open_store(store_root, true, err);
    if (storefd < 0)
        return storefd;
    _cleanup_free_ char *lower = NULL;
    int r = lower_for_child(storefd, parent_cache_id, &lower, err);
    if (r < 0)
        return ks_error_wrap(err, "create layer");

    unsigned char rnd[CACHE_ID_BYTES];
    r = fill_random(rnd, sizeof(rnd), err);
    if (r < 0)
        return r;
    char id[2 * CACHE_ID_BYTES + 1];
    for (size_t i = 0; i < CACHE_ID_BYTES; i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    if (mkdirat(storefd, id, 0700) < 0)
        return ks_error_set(err, errno, "create layer `%s/%s`", store_root, id);
    r = layer_populate(storefd, id, lower, err);
    if (r < 0) {
        _cleanup_error_ struct ks_error *ignored = NULL;
        ks_rm_rf_at(storefd, id, &ignored);
        return ks_error_wrap(err, "create layer");
    }

    _cleanup_free_ char *cache_id = strdup(id), *diff = NULL;
    if (cache_id == NULL || asprintf(&diff, "%s/%s/diff", store_root, id) < 0) {
        _cleanup_error_ struct ks_error *ignored = NULL;
        ks_snapshot_layer_remove(store_root, id, &ignored);
        return ks_error_set(err, ENOMEM, "create layer");
    }
    if (ret_cache_id)
        *ret_cache_id = TAKE_PTR(cache_id);
    if (ret_diff_path)
        *ret_diff_path = TAKE_PTR(diff);
    return 0;
}

int ks_snapshot_layer_remove(const char *store_root, const char *cache_id, struct ks_error **err)
{
    if (!valid_id(cache_id))
        return ks_error_set_plain(err, EINVAL, "remove layer: invalid name `%s`",
                                  cache_id ? cache_id : "");
    _cleanup_error_ struct ks_error *oerr = NULL;
    _cleanup_close_ int storefd = open_store(store_root, false, &oerr);
    if (storefd == -ENOENT)
        return 0;
    if (storefd < 0)
        return ks_error_set_plain(err, -storefd, "%s", oerr->msg);
    char link[KS_SNAPSHOT_LINK_LEN + 1];
    _cleanup_error_ struct ks_error *lerr = NULL;
    if (read_link(storefd, cache_id, link, &lerr) == 0)
        remove_link(storefd, cache_id, link);
    int r = ks_rm_rf_at(storefd, cache_id, err);
    return r < 0 ? ks_error_wrap(err, "remove layer `%s`", cache_id) : 0;
}

/* --- mounting --- */

/* The kernel's own words about a failed fsconfig, from the context's message log. */
static void fs_log(int fsfd, char *buf, size_t size)
{
    buf[0] = '\0';
    ssize_t n = read(fsfd, buf, size - 1);
    if (n <= 0)
        return;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
}

static int fs_fail(int fsfd, struct ks_error **err, const char *what, const char *arg)
{
    int e = errno;
    char log[256];
    fs_log(fsfd, log, sizeof(log));
    if (log[0])
        return ks_error_set_plain(err, e, "overlay: %s `%s`: %s (%s)", what, arg, strerror(e), log);
    return ks_error_set(err, e, "overlay: %s `%s`", what, arg);
}

/* Mounts with the new mount API, each lower layer given on its own. -EOPNOTSUPP (without an
 * error message) tells the caller to use the option string instead. */
static int mount_new_api(const char *store_root, char *const *lowers, size_t n, const char *upper,
                         const char *work, const char *target, bool readonly, bool vol,
                         struct ks_error **err)
{
    _cleanup_close_ int fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
    if (fsfd < 0)
        return errno == ENOSYS ? -EOPNOTSUPP : ks_error_set(err, errno, "fsopen overlay");
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", store_root, lowers[i]) < 0)
            return ks_error_set(err, ENOMEM, "overlay");
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", path, 0) < 0) {
            if (i == 0 && errno == EINVAL)
                return -EOPNOTSUPP; /* before Linux 6.8 */
            return fs_fail(fsfd, err, "lower layer", path);
        }
    }
    if (upper) {
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0)
            return fs_fail(fsfd, err, "upper directory", upper);
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", work, 0) < 0)
            return fs_fail(fsfd, err, "work directory", work);
        if (vol && fsconfig(fsfd, FSCONFIG_SET_FLAG, "volatile", NULL, 0) < 0)
            return fs_fail(fsfd, err, "volatile upper directory", upper);
    }
    if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
        return fs_fail(fsfd, err, "create mount on", target);
    _cleanup_close_ int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, readonly ? MOUNT_ATTR_RDONLY : 0);
    if (mfd < 0)
        return ks_error_set(err, errno, "overlay: fsmount for `%s`", target);
    if (move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return ks_error_set(err, errno, "overlay: attach mount on `%s`", target);
    return 0;
}

/* Appends s to the option string, escaping what overlay's option parser would split on. */
static void opt_append(char *buf, size_t *len, size_t cap, const char *s, bool escape)
{
    for (; *s; s++) {
        if (escape && (*s == ',' || *s == ':' || *s == '\\')) {
            if (*len + 1 < cap)
                buf[(*len)++] = '\\';
        }
        if (*len + 1 < cap)
            buf[(*len)++] = *s;
    }
    buf[*len < cap ? *len : cap - 1] = '\0';
}

/* The classic way: one option string with short, store-relative lower names, mounted by a
 * child whose working directory is the store (the caller's stays untouched). */
static int mount_legacy(const char *store_root, char *const *lowers, size_t n, const char *upper,
                        const char *work, const char *target, bool readonly, bool vol,
                        struct ks_error **err)
{
    /* The child changes directory: every other path must not depend on the current one. */
    _cleanup_free_ char *abs_target = realpath(target, NULL);
    _cleanup_free_ char *abs_upper = upper ? realpath(upper, NULL) : NULL;
    _cleanup_free_ char *abs_work = work ? realpath(work, NULL) : NULL;
    if (abs_target == NULL || (upper && abs_upper == NULL) || (work && abs_work == NULL))
        return ks_error_set(err, errno, "overlay: resolve mount paths for `%s`", target);

    long page = sysconf(_SC_PAGESIZE);
    size_t cap = (size_t)(page > 0 ? page : 4096);
    _cleanup_free_ char *opts = malloc(cap + 1);
    if (opts == NULL)
        return ks_error_set(err, ENOMEM, "overlay");
    size_t len = 0;
    opt_append(opts, &len, cap + 1, "lowerdir=", false);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            opt_append(opts, &len, cap + 1, ":", false);
        opt_append(opts, &len, cap + 1, lowers[i], true);
    }
    if (abs_upper) {
        opt_append(opts, &len, cap + 1, ",upperdir=", false);
        opt_append(opts, &len, cap + 1, abs_upper, true);
        opt_append(opts, &len, cap + 1, ",workdir=", false);
        opt_append(opts, &len, cap + 1, abs_work, true);
        if (vol)
            opt_append(opts, &len, cap + 1, ",volatile", false);
    }
    if (len >= cap)
        return ks_error_set_plain(err, E2BIG,
                                  "overlay: the mount options for %zu layers do not fit in a "
                                  "page (%zu bytes); so many layers need Linux 6.8 or later",
                                  n, cap);

    pid_t pid = fork();
    if (pid < 0)
        return ks_error_set(err, errno, "overlay: fork");
    if (pid == 0) {
        if (chdir(store_root) < 0)
            _exit(errno & 0xff);
        if (mount("overlay", abs_target, "overlay", readonly ? MS_RDONLY : 0, opts) < 0)
            _exit(errno & 0xff);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return ks_error_set(err, errno, "overlay: wait for mount helper");
    if (!WIFEXITED(status))
        return ks_error_set_plain(err, EIO, "overlay: mount helper died");
    if (WEXITSTATUS(status) != 0)
        return ks_error_set(err, WEXITSTATUS(status), "overlay: mount on `%s` (%zu layers)", target,
                            n);
    return 0;
}

static int mount_bind(const char *source, const char *target, bool readonly, struct ks_error **err)
{
    if (mount(source, target, NULL, MS_BIND, NULL) < 0)
        return ks_error_set(err, errno, "bind `%s` on `%s`", source, target);
    if (readonly && mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
        int e = errno;
        umount2(target, MNT_DETACH);
        return ks_error_set(err, e, "make `%s` read-only", target);
    }
    return 0;
}

/* lowers are "l/<short>" names relative to the store, top first. */
static int mount_lowers(const char *store_root, char *const *lowers, size_t n, const char *upper,
                        const char *work, const char *target, bool readonly, bool legacy, bool vol,
                        struct ks_error **err)
{
    if ((upper == NULL) != (work == NULL))
        return ks_error_msg(err, "overlay: an upper directory needs a work directory");
    /* Overlay wants two lower layers when there is no upper one, and one at least with it. */
    if (n == 0 && upper == NULL)
        return ks_error_msg(err, "overlay: nothing to mount on `%s`", target);
    if (n == 0)
        return mount_bind(upper, target, readonly, err);
    if (n == 1 && upper == NULL) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s/%s", store_root, lowers[0]) < 0)
            return ks_error_set(err, ENOMEM, "overlay");
        return mount_bind(path, target, true, err);
    }
    if (!legacy) {
        int r = mount_new_api(store_root, lowers, n, upper, work, target, readonly, vol, err);
        if (r != -EOPNOTSUPP)
            return r;
    }
    return mount_legacy(store_root, lowers, n, upper, work, target, readonly, vol, err);
}

/* "l/<short>" for each cache ID. */
static int links_for(const char *store_root, const char *const *ids, size_t n, char ***ret,
                     struct ks_error **err)
{
    _cleanup_close_ int storefd = open_store(store_root, false, err);
    if (storefd < 0)
        return storefd;
    _cleanup_strv_ char **v = calloc(n + 1, sizeof(char *));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "overlay");
    for (size_t i = 0; i < n; i++) {
        if (!valid_id(ids[i]))
            return ks_error_set_plain(err, EINVAL, "invalid layer name `%s`", ids[i] ? ids[i] : "");
        char link[KS_SNAPSHOT_LINK_LEN + 1];
        int r = read_link(storefd, ids[i], link, err);
        if (r < 0)
            return r;
        if (asprintf(&v[i], LINK_DIR "/%s", link) < 0)
            return ks_error_set(err, ENOMEM, "overlay");
    }
    *ret = TAKE_PTR(v);
    return 0;
}

static int snapshot_mount(const char *store_root, const char *const *ids, size_t n,
                          const char *upper, const char *work, const char *target, bool readonly,
                          bool legacy, struct ks_error **err)
{
    _cleanup_strv_ char **lowers = NULL;
    int r = links_for(store_root, ids, n, &lowers, err);
    if (r >= 0)
        r = mount_lowers(store_root, lowers, n, upper, work, target, readonly, legacy, false, err);
    return r < 0 ? ks_error_wrap(err, "mount snapshot on `%s`", target) : 0;
}

int ks_snapshot_mount(const char *store_root, const char *const *lower_cache_ids, size_t n,
                      const char *upper_dir, const char *work_dir, const char *target,
                      bool readonly, struct ks_error **err)
{
    return snapshot_mount(store_root, lower_cache_ids, n, upper_dir, work_dir, target, readonly,
                          false, err);
}

int ks_snapshot_mount_legacy(const char *store_root, const char *const *lower_cache_ids, size_t n,
                             const char *upper_dir, const char *work_dir, const char *target,
                             bool readonly, struct ks_error **err)
{
    return snapshot_mount(store_root, lower_cache_ids, n, upper_dir, work_dir, target, readonly,
                          true, err);
}

int ks_snapshot_unmount(const char *target, struct ks_error **err)
{
    if (umount2(target, UMOUNT_NOFOLLOW) == 0)
        return 0;
    if (errno == EINVAL || errno == ENOENT)
        return 0; /* not mounted */
    if (errno == EBUSY && umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
        return 0;
    return ks_error_set(err, errno, "unmount `%s`", target);
}

/* --- containers --- */

static bool is_mount_point(const char *path)
{
    struct statx stx;
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0)
        return false;
    if (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT)
        return stx.stx_attributes & STATX_ATTR_MOUNT_ROOT;
    /* Before Linux 5.8: a mount point sits on another device than its parent directory (an
     * overlay always gets a device of its own). */
    _cleanup_free_ char *parent = NULL;
    struct statx pstx;
    if (asprintf(&parent, "%s/..", path) < 0 ||
        statx(AT_FDCWD, parent, 0, STATX_BASIC_STATS, &pstx) < 0)
        return false;
    return stx.stx_dev_major != pstx.stx_dev_major || stx.stx_dev_minor != pstx.stx_dev_minor;
}

int ks_snapshot_container_create(const char *store_root, const char *top_layer_cache_id,
                                 char **ret_id, struct ks_error **err)
{
    _cleanup_free_ char *id = NULL, *diff = NULL, *merged = NULL;
    int r = ks_snapshot_layer_create(store_root, top_layer_cache_id, &id, &diff, err);
    if (r < 0)
        return ks_error_wrap(err, "create container snapshot");
    if (asprintf(&merged, "%s/%s/merged", store_root, id) < 0 || mkdir(merged, 0700) < 0) {
        int e = merged ? errno : ENOMEM;
        _cleanup_error_ struct ks_error *ignored = NULL;
        ks_snapshot_layer_remove(store_root, id, &ignored);
        return ks_error_set(err, e, "create container snapshot");
    }
    *ret_id = TAKE_PTR(id);
    return 0;
}

/* Overlay refuses to mount again an upper directory that was mounted volatile (it cannot tell a
 * clean unmount from a crash) until this marker is gone. */
static void clear_volatile_marker(const char *work)
{
    _cleanup_close_ int dfd = open(work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return;
    unlinkat(dfd, "work/incompat/volatile/dirty", 0);
    unlinkat(dfd, "work/incompat/volatile", AT_REMOVEDIR);
    unlinkat(dfd, "work/incompat", AT_REMOVEDIR);
}

int ks_snapshot_container_mount(const char *store_root, const char *id, char **ret_merged,
                                struct ks_error **err)
{
    return ks_snapshot_container_mount_flags(store_root, id, 0, ret_merged, err);
}

int ks_snapshot_container_mount_flags(const char *store_root, const char *id, unsigned flags,
                                      char **ret_merged, struct ks_error **err)
{
    if (!valid_id(id))
        return ks_error_set_plain(err, EINVAL, "invalid container snapshot `%s`", id ? id : "");
    _cleanup_free_ char *upper = NULL, *work = NULL, *merged = NULL;
    if (asprintf(&upper, "%s/%s/diff", store_root, id) < 0 ||
        asprintf(&work, "%s/%s/work", store_root, id) < 0 ||
        asprintf(&merged, "%s/%s/merged", store_root, id) < 0)
        return ks_error_set(err, ENOMEM, "mount container snapshot");
    if (!is_mount_point(merged)) {
        _cleanup_close_ int storefd = open_store(store_root, false, err);
        if (storefd < 0)
            return storefd;
        _cleanup_strv_ char **lowers = NULL;
        int r = read_lower(storefd, id, &lowers, err);
        bool vol = flags & KS_SNAPSHOT_MOUNT_VOLATILE;
        if (r >= 0 && vol)
            clear_volatile_marker(work);
        if (r >= 0)
            r = mount_lowers(store_root, lowers, ks_strv_len(lowers), upper, work, merged, false,
                             false, vol, err);
        if (r < 0)
            return ks_error_wrap(err, "mount container snapshot `%s`", id);
    }
    if (ret_merged)
        *ret_merged = TAKE_PTR(merged);
    return 0;
}

int ks_snapshot_container_unmount(const char *store_root, const char *id, struct ks_error **err)
{
    if (!valid_id(id))
        return ks_error_set_plain(err, EINVAL, "invalid container snapshot `%s`", id ? id : "");
    _cleanup_free_ char *merged = NULL;
    if (asprintf(&merged, "%s/%s/merged", store_root, id) < 0)
        return ks_error_set(err, ENOMEM, "unmount container snapshot");
    return ks_snapshot_unmount(merged, err);
}

int ks_snapshot_container_remove(const char *store_root, const char *id, struct ks_error **err)
{
    int r = ks_snapshot_container_unmount(store_root, id, err);
    if (r < 0)
        return r;
    return ks_snapshot_layer_remove(store_root, id, err);
}
