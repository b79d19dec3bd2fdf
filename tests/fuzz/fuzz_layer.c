/* libFuzzer target: a layer blob is untrusted, so applying one must survive any input without
 * crashing, leaking, or writing outside the fresh directory it is applied to. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/fs.h"
#include "image/layer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_close_ int fd = memfd_create("layer", MFD_CLOEXEC);
    if (fd < 0 || ks_write_all(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0)
        return 0;
    char dir[] = "/tmp/fuzz_layer.XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 0;
    _cleanup_close_ int dest = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dest >= 0) {
        /* Small enough that a decompression bomb ends quickly. */
        struct ks_layer_apply_opts o = {.max_size = 16 << 20};
        struct ks_layer_result res;
        _cleanup_error_ struct ks_error *err = NULL;
        (void)ks_layer_apply(fd, dest, &o, &res, &err);
    }
    _cleanup_error_ struct ks_error *err = NULL;
    (void)ks_rm_rf_at(AT_FDCWD, dir, &err);
    return 0;
}
