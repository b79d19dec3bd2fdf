/* Control groups on the pure v2 layout, v1, and the hybrid layout (v1 controllers plus a v2
 * hierarchy that holds no controller). Only cgroups kiste created are ever written or removed.
 *
 * Resources are config.json's linux.resources object (memory, cpu, pids, blockIO, hugepageLimits,
 * devices, unified); on v2 the v1-style values are converted as runc and crun do (cpu.weight
 * from shares, io.weight from blkio weight, memory.swap.max = swap - memory, ...), and the device
 * rules become an eBPF program attached to the cgroup. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "../base/error.h"

enum ks_cgroup_mode {
    KS_CGROUP_V1,
    KS_CGROUP_V2,
    KS_CGROUP_HYBRID,
};

enum ks_cgroup_controller {
    KS_CG_CPU,
    KS_CG_CPUACCT,
    KS_CG_CPUSET,
    KS_CG_MEMORY,
    KS_CG_DEVICES,
    KS_CG_FREEZER,
    KS_CG_BLKIO,
    KS_CG_PIDS,
    KS_CG_HUGETLB,
    KS_CG_NET_CLS,
    KS_CG_NET_PRIO,
    KS_CG_PERF_EVENT,
    KS_CG_RDMA,
    KS_CG_MISC,
    KS_CG__COUNT,
};

struct ks_cgroup_layout {
    enum ks_cgroup_mode mode;
    char *root;             /* "/sys/fs/cgroup" or a test's fake tree */
    char *v2;               /* mount point of the v2 hierarchy, or NULL */
    char *v1[KS_CG__COUNT]; /* mount point of each v1 controller, or NULL */
};

/* Reads the layout under root (normally "/sys/fs/cgroup"): v2 when root itself is cgroup2
 * (or, for fake trees, holds cgroup.controllers), hybrid when v1 controllers are mounted below it
 * and root/unified is a v2 hierarchy, v1 otherwise. Owned by the caller. */
int ks_cgroup_layout_detect(const char *root, struct ks_cgroup_layout **ret, struct ks_error **err);
void ks_cgroup_layout_free(struct ks_cgroup_layout *l);

struct ks_cgroup;

/* Turns config.json's linux.cgroupsPath (may be NULL) into the relative path kiste uses:
 * absolute paths are taken as they are, systemd-style "slice:prefix:name" becomes
 * "slice/prefix-name.scope", and no path at all becomes "kiste/<id>". New string. */
char *ks_cgroup_path_for(const char *cgroups_path, const char *id);

/* Creates the cgroup at path (relative to each hierarchy's root) in every hierarchy of the
 * layout, applies resources (may be NULL) and moves pid into it. An existing cgroup is reused
 * (joining a shared cgroup, as runc allows). Owned by the caller. */
int ks_cgroup_create(const struct ks_cgroup_layout *l, const char *path, json_object *resources,
                     pid_t pid, struct ks_cgroup **ret, struct ks_error **err);

/* Opens an existing cgroup (for a container created by an earlier command). */
int ks_cgroup_open(const struct ks_cgroup_layout *l, const char *path, struct ks_cgroup **ret,
                   struct ks_error **err);

int ks_cgroup_enter(struct ks_cgroup *cg, pid_t pid, struct ks_error **err);
int ks_cgroup_update(struct ks_cgroup *cg, json_object *resources, struct ks_error **err);
int ks_cgroup_freeze(struct ks_cgroup *cg, bool frozen, struct ks_error **err);
int ks_cgroup_is_frozen(struct ks_cgroup *cg, bool *ret, struct ks_error **err);
/* The pids in the cgroup (and its children), in a malloc'd array the caller owns. */
int ks_cgroup_pids(struct ks_cgroup *cg, pid_t **ret, size_t *ret_n, struct ks_error **err);
/* Sends sig to every process in the cgroup, freezing it meanwhile so none escapes by forking. */
int ks_cgroup_kill_all(struct ks_cgroup *cg, int sig, struct ks_error **err);
/* Removes the cgroup from every hierarchy (waiting briefly for exiting processes). */
int ks_cgroup_destroy(struct ks_cgroup *cg, struct ks_error **err);
/* Statistics (memory usage, pids, cpu usage) as a JSON object for `kiste stats` and
 * `kiste-runtime events --stats`; new reference. */
int ks_cgroup_stats(struct ks_cgroup *cg, json_object **ret, struct ks_error **err);
void ks_cgroup_free(struct ks_cgroup *cg);

/* The path given to ks_cgroup_create/open. */
const char *ks_cgroup_get_path(const struct ks_cgroup *cg);
const struct ks_cgroup_layout *ks_cgroup_get_layout(const struct ks_cgroup *cg);

/* Builds an eBPF cgroup device program from OCI device rules (linux.resources.devices, an array
 * of {allow, type, major, minor, access}) and attaches it to the v2 cgroup open at dirfd with
 * BPF_F_ALLOW_MULTI; programs attached earlier by kiste are detached afterwards, so an update
 * replaces the rules. The last matching rule decides; no match denies. */
int ks_cgroup_bpf_devices_apply(int dirfd, json_object *devices, struct ks_error **err);

/* --- Shared by cgroup*.c only; not for other callers. --- */

/* Every controller listed in a v2 cgroup.controllers file, for ks_cgroup_v2_enable. */
#define KS_CG_V2_ALL_AVAILABLE (~0u)
/* The v2 controllers a resources object needs, as a bit mask of 1u << enum ks_cgroup_controller
 * (io is KS_CG_BLKIO). */
unsigned ks_cgroup_v2_required(json_object *resources);
/* Writes "+name" into dir/cgroup.subtree_control for each controller in mask that is listed in
 * dir/cgroup.controllers and not yet enabled. Missing controllers are an error when strict. */
int ks_cgroup_v2_enable(const char *dir, unsigned mask, bool strict, struct ks_error **err);
/* Writes the resources of the controllers in mask (1u << enum ks_cgroup_controller; KS_CG_DEVICES
 * stands for the eBPF device program) into the v2 cgroup dir; "unified" is always written. */
int ks_cgroup_v2_apply(const char *dir, json_object *resources, unsigned mask,
                       struct ks_error **err);
int ks_cgroup_v2_freeze(const char *dir, bool frozen, struct ks_error **err);
int ks_cgroup_v2_is_frozen(const char *dir, bool *ret, struct ks_error **err);
int ks_cgroup_v2_stats(const char *dir, json_object *out, struct ks_error **err);

/* dirs holds the cgroup's directory in each v1 controller's hierarchy (NULL when absent). */
int ks_cgroup_v1_apply(char *const dirs[KS_CG__COUNT], json_object *resources, unsigned mask,
                       struct ks_error **err);
/* A new v1 cpuset cgroup starts with empty cpus and mems; copy them from the parent. */
int ks_cgroup_v1_cpuset_init(const char *dir, struct ks_error **err);
int ks_cgroup_v1_freeze(const char *dir, bool frozen, struct ks_error **err);
int ks_cgroup_v1_is_frozen(const char *dir, bool *ret, struct ks_error **err);
int ks_cgroup_v1_stats(char *const dirs[KS_CG__COUNT], json_object *out, struct ks_error **err);

/* dir/file = value, with an error naming the file, the value and the directory. */
int ks_cgroup_write(const char *dir, const char *file, const char *value, struct ks_error **err);
/* Like ks_cgroup_write, but a missing file is reported as -ENOENT without setting err. */
int ks_cgroup_write_opt(const char *dir, const char *file, const char *value,
                        struct ks_error **err);
/* Reads dir/file into a new string with trailing whitespace removed. */
int ks_cgroup_read(const char *dir, const char *file, char **ret, struct ks_error **err);
bool ks_cgroup_file_exists(const char *dir, const char *file);
/* Whether o has key as a number (json null is absence); the value in *ret. */
bool ks_cgroup_json_int(json_object *o, const char *key, int64_t *ret);
/* The name of a controller as the kernel spells it ("blkio", "cpu", ...). */
const char *ks_cgroup_controller_name(enum ks_cgroup_controller c);
/* Waits a little between polls of a state that is settling (freezer, rmdir). */
void ks_cgroup_sleep_ms(unsigned ms);
