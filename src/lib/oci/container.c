/* The container lifecycle. `create` clones the container's init into its new namespaces; the
 * init sets up its root and process, reports over a seqpacket socket, and blocks opening the
 * exec fifo until `start` opens the other end. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "../base/clock.h"
#include "../base/fs.h"
#include "../base/json.h"
#include "../base/log.h"
#include "../base/sync.h"
#include "cgroup.h"
#include "container.h"
#include "internal.h"
#include "seccomp.h"
#include "spec.h"
#include "state.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

enum sync_type {
    SYNC_GO = 1,     /* parent → child: maps written, cgroup joined */
    SYNC_HOOKS,      /* child → parent: run createRuntime hooks now */
    SYNC_HOOKS_DONE, /* parent → child */
    SYNC_READY,      /* child → parent: waiting for start */
    SYNC_ERROR,      /* either way: {errno, message} */
};

struct init_ctx {
    json_object *spec;
    const struct ks_create_opts *o;
    const struct ks_ns_config *ns;
    const char *bundle, *rootfs;
    int sync, fifo, console, bundle_fd, seccomp_cache;
};

static int child_fail(int sync, struct ks_error *e)
{
    ks_sync_send_error(sync, SYNC_ERROR, e);
    ks_error_free(e);
    return 1;
}

static int expect(int sync, int type, struct ks_error **err)
{
    struct ks_sync_msg m;
    int r = ks_sync_recv_ok(sync, SYNC_ERROR, "the runtime went away during setup", &m, err);
    if (r < 0)
        return r;
    if (m.type != type)
        return ks_error_msg(err, "unexpected message %d during setup", m.type);
    return 0;
}

static int apply_sysctl(json_object *linux_obj, struct ks_error **err)
{
    json_object *sc = ks_json_get_type(linux_obj, "sysctl", json_type_object);
    if (sc == NULL)
        return 0;
    json_object_object_foreach(sc, key, val)
    {
        char path[PATH_MAX];
        int n = snprintf(path, sizeof(path), "/proc/sys/%s", key);
        if (n < 0 || (size_t)n >= sizeof(path) || strstr(key, ".."))
            return ks_error_msg(err, "linux.sysctl: invalid key `%s`", key);
        for (char *c = path + 10; *c; c++)
            if (*c == '.')
                *c = '/';
        const char *v = json_object_get_string(val);
        int r = ks_write_file(path, v, strlen(v), err);
        if (r < 0)
            return ks_error_wrap(err, "linux.sysctl `%s`", key);
    }
    return 0;
}

static json_object *state_json(const char *id, const char *status, pid_t pid, const char *bundle,
                               json_object *spec);

/* Settings that, without a namespace of the container's own, would change the host: the host
 * name and sysctls (which ones a namespace covers is runc's list). */
static int check_namespaced(json_object *spec, const struct ks_ns_config *ns, struct ks_error **err)
{
    static const char *const fields[] = {"hostname", "domainname"};
    for (size_t i = 0; i < KS_ELEMENTSOF(fields); i++) {
        const char *v = ks_json_str(spec, fields[i]);
        if (v && *v && !ns->wanted[KS_NS_UTS])
            return ks_error_msg(err, "config.json: %s: set but there is no uts namespace",
                                fields[i]);
    }
    static const char *const ipc_keys[] = {
        "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
        "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};
    json_object *sc = ks_json_get_type(ks_json_get(spec, "linux"), "sysctl", json_type_object);
    if (sc == NULL)
        return 0;
    json_object_object_foreach(sc, key, val)
    {
        (void)val;
        char k[256];
        snprintf(k, sizeof(k), "%s", key);
        for (char *c = k; *c; c++)
            if (*c == '/')
                *c = '.';
        enum ks_ns need = KS_NS__COUNT;
        for (size_t i = 0; i < KS_ELEMENTSOF(ipc_keys); i++)
            if (strcmp(k, ipc_keys[i]) == 0)
                need = KS_NS_IPC;
        if (strncmp(k, "fs.mqueue.", 10) == 0)
            need = KS_NS_IPC;
        else if (strncmp(k, "net.", 4) == 0)
            need = KS_NS_NET;
        else if (strcmp(k, "kernel.domainname") == 0)
            need = KS_NS_UTS;
        if (need == KS_NS__COUNT)
            return ks_error_msg(err,
                                "config.json: linux.sysctl: `%s` is not in a namespace of "
                                "the container's own",
                                key);
        if (!ns->wanted[need])
            return ks_error_msg(err, "config.json: linux.sysctl: `%s` needs a %s namespace", key,
                                ks_ns_table[need].spec_name);
    }
    return 0;
}

/* The container's init, in its new namespaces. Returns only on failure (after reporting it). */
static int init_main(struct init_ctx *c)
{
    struct ks_error *e = NULL;
    int r;
    json_object *linux_obj = ks_json_get(c->spec, "linux");
    json_object *process = ks_json_get(c->spec, "process");
    const struct ks_ns_config *ns = c->ns;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* Nobody may ptrace or read /proc of the init while it holds host resources. */
    prctl(PR_SET_DUMPABLE, 0);
    if ((r = expect(c->sync, SYNC_GO, &e)) < 0)
        return child_fail(c->sync, e);
    if (ns->wanted[KS_NS_USER] && !ns->path[KS_NS_USER]) {
        if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
            ks_error_set(&e, errno, "become root in the user namespace (is uid 0 mapped?)");
            return child_fail(c->sync, e);
        }
    }
    /* Into the bundle by fd, opened before the clone: the init, perhaps an unprivileged user on
     * the host now, need not be able to walk the bundle's path. A new mount namespace takes the
     * working directory along; joining one by path loses it (see below). */
    if (fchdir(c->bundle_fd) < 0) {
        ks_error_set(&e, errno, "chdir bundle `%s`", c->bundle);
        return child_fail(c->sync, e);
    }
    if ((r = ks_ns_join_paths(ns, 0, &e)) < 0)
        return child_fail(c->sync, e);
    if (ns->path[KS_NS_USER] && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)) {
        ks_error_set(&e, errno, "become root in the joined user namespace");
        return child_fail(c->sync, e);
    }
    int flags = 0;
    static const enum ks_ns later[] = {KS_NS_MNT, KS_NS_NET, KS_NS_IPC, KS_NS_UTS};
    for (size_t i = 0; i < KS_ELEMENTSOF(later); i++)
        if (ns->wanted[later[i]] && !ns->path[later[i]])
            flags |= ks_ns_table[later[i]].flag;
    if (flags && unshare(flags) < 0) {
        ks_error_set(&e, errno, "create namespaces");
        return child_fail(c->sync, e);
    }
    if (ns->wanted[KS_NS_CGROUP] && !ns->path[KS_NS_CGROUP] && unshare(CLONE_NEWCGROUP) < 0) {
        ks_error_set(&e, errno, "create cgroup namespace");
        return child_fail(c->sync, e);
    }
    if (ns->wanted[KS_NS_TIME] && !ns->path[KS_NS_TIME]) {
        if (unshare(CLONE_NEWTIME) < 0) {
            ks_error_set(&e, errno, "create time namespace");
            return child_fail(c->sync, e);
        }
        if ((r = ks_ns_write_time_offsets(linux_obj, &e)) < 0)
            return child_fail(c->sync, e);
    }
    if (!c->o->no_new_keyring)
        syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, NULL);
    const char *hostname = ks_json_str(c->spec, "hostname");
    /* Only in a UTS namespace of its own (an empty name without one is let through). */
    if (!ns->wanted[KS_NS_UTS])
        hostname = NULL;
    if (hostname && sethostname(hostname, strlen(hostname)) < 0) {
        ks_error_set(&e, errno, "hostname: set `%s`", hostname);
        return child_fail(c->sync, e);
    }
    const char *domain = ks_json_str(c->spec, "domainname");
    if (!ns->wanted[KS_NS_UTS])
        domain = NULL;
    if (domain && setdomainname(domain, strlen(domain)) < 0) {
        ks_error_set(&e, errno, "domainname: set `%s`", domain);
        return child_fail(c->sync, e);
    }
    if ((r = apply_sysctl(linux_obj, &e)) < 0)
        return child_fail(c->sync, e);
    if (ns->path[KS_NS_MNT] && chdir(c->bundle) < 0) {
        ks_error_set(&e, errno, "chdir bundle `%s`", c->bundle);
        return child_fail(c->sync, e);
    }

    struct ks_rootfs_opts ro = {
        .spec = c->spec,
        .rootfs = c->rootfs,
        .no_pivot = c->o->no_pivot,
        .userns = ns->wanted[KS_NS_USER],
        .console_slave = -EBADF,
    };
    _cleanup_close_ int rootfd = -EBADF;
    bool own_mnt = ns->wanted[KS_NS_MNT];
    if (own_mnt && (r = ks_rootfs_prepare(&ro, &rootfd, &e)) < 0)
        return child_fail(c->sync, e);
    ks_sync_send(c->sync, SYNC_HOOKS, 0, NULL);
    if ((r = expect(c->sync, SYNC_HOOKS_DONE, &e)) < 0)
        return child_fail(c->sync, e);
    json_object *hooks = ks_json_get(c->spec, "hooks");
    if (hooks) {
        _cleanup_json_ json_object *st =
            state_json(c->o->id, "created", (pid_t)syscall(SYS_getpid), c->bundle, c->spec);
        if ((r = ks_hooks_run(hooks, "createContainer", ks_json_plain(st), &e)) < 0)
            return child_fail(c->sync, e);
    }
    /* The exec fifo is reopened through /proc, which the new root need not have. */
    _cleanup_close_ int fd_dir = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd_dir < 0) {
        ks_error_set(&e, errno, "open /proc/self/fd");
        return child_fail(c->sync, e);
    }
    if (own_mnt && (r = ks_rootfs_pivot(&ro, rootfd, &e)) < 0)
        return child_fail(c->sync, e);
    /* Without a mount namespace nothing is mounted (it would land on the host), but root.path
     * is still the container's root: chroot into it. */
    if (!own_mnt && (chroot(c->rootfs) < 0 || chdir("/") < 0)) {
        ks_error_set(&e, errno, "chroot into `%s`", c->rootfs);
        return child_fail(c->sync, e);
    }

    _cleanup_close_ int slave = -EBADF;
    if (ks_json_bool(process, "terminal", false)) {
        slave = ks_terminal_setup(c->console, process, &e);
        if (slave < 0)
            return child_fail(c->sync, e);
        close(c->console);
        ro.console_slave = slave;
    }
    if (own_mnt && (r = ks_rootfs_finish(&ro, &e)) < 0)
        return child_fail(c->sync, e);

    struct ks_process_plan plan;
    if ((r = ks_process_plan_init(&plan, process, ks_json_get(linux_obj, "seccomp"), &e)) < 0)
        return child_fail(c->sync, e);
    plan.seccomp_cache = c->seccomp_cache;
    if ((r = ks_process_apply_attrs(&plan, linux_obj, &e)) < 0)
        return child_fail(c->sync, e);
    const char *cwd = ks_json_str(process, "cwd");
    if (cwd && chdir(cwd) < 0) {
        ks_error_set(&e, errno, "process.cwd: chdir `%s`", cwd);
        return child_fail(c->sync, e);
    }
    if ((r = ks_process_resolve(&plan, &e)) < 0)
        return child_fail(c->sync, e);

    /* Opened while still privileged; reopened for writing once start is called. */
    char fifo_name[16];
    snprintf(fifo_name, sizeof(fifo_name), "%d", c->fifo);
    if ((r = ks_process_drop_privileges(&plan, &e)) < 0)
        return child_fail(c->sync, e);
    /* From here on the init outlives the command that created it. */
    prctl(PR_SET_PDEATHSIG, 0);
    if (ks_sync_send(c->sync, SYNC_READY, 0, NULL) < 0)
        return 1;
    close(c->sync);

    int wfd = openat(fd_dir, fifo_name, O_WRONLY | O_CLOEXEC);
    if (wfd < 0) {
        dprintf(STDERR_FILENO, "kiste-runtime: open exec fifo: %s\n", strerror(errno));
        return 1;
    }
    (void)!write(wfd, "0", 1);
    close(wfd);
    close(c->fifo);
    close(TAKE_FD(fd_dir));
    if (hooks) {
        /* The state of the spec's lifecycle: the program has not been executed yet. */
        _cleanup_json_ json_object *st =
            state_json(c->o->id, "created", (pid_t)syscall(SYS_getpid), c->bundle, c->spec);
        if (ks_hooks_run(hooks, "startContainer", ks_json_plain(st), &e) < 0) {
            dprintf(STDERR_FILENO, "kiste-runtime: %s\n", e->msg);
            return 1;
        }
    }
    /* Nothing of the runtime's may reach the program: only 0-2 and the preserved fds stay. */
    syscall(SYS_close_range, 3 + c->o->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    ks_process_exec(&plan, &e);
    dprintf(STDERR_FILENO, "kiste-runtime: %s\n", e ? e->msg : "exec failed");
    return 127;
}

static int connect_console(const char *path, struct ks_error **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return ks_error_msg(err, "--console-socket: path too long");
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ks_error_set(err, errno, "socket");
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return ks_error_set(err, e, "connect to console socket `%s`", path);
    }
    return fd;
}

/* Whether one of the config's own device rules names exactly this device (not a wildcard):
 * such a rule is the config's word on reading and writing it, which the automatic allow must
 * not override. */
static bool device_has_own_rule(json_object *rules, const char *type, int64_t major, int64_t minor)
{
    for (size_t i = 0; rules && i < json_object_array_length(rules); i++) {
        json_object *r = json_object_array_get_idx(rules, i);
        const char *t = ks_json_str(r, "type");
        if (t == NULL || strcmp(t, type) != 0 || ks_json_get(r, "major") == NULL ||
            ks_json_get(r, "minor") == NULL)
            continue;
        if (ks_json_int(r, "major", -1) == major && ks_json_int(r, "minor", -1) == minor)
            return true;
    }
    return false;
}

/* Device rules for the cgroup: the config's own, then the default devices and every device of
 * linux.devices allowed, so the nodes the runtime creates can be used. A device the config has
 * a rule of its own for is only allowed to be created (the rules are in force before the init
 * makes its nodes): opening it is up to the config. New reference. */
static json_object *resources_with_devices(json_object *spec)
{
    json_object *linux_obj = ks_json_get(spec, "linux");
    json_object *res = ks_json_get_type(linux_obj, "resources", json_type_object);
    json_object *copy = NULL;
    if (res == NULL || json_object_deep_copy(res, &copy, NULL) < 0)
        copy = json_object_new_object();
    json_object *rules = json_object_new_array();
    json_object *orig = ks_json_get_type(copy, "devices", json_type_array);
    for (size_t i = 0; orig && i < json_object_array_length(orig); i++)
        json_object_array_add(rules, json_object_get(json_object_array_get_idx(orig, i)));
    json_object *defs = ks_devices_default_rules();
    for (size_t i = 0; i < json_object_array_length(defs); i++)
        json_object_array_add(rules, json_object_get(json_object_array_get_idx(defs, i)));
    json_object_put(defs);
    json_object *devs = ks_json_get_type(linux_obj, "devices", json_type_array);
    for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
        json_object *d = json_object_array_get_idx(devs, i);
        const char *t = ks_json_str(d, "type");
        if (t == NULL || t[0] == 'p')
            continue;
        const char *ct = t[0] == 'u' ? "c" : t;
        bool own =
            device_has_own_rule(orig, ct, ks_json_int(d, "major", 0), ks_json_int(d, "minor", 0));
        json_object *r = json_object_new_object();
        json_object_object_add(r, "allow", json_object_new_boolean(1));
        json_object_object_add(r, "type", json_object_new_string(ct));
        json_object_object_add(r, "major", json_object_new_int64(ks_json_int(d, "major", 0)));
        json_object_object_add(r, "minor", json_object_new_int64(ks_json_int(d, "minor", 0)));
        json_object_object_add(r, "access", json_object_new_string(own ? "m" : "rwm"));
        json_object_array_add(rules, r);
    }
    json_object_object_add(copy, "devices", rules);
    return copy;
}

static json_object *state_json(const char *id, const char *status, pid_t pid, const char *bundle,
                               json_object *spec)
{
    json_object *o = json_object_new_object();
    const char *ver = ks_json_str(spec, "ociVersion");
    json_object_object_add(o, "ociVersion", json_object_new_string(ver ? ver : "1.2.0"));
    json_object_object_add(o, "id", json_object_new_string(id));
    json_object_object_add(o, "status", json_object_new_string(status));
    json_object_object_add(o, "pid", json_object_new_int(pid));
    json_object_object_add(o, "bundle", json_object_new_string(bundle ? bundle : ""));
    json_object *ann = ks_json_get_type(spec, "annotations", json_type_object);
    if (ann)
        json_object_object_add(o, "annotations", json_object_get(ann));
    return o;
}

static int run_hooks_with_state(json_object *spec, const char *kind, const char *id,
                                const char *status, pid_t pid, const char *bundle,
                                struct ks_error **err)
{
    json_object *hooks = ks_json_get(spec, "hooks");
    if (ks_json_get(hooks, kind) == NULL)
        return 0;
    _cleanup_json_ json_object *st = state_json(id, status, pid, bundle, spec);
    return ks_hooks_run(hooks, kind, ks_json_plain(st), err);
}

int ks_write_pid_file(const char *path, pid_t pid, struct ks_error **err)
{
    if (path == NULL)
        return 0;
    _cleanup_free_ char *copy = strdup(path);
    char *slash = copy ? strrchr(copy, '/') : NULL;
    const char *dir = ".", *base = copy;
    if (slash) {
        *slash = '\0';
        dir = *copy ? copy : "/";
        base = slash + 1;
    }
    _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "--pid-file: open `%s`", dir);
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d", pid);
    int r = ks_write_file_replace(dfd, base, buf, (size_t)n, 0644, err);
    if (r < 0)
        return ks_error_wrap(err, "--pid-file");
    return 0;
}

static int load_layout_cgroup(const char *path, struct ks_cgroup **ret, struct ks_error **err)
{
    struct ks_cgroup_layout *l = NULL;
    int r = ks_cgroup_layout_detect("/sys/fs/cgroup", &l, err);
    if (r < 0)
        return r;
    r = ks_cgroup_open(l, path, ret, err);
    ks_cgroup_layout_free(l);
    return r;
}

int ks_container_create(const char *root, const struct ks_create_opts *o, pid_t *ret_pid,
                        struct ks_error **err)
{
    if (!ks_container_id_valid(o->id))
        return ks_error_msg(err, "invalid container id `%s`", o->id);
    _cleanup_json_ json_object *spec = NULL;
    int r = ks_spec_load(o->bundle, &spec, err);
    if (r < 0)
        return r;
    json_object *process = ks_json_get(spec, "process");
    if (process == NULL)
        return ks_error_msg(err, "config.json: process: required to create a container");
    char bundle[PATH_MAX], rootfs[PATH_MAX];
    if (realpath(o->bundle, bundle) == NULL)
        return ks_error_set(err, errno, "bundle `%s`", o->bundle);
    const char *rp = ks_json_str(ks_json_get(spec, "root"), "path");
    char joined[PATH_MAX * 2];
    snprintf(joined, sizeof(joined), "%s/%s", rp[0] == '/' ? "" : bundle, rp);
    if (realpath(joined, rootfs) == NULL)
        return ks_error_set(err, errno, "config.json: root.path `%s`", rp);
    struct ks_ns_config ns;
    if ((r = ks_ns_parse(spec, &ns, err)) < 0)
        return r;
    if ((r = check_namespaced(spec, &ns, err)) < 0)
        return r;
    bool terminal = ks_json_bool(process, "terminal", false);
    if (terminal && o->console_socket == NULL && o->console_fd < 0)
        return ks_error_msg(err, "process.terminal is true: --console-socket is required");

    r = ks_mkdir_p(root, 0700, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/%s", root, o->id) < 0)
        return ks_error_set(err, ENOMEM, "create");
    if (mkdir(dir, 0711) < 0) {
        if (errno == EEXIST)
            return ks_error_set_plain(err, EEXIST, "container `%s` already exists", o->id);
        return ks_error_set(err, errno, "mkdir `%s`", dir);
    }
    /* From here on, failure removes what was made. */
    pid_t pid = -1;
    struct ks_cgroup *cg = NULL;
    _cleanup_close_ int dirfd = -EBADF, fifo = -EBADF, console = -EBADF, bundle_fd = -EBADF;
    _cleanup_close_ int seccomp_cache = -EBADF;
    int sp[2] = {-EBADF, -EBADF};
    _cleanup_free_ char *cgpath = NULL;

    dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        r = ks_error_set(err, errno, "open `%s`", dir);
        goto fail;
    }
    bundle_fd = open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (bundle_fd < 0) {
        r = ks_error_set(err, errno, "open bundle `%s`", bundle);
        goto fail;
    }
    if (mkfifoat(dirfd, "exec.fifo", 0622) < 0) {
        r = ks_error_set(err, errno, "mkfifo");
        goto fail;
    }
    /* The mode must survive the umask: the container's user writes to it. */
    char fifo_path[PATH_MAX];
    snprintf(fifo_path, sizeof(fifo_path), "%s/exec.fifo", dir);
    chmod(fifo_path, 0622);
    fifo = open(fifo_path, O_PATH | O_CLOEXEC);
    if (fifo < 0) {
        r = ks_error_set(err, errno, "open exec fifo");
        goto fail;
    }
    if (terminal) {
        if (o->console_fd >= 0) {
            console = fcntl(o->console_fd, F_DUPFD_CLOEXEC, 3);
        } else {
            console = connect_console(o->console_socket, err);
            if (console < 0) {
                r = console;
                goto fail;
            }
        }
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        r = ks_error_set(err, errno, "socketpair");
        goto fail;
    }
    if (ks_json_get(ks_json_get(spec, "linux"), "seccomp"))
        seccomp_cache = ks_seccomp_cache_open(root);
    if (ns.path[KS_NS_PID]) {
        _cleanup_close_ int pfd = open(ns.path[KS_NS_PID], O_RDONLY | O_CLOEXEC);
        if (pfd < 0 || setns(pfd, CLONE_NEWPID) < 0) {
            r = ks_error_set(err, errno, "join pid namespace `%s`", ns.path[KS_NS_PID]);
            goto fail;
        }
    }
    unsigned long flags = SIGCHLD;
    if (ns.wanted[KS_NS_USER] && !ns.path[KS_NS_USER])
        flags |= CLONE_NEWUSER;
    if (ns.wanted[KS_NS_PID] && !ns.path[KS_NS_PID])
        flags |= CLONE_NEWPID;
    pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, 0);
    if (pid < 0) {
        r = ks_error_set(err, errno, "clone the container's init");
        goto fail;
    }
    if (pid == 0) {
        close(sp[0]);
        struct init_ctx c = {.spec = spec,
                             .o = o,
                             .ns = &ns,
                             .bundle = bundle,
                             .rootfs = rootfs,
                             .sync = sp[1],
                             .fifo = fifo,
                             .console = console,
                             .bundle_fd = bundle_fd,
                             .seccomp_cache = seccomp_cache};
        _exit(init_main(&c));
    }
    close(sp[1]);
    sp[1] = -EBADF;

    json_object *linux_obj = ks_json_get(spec, "linux");
    if (flags & CLONE_NEWUSER) {
        if ((r = ks_ns_write_id_maps(pid, linux_obj, err)) < 0)
            goto fail;
    }
    {
        struct ks_cgroup_layout *layout = NULL;
        if ((r = ks_cgroup_layout_detect("/sys/fs/cgroup", &layout, err)) < 0)
            goto fail;
        cgpath = ks_cgroup_path_for(ks_json_str(linux_obj, "cgroupsPath"), o->id);
        _cleanup_json_ json_object *res = resources_with_devices(spec);
        r = ks_cgroup_create(layout, cgpath, res, pid, &cg, err);
        ks_cgroup_layout_free(layout);
        if (r < 0)
            goto fail;
    }
    ks_sync_send(sp[0], SYNC_GO, 0, NULL);
    for (;;) {
        struct ks_sync_msg m;
        r = ks_sync_recv_ok(sp[0], SYNC_ERROR, "the container's init exited during setup", &m, err);
        if (r < 0)
            goto fail;
        if (m.type == SYNC_HOOKS) {
            if ((r = run_hooks_with_state(spec, "prestart", o->id, "created", pid, bundle, err)) <
                    0 ||
                (r = run_hooks_with_state(spec, "createRuntime", o->id, "created", pid, bundle,
                                          err)) < 0) {
                ks_sync_send_error(sp[0], SYNC_ERROR, *err);
                goto fail;
            }
            ks_sync_send(sp[0], SYNC_HOOKS_DONE, 0, NULL);
            continue;
        }
        if (m.type == SYNC_READY)
            break;
    }

    {
        char created[KS_RFC3339_LEN];
        ks_rfc3339_now(created, sizeof(created));
        json_object *st = json_object_new_object();
        json_object_object_add(st, "id", json_object_new_string(o->id));
        json_object_object_add(st, "pid", json_object_new_int(pid));
        json_object_object_add(st, "pidStart",
                               json_object_new_int64((int64_t)ks_proc_start_time(pid)));
        json_object_object_add(st, "bundle", json_object_new_string(bundle));
        json_object_object_add(st, "rootfs", json_object_new_string(rootfs));
        json_object_object_add(st, "created", json_object_new_string(created));
        json_object_object_add(st, "owner", json_object_new_string(""));
        json_object_object_add(st, "cgroupPath", json_object_new_string(cgpath));
        json_object_object_add(st, "config", json_object_get(spec));
        r = ks_state_save(dirfd, st, err);
        json_object_put(st);
        if (r < 0)
            goto fail;
    }
    if ((r = ks_write_pid_file(o->pid_file, pid, err)) < 0)
        goto fail;
    close(sp[0]);
    ks_cgroup_free(cg);
    *ret_pid = pid;
    return 0;

fail:
    if (sp[0] >= 0)
        close(sp[0]);
    if (sp[1] >= 0)
        close(sp[1]);
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (cg) {
        ks_cgroup_destroy(cg, NULL);
        ks_cgroup_free(cg);
    }
    ks_rm_rf_at(AT_FDCWD, dir, NULL);
    return r;
}

static enum ks_status full_status(struct ks_state *s)
{
    enum ks_status st = ks_state_status(s, NULL);
    if (st == KS_STATUS_RUNNING && s->cgroup_path) {
        struct ks_cgroup *cg = NULL;
        if (load_layout_cgroup(s->cgroup_path, &cg, NULL) == 0) {
            bool frozen = false;
            if (ks_cgroup_is_frozen(cg, &frozen, NULL) == 0 && frozen)
                st = KS_STATUS_PAUSED;
            ks_cgroup_free(cg);
        }
    }
    return st;
}

int ks_container_start(const char *root, const char *id, struct ks_error **err)
{
    _cleanup_(ks_state_free_p) struct ks_state *s = NULL;
    int r = ks_state_load(root, id, &s, err);
    if (r < 0)
        return r;
    enum ks_status st = ks_state_status(s, NULL);
    if (st != KS_STATUS_CREATED)
        return ks_error_set_plain(err, EINVAL, "cannot start container `%s` in state `%s`", id,
                                  ks_status_name(st));
    char fifo_path[PATH_MAX];
    snprintf(fifo_path, sizeof(fifo_path), "%s/exec.fifo", s->dir);
    _cleanup_close_ int fd = open(fifo_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "open exec fifo");
    /* The init writes one byte once it holds the other end; wait for it, but not for a dead
     * process. */
    for (int tries = 0;; tries++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 100);
        if (n > 0 && (p.revents & POLLIN)) {
            char b;
            if (read(fd, &b, 1) == 1)
                break;
        }
        if (ks_proc_start_time(s->pid) != s->pid_start)
            return ks_error_set_plain(err, ESRCH, "container `%s` exited before start", id);
        if (tries > 600)
            return ks_error_set_plain(err, ETIMEDOUT, "container `%s` did not start", id);
    }
    unlink(fifo_path);
    struct ks_error *hook_err = NULL;
    if (run_hooks_with_state(s->config, "poststart", id, "running", s->pid, s->bundle, &hook_err) <
        0) {
        ks_warn("%s", hook_err->msg);
        ks_error_free(hook_err);
    }
    return 0;
}

/* The name of uid from /etc/passwd, read directly as runc does: no NSS modules, so the runtime
 * can be linked statically. Leaves buf alone when there is none. */
static void user_name(uid_t uid, char *buf, size_t len)
{
    _cleanup_fclose_ FILE *f = fopen("/etc/passwd", "re");
    if (f == NULL)
        return;
    struct passwd *pw;
    while ((pw = fgetpwent(f)) != NULL) {
        if (pw->pw_uid == uid) {
            snprintf(buf, len, "%s", pw->pw_name);
            return;
        }
    }
}

static json_object *state_of(struct ks_state *s)
{
    enum ks_status st = full_status(s);
    json_object *o = state_json(s->id, ks_status_name(st), st == KS_STATUS_STOPPED ? 0 : s->pid,
                                s->bundle, s->config);
    json_object_object_add(o, "rootfs", json_object_new_string(s->rootfs ? s->rootfs : ""));
    json_object_object_add(o, "created", json_object_new_string(s->created ? s->created : ""));
    char owner[256] = "";
    struct stat sb;
    if (stat(s->dir, &sb) == 0)
        user_name(sb.st_uid, owner, sizeof(owner));
    json_object_object_add(o, "owner", json_object_new_string(owner));
    return o;
}

int ks_container_state(const char *root, const char *id, json_object **ret, struct ks_error **err)
{
    _cleanup_(ks_state_free_p) struct ks_state *s = NULL;
    int r = ks_state_load(root, id, &s, err);
    if (r < 0)
        return r;
    *ret = state_of(s);
    return 0;
}

int ks_container_kill(const char *root, const char *id, int sig, bool all, struct ks_error **err)
{
    _cleanup_(ks_state_free_p) struct ks_state *s = NULL;
    int r = ks_state_load(root, id, &s, err);
    if (r < 0)
        return r;
    enum ks_status st = ks_state_status(s, NULL);
    if (st == KS_STATUS_STOPPED && !all)
        return ks_error_set_plain(err, ESRCH, "container `%s` is not running", id);
    if (all) {
        struct ks_cgroup *cg = NULL;
        if ((r = load_layout_cgroup(s->cgroup_path, &cg, err)) < 0)
            return r;
        r = ks_cgroup_kill_all(cg, sig, err);
        ks_cgroup_free(cg);
        return r;
    }
    if (kill(s->pid, sig) < 0)
        return ks_error_set(err, errno, "kill container `%s`", id);
    return 0;
}

static void wait_gone(pid_t pid, unsigned long long start)
{
    for (int i = 0; i < 1000; i++) {
        if (ks_proc_start_time(pid) != start)
            return;
        /* Reap it if it happens to be ours. */
        waitpid(pid, NULL, WNOHANG);
        struct timespec ts = {0, i < 20 ? 1000000 : 10000000};
        nanosleep(&ts, NULL);
    }
}

int ks_container_delete(const char *root, const char *id, bool force, struct ks_error **err)
{
    _cleanup_(ks_state_free_p) struct ks_state *s = NULL;
    int r = ks_state_load(root, id, &s, err);
    if (r < 0) {
        /* A record being written by a create that died: remove what is there. */
        if (err && *err && (*err)->errnum == ENOENT && ks_container_id_valid(id)) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof(dir), "%s/%s", root, id);
            struct stat sb;
            if (stat(dir, &sb) == 0 && force) {
                ks_error_free(*err);
                *err = NULL;
                return ks_rm_rf_at(AT_FDCWD, dir, err);
            }
        }
        return r;
    }
    enum ks_status st = full_status(s);
    if ((st == KS_STATUS_RUNNING || st == KS_STATUS_PAUSED) && !force)
        return ks_error_set_plain(err, EBUSY,
                                  "cannot delete container `%s` that is %s (use --force)", id,
                                  ks_status_name(st));
    struct ks_cgroup *cg = NULL;
    if (s->cgroup_path)
        load_layout_cgroup(s->cgroup_path, &cg, NULL);
    if (st != KS_STATUS_STOPPED) {
        if (cg)
            ks_cgroup_kill_all(cg, SIGKILL, NULL);
        kill(s->pid, SIGKILL);
        wait_gone(s->pid, s->pid_start);
    } else if (cg) {
        /* The init is gone; take any process it left behind with it. */
        ks_cgroup_kill_all(cg, SIGKILL, NULL);
    }
    if (cg) {
        struct ks_error *e = NULL;
        if (ks_cgroup_destroy(cg, &e) < 0) {
            ks_warn("%s", e->msg);
            ks_error_free(e);
        }
        ks_cgroup_free(cg);
    }
    struct ks_error *hook_err = NULL;
    if (run_hooks_with_state(s->config, "poststop", id, "stopped", 0, s->bundle, &hook_err) < 0) {
        ks_warn("%s", hook_err->msg);
        ks_error_free(hook_err);
    }
    return ks_rm_rf_at(AT_FDCWD, s->dir, err);
}

int ks_container_pause(const char *root, const char *id, bool pause, struct ks_error **err)
{
    _cleanup_(ks_state_free_p) struct ks_state *s = NULL;
    int r = ks_state_load(root, id, &s, err);
    if (r < 0)
        return r;
    enum ks_status st = full_status(s);
    if (pause && st != KS_STATUS_RUNNING)
        return ks_error_set_plain(err, EINVAL, "cannot pause container `%s` that is %s", id,
                                  ks_status_name(st));
    if (!pause && st != KS_STATUS_PAUSED)
        return ks_error_set_plain(err, EINVAL, "cannot resume container `%s` that is %s", id,
                                  ks_status_name(st));
    struct ks_cgroup *cg = NULL;
    if ((r = load_layout_cgroup(s->cgroup_path, &cg, err)) < 0)
        return r;
    r = ks_cgroup_freeze(cg, pause, err);
    ks_cgroup_free(cg);
    return r;
}

int ks_container_update(const char *root, const char *id, json_object *resources,
                        struct ks_error **err)
{
    _cleanup_(ks_state_free_p) struct ks_state *s = NULL;
    int r = ks_state_load(root, id, &s, err);
    if (r < 0)
        return r;
    if (ks_state_status(s, NULL) == KS_STATUS_STOPPED)
        return ks_error_set_plain(err, EINVAL, "container `%s` is stopped", id);
    struct ks_cgroup *cg = NULL;
    if ((r = load_layout_cgroup(s->cgroup_path, &cg, err)) < 0)
        return r;
    r = ks_cgroup_update(cg, resources, err);
    ks_cgroup_free(cg);
    if (r < 0)
        return r;
    /* Remember the new values so a later `update` or `state` sees them. */
    json_object *linux_obj = ks_json_get(s->config, "linux");
    if (linux_obj) {
        json_object *cur = ks_json_get_type(linux_obj, "resources", json_type_object);
        if (cur == NULL) {
            cur = json_object_new_object();
            json_object_object_add(linux_obj, "resources", cur);
        }
        json_object_object_foreach(resources, k, v)
        {
            json_object_object_add(cur, k, json_object_get(v));
        }
        _cleanup_close_ int dfd = open(s->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
            ks_state_save(dfd, s->raw, NULL);
    }
    return 0;
}

/* The cgroup of container id, owned by the caller. */
static int container_cgroup(const char *root, const char *id, struct ks_cgroup **ret,
                            struct ks_error **err)
{
    _cleanup_(ks_state_free_p) struct ks_state *s = NULL;
    int r = ks_state_load(root, id, &s, err);
    if (r < 0)
        return r;
    return load_layout_cgroup(s->cgroup_path, ret, err);
}

int ks_container_pids(const char *root, const char *id, pid_t **ret, size_t *ret_n,
                      struct ks_error **err)
{
    struct ks_cgroup *cg = NULL;
    int r = container_cgroup(root, id, &cg, err);
    if (r < 0)
        return r;
    r = ks_cgroup_pids(cg, ret, ret_n, err);
    ks_cgroup_free(cg);
    return r;
}

int ks_container_stats(const char *root, const char *id, json_object **ret, struct ks_error **err)
{
    struct ks_cgroup *cg = NULL;
    int r = container_cgroup(root, id, &cg, err);
    if (r < 0)
        return r;
    r = ks_cgroup_stats(cg, ret, err);
    ks_cgroup_free(cg);
    return r;
}

int ks_container_list(const char *root, json_object **ret, struct ks_error **err)
{
    json_object *a = json_object_new_array();
    _cleanup_closedir_ DIR *d = opendir(root);
    if (d == NULL) {
        if (errno == ENOENT) {
            *ret = a;
            return 0;
        }
        json_object_put(a);
        return ks_error_set(err, errno, "open `%s`", root);
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        struct ks_state *s = NULL;
        if (ks_state_load(root, de->d_name, &s, NULL) < 0)
            continue;
        json_object_array_add(a, state_of(s));
        ks_state_free(s);
    }
    *ret = a;
    return 0;
}
