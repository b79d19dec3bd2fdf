/* Image references: a table of what Docker accepts and how it normalizes it, and of what it
 * refuses and why; then the digest and id helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/ref.h"
#include "tap.h"

/* sha256 of the empty string, and a 128-digit string for sha512. */
#define H64  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define H128 H64 H64

struct ref_case {
    const char *in;
    const char *normalized; /* NULL: must be refused */
    const char *familiar;   /* or, for a refused one, a part of the message */
};

static const struct ref_case cases[] = {
    /* Docker Hub and its defaults */
    {"busybox", "docker.io/library/busybox:latest", "busybox:latest"},
    {"busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"},
    {"library/busybox", "docker.io/library/busybox:latest", "busybox:latest"},
    {"docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"},
    {"docker.io/library/busybox:musl", "docker.io/library/busybox:musl", "busybox:musl"},
    {"index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"},
    {"index.docker.io/user/x", "docker.io/user/x:latest", "user/x:latest"},
    {"user/repo", "docker.io/user/repo:latest", "user/repo:latest"},
    {"user/repo:tag", "docker.io/user/repo:tag", "user/repo:tag"},
    {"docker.io/user/repo:v1", "docker.io/user/repo:v1", "user/repo:v1"},
    {"a/b/c/d/e", "docker.io/a/b/c/d/e:latest", "a/b/c/d/e:latest"},
    {"docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"},
    /* a first path component that would read as a registry keeps docker.io */
    {"index.docker.io/lib.dry/x", "docker.io/lib.dry/x:latest", "docker.io/lib.dry/x:latest"},
    {"docker.io/localhost/x:1", "docker.io/localhost/x:1", "docker.io/localhost/x:1"},
    /* registries: a first component with '.', ':', "localhost" or upper case */
    {"localhost:5000/a/b:tag", "localhost:5000/a/b:tag", "localhost:5000/a/b:tag"},
    {"localhost/foo", "localhost/foo:latest", "localhost/foo:latest"},
    {"localhost", "docker.io/library/localhost:latest", "localhost:latest"},
    {"localhost:5000", "docker.io/library/localhost:5000", "localhost:5000"},
    {"registry.example.com/x", "registry.example.com/x:latest", "registry.example.com/x:latest"},
    {"registry.example.com:443/team/app:1.0", "registry.example.com:443/team/app:1.0",
     "registry.example.com:443/team/app:1.0"},
    {"my-registry-1.example/x", "my-registry-1.example/x:latest", "my-registry-1.example/x:latest"},
    {"Registry/repo", "Registry/repo:latest", "Registry/repo:latest"},
    {"127.0.0.1:5000/foo", "127.0.0.1:5000/foo:latest", "127.0.0.1:5000/foo:latest"},
    {"[::1]:5000/foo:bar", "[::1]:5000/foo:bar", "[::1]:5000/foo:bar"},
    /* digests */
    {"busybox@sha256:" H64, "docker.io/library/busybox@sha256:" H64, "busybox@sha256:" H64},
    {"busybox:1.36@sha256:" H64, "docker.io/library/busybox:1.36@sha256:" H64,
     "busybox:1.36@sha256:" H64},
    {"ghcr.io/org/img@sha512:" H128, "ghcr.io/org/img@sha512:" H128,
     "ghcr.io/org/img@sha512:" H128},
    {"localhost:5000/a@sha256:" H64, "localhost:5000/a@sha256:" H64,
     "localhost:5000/a@sha256:" H64},
    /* path component separators and tag characters */
    {"foo_bar", "docker.io/library/foo_bar:latest", "foo_bar:latest"},
    {"foo__bar", "docker.io/library/foo__bar:latest", "foo__bar:latest"},
    {"foo.bar", "docker.io/library/foo.bar:latest", "foo.bar:latest"},
    {"foo---bar", "docker.io/library/foo---bar:latest", "foo---bar:latest"},
    {"x1/f-o.o_b__a-r", "docker.io/x1/f-o.o_b__a-r:latest", "x1/f-o.o_b__a-r:latest"},
    {"busybox:_tag", "docker.io/library/busybox:_tag", "busybox:_tag"},
    {"busybox:Tag.With-Upper_9", "docker.io/library/busybox:Tag.With-Upper_9",
     "busybox:Tag.With-Upper_9"},
    /* only the whole string being an id is refused */
    {H64 ":v1", "docker.io/library/" H64 ":v1", H64 ":v1"},

    /* refused */
    {"", NULL, "empty reference"},
    {"Foo", NULL, "invalid reference `Foo`: repository name must be lowercase"},
    {"foo/Bar", NULL, "repository name must be lowercase"},
    {"docker.io/Foo", NULL, "repository name must be lowercase"},
    {H64, NULL, "cannot specify 64-byte hexadecimal strings"},
    {"foo:", NULL, "invalid tag ``"},
    {"foo:-bar", NULL, "invalid tag `-bar`"},
    {"foo:.bar", NULL, "invalid tag `.bar`"},
    {"a:b:c", NULL, "invalid tag `b:c`"},
    {"foo@sha256:abc", NULL, "invalid digest `sha256:abc`"},
    {"foo@sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", NULL,
     "invalid digest"},
    {"foo@md5:d41d8cd98f00b204e9800998ecf8427e", NULL, "invalid digest"},
    {"foo@", NULL, "invalid digest ``"},
    {"foo:tag@", NULL, "invalid digest"},
    {"foo@sha256:" H64 "@sha256:" H64, NULL, "invalid digest"},
    {"@sha256:" H64, NULL, "empty repository name"},
    {"localhost:5000/", NULL, "empty repository name"},
    {"foo//bar", NULL, "invalid repository name component ``"},
    {"/foo", NULL, "invalid repository name component ``"},
    {"foo/", NULL, "invalid repository name component ``"},
    {"foo..bar", NULL, "component `foo..bar`"},
    {"foo._bar", NULL, "component `foo._bar`"},
    {"foo___bar", NULL, "component `foo___bar`"},
    {"-foo", NULL, "component `-foo`"},
    {"foo-", NULL, "component `foo-`"},
    {"user/foo_", NULL, "component `foo_`"},
    {"foo bar", NULL, "component `foo bar`"},
    {"registry.example.com:port/x", NULL, "invalid registry domain `registry.example.com:port`"},
    {"-registry.com/x", NULL, "invalid registry domain"},
    {"registry-.com/x", NULL, "invalid registry domain"},
    {"registry..com/x", NULL, "invalid registry domain"},
    {"[::1/x", NULL, "invalid registry domain"},
    {"f.o_o/x", NULL, "invalid registry domain `f.o_o`"}, /* a '.' makes it a domain */
    {"foo:bar/baz", NULL, "invalid registry domain `foo:bar`"},
};

static void test_table(void)
{
    for (size_t i = 0; i < KS_ELEMENTSOF(cases); i++) {
        const struct ref_case *c = &cases[i];
        _cleanup_ref_ struct ks_ref *r = NULL;
        _cleanup_error_ struct ks_error *err = NULL;
        int ret = ks_ref_parse(c->in, &r, &err);
        if (c->normalized == NULL) {
            bool ok = ret == -EINVAL && r == NULL && err && strstr(err->msg, c->familiar);
            if (!tap_ok(ok, "`%s` is refused: %s", c->in, c->familiar))
                tap_diag("  got %d, \"%s\"", ret, err ? err->msg : "(no error)");
            continue;
        }
        if (!tap_ok(ret == 0 && r, "`%s` parses", c->in)) {
            tap_diag("  %s", err ? err->msg : "(no error)");
            continue;
        }
        _cleanup_free_ char *full = ks_ref_string(r);
        _cleanup_free_ char *fam = ks_ref_familiar(r);
        TAP_EQ_STR(full, c->normalized, "`%s` normalizes", c->in);
        TAP_EQ_STR(fam, c->familiar, "`%s` has the familiar form", c->in);

        /* Both forms must parse back to the same reference. */
        _cleanup_ref_ struct ks_ref *again = NULL, *again2 = NULL;
        _cleanup_free_ char *full2 = NULL, *fam2 = NULL;
        if (ks_ref_parse(full, &again, NULL) == 0)
            full2 = ks_ref_string(again);
        if (ks_ref_parse(fam, &again2, NULL) == 0)
            fam2 = ks_ref_string(again2);
        tap_ok(full2 && fam2 && strcmp(full2, full) == 0 && strcmp(fam2, full) == 0,
               "`%s` round-trips through both forms", c->in);
    }
}

static void test_fields(void)
{
    _cleanup_ref_ struct ks_ref *r = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    tap_ok(ks_ref_parse("localhost:5000/a/b:t@sha256:" H64, &r, &err) == 0, "parse all parts");
    if (r == NULL)
        return;
    TAP_EQ_STR(r->domain, "localhost:5000", "domain");
    TAP_EQ_STR(r->path, "a/b", "path");
    TAP_EQ_STR(r->tag, "t", "tag");
    TAP_EQ_STR(r->digest, "sha256:" H64, "digest");
    _cleanup_free_ char *repo = ks_ref_repository(r);
    TAP_EQ_STR(repo, "localhost:5000/a/b", "repository has neither tag nor digest");

    _cleanup_ref_ struct ks_ref *d = ks_ref_dup(r);
    tap_ok(d && d->domain != r->domain && strcmp(d->path, r->path) == 0 &&
               strcmp(d->tag, r->tag) == 0 && strcmp(d->digest, r->digest) == 0,
           "dup is a deep copy");

    _cleanup_ref_ struct ks_ref *dg = NULL;
    tap_ok(ks_ref_parse("busybox@sha256:" H64, &dg, NULL) == 0 && dg->tag == NULL,
           "a digest-only reference gets no default tag");
    ks_ref_free(NULL);
    tap_ok(true, "ks_ref_free(NULL) is fine");
}

static void test_lengths(void)
{
    /* "docker.io/" + path: 10 + 245 = 255 characters are fine, 256 are not. */
    char in[300] = "u/";
    memset(in + 2, 'a', 243);
    in[245] = '\0';
    _cleanup_ref_ struct ks_ref *r = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    int ret = ks_ref_parse(in, &r, &err);
    tap_ok(ret == 0 && strlen(r->domain) + 1 + strlen(r->path) == 255,
           "a name of 255 characters is accepted");
    if (ret < 0)
        tap_diag("  %s", err->msg);

    _cleanup_ref_ struct ks_ref *r2 = NULL;
    _cleanup_error_ struct ks_error *err2 = NULL;
    in[245] = 'a';
    in[246] = '\0';
    ret = ks_ref_parse(in, &r2, &err2);
    tap_ok(ret == -EINVAL && err2 && strstr(err2->msg, "not be more than 255 characters"),
           "a name of 256 characters is refused");

    /* One component: "library/" counts, so 255 - 10 - 8 = 237 characters are the most. */
    char one[300];
    memset(one, 'z', 237);
    one[237] = '\0';
    _cleanup_ref_ struct ks_ref *r3 = NULL;
    tap_ok(ks_ref_parse(one, &r3, NULL) == 0, "237 characters with library/ are accepted");
    one[237] = 'z';
    one[238] = '\0';
    _cleanup_ref_ struct ks_ref *r4 = NULL;
    tap_ok(ks_ref_parse(one, &r4, NULL) == -EINVAL, "238 characters with library/ are refused");

    char tagged[300];
    memcpy(tagged, "busybox:", 8);
    memset(tagged + 8, 't', 128);
    tagged[8 + 128] = '\0';
    _cleanup_ref_ struct ks_ref *r5 = NULL;
    tap_ok(ks_ref_parse(tagged, &r5, NULL) == 0, "a tag of 128 characters is accepted");
    tagged[8 + 128] = 't';
    tagged[8 + 129] = '\0';
    _cleanup_ref_ struct ks_ref *r6 = NULL;
    _cleanup_error_ struct ks_error *err6 = NULL;
    tap_ok(ks_ref_parse(tagged, &r6, &err6) == -EINVAL && strstr(err6->msg, "invalid tag"),
           "a tag of 129 characters is refused");

    size_t huge_len = 100000;
    _cleanup_free_ char *huge = malloc(huge_len + 1);
    memset(huge, 'a', huge_len);
    huge[huge_len] = '\0';
    _cleanup_ref_ struct ks_ref *r7 = NULL;
    tap_ok(huge && ks_ref_parse(huge, &r7, NULL) == -EINVAL, "a huge reference is refused");
    tap_ok(ks_ref_parse(NULL, &r7, NULL) == -EINVAL, "NULL is refused");
}

static void test_digest_helpers(void)
{
    tap_ok(ks_is_digest("sha256:" H64), "sha256 digest");
    tap_ok(ks_is_digest("sha512:" H128), "sha512 digest");
    tap_ok(!ks_is_digest("sha512:" H64), "sha512 needs 128 digits");
    tap_ok(!ks_is_digest("sha256:" H128), "sha256 needs 64 digits");
    tap_ok(!ks_is_digest("sha256:" H64 "0"), "one digit too many");
    tap_ok(!ks_is_digest("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"),
           "upper-case hex is refused");
    tap_ok(!ks_is_digest("SHA256:" H64), "upper-case algorithm is refused");
    tap_ok(!ks_is_digest("sha384:" H64), "unknown algorithm is refused");
    tap_ok(!ks_is_digest("sha256:../../x"), "a path is not a digest");
    tap_ok(!ks_is_digest(H64), "hex alone is not a digest");
    tap_ok(!ks_is_digest(""), "empty is not a digest");
    tap_ok(!ks_is_digest(NULL), "NULL is not a digest");

    tap_ok(ks_is_hex_prefix("e"), "one hex digit is an id prefix");
    tap_ok(ks_is_hex_prefix("e3b0c442"), "short id");
    tap_ok(ks_is_hex_prefix(H64), "full id");
    tap_ok(ks_is_hex_prefix("sha256:e3b0"), "sha256: prefix allowed");
    tap_ok(ks_is_hex_prefix("sha256:" H64), "full id with sha256:");
    tap_ok(!ks_is_hex_prefix(""), "empty is no id");
    tap_ok(!ks_is_hex_prefix("sha256:"), "sha256: alone is no id");
    tap_ok(!ks_is_hex_prefix(H64 "0"), "65 digits are no id");
    tap_ok(!ks_is_hex_prefix("E3B0"), "upper case is no id");
    tap_ok(!ks_is_hex_prefix("busybox"), "a name is no id");
    tap_ok(!ks_is_hex_prefix("abc:1"), "a tagged name is no id");
    tap_ok(!ks_is_hex_prefix(NULL), "NULL is no id");
}

int main(void)
{
    tap_plan_auto();
    test_table();
    test_fields();
    test_lengths();
    test_digest_helpers();
    return tap_done();
}
