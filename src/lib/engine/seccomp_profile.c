/* Docker's default seccomp policy expressed as data: which syscalls a container may make, on
 * which argument values, and which only with a capability in its bounding set. The policy
 * denies with EPERM by default, so a program probing for a syscall sees "not permitted" rather
 * than a crash, and new syscalls stay closed until they are reviewed. */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "../base/json.h"
#include "seccomp_profile.h"

/* Architectures in the Go spelling the profile uses for its arch conditions. */
enum {
    A_AMD64 = 1u << 0,
    A_X86 = 1u << 1,
    A_X32 = 1u << 2,
    A_ARM64 = 1u << 3,
    A_ARM = 1u << 4,
    A_PPC64LE = 1u << 5,
    A_S390 = 1u << 6,
    A_S390X = 1u << 7,
    A_RISCV64 = 1u << 8,
};

#if defined(__x86_64__) && defined(__ILP32__)
#define NATIVE_ARCH A_X32
#elif defined(__x86_64__)
#define NATIVE_ARCH A_AMD64
#elif defined(__i386__)
#define NATIVE_ARCH A_X86
#elif defined(__aarch64__)
#define NATIVE_ARCH A_ARM64
#elif defined(__arm__)
#define NATIVE_ARCH A_ARM
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define NATIVE_ARCH A_PPC64LE
#elif defined(__s390x__)
#define NATIVE_ARCH A_S390X
#elif defined(__s390__)
#define NATIVE_ARCH A_S390
#elif defined(__riscv) && __riscv_xlen == 64
#define NATIVE_ARCH A_RISCV64
#else
#define NATIVE_ARCH 0u
#endif

/* The filter also covers the compat ABIs a 64-bit kernel runs (32-bit x86 and x32 binaries on
 * x86_64, 32-bit ARM on aarch64): without them a 32-bit binary would meet the default action
 * for every syscall. Elsewhere only the native architecture is listed. */
static const char *const arch_list_amd64[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                              NULL};
static const char *const arch_list_arm64[] = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", NULL};

static const char *const *native_arch_list(void)
{
    switch (NATIVE_ARCH) {
    case A_AMD64:
        return arch_list_amd64;
    case A_ARM64:
        return arch_list_arm64;
    default:
        return NULL;
    }
}

enum cmp { CMP_NONE, CMP_EQ, CMP_LT, CMP_GT, CMP_MASKED_EQ };

static const char *const cmp_names[] = {
    [CMP_EQ] = "SCMP_CMP_EQ",
    [CMP_LT] = "SCMP_CMP_LT",
    [CMP_GT] = "SCMP_CMP_GT",
    [CMP_MASKED_EQ] = "SCMP_CMP_MASKED_EQ",
};

/* One rule of the profile. A rule applies when every condition holds: the kernel is at least
 * min_kernel, the native architecture is in only_arches (when set) and not in not_arches, the
 * capability need_cap (when set) is in the bounding set and unless_cap is not. */
struct rule {
    const char *const *names;
    int errno_ret; /* 0: allow; else the errno returned */
    enum cmp op;   /* one condition on the argument arg_index, CMP_NONE: none */
    unsigned arg_index;
    uint64_t value; /* for CMP_MASKED_EQ: the mask, the expected value being 0 */
    unsigned only_arches, not_arches;
    const char *need_cap, *unless_cap;
    unsigned min_kernel; /* major * 1000 + minor, 0: any */
};

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Harmless syscalls: every container gets them. */
static const char *const allowed[] = {
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "riscv_hwprobe",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    NULL,
};

/* socket(2) families: everything but AF_ALG (38), the kernel's crypto API with its history of
 * exploitable bugs, and AF_VSOCK (40), which reaches the host's hypervisor sockets across the
 * container's network namespace. AF_NFC (39) lies between them. The numbers are the kernel's
 * ABI; 32-bit x86 reaches socket() through socketcall(2), which no argument filter covers. */
#define FAMILY_ALG   38
#define FAMILY_NFC   39
#define FAMILY_VSOCK 40
/* personality(2): only the persona values that harmless programs set (PER_LINUX, PER_LINUX32,
 * UNAME26, UNAME26|PER_LINUX32) and the query 0xffffffff; others (ADDR_NO_RANDOMIZE…) weaken
 * the container's address-space layout randomization. */
/* clone(2) without CAP_SYS_ADMIN: none of the namespace flags CLONE_NEWNS, NEWCGROUP, NEWUTS,
 * NEWIPC, NEWUSER, NEWPID and NEWNET (the value masked with them must be 0). */
#define CLONE_NS_FLAGS                                                                             \
    ((uint64_t)(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |      \
                CLONE_NEWPID | CLONE_NEWNET))
_Static_assert(CLONE_NS_FLAGS == 0x7E020000, "namespace flags of clone(2)");

static const struct rule rules[] = {
    /* Allowed for everyone since 4.8, where ptrace stopped being a way around seccomp. */
    {.names = NAMES("process_vm_readv", "process_vm_writev", "ptrace"), .min_kernel = 4008},
    {.names = NAMES("socket"), .op = CMP_LT, .arg_index = 0, .value = FAMILY_ALG},
    {.names = NAMES("socket"), .op = CMP_EQ, .arg_index = 0, .value = FAMILY_NFC},
    {.names = NAMES("socket"), .op = CMP_GT, .arg_index = 0, .value = FAMILY_VSOCK},
    {.names = NAMES("personality"), .op = CMP_EQ, .value = 0x0},
    {.names = NAMES("personality"), .op = CMP_EQ, .value = 0x8},
    {.names = NAMES("personality"), .op = CMP_EQ, .value = 0x20000},
    {.names = NAMES("personality"), .op = CMP_EQ, .value = 0x20008},
    {.names = NAMES("personality"), .op = CMP_EQ, .value = 0xffffffff},
    /* Architecture-specific harmless calls. */
    {.names = NAMES("sync_file_range2", "swapcontext"), .only_arches = A_PPC64LE},
    {.names = NAMES("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
                    "cacheflush", "set_tls"),
     .only_arches = A_ARM | A_ARM64},
    {.names = NAMES("arch_prctl"), .only_arches = A_AMD64 | A_X32},
    {.names = NAMES("modify_ldt"), .only_arches = A_AMD64 | A_X32 | A_X86},
    {.names = NAMES("s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"),
     .only_arches = A_S390 | A_S390X},
    {.names = NAMES("riscv_flush_icache"), .only_arches = A_RISCV64},
    /* What a capability in the bounding set unlocks. */
    {.names = NAMES("open_by_handle_at"), .need_cap = "CAP_DAC_READ_SEARCH"},
    {.names = NAMES("bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen",
                    "fspick", "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules",
                    "lsm_set_self_attr", "mount", "mount_setattr", "move_mount", "open_tree",
                    "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname",
                    "setns", "syslog", "umount", "umount2", "unshare"),
     .need_cap = "CAP_SYS_ADMIN"},
    {.names = NAMES("clone"),
     .op = CMP_MASKED_EQ,
     .arg_index = 0,
     .value = CLONE_NS_FLAGS,
     .not_arches = A_S390 | A_S390X,
     .unless_cap = "CAP_SYS_ADMIN"},
    /* s390 passes clone's flags as the second argument. */
    {.names = NAMES("clone"),
     .op = CMP_MASKED_EQ,
     .arg_index = 1,
     .value = CLONE_NS_FLAGS,
     .only_arches = A_S390 | A_S390X,
     .unless_cap = "CAP_SYS_ADMIN"},
    /* clone3 passes its flags in memory, out of seccomp's reach: ENOSYS makes the C library
     * fall back to clone, whose flags the rule above checks. */
    {.names = NAMES("clone3"), .errno_ret = ENOSYS, .unless_cap = "CAP_SYS_ADMIN"},
    {.names = NAMES("reboot"), .need_cap = "CAP_SYS_BOOT"},
    {.names = NAMES("chroot"), .need_cap = "CAP_SYS_CHROOT"},
    {.names = NAMES("delete_module", "init_module", "finit_module"), .need_cap = "CAP_SYS_MODULE"},
    {.names = NAMES("acct"), .need_cap = "CAP_SYS_PACCT"},
    {.names = NAMES("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                    "process_vm_writev", "ptrace"),
     .need_cap = "CAP_SYS_PTRACE"},
    {.names = NAMES("iopl", "ioperm"), .need_cap = "CAP_SYS_RAWIO"},
    {.names = NAMES("settimeofday", "stime", "clock_settime", "clock_settime64"),
     .need_cap = "CAP_SYS_TIME"},
    {.names = NAMES("vhangup"), .need_cap = "CAP_SYS_TTY_CONFIG"},
    {.names = NAMES("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
     .need_cap = "CAP_SYS_NICE"},
    {.names = NAMES("syslog"), .need_cap = "CAP_SYSLOG"},
    {.names = NAMES("bpf"), .need_cap = "CAP_BPF"},
    {.names = NAMES("perf_event_open"), .need_cap = "CAP_PERFMON"},
};

static bool has_cap(const char *const *caps, const char *name)
{
    for (; caps != NULL && *caps != NULL; caps++)
        if (strcmp(*caps, name) == 0)
            return true;
    return false;
}

/* The running kernel as major * 1000 + minor; 0 when uname does not say. */
static unsigned kernel_version(void)
{
    struct utsname u;
    unsigned major = 0, minor = 0;
    if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &major, &minor) != 2)
        return 0;
    return major * 1000 + minor;
}

static bool rule_applies(const struct rule *r, const char *const *caps, unsigned kernel)
{
    if (r->min_kernel != 0 && kernel < r->min_kernel)
        return false;
    if (r->only_arches != 0 && (r->only_arches & NATIVE_ARCH) == 0)
        return false;
    if ((r->not_arches & NATIVE_ARCH) != 0)
        return false;
    if (r->need_cap != NULL && !has_cap(caps, r->need_cap))
        return false;
    if (r->unless_cap != NULL && has_cap(caps, r->unless_cap))
        return false;
    return true;
}

/* Adds o to arr, taking o's reference; -ENOMEM when either is NULL or adding fails. */
static int array_add(json_object *arr, json_object *o)
{
    if (arr == NULL || o == NULL || json_object_array_add(arr, o) < 0) {
        json_object_put(o);
        return -ENOMEM;
    }
    return 0;
}

static int object_add(json_object *obj, const char *key, json_object *o)
{
    if (o == NULL || json_object_object_add(obj, key, o) < 0) {
        json_object_put(o);
        return -ENOMEM;
    }
    return 0;
}

static json_object *string_array(const char *const *v)
{
    json_object *arr = json_object_new_array();
    for (; arr != NULL && *v != NULL; v++)
        if (array_add(arr, json_object_new_string(*v)) < 0) {
            json_object_put(arr);
            return NULL;
        }
    return arr;
}

static json_object *rule_json(const struct rule *r)
{
    _cleanup_json_ json_object *o = json_object_new_object();
    if (o == NULL || object_add(o, "names", string_array(r->names)) < 0)
        return NULL;
    if (r->errno_ret == 0) {
        if (object_add(o, "action", json_object_new_string("SCMP_ACT_ALLOW")) < 0)
            return NULL;
    } else if (object_add(o, "action", json_object_new_string("SCMP_ACT_ERRNO")) < 0 ||
               object_add(o, "errnoRet", json_object_new_int(r->errno_ret)) < 0) {
        return NULL;
    }
    if (r->op != CMP_NONE) {
        json_object *arg = json_object_new_object();
        json_object *args = json_object_new_array();
        if (object_add(o, "args", args) < 0 || array_add(args, arg) < 0)
            return NULL;
        if (object_add(arg, "index", json_object_new_int((int)r->arg_index)) < 0 ||
            object_add(arg, "value", json_object_new_uint64(r->value)) < 0 ||
            object_add(arg, "valueTwo", json_object_new_uint64(0)) < 0 ||
            object_add(arg, "op", json_object_new_string(cmp_names[r->op])) < 0)
            return NULL;
    }
    return TAKE_PTR(o);
}

int ks_seccomp_default_profile(const char *const *caps, json_object **ret, struct ks_error **err)
{
    _cleanup_json_ json_object *o = json_object_new_object();
    if (o == NULL || object_add(o, "defaultAction", json_object_new_string("SCMP_ACT_ERRNO")) < 0 ||
        object_add(o, "defaultErrnoRet", json_object_new_int(EPERM)) < 0)
        return ks_error_set(err, ENOMEM, "building the default seccomp profile");

    const char *const *arches = native_arch_list();
    if (arches != NULL && object_add(o, "architectures", string_array(arches)) < 0)
        return ks_error_set(err, ENOMEM, "building the default seccomp profile");

    json_object *syscalls = json_object_new_array();
    if (object_add(o, "syscalls", syscalls) < 0)
        return ks_error_set(err, ENOMEM, "building the default seccomp profile");

    const struct rule base = {.names = allowed};
    if (array_add(syscalls, rule_json(&base)) < 0)
        return ks_error_set(err, ENOMEM, "building the default seccomp profile");
    unsigned kernel = kernel_version();
    for (size_t i = 0; i < KS_ELEMENTSOF(rules); i++) {
        if (!rule_applies(&rules[i], caps, kernel))
            continue;
        if (array_add(syscalls, rule_json(&rules[i])) < 0)
            return ks_error_set(err, ENOMEM, "building the default seccomp profile");
    }

    *ret = TAKE_PTR(o);
    return 0;
}
