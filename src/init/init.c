/* kiste-init: the minimal init that `kiste run --init` puts at /dev/init as the container's
 * process 1. `kiste-init [--] CMD ARGS…` runs CMD as its only direct child, in a process group
 * of its own, forwards every signal it can catch to it, reaps every process that the kernel
 * reparents to it, and exits with the child's status (128+N when signal N killed it).
 *
 * Why a separate init at all: a process 1 gets no default signal actions in its namespace, so
 * a program not written to be an init ignores SIGTERM and SIGINT, and orphans that nobody waits
 * for pile up as zombies. This program is a plain loop over sigwaitinfo(): all signals stay
 * blocked, so none is lost between the fork and the loop, and no handler runs asynchronously.
 * It links statically and allocates nothing, so its private memory stays a few pages. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Signals that describe a fault of this process itself, or that the kernel sends for terminal
 * job control: they keep their default actions rather than being forwarded. */
static const int own_signals[] = {SIGFPE,  SIGILL, SIGSEGV, SIGBUS, SIGABRT,
                                  SIGTRAP, SIGSYS, SIGTTIN, SIGTTOU};

static void die(const char *what, int errnum)
{
    dprintf(STDERR_FILENO, "kiste-init: %s: %s\n", what, strerror(errnum));
    _exit(1);
}

static void usage(void)
{
    dprintf(STDERR_FILENO, "usage: kiste-init [--] COMMAND [ARG...]\n");
    _exit(1);
}

/* In the child: a process group of its own (so a terminal's job control reaches it and not
 * the init) and the foreground of our terminal if there is one, then the original signal mask
 * and dispositions, then the command. */
static void __attribute__((noreturn)) run_child(char **argv, const sigset_t *orig)
{
    if (setpgid(0, 0) < 0)
        die("setpgid", errno);
    if (isatty(STDIN_FILENO)) {
        /* tcsetpgrp from a background group raises SIGTTOU; it is ignored here until the
         * defaults come back below. An error only means the terminal is not ours. */
        signal(SIGTTOU, SIG_IGN);
        (void)tcsetpgrp(STDIN_FILENO, getpgrp());
    }
    signal(SIGTTIN, SIG_DFL);
    signal(SIGTTOU, SIG_DFL);
    sigprocmask(SIG_SETMASK, orig, NULL);
    execvp(argv[0], argv);
    int e = errno;
    dprintf(STDERR_FILENO, "kiste-init: exec %s: %s\n", argv[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
}

/* Reaps every exited process; records the child's status when it is among them. Returns
 * whether the child has exited. */
static bool reap(pid_t child, int *status)
{
    bool child_done = false;
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p <= 0)
            return child_done;
        if (p == child) {
            *status = st;
            child_done = true;
        }
    }
}

int main(int argc, char **argv)
{
    int first = 1;
    if (first < argc && strcmp(argv[first], "--") == 0)
        first++;
    else if (first < argc && argv[first][0] == '-')
        usage();
    if (first >= argc)
        usage();

    /* When kiste-init is not process 1 (a runtime that does not give it a pid namespace),
     * orphans of the command still come to it. */
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    sigset_t all, orig;
    sigfillset(&all);
    for (size_t i = 0; i < sizeof(own_signals) / sizeof(own_signals[0]); i++)
        sigdelset(&all, own_signals[i]);
    if (sigprocmask(SIG_SETMASK, &all, &orig) < 0)
        die("sigprocmask", errno);
    /* Process 1 cannot be stopped by them anyway; elsewhere the init must not be. */
    signal(SIGTTIN, SIG_IGN);
    signal(SIGTTOU, SIG_IGN);

    pid_t child = fork();
    if (child < 0)
        die("fork", errno);
    if (child == 0)
        run_child(argv + first, &orig);

    int status = 0;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0) {
            if (errno == EINTR)
                continue;
            die("sigwaitinfo", errno);
        }
        if (sig == SIGCHLD) {
            if (reap(child, &status))
                break;
            continue;
        }
        /* ESRCH: the child is gone and its SIGCHLD is on the way. */
        (void)kill(child, sig);
    }
    /* Orphans that exited with the child are reaped before process 1 leaves (its exit kills
     * the rest of the namespace anyway). */
    (void)reap(child, &status);

    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
