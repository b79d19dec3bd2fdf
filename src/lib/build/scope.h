/* The variables a build's instructions see, with Docker's scoping rules:
 * - ARGs before the first FROM are global: only FROM lines expand them, and a stage sees one
 *   only by declaring it again (`ARG NAME` without a value takes the global value).
 * - A --build-arg overrides an ARG's default wherever the ARG is declared; a build-arg that no
 *   ARG declares is reported as not consumed, except the predefined proxy ARGs (HTTP_PROXY,
 *   HTTPS_PROXY, FTP_PROXY, NO_PROXY, ALL_PROXY, in upper and lower case), which reach RUN's
 *   environment without a declaration.
 * - The platform ARGs (TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT, BUILDPLATFORM,
 *   BUILDOS, BUILDARCH, BUILDVARIANT) are global with values from the platforms.
 * - Inside a stage, ENV (from the base image and ENV instructions) wins over ARG. */
#pragma once

#include <stdbool.h>

#include "../base/error.h"

struct ks_build_scope;

/* build_args: NULL-terminated "NAME=VALUE" strings (may be NULL). target_platform and
 * build_platform: "os/arch[/variant]", NULL for the host's. *ret is owned by the caller. */
int ks_build_scope_new(char *const *build_args, const char *target_platform,
                       const char *build_platform, struct ks_build_scope **ret,
                       struct ks_error **err);
void ks_build_scope_free(struct ks_build_scope *s);
KS_DEFINE_CLEANUP(struct ks_build_scope *, ks_build_scope_free)
#define _cleanup_build_scope_ _cleanup_(ks_build_scope_free_p)

/* Declares an ARG (value: its default, already expanded, or NULL for none): before the first
 * FROM a global one, inside a stage a stage one. */
int ks_build_scope_arg(struct ks_build_scope *s, const char *name, const char *value,
                       struct ks_error **err);
/* Starts a stage whose base image has the environment image_env ("K=V", NULL-terminated, may
 * be NULL): the previous stage's ARGs and ENV are forgotten. */
int ks_build_scope_stage(struct ks_build_scope *s, char *const *image_env, struct ks_error **err);
/* ENV NAME=VALUE in the current stage. */
int ks_build_scope_env(struct ks_build_scope *s, const char *name, const char *value,
                       struct ks_error **err);

/* A ks_shell_lookup_fn over the scope (userdata: the scope): global ARGs before the first
 * FROM, then ENV and the stage's ARGs. The value is borrowed. */
const char *ks_build_scope_lookup(void *scope, const char *name);

/* The same over the global ARGs alone (FROM lines of any stage). */
const char *ks_build_scope_lookup_global(void *scope, const char *name);

/* The stage's ENV as "K=V" (the image config's Env). NULL-terminated, owned by the caller. */
char **ks_build_scope_env_list(const struct ks_build_scope *s);
/* RUN's environment: ENV, then the stage's ARGs with a value that ENV does not set, then the
 * proxy build-args. NULL-terminated, owned by the caller. */
char **ks_build_scope_run_env(const struct ks_build_scope *s);
/* The build-args no ARG declared, by name. NULL-terminated (empty when all were used), owned
 * by the caller. */
char **ks_build_scope_unused(const struct ks_build_scope *s);

/* Whether name is one of Docker's predefined proxy ARGs. */
bool ks_build_arg_is_proxy(const char *name);
