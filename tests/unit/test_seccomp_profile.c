/* Docker's default seccomp policy: the object validates as config.json's linux.seccomp, builds
 * into a filter, and, loaded into forked children, allows and refuses what Docker's does, with
 * the capability-gated syscalls open only to a bounding set that has the capability. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "engine/seccomp_profile.h"
#include "oci/seccomp.h"
#include "engine/container.h"
#include "oci/spec.h"
#include "tap.h"

/* A container's default bounding set, Docker's. */
#define docker_caps ks_container_default_caps

static const char *const admin_caps[] = {"CAP_SYS_ADMIN", "CAP_SYS_BOOT", NULL};

static json_object *profile(const char *const *caps)
{
    json_object *o = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_seccomp_default_profile(caps, &o, &err) < 0) {
        tap_diag("ks_seccomp_default_profile: %s", err->msg);
        abort();
    }
    return o;
}

/* Whether some rule with this action names the syscall; with_args: only rules with (true) or
 * without (false) argument conditions. */
static bool has_rule(json_object *prof, const char *name, const char *action, bool with_args)
{
    json_object *syscalls = ks_json_get_type(prof, "syscalls", json_type_array);
    for (size_t i = 0; syscalls && i < json_object_array_length(syscalls); i++) {
        json_object *r = json_object_array_get_idx(syscalls, i);
        const char *act = ks_json_str(r, "action");
        if (act == NULL || strcmp(act, action) != 0)
            continue;
        if ((ks_json_get_type(r, "args", json_type_array) != NULL) != with_args)
            continue;
        json_object *names = ks_json_get_type(r, "names", json_type_array);
        for (size_t k = 0; names && k < json_object_array_length(names); k++)
            if (strcmp(json_object_get_string(json_object_array_get_idx(names, k)), name) == 0)
                return true;
    }
    return false;
}

static bool allows(json_object *prof, const char *name)
{
    return has_rule(prof, name, "SCMP_ACT_ALLOW", false);
}

static void test_shape(void)
{
    _cleanup_json_ json_object *p = profile(docker_caps);
    TAP_EQ_STR(ks_json_str(p, "defaultAction"), "SCMP_ACT_ERRNO", "default action is errno");
    TAP_EQ_INT(ks_json_int(p, "defaultErrnoRet", -1), EPERM, "default errno is EPERM");
    json_object *archs = ks_json_get_type(p, "architectures", json_type_array);
#if defined(__x86_64__)
    tap_ok(archs && json_object_array_length(archs) == 3 &&
               strcmp(json_object_get_string(json_object_array_get_idx(archs, 0)),
                      "SCMP_ARCH_X86_64") == 0 &&
               strcmp(json_object_get_string(json_object_array_get_idx(archs, 1)),
                      "SCMP_ARCH_X86") == 0 &&
               strcmp(json_object_get_string(json_object_array_get_idx(archs, 2)),
                      "SCMP_ARCH_X32") == 0,
           "x86_64: architectures X86_64, X86, X32");
    tap_ok(allows(p, "arch_prctl") && allows(p, "modify_ldt"), "x86_64: arch_prctl, modify_ldt");
    tap_ok(!allows(p, "set_tls") && !allows(p, "s390_runtime_instr"),
           "x86_64: other architectures' calls are left out");
#elif defined(__aarch64__)
    tap_ok(archs && json_object_array_length(archs) == 2, "aarch64: architectures AARCH64, ARM");
    tap_ok(allows(p, "set_tls") && !allows(p, "arch_prctl"), "aarch64: ARM's own calls");
#else
    tap_skip("not x86_64 or aarch64", "architectures");
#endif
    tap_ok(allows(p, "read") && allows(p, "execve") && allows(p, "openat2") &&
               allows(p, "io_uring_setup") == false,
           "the allow list has read, execve, openat2, not io_uring_setup");
    tap_ok(!allows(p, "socket") && has_rule(p, "socket", "SCMP_ACT_ALLOW", true),
           "socket is allowed only by family");
    tap_ok(has_rule(p, "personality", "SCMP_ACT_ALLOW", true) && !allows(p, "personality"),
           "personality is allowed only for some values");
    tap_ok(allows(p, "ptrace") && allows(p, "process_vm_readv"),
           "ptrace is allowed (kernel >= 4.8)");

    /* The whole object is valid as config.json's linux.seccomp and builds into a filter. */
    _cleanup_json_ json_object *spec = ks_spec_default(false);
    json_object *linux_ = ks_json_get(spec, "linux");
    json_object_object_add(linux_, "seccomp", json_object_get(p));
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_spec_validate(spec, &err);
    if (!tap_ok(r == 0, "the profile validates in a config.json"))
        tap_diag("%s", err->msg);
    struct ks_seccomp *s = NULL;
    ks_error_free(TAKE_PTR(err));
    r = ks_seccomp_new(p, &s, &err);
    if (!tap_ok(r == 0 && s != NULL, "the profile builds into a filter"))
        tap_diag("%s", err ? err->msg : "");
    ks_seccomp_free(s);
}

static void test_caps_gating(void)
{
    _cleanup_json_ json_object *none = profile(NULL);
    _cleanup_json_ json_object *dflt = profile(docker_caps);
    _cleanup_json_ json_object *admin = profile(admin_caps);

    static const char *const admin_only[] = {"mount",       "umount2", "unshare", "setns",
                                             "sethostname", "clone3",  "bpf",     NULL};
    bool absent = true, present = true;
    for (const char *const *n = admin_only; *n; n++) {
        absent = absent && !allows(none, *n) && !allows(dflt, *n);
        present = present && allows(admin, *n);
    }
    tap_ok(absent, "mount, unshare, setns … are not allowed without CAP_SYS_ADMIN");
    tap_ok(present, "… and are allowed with it");
    tap_ok(!allows(dflt, "reboot") && allows(admin, "reboot"), "reboot only with CAP_SYS_BOOT");
    tap_ok(allows(dflt, "chroot") && !allows(none, "chroot") && !allows(admin, "chroot"),
           "chroot only with CAP_SYS_CHROOT");
    tap_ok(!allows(dflt, "open_by_handle_at") && !allows(dflt, "kcmp") &&
               !allows(dflt, "settimeofday") && !allows(dflt, "init_module"),
           "open_by_handle_at, kcmp, settimeofday, init_module need their capabilities");

    tap_ok(has_rule(dflt, "clone", "SCMP_ACT_ALLOW", true) && !allows(dflt, "clone"),
           "without CAP_SYS_ADMIN clone is allowed only without namespace flags");
    tap_ok(!has_rule(admin, "clone", "SCMP_ACT_ALLOW", true) && allows(admin, "clone"),
           "with CAP_SYS_ADMIN clone is allowed whole");
    tap_ok(has_rule(dflt, "clone3", "SCMP_ACT_ERRNO", false) &&
               !has_rule(admin, "clone3", "SCMP_ACT_ERRNO", false),
           "clone3 fails with ENOSYS only without CAP_SYS_ADMIN");

    static const char *const ptrace_cap[] = {"CAP_SYS_PTRACE", "CAP_SYS_TIME", NULL};
    _cleanup_json_ json_object *pt = profile(ptrace_cap);
    tap_ok(allows(pt, "kcmp") && allows(pt, "pidfd_getfd") && allows(pt, "clock_settime"),
           "CAP_SYS_PTRACE opens kcmp and pidfd_getfd, CAP_SYS_TIME clock_settime");
}

/* What each probe in a filtered child returned, and its errno. */
#define MAX_PROBES 12
struct report {
    int load_rc;
    char load_msg[200];
    long rc[MAX_PROBES];
    int err[MAX_PROBES];
};

#define PROBE(rep, i, call)                                                                        \
    do {                                                                                           \
        errno = 0;                                                                                 \
        (rep)->rc[i] = (long)(call);                                                               \
        (rep)->err[i] = errno;                                                                     \
    } while (0)

static void probes(struct report *rep)
{
    PROBE(rep, 0, syscall(SYS_getpid));
    PROBE(rep, 1, unshare(CLONE_NEWUTS));
    PROBE(rep, 2, syscall(SYS_mount, "none", "/nonexistent-kiste", "tmpfs", 0UL, NULL));
    PROBE(rep, 3, syscall(SYS_personality, 0xffffffffUL));
    PROBE(rep, 4, syscall(SYS_personality, (unsigned long)ADDR_NO_RANDOMIZE));
    int fd;
    PROBE(rep, 5, fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd >= 0)
        close(fd);
    PROBE(rep, 6, fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd >= 0)
        close(fd);
    /* clone3 with a too-small argument: EINVAL when the kernel sees it, ENOSYS from the
     * filter. */
    PROBE(rep, 7, syscall(SYS_clone3, NULL, (size_t)0));
    /* clone with CLONE_NEWUTS: a child that exits at once when it is allowed. */
    long pid;
    PROBE(rep, 8,
          pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUTS | SIGCHLD), NULL, NULL, NULL, 0UL));
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid((pid_t)pid, NULL, 0);
    /* An invalid magic: EINVAL when the kernel sees it, EPERM from the filter. */
    PROBE(rep, 9, syscall(SYS_reboot, 0UL, 0UL, 0UL, NULL));
    PROBE(rep, 10, chroot("/nonexistent-kiste"));
    PROBE(rep, 11, syscall(SYS_personality, 0UL));
}

/* Builds the profile's filter in the parent, loads it in a child and runs the probes. */
static bool run_filtered(const char *const *caps, struct report *out)
{
    _cleanup_json_ json_object *p = profile(caps);
    _cleanup_error_ struct ks_error *err = NULL;
    struct ks_seccomp *s = NULL;
    if (ks_seccomp_new(p, &s, &err) < 0) {
        tap_diag("ks_seccomp_new: %s", err->msg);
        return false;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) {
        ks_seccomp_free(s);
        return false;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        struct report r = {0};
        struct ks_error *lerr = NULL;
        r.load_rc = ks_seccomp_load(s, &lerr);
        if (lerr)
            snprintf(r.load_msg, sizeof(r.load_msg), "%s", lerr->msg);
        if (r.load_rc == 0)
            probes(&r);
        ssize_t n = write(fds[1], &r, sizeof(r));
        _exit(n == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(fds[1]);
    ks_seccomp_free(s);
    if (pid < 0) {
        close(fds[0]);
        return false;
    }
    memset(out, 0, sizeof(*out));
    ssize_t n = read(fds[0], out, sizeof(*out));
    close(fds[0]);
    waitpid(pid, NULL, 0);
    if (n == (ssize_t)sizeof(*out) && out->load_rc < 0)
        tap_diag("load failed: %s", out->load_msg);
    return n == (ssize_t)sizeof(*out) && out->load_rc == 0;
}

static void test_filtered(void)
{
    struct report r;
    if (!tap_ok(run_filtered(docker_caps, &r), "default caps: the filter loads in a child"))
        return;
    tap_ok(r.rc[0] > 0, "default caps: getpid works");
    TAP_EQ_INT(r.err[1], EPERM, "default caps: unshare(CLONE_NEWUTS) is refused");
    TAP_EQ_INT(r.err[2], EPERM, "default caps: mount is refused");
    tap_ok(r.rc[3] >= 0, "default caps: personality(0xffffffff) works");
    TAP_EQ_INT(r.err[4], EPERM, "default caps: personality(ADDR_NO_RANDOMIZE) is refused");
    TAP_EQ_INT(r.err[5], EPERM, "default caps: socket(AF_VSOCK) is refused");
    tap_ok(r.rc[6] >= 0, "default caps: socket(AF_UNIX) works");
    TAP_EQ_INT(r.err[7], ENOSYS, "default caps: clone3 fails with ENOSYS");
    TAP_EQ_INT(r.err[8], EPERM, "default caps: clone(CLONE_NEWUTS) is refused");
    TAP_EQ_INT(r.err[9], EPERM, "default caps: reboot is refused");
    TAP_EQ_INT(r.err[10], ENOENT, "default caps: chroot reaches the kernel (CAP_SYS_CHROOT)");
    tap_ok(r.rc[11] >= 0, "default caps: personality(PER_LINUX) works");

    if (!tap_ok(run_filtered(admin_caps, &r), "admin caps: the filter loads in a child"))
        return;
    TAP_EQ_INT(r.rc[1], 0, "admin caps: unshare(CLONE_NEWUTS) works");
    TAP_EQ_INT(r.err[2], ENOENT, "admin caps: mount reaches the kernel");
    TAP_EQ_INT(r.err[7], EINVAL, "admin caps: clone3 reaches the kernel");
    tap_ok(r.rc[8] > 0, "admin caps: clone(CLONE_NEWUTS) works");
    TAP_EQ_INT(r.err[9], EINVAL, "admin caps: reboot reaches the kernel (bad magic)");
    TAP_EQ_INT(r.err[10], EPERM, "admin caps: chroot is refused without CAP_SYS_CHROOT");
}

int main(void)
{
    tap_plan_auto();
    test_shape();
    test_caps_gating();
    test_filtered();
    return tap_done();
}
