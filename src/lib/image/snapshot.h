/* Overlay snapshots over shared layer directories, laid out as Docker's overlay2 driver does:
 *
 *   <store>/<cache_id>/diff    the layer's files (for a container: its upper directory)
 *   <store>/<cache_id>/link    the layer's short name, 26 characters of [A-Z0-9]
 *   <store>/<cache_id>/lower   "l/<short>:l/<short>…", the short names of the layers below,
 *                              nearest first (absent for a base layer)
 *   <store>/<cache_id>/work    overlay's work directory
 *   <store>/<cache_id>/merged  a container's mount point (containers only)
 *   <store>/l/<short>          symlink to ../<cache_id>/diff
 *
 * <store> is <root>/overlay. Mounts pass each lower layer separately through the new mount API
 * ("lowerdir+", Linux 6.8), which has no limit on the number of layers short of overlay's own
 * (500); on older kernels the classic option string is built from the short names, relative to
 * the store, and mounted from a child process whose working directory is the store, which fits
 * about 120 layers into the one page the kernel accepts. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "../base/error.h"

#define KS_SNAPSHOT_LINK_LEN 26

/* Creates a layer directory on top of parent_cache_id (NULL for a base layer): diff, work,
 * link and lower, and the short link under l/. The layer's content is then written into
 * *ret_diff_path. *ret_cache_id (a new random 64-hex-digit name) and *ret_diff_path are owned
 * by the caller; either may be NULL when not wanted. */
int ks_snapshot_layer_create(const char *store_root, const char *parent_cache_id,
                             char **ret_cache_id, char **ret_diff_path, struct ks_error **err);

/* Removes a layer's directory and its short link. A layer that does not exist is not an error;
 * a layer with something mounted inside is (EBUSY). */
int ks_snapshot_layer_remove(const char *store_root, const char *cache_id, struct ks_error **err);

/* Mounts an overlay of the given layers (top first) on target. With upper_dir and work_dir the
 * mount is writable unless readonly; without them (both NULL) it is a read-only view of the
 * image, as for inspecting it (a single layer is then bind-mounted read-only). */
int ks_snapshot_mount(const char *store_root, const char *const *lower_cache_ids, size_t n,
                      const char *upper_dir, const char *work_dir, const char *target,
                      bool readonly, struct ks_error **err);

/* The same through the classic option string and a child process in the store directory:
 * what ks_snapshot_mount falls back to on kernels without "lowerdir+"; exported so both paths
 * can be tested. E2BIG when the options do not fit in a page. */
int ks_snapshot_mount_legacy(const char *store_root, const char *const *lower_cache_ids, size_t n,
                             const char *upper_dir, const char *work_dir, const char *target,
                             bool readonly, struct ks_error **err);

/* Unmounts target (lazily when busy); target not being a mount point is not an error. */
int ks_snapshot_unmount(const char *target, struct ks_error **err);

/* Creates a container's snapshot on top of an image's top layer (NULL for an image without
 * layers): a layer directory whose diff is the container's upper directory, plus merged/.
 * *ret_id, the snapshot's name in the store, is owned by the caller. */
int ks_snapshot_container_create(const char *store_root, const char *top_layer_cache_id,
                                 char **ret_id, struct ks_error **err);

/* Mounts the container's root file system on <store>/<id>/merged; *ret_merged (may be NULL)
 * receives that path, owned by the caller. Mounting an already mounted container is not an
 * error. */
int ks_snapshot_container_mount(const char *store_root, const char *id, char **ret_merged,
                                struct ks_error **err);
/* Flags of ks_snapshot_container_mount_flags(). VOLATILE: overlay's "volatile" option, which
 * skips every sync of the upper directory, above all the sync of the whole upper file system at
 * unmount (tens to hundreds of milliseconds on a busy disk). Its contents are lost for good
 * after a machine crash, so it is meant for containers that are removed when they exit. */
#define KS_SNAPSHOT_MOUNT_VOLATILE 0x1u
int ks_snapshot_container_mount_flags(const char *store_root, const char *id, unsigned flags,
                                      char **ret_merged, struct ks_error **err);
int ks_snapshot_container_unmount(const char *store_root, const char *id, struct ks_error **err);
/* Unmounts and removes the container's snapshot; a missing one is not an error. */
int ks_snapshot_container_remove(const char *store_root, const char *id, struct ks_error **err);
