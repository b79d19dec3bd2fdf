/* `kiste load`, the streaming half: the archive is read once, front to back. Small members
 * (JSON) are held in memory within bounds; members that can be layers (…/layer.tar and blobs/
 * that do not look like JSON) are unpacked into detached layer directories as they pass, their
 * bytes hashed and kept as blobs. What they are is only known at the end, from manifest.json or
 * index.json, which archive_images.c reads; a member unpacked for nothing is removed then. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../base/archive_shim.h"
#include "../base/fs.h"
#include "archive_internal.h"
#include "layer.h"
#include "ref.h"
#include "store_internal.h"
#include "tarsplit.h"

#define READ_BLOCK_SIZE (1024 * 1024)

void ks_archive_loaded_free(struct ks_archive_loaded **v)
{
    for (size_t i = 0; v && v[i]; i++) {
        free(v[i]->id);
        ks_strv_free(v[i]->tags);
        free(v[i]);
    }
    free(v);
}

static void members_release(struct ks_archive_members *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].name);
        free(m->v[i].link);
        free(m->v[i].data);
        ks_store_layer_free(m->v[i].layer);
        ks_error_free(m->v[i].layer_err);
    }
    free(m->v);
}

int ks_archive_clean_path(const char *name, char **ret, struct ks_error **err)
{
    int r = ks_layer_clean_path(name, ret);
    if (r == -ENAMETOOLONG)
        return ks_error_set_plain(err, ENAMETOOLONG, "archive member name too long");
    if (r == -EPERM)
        return ks_error_set_plain(err, EPERM, "archive member `%.200s` leaves the archive", name);
    return r < 0 ? ks_error_set(err, -r, "load") : 0;
}

int ks_archive_strv_add(char ***v, const char *s)
{
    size_t n = *v ? ks_strv_len(*v) : 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp((*v)[i], s) == 0)
            return 0;
    char **nv = realloc(*v, (n + 2) * sizeof(char *));
    if (nv == NULL)
        return -ENOMEM;
    *v = nv;
    nv[n] = strdup(s);
    nv[n + 1] = NULL;
    return nv[n] ? 0 : -ENOMEM;
}

struct ks_archive_member *ks_archive_member_find(struct ks_archive_members *m, const char *name,
                                                 struct ks_error **err)
{
    for (int hop = 0; hop <= KS_ARCHIVE_MAX_LINK_HOPS; hop++) {
        struct ks_archive_member *found = NULL;
        for (size_t i = m->n; i > 0 && found == NULL; i--)
            if (strcmp(m->v[i - 1].name, name) == 0)
                found = &m->v[i - 1];
        if (found == NULL || found->link == NULL)
            return found;
        name = found->link;
    }
    ks_error_set_plain(err, ELOOP, "archive member `%.200s`: too many links", name);
    return NULL;
}

/* --- one member --- */

struct entry_source {
    struct archive *a;
    const void *first; /* the block read to decide what the member is */
    size_t first_len;
    int64_t offset;
};

static int entry_block(struct entry_source *src, const void **buf, size_t *len,
                       struct ks_error **err)
{
    la_int64_t off = 0;
    int r = archive_read_data_block(src->a, buf, len, &off);
    if (r == ARCHIVE_EOF) {
        *len = 0;
        return 0;
    }
    if (r < ARCHIVE_WARN)
        return ks_error_set_plain(err, archive_errno(src->a) > 0 ? archive_errno(src->a) : EIO,
                                  "reading the archive: %s", archive_error_string(src->a));
    /* A sparse member would need holes filled; archives have none, so refuse them. */
    if (off != src->offset)
        return ks_error_msg(err, "reading the archive: sparse members are not supported");
    src->offset += (int64_t)*len;
    return 0;
}

static int entry_source_fn(void *userdata, const void **ret_buf, size_t *ret_len,
                           struct ks_error **err)
{
    struct entry_source *src = userdata;
    if (src->first) {
        *ret_buf = src->first;
        *ret_len = src->first_len;
        src->first = NULL;
        return 0;
    }
    return entry_block(src, ret_buf, ret_len, err);
}

static bool looks_like_json(const void *buf, size_t len)
{
    const char *p = buf;
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
        i++;
    return i < len && (p[i] == '{' || p[i] == '[');
}

/* The digest a member's name promises: blobs/sha256/<hex>. */
static bool name_digest(const char *name, char out[KS_LAYER_DIGEST_LEN])
{
    if (strncmp(name, "blobs/sha256/", 13) != 0)
        return false;
    snprintf(out, KS_LAYER_DIGEST_LEN, "sha256:%s", name + 13);
    return strlen(name + 13) == 64 && ks_is_digest(out);
}

static bool layer_candidate(const char *name)
{
    size_t n = strlen(name);
    return strncmp(name, "blobs/", 6) == 0 || strcmp(name, "layer.tar") == 0 ||
           (n > 10 && strcmp(name + n - 10, "/layer.tar") == 0);
}

static int read_into_memory(struct ks_archive_members *m, struct ks_archive_member *mb,
                            struct entry_source *src, int64_t size, struct ks_error **err)
{
    if (m->memory + (size_t)size > KS_ARCHIVE_MAX_MEMORY)
        return ks_error_set_plain(err, EFBIG, "the archive's metadata is larger than %zu bytes",
                                  KS_ARCHIVE_MAX_MEMORY);
    mb->data = malloc((size_t)size + 1);
    if (mb->data == NULL)
        return ks_error_set(err, ENOMEM, "load");
    for (;;) {
        const void *buf;
        size_t len = 0;
        int r = entry_source_fn(src, &buf, &len, err);
        if (r < 0)
            return r;
        if (len == 0)
            break;
        if (mb->len + len > (size_t)size)
            return ks_error_msg(err, "archive member `%.200s` is longer than its header says",
                                mb->name);
        memcpy(mb->data + mb->len, buf, len);
        mb->len += len;
    }
    mb->data[mb->len] = '\0';
    m->memory += mb->len;
    return 0;
}

/* Unpacks the member as a detached layer; a failure is kept with the member, as it matters only
 * if a manifest uses the member as a layer. */
static int stream_layer(struct ks_store *s, struct ks_archive_member *mb, struct entry_source *src,
                        struct ks_error **err)
{
    char digest[KS_LAYER_DIGEST_LEN];
    struct ks_store_layer_opts o = {.detached = true};
    if (name_digest(mb->name, digest)) {
        o.expected_digest = digest;
        /* An uncompressed layer's blob digest is its diff_id: enough to find it in the store
         * already and only check its bytes. */
        if (!ks_store_compressed(src->first, src->first_len))
            o.expected_diff_id = digest;
    }
    int r = ks_store_layer_add_stream(s, entry_source_fn, src, &o, &mb->layer, &mb->layer_err);
    if (r == -ENOMEM || r == -ENOSPC || r == -EIO || r == -EDQUOT) {
        *err = TAKE_PTR(mb->layer_err);
        return r;
    }
    (void)err;
    return 0;
}

static struct ks_archive_member *member_new(struct ks_archive_members *m, char *name,
                                            struct ks_error **err)
{
    if (m->n >= KS_ARCHIVE_MAX_MEMBERS) {
        ks_error_set_plain(err, E2BIG, "the archive has more than %d members",
                           KS_ARCHIVE_MAX_MEMBERS);
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i].name, name) == 0) {
            ks_error_set_plain(err, EEXIST, "archive member `%.200s` appears twice", name);
            return NULL;
        }
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 32;
        struct ks_archive_member *v = reallocarray(m->v, cap, sizeof(*v));
        if (v == NULL) {
            ks_error_set(err, ENOMEM, "load");
            return NULL;
        }
        m->v = v;
        m->cap = cap;
    }
    struct ks_archive_member *mb = &m->v[m->n++];
    *mb = (struct ks_archive_member){.name = name};
    return mb;
}

/* A link member: its target, relative to the link's directory (symlink) or the archive's root
 * (hardlink), must stay inside the archive. */
static int link_target(const char *name, const char *target, bool symlink, char **ret,
                       struct ks_error **err)
{
    _cleanup_free_ char *joined = NULL;
    const char *slash = strrchr(name, '/');
    if (symlink && *target != '/' && slash) {
        if (asprintf(&joined, "%.*s/%s", (int)(slash - name), name, target) < 0)
            return ks_error_set(err, ENOMEM, "load");
        target = joined;
    }
    /* "a/../b" is fine inside the archive: resolve ".." against what came before. */
    _cleanup_free_ char *copy = strdup(target), *out = calloc(1, strlen(target) + 1);
    if (copy == NULL || out == NULL)
        return ks_error_set(err, ENOMEM, "load");
    size_t n = 0;
    char *save = NULL;
    for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            if (n == 0)
                return ks_error_set_plain(err, EPERM,
                                          "archive member `%.200s` links out of the archive", name);
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            out[n] = '\0';
            continue;
        }
        n += (size_t)sprintf(out + n, "%s%s", n ? "/" : "", c);
    }
    *ret = TAKE_PTR(out);
    return 0;
}

static int read_member(struct ks_store *s, struct ks_archive_members *m, struct archive *a,
                       struct archive_entry *e, struct ks_error **err)
{
    const char *raw = archive_entry_pathname(e);
    if (raw == NULL)
        return ks_error_msg(err, "archive member without a name");
    _cleanup_free_ char *name = NULL;
    int r = ks_archive_clean_path(raw, &name, err);
    if (r < 0)
        return r;
    mode_t type = archive_entry_filetype(e);
    const char *hard = archive_entry_hardlink(e);
    if (type == AE_IFDIR && hard == NULL)
        return 0;
    if (*name == '\0')
        return ks_error_msg(err, "archive member with an empty name");
    if (hard == NULL && type != AE_IFREG && type != AE_IFLNK)
        return ks_error_set_plain(err, EPERM, "archive member `%.200s`: unsupported type 0%o", name,
                                  (unsigned)type);
    struct ks_archive_member *mb = member_new(m, name, err);
    if (mb == NULL)
        return -EINVAL;
    name = NULL;
    if (hard || type == AE_IFLNK) {
        const char *t = hard ? hard : archive_entry_symlink(e);
        if (t == NULL || *t == '\0' || strlen(t) > KS_LAYER_MAX_NAME)
            return ks_error_msg(err, "archive member `%.200s`: invalid link", mb->name);
        return link_target(mb->name, t, hard == NULL, &mb->link, err);
    }

    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    if (size < 0)
        return ks_error_msg(err, "archive member `%.200s` without a size", mb->name);
    struct entry_source src = {.a = a};
    r = entry_block(&src, &src.first, &src.first_len, err);
    if (r < 0)
        return r;
    if (src.first_len == 0)
        src.first = NULL;
    bool small = (size_t)size <= KS_ARCHIVE_MAX_JSON;
    if (layer_candidate(mb->name) && !(small && looks_like_json(src.first, src.first_len)))
        return stream_layer(s, mb, &src, err);
    if (!small) {
        mb->skipped = true;
        return 0;
    }
    return read_into_memory(m, mb, &src, size, err);
}

static int read_members(struct ks_store *s, int fd, struct ks_archive_members *m,
                        struct ks_error **err)
{
    struct archive *a = archive_read_new();
    if (a == NULL)
        return ks_error_set(err, ENOMEM, "load");
    /* Named filters only: archive_read_support_filter_all() would also run external programs
     * on untrusted input. */
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_filter_xz(a);
    archive_read_support_format_tar(a);
    int r = 0;
    if (archive_read_open_fd(a, fd, READ_BLOCK_SIZE) != ARCHIVE_OK)
        r = ks_error_set_plain(err, EINVAL, "reading the archive: %s",
                               archive_error_string(a) ? archive_error_string(a) : "error");
    while (r >= 0) {
        struct archive_entry *e;
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF)
            break;
        if (ar < ARCHIVE_WARN) {
            r = ks_error_set_plain(err, EINVAL, "reading the archive: %s",
                                   archive_error_string(a) ? archive_error_string(a) : "error");
            break;
        }
        r = read_member(s, m, a, e, err);
    }
    archive_read_free(a);
    return r;
}

int ks_archive_load(struct ks_store *s, int in_fd, struct ks_archive_loaded ***ret,
                    struct ks_error **err)
{
    if (ks_archive_require(err) < 0)
        return -ENOENT;
    _cleanup_(members_release) struct ks_archive_members m = {0};
    int r = read_members(s, in_fd, &m, err);
    if (r >= 0)
        r = ks_archive_load_images(s, &m, ret, err);
    return r < 0 ? ks_error_wrap(err, "load") : 0;
}
