/* The blob store in a private temporary directory: round trips, refused content leaving nothing
 * behind, concurrent writers of one blob in two processes, digests that try to be paths, and
 * corruption found by verify. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/fs.h"
#include "image/blobstore.h"
#include "tap.h"

#define EMPTY_SHA256 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA256   "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static char root[] = "/tmp/kiste-test-blobstore-XXXXXX";

/* Entries of root/sub other than "." and "..", or -1 when it cannot be read. */
static int count_entries(const char *sub)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, sub);
    _cleanup_closedir_ DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    return n;
}

static char *read_blob(struct ks_blobstore *s, const char *digest, int64_t *ret_size)
{
    _cleanup_close_ int fd = -EBADF;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_blobstore_open_blob(s, digest, &fd, ret_size, &err) < 0) {
        tap_diag("open_blob %s: %s", digest, err->msg);
        return NULL;
    }
    char *data = NULL;
    size_t len = 0;
    if (ks_read_fd(fd, 1 << 20, &data, &len, &err) < 0)
        return NULL;
    return data;
}

static void test_helpers(void)
{
    char out[KS_SHA256_DIGEST_LEN];
    tap_ok(ks_sha256_hex("", 0, out) == 0, "sha256 of nothing");
    TAP_EQ_STR(out, EMPTY_SHA256, "sha256 of the empty string");
    ks_sha256_hex("abc", 3, out);
    TAP_EQ_STR(out, ABC_SHA256, "sha256 of \"abc\" (FIPS 180-2 example)");
}

static void test_round_trip(struct ks_blobstore *s)
{
    _cleanup_error_ struct ks_error *err = NULL;
    _cleanup_free_ char *digest = NULL;
    tap_ok(ks_blobstore_put(s, "abc", 3, &digest, &err) == 0, "put abc");
    TAP_EQ_STR(digest, ABC_SHA256, "put returns the sha256 digest");
    TAP_EQ_INT(ks_blobstore_has(s, ABC_SHA256, NULL), 1, "the blob is there");
    int64_t size = -1;
    _cleanup_free_ char *data = read_blob(s, ABC_SHA256, &size);
    TAP_EQ_STR(data, "abc", "its content reads back");
    TAP_EQ_INT(size, 3, "with its size");

    char path[512];
    snprintf(path, sizeof(path), "%s/blobs/sha256/%s", root, strchr(ABC_SHA256, ':') + 1);
    tap_ok(access(path, F_OK) == 0, "stored as blobs/sha256/<hex>");

    _cleanup_free_ char *again = NULL;
    tap_ok(ks_blobstore_put(s, "abc", 3, &again, &err) == 0,
           "putting the same content again is fine");
    TAP_EQ_INT(count_entries("blobs/sha256"), 1, "still one file");

    _cleanup_free_ char *empty = NULL;
    tap_ok(ks_blobstore_put(s, "", 0, &empty, &err) == 0, "put the empty blob");
    TAP_EQ_STR(empty, EMPTY_SHA256, "the empty blob's digest");

    /* A writer in pieces, with expectations that hold. */
    _cleanup_(ks_blob_writer_free_p) struct ks_blob_writer *w = NULL;
    char *d = NULL;
    int64_t sz = 0;
    tap_ok(ks_blob_writer_new(s, ABC_SHA256, 3, &w, &err) == 0, "writer with expectations");
    tap_ok(ks_blob_writer_write(w, "a", 1, &err) == 0 &&
               ks_blob_writer_write(w, "bc", 2, &err) == 0,
           "write in two pieces");
    tap_ok(ks_blob_writer_commit(w, &d, &sz, &err) == 0, "commit");
    TAP_EQ_STR(d, ABC_SHA256, "commit returns the digest");
    TAP_EQ_INT(sz, 3, "commit returns the size");
    free(d);
    _cleanup_error_ struct ks_error *err2 = NULL;
    tap_ok(ks_blob_writer_commit(w, NULL, NULL, &err2) == -EINVAL, "a second commit is refused");
    tap_ok(ks_blob_writer_write(w, "x", 1, NULL) == -EINVAL, "write after commit is refused");
    TAP_EQ_INT(count_entries("blobs/tmp"), 0, "no temporary file is left");
    if (err)
        tap_diag("%s", err->msg);
}

static void test_refused(struct ks_blobstore *s)
{
    const char *other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    _cleanup_(ks_blob_writer_free_p) struct ks_blob_writer *w = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    tap_ok(ks_blob_writer_new(s, other, -1, &w, &err) == 0, "writer expecting another digest");
    TAP_EQ_INT(count_entries("blobs/tmp"), 1, "it has a temporary file");
    tap_ok(ks_blob_writer_write(w, "hello", 5, &err) == 0, "write");
    int r = ks_blob_writer_commit(w, NULL, NULL, &err);
    tap_ok(r == -EBADMSG && err && strstr(err->msg, "digest mismatch"),
           "a wrong digest is refused at commit");
    TAP_EQ_INT(count_entries("blobs/tmp"), 0, "no temporary file is left");
    TAP_EQ_INT(ks_blobstore_has(s, other, NULL), 0, "no blob under the expected digest");
    char hello[KS_SHA256_DIGEST_LEN];
    ks_sha256_hex("hello", 5, hello);
    TAP_EQ_INT(ks_blobstore_has(s, hello, NULL), 0, "no blob under the actual digest");

    /* Too short for the expected size. */
    _cleanup_(ks_blob_writer_free_p) struct ks_blob_writer *w2 = NULL;
    _cleanup_error_ struct ks_error *err2 = NULL;
    ks_blob_writer_new(s, NULL, 10, &w2, &err2);
    ks_blob_writer_write(w2, "hello", 5, &err2);
    r = ks_blob_writer_commit(w2, NULL, NULL, &err2);
    tap_ok(r == -EBADMSG && err2 && strstr(err2->msg, "size mismatch"),
           "a short blob is refused at commit");
    TAP_EQ_INT(ks_blobstore_has(s, hello, NULL), 0, "and not stored");

    /* Growing beyond the expected size. */
    _cleanup_(ks_blob_writer_free_p) struct ks_blob_writer *w3 = NULL;
    _cleanup_error_ struct ks_error *err3 = NULL;
    ks_blob_writer_new(s, NULL, 4, &w3, &err3);
    tap_ok(ks_blob_writer_write(w3, "hell", 4, &err3) == 0, "writing up to the size is fine");
    r = ks_blob_writer_write(w3, "o", 1, &err3);
    tap_ok(r == -EFBIG && err3 && strstr(err3->msg, "more than the expected 4 bytes"),
           "writing beyond the expected size is refused");
    tap_ok(ks_blob_writer_commit(w3, NULL, NULL, NULL) < 0, "the writer cannot commit afterwards");
    ks_blob_writer_free(TAKE_PTR(w3));
    TAP_EQ_INT(count_entries("blobs/tmp"), 0, "free removes its temporary file");

    /* Abort, and a writer freed without commit. */
    _cleanup_(ks_blob_writer_free_p) struct ks_blob_writer *w4 = NULL;
    ks_blob_writer_new(s, NULL, -1, &w4, NULL);
    ks_blob_writer_write(w4, "abc", 3, NULL);
    ks_blob_writer_abort(w4);
    TAP_EQ_INT(count_entries("blobs/tmp"), 0, "abort removes the temporary file");
    tap_ok(ks_blob_writer_commit(w4, NULL, NULL, NULL) < 0, "commit after abort is refused");
    struct ks_blob_writer *w5 = NULL;
    ks_blob_writer_new(s, NULL, -1, &w5, NULL);
    ks_blob_writer_free(w5);
    ks_blob_writer_free(NULL);
    TAP_EQ_INT(count_entries("blobs/tmp"), 0, "free of an uncommitted writer removes it too");
}

/* Two processes write the same content and commit at the same moment. */
static void test_concurrent(void)
{
    static const char content[] = "the same layer, pulled twice at once";
    char want[KS_SHA256_DIGEST_LEN];
    ks_sha256_hex(content, sizeof(content) - 1, want);
    bool all_ok = true;
    for (int round = 0; round < 10; round++) {
        int ready[2], go[2];
        if (pipe(ready) < 0 || pipe(go) < 0)
            abort();
        pid_t pids[2];
        for (int i = 0; i < 2; i++) {
            pids[i] = fork();
            if (pids[i] == 0) {
                close(ready[0]);
                close(go[1]);
                struct ks_blobstore *s = NULL;
                struct ks_blob_writer *w = NULL;
                if (ks_blobstore_open(root, &s, NULL) < 0 ||
                    ks_blob_writer_new(s, want, sizeof(content) - 1, &w, NULL) < 0 ||
                    ks_blob_writer_write(w, content, sizeof(content) - 1, NULL) < 0)
                    _exit(2);
                char c = 'r', g;
                if (write(ready[1], &c, 1) != 1 || read(go[0], &g, 1) != 0)
                    _exit(3);
                if (ks_blob_writer_commit(w, NULL, NULL, NULL) < 0)
                    _exit(4);
                ks_blob_writer_free(w);
                ks_blobstore_free(s);
                _exit(0);
            }
        }
        close(ready[1]);
        close(go[0]);
        char c;
        for (int i = 0; i < 2; i++)
            if (read(ready[0], &c, 1) != 1)
                all_ok = false;
        close(go[1]); /* both are ready: let them commit */
        close(ready[0]);
        for (int i = 0; i < 2; i++) {
            int st = 0;
            waitpid(pids[i], &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                tap_diag("round %d writer %d: status %#x", round, i, st);
                all_ok = false;
            }
        }
        if (round < 9) {
            struct ks_blobstore *s = NULL;
            ks_blobstore_open(root, &s, NULL);
            ks_blobstore_delete(s, want, NULL);
            ks_blobstore_free(s);
        }
    }
    tap_ok(all_ok, "two processes committing the same blob both succeed (10 rounds)");

    _cleanup_(ks_blobstore_free_p) struct ks_blobstore *s = NULL;
    ks_blobstore_open(root, &s, NULL);
    TAP_EQ_INT(ks_blobstore_has(s, want, NULL), 1, "the blob is there");
    TAP_EQ_INT(count_entries("blobs/tmp"), 0, "no temporary file is left");
    tap_ok(ks_blobstore_verify(s, want, NULL) == 0, "its content is intact");
}

static void test_path_tricks(struct ks_blobstore *s)
{
    /* A file one could reach if a digest were used as a path. */
    char path[512];
    snprintf(path, sizeof(path), "%s/x", root);
    FILE *f = fopen(path, "we");
    if (f)
        fclose(f);

    static const char *const bad[] = {
        "sha256:../../x",
        "sha256:../x",
        "sha256:/etc/passwd",
        "../../x",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/..",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85/",
        "tmp:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "",
        NULL,
    };
    bool refused = true;
    for (size_t i = 0; i < KS_ELEMENTSOF(bad); i++) {
        int fd = -EBADF;
        _cleanup_error_ struct ks_error *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *e5 = NULL;
        struct ks_blob_writer *w = NULL;
        if (ks_blobstore_open_blob(s, bad[i], &fd, NULL, &e1) != -EINVAL ||
            ks_blobstore_has(s, bad[i], &e2) != -EINVAL ||
            ks_blobstore_delete(s, bad[i], &e3) != -EINVAL ||
            ks_blobstore_verify(s, bad[i], &e4) != -EINVAL ||
            /* NULL there means "no expectation" */
            (bad[i] && ks_blob_writer_new(s, bad[i], -1, &w, &e5) != -EINVAL) || !e1 ||
            !strstr(e1->msg, "invalid digest")) {
            tap_diag("not refused: `%s`", bad[i] ? bad[i] : "(null)");
            refused = false;
        }
        if (fd >= 0)
            close(fd);
        ks_blob_writer_free(w);
    }
    tap_ok(refused, "digests that are paths are refused by every entry point");
    tap_ok(access(path, F_OK) == 0, "the file outside is untouched");

    /* A symlink planted in the store is not followed. */
    char link[512];
    const char *hex = "1111111111111111111111111111111111111111111111111111111111111111";
    snprintf(link, sizeof(link), "%s/blobs/sha256/%s", root, hex);
    tap_ok(symlink("/etc/passwd", link) == 0, "plant a symlink");
    char digest[80];
    snprintf(digest, sizeof(digest), "sha256:%s", hex);
    int fd = -EBADF;
    _cleanup_error_ struct ks_error *err = NULL;
    tap_ok(ks_blobstore_open_blob(s, digest, &fd, NULL, &err) < 0,
           "a symlinked blob is not opened");
    TAP_EQ_INT(ks_blobstore_has(s, digest, NULL), 0, "and does not count as present");
    unlink(link);
}

static void test_verify_delete(struct ks_blobstore *s)
{
    _cleanup_free_ char *digest = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    ks_blobstore_put(s, "precious", 8, &digest, &err);
    tap_ok(ks_blobstore_verify(s, digest, &err) == 0, "a good blob verifies");

    char path[512];
    snprintf(path, sizeof(path), "%s/blobs/sha256/%s", root, digest + 7);
    chmod(path, 0644);
    FILE *f = fopen(path, "r+e");
    if (f) {
        fputc('P', f);
        fclose(f);
    }
    _cleanup_error_ struct ks_error *err2 = NULL;
    int r = ks_blobstore_verify(s, digest, &err2);
    tap_ok(r == -EBADMSG && err2 && strstr(err2->msg, "is corrupt") && strstr(err2->msg, digest),
           "verify detects a corrupted blob");
    if (err2)
        tap_diag("  %s", err2->msg);

    tap_ok(ks_blobstore_delete(s, digest, &err) == 0, "delete");
    TAP_EQ_INT(ks_blobstore_has(s, digest, NULL), 0, "the blob is gone");
    _cleanup_error_ struct ks_error *err3 = NULL;
    tap_ok(ks_blobstore_delete(s, digest, &err3) == -ENOENT, "deleting again is ENOENT");
    _cleanup_error_ struct ks_error *err4 = NULL;
    tap_ok(ks_blobstore_verify(s, digest, &err4) == -ENOENT, "verifying a missing blob is ENOENT");
    int fd = -EBADF;
    _cleanup_error_ struct ks_error *err5 = NULL;
    tap_ok(ks_blobstore_open_blob(s, digest, &fd, NULL, &err5) == -ENOENT && err5 &&
               strstr(err5->msg, "not found"),
           "opening a missing blob is ENOENT");
}

static void test_sha512(struct ks_blobstore *s)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest("abc", 3, md, &len, EVP_sha512(), NULL);
    char digest[160] = "sha512:";
    for (unsigned i = 0; i < len; i++)
        snprintf(digest + 7 + 2 * i, 3, "%02x", md[i]);

    _cleanup_(ks_blob_writer_free_p) struct ks_blob_writer *w = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    _cleanup_free_ char *got = NULL;
    tap_ok(ks_blob_writer_new(s, digest, 3, &w, &err) == 0 &&
               ks_blob_writer_write(w, "abc", 3, &err) == 0 &&
               ks_blob_writer_commit(w, &got, NULL, &err) == 0,
           "a sha512 blob is stored");
    TAP_EQ_STR(got, digest, "under its sha512 digest");
    tap_ok(ks_blobstore_verify(s, digest, NULL) == 0, "and verifies");
    tap_ok(ks_blobstore_delete(s, digest, NULL) == 0, "and is deleted");
}

struct seen {
    int count;
    int64_t total;
    bool bad_name;
};

static int collect(const char *digest, int64_t size, void *userdata, struct ks_error **err)
{
    struct seen *seen = userdata;
    seen->count++;
    seen->total += size;
    if (strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 71)
        seen->bad_name = true;
    return 0;
}

static int stop_early(const char *digest, int64_t size, void *userdata, struct ks_error **err)
{
    return ks_error_msg(err, "stop at %s", digest);
}

static void test_list(void)
{
    _cleanup_(ks_blobstore_free_p) struct ks_blobstore *s = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/list", root);
    tap_ok(ks_blobstore_open(dir, &s, &err) == 0, "open a second store");
    ks_blobstore_put(s, "one", 3, NULL, &err);
    ks_blobstore_put(s, "two!", 4, NULL, &err);
    ks_blobstore_put(s, "three", 5, NULL, &err);

    /* Noise: a stray file, a directory and a writer in progress. */
    char path[700];
    snprintf(path, sizeof(path), "%s/blobs/sha256/junk", dir);
    FILE *f = fopen(path, "we");
    if (f)
        fclose(f);
    snprintf(path, sizeof(path), "%s/blobs/sha256/%064d", dir, 0);
    mkdir(path, 0700);
    _cleanup_(ks_blob_writer_free_p) struct ks_blob_writer *w = NULL;
    ks_blob_writer_new(s, NULL, -1, &w, &err);

    struct seen seen = {0};
    tap_ok(ks_blobstore_list(s, collect, &seen, &err) == 0, "list");
    TAP_EQ_INT(seen.count, 3, "three blobs are listed, not the noise");
    TAP_EQ_INT(seen.total, 12, "with their sizes");
    tap_ok(!seen.bad_name, "as sha256 digests");

    _cleanup_error_ struct ks_error *err2 = NULL;
    tap_ok(ks_blobstore_list(s, stop_early, NULL, &err2) == -EINVAL && err2 &&
               strstr(err2->msg, "stop at sha256:"),
           "a callback's error stops the walk and is returned");
}

int main(void)
{
    tap_plan_auto();
    if (mkdtemp(root) == NULL) {
        tap_skip("mkdtemp failed", "blob store tests");
        return tap_done();
    }
    _cleanup_(ks_blobstore_free_p) struct ks_blobstore *s = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    tap_ok(ks_blobstore_open(root, &s, &err) == 0, "open a new store");
    tap_ok(count_entries("blobs/sha256") == 0 && count_entries("blobs/tmp") == 0,
           "open creates blobs/sha256 and blobs/tmp");
    if (s) {
        test_helpers();
        test_round_trip(s);
        test_refused(s);
        test_concurrent();
        test_path_tricks(s);
        test_verify_delete(s);
        test_sha512(s);
        test_list();
    }
    ks_blobstore_free(TAKE_PTR(s));
    ks_rm_rf_at(AT_FDCWD, root, NULL);
    return tap_done();
}
