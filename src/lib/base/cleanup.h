/* Scope-bound ownership: variables marked with a cleanup attribute release what they hold when
 * they go out of scope. Ownership is handed on with TAKE_PTR()/TAKE_FD(). */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define KS_DEFINE_CLEANUP(type, func)                                                              \
    static inline void func##_p(type *p)                                                           \
    {                                                                                              \
        if (*p)                                                                                    \
            func(*p);                                                                              \
    }

static inline void ks_freep(void *p)
{
    free(*(void **)p);
}

static inline void ks_closep(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
    }
}

KS_DEFINE_CLEANUP(FILE *, fclose)
KS_DEFINE_CLEANUP(DIR *, closedir)

void ks_strv_free(char **v);
KS_DEFINE_CLEANUP(char **, ks_strv_free)

#define _cleanup_(f)       __attribute__((cleanup(f)))
#define _cleanup_free_     _cleanup_(ks_freep)
#define _cleanup_close_    _cleanup_(ks_closep)
#define _cleanup_fclose_   _cleanup_(fclose_p)
#define _cleanup_closedir_ _cleanup_(closedir_p)
#define _cleanup_strv_     _cleanup_(ks_strv_free_p)

/* Both evaluate their argument once: TAKE_PTR(v[i++]) takes v[i] and moves on. */
#define TAKE_PTR(p)                                                                                \
    ({                                                                                             \
        __typeof__(p) *_tpp = &(p);                                                                \
        __typeof__(p) _tp = *_tpp;                                                                 \
        *_tpp = NULL;                                                                              \
        _tp;                                                                                       \
    })

#define TAKE_FD(fd)                                                                                \
    ({                                                                                             \
        int *_tfdp = &(fd);                                                                        \
        int _tfd = *_tfdp;                                                                         \
        *_tfdp = -EBADF;                                                                           \
        _tfd;                                                                                      \
    })

#define KS_ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))
