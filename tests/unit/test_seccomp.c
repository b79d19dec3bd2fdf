/* Seccomp filters built from linux.seccomp and loaded into forked children, whose syscalls then
 * show the filter at work; the test process itself stays unfiltered. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "oci/seccomp.h"
#include "tap.h"

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_json_parse(text, strlen(text), &o, &err) < 0) {
        tap_diag("bad test JSON: %s", err->msg);
        abort();
    }
    return o;
}

/* Results of one child: what each probe returned and its errno. */
#define MAX_PROBES 8
struct report {
    int load_rc;
    char load_msg[200];
    int nnp;
    long rc[MAX_PROBES];
    int err[MAX_PROBES];
};

typedef void (*probe_fn)(struct report *rep);

struct outcome {
    bool ran;   /* the child reported back */
    int status; /* wait status */
    struct report rep;
};

/* The compiled-filter cache run_filtered uses; -EBADF: none. */
static int cache_dir = -EBADF;

/* Builds the filter in the parent (failures are test failures), loads it in a child and runs
 * the probes there. */
static struct outcome run_filtered(const char *json, probe_fn probes)
{
    struct outcome out = {0};
    _cleanup_json_ json_object *o = parse(json);
    _cleanup_error_ struct ks_error *err = NULL;
    struct ks_seccomp *s = NULL;
    if (ks_seccomp_new_cached(o, cache_dir, &s, &err) < 0) {
        tap_diag("ks_seccomp_new: %s", err->msg);
        return out;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        ks_seccomp_free(s);
        return out;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        struct report r = {0};
        struct ks_error *lerr = NULL;
        r.load_rc = ks_seccomp_load(s, &lerr);
        if (lerr)
            snprintf(r.load_msg, sizeof(r.load_msg), "%s", lerr->msg);
        r.nnp = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
        if (r.load_rc == 0)
            probes(&r);
        ssize_t n = write(p[1], &r, sizeof(r));
        _exit(n == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(p[1]);
    ks_seccomp_free(s);
    if (pid < 0) {
        close(p[0]);
        return out;
    }
    ssize_t n = read(p[0], &out.rep, sizeof(out.rep));
    close(p[0]);
    waitpid(pid, &out.status, 0);
    out.ran = n == (ssize_t)sizeof(out.rep);
    if (out.ran && out.rep.load_rc < 0)
        tap_diag("load failed: %s", out.rep.load_msg);
    return out;
}

#define PROBE(rep, i, call)                                                                        \
    do {                                                                                           \
        errno = 0;                                                                                 \
        (rep)->rc[i] = (long)(call);                                                               \
        (rep)->err[i] = errno;                                                                     \
    } while (0)

static void probe_cwd_mkdir(struct report *rep)
{
    char buf[256];
    PROBE(rep, 0, syscall(SYS_getcwd, buf, sizeof(buf)));
    PROBE(rep, 1, mkdir("/nonexistent-kiste-test/dir", 0700));
    PROBE(rep, 2, getppid());
}

static void test_errno(void)
{
    struct outcome out = run_filtered("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                                      "{\"names\":[\"getcwd\",\"mkdir\",\"mkdirat\"],"
                                      "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1234}]}",
                                      probe_cwd_mkdir);
    tap_ok(out.ran && out.rep.load_rc == 0, "errno filter: loads");
    TAP_EQ_INT(out.rep.nnp, 0, "errno filter: loading as root leaves no_new_privs unset");
    TAP_EQ_INT(out.rep.rc[0], -1, "errno filter: getcwd fails");
    TAP_EQ_INT(out.rep.err[0], 1234, "errno filter: getcwd returns errnoRet 1234");
    TAP_EQ_INT(out.rep.err[1], 1234, "errno filter: mkdir returns 1234, not ENOENT");
    tap_ok(out.rep.rc[2] > 0, "errno filter: getppid still works");

    out = run_filtered("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                       "{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_ERRNO\"}]}",
                       probe_cwd_mkdir);
    TAP_EQ_INT(out.rep.err[0], EPERM, "ERRNO without errnoRet returns EPERM");
    TAP_EQ_INT(out.rep.err[1], ENOENT, "an unfiltered mkdir fails normally with ENOENT");
}

static void probe_default_errno(struct report *rep)
{
    PROBE(rep, 0, syscall(SYS_getppid));
    PROBE(rep, 1, syscall(SYS_getpid));
}

static void test_default_errno(void)
{
    /* Everything but what the child needs to report and exit fails with 99. */
    struct outcome out =
        run_filtered("{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":99,"
                     "\"syscalls\":[{\"names\":[\"write\",\"exit\",\"exit_group\",\"getpid\","
                     "\"rt_sigreturn\",\"prctl\",\"this_syscall_does_not_exist\","
                     /* what a sanitizer runtime needs on the way out */
                     "\"sigaltstack\",\"mmap\",\"munmap\",\"madvise\",\"mprotect\","
                     "\"futex\",\"rt_sigprocmask\",\"rt_sigaction\",\"gettid\"],"
                     "\"action\":\"SCMP_ACT_ALLOW\"},"
                     "{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":99}]}",
                     probe_default_errno);
    tap_ok(out.ran && out.rep.load_rc == 0, "default errno: loads (unknown syscall skipped, "
                                            "rule equal to the default skipped)");
    TAP_EQ_INT(out.rep.rc[0], -1, "default errno: getppid is refused");
    TAP_EQ_INT(out.rep.err[0], 99, "default errno: with defaultErrnoRet 99");
    tap_ok(out.rep.rc[1] > 0 && out.rep.rc[1] != getpid(),
           "default errno: the allowed getpid returns the child's pid");
}

static void probe_personality(struct report *rep)
{
    PROBE(rep, 0, syscall(SYS_personality, 0x1234UL));
    PROBE(rep, 1, syscall(SYS_personality, 0xffffffffUL));
    PROBE(rep, 2, syscall(SYS_personality, 0x0001UL));
    PROBE(rep, 3, syscall(SYS_personality, 0x0002UL));
    PROBE(rep, 4, syscall(SYS_personality, 0x0123UL));
    PROBE(rep, 5, syscall(SYS_personality, 0x0000UL));
}

static void test_args(void)
{
    struct outcome out = run_filtered(
        "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],"
        "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":77,"
        "\"args\":[{\"index\":0,\"value\":4660,\"op\":\"SCMP_CMP_EQ\"}]}]}",
        probe_personality);
    tap_ok(out.ran && out.rep.load_rc == 0, "args EQ: loads");
    TAP_EQ_INT(out.rep.err[0], 77, "args EQ: personality(0x1234) returns 77");
    tap_ok(out.rep.rc[1] >= 0, "args EQ: personality(0xffffffff) (a query) works");
    tap_ok(out.rep.rc[2] >= 0, "args EQ: personality(1) works");

    /* Two conditions on the same argument: each is a rule of its own, so either matches. */
    out = run_filtered(
        "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],"
        "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":78,"
        "\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_EQ\"},"
        "{\"index\":0,\"value\":2,\"op\":\"SCMP_CMP_EQ\"}]}]}",
        probe_personality);
    tap_ok(out.ran && out.rep.load_rc == 0, "same index: loads");
    TAP_EQ_INT(out.rep.err[2], 78, "same index: personality(1) matches the first condition");
    TAP_EQ_INT(out.rep.err[3], 78, "same index: personality(2) matches the second condition");
    tap_ok(out.rep.rc[0] >= 0, "same index: personality(0x1234) matches neither");

    /* value is the mask, valueTwo the expected result. */
    out = run_filtered(
        "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],"
        "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":79,"
        "\"args\":[{\"index\":0,\"value\":65280,\"valueTwo\":256,\"op\":\"SCMP_CMP_MASKED_EQ\"}]}"
        "]}",
        probe_personality);
    tap_ok(out.ran && out.rep.load_rc == 0, "masked eq: loads");
    TAP_EQ_INT(out.rep.err[4], 79, "masked eq: 0x0123 & 0xff00 == 0x0100 matches");
    tap_ok(out.rep.rc[1] >= 0, "masked eq: 0xffffffff does not match");
    tap_ok(out.rep.rc[5] >= 0, "masked eq: 0 does not match");

    out = run_filtered(
        "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"personality\"],"
        "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":80,"
        "\"args\":[{\"index\":0,\"value\":4096,\"op\":\"SCMP_CMP_GE\"}]}]}",
        probe_personality);
    TAP_EQ_INT(out.rep.err[0], 80, "GE: 0x1234 >= 4096 matches");
    tap_ok(out.rep.rc[4] >= 0, "GE: 0x123 does not match");
}

static void probe_flock(struct report *rep)
{
    PROBE(rep, 0, flock(999, LOCK_UN));
    PROBE(rep, 1, flock(999, LOCK_SH));
    PROBE(rep, 2, flock(998, LOCK_UN));
}

static void test_args_and(void)
{
    /* Conditions on different arguments must all hold. */
    struct outcome out =
        run_filtered("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"flock\"],"
                     "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":81,"
                     "\"args\":[{\"index\":0,\"value\":999,\"op\":\"SCMP_CMP_EQ\"},"
                     "{\"index\":1,\"value\":8,\"op\":\"SCMP_CMP_EQ\"}]}]}",
                     probe_flock);
    tap_ok(out.ran && out.rep.load_rc == 0, "AND: loads");
    TAP_EQ_INT(out.rep.err[0], 81, "AND: flock(999, LOCK_UN) matches both");
    TAP_EQ_INT(out.rep.err[1], EBADF, "AND: flock(999, LOCK_SH) reaches the kernel");
    TAP_EQ_INT(out.rep.err[2], EBADF, "AND: flock(998, LOCK_UN) reaches the kernel");
}

static void probe_getcwd(struct report *rep)
{
    char buf[256];
    PROBE(rep, 0, syscall(SYS_getcwd, buf, sizeof(buf)));
}

static void test_kill_trap_trace_log(void)
{
    static const char *const kills[] = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
                                        "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP"};
    for (size_t i = 0; i < KS_ELEMENTSOF(kills); i++) {
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                 "\"action\":\"%s\"}]}",
                 kills[i]);
        struct outcome out = run_filtered(json, probe_getcwd);
        tap_ok(!out.ran && WIFSIGNALED(out.status) && WTERMSIG(out.status) == SIGSYS,
               "%s: getcwd ends the child with SIGSYS", kills[i]);
    }

    /* With no tracer attached, SCMP_ACT_TRACE makes the syscall fail with ENOSYS. */
    struct outcome out =
        run_filtered("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
                     "\"getcwd\"],\"action\":\"SCMP_ACT_TRACE\",\"errnoRet\":5}]}",
                     probe_getcwd);
    tap_ok(out.ran && out.rep.load_rc == 0, "TRACE: loads");
    TAP_EQ_INT(out.rep.err[0], ENOSYS, "TRACE without a tracer: ENOSYS");

    out = run_filtered("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
                       "\"getcwd\"],\"action\":\"SCMP_ACT_LOG\"}]}",
                       probe_getcwd);
    tap_ok(out.ran && out.rep.load_rc == 0 && out.rep.rc[0] > 0, "LOG: getcwd still works");

    out = run_filtered("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                       "{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
                       probe_getcwd);
    tap_ok(out.ran && out.rep.rc[0] > 0, "a rule equal to the default action is skipped");
}

static void test_archs_flags(void)
{
#if defined(__x86_64__)
    struct outcome out = run_filtered(
        "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_X86_64\","
        "\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"],\"syscalls\":[{\"names\":[\"getcwd\"],"
        "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":82}]}",
        probe_getcwd);
    tap_ok(out.ran && out.rep.load_rc == 0, "x86 architectures: load");
    TAP_EQ_INT(out.rep.err[0], 82, "x86 architectures: the native rule applies");
#else
    tap_skip("not x86_64", "architectures");
#endif

    /* An architecture this libseccomp does not know is skipped, not an error. */
    if (seccomp_arch_resolve_name("loongarch64") == 0) {
        _cleanup_json_ json_object *o = parse("{\"defaultAction\":\"SCMP_ACT_ALLOW\","
                                              "\"architectures\":[\"SCMP_ARCH_LOONGARCH64\"]}");
        _cleanup_error_ struct ks_error *err = NULL;
        struct ks_seccomp *s = NULL;
        tap_ok(ks_seccomp_new(o, &s, &err) == 0, "an architecture libseccomp lacks is skipped");
        ks_seccomp_free(s);
    } else {
        tap_skip("this libseccomp knows loongarch64", "skipping unknown architectures");
    }

    _cleanup_json_ json_object *feat = ks_seccomp_features_json();
    json_object *supported = ks_json_get(feat, "supportedFlags");
    const char *flags[] = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                           "SECCOMP_FILTER_FLAG_SPEC_ALLOW"};
    for (size_t i = 0; i < KS_ELEMENTSOF(flags); i++) {
        bool ok = false;
        for (size_t k = 0; k < json_object_array_length(supported); k++)
            if (strcmp(json_object_get_string(json_object_array_get_idx(supported, k)), flags[i]) ==
                0)
                ok = true;
        if (!ok) {
            tap_skip("the kernel lacks it", "%s", flags[i]);
            continue;
        }
        char json[256];
        snprintf(json, sizeof(json),
                 "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"%s\"],\"syscalls\":["
                 "{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":83}]}",
                 flags[i]);
        struct outcome out2 = run_filtered(json, probe_getcwd);
        tap_ok(out2.ran && out2.rep.load_rc == 0 && out2.rep.err[0] == 83, "%s: loads and filters",
               flags[i]);
    }
}

static void expect_error(const char *json, int errnum, const char *want, const char *what)
{
    _cleanup_json_ json_object *o = parse(json);
    _cleanup_error_ struct ks_error *err = NULL;
    struct ks_seccomp *s = NULL;
    int r = ks_seccomp_new(o, &s, &err);
    tap_ok(r == -errnum && s == NULL && err != NULL, "%s: fails with -%d", what, errnum);
    TAP_EQ_STR(err ? err->msg : NULL, want, "%s: message", what);
    ks_seccomp_free(s);
}

static void test_errors(void)
{
    expect_error("{\"defaultAction\":\"SCMP_ACT_FOO\"}", EINVAL,
                 "linux.seccomp.defaultAction: unknown action `SCMP_ACT_FOO`",
                 "unknown default action");
    expect_error("{}", EINVAL, "linux.seccomp.defaultAction: missing", "missing default action");
    expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
                 "{\"names\":[\"getcwd\"],\"action\":\"SCMP_ACT_ERRNO\"},"
                 "{\"names\":[\"mkdir\"],\"action\":\"SCMP_ACT_FOO\"}]}",
                 EINVAL, "linux.seccomp.syscalls[1].action: unknown action `SCMP_ACT_FOO`",
                 "unknown rule action");
    expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[\"SCMP_ARCH_FOO\"]}",
                 EINVAL, "linux.seccomp.architectures[0]: unknown architecture `SCMP_ARCH_FOO`",
                 "unknown architecture");
    expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"flags\":[\"SECCOMP_FILTER_FLAG_FOO\"]}",
                 EINVAL, "linux.seccomp.flags[0]: unknown flag `SECCOMP_FILTER_FLAG_FOO`",
                 "unknown flag");
    expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                 "\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":1,\"op\":"
                 "\"SCMP_CMP_EQ\"},{\"index\":1,\"value\":1,\"op\":\"SCMP_CMP_FOO\"}]}]}",
                 EINVAL, "linux.seccomp.syscalls[0].args[1].op: unknown operator `SCMP_CMP_FOO`",
                 "unknown operator");
    expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                 "\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":6,\"value\":1,\"op\":"
                 "\"SCMP_CMP_EQ\"}]}]}",
                 EINVAL, "linux.seccomp.syscalls[0].args[0].index: 6 is out of range (0 to 5)",
                 "argument index out of range");
    expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                 "\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":-1,\"op\":"
                 "\"SCMP_CMP_EQ\"}]}]}",
                 EINVAL, "linux.seccomp.syscalls[0].args[0].value: must be a non-negative integer",
                 "negative value");
    expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                 "\"action\":\"SCMP_ACT_KILL\",\"errnoRet\":3}]}",
                 EINVAL,
                 "linux.seccomp.syscalls[0].errnoRet: not valid with action `SCMP_ACT_KILL`",
                 "errnoRet with an action that takes none");
    expect_error("{\"defaultAction\":\"SCMP_ACT_LOG\",\"defaultErrnoRet\":3}", EINVAL,
                 "linux.seccomp.defaultErrnoRet: not valid with action `SCMP_ACT_LOG`",
                 "defaultErrnoRet with an action that takes none");
    expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
                 "\"action\":\"SCMP_ACT_NOTIFY\"}]}",
                 EOPNOTSUPP,
                 "linux.seccomp.syscalls[0].action: `SCMP_ACT_NOTIFY` is not supported without "
                 "listenerPath support",
                 "notify");
    expect_error("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":\"getcwd\","
                 "\"action\":\"SCMP_ACT_ERRNO\"}]}",
                 EINVAL, "linux.seccomp.syscalls[0].names: must be an array of strings",
                 "names not an array");

    /* Unknown syscall names are skipped, as runc does. */
    _cleanup_json_ json_object *o =
        parse("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":["
              "\"no_such_syscall\"],\"action\":\"SCMP_ACT_ERRNO\"}]}");
    _cleanup_error_ struct ks_error *err = NULL;
    struct ks_seccomp *s = NULL;
    tap_ok(ks_seccomp_new(o, &s, &err) == 0 && s != NULL, "unknown syscall names are skipped");
    ks_seccomp_free(s);
    ks_seccomp_free(NULL);
}

static bool array_has(json_object *arr, const char *s)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++)
        if (strcmp(json_object_get_string(json_object_array_get_idx(arr, i)), s) == 0)
            return true;
    return false;
}

static void test_features(void)
{
    _cleanup_json_ json_object *f = ks_seccomp_features_json();
    tap_ok(f != NULL, "features: built");
    tap_ok(ks_json_bool(f, "enabled", false), "features: enabled");
    json_object *actions = ks_json_get_type(f, "actions", json_type_array);
    tap_ok(array_has(actions, "SCMP_ACT_ERRNO") && array_has(actions, "SCMP_ACT_KILL_PROCESS") &&
               !array_has(actions, "SCMP_ACT_NOTIFY"),
           "features: actions");
    json_object *ops = ks_json_get_type(f, "operators", json_type_array);
    TAP_EQ_INT(json_object_array_length(ops), 7, "features: seven operators");
    tap_ok(array_has(ops, "SCMP_CMP_MASKED_EQ"), "features: MASKED_EQ is listed");
    json_object *archs = ks_json_get_type(f, "archs", json_type_array);
    tap_ok(array_has(archs, "SCMP_ARCH_X86_64") && array_has(archs, "SCMP_ARCH_AARCH64"),
           "features: x86_64 and aarch64 are listed");
    json_object *known = ks_json_get_type(f, "knownFlags", json_type_array);
    tap_ok(array_has(known, "SECCOMP_FILTER_FLAG_TSYNC") &&
               array_has(known, "SECCOMP_FILTER_FLAG_SPEC_ALLOW"),
           "features: known flags");
    json_object *supported = ks_json_get_type(f, "supportedFlags", json_type_array);
    tap_ok(array_has(supported, "SECCOMP_FILTER_FLAG_TSYNC"),
           "features: TSYNC is supported by every kernel that matters");
}

/* The *.bpf files in dir: how many, and the name of the last one seen. */
static int cache_files(const char *dir, char *name, size_t size)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".bpf")) {
            snprintf(name, size, "%s/%s", dir, de->d_name);
            n++;
        }
    return n;
}

static const char *const errno_profile =
    "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\",\"mkdir\","
    "\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1234}]}";

static void expect_errno_filter(const char *what)
{
    struct outcome out = run_filtered(errno_profile, probe_cwd_mkdir);
    tap_ok(out.ran && out.rep.load_rc == 0 && out.rep.err[0] == 1234 && out.rep.err[1] == 1234 &&
               out.rep.rc[2] > 0,
           "cache: %s: the filter loads and denies getcwd/mkdir with 1234, allows getppid", what);
}

static void test_cache(void)
{
    char dir[] = "/tmp/kiste-seccomp-cache.XXXXXX", file[512] = "";
    if (mkdtemp(dir) == NULL) {
        tap_ok(false, "mkdtemp");
        return;
    }
    cache_dir = ks_seccomp_cache_open(dir);
    char sub[600];
    snprintf(sub, sizeof(sub), "%s/@seccomp-cache", dir);
    tap_ok(cache_dir >= 0, "cache: the runtime root opens");
    expect_errno_filter("first use (compiled by libseccomp)");
    TAP_EQ_INT(cache_files(sub, file, sizeof(file)), 1, "cache: the compiled program is stored");
    struct stat st1, st2;
    stat(file, &st1);
    expect_errno_filter("second use (from the cache)");
    stat(file, &st2);
    tap_ok(st1.st_ino == st2.st_ino, "cache: a hit leaves the file alone");

    /* A torn file and one whose key differs are misses, compiled and stored again. */
    tap_ok(truncate(file, st1.st_size - 3) == 0, "cache: file truncated");
    expect_errno_filter("after truncation");
    stat(file, &st2);
    TAP_EQ_INT(st2.st_size, st1.st_size, "cache: a torn file is replaced");
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    ssize_t w = pwrite(fd, "X", 1, 12); /* inside the stored key */
    close(fd);
    tap_ok(w == 1, "cache: key tampered with");
    expect_errno_filter("after the key was changed");

    /* Notify listeners are refused with the cache as without it, and nothing is stored. */
    char other[512];
    _cleanup_json_ json_object *o =
        parse("{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"getcwd\"],"
              "\"action\":\"SCMP_ACT_NOTIFY\"}]}");
    struct ks_seccomp *s = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    tap_ok(ks_seccomp_new_cached(o, cache_dir, &s, &err) < 0, "cache: a notify profile is refused");
    ks_seccomp_free(s);
    TAP_EQ_INT(cache_files(sub, other, sizeof(other)), 1, "cache: nothing stored for it");

    close(cache_dir);
    cache_dir = -EBADF;
    struct ks_error *e2 = NULL;
    ks_rm_rf_at(AT_FDCWD, dir, &e2);
    ks_error_free(e2);
}

int main(void)
{
    tap_plan_auto();
    test_errno();
    test_default_errno();
    test_args();
    test_args_and();
    test_kill_trap_trace_log();
    test_archs_flags();
    test_errors();
    test_features();
    test_cache();
    return tap_done();
}
