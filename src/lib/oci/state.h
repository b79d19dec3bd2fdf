/* Runtime state records, internal to the OCI module. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "../base/error.h"

enum ks_status {
    KS_STATUS_CREATING,
    KS_STATUS_CREATED,
    KS_STATUS_RUNNING,
    KS_STATUS_STOPPED,
    KS_STATUS_PAUSED,
};

struct ks_state {
    json_object *raw; /* the whole record; the strings below point into it */
    char *dir;        /* <root>/<id> */
    const char *id, *bundle, *rootfs, *created, *cgroup_path;
    pid_t pid;
    unsigned long long pid_start;
    json_object *config;
};

int ks_state_load(const char *root, const char *id, struct ks_state **ret, struct ks_error **err);
int ks_state_save(int dirfd, json_object *o, struct ks_error **err);
void ks_state_free(struct ks_state *s);
KS_DEFINE_CLEANUP(struct ks_state *, ks_state_free)
/* Status from the process and the exec fifo; paused is decided by the caller from the cgroup. */
enum ks_status ks_state_status(const struct ks_state *s, bool *unused);
const char *ks_status_name(enum ks_status st);
