/* `kiste logs` over json-file logs (one JSON object per line: log, stream, time). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "lib/base/error.h"

struct ks_logs_opts {
    bool follow, timestamps;
    long tail;                  /* -1: all */
    int64_t since_ns, until_ns; /* 0: not set; nanoseconds since the epoch */
    bool tty;                   /* the container had a terminal: all output to stdout */
};

/* Prints the log of a container (log_path plus rotated log_path.1 … oldest first) to stdout
 * and stderr by stream. With follow, keeps printing until still_running(userdata) returns false
 * and the file is drained (inotify; follows a rotation to the new file). */
int ks_cli_logs(const char *log_path, const struct ks_logs_opts *o,
                bool (*still_running)(void *userdata), void *userdata, struct ks_error **err);

/* Docker's --since/--until values: RFC 3339 (with or without fractional seconds or zone),
 * unix seconds with optional fraction, or a duration relative to now ("10m", "1h30m", "2s"). */
int ks_cli_parse_time_arg(const char *s, int64_t now_ns, int64_t *ret_ns, struct ks_error **err);
