/* kiste-runtime: the command line of the OCI runtime. */
#pragma once

#include <stdbool.h>

struct rt_globals {
    const char *root;
    bool debug;
    bool systemd_cgroup;
};

typedef int (*rt_command_fn)(const struct rt_globals *g, int argc, char **argv);

int rt_create(const struct rt_globals *g, int argc, char **argv);
int rt_start(const struct rt_globals *g, int argc, char **argv);
int rt_state(const struct rt_globals *g, int argc, char **argv);
int rt_kill(const struct rt_globals *g, int argc, char **argv);
int rt_delete(const struct rt_globals *g, int argc, char **argv);
int rt_run(const struct rt_globals *g, int argc, char **argv);
int rt_exec(const struct rt_globals *g, int argc, char **argv);
int rt_ps(const struct rt_globals *g, int argc, char **argv);
int rt_list(const struct rt_globals *g, int argc, char **argv);
int rt_pause(const struct rt_globals *g, int argc, char **argv);
int rt_resume(const struct rt_globals *g, int argc, char **argv);
int rt_update(const struct rt_globals *g, int argc, char **argv);
int rt_spec(const struct rt_globals *g, int argc, char **argv);
int rt_features(const struct rt_globals *g, int argc, char **argv);
int rt_events(const struct rt_globals *g, int argc, char **argv);

struct ks_create_opts;
/* create's flags (and, with detach and keep not NULL, run's --detach and --keep); the id is the
 * one argument left. Returns 0, or non-zero after reporting the problem. */
int rt_parse_create_opts(int argc, char **argv, struct ks_create_opts *o, bool *detach, bool *keep);

/* Prints "kiste-runtime: msg" to stderr (and the log) and returns 1. */
int rt_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses a signal by name ("KILL", "SIGKILL") or number; -1 when unknown. */
int rt_parse_signal(const char *s);
/* Waits for pid (a child) while forwarding signals to it; returns its exit status in shell
 * form (128+signal when killed). With master >= 0, proxies the terminal meanwhile. */
int rt_wait_forward(int pid, int master);
