/* The attributes of the container's process, applied just before execve: limits, scheduling,
 * user and groups, capabilities, no_new_privileges and seccomp. */
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/sched.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../base/log.h"
#include "internal.h"
#include "seccomp.h"

int ks_process_plan_init(struct ks_process_plan *p, json_object *process, json_object *seccomp,
                         struct ks_error **err)
{
    memset(p, 0, sizeof(*p));
    p->process = process;
    p->seccomp = seccomp;
    p->seccomp_cache = -EBADF;
    p->nnp = ks_json_bool(process, "noNewPrivileges", false);
    p->argv = ks_json_strv(process, "args");
    if (p->argv == NULL || p->argv[0] == NULL)
        return ks_error_msg(err, "process.args: must name the program to run");
    p->envp = ks_json_strv(process, "env");
    if (p->envp == NULL)
        p->envp = calloc(1, sizeof(char *));
    return ks_caps_parse(ks_json_get(process, "capabilities"), &p->caps, err);
}

void ks_process_plan_clear(struct ks_process_plan *p)
{
    ks_strv_free(p->argv);
    ks_strv_free(p->envp);
    free(p->exec_path);
    ks_seccomp_free(p->filter);
    memset(p, 0, sizeof(*p));
}

static const struct {
    const char *name;
    int resource;
} rlimit_names[] = {
    {"RLIMIT_AS", RLIMIT_AS},
    {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},
    {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},
    {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

static int apply_rlimits(json_object *process, struct ks_error **err)
{
    json_object *rl = ks_json_get_type(process, "rlimits", json_type_array);
    for (size_t i = 0; rl && i < json_object_array_length(rl); i++) {
        json_object *e = json_object_array_get_idx(rl, i);
        const char *type = ks_json_str(e, "type");
        int res = -1;
        for (size_t k = 0; type && k < KS_ELEMENTSOF(rlimit_names); k++)
            if (strcmp(type, rlimit_names[k].name) == 0)
                res = rlimit_names[k].resource;
        if (res < 0)
            return ks_error_msg(err, "process.rlimits[%zu].type: unknown limit `%s`", i,
                                type ? type : "");
        struct rlimit want = {.rlim_cur = (rlim_t)json_object_get_uint64(ks_json_get(e, "soft")),
                              .rlim_max = (rlim_t)json_object_get_uint64(ks_json_get(e, "hard"))};
        if (setrlimit(res, &want) == 0)
            continue;
        if (errno != EPERM)
            return ks_error_set(err, errno, "process.rlimits[%zu]: set %s", i, type);
        /* The hard limit cannot be raised here: clamp to what is allowed, and say so. */
        struct rlimit cur;
        getrlimit(res, &cur);
        struct rlimit clamped = want;
        if (clamped.rlim_max > cur.rlim_max)
            clamped.rlim_max = cur.rlim_max;
        if (clamped.rlim_cur > clamped.rlim_max)
            clamped.rlim_cur = clamped.rlim_max;
        if (setrlimit(res, &clamped) < 0)
            return ks_error_set(err, errno, "process.rlimits[%zu]: set %s", i, type);
        ks_warn("%s %llu:%llu is above the hard limit; clamped to %llu:%llu", type,
                (unsigned long long)want.rlim_cur, (unsigned long long)want.rlim_max,
                (unsigned long long)clamped.rlim_cur, (unsigned long long)clamped.rlim_max);
    }
    return 0;
}

struct ks_sched_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
};

static int apply_scheduler(json_object *process, struct ks_error **err)
{
    json_object *s = ks_json_get_type(process, "scheduler", json_type_object);
    if (s == NULL)
        return 0;
    static const struct {
        const char *name;
        uint32_t v;
    } pol[] = {{"SCHED_OTHER", SCHED_OTHER}, {"SCHED_FIFO", SCHED_FIFO}, {"SCHED_RR", SCHED_RR},
               {"SCHED_BATCH", SCHED_BATCH}, {"SCHED_ISO", 4},           {"SCHED_IDLE", SCHED_IDLE},
               {"SCHED_DEADLINE", 6}};
    static const struct {
        const char *name;
        uint64_t v;
    } flg[] = {{"SCHED_FLAG_RESET_ON_FORK", 0x01}, {"SCHED_FLAG_RECLAIM", 0x02},
               {"SCHED_FLAG_DL_OVERRUN", 0x04},    {"SCHED_FLAG_KEEP_POLICY", 0x08},
               {"SCHED_FLAG_KEEP_PARAMS", 0x10},   {"SCHED_FLAG_UTIL_CLAMP_MIN", 0x20},
               {"SCHED_FLAG_UTIL_CLAMP_MAX", 0x40}};
    struct ks_sched_attr a = {.size = sizeof(a)};
    const char *policy = ks_json_str(s, "policy");
    bool found = false;
    for (size_t i = 0; policy && i < KS_ELEMENTSOF(pol); i++)
        if (strcmp(policy, pol[i].name) == 0) {
            a.sched_policy = pol[i].v;
            found = true;
        }
    if (!found)
        return ks_error_msg(err, "process.scheduler.policy: unknown policy `%s`",
                            policy ? policy : "");
    json_object *flags = ks_json_get_type(s, "flags", json_type_array);
    for (size_t i = 0; flags && i < json_object_array_length(flags); i++) {
        const char *f = json_object_get_string(json_object_array_get_idx(flags, i));
        bool ok = false;
        for (size_t k = 0; k < KS_ELEMENTSOF(flg); k++)
            if (strcmp(f, flg[k].name) == 0) {
                a.sched_flags |= flg[k].v;
                ok = true;
            }
        if (!ok)
            return ks_error_msg(err, "process.scheduler.flags[%zu]: unknown flag `%s`", i, f);
    }
    a.sched_nice = (int32_t)ks_json_int(s, "nice", 0);
    a.sched_priority = (uint32_t)ks_json_int(s, "priority", 0);
    a.sched_runtime = (uint64_t)ks_json_int(s, "runtime", 0);
    a.sched_deadline = (uint64_t)ks_json_int(s, "deadline", 0);
    a.sched_period = (uint64_t)ks_json_int(s, "period", 0);
    if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
        return ks_error_set(err, errno, "process.scheduler: sched_setattr");
    return 0;
}

static int apply_ioprio(json_object *process, struct ks_error **err)
{
    json_object *io = ks_json_get_type(process, "ioPriority", json_type_object);
    if (io == NULL)
        return 0;
    const char *cls = ks_json_str(io, "class");
    int c;
    if (cls && strcmp(cls, "IOPRIO_CLASS_RT") == 0)
        c = 1;
    else if (cls && strcmp(cls, "IOPRIO_CLASS_BE") == 0)
        c = 2;
    else if (cls && strcmp(cls, "IOPRIO_CLASS_IDLE") == 0)
        c = 3;
    else
        return ks_error_msg(err, "process.ioPriority.class: unknown class `%s`", cls ? cls : "");
    int64_t prio = ks_json_int(io, "priority", 0);
    if (prio < 0 || prio > 7)
        return ks_error_msg(err, "process.ioPriority.priority: %lld is out of range 0..7",
                            (long long)prio);
    /* ioprio_set(IOPRIO_WHO_PROCESS, self, class << 13 | data) */
    if (syscall(SYS_ioprio_set, 1, 0, (c << 13) | (int)prio) < 0)
        return ks_error_set(err, errno, "process.ioPriority: ioprio_set");
    return 0;
}

static int apply_personality(json_object *linux_obj, struct ks_error **err)
{
    json_object *p = ks_json_get_type(linux_obj, "personality", json_type_object);
    if (p == NULL)
        return 0;
    const char *domain = ks_json_str(p, "domain");
    unsigned long persona;
    if (domain && strcmp(domain, "LINUX") == 0)
        persona = PER_LINUX;
    else if (domain && strcmp(domain, "LINUX32") == 0)
        persona = PER_LINUX32;
    else
        return ks_error_msg(err, "linux.personality.domain: unknown domain `%s`",
                            domain ? domain : "");
    if (personality(persona) < 0)
        return ks_error_set(err, errno, "linux.personality: set `%s`", domain);
    return 0;
}

int ks_process_apply_attrs(struct ks_process_plan *p, json_object *linux_obj, struct ks_error **err)
{
    int r = apply_rlimits(p->process, err);
    if (r < 0)
        return r;
    json_object *oom = ks_json_get(p->process, "oomScoreAdj");
    if (oom) {
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "%d", json_object_get_int(oom));
        r = ks_write_file("/proc/self/oom_score_adj", buf, (size_t)n, err);
        if (r < 0)
            return ks_error_wrap(err, "process.oomScoreAdj");
    }
    if ((r = apply_scheduler(p->process, err)) < 0 || (r = apply_ioprio(p->process, err)) < 0 ||
        (r = apply_personality(linux_obj, err)) < 0)
        return r;
    json_object *user = ks_json_get(p->process, "user");
    json_object *umask_o = ks_json_get(user, "umask");
    umask(umask_o ? (mode_t)json_object_get_int(umask_o) : 0022);
    return 0;
}

static const char *env_get(char **envp, const char *key)
{
    size_t kl = strlen(key);
    for (char **e = envp; e && *e; e++)
        if (strncmp(*e, key, kl) == 0 && (*e)[kl] == '=')
            return *e + kl + 1;
    return NULL;
}

int ks_process_resolve(struct ks_process_plan *p, struct ks_error **err)
{
    const char *prog = p->argv[0];
    if (strchr(prog, '/')) {
        if (access(prog, X_OK) < 0)
            return ks_error_set(err, errno, "exec `%s`", prog);
        p->exec_path = strdup(prog);
        return 0;
    }
    const char *path = env_get(p->envp, "PATH");
    if (path == NULL)
        path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    _cleanup_free_ char *copy = strdup(path);
    char *save = NULL;
    int last = ENOENT;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char full[PATH_MAX];
        snprintf(full, sizeof(full), "%s/%s", *d ? d : ".", prog);
        struct stat st;
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(full, X_OK) == 0) {
                p->exec_path = strdup(full);
                return 0;
            }
            last = EACCES;
        }
    }
    return ks_error_set(err, last, "exec `%s`: not found in $PATH", prog);
}

static int set_user(json_object *process, struct ks_error **err)
{
    json_object *user = ks_json_get(process, "user");
    uid_t uid = (uid_t)ks_json_int(user, "uid", 0);
    gid_t gid = (gid_t)ks_json_int(user, "gid", 0);
    json_object *ag = ks_json_get_type(user, "additionalGids", json_type_array);
    size_t n = ag ? json_object_array_length(ag) : 0;
    gid_t groups[1024];
    if (n > KS_ELEMENTSOF(groups))
        return ks_error_msg(err, "process.user.additionalGids: too many groups");
    for (size_t i = 0; i < n; i++)
        groups[i] = (gid_t)json_object_get_int64(json_object_array_get_idx(ag, i));
    /* setgroups is denied in user namespaces set up without privilege; that is only an error
     * when groups were asked for. */
    if (setgroups(n, groups) < 0 && (n > 0 || errno != EPERM))
        return ks_error_set(err, errno, "process.user.additionalGids: setgroups");
    if (setresgid(gid, gid, gid) < 0)
        return ks_error_set(err, errno, "process.user.gid: setgid %u", gid);
    if (setresuid(uid, uid, uid) < 0)
        return ks_error_set(err, errno, "process.user.uid: setuid %u", uid);
    return 0;
}

/* Built while setup can still fail and be reported, so that a bad profile fails `create`
 * rather than the later execve. */
static int build_seccomp(struct ks_process_plan *p, struct ks_error **err)
{
    if (p->seccomp == NULL || p->filter)
        return 0;
    if (ks_seccomp_new_cached(p->seccomp, p->seccomp_cache, &p->filter, err) < 0)
        return ks_error_wrap(err, "linux.seccomp");
    return 0;
}

static int load_seccomp(struct ks_process_plan *p, struct ks_error **err)
{
    if (p->seccomp == NULL)
        return 0;
    int r = build_seccomp(p, err);
    if (r < 0)
        return r;
    r = ks_seccomp_load(p->filter, err);
    ks_seccomp_free(p->filter);
    p->filter = NULL;
    if (r < 0 && p->seccomp_cache >= 0 && (*err)->errnum == EINVAL) {
        /* A cached program the kernel refuses: build it again rather than fail the start. */
        ks_error_free(*err);
        *err = NULL;
        p->seccomp_cache = -EBADF;
        r = build_seccomp(p, err);
        if (r >= 0)
            r = ks_seccomp_load(p->filter, err);
        ks_seccomp_free(p->filter);
        p->filter = NULL;
    }
    if (r < 0)
        return ks_error_wrap(err, "linux.seccomp");
    return 0;
}

int ks_process_drop_privileges(struct ks_process_plan *p, struct ks_error **err)
{
    int r = build_seccomp(p, err);
    if (r < 0)
        return r;
    if ((r = ks_caps_apply_bounding(&p->caps, err)) < 0)
        return r;
    /* Without no_new_privileges a filter may only be loaded with CAP_SYS_ADMIN, which the
     * process may be about to lose: load it now. */
    if (!p->nnp && (r = load_seccomp(p, err)) < 0)
        return r;
    if ((r = set_user(p->process, err)) < 0)
        return r;
    if ((r = ks_caps_apply(&p->caps, err)) < 0)
        return r;
    if (p->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return ks_error_set(err, errno, "process.noNewPrivileges");
    const char *cwd = ks_json_str(p->process, "cwd");
    if (cwd && chdir(cwd) < 0)
        return ks_error_set(err, errno, "process.cwd: chdir `%s`", cwd);
    return 0;
}

int ks_process_exec(struct ks_process_plan *p, struct ks_error **err)
{
    int r;
    if (p->nnp && (r = load_seccomp(p, err)) < 0)
        return r;
    execve(p->exec_path ? p->exec_path : p->argv[0], p->argv, p->envp);
    return ks_error_set(err, errno, "exec `%s`", p->argv[0]);
}
