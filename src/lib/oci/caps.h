/* Linux capabilities of a container process: the five sets of config.json's
 * process.capabilities, parsed into bit masks and applied in two steps. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "../base/error.h"

struct ks_caps {
    uint64_t bounding, effective, inheritable, permitted, ambient;
};

/* The capability number for a name such as "CAP_SYS_ADMIN" (case-insensitive, the "CAP_"
 * prefix optional), or -1 for an unknown name. */
int ks_caps_from_name(const char *name);
/* "CAP_SYS_ADMIN" for 21; NULL when unknown. Static string. */
const char *ks_caps_name(int cap);
/* The highest capability number the running kernel knows (from /proc/sys/kernel/cap_last_cap). */
int ks_caps_last_cap(void);

/* Parses process.capabilities (may be NULL: no capabilities at all). An unknown name is an
 * error naming the set and the name, e.g. "process.capabilities.bounding: unknown capability
 * `CAP_FOO`". A capability the running kernel does not know is dropped with a warning. */
int ks_caps_parse(json_object *capabilities, struct ks_caps *ret, struct ks_error **err);

/* Step 1, while still privileged: drops every capability outside caps->bounding from the
 * bounding set, and sets PR_SET_KEEPCAPS so a later change of uid keeps the permitted set. */
int ks_caps_apply_bounding(const struct ks_caps *caps, struct ks_error **err);

/* Step 2, after the uid/gid change: sets effective, permitted and inheritable with capset and
 * raises the ambient set; clears PR_SET_KEEPCAPS. */
int ks_caps_apply(const struct ks_caps *caps, struct ks_error **err);

/* Every capability the kernel knows, as a JSON array of names (for `features`), new reference. */
json_object *ks_caps_all_json(void);
