/* /dev inside the container: the default device nodes every container has, the devices of
 * linux.devices, and the usual symlinks. Inside a user namespace mknod is not allowed, so the
 * host's nodes are bind mounted instead. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../base/log.h"
#include "internal.h"

struct default_dev {
    const char *path;
    unsigned major, minor;
};

static const struct default_dev default_devs[] = {
    {"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

static const struct {
    const char *target, *link;
} default_links[] = {
    {"/proc/self/fd", "/dev/fd"},       {"/proc/self/fd/0", "/dev/stdin"},
    {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
    {"pts/ptmx", "/dev/ptmx"},
};

json_object *ks_devices_default_rules(void)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < KS_ELEMENTSOF(default_devs); i++) {
        json_object *r = json_object_new_object();
        json_object_object_add(r, "allow", json_object_new_boolean(1));
        json_object_object_add(r, "type", json_object_new_string("c"));
        json_object_object_add(r, "major", json_object_new_int((int)default_devs[i].major));
        json_object_object_add(r, "minor", json_object_new_int((int)default_devs[i].minor));
        json_object_object_add(r, "access", json_object_new_string("rwm"));
        json_object_array_add(a, r);
    }
    /* the pty slaves, /dev/ptmx and /dev/console */
    static const int pts[][2] = {{136, -1}, {5, 2}, {5, 1}};
    for (size_t i = 0; i < KS_ELEMENTSOF(pts); i++) {
        json_object *r = json_object_new_object();
        json_object_object_add(r, "allow", json_object_new_boolean(1));
        json_object_object_add(r, "type", json_object_new_string("c"));
        json_object_object_add(r, "major", json_object_new_int(pts[i][0]));
        if (pts[i][1] >= 0)
            json_object_object_add(r, "minor", json_object_new_int(pts[i][1]));
        json_object_object_add(r, "access", json_object_new_string("rwm"));
        json_object_array_add(a, r);
    }
    return a;
}

static int make_node(int rootfd, const char *path, mode_t type, unsigned major, unsigned minor,
                     mode_t perm, uid_t uid, gid_t gid, bool bind_instead, struct ks_error **err)
{
    _cleanup_free_ char *dir = strdup(path);
    if (dir == NULL)
        return ks_error_set(err, ENOMEM, "device");
    char *slash = strrchr(dir, '/');
    const char *base = slash + 1;
    *slash = '\0';
    _cleanup_close_ int dfd = ks_mkdir_p_in_root(rootfd, *dir ? dir : "/", 0755, false, err);
    if (dfd < 0)
        return ks_error_wrap(err, "device `%s`", path);
    char dp[64];
    ks_fd_path(dfd, dp, sizeof(dp));
    _cleanup_close_ int d = open(dp, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (d < 0)
        return ks_error_set(err, errno, "open `%s`", dir);
    struct stat st;
    if (fstatat(d, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode) || S_ISDIR(st.st_mode))
            return ks_error_msg(err, "device `%s`: path exists and is not a device", path);
        unlinkat(d, base, 0);
    }
    if (!bind_instead && mknodat(d, base, type | perm, makedev(major, minor)) == 0) {
        if (fchmodat(d, base, perm, 0) < 0 || fchownat(d, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
            return ks_error_set(err, errno, "set owner and mode of `%s`", path);
        return 0;
    }
    if (!bind_instead && errno != EPERM)
        return ks_error_set(err, errno, "mknod `%s`", path);
    /* No mknod here: bind the host's node over an empty file. */
    int f = openat(d, base, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f < 0)
        return ks_error_set(err, errno, "create `%s`", path);
    close(f);
    _cleanup_close_ int target = openat(d, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (target < 0)
        return ks_error_set(err, errno, "open `%s`", path);
    char tp[64];
    if (mount(path, ks_fd_path(target, tp, sizeof(tp)), NULL, MS_BIND, NULL) < 0)
        return ks_error_set(err, errno, "bind device `%s`", path);
    return 0;
}

int ks_devices_create(int rootfd, json_object *spec, bool bind_instead, struct ks_error **err)
{
    json_object *devs = ks_json_get_type(ks_json_get(spec, "linux"), "devices", json_type_array);
    size_t n = devs ? json_object_array_length(devs) : 0;
    int r;
    for (size_t i = 0; i < KS_ELEMENTSOF(default_devs); i++) {
        bool overridden = false;
        for (size_t k = 0; k < n; k++) {
            const char *p = ks_json_str(json_object_array_get_idx(devs, k), "path");
            if (p && strcmp(p, default_devs[i].path) == 0)
                overridden = true;
        }
        if (overridden)
            continue;
        r = make_node(rootfd, default_devs[i].path, S_IFCHR, default_devs[i].major,
                      default_devs[i].minor, 0666, 0, 0, bind_instead, err);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *d = json_object_array_get_idx(devs, i);
        const char *type = ks_json_str(d, "type");
        const char *path = ks_json_str(d, "path");
        if (type == NULL || path == NULL)
            return ks_error_msg(err, "linux.devices[%zu]: type and path are required", i);
        mode_t t;
        switch (type[0]) {
        case 'c':
        case 'u':
            t = S_IFCHR;
            break;
        case 'b':
            t = S_IFBLK;
            break;
        case 'p':
            t = S_IFIFO;
            break;
        default:
            return ks_error_msg(err, "linux.devices[%zu].type: unknown device type `%s`", i, type);
        }
        mode_t perm = (mode_t)ks_json_int(d, "fileMode", 0666) & 07777;
        r = make_node(rootfd, path, t, (unsigned)ks_json_int(d, "major", 0),
                      (unsigned)ks_json_int(d, "minor", 0), perm, (uid_t)ks_json_int(d, "uid", 0),
                      (gid_t)ks_json_int(d, "gid", 0), bind_instead && t != S_IFIFO, err);
        if (r < 0)
            return ks_error_wrap(err, "linux.devices[%zu]", i);
    }
    _cleanup_close_ int devfd = ks_mkdir_p_in_root(rootfd, "/dev", 0755, false, err);
    if (devfd < 0)
        return devfd;
    char dp[64];
    _cleanup_close_ int d =
        open(ks_fd_path(devfd, dp, sizeof(dp)), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (d < 0)
        return ks_error_set(err, errno, "open /dev");
    for (size_t i = 0; i < KS_ELEMENTSOF(default_links); i++) {
        const char *name = default_links[i].link + 5;
        if (symlinkat(default_links[i].target, d, name) < 0 && errno != EEXIST)
            return ks_error_set(err, errno, "symlink `%s`", default_links[i].link);
    }
    if (access("/proc/kcore", F_OK) == 0)
        (void)!symlinkat("/proc/kcore", d, "core");
    return 0;
}
