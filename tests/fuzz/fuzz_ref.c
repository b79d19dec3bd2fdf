/* libFuzzer target: image references come from the command line, Dockerfiles and registries'
 * answers. Parsing must survive any input, and whatever parses must round-trip: the normalized
 * and the familiar form both parse back to the same reference. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const char *form, const char *want)
{
    _cleanup_ref_ struct ks_ref *r = NULL;
    if (form == NULL || ks_ref_parse(form, &r, NULL) < 0)
        abort();
    _cleanup_free_ char *again = ks_ref_string(r);
    if (again == NULL || strcmp(again, want) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_free_ char *s = strndup((const char *)data, size);
    if (s == NULL)
        return 0;
    (void)ks_is_digest(s);
    (void)ks_is_hex_prefix(s);

    _cleanup_ref_ struct ks_ref *r = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_ref_parse(s, &r, &err) < 0) {
        if (err == NULL || err->msg == NULL)
            abort();
        return 0;
    }
    _cleanup_free_ char *full = ks_ref_string(r);
    _cleanup_free_ char *familiar = ks_ref_familiar(r);
    _cleanup_free_ char *repo = ks_ref_repository(r);
    if (full == NULL || familiar == NULL || repo == NULL || strlen(repo) > KS_REF_NAME_MAX)
        abort();
    if (r->digest && !ks_is_digest(r->digest))
        abort();
    check_round_trip(full, full);
    check_round_trip(familiar, full);
    return 0;
}
