/* `kiste logs`: reads a container's json-file log (the file and its rotated predecessors
 * log.1 … log.N, the highest number the oldest), prints each entry's text to stdout or stderr by
 * its stream, and with --follow keeps reading as the monitor appends and rotates. The file holds
 * whatever the container printed, wrapped by the monitor: every line is parsed defensively and
 * one that does not parse is skipped. */
#include "logs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/fs.h"
#include "lib/base/json.h"

/* A line longer than this is not one the monitor wrote (16 KiB of text, escaped at most six
 * times over, plus the keys): it is skipped. */
#define LOG_LINE_MAX (256 * 1024)
/* How many rotated files are looked for; the engine keeps a handful. */
#define LOG_FILES_MAX 100
#define READ_CHUNK    (64 * 1024)
/* How often a follower asks whether the container still runs when the log is quiet. */
#define FOLLOW_POLL_MS 250

#define NSEC_PER_SEC 1000000000LL

/* ---------------------------------------------------------------------------------------------
 * Time values */

static bool digits(const char **s, size_t n, int *ret)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return false;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *ret = v;
    return true;
}

/* Up to nine digits of a fraction of a second, as nanoseconds; more digits are truncated. */
static bool fraction(const char **s, int64_t *ret_ns)
{
    size_t n = strspn(*s, "0123456789");
    if (n == 0)
        return false;
    int64_t ns = 0;
    for (size_t i = 0; i < 9; i++)
        ns = ns * 10 + (i < n ? (*s)[i] - '0' : 0);
    *s += n;
    *ret_ns = ns;
    return true;
}

/* A date "YYYY-MM-DD", then optionally "THH", ":MM", ":SS", ".fraction", then an optional zone
 * "Z" or "±HH:MM": the forms Docker accepts for --since and --until and writes in its logs.
 * Without a zone the time is local. */
static bool parse_date_time(const char *s, int64_t *ret_ns)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct tm tm = {0};
    int year, mon, day, hour = 0, min = 0, sec = 0;
    int64_t frac = 0;
    if (!digits(&s, 4, &year) || *s++ != '-' || !digits(&s, 2, &mon) || *s++ != '-' ||
        !digits(&s, 2, &day))
        return false;
    if (*s == 'T' || *s == 't') {
        s++;
        if (!digits(&s, 2, &hour))
            return false;
        if (*s == ':') {
            s++;
            if (!digits(&s, 2, &min))
                return false;
            if (*s == ':') {
                s++;
                if (!digits(&s, 2, &sec))
                    return false;
                if (*s == '.') {
                    s++;
                    if (!fraction(&s, &frac))
                        return false;
                }
            }
        }
    }
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hour > 23 || min > 59 || sec > 60)
        return false;
    if (mon == 2 && day == 29 && !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
        return false;

    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    time_t t;
    if (*s == '\0') {
        tm.tm_isdst = -1;
        t = mktime(&tm);
    } else {
        int sign = 0, oh = 0, om = 0;
        if (*s == 'Z' || *s == 'z') {
            s++;
        } else if (*s == '+' || *s == '-') {
            sign = *s++ == '-' ? -1 : 1;
            if (!digits(&s, 2, &oh) || *s++ != ':' || !digits(&s, 2, &om) || oh > 23 || om > 59)
                return false;
        } else {
            return false;
        }
        if (*s != '\0')
            return false;
        t = timegm(&tm) - sign * (oh * 3600 + om * 60);
    }
    if (t < 0)
        return false;
    *ret_ns = (int64_t)t * NSEC_PER_SEC + frac;
    return true;
}

/* Go's duration syntax, as Docker reads it: a sequence of decimal numbers with units h, m, s,
 * ms, us (or µs) and ns ("1h30m", "1.5s"). Only positive durations mean anything here. */
static bool parse_duration(const char *s, int64_t *ret_ns)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {
        {"ns", 1},
        {"us", 1000},
        {"\xc2\xb5s", 1000},
        {"ms", 1000000},
        {"s", NSEC_PER_SEC},
        {"m", 60 * NSEC_PER_SEC},
        {"h", 3600 * NSEC_PER_SEC},
    };
    if (*s == '\0')
        return false;
    long double total = 0;
    while (*s != '\0') {
        const char *start = s;
        while (isdigit((unsigned char)*s))
            s++;
        if (*s == '.') {
            s++;
            while (isdigit((unsigned char)*s))
                s++;
        }
        if (s == start || (s == start + 1 && *start == '.'))
            return false;
        long double v = strtold(start, NULL);
        size_t best = SIZE_MAX, best_len = 0;
        for (size_t i = 0; i < KS_ELEMENTSOF(units); i++) {
            size_t n = strlen(units[i].unit);
            if (strncmp(s, units[i].unit, n) == 0 && n > best_len) {
                best = i;
                best_len = n;
            }
        }
        if (best == SIZE_MAX)
            return false;
        s += best_len;
        total += v * (long double)units[best].ns;
        if (total > (long double)INT64_MAX)
            return false;
    }
    *ret_ns = (int64_t)total;
    return true;
}

/* Seconds since the epoch with an optional fraction ("1700000000", "1700000000.5"). */
static bool parse_unix(const char *s, int64_t *ret_ns)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 12)
        return false;
    int64_t sec = 0;
    for (size_t i = 0; i < n; i++)
        sec = sec * 10 + (s[i] - '0');
    s += n;
    int64_t frac = 0;
    if (*s == '.') {
        s++;
        if (!fraction(&s, &frac))
            return false;
    }
    if (*s != '\0')
        return false;
    *ret_ns = sec * NSEC_PER_SEC + frac;
    return true;
}

int ks_cli_parse_time_arg(const char *s, int64_t now_ns, int64_t *ret_ns, struct ks_error **err)
{
    int64_t v;
    if (s == NULL || *s == '\0')
        return ks_error_msg(err, "empty time value");
    /* "0" is the epoch, not a zero duration (as Docker reads it). */
    if (strcmp(s, "0") != 0 && parse_duration(s, &v)) {
        /* Not 0, which means "not set". */
        *ret_ns = v < now_ns ? now_ns - v : 1;
        return 0;
    }
    if (parse_date_time(s, &v) || parse_unix(s, &v)) {
        *ret_ns = v;
        return 0;
    }
    return ks_error_msg(err,
                        "`%s` is not a time: expected an RFC 3339 date, unix seconds or a "
                        "duration such as 10m",
                        s);
}

/* ---------------------------------------------------------------------------------------------
 * Printing entries */

struct printer {
    const struct ks_logs_opts *o;
    bool done; /* --until passed, or our output is gone */
    int error; /* a negative errno from writing */
};

static int emit(struct printer *p, int fd, const char *data, size_t len)
{
    int r = ks_write_all(fd, data, len);
    if (r < 0) {
        /* A reader that went away (`kiste logs … | head`) ends the command quietly. */
        p->done = true;
        if (r != -EPIPE)
            p->error = r;
    }
    return r;
}

/* Formats ns as Docker's fixed-width RFC 3339 ("2026-11-27T19:30:00.123456789Z"). */
static void format_time(int64_t ns, char *buf, size_t len)
{
    time_t sec = (time_t)(ns / NSEC_PER_SEC);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%09lldZ", base, (long long)(ns % NSEC_PER_SEC));
}

/* Parses and prints one line of the log file; a malformed one is skipped. */
static void print_line(struct printer *p, const char *line, size_t len)
{
    _cleanup_json_ json_object *o = NULL;
    if (len == 0 || ks_json_parse(line, len, &o, NULL) < 0 ||
        !json_object_is_type(o, json_type_object))
        return;
    json_object *log = ks_json_get_type(o, "log", json_type_string);
    const char *stream = ks_json_str(o, "stream");
    const char *ts = ks_json_str(o, "time");
    int64_t t;
    if (log == NULL || stream == NULL || ts == NULL || !parse_date_time(ts, &t))
        return;
    int fd;
    if (strcmp(stream, "stdout") == 0)
        fd = STDOUT_FILENO;
    else if (strcmp(stream, "stderr") == 0)
        fd = p->o->tty ? STDOUT_FILENO : STDERR_FILENO;
    else
        return;

    if (p->o->since_ns != 0 && t < p->o->since_ns)
        return;
    if (p->o->until_ns != 0 && t > p->o->until_ns) {
        p->done = true;
        return;
    }
    if (p->o->timestamps) {
        char buf[64];
        format_time(t, buf, sizeof(buf) - 1);
        strcat(buf, " ");
        if (emit(p, fd, buf, strlen(buf)) < 0)
            return;
    }
    emit(p, fd, json_object_get_string(log), (size_t)json_object_get_string_len(log));
}

/* ---------------------------------------------------------------------------------------------
 * Reading lines */

/* The bytes of a file not yet split into lines. A line longer than LOG_LINE_MAX is dropped up
 * to its newline. */
struct line_reader {
    char *buf;
    size_t len, cap;
    bool skipping;
};

static void reader_reset(struct line_reader *lr)
{
    lr->len = 0;
    lr->skipping = false;
}

static void reader_free(struct line_reader *lr)
{
    free(lr->buf);
    *lr = (struct line_reader){0};
}

/* Prints the complete lines of data and keeps a trailing partial one. */
static int reader_feed(struct line_reader *lr, struct printer *p, const char *data, size_t len)
{
    while (len > 0 && !p->done) {
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) : len;
        if (!lr->skipping) {
            if (lr->len + n > LOG_LINE_MAX) {
                lr->skipping = true;
                lr->len = 0;
            } else if (nl && lr->len == 0) {
                print_line(p, data, n); /* the common case: no copy */
            } else {
                if (lr->len + n > lr->cap) {
                    size_t cap = lr->cap ? lr->cap : 4096;
                    while (cap < lr->len + n)
                        cap *= 2;
                    char *b = realloc(lr->buf, cap);
                    if (b == NULL)
                        return -ENOMEM;
                    lr->buf = b;
                    lr->cap = cap;
                }
                memcpy(lr->buf + lr->len, data, n);
                lr->len += n;
                if (nl) {
                    print_line(p, lr->buf, lr->len);
                    lr->len = 0;
                }
            }
        } else if (nl) {
            lr->skipping = false;
        }
        if (nl == NULL)
            break;
        data += n + 1;
        len -= n + 1;
    }
    return 0;
}

/* A last line without its newline: complete when the writer is done with the file. */
static void reader_flush(struct line_reader *lr, struct printer *p)
{
    if (!lr->skipping && lr->len > 0 && !p->done)
        print_line(p, lr->buf, lr->len);
    reader_reset(lr);
}

/* Reads fd from its current offset to its end, printing complete lines. */
static int drain(int fd, struct line_reader *lr, struct printer *p)
{
    _cleanup_free_ char *buf = malloc(READ_CHUNK);
    if (buf == NULL)
        return -ENOMEM;
    while (!p->done) {
        ssize_t n = read(fd, buf, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        int r = reader_feed(lr, p, buf, (size_t)n);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Files and --tail */

/* The open log files, oldest first (the last one is log_path itself, -EBADF when missing). */
struct log_files {
    int fds[LOG_FILES_MAX + 1];
    size_t n;
};

static void log_files_close(struct log_files *f)
{
    for (size_t i = 0; i < f->n; i++)
        ks_closep(&f->fds[i]);
    f->n = 0;
}

static bool same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_ino == sb.st_ino &&
           sa.st_dev == sb.st_dev;
}

static int log_files_open(const char *log_path, struct log_files *f, struct ks_error **err)
{
    /* Newest first: a rotation between two opens makes us open one file twice (skipped
     * below), where the other order would skip one. */
    int fds[LOG_FILES_MAX + 1];
    size_t n = 0;
    int fd = open(log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT)
        return ks_error_set(err, errno, "open `%s`", log_path);
    fds[n++] = fd;
    for (int i = 1; i <= LOG_FILES_MAX; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s.%d", log_path, i);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            break;
        bool dup = false;
        for (size_t k = 0; k < n && !dup; k++)
            dup = fds[k] >= 0 && same_file(fds[k], fd);
        if (dup) {
            close(fd);
            continue;
        }
        fds[n++] = fd;
    }
    for (size_t i = 0; i < n; i++)
        f->fds[i] = fds[n - 1 - i];
    f->n = n;
    return 0;
}

/* Looks for the start of the last *need lines of fd (of size size), reading backwards in
 * chunks. On return *ret_start is the offset where they begin (0 when the file has fewer) and
 * *need is reduced by the lines found. */
static int tail_start(int fd, off_t size, long *need, off_t *ret_start)
{
    _cleanup_free_ char *buf = malloc(READ_CHUNK);
    if (buf == NULL)
        return -ENOMEM;
    off_t pos = size;
    while (pos > 0 && *need > 0) {
        size_t chunk = (size_t)(pos < READ_CHUNK ? pos : READ_CHUNK);
        pos -= (off_t)chunk;
        ssize_t n = pread(fd, buf, chunk, pos);
        if (n < 0)
            return -errno;
        if ((size_t)n != chunk)
            return -EIO; /* truncated under us */
        for (size_t i = chunk; i-- > 0;) {
            /* Each newline starts the line after it, but for the one that ends the file. */
            if (buf[i] != '\n' || pos + (off_t)i == size - 1)
                continue;
            if (--*need == 0) {
                *ret_start = pos + (off_t)i + 1;
                return 0;
            }
        }
    }
    /* The file's first line has no newline before it. */
    if (*need > 0 && size > 0)
        --*need;
    *ret_start = 0;
    return 0;
}

/* Positions the files for --tail: the first file of the last `tail` lines where they begin;
 * older files are closed, except the newest, which stays open at its end for --follow. */
static int apply_tail(struct log_files *f, long tail)
{
    long need = tail;
    bool newest = true;
    for (size_t i = f->n; i-- > 0;) {
        if (f->fds[i] < 0)
            continue;
        if (need == 0) {
            if (!newest) {
                close(f->fds[i]);
                f->fds[i] = -EBADF;
            } else if (lseek(f->fds[i], 0, SEEK_END) < 0) {
                return -errno;
            }
            newest = false;
            continue;
        }
        newest = false;
        struct stat st;
        if (fstat(f->fds[i], &st) < 0)
            return -errno;
        off_t start = 0;
        int r = tail_start(f->fds[i], st.st_size, &need, &start);
        if (r < 0)
            return r;
        if (lseek(f->fds[i], start, SEEK_SET) < 0)
            return -errno;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Following */

struct follower {
    const char *path;
    int fd;      /* the current file, -EBADF while it does not exist */
    int ino_fd;  /* inotify */
    int file_wd; /* watch on the current file, -1 when none */
};

static int watch_file(struct follower *fw)
{
    if (fw->file_wd >= 0)
        inotify_rm_watch(fw->ino_fd, fw->file_wd);
    fw->file_wd = -1;
    if (fw->fd < 0 || fw->ino_fd < 0)
        return 0;
    char buf[32];
    /* Watch the open file itself, not the name, which rotation moves to another file. */
    fw->file_wd = inotify_add_watch(fw->ino_fd, ks_fd_path(fw->fd, buf, sizeof(buf)),
                                    IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF);
    return fw->file_wd < 0 ? -errno : 0;
}

/* Whether log_path now names another file than the one we read (rotation or creation). */
static bool path_changed(struct follower *fw)
{
    struct stat a, b;
    if (stat(fw->path, &a) < 0)
        return false;
    if (fw->fd < 0 || fstat(fw->fd, &b) < 0)
        return true;
    return a.st_ino != b.st_ino || a.st_dev != b.st_dev;
}

static void rotated_name(const char *log_path, int k, char *buf, size_t len)
{
    if (k == 0)
        snprintf(buf, len, "%s", log_path);
    else
        snprintf(buf, len, "%s.%d", log_path, k);
}

/* Where our file is now among log_path.1 … (its k), -1 when it is not there; *ret_oldest is the
 * highest number that exists. */
static int find_rotated(const char *log_path, const struct stat *cur, int *ret_oldest)
{
    int found = -1;
    *ret_oldest = 0;
    /* No stop at the first gap: a rotation renames one file after the other. */
    for (int k = 1; k <= LOG_FILES_MAX; k++) {
        char path[PATH_MAX];
        struct stat st;
        rotated_name(log_path, k, path, sizeof(path));
        if (stat(path, &st) < 0)
            continue;
        *ret_oldest = k;
        if (found < 0 && st.st_ino == cur->st_ino && st.st_dev == cur->st_dev)
            found = k;
    }
    return found;
}

static int switch_to(struct follower *fw, int fd)
{
    ks_closep(&fw->fd);
    fw->fd = fd;
    return watch_file(fw);
}

/* There was no log at all when we started: every file is new and the oldest comes first. It
 * is checked to be the oldest still after opening, as a rotation may shift the names. */
static int open_oldest(struct follower *fw)
{
    const struct stat none = {.st_ino = 0, .st_dev = (dev_t)-1};
    for (int attempt = 0; attempt < 200; attempt++) {
        int oldest, again;
        char path[PATH_MAX];
        find_rotated(fw->path, &none, &oldest);
        rotated_name(fw->path, oldest, path, sizeof(path));
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT)
                return -errno;
            if (oldest == 0)
                return 0; /* still no log */
            continue;
        }
        struct stat a, b;
        find_rotated(fw->path, &none, &again);
        if (again == oldest && fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev)
            return switch_to(fw, fd);
        close(fd);
    }
    return 0;
}

/* Moves on to the file written after ours, from its start. Ours is now log.k after one or more
 * rotations, so that is log.(k-1), or log_path itself for k = 1. The names shift while the
 * monitor rotates: the pair is checked after opening and looked up again when it changed. When
 * ours was rotated out altogether, the oldest file left follows it. */
static int open_successor(struct follower *fw)
{
    struct stat cur;
    char path[PATH_MAX];
    int oldest = 0;
    if (fw->fd < 0 || fstat(fw->fd, &cur) < 0)
        return open_oldest(fw);
    for (int attempt = 0; attempt < 200; attempt++) {
        if (attempt > 0)
            usleep(1000); /* a rotation in progress */
        int k = find_rotated(fw->path, &cur, &oldest);
        if (k < 0)
            continue;
        rotated_name(fw->path, k - 1, path, sizeof(path));
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            if (errno != ENOENT)
                return -errno;
            continue;
        }
        char ours[PATH_MAX];
        struct stat st;
        rotated_name(fw->path, k, ours, sizeof(ours));
        /* Still the same pair: log.(k-1) was opened before any further rotation. */
        if (stat(ours, &st) == 0 && st.st_ino == cur.st_ino && st.st_dev == cur.st_dev)
            return switch_to(fw, fd);
        close(fd);
    }
    if (oldest == 0)
        return 0;
    rotated_name(fw->path, oldest, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    return switch_to(fw, fd);
}

/* Waits until the log may have grown, or FOLLOW_POLL_MS passed. */
static int wait_for_change(struct follower *fw)
{
    struct pollfd pfd = {.fd = fw->ino_fd, .events = POLLIN};
    int r = poll(&pfd, 1, FOLLOW_POLL_MS);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    if (r > 0) {
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
        (void)!read(fw->ino_fd, buf, sizeof(buf)); /* the events only wake us */
    }
    return 0;
}

static int follow(const char *log_path, int fd, struct line_reader *lr, struct printer *p,
                  bool (*still_running)(void *), void *userdata, struct ks_error **err)
{
    _cleanup_free_ char *dir = strdup(log_path);
    if (dir == NULL)
        return ks_error_set(err, ENOMEM, "following the log");
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    else
        strcpy(dir, ".");

    struct follower fw = {.path = log_path, .fd = fd, .ino_fd = -EBADF, .file_wd = -1};
    _cleanup_close_ int ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    /* With the user's inotify instances or watches used up (every container's monitor holds
     * one) the log is looked at every FOLLOW_POLL_MS instead. */
    if (ino < 0 && errno != EMFILE && errno != ENFILE && errno != ENOSPC) {
        ks_closep(&fw.fd);
        return ks_error_set(err, errno, "inotify");
    }
    fw.ino_fd = ino;
    int r = 0;
    /* The directory tells of a new file under the name (rotation, first write). */
    if (ino >= 0 && inotify_add_watch(ino, dir, IN_CREATE | IN_MOVED_TO) < 0)
        r = ks_error_set(err, errno, "watching `%s`", dir);
    if (r == 0 && (r = watch_file(&fw)) < 0)
        r = ks_error_set(err, -r, "watching `%s`", log_path);

    bool last_round = false;
    while (r == 0 && !p->done) {
        if (fw.fd >= 0 && (r = drain(fw.fd, lr, p)) < 0) {
            r = ks_error_set(err, -r, "read `%s`", log_path);
            break;
        }
        if (path_changed(&fw)) {
            /* The monitor renames the file after its last write to it: one more read since
             * the rename gets all of it. */
            if (fw.fd >= 0 && (r = drain(fw.fd, lr, p)) < 0) {
                r = ks_error_set(err, -r, "read `%s`", log_path);
                break;
            }
            reader_flush(lr, p);
            if ((r = open_successor(&fw)) < 0) {
                r = ks_error_set(err, -r, "open `%s`", log_path);
                break;
            }
            continue;
        }
        if (last_round)
            break;
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        bool until_passed = p->o->until_ns != 0 &&
                            (int64_t)now.tv_sec * NSEC_PER_SEC + now.tv_nsec > p->o->until_ns;
        /* Past --until nothing more can be shown: stop following, after one more pass. */
        if (until_passed || (still_running != NULL && !still_running(userdata))) {
            /* One more pass: what the container wrote before it exited. */
            last_round = true;
            continue;
        }
        if ((r = wait_for_change(&fw)) < 0)
            r = ks_error_set(err, -r, "waiting for the log");
    }
    if (r == 0)
        reader_flush(lr, p);
    ks_closep(&fw.fd);
    return r;
}

int ks_cli_logs(const char *log_path, const struct ks_logs_opts *o,
                bool (*still_running)(void *userdata), void *userdata, struct ks_error **err)
{
    struct log_files files = {0};
    int r = log_files_open(log_path, &files, err);
    if (r < 0)
        return r;

    struct printer p = {.o = o};
    struct line_reader lr = {0};
    if (o->tail >= 0 && (r = apply_tail(&files, o->tail)) < 0) {
        r = ks_error_set(err, -r, "reading the end of `%s`", log_path);
        goto out;
    }
    for (size_t i = 0; i < files.n && !p.done; i++) {
        if (files.fds[i] < 0)
            continue;
        /* The newest file stays open for --follow, and its last line may still be written. */
        bool current = true;
        for (size_t k = i + 1; k < files.n; k++)
            current = current && files.fds[k] < 0;
        if ((r = drain(files.fds[i], &lr, &p)) < 0) {
            r = ks_error_set(err, -r, "read `%s`", log_path);
            goto out;
        }
        if (!current || !o->follow)
            reader_flush(&lr, &p);
    }
    if (o->follow && !p.done) {
        /* From the newest file there was (-EBADF: none), whose successors come next. */
        int fd = -EBADF;
        for (size_t i = files.n; i-- > 0 && fd < 0;)
            fd = TAKE_FD(files.fds[i]);
        r = follow(log_path, fd, &lr, &p, still_running, userdata, err);
    }
    if (r == 0 && p.error < 0)
        r = ks_error_set(err, -p.error, "writing the log");
out:
    reader_free(&lr);
    log_files_close(&files);
    return r;
}
