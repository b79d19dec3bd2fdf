/* Registry credentials as Docker keeps them: ~/.docker/config.json (or $DOCKER_CONFIG/
 * config.json) with "auths" {server: {"auth": base64("user:password")}}, and credential helpers
 * ("credsStore" for every server, "credHelpers" {server: name}) run as
 * docker-credential-NAME get|store|erase with the protocol on stdin/stdout. Docker Hub's
 * server key is "https://index.docker.io/v1/". The file is untrusted input: parsed bounded,
 * and rewritten atomically with every key this code does not know kept. */
#pragma once

#include "../base/error.h"

/* The config.json bound. */
#define KS_CREDS_CONFIG_MAX ((size_t)4 << 20)

/* The key credentials of a registry domain are stored under: Docker Hub's
 * "https://index.docker.io/v1/" for docker.io and its aliases, else the domain. Static or
 * the domain itself, borrowed. */
const char *ks_creds_server_key(const char *domain);

/* The path of config.json, owned by the caller. */
char *ks_creds_config_path(void);

/* Decodes an "auth" value (base64 of "user:password"). *ret_user and *ret_pass are owned by
 * the caller. EINVAL for bad base64, a missing colon or an empty user. */
int ks_creds_decode_auth(const char *b64, char **ret_user, char **ret_pass, struct ks_error **err);
/* base64("user:password"), owned by the caller; NULL when out of memory. */
char *ks_creds_encode_auth(const char *user, const char *pass);

/* Looks up the credentials for server (a domain): credential helper for it, else credsStore,
 * else "auths" (an entry keyed with or without scheme and path matches). -ENOENT when there
 * are none (no message needed). *ret_user and *ret_pass are owned by the caller. */
int ks_creds_get(const char *server, char **ret_user, char **ret_pass, struct ks_error **err);

/* Stores credentials for server, through its helper when one is configured, else in "auths";
 * config.json is rewritten atomically (mode 0600) keeping every other key. */
int ks_creds_store(const char *server, const char *user, const char *pass, struct ks_error **err);

/* Removes the credentials for server; -ENOENT when there were none. */
int ks_creds_erase(const char *server, struct ks_error **err);
