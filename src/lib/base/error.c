#include "error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int set_va(struct ks_error **err, int errnum, bool with_strerror, const char *fmt,
                  va_list ap)
{
    int ret = errnum > 0 ? -errnum : -EINVAL;
    if (err == NULL || *err != NULL)
        return ret;

    struct ks_error *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return ret;
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    if (msg && errnum > 0 && with_strerror) {
        char *full = NULL;
        if (asprintf(&full, "%s: %s", msg, strerror(errnum)) >= 0) {
            free(msg);
            msg = full;
        }
    }
    e->errnum = errnum > 0 ? errnum : EINVAL;
    e->msg = msg ? msg : strdup("out of memory");
    *err = e;
    return ret;
}

int ks_error_set(struct ks_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = set_va(err, errnum, true, fmt, ap);
    va_end(ap);
    return r;
}

int ks_error_set_plain(struct ks_error **err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = set_va(err, errnum, false, fmt, ap);
    va_end(ap);
    return r;
}

int ks_error_wrap(struct ks_error **err, const char *fmt, ...)
{
    if (err == NULL || *err == NULL)
        return -EINVAL;
    struct ks_error *e = *err;
    char *ctx = NULL, *full = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&ctx, fmt, ap);
    va_end(ap);
    if (n >= 0 && asprintf(&full, "%s: %s", ctx, e->msg) >= 0) {
        free(e->msg);
        e->msg = full;
    }
    free(ctx);
    return -e->errnum;
}

struct ks_error *ks_error_new(int errnum, const char *msg)
{
    struct ks_error *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->errnum = errnum > 0 ? errnum : EINVAL;
    e->msg = strdup(msg ? msg : "unknown error");
    return e;
}

void ks_error_free(struct ks_error *e)
{
    if (e == NULL)
        return;
    free(e->msg);
    free(e);
}

void ks_strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}
