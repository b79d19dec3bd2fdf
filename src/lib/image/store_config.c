/* Image configs made by the store itself: `import`'s one-layer config with its --change lines
 * applied as Docker applies them. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../base/json.h"
#include "store.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Splits a Dockerfile argument list: words separated by blanks, with "…" and '…' quoting and
 * backslash escapes. NULL when out of memory; *ret_bad is set for an unterminated quote. */
static char **split_words(const char *s, bool *ret_bad)
{
    size_t cap = 4, n = 0, len = strlen(s);
    char **v = calloc(cap, sizeof(char *));
    char *word = malloc(len + 1);
    if (v == NULL || word == NULL)
        goto fail;
    *ret_bad = false;
    const char *p = s;
    while (*p) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        size_t w = 0;
        char quote = 0;
        for (; *p && (quote || !isspace((unsigned char)*p)); p++) {
            if (quote && *p == quote)
                quote = 0;
            else if (!quote && (*p == '"' || *p == '\''))
                quote = *p;
            else if (*p == '\\' && p[1] && quote != '\'')
                word[w++] = *++p;
            else
                word[w++] = *p;
        }
        if (quote)
            *ret_bad = true;
        if (n + 2 > cap) {
            char **nv = realloc(v, (cap *= 2) * sizeof(char *));
            if (nv == NULL)
                goto fail;
            v = nv;
        }
        v[n] = strndup(word, w);
        if (v[n] == NULL)
            goto fail;
        v[++n] = NULL;
    }
    free(word);
    return v;
fail:
    free(word);
    ks_strv_free(v);
    return NULL;
}

/* CMD/ENTRYPOINT/VOLUME arguments: a JSON array of strings, or else the shell form. */
static json_object *json_string_array(const char *arg)
{
    json_object *a = json_tokener_parse(arg);
    if (a && json_object_is_type(a, json_type_array)) {
        bool ok = true;
        for (size_t i = 0; i < json_object_array_length(a); i++)
            ok = ok && json_object_is_type(json_object_array_get_idx(a, i), json_type_string);
        if (ok)
            return a;
    }
    if (a)
        json_object_put(a);
    return NULL;
}

static int change_exec(json_object *cfg, const char *key, const char *arg, struct ks_error **err)
{
    json_object *a = json_string_array(arg);
    if (a == NULL) {
        a = json_object_new_array();
        json_object_array_add(a, json_object_new_string("/bin/sh"));
        json_object_array_add(a, json_object_new_string("-c"));
        json_object_array_add(a, json_object_new_string(arg));
    }
    json_object_object_add(cfg, key, a);
    return 0;
}

/* Sets name=value in the Env array, replacing an earlier value of name. */
static void env_set(json_object *env, const char *name, const char *value)
{
    char *kv = NULL;
    if (asprintf(&kv, "%s=%s", name, value) < 0)
        return;
    size_t nl = strlen(name);
    for (size_t i = 0; i < json_object_array_length(env); i++) {
        const char *e = json_object_get_string(json_object_array_get_idx(env, i));
        if (strncmp(e, name, nl) == 0 && e[nl] == '=') {
            json_object_array_put_idx(env, i, json_object_new_string(kv));
            free(kv);
            return;
        }
    }
    json_object_array_add(env, json_object_new_string(kv));
    free(kv);
}

/* ENV and LABEL: "k=v k2=v2", or the old form "k v". add(obj, k, v) stores one pair. */
static int change_pairs(json_object *target, const char *arg, const char *what,
                        void (*add)(json_object *, const char *, const char *),
                        struct ks_error **err)
{
    bool bad;
    _cleanup_strv_ char **w = split_words(arg, &bad);
    if (w == NULL)
        return ks_error_set(err, ENOMEM, "%s", what);
    if (bad || w[0] == NULL)
        return ks_error_msg(err, "%s requires at least one argument", what);
    if (strchr(w[0], '=') == NULL) {
        /* "ENV name value with spaces" */
        const char *v = arg;
        while (isspace((unsigned char)*v))
            v++;
        v += strcspn(v, " \t");
        while (isspace((unsigned char)*v))
            v++;
        if (*v == '\0')
            return ks_error_msg(err, "%s must have two arguments", what);
        add(target, w[0], v);
        return 0;
    }
    for (char **p = w; *p; p++) {
        char *eq = strchr(*p, '=');
        if (eq == NULL || eq == *p)
            return ks_error_msg(err, "%s names can not be blank: `%s`", what, *p);
        *eq = '\0';
        add(target, *p, eq + 1);
    }
    return 0;
}

static void label_set(json_object *labels, const char *k, const char *v)
{
    json_object_object_add(labels, k, json_object_new_string(v));
}

static json_object *object_under(json_object *cfg, const char *key)
{
    json_object *o = ks_json_get_type(cfg, key, json_type_object);
    if (o == NULL) {
        o = json_object_new_object();
        json_object_object_add(cfg, key, o);
    }
    return o;
}

static int change_set_keys(json_object *cfg, const char *key, const char *arg, bool is_port,
                           struct ks_error **err)
{
    bool bad;
    _cleanup_strv_ char **w = NULL;
    json_object *a = is_port ? NULL : json_string_array(arg);
    if (a) {
        w = calloc(json_object_array_length(a) + 1, sizeof(char *));
        for (size_t i = 0; w && i < json_object_array_length(a); i++)
            w[i] = strdup(json_object_get_string(json_object_array_get_idx(a, i)));
        json_object_put(a);
    } else {
        w = split_words(arg, &bad);
    }
    if (w == NULL)
        return ks_error_set(err, ENOMEM, "%s", key);
    json_object *o = object_under(cfg, key);
    for (char **p = w; *p; p++) {
        if (**p == '\0')
            return ks_error_msg(err, "%s: empty value", key);
        _cleanup_free_ char *name = NULL;
        if (is_port && strchr(*p, '/') == NULL) {
            if (asprintf(&name, "%s/tcp", *p) < 0)
                return ks_error_set(err, ENOMEM, "%s", key);
        } else {
            name = strdup(*p);
        }
        if (is_port) {
            char *end = NULL;
            long port = strtol(name, &end, 10);
            if (end == name || *end != '/' || port < 1 || port > 65535)
                return ks_error_msg(err, "invalid containerPort: %s", *p);
        }
        json_object_object_add(o, name, json_object_new_object());
    }
    return 0;
}

enum change_kind {
    CH_CMD,
    CH_ENTRYPOINT,
    CH_ENV,
    CH_WORKDIR,
    CH_USER,
    CH_EXPOSE,
    CH_LABEL,
    CH_VOLUME,
    CH_STOPSIGNAL,
    _CH_MAX,
};

static const char *const change_names[_CH_MAX] = {
    [CH_CMD] = "CMD",
    [CH_ENTRYPOINT] = "ENTRYPOINT",
    [CH_ENV] = "ENV",
    [CH_WORKDIR] = "WORKDIR",
    [CH_USER] = "USER",
    [CH_EXPOSE] = "EXPOSE",
    [CH_LABEL] = "LABEL",
    [CH_VOLUME] = "VOLUME",
    [CH_STOPSIGNAL] = "STOPSIGNAL",
};

static int apply_change(json_object *cfg, const char *line, struct ks_error **err)
{
    while (isspace((unsigned char)*line))
        line++;
    size_t kw = strcspn(line, " \t");
    const char *arg = line + kw;
    while (isspace((unsigned char)*arg))
        arg++;
    int kind = -1;
    for (int i = 0; i < _CH_MAX; i++)
        if (strlen(change_names[i]) == kw && strncasecmp(line, change_names[i], kw) == 0)
            kind = i;
    if (kind < 0)
        return ks_error_msg(err, "%.*s is not a valid change command", (int)kw, line);
    if (*arg == '\0')
        return ks_error_msg(err, "%s requires at least one argument", change_names[kind]);

    switch ((enum change_kind)kind) {
    case CH_CMD:
        return change_exec(cfg, "Cmd", arg, err);
    case CH_ENTRYPOINT:
        return change_exec(cfg, "Entrypoint", arg, err);
    case CH_ENV: {
        json_object *env = ks_json_get_type(cfg, "Env", json_type_array);
        return change_pairs(env, arg, "ENV", env_set, err);
    }
    case CH_LABEL:
        return change_pairs(object_under(cfg, "Labels"), arg, "LABEL", label_set, err);
    case CH_WORKDIR:
        json_object_object_add(cfg, "WorkingDir", json_object_new_string(arg));
        return 0;
    case CH_USER:
        json_object_object_add(cfg, "User", json_object_new_string(arg));
        return 0;
    case CH_STOPSIGNAL:
        json_object_object_add(cfg, "StopSignal", json_object_new_string(arg));
        return 0;
    case CH_EXPOSE:
        return change_set_keys(cfg, "ExposedPorts", arg, true, err);
    case CH_VOLUME:
        return change_set_keys(cfg, "Volumes", arg, false, err);
    case _CH_MAX:
        break;
    }
    return ks_error_msg(err, "unknown change");
}

int ks_image_config_apply_changes(json_object *cfg, const char *const *changes,
                                  struct ks_error **err)
{
    /* ENV adds to the list there is: make sure there is one. */
    if (ks_json_get_type(cfg, "Env", json_type_array) == NULL)
        json_object_object_add(cfg, "Env", json_object_new_array());
    for (size_t i = 0; changes && changes[i]; i++) {
        int r = apply_change(cfg, changes[i], err);
        if (r < 0)
            return ks_error_wrap(err, "--change `%s`", changes[i]);
    }
    return 0;
}

int ks_image_config_import(const char *const *changes, const char *diff_id, const char *comment,
                           json_object **ret, struct ks_error **err)
{
    char created[48];
    ks_rfc3339_now(created, sizeof(created));
    _cleanup_json_ json_object *root = json_object_new_object();
    json_object *cfg = json_object_new_object();
    json_object *env = json_object_new_array();
    json_object_array_add(env, json_object_new_string(DEFAULT_PATH));
    json_object_object_add(cfg, "Env", env);
    for (size_t i = 0; changes && changes[i]; i++) {
        int r = apply_change(cfg, changes[i], err);
        if (r < 0) {
            json_object_put(cfg);
            return ks_error_wrap(err, "--change `%s`", changes[i]);
        }
    }

    json_object_object_add(root, "architecture", json_object_new_string("amd64"));
    json_object_object_add(root, "config", cfg);
    json_object_object_add(root, "created", json_object_new_string(created));
    json_object *hist = json_object_new_object();
    json_object_object_add(hist, "created", json_object_new_string(created));
    json_object_object_add(hist, "created_by", json_object_new_string("kiste import"));
    if (comment && *comment)
        json_object_object_add(hist, "comment", json_object_new_string(comment));
    json_object *history = json_object_new_array();
    json_object_array_add(history, hist);
    json_object_object_add(root, "history", history);
    json_object_object_add(root, "os", json_object_new_string("linux"));
    json_object *rootfs = json_object_new_object();
    json_object_object_add(rootfs, "type", json_object_new_string("layers"));
    json_object *diffs = json_object_new_array();
    json_object_array_add(diffs, json_object_new_string(diff_id));
    json_object_object_add(rootfs, "diff_ids", diffs);
    json_object_object_add(root, "rootfs", rootfs);
    *ret = TAKE_PTR(root);
    return 0;
}
