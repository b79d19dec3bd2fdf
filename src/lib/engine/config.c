/* Container configs: merging the image config in at create time, users and groups resolved
 * against the container's own /etc files, and signal names. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "container.h"

/* The /etc files of an untrusted image: more than this is not a passwd file. */
#define ETC_FILE_MAX ((size_t)4 << 20)

/* Whether an entry of a NULL/array value counts as "given": Docker treats an absent or null
 * Cmd as "inherit" and so do we; an empty array is given. */
static json_object *given_array(json_object *o, const char *key)
{
    return ks_json_get_type(o, key, json_type_array);
}

static size_t key_len(const char *kv)
{
    return strcspn(kv, "=");
}

/* Image env first, each container value replacing the image's value of the same name in place,
 * new names appended: Docker's ReplaceOrAppendEnvValues. */
static json_object *merge_env(json_object *image_env, json_object *user_env)
{
    json_object *out = json_object_new_array();
    if (out == NULL)
        return NULL;
    size_t ni = image_env ? json_object_array_length(image_env) : 0;
    size_t nu = user_env ? json_object_array_length(user_env) : 0;
    for (size_t i = 0; i < ni; i++) {
        const char *kv = json_object_get_string(json_object_array_get_idx(image_env, i));
        if (kv == NULL)
            continue;
        const char *repl = kv;
        for (size_t j = 0; j < nu; j++) {
            const char *u = json_object_get_string(json_object_array_get_idx(user_env, j));
            if (u && key_len(u) == key_len(kv) && strncmp(u, kv, key_len(kv)) == 0)
                repl = u;
        }
        json_object_array_add(out, json_object_new_string(repl));
    }
    for (size_t j = 0; j < nu; j++) {
        const char *u = json_object_get_string(json_object_array_get_idx(user_env, j));
        bool seen = false;
        for (size_t k = 0; u && k < json_object_array_length(out) && !seen; k++) {
            const char *o = json_object_get_string(json_object_array_get_idx(out, k));
            seen = key_len(o) == key_len(u) && strncmp(o, u, key_len(u)) == 0;
        }
        if (u && !seen)
            json_object_array_add(out, json_object_new_string(u));
    }
    return out;
}

static void set_copy(json_object *dst, const char *key, json_object *v)
{
    json_object_object_add(dst, key, v ? json_object_get(v) : NULL);
}

static bool empty_str(json_object *o, const char *key)
{
    const char *s = ks_json_str(o, key);
    return s == NULL || *s == '\0';
}

static void merge_labels(json_object *c, json_object *ic)
{
    json_object *labels = json_object_new_object();
    json_object *il = ks_json_get_type(ic, "Labels", json_type_object);
    json_object *ul = ks_json_get_type(c, "Labels", json_type_object);
    if (il) {
        json_object_object_foreach(il, k1, v1)
            json_object_object_add(labels, k1, json_object_get(v1));
    }
    if (ul) {
        json_object_object_foreach(ul, k2, v2)
            json_object_object_add(labels, k2, json_object_get(v2));
    }
    json_object_object_add(c, "Labels", labels);
}

/* The image's VOLUME entries join the container's own (-v /path), as Docker merges them. */
static void merge_volumes(json_object *c, json_object *ic)
{
    json_object *iv = ks_json_get_type(ic, "Volumes", json_type_object);
    if (iv == NULL)
        return;
    json_object *uv = ks_json_get_type(c, "Volumes", json_type_object);
    if (uv == NULL) {
        set_copy(c, "Volumes", iv);
        return;
    }
    json_object_object_foreach(iv, path, v)
    {
        if (ks_json_get(uv, path) == NULL)
            json_object_object_add(uv, path, json_object_get(v));
    }
}

static void merge_command(json_object *c, json_object *ic)
{
    json_object *ep = ks_json_get(c, "Entrypoint");
    bool ep_given = ep && json_object_is_type(ep, json_type_array);
    bool ep_empty = ep_given && (json_object_array_length(ep) == 0 ||
                                 (json_object_array_length(ep) == 1 &&
                                  *json_object_get_string(json_object_array_get_idx(ep, 0)) == 0));
    json_object *cmd = given_array(c, "Cmd");
    bool cmd_empty = cmd == NULL || json_object_array_length(cmd) == 0;
    if (!ep_given || ep_empty) {
        if (cmd_empty)
            set_copy(c, "Cmd", given_array(ic, "Cmd"));
        if (!ep_given)
            set_copy(c, "Entrypoint", given_array(ic, "Entrypoint"));
        else
            json_object_object_add(c, "Entrypoint", NULL);
    } else if (cmd == NULL) {
        json_object_object_add(c, "Cmd", NULL);
    }
}

int ks_container_config_merge(json_object *config, json_object *image_config, const char *id,
                              const char *image_ref, struct ks_error **err)
{
    json_object *c = ks_json_get_type(config, "Config", json_type_object);
    if (c == NULL) {
        c = json_object_new_object();
        if (c == NULL || json_object_object_add(config, "Config", c) < 0)
            return ks_error_set(err, ENOMEM, "merge config");
    }
    if (ks_json_get_type(config, "HostConfig", json_type_object) == NULL)
        json_object_object_add(config, "HostConfig", json_object_new_object());
    json_object *ic = ks_json_get_type(image_config, "config", json_type_object);

    json_object *env = merge_env(given_array(ic, "Env"), given_array(c, "Env"));
    if (env == NULL)
        return ks_error_set(err, ENOMEM, "merge config");
    json_object_object_add(c, "Env", env);
    merge_command(c, ic);
    if (empty_str(c, "WorkingDir"))
        set_copy(c, "WorkingDir", ks_json_get(ic, "WorkingDir"));
    if (empty_str(c, "User"))
        set_copy(c, "User", ks_json_get(ic, "User"));
    if (empty_str(c, "StopSignal") && !empty_str(ic, "StopSignal"))
        set_copy(c, "StopSignal", ks_json_get(ic, "StopSignal"));
    if (ks_json_get(c, "Healthcheck") == NULL && ks_json_get(ic, "Healthcheck"))
        set_copy(c, "Healthcheck", ks_json_get(ic, "Healthcheck"));
    if (ks_json_get(c, "ExposedPorts") == NULL && ks_json_get(ic, "ExposedPorts"))
        set_copy(c, "ExposedPorts", ks_json_get(ic, "ExposedPorts"));
    merge_volumes(c, ic);
    merge_labels(c, ic);
    if (empty_str(c, "Hostname")) {
        char h[13];
        snprintf(h, sizeof(h), "%.12s", id);
        json_object_object_add(c, "Hostname", json_object_new_string(h));
    }
    if (image_ref)
        json_object_object_add(c, "Image", json_object_new_string(image_ref));
    for (const char *const *k = (const char *const[]){"WorkingDir", "User", "Domainname", NULL}; *k;
         k++)
        if (ks_json_get_type(c, *k, json_type_string) == NULL)
            json_object_object_add(c, *k, json_object_new_string(""));
    return 0;
}

/* --- users and groups --- */

static int read_etc(int rootfd, const char *path, char **ret, struct ks_error **err)
{
    struct ks_error *ignored = NULL;
    int fd = ks_open_in_root(rootfd, path, O_RDONLY | O_CLOEXEC, 0, &ignored);
    ks_error_free(ignored);
    if (fd < 0) {
        *ret = NULL;
        return 0; /* a missing file is a file without entries */
    }
    int r = ks_read_fd(fd, ETC_FILE_MAX, ret, NULL, err);
    close(fd);
    return r < 0 ? ks_error_wrap(err, "read %s", path) : 0;
}

static bool parse_id(const char *s, unsigned long *ret)
{
    if (s == NULL || !isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > UINT32_MAX - 1)
        return false;
    *ret = v;
    return true;
}

/* Splits a line of an /etc file into at most max fields at ':' (in place). */
static size_t split_fields(char *line, char **f, size_t max)
{
    size_t n = 0;
    while (n < max) {
        f[n++] = line;
        char *c = strchr(line, ':');
        if (c == NULL)
            break;
        *c = '\0';
        line = c + 1;
    }
    return n;
}

/* Finds an entry by name or (numeric) id in a passwd or group file: fields[2] is the id. Copies
 * the matching line's fields into f (pointing into buf). */
static bool find_entry(char *buf, const char *name, bool numeric, unsigned long id, char **f,
                       size_t nf)
{
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (*line == '#' || *line == '\0')
            continue;
        for (size_t i = 0; i < nf; i++)
            f[i] = NULL;
        if (split_fields(line, f, nf) < 3)
            continue;
        unsigned long v;
        if ((!numeric && strcmp(f[0], name) == 0) || (numeric && parse_id(f[2], &v) && v == id))
            return true;
    }
    return false;
}

static int lookup_group(int rootfd, const char *group, gid_t *ret, struct ks_error **err)
{
    unsigned long v;
    bool numeric = parse_id(group, &v);
    _cleanup_free_ char *buf = NULL;
    int r = read_etc(rootfd, "/etc/group", &buf, err);
    if (r < 0)
        return r;
    char *f[4];
    if (buf && find_entry(buf, group, numeric, numeric ? v : 0, f, 4) && parse_id(f[2], &v)) {
        *ret = (gid_t)v;
        return 0;
    }
    if (numeric) {
        *ret = (gid_t)v;
        return 0;
    }
    return ks_error_set_plain(err, ENOENT,
                              "unable to find group %s: no matching entries in group file", group);
}

/* Groups whose member list names user, other than primary. */
static int supplementary(int rootfd, const char *user, gid_t primary, gid_t **ret, size_t *ret_n,
                         struct ks_error **err)
{
    _cleanup_free_ char *buf = NULL;
    int r = read_etc(rootfd, "/etc/group", &buf, err);
    if (r < 0)
        return r;
    _cleanup_free_ gid_t *gids = NULL;
    size_t n = 0;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *f[4];
        unsigned long v;
        if (split_fields(line, f, 4) < 4 || !parse_id(f[2], &v) || (gid_t)v == primary)
            continue;
        for (char *m = f[3], *save = NULL, *tok; (tok = strtok_r(m, ",", &save)); m = NULL) {
            if (strcmp(tok, user) != 0)
                continue;
            gid_t *g = realloc(gids, (n + 1) * sizeof(gid_t));
            if (g == NULL)
                return ks_error_set(err, ENOMEM, "resolve groups");
            gids = g;
            gids[n++] = (gid_t)v;
            break;
        }
    }
    *ret = TAKE_PTR(gids);
    *ret_n = n;
    return 0;
}

int ks_container_resolve_user(int rootfd, const char *user, uid_t *ret_uid, gid_t *ret_gid,
                              gid_t **ret_gids, size_t *ret_n_gids, char **ret_home,
                              struct ks_error **err)
{
    if (ret_gids) {
        *ret_gids = NULL;
        *ret_n_gids = 0;
    }
    _cleanup_free_ char *u = strdup(user && *user ? user : "0");
    if (u == NULL)
        return ks_error_set(err, ENOMEM, "resolve user");
    char *group = strchr(u, ':');
    if (group)
        *group++ = '\0';
    unsigned long v = 0;
    bool numeric = parse_id(u, &v);
    if (!numeric && *u == '\0')
        return ks_error_msg(err, "invalid user `%s`", user);

    _cleanup_free_ char *buf = NULL;
    int r = read_etc(rootfd, "/etc/passwd", &buf, err);
    if (r < 0)
        return r;
    char *f[7] = {0};
    bool found = buf && find_entry(buf, u, numeric, v, f, 7);
    unsigned long uid = v, gid = 0;
    if (found) {
        if (!parse_id(f[2], &uid) || !parse_id(f[3], &gid))
            return ks_error_msg(err, "invalid /etc/passwd entry for user `%s`", u);
    } else if (!numeric) {
        return ks_error_set_plain(err, ENOENT,
                                  "unable to find user %s: no matching entries in passwd file", u);
    }
    gid_t g = (gid_t)gid;
    if (group && *group) {
        r = lookup_group(rootfd, group, &g, err);
        if (r < 0)
            return r;
    }
    if (ret_gids && found) {
        _cleanup_free_ char *name = strdup(f[0]);
        if (name == NULL)
            return ks_error_set(err, ENOMEM, "resolve user");
        r = supplementary(rootfd, name, g, ret_gids, ret_n_gids, err);
        if (r < 0)
            return r;
    }
    if (ret_home) {
        *ret_home = strdup(found && f[5] && *f[5] ? f[5] : "/");
        if (*ret_home == NULL)
            return ks_error_set(err, ENOMEM, "resolve user");
    }
    *ret_uid = (uid_t)uid;
    *ret_gid = g;
    return 0;
}

int ks_container_resolve_group(int rootfd, const char *group, gid_t *ret, struct ks_error **err)
{
    return lookup_group(rootfd, group, ret, err);
}

/* --- sizes --- */

int ks_parse_size(const char *s, int64_t *ret)
{
    if (s == NULL || !isdigit((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || v < 0)
        return -EINVAL;
    int64_t mult = 1;
    switch (tolower((unsigned char)*end)) {
    case '\0':
        break;
    case 'b':
        break;
    case 'k':
        mult = (int64_t)1 << 10;
        break;
    case 'm':
        mult = (int64_t)1 << 20;
        break;
    case 'g':
        mult = (int64_t)1 << 30;
        break;
    case 't':
        mult = (int64_t)1 << 40;
        break;
    case 'p':
        mult = (int64_t)1 << 50;
        break;
    default:
        return -EINVAL;
    }
    if (*end) {
        end++;
        if (tolower((unsigned char)*end) == 'i')
            end++;
        if (mult > 1 && tolower((unsigned char)*end) == 'b')
            end++;
        if (*end)
            return -EINVAL;
    }
    if (v * (double)mult > 9.2e18)
        return -ERANGE;
    *ret = (int64_t)(v * (double)mult);
    return 0;
}
