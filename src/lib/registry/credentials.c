/* Docker's credential store: config.json and the docker-credential helper protocol. */
#include "credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/json.h"

#define HUB_KEY    "https://index.docker.io/v1/"
#define HELPER_MAX (64 * 1024)

extern char **environ;

const char *ks_creds_server_key(const char *domain)
{
    static const char *const hub[] = {"docker.io", "index.docker.io", "registry-1.docker.io",
                                      HUB_KEY};
    for (size_t i = 0; i < KS_ELEMENTSOF(hub); i++)
        if (strcmp(domain, hub[i]) == 0)
            return HUB_KEY;
    return domain;
}

char *ks_creds_config_path(void)
{
    const char *dir = getenv("DOCKER_CONFIG");
    char *p = NULL;
    if (dir && *dir) {
        if (asprintf(&p, "%s/config.json", dir) < 0)
            return NULL;
        return p;
    }
    const char *home = getenv("HOME");
    if (asprintf(&p, "%s/.docker/config.json", home && *home ? home : "/root") < 0)
        return NULL;
    return p;
}

int ks_creds_decode_auth(const char *b64, char **ret_user, char **ret_pass, struct ks_error **err)
{
    size_t n = strlen(b64);
    if (n == 0 || n > 64 * 1024 || n % 4 != 0)
        return ks_error_msg(err, "invalid auth value in config.json");
    _cleanup_free_ unsigned char *out = malloc(n / 4 * 3 + 1);
    if (out == NULL)
        return ks_error_set(err, ENOMEM, "decode auth");
    int len = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    if (len < 0)
        return ks_error_msg(err, "invalid auth value in config.json: not base64");
    /* EVP_DecodeBlock counts the padding as output bytes. */
    if (n >= 1 && b64[n - 1] == '=')
        len--;
    if (n >= 2 && b64[n - 2] == '=')
        len--;
    out[len] = '\0';
    if (memchr(out, '\0', (size_t)len))
        return ks_error_msg(err, "invalid auth value in config.json: contains NUL");
    char *colon = strchr((char *)out, ':');
    if (colon == NULL || colon == (char *)out)
        return ks_error_msg(err, "invalid auth value in config.json: not user:password");
    *colon = '\0';
    char *user = strdup((char *)out), *pass = strdup(colon + 1);
    if (user == NULL || pass == NULL) {
        free(user), free(pass);
        return ks_error_set(err, ENOMEM, "decode auth");
    }
    *ret_user = user;
    *ret_pass = pass;
    return 0;
}

char *ks_creds_encode_auth(const char *user, const char *pass)
{
    _cleanup_free_ char *plain = NULL;
    int n = asprintf(&plain, "%s:%s", user, pass);
    if (n < 0)
        return NULL;
    char *out = malloc((size_t)n / 3 * 4 + 5);
    if (out == NULL)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, (unsigned char *)plain, n);
    return out;
}

static int load_config(json_object **ret, struct ks_error **err)
{
    _cleanup_free_ char *path = ks_creds_config_path();
    if (path == NULL)
        return ks_error_set(err, ENOMEM, "config.json");
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        *ret = json_object_new_object();
        return *ret ? 0 : ks_error_set(err, ENOMEM, "config.json");
    }
    if (fd < 0)
        return ks_error_set(err, errno, "open %s", path);
    _cleanup_free_ char *buf = NULL;
    size_t len;
    int r = ks_read_fd(fd, KS_CREDS_CONFIG_MAX + 1, &buf, &len, err);
    if (r < 0)
        return r;
    if (len > KS_CREDS_CONFIG_MAX)
        return ks_error_msg(err, "%s: too large", path);
    json_object *o = NULL;
    if (len == 0)
        o = json_object_new_object();
    else if (ks_json_parse(buf, len, &o, err) < 0)
        return ks_error_wrap(err, "%s", path);
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return ks_error_msg(err, "%s: not a JSON object", path);
    }
    *ret = o;
    return 0;
}

static int save_config(json_object *o, struct ks_error **err)
{
    _cleanup_free_ char *path = ks_creds_config_path();
    if (path == NULL)
        return ks_error_set(err, ENOMEM, "config.json");
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int r = ks_mkdir_p(path, 0700, err);
    if (r < 0)
        return r;
    _cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "open %s", path);
    const char *s = json_object_to_json_string_ext(
        o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    _cleanup_free_ char *text = NULL;
    if (asprintf(&text, "%s\n", s) < 0)
        return ks_error_set(err, ENOMEM, "config.json");
    return ks_write_file_atomic(dfd, slash + 1, text, strlen(text), 0600, err);
}

/* The helper configured for server: credHelpers, else credsStore; NULL for none. */
static const char *helper_for(json_object *cfg, const char *server)
{
    const char *h = ks_json_str(ks_json_get_type(cfg, "credHelpers", json_type_object), server);
    if (h == NULL || *h == '\0')
        h = ks_json_str(cfg, "credsStore");
    if (h == NULL || *h == '\0' || strchr(h, '/'))
        return NULL;
    return h;
}

/* Runs docker-credential-<name> <verb> with input on stdin; its stdout (bounded) in *ret_out.
 * *ret_status is its exit status. */
static int run_helper(const char *name, const char *verb, const char *input, char **ret_out,
                      int *ret_status, struct ks_error **err)
{
    _cleanup_free_ char *prog = NULL;
    if (asprintf(&prog, "docker-credential-%s", name) < 0)
        return ks_error_set(err, ENOMEM, "credential helper");
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        return ks_error_set(err, errno, "pipe");
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(in[0]), close(in[1]);
        return ks_error_set(err, errno, "pipe");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    char *argv[] = {prog, (char *)verb, NULL};
    pid_t pid;
    int r = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (r != 0) {
        close(in[1]), close(out[0]);
        return ks_error_set(err, r, "run %s", prog);
    }
    /* The input is small (a URL or one JSON object): it fits the pipe. */
    ks_write_all(in[1], input, strlen(input));
    close(in[1]);
    char *buf = NULL;
    size_t len;
    r = ks_read_fd(out[0], HELPER_MAX, &buf, &len, err);
    close(out[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (r < 0)
        return r;
    *ret_out = buf;
    *ret_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    return 0;
}

static int helper_get(const char *helper, const char *server, char **ret_user, char **ret_pass,
                      struct ks_error **err)
{
    _cleanup_free_ char *out = NULL;
    int status;
    int r = run_helper(helper, "get", server, &out, &status, err);
    if (r < 0)
        return r;
    if (status != 0) {
        if (strstr(out, "credentials not found"))
            return -ENOENT;
        return ks_error_msg(err, "docker-credential-%s get: %s", helper, out);
    }
    _cleanup_json_ json_object *o = NULL;
    if (ks_json_parse(out, strlen(out), &o, err) < 0)
        return ks_error_wrap(err, "docker-credential-%s get", helper);
    const char *u = ks_json_str(o, "Username"), *s = ks_json_str(o, "Secret");
    if (u == NULL || s == NULL || *s == '\0')
        return -ENOENT;
    *ret_user = strdup(u);
    *ret_pass = strdup(s);
    return 0;
}

/* The "auths" entry for server: the key itself, or one with a scheme or path around it. */
static json_object *auths_entry(json_object *auths, const char *server, const char **ret_key)
{
    if (auths == NULL)
        return NULL;
    json_object_object_foreach(auths, key, val)
    {
        const char *k = key;
        if (strncmp(k, "https://", 8) == 0)
            k += 8;
        else if (strncmp(k, "http://", 7) == 0)
            k += 7;
        const char *want = server;
        if (strcmp(server, HUB_KEY) == 0)
            want = "index.docker.io";
        size_t n = strlen(want);
        if (strcmp(key, server) == 0 ||
            (strncmp(k, want, n) == 0 && (k[n] == '\0' || k[n] == '/'))) {
            if (ret_key)
                *ret_key = key;
            return val;
        }
    }
    return NULL;
}

int ks_creds_get(const char *server, char **ret_user, char **ret_pass, struct ks_error **err)
{
    const char *key = ks_creds_server_key(server);
    _cleanup_json_ json_object *cfg = NULL;
    int r = load_config(&cfg, err);
    if (r < 0)
        return r;
    const char *helper = helper_for(cfg, key);
    if (helper)
        return helper_get(helper, key, ret_user, ret_pass, err);
    json_object *e = auths_entry(ks_json_get_type(cfg, "auths", json_type_object), key, NULL);
    const char *auth = ks_json_str(e, "auth");
    if (auth && *auth)
        return ks_creds_decode_auth(auth, ret_user, ret_pass, err);
    const char *u = ks_json_str(e, "username"), *p = ks_json_str(e, "password");
    if (u && p) {
        *ret_user = strdup(u);
        *ret_pass = strdup(p);
        return 0;
    }
    return -ENOENT;
}

int ks_creds_store(const char *server, const char *user, const char *pass, struct ks_error **err)
{
    const char *key = ks_creds_server_key(server);
    _cleanup_json_ json_object *cfg = NULL;
    int r = load_config(&cfg, err);
    if (r < 0)
        return r;
    json_object *auths = ks_json_get_type(cfg, "auths", json_type_object);
    if (auths == NULL) {
        auths = json_object_new_object();
        json_object_object_add(cfg, "auths", auths);
    }
    const char *helper = helper_for(cfg, key);
    if (helper) {
        _cleanup_json_ json_object *in = json_object_new_object();
        json_object_object_add(in, "ServerURL", json_object_new_string(key));
        json_object_object_add(in, "Username", json_object_new_string(user));
        json_object_object_add(in, "Secret", json_object_new_string(pass));
        _cleanup_free_ char *out = NULL;
        int status;
        r = run_helper(helper, "store", ks_json_plain(in), &out, &status, err);
        if (r < 0)
            return r;
        if (status != 0)
            return ks_error_msg(err, "docker-credential-%s store: %s", helper, out);
        /* Docker leaves an empty entry so that the server is listed. */
        json_object_object_add(auths, key, json_object_new_object());
        return save_config(cfg, err);
    }
    _cleanup_free_ char *auth = ks_creds_encode_auth(user, pass);
    if (auth == NULL)
        return ks_error_set(err, ENOMEM, "store credentials");
    const char *old = NULL;
    if (auths_entry(auths, key, &old) && old) {
        _cleanup_free_ char *k = strdup(old);
        json_object_object_del(auths, k);
    }
    json_object *e = json_object_new_object();
    json_object_object_add(e, "auth", json_object_new_string(auth));
    json_object_object_add(auths, key, e);
    return save_config(cfg, err);
}

int ks_creds_erase(const char *server, struct ks_error **err)
{
    const char *key = ks_creds_server_key(server);
    _cleanup_json_ json_object *cfg = NULL;
    int r = load_config(&cfg, err);
    if (r < 0)
        return r;
    bool found = false;
    const char *helper = helper_for(cfg, key);
    if (helper) {
        _cleanup_free_ char *out = NULL;
        int status;
        r = run_helper(helper, "erase", key, &out, &status, err);
        if (r < 0)
            return r;
        found = status == 0;
    }
    json_object *auths = ks_json_get_type(cfg, "auths", json_type_object);
    const char *old = NULL;
    /* Every spelling of the server goes, as Docker's logout removes them. */
    while (auths && auths_entry(auths, key, &old) && old) {
        _cleanup_free_ char *k = strdup(old);
        json_object_object_del(auths, k);
        found = true;
        old = NULL;
    }
    if (!found)
        return -ENOENT;
    return save_config(cfg, err);
}
