/* libFuzzer target: config.json is untrusted, so parsing and validation must survive any
 * input without crashing, leaking or reading out of bounds. */
#include <stddef.h>
#include <stdint.h>

#include "base/json.h"
#include "oci/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_json_ json_object *spec = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_json_parse((const char *)data, size, &spec, &err) < 0)
        return 0;
    (void)ks_spec_validate(spec, &err);
    return 0;
}
