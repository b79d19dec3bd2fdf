/* The monitor's one loop: signals (the init's exit, probes ending, SIGTERM), the container's
 * output, the attach clients, the restart back-off and the health check timers. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "monitor.h"

static bool stopping(struct monitor *m)
{
    return m->stop_requested || access("stopping", F_OK) == 0;
}

/* `kiste update --restart` of a running container leaves its new policy in the run directory
 * (our working directory); it counts from the next exit on. */
static void policy_update(struct monitor *m)
{
    char buf[64];
    int fd = open("restart-policy", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    struct mon_restart p;
    if (mon_restart_parse(buf, &p, NULL) == 0)
        m->o.restart = p;
}

static void finish(struct monitor *m)
{
    m->status = MON_STATUS_EXITED;
    mon_state_write(m);
}

static void init_exited(struct monitor *m, int status)
{
    int64_t ran = mon_now_mono() - m->started_mono;
    mon_container_exited(m, status);
    policy_update(m);
    if (stopping(m) || !mon_restart_should(&m->o.restart, m->exit_code, m->restart_count)) {
        finish(m);
        return;
    }
    m->restart_count++;
    m->backoff_ms = mon_backoff_next(m->backoff_ms, ran);
    m->status = MON_STATUS_RESTARTING;
    mon_state_write(m);
    /* The stopping marker is watched only while waiting to restart: one inotify instance per
     * running container would use up fs.inotify.max_user_instances (128 by default) for every
     * process of the user with a hundred containers. A marker made before the watch began is
     * seen by the check after it. */
    if (m->inotify_fd < 0) {
        m->inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (m->inotify_fd >= 0)
            inotify_add_watch(m->inotify_fd, ".", IN_CREATE | IN_MOVED_TO);
    }
    if (stopping(m)) {
        finish(m);
        return;
    }
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(m->backoff_ms / 1000),
                                          .tv_nsec = (long)(m->backoff_ms % 1000) * 1000000}};
    if (timerfd_settime(m->restart_timer_fd, 0, &its, NULL) < 0)
        finish(m);
}

static void restart_now(struct monitor *m)
{
    uint64_t ticks;
    if (read(m->restart_timer_fd, &ticks, sizeof(ticks)) < 0 || m->status != MON_STATUS_RESTARTING)
        return;
    if (stopping(m)) {
        finish(m);
        return;
    }
    _cleanup_error_ struct ks_error *err = NULL;
    int code;
    if (mon_container_start(m, &code, &err) < 0) {
        m->exit_code = code;
        snprintf(m->error, sizeof(m->error), "%s", err->msg);
        finish(m);
    }
}

static void on_signals(struct monitor *m)
{
    struct signalfd_siginfo si;
    while (read(m->sig_fd, &si, sizeof(si)) == sizeof(si)) {
        if (si.ssi_signo != SIGTERM)
            continue;
        /* Stopping the monitor stops its container, without a restart. */
        m->stop_requested = true;
        if (m->status == MON_STATUS_RUNNING && m->init_pid > 0)
            kill(m->init_pid, SIGTERM);
        else if (m->status == MON_STATUS_RESTARTING)
            finish(m);
    }
    /* Reaps every child: ours, and the orphans of the container reparented to us. */
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == m->init_pid && m->status == MON_STATUS_RUNNING)
            init_exited(m, status);
        else if (pid == m->health_pid)
            mon_health_exited(m, status);
    }
}

static void on_inotify(struct monitor *m)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t n;
    while ((n = read(m->inotify_fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->len && strcmp(ev->name, "stopping") == 0 && m->status == MON_STATUS_RESTARTING)
                finish(m);
            p += sizeof(*ev) + ev->len;
        }
    }
}

enum {
    P_SIG,
    P_LISTEN,
    P_OUT,
    P_ERR,
    P_IN,
    P_RESTART,
    P_INOTIFY,
    P_HEALTH_TIMER,
    P_HEALTH_OUT,
    P_CLIENTS,
};

int mon_loop(struct monitor *m)
{
    m->restart_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    /* The init may have ended before the loop began. */
    on_signals(m);
    while (m->status != MON_STATUS_EXITED) {
        struct pollfd p[P_CLIENTS + MON_MAX_CLIENTS + MON_DNS_POLL_MAX];
        bool in_pending = m->in_pending_off < m->in_pending_len;
        p[P_SIG] = (struct pollfd){.fd = m->sig_fd, .events = POLLIN};
        p[P_LISTEN] = (struct pollfd){.fd = m->listen_fd, .events = POLLIN};
        p[P_OUT] = (struct pollfd){.fd = m->out_fd, .events = POLLIN};
        p[P_ERR] = (struct pollfd){.fd = m->err_fd, .events = POLLIN};
        p[P_IN] = (struct pollfd){.fd = in_pending ? m->in_fd : -1, .events = POLLOUT};
        p[P_RESTART] = (struct pollfd){.fd = m->restart_timer_fd, .events = POLLIN};
        p[P_INOTIFY] = (struct pollfd){.fd = m->inotify_fd, .events = POLLIN};
        p[P_HEALTH_TIMER] = (struct pollfd){.fd = m->health_timer_fd, .events = POLLIN};
        p[P_HEALTH_OUT] = (struct pollfd){.fd = m->health_out_fd, .events = POLLIN};
        size_t nc = m->n_clients;
        /* While stdin data waits for room, the clients' messages wait in their sockets. */
        for (size_t i = 0; i < nc; i++)
            p[P_CLIENTS + i] =
                (struct pollfd){.fd = in_pending ? -1 : m->clients[i].fd, .events = POLLIN};
        size_t nr = mon_resolver_pollfds(m, p + P_CLIENTS + nc);
        if (poll(p, P_CLIENTS + nc + nr, -1) < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        /* Output first, so that it reaches the log before an exit found in the same round. */
        if (p[P_OUT].revents)
            mon_stdio_read(m, 0);
        if (p[P_ERR].revents)
            mon_stdio_read(m, 1);
        if (p[P_IN].revents)
            mon_stdin_flush(m);
        if (p[P_HEALTH_OUT].revents && m->health_out_fd >= 0)
            mon_health_output(m);
        if (p[P_SIG].revents)
            on_signals(m);
        if (p[P_RESTART].revents)
            restart_now(m);
        if (p[P_INOTIFY].revents)
            on_inotify(m);
        if (p[P_HEALTH_TIMER].revents)
            mon_health_timer(m);
        /* Clients are removed by swapping in the last one: walk from the end. */
        for (size_t i = nc; i-- > 0 && m->in_pending_off == m->in_pending_len;)
            if (i < m->n_clients && p[P_CLIENTS + i].revents &&
                p[P_CLIENTS + i].fd == m->clients[i].fd)
                mon_attach_client_read(m, i);
        if (p[P_LISTEN].revents)
            mon_attach_accept(m);
        mon_resolver_events(m, p + P_CLIENTS + nc, nr);
    }
    mon_health_stop(m);
    mon_attach_exit(m);
    return 0;
}
