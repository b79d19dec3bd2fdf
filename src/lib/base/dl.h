/* Heavy optional libraries (libcurl, libmicrohttpd, libnftables) are loaded on first use with
 * dlopen rather than linked: every kiste command is a short process, and linking them would make
 * each one, `kiste ps` included, load and relocate some hundred more shared objects.
 *
 * A module describes the functions it needs in a table of {name, where to store the pointer}
 * and loads it once (its own pthread_once). Headers of the library still give the types. */
#pragma once

#include <stddef.h>

#include "error.h"

struct ks_dl_sym {
    const char *name;
    void **ptr; /* receives the address; the caller casts it to the function's type */
};

/* Opens the first of sonames (NULL-terminated, e.g. {"libcurl.so.4", NULL}) that loads and
 * resolves every symbol of syms[0 … n-1] into *syms[i].ptr. The handle is never closed: the
 * pointers stay valid for the life of the process. -ENOENT with a message naming the library
 * (and the Debian package, when given) when none loads or a symbol is missing. */
int ks_dl_load(const char *const *sonames, const char *package, const struct ks_dl_sym *syms,
               size_t n, struct ks_error **err);
