/* `kiste registry serve` and `kiste registry garbage-collect`: Kiste's own registry server. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"
#include "registry.h"
#include "lib/image/store.h"
#include "lib/registry/server.h"

/* The registry directory of the storage root, unless --root names another. Owned by the caller. */
static char *default_root(void)
{
    const char *r = getenv("KISTE_ROOT");
    char *s = NULL;
    if (asprintf(&s, "%s/registry", r && *r ? r : KS_STORE_DEFAULT_ROOT) < 0)
        return NULL;
    return s;
}

static void serve_usage(FILE *f)
{
    fprintf(f, "Usage: kiste registry serve [OPTIONS]\n\n"
               "Serve an OCI distribution registry\n\n"
               "Options:\n"
               "      --addr HOST:PORT   address to listen on (default 0.0.0.0:5000; port 0 picks "
               "one)\n"
               "      --root DIR         storage directory (default ROOT/registry)\n"
               "      --htpasswd FILE    require basic authentication (bcrypt or {SHA})\n"
               "      --tls-cert FILE    serve HTTPS with this certificate (PEM)\n"
               "      --tls-key FILE     and this key (PEM)\n"
               "      --read-only        refuse every change\n"
               "      --threads N        size of the thread pool (default 8)\n");
}

static int registry_serve(int argc, char **argv)
{
    static const struct option opts[] = {
        {"addr", required_argument, NULL, 'a'},
        {"root", required_argument, NULL, 'r'},
        {"htpasswd", required_argument, NULL, 'p'},
        {"tls-cert", required_argument, NULL, 'c'},
        {"tls-key", required_argument, NULL, 'k'},
        {"read-only", no_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct ks_registry_server_opts o = {0};
    _cleanup_free_ char *root = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            o.addr = optarg;
            break;
        case 'r':
            o.root = optarg;
            break;
        case 'p':
            o.htpasswd = optarg;
            break;
        case 'c':
            o.tls_cert = optarg;
            break;
        case 'k':
            o.tls_key = optarg;
            break;
        case 'o':
            o.read_only = true;
            break;
        case 't': {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 256)
                return ks_cli_usage_error("registry serve", "--threads must be 1 to 256");
            o.threads = (unsigned)v;
            break;
        }
        case 'h':
            serve_usage(stdout);
            return 0;
        default:
            return 125;
        }
    }
    if (optind < argc)
        return ks_cli_usage_error("registry serve", "accepts no arguments");
    if (o.root == NULL && (o.root = root = default_root()) == NULL)
        return 125;
    /* Blocked before the server's threads start, so that they inherit the mask and the
     * signals wait for sigwait below. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct ks_error *e = NULL;
    _cleanup_registry_server_ struct ks_registry_server *srv = NULL;
    if (ks_registry_server_start(&o, &srv, &e) < 0)
        return ks_cli_fail(e, 1);
    printf("Listening on port %u (%s, storage %s)\n", ks_registry_server_port(srv),
           o.tls_cert ? "https" : "http", o.root);
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    return 0;
}

static void gc_print(const char *kind, const char *name, const char *digest, void *userdata)
{
    bool dry = *(bool *)userdata;
    if (name)
        printf("%s %s %s@%s\n", dry ? "would remove" : "removed", kind, name, digest);
    else
        printf("%s %s %s\n", dry ? "would remove" : "removed", kind, digest);
}

static int registry_gc(int argc, char **argv)
{
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"dry-run", no_argument, NULL, 'n'},
        {"delete-untagged", no_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *root_opt = NULL;
    bool dry_run = false, untagged = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            root_opt = optarg;
            break;
        case 'n':
            dry_run = true;
            break;
        case 'u':
        case 'm':
            untagged = true;
            break;
        case 'h':
            printf("Usage: kiste registry garbage-collect [--root DIR] [--dry-run] "
                   "[--delete-untagged]\n\nRemove blobs that no manifest references; with "
                   "--delete-untagged, first manifests that no tag reaches.\nRun it while the "
                   "registry is stopped or read-only.\n");
            return 0;
        default:
            return 125;
        }
    }
    if (optind < argc)
        return ks_cli_usage_error("registry garbage-collect", "accepts no arguments");
    _cleanup_free_ char *root = root_opt ? strdup(root_opt) : default_root();
    if (root == NULL)
        return 125;
    struct ks_error *e = NULL;
    struct ks_registry_gc_stats st = {0};
    if (ks_registry_gc(root, dry_run, untagged, gc_print, &dry_run, &st, &e) < 0)
        return ks_cli_fail(e, 1);
    printf("%s %" PRIu64 " blobs (%" PRIu64 " bytes), %" PRIu64 " manifests and %" PRIu64
           " abandoned uploads\n",
           dry_run ? "Would remove" : "Removed", st.blobs_removed, st.bytes_removed,
           st.manifests_removed, st.uploads_removed);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} registry_commands[] = {
    {"serve", registry_serve, "serve an OCI distribution registry"},
    {"garbage-collect", registry_gc, "remove blobs that no manifest references"},
};

int ks_cli_registry(int argc, char **argv)
{
    if (argc >= 2)
        for (size_t i = 0; i < KS_ELEMENTSOF(registry_commands); i++)
            if (strcmp(argv[1], registry_commands[i].name) == 0)
                return registry_commands[i].fn(argc - 1, argv + 1);
    bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
    FILE *f = help ? stdout : stderr;
    if (argc >= 2 && !help)
        fprintf(f, "kiste: unknown registry command `%s`\n", argv[1]);
    fprintf(f, "Usage: kiste registry COMMAND\n\nCommands:\n");
    for (size_t i = 0; i < KS_ELEMENTSOF(registry_commands); i++)
        fprintf(f, "  %-16s %s\n", registry_commands[i].name, registry_commands[i].help);
    return help ? 0 : 125;
}
