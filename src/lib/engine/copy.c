/* Copies between a container's root file system and a tar stream (`kiste cp`). Each side in
 * the container runs in a child process chrooted into the root file system, so that every path
 * and symlink there resolves inside it: a container's symlink can never lead a copy to the
 * host's files. Extraction refuses ".." and absolute names and writes through no symlink. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/archive_shim.h"
#include "../base/fs.h"
#include "container.h"

#define BLOCK 65536

/* "/a/b/" → dir "/a", base "b"; "/" → dir "/", base ".". Owned by the caller. */
void ks_engine_split_path(const char *path, char **dir, char **base)
{
    _cleanup_free_ char *a = strdup(path), *b = strdup(path);
    size_t n = a ? strlen(a) : 0;
    while (n > 1 && a[n - 1] == '/') {
        n--;
        a[n] = b[n] = '\0';
    }
    *dir = strdup(dirname(a));
    *base = strdup(basename(b));
}

/* Renames the top of an entry's path from `from` to `to` ("from/x" → "to/x"). */
static void rename_top(struct archive_entry *e, const char *from, const char *to)
{
    const char *p = archive_entry_pathname(e);
    size_t n = strlen(from);
    if (p == NULL || strcmp(from, to) == 0 || strncmp(p, from, n) != 0 ||
        (p[n] != '\0' && p[n] != '/'))
        return;
    _cleanup_free_ char *np = NULL;
    if (asprintf(&np, "%s%s", to, p + n) >= 0)
        archive_entry_copy_pathname(e, np);
}

/* In the chrooted child: writes src (and everything below it) as a tar to out, its top named
 * as_name. Returns the exit status. */
static int tar_out(const char *src, const char *as_name, int out, int efd)
{
    _cleanup_free_ char *dir = NULL, *base = NULL;
    ks_engine_split_path(src, &dir, &base);
    if (chdir(dir) < 0) {
        dprintf(efd, "Could not find the file %s in container\n", src);
        return 1;
    }
    struct stat st;
    if (lstat(base, &st) < 0) {
        dprintf(efd, "Could not find the file %s in container\n", src);
        return 1;
    }
    struct archive *disk = archive_read_disk_new();
    struct archive *w = archive_write_new();
    archive_read_disk_set_standard_lookup(disk);
    archive_read_disk_set_symlink_physical(disk);
    archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
    archive_write_set_format_pax_restricted(w);
    if (archive_write_open_fd(w, out) != ARCHIVE_OK ||
        archive_read_disk_open(disk, base) != ARCHIVE_OK) {
        dprintf(efd, "%s\n", archive_error_string(disk));
        return 1;
    }
    int status = 0;
    struct archive_entry *e;
    char buf[BLOCK];
    for (;;) {
        e = archive_entry_new();
        int r = archive_read_next_header2(disk, e);
        if (r == ARCHIVE_EOF) {
            archive_entry_free(e);
            break;
        }
        if (r < ARCHIVE_WARN) {
            dprintf(efd, "%s\n", archive_error_string(disk));
            archive_entry_free(e);
            status = 1;
            break;
        }
        archive_read_disk_descend(disk);
        rename_top(e, base, as_name);
        if (archive_write_header(w, e) < ARCHIVE_WARN) {
            dprintf(efd, "%s\n", archive_error_string(w));
            archive_entry_free(e);
            status = 1;
            break;
        }
        if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0) {
            const char *src_path = archive_entry_sourcepath(e);
            int fd = open(src_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
            ssize_t n;
            while (fd >= 0 && (n = read(fd, buf, sizeof(buf))) > 0)
                archive_write_data(w, buf, (size_t)n);
            if (fd >= 0)
                close(fd);
        }
        archive_entry_free(e);
    }
    archive_read_close(disk);
    archive_read_free(disk);
    archive_write_close(w);
    archive_write_free(w);
    return status;
}

/* In the chrooted child: extracts the tar read from in under dest. When dest is an existing
 * directory the entries keep their names inside it; otherwise the top entry (named from_name)
 * becomes dest itself. Returns the exit status. */
static int tar_in(const char *dest, const char *from_name, int in, int efd)
{
    struct stat st;
    _cleanup_free_ char *dir = NULL, *base = NULL;
    const char *to_name = from_name;
    if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
        dir = strdup(dest);
    } else {
        ks_engine_split_path(dest, &dir, &base);
        to_name = base;
    }
    if (dir == NULL || chdir(dir) < 0) {
        dprintf(efd, "Could not find the file %s in container\n", dir ? dir : dest);
        return 1;
    }
    struct archive *r = archive_read_new();
    struct archive *w = archive_write_disk_new();
    archive_read_support_format_tar(r);
    archive_write_disk_set_options(
        w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
               ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
               ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
    if (archive_read_open_fd(r, in, BLOCK) != ARCHIVE_OK) {
        dprintf(efd, "%s\n", archive_error_string(r));
        return 1;
    }
    int status = 0;
    struct archive_entry *e;
    int rc;
    while ((rc = archive_read_next_header(r, &e)) == ARCHIVE_OK) {
        rename_top(e, from_name, to_name);
        if (archive_write_header(w, e) < ARCHIVE_WARN) {
            dprintf(efd, "%s: %s\n", archive_entry_pathname(e), archive_error_string(w));
            status = 1;
            break;
        }
        const void *buf;
        size_t len;
        la_int64_t off;
        while (archive_read_data_block(r, &buf, &len, &off) == ARCHIVE_OK)
            archive_write_data_block(w, buf, len, off);
        archive_write_finish_entry(w);
    }
    if (rc < ARCHIVE_WARN && status == 0) {
        dprintf(efd, "%s\n", archive_error_string(r));
        status = 1;
    }
    archive_read_free(r);
    archive_write_close(w);
    archive_write_free(w);
    return status;
}

/* Runs one side in a child chrooted into root; its message comes back through a pipe. */
static int in_root(const char *root, int fd, bool out, const char *path, const char *name,
                   struct ks_error **err)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0)
        return ks_error_set(err, errno, "pipe");
    /* The child chroots before it makes its first archive: load the library while its file
     * can still be found. */
    if (ks_archive_require(err) < 0)
        return -ENOENT;
    pid_t pid = fork();
    if (pid < 0) {
        close(ep[0]);
        close(ep[1]);
        return ks_error_set(err, errno, "fork");
    }
    if (pid == 0) {
        close(ep[0]);
        if (chroot(root) < 0 || chdir("/") < 0) {
            dprintf(ep[1], "chroot `%s`: %s", root, strerror(errno));
            _exit(1);
        }
        _exit(out ? tar_out(path, name, fd, ep[1]) : tar_in(path, name, fd, ep[1]));
    }
    close(ep[1]);
    close(fd);
    char msg[1024];
    ssize_t n = ks_read_all(ep[0], msg, sizeof(msg) - 1);
    close(ep[0]);
    msg[n > 0 ? n : 0] = '\0';
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        while (n > 0 && msg[n - 1] == '\n')
            msg[--n] = '\0';
        return ks_error_set_plain(err, EIO, "%s", n > 0 ? msg : "copy failed");
    }
    return 0;
}

int ks_engine_copy_out(const char *root, const char *path, const char *as_name, int fd,
                       struct ks_error **err)
{
    return in_root(root, fd, true, path, as_name, err);
}

int ks_engine_copy_in(const char *root, const char *dest, const char *from_name, int fd,
                      struct ks_error **err)
{
    return in_root(root, fd, false, dest, from_name, err);
}
