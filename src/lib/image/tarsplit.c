/* The tar index (tarsplit.h): a small tar header parser that runs over the stream as it passes
 * (blocks may arrive split anywhere), and the replay. The parser only needs to know where each
 * entry's data starts and ends and which path a regular file has; whatever it does not
 * understand it keeps as raw bytes, which is always correct, only larger. */
#include "tarsplit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/fs.h"
#include "blobstore.h"
#include "layer.h"

#define BLOCK          512
#define RAW_BUF_SIZE   (64 * 1024)
#define SKIP_READ      (8 * 1024)    /* a read while skipping file data */
#define OUT_BUF_SIZE   (256 * 1024)  /* records gathered before they go to the blob writer */
#define MAX_EXT_HEADER (1024 * 1024) /* a PAX or GNU long-name header held to be read */
#define REPLAY_BUF     (1024 * 1024)

enum state { HEADER, DATA, PAD };
enum data_kind { DATA_RAW, DATA_FILE, DATA_PAX, DATA_LONGNAME };

/* A set of strings, open addressing: paths of files written and of their directories. */
struct set {
    char **slots;
    size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static bool set_has(const struct set *st, const char *s)
{
    if (st->cap == 0)
        return false;
    for (size_t i = hash_str(s) & (st->cap - 1);; i = (i + 1) & (st->cap - 1)) {
        if (st->slots[i] == NULL)
            return false;
        if (strcmp(st->slots[i], s) == 0)
            return true;
    }
}

static int set_add(struct set *st, const char *s)
{
    if (set_has(st, s))
        return 0;
    if (2 * (st->n + 1) > st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 1024;
        char **slots = calloc(cap, sizeof(char *));
        if (slots == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < st->cap; i++) {
            if (st->slots[i] == NULL)
                continue;
            size_t j = hash_str(st->slots[i]) & (cap - 1);
            while (slots[j])
                j = (j + 1) & (cap - 1);
            slots[j] = st->slots[i];
        }
        free(st->slots);
        st->slots = slots;
        st->cap = cap;
    }
    char *copy = strdup(s);
    if (copy == NULL)
        return -ENOMEM;
    size_t i = hash_str(s) & (st->cap - 1);
    while (st->slots[i])
        i = (i + 1) & (st->cap - 1);
    st->slots[i] = copy;
    st->n++;
    return 0;
}

static void set_free(struct set *st)
{
    for (size_t i = 0; i < st->cap; i++)
        free(st->slots[i]);
    free(st->slots);
}

struct ks_tarsplit {
    struct ks_blob_writer *w;
    enum state state;
    unsigned char hdr[BLOCK];
    size_t hdr_len;
    uint64_t remaining; /* of DATA or PAD */
    uint64_t entry_size;
    enum data_kind kind;
    char *ext; /* PAX records or a GNU long name being read */
    size_t ext_len;
    char *pax_path; /* for the next entry */
    char *long_name;
    bool pax_size_set;
    uint64_t pax_size;
    bool raw_only; /* something not understood: keep the rest as it is */
    bool unsafe;
    struct set files, dirs;
    unsigned char *raw;
    size_t raw_len;
    /* Records are small (a few per entry): written one by one they cost a write call each. */
    unsigned char *out;
    size_t out_len;
};

void ks_tarsplit_free(struct ks_tarsplit *t)
{
    if (t == NULL)
        return;
    free(t->ext);
    free(t->pax_path);
    free(t->long_name);
    set_free(&t->files);
    set_free(&t->dirs);
    free(t->raw);
    free(t->out);
    free(t);
}

int ks_tarsplit_new(struct ks_blob_writer *w, struct ks_tarsplit **ret, struct ks_error **err)
{
    struct ks_tarsplit *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->raw = malloc(RAW_BUF_SIZE)) == NULL ||
        (t->out = malloc(OUT_BUF_SIZE)) == NULL) {
        ks_tarsplit_free(t);
        return ks_error_set(err, ENOMEM, "tar index");
    }
    t->w = w;
    int r = ks_blob_writer_write(w, KS_TARSPLIT_MAGIC, KS_TARSPLIT_MAGIC_LEN, err);
    if (r < 0) {
        ks_tarsplit_free(t);
        return r;
    }
    *ret = t;
    return 0;
}

/* --- writing records --- */

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static int flush_out(struct ks_tarsplit *t, struct ks_error **err)
{
    int r = t->out_len ? ks_blob_writer_write(t->w, t->out, t->out_len, err) : 0;
    t->out_len = 0;
    return r;
}

static int emit(struct ks_tarsplit *t, const void *buf, size_t len, struct ks_error **err)
{
    if (t->out_len + len > OUT_BUF_SIZE) {
        int r = flush_out(t, err);
        if (r < 0)
            return r;
        if (len > OUT_BUF_SIZE)
            return ks_blob_writer_write(t->w, buf, len, err);
    }
    memcpy(t->out + t->out_len, buf, len);
    t->out_len += len;
    return 0;
}

static int flush_raw(struct ks_tarsplit *t, struct ks_error **err)
{
    if (t->raw_len == 0)
        return 0;
    unsigned char h[5] = {'R'};
    put_le(h + 1, t->raw_len, 4);
    int r = emit(t, h, sizeof(h), err);
    if (r >= 0)
        r = emit(t, t->raw, t->raw_len, err);
    t->raw_len = 0;
    return r;
}

static int raw(struct ks_tarsplit *t, const void *buf, size_t len, struct ks_error **err)
{
    while (len > 0) {
        size_t n = RAW_BUF_SIZE - t->raw_len;
        if (n > len)
            n = len;
        memcpy(t->raw + t->raw_len, buf, n);
        t->raw_len += n;
        buf = (const char *)buf + n;
        len -= n;
        if (t->raw_len == RAW_BUF_SIZE) {
            int r = flush_raw(t, err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static int file_record(struct ks_tarsplit *t, const char *path, uint64_t size,
                       struct ks_error **err)
{
    int r = flush_raw(t, err);
    if (r < 0)
        return r;
    size_t n = strlen(path);
    unsigned char h[11] = {'F'};
    put_le(h + 1, size, 8);
    put_le(h + 9, n, 2);
    r = emit(t, h, sizeof(h), err);
    return r < 0 ? r : emit(t, path, n, err);
}

/* --- parsing --- */

static bool parse_octal(const unsigned char *p, size_t n, uint64_t *ret)
{
    if (p[0] & 0x80) { /* base-256 */
        if (p[0] != 0x80)
            return false;
        uint64_t v = 0;
        for (size_t i = 1; i < n; i++) {
            if (v >> 56)
                return false;
            v = (v << 8) | p[i];
        }
        *ret = v;
        return true;
    }
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\0'))
        i++;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
        if (v >> 60)
            return false;
        v = v * 8 + (uint64_t)(p[i] - '0');
    }
    *ret = v;
    return true;
}

static bool checksum_ok(const unsigned char *h)
{
    uint64_t want;
    if (!parse_octal(h + 148, 8, &want))
        return false;
    uint64_t sum = 0;
    for (int i = 0; i < BLOCK; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    return sum == want;
}

/* A member's path cleaned as the apply step cleans it; NULL when it refuses it (the apply step
 * then fails the layer) or when out of memory. */
static char *clean(const char *name)
{
    char *out = NULL;
    return ks_layer_clean_path(name, &out) < 0 ? NULL : out;
}

/* The entry's name: PAX path, else a GNU long name, else ustar prefix and name. */
static char *entry_name(struct ks_tarsplit *t)
{
    if (t->pax_path)
        return clean(t->pax_path);
    if (t->long_name)
        return clean(t->long_name);
    char name[256 + 2] = "";
    const char *h = (const char *)t->hdr;
    if (memcmp(h + 257, "ustar\0", 6) == 0 && h[345])
        snprintf(name, sizeof(name), "%.155s/%.100s", h + 345, h);
    else
        snprintf(name, sizeof(name), "%.100s", h);
    return clean(name);
}

static void parse_pax(struct ks_tarsplit *t)
{
    const char *p = t->ext, *end = t->ext + t->ext_len;
    while (p < end) {
        char *sp;
        unsigned long len = strtoul(p, &sp, 10);
        if (sp == p || *sp != ' ' || len == 0 || len > (unsigned long)(end - p)) {
            t->raw_only = true;
            return;
        }
        const char *kv = sp + 1, *rec_end = p + len;
        if (rec_end[-1] != '\n') {
            t->raw_only = true;
            return;
        }
        size_t kvlen = (size_t)(rec_end - 1 - kv);
        if (kvlen > 5 && strncmp(kv, "path=", 5) == 0) {
            free(t->pax_path);
            t->pax_path = strndup(kv + 5, kvlen - 5);
            if (t->pax_path == NULL || strlen(t->pax_path) != kvlen - 5)
                t->raw_only = true;
        } else if (kvlen > 5 && strncmp(kv, "size=", 5) == 0) {
            char buf[32];
            snprintf(buf, sizeof(buf), "%.*s", (int)(kvlen - 5), kv + 5);
            t->pax_size = strtoull(buf, NULL, 10);
            t->pax_size_set = true;
        } else if (kvlen > 11 && strncmp(kv, "GNU.sparse.", 11) == 0) {
            t->raw_only = true; /* sparse data is laid out differently from the file */
        }
        p = rec_end;
    }
}

static void end_entry(struct ks_tarsplit *t)
{
    free(t->pax_path);
    free(t->long_name);
    t->pax_path = t->long_name = NULL;
    t->pax_size_set = false;
}

/* Whether writing path (of a non-directory unless is_dir) undoes a file written before. */
static bool clobbers(struct ks_tarsplit *t, const char *path, bool is_dir)
{
    if (set_has(&t->files, path))
        return true;
    return !is_dir && set_has(&t->dirs, path);
}

static int note_file(struct ks_tarsplit *t, const char *path)
{
    if (set_add(&t->files, path) < 0)
        return -ENOMEM;
    _cleanup_free_ char *dir = strdup(path);
    if (dir == NULL)
        return -ENOMEM;
    for (char *s = strrchr(dir, '/'); s; s = strrchr(dir, '/')) {
        *s = '\0';
        if (set_has(&t->dirs, dir))
            break;
        if (set_add(&t->dirs, dir) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int header_done(struct ks_tarsplit *t, struct ks_error **err)
{
    int r = raw(t, t->hdr, BLOCK, err);
    if (r < 0)
        return r;
    bool zero = true;
    for (int i = 0; i < BLOCK && zero; i++)
        zero = t->hdr[i] == 0;
    if (zero)
        return 0;
    uint64_t size;
    if (!checksum_ok(t->hdr) || !parse_octal(t->hdr + 124, 12, &size)) {
        t->raw_only = true;
        return 0;
    }
    char type = (char)t->hdr[156];
    if (t->pax_size_set && type != 'x' && type != 'g')
        size = t->pax_size;
    t->entry_size = size;
    t->remaining = size;
    t->state = size ? DATA : HEADER;
    t->kind = DATA_RAW;
    t->ext_len = 0;
    if (type == 'x' || type == 'L') {
        if (size > MAX_EXT_HEADER) {
            t->raw_only = true;
            return 0;
        }
        free(t->ext);
        t->ext = malloc(size + 1);
        if (t->ext == NULL)
            return ks_error_set(err, ENOMEM, "tar index");
        t->kind = type == 'x' ? DATA_PAX : DATA_LONGNAME;
        return 0;
    }
    if (type == 'g' || type == 'K')
        return 0;
    _cleanup_free_ char *path = entry_name(t);
    end_entry(t);
    if (path == NULL || *path == '\0')
        return 0;
    bool is_dir = type == '5';
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, ".wh.", 4) == 0 && strncmp(base, ".wh..wh.", 8) != 0) {
        /* A whiteout removes base's victim. */
        _cleanup_free_ char *victim = strdup(path);
        if (victim == NULL)
            return ks_error_set(err, ENOMEM, "tar index");
        memmove(victim + (base - path), base + 4, strlen(base + 4) + 1);
        if (clobbers(t, victim, false))
            t->unsafe = true;
        return 0;
    }
    if (clobbers(t, path, is_dir))
        t->unsafe = true;
    bool regular = type == '0' || type == '\0' || type == '7';
    if (regular && size > 0) {
        t->kind = DATA_FILE;
        if (note_file(t, path) < 0)
            return ks_error_set(err, ENOMEM, "tar index");
        return file_record(t, path, size, err);
    }
    return 0;
}

static int data_done(struct ks_tarsplit *t)
{
    if (t->kind == DATA_PAX) {
        parse_pax(t);
    } else if (t->kind == DATA_LONGNAME) {
        t->ext[t->ext_len] = '\0';
        free(t->long_name);
        t->long_name = strdup(t->ext);
        if (t->long_name == NULL)
            return -ENOMEM;
    }
    uint64_t pad = (BLOCK - t->entry_size % BLOCK) % BLOCK;
    t->remaining = pad;
    t->state = pad ? PAD : HEADER;
    return 0;
}

int ks_tarsplit_feed(struct ks_tarsplit *t, const void *buf, size_t len, struct ks_error **err)
{
    const unsigned char *p = buf;
    while (len > 0) {
        if (t->raw_only)
            return raw(t, p, len, err);
        int r = 0;
        size_t n = 0;
        switch (t->state) {
        case HEADER:
            n = BLOCK - t->hdr_len;
            if (n > len)
                n = len;
            memcpy(t->hdr + t->hdr_len, p, n);
            t->hdr_len += n;
            if (t->hdr_len == BLOCK) {
                t->hdr_len = 0;
                r = header_done(t, err);
            }
            break;
        case DATA:
            n = t->remaining < len ? (size_t)t->remaining : len;
            if (t->kind == DATA_PAX || t->kind == DATA_LONGNAME) {
                memcpy(t->ext + t->ext_len, p, n);
                t->ext_len += n;
            }
            if (t->kind != DATA_FILE)
                r = raw(t, p, n, err);
            t->remaining -= n;
            if (r >= 0 && t->remaining == 0 && data_done(t) < 0)
                r = ks_error_set(err, ENOMEM, "tar index");
            break;
        case PAD:
            n = t->remaining < len ? (size_t)t->remaining : len;
            r = raw(t, p, n, err);
            t->remaining -= n;
            if (t->remaining == 0)
                t->state = HEADER;
            break;
        }
        if (r < 0)
            return r;
        p += n;
        len -= n;
    }
    return 0;
}

uint64_t ks_tarsplit_skippable(const struct ks_tarsplit *t)
{
    return !t->raw_only && t->state == DATA && t->kind == DATA_FILE ? t->remaining : 0;
}

int ks_tarsplit_skip(struct ks_tarsplit *t, uint64_t n, struct ks_error **err)
{
    if (n > ks_tarsplit_skippable(t))
        return ks_error_set_plain(err, EINVAL, "tar index: skipping more than file data");
    t->remaining -= n;
    if (t->remaining == 0 && data_done(t) < 0)
        return ks_error_set(err, ENOMEM, "tar index");
    return 0;
}

size_t ks_tarsplit_read_size(const struct ks_tarsplit *t, size_t max)
{
    /* A header block, a PAX header and its records fit; so do the small files a few blocks
     * long, whose data is fed rather than skipped. */
    return t->raw_only || max < SKIP_READ ? max : SKIP_READ;
}

int ks_tarsplit_finish(struct ks_tarsplit *t, bool *ret_unsafe, struct ks_error **err)
{
    int r = flush_raw(t, err);
    if (r >= 0)
        r = emit(t, "E", 1, err);
    if (r >= 0)
        r = flush_out(t, err);
    *ret_unsafe = t->unsafe || (t->state == DATA && t->kind == DATA_FILE);
    return r;
}

bool ks_tarsplit_is_index(int fd)
{
    char buf[KS_TARSPLIT_MAGIC_LEN];
    return pread(fd, buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) &&
           memcmp(buf, KS_TARSPLIT_MAGIC, sizeof(buf)) == 0;
}

/* --- replay --- */

static int read_exact(int fd, void *buf, size_t len, struct ks_error **err)
{
    ssize_t n = ks_read_all(fd, buf, len);
    if (n < 0)
        return ks_error_set(err, errno, "read the tar index");
    if ((size_t)n != len)
        return ks_error_set_plain(err, EBADMSG, "the tar index is truncated");
    return 0;
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int replay_file(int dirfd, const char *path, uint64_t size, char *buf,
                       ks_tarsplit_out_fn out, void *userdata, struct ks_error **err)
{
    _cleanup_close_ int fd =
        ks_open_in_root(dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0, err);
    if (fd < 0)
        return ks_error_wrap(err, "layer file `%s`", path);
    while (size > 0) {
        size_t want = size < REPLAY_BUF ? (size_t)size : REPLAY_BUF;
        ssize_t n = ks_read_all(fd, buf, want);
        if (n < 0)
            return ks_error_set(err, errno, "read layer file `%s`", path);
        if ((size_t)n != want)
            return ks_error_set_plain(err, EBADMSG,
                                      "layer file `%s` is shorter than its tar "
                                      "entry",
                                      path);
        int r = out(userdata, buf, (size_t)n, err);
        if (r < 0)
            return r;
        size -= (uint64_t)n;
    }
    return 0;
}

int ks_tarsplit_replay(int index_fd, int diff_dirfd, ks_tarsplit_out_fn out, void *userdata,
                       struct ks_error **err)
{
    if (lseek(index_fd, 0, SEEK_SET) < 0)
        return ks_error_set(err, errno, "seek the tar index");
    _cleanup_free_ char *buf = malloc(REPLAY_BUF);
    if (buf == NULL)
        return ks_error_set(err, ENOMEM, "tar index");
    unsigned char magic[KS_TARSPLIT_MAGIC_LEN];
    int r = read_exact(index_fd, magic, sizeof(magic), err);
    if (r < 0)
        return r;
    if (memcmp(magic, KS_TARSPLIT_MAGIC, sizeof(magic)) != 0)
        return ks_error_set_plain(err, EBADMSG, "not a tar index");
    for (;;) {
        unsigned char type;
        r = read_exact(index_fd, &type, 1, err);
        if (r < 0)
            return r;
        if (type == 'E')
            return 0;
        if (type == 'R') {
            unsigned char h[4];
            r = read_exact(index_fd, h, 4, err);
            uint64_t n = get_le(h, 4);
            if (r >= 0 && n > REPLAY_BUF)
                r = ks_error_set_plain(err, EBADMSG, "the tar index is corrupt");
            if (r >= 0)
                r = read_exact(index_fd, buf, (size_t)n, err);
            if (r >= 0)
                r = out(userdata, buf, (size_t)n, err);
        } else if (type == 'F') {
            unsigned char h[10];
            r = read_exact(index_fd, h, 10, err);
            uint64_t size = get_le(h, 8);
            size_t n = (size_t)get_le(h + 8, 2);
            char path[65536 + 1];
            if (r >= 0)
                r = read_exact(index_fd, path, n, err);
            path[r >= 0 ? n : 0] = '\0';
            if (r >= 0 && (strlen(path) != n || n == 0))
                r = ks_error_set_plain(err, EBADMSG, "the tar index is corrupt");
            if (r >= 0)
                r = replay_file(diff_dirfd, path, size, buf, out, userdata, err);
        } else {
            r = ks_error_set_plain(err, EBADMSG, "the tar index is corrupt");
        }
        if (r < 0)
            return r;
    }
}
