/* Crash repair: what a container's monitor leaves behind when it is killed (kill -9, the OOM
 * killer) or when a start is interrupted, cleaned up by the next command that looks at the
 * container, so that a kill at any moment leaves a state the engine can read and act on. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/fs.h"
#include "../base/json.h"
#include "../base/log.h"
#include "../image/snapshot.h"
#include "../image/store.h"
#include "../net/net.h"
#include "../oci/container.h"
#include "../volume/volume.h"
#include "container.h"

/* How long a command waits for a monitor still at work on the container: 5 s. */
#define SETTLE_ROUNDS  250
#define SETTLE_POLL_MS 20

pid_t ks_engine_monitor_pid_file(const char *run)
{
    _cleanup_free_ char *path = NULL, *text = NULL;
    if (asprintf(&path, "%s/monitor.pid", run) < 0 || ks_read_file(path, &text, NULL, NULL) < 0)
        return 0;
    long v = strtol(text, NULL, 10);
    return v > 0 && v < INT32_MAX ? (pid_t)v : 0;
}

int ks_engine_state_settled(struct ks_engine *e, const char *id, struct ks_container_state *ret,
                            struct ks_error **err)
{
    _cleanup_free_ char *run = ks_container_run_dir(e, id);
    if (run == NULL)
        return ks_error_set(err, ENOMEM, "container state");
    for (int i = 0;; i++) {
        int r = ks_engine_state_get(e, id, ret, err);
        if (r < 0)
            return r;
        if (ks_engine_status_active(ret->status) || i >= SETTLE_ROUNDS ||
            !(ks_engine_monitor_alive(ret->monitor_pid) ||
              ks_engine_monitor_alive(ks_engine_monitor_pid_file(run))))
            return 0;
        ks_engine_state_clear(ret);
        struct timespec ts = {0, SETTLE_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Kills the container's processes and removes its runtime state; none is fine. */
static void runtime_cleanup(struct ks_engine *e, const char *id)
{
    _cleanup_json_ json_object *rs = NULL;
    if (ks_container_state(e->runtime_root, id, &rs, NULL) >= 0) {
        /* A frozen task acts on SIGKILL only once thawed. */
        const char *status = ks_json_str(rs, "status");
        if (status && strcmp(status, "paused") == 0)
            ks_container_pause(e->runtime_root, id, false, NULL);
    }
    /* Also when there is no state to load: delete --force removes a half-written record. */
    struct ks_error *e2 = NULL;
    if (ks_container_delete(e->runtime_root, id, true, &e2) < 0 && e2 && e2->errnum != ENOENT)
        ks_debug("repair %s: runtime delete: %s", id, e2->msg);
    ks_error_free(e2);
}

static int unmount_rootfs(struct ks_engine *e, const char *id, struct ks_error **err)
{
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    int r = ks_db_container_get(ks_store_db(e->store), id, &c, err);
    if (r < 0)
        return r;
    if (c->snapshot == NULL)
        return 0;
    _cleanup_free_ char *overlay = NULL;
    if (asprintf(&overlay, "%s/overlay", e->root) < 0)
        return ks_error_set(err, ENOMEM, "repair");
    return ks_snapshot_container_unmount(overlay, c->snapshot, err);
}

/* state.json as the monitor would have written it on the container's exit. The dead monitor
 * cannot write it any more, and the caller's lock keeps a new one from starting meanwhile. */
static int record_exited(struct ks_engine *e, const char *id, const struct ks_container_state *st,
                         struct ks_error **err)
{
    _cleanup_free_ char *dir = ks_container_dir(e, id);
    if (dir == NULL)
        return ks_error_set(err, ENOMEM, "repair");
    char now[48];
    ks_rfc3339_now(now, sizeof(now));
    _cleanup_json_ json_object *o = json_object_new_object();
    json_object_object_add(o, "Status", json_object_new_string("exited"));
    json_object_object_add(o, "Pid", json_object_new_int(0));
    json_object_object_add(o, "MonitorPid", json_object_new_int(0));
    json_object_object_add(o, "ExitCode", json_object_new_int(st->exit_code));
    json_object_object_add(o, "StartedAt", json_object_new_string(st->started_at));
    json_object_object_add(o, "FinishedAt", json_object_new_string(now));
    json_object_object_add(o, "RestartCount", json_object_new_int64(st->restart_count));
    json_object_object_add(o, "OOMKilled", json_object_new_boolean(st->oom_killed));
    json_object_object_add(o, "Error", json_object_new_string("monitor died"));
    json_object_object_add(o, "Health", st->health ? json_object_get(st->health) : NULL);
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "open `%s`", dir);
    const char *text = ks_json_plain(o);
    return ks_write_file_replace(dfd, "state.json", text, strlen(text), 0644, err);
}

int ks_engine_repair(struct ks_engine *e, const char *id, const struct ks_container_state *st,
                     struct ks_error **err)
{
    runtime_cleanup(e, id);
    if (!st->monitor_died)
        return 0;
    int r = unmount_rootfs(e, id, err);
    if (r < 0)
        return ks_error_wrap(err, "repair container %s", id);
    r = record_exited(e, id, st, err);
    if (r < 0)
        return ks_error_wrap(err, "repair container %s", id);
    ks_engine_volumes_release(e, id);
    r = ks_net_release_locked(e, id, err);
    if (r < 0)
        return ks_error_wrap(err, "repair container %s", id);
    return 0;
}
