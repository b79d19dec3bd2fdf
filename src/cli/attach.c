/* The client side of an attached container. One poll loop moves our stdin to the monitor's
 * attach socket and the container's output from it to our stdout and stderr; a signalfd brings
 * terminal resizes and the signals to proxy into the same loop, so no handler runs
 * asynchronously and nothing is lost between a signal and its forwarding. */
#include "attach.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "lib/base/fs.h"

/* Attach protocol message kinds (one SOCK_SEQPACKET record each, payload at most 32 KiB): what
 * we send, and what the monitor sends. */
enum { MSG_STDIN = 0, MSG_STDIN_CLOSE = 1, MSG_RESIZE = 2 };
enum { MSG_STDOUT = 1, MSG_STDERR = 2, MSG_EXIT = 3 };
#define PAYLOAD_MAX (32 * 1024)

#define DETACH_KEYS_DEFAULT "ctrl-p,ctrl-q"
#define DETACH_KEYS_MAX     32

/* Signals a proxying client forwards: the ones a user or a supervisor sends to stop, reload or
 * poke a program. Job control, SIGCHLD, SIGPIPE, SIGWINCH and faults stay ours. */
static const int proxied_signals[] = {SIGHUP,  SIGINT,  SIGQUIT, SIGTERM,
                                      SIGUSR1, SIGUSR2, SIGALRM, SIGVTALRM};

/* Docker's names of the control characters, in the order of their codes 0…31. */
static const char *const ctrl_names[32] = {
    "@", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l",  "m", "n", "o",
    "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z", "[", "\\", "]", "^", "_",
};

int ks_cli_parse_detach_keys(const char *spec, char *ret, size_t *ret_len, struct ks_error **err)
{
    size_t n = 0;
    const char *p = spec;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int code = -1;
        if (len == 1) {
            code = (unsigned char)p[0];
        } else if (len > 5 && strncasecmp(p, "ctrl-", 5) == 0) {
            for (int c = 0; c < 32 && code < 0; c++)
                if (len - 5 == strlen(ctrl_names[c]) &&
                    strncasecmp(p + 5, ctrl_names[c], len - 5) == 0)
                    code = c;
        }
        if (code < 0)
            return ks_error_msg(err, "detach keys `%s`: unknown key `%.*s`", spec,
                                (int)(len > 32 ? 32 : len), p);
        if (n >= *ret_len)
            return ks_error_msg(err, "detach keys `%s`: too many keys", spec);
        ret[n++] = (char)code;
        if (end == NULL)
            break;
        p = end + 1;
    }
    *ret_len = n;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The session's state */

struct session {
    int sock;
    const struct ks_attach_opts *o;
    /* The detach sequence and how much of it the last input matched. */
    char keys[DETACH_KEYS_MAX];
    size_t keys_len, matched;
    bool detach_active;
    bool stdin_done;  /* EOF, an error, or the monitor no longer takes input */
    bool out_dead[3]; /* our stdout/stderr went away: output to it is dropped */
    int size_fd;      /* the terminal whose size the container gets, -1: none */
    /* Restored at the end. */
    bool raw, masked, pipe_saved;
    /* A signal that ends us (not proxied) while the terminal is raw: taken through the loop so
     * that the terminal is restored first, then raised again. */
    int fatal_sig;
    struct termios saved_termios;
    sigset_t saved_mask;
    struct sigaction saved_sigpipe;
};

static int send_msg(struct session *s, int kind, const char *data, size_t len)
{
    char buf[1 + PAYLOAD_MAX];
    if (len > PAYLOAD_MAX)
        return -EMSGSIZE;
    buf[0] = (char)kind;
    if (len > 0)
        memcpy(buf + 1, data, len);
    for (;;) {
        ssize_t n = send(s->sock, buf, len + 1, MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            struct pollfd pfd = {.fd = s->sock, .events = POLLOUT};
            (void)poll(&pfd, 1, -1);
            continue;
        }
        return -errno;
    }
}

/* Sends stdin data in messages of at most PAYLOAD_MAX bytes. When the monitor no longer reads
 * (it closed the connection), input stops; its last messages are still read. */
static void send_stdin(struct session *s, const char *data, size_t len)
{
    while (len > 0 && !s->stdin_done) {
        size_t n = len < PAYLOAD_MAX ? len : PAYLOAD_MAX;
        if (send_msg(s, MSG_STDIN, data, n) < 0)
            s->stdin_done = true;
        data += n;
        len -= n;
    }
}

static void send_resize(struct session *s)
{
    struct winsize ws;
    if (s->size_fd < 0 || ioctl(s->size_fd, TIOCGWINSZ, &ws) < 0 || ws.ws_row == 0 ||
        ws.ws_col == 0)
        return;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%u %u", ws.ws_row, ws.ws_col);
    (void)send_msg(s, MSG_RESIZE, buf, (size_t)n);
}

/* Writes container output to our fd 1 or 2. A closed fd or a reader that went away only
 * drops that stream: the container keeps running and its exit code still comes back. */
static void write_out(struct session *s, int fd, const char *data, size_t len)
{
    while (len > 0 && !s->out_dead[fd]) {
        ssize_t n = write(fd, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            /* Our stdout may be a non-blocking fd shared with another process. */
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            (void)poll(&pfd, 1, -1);
        } else {
            s->out_dead[fd] = true;
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Input: the detach sequence */

/* Forwards data, holding back a prefix of the detach sequence until the next byte shows
 * whether it completes. Returns true when the sequence was typed (the bytes before it are
 * forwarded, the sequence and anything after it are not). */
static bool forward_input(struct session *s, const char *data, size_t len)
{
    if (!s->detach_active) {
        send_stdin(s, data, len);
        return false;
    }
    /* At most every input byte plus the held-back prefix. */
    _cleanup_free_ char *out = malloc(len + DETACH_KEYS_MAX);
    if (out == NULL) {
        send_stdin(s, data, len);
        return false;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = data[i];
        if (c == s->keys[s->matched]) {
            if (++s->matched == s->keys_len) {
                send_stdin(s, out, n);
                return true;
            }
            continue;
        }
        if (s->matched > 0) {
            /* A failed partial match is input after all; c may start a new match. */
            memcpy(out + n, s->keys, s->matched);
            n += s->matched;
            s->matched = 0;
            if (c == s->keys[0]) {
                s->matched = 1;
                if (s->keys_len == 1) {
                    send_stdin(s, out, n);
                    return true;
                }
                continue;
            }
        }
        out[n++] = c;
    }
    send_stdin(s, out, n);
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Events */

/* Loop states besides the session's results (exit codes >= 0, KS_ATTACH_*, -errno). */
enum { CONTINUE = -2000, SIGNALED = -2001 };

static bool proxying(const struct session *s)
{
    return s->o->sig_proxy && s->o->proxy_pid > 0;
}

/* A signal from the signalfd: a resize, one to forward, or one that ends the session. */
static int handle_signal(struct session *s, int sig)
{
    if (sig == SIGWINCH) {
        send_resize(s);
        return CONTINUE;
    }
    if (proxying(s)) {
        (void)kill(s->o->proxy_pid, sig);
        return CONTINUE;
    }
    s->fatal_sig = sig;
    return SIGNALED;
}

/* One message from the monitor: CONTINUE, the exit code, KS_ATTACH_CLOSED or -errno. */
static int on_socket(struct session *s, struct ks_error **err)
{
    char buf[1 + PAYLOAD_MAX];
    ssize_t n = recv(s->sock, buf, sizeof(buf), MSG_TRUNC);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return CONTINUE;
        if (errno == ECONNRESET)
            return KS_ATTACH_CLOSED;
        return ks_error_set(err, errno, "reading from the container");
    }
    if (n == 0)
        return KS_ATTACH_CLOSED;
    if ((size_t)n > sizeof(buf))
        return ks_error_set_plain(err, EPROTO, "the monitor sent a message of %zd bytes", n);
    const char *payload = buf + 1;
    size_t len = (size_t)n - 1;
    switch (buf[0]) {
    case MSG_STDOUT:
        write_out(s, STDOUT_FILENO, payload, len);
        return CONTINUE;
    case MSG_STDERR:
        write_out(s, s->o->tty ? STDOUT_FILENO : STDERR_FILENO, payload, len);
        return CONTINUE;
    case MSG_EXIT: {
        int code = 0;
        if (len == 0 || len > 10)
            return ks_error_set_plain(err, EPROTO, "malformed exit message from the monitor");
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)payload[i]) || code > (INT_MAX - 9) / 10)
                return ks_error_set_plain(err, EPROTO, "malformed exit message from the monitor");
            code = code * 10 + (payload[i] - '0');
        }
        return code;
    }
    default:
        /* Unknown kinds are from a newer monitor: skipped. */
        return CONTINUE;
    }
}

/* Our stdin: CONTINUE or KS_ATTACH_DETACHED. */
static int on_stdin(struct session *s)
{
    char buf[PAYLOAD_MAX];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return CONTINUE;
    if (n <= 0) {
        /* EOF (or an error, which ends input the same way). Without a terminal the container
         * sees EOF too; with one, as with Docker, its stdin stays open. */
        if (!s->o->tty && !s->stdin_done)
            (void)send_msg(s, MSG_STDIN_CLOSE, NULL, 0);
        s->stdin_done = true;
        return CONTINUE;
    }
    return forward_input(s, buf, (size_t)n) ? KS_ATTACH_DETACHED : CONTINUE;
}

static int on_signal(struct session *s, int sfd)
{
    struct signalfd_siginfo si;
    ssize_t n = read(sfd, &si, sizeof(si));
    if (n != (ssize_t)sizeof(si))
        return CONTINUE;
    return handle_signal(s, (int)si.ssi_signo);
}

/* ---------------------------------------------------------------------------------------------
 * Setup and teardown */

static int setup(struct session *s, sigset_t *ret_set, struct ks_error **err)
{
    if (s->o->tty && s->o->stdin_open) {
        const char *spec =
            s->o->detach_keys && *s->o->detach_keys ? s->o->detach_keys : DETACH_KEYS_DEFAULT;
        s->keys_len = sizeof(s->keys);
        int r = ks_cli_parse_detach_keys(spec, s->keys, &s->keys_len, err);
        if (r < 0)
            return r;
        s->detach_active = s->keys_len > 0;
    }
    s->size_fd = -1;
    if (s->o->tty) {
        const int candidates[] = {STDOUT_FILENO, STDIN_FILENO, STDERR_FILENO};
        for (size_t i = 0; i < KS_ELEMENTSOF(candidates) && s->size_fd < 0; i++)
            if (isatty(candidates[i]))
                s->size_fd = candidates[i];
    }

    bool want_raw = s->o->tty && s->o->stdin_open && isatty(STDIN_FILENO);
    sigemptyset(ret_set);
    if (s->o->tty)
        sigaddset(ret_set, SIGWINCH);
    /* Without proxying they are caught only in raw mode, to restore the terminal before they
     * take effect. */
    if (proxying(s) || want_raw)
        for (size_t i = 0; i < KS_ELEMENTSOF(proxied_signals); i++)
            sigaddset(ret_set, proxied_signals[i]);
    if (sigprocmask(SIG_BLOCK, ret_set, &s->saved_mask) < 0)
        return ks_error_set(err, errno, "blocking signals");
    s->masked = true;
    /* Writing to a closed pipe must fail with EPIPE, not end the process. */
    struct sigaction ign = {.sa_handler = SIG_IGN};
    s->pipe_saved = sigaction(SIGPIPE, &ign, &s->saved_sigpipe) == 0;

    if (want_raw && tcgetattr(STDIN_FILENO, &s->saved_termios) == 0) {
        struct termios raw = s->saved_termios;
        cfmakeraw(&raw);
        if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) < 0)
            return ks_error_set(err, errno, "setting the terminal to raw mode");
        s->raw = true;
    }
    return 0;
}

static void teardown(struct session *s, int sfd)
{
    if (s->raw)
        (void)tcsetattr(STDIN_FILENO, TCSADRAIN, &s->saved_termios);
    s->raw = false;
    /* Signals that arrived since the last read would take their default actions once
     * unblocked: they go where the loop would have sent them. */
    if (sfd >= 0) {
        int fl = fcntl(sfd, F_GETFL);
        if (fl >= 0 && fcntl(sfd, F_SETFL, fl | O_NONBLOCK) == 0) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                if ((int)si.ssi_signo != SIGWINCH)
                    (void)handle_signal(s, (int)si.ssi_signo);
        }
    }
    if (s->masked)
        sigprocmask(SIG_SETMASK, &s->saved_mask, NULL);
    if (s->pipe_saved)
        sigaction(SIGPIPE, &s->saved_sigpipe, NULL);
}

static int loop(struct session *s, int sfd, struct ks_error **err)
{
    if (s->o->tty)
        send_resize(s);
    for (;;) {
        struct pollfd pfds[3] = {
            {.fd = s->sock, .events = POLLIN},
            {.fd = sfd, .events = POLLIN},
            {.fd = s->o->stdin_open && !s->stdin_done ? STDIN_FILENO : -1, .events = POLLIN},
        };
        int r = poll(pfds, 3, -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return ks_error_set(err, errno, "poll");
        }
        /* The socket first: output that came before an exit message is shown before it. */
        if (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            r = on_socket(s, err);
            if (r != CONTINUE)
                return r;
        }
        if ((pfds[1].revents & POLLIN) && on_signal(s, sfd) == SIGNALED)
            return SIGNALED;
        if (pfds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
            r = on_stdin(s);
            if (r != CONTINUE)
                return r;
        } else if (pfds[2].revents & POLLNVAL) {
            s->stdin_done = true; /* no stdin at all */
        }
    }
}

int ks_cli_attach_session(int fd, const struct ks_attach_opts *o, struct ks_error **err)
{
    struct session s = {.sock = fd, .o = o};
    sigset_t set;
    int r = setup(&s, &set, err);
    if (r < 0) {
        teardown(&s, -1);
        return r;
    }
    _cleanup_close_ int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0) {
        r = ks_error_set(err, errno, "signalfd");
        teardown(&s, -1);
        return r;
    }
    r = loop(&s, sfd, err);
    teardown(&s, sfd);
    if (s.fatal_sig != 0) {
        /* Its default action (ending the process) now that the terminal is sane; with a
         * handler of the caller's, the session simply ends. */
        raise(s.fatal_sig);
        if (r == SIGNALED || r >= 0)
            r = ks_error_set(err, EINTR, "attach: interrupted by signal %d", s.fatal_sig);
    }
    if (r == KS_ATTACH_DETACHED) {
        /* Nothing on stdout, which may be a file or a pipe the user keeps. */
        static const char msg[] = "read escape sequence\n";
        (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    }
    return r;
}
