/* ARG and ENV scoping of a build (scope.h). */
#include "scope.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "../base/fs.h"

struct kv {
    char *k, *v; /* v NULL: declared without a value */
};

struct kvlist {
    struct kv *v;
    size_t n;
};

struct ks_build_scope {
    struct kvlist build_args;
    bool *used;
    struct kvlist global, args, env;
    bool in_stage;
};

static const char *const proxies[] = {"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY",
                                      "ALL_PROXY"};

bool ks_build_arg_is_proxy(const char *name)
{
    for (size_t i = 0; i < KS_ELEMENTSOF(proxies); i++) {
        if (strcmp(name, proxies[i]) == 0)
            return true;
        /* the lower-case spelling counts too */
        size_t n = strlen(proxies[i]);
        bool lower = strlen(name) == n;
        for (size_t c = 0; lower && c < n; c++)
            lower = name[c] == (proxies[i][c] == '_' ? '_' : (proxies[i][c] | 0x20));
        if (lower)
            return true;
    }
    return false;
}

static struct kv *kv_find(const struct kvlist *l, const char *k)
{
    for (size_t i = l->n; i > 0; i--)
        if (strcmp(l->v[i - 1].k, k) == 0)
            return &l->v[i - 1];
    return NULL;
}

static int kv_set(struct kvlist *l, const char *k, size_t klen, const char *v,
                  struct ks_error **err)
{
    char *kc = strndup(k, klen), *vc = v ? strdup(v) : NULL;
    if (kc == NULL || (v && vc == NULL)) {
        free(kc);
        free(vc);
        return ks_error_set(err, ENOMEM, "build variables");
    }
    struct kv *old = kv_find(l, kc);
    if (old) {
        free(kc);
        free(old->v);
        old->v = vc;
        return 0;
    }
    struct kv *nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
    if (nv == NULL) {
        free(kc);
        free(vc);
        return ks_error_set(err, ENOMEM, "build variables");
    }
    l->v = nv;
    l->v[l->n++] = (struct kv){kc, vc};
    return 0;
}

static void kv_clear(struct kvlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].k);
        free(l->v[i].v);
    }
    free(l->v);
    *l = (struct kvlist){0};
}

void ks_build_scope_free(struct ks_build_scope *s)
{
    if (s == NULL)
        return;
    kv_clear(&s->build_args);
    kv_clear(&s->global);
    kv_clear(&s->args);
    kv_clear(&s->env);
    free(s->used);
    free(s);
}

/* The host's platform in Go's names (GOOS/GOARCH[/variant]). */
static void host_platform(char *buf, size_t len)
{
    struct utsname u;
    const char *arch = "amd64";
    /* uname's machine is at most 64 bytes: the buffer holds "linux/" and it */
    if (uname(&u) == 0) {
        static const char *const map[][2] = {
            {"x86_64", "amd64"},    {"aarch64", "arm64"}, {"armv7l", "arm/v7"},
            {"armv6l", "arm/v6"},   {"i686", "386"},      {"i386", "386"},
            {"ppc64le", "ppc64le"}, {"s390x", "s390x"},   {"riscv64", "riscv64"},
        };
        arch = u.machine;
        for (size_t i = 0; i < KS_ELEMENTSOF(map); i++)
            if (strcmp(u.machine, map[i][0]) == 0)
                arch = map[i][1];
    }
    snprintf(buf, len, "linux/%s", arch);
}

/* PREFIXPLATFORM, PREFIXOS, PREFIXARCH, PREFIXVARIANT from "os/arch[/variant]". */
static int platform_args(struct ks_build_scope *s, const char *prefix, const char *platform,
                         struct ks_error **err)
{
    char host[96];
    if (platform == NULL) {
        host_platform(host, sizeof(host));
        platform = host;
    }
    const char *a = strchr(platform, '/');
    if (a == NULL || a == platform || a[1] == '\0' || a[1] == '/')
        return ks_error_msg(err, "invalid platform \"%s\": want os/arch[/variant]", platform);
    const char *v = strchr(a + 1, '/');
    static const char *const names[] = {"PLATFORM", "OS", "ARCH", "VARIANT"};
    _cleanup_free_ char *os = strndup(platform, (size_t)(a - platform));
    _cleanup_free_ char *arch = v ? strndup(a + 1, (size_t)(v - a - 1)) : strdup(a + 1);
    const char *values[] = {platform, os, arch, v ? v + 1 : ""};
    if (os == NULL || arch == NULL)
        return ks_error_set(err, ENOMEM, "platform");
    for (size_t i = 0; i < KS_ELEMENTSOF(names); i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s%s", prefix, names[i]);
        int r = kv_set(&s->global, name, strlen(name), values[i], err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_build_scope_new(char *const *build_args, const char *target_platform,
                       const char *build_platform, struct ks_build_scope **ret,
                       struct ks_error **err)
{
    _cleanup_build_scope_ struct ks_build_scope *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return ks_error_set(err, ENOMEM, "build scope");
    for (size_t i = 0; build_args && build_args[i]; i++) {
        const char *eq = strchr(build_args[i], '=');
        if (eq == NULL || eq == build_args[i])
            return ks_error_msg(err, "invalid build-arg \"%s\": want NAME=VALUE", build_args[i]);
        int r = kv_set(&s->build_args, build_args[i], (size_t)(eq - build_args[i]), eq + 1, err);
        if (r < 0)
            return r;
    }
    s->used = calloc(s->build_args.n + 1, sizeof(bool));
    if (s->used == NULL)
        return ks_error_set(err, ENOMEM, "build scope");
    int r = platform_args(s, "BUILD", build_platform, err);
    if (r >= 0)
        r = platform_args(s, "TARGET", target_platform ? target_platform : build_platform, err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(s);
    return 0;
}

int ks_build_scope_arg(struct ks_build_scope *s, const char *name, const char *value,
                       struct ks_error **err)
{
    if (name[0] == '\0')
        return ks_error_msg(err, "ARG requires a name");
    const struct kv *ba = kv_find(&s->build_args, name);
    if (ba)
        s->used[ba - s->build_args.v] = true;
    const struct kv *g = kv_find(&s->global, name);
    const char *v = ba ? ba->v : value;
    if (!s->in_stage)
        return kv_set(&s->global, name, strlen(name), g && !ba && !value ? g->v : v, err);
    /* a stage's ARG without a default takes the global value */
    if (!ba && !value && g)
        v = g->v;
    return kv_set(&s->args, name, strlen(name), v, err);
}

int ks_build_scope_stage(struct ks_build_scope *s, char *const *image_env, struct ks_error **err)
{
    kv_clear(&s->args);
    kv_clear(&s->env);
    s->in_stage = true;
    for (size_t i = 0; image_env && image_env[i]; i++) {
        const char *eq = strchr(image_env[i], '=');
        if (eq == NULL)
            continue;
        int r = kv_set(&s->env, image_env[i], (size_t)(eq - image_env[i]), eq + 1, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_build_scope_env(struct ks_build_scope *s, const char *name, const char *value,
                       struct ks_error **err)
{
    if (name[0] == '\0')
        return ks_error_msg(err, "ENV names must not be empty");
    return kv_set(&s->env, name, strlen(name), value, err);
}

const char *ks_build_scope_lookup(void *scope, const char *name)
{
    struct ks_build_scope *s = scope;
    if (!s->in_stage) {
        const struct kv *g = kv_find(&s->global, name);
        return g ? g->v : NULL;
    }
    const struct kv *e = kv_find(&s->env, name);
    if (e)
        return e->v;
    const struct kv *a = kv_find(&s->args, name);
    return a ? a->v : NULL;
}

static int strv_push(char ***v, size_t *n, const char *k, const char *val)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(char *));
    if (nv == NULL)
        return -ENOMEM;
    *v = nv;
    if (val ? asprintf(&nv[*n], "%s=%s", k, val) < 0 : (nv[*n] = strdup(k)) == NULL)
        return -ENOMEM;
    nv[++*n] = NULL;
    return 0;
}

/* The vector built, an empty one when nothing was added; NULL when out of memory. */
static char **strv_finish(char **v, int r)
{
    if (r < 0) {
        ks_strv_free(v);
        return NULL;
    }
    return v ? v : calloc(1, sizeof(char *));
}

const char *ks_build_scope_lookup_global(void *scope, const char *name)
{
    const struct ks_build_scope *s = scope;
    const struct kv *g = kv_find(&s->global, name);
    return g ? g->v : NULL;
}

char **ks_build_scope_env_list(const struct ks_build_scope *s)
{
    char **v = NULL;
    size_t n = 0;
    int r = 0;
    for (size_t i = 0; i < s->env.n && r >= 0; i++)
        r = strv_push(&v, &n, s->env.v[i].k, s->env.v[i].v);
    return strv_finish(v, r);
}

char **ks_build_scope_run_env(const struct ks_build_scope *s)
{
    char **v = NULL;
    size_t n = 0;
    int r = 0;
    for (size_t i = 0; i < s->env.n && r >= 0; i++)
        r = strv_push(&v, &n, s->env.v[i].k, s->env.v[i].v);
    for (size_t i = 0; i < s->args.n && r >= 0; i++)
        if (s->args.v[i].v && !kv_find(&s->env, s->args.v[i].k))
            r = strv_push(&v, &n, s->args.v[i].k, s->args.v[i].v);
    for (size_t i = 0; i < s->build_args.n && r >= 0; i++) {
        const struct kv *b = &s->build_args.v[i];
        if (ks_build_arg_is_proxy(b->k) && !kv_find(&s->env, b->k) && !kv_find(&s->args, b->k))
            r = strv_push(&v, &n, b->k, b->v);
    }
    return strv_finish(v, r);
}

char **ks_build_scope_unused(const struct ks_build_scope *s)
{
    char **v = NULL;
    size_t n = 0;
    int r = 0;
    for (size_t i = 0; i < s->build_args.n && r >= 0; i++)
        if (!s->used[i] && !ks_build_arg_is_proxy(s->build_args.v[i].k))
            r = strv_push(&v, &n, s->build_args.v[i].k, NULL);
    return strv_finish(v, r);
}
