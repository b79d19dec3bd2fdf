/* Mount specifications as Docker's client and daemon read them: -v/--volume's colon syntax,
 * --mount's comma syntax, and the HostConfig.Mounts entries they are stored as. Pure: no file
 * system access, so the rules are unit-tested on their own. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../engine/container.h"
#include "volume.h"

/* Longer input is not a mount spec. */
#define SPEC_MAX 8192

const char *ks_mount_type_name(enum ks_mount_type t)
{
    static const char *const names[] = {
        [KS_MOUNT_BIND] = "bind",
        [KS_MOUNT_VOLUME] = "volume",
        [KS_MOUNT_TMPFS] = "tmpfs",
    };
    return (size_t)t < KS_ELEMENTSOF(names) ? names[t] : "unknown";
}

void ks_mount_spec_clear(struct ks_mount_spec *s)
{
    free(s->source);
    free(s->target);
    free(s->mode);
    free(s->propagation);
    if (s->labels)
        json_object_put(s->labels);
    if (s->options)
        json_object_put(s->options);
    memset(s, 0, sizeof(*s));
}

static bool is_propagation(const char *s)
{
    static const char *const p[] = {"private", "rprivate", "shared", "rshared", "slave", "rslave"};
    for (size_t i = 0; i < KS_ELEMENTSOF(p); i++)
        if (strcmp(s, p[i]) == 0)
            return true;
    return false;
}

/* The mode field of -v: at most one of each kind. Fills readonly, propagation and nocopy. */
static bool parse_mode(const char *mode, struct ks_mount_spec *s)
{
    _cleanup_free_ char *copy = strdup(mode);
    if (copy == NULL)
        return false;
    int rw = 0, label = 0, prop = 0, copymode = 0, consistency = 0;
    for (char *save = NULL, *p = copy, *t; (t = strtok_r(p, ",", &save)); p = NULL) {
        if (strcmp(t, "ro") == 0 || strcmp(t, "rw") == 0) {
            rw++;
            s->readonly = strcmp(t, "ro") == 0;
        } else if (strcmp(t, "z") == 0 || strcmp(t, "Z") == 0) {
            label++; /* SELinux relabelling: no LSM here, accepted as Docker accepts it */
        } else if (is_propagation(t)) {
            prop++;
            free(s->propagation);
            s->propagation = strdup(t);
        } else if (strcmp(t, "nocopy") == 0 || strcmp(t, "copy") == 0) {
            copymode++;
            s->nocopy = strcmp(t, "nocopy") == 0;
        } else if (strcmp(t, "consistent") == 0 || strcmp(t, "cached") == 0 ||
                   strcmp(t, "delegated") == 0) {
            consistency++;
        } else {
            return false;
        }
    }
    return rw <= 1 && label <= 1 && prop <= 1 && copymode <= 1 && consistency <= 1;
}

static bool looks_like_mode(const char *m)
{
    struct ks_mount_spec probe = {0};
    bool ok = parse_mode(m, &probe);
    ks_mount_spec_clear(&probe);
    return ok;
}

static int invalid(struct ks_error **err, const char *spec)
{
    return ks_error_msg(err, "invalid volume specification: '%s'", spec);
}

static int check_target(const char *target, const char *type, struct ks_error **err)
{
    if (target == NULL || *target == '\0')
        return ks_error_msg(err,
                            "invalid mount config for type \"%s\": field Target must not be "
                            "empty",
                            type);
    if (target[0] != '/')
        return ks_error_msg(err,
                            "invalid mount config for type \"%s\": invalid mount path: '%s' mount "
                            "path must be absolute",
                            type, target);
    _cleanup_free_ char *clean = ks_path_clean(target);
    if (clean && strcmp(clean, "/") == 0)
        return ks_error_msg(err, "invalid specification: destination can't be '/'");
    return 0;
}

int ks_mount_spec_parse_volume(const char *spec, struct ks_mount_spec *ret, struct ks_error **err)
{
    memset(ret, 0, sizeof(*ret));
    if (spec == NULL || *spec == '\0' || strlen(spec) > SPEC_MAX)
        return invalid(err, spec ? spec : "");
    _cleanup_free_ char *copy = strdup(spec);
    if (copy == NULL)
        return ks_error_set(err, ENOMEM, "parse volume");
    char *f[4] = {0};
    size_t n = 0;
    for (char *p = copy; p && n < 4; n++) {
        f[n] = p;
        p = strchr(p, ':');
        if (p)
            *p++ = '\0';
    }
    if (n > 3)
        return invalid(err, spec);
    const char *src = NULL, *dst = NULL, *mode = "";
    if (n == 1) {
        dst = f[0];
    } else if (n == 2 && f[0][0] == '/' && f[1][0] != '/' && looks_like_mode(f[1])) {
        /* "/ctr:ro": an anonymous volume with a mode, when the second part reads as one. */
        dst = f[0];
        mode = f[1];
    } else {
        src = f[0];
        dst = f[1];
        if (n == 3)
            mode = f[2];
    }
    if (src && *src == '\0')
        return invalid(err, spec);
    struct ks_mount_spec s = {.type = src && src[0] == '/' ? KS_MOUNT_BIND : KS_MOUNT_VOLUME};
    if (!parse_mode(mode, &s)) {
        ks_mount_spec_clear(&s);
        return ks_error_msg(err, "invalid mode: %s", mode);
    }
    int r = check_target(dst, ks_mount_type_name(s.type), err);
    if (r >= 0 && s.type == KS_MOUNT_VOLUME && s.propagation && *s.propagation)
        r = ks_error_msg(err, "invalid mode: %s", mode);
    if (r >= 0 && s.type == KS_MOUNT_BIND && s.nocopy)
        r = ks_error_msg(err, "invalid mode: %s", mode);
    if (r >= 0 && s.type == KS_MOUNT_VOLUME && src && !ks_volume_name_valid(src))
        r = ks_error_msg(err,
                         "\"%s\" includes invalid characters for a local volume name, only "
                         "\"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a "
                         "host directory, use absolute path",
                         src);
    if (r < 0) {
        ks_mount_spec_clear(&s);
        return r;
    }
    s.source = src ? strdup(src) : NULL;
    s.target = strdup(dst);
    s.mode = strdup(mode);
    if (s.propagation == NULL)
        s.propagation = strdup("");
    if ((src && s.source == NULL) || s.target == NULL || s.mode == NULL || s.propagation == NULL) {
        ks_mount_spec_clear(&s);
        return ks_error_set(err, ENOMEM, "parse volume");
    }
    *ret = s;
    return 0;
}

/* --- --mount --- */

/* "true"/"1"/"false"/"0", or no value (true). */
static int parse_bool(const char *key, const char *v, bool *ret, struct ks_error **err)
{
    if (v == NULL || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        *ret = true;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *ret = false;
    else
        return ks_error_msg(err, "invalid value for %s: %s", key, v);
    return 0;
}

/* "k=v" into the object *o (created when NULL). */
static int add_kv(json_object **o, const char *key, const char *kv, struct ks_error **err)
{
    const char *eq = kv ? strchr(kv, '=') : NULL;
    if (kv == NULL || eq == NULL || eq == kv)
        return ks_error_msg(err, "invalid value for %s: %s", key, kv ? kv : "");
    if (*o == NULL && (*o = json_object_new_object()) == NULL)
        return ks_error_set(err, ENOMEM, "parse mount");
    _cleanup_free_ char *k = strndup(kv, (size_t)(eq - kv));
    if (k == NULL)
        return ks_error_set(err, ENOMEM, "parse mount");
    json_object_object_add(*o, k, json_object_new_string(eq + 1));
    return 0;
}

static int set_str(char **dst, const char *v, const char *key, struct ks_error **err)
{
    if (v == NULL)
        return ks_error_msg(err, "invalid field '%s' must be a key=value pair", key);
    free(*dst);
    *dst = strdup(v);
    return *dst ? 0 : ks_error_set(err, ENOMEM, "parse mount");
}

struct mount_parse {
    struct ks_mount_spec *s;
    bool type_set, volume_opts, bind_opts, tmpfs_opts;
    char *driver;
};

static int mount_key(struct mount_parse *m, const char *k, const char *v, struct ks_error **err)
{
    struct ks_mount_spec *s = m->s;
    int64_t n;
    if (strcmp(k, "type") == 0) {
        if (v == NULL ||
            (strcmp(v, "bind") != 0 && strcmp(v, "volume") != 0 && strcmp(v, "tmpfs") != 0))
            return ks_error_msg(err, "invalid mount type: \"%s\"", v ? v : "");
        s->type = strcmp(v, "bind") == 0    ? KS_MOUNT_BIND
                  : strcmp(v, "tmpfs") == 0 ? KS_MOUNT_TMPFS
                                            : KS_MOUNT_VOLUME;
        return 0;
    }
    if (strcmp(k, "source") == 0 || strcmp(k, "src") == 0)
        return set_str(&s->source, v, k, err);
    if (strcmp(k, "target") == 0 || strcmp(k, "dst") == 0 || strcmp(k, "destination") == 0)
        return set_str(&s->target, v, k, err);
    if (strcmp(k, "readonly") == 0 || strcmp(k, "ro") == 0)
        return parse_bool(k, v, &s->readonly, err);
    if (strcmp(k, "consistency") == 0 || strcmp(k, "bind-nonrecursive") == 0)
        return 0; /* no meaning on Linux */
    if (strcmp(k, "bind-propagation") == 0) {
        m->bind_opts = true;
        if (v == NULL || !is_propagation(v))
            return ks_error_msg(err, "invalid value for %s: %s", k, v ? v : "");
        return set_str(&s->propagation, v, k, err);
    }
    if (strcmp(k, "volume-nocopy") == 0) {
        m->volume_opts = true;
        return parse_bool(k, v, &s->nocopy, err);
    }
    if (strcmp(k, "volume-label") == 0) {
        m->volume_opts = true;
        return add_kv(&s->labels, k, v, err);
    }
    if (strcmp(k, "volume-opt") == 0) {
        m->volume_opts = true;
        return add_kv(&s->options, k, v, err);
    }
    if (strcmp(k, "volume-driver") == 0) {
        m->volume_opts = true;
        return set_str(&m->driver, v, k, err);
    }
    if (strcmp(k, "tmpfs-size") == 0) {
        m->tmpfs_opts = true;
        if (v == NULL || ks_parse_size(v, &n) < 0)
            return ks_error_msg(err, "invalid value for %s: %s", k, v ? v : "");
        s->tmpfs_size = n;
        return 0;
    }
    if (strcmp(k, "tmpfs-mode") == 0) {
        m->tmpfs_opts = true;
        char *end;
        unsigned long mode = v ? strtoul(v, &end, 8) : 0;
        if (v == NULL || *v == '\0' || *end || mode > 07777)
            return ks_error_msg(err, "invalid value for %s: %s", k, v ? v : "");
        s->tmpfs_mode = (uint32_t)mode;
        return 0;
    }
    return ks_error_msg(err, "unexpected key '%s' in '%s%s%s'", k, k, v ? "=" : "", v ? v : "");
}

/* What the daemon refuses of a parsed --mount. */
static int mount_check(const struct mount_parse *m, struct ks_error **err)
{
    const struct ks_mount_spec *s = m->s;
    const char *t = ks_mount_type_name(s->type);
    int r = check_target(s->target, t, err);
    if (r < 0)
        return r;
    if (s->type == KS_MOUNT_BIND && (s->source == NULL || *s->source == '\0'))
        return ks_error_msg(err, "invalid mount config for type \"bind\": field Source must not be "
                                 "empty");
    if (s->type == KS_MOUNT_BIND && s->source[0] != '/')
        return ks_error_msg(err,
                            "invalid mount config for type \"bind\": invalid mount path: '%s' "
                            "mount path must be absolute",
                            s->source);
    if (s->type == KS_MOUNT_TMPFS && s->source && *s->source)
        return ks_error_msg(err, "invalid mount config for type \"tmpfs\": field Source must not "
                                 "be specified");
    if (s->type != KS_MOUNT_VOLUME && m->volume_opts)
        return ks_error_msg(err,
                            "invalid mount config for type \"%s\": field VolumeOptions must not be "
                            "specified",
                            t);
    if (s->type != KS_MOUNT_BIND && m->bind_opts)
        return ks_error_msg(err,
                            "invalid mount config for type \"%s\": field BindOptions must not be "
                            "specified",
                            t);
    if (s->type != KS_MOUNT_TMPFS && m->tmpfs_opts)
        return ks_error_msg(err,
                            "invalid mount config for type \"%s\": field TmpfsOptions must not be "
                            "specified",
                            t);
    if (s->type == KS_MOUNT_VOLUME && s->source && *s->source && !ks_volume_name_valid(s->source))
        return ks_error_msg(
            err, "invalid mount config for type \"volume\": invalid volume name \"%s\"", s->source);
    if (m->driver && strcmp(m->driver, "local") != 0)
        return ks_error_msg(err, "error looking up volume plugin %s: plugin \"%s\" not found",
                            m->driver, m->driver);
    return ks_volume_options_check(s->options, err);
}

/* Fills what a parsed spec leaves unset: empty strings rather than NULL, "" source → NULL. */
static int spec_finish(struct ks_mount_spec *s, struct ks_error **err)
{
    if (s->source && *s->source == '\0') {
        free(s->source);
        s->source = NULL;
    }
    if (s->mode == NULL)
        s->mode = strdup("");
    if (s->propagation == NULL)
        s->propagation = strdup("");
    if (s->mode == NULL || s->propagation == NULL)
        return ks_error_set(err, ENOMEM, "parse mount");
    return 0;
}

int ks_mount_spec_parse_mount(const char *csv, struct ks_mount_spec *ret, struct ks_error **err)
{
    memset(ret, 0, sizeof(*ret));
    if (csv == NULL || strlen(csv) > SPEC_MAX)
        return ks_error_msg(err, "invalid mount specification");
    _cleanup_free_ char *copy = strdup(csv);
    if (copy == NULL)
        return ks_error_set(err, ENOMEM, "parse mount");
    struct ks_mount_spec s = {.type = KS_MOUNT_VOLUME, .from_mount = true};
    struct mount_parse m = {.s = &s};
    int r = 0;
    for (char *save = NULL, *p = copy, *t; r >= 0 && (t = strtok_r(p, ",", &save)); p = NULL) {
        char *eq = strchr(t, '=');
        if (eq)
            *eq++ = '\0';
        r = mount_key(&m, t, eq, err);
    }
    if (r >= 0)
        r = mount_check(&m, err);
    if (r >= 0)
        r = spec_finish(&s, err);
    free(m.driver);
    if (r < 0) {
        ks_mount_spec_clear(&s);
        return r;
    }
    *ret = s;
    return 0;
}

/* --- HostConfig.Mounts --- */

json_object *ks_mount_spec_to_json(const struct ks_mount_spec *s)
{
    json_object *m = json_object_new_object();
    if (m == NULL)
        return NULL;
    json_object_object_add(m, "Type", json_object_new_string(ks_mount_type_name(s->type)));
    json_object_object_add(m, "Source", json_object_new_string(s->source ? s->source : ""));
    json_object_object_add(m, "Target", json_object_new_string(s->target));
    if (s->readonly)
        json_object_object_add(m, "ReadOnly", json_object_new_boolean(true));
    if (s->type == KS_MOUNT_BIND && s->propagation && *s->propagation) {
        json_object *b = json_object_new_object();
        json_object_object_add(b, "Propagation", json_object_new_string(s->propagation));
        json_object_object_add(m, "BindOptions", b);
    }
    if (s->type == KS_MOUNT_VOLUME && (s->nocopy || s->labels || s->options)) {
        json_object *v = json_object_new_object();
        if (s->nocopy)
            json_object_object_add(v, "NoCopy", json_object_new_boolean(true));
        if (s->labels)
            json_object_object_add(v, "Labels", json_object_get(s->labels));
        if (s->options) {
            json_object *d = json_object_new_object();
            json_object_object_add(d, "Name", json_object_new_string("local"));
            json_object_object_add(d, "Options", json_object_get(s->options));
            json_object_object_add(v, "DriverConfig", d);
        }
        json_object_object_add(m, "VolumeOptions", v);
    }
    if (s->type == KS_MOUNT_TMPFS && (s->tmpfs_size || s->tmpfs_mode)) {
        json_object *t = json_object_new_object();
        if (s->tmpfs_size)
            json_object_object_add(t, "SizeBytes", json_object_new_int64(s->tmpfs_size));
        if (s->tmpfs_mode)
            json_object_object_add(t, "Mode", json_object_new_int64(s->tmpfs_mode));
        json_object_object_add(m, "TmpfsOptions", t);
    }
    return m;
}

static json_object *string_object(json_object *o)
{
    if (o == NULL || !json_object_is_type(o, json_type_object))
        return NULL;
    json_object_object_foreach(o, k, v)
    {
        (void)k;
        if (!json_object_is_type(v, json_type_string))
            return NULL;
    }
    return json_object_get(o);
}

int ks_mount_spec_from_json(json_object *m, struct ks_mount_spec *ret, struct ks_error **err)
{
    memset(ret, 0, sizeof(*ret));
    struct ks_mount_spec s = {.type = KS_MOUNT_VOLUME, .from_mount = true};
    struct mount_parse p = {.s = &s};
    const char *type = ks_json_str(m, "Type"), *src = ks_json_str(m, "Source");
    const char *dst = ks_json_str(m, "Target");
    int r = type ? mount_key(&p, "type", type, err) : 0;
    s.source = src && *src ? strdup(src) : NULL;
    s.target = dst ? strdup(dst) : NULL;
    s.readonly = ks_json_bool(m, "ReadOnly", false);
    json_object *b = ks_json_get_type(m, "BindOptions", json_type_object);
    json_object *v = ks_json_get_type(m, "VolumeOptions", json_type_object);
    json_object *t = ks_json_get_type(m, "TmpfsOptions", json_type_object);
    p.bind_opts = b != NULL;
    p.volume_opts = v != NULL;
    p.tmpfs_opts = t != NULL;
    const char *prop = ks_json_str(b, "Propagation");
    if (r >= 0 && prop && *prop)
        r = mount_key(&p, "bind-propagation", prop, err);
    s.nocopy = ks_json_bool(v, "NoCopy", false);
    s.labels = string_object(ks_json_get(v, "Labels"));
    json_object *drv = ks_json_get_type(v, "DriverConfig", json_type_object);
    s.options = string_object(ks_json_get(drv, "Options"));
    const char *dname = ks_json_str(drv, "Name");
    if (dname && *dname)
        p.driver = strdup(dname);
    s.tmpfs_size = ks_json_int(t, "SizeBytes", 0);
    int64_t mode = ks_json_int(t, "Mode", 0);
    if (s.tmpfs_size < 0 || mode < 0 || mode > 07777)
        r = r < 0 ? r : ks_error_msg(err, "invalid tmpfs options");
    s.tmpfs_mode = (uint32_t)(mode & 07777);
    if (r >= 0)
        r = mount_check(&p, err);
    if (r >= 0)
        r = spec_finish(&s, err);
    free(p.driver);
    if (r < 0) {
        ks_mount_spec_clear(&s);
        return r;
    }
    *ret = s;
    return 0;
}
