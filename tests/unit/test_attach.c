/* The attach client against a monitor played by the test over a real SOCK_SEQPACKET socketpair:
 * stdin forwarding and EOF, output by stream, the exit message, a closed connection, the detach
 * sequence across reads, raw mode and resizes on a real pseudo-terminal, signal proxying, and
 * output to closed stdout. Each session runs in a forked child with its own stdio. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "base/fs.h"
#include "cli/attach.h"
#include "tap.h"

static char dir[] = "/tmp/kiste-test-attach-XXXXXX";

static void test_parse_keys(void)
{
    char k[8];
    size_t n = sizeof(k);
    _cleanup_error_ struct ks_error *err = NULL;
    tap_ok(ks_cli_parse_detach_keys("ctrl-p,ctrl-q", k, &n, &err) == 0 && n == 2 && k[0] == 16 &&
               k[1] == 17,
           "detach keys: ctrl-p,ctrl-q is 0x10 0x11");
    n = sizeof(k);
    tap_ok(ks_cli_parse_detach_keys("a,ctrl-\\,x", k, &n, &err) == 0 && n == 3 && k[0] == 'a' &&
               k[1] == 28 && k[2] == 'x',
           "detach keys: a,ctrl-\\,x");
    n = sizeof(k);
    tap_ok(ks_cli_parse_detach_keys("ctrl-@,ctrl-[,ctrl-_,ctrl-Z,,", k, &n, &err) < 0,
           "detach keys: an empty key is an error");
    ks_error_free(TAKE_PTR(err));
    n = sizeof(k);
    tap_ok(ks_cli_parse_detach_keys("ctrl-@,ctrl-[,ctrl-_,ctrl-Z", k, &n, &err) == 0 && n == 4 &&
               k[0] == 0 && k[1] == 27 && k[2] == 31 && k[3] == 26,
           "detach keys: ctrl-@, ctrl-[, ctrl-_, ctrl-Z");
    const char *bad[] = {"", "ctrl-", "foo", "ctrl-1", "ctrl-pq", "a,,b", "ab,c", NULL};
    bool all = true;
    for (const char **b = bad; *b; b++) {
        n = sizeof(k);
        bool failed = ks_cli_parse_detach_keys(*b, k, &n, &err) < 0 && err != NULL;
        if (!failed)
            tap_diag("`%s` parsed", *b);
        all = all && failed;
        ks_error_free(TAKE_PTR(err));
    }
    tap_ok(all, "detach keys: malformed specs are errors");
    n = 2;
    tap_ok(ks_cli_parse_detach_keys("a,b,c", k, &n, &err) < 0, "detach keys: too many for ret");
}

/* ---------------------------------------------------------------------------------------------
 * Sessions */

struct session {
    pid_t pid;
    int sock;   /* the monitor's end */
    int result; /* a pipe: the child writes ks_cli_attach_session's return value */
};

struct stdio {
    int in, out, err; /* fds for the child's 0, 1, 2; -1: closed */
    bool ctty;        /* in is a terminal to make the controlling one */
};

static struct session start(const struct ks_attach_opts *o, struct stdio io)
{
    struct session s = {.pid = -1, .sock = -1, .result = -1};
    int sp[2], rp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 || pipe2(rp, O_CLOEXEC) < 0)
        abort();
    s.pid = fork();
    if (s.pid == 0) {
        close(sp[0]);
        close(rp[0]);
        /* As in kiste: a broken pipe would end the process unless the client handles it. */
        signal(SIGPIPE, SIG_DFL);
        if (io.ctty) {
            setsid();
            ioctl(io.in, TIOCSCTTY, 0);
        }
        int fds[3] = {io.in, io.out, io.err};
        for (int i = 0; i < 3; i++) {
            if (fds[i] < 0)
                close(i);
            else if (fds[i] != i && dup2(fds[i], i) < 0)
                _exit(99);
        }
        /* The test's other fds (the write end of our stdin pipe …) are not the client's. */
        for (int fd = 3; fd < 1024; fd++)
            if (fd != sp[1] && fd != rp[1])
                close(fd);
        struct ks_error *err = NULL;
        int r = ks_cli_attach_session(sp[1], o, &err);
        if (r < 0 && err)
            dprintf(2, "ERROR %s\n", err->msg);
        (void)!write(rp[1], &r, sizeof(r));
        _exit(0);
    }
    close(sp[1]);
    close(rp[1]);
    s.sock = sp[0];
    s.result = rp[0];
    return s;
}

/* The session's return value; INT_MIN when the child died without one. */
static int finish(struct session *s)
{
    int r = -99999;
    if (read(s->result, &r, sizeof(r)) != (ssize_t)sizeof(r))
        r = -99999;
    int st;
    waitpid(s->pid, &st, 0);
    if (!WIFEXITED(st))
        tap_diag("session child died: status %#x", st);
    close(s->result);
    if (s->sock >= 0)
        close(s->sock);
    return r;
}

static int send_msg(struct session *s, int kind, const char *payload)
{
    char buf[256];
    buf[0] = (char)kind;
    size_t n = strlen(payload);
    memcpy(buf + 1, payload, n);
    return send(s->sock, buf, n + 1, MSG_NOSIGNAL) == (ssize_t)(n + 1) ? 0 : -1;
}

/* The next message from the client within 5 s: its kind (payload NUL-terminated into buf), or
 * -1. */
static int recv_msg(struct session *s, char *buf, size_t size)
{
    struct pollfd pfd = {.fd = s->sock, .events = POLLIN};
    if (poll(&pfd, 1, 5000) <= 0)
        return -1;
    char m[64 * 1024];
    ssize_t n = recv(s->sock, m, sizeof(m), 0);
    if (n <= 0)
        return -1;
    size_t len = (size_t)n - 1 < size - 1 ? (size_t)n - 1 : size - 1;
    memcpy(buf, m + 1, len);
    buf[len] = '\0';
    return (unsigned char)m[0];
}

/* Stdin messages concatenated into buf (*ret_len bytes), until want bytes came (want > 0) or
 * a message of another kind is next (left unread): 0. When the connection closed or nothing
 * came for 5 s: -1 (with what came before in buf). */
static int recv_stdin(struct session *s, char *buf, size_t size, size_t want, size_t *ret_len)
{
    size_t len = 0;
    int r = -1;
    for (;;) {
        char m[1024];
        struct pollfd pfd = {.fd = s->sock, .events = POLLIN};
        if (poll(&pfd, 1, 5000) <= 0)
            break;
        ssize_t n = recv(s->sock, m, sizeof(m), MSG_PEEK);
        if (n <= 0)
            break;
        if (m[0] != 0) {
            r = 0;
            break;
        }
        n = recv(s->sock, m, sizeof(m), 0);
        if (len + (size_t)n - 1 >= size)
            break;
        memcpy(buf + len, m + 1, (size_t)n - 1);
        len += (size_t)n - 1;
        if (want > 0 && len >= want) {
            r = 0;
            break;
        }
    }
    buf[len] = '\0';
    *ret_len = len;
    return r;
}

static char *path_of(const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        abort();
    return p;
}

static int open_out(const char *name)
{
    _cleanup_free_ char *p = path_of(name);
    return open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

static char *read_out(const char *name)
{
    _cleanup_free_ char *p = path_of(name);
    char *t = NULL;
    size_t len;
    if (ks_read_file(p, &t, &len, NULL) < 0)
        return strdup("?");
    return t;
}

static void test_pipes(void)
{
    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        abort();
    int out = open_out("out"), err = open_out("err");
    struct ks_attach_opts o = {.stdin_open = true};
    struct session s = start(&o, (struct stdio){in[0], out, err, false});
    close(in[0]);
    close(out);
    close(err);
    (void)!write(in[1], "hello", 5);
    close(in[1]);
    char buf[256];
    size_t len = 0;
    tap_ok(recv_stdin(&s, buf, sizeof(buf), 0, &len) == 0 && len == 5 &&
               memcmp(buf, "hello", 5) == 0,
           "pipes: stdin data arrives as kind 0");
    TAP_EQ_INT(recv_msg(&s, buf, sizeof(buf)), 1, "pipes: stdin EOF sends kind 1 (close)");
    send_msg(&s, 1, "out\n");
    send_msg(&s, 2, "err\n");
    send_msg(&s, 1, "more\n");
    send_msg(&s, 3, "42");
    TAP_EQ_INT(finish(&s), 42, "pipes: the exit message's code is returned");
    _cleanup_free_ char *o1 = read_out("out"), *e1 = read_out("err");
    TAP_EQ_STR(o1, "out\nmore\n", "pipes: stream 1 on stdout");
    TAP_EQ_STR(e1, "err\n", "pipes: stream 2 on stderr");
}

static void test_closed_and_malformed(void)
{
    int out = open_out("out");
    struct ks_attach_opts o = {0};
    struct session s = start(&o, (struct stdio){-1, out, out, false});
    send_msg(&s, 1, "bye\n");
    close(s.sock);
    s.sock = -1;
    TAP_EQ_INT(finish(&s), KS_ATTACH_CLOSED, "a connection closed without exit: CLOSED");
    _cleanup_free_ char *o1 = read_out("out");
    TAP_EQ_STR(o1, "bye\n", "… after the output before it");

    s = start(&o, (struct stdio){-1, out, out, false});
    send_msg(&s, 9, "unknown kind");
    send_msg(&s, 3, "4x2");
    TAP_EQ_INT(finish(&s), -EPROTO, "a malformed exit message: -EPROTO");
    s = start(&o, (struct stdio){-1, out, out, false});
    send_msg(&s, 3, "99999999999");
    TAP_EQ_INT(finish(&s), -EPROTO, "an exit code out of range: -EPROTO");
    s = start(&o, (struct stdio){-1, out, out, false});
    send_msg(&s, 3, "0");
    TAP_EQ_INT(finish(&s), 0, "exit 0");
    /* Every code comes back as it is, 1 and 2 included. */
    for (int code = 1; code <= 3; code++) {
        char c[4];
        snprintf(c, sizeof(c), "%d", code);
        s = start(&o, (struct stdio){-1, out, out, false});
        send_msg(&s, 3, c);
        TAP_EQ_INT(finish(&s), code, "exit %d", code);
    }
    s = start(&o, (struct stdio){-1, out, out, false});
    send_msg(&s, 3, "255");
    TAP_EQ_INT(finish(&s), 255, "exit 255");
    close(out);
}

static void test_detach(const char *keys, const char *const *chunks, const char *want_forwarded,
                        const char *what)
{
    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        abort();
    int out = open_out("out"), err = open_out("err");
    struct ks_attach_opts o = {.tty = true, .stdin_open = true, .detach_keys = keys};
    struct session s = start(&o, (struct stdio){in[0], out, err, false});
    close(in[0]);
    close(out);
    close(err);
    for (const char *const *c = chunks; *c; c++) {
        (void)!write(in[1], *c, strlen(*c));
        usleep(50000); /* separate reads */
    }
    char buf[256];
    size_t len = 0;
    /* The session ends by detaching: the socket closes after the forwarded input. */
    int r = recv_stdin(&s, buf, sizeof(buf), 0, &len);
    int res = finish(&s);
    close(in[1]);
    TAP_EQ_INT(res, KS_ATTACH_DETACHED, "detach %s: DETACHED", what);
    TAP_EQ_INT(r, -1, "detach %s: the connection closes after the input", what);
    TAP_EQ_STR(buf, want_forwarded, "detach %s: forwarded input", what);
    _cleanup_free_ char *o1 = read_out("out"), *e1 = read_out("err");
    TAP_EQ_STR(o1, "", "detach %s: nothing on stdout", what);
    TAP_EQ_STR(e1, "read escape sequence\n", "detach %s: the message on stderr", what);
}

static void test_detach_keys(void)
{
    const char *const c1[] = {"ab\x10"
                              "c\x10",
                              "\x11zz", NULL};
    test_detach(NULL, c1,
                "ab\x10"
                "c",
                "(default, across reads)");
    const char *const c2[] = {"xaaby", NULL};
    test_detach("a,b", c2, "xa", "(a,b after a failed partial match)");
    const char *const c3[] = {"12", "\x01", "3", NULL};
    test_detach("ctrl-a", c3, "12", "(one key)");
}

static void test_pty(void)
{
    int master, slave;
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    if (openpty(&master, &slave, NULL, NULL, &ws) < 0) {
        tap_skip("no pty", "pty session");
        return;
    }
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
    int err = open_out("err");
    struct ks_attach_opts o = {.tty = true, .stdin_open = true};
    struct session s = start(&o, (struct stdio){slave, slave, err, true});
    close(err);
    char buf[256];
    int k = recv_msg(&s, buf, sizeof(buf));
    tap_ok(k == 2 && strcmp(buf, "24 80") == 0, "pty: the initial size is sent (%d `%s`)", k, buf);
    struct winsize ws2 = {.ws_row = 30, .ws_col = 100};
    ioctl(master, TIOCSWINSZ, &ws2);
    k = recv_msg(&s, buf, sizeof(buf));
    tap_ok(k == 2 && strcmp(buf, "30 100") == 0, "pty: SIGWINCH sends the new size (%d `%s`)", k,
           buf);
    /* Raw mode: a byte without newline arrives at once, ctrl-C is data, not a signal. */
    (void)!write(master, "x\x03", 2);
    size_t len;
    tap_ok(recv_stdin(&s, buf, sizeof(buf), 2, &len) == 0 && len == 2 &&
               memcmp(buf, "x\x03", 2) == 0,
           "pty: raw mode (no line buffering, ctrl-C passed through)");
    struct termios t;
    tcgetattr(slave, &t);
    tap_ok(!(t.c_lflag & ICANON) && !(t.c_lflag & ECHO), "pty: raw while attached");
    send_msg(&s, 1, "hi\n");
    send_msg(&s, 2, "err-on-tty\n");
    usleep(100000);
    char got[256] = {0};
    ssize_t n = read(master, got, sizeof(got) - 1);
    TAP_EQ_STR(n > 0 ? got : "", "hi\nerr-on-tty\n",
               "pty: both streams on the terminal, unchanged (no \\r added)");
    send_msg(&s, 3, "0");
    TAP_EQ_INT(finish(&s), 0, "pty: exit 0");
    tcgetattr(slave, &t);
    tap_ok((t.c_lflag & ICANON) && (t.c_lflag & ECHO), "pty: the terminal mode is restored");
    close(master);
    close(slave);
}

/* SIGTERM while the terminal is raw and nothing is proxied: the client dies of it, but only
 * after restoring the terminal. */
static void test_pty_fatal_signal(void)
{
    int master, slave;
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    if (openpty(&master, &slave, NULL, NULL, &ws) < 0) {
        tap_skip("no pty", "pty session");
        return;
    }
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
    struct ks_attach_opts o = {.tty = true, .stdin_open = true};
    struct session s = start(&o, (struct stdio){slave, slave, slave, true});
    char buf[64];
    recv_msg(&s, buf, sizeof(buf)); /* the initial size: the loop runs */
    struct termios t;
    tcgetattr(slave, &t);
    tap_ok(!(t.c_lflag & ICANON), "fatal signal: raw while attached");
    kill(s.pid, SIGTERM);
    int st;
    waitpid(s.pid, &st, 0);
    tap_ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "fatal signal: the client dies of SIGTERM");
    tcgetattr(slave, &t);
    tap_ok((t.c_lflag & ICANON) && (t.c_lflag & ECHO), "fatal signal: the terminal is restored");
    close(s.result);
    close(s.sock);
    close(master);
    close(slave);
}

static void test_sig_proxy(void)
{
    int rep[2];
    if (pipe2(rep, O_CLOEXEC) < 0)
        abort();
    /* The "container init": reports the signals it gets, ends after three. */
    pid_t target = fork();
    if (target == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR1);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        sigprocmask(SIG_BLOCK, &set, NULL);
        (void)!write(rep[1], "R", 1);
        for (int i = 0; i < 3; i++) {
            char c = (char)sigwaitinfo(&set, NULL);
            (void)!write(rep[1], &c, 1);
        }
        _exit(0);
    }
    close(rep[1]);
    char c;
    (void)!read(rep[0], &c, 1);

    int in[2];
    if (pipe2(in, O_CLOEXEC) < 0)
        abort();
    int out = open_out("out");
    struct ks_attach_opts o = {.stdin_open = true, .sig_proxy = true, .proxy_pid = target};
    struct session s = start(&o, (struct stdio){in[0], out, out, false});
    close(in[0]);
    close(out);
    /* Once input comes through, the loop (and its signal mask) is in place. */
    (void)!write(in[1], "x", 1);
    char buf[64];
    size_t len;
    recv_stdin(&s, buf, sizeof(buf), 1, &len);
    kill(s.pid, SIGUSR1);
    kill(s.pid, SIGTERM);
    kill(s.pid, SIGHUP);
    int got = 0;
    for (int i = 0; i < 3; i++) {
        struct pollfd pfd = {.fd = rep[0], .events = POLLIN};
        if (poll(&pfd, 1, 5000) <= 0 || read(rep[0], &c, 1) != 1)
            break;
        got |= 1 << c;
    }
    TAP_EQ_INT(got, (1 << SIGUSR1) | (1 << SIGTERM) | (1 << SIGHUP),
               "sig-proxy: SIGUSR1, SIGTERM, SIGHUP reach the target");
    int st;
    waitpid(target, &st, 0);
    send_msg(&s, 3, "5");
    TAP_EQ_INT(finish(&s), 5, "sig-proxy: the client itself survived them");
    close(in[1]);
    close(rep[0]);
}

static void test_dead_stdout(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        abort();
    int err = open_out("err");
    struct ks_attach_opts o = {0};
    struct session s = start(&o, (struct stdio){-1, p[1], err, false});
    close(p[1]);
    close(p[0]); /* the reader went away: EPIPE */
    close(err);
    for (int i = 0; i < 5; i++)
        send_msg(&s, 1, "lost output\n");
    send_msg(&s, 2, "still here\n");
    send_msg(&s, 3, "7");
    TAP_EQ_INT(finish(&s), 7, "stdout a broken pipe: no SIGPIPE, the exit code returns");
    _cleanup_free_ char *e1 = read_out("err");
    TAP_EQ_STR(e1, "still here\n", "… and stderr still works");

    s = start(&o, (struct stdio){-1, -1, -1, false});
    send_msg(&s, 1, "nowhere\n");
    send_msg(&s, 2, "nowhere\n");
    send_msg(&s, 3, "3");
    TAP_EQ_INT(finish(&s), 3, "stdout and stderr closed: the exit code returns");
}

int main(void)
{
    tap_plan_auto();
    /* The test writes to clients that may have gone. */
    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL)
        return 1;
    test_parse_keys();
    test_pipes();
    test_closed_and_malformed();
    test_detach_keys();
    test_pty();
    test_pty_fatal_signal();
    test_sig_proxy();
    test_dead_stdout();
    ks_rm_rf_at(AT_FDCWD, dir, NULL);
    return tap_done();
}
