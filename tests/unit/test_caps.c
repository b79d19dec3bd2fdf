/* Capabilities: names, parsing, and the two apply steps checked against the running kernel in
 * forked children, so the test process keeps its own capabilities. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "oci/caps.h"
#include "tap.h"

#define BIT(c) (UINT64_C(1) << (c))

enum {
    C_CHOWN = 0,
    C_KILL = 5,
    C_SETGID = 6,
    C_SETUID = 7,
    C_SETPCAP = 8,
    C_NET_BIND_SERVICE = 10,
    C_NET_RAW = 13,
    C_SYS_ADMIN = 21,
};

static json_object *parse(const char *text)
{
    json_object *o = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_json_parse(text, strlen(text), &o, &err) < 0) {
        tap_diag("bad test JSON: %s", err->msg);
        abort();
    }
    return o;
}

/* The capability sets of the calling process as /proc/self/status shows them. */
struct status_caps {
    uint64_t inh, prm, eff, bnd, amb;
};

static int read_status_caps(struct status_caps *ret)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
    if (f == NULL)
        return -errno;
    char line[256];
    int found = 0;
    while (fgets(line, sizeof(line), f)) {
        const struct {
            const char *key;
            uint64_t *dst;
        } keys[] = {
            {"CapInh:", &ret->inh}, {"CapPrm:", &ret->prm}, {"CapEff:", &ret->eff},
            {"CapBnd:", &ret->bnd}, {"CapAmb:", &ret->amb},
        };
        for (size_t i = 0; i < KS_ELEMENTSOF(keys); i++) {
            size_t n = strlen(keys[i].key);
            if (strncmp(line, keys[i].key, n) == 0) {
                *keys[i].dst = strtoull(line + n, NULL, 16);
                found++;
            }
        }
    }
    return found == 5 ? 0 : -ENOENT;
}

static void test_names(void)
{
    int last = ks_caps_last_cap();
    bool all = true;
    for (int c = 0; c <= last; c++) {
        const char *name = ks_caps_name(c);
        if (name == NULL || strncmp(name, "CAP_", 4) != 0 || ks_caps_from_name(name) != c) {
            tap_diag("round trip failed for %d (%s)", c, name ? name : "(null)");
            all = false;
        }
    }
    tap_ok(all, "every capability up to cap_last_cap (%d) round-trips through its name", last);
    TAP_EQ_STR(ks_caps_name(21), "CAP_SYS_ADMIN", "21 is CAP_SYS_ADMIN");
    TAP_EQ_STR(ks_caps_name(0), "CAP_CHOWN", "0 is CAP_CHOWN");
    TAP_EQ_STR(ks_caps_name(40), "CAP_CHECKPOINT_RESTORE", "40 is CAP_CHECKPOINT_RESTORE");
    tap_ok(ks_caps_name(-1) == NULL, "no name for -1");
    tap_ok(ks_caps_name(64) == NULL, "no name for 64");
    TAP_EQ_INT(ks_caps_from_name("CAP_NET_RAW"), 13, "CAP_NET_RAW is 13");
    TAP_EQ_INT(ks_caps_from_name("cap_net_raw"), 13, "names are case-insensitive");
    TAP_EQ_INT(ks_caps_from_name("sys_admin"), 21, "the CAP_ prefix is optional");
    TAP_EQ_INT(ks_caps_from_name("CAP_FOO"), -1, "CAP_FOO is unknown");
    TAP_EQ_INT(ks_caps_from_name("CAP_"), -1, "a bare prefix is unknown");
    TAP_EQ_INT(ks_caps_from_name(""), -1, "the empty name is unknown");
    TAP_EQ_INT(ks_caps_from_name(NULL), -1, "NULL is unknown");
    TAP_EQ_INT(ks_caps_from_name("CAP_CHOWNX"), -1, "no prefix matching");

    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    int want = -1;
    if (f) {
        if (fscanf(f, "%d", &want) != 1)
            want = -1;
        fclose(f);
    }
    TAP_EQ_INT(last, want, "ks_caps_last_cap matches /proc/sys/kernel/cap_last_cap");

    _cleanup_json_ json_object *all_json = ks_caps_all_json();
    tap_ok(all_json && json_object_is_type(all_json, json_type_array), "all_json is an array");
    TAP_EQ_INT(json_object_array_length(all_json), last + 1, "all_json lists every capability");
    TAP_EQ_STR(json_object_get_string(json_object_array_get_idx(all_json, 0)), "CAP_CHOWN",
               "all_json starts with CAP_CHOWN");
    TAP_EQ_STR(json_object_get_string(json_object_array_get_idx(all_json, 21)), "CAP_SYS_ADMIN",
               "all_json is in number order");
}

static void expect_parse_error(const char *text, const char *want, const char *what)
{
    _cleanup_json_ json_object *o = parse(text);
    _cleanup_error_ struct ks_error *err = NULL;
    struct ks_caps caps;
    int r = ks_caps_parse(o, &caps, &err);
    tap_ok(r == -EINVAL && err != NULL, "%s: fails with -EINVAL", what);
    TAP_EQ_STR(err ? err->msg : NULL, want, "%s: message", what);
}

static void test_parse(void)
{
    struct ks_caps caps;
    memset(&caps, 0xff, sizeof(caps));
    _cleanup_error_ struct ks_error *err = NULL;
    tap_ok(ks_caps_parse(NULL, &caps, &err) == 0, "NULL capabilities parse");
    tap_ok(caps.bounding == 0 && caps.effective == 0 && caps.inheritable == 0 &&
               caps.permitted == 0 && caps.ambient == 0,
           "NULL capabilities mean no capabilities at all");

    _cleanup_json_ json_object *o =
        parse("{\"bounding\":[\"CAP_CHOWN\",\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],"
              "\"effective\":[\"CAP_KILL\"],"
              "\"inheritable\":[],"
              "\"permitted\":[\"CAP_KILL\",\"CAP_CHOWN\",\"CAP_KILL\"],"
              "\"ambient\":[\"CAP_NET_BIND_SERVICE\"]}");
    tap_ok(ks_caps_parse(o, &caps, &err) == 0, "a full capabilities object parses");
    TAP_EQ_INT(caps.bounding, BIT(C_CHOWN) | BIT(C_KILL) | BIT(C_NET_BIND_SERVICE), "bounding");
    TAP_EQ_INT(caps.effective, BIT(C_KILL), "effective");
    TAP_EQ_INT(caps.inheritable, 0, "inheritable (empty)");
    TAP_EQ_INT(caps.permitted, BIT(C_KILL) | BIT(C_CHOWN), "permitted (duplicates are fine)");
    TAP_EQ_INT(caps.ambient, BIT(C_NET_BIND_SERVICE), "ambient");

    _cleanup_json_ json_object *partial = parse("{\"effective\":[\"CAP_SYS_ADMIN\"]}");
    tap_ok(ks_caps_parse(partial, &caps, &err) == 0 && caps.effective == BIT(C_SYS_ADMIN) &&
               caps.bounding == 0 && caps.ambient == 0,
           "missing sets are empty");

    expect_parse_error("{\"bounding\":[\"CAP_CHOWN\",\"CAP_FOO\"]}",
                       "process.capabilities.bounding: unknown capability `CAP_FOO`",
                       "unknown name in bounding");
    expect_parse_error("{\"ambient\":[\"CAP_NOPE\"]}",
                       "process.capabilities.ambient: unknown capability `CAP_NOPE`",
                       "unknown name in ambient");
    expect_parse_error("{\"permitted\":\"CAP_CHOWN\"}",
                       "process.capabilities.permitted: must be an array of strings",
                       "a set that is not an array");
    expect_parse_error("{\"inheritable\":[\"CAP_CHOWN\",7]}",
                       "process.capabilities.inheritable[1]: must be a string",
                       "a member that is not a string");
    expect_parse_error("[]", "process.capabilities: must be an object", "not an object");
}

/* What a child saw, sent back over a pipe. */
struct report {
    int step; /* 0 = everything ran; otherwise the step that failed */
    int errnum;
    char msg[256];
    struct status_caps st;
    int keepcaps;
    int sysadmin_in_bnd;
    int unshare_errno;
    uid_t uid;
    int warned_chown; /* the ambient warning named CAP_CHOWN */
};

static void capture_sink(enum ks_log_level level, const char *msg, void *userdata)
{
    struct report *rep = userdata;
    if (level == KS_LOG_WARNING && strstr(msg, "ambient") && strstr(msg, "CAP_CHOWN"))
        rep->warned_chown = 1;
}

static void fail_step(struct report *rep, int step, struct ks_error *err)
{
    rep->step = step;
    if (err) {
        rep->errnum = err->errnum;
        snprintf(rep->msg, sizeof(rep->msg), "%s", err->msg);
    }
}

static void child_apply(const struct ks_caps *caps, bool drop_to_nobody, struct report *rep)
{
    _cleanup_error_ struct ks_error *err = NULL;
    ks_log_set_sink(capture_sink, rep);

    if (ks_caps_apply_bounding(caps, &err) < 0)
        return fail_step(rep, 1, err);
    rep->keepcaps = prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0);
    rep->sysadmin_in_bnd = prctl(PR_CAPBSET_READ, C_SYS_ADMIN, 0, 0, 0);

    if (drop_to_nobody) {
        if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0) {
            rep->errnum = errno;
            return fail_step(rep, 2, NULL);
        }
    }
    if (ks_caps_apply(caps, &err) < 0)
        return fail_step(rep, 3, err);
    if (read_status_caps(&rep->st) < 0)
        return fail_step(rep, 4, NULL);
    rep->keepcaps = rep->keepcaps * 10 + prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0);
    rep->unshare_errno = unshare(CLONE_NEWUTS) < 0 ? errno : 0;
    rep->uid = getuid();
}

/* Runs child_apply in a child; returns false (after a diagnostic) when the child crashed. */
static bool run_child(const struct ks_caps *caps, bool drop_to_nobody, struct report *rep)
{
    int p[2];
    memset(rep, 0, sizeof(*rep));
    if (pipe2(p, O_CLOEXEC) < 0)
        return false;
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        close(p[0]);
        struct report r = {0};
        child_apply(caps, drop_to_nobody, &r);
        ssize_t n = write(p[1], &r, sizeof(r));
        _exit(n == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(p[1]);
    ssize_t n = read(p[0], rep, sizeof(*rep));
    close(p[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (n != (ssize_t)sizeof(*rep) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        tap_diag("child failed: status %d", status);
        return false;
    }
    if (rep->step != 0)
        tap_diag("child step %d failed: %s (errno %d)", rep->step, rep->msg, rep->errnum);
    return true;
}

static void test_apply(void)
{
    struct status_caps self;
    if (read_status_caps(&self) < 0 || getuid() != 0 ||
        !(self.eff & BIT(C_SETPCAP) && self.eff & BIT(C_SETUID) && self.eff & BIT(C_SETGID))) {
        tap_skip("needs root with CAP_SETPCAP, CAP_SETUID and CAP_SETGID", "apply tests");
        return;
    }
    uint64_t have = self.bnd & self.prm;
    const uint64_t want = BIT(C_CHOWN) | BIT(C_KILL) | BIT(C_NET_BIND_SERVICE);
    if ((have & want) != want) {
        tap_skip("CAP_CHOWN, CAP_KILL or CAP_NET_BIND_SERVICE is missing", "apply tests");
        return;
    }

    /* As root: a small bounding set, an ambient set one of whose members cannot be raised. */
    struct ks_caps caps = {
        .bounding = want | BIT(C_SETUID) | BIT(C_SETGID),
        .effective = BIT(C_CHOWN) | BIT(C_KILL),
        .permitted = want,
        .inheritable = BIT(C_NET_BIND_SERVICE) | BIT(C_KILL),
        .ambient = BIT(C_NET_BIND_SERVICE) | BIT(C_CHOWN),
    };
    struct report rep;
    if (run_child(&caps, false, &rep)) {
        TAP_EQ_INT(rep.step, 0, "root: both steps succeed");
        TAP_EQ_INT(rep.st.bnd, caps.bounding & self.bnd, "root: CapBnd is the bounding set");
        TAP_EQ_INT(rep.sysadmin_in_bnd, 0, "root: PR_CAPBSET_READ says CAP_SYS_ADMIN is gone");
        TAP_EQ_INT(rep.keepcaps, 10, "root: KEEPCAPS set by step 1, cleared by step 2");
        TAP_EQ_INT(rep.st.eff, caps.effective, "root: CapEff");
        TAP_EQ_INT(rep.st.prm, caps.permitted, "root: CapPrm");
        TAP_EQ_INT(rep.st.inh, caps.inheritable, "root: CapInh");
        TAP_EQ_INT(rep.st.amb, BIT(C_NET_BIND_SERVICE),
                   "root: CapAmb holds only what is permitted and inheritable");
        tap_ok(rep.warned_chown, "root: skipping CAP_CHOWN in ambient warns");
        TAP_EQ_INT(rep.unshare_errno, EPERM, "root: without CAP_SYS_ADMIN unshare(2) is refused");
    } else {
        tap_ok(false, "root: child ran");
    }

    /* The real sequence: bounding, change of uid (KEEPCAPS keeps permitted), final sets. */
    struct ks_caps nobody = {
        .bounding = BIT(C_NET_BIND_SERVICE) | BIT(C_NET_RAW) | BIT(C_KILL),
        .effective = BIT(C_NET_BIND_SERVICE) | BIT(C_KILL),
        .permitted = BIT(C_NET_BIND_SERVICE) | BIT(C_KILL),
        .inheritable = BIT(C_NET_BIND_SERVICE),
        .ambient = BIT(C_NET_BIND_SERVICE),
    };
    if (run_child(&nobody, true, &rep)) {
        TAP_EQ_INT(rep.step, 0, "nobody: bounding, setuid and apply succeed");
        TAP_EQ_INT(rep.uid, 65534, "nobody: the child runs as 65534");
        TAP_EQ_INT(rep.st.bnd, nobody.bounding & self.bnd, "nobody: CapBnd");
        TAP_EQ_INT(rep.st.eff, nobody.effective, "nobody: CapEff survived the uid change");
        TAP_EQ_INT(rep.st.prm, nobody.permitted, "nobody: CapPrm");
        TAP_EQ_INT(rep.st.inh, nobody.inheritable, "nobody: CapInh");
        TAP_EQ_INT(rep.st.amb, nobody.ambient, "nobody: CapAmb");
        TAP_EQ_INT(rep.keepcaps, 10, "nobody: KEEPCAPS cleared at the end");
    } else {
        tap_ok(false, "nobody: child ran");
    }

    /* An effective set larger than the permitted one is refused by capset. */
    struct ks_caps bad = {
        .bounding = want,
        .effective = BIT(C_KILL),
        .permitted = 0,
    };
    if (run_child(&bad, false, &rep)) {
        TAP_EQ_INT(rep.step, 3, "effective outside permitted fails in step 2");
        TAP_EQ_INT(rep.errnum, EPERM, "... with EPERM");
        tap_ok(strstr(rep.msg, "capset") != NULL, "... and the message names capset");
    } else {
        tap_ok(false, "bad sets: child ran");
    }
}

int main(void)
{
    tap_plan_auto();
    test_names();
    test_parse();
    test_apply();
    return tap_done();
}
