#include "caps.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../base/json.h"
#include "../base/log.h"

/* Capability numbers are a stable kernel ABI; naming them here keeps the table complete even
 * when the build host's headers are older than the kernel it runs on. */
enum {
    KS_CAP_CHOWN = 0,
    KS_CAP_DAC_OVERRIDE = 1,
    KS_CAP_DAC_READ_SEARCH = 2,
    KS_CAP_FOWNER = 3,
    KS_CAP_FSETID = 4,
    KS_CAP_KILL = 5,
    KS_CAP_SETGID = 6,
    KS_CAP_SETUID = 7,
    KS_CAP_SETPCAP = 8,
    KS_CAP_LINUX_IMMUTABLE = 9,
    KS_CAP_NET_BIND_SERVICE = 10,
    KS_CAP_NET_BROADCAST = 11,
    KS_CAP_NET_ADMIN = 12,
    KS_CAP_NET_RAW = 13,
    KS_CAP_IPC_LOCK = 14,
    KS_CAP_IPC_OWNER = 15,
    KS_CAP_SYS_MODULE = 16,
    KS_CAP_SYS_RAWIO = 17,
    KS_CAP_SYS_CHROOT = 18,
    KS_CAP_SYS_PTRACE = 19,
    KS_CAP_SYS_PACCT = 20,
    KS_CAP_SYS_ADMIN = 21,
    KS_CAP_SYS_BOOT = 22,
    KS_CAP_SYS_NICE = 23,
    KS_CAP_SYS_RESOURCE = 24,
    KS_CAP_SYS_TIME = 25,
    KS_CAP_SYS_TTY_CONFIG = 26,
    KS_CAP_MKNOD = 27,
    KS_CAP_LEASE = 28,
    KS_CAP_AUDIT_WRITE = 29,
    KS_CAP_AUDIT_CONTROL = 30,
    KS_CAP_SETFCAP = 31,
    KS_CAP_MAC_OVERRIDE = 32,
    KS_CAP_MAC_ADMIN = 33,
    KS_CAP_SYSLOG = 34,
    KS_CAP_WAKE_ALARM = 35,
    KS_CAP_BLOCK_SUSPEND = 36,
    KS_CAP_AUDIT_READ = 37,
    KS_CAP_PERFMON = 38,
    KS_CAP_BPF = 39,
    KS_CAP_CHECKPOINT_RESTORE = 40,
    KS_CAP_MAX_KNOWN = KS_CAP_CHECKPOINT_RESTORE,
};

static const char *const cap_names[] = {
    [KS_CAP_CHOWN] = "CAP_CHOWN",
    [KS_CAP_DAC_OVERRIDE] = "CAP_DAC_OVERRIDE",
    [KS_CAP_DAC_READ_SEARCH] = "CAP_DAC_READ_SEARCH",
    [KS_CAP_FOWNER] = "CAP_FOWNER",
    [KS_CAP_FSETID] = "CAP_FSETID",
    [KS_CAP_KILL] = "CAP_KILL",
    [KS_CAP_SETGID] = "CAP_SETGID",
    [KS_CAP_SETUID] = "CAP_SETUID",
    [KS_CAP_SETPCAP] = "CAP_SETPCAP",
    [KS_CAP_LINUX_IMMUTABLE] = "CAP_LINUX_IMMUTABLE",
    [KS_CAP_NET_BIND_SERVICE] = "CAP_NET_BIND_SERVICE",
    [KS_CAP_NET_BROADCAST] = "CAP_NET_BROADCAST",
    [KS_CAP_NET_ADMIN] = "CAP_NET_ADMIN",
    [KS_CAP_NET_RAW] = "CAP_NET_RAW",
    [KS_CAP_IPC_LOCK] = "CAP_IPC_LOCK",
    [KS_CAP_IPC_OWNER] = "CAP_IPC_OWNER",
    [KS_CAP_SYS_MODULE] = "CAP_SYS_MODULE",
    [KS_CAP_SYS_RAWIO] = "CAP_SYS_RAWIO",
    [KS_CAP_SYS_CHROOT] = "CAP_SYS_CHROOT",
    [KS_CAP_SYS_PTRACE] = "CAP_SYS_PTRACE",
    [KS_CAP_SYS_PACCT] = "CAP_SYS_PACCT",
    [KS_CAP_SYS_ADMIN] = "CAP_SYS_ADMIN",
    [KS_CAP_SYS_BOOT] = "CAP_SYS_BOOT",
    [KS_CAP_SYS_NICE] = "CAP_SYS_NICE",
    [KS_CAP_SYS_RESOURCE] = "CAP_SYS_RESOURCE",
    [KS_CAP_SYS_TIME] = "CAP_SYS_TIME",
    [KS_CAP_SYS_TTY_CONFIG] = "CAP_SYS_TTY_CONFIG",
    [KS_CAP_MKNOD] = "CAP_MKNOD",
    [KS_CAP_LEASE] = "CAP_LEASE",
    [KS_CAP_AUDIT_WRITE] = "CAP_AUDIT_WRITE",
    [KS_CAP_AUDIT_CONTROL] = "CAP_AUDIT_CONTROL",
    [KS_CAP_SETFCAP] = "CAP_SETFCAP",
    [KS_CAP_MAC_OVERRIDE] = "CAP_MAC_OVERRIDE",
    [KS_CAP_MAC_ADMIN] = "CAP_MAC_ADMIN",
    [KS_CAP_SYSLOG] = "CAP_SYSLOG",
    [KS_CAP_WAKE_ALARM] = "CAP_WAKE_ALARM",
    [KS_CAP_BLOCK_SUSPEND] = "CAP_BLOCK_SUSPEND",
    [KS_CAP_AUDIT_READ] = "CAP_AUDIT_READ",
    [KS_CAP_PERFMON] = "CAP_PERFMON",
    [KS_CAP_BPF] = "CAP_BPF",
    [KS_CAP_CHECKPOINT_RESTORE] = "CAP_CHECKPOINT_RESTORE",
};

/* The masks are 64 bits wide; a kernel will not outgrow that before capset's ABI changes. */
#define KS_CAP_MASK_BITS 64

#define CAP_BIT(c) (UINT64_C(1) << (c))

int ks_caps_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    const char *bare = name;
    if (strncasecmp(bare, "CAP_", 4) == 0)
        bare += 4;
    if (*bare == '\0')
        return -1;
    for (size_t i = 0; i < KS_ELEMENTSOF(cap_names); i++)
        if (cap_names[i] && strcasecmp(cap_names[i] + 4, bare) == 0)
            return (int)i;
    return -1;
}

const char *ks_caps_name(int cap)
{
    if (cap < 0 || (size_t)cap >= KS_ELEMENTSOF(cap_names))
        return NULL;
    return cap_names[cap];
}

static int read_last_cap_file(void)
{
    _cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno != 0 || end == buf || v < 0 || v >= KS_CAP_MASK_BITS)
        return -1;
    return (int)v;
}

int ks_caps_last_cap(void)
{
    int last = read_last_cap_file();
    if (last >= 0)
        return last;
    /* /proc may not be mounted yet (inside a fresh mount namespace): ask the bounding set,
     * which answers EINVAL for a capability the kernel does not know. */
    int c = 0;
    while (c < KS_CAP_MASK_BITS && prctl(PR_CAPBSET_READ, (unsigned long)c, 0, 0, 0) >= 0)
        c++;
    return c > 0 ? c - 1 : KS_CAP_MAX_KNOWN;
}

static int parse_set(json_object *arr, const char *key, int last_cap, uint64_t *ret,
                     struct ks_error **err)
{
    uint64_t mask = 0;
    if (!json_object_is_type(arr, json_type_array))
        return ks_error_msg(err, "process.capabilities.%s: must be an array of strings", key);
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(v, json_type_string))
            return ks_error_msg(err, "process.capabilities.%s[%zu]: must be a string", key, i);
        const char *name = json_object_get_string(v);
        int cap = ks_caps_from_name(name);
        if (cap < 0)
            return ks_error_msg(err, "process.capabilities.%s: unknown capability `%s`", key, name);
        if (cap > last_cap) {
            ks_warn("process.capabilities.%s: capability `%s` is not supported by the running "
                    "kernel, ignoring it",
                    key, name);
            continue;
        }
        mask |= CAP_BIT(cap);
    }
    *ret = mask;
    return 0;
}

int ks_caps_parse(json_object *capabilities, struct ks_caps *ret, struct ks_error **err)
{
    struct ks_caps caps = {0};
    if (capabilities != NULL) {
        if (!json_object_is_type(capabilities, json_type_object))
            return ks_error_msg(err, "process.capabilities: must be an object");
        const struct {
            const char *key;
            uint64_t *dst;
        } sets[] = {
            {"bounding", &caps.bounding},       {"effective", &caps.effective},
            {"inheritable", &caps.inheritable}, {"permitted", &caps.permitted},
            {"ambient", &caps.ambient},
        };
        int last_cap = ks_caps_last_cap();
        for (size_t i = 0; i < KS_ELEMENTSOF(sets); i++) {
            json_object *arr = ks_json_get(capabilities, sets[i].key);
            if (arr == NULL || json_object_is_type(arr, json_type_null))
                continue;
            int r = parse_set(arr, sets[i].key, last_cap, sets[i].dst, err);
            if (r < 0)
                return r;
        }
    }
    *ret = caps;
    return 0;
}

int ks_caps_apply_bounding(const struct ks_caps *caps, struct ks_error **err)
{
    int last_cap = ks_caps_last_cap();
    for (int c = 0; c <= last_cap; c++) {
        if (caps->bounding & CAP_BIT(c))
            continue;
        /* Dropping what is already gone needs no privilege; skipping it lets an unprivileged
         * runtime whose bounding set is already small get through. */
        int in = prctl(PR_CAPBSET_READ, (unsigned long)c, 0, 0, 0);
        if (in == 0 || (in < 0 && errno == EINVAL))
            continue;
        if (prctl(PR_CAPBSET_DROP, (unsigned long)c, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                continue;
            const char *name = ks_caps_name(c);
            if (name)
                return ks_error_set(err, errno, "dropping %s from the bounding set", name);
            return ks_error_set(err, errno, "dropping capability %d from the bounding set", c);
        }
    }
    if (prctl(PR_SET_KEEPCAPS, 1UL, 0, 0, 0) < 0)
        return ks_error_set(err, errno, "prctl(PR_SET_KEEPCAPS)");
    return 0;
}

static int set_ambient(const struct ks_caps *caps, struct ks_error **err)
{
    if (prctl(PR_CAP_AMBIENT, (unsigned long)PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) < 0) {
        /* A kernel older than 4.3 has no ambient set: nothing to clear, nothing can be raised. */
        if (errno == EINVAL && caps->ambient == 0)
            return 0;
        return ks_error_set(err, errno, "clearing the ambient capabilities");
    }
    uint64_t allowed = caps->permitted & caps->inheritable;
    for (int c = 0; c < KS_CAP_MASK_BITS; c++) {
        if (!(caps->ambient & CAP_BIT(c)))
            continue;
        const char *name = ks_caps_name(c);
        if (!(allowed & CAP_BIT(c))) {
            ks_warn("process.capabilities.ambient: %s is not in both the permitted and the "
                    "inheritable set, not raising it",
                    name ? name : "capability");
            continue;
        }
        if (prctl(PR_CAP_AMBIENT, (unsigned long)PR_CAP_AMBIENT_RAISE, (unsigned long)c, 0UL, 0UL) <
            0)
            return ks_error_set(err, errno, "raising ambient capability %s",
                                name ? name : "(unknown)");
    }
    return 0;
}

int ks_caps_apply(const struct ks_caps *caps, struct ks_error **err)
{
    struct __user_cap_header_struct hdr = {
        .version = _LINUX_CAPABILITY_VERSION_3,
        .pid = 0,
    };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {
        {
            .effective = (uint32_t)caps->effective,
            .permitted = (uint32_t)caps->permitted,
            .inheritable = (uint32_t)caps->inheritable,
        },
        {
            .effective = (uint32_t)(caps->effective >> 32),
            .permitted = (uint32_t)(caps->permitted >> 32),
            .inheritable = (uint32_t)(caps->inheritable >> 32),
        },
    };
    if (syscall(SYS_capset, &hdr, data) < 0)
        return ks_error_set(err, errno, "setting the capabilities (capset)");

    int r = set_ambient(caps, err);
    if (r < 0)
        return r;

    if (prctl(PR_SET_KEEPCAPS, 0UL, 0UL, 0UL, 0UL) < 0)
        return ks_error_set(err, errno, "prctl(PR_SET_KEEPCAPS)");
    return 0;
}

json_object *ks_caps_all_json(void)
{
    json_object *arr = json_object_new_array();
    if (arr == NULL)
        return NULL;
    int last_cap = ks_caps_last_cap();
    for (int c = 0; c <= last_cap; c++) {
        const char *name = ks_caps_name(c);
        if (name == NULL)
            continue;
        if (json_object_array_add(arr, json_object_new_string(name)) < 0) {
            json_object_put(arr);
            return NULL;
        }
    }
    return arr;
}
