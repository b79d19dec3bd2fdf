/* Cgroup layout detection, path mapping, and the parts common to v1, v2 and the hybrid layout:
 * creating the directories in every hierarchy, dispatching resources to the v1 or v2 code,
 * moving processes, freezing, killing and removing. */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../base/log.h"

static const char *const controller_names[KS_CG__COUNT] = {
    [KS_CG_CPU] = "cpu",         [KS_CG_CPUACCT] = "cpuacct",   [KS_CG_CPUSET] = "cpuset",
    [KS_CG_MEMORY] = "memory",   [KS_CG_DEVICES] = "devices",   [KS_CG_FREEZER] = "freezer",
    [KS_CG_BLKIO] = "blkio",     [KS_CG_PIDS] = "pids",         [KS_CG_HUGETLB] = "hugetlb",
    [KS_CG_NET_CLS] = "net_cls", [KS_CG_NET_PRIO] = "net_prio", [KS_CG_PERF_EVENT] = "perf_event",
    [KS_CG_RDMA] = "rdma",       [KS_CG_MISC] = "misc",
};

/* The parent of the cgroups kiste names itself ("kiste/<id>"); it belongs to kiste. */
#define KS_CGROUP_PARENT "kiste"

/* How long rmdir waits for exiting processes to leave. */
#define RMDIR_TIMEOUT_MS 3000

const char *ks_cgroup_controller_name(enum ks_cgroup_controller c)
{
    return (unsigned)c < KS_CG__COUNT ? controller_names[c] : NULL;
}

bool ks_cgroup_json_int(json_object *o, const char *key, int64_t *ret)
{
    json_object *v = ks_json_get(o, key);
    if (v == NULL ||
        (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double)))
        return false;
    *ret = json_object_get_int64(v);
    return true;
}

void ks_cgroup_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static char *join(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

/* ---- small file helpers ---- */

static int write_impl(const char *dir, const char *file, const char *value, bool optional,
                      struct ks_error **err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
        return ks_error_set_plain(err, ENAMETOOLONG, "path too long: %s/%s", dir, file);
    /* O_TRUNC does nothing to cgroup files but gives fake trees the value alone. */
    _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && optional)
            return -ENOENT;
        return ks_error_set(err, errno, "write `%s` = `%s` in %s", file, value, dir);
    }
    /* A cgroup file takes one value per write(2); a short write is an error. */
    size_t len = strlen(value);
    ssize_t n = write(fd, value, len);
    if (n < 0)
        return ks_error_set(err, errno, "write `%s` = `%s` in %s", file, value, dir);
    if ((size_t)n != len)
        return ks_error_set(err, EIO, "write `%s` = `%s` in %s: short write", file, value, dir);
    return 0;
}

int ks_cgroup_write(const char *dir, const char *file, const char *value, struct ks_error **err)
{
    return write_impl(dir, file, value, false, err);
}

int ks_cgroup_write_opt(const char *dir, const char *file, const char *value, struct ks_error **err)
{
    return write_impl(dir, file, value, true, err);
}

int ks_cgroup_read(const char *dir, const char *file, char **ret, struct ks_error **err)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
        return ks_error_set_plain(err, ENAMETOOLONG, "path too long: %s/%s", dir, file);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "read `%s` in %s", file, dir);
    char *buf = NULL;
    size_t len = 0;
    int r = ks_read_fd(fd, 1 << 22, &buf, &len, err);
    if (r < 0)
        return ks_error_wrap(err, "read `%s` in %s", file, dir);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
        buf[--len] = '\0';
    *ret = buf;
    return 0;
}

bool ks_cgroup_file_exists(const char *dir, const char *file)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, file) >= (int)sizeof(path))
        return false;
    return access(path, F_OK) == 0;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- layout ---- */

void ks_cgroup_layout_free(struct ks_cgroup_layout *l)
{
    if (l == NULL)
        return;
    free(l->root);
    free(l->v2);
    for (size_t i = 0; i < KS_CG__COUNT; i++)
        free(l->v1[i]);
    free(l);
}
KS_DEFINE_CLEANUP(struct ks_cgroup_layout *, ks_cgroup_layout_free)

static struct ks_cgroup_layout *layout_dup(const struct ks_cgroup_layout *l)
{
    struct ks_cgroup_layout *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->mode = l->mode;
    n->root = l->root ? strdup(l->root) : NULL;
    n->v2 = l->v2 ? strdup(l->v2) : NULL;
    bool ok = (n->root || !l->root) && (n->v2 || !l->v2);
    for (size_t i = 0; i < KS_CG__COUNT; i++) {
        n->v1[i] = l->v1[i] ? strdup(l->v1[i]) : NULL;
        ok = ok && (n->v1[i] || !l->v1[i]);
    }
    if (!ok) {
        ks_cgroup_layout_free(n);
        return NULL;
    }
    return n;
}

/* Sets the v1 controllers named in a comma-separated list (mount options, or the name of a
 * directory such as "cpu,cpuacct") to dir. */
static int set_v1_controllers(struct ks_cgroup_layout *l, const char *list, const char *dir)
{
    _cleanup_free_ char *copy = strdup(list);
    if (copy == NULL)
        return -ENOMEM;
    int found = 0;
    char *save = NULL;
    for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        for (size_t c = 0; c < KS_CG__COUNT; c++) {
            if (strcmp(w, controller_names[c]) != 0 || l->v1[c] != NULL)
                continue;
            l->v1[c] = strdup(dir);
            if (l->v1[c] == NULL)
                return -ENOMEM;
            found++;
        }
    }
    return found;
}

/* Undoes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_mountinfo(char *s)
{
    char *o = s;
    for (char *i = s; *i; i++) {
        if (i[0] == '\\' && i[1] >= '0' && i[1] <= '7' && i[2] >= '0' && i[2] <= '7' &&
            i[3] >= '0' && i[3] <= '7') {
            *o++ = (char)(((i[1] - '0') << 6) | ((i[2] - '0') << 3) | (i[3] - '0'));
            i += 3;
        } else {
            *o++ = *i;
        }
    }
    *o = '\0';
}

/* Fills l from the cgroup mounts directly below root in /proc/self/mountinfo. Returns the number
 * of hierarchies found. */
static int detect_from_mountinfo(struct ks_cgroup_layout *l, const char *root,
                                 struct ks_error **err)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return 0;
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    size_t rootlen = strlen(root);
    int found = 0;
    while (getline(&line, &cap, f) > 0) {
        /* id parent major:minor root mountpoint options [optional...] - fstype source super */
        char *save = NULL, *mnt = NULL;
        char *w = strtok_r(line, " \n", &save);
        for (int i = 0; w && i < 4; i++)
            w = strtok_r(NULL, " \n", &save);
        mnt = w;
        while (w && strcmp(w, "-") != 0)
            w = strtok_r(NULL, " \n", &save);
        char *fstype = w ? strtok_r(NULL, " \n", &save) : NULL;
        char *source = fstype ? strtok_r(NULL, " \n", &save) : NULL;
        char *super = source ? strtok_r(NULL, " \n", &save) : NULL;
        if (mnt == NULL || super == NULL)
            continue;
        if (strcmp(fstype, "cgroup") != 0 && strcmp(fstype, "cgroup2") != 0)
            continue;
        unescape_mountinfo(mnt);
        if (strncmp(mnt, root, rootlen) != 0 || mnt[rootlen] != '/' ||
            strchr(mnt + rootlen + 1, '/') != NULL)
            continue;
        if (strcmp(fstype, "cgroup2") == 0) {
            if (l->v2 == NULL || strcmp(mnt + rootlen + 1, "unified") == 0) {
                free(l->v2);
                l->v2 = strdup(mnt);
                if (l->v2 == NULL)
                    return ks_error_set(err, ENOMEM, "cgroup layout");
            }
            found++;
            continue;
        }
        int r = set_v1_controllers(l, super, mnt);
        if (r < 0)
            return ks_error_set(err, -r, "cgroup layout");
        found += r;
    }
    return found;
}

/* A test's fake tree: directories named after controllers holding cgroup.procs, and "unified"
 * holding cgroup.controllers. */
static int detect_from_dirs(struct ks_cgroup_layout *l, const char *root, struct ks_error **err)
{
    _cleanup_closedir_ DIR *d = opendir(root);
    if (d == NULL)
        return ks_error_set(err, errno, "open cgroup root %s", root);
    int found = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        _cleanup_free_ char *dir = join(root, de->d_name);
        if (dir == NULL)
            return ks_error_set(err, ENOMEM, "cgroup layout");
        if (!is_dir(dir))
            continue;
        if (strcmp(de->d_name, "unified") == 0 &&
            ks_cgroup_file_exists(dir, "cgroup.controllers")) {
            l->v2 = TAKE_PTR(dir);
            found++;
            continue;
        }
        if (!ks_cgroup_file_exists(dir, "cgroup.procs"))
            continue;
        /* "cpu" is often a symbolic link to "cpu,cpuacct": name the real directory. */
        _cleanup_free_ char *real = realpath(dir, NULL);
        int r = set_v1_controllers(l, de->d_name, real ? real : dir);
        if (r < 0)
            return ks_error_set(err, -r, "cgroup layout");
        found += r;
    }
    return found;
}

int ks_cgroup_layout_detect(const char *root, struct ks_cgroup_layout **ret, struct ks_error **err)
{
    if (root == NULL)
        root = "/sys/fs/cgroup";
    _cleanup_(ks_cgroup_layout_free_p) struct ks_cgroup_layout *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return ks_error_set(err, ENOMEM, "cgroup layout");
    l->root = ks_path_clean(root);
    if (l->root == NULL)
        return ks_error_set(err, ENOMEM, "cgroup layout");

    struct statfs sfs;
    if (statfs(l->root, &sfs) < 0)
        return ks_error_set(err, errno, "statfs %s", l->root);
    if (sfs.f_type == CGROUP2_SUPER_MAGIC) {
        l->mode = KS_CGROUP_V2;
        l->v2 = strdup(l->root);
        if (l->v2 == NULL)
            return ks_error_set(err, ENOMEM, "cgroup layout");
        *ret = TAKE_PTR(l);
        return 0;
    }

    int r = detect_from_mountinfo(l, l->root, err);
    if (r < 0)
        return r;
    if (r == 0) {
        if (ks_cgroup_file_exists(l->root, "cgroup.controllers")) {
            /* A fake v2 tree (a real one is caught by statfs above). */
            l->mode = KS_CGROUP_V2;
            l->v2 = strdup(l->root);
            if (l->v2 == NULL)
                return ks_error_set(err, ENOMEM, "cgroup layout");
            *ret = TAKE_PTR(l);
            return 0;
        }
        r = detect_from_dirs(l, l->root, err);
        if (r < 0)
            return r;
    }

    bool any_v1 = false;
    for (size_t c = 0; c < KS_CG__COUNT; c++)
        any_v1 = any_v1 || l->v1[c] != NULL;
    if (any_v1)
        l->mode = l->v2 ? KS_CGROUP_HYBRID : KS_CGROUP_V1;
    else if (l->v2)
        l->mode = KS_CGROUP_V2;
    else
        return ks_error_set_plain(err, ENOENT, "no cgroup hierarchy found under %s", l->root);
    *ret = TAKE_PTR(l);
    return 0;
}

/* ---- paths ---- */

/* "a-b-c.slice" lives at "a.slice/a-b.slice/a-b-c.slice", as systemd nests slices. */
static int expand_slice(const char *slice, char **ret)
{
    size_t len = strlen(slice);
    const char *suffix = ".slice";
    size_t slen = strlen(suffix);
    if (strcmp(slice, "-.slice") == 0) {
        *ret = strdup("");
        return *ret ? 0 : -ENOMEM;
    }
    if (len <= slen || strcmp(slice + len - slen, suffix) != 0 || strchr(slice, '/') != NULL) {
        *ret = strdup(slice);
        return *ret ? 0 : -ENOMEM;
    }
    size_t base = len - slen;
    char *out = malloc(len * (len / 2 + 2) + 1);
    if (out == NULL)
        return -ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < base; i++) {
        if (slice[i] != '-' || i == 0)
            continue;
        memcpy(out + o, slice, i);
        o += i;
        memcpy(out + o, suffix, slen);
        o += slen;
        out[o++] = '/';
    }
    memcpy(out + o, slice, len);
    o += len;
    out[o] = '\0';
    *ret = out;
    return 0;
}

char *ks_cgroup_path_for(const char *cgroups_path, const char *id)
{
    _cleanup_free_ char *raw = NULL;
    if (cgroups_path == NULL || cgroups_path[0] == '\0') {
        if (asprintf(&raw, "/" KS_CGROUP_PARENT "/%s", id ? id : "") < 0)
            return NULL;
    } else if (cgroups_path[0] != '/' && strchr(cgroups_path, ':') != NULL) {
        /* systemd style: "slice:prefix:name" */
        const char *c1 = strchr(cgroups_path, ':');
        const char *c2 = strchr(c1 + 1, ':');
        _cleanup_free_ char *slice = strndup(cgroups_path, (size_t)(c1 - cgroups_path));
        _cleanup_free_ char *prefix = c2 ? strndup(c1 + 1, (size_t)(c2 - c1 - 1)) : strdup(c1 + 1);
        const char *name = c2 ? c2 + 1 : id;
        if (slice == NULL || prefix == NULL)
            return NULL;
        if (name == NULL || name[0] == '\0')
            name = id ? id : "";
        _cleanup_free_ char *sdir = NULL;
        if (expand_slice(slice[0] ? slice : "system.slice", &sdir) < 0)
            return NULL;
        size_t nlen = strlen(name);
        int n;
        if (nlen > 6 && strcmp(name + nlen - 6, ".slice") == 0)
            n = asprintf(&raw, "/%s/%s", sdir, name);
        else if (prefix[0])
            n = asprintf(&raw, "/%s/%s-%s.scope", sdir, prefix, name);
        else
            n = asprintf(&raw, "/%s/%s.scope", sdir, name);
        if (n < 0)
            return NULL;
    } else {
        if (asprintf(&raw, "/%s", cgroups_path) < 0)
            return NULL;
    }
    /* Cleaning below "/" keeps ".." from leading out of the hierarchy. */
    _cleanup_free_ char *clean = ks_path_clean(raw);
    if (clean == NULL)
        return NULL;
    const char *rel = clean;
    while (*rel == '/')
        rel++;
    if (*rel == '\0') {
        /* Never the root cgroup itself. */
        char *def = NULL;
        if (asprintf(&def, KS_CGROUP_PARENT "/%s", id ? id : "") < 0)
            return NULL;
        return def;
    }
    return strdup(rel);
}

/* ---- the cgroup object ---- */

/* One hierarchy the cgroup lives in. cpu and cpuacct may share one. */
struct cg_hier {
    char *mount;
    char *dir;
    bool v2;
    bool cpuset;
    int created_from; /* first path component this object created, or -1 */
};

#define MAX_HIER (KS_CG__COUNT + 2)

struct ks_cgroup {
    struct ks_cgroup_layout *layout;
    char *path;
    char **comps;
    size_t n_comps;
    struct cg_hier hier[MAX_HIER];
    size_t n_hier;
    char *v1dirs[KS_CG__COUNT]; /* borrowed from hier[] */
    const char *v2dir;          /* borrowed from hier[] */
    unsigned v1mask;            /* controllers driven through v1 */
};

void ks_cgroup_free(struct ks_cgroup *cg)
{
    if (cg == NULL)
        return;
    ks_cgroup_layout_free(cg->layout);
    free(cg->path);
    ks_strv_free(cg->comps);
    for (size_t i = 0; i < cg->n_hier; i++) {
        free(cg->hier[i].mount);
        free(cg->hier[i].dir);
    }
    free(cg);
}
KS_DEFINE_CLEANUP(struct ks_cgroup *, ks_cgroup_free)

const char *ks_cgroup_get_path(const struct ks_cgroup *cg)
{
    return cg->path;
}

const struct ks_cgroup_layout *ks_cgroup_get_layout(const struct ks_cgroup *cg)
{
    return cg->layout;
}

static int add_hier(struct ks_cgroup *cg, const char *mount, bool v2, struct cg_hier **ret)
{
    for (size_t i = 0; i < cg->n_hier; i++)
        if (strcmp(cg->hier[i].mount, mount) == 0) {
            *ret = &cg->hier[i];
            return 0;
        }
    if (cg->n_hier >= MAX_HIER)
        return -E2BIG;
    struct cg_hier *h = &cg->hier[cg->n_hier];
    h->mount = strdup(mount);
    h->dir = join(mount, cg->path);
    if (h->mount == NULL || h->dir == NULL) {
        free(h->mount);
        free(h->dir);
        h->mount = h->dir = NULL;
        return -ENOMEM;
    }
    h->v2 = v2;
    h->created_from = -1;
    cg->n_hier++;
    *ret = h;
    return 0;
}

/* The name=systemd hierarchy of a v1 or hybrid layout, kept in step like runc does. */
static char *systemd_hierarchy(const struct ks_cgroup_layout *l)
{
    _cleanup_free_ char *dir = join(l->root, "systemd");
    if (dir == NULL || !ks_cgroup_file_exists(dir, "cgroup.procs"))
        return NULL;
    for (size_t c = 0; c < KS_CG__COUNT; c++)
        if (l->v1[c] && strcmp(l->v1[c], dir) == 0)
            return NULL;
    return TAKE_PTR(dir);
}

static int cgroup_new(const struct ks_cgroup_layout *l, const char *path, struct ks_cgroup **ret,
                      struct ks_error **err)
{
    if (path == NULL)
        return ks_error_msg(err, "cgroup path missing");
    _cleanup_(ks_cgroup_free_p) struct ks_cgroup *cg = calloc(1, sizeof(*cg));
    if (cg == NULL)
        return ks_error_set(err, ENOMEM, "cgroup");
    cg->layout = layout_dup(l);
    if (cg->layout == NULL)
        return ks_error_set(err, ENOMEM, "cgroup");

    /* Split and check the path: no "." or "..", never the root cgroup. */
    size_t max = strlen(path) / 2 + 2;
    cg->comps = calloc(max, sizeof(char *));
    _cleanup_free_ char *copy = strdup(path);
    if (cg->comps == NULL || copy == NULL)
        return ks_error_set(err, ENOMEM, "cgroup");
    char *save = NULL;
    for (char *w = strtok_r(copy, "/", &save); w; w = strtok_r(NULL, "/", &save)) {
        if (strcmp(w, ".") == 0 || strcmp(w, "..") == 0)
            return ks_error_msg(err, "invalid cgroup path `%s`", path);
        cg->comps[cg->n_comps] = strdup(w);
        if (cg->comps[cg->n_comps] == NULL)
            return ks_error_set(err, ENOMEM, "cgroup");
        cg->n_comps++;
    }
    if (cg->n_comps == 0)
        return ks_error_msg(err, "invalid cgroup path `%s`: the root cgroup", path);
    size_t plen = 0;
    for (size_t i = 0; i < cg->n_comps; i++)
        plen += strlen(cg->comps[i]) + 1;
    cg->path = malloc(plen);
    if (cg->path == NULL)
        return ks_error_set(err, ENOMEM, "cgroup");
    cg->path[0] = '\0';
    for (size_t i = 0; i < cg->n_comps; i++) {
        if (i)
            strcat(cg->path, "/");
        strcat(cg->path, cg->comps[i]);
    }

    struct cg_hier *h;
    int r;
    if (l->mode != KS_CGROUP_V2) {
        for (size_t c = 0; c < KS_CG__COUNT; c++) {
            if (l->v1[c] == NULL)
                continue;
            r = add_hier(cg, l->v1[c], false, &h);
            if (r < 0)
                return ks_error_set(err, -r, "cgroup");
            if (c == KS_CG_CPUSET)
                h->cpuset = true;
            cg->v1mask |= 1u << c;
        }
        _cleanup_free_ char *sd = systemd_hierarchy(l);
        if (sd && (r = add_hier(cg, sd, false, &h)) < 0)
            return ks_error_set(err, -r, "cgroup");
    }
    if (l->mode != KS_CGROUP_V1 && l->v2) {
        r = add_hier(cg, l->v2, true, &h);
        if (r < 0)
            return ks_error_set(err, -r, "cgroup");
        cg->v2dir = h->dir;
    }
    /* Pointers into hier[] are stable: the array is fixed. */
    for (size_t c = 0; c < KS_CG__COUNT; c++) {
        if (l->mode == KS_CGROUP_V2 || l->v1[c] == NULL)
            continue;
        for (size_t i = 0; i < cg->n_hier; i++)
            if (strcmp(cg->hier[i].mount, l->v1[c]) == 0)
                cg->v1dirs[c] = cg->hier[i].dir;
    }
    *ret = TAKE_PTR(cg);
    return 0;
}

/* The controllers the v2 hierarchy must provide for resources. */
static unsigned v2_mask(const struct ks_cgroup *cg)
{
    return cg->layout->mode == KS_CGROUP_V1 ? 0 : ~cg->v1mask;
}

/* Creates the path in hierarchy h, enabling v2 controllers on the way down: every available one
 * in directories this call created, only the needed ones in directories that already existed
 * (never touching the root unless a resource needs it). */
static int make_dirs_once(struct ks_cgroup *cg, struct cg_hier *h, unsigned need,
                          struct ks_error **err)
{
    _cleanup_free_ char *cur = strdup(h->mount);
    if (cur == NULL)
        return ks_error_set(err, ENOMEM, "cgroup");
    bool parent_created = false;
    for (size_t i = 0; i < cg->n_comps; i++) {
        if (h->v2) {
            unsigned mask = parent_created ? KS_CG_V2_ALL_AVAILABLE : need;
            int r = ks_cgroup_v2_enable(cur, mask, i == 0 && !parent_created, err);
            if (r < 0)
                return r;
        }
        char *next = join(cur, cg->comps[i]);
        if (next == NULL)
            return ks_error_set(err, ENOMEM, "cgroup");
        free(cur);
        cur = next;
        if (mkdir(cur, 0755) == 0) {
            if (h->created_from < 0)
                h->created_from = (int)i;
            parent_created = true;
            if (h->cpuset) {
                int r = ks_cgroup_v1_cpuset_init(cur, err);
                if (r < 0)
                    return r;
            }
        } else if (errno == EEXIST && is_dir(cur)) {
            parent_created = false;
        } else if (errno == ENOENT) {
            /* A shared parent was removed meanwhile by a destroy; the caller starts over. */
            return -EAGAIN;
        } else {
            return ks_error_set(err, errno, "create cgroup %s", cur);
        }
    }
    return 0;
}

static int make_dirs(struct ks_cgroup *cg, struct cg_hier *h, unsigned need, struct ks_error **err)
{
    for (int attempt = 0;; attempt++) {
        int r = make_dirs_once(cg, h, need, err);
        if (r != -EAGAIN)
            return r;
        if (attempt == 10)
            return ks_error_set(err, ENOENT, "create cgroup %s", h->dir);
    }
}

/* Removes dir and the cgroups below it, children first, waiting a little for exiting processes
 * to leave. A missing directory is fine. */
static int remove_tree(const char *dir, int deadline_ms, struct ks_error **err)
{
    {
        _cleanup_closedir_ DIR *d = opendir(dir);
        if (d == NULL) {
            if (errno == ENOENT)
                return 0;
            return ks_error_set(err, errno, "open cgroup %s", dir);
        }
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
                strcmp(de->d_name, "..") == 0)
                continue;
            _cleanup_free_ char *sub = join(dir, de->d_name);
            if (sub == NULL)
                return ks_error_set(err, ENOMEM, "cgroup");
            int r = remove_tree(sub, deadline_ms, err);
            if (r < 0)
                return r;
        }
    }
    for (int waited = 0;; waited += 10) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || waited >= deadline_ms)
            return ks_error_set(err, errno, "remove cgroup %s", dir);
        ks_cgroup_sleep_ms(10);
    }
}

/* Undoes make_dirs after a failed create: only what this object made. */
static void remove_created(struct ks_cgroup *cg)
{
    for (size_t i = 0; i < cg->n_hier; i++) {
        struct cg_hier *h = &cg->hier[i];
        if (h->created_from < 0)
            continue;
        _cleanup_free_ char *p = strdup(h->dir);
        if (p == NULL)
            continue;
        for (int k = (int)cg->n_comps - 1; k >= h->created_from; k--) {
            if (rmdir(p) < 0 && errno != ENOENT)
                break;
            char *slash = strrchr(p, '/');
            if (slash == NULL)
                break;
            *slash = '\0';
        }
        h->created_from = -1;
    }
}

static int apply(struct ks_cgroup *cg, json_object *resources, struct ks_error **err)
{
    if (resources == NULL)
        return 0;
    int r;
    json_object *unified = ks_json_get_type(resources, "unified", json_type_object);
    if (cg->layout->mode == KS_CGROUP_V1 && unified && json_object_object_length(unified) > 0)
        return ks_error_msg(err, "linux.resources.unified needs cgroup v2, but this host has v1");
    json_object *net = ks_json_get_type(resources, "network", json_type_object);
    json_object *prios = ks_json_get_type(net, "priorities", json_type_array);
    if (cg->layout->mode == KS_CGROUP_V2 && net &&
        (json_object_object_get_ex(net, "classID", NULL) ||
         (prios && json_object_array_length(prios) > 0)))
        return ks_error_msg(err, "linux.resources.network needs the cgroup v1 net_cls and "
                                 "net_prio controllers, but this host has v2 only");
    if (cg->layout->mode != KS_CGROUP_V2) {
        r = ks_cgroup_v1_apply(cg->v1dirs, resources,
                               cg->layout->mode == KS_CGROUP_V1 ? ~0u : cg->v1mask, err);
        if (r < 0)
            return r;
    }
    if (cg->v2dir) {
        r = ks_cgroup_v2_apply(cg->v2dir, resources, v2_mask(cg), err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_cgroup_create(const struct ks_cgroup_layout *l, const char *path, json_object *resources,
                     pid_t pid, struct ks_cgroup **ret, struct ks_error **err)
{
    _cleanup_(ks_cgroup_free_p) struct ks_cgroup *cg = NULL;
    int r = cgroup_new(l, path, &cg, err);
    if (r < 0)
        return r;
    unsigned need = ks_cgroup_v2_required(resources) & v2_mask(cg);
    for (size_t i = 0; i < cg->n_hier; i++) {
        r = make_dirs(cg, &cg->hier[i], need, err);
        if (r < 0)
            goto fail;
    }
    /* Limits first, then the process: a limit below the usage of a process already inside
     * would fail (v1 memory) or reclaim it. */
    r = apply(cg, resources, err);
    if (r < 0)
        goto fail;
    if (pid > 0) {
        r = ks_cgroup_enter(cg, pid, err);
        if (r < 0)
            goto fail;
    }
    *ret = TAKE_PTR(cg);
    return 0;
fail:
    remove_created(cg);
    return ks_error_wrap(err, "cgroup %s", cg->path);
}

int ks_cgroup_open(const struct ks_cgroup_layout *l, const char *path, struct ks_cgroup **ret,
                   struct ks_error **err)
{
    _cleanup_(ks_cgroup_free_p) struct ks_cgroup *cg = NULL;
    int r = cgroup_new(l, path, &cg, err);
    if (r < 0)
        return r;
    bool any = false;
    for (size_t i = 0; i < cg->n_hier; i++)
        any = any || is_dir(cg->hier[i].dir);
    if (!any)
        return ks_error_set_plain(err, ENOENT, "cgroup %s does not exist", cg->path);
    *ret = TAKE_PTR(cg);
    return 0;
}

int ks_cgroup_enter(struct ks_cgroup *cg, pid_t pid, struct ks_error **err)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%d", (int)pid);
    /* v1 hierarchies first, the v2 one (last in hier[]) after them. */
    for (size_t i = 0; i < cg->n_hier; i++) {
        int r = ks_cgroup_write(cg->hier[i].dir, "cgroup.procs", buf, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_cgroup_update(struct ks_cgroup *cg, json_object *resources, struct ks_error **err)
{
    /* Controllers a new resource needs may not be enabled yet in the v2 parents. */
    unsigned need = ks_cgroup_v2_required(resources) & v2_mask(cg);
    if (cg->v2dir && need) {
        for (size_t i = 0; i < cg->n_hier; i++) {
            struct cg_hier *h = &cg->hier[i];
            if (!h->v2)
                continue;
            _cleanup_free_ char *cur = strdup(h->mount);
            if (cur == NULL)
                return ks_error_set(err, ENOMEM, "cgroup");
            for (size_t k = 0; k < cg->n_comps; k++) {
                int r = ks_cgroup_v2_enable(cur, need, k == 0, err);
                if (r < 0)
                    return ks_error_wrap(err, "update cgroup %s", cg->path);
                char *next = join(cur, cg->comps[k]);
                if (next == NULL)
                    return ks_error_set(err, ENOMEM, "cgroup");
                free(cur);
                cur = next;
            }
        }
    }
    int r = apply(cg, resources, err);
    if (r < 0)
        return ks_error_wrap(err, "update cgroup %s", cg->path);
    return 0;
}

int ks_cgroup_freeze(struct ks_cgroup *cg, bool frozen, struct ks_error **err)
{
    if (cg->v1dirs[KS_CG_FREEZER])
        return ks_cgroup_v1_freeze(cg->v1dirs[KS_CG_FREEZER], frozen, err);
    if (cg->v2dir)
        return ks_cgroup_v2_freeze(cg->v2dir, frozen, err);
    return ks_error_set_plain(err, ENOTSUP, "cgroup %s: no freezer", cg->path);
}

int ks_cgroup_is_frozen(struct ks_cgroup *cg, bool *ret, struct ks_error **err)
{
    if (cg->v1dirs[KS_CG_FREEZER])
        return ks_cgroup_v1_is_frozen(cg->v1dirs[KS_CG_FREEZER], ret, err);
    if (cg->v2dir)
        return ks_cgroup_v2_is_frozen(cg->v2dir, ret, err);
    return ks_error_set_plain(err, ENOTSUP, "cgroup %s: no freezer", cg->path);
}

/* The directory whose cgroup.procs lists the members: the one the freezer acts on. */
static const char *primary_dir(const struct ks_cgroup *cg)
{
    static const enum ks_cgroup_controller order[] = {KS_CG_FREEZER, KS_CG_PIDS, KS_CG_MEMORY,
                                                      KS_CG_CPU, KS_CG_DEVICES};
    if (cg->layout->mode == KS_CGROUP_V2)
        return cg->v2dir;
    for (size_t i = 0; i < KS_ELEMENTSOF(order); i++)
        if (cg->v1dirs[order[i]])
            return cg->v1dirs[order[i]];
    return cg->n_hier ? cg->hier[0].dir : NULL;
}

struct pid_list {
    pid_t *v;
    size_t n, cap;
};

static int collect_pids(const char *dir, struct pid_list *out, struct ks_error **err)
{
    _cleanup_free_ char *procs = NULL;
    int r = ks_cgroup_read(dir, "cgroup.procs", &procs, err);
    if (r < 0)
        return r;
    char *save = NULL;
    for (char *w = strtok_r(procs, "\n", &save); w; w = strtok_r(NULL, "\n", &save)) {
        char *end;
        long v = strtol(w, &end, 10);
        if (end == w || v <= 0)
            continue;
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 16;
            pid_t *nv = realloc(out->v, cap * sizeof(pid_t));
            if (nv == NULL)
                return ks_error_set(err, ENOMEM, "cgroup pids");
            out->v = nv;
            out->cap = cap;
        }
        out->v[out->n++] = (pid_t)v;
    }
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (d == NULL)
        return ks_error_set(err, errno, "open cgroup %s", dir);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        _cleanup_free_ char *sub = join(dir, de->d_name);
        if (sub == NULL)
            return ks_error_set(err, ENOMEM, "cgroup pids");
        r = collect_pids(sub, out, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_cgroup_pids(struct ks_cgroup *cg, pid_t **ret, size_t *ret_n, struct ks_error **err)
{
    const char *dir = primary_dir(cg);
    if (dir == NULL)
        return ks_error_set_plain(err, ENOENT, "cgroup %s: no hierarchy", cg->path);
    struct pid_list l = {0};
    int r = collect_pids(dir, &l, err);
    if (r < 0) {
        free(l.v);
        return r;
    }
    *ret = l.v;
    *ret_n = l.n;
    return 0;
}

int ks_cgroup_kill_all(struct ks_cgroup *cg, int sig, struct ks_error **err)
{
    /* v2 can kill the whole subtree atomically. */
    if (sig == SIGKILL && cg->layout->mode == KS_CGROUP_V2 &&
        ks_cgroup_file_exists(cg->v2dir, "cgroup.kill")) {
        int r = ks_cgroup_write(cg->v2dir, "cgroup.kill", "1", err);
        return r < 0 ? ks_error_wrap(err, "kill cgroup %s", cg->path) : 0;
    }

    /* An empty cgroup cannot fill up by itself (only a write to cgroup.procs adds to it), so it
     * needs no freezing. Skipping it matters: freezing and thawing a v1 cgroup flips a kernel
     * static key, which rewrites kernel text on every CPU, and `delete` of an exited container
     * always gets here. */
    {
        _cleanup_free_ pid_t *before = NULL;
        size_t n_before = 0;
        if (ks_cgroup_pids(cg, &before, &n_before, NULL) >= 0 && n_before == 0)
            return 0;
    }

    _cleanup_error_ struct ks_error *ferr = NULL;
    bool frozen = ks_cgroup_freeze(cg, true, &ferr) >= 0;
    if (!frozen)
        ks_debug("kill %s unfrozen: %s", cg->path, ferr ? ferr->msg : "?");

    _cleanup_free_ pid_t *pids = NULL;
    size_t n = 0;
    int r = ks_cgroup_pids(cg, &pids, &n, err);
    for (size_t i = 0; r >= 0 && i < n; i++)
        if (kill(pids[i], sig) < 0 && errno != ESRCH) {
            r = ks_error_set(err, errno, "kill %d with signal %d", (int)pids[i], sig);
            break;
        }
    if (frozen) {
        _cleanup_error_ struct ks_error *terr = NULL;
        int t = ks_cgroup_freeze(cg, false, &terr);
        if (t < 0 && r >= 0)
            r = ks_error_set_plain(err, -t, "%s", terr ? terr->msg : "thaw");
    }
    return r < 0 ? ks_error_wrap(err, "kill cgroup %s", cg->path) : 0;
}

int ks_cgroup_destroy(struct ks_cgroup *cg, struct ks_error **err)
{
    int ret = 0;
    for (size_t i = 0; i < cg->n_hier; i++) {
        struct cg_hier *h = &cg->hier[i];
        int r = remove_tree(h->dir, RMDIR_TIMEOUT_MS, err);
        if (r < 0) {
            ret = ret < 0 ? ret : r;
            continue;
        }
        /* Parents this object created go too when nothing else lives in them, and so does
         * kiste's own "kiste" parent (make_dirs copes with a parent removed under it). */
        int floor = h->created_from;
        if (strcmp(cg->comps[0], KS_CGROUP_PARENT) == 0)
            floor = 0;
        if (floor < 0)
            continue;
        _cleanup_free_ char *p = strdup(h->dir);
        for (int k = (int)cg->n_comps - 1; p && k > floor; k--) {
            char *slash = strrchr(p, '/');
            if (slash == NULL)
                break;
            *slash = '\0';
            if (rmdir(p) < 0)
                break;
        }
        h->created_from = -1;
    }
    return ret < 0 ? ks_error_wrap(err, "destroy cgroup %s", cg->path) : 0;
}

int ks_cgroup_stats(struct ks_cgroup *cg, json_object **ret, struct ks_error **err)
{
    _cleanup_json_ json_object *out = json_object_new_object();
    if (out == NULL)
        return ks_error_set(err, ENOMEM, "cgroup stats");
    int r;
    if (cg->layout->mode != KS_CGROUP_V2) {
        r = ks_cgroup_v1_stats(cg->v1dirs, out, err);
        if (r < 0)
            return ks_error_wrap(err, "stats of cgroup %s", cg->path);
    }
    if (cg->v2dir) {
        r = ks_cgroup_v2_stats(cg->v2dir, out, err);
        if (r < 0)
            return ks_error_wrap(err, "stats of cgroup %s", cg->path);
    }
    *ret = TAKE_PTR(out);
    return 0;
}
