/* state.json: the container's run-time state as the engine reads it (the containers contract),
 * replaced atomically at every transition so a reader never sees half of it. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "monitor.h"

static const char *status_name(enum mon_status s)
{
    static const char *const names[] = {
        [MON_STATUS_CREATED] = "exited",
        [MON_STATUS_RUNNING] = "running",
        [MON_STATUS_RESTARTING] = "restarting",
        [MON_STATUS_EXITED] = "exited",
    };
    return names[s];
}

static void put_health(struct mon_buf *b, const struct mon_health *h)
{
    mon_buf_printf(b, "{\"Status\":\"%s\",\"FailingStreak\":%u,\"Log\":[",
                   mon_health_status_name(h->status), h->failing_streak);
    for (size_t i = 0; i < h->n_log; i++) {
        const struct mon_health_result *r = &h->log[i];
        const char *out = r->output ? r->output : "";
        mon_buf_printf(b, "%s{\"Start\":\"%s\",\"End\":\"%s\",\"ExitCode\":%d,\"Output\":",
                       i ? "," : "", r->start, r->end, r->exit_code);
        mon_buf_json_str(b, out, strlen(out));
        mon_buf_puts(b, "}");
    }
    mon_buf_puts(b, "]}");
}

void mon_state_write(struct monitor *m)
{
    struct mon_buf b = {0};
    mon_buf_printf(&b,
                   "{\"Status\":\"%s\",\"Pid\":%d,\"MonitorPid\":%d,\"ExitCode\":%d,"
                   "\"StartedAt\":\"%s\",\"FinishedAt\":\"%s\",\"RestartCount\":%u,"
                   "\"OOMKilled\":%s,\"Error\":",
                   status_name(m->status), m->status == MON_STATUS_RUNNING ? (int)m->init_pid : 0,
                   (int)getpid(), m->exit_code, m->started_at, m->finished_at, m->restart_count,
                   m->oom_killed ? "true" : "false");
    mon_buf_json_str(&b, m->error, strlen(m->error));
    mon_buf_puts(&b, ",\"Health\":");
    if (m->o.health_cmd)
        put_health(&b, &m->health);
    else
        mon_buf_puts(&b, "null");
    mon_buf_puts(&b, "}\n");
    /* A failed write leaves the previous state, which the engine still reads correctly
     * enough: there is no one to tell from here. */
    if (!b.oom && m->state_dir_fd >= 0)
        ks_write_file_replace(m->state_dir_fd, "state.json", b.data, b.len, 0644, NULL);
    mon_buf_free(&b);
}
