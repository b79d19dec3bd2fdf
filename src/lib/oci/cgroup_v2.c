/* Cgroup v2: one hierarchy; controllers are enabled top-down through cgroup.subtree_control and
 * OCI's v1-style values are converted to the v2 files. */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/json.h"
#include "../base/log.h"

#define FREEZE_TIMEOUT_MS 5000

/* The v2 name of a controller: blkio became io. */
static const char *v2_name(enum ks_cgroup_controller c)
{
    return c == KS_CG_BLKIO ? "io" : ks_cgroup_controller_name(c);
}

static int v2_controller(const char *name, size_t len)
{
    for (int c = 0; c < KS_CG__COUNT; c++) {
        const char *n = v2_name((enum ks_cgroup_controller)c);
        if (strlen(n) == len && strncmp(n, name, len) == 0)
            return c;
    }
    return -1;
}

static int write_i64(const char *dir, const char *file, int64_t v, struct ks_error **err)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return ks_cgroup_write(dir, file, buf, err);
}

/* -1 (and any negative value) is "max" in v2 files. */
static void fmt_max(char *buf, size_t len, int64_t v)
{
    if (v < 0)
        snprintf(buf, len, "max");
    else
        snprintf(buf, len, "%" PRId64, v);
}

static bool has_nonzero(json_object *o, const char *key)
{
    int64_t v;
    return ks_cgroup_json_int(o, key, &v) && v != 0;
}

unsigned ks_cgroup_v2_required(json_object *res)
{
    unsigned mask = 0;
    int64_t v;
    if (res == NULL)
        return 0;
    json_object *mem = ks_json_get_type(res, "memory", json_type_object);
    if (mem && (ks_cgroup_json_int(mem, "limit", &v) || ks_cgroup_json_int(mem, "swap", &v) ||
                ks_cgroup_json_int(mem, "reservation", &v)))
        mask |= 1u << KS_CG_MEMORY;
    json_object *cpu = ks_json_get_type(res, "cpu", json_type_object);
    if (cpu &&
        (has_nonzero(cpu, "shares") || has_nonzero(cpu, "quota") || has_nonzero(cpu, "period") ||
         ks_cgroup_json_int(cpu, "idle", &v) || ks_cgroup_json_int(cpu, "burst", &v)))
        mask |= 1u << KS_CG_CPU;
    if (cpu && ((ks_json_str(cpu, "cpus") && ks_json_str(cpu, "cpus")[0]) ||
                (ks_json_str(cpu, "mems") && ks_json_str(cpu, "mems")[0])))
        mask |= 1u << KS_CG_CPUSET;
    json_object *pids = ks_json_get_type(res, "pids", json_type_object);
    if (pids && has_nonzero(pids, "limit"))
        mask |= 1u << KS_CG_PIDS;
    json_object *bio = ks_json_get_type(res, "blockIO", json_type_object);
    if (bio && json_object_object_length(bio) > 0)
        mask |= 1u << KS_CG_BLKIO;
    json_object *huge = ks_json_get_type(res, "hugepageLimits", json_type_array);
    if (huge && json_object_array_length(huge) > 0)
        mask |= 1u << KS_CG_HUGETLB;
    json_object *unified = ks_json_get_type(res, "unified", json_type_object);
    if (unified) {
        json_object_object_foreach(unified, key, val)
        {
            (void)val;
            const char *dot = strchr(key, '.');
            int c = dot ? v2_controller(key, (size_t)(dot - key)) : -1;
            if (c >= 0)
                mask |= 1u << c;
        }
    }
    return mask;
}

static bool word_in(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\n' || *p == '+')
            p++;
        size_t n = strcspn(p, " \n");
        if (n == wl && strncmp(p, word, wl) == 0)
            return true;
        p += n;
    }
    return false;
}

int ks_cgroup_v2_enable(const char *dir, unsigned mask, bool strict, struct ks_error **err)
{
    if (mask == 0)
        return 0;
    _cleanup_free_ char *avail = NULL, *enabled = NULL;
    if (ks_cgroup_file_exists(dir, "cgroup.controllers")) {
        int r = ks_cgroup_read(dir, "cgroup.controllers", &avail, err);
        if (r < 0)
            return r;
    }
    if (ks_cgroup_file_exists(dir, "cgroup.subtree_control")) {
        int r = ks_cgroup_read(dir, "cgroup.subtree_control", &enabled, err);
        if (r < 0)
            return r;
    }
    const char *av = avail ? avail : "";
    const char *en = enabled ? enabled : "";

    size_t cap = strlen(av) * 2 + 8 * KS_CG__COUNT + 1;
    _cleanup_free_ char *buf = malloc(cap);
    if (buf == NULL)
        return ks_error_set(err, ENOMEM, "cgroup controllers");
    size_t o = 0;
    if (mask == KS_CG_V2_ALL_AVAILABLE) {
        _cleanup_free_ char *copy = strdup(av);
        if (copy == NULL)
            return ks_error_set(err, ENOMEM, "cgroup controllers");
        char *save = NULL;
        for (char *w = strtok_r(copy, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
            if (!word_in(en, w))
                o += (size_t)snprintf(buf + o, cap - o, "%s+%s", o ? " " : "", w);
    } else {
        for (int c = 0; c < KS_CG__COUNT; c++) {
            if (!(mask & (1u << c)))
                continue;
            const char *n = v2_name((enum ks_cgroup_controller)c);
            if (!word_in(av, n)) {
                if (strict)
                    return ks_error_set_plain(err, ENOTSUP,
                                              "cgroup controller `%s` is not available in %s "
                                              "(cgroup.controllers: `%s`)",
                                              n, dir, av);
                continue;
            }
            if (!word_in(en, n))
                o += (size_t)snprintf(buf + o, cap - o, "%s+%s", o ? " " : "", n);
        }
    }
    if (o == 0)
        return 0;
    buf[o] = '\0';
    return ks_cgroup_write(dir, "cgroup.subtree_control", buf, err);
}

static int apply_memory(const char *dir, json_object *mem, struct ks_error **err)
{
    int64_t limit, swap, v;
    char buf[32];
    int r;
    bool has_limit = ks_cgroup_json_int(mem, "limit", &limit);
    bool has_swap = ks_cgroup_json_int(mem, "swap", &swap);
    /* OCI's swap is memory+swap as in v1; v2 limits the swap alone. Checked before anything is
     * written so that a bad update changes nothing. */
    int64_t swap_only = 0;
    if (has_swap) {
        if (swap < 0)
            swap_only = -1;
        else if (has_limit && limit > 0 && swap >= limit)
            swap_only = swap - limit;
        else if (has_limit && limit > 0)
            return ks_error_msg(err, "memory.swap = %" PRId64 " is below memory.limit = %" PRId64,
                                swap, limit);
        else if (swap != 0)
            return ks_error_msg(err, "memory.swap = %" PRId64 " needs a memory limit", swap);
    }
    if (has_limit) {
        fmt_max(buf, sizeof(buf), limit);
        if ((r = ks_cgroup_write(dir, "memory.max", buf, err)) < 0)
            return r;
    }
    if (ks_cgroup_json_int(mem, "reservation", &v)) {
        fmt_max(buf, sizeof(buf), v);
        if ((r = ks_cgroup_write(dir, "memory.low", buf, err)) < 0)
            return r;
    }
    if (has_swap) {
        fmt_max(buf, sizeof(buf), swap_only);
        r = ks_cgroup_write_opt(dir, "memory.swap.max", buf, err);
        if (r == -ENOENT) {
            if (swap_only > 0)
                return ks_error_set_plain(err, ENOTSUP,
                                          "memory.swap.max = %s needs swap accounting, but the "
                                          "file is missing in %s",
                                          buf, dir);
            ks_warn("swap accounting is off (no memory.swap.max in %s); swap limit ignored", dir);
        } else if (r < 0) {
            return r;
        }
    }
    if (ks_cgroup_json_int(mem, "swappiness", &v) && v >= 0)
        ks_warn("memory.swappiness has no cgroup v2 equivalent; ignored");
    if (ks_json_bool(mem, "disableOOMKiller", false))
        ks_warn("memory.disableOOMKiller has no cgroup v2 equivalent; ignored");
    return 0;
}

static int apply_cpu(const char *dir, json_object *cpu, struct ks_error **err)
{
    int64_t v, quota = 0, period = 0;
    char buf[64];
    int r;
    if (ks_cgroup_json_int(cpu, "shares", &v) && v != 0) {
        /* 2..262144 shares onto 1..10000 weight. */
        if (v < 2)
            v = 2;
        if (v > 262144)
            v = 262144;
        if ((r = write_i64(dir, "cpu.weight", 1 + ((v - 2) * 9999) / 262142, err)) < 0)
            return r;
    }
    bool has_quota = ks_cgroup_json_int(cpu, "quota", &quota) && quota != 0;
    bool has_period = ks_cgroup_json_int(cpu, "period", &period) && period != 0;
    if (has_quota || has_period) {
        /* cpu.max holds both; keep the half that is not being changed. */
        char qbuf[32] = "max";
        int64_t p = 100000;
        _cleanup_free_ char *cur = NULL;
        if (ks_cgroup_read(dir, "cpu.max", &cur, NULL) >= 0) {
            char q[32];
            long long pp;
            if (sscanf(cur, "%31s %lld", q, &pp) == 2) {
                snprintf(qbuf, sizeof(qbuf), "%s", q);
                p = pp;
            }
        }
        if (has_quota)
            fmt_max(qbuf, sizeof(qbuf), quota);
        if (has_period)
            p = period;
        snprintf(buf, sizeof(buf), "%s %" PRId64, qbuf, p);
        if ((r = ks_cgroup_write(dir, "cpu.max", buf, err)) < 0)
            return r;
    }
    if (ks_cgroup_json_int(cpu, "burst", &v) && (r = write_i64(dir, "cpu.max.burst", v, err)) < 0)
        return r;
    if (ks_cgroup_json_int(cpu, "idle", &v) && (r = write_i64(dir, "cpu.idle", v, err)) < 0)
        return r;
    if (has_nonzero(cpu, "realtimeRuntime") || has_nonzero(cpu, "realtimePeriod"))
        return ks_error_set_plain(err, ENOTSUP,
                                  "cpu.realtimeRuntime and cpu.realtimePeriod are not "
                                  "supported on cgroup v2");
    return 0;
}

static int apply_cpuset(const char *dir, json_object *cpu, struct ks_error **err)
{
    const char *cpus = ks_json_str(cpu, "cpus");
    const char *mems = ks_json_str(cpu, "mems");
    int r;
    if (cpus && cpus[0] && (r = ks_cgroup_write(dir, "cpuset.cpus", cpus, err)) < 0)
        return r;
    if (mems && mems[0] && (r = ks_cgroup_write(dir, "cpuset.mems", mems, err)) < 0)
        return r;
    return 0;
}

/* blkio's 10..1000 weight onto io.weight's 1..10000; BFQ's io.bfq.weight keeps the old scale. */
static int write_io_weight(const char *dir, const char *dev, int64_t w, struct ks_error **err)
{
    char buf[64];
    int64_t conv = 1 + (w - 10) * 9999 / 990;
    if (conv < 1)
        conv = 1;
    if (conv > 10000)
        conv = 10000;
    snprintf(buf, sizeof(buf), "%s %" PRId64, dev, conv);
    int r = ks_cgroup_write_opt(dir, "io.weight", buf, err);
    if (r != -ENOENT)
        return r;
    snprintf(buf, sizeof(buf), "%s %" PRId64, dev, w);
    r = ks_cgroup_write_opt(dir, "io.bfq.weight", buf, err);
    if (r != -ENOENT)
        return r;
    return ks_error_set(err, ENOENT, "write `io.weight` = `%s` in %s", buf, dir);
}

static int apply_io(const char *dir, json_object *bio, struct ks_error **err)
{
    int64_t v;
    int r;
    if (ks_cgroup_json_int(bio, "weight", &v) && v != 0 &&
        (r = write_io_weight(dir, "default", v, err)) < 0)
        return r;
    if (has_nonzero(bio, "leafWeight"))
        ks_warn("blockIO.leafWeight has no cgroup v2 equivalent; ignored");
    json_object *wd = ks_json_get_type(bio, "weightDevice", json_type_array);
    for (size_t i = 0; wd && i < json_object_array_length(wd); i++) {
        json_object *d = json_object_array_get_idx(wd, i);
        char dev[48];
        snprintf(dev, sizeof(dev), "%" PRId64 ":%" PRId64, ks_json_int(d, "major", 0),
                 ks_json_int(d, "minor", 0));
        if (ks_cgroup_json_int(d, "weight", &v) && (r = write_io_weight(dir, dev, v, err)) < 0)
            return r;
    }
    static const struct {
        const char *key, *name;
    } throttle[] = {
        {"throttleReadBpsDevice", "rbps"},
        {"throttleWriteBpsDevice", "wbps"},
        {"throttleReadIOPSDevice", "riops"},
        {"throttleWriteIOPSDevice", "wiops"},
    };
    for (size_t t = 0; t < KS_ELEMENTSOF(throttle); t++) {
        json_object *a = ks_json_get_type(bio, throttle[t].key, json_type_array);
        for (size_t i = 0; a && i < json_object_array_length(a); i++) {
            json_object *d = json_object_array_get_idx(a, i);
            int64_t rate = ks_json_int(d, "rate", 0);
            char val[32], buf[96];
            fmt_max(val, sizeof(val), rate == 0 ? -1 : rate);
            snprintf(buf, sizeof(buf), "%" PRId64 ":%" PRId64 " %s=%s", ks_json_int(d, "major", 0),
                     ks_json_int(d, "minor", 0), throttle[t].name, val);
            if ((r = ks_cgroup_write(dir, "io.max", buf, err)) < 0)
                return r;
        }
    }
    return 0;
}

static bool valid_name(const char *s, bool dots)
{
    if (s == NULL || s[0] == '\0' || s[0] == '.' || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
              *p == '_' || (dots && *p == '.')))
            return false;
    return true;
}

static int apply_hugetlb(const char *dir, json_object *limits, struct ks_error **err)
{
    for (size_t i = 0; i < json_object_array_length(limits); i++) {
        json_object *h = json_object_array_get_idx(limits, i);
        const char *size = ks_json_str(h, "pageSize");
        if (!valid_name(size, false))
            return ks_error_msg(err, "invalid hugepage size `%s`", size ? size : "");
        char file[96], val[32];
        snprintf(file, sizeof(file), "hugetlb.%s.max", size);
        fmt_max(val, sizeof(val), ks_json_int(h, "limit", -1));
        int r = ks_cgroup_write(dir, file, val, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int apply_unified(const char *dir, json_object *unified, struct ks_error **err)
{
    json_object_object_foreach(unified, key, val)
    {
        if (!valid_name(key, true) || strchr(key, '.') == NULL)
            return ks_error_msg(err, "invalid linux.resources.unified key `%s`", key);
        if (!json_object_is_type(val, json_type_string))
            return ks_error_msg(err, "linux.resources.unified.%s is not a string", key);
        const char *v = json_object_get_string(val);
        int r = ks_cgroup_write_opt(dir, key, v, err);
        if (r == -ENOENT)
            return ks_error_set(err, ENOENT, "write `%s` = `%s` in %s (is its controller enabled?)",
                                key, v, dir);
        if (r < 0)
            return r;
    }
    return 0;
}

static int apply_devices(const char *dir, json_object *devices, struct ks_error **err)
{
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open cgroup %s", dir);
    int r = ks_cgroup_bpf_devices_apply(fd, devices, err);
    if (r < 0)
        return ks_error_wrap(err, "device rules for %s", dir);
    return 0;
}

int ks_cgroup_v2_apply(const char *dir, json_object *res, unsigned mask, struct ks_error **err)
{
    if (res == NULL)
        return 0;
    int r;
    unsigned need = ks_cgroup_v2_required(res);
#define WANT(c) ((mask & need & (1u << (c))) != 0)
    json_object *mem = ks_json_get_type(res, "memory", json_type_object);
    if (WANT(KS_CG_MEMORY) && (r = apply_memory(dir, mem, err)) < 0)
        return r;
    json_object *cpu = ks_json_get_type(res, "cpu", json_type_object);
    if (WANT(KS_CG_CPU) && (r = apply_cpu(dir, cpu, err)) < 0)
        return r;
    if (WANT(KS_CG_CPUSET) && (r = apply_cpuset(dir, cpu, err)) < 0)
        return r;
    int64_t v;
    json_object *pids = ks_json_get_type(res, "pids", json_type_object);
    if (WANT(KS_CG_PIDS) && ks_cgroup_json_int(pids, "limit", &v)) {
        char buf[32];
        fmt_max(buf, sizeof(buf), v);
        if ((r = ks_cgroup_write(dir, "pids.max", buf, err)) < 0)
            return r;
    }
    json_object *bio = ks_json_get_type(res, "blockIO", json_type_object);
    if (WANT(KS_CG_BLKIO) && (r = apply_io(dir, bio, err)) < 0)
        return r;
    json_object *huge = ks_json_get_type(res, "hugepageLimits", json_type_array);
    if (WANT(KS_CG_HUGETLB) && (r = apply_hugetlb(dir, huge, err)) < 0)
        return r;
#undef WANT
    json_object *devices = ks_json_get_type(res, "devices", json_type_array);
    if (devices && (mask & (1u << KS_CG_DEVICES)) && (r = apply_devices(dir, devices, err)) < 0)
        return r;
    json_object *unified = ks_json_get_type(res, "unified", json_type_object);
    if (unified && (r = apply_unified(dir, unified, err)) < 0)
        return r;
    return 0;
}

/* "frozen 1" in cgroup.events, or cgroup.freeze where there is no events file (fake trees). */
int ks_cgroup_v2_is_frozen(const char *dir, bool *ret, struct ks_error **err)
{
    _cleanup_free_ char *s = NULL;
    if (ks_cgroup_file_exists(dir, "cgroup.events")) {
        int r = ks_cgroup_read(dir, "cgroup.events", &s, err);
        if (r < 0)
            return r;
        const char *p = strstr(s, "frozen ");
        while (p && p != s && p[-1] != '\n')
            p = strstr(p + 1, "frozen ");
        *ret = p && p[7] == '1';
        return 0;
    }
    int r = ks_cgroup_read(dir, "cgroup.freeze", &s, err);
    if (r < 0)
        return r;
    *ret = strcmp(s, "1") == 0;
    return 0;
}

int ks_cgroup_v2_freeze(const char *dir, bool frozen, struct ks_error **err)
{
    int r = ks_cgroup_write(dir, "cgroup.freeze", frozen ? "1" : "0", err);
    if (r < 0)
        return r;
    for (unsigned waited = 0;; waited += 5) {
        bool is;
        r = ks_cgroup_v2_is_frozen(dir, &is, err);
        if (r < 0)
            return r;
        if (is == frozen)
            return 0;
        if (waited >= FREEZE_TIMEOUT_MS) {
            if (frozen)
                ks_cgroup_write(dir, "cgroup.freeze", "0", NULL);
            return ks_error_set_plain(err, EBUSY, "cgroup %s did not %s in time", dir,
                                      frozen ? "freeze" : "thaw");
        }
        ks_cgroup_sleep_ms(5);
    }
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

/* obj[key] from a file holding one number or "max" (-1); kept when already there (hybrid). */
static void stat_number(json_object *obj, const char *key, const char *dir, const char *file)
{
    if (ks_json_get(obj, key))
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
    long long v = strtoll(s, &end, 10);
    if (end != s && errno == 0)
        json_object_object_add(obj, key, json_object_new_int64(v));
}

int ks_cgroup_v2_stats(const char *dir, json_object *out, struct ks_error **err)
{
    if (ks_cgroup_file_exists(dir, "memory.current")) {
        json_object *m = section(out, "memory");
        stat_number(m, "usage", dir, "memory.current");
        stat_number(m, "max_usage", dir, "memory.peak");
        stat_number(m, "limit", dir, "memory.max");
    }
    if (ks_cgroup_file_exists(dir, "pids.current")) {
        json_object *p = section(out, "pids");
        stat_number(p, "current", dir, "pids.current");
        stat_number(p, "limit", dir, "pids.max");
    }
    json_object *c = ks_json_get_type(out, "cpu", json_type_object);
    _cleanup_free_ char *cpu = NULL;
    if ((c == NULL || ks_json_get(c, "usage_ns") == NULL) &&
        ks_cgroup_read(dir, "cpu.stat", &cpu, NULL) >= 0) {
        c = section(out, "cpu");
        static const struct {
            const char *file_key, *json_key;
        } keys[] = {
            {"usage_usec", "usage_ns"}, {"user_usec", "user_ns"}, {"system_usec", "system_ns"}};
        char *save = NULL;
        for (char *line = strtok_r(cpu, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char k[64];
            long long v;
            if (sscanf(line, "%63s %lld", k, &v) != 2)
                continue;
            for (size_t i = 0; i < KS_ELEMENTSOF(keys); i++)
                if (strcmp(k, keys[i].file_key) == 0)
                    json_object_object_add(c, keys[i].json_key, json_object_new_int64(v * 1000));
        }
    }
    (void)err;
    return 0;
}
