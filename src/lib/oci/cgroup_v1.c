/* Cgroup v1: one hierarchy per controller (or per group of comounted controllers). */
#include "cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/json.h"
#include "../base/log.h"

/* How long the freezer may take to settle. */
#define FREEZE_TIMEOUT_MS 5000

static int write_i64(const char *dir, const char *file, int64_t v, struct ks_error **err)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return ks_cgroup_write(dir, file, buf, err);
}

/* Passes an error kept aside on to the caller. */
static int hand_over(struct ks_error **err, struct ks_error **kept, int r)
{
    if (err && *err == NULL)
        *err = TAKE_PTR(*kept);
    return r;
}

static int no_controller(const char *name, struct ks_error **err)
{
    return ks_error_set_plain(err, ENOTSUP,
                              "the %s controller is not mounted, but resources ask for it", name);
}

/* Writes the memory limit and the memory+swap limit in the order the kernel accepts: memsw
 * may never be below the memory limit, so raising both writes memsw first. */
static int set_limit_and_swap(const char *dir, const int64_t *limit, const int64_t *swap,
                              struct ks_error **err)
{
    if (swap && !ks_cgroup_file_exists(dir, "memory.memsw.limit_in_bytes")) {
        if (*swap != -1 && (limit == NULL || *swap != *limit))
            return ks_error_set_plain(err, ENOTSUP,
                                      "memory.swap = %" PRId64 " needs swap accounting, but "
                                      "memory.memsw.limit_in_bytes is missing in %s",
                                      *swap, dir);
        ks_warn("swap accounting is off (no memory.memsw.limit_in_bytes in %s); swap limit "
                "ignored",
                dir);
        swap = NULL;
    }
    if (limit == NULL)
        return swap ? write_i64(dir, "memory.memsw.limit_in_bytes", *swap, err) : 0;
    if (swap == NULL)
        return write_i64(dir, "memory.limit_in_bytes", *limit, err);

    _cleanup_error_ struct ks_error *first = NULL;
    int r = write_i64(dir, "memory.limit_in_bytes", *limit, &first);
    if (r == -EINVAL) {
        /* The new limit is above the current memsw limit: raise memsw first. */
        r = write_i64(dir, "memory.memsw.limit_in_bytes", *swap, err);
        if (r < 0)
            return r;
        return write_i64(dir, "memory.limit_in_bytes", *limit, err);
    }
    if (r < 0)
        return hand_over(err, &first, r);
    return write_i64(dir, "memory.memsw.limit_in_bytes", *swap, err);
}

static int apply_memory(const char *dir, json_object *mem, struct ks_error **err)
{
    int64_t limit, swap, v;
    bool has_limit = ks_cgroup_json_int(mem, "limit", &limit);
    bool has_swap = ks_cgroup_json_int(mem, "swap", &swap);
    int r = set_limit_and_swap(dir, has_limit ? &limit : NULL, has_swap ? &swap : NULL, err);
    if (r < 0)
        return r;
    if (ks_cgroup_json_int(mem, "reservation", &v)) {
        r = write_i64(dir, "memory.soft_limit_in_bytes", v, err);
        if (r < 0)
            return r;
    }
    if (ks_cgroup_json_int(mem, "swappiness", &v) && v >= 0) {
        if (v > 100)
            return ks_error_msg(err, "memory.swappiness = %" PRId64 " is above 100", v);
        r = write_i64(dir, "memory.swappiness", v, err);
        if (r < 0)
            return r;
    }
    json_object *oom = ks_json_get_type(mem, "disableOOMKiller", json_type_boolean);
    if (oom) {
        r = ks_cgroup_write(dir, "memory.oom_control", json_object_get_boolean(oom) ? "1" : "0",
                            err);
        if (r < 0)
            return r;
    }
    /* kernel and kernelTCP: deprecated and ignored by current kernels. */
    return 0;
}

static int apply_cpu(const char *dir, json_object *cpu, struct ks_error **err)
{
    int64_t v, quota, period;
    int r;
    if (ks_cgroup_json_int(cpu, "shares", &v) && v != 0) {
        r = write_i64(dir, "cpu.shares", v, err);
        if (r < 0)
            return r;
    }
    bool has_quota = ks_cgroup_json_int(cpu, "quota", &quota) && quota != 0;
    bool has_period = ks_cgroup_json_int(cpu, "period", &period) && period != 0;
    if (has_period) {
        _cleanup_error_ struct ks_error *first = NULL;
        r = write_i64(dir, "cpu.cfs_period_us", period, &first);
        if (r == -EINVAL && has_quota) {
            /* The old quota does not fit the new period: quota first. */
            r = write_i64(dir, "cpu.cfs_quota_us", quota, err);
            if (r < 0)
                return r;
            r = write_i64(dir, "cpu.cfs_period_us", period, err);
            if (r < 0)
                return r;
            has_quota = false;
        } else if (r < 0) {
            return hand_over(err, &first, r);
        }
    }
    if (has_quota) {
        r = write_i64(dir, "cpu.cfs_quota_us", quota, err);
        if (r < 0)
            return r;
    }
    if (ks_cgroup_json_int(cpu, "burst", &v)) {
        r = write_i64(dir, "cpu.cfs_burst_us", v, err);
        if (r < 0)
            return r;
    }
    if (ks_cgroup_json_int(cpu, "realtimePeriod", &v) && v != 0) {
        r = write_i64(dir, "cpu.rt_period_us", v, err);
        if (r < 0)
            return r;
    }
    if (ks_cgroup_json_int(cpu, "realtimeRuntime", &v) && v != 0) {
        r = write_i64(dir, "cpu.rt_runtime_us", v, err);
        if (r < 0)
            return r;
    }
    if (ks_cgroup_json_int(cpu, "idle", &v)) {
        r = write_i64(dir, "cpu.idle", v, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static bool cpu_wants_cpu(json_object *cpu)
{
    static const char *const keys[] = {"shares",         "quota",           "period", "burst",
                                       "realtimePeriod", "realtimeRuntime", "idle"};
    for (size_t i = 0; i < KS_ELEMENTSOF(keys); i++) {
        int64_t v;
        if (ks_cgroup_json_int(cpu, keys[i], &v) &&
            (v != 0 || strcmp(keys[i], "idle") == 0 || strcmp(keys[i], "burst") == 0))
            return true;
    }
    return false;
}

static int apply_cpuset(const char *dir, json_object *cpu, struct ks_error **err)
{
    const char *cpus = ks_json_str(cpu, "cpus");
    const char *mems = ks_json_str(cpu, "mems");
    int r;
    if (cpus && cpus[0]) {
        r = ks_cgroup_write(dir, "cpuset.cpus", cpus, err);
        if (r < 0)
            return r;
    }
    if (mems && mems[0]) {
        r = ks_cgroup_write(dir, "cpuset.mems", mems, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* blkio.weight, or BFQ's file when CFQ's is gone (kernels after 5.0). */
static int write_weight(const char *dir, const char *file, const char *bfq_file, const char *value,
                        struct ks_error **err)
{
    int r = ks_cgroup_write_opt(dir, file, value, err);
    if (r != -ENOENT)
        return r;
    r = ks_cgroup_write_opt(dir, bfq_file, value, err);
    if (r != -ENOENT)
        return r;
    return ks_error_set(err, ENOENT, "write `%s` = `%s` in %s", file, value, dir);
}

static int apply_blkio(const char *dir, json_object *bio, struct ks_error **err)
{
    int64_t v;
    char buf[96];
    int r;
    if (ks_cgroup_json_int(bio, "weight", &v) && v != 0) {
        snprintf(buf, sizeof(buf), "%" PRId64, v);
        r = write_weight(dir, "blkio.weight", "blkio.bfq.weight", buf, err);
        if (r < 0)
            return r;
    }
    if (ks_cgroup_json_int(bio, "leafWeight", &v) && v != 0) {
        r = write_i64(dir, "blkio.leaf_weight", v, err);
        if (r < 0)
            return r;
    }
    json_object *wd = ks_json_get_type(bio, "weightDevice", json_type_array);
    for (size_t i = 0; wd && i < json_object_array_length(wd); i++) {
        json_object *d = json_object_array_get_idx(wd, i);
        int64_t major = ks_json_int(d, "major", 0), minor = ks_json_int(d, "minor", 0);
        if (ks_cgroup_json_int(d, "weight", &v)) {
            snprintf(buf, sizeof(buf), "%" PRId64 ":%" PRId64 " %" PRId64, major, minor, v);
            r = write_weight(dir, "blkio.weight_device", "blkio.bfq.weight_device", buf, err);
            if (r < 0)
                return r;
        }
        if (ks_cgroup_json_int(d, "leafWeight", &v)) {
            snprintf(buf, sizeof(buf), "%" PRId64 ":%" PRId64 " %" PRId64, major, minor, v);
            r = ks_cgroup_write(dir, "blkio.leaf_weight_device", buf, err);
            if (r < 0)
                return r;
        }
    }
    static const struct {
        const char *key, *file;
    } throttle[] = {
        {"throttleReadBpsDevice", "blkio.throttle.read_bps_device"},
        {"throttleWriteBpsDevice", "blkio.throttle.write_bps_device"},
        {"throttleReadIOPSDevice", "blkio.throttle.read_iops_device"},
        {"throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"},
    };
    for (size_t t = 0; t < KS_ELEMENTSOF(throttle); t++) {
        json_object *a = ks_json_get_type(bio, throttle[t].key, json_type_array);
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
            json_object *d = json_object_array_get_idx(a, i);
            snprintf(buf, sizeof(buf), "%" PRId64 ":%" PRId64 " %" PRId64,
                     ks_json_int(d, "major", 0), ks_json_int(d, "minor", 0),
                     ks_json_int(d, "rate", 0));
            r = ks_cgroup_write(dir, throttle[t].file, buf, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static bool valid_page_size(const char *s)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > 16)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
            return false;
    return true;
}

static int apply_hugetlb(const char *dir, json_object *limits, struct ks_error **err)
{
    for (size_t i = 0; i < json_object_array_length(limits); i++) {
        json_object *h = json_object_array_get_idx(limits, i);
        const char *size = ks_json_str(h, "pageSize");
        if (!valid_page_size(size))
            return ks_error_msg(err, "invalid hugepage size `%s`", size ? size : "");
        char file[64];
        snprintf(file, sizeof(file), "hugetlb.%s.limit_in_bytes", size);
        int r = write_i64(dir, file, ks_json_int(h, "limit", 0), err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* net_cls and net_prio exist only in v1; their resources are refused rather than dropped when
 * the controller is not mounted. */
static int apply_network(char *const dirs[KS_CG__COUNT], json_object *net, struct ks_error **err)
{
    int64_t v;
    int r;
    if (ks_cgroup_json_int(net, "classID", &v)) {
        if (dirs[KS_CG_NET_CLS] == NULL)
            return no_controller("net_cls", err);
        if ((r = write_i64(dirs[KS_CG_NET_CLS], "net_cls.classid", v, err)) < 0)
            return r;
    }
    json_object *prios = ks_json_get_type(net, "priorities", json_type_array);
    for (size_t i = 0; prios && i < json_object_array_length(prios); i++) {
        json_object *p = json_object_array_get_idx(prios, i);
        const char *name = ks_json_str(p, "name");
        if (name == NULL || name[0] == '\0' || strlen(name) >= 16 || strpbrk(name, " \t\n/"))
            return ks_error_msg(err, "invalid interface name `%s`", name ? name : "");
        if (dirs[KS_CG_NET_PRIO] == NULL)
            return no_controller("net_prio", err);
        char buf[64];
        snprintf(buf, sizeof(buf), "%s %" PRId64, name, ks_json_int(p, "priority", 0));
        if ((r = ks_cgroup_write(dirs[KS_CG_NET_PRIO], "net_prio.ifpriomap", buf, err)) < 0)
            return r;
    }
    return 0;
}

/* Rules are written in order after denying everything, like the kernel's own exception lists
 * expect: "a" resets the default, later rules add or remove exceptions. */
static int apply_devices(const char *dir, json_object *rules, struct ks_error **err)
{
    int r = ks_cgroup_write(dir, "devices.deny", "a", err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < json_object_array_length(rules); i++) {
        json_object *d = json_object_array_get_idx(rules, i);
        bool allow = ks_json_bool(d, "allow", false);
        const char *type = ks_json_str(d, "type");
        const char *access = ks_json_str(d, "access");
        char t = type && type[0] ? type[0] : 'a';
        if (t == 'u')
            t = 'c';
        if (t != 'a' && t != 'b' && t != 'c')
            return ks_error_msg(err, "invalid device type `%s`", type);
        if (access == NULL || access[0] == '\0')
            access = "rwm";
        if (strspn(access, "rwm") != strlen(access))
            return ks_error_msg(err, "invalid device access `%s`", access);
        char maj[24] = "*", min[24] = "*", buf[96];
        int64_t v;
        if (ks_cgroup_json_int(d, "major", &v) && v >= 0)
            snprintf(maj, sizeof(maj), "%" PRId64, v);
        if (ks_cgroup_json_int(d, "minor", &v) && v >= 0)
            snprintf(min, sizeof(min), "%" PRId64, v);
        if (t == 'a')
            snprintf(buf, sizeof(buf), "a");
        else
            snprintf(buf, sizeof(buf), "%c %s:%s %s", t, maj, min, access);
        r = ks_cgroup_write(dir, allow ? "devices.allow" : "devices.deny", buf, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_cgroup_v1_apply(char *const dirs[KS_CG__COUNT], json_object *res, unsigned mask,
                       struct ks_error **err)
{
    int r;
#define WANT(c) (mask & (1u << (c)))
#define DIR_OR_FAIL(c)                                                                             \
    do {                                                                                           \
        if (dirs[c] == NULL)                                                                       \
            return no_controller(ks_cgroup_controller_name(c), err);                               \
    } while (0)

    json_object *mem = ks_json_get_type(res, "memory", json_type_object);
    if (mem && json_object_object_length(mem) > 0 && WANT(KS_CG_MEMORY)) {
        DIR_OR_FAIL(KS_CG_MEMORY);
        if ((r = apply_memory(dirs[KS_CG_MEMORY], mem, err)) < 0)
            return r;
    }
    json_object *cpu = ks_json_get_type(res, "cpu", json_type_object);
    if (cpu && cpu_wants_cpu(cpu) && WANT(KS_CG_CPU)) {
        DIR_OR_FAIL(KS_CG_CPU);
        if ((r = apply_cpu(dirs[KS_CG_CPU], cpu, err)) < 0)
            return r;
    }
    if (cpu && (ks_json_str(cpu, "cpus") || ks_json_str(cpu, "mems")) && WANT(KS_CG_CPUSET)) {
        DIR_OR_FAIL(KS_CG_CPUSET);
        if ((r = apply_cpuset(dirs[KS_CG_CPUSET], cpu, err)) < 0)
            return r;
    }
    int64_t v;
    json_object *pids = ks_json_get_type(res, "pids", json_type_object);
    if (pids && ks_cgroup_json_int(pids, "limit", &v) && v != 0 && WANT(KS_CG_PIDS)) {
        DIR_OR_FAIL(KS_CG_PIDS);
        char buf[32];
        if (v > 0)
            snprintf(buf, sizeof(buf), "%" PRId64, v);
        else
            snprintf(buf, sizeof(buf), "max");
        if ((r = ks_cgroup_write(dirs[KS_CG_PIDS], "pids.max", buf, err)) < 0)
            return r;
    }
    json_object *bio = ks_json_get_type(res, "blockIO", json_type_object);
    if (bio && json_object_object_length(bio) > 0 && WANT(KS_CG_BLKIO)) {
        DIR_OR_FAIL(KS_CG_BLKIO);
        if ((r = apply_blkio(dirs[KS_CG_BLKIO], bio, err)) < 0)
            return r;
    }
    json_object *huge = ks_json_get_type(res, "hugepageLimits", json_type_array);
    if (huge && json_object_array_length(huge) > 0 && WANT(KS_CG_HUGETLB)) {
        DIR_OR_FAIL(KS_CG_HUGETLB);
        if ((r = apply_hugetlb(dirs[KS_CG_HUGETLB], huge, err)) < 0)
            return r;
    }
    json_object *net = ks_json_get_type(res, "network", json_type_object);
    if (net && (r = apply_network(dirs, net, err)) < 0)
        return r;
    json_object *devices = ks_json_get_type(res, "devices", json_type_array);
    if (devices && WANT(KS_CG_DEVICES)) {
        DIR_OR_FAIL(KS_CG_DEVICES);
        if ((r = apply_devices(dirs[KS_CG_DEVICES], devices, err)) < 0)
            return r;
    }
#undef WANT
#undef DIR_OR_FAIL
    return 0;
}

int ks_cgroup_v1_cpuset_init(const char *dir, struct ks_error **err)
{
    static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
    _cleanup_free_ char *parent = strdup(dir);
    if (parent == NULL)
        return ks_error_set(err, ENOMEM, "cpuset");
    char *slash = strrchr(parent, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    for (size_t i = 0; i < KS_ELEMENTSOF(files); i++) {
        _cleanup_free_ char *cur = NULL, *val = NULL;
        int r = ks_cgroup_read(dir, files[i], &cur, err);
        if (r < 0)
            return r;
        if (cur[0] != '\0')
            continue;
        r = ks_cgroup_read(parent, files[i], &val, err);
        if (r < 0)
            return r;
        if (val[0] == '\0')
            continue;
        r = ks_cgroup_write(dir, files[i], val, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_cgroup_v1_is_frozen(const char *dir, bool *ret, struct ks_error **err)
{
    _cleanup_free_ char *state = NULL;
    int r = ks_cgroup_read(dir, "freezer.state", &state, err);
    if (r < 0)
        return r;
    *ret = strcmp(state, "FROZEN") == 0;
    return 0;
}

int ks_cgroup_v1_freeze(const char *dir, bool frozen, struct ks_error **err)
{
    const char *want = frozen ? "FROZEN" : "THAWED";
    for (unsigned waited = 0;; waited += 5) {
        /* Writing FROZEN again makes the kernel retry tasks that were busy. */
        if (waited % 100 == 0) {
            int r = ks_cgroup_write(dir, "freezer.state", want, err);
            if (r < 0)
                return r;
        }
        _cleanup_free_ char *state = NULL;
        int r = ks_cgroup_read(dir, "freezer.state", &state, err);
        if (r < 0)
            return r;
        if (strcmp(state, want) == 0)
            return 0;
        if (waited >= FREEZE_TIMEOUT_MS) {
            if (frozen)
                ks_cgroup_write(dir, "freezer.state", "THAWED", NULL);
            return ks_error_set_plain(err, EBUSY, "freezer.state in %s stays `%s`, not `%s`", dir,
                                      state, want);
        }
        ks_cgroup_sleep_ms(5);
    }
}

/* Reads a number from dir/file into obj[key]; missing files are left out. Limits at the
 * kernel's "unlimited" value become -1. */
static void stat_number(json_object *obj, const char *key, const char *dir, const char *file,
                        bool is_limit)
{
    if (dir == NULL)
        return;
    _cleanup_free_ char *s = NULL;
    if (ks_cgroup_read(dir, file, &s, NULL) < 0)
        return;
    if (strcmp(s, "max") == 0) {
        json_object_object_add(obj, key, json_object_new_int64(-1));
        return;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno)
        return;
    if (is_limit && v >= (1ULL << 62))
        json_object_object_add(obj, key, json_object_new_int64(-1));
    else
        json_object_object_add(obj, key, json_object_new_int64((int64_t)v));
}

static json_object *section(json_object *out, const char *name)
{
    json_object *o = ks_json_get_type(out, name, json_type_object);
    if (o == NULL) {
        o = json_object_new_object();
        json_object_object_add(out, name, o);
    }
    return o;
}

int ks_cgroup_v1_stats(char *const dirs[KS_CG__COUNT], json_object *out, struct ks_error **err)
{
    if (dirs[KS_CG_MEMORY]) {
        json_object *m = section(out, "memory");
        stat_number(m, "usage", dirs[KS_CG_MEMORY], "memory.usage_in_bytes", false);
        stat_number(m, "max_usage", dirs[KS_CG_MEMORY], "memory.max_usage_in_bytes", false);
        stat_number(m, "limit", dirs[KS_CG_MEMORY], "memory.limit_in_bytes", true);
        stat_number(m, "failcnt", dirs[KS_CG_MEMORY], "memory.failcnt", false);
    }
    if (dirs[KS_CG_PIDS]) {
        json_object *p = section(out, "pids");
        stat_number(p, "current", dirs[KS_CG_PIDS], "pids.current", false);
        stat_number(p, "limit", dirs[KS_CG_PIDS], "pids.max", true);
    }
    if (dirs[KS_CG_CPUACCT]) {
        json_object *c = section(out, "cpu");
        stat_number(c, "usage_ns", dirs[KS_CG_CPUACCT], "cpuacct.usage", false);
        stat_number(c, "user_ns", dirs[KS_CG_CPUACCT], "cpuacct.usage_user", false);
        stat_number(c, "system_ns", dirs[KS_CG_CPUACCT], "cpuacct.usage_sys", false);
    }
    return 0;
}
