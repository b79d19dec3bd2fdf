/* The base library: the error contract, files and safe resolution inside a root, JSON bounds,
 * process sync messages, and the log sink. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fs.h"
#include "base/json.h"
#include "base/log.h"
#include "base/sync.h"
#include "tap.h"

static int fails_with(int errnum, struct ks_error **err)
{
    return ks_error_set(err, errnum, "open `%s`", "/x");
}

static void test_errors(void)
{
    struct ks_error *e = NULL;
    int r = fails_with(ENOENT, &e);
    TAP_EQ_INT(r, -ENOENT, "ks_error_set returns the negative errno");
    TAP_EQ_STR(e ? e->msg : NULL, "open `/x`: No such file or directory",
               "message carries strerror");
    ks_error_wrap(&e, "container `%s`", "c1");
    TAP_EQ_STR(e->msg, "container `c1`: open `/x`: No such file or directory",
               "wrap prefixes context");
    /* The first error wins: later ones must not overwrite it. */
    ks_error_set(&e, EPERM, "second");
    TAP_EQ_INT(e->errnum, ENOENT, "first error is kept");
    ks_error_free(e);
    e = NULL;
    r = ks_error_msg(&e, "plain %d", 3);
    TAP_EQ_INT(r, -EINVAL, "plain message defaults to EINVAL");
    TAP_EQ_STR(e->msg, "plain 3", "plain message has no strerror");
    ks_error_free(e);
    TAP_EQ_INT(ks_error_set(NULL, EIO, "x"), -EIO, "a NULL err pointer is allowed");
    ks_error_free(NULL);
}

static char tmpdir[PATH_MAX];

static void sh(const char *fmt, const char *arg)
{
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof(cmd), fmt, arg, arg, arg, arg);
    if (system(cmd) != 0)
        tap_diag("command failed: %s", cmd);
}

typedef int (*open_fn)(int, const char *, int, mode_t, struct ks_error **);

/* Opens path inside root and reports the host path the fd really points at. */
static bool resolves_to(open_fn fn, int rootfd, const char *path, const char *want)
{
    struct ks_error *e = NULL;
    int fd = fn(rootfd, path, O_PATH, 0, &e);
    if (fd < 0) {
        tap_diag("  %s: %s", path, e ? e->msg : "?");
        ks_error_free(e);
        return want == NULL;
    }
    char p[64], real[PATH_MAX];
    ssize_t n = readlink(ks_fd_path(fd, p, sizeof(p)), real, sizeof(real) - 1);
    close(fd);
    if (n < 0)
        return false;
    real[n] = '\0';
    char expect[PATH_MAX];
    snprintf(expect, sizeof(expect), "%s/root%s", tmpdir, want ? want : "");
    if (want && strcmp(want, "/") == 0)
        snprintf(expect, sizeof(expect), "%s/root", tmpdir);
    if (want == NULL || strcmp(real, expect) != 0) {
        tap_diag("  %s -> %s (expected %s)", path, real, want ? expect : "an error");
        return false;
    }
    return true;
}

static void test_open_in_root(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kiste-test-base-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        tap_ok(false, "mkdtemp");
        return;
    }
    /* A root with every kind of escape attempt; "outside" holds what must not be reached. */
    sh("mkdir -p %s/root/etc %s/root/a/b %s/outside && touch %s/outside/secret", tmpdir);
    sh("touch %s/root/etc/passwd && ln -s /etc %s/root/abs-etc && ln -s ../../.. %s/root/a/b/up",
       tmpdir);
    sh("ln -s /../../outside/secret %s/root/abs-escape && ln -s loop2 %s/root/loop1 && "
       "ln -s loop1 %s/root/loop2",
       tmpdir);
    sh("ln -s a/b/up/etc/passwd %s/root/chain", tmpdir);
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s/root", tmpdir);
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);

    static const struct {
        open_fn fn;
        const char *name;
    } impls[] = {{ks_open_in_root, "openat2"}, {ks_open_in_root_fallback, "fallback"}};
    for (size_t i = 0; i < 2; i++) {
        open_fn fn = impls[i].fn;
        const char *n = impls[i].name;
        tap_ok(resolves_to(fn, rootfd, "/etc/passwd", "/etc/passwd"), "%s: plain path", n);
        tap_ok(resolves_to(fn, rootfd, "../../../../etc/passwd", "/etc/passwd"),
               "%s: .. is clamped at the root", n);
        tap_ok(resolves_to(fn, rootfd, "/abs-etc/passwd", "/etc/passwd"),
               "%s: absolute symlink resolved inside the root", n);
        tap_ok(resolves_to(fn, rootfd, "/a/b/up", "/"), "%s: relative symlink up stops at root", n);
        tap_ok(resolves_to(fn, rootfd, "/chain", "/etc/passwd"), "%s: chained symlinks stay inside",
               n);
        tap_ok(resolves_to(fn, rootfd, "/abs-escape", NULL),
               "%s: symlink to the outside does not reach it", n);
        tap_ok(resolves_to(fn, rootfd, "/loop1", NULL), "%s: symlink loop is an error", n);
        tap_ok(resolves_to(fn, rootfd, "/", "/"), "%s: the root itself", n);
    }

    struct ks_error *e = NULL;
    int fd = ks_mkdir_p_in_root(rootfd, "/abs-etc/new/dir", 0755, false, &e);
    tap_ok(fd >= 0, "mkdir_p_in_root through a symlink");
    if (fd >= 0)
        close(fd);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/root/etc/new/dir", tmpdir);
    struct stat st;
    tap_ok(stat(p, &st) == 0 && S_ISDIR(st.st_mode), "created inside the root");
    tap_ok(access("/etc/new", F_OK) != 0, "nothing created on the host's /etc");
    fd = ks_mkdir_p_in_root(rootfd, "/a/b/up/../../file", 0755, true, &e);
    tap_ok(fd >= 0, "mkdir_p_in_root as a file with .. components");
    if (fd >= 0)
        close(fd);
    snprintf(p, sizeof(p), "%s/root/file", tmpdir);
    tap_ok(stat(p, &st) == 0 && S_ISREG(st.st_mode), "file created at the root's top");
    ks_error_free(e);
    close(rootfd);

    e = NULL;
    tap_ok(ks_rm_rf_at(AT_FDCWD, tmpdir, &e) == 0 && access(tmpdir, F_OK) != 0, "rm_rf removes");
    ks_error_free(e);
}

static void test_files(void)
{
    char dir[] = "/tmp/kiste-test-files-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return;
    int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct ks_error *e = NULL;
    tap_ok(ks_write_file_atomic(dfd, "a.json", "{\"x\":1}", 7, 0600, &e) == 0, "atomic write");
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/a.json", dir);
    char *buf = NULL;
    size_t len = 0;
    tap_ok(ks_read_file(p, &buf, &len, &e) == 0 && len == 7 && strcmp(buf, "{\"x\":1}") == 0,
           "read back");
    free(buf);
    struct stat st;
    stat(p, &st);
    TAP_EQ_INT(st.st_mode & 0777, 0600, "mode kept");
    tap_ok(ks_write_file_replace(dfd, "a.json", "{}", 2, 0644, &e) == 0, "replace");
    snprintf(p, sizeof(p), "%s/a.json", dir);
    tap_ok(ks_read_file(p, &buf, &len, &e) == 0 && len == 2 && strcmp(buf, "{}") == 0,
           "replaced content read back");
    free(buf);
    snprintf(p, sizeof(p), "%s/x/y/z", dir);
    tap_ok(ks_mkdir_p(p, 0755, &e) == 0 && stat(p, &st) == 0, "mkdir -p");
    tap_ok(ks_read_file("/nonexistent/file", &buf, &len, &e) == -ENOENT, "missing file");
    tap_ok(e && strstr(e->msg, "/nonexistent/file") != NULL, "error names the path");
    ks_error_free(e);
    close(dfd);
    ks_rm_rf_at(AT_FDCWD, dir, NULL);

    static const char *const clean[][2] = {
        {"/a/b/../c", "/a/c"}, {"//a//b/", "/a/b"}, {"/../..", "/"}, {"a/./b", "a/b"}, {"", "."},
        {"../x", "../x"},      {"a/../..", ".."},   {"/", "/"},
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(clean); i++) {
        char *c = ks_path_clean(clean[i][0]);
        TAP_EQ_STR(c, clean[i][1], "path_clean(\"%s\")", clean[i][0]);
        free(c);
    }
}

static void test_json(void)
{
    json_object *o = NULL;
    struct ks_error *e = NULL;
    const char *doc = "{\"a\":[\"x\",\"y\"],\"b\":true,\"n\":5}";
    tap_ok(ks_json_parse(doc, strlen(doc), &o, &e) == 0, "parse object");
    char **v = ks_json_strv(o, "a");
    tap_ok(v && strcmp(v[0], "x") == 0 && strcmp(v[1], "y") == 0 && v[2] == NULL, "strv");
    ks_strv_free(v);
    tap_ok(ks_json_bool(o, "b", false) && ks_json_int(o, "n", 0) == 5, "bool and int");
    tap_ok(ks_json_str(o, "n") == NULL, "wrong type reads as missing");
    json_object_put(o);

    o = NULL;
    tap_ok(ks_json_parse("{} x", 4, &o, &e) < 0 && strstr(e->msg, "byte 3"),
           "trailing data refused, offset named");
    ks_error_free(e), e = NULL;
    tap_ok(ks_json_parse("{\"a\":", 5, &o, &e) < 0 && strstr(e->msg, "end of input"), "truncated");
    ks_error_free(e), e = NULL;
    /* Deep nesting is refused instead of exhausting the stack. */
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[depth * 2] = '\0';
    tap_ok(ks_json_parse(deep, depth * 2, &o, &e) < 0, "nesting beyond the limit is refused");
    free(deep);
    ks_error_free(e);
}

static void test_sync(void)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        tap_ok(false, "socketpair");
        return;
    }
    struct ks_error *e = ks_error_new(EACCES, "mount `/x`: Permission denied");
    ks_sync_send_error(sp[0], 7, e);
    ks_error_free(e);
    struct ks_sync_msg m;
    tap_ok(ks_sync_recv(sp[1], &m) == 0, "receive message");
    TAP_EQ_INT(m.type, 7, "type");
    TAP_EQ_INT(m.errnum, EACCES, "errno travels");
    TAP_EQ_STR(m.text, "mount `/x`: Permission denied", "message travels");
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    tap_ok(ks_send_fd(sp[0], fd) == 0, "send fd");
    int got = ks_recv_fd(sp[1]);
    struct stat a, b;
    fstat(fd, &a);
    tap_ok(got >= 0 && fstat(got, &b) == 0 && a.st_rdev == b.st_rdev, "fd received");
    tap_ok(got >= 0 && (fcntl(got, F_GETFD) & FD_CLOEXEC), "received fd is close-on-exec");
    close(fd);
    if (got >= 0)
        close(got);
    close(sp[0]);
    tap_ok(ks_sync_recv(sp[1], &m) == -EPIPE, "closed peer reads as EPIPE");
    close(sp[1]);
}

struct captured {
    int count;
    enum ks_log_level last;
    char msg[256];
};

static void capture(enum ks_log_level level, const char *msg, void *userdata)
{
    struct captured *c = userdata;
    c->count++;
    c->last = level;
    snprintf(c->msg, sizeof(c->msg), "%s", msg);
}

static void test_log(void)
{
    struct captured c = {0};
    ks_log_set_sink(capture, &c);
    ks_log_set_level(KS_LOG_WARNING);
    ks_debug("hidden %d", 1);
    TAP_EQ_INT(c.count, 0, "below the level: not delivered");
    ks_warn("shown %d", 2);
    TAP_EQ_INT(c.count, 1, "warning delivered to the sink");
    TAP_EQ_STR(c.msg, "shown 2", "message formatted");
    ks_log_set_sink(ks_log_sink_stderr, NULL);
}

int main(void)
{
    tap_plan_auto();
    test_errors();
    test_open_in_root();
    test_files();
    test_json();
    test_sync();
    test_log();
    return tap_done();
}
