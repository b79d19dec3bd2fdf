/* Shared between the runtime's own files; not part of libkiste's interface. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "../base/error.h"
#include "caps.h"

/* Namespaces in the order they are joined: user first, so that the others can be entered with
 * the capabilities it grants; mount last but one so the /proc paths of the others still
 * resolve; time last. */
enum ks_ns {
    KS_NS_USER,
    KS_NS_PID,
    KS_NS_IPC,
    KS_NS_UTS,
    KS_NS_NET,
    KS_NS_CGROUP,
    KS_NS_MNT,
    KS_NS_TIME,
    KS_NS__COUNT,
};

struct ks_ns_info {
    const char *spec_name; /* config.json's name */
    const char *proc_name; /* /proc/PID/ns/ name */
    int flag;              /* CLONE_NEW* */
};
extern const struct ks_ns_info ks_ns_table[KS_NS__COUNT];

/* Namespace requests of a config: wanted[i] when the namespace is listed; path[i] when it is to
 * be joined rather than created. */
struct ks_ns_config {
    bool wanted[KS_NS__COUNT];
    const char *path[KS_NS__COUNT];
};
int ks_ns_parse(json_object *spec, struct ks_ns_config *ret, struct ks_error **err);
/* Joins every namespace of the config that has a path, except pid (the parent joins it before
 * forking) and the ones in skip_mask (bits by enum ks_ns). */
int ks_ns_join_paths(const struct ks_ns_config *ns, unsigned skip_mask, struct ks_error **err);
/* Writes uid_map, gid_map (and setgroups "deny" when asked) of pid. */
int ks_ns_write_id_maps(pid_t pid, json_object *linux_obj, struct ks_error **err);
int ks_ns_write_time_offsets(json_object *linux_obj, struct ks_error **err);

/* Root file system setup, run inside the new mount namespace by the container's init. */
struct ks_rootfs_opts {
    json_object *spec;
    const char *rootfs; /* absolute path on the host */
    bool no_pivot;
    bool userns;       /* in a new user namespace: devices are bind mounted, not created */
    int console_slave; /* -EBADF or the pty slave to bind over /dev/console */
};
/* Phase 1: propagation, rootfs bind, config mounts, devices. */
int ks_rootfs_prepare(const struct ks_rootfs_opts *o, int *ret_rootfd, struct ks_error **err);
/* Phase 2: pivot_root (or move + chroot), propagation of the new root. */
int ks_rootfs_pivot(const struct ks_rootfs_opts *o, int rootfd, struct ks_error **err);
/* Phase 3, inside the new root: /dev/console, masked and read-only paths, read-only root. */
int ks_rootfs_finish(const struct ks_rootfs_opts *o, struct ks_error **err);

/* Devices: the default set and linux.devices, created under rootfd's /dev. */
int ks_devices_create(int rootfd, json_object *spec, bool bind_instead, struct ks_error **err);
/* The default devices of every container, as a JSON array of linux.devices-style objects plus the
 * cgroup allow rules for them (for the devices cgroup); new references. */
json_object *ks_devices_default_rules(void);

/* Process attributes applied by the container's init or an exec'd process before execve. */
struct ks_process_plan {
    json_object *process;
    json_object *seccomp; /* linux.seccomp or NULL */
    struct ks_caps caps;
    bool nnp;
    /* linux.seccomp built while setup can still report failure, loaded just before execve */
    struct ks_seccomp *filter;
    int seccomp_cache; /* the runtime root, for its cache of compiled filters; -EBADF: none */
    char *exec_path;   /* args[0] resolved with the process's PATH inside the container */
    char **argv, **envp;
};
int ks_process_plan_init(struct ks_process_plan *p, json_object *process, json_object *seccomp,
                         struct ks_error **err);
void ks_process_plan_clear(struct ks_process_plan *p);
/* rlimits, oom_score_adj, scheduler, I/O priority, personality, umask; in the container. */
int ks_process_apply_attrs(struct ks_process_plan *p, json_object *linux_obj,
                           struct ks_error **err);
/* Resolves args[0], checks it is executable; after the root is in place. */
int ks_process_resolve(struct ks_process_plan *p, struct ks_error **err);
/* Bounding set, seccomp (when no_new_privileges is off), groups, uid/gid, capabilities,
 * no_new_privileges, cwd. */
int ks_process_drop_privileges(struct ks_process_plan *p, struct ks_error **err);
/* Seccomp when no_new_privileges is on, then execve. Returns only on failure. */
int ks_process_exec(struct ks_process_plan *p, struct ks_error **err);

/* Hooks: runs each hook of array with state on stdin; a hook that fails or times out is an
 * error naming its kind and path. */
int ks_hooks_run(json_object *hooks, const char *kind, const char *state_json,
                 struct ks_error **err);

/* Terminal: a new pty in the current /dev/pts; the master is sent over sock, the slave becomes
 * the controlling terminal and stdio. Returns the slave fd (still open) or a negative errno. */
int ks_terminal_setup(int sock, json_object *process, struct ks_error **err);
/* Copies between the local terminal and a pty master until the master closes; stdin in raw
 * mode when it is a terminal. Forwards window size changes. */
int ks_terminal_proxy(int master, pid_t child, struct ks_error **err);

/* Writes pid to path (--pid-file), replacing it whole. */
int ks_write_pid_file(const char *path, pid_t pid, struct ks_error **err);

/* Process start time in clock ticks since boot (field 22 of /proc/PID/stat), 0 when gone; a
 * zombie counts as gone. */
unsigned long long ks_proc_start_time(pid_t pid);
