/* The container's network namespace. For now each container gets a namespace of its own with
 * only the loopback interface, up, as Docker's `--network none` gives; bridges, veths and
 * published ports will be added here. The namespace is made by the engine rather than the
 * runtime so that it can be configured before the container starts and outlives restarts:
 * it is bind-mounted on U/containers/ID/netns and removed with the container. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/fs.h"
#include "container.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

/* In a child: a new network namespace, lo up, bound on path. The exit status is an errno. */
static int netns_child(const char *path)
{
    if (unshare(CLONE_NEWNET) < 0)
        return errno;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return errno;
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        return errno;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        return errno;
    close(s);
    if (mount("/proc/self/ns/net", path, NULL, MS_BIND, NULL) < 0)
        return errno;
    return 0;
}

static bool is_netns(const char *path)
{
    struct statfs sf;
    return statfs(path, &sf) == 0 && (unsigned long)sf.f_type == (unsigned long)NSFS_MAGIC;
}

int ks_engine_netns_setup(struct ks_engine *e, const char *id, char **ret_path,
                          struct ks_error **err)
{
    _cleanup_free_ char *run = ks_container_run_dir(e, id), *path = NULL;
    if (run == NULL || asprintf(&path, "%s/netns", run) < 0)
        return ks_error_set(err, ENOMEM, "network namespace");
    if (!is_netns(path)) {
        int r = ks_mkdir_p(run, 0700, err);
        if (r < 0)
            return r;
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            return ks_error_set(err, errno, "create `%s`", path);
        close(fd);
        pid_t pid = fork();
        if (pid < 0)
            return ks_error_set(err, errno, "fork");
        if (pid == 0)
            _exit(netns_child(path));
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        int en = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
        if (en != 0) {
            unlink(path);
            return ks_error_set(err, en, "create the network namespace");
        }
    }
    *ret_path = TAKE_PTR(path);
    return 0;
}

int ks_engine_netns_teardown(struct ks_engine *e, const char *id, struct ks_error **err)
{
    _cleanup_free_ char *run = ks_container_run_dir(e, id), *path = NULL;
    if (run == NULL || asprintf(&path, "%s/netns", run) < 0)
        return ks_error_set(err, ENOMEM, "network namespace");
    while (is_netns(path))
        if (umount2(path, MNT_DETACH) < 0)
            return ks_error_set(err, errno, "unmount `%s`", path);
    if (unlink(path) < 0 && errno != ENOENT)
        return ks_error_set(err, errno, "remove `%s`", path);
    return 0;
}
