#include "signal.h"

#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"

static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},
    {"FPE", SIGFPE},       {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
    {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},   {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},
    {"SYS", SIGSYS},
};

/* A decimal number without sign or junk, at most max. */
static int parse_number(const char *s, int max)
{
    if (*s < '0' || *s > '9')
        return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return *end == '\0' && v <= max ? (int)v : -1;
}

int ks_signal_parse(const char *s, int *ret_sig)
{
    if (s == NULL || *s == '\0')
        return -EINVAL;
    int n = parse_number(s, NSIG - 1);
    if (n >= 0 || (*s >= '0' && *s <= '9')) {
        if (n <= 0)
            return -EINVAL;
        *ret_sig = n;
        return 0;
    }
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < KS_ELEMENTSOF(signals); i++)
        if (strcasecmp(s, signals[i].name) == 0) {
            *ret_sig = signals[i].sig;
            return 0;
        }
    bool min = strncasecmp(s, "RTMIN", 5) == 0;
    if (!min && strncasecmp(s, "RTMAX", 5) != 0)
        return -EINVAL;
    int sig = min ? SIGRTMIN : SIGRTMAX;
    if (s[5] != '\0') {
        int off = s[5] == (min ? '+' : '-') ? parse_number(s + 6, SIGRTMAX - SIGRTMIN) : -1;
        if (off < 0)
            return -EINVAL;
        sig += min ? off : -off;
    }
    *ret_sig = sig;
    return 0;
}
