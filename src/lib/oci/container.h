/* The container lifecycle of the OCI runtime: create, start, state, kill, delete, exec, pause,
 * resume, update, ps, list. State lives in one directory per container under the runtime's
 * root (default /run/kiste-runtime). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "../base/error.h"

#define KS_RUNTIME_DEFAULT_ROOT "/run/kiste-runtime"

struct ks_create_opts {
    const char *id;
    const char *bundle;
    const char *console_socket; /* path of a unix socket that receives the pty master */
    int console_fd;             /* or an already connected socket; -EBADF for none */
    const char *pid_file;
    bool no_pivot;
    bool no_new_keyring;
    int preserve_fds; /* fds 3 .. 3+n-1 are passed to the container */
};

/* Creates the container; its init waits for ks_container_start(). Returns the init's pid,
 * which is a child of the caller. Nothing is left behind on failure. */
int ks_container_create(const char *root, const struct ks_create_opts *o, pid_t *ret_pid,
                        struct ks_error **err);
int ks_container_start(const char *root, const char *id, struct ks_error **err);
/* The OCI state of the container, new reference. */
int ks_container_state(const char *root, const char *id, json_object **ret, struct ks_error **err);
int ks_container_kill(const char *root, const char *id, int sig, bool all, struct ks_error **err);
int ks_container_delete(const char *root, const char *id, bool force, struct ks_error **err);
int ks_container_pause(const char *root, const char *id, bool pause, struct ks_error **err);
int ks_container_update(const char *root, const char *id, json_object *resources,
                        struct ks_error **err);
/* Pids of every process of the container, malloc'd array owned by the caller. */
int ks_container_pids(const char *root, const char *id, pid_t **ret, size_t *ret_n,
                      struct ks_error **err);
/* The state objects of every container under root, as a JSON array (new reference). */
int ks_container_list(const char *root, json_object **ret, struct ks_error **err);
/* The stats of the container's cgroup (ks_cgroup_stats), new reference. */
int ks_container_stats(const char *root, const char *id, json_object **ret, struct ks_error **err);

struct ks_exec_opts {
    const char *id;
    json_object *process; /* a config.json process object */
    const char *console_socket;
    int console_fd;
    const char *pid_file;
    int preserve_fds;
};

/* Starts a further process in the running container. Returns its pid, a child of the
 * caller. */
int ks_container_exec(const char *root, const struct ks_exec_opts *o, pid_t *ret_pid,
                      struct ks_error **err);

/* Whether id is acceptable as a container id ([A-Za-z0-9_+.-], not "." or ".."). */
bool ks_container_id_valid(const char *id);
