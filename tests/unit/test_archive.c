/* Image archives and the add-image API: save → load round trips in a temporary store, and
 * malformed archives, each refused with nothing recorded and no layer directory left. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "lib/base/hash.h"
#include "lib/image/archive.h"
#include "lib/image/store.h"
#include "tap.h"

static char base[64];
static int counter;

struct member {
    const char *name;
    const char *data; /* NULL with link: a symlink */
    size_t len;       /* 0: strlen(data) */
    const char *link;
};

#define F(n, d)                                                                                    \
    {                                                                                              \
        .name = (n), .data = (d)                                                                   \
    }
#define FL(n, d, l)                                                                                \
    {                                                                                              \
        .name = (n), .data = (d), .len = (l)                                                       \
    }
#define LNK(n, t)                                                                                  \
    {                                                                                              \
        .name = (n), .link = (t)                                                                   \
    }

static la_ssize_t memfd_write(struct archive *a, void *data, const void *buf, size_t len)
{
    (void)a;
    return write(*(int *)data, buf, len);
}

/* A tar of the members in a memory file, positioned at its start. */
static int make_tar(const struct member *m, size_t n)
{
    int fd = memfd_create("tar", MFD_CLOEXEC);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_set_bytes_in_last_block(a, 1);
    archive_write_open(a, &fd, NULL, memfd_write, NULL);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, m[i].name);
        size_t len = m[i].data ? (m[i].len ? m[i].len : strlen(m[i].data)) : 0;
        if (m[i].link) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, m[i].link);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_size(e, (la_int64_t)len);
        }
        archive_entry_set_perm(e, 0644);
        archive_write_header(a, e);
        if (len)
            archive_write_data(a, m[i].data, len);
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* The whole content of a memory file. */
static char *slurp(int fd, size_t *len)
{
    lseek(fd, 0, SEEK_SET);
    char *buf = NULL;
    ks_read_fd(fd, 1 << 26, &buf, len, NULL);
    lseek(fd, 0, SEEK_SET);
    return buf;
}

static struct ks_store *new_store(void)
{
    char root[128];
    snprintf(root, sizeof(root), "%s/root%d", base, counter++);
    struct ks_store *s = NULL;
    struct ks_error *e = NULL;
    if (ks_store_open(root, &s, &e) < 0) {
        tap_diag("open store: %s", e->msg);
        ks_error_free(e);
    }
    return s;
}

static int count_images(struct ks_store *s)
{
    struct ks_store_image **v = NULL;
    if (ks_store_images(s, &v, NULL) < 0)
        return -1;
    int n = 0;
    while (v[n])
        n++;
    ks_store_images_free(v);
    return n;
}

/* Layer directories under <root>/overlay (not the l/ links directory). */
static int count_layer_dirs(struct ks_store *s)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/overlay", ks_store_root(s));
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.' && strcmp(de->d_name, "l") != 0;
    closedir(d);
    return n;
}

/* --- a small image built by hand --- */

struct image {
    char *layer;
    size_t layer_len;
    char diff_id[KS_SHA256_DIGEST_LEN];
    char *config;
    char id[KS_SHA256_DIGEST_LEN];
};

static void image_make(struct image *im, const char *content)
{
    struct member files[] = {F("hello", content), F("etc/os-release", "ID=test\n")};
    int fd = make_tar(files, 2);
    im->layer = slurp(fd, &im->layer_len);
    close(fd);
    ks_sha256_hex(im->layer, im->layer_len, im->diff_id);
    if (asprintf(&im->config,
                 "{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"sh\"]},"
                 "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
                 im->diff_id) < 0)
        abort();
    ks_sha256_hex(im->config, strlen(im->config), im->id);
}

static void image_free(struct image *im)
{
    free(im->layer);
    free(im->config);
}

static int add_image(struct ks_store *s, const struct image *im, const char *tag,
                     const char *expected_diff_id, struct ks_error **err)
{
    int fd = memfd_create("layer", MFD_CLOEXEC);
    ks_write_all(fd, im->layer, im->layer_len);
    lseek(fd, 0, SEEK_SET);
    struct ks_store_layer_opts o = {.expected_diff_id = expected_diff_id};
    struct ks_store_layer *l = NULL;
    int r = ks_store_layer_add(s, fd, &o, &l, err);
    close(fd);
    if (r < 0)
        return r;
    const char *tags[] = {tag, NULL};
    struct ks_store_image_spec spec = {
        .config = im->config,
        .config_len = strlen(im->config),
        .layers = &l,
        .n_layers = 1,
        .tags = tag ? tags : NULL,
    };
    char *id = NULL;
    r = ks_store_image_add(s, &spec, &id, err);
    ks_store_layer_free(l);
    free(id);
    return r;
}

static int load_fd(struct ks_store *s, int fd, struct ks_archive_loaded ***ret,
                   struct ks_error **err)
{
    return ks_archive_load(s, fd, ret, err);
}

static void test_round_trip(enum ks_archive_format format, const char *what)
{
    struct image im;
    image_make(&im, "hello world\n");
    struct ks_store *a = new_store(), *b = new_store();
    struct ks_error *e = NULL;
    int r = add_image(a, &im, "example.com/test/img:v1", NULL, &e);
    tap_ok(r == 0, "%s: add an image from its layer and config (%s)", what, e ? e->msg : "ok");
    ks_error_free(e), e = NULL;

    const char *names[] = {"example.com/test/img:v1", NULL};
    int out = memfd_create("out", MFD_CLOEXEC);
    r = ks_archive_save(a, names, format, out, &e);
    tap_ok(r == 0, "%s: save (%s)", what, e ? e->msg : "ok");
    ks_error_free(e), e = NULL;
    size_t len1 = 0;
    char *first = slurp(out, &len1);

    struct ks_archive_loaded **loaded = NULL;
    r = load_fd(b, out, &loaded, &e);
    tap_ok(r == 0, "%s: load (%s)", what, e ? e->msg : "ok");
    ks_error_free(e), e = NULL;
    if (r == 0) {
        TAP_EQ_STR(loaded[0]->id, im.id, "%s: the loaded image has the saved ID", what);
        TAP_EQ_STR(loaded[0]->tags[0], "example.com/test/img:v1", "%s: and its tag", what);
        tap_ok(loaded[1] == NULL, "%s: one image", what);
    }
    ks_archive_loaded_free(loaded);
    char *id = NULL;
    r = ks_store_lookup(b, "example.com/test/img:v1", &id, NULL);
    TAP_EQ_STR(r == 0 ? id : NULL, im.id, "%s: the tag resolves in the new store", what);
    free(id);

    /* Saving the loaded image again gives the same bytes. */
    int out2 = memfd_create("out2", MFD_CLOEXEC);
    r = ks_archive_save(b, names, format, out2, &e);
    ks_error_free(e), e = NULL;
    size_t len2 = 0;
    char *second = slurp(out2, &len2);
    tap_ok(r == 0 && len1 == len2 && memcmp(first, second, len1) == 0,
           "%s: save is deterministic across stores", what);
    /* Loading it again into the same store shares everything. */
    r = load_fd(b, out2, NULL, &e);
    tap_ok(r == 0 && count_layer_dirs(b) == 1 && count_images(b) == 1,
           "%s: loading again adds no layer directory (%s)", what, e ? e->msg : "ok");
    ks_error_free(e), e = NULL;
    free(first);
    free(second);
    close(out);
    close(out2);
    ks_store_free(a);
    ks_store_free(b);
    image_free(&im);
}

static void test_by_id_and_two_images(void)
{
    struct image i1, i2;
    image_make(&i1, "one\n");
    image_make(&i2, "two\n");
    struct ks_store *a = new_store(), *b = new_store();
    add_image(a, &i1, "one:latest", NULL, NULL);
    add_image(a, &i2, NULL, NULL, NULL);
    const char *names[] = {"one", i2.id + 7, NULL};
    int out = memfd_create("out", MFD_CLOEXEC);
    struct ks_error *e = NULL;
    int r = ks_archive_save(a, names, KS_ARCHIVE_DOCKER, out, &e);
    lseek(out, 0, SEEK_SET);
    struct ks_archive_loaded **loaded = NULL;
    if (r == 0)
        r = load_fd(b, out, &loaded, &e);
    tap_ok(r == 0, "two images, one by ID: save and load (%s)", e ? e->msg : "ok");
    ks_error_free(e);
    if (r == 0) {
        TAP_EQ_STR(loaded[0]->tags[0], "one:latest", "the tagged image keeps its tag");
        tap_ok(loaded[1] && strcmp(loaded[1]->id, i2.id) == 0 && loaded[1]->tags[0] == NULL,
               "the image saved by ID loads without a name");
    }
    TAP_EQ_INT(count_images(b), 2, "both images are recorded");
    ks_archive_loaded_free(loaded);
    close(out);
    ks_store_free(a);
    ks_store_free(b);
    image_free(&i1);
    image_free(&i2);
}

static void test_add_api_errors(void)
{
    struct image im;
    image_make(&im, "api\n");
    struct ks_store *s = new_store();
    struct ks_error *e = NULL;
    const char *wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    int r = add_image(s, &im, "x:1", wrong, &e);
    tap_ok(r == -EBADMSG && e && strstr(e->msg, "diff ID mismatch"),
           "an expected diff_id that does not match is refused (%s)", e ? e->msg : "none");
    ks_error_free(e), e = NULL;
    tap_ok(count_images(s) == 0 && count_layer_dirs(s) == 0, "  and nothing is left");

    /* The config must name the layers it is given. */
    struct image other;
    image_make(&other, "other\n");
    free(other.config);
    other.config = strdup(im.config);
    r = add_image(s, &other, NULL, NULL, &e);
    tap_ok(r < 0 && e && strstr(e->msg, "does not match"),
           "a config whose diff_ids differ from the layers is refused (%s)", e ? e->msg : "none");
    ks_error_free(e), e = NULL;
    tap_ok(count_images(s) == 0 && count_layer_dirs(s) == 0, "  and nothing is left");
    image_free(&other);

    /* A second layer on a parent chain that exists is unpacked on it. */
    r = add_image(s, &im, "x:1", im.diff_id, &e);
    tap_ok(r == 0, "an expected diff_id that matches is accepted (%s)", e ? e->msg : "ok");
    ks_error_free(e), e = NULL;
    int fd = memfd_create("layer", MFD_CLOEXEC);
    ks_write_all(fd, im.layer, im.layer_len);
    lseek(fd, 0, SEEK_SET);
    struct ks_store_layer_opts o = {.expected_diff_id = im.diff_id};
    struct ks_store_layer *l = NULL;
    r = ks_store_layer_add(s, fd, &o, &l, &e);
    tap_ok(r == 0 && count_layer_dirs(s) == 1,
           "a layer whose chain exists is only checked, not unpacked again");
    ks_store_layer_free(l);
    ks_error_free(e), e = NULL;
    close(fd);
    ks_store_free(s);
    image_free(&im);
}

/* The same layer on two different parents: the second directory is unpacked again from what
 * the store kept of the first (its tar index, replayed over the first directory). */
static void test_layer_on_two_parents(void)
{
    struct image lower, top;
    image_make(&lower, "base\n");
    image_make(&top, "top\n");
    struct ks_store *a = new_store(), *b = new_store();
    struct ks_error *e = NULL;
    int r = add_image(a, &top, "top:1", NULL, &e);
    /* Image two: base, then top's layer on it. */
    char *config = NULL;
    if (asprintf(&config,
                 "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
                 "\"layers\",\"diff_ids\":[\"%s\",\"%s\"]}}",
                 lower.diff_id, top.diff_id) < 0)
        abort();
    struct ks_store_layer *l[2] = {NULL, NULL};
    const struct image *src[2] = {&lower, &top};
    for (int i = 0; r >= 0 && i < 2; i++) {
        int fd = memfd_create("layer", MFD_CLOEXEC);
        ks_write_all(fd, src[i]->layer, src[i]->layer_len);
        lseek(fd, 0, SEEK_SET);
        struct ks_store_layer_opts o = {.detached = true, .expected_diff_id = src[i]->diff_id};
        r = ks_store_layer_add(a, fd, &o, &l[i], &e);
        close(fd);
    }
    const char *tags[] = {"two:1", NULL};
    struct ks_store_image_spec spec = {
        .config = config, .config_len = strlen(config), .layers = l, .n_layers = 2, .tags = tags};
    if (r >= 0)
        r = ks_store_image_add(a, &spec, NULL, &e);
    tap_ok(r == 0, "a layer already stored as a base goes on another parent (%s)",
           e ? e->msg : "ok");
    ks_error_free(e), e = NULL;
    TAP_EQ_INT(count_layer_dirs(a), 3, "  three layer directories: top, base, top on base");
    ks_store_layer_free(l[0]);
    ks_store_layer_free(l[1]);

    const char *names[] = {"two:1", "top:1", NULL};
    int out = memfd_create("out", MFD_CLOEXEC);
    r = ks_archive_save(a, names, KS_ARCHIVE_DOCKER, out, &e);
    lseek(out, 0, SEEK_SET);
    if (r == 0)
        r = ks_archive_load(b, out, NULL, &e);
    tap_ok(r == 0, "  both save and load again (%s)", e ? e->msg : "ok");
    ks_error_free(e), e = NULL;
    TAP_EQ_INT(count_images(b), 2, "  both images are in the new store");
    TAP_EQ_INT(count_layer_dirs(b), 3, "  with the same three layer directories");
    close(out);
    free(config);
    ks_store_free(a);
    ks_store_free(b);
    image_free(&lower);
    image_free(&top);
}

/* --- malformed archives --- */

struct bad {
    const char *what;
    struct member m[6];
    size_t n;
    const char *msg; /* a part of the expected message */
};

static void check_refused(const struct bad *b)
{
    struct ks_store *s = new_store();
    int fd = make_tar(b->m, b->n);
    struct ks_error *e = NULL;
    struct ks_archive_loaded **loaded = NULL;
    int r = ks_archive_load(s, fd, &loaded, &e);
    bool msg_ok = e && strstr(e->msg, b->msg);
    tap_ok(r < 0 && msg_ok, "%s: refused", b->what);
    if (!msg_ok)
        tap_diag("  message: %s (wanted `%s`)", e ? e->msg : "(none)", b->msg);
    tap_ok(count_images(s) == 0 && count_layer_dirs(s) == 0, "%s: nothing recorded or left",
           b->what);
    ks_error_free(e);
    ks_archive_loaded_free(loaded);
    close(fd);
    ks_store_free(s);
}

static void test_malformed(void)
{
    struct image im;
    image_make(&im, "bad\n");
    char cfg_name[96], layer_name[96], manifest[512], bad_diff[512], outside[256];
    snprintf(cfg_name, sizeof(cfg_name), "blobs/sha256/%s", im.id + 7);
    snprintf(layer_name, sizeof(layer_name), "blobs/sha256/%s", im.diff_id + 7);
    snprintf(manifest, sizeof(manifest),
             "[{\"Config\":\"%s\",\"RepoTags\":[\"bad:1\"],\"Layers\":[\"%s\"]}]", cfg_name,
             layer_name);
    snprintf(outside, sizeof(outside),
             "[{\"Config\":\"../../etc/passwd\",\"RepoTags\":null,\"Layers\":[\"%s\"]}]",
             layer_name);
    /* A config whose diff_id is not the layer's, under its own (correct) digest. */
    char *cfg2 = NULL;
    if (asprintf(&cfg2,
                 "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
                 "\"diff_ids\":[\"sha256:%064d\"]}}",
                 0) < 0)
        abort();
    char cfg2_digest[KS_SHA256_DIGEST_LEN], cfg2_name[96];
    ks_sha256_hex(cfg2, strlen(cfg2), cfg2_digest);
    snprintf(cfg2_name, sizeof(cfg2_name), "blobs/sha256/%s", cfg2_digest + 7);
    snprintf(bad_diff, sizeof(bad_diff),
             "[{\"Config\":\"%s\",\"RepoTags\":[\"bad:1\"],\"Layers\":[\"%s\"]}]", cfg2_name,
             layer_name);
    char wrong_layer[96];
    snprintf(wrong_layer, sizeof(wrong_layer), "blobs/sha256/%064d", 1);
    size_t big = (size_t)9 << 20;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '[';
    huge[big - 1] = ']';
    huge[big] = '\0';
    char oci_index[512], oci_manifest[1024], mdigest[KS_SHA256_DIGEST_LEN], mname[96];
    snprintf(oci_manifest, sizeof(oci_manifest),
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
             "\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"application/"
             "vnd.docker.image.rootfs.foreign.diff.tar.gzip\",\"digest\":\"%s\",\"size\":%zu,"
             "\"urls\":[\"https://example.com/layer\"]}]}",
             im.id, strlen(im.config), im.diff_id, im.layer_len);
    ks_sha256_hex(oci_manifest, strlen(oci_manifest), mdigest);
    snprintf(mname, sizeof(mname), "blobs/sha256/%s", mdigest + 7);
    snprintf(oci_index, sizeof(oci_index),
             "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/"
             "vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu}]}",
             mdigest, strlen(oci_manifest));

    const struct bad cases[] = {
        {"missing layer blob",
         {F(cfg_name, im.config), F("manifest.json", manifest)},
         2,
         "not in the archive"},
        {"config under a wrong digest",
         {FL(layer_name, im.layer, im.layer_len),
          F("blobs/sha256/1111111111111111111111111111111111111111111111111111111111111111",
            im.config),
          F("manifest.json",
            "[{\"Config\":\"blobs/sha256/"
            "1111111111111111111111111111111111111111111111111111111111111111\",\"Layers\":[]}]")},
         3,
         "digest mismatch"},
        {"layer under a wrong digest",
         {FL(wrong_layer, im.layer, im.layer_len), F(cfg_name, im.config),
          F("manifest.json", manifest)},
         3,
         "not in the archive"},
        {"path traversal member name",
         {F("../evil", "x"), F("manifest.json", manifest)},
         2,
         "leaves the archive"},
        {"symlink member out of the archive",
         {LNK("a/layer.tar", "../../etc/passwd"), F("manifest.json", manifest)},
         2,
         "links out of the archive"},
        {"oversized manifest.json", {FL("manifest.json", huge, big)}, 1, "neither manifest.json"},
        {"manifest pointing outside",
         {FL(layer_name, im.layer, im.layer_len), F("manifest.json", outside)},
         2,
         "leaves the archive"},
        {"diff_id mismatch",
         {FL(layer_name, im.layer, im.layer_len), F(cfg2_name, cfg2), F("manifest.json", bad_diff)},
         3,
         "the config says"},
        {"foreign layer",
         {FL(layer_name, im.layer, im.layer_len), F(cfg_name, im.config), F(mname, oci_manifest),
          F("index.json", oci_index)},
         4,
         "foreign"},
        {"an empty manifest.json", {F("manifest.json", "[]")}, 1, "no image"},
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(cases); i++)
        check_refused(&cases[i]);

    free(huge);
    free(cfg2);
    image_free(&im);
}

/* Garbage that is not a tar at all. */
static void test_not_an_archive(void)
{
    struct ks_store *s = new_store();
    int fd = memfd_create("junk", MFD_CLOEXEC);
    ks_write_all(fd, "\x1f\x8bjunkjunkjunk", 14);
    lseek(fd, 0, SEEK_SET);
    struct ks_error *e = NULL;
    tap_ok(ks_archive_load(s, fd, NULL, &e) < 0, "a truncated gzip stream is refused (%s)",
           e ? e->msg : "none");
    ks_error_free(e);
    close(fd);
    ks_store_free(s);
}

int main(void)
{
    tap_plan_auto();
    snprintf(base, sizeof(base), "/var/tmp/test_archive.XXXXXX");
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip(KS_ARCHIVE_DOCKER, "docker");
    test_round_trip(KS_ARCHIVE_OCI, "oci");
    test_by_id_and_two_images();
    test_add_api_errors();
    test_layer_on_two_parents();
    test_malformed();
    test_not_an_archive();
    struct ks_error *e = NULL;
    ks_rm_rf_at(AT_FDCWD, base, &e);
    ks_error_free(e);
    return tap_done();
}
