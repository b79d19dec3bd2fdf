/* `kiste cp`: copies between a container's file system and the host as a tar stream: the
 * container's side is the engine's (chrooted, see ks_engine_copy_out), the host's side the
 * host's tar. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container.h"
#include "lib/image/snapshot.h"

/* The host's tar on the other end of the pipe. */
static pid_t host_tar(char *const argv[], int fd, bool reads)
{
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, reads ? STDIN_FILENO : STDOUT_FILENO);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fd);
    return pid;
}

static int wait_status(pid_t pid)
{
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int copy(struct ks_engine *e, const struct ks_db_container *c, const char *src,
                const char *dst, bool from_container)
{
    char overlay[4096];
    snprintf(overlay, sizeof(overlay), "%s/overlay", e->root);
    struct ks_container_state st;
    struct ks_error *err = NULL;
    if (ks_engine_state_get(e, c->id, &st, &err) < 0)
        return ks_cli_fail(err, 1);
    ks_engine_state_clear(&st);
    bool mounted_here = st.status != KS_CONTAINER_RUNNING && st.status != KS_CONTAINER_PAUSED;
    _cleanup_free_ char *merged = NULL;
    if (ks_snapshot_container_mount(overlay, c->snapshot, &merged, &err) < 0)
        return ks_cli_fail(err, 1);
    int p[2] = {-1, -1};
    /* "-" on the host's side is a tar stream on stdin or stdout, as Docker's. */
    bool stream = strcmp(from_container ? dst : src, "-") == 0;
    if (!stream && pipe2(p, O_CLOEXEC) < 0)
        return 1;
    _cleanup_free_ char *dir = NULL, *base = NULL;
    int r1, r2 = 0;
    struct ks_error *cerr = NULL;
    if (stream && from_container) {
        ks_engine_split_path(src, &dir, &base);
        r1 = ks_engine_copy_out(merged, src, base, fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3), &cerr);
    } else if (stream) {
        /* The archive's entries go into dst, which must be a directory: "dst/." resolves only
         * then. An empty top name renames nothing. */
        _cleanup_free_ char *into = NULL;
        if (asprintf(&into, "%s/.", dst) < 0)
            return 1;
        r1 = ks_engine_copy_in(merged, into, "", fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3), &cerr);
    } else if (from_container) {
        struct stat hs;
        bool into = stat(dst, &hs) == 0 && S_ISDIR(hs.st_mode);
        _cleanup_free_ char *sdir = NULL, *sbase = NULL;
        ks_engine_split_path(src, &sdir, &sbase);
        ks_engine_split_path(dst, &dir, &base);
        char *argv[] = {"tar", "-C", into ? (char *)dst : dir, "-xf", "-", NULL};
        pid_t t = host_tar(argv, p[0], true);
        r1 = ks_engine_copy_out(merged, src, into ? sbase : base, p[1], &cerr);
        r2 = wait_status(t);
    } else {
        ks_engine_split_path(src, &dir, &base);
        char *argv[] = {"tar", "-C", dir, "-cf", "-", base, NULL};
        pid_t t = host_tar(argv, p[1], false);
        r1 = ks_engine_copy_in(merged, dst, base, p[0], &cerr);
        r2 = wait_status(t);
    }
    if (mounted_here)
        ks_snapshot_container_unmount(overlay, c->snapshot, NULL);
    if (r1 < 0)
        return ks_cli_fail(cerr, 1);
    return r2 ? 1 : 0;
}

/* "name:path" → the container part and the path; NULL when arg is a host path. */
static char *container_part(const char *arg, const char **ret_path)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL || arg[0] == '/' || arg[0] == '.' || colon == arg)
        return NULL;
    *ret_path = colon + 1;
    return strndup(arg, (size_t)(colon - arg));
}

int ks_cli_cp(int argc, char **argv)
{
    int first = 1;
    while (first < argc && argv[first][0] == '-' && argv[first][1] != '\0')
        first++; /* -a, -L: accepted; ownership is kept, links are not followed */
    if (ks_cli_nargs("cp", argc - first, 2, 2, false))
        return 1;
    const char *spath = NULL, *dpath = NULL;
    _cleanup_free_ char *sc = container_part(argv[first], &spath);
    _cleanup_free_ char *dc = container_part(argv[first + 1], &dpath);
    if ((sc == NULL) == (dc == NULL)) {
        fprintf(stderr, "Error: copying between containers or between host paths is not "
                        "supported: one side must be CONTAINER:PATH\n");
        return 1;
    }
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    if (ks_cli_open_container(sc ? sc : dc, &e, &c, NULL, &err) < 0)
        return ks_cli_fail(err, 1);
    if (sc)
        return copy(e, c, spath, argv[first + 1], true);
    return copy(e, c, argv[first], dpath, false);
}
