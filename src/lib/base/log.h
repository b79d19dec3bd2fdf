/* Logging with a pluggable sink. The front door (kiste, kiste-runtime) installs the sink once at
 * start; library code only calls ks_log(). This is the one process-wide setting of the library. */
#pragma once

enum ks_log_level {
    KS_LOG_ERROR,
    KS_LOG_WARNING,
    KS_LOG_INFO,
    KS_LOG_DEBUG,
};

typedef void (*ks_log_sink_fn)(enum ks_log_level level, const char *msg, void *userdata);

void ks_log_set_sink(ks_log_sink_fn fn, void *userdata);
void ks_log_set_level(enum ks_log_level max);
enum ks_log_level ks_log_get_level(void);
const char *ks_log_level_name(enum ks_log_level level);

void ks_log(enum ks_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ks_warn(...)  ks_log(KS_LOG_WARNING, __VA_ARGS__)
#define ks_info(...)  ks_log(KS_LOG_INFO, __VA_ARGS__)
#define ks_debug(...) ks_log(KS_LOG_DEBUG, __VA_ARGS__)

/* Ready-made sinks. The stderr sink writes "kiste: level: msg"; the file sinks write to the fd
 * given as userdata (an int cast to a pointer), in runc's text or JSON form. */
void ks_log_sink_stderr(enum ks_log_level level, const char *msg, void *userdata);
void ks_log_sink_text_fd(enum ks_log_level level, const char *msg, void *userdata);
void ks_log_sink_json_fd(enum ks_log_level level, const char *msg, void *userdata);
