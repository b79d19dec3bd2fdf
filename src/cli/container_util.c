/* Helpers shared by the container commands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "format.h"

int ks_cli_engine_open(struct ks_engine **ret, struct ks_error **err)
{
    return ks_engine_open(getenv("KISTE_ROOT"), getenv("KISTE_RUNROOT"), ret, err);
}

int ks_cli_fail(struct ks_error *e, int status)
{
    fprintf(stderr, "Error: %s\n", e && e->msg ? e->msg : "unknown error");
    ks_error_free(e);
    return status;
}

int ks_cli_start_status(const struct ks_error *e)
{
    if (e && e->errnum == ENOENT)
        return 127;
    if (e && e->errnum == EACCES)
        return 126;
    return 125;
}
