/* Messages between the runtime and the processes it starts, over a SOCK_SEQPACKET pair: each
 * message is a type, an errno and a short text, so that a failure inside the container's setup
 * reaches the parent as clearly as one outside it. File descriptors travel with SCM_RIGHTS. */
#pragma once

#include <stddef.h>

#include "error.h"

#define KS_SYNC_MSG_MAX 4000

struct ks_sync_msg {
    int type;
    int errnum;
    char text[KS_SYNC_MSG_MAX];
};

int ks_sync_send(int fd, int type, int errnum, const char *text);
/* Receives one message; -EPIPE when the peer closed the socket without sending one. */
int ks_sync_recv(int fd, struct ks_sync_msg *msg);
/* Receives one message that is not an error: a message of error_type becomes *err with the
 * peer's errno and text, a closed socket the message `gone`. */
int ks_sync_recv_ok(int fd, int error_type, const char *gone, struct ks_sync_msg *msg,
                    struct ks_error **err);
/* Sends an error in its {errno, message} form. */
int ks_sync_send_error(int fd, int type, const struct ks_error *e);

int ks_send_fd(int sock, int fd);
/* Returns the received fd (owned by the caller) or a negative errno. */
int ks_recv_fd(int sock);
