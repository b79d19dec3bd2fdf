/* The error contract: a fallible function takes `struct ks_error **err` last, returns a negative
 * errno (or NULL) and fills *err with the errno and a message. ks_error_wrap() adds context on
 * the way up. Only the command line prints an error and picks the exit status. */
#pragma once

#include "cleanup.h"

struct ks_error {
    int errnum; /* positive errno, 0 when none applies */
    char *msg;
};

/* Sets *err (if err is not NULL and *err is empty) and returns -errnum (or -EINVAL when errnum
 * is 0). When errnum is not 0 its strerror() text is appended. */
int ks_error_set(struct ks_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the message of *err with "context: ". Returns -errnum of *err. */
int ks_error_wrap(struct ks_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The errno-less form: the message is taken as is. */
#define ks_error_msg(err, ...) ks_error_set_plain(err, EINVAL, __VA_ARGS__)
int ks_error_set_plain(struct ks_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Builds an error from an errno and a message received from another process. */
struct ks_error *ks_error_new(int errnum, const char *msg);

void ks_error_free(struct ks_error *e);
KS_DEFINE_CLEANUP(struct ks_error *, ks_error_free)
#define _cleanup_error_ _cleanup_(ks_error_free_p)
