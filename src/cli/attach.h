/* The client side of an attached container: our terminal and stdio on one side, the monitor's
 * attach socket on the other (SOCK_SEQPACKET; the message kinds are in the attach protocol of
 * the containers contract: 0 stdin, 1 stdin close, 2 resize from us; 1 stdout, 2 stderr, 3 exit
 * from the monitor). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/base/error.h"

#define KS_ATTACH_DETACHED (-1000) /* the user typed the detach keys */
#define KS_ATTACH_CLOSED   (-1001) /* the connection closed without an exit message */

/* Client message kind: we remove the container after its exit (the monitor then skips its
 * cleanup command, when that is the container's rm). */
#define KS_ATTACH_MSG_TAKEOVER 3

struct ks_attach_opts {
    bool tty;                /* the container has a terminal: raw mode, resizes */
    bool stdin_open;         /* forward our stdin (-i) */
    const char *detach_keys; /* Docker's --detach-keys syntax ("ctrl-p,ctrl-q" when NULL);
                                only active when tty && stdin_open */
    bool sig_proxy;          /* forward SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/2… we receive */
    pid_t proxy_pid;         /* … to this pid (the container's init), 0: none */
};

/* Runs an attached session on fd, a connected attach socket (contract: SOCK_SEQPACKET, message
 * kinds 0/1/2 from us, 1/2/3 from the monitor). Returns the container's exit code (>= 0) when
 * the exit message arrives, KS_ATTACH_DETACHED, KS_ATTACH_CLOSED, or a negative errno. The
 * terminal is always restored. fd stays owned by the caller. */
int ks_cli_attach_session(int fd, const struct ks_attach_opts *o, struct ks_error **err);

/* Parses Docker's --detach-keys ("ctrl-p,ctrl-q", "a,ctrl-\\,x"...) into bytes: ret has room
 * for *ret_len bytes on entry; on success *ret_len is the number of bytes of the sequence. */
int ks_cli_parse_detach_keys(const char *spec, char *ret, size_t *ret_len, struct ks_error **err);
