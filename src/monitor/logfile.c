/* The json-file log driver, in Docker's format: output split into lines (and 16 KiB pieces of
 * longer lines), one JSON object per record, the file rotated by size. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "monitor.h"

void mon_split_feed(struct mon_splitter *s, const char *data, size_t n, mon_line_fn fn,
                    void *userdata)
{
    while (n > 0) {
        size_t room = MON_LINE_MAX - s->len;
        size_t look = n < room ? n : room;
        const char *nl = memchr(data, '\n', look);
        if (nl) {
            size_t k = (size_t)(nl - data) + 1;
            if (s->len == 0) {
                /* The common case: a whole line in one read, no copy. */
                fn(data, k, false, userdata);
            } else {
                memcpy(s->buf + s->len, data, k);
                fn(s->buf, s->len + k, false, userdata);
                s->len = 0;
            }
            data += k;
            n -= k;
            continue;
        }
        memcpy(s->buf + s->len, data, look);
        s->len += look;
        data += look;
        n -= look;
        if (s->len == MON_LINE_MAX) {
            fn(s->buf, s->len, true, userdata);
            s->len = 0;
        }
    }
}

void mon_split_flush(struct mon_splitter *s, mon_line_fn fn, void *userdata)
{
    if (s->len > 0)
        fn(s->buf, s->len, true, userdata);
    s->len = 0;
}

static int open_log(const char *path, struct ks_error **err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
    if (fd < 0)
        return ks_error_set(err, errno, "open log `%s`", path);
    return fd;
}

int mon_logfile_open(struct mon_logfile *l, const char *path, uint64_t max_size, unsigned max_files,
                     struct ks_error **err)
{
    *l = (struct mon_logfile){.fd = -EBADF, .max_size = max_size, .max_files = max_files};
    l->path = strdup(path);
    l->rec = malloc(MON_LOG_RECORD_MAX);
    if (l->path == NULL || l->rec == NULL) {
        mon_logfile_close(l);
        return ks_error_set(err, ENOMEM, "log");
    }
    l->fd = open_log(path, err);
    if (l->fd < 0) {
        int r = l->fd;
        mon_logfile_close(l);
        return r;
    }
    struct stat st;
    if (fstat(l->fd, &st) == 0)
        l->size = (uint64_t)st.st_size;
    return 0;
}

void mon_logfile_close(struct mon_logfile *l)
{
    if (l->fd >= 0)
        close(l->fd);
    free(l->path);
    free(l->rec);
    *l = (struct mon_logfile){.fd = -EBADF};
}

static int rotate(struct mon_logfile *l, struct ks_error **err)
{
    if (l->max_files < 2) {
        /* One file in all: start it again. */
        if (ftruncate(l->fd, 0) < 0)
            return ks_error_set(err, errno, "truncate log `%s`", l->path);
        l->size = 0;
        return 0;
    }
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    size_t plen = sizeof(from);
    for (unsigned i = l->max_files - 1; i >= 1; i--) {
        snprintf(to, plen, "%s.%u", l->path, i);
        if (i == 1)
            snprintf(from, plen, "%s", l->path);
        else
            snprintf(from, plen, "%s.%u", l->path, i - 1);
        /* rename() replaces the oldest file, so max_files are left. */
        if (rename(from, to) < 0 && errno != ENOENT)
            return ks_error_set(err, errno, "rotate log `%s`", from);
    }
    int fd = open_log(l->path, err);
    if (fd < 0)
        return fd;
    close(l->fd);
    l->fd = fd;
    l->size = 0;
    return 0;
}

int mon_logfile_write(struct mon_logfile *l, const char *stream, const char *line, size_t len,
                      const char *time, struct ks_error **err)
{
    if (len > MON_LINE_MAX)
        return ks_error_msg(err, "log record longer than %d bytes", MON_LINE_MAX);
    char *o = l->rec;
    memcpy(o, "{\"log\":\"", 8);
    o += 8;
    o += mon_json_escape(o, line, len);
    o += snprintf(o, 96, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n", stream, time);
    size_t n = (size_t)(o - l->rec);
    if (l->max_size > 0 && l->size > 0 && l->size + n > l->max_size) {
        int r = rotate(l, err);
        if (r < 0)
            return r;
    }
    /* One write per record, so that a reader following the file sees whole lines. */
    int r = ks_write_all(l->fd, l->rec, n);
    if (r < 0)
        return ks_error_set(err, -r, "write log `%s`", l->path);
    l->size += n;
    return 0;
}
