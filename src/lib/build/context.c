/* Build contexts (context.h). The walk keeps its own stack of open directories, so a deep
 * tree costs memory, not C stack, and is bounded by KS_CONTEXT_MAX_DEPTH. */
#include "context.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/fs.h"

struct frame {
    int fd;
    char *prefix; /* "" at the start directory */
    char **names;
    size_t n, i;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the directory fd (which stays open). */
static int read_names(int fd, char ***ret, size_t *ret_n, struct ks_error **err)
{
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup_fd < 0)
        return ks_error_set(err, errno, "reading the build context");
    _cleanup_closedir_ DIR *d = fdopendir(dup_fd);
    if (d == NULL) {
        close(dup_fd);
        return ks_error_set(err, errno, "reading the build context");
    }
    char **v = NULL;
    size_t n = 0;
    for (struct dirent *de; (errno = 0, de = readdir(d));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char **nv = realloc(v, (n + 2) * sizeof(char *));
        char *name = nv ? strdup(de->d_name) : NULL;
        if (nv)
            v = nv;
        if (name == NULL) {
            for (size_t i = 0; i < n; i++)
                free(v[i]);
            free(v);
            return ks_error_set(err, ENOMEM, "reading the build context");
        }
        v[n++] = name;
    }
    if (v)
        qsort(v, n, sizeof(char *), cmp_str);
    *ret = v;
    *ret_n = n;
    return 0;
}

static void frame_clear(struct frame *f)
{
    if (f->fd >= 0)
        close(f->fd);
    for (size_t i = 0; i < f->n; i++)
        free(f->names[i]);
    free(f->names);
    free(f->prefix);
}

static int push(struct frame *stack, size_t *depth, int fd, char *prefix, struct ks_error **err)
{
    if (*depth >= KS_CONTEXT_MAX_DEPTH) {
        close(fd);
        free(prefix);
        return ks_error_msg(err, "build context nested deeper than %d directories",
                            KS_CONTEXT_MAX_DEPTH);
    }
    struct frame *f = &stack[(*depth)++];
    *f = (struct frame){.fd = fd, .prefix = prefix};
    return read_names(fd, &f->names, &f->n, err);
}

/* One entry of the top frame: report it, and enter it when it is a directory to walk. */
static int visit(struct frame *stack, size_t *depth, const struct ks_dockerignore *di,
                 ks_context_fn fn, void *userdata, struct ks_error **err)
{
    struct frame *f = &stack[*depth - 1];
    const char *name = f->names[f->i++];
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s%s%s", f->prefix, f->prefix[0] ? "/" : "", name) < 0)
        return ks_error_set(err, ENOMEM, "walking the build context");
    struct stat st;
    if (fstatat(f->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return ks_error_set(err, errno, "%s", path);
    bool excluded = di && ks_dockerignore_excluded(di, path);
    if (!excluded) {
        int r = fn(userdata, path, f->fd, name, &st, err);
        if (r < 0)
            return r;
    }
    if (!S_ISDIR(st.st_mode) || (excluded && !ks_dockerignore_walk_excluded_dir(di, path)))
        return 0;
    int fd = openat(f->fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "%s", path);
    return push(stack, depth, fd, TAKE_PTR(path), err);
}

int ks_context_open_parent(int rootfd, const char *path, char **ret_base, struct ks_error **err)
{
    _cleanup_free_ char *copy = strdup(path);
    if (copy == NULL)
        return ks_error_set(err, ENOMEM, "%s", path);
    char *slash = strrchr(copy, '/');
    const char *dir = ".", *base = copy;
    if (slash) {
        *slash = '\0';
        dir = copy[0] ? copy : "/";
        base = slash + 1;
    }
    *ret_base = strdup(base[0] ? base : ".");
    if (*ret_base == NULL)
        return ks_error_set(err, ENOMEM, "%s", path);
    int fd = ks_open_in_root(rootfd, dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, err);
    if (fd < 0) {
        free(*ret_base);
        *ret_base = NULL;
    }
    return fd;
}

int ks_context_walk(int rootfd, const char *sub, const struct ks_dockerignore *di, ks_context_fn fn,
                    void *userdata, struct ks_error **err)
{
    _cleanup_free_ char *clean = ks_path_clean(sub && sub[0] ? sub : ".");
    if (clean == NULL)
        return ks_error_set(err, ENOMEM, "walking the build context");
    if (clean[0] == '/' || strcmp(clean, "..") == 0 || strncmp(clean, "../", 3) == 0)
        return ks_error_msg(err, "%s: outside the build context", sub);
    bool top = strcmp(clean, ".") == 0;
    int r = 0;
    /* sub's directory, resolved inside the root: no symbolic link leads out of it */
    _cleanup_free_ char *base = NULL;
    _cleanup_close_ int pfd = ks_context_open_parent(rootfd, clean, &base, err);
    if (pfd < 0)
        return pfd;
    if (!top) {
        /* sub itself is reported, as a file or as the first directory */
        struct stat st;
        if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
            return ks_error_set(err, errno, "%s", clean);
        bool excluded = di && ks_dockerignore_excluded(di, clean);
        if (!excluded && (r = fn(userdata, clean, pfd, base, &st, err)) < 0)
            return r;
        if (!S_ISDIR(st.st_mode) || (excluded && !ks_dockerignore_walk_excluded_dir(di, clean)))
            return 0;
    }
    struct frame *stack = calloc(KS_CONTEXT_MAX_DEPTH, sizeof(*stack));
    if (stack == NULL)
        return ks_error_set(err, ENOMEM, "walking the build context");
    size_t depth = 0;
    int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    char *prefix = strdup(top ? "" : clean);
    if (fd < 0 || prefix == NULL) {
        r = fd < 0 ? ks_error_set(err, errno, "%s", clean) : ks_error_set(err, ENOMEM, "walk");
        if (fd >= 0)
            close(fd);
        free(prefix);
    } else {
        r = push(stack, &depth, fd, prefix, err);
    }
    while (r >= 0 && depth > 0) {
        struct frame *f = &stack[depth - 1];
        if (f->i == f->n) {
            frame_clear(f);
            depth--;
            continue;
        }
        r = visit(stack, &depth, di, fn, userdata, err);
    }
    while (depth > 0)
        frame_clear(&stack[--depth]);
    free(stack);
    return r;
}

static int digest_entry(void *userdata, const char *path, int parent_fd, const char *name,
                        const struct stat *st, struct ks_error **err)
{
    EVP_MD_CTX *md = userdata;
    char head[128];
    int n =
        snprintf(head, sizeof(head), "%o %u %u %lld", (unsigned)st->st_mode, (unsigned)st->st_uid,
                 (unsigned)st->st_gid, S_ISREG(st->st_mode) ? (long long)st->st_size : 0LL);
    /* NUL separators: no path or target can forge the next field */
    EVP_DigestUpdate(md, path, strlen(path) + 1);
    EVP_DigestUpdate(md, head, (size_t)n + 1);
    if (S_ISLNK(st->st_mode)) {
        char target[4096];
        ssize_t l = readlinkat(parent_fd, name, target, sizeof(target));
        if (l < 0)
            return ks_error_set(err, errno, "%s", path);
        EVP_DigestUpdate(md, target, (size_t)l);
    } else if (S_ISREG(st->st_mode)) {
        _cleanup_close_ int fd = openat(parent_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return ks_error_set(err, errno, "%s", path);
        char buf[65536];
        for (ssize_t l; (l = read(fd, buf, sizeof(buf))) != 0;) {
            if (l < 0) {
                if (errno == EINTR)
                    continue;
                return ks_error_set(err, errno, "%s", path);
            }
            EVP_DigestUpdate(md, buf, (size_t)l);
        }
    }
    EVP_DigestUpdate(md, "\n", 1);
    return 0;
}

int ks_context_digest(int rootfd, const char *sub, const struct ks_dockerignore *di,
                      char out[static KS_SHA256_DIGEST_LEN], struct ks_error **err)
{
    _cleanup_md_ EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        return ks_error_set(err, ENOMEM, "hashing the build context");
    int r = ks_context_walk(rootfd, sub, di, digest_entry, md, err);
    if (r < 0)
        return r;
    if (ks_sha256_final(md, out) < 0)
        return ks_error_set(err, ENOMEM, "hashing the build context");
    return 0;
}
