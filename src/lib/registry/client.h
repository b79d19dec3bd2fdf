/* The registry client: OCI distribution spec 1.1 / Docker Registry HTTP API v2 over HTTPS and
 * HTTP, with Docker's authentication and credentials, pulling into and pushing from the image
 * store.
 *
 * Transport. "docker.io" is served by registry-1.docker.io. Registries are spoken to over
 * HTTPS with the certificate checked, except insecure ones, which are tried over HTTPS without
 * the check and then over plain HTTP (Docker's rule). Insecure are: loopback registries
 * (localhost, 127.0.0.0/8, ::1), those named in $KISTE_INSECURE_REGISTRIES (comma-separated
 * host[:port]) and those in "insecure-registries" (an array, as Docker's daemon.json has it) of
 * <storage root>/registries.json or $XDG_CONFIG_HOME/kiste/registries.json
 * (~/.config/kiste/registries.json). A registry that has a certs.d directory is always checked
 * against it: <dir>/<host[:port]>/ with *.crt (CA certificates, added to the system's), and
 * *.cert with *.key (a client certificate), where <dir> is $KISTE_CERTS_D when set, else
 * /etc/kiste/certs.d, then /etc/docker/certs.d.
 *
 * Replies are untrusted: manifests are capped at KS_MANIFEST_MAX_SIZE and configs at
 * KS_IMAGE_CONFIG_MAX_SIZE, every blob and manifest is checked against its digest and size, a
 * blob longer than its descriptor says is cut off and refused. Redirects are followed to any
 * http(s) host for blob downloads (registries hand them to storage or a CDN, as Docker allows),
 * and only within the registry's own origin for everything else. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/error.h"

struct ks_store;
struct ks_registry;

/* The host spoken to for a domain: "registry-1.docker.io" for docker.io, else the domain.
 * Static or the argument, borrowed. */
const char *ks_registry_host(const char *domain);

/* Whether domain is insecure by the rules above (storage_root may be NULL). */
bool ks_registry_insecure(const char *domain, const char *storage_root);

struct ks_registry_opts {
    const char *storage_root; /* for registries.json; may be NULL */
    /* Credentials to use instead of config.json's (login); both or neither. */
    const char *username;
    const char *password;
};

/* A session with the registry of domain ("docker.io", "localhost:5000"): transport settings,
 * credentials and the bearer tokens obtained so far. Nothing is sent yet. *ret is owned by the
 * caller (ks_registry_free). */
int ks_registry_open(const char *domain, const struct ks_registry_opts *o, struct ks_registry **ret,
                     struct ks_error **err);
void ks_registry_free(struct ks_registry *r);
KS_DEFINE_CLEANUP(struct ks_registry *, ks_registry_free)
#define _cleanup_registry_ _cleanup_(ks_registry_free_p)

/* GET /v2/, authenticating as the registry asks (what login checks). EACCES with the
 * registry's message when the credentials are refused. */
int ks_registry_ping(struct ks_registry *r, struct ks_error **err);

/* The tags of repository path ("library/busybox"), following pagination; a NULL-terminated
 * vector owned by the caller. */
int ks_registry_tags(struct ks_registry *r, const char *path, char ***ret, struct ks_error **err);

/* --- progress of pulls and pushes --- */

enum ks_progress_state {
    KS_PROGRESS_WAITING = 0, /* "Waiting" / "Pulling fs layer" / "Preparing" */
    KS_PROGRESS_EXISTS,      /* "Already exists" / "Layer already exists" */
    KS_PROGRESS_TRANSFER,    /* "Downloading" / "Pushing" with current and total */
    KS_PROGRESS_RETRYING,    /* the connection broke; resuming */
    KS_PROGRESS_DOWNLOADED,  /* "Download complete" (unpacking may still go on) */
    KS_PROGRESS_DONE,        /* "Pull complete" / "Pushed" */
    KS_PROGRESS_MOUNTED,     /* "Mounted from <from>" */
};

struct ks_progress {
    const char *id; /* the layer's short digest (12 hex digits) */
    enum ks_progress_state state;
    int64_t current, total;
    const char *from; /* KS_PROGRESS_MOUNTED: the repository */
};
/* Called from the thread that runs the pull or push, never concurrently. */
typedef void (*ks_progress_fn)(void *userdata, const struct ks_progress *p);

/* --- pull (client_pull.c) --- */

struct ks_pull_opts {
    const char *storage_root;
    const char *os, *arch, *variant; /* platform; NULL: the host's */
    ks_progress_fn progress;         /* may be NULL */
    void *userdata;
    /* Called once the manifest is known, before any layer (e.g. to print "tag: Pulling from"). */
    void (*resolved)(void *userdata, const char *digest);
};

struct ks_pull_result {
    char *image_id;  /* "sha256:<hex>" */
    char *digest;    /* the manifest (or index) digest the reference resolved to */
    bool up_to_date; /* the image was there already under this name */
};
void ks_pull_result_release(struct ks_pull_result *r);

/* Pulls the image named by ref (a reference as the user typed it) into the store: an index
 * resolves to the platform's manifest, layers not in the store are downloaded in parallel and
 * unpacked as they arrive (an interrupted download resumes with a Range request), then the image,
 * its tag and its repository digest are recorded in one transaction. On error nothing is
 * recorded. ret is filled in (ks_pull_result_release). */
int ks_registry_pull(struct ks_store *s, const char *ref, const struct ks_pull_opts *o,
                     struct ks_pull_result *ret, struct ks_error **err);

/* --- push (client_push.c) --- */

struct ks_push_opts {
    const char *storage_root;
    ks_progress_fn progress;
    void *userdata;
    /* Blobs larger than this go up in chunks of this size (PATCH); 0: a default of 16 MiB. */
    int64_t chunk_size;
};

/* Pushes the image tagged ref: blobs the registry has are skipped (HEAD), blobs the store
 * pulled from another repository of the same registry are mounted from there, the others are
 * uploaded (one PUT, or PATCH chunks for large ones), then the manifest is put under the tag.
 * *ret_digest (owned by the caller) and *ret_size describe the manifest. */
int ks_registry_push(struct ks_store *s, const char *ref, const struct ks_push_opts *o,
                     char **ret_digest, int64_t *ret_size, struct ks_error **err);

/* --- search (client_search.c) --- */

struct ks_search_result {
    char *name;
    char *description;
    int64_t stars;
    bool official, automated;
};
void ks_search_results_free(struct ks_search_result *v, size_t n);

/* Searches the registry of term's domain (docker.io when it names none): /v1/search, else the
 * repositories of /v2/_catalog whose name contains the term. At most limit results. *ret (n
 * entries) is owned by the caller (ks_search_results_free). */
int ks_registry_search(const char *term, const char *storage_root, size_t limit,
                       struct ks_search_result **ret, size_t *ret_n, struct ks_error **err);
