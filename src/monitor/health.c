/* Health checks: the command runs in the container through `RUNTIME exec` every interval, with
 * a timeout; Docker's rules (policy.c) turn the results into the container's health. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "monitor.h"

static void arm(struct monitor *m, int64_t ns)
{
    struct itimerspec its = {0};
    if (ns > 0) {
        its.it_value.tv_sec = ns / 1000000000;
        its.it_value.tv_nsec = ns % 1000000000;
    }
    timerfd_settime(m->health_timer_fd, 0, &its, NULL);
}

void mon_health_start(struct monitor *m)
{
    if (m->o.health_cmd == NULL)
        return;
    if (m->health_timer_fd < 0) {
        m->health_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (m->health_timer_fd < 0)
            return;
    }
    if (m->health_buf == NULL && (m->health_buf = malloc(MON_HEALTH_OUTPUT_MAX + 1)) == NULL)
        return;
    mon_health_reset(&m->health);
    mon_state_write(m);
    arm(m, m->o.health_interval);
}

/* The probe in flight is abandoned: its runtime exec gets SIGTERM, which it passes on to the
 * command in the container, and is reaped whenever it ends. */
static void abandon_probe(struct monitor *m, int sig)
{
    if (m->health_pid > 0)
        kill(m->health_pid, sig);
    m->health_pid = 0;
    if (m->health_out_fd >= 0)
        close(m->health_out_fd);
    m->health_out_fd = -EBADF;
    free(m->health_cur.output);
    m->health_cur.output = NULL;
}

void mon_health_stop(struct monitor *m)
{
    if (m->health_timer_fd >= 0)
        arm(m, 0);
    abandon_probe(m, SIGKILL);
}

static void start_probe(struct monitor *m)
{
    size_t n = ks_strv_len(m->o.health_cmd);
    _cleanup_free_ const char **argv = calloc(n + 6, sizeof(char *));
    int p[2];
    if (argv == NULL || pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
        arm(m, m->o.health_interval);
        return;
    }
    argv[0] = m->o.runtime;
    argv[1] = "--root";
    argv[2] = m->o.runtime_root;
    argv[3] = "exec";
    argv[4] = m->o.id;
    memcpy(argv + 5, m->o.health_cmd, n * sizeof(char *));
    m->health_cur = (struct mon_health_result){0};
    ks_rfc3339_now(m->health_cur.start, sizeof(m->health_cur.start));
    m->health_len = 0;
    pid_t pid = mon_spawn(m, (char *const *)argv, -1, p[1], p[1], NULL);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        arm(m, m->o.health_interval);
        return;
    }
    m->health_pid = pid;
    m->health_out_fd = p[0];
    arm(m, m->o.health_timeout);
}

static void finish(struct monitor *m, int exit_code, const char *output, size_t len)
{
    struct mon_health_result *r = &m->health_cur;
    ks_rfc3339_now(r->end, sizeof(r->end));
    r->exit_code = exit_code;
    r->output = strndup(output, len);
    bool in_start = mon_now_mono() - m->started_mono < m->o.health_start_period;
    mon_health_record(&m->health, r, in_start, m->o.health_retries);
    mon_state_write(m);
    arm(m, m->o.health_interval);
}

void mon_health_timer(struct monitor *m)
{
    uint64_t ticks;
    if (read(m->health_timer_fd, &ticks, sizeof(ticks)) < 0)
        return;
    if (m->status != MON_STATUS_RUNNING)
        return;
    if (m->health_pid <= 0) {
        start_probe(m);
        return;
    }
    char d[32], msg[96];
    int n = snprintf(msg, sizeof(msg), "Health check exceeded timeout (%s)",
                     mon_format_duration(m->o.health_timeout, d, sizeof(d)));
    struct mon_health_result keep = m->health_cur;
    abandon_probe(m, SIGTERM);
    m->health_cur = keep;
    finish(m, -1, msg, (size_t)n);
}

void mon_health_output(struct monitor *m)
{
    for (;;) {
        char drop[1024];
        size_t room = MON_HEALTH_OUTPUT_MAX - m->health_len;
        char *dst = room ? m->health_buf + m->health_len : drop;
        ssize_t n = read(m->health_out_fd, dst, room ? room : sizeof(drop));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close(m->health_out_fd);
            m->health_out_fd = -EBADF;
            return;
        }
        if (room)
            m->health_len += (size_t)n;
    }
}

void mon_health_exited(struct monitor *m, int status)
{
    if (m->health_out_fd >= 0)
        mon_health_output(m);
    if (m->health_out_fd >= 0) {
        close(m->health_out_fd);
        m->health_out_fd = -EBADF;
    }
    m->health_pid = 0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    finish(m, code, m->health_buf, m->health_len);
}
