/* kiste's container commands: each takes the arguments after the global options, with argv[0]
 * the command's name, and returns the exit status (Docker's: 125 for kiste's own errors before
 * a container runs, 126/127 when its command cannot run or is not found, else the
 * container's). */
#pragma once

#include <json-c/json.h>

#include "format.h"
#include "lib/engine/container.h"

int ks_cli_create(int argc, char **argv);
int ks_cli_run(int argc, char **argv);
int ks_cli_start(int argc, char **argv);
int ks_cli_stop(int argc, char **argv);
int ks_cli_restart(int argc, char **argv);
int ks_cli_kill(int argc, char **argv);
int ks_cli_rm(int argc, char **argv);
int ks_cli_wait(int argc, char **argv);
int ks_cli_pause(int argc, char **argv);
int ks_cli_unpause(int argc, char **argv);
int ks_cli_rename(int argc, char **argv);
int ks_cli_ps(int argc, char **argv);
int ks_cli_inspect(int argc, char **argv);
int ks_cli_container_logs(int argc, char **argv);
int ks_cli_exec(int argc, char **argv);
int ks_cli_attach(int argc, char **argv);
int ks_cli_top(int argc, char **argv);
int ks_cli_port(int argc, char **argv);
int ks_cli_container(int argc, char **argv);
int ks_cli_stats(int argc, char **argv);
int ks_cli_update(int argc, char **argv);
int ks_cli_diff(int argc, char **argv);
int ks_cli_export(int argc, char **argv);
int ks_cli_cp(int argc, char **argv);
int ks_cli_commit(int argc, char **argv);

/* --- shared by the container commands (container_util.c) --- */

/* Opens the engine with KISTE_ROOT and KISTE_RUNROOT. */
int ks_cli_engine_open(struct ks_engine **ret, struct ks_error **err);
/* Opens the engine into *e and looks up the container name (an id, its prefix or a name) into
 * *c and, when config is not NULL, its config into *config; all owned by the caller. */
int ks_cli_open_container(const char *name, struct ks_engine **e, struct ks_db_container **c,
                          json_object **config, struct ks_error **err);
/* 0 when have (the positional arguments) is within min..max (max < 0: no limit); else prints
 * Docker's usage error ("requires exactly N" when min == max, else "requires at least N"; with
 * see, the "See 'kiste CMD --help'." line after it) and returns 1. */
int ks_cli_nargs(const char *cmd, int have, int min, int max, bool see);
/* What ks_cli_for_each does to one container: its full id. Returns 0 or a negative errno. */
typedef int (*ks_cli_each_fn)(struct ks_engine *e, const char *id, void *userdata,
                              struct ks_error **err);
/* Opens the engine and runs fn on each container named in argv[first..argc), printing the name
 * as given on success when print (Docker's output of stop, kill, rm, pause, unpause, start,
 * restart) and "Error: …" for each failure. Returns 0, or 1 when any failed. */
int ks_cli_for_each(int argc, char **argv, int first, ks_cli_each_fn fn, void *userdata,
                    bool print);
/* The container's exit status for a failed start: 127, 126 or 125 from the error's errno. */
int ks_cli_start_status(const struct ks_error *e);

/* --- create/run flags (container_opts.c) --- */

struct ks_run_opts {
    bool detach, interactive, tty, rm, sig_proxy, sig_proxy_set;
    const char *name, *detach_keys, *pull, *platform;
    json_object *config; /* {"Config": …, "HostConfig": …}, owned */
    const char *image;
    char **args; /* the command after the image, borrowed from argv */
};
/* Parses create/run's flags and positional arguments into o. Returns 0, or the exit status
 * (125) after printing the error. */
int ks_cli_parse_run_opts(const char *cmd, int argc, char **argv, struct ks_run_opts *o);
void ks_run_opts_free(struct ks_run_opts *o);
/* Adds "KEY=value" (or "KEY", taking our own environment's value, dropped when unset) to the
 * "Env" array of c, as -e does; with path, every line of that --env-file instead (comments and
 * blank lines skipped). Returns 0, or 125 after printing the error. */
int ks_cli_add_env(const char *cmd, json_object *c, const char *kv, const char *path);
