/* Namespaces: parsing the config's list, joining by path, user and time namespace set-up. */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "internal.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

const struct ks_ns_info ks_ns_table[KS_NS__COUNT] = {
    [KS_NS_USER] = {"user", "user", CLONE_NEWUSER},
    [KS_NS_PID] = {"pid", "pid", CLONE_NEWPID},
    [KS_NS_IPC] = {"ipc", "ipc", CLONE_NEWIPC},
    [KS_NS_UTS] = {"uts", "uts", CLONE_NEWUTS},
    [KS_NS_NET] = {"network", "net", CLONE_NEWNET},
    [KS_NS_CGROUP] = {"cgroup", "cgroup", CLONE_NEWCGROUP},
    [KS_NS_MNT] = {"mount", "mnt", CLONE_NEWNS},
    [KS_NS_TIME] = {"time", "time", CLONE_NEWTIME},
};

int ks_ns_parse(json_object *spec, struct ks_ns_config *ret, struct ks_error **err)
{
    memset(ret, 0, sizeof(*ret));
    json_object *list = ks_json_get_type(ks_json_get(spec, "linux"), "namespaces", json_type_array);
    size_t n = list ? json_object_array_length(list) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(list, i);
        const char *type = ks_json_str(e, "type");
        const char *path = ks_json_str(e, "path");
        size_t k;
        for (k = 0; k < KS_NS__COUNT; k++)
            if (type && strcmp(type, ks_ns_table[k].spec_name) == 0)
                break;
        if (k == KS_NS__COUNT)
            return ks_error_msg(err, "linux.namespaces[%zu].type: unknown namespace type `%s`", i,
                                type ? type : "");
        ret->wanted[k] = true;
        ret->path[k] = path && *path ? path : NULL;
    }
    return 0;
}

int ks_ns_join_paths(const struct ks_ns_config *ns, unsigned skip_mask, struct ks_error **err)
{
    /* Open every path first: after joining a mount namespace the others might not resolve. */
    int fds[KS_NS__COUNT];
    for (size_t k = 0; k < KS_NS__COUNT; k++)
        fds[k] = -EBADF;
    int r = 0;
    for (size_t k = 0; k < KS_NS__COUNT; k++) {
        if (!ns->path[k] || k == KS_NS_PID || (skip_mask & (1u << k)))
            continue;
        fds[k] = open(ns->path[k], O_RDONLY | O_CLOEXEC);
        if (fds[k] < 0) {
            r = ks_error_set(err, errno, "open %s namespace `%s`", ks_ns_table[k].spec_name,
                             ns->path[k]);
            goto out;
        }
    }
    for (size_t k = 0; k < KS_NS__COUNT; k++) {
        if (fds[k] < 0)
            continue;
        if (setns(fds[k], ks_ns_table[k].flag) < 0) {
            r = ks_error_set(err, errno, "join %s namespace `%s`", ks_ns_table[k].spec_name,
                             ns->path[k]);
            goto out;
        }
    }
out:
    for (size_t k = 0; k < KS_NS__COUNT; k++)
        if (fds[k] >= 0)
            close(fds[k]);
    return r;
}

static int write_map(pid_t pid, const char *file, json_object *maps, const char *field,
                     struct ks_error **err)
{
    char buf[8192];
    size_t off = 0;
    size_t n = json_object_array_length(maps);
    for (size_t i = 0; i < n; i++) {
        json_object *m = json_object_array_get_idx(maps, i);
        int w =
            snprintf(buf + off, sizeof(buf) - off, "%lld %lld %lld\n",
                     (long long)ks_json_int(m, "containerID", 0),
                     (long long)ks_json_int(m, "hostID", 0), (long long)ks_json_int(m, "size", 0));
        if (w < 0 || (size_t)w >= sizeof(buf) - off)
            return ks_error_msg(err, "linux.%s: too many mappings", field);
        off += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
    int r = ks_write_file(path, buf, off, err);
    if (r < 0)
        return ks_error_wrap(err, "linux.%s", field);
    return 0;
}

int ks_ns_write_id_maps(pid_t pid, json_object *linux_obj, struct ks_error **err)
{
    json_object *u = ks_json_get_type(linux_obj, "uidMappings", json_type_array);
    json_object *g = ks_json_get_type(linux_obj, "gidMappings", json_type_array);
    if (u && json_object_array_length(u) > 0) {
        int r = write_map(pid, "uid_map", u, "uidMappings", err);
        if (r < 0)
            return r;
    }
    if (g && json_object_array_length(g) > 0) {
        if (geteuid() != 0) {
            /* Without CAP_SETGID in the parent namespace the kernel requires setgroups to be
             * denied before gid_map can be written. */
            char path[64];
            snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
            ks_write_file(path, "deny", 4, NULL);
        }
        int r = write_map(pid, "gid_map", g, "gidMappings", err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_ns_write_time_offsets(json_object *linux_obj, struct ks_error **err)
{
    json_object *t = ks_json_get_type(linux_obj, "timeOffsets", json_type_object);
    if (t == NULL)
        return 0;
    char buf[256];
    size_t off = 0;
    static const char *const clocks[] = {"monotonic", "boottime"};
    for (size_t i = 0; i < KS_ELEMENTSOF(clocks); i++) {
        json_object *c = ks_json_get_type(t, clocks[i], json_type_object);
        if (c == NULL)
            continue;
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s %lld %lld\n", clocks[i],
                                (long long)ks_json_int(c, "secs", 0),
                                (long long)ks_json_int(c, "nanosecs", 0));
    }
    if (off == 0)
        return 0;
    int r = ks_write_file("/proc/self/timens_offsets", buf, off, err);
    if (r < 0)
        return ks_error_wrap(err, "linux.timeOffsets");
    return 0;
}
