/* Containers: records in the state database, a root file system snapshot on the image's top
 * layer, an OCI config.json generated at each start, and one kiste-monitor process per started
 * container (the containers contract: the monitor keeps state.json, the logs and the attach
 * socket; the engine reads them).
 *
 * A container's config is Docker's pair {"Config": …, "HostConfig": …} as JSON: what the
 * command line parsed, merged with the image config at create time (as Docker stores it), and
 * shown by inspect as it is. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "../base/error.h"
#include "../base/signal.h"
#include "db.h"

struct ks_store;

#define KS_ENGINE_DEFAULT_RUNROOT "/run/kiste"

struct ks_engine {
    struct ks_store *store;
    char *root;         /* storage root R */
    char *runroot;      /* run root U */
    char *runtime_root; /* U/runtime, the --root of kiste-runtime */
};

/* Opens the store under root and prepares runroot (NULL: the defaults). *ret is owned by the
 * caller (ks_engine_free). */
int ks_engine_open(const char *root, const char *runroot, struct ks_engine **ret,
                   struct ks_error **err);
void ks_engine_free(struct ks_engine *e);
KS_DEFINE_CLEANUP(struct ks_engine *, ks_engine_free)
#define _cleanup_engine_ _cleanup_(ks_engine_free_p)

/* Finds a helper binary ("kiste-monitor", "kiste-runtime", "kiste-init"): the environment
 * variable env (may be NULL), else next to /proc/self/exe, else in sibling build directories
 * (../monitor, ../runtime, ../init), else $PATH. *ret is owned by the caller. */
int ks_engine_find_binary(const char *name, const char *env, char **ret, struct ks_error **err);

/* --- names (names.c) --- */

/* A Docker-style random name "adjective_surname" (a digit is appended when retry > 0, as
 * Docker does after a collision). Owned by the caller; NULL when out of memory. */
char *ks_container_name_generate(unsigned retry);
/* Docker's rule for user-given names: [a-zA-Z0-9][a-zA-Z0-9_.-]+, an optional leading "/". */
bool ks_container_name_valid(const char *name);

/* --- configs and specs (config.c, spec_gen.c) --- */

/* Merges the image config (the image's JSON config document, may be NULL) into the user's
 * container config as Docker does at create: Env (the container's values win), Cmd and
 * Entrypoint (an overridden entrypoint drops the image's Cmd), WorkingDir, User, Labels,
 * StopSignal, Healthcheck, ExposedPorts, Volumes; Hostname defaults to the ID's first 12
 * digits. config is modified in place. */
int ks_container_config_merge(json_object *config, json_object *image_config, const char *id,
                              const char *image_ref, struct ks_error **err);

/* The user of a process: Docker's "name", "uid", "name:group", "uid:gid" resolved against the
 * container's /etc/passwd and /etc/group (opened inside rootfd, never by path concatenation).
 * An empty or NULL user is root. Supplementary groups are those listing the user in /etc/group.
 * *ret_gids and *ret_home (the passwd entry's home, "/" when none) are owned by the caller;
 * either may be NULL when not wanted. */
int ks_container_resolve_user(int rootfd, const char *user, uid_t *ret_uid, gid_t *ret_gid,
                              gid_t **ret_gids, size_t *ret_n_gids, char **ret_home,
                              struct ks_error **err);

/* Sets process.user (an OCI process object) to uid, gid and, when n > 0, the n supplementary
 * groups gids: what the runtime switches to. */
void ks_process_set_user(json_object *process, uid_t uid, gid_t gid, const gid_t *gids, size_t n);

/* A group by name or gid against the container's /etc/group (opened inside rootfd); a number
 * not in the file is taken as is, as Docker's --group-add does. */
int ks_container_resolve_group(int rootfd, const char *group, gid_t *ret, struct ks_error **err);

struct ks_spec_gen_opts {
    const char *id;
    const char *rootfs;        /* absolute path of the mounted root file system */
    int rootfd;                /* an fd of rootfs for user resolution */
    const char *init_path;     /* kiste-init on the host, for HostConfig.Init; may be NULL */
    const char *netns_path;    /* a network namespace to join; NULL: a new one */
    bool host_network;         /* no network namespace: the host's (netns_path unused) */
    const char *cgroup_parent; /* NULL: "/kiste" */
    const char *etc_dir;       /* its hostname, hosts and resolv.conf are bound in; NULL: none */
    const struct ks_isolation_paths *isolation; /* namespaces of --pid/--ipc container:X; NULL */
};

struct ks_isolation_paths;

/* Builds the OCI config.json for a merged container config. *ret is owned by the caller. */
int ks_container_spec_generate(json_object *config, const struct ks_spec_gen_opts *o,
                               json_object **ret, struct ks_error **err);

/* Clamps HostConfig.Ulimits in place to the hard limits of the calling process (getrlimit),
 * which the container's process could not exceed anyway: a value above (or -1, unlimited) is
 * replaced by the hard limit. Returns how many were clamped, each with a message for the user
 * in *ret_warnings (a NULL-terminated list owned by the caller; NULL when none; may be NULL). */
int ks_container_ulimits_clamp(json_object *host_config, char ***ret_warnings,
                               struct ks_error **err);

/* Docker's default capability set, NULL-terminated "CAP_…" names (static). */
extern const char *const ks_container_default_caps[];

/* Docker's RAMInBytes: "64m", "1.5g", "512k", "100" (bytes), binary units, an optional "b"
 * or "ib" suffix. -EINVAL for anything else. */
int ks_parse_size(const char *s, int64_t *ret);

/* --- partial isolation (isolation.c) --- */

/* How a container has one of its namespaces: Docker's PidMode, IpcMode, UTSMode, CgroupnsMode. */
enum ks_ns_mode {
    KS_NS_MODE_PRIVATE,   /* its own ("" for PidMode and UTSMode, "private") */
    KS_NS_MODE_SHAREABLE, /* IpcMode: its own, which other containers may join */
    KS_NS_MODE_HOST,      /* none of its own: the host's */
    KS_NS_MODE_CONTAINER, /* another container's ("container:NAME") */
    KS_NS_MODE_NONE,      /* IpcMode: its own, without /dev/shm */
};

struct ks_isolation {
    enum ks_ns_mode pid, ipc, uts, cgroupns;
    const char *pid_container, *ipc_container; /* NAME of container:NAME, borrowed from hc */
};

/* Parses HostConfig hc's PidMode, IpcMode, UTSMode, CgroupnsMode and UsernsMode as Docker
 * names them (a missing or empty one is the default: private; for CgroupnsMode private only
 * when cgroupns_private, Docker's default on the pure v2 layout). UsernsMode may only be
 * "host" or empty until remapping exists. The names in *ret are borrowed from hc. */
int ks_isolation_parse(json_object *hc, bool cgroupns_private, struct ks_isolation *ret,
                       struct ks_error **err);

/* Whether a sysctl lives in a namespace a container has of its own (Docker's list: the IPC
 * ones kernel.msg{max,mnb,mni}, kernel.sem, kernel.shm{all,max,mni}, kernel.shm_rmid_forced,
 * fs.mqueue.*, and net.*), so that setting it cannot change the host. */
bool ks_sysctl_namespaced(const char *key);

/* Checks a whole {"Config","HostConfig"} pair for the isolation flags as Docker does: valid
 * modes, no Hostname with UTSMode host, HostConfig.Sysctls namespaced (net.* refused with the
 * host's network, the IPC ones with the host's IPC namespace), a valid CgroupParent. Pure. */
int ks_isolation_validate(json_object *config, struct ks_error **err);

/* The cgroupsPath of container id under HostConfig.CgroupParent parent (NULL or "": "/kiste"),
 * as Docker's cgroupfs driver places it: a relative parent is under the root cgroup. -EINVAL
 * for a parent with a ".." component, a ':' or a control character. *ret owned by the caller. */
int ks_isolation_cgroups_path(const char *parent, const char *id, char **ret,
                              struct ks_error **err);

/* The default cgroup namespace mode: private (Docker's on the pure v2 layout; Docker's host
 * default on v1 and hybrid layouts is not followed, see isolation.c). */
bool ks_isolation_cgroupns_private_default(void);

/* Fills in what Docker's daemon sets at create: IpcMode "private", CgroupnsMode by the host's
 * layout (ks_isolation_cgroupns_private_default), "" for PidMode, UTSMode, UsernsMode and
 * CgroupParent, then validates (ks_isolation_validate); with UTSMode host, Config.Hostname
 * becomes the host's name. Call it before ks_container_config_merge. */
int ks_isolation_defaults(json_object *config, struct ks_error **err);

/* The namespaces of other containers a start joins: /proc/PID/ns/… of their inits. */
struct ks_isolation_paths {
    char *pid_ns; /* PidMode container:X; NULL otherwise */
    char *ipc_ns; /* IpcMode container:X; NULL otherwise */
};
void ks_isolation_paths_clear(struct ks_isolation_paths *p);

/* Resolves PidMode and IpcMode container:X for a start: X must be running (Docker's message
 * otherwise), and for IPC be shareable, the host's or itself joined to another. Free *ret with
 * ks_isolation_paths_clear. */
int ks_engine_isolation_resolve(struct ks_engine *e, json_object *config,
                                struct ks_isolation_paths *ret, struct ks_error **err);

/* Applies the isolation settings of config to a generated OCI spec: drops the namespaces that
 * are the host's and joins the other containers' (paths, may be NULL when none is joined),
 * /dev/shm (none or the host's), no hostname with UTSMode host,
 * linux.sysctl from HostConfig.Sysctls and the cgroupsPath under HostConfig.CgroupParent. */
int ks_isolation_spec_apply(json_object *spec, json_object *config, const char *id,
                            const struct ks_isolation_paths *paths, struct ks_error **err);

/* --- lifecycle (lifecycle.c, start.c) --- */

enum ks_container_status {
    KS_CONTAINER_CREATED,
    KS_CONTAINER_RUNNING,
    KS_CONTAINER_PAUSED,
    KS_CONTAINER_RESTARTING,
    KS_CONTAINER_EXITED,
    KS_CONTAINER_DEAD,
};
/* Docker's name: "created", "running", … (static). */
const char *ks_engine_status_name(enum ks_container_status s);
/* Whether a container in status s has a run in progress: running, paused or restarting. */
bool ks_engine_status_active(enum ks_container_status s);

struct ks_container_state {
    enum ks_container_status status;
    pid_t pid, monitor_pid;
    int exit_code;
    char started_at[48], finished_at[48]; /* RFC 3339; "0001-01-01T00:00:00Z" when never */
    int64_t restart_count;
    bool oom_killed;
    char error[512];
    json_object *health; /* the monitor's Health object, NULL when none; owned */
    bool monitor_died;   /* state.json says active but its monitor is gone */
};
void ks_engine_state_clear(struct ks_container_state *s);

/* The run-time state of a container from its state.json (written by the monitor): none yet is
 * "created", a dead monitor is "exited" with Error "monitor died", a running container whose
 * cgroup is frozen is "paused". Free with ks_engine_state_clear. */
int ks_engine_state_get(struct ks_engine *e, const char *id, struct ks_container_state *ret,
                        struct ks_error **err);

struct ks_container_create_opts {
    const char *image;   /* a reference or image ID as the user gave it */
    const char *name;    /* NULL: generated */
    json_object *config; /* {"Config": …, "HostConfig": …}; merged in place */
};

/* Creates a container: record and snapshot. *ret_id is owned by the caller. */
int ks_engine_create(struct ks_engine *e, const struct ks_container_create_opts *o, char **ret_id,
                     struct ks_error **err);

/* Finds a container by full ID, name or unique ID prefix; the record is owned by the caller.
 * Its config parsed goes to *ret_config (owned; may be NULL). */
int ks_engine_lookup(struct ks_engine *e, const char *name_or_id, struct ks_db_container **ret,
                     json_object **ret_config, struct ks_error **err);

struct ks_container_start_opts {
    int attach_fd; /* an attach socket end handed to the monitor (foreground); -EBADF: none */
    const char *self_exe; /* kiste itself, for --rm's cleanup command; NULL: /proc/self/exe */
};

/* Starts a created or exited container: mounts its root file system, writes config.json,
 * spawns the monitor and waits for its sync reply. A running container is left alone (0).
 * *ret_pid (may be NULL) is the container's init. Failures of the container's command carry
 * Docker's exit status in the error's errnum: ENOENT for 127, EACCES for 126. */
int ks_engine_start(struct ks_engine *e, const char *id, const struct ks_container_start_opts *o,
                    pid_t *ret_pid, struct ks_error **err);

/* Sends sig to the container's init (after creating the stopping marker when stopping, so the
 * monitor does not apply the restart policy). -EINVAL … when it is not running. */
int ks_engine_kill(struct ks_engine *e, const char *id, int sig, bool stopping,
                   struct ks_error **err);

/* Docker's stop: the stop signal, then SIGKILL after timeout seconds (negative: the container's
 * StopTimeout or 10), then waits until it has exited. A container not running is fine. */
int ks_engine_stop(struct ks_engine *e, const char *id, int timeout, struct ks_error **err);

/* Waits until the container is not running (nor restarting) and returns its exit code. With
 * timeout_ms >= 0, -ETIMEDOUT after that long. */
int ks_engine_wait(struct ks_engine *e, const char *id, int timeout_ms, struct ks_error **err);

/* Pauses or resumes a running container (the freezer). */
int ks_engine_pause(struct ks_engine *e, const char *id, bool pause, struct ks_error **err);

/* Removes a container: refused (EBUSY, Docker's message) while running unless force, which
 * kills it first; then the runtime state, the snapshot, its directories and its record. */
int ks_engine_remove(struct ks_engine *e, const char *id, bool force, struct ks_error **err);

/* Serialises start and remove of one container between processes: an exclusive lock on
 * R/containers/ID/lock, held until the returned fd (owned by the caller) is closed. */
int ks_engine_lock(struct ks_engine *e, const char *id, struct ks_error **err);
/* The same without waiting: -EWOULDBLOCK while another holder has it. */
int ks_engine_trylock(struct ks_engine *e, const char *id, struct ks_error **err);
/* Whether pid is a live kiste-monitor (not a reused pid, nor the rm it turns into). */
bool ks_engine_monitor_alive(pid_t pid);
/* The pid the monitor wrote to run/monitor.pid (run: ks_container_run_dir), 0 when there is
 * none; not checked for being alive (ks_engine_monitor_alive). */
pid_t ks_engine_monitor_pid_file(const char *run);

/* --- crash repair (repair.c) --- */

/* Cleans up after a container whose monitor is gone (killed, crashed) or whose start was
 * interrupted: kills what is left of it and removes its runtime state (the runtime's delete
 * --force), and when st says the monitor died, unmounts its root file system and records it
 * exited with Error "monitor died" in state.json, so that it can be started or removed again.
 * The caller holds the container's lock (ks_engine_lock) and has read st under it. */
int ks_engine_repair(struct ks_engine *e, const char *id, const struct ks_container_state *st,
                     struct ks_error **err);
/* ks_engine_state_get once no monitor is at work on the container any more (bounded, 5 s):
 * the previous run's may be finishing its cleanup (unmount), and one whose start was
 * interrupted (its caller killed) finishes that start on its own, after which the container
 * is running. For start and remove, under the container's lock. Free with
 * ks_engine_state_clear. */
int ks_engine_state_settled(struct ks_engine *e, const char *id, struct ks_container_state *ret,
                            struct ks_error **err);

/* Renames a container (Docker's conflict message when the name is taken). */
int ks_engine_rename(struct ks_engine *e, const char *id, const char *name, struct ks_error **err);

/* --- network (netns.c) --- */

/* The container's network namespace, bound on U/containers/ID/netns: created with only lo (up)
 * when missing, reused otherwise. *ret_path is owned by the caller. */
int ks_engine_netns_setup(struct ks_engine *e, const char *id, char **ret_path,
                          struct ks_error **err);
/* Unmounts and removes it; a missing one is fine. */
int ks_engine_netns_teardown(struct ks_engine *e, const char *id, struct ks_error **err);

/* --- /etc/hostname, /etc/hosts and /etc/resolv.conf (etc_files.c) --- */

struct ks_net_endpoint;

/* Which resolv.conf a container gets: the host's filtered (default bridge, none), the host's
 * as it is (host), or the embedded resolver's (a user-defined network). */
enum ks_etc_mode {
    KS_ETC_MODE_DEFAULT,
    KS_ETC_MODE_HOST,
    KS_ETC_MODE_EMBEDDED,
};

/* Writes R/containers/ID/{hostname,hosts,resolv.conf} for a start, as Docker makes them, from
 * the container's config and its n_eps network endpoints (none: --network none): see
 * etc_files.c. Nothing for NetworkMode container:X, whose files are X's. A --link to a
 * container that is not running, or not on a network, fails with Docker's message. With the
 * host's network, Config.Hostname in config becomes the host's name, as Docker sets it. */
int ks_engine_etc_files_write(struct ks_engine *e, const char *id, json_object *config,
                              const struct ks_net_endpoint *eps, size_t n_eps,
                              struct ks_error **err);
/* The directory whose hostname, hosts and resolv.conf are mounted into the container: its own
 * R/containers/ID, or X's with NetworkMode container:X. *ret is owned by the caller. */
int ks_engine_etc_files_dir(struct ks_engine *e, const char *id, json_object *config, char **ret,
                            struct ks_error **err);
/* The servers the embedded resolver forwards to: HostConfig.Dns, else the host's nameservers
 * (loopback ones included: the resolver forwards from the host's namespace), else Docker's
 * defaults. NULL-terminated, owned by the caller. */
int ks_engine_dns_upstreams(json_object *config, char ***ret, struct ks_error **err);

/* The pure parts, from the host's resolv.conf text host (may be NULL). resolv.conf for mode
 * with HostConfig hc's Dns, DnsSearch and DnsOptions; *ret owned by the caller. */
int ks_etc_resolv_conf(const char *host, json_object *hc, enum ks_etc_mode mode, char **ret,
                       struct ks_error **err);
/* The nameservers of a resolv.conf text, with or without the loopback ones; NULL-terminated,
 * owned by the caller; NULL when out of memory. */
char **ks_etc_resolv_nameservers(const char *text, bool with_local);
int ks_etc_dns_upstreams(const char *host, json_object *hc, char ***ret, struct ks_error **err);
/* /etc/hosts of a container with its own network namespace: the localhost lines, the extra
 * lines ("IP\tnames", NULL-terminated, may be NULL), then each endpoint's addresses with the
 * container's FQDN and short name. *ret owned by the caller. */
int ks_etc_hosts(json_object *config, const struct ks_net_endpoint *eps, size_t n_eps,
                 const char *const *extra, char **ret, struct ks_error **err);

/* --- copying (copy.c) --- */

/* "/a/b/" → *dir "/a", *base "b" (both owned by the caller). */
void ks_engine_split_path(const char *path, char **dir, char **base);
/* Writes path of the root file system at root as a tar to fd (which is closed), its top entry
 * named as_name. */
int ks_engine_copy_out(const char *root, const char *path, const char *as_name, int fd,
                       struct ks_error **err);
/* Extracts the tar read from fd (closed) under dest in the root file system at root: into
 * dest when it is an existing directory, else as dest itself (the top entry from_name renamed). */
int ks_engine_copy_in(const char *root, const char *dest, const char *from_name, int fd,
                      struct ks_error **err);

/* Paths of a container, owned by the caller: R/containers/ID and U/containers/ID. */
char *ks_container_dir(struct ks_engine *e, const char *id);
/* Bytes the container wrote: the size of its writable layer (0 when it has none). */
int64_t ks_engine_container_size(struct ks_engine *e, const struct ks_db_container *c);
char *ks_container_run_dir(struct ks_engine *e, const char *id);
/* R/containers/ID/ID-json.log */
char *ks_container_log_path(struct ks_engine *e, const char *id);

/* Docker's inspect JSON of a container. *ret is owned by the caller. */
int ks_engine_inspect_json(struct ks_engine *e, const struct ks_db_container *c,
                           json_object *config, json_object **ret, struct ks_error **err);
