/* The pure parts of partial isolation: Docker's mode names, namespaced sysctls and their
 * conflicts with the host's namespaces, cgroup parents, and what the modes do to a spec. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/json.h"
#include "engine/container.h"
#include "tap.h"

static json_object *parse(const char *s)
{
    json_object *o = NULL;
    if (ks_json_parse(s, strlen(s), &o, NULL) < 0) {
        tap_diag("bad JSON in test: %s", s);
        abort();
    }
    return o;
}

/* ks_isolation_validate on a config, the error message into msg (may be ""). */
static int validate(const char *json, char *msg, size_t len)
{
    _cleanup_json_ json_object *c = parse(json);
    _cleanup_error_ struct ks_error *e = NULL;
    int r = ks_isolation_validate(c, &e);
    snprintf(msg, len, "%s", e ? e->msg : "");
    return r;
}

static void test_parse(void)
{
    _cleanup_json_ json_object *hc = parse("{}");
    struct ks_isolation iso;
    tap_ok(ks_isolation_parse(hc, false, &iso, NULL) == 0 && iso.pid == KS_NS_MODE_PRIVATE &&
               iso.ipc == KS_NS_MODE_PRIVATE && iso.uts == KS_NS_MODE_PRIVATE &&
               iso.cgroupns == KS_NS_MODE_HOST,
           "no modes: private, cgroup namespace the host's without the v2 default");
    tap_ok(ks_isolation_parse(hc, true, &iso, NULL) == 0 && iso.cgroupns == KS_NS_MODE_PRIVATE,
           "cgroup namespace private by default on v2");

    json_object_put(hc);
    hc = parse("{\"PidMode\":\"container:abc\",\"IpcMode\":\"shareable\",\"UTSMode\":\"host\","
               "\"CgroupnsMode\":\"private\",\"UsernsMode\":\"host\"}");
    tap_ok(ks_isolation_parse(hc, false, &iso, NULL) == 0 && iso.pid == KS_NS_MODE_CONTAINER &&
               iso.pid_container && strcmp(iso.pid_container, "abc") == 0 &&
               iso.ipc == KS_NS_MODE_SHAREABLE && iso.uts == KS_NS_MODE_HOST &&
               iso.cgroupns == KS_NS_MODE_PRIVATE,
           "every mode parsed");

    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"{\"PidMode\":\"private\"}", "invalid PID mode: private"},
        {"{\"PidMode\":\"container:\"}", "invalid PID mode: container:"},
        {"{\"IpcMode\":\"shared\"}", "invalid IPC mode: shared"},
        {"{\"UTSMode\":\"container:x\"}", "invalid UTS mode: container:x"},
        {"{\"CgroupnsMode\":\"container:x\"}", "invalid cgroup namespace mode: container:x"},
        {"{\"UsernsMode\":\"keep-id\"}", "invalid USER mode: keep-id"},
        {"{\"PidMode\":5}", "invalid PID mode: not a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        _cleanup_json_ json_object *b = parse(bad[i].json);
        _cleanup_error_ struct ks_error *e = NULL;
        int r = ks_isolation_parse(b, false, &iso, &e);
        tap_ok(r < 0 && e && strncmp(e->msg, bad[i].msg, strlen(bad[i].msg)) == 0, "refused: %s",
               bad[i].json);
    }
}

static void test_sysctls(void)
{
    static const char *const yes[] = {
        "kernel.shmmax",     "kernel.msgmnb",       "kernel.sem",        "kernel.shm_rmid_forced",
        "fs.mqueue.msg_max", "net.ipv4.ip_forward", "net.core.somaxconn"};
    static const char *const no[] = {
        "vm.swappiness", "kernel.hostname", "kernel.shmfoo", "fs.mqueue.",
        "net.",          "kernel.pid_max",  "fs.file-max",   ""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        tap_ok(ks_sysctl_namespaced(yes[i]), "namespaced: %s", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        tap_ok(!ks_sysctl_namespaced(no[i]), "not namespaced: \"%s\"", no[i]);

    char msg[512];
    TAP_EQ_INT(validate("{\"HostConfig\":{\"Sysctls\":{\"net.ipv4.ip_forward\":\"1\","
                        "\"kernel.shmmax\":\"100\"}}}",
                        msg, sizeof(msg)),
               0, "namespaced sysctls accepted");
    tap_ok(validate("{\"HostConfig\":{\"Sysctls\":{\"vm.swappiness\":\"1\"}}}", msg, sizeof(msg)) <
                   0 &&
               strstr(msg, "'vm.swappiness'"),
           "a host-wide sysctl refused, named: %s", msg);
    tap_ok(validate("{\"HostConfig\":{\"NetworkMode\":\"host\",\"Sysctls\":{\"net.ipv4.ip_"
                    "forward\":\"1\"}}}",
                    msg, sizeof(msg)) < 0 &&
               strstr(msg, "'net.ipv4.ip_forward' is not allowed in the host's network"),
           "net.* refused with the host's network: %s", msg);
    tap_ok(validate("{\"HostConfig\":{\"IpcMode\":\"host\",\"Sysctls\":{\"kernel.sem\":\"1 2 3 "
                    "4\"}}}",
                    msg, sizeof(msg)) < 0 &&
               strstr(msg, "'kernel.sem' is not allowed in the host's IPC"),
           "IPC sysctls refused with the host's IPC namespace: %s", msg);
    TAP_EQ_INT(validate("{\"HostConfig\":{\"IpcMode\":\"host\",\"Sysctls\":{\"net.ipv4.ip_"
                        "forward\":\"1\"}}}",
                        msg, sizeof(msg)),
               0, "net.* fine with the host's IPC namespace");
    tap_ok(validate("{\"HostConfig\":{\"Sysctls\":{\"net.ipv4..x\":\"1\"}}}", msg, sizeof(msg)) < 0,
           "an empty key component refused");
    tap_ok(validate("{\"HostConfig\":{\"Sysctls\":{\"net.ipv4.ip_forward\":\"1\\n2\"}}}", msg,
                    sizeof(msg)) < 0,
           "a value with a newline refused");
    tap_ok(validate("{\"HostConfig\":{\"Sysctls\":{\"net.ipv4.ip_forward\":1}}}", msg,
                    sizeof(msg)) < 0,
           "a value that is not a string refused");
}

static void test_hostname(void)
{
    char msg[512];
    tap_ok(validate("{\"Config\":{\"Hostname\":\"h\"},\"HostConfig\":{\"UTSMode\":\"host\"}}", msg,
                    sizeof(msg)) < 0 &&
               strcmp(msg, "conflicting options: hostname and the UTS mode") == 0,
           "a hostname with UTSMode host refused");
    TAP_EQ_INT(validate("{\"Config\":{\"Hostname\":\"h\"},\"HostConfig\":{}}", msg, sizeof(msg)), 0,
               "a hostname with a UTS namespace of its own");

    _cleanup_json_ json_object *c = parse("{\"Config\":{},\"HostConfig\":{\"UTSMode\":\"host\"}}");
    char host[256] = "";
    gethostname(host, sizeof(host) - 1);
    TAP_EQ_INT(ks_isolation_defaults(c, NULL), 0, "defaults with UTSMode host");
    TAP_EQ_STR(ks_json_str(ks_json_get(c, "Config"), "Hostname"), host,
               "the container is named as the host");
    json_object *hc = ks_json_get(c, "HostConfig");
    TAP_EQ_STR(ks_json_str(hc, "IpcMode"), "private", "IpcMode defaults to private");
    TAP_EQ_STR(ks_json_str(hc, "PidMode"), "", "PidMode shown as \"\"");
    TAP_EQ_STR(ks_json_str(hc, "UsernsMode"), "", "UsernsMode shown as \"\"");
    TAP_EQ_STR(ks_json_str(hc, "CgroupnsMode"), "private", "CgroupnsMode private by default");
}

static void test_cgroup_parent(void)
{
    static const struct {
        const char *parent, *want;
    } ok[] = {
        {NULL, "/kiste/ID"},
        {"", "/kiste/ID"},
        {"/kiste-test/a", "/kiste-test/a/ID"},
        {"kiste-test/a", "/kiste-test/a/ID"},
        {"//x//y/", "/x/y/ID"},
        {"/", "/kiste/ID"},
        {"./x", "/x/ID"},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        _cleanup_free_ char *p = NULL;
        int r = ks_isolation_cgroups_path(ok[i].parent, "ID", &p, NULL);
        tap_ok(r == 0 && p && strcmp(p, ok[i].want) == 0, "cgroup parent \"%s\" → %s (%s)",
               ok[i].parent ? ok[i].parent : "(null)", ok[i].want, p ? p : "error");
    }
    static const char *const bad[] = {"/a/../b", "..", "a/..", "a:b", "a\tb"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        _cleanup_free_ char *p = NULL;
        _cleanup_error_ struct ks_error *e = NULL;
        int r = ks_isolation_cgroups_path(bad[i], "ID", &p, &e);
        tap_ok(r < 0 && p == NULL && e && strstr(e->msg, "invalid cgroup parent"),
               "cgroup parent refused: %s", bad[i]);
    }
}

static json_object *ns_of(json_object *spec, const char *type)
{
    json_object *a = ks_json_get(ks_json_get(spec, "linux"), "namespaces");
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *n = json_object_array_get_idx(a, i);
        if (strcmp(ks_json_str(n, "type"), type) == 0)
            return n;
    }
    return NULL;
}

static json_object *mount_at(json_object *spec, const char *dest)
{
    json_object *a = ks_json_get(spec, "mounts");
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *m = json_object_array_get_idx(a, i);
        if (strcmp(ks_json_str(m, "destination"), dest) == 0)
            return m;
    }
    return NULL;
}

#define SPEC                                                                                       \
    "{\"hostname\":\"abc\",\"mounts\":[{\"destination\":\"/dev/shm\",\"type\":\"tmpfs\","          \
    "\"source\":\"shm\",\"options\":[\"size=65536k\"]}],\"linux\":{\"cgroupsPath\":\"/kiste/ID\"," \
    "\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"ipc\"},{\"type\":\"uts\"},{\"type\":"          \
    "\"mount\"},{\"type\":\"cgroup\"},{\"type\":\"network\"}]}}"

static void test_spec_apply(void)
{
    _cleanup_json_ json_object *spec = parse(SPEC);
    _cleanup_json_ json_object *c = parse(
        "{\"Config\":{\"Hostname\":\"abc\"},\"HostConfig\":{\"PidMode\":\"host\",\"IpcMode\":"
        "\"host\",\"UTSMode\":\"host\",\"CgroupnsMode\":\"host\",\"CgroupParent\":\"kiste-test/"
        "p\",\"Sysctls\":{\"net.core.somaxconn\":\"1024\"}}}");
    TAP_EQ_INT(ks_isolation_spec_apply(spec, c, "ID", NULL, NULL), 0, "host modes applied");
    tap_ok(!ns_of(spec, "pid") && !ns_of(spec, "ipc") && !ns_of(spec, "uts") &&
               !ns_of(spec, "cgroup") && ns_of(spec, "mount") && ns_of(spec, "network"),
           "the host's namespaces dropped, the others kept");
    tap_ok(ks_json_get(spec, "hostname") == NULL, "no hostname with the host's UTS namespace");
    json_object *shm = mount_at(spec, "/dev/shm");
    TAP_EQ_STR(ks_json_str(shm, "type"), "bind", "/dev/shm is a bind");
    TAP_EQ_STR(ks_json_str(shm, "source"), "/dev/shm", "of the host's /dev/shm");
    TAP_EQ_STR(ks_json_str(ks_json_get(ks_json_get(spec, "linux"), "sysctl"), "net.core.somaxconn"),
               "1024", "linux.sysctl from HostConfig.Sysctls");
    TAP_EQ_STR(ks_json_str(ks_json_get(spec, "linux"), "cgroupsPath"), "/kiste-test/p/ID",
               "cgroupsPath under the parent");

    json_object_put(spec);
    spec = parse(SPEC);
    json_object_put(c);
    c = parse("{\"Config\":{},\"HostConfig\":{\"PidMode\":\"container:x\",\"IpcMode\":"
              "\"container:x\",\"CgroupnsMode\":\"private\"}}");
    _cleanup_error_ struct ks_error *e = NULL;
    tap_ok(ks_isolation_spec_apply(spec, c, "ID", NULL, &e) < 0, "container modes need paths");
    struct ks_isolation_paths paths = {.pid_ns = strdup("/proc/7/ns/pid"),
                                       .ipc_ns = strdup("/proc/7/ns/ipc")};
    TAP_EQ_INT(ks_isolation_spec_apply(spec, c, "ID", &paths, NULL), 0, "container modes");
    TAP_EQ_STR(ks_json_str(ns_of(spec, "pid"), "path"), "/proc/7/ns/pid", "pid joined");
    TAP_EQ_STR(ks_json_str(ns_of(spec, "ipc"), "path"), "/proc/7/ns/ipc", "ipc joined");
    tap_ok(ns_of(spec, "uts") && ks_json_get(ns_of(spec, "uts"), "path") == NULL &&
               ns_of(spec, "cgroup"),
           "uts and cgroup namespaces of its own");
    TAP_EQ_STR(ks_json_str(mount_at(spec, "/dev/shm"), "type"), "tmpfs", "its own /dev/shm");
    TAP_EQ_STR(ks_json_str(ks_json_get(spec, "linux"), "cgroupsPath"), "/kiste/ID",
               "cgroupsPath untouched without a parent");
    TAP_EQ_STR(ks_json_str(spec, "hostname"), "abc", "hostname kept");
    ks_isolation_paths_clear(&paths);

    json_object_put(spec);
    spec = parse(SPEC);
    json_object_put(c);
    c = parse("{\"Config\":{},\"HostConfig\":{\"IpcMode\":\"none\"}}");
    TAP_EQ_INT(ks_isolation_spec_apply(spec, c, "ID", NULL, NULL), 0, "IpcMode none");
    tap_ok(mount_at(spec, "/dev/shm") == NULL && ns_of(spec, "ipc"),
           "its own IPC namespace without /dev/shm");
}

int main(void)
{
    test_parse();
    test_sysctls();
    test_hostname();
    test_cgroup_parent();
    test_spec_apply();
    return tap_done();
}
