/* config.json: loading and validation. The spec stays a json-c tree; ks_spec_validate() checks
 * the type of every field Linux uses once, so later code can read it with the ks_json_*
 * accessors without checking types again. */
#pragma once

#include <stdbool.h>

#include <json-c/json.h>

#include "../base/error.h"

#define KS_OCI_VERSION_MIN "1.0.0"
#define KS_OCI_VERSION_MAX "1.3.0"

/* Reads bundle/config.json, parses and validates it. *ret is owned by the caller. */
int ks_spec_load(const char *bundle, json_object **ret, struct ks_error **err);

/* Validates a parsed config. Errors name the field by its JSON path, for example
 * "config.json: process.args[1]: expected a string" or
 * "config.json: linux.namespaces[2].type: unknown namespace type `foo`". Checks: ociVersion
 * in [1.0.0, 1.3.x] (a missing one is an error), root.path present, process.args non-empty when
 * process is present, mounts' destinations absolute, namespace types known and not repeated,
 * uid/gid mappings well formed, rlimit types known, and the types of every other field. */
int ks_spec_validate(json_object *spec, struct ks_error **err);

/* Validates a process object on its own (exec --process FILE), with the same rules and
 * messages as the process member of config.json. */
int ks_spec_validate_process(json_object *process, struct ks_error **err);

/* The default config.json of `kiste-runtime spec` (with rootless: user namespace mapping the
 * calling user, no cgroup resources, mounts usable without privileges). New reference. */
json_object *ks_spec_default(bool rootless);

/* The OCI "features" document (runtime-spec features.md) for `kiste-runtime features`. */
json_object *ks_spec_features(void);
