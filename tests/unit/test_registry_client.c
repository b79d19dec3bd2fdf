/* The registry client's pure parts: WWW-Authenticate challenges, token replies, config.json
 * credentials (decode, store, erase), insecure-registry rules and response headers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "lib/base/json.h"
#include "lib/registry/auth.h"
#include "lib/registry/client.h"
#include "lib/registry/credentials.h"
#include "lib/registry/http.h"
#include "tap.h"

static void test_challenges(void)
{
    struct ks_auth_challenge c;
    struct ks_error *e = NULL;
    int r = ks_auth_challenge_parse(
        "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
        "scope=\"repository:samalba/my-app:pull,push\"",
        &c, &e);
    TAP_EQ_INT(r, 0, "Docker Hub's challenge parses");
    TAP_EQ_INT(c.scheme, KS_AUTH_BEARER, "scheme Bearer");
    TAP_EQ_STR(c.realm, "https://auth.docker.io/token", "realm");
    TAP_EQ_STR(c.service, "registry.docker.io", "service");
    TAP_EQ_STR(c.scope, "repository:samalba/my-app:pull,push", "scope with a comma inside quotes");
    ks_auth_challenge_release(&c);

    r = ks_auth_challenge_parse("Basic realm=\"Registry Realm\"", &c, NULL);
    tap_ok(r == 0 && c.scheme == KS_AUTH_BASIC && strcmp(c.realm, "Registry Realm") == 0,
           "Basic with a quoted realm");
    ks_auth_challenge_release(&c);

    r = ks_auth_challenge_parse(
        "Basic realm=x, Bearer realm=\"https://a/t\", error=\"insufficient_scope\"", &c, NULL);
    tap_ok(r == 0 && c.scheme == KS_AUTH_BEARER && strcmp(c.realm, "https://a/t") == 0 &&
               strcmp(c.error, "insufficient_scope") == 0,
           "Bearer preferred to Basic among several challenges");
    ks_auth_challenge_release(&c);

    r = ks_auth_challenge_parse("bearer REALM=\"r\\\"q\" , Service=s", &c, NULL);
    tap_ok(r == 0 && strcmp(c.realm, "r\"q") == 0 && strcmp(c.service, "s") == 0,
           "case-insensitive names, escapes, blanks around commas");
    ks_auth_challenge_release(&c);

    r = ks_auth_challenge_parse("Negotiate abc, Bearer realm=\"x\"", &c, NULL);
    tap_ok(r == 0 && c.scheme == KS_AUTH_BEARER, "an unknown scheme before is skipped");
    ks_auth_challenge_release(&c);

    static const char *const bad[] = {
        "", "Bearer realm=\"unterminated", "=x", "Negotiate", "Digest realm=x", "\"Bearer\"",
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(bad); i++) {
        e = NULL;
        r = ks_auth_challenge_parse(bad[i], &c, &e);
        tap_ok(r < 0 && e && e->msg, "refused: `%s`", bad[i]);
        ks_error_free(e);
    }
    char *huge = malloc(KS_AUTH_HEADER_MAX + 16);
    memset(huge, 'a', KS_AUTH_HEADER_MAX + 15);
    memcpy(huge, "Bearer realm=", 13);
    huge[KS_AUTH_HEADER_MAX + 15] = '\0';
    tap_ok(ks_auth_challenge_parse(huge, &c, NULL) < 0, "a header over the limit is refused");
    free(huge);
}

static void test_token_replies(void)
{
    char *tok = NULL;
    int64_t exp = 0;
    const char *a =
        "{\"token\":\"abc.def\",\"expires_in\":300,\"issued_at\":\"2024-01-01T00:00:00Z\"}";
    int r = ks_auth_token_reply_parse(a, strlen(a), &tok, &exp, NULL);
    tap_ok(r == 0 && strcmp(tok, "abc.def") == 0 && exp == 300, "token and expires_in");
    free(tok);
    const char *b = "{\"access_token\":\"xyz\"}";
    r = ks_auth_token_reply_parse(b, strlen(b), &tok, &exp, NULL);
    tap_ok(r == 0 && strcmp(tok, "xyz") == 0 && exp == KS_AUTH_TOKEN_DEFAULT_EXPIRY,
           "access_token, default lifetime");
    free(tok);
    const char *c = "{\"token\":\"\",\"access_token\":\"second\",\"expires_in\":5}";
    r = ks_auth_token_reply_parse(c, strlen(c), &tok, &exp, NULL);
    tap_ok(r == 0 && strcmp(tok, "second") == 0 && exp == KS_AUTH_TOKEN_DEFAULT_EXPIRY,
           "empty token falls back to access_token; short lifetimes raised to the minimum");
    free(tok);
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"token\":5}",
        "{\"token\":\"a b\"}",
        "{\"token\":\"x\"} trailing",
        "{\"token\":\"\\n\"}",
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(bad); i++) {
        struct ks_error *e = NULL;
        r = ks_auth_token_reply_parse(bad[i], strlen(bad[i]), &tok, &exp, &e);
        tap_ok(r < 0 && e && e->msg, "refused token reply `%s`", bad[i]);
        ks_error_free(e);
    }
}

static void test_auth_decode(void)
{
    char *u = NULL, *p = NULL;
    int r = ks_creds_decode_auth("YWxpY2U6czNjcjp0", &u, &p, NULL);
    tap_ok(r == 0 && strcmp(u, "alice") == 0 && strcmp(p, "s3cr:t") == 0,
           "auth decodes; the password may hold a colon");
    free(u), free(p);
    char *enc = ks_creds_encode_auth("bob", "pw");
    TAP_EQ_STR(enc, "Ym9iOnB3", "encode");
    r = ks_creds_decode_auth(enc, &u, &p, NULL);
    tap_ok(r == 0 && strcmp(u, "bob") == 0 && strcmp(p, "pw") == 0, "round trip");
    free(u), free(p), free(enc);
    static const char *const bad[] = {"", "!!!!", "Ym9i", "OnB3", "YQ"};
    for (size_t i = 0; i < KS_ELEMENTSOF(bad); i++) {
        struct ks_error *e = NULL;
        r = ks_creds_decode_auth(bad[i], &u, &p, &e);
        tap_ok(r < 0 && e, "refused auth `%s`", bad[i]);
        ks_error_free(e);
    }
    TAP_EQ_STR(ks_creds_server_key("docker.io"), "https://index.docker.io/v1/", "hub key");
    TAP_EQ_STR(ks_creds_server_key("localhost:5000"), "localhost:5000", "other keys as is");
}

static void test_config_file(void)
{
    char dir[] = "/tmp/test_registry_client.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        tap_skip("mkdtemp failed", "config.json");
        return;
    }
    setenv("DOCKER_CONFIG", dir, 1);
    char *path = ks_creds_config_path();
    FILE *f = fopen(path, "w");
    fputs("{\"psFormat\":\"x\",\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":"
          "\"aHViOmh1YnB3\"}}}",
          f);
    fclose(f);
    char *u = NULL, *p = NULL;
    int r = ks_creds_get("docker.io", &u, &p, NULL);
    tap_ok(r == 0 && strcmp(u, "hub") == 0 && strcmp(p, "hubpw") == 0, "hub credentials found");
    free(u), free(p);
    TAP_EQ_INT(ks_creds_get("localhost:5000", &u, &p, NULL), -ENOENT, "none for another host");
    r = ks_creds_store("localhost:5000", "me", "pw", NULL);
    TAP_EQ_INT(r, 0, "store");
    r = ks_creds_get("localhost:5000", &u, &p, NULL);
    tap_ok(r == 0 && strcmp(u, "me") == 0 && strcmp(p, "pw") == 0, "stored credentials found");
    free(u), free(p);
    json_object *o = NULL;
    ks_json_parse_file(path, &o, NULL);
    TAP_EQ_STR(ks_json_str(o, "psFormat"), "x", "other keys kept");
    json_object_put(o);
    TAP_EQ_INT(ks_creds_erase("localhost:5000", NULL), 0, "erase");
    TAP_EQ_INT(ks_creds_erase("localhost:5000", NULL), -ENOENT, "erase again: not there");
    r = ks_creds_get("docker.io", &u, &p, NULL);
    tap_ok(r == 0, "hub credentials still there");
    free(u), free(p);
    f = fopen(path, "w");
    fputs("{\"auths\": [1, 2]}", f);
    fclose(f);
    TAP_EQ_INT(ks_creds_get("docker.io", &u, &p, NULL), -ENOENT, "a malformed auths is ignored");
    f = fopen(path, "w");
    fputs("{not json", f);
    fclose(f);
    struct ks_error *e = NULL;
    r = ks_creds_get("docker.io", &u, &p, &e);
    tap_ok(r < 0 && r != -ENOENT && e && strstr(e->msg, "config.json"),
           "a broken config.json is an error naming it");
    ks_error_free(e);
    unlink(path);
    free(path);
    rmdir(dir);
    unsetenv("DOCKER_CONFIG");
}

static void test_insecure(void)
{
    unsetenv("KISTE_INSECURE_REGISTRIES");
    setenv("HOME", "/nonexistent", 1);
    unsetenv("XDG_CONFIG_HOME");
    tap_ok(ks_registry_insecure("localhost:5000", NULL), "localhost is insecure");
    tap_ok(ks_registry_insecure("127.0.0.1:5000", NULL), "127.0.0.1 is insecure");
    tap_ok(ks_registry_insecure("[::1]:5000", NULL), "::1 is insecure");
    tap_ok(!ks_registry_insecure("registry.example:5000", NULL), "others are not");
    setenv("KISTE_INSECURE_REGISTRIES", "a.example,registry.example:5000", 1);
    tap_ok(ks_registry_insecure("registry.example:5000", NULL), "named in the environment");
    tap_ok(ks_registry_insecure("a.example:443", NULL), "a host without port names every port");
    tap_ok(!ks_registry_insecure("b.example", NULL), "not named");
    unsetenv("KISTE_INSECURE_REGISTRIES");
    char dir[] = "/tmp/test_registry_insecure.XXXXXX";
    if (mkdtemp(dir)) {
        char path[256];
        snprintf(path, sizeof(path), "%s/registries.json", dir);
        FILE *f = fopen(path, "w");
        fputs("{\"insecure-registries\": [\"c.example:5000\"]}", f);
        fclose(f);
        tap_ok(ks_registry_insecure("c.example:5000", dir), "named in registries.json");
        tap_ok(!ks_registry_insecure("c.example:5001", dir), "another port is not");
        unlink(path);
        rmdir(dir);
    }
    TAP_EQ_STR(ks_registry_host("docker.io"), "registry-1.docker.io", "Docker Hub's host");
    TAP_EQ_STR(ks_registry_host("quay.io"), "quay.io", "others as they are");
}

static void test_headers(void)
{
    struct ks_http_resp r = {.content_length = -1};
    static const char *const lines[] = {
        "HTTP/1.1 307 Temporary Redirect\r\n",
        "Location: https://cdn/x\r\n",
        "HTTP/1.1 401 Unauthorized\r\n",
        "WWW-Authenticate: Bearer realm=\"a\"\r\n",
        "www-authenticate: Basic realm=\"b\"\r\n",
        "Content-Length:  1234 \r\n",
        "Docker-Content-Digest: sha256:abc\r\n",
        "Content-Range: bytes 10-20/21\r\n",
        "X-Other: y\r\n",
        "\r\n",
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(lines); i++)
        ks_http_resp_header(&r, lines[i], strlen(lines[i]));
    TAP_EQ_INT(r.status, 401, "status of the last response");
    tap_ok(r.location == NULL, "headers of an earlier response are dropped");
    TAP_EQ_STR(r.www_authenticate, "Bearer realm=\"a\"", "the first challenge is kept");
    TAP_EQ_INT(r.content_length, 1234, "content length");
    TAP_EQ_STR(r.docker_content_digest, "sha256:abc", "digest header");
    TAP_EQ_STR(r.content_range, "bytes 10-20/21", "content range");
    const char *bogus = "Content-Length: -5\r\n";
    ks_http_resp_header(&r, bogus, strlen(bogus));
    TAP_EQ_INT(r.content_length, -1, "a negative length is none");
    ks_http_resp_release(&r);
    char *o = ks_http_origin("https://Host:5000/v2/x?y");
    TAP_EQ_STR(o, "https://Host:5000", "origin");
    free(o);
}

int main(void)
{
    tap_plan_auto();
    test_challenges();
    test_token_replies();
    test_auth_decode();
    test_config_file();
    test_insecure();
    test_headers();
    return tap_done();
}
