/* libFuzzer target: the registry server's parsers of request paths and byte ranges, which
 * see every request of every client. Whatever a route accepts must be safe to use as a path
 * below the storage root: a valid name, a tag or digest, an upload id; and the ranges must be
 * ordered and inside the blob. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/cleanup.h"
#include "image/ref.h"
#include "registry/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_route(const char *path)
{
    struct ks_registry_route r;
    ks_registry_route_parse(path, &r);
    if (r.kind == KS_ROUTE_NONE || r.error != KS_ROUTE_OK)
        return;
    bool named = r.kind != KS_ROUTE_BASE && r.kind != KS_ROUTE_CATALOG && r.kind != KS_ROUTE_SEARCH;
    if (named && (!ks_registry_name_valid(r.name) || strstr(r.name, "..") || r.name[0] == '/' ||
                  strchr(r.name, '_') == r.name))
        abort();
    switch (r.kind) {
    case KS_ROUTE_MANIFEST:
        if (r.ref_is_digest ? !ks_is_digest(r.ref) : !ks_registry_tag_valid(r.ref))
            abort();
        break;
    case KS_ROUTE_BLOB:
    case KS_ROUTE_REFERRERS:
        if (!ks_is_digest(r.ref))
            abort();
        break;
    case KS_ROUTE_UPLOAD:
        if (!ks_registry_uuid_valid(r.ref))
            abort();
        break;
    default:
        break;
    }
    if (strchr(r.ref, '/') || strcmp(r.ref, "..") == 0 || strcmp(r.ref, ".") == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_free_ char *s = strndup((const char *)data, size);
    if (s == NULL)
        return 0;
    check_route(s);
    uint64_t a, b;
    if (ks_registry_content_range_parse(s, &a, &b) == 0 && b < a)
        abort();
    uint64_t sizes[] = {0, 1, 100, UINT64_MAX};
    for (size_t i = 0; i < KS_ELEMENTSOF(sizes); i++)
        if (ks_registry_range_parse(s, sizes[i], &a, &b) == 1 && (b < a || b >= sizes[i]))
            abort();
    return 0;
}
