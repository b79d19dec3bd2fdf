/* The cgroup module: a fake v2 tree in a temporary directory, the real hierarchies of this
 * machine (as root), and the eBPF device program on a real v2 hierarchy. */
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/magic.h>

#include "base/fs.h"
#include "base/json.h"
#include "oci/cgroup.h"

static void put(const char *dir, const char *file, const char *content)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", dir, file);
    FILE *f = fopen(p, "we");
    if (f == NULL) {
        tap_diag("cannot create %s: %m", p);
        return;
    }
    fputs(content, f);
    fclose(f);
}

/* The content of dir/file without trailing newlines; a static buffer. */
static const char *get(const char *dir, const char *file)
{
    static char buf[4096];
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", dir, file);
    FILE *f = fopen(p, "re");
    if (f == NULL)
        return "(missing)";
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    return buf;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static json_object *parse(const char *s)
{
    json_object *o = NULL;
    struct ks_error *err = NULL;
    if (ks_json_parse(s, strlen(s), &o, &err) < 0) {
        tap_diag("bad test JSON: %s", err->msg);
        ks_error_free(err);
        abort();
    }
    return o;
}

static void test_paths(void)
{
    static const struct {
        const char *in, *id, *want;
    } cases[] = {
        {NULL, "abc", "kiste/abc"},
        {"", "abc", "kiste/abc"},
        {"/foo/bar", "abc", "foo/bar"},
        {"/foo//bar/", "abc", "foo/bar"},
        {"/../../etc", "abc", "etc"},
        {"/", "abc", "kiste/abc"},
        {"rel/path", "abc", "rel/path"},
        {"machine.slice:kiste:abc", "abc", "machine.slice/kiste-abc.scope"},
        {"a-b.slice:pre:x", "x", "a.slice/a-b.slice/pre-x.scope"},
        {":kiste:abc", "abc", "system.slice/kiste-abc.scope"},
        {"user.slice::abc", "abc", "user.slice/abc.scope"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        _cleanup_free_ char *got = ks_cgroup_path_for(cases[i].in, cases[i].id);
        TAP_EQ_STR(got, cases[i].want, "path_for(%s)", cases[i].in ? cases[i].in : "NULL");
    }
}

static const char *const fake_leaf_files[][2] = {
    {"cgroup.procs", ""},
    {"cgroup.controllers", "cpuset cpu io memory hugetlb pids"},
    {"cgroup.subtree_control", ""},
    {"cgroup.freeze", "0"},
    {"cgroup.events", "populated 1\nfrozen 0"},
    {"memory.max", "max"},
    {"memory.low", "0"},
    {"memory.high", "max"},
    {"memory.swap.max", "max"},
    {"memory.current", "4096"},
    {"cpu.weight", "100"},
    {"cpu.max", "max 100000"},
    {"cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 0"},
    {"pids.max", "max"},
    {"pids.current", "1"},
    {"io.weight", "default 100"},
    {"io.max", ""},
    {"hugetlb.2MB.max", "max"},
    {"cpuset.cpus", ""},
    {"cpuset.mems", ""},
};

static void test_fake_v2(void)
{
    char tmpl[] = "/tmp/kiste-cgtest-XXXXXX";
    char *root = mkdtemp(tmpl);
    if (root == NULL) {
        tap_ok(false, "mkdtemp: %m");
        return;
    }
    put(root, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma");
    put(root, "cgroup.subtree_control", "");
    put(root, "cgroup.procs", "");

    char leaf[PATH_MAX], sub[PATH_MAX], mid[PATH_MAX];
    snprintf(mid, sizeof(mid), "%s/kiste", root);
    snprintf(leaf, sizeof(leaf), "%s/kiste/c1", root);
    snprintf(sub, sizeof(sub), "%s/kiste/c1/sub", root);
    mkdir(mid, 0755);
    mkdir(leaf, 0755);
    mkdir(sub, 0755);
    for (size_t i = 0; i < sizeof(fake_leaf_files) / sizeof(fake_leaf_files[0]); i++)
        put(leaf, fake_leaf_files[i][0], fake_leaf_files[i][1]);
    put(sub, "cgroup.procs", "777\n");

    struct ks_error *err = NULL;
    struct ks_cgroup_layout *l = NULL;
    int r = ks_cgroup_layout_detect(root, &l, &err);
    tap_ok(r == 0, "fake v2: detect %s", err ? err->msg : "");
    if (r < 0)
        goto out;
    TAP_EQ_INT(l->mode, KS_CGROUP_V2, "fake v2: mode is V2");
    TAP_EQ_STR(l->v2, root, "fake v2: v2 mount is the root");

    json_object *res = parse("{\"memory\":{\"limit\":67108864,\"reservation\":33554432,"
                             "\"swap\":134217728},"
                             "\"cpu\":{\"shares\":512,\"quota\":50000,\"period\":100000,"
                             "\"cpus\":\"0\",\"mems\":\"0\"},"
                             "\"pids\":{\"limit\":10},"
                             "\"blockIO\":{\"weight\":500,\"throttleReadBpsDevice\":"
                             "[{\"major\":8,\"minor\":0,\"rate\":1048576}]},"
                             "\"hugepageLimits\":[{\"pageSize\":\"2MB\",\"limit\":4194304}],"
                             "\"unified\":{\"memory.high\":\"50000000\"}}");
    struct ks_cgroup *cg = NULL;
    r = ks_cgroup_create(l, "/kiste/c1", res, 12345, &cg, &err);
    json_object_put(res);
    tap_ok(r == 0, "fake v2: create %s", err ? err->msg : "");
    if (r < 0)
        goto out;
    TAP_EQ_STR(ks_cgroup_get_path(cg), "kiste/c1", "fake v2: path kept relative");
    TAP_EQ_STR(get(leaf, "memory.max"), "67108864", "fake v2: memory.max");
    TAP_EQ_STR(get(leaf, "memory.low"), "33554432", "fake v2: memory.low from reservation");
    TAP_EQ_STR(get(leaf, "memory.swap.max"), "67108864", "fake v2: memory.swap.max = swap - mem");
    TAP_EQ_STR(get(leaf, "cpu.weight"), "20", "fake v2: cpu.weight from 512 shares");
    TAP_EQ_STR(get(leaf, "cpu.max"), "50000 100000", "fake v2: cpu.max");
    TAP_EQ_STR(get(leaf, "cpuset.cpus"), "0", "fake v2: cpuset.cpus");
    TAP_EQ_STR(get(leaf, "pids.max"), "10", "fake v2: pids.max");
    TAP_EQ_STR(get(leaf, "io.weight"), "default 4950", "fake v2: io.weight from blkio weight");
    TAP_EQ_STR(get(leaf, "io.max"), "8:0 rbps=1048576", "fake v2: io.max");
    TAP_EQ_STR(get(leaf, "hugetlb.2MB.max"), "4194304", "fake v2: hugetlb.2MB.max");
    TAP_EQ_STR(get(leaf, "memory.high"), "50000000", "fake v2: unified written verbatim");
    TAP_EQ_STR(get(leaf, "cgroup.procs"), "12345", "fake v2: pid moved in");
    const char *sc = get(root, "cgroup.subtree_control");
    tap_ok(strstr(sc, "+memory") && strstr(sc, "+cpu") && strstr(sc, "+pids") &&
               strstr(sc, "+io") && strstr(sc, "+hugetlb") && strstr(sc, "+cpuset") &&
               !strstr(sc, "rdma"),
           "fake v2: needed controllers enabled at the top (%s)", sc);

    res = parse("{\"memory\":{\"limit\":-1},\"pids\":{\"limit\":-1},"
                "\"cpu\":{\"shares\":1024,\"period\":200000}}");
    r = ks_cgroup_update(cg, res, &err);
    json_object_put(res);
    tap_ok(r == 0, "fake v2: update %s", err ? err->msg : "");
    TAP_EQ_STR(get(leaf, "memory.max"), "max", "fake v2: update memory -1 -> max");
    TAP_EQ_STR(get(leaf, "pids.max"), "max", "fake v2: update pids -1 -> max");
    TAP_EQ_STR(get(leaf, "cpu.weight"), "39", "fake v2: update cpu.weight from 1024 shares");
    TAP_EQ_STR(get(leaf, "cpu.max"), "50000 200000", "fake v2: update period keeps the quota");

    res = parse("{\"memory\":{\"limit\":1048576,\"swap\":524288}}");
    r = ks_cgroup_update(cg, res, &err);
    json_object_put(res);
    tap_ok(r < 0 && err && strstr(err->msg, "swap"), "fake v2: swap below memory rejected (%s)",
           err ? err->msg : "");
    ks_error_free(err);
    err = NULL;

    /* Freezing: a real kernel reports "frozen 1" once every task stopped. */
    put(leaf, "cgroup.events", "populated 1\nfrozen 1\n");
    r = ks_cgroup_freeze(cg, true, &err);
    tap_ok(r == 0, "fake v2: freeze %s", err ? err->msg : "");
    TAP_EQ_STR(get(leaf, "cgroup.freeze"), "1", "fake v2: cgroup.freeze = 1");
    bool frozen = false;
    r = ks_cgroup_is_frozen(cg, &frozen, &err);
    tap_ok(r == 0 && frozen, "fake v2: is_frozen");
    put(leaf, "cgroup.events", "populated 1\nfrozen 0\n");
    r = ks_cgroup_freeze(cg, false, &err);
    tap_ok(r == 0, "fake v2: thaw %s", err ? err->msg : "");
    TAP_EQ_STR(get(leaf, "cgroup.freeze"), "0", "fake v2: cgroup.freeze = 0");

    pid_t *pids = NULL;
    size_t n = 0;
    r = ks_cgroup_pids(cg, &pids, &n, &err);
    tap_ok(r == 0 && n == 2 &&
               ((pids[0] == 12345 && pids[1] == 777) || (pids[0] == 777 && pids[1] == 12345)),
           "fake v2: pids reads cgroup.procs recursively (%zu)", n);
    free(pids);

    json_object *stats = NULL;
    r = ks_cgroup_stats(cg, &stats, &err);
    tap_ok(r == 0, "fake v2: stats %s", err ? err->msg : "");
    if (r == 0) {
        TAP_EQ_INT(ks_json_int(ks_json_get(stats, "memory"), "usage", -2), 4096,
                   "fake v2: stats memory.usage");
        TAP_EQ_INT(ks_json_int(ks_json_get(stats, "memory"), "limit", -2), -1,
                   "fake v2: stats memory.limit max -> -1");
        TAP_EQ_INT(ks_json_int(ks_json_get(stats, "pids"), "current", -2), 1,
                   "fake v2: stats pids.current");
        TAP_EQ_INT(ks_json_int(ks_json_get(stats, "cpu"), "usage_ns", -2), 10000,
                   "fake v2: stats cpu usage in ns");
        json_object_put(stats);
    }
    ks_cgroup_free(cg);
    cg = NULL;

    /* A missing file: the message names the file, the value and the directory; the new
     * directory is removed again. */
    res = parse("{\"memory\":{\"limit\":1048576}}");
    r = ks_cgroup_create(l, "kiste/c2", res, 0, &cg, &err);
    json_object_put(res);
    char c2[PATH_MAX];
    snprintf(c2, sizeof(c2), "%s/kiste/c2", root);
    tap_ok(r == -ENOENT && err && strstr(err->msg, "write `memory.max` = `1048576` in ") &&
               strstr(err->msg, c2),
           "fake v2: error names file and value (%s)", err ? err->msg : "");
    tap_ok(!exists(c2), "fake v2: failed create removes what it made");
    ks_error_free(err);
    err = NULL;

    r = ks_cgroup_create(l, "../escape", NULL, 0, &cg, &err);
    tap_ok(r < 0, "fake v2: path with .. rejected");
    ks_error_free(err);
    err = NULL;

    r = ks_cgroup_open(l, "kiste/c1", &cg, &err);
    tap_ok(r == 0, "fake v2: open existing %s", err ? err->msg : "");
    ks_cgroup_free(cg);
    cg = NULL;
    r = ks_cgroup_open(l, "kiste/none", &cg, &err);
    tap_ok(r == -ENOENT, "fake v2: open missing fails");
    ks_error_free(err);
    err = NULL;

out:
    ks_error_free(err);
    ks_cgroup_layout_free(l);
    struct ks_error *e2 = NULL;
    ks_rm_rf_at(AT_FDCWD, root, &e2);
    ks_error_free(e2);
}

static void test_fake_hybrid_detect(void)
{
    char tmpl[] = "/tmp/kiste-cgtest-XXXXXX";
    char *root = mkdtemp(tmpl);
    if (root == NULL) {
        tap_ok(false, "mkdtemp: %m");
        return;
    }
    char p[PATH_MAX];
    static const char *const dirs[] = {"memory", "cpu,cpuacct", "pids", "freezer", "unified"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", root, dirs[i]);
        mkdir(p, 0755);
        put(p, "cgroup.procs", "");
    }
    snprintf(p, sizeof(p), "%s/unified", root);
    put(p, "cgroup.controllers", "hugetlb");
    snprintf(p, sizeof(p), "%s/cpu", root);
    if (symlink("cpu,cpuacct", p) < 0)
        tap_diag("symlink: %m");

    struct ks_error *err = NULL;
    struct ks_cgroup_layout *l = NULL;
    int r = ks_cgroup_layout_detect(root, &l, &err);
    tap_ok(r == 0, "fake hybrid: detect %s", err ? err->msg : "");
    if (r == 0) {
        TAP_EQ_INT(l->mode, KS_CGROUP_HYBRID, "fake hybrid: mode is HYBRID");
        tap_ok(l->v1[KS_CG_CPU] && l->v1[KS_CG_CPUACCT] &&
                   strcmp(l->v1[KS_CG_CPU], l->v1[KS_CG_CPUACCT]) == 0,
               "fake hybrid: cpu and cpuacct comounted");
        tap_ok(l->v1[KS_CG_MEMORY] && !l->v1[KS_CG_HUGETLB] && l->v2,
               "fake hybrid: memory on v1, v2 present");
        json_object *res = parse("{\"unified\":{\"memory.high\":\"1\"}}");
        struct ks_cgroup_layout v1 = *l;
        v1.mode = KS_CGROUP_V1;
        v1.v2 = NULL;
        struct ks_cgroup *cg = NULL;
        r = ks_cgroup_create(&v1, "kiste/u", res, 0, &cg, &err);
        tap_ok(r < 0 && err && strstr(err->msg, "unified"), "v1: unified rejected (%s)",
               err ? err->msg : "");
        json_object_put(res);
        ks_cgroup_free(cg);
    }
    ks_error_free(err);
    ks_cgroup_layout_free(l);
    struct ks_error *e2 = NULL;
    ks_rm_rf_at(AT_FDCWD, root, &e2);
    ks_error_free(e2);
}

/* A child that waits for commands: 'p' probes /dev/null and /dev/zero and answers with three
 * bytes (errno of each open, 0 when it worked), 'e' echoes, 't' execs /bin/true. */
struct child {
    pid_t pid;
    int cmd, reply;
};

static bool child_start(struct child *c)
{
    int a[2], b[2];
    if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
        return false;
    c->pid = fork();
    if (c->pid < 0)
        return false;
    if (c->pid == 0) {
        close(a[1]);
        close(b[0]);
        char ch;
        while (read(a[0], &ch, 1) == 1) {
            if (ch == 'p') {
                unsigned char out[3];
                int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                out[0] = fd < 0 ? (unsigned char)errno : 0;
                if (fd >= 0)
                    close(fd);
                fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
                out[1] = fd < 0 ? (unsigned char)errno : 0;
                if (fd >= 0)
                    close(fd);
                fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
                out[2] = fd < 0 ? (unsigned char)errno : 0;
                if (fd >= 0)
                    close(fd);
                if (write(b[1], out, 3) != 3)
                    _exit(1);
            } else if (ch == 'e') {
                if (write(b[1], "e", 1) != 1)
                    _exit(1);
            } else if (ch == 't') {
                execl("/bin/true", "true", (char *)NULL);
                _exit(127);
            }
        }
        _exit(0);
    }
    close(a[0]);
    close(b[1]);
    c->cmd = a[1];
    c->reply = b[0];
    return true;
}

/* Sends cmd and waits up to ms for n reply bytes. */
static bool child_ask(struct child *c, char cmd, unsigned char *out, size_t n, int ms)
{
    if (write(c->cmd, &cmd, 1) != 1)
        return false;
    size_t got = 0;
    while (got < n) {
        struct pollfd pfd = {.fd = c->reply, .events = POLLIN};
        if (poll(&pfd, 1, ms) <= 0)
            return false;
        ssize_t k = read(c->reply, out + got, n - got);
        if (k <= 0)
            return false;
        got += (size_t)k;
    }
    return true;
}

static void child_close(struct child *c)
{
    close(c->cmd);
    close(c->reply);
}

/* Whether /proc/pid/cgroup has a line whose controller list contains ctrl (or the v2 line for
 * ctrl "") with the path /path. */
static bool proc_in_cgroup(pid_t pid, const char *ctrl, const char *path)
{
    char p[64], line[1024];
    snprintf(p, sizeof(p), "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(p, "re");
    if (f == NULL)
        return false;
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        const char *ctrls = c1 + 1;
        bool match = ctrl[0] == '\0' ? ctrls[0] == '\0' : false;
        if (ctrl[0]) {
            char buf[256];
            snprintf(buf, sizeof(buf), ",%s,", ctrls);
            char want[64];
            snprintf(want, sizeof(want), ",%s,", ctrl);
            match = strstr(buf, want) != NULL;
        }
        if (match && c2[1] == '/' && strcmp(c2 + 2, path) == 0)
            found = true;
    }
    fclose(f);
    return found;
}

/* Asserts that neither the cgroup nor its top-level parent is left in any hierarchy. */
static void check_gone(const struct ks_cgroup_layout *l, const char *top, const char *what)
{
    const char *mounts[KS_CG__COUNT + 2];
    size_t n = 0;
    for (size_t c = 0; c < KS_CG__COUNT; c++)
        if (l->v1[c])
            mounts[n++] = l->v1[c];
    if (l->v2)
        mounts[n++] = l->v2;
    char sd[PATH_MAX];
    snprintf(sd, sizeof(sd), "%s/systemd", l->root);
    if (l->mode != KS_CGROUP_V2 && exists(sd))
        mounts[n++] = sd;
    bool left = false;
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", mounts[i], top);
        if (exists(p)) {
            tap_diag("left behind: %s", p);
            left = true;
        }
    }
    tap_ok(!left, "%s: no directory left in any hierarchy", what);
}

static void test_real(void)
{
    struct ks_error *err = NULL;
    struct ks_cgroup_layout *l = NULL;
    int r = ks_cgroup_layout_detect("/sys/fs/cgroup", &l, &err);
    tap_ok(r == 0, "real: detect %s", err ? err->msg : "");
    if (r < 0) {
        ks_error_free(err);
        return;
    }
    tap_diag("real layout: mode %d, v2 %s, memory %s", l->mode, l->v2 ? l->v2 : "-",
             l->v1[KS_CG_MEMORY] ? l->v1[KS_CG_MEMORY] : "-");
    if (l->mode == KS_CGROUP_V2 || !l->v1[KS_CG_MEMORY] || !l->v1[KS_CG_PIDS] ||
        !l->v1[KS_CG_CPU] || !l->v1[KS_CG_FREEZER] || !l->v1[KS_CG_DEVICES]) {
        tap_skip("needs v1 memory, pids, cpu, freezer, devices", "real v1 tests");
        ks_cgroup_layout_free(l);
        return;
    }
    TAP_EQ_INT(l->mode, KS_CGROUP_HYBRID, "real: this machine's layout is hybrid");

    char top[64], path[128];
    snprintf(top, sizeof(top), "kiste-test-%d", (int)getpid());
    snprintf(path, sizeof(path), "%s/c1", top);

    struct child ch;
    if (!child_start(&ch)) {
        tap_ok(false, "real: fork child: %m");
        ks_cgroup_layout_free(l);
        return;
    }
    json_object *res = parse("{\"memory\":{\"limit\":67108864},\"pids\":{\"limit\":10},"
                             "\"cpu\":{\"shares\":512},"
                             "\"devices\":[{\"allow\":false,\"access\":\"rwm\"},"
                             "{\"allow\":true,\"access\":\"rwm\"},"
                             "{\"allow\":false,\"type\":\"c\",\"major\":1,\"minor\":3,"
                             "\"access\":\"r\"}]}");
    struct ks_cgroup *cg = NULL;
    r = ks_cgroup_create(l, path, res, ch.pid, &cg, &err);
    json_object_put(res);
    tap_ok(r == 0, "real: create %s %s", path, err ? err->msg : "");
    if (r < 0) {
        kill(ch.pid, SIGKILL);
        waitpid(ch.pid, NULL, 0);
        child_close(&ch);
        check_gone(l, top, "real (failed create)");
        goto out;
    }
    char mem[PATH_MAX], pidsd[PATH_MAX], cpud[PATH_MAX], frz[PATH_MAX];
    snprintf(mem, sizeof(mem), "%s/%s", l->v1[KS_CG_MEMORY], path);
    snprintf(pidsd, sizeof(pidsd), "%s/%s", l->v1[KS_CG_PIDS], path);
    snprintf(cpud, sizeof(cpud), "%s/%s", l->v1[KS_CG_CPU], path);
    snprintf(frz, sizeof(frz), "%s/%s", l->v1[KS_CG_FREEZER], path);
    TAP_EQ_STR(get(mem, "memory.limit_in_bytes"), "67108864", "real: memory.limit_in_bytes");
    TAP_EQ_STR(get(pidsd, "pids.max"), "10", "real: pids.max");
    TAP_EQ_STR(get(cpud, "cpu.shares"), "512", "real: cpu.shares");
    if (l->v1[KS_CG_CPUSET]) {
        char cs[PATH_MAX];
        snprintf(cs, sizeof(cs), "%s/%s", l->v1[KS_CG_CPUSET], path);
        tap_ok(strcmp(get(cs, "cpuset.cpus"), "") != 0, "real: cpuset.cpus copied from parent");
    }
    tap_ok(proc_in_cgroup(ch.pid, "memory", path), "real: child in memory:/%s", path);
    tap_ok(proc_in_cgroup(ch.pid, "pids", path), "real: child in pids:/%s", path);
    tap_ok(proc_in_cgroup(ch.pid, "freezer", path), "real: child in freezer:/%s", path);
    if (l->v2)
        tap_ok(proc_in_cgroup(ch.pid, "", path), "real: child in the v2 hierarchy too");
    tap_ok(proc_in_cgroup(ch.pid, "name=systemd", path), "real: child in name=systemd");

    unsigned char probe[3] = {0xff, 0xff, 0xff};
    bool ok = child_ask(&ch, 'p', probe, 3, 5000);
    tap_ok(ok && probe[0] == EPERM && probe[1] == 0 && probe[2] == 0,
           "real: v1 device rules: /dev/null read denied, write and /dev/zero allowed "
           "(%d %d %d)",
           probe[0], probe[1], probe[2]);

    pid_t *pids = NULL;
    size_t n = 0;
    r = ks_cgroup_pids(cg, &pids, &n, &err);
    tap_ok(r == 0 && n == 1 && pids[0] == ch.pid, "real: pids lists the child");
    free(pids);

    json_object *stats = NULL;
    r = ks_cgroup_stats(cg, &stats, &err);
    tap_ok(r == 0, "real: stats %s", err ? err->msg : "");
    if (r == 0) {
        TAP_EQ_INT(ks_json_int(ks_json_get(stats, "memory"), "limit", -2), 67108864,
                   "real: stats memory limit");
        TAP_EQ_INT(ks_json_int(ks_json_get(stats, "pids"), "current", -2), 1,
                   "real: stats pids current");
        tap_ok(ks_json_int(ks_json_get(stats, "cpu"), "usage_ns", -2) >= 0,
               "real: stats cpu usage");
        json_object_put(stats);
    }

    r = ks_cgroup_freeze(cg, true, &err);
    tap_ok(r == 0, "real: freeze %s", err ? err->msg : "");
    TAP_EQ_STR(get(frz, "freezer.state"), "FROZEN", "real: freezer.state FROZEN");
    bool frozen = false;
    ks_cgroup_is_frozen(cg, &frozen, &err);
    tap_ok(frozen, "real: is_frozen");
    unsigned char e = 0;
    tap_ok(!child_ask(&ch, 'e', &e, 1, 300), "real: frozen child does not answer");
    r = ks_cgroup_freeze(cg, false, &err);
    tap_ok(r == 0, "real: thaw %s", err ? err->msg : "");
    TAP_EQ_STR(get(frz, "freezer.state"), "THAWED", "real: freezer.state THAWED");
    struct pollfd pfd = {.fd = ch.reply, .events = POLLIN};
    tap_ok(poll(&pfd, 1, 5000) == 1 && read(ch.reply, &e, 1) == 1 && e == 'e',
           "real: thawed child answers");

    res = parse("{\"pids\":{\"limit\":20},\"memory\":{\"limit\":134217728}}");
    r = ks_cgroup_update(cg, res, &err);
    json_object_put(res);
    tap_ok(r == 0, "real: update %s", err ? err->msg : "");
    TAP_EQ_STR(get(pidsd, "pids.max"), "20", "real: updated pids.max");
    TAP_EQ_STR(get(mem, "memory.limit_in_bytes"), "134217728", "real: updated memory limit");

    r = ks_cgroup_kill_all(cg, SIGKILL, &err);
    tap_ok(r == 0, "real: kill_all %s", err ? err->msg : "");
    int status = 0;
    tap_ok(waitpid(ch.pid, &status, 0) == ch.pid && WIFSIGNALED(status) &&
               WTERMSIG(status) == SIGKILL,
           "real: child killed by SIGKILL");
    child_close(&ch);

    r = ks_cgroup_destroy(cg, &err);
    tap_ok(r == 0, "real: destroy %s", err ? err->msg : "");
    ks_cgroup_free(cg);
    cg = NULL;
    check_gone(l, top, "real");

    /* The runtime's bench: a 1 MiB limit for a process that only runs true works because the
     * limit is set before the process moves in. */
    if (!child_start(&ch)) {
        tap_ok(false, "real: fork child: %m");
        goto out;
    }
    res = parse("{\"memory\":{\"limit\":1048576}}");
    r = ks_cgroup_create(l, path, res, ch.pid, &cg, &err);
    json_object_put(res);
    tap_ok(r == 0, "real: 1 MiB limit %s", err ? err->msg : "");
    TAP_EQ_STR(get(mem, "memory.limit_in_bytes"), "1048576", "real: 1 MiB limit set");
    char t = 't';
    if (write(ch.cmd, &t, 1) != 1)
        tap_diag("write: %m");
    status = 0;
    waitpid(ch.pid, &status, 0);
    tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "real: true runs under 1 MiB (%#x)",
           status);
    child_close(&ch);
    if (cg) {
        r = ks_cgroup_destroy(cg, &err);
        tap_ok(r == 0, "real: destroy %s", err ? err->msg : "");
        ks_cgroup_free(cg);
        cg = NULL;
    }
    check_gone(l, top, "real 1 MiB");

out:
    ks_error_free(err);
    ks_cgroup_layout_free(l);
}

static bool is_cgroup2(const char *path)
{
    struct statfs s;
    return statfs(path, &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC;
}

static void test_bpf(void)
{
    const char *v2 = is_cgroup2("/sys/fs/cgroup")           ? "/sys/fs/cgroup"
                     : is_cgroup2("/sys/fs/cgroup/unified") ? "/sys/fs/cgroup/unified"
                                                            : NULL;
    if (v2 == NULL) {
        tap_skip("no cgroup v2 hierarchy", "bpf device tests");
        return;
    }
    struct ks_error *err = NULL;
    struct ks_cgroup_layout *l = NULL;
    int r = ks_cgroup_layout_detect(v2, &l, &err);
    tap_ok(r == 0 && l->mode == KS_CGROUP_V2, "bpf: %s detected as v2 %s", v2, err ? err->msg : "");
    if (r < 0) {
        ks_error_free(err);
        return;
    }
    char top[64], path[128];
    snprintf(top, sizeof(top), "kiste-test-%d-bpf", (int)getpid());
    snprintf(path, sizeof(path), "%s/c1", top);

    struct child ch;
    if (!child_start(&ch)) {
        tap_ok(false, "bpf: fork: %m");
        ks_cgroup_layout_free(l);
        return;
    }
    /* Deny everything, allow all, then deny reading c 1:3: the last matching rule decides. */
    json_object *res = parse("{\"devices\":[{\"allow\":false,\"access\":\"rwm\"},"
                             "{\"allow\":true,\"access\":\"rwm\"},"
                             "{\"allow\":false,\"type\":\"c\",\"major\":1,\"minor\":3,"
                             "\"access\":\"r\"}]}");
    struct ks_cgroup *cg = NULL;
    r = ks_cgroup_create(l, path, res, ch.pid, &cg, &err);
    json_object_put(res);
    tap_ok(r == 0, "bpf: create with device program %s", err ? err->msg : "");
    if (r == 0) {
        unsigned char probe[3] = {0xff, 0xff, 0xff};
        bool ok = child_ask(&ch, 'p', probe, 3, 5000);
        tap_ok(ok && probe[0] == EPERM, "bpf: open /dev/null for reading: EPERM (%d)", probe[0]);
        tap_ok(ok && probe[1] == 0, "bpf: open /dev/null for writing allowed (%d)", probe[1]);
        tap_ok(ok && probe[2] == 0, "bpf: open /dev/zero allowed (%d)", probe[2]);

        /* Only c 1:5 (zero) and c 1:3 write: everything else is denied. */
        res = parse("{\"devices\":[{\"allow\":false,\"access\":\"rwm\"},"
                    "{\"allow\":true,\"type\":\"c\",\"major\":1,\"minor\":5,\"access\":\"rwm\"},"
                    "{\"allow\":true,\"type\":\"c\",\"major\":1,\"minor\":3,\"access\":\"w\"}]}");
        r = ks_cgroup_update(cg, res, &err);
        json_object_put(res);
        tap_ok(r == 0, "bpf: update replaces the program %s", err ? err->msg : "");
        ok = child_ask(&ch, 'p', probe, 3, 5000);
        tap_ok(ok && probe[0] == EPERM && probe[1] == 0 && probe[2] == 0,
               "bpf: allow-list rules: null r denied, null w and zero allowed (%d %d %d)", probe[0],
               probe[1], probe[2]);

        res = parse("{\"devices\":[{\"allow\":true,\"access\":\"rwm\"}]}");
        r = ks_cgroup_update(cg, res, &err);
        json_object_put(res);
        ok = child_ask(&ch, 'p', probe, 3, 5000);
        tap_ok(r == 0 && ok && probe[0] == 0 && probe[1] == 0,
               "bpf: allow-all update: old programs detached (%d %d)", probe[0], probe[1]);

        r = ks_cgroup_kill_all(cg, SIGKILL, &err);
        tap_ok(r == 0, "bpf: kill_all %s", err ? err->msg : "");
    } else {
        kill(ch.pid, SIGKILL);
    }
    int status = 0;
    tap_ok(waitpid(ch.pid, &status, 0) == ch.pid && WIFSIGNALED(status), "bpf: child killed");
    child_close(&ch);
    if (cg) {
        r = ks_cgroup_destroy(cg, &err);
        tap_ok(r == 0, "bpf: destroy %s", err ? err->msg : "");
        ks_cgroup_free(cg);
    }
    check_gone(l, top, "bpf");
    ks_error_free(err);
    ks_cgroup_layout_free(l);
}

int main(void)
{
    tap_plan_auto();
    test_paths();
    test_fake_v2();
    test_fake_hybrid_detect();
    if (geteuid() != 0) {
        tap_skip("not root", "real cgroup tests");
        tap_skip("not root", "bpf device tests");
    } else {
        test_real();
        test_bpf();
    }
    return tap_done();
}
