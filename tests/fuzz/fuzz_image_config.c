/* libFuzzer target: image configs come from registries and archives. Parsing must survive any
 * input, and whatever parses must hold what the header promises. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "image/manifest.h"
#include "image/ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_image_config_ struct ks_image_config *c = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_image_config_parse((const char *)data, size, &c, &err) < 0) {
        if (err == NULL || err->msg == NULL || c != NULL)
            abort();
        return 0;
    }
    if (c->architecture == NULL || c->os == NULL || c->diff_ids == NULL || c->json == NULL)
        abort();
    for (size_t i = 0; i < c->n_diff_ids; i++)
        if (!ks_is_digest(c->diff_ids[i]))
            abort();
    if (c->diff_ids[c->n_diff_ids] != NULL)
        abort();
    size_t layers = 0;
    for (size_t i = 0; i < c->n_history; i++)
        layers += !c->history[i].empty_layer;
    if (c->history_mismatch != (c->n_history > 0 && layers != c->n_diff_ids))
        abort();
    return 0;
}
