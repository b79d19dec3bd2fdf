/* exec: a further process in a running container, entering its namespaces and cgroup and
 * taking the container's seccomp filter. */
#include <fcntl.h>
#include <limits.h>
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

#include "../base/fs.h"
#include "../base/json.h"
#include "../base/sync.h"
#include "cgroup.h"
#include "container.h"
#include "internal.h"
#include "state.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

enum { EXEC_GO = 1, EXEC_READY, EXEC_ERROR };

static int exec_fail(int sync, struct ks_error *e)
{
    ks_sync_send_error(sync, EXEC_ERROR, e);
    ks_error_free(e);
    return 1;
}

static int exec_child(int sync, const int nsfd[KS_NS__COUNT], json_object *process,
                      json_object *linux_obj, int console, int preserve_fds)
{
    struct ks_error *e = NULL;
    struct ks_sync_msg m;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_DUMPABLE, 0);
    if (ks_sync_recv(sync, &m) < 0 || m.type != EXEC_GO)
        return 1;
    for (size_t k = 0; k < KS_NS__COUNT; k++) {
        if (nsfd[k] < 0 || k == KS_NS_PID)
            continue;
        if (setns(nsfd[k], ks_ns_table[k].flag) < 0) {
            ks_error_set(&e, errno, "join the container's %s namespace", ks_ns_table[k].spec_name);
            return exec_fail(sync, e);
        }
        if (k == KS_NS_USER && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)) {
            ks_error_set(&e, errno, "become root in the container's user namespace");
            return exec_fail(sync, e);
        }
    }
    if (chdir("/") < 0)
        return exec_fail(sync, ks_error_new(errno, "chdir /"));
    if (ks_json_bool(process, "terminal", false)) {
        int slave = ks_terminal_setup(console, process, &e);
        if (slave < 0)
            return exec_fail(sync, e);
        close(console);
        close(slave);
    }
    struct ks_process_plan plan;
    if (ks_process_plan_init(&plan, process, ks_json_get(linux_obj, "seccomp"), &e) < 0 ||
        ks_process_apply_attrs(&plan, linux_obj, &e) < 0)
        return exec_fail(sync, e);
    const char *cwd = ks_json_str(process, "cwd");
    if (cwd && chdir(cwd) < 0) {
        ks_error_set(&e, errno, "process.cwd: chdir `%s`", cwd);
        return exec_fail(sync, e);
    }
    if (ks_process_resolve(&plan, &e) < 0 || ks_process_drop_privileges(&plan, &e) < 0)
        return exec_fail(sync, e);
    prctl(PR_SET_PDEATHSIG, 0);
    ks_sync_send(sync, EXEC_READY, 0, NULL);
    close(sync);
    syscall(SYS_close_range, 3 + preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    ks_process_exec(&plan, &e);
    dprintf(STDERR_FILENO, "kiste-runtime: %s\n", e ? e->msg : "exec failed");
    return 127;
}

static bool same_ns(pid_t pid, const char *name)
{
    char a[64], b[64];
    struct stat sa, sb;
    snprintf(a, sizeof(a), "/proc/%d/ns/%s", pid, name);
    snprintf(b, sizeof(b), "/proc/self/ns/%s", name);
    if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
        return true;
    return sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

int ks_container_exec(const char *root, const struct ks_exec_opts *o, pid_t *ret_pid,
                      struct ks_error **err)
{
    _cleanup_(ks_state_free_p) struct ks_state *s = NULL;
    int r = ks_state_load(root, o->id, &s, err);
    if (r < 0)
        return r;
    enum ks_status st = ks_state_status(s, NULL);
    if (st != KS_STATUS_RUNNING && st != KS_STATUS_CREATED)
        return ks_error_set_plain(err, EINVAL, "cannot exec in container `%s` that is %s", o->id,
                                  ks_status_name(st));
    _cleanup_strv_ char **args = ks_json_strv(o->process, "args");
    if (args == NULL || args[0] == NULL)
        return ks_error_msg(err, "process.args: must name the program to run");

    int nsfd[KS_NS__COUNT];
    for (size_t k = 0; k < KS_NS__COUNT; k++)
        nsfd[k] = -EBADF;
    int sp[2] = {-EBADF, -EBADF};
    _cleanup_close_ int console = -EBADF;
    pid_t pid = -1;
    struct ks_cgroup *cg = NULL;
    for (size_t k = 0; k < KS_NS__COUNT; k++) {
        if (same_ns(s->pid, ks_ns_table[k].proc_name))
            continue;
        char p[64];
        snprintf(p, sizeof(p), "/proc/%d/ns/%s", s->pid, ks_ns_table[k].proc_name);
        nsfd[k] = open(p, O_RDONLY | O_CLOEXEC);
        if (nsfd[k] < 0) {
            r = ks_error_set(err, errno, "open `%s`", p);
            goto out;
        }
    }
    /* The container may have exited while we opened its namespaces. */
    if (ks_proc_start_time(s->pid) != s->pid_start) {
        r = ks_error_set_plain(err, ESRCH, "container `%s` is not running", o->id);
        goto out;
    }
    if (ks_json_bool(o->process, "terminal", false)) {
        if (o->console_fd >= 0) {
            console = fcntl(o->console_fd, F_DUPFD_CLOEXEC, 3);
        } else if (o->console_socket) {
            struct sockaddr_un sa = {.sun_family = AF_UNIX};
            snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", o->console_socket);
            console = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (console < 0 || connect(console, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                r = ks_error_set(err, errno, "connect to console socket `%s`", o->console_socket);
                goto out;
            }
        } else {
            r = ks_error_msg(err, "process.terminal is true: --console-socket is required");
            goto out;
        }
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        r = ks_error_set(err, errno, "socketpair");
        goto out;
    }
    /* Joining a pid namespace applies to children: join it here, fork into it. */
    if (nsfd[KS_NS_PID] >= 0 && setns(nsfd[KS_NS_PID], CLONE_NEWPID) < 0) {
        r = ks_error_set(err, errno, "join the container's pid namespace");
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        r = ks_error_set(err, errno, "fork");
        goto out;
    }
    if (pid == 0) {
        close(sp[0]);
        _exit(exec_child(sp[1], nsfd, o->process, ks_json_get(s->config, "linux"), console,
                         o->preserve_fds));
    }
    close(sp[1]);
    sp[1] = -EBADF;
    if (s->cgroup_path) {
        struct ks_cgroup_layout *l = NULL;
        if ((r = ks_cgroup_layout_detect("/sys/fs/cgroup", &l, err)) < 0)
            goto out;
        r = ks_cgroup_open(l, s->cgroup_path, &cg, err);
        ks_cgroup_layout_free(l);
        if (r < 0 || (r = ks_cgroup_enter(cg, pid, err)) < 0)
            goto out;
    }
    ks_sync_send(sp[0], EXEC_GO, 0, NULL);
    struct ks_sync_msg m;
    r = ks_sync_recv_ok(sp[0], EXEC_ERROR, "the process exited during setup", &m, err);
    if (r < 0)
        goto out;
    if ((r = ks_write_pid_file(o->pid_file, pid, err)) < 0)
        goto out;
    *ret_pid = pid;
    pid = -1;
    r = 0;
out:
    if (r < 0 && pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    for (size_t k = 0; k < KS_NS__COUNT; k++)
        if (nsfd[k] >= 0)
            close(nsfd[k]);
    if (sp[0] >= 0)
        close(sp[0]);
    if (sp[1] >= 0)
        close(sp[1]);
    ks_cgroup_free(cg);
    return r;
}
