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

int ks_cli_open_container(const char *name, struct ks_engine **e, struct ks_db_container **c,
                          json_object **config, struct ks_error **err)
{
    int r = ks_cli_engine_open(e, err);
    return r < 0 ? r : ks_engine_lookup(*e, name, c, config, err);
}

int ks_cli_nargs(const char *cmd, int have, int min, int max, bool see)
{
    if (have >= min && (max < 0 || have <= max))
        return 0;
    fprintf(stderr, "kiste %s: requires %s %d argument%s\n", cmd,
            min == max ? "exactly" : "at least", min, min == 1 ? "" : "s");
    if (see)
        fprintf(stderr, "See 'kiste %s --help'.\n", cmd);
    return 1;
}

int ks_cli_for_each(int argc, char **argv, int first, ks_cli_each_fn fn, void *userdata, bool print)
{
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    int status = 0;
    for (int i = first; i < argc; i++) {
        _cleanup_db_container_ struct ks_db_container *c = NULL;
        if (ks_engine_lookup(e, argv[i], &c, NULL, &err) < 0 || fn(e, c->id, userdata, &err) < 0) {
            status = ks_cli_fail(TAKE_PTR(err), 1);
            continue;
        }
        if (print)
            printf("%s\n", argv[i]);
    }
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
