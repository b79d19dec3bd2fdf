/* kiste-monitor: the parent of one container's init (the containers contract). It creates and
 * starts the container through the OCI runtime, keeps its stdio (pipes or a pty master), writes
 * the json-file log, serves the attach socket, records the exit status in state.json, applies
 * the restart policy and runs health checks, all from one poll loop without threads.
 *
 * The pure pieces (JSON output, log line splitting and rotation, restart and health decisions)
 * are separate files so the unit tests link them without the rest. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/base/clock.h"
#include "lib/base/error.h"

/* --- JSON output (jsonw.c) --- */

/* A growing string; on allocation failure it stops growing and sets oom. */
struct mon_buf {
    char *data;
    size_t len, cap;
    bool oom;
};
void mon_buf_putn(struct mon_buf *b, const char *s, size_t n);
void mon_buf_puts(struct mon_buf *b, const char *s);
void mon_buf_printf(struct mon_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s (n bytes, any content) as a quoted JSON string. */
void mon_buf_json_str(struct mon_buf *b, const char *s, size_t n);
void mon_buf_free(struct mon_buf *b);

/* The worst-case growth of mon_json_escape: every input byte may become "\u00XX" or "\ufffd". */
#define MON_JSON_ESCAPE_MAX(n) ((n)*6)
/* Writes the JSON string content of in (n bytes, without quotes) to out, which has room for
 * MON_JSON_ESCAPE_MAX(n) bytes; returns the length written. As Go's encoder (and so Docker's
 * json-file): ", \ and control characters escaped, <, >, & and U+2028/U+2029 as \uXXXX, each
 * byte of invalid UTF-8 as \ufffd. */
size_t mon_json_escape(char *out, const char *in, size_t n);

/* Parses a JSON array of strings (at most 4096 members, the text at most 64 KiB) into a
 * NULL-terminated vector owned by the caller. */
int mon_json_parse_strv(const char *text, char ***ret, struct ks_error **err);

/* --- log lines (logsplit.c) and the json-file log (logfile.c) --- */

/* Docker's line limit: a longer line is logged as 16 KiB partial records. */
#define MON_LINE_MAX 16384

/* Called for each record: line holds len bytes, ending in '\n' unless partial. */
typedef void (*mon_line_fn)(const char *line, size_t len, bool partial, void *userdata);

struct mon_splitter {
    size_t len;
    char buf[MON_LINE_MAX];
};
/* Splits a stream's bytes as Docker's log copier does: at each '\n', and when 16 KiB have
 * gathered without one. The rest waits in the splitter for more data. */
void mon_split_feed(struct mon_splitter *s, const char *data, size_t n, mon_line_fn fn,
                    void *userdata);
/* At the end of a stream: what is left goes out as a partial record. */
void mon_split_flush(struct mon_splitter *s, mon_line_fn fn, void *userdata);

struct mon_logfile {
    int fd;
    char *path;
    uint64_t size;
    uint64_t max_size; /* 0: no rotation */
    unsigned max_files;
    char *rec; /* the record being formatted, MON_LOG_RECORD_MAX bytes */
};
/* Room for one record of a MON_LINE_MAX line escaped, plus the keys, stream and time. */
#define MON_LOG_RECORD_MAX (MON_JSON_ESCAPE_MAX(MON_LINE_MAX) + 128)

/* Opens (appends to) path. l->path and l->rec are owned by l (mon_logfile_close). */
int mon_logfile_open(struct mon_logfile *l, const char *path, uint64_t max_size, unsigned max_files,
                     struct ks_error **err);
/* Writes one record {"log":…,"stream":…,"time":…}, rotating first when the file would grow
 * beyond max_size: path → path.1 → path.2 …, keeping max_files files in all (with one file the
 * file is emptied instead). */
int mon_logfile_write(struct mon_logfile *l, const char *stream, const char *line, size_t len,
                      const char *time, struct ks_error **err);
void mon_logfile_close(struct mon_logfile *l);

/* --- restart policy, back-off and health decisions (policy.c) --- */

enum mon_restart_kind {
    MON_RESTART_NO,
    MON_RESTART_ALWAYS,
    MON_RESTART_UNLESS_STOPPED,
    MON_RESTART_ON_FAILURE,
};

struct mon_restart {
    enum mon_restart_kind kind;
    unsigned max; /* on-failure:N; 0: no limit */
};

/* "no", "always", "unless-stopped", "on-failure" or "on-failure:N". */
int mon_restart_parse(const char *s, struct mon_restart *ret, struct ks_error **err);
/* Docker's decision after an exit that was not asked for (no stopping marker):
 * restart_count is the number of restarts made so far. */
bool mon_restart_should(const struct mon_restart *p, int exit_code, unsigned restart_count);

#define MON_BACKOFF_FIRST_MS 100u
#define MON_BACKOFF_MAX_MS   60000u
#define MON_BACKOFF_RESET_NS (10 * 1000000000LL)
/* Docker's back-off before the next restart: 100 ms, doubling from the previous delay
 * prev_ms, capped at one minute, and back to 100 ms when the container ran for at least 10 s
 * (ran_ns). */
uint64_t mon_backoff_next(uint64_t prev_ms, int64_t ran_ns);

enum mon_health_status {
    MON_HEALTH_STARTING,
    MON_HEALTH_HEALTHY,
    MON_HEALTH_UNHEALTHY,
};
const char *mon_health_status_name(enum mon_health_status s);

#define MON_HEALTH_LOG_MAX    5    /* Docker keeps the last five results */
#define MON_HEALTH_OUTPUT_MAX 4096 /* and at most 4 KiB of each probe's output */

struct mon_health_result {
    char start[KS_RFC3339_LEN], end[KS_RFC3339_LEN];
    int exit_code; /* -1: timed out */
    char *output;  /* owned */
};

struct mon_health {
    enum mon_health_status status;
    unsigned failing_streak;
    size_t n_log;
    struct mon_health_result log[MON_HEALTH_LOG_MAX]; /* oldest first */
};

/* Back to "starting" with no failures, as at each start of the container; the log stays. */
void mon_health_reset(struct mon_health *h);
/* Records a probe's result as Docker does: success makes the container healthy; a failure
 * counts towards retries unless the container has never been healthy and is still within its
 * start period (in_start_period); retries failures in a row make it unhealthy. r->output is
 * taken over. */
void mon_health_record(struct mon_health *h, struct mon_health_result *r, bool in_start_period,
                       unsigned retries);
void mon_health_clear(struct mon_health *h);

/* A duration as Go prints it ("30s", "1.5s", "500ms", "1m30s"), for Docker's timeout message;
 * returns buf. */
const char *mon_format_duration(int64_t ns, char *buf, size_t len);

/* --- OOM kills (oom.c) --- */

/* From the text of /proc/PID/cgroup and /proc/self/mountinfo: the path of the cgroup's v2
 * memory.events (ret_v2) and of its v1 memory.oom_control (ret_v1), "" where that hierarchy is
 * not mounted or the process is not in it. Whether the file exists is for the caller to see. */
void mon_oom_files(const char *proc_cgroup, const char *mountinfo, char *ret_v2, char *ret_v1,
                   size_t len);
/* Whether memory.events or memory.oom_control text counts an OOM kill ("oom_kill N", N > 0). */
bool mon_oom_count_parse(const char *text);

/* --- the program --- */

#define MON_PAYLOAD_MAX (32 * 1024) /* attach protocol: payload of one message */
#define MON_MAX_CLIENTS 32

/* Attach message kinds (the containers contract). */
enum {
    MON_MSG_STDOUT = 1,
    MON_MSG_STDERR = 2,
    MON_MSG_EXIT = 3,
};
enum {
    MON_MSG_STDIN = 0,
    MON_MSG_STDIN_CLOSE = 1,
    MON_MSG_RESIZE = 2,
    /* The client removes the container after its exit (a foreground run --rm): when it is still
     * attached at the exit, the monitor does not run its cleanup command. */
    MON_MSG_TAKEOVER = 3,
};

/* Limits of the embedded DNS resolver (resolver.c). */
#define MON_DNS_UPSTREAMS_MAX 4
#define MON_DNS_PENDING       64 /* forwarded queries waiting for an answer */
#define MON_DNS_TCP           8  /* TCP connections at a time */
#define MON_DNS_POLL_MAX      (5 + MON_DNS_TCP)

struct mon_opts {
    const char *id, *runtime, *runtime_root, *bundle, *state_dir, *run_dir;
    const char *log_path; /* NULL: log driver none */
    uint64_t log_max_size;
    unsigned log_max_files;
    bool terminal, stdin_open, stdin_once;
    int attach_fd, sync_fd;
    struct mon_restart restart;
    const char *rootfs_mount;
    char **health_cmd; /* the command run in the container; NULL: no health check */
    int64_t health_interval, health_timeout, health_start_period; /* ns */
    unsigned health_retries;
    char **cleanup_argv;  /* borrowed from argv; NULL: none */
    bool cleanup_deletes; /* the cleanup command deletes the runtime's state (kiste rm) */
    /* the embedded DNS resolver (resolver.c): enabled by dns_netns */
    const char *dns_netns, *dns_networks;
    const char *dns_upstreams[MON_DNS_UPSTREAMS_MAX];
    unsigned n_dns_upstreams;
};

enum mon_status {
    MON_STATUS_CREATED, /* before the first start */
    MON_STATUS_RUNNING,
    MON_STATUS_RESTARTING,
    MON_STATUS_EXITED,
};

struct mon_client {
    int fd;
    bool stdin_client; /* sent stdin (or is the caller's --attach-fd): --stdin-once applies */
    bool takeover;     /* sent MON_MSG_TAKEOVER */
};

struct monitor {
    struct mon_opts o;
    int devnull, state_dir_fd;
    bool in_run_dir; /* the working directory is the run directory: its files can go */
    char pid_file[4096];

    /* the container */
    enum mon_status status;
    pid_t init_pid;
    int exit_code;
    bool oom_killed;
    int oom_fd; /* memory.events (v2) or memory.oom_control (v1) of the init's cgroup */
    char started_at[KS_RFC3339_LEN], finished_at[KS_RFC3339_LEN];
    int64_t started_mono;
    unsigned restart_count;
    uint64_t backoff_ms;
    char error[1024];
    bool stop_requested; /* the stopping marker was seen, or SIGTERM */

    /* its stdio: read ends of stdout and stderr, or the pty master as out_fd */
    int out_fd, err_fd;
    int in_fd; /* write end of stdin (a dup of the master with a terminal), -EBADF: none */
    struct mon_splitter split[2];
    size_t in_pending_off, in_pending_len; /* stdin data waiting for room in the pipe */
    bool in_close_pending;                 /* close stdin once in_pending is written */
    char *in_pending;

    /* attach */
    int listen_fd;
    size_t n_clients;
    struct mon_client clients[MON_MAX_CLIENTS];
    bool cleanup_taken; /* a takeover client got the exit message: no cleanup command */

    struct mon_logfile log; /* fd < 0: no log */

    int sig_fd, restart_timer_fd, inotify_fd;

    /* health checks */
    struct mon_health health;
    int health_timer_fd, health_out_fd;
    pid_t health_pid; /* the probe running now, 0: none */
    size_t health_len;
    char *health_buf; /* MON_HEALTH_OUTPUT_MAX + 1 bytes */
    struct mon_health_result health_cur;

    struct mon_resolver *resolver; /* NULL: none */
};

/* main.c */
int64_t mon_now_mono(void);

/* state.c: writes state.json (atomically: temporary file and rename) */
void mon_state_write(struct monitor *m);

/* container.c */
pid_t mon_spawn(struct monitor *m, char *const argv[], int in, int out, int errfd,
                struct ks_error **err);
/* Creates the container's stdio, runs runtime create and start. On failure *ret_code is
 * Docker's exit status for the error (127, 126 or 125) and *err holds the message. */
int mon_container_start(struct monitor *m, int *ret_code, struct ks_error **err);
/* After the init's exit (status from waitpid): drains stdio, records the exit, deletes the
 * container from the runtime. */
void mon_container_exited(struct monitor *m, int status);
void mon_runtime_delete(struct monitor *m);
/* Reads what the container's stdout/stderr hold now; with eof_wait, until end of file. */
void mon_stdio_drain(struct monitor *m);
void mon_stdio_close(struct monitor *m);
/* Reads one chunk from fd (stream 0: stdout, 1: stderr) to the clients and the log. */
void mon_stdio_read(struct monitor *m, int stream);
/* Unmounts the root file system and removes the run directory's files the monitor made. */
void mon_final_cleanup(struct monitor *m);

/* attach.c */
int mon_attach_listen(struct monitor *m, struct ks_error **err);
void mon_attach_add(struct monitor *m, int fd);
void mon_attach_accept(struct monitor *m);
/* Handles one message from client i; false when the client went away (and was removed). */
bool mon_attach_client_read(struct monitor *m, size_t i);
void mon_attach_broadcast(struct monitor *m, int kind, const char *data, size_t len);
void mon_attach_exit(struct monitor *m);
void mon_stdin_flush(struct monitor *m);
void mon_stdin_close(struct monitor *m);

/* health.c */
void mon_health_start(struct monitor *m);
void mon_health_stop(struct monitor *m);
void mon_health_timer(struct monitor *m);
void mon_health_output(struct monitor *m);
void mon_health_exited(struct monitor *m, int status);

/* resolver.c: the embedded DNS resolver on 127.0.0.11:53 in the container's network
 * namespace (--dns-netns), answering the names of RUN_DIR/networks' networks from
 * DNS_NETWORKS/ID/hosts and forwarding other queries to the --dns-upstream servers. */
struct mon_resolver;
struct pollfd;
int mon_resolver_open(struct monitor *m, struct ks_error **err);
void mon_resolver_close(struct monitor *m);
/* Fills p with the resolver's descriptors (MON_DNS_POLL_MAX at most); returns how many. */
size_t mon_resolver_pollfds(struct monitor *m, struct pollfd *p);
/* Handles the events poll found in the n entries mon_resolver_pollfds filled. */
void mon_resolver_events(struct monitor *m, const struct pollfd *p, size_t n);

/* loop.c */
int mon_loop(struct monitor *m);
