#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/fs.h"
#include "../base/json.h"
#include "../base/log.h"

/* libseccomp 2.6 learnt SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV. */
#if SCMP_VER_MAJOR > 2 || (SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR >= 6)
#define KS_HAVE_SCMP_WAITKILL 1
#else
#define KS_HAVE_SCMP_WAITKILL 0
#endif

/* Kernel flag bits (stable ABI), spelled out for headers older than the running kernel. */
#define KS_SECCOMP_FLAG_TSYNC              (1UL << 0)
#define KS_SECCOMP_FLAG_LOG                (1UL << 1)
#define KS_SECCOMP_FLAG_SPEC_ALLOW         (1UL << 2)
#define KS_SECCOMP_FLAG_NEW_LISTENER       (1UL << 3)
#define KS_SECCOMP_FLAG_WAIT_KILLABLE_RECV (1UL << 5)

struct ks_seccomp {
    scmp_filter_ctx ctx;      /* built by libseccomp; NULL when prog came from the cache */
    struct sock_filter *prog; /* the compiled program from the cache */
    unsigned short len;
    unsigned int flags; /* seccomp(2) flags for prog */
};

enum ks_action {
    KS_ACT_KILL,
    KS_ACT_KILL_PROCESS,
    KS_ACT_KILL_THREAD,
    KS_ACT_TRAP,
    KS_ACT_ERRNO,
    KS_ACT_TRACE,
    KS_ACT_ALLOW,
    KS_ACT_LOG,
    KS_ACT_NOTIFY,
    KS_ACT_MAX_,
};

static const char *const action_names[KS_ACT_MAX_] = {
    [KS_ACT_KILL] = "SCMP_ACT_KILL",
    [KS_ACT_KILL_PROCESS] = "SCMP_ACT_KILL_PROCESS",
    [KS_ACT_KILL_THREAD] = "SCMP_ACT_KILL_THREAD",
    [KS_ACT_TRAP] = "SCMP_ACT_TRAP",
    [KS_ACT_ERRNO] = "SCMP_ACT_ERRNO",
    [KS_ACT_TRACE] = "SCMP_ACT_TRACE",
    [KS_ACT_ALLOW] = "SCMP_ACT_ALLOW",
    [KS_ACT_LOG] = "SCMP_ACT_LOG",
    [KS_ACT_NOTIFY] = "SCMP_ACT_NOTIFY",
};

static const char *const operator_names[] = {
    [SCMP_CMP_NE] = "SCMP_CMP_NE",
    [SCMP_CMP_LT] = "SCMP_CMP_LT",
    [SCMP_CMP_LE] = "SCMP_CMP_LE",
    [SCMP_CMP_EQ] = "SCMP_CMP_EQ",
    [SCMP_CMP_GE] = "SCMP_CMP_GE",
    [SCMP_CMP_GT] = "SCMP_CMP_GT",
    [SCMP_CMP_MASKED_EQ] = "SCMP_CMP_MASKED_EQ",
};

/* OCI architecture names and the names libseccomp resolves; whether this libseccomp knows an
 * architecture is asked at run time, so a newer library needs no rebuild. */
static const struct {
    const char *oci;
    const char *scmp;
} arch_names[] = {
    {"SCMP_ARCH_X86", "x86"},
    {"SCMP_ARCH_X86_64", "x86_64"},
    {"SCMP_ARCH_X32", "x32"},
    {"SCMP_ARCH_ARM", "arm"},
    {"SCMP_ARCH_AARCH64", "aarch64"},
    {"SCMP_ARCH_LOONGARCH64", "loongarch64"},
    {"SCMP_ARCH_M68K", "m68k"},
    {"SCMP_ARCH_MIPS", "mips"},
    {"SCMP_ARCH_MIPS64", "mips64"},
    {"SCMP_ARCH_MIPS64N32", "mips64n32"},
    {"SCMP_ARCH_MIPSEL", "mipsel"},
    {"SCMP_ARCH_MIPSEL64", "mipsel64"},
    {"SCMP_ARCH_MIPSEL64N32", "mipsel64n32"},
    {"SCMP_ARCH_PPC", "ppc"},
    {"SCMP_ARCH_PPC64", "ppc64"},
    {"SCMP_ARCH_PPC64LE", "ppc64le"},
    {"SCMP_ARCH_RISCV64", "riscv64"},
    {"SCMP_ARCH_S390", "s390"},
    {"SCMP_ARCH_S390X", "s390x"},
    {"SCMP_ARCH_PARISC", "parisc"},
    {"SCMP_ARCH_PARISC64", "parisc64"},
    {"SCMP_ARCH_SH", "sh"},
    {"SCMP_ARCH_SHEB", "sheb"},
};

enum ks_flag {
    KS_FLAG_TSYNC,
    KS_FLAG_LOG,
    KS_FLAG_SPEC_ALLOW,
    KS_FLAG_WAIT_KILLABLE_RECV,
    KS_FLAG_MAX_,
};

static const struct {
    const char *name;
    unsigned long kernel_bits; /* what to probe the kernel with */
    bool in_libseccomp;
    enum scmp_filter_attr attr;
} flag_table[KS_FLAG_MAX_] = {
    [KS_FLAG_TSYNC] = {"SECCOMP_FILTER_FLAG_TSYNC", KS_SECCOMP_FLAG_TSYNC, true,
                       SCMP_FLTATR_CTL_TSYNC},
    [KS_FLAG_LOG] = {"SECCOMP_FILTER_FLAG_LOG", KS_SECCOMP_FLAG_LOG, true, SCMP_FLTATR_CTL_LOG},
    [KS_FLAG_SPEC_ALLOW] = {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", KS_SECCOMP_FLAG_SPEC_ALLOW, true,
                            SCMP_FLTATR_CTL_SSB},
    /* The kernel only accepts it together with a listener. */
    [KS_FLAG_WAIT_KILLABLE_RECV] = {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                                    KS_SECCOMP_FLAG_WAIT_KILLABLE_RECV |
                                        KS_SECCOMP_FLAG_NEW_LISTENER,
#if KS_HAVE_SCMP_WAITKILL
                                    true, SCMP_FLTATR_CTL_WAITKILL
#else
                                    false, _SCMP_FLTATR_MIN
#endif
    },
};

void ks_seccomp_free(struct ks_seccomp *s)
{
    if (s == NULL)
        return;
    if (s->ctx)
        seccomp_release(s->ctx);
    free(s->prog);
    free(s);
}

static void seccomp_freep(struct ks_seccomp **s)
{
    ks_seccomp_free(*s);
}

static int lookup_action(const char *name)
{
    for (int i = 0; i < KS_ACT_MAX_; i++)
        if (strcmp(action_names[i], name) == 0)
            return i;
    return -1;
}

/* Reads a JSON integer as an unsigned 64-bit value; json-c keeps values above INT64_MAX as
 * unsigned, and negative ones are refused. */
static int get_u64(json_object *v, const char *field, uint64_t *ret, struct ks_error **err)
{
    if (!json_object_is_type(v, json_type_int))
        return ks_error_msg(err, "%s: must be a non-negative integer", field);
    if (json_object_get_int64(v) < 0)
        return ks_error_msg(err, "%s: must be a non-negative integer", field);
    *ret = json_object_get_uint64(v);
    return 0;
}

/* Turns an action name and its optional errnoRet into a libseccomp action. `where` names the
 * enclosing object ("linux.seccomp" or "linux.seccomp.syscalls[3]"). */
static int parse_action(json_object *obj, const char *where, const char *action_key,
                        const char *errno_key, uint32_t *ret, struct ks_error **err)
{
    json_object *a = ks_json_get(obj, action_key);
    if (a == NULL)
        return ks_error_msg(err, "%s.%s: missing", where, action_key);
    if (!json_object_is_type(a, json_type_string))
        return ks_error_msg(err, "%s.%s: must be a string", where, action_key);
    const char *name = json_object_get_string(a);
    int act = lookup_action(name);
    if (act < 0)
        return ks_error_msg(err, "%s.%s: unknown action `%s`", where, action_key, name);

    json_object *e = ks_json_get(obj, errno_key);
    bool has_errno = e != NULL && !json_object_is_type(e, json_type_null);
    uint64_t errno_ret = EPERM;
    if (has_errno) {
        char field[256];
        snprintf(field, sizeof(field), "%s.%s", where, errno_key);
        int r = get_u64(e, field, &errno_ret, err);
        if (r < 0)
            return r;
        if (errno_ret > 0xffff)
            return ks_error_msg(err, "%s: %" PRIu64 " is out of range", field, errno_ret);
        if (act != KS_ACT_ERRNO && act != KS_ACT_TRACE)
            return ks_error_msg(err, "%s: not valid with action `%s`", field, name);
    }

    switch ((enum ks_action)act) {
    case KS_ACT_KILL:
    case KS_ACT_KILL_THREAD:
        *ret = SCMP_ACT_KILL_THREAD;
        return 0;
    case KS_ACT_KILL_PROCESS:
        *ret = SCMP_ACT_KILL_PROCESS;
        return 0;
    case KS_ACT_TRAP:
        *ret = SCMP_ACT_TRAP;
        return 0;
    case KS_ACT_ERRNO:
        *ret = SCMP_ACT_ERRNO((uint32_t)errno_ret);
        return 0;
    case KS_ACT_TRACE:
        *ret = SCMP_ACT_TRACE((uint32_t)errno_ret);
        return 0;
    case KS_ACT_ALLOW:
        *ret = SCMP_ACT_ALLOW;
        return 0;
    case KS_ACT_LOG:
        *ret = SCMP_ACT_LOG;
        return 0;
    case KS_ACT_NOTIFY:
    case KS_ACT_MAX_:
        break;
    }
    return ks_error_set_plain(err, EOPNOTSUPP,
                              "%s.%s: `%s` is not supported without listenerPath support", where,
                              action_key, name);
}

static int add_architectures(scmp_filter_ctx ctx, json_object *archs, struct ks_error **err)
{
    if (!json_object_is_type(archs, json_type_array))
        return ks_error_msg(err, "linux.seccomp.architectures: must be an array of strings");
    size_t n = json_object_array_length(archs);
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(archs, i);
        if (!json_object_is_type(v, json_type_string))
            return ks_error_msg(err, "linux.seccomp.architectures[%zu]: must be a string", i);
        const char *name = json_object_get_string(v);
        const char *scmp = NULL;
        for (size_t k = 0; k < KS_ELEMENTSOF(arch_names); k++)
            if (strcmp(arch_names[k].oci, name) == 0)
                scmp = arch_names[k].scmp;
        if (scmp == NULL)
            return ks_error_msg(err, "linux.seccomp.architectures[%zu]: unknown architecture `%s`",
                                i, name);
        uint32_t token = seccomp_arch_resolve_name(scmp);
        if (token == 0) {
            ks_debug("seccomp: architecture %s is not supported by this libseccomp, skipping it",
                     name);
            continue;
        }
        int r = seccomp_arch_add(ctx, token);
        if (r < 0 && r != -EEXIST)
            return ks_error_set(err, -r, "linux.seccomp.architectures[%zu]: adding `%s`", i, name);
    }
    return 0;
}

static int set_flags(scmp_filter_ctx ctx, json_object *flags, struct ks_error **err)
{
    if (!json_object_is_type(flags, json_type_array))
        return ks_error_msg(err, "linux.seccomp.flags: must be an array of strings");
    size_t n = json_object_array_length(flags);
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(flags, i);
        if (!json_object_is_type(v, json_type_string))
            return ks_error_msg(err, "linux.seccomp.flags[%zu]: must be a string", i);
        const char *name = json_object_get_string(v);
        int f = -1;
        for (int k = 0; k < KS_FLAG_MAX_; k++)
            if (strcmp(flag_table[k].name, name) == 0)
                f = k;
        if (f < 0)
            return ks_error_msg(err, "linux.seccomp.flags[%zu]: unknown flag `%s`", i, name);
        if (!flag_table[f].in_libseccomp)
            return ks_error_set_plain(err, EOPNOTSUPP,
                                      "linux.seccomp.flags[%zu]: `%s` is not supported by this "
                                      "libseccomp",
                                      i, name);
        int r = seccomp_attr_set(ctx, flag_table[f].attr, 1);
        if (r < 0)
            return ks_error_set(err, -r, "linux.seccomp.flags[%zu]: setting `%s`", i, name);
    }
    return 0;
}

static int parse_arg(json_object *arg, const char *where, struct scmp_arg_cmp *ret,
                     struct ks_error **err)
{
    char field[256];
    if (!json_object_is_type(arg, json_type_object))
        return ks_error_msg(err, "%s: must be an object", where);

    json_object *idx = ks_json_get(arg, "index");
    if (idx == NULL)
        return ks_error_msg(err, "%s.index: missing", where);
    uint64_t index;
    snprintf(field, sizeof(field), "%s.index", where);
    int r = get_u64(idx, field, &index, err);
    if (r < 0)
        return r;
    if (index > 5)
        return ks_error_msg(err, "%s: %" PRIu64 " is out of range (0 to 5)", field, index);

    uint64_t value = 0, value_two = 0;
    json_object *v = ks_json_get(arg, "value");
    if (v == NULL)
        return ks_error_msg(err, "%s.value: missing", where);
    snprintf(field, sizeof(field), "%s.value", where);
    r = get_u64(v, field, &value, err);
    if (r < 0)
        return r;
    v = ks_json_get(arg, "valueTwo");
    if (v != NULL && !json_object_is_type(v, json_type_null)) {
        snprintf(field, sizeof(field), "%s.valueTwo", where);
        r = get_u64(v, field, &value_two, err);
        if (r < 0)
            return r;
    }

    json_object *op = ks_json_get(arg, "op");
    if (op == NULL)
        return ks_error_msg(err, "%s.op: missing", where);
    if (!json_object_is_type(op, json_type_string))
        return ks_error_msg(err, "%s.op: must be a string", where);
    const char *op_name = json_object_get_string(op);
    int found = -1;
    for (size_t k = 0; k < KS_ELEMENTSOF(operator_names); k++)
        if (operator_names[k] && strcmp(operator_names[k], op_name) == 0)
            found = (int)k;
    if (found < 0)
        return ks_error_msg(err, "%s.op: unknown operator `%s`", where, op_name);

    /* For SCMP_CMP_MASKED_EQ, value is the mask and valueTwo the expected result. */
    *ret = (struct scmp_arg_cmp){
        .arg = (unsigned int)index,
        .op = (enum scmp_compare)found,
        .datum_a = value,
        .datum_b = value_two,
    };
    return 0;
}

static int add_syscall_rule(scmp_filter_ctx ctx, json_object *rule, size_t i, uint32_t def_action,
                            struct ks_error **err)
{
    char where[64];
    snprintf(where, sizeof(where), "linux.seccomp.syscalls[%zu]", i);
    if (!json_object_is_type(rule, json_type_object))
        return ks_error_msg(err, "%s: must be an object", where);

    uint32_t action;
    int r = parse_action(rule, where, "action", "errnoRet", &action, err);
    if (r < 0)
        return r;

    json_object *names = ks_json_get(rule, "names");
    if (names == NULL || !json_object_is_type(names, json_type_array))
        return ks_error_msg(err, "%s.names: must be an array of strings", where);

    struct scmp_arg_cmp args[6];
    size_t nargs = 0;
    bool same_index = false;
    json_object *jargs = ks_json_get(rule, "args");
    if (jargs != NULL && !json_object_is_type(jargs, json_type_null)) {
        if (!json_object_is_type(jargs, json_type_array))
            return ks_error_msg(err, "%s.args: must be an array", where);
        size_t n = json_object_array_length(jargs);
        if (n > KS_ELEMENTSOF(args))
            return ks_error_msg(err, "%s.args: more than %zu conditions", where,
                                KS_ELEMENTSOF(args));
        for (size_t k = 0; k < n; k++) {
            char arg_where[96];
            snprintf(arg_where, sizeof(arg_where), "%s.args[%zu]", where, k);
            r = parse_arg(json_object_array_get_idx(jargs, k), arg_where, &args[k], err);
            if (r < 0)
                return r;
            for (size_t p = 0; p < k; p++)
                if (args[p].arg == args[k].arg)
                    same_index = true;
        }
        nargs = n;
    }

    size_t n = json_object_array_length(names);
    for (size_t k = 0; k < n; k++) {
        json_object *v = json_object_array_get_idx(names, k);
        if (!json_object_is_type(v, json_type_string))
            return ks_error_msg(err, "%s.names[%zu]: must be a string", where, k);
        const char *name = json_object_get_string(v);
        if (action == def_action) {
            ks_debug("seccomp: %s has the default action, no rule needed", name);
            continue;
        }
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR) {
            ks_debug("seccomp: unknown syscall `%s`, skipping it", name);
            continue;
        }
        /* libseccomp ANDs the conditions of one rule, and one rule cannot compare the same
         * argument twice: then every condition becomes a rule of its own (an OR), as runc
         * does. */
        if (same_index) {
            for (size_t a = 0; a < nargs; a++) {
                r = seccomp_rule_add_array(ctx, action, nr, 1, &args[a]);
                if (r < 0)
                    return ks_error_set(err, -r, "%s: adding a rule for `%s`", where, name);
            }
        } else {
            r = seccomp_rule_add_array(ctx, action, nr, (unsigned int)nargs, args);
            if (r < 0)
                return ks_error_set(err, -r, "%s: adding a rule for `%s`", where, name);
        }
    }
    return 0;
}

int ks_seccomp_new(json_object *seccomp, struct ks_seccomp **ret, struct ks_error **err)
{
    if (seccomp == NULL || !json_object_is_type(seccomp, json_type_object))
        return ks_error_msg(err, "linux.seccomp: must be an object");

    uint32_t def_action;
    int r = parse_action(seccomp, "linux.seccomp", "defaultAction", "defaultErrnoRet", &def_action,
                         err);
    if (r < 0)
        return r;

    _cleanup_(seccomp_freep) struct ks_seccomp *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ks_error_set(err, ENOMEM, "allocating the seccomp filter");
    s->ctx = seccomp_init(def_action);
    if (s->ctx == NULL)
        return ks_error_msg(err, "linux.seccomp: libseccomp refused the default action");

    /* The caller decides about no_new_privs (process.noNewPrivileges). */
    r = seccomp_attr_set(s->ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (r < 0)
        return ks_error_set(err, -r, "linux.seccomp: clearing the NNP attribute");

    json_object *archs = ks_json_get(seccomp, "architectures");
    if (archs != NULL && !json_object_is_type(archs, json_type_null)) {
        r = add_architectures(s->ctx, archs, err);
        if (r < 0)
            return r;
    }

    json_object *flags = ks_json_get(seccomp, "flags");
    if (flags != NULL && !json_object_is_type(flags, json_type_null)) {
        r = set_flags(s->ctx, flags, err);
        if (r < 0)
            return r;
    }

    json_object *syscalls = ks_json_get(seccomp, "syscalls");
    if (syscalls != NULL && !json_object_is_type(syscalls, json_type_null)) {
        if (!json_object_is_type(syscalls, json_type_array))
            return ks_error_msg(err, "linux.seccomp.syscalls: must be an array");
        size_t n = json_object_array_length(syscalls);
        for (size_t i = 0; i < n; i++) {
            r = add_syscall_rule(s->ctx, json_object_array_get_idx(syscalls, i), i, def_action,
                                 err);
            if (r < 0)
                return r;
        }
    }

    *ret = TAKE_PTR(s);
    return 0;
}

int ks_seccomp_load(struct ks_seccomp *s, struct ks_error **err)
{
    if (s != NULL && s->prog != NULL) {
        struct sock_fprog fprog = {.len = s->len, .filter = s->prog};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, s->flags, &fprog) < 0)
            return ks_error_set(err, errno, "loading the seccomp filter");
        return 0;
    }
    if (s == NULL || s->ctx == NULL)
        return ks_error_msg(err, "no seccomp filter to load");
    int r = seccomp_load(s->ctx);
    if (r < 0)
        return ks_error_set(err, -r, "loading the seccomp filter");
    return 0;
}

/* --- compiled filters, cached ---------------------------------------------------------------
 * libseccomp takes ~15 ms to turn Docker's default profile into BPF, as long as the rest of a
 * container's start together. The program depends only on the profile and on libseccomp (its
 * version and the kernel API level it found), so it is kept in the runtime's root under a hash
 * of those, with the whole key stored beside it and compared on every hit: a hash collision or a
 * torn file is a miss, never a wrong filter. A profile with a notify listener is not cached:
 * loading the program ourselves would lose the listener fd that libseccomp hands back. */

/* Not a valid container ID, so never taken for one (nor listed). */
#define CACHE_DIR      "@seccomp-cache"
#define CACHE_MAGIC    "KSBPF1\n"
#define CACHE_MAX_SIZE (16u << 20)
#define CACHE_MAX_INSN 4096u /* BPF_MAXINSNS */

/* Owned by the caller; NULL when out of memory. */
static char *cache_key(json_object *seccomp)
{
    const struct scmp_version *v = seccomp_version();
    char *key = NULL;
    if (asprintf(&key, "libseccomp %u.%u.%u api %u\n%s", v->major, v->minor, v->micro,
                 seccomp_api_get(),
                 json_object_to_json_string_ext(seccomp, JSON_C_TO_STRING_PLAIN)) < 0)
        return NULL;
    return key;
}

/* The seccomp(2) flags of linux.seccomp.flags; false when the profile is not cacheable. */
static bool cache_flags(json_object *seccomp, const char *key, unsigned *ret)
{
    if (strstr(key, "SCMP_ACT_NOTIFY"))
        return false;
    unsigned bits = 0;
    json_object *flags = ks_json_get(seccomp, "flags");
    size_t n = json_object_is_type(flags, json_type_array) ? json_object_array_length(flags) : 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(flags, i));
        size_t f;
        for (f = 0; f < KS_FLAG_MAX_; f++)
            if (name && strcmp(name, flag_table[f].name) == 0)
                break;
        if (f == KS_FLAG_MAX_ || f == KS_FLAG_WAIT_KILLABLE_RECV)
            return false;
        bits |= (unsigned)flag_table[f].kernel_bits;
    }
    *ret = bits;
    return true;
}

static void cache_name(const char *key, char name[static 24])
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a: an index only, the key is compared */
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    snprintf(name, 24, "%016" PRIx64 ".bpf", h);
}

/* The cache directory under the runtime's root, made when mk; -EBADF when there is none. */
static int cache_dir_open(int rootfd, bool mk)
{
    if (mk && mkdirat(rootfd, CACHE_DIR, 0700) < 0 && errno != EEXIST)
        return -EBADF;
    int fd = openat(rootfd, CACHE_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    return fd < 0 ? -EBADF : fd;
}

/* The program cached for key in dirfd, into s; false on any miss. */
static bool cache_read(int rootfd, const char *name, const char *key, struct ks_seccomp *s)
{
    _cleanup_close_ int dirfd = cache_dir_open(rootfd, false);
    _cleanup_close_ int fd =
        dirfd < 0 ? -EBADF : openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    _cleanup_free_ char *buf = NULL;
    size_t len = 0, klen = strlen(key), mlen = strlen(CACHE_MAGIC);
    if (fd < 0 || ks_read_fd(fd, CACHE_MAX_SIZE, &buf, &len, NULL) < 0)
        return false;
    uint32_t n;
    size_t off = mlen + klen + 1;
    if (len < off + sizeof(n) || memcmp(buf, CACHE_MAGIC, mlen) != 0 ||
        memcmp(buf + mlen, key, klen + 1) != 0)
        return false;
    memcpy(&n, buf + off, sizeof(n));
    off += sizeof(n);
    if (n == 0 || n > CACHE_MAX_INSN || len - off != (size_t)n * sizeof(struct sock_filter))
        return false;
    s->prog = malloc((size_t)n * sizeof(struct sock_filter));
    if (s->prog == NULL)
        return false;
    memcpy(s->prog, buf + off, (size_t)n * sizeof(struct sock_filter));
    s->len = (unsigned short)n;
    return true;
}

/* Stores the program libseccomp built in s->ctx; failures only cost the next start a compile. */
static void cache_write(int rootfd, const char *name, const char *key, struct ks_seccomp *s)
{
    _cleanup_close_ int dirfd = cache_dir_open(rootfd, true);
    if (dirfd < 0)
        return;
    _cleanup_close_ int mfd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
    _cleanup_free_ char *prog = NULL;
    size_t plen = 0;
    if (mfd < 0 || seccomp_export_bpf(s->ctx, mfd) < 0 || lseek(mfd, 0, SEEK_SET) < 0 ||
        ks_read_fd(mfd, CACHE_MAX_INSN * sizeof(struct sock_filter) + 1, &prog, &plen, NULL) < 0)
        return;
    uint32_t n = (uint32_t)(plen / sizeof(struct sock_filter));
    if (n == 0 || n > CACHE_MAX_INSN || plen % sizeof(struct sock_filter) != 0)
        return;
    size_t mlen = strlen(CACHE_MAGIC), klen = strlen(key) + 1;
    size_t len = mlen + klen + sizeof(n) + plen;
    _cleanup_free_ char *buf = malloc(len);
    if (buf == NULL)
        return;
    memcpy(buf, CACHE_MAGIC, mlen);
    memcpy(buf + mlen, key, klen);
    memcpy(buf + mlen + klen, &n, sizeof(n));
    memcpy(buf + mlen + klen + sizeof(n), prog, plen);
    ks_write_file_atomic(dirfd, name, buf, len, 0600, NULL);
}

int ks_seccomp_cache_open(const char *runtime_root)
{
    int fd = runtime_root ? open(runtime_root, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    return fd < 0 ? -EBADF : fd;
}

int ks_seccomp_new_cached(json_object *seccomp, int cache_rootfd, struct ks_seccomp **ret,
                          struct ks_error **err)
{
    if (cache_rootfd < 0 || !json_object_is_type(seccomp, json_type_object))
        return ks_seccomp_new(seccomp, ret, err);
    _cleanup_free_ char *key = cache_key(seccomp);
    unsigned flags = 0;
    if (key == NULL || !cache_flags(seccomp, key, &flags))
        return ks_seccomp_new(seccomp, ret, err);
    char name[24];
    cache_name(key, name);
    _cleanup_(seccomp_freep) struct ks_seccomp *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ks_error_set(err, ENOMEM, "allocating the seccomp filter");
    if (cache_read(cache_rootfd, name, key, s)) {
        s->flags = flags;
        *ret = TAKE_PTR(s);
        return 0;
    }
    int r = ks_seccomp_new(seccomp, ret, err);
    if (r >= 0)
        cache_write(cache_rootfd, name, key, *ret);
    return r;
}

/* A flag the kernel knows makes seccomp(2) fail on the NULL program (EFAULT) rather than on
 * the flag (EINVAL); nothing is installed either way. */
static bool kernel_knows_flag(unsigned long bits)
{
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, bits, NULL);
    return r < 0 && errno == EFAULT;
}

static int add_string(json_object *arr, const char *s)
{
    json_object *v = json_object_new_string(s);
    if (v == NULL)
        return -ENOMEM;
    if (json_object_array_add(arr, v) < 0) {
        json_object_put(v);
        return -ENOMEM;
    }
    return 0;
}

/* A new array stored in o under key (borrowed), or NULL. */
static json_object *add_array(json_object *o, const char *key)
{
    json_object *a = json_object_new_array();
    if (a == NULL)
        return NULL;
    if (json_object_object_add(o, key, a) < 0) {
        json_object_put(a);
        return NULL;
    }
    return a;
}

json_object *ks_seccomp_features_json(void)
{
    _cleanup_json_ json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    json_object *enabled = json_object_new_boolean(1);
    if (enabled == NULL || json_object_object_add(o, "enabled", enabled) < 0) {
        json_object_put(enabled);
        return NULL;
    }
    json_object *actions = add_array(o, "actions");
    json_object *operators = add_array(o, "operators");
    json_object *archs = add_array(o, "archs");
    json_object *known = add_array(o, "knownFlags");
    json_object *supported = add_array(o, "supportedFlags");
    if (!actions || !operators || !archs || !known || !supported)
        return NULL;

    for (int i = 0; i < KS_ACT_MAX_; i++) {
        if (i == KS_ACT_NOTIFY)
            continue;
        if (add_string(actions, action_names[i]) < 0)
            return NULL;
    }
    for (size_t i = 0; i < KS_ELEMENTSOF(operator_names); i++)
        if (operator_names[i] && add_string(operators, operator_names[i]) < 0)
            return NULL;
    for (size_t i = 0; i < KS_ELEMENTSOF(arch_names); i++)
        if (seccomp_arch_resolve_name(arch_names[i].scmp) != 0 &&
            add_string(archs, arch_names[i].oci) < 0)
            return NULL;
    for (int i = 0; i < KS_FLAG_MAX_; i++) {
        if (add_string(known, flag_table[i].name) < 0)
            return NULL;
        if (flag_table[i].in_libseccomp && kernel_knows_flag(flag_table[i].kernel_bits) &&
            add_string(supported, flag_table[i].name) < 0)
            return NULL;
    }
    return TAKE_PTR(o);
}
