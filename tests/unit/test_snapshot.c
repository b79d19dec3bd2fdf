/* Overlay snapshots: the overlay2-style layer directories, read-only image mounts through both
 * the new mount API and the classic option string, container snapshots, whiteouts and opaque
 * directories, and an image of 300 layers. Runs in a private mount namespace and checks that
 * nothing stays mounted. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/fs.h"
#include "image/snapshot.h"
#include "tap.h"

#define DEEP_LAYERS 300

static char root[64];
static char store[128];

static void diag_err(struct ks_error *err)
{
    if (err)
        tap_diag("  error: %s", err->msg);
}

static bool overlay_available(char *why, size_t len)
{
    if (geteuid() != 0) {
        snprintf(why, len, "needs root");
        return false;
    }
    _cleanup_free_ char *fs = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_read_file("/proc/filesystems", &fs, NULL, &err) < 0 || !strstr(fs, "\toverlay\n")) {
        snprintf(why, len, "overlay file system not available");
        return false;
    }
    return true;
}

static void write_at(const char *dir, const char *name, const char *content)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "we");
    if (f == NULL) {
        tap_diag("cannot write %s: %m", path);
        abort();
    }
    fputs(content, f);
    fclose(f);
}

static void mkdir_at(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        tap_diag("mkdir %s: %m", path);
        abort();
    }
}

/* The content of dir/name, or NULL when it cannot be read. Owned by the caller. */
static char *read_at(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *data = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_read_file(path, &data, NULL, &err) < 0)
        return NULL;
    return data;
}

static bool exists_at(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct stat st;
    return lstat(path, &st) == 0;
}

static bool is_whiteout_at(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct stat st;
    return lstat(path, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

/* Mounts listed in /proc/self/mountinfo below the test root. */
static int mounts_below_root(void)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, root) != NULL;
    return n;
}

static void check_image_view(const char *m, const char *how)
{
    _cleanup_free_ char *a = read_at(m, "a.txt"), *c = read_at(m, "c.txt"),
                        *k = read_at(m, "keep/k.txt"), *nw = read_at(m, "dir/new.txt");
    TAP_EQ_STR(a, "a2", "%s: the upper layer's file wins", how);
    tap_ok(!exists_at(m, "b.txt"), "%s: whiteout hides the deleted file", how);
    tap_ok(!exists_at(m, "dir/old.txt"), "%s: opaque directory hides the lower content", how);
    TAP_EQ_STR(nw, "new", "%s: opaque directory shows its own content", how);
    TAP_EQ_STR(c, "c2", "%s: middle layer's file", how);
    TAP_EQ_STR(k, "k1", "%s: base layer's file", how);
}

static void test_layers_and_mounts(void)
{
    _cleanup_error_ struct ks_error *err = NULL;
    _cleanup_free_ char *l1 = NULL, *l2 = NULL, *l3 = NULL;
    _cleanup_free_ char *d1 = NULL, *d2 = NULL, *d3 = NULL;
    int r = ks_snapshot_layer_create(store, NULL, &l1, &d1, &err);
    TAP_EQ_INT(r, 0, "create base layer");
    diag_err(err);
    if (r < 0)
        return;
    TAP_EQ_INT(ks_snapshot_layer_create(store, l1, &l2, &d2, &err), 0, "create second layer");
    TAP_EQ_INT(ks_snapshot_layer_create(store, l2, &l3, &d3, &err), 0, "create third layer");
    diag_err(err);
    if (l3 == NULL)
        return;

    /* The overlay2 layout. */
    char ldir[PATH_MAX];
    snprintf(ldir, sizeof(ldir), "%s/%s", store, l1);
    _cleanup_free_ char *link1 = read_at(ldir, "link");
    tap_ok(link1 && strlen(link1) == KS_SNAPSHOT_LINK_LEN &&
               strspn(link1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == KS_SNAPSHOT_LINK_LEN,
           "link file holds a 26-character short name");
    tap_ok(!exists_at(ldir, "lower"), "base layer has no lower file");
    tap_ok(exists_at(ldir, "work") && exists_at(ldir, "diff"), "diff and work directories");
    char lpath[PATH_MAX], target[PATH_MAX] = "";
    snprintf(lpath, sizeof(lpath), "%s/l/%s", store, link1 ? link1 : "");
    ssize_t tn = readlink(lpath, target, sizeof(target) - 1);
    target[tn > 0 ? tn : 0] = '\0';
    char want[PATH_MAX];
    snprintf(want, sizeof(want), "../%s/diff", l1);
    TAP_EQ_STR(target, want, "l/<short> points at the layer's diff");
    snprintf(ldir, sizeof(ldir), "%s/%s", store, l2);
    _cleanup_free_ char *link2 = read_at(ldir, "link");
    snprintf(ldir, sizeof(ldir), "%s/%s", store, l3);
    _cleanup_free_ char *lower3 = read_at(ldir, "lower");
    char want_lower[128];
    snprintf(want_lower, sizeof(want_lower), "l/%s:l/%s", link2 ? link2 : "", link1);
    TAP_EQ_STR(lower3, want_lower, "lower file lists the chain, nearest first");

    /* Content: base, a layer deleting and overwriting, a layer with an opaque directory. */
    write_at(d1, "a.txt", "a1");
    write_at(d1, "b.txt", "b1");
    mkdir_at(d1, "dir");
    write_at(d1, "dir/old.txt", "old");
    mkdir_at(d1, "keep");
    write_at(d1, "keep/k.txt", "k1");
    write_at(d2, "a.txt", "a2");
    write_at(d2, "c.txt", "c2");
    char wh[PATH_MAX];
    snprintf(wh, sizeof(wh), "%s/b.txt", d2);
    tap_ok(mknod(wh, S_IFCHR | 0600, makedev(0, 0)) == 0, "whiteout device in layer 2");
    mkdir_at(d3, "dir");
    write_at(d3, "dir/new.txt", "new");
    char opq[PATH_MAX];
    snprintf(opq, sizeof(opq), "%s/dir", d3);
    tap_ok(setxattr(opq, "trusted.overlay.opaque", "y", 1, 0) == 0, "opaque directory in layer 3");

    /* Read-only image views through both mount paths. */
    char mnt[PATH_MAX];
    snprintf(mnt, sizeof(mnt), "%s/view", root);
    mkdir(mnt, 0755);
    const char *const ids[] = {l3, l2, l1};
    r = ks_snapshot_mount(store, ids, 3, NULL, NULL, mnt, true, &err);
    TAP_EQ_INT(r, 0, "mount the image read-only");
    diag_err(err);
    if (r == 0) {
        check_image_view(mnt, "lowerdir+");
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/x", mnt);
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        tap_ok(fd < 0 && errno == EROFS, "image view is read-only");
        if (fd >= 0)
            close(fd);
        TAP_EQ_INT(ks_snapshot_unmount(mnt, &err), 0, "unmount image view");
    }
    r = ks_snapshot_mount_legacy(store, ids, 3, NULL, NULL, mnt, true, &err);
    TAP_EQ_INT(r, 0, "mount the image through the option string");
    diag_err(err);
    if (r == 0) {
        check_image_view(mnt, "option string");
        TAP_EQ_INT(ks_snapshot_unmount(mnt, &err), 0, "unmount legacy view");
    }
    TAP_EQ_INT(ks_snapshot_unmount(mnt, &err), 0, "unmounting what is not mounted is fine");
    r = ks_snapshot_mount(store, ids + 2, 1, NULL, NULL, mnt, true, &err);
    _cleanup_free_ char *b1 = r == 0 ? read_at(mnt, "b.txt") : NULL;
    TAP_EQ_STR(b1, "b1", "a single layer mounts read-only too");
    ks_snapshot_unmount(mnt, &err);

    /* A container on the image. */
    _cleanup_free_ char *cid = NULL, *merged = NULL;
    r = ks_snapshot_container_create(store, l3, &cid, &err);
    TAP_EQ_INT(r, 0, "create container snapshot");
    diag_err(err);
    if (r < 0)
        return;
    r = ks_snapshot_container_mount(store, cid, &merged, &err);
    TAP_EQ_INT(r, 0, "mount container");
    diag_err(err);
    if (r == 0) {
        check_image_view(merged, "container");
        write_at(merged, "written.txt", "w");
        char upper[PATH_MAX];
        snprintf(upper, sizeof(upper), "%s/%s/diff", store, cid);
        _cleanup_free_ char *w = read_at(upper, "written.txt");
        TAP_EQ_STR(w, "w", "a write lands in the container's upper directory");
        tap_ok(!exists_at(d1, "written.txt") && !exists_at(d2, "written.txt") &&
                   !exists_at(d3, "written.txt"),
               "and in no layer");
        char del[PATH_MAX];
        snprintf(del, sizeof(del), "%s/a.txt", merged);
        tap_ok(unlink(del) == 0 && !exists_at(merged, "a.txt"), "delete a file from the image");
        tap_ok(is_whiteout_at(upper, "a.txt"), "the deletion is a whiteout in the upper");
        _cleanup_free_ char *a2 = read_at(d2, "a.txt");
        TAP_EQ_STR(a2, "a2", "the layer keeps the file");
        TAP_EQ_INT(ks_snapshot_container_mount(store, cid, NULL, &err), 0,
                   "mounting again is fine");
        TAP_EQ_INT(ks_snapshot_container_unmount(store, cid, &err), 0, "unmount container");
        diag_err(err);
    }
    TAP_EQ_INT(ks_snapshot_container_remove(store, cid, &err), 0, "remove container");
    tap_ok(!exists_at(store, cid), "container directory gone");

    /* A container on an image without layers is its upper directory alone. */
    _cleanup_free_ char *empty = NULL, *emerged = NULL;
    r = ks_snapshot_container_create(store, NULL, &empty, &err);
    if (r == 0)
        r = ks_snapshot_container_mount(store, empty, &emerged, &err);
    TAP_EQ_INT(r, 0, "container without image layers mounts");
    diag_err(err);
    if (r == 0)
        write_at(emerged, "f", "f");
    TAP_EQ_INT(ks_snapshot_container_remove(store, empty, &err), 0, "and is removed mounted");
    diag_err(err);

    /* Bad names never reach the file system. */
    TAP_EQ_INT(ks_snapshot_layer_remove(store, "../x", &err), -EINVAL, "`../x` refused");
    ks_error_free(TAKE_PTR(err));
    const char *const bad[] = {"l"};
    TAP_EQ_INT(ks_snapshot_mount(store, bad, 1, NULL, NULL, mnt, true, &err), -EINVAL,
               "layer name `l` refused");
    ks_error_free(TAKE_PTR(err));

    /* Removing layers takes their short links with them. */
    const char *const all[] = {l3, l2, l1};
    bool ok = true;
    for (size_t i = 0; i < 3; i++)
        ok &= ks_snapshot_layer_remove(store, all[i], &err) == 0;
    tap_ok(ok && !exists_at(store, l1) && !exists_at(lpath, ""), "remove layers and links");
    diag_err(err);
    TAP_EQ_INT(ks_snapshot_layer_remove(store, l1, &err), 0, "removing again is fine");
}

static void test_deep(void)
{
    _cleanup_error_ struct ks_error *err = NULL;
    /* Before any goto: a jump must not cross a cleanup variable into its scope. */
    _cleanup_free_ char *cid = NULL, *merged = NULL;
    char **ids = calloc(DEEP_LAYERS, sizeof(char *));
    bool ok = true;
    for (int i = 0; i < DEEP_LAYERS && ok; i++) {
        _cleanup_free_ char *diff = NULL;
        ok = ks_snapshot_layer_create(store, i ? ids[i - 1] : NULL, &ids[i], &diff, &err) == 0;
        if (ok) {
            char name[32], content[32];
            snprintf(name, sizeof(name), "f%03d", i);
            snprintf(content, sizeof(content), "%d", i);
            write_at(diff, name, content);
            write_at(diff, "top", content);
        }
    }
    tap_ok(ok, "create %d layers", DEEP_LAYERS);
    diag_err(err);
    if (!ok)
        goto out;

    /* Top first. */
    const char **top_first = calloc(DEEP_LAYERS, sizeof(char *));
    for (int i = 0; i < DEEP_LAYERS; i++)
        top_first[i] = ids[DEEP_LAYERS - 1 - i];
    char mnt[PATH_MAX];
    snprintf(mnt, sizeof(mnt), "%s/deep", root);
    mkdir(mnt, 0755);
    int r = ks_snapshot_mount(store, top_first, DEEP_LAYERS, NULL, NULL, mnt, true, &err);
    TAP_EQ_INT(r, 0, "mount an image of %d layers", DEEP_LAYERS);
    diag_err(err);
    if (r == 0) {
        _cleanup_free_ char *first = read_at(mnt, "f000"), *last = read_at(mnt, "f299"),
                            *top = read_at(mnt, "top");
        TAP_EQ_STR(first, "0", "the base layer is visible");
        TAP_EQ_STR(last, "299", "the top layer is visible");
        TAP_EQ_STR(top, "299", "the top layer wins");
        TAP_EQ_INT(ks_snapshot_unmount(mnt, &err), 0, "unmount the deep image");
    }

    r = ks_snapshot_mount_legacy(store, top_first, DEEP_LAYERS, NULL, NULL, mnt, true, &err);
    TAP_EQ_INT(r, -E2BIG, "the option string cannot hold %d layers", DEEP_LAYERS);
    diag_err(err);
    ks_error_free(TAKE_PTR(err));
    if (r == 0)
        ks_snapshot_unmount(mnt, &err);

    r = ks_snapshot_container_create(store, ids[DEEP_LAYERS - 1], &cid, &err);
    if (r == 0)
        r = ks_snapshot_container_mount(store, cid, &merged, &err);
    TAP_EQ_INT(r, 0, "mount a container on %d layers", DEEP_LAYERS);
    diag_err(err);
    if (r == 0) {
        _cleanup_free_ char *first = read_at(merged, "f000");
        TAP_EQ_STR(first, "0", "container sees the base layer");
    }
    if (cid)
        TAP_EQ_INT(ks_snapshot_container_remove(store, cid, &err), 0, "remove the container");
    free(top_first);

out:
    ok = true;
    for (int i = DEEP_LAYERS - 1; i >= 0; i--)
        if (ids[i])
            ok &= ks_snapshot_layer_remove(store, ids[i], &err) == 0;
    tap_ok(ok, "remove %d layers", DEEP_LAYERS);
    diag_err(err);
    for (int i = 0; i < DEEP_LAYERS; i++)
        free(ids[i]);
    free(ids);

    char l[PATH_MAX];
    snprintf(l, sizeof(l), "%s/l", store);
    _cleanup_closedir_ DIR *d = opendir(l);
    int left = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        left += de->d_name[0] != '.';
    TAP_EQ_INT(left, 0, "no short links left");
}

int main(void)
{
    tap_plan_auto();
    char why[128];
    if (!overlay_available(why, sizeof(why))) {
        tap_skip(why, "overlay snapshots");
        return tap_done();
    }
    /* A private mount namespace: should a check fail half-way, nothing leaks to the host. */
    if (unshare(CLONE_NEWNS) == 0)
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);

    snprintf(root, sizeof(root), "/tmp/kiste-test-snapshot-XXXXXX");
    if (mkdtemp(root) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(store, sizeof(store), "%s/overlay", root);

    test_layers_and_mounts();
    test_deep();

    TAP_EQ_INT(mounts_below_root(), 0, "nothing left mounted");
    _cleanup_error_ struct ks_error *err = NULL;
    TAP_EQ_INT(ks_rm_rf_at(AT_FDCWD, root, &err), 0, "the test tree is removed");
    diag_err(err);
    return tap_done();
}
