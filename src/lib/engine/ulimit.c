/* Resource limits a container asks for (HostConfig.Ulimits, Docker's --ulimit) against the hard
 * limits kiste itself runs under: an unprivileged process (or one without CAP_SYS_RESOURCE)
 * cannot raise a hard limit, so a request above it would make the container fail. It gets the
 * hard limit instead, and the caller tells the user. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../base/cleanup.h"
#include "../base/json.h"
#include "container.h"

static const struct {
    const char *name;
    int resource;
} limits[] = {
    {"as", RLIMIT_AS},           {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},       {"fsize", RLIMIT_FSIZE},       {"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE},   {"nproc", RLIMIT_NPROC},       {"rss", RLIMIT_RSS},
    {"rtprio", RLIMIT_RTPRIO},   {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},
};

/* Docker's -1 (and anything negative) is "unlimited". */
static bool above(int64_t v, rlim_t max)
{
    if (max == RLIM_INFINITY)
        return false;
    return v < 0 || (uint64_t)v > (uint64_t)max;
}

static int add_warning(char ***warnings, size_t *n, char *msg)
{
    if (msg == NULL)
        return -ENOMEM;
    char **w = realloc(*warnings, (*n + 2) * sizeof(char *));
    if (w == NULL) {
        free(msg);
        return -ENOMEM;
    }
    w[(*n)++] = msg;
    w[*n] = NULL;
    *warnings = w;
    return 0;
}

int ks_container_ulimits_clamp(json_object *host_config, char ***ret_warnings,
                               struct ks_error **err)
{
    _cleanup_strv_ char **warnings = NULL;
    size_t n = 0;
    json_object *a = ks_json_get_type(host_config, "Ulimits", json_type_array);
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        json_object *u = json_object_array_get_idx(a, i);
        const char *name = ks_json_str(u, "Name");
        int res = -1;
        for (size_t k = 0; name && k < KS_ELEMENTSOF(limits); k++)
            if (strcmp(name, limits[k].name) == 0)
                res = limits[k].resource;
        if (res < 0)
            return ks_error_msg(err, "invalid ulimit type: %s", name ? name : "");
        struct rlimit have;
        if (getrlimit(res, &have) < 0)
            return ks_error_set(err, errno, "getrlimit %s", name);
        int64_t soft = ks_json_int(u, "Soft", 0), hard = ks_json_int(u, "Hard", 0);
        if (!above(soft, have.rlim_max) && !above(hard, have.rlim_max))
            continue;
        int64_t max = (int64_t)have.rlim_max;
        int64_t new_soft = above(soft, have.rlim_max) ? max : soft;
        char *msg = NULL;
        if (asprintf(&msg,
                     "ulimit %s=%lld:%lld is above the hard limit %lld that kiste runs under; "
                     "using %s=%lld:%lld",
                     name, (long long)soft, (long long)hard, (long long)max, name,
                     (long long)new_soft, (long long)max) < 0)
            msg = NULL;
        if (add_warning(&warnings, &n, msg) < 0)
            return ks_error_set(err, ENOMEM, "ulimits");
        json_object_object_add(u, "Soft", json_object_new_int64(new_soft));
        json_object_object_add(u, "Hard", json_object_new_int64(max));
    }
    if (ret_warnings)
        *ret_warnings = TAKE_PTR(warnings);
    return (int)n;
}
