/* The engine's pure parts: generated names, config merging, users resolved in a root file
 * system, OCI spec generation from a container config, sizes and signals. */
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "engine/container.h"
#include "tap.h"

static json_object *parse(const char *s)
{
    json_object *o = NULL;
    if (ks_json_parse(s, strlen(s), &o, NULL) < 0) {
        tap_diag("bad JSON in test: %s", s);
        abort();
    }
    return o;
}

static const char *strv_at(json_object *a, size_t i)
{
    json_object *v = a ? json_object_array_get_idx(a, i) : NULL;
    return v ? json_object_get_string(v) : NULL;
}

static bool strv_has(json_object *a, const char *s)
{
    for (size_t i = 0; a && i < json_object_array_length(a); i++)
        if (strcmp(strv_at(a, i), s) == 0)
            return true;
    return false;
}

static void test_names(void)
{
    regex_t re;
    regcomp(&re, "^[a-z]+_[a-z]+$", REG_EXTENDED | REG_NOSUB);
    bool all_ok = true, some_differ = false;
    char *first = ks_container_name_generate(0);
    for (int i = 0; i < 50; i++) {
        char *n = ks_container_name_generate(0);
        all_ok &= n && regexec(&re, n, 0, NULL, 0) == 0 && ks_container_name_valid(n);
        some_differ |= n && strcmp(n, first) != 0;
        free(n);
    }
    free(first);
    regfree(&re);
    tap_ok(all_ok, "generated names are adjective_surname and valid");
    tap_ok(some_differ, "generated names vary");
    char *retry = ks_container_name_generate(1);
    size_t len = retry ? strlen(retry) : 0;
    tap_ok(len > 0 && retry[len - 1] >= '0' && retry[len - 1] <= '9',
           "a retry appends a digit as Docker does");
    free(retry);
    tap_ok(ks_container_name_valid("web-1.a_b"), "name with - . _ valid");
    tap_ok(ks_container_name_valid("/web"), "leading slash accepted");
    tap_ok(!ks_container_name_valid("x"), "one character is not a name");
    tap_ok(!ks_container_name_valid("-web"), "leading dash refused");
    tap_ok(!ks_container_name_valid("we b"), "space refused");
    tap_ok(!ks_container_name_valid("web/x"), "slash inside refused");
}

static void test_merge(void)
{
    const char *id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    json_object *img = parse("{\"config\":{\"Env\":[\"PATH=/bin\",\"A=img\",\"B=img\"],"
                             "\"Entrypoint\":[\"/ep\"],\"Cmd\":[\"img-cmd\"],"
                             "\"WorkingDir\":\"/w\",\"User\":\"u\",\"Labels\":{\"l1\":\"img\","
                             "\"l2\":\"img\"},\"StopSignal\":\"SIGQUIT\"}}");
    json_object *cfg = parse("{\"Config\":{\"Env\":[\"B=user\",\"C=user\"],"
                             "\"Labels\":{\"l2\":\"user\"}},\"HostConfig\":{}}");
    TAP_EQ_INT(ks_container_config_merge(cfg, img, id, "busybox", NULL), 0, "merge");
    json_object *c = ks_json_get(cfg, "Config");
    json_object *env = ks_json_get(c, "Env");
    TAP_EQ_INT((int)json_object_array_length(env), 4, "env merged");
    TAP_EQ_STR(strv_at(env, 2), "B=user", "container value replaces the image's in place");
    TAP_EQ_STR(strv_at(env, 3), "C=user", "new names appended");
    TAP_EQ_STR(strv_at(ks_json_get(c, "Entrypoint"), 0), "/ep", "entrypoint inherited");
    TAP_EQ_STR(strv_at(ks_json_get(c, "Cmd"), 0), "img-cmd", "cmd inherited");
    TAP_EQ_STR(ks_json_str(c, "WorkingDir"), "/w", "workdir inherited");
    TAP_EQ_STR(ks_json_str(c, "User"), "u", "user inherited");
    TAP_EQ_STR(ks_json_str(c, "StopSignal"), "SIGQUIT", "stop signal inherited");
    TAP_EQ_STR(ks_json_str(ks_json_get(c, "Labels"), "l1"), "img", "image label kept");
    TAP_EQ_STR(ks_json_str(ks_json_get(c, "Labels"), "l2"), "user", "container label wins");
    TAP_EQ_STR(ks_json_str(c, "Hostname"), "0123456789ab", "hostname from the ID");
    TAP_EQ_STR(ks_json_str(c, "Image"), "busybox", "image as given");
    json_object_put(cfg);

    cfg = parse("{\"Config\":{\"Entrypoint\":[\"/other\"]}}");
    ks_container_config_merge(cfg, img, id, "busybox", NULL);
    c = ks_json_get(cfg, "Config");
    TAP_EQ_STR(strv_at(ks_json_get(c, "Entrypoint"), 0), "/other", "entrypoint overridden");
    tap_ok(ks_json_get(c, "Cmd") == NULL, "an overridden entrypoint drops the image's cmd");
    json_object_put(cfg);

    cfg = parse("{\"Config\":{\"Cmd\":[\"x\"],\"Hostname\":\"h\"}}");
    ks_container_config_merge(cfg, img, id, "busybox", NULL);
    c = ks_json_get(cfg, "Config");
    TAP_EQ_STR(strv_at(ks_json_get(c, "Cmd"), 0), "x", "cmd overridden");
    TAP_EQ_STR(strv_at(ks_json_get(c, "Entrypoint"), 0), "/ep", "entrypoint kept with new cmd");
    TAP_EQ_STR(ks_json_str(c, "Hostname"), "h", "-h kept");
    json_object_put(cfg);

    cfg = parse("{\"Config\":{\"Entrypoint\":[\"\"]}}");
    ks_container_config_merge(cfg, img, id, "busybox", NULL);
    c = ks_json_get(cfg, "Config");
    tap_ok(ks_json_get(c, "Entrypoint") == NULL, "--entrypoint \"\" clears the entrypoint");
    TAP_EQ_STR(strv_at(ks_json_get(c, "Cmd"), 0), "img-cmd", "… and keeps the image's cmd");
    json_object_put(cfg);
    json_object_put(img);
}

static char *make_rootfs(void)
{
    char tmpl[] = "/tmp/kiste-test-engine-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (dir == NULL)
        abort();
    char path[512];
    snprintf(path, sizeof(path), "%s/etc", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/etc/passwd", dir);
    FILE *f = fopen(path, "w");
    fputs("root:x:0:0:root:/root:/bin/sh\n# comment\nshort:x\n"
          "alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:100:Bob:/home/bob:/bin/sh\n",
          f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/etc/group", dir);
    f = fopen(path, "w");
    fputs("root:x:0:\nusers:x:100:\nalice:x:1000:\nwheel:x:10:alice,bob\naudio:x:29:bob\n", f);
    fclose(f);
    /* An escape attempt: /etc/group of a second root is a symlink out of it. */
    return strdup(dir);
}

static void test_users(void)
{
    char *root = make_rootfs();
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    uid_t uid = 99;
    gid_t gid = 99;
    gid_t *gids = NULL;
    size_t n = 0;
    char *home = NULL;
    _cleanup_error_ struct ks_error *err = NULL;

    TAP_EQ_INT(ks_container_resolve_user(rootfd, "", &uid, &gid, &gids, &n, &home, NULL), 0,
               "empty user");
    tap_ok(uid == 0 && gid == 0, "empty user is root");
    TAP_EQ_STR(home, "/root", "root's home");
    free(home), home = NULL;
    free(gids), gids = NULL;

    TAP_EQ_INT(ks_container_resolve_user(rootfd, "bob", &uid, &gid, &gids, &n, &home, NULL), 0,
               "by name");
    tap_ok(uid == 1001 && gid == 100, "bob is 1001:100");
    tap_ok(n == 2 && gids[0] == 10 && gids[1] == 29, "supplementary groups from /etc/group");
    TAP_EQ_STR(home, "/home/bob", "bob's home");
    free(home), home = NULL;
    free(gids), gids = NULL;

    TAP_EQ_INT(ks_container_resolve_user(rootfd, "1000", &uid, &gid, NULL, NULL, NULL, NULL), 0,
               "by uid");
    tap_ok(uid == 1000 && gid == 1000, "uid 1000 takes its passwd gid");
    TAP_EQ_INT(ks_container_resolve_user(rootfd, "4242", &uid, &gid, NULL, NULL, &home, NULL), 0,
               "unknown numeric uid");
    tap_ok(uid == 4242 && gid == 0, "unknown uid runs with gid 0");
    TAP_EQ_STR(home, "/", "unknown uid's home is /");
    free(home), home = NULL;
    TAP_EQ_INT(ks_container_resolve_user(rootfd, "alice:wheel", &uid, &gid, NULL, NULL, NULL, NULL),
               0, "name:group");
    tap_ok(uid == 1000 && gid == 10, "alice:wheel is 1000:10");
    TAP_EQ_INT(ks_container_resolve_user(rootfd, "5:6", &uid, &gid, NULL, NULL, NULL, NULL), 0,
               "uid:gid");
    tap_ok(uid == 5 && gid == 6, "5:6");
    TAP_EQ_INT(ks_container_resolve_user(rootfd, "ghost", &uid, &gid, NULL, NULL, NULL, &err),
               -ENOENT, "unknown name");
    tap_ok(err && strstr(err->msg, "unable to find user ghost: no matching entries in passwd"),
           "Docker's message for an unknown user");
    ks_error_free(err);
    err = NULL;
    TAP_EQ_INT(
        ks_container_resolve_user(rootfd, "root:nogroup", &uid, &gid, NULL, NULL, NULL, &err),
        -ENOENT, "unknown group");
    tap_ok(err && strstr(err->msg, "unable to find group nogroup"), "message names the group");

    /* /etc/passwd as a symlink to an absolute path stays inside the root. */
    char path[512];
    snprintf(path, sizeof(path), "%s/etc/passwd", root);
    unlink(path);
    if (symlink("/etc/../../../../etc/passwd.real", path) == 0) {
        snprintf(path, sizeof(path), "%s/etc/passwd.real", root);
        FILE *f = fopen(path, "w");
        fputs("inside:x:777:777::/in:/bin/sh\n", f);
        fclose(f);
        TAP_EQ_INT(ks_container_resolve_user(rootfd, "inside", &uid, &gid, NULL, NULL, NULL, NULL),
                   0, "symlinked passwd resolved in the root");
        tap_ok(uid == 777, "the container's file, not the host's");
        TAP_EQ_INT(ks_container_resolve_user(rootfd, "root", &uid, &gid, NULL, NULL, NULL, NULL),
                   -ENOENT, "the host's root entry is not seen");
    }
    close(rootfd);
    ks_rm_rf_at(AT_FDCWD, root, NULL);
    free(root);
}

static json_object *gen(const char *config, int rootfd, const char *init, struct ks_error **err)
{
    json_object *cfg = parse(config);
    json_object *spec = NULL;
    struct ks_spec_gen_opts o = {
        .id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        .rootfs = "/merged",
        .rootfd = rootfd,
        .init_path = init,
    };
    int r = ks_container_spec_generate(cfg, &o, &spec, err);
    json_object_put(cfg);
    return r < 0 ? NULL : spec;
}

static json_object *find_mount(json_object *spec, const char *dest)
{
    json_object *m = ks_json_get(spec, "mounts");
    for (size_t i = 0; m && i < json_object_array_length(m); i++)
        if (strcmp(ks_json_str(json_object_array_get_idx(m, i), "destination"), dest) == 0)
            return json_object_array_get_idx(m, i);
    return NULL;
}

static void test_spec(void)
{
    char *root = make_rootfs();
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    _cleanup_error_ struct ks_error *err = NULL;
    json_object *s = gen("{\"Config\":{\"Hostname\":\"0123456789ab\",\"Entrypoint\":[\"/ep\"],"
                         "\"Cmd\":[\"a\",\"b\"],\"Env\":[\"X=1\"],\"User\":\"alice\","
                         "\"WorkingDir\":\"/srv\",\"Tty\":true},\"HostConfig\":{}}",
                         rootfd, NULL, &err);
    tap_ok(s != NULL, "spec generated");
    if (err)
        tap_diag("%s", err->msg);
    json_object *p = ks_json_get(s, "process");
    json_object *args = ks_json_get(p, "args");
    tap_ok(args && json_object_array_length(args) == 3 && strcmp(strv_at(args, 0), "/ep") == 0 &&
               strcmp(strv_at(args, 2), "b") == 0,
           "args are entrypoint + cmd");
    json_object *env = ks_json_get(p, "env");
    tap_ok(strv_has(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
           "default PATH");
    tap_ok(strv_has(env, "HOSTNAME=0123456789ab"), "HOSTNAME");
    tap_ok(strv_has(env, "TERM=xterm"), "TERM with a terminal");
    tap_ok(strv_has(env, "X=1"), "config env");
    tap_ok(strv_has(env, "HOME=/home/alice"), "HOME of the user");
    TAP_EQ_INT(ks_json_int(ks_json_get(p, "user"), "uid", -1), 1000, "uid resolved");
    TAP_EQ_INT(ks_json_int(ks_json_get(p, "user"), "gid", -1), 1000, "gid resolved");
    TAP_EQ_STR(ks_json_str(p, "cwd"), "/srv", "cwd");
    tap_ok(ks_json_bool(p, "terminal", false), "terminal");
    TAP_EQ_STR(ks_json_str(s, "hostname"), "0123456789ab", "hostname");
    TAP_EQ_STR(ks_json_str(ks_json_get(s, "root"), "path"), "/merged", "root path");
    json_object *bnd = ks_json_get(ks_json_get(p, "capabilities"), "bounding");
    TAP_EQ_INT((int)json_object_array_length(bnd), 14, "Docker's 14 default capabilities");
    tap_ok(strv_has(bnd, "CAP_CHOWN") && strv_has(bnd, "CAP_AUDIT_WRITE") &&
               !strv_has(bnd, "CAP_SYS_ADMIN"),
           "defaults without SYS_ADMIN");
    json_object *linux_ = ks_json_get(s, "linux");
    tap_ok(ks_json_get(linux_, "seccomp") != NULL, "default seccomp profile");
    tap_ok(strv_has(ks_json_get(linux_, "maskedPaths"), "/proc/kcore") &&
               strv_has(ks_json_get(linux_, "maskedPaths"), "/sys/firmware"),
           "masked paths");
    tap_ok(strv_has(ks_json_get(linux_, "readonlyPaths"), "/proc/sys"), "read-only paths");
    json_object *shm = find_mount(s, "/dev/shm");
    tap_ok(shm && strv_has(ks_json_get(shm, "options"), "size=67108864"), "/dev/shm 64m");
    json_object *sys = find_mount(s, "/sys");
    tap_ok(sys && strv_has(ks_json_get(sys, "options"), "ro"), "sysfs read-only");
    tap_ok(find_mount(s, "/dev/mqueue") && find_mount(s, "/dev/pts") &&
               find_mount(s, "/sys/fs/cgroup"),
           "mqueue, pts and cgroup mounted");
    bool netns = false;
    json_object *ns = ks_json_get(linux_, "namespaces");
    for (size_t i = 0; ns && i < json_object_array_length(ns); i++)
        netns |= strcmp(ks_json_str(json_object_array_get_idx(ns, i), "type"), "network") == 0;
    tap_ok(netns, "a network namespace of its own");
    tap_ok(!ks_json_bool(p, "noNewPrivileges", true), "no-new-privileges off by default");
    json_object_put(s);

    s = gen("{\"Config\":{\"Cmd\":[\"sh\"]},\"HostConfig\":{\"CapDrop\":[\"ALL\"],"
            "\"CapAdd\":[\"chown\",\"CAP_KILL\"],\"ReadonlyRootfs\":true,"
            "\"SecurityOpt\":[\"seccomp=unconfined\",\"no-new-privileges\"],"
            "\"Tmpfs\":{\"/run\":\"size=1m,exec\"},\"Memory\":67108864,"
            "\"MemoryReservation\":1048576,\"NanoCpus\":1500000000,\"CpuShares\":512,"
            "\"CpusetCpus\":\"0\",\"PidsLimit\":50,\"OomScoreAdj\":100,"
            "\"Ulimits\":[{\"Name\":\"nofile\",\"Soft\":100,\"Hard\":200}],\"Init\":true}}",
            rootfd, "/usr/bin/kiste-init", &err);
    if (err)
        tap_diag("%s", err->msg);
    tap_ok(s != NULL, "spec with host options");
    p = ks_json_get(s, "process");
    bnd = ks_json_get(ks_json_get(p, "capabilities"), "bounding");
    tap_ok(bnd && json_object_is_type(bnd, json_type_array) && json_object_array_length(bnd) == 2 &&
               strv_has(bnd, "CAP_CHOWN") && strv_has(bnd, "CAP_KILL"),
           "drop ALL then add");
    linux_ = ks_json_get(s, "linux");
    tap_ok(ks_json_get(linux_, "seccomp") == NULL, "seccomp=unconfined");
    tap_ok(ks_json_bool(p, "noNewPrivileges", false), "no-new-privileges");
    tap_ok(ks_json_bool(ks_json_get(s, "root"), "readonly", false), "read-only root");
    json_object *tmp = find_mount(s, "/run");
    tap_ok(tmp && strv_has(ks_json_get(tmp, "options"), "size=1m") &&
               strv_has(ks_json_get(tmp, "options"), "exec") &&
               !strv_has(ks_json_get(tmp, "options"), "noexec"),
           "--tmpfs with options, exec replacing noexec");
    json_object *res = ks_json_get(linux_, "resources");
    TAP_EQ_INT(ks_json_int(ks_json_get(res, "memory"), "limit", 0), 67108864, "memory limit");
    TAP_EQ_INT(ks_json_int(ks_json_get(res, "memory"), "reservation", 0), 1048576,
               "memory reservation");
    TAP_EQ_INT(ks_json_int(ks_json_get(res, "cpu"), "quota", 0), 150000, "--cpus 1.5 quota");
    TAP_EQ_INT(ks_json_int(ks_json_get(res, "cpu"), "period", 0), 100000, "cpu period");
    TAP_EQ_INT(ks_json_int(ks_json_get(res, "cpu"), "shares", 0), 512, "cpu shares");
    TAP_EQ_STR(ks_json_str(ks_json_get(res, "cpu"), "cpus"), "0", "cpuset");
    TAP_EQ_INT(ks_json_int(ks_json_get(res, "pids"), "limit", 0), 50, "pids limit");
    TAP_EQ_INT(ks_json_int(p, "oomScoreAdj", 0), 100, "oom score adj");
    json_object *rl = json_object_array_get_idx(ks_json_get(p, "rlimits"), 0);
    TAP_EQ_STR(ks_json_str(rl, "type"), "RLIMIT_NOFILE", "ulimit type");
    TAP_EQ_INT(ks_json_int(rl, "hard", 0), 200, "ulimit hard");
    args = ks_json_get(p, "args");
    tap_ok(strcmp(strv_at(args, 0), "/dev/init") == 0 && strcmp(strv_at(args, 1), "--") == 0 &&
               strcmp(strv_at(args, 2), "sh") == 0,
           "--init prepends /dev/init --");
    json_object *im = find_mount(s, "/dev/init");
    TAP_EQ_STR(ks_json_str(im, "source"), "/usr/bin/kiste-init", "kiste-init bound at /dev/init");
    json_object_put(s);

    s = gen("{\"Config\":{\"Cmd\":[\"sh\"]},\"HostConfig\":{\"Privileged\":true}}", rootfd, NULL,
            NULL);
    linux_ = ks_json_get(s, "linux");
    bnd = ks_json_get(ks_json_get(ks_json_get(s, "process"), "capabilities"), "bounding");
    tap_ok(strv_has(bnd, "CAP_SYS_ADMIN"), "privileged has SYS_ADMIN");
    tap_ok(ks_json_get(linux_, "seccomp") == NULL && ks_json_get(linux_, "maskedPaths") == NULL,
           "privileged: no seccomp, no masked paths");
    sys = find_mount(s, "/sys");
    tap_ok(sys && strv_has(ks_json_get(sys, "options"), "rw"), "privileged: sysfs writable");
    tap_ok(json_object_array_length(ks_json_get(linux_, "devices")) > 3,
           "privileged: the host's devices");
    json_object_put(s);

    ks_error_free(err);
    err = NULL;
    s = gen("{\"Config\":{},\"HostConfig\":{}}", rootfd, NULL, &err);
    tap_ok(s == NULL && err && strcmp(err->msg, "No command specified") == 0,
           "no command is Docker's error");
    ks_error_free(err);
    err = NULL;
    s = gen("{\"Config\":{\"Cmd\":[\"sh\"]},\"HostConfig\":{\"CapAdd\":[\"CAP_BOGUS\"]}}", rootfd,
            NULL, &err);
    tap_ok(s == NULL && err && strstr(err->msg, "unknown capability"), "unknown capability");
    ks_error_free(err);
    err = NULL;
    s = gen("{\"Config\":{\"Cmd\":[\"sh\"],\"User\":\"nobody\"},\"HostConfig\":{}}", rootfd, NULL,
            &err);
    tap_ok(s == NULL && err && strstr(err->msg, "unable to find user nobody"),
           "an unknown user fails the generation");
    close(rootfd);
    ks_rm_rf_at(AT_FDCWD, root, NULL);
    free(root);
}

static void test_sizes_signals(void)
{
    int64_t v = 0;
    TAP_EQ_INT(ks_parse_size("64m", &v), 0, "64m");
    TAP_EQ_INT(v, 64 << 20, "64m in bytes");
    ks_parse_size("1.5g", &v);
    TAP_EQ_INT(v, (int64_t)3 << 29, "1.5g");
    ks_parse_size("512KiB", &v);
    TAP_EQ_INT(v, 512 << 10, "512KiB");
    ks_parse_size("100", &v);
    TAP_EQ_INT(v, 100, "bytes");
    TAP_EQ_INT(ks_parse_size("12q", &v), -EINVAL, "bad unit");
    TAP_EQ_INT(ks_parse_size("-1m", &v), -EINVAL, "negative");
    int sig = 0;
    TAP_EQ_INT(ks_signal_parse("SIGTERM", &sig), 0, "SIGTERM");
    TAP_EQ_INT(sig, SIGTERM, "SIGTERM value");
    ks_signal_parse("usr1", &sig);
    TAP_EQ_INT(sig, SIGUSR1, "usr1 value");
    ks_signal_parse("9", &sig);
    TAP_EQ_INT(sig, 9, "numeric");
    TAP_EQ_INT(ks_signal_parse("SIGNOPE", &sig), -EINVAL, "unknown signal");
    TAP_EQ_INT(ks_signal_parse("99", &sig), -EINVAL, "out of range");
    TAP_EQ_INT(ks_signal_parse("0", &sig), -EINVAL, "zero");
    TAP_EQ_INT(ks_signal_parse("9x", &sig), -EINVAL, "number with junk");
    ks_signal_parse("RTMIN+2", &sig);
    TAP_EQ_INT(sig, SIGRTMIN + 2, "RTMIN+2");
    ks_signal_parse("SIGRTMAX-1", &sig);
    TAP_EQ_INT(sig, SIGRTMAX - 1, "SIGRTMAX-1");
    TAP_EQ_INT(ks_signal_parse("RTMIN-1", &sig), -EINVAL, "below RTMIN");
    TAP_EQ_INT(ks_signal_parse("RTMAX+1", &sig), -EINVAL, "above RTMAX");
}

/* Runs last: it lowers this process's hard RLIMIT_NOFILE to have a known limit to exceed. */
static void test_ulimits_clamp(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t hard = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 1000 ? 1000 : rl.rlim_max;
    rl.rlim_max = hard;
    if (rl.rlim_cur > hard)
        rl.rlim_cur = hard;
    TAP_EQ_INT(setrlimit(RLIMIT_NOFILE, &rl), 0, "lower the hard nofile limit");
    json_object *hc = parse("{\"Ulimits\":[{\"Name\":\"nofile\",\"Soft\":1048576,"
                            "\"Hard\":1048576},{\"Name\":\"core\",\"Soft\":1,\"Hard\":2},"
                            "{\"Name\":\"nofile\",\"Soft\":10,\"Hard\":-1}]}");
    char **warnings = NULL;
    struct ks_error *err = NULL;
    TAP_EQ_INT(ks_container_ulimits_clamp(hc, &warnings, &err), 2, "two clamped");
    json_object *a = ks_json_get(hc, "Ulimits");
    json_object *u0 = json_object_array_get_idx(a, 0), *u2 = json_object_array_get_idx(a, 2);
    TAP_EQ_INT(ks_json_int(u0, "Soft", 0), (int64_t)hard, "soft clamped");
    TAP_EQ_INT(ks_json_int(u0, "Hard", 0), (int64_t)hard, "hard clamped");
    TAP_EQ_INT(ks_json_int(u2, "Soft", 0), 10, "a soft limit below stays");
    TAP_EQ_INT(ks_json_int(u2, "Hard", 0), (int64_t)hard, "unlimited clamped");
    tap_ok(warnings && warnings[0] && strstr(warnings[0], "nofile=1048576:1048576") &&
               strstr(warnings[0], "using nofile=1000:1000") && warnings[2] == NULL,
           "warnings name the limit and the value used: %s", warnings ? warnings[0] : "");
    ks_strv_free(warnings);
    json_object_put(hc);
    hc = parse("{\"Ulimits\":[{\"Name\":\"bogus\",\"Soft\":1,\"Hard\":1}]}");
    tap_ok(ks_container_ulimits_clamp(hc, NULL, &err) < 0 && err, "unknown limit refused");
    ks_error_free(err);
    json_object_put(hc);
}

int main(void)
{
    tap_plan_auto();
    test_names();
    test_merge();
    test_users();
    test_spec();
    test_sizes_signals();
    test_ulimits_clamp();
    return tap_done();
}
