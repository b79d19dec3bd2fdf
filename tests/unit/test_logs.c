/* `kiste logs` over json-file logs: time arguments, the rotated files in order, streams,
 * --tail (read from the end), --since/--until, --timestamps, malformed lines, and --follow
 * across appends and a rotation. ks_cli_logs runs in forked children whose stdout and stderr
 * are files, so its output does not mix with the TAP stream. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/fs.h"
#include "cli/logs.h"
#include "tap.h"

#define NS 1000000000LL
#define T0 1795807800LL /* 2026-11-27T19:30:00Z */

static char dir[] = "/tmp/kiste-test-logs-XXXXXX";

static int64_t parse_ok(const char *s, int64_t now)
{
    int64_t v = -1;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_cli_parse_time_arg(s, now, &v, &err) < 0)
        tap_diag("`%s`: %s", s, err->msg);
    return v;
}

static bool parse_fails(const char *s)
{
    int64_t v;
    _cleanup_error_ struct ks_error *err = NULL;
    return ks_cli_parse_time_arg(s, 0, &v, &err) < 0 && err != NULL;
}

static void test_time_args(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    int64_t now = (T0 + 3600) * NS;
    TAP_EQ_INT(parse_ok("2026-11-27T19:30:00Z", now), T0 * NS, "RFC 3339 with Z");
    TAP_EQ_INT(parse_ok("2026-11-27T19:30:00.5Z", now), T0 * NS + 500000000, "with a fraction");
    TAP_EQ_INT(parse_ok("2026-11-27T19:30:00.123456789Z", now), T0 * NS + 123456789,
               "with nanoseconds");
    TAP_EQ_INT(parse_ok("2026-11-27T20:30:00+01:00", now), T0 * NS, "with a zone offset");
    TAP_EQ_INT(parse_ok("2026-11-27T19:30:00", now), T0 * NS, "without a zone: local (TZ=UTC)");
    TAP_EQ_INT(parse_ok("2026-11-27T19:30", now), T0 * NS, "without seconds");
    TAP_EQ_INT(parse_ok("2026-11-27", now), 1795737600LL * NS, "a date alone");
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    TAP_EQ_INT(parse_ok("2026-11-27T20:30:00", now), T0 * NS, "local time in Berlin (UTC+1)");
    setenv("TZ", "UTC", 1);
    tzset();
    TAP_EQ_INT(parse_ok("1795807800", now), T0 * NS, "unix seconds");
    TAP_EQ_INT(parse_ok("1795807800.25", now), T0 * NS + 250000000, "unix seconds, fraction");
    TAP_EQ_INT(parse_ok("0", now), 0, "0 is the epoch");
    TAP_EQ_INT(parse_ok("10m", now), now - 600 * NS, "10m before now");
    TAP_EQ_INT(parse_ok("1h30m", now), now - 5400 * NS, "1h30m before now");
    TAP_EQ_INT(parse_ok("2s", now), now - 2 * NS, "2s before now");
    TAP_EQ_INT(parse_ok("1.5h", now), now - 5400 * NS, "1.5h before now");
    TAP_EQ_INT(parse_ok("250ms", now), now - 250000000, "250ms before now");
    tap_ok(parse_fails("") && parse_fails("abc") && parse_fails("10x") && parse_fails("-5m") &&
               parse_fails("2026-13-01") && parse_fails("2026-02-29") &&
               parse_fails("2026-11-27T25:00") && parse_fails("2026-11-27T19:30:00+0100") &&
               parse_fails("2026-11-27T19:30:00Zjunk") && parse_fails("1.2.3") &&
               parse_fails("m") && parse_fails(".s"),
           "malformed values are errors");
    TAP_EQ_INT(parse_ok("2024-02-29T00:00:00Z", now) > 0, 1, "29 February of a leap year");
}

/* ---------------------------------------------------------------------------------------------
 * Log files */

static char *path_of(const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        abort();
    return p;
}

static void write_text(const char *name, const char *text, bool append)
{
    _cleanup_free_ char *p = path_of(name);
    FILE *f = fopen(p, append ? "ae" : "we");
    if (f == NULL)
        abort();
    fputs(text, f);
    fclose(f);
}

/* One log line as the monitor writes it, at T0 + sec. */
static char *entry(const char *stream, const char *text, int sec)
{
    char *e = NULL;
    struct tm tm;
    time_t t = (time_t)(T0 + sec);
    gmtime_r(&t, &tm);
    char ts[64];
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    if (asprintf(&e, "{\"log\":\"%s\",\"stream\":\"%s\",\"time\":\"%s.000000100Z\"}\n", text,
                 stream, ts) < 0)
        abort();
    return e;
}

static void add(const char *name, const char *stream, const char *text, int sec)
{
    _cleanup_free_ char *e = entry(stream, text, sec);
    write_text(name, e, true);
}

struct result {
    int rc;
    char *out, *err;
    long long rchar; /* bytes the child read, from /proc/self/io */
};

static void result_free(struct result *r)
{
    free(r->out);
    free(r->err);
}

static long long rchar_now(void)
{
    char *text = NULL;
    size_t len;
    long long v = -1;
    if (ks_read_file("/proc/self/io", &text, &len, NULL) == 0) {
        const char *p = strstr(text, "rchar:");
        if (p)
            v = atoll(p + 6);
    }
    free(text);
    return v;
}

static bool marker_exists(void *userdata)
{
    return access((const char *)userdata, F_OK) == 0;
}

/* Runs ks_cli_logs on dir/log in a child. With follow, the child runs while dir/running exists
 * and the caller drives the writer in between (start_logs / finish_logs). */
static pid_t start_logs(const struct ks_logs_opts *o)
{
    _cleanup_free_ char *out = path_of("stdout"), *err = path_of("stderr"), *log = path_of("log"),
                        *running = path_of("running"), *io = path_of("rchar");
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
        _exit(99);
    long long before = rchar_now();
    struct ks_error *e = NULL;
    int r = ks_cli_logs(log, o, marker_exists, running, &e);
    long long after = rchar_now();
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%lld", after - before);
    int fd = open(io, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0 && write(fd, buf, (size_t)n) < 0)
        _exit(98);
    if (r < 0)
        dprintf(2, "ERROR %s\n", e->msg);
    _exit(r < 0 ? 1 : 0);
}

static struct result finish_logs(pid_t pid)
{
    struct result res = {.rc = -1};
    int st;
    if (waitpid(pid, &st, 0) == pid && WIFEXITED(st))
        res.rc = WEXITSTATUS(st);
    _cleanup_free_ char *out = path_of("stdout"), *err = path_of("stderr"), *io = path_of("rchar");
    size_t len;
    if (ks_read_file(out, &res.out, &len, NULL) < 0)
        res.out = strdup("");
    if (ks_read_file(err, &res.err, &len, NULL) < 0)
        res.err = strdup("");
    char *t = NULL;
    if (ks_read_file(io, &t, &len, NULL) == 0)
        res.rchar = atoll(t);
    free(t);
    return res;
}

static struct result run_logs(const struct ks_logs_opts *o)
{
    return finish_logs(start_logs(o));
}

static void reset_dir(void)
{
    _cleanup_free_ char *log = path_of("log"), *running = path_of("running");
    unlink(log);
    unlink(running);
    for (int k = 1; k <= 20; k++) {
        char name[32];
        snprintf(name, sizeof(name), "log.%d", k);
        _cleanup_free_ char *p = path_of(name);
        unlink(p);
    }
}

static void make_rotated_log(void)
{
    reset_dir();
    add("log.2", "stdout", "one\\n", 1);
    add("log.2", "stderr", "two\\n", 2);
    add("log.1", "stdout", "three\\n", 3);
    add("log.1", "stdout", "par", 4);
    add("log.1", "stdout", "tial\\n", 4);
    add("log", "stderr", "five\\n", 5);
    add("log", "stdout", "six\\n", 6);
}

static void test_plain(void)
{
    make_rotated_log();
    struct ks_logs_opts o = {.tail = -1};
    struct result r = run_logs(&o);
    TAP_EQ_INT(r.rc, 0, "logs: succeeds");
    TAP_EQ_STR(r.out, "one\nthree\npartial\nsix\n", "logs: stdout entries, oldest file first");
    TAP_EQ_STR(r.err, "two\nfive\n", "logs: stderr entries on stderr");
    result_free(&r);

    o.tty = true;
    r = run_logs(&o);
    TAP_EQ_STR(r.out, "one\ntwo\nthree\npartial\nfive\nsix\n", "logs, tty: all on stdout");
    TAP_EQ_STR(r.err, "", "logs, tty: nothing on stderr");
    result_free(&r);

    o = (struct ks_logs_opts){.tail = -1, .timestamps = true};
    r = run_logs(&o);
    tap_ok(strncmp(r.out, "2026-11-27T19:30:01.000000100Z one\n", 35) == 0,
           "logs --timestamps: RFC 3339 with nanoseconds before the text");
    tap_ok(strstr(r.err, "2026-11-27T19:30:05.000000100Z five\n") != NULL,
           "logs --timestamps: on stderr too");
    result_free(&r);

    _cleanup_free_ char *log = path_of("no-such-log");
    _cleanup_error_ struct ks_error *err = NULL;
    o = (struct ks_logs_opts){.tail = -1};
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        dup2(fd, 1);
        _exit(ks_cli_logs(log, &o, NULL, NULL, &err) == 0 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "logs: no log file yet is an empty log");
}

static void test_tail(void)
{
    make_rotated_log();
    struct ks_logs_opts o = {.tail = 2};
    struct result r = run_logs(&o);
    TAP_EQ_STR(r.out, "six\n", "--tail 2: the last two lines (stdout)");
    TAP_EQ_STR(r.err, "five\n", "--tail 2: (stderr)");
    result_free(&r);

    o.tail = 4;
    r = run_logs(&o);
    TAP_EQ_STR(r.out,
               "par"
               "tial\nsix\n",
               "--tail 4: reaches into log.1");
    result_free(&r);

    o.tail = 5;
    r = run_logs(&o);
    TAP_EQ_STR(r.out, "three\npartial\nsix\n", "--tail 5: all of log.1");
    TAP_EQ_STR(r.err, "five\n", "--tail 5: nothing of log.2");
    result_free(&r);

    o.tail = 0;
    r = run_logs(&o);
    tap_ok(r.rc == 0 && !*r.out && !*r.err, "--tail 0: nothing");
    result_free(&r);

    o.tail = 1000;
    r = run_logs(&o);
    TAP_EQ_STR(r.out, "one\nthree\npartial\nsix\n", "--tail 1000: everything");
    result_free(&r);

    /* A last line without its newline counts as a line. */
    _cleanup_free_ char *e = entry("stdout", "seven\\n", 7);
    e[strlen(e) - 1] = '\0';
    write_text("log", e, true);
    o.tail = 1;
    r = run_logs(&o);
    TAP_EQ_STR(r.out, "seven\n", "--tail 1: a final line without a newline");
    result_free(&r);

    /* A 1 GiB log (sparse: a hole, then two lines): the tail reads from the end only. */
    reset_dir();
    _cleanup_free_ char *log = path_of("log");
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    tap_ok(fd >= 0 && ftruncate(fd, 1LL << 30) == 0, "a sparse 1 GiB log");
    close(fd);
    write_text("log", "\n", true);
    add("log", "stdout", "end-1\\n", 1);
    add("log", "stdout", "end-2\\n", 2);
    o.tail = 2;
    r = run_logs(&o);
    TAP_EQ_STR(r.out, "end-1\nend-2\n", "--tail 2 of 1 GiB: the last lines");
    tap_ok(r.rchar >= 0 && r.rchar < (1 << 20), "--tail 2 of 1 GiB: read %lld bytes", r.rchar);
    result_free(&r);
    unlink(log);
}

static void test_since_until(void)
{
    make_rotated_log();
    struct ks_logs_opts o = {.tail = -1, .since_ns = (T0 + 3) * NS};
    struct result r = run_logs(&o);
    TAP_EQ_STR(r.out, "three\npartial\nsix\n", "--since: from the entry at +3s on");
    result_free(&r);
    o = (struct ks_logs_opts){.tail = -1, .until_ns = (T0 + 4) * NS + 500};
    r = run_logs(&o);
    TAP_EQ_STR(r.out, "one\nthree\npartial\n", "--until: up to the entries at +4s");
    TAP_EQ_STR(r.err, "two\n", "--until: stderr too");
    result_free(&r);
    o = (struct ks_logs_opts){.tail = 3, .since_ns = (T0 + 5) * NS};
    r = run_logs(&o);
    TAP_EQ_STR(r.out, "six\n", "--tail 3 --since: tail first, then the time filter");
    TAP_EQ_STR(r.err, "five\n", "--tail 3 --since: stderr");
    result_free(&r);
}

static void test_malformed(void)
{
    reset_dir();
    add("log", "stdout", "ok-1\\n", 1);
    write_text("log", "not json at all\n", true);
    write_text("log", "[1,2,3]\n", true);
    write_text("log", "{\"log\":42,\"stream\":\"stdout\",\"time\":\"2026-11-27T19:30:00Z\"}\n",
               true);
    write_text("log", "{\"log\":\"x\\n\",\"stream\":\"stdin\",\"time\":\"2026-11-27T19:30:00Z\"}\n",
               true);
    write_text("log", "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"yesterday\"}\n", true);
    write_text("log", "{\"log\":\"x\\n\",\"stream\":\"stdout\"}\n", true);
    write_text("log", "{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-27T19:30:00Z\"",
               true);
    write_text("log", "\n\n\0\0\n", true);
    write_text("log",
               "{\"log\":\"nul\\u0000byte\\n\",\"stream\":\"stdout\","
               "\"time\":\"2026-11-27T19:30:00Z\"}\n",
               true);
    /* A line far longer than any the monitor writes. */
    _cleanup_free_ char *huge = malloc(600 * 1024 + 2);
    memset(huge, '[', 600 * 1024);
    strcpy(huge + 600 * 1024, "\n");
    write_text("log", huge, true);
    /* Deeply nested JSON: bounded by the parser's depth limit. */
    memset(huge, '[', 100 * 1024);
    strcpy(huge + 100 * 1024, "\n");
    write_text("log", huge, true);
    add("log", "stdout", "ok-2\\n", 2);
    struct ks_logs_opts o = {.tail = -1};
    struct result r = run_logs(&o);
    TAP_EQ_INT(r.rc, 0, "malformed lines: no error");
    tap_ok(r.out && memcmp(r.out, "ok-1\nnul\0byte\nok-2\n", 19) == 0,
           "malformed lines are skipped, the good ones printed (NUL bytes kept)");
    result_free(&r);
}

static void wait_for_output(const char *want)
{
    _cleanup_free_ char *out = path_of("stdout");
    for (int i = 0; i < 500; i++) {
        char *text = NULL;
        size_t len;
        bool ok = ks_read_file(out, &text, &len, NULL) == 0 && strstr(text, want) != NULL;
        free(text);
        if (ok)
            return;
        usleep(10000);
    }
}

static void test_follow(void)
{
    reset_dir();
    add("log", "stdout", "a\\n", 1);
    write_text("running", "", false);
    struct ks_logs_opts o = {.tail = -1, .follow = true};
    pid_t pid = start_logs(&o);
    wait_for_output("a\n");
    add("log", "stdout", "b\\n", 2);
    wait_for_output("b\n");
    /* Half a line, then the rest: printed once complete. */
    _cleanup_free_ char *e = entry("stdout", "c\\n", 3);
    size_t half = strlen(e) / 2;
    char first[256];
    snprintf(first, sizeof(first), "%.*s", (int)half, e);
    write_text("log", first, true);
    usleep(100000);
    write_text("log", e + half, true);
    wait_for_output("c\n");
    /* Rotation: the monitor renames the file and starts a new one. */
    add("log", "stderr", "d\\n", 4);
    _cleanup_free_ char *log = path_of("log"), *log1 = path_of("log.1");
    tap_ok(rename(log, log1) == 0, "follow: log rotated");
    add("log", "stdout", "e\\n", 5);
    wait_for_output("e\n");
    add("log", "stdout", "f\\n", 6);
    _cleanup_free_ char *running = path_of("running");
    unlink(running);
    struct result r = finish_logs(pid);
    TAP_EQ_INT(r.rc, 0, "follow: ends when the container stopped");
    TAP_EQ_STR(r.out, "a\nb\nc\ne\nf\n", "follow: appends, a split line, the new file");
    TAP_EQ_STR(r.err, "d\n", "follow: the entry written just before the rotation");
    result_free(&r);

    /* --tail 0 --follow: only what comes. */
    reset_dir();
    add("log", "stdout", "old\\n", 1);
    write_text("running", "", false);
    o = (struct ks_logs_opts){.tail = 0, .follow = true};
    pid = start_logs(&o);
    usleep(200000);
    add("log", "stdout", "new\\n", 2);
    wait_for_output("new\n");
    unlink(running);
    r = finish_logs(pid);
    TAP_EQ_STR(r.out, "new\n", "follow --tail 0: new entries only");
    result_free(&r);

    /* Following a log that does not exist yet. */
    reset_dir();
    write_text("running", "", false);
    o = (struct ks_logs_opts){.tail = -1, .follow = true};
    pid = start_logs(&o);
    usleep(100000);
    add("log", "stdout", "first\\n", 1);
    wait_for_output("first\n");
    unlink(running);
    r = finish_logs(pid);
    TAP_EQ_STR(r.out, "first\n", "follow: a log created after the start");
    result_free(&r);
}

/* A writer that rotates as the monitor does (log.1 to log.2 …, the file to log.1, a new file),
 * many times while a follower reads. No file is rotated out of existence here, so however far
 * behind the follower falls, every line comes out once, in order. */
static void rotating_writer(int lines, int per_file)
{
    _cleanup_free_ char *log = path_of("log");
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    for (int i = 0; i < lines; i++) {
        if (i > 0 && i % per_file == 0) {
            close(fd);
            for (int k = lines / per_file; k >= 1; k--) {
                char from[64], to[64];
                snprintf(from, sizeof(from), "log.%d", k);
                snprintf(to, sizeof(to), "log.%d", k + 1);
                _cleanup_free_ char *pf = path_of(from), *pt = path_of(to);
                (void)rename(pf, pt);
            }
            _cleanup_free_ char *l1 = path_of("log.1");
            rename(log, l1);
            fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        }
        char text[16];
        snprintf(text, sizeof(text), "%d\\n", i);
        _cleanup_free_ char *e = entry("stdout", text, i);
        if (write(fd, e, strlen(e)) < 0)
            _exit(1);
    }
    close(fd);
}

static void test_follow_rotations(void)
{
    reset_dir();
    write_text("running", "", false);
    struct ks_logs_opts o = {.tail = -1, .follow = true};
    pid_t pid = start_logs(&o);
    usleep(100000);
    enum { LINES = 3000, PER_FILE = 300 };
    rotating_writer(LINES, PER_FILE);
    _cleanup_free_ char *running = path_of("running");
    unlink(running);
    struct result r = finish_logs(pid);
    _cleanup_free_ char *want = malloc(LINES * 8);
    size_t n = 0;
    for (int i = 0; i < LINES; i++)
        n += (size_t)sprintf(want + n, "%d\n", i);
    TAP_EQ_INT(r.rc, 0, "follow, %d rotations: ends", LINES / PER_FILE - 1);
    if (!tap_ok(strcmp(r.out, want) == 0, "follow, rotations: every line once, in order")) {
        size_t i = 0;
        while (r.out[i] && r.out[i] == want[i])
            i++;
        while (i > 0 && r.out[i - 1] != '\n')
            i--;
        tap_diag("got %zu bytes, expected %zu; from byte %zu: `%.20s` for `%.20s`", strlen(r.out),
                 n, i, r.out + i, want + i);
    }
    result_free(&r);
}

int main(void)
{
    tap_plan_auto();
    if (mkdtemp(dir) == NULL)
        return 1;
    test_time_args();
    test_plain();
    test_tail();
    test_since_until();
    test_malformed();
    test_follow();
    test_follow_rotations();
    ks_rm_rf_at(AT_FDCWD, dir, NULL);
    return tap_done();
}
