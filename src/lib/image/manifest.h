/* Image metadata from registries and archives: OCI image manifests and indexes, Docker schema 2
 * manifests and manifest lists, and OCI/Docker image configs. All of it is untrusted, so parsing
 * is bounded (document size, number of entries) and every value is checked before it is used;
 * an error names the JSON path of the offending value, e.g.
 * "manifest: layers[3].digest: invalid digest `sha256:xyz`".
 *
 * The parsed structs keep the json_object they were read from: every string in them points into
 * that document and lives exactly as long as the struct. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "../base/error.h"

/* Docker's limit for a manifest body; a config is allowed more for long build histories. */
#define KS_MANIFEST_MAX_SIZE     ((size_t)4 << 20)
#define KS_IMAGE_CONFIG_MAX_SIZE ((size_t)8 << 20)
/* The most layers in a manifest, manifests in an index or diff_ids in a config. */
#define KS_MANIFEST_MAX_ITEMS 10000
/* The largest layer a descriptor may announce. */
#define KS_LAYER_MAX_SIZE ((int64_t)1 << 40)

enum ks_media_type {
    KS_MEDIA_UNKNOWN = 0,
    KS_MEDIA_OCI_MANIFEST,
    KS_MEDIA_OCI_INDEX,
    KS_MEDIA_DOCKER_MANIFEST,
    KS_MEDIA_DOCKER_MANIFEST_LIST,
    KS_MEDIA_DOCKER_SCHEMA1,
    KS_MEDIA_DOCKER_SCHEMA1_SIGNED,
    KS_MEDIA_OCI_CONFIG,
    KS_MEDIA_DOCKER_CONFIG,
    KS_MEDIA_OCI_LAYER,
    KS_MEDIA_OCI_LAYER_GZIP,
    KS_MEDIA_OCI_LAYER_ZSTD,
    KS_MEDIA_OCI_LAYER_NONDIST,
    KS_MEDIA_OCI_LAYER_NONDIST_GZIP,
    KS_MEDIA_OCI_LAYER_NONDIST_ZSTD,
    KS_MEDIA_DOCKER_LAYER_GZIP,
    KS_MEDIA_DOCKER_LAYER_FOREIGN_GZIP,
    KS_MEDIA_OCI_EMPTY,
    KS_MEDIA__MAX,
};

enum ks_layer_compression {
    KS_COMPRESSION_NONE = 0,
    KS_COMPRESSION_GZIP,
    KS_COMPRESSION_ZSTD,
};

/* The media type named exactly s (OCI compares media types byte for byte); KS_MEDIA_UNKNOWN
 * for anything else, including NULL. */
enum ks_media_type ks_media_type_from_string(const char *s);
/* The canonical name of t (a static string); NULL for KS_MEDIA_UNKNOWN or out of range. */
const char *ks_media_type_name(enum ks_media_type t);
bool ks_media_type_is_manifest(enum ks_media_type t); /* image manifest, either family */
bool ks_media_type_is_index(enum ks_media_type t);    /* OCI index or Docker manifest list */
bool ks_media_type_is_config(enum ks_media_type t);
bool ks_media_type_is_layer(enum ks_media_type t);
/* Foreign (Docker) and non-distributable (OCI) layers: fetched from their urls, never pushed. */
bool ks_media_type_is_foreign(enum ks_media_type t);
enum ks_layer_compression ks_media_type_compression(enum ks_media_type t);

struct ks_kv {
    const char *key;
    const char *value;
};

struct ks_platform {
    const char *architecture;
    const char *os;
    const char *variant;      /* NULL when absent */
    const char *os_version;   /* "os.version", NULL when absent */
    const char **os_features; /* "os.features", NULL-terminated; NULL when absent */
};

struct ks_descriptor {
    const char *media_type;
    enum ks_media_type type; /* KS_MEDIA_UNKNOWN for a type this engine does not know */
    const char *digest;      /* checked: sha256:<64 hex> or sha512:<128 hex> */
    int64_t size;            /* 0 ≤ size ≤ the limit for what the descriptor points at */
    const char **urls;       /* http(s) only, NULL-terminated; NULL when absent */
    const char *artifact_type;
    struct ks_kv *annotations;
    size_t n_annotations;
    bool has_platform; /* index entries only */
    struct ks_platform platform;
};

enum ks_manifest_kind {
    KS_MANIFEST_IMAGE = 1, /* OCI image manifest or Docker schema 2 manifest */
    KS_MANIFEST_INDEX,     /* OCI index or Docker manifest list */
};

struct ks_manifest {
    json_object *json; /* the whole document, owned by the struct */
    enum ks_manifest_kind kind;
    enum ks_media_type type;
    const char *media_type; /* from the document, else the content type or detection */
    const char *artifact_type;
    struct ks_descriptor config; /* KS_MANIFEST_IMAGE */
    struct ks_descriptor *layers;
    size_t n_layers;
    struct ks_descriptor *manifests; /* KS_MANIFEST_INDEX */
    size_t n_manifests;
    struct ks_descriptor *subject; /* NULL when absent */
    struct ks_kv *annotations;
    size_t n_annotations;
};

/* Parses and checks a manifest or index of len bytes (at most KS_MANIFEST_MAX_SIZE).
 * content_type is the Content-Type of the registry's answer or the mediaType from the
 * descriptor that pointed here (parameters such as "; charset=utf-8" are ignored); with NULL,
 * or a generic type such as application/json, the type is taken from the document's mediaType
 * or, failing that, its shape. A document whose mediaType contradicts content_type, Docker
 * schema 1 and schemaVersion other than 2 are refused. *ret is owned by the caller
 * (ks_manifest_free). */
int ks_manifest_parse(const char *buf, size_t len, const char *content_type,
                      struct ks_manifest **ret, struct ks_error **err);
void ks_manifest_free(struct ks_manifest *m);
KS_DEFINE_CLEANUP(struct ks_manifest *, ks_manifest_free)
#define _cleanup_manifest_ _cleanup_(ks_manifest_free_p)

/* Picks the entry of index for os/arch/variant the way Docker (containerd's platform matcher)
 * does: names are normalized (x86_64 → amd64, aarch64 → arm64, arm64 "8" → "v8"); variant NULL
 * means the default for arch (v8 for arm64, v7 for arm, none for amd64); a 32-bit arm request
 * also takes older variants (v7 takes v6 and v5), amd64 older levels (v3 takes v2 and none),
 * arm64 v9 takes v8 and arm64 v8 falls back to 32-bit arm; the closest wins, among equals the
 * first entry. Only image manifests (and nested indexes) are candidates. *ret points into index and
 * lives as long as it. ENOENT when nothing matches, with the available platforms listed. */
int ks_index_select_platform(const struct ks_manifest *index, const char *os, const char *arch,
                             const char *variant, const struct ks_descriptor **ret,
                             struct ks_error **err);

struct ks_healthcheck {
    const char **test; /* NULL-terminated; NULL when absent */
    int64_t interval;  /* nanoseconds; 0 = inherit the default */
    int64_t timeout;
    int64_t start_period;
    int64_t start_interval;
    int64_t retries;
};

struct ks_history {
    const char *created; /* RFC 3339, checked; NULL when absent */
    const char *created_by;
    const char *author;
    const char *comment;
    bool empty_layer;
};

struct ks_image_config {
    json_object *json; /* the whole document, owned by the struct, kept for inspect */
    const char *architecture;
    const char *os;
    const char *variant;
    const char *os_version;
    const char **os_features;
    const char *created;  /* RFC 3339, checked; NULL when absent */
    int64_t created_unix; /* seconds since the epoch, valid when created is set */
    const char *author;

    /* "config"; the string vectors are NULL-terminated and NULL when absent, so that an
     * absent Cmd ("inherit") differs from an empty one. */
    const char *user;
    const char **exposed_ports; /* the keys of ExposedPorts: "80/tcp" */
    const char **env;           /* KEY=VALUE */
    const char **entrypoint;
    const char **cmd;
    const char **volumes; /* the keys of Volumes */
    const char *working_dir;
    struct ks_kv *labels;
    size_t n_labels;
    const char *stop_signal;
    struct ks_healthcheck *healthcheck; /* NULL when absent */
    bool args_escaped;
    const char **on_build;
    const char **shell;

    const char **diff_ids; /* rootfs.diff_ids, checked digests, NULL-terminated */
    size_t n_diff_ids;
    struct ks_history *history;
    size_t n_history;
    /* History is not empty and its non-empty entries do not number the diff_ids: the history
     * cannot be matched to layers (docker history shows it unmatched), but the image runs. */
    bool history_mismatch;
};

/* Parses and checks an image config of len bytes (at most KS_IMAGE_CONFIG_MAX_SIZE). *ret is
 * owned by the caller (ks_image_config_free). */
int ks_image_config_parse(const char *buf, size_t len, struct ks_image_config **ret,
                          struct ks_error **err);
void ks_image_config_free(struct ks_image_config *c);
KS_DEFINE_CLEANUP(struct ks_image_config *, ks_image_config_free)
#define _cleanup_image_config_ _cleanup_(ks_image_config_free_p)
