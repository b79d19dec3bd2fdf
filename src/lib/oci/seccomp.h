/* Seccomp filters from config.json's linux.seccomp, through libseccomp. */
#pragma once

#include <json-c/json.h>

#include "../base/error.h"

struct ks_seccomp;

/* Builds the filter for linux.seccomp (not NULL) without loading it: unknown actions,
 * architectures, operators or flags are errors naming the field ("linux.seccomp.syscalls[3]
 * .action: unknown action `SCMP_ACT_FOO`"); syscall names this libseccomp does not know are
 * skipped, as runc does. The result is owned by the caller. */
int ks_seccomp_new(json_object *seccomp, struct ks_seccomp **ret, struct ks_error **err);

/* A runtime's root opened O_PATH, for the cache of compiled filters kept under it (in
 * "@seccomp-cache", made on the first store): owned by the caller; -EBADF when it cannot be
 * opened (no cache then). */
int ks_seccomp_cache_open(const char *runtime_root);

/* The same as ks_seccomp_new, the compiled program taken from (or stored in) the cache under
 * cache_rootfd (ks_seccomp_cache_open; -EBADF: no cache) when it holds one for this profile and
 * this libseccomp. A profile with a notify listener is always built by libseccomp. The result is
 * owned by the caller. */
int ks_seccomp_new_cached(json_object *seccomp, int cache_rootfd, struct ks_seccomp **ret,
                          struct ks_error **err);

/* Loads the filter into the calling thread (with its flags, e.g. TSYNC, LOG, SPEC_ALLOW). */
int ks_seccomp_load(struct ks_seccomp *s, struct ks_error **err);

void ks_seccomp_free(struct ks_seccomp *s);

/* For `features`: JSON arrays of the supported actions, operators and architectures, and the
 * flags the kernel knows; new references. */
json_object *ks_seccomp_features_json(void);
