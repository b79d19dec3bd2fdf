/* The container's root file system: mounts from config.json placed inside the rootfs without
 * ever following a symlink out of it, then pivot_root, masked and read-only paths. */
#include <fcntl.h>
#include <limits.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../base/log.h"
#include "internal.h"

#ifndef MOUNT_ATTR_NOSYMFOLLOW
#define MOUNT_ATTR_NOSYMFOLLOW 0x00200000
#endif

enum opt_kind {
    OPT_FLAG,   /* set a mount flag */
    OPT_CLEAR,  /* clear a mount flag */
    OPT_PROP,   /* propagation */
    OPT_RATTR,  /* recursive attribute set through mount_setattr */
    OPT_RCLEAR, /* recursive attribute cleared */
    OPT_IGNORE, /* understood, nothing to do at mount time */
};

struct mount_opt {
    const char *name;
    enum opt_kind kind;
    unsigned long value;
};

static const struct mount_opt mount_opts[] = {
    {"ro", OPT_FLAG, MS_RDONLY},
    {"rw", OPT_CLEAR, MS_RDONLY},
    {"nosuid", OPT_FLAG, MS_NOSUID},
    {"suid", OPT_CLEAR, MS_NOSUID},
    {"nodev", OPT_FLAG, MS_NODEV},
    {"dev", OPT_CLEAR, MS_NODEV},
    {"noexec", OPT_FLAG, MS_NOEXEC},
    {"exec", OPT_CLEAR, MS_NOEXEC},
    {"sync", OPT_FLAG, MS_SYNCHRONOUS},
    {"async", OPT_CLEAR, MS_SYNCHRONOUS},
    {"dirsync", OPT_FLAG, MS_DIRSYNC},
    {"remount", OPT_FLAG, MS_REMOUNT},
    {"mand", OPT_FLAG, MS_MANDLOCK},
    {"nomand", OPT_CLEAR, MS_MANDLOCK},
    {"atime", OPT_CLEAR, MS_NOATIME},
    {"noatime", OPT_FLAG, MS_NOATIME},
    {"diratime", OPT_CLEAR, MS_NODIRATIME},
    {"nodiratime", OPT_FLAG, MS_NODIRATIME},
    {"relatime", OPT_FLAG, MS_RELATIME},
    {"norelatime", OPT_CLEAR, MS_RELATIME},
    {"strictatime", OPT_FLAG, MS_STRICTATIME},
    {"nostrictatime", OPT_CLEAR, MS_STRICTATIME},
    {"lazytime", OPT_FLAG, MS_LAZYTIME},
    {"nolazytime", OPT_CLEAR, MS_LAZYTIME},
    {"bind", OPT_FLAG, MS_BIND},
    {"rbind", OPT_FLAG, MS_BIND | MS_REC},
    {"private", OPT_PROP, MS_PRIVATE},
    {"rprivate", OPT_PROP, MS_PRIVATE | MS_REC},
    {"shared", OPT_PROP, MS_SHARED},
    {"rshared", OPT_PROP, MS_SHARED | MS_REC},
    {"slave", OPT_PROP, MS_SLAVE},
    {"rslave", OPT_PROP, MS_SLAVE | MS_REC},
    {"unbindable", OPT_PROP, MS_UNBINDABLE},
    {"runbindable", OPT_PROP, MS_UNBINDABLE | MS_REC},
    {"rro", OPT_RATTR, MOUNT_ATTR_RDONLY},
    {"rrw", OPT_RCLEAR, MOUNT_ATTR_RDONLY},
    {"rnosuid", OPT_RATTR, MOUNT_ATTR_NOSUID},
    {"rsuid", OPT_RCLEAR, MOUNT_ATTR_NOSUID},
    {"rnodev", OPT_RATTR, MOUNT_ATTR_NODEV},
    {"rdev", OPT_RCLEAR, MOUNT_ATTR_NODEV},
    {"rnoexec", OPT_RATTR, MOUNT_ATTR_NOEXEC},
    {"rexec", OPT_RCLEAR, MOUNT_ATTR_NOEXEC},
    {"rnodiratime", OPT_RATTR, MOUNT_ATTR_NODIRATIME},
    {"rdiratime", OPT_RCLEAR, MOUNT_ATTR_NODIRATIME},
    {"rnoatime", OPT_RATTR, MOUNT_ATTR_NOATIME},
    {"ratime", OPT_RCLEAR, MOUNT_ATTR__ATIME},
    {"rrelatime", OPT_RATTR, MOUNT_ATTR_RELATIME},
    {"rnorelatime", OPT_RCLEAR, MOUNT_ATTR__ATIME},
    {"rstrictatime", OPT_RATTR, MOUNT_ATTR_STRICTATIME},
    {"rnostrictatime", OPT_RCLEAR, MOUNT_ATTR__ATIME},
    {"nosymfollow", OPT_RATTR, MOUNT_ATTR_NOSYMFOLLOW},
    {"rnosymfollow", OPT_RATTR, MOUNT_ATTR_NOSYMFOLLOW},
    {"tmpcopyup", OPT_IGNORE, 0},
    {"idmap", OPT_IGNORE, 0},
    {"ridmap", OPT_IGNORE, 1},
};

struct parsed_mount {
    unsigned long flags, clear, prop[8];
    size_t nprop;
    uint64_t attr_set, attr_clr;
    bool tmpcopyup;
    bool idmap, idmap_recursive;
    char data[4096];
};

static int parse_options(json_object *m, size_t idx, struct parsed_mount *pm, struct ks_error **err)
{
    memset(pm, 0, sizeof(*pm));
    json_object *opts = ks_json_get_type(m, "options", json_type_array);
    size_t n = opts ? json_object_array_length(opts) : 0;
    size_t dlen = 0;
    for (size_t i = 0; i < n; i++) {
        const char *o = json_object_get_string(json_object_array_get_idx(opts, i));
        const struct mount_opt *found = NULL;
        for (size_t k = 0; k < KS_ELEMENTSOF(mount_opts); k++)
            if (strcmp(o, mount_opts[k].name) == 0) {
                found = &mount_opts[k];
                break;
            }
        if (found == NULL) {
            /* File-system specific data, passed on as it is. */
            size_t l = strlen(o);
            if (dlen + l + 2 > sizeof(pm->data))
                return ks_error_msg(err, "mounts[%zu].options: too long", idx);
            if (dlen)
                pm->data[dlen++] = ',';
            memcpy(pm->data + dlen, o, l + 1);
            dlen += l;
            continue;
        }
        switch (found->kind) {
        case OPT_FLAG:
            pm->flags |= found->value;
            pm->clear &= ~found->value;
            break;
        case OPT_CLEAR:
            pm->flags &= ~found->value;
            pm->clear |= found->value;
            break;
        case OPT_PROP:
            if (pm->nprop < KS_ELEMENTSOF(pm->prop))
                pm->prop[pm->nprop++] = found->value;
            break;
        case OPT_RATTR:
            pm->attr_set |= found->value;
            break;
        case OPT_RCLEAR:
            pm->attr_clr |= found->value;
            break;
        case OPT_IGNORE:
            if (strcmp(o, "tmpcopyup") == 0)
                pm->tmpcopyup = true;
            else {
                pm->idmap = true;
                pm->idmap_recursive = found->value != 0;
            }
            break;
        }
    }
    return 0;
}

/* The flags the kernel locks on a mount (set by a more privileged namespace); a bind remount
 * must keep them or it fails with EPERM. */
static unsigned long locked_flags(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) < 0)
        return 0;
    unsigned long f = 0;
    if (sv.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    if (sv.f_flag & ST_RDONLY)
        f |= MS_RDONLY;
    if (sv.f_flag & ST_NOATIME)
        f |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME)
        f |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME)
        f |= MS_RELATIME;
    return f;
}

static int remount_bind(const char *path, unsigned long flags, struct ks_error **err)
{
    unsigned long f = MS_BIND | MS_REMOUNT | (flags & ~(MS_BIND | MS_REC | MS_REMOUNT));
    if (mount("", path, NULL, f, NULL) == 0)
        return 0;
    if (errno == EPERM) {
        unsigned long l = locked_flags(path);
        if (mount("", path, NULL, f | (l & ~MS_RDONLY), NULL) == 0)
            return 0;
    }
    return ks_error_set(err, errno, "remount `%s`", path);
}

static int mount_setattr_path(const char *path, uint64_t set, uint64_t clr, struct ks_error **err)
{
    struct mount_attr attr = {.attr_set = set, .attr_clr = clr};
    if (clr & MOUNT_ATTR__ATIME)
        attr.attr_clr = (clr & ~MOUNT_ATTR__ATIME) | MOUNT_ATTR__ATIME;
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof(attr)) < 0)
        return ks_error_set(err, errno, "set recursive mount attributes on `%s`", path);
    return 0;
}

/* The init's own cgroup in the hierarchy whose /proc/self/cgroup controller field is `ctrls`
 * ("" for cgroup2), into buf; false when not found. Without a cgroup namespace this is not "/",
 * and the container must see only this subtree (as runc binds it), not the host's whole tree. */
static bool own_cgroup_path(const char *ctrls, char *buf, size_t len)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/cgroup", "re");
    if (f == NULL)
        return false;
    char line[PATH_MAX + 256];
    while (fgets(line, sizeof(line), f)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        if (strcmp(c1 + 1, ctrls) != 0)
            continue;
        char *path = c2 + 1;
        path[strcspn(path, "\n")] = '\0';
        snprintf(buf, len, "%s", path);
        return true;
    }
    return false;
}

/* The root (mountinfo's fourth field) of the last mount on mp, "/" when none is found. Inside
 * a container that shares the host's cgroup namespace, /sys/fs/cgroup/<hier> is a bind of the
 * container's own cgroup: /proc/self/cgroup names paths from the hierarchy's root, and the
 * part the mount already covers must not be added twice. */
static void mount_root_of(const char *mp, char *buf, size_t len)
{
    snprintf(buf, len, "/");
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    char *line = NULL;
    size_t cap = 0;
    while (f && getline(&line, &cap, f) > 0) {
        char root[PATH_MAX], point[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", root, point) == 2 && strcmp(point, mp) == 0)
            snprintf(buf, len, "%s", root);
    }
    free(line);
}

/* Binds the host's `hier` + the init's own cgroup (from own_cgroup_path) on p; 1 when done, 0
 * when the init sits at the root of its view (own cgroup namespace) and the caller mounts the
 * hierarchy itself, or a negative errno. */
static int bind_own_cgroup(const char *hier, const char *ctrls, const char *p, unsigned long flags,
                           struct ks_error **err)
{
    char own[PATH_MAX], root[PATH_MAX], src[PATH_MAX * 2];
    if (!own_cgroup_path(ctrls, own, sizeof(own)) || strcmp(own, "/") == 0)
        return 0;
    mount_root_of(hier, root, sizeof(root));
    size_t rl = strlen(root);
    const char *rel = own;
    if (strcmp(root, "/") != 0 && strncmp(own, root, rl) == 0 && (own[rl] == '/' || !own[rl]))
        rel = own + rl;
    if (*rel == '\0' || strcmp(rel, "/") == 0)
        return 0;
    snprintf(src, sizeof(src), "%s%s", hier, rel);
    if (mount(src, p, NULL, MS_BIND, NULL) < 0)
        return ks_error_set(err, errno, "bind cgroup `%s` on `%s`", src, p);
    int r = remount_bind(p, flags | MS_NOSUID | MS_NODEV | MS_NOEXEC, err);
    return r < 0 ? r : 1;
}

/* The controllers and options of each cgroup v1 hierarchy mounted on the host, from mountinfo:
 * "cpu,cpuacct", "memory", "name=systemd"; plus whether a cgroup2 hierarchy is mounted at
 * /sys/fs/cgroup/unified (hybrid) or at /sys/fs/cgroup (v2). */
static int mount_cgroup(const char *dest, unsigned long flags, struct ks_error **err)
{
    struct statfs_like {
        int v2_root;
    } st = {0};
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return ks_error_set(err, errno, "open mountinfo");
    char *line = NULL;
    size_t cap = 0;
    char names[32][256];
    char opts[32][256];
    size_t n = 0;
    bool unified = false;
    while (getline(&line, &cap, f) > 0) {
        char *sep = strstr(line, " - ");
        if (sep == NULL)
            continue;
        char mp[PATH_MAX], fstype[64], src[256], sopts[1024];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
            continue;
        if (sscanf(sep + 3, "%63s %255s %1023s", fstype, src, sopts) != 3)
            continue;
        if (strcmp(fstype, "cgroup2") == 0) {
            if (strcmp(mp, "/sys/fs/cgroup") == 0)
                st.v2_root = 1;
            else if (strcmp(mp, "/sys/fs/cgroup/unified") == 0)
                unified = true;
            continue;
        }
        if (strcmp(fstype, "cgroup") != 0 || strncmp(mp, "/sys/fs/cgroup/", 15) != 0 || n >= 32)
            continue;
        const char *base = mp + 15;
        if (strchr(base, '/'))
            continue;
        snprintf(names[n], sizeof(names[n]), "%s", base);
        /* Keep only the controller names and name=...; drop rw/ro and the like. */
        char keep[256] = "";
        char *save = NULL;
        for (char *t = strtok_r(sopts, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (strcmp(t, "rw") == 0 || strcmp(t, "ro") == 0 ||
                strncmp(t, "release_agent", 13) == 0 || strcmp(t, "clone_children") == 0 ||
                strcmp(t, "xattr") == 0 || strcmp(t, "noprefix") == 0 ||
                strcmp(t, "cpuset_v2_mode") == 0)
                continue;
            if (keep[0])
                strncat(keep, ",", sizeof(keep) - strlen(keep) - 1);
            strncat(keep, t, sizeof(keep) - strlen(keep) - 1);
        }
        snprintf(opts[n], sizeof(opts[n]), "%s", keep);
        n++;
    }
    free(line);

    unsigned long base_flags = flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
    if (st.v2_root) {
        int b = bind_own_cgroup("/sys/fs/cgroup", "", dest, base_flags, err);
        if (b != 0)
            return b < 0 ? b : 0;
        if (mount("cgroup2", dest, "cgroup2", base_flags, NULL) == 0)
            return 0;
        /* Without a cgroup namespace of our own the kernel may refuse: show the host's. */
        if (mount("/sys/fs/cgroup", dest, NULL, MS_BIND | MS_REC, NULL) < 0)
            return ks_error_set(err, errno, "mount cgroup2 on `%s`", dest);
        return remount_bind(dest, base_flags, err);
    }

    if (mount("tmpfs", dest, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0)
        return ks_error_set(err, errno, "mount tmpfs on `%s`", dest);
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", dest, names[i]);
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return ks_error_set(err, errno, "mkdir `%s`", p);
        char hier[PATH_MAX];
        snprintf(hier, sizeof(hier), "/sys/fs/cgroup/%s", names[i]);
        int b = bind_own_cgroup(hier, opts[i], p, base_flags, err);
        if (b < 0)
            return b;
        if (b == 0 && mount("cgroup", p, "cgroup", base_flags | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                            opts[i]) < 0) {
            char host[PATH_MAX];
            snprintf(host, sizeof(host), "/sys/fs/cgroup/%s", names[i]);
            if (mount(host, p, NULL, MS_BIND | MS_REC, NULL) < 0)
                return ks_error_set(err, errno, "mount cgroup `%s` on `%s`", opts[i], p);
            remount_bind(p, base_flags | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
        }
        /* Comounted controllers get a link per controller, as on the host ("cpu" ->
         * "cpu,cpuacct"). */
        if (strchr(names[i], ',')) {
            char copy[256];
            snprintf(copy, sizeof(copy), "%s", names[i]);
            char *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                char l[PATH_MAX];
                snprintf(l, sizeof(l), "%s/%s", dest, t);
                (void)!symlink(names[i], l);
            }
        }
    }
    if (unified) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/unified", dest);
        mkdir(p, 0755);
        int b = bind_own_cgroup("/sys/fs/cgroup/unified", "", p, base_flags, err);
        if (b < 0)
            return b;
        if (b == 0 &&
            mount("cgroup2", p, "cgroup2", base_flags | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) <
                0 &&
            mount("/sys/fs/cgroup/unified", p, NULL, MS_BIND | MS_REC, NULL) < 0)
            return ks_error_set(err, errno, "mount cgroup2 on `%s`", p);
    }
    if (base_flags & MS_RDONLY)
        return remount_bind(dest, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, err);
    return 0;
}

/* A user namespace holding the given mappings, for an idmapped mount: a short-lived child
 * unshares it, the maps are written from here, and its /proc/PID/ns/user is kept open. */
static int userns_fd_for(json_object *uidmaps, json_object *gidmaps, struct ks_error **err)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        return ks_error_set(err, errno, "pipe");
    pid_t pid = fork();
    if (pid < 0) {
        close(ready[0]);
        close(ready[1]);
        return ks_error_set(err, errno, "fork");
    }
    if (pid == 0) {
        close(ready[0]);
        /* Our pid as the mounted /proc numbers it (a new pid namespace may number us
         * differently): that is where the maps are written. */
        char self[32] = "";
        ssize_t n = readlink("/proc/self", self, sizeof(self) - 1);
        if (unshare(CLONE_NEWUSER) < 0 || n <= 0)
            _exit(1);
        (void)!write(ready[1], self, (size_t)n);
        close(ready[1]);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char self[32] = "";
    ssize_t n = read(ready[0], self, sizeof(self) - 1);
    int r = n > 0 ? 0 : -EPERM;
    close(ready[0]);
    pid_t procpid = n > 0 ? (pid_t)atoi(self) : -1;
    int fd = -1;
    if (r < 0) {
        r = ks_error_set(err, EPERM, "create a user namespace for an idmapped mount");
    } else {
        json_object *linux_like = json_object_new_object();
        json_object_object_add(linux_like, "uidMappings", json_object_get(uidmaps));
        json_object_object_add(linux_like, "gidMappings", json_object_get(gidmaps));
        r = ks_ns_write_id_maps(procpid, linux_like, err);
        json_object_put(linux_like);
        if (r == 0) {
            char p[64];
            snprintf(p, sizeof(p), "/proc/%d/ns/user", procpid);
            fd = open(p, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                r = ks_error_set(err, errno, "open `%s`", p);
        }
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return r < 0 ? r : fd;
}

/* Bind mount with the ownership shifted by the mount's (or else the container's) id mappings. */
static int mount_idmapped(const struct ks_rootfs_opts *o, json_object *m,
                          const struct parsed_mount *pm, const char *source, int target, size_t idx,
                          struct ks_error **err)
{
    json_object *linux_obj = ks_json_get(o->spec, "linux");
    json_object *um = ks_json_get_type(m, "uidMappings", json_type_array);
    json_object *gm = ks_json_get_type(m, "gidMappings", json_type_array);
    if (um == NULL)
        um = ks_json_get_type(linux_obj, "uidMappings", json_type_array);
    if (gm == NULL)
        gm = ks_json_get_type(linux_obj, "gidMappings", json_type_array);
    if (um == NULL || gm == NULL)
        return ks_error_msg(err, "mounts[%zu]: idmap needs uidMappings and gidMappings", idx);
    bool rec = pm->idmap_recursive || (pm->flags & MS_REC);
    _cleanup_close_ int tree =
        (int)syscall(SYS_open_tree, AT_FDCWD, source,
                     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0));
    if (tree < 0)
        return ks_error_set(err, errno, "mounts[%zu]: open_tree `%s`", idx, source);
    _cleanup_close_ int userns = userns_fd_for(um, gm, err);
    if (userns < 0)
        return ks_error_wrap(err, "mounts[%zu]", idx);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns};
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (rec ? AT_RECURSIVE : 0), &attr,
                sizeof(attr)) < 0)
        return ks_error_set(err, errno, "mounts[%zu]: idmap `%s`", idx, source);
    if (syscall(SYS_move_mount, tree, "", target, "",
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        return ks_error_set(err, errno, "mounts[%zu]: attach idmapped `%s`", idx, source);
    return 0;
}

/* Copies the tree at src (a directory fd) into dst, keeping modes, owners and links: what
 * tmpcopyup puts into a fresh tmpfs from the directory it covers. */
static int copy_tree(int src, int dst, struct ks_error **err)
{
    int dup_src = fcntl(src, F_DUPFD_CLOEXEC, 3);
    if (dup_src < 0)
        return ks_error_set(err, errno, "dup");
    _cleanup_closedir_ DIR *d = fdopendir(dup_src);
    if (d == NULL) {
        close(dup_src);
        return ks_error_set(err, errno, "opendir");
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(src, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return ks_error_set(err, errno, "stat `%s`", n);
        if (S_ISDIR(st.st_mode)) {
            if (mkdirat(dst, n, st.st_mode & 07777) < 0 && errno != EEXIST)
                return ks_error_set(err, errno, "mkdir `%s`", n);
            _cleanup_close_ int s2 =
                openat(src, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            _cleanup_close_ int d2 =
                openat(dst, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (s2 < 0 || d2 < 0)
                return ks_error_set(err, errno, "open `%s`", n);
            int r = copy_tree(s2, d2, err);
            if (r < 0)
                return r;
        } else if (S_ISLNK(st.st_mode)) {
            char t[PATH_MAX];
            ssize_t l = readlinkat(src, n, t, sizeof(t) - 1);
            if (l < 0)
                return ks_error_set(err, errno, "readlink `%s`", n);
            t[l] = '\0';
            if (symlinkat(t, dst, n) < 0)
                return ks_error_set(err, errno, "symlink `%s`", n);
        } else if (S_ISREG(st.st_mode)) {
            _cleanup_close_ int in = openat(src, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            _cleanup_close_ int out =
                openat(dst, n, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
            if (in < 0 || out < 0)
                return ks_error_set(err, errno, "copy `%s`", n);
            for (off_t left = st.st_size; left > 0;) {
                ssize_t c = sendfile(out, in, NULL, (size_t)left);
                if (c <= 0)
                    return ks_error_set(err, c < 0 ? errno : EIO, "copy `%s`", n);
                left -= c;
            }
        } else if (mknodat(dst, n, st.st_mode, st.st_rdev) < 0) {
            return ks_error_set(err, errno, "mknod `%s`", n);
        }
        if (fchownat(dst, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM)
            return ks_error_set(err, errno, "chown `%s`", n);
        if (!S_ISLNK(st.st_mode))
            (void)!fchmodat(dst, n, st.st_mode & 07777, 0);
    }
    return 0;
}

static bool is_bind(json_object *m, const struct parsed_mount *pm)
{
    const char *type = ks_json_str(m, "type");
    return (pm->flags & MS_BIND) || (type && strcmp(type, "bind") == 0);
}

static int do_mount(const struct ks_rootfs_opts *o, int rootfd, json_object *m, size_t idx,
                    struct ks_error **err)
{
    const char *dest = ks_json_str(m, "destination");
    const char *type = ks_json_str(m, "type");
    const char *source = ks_json_str(m, "source");
    struct parsed_mount pm;
    int r = parse_options(m, idx, &pm, err);
    if (r < 0)
        return r;
    if (dest == NULL)
        return ks_error_msg(err, "mounts[%zu].destination: missing", idx);
    bool bind = is_bind(m, &pm);
    if (bind && type && strcmp(type, "bind") == 0 && !(pm.flags & MS_BIND))
        pm.flags |= MS_BIND; /* type "bind" alone means a (non-recursive) bind mount */

    /* A file bind-mounted needs a file as its target. */
    bool as_file = false;
    if (bind && source) {
        struct stat st;
        if (stat(source, &st) < 0)
            return ks_error_set(err, errno, "mounts[%zu]: source `%s`", idx, source);
        as_file = !S_ISDIR(st.st_mode);
    }
    _cleanup_close_ int target = ks_mkdir_p_in_root(rootfd, dest, 0755, as_file, err);
    if (target < 0)
        return ks_error_wrap(err, "mounts[%zu]: destination `%s`", idx, dest);
    char tp[64];
    ks_fd_path(target, tp, sizeof(tp));

    if (bind && pm.idmap) {
        r = mount_idmapped(o, m, &pm, source, target, idx, err);
        if (r < 0)
            return r;
    } else if (bind) {
        if (mount(source, tp, NULL, pm.flags & (MS_BIND | MS_REC), NULL) < 0)
            return ks_error_set(err, errno, "mounts[%zu]: bind `%s` on `%s`", idx, source, dest);
    } else if (type && strcmp(type, "cgroup") == 0) {
        char full[PATH_MAX];
        close(target);
        target = ks_open_in_root(rootfd, dest, O_PATH | O_DIRECTORY, 0, err);
        if (target < 0)
            return target;
        ks_fd_path(target, tp, sizeof(tp));
        /* The cgroup helper builds paths under the target, so give it a real path. */
        ssize_t l = readlink(tp, full, sizeof(full) - 1);
        if (l < 0)
            return ks_error_set(err, errno, "mounts[%zu]: resolve `%s`", idx, dest);
        full[l] = '\0';
        r = mount_cgroup(full, pm.flags, err);
        if (r < 0)
            return ks_error_wrap(err, "mounts[%zu]", idx);
        return 0;
    } else {
        const char *fstype = type ? type : "none";
        unsigned long f = pm.flags & ~MS_REMOUNT;
        const char *data = pm.data[0] ? pm.data : NULL;
        /* tmpcopyup: keep a handle on the covered directory to fill the tmpfs from it; a
         * read-only tmpfs is filled first and locked after. */
        _cleanup_close_ int covered = -EBADF;
        if (pm.tmpcopyup && strcmp(fstype, "tmpfs") == 0)
            covered = open(tp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        unsigned long first = covered >= 0 ? (f & ~MS_RDONLY) : f;
        if (mount(source ? source : fstype, tp, fstype, first, data) < 0) {
            int e = errno;
            /* sysfs cannot be mounted in a user namespace without its own network namespace:
             * show the host's instead, as other runtimes do. */
            if (strcmp(fstype, "sysfs") == 0 && (e == EPERM || e == EBUSY) &&
                mount("/sys", tp, NULL, MS_BIND | MS_REC, NULL) == 0) {
                _cleanup_close_ int again = ks_open_in_root(rootfd, dest, O_PATH, 0, err);
                char ap[64];
                if (again >= 0)
                    remount_bind(ks_fd_path(again, ap, sizeof(ap)),
                                 f | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
                return 0;
            }
            if (strcmp(fstype, "mqueue") == 0 && (e == EPERM || e == EBUSY) &&
                mount("/dev/mqueue", tp, NULL, MS_BIND | MS_REC, NULL) == 0)
                return 0;
            return ks_error_set(err, e, "mounts[%zu]: mount %s on `%s`", idx, fstype, dest);
        }
        if (covered >= 0) {
            _cleanup_close_ int fresh =
                ks_open_in_root(rootfd, dest, O_RDONLY | O_DIRECTORY, 0, err);
            if (fresh < 0 || (r = copy_tree(covered, fresh, err)) < 0)
                return ks_error_wrap(err, "mounts[%zu]: tmpcopyup `%s`", idx, dest);
            struct stat cst;
            if (fstat(covered, &cst) == 0) {
                (void)!fchmod(fresh, cst.st_mode & 07777);
                (void)!fchown(fresh, cst.st_uid, cst.st_gid);
            }
            if (f & MS_RDONLY) {
                char fp[64];
                if (mount("", ks_fd_path(fresh, fp, sizeof(fp)), NULL, MS_REMOUNT | f, data) < 0)
                    return ks_error_set(err, errno, "mounts[%zu]: remount `%s` read-only", idx,
                                        dest);
            }
        }
    }

    /* Everything else applies to the new mount, which the old fd does not see. */
    _cleanup_close_ int mnt = ks_open_in_root(rootfd, dest, O_PATH, 0, err);
    if (mnt < 0)
        return ks_error_wrap(err, "mounts[%zu]", idx);
    char mp[64];
    ks_fd_path(mnt, mp, sizeof(mp));
    if (bind && (pm.flags & ~(MS_BIND | MS_REC | MS_REMOUNT))) {
        r = remount_bind(mp, pm.flags, err);
        if (r < 0)
            return ks_error_wrap(err, "mounts[%zu]", idx);
    }
    for (size_t i = 0; i < pm.nprop; i++)
        if (mount("", mp, NULL, pm.prop[i], NULL) < 0)
            return ks_error_set(err, errno, "mounts[%zu]: set propagation of `%s`", idx, dest);
    if (pm.attr_set || pm.attr_clr) {
        r = mount_setattr_path(mp, pm.attr_set, pm.attr_clr, err);
        if (r < 0)
            return ks_error_wrap(err, "mounts[%zu]", idx);
    }
    return 0;
}

static unsigned long propagation_flag(const char *name)
{
    static const struct {
        const char *name;
        unsigned long flag;
    } t[] = {
        {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
        {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
        {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
        {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
    };
    for (size_t i = 0; name && i < KS_ELEMENTSOF(t); i++)
        if (strcmp(name, t[i].name) == 0)
            return t[i].flag;
    return 0;
}

/* The mount point that holds path, from mountinfo (the longest matching mount point). */
static int make_parent_mount_private(const char *path, struct ks_error **err)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return ks_error_set(err, errno, "open mountinfo");
    char best[PATH_MAX] = "/";
    size_t best_len = 1;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        char mp[PATH_MAX];
        if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
            continue;
        size_t l = strlen(mp);
        if (l > best_len && strncmp(path, mp, l) == 0 && (path[l] == '/' || path[l] == '\0')) {
            snprintf(best, sizeof(best), "%s", mp);
            best_len = l;
        }
    }
    free(line);
    if (mount("", best, NULL, MS_PRIVATE, NULL) < 0)
        return ks_error_set(err, errno, "make `%s` private", best);
    return 0;
}

int ks_rootfs_prepare(const struct ks_rootfs_opts *o, int *ret_rootfd, struct ks_error **err)
{
    json_object *linux_obj = ks_json_get(o->spec, "linux");
    const char *prop = ks_json_str(linux_obj, "rootfsPropagation");
    unsigned long pflag = propagation_flag(prop);
    if (mount("", "/", NULL, pflag ? pflag : (MS_SLAVE | MS_REC), NULL) < 0)
        return ks_error_set(err, errno, "set propagation of /");
    int r = make_parent_mount_private(o->rootfs, err);
    if (r < 0)
        return r;
    if (mount(o->rootfs, o->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        return ks_error_set(err, errno, "bind rootfs `%s`", o->rootfs);

    _cleanup_close_ int rootfd = open(o->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return ks_error_set(err, errno, "open rootfs `%s`", o->rootfs);

    json_object *mounts = ks_json_get_type(o->spec, "mounts", json_type_array);
    size_t n = mounts ? json_object_array_length(mounts) : 0;
    bool dev_is_bind = false, dev_mounted = false;
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(mounts, i);
        r = do_mount(o, rootfd, m, i, err);
        if (r < 0)
            return r;
        const char *dest = ks_json_str(m, "destination");
        if (dest) {
            _cleanup_free_ char *c = ks_path_clean(dest);
            if (c && strcmp(c, "/dev") == 0) {
                struct parsed_mount pm;
                parse_options(m, i, &pm, NULL);
                dev_mounted = true;
                dev_is_bind = is_bind(m, &pm);
            }
        }
    }
    if (!dev_is_bind) {
        r = ks_devices_create(rootfd, o->spec, o->userns, err);
        if (r < 0)
            return r;
    }
    (void)dev_mounted;
    *ret_rootfd = TAKE_FD(rootfd);
    return 0;
}

int ks_rootfs_pivot(const struct ks_rootfs_opts *o, int rootfd, struct ks_error **err)
{
    if (o->no_pivot) {
        if (chdir(o->rootfs) < 0)
            return ks_error_set(err, errno, "chdir `%s`", o->rootfs);
        if (mount(o->rootfs, "/", NULL, MS_MOVE, NULL) < 0)
            return ks_error_set(err, errno, "move rootfs to /");
        if (chroot(".") < 0)
            return ks_error_set(err, errno, "chroot");
    } else {
        _cleanup_close_ int oldroot = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        _cleanup_close_ int newroot = open(o->rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (oldroot < 0 || newroot < 0)
            return ks_error_set(err, errno, "open roots");
        if (fchdir(newroot) < 0)
            return ks_error_set(err, errno, "chdir rootfs");
        /* Pivot onto itself: the old root ends up stacked under the new one at ".", where it
         * can be detached without a directory for it in the rootfs. */
        if (syscall(SYS_pivot_root, ".", ".") < 0)
            return ks_error_set(err, errno, "pivot_root into `%s`", o->rootfs);
        if (fchdir(oldroot) < 0)
            return ks_error_set(err, errno, "chdir old root");
        if (mount("", ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
            return ks_error_set(err, errno, "make old root slave");
        if (umount2(".", MNT_DETACH) < 0)
            return ks_error_set(err, errno, "detach old root");
    }
    if (chdir("/") < 0)
        return ks_error_set(err, errno, "chdir /");
    (void)rootfd;
    const char *prop = ks_json_str(ks_json_get(o->spec, "linux"), "rootfsPropagation");
    unsigned long pflag = propagation_flag(prop);
    if (pflag && mount("", "/", NULL, pflag, NULL) < 0)
        return ks_error_set(err, errno, "set rootfsPropagation `%s`", prop);
    return 0;
}

static int mask_path(const char *p, struct ks_error **err)
{
    struct stat st;
    if (lstat(p, &st) < 0)
        return 0; /* nothing there to hide */
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", p, "tmpfs", MS_RDONLY, "size=0k,mode=0555") < 0)
            return ks_error_set(err, errno, "mask `%s`", p);
    } else if (mount("/dev/null", p, NULL, MS_BIND, NULL) < 0 && errno != ENOENT) {
        return ks_error_set(err, errno, "mask `%s`", p);
    }
    return 0;
}

static int readonly_path(const char *p, struct ks_error **err)
{
    if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0) {
        if (errno == ENOENT)
            return 0;
        return ks_error_set(err, errno, "bind read-only path `%s`", p);
    }
    unsigned long l = locked_flags(p);
    if (mount("", p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | (l & ~MS_RDONLY), NULL) < 0)
        return ks_error_set(err, errno, "remount `%s` read-only", p);
    return 0;
}

int ks_rootfs_finish(const struct ks_rootfs_opts *o, struct ks_error **err)
{
    json_object *linux_obj = ks_json_get(o->spec, "linux");
    int r;
    if (o->console_slave >= 0) {
        char sp[64];
        int fd = open("/dev/console", O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
        if (mount(ks_fd_path(o->console_slave, sp, sizeof(sp)), "/dev/console", NULL, MS_BIND,
                  NULL) < 0)
            ks_warn("bind /dev/console: %s", strerror(errno));
    }
    json_object *masked = ks_json_get_type(linux_obj, "maskedPaths", json_type_array);
    for (size_t i = 0; masked && i < json_object_array_length(masked); i++) {
        r = mask_path(json_object_get_string(json_object_array_get_idx(masked, i)), err);
        if (r < 0)
            return r;
    }
    json_object *ro = ks_json_get_type(linux_obj, "readonlyPaths", json_type_array);
    for (size_t i = 0; ro && i < json_object_array_length(ro); i++) {
        r = readonly_path(json_object_get_string(json_object_array_get_idx(ro, i)), err);
        if (r < 0)
            return r;
    }
    if (ks_json_bool(ks_json_get(o->spec, "root"), "readonly", false)) {
        r = remount_bind("/", MS_RDONLY | locked_flags("/"), err);
        if (r < 0)
            return ks_error_wrap(err, "root.readonly");
    }
    return 0;
}
