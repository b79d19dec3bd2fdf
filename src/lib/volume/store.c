/* The local driver's volumes on disk: R/volumes/NAME/{volume.json,_data}, one lock for the
 * whole set, and the mount of volumes with options while containers use them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/hash.h"
#include "../base/json.h"
#include "../base/log.h"
#include "volume.h"

#define RECORD     "volume.json"
#define RECORD_MAX ((size_t)1 << 20)
#define NAME_MAX_  255
#define ANON_LABEL "com.docker.volume.anonymous"
#define HOLDS      "holds"

struct ks_volumes {
    char *dir; /* R/volumes */
    int dfd;
};

int ks_volumes_open(const char *root, struct ks_volumes **ret, struct ks_error **err)
{
    _cleanup_(ks_volumes_free_p) struct ks_volumes *vs = calloc(1, sizeof(*vs));
    if (vs == NULL)
        return ks_error_set(err, ENOMEM, "open volumes");
    vs->dfd = -EBADF;
    if (asprintf(&vs->dir, "%s/volumes", root) < 0) {
        vs->dir = NULL;
        return ks_error_set(err, ENOMEM, "open volumes");
    }
    int r = ks_mkdir_p(vs->dir, 0701, err);
    if (r < 0)
        return ks_error_wrap(err, "open volumes");
    vs->dfd = open(vs->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (vs->dfd < 0)
        return ks_error_set(err, errno, "open `%s`", vs->dir);
    *ret = TAKE_PTR(vs);
    return 0;
}

void ks_volumes_free(struct ks_volumes *vs)
{
    if (vs == NULL)
        return;
    if (vs->dfd >= 0)
        close(vs->dfd);
    free(vs->dir);
    free(vs);
}

int ks_volumes_lock(struct ks_volumes *vs, struct ks_error **err)
{
    int fd = openat(vs->dfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return ks_error_set(err, errno, "lock volumes");
    while (flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) {
            int en = errno;
            close(fd);
            return ks_error_set(err, en, "lock volumes");
        }
    }
    return fd;
}

static bool name_char(char c, bool first)
{
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    return alnum || (!first && (c == '_' || c == '.' || c == '-'));
}

bool ks_volume_name_valid(const char *name)
{
    if (name == NULL || strlen(name) < 2 || strlen(name) > NAME_MAX_)
        return false;
    for (size_t i = 0; name[i]; i++)
        if (!name_char(name[i], i == 0))
            return false;
    return true;
}

void ks_volume_free(struct ks_volume *v)
{
    if (v == NULL)
        return;
    free(v->name);
    free(v->driver);
    free(v->mountpoint);
    free(v->created_at);
    if (v->labels)
        json_object_put(v->labels);
    if (v->options)
        json_object_put(v->options);
    free(v);
}

void ks_volume_list_free(struct ks_volume **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        ks_volume_free(v[i]);
    free(v);
}

/* --- options --- */

int ks_volume_options_check(json_object *options, struct ks_error **err)
{
    if (options == NULL)
        return 0;
    if (!json_object_is_type(options, json_type_object))
        return ks_error_msg(err, "invalid volume options");
    json_object_object_foreach(options, k, v)
    {
        if (strcmp(k, "type") != 0 && strcmp(k, "device") != 0 && strcmp(k, "o") != 0)
            return ks_error_msg(err, "invalid option key: \"%s\"", k);
        if (!json_object_is_type(v, json_type_string))
            return ks_error_msg(err, "invalid option value for \"%s\"", k);
    }
    const char *type = ks_json_str(options, "type"), *dev = ks_json_str(options, "device");
    const char *o = ks_json_str(options, "o");
    bool bind = false;
    _cleanup_free_ char *copy = strdup(o ? o : "");
    for (char *save = NULL, *p = copy, *t; copy && (t = strtok_r(p, ",", &save)); p = NULL)
        bind |= strcmp(t, "bind") == 0 || strcmp(t, "rbind") == 0;
    if ((type == NULL || *type == '\0') && ((dev && *dev) || (o && *o)))
        return ks_error_msg(err, "missing required option: \"type\"");
    if (type && *type && strcmp(type, "tmpfs") != 0 && (dev == NULL || *dev == '\0'))
        return ks_error_msg(err, "missing required option: \"device\"");
    if (bind && (dev == NULL || dev[0] != '/'))
        return ks_error_msg(err, "invalid option: \"device\" must be an absolute path for a bind");
    return 0;
}

bool ks_volume_needs_mount(const struct ks_volume *v)
{
    const char *type = ks_json_str(v->options, "type");
    return type && *type;
}

/* --- records --- */

static int record_parse(struct ks_volumes *vs, const char *name, const char *text, size_t len,
                        struct ks_volume **ret, struct ks_error **err)
{
    _cleanup_json_ json_object *o = NULL;
    int r = ks_json_parse(text, len, &o, err);
    if (r < 0)
        return ks_error_wrap(err, "volume %s", name);
    _cleanup_volume_ struct ks_volume *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "volume %s", name);
    const char *driver = ks_json_str(o, "Driver"), *created = ks_json_str(o, "CreatedAt");
    v->name = strdup(name);
    v->driver = strdup(driver ? driver : "local");
    v->created_at = strdup(created ? created : "");
    json_object *labels = ks_json_get_type(o, "Labels", json_type_object);
    json_object *opts = ks_json_get_type(o, "Options", json_type_object);
    v->labels = labels ? json_object_get(labels) : json_object_new_object();
    v->options = opts ? json_object_get(opts) : json_object_new_object();
    v->anonymous = ks_json_bool(o, "Anonymous", false);
    if (v->name == NULL || v->driver == NULL || v->created_at == NULL ||
        asprintf(&v->mountpoint, "%s/%s/_data", vs->dir, name) < 0)
        return ks_error_set(err, ENOMEM, "volume %s", name);
    *ret = TAKE_PTR(v);
    return 0;
}

int ks_volume_get(struct ks_volumes *vs, const char *name, struct ks_volume **ret,
                  struct ks_error **err)
{
    if (!ks_volume_name_valid(name))
        return ks_error_set_plain(err, ENOENT, "get %s: no such volume", name ? name : "");
    char path[NAME_MAX_ + 32];
    snprintf(path, sizeof(path), "%s/" RECORD, name);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    struct ks_error *e2 = NULL;
    int r = ks_read_file_at(vs->dfd, path, &text, &len, &e2);
    if (r < 0) {
        ks_error_free(e2);
        if (r == -ENOENT)
            return ks_error_set_plain(err, ENOENT, "get %s: no such volume", name);
        return ks_error_set(err, -r, "read volume %s", name);
    }
    if (len > RECORD_MAX)
        return ks_error_msg(err, "volume %s: record too large", name);
    return record_parse(vs, name, text, len, ret, err);
}

static json_object *copy_object(json_object *o)
{
    json_object *c = json_object_new_object();
    if (o == NULL || c == NULL)
        return c;
    json_object_object_foreach(o, k, v) json_object_object_add(c, k, json_object_get(v));
    return c;
}

static void random_name(char out[65])
{
    unsigned char buf[32];
    if (getrandom(buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
        /* getrandom does not fail for 32 bytes once the pool is ready; the clock is unique
         * enough for the rare case, and the create below refuses a collision anyway. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(buf, &ts, sizeof(ts) < sizeof(buf) ? sizeof(ts) : sizeof(buf));
    }
    ks_hex(buf, sizeof(buf), out);
}

static bool same_object(json_object *a, json_object *b)
{
    size_t na = a ? (size_t)json_object_object_length(a) : 0;
    size_t nb = b ? (size_t)json_object_object_length(b) : 0;
    if (na != nb)
        return false;
    if (na == 0)
        return true;
    json_object_object_foreach(a, k, v)
    {
        const char *w = ks_json_str(b, k);
        if (w == NULL || strcmp(w, json_object_get_string(v)) != 0)
            return false;
    }
    return true;
}

/* An existing volume asked for again: fine when nothing new is asked of it. */
static int create_existing(struct ks_volume *v, const struct ks_volume_create_opts *o,
                           struct ks_error **err)
{
    if (o->options && json_object_object_length(o->options) > 0 &&
        !same_object(o->options, v->options))
        return ks_error_set_plain(err, EEXIST, "volume %s already exists with different options",
                                  v->name);
    return 0;
}

static int write_record(struct ks_volumes *vs, int vdfd, const struct ks_volume *v,
                        struct ks_error **err)
{
    _cleanup_json_ json_object *o = json_object_new_object();
    if (o == NULL)
        return ks_error_set(err, ENOMEM, "volume record");
    json_object_object_add(o, "Name", json_object_new_string(v->name));
    json_object_object_add(o, "Driver", json_object_new_string(v->driver));
    json_object_object_add(o, "Labels", json_object_get(v->labels));
    json_object_object_add(o, "Options", json_object_get(v->options));
    json_object_object_add(o, "CreatedAt", json_object_new_string(v->created_at));
    json_object_object_add(o, "Anonymous", json_object_new_boolean(v->anonymous));
    const char *text = ks_json_plain(o);
    (void)vs;
    return ks_write_file_atomic(vdfd, RECORD, text, strlen(text), 0600, err);
}

static int new_volume(struct ks_volumes *vs, const char *name,
                      const struct ks_volume_create_opts *o, struct ks_volume **ret,
                      struct ks_error **err)
{
    _cleanup_volume_ struct ks_volume *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "create volume");
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
    v->name = strdup(name);
    v->driver = strdup("local");
    v->created_at = strdup(created);
    v->labels = copy_object(o->labels);
    v->options = copy_object(o->options);
    v->anonymous = o->name == NULL && !o->named;
    if (v->anonymous && v->labels)
        json_object_object_add(v->labels, ANON_LABEL, json_object_new_string(""));
    if (v->name == NULL || v->driver == NULL || v->created_at == NULL || v->labels == NULL ||
        v->options == NULL || asprintf(&v->mountpoint, "%s/%s/_data", vs->dir, name) < 0)
        return ks_error_set(err, ENOMEM, "create volume");
    *ret = TAKE_PTR(v);
    return 0;
}

int ks_volume_create(struct ks_volumes *vs, const struct ks_volume_create_opts *o,
                     struct ks_volume **ret, bool *ret_created, struct ks_error **err)
{
    if (o->driver && *o->driver && strcmp(o->driver, "local") != 0)
        return ks_error_msg(err, "error looking up volume plugin %s: plugin \"%s\" not found",
                            o->driver, o->driver);
    char anon[65];
    const char *name = o->name;
    if (name == NULL) {
        random_name(anon);
        name = anon;
    } else if (!ks_volume_name_valid(name)) {
        return ks_error_msg(err,
                            "create %s: \"%s\" includes invalid characters for a local volume "
                            "name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you "
                            "intended to pass a host directory, use absolute path",
                            name, name);
    }
    int r = ks_volume_options_check(o->options, err);
    if (r < 0)
        return ks_error_wrap(err, "create %s", name);
    _cleanup_volume_ struct ks_volume *v = NULL;
    struct ks_error *e2 = NULL;
    r = ks_volume_get(vs, name, &v, &e2);
    if (r >= 0 || r != -ENOENT) {
        if (r < 0) {
            *err = e2;
            return r;
        }
        r = create_existing(v, o, err);
        if (r < 0)
            return r;
        if (ret_created)
            *ret_created = false;
        if (ret)
            *ret = TAKE_PTR(v);
        return 0;
    }
    ks_error_free(e2);
    r = new_volume(vs, name, o, &v, err);
    if (r < 0)
        return r;
    /* The directory and its data first, the record last: a crash in between leaves a
     * directory without a record, which is not a volume and is replaced on the next create. */
    if (mkdirat(vs->dfd, name, 0701) < 0 && errno != EEXIST)
        return ks_error_set(err, errno, "create volume %s", name);
    _cleanup_close_ int vdfd =
        openat(vs->dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (vdfd < 0)
        return ks_error_set(err, errno, "create volume %s", name);
    if (mkdirat(vdfd, "_data", 0755) < 0 && errno != EEXIST)
        return ks_error_set(err, errno, "create volume %s", name);
    r = write_record(vs, vdfd, v, err);
    if (r < 0)
        return ks_error_wrap(err, "create volume %s", name);
    if (ret_created)
        *ret_created = true;
    if (ret)
        *ret = TAKE_PTR(v);
    return 0;
}

static int cmp_volume(const void *a, const void *b)
{
    return strcmp((*(struct ks_volume *const *)a)->name, (*(struct ks_volume *const *)b)->name);
}

int ks_volume_list(struct ks_volumes *vs, struct ks_volume ***ret, size_t *ret_n,
                   struct ks_error **err)
{
    int dfd = fcntl(vs->dfd, F_DUPFD_CLOEXEC, 3);
    if (dfd < 0)
        return ks_error_set(err, errno, "list volumes");
    _cleanup_closedir_ DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return ks_error_set(err, errno, "list volumes");
    }
    rewinddir(d);
    struct ks_volume **v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!ks_volume_name_valid(de->d_name))
            continue;
        struct ks_volume *one = NULL;
        if (ks_volume_get(vs, de->d_name, &one, NULL) < 0)
            continue; /* a directory without a record is not a volume */
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct ks_volume **nv = reallocarray(v, cap, sizeof(*nv));
            if (nv == NULL) {
                ks_volume_free(one);
                ks_volume_list_free(v, n);
                return ks_error_set(err, ENOMEM, "list volumes");
            }
            v = nv;
        }
        v[n++] = one;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), cmp_volume);
    *ret = v;
    *ret_n = n;
    return 0;
}

/* Whether path is the root of a mount. */
static bool is_mounted(const char *path)
{
    struct statx stx;
    if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &stx) < 0)
        return false;
    return (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
           (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static int unmount_data(const struct ks_volume *v, struct ks_error **err)
{
    while (is_mounted(v->mountpoint)) {
        if (umount2(v->mountpoint, MNT_DETACH) < 0)
            return ks_error_set(err, errno, "unmount volume %s", v->name);
    }
    return 0;
}

int ks_volume_remove(struct ks_volumes *vs, const char *name, struct ks_error **err)
{
    _cleanup_volume_ struct ks_volume *v = NULL;
    int r = ks_volume_get(vs, name, &v, err);
    if (r < 0)
        return r;
    r = unmount_data(v, err);
    if (r < 0)
        return r;
    char path[NAME_MAX_ + 32];
    snprintf(path, sizeof(path), "%s/" RECORD, name);
    if (unlinkat(vs->dfd, path, 0) < 0 && errno != ENOENT)
        return ks_error_set(err, errno, "remove volume %s", name);
    /* A bind volume's _data was a mount point: its device's content is not ours to delete,
     * and it is unmounted above, so only the empty directory goes. */
    r = ks_rm_rf_at(vs->dfd, name, err);
    return r < 0 ? ks_error_wrap(err, "remove volume %s", name) : 0;
}

json_object *ks_volume_json(const struct ks_volume *v)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    json_object_object_add(o, "CreatedAt", json_object_new_string(v->created_at));
    json_object_object_add(o, "Driver", json_object_new_string(v->driver));
    json_object_object_add(o, "Labels", json_object_get(v->labels));
    json_object_object_add(o, "Mountpoint", json_object_new_string(v->mountpoint));
    json_object_object_add(o, "Name", json_object_new_string(v->name));
    json_object_object_add(o, "Options",
                           json_object_object_length(v->options) > 0 ? json_object_get(v->options)
                                                                     : NULL);
    json_object_object_add(o, "Scope", json_object_new_string("local"));
    return o;
}

int64_t ks_volume_size(const struct ks_volume *v)
{
    _cleanup_close_ int fd = open(v->mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? 0 : ks_dir_size(fd);
}

/* --- mounting --- */

static const struct {
    const char *name;
    unsigned long set, clear;
} mount_flags[] = {
    {"ro", MS_RDONLY, 0},
    {"rw", 0, MS_RDONLY},
    {"nosuid", MS_NOSUID, 0},
    {"suid", 0, MS_NOSUID},
    {"nodev", MS_NODEV, 0},
    {"dev", 0, MS_NODEV},
    {"noexec", MS_NOEXEC, 0},
    {"exec", 0, MS_NOEXEC},
    {"sync", MS_SYNCHRONOUS, 0},
    {"async", 0, MS_SYNCHRONOUS},
    {"noatime", MS_NOATIME, 0},
    {"relatime", MS_RELATIME, 0},
    {"strictatime", MS_STRICTATIME, 0},
    {"bind", MS_BIND, 0},
    {"rbind", MS_BIND | MS_REC, 0},
    {"defaults", 0, 0},
};

/* The local driver's mount: o's flags as mount(2) flags, the rest as the data string. */
static int mount_volume(const struct ks_volume *v, struct ks_error **err)
{
    const char *type = ks_json_str(v->options, "type"), *dev = ks_json_str(v->options, "device");
    const char *o = ks_json_str(v->options, "o");
    unsigned long flags = 0;
    _cleanup_free_ char *copy = strdup(o ? o : ""), *data = calloc(1, strlen(o ? o : "") + 1);
    if (copy == NULL || data == NULL)
        return ks_error_set(err, ENOMEM, "mount volume %s", v->name);
    for (char *save = NULL, *p = copy, *t; (t = strtok_r(p, ",", &save)); p = NULL) {
        bool known = false;
        for (size_t i = 0; i < KS_ELEMENTSOF(mount_flags) && !known; i++) {
            if (strcmp(t, mount_flags[i].name) == 0) {
                flags = (flags | mount_flags[i].set) & ~mount_flags[i].clear;
                known = true;
            }
        }
        if (!known) {
            if (*data)
                strcat(data, ",");
            strcat(data, t);
        }
    }
    const char *fstype = type && strcmp(type, "none") != 0 ? type : NULL;
    const char *source = dev && *dev ? dev : (fstype ? fstype : "none");
    if (mount(source, v->mountpoint, fstype, flags & ~MS_RDONLY, *data ? data : NULL) < 0)
        return ks_error_set(err, errno, "mount volume %s (%s on %s)", v->name, source,
                            v->mountpoint);
    /* A bind ignores its flags: read-only takes a remount. */
    if ((flags & MS_BIND) && (flags & MS_RDONLY) &&
        mount("", v->mountpoint, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
        int e = errno;
        umount2(v->mountpoint, MNT_DETACH);
        return ks_error_set(err, e, "mount volume %s read-only", v->name);
    }
    if (!(flags & MS_BIND) && (flags & MS_RDONLY) &&
        mount("", v->mountpoint, NULL, MS_REMOUNT | MS_RDONLY | (flags & ~MS_RDONLY),
              *data ? data : NULL) < 0) {
        int e = errno;
        umount2(v->mountpoint, MNT_DETACH);
        return ks_error_set(err, e, "mount volume %s read-only", v->name);
    }
    return 0;
}

static int open_holds(struct ks_volumes *vs, const char *name, bool create, struct ks_error **err)
{
    char path[NAME_MAX_ + 32];
    snprintf(path, sizeof(path), "%s/" HOLDS, name);
    if (create && mkdirat(vs->dfd, path, 0700) < 0 && errno != EEXIST)
        return ks_error_set(err, errno, "hold volume %s", name);
    int fd = openat(vs->dfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : ks_error_set(err, errno, "hold volume %s", name);
    return fd;
}

/* Drops holder's hold and the dead ones from one volume's holds directory (its fd, consumed);
 * returns how many holds are left. */
static int sweep_holds(int hfd, const char *holder, ks_volume_alive_fn alive, void *userdata)
{
    _cleanup_closedir_ DIR *d = fdopendir(hfd);
    if (d == NULL) {
        close(hfd);
        return -errno;
    }
    int left = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        bool drop =
            (holder && strcmp(de->d_name, holder) == 0) || (alive && !alive(de->d_name, userdata));
        if (drop)
            unlinkat(dirfd(d), de->d_name, 0);
        else
            left++;
    }
    return left;
}

int ks_volume_acquire(struct ks_volumes *vs, const struct ks_volume *v, const char *holder,
                      ks_volume_alive_fn alive, void *userdata, struct ks_error **err)
{
    if (!ks_volume_needs_mount(v))
        return 0;
    int hfd = open_holds(vs, v->name, true, err);
    if (hfd < 0)
        return hfd;
    _cleanup_close_ int keep = fcntl(hfd, F_DUPFD_CLOEXEC, 3);
    int left = sweep_holds(hfd, NULL, alive, userdata);
    if (keep < 0 || left < 0)
        return ks_error_set(err, keep < 0 ? errno : -left, "hold volume %s", v->name);
    /* The hold comes first: a crash after the mount then leaves a hold whose container is not
     * running, which the next sweep drops together with the mount. */
    _cleanup_close_ int fd =
        openat(keep, holder, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return ks_error_set(err, errno, "hold volume %s", v->name);
    if (is_mounted(v->mountpoint))
        return 0;
    int r = mount_volume(v, err);
    if (r < 0)
        unlinkat(keep, holder, 0);
    return r;
}

int ks_volume_release(struct ks_volumes *vs, const char *holder, ks_volume_alive_fn alive,
                      void *userdata, struct ks_error **err)
{
    int dfd = fcntl(vs->dfd, F_DUPFD_CLOEXEC, 3);
    if (dfd < 0)
        return ks_error_set(err, errno, "release volumes");
    _cleanup_closedir_ DIR *d = fdopendir(dfd);
    if (d == NULL) {
        close(dfd);
        return ks_error_set(err, errno, "release volumes");
    }
    rewinddir(d);
    int ret = 0;
    struct dirent *de;
    /* Only volumes with options have holds: the others' records are not even read. */
    while ((de = readdir(d)) != NULL) {
        if (!ks_volume_name_valid(de->d_name))
            continue;
        int hfd = open_holds(vs, de->d_name, false, NULL);
        if (hfd < 0)
            continue;
        int left = sweep_holds(hfd, holder, alive, userdata);
        _cleanup_volume_ struct ks_volume *v = NULL;
        if (left != 0 || ks_volume_get(vs, de->d_name, &v, NULL) < 0 || !ks_volume_needs_mount(v))
            continue;
        int q = unmount_data(v, err);
        if (q < 0 && ret == 0)
            ret = q;
    }
    return ret;
}
