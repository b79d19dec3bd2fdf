/* File helpers, and safe path resolution inside a root directory (a container's rootfs, a layer
 * directory): a path given by untrusted input is resolved so that neither "..", nor absolute or
 * relative symlinks, can lead outside the root. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* Reads a whole file. *ret is NUL-terminated and owned by the caller. */
int ks_read_file(const char *path, char **ret, size_t *ret_len, struct ks_error **err);
int ks_read_file_at(int dirfd, const char *path, char **ret, size_t *ret_len,
                    struct ks_error **err);
/* Reads at most max bytes from fd (to its end), NUL-terminated, owned by the caller. */
int ks_read_fd(int fd, size_t max, char **ret, size_t *ret_len, struct ks_error **err);

/* Writes data to an existing file (O_WRONLY|O_TRUNC), as for cgroup and /proc files. */
int ks_write_file(const char *path, const char *data, size_t len, struct ks_error **err);
int ks_write_file_at(int dirfd, const char *path, const char *data, size_t len,
                     struct ks_error **err);

/* Creates or replaces dirfd/name atomically: temporary file, fsync, rename. */
int ks_write_file_atomic(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                         struct ks_error **err);
/* Like ks_write_file_atomic, without the fsync: readers see the old or the new content, but a
 * crash may lose the new one. For run-time state (state.json, pid files) that does not outlive
 * the processes it describes; an fsync there costs a disk flush on every container start. */
int ks_write_file_replace(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                          struct ks_error **err);

int ks_write_all(int fd, const void *buf, size_t len);
ssize_t ks_read_all(int fd, void *buf, size_t len);

/* mkdir -p; existing directories are fine. */
int ks_mkdir_p(const char *path, mode_t mode, struct ks_error **err);

/* Removes a tree without crossing into other file systems' mounts; ENOENT is success. */
int ks_rm_rf_at(int dirfd, const char *name, struct ks_error **err);

/* Opens path inside the directory rootfd as if rootfd were "/": with openat2(RESOLVE_IN_ROOT)
 * where the kernel has it, else by walking the components by hand. flags are open(2) flags;
 * O_CREAT creates the last component only. Returns the new fd (the caller owns it). */
int ks_open_in_root(int rootfd, const char *path, int flags, mode_t mode, struct ks_error **err);

/* The same resolution, walking by hand only; exported so both paths can be tested. */
int ks_open_in_root_fallback(int rootfd, const char *path, int flags, mode_t mode,
                             struct ks_error **err);

/* Creates every missing directory of path inside rootfd and returns an O_PATH fd of the last
 * one. With as_file, the last component is created as an empty file instead (a bind-mount
 * target for a file). */
int ks_mkdir_p_in_root(int rootfd, const char *path, mode_t mode, bool as_file,
                       struct ks_error **err);

/* "/proc/self/fd/N" for fd, in buf (at least 32 bytes). */
const char *ks_fd_path(int fd, char *buf, size_t len);

/* Whether two paths are the same after removing duplicate and trailing slashes and "."; path
 * cleaning as filepath.Clean does it, into a new string the caller owns. */
char *ks_path_clean(const char *path);

/* Makes one string vector from NULL-terminated arguments, owned by the caller. */
size_t ks_strv_len(char *const *v);
char **ks_strv_dup(char *const *v);

/* Bytes in the regular files, symlinks and other non-directories under dirfd, as `du
 * --apparent-size` counts them without directories: Docker's measure of a layer's size. Does
 * not cross into subdirectories it cannot open; never fails (an unreadable tree counts 0). */
int64_t ks_dir_size(int dirfd);
