/* Containers and their volumes: -v, --mount, --volumes-from and the image's VOLUME entries
 * resolved at create into the container's mount points (stored in its config as
 * "MountPoints", which inspect shows as Mounts), prepared at start (mounts of volumes with
 * options, copy-up), turned into OCI mounts, and released when containers stop or go. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../base/log.h"
#include "../engine/container.h"
#include "../image/store.h"
#include "volume.h"

#define POINTS "MountPoints"

static int open_volumes(struct ks_engine *e, struct ks_volumes **ret, struct ks_error **err)
{
    return ks_volumes_open(e->root, ret, err);
}

/* A holder is alive while someone holds its container's lock (a start or remove at work) or
 * its monitor runs; a container without a directory is gone. */
static bool holder_alive(const char *id, void *userdata)
{
    struct ks_engine *e = userdata;
    _cleanup_free_ char *dir = ks_container_dir(e, id), *run = ks_container_run_dir(e, id),
                        *lock = NULL;
    if (dir == NULL || run == NULL || asprintf(&lock, "%s/lock", dir) < 0)
        return true; /* out of memory: keep the hold rather than unmount under a container */
    _cleanup_close_ int fd = open(lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno != ENOENT;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        return true;
    return ks_engine_monitor_alive(ks_engine_monitor_pid_file(run));
}

/* --- resolving at create --- */

struct resolve {
    struct ks_engine *e;
    struct ks_volumes *vs;
    json_object *points;
    char **anon; /* anonymous volumes made here, removed again on failure */
    size_t n_anon;
};

static json_object *find_point(json_object *points, const char *dest)
{
    for (size_t i = 0; i < json_object_array_length(points); i++) {
        json_object *p = json_object_array_get_idx(points, i);
        const char *d = ks_json_str(p, "Destination");
        if (d && strcmp(d, dest) == 0)
            return p;
    }
    return NULL;
}

static json_object *new_point(const char *type, const char *source, const char *dest,
                              const char *mode, bool rw, const char *prop)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, "Type", json_object_new_string(type));
    json_object_object_add(p, "Source", json_object_new_string(source));
    json_object_object_add(p, "Destination", json_object_new_string(dest));
    json_object_object_add(p, "Mode", json_object_new_string(mode));
    json_object_object_add(p, "RW", json_object_new_boolean(rw));
    json_object_object_add(p, "Propagation", json_object_new_string(prop));
    return p;
}

static int resolve_bind(struct resolve *rs, const struct ks_mount_spec *s, const char *dest,
                        json_object **ret, struct ks_error **err)
{
    _cleanup_free_ char *src = ks_path_clean(s->source);
    if (src == NULL)
        return ks_error_set(err, ENOMEM, "resolve mounts");
    struct stat st;
    if (stat(src, &st) < 0) {
        if (errno != ENOENT)
            return ks_error_set(err, errno, "bind source `%s`", src);
        if (s->from_mount)
            return ks_error_set_plain(err, ENOENT,
                                      "invalid mount config for type \"bind\": bind source path "
                                      "does not exist: %s",
                                      src);
        /* -v creates a missing source as a directory, as Docker does. */
        int r = ks_mkdir_p(src, 0755, err);
        if (r < 0)
            return ks_error_wrap(err, "create bind source");
    }
    (void)rs;
    *ret = new_point("bind", src, dest, s->mode, !s->readonly,
                     *s->propagation ? s->propagation : "rprivate");
    return 0;
}

static int resolve_volume(struct resolve *rs, const struct ks_mount_spec *s, const char *dest,
                          json_object **ret, struct ks_error **err)
{
    struct ks_volume_create_opts o = {
        .name = s->source, .labels = s->labels, .options = s->options};
    _cleanup_volume_ struct ks_volume *v = NULL;
    bool created = false;
    int r = ks_volume_create(rs->vs, &o, &v, &created, err);
    if (r < 0)
        return r;
    if (created && s->source == NULL) {
        char **a = reallocarray(rs->anon, rs->n_anon + 1, sizeof(char *));
        if (a == NULL || (a[rs->n_anon] = strdup(v->name)) == NULL) {
            if (a)
                rs->anon = a;
            ks_volume_remove(rs->vs, v->name, NULL);
            return ks_error_set(err, ENOMEM, "resolve mounts");
        }
        rs->anon = a;
        rs->n_anon++;
    }
    json_object *p = new_point("volume", v->mountpoint, dest, s->mode, !s->readonly, "");
    json_object_object_add(p, "Name", json_object_new_string(v->name));
    json_object_object_add(p, "Driver", json_object_new_string(v->driver));
    if (s->nocopy)
        json_object_object_add(p, "NoCopy", json_object_new_boolean(true));
    *ret = p;
    return 0;
}

static int resolve_spec(struct resolve *rs, const struct ks_mount_spec *s, struct ks_error **err)
{
    _cleanup_free_ char *dest = ks_path_clean(s->target);
    if (dest == NULL)
        return ks_error_set(err, ENOMEM, "resolve mounts");
    if (find_point(rs->points, dest))
        return ks_error_msg(err, "Duplicate mount point: %s", dest);
    json_object *p = NULL;
    int r = 0;
    if (s->type == KS_MOUNT_BIND) {
        r = resolve_bind(rs, s, dest, &p, err);
    } else if (s->type == KS_MOUNT_VOLUME) {
        r = resolve_volume(rs, s, dest, &p, err);
    } else {
        p = new_point("tmpfs", "", dest, "", !s->readonly, "");
        json_object *t = json_object_new_object();
        json_object_object_add(t, "SizeBytes", json_object_new_int64(s->tmpfs_size));
        json_object_object_add(t, "Mode", json_object_new_int64(s->tmpfs_mode));
        json_object_object_add(p, "TmpfsOptions", t);
    }
    if (r < 0)
        return r;
    if (p == NULL)
        return ks_error_set(err, ENOMEM, "resolve mounts");
    json_object_array_add(rs->points, p);
    return 0;
}

/* HostConfig.Binds (-v) and HostConfig.Mounts (--mount). */
static int resolve_user(struct resolve *rs, json_object *hc, struct ks_error **err)
{
    json_object *binds = ks_json_get_type(hc, "Binds", json_type_array);
    for (size_t i = 0; binds && i < json_object_array_length(binds); i++) {
        struct ks_mount_spec s;
        const char *b = json_object_get_string(json_object_array_get_idx(binds, i));
        int r = ks_mount_spec_parse_volume(b, &s, err);
        if (r >= 0) {
            r = resolve_spec(rs, &s, err);
            ks_mount_spec_clear(&s);
        }
        if (r < 0)
            return r;
    }
    json_object *mounts = ks_json_get_type(hc, "Mounts", json_type_array);
    for (size_t i = 0; mounts && i < json_object_array_length(mounts); i++) {
        struct ks_mount_spec s;
        int r = ks_mount_spec_from_json(json_object_array_get_idx(mounts, i), &s, err);
        if (r >= 0) {
            r = resolve_spec(rs, &s, err);
            ks_mount_spec_clear(&s);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* One --volumes-from entry "container[:ro|rw]": the container's mount points not already
 * given, with the access mode when one is given. */
static int resolve_from(struct resolve *rs, const char *entry, struct ks_error **err)
{
    _cleanup_free_ char *name = strdup(entry);
    if (name == NULL)
        return ks_error_set(err, ENOMEM, "volumes-from");
    char *mode = strchr(name, ':');
    if (mode)
        *mode++ = '\0';
    if (mode && strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0)
        return ks_error_msg(err, "invalid mode for volumes-from: %s", mode);
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    _cleanup_json_ json_object *config = NULL;
    int r = ks_engine_lookup(rs->e, name, &c, &config, err);
    if (r < 0)
        return r;
    json_object *pts = ks_json_get_type(config, POINTS, json_type_array);
    for (size_t i = 0; pts && i < json_object_array_length(pts); i++) {
        json_object *p = json_object_array_get_idx(pts, i);
        const char *type = ks_json_str(p, "Type"), *dest = ks_json_str(p, "Destination");
        if (type == NULL || dest == NULL || strcmp(type, "tmpfs") == 0 ||
            find_point(rs->points, dest))
            continue;
        json_object *copy = NULL;
        if (json_object_deep_copy(p, &copy, NULL) < 0)
            return ks_error_set(err, ENOMEM, "volumes-from");
        if (mode) {
            json_object_object_add(copy, "RW", json_object_new_boolean(strcmp(mode, "rw") == 0));
            json_object_object_add(copy, "Mode", json_object_new_string(mode));
        }
        json_object_array_add(rs->points, copy);
    }
    return 0;
}

/* The image's VOLUME entries, as anonymous volumes where nothing else is mounted. */
static int resolve_image(struct resolve *rs, json_object *c, json_object *hc, struct ks_error **err)
{
    json_object *vols = ks_json_get_type(c, "Volumes", json_type_object);
    json_object *tmpfs = ks_json_get_type(hc, "Tmpfs", json_type_object);
    if (vols == NULL)
        return 0;
    json_object_object_foreach(vols, path, v)
    {
        (void)v;
        _cleanup_free_ char *dest = ks_path_clean(path);
        if (dest == NULL)
            return ks_error_set(err, ENOMEM, "image volumes");
        if (dest[0] != '/' || strcmp(dest, "/") == 0 || find_point(rs->points, dest) ||
            ks_json_get(tmpfs, dest))
            continue;
        struct ks_mount_spec s = {
            .type = KS_MOUNT_VOLUME, .target = dest, .mode = "", .propagation = ""};
        int r = resolve_spec(rs, &s, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_engine_volumes_resolve(struct ks_engine *e, json_object *config, int *ret_lock,
                              struct ks_error **err)
{
    json_object *c = ks_json_get(config, "Config"), *hc = ks_json_get(config, "HostConfig");
    *ret_lock = -EBADF;
    /* Most containers mount nothing: they need neither the volumes nor their lock. */
    bool any = false;
    for (const char *const *k = (const char *const[]){"Binds", "Mounts", "VolumesFrom", NULL}; *k;
         k++) {
        json_object *a = ks_json_get_type(hc, *k, json_type_array);
        any |= a && json_object_array_length(a) > 0;
    }
    json_object *iv = ks_json_get_type(c, "Volumes", json_type_object);
    if (!any && (iv == NULL || json_object_object_length(iv) == 0))
        return 0;
    _cleanup_volumes_ struct ks_volumes *vs = NULL;
    int r = open_volumes(e, &vs, err);
    if (r < 0)
        return r;
    _cleanup_close_ int lock = ks_volumes_lock(vs, err);
    if (lock < 0)
        return lock;
    struct resolve rs = {.e = e, .vs = vs, .points = json_object_new_array()};
    if (rs.points == NULL)
        return ks_error_set(err, ENOMEM, "resolve mounts");
    r = resolve_user(&rs, hc, err);
    json_object *from = ks_json_get_type(hc, "VolumesFrom", json_type_array);
    for (size_t i = 0; r >= 0 && from && i < json_object_array_length(from); i++)
        r = resolve_from(&rs, json_object_get_string(json_object_array_get_idx(from, i)), err);
    if (r >= 0)
        r = resolve_image(&rs, c, hc, err);
    for (size_t i = 0; i < rs.n_anon; i++) {
        if (r < 0)
            ks_volume_remove(vs, rs.anon[i], NULL);
        free(rs.anon[i]);
    }
    free(rs.anon);
    if (r < 0) {
        json_object_put(rs.points);
        return r;
    }
    json_object_object_add(config, POINTS, rs.points);
    *ret_lock = TAKE_FD(lock);
    return 0;
}

/* --- start --- */

/* Fills an empty volume from the root file system's content at dest. */
static int copy_up(const struct ks_volume *v, const char *dest, int rootfd, struct ks_error **err)
{
    _cleanup_close_ int dst = open(v->mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dst < 0)
        return ks_error_set(err, errno, "open volume %s", v->name);
    if (!ks_volume_dir_empty(dst))
        return 0;
    struct ks_error *e2 = NULL;
    _cleanup_close_ int src = ks_open_in_root(rootfd, dest, O_RDONLY | O_DIRECTORY, 0, &e2);
    ks_error_free(e2);
    if (src < 0)
        return 0; /* nothing there in the image (or not a directory): nothing to copy */
    int r = ks_volume_copy_tree(src, dst, err);
    return r < 0 ? ks_error_wrap(err, "copy image content into volume %s", v->name) : 0;
}

int ks_engine_volumes_prepare(struct ks_engine *e, const char *id, json_object *config, int rootfd,
                              struct ks_error **err)
{
    json_object *pts = ks_json_get_type(config, POINTS, json_type_array);
    _cleanup_volumes_ struct ks_volumes *vs = NULL;
    _cleanup_close_ int lock = -EBADF;
    for (size_t i = 0; pts && i < json_object_array_length(pts); i++) {
        json_object *p = json_object_array_get_idx(pts, i);
        const char *type = ks_json_str(p, "Type"), *name = ks_json_str(p, "Name");
        const char *dest = ks_json_str(p, "Destination");
        if (type == NULL || strcmp(type, "volume") != 0 || name == NULL || dest == NULL)
            continue;
        int r = 0;
        if (vs == NULL && (r = open_volumes(e, &vs, err)) >= 0)
            r = lock = ks_volumes_lock(vs, err);
        if (r < 0)
            return r;
        _cleanup_volume_ struct ks_volume *v = NULL;
        r = ks_volume_get(vs, name, &v, err);
        if (r >= 0)
            r = ks_volume_acquire(vs, v, id, holder_alive, e, err);
        if (r >= 0 && !ks_json_bool(p, "NoCopy", false))
            r = copy_up(v, dest, rootfd, err);
        if (r < 0)
            return ks_error_wrap(err, "volume %s", name);
    }
    return 0;
}

static size_t depth(const char *path)
{
    size_t n = 0;
    for (const char *p = path; *p; p++)
        n += *p == '/' && p[1] != '\0';
    return n;
}

static int cmp_depth(const void *a, const void *b)
{
    json_object *x = *(json_object *const *)a, *y = *(json_object *const *)b;
    size_t dx = depth(ks_json_str(x, "Destination")), dy = depth(ks_json_str(y, "Destination"));
    return dx < dy ? -1 : dx > dy;
}

static void add_opt(json_object *opts, const char *o)
{
    json_object_array_add(opts, json_object_new_string(o));
}

static json_object *oci_mount(json_object *p)
{
    const char *type = ks_json_str(p, "Type"), *prop = ks_json_str(p, "Propagation");
    bool rw = ks_json_bool(p, "RW", true);
    json_object *m = json_object_new_object(), *opts = json_object_new_array();
    json_object_object_add(m, "destination", json_object_get(ks_json_get(p, "Destination")));
    if (strcmp(type, "tmpfs") == 0) {
        json_object *t = ks_json_get(p, "TmpfsOptions");
        char buf[48];
        json_object_object_add(m, "type", json_object_new_string("tmpfs"));
        json_object_object_add(m, "source", json_object_new_string("tmpfs"));
        add_opt(opts, "nosuid");
        add_opt(opts, "nodev");
        add_opt(opts, "noexec");
        if (ks_json_int(t, "SizeBytes", 0) > 0) {
            snprintf(buf, sizeof(buf), "size=%lld", (long long)ks_json_int(t, "SizeBytes", 0));
            add_opt(opts, buf);
        }
        if (ks_json_int(t, "Mode", 0) > 0) {
            snprintf(buf, sizeof(buf), "mode=%llo", (long long)ks_json_int(t, "Mode", 0));
            add_opt(opts, buf);
        }
    } else {
        json_object_object_add(m, "type", json_object_new_string("bind"));
        json_object_object_add(m, "source", json_object_get(ks_json_get(p, "Source")));
        add_opt(opts, "rbind");
        add_opt(opts, prop && *prop ? prop : "rprivate");
    }
    add_opt(opts, rw ? "rw" : "ro");
    json_object_object_add(m, "options", opts);
    return m;
}

int ks_engine_volumes_spec(json_object *spec, json_object *config, struct ks_error **err)
{
    json_object *pts = ks_json_get_type(config, POINTS, json_type_array);
    json_object *mounts = ks_json_get_type(spec, "mounts", json_type_array);
    size_t n = pts ? json_object_array_length(pts) : 0;
    if (n == 0)
        return 0;
    if (mounts == NULL)
        return ks_error_msg(err, "spec without mounts");
    _cleanup_free_ json_object **v = calloc(n, sizeof(*v));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "volume mounts");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *p = json_object_array_get_idx(pts, i);
        const char *type = ks_json_str(p, "Type"), *dest = ks_json_str(p, "Destination");
        const char *src = ks_json_str(p, "Source");
        if (type == NULL || dest == NULL || dest[0] != '/' ||
            (strcmp(type, "tmpfs") != 0 && (src == NULL || src[0] != '/')))
            return ks_error_msg(err, "invalid mount point in the container's config");
        v[k++] = p;
    }
    /* Parents before children, else a mount at /a would cover one at /a/b. Stable: equal
     * depths keep their order. */
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && cmp_depth(&v[j - 1], &v[j]) > 0; j--) {
            json_object *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    for (size_t i = 0; i < k; i++)
        json_object_array_add(mounts, oci_mount(v[i]));
    return 0;
}

json_object *ks_engine_volumes_inspect(json_object *config)
{
    json_object *out = json_object_new_array();
    json_object *pts = ks_json_get_type(config, POINTS, json_type_array);
    static const char *const keys[] = {"Type",   "Name", "Source", "Destination",
                                       "Driver", "Mode", "RW",     "Propagation"};
    for (size_t i = 0; out && pts && i < json_object_array_length(pts); i++) {
        json_object *p = json_object_array_get_idx(pts, i), *m = json_object_new_object();
        for (size_t k = 0; k < KS_ELEMENTSOF(keys); k++) {
            json_object *v = ks_json_get(p, keys[k]);
            if (v)
                json_object_object_add(m, keys[k], json_object_get(v));
        }
        json_object_array_add(out, m);
    }
    return out;
}

/* --- stop and remove --- */

void ks_engine_volumes_release(struct ks_engine *e, const char *id)
{
    _cleanup_volumes_ struct ks_volumes *vs = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    _cleanup_close_ int lock = -EBADF;
    if (open_volumes(e, &vs, &err) < 0)
        goto fail;
    lock = ks_volumes_lock(vs, &err);
    if (lock < 0 || ks_volume_release(vs, id, holder_alive, e, &err) < 0)
        goto fail;
    return;
fail:
    ks_debug("release volumes of %s: %s", id ? id : "-", err ? err->msg : "out of memory");
}

bool ks_engine_volumes_match(json_object *config, const char *name)
{
    json_object *pts = ks_json_get_type(config, POINTS, json_type_array);
    for (size_t i = 0; pts && i < json_object_array_length(pts); i++) {
        json_object *p = json_object_array_get_idx(pts, i);
        const char *n = ks_json_str(p, "Name"), *d = ks_json_str(p, "Destination");
        if ((n && strcmp(n, name) == 0) || (d && strcmp(d, name) == 0))
            return true;
    }
    return false;
}

struct users {
    json_object *out;
    int err;
};

/* Only configs that name a volume are parsed: most containers have none, and a thousand
 * parsed configs would be most of the time of `volume rm`. */
static int users_cb(const struct ks_db_container *c, void *userdata)
{
    struct users *u = userdata;
    if (c->config == NULL || strstr(c->config, "\"Type\":\"volume\"") == NULL)
        return 0;
    _cleanup_json_ json_object *config = NULL;
    if (ks_json_parse(c->config, strlen(c->config), &config, NULL) < 0)
        return 0;
    json_object *pts = ks_json_get_type(config, POINTS, json_type_array);
    for (size_t i = 0; pts && i < json_object_array_length(pts); i++) {
        json_object *p = json_object_array_get_idx(pts, i);
        const char *type = ks_json_str(p, "Type"), *name = ks_json_str(p, "Name");
        if (type == NULL || strcmp(type, "volume") != 0 || name == NULL)
            continue;
        json_object *entry = ks_json_get(u->out, name);
        if (entry == NULL) {
            entry = json_object_new_object();
            json_object_object_add(entry, "Links", json_object_new_int64(0));
            json_object_object_add(entry, "Containers", json_object_new_array());
            json_object_object_add(u->out, name, entry);
        }
        json_object *ids = ks_json_get(entry, "Containers");
        bool seen = false;
        for (size_t k = 0; k < json_object_array_length(ids) && !seen; k++)
            seen = strcmp(json_object_get_string(json_object_array_get_idx(ids, k)), c->id) == 0;
        if (seen)
            continue;
        json_object_array_add(ids, json_object_new_string(c->id));
        json_object_object_add(entry, "Links",
                               json_object_new_int64(json_object_array_length(ids)));
    }
    return 0;
}

int ks_engine_volumes_users(struct ks_engine *e, json_object **ret, struct ks_error **err)
{
    struct users u = {.out = json_object_new_object()};
    if (u.out == NULL)
        return ks_error_set(err, ENOMEM, "volume users");
    int r = ks_db_containers_list(ks_store_db(e->store), users_cb, &u, err);
    if (r < 0) {
        json_object_put(u.out);
        return r;
    }
    *ret = u.out;
    return 0;
}

int ks_engine_volumes_remove_anonymous(struct ks_engine *e, const char *config_json,
                                       struct ks_error **err)
{
    _cleanup_json_ json_object *config = NULL;
    int r = ks_json_parse(config_json, strlen(config_json), &config, err);
    if (r < 0)
        return r;
    json_object *pts = ks_json_get_type(config, POINTS, json_type_array);
    if (pts == NULL || json_object_array_length(pts) == 0)
        return 0;
    _cleanup_volumes_ struct ks_volumes *vs = NULL;
    r = open_volumes(e, &vs, err);
    if (r < 0)
        return r;
    _cleanup_close_ int lock = ks_volumes_lock(vs, err);
    if (lock < 0)
        return lock;
    _cleanup_json_ json_object *users = NULL;
    r = ks_engine_volumes_users(e, &users, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < json_object_array_length(pts); i++) {
        const char *name = ks_json_str(json_object_array_get_idx(pts, i), "Name");
        _cleanup_volume_ struct ks_volume *v = NULL;
        /* Another container may share it (--volumes-from): Docker keeps it then. */
        if (name == NULL || ks_json_get(users, name) || ks_volume_get(vs, name, &v, NULL) < 0 ||
            !v->anonymous)
            continue;
        r = ks_volume_remove(vs, name, err);
        if (r < 0)
            return r;
    }
    return 0;
}
