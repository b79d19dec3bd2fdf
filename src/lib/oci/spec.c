#include "spec.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../base/fs.h"
#include "../base/json.h"

/* config.json is untrusted input: bound what is read before it is parsed. */
#define SPEC_MAX_SIZE ((size_t)16 << 20)

/* The schema is a tree of field descriptions, walked once over the document. Each entry says
 * what JSON type a member must have and, where the spec says more (allowed values, ranges,
 * absolute paths), what else to check; a few checks that look across fields are hooks. */
enum kind {
    K_STRING = 1,
    K_BOOL,
    K_INT,
    K_OBJECT, /* members described by .fields */
    K_ARRAY,  /* every member described by .elem */
    K_MAP,    /* object with arbitrary keys, every value described by .elem */
};

enum str_rule {
    S_ANY = 0,
    S_NONEMPTY,
    S_ABSOLUTE,
    S_ABSOLUTE_OR_EMPTY,
    S_ENV,    /* KEY=VALUE with a non-empty KEY */
    S_ACCESS, /* device cgroup access: letters of "rwm" */
};

/* The JSON path of the value being checked, for error messages. Long keys are truncated. */
struct path {
    char buf[512];
    size_t len;
};

struct field;
typedef int (*check_fn)(json_object *v, struct path *p, struct ks_error **err);

struct field {
    const char *name;
    enum kind kind;
    bool required;
    bool nonempty;              /* K_ARRAY: at least one member */
    bool closed;                /* K_OBJECT: keys outside .fields are errors */
    enum str_rule rule;         /* K_STRING */
    int64_t min;                /* K_INT: inclusive range */
    uint64_t max;               /* K_INT */
    const char *const *values;  /* K_STRING: the allowed values, NULL-terminated */
    const char *what;           /* K_STRING with .values: the noun for an unknown value */
    const struct field *fields; /* K_OBJECT: ended by an entry without a name */
    const struct field *elem;   /* K_ARRAY, K_MAP */
    check_fn check;             /* runs after the value passed its own checks */
};

/* clang-format off */
#define F_STR(n, ...)          {.name = n, .kind = K_STRING, __VA_ARGS__}
#define F_BOOL(n, ...)         {.name = n, .kind = K_BOOL, __VA_ARGS__}
#define F_INT(n, lo, hi, ...)  {.name = n, .kind = K_INT, .min = lo, .max = hi, __VA_ARGS__}
#define F_I64(n, ...)          F_INT(n, INT64_MIN, INT64_MAX, __VA_ARGS__)
#define F_I32(n, ...)          F_INT(n, INT32_MIN, INT32_MAX, __VA_ARGS__)
#define F_U64(n, ...)          F_INT(n, 0, UINT64_MAX, __VA_ARGS__)
#define F_U32(n, ...)          F_INT(n, 0, UINT32_MAX, __VA_ARGS__)
#define F_U16(n, ...)          F_INT(n, 0, UINT16_MAX, __VA_ARGS__)
#define F_OBJ(n, members, ...) {.name = n, .kind = K_OBJECT, .fields = members, __VA_ARGS__}
#define F_ARR(n, element, ...) {.name = n, .kind = K_ARRAY, .elem = element, __VA_ARGS__}
#define F_MAP(n, element, ...) {.name = n, .kind = K_MAP, .elem = element, __VA_ARGS__}
#define F_STRV(n, ...)         F_ARR(n, &elem_string, __VA_ARGS__)
#define F_END                  {.name = NULL}
/* clang-format on */

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

static int check_version(json_object *v, struct path *p, struct ks_error **err);
static int check_idmap(json_object *v, struct path *p, struct ks_error **err);
static int check_namespaces(json_object *v, struct path *p, struct ks_error **err);
static int check_linux(json_object *v, struct path *p, struct ks_error **err);

/* ---- the schema, leaves first ---- */

static const struct field elem_string = {.kind = K_STRING};
static const struct field elem_env = {.kind = K_STRING, .rule = S_ENV};
static const struct field elem_u32 = {.kind = K_INT, .min = 0, .max = UINT32_MAX};

static const struct field idmap_fields[] = {
    F_U32("containerID", .required = true),
    F_U32("hostID", .required = true),
    F_U32("size", .required = true),
    F_END,
};
static const struct field elem_idmap = {
    .kind = K_OBJECT, .fields = idmap_fields, .check = check_idmap};

static const struct field mount_fields[] = {
    /* Relative destinations are accepted, as runc does, for old bundles. */
    F_STR("destination", .required = true, .rule = S_NONEMPTY),
    F_STR("type"),
    F_STR("source"),
    F_STRV("options"),
    F_ARR("uidMappings", &elem_idmap),
    F_ARR("gidMappings", &elem_idmap),
    F_END,
};

static const struct field console_size_fields[] = {
    F_U16("height"),
    F_U16("width"),
    F_END,
};

static const struct field user_fields[] = {
    F_U32("uid"),      F_U32("gid"), F_U32("umask"), F_ARR("additionalGids", &elem_u32),
    F_STR("username"), F_END,
};

static const struct field capabilities_fields[] = {
    F_STRV("bounding"),  F_STRV("effective"), F_STRV("inheritable"),
    F_STRV("permitted"), F_STRV("ambient"),   F_END,
};

static const struct field rlimit_fields[] = {
    F_STR("type", .required = true, .values = rlimit_types, .what = "rlimit type"),
    F_U64("hard"),
    F_U64("soft"),
    F_END,
};

static const struct field elem_sched_flag = {
    .kind = K_STRING, .values = sched_flags, .what = "scheduler flag"};

static const struct field scheduler_fields[] = {
    F_STR("policy", .required = true, .values = sched_policies, .what = "scheduler policy"),
    F_INT("nice", -20, 19),
    F_I32("priority"),
    F_ARR("flags", &elem_sched_flag),
    F_U64("runtime"),
    F_U64("deadline"),
    F_U64("period"),
    F_END,
};

static const struct field io_priority_fields[] = {
    F_STR("class", .required = true, .values = ioprio_classes, .what = "I/O priority class"),
    F_INT("priority", 0, 7),
    F_END,
};

static const struct field cpu_affinity_fields[] = {
    F_STR("initial"),
    F_STR("final"),
    F_END,
};

static const struct field process_fields[] = {
    F_BOOL("terminal"),
    F_OBJ("consoleSize", console_size_fields),
    F_OBJ("user", user_fields),
    F_STRV("args", .required = true, .nonempty = true),
    F_STR("commandLine"),
    F_ARR("env", &elem_env),
    F_STR("cwd", .required = true, .rule = S_ABSOLUTE),
    F_OBJ("capabilities", capabilities_fields),
    F_ARR("rlimits", &(const struct field){.kind = K_OBJECT, .fields = rlimit_fields}),
    F_BOOL("noNewPrivileges"),
    F_STR("apparmorProfile"),
    F_INT("oomScoreAdj", -1000, 1000),
    F_OBJ("scheduler", scheduler_fields),
    F_STR("selinuxLabel"),
    F_OBJ("ioPriority", io_priority_fields),
    F_OBJ("execCPUAffinity", cpu_affinity_fields),
    F_END,
};

static const struct field hook_fields[] = {
    F_STR("path", .required = true, .rule = S_ABSOLUTE),
    F_STRV("args"),
    F_ARR("env", &elem_env),
    F_INT("timeout", 1, INT32_MAX),
    F_END,
};
static const struct field elem_hook = {.kind = K_OBJECT, .fields = hook_fields};

static const struct field hooks_fields[] = {
    F_ARR("prestart", &elem_hook),
    F_ARR("createRuntime", &elem_hook),
    F_ARR("createContainer", &elem_hook),
    F_ARR("startContainer", &elem_hook),
    F_ARR("poststart", &elem_hook),
    F_ARR("poststop", &elem_hook),
    F_END,
};

static const struct field cgroup_device_fields[] = {
    F_BOOL("allow", .required = true),
    F_STR("type", .values = cgroup_device_types, .what = "device type"),
    F_I64("major"),
    F_I64("minor"),
    F_STR("access", .rule = S_ACCESS),
    F_END,
};

static const struct field memory_fields[] = {
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

static const struct field cpu_fields[] = {
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

static const struct field pids_fields[] = {
    F_I64("limit"),
    F_END,
};

static const struct field weight_device_fields[] = {
    F_I64("major", .required = true),
    F_I64("minor", .required = true),
    F_U16("weight"),
    F_U16("leafWeight"),
    F_END,
};

static const struct field throttle_device_fields[] = {
    F_I64("major", .required = true),
    F_I64("minor", .required = true),
    F_U64("rate"),
    F_END,
};
static const struct field elem_throttle = {.kind = K_OBJECT, .fields = throttle_device_fields};

static const struct field block_io_fields[] = {
    F_U16("weight"),
    F_U16("leafWeight"),
    F_ARR("weightDevice", &(const struct field){.kind = K_OBJECT, .fields = weight_device_fields}),
    F_ARR("throttleReadBpsDevice", &elem_throttle),
    F_ARR("throttleWriteBpsDevice", &elem_throttle),
    F_ARR("throttleReadIOPSDevice", &elem_throttle),
    F_ARR("throttleWriteIOPSDevice", &elem_throttle),
    F_END,
};

static const struct field hugepage_fields[] = {
    F_STR("pageSize", .required = true, .rule = S_NONEMPTY),
    F_U64("limit"),
    F_END,
};

static const struct field net_priority_fields[] = {
    F_STR("name", .required = true),
    F_U32("priority"),
    F_END,
};

static const struct field network_fields[] = {
    F_U32("classID"),
    F_ARR("priorities", &(const struct field){.kind = K_OBJECT, .fields = net_priority_fields}),
    F_END,
};

static const struct field rdma_fields[] = {
    F_U32("hcaHandles"),
    F_U32("hcaObjects"),
    F_END,
};

static const struct field resources_fields[] = {
    F_ARR("devices", &(const struct field){.kind = K_OBJECT, .fields = cgroup_device_fields}),
    F_OBJ("memory", memory_fields),
    F_OBJ("cpu", cpu_fields),
    F_OBJ("pids", pids_fields),
    F_OBJ("blockIO", block_io_fields),
    F_ARR("hugepageLimits", &(const struct field){.kind = K_OBJECT, .fields = hugepage_fields}),
    F_OBJ("network", network_fields),
    F_MAP("rdma", &(const struct field){.kind = K_OBJECT, .fields = rdma_fields}),
    F_MAP("unified", &elem_string),
    F_END,
};

static const struct field namespace_fields[] = {
    F_STR("type", .required = true, .values = namespace_types, .what = "namespace type"),
    F_STR("path", .rule = S_ABSOLUTE_OR_EMPTY),
    F_END,
};

static const struct field device_fields[] = {
    F_STR("type", .required = true, .values = device_types, .what = "device type"),
    F_STR("path", .required = true, .rule = S_ABSOLUTE),
    F_I64("major"),
    F_I64("minor"),
    F_U32("fileMode"),
    F_U32("uid"),
    F_U32("gid"),
    F_END,
};

static const struct field seccomp_arg_fields[] = {
    F_U32("index", .required = true),
    F_U64("value", .required = true),
    F_U64("valueTwo"),
    F_STR("op", .required = true),
    F_END,
};

static const struct field syscall_fields[] = {
    F_STRV("names", .required = true, .nonempty = true),
    F_STR("action", .required = true),
    F_U32("errnoRet"),
    F_ARR("args", &(const struct field){.kind = K_OBJECT, .fields = seccomp_arg_fields}),
    F_END,
};

/* Only types: the seccomp module checks action, architecture, flag and operator names. */
static const struct field seccomp_fields[] = {
    F_STR("defaultAction", .required = true),
    F_U32("defaultErrnoRet"),
    F_STRV("architectures"),
    F_STRV("flags"),
    F_STR("listenerPath"),
    F_STR("listenerMetadata"),
    F_ARR("syscalls", &(const struct field){.kind = K_OBJECT, .fields = syscall_fields}),
    F_END,
};

static const struct field intel_rdt_fields[] = {
    F_STR("closID"),     F_STR("l3CacheSchema"), F_STR("memBwSchema"),       F_STRV("schemata"),
    F_BOOL("enableCMT"), F_BOOL("enableMBM"),    F_BOOL("enableMonitoring"), F_END,
};

static const struct field personality_fields[] = {
    F_STR("domain", .required = true, .values = personality_domains, .what = "personality domain"),
    F_STRV("flags"),
    F_END,
};

static const struct field time_offset_fields[] = {
    F_I64("secs"),
    F_U32("nanosecs"),
    F_END,
};
/* A closed object: the kernel knows no other clocks, and a typo would be silently ignored. */
static const struct field time_offsets_fields[] = {
    F_OBJ("monotonic", time_offset_fields),
    F_OBJ("boottime", time_offset_fields),
    F_END,
};

static const struct field elem_mpol_flag = {
    .kind = K_STRING, .values = mpol_flags, .what = "memory policy flag"};

static const struct field memory_policy_fields[] = {
    F_STR("mode", .required = true, .values = mpol_modes, .what = "memory policy mode"),
    F_STR("nodes"),
    F_ARR("flags", &elem_mpol_flag),
    F_END,
};

static const struct field net_device_fields[] = {
    F_STR("name"),
    F_END,
};

static const struct field linux_fields[] = {
    F_ARR("uidMappings", &elem_idmap),
    F_ARR("gidMappings", &elem_idmap),
    F_MAP("sysctl", &elem_string),
    F_OBJ("resources", resources_fields),
    F_STR("cgroupsPath"),
    F_ARR("namespaces", &(const struct field){.kind = K_OBJECT, .fields = namespace_fields},
          .check = check_namespaces),
    F_ARR("devices", &(const struct field){.kind = K_OBJECT, .fields = device_fields}),
    F_OBJ("seccomp", seccomp_fields),
    F_STR("rootfsPropagation", .values = propagations, .what = "rootfs propagation"),
    F_STRV("maskedPaths"),
    F_STRV("readonlyPaths"),
    F_STR("mountLabel"),
    F_OBJ("intelRdt", intel_rdt_fields),
    F_OBJ("personality", personality_fields),
    F_OBJ("timeOffsets", time_offsets_fields, .closed = true),
    F_OBJ("memoryPolicy", memory_policy_fields),
    F_MAP("netDevices", &(const struct field){.kind = K_OBJECT, .fields = net_device_fields}),
    F_END,
};

static const struct field root_fields[] = {
    F_STR("path", .required = true, .rule = S_NONEMPTY),
    F_BOOL("readonly"),
    F_END,
};

/* windows, solaris, vm and zos are not for Linux and are left alone. */
static const struct field spec_fields[] = {
    F_STR("ociVersion", .required = true, .check = check_version),
    F_OBJ("root", root_fields, .required = true),
    F_STR("hostname"),
    F_STR("domainname"),
    F_ARR("mounts", &(const struct field){.kind = K_OBJECT, .fields = mount_fields}),
    F_OBJ("process", process_fields),
    F_OBJ("hooks", hooks_fields),
    F_MAP("annotations", &elem_string),
    F_OBJ("linux", linux_fields, .check = check_linux),
    F_END,
};

static const struct field spec_root = {.kind = K_OBJECT, .fields = spec_fields};

/* ---- paths and errors ---- */

/* Values from the document go into messages that a terminal will show: cut them short and
 * replace control characters. */
static const char *quote(char *buf, size_t size, const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n < len && n + 4 <= size) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static void path_appendf(struct path *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void path_appendf(struct path *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->buf + p->len, sizeof(p->buf) - p->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    p->len += (size_t)n;
    if (p->len >= sizeof(p->buf))
        p->len = sizeof(p->buf) - 1;
}

static size_t path_push_key(struct path *p, const char *key)
{
    size_t old = p->len;
    path_appendf(p, "%s%s", p->len ? "." : "", key);
    return old;
}

static size_t path_push_index(struct path *p, size_t i)
{
    size_t old = p->len;
    path_appendf(p, "[%zu]", i);
    return old;
}

static size_t path_push_map_key(struct path *p, const char *key)
{
    size_t old = p->len;
    char q[80];
    path_appendf(p, "[\"%s\"]", quote(q, sizeof(q), key, strlen(key)));
    return old;
}

static void path_pop(struct path *p, size_t old)
{
    p->len = old;
    p->buf[old] = '\0';
}

static int fail(struct ks_error **err, const struct path *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct ks_error **err, const struct path *p, const char *fmt, ...)
{
    _cleanup_free_ char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ks_error_set(err, ENOMEM, "config.json");
    if (p->len == 0)
        return ks_error_msg(err, "config.json: %s", msg);
    return ks_error_msg(err, "config.json: %s: %s", p->buf, msg);
}

/* ---- the walk ---- */

static int check_field(const struct field *f, json_object *v, struct path *p,
                       struct ks_error **err);

static bool is_one_of(const char *s, const char *const *values)
{
    for (; *values; values++)
        if (strcmp(s, *values) == 0)
            return true;
    return false;
}

static int check_string(const struct field *f, json_object *v, struct path *p,
                        struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_string))
        return fail(err, p, "expected a string");
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    char q[80];
    /* Every string ends up in a C API (paths, argv, env): an embedded NUL would cut it. */
    if (strlen(s) != len)
        return fail(err, p, "contains a NUL byte");
    switch (f->rule) {
    case S_ANY:
        break;
    case S_NONEMPTY:
        if (len == 0)
            return fail(err, p, "must not be empty");
        break;
    case S_ABSOLUTE_OR_EMPTY:
        if (len == 0)
            break;
        __attribute__((fallthrough));
    case S_ABSOLUTE:
        if (s[0] != '/')
            return fail(err, p, "must be an absolute path, not `%s`", quote(q, sizeof(q), s, len));
        break;
    case S_ENV: {
        const char *eq = strchr(s, '=');
        if (eq == NULL || eq == s)
            return fail(err, p, "expected KEY=VALUE, not `%s`", quote(q, sizeof(q), s, len));
        break;
    }
    case S_ACCESS:
        if (strspn(s, "rwm") != len)
            return fail(err, p, "invalid access `%s` (letters of rwm)",
                        quote(q, sizeof(q), s, len));
        break;
    }
    if (f->values && !is_one_of(s, f->values))
        return fail(err, p, "unknown %s `%s`", f->what ? f->what : "value",
                    quote(q, sizeof(q), s, len));
    return 0;
}

static int check_int(const struct field *f, json_object *v, struct path *p, struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_int))
        return fail(err, p, "expected an integer");
    /* json-c keeps integers as int64 or, above INT64_MAX, as uint64. */
    int64_t s = json_object_get_int64(v);
    if (s < 0) {
        if (s < f->min)
            return fail(err, p, "%" PRId64 " is out of range (%" PRId64 " to %" PRIu64 ")", s,
                        f->min, f->max);
    } else {
        uint64_t u = json_object_get_uint64(v);
        if (u > f->max || (f->min > 0 && u < (uint64_t)f->min))
            return fail(err, p, "%" PRIu64 " is out of range (%" PRId64 " to %" PRIu64 ")", u,
                        f->min, f->max);
    }
    return 0;
}

static int check_object(const struct field *f, json_object *v, struct path *p,
                        struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_object))
        return fail(err, p, "expected an object");
    for (const struct field *m = f->fields; m && m->name; m++) {
        json_object *mv = NULL;
        size_t old = path_push_key(p, m->name);
        /* A null member counts as absent, as it does for Go's encoding/json. */
        if (!json_object_object_get_ex(v, m->name, &mv) || mv == NULL) {
            int r = m->required ? fail(err, p, "required but missing") : 0;
            path_pop(p, old);
            if (r < 0)
                return r;
            continue;
        }
        int r = check_field(m, mv, p, err);
        path_pop(p, old);
        if (r < 0)
            return r;
    }
    if (f->closed) {
        json_object_object_foreach(v, key, val)
        {
            (void)val;
            bool known = false;
            for (const struct field *m = f->fields; m && m->name; m++)
                known = known || strcmp(m->name, key) == 0;
            if (!known) {
                char q[80];
                return fail(err, p, "unknown key `%s`", quote(q, sizeof(q), key, strlen(key)));
            }
        }
    }
    return 0;
}

static int check_array(const struct field *f, json_object *v, struct path *p, struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_array))
        return fail(err, p, "expected an array");
    size_t n = json_object_array_length(v);
    if (n == 0 && f->nonempty)
        return fail(err, p, "must not be empty");
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push_index(p, i);
        int r = check_field(f->elem, json_object_array_get_idx(v, i), p, err);
        path_pop(p, old);
        if (r < 0)
            return r;
    }
    return 0;
}

static int check_map(const struct field *f, json_object *v, struct path *p, struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_object))
        return fail(err, p, "expected an object");
    json_object_object_foreach(v, key, val)
    {
        size_t old = path_push_map_key(p, key);
        int r = check_field(f->elem, val, p, err);
        path_pop(p, old);
        if (r < 0)
            return r;
    }
    return 0;
}

static int check_field(const struct field *f, json_object *v, struct path *p, struct ks_error **err)
{
    int r = 0;
    /* Members of arrays and maps reach here as NULL when they are JSON null. */
    if (v == NULL)
        return fail(err, p, "unexpected null");
    switch (f->kind) {
    case K_STRING:
        r = check_string(f, v, p, err);
        break;
    case K_BOOL:
        if (!json_object_is_type(v, json_type_boolean))
            r = fail(err, p, "expected a boolean");
        break;
    case K_INT:
        r = check_int(f, v, p, err);
        break;
    case K_OBJECT:
        r = check_object(f, v, p, err);
        break;
    case K_ARRAY:
        r = check_array(f, v, p, err);
        break;
    case K_MAP:
        r = check_map(f, v, p, err);
        break;
    }
    if (r < 0)
        return r;
    return f->check ? f->check(v, p, err) : 0;
}

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

static int check_version(json_object *v, struct path *p, struct ks_error **err)
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
        return fail(err, p, "unsupported version `%s` (supported %s to %s)",
                    quote(q, sizeof(q), s, strlen(s)), KS_OCI_VERSION_MIN, KS_OCI_VERSION_MAX);
    }
    return 0;
}

static int check_idmap(json_object *v, struct path *p, struct ks_error **err)
{
    uint64_t container_id = (uint64_t)ks_json_int(v, "containerID", 0);
    uint64_t host_id = (uint64_t)ks_json_int(v, "hostID", 0);
    uint64_t size = (uint64_t)ks_json_int(v, "size", 0);
    if (size == 0)
        return fail(err, p, "size must not be 0");
    if (container_id + size > (uint64_t)UINT32_MAX + 1 || host_id + size > (uint64_t)UINT32_MAX + 1)
        return fail(err, p, "range goes past 4294967295");
    return 0;
}

static int namespace_index(const char *type)
{
    for (size_t i = 0; namespace_types[i]; i++)
        if (strcmp(type, namespace_types[i]) == 0)
            return (int)i;
    return -1;
}

static int check_namespaces(json_object *v, struct path *p, struct ks_error **err)
{
    unsigned seen = 0;
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
        const char *type = ks_json_str(json_object_array_get_idx(v, i), "type");
        int k = namespace_index(type);
        if (k < 0)
            continue;
        if (seen & (1u << k)) {
            size_t old = path_push_index(p, i);
            path_push_key(p, "type");
            int r = fail(err, p, "duplicate namespace type `%s`", type);
            path_pop(p, old);
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

static int check_linux(json_object *v, struct path *p, struct ks_error **err)
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
        size_t old = path_push_key(p, needs[i].field);
        int r = fail(err, p, "set but there is no %s namespace", needs[i].ns);
        path_pop(p, old);
        return r;
    }
    return 0;
}

/* ---- entry points ---- */

int ks_spec_validate(json_object *spec, struct ks_error **err)
{
    struct path p = {.len = 0};
    if (spec == NULL)
        return fail(err, &p, "expected an object");
    return check_field(&spec_root, spec, &p, err);
}

int ks_spec_validate_process(json_object *process, struct ks_error **err)
{
    static const struct field process_root = {.kind = K_OBJECT, .fields = process_fields};
    struct path p = {.len = 0};
    path_push_key(&p, "process");
    if (process == NULL)
        return fail(err, &p, "expected an object");
    return check_field(&process_root, process, &p, err);
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
