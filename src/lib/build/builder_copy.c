/* COPY from the build context: the sources (wildcards allowed, .dockerignore applied) are
 * written into the root file system of a step container, mounted, with paths resolved inside
 * it; its upper directory becomes the layer. Docker's rules: a directory source copies its
 * contents; the destination is a directory when it ends in '/', exists as one, or several
 * sources are copied; files belong to root unless --chown says otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../engine/container.h"
#include "../image/snapshot.h"
#include "builder_internal.h"
#include "context.h"

#define COPY_MAX_MATCHES 100000

struct copy_job {
    int rootfd; /* the step container's mounted root file system */
    const char *dest;
    size_t strip; /* a directory source: its path and '/' are left out of the targets */
    uid_t uid;
    gid_t gid;
    mode_t chmod; /* 0: keep the source's permissions */
};

static int copy_data(int from, int to, const char *what, struct ks_error **err)
{
    char buf[65536];
    for (ssize_t l; (l = read(from, buf, sizeof(buf))) != 0;) {
        if (l < 0) {
            if (errno == EINTR)
                continue;
            return ks_error_set(err, errno, "reading %s", what);
        }
        if (ks_write_all(to, buf, (size_t)l) < 0)
            return ks_error_set(err, errno, "writing %s", what);
    }
    return 0;
}

/* Writes one source entry as target (absolute, inside the root file system). */
static int put_entry(struct copy_job *j, const char *target, int src_dir, const char *name,
                     const struct stat *st, struct ks_error **err)
{
    mode_t mode = j->chmod ? j->chmod : st->st_mode & 07777;
    if (S_ISDIR(st->st_mode)) {
        _cleanup_close_ int fd = ks_mkdir_p_in_root(j->rootfd, target, 0755, false, err);
        if (fd < 0)
            return fd;
        char p[64];
        ks_fd_path(fd, p, sizeof(p));
        if (fchownat(fd, "", j->uid, j->gid, AT_EMPTY_PATH) < 0 || chmod(p, mode) < 0)
            return ks_error_set(err, errno, "%s", target);
        return 0;
    }
    if (!S_ISREG(st->st_mode) && !S_ISLNK(st->st_mode))
        return 0; /* sockets, fifos and devices are not copied */
    _cleanup_free_ char *dir = NULL, *base = NULL;
    ks_engine_split_path(target, &dir, &base);
    if (dir == NULL || base == NULL)
        return ks_error_set(err, ENOMEM, "COPY");
    _cleanup_close_ int pfd = ks_mkdir_p_in_root(j->rootfd, dir, 0755, false, err);
    if (pfd < 0)
        return pfd;
    if (unlinkat(pfd, base, 0) < 0 && errno != ENOENT)
        return ks_error_set(err, errno, "replacing %s", target);
    if (S_ISLNK(st->st_mode)) {
        char link[4096];
        ssize_t l = readlinkat(src_dir, name, link, sizeof(link) - 1);
        if (l < 0)
            return ks_error_set(err, errno, "reading the link %s", name);
        link[l] = '\0';
        if (symlinkat(link, pfd, base) < 0 ||
            fchownat(pfd, base, j->uid, j->gid, AT_SYMLINK_NOFOLLOW) < 0)
            return ks_error_set(err, errno, "%s", target);
        return 0;
    }
    _cleanup_close_ int in = openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0)
        return ks_error_set(err, errno, "%s", name);
    _cleanup_close_ int out =
        openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0)
        return ks_error_set(err, errno, "%s", target);
    int r = copy_data(in, out, target, err);
    if (r < 0)
        return r;
    if (fchown(out, j->uid, j->gid) < 0 || fchmod(out, mode) < 0)
        return ks_error_set(err, errno, "%s", target);
    return 0;
}

static int copy_walked(void *userdata, const char *path, int parent_fd, const char *name,
                       const struct stat *st, struct ks_error **err)
{
    struct copy_job *j = userdata;
    const char *rel = strlen(path) > j->strip ? path + j->strip : "";
    _cleanup_free_ char *target = NULL;
    if (asprintf(&target, "%s%s%s", j->dest, rel[0] ? "/" : "", rel) < 0)
        return ks_error_set(err, ENOMEM, "COPY");
    return put_entry(j, target, parent_fd, name, st, err);
}

struct copy_from {
    char *image, *id, *snapshot, *overlay, *merged;
    bool mounted;
    int fd;
};

static int copy_step(struct builder *b, const struct ks_df_node *n, struct ks_error **err);

struct matches {
    char **v;
    size_t n;
    const char *pattern;
};

static int add_match(struct matches *m, const char *path, struct ks_error **err)
{
    if (m->n >= COPY_MAX_MATCHES)
        return ks_error_msg(err, "more than %d sources", COPY_MAX_MATCHES);
    char **v = realloc(m->v, (m->n + 2) * sizeof(char *));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "COPY");
    m->v = v;
    if ((v[m->n] = strdup(path)) == NULL)
        return ks_error_set(err, ENOMEM, "COPY");
    v[++m->n] = NULL;
    return 0;
}

static int match_walked(void *userdata, const char *path, int parent_fd, const char *name,
                        const struct stat *st, struct ks_error **err)
{
    struct matches *m = userdata;
    (void)parent_fd, (void)name, (void)st;
    return fnmatch(m->pattern, path, FNM_PATHNAME) == 0 ? add_match(m, path, err) : 0;
}

/* The context paths a source names: itself, or what its wildcards match. */
static int find_sources(struct builder *b, const char *src, struct matches *m,
                        struct ks_error **err)
{
    _cleanup_free_ char *clean = ks_path_clean(src);
    if (clean == NULL)
        return ks_error_set(err, ENOMEM, "COPY");
    const char *rel = clean[0] == '/' ? (clean[1] ? clean + 1 : ".") : clean;
    if (strpbrk(rel, "*?[")) {
        size_t before = m->n;
        m->pattern = rel;
        int r = ks_context_walk(b->src_fd, "", b->src_ignore, match_walked, m, err);
        if (r < 0)
            return r;
        if (m->n == before)
            return ks_error_msg(err, "COPY failed: no source files were specified");
        return 0;
    }
    struct stat st;
    _cleanup_free_ char *base = NULL;
    _cleanup_close_ int pfd = strcmp(rel, "..") == 0 || strncmp(rel, "../", 3) == 0
                                  ? -EBADF
                                  : ks_context_open_parent(b->src_fd, rel, &base, NULL);
    if (pfd < 0 || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        (b->src_ignore && strcmp(rel, ".") != 0 && ks_dockerignore_excluded(b->src_ignore, rel)))
        return ks_error_msg(err,
                            "COPY failed: file not found in build context or excluded by "
                            ".dockerignore: stat %s: file does not exist",
                            src);
    return add_match(m, rel, err);
}

/* What the cache compares: flags, destination, and each source's digest. */
static int copy_key(struct builder *b, const char *what, const struct matches *m, const char *dest,
                    const char *chown, const char *chmod_s, char key[static KS_SHA256_DIGEST_LEN],
                    char **ret_created_by, struct ks_error **err)
{
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return ks_error_set(err, ENOMEM, "COPY");
    fprintf(f, "%s\n%s\n%s\n%s\n", what, chown ? chown : "", chmod_s ? chmod_s : "", dest);
    int r = 0;
    for (size_t i = 0; i < m->n && r >= 0; i++) {
        /* from an image, its ID stands for the content */
        char d[KS_SHA256_DIGEST_LEN] = "";
        if (b->src_image == NULL)
            r = ks_context_digest(b->src_fd, m->v[i], b->src_ignore, d, err);
        fprintf(f, "%s\n%s%s\n", m->v[i], b->src_image ? b->src_image : "", d);
    }
    fclose(f);
    if (r < 0)
        return r;
    char all[KS_SHA256_DIGEST_LEN];
    if (ks_sha256_hex(text, len, all) < 0 || bld_cache_key(b, text, NULL, key) < 0)
        return ks_error_set(err, ENOMEM, "COPY");
    struct stat st;
    const char *kind = "multi";
    _cleanup_free_ char *base = NULL;
    _cleanup_close_ int pfd =
        m->n == 1 ? ks_context_open_parent(b->src_fd, m->v[0], &base, NULL) : -EBADF;
    if (pfd >= 0 && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
        kind = S_ISDIR(st.st_mode) ? "dir" : "file";
    if (asprintf(ret_created_by, "/bin/sh -c #(nop) %s %s:%s in %s ", what, kind, all + 7, dest) <
        0)
        return ks_error_set(err, ENOMEM, "COPY");
    return 0;
}

/* Copies the sources into the mounted root file system. */
static int copy_all(struct builder *b, int rootfd, const struct matches *m, const char *dest,
                    bool dest_slash, const char *chown, mode_t mode, struct ks_error **err)
{
    struct copy_job j = {.rootfd = rootfd, .chmod = mode};
    int r = ks_container_resolve_user(rootfd, chown, &j.uid, &j.gid, NULL, NULL, NULL, err);
    if (r < 0)
        return r;
    _cleanup_close_ int existing = ks_open_in_root(rootfd, dest, O_PATH | O_DIRECTORY, 0, NULL);
    bool dest_dir = dest_slash || existing >= 0 || m->n > 1;
    if (m->n > 1 && !dest_slash)
        return ks_error_msg(err, "When using COPY with more than one source file, the "
                                 "destination must be a directory and end with a /");
    for (size_t i = 0; i < m->n; i++) {
        const char *src = m->v[i];
        struct stat st;
        _cleanup_free_ char *name = NULL;
        _cleanup_close_ int dfd = ks_context_open_parent(b->src_fd, src, &name, err);
        if (dfd < 0)
            return dfd;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return ks_error_set(err, errno, "%s", src);
        _cleanup_free_ char *target = NULL;
        if (S_ISDIR(st.st_mode)) {
            /* the directory's contents go to dest */
            j.dest = dest;
            j.strip = strcmp(src, ".") == 0 ? 0 : strlen(src) + 1;
            r = ks_context_walk(b->src_fd, src, b->src_ignore, copy_walked, &j, err);
            if (r >= 0 && strcmp(src, ".") == 0)
                r = put_entry(&j, dest, b->src_fd, ".", &st, err);
        } else {
            const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
            if (asprintf(&target, "%s%s%s", dest, dest_dir ? "/" : "", dest_dir ? base : "") < 0)
                return ks_error_set(err, ENOMEM, "COPY");
            r = put_entry(&j, target, dfd, name, &st, err);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* The step's container: its snapshot mounted, the sources copied in, unmounted, committed. */
static int copy_in_container(struct builder *b, const struct matches *m, const char *dest,
                             bool dest_slash, const char *chown, mode_t mode,
                             const char *created_by, char **ret, struct ks_error **err)
{
    _cleanup_json_ json_object *cmd = json_object_new_array();
    json_object_array_add(cmd, json_object_new_string("true"));
    _cleanup_free_ char *id = NULL, *snapshot = NULL, *overlay = NULL, *merged = NULL;
    int r = bld_create_container(b, b->image, cmd, NULL, &id, err);
    if (r < 0)
        return r;
    r = bld_container_snapshot(b, id, &snapshot, err);
    if (r >= 0 && asprintf(&overlay, "%s/overlay", b->e->root) < 0)
        r = ks_error_set(err, ENOMEM, "COPY");
    if (r >= 0)
        r = ks_snapshot_container_mount(overlay, snapshot, &merged, err);
    if (r >= 0) {
        int rootfd = open(merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        r = rootfd < 0 ? ks_error_set(err, errno, "%s", merged)
                       : copy_all(b, rootfd, m, dest, dest_slash, chown, mode, err);
        if (rootfd >= 0)
            close(rootfd);
        _cleanup_error_ struct ks_error *uerr = NULL;
        int u = ks_snapshot_container_unmount(overlay, snapshot, &uerr);
        if (r >= 0 && u < 0)
            r = ks_error_set(err, uerr ? uerr->errnum : EIO, "unmounting: %s",
                             uerr ? uerr->msg : "");
    }
    if (r >= 0)
        r = bld_commit_snapshot(b, snapshot, created_by, ret, err);
    bld_remove_container(b, id);
    return r;
}

static void matches_clear(struct matches *m)
{
    ks_strv_free(m->v);
    *m = (struct matches){0};
}

/* ADD of local files that are not archives is COPY; URLs and the unpacking of archives are
 * not done yet. */
static int add_source_check(const char *src, struct ks_error **err)
{
    static const char *const archives[] = {".tar",  ".tar.gz", ".tgz", ".tar.bz2",
                                           ".tbz2", ".tar.xz", ".txz", ".tar.zst",
                                           ".gz",   ".bz2",    ".xz",  ".zst"};
    if (strstr(src, "://"))
        return ks_error_msg(err, "ADD from a URL is not supported by kiste build yet");
    size_t n = strlen(src);
    for (size_t i = 0; i < sizeof(archives) / sizeof(archives[0]); i++) {
        size_t l = strlen(archives[i]);
        if (n > l && strcmp(src + n - l, archives[i]) == 0)
            return ks_error_msg(err,
                                "ADD of an archive (unpacking it) is not supported by "
                                "kiste build yet: %s",
                                src);
    }
    return 0;
}

/* COPY --from: the sources are in a mounted container of that stage's (or image's) image. */
static int open_from(struct builder *b, const char *from, struct copy_from *cf,
                     struct ks_error **err)
{
    _cleanup_free_ char *name = NULL;
    int r = bld_expand(b, from, &name, err);
    if (r < 0)
        return r;
    r = bld_stage_image(b, name, &cf->image, err);
    _cleanup_json_ json_object *cmd = json_object_new_array();
    json_object_array_add(cmd, json_object_new_string("true"));
    if (r >= 0)
        r = bld_create_container(b, cf->image, cmd, NULL, &cf->id, err);
    if (r >= 0)
        r = bld_container_snapshot(b, cf->id, &cf->snapshot, err);
    if (r >= 0 && asprintf(&cf->overlay, "%s/overlay", b->e->root) < 0)
        r = ks_error_set(err, ENOMEM, "COPY --from");
    if (r >= 0)
        r = ks_snapshot_container_mount(cf->overlay, cf->snapshot, &cf->merged, err);
    if (r < 0)
        return r;
    cf->mounted = true;
    cf->fd = open(cf->merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cf->fd < 0)
        return ks_error_set(err, errno, "%s", cf->merged);
    b->src_fd = cf->fd;
    b->src_ignore = NULL;
    b->src_image = cf->image;
    return 0;
}

static void close_from(struct builder *b, struct copy_from *cf)
{
    if (cf->fd >= 0)
        close(cf->fd);
    if (cf->mounted)
        (void)ks_snapshot_container_unmount(cf->overlay, cf->snapshot, NULL);
    if (cf->id)
        bld_remove_container(b, cf->id);
    free(cf->image);
    free(cf->id);
    free(cf->snapshot);
    free(cf->overlay);
    free(cf->merged);
}

int bld_copy(struct builder *b, const struct ks_df_node *n, struct ks_error **err)
{
    b->src_fd = b->o->context_fd;
    b->src_ignore = b->ignore;
    b->src_image = NULL;
    struct copy_from cf = {.fd = -EBADF};
    const char *from = ks_df_flag(n, "from");
    int r = from ? open_from(b, from, &cf, err) : 0;
    if (r >= 0)
        r = copy_step(b, n, err);
    close_from(b, &cf);
    return r;
}

static int copy_step(struct builder *b, const struct ks_df_node *n, struct ks_error **err)
{
    if ((ks_df_flag(n, "from") && n->instr == KS_DF_ADD) || n->n_heredocs ||
        ks_df_flag(n, "parents") || ks_df_flag(n, "exclude") || ks_df_flag(n, "checksum") ||
        ks_df_flag(n, "keep-git-dir") || ks_df_flag(n, "unpack"))
        return ks_error_msg(err,
                            "%s with --parents, --exclude, --checksum, "
                            "--keep-git-dir, --unpack or heredocs is not supported by "
                            "kiste build yet",
                            n->instr == KS_DF_ADD ? "ADD" : "COPY");
    _cleanup_free_ char *dest_raw = NULL, *chown = NULL, *created_by = NULL;
    int r = bld_expand(b, n->args[n->n_args - 1], &dest_raw, err);
    if (r >= 0 && ks_df_flag(n, "chown"))
        r = bld_expand(b, ks_df_flag(n, "chown"), &chown, err);
    if (r < 0)
        return r;
    const char *chmod_s = ks_df_flag(n, "chmod");
    mode_t mode = 0;
    if (chmod_s) {
        char *end;
        unsigned long v = strtoul(chmod_s, &end, 8);
        if (*chmod_s == '\0' || *end != '\0' || v > 07777)
            return ks_error_msg(err, "invalid --chmod \"%s\": want octal permissions", chmod_s);
        mode = (mode_t)v;
    }
    /* a relative destination is under WORKDIR */
    const char *wd = ks_json_str(b->cfg, "WorkingDir");
    _cleanup_free_ char *joined = NULL;
    if (asprintf(&joined, "%s/%s", dest_raw[0] == '/' ? "" : (wd && *wd ? wd : "/"), dest_raw) < 0)
        return ks_error_set(err, ENOMEM, "COPY");
    _cleanup_free_ char *dest = ks_path_clean(joined);
    if (dest == NULL)
        return ks_error_set(err, ENOMEM, "COPY");
    size_t dl = strlen(dest_raw);
    bool dest_slash = dl > 0 && (dest_raw[dl - 1] == '/' || strcmp(dest_raw, ".") == 0);
    struct matches m = {0};
    for (size_t i = 0; i + 1 < n->n_args && r >= 0; i++) {
        _cleanup_free_ char *src = NULL;
        r = bld_expand(b, n->args[i], &src, err);
        if (r >= 0 && n->instr == KS_DF_ADD)
            r = add_source_check(src, err);
        if (r >= 0)
            r = find_sources(b, src, &m, err);
    }
    char key[KS_SHA256_DIGEST_LEN];
    if (r >= 0)
        r = copy_key(b, n->instr == KS_DF_ADD ? "ADD" : "COPY", &m, dest, chown, chmod_s, key,
                     &created_by, err);
    if (r >= 0 && !bld_cached(b, key)) {
        char *image = NULL;
        r = copy_in_container(b, &m, dest, dest_slash, chown, mode, created_by, &image, err);
        if (r >= 0) {
            bld_cache_put(b, key, image);
            bld_stage_advance(b, image);
        }
    }
    matches_clear(&m);
    return r;
}
