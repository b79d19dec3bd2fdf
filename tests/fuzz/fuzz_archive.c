/* libFuzzer target for the archive loader: the input is the archive (a tar, possibly
 * compressed as a whole), loaded into a store in a private temporary directory. Whatever an
 * input manages to record is removed again, so the store stays small. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/fs.h"
#include "image/archive.h"
#include "image/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ks_store *store;

static struct ks_store *get_store(void)
{
    if (store)
        return store;
    static char dir[] = "/tmp/fuzz_archive.XXXXXX";
    if (mkdtemp(dir) == NULL)
        abort();
    struct ks_error *e = NULL;
    if (ks_store_open(dir, &store, &e) < 0) {
        fprintf(stderr, "open store: %s\n", e->msg);
        abort();
    }
    return store;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ks_store *s = get_store();
    int fd = memfd_create("fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (ks_write_all(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
        close(fd);
        return 0;
    }
    struct ks_error *e = NULL;
    struct ks_archive_loaded **loaded = NULL;
    if (ks_archive_load(s, fd, &loaded, &e) == 0) {
        for (size_t i = 0; loaded[i]; i++) {
            char **untagged = NULL, **deleted = NULL;
            struct ks_error *re = NULL;
            ks_store_remove(s, loaded[i]->id, true, &untagged, &deleted, &re);
            ks_strv_free(untagged);
            ks_strv_free(deleted);
            ks_error_free(re);
        }
    }
    ks_archive_loaded_free(loaded);
    ks_error_free(e);
    close(fd);
    return 0;
}
