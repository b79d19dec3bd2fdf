/* Volumes: Docker's "local" volume driver and the mounts a container uses.
 *
 * A volume is a directory R/volumes/NAME/_data with its record, R/volumes/NAME/volume.json
 * (name, driver, labels, options, creation time, anonymous or not), written atomically. No
 * database row: which containers use a volume is read from their stored configs, whose
 * "MountPoints" list is resolved at create. R/volumes/lock (flock) serialises create, remove
 * and in-use checks between kiste processes.
 *
 * A volume with options (`-o type=tmpfs`, `type=none o=bind device=/path`, `type=ext4
 * device=/dev/…`) is mounted on its _data when a container using it starts and unmounted when
 * the last such container has stopped: each user holds it with a file
 * R/volumes/NAME/holds/CONTAINER-ID, and a hold whose container is no longer running is
 * released by the next command that looks (crash-safe). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "../base/error.h"

/* --- the store of volumes (store.c) --- */

struct ks_volume {
    char *name;
    char *driver;                  /* "local" */
    char *mountpoint;              /* R/volumes/NAME/_data */
    char *created_at;              /* RFC 3339, seconds */
    json_object *labels, *options; /* objects of strings, owned */
    bool anonymous;
};
void ks_volume_free(struct ks_volume *v);
KS_DEFINE_CLEANUP(struct ks_volume *, ks_volume_free)
#define _cleanup_volume_ _cleanup_(ks_volume_free_p)

struct ks_volumes;
/* The volumes of storage root root (R/volumes, created when missing). *ret is owned by the
 * caller (ks_volumes_free). */
int ks_volumes_open(const char *root, struct ks_volumes **ret, struct ks_error **err);
void ks_volumes_free(struct ks_volumes *vs);
KS_DEFINE_CLEANUP(struct ks_volumes *, ks_volumes_free)
#define _cleanup_volumes_ _cleanup_(ks_volumes_free_p)

/* Takes the volumes' exclusive lock; held until the returned fd (owned by the caller) is
 * closed. */
int ks_volumes_lock(struct ks_volumes *vs, struct ks_error **err);

/* Docker's rule for volume names: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (at least two characters). */
bool ks_volume_name_valid(const char *name);

/* Checks the local driver's options: type, device, o (and nothing else); a type other than
 * none/tmpfs needs a device, o=bind needs type none and an absolute device. */
int ks_volume_options_check(json_object *options, struct ks_error **err);

struct ks_volume_create_opts {
    const char *name;    /* NULL: a new volume with a random 64-hex name, anonymous unless named */
    bool named;          /* with name NULL: `volume create` without a name, not anonymous */
    const char *driver;  /* NULL or "local" */
    json_object *labels; /* may be NULL; copied */
    json_object *options;
};

/* Creates a volume, or returns the existing one of that name (as Docker's create does; new
 * labels or options for an existing one are refused). The caller holds the lock. *ret (may be
 * NULL) is owned by the caller; *ret_created (may be NULL) says whether it is new. */
int ks_volume_create(struct ks_volumes *vs, const struct ks_volume_create_opts *o,
                     struct ks_volume **ret, bool *ret_created, struct ks_error **err);

/* The volume NAME; -ENOENT ("get NAME: no such volume") when there is none. *ret is owned by
 * the caller. */
int ks_volume_get(struct ks_volumes *vs, const char *name, struct ks_volume **ret,
                  struct ks_error **err);

/* Every volume, sorted by name; *ret (a vector of *ret_n volumes) is owned by the caller, free
 * with ks_volume_list_free. An unreadable record is skipped. */
int ks_volume_list(struct ks_volumes *vs, struct ks_volume ***ret, size_t *ret_n,
                   struct ks_error **err);
void ks_volume_list_free(struct ks_volume **v, size_t n);

/* Removes a volume (unmounting it first when mounted): the record first, then the data. The
 * caller holds the lock and has checked that no container uses it. */
int ks_volume_remove(struct ks_volumes *vs, const char *name, struct ks_error **err);

/* Docker's `volume inspect` object: CreatedAt, Driver, Labels, Mountpoint, Name, Options,
 * Scope. Owned by the caller; NULL when out of memory. */
json_object *ks_volume_json(const struct ks_volume *v);

/* Bytes under the volume's _data (as ks_dir_size counts them). */
int64_t ks_volume_size(const struct ks_volume *v);

/* --- mounting volumes with options (store.c) --- */

/* Whether a container holding a volume still runs: called with the holder's ID. */
typedef bool (*ks_volume_alive_fn)(const char *holder, void *userdata);

/* Whether the volume is mounted on its _data when in use (it has a type or device option). */
bool ks_volume_needs_mount(const struct ks_volume *v);

/* Records holder's use of v and mounts v when it is not mounted yet. Dead holds (alive says
 * so) are dropped first. The caller holds the lock. */
int ks_volume_acquire(struct ks_volumes *vs, const struct ks_volume *v, const char *holder,
                      ks_volume_alive_fn alive, void *userdata, struct ks_error **err);

/* Drops holder's holds (holder NULL: none), then every hold alive says is dead, and unmounts
 * each volume left without one. The caller holds the lock. */
int ks_volume_release(struct ks_volumes *vs, const char *holder, ks_volume_alive_fn alive,
                      void *userdata, struct ks_error **err);

/* --- mount specifications (spec.c): pure parsing, no file system --- */

enum ks_mount_type {
    KS_MOUNT_BIND,
    KS_MOUNT_VOLUME,
    KS_MOUNT_TMPFS,
};
/* "bind", "volume", "tmpfs" (static). */
const char *ks_mount_type_name(enum ks_mount_type t);

struct ks_mount_spec {
    enum ks_mount_type type;
    char *source;      /* host path (bind), volume name (NULL: anonymous), NULL for tmpfs */
    char *target;      /* absolute path in the container */
    char *mode;        /* -v's mode field as given ("ro,rshared", "z", ""), never NULL */
    char *propagation; /* bind propagation; "" when not given */
    bool readonly, nocopy;
    bool from_mount;      /* --mount: a missing bind source is refused, not created */
    json_object *labels;  /* --mount volume-label (object), may be NULL */
    json_object *options; /* --mount volume-opt (object), may be NULL */
    int64_t tmpfs_size;   /* bytes, 0: the kernel's default */
    uint32_t tmpfs_mode;  /* 0: the kernel's default */
};
void ks_mount_spec_clear(struct ks_mount_spec *s);

/* Docker's -v/--volume syntax: "/ctr" (anonymous volume), "name:/ctr[:mode]" (named volume),
 * "/host:/ctr[:mode]" (bind); mode is a comma list of at most one of ro/rw, z/Z, a propagation
 * (binds only) and nocopy (volumes only). ret is cleared with ks_mount_spec_clear. */
int ks_mount_spec_parse_volume(const char *spec, struct ks_mount_spec *ret, struct ks_error **err);

/* Docker's --mount syntax: comma-separated key=value with type (bind, volume, tmpfs; default
 * volume), source/src, target/dst/destination, readonly/ro, bind-propagation, volume-nocopy,
 * volume-label, volume-driver (local), volume-opt, tmpfs-size, tmpfs-mode. */
int ks_mount_spec_parse_mount(const char *csv, struct ks_mount_spec *ret, struct ks_error **err);

/* The HostConfig.Mounts entry of a --mount spec, as Docker stores it (Type, Source, Target,
 * ReadOnly, BindOptions, VolumeOptions, TmpfsOptions). Owned by the caller. */
json_object *ks_mount_spec_to_json(const struct ks_mount_spec *s);
/* The reverse, for a stored (untrusted) entry; validated as the parser validates. */
int ks_mount_spec_from_json(json_object *m, struct ks_mount_spec *ret, struct ks_error **err);

/* --- copy-up (copyup.c) --- */

/* Copies the directory tree src (an fd) into dst (an fd), keeping owners, modes, times,
 * extended attributes, symlinks, device nodes and hard links' content: Docker's copy of an
 * image's content into an empty volume. */
int ks_volume_copy_tree(int src, int dst, struct ks_error **err);
/* Whether the directory dirfd has no entries. */
bool ks_volume_dir_empty(int dirfd);

/* --- containers (engine.c): the engine's use of volumes --- */

struct ks_engine;

/* At create: resolves HostConfig.Binds, HostConfig.Mounts, HostConfig.VolumesFrom and the
 * image's Config.Volumes into config's "MountPoints" (Docker's mount points: Type, Name,
 * Source, Destination, Driver, Mode, RW, Propagation), creating missing bind sources of -v
 * and named or anonymous volumes. Returns the volumes' lock in *ret_lock (owned by the
 * caller), to hold until the container is recorded so that no volume it uses can be removed
 * meanwhile. */
int ks_engine_volumes_resolve(struct ks_engine *e, json_object *config, int *ret_lock,
                              struct ks_error **err);

/* At start, with the container's root file system open as rootfd: mounts volumes with options
 * (holding them for id) and fills each empty volume from the image's content at its
 * destination (Docker's copy-up), unless nocopy. */
int ks_engine_volumes_prepare(struct ks_engine *e, const char *id, json_object *config, int rootfd,
                              struct ks_error **err);

/* Adds the OCI mounts of config's MountPoints to the spec's "mounts" array, parents before
 * children. */
int ks_engine_volumes_spec(json_object *spec, json_object *config, struct ks_error **err);

/* Docker's inspect "Mounts" of a container's config (an empty array when none). Owned by the
 * caller. */
json_object *ks_engine_volumes_inspect(json_object *config);

/* Releases the container's holds on volumes (it has stopped or is gone) and unmounts volumes
 * left without users. Failures are not the caller's: logged at debug level. */
void ks_engine_volumes_release(struct ks_engine *e, const char *id);

/* Removes the anonymous volumes of a container's config (config_json: the stored text) that
 * no other container uses: `rm -v`, and a --rm container's removal. */
int ks_engine_volumes_remove_anonymous(struct ks_engine *e, const char *config_json,
                                       struct ks_error **err);

/* Whether a container's config mounts a volume named name, or anything at destination name
 * (ps --filter volume=). */
bool ks_engine_volumes_match(json_object *config, const char *name);

/* How many containers use each volume: *ret is an object NAME → {"Links": N, "Containers":
 * [ids…]} for every volume some container uses (owned by the caller). One pass over the
 * container records. */
int ks_engine_volumes_users(struct ks_engine *e, json_object **ret, struct ks_error **err);
