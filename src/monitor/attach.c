/* The attach socket and the container's stdio: output to every attached client and to the log,
 * input from the clients to the container's stdin, window sizes to the pty. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "monitor.h"

int mon_attach_listen(struct monitor *m, struct ks_error **err)
{
    unlink("attach");
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s < 0)
        return ks_error_set(err, errno, "socket");
    /* Relative to the run directory (our working directory): its full path may be longer
     * than sun_path. */
    struct sockaddr_un sa = {.sun_family = AF_UNIX, .sun_path = "attach"};
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 16) < 0) {
        int e = errno;
        close(s);
        return ks_error_set(err, e, "attach socket");
    }
    m->listen_fd = s;
    return 0;
}

void mon_attach_add(struct monitor *m, int fd)
{
    if (m->n_clients == MON_MAX_CLIENTS) {
        close(fd);
        return;
    }
    /* Room for a burst of output while the client reads (kernel memory, and only while the
     * client lags); beyond it the client loses data rather than the container waiting for
     * it. Past the system's wmem_max only with CAP_NET_ADMIN. */
    int sz = 4 * 1024 * 1024;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    m->clients[m->n_clients++] = (struct mon_client){.fd = fd};
}

void mon_attach_accept(struct monitor *m)
{
    for (;;) {
        int c = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;
        }
        mon_attach_add(m, c);
    }
}

static void client_remove(struct monitor *m, size_t i)
{
    bool had_stdin = m->clients[i].stdin_client;
    close(m->clients[i].fd);
    m->clients[i] = m->clients[--m->n_clients];
    /* --stdin-once: the container's stdin ends with the client that attached to it. */
    if (m->o.stdin_once && had_stdin)
        mon_stdin_close(m);
}

static bool send_msg(int fd, int kind, const char *data, size_t len)
{
    struct iovec iov[2] = {
        {.iov_base = &(char){(char)kind}, .iov_len = 1},
        {.iov_base = (void *)data, .iov_len = len},
    };
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
    for (;;) {
        ssize_t n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return true;
        if (errno == EINTR)
            continue;
        /* A client that does not read is never waited for: the message is dropped for it
         * (the log still has it), so a slow or stuck client cannot stall the container. */
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS;
    }
}

void mon_attach_broadcast(struct monitor *m, int kind, const char *data, size_t len)
{
    for (size_t i = 0; i < m->n_clients;) {
        if (send_msg(m->clients[i].fd, kind, data, len))
            i++;
        else
            client_remove(m, i);
    }
}

void mon_attach_exit(struct monitor *m)
{
    char code[16];
    int n = snprintf(code, sizeof(code), "%d", m->exit_code);
    for (size_t i = 0; i < m->n_clients; i++) {
        /* A takeover sent before the monitor started may not have been read yet when the
         * container exits at once; what else a client sent no longer matters. */
        char buf[64];
        ssize_t r;
        while ((r = recv(m->clients[i].fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
            if (buf[0] == MON_MSG_TAKEOVER)
                m->clients[i].takeover = true;
        /* The exit message matters more than output: wait a little for room for it. */
        struct timeval tv = {.tv_sec = 2};
        fcntl(m->clients[i].fd, F_SETFL, 0);
        setsockopt(m->clients[i].fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        struct iovec iov[2] = {{.iov_base = &(char){MON_MSG_EXIT}, .iov_len = 1},
                               {.iov_base = code, .iov_len = (size_t)n}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        ssize_t sent;
        while ((sent = sendmsg(m->clients[i].fd, &mh, MSG_NOSIGNAL)) < 0 && errno == EINTR)
            ;
        if (sent > 0 && m->clients[i].takeover && m->o.cleanup_deletes)
            m->cleanup_taken = true;
        close(m->clients[i].fd);
    }
    m->n_clients = 0;
}

static void resize(struct monitor *m, const char *p, size_t len)
{
    char s[32];
    if (!m->o.terminal || m->out_fd < 0 || len >= sizeof(s))
        return;
    memcpy(s, p, len);
    s[len] = '\0';
    unsigned rows, cols;
    if (sscanf(s, "%u %u", &rows, &cols) != 2 || rows > 65535 || cols > 65535)
        return;
    struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    ioctl(m->out_fd, TIOCSWINSZ, &ws);
}

void mon_stdin_close(struct monitor *m)
{
    if (m->in_fd < 0)
        return;
    if (m->in_pending_off < m->in_pending_len) {
        /* The end comes after the data sent before it. */
        m->in_close_pending = true;
        return;
    }
    m->in_close_pending = false;
    if (m->o.terminal) {
        /* A pty has no end of file of its own: its line discipline turns the EOF character at
         * the start of a line into one for the reader. */
        struct termios t;
        char eof = 4;
        if (tcgetattr(m->in_fd, &t) == 0 && t.c_cc[VEOF])
            eof = (char)t.c_cc[VEOF];
        if (write(m->in_fd, &eof, 1) < 0) {
            /* A full input queue loses the EOF; the close below is all that is left. */
        }
    }
    close(m->in_fd);
    m->in_fd = -EBADF;
    m->in_pending_len = m->in_pending_off = 0;
}

void mon_stdin_flush(struct monitor *m)
{
    while (m->in_pending_off < m->in_pending_len && m->in_fd >= 0) {
        ssize_t n = write(m->in_fd, m->in_pending + m->in_pending_off,
                          m->in_pending_len - m->in_pending_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            /* The container closed its stdin: what the clients send goes nowhere. */
            m->in_pending_len = m->in_pending_off = 0;
            close(m->in_fd);
            m->in_fd = -EBADF;
            return;
        }
        m->in_pending_off += (size_t)n;
    }
    m->in_pending_len = m->in_pending_off = 0;
    if (m->in_close_pending)
        mon_stdin_close(m);
}

bool mon_attach_client_read(struct monitor *m, size_t i)
{
    static char buf[MON_PAYLOAD_MAX + 1];
    ssize_t n;
    do
        n = recv(m->clients[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return true;
    if (n <= 0) {
        client_remove(m, i);
        return false;
    }
    switch (buf[0]) {
    case MON_MSG_STDIN:
        m->clients[i].stdin_client = true;
        if (m->in_fd < 0 || n == 1)
            break;
        if (m->in_pending == NULL && (m->in_pending = malloc(MON_PAYLOAD_MAX)) == NULL)
            break;
        /* The loop reads no more from the clients until this is written: their stdin waits
         * in their sockets rather than here. */
        memcpy(m->in_pending, buf + 1, (size_t)n - 1);
        m->in_pending_off = 0;
        m->in_pending_len = (size_t)n - 1;
        mon_stdin_flush(m);
        break;
    case MON_MSG_STDIN_CLOSE:
        mon_stdin_close(m);
        break;
    case MON_MSG_RESIZE:
        resize(m, buf + 1, (size_t)n - 1);
        break;
    case MON_MSG_TAKEOVER:
        m->clients[i].takeover = true;
        break;
    default:
        break;
    }
    return true;
}

struct line_ctx {
    struct monitor *m;
    const char *stream;
    char time[KS_RFC3339_LEN];
};

static void log_line(const char *line, size_t len, bool partial, void *userdata)
{
    struct line_ctx *c = userdata;
    (void)partial;
    /* A full disk loses log lines; it must not stop the container. */
    mon_logfile_write(&c->m->log, c->stream, line, len, c->time, NULL);
}

static void log_feed(struct monitor *m, int stream, const char *data, size_t len, bool eof)
{
    if (m->log.fd < 0)
        return;
    struct line_ctx c = {.m = m, .stream = stream ? "stderr" : "stdout"};
    ks_rfc3339_now(c.time, sizeof(c.time));
    mon_split_feed(&m->split[stream], data, len, log_line, &c);
    if (eof)
        mon_split_flush(&m->split[stream], log_line, &c);
}

void mon_stdio_read(struct monitor *m, int stream)
{
    static char buf[MON_PAYLOAD_MAX];
    int *fd = stream ? &m->err_fd : &m->out_fd;
    if (*fd < 0)
        return;
    ssize_t n;
    do
        n = read(*fd, buf, sizeof(buf));
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        /* End of file, or EIO from a pty master whose other side is closed. */
        log_feed(m, stream, NULL, 0, true);
        close(*fd);
        *fd = -EBADF;
        return;
    }
    mon_attach_broadcast(m, stream ? MON_MSG_STDERR : MON_MSG_STDOUT, buf, (size_t)n);
    log_feed(m, stream, buf, (size_t)n, false);
}

void mon_stdio_close(struct monitor *m)
{
    int *fds[] = {&m->out_fd, &m->err_fd, &m->in_fd};
    for (int s = 0; s < 2; s++)
        log_feed(m, s, NULL, 0, true);
    for (size_t i = 0; i < KS_ELEMENTSOF(fds); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -EBADF;
    }
    m->in_pending_len = m->in_pending_off = 0;
    m->in_close_pending = false;
}
