#include "spec.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../base/schema.h"

/* config.json is untrusted input: bound what is read before it is parsed. */
#define SPEC_MAX_SIZE ((size_t)16 << 20)

/* ---- value lists ---- */

static const char *const namespace_types[] = {
    "pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time", NULL,
};

static const char *const rlimit_types[] = {
    "RLIMIT_AS",
    "RLIMIT_CORE",
    "RLIMIT_CPU",
    "RLIMIT_DATA",
    "RLIMIT_FSIZE",
    "RLIMIT_LOCKS",
    "RLIMIT_MEMLOCK",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_NOFILE",
    "RLIMIT_NPROC",
    "RLIMIT_RSS",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
    "RLIMIT_SIGPENDING",
    "RLIMIT_STACK",
    NULL,
};

static const char *const sched_policies[] = {
    "SCHED_OTHER", "SCHED_FIFO", "SCHED_RR",       "SCHED_BATCH",
    "SCHED_ISO",   "SCHED_IDLE", "SCHED_DEADLINE", NULL,
};

static const char *const sched_flags[] = {
    "SCHED_FLAG_RESET_ON_FORK",  "SCHED_FLAG_RECLAIM",
    "SCHED_FLAG_DL_OVERRUN",     "SCHED_FLAG_KEEP_POLICY",
    "SCHED_FLAG_KEEP_PARAMS",    "SCHED_FLAG_UTIL_CLAMP_MIN",
    "SCHED_FLAG_UTIL_CLAMP_MAX", NULL,
};

static const char *const ioprio_classes[] = {
    "IOPRIO_CLASS_RT",
    "IOPRIO_CLASS_BE",
    "IOPRIO_CLASS_IDLE",
    NULL,
};

static const char *const cgroup_device_types[] = {"a", "b", "c", NULL};
static const char *const device_types[] = {"c", "b", "u", "p", NULL};

static const char *const propagations[] = {
    "",       "private", "rprivate",   "slave",       "rslave",
    "shared", "rshared", "unbindable", "runbindable", NULL,
};

static const char *const personality_domains[] = {"LINUX", "LINUX32", NULL};

static const char *const mpol_modes[] = {
    "MPOL_DEFAULT",   "MPOL_BIND",           "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
    "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL",      NULL,
};

static const char *const mpol_flags[] = {
    "MPOL_F_NUMA_BALANCING",
    "MPOL_F_RELATIVE_NODES",
    "MPOL_F_STATIC_NODES",
    NULL,
};

/* ---- hooks for checks the table cannot express ---- */

static int check_version(json_object *v, struct ks_schema_path *p, struct ks_error **err);
static int check_idmap(json_object *v, struct ks_schema_path *p, struct ks_error **err);
static int check_namespaces(json_object *v, struct ks_schema_path *p, struct ks_error **err);
static int check_linux(json_object *v, struct ks_schema_path *p, struct ks_error **err);

/* ---- the schema, leaves first ---- */

/* Device cgroup access: letters of "rwm". */
static bool is_access(const char *s, size_t len)
{
    return strspn(s, "rwm") == len;
}
static const struct ks_schema_format format_access = {
    .valid = is_access, .what = "access", .hint = " (letters of rwm)"};

static const struct ks_schema_field elem_env = {.kind = KS_SCHEMA_STRING, .rule = KS_RULE_ENV};
static const struct ks_schema_field elem_u32 = {.kind = KS_SCHEMA_INT, .min = 0, .max = UINT32_MAX};

static const struct ks_schema_field idmap_fields[] = {
    F_U32("containerID", .required = true),
    F_U32("hostID", .required = true),
    F_U32("size", .required = true),
    F_END,
};
static const struct ks_schema_field elem_idmap = {
    .kind = KS_SCHEMA_OBJECT, .fields = idmap_fields, .check = check_idmap};

static const struct ks_schema_field mount_fields[] = {
    /* Relative destinations are accepted, as runc does, for old bundles. */
    F_STR("destination", .required = true, .rule = KS_RULE_NONEMPTY),
    F_STR("type"),
    F_STR("source"),
    F_STRV("options"),
    F_ARR("uidMappings", &elem_idmap),
    F_ARR("gidMappings", &elem_idmap),
    F_END,
};

static const struct ks_schema_field console_size_fields[] = {
    F_U16("height"),
    F_U16("width"),
    F_END,
};

static const struct ks_schema_field user_fields[] = {
    F_U32("uid"),      F_U32("gid"), F_U32("umask"), F_ARR("additionalGids", &elem_u32),
    F_STR("username"), F_END,
};

static const struct ks_schema_field capabilities_fields[] = {
    F_STRV("bounding"),  F_STRV("effective"), F_STRV("inheritable"),
    F_STRV("permitted"), F_STRV("ambient"),   F_END,
};

static const struct ks_schema_field rlimit_fields[] = {
    F_STR("type", .required = true, .values = rlimit_types, .what = "rlimit type"),
    F_U64("hard"),
    F_U64("soft"),
    F_END,
};

static const struct ks_schema_field elem_sched_flag = {
    .kind = KS_SCHEMA_STRING, .values = sched_flags, .what = "scheduler flag"};

static const struct ks_schema_field scheduler_fields[] = {
    F_STR("policy", .required = true, .values = sched_policies, .what = "scheduler policy"),
    F_INT("nice", -20, 19),
    F_I32("priority"),
    F_ARR("flags", &elem_sched_flag),
    F_U64("runtime"),
    F_U64("deadline"),
    F_U64("period"),
    F_END,
};

static const struct ks_schema_field io_priority_fields[] = {
    F_STR("class", .required = true, .values = ioprio_classes, .what = "I/O priority class"),
    F_INT("priority", 0, 7),
    F_END,
};

static const struct ks_schema_field cpu_affinity_fields[] = {
    F_STR("initial"),
    F_STR("final"),
    F_END,
};

static const struct ks_schema_field process_fields[] = {
    F_BOOL("terminal"),
    F_OBJ("consoleSize", console_size_fields),
    F_OBJ("user", user_fields),
    F_STRV("args", .required = true, .nonempty = true),
    F_STR("commandLine"),
    F_ARR("env", &elem_env),
    F_STR("cwd", .required = true, .rule = KS_RULE_ABSOLUTE),
    F_OBJ("capabilities", capabilities_fields),
    F_ARR("rlimits", F_ELEM_OBJ(rlimit_fields)),
    F_BOOL("noNewPrivileges"),
    F_STR("apparmorProfile"),
    F_INT("oomScoreAdj", -1000, 1000),
    F_OBJ("scheduler", scheduler_fields),
    F_STR("selinuxLabel"),
    F_OBJ("ioPriority", io_priority_fields),
    F_OBJ("execCPUAffinity", cpu_affinity_fields),
    F_END,
};

static const struct ks_schema_field hook_fields[] = {
    F_STR("path", .required = true, .rule = KS_RULE_ABSOLUTE),
    F_STRV("args"),
    F_ARR("env", &elem_env),
    F_INT("timeout", 1, INT32_MAX),
    F_END,
};
static const struct ks_schema_field elem_hook = {.kind = KS_SCHEMA_OBJECT, .fields = hook_fields};

static const struct ks_schema_field hooks_fields[] = {
    F_ARR("prestart", &elem_hook),
    F_ARR("createRuntime", &elem_hook),
    F_ARR("createContainer", &elem_hook),
    F_ARR("startContainer", &elem_hook),
    F_ARR("poststart", &elem_hook),
    F_ARR("poststop", &elem_hook),
    F_END,
};

static const struct ks_schema_field cgroup_device_fields[] = {
    F_BOOL("allow", .required = true),
    F_STR("type", .values = cgroup_device_types, .what = "device type"),
    F_I64("major"),
    F_I64("minor"),
    F_STR("access", .format = &format_access),
    F_END,
};

static const struct ks_schema_field memory_fields[] = {
    F_I64("limit"),
    F_I64("reservation"),
    F_I64("swap"),
    F_I64("kernel"),
    F_I64("kernelTCP"),
    F_U64("swappiness"),
    F_BOOL("disableOOMKiller"),
    F_BOOL("useHierarchy"),
    F_BOOL("checkBeforeUpdate"),
    F_END,
};

static const struct ks_schema_field cpu_fields[] = {
    F_U64("shares"),
    F_I64("quota"),
    F_U64("burst"),
    F_U64("period"),
    F_I64("realtimeRuntime"),
    F_U64("realtimePeriod"),
    F_STR("cpus"),
    F_STR("mems"),
    F_I64("idle"),
    F_END,
};

static const struct ks_schema_field pids_fields[] = {
    F_I64("limit"),
    F_END,
};

static const struct ks_schema_field weight_device_fields[] = {
    F_I64("major", .required = true),
    F_I64("minor", .required = true),
    F_U16("weight"),
    F_U16("leafWeight"),
    F_END,
};

static const struct ks_schema_field throttle_device_fields[] = {
    F_I64("major", .required = true),
    F_I64("minor", .required = true),
    F_U64("rate"),
    F_END,
};
static const struct ks_schema_field elem_throttle = {.kind = KS_SCHEMA_OBJECT,
                                                     .fields = throttle_device_fields};

static const struct ks_schema_field block_io_fields[] = {
    F_U16("weight"),
    F_U16("leafWeight"),
    F_ARR("weightDevice", F_ELEM_OBJ(weight_device_fields)),
    F_ARR("throttleReadBpsDevice", &elem_throttle),
    F_ARR("throttleWriteBpsDevice", &elem_throttle),
    F_ARR("throttleReadIOPSDevice", &elem_throttle),
    F_ARR("throttleWriteIOPSDevice", &elem_throttle),
    F_END,
};

static const struct ks_schema_field hugepage_fields[] = {
    F_STR("pageSize", .required = true, .rule = KS_RULE_NONEMPTY),
    F_U64("limit"),
    F_END,
};

static const struct ks_schema_field net_priority_fields[] = {
    F_STR("name", .required = true),
    F_U32("priority"),
    F_END,
};

static const struct ks_schema_field network_fields[] = {
    F_U32("classID"),
    F_ARR("priorities", F_ELEM_OBJ(net_priority_fields)),
    F_END,
};

static const struct ks_schema_field rdma_fields[] = {
    F_U32("hcaHandles"),
    F_U32("hcaObjects"),
    F_END,
};

static const struct ks_schema_field resources_fields[] = {
    F_ARR("devices", F_ELEM_OBJ(cgroup_device_fields)),
    F_OBJ("memory", memory_fields),
    F_OBJ("cpu", cpu_fields),
    F_OBJ("pids", pids_fields),
    F_OBJ("blockIO", block_io_fields),
    F_ARR("hugepageLimits", F_ELEM_OBJ(hugepage_fields)),
    F_OBJ("network", network_fields),
    F_MAP("rdma", F_ELEM_OBJ(rdma_fields)),
    F_MAP("unified", &ks_schema_elem_string),
    F_END,
};

static const struct ks_schema_field namespace_fields[] = {
    F_STR("type", .required = true, .values = namespace_types, .what = "namespace type"),
    F_STR("path", .rule = KS_RULE_ABSOLUTE_OR_EMPTY),
    F_END,
};

static const struct ks_schema_field device_fields[] = {
    F_STR("type", .required = true, .values = device_types, .what = "device type"),
    F_STR("path", .required = true, .rule = KS_RULE_ABSOLUTE),
    F_I64("major"),
    F_I64("minor"),
    F_U32("fileMode"),
    F_U32("uid"),
    F_U32("gid"),
    F_END,
};

static const struct ks_schema_field seccomp_arg_fields[] = {
    F_U32("index", .required = true),
    F_U64("value", .required = true),
    F_U64("valueTwo"),
    F_STR("op", .required = true),
    F_END,
};

static const struct ks_schema_field syscall_fields[] = {
    F_STRV("names", .required = true, .nonempty = true),
    F_STR("action", .required = true),
    F_U32("errnoRet"),
    F_ARR("args", F_ELEM_OBJ(seccomp_arg_fields)),
    F_END,
};

/* Only types: the seccomp module checks action, architecture, flag and operator names. */
static const struct ks_schema_field seccomp_fields[] = {
    F_STR("defaultAction", .required = true),
    F_U32("defaultErrnoRet"),
    F_STRV("architectures"),
    F_STRV("flags"),
    F_STR("listenerPath"),
    F_STR("listenerMetadata"),
    F_ARR("syscalls", F_ELEM_OBJ(syscall_fields)),
    F_END,
};

static const struct ks_schema_field intel_rdt_fields[] = {
    F_STR("closID"),     F_STR("l3CacheSchema"), F_STR("memBwSchema"),       F_STRV("schemata"),
    F_BOOL("enableCMT"), F_BOOL("enableMBM"),    F_BOOL("enableMonitoring"), F_END,
};

static const struct ks_schema_field personality_fields[] = {
    F_STR("domain", .required = true, .values = personality_domains, .what = "personality domain"),
    F_STRV("flags"),
    F_END,
};

static const struct ks_schema_field time_offset_fields[] = {
    F_I64("secs"),
    F_U32("nanosecs"),
    F_END,
};
/* A closed object: the kernel knows no other clocks, and a typo would be silently ignored. */
static const struct ks_schema_field time_offsets_fields[] = {
    F_OBJ("monotonic", time_offset_fields),
    F_OBJ("boottime", time_offset_fields),
    F_END,
};

static const struct ks_schema_field elem_mpol_flag = {
    .kind = KS_SCHEMA_STRING, .values = mpol_flags, .what = "memory policy flag"};

static const struct ks_schema_field memory_policy_fields[] = {
    F_STR("mode", .required = true, .values = mpol_modes, .what = "memory policy mode"),
    F_STR("nodes"),
    F_ARR("flags", &elem_mpol_flag),
    F_END,
};

static const struct ks_schema_field net_device_fields[] = {
    F_STR("name"),
    F_END,
};

static const struct ks_schema_field linux_fields[] = {
    F_ARR("uidMappings", &elem_idmap),
    F_ARR("gidMappings", &elem_idmap),
    F_MAP("sysctl", &ks_schema_elem_string),
    F_OBJ("resources", resources_fields),
    F_STR("cgroupsPath"),
    F_ARR("namespaces", F_ELEM_OBJ(namespace_fields), .check = check_namespaces),
    F_ARR("devices", F_ELEM_OBJ(device_fields)),
    F_OBJ("seccomp", seccomp_fields),
    F_STR("rootfsPropagation", .values = propagations, .what = "rootfs propagation"),
    F_STRV("maskedPaths"),
    F_STRV("readonlyPaths"),
    F_STR("mountLabel"),
    F_OBJ("intelRdt", intel_rdt_fields),
    F_OBJ("personality", personality_fields),
    F_OBJ("timeOffsets", time_offsets_fields, .closed = true),
    F_OBJ("memoryPolicy", memory_policy_fields),
    F_MAP("netDevices", F_ELEM_OBJ(net_device_fields)),
    F_END,
};

static const struct ks_schema_field root_fields[] = {
    F_STR("path", .required = true, .rule = KS_RULE_NONEMPTY),
    F_BOOL("readonly"),
    F_END,
};

/* windows, solaris, vm and zos are not for Linux and are left alone. */
static const struct ks_schema_field spec_fields[] = {
    F_STR("ociVersion", .required = true, .check = check_version),
    F_OBJ("root", root_fields, .required = true),
    F_STR("hostname"),
    F_STR("domainname"),
    F_ARR("mounts", F_ELEM_OBJ(mount_fields)),
    F_OBJ("process", process_fields),
    F_OBJ("hooks", hooks_fields),
    F_MAP("annotations", &ks_schema_elem_string),
    F_OBJ("linux", linux_fields, .check = check_linux),
    F_END,
};

static const struct ks_schema_field spec_root = {.kind = KS_SCHEMA_OBJECT, .fields = spec_fields};

/* ---- checks across fields ---- */

static bool parse_number(const char **s, unsigned *ret)
{
    const char *c = *s;
    unsigned n = 0;
    size_t digits = 0;
    while (*c >= '0' && *c <= '9') {
        if (++digits > 9)
            return false;
        n = n * 10 + (unsigned)(*c - '0');
        c++;
    }
    if (digits == 0)
        return false;
    *s = c;
    *ret = n;
    return true;
}

/* The identifiers of a semver pre-release or build suffix: [0-9A-Za-z-] separated by dots. */
static bool is_semver_suffix(const char *s, size_t len)
{
    if (len == 0)
        return false;
    return strspn(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-.") == len;
}

static int check_version(json_object *v, struct ks_schema_path *p, struct ks_error **err)
{
    const char *s = json_object_get_string(v), *c = s;
    unsigned major = 0, minor = 0, patch = 0;
    bool ok = parse_number(&c, &major) && *c++ == '.' && parse_number(&c, &minor) && *c++ == '.' &&
              parse_number(&c, &patch);
    if (ok && *c == '-') {
        /* A pre-release of a supported version, e.g. "1.0.2-dev", as runtime-spec's own
         * development versions are named. */
        size_t n = strcspn(c + 1, "+");
        ok = is_semver_suffix(c + 1, n);
        c += 1 + n;
    }
    if (ok && *c == '+') {
        ok = is_semver_suffix(c + 1, strlen(c + 1));
        c += strlen(c);
    }
    ok = ok && *c == '\0' && major == 1 && minor <= 3;
    if (!ok) {
        char q[80];
        return ks_schema_fail(err, p, "unsupported version `%s` (supported %s to %s)",
                              ks_schema_quote(q, sizeof(q), s, strlen(s)), KS_OCI_VERSION_MIN,
                              KS_OCI_VERSION_MAX);
    }
    return 0;
}

static int check_idmap(json_object *v, struct ks_schema_path *p, struct ks_error **err)
{
    uint64_t container_id = (uint64_t)ks_json_int(v, "containerID", 0);
    uint64_t host_id = (uint64_t)ks_json_int(v, "hostID", 0);
    uint64_t size = (uint64_t)ks_json_int(v, "size", 0);
    if (size == 0)
        return ks_schema_fail(err, p, "size must not be 0");
    if (container_id + size > (uint64_t)UINT32_MAX + 1 || host_id + size > (uint64_t)UINT32_MAX + 1)
        return ks_schema_fail(err, p, "range goes past 4294967295");
    return 0;
}

static int namespace_index(const char *type)
{
    for (size_t i = 0; namespace_types[i]; i++)
        if (strcmp(type, namespace_types[i]) == 0)
            return (int)i;
    return -1;
}

static int check_namespaces(json_object *v, struct ks_schema_path *p, struct ks_error **err)
{
    unsigned seen = 0;
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
        const char *type = ks_json_str(json_object_array_get_idx(v, i), "type");
        int k = namespace_index(type);
        if (k < 0)
            continue;
        if (seen & (1u << k)) {
            size_t old = ks_schema_push_index(p, i);
            ks_schema_push_key(p, "type");
            int r = ks_schema_fail(err, p, "duplicate namespace type `%s`", type);
            ks_schema_pop(p, old);
            return r;
        }
        seen |= 1u << k;
    }
    return 0;
}

static bool has_namespace(json_object *linux_obj, const char *type)
{
    json_object *a = ks_json_get_type(linux_obj, "namespaces", json_type_array);
    size_t n = a ? json_object_array_length(a) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = ks_json_str(json_object_array_get_idx(a, i), "type");
        if (t && strcmp(t, type) == 0)
            return true;
    }
    return false;
}

static int check_linux(json_object *v, struct ks_schema_path *p, struct ks_error **err)
{
    static const struct {
        const char *field;
        json_type type;
        const char *ns;
    } needs[] = {
        {"uidMappings", json_type_array, "user"},
        {"gidMappings", json_type_array, "user"},
        {"timeOffsets", json_type_object, "time"},
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(needs); i++) {
        json_object *o = ks_json_get_type(v, needs[i].field, needs[i].type);
        size_t n = 0;
        if (o == NULL)
            continue;
        n = needs[i].type == json_type_array ? json_object_array_length(o)
                                             : (size_t)json_object_object_length(o);
        if (n == 0 || has_namespace(v, needs[i].ns))
            continue;
        size_t old = ks_schema_push_key(p, needs[i].field);
        int r = ks_schema_fail(err, p, "set but there is no %s namespace", needs[i].ns);
        ks_schema_pop(p, old);
        return r;
    }
    return 0;
}

/* ---- entry points ---- */

int ks_spec_validate(json_object *spec, struct ks_error **err)
{
    struct ks_schema_path p = {.doc = "config.json"};
    if (spec == NULL)
        return ks_schema_fail(err, &p, "expected an object");
    return ks_schema_check(&spec_root, spec, &p, err);
}

int ks_spec_validate_process(json_object *process, struct ks_error **err)
{
    static const struct ks_schema_field process_root = {.kind = KS_SCHEMA_OBJECT,
                                                        .fields = process_fields};
    struct ks_schema_path p = {.doc = "config.json"};
    ks_schema_push_key(&p, "process");
    if (process == NULL)
        return ks_schema_fail(err, &p, "expected an object");
    return ks_schema_check(&process_root, process, &p, err);
}

int ks_spec_load(const char *bundle, json_object **ret, struct ks_error **err)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/config.json", bundle) < 0)
        return ks_error_set(err, ENOMEM, "config.json");
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return ks_error_set(err, errno, "config.json: open `%s`", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return ks_error_set(err, errno, "config.json: stat `%s`", path);
    /* A FIFO or device would block or never end. */
    if (!S_ISREG(st.st_mode))
        return ks_error_set_plain(err, EINVAL, "config.json: `%s` is not a regular file", path);
    if ((uint64_t)st.st_size > SPEC_MAX_SIZE)
        return ks_error_set_plain(err, EFBIG, "config.json: larger than %zu bytes", SPEC_MAX_SIZE);

    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    /* ks_read_fd() refuses a file that fills its limit, so allow one byte more. */
    int r = ks_read_fd(fd, SPEC_MAX_SIZE + 1, &buf, &len, err);
    if (r < 0)
        return ks_error_wrap(err, "config.json: read `%s`", path);

    _cleanup_json_ json_object *spec = NULL;
    r = ks_json_parse(buf, len, &spec, err);
    if (r < 0)
        return ks_error_wrap(err, "config.json");
    r = ks_spec_validate(spec, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(spec);
    return 0;
}
