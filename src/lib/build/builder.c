/* The builder (builder.h): stages in order, metadata in the image config, RUN through the
 * engine, a build cache of RUN results under <root>/build-cache. */
#include "builder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/hash.h"
#include "../base/json.h"
#include "../engine/container.h"
#include "../engine/db.h"
#include "../image/store.h"
#include "builder_internal.h"

void bld_progress(struct builder *b, const char *fmt, ...)
{
    if (b->o->progress == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *line = NULL;
    if (vasprintf(&line, fmt, ap) >= 0)
        b->o->progress(b->o->userdata, line);
    va_end(ap);
}

int bld_expand(struct builder *b, const char *raw, char **ret, struct ks_error **err)
{
    return ks_shell_expand_word(&b->lx, raw, ks_build_scope_lookup, b->scope, ret, err);
}

/* The 12 hex digits Docker shows of an image ID. */
static const char *short_hex(const char *id)
{
    return strncmp(id, "sha256:", 7) == 0 ? id + 7 : id;
}

static json_object *strv_json(char *const *v)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; a && v && v[i]; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

/* The command of CMD, ENTRYPOINT or RUN: the JSON form as it is, the shell form after SHELL. */
static json_object *command_json(struct builder *b, const struct ks_df_node *n)
{
    if (n->json)
        return strv_json(n->args);
    json_object *a = b->shell ? json_object_get(b->shell) : NULL;
    if (a == NULL) {
        char *sh[] = {"/bin/sh", "-c", NULL};
        a = strv_json(sh);
    } else {
        json_object *copy = NULL;
        json_object_deep_copy(a, &copy, NULL);
        json_object_put(a);
        a = copy;
    }
    if (a && n->n_args)
        json_object_array_add(a, json_object_new_string(n->args[0]));
    return a;
}

static void set_nop(struct builder *b, const struct ks_df_node *n)
{
    free(b->nop);
    if (asprintf(&b->nop, "/bin/sh -c #(nop)  %s", n->original) < 0)
        b->nop = NULL;
    b->dirty = true;
}

static void env_set(json_object *cfg, const char *k, const char *v)
{
    json_object *env = ks_json_get_type(cfg, "Env", json_type_array);
    if (env == NULL) {
        env = json_object_new_array();
        json_object_object_add(cfg, "Env", env);
    }
    _cleanup_free_ char *kv = NULL;
    if (asprintf(&kv, "%s=%s", k, v) < 0)
        return;
    size_t kl = strlen(k);
    for (size_t i = 0; i < json_object_array_length(env); i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(env, i));
        if (s && strncmp(s, k, kl) == 0 && s[kl] == '=') {
            json_object_array_put_idx(env, i, json_object_new_string(kv));
            return;
        }
    }
    json_object_array_add(env, json_object_new_string(kv));
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

/* ENV and LABEL: key, value, separator triples; both key and value are expanded. */
static int pairs(struct builder *b, const struct ks_df_node *n, struct ks_error **err)
{
    for (size_t i = 0; i + 2 < n->n_args + 1 && i + 1 < n->n_args; i += 3) {
        _cleanup_free_ char *k = NULL, *v = NULL;
        int r = bld_expand(b, n->args[i], &k, err);
        if (r >= 0)
            r = bld_expand(b, n->args[i + 1], &v, err);
        if (r < 0)
            return r;
        if (n->instr == KS_DF_ENV) {
            r = ks_build_scope_env(b->scope, k, v, err);
            if (r < 0)
                return r;
            env_set(b->cfg, k, v);
        } else {
            json_object_object_add(object_under(b->cfg, "Labels"), k, json_object_new_string(v));
        }
    }
    set_nop(b, n);
    return 0;
}

static int arg(struct builder *b, const struct ks_df_node *n, struct ks_error **err)
{
    for (size_t i = 0; i < n->n_args; i++) {
        _cleanup_free_ char *name = strdup(n->args[i]), *value = NULL;
        if (name == NULL)
            return ks_error_set(err, ENOMEM, "ARG");
        char *eq = strchr(name, '=');
        if (eq) {
            *eq = '\0';
            int r = bld_expand(b, eq + 1, &value, err);
            if (r < 0)
                return r;
        }
        int r = ks_build_scope_arg(b->scope, name, value, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* HEALTHCHECK into Config.Healthcheck, as Docker stores it (durations in nanoseconds). */
static int healthcheck(struct builder *b, const struct ks_df_node *n, struct ks_error **err)
{
    json_object *h = json_object_new_object();
    json_object *test = json_object_new_array();
    json_object_object_add(h, "Test", test);
    json_object_object_add(b->cfg, "Healthcheck", h);
    if (strcasecmp(n->args[0], "NONE") == 0) {
        json_object_array_add(test, json_object_new_string("NONE"));
        return 0;
    }
    json_object_array_add(test, json_object_new_string(n->json ? "CMD" : "CMD-SHELL"));
    for (size_t i = 1; i < n->n_args; i++)
        json_object_array_add(test, json_object_new_string(n->args[i]));
    static const char *const flags[][2] = {{"interval", "Interval"},
                                           {"timeout", "Timeout"},
                                           {"start-period", "StartPeriod"},
                                           {"start-interval", "StartInterval"}};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        const char *v = ks_df_flag(n, flags[i][0]);
        int64_t ns;
        if (v && ks_df_parse_duration(v, &ns) == 0 && ns > 0)
            json_object_object_add(h, flags[i][1], json_object_new_int64(ns));
    }
    const char *retries = ks_df_flag(n, "retries");
    if (retries && atoi(retries) > 0)
        json_object_object_add(h, "Retries", json_object_new_int(atoi(retries)));
    (void)err;
    return 0;
}

/* One metadata instruction on the config; 1 when n is not one. */
static int metadata(struct builder *b, const struct ks_df_node *n, struct ks_error **err)
{
    _cleanup_free_ char *v = NULL;
    int r = 0;
    switch (n->instr) {
    case KS_DF_ENV:
    case KS_DF_LABEL:
        return pairs(b, n, err);
    case KS_DF_ARG:
        return arg(b, n, err);
    case KS_DF_WORKDIR: {
        if ((r = bld_expand(b, n->args[0], &v, err)) < 0)
            return r;
        const char *cur = ks_json_str(b->cfg, "WorkingDir");
        _cleanup_free_ char *joined = NULL;
        if (asprintf(&joined, "%s/%s", v[0] == '/' ? "" : (cur && *cur ? cur : "/"), v) < 0)
            return ks_error_set(err, ENOMEM, "WORKDIR");
        _cleanup_free_ char *clean = ks_path_clean(joined);
        json_object_object_add(b->cfg, "WorkingDir", json_object_new_string(clean ? clean : v));
        break;
    }
    case KS_DF_USER:
    case KS_DF_STOPSIGNAL:
        if ((r = bld_expand(b, n->args[0], &v, err)) < 0)
            return r;
        json_object_object_add(b->cfg, n->instr == KS_DF_USER ? "User" : "StopSignal",
                               json_object_new_string(v));
        break;
    case KS_DF_CMD:
        json_object_object_add(b->cfg, "Cmd", command_json(b, n));
        b->cmd_set = true;
        break;
    case KS_DF_ENTRYPOINT:
        json_object_object_add(b->cfg, "Entrypoint", command_json(b, n));
        if (!b->cmd_set) /* an ENTRYPOINT drops the base image's CMD */
            json_object_object_add(b->cfg, "Cmd", NULL);
        break;
    case KS_DF_EXPOSE:
    case KS_DF_VOLUME:
        for (size_t i = 0; i < n->n_args; i++) {
            _cleanup_free_ char *w = NULL, *port = NULL;
            if ((r = bld_expand(b, n->args[i], &w, err)) < 0)
                return r;
            bool expose = n->instr == KS_DF_EXPOSE;
            if (expose && asprintf(&port, "%s%s", w, strchr(w, '/') ? "" : "/tcp") < 0)
                return ks_error_set(err, ENOMEM, "EXPOSE");
            json_object_object_add(object_under(b->cfg, expose ? "ExposedPorts" : "Volumes"),
                                   expose ? port : w, json_object_new_object());
        }
        break;
    case KS_DF_SHELL:
        json_object_put(b->shell);
        b->shell = strv_json(n->args);
        json_object_object_add(b->cfg, "Shell", strv_json(n->args));
        break;
    case KS_DF_MAINTAINER:
        break; /* the author lives outside "Config"; nothing to run */
    case KS_DF_HEALTHCHECK:
        if ((r = healthcheck(b, n, err)) < 0)
            return r;
        break;
    case KS_DF_ONBUILD: {
        /* the trigger, as written after ONBUILD, runs when an image is built FROM this one */
        json_object *ob = ks_json_get_type(b->cfg, "OnBuild", json_type_array);
        if (ob == NULL) {
            ob = json_object_new_array();
            json_object_object_add(b->cfg, "OnBuild", ob);
        }
        json_object_array_add(ob, json_object_new_string(n->sub->original));
        break;
    }
    default:
        return 1;
    }
    set_nop(b, n);
    return 0;
}

static void builder_clear_stage(struct builder *b)
{
    free(b->image);
    b->image = NULL;
    json_object_put(b->cfg);
    b->cfg = NULL;
    json_object_put(b->shell);
    b->shell = NULL;
    free(b->nop);
    b->nop = NULL;
    b->dirty = b->cmd_set = false;
}

/* --- the build cache: <root>/build-cache/<key> holds the image a step made --- */

int bld_cache_key(struct builder *b, const char *what, char *const *env,
                  char out[static KS_SHA256_DIGEST_LEN])
{
    _cleanup_free_ char *text = NULL;
    _cleanup_free_ char *envs = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&envs, &len);
    if (f == NULL)
        return -ENOMEM;
    for (size_t i = 0; env && env[i]; i++)
        fprintf(f, "%s%c", env[i], 0);
    fclose(f);
    if (asprintf(&text, "%s\n%s\n%s\n", b->image,
                 json_object_to_json_string_ext(b->cfg, JSON_C_TO_STRING_PLAIN), what) < 0)
        return -ENOMEM;
    _cleanup_free_ char *all = malloc(strlen(text) + len + 1);
    if (all == NULL)
        return -ENOMEM;
    memcpy(all, text, strlen(text));
    if (len)
        memcpy(all + strlen(text), envs, len);
    return ks_sha256_hex(all, strlen(text) + len, out);
}

static char *cache_get(struct builder *b, const char *key)
{
    _cleanup_free_ char *path = NULL, *id = NULL, *found = NULL;
    if (asprintf(&path, "%s/build-cache/%s", b->e->root, key + 7) < 0)
        return NULL;
    if (ks_read_file(path, &id, NULL, NULL) < 0)
        return NULL;
    id[strcspn(id, "\n")] = '\0';
    if (ks_store_lookup(b->e->store, id, &found, NULL) < 0)
        return NULL; /* the image is gone: the entry is stale */
    return TAKE_PTR(found);
}

void bld_cache_put(struct builder *b, const char *key, const char *id)
{
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/build-cache", b->e->root) < 0 || ks_mkdir_p(dir, 0700, NULL) < 0)
        return;
    _cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0)
        (void)ks_write_file_atomic(fd, key + 7, id, strlen(id), 0600, NULL);
}

/* The step's result: the new image replaces the stage's, whose config it carries. */
void bld_stage_advance(struct builder *b, char *id)
{
    free(b->image);
    b->image = id;
    b->dirty = false;
    free(b->nop);
    b->nop = NULL;
    bld_progress(b, " ---> %.12s", short_hex(id));
}

bool bld_cached(struct builder *b, const char *key)
{
    if (b->o->no_cache)
        return false;
    char *id = cache_get(b, key);
    if (id == NULL)
        return false;
    bld_progress(b, " ---> Using cache");
    bld_stage_advance(b, id);
    return true;
}

int bld_commit(struct builder *b, int upper_fd, const char *created_by, char **ret,
               struct ks_error **err)
{
    const struct ks_store_commit_opts co = {
        .image_id = b->image,
        .upper_dirfd = upper_fd,
        .config = b->cfg,
        .created_by = created_by,
    };
    return ks_store_commit(b->e->store, &co, ret, err);
}

/* Metadata steps not yet in an image become one (with an empty layer: the store has no
 * layer-less commit yet). */
static int flush(struct builder *b, struct ks_error **err)
{
    if (!b->dirty)
        return 0;
    char key[KS_SHA256_DIGEST_LEN];
    if (bld_cache_key(b, "#(nop)", NULL, key) < 0)
        return ks_error_set(err, ENOMEM, "build cache");
    if (bld_cached(b, key))
        return 0;
    _cleanup_free_ char *tmp = NULL;
    if (asprintf(&tmp, "%s/tmp", b->e->root) < 0 || ks_mkdir_p(tmp, 0700, err) < 0)
        return ks_error_set(err, ENOMEM, "build");
    free(tmp);
    if (asprintf(&tmp, "%s/tmp/build-XXXXXX", b->e->root) < 0 || mkdtemp(tmp) == NULL)
        return ks_error_set(err, errno, "empty layer directory");
    _cleanup_close_ int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char *id = NULL;
    int r = fd < 0 ? ks_error_set(err, errno, "%s", tmp)
                   : bld_commit(b, fd, b->nop ? b->nop : "/bin/sh -c #(nop) ", &id, err);
    rmdir(tmp);
    if (r < 0)
        return r;
    bld_cache_put(b, key, id);
    bld_stage_advance(b, id);
    return 0;
}

static json_object *run_config(struct builder *b, const char *image, json_object *cmd,
                               char *const *env)
{
    json_object *cfg = NULL;
    if (json_object_deep_copy(b->cfg, &cfg, NULL) < 0)
        return NULL;
    json_object_object_add(cfg, "Cmd", json_object_get(cmd));
    json_object_object_add(cfg, "Entrypoint", json_object_new_array());
    json_object_object_add(cfg, "Env", strv_json(env));
    json_object_object_add(cfg, "Image", json_object_new_string(image));
    json_object *host = json_object_new_object();
    json_object_object_add(host, "NetworkMode",
                           json_object_new_string(b->network      ? b->network
                                                  : b->o->network ? b->o->network
                                                                  : "none"));
    json_object *all = json_object_new_object();
    json_object_object_add(all, "Config", cfg);
    json_object_object_add(all, "HostConfig", host);
    return all;
}

int bld_create_container(struct builder *b, const char *image, json_object *cmd, char *const *env,
                         char **ret_id, struct ks_error **err)
{
    _cleanup_json_ json_object *conf = run_config(b, image, cmd, env);
    if (conf == NULL)
        return ks_error_set(err, ENOMEM, "build container");
    const struct ks_container_create_opts co = {.image = image, .config = conf};
    return ks_engine_create(b->e, &co, ret_id, err);
}

int bld_container_snapshot(struct builder *b, const char *id, char **ret_snapshot,
                           struct ks_error **err)
{
    _cleanup_db_container_ struct ks_db_container *ct = NULL;
    int r = ks_engine_lookup(b->e, id, &ct, NULL, err);
    if (r < 0)
        return r;
    if (ct->snapshot == NULL)
        return ks_error_msg(err, "container %s has no file system", id);
    *ret_snapshot = TAKE_PTR(ct->snapshot);
    return 0;
}

/* Commits the upper directory of the snapshot. */
int bld_commit_snapshot(struct builder *b, const char *snapshot, const char *created_by, char **ret,
                        struct ks_error **err)
{
    _cleanup_free_ char *upper = NULL;
    if (asprintf(&upper, "%s/overlay/%s/diff", b->e->root, snapshot) < 0)
        return ks_error_set(err, ENOMEM, "commit");
    _cleanup_close_ int fd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "%s", upper);
    return bld_commit(b, fd, created_by, ret, err);
}

/* Runs the container id to its end and commits its upper directory. */
static int run_and_commit(struct builder *b, const char *id, const char *shown, char **ret,
                          struct ks_error **err)
{
    int r = ks_engine_start(b->e, id, &(struct ks_container_start_opts){.attach_fd = -EBADF}, NULL,
                            err);
    if (r >= 0)
        r = ks_engine_wait(b->e, id, -1, err);
    if (b->o->run_output)
        b->o->run_output(b->o->userdata, b->e, id);
    if (r < 0)
        return r;
    if (r > 0)
        return ks_error_set_plain(err, 0, "The command '%s' returned a non-zero code: %d", shown,
                                  r);
    _cleanup_free_ char *snapshot = NULL;
    r = bld_container_snapshot(b, id, &snapshot, err);
    if (r < 0)
        return r;
    return bld_commit_snapshot(b, snapshot, shown, ret, err);
}

/* Removes a step's container. Right after its exit the monitor may still be writing into the
 * container's directory, which makes a remove fail ("Directory not empty"): try again for a
 * while before giving up with a warning. */
void bld_remove_container(struct builder *b, const char *id)
{
    for (int attempt = 0;; attempt++) {
        _cleanup_error_ struct ks_error *rm_err = NULL;
        if (ks_engine_remove(b->e, id, true, &rm_err) >= 0)
            return;
        if (attempt == 50) {
            bld_progress(b, "[Warning] removing the build container %.12s: %s", id, rm_err->msg);
            return;
        }
        usleep(20000);
    }
}

static int run_step_in(struct builder *b, const struct ks_df_node *n, struct ks_error **err)
{
    _cleanup_json_ json_object *cmd = command_json(b, n);
    _cleanup_strv_ char **env = ks_build_scope_run_env(b->scope);
    if (cmd == NULL || env == NULL)
        return ks_error_set(err, ENOMEM, "RUN");
    /* Docker's history shows the command words joined by spaces */
    _cleanup_free_ char *shown = NULL;
    for (size_t i = 0; i < json_object_array_length(cmd); i++) {
        char *prev = shown;
        const char *w = json_object_get_string(json_object_array_get_idx(cmd, i));
        if (asprintf(&shown, "%s%s%s", prev ? prev : "", prev ? " " : "", w ? w : "") < 0)
            shown = NULL;
        free(prev);
        if (shown == NULL)
            return ks_error_set(err, ENOMEM, "RUN");
    }
    /* the step's flags count as much as its command */
    _cleanup_free_ char *what = NULL;
    if (asprintf(&what, "%s\n%s", json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN),
                 b->network ? b->network : "") < 0)
        return ks_error_set(err, ENOMEM, "RUN");
    char key[KS_SHA256_DIGEST_LEN];
    if (bld_cache_key(b, what, env, key) < 0)
        return ks_error_set(err, ENOMEM, "build cache");
    if (bld_cached(b, key))
        return 0;
    _cleanup_free_ char *id = NULL, *image = NULL;
    int r = bld_create_container(b, b->image, cmd, env, &id, err);
    if (r < 0)
        return r;
    bld_progress(b, " ---> Running in %.12s", id);
    r = run_and_commit(b, id, shown, &image, err);
    bld_remove_container(b, id);
    if (r < 0)
        return r;
    bld_cache_put(b, key, image);
    bld_stage_advance(b, TAKE_PTR(image));
    return 0;
}

static int run_step(struct builder *b, const struct ks_df_node *n, struct ks_error **err)
{
    if (ks_df_flag(n, "mount") || ks_df_flag(n, "security") || ks_df_flag(n, "device"))
        return ks_error_msg(err, "RUN --mount, --security and --device are not supported by "
                                 "kiste build yet");
    /* RUN --network=MODE for this step only */
    const char *net = ks_df_flag(n, "network");
    const char *saved_net = b->network;
    if (net)
        b->network = strcmp(net, "default") == 0 ? NULL : net;
    int r = run_step_in(b, n, err);
    b->network = saved_net;
    return r;
}
/* --- stages --- */

int bld_stage_image(struct builder *b, const char *base, char **ret, struct ks_error **err)
{
    for (size_t j = 0; j < b->st.n && b->images[j]; j++) {
        char idx[24];
        snprintf(idx, sizeof(idx), "%zu", j);
        if ((b->st.v[j].name && strcasecmp(b->st.v[j].name, base) == 0) || strcmp(base, idx) == 0) {
            *ret = strdup(b->images[j]);
            return *ret ? 0 : ks_error_set(err, ENOMEM, "FROM");
        }
    }
    if (strcmp(base, "scratch") == 0)
        return ks_error_msg(err, "FROM scratch is not supported by kiste build yet");
    return ks_store_lookup(b->e->store, base, ret, err);
}

static int step(struct builder *b, const struct ks_df_node *n, struct ks_error **err);

/* The base image's ONBUILD triggers run first, as instructions of this stage; the new image
 * does not inherit them. */
static int run_triggers(struct builder *b, struct ks_error **err)
{
    json_object *ob = ks_json_get_type(b->cfg, "OnBuild", json_type_array);
    size_t n = ob ? json_object_array_length(ob) : 0;
    if (n == 0)
        return 0;
    _cleanup_json_ json_object *triggers = json_object_get(ob);
    json_object_object_del(b->cfg, "OnBuild");
    b->dirty = true;
    bld_progress(b, "# Executing %zu build trigger%s", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++) {
        const char *t = json_object_get_string(json_object_array_get_idx(triggers, i));
        _cleanup_dockerfile_ struct ks_dockerfile *df = NULL;
        int r = ks_dockerfile_parse(t ? t : "", t ? strlen(t) : 0, &df, err);
        for (size_t k = 0; r >= 0 && k < df->n_nodes; k++) {
            const struct ks_df_node *node = &df->nodes[k];
            if (node->instr == KS_DF_ONBUILD || node->instr == KS_DF_FROM ||
                node->instr == KS_DF_MAINTAINER)
                r = ks_error_msg(err, "%s isn't allowed as an ONBUILD trigger", node->cmd);
            else
                r = step(b, node, err);
        }
        if (r < 0)
            return ks_error_wrap(err, "ONBUILD trigger \"%s\"", t ? t : "");
    }
    return 0;
}

static int from(struct builder *b, size_t si, struct ks_error **err)
{
    const struct ks_df_node *n = &b->df->nodes[b->st.v[si].from];
    _cleanup_free_ char *base = NULL;
    int r = ks_shell_expand_word(&b->lx, n->args[0], ks_build_scope_lookup_global, b->scope, &base,
                                 err);
    if (r < 0)
        return r;
    if (base[0] == '\0')
        return ks_error_msg(err, "base name (%s) should not be blank", n->args[0]);
    if ((r = bld_stage_image(b, base, &b->image, err)) < 0)
        return r;
    _cleanup_json_ json_object *inspect = NULL;
    if ((r = ks_store_inspect_json(b->e->store, b->image, &inspect, err)) < 0)
        return r;
    json_object *cfg = ks_json_get_type(inspect, "Config", json_type_object);
    if (cfg == NULL || json_object_deep_copy(cfg, &b->cfg, NULL) < 0)
        b->cfg = json_object_new_object();
    _cleanup_strv_ char **env = ks_json_strv(b->cfg, "Env");
    json_object *shell = ks_json_get_type(b->cfg, "Shell", json_type_array);
    if (shell)
        b->shell = json_object_get(shell);
    bld_progress(b, " ---> %.12s", short_hex(b->image));
    r = ks_build_scope_stage(b->scope, env, err);
    return r < 0 ? r : run_triggers(b, err);
}

static int step(struct builder *b, const struct ks_df_node *n, struct ks_error **err)
{
    int r = metadata(b, n, err);
    if (r <= 0)
        return r;
    if (n->instr == KS_DF_RUN)
        return run_step(b, n, err);
    if (n->instr == KS_DF_COPY || n->instr == KS_DF_ADD)
        return bld_copy(b, n, err);
    return ks_error_msg(err, "%s is not supported by kiste build yet", n->cmd);
}

static int build_stage(struct builder *b, size_t si, struct ks_error **err)
{
    const struct ks_df_stage *st = &b->st.v[si];
    for (size_t i = st->from; i < st->end; i++) {
        const struct ks_df_node *n = &b->df->nodes[i];
        bld_progress(b, "Step %d/%d : %s", ++b->step, b->n_steps, n->original);
        int r = i == st->from ? from(b, si, err) : step(b, n, err);
        if (r < 0)
            return ks_error_wrap(err, "line %d", n->start_line);
    }
    int r = flush(b, err);
    if (r < 0)
        return r;
    b->images[si] = TAKE_PTR(b->image);
    builder_clear_stage(b);
    return 0;
}

static int build(struct builder *b, char **ret_image_id, struct ks_error **err)
{
    const struct ks_build_opts *o = b->o;
    int r = ks_dockerfile_parse(o->dockerfile, o->dockerfile_len, &b->df, err);
    if (r >= 0)
        r = ks_df_check(b->df, &b->st, err);
    if (r >= 0)
        r = ks_build_scope_new(o->build_args, NULL, NULL, &b->scope, err);
    if (r < 0)
        return r;
    b->lx.escape = b->df->escape;
    _cleanup_free_ char *ign = NULL;
    size_t ign_len = 0;
    if (ks_read_file_at(o->context_fd, ".dockerignore", &ign, &ign_len, NULL) >= 0 &&
        (r = ks_dockerignore_parse(ign, ign_len, &b->ignore, err)) < 0)
        return r;
    size_t target = b->st.n - 1;
    if (o->target) {
        for (target = 0; target < b->st.n; target++)
            if (b->st.v[target].name && strcasecmp(b->st.v[target].name, o->target) == 0)
                break;
        if (target == b->st.n)
            return ks_error_msg(err, "target stage \"%s\" could not be found", o->target);
    }
    b->n_steps = (int)b->st.v[target].end; /* Docker counts the global ARGs too */
    for (size_t i = 0; i < b->st.n_global; i++) {
        bld_progress(b, "Step %d/%d : %s", ++b->step, b->n_steps, b->df->nodes[i].original);
        if ((r = arg(b, &b->df->nodes[i], err)) < 0)
            return ks_error_wrap(err, "line %d", b->df->nodes[i].start_line);
    }
    b->images = calloc(b->st.n, sizeof(char *));
    if (b->images == NULL)
        return ks_error_set(err, ENOMEM, "build");
    for (size_t si = 0; si <= target; si++)
        if ((r = build_stage(b, si, err)) < 0)
            return r;
    _cleanup_strv_ char **unused = ks_build_scope_unused(b->scope);
    for (size_t i = 0; unused && unused[i]; i++)
        bld_progress(b, "[Warning] One or more build-args [%s] were not consumed", unused[i]);
    const char *id = b->images[target];
    bld_progress(b, "Successfully built %.12s", short_hex(id));
    for (size_t i = 0; o->tags && o->tags[i]; i++) {
        if ((r = ks_store_tag(b->e->store, id, o->tags[i], err)) < 0)
            return r;
        bld_progress(b, "Successfully tagged %s", o->tags[i]);
    }
    *ret_image_id = strdup(id);
    return *ret_image_id ? 0 : ks_error_set(err, ENOMEM, "build");
}

int ks_build(struct ks_engine *e, const struct ks_build_opts *o, char **ret_image_id,
             struct ks_error **err)
{
    struct builder b = {.e = e, .o = o, .lx = {.escape = '\\'}};
    int r = build(&b, ret_image_id, err);
    builder_clear_stage(&b);
    for (size_t i = 0; b.images && i < b.st.n; i++)
        free(b.images[i]);
    free(b.images);
    ks_df_stages_clear(&b.st);
    ks_build_scope_free(b.scope);
    ks_dockerignore_free(b.ignore);
    ks_dockerfile_free(b.df);
    return r;
}

int ks_build_cache_prune(const char *root, size_t *ret_removed, struct ks_error **err)
{
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/build-cache", root) < 0)
        return ks_error_set(err, ENOMEM, "build cache");
    size_t removed = 0;
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (d == NULL && errno != ENOENT)
        return ks_error_set(err, errno, "%s", dir);
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
            return ks_error_set(err, errno, "%s/%s", dir, de->d_name);
        removed++;
    }
    if (ret_removed)
        *ret_removed = removed;
    return 0;
}
