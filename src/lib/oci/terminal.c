/* Terminals: the pty of a container process is made inside the container's own devpts, its
 * master handed to whoever holds the console socket, or proxied by the runtime itself. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../base/sync.h"
#include "internal.h"

int ks_terminal_setup(int sock, json_object *process, struct ks_error **err)
{
    _cleanup_close_ int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0)
        return ks_error_set(err, errno, "open /dev/ptmx");
    if (unlockpt(master) < 0)
        return ks_error_set(err, errno, "unlockpt");
    char name[64];
    if (ptsname_r(master, name, sizeof(name)) != 0)
        return ks_error_set(err, errno, "ptsname");
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0)
        return ks_error_set(err, errno, "open `%s`", name);
    json_object *size = ks_json_get_type(process, "consoleSize", json_type_object);
    if (size) {
        struct winsize ws = {.ws_row = (unsigned short)ks_json_int(size, "height", 0),
                             .ws_col = (unsigned short)ks_json_int(size, "width", 0)};
        ioctl(slave, TIOCSWINSZ, &ws);
    }
    int r = ks_send_fd(sock, master);
    if (r < 0) {
        close(slave);
        return ks_error_set(err, -r, "send the terminal to the console socket");
    }
    if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0) {
        int e = errno;
        close(slave);
        return ks_error_set(err, e, "make the terminal the controlling one");
    }
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) < 0) {
            int e = errno;
            close(slave);
            return ks_error_set(err, e, "dup2 terminal");
        }
    return slave;
}

static void copy_winsize(int master)
{
    struct winsize ws;
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
        ioctl(master, TIOCSWINSZ, &ws);
}

int ks_terminal_proxy(int master, pid_t child, struct ks_error **err)
{
    (void)child;
    struct termios saved_tio;
    bool tio_saved = false;
    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
        struct termios raw = saved_tio;
        cfmakeraw(&raw);
        tio_saved = true;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
        copy_winsize(master);
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGWINCH);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    _cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    struct pollfd p[3] = {{.fd = master, .events = POLLIN},
                          {.fd = STDIN_FILENO, .events = POLLIN},
                          {.fd = sfd, .events = POLLIN}};
    char buf[8192];
    bool in_open = true;
    for (;;) {
        p[1].fd = in_open ? STDIN_FILENO : -1;
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(master, buf, sizeof(buf));
            if (n <= 0)
                break;
            ks_write_all(STDOUT_FILENO, buf, (size_t)n);
        }
        if (in_open && (p[1].revents & (POLLIN | POLLHUP))) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
            if (n <= 0) {
                in_open = false;
                /* End of input: send EOF to the terminal's reader. */
                char eof = 4;
                ks_write_all(master, &eof, 1);
            } else {
                ks_write_all(master, buf, (size_t)n);
            }
        }
        if (sfd >= 0 && (p[2].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == sizeof(si))
                copy_winsize(master);
        }
    }
    if (tio_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
    (void)err;
    return 0;
}
