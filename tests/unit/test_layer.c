/* Layers: applying tars (a corpus of hostile ones built here with libarchive or by hand, each
 * checked to be refused or confined while a sentinel directory next to the destination stays
 * untouched), the round trip apply → diff → apply, compression and reproducibility. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/hash.h"
#include "image/layer.h"
#include "tap.h"

static char base[64];
static int base_fd = -1;

/* ---- building tars ---- */

struct te {
    const char *path;
    char type;        /* f file, d dir, l symlink, h hardlink, c/b device, p fifo */
    const char *data; /* file content, or link target */
    mode_t perm;
    int64_t size; /* with data == NULL: that many zero bytes */
    unsigned maj, min;
    int64_t uid, gid;
    const char *xname, *xvalue; /* one xattr */
    size_t xlen;
};

static la_ssize_t memfd_write(struct archive *a, void *data, const void *buf, size_t len)
{
    return ks_write_all(*(int *)data, buf, len) < 0 ? -1 : (la_ssize_t)len;
}

enum { F_NONE, F_GZIP, F_ZSTD };

static int memfd_new(void)
{
    int fd = memfd_create("layer", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    return fd;
}

/* The entries as a tar in a memfd, positioned at 0. */
static int make_tar(const struct te *t, size_t n, int filter)
{
    int fd = memfd_new();
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    if (filter == F_GZIP)
        archive_write_add_filter_gzip(a);
    else if (filter == F_ZSTD)
        archive_write_add_filter_zstd(a);
    archive_write_set_bytes_in_last_block(a, 1);
    archive_write_open(a, &fd, NULL, memfd_write, NULL);
    static char zeros[65536];
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, t[i].path);
        archive_entry_set_perm(e, t[i].perm ? t[i].perm : 0644);
        archive_entry_set_uid(e, t[i].uid);
        archive_entry_set_gid(e, t[i].gid);
        archive_entry_set_mtime(e, 1700000000 + (time_t)i, 0);
        int64_t size = 0;
        switch (t[i].type) {
        case 'f':
            archive_entry_set_filetype(e, AE_IFREG);
            size = t[i].data ? (int64_t)strlen(t[i].data) : t[i].size;
            break;
        case 'd':
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, t[i].perm ? t[i].perm : 0755);
            break;
        case 'l':
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_symlink(e, t[i].data);
            archive_entry_set_perm(e, 0777);
            break;
        case 'h':
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_hardlink(e, t[i].data);
            break;
        case 'c':
        case 'b':
            archive_entry_set_filetype(e, t[i].type == 'c' ? AE_IFCHR : AE_IFBLK);
            archive_entry_set_rdevmajor(e, t[i].maj);
            archive_entry_set_rdevminor(e, t[i].min);
            break;
        case 'p':
            archive_entry_set_filetype(e, AE_IFIFO);
            break;
        }
        archive_entry_set_size(e, size);
        if (t[i].xname)
            archive_entry_xattr_add_entry(e, t[i].xname, t[i].xvalue,
                                          t[i].xlen ? t[i].xlen : strlen(t[i].xvalue));
        archive_write_header(a, e);
        if (t[i].data && t[i].type == 'f') {
            archive_write_data(a, t[i].data, strlen(t[i].data));
        } else {
            for (int64_t left = size; left > 0;) {
                size_t c = left > (int64_t)sizeof(zeros) ? sizeof(zeros) : (size_t)left;
                archive_write_data(a, zeros, c);
                left -= (int64_t)c;
            }
        }
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* A ustar header by hand, for what libarchive's writer would not produce. */
static void ustar_header(char h[512], const char *name, size_t name_len, char type, uint64_t size)
{
    memset(h, 0, 512);
    memcpy(h, name, name_len > 100 ? 100 : name_len);
    snprintf(h + 100, 8, "%07o", 0644);
    snprintf(h + 108, 8, "%07o", 0);
    snprintf(h + 116, 8, "%07o", 0);
    snprintf(h + 124, 12, "%011llo", (unsigned long long)size);
    snprintf(h + 136, 12, "%011o", 1700000000);
    h[156] = type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (unsigned char)h[i];
    snprintf(h + 148, 8, "%06o", sum);
}

/* ---- the sandbox ---- */

static void rm_rf(const char *name)
{
    _cleanup_error_ struct ks_error *err = NULL;
    (void)ks_rm_rf_at(base_fd, name, &err);
}

static int fresh_dir(const char *name)
{
    rm_rf(name);
    if (mkdirat(base_fd, name, 0755) < 0)
        abort();
    return openat(base_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* A description of a tree, one line per file, so trees compare as strings. Hardlinked files
 * name the first path of their inode. */
struct desc {
    char *buf;
    size_t len;
    FILE *f;
    void *inodes;
};

struct ino_path {
    ino_t ino;
    char path[512];
};

static int ino_cmp(const void *a, const void *b)
{
    ino_t x = ((const struct ino_path *)a)->ino, y = ((const struct ino_path *)b)->ino;
    return x < y ? -1 : x > y;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void describe_dir(struct desc *d, int dirfd, const char *prefix, bool with_dir_mtime)
{
    DIR *dir = fdopendir(openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) && n < 256)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            names[n++] = strdup(de->d_name);
    closedir(dir);
    qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s%s", prefix, names[i]);
        struct stat st;
        fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW);
        fprintf(d->f, "%s %o %u:%u", path, (unsigned)st.st_mode, st.st_uid, st.st_gid);
        /* A whiteout (a 0:0 character device) is made when the layer is applied: its time is
         * the time of that, not something the tar carries. */
        bool whiteout = S_ISCHR(st.st_mode) && st.st_rdev == 0;
        if ((!S_ISDIR(st.st_mode) || with_dir_mtime) && !whiteout)
            fprintf(d->f, " t=%lld", S_ISLNK(st.st_mode) ? 0LL : (long long)st.st_mtim.tv_sec);
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
            fprintf(d->f, " dev=%u:%u", major(st.st_rdev), minor(st.st_rdev));
        if (S_ISLNK(st.st_mode)) {
            char t[512] = "";
            if (readlinkat(dirfd, names[i], t, sizeof(t) - 1) < 0)
                t[0] = '\0';
            fprintf(d->f, " -> %s", t);
        }
        if (S_ISREG(st.st_mode)) {
            struct ino_path key = {.ino = st.st_ino};
            struct ino_path **found = tfind(&key, &d->inodes, ino_cmp);
            if (found) {
                fprintf(d->f, " link=%s", (*found)->path);
            } else {
                struct ino_path *ip = calloc(1, sizeof(*ip));
                ip->ino = st.st_ino;
                snprintf(ip->path, sizeof(ip->path), "%s", path);
                tsearch(ip, &d->inodes, ino_cmp);
                char *data = NULL;
                size_t len = 0;
                _cleanup_error_ struct ks_error *err = NULL;
                if (st.st_size < 4096 && ks_read_file_at(dirfd, names[i], &data, &len, &err) == 0)
                    fprintf(d->f, " data=%.*s", (int)len, data);
                else
                    fprintf(d->f, " size=%lld", (long long)st.st_size);
                free(data);
            }
        }
        if (!S_ISLNK(st.st_mode)) {
            int fd = openat(dirfd, names[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
            char proc[64], list[1024];
            ks_fd_path(fd, proc, sizeof(proc));
            ssize_t ln = listxattr(proc, list, sizeof(list));
            char *xs[32];
            size_t nx = 0;
            for (char *x = list; ln > 0 && x < list + ln && nx < 32; x += strlen(x) + 1)
                xs[nx++] = x;
            qsort(xs, nx, sizeof(*xs), name_cmp);
            for (size_t k = 0; k < nx; k++) {
                char v[256];
                ssize_t vl = getxattr(proc, xs[k], v, sizeof(v));
                fprintf(d->f, " x:%s=", xs[k]);
                for (ssize_t j = 0; j < vl; j++)
                    fprintf(d->f, "%02x", (unsigned char)v[j]);
            }
            close(fd);
        }
        fputc('\n', d->f);
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            char p2[520];
            snprintf(p2, sizeof(p2), "%s/", path);
            describe_dir(d, sub, p2, with_dir_mtime);
            close(sub);
        }
        free(names[i]);
    }
}

/* The caller frees the result. */
static char *describe(int dirfd, bool with_dir_mtime)
{
    struct desc d = {0};
    d.f = open_memstream(&d.buf, &d.len);
    describe_dir(&d, dirfd, "", with_dir_mtime);
    fclose(d.f);
    tdestroy(d.inodes, free);
    return d.buf;
}

/* ---- the hostile corpus ---- */

static char *sentinel_before;
static struct timespec sentinel_mtime;

static void sentinel_setup(void)
{
    _cleanup_close_ int fd = fresh_dir("outside");
    _cleanup_error_ struct ks_error *err = NULL;
    ks_write_file_atomic(fd, "passwd", "root:x:0:0\n", 11, 0644, &err);
    mkdirat(fd, "sub", 0755);
    struct timespec ts[2] = {{.tv_sec = 1600000000}, {.tv_sec = 1600000000}};
    futimens(fd, ts);
    sentinel_before = describe(fd, true);
    struct stat st;
    fstat(fd, &st);
    sentinel_mtime = st.st_mtim;
}

static bool sentinel_intact(void)
{
    _cleanup_close_ int fd = openat(base_fd, "outside", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    _cleanup_free_ char *now = describe(fd, true);
    struct stat st;
    fstat(fd, &st);
    bool ok = strcmp(now, sentinel_before) == 0 && st.st_mtim.tv_sec == sentinel_mtime.tv_sec &&
              st.st_mtim.tv_nsec == sentinel_mtime.tv_nsec;
    if (!ok)
        tap_diag("sentinel changed:\n%s\nwas:\n%s", now, sentinel_before);
    return ok;
}

enum expect { REFUSED = 0, CONFINED };

struct attack {
    const char *what;
    enum expect expect;
    const char *msg; /* expected in the error message when refused */
    struct te entries[6];
    size_t n;
    uint64_t max_size;
    int filter;
    const char *check_path; /* when confined: must exist in dest */
};

#define OUT "../outside"
#define TF(p, d)                                                                                   \
    {                                                                                              \
        .path = (p), .type = 'f', .data = (d)                                                      \
    }
#define TD(p)                                                                                      \
    {                                                                                              \
        .path = (p), .type = 'd'                                                                   \
    }
#define TL(p, t)                                                                                   \
    {                                                                                              \
        .path = (p), .type = 'l', .data = (t)                                                      \
    }
#define TH(p, t)                                                                                   \
    {                                                                                              \
        .path = (p), .type = 'h', .data = (t)                                                      \
    }

static void run_attack(const struct attack *a, int tar_fd)
{
    _cleanup_close_ int dest = fresh_dir("dest");
    struct ks_layer_apply_opts o = {.max_size = a->max_size};
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_layer_apply(tar_fd, dest, &o, NULL, &err);
    if (a->expect == REFUSED) {
        bool ok =
            tap_ok(r < 0 && err && (!a->msg || strstr(err->msg, a->msg)), "refused: %s", a->what);
        if (!ok)
            tap_diag("  r=%d err=%s", r, err ? err->msg : "(none)");
        else
            tap_diag("  %s", err->msg);
    } else {
        struct stat st;
        bool ok = tap_ok(r == 0 && (!a->check_path ||
                                    fstatat(dest, a->check_path, &st, AT_SYMLINK_NOFOLLOW) == 0),
                         "confined: %s", a->what);
        if (!ok)
            tap_diag("  r=%d err=%s", r, err ? err->msg : "(none)");
    }
    tap_ok(sentinel_intact(), "sentinel untouched: %s", a->what);
}

static void test_attacks(void)
{
    char abs_sentinel[128];
    snprintf(abs_sentinel, sizeof(abs_sentinel), "%s/outside/pwned", base);
    char via_root[160];
    snprintf(via_root, sizeof(via_root), "root%s/outside/pwned", base);
    char abs_passwd[128];
    snprintf(abs_passwd, sizeof(abs_passwd), "%s/outside/passwd", base);

    const struct attack attacks[] = {
        {.what = "../ escape",
         .msg = "path leaves the layer",
         .entries = {TF("../outside/pwned", "x")},
         .n = 1},
        {.what = "../ in the middle",
         .msg = "path leaves the layer",
         .entries = {TF("a/../../outside/pwned", "x")},
         .n = 1},
        {.what = "absolute path to the sentinel",
         .expect = CONFINED,
         .entries = {TF(abs_sentinel, "x")},
         .n = 1,
         .check_path = abs_sentinel + 1},
        {.what = "absolute /etc/passwd",
         .expect = CONFINED,
         .entries = {TF("/etc/passwd", "x")},
         .n = 1,
         .check_path = "etc/passwd"},
        {.what = "symlink to / then a file through it",
         .msg = "a symlink",
         .entries = {TL("root", "/"), TF(via_root, "x")},
         .n = 2},
        {.what = "relative symlink out, then a file through it",
         .msg = "a symlink",
         .entries = {TL("up", OUT), TF("up/pwned", "x")},
         .n = 2},
        {.what = "symlink chain out",
         .msg = "a symlink",
         .entries = {TL("l2", OUT), TL("l1", "l2"), TF("l1/pwned", "x")},
         .n = 3},
        {.what = "symlink dir out, then a directory through it",
         .msg = "a symlink",
         .entries = {TL("up", OUT), TD("up/sub/deeper/")},
         .n = 2},
        {.what = "hardlink to /etc/passwd",
         .msg = "not in the layer",
         .entries = {TH("pw", "/etc/passwd")},
         .n = 1},
        {.what = "hardlink to the sentinel by absolute path",
         .msg = "not in the layer",
         .entries = {TH("pw", abs_passwd)},
         .n = 1},
        {.what = "hardlink to ../outside",
         .msg = "path leaves the layer",
         .entries = {TH("pw", OUT "/passwd")},
         .n = 1},
        {.what = "hardlink through a symlinked dir",
         .msg = "not in the layer",
         .entries = {TL("d", OUT), TH("pw", "d/passwd")},
         .n = 2},
        {.what = "hardlink to a symlink pointing out",
         .msg = "points out of the layer",
         .entries = {TL("s", OUT "/passwd"), TH("pw", "s")},
         .n = 2},
        {.what = "write through a hardlinked symlink",
         .entries = {TL("s", "/etc/passwd"), TH("pw", "s"), TF("pw", "x")},
         .n = 3},
        {.what = "char device without allow_devices",
         .msg = "device nodes are not allowed",
         .entries = {{.path = "null", .type = 'c', .perm = 0666, .maj = 1, .min = 3}},
         .n = 1},
        {.what = "block device without allow_devices",
         .msg = "device nodes are not allowed",
         .entries = {{.path = "sda", .type = 'b', .perm = 0660, .maj = 8}},
         .n = 1},
        {.what = "whiteout with ../",
         .msg = "path leaves the layer",
         .entries = {TF("../outside/.wh.passwd", "")},
         .n = 1},
        {.what = "whiteout of ..",
         .msg = "invalid whiteout",
         .entries = {TF("sub/.wh..", "")},
         .n = 1},
        {.what = "whiteout of . (root)",
         .msg = "invalid whiteout",
         .entries = {TF(".wh..", "")},
         .n = 1},
        {.what = "opaque marker in a symlinked dir",
         .msg = "a symlink",
         .entries = {TL("d", OUT), TF("d/.wh..wh..opq", "")},
         .n = 2},
        {.what = "whiteout in a symlinked dir",
         .msg = "a symlink",
         .entries = {TL("d", OUT), TF("d/.wh.passwd", "")},
         .n = 2},
        {.what = "symlink replacing a directory with files, then a file through it",
         .msg = "a symlink",
         .entries = {TD("d/"), TF("d/f", "x"), TL("d", OUT), TF("d/pwned", "x")},
         .n = 4},
        {.what = "symlink replacing a directory with files",
         .expect = CONFINED,
         .entries = {TD("d/"), TF("d/f", "x"), TL("d", OUT)},
         .n = 3,
         .check_path = "d"},
        {.what = "file replacing a symlink to the sentinel",
         .expect = CONFINED,
         .entries = {TL("f", OUT "/passwd"), TF("f", "new")},
         .n = 2,
         .check_path = "f"},
        {.what = "file then a dir of the same name",
         .expect = CONFINED,
         .entries = {TF("x", "x"), TD("x/"), TF("x/y", "y")},
         .n = 3,
         .check_path = "x/y"},
        {.what = "file as a parent directory",
         .msg = "not a directory",
         .entries = {TF("x", "x"), TF("x/y", "y")},
         .n = 2},
        {.what = "setuid file (kept)",
         .expect = CONFINED,
         .entries = {{.path = "su", .type = 'f', .data = "x", .perm = 04755}},
         .n = 1,
         .check_path = "su"},
        {.what = "trusted.overlay xattr from the tar (dropped)",
         .expect = CONFINED,
         .entries = {{.path = "o/", .type = 'd', .xname = "trusted.overlay.opaque", .xvalue = "y"}},
         .n = 1,
         .check_path = "o"},
        {.what = "declared size beyond the limit",
         .msg = "over the limit",
         .entries = {{.path = "big", .type = 'f', .size = 2 << 20}},
         .n = 1,
         .max_size = 1 << 20},
        {.what = "gzip bomb",
         .msg = "larger than",
         .entries = {{.path = "b1", .type = 'f', .size = 700 << 10},
                     {.path = "b2", .type = 'f', .size = 700 << 10},
                     {.path = "b3", .type = 'f', .size = 700 << 10}},
         .n = 3,
         .max_size = 1 << 20,
         .filter = F_GZIP},
        {.what = "zstd bomb",
         .msg = "larger than",
         .entries = {{.path = "b1", .type = 'f', .size = 700 << 10},
                     {.path = "b2", .type = 'f', .size = 700 << 10}},
         .n = 2,
         .max_size = 1 << 20,
         .filter = F_ZSTD},
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(attacks); i++) {
        _cleanup_close_ int fd = make_tar(attacks[i].entries, attacks[i].n, attacks[i].filter);
        run_attack(&attacks[i], fd);
    }

    /* The confined ones left what they should. */
    {
        _cleanup_close_ int fd = make_tar(attacks[22].entries, attacks[22].n, 0);
        run_attack(&attacks[22], fd);
        _cleanup_close_ int dest = openat(base_fd, "dest", O_RDONLY | O_DIRECTORY);
        char t[64] = "";
        if (readlinkat(dest, "d", t, sizeof(t) - 1) < 0)
            t[0] = '\0';
        TAP_EQ_STR(t, OUT, "the directory became the symlink itself");
    }
    {
        _cleanup_close_ int fd = make_tar(attacks[26].entries, attacks[26].n, 0);
        run_attack(&attacks[26], fd);
        _cleanup_close_ int dest = openat(base_fd, "dest", O_RDONLY | O_DIRECTORY);
        struct stat st;
        fstatat(dest, "su", &st, 0);
        TAP_EQ_INT(st.st_mode & 07777, 04755, "setuid bit kept");
    }
    {
        _cleanup_close_ int fd = make_tar(attacks[27].entries, attacks[27].n, 0);
        run_attack(&attacks[27], fd);
        _cleanup_close_ int dest = openat(base_fd, "dest", O_RDONLY | O_DIRECTORY);
        _cleanup_close_ int o = openat(dest, "o", O_RDONLY | O_DIRECTORY);
        char v[4];
        tap_ok(fgetxattr(o, "trusted.overlay.opaque", v, sizeof(v)) < 0,
               "trusted.overlay.* from the tar is not applied");
    }
}

/* Hand-made headers: names with NUL bytes, overlong names, deep nesting, garbage, truncation. */
static void test_raw_attacks(void)
{
    struct {
        const char *what;
        bool refused;
        const char *check;
    } cases[] = {
        {"NUL in a name (cut there)", false, "ok"},
        {"overlong name (PAX, 5000 bytes)", true, NULL},
        {"deep nesting (1500 levels)", false, NULL},
        {"garbage instead of a tar", true, NULL},
        {"truncated tar", true, NULL},
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(cases); i++) {
        _cleanup_close_ int fd = memfd_new();
        char h[512];
        if (i == 0) {
            ustar_header(h, "ok\0/../../outside/pwned", 24, '0', 0);
            ks_write_all(fd, h, 512);
            char end[1024] = {0};
            ks_write_all(fd, end, sizeof(end));
        } else if (i == 1 || i == 2) {
            char *name = malloc(5001);
            if (i == 1) {
                memset(name, 'a', 5000);
                name[5000] = '\0';
            } else {
                for (int k = 0; k < 1500; k++)
                    memcpy(name + 2 * k, "d/", 2);
                strcpy(name + 3000, "f");
            }
            struct te t = TF(name, "deep");
            close(fd);
            fd = make_tar(&t, 1, 0);
            free(name);
        } else if (i == 3) {
            ks_write_all(fd, "this is not a tar archive, not even close.......", 48);
        } else {
            ustar_header(h, "file", 4, '0', 4096);
            ks_write_all(fd, h, 512);
            ks_write_all(fd, "only a little", 13);
        }
        lseek(fd, 0, SEEK_SET);
        _cleanup_close_ int dest = fresh_dir("dest");
        _cleanup_error_ struct ks_error *err = NULL;
        int r = ks_layer_apply(fd, dest, NULL, NULL, &err);
        struct stat st;
        if (cases[i].refused) {
            if (tap_ok(r < 0 && err, "refused: %s", cases[i].what))
                tap_diag("  %s", err->msg);
        } else {
            if (!tap_ok(r == 0 && (!cases[i].check ||
                                   fstatat(dest, cases[i].check, &st, AT_SYMLINK_NOFOLLOW) == 0),
                        "confined: %s", cases[i].what))
                tap_diag("  r=%d %s", r, err ? err->msg : "");
        }
        tap_ok(sentinel_intact(), "sentinel untouched: %s", cases[i].what);
    }
}

/* ---- the positive side ---- */

/* security.capability v2: cap_net_bind_service, effective. */
static const char vfs_cap[20] = {0x01, 0x00, 0x00, 0x02, 0x00, 0x04};

static const struct te full_layer[] = {
    {.path = "bin/", .type = 'd', .perm = 0755},
    {.path = "bin/busybox",
     .type = 'f',
     .data = "#!busybox\n",
     .perm = 0755,
     .xname = "user.origin",
     .xvalue = "test"},
    TH("bin/ls", "bin/busybox"),
    TL("bin/sh", "busybox"),
    {.path = "bin/su", .type = 'f', .data = "su", .perm = 04755},
    {.path = "bin/ping",
     .type = 'f',
     .data = "ping",
     .perm = 0755,
     .xname = "security.capability",
     .xvalue = vfs_cap,
     .xlen = 20},
    {.path = "dev/", .type = 'd', .perm = 0755},
    {.path = "dev/null", .type = 'c', .perm = 0666, .maj = 1, .min = 3},
    {.path = "dev/loop0", .type = 'b', .perm = 0660, .maj = 7, .gid = 6},
    {.path = "run/fifo", .type = 'p', .perm = 0600},
    {.path = "home/user/", .type = 'd', .perm = 0700, .uid = 1000, .gid = 1000},
    {.path = "home/user/.profile",
     .type = 'f',
     .data = "PS1=$\n",
     .perm = 0600,
     .uid = 1000,
     .gid = 1000},
    TF("old/.wh.gone", ""),
    TD("opq/"),
    TF("opq/.wh..wh..opq", ""),
    TF("opq/new", "new"),
    {.path = "ro/", .type = 'd', .perm = 0555},
    {.path = "ro/file", .type = 'f', .data = "ro", .perm = 0444},
    TL("etc/localtime", "/usr/share/zoneinfo/UTC"),
};

static void test_apply_full(void)
{
    _cleanup_close_ int tar = make_tar(full_layer, KS_ELEMENTSOF(full_layer), 0);
    _cleanup_close_ int dest = fresh_dir("full1");
    struct ks_layer_apply_opts o = {.allow_devices = true};
    struct ks_layer_result res;
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_layer_apply(tar, dest, &o, &res, &err);
    if (!tap_ok(r == 0, "full layer applies"))
        tap_diag("  %s", err ? err->msg : "");
    TAP_EQ_INT(res.entries, KS_ELEMENTSOF(full_layer), "every entry seen");
    TAP_EQ_STR(res.diff_id, res.digest, "uncompressed: digest == diff_id");
    TAP_EQ_INT(res.size, lseek(tar, 0, SEEK_END), "size is the blob size");

    struct stat a, b;
    fstatat(dest, "bin/busybox", &a, 0);
    fstatat(dest, "bin/ls", &b, 0);
    tap_ok(a.st_ino == b.st_ino && a.st_nlink == 2, "hardlink shares the inode");
    fstatat(dest, "old/gone", &a, AT_SYMLINK_NOFOLLOW);
    tap_ok(S_ISCHR(a.st_mode) && a.st_rdev == makedev(0, 0), "whiteout is a char device 0:0");
    tap_ok(fstatat(dest, "old/.wh.gone", &a, AT_SYMLINK_NOFOLLOW) < 0, "no .wh. file left");
    _cleanup_close_ int opq = openat(dest, "opq", O_RDONLY | O_DIRECTORY);
    char v[4] = "";
    ssize_t n = fgetxattr(opq, "trusted.overlay.opaque", v, sizeof(v));
    tap_ok(n == 1 && v[0] == 'y', "opaque directory marked");
    fstatat(dest, "dev/null", &a, AT_SYMLINK_NOFOLLOW);
    tap_ok(S_ISCHR(a.st_mode) && a.st_rdev == makedev(1, 3), "char device created");
    fstatat(dest, "dev/loop0", &a, AT_SYMLINK_NOFOLLOW);
    tap_ok(S_ISBLK(a.st_mode) && a.st_gid == 6, "block device created with its group");
    fstatat(dest, "home/user/.profile", &a, 0);
    tap_ok(a.st_uid == 1000 && a.st_gid == 1000 && (a.st_mode & 07777) == 0600, "owner and mode");
    fstatat(dest, "home/user", &a, 0);
    tap_ok((a.st_mode & 07777) == 0700 && a.st_mtim.tv_sec == 1700000000 + 10,
           "directory mode and mtime set at the end");
    fstatat(dest, "ro", &a, 0);
    TAP_EQ_INT(a.st_mode & 07777, 0555, "read-only directory filled and then made read-only");
    fstatat(dest, "bin/su", &a, 0);
    TAP_EQ_INT(a.st_mode & 07777, 04755, "setuid mode");
    fstatat(dest, "bin/sh", &a, AT_SYMLINK_NOFOLLOW);
    TAP_EQ_INT(a.st_mtim.tv_sec, 1700000003, "symlink mtime set without following it");
    char cap[32];
    int pfd = openat(dest, "bin/ping", O_RDONLY);
    n = fgetxattr(pfd, "security.capability", cap, sizeof(cap));
    close(pfd);
    tap_ok(n == 20 && memcmp(cap, vfs_cap, 20) == 0, "file capability kept");
    fstatat(dest, "run", &a, 0);
    TAP_EQ_INT(a.st_mode & 07777, 0755, "missing parents created 0755");
}

static void test_round_trip(void)
{
    _cleanup_close_ int src = openat(base_fd, "full1", O_RDONLY | O_DIRECTORY);
    _cleanup_close_ int out = memfd_new();
    _cleanup_free_ char *diff_id = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_layer_diff(src, out, NULL, &diff_id, &err);
    if (!tap_ok(r == 0 && diff_id && strncmp(diff_id, "sha256:", 7) == 0, "diff of the tree"))
        tap_diag("  %s", err ? err->msg : "");

    /* The entries of the diff, in order. */
    lseek(out, 0, SEEK_SET);
    struct archive *a = archive_read_new();
    archive_read_support_format_tar(a);
    archive_read_open_fd(a, out, 10240);
    struct archive_entry *e;
    char names[2048] = "";
    bool overlay_xattr = false;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        strncat(names, archive_entry_pathname(e), sizeof(names) - strlen(names) - 2);
        strcat(names, " ");
        const char *xn;
        const void *xv;
        size_t xl;
        archive_entry_xattr_reset(e);
        while (archive_entry_xattr_next(e, &xn, &xv, &xl) == ARCHIVE_OK)
            overlay_xattr |= strncmp(xn, "trusted.overlay.", 16) == 0;
    }
    archive_read_free(a);
    tap_ok(strstr(names, "old/.wh.gone ") != NULL, "whiteout written as .wh.");
    tap_ok(strstr(names, "opq/ opq/.wh..wh..opq ") != NULL, "opaque marker after its directory");
    tap_ok(strstr(names, "bin/ bin/busybox bin/ls bin/ping bin/sh bin/su ") != NULL,
           "entries sorted by name");
    tap_ok(!overlay_xattr, "no trusted.overlay xattrs in the diff");

    lseek(out, 0, SEEK_SET);
    _cleanup_close_ int dest = fresh_dir("full2");
    struct ks_layer_apply_opts o = {.allow_devices = true};
    struct ks_layer_result res;
    r = ks_layer_apply(out, dest, &o, &res, &err);
    if (!tap_ok(r == 0, "diff applies again"))
        tap_diag("  %s", err ? err->msg : "");
    TAP_EQ_STR(res.diff_id, diff_id, "diff_id of diff and apply agree");
    _cleanup_free_ char *d1 = describe(src, true);
    _cleanup_free_ char *d2 = describe(dest, true);
    if (!tap_ok(strcmp(d1, d2) == 0, "round trip keeps modes, owners, xattrs, links, times"))
        tap_diag("first:\n%s\nsecond:\n%s", d1, d2);
}

static void test_compression(void)
{
    char ids[3][KS_LAYER_DIGEST_LEN], digests[3][KS_LAYER_DIGEST_LEN];
    const char *names[] = {"tar", "tar+gzip", "tar+zstd"};
    for (int f = F_NONE; f <= F_ZSTD; f++) {
        _cleanup_close_ int tar = make_tar(full_layer, KS_ELEMENTSOF(full_layer), f);
        _cleanup_close_ int dest = fresh_dir("comp");
        struct ks_layer_apply_opts o = {.allow_devices = true};
        struct ks_layer_result res = {0};
        _cleanup_error_ struct ks_error *err = NULL;
        int r = ks_layer_apply(tar, dest, &o, &res, &err);
        if (!tap_ok(r == 0, "%s applies", names[f]))
            tap_diag("  %s", err ? err->msg : "");
        memcpy(ids[f], res.diff_id, sizeof(ids[f]));
        memcpy(digests[f], res.digest, sizeof(digests[f]));
    }
    TAP_EQ_STR(ids[F_GZIP], ids[F_NONE], "gzip gives the same diff_id");
    TAP_EQ_STR(ids[F_ZSTD], ids[F_NONE], "zstd gives the same diff_id");
    tap_ok(strcmp(digests[F_GZIP], ids[F_NONE]) != 0, "gzip blob digest differs from diff_id");

    /* An empty blob is an empty layer. */
    _cleanup_close_ int empty = memfd_new();
    _cleanup_close_ int dest = fresh_dir("comp");
    struct ks_layer_result res;
    _cleanup_error_ struct ks_error *err = NULL;
    tap_ok(ks_layer_apply(empty, dest, NULL, &res, &err) == 0 && res.entries == 0,
           "empty blob is an empty layer");
}

static void test_reproducible(void)
{
    _cleanup_close_ int src = openat(base_fd, "full1", O_RDONLY | O_DIRECTORY);
    struct ks_layer_diff_opts o = {.use_fixed_mtime = true, .fixed_mtime = 0, .gzip = true};
    char *ids[2] = {NULL, NULL};
    char *blobs[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        _cleanup_close_ int out = memfd_new();
        _cleanup_error_ struct ks_error *err = NULL;
        if (i == 1) {
            struct timespec ts[2] = {{.tv_nsec = UTIME_NOW}, {.tv_nsec = UTIME_NOW}};
            utimensat(src, "bin/busybox", ts, 0);
        }
        int r = ks_layer_diff(src, out, &o, &ids[i], &err);
        if (!tap_ok(r == 0, "reproducible diff %d", i))
            tap_diag("  %s", err ? err->msg : "");
        lseek(out, 0, SEEK_SET);
        _cleanup_close_ int dest = fresh_dir("repro");
        struct ks_layer_apply_opts ao = {.allow_devices = true};
        struct ks_layer_result res;
        r = ks_layer_apply(out, dest, &ao, &res, &err);
        tap_ok(r == 0 && ids[i] && strcmp(res.diff_id, ids[i]) == 0,
               "gzip diff %d applies with its diff_id", i);
        blobs[i] = strdup(res.digest);
    }
    TAP_EQ_STR(ids[0], ids[1], "two runs with a fixed mtime: same diff_id");
    TAP_EQ_STR(blobs[0], blobs[1], "two runs with a fixed mtime: same gzip blob");
    for (int i = 0; i < 2; i++) {
        free(ids[i]);
        free(blobs[i]);
    }
}

static void test_options(void)
{
    static const struct te t[] = {
        {.path = "f", .type = 'f', .data = "x", .uid = 10, .gid = 20},
        TD("d/"),
        TF("d/.wh..wh..opq", ""),
    };
    _cleanup_close_ int tar = make_tar(t, KS_ELEMENTSOF(t), 0);
    _cleanup_close_ int dest = fresh_dir("opts");
    struct ks_layer_apply_opts o = {.uid_shift = 100000, .gid_shift = 200000, .userxattr = true};
    _cleanup_error_ struct ks_error *err = NULL;
    int r = ks_layer_apply(tar, dest, &o, NULL, &err);
    tap_ok(r == 0, "apply with shifted ids");
    struct stat st;
    fstatat(dest, "f", &st, 0);
    tap_ok(st.st_uid == 100010 && st.st_gid == 200020, "owners shifted");
    _cleanup_close_ int d = openat(dest, "d", O_RDONLY | O_DIRECTORY);
    char v[4];
    tap_ok(fgetxattr(d, "user.overlay.opaque", v, sizeof(v)) == 1, "userxattr opaque marker");

    /* Whiteouts remove what lower entries of the same layer made. */
    static const struct te t2[] = {TD("a/"), TF("a/f", "x"), TF(".wh.a", ""), TF("a", "again")};
    _cleanup_close_ int tar2 = make_tar(t2, KS_ELEMENTSOF(t2), 0);
    _cleanup_close_ int dest2 = fresh_dir("opts");
    r = ks_layer_apply(tar2, dest2, NULL, NULL, &err);
    char *data = NULL;
    size_t len;
    tap_ok(r == 0 && ks_read_file_at(dest2, "a", &data, &len, &err) == 0 &&
               strcmp(data, "again") == 0,
           "whiteout replaced a directory, then a file replaced the whiteout");
    free(data);
}

/* The digests of a layer several read buffers long (the blob is hashed on a thread, through a
 * ring of buffers), from a file and from a pipe, against a hash of the whole blob at once. */
static void test_digests(void)
{
    static const struct te big[] = {
        {.path = "a", .type = 'f', .perm = 0644, .size = 5 << 20},
        {.path = "d/", .type = 'd', .perm = 0755},
        {.path = "d/b", .type = 'f', .data = "b", .perm = 0644},
        {.path = "c", .type = 'f', .perm = 0644, .size = 3 << 20},
    };
    for (int filter = F_NONE; filter <= F_GZIP; filter++) {
        _cleanup_close_ int tar = make_tar(big, KS_ELEMENTSOF(big), filter);
        off_t len = lseek(tar, 0, SEEK_END);
        char *bytes = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE, tar, 0);
        char want[KS_SHA256_DIGEST_LEN];
        ks_sha256_hex(bytes, (size_t)len, want);
        munmap(bytes, (size_t)len);
        for (int from_pipe = 0; from_pipe < 2; from_pipe++) {
            lseek(tar, 0, SEEK_SET);
            int in = tar;
            pid_t child = -1;
            int p[2] = {-1, -1};
            if (from_pipe && pipe2(p, O_CLOEXEC) == 0 && (child = fork()) == 0) {
                close(p[0]);
                char buf[65536];
                ssize_t n;
                while ((n = read(tar, buf, sizeof(buf))) > 0)
                    if (ks_write_all(p[1], buf, (size_t)n) < 0)
                        _exit(1);
                _exit(0);
            }
            if (from_pipe) {
                close(p[1]);
                in = p[0];
            }
            _cleanup_close_ int dest = fresh_dir("digests");
            struct ks_layer_result res;
            _cleanup_error_ struct ks_error *err = NULL;
            int r = ks_layer_apply(in, dest, NULL, &res, &err);
            if (from_pipe) {
                close(p[0]);
                waitpid(child, NULL, 0);
            }
            if (!tap_ok(r == 0, "big layer applies (%s, %s)", filter ? "gzip" : "tar",
                        from_pipe ? "pipe" : "file"))
                tap_diag("  %s", err ? err->msg : "");
            TAP_EQ_STR(res.digest, want, "blob digest is the hash of every byte");
            TAP_EQ_INT(res.size, len, "blob size");
            if (filter == F_NONE)
                TAP_EQ_STR(res.diff_id, want, "uncompressed: the diff_id is the same hash");
            struct stat st;
            tap_ok(fstatat(dest, "c", &st, 0) == 0 && st.st_size == 3 << 20, "last file whole");
        }
    }
}

static void test_clean_path(void)
{
    static const struct {
        const char *in, *out;
        int r;
    } cases[] = {
        {"/a//b/./c/", "a/b/c", 0}, {"./", "", 0},        {"a/..b/c..", "a/..b/c..", 0},
        {"a/../b", NULL, -EPERM},   {"..", NULL, -EPERM}, {"/./.", "", 0},
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(cases); i++) {
        _cleanup_free_ char *out = NULL;
        int r = ks_layer_clean_path(cases[i].in, &out);
        tap_ok(r == cases[i].r && (cases[i].out == NULL || (out && !strcmp(out, cases[i].out))),
               "clean path `%s`", cases[i].in);
    }
    char *longname = malloc(KS_LAYER_MAX_NAME + 2);
    memset(longname, 'x', KS_LAYER_MAX_NAME + 1);
    longname[KS_LAYER_MAX_NAME + 1] = '\0';
    char *out = NULL;
    TAP_EQ_INT(ks_layer_clean_path(longname, &out), -ENAMETOOLONG, "too long a path");
    free(longname);
}

int main(void)
{
    tap_plan_auto();
    snprintf(base, sizeof(base), "/var/tmp/test_layer.XXXXXX");
    if (mkdtemp(base) == NULL)
        return 1;
    base_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (geteuid() != 0) {
        tap_skip("needs root", "layer tests (devices, owners, trusted xattrs)");
    } else {
        sentinel_setup();
        test_attacks();
        test_raw_attacks();
        test_apply_full();
        test_round_trip();
        test_compression();
        test_reproducible();
        test_options();
        test_digests();
    }
    test_clean_path();
    free(sentinel_before);
    _cleanup_error_ struct ks_error *err = NULL;
    ks_rm_rf_at(AT_FDCWD, base, &err);
    close(base_fd);
    return tap_done();
}
