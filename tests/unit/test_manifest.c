/* Image manifests, indexes and configs: real-world-shaped documents of each kind parse into the
 * expected structs; a table of broken ones is refused with a message naming the JSON path;
 * platform selection follows Docker's rules. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/manifest.h"
#include "tap.h"

#define X8(s)  s s s s s s s s
#define HEX(c) X8(X8(c))
#define DA     "sha256:" HEX("a")
#define DB     "sha256:" HEX("b")
#define DC     "sha256:" HEX("c")
#define DD     "sha256:" HEX("d")
#define DE     "sha256:" HEX("e")
#define DF     "sha256:" HEX("f")
#define D512   "sha512:" HEX("0") HEX("1")

#define T_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define T_OCI_INDEX    "application/vnd.oci.image.index.v1+json"
#define T_DOCKER_V2    "application/vnd.docker.distribution.manifest.v2+json"
#define T_DOCKER_LIST  "application/vnd.docker.distribution.manifest.list.v2+json"
#define T_DOCKER_CFG   "application/vnd.docker.container.image.v1+json"
#define T_OCI_CFG      "application/vnd.oci.image.config.v1+json"
#define T_DOCKER_LAYER "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define T_OCI_GZIP     "application/vnd.oci.image.layer.v1.tar+gzip"

/* ---- valid documents ---- */

/* docker.io/library/busybox:1.36 as Docker Hub serves it, shortened, plus BuildKit's
 * attestation entry. */
static const char busybox_index[] =
    "{\n"
    "  \"schemaVersion\": 2,\n"
    "  \"mediaType\": \"" T_OCI_INDEX "\",\n"
    "  \"manifests\": [\n"
    "    {\"mediaType\": \"" T_OCI_MANIFEST "\", \"digest\": \"" DA "\", \"size\": 610,\n"
    "     \"platform\": {\"architecture\": \"amd64\", \"os\": \"linux\"}},\n"
    "    {\"mediaType\": \"" T_OCI_MANIFEST "\", \"digest\": \"" DB "\", \"size\": 610,\n"
    "     \"platform\": {\"architecture\": \"arm\", \"os\": \"linux\", \"variant\": \"v5\"}},\n"
    "    {\"mediaType\": \"" T_OCI_MANIFEST "\", \"digest\": \"" DC "\", \"size\": 610,\n"
    "     \"platform\": {\"architecture\": \"arm\", \"os\": \"linux\", \"variant\": \"v6\"}},\n"
    "    {\"mediaType\": \"" T_OCI_MANIFEST "\", \"digest\": \"" DD "\", \"size\": 610,\n"
    "     \"platform\": {\"architecture\": \"arm\", \"os\": \"linux\", \"variant\": \"v7\"}},\n"
    "    {\"mediaType\": \"" T_OCI_MANIFEST "\", \"digest\": \"" DE "\", \"size\": 610,\n"
    "     \"platform\": {\"architecture\": \"arm64\", \"os\": \"linux\", \"variant\": \"v8\"},\n"
    "     \"annotations\": {\"org.opencontainers.image.revision\": \"abc\"}},\n"
    "    {\"mediaType\": \"" T_OCI_MANIFEST "\", \"digest\": \"" DF "\", \"size\": 610,\n"
    "     \"platform\": {\"architecture\": \"s390x\", \"os\": \"linux\"}},\n"
    "    {\"mediaType\": \"" T_OCI_MANIFEST "\", \"digest\": \"" D512 "\", \"size\": 566,\n"
    "     \"annotations\": {\"vnd.docker.reference.digest\": \"" DA "\",\n"
    "                     \"vnd.docker.reference.type\": \"attestation-manifest\"},\n"
    "     \"platform\": {\"architecture\": \"unknown\", \"os\": \"unknown\"}}\n"
    "  ]\n"
    "}\n";

/* A Docker Hub image pushed by an older docker: schema 2 with three layers. */
static const char docker_v2[] =
    "{\n"
    "   \"schemaVersion\": 2,\n"
    "   \"mediaType\": \"" T_DOCKER_V2 "\",\n"
    "   \"config\": {\n"
    "      \"mediaType\": \"" T_DOCKER_CFG "\",\n"
    "      \"size\": 7023,\n"
    "      \"digest\": \"" DA "\"\n"
    "   },\n"
    "   \"layers\": [\n"
    "      {\"mediaType\": \"" T_DOCKER_LAYER "\", \"size\": 31357311, \"digest\": \"" DB "\"},\n"
    "      {\"mediaType\": \"" T_DOCKER_LAYER "\", \"size\": 1078, \"digest\": \"" DC "\"},\n"
    "      {\"mediaType\": \"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\n"
    "       \"size\": 1718332879, \"digest\": \"" DD "\",\n"
    "       \"urls\": [\"https://mcr.microsoft.com/v2/windows/blobs/" DD "\"]}\n"
    "   ]\n"
    "}";

/* An OCI manifest without mediaType (allowed before image-spec 1.1), with a zstd layer, a
 * subject and embedded config data ("{}"). */
static const char oci_manifest[] =
    "{\"schemaVersion\":2,"
    "\"config\":{\"mediaType\":\"" T_OCI_CFG "\",\"digest\":\"" DA "\",\"size\":2,"
    "\"data\":\"e30=\"},"
    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\","
    "\"digest\":\"" D512 "\",\"size\":0},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip\","
    "\"digest\":\"" DB "\",\"size\":12}],"
    "\"subject\":{\"mediaType\":\"" T_OCI_MANIFEST "\",\"digest\":\"" DC "\",\"size\":100},"
    "\"annotations\":{\"org.opencontainers.image.created\":\"2024-01-01T00:00:00Z\"}}";

static const char docker_list[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" T_DOCKER_LIST "\",\"manifests\":["
    "{\"mediaType\":\"" T_DOCKER_V2 "\",\"digest\":\"" DA "\",\"size\":528,"
    "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
    "{\"mediaType\":\"" T_DOCKER_V2 "\",\"digest\":\"" DB "\",\"size\":528,"
    "\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"}},"
    "{\"mediaType\":\"" T_DOCKER_V2 "\",\"digest\":\"" DC "\",\"size\":528,"
    "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\"}},"
    "{\"mediaType\":\"" T_DOCKER_V2 "\",\"digest\":\"" DD "\",\"size\":1125,"
    "\"platform\":{\"architecture\":\"amd64\",\"os\":\"windows\","
    "\"os.version\":\"10.0.17763.5329\",\"os.features\":[\"win32k\"]}}]}";

/* nginx-like, as docker build writes it (with Docker's extra members). */
static const char image_config[] =
    "{\n"
    "  \"architecture\": \"amd64\",\n"
    "  \"config\": {\n"
    "    \"Hostname\": \"\", \"AttachStdin\": false, \"Image\": \"" DF "\",\n"
    "    \"User\": \"101:101\",\n"
    "    \"ExposedPorts\": {\"80/tcp\": {}, \"443/tcp\": {}, \"53/udp\": {}},\n"
    "    \"Env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\n"
    "            \"NGINX_VERSION=1.25.3\", \"EMPTY=\"],\n"
    "    \"Entrypoint\": [\"/docker-entrypoint.sh\"],\n"
    "    \"Cmd\": [\"nginx\", \"-g\", \"daemon off;\"],\n"
    "    \"Volumes\": {\"/var/cache/nginx\": {}},\n"
    "    \"WorkingDir\": \"/\",\n"
    "    \"Labels\": {\"maintainer\": \"NGINX Docker Maintainers\"},\n"
    "    \"StopSignal\": \"SIGQUIT\",\n"
    "    \"Healthcheck\": {\"Test\": [\"CMD-SHELL\", \"curl -f http://localhost/\"],\n"
    "                    \"Interval\": 30000000000, \"Timeout\": 5000000000,\n"
    "                    \"StartPeriod\": 0, \"Retries\": 3},\n"
    "    \"ArgsEscaped\": true,\n"
    "    \"OnBuild\": null,\n"
    "    \"Shell\": [\"/bin/sh\", \"-c\"]\n"
    "  },\n"
    "  \"container_config\": {\"Cmd\": [\"/bin/sh\"]},\n"
    "  \"created\": \"2023-11-21T05:21:24.536066751+01:00\",\n"
    "  \"docker_version\": \"20.10.23\",\n"
    "  \"history\": [\n"
    "    {\"created\": \"2023-11-20T22:00:00Z\", \"created_by\": \"/bin/sh -c #(nop) ADD file:x "
    "in / \"},\n"
    "    {\"created\": \"2023-11-20T22:00:01Z\", \"created_by\": \"/bin/sh -c #(nop)  CMD "
    "[\\\"bash\\\"]\", \"empty_layer\": true},\n"
    "    {\"created\": \"2023-11-21T04:21:24Z\", \"created_by\": \"RUN /bin/sh -c set -x\", "
    "\"comment\": \"buildkit.dockerfile.v0\"},\n"
    "    {\"created\": \"2023-11-21T04:21:24Z\", \"author\": \"someone\", \"created_by\": \"COPY "
    "docker-entrypoint.sh / # buildkit\"}\n"
    "  ],\n"
    "  \"os\": \"linux\",\n"
    "  \"rootfs\": {\"type\": \"layers\", \"diff_ids\": [\"" DA "\", \"" DB "\", \"" DC "\"]}\n"
    "}\n";

static struct ks_manifest *parse_ok(const char *doc, const char *ct, const char *what)
{
    struct ks_manifest *m = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_manifest_parse(doc, strlen(doc), ct, &m, &err);
    if (!tap_ok(r == 0 && m, "%s parses", what))
        tap_diag("  %s", err ? err->msg : "(no error)");
    return m;
}

static void test_valid(void)
{
    _cleanup_manifest_ struct ks_manifest *idx = parse_ok(busybox_index, NULL, "busybox index");
    if (idx) {
        TAP_EQ_INT(idx->kind, KS_MANIFEST_INDEX, "index kind");
        TAP_EQ_INT(idx->type, KS_MEDIA_OCI_INDEX, "index type");
        TAP_EQ_INT(idx->n_manifests, 7, "index entries");
        TAP_EQ_STR(idx->manifests[3].platform.variant, "v7", "arm variant");
        TAP_EQ_STR(idx->manifests[4].annotations[0].value, "abc", "entry annotation");
        TAP_EQ_STR(idx->manifests[6].digest, D512, "sha512 digest");
        tap_ok(idx->manifests[0].platform.variant == NULL, "absent variant is NULL");
    }

    _cleanup_manifest_ struct ks_manifest *d =
        parse_ok(docker_v2, T_DOCKER_V2 "; charset=utf-8", "docker v2 manifest");
    if (d) {
        TAP_EQ_INT(d->kind, KS_MANIFEST_IMAGE, "manifest kind");
        TAP_EQ_INT(d->type, KS_MEDIA_DOCKER_MANIFEST, "docker type");
        TAP_EQ_INT(d->config.type, KS_MEDIA_DOCKER_CONFIG, "config type");
        TAP_EQ_INT(d->config.size, 7023, "config size");
        TAP_EQ_INT(d->n_layers, 3, "three layers");
        TAP_EQ_INT(d->layers[0].size, 31357311, "layer size");
        TAP_EQ_STR(d->layers[1].digest, DC, "layer digest");
        tap_ok(!ks_media_type_is_foreign(d->layers[0].type) &&
                   ks_media_type_is_foreign(d->layers[2].type),
               "foreign layer flagged");
        tap_ok(d->layers[2].urls && d->layers[2].urls[0] && !d->layers[2].urls[1], "layer urls");
        TAP_EQ_INT(ks_media_type_compression(d->layers[0].type), KS_COMPRESSION_GZIP, "gzip");
    }

    _cleanup_manifest_ struct ks_manifest *o = parse_ok(oci_manifest, NULL, "oci manifest");
    if (o) {
        TAP_EQ_INT(o->type, KS_MEDIA_OCI_MANIFEST, "detected from the shape");
        TAP_EQ_STR(o->media_type, T_OCI_MANIFEST, "media type filled in");
        TAP_EQ_INT(ks_media_type_compression(o->layers[0].type), KS_COMPRESSION_ZSTD, "zstd");
        tap_ok(ks_media_type_is_foreign(o->layers[1].type), "non-distributable flagged");
        tap_ok(o->subject && strcmp(o->subject->digest, DC) == 0, "subject");
        TAP_EQ_INT(o->n_annotations, 1, "annotations");
    }
    _cleanup_manifest_ struct ks_manifest *o2 =
        parse_ok(oci_manifest, T_OCI_MANIFEST, "oci manifest with its content type");
    _cleanup_manifest_ struct ks_manifest *o3 =
        parse_ok(oci_manifest, "application/json", "oci manifest as application/json");

    _cleanup_manifest_ struct ks_manifest *l = parse_ok(docker_list, T_DOCKER_LIST, "docker list");
    if (l) {
        TAP_EQ_INT(l->type, KS_MEDIA_DOCKER_MANIFEST_LIST, "list type");
        TAP_EQ_STR(l->manifests[3].platform.os_version, "10.0.17763.5329", "os.version");
        tap_ok(l->manifests[3].platform.os_features &&
                   strcmp(l->manifests[3].platform.os_features[0], "win32k") == 0,
               "os.features");
    }

    TAP_EQ_INT(ks_media_type_from_string(T_OCI_GZIP), KS_MEDIA_OCI_LAYER_GZIP, "lookup");
    TAP_EQ_STR(ks_media_type_name(KS_MEDIA_DOCKER_CONFIG), T_DOCKER_CFG, "name");
    tap_ok(ks_media_type_name(KS_MEDIA_UNKNOWN) == NULL, "no name for unknown");
    ks_manifest_free(NULL);
}

/* ---- refused documents ---- */

#define CFG_D             "{\"mediaType\":\"" T_OCI_CFG "\",\"digest\":\"" DA "\",\"size\":100}"
#define LAYER(mt, dg, sz) "{\"mediaType\":\"" mt "\",\"digest\":\"" dg "\",\"size\":" sz "}"
#define GOOD_LAYER        LAYER(T_OCI_GZIP, DB, "10")
#define MAN_CFG(cfg, layers)                                                                       \
    "{\"schemaVersion\":2,\"mediaType\":\"" T_OCI_MANIFEST "\",\"config\":" cfg                    \
    ",\"layers\":[" layers "]}"
#define MAN(layers) MAN_CFG(CFG_D, layers)
#define ENTRY(mt, plat)                                                                            \
    "{\"mediaType\":\"" mt "\",\"digest\":\"" DA "\",\"size\":500,\"platform\":" plat "}"
#define AMD64 "{\"architecture\":\"amd64\",\"os\":\"linux\"}"
#define IDX(type, entries)                                                                         \
    "{\"schemaVersion\":2,\"mediaType\":\"" type "\",\"manifests\":[" entries "]}"

struct bad_case {
    const char *content_type;
    const char *doc;
    const char *msg; /* a part of the message */
};

static const struct bad_case bad_manifests[] = {
    {NULL, MAN(GOOD_LAYER "," GOOD_LAYER "," GOOD_LAYER "," LAYER(T_OCI_GZIP, "sha256:xyz", "1")),
     "manifest: layers[3].digest: invalid digest `sha256:xyz`"},
    {NULL, MAN(LAYER(T_OCI_GZIP, "sha256:" HEX("A"), "1")), "manifest: layers[0].digest: invalid"},
    {NULL, MAN(LAYER(T_OCI_GZIP, "md5:d41d8cd98f00b204e9800998ecf8427e", "1")),
     "layers[0].digest: invalid digest `md5:"},
    {NULL, MAN(LAYER(T_OCI_GZIP, "sha256:" X8("abcdefgh") "abc", "1")), "layers[0].digest"},
    {NULL, MAN(GOOD_LAYER "," LAYER(T_OCI_GZIP, DB, "-1")), "layers[1].size: -1 is out of range"},
    {NULL, MAN(LAYER(T_OCI_GZIP, DB, "2199023255553")), "layers[0].size: 2199023255553 is out"},
    {NULL, MAN(LAYER(T_OCI_GZIP, DB, "18446744073709551615")), "layers[0].size: 1844674407370"},
    {NULL, MAN(LAYER(T_OCI_GZIP, DB, "\"10\"")), "layers[0].size: expected an integer"},
    {NULL, MAN(LAYER(T_OCI_GZIP, DB, "1.5")), "layers[0].size: expected an integer"},
    {NULL, MAN("{\"digest\":\"" DB "\",\"size\":1}"), "layers[0].mediaType: required but missing"},
    {NULL, MAN(LAYER("garbage", DB, "1")), "layers[0].mediaType: invalid media type `garbage`"},
    {NULL, MAN(LAYER(T_OCI_CFG, DB, "1")), "layers[0].mediaType: `" T_OCI_CFG "` is not a layer"},
    {NULL, "{\"schemaVersion\":2,\"mediaType\":\"" T_OCI_MANIFEST "\",\"layers\":[]}",
     "manifest: config: required but missing"},
    {NULL, MAN_CFG("{\"mediaType\":\"" T_OCI_CFG "\",\"size\":1}", ""),
     "config.digest: required but missing"},
    {NULL, MAN_CFG("{\"mediaType\":\"" T_OCI_CFG "\",\"digest\":\"" DA "\",\"size\":9000000}", ""),
     "config.size: 9000000 is out of range"},
    {NULL,
     MAN_CFG("{\"mediaType\":\"" T_OCI_CFG "\",\"digest\":\"" DA "\",\"size\":3,"
             "\"data\":\"e30=\"}",
             ""),
     "config.data: holds 2 bytes, but size says 3"},
    {NULL,
     MAN_CFG("{\"mediaType\":\"" T_OCI_CFG "\",\"digest\":\"" DA "\",\"size\":2,"
             "\"data\":\"e3!=\"}",
             ""),
     "config.data: invalid base64"},
    {NULL, "{\"schemaVersion\":2,\"config\":" CFG_D ",\"layers\":{}}",
     "manifest: layers: expected an array"},
    {NULL, MAN("null"), "layers[0]: unexpected null"},
    {NULL,
     MAN("{\"mediaType\":\"" T_OCI_GZIP "\",\"digest\":\"" DB "\",\"size\":1,"
         "\"urls\":[\"file:///etc/shadow\"]}"),
     "layers[0].urls[0]: invalid URL `file:///etc/shadow`"},
    {NULL,
     MAN("{\"mediaType\":\"" T_OCI_GZIP "\",\"digest\":\"" DB "\",\"size\":1,"
         "\"annotations\":{\"a\":1}}"),
     "layers[0].annotations[\"a\"]: expected a string"},
    {NULL,
     MAN("{\"mediaType\":\"" T_OCI_GZIP "\",\"digest\":\"" DB "\",\"size\":1,"
         "\"annotations\":{\"a\":\"x\\u0000y\"}}"),
     "layers[0].annotations[\"a\"]: contains a NUL byte"},
    {NULL, "{\"schemaVersion\":1,\"name\":\"x\",\"tag\":\"latest\",\"fsLayers\":[]}",
     "manifest: schemaVersion: schema 1 manifests are not supported"},
    {NULL, "{\"schemaVersion\":3,\"config\":" CFG_D ",\"layers\":[]}",
     "schemaVersion: unsupported schema version 3 (expected 2)"},
    {NULL, "{\"mediaType\":\"" T_OCI_MANIFEST "\",\"config\":" CFG_D ",\"layers\":[]}",
     "manifest: schemaVersion: required but missing"},
    {NULL, "{\"schemaVersion\":\"2\",\"config\":" CFG_D ",\"layers\":[]}",
     "schemaVersion: expected an integer"},
    {"application/vnd.docker.distribution.manifest.v1+json", "{}",
     "manifest: schema 1 manifests are not supported"},
    {"application/vnd.docker.distribution.manifest.v1+prettyjws", "{\"schemaVersion\":1}",
     "schema 1 manifests are not supported"},
    {NULL,
     "{\"schemaVersion\":1,\"mediaType\":\"application/vnd.docker.distribution.manifest."
     "v1+json\"}",
     "manifest: mediaType: schema 1 manifests are not supported"},
    {T_OCI_MANIFEST, IDX(T_OCI_INDEX, ENTRY(T_OCI_MANIFEST, AMD64)),
     "manifest: mediaType: `" T_OCI_INDEX "` does not match the content type `" T_OCI_MANIFEST},
    {T_DOCKER_V2, MAN(GOOD_LAYER), "mediaType: `" T_OCI_MANIFEST "` does not match"},
    {NULL, "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.example+json\"}",
     "mediaType: unsupported manifest media type `application/vnd.example+json`"},
    {NULL, "{\"schemaVersion\":2,\"mediaType\":5}", "manifest: mediaType: expected a string"},
    {"application/x-foo", MAN(GOOD_LAYER), "manifest: unsupported content type `application/x"},
    {T_OCI_CFG, MAN(GOOD_LAYER), "content type `" T_OCI_CFG "` is not a manifest or index"},
    {NULL, "{\"schemaVersion\":2,\"config\":" CFG_D ",\"layers\":[],\"manifests\":[]}",
     "manifest: ambiguous document"},
    {NULL, "{\"schemaVersion\":2}", "manifest: cannot tell the document type"},
    {NULL, MAN(GOOD_LAYER) "x", "manifest: invalid JSON at byte"},
    {NULL, "[1,2]", "manifest: expected an object"},
    {NULL, "{\"schemaVersion\":2,", "manifest: invalid JSON"},
    {NULL,
     IDX(T_OCI_INDEX, ENTRY(T_OCI_MANIFEST, AMD64) "," ENTRY(T_OCI_MANIFEST, "{\"os\":\"linux\"}")),
     "manifest: manifests[1].platform.architecture: required but missing"},
    {NULL, IDX(T_OCI_INDEX, ENTRY(T_OCI_MANIFEST, "{\"architecture\":\"amd64\",\"os\":\"\"}")),
     "manifests[0].platform.os: must not be empty"},
    {NULL,
     IDX(T_OCI_INDEX,
         ENTRY(T_OCI_MANIFEST, "{\"architecture\":\"amd64\",\"os\":\"linux\",\"os.features\":1}")),
     "manifests[0].platform.os.features: expected an array"},
    {NULL,
     IDX(T_OCI_INDEX,
         "{\"mediaType\":\"" T_OCI_MANIFEST "\",\"digest\":\"" DA "\",\"size\":5000000}"),
     "manifests[0].size: 5000000 is out of range"},
    {NULL, IDX(T_DOCKER_LIST, ENTRY(T_DOCKER_LAYER, AMD64)),
     "manifests[0].mediaType: `" T_DOCKER_LAYER "` is not a manifest media type"},
    {NULL, IDX(T_OCI_INDEX, ENTRY(T_OCI_GZIP, AMD64)), "manifests[0].mediaType: `" T_OCI_GZIP},
    {T_DOCKER_V2, "{\"schemaVersion\":2,\"config\":" CFG_D ",\"layers\":[]}",
     "manifest: mediaType: required for " T_DOCKER_V2},
    {NULL,
     "{\"schemaVersion\":2,\"mediaType\":\"" T_DOCKER_V2 "\",\"config\":{\"mediaType\":"
     "\"application/vnd.example.config+json\",\"digest\":\"" DA "\",\"size\":1},\"layers\":[]}",
     "config.mediaType: `application/vnd.example.config+json` is not an image config"},
    {NULL,
     "{\"schemaVersion\":2,\"mediaType\":\"" T_OCI_MANIFEST "\",\"config\":" CFG_D
     ",\"manifests\":[]}",
     "ambiguous document"},
    {NULL, "{\"schemaVersion\":2,\"mediaType\":\"" T_OCI_MANIFEST "\",\"manifests\":[]}",
     "`manifests` is not allowed in an image manifest"},
    {NULL, "{\"schemaVersion\":2,\"mediaType\":\"" T_OCI_INDEX "\",\"layers\":[]}",
     "`config`/`layers` are not allowed in an index"},
    {NULL,
     "{\"schemaVersion\":2,\"mediaType\":\"" T_OCI_MANIFEST "\",\"config\":" CFG_D
     ",\"layers\":[],\"subject\":{\"mediaType\":\"" T_OCI_MANIFEST
     "\",\"digest\":\"sha256:1\",\"size\":1}}",
     "manifest: subject.digest: invalid digest `sha256:1`"},
    {NULL, "{\"schemaVersion\":2,\"mediaType\":\"" T_OCI_INDEX "\"}",
     "manifest: manifests: required but missing"},
    {NULL,
     "{\"schemaVersion\":2,\"mediaType\":\"" T_OCI_INDEX "\",\"manifests\":[],"
     "\"annotations\":[]}",
     "manifest: annotations: expected an object"},
};

static void test_bad_manifests(void)
{
    for (size_t i = 0; i < KS_ELEMENTSOF(bad_manifests); i++) {
        const struct bad_case *c = &bad_manifests[i];
        _cleanup_manifest_ struct ks_manifest *m = NULL;
        _cleanup_error_ struct ks_error *err = NULL;
        int r = ks_manifest_parse(c->doc, strlen(c->doc), c->content_type, &m, &err);
        bool ok = r < 0 && m == NULL && err && strstr(err->msg, c->msg);
        if (!tap_ok(ok, "bad manifest %zu refused: %s", i, c->msg))
            tap_diag("  got %d, \"%s\"", r, err ? err->msg : "(no error)");
    }
}

static void test_limits(void)
{
    /* Too many layers, within the size limit. */
    size_t n = KS_MANIFEST_MAX_ITEMS + 1;
    size_t cap = n * 200 + 1024, len = 0;
    char *buf = malloc(cap);
    len += (size_t)snprintf(buf, cap, "{\"schemaVersion\":2,\"config\":%s,\"layers\":[", CFG_D);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "," : "", GOOD_LAYER);
    len += (size_t)snprintf(buf + len, cap - len, "]}");
    _cleanup_manifest_ struct ks_manifest *m = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_manifest_parse(buf, len, NULL, &m, &err);
    tap_ok(r == -EINVAL && err && strstr(err->msg, "manifest: layers: 10001 entries, more than"),
           "10001 layers refused");
    free(buf);

    /* Over 4 MiB, refused before parsing. */
    size_t big = KS_MANIFEST_MAX_SIZE + 1;
    char *b = malloc(big);
    memset(b, ' ', big);
    b[0] = '{';
    b[big - 1] = '}';
    _cleanup_error_ struct ks_error *err2 = NULL;
    r = ks_manifest_parse(b, big, NULL, &m, &err2);
    tap_ok(r == -EFBIG && err2 && strstr(err2->msg, "larger than the limit of 4194304"),
           "over 4 MiB refused");
    free(b);

    big = KS_IMAGE_CONFIG_MAX_SIZE + 1;
    b = calloc(1, big);
    _cleanup_image_config_ struct ks_image_config *c = NULL;
    _cleanup_error_ struct ks_error *err3 = NULL;
    r = ks_image_config_parse(b, big, &c, &err3);
    tap_ok(r == -EFBIG && err3 && strstr(err3->msg, "image config: 8388609 bytes, larger than"),
           "config over 8 MiB refused");
    free(b);
}

/* ---- platform selection ---- */

struct platform_case {
    const char *os, *arch, *variant;
    const char *digest; /* NULL: no match, and the message contains .msg */
    const char *msg;
};

static const struct platform_case busybox_cases[] = {
    {"linux", "amd64", NULL, DA, NULL},
    {"linux", "x86_64", NULL, DA, NULL},
    {"Linux", "AMD64", "v1", DA, NULL},
    {"linux", "arm64", NULL, DE, NULL},
    {"linux", "aarch64", "8", DE, NULL},
    {"linux", "arm64", "v8", DE, NULL},
    {"linux", "arm", NULL, DD, NULL},
    {"linux", "arm", "v7", DD, NULL},
    {"linux", "arm", "7", DD, NULL},
    {"linux", "arm", "v6", DC, NULL},
    {"linux", "arm", "v5", DB, NULL},
    {"linux", "arm", "v8", DD, NULL},
    {"linux", "armhf", NULL, DD, NULL},
    {"linux", "armel", NULL, DC, NULL},
    {"linux", "s390x", NULL, DF, NULL},
    {"linux", "arm", "v4", NULL, "no matching manifest for linux/arm/v4"},
    {"linux", "arm64", "v9", DE, NULL},
    {"linux", "arm64", "v7", NULL, "no matching manifest for linux/arm64/v7"},
    {"linux", "amd64", "v3", DA, NULL},
    {"linux", "mips64le", NULL, NULL,
     "no matching manifest for linux/mips64le in the manifest list entries (available: "
     "linux/amd64, linux/arm/v5, linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/s390x)"},
    {"windows", "amd64", NULL, NULL, "no matching manifest for windows/amd64"},
    {"unknown", "unknown", NULL, NULL, "no matching manifest for unknown/unknown"},
};

static void check_select(const struct ks_manifest *idx, const struct platform_case *c,
                         const char *name)
{
    const struct ks_descriptor *d = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_index_select_platform(idx, c->os, c->arch, c->variant, &d, &err);
    if (c->digest) {
        if (!tap_ok(r == 0 && d && strcmp(d->digest, c->digest) == 0, "%s: %s/%s/%s selected", name,
                    c->os, c->arch, c->variant ? c->variant : "-"))
            tap_diag("  got %d, %s", r, err ? err->msg : d ? d->digest : "(nothing)");
    } else {
        if (!tap_ok(r == -ENOENT && err && strstr(err->msg, c->msg), "%s: %s/%s/%s: %s", name,
                    c->os, c->arch, c->variant ? c->variant : "-", c->msg))
            tap_diag("  got %d, %s", r, err ? err->msg : "(no error)");
    }
}

static void test_platforms(void)
{
    _cleanup_manifest_ struct ks_manifest *idx = parse_ok(busybox_index, NULL, "busybox index");
    for (size_t i = 0; idx && i < KS_ELEMENTSOF(busybox_cases); i++)
        check_select(idx, &busybox_cases[i], "busybox");

    /* Docker's list: arm64 without variant is v8; windows entries are for windows. */
    _cleanup_manifest_ struct ks_manifest *l = parse_ok(docker_list, NULL, "docker list");
    static const struct platform_case list_cases[] = {
        {"linux", "arm64", NULL, DC, NULL},
        {"linux", "arm64", "v8", DC, NULL},
        {"windows", "amd64", NULL, DD, NULL},
        {"linux", "amd64", NULL, DA, NULL},
        {"linux", "arm", "v6", NULL,
         "available: linux/amd64, linux/arm/v7, linux/arm64, "
         "windows/amd64"},
    };
    for (size_t i = 0; l && i < KS_ELEMENTSOF(list_cases); i++)
        check_select(l, &list_cases[i], "docker list");

    /* No arm64 image: an arm64 host falls back to 32-bit arm, newest variant first; amd64
     * micro-architecture levels: a newer level is never picked for an older request. */
    static const char fallback[] = IDX(
        T_OCI_INDEX, "{\"mediaType\":\"" T_OCI_MANIFEST "\",\"digest\":\"" DA "\",\"size\":1,"
                     "\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v6\"}},"
                     "{\"mediaType\":\"" T_OCI_MANIFEST "\",\"digest\":\"" DB "\",\"size\":1,"
                     "\"platform\":{\"architecture\":\"arm\",\"os\":\"linux\",\"variant\":\"v7\"}},"
                     "{\"mediaType\":\"" T_OCI_MANIFEST "\",\"digest\":\"" DC "\",\"size\":1,"
                     "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\",\"variant\":"
                     "\"v3\"}},"
                     "{\"mediaType\":\"" T_OCI_MANIFEST "\",\"digest\":\"" DD "\",\"size\":1,"
                     "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\",\"variant\":"
                     "\"v2\"}},"
                     "{\"mediaType\":\"application/vnd.example+json\",\"digest\":\"" DE
                     "\",\"size\":1,\"platform\":{\"architecture\":\"riscv64\",\"os\":\"linux\"}}");
    _cleanup_manifest_ struct ks_manifest *f = parse_ok(fallback, NULL, "fallback index");
    static const struct platform_case fallback_cases[] = {
        {"linux", "arm64", NULL, DB, NULL},
        {"linux", "amd64", "v4", DC, NULL},
        {"linux", "amd64", "v2", DD, NULL},
        {"linux", "amd64", NULL, NULL, "no matching manifest for linux/amd64 "},
        {"linux", "riscv64", NULL, NULL, "no matching manifest for linux/riscv64"},
    };
    for (size_t i = 0; f && i < KS_ELEMENTSOF(fallback_cases); i++)
        check_select(f, &fallback_cases[i], "fallback");

    _cleanup_manifest_ struct ks_manifest *d = parse_ok(docker_v2, NULL, "docker v2 manifest");
    const struct ks_descriptor *desc = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    tap_ok(d && ks_index_select_platform(d, "linux", "amd64", NULL, &desc, &err) == -EINVAL &&
               strstr(err->msg, "not an index"),
           "selecting in an image manifest is refused");
}

/* ---- image configs ---- */

static void test_config(void)
{
    _cleanup_image_config_ struct ks_image_config *c = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_image_config_parse(image_config, strlen(image_config), &c, &err);
    if (!tap_ok(r == 0 && c, "image config parses")) {
        tap_diag("  %s", err ? err->msg : "(no error)");
        return;
    }
    TAP_EQ_STR(c->architecture, "amd64", "architecture");
    TAP_EQ_STR(c->os, "linux", "os");
    TAP_EQ_STR(c->user, "101:101", "User");
    /* 2023-11-21T04:21:24Z */
    TAP_EQ_INT(c->created_unix, 1700540484, "created with its offset");
    tap_ok(c->exposed_ports && c->exposed_ports[0] && c->exposed_ports[2] && !c->exposed_ports[3],
           "three exposed ports");
    TAP_EQ_STR(c->env[1], "NGINX_VERSION=1.25.3", "Env");
    TAP_EQ_STR(c->entrypoint[0], "/docker-entrypoint.sh", "Entrypoint");
    TAP_EQ_STR(c->cmd[2], "daemon off;", "Cmd");
    TAP_EQ_STR(c->volumes[0], "/var/cache/nginx", "Volumes");
    TAP_EQ_STR(c->working_dir, "/", "WorkingDir");
    tap_ok(c->n_labels == 1 && strcmp(c->labels[0].key, "maintainer") == 0, "Labels");
    TAP_EQ_STR(c->stop_signal, "SIGQUIT", "StopSignal");
    tap_ok(c->healthcheck && c->healthcheck->retries == 3 &&
               c->healthcheck->interval == 30000000000LL &&
               strcmp(c->healthcheck->test[0], "CMD-SHELL") == 0,
           "Healthcheck");
    tap_ok(c->args_escaped, "ArgsEscaped");
    tap_ok(c->on_build == NULL, "null OnBuild is absent");
    TAP_EQ_STR(c->shell[1], "-c", "Shell");
    TAP_EQ_INT(c->n_diff_ids, 3, "diff_ids");
    TAP_EQ_INT(c->n_history, 4, "history");
    tap_ok(c->history[1].empty_layer && !c->history[0].empty_layer, "empty_layer");
    TAP_EQ_STR(c->history[3].author, "someone", "history author");
    tap_ok(!c->history_mismatch, "history matches the layers");
    tap_ok(c->json && json_object_is_type(c->json, json_type_object), "document kept");

    static const char mismatch[] =
        "{\"architecture\":\"arm64\",\"variant\":\"v8\",\"os\":\"linux\",\"config\":"
        "{\"Entrypoint\":[],\"Cmd\":null},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA
        "\"]},\"history\":[{\"created_by\":\"a\"},{\"created_by\":\"b\"}]}";
    _cleanup_image_config_ struct ks_image_config *m = NULL;
    r = ks_image_config_parse(mismatch, strlen(mismatch), &m, &err);
    tap_ok(r == 0 && m && m->history_mismatch, "history mismatch is recorded, not refused");
    tap_ok(m && m->entrypoint && m->entrypoint[0] == NULL && m->cmd == NULL,
           "empty Entrypoint differs from absent Cmd");
    tap_ok(m && m->created == NULL && m->healthcheck == NULL, "absent created and Healthcheck");

    static const char no_history[] =
        "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
        "\"diff_ids\":[]},\"created\":\"1970-01-01T00:00:01.5-00:30\"}";
    _cleanup_image_config_ struct ks_image_config *h = NULL;
    r = ks_image_config_parse(no_history, strlen(no_history), &h, &err);
    tap_ok(r == 0 && h && !h->history_mismatch && h->created_unix == 1801,
           "no history, no mismatch; negative offset");
}

#define RF          "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"" DA "\"]}"
#define CONF(extra) "{\"architecture\":\"amd64\",\"os\":\"linux\"," RF extra "}"
#define CCONF(cfg)  CONF(",\"config\":" cfg)

static const struct bad_case bad_configs[] = {
    {NULL, "{\"architecture\":\"amd64\",\"os\":\"linux\"}", "image config: rootfs: required"},
    {NULL,
     "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layer\","
     "\"diff_ids\":[]}}",
     "image config: rootfs.type: unsupported value `layer`"},
    {NULL, "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\"}}",
     "rootfs.diff_ids: required but missing"},
    {NULL,
     "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
     "\"diff_ids\":[\"" DA "\",\"sha256:abc\"]}}",
     "image config: rootfs.diff_ids[1]: invalid digest `sha256:abc`"},
    {NULL, CONF(",\"created\":\"2023-13-01T00:00:00Z\""),
     "image config: created: invalid RFC 3339 time `2023-13-01T00:00:00Z`"},
    {NULL, CONF(",\"created\":\"2023-02-29T00:00:00Z\""), "created: invalid RFC 3339"},
    {NULL, CONF(",\"created\":\"2023-01-01 00:00:00\""), "created: invalid RFC 3339"},
    {NULL, CONF(",\"created\":\"2023-01-01T00:00:00\""), "created: invalid RFC 3339"},
    {NULL, CONF(",\"history\":[{},{\"created\":\"yesterday\"}]"),
     "image config: history[1].created: invalid RFC 3339 time `yesterday`"},
    {NULL, CONF(",\"history\":[{\"empty_layer\":\"true\"}]"),
     "history[0].empty_layer: expected a boolean"},
    {NULL, CCONF("{\"Env\":[\"NOEQUALS\"]}"), "config.Env[0]: expected KEY=VALUE, not `NOEQUALS`"},
    {NULL, CCONF("{\"Env\":[\"=x\"]}"), "config.Env[0]: expected KEY=VALUE"},
    {NULL, CCONF("{\"ExposedPorts\":{\"http\":{}}}"),
     "config.ExposedPorts[\"http\"]: invalid port `http`"},
    {NULL, CCONF("{\"ExposedPorts\":{\"70000/tcp\":{}}}"), "invalid port `70000/tcp`"},
    {NULL, CCONF("{\"ExposedPorts\":{\"80/icmp\":{}}}"), "invalid port `80/icmp`"},
    {NULL, CCONF("{\"ExposedPorts\":{\"80/tcp\":1}}"),
     "config.ExposedPorts[\"80/tcp\"]: expected an object"},
    {NULL, CCONF("{\"Cmd\":\"nginx\"}"), "image config: config.Cmd: expected an array"},
    {NULL, CCONF("{\"Entrypoint\":[1]}"), "config.Entrypoint[0]: expected a string"},
    {NULL, CCONF("{\"Healthcheck\":{\"Test\":[\"FOO\",\"x\"]}}"),
     "config.Healthcheck.Test[0]: unknown health check kind `FOO`"},
    {NULL, CCONF("{\"Healthcheck\":{\"Interval\":-1}}"),
     "config.Healthcheck.Interval: -1 is out of range"},
    {NULL, CCONF("{\"Healthcheck\":{\"Retries\":1e3}}"),
     "config.Healthcheck.Retries: expected an integer"},
    {NULL, CCONF("{\"Labels\":{\"a\":1}}"), "config.Labels[\"a\"]: expected a string"},
    {NULL, CCONF("{\"StopSignal\":\"SIG TERM\"}"), "config.StopSignal: invalid signal"},
    {NULL, CCONF("{\"Volumes\":{\"/data\":true}}"), "config.Volumes[\"/data\"]: expected an"},
    {NULL, CCONF("{\"Volumes\":{\"\":{}}}"), "config.Volumes[\"\"]: must not be empty"},
    {NULL, CCONF("{\"ArgsEscaped\":1}"), "config.ArgsEscaped: expected a boolean"},
    {NULL, CCONF("[]"), "image config: config: expected an object"},
    {NULL, "{\"os\":\"linux\"," RF "}", "image config: architecture: required but missing"},
    {NULL, "{\"architecture\":\"amd64\",\"os\":\"\"," RF "}", "image config: os: must not be"},
    {NULL, "\"config\"", "image config: expected an object"},
    {NULL, "{", "image config: invalid JSON"},
};

static void test_bad_configs(void)
{
    for (size_t i = 0; i < KS_ELEMENTSOF(bad_configs); i++) {
        const struct bad_case *c = &bad_configs[i];
        _cleanup_image_config_ struct ks_image_config *cfg = NULL;
        _cleanup_error_ struct ks_error *err = NULL;
        int r = ks_image_config_parse(c->doc, strlen(c->doc), &cfg, &err);
        bool ok = r < 0 && cfg == NULL && err && strstr(err->msg, c->msg);
        if (!tap_ok(ok, "bad config %zu refused: %s", i, c->msg))
            tap_diag("  got %d, \"%s\"", r, err ? err->msg : "(no error)");
    }
}

int main(void)
{
    tap_plan_auto();
    test_valid();
    test_bad_manifests();
    test_limits();
    test_platforms();
    test_config();
    test_bad_configs();
    return tap_done();
}
