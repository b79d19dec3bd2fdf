#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "clock.h"

static struct {
    ks_log_sink_fn fn;
    void *userdata;
    enum ks_log_level max;
} sink = {ks_log_sink_stderr, NULL, KS_LOG_WARNING};

static const char *const level_names[] = {
    [KS_LOG_ERROR] = "error",
    [KS_LOG_WARNING] = "warning",
    [KS_LOG_INFO] = "info",
    [KS_LOG_DEBUG] = "debug",
};

const char *ks_log_level_name(enum ks_log_level level)
{
    return level <= KS_LOG_DEBUG ? level_names[level] : "unknown";
}

void ks_log_set_sink(ks_log_sink_fn fn, void *userdata)
{
    sink.fn = fn;
    sink.userdata = userdata;
}

void ks_log_set_level(enum ks_log_level max)
{
    sink.max = max;
}

enum ks_log_level ks_log_get_level(void)
{
    return sink.max;
}

void ks_log(enum ks_log_level level, const char *fmt, ...)
{
    if (level > sink.max || sink.fn == NULL)
        return;
    int saved = errno;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sink.fn(level, buf, sink.userdata);
    errno = saved;
}

void ks_log_sink_stderr(enum ks_log_level level, const char *msg, void *userdata)
{
    const char *prog = userdata ? userdata : "kiste";
    dprintf(STDERR_FILENO, "%s: %s: %s\n", prog, ks_log_level_name(level), msg);
}

void ks_log_sink_text_fd(enum ks_log_level level, const char *msg, void *userdata)
{
    char ts[64];
    ks_rfc3339_now(ts, sizeof(ts));
    dprintf((int)(intptr_t)userdata, "time=\"%s\" level=%s msg=\"%s\"\n", ts,
            ks_log_level_name(level), msg);
}

void ks_log_sink_json_fd(enum ks_log_level level, const char *msg, void *userdata)
{
    char ts[64];
    ks_rfc3339_now(ts, sizeof(ts));
    json_object *o = json_object_new_object();
    json_object_object_add(o, "level", json_object_new_string(ks_log_level_name(level)));
    json_object_object_add(o, "msg", json_object_new_string(msg));
    json_object_object_add(o, "time", json_object_new_string(ts));
    dprintf(
        (int)(intptr_t)userdata, "%s\n",
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}
