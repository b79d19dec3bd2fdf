/* `kiste system …` (system.c) and `kiste info` (main.c). */
#pragma once

#include <stdint.h>

#include <json-c/json.h>

int ks_cli_system(int argc, char **argv);
int ks_cli_info(int argc, char **argv);
/* `kiste volume …` (volume.c). */
int ks_cli_volume(int argc, char **argv);
struct ks_engine;
struct ks_error;
/* The volumes' row of `system df`: how many, how many some container uses, their size and the
 * size of the unused ones; with ret_rows (may be NULL), one {Name, Links, Size} per volume
 * (owned by the caller). */
int ks_cli_volume_usage(struct ks_engine *e, int64_t *ret_total, int64_t *ret_active,
                        int64_t *ret_size, int64_t *ret_reclaimable, json_object **ret_rows,
                        struct ks_error **err);
