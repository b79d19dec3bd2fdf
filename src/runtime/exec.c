/* run and exec: the commands that may stay in the foreground, forwarding signals to the
 * container's process and, with a terminal, proxying it. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "lib/base/json.h"
#include "lib/base/sync.h"
#include "lib/oci/container.h"
#include "lib/oci/internal.h"
#include "lib/oci/spec.h"
#include "runtime.h"

static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

int rt_wait_forward(int pid, int master)
{
    /* Forward every catchable signal; SIGCHLD tells us to reap. */
    sigset_t all;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGFPE);
    sigprocmask(SIG_BLOCK, &all, NULL);
    int sfd = signalfd(-1, &all, SFD_CLOEXEC);
    if (master >= 0) {
        /* The proxy returns once the terminal closes, that is when the process exits. */
        pid_t child = fork();
        if (child == 0) {
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, NULL);
            ks_terminal_proxy(master, pid, NULL);
            _exit(0);
        }
        close(master);
        (void)child;
    }
    int status = 0;
    /* The process may have ended before the signals were blocked. */
    if (waitpid(pid, &status, WNOHANG) == pid)
        goto done;
    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof(si));
        if (n != sizeof(si)) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        if (si.ssi_signo == SIGCHLD) {
            pid_t w;
            while ((w = waitpid(-1, &status, WNOHANG)) > 0)
                if (w == pid)
                    goto done;
            continue;
        }
        if (si.ssi_signo == SIGWINCH && master >= 0)
            continue;
        kill(pid, (int)si.ssi_signo);
    }
done:
    close(sfd);
    /* Let the terminal proxy drain. */
    while (waitpid(-1, NULL, 0) > 0)
        ;
    sigprocmask(SIG_UNBLOCK, &all, NULL);
    return exit_code(status);
}

int rt_run(const struct rt_globals *g, int argc, char **argv)
{
    struct ks_create_opts o;
    bool detach = false, keep = false;
    if (rt_parse_create_opts(argc, argv, &o, &detach, &keep) != 0)
        return 1;
    if (detach && keep)
        return rt_fail("run: --keep cannot be used with --detach");

    /* In the foreground without a console socket, the runtime holds the terminal itself. */
    int pair[2] = {-1, -1};
    if (!detach && o.console_socket == NULL) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
            return rt_fail("run: socketpair: %s", strerror(errno));
        o.console_fd = pair[1];
    }
    struct ks_error *e = NULL;
    pid_t pid;
    int r = ks_container_create(g->root, &o, &pid, &e);
    if (pair[1] >= 0)
        close(pair[1]);
    if (r < 0) {
        if (pair[0] >= 0)
            close(pair[0]);
        rt_fail("%s", e->msg);
        ks_error_free(e);
        return 1;
    }
    int master = -1;
    if (pair[0] >= 0) {
        /* Only a terminal process sends a master; otherwise nothing is waiting. */
        struct pollfd p = {.fd = pair[0], .events = POLLIN};
        if (poll(&p, 1, 0) > 0 && (p.revents & POLLIN))
            master = ks_recv_fd(pair[0]);
        close(pair[0]);
    }
    if (ks_container_start(g->root, o.id, &e) < 0) {
        rt_fail("%s", e->msg);
        ks_error_free(e);
        ks_container_delete(g->root, o.id, true, NULL);
        return 1;
    }
    if (detach)
        return 0;
    int code = rt_wait_forward(pid, master);
    if (!keep) {
        if (ks_container_delete(g->root, o.id, true, &e) < 0) {
            rt_fail("%s", e->msg);
            ks_error_free(e);
        }
    }
    return code;
}

int rt_exec(const struct rt_globals *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"process", required_argument, NULL, 'p'},
        {"console-socket", required_argument, NULL, 'c'},
        {"tty", no_argument, NULL, 't'},
        {"detach", no_argument, NULL, 'd'},
        {"pid-file", required_argument, NULL, 'P'},
        {"cwd", required_argument, NULL, 'w'},
        {"env", required_argument, NULL, 'e'},
        {"user", required_argument, NULL, 'u'},
        {"cap", required_argument, NULL, 'C'},
        {"no-new-privs", no_argument, NULL, 'N'},
        {"preserve-fds", required_argument, NULL, 'f'},
        {"additional-gids", required_argument, NULL, 'g'},
        {"apparmor", required_argument, NULL, 'A'},
        {"process-label", required_argument, NULL, 'L'},
        {"ignore-paused", no_argument, NULL, 'I'},
        {NULL, 0, NULL, 0},
    };
    const char *process_file = NULL, *cwd = NULL, *user = NULL;
    bool tty = false, detach = false, nnp = false;
    struct ks_exec_opts o = {.console_fd = -EBADF};
    _cleanup_json_ json_object *env = json_object_new_array();
    _cleanup_json_ json_object *caps = json_object_new_array();
    _cleanup_json_ json_object *gids = json_object_new_array();
    int c;
    while ((c = getopt_long(argc, argv, "+p:tde:u:", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            process_file = optarg;
            break;
        case 'c':
            o.console_socket = optarg;
            break;
        case 't':
            tty = true;
            break;
        case 'd':
            detach = true;
            break;
        case 'P':
            o.pid_file = optarg;
            break;
        case 'w':
            cwd = optarg;
            break;
        case 'e':
            json_object_array_add(env, json_object_new_string(optarg));
            break;
        case 'u':
            user = optarg;
            break;
        case 'C':
            json_object_array_add(caps, json_object_new_string(optarg));
            break;
        case 'N':
            nnp = true;
            break;
        case 'f':
            o.preserve_fds = atoi(optarg);
            break;
        case 'g':
            json_object_array_add(gids, json_object_new_int(atoi(optarg)));
            break;
        case 'A':
        case 'L':
        case 'I':
            break;
        default:
            return 1;
        }
    }
    if (optind >= argc)
        return rt_fail("exec: expected a container id");
    o.id = argv[optind++];

    struct ks_error *e = NULL;
    _cleanup_json_ json_object *state = NULL;
    json_object *process = NULL;
    if (process_file) {
        if (ks_json_parse_file(process_file, &process, &e) < 0) {
            rt_fail("exec: --process: %s", e->msg);
            ks_error_free(e);
            return 1;
        }
        if (!json_object_is_type(process, json_type_object)) {
            json_object_put(process);
            return rt_fail("exec: --process: expected a JSON object");
        }
    } else {
        if (optind >= argc)
            return rt_fail("exec: expected a command to run (or --process FILE)");
        /* Start from the container's own process: its env, capabilities and user. */
        _cleanup_(ks_json_putp) json_object *spec = NULL;
        char path[4096];
        if (ks_container_state(g->root, o.id, &state, &e) < 0) {
            rt_fail("%s", e->msg);
            ks_error_free(e);
            return 1;
        }
        snprintf(path, sizeof(path), "%s/config.json", ks_json_str(state, "bundle"));
        process = json_object_new_object();
        if (ks_json_parse_file(path, &spec, NULL) == 0) {
            json_object *base = ks_json_get(spec, "process");
            json_object_object_foreach(base, k, v)
            {
                json_object_object_add(process, k, json_object_get(v));
            }
        }
        json_object *args = json_object_new_array();
        for (int i = optind; i < argc; i++)
            json_object_array_add(args, json_object_new_string(argv[i]));
        json_object_object_add(process, "args", args);
        json_object_object_add(process, "terminal", json_object_new_boolean(tty));
    }
    if (cwd)
        json_object_object_add(process, "cwd", json_object_new_string(cwd));
    if (ks_json_get(process, "cwd") == NULL)
        json_object_object_add(process, "cwd", json_object_new_string("/"));
    if (json_object_array_length(env) > 0) {
        json_object *cur = ks_json_get_type(process, "env", json_type_array);
        if (cur == NULL) {
            cur = json_object_new_array();
            json_object_object_add(process, "env", cur);
        }
        for (size_t i = 0; i < json_object_array_length(env); i++)
            json_object_array_add(cur, json_object_get(json_object_array_get_idx(env, i)));
    }
    if (user) {
        json_object *u = json_object_new_object();
        char *colon = strchr(user, ':');
        json_object_object_add(u, "uid", json_object_new_int(atoi(user)));
        json_object_object_add(u, "gid", json_object_new_int(colon ? atoi(colon + 1) : 0));
        if (json_object_array_length(gids) > 0)
            json_object_object_add(u, "additionalGids", json_object_get(gids));
        json_object_object_add(process, "user", u);
    }
    if (json_object_array_length(caps) > 0) {
        json_object *cs = ks_json_get_type(process, "capabilities", json_type_object);
        if (cs == NULL) {
            cs = json_object_new_object();
            json_object_object_add(process, "capabilities", cs);
        }
        static const char *const sets[] = {"bounding", "effective", "permitted", "inheritable",
                                           "ambient"};
        for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
            json_object *arr = ks_json_get_type(cs, sets[s], json_type_array);
            if (arr == NULL) {
                arr = json_object_new_array();
                json_object_object_add(cs, sets[s], arr);
            }
            for (size_t i = 0; i < json_object_array_length(caps); i++)
                json_object_array_add(arr, json_object_get(json_object_array_get_idx(caps, i)));
        }
    }
    if (nnp)
        json_object_object_add(process, "noNewPrivileges", json_object_new_boolean(1));
    if (ks_spec_validate_process(process, &e) < 0) {
        json_object_put(process);
        rt_fail("exec: %s", e->msg);
        ks_error_free(e);
        return 1;
    }
    o.process = process;
    bool terminal = ks_json_bool(process, "terminal", false);
    int pair[2] = {-1, -1};
    if (terminal && o.console_socket == NULL) {
        if (detach) {
            json_object_put(process);
            return rt_fail("exec: --tty with --detach needs --console-socket");
        }
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
            json_object_put(process);
            return rt_fail("exec: socketpair: %s", strerror(errno));
        }
        o.console_fd = pair[1];
    }
    pid_t pid;
    int r = ks_container_exec(g->root, &o, &pid, &e);
    json_object_put(process);
    if (pair[1] >= 0)
        close(pair[1]);
    if (r < 0) {
        if (pair[0] >= 0)
            close(pair[0]);
        rt_fail("%s", e->msg);
        ks_error_free(e);
        return 1;
    }
    int master = -1;
    if (pair[0] >= 0) {
        master = ks_recv_fd(pair[0]);
        close(pair[0]);
    }
    if (detach)
        return 0;
    return rt_wait_forward(pid, master);
}
