#include "manifest.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/clock.h"
#include "../base/json.h"
#include "../base/schema.h"
#include "ref.h"

/* ---- media types ---- */

enum media_class {
    C_NONE = 0,
    C_MANIFEST,
    C_INDEX,
    C_SCHEMA1,
    C_CONFIG,
    C_LAYER,
    C_OTHER,
};

static const struct media_info {
    const char *name;
    enum media_class cls;
    enum ks_layer_compression compression;
    bool foreign;
} media_types[KS_MEDIA__MAX] = {
#define M(n, c)                                                                                    \
    {                                                                                              \
        .name = n, .cls = c                                                                        \
    }
#define L(n, comp, frgn)                                                                           \
    {                                                                                              \
        .name = n, .cls = C_LAYER, .compression = comp, .foreign = frgn                            \
    }
    [KS_MEDIA_OCI_MANIFEST] = M("application/vnd.oci.image.manifest.v1+json", C_MANIFEST),
    [KS_MEDIA_OCI_INDEX] = M("application/vnd.oci.image.index.v1+json", C_INDEX),
    [KS_MEDIA_DOCKER_MANIFEST] =
        M("application/vnd.docker.distribution.manifest.v2+json", C_MANIFEST),
    [KS_MEDIA_DOCKER_MANIFEST_LIST] =
        M("application/vnd.docker.distribution.manifest.list.v2+json", C_INDEX),
    [KS_MEDIA_DOCKER_SCHEMA1] =
        M("application/vnd.docker.distribution.manifest.v1+json", C_SCHEMA1),
    [KS_MEDIA_DOCKER_SCHEMA1_SIGNED] =
        M("application/vnd.docker.distribution.manifest.v1+prettyjws", C_SCHEMA1),
    [KS_MEDIA_OCI_CONFIG] = M("application/vnd.oci.image.config.v1+json", C_CONFIG),
    [KS_MEDIA_DOCKER_CONFIG] = M("application/vnd.docker.container.image.v1+json", C_CONFIG),
    [KS_MEDIA_OCI_LAYER] = L("application/vnd.oci.image.layer.v1.tar", KS_COMPRESSION_NONE, false),
    [KS_MEDIA_OCI_LAYER_GZIP] =
        L("application/vnd.oci.image.layer.v1.tar+gzip", KS_COMPRESSION_GZIP, false),
    [KS_MEDIA_OCI_LAYER_ZSTD] =
        L("application/vnd.oci.image.layer.v1.tar+zstd", KS_COMPRESSION_ZSTD, false),
    [KS_MEDIA_OCI_LAYER_NONDIST] =
        L("application/vnd.oci.image.layer.nondistributable.v1.tar", KS_COMPRESSION_NONE, true),
    [KS_MEDIA_OCI_LAYER_NONDIST_GZIP] = L(
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", KS_COMPRESSION_GZIP, true),
    [KS_MEDIA_OCI_LAYER_NONDIST_ZSTD] = L(
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", KS_COMPRESSION_ZSTD, true),
    [KS_MEDIA_DOCKER_LAYER_GZIP] =
        L("application/vnd.docker.image.rootfs.diff.tar.gzip", KS_COMPRESSION_GZIP, false),
    [KS_MEDIA_DOCKER_LAYER_FOREIGN_GZIP] =
        L("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", KS_COMPRESSION_GZIP, true),
    [KS_MEDIA_OCI_EMPTY] = M("application/vnd.oci.empty.v1+json", C_OTHER),
#undef M
#undef L
};

enum ks_media_type ks_media_type_from_string(const char *s)
{
    if (s == NULL)
        return KS_MEDIA_UNKNOWN;
    for (size_t i = 1; i < KS_MEDIA__MAX; i++)
        if (strcmp(s, media_types[i].name) == 0)
            return (enum ks_media_type)i;
    return KS_MEDIA_UNKNOWN;
}

static enum media_class media_class(enum ks_media_type t)
{
    return t > KS_MEDIA_UNKNOWN && t < KS_MEDIA__MAX ? media_types[t].cls : C_NONE;
}

const char *ks_media_type_name(enum ks_media_type t)
{
    return media_class(t) != C_NONE ? media_types[t].name : NULL;
}

bool ks_media_type_is_manifest(enum ks_media_type t)
{
    return media_class(t) == C_MANIFEST;
}

bool ks_media_type_is_index(enum ks_media_type t)
{
    return media_class(t) == C_INDEX;
}

bool ks_media_type_is_config(enum ks_media_type t)
{
    return media_class(t) == C_CONFIG;
}

bool ks_media_type_is_layer(enum ks_media_type t)
{
    return media_class(t) == C_LAYER;
}

bool ks_media_type_is_foreign(enum ks_media_type t)
{
    return media_class(t) == C_LAYER && media_types[t].foreign;
}

enum ks_layer_compression ks_media_type_compression(enum ks_media_type t)
{
    return media_class(t) == C_LAYER ? media_types[t].compression : KS_COMPRESSION_NONE;
}

static int oom(struct ks_error **err, const char *doc)
{
    return ks_error_set(err, ENOMEM, "%s", doc);
}

/* ---- string rules ---- */

static bool is_restricted_name(const char *s, size_t len)
{
    /* RFC 6838 restricted-name: 1 to 127 characters, starting with a letter or digit. */
    static const char chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789!#$&-^_.+";
    if (len == 0 || len > 127 || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0' || !strchr(chars, s[i]))
            return false;
    return true;
}

static bool is_media_type(const char *s, size_t len)
{
    const char *slash = strchr(s, '/');
    return slash && is_restricted_name(s, (size_t)(slash - s)) &&
           is_restricted_name(slash + 1, strlen(slash + 1));
}

static bool is_url(const char *s, size_t len)
{
    size_t n = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
    if (n == 0 || s[n] == '\0' || s[n] == '/')
        return false;
    for (; s[n]; n++)
        if ((unsigned char)s[n] <= 0x20 || s[n] == 0x7f)
            return false;
    return true;
}

static bool parse_digits(const char **s, size_t count, unsigned *ret)
{
    unsigned n = 0;
    for (size_t i = 0; i < count; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9')
            return false;
        n = n * 10 + (unsigned)(c - '0');
    }
    *s += count;
    *ret = n;
    return true;
}

static bool parse_port_number(const char **s)
{
    size_t n = strspn(*s, "0123456789");
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    if (!parse_digits(s, n, &v))
        return false;
    return v <= 65535;
}

static bool is_port(const char *s, size_t len)
{
    if (!parse_port_number(&s))
        return false;
    if (*s == '-') {
        s++;
        if (!parse_port_number(&s))
            return false;
    }
    if (*s == '\0')
        return true;
    return strcmp(s, "/tcp") == 0 || strcmp(s, "/udp") == 0 || strcmp(s, "/sctp") == 0;
}

static bool is_signal(const char *s, size_t len)
{
    static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-";
    return len > 0 && len <= 32 && strspn(s, chars) == len;
}

/* ---- the schemas ---- */

static bool is_digest(const char *s, size_t len)
{
    return ks_is_digest(s);
}

static bool is_rfc3339(const char *s, size_t len)
{
    int64_t t;
    return ks_rfc3339_parse_strict(s, &t);
}

static const struct ks_schema_format format_digest = {
    .valid = is_digest,
    .what = "digest",
    .hint = " (sha256: with 64 or sha512: with 128 lower-case hex digits expected)"};
static const struct ks_schema_format format_media_type = {.valid = is_media_type,
                                                          .what = "media type"};
static const struct ks_schema_format format_url = {
    .valid = is_url, .what = "URL", .hint = " (http or https expected)"};
static const struct ks_schema_format format_rfc3339 = {.valid = is_rfc3339,
                                                       .what = "RFC 3339 time"};
static const struct ks_schema_format format_port = {.valid = is_port, .what = "port"};
static const struct ks_schema_format format_signal = {.valid = is_signal, .what = "signal"};

static int check_descriptor(json_object *v, struct ks_schema_path *p, struct ks_error **err);
static int check_healthcheck(json_object *v, struct ks_schema_path *p, struct ks_error **err);

static const struct ks_schema_field elem_url = {.kind = KS_SCHEMA_STRING, .format = &format_url};
static const struct ks_schema_field elem_env = {.kind = KS_SCHEMA_STRING, .rule = KS_RULE_ENV};
static const struct ks_schema_field elem_digest = {.kind = KS_SCHEMA_STRING,
                                                   .format = &format_digest};
static const struct ks_schema_field elem_any_object = {.kind = KS_SCHEMA_OBJECT};

static const struct ks_schema_field platform_fields[] = {
    F_STR("architecture", .required = true, .rule = KS_RULE_NONEMPTY),
    F_STR("os", .required = true, .rule = KS_RULE_NONEMPTY),
    F_STR("variant"),
    F_STR("os.version"),
    F_STRV("os.features"),
    F_STRV("features"),
    F_END,
};

/* A descriptor's size is bounded by what it points at: a manifest or config is read into
 * memory, a layer is streamed. */
#define DESCRIPTOR_FIELDS(limit)                                                                   \
    F_STR("mediaType", .required = true, .format = &format_media_type),                            \
        F_STR("digest", .required = true, .format = &format_digest),                               \
        F_INT("size", 0, limit, .required = true), F_ARR("urls", &elem_url),                       \
        F_MAP("annotations", &ks_schema_elem_string),                                              \
        F_STR("artifactType", .format = &format_media_type), F_STR("data")

static const struct ks_schema_field config_desc_fields[] = {
    DESCRIPTOR_FIELDS((int64_t)KS_IMAGE_CONFIG_MAX_SIZE),
    F_END,
};
static const struct ks_schema_field layer_desc_fields[] = {
    DESCRIPTOR_FIELDS(KS_LAYER_MAX_SIZE),
    F_END,
};
static const struct ks_schema_field subject_desc_fields[] = {
    DESCRIPTOR_FIELDS((int64_t)KS_MANIFEST_MAX_SIZE),
    F_END,
};
static const struct ks_schema_field manifest_desc_fields[] = {
    DESCRIPTOR_FIELDS((int64_t)KS_MANIFEST_MAX_SIZE),
    F_OBJ("platform", platform_fields),
    F_END,
};

static const struct ks_schema_field elem_layer = {
    .kind = KS_SCHEMA_OBJECT, .fields = layer_desc_fields, .check = check_descriptor};
static const struct ks_schema_field elem_manifest = {
    .kind = KS_SCHEMA_OBJECT, .fields = manifest_desc_fields, .check = check_descriptor};

static const struct ks_schema_field image_manifest_fields[] = {
    F_INT("schemaVersion", INT64_MIN, INT64_MAX, .required = true),
    F_STR("mediaType", .format = &format_media_type),
    F_STR("artifactType", .format = &format_media_type),
    F_OBJ("config", config_desc_fields, .required = true, .check = check_descriptor),
    F_ARR("layers", &elem_layer, .required = true, .max_items = KS_MANIFEST_MAX_ITEMS),
    F_OBJ("subject", subject_desc_fields, .check = check_descriptor),
    F_MAP("annotations", &ks_schema_elem_string),
    F_END,
};

static const struct ks_schema_field index_fields[] = {
    F_INT("schemaVersion", INT64_MIN, INT64_MAX, .required = true),
    F_STR("mediaType", .format = &format_media_type),
    F_STR("artifactType", .format = &format_media_type),
    F_ARR("manifests", &elem_manifest, .required = true, .max_items = KS_MANIFEST_MAX_ITEMS),
    F_OBJ("subject", subject_desc_fields, .check = check_descriptor),
    F_MAP("annotations", &ks_schema_elem_string),
    F_END,
};

static const struct ks_schema_field healthcheck_fields[] = {
    F_STRV("Test"),
    F_INT("Interval", 0, INT64_MAX),
    F_INT("Timeout", 0, INT64_MAX),
    F_INT("StartPeriod", 0, INT64_MAX),
    F_INT("StartInterval", 0, INT64_MAX),
    F_INT("Retries", 0, INT32_MAX),
    F_END,
};

/* Docker writes more (Hostname, Image, AttachStdin …): they are left alone. */
static const struct ks_schema_field container_config_fields[] = {
    F_STR("User"),
    F_MAP("ExposedPorts", &elem_any_object, .key_format = &format_port),
    F_ARR("Env", &elem_env),
    F_STRV("Entrypoint"),
    F_STRV("Cmd"),
    F_MAP("Volumes", &elem_any_object, .key_rule = KS_RULE_NONEMPTY),
    F_STR("WorkingDir"),
    F_MAP("Labels", &ks_schema_elem_string),
    F_STR("StopSignal", .format = &format_signal),
    F_OBJ("Healthcheck", healthcheck_fields, .check = check_healthcheck),
    F_BOOL("ArgsEscaped"),
    F_STRV("OnBuild"),
    F_STRV("Shell"),
    F_END,
};

static const char *const rootfs_types[] = {"layers", NULL};

static const struct ks_schema_field rootfs_fields[] = {
    F_STR("type", .required = true, .values = rootfs_types),
    F_ARR("diff_ids", &elem_digest, .required = true, .max_items = KS_MANIFEST_MAX_ITEMS),
    F_END,
};

static const struct ks_schema_field history_fields[] = {
    F_STR("created", .format = &format_rfc3339),
    F_STR("created_by"),
    F_STR("author"),
    F_STR("comment"),
    F_BOOL("empty_layer"),
    F_END,
};

static const struct ks_schema_field image_config_fields[] = {
    F_STR("architecture", .required = true, .rule = KS_RULE_NONEMPTY),
    F_STR("os", .required = true, .rule = KS_RULE_NONEMPTY),
    F_STR("variant"),
    F_STR("os.version"),
    F_STRV("os.features"),
    F_STR("created", .format = &format_rfc3339),
    F_STR("author"),
    F_OBJ("config", container_config_fields),
    F_OBJ("rootfs", rootfs_fields, .required = true),
    F_ARR("history", F_ELEM_OBJ(history_fields)),
    F_END,
};

static int base64_value(char c)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *at = c ? strchr(alphabet, c) : NULL;
    return at ? (int)(at - alphabet) : -1;
}

/* Embedded data is the blob itself: it must be standard base64 of exactly size bytes. */
static int check_descriptor(json_object *v, struct ks_schema_path *p, struct ks_error **err)
{
    const char *data = ks_json_str(v, "data");
    if (data == NULL)
        return 0;
    size_t len = strlen(data), pad = 0;
    bool ok = len % 4 == 0;
    for (size_t i = 0; ok && i < len; i++) {
        if (data[i] == '=' && i + 2 >= len && (i + 1 == len || data[i + 1] == '='))
            pad++;
        else
            ok = base64_value(data[i]) >= 0 && pad == 0;
    }
    size_t old = ks_schema_push_key(p, "data");
    int r = 0;
    if (!ok)
        r = ks_schema_fail(err, p, "invalid base64");
    else if ((int64_t)(len / 4 * 3 - pad) != ks_json_int(v, "size", -1))
        r = ks_schema_fail(err, p, "holds %zu bytes, but size says %" PRId64, len / 4 * 3 - pad,
                           ks_json_int(v, "size", -1));
    ks_schema_pop(p, old);
    return r;
}

static int check_healthcheck(json_object *v, struct ks_schema_path *p, struct ks_error **err)
{
    static const char *const kinds[] = {"NONE", "CMD", "CMD-SHELL", NULL};
    json_object *test = ks_json_get_type(v, "Test", json_type_array);
    if (test == NULL || json_object_array_length(test) == 0)
        return 0;
    const char *first = json_object_get_string(json_object_array_get_idx(test, 0));
    for (const char *const *k = kinds; *k; k++)
        if (strcmp(first, *k) == 0)
            return 0;
    char q[80];
    size_t old = ks_schema_push_key(p, "Test");
    ks_schema_push_index(p, 0);
    int r =
        ks_schema_fail(err, p, "unknown health check kind `%s` (NONE, CMD or CMD-SHELL expected)",
                       ks_schema_quote(q, sizeof(q), first, strlen(first)));
    ks_schema_pop(p, old);
    return r;
}

/* ---- building the structs: every string is borrowed from the document ---- */

static int borrow_strv(json_object *a, const char ***ret)
{
    *ret = NULL;
    if (a == NULL || !json_object_is_type(a, json_type_array))
        return 0;
    size_t n = json_object_array_length(a);
    const char **v = calloc(n + 1, sizeof(char *));
    if (v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        v[i] = json_object_get_string(json_object_array_get_idx(a, i));
    *ret = v;
    return 0;
}

static int borrow_keys(json_object *map, const char ***ret)
{
    *ret = NULL;
    if (map == NULL || !json_object_is_type(map, json_type_object))
        return 0;
    const char **v = calloc((size_t)json_object_object_length(map) + 1, sizeof(char *));
    if (v == NULL)
        return -ENOMEM;
    size_t n = 0;
    json_object_object_foreach(map, key, val)
    {
        (void)val;
        v[n++] = key;
    }
    *ret = v;
    return 0;
}

static int borrow_kv(json_object *map, struct ks_kv **ret, size_t *ret_n)
{
    *ret = NULL;
    *ret_n = 0;
    if (map == NULL || !json_object_is_type(map, json_type_object) ||
        json_object_object_length(map) == 0)
        return 0;
    struct ks_kv *v = calloc((size_t)json_object_object_length(map), sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    size_t n = 0;
    json_object_object_foreach(map, key, val)
    {
        v[n].key = key;
        v[n++].value = json_object_get_string(val);
    }
    *ret = v;
    *ret_n = n;
    return 0;
}

static void descriptor_clear(struct ks_descriptor *d)
{
    free(d->urls);
    free(d->annotations);
    free(d->platform.os_features);
}

static int descriptor_fill(json_object *o, struct ks_descriptor *d)
{
    d->media_type = ks_json_str(o, "mediaType");
    d->type = ks_media_type_from_string(d->media_type);
    d->digest = ks_json_str(o, "digest");
    d->size = ks_json_int(o, "size", 0);
    d->artifact_type = ks_json_str(o, "artifactType");
    if (borrow_strv(ks_json_get(o, "urls"), &d->urls) < 0 ||
        borrow_kv(ks_json_get(o, "annotations"), &d->annotations, &d->n_annotations) < 0)
        return -ENOMEM;
    json_object *plat = ks_json_get_type(o, "platform", json_type_object);
    if (plat) {
        d->has_platform = true;
        d->platform.architecture = ks_json_str(plat, "architecture");
        d->platform.os = ks_json_str(plat, "os");
        d->platform.variant = ks_json_str(plat, "variant");
        d->platform.os_version = ks_json_str(plat, "os.version");
        if (borrow_strv(ks_json_get(plat, "os.features"), &d->platform.os_features) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int descriptors_fill(json_object *a, struct ks_descriptor **ret, size_t *ret_n)
{
    size_t n = a ? json_object_array_length(a) : 0;
    *ret_n = 0;
    *ret = calloc(n ? n : 1, sizeof(struct ks_descriptor));
    if (*ret == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        (*ret_n)++;
        if (descriptor_fill(json_object_array_get_idx(a, i), &(*ret)[i]) < 0)
            return -ENOMEM;
    }
    return 0;
}

void ks_manifest_free(struct ks_manifest *m)
{
    if (m == NULL)
        return;
    descriptor_clear(&m->config);
    for (size_t i = 0; i < m->n_layers; i++)
        descriptor_clear(&m->layers[i]);
    free(m->layers);
    for (size_t i = 0; i < m->n_manifests; i++)
        descriptor_clear(&m->manifests[i]);
    free(m->manifests);
    if (m->subject)
        descriptor_clear(m->subject);
    free(m->subject);
    free(m->annotations);
    if (m->json)
        json_object_put(m->json);
    free(m);
}

/* ---- manifests and indexes ---- */

/* Registries answer with parameters ("; charset=utf-8") and, for plain files, generic types;
 * media type names are case-insensitive in HTTP. Returns false when s is too long to be any. */
static bool normalize_content_type(const char *s, char *buf, size_t size)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strcspn(s, ";");
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= size)
        return false;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)tolower((unsigned char)s[i]);
    buf[n] = '\0';
    return true;
}

static bool is_generic_type(const char *s)
{
    static const char *const generic[] = {"", "application/json", "text/plain",
                                          "application/octet-stream", NULL};
    for (const char *const *g = generic; *g; g++)
        if (strcmp(s, *g) == 0)
            return true;
    return false;
}

#define SCHEMA1_MSG "schema 1 manifests are not supported"

/* The content type's verdict: KS_MEDIA_UNKNOWN for "look at the document". */
static int content_type_kind(const char *content_type, struct ks_schema_path *p,
                             enum ks_media_type *ret, struct ks_error **err)
{
    char buf[256], q[80];
    *ret = KS_MEDIA_UNKNOWN;
    if (content_type == NULL)
        return 0;
    if (!normalize_content_type(content_type, buf, sizeof(buf)))
        return ks_schema_fail_errno(
            err, ENOTSUP, p, "unsupported content type `%s`",
            ks_schema_quote(q, sizeof(q), content_type, strlen(content_type)));
    if (is_generic_type(buf))
        return 0;
    enum ks_media_type t = ks_media_type_from_string(buf);
    switch (media_class(t)) {
    case C_MANIFEST:
    case C_INDEX:
        *ret = t;
        return 0;
    case C_SCHEMA1:
        return ks_schema_fail_errno(err, ENOTSUP, p, SCHEMA1_MSG);
    case C_NONE:
        return ks_schema_fail_errno(err, ENOTSUP, p, "unsupported content type `%s`",
                                    ks_schema_quote(q, sizeof(q), buf, strlen(buf)));
    default:
        return ks_schema_fail_errno(err, ENOTSUP, p, "content type `%s` is not a manifest or index",
                                    ks_schema_quote(q, sizeof(q), buf, strlen(buf)));
    }
}

/* The document's own verdict, from mediaType, schemaVersion and, without a mediaType, its shape
 * (as the OCI spec permits for image manifests and indexes written before 1.1). */
static int document_kind(json_object *root, enum ks_media_type ct, struct ks_schema_path *p,
                         enum ks_media_type *ret, struct ks_error **err)
{
    char q[80];
    json_object *mt = ks_json_get(root, "mediaType");
    const char *mts = NULL;
    enum ks_media_type t = KS_MEDIA_UNKNOWN;
    if (mt) {
        size_t old = ks_schema_push_key(p, "mediaType");
        int r = 0;
        if (!json_object_is_type(mt, json_type_string)) {
            r = ks_schema_fail(err, p, "expected a string");
        } else {
            mts = json_object_get_string(mt);
            t = ks_media_type_from_string(mts);
            if (media_class(t) == C_SCHEMA1)
                r = ks_schema_fail_errno(err, ENOTSUP, p, SCHEMA1_MSG);
            else if (media_class(t) != C_MANIFEST && media_class(t) != C_INDEX)
                r = ks_schema_fail_errno(err, ENOTSUP, p, "unsupported manifest media type `%s`",
                                         ks_schema_quote(q, sizeof(q), mts, strlen(mts)));
            else if (ct != KS_MEDIA_UNKNOWN && ct != t)
                r = ks_schema_fail(err, p, "`%s` does not match the content type `%s`", mts,
                                   ks_media_type_name(ct));
        }
        ks_schema_pop(p, old);
        if (r < 0)
            return r;
    }

    json_object *sv = ks_json_get(root, "schemaVersion");
    size_t old = ks_schema_push_key(p, "schemaVersion");
    int r = 0;
    if (sv == NULL)
        r = ks_schema_fail(err, p, "required but missing");
    else if (!json_object_is_type(sv, json_type_int))
        r = ks_schema_fail(err, p, "expected an integer");
    else if (json_object_get_int64(sv) == 1)
        r = ks_schema_fail_errno(err, ENOTSUP, p, SCHEMA1_MSG);
    else if (json_object_get_int64(sv) != 2)
        r = ks_schema_fail_errno(err, ENOTSUP, p,
                                 "unsupported schema version %" PRId64 " (expected 2)",
                                 json_object_get_int64(sv));
    ks_schema_pop(p, old);
    if (r < 0)
        return r;

    if (t == KS_MEDIA_UNKNOWN)
        t = ct;
    /* Docker's types always carry mediaType; only OCI documents may leave it out. */
    if (mt == NULL && (t == KS_MEDIA_DOCKER_MANIFEST || t == KS_MEDIA_DOCKER_MANIFEST_LIST)) {
        old = ks_schema_push_key(p, "mediaType");
        r = ks_schema_fail(err, p, "required for %s", ks_media_type_name(t));
        ks_schema_pop(p, old);
        return r;
    }

    /* A document that reads as both an index and a manifest is refused whatever it claims to
     * be: another client could take it for the other one. */
    bool has_manifests = ks_json_get(root, "manifests") != NULL;
    bool has_image = ks_json_get(root, "config") != NULL || ks_json_get(root, "layers") != NULL;
    if (has_manifests && has_image)
        return ks_schema_fail(err, p,
                              "ambiguous document: has both `manifests` and `config`/`layers`");
    if (t == KS_MEDIA_UNKNOWN) {
        if (!has_manifests && !has_image)
            return ks_schema_fail(err, p,
                                  "cannot tell the document type: no mediaType, and neither "
                                  "`manifests` nor `config`/`layers`");
        t = has_manifests ? KS_MEDIA_OCI_INDEX : KS_MEDIA_OCI_MANIFEST;
    }
    if (media_class(t) == C_MANIFEST && has_manifests)
        return ks_schema_fail(err, p, "`manifests` is not allowed in an image manifest");
    if (media_class(t) == C_INDEX && has_image)
        return ks_schema_fail(err, p, "`config`/`layers` are not allowed in an index");
    *ret = t;
    return 0;
}

static int fail_at(struct ks_error **err, struct ks_schema_path *p, const char *array, size_t i,
                   const char *key, const char *fmt, const char *value)
{
    char q[80];
    size_t old = ks_schema_push_key(p, array);
    if (i != SIZE_MAX)
        ks_schema_push_index(p, i);
    ks_schema_push_key(p, key);
    int r = ks_schema_fail(err, p, fmt, ks_schema_quote(q, sizeof(q), value, strlen(value)));
    ks_schema_pop(p, old);
    return r;
}

/* What the media types of the parts must be, beyond their syntax. */
static int check_parts(const struct ks_manifest *m, struct ks_schema_path *p, struct ks_error **err)
{
    if (m->kind == KS_MANIFEST_IMAGE) {
        bool image = ks_media_type_is_config(m->config.type);
        if (m->type == KS_MEDIA_DOCKER_MANIFEST && !image)
            return fail_at(err, p, "config", SIZE_MAX, "mediaType",
                           "`%s` is not an image config media type", m->config.media_type);
        /* With another config it is an OCI artifact, whose layers can be anything. */
        for (size_t i = 0; image && i < m->n_layers; i++)
            if (!ks_media_type_is_layer(m->layers[i].type))
                return fail_at(err, p, "layers", i, "mediaType", "`%s` is not a layer media type",
                               m->layers[i].media_type);
        return 0;
    }
    for (size_t i = 0; i < m->n_manifests; i++) {
        enum media_class c = media_class(m->manifests[i].type);
        /* An OCI index may also list artifacts; a Docker list only manifests. */
        bool ok = c == C_MANIFEST || c == C_INDEX ||
                  ((c == C_NONE || c == C_OTHER) && m->type == KS_MEDIA_OCI_INDEX);
        if (!ok)
            return fail_at(err, p, "manifests", i, "mediaType", "`%s` is not a manifest media type",
                           m->manifests[i].media_type);
    }
    return 0;
}

static int manifest_fill(struct ks_manifest *m)
{
    json_object *root = m->json;
    m->artifact_type = ks_json_str(root, "artifactType");
    if (borrow_kv(ks_json_get(root, "annotations"), &m->annotations, &m->n_annotations) < 0)
        return -ENOMEM;
    json_object *subject = ks_json_get_type(root, "subject", json_type_object);
    if (subject) {
        m->subject = calloc(1, sizeof(*m->subject));
        if (m->subject == NULL || descriptor_fill(subject, m->subject) < 0)
            return -ENOMEM;
    }
    if (m->kind == KS_MANIFEST_INDEX)
        return descriptors_fill(ks_json_get(root, "manifests"), &m->manifests, &m->n_manifests);
    if (descriptor_fill(ks_json_get(root, "config"), &m->config) < 0)
        return -ENOMEM;
    return descriptors_fill(ks_json_get(root, "layers"), &m->layers, &m->n_layers);
}

int ks_manifest_parse(const char *buf, size_t len, const char *content_type,
                      struct ks_manifest **ret, struct ks_error **err)
{
    struct ks_schema_path p = {.doc = "manifest"};
    if (len > KS_MANIFEST_MAX_SIZE)
        return ks_error_set_plain(err, EFBIG, "manifest: %zu bytes, larger than the limit of %zu",
                                  len, KS_MANIFEST_MAX_SIZE);
    enum ks_media_type ct = KS_MEDIA_UNKNOWN, t = KS_MEDIA_UNKNOWN;
    int r = content_type_kind(content_type, &p, &ct, err);
    if (r < 0)
        return r;

    _cleanup_json_ json_object *root = NULL;
    r = ks_json_parse(buf, len, &root, err);
    if (r < 0)
        return ks_error_wrap(err, "manifest");
    if (!json_object_is_type(root, json_type_object))
        return ks_schema_fail(err, &p, "expected an object");
    r = document_kind(root, ct, &p, &t, err);
    if (r < 0)
        return r;

    bool index = media_class(t) == C_INDEX;
    const struct ks_schema_field schema = {.kind = KS_SCHEMA_OBJECT,
                                           .fields = index ? index_fields : image_manifest_fields};
    r = ks_schema_check(&schema, root, &p, err);
    if (r < 0)
        return r;

    _cleanup_(ks_manifest_free_p) struct ks_manifest *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return oom(err, "manifest");
    m->json = TAKE_PTR(root);
    m->kind = index ? KS_MANIFEST_INDEX : KS_MANIFEST_IMAGE;
    m->type = t;
    m->media_type = ks_media_type_name(t);
    if (manifest_fill(m) < 0)
        return oom(err, "manifest");
    r = check_parts(m, &p, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(m);
    return 0;
}

/* ---- platform selection ---- */

struct platform_key {
    char os[32];
    char arch[32];
    char variant[16];
};

static void lower_copy(char *dst, size_t size, const char *s)
{
    size_t n = 0;
    for (; s && s[n] && n + 1 < size; n++)
        dst[n] = (char)tolower((unsigned char)s[n]);
    dst[n] = '\0';
}

/* containerd's platforms.Normalize, for the architectures Docker publishes images for. */
static void platform_normalize(const char *os, const char *arch, const char *variant,
                               struct platform_key *k)
{
    static const struct {
        const char *from, *arch, *variant;
    } aliases[] = {
        {"x86_64", "amd64", NULL}, {"x86-64", "amd64", NULL}, {"aarch64", "arm64", NULL},
        {"armhf", "arm", "v7"},    {"armel", "arm", "v6"},    {"i386", "386", NULL},
        {"i686", "386", NULL},     {"x86", "386", NULL},
    };
    char v[16];
    lower_copy(k->os, sizeof(k->os), os);
    lower_copy(k->arch, sizeof(k->arch), arch);
    lower_copy(v, sizeof(v), variant);
    for (size_t i = 0; i < KS_ELEMENTSOF(aliases); i++) {
        if (strcmp(k->arch, aliases[i].from) == 0) {
            snprintf(k->arch, sizeof(k->arch), "%s", aliases[i].arch);
            if (aliases[i].variant)
                snprintf(v, sizeof(v), "%s", aliases[i].variant);
        }
    }
    /* "8" and "v8" are the same variant; arm64 is v8 and 32-bit arm v7 unless told. */
    bool arm = strcmp(k->arch, "arm") == 0 || strcmp(k->arch, "arm64") == 0;
    if (arm && v[0] >= '0' && v[0] <= '9') {
        memmove(v + 1, v, sizeof(v) - 2);
        v[0] = 'v';
        v[sizeof(v) - 1] = '\0';
    }
    if (strcmp(k->arch, "arm64") == 0 && v[0] == '\0')
        snprintf(v, sizeof(v), "v8");
    if (strcmp(k->arch, "arm") == 0 && v[0] == '\0')
        snprintf(v, sizeof(v), "v7");
    if (strcmp(k->arch, "amd64") == 0 && strcmp(v, "v1") == 0)
        v[0] = '\0';
    snprintf(k->variant, sizeof(k->variant), "%s", v);
}

/* "v7" → 7, "" → dflt, anything else → -1. */
static int variant_level(const char *v, int dflt)
{
    if (v[0] == '\0')
        return dflt;
    if (v[0] != 'v' || v[1] < '1' || v[1] > '9' || v[2] != '\0')
        return -1;
    return v[1] - '0';
}

/* How well a candidate fits: 0 is exact, larger is a worse fallback, -1 no match. */
static int platform_rank(const struct platform_key *want, const struct platform_key *have)
{
    if (strcmp(want->os, have->os) != 0)
        return -1;
    if (strcmp(want->arch, have->arch) == 0) {
        if (strcmp(want->variant, have->variant) == 0)
            return 0;
        /* Older levels run on newer ones: arm down to v5, arm64 v9 takes v8, and x86-64's
         * micro-architecture levels (none is v1). */
        int lowest = strcmp(want->arch, "arm") == 0     ? 5
                     : strcmp(want->arch, "arm64") == 0 ? 8
                     : strcmp(want->arch, "amd64") == 0 ? 1
                                                        : -1;
        if (lowest < 0)
            return -1;
        int w = variant_level(want->variant, 1), h = variant_level(have->variant, 1);
        if (w < 0 || h < 0 || h > w || h < lowest)
            return -1;
        return w - h;
    }
    /* A 64-bit ARMv8 host runs 32-bit arm images, after every arm64 one (many ARMv9 cores
     * dropped AArch32). */
    if (strcmp(want->arch, "arm64") == 0 && strcmp(want->variant, "v8") == 0 &&
        strcmp(have->arch, "arm") == 0 && strcmp(want->os, "linux") == 0) {
        int h = variant_level(have->variant, 7);
        return h >= 5 && h <= 8 ? 10 + (8 - h) : -1;
    }
    return -1;
}

static void append_platform(char *buf, size_t size, size_t *len, const struct ks_platform *pl)
{
    char q1[40], q2[40], q3[40];
    if (*len >= size - 1)
        return;
    int n = snprintf(buf + *len, size - *len, "%s%s/%s%s%s", *len ? ", " : "",
                     ks_schema_quote(q1, sizeof(q1), pl->os, strlen(pl->os)),
                     ks_schema_quote(q2, sizeof(q2), pl->architecture, strlen(pl->architecture)),
                     pl->variant ? "/" : "",
                     pl->variant ? ks_schema_quote(q3, sizeof(q3), pl->variant, strlen(pl->variant))
                                 : "");
    if (n > 0)
        *len = *len + (size_t)n >= size ? size - 1 : *len + (size_t)n;
}

int ks_index_select_platform(const struct ks_manifest *index, const char *os, const char *arch,
                             const char *variant, const struct ks_descriptor **ret,
                             struct ks_error **err)
{
    if (index == NULL || index->kind != KS_MANIFEST_INDEX)
        return ks_error_msg(err, "select platform: not an index");
    if (os == NULL || arch == NULL || os[0] == '\0' || arch[0] == '\0')
        return ks_error_msg(err, "select platform: os and architecture are required");
    struct platform_key want, have;
    platform_normalize(os, arch, variant, &want);

    const struct ks_descriptor *best = NULL;
    int best_rank = -1;
    char avail[1024] = "";
    size_t avail_len = 0;
    for (size_t i = 0; i < index->n_manifests; i++) {
        const struct ks_descriptor *d = &index->manifests[i];
        enum media_class c = media_class(d->type);
        if (!d->has_platform || (c != C_MANIFEST && c != C_INDEX))
            continue;
        /* BuildKit's attestation manifests say unknown/unknown: never a choice. */
        if (strcmp(d->platform.os, "unknown") == 0)
            continue;
        append_platform(avail, sizeof(avail), &avail_len, &d->platform);
        platform_normalize(d->platform.os, d->platform.architecture, d->platform.variant, &have);
        int rank = platform_rank(&want, &have);
        if (rank >= 0 && (best == NULL || rank < best_rank)) {
            best = d;
            best_rank = rank;
        }
    }
    if (best == NULL)
        return ks_error_set_plain(err, ENOENT,
                                  "no matching manifest for %s/%s%s%s in the manifest list "
                                  "entries (available: %s)",
                                  want.os, want.arch, want.variant[0] ? "/" : "", want.variant,
                                  avail_len ? avail : "none");
    *ret = best;
    return 0;
}

/* ---- image configs ---- */

void ks_image_config_free(struct ks_image_config *c)
{
    if (c == NULL)
        return;
    free(c->os_features);
    free(c->exposed_ports);
    free(c->env);
    free(c->entrypoint);
    free(c->cmd);
    free(c->volumes);
    free(c->labels);
    if (c->healthcheck)
        free(c->healthcheck->test);
    free(c->healthcheck);
    free(c->on_build);
    free(c->shell);
    free(c->diff_ids);
    free(c->history);
    if (c->json)
        json_object_put(c->json);
    free(c);
}

static int container_config_fill(struct ks_image_config *c, json_object *cfg)
{
    c->user = ks_json_str(cfg, "User");
    c->working_dir = ks_json_str(cfg, "WorkingDir");
    c->stop_signal = ks_json_str(cfg, "StopSignal");
    c->args_escaped = ks_json_bool(cfg, "ArgsEscaped", false);
    if (borrow_keys(ks_json_get(cfg, "ExposedPorts"), &c->exposed_ports) < 0 ||
        borrow_strv(ks_json_get(cfg, "Env"), &c->env) < 0 ||
        borrow_strv(ks_json_get(cfg, "Entrypoint"), &c->entrypoint) < 0 ||
        borrow_strv(ks_json_get(cfg, "Cmd"), &c->cmd) < 0 ||
        borrow_keys(ks_json_get(cfg, "Volumes"), &c->volumes) < 0 ||
        borrow_kv(ks_json_get(cfg, "Labels"), &c->labels, &c->n_labels) < 0 ||
        borrow_strv(ks_json_get(cfg, "OnBuild"), &c->on_build) < 0 ||
        borrow_strv(ks_json_get(cfg, "Shell"), &c->shell) < 0)
        return -ENOMEM;
    json_object *hc = ks_json_get_type(cfg, "Healthcheck", json_type_object);
    if (hc) {
        c->healthcheck = calloc(1, sizeof(*c->healthcheck));
        if (c->healthcheck == NULL ||
            borrow_strv(ks_json_get(hc, "Test"), &c->healthcheck->test) < 0)
            return -ENOMEM;
        c->healthcheck->interval = ks_json_int(hc, "Interval", 0);
        c->healthcheck->timeout = ks_json_int(hc, "Timeout", 0);
        c->healthcheck->start_period = ks_json_int(hc, "StartPeriod", 0);
        c->healthcheck->start_interval = ks_json_int(hc, "StartInterval", 0);
        c->healthcheck->retries = ks_json_int(hc, "Retries", 0);
    }
    return 0;
}

static int image_config_fill(struct ks_image_config *c)
{
    json_object *root = c->json;
    c->architecture = ks_json_str(root, "architecture");
    c->os = ks_json_str(root, "os");
    c->variant = ks_json_str(root, "variant");
    c->os_version = ks_json_str(root, "os.version");
    c->author = ks_json_str(root, "author");
    c->created = ks_json_str(root, "created");
    if (c->created && !ks_rfc3339_parse_strict(c->created, &c->created_unix))
        return -EINVAL; /* checked by the schema */
    if (borrow_strv(ks_json_get(root, "os.features"), &c->os_features) < 0)
        return -ENOMEM;
    int r = container_config_fill(c, ks_json_get_type(root, "config", json_type_object));
    if (r < 0)
        return r;

    json_object *diff_ids = ks_json_get(ks_json_get(root, "rootfs"), "diff_ids");
    if (borrow_strv(diff_ids, &c->diff_ids) < 0)
        return -ENOMEM;
    c->n_diff_ids = json_object_array_length(diff_ids);

    json_object *history = ks_json_get_type(root, "history", json_type_array);
    size_t n = history ? json_object_array_length(history) : 0, layers = 0;
    if (n) {
        c->history = calloc(n, sizeof(*c->history));
        if (c->history == NULL)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_object *h = json_object_array_get_idx(history, i);
        struct ks_history *e = &c->history[i];
        e->created = ks_json_str(h, "created");
        e->created_by = ks_json_str(h, "created_by");
        e->author = ks_json_str(h, "author");
        e->comment = ks_json_str(h, "comment");
        e->empty_layer = ks_json_bool(h, "empty_layer", false);
        layers += !e->empty_layer;
    }
    c->n_history = n;
    c->history_mismatch = n > 0 && layers != c->n_diff_ids;
    return 0;
}

int ks_image_config_parse(const char *buf, size_t len, struct ks_image_config **ret,
                          struct ks_error **err)
{
    struct ks_schema_path p = {.doc = "image config"};
    if (len > KS_IMAGE_CONFIG_MAX_SIZE)
        return ks_error_set_plain(err, EFBIG,
                                  "image config: %zu bytes, larger than the limit of %zu", len,
                                  KS_IMAGE_CONFIG_MAX_SIZE);
    _cleanup_json_ json_object *root = NULL;
    int r = ks_json_parse(buf, len, &root, err);
    if (r < 0)
        return ks_error_wrap(err, "image config");
    static const struct ks_schema_field schema = {.kind = KS_SCHEMA_OBJECT,
                                                  .fields = image_config_fields};
    r = ks_schema_check(&schema, root, &p, err);
    if (r < 0)
        return r;

    _cleanup_(ks_image_config_free_p) struct ks_image_config *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return oom(err, "image config");
    c->json = TAKE_PTR(root);
    r = image_config_fill(c);
    if (r < 0)
        return r == -ENOMEM ? oom(err, "image config")
                            : ks_schema_fail(err, &p, "inconsistent document");
    *ret = TAKE_PTR(c);
    return 0;
}
