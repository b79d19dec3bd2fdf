/* The OCI config.json of a container, generated as Docker generates it: the process from the
 * merged Config (entrypoint + cmd, env with PATH/HOSTNAME/TERM, user resolved in the rootfs),
 * Docker's default capabilities, seccomp profile, masked and read-only paths and mounts, and
 * the HostConfig's resources and security options. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../oci/caps.h"
#include "../volume/volume.h"
#include "container.h"
#include "seccomp_profile.h"

#define DEFAULT_PATH     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SHM_SIZE_DEFAULT ((int64_t)64 << 20)
#define CPU_PERIOD       100000

const char *const ks_container_default_caps[] = {
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
    NULL,
};

static const char *const masked_paths[] = {
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    NULL,
};

static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

static json_object *strv_json(const char *const *v)
{
    json_object *a = json_object_new_array();
    for (; a && v && *v; v++)
        json_object_array_add(a, json_object_new_string(*v));
    return a;
}

static void add_mount(json_object *mounts, const char *dest, const char *type, const char *src,
                      const char *const *opts)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "destination", json_object_new_string(dest));
    json_object_object_add(m, "type", json_object_new_string(type));
    json_object_object_add(m, "source", json_object_new_string(src));
    json_object_object_add(m, "options", strv_json(opts));
    json_object_array_add(mounts, m);
}

#define OPTS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* --- process --- */

static bool env_has(json_object *env, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; env && i < json_object_array_length(env); i++) {
        const char *kv = json_object_get_string(json_object_array_get_idx(env, i));
        if (kv && strncmp(kv, key, n) == 0 && kv[n] == '=')
            return true;
    }
    return false;
}

/* PATH (unless the config has one), HOSTNAME, TERM with a terminal, then the config's values,
 * which replace these: Docker's CreateDaemonEnvironment + ReplaceOrAppendEnvValues. */
static json_object *process_env(json_object *c, const char *hostname, const char *home)
{
    json_object *cenv = ks_json_get_type(c, "Env", json_type_array);
    json_object *env = json_object_new_array();
    if (!env_has(cenv, "PATH"))
        json_object_array_add(env, json_object_new_string(DEFAULT_PATH));
    char buf[320];
    snprintf(buf, sizeof(buf), "HOSTNAME=%s", hostname);
    if (!env_has(cenv, "HOSTNAME"))
        json_object_array_add(env, json_object_new_string(buf));
    if (ks_json_bool(c, "Tty", false) && !env_has(cenv, "TERM"))
        json_object_array_add(env, json_object_new_string("TERM=xterm"));
    for (size_t i = 0; cenv && i < json_object_array_length(cenv); i++)
        json_object_array_add(env, json_object_get(json_object_array_get_idx(cenv, i)));
    if (home && !env_has(env, "HOME")) {
        snprintf(buf, sizeof(buf), "HOME=%s", home);
        json_object_array_add(env, json_object_new_string(buf));
    }
    return env;
}

/* Entrypoint + Cmd; "No command specified" when both are empty. */
static int process_args(json_object *c, bool init, json_object **ret, struct ks_error **err)
{
    json_object *args = json_object_new_array();
    if (init) {
        json_object_array_add(args, json_object_new_string("/dev/init"));
        json_object_array_add(args, json_object_new_string("--"));
    }
    size_t n0 = json_object_array_length(args);
    for (const char *const *k = (const char *const[]){"Entrypoint", "Cmd", NULL}; *k; k++) {
        json_object *a = ks_json_get_type(c, *k, json_type_array);
        for (size_t i = 0; a && i < json_object_array_length(a); i++)
            json_object_array_add(args, json_object_get(json_object_array_get_idx(a, i)));
    }
    if (json_object_array_length(args) == n0) {
        json_object_put(args);
        return ks_error_msg(err, "No command specified");
    }
    *ret = args;
    return 0;
}

/* HostConfig.GroupAdd appended to the user's supplementary groups; gids grows to hold them. */
static int group_add(json_object *hc, int rootfd, gid_t **gids, size_t *n, struct ks_error **err)
{
    json_object *add = ks_json_get_type(hc, "GroupAdd", json_type_array);
    size_t extra = add ? json_object_array_length(add) : 0;
    if (extra == 0)
        return 0;
    gid_t *g = realloc(*gids, (*n + extra) * sizeof(gid_t));
    if (g == NULL)
        return ks_error_set(err, ENOMEM, "group-add");
    *gids = g;
    for (size_t i = 0; i < extra; i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(add, i));
        int r = ks_container_resolve_group(rootfd, name ? name : "", &g[*n], err);
        if (r < 0)
            return r;
        (*n)++;
    }
    return 0;
}

void ks_process_set_user(json_object *process, uid_t uid, gid_t gid, const gid_t *gids, size_t n)
{
    json_object *u = json_object_new_object();
    json_object_object_add(u, "uid", json_object_new_int64(uid));
    json_object_object_add(u, "gid", json_object_new_int64(gid));
    if (n > 0) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; i < n; i++)
            json_object_array_add(a, json_object_new_int64(gids[i]));
        json_object_object_add(u, "additionalGids", a);
    }
    json_object_object_add(process, "user", u);
}

static int process_user(json_object *process, json_object *c, json_object *hc, int rootfd,
                        char **ret_home, struct ks_error **err)
{
    uid_t uid;
    gid_t gid;
    _cleanup_free_ gid_t *gids = NULL;
    size_t n = 0;
    int r = ks_container_resolve_user(rootfd, ks_json_str(c, "User"), &uid, &gid, &gids, &n,
                                      ret_home, err);
    if (r < 0)
        return r;
    r = group_add(hc, rootfd, &gids, &n, err);
    if (r < 0)
        return r;
    ks_process_set_user(process, uid, gid, gids, n);
    return 0;
}

/* --- capabilities --- */

static bool is_all(const char *s)
{
    return strcasecmp(s, "ALL") == 0 || strcasecmp(s, "CAP_ALL") == 0;
}

/* "chown", "CAP_CHOWN" → "CAP_CHOWN" in buf; false for an unknown name. */
static bool cap_canon(const char *s, char *buf, size_t len)
{
    int n = ks_caps_from_name(s);
    if (n < 0 || ks_caps_name(n) == NULL)
        return false;
    snprintf(buf, len, "%s", ks_caps_name(n));
    return true;
}

/* The bounding set: Docker's defaults (or every capability with privileged), then --cap-add,
 * then --cap-drop; ALL in either list as Docker treats it (drop ALL wins over the defaults,
 * add ALL over drop of single ones is not Docker's rule: adds come after drop ALL). */
static int caps_list(json_object *hc, char ***ret, struct ks_error **err)
{
    bool caps[64] = {0};
    int last = ks_caps_last_cap();
    if (last < 0 || last > 63)
        last = 40;
    json_object *add = ks_json_get_type(hc, "CapAdd", json_type_array);
    json_object *drop = ks_json_get_type(hc, "CapDrop", json_type_array);
    bool add_all = ks_json_bool(hc, "Privileged", false), drop_all = false;
    for (size_t i = 0; add && i < json_object_array_length(add); i++)
        add_all |= is_all(json_object_get_string(json_object_array_get_idx(add, i)));
    for (size_t i = 0; drop && i < json_object_array_length(drop); i++)
        drop_all |= is_all(json_object_get_string(json_object_array_get_idx(drop, i)));
    char buf[64];
    if (add_all) {
        /* Every capability we hold: one outside our own bounding set cannot be granted. */
        for (int i = 0; i <= last; i++)
            caps[i] = ks_caps_name(i) != NULL && prctl(PR_CAPBSET_READ, i, 0, 0, 0) == 1;
    } else if (!drop_all) {
        for (size_t i = 0; ks_container_default_caps[i]; i++)
            caps[ks_caps_from_name(ks_container_default_caps[i])] = true;
    }
    for (size_t i = 0; !add_all && add && i < json_object_array_length(add); i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(add, i));
        if (!cap_canon(s, buf, sizeof(buf)))
            return ks_error_msg(err, "unknown capability: \"%s\"", s);
        caps[ks_caps_from_name(buf)] = true;
    }
    for (size_t i = 0; !add_all && drop && i < json_object_array_length(drop); i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(drop, i));
        if (is_all(s))
            continue;
        if (!cap_canon(s, buf, sizeof(buf)))
            return ks_error_msg(err, "unknown capability: \"%s\"", s);
        caps[ks_caps_from_name(buf)] = false;
    }
    char **v = calloc(65, sizeof(char *));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "capabilities");
    size_t n = 0;
    for (int i = 0; i <= last; i++)
        if (caps[i] && ks_caps_name(i))
            v[n++] = strdup(ks_caps_name(i));
    *ret = v;
    return 0;
}

/* --- security options --- */

struct secopts {
    bool no_new_privs, unconfined;
    const char *seccomp_json; /* the profile's content, borrowed from the config */
};

static int parse_secopts(json_object *hc, struct secopts *o, struct ks_error **err)
{
    json_object *a = ks_json_get_type(hc, "SecurityOpt", json_type_array);
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(a, i));
        if (s == NULL)
            continue;
        if (strcmp(s, "no-new-privileges") == 0 || strcmp(s, "no-new-privileges:true") == 0 ||
            strcmp(s, "no-new-privileges=true") == 0)
            o->no_new_privs = true;
        else if (strcmp(s, "no-new-privileges:false") == 0 ||
                 strcmp(s, "no-new-privileges=false") == 0)
            o->no_new_privs = false;
        else if (strcmp(s, "seccomp=unconfined") == 0 || strcmp(s, "seccomp:unconfined") == 0)
            o->unconfined = true;
        else if (strncmp(s, "seccomp=", 8) == 0)
            o->seccomp_json = s + 8;
        else if (strncmp(s, "label", 5) == 0 || strncmp(s, "apparmor", 8) == 0)
            continue; /* no LSM here: accepted as Docker accepts them without one */
        else
            return ks_error_msg(err, "invalid --security-opt: \"%s\"", s);
    }
    return 0;
}

static int add_seccomp(json_object *linux_, json_object *hc, const struct secopts *so,
                       char *const *caps, struct ks_error **err)
{
    if (so->unconfined || ks_json_bool(hc, "Privileged", false))
        return 0;
    json_object *profile = NULL;
    int r;
    if (so->seccomp_json) {
        r = ks_json_parse(so->seccomp_json, strlen(so->seccomp_json), &profile, err);
        if (r < 0)
            return ks_error_wrap(err, "seccomp profile");
    } else {
        r = ks_seccomp_default_profile((const char *const *)caps, &profile, err);
        if (r < 0)
            return r;
    }
    json_object_object_add(linux_, "seccomp", profile);
    return 0;
}

/* --- mounts --- */

static int add_tmpfs(json_object *mounts, json_object *hc, struct ks_error **err)
{
    json_object *t = ks_json_get_type(hc, "Tmpfs", json_type_object);
    if (t == NULL)
        return 0;
    json_object_object_foreach(t, dest, v)
    {
        if (dest[0] != '/')
            return ks_error_msg(err, "invalid --tmpfs destination `%s`: not absolute", dest);
        json_object *opts = strv_json(OPTS("nosuid", "nodev", "noexec"));
        const char *s = json_object_get_string(v);
        _cleanup_free_ char *copy = strdup(s ? s : "");
        for (char *save = NULL, *p = copy, *tok; (tok = strtok_r(p, ",", &save)); p = NULL) {
            /* A user's exec/dev/suid replaces the default it contradicts. */
            const char *neg = strcmp(tok, "exec") == 0   ? "noexec"
                              : strcmp(tok, "dev") == 0  ? "nodev"
                              : strcmp(tok, "suid") == 0 ? "nosuid"
                                                         : NULL;
            for (size_t i = 0; neg && i < json_object_array_length(opts); i++)
                if (strcmp(json_object_get_string(json_object_array_get_idx(opts, i)), neg) == 0)
                    json_object_array_del_idx(opts, i, 1);
            json_object_array_add(opts, json_object_new_string(tok));
        }
        json_object *m = json_object_new_object();
        json_object_object_add(m, "destination", json_object_new_string(dest));
        json_object_object_add(m, "type", json_object_new_string("tmpfs"));
        json_object_object_add(m, "source", json_object_new_string("tmpfs"));
        json_object_object_add(m, "options", opts);
        json_object_array_add(mounts, m);
    }
    return 0;
}

static json_object *default_mounts(json_object *hc, const char *init_path)
{
    bool priv = ks_json_bool(hc, "Privileged", false);
    json_object *m = json_object_new_array();
    add_mount(m, "/proc", "proc", "proc", OPTS("nosuid", "noexec", "nodev"));
    add_mount(m, "/dev", "tmpfs", "tmpfs",
              OPTS("nosuid", "strictatime", "mode=755", "size=65536k"));
    add_mount(m, "/dev/pts", "devpts", "devpts",
              OPTS("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"));
    add_mount(m, "/sys", "sysfs", "sysfs",
              priv ? OPTS("nosuid", "noexec", "nodev", "rw")
                   : OPTS("nosuid", "noexec", "nodev", "ro"));
    add_mount(m, "/sys/fs/cgroup", "cgroup", "cgroup",
              priv ? OPTS("rw", "nosuid", "noexec", "nodev", "relatime")
                   : OPTS("ro", "nosuid", "noexec", "nodev", "relatime"));
    add_mount(m, "/dev/mqueue", "mqueue", "mqueue", OPTS("nosuid", "noexec", "nodev"));
    int64_t shm = ks_json_int(hc, "ShmSize", 0);
    char size[48];
    snprintf(size, sizeof(size), "size=%lld", (long long)(shm > 0 ? shm : SHM_SIZE_DEFAULT));
    add_mount(m, "/dev/shm", "tmpfs", "shm", OPTS("nosuid", "noexec", "nodev", "mode=1777", size));
    if (init_path)
        add_mount(m, "/dev/init", "bind", init_path, OPTS("bind", "ro"));
    return m;
}

/* --- devices and resources --- */

static json_object *device_json(const char *host, const char *path, const struct stat *st)
{
    json_object *d = json_object_new_object();
    json_object_object_add(d, "path", json_object_new_string(path));
    json_object_object_add(d, "type", json_object_new_string(S_ISBLK(st->st_mode) ? "b" : "c"));
    json_object_object_add(d, "major", json_object_new_int64(major(st->st_rdev)));
    json_object_object_add(d, "minor", json_object_new_int64(minor(st->st_rdev)));
    json_object_object_add(d, "fileMode", json_object_new_int64(st->st_mode & 07777));
    json_object_object_add(d, "uid", json_object_new_int64(st->st_uid));
    json_object_object_add(d, "gid", json_object_new_int64(st->st_gid));
    (void)host;
    return d;
}

static json_object *device_rule(bool allow, const char *type, int64_t major_, int64_t minor_,
                                const char *access)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "allow", json_object_new_boolean(allow));
    if (type)
        json_object_object_add(r, "type", json_object_new_string(type));
    if (major_ >= 0)
        json_object_object_add(r, "major", json_object_new_int64(major_));
    if (minor_ >= 0)
        json_object_object_add(r, "minor", json_object_new_int64(minor_));
    json_object_object_add(r, "access", json_object_new_string(access));
    return r;
}

/* Every device node of the host's /dev (not pts, shm, mqueue), for --privileged. */
static void host_devices(const char *dir, int depth, json_object *devs)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (d == NULL || depth > 3)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, "pts") == 0 ||
            strcmp(de->d_name, "shm") == 0 || strcmp(de->d_name, "mqueue") == 0 ||
            strcmp(de->d_name, "console") == 0 || strcmp(de->d_name, "ptmx") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        struct stat st;
        if (lstat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            host_devices(path, depth + 1, devs);
        else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
            json_object_array_add(devs, device_json(path, path, &st));
    }
}

static int add_devices(json_object *linux_, json_object *res, json_object *hc,
                       struct ks_error **err)
{
    json_object *devs = json_object_new_array();
    json_object *rules = json_object_new_array();
    json_object_object_add(linux_, "devices", devs);
    json_object_object_add(res, "devices", rules);
    if (ks_json_bool(hc, "Privileged", false)) {
        host_devices("/dev", 0, devs);
        json_object_array_add(rules, device_rule(true, "a", -1, -1, "rwm"));
        return 0;
    }
    json_object_array_add(rules, device_rule(false, NULL, -1, -1, "rwm"));
    /* Docker's: mknod of any node, the rest of the defaults come from the runtime. */
    json_object_array_add(rules, device_rule(true, "c", -1, -1, "m"));
    json_object_array_add(rules, device_rule(true, "b", -1, -1, "m"));
    json_object_array_add(rules, device_rule(true, "c", 10, 200, "rwm"));
    json_object *a = ks_json_get_type(hc, "Devices", json_type_array);
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *d = json_object_array_get_idx(a, i);
        const char *host = ks_json_str(d, "PathOnHost");
        const char *in = ks_json_str(d, "PathInContainer");
        const char *perm = ks_json_str(d, "CgroupPermissions");
        struct stat st;
        if (host == NULL || stat(host, &st) < 0)
            return ks_error_set(err, errno ? errno : EINVAL,
                                "error gathering device information while adding custom device "
                                "\"%s\"",
                                host ? host : "");
        if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
            return ks_error_msg(err, "\"%s\" is not a device node", host);
        json_object_array_add(devs, device_json(host, in && *in ? in : host, &st));
        json_object_array_add(rules,
                              device_rule(true, S_ISBLK(st.st_mode) ? "b" : "c", major(st.st_rdev),
                                          minor(st.st_rdev), perm && *perm ? perm : "rwm"));
    }
    return 0;
}

static void add_int(json_object *o, const char *key, int64_t v)
{
    json_object_object_add(o, key, json_object_new_int64(v));
}

static json_object *resources(json_object *linux_, json_object *hc)
{
    json_object *res = json_object_new_object();
    json_object_object_add(linux_, "resources", res);
    json_object *mem = json_object_new_object();
    if (ks_json_int(hc, "Memory", 0) > 0)
        add_int(mem, "limit", ks_json_int(hc, "Memory", 0));
    int64_t swap = ks_json_int(hc, "MemorySwap", 0);
    if (swap > 0 || swap == -1)
        add_int(mem, "swap", swap);
    if (ks_json_int(hc, "MemoryReservation", 0) > 0)
        add_int(mem, "reservation", ks_json_int(hc, "MemoryReservation", 0));
    if (json_object_object_length(mem) > 0)
        json_object_object_add(res, "memory", mem);
    else
        json_object_put(mem);
    json_object *cpu = json_object_new_object();
    int64_t nano = ks_json_int(hc, "NanoCpus", 0);
    if (nano > 0) {
        add_int(cpu, "period", CPU_PERIOD);
        add_int(cpu, "quota", nano * CPU_PERIOD / 1000000000);
    }
    if (ks_json_int(hc, "CpuShares", 0) > 0)
        add_int(cpu, "shares", ks_json_int(hc, "CpuShares", 0));
    const char *cpus = ks_json_str(hc, "CpusetCpus");
    if (cpus && *cpus)
        json_object_object_add(cpu, "cpus", json_object_new_string(cpus));
    if (json_object_object_length(cpu) > 0)
        json_object_object_add(res, "cpu", cpu);
    else
        json_object_put(cpu);
    int64_t pids = ks_json_int(hc, "PidsLimit", 0);
    if (pids > 0) {
        json_object *p = json_object_new_object();
        add_int(p, "limit", pids);
        json_object_object_add(res, "pids", p);
    }
    return res;
}

static int rlimits(json_object *process, json_object *hc, struct ks_error **err)
{
    json_object *a = ks_json_get_type(hc, "Ulimits", json_type_array);
    if (a == NULL || json_object_array_length(a) == 0)
        return 0;
    json_object *out = json_object_new_array();
    json_object_object_add(process, "rlimits", out);
    for (size_t i = 0; i < json_object_array_length(a); i++) {
        json_object *u = json_object_array_get_idx(a, i);
        const char *name = ks_json_str(u, "Name");
        if (name == NULL || strlen(name) > 16)
            return ks_error_msg(err, "invalid ulimit");
        char type[32] = "RLIMIT_";
        for (size_t j = 0; name[j]; j++)
            type[7 + j] = (char)(name[j] >= 'a' && name[j] <= 'z' ? name[j] - 32 : name[j]);
        json_object *r = json_object_new_object();
        json_object_object_add(r, "type", json_object_new_string(type));
        add_int(r, "soft", ks_json_int(u, "Soft", 0));
        add_int(r, "hard", ks_json_int(u, "Hard", 0));
        json_object_array_add(out, r);
    }
    return 0;
}

/* The network namespace the engine prepared (ks_net_attach); without one, a new empty one. */
static void add_network(json_object *namespaces, const struct ks_spec_gen_opts *o)
{
    json_object *ns = json_object_new_object();
    json_object_object_add(ns, "type", json_object_new_string("network"));
    if (o->netns_path)
        json_object_object_add(ns, "path", json_object_new_string(o->netns_path));
    json_object_array_add(namespaces, ns);
}

static json_object *namespaces(const struct ks_spec_gen_opts *o)
{
    json_object *a = json_object_new_array();
    for (const char *const *t = OPTS("pid", "ipc", "uts", "mount", "cgroup"); *t; t++) {
        json_object *ns = json_object_new_object();
        json_object_object_add(ns, "type", json_object_new_string(*t));
        json_object_array_add(a, ns);
    }
    if (!o->host_network)
        add_network(a, o);
    return a;
}

static int build_process(json_object *spec, json_object *c, json_object *hc,
                         const struct ks_spec_gen_opts *o, char *const *caps,
                         const struct secopts *so, struct ks_error **err)
{
    json_object *p = json_object_new_object();
    json_object_object_add(spec, "process", p);
    json_object_object_add(p, "terminal", json_object_new_boolean(ks_json_bool(c, "Tty", false)));
    json_object *args = NULL;
    int r = process_args(c, ks_json_bool(hc, "Init", false) && o->init_path, &args, err);
    if (r < 0)
        return r;
    json_object_object_add(p, "args", args);
    _cleanup_free_ char *home = NULL;
    r = process_user(p, c, hc, o->rootfd, &home, err);
    if (r < 0)
        return r;
    const char *hostname = ks_json_str(c, "Hostname");
    json_object_object_add(p, "env", process_env(c, hostname ? hostname : "", home));
    const char *wd = ks_json_str(c, "WorkingDir");
    json_object_object_add(p, "cwd", json_object_new_string(wd && *wd ? wd : "/"));
    json_object *cs = json_object_new_object();
    for (const char *const *set = OPTS("bounding", "effective", "permitted"); *set; set++)
        json_object_object_add(cs, *set, strv_json((const char *const *)caps));
    json_object_object_add(p, "capabilities", cs);
    json_object_object_add(p, "noNewPrivileges", json_object_new_boolean(so->no_new_privs));
    if (ks_json_get(hc, "OomScoreAdj"))
        add_int(p, "oomScoreAdj", ks_json_int(hc, "OomScoreAdj", 0));
    return rlimits(p, hc, err);
}

/* /etc/hostname, /etc/hosts and /etc/resolv.conf bound from etc_dir as Docker binds them
 * (read-only with a read-only root), after every other mount so that one on /etc does not hide
 * them, and not where the user mounts something of their own. */
static void add_etc_mounts(json_object *mounts, json_object *hc, const char *etc_dir)
{
    bool ro = ks_json_bool(hc, "ReadonlyRootfs", false);
    for (const char *const *f = OPTS("hostname", "hosts", "resolv.conf"); *f; f++) {
        char dest[32], src[4096];
        snprintf(dest, sizeof(dest), "/etc/%s", *f);
        bool taken = false;
        for (size_t i = 0; !taken && i < json_object_array_length(mounts); i++) {
            const char *m = ks_json_str(json_object_array_get_idx(mounts, i), "destination");
            _cleanup_free_ char *d = m ? ks_path_clean(m) : NULL;
            taken = d && strcmp(d, dest) == 0;
        }
        snprintf(src, sizeof(src), "%s/%s", etc_dir, *f);
        if (!taken)
            add_mount(mounts, dest, "bind", src,
                      ro ? OPTS("rbind", "rprivate", "ro") : OPTS("rbind", "rprivate"));
    }
}

int ks_container_spec_generate(json_object *config, const struct ks_spec_gen_opts *o,
                               json_object **ret, struct ks_error **err)
{
    json_object *c = ks_json_get_type(config, "Config", json_type_object);
    json_object *hc = ks_json_get_type(config, "HostConfig", json_type_object);
    if (c == NULL)
        return ks_error_msg(err, "container config has no Config");
    struct secopts so = {0};
    int r = parse_secopts(hc, &so, err);
    if (r < 0)
        return r;
    _cleanup_strv_ char **caps = NULL;
    r = caps_list(hc, &caps, err);
    if (r < 0)
        return r;
    bool priv = ks_json_bool(hc, "Privileged", false);

    _cleanup_json_ json_object *spec = json_object_new_object();
    json_object_object_add(spec, "ociVersion", json_object_new_string("1.2.0"));
    r = build_process(spec, c, hc, o, caps, &so, err);
    if (r < 0)
        return r;
    json_object *root = json_object_new_object();
    json_object_object_add(root, "path", json_object_new_string(o->rootfs));
    json_object_object_add(root, "readonly",
                           json_object_new_boolean(ks_json_bool(hc, "ReadonlyRootfs", false)));
    json_object_object_add(spec, "root", root);
    const char *hostname = ks_json_str(c, "Hostname");
    json_object_object_add(spec, "hostname", json_object_new_string(hostname ? hostname : ""));
    const char *domain = ks_json_str(c, "Domainname");
    if (domain && *domain)
        json_object_object_add(spec, "domainname", json_object_new_string(domain));

    json_object *mounts = default_mounts(hc, ks_json_bool(hc, "Init", false) ? o->init_path : NULL);
    json_object_object_add(spec, "mounts", mounts);
    r = add_tmpfs(mounts, hc, err);
    if (r < 0)
        return r;

    json_object *linux_ = json_object_new_object();
    json_object_object_add(spec, "linux", linux_);
    r = ks_engine_volumes_spec(spec, config, err);
    if (r < 0)
        return r;
    json_object_object_add(linux_, "namespaces", namespaces(o));
    json_object *res = resources(linux_, hc);
    r = add_devices(linux_, res, hc, err);
    if (r < 0)
        return r;
    char cg[128];
    snprintf(cg, sizeof(cg), "%s/%s", o->cgroup_parent ? o->cgroup_parent : "/kiste", o->id);
    json_object_object_add(linux_, "cgroupsPath", json_object_new_string(cg));
    if (!priv) {
        json_object_object_add(linux_, "maskedPaths", strv_json(masked_paths));
        json_object_object_add(linux_, "readonlyPaths", strv_json(readonly_paths));
    }
    r = add_seccomp(linux_, hc, &so, caps, err);
    if (r < 0)
        return r;
    if (o->etc_dir)
        add_etc_mounts(mounts, hc, o->etc_dir);
    r = ks_isolation_spec_apply(spec, config, o->id, o->isolation, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(spec);
    return 0;
}
