/* The state database: schema and migrations, the image store's tables, transactions, and
 * several processes writing at once, in a private temporary root. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/fs.h"
#include "engine/db.h"
#include "tap.h"

#define N_WRITERS     20
#define WRITER_ROUNDS 10

/* "sha256:" and 64 hex digits starting with head and padded with fill. */
static char *digest(const char *head, char fill)
{
    char *d = malloc(7 + 64 + 1);
    strcpy(d, "sha256:");
    size_t n = strlen(head);
    memcpy(d + 7, head, n);
    memset(d + 7 + n, fill, 64 - n);
    d[71] = '\0';
    return d;
}

/* The chain ID as the image spec defines it, computed independently of the library. */
static char *chain(const char *parent, const char *diff)
{
    if (parent == NULL)
        return strdup(diff);
    char *in = NULL;
    int len = asprintf(&in, "%s %s", parent, diff);
    unsigned char md[32];
    unsigned mdlen = 0;
    EVP_Digest(in, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
    free(in);
    char *out = malloc(7 + 64 + 1);
    strcpy(out, "sha256:");
    for (unsigned i = 0; i < mdlen; i++)
        sprintf(out + 7 + 2 * i, "%02x", md[i]);
    return out;
}

static char *make_root(void)
{
    char tmpl[] = "/tmp/kiste-test-db-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (dir == NULL) {
        perror("mkdtemp");
        abort();
    }
    return strdup(dir);
}

static void remove_root(char *root)
{
    _cleanup_error_ struct ks_error *err = NULL;
    ks_rm_rf_at(AT_FDCWD, root, &err);
    free(root);
}

static struct ks_db *open_db(const char *root)
{
    _cleanup_error_ struct ks_error *err = NULL;
    struct ks_db *db = NULL;
    if (ks_db_open(root, &db, &err) < 0) {
        tap_diag("open: %s", err->msg);
        abort();
    }
    return db;
}

static void diag_err(struct ks_error *err)
{
    if (err)
        tap_diag("  error: %s", err->msg);
}

static int64_t query_int(struct ks_db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(ks_db_handle(db), sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Records a layer on parent_chain (NULL for a base) and returns its chain ID. */
static char *put_layer(struct ks_db *db, const char *parent_chain, const char *diff_id,
                       const char *cache_id, int64_t size, struct ks_error **err)
{
    char *c = chain(parent_chain, diff_id);
    struct ks_db_layer l = {
        .diff_id = (char *)diff_id,
        .chain_id = c,
        .parent = (char *)parent_chain,
        .cache_id = (char *)cache_id,
        .size = size,
    };
    if (ks_db_layer_put(db, &l, err) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void test_schema(void)
{
    char *root = make_root();
    _cleanup_error_ struct ks_error *err = NULL;
    struct ks_db *db = NULL;
    int r = ks_db_open(root, &db, &err);
    TAP_EQ_INT(r, 0, "open creates the database");
    diag_err(err);
    if (r < 0) {
        remove_root(root);
        return;
    }
    TAP_EQ_INT(query_int(db, "SELECT version FROM schema_version"), ks_db_schema_version(),
               "schema version recorded");
    TAP_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name "
                             "IN ('layers', 'images', 'image_layers', 'tags', 'digests')"),
               5, "image store tables exist");
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(ks_db_handle(db), "PRAGMA journal_mode", -1, &st, NULL);
    sqlite3_step(st);
    TAP_EQ_STR((const char *)sqlite3_column_text(st, 0), "wal", "WAL mode");
    sqlite3_finalize(st);
    TAP_EQ_INT(query_int(db, "PRAGMA foreign_keys"), 1, "foreign keys on");
    ks_db_close(db);

    db = NULL;
    r = ks_db_open(root, &db, &err);
    TAP_EQ_INT(r, 0, "reopen an existing database");
    TAP_EQ_INT(query_int(db, "SELECT count(*) FROM schema_version"), 1,
               "one schema version row after reopening");

    /* A database from a newer kiste is refused rather than misread. */
    ks_db_exec(db, "UPDATE schema_version SET version = 999", &err);
    ks_db_close(db);
    db = NULL;
    r = ks_db_open(root, &db, &err);
    TAP_EQ_INT(r, -EPROTONOSUPPORT, "newer schema refused");
    tap_ok(err && strstr(err->msg, "999"), "message names the version");
    diag_err(err);
    ks_db_close(db);
    remove_root(root);
}

static void test_layers(struct ks_db *db)
{
    _cleanup_error_ struct ks_error *err = NULL;
    _cleanup_free_ char *d1 = digest("d1", '1'), *d2 = digest("d2", '2');
    _cleanup_free_ char *c1 = put_layer(db, NULL, d1, "cache-l1", 100, &err);
    tap_ok(c1 != NULL, "put base layer");
    diag_err(err);
    _cleanup_free_ char *c2 = put_layer(db, c1, d2, "cache-l2", 50, &err);
    tap_ok(c2 != NULL, "put child layer");
    diag_err(err);

    _cleanup_db_layer_ struct ks_db_layer *l = NULL;
    int r = ks_db_layer_get(db, KS_DB_LAYER_BY_CHAIN_ID, c2, &l, &err);
    TAP_EQ_INT(r, 0, "get layer by chain ID");
    if (r == 0) {
        TAP_EQ_STR(l->diff_id, d2, "diff ID round trip");
        TAP_EQ_STR(l->parent, c1, "parent round trip");
        TAP_EQ_STR(l->cache_id, "cache-l2", "cache ID round trip");
        TAP_EQ_INT(l->size, 50, "size round trip");
        TAP_EQ_INT(l->refcount, 0, "refcount starts at 0");
    }
    ks_db_layer_free(TAKE_PTR(l));
    r = ks_db_layer_get(db, KS_DB_LAYER_BY_CACHE_ID, "cache-l1", &l, &err);
    tap_ok(r == 0 && strcmp(l->chain_id, c1) == 0 && l->parent == NULL,
           "get base layer by cache ID, no parent");
    ks_db_layer_free(TAKE_PTR(l));
    r = ks_db_layer_get(db, KS_DB_LAYER_BY_DIFF_ID, d2, &l, &err);
    tap_ok(r == 0 && strcmp(l->chain_id, c2) == 0, "get layer by diff ID");
    ks_db_layer_free(TAKE_PTR(l));
    r = ks_db_layer_get(db, KS_DB_LAYER_BY_CHAIN_ID, "sha256:nope", &l, &err);
    TAP_EQ_INT(r, -ENOENT, "unknown layer is ENOENT");
    ks_error_free(TAKE_PTR(err));

    /* The same diff on another parent is another layer. */
    _cleanup_free_ char *c2b = put_layer(db, NULL, d2, "cache-l2b", 50, &err);
    tap_ok(c2b != NULL && strcmp(c2b, c2) != 0, "same diff on another parent is a new layer");
    diag_err(err);

    _cleanup_free_ char *dup = put_layer(db, c1, d2, "cache-other", 1, &err);
    tap_ok(dup == NULL && err && err->errnum == EEXIST, "duplicate chain ID is EEXIST");
    ks_error_free(TAKE_PTR(err));
    _cleanup_free_ char *d3 = digest("d3", '3');
    _cleanup_free_ char *orphan = put_layer(db, "sha256:missing", d3, "cache-l3", 1, &err);
    tap_ok(orphan == NULL && err && err->errnum == ENOENT, "missing parent is ENOENT");
    diag_err(err);
    ks_error_free(TAKE_PTR(err));

    /* Reference counts. */
    TAP_EQ_INT(ks_db_layer_ref(db, c2, &err), 1, "ref → 1");
    TAP_EQ_INT(ks_db_layer_ref(db, c2, &err), 2, "ref → 2");
    TAP_EQ_INT(ks_db_layer_unref(db, c2, &err), 1, "unref → 1");
    r = ks_db_layer_delete(db, c2, &err);
    TAP_EQ_INT(r, -EBUSY, "delete of a referenced layer is EBUSY");
    ks_error_free(TAKE_PTR(err));
    TAP_EQ_INT(ks_db_layer_unref(db, c2, &err), 0, "unref → 0");
    TAP_EQ_INT(ks_db_layer_unref(db, c2, &err), -EINVAL, "unref below 0 is EINVAL");
    tap_ok(err && strstr(err->msg, "no references"), "message says why");
    ks_error_free(TAKE_PTR(err));
    TAP_EQ_INT(ks_db_layer_ref(db, "sha256:nope", &err), -ENOENT, "ref of unknown is ENOENT");
    ks_error_free(TAKE_PTR(err));
    r = ks_db_layer_delete(db, c1, &err);
    TAP_EQ_INT(r, -EBUSY, "delete of a layer with a child is EBUSY");
    ks_error_free(TAKE_PTR(err));

    _cleanup_strv_ char **unused = NULL;
    r = ks_db_layers_unused(db, &unused, &err);
    tap_ok(r == 0 && ks_strv_len(unused) == 2, "two unused layers (both tops)");
    TAP_EQ_INT(ks_db_layer_delete(db, c2, &err), 0, "delete unused layer");
    TAP_EQ_INT(ks_db_layer_delete(db, c2b, &err), 0, "delete the other unused layer");
    ks_strv_free(TAKE_PTR(unused));
    r = ks_db_layers_unused(db, &unused, &err);
    tap_ok(r == 0 && ks_strv_len(unused) == 1 && strcmp(unused[0], c1) == 0,
           "parent becomes unused after its child is gone");
    TAP_EQ_INT(ks_db_layer_delete(db, c1, &err), 0, "delete the base layer");
    TAP_EQ_INT(ks_db_layer_delete(db, c1, &err), -ENOENT, "delete again is ENOENT");
    ks_error_free(TAKE_PTR(err));
}

/* Three layers d_a, d_b, d_c recorded as one chain; their chain IDs in ret[3]. */
static void put_chain(struct ks_db *db, const char *tag, char **diffs, char **chains)
{
    _cleanup_error_ struct ks_error *err = NULL;
    const char *parent = NULL;
    for (int i = 0; i < 3; i++) {
        char head[16], cache[64];
        snprintf(head, sizeof(head), "%s%d", tag, i);
        snprintf(cache, sizeof(cache), "cache-%s-%d", tag, i);
        diffs[i] = digest(head, 'e');
        chains[i] = put_layer(db, parent, diffs[i], cache, 10 * (i + 1), &err);
        if (chains[i] == NULL) {
            tap_diag("put_chain: %s", err->msg);
            abort();
        }
        parent = chains[i];
    }
}

static int count_cb(const struct ks_db_image *img, void *userdata)
{
    int *n = userdata;
    (*n)++;
    return img->n_layers == 3 ? 0 : -EBADMSG;
}

static void test_images(struct ks_db *db)
{
    _cleanup_error_ struct ks_error *err = NULL;
    char *diffs[3], *chains[3];
    put_chain(db, "aa", diffs, chains);
    const char *const ds[] = {diffs[0], diffs[1], diffs[2]};

    _cleanup_free_ char *id1 = digest("abc1", '0'), *id2 = digest("abc2", '0');
    int r = ks_db_image_put(db, id1, "{\"architecture\":\"amd64\"}", ds, 3, &err);
    TAP_EQ_INT(r, 0, "put image");
    diag_err(err);
    _cleanup_db_image_ struct ks_db_image *img = NULL;
    r = ks_db_image_get(db, id1, &img, &err);
    TAP_EQ_INT(r, 0, "get image");
    if (r == 0) {
        TAP_EQ_STR(img->config, "{\"architecture\":\"amd64\"}", "config round trip");
        TAP_EQ_INT((long long)img->n_layers, 3, "three layers");
        TAP_EQ_STR(img->diff_ids[2], diffs[2], "top diff ID");
        TAP_EQ_STR(img->chain_ids[2], chains[2], "top chain ID computed as the spec says");
        tap_ok(img->diff_ids[3] == NULL && img->chain_ids[3] == NULL, "vectors NULL-terminated");
        TAP_EQ_INT(img->size, 60, "size is the sum of the layers");
        tap_ok(img->created > 0, "created time set");
    }
    _cleanup_db_layer_ struct ks_db_layer *l = NULL;
    ks_db_layer_get(db, KS_DB_LAYER_BY_CHAIN_ID, chains[2], &l, &err);
    TAP_EQ_INT(l ? l->refcount : -1, 1, "image references its top layer");
    ks_db_layer_free(TAKE_PTR(l));

    r = ks_db_image_put(db, id2, NULL, ds, 2, &err);
    TAP_EQ_INT(r, 0, "put image on the lower two layers");
    /* Putting the same image again does not count its layer twice. */
    r = ks_db_image_put(db, id2, "{}", ds, 2, &err);
    TAP_EQ_INT(r, 0, "put the same image again");
    ks_db_layer_get(db, KS_DB_LAYER_BY_CHAIN_ID, chains[1], &l, &err);
    TAP_EQ_INT(l ? l->refcount : -1, 1, "re-put keeps one reference");
    ks_db_layer_free(TAKE_PTR(l));

    /* A failing put leaves nothing behind. */
    _cleanup_free_ char *id3 = digest("ff", '0'), *unknown = digest("99", '9');
    const char *const bad[] = {diffs[0], unknown};
    r = ks_db_image_put(db, id3, "{}", bad, 2, &err);
    TAP_EQ_INT(r, -ENOENT, "put with an unrecorded layer is ENOENT");
    tap_ok(err && strstr(err->msg, unknown), "message names the layer");
    diag_err(err);
    ks_error_free(TAKE_PTR(err));
    ks_db_image_free(TAKE_PTR(img));
    TAP_EQ_INT(ks_db_image_get(db, id3, &img, &err), -ENOENT, "failed put rolled back");
    ks_error_free(TAKE_PTR(err));

    /* Prefix lookup. */
    _cleanup_free_ char *found = NULL;
    r = ks_db_image_find_prefix(db, "abc1", &found, &err);
    tap_ok(r == 0 && found && strcmp(found, id1) == 0, "unique prefix");
    free(TAKE_PTR(found));
    r = ks_db_image_find_prefix(db, "sha256:ABC2", &found, &err);
    tap_ok(r == 0 && found && strcmp(found, id2) == 0, "prefix with algorithm, upper case");
    free(TAKE_PTR(found));
    r = ks_db_image_find_prefix(db, id1, &found, &err);
    tap_ok(r == 0 && found && strcmp(found, id1) == 0, "full ID");
    free(TAKE_PTR(found));
    r = ks_db_image_find_prefix(db, "abc", &found, &err);
    TAP_EQ_INT(r, -ENOTUNIQ, "ambiguous prefix");
    tap_ok(err && strstr(err->msg, "2 images"), "message names the count");
    diag_err(err);
    ks_error_free(TAKE_PTR(err));
    TAP_EQ_INT(ks_db_image_find_prefix(db, "fff", &found, &err), -ENOENT, "missing prefix");
    ks_error_free(TAKE_PTR(err));
    TAP_EQ_INT(ks_db_image_find_prefix(db, "ab*", &found, &err), -EINVAL,
               "glob characters rejected");
    ks_error_free(TAKE_PTR(err));
    TAP_EQ_INT(ks_db_image_find_prefix(db, "", &found, &err), -EINVAL, "empty prefix rejected");
    ks_error_free(TAKE_PTR(err));

    /* Tags. */
    TAP_EQ_INT(ks_db_tag_set(db, "docker.io/library/busybox:latest", id1, &err), 0, "tag");
    TAP_EQ_INT(ks_db_tag_set(db, "docker.io/library/busybox:1", id1, &err), 0, "second tag");
    r = ks_db_tag_get(db, "docker.io/library/busybox:latest", &found, &err);
    tap_ok(r == 0 && strcmp(found, id1) == 0, "tag resolves");
    free(TAKE_PTR(found));
    TAP_EQ_INT(ks_db_tag_set(db, "docker.io/library/busybox:latest", id2, &err), 0, "move tag");
    r = ks_db_tag_get(db, "docker.io/library/busybox:latest", &found, &err);
    tap_ok(r == 0 && strcmp(found, id2) == 0, "moved tag resolves to the new image");
    free(TAKE_PTR(found));
    _cleanup_strv_ char **tags = NULL;
    r = ks_db_tags_for_image(db, id1, &tags, &err);
    tap_ok(r == 0 && ks_strv_len(tags) == 1 && strcmp(tags[0], "docker.io/library/busybox:1") == 0,
           "old image keeps only its other tag");
    ks_strv_free(TAKE_PTR(tags));
    TAP_EQ_INT(ks_db_tag_set(db, "x:y", unknown, &err), -ENOENT, "tag of unknown image");
    ks_error_free(TAKE_PTR(err));
    TAP_EQ_INT(ks_db_tag_delete(db, "docker.io/library/busybox:1", &err), 0, "untag");
    TAP_EQ_INT(ks_db_tag_delete(db, "docker.io/library/busybox:1", &err), -ENOENT,
               "untag again is ENOENT");
    ks_error_free(TAKE_PTR(err));
    TAP_EQ_INT(ks_db_tag_get(db, "docker.io/library/busybox:1", &found, &err), -ENOENT,
               "untagged reference is gone");
    ks_error_free(TAKE_PTR(err));
    r = ks_db_tags_for_image(db, id1, &tags, &err);
    tap_ok(r == 0 && tags && tags[0] == NULL, "no tags is an empty vector");
    ks_strv_free(TAKE_PTR(tags));

    /* Digests. */
    TAP_EQ_INT(ks_db_digest_set(db, "docker.io/library/busybox", "sha256:m1", id2, &err), 0,
               "record manifest digest");
    r = ks_db_digest_get(db, "docker.io/library/busybox", "sha256:m1", &found, &err);
    tap_ok(r == 0 && strcmp(found, id2) == 0, "manifest digest resolves");
    free(TAKE_PTR(found));

    /* Listing. */
    int n = 0;
    ks_db_image_put(db, id2, NULL, ds, 3, &err); /* now 3 layers, so the callback is happy */
    r = ks_db_images_list(db, count_cb, &n, &err);
    tap_ok(r == 0 && n == 2, "list walks both images");
    diag_err(err);

    /* Delete cascades to tags and digests and drops the layer reference. */
    TAP_EQ_INT(ks_db_image_delete(db, id2, &err), 0, "delete image");
    TAP_EQ_INT(ks_db_tag_get(db, "docker.io/library/busybox:latest", &found, &err), -ENOENT,
               "its tag is gone");
    ks_error_free(TAKE_PTR(err));
    TAP_EQ_INT(ks_db_digest_get(db, "docker.io/library/busybox", "sha256:m1", &found, &err),
               -ENOENT, "its digest is gone");
    ks_error_free(TAKE_PTR(err));
    ks_db_layer_get(db, KS_DB_LAYER_BY_CHAIN_ID, chains[2], &l, &err);
    TAP_EQ_INT(l ? l->refcount : -1, 1, "top layer keeps the other image's reference");
    ks_db_layer_free(TAKE_PTR(l));
    TAP_EQ_INT(ks_db_image_delete(db, id2, &err), -ENOENT, "delete again is ENOENT");
    ks_error_free(TAKE_PTR(err));

    /* A caller's transaction: work is rolled back together; a failing call inside it leaves
     * the earlier work alone. */
    TAP_EQ_INT(ks_db_begin(db, &err), 0, "begin");
    TAP_EQ_INT(ks_db_tag_set(db, "in-tx:1", id1, &err), 0, "tag inside transaction");
    TAP_EQ_INT(ks_db_tag_set(db, "in-tx:2", unknown, &err), -ENOENT, "failing call inside");
    ks_error_free(TAKE_PTR(err));
    tap_ok(ks_db_in_transaction(db), "the caller's transaction is still open");
    r = ks_db_tag_get(db, "in-tx:1", &found, &err);
    TAP_EQ_INT(r, 0, "earlier work survives the failing call");
    free(TAKE_PTR(found));
    ks_db_rollback(db);
    TAP_EQ_INT(ks_db_tag_get(db, "in-tx:1", &found, &err), -ENOENT, "rollback undoes it");
    ks_error_free(TAKE_PTR(err));

    for (int i = 0; i < 3; i++) {
        free(diffs[i]);
        free(chains[i]);
    }
}

/* One writer process: its own connection, several transactions of several statements. */
static int writer(const char *root, int idx)
{
    _cleanup_error_ struct ks_error *err = NULL;
    _cleanup_db_ struct ks_db *db = NULL;
    if (ks_db_open(root, &db, &err) < 0)
        goto fail;
    for (int round = 0; round < WRITER_ROUNDS; round++) {
        char head[32], cache[64], ref[64];
        snprintf(head, sizeof(head), "%02x%02x", idx, round);
        snprintf(cache, sizeof(cache), "w%d-%d", idx, round);
        snprintf(ref, sizeof(ref), "shared:latest");
        _cleanup_free_ char *diff = digest(head, 'c'), *id = digest(head, 'd');
        if (ks_db_begin(db, &err) < 0)
            goto fail;
        _cleanup_free_ char *c = put_layer(db, NULL, diff, cache, 1, &err);
        const char *const ds[] = {diff};
        if (c == NULL || ks_db_image_put(db, id, "{}", ds, 1, &err) < 0 ||
            ks_db_tag_set(db, ref, id, &err) < 0 || ks_db_commit(db, &err) < 0)
            goto fail;
        /* And a write outside an explicit transaction. */
        snprintf(ref, sizeof(ref), "w%d:%d", idx, round);
        if (ks_db_tag_set(db, ref, id, &err) < 0)
            goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "writer %d: %s\n", idx, err ? err->msg : "?");
    return 1;
}

static void test_concurrent(void)
{
    char *root = make_root();
    ks_db_close(open_db(root));

    pid_t pids[N_WRITERS];
    for (int i = 0; i < N_WRITERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(writer(root, i));
    }
    int ok = 0;
    for (int i = 0; i < N_WRITERS; i++) {
        int status = 0;
        if (waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
            WEXITSTATUS(status) == 0)
            ok++;
    }
    TAP_EQ_INT(ok, N_WRITERS, "%d concurrent writers all succeed", N_WRITERS);
    struct ks_db *db = open_db(root);
    TAP_EQ_INT(query_int(db, "SELECT count(*) FROM images"), N_WRITERS * WRITER_ROUNDS,
               "every writer's images are recorded");
    TAP_EQ_INT(query_int(db, "SELECT count(*) FROM tags"), N_WRITERS * WRITER_ROUNDS + 1,
               "every writer's tags are recorded");
    ks_db_close(db);
    remove_root(root);
}

static void test_crash(void)
{
    char *root = make_root();
    _cleanup_error_ struct ks_error *err = NULL;
    struct ks_db *db = open_db(root);
    _cleanup_free_ char *d = digest("0c", '1'), *id = digest("0c", '2');
    _cleanup_free_ char *c = put_layer(db, NULL, d, "crash-base", 1, &err);
    const char *const ds[] = {d};
    ks_db_image_put(db, id, "{}", ds, 1, &err);
    ks_db_tag_set(db, "before:crash", id, &err);
    ks_db_close(db);

    /* A process that dies inside a transaction, after writing: no commit, no rollback. */
    pid_t pid = fork();
    if (pid == 0) {
        struct ks_db *cdb = NULL;
        struct ks_error *cerr = NULL;
        if (ks_db_open(root, &cdb, &cerr) < 0 || ks_db_begin(cdb, &cerr) < 0)
            _exit(1);
        if (ks_db_tag_set(cdb, "before:crash", "nonsense", &cerr) == 0)
            _exit(2); /* the foreign key should refuse it */
        ks_error_free(cerr);
        cerr = NULL;
        _cleanup_free_ char *d2 = digest("0d", '1');
        _cleanup_free_ char *c2 = put_layer(cdb, c, d2, "crash-child", 1, &cerr);
        if (c2 == NULL || ks_db_tag_delete(cdb, "before:crash", &cerr) < 0 ||
            ks_db_image_delete(cdb, id, &cerr) < 0)
            _exit(3);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    TAP_EQ_INT(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0, "child wrote and died mid-way");

    db = open_db(root);
    _cleanup_free_ char *found = NULL;
    int r = ks_db_tag_get(db, "before:crash", &found, &err);
    tap_ok(r == 0 && strcmp(found, id) == 0, "tag from before the crash is intact");
    _cleanup_db_image_ struct ks_db_image *img = NULL;
    TAP_EQ_INT(ks_db_image_get(db, id, &img, &err), 0, "image from before the crash is intact");
    TAP_EQ_INT(query_int(db, "SELECT count(*) FROM layers"), 1,
               "the uncommitted layer is not there");
    TAP_EQ_INT(query_int(db, "SELECT refcount FROM layers"), 1, "refcount unchanged");
    TAP_EQ_INT(ks_db_tag_set(db, "after:crash", id, &err), 0, "the write lock was released");
    diag_err(err);
    ks_db_close(db);
    remove_root(root);
}

/* --- containers --- */

static int count_containers_cb(const struct ks_db_container *c, void *userdata)
{
    (void)c;
    (*(int *)userdata)++;
    return 0;
}

static void put_container(struct ks_db *db, const char *id, const char *name, const char *image,
                          int64_t created, int expect, const char *what)
{
    _cleanup_error_ struct ks_error *err = NULL;
    struct ks_db_container c = {
        .id = (char *)id,
        .name = (char *)name,
        .image_id = (char *)image,
        .image_ref = "busybox",
        .created = created,
        .config = "{\"Config\":{}}",
        .snapshot = "snap",
    };
    TAP_EQ_INT(ks_db_container_put(db, &c, &err), expect, "%s", what);
    diag_err(expect == 0 ? err : NULL);
}

static void test_containers(void)
{
    char *root = make_root();
    struct ks_db *db = open_db(root);
    _cleanup_error_ struct ks_error *err = NULL;
    TAP_EQ_INT(query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'containers'"), 1,
               "containers table exists");
    _cleanup_free_ char *diff = digest("c0", 'c');
    _cleanup_free_ char *img = digest("1e", 'e');
    _cleanup_free_ char *top = put_layer(db, NULL, diff, "cache-c", 10, &err);
    const char *diffs[] = {diff};
    TAP_EQ_INT(ks_db_image_put(db, img, "{}", diffs, 1, &err), 0, "image for containers");

    char id1[65], id2[65], id3[65];
    memset(id1, 'a', 64), memset(id2, 'a', 64), memset(id3, 'b', 64);
    id1[64] = id2[64] = id3[64] = '\0';
    id2[5] = 'f';
    put_container(db, id1, "web", img, 100, 0, "record a container");
    put_container(db, id2, "db", img, 200, 0, "record a second container");
    put_container(db, id3, "web", img, 300, -EEXIST, "a taken name is refused");
    _cleanup_free_ char *noimg = digest("99", '9');
    put_container(db, id3, "other", noimg, 300, -ENOENT, "an unknown image is refused");
    put_container(db, id1, "again", img, 300, -EEXIST, "a taken ID is refused");

    /* Docker's conflict message names the owner. */
    struct ks_db_container dup = {.id = id3, .name = "web", .image_id = img, .config = "{}"};
    ks_error_free(err);
    err = NULL;
    ks_db_container_put(db, &dup, &err);
    tap_ok(err && strstr(err->msg, "\"/web\" is already in use by container") &&
               strstr(err->msg, id1),
           "conflict message names the container");

    _cleanup_db_container_ struct ks_db_container *got = NULL;
    TAP_EQ_INT(ks_db_container_get(db, id1, &got, NULL), 0, "get by ID");
    TAP_EQ_STR(got ? got->name : NULL, "web", "name read back");
    TAP_EQ_STR(got ? got->snapshot : NULL, "snap", "snapshot read back");
    TAP_EQ_INT(got ? got->created : 0, 100, "created read back");

    char *found = NULL;
    TAP_EQ_INT(ks_db_container_find(db, "web", &found, NULL), 0, "find by name");
    TAP_EQ_STR(found, id1, "name resolves to its ID");
    free(found), found = NULL;
    TAP_EQ_INT(ks_db_container_find(db, "/db", &found, NULL), 0, "find by /name");
    TAP_EQ_STR(found, id2, "/name resolves");
    free(found), found = NULL;
    TAP_EQ_INT(ks_db_container_find(db, "aaaaaf", &found, NULL), 0, "find by unique prefix");
    TAP_EQ_STR(found, id2, "prefix resolves");
    free(found), found = NULL;
    ks_error_free(err);
    err = NULL;
    TAP_EQ_INT(ks_db_container_find(db, "aaaa", &found, &err), -ENOTUNIQ, "ambiguous prefix");
    tap_ok(err && strstr(err->msg, "multiple IDs found with provided prefix: aaaa"),
           "Docker's ambiguity message");
    ks_error_free(err);
    err = NULL;
    TAP_EQ_INT(ks_db_container_find(db, "nothing", &found, &err), -ENOENT, "unknown name");
    tap_ok(err && strcmp(err->msg, "No such container: nothing") == 0, "Docker's message");
    TAP_EQ_INT(ks_db_container_find(db, "a*", &found, NULL), -ENOENT, "wildcards are not prefixes");

    TAP_EQ_INT(ks_db_container_rename(db, id2, "web", NULL), -EEXIST, "rename onto a taken name");
    TAP_EQ_INT(ks_db_container_rename(db, id2, "cache", NULL), 0, "rename");
    TAP_EQ_INT(ks_db_container_find(db, "cache", &found, NULL), 0, "new name found");
    free(found), found = NULL;
    TAP_EQ_INT(ks_db_container_set_config(db, id2, "{\"x\":1}", NULL), 0, "set config");

    /* What ps prints is kept beside the config, and follows it. */
    const char *cfg = "{\"Config\":{\"Entrypoint\":[\"/bin/sh\",\"-c\"],"
                      "\"Cmd\":[\"echo \\\"hi\\\"\"],\"Labels\":{\"z\":\"1\",\"a\":\"x=y\"}}}";
    TAP_EQ_INT(ks_db_container_set_config(db, id1, cfg, NULL), 0, "set a config with a command");
    ks_db_container_free(got), got = NULL;
    TAP_EQ_INT(ks_db_container_get(db, id1, &got, NULL), 0, "get it again");
    TAP_EQ_STR(got ? got->command : NULL, "/bin/sh -c echo \"hi\"", "command: Entrypoint + Cmd");
    TAP_EQ_STR(got ? got->labels : NULL, "z=1,a=x=y", "labels in the config's order");
    ks_db_exec(db, "UPDATE containers SET command = NULL, labels = NULL", NULL);
    ks_db_container_free(got), got = NULL;
    TAP_EQ_INT(ks_db_container_get(db, id1, &got, NULL), 0, "a row written before the columns");
    TAP_EQ_STR(got ? got->command : NULL, "/bin/sh -c echo \"hi\"", "its command is derived");
    TAP_EQ_STR(got ? got->labels : NULL, "z=1,a=x=y", "and its labels");

    int n = 0;
    TAP_EQ_INT(ks_db_containers_list(db, count_containers_cb, &n, NULL), 0, "list");
    TAP_EQ_INT(n, 2, "two containers listed");

    TAP_EQ_INT(ks_db_container_using_image(db, img, &found, NULL), 0, "image in use");
    TAP_EQ_STR(found, id1, "the oldest user is named");
    free(found), found = NULL;
    TAP_EQ_INT(ks_db_image_delete(db, img, NULL) < 0, 1, "an image in use cannot be deleted");

    TAP_EQ_INT(ks_db_container_delete(db, id1, NULL), 0, "delete");
    TAP_EQ_INT(ks_db_container_delete(db, id1, NULL), -ENOENT, "delete twice");
    TAP_EQ_INT(ks_db_container_delete(db, id2, NULL), 0, "delete the other");
    TAP_EQ_INT(ks_db_container_using_image(db, img, &found, NULL), -ENOENT, "image unused");
    TAP_EQ_INT(ks_db_image_delete(db, img, NULL), 0, "then the image can go");
    ks_db_close(db);
    remove_root(root);
}

int main(void)
{
    tap_plan_auto();
    test_schema();

    char *root = make_root();
    struct ks_db *db = open_db(root);
    test_layers(db);
    test_images(db);
    ks_db_close(db);
    remove_root(root);

    test_containers();
    test_concurrent();
    test_crash();
    return tap_done();
}
