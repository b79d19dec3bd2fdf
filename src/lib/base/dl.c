#include "dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

int ks_dl_load(const char *const *sonames, const char *package, const struct ks_dl_sym *syms,
               size_t n, struct ks_error **err)
{
    const char *why = "no library name given";
    for (const char *const *so = sonames; *so; so++) {
        void *h = dlopen(*so, RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) {
            why = dlerror();
            continue;
        }
        size_t i;
        for (i = 0; i < n; i++) {
            void *p = dlsym(h, syms[i].name);
            if (p == NULL)
                break;
            *syms[i].ptr = p;
        }
        if (i == n)
            return 0; /* kept open on purpose: the pointers are used until exit */
        why = dlerror();
        dlclose(h);
    }
    if (package)
        return ks_error_set_plain(err, ENOENT, "cannot load %s (install the Debian package %s): %s",
                                  sonames[0] ? sonames[0] : "?", package, why ? why : "?");
    return ks_error_set_plain(err, ENOENT, "cannot load %s: %s", sonames[0] ? sonames[0] : "?",
                              why ? why : "?");
}
