/* Isolation à la carte: which namespaces a container has of its own, shares with the host or
 * joins from another container (Docker's PidMode, IpcMode, UTSMode, CgroupnsMode, UsernsMode),
 * its namespaced sysctls and its cgroup parent. The modes are validated at create, stored in
 * HostConfig as Docker stores them, and applied to the generated config.json at each start. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "container.h"

#define SYSCTL_KEY_MAX    256
#define SYSCTL_VALUE_MAX  4096
#define CGROUP_PARENT_MAX 512

/* Docker's IPC sysctls; fs.mqueue.* and net.* are prefixes. */
static const char *const ipc_sysctls[] = {
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
    "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
};

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "container:NAME" → NAME; NULL when s is not of that form or NAME is empty. */
static const char *container_target(const char *s)
{
    return starts_with(s, "container:") && s[10] != '\0' ? s + 10 : NULL;
}

struct mode_name {
    const char *name;
    enum ks_ns_mode mode;
};

/* One of HostConfig's mode fields against the names it allows (table), "container:NAME" when
 * joinable; Docker's "invalid … mode" message otherwise. */
static int parse_mode(json_object *hc, const char *key, const char *what,
                      const struct mode_name *table, size_t n, bool joinable, enum ks_ns_mode def,
                      enum ks_ns_mode *ret, const char **ret_target, struct ks_error **err)
{
    json_object *v = ks_json_get(hc, key);
    if (v && !json_object_is_type(v, json_type_string))
        return ks_error_msg(err, "invalid %s mode: not a string", what);
    const char *s = v ? json_object_get_string(v) : "";
    *ret = def;
    if (*s == '\0')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, table[i].name) == 0) {
            *ret = table[i].mode;
            return 0;
        }
    if (joinable && container_target(s)) {
        *ret = KS_NS_MODE_CONTAINER;
        *ret_target = container_target(s);
        return 0;
    }
    return ks_error_msg(err, "invalid %s mode: %s", what, s);
}

int ks_isolation_parse(json_object *hc, bool cgroupns_private, struct ks_isolation *ret,
                       struct ks_error **err)
{
    static const struct mode_name pid[] = {{"host", KS_NS_MODE_HOST}};
    static const struct mode_name ipc[] = {
        {"private", KS_NS_MODE_PRIVATE},
        {"shareable", KS_NS_MODE_SHAREABLE},
        {"host", KS_NS_MODE_HOST},
        {"none", KS_NS_MODE_NONE},
    };
    static const struct mode_name cgns[] = {
        {"private", KS_NS_MODE_PRIVATE},
        {"host", KS_NS_MODE_HOST},
    };
    *ret = (struct ks_isolation){0};
    int r = parse_mode(hc, "PidMode", "PID", pid, KS_ELEMENTSOF(pid), true, KS_NS_MODE_PRIVATE,
                       &ret->pid, &ret->pid_container, err);
    if (r >= 0)
        r = parse_mode(hc, "IpcMode", "IPC", ipc, KS_ELEMENTSOF(ipc), true, KS_NS_MODE_PRIVATE,
                       &ret->ipc, &ret->ipc_container, err);
    if (r >= 0)
        r = parse_mode(hc, "UTSMode", "UTS", pid, KS_ELEMENTSOF(pid), false, KS_NS_MODE_PRIVATE,
                       &ret->uts, NULL, err);
    if (r >= 0)
        r = parse_mode(hc, "CgroupnsMode", "cgroup namespace", cgns, KS_ELEMENTSOF(cgns), false,
                       cgroupns_private ? KS_NS_MODE_PRIVATE : KS_NS_MODE_HOST, &ret->cgroupns,
                       NULL, err);
    if (r < 0)
        return r;
    const char *userns = ks_json_str(hc, "UsernsMode");
    if (userns && *userns && strcmp(userns, "host") != 0)
        return ks_error_msg(err,
                            "invalid USER mode: %s (only \"host\" is supported: user namespace "
                            "remapping is not available yet)",
                            userns);
    return 0;
}

bool ks_sysctl_namespaced(const char *key)
{
    for (size_t i = 0; i < KS_ELEMENTSOF(ipc_sysctls); i++)
        if (strcmp(key, ipc_sysctls[i]) == 0)
            return true;
    return (starts_with(key, "fs.mqueue.") && key[10]) || (starts_with(key, "net.") && key[4]);
}

static bool sysctl_is_net(const char *key)
{
    return starts_with(key, "net.");
}

/* A key names a file under /proc/sys: letters, digits, '.', '_', '-' (and '/' as runc allows
 * for interface names with dots), no empty component. */
static bool sysctl_key_sane(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n >= SYSCTL_KEY_MAX || key[0] == '.' || key[n - 1] == '.' || strstr(key, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/'))
            return false;
    }
    return true;
}

static int validate_sysctls(json_object *hc, const struct ks_isolation *iso, struct ks_error **err)
{
    json_object *sc = ks_json_get(hc, "Sysctls");
    if (sc == NULL || json_object_is_type(sc, json_type_null))
        return 0;
    if (!json_object_is_type(sc, json_type_object))
        return ks_error_msg(err, "HostConfig.Sysctls: not an object");
    const char *net = ks_json_str(hc, "NetworkMode");
    bool host_net = net && strcmp(net, "host") == 0;
    json_object_object_foreach(sc, key, val)
    {
        if (!sysctl_key_sane(key) || !ks_sysctl_namespaced(key))
            return ks_error_msg(err, "sysctl '%s' is not whitelisted", key);
        const char *v =
            json_object_is_type(val, json_type_string) ? json_object_get_string(val) : NULL;
        if (v == NULL || strlen(v) >= SYSCTL_VALUE_MAX || strpbrk(v, "\n\r"))
            return ks_error_msg(err, "sysctl '%s': invalid value", key);
        if (sysctl_is_net(key) && host_net)
            return ks_error_msg(err, "sysctl '%s' is not allowed in the host's network namespace",
                                key);
        if (!sysctl_is_net(key) && iso->ipc == KS_NS_MODE_HOST)
            return ks_error_msg(err, "sysctl '%s' is not allowed in the host's IPC namespace", key);
    }
    return 0;
}

/* With check_hostname, a Hostname in Config is the user's (before the create's merge gives
 * every container one). */
static int validate(json_object *config, bool check_hostname, struct ks_error **err)
{
    json_object *hc = ks_json_get(config, "HostConfig");
    json_object *c = ks_json_get(config, "Config");
    struct ks_isolation iso;
    int r = ks_isolation_parse(hc, false, &iso, err);
    if (r < 0)
        return r;
    const char *hostname = ks_json_str(c, "Hostname");
    if (check_hostname && iso.uts == KS_NS_MODE_HOST && hostname && *hostname)
        return ks_error_msg(err, "conflicting options: hostname and the UTS mode");
    r = validate_sysctls(hc, &iso, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *path = NULL;
    return ks_isolation_cgroups_path(ks_json_str(hc, "CgroupParent"), "x", &path, err);
}

int ks_isolation_validate(json_object *config, struct ks_error **err)
{
    return validate(config, true, err);
}

int ks_isolation_cgroups_path(const char *parent, const char *id, char **ret, struct ks_error **err)
{
    if (parent == NULL || *parent == '\0')
        parent = "/kiste";
    size_t n = strlen(parent);
    if (n >= CGROUP_PARENT_MAX)
        return ks_error_msg(err, "invalid cgroup parent: too long");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)parent[i] < 0x20 || parent[i] == 0x7f || parent[i] == ':')
            return ks_error_msg(err, "invalid cgroup parent `%s`", parent);
    /* Every component: a ".." would lead out of the hierarchy kiste manages. */
    for (const char *p = parent; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return ks_error_msg(err, "invalid cgroup parent `%s`: \"..\" is not allowed", parent);
        p += len;
        while (*p == '/')
            p++;
    }
    _cleanup_free_ char *raw = NULL;
    if (asprintf(&raw, "/%s/%s", parent, id) < 0)
        return ks_error_set(err, ENOMEM, "cgroup parent");
    char *clean = ks_path_clean(raw);
    if (clean == NULL)
        return ks_error_set(err, ENOMEM, "cgroup parent");
    if (strcmp(clean, "/") == 0 || strcmp(clean + 1, id) == 0) {
        /* A parent of only "/" or "." would put the container at the top: keep it in /kiste. */
        free(clean);
        if (asprintf(&clean, "/kiste/%s", id) < 0)
            return ks_error_set(err, ENOMEM, "cgroup parent");
    }
    *ret = clean;
    return 0;
}

bool ks_isolation_cgroupns_private_default(void)
{
    /* Docker's default is the host's namespace on v1 and hybrid layouts, a private one on v2.
     * Kiste keeps a private one on every layout: a container sees its own cgroup as the root
     * and nothing of the host's tree, as on v2. --cgroupns host still gives the host's. */
    return true;
}

int ks_isolation_defaults(json_object *config, struct ks_error **err)
{
    json_object *hc = ks_json_get_type(config, "HostConfig", json_type_object);
    if (hc == NULL)
        return ks_error_msg(err, "container config has no HostConfig");
    /* Docker shows these as "" when not set. */
    for (const char *const *k =
             (const char *const[]){"PidMode", "UTSMode", "UsernsMode", "CgroupParent", NULL};
         *k; k++)
        if (ks_json_get(hc, *k) == NULL)
            json_object_object_add(hc, *k, json_object_new_string(""));
    const char *ipc = ks_json_str(hc, "IpcMode");
    if (ipc == NULL || *ipc == '\0')
        json_object_object_add(hc, "IpcMode", json_object_new_string("private"));
    const char *cgns = ks_json_str(hc, "CgroupnsMode");
    if (cgns == NULL || *cgns == '\0')
        json_object_object_add(
            hc, "CgroupnsMode",
            json_object_new_string(ks_isolation_cgroupns_private_default() ? "private" : "host"));
    int r = ks_isolation_validate(config, err);
    if (r < 0)
        return r;
    /* The container's name is the host's, as with the host's network. */
    json_object *c = ks_json_get_type(config, "Config", json_type_object);
    const char *uts = ks_json_str(hc, "UTSMode");
    if (c && uts && strcmp(uts, "host") == 0) {
        char name[HOST_NAME_MAX + 1] = "";
        if (gethostname(name, sizeof(name)) < 0)
            return ks_error_set(err, errno, "gethostname");
        name[HOST_NAME_MAX] = '\0';
        json_object_object_add(c, "Hostname", json_object_new_string(name));
    }
    return 0;
}

void ks_isolation_paths_clear(struct ks_isolation_paths *p)
{
    free(p->pid_ns);
    free(p->ipc_ns);
    *p = (struct ks_isolation_paths){0};
}

/* The init pid of running container name, and its config (owned by the caller). */
static int peer(struct ks_engine *e, const char *name, const char *what, pid_t *ret_pid,
                json_object **ret_config, struct ks_error **err)
{
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    int r = ks_engine_lookup(e, name, &c, ret_config, err);
    if (r < 0)
        return r;
    struct ks_container_state st;
    r = ks_engine_state_get(e, c->id, &st, err);
    if (r < 0)
        return r;
    ks_engine_state_clear(&st);
    if ((st.status != KS_CONTAINER_RUNNING && st.status != KS_CONTAINER_PAUSED) || st.pid <= 0)
        return ks_error_msg(err, "cannot join %s of a non running container: %s", what, name);
    *ret_pid = st.pid;
    return 0;
}

int ks_engine_isolation_resolve(struct ks_engine *e, json_object *config,
                                struct ks_isolation_paths *ret, struct ks_error **err)
{
    struct ks_isolation iso;
    *ret = (struct ks_isolation_paths){0};
    int r = ks_isolation_parse(ks_json_get(config, "HostConfig"), false, &iso, err);
    if (r < 0)
        return r;
    pid_t pid;
    if (iso.pid == KS_NS_MODE_CONTAINER) {
        _cleanup_json_ json_object *other = NULL;
        r = peer(e, iso.pid_container, "PID", &pid, &other, err);
        if (r < 0)
            return r;
        if (asprintf(&ret->pid_ns, "/proc/%d/ns/pid", (int)pid) < 0)
            return ks_error_set(err, ENOMEM, "pid namespace");
    }
    if (iso.ipc == KS_NS_MODE_CONTAINER) {
        _cleanup_json_ json_object *other = NULL;
        r = peer(e, iso.ipc_container, "IPC", &pid, &other, err);
        if (r < 0)
            goto fail;
        struct ks_isolation theirs;
        r = ks_isolation_parse(ks_json_get(other, "HostConfig"), false, &theirs, err);
        if (r < 0)
            goto fail;
        /* Docker's rule: only a donor that made its IPC namespace shareable (or has none of
         * its own) may be joined; a private one stays private. */
        if (theirs.ipc != KS_NS_MODE_SHAREABLE && theirs.ipc != KS_NS_MODE_HOST &&
            theirs.ipc != KS_NS_MODE_CONTAINER) {
            r = ks_error_msg(err,
                             "can't join IPC of container %s: non-shareable IPC (hint: use "
                             "IpcMode:shareable for the donor container)",
                             iso.ipc_container);
            goto fail;
        }
        if (asprintf(&ret->ipc_ns, "/proc/%d/ns/ipc", (int)pid) < 0) {
            r = ks_error_set(err, ENOMEM, "ipc namespace");
            goto fail;
        }
    }
    return 0;
fail:
    ks_isolation_paths_clear(ret);
    return r;
}

/* --- the OCI spec --- */

/* Drops the namespace of type from the list, or gives it path (when not NULL). */
static void ns_set(json_object *nss, const char *type, bool drop, const char *path)
{
    for (size_t i = 0; nss && i < json_object_array_length(nss); i++) {
        json_object *ns = json_object_array_get_idx(nss, i);
        const char *t = ks_json_str(ns, "type");
        if (t == NULL || strcmp(t, type) != 0)
            continue;
        if (drop)
            json_object_array_del_idx(nss, i, 1);
        else if (path)
            json_object_object_add(ns, "path", json_object_new_string(path));
        return;
    }
}

static void bind_opts(json_object *m)
{
    json_object *o = json_object_new_array();
    for (const char *const *s = (const char *const[]){"rbind", "nosuid", "noexec", "nodev", NULL};
         *s; s++)
        json_object_array_add(o, json_object_new_string(*s));
    json_object_object_add(m, "options", o);
}

/* /dev/shm: the default tmpfs (also with another container's IPC namespace: its tmpfs lives
 * in that container's mount namespace, which no bind mount can reach), none with "none", a bind
 * of the host's with "host". */
static void shm_apply(json_object *mounts, enum ks_ns_mode ipc)
{
    for (size_t i = 0; mounts && i < json_object_array_length(mounts); i++) {
        json_object *m = json_object_array_get_idx(mounts, i);
        const char *d = ks_json_str(m, "destination");
        if (d == NULL || strcmp(d, "/dev/shm") != 0)
            continue;
        if (ipc == KS_NS_MODE_NONE) {
            json_object_array_del_idx(mounts, i, 1);
        } else if (ipc == KS_NS_MODE_HOST) {
            json_object_object_add(m, "type", json_object_new_string("bind"));
            json_object_object_add(m, "source", json_object_new_string("/dev/shm"));
            bind_opts(m);
        }
        return;
    }
}

static json_object *sysctl_json(json_object *hc)
{
    json_object *sc = ks_json_get_type(hc, "Sysctls", json_type_object);
    if (sc == NULL || json_object_object_length(sc) == 0)
        return NULL;
    json_object *out = json_object_new_object();
    json_object_object_foreach(sc, k, v)
    {
        json_object_object_add(out, k, json_object_new_string(json_object_get_string(v)));
    }
    return out;
}

int ks_isolation_spec_apply(json_object *spec, json_object *config, const char *id,
                            const struct ks_isolation_paths *paths, struct ks_error **err)
{
    json_object *hc = ks_json_get(config, "HostConfig");
    struct ks_isolation iso;
    int r = validate(config, false, err);
    if (r >= 0)
        r = ks_isolation_parse(hc, ks_isolation_cgroupns_private_default(), &iso, err);
    if (r < 0)
        return r;
    if ((iso.pid == KS_NS_MODE_CONTAINER && (paths == NULL || paths->pid_ns == NULL)) ||
        (iso.ipc == KS_NS_MODE_CONTAINER && (paths == NULL || paths->ipc_ns == NULL)))
        return ks_error_msg(err, "the namespaces of container:… modes were not resolved");
    json_object *linux_ = ks_json_get_type(spec, "linux", json_type_object);
    json_object *nss = ks_json_get_type(linux_, "namespaces", json_type_array);
    ns_set(nss, "pid", iso.pid == KS_NS_MODE_HOST, paths ? paths->pid_ns : NULL);
    ns_set(nss, "ipc", iso.ipc == KS_NS_MODE_HOST, paths ? paths->ipc_ns : NULL);
    ns_set(nss, "uts", iso.uts == KS_NS_MODE_HOST, NULL);
    ns_set(nss, "cgroup", iso.cgroupns == KS_NS_MODE_HOST, NULL);
    if (iso.uts == KS_NS_MODE_HOST) {
        /* The runtime would set them on the host's namespace. */
        json_object_object_del(spec, "hostname");
        json_object_object_del(spec, "domainname");
    }
    shm_apply(ks_json_get_type(spec, "mounts", json_type_array), iso.ipc);
    json_object *sc = sysctl_json(hc);
    if (sc && linux_)
        json_object_object_add(linux_, "sysctl", sc);
    else if (sc)
        json_object_put(sc);
    const char *parent = ks_json_str(hc, "CgroupParent");
    if (parent && *parent && linux_) {
        _cleanup_free_ char *path = NULL;
        r = ks_isolation_cgroups_path(parent, id, &path, err);
        if (r < 0)
            return r;
        json_object_object_add(linux_, "cgroupsPath", json_object_new_string(path));
    }
    return 0;
}
