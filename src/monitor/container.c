/* The container through the OCI runtime: its stdio, create and start, the exit, the runtime's
 * delete, and the final cleanup. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "lib/base/sync.h"
#include "monitor.h"

#define CAPTURE_MAX 4000 /* of the runtime's stderr, for the error reply */

extern char **environ;

pid_t mon_spawn(struct monitor *m, char *const argv[], int in, int out, int errfd,
                struct ks_error **err)
{
    /* Children start with default signal handling and an empty mask: ignored signals would
     * otherwise stay ignored through exec, in the runtime and in the container's process. */
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    int sigs[] = {SIGPIPE, SIGHUP, SIGINT, SIGTERM, SIGCHLD};
    for (size_t i = 0; i < KS_ELEMENTSOF(sigs); i++)
        sigaddset(&def, sigs[i]);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    int fds[3] = {in, out, errfd};
    for (int i = 0; i < 3; i++)
        posix_spawn_file_actions_adddup2(&fa, fds[i] >= 0 ? fds[i] : m->devnull, i);
    pid_t pid;
    int r = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (r != 0)
        return ks_error_set(err, r, "execute `%s`", argv[0]);
    return pid;
}

static void capture_read(int fd, char *buf, size_t *len)
{
    for (;;) {
        char tmp[1024];
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        size_t k = (size_t)n;
        if (k > CAPTURE_MAX - *len)
            k = CAPTURE_MAX - *len;
        memcpy(buf + *len, tmp, k);
        *len += k;
    }
}

/* Waits for pid while reading capture_fd (non-blocking; may be shared with the container, so
 * its end of file is not waited for) into buf. Returns the wait status. */
static int wait_capturing(pid_t pid, int capture_fd, char *buf, size_t *len)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int status = 0;
    bool hup = false;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR))
            break;
        struct pollfd p[2] = {{.fd = pidfd, .events = POLLIN},
                              {.fd = hup ? -1 : capture_fd, .events = POLLIN}};
        /* Without a pidfd (older kernels), a short timeout stands in for it. */
        if (poll(p, 2, pidfd >= 0 ? -1 : 10) < 0 && errno != EINTR)
            break;
        if (capture_fd >= 0)
            capture_read(capture_fd, buf, len);
        /* No writer is left, so nothing more can come; polling it again would return at once,
         * a busy loop until the runtime exits. */
        if (p[1].revents & POLLHUP)
            hup = true;
    }
    if (capture_fd >= 0)
        capture_read(capture_fd, buf, len);
    if (pidfd >= 0)
        close(pidfd);
    return status;
}

static int status_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 255;
}

/* The runtime's error text without its trailing newlines. */
static void capture_trim(char *buf, size_t *len)
{
    while (*len > 0 && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r' || buf[*len - 1] == ' '))
        (*len)--;
    buf[*len] = '\0';
}

/* Runs `RUNTIME --root RR args… ID` with stdio in/out (-1: /dev/null) and, unless errfd is
 * given, a pipe for stderr whose text goes to buf. Returns the exit status code. */
static int runtime_run(struct monitor *m, const char *const *args, int in, int out, int errfd,
                       int capture_fd, char *buf, struct ks_error **err)
{
    const char *argv[16];
    size_t n = 0;
    argv[n++] = m->o.runtime;
    argv[n++] = "--root";
    argv[n++] = m->o.runtime_root;
    for (size_t i = 0; args[i] && n < KS_ELEMENTSOF(argv) - 2; i++)
        argv[n++] = args[i];
    argv[n++] = m->o.id;
    argv[n] = NULL;
    int pipefd[2] = {-EBADF, -EBADF};
    if (errfd < 0) {
        if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
            return ks_error_set(err, errno, "pipe");
        errfd = pipefd[1];
        capture_fd = pipefd[0];
    }
    pid_t pid = mon_spawn(m, (char *const *)argv, in, out, errfd, err);
    if (pipefd[1] >= 0)
        close(pipefd[1]);
    if (pid < 0) {
        if (pipefd[0] >= 0)
            close(pipefd[0]);
        return pid;
    }
    size_t len = 0;
    int status = wait_capturing(pid, capture_fd, buf, &len);
    if (pipefd[0] >= 0)
        close(pipefd[0]);
    capture_trim(buf, &len);
    return status_code(status);
}

void mon_runtime_delete(struct monitor *m)
{
    char buf[CAPTURE_MAX + 1];
    const char *args[] = {"delete", "--force", NULL};
    runtime_run(m, args, -1, -1, -1, -1, buf, NULL);
}

/* Docker's exit status for a failed start: 127 when the command is not there, 126 when it
 * cannot be executed, 125 for everything else. */
static int error_code(const char *msg)
{
    if (strstr(msg, "exec") == NULL)
        return 125;
    if (strcasestr(msg, "not found") || strcasestr(msg, "no such file"))
        return 127;
    if (strcasestr(msg, "permission denied") || strcasestr(msg, "not executable"))
        return 126;
    return 125;
}

static int make_pipe(int fds[2], struct ks_error **err)
{
    if (pipe2(fds, O_CLOEXEC) < 0)
        return ks_error_set(err, errno, "pipe");
    return 0;
}

/* The container side of its stdio (ends for the runtime's create) in child[3]; our ends go to
 * m. With a terminal the runtime sends the pty master over the console socket instead. */
static int stdio_create(struct monitor *m, int child[3], int *ret_console, struct ks_error **err)
{
    int p[2];
    if (m->o.terminal) {
        unlink("console.sock");
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s < 0)
            return ks_error_set(err, errno, "socket");
        struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = "console.sock"};
        if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 1) < 0) {
            int e = errno;
            close(s);
            return ks_error_set(err, e, "console socket");
        }
        *ret_console = s;
        return 0;
    }
    int r;
    if (m->o.stdin_open) {
        if ((r = make_pipe(p, err)) < 0)
            return r;
        child[0] = p[0];
        m->in_fd = p[1];
        fcntl(m->in_fd, F_SETFL, O_NONBLOCK);
    }
    if ((r = make_pipe(p, err)) < 0)
        return r;
    m->out_fd = p[0];
    child[1] = p[1];
    if ((r = make_pipe(p, err)) < 0)
        return r;
    m->err_fd = p[0];
    child[2] = p[1];
    fcntl(m->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(m->err_fd, F_SETFL, O_NONBLOCK);
    return 0;
}

static int console_receive(struct monitor *m, int console, struct ks_error **err)
{
    int c = accept4(console, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return ks_error_set(err, errno, "console socket: the runtime did not connect");
    struct timeval tv = {.tv_sec = 5};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int master = ks_recv_fd(c);
    close(c);
    if (master < 0)
        return ks_error_set(err, -master, "console socket: receive the pty master");
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    m->out_fd = master;
    if (m->o.stdin_open) {
        m->in_fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
        if (m->in_fd < 0)
            return ks_error_set(err, errno, "dup");
    }
    return 0;
}

/* The cgroup mounts of /proc/self/mountinfo, one line each. Not the whole file: with a
 * thousand containers it is ~600 KiB, and a buffer that large would stay in every monitor's heap
 * as private memory for the container's life. Owned by the caller; NULL on failure. */
static char *cgroup_mounts(void)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return NULL;
    char line[1024], *out = NULL;
    size_t len = 0;
    bool whole = true; /* line starts a line of the file */
    while (fgets(line, sizeof(line), f)) {
        bool starts = whole;
        size_t n = strlen(line);
        whole = n > 0 && line[n - 1] == '\n';
        /* A line longer than the buffer is no cgroup mount of interest: skip its pieces. */
        if (!starts || !whole || strstr(line, " - cgroup") == NULL)
            continue;
        char *grown = realloc(out, len + n + 1);
        if (grown == NULL)
            break;
        out = grown;
        memcpy(out + len, line, n + 1);
        len += n;
    }
    return out;
}

/* The file that counts the OOM kills of the init's cgroup, opened now while the init lives
 * and names its cgroup in /proc: v2's memory.events where it exists (the memory controller is
 * on v2), else v1's memory.oom_control. */
static void oom_open(struct monitor *m)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)m->init_pid);
    _cleanup_free_ char *cg = NULL, *mi = NULL;
    if (ks_read_file(path, &cg, NULL, NULL) < 0 || (mi = cgroup_mounts()) == NULL)
        return;
    char v2[4096], v1[4096];
    mon_oom_files(cg, mi, v2, v1, sizeof(v2));
    if (v2[0])
        m->oom_fd = open(v2, O_RDONLY | O_CLOEXEC);
    if (m->oom_fd < 0 && v1[0])
        m->oom_fd = open(v1, O_RDONLY | O_CLOEXEC);
}

static bool oom_check(struct monitor *m)
{
    if (m->oom_fd < 0)
        return false;
    char buf[1024];
    ssize_t n = pread(m->oom_fd, buf, sizeof(buf) - 1, 0);
    close(m->oom_fd);
    m->oom_fd = -EBADF;
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return mon_oom_count_parse(buf);
}

static int read_pid_file(struct monitor *m, struct ks_error **err)
{
    _cleanup_free_ char *s = NULL;
    int r = ks_read_file(m->pid_file, &s, NULL, err);
    if (r < 0)
        return r;
    char *end;
    long pid = strtol(s, &end, 10);
    if (pid <= 0 || (*end != '\0' && *end != '\n'))
        return ks_error_msg(err, "the runtime's pid file holds `%s`", s);
    m->init_pid = (pid_t)pid;
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -EBADF;
}

int mon_container_start(struct monitor *m, int *ret_code, struct ks_error **err)
{
    int child[3] = {-EBADF, -EBADF, -EBADF};
    _cleanup_close_ int console = -EBADF;
    char buf[CAPTURE_MAX + 1];
    *ret_code = 125;
    unlink(m->pid_file);
    int r = stdio_create(m, child, &console, err);
    if (r < 0)
        goto fail;
    /* The runtime's stderr is the container's: what is in the pipe when create returns is
     * the runtime's (the container's process has not started), read as its error text. */
    const char *create[] = {"create",       "--bundle",  m->o.bundle,
                            "--pid-file",   m->pid_file, m->o.terminal ? "--console-socket" : NULL,
                            "console.sock", NULL};
    int code;
    if (m->o.terminal) {
        code = runtime_run(m, create, -1, -1, -1, -1, buf, err);
    } else {
        code = runtime_run(m, create, child[0], child[1], child[2], m->err_fd, buf, err);
        /* Warnings of a successful create are no part of the container's output. */
        char drop[4096];
        while (read(m->out_fd, drop, sizeof(drop)) > 0)
            ;
    }
    for (int i = 0; i < 3; i++)
        close_fd(&child[i]);
    if (code < 0) {
        r = code;
        goto fail;
    }
    if (code != 0) {
        r = ks_error_msg(err, "%s", buf[0] ? buf : "the runtime's create failed");
        *ret_code = error_code(buf);
        goto fail;
    }
    if ((r = read_pid_file(m, err)) < 0)
        goto fail_delete;
    if (m->o.terminal && (r = console_receive(m, console, err)) < 0)
        goto fail_delete;
    if (console >= 0) {
        close_fd(&console);
        unlink("console.sock");
    }
    oom_open(m);
    const char *start[] = {"start", NULL};
    code = runtime_run(m, start, -1, -1, -1, -1, buf, err);
    if (code != 0) {
        r = code < 0 ? code : ks_error_msg(err, "%s", buf[0] ? buf : "the runtime's start failed");
        *ret_code = error_code(buf);
        goto fail_delete;
    }
    ks_rfc3339_now(m->started_at, sizeof(m->started_at));
    memcpy(m->finished_at, "0001-01-01T00:00:00Z", sizeof("0001-01-01T00:00:00Z"));
    m->started_mono = mon_now_mono();
    m->status = MON_STATUS_RUNNING;
    m->exit_code = 0;
    m->oom_killed = false;
    m->error[0] = '\0';
    mon_state_write(m);
    mon_health_start(m);
    return 0;

fail_delete:
    mon_runtime_delete(m);
fail:
    for (int i = 0; i < 3; i++)
        close_fd(&child[i]);
    if (console >= 0)
        unlink("console.sock");
    close_fd(&m->oom_fd);
    mon_stdio_close(m);
    m->init_pid = 0;
    return r;
}

void mon_stdio_drain(struct monitor *m)
{
    /* Bounded: a process still writing (outside the container's pid namespace) must not keep
     * the monitor here. */
    for (int i = 0; i < 64 && (m->out_fd >= 0 || m->err_fd >= 0); i++) {
        struct pollfd p[2] = {{.fd = m->out_fd, .events = POLLIN},
                              {.fd = m->err_fd, .events = POLLIN}};
        if (poll(p, 2, 0) <= 0)
            break;
        if (p[0].revents)
            mon_stdio_read(m, 0);
        if (p[1].revents)
            mon_stdio_read(m, 1);
    }
}

void mon_container_exited(struct monitor *m, int status)
{
    m->exit_code = status_code(status);
    ks_rfc3339_now(m->finished_at, sizeof(m->finished_at));
    mon_stdio_drain(m);
    m->oom_killed = oom_check(m);
    mon_health_stop(m);
    /* Also kills what is left of the container (with no pid namespace of its own). When the
     * cleanup command is the container's `rm` (--cleanup-deletes, never with a restart policy),
     * that deletes the runtime's state and kills what is left in its own process: a runtime
     * started here for it would cost the removal one more program start. */
    if (!m->o.cleanup_deletes)
        mon_runtime_delete(m);
    mon_stdio_drain(m);
    /* Whoever still holds the other ends now writes into a closed pipe. */
    mon_stdio_close(m);
    m->init_pid = 0;
}

void mon_final_cleanup(struct monitor *m)
{
    if (m->listen_fd >= 0) {
        close_fd(&m->listen_fd);
        unlink("attach");
    }
    /* A failure (not mounted any more) leaves nothing to do and no one to tell. */
    if (m->o.rootfs_mount)
        umount2(m->o.rootfs_mount, MNT_DETACH);
    static const char *const files[] = {"pid", "monitor.pid", "console.sock", "stopping"};
    for (size_t i = 0; i < KS_ELEMENTSOF(files) && m->in_run_dir; i++)
        unlink(files[i]);
}
