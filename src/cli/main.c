/* kiste: the Docker-style command line. The engine commands arrive with their own modules;
 * until then this front door reports the build and the host's container support, and says
 * plainly which commands are not there yet. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "archive.h"
#include "build.h"
#include "container.h"
#include "image.h"
#include "network.h"
#include "pull.h"
#include "registry.h"
#include "system.h"
#include "ks-config.h"
#include "lib/base/json.h"
#include "lib/base/log.h"
#include "lib/engine/seccomp_profile.h"
#include "lib/oci/cgroup.h"

static const char *const mode_names[] = {
    [KS_CGROUP_V1] = "v1",
    [KS_CGROUP_V2] = "v2",
    [KS_CGROUP_HYBRID] = "hybrid",
};

static int cmd_version(int argc, char **argv)
{
    (void)argc, (void)argv;
    struct utsname u;
    uname(&u);
    printf("Kiste version %s\nOCI runtime spec: 1.0.0 to 1.3.0\nKernel: %s %s\n", KS_VERSION,
           u.sysname, u.release);
    return 0;
}

int ks_cli_info(int argc, char **argv)
{
    (void)argc, (void)argv;
    struct ks_cgroup_layout *l = NULL;
    struct ks_error *e = NULL;
    printf("Server Version: %s\n", KS_VERSION);
    if (ks_cgroup_layout_detect("/sys/fs/cgroup", &l, &e) < 0) {
        printf("Cgroup Version: unknown (%s)\n", e->msg);
        ks_error_free(e);
    } else {
        printf("Cgroup Version: %s\n", mode_names[l->mode]);
        ks_cgroup_layout_free(l);
    }
    printf("Default Runtime: kiste-runtime\n");
    return 0;
}

/* Hidden, for tests: Docker's default seccomp profile for the bounding set given as arguments
 * ("CAP_SYS_ADMIN" …), as the linux.seccomp object of config.json. */
static int cmd_seccomp_default_profile(int argc, char **argv)
{
    _cleanup_json_ json_object *o = NULL;
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_seccomp_default_profile((const char *const *)argv + 1, &o, &e) < 0) {
        fprintf(stderr, "kiste: %s\n", e->msg);
        return 1;
    }
    (void)argc;
    printf("%s\n", ks_json_pretty(o));
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"version", cmd_version, "show the version"},
    {"info", ks_cli_info, "show system-wide information"},
    {"system", ks_cli_system, "manage Kiste (df, info)"},
    {"images", ks_cli_images, "list images"},
    {"image", ks_cli_image, "manage images (ls, rm, tag, import, history, inspect, prune)"},
    {"import", ks_cli_import, "create an image from a root file system tarball"},
    {"tag", ks_cli_tag, "create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"},
    {"rmi", ks_cli_rmi, "remove one or more images"},
    {"history", ks_cli_history, "show the history of an image"},
    {"save", ks_cli_save, "save one or more images to a tar archive"},
    {"load", ks_cli_load, "load an image from a tar archive or STDIN"},
    {"create", ks_cli_create, "create a new container"},
    {"run", ks_cli_run, "create and run a new container from an image"},
    {"start", ks_cli_start, "start one or more stopped containers"},
    {"stop", ks_cli_stop, "stop one or more running containers"},
    {"restart", ks_cli_restart, "restart one or more containers"},
    {"kill", ks_cli_kill, "kill one or more running containers"},
    {"rm", ks_cli_rm, "remove one or more containers"},
    {"wait", ks_cli_wait, "wait until containers stop, then print their exit codes"},
    {"pause", ks_cli_pause, "pause all processes within one or more containers"},
    {"unpause", ks_cli_unpause, "unpause all processes within one or more containers"},
    {"rename", ks_cli_rename, "rename a container"},
    {"ps", ks_cli_ps, "list containers"},
    {"inspect", ks_cli_inspect, "return low-level information on containers or images"},
    {"logs", ks_cli_container_logs, "fetch the logs of a container"},
    {"exec", ks_cli_exec, "execute a command in a running container"},
    {"attach", ks_cli_attach, "attach to a running container"},
    {"top", ks_cli_top, "display the running processes of a container"},
    {"port", ks_cli_network_port, "list port mappings of a container"},
    {"stats", ks_cli_stats, "display a one-shot sample of containers' resource usage"},
    {"update", ks_cli_update, "update the resources of one or more containers"},
    {"diff", ks_cli_diff, "inspect changes to files on a container's file system"},
    {"export", ks_cli_export, "export a container's file system as a tar archive"},
    {"cp", ks_cli_cp, "copy files between a container and the host"},
    {"commit", ks_cli_commit, "create a new image from a container's changes"},
    {"build", ks_cli_build, "build an image from a Dockerfile"},
    {"builder", ks_cli_builder, "manage the build cache (prune)"},
    {"dockerfile", ks_cli_dockerfile, "parse and check a Dockerfile (parse, check)"},
    {"container", ks_cli_container, "manage containers"},
    {"network", ks_cli_network, "manage networks (create, ls, inspect, rm, prune, connect)"},
    {"volume", ks_cli_volume, "manage volumes (create, ls, inspect, rm, prune)"},
    {"registry", ks_cli_registry, "run a registry server (serve, garbage-collect)"},
    {"pull", ks_cli_pull, "download an image from a registry"},
    {"push", ks_cli_push, "upload an image to a registry"},
    {"login", ks_cli_login, "log in to a registry"},
    {"logout", ks_cli_logout, "log out from a registry"},
    {"search", ks_cli_search, "search registries for images"},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: kiste COMMAND [OPTIONS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nThe OCI runtime is `kiste-runtime` (runc's command line).\n");
}

int main(int argc, char **argv)
{
    ks_log_set_sink(ks_log_sink_stderr, "kiste");
    /* Global options before the command, in any order: the storage root reaches the commands
     * as KISTE_ROOT, the run root (containers' sockets and run-time files) as KISTE_RUNROOT. */
    static const struct {
        const char *flag, *env;
    } globals[] = {{"--root", "KISTE_ROOT"}, {"--runroot", "KISTE_RUNROOT"}};
    for (bool more = true; more && argc > 2;) {
        more = false;
        for (size_t g = 0; g < KS_ELEMENTSOF(globals) && !more; g++) {
            size_t n = strlen(globals[g].flag);
            if (strncmp(argv[1], globals[g].flag, n) != 0)
                continue;
            const char *v = argv[1][n] == '='    ? argv[1] + n + 1
                            : argv[1][n] == '\0' ? argv[2]
                                                 : NULL;
            if (v == NULL)
                continue;
            setenv(globals[g].env, v, 1);
            int skip = argv[1][n] == '=' ? 1 : 2;
            argc -= skip;
            argv += skip;
            more = true;
        }
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)
        return cmd_version(argc - 1, argv + 1);
    if (strcmp(argv[1], "__seccomp-default-profile") == 0)
        return cmd_seccomp_default_profile(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiste: unknown command `%s`\n", argv[1]);
    usage(stderr);
    return 1;
}
