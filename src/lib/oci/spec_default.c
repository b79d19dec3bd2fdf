#include "spec.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "../base/json.h"
#include "caps.h"
#include "seccomp.h"

/* What `runc spec` writes, with our hostname. The parts that differ between the privileged and
 * the rootless variant are added from the tables below. */
static const char default_head[] =
    "{"
    "  \"ociVersion\": \"1.2.0\","
    "  \"process\": {"
    "    \"terminal\": true,"
    "    \"user\": {\"uid\": 0, \"gid\": 0},"
    "    \"args\": [\"sh\"],"
    "    \"env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\","
    "            \"TERM=xterm\"],"
    "    \"cwd\": \"/\","
    "    \"capabilities\": {"
    "      \"bounding\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],"
    "      \"effective\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],"
    "      \"permitted\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]"
    "    },"
    "    \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 1024, \"soft\": 1024}],"
    "    \"noNewPrivileges\": true"
    "  },"
    "  \"root\": {\"path\": \"rootfs\", \"readonly\": true},"
    "  \"hostname\": \"kiste\""
    "}";

enum variant {
    BOTH,
    PRIVILEGED,
    ROOTLESS,
};

static bool wanted(enum variant v, bool rootless)
{
    return v == BOTH || (v == ROOTLESS) == rootless;
}

#define OPTS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const struct {
    const char *destination, *type, *source;
    const char *const *options;
    enum variant variant;
} default_mounts[] = {
    {"/proc", "proc", "proc", NULL, BOTH},
    {"/dev", "tmpfs", "tmpfs", OPTS("nosuid", "strictatime", "mode=755", "size=65536k"), BOTH},
    {"/dev/pts", "devpts", "devpts",
     OPTS("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"), PRIVILEGED},
    /* Group 5 (tty) is not mapped in a rootless user namespace. */
    {"/dev/pts", "devpts", "devpts",
     OPTS("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"), ROOTLESS},
    {"/dev/shm", "tmpfs", "shm", OPTS("nosuid", "noexec", "nodev", "mode=1777", "size=65536k"),
     BOTH},
    {"/dev/mqueue", "mqueue", "mqueue", OPTS("nosuid", "noexec", "nodev"), BOTH},
    {"/sys", "sysfs", "sysfs", OPTS("nosuid", "noexec", "nodev", "ro"), PRIVILEGED},
    /* Without a network namespace of its own, a user namespace may not mount sysfs. */
    {"/sys", "none", "/sys", OPTS("rbind", "nosuid", "noexec", "nodev", "ro"), ROOTLESS},
    {"/sys/fs/cgroup", "cgroup", "cgroup", OPTS("nosuid", "noexec", "nodev", "relatime", "ro"),
     PRIVILEGED},
};

static const struct {
    const char *type;
    enum variant variant;
} default_namespaces[] = {
    {"pid", BOTH},   {"network", PRIVILEGED}, {"ipc", BOTH},      {"uts", BOTH},
    {"mount", BOTH}, {"cgroup", BOTH},        {"user", ROOTLESS},
};

static const char *const default_masked_paths[] = {
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    NULL,
};

static const char *const default_readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

/* Builders that take ownership of v (NULL after a failed allocation) and report failure, so a
 * document is either complete or not returned at all. */
static bool put(json_object *o, const char *key, json_object *v)
{
    if (o == NULL || v == NULL || json_object_object_add(o, key, v) < 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static bool append(json_object *a, json_object *v)
{
    if (a == NULL || v == NULL || json_object_array_add(a, v) < 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static json_object *strv_json(const char *const *v)
{
    json_object *a = json_object_new_array();
    bool ok = a != NULL;
    for (; ok && v && *v; v++)
        ok = append(a, json_object_new_string(*v));
    if (!ok) {
        json_object_put(a);
        return NULL;
    }
    return a;
}

static json_object *id_mapping(uint32_t host_id)
{
    _cleanup_json_ json_object *a = json_object_new_array();
    json_object *m = json_object_new_object();
    if (!append(a, m))
        return NULL;
    if (!put(m, "containerID", json_object_new_int64(0)) ||
        !put(m, "hostID", json_object_new_int64(host_id)) ||
        !put(m, "size", json_object_new_int64(1)))
        return NULL;
    return TAKE_PTR(a);
}

static json_object *default_mounts_json(bool rootless)
{
    _cleanup_json_ json_object *a = json_object_new_array();
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < KS_ELEMENTSOF(default_mounts); i++) {
        if (!wanted(default_mounts[i].variant, rootless))
            continue;
        json_object *m = json_object_new_object();
        if (!append(a, m))
            return NULL;
        bool ok = put(m, "destination", json_object_new_string(default_mounts[i].destination));
        ok = ok && put(m, "type", json_object_new_string(default_mounts[i].type));
        ok = ok && put(m, "source", json_object_new_string(default_mounts[i].source));
        if (ok && default_mounts[i].options)
            ok = put(m, "options", strv_json(default_mounts[i].options));
        if (!ok)
            return NULL;
    }
    return TAKE_PTR(a);
}

static json_object *default_linux_json(bool rootless)
{
    _cleanup_json_ json_object *l = json_object_new_object();
    if (l == NULL)
        return NULL;
    bool ok = true;
    if (rootless) {
        ok = put(l, "uidMappings", id_mapping((uint32_t)geteuid())) &&
             put(l, "gidMappings", id_mapping((uint32_t)getegid()));
    } else {
        /* Deny every device; the default devices are allowed by the cgroup module. */
        ok = put(l, "resources",
                 json_tokener_parse("{\"devices\": [{\"allow\": false, \"access\": \"rwm\"}]}"));
    }
    json_object *ns = ok ? json_object_new_array() : NULL;
    ok = ok && put(l, "namespaces", ns);
    for (size_t i = 0; ok && i < KS_ELEMENTSOF(default_namespaces); i++) {
        if (!wanted(default_namespaces[i].variant, rootless))
            continue;
        json_object *n = json_object_new_object();
        ok = append(ns, n) && put(n, "type", json_object_new_string(default_namespaces[i].type));
    }
    ok = ok && put(l, "maskedPaths", strv_json(default_masked_paths));
    ok = ok && put(l, "readonlyPaths", strv_json(default_readonly_paths));
    if (!ok)
        return NULL;
    return TAKE_PTR(l);
}

json_object *ks_spec_default(bool rootless)
{
    _cleanup_json_ json_object *spec = json_tokener_parse(default_head);
    if (spec == NULL)
        return NULL;
    if (!put(spec, "mounts", default_mounts_json(rootless)) ||
        !put(spec, "linux", default_linux_json(rootless)))
        return NULL;
    return TAKE_PTR(spec);
}

/* ---- features ---- */

static const char *const hook_kinds[] = {
    "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop", NULL,
};

/* The options mounts.c understands: flags, propagation, recursive (mount_setattr) flags and our
 * extensions. */
static const char *const mount_options[] = {
    "ro",           "rw",
    "nosuid",       "suid",
    "nodev",        "dev",
    "noexec",       "exec",
    "sync",         "async",
    "dirsync",      "remount",
    "mand",         "nomand",
    "atime",        "noatime",
    "diratime",     "nodiratime",
    "relatime",     "norelatime",
    "strictatime",  "nostrictatime",
    "lazytime",     "nolazytime",
    "bind",         "rbind",
    "private",      "rprivate",
    "shared",       "rshared",
    "slave",        "rslave",
    "unbindable",   "runbindable",
    "rro",          "rrw",
    "rnosuid",      "rsuid",
    "rnodev",       "rdev",
    "rnoexec",      "rexec",
    "ratime",       "rnoatime",
    "rdiratime",    "rnodiratime",
    "rrelatime",    "rnorelatime",
    "rstrictatime", "rnostrictatime",
    "nosymfollow",  "rnosymfollow",
    "idmap",        "ridmap",
    "tmpcopyup",    NULL,
};

static const char *const all_namespaces[] = {
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts", NULL,
};

static const char features_linux_tail[] = "{"
                                          "  \"apparmor\": {\"enabled\": false},"
                                          "  \"selinux\": {\"enabled\": false},"
                                          "  \"intelRdt\": {\"enabled\": false},"
                                          "  \"mountExtensions\": {\"idmap\": {\"enabled\": true}}"
                                          "}";

static json_object *features_linux(void)
{
    _cleanup_json_ json_object *l = json_object_new_object();
    bool ok = put(l, "namespaces", strv_json(all_namespaces));
    json_object *caps = ks_caps_all_json();
    if (caps)
        ok = put(l, "capabilities", caps) && ok;
    ok = ok && put(l, "cgroup",
                   json_tokener_parse("{\"v1\": true, \"v2\": true, \"systemd\": false, "
                                      "\"systemdUser\": false, \"rdma\": false}"));
    json_object *seccomp = ks_seccomp_features_json();
    if (seccomp)
        ok = put(l, "seccomp", seccomp) && ok;

    _cleanup_json_ json_object *tail = json_tokener_parse(features_linux_tail);
    ok = ok && tail != NULL;
    if (ok) {
        json_object_object_foreach(tail, key, val)
        {
            ok = ok && put(l, key, json_object_get(val));
        }
    }
    if (!ok)
        return NULL;
    return TAKE_PTR(l);
}

json_object *ks_spec_features(void)
{
    _cleanup_json_ json_object *f = json_object_new_object();
    bool ok = put(f, "ociVersionMin", json_object_new_string(KS_OCI_VERSION_MIN));
    ok = ok && put(f, "ociVersionMax", json_object_new_string(KS_OCI_VERSION_MAX));
    ok = ok && put(f, "hooks", strv_json(hook_kinds));
    ok = ok && put(f, "mountOptions", strv_json(mount_options));
    ok = ok && put(f, "linux", features_linux());
    ok = ok && put(f, "annotations",
                   json_tokener_parse("{\"org.opencontainers.runc.checkpoint.enabled\": "
                                      "\"false\"}"));
    ok = ok && put(f, "potentiallyUnsafeConfigAnnotations", json_object_new_array());
    if (!ok)
        return NULL;
    return TAKE_PTR(f);
}
