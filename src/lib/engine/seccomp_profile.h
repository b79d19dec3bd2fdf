/* Docker's default seccomp policy, as an OCI linux.seccomp object. */
#pragma once

#include <json-c/json.h>

#include "../base/error.h"

/* The OCI linux.seccomp object that gives a container Docker's default seccomp policy for this
 * architecture: default action errno (EPERM), an allow list of syscalls, the argument
 * conditions Docker applies (personality values, clone flags without CAP_SYS_ADMIN, socket
 * AF_VSOCK…), and the syscalls allowed only with certain capabilities (caps is the container's
 * bounding set, NULL-terminated "CAP_…" names). *ret is owned by the caller. */
int ks_seccomp_default_profile(const char *const *caps, json_object **ret, struct ks_error **err);
