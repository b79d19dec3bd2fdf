/* The registry server's parsers (routes, names, tags, Content-Range and Range) and a smoke test
 * of the server itself on a loopback port. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "lib/registry/server.h"
#include "tap.h"

#define D256 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void test_names(void)
{
    static const char *const good[] = {
        "a",   "library/busybox", "a.b",   "a_b", "a__b",
        "a-b", "a---b",           "x/y/z", "0",   "ab9-c.d_e/f__g",
    };
    static const char *const bad[] = {
        "",    "A",    "a..b", "a___b", "-a", "a-",   "a/",  "/a", "a//b",
        "a b", "../a", "a/..", ".",     "_a", "a/_b", "a:b", "a.", "a_",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        tap_ok(ks_registry_name_valid(good[i]), "name `%s` valid", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        tap_ok(!ks_registry_name_valid(bad[i]), "name `%s` invalid", bad[i]);
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    longname[255] = '\0';
    tap_ok(ks_registry_name_valid(longname), "255 bytes is the longest name");
    longname[255] = 'a';
    longname[256] = '\0';
    tap_ok(!ks_registry_name_valid(longname), "256 bytes is too long");

    tap_ok(ks_registry_tag_valid("latest") && ks_registry_tag_valid("_x") &&
               ks_registry_tag_valid("v1.2-rc_3"),
           "tags valid");
    tap_ok(!ks_registry_tag_valid(".x") && !ks_registry_tag_valid("-x") &&
               !ks_registry_tag_valid("a/b") && !ks_registry_tag_valid("") &&
               !ks_registry_tag_valid("a:b"),
           "bad tags refused");
    char longtag[200];
    memset(longtag, 't', sizeof(longtag));
    longtag[128] = '\0';
    tap_ok(ks_registry_tag_valid(longtag), "128-byte tag valid");
    longtag[128] = 't';
    longtag[129] = '\0';
    tap_ok(!ks_registry_tag_valid(longtag), "129-byte tag refused");
    tap_ok(ks_registry_uuid_valid("0123456789abcdef0123456789abcdef"), "uuid valid");
    tap_ok(!ks_registry_uuid_valid("0123456789abcdef0123456789abcdeF") &&
               !ks_registry_uuid_valid("../../../../etc/passwd") &&
               !ks_registry_uuid_valid("0123456789abcdef"),
           "bad uuids refused");
}

static void route(const char *path, enum ks_registry_route_kind kind,
                  enum ks_registry_route_error error, const char *name, const char *ref)
{
    struct ks_registry_route r;
    ks_registry_route_parse(path, &r);
    bool ok = r.kind == kind && r.error == error && (!name || strcmp(r.name, name) == 0) &&
              (!ref || strcmp(r.ref, ref) == 0);
    if (!tap_ok(ok, "route `%s`", path))
        tap_diag("  got kind %d error %d name `%s` ref `%s`", r.kind, r.error, r.name, r.ref);
}

static void test_routes(void)
{
    route("/v2/", KS_ROUTE_BASE, KS_ROUTE_OK, "", "");
    route("/v2", KS_ROUTE_BASE, KS_ROUTE_OK, "", "");
    route("/v2/_catalog", KS_ROUTE_CATALOG, KS_ROUTE_OK, "", "");
    route("/v1/search", KS_ROUTE_SEARCH, KS_ROUTE_OK, "", "");
    route("/v2/a/b/tags/list", KS_ROUTE_TAGS, KS_ROUTE_OK, "a/b", "");
    route("/v2/busybox/manifests/latest", KS_ROUTE_MANIFEST, KS_ROUTE_OK, "busybox", "latest");
    route("/v2/x/manifests/" D256, KS_ROUTE_MANIFEST, KS_ROUTE_OK, "x", D256);
    route("/v2/x/blobs/" D256, KS_ROUTE_BLOB, KS_ROUTE_OK, "x", D256);
    route("/v2/x/y/blobs/uploads/", KS_ROUTE_UPLOADS, KS_ROUTE_OK, "x/y", "");
    route("/v2/x/blobs/uploads", KS_ROUTE_UPLOADS, KS_ROUTE_OK, "x", "");
    route("/v2/x/blobs/uploads/0123456789abcdef0123456789abcdef", KS_ROUTE_UPLOAD, KS_ROUTE_OK, "x",
          "0123456789abcdef0123456789abcdef");
    route("/v2/x/referrers/" D256, KS_ROUTE_REFERRERS, KS_ROUTE_OK, "x", D256);
    /* names made of words the routes use */
    route("/v2/blobs/manifests/tags/list", KS_ROUTE_TAGS, KS_ROUTE_OK, "blobs/manifests", "");
    route("/v2/manifests/manifests/v1", KS_ROUTE_MANIFEST, KS_ROUTE_OK, "manifests", "v1");
    /* refusals */
    route("/v2/UPPER/tags/list", KS_ROUTE_TAGS, KS_ROUTE_ERR_NAME, NULL, NULL);
    route("/v2/../etc/tags/list", KS_ROUTE_TAGS, KS_ROUTE_ERR_NAME, NULL, NULL);
    route("/v2/a/../b/blobs/" D256, KS_ROUTE_BLOB, KS_ROUTE_ERR_NAME, NULL, NULL);
    route("/v2/manifests/latest", KS_ROUTE_NONE, KS_ROUTE_OK, NULL, NULL);
    route("/v2/x/manifests/..", KS_ROUTE_MANIFEST, KS_ROUTE_ERR_REFERENCE, NULL, NULL);
    route("/v2/x/manifests/sha256:abc", KS_ROUTE_MANIFEST, KS_ROUTE_ERR_DIGEST, NULL, NULL);
    route("/v2/x/blobs/latest", KS_ROUTE_BLOB, KS_ROUTE_ERR_DIGEST, NULL, NULL);
    route("/v2/x/blobs/uploads/..", KS_ROUTE_UPLOAD, KS_ROUTE_ERR_UUID, NULL, NULL);
    route("/v2/x/blobs/uploads/a/b", KS_ROUTE_NONE, KS_ROUTE_OK, NULL, NULL);
    route("/etc/passwd", KS_ROUTE_NONE, KS_ROUTE_OK, NULL, NULL);
    route("/v2/x", KS_ROUTE_NONE, KS_ROUTE_OK, NULL, NULL);
    route("/v2/x/tags/lis", KS_ROUTE_NONE, KS_ROUTE_OK, NULL, NULL);
    route("", KS_ROUTE_NONE, KS_ROUTE_OK, NULL, NULL);
    char huge[5000];
    memset(huge, 'a', sizeof(huge));
    memcpy(huge, "/v2/", 4);
    strcpy(huge + sizeof(huge) - 12, "/tags/list");
    route(huge, KS_ROUTE_NONE, KS_ROUTE_OK, NULL, NULL);
    strcpy(huge + 300, "/tags/list");
    route(huge, KS_ROUTE_TAGS, KS_ROUTE_ERR_NAME, NULL, NULL);
}

static void test_ranges(void)
{
    uint64_t a = 0, b = 0;
    tap_ok(ks_registry_content_range_parse("0-99", &a, &b) == 0 && a == 0 && b == 99,
           "Content-Range 0-99");
    tap_ok(ks_registry_content_range_parse("bytes 100-199/1000", &a, &b) == 0 && a == 100 &&
               b == 199,
           "Content-Range with unit and total");
    tap_ok(ks_registry_content_range_parse("bytes=5-5/*", &a, &b) == 0 && a == 5 && b == 5,
           "Content-Range with unknown total");
    static const char *const bad[] = {"",      "5",     "5-",   "-5",
                                      "9-5",   "a-b",   "1-2x", " 1-2",
                                      "1 - 2", "0-9/5", "1--2", "99999999999999999999-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        tap_ok(ks_registry_content_range_parse(bad[i], &a, &b) == -EINVAL,
               "Content-Range `%s` refused", bad[i]);

    tap_ok(ks_registry_range_parse("bytes=0-9", 100, &a, &b) == 1 && a == 0 && b == 9, "Range 0-9");
    tap_ok(ks_registry_range_parse("bytes=90-", 100, &a, &b) == 1 && a == 90 && b == 99,
           "Range open end");
    tap_ok(ks_registry_range_parse("bytes=50-500", 100, &a, &b) == 1 && a == 50 && b == 99,
           "Range end clamped to the size");
    tap_ok(ks_registry_range_parse("bytes=-10", 100, &a, &b) == 1 && a == 90 && b == 99,
           "Range suffix");
    tap_ok(ks_registry_range_parse("bytes=-1000", 100, &a, &b) == 1 && a == 0 && b == 99,
           "Range suffix longer than the blob");
    TAP_EQ_INT(ks_registry_range_parse("bytes=100-", 100, &a, &b), -ERANGE,
               "Range past the end is unsatisfiable");
    TAP_EQ_INT(ks_registry_range_parse("bytes=-0", 100, &a, &b), -ERANGE, "empty suffix");
    TAP_EQ_INT(ks_registry_range_parse("bytes=0-1,5-6", 100, &a, &b), 0,
               "several ranges: the whole blob");
    TAP_EQ_INT(ks_registry_range_parse("items=0-1", 100, &a, &b), 0, "other unit ignored");
    TAP_EQ_INT(ks_registry_range_parse("bytes=5-1", 100, &a, &b), 0, "reversed range ignored");
    TAP_EQ_INT(ks_registry_range_parse(NULL, 100, &a, &b), 0, "no header");
}

/* One plain HTTP/1.0 request to the server; the response's head in buf. */
static int http_get(uint16_t port, const char *path, char *buf, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
    if (ks_write_all(fd, req, (size_t)n) < 0) {
        close(fd);
        return -1;
    }
    ssize_t got = ks_read_all(fd, buf, len - 1);
    close(fd);
    if (got < 0)
        return -1;
    buf[got] = '\0';
    return 0;
}

static void test_server(void)
{
    char root[] = "/tmp/test_registry_server.XXXXXX";
    if (mkdtemp(root) == NULL) {
        tap_ok(false, "mkdtemp");
        return;
    }
    struct ks_registry_server_opts o = {.addr = "127.0.0.1:0", .root = root, .threads = 2};
    struct ks_registry_server *srv = NULL;
    struct ks_error *e = NULL;
    if (!tap_ok(ks_registry_server_start(&o, &srv, &e) == 0, "server starts")) {
        tap_diag("  %s", e ? e->msg : "?");
        ks_error_free(e);
        return;
    }
    uint16_t port = ks_registry_server_port(srv);
    tap_ok(port != 0, "server picked a port");
    char buf[4096];
    tap_ok(http_get(port, "/v2/", buf, sizeof(buf)) == 0 && strncmp(buf, "HTTP/1.", 7) == 0 &&
               strstr(buf, " 200 ") && strstr(buf, "Docker-Distribution-API-Version: registry/2.0"),
           "GET /v2/ answers 200 with the API version");
    tap_ok(http_get(port, "/v2/Bad/tags/list", buf, sizeof(buf)) == 0 && strstr(buf, " 400 ") &&
               strstr(buf, "NAME_INVALID"),
           "bad name: 400 NAME_INVALID");
    tap_ok(http_get(port, "/v2/none/manifests/latest", buf, sizeof(buf)) == 0 &&
               strstr(buf, " 404 ") && strstr(buf, "MANIFEST_UNKNOWN"),
           "unknown manifest: 404 MANIFEST_UNKNOWN");
    ks_registry_server_free(srv);

    struct ks_registry_gc_stats st;
    tap_ok(ks_registry_gc(root, false, true, NULL, NULL, &st, &e) == 0 && st.blobs_removed == 0 &&
               st.manifests_removed == 0,
           "garbage collection of an empty registry removes nothing");
    ks_error_free(e);
    ks_rm_rf_at(AT_FDCWD, root, NULL);
}

int main(void)
{
    tap_plan_auto();
    test_names();
    test_routes();
    test_ranges();
    test_server();
    return tap_done();
}
