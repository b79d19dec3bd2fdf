/* kiste-runtime: an OCI runtime with runc's command line. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ks-config.h"
#include "lib/base/log.h"
#include "lib/oci/container.h"
#include "runtime.h"

extern char **environ;

static const struct {
    const char *name;
    rt_command_fn fn;
    bool needs_sealed_binary; /* runs code inside the container's namespaces */
    const char *help;
} commands[] = {
    {"create", rt_create, true, "create a container"},
    {"start", rt_start, false, "start a created container"},
    {"state", rt_state, false, "print the state of a container"},
    {"kill", rt_kill, false, "send a signal to a container's init (or all its processes)"},
    {"delete", rt_delete, false, "delete a container"},
    {"run", rt_run, true, "create and start a container"},
    {"exec", rt_exec, true, "run a further process in a container"},
    {"ps", rt_ps, false, "list the processes of a container"},
    {"list", rt_list, false, "list containers"},
    {"pause", rt_pause, false, "suspend every process of a container"},
    {"resume", rt_resume, false, "resume a paused container"},
    {"update", rt_update, false, "change a container's resource limits"},
    {"spec", rt_spec, false, "write a default config.json"},
    {"features", rt_features, false, "print the runtime's features"},
    {"events", rt_events, false, "print a container's statistics"},
};

int rt_fail(const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ks_log(KS_LOG_ERROR, "%s", buf);
    return 1;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: kiste-runtime [global options] COMMAND [options] [ID]\n\n"
               "Global options:\n"
               "  --root DIR            state directory (default " KS_RUNTIME_DEFAULT_ROOT ")\n"
               "  --log FILE            write log messages to FILE\n"
               "  --log-format FORMAT   text or json\n"
               "  --systemd-cgroup      accepted for compatibility\n"
               "  --debug               log debug messages\n"
               "  -v, --version         print the version\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

/* Protection against a container overwriting the runtime binary through /proc/PID/exe while
 * the runtime is inside its namespaces (the CVE-2019-5736 class): re-execute from a sealed
 * in-memory copy, which no one can write to. */
static int ensure_sealed_binary(char **argv)
{
    int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (self < 0)
        return -errno;
    int seals = fcntl(self, F_GET_SEALS);
    if (seals >= 0 && (seals & F_SEAL_WRITE)) {
        close(self);
        return 0;
    }
    int mfd = memfd_create("kiste-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (mfd < 0) {
        close(self);
        return -errno;
    }
    struct stat st;
    if (fstat(self, &st) < 0) {
        close(self);
        close(mfd);
        return -errno;
    }
    off_t left = st.st_size;
    while (left > 0) {
        ssize_t n = sendfile(mfd, self, NULL, (size_t)left);
        if (n <= 0) {
            close(self);
            close(mfd);
            return n < 0 ? -errno : -EIO;
        }
        left -= n;
    }
    close(self);
    if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        close(mfd);
        return -errno;
    }
    fexecve(mfd, argv, environ);
    int e = errno;
    close(mfd);
    return -e;
}

/* Errors go to stderr and, when a log file is given, to it as well (podman and containerd read
 * the log file for the error of a failed command). */
struct tee_sink {
    ks_log_sink_fn file;
    void *file_data;
};

static void log_tee(enum ks_log_level level, const char *msg, void *userdata)
{
    struct tee_sink *t = userdata;
    if (level <= KS_LOG_WARNING)
        ks_log_sink_stderr(level, msg, "kiste-runtime");
    if (t->file)
        t->file(level, msg, t->file_data);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"log", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        {"systemd-cgroup", no_argument, NULL, 's'},
        {"debug", no_argument, NULL, 'd'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"criu", required_argument, NULL, 'c'},
        {"rootless", required_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    struct rt_globals g = {.root = KS_RUNTIME_DEFAULT_ROOT};
    const char *log_path = NULL, *log_format = "text";
    const char *env_root = getenv("KISTE_RUNTIME_ROOT");
    if (env_root && *env_root)
        g.root = env_root;
    ks_log_set_sink(ks_log_sink_stderr, "kiste-runtime");
    int c;
    /* '+': stop at the command name; the command parses the rest. */
    while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            g.root = optarg;
            break;
        case 'l':
            log_path = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0) {
                fprintf(stderr, "kiste-runtime: --log-format: must be text or json\n");
                return 1;
            }
            log_format = optarg;
            break;
        case 's':
            g.systemd_cgroup = true;
            break;
        case 'd':
            g.debug = true;
            break;
        case 'v':
            printf("kiste-runtime version %s\nspec: %s\n", KS_VERSION, "1.3.0");
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case 'c':
        case 'R':
            break;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (g.debug)
        ks_log_set_level(KS_LOG_DEBUG);
    struct tee_sink t = {0};
    if (log_path) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "kiste-runtime: open log `%s`: %s\n", log_path, strerror(errno));
        } else {
            bool json = strcmp(log_format, "json") == 0;
            t.file = json ? ks_log_sink_json_fd : ks_log_sink_text_fd;
            t.file_data = (void *)(intptr_t)fd;
            ks_log_set_sink(log_tee, &t);
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[optind];
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cmd, commands[i].name) != 0)
            continue;
        if (commands[i].needs_sealed_binary && getenv("KISTE_RUNTIME_NO_SEAL") == NULL) {
            int r = ensure_sealed_binary(argv);
            if (r < 0)
                ks_warn("could not re-execute from a sealed copy: %s", strerror(-r));
        }
        int sub_argc = argc - optind;
        char **sub_argv = argv + optind;
        optind = 0; /* reset getopt for the command's own options */
        return commands[i].fn(&g, sub_argc, sub_argv);
    }
    fprintf(stderr, "kiste-runtime: unknown command `%s`\n", cmd);
    usage(stderr);
    return 1;
}
