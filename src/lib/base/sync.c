#include "sync.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

int ks_sync_send(int fd, int type, int errnum, const char *text)
{
    struct ks_sync_msg m = {.type = type, .errnum = errnum};
    size_t len = 0;
    if (text) {
        len = strnlen(text, KS_SYNC_MSG_MAX - 1);
        memcpy(m.text, text, len);
    }
    m.text[len] = '\0';
    size_t total = offsetof(struct ks_sync_msg, text) + len + 1;
    for (;;) {
        ssize_t n = send(fd, &m, total, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : 0;
    }
}

int ks_sync_send_error(int fd, int type, const struct ks_error *e)
{
    return ks_sync_send(fd, type, e ? e->errnum : EINVAL, e ? e->msg : "unknown error");
}

int ks_sync_recv(int fd, struct ks_sync_msg *msg)
{
    for (;;) {
        memset(msg, 0, offsetof(struct ks_sync_msg, text) + 1);
        ssize_t n = recv(fd, msg, sizeof(*msg), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EPIPE;
        if ((size_t)n < offsetof(struct ks_sync_msg, text) + 1)
            return -EBADMSG;
        msg->text[KS_SYNC_MSG_MAX - 1] = '\0';
        if ((size_t)n < sizeof(*msg))
            ((char *)msg)[n - 1] = '\0';
        return 0;
    }
}

int ks_sync_recv_ok(int fd, int error_type, const char *gone, struct ks_sync_msg *msg,
                    struct ks_error **err)
{
    int r = ks_sync_recv(fd, msg);
    if (r == -EPIPE)
        return ks_error_set_plain(err, ECHILD, "%s", gone);
    if (r < 0)
        return ks_error_set(err, -r, "%s", gone);
    if (msg->type == error_type)
        return ks_error_set_plain(err, msg->errnum, "%s", msg->text);
    return 0;
}

int ks_send_fd(int sock, int fd)
{
    char byte = 0;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr mh = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = u.buf,
        .msg_controllen = sizeof(u.buf),
    };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    for (;;) {
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : 0;
    }
}

int ks_recv_fd(int sock)
{
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = u.buf,
        .msg_controllen = sizeof(u.buf),
    };
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -EPIPE;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    if (c == NULL || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
        return -EBADMSG;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}
