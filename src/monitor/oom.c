/* Where the kernel counts the OOM kills of a process's cgroup, on cgroup v2, v1 or the hybrid
 * of both: memory.events (v2, where the memory controller is) or memory.oom_control (the v1
 * memory hierarchy). Both list "oom_kill N". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.h"

/* The mount point of the first mount in mountinfo (modified in place) whose file system type
 * is fstype and, when want_opt is given, whose super options name it. */
static const char *find_mount(char *mountinfo, const char *fstype, const char *want_opt)
{
    /* id parent maj:min root mountpoint options [optional…] - fstype source super-options */
    for (char *save = NULL, *l = strtok_r(mountinfo, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        char *sep = strstr(l, " - ");
        if (sep == NULL)
            continue;
        *sep = '\0';
        char *f[5] = {0}, *s = l;
        for (int i = 0; i < 5 && s; i++) {
            f[i] = s;
            s = strchr(s, ' ');
            if (s)
                *s++ = '\0';
        }
        char *type = sep + 3, *source = strchr(type, ' ');
        if (f[4] == NULL || source == NULL)
            continue;
        *source++ = '\0';
        char *super = strchr(source, ' ');
        if (strcmp(type, fstype) != 0)
            continue;
        if (want_opt) {
            bool found = false;
            for (char *o = super ? super + 1 : NULL, *osave = NULL,
                      *t = o ? strtok_r(o, ",", &osave) : NULL;
                 t; t = strtok_r(NULL, ",", &osave))
                found = found || strcmp(t, want_opt) == 0;
            if (!found)
                continue;
        }
        return f[4];
    }
    return NULL;
}

static bool has_controller(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

void mon_oom_files(const char *proc_cgroup, const char *mountinfo, char *ret_v2, char *ret_v1,
                   size_t len)
{
    ret_v2[0] = ret_v1[0] = '\0';
    _cleanup_free_ char *cg = strdup(proc_cgroup);
    if (cg == NULL)
        return;
    const char *v2_rel = NULL, *v1_rel = NULL;
    /* Lines "hierarchy-id:controllers:path"; v2 is "0::path". */
    for (char *save = NULL, *l = strtok_r(cg, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c1 = *c2 = '\0';
        if (strcmp(l, "0") == 0 && c1 + 1 == c2)
            v2_rel = c2 + 1;
        else if (has_controller(c1 + 1, "memory"))
            v1_rel = c2 + 1;
    }
    const char *mnt;
    _cleanup_free_ char *mi = strdup(mountinfo);
    if (mi && v2_rel && (mnt = find_mount(mi, "cgroup2", NULL)))
        snprintf(ret_v2, len, "%s%s/memory.events", mnt, strcmp(v2_rel, "/") ? v2_rel : "");
    free(mi);
    mi = strdup(mountinfo);
    if (mi && v1_rel && (mnt = find_mount(mi, "cgroup", "memory")))
        snprintf(ret_v1, len, "%s%s/memory.oom_control", mnt, strcmp(v1_rel, "/") ? v1_rel : "");
}

bool mon_oom_count_parse(const char *text)
{
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, "oom_kill ", 9) == 0)
            return strtoull(l + 9, NULL, 10) > 0;
    return false;
}
