/* libFuzzer target: manifests and indexes come from registries and archives. Parsing must
 * survive any input; whatever parses must hold what the header promises (checked digests,
 * bounded sizes and counts), and platform selection over it must not misbehave. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/manifest.h"
#include "image/ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_descriptor(const struct ks_descriptor *d, int64_t limit)
{
    if (d->media_type == NULL || !ks_is_digest(d->digest) || d->size < 0 || d->size > limit)
        abort();
    for (size_t i = 0; i < d->n_annotations; i++)
        if (d->annotations[i].key == NULL || d->annotations[i].value == NULL)
            abort();
    if (d->has_platform && (d->platform.os == NULL || d->platform.architecture == NULL))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte picks a content type, so the mismatch checks are reached too. */
    static const char *const types[] = {
        NULL,
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8",
        "application/json",
    };
    if (size == 0)
        return 0;
    const char *ct = types[data[0] % (sizeof(types) / sizeof(types[0]))];
    _cleanup_manifest_ struct ks_manifest *m = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_manifest_parse((const char *)data + 1, size - 1, ct, &m, &err) < 0) {
        if (err == NULL || err->msg == NULL || m != NULL)
            abort();
        return 0;
    }
    if (m->media_type == NULL || m->json == NULL)
        abort();
    if (m->kind == KS_MANIFEST_IMAGE) {
        check_descriptor(&m->config, (int64_t)KS_IMAGE_CONFIG_MAX_SIZE);
        if (m->n_layers > KS_MANIFEST_MAX_ITEMS)
            abort();
        for (size_t i = 0; i < m->n_layers; i++)
            check_descriptor(&m->layers[i], KS_LAYER_MAX_SIZE);
        return 0;
    }
    if (m->kind != KS_MANIFEST_INDEX || m->n_manifests > KS_MANIFEST_MAX_ITEMS)
        abort();
    for (size_t i = 0; i < m->n_manifests; i++)
        check_descriptor(&m->manifests[i], (int64_t)KS_MANIFEST_MAX_SIZE);
    static const char *const platforms[][3] = {
        {"linux", "amd64", NULL},   {"linux", "arm64", NULL},  {"linux", "arm", "v6"},
        {"windows", "amd64", NULL}, {"linux", "x86_64", "v3"},
    };
    for (size_t i = 0; i < sizeof(platforms) / sizeof(platforms[0]); i++) {
        const struct ks_descriptor *d = NULL;
        _cleanup_error_ struct ks_error *e = NULL;
        int r =
            ks_index_select_platform(m, platforms[i][0], platforms[i][1], platforms[i][2], &d, &e);
        if (r == 0 && (d < m->manifests || d >= m->manifests + m->n_manifests))
            abort();
        if (r < 0 && (e == NULL || e->msg == NULL))
            abort();
    }
    return 0;
}
