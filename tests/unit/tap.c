#include "tap.h"

#include <stdarg.h>
#include <stdio.h>

static int count, failed;

void tap_plan_auto(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
}

bool tap_ok(bool cond, const char *fmt, ...)
{
    va_list ap;
    count++;
    if (!cond)
        failed++;
    printf("%s %d - ", cond ? "ok" : "not ok", count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    return cond;
}

void tap_skip(const char *why, const char *fmt, ...)
{
    va_list ap;
    count++;
    printf("ok %d - ", count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" # SKIP %s\n", why);
}

void tap_diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

int tap_done(void)
{
    printf("1..%d\n", count);
    return failed ? 1 : 0;
}
