/* Hooks: programs config.json names for points of the container's life, each given the state
 * on its standard input and, where asked, a time limit. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "internal.h"

static int run_one(json_object *h, const char *kind, size_t idx, const char *state,
                   struct ks_error **err)
{
    const char *path = ks_json_str(h, "path");
    if (path == NULL)
        return ks_error_msg(err, "hooks.%s[%zu].path: missing", kind, idx);
    _cleanup_strv_ char **args = ks_json_strv(h, "args");
    _cleanup_strv_ char **env = ks_json_strv(h, "env");
    int64_t timeout = ks_json_int(h, "timeout", 0);
    char *fallback_argv[] = {(char *)path, NULL};
    char *empty_env[] = {NULL};

    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return ks_error_set(err, errno, "pipe");
    /* The child's failure to exec comes back through this pipe. */
    int ex[2];
    if (pipe2(ex, O_CLOEXEC) < 0) {
        close(in[0]);
        close(in[1]);
        return ks_error_set(err, errno, "pipe");
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]), close(in[1]), close(ex[0]), close(ex[1]);
        return ks_error_set(err, errno, "fork");
    }
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        execve(path, args && args[0] ? args : fallback_argv, env ? env : empty_env);
        int e = errno;
        (void)!write(ex[1], &e, sizeof(e));
        _exit(127);
    }
    close(in[0]);
    close(ex[1]);
    int exec_errno = 0;
    if (read(ex[0], &exec_errno, sizeof(exec_errno)) != sizeof(exec_errno))
        exec_errno = 0;
    close(ex[0]);

    /* The state is written while the time limit runs: a hook that neither reads it nor exits
     * is still killed on time. SIGPIPE is ignored only meanwhile, so that the next hook and the
     * container's program do not inherit an ignored SIGPIPE. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
    sigaction(SIGPIPE, &ign, &old_pipe);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    bool timed_out = false;
    size_t off = 0, len = strlen(state);
    if (pidfd < 0) {
        ks_write_all(in[1], state, len);
        close(in[1]);
        in[1] = -1;
    } else {
        fcntl(in[1], F_SETFL, O_NONBLOCK);
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            int wait_ms = -1;
            if (timeout > 0) {
                struct timespec now;
                clock_gettime(CLOCK_MONOTONIC, &now);
                int64_t spent =
                    (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
                wait_ms = spent >= timeout * 1000 ? 0 : (int)(timeout * 1000 - spent);
            }
            struct pollfd pfd[2] = {{.fd = pidfd, .events = POLLIN},
                                    {.fd = in[1], .events = POLLOUT}};
            int n = poll(pfd, in[1] >= 0 ? 2 : 1, wait_ms);
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 0) {
                kill(pid, SIGKILL);
                timed_out = true;
                break;
            }
            if (in[1] >= 0 && (pfd[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
                ssize_t w = write(in[1], state + off, len - off);
                if (w > 0)
                    off += (size_t)w;
                if ((w < 0 && errno != EAGAIN && errno != EINTR) || off == len) {
                    close(in[1]);
                    in[1] = -1;
                }
            }
            if (pfd[0].revents & POLLIN)
                break;
        }
        close(pidfd);
    }
    if (in[1] >= 0)
        close(in[1]);
    sigaction(SIGPIPE, &old_pipe, NULL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (exec_errno)
        return ks_error_set(err, exec_errno, "hooks.%s[%zu]: exec `%s`", kind, idx, path);
    if (timed_out)
        return ks_error_set_plain(err, ETIMEDOUT, "hooks.%s[%zu]: `%s` timed out after %llds", kind,
                                  idx, path, (long long)timeout);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        return ks_error_set_plain(err, EIO, "hooks.%s[%zu]: `%s` exited with status %d", kind, idx,
                                  path, WEXITSTATUS(status));
    if (WIFSIGNALED(status))
        return ks_error_set_plain(err, EIO, "hooks.%s[%zu]: `%s` killed by signal %d", kind, idx,
                                  path, WTERMSIG(status));
    return 0;
}

int ks_hooks_run(json_object *hooks, const char *kind, const char *state_json,
                 struct ks_error **err)
{
    json_object *list = ks_json_get_type(hooks, kind, json_type_array);
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        int r = run_one(json_object_array_get_idx(list, i), kind, i, state_json, err);
        if (r < 0)
            return r;
    }
    return 0;
}
