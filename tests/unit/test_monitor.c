/* kiste-monitor's pure pieces: JSON escaping and the one JSON array it reads, Docker's log line
 * splitting and json-file rotation, the restart policy and back-off, health check decisions,
 * and where the OOM kill count of a cgroup is on v1, v2 and hybrid layouts. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fs.h"
#include "monitor.h"
#include "tap.h"

static char *escape(const char *s, size_t n)
{
    static char out[256];
    out[mon_json_escape(out, s, n)] = '\0';
    return out;
}

static void test_escape(void)
{
    TAP_EQ_STR(escape("plain text", 10), "plain text", "plain text unchanged");
    TAP_EQ_STR(escape("a\"b\\c\n\r\t", 8), "a\\\"b\\\\c\\n\\r\\t", "quotes and controls");
    TAP_EQ_STR(escape("\x01\x1f\x7f", 3), "\\u0001\\u001f\x7f", "other controls as \\u00XX");
    TAP_EQ_STR(escape("<a&b>", 5), "\\u003ca\\u0026b\\u003e", "HTML characters as Go does");
    TAP_EQ_STR(escape("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9),
               "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "valid UTF-8 passes");
    TAP_EQ_STR(escape("\xff"
                      "a\xc3",
                      3),
               "\\ufffda\\ufffd", "invalid and cut UTF-8 replaced");
    TAP_EQ_STR(escape("\xed\xa0\x80", 3), "\\ufffd\\ufffd\\ufffd", "surrogates are invalid");
    TAP_EQ_STR(escape("\xc0\xaf", 2), "\\ufffd\\ufffd", "overlong forms are invalid");
    TAP_EQ_STR(escape("\xe2\x80\xa8\xe2\x80\xa9", 6), "\\u2028\\u2029", "line separators");
    TAP_EQ_STR(escape("a\0b", 3), "a\\u0000b", "NUL escaped");

    struct mon_buf b = {0};
    mon_buf_puts(&b, "{\"k\":");
    mon_buf_json_str(&b, "v\"", 2);
    mon_buf_printf(&b, ",\"n\":%d}", 42);
    TAP_EQ_STR(b.data, "{\"k\":\"v\\\"\",\"n\":42}", "buffer builds JSON");
    char big[600];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    size_t before = b.len;
    mon_buf_printf(&b, "%s", big);
    tap_ok(b.len == before + 599 && strcmp(b.data + before, big) == 0,
           "printf beyond the small buffer");
    mon_buf_free(&b);
}

static void test_parse_strv(void)
{
    char **v = NULL;
    struct ks_error *e = NULL;
    int r = mon_json_parse_strv(" [\"CMD-SHELL\", \"echo \\\"hi\\\" \\u00e9\\ud83d\\ude00\\n\"] ",
                                &v, &e);
    TAP_EQ_INT(r, 0, "array parses");
    TAP_EQ_INT(v ? (long long)ks_strv_len(v) : -1, 2, "two members");
    TAP_EQ_STR(v ? v[1] : NULL, "echo \"hi\" \xc3\xa9\xf0\x9f\x98\x80\n", "escapes decoded");
    ks_strv_free(v);
    v = NULL;
    r = mon_json_parse_strv("[]", &v, &e);
    tap_ok(r == 0 && v && v[0] == NULL, "empty array");
    ks_strv_free(v);
    static const char *const bad[] = {
        "",
        "[",
        "[\"a\"",
        "[\"a\",]",
        "[1]",
        "[\"a\"] x",
        "{\"a\":1}",
        "[\"\\u0000\"]",
        "[\"\\ud800\"]",
        "[\"\\x\"]",
        "[\"a\nb\"]",
        "[\"a\" \"b\"]",
    };
    for (size_t i = 0; i < KS_ELEMENTSOF(bad); i++) {
        v = NULL;
        r = mon_json_parse_strv(bad[i], &v, &e);
        tap_ok(r < 0 && v == NULL, "rejects invalid array %zu", i);
        ks_error_free(e);
        e = NULL;
    }
}

struct rec {
    size_t len;
    bool partial;
    char first, last;
};
struct recs {
    size_t n;
    struct rec r[16];
};

static void collect(const char *line, size_t len, bool partial, void *userdata)
{
    struct recs *rs = userdata;
    if (rs->n < 16)
        rs->r[rs->n++] = (struct rec){len, partial, line[0], line[len - 1]};
}

static void test_split(void)
{
    static struct mon_splitter s;
    struct recs rs = {0};
    mon_split_feed(&s, "a\nbc", 4, collect, &rs);
    TAP_EQ_INT(rs.n, 1, "one complete line, the rest waits");
    mon_split_feed(&s, "d\n\n", 3, collect, &rs);
    TAP_EQ_INT(rs.n, 3, "line completed across reads, then an empty line");
    tap_ok(rs.r[1].len == 4 && !rs.r[1].partial && rs.r[1].first == 'b', "\"bcd\\n\" joined");
    tap_ok(rs.r[2].len == 1 && rs.r[2].first == '\n', "empty line is \"\\n\"");

    /* 40 KiB and a newline: 16 KiB, 16 KiB, then 8 KiB with the newline. */
    static char big[40 * 1024 + 1];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\n';
    rs = (struct recs){0};
    for (size_t off = 0; off < sizeof(big); off += 3000)
        mon_split_feed(&s, big + off, sizeof(big) - off < 3000 ? sizeof(big) - off : 3000, collect,
                       &rs);
    TAP_EQ_INT(rs.n, 3, "40 KiB line in three records");
    tap_ok(rs.r[0].len == 16384 && rs.r[0].partial && rs.r[1].len == 16384 && rs.r[1].partial,
           "two partial 16 KiB records");
    tap_ok(rs.r[2].len == 8193 && !rs.r[2].partial && rs.r[2].last == '\n',
           "the rest ends the line");

    /* Exactly 16 KiB before the newline: the newline comes alone, as Docker logs it. */
    rs = (struct recs){0};
    mon_split_feed(&s, big + sizeof(big) - 16385, 16385, collect, &rs);
    tap_ok(rs.n == 2 && rs.r[0].partial && rs.r[1].len == 1, "16 KiB then a lone newline");

    rs = (struct recs){0};
    mon_split_feed(&s, "tail", 4, collect, &rs);
    mon_split_flush(&s, collect, &rs);
    tap_ok(rs.n == 1 && rs.r[0].partial && rs.r[0].len == 4, "flush at EOF: partial record");
    mon_split_flush(&s, collect, &rs);
    TAP_EQ_INT(rs.n, 1, "flush of nothing writes nothing");
}

static size_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : (size_t)-1;
}

static void test_logfile(void)
{
    char dir[] = "/tmp/kiste-test-monitor-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        tap_skip("mkdtemp failed", "log file");
        return;
    }
    char path[256], p1[300], p2[300], p3[300];
    snprintf(path, sizeof(path), "%s/c-json.log", dir);
    snprintf(p1, sizeof(p1), "%s.1", path);
    snprintf(p2, sizeof(p2), "%s.2", path);
    snprintf(p3, sizeof(p3), "%s.3", path);
    const char *t = "2026-11-27T19:30:00.123456789Z";
    struct mon_logfile l;
    struct ks_error *e = NULL;
    int r = mon_logfile_open(&l, path, 300, 3, &e);
    TAP_EQ_INT(r, 0, "log opens");
    mon_logfile_write(&l, "stdout", "hi \"x\"\n", 7, t, &e);
    _cleanup_free_ char *text = NULL;
    ks_read_file(path, &text, NULL, &e);
    TAP_EQ_STR(text,
               "{\"log\":\"hi \\\"x\\\"\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-27T19:30:00."
               "123456789Z\"}\n",
               "record in Docker's format");
    size_t one = strlen(text);
    for (int i = 0; i < 40; i++)
        mon_logfile_write(&l, i % 2 ? "stderr" : "stdout", "hi \"x\"\n", 7, t, &e);
    tap_ok(file_size(path) <= 300 && file_size(p1) <= 300 && file_size(p2) <= 300,
           "no file beyond max-size");
    TAP_EQ_INT(file_size(p1) % one, 0, "rotated files hold whole records");
    tap_ok(access(p3, F_OK) < 0, "max-files: three files in all");
    mon_logfile_close(&l);

    /* One file: emptied rather than renamed. */
    unlink(p1);
    unlink(p2);
    r = mon_logfile_open(&l, path, 300, 1, &e);
    for (int i = 0; i < 10; i++)
        mon_logfile_write(&l, "stdout", "hi \"x\"\n", 7, t, &e);
    tap_ok(r == 0 && file_size(path) <= 300 && access(p1, F_OK) < 0, "max-files 1 truncates");
    mon_logfile_close(&l);

    /* No max-size: no rotation. */
    unlink(path);
    mon_logfile_open(&l, path, 0, 5, &e);
    for (int i = 0; i < 50; i++)
        mon_logfile_write(&l, "stdout", "hi \"x\"\n", 7, t, &e);
    TAP_EQ_INT(file_size(path), 50 * one, "without max-size the file only grows");
    mon_logfile_close(&l);
    ks_rm_rf_at(AT_FDCWD, dir, NULL);
}

static void test_restart(void)
{
    struct mon_restart p;
    struct ks_error *e = NULL;
    tap_ok(mon_restart_parse("no", &p, &e) == 0 && p.kind == MON_RESTART_NO, "no");
    tap_ok(mon_restart_parse("always", &p, &e) == 0 && p.kind == MON_RESTART_ALWAYS, "always");
    tap_ok(mon_restart_parse("unless-stopped", &p, &e) == 0 && p.kind == MON_RESTART_UNLESS_STOPPED,
           "unless-stopped");
    tap_ok(mon_restart_parse("on-failure:5", &p, &e) == 0 && p.kind == MON_RESTART_ON_FAILURE &&
               p.max == 5,
           "on-failure:5");
    tap_ok(mon_restart_parse("on-failure", &p, &e) == 0 && p.max == 0, "on-failure unlimited");
    static const char *const bad[] = {"",
                                      "sometimes",
                                      "always:3",
                                      "on-failure:",
                                      "on-failure:x",
                                      "on-failure:-1",
                                      "on-failure:2x"};
    for (size_t i = 0; i < KS_ELEMENTSOF(bad); i++) {
        tap_ok(mon_restart_parse(bad[i], &p, &e) < 0, "rejects `%s`", bad[i]);
        ks_error_free(e);
        e = NULL;
    }

    struct mon_restart no = {MON_RESTART_NO, 0}, always = {MON_RESTART_ALWAYS, 0},
                       of2 = {MON_RESTART_ON_FAILURE, 2}, of = {MON_RESTART_ON_FAILURE, 0};
    tap_ok(!mon_restart_should(&no, 1, 0), "no never restarts");
    tap_ok(mon_restart_should(&always, 0, 1000), "always restarts after success too");
    tap_ok(mon_restart_should(&of2, 1, 0) && mon_restart_should(&of2, 1, 1) &&
               !mon_restart_should(&of2, 1, 2),
           "on-failure:2 restarts twice");
    tap_ok(!mon_restart_should(&of2, 0, 0), "on-failure not after exit 0");
    tap_ok(mon_restart_should(&of, 137, 100000), "on-failure without a limit");

    TAP_EQ_INT(mon_backoff_next(0, 0), 100, "first delay 100 ms");
    TAP_EQ_INT(mon_backoff_next(100, 1000000), 200, "doubles");
    TAP_EQ_INT(mon_backoff_next(51200, 0), 60000, "capped at a minute");
    TAP_EQ_INT(mon_backoff_next(60000, 0), 60000, "stays at a minute");
    TAP_EQ_INT(mon_backoff_next(60000, MON_BACKOFF_RESET_NS), 100, "reset after running 10 s");
    TAP_EQ_INT(mon_backoff_next(800, MON_BACKOFF_RESET_NS - 1), 1600,
               "no reset just short of 10 s");
    uint64_t d = 0;
    for (int i = 0; i < 20; i++)
        d = mon_backoff_next(d, 0);
    TAP_EQ_INT(d, 60000, "a long series ends at the cap");
}

static struct mon_health_result result(int code, const char *out)
{
    struct mon_health_result r = {.exit_code = code, .output = strdup(out)};
    snprintf(r.start, sizeof(r.start), "s%d", code);
    return r;
}

static void test_health(void)
{
    struct mon_health h = {0};
    mon_health_reset(&h);
    TAP_EQ_STR(mon_health_status_name(h.status), "starting", "starts as starting");
    struct mon_health_result r = result(1, "no");
    mon_health_record(&h, &r, true, 1);
    tap_ok(h.status == MON_HEALTH_STARTING && h.failing_streak == 0,
           "failure in the start period does not count");
    r = result(1, "no");
    mon_health_record(&h, &r, false, 2);
    tap_ok(h.status == MON_HEALTH_STARTING && h.failing_streak == 1, "one failure of two");
    r = result(1, "no");
    mon_health_record(&h, &r, false, 2);
    tap_ok(h.status == MON_HEALTH_UNHEALTHY && h.failing_streak == 2, "retries reached");
    r = result(0, "ok");
    mon_health_record(&h, &r, false, 2);
    tap_ok(h.status == MON_HEALTH_HEALTHY && h.failing_streak == 0, "success heals");
    r = result(1, "no");
    mon_health_record(&h, &r, true, 2);
    tap_ok(h.status == MON_HEALTH_HEALTHY && h.failing_streak == 1,
           "after being healthy the start period no longer shields failures");
    r = result(-1, "timeout");
    mon_health_record(&h, &r, false, 2);
    TAP_EQ_INT(h.n_log, 5, "five results kept");
    TAP_EQ_INT(h.log[0].exit_code, 1, "oldest dropped");
    TAP_EQ_INT(h.log[4].exit_code, -1, "newest last");
    TAP_EQ_STR(h.log[4].output, "timeout", "output kept");
    mon_health_reset(&h);
    tap_ok(h.status == MON_HEALTH_STARTING && h.failing_streak == 0 && h.n_log == 5,
           "reset at start keeps the log");
    mon_health_clear(&h);

    char buf[32];
    TAP_EQ_STR(mon_format_duration(30000000000LL, buf, sizeof(buf)), "30s", "30s");
    TAP_EQ_STR(mon_format_duration(1500000000LL, buf, sizeof(buf)), "1.5s", "1.5s");
    TAP_EQ_STR(mon_format_duration(300000000LL, buf, sizeof(buf)), "300ms", "300ms");
    TAP_EQ_STR(mon_format_duration(90000000000LL, buf, sizeof(buf)), "1m30s", "1m30s");
    TAP_EQ_STR(mon_format_duration(3600000000000LL, buf, sizeof(buf)), "1h0m0s", "1h0m0s");
    TAP_EQ_STR(mon_format_duration(1500000LL, buf, sizeof(buf)), "1.5ms", "1.5ms");
    TAP_EQ_STR(mon_format_duration(2000LL, buf, sizeof(buf)), "2µs", "2µs");
}

static void test_oom_files(void)
{
    char v2[256], v1[256];
    /* This machine's hybrid layout: memory on v1, only hugetlb on v2 ("unified"). */
    const char *hybrid_cg = "12:memory:/kiste/c1\n11:cpu,cpuacct:/kiste/c1\n0::/kiste/c1\n";
    const char *hybrid_mi =
        "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
        "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
        "32 25 0:28 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory\n";
    mon_oom_files(hybrid_cg, hybrid_mi, v2, v1, sizeof(v2));
    TAP_EQ_STR(v2, "/sys/fs/cgroup/unified/kiste/c1/memory.events", "hybrid: v2 candidate");
    TAP_EQ_STR(v1, "/sys/fs/cgroup/memory/kiste/c1/memory.oom_control", "hybrid: v1 file");

    const char *v2_cg = "0::/kiste/c2\n";
    const char *v2_mi = "35 25 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
    mon_oom_files(v2_cg, v2_mi, v2, v1, sizeof(v2));
    TAP_EQ_STR(v2, "/sys/fs/cgroup/kiste/c2/memory.events", "v2: memory.events");
    TAP_EQ_STR(v1, "", "v2: no v1 file");

    const char *v1_cg = "4:memory:/kiste/c3\n3:cpuset:/kiste/c3\n1:name=systemd:/x\n";
    const char *v1_mi = "40 25 0:40 / /sys/fs/cgroup/memorything rw - cgroup cgroup rw,memory_x\n"
                        "41 25 0:41 / /cg/mem rw - cgroup cgroup rw,memory\n";
    mon_oom_files(v1_cg, v1_mi, v2, v1, sizeof(v2));
    TAP_EQ_STR(v2, "", "v1: no v2 file");
    TAP_EQ_STR(v1, "/cg/mem/kiste/c3/memory.oom_control", "v1: the mount with memory");

    mon_oom_files("0::/\n", v2_mi, v2, v1, sizeof(v2));
    TAP_EQ_STR(v2, "/sys/fs/cgroup/memory.events", "root cgroup");

    tap_ok(mon_oom_count_parse("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), "v2 oom_kill 1");
    tap_ok(!mon_oom_count_parse("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"),
           "v2 oom_kill 0");
    tap_ok(mon_oom_count_parse("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"), "v1 oom_kill 2");
    tap_ok(!mon_oom_count_parse("oom_kill_disable 1\nunder_oom 0\n"), "no count, no kill");
}

int main(void)
{
    tap_plan_auto();
    test_escape();
    test_parse_strv();
    test_split();
    test_logfile();
    test_restart();
    test_health();
    test_oom_files();
    return tap_done();
}
