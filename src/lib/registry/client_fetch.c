/* Downloading layers: several blobs at once over curl's multi interface, each streamed as it
 * arrives into a pending layer of the store (unpacked and hashed on a thread of its own).
 *
 * Between the transfer and its layer thread sits a socket pair: the transfer writes without
 * blocking and pauses itself when the socket is full, so one slow unpacker never stalls the
 * other downloads. The bytes handed on are counted; when a connection breaks, the transfer is
 * started again with "Range: bytes=<count>-" and the layer thread never notices (a registry
 * that ignores the range and sends the whole blob again has the part already seen dropped).
 * Nothing is spooled: what has been received is already unpacked. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../image/manifest.h"
#include "../image/store.h"
#include "client_internal.h"

#define MAX_PARALLEL      3
#define MAX_ATTEMPTS      5
#define SOCK_BUF          (1 << 20)
#define READ_BUF          (256 * 1024)
#define ERROR_BODY_MAX    (64 * 1024)
#define PARTIAL_MAX_AGE   (7 * 24 * 3600)
#define PROGRESS_EVERY_MS 100

enum dl_state { DL_QUEUED, DL_RUNNING, DL_DRAINING, DL_FINISHED, DL_FAILED };

struct dl {
    struct fetch *f;
    struct ks_fetch_item *item;
    char short_id[13];
    enum dl_state state;
    CURL *h;
    struct curl_slist *hdrs;
    struct ks_http_resp resp;
    char *errbody;
    size_t errlen;
    int64_t received; /* bytes handed to the layer thread */
    int64_t skip;     /* bytes of a full resend to drop (the registry ignored the range) */
    int attempts;
    int wfd, rfd;
    char *pending; /* bytes the socket did not take yet */
    size_t pending_len, pending_off;
    bool paused;
    bool oversize, consumer_gone, bad_range;
    int64_t attempt_start; /* received when the current attempt started */
    bool range_checked;
    struct ks_error *err; /* the transfer's failure */
    /* the layer thread */
    pthread_t thread;
    bool thread_started;
    int complete;    /* atomic: every byte was received */
    int thread_done; /* atomic */
    int thread_r;
    struct ks_error *thread_err;
    bool reported_done;
    char *rbuf; /* the layer thread's receive buffer */
    /* The bytes received so far, kept in <root>/pull-partial/<hex> (locked while in use), so a
     * pull started again after this one was killed resumes where it stopped. */
    int pfd;
    int64_t preload, preloaded; /* bytes of an earlier attempt to feed first, and fed */
    bool partial_broken;        /* a write failed: the file is no longer appended to */
    bool drop_partial;          /* its bytes proved wrong: not to be resumed from */
};

struct fetch {
    struct ks_registry *r;
    struct ks_store *s;
    const char *path;
    const char *scope;
    const struct ks_curl *c;
    CURLM *m;
    struct dl *dls;
    size_t n;
    ks_progress_fn progress;
    void *userdata;
    int partial_dir; /* <root>/pull-partial: the bytes of unfinished downloads; -EBADF: none */
};

static void report(struct dl *d, enum ks_progress_state st)
{
    if (d->f->progress == NULL)
        return;
    struct ks_progress p = {
        .id = d->short_id, .state = st, .current = d->received, .total = d->item->desc->size};
    d->f->progress(d->f->userdata, &p);
}

/* --- the layer thread --- */

static int sock_source(void *userdata, const void **ret_buf, size_t *ret_len, struct ks_error **err)
{
    struct dl *d = userdata;
    if (d->rbuf == NULL && (d->rbuf = malloc(READ_BUF)) == NULL)
        return ks_error_set(err, ENOMEM, "download");
    char *buf = d->rbuf;
    if (d->preloaded < d->preload) {
        size_t want = (size_t)(d->preload - d->preloaded);
        ssize_t n = pread(d->pfd, buf, want < READ_BUF ? want : READ_BUF, d->preloaded);
        if (n <= 0)
            return ks_error_set(err, n < 0 ? errno : EIO, "read the partial layer %s", d->short_id);
        d->preloaded += n;
        *ret_buf = buf;
        *ret_len = (size_t)n;
        return 0;
    }
    for (;;) {
        ssize_t n = recv(d->rfd, buf, READ_BUF, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ks_error_set(err, errno, "receive layer %s", d->short_id);
        if (n == 0 && !__atomic_load_n(&d->complete, __ATOMIC_ACQUIRE))
            return ks_error_set_plain(err, EIO, "download of layer %s failed", d->short_id);
        *ret_buf = buf;
        *ret_len = (size_t)n;
        return 0;
    }
}

static void *layer_thread(void *arg)
{
    struct dl *d = arg;
    /* The config's diff_ids are checked when the image is recorded: checking them here would
     * make the thread look the layer up in the database. */
    struct ks_store_layer_opts o = {.detached = true, .expected_digest = d->item->desc->digest};
    d->thread_r =
        ks_store_layer_add_stream(d->f->s, sock_source, d, &o, &d->item->layer, &d->thread_err);
    if (d->thread_r == -EBADMSG)
        d->drop_partial = true;
    /* From here a send fails with EPIPE: the transfer stops instead of waiting. */
    close(d->rfd);
    d->rfd = -EBADF;
    __atomic_store_n(&d->thread_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* --- the transfer --- */

static int flush_pending(struct dl *d)
{
    while (d->pending_off < d->pending_len) {
        ssize_t n = send(d->wfd, d->pending + d->pending_off, d->pending_len - d->pending_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0)
            return -errno;
        d->pending_off += (size_t)n;
    }
    d->pending_len = d->pending_off = 0;
    return 1;
}

static size_t header_cb(char *buf, size_t size, size_t n, void *userdata)
{
    struct dl *d = userdata;
    ks_http_resp_header(&d->resp, buf, size * n);
    return size * n;
}

/* A 206 must continue exactly where the stream stands. */
static bool range_matches(struct dl *d)
{
    const char *cr = d->resp.content_range;
    long long start;
    return cr && sscanf(cr, "bytes %lld-", &start) == 1 && start == d->received;
}

static size_t body_cb(char *buf, size_t size, size_t n, void *userdata)
{
    struct dl *d = userdata;
    size_t len = size * n;
    if (d->resp.status != 200 && d->resp.status != 206) {
        /* An error body, kept for the message. */
        size_t keep = d->errlen + len > ERROR_BODY_MAX ? 0 : len;
        char *p = keep ? realloc(d->errbody, d->errlen + keep + 1) : NULL;
        if (p) {
            memcpy(p + d->errlen, buf, keep);
            d->errbody = p;
            d->errlen += keep;
            p[d->errlen] = '\0';
        }
        return len;
    }
    if (!d->range_checked) {
        d->range_checked = true;
        if (d->resp.status == 200)
            d->skip = d->attempt_start; /* the whole blob again */
        else if (!range_matches(d)) {
            d->bad_range = true;
            return 0;
        }
    }
    if (d->pending_len > 0) {
        int r = flush_pending(d);
        if (r < 0) {
            d->consumer_gone = true;
            return 0;
        }
        if (r == 0) {
            d->paused = true;
            return CURL_WRITEFUNC_PAUSE;
        }
    }
    size_t off = 0;
    if (d->skip > 0) {
        off = (int64_t)len < d->skip ? len : (size_t)d->skip;
        d->skip -= (int64_t)off;
        if (off == len)
            return len;
    }
    if (d->received + (int64_t)(len - off) > d->item->desc->size) {
        d->oversize = true;
        return 0;
    }
    if (d->pfd >= 0 && !d->partial_broken && ks_write_all(d->pfd, buf + off, len - off) < 0)
        d->partial_broken = true;
    ssize_t w = send(d->wfd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        d->consumer_gone = true;
        return 0;
    }
    if (w < 0)
        w = 0;
    d->received += (int64_t)(len - off);
    if ((size_t)w < len - off) {
        size_t rest = len - off - (size_t)w;
        char *p = realloc(d->pending, rest);
        if (p == NULL)
            return 0;
        memcpy(p, buf + off + w, rest);
        d->pending = p;
        d->pending_len = rest;
        d->pending_off = 0;
        d->paused = true;
    }
    return len;
}

static int start_transfer(struct dl *d, struct ks_error **err)
{
    struct fetch *f = d->f;
    const struct ks_curl *c = f->c;
    _cleanup_free_ char *url =
        ks_registry_url(f->r, "/v2/%s/blobs/%s", f->path, d->item->desc->digest);
    _cleanup_free_ char *auth = ks_registry_auth_header(f->r, f->scope);
    char range[64];
    snprintf(range, sizeof(range), "Range: bytes=%" PRId64 "-", d->received);
    d->h = c->easy_init();
    if (d->h == NULL || url == NULL)
        return ks_error_set(err, ENOMEM, "download");
    if (auth)
        d->hdrs = c->slist_append(d->hdrs, auth);
    if (d->received > 0)
        d->hdrs = c->slist_append(d->hdrs, range);
    ks_http_resp_release(&d->resp);
    free(d->errbody);
    d->errbody = NULL;
    d->errlen = 0;
    d->skip = 0;
    d->attempt_start = d->received;
    d->range_checked = false;
    ks_http_easy_setup(c, d->h, &f->r->tls);
    c->easy_setopt(d->h, CURLOPT_URL, url);
    c->easy_setopt(d->h, CURLOPT_HTTPHEADER, d->hdrs);
    c->easy_setopt(d->h, CURLOPT_FOLLOWLOCATION, 1L);
    c->easy_setopt(d->h, CURLOPT_MAXREDIRS, 5L);
    c->easy_setopt(d->h, CURLOPT_HEADERFUNCTION, header_cb);
    c->easy_setopt(d->h, CURLOPT_HEADERDATA, d);
    c->easy_setopt(d->h, CURLOPT_WRITEFUNCTION, body_cb);
    c->easy_setopt(d->h, CURLOPT_WRITEDATA, d);
    c->easy_setopt(d->h, CURLOPT_PRIVATE, d);
    d->attempts++;
    d->paused = false;
    if (c->multi_add_handle(f->m, d->h) != CURLM_OK)
        return ks_error_set(err, ENOMEM, "download");
    d->state = DL_RUNNING;
    return 0;
}

static void stop_transfer(struct dl *d)
{
    const struct ks_curl *c = d->f->c;
    if (d->h) {
        c->multi_remove_handle(d->f->m, d->h);
        c->easy_cleanup(d->h);
        d->h = NULL;
    }
    c->slist_free_all(d->hdrs);
    d->hdrs = NULL;
}

/* Takes up the bytes an earlier, interrupted pull of this blob kept. */
static void open_partial(struct dl *d)
{
    if (d->f->partial_dir < 0)
        return;
    const char *hex = strchr(d->item->desc->digest, ':') + 1;
    d->pfd = openat(d->f->partial_dir, hex, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (d->pfd < 0)
        return;
    struct stat st;
    /* Another pull of the same blob uses it now: download without it. */
    if (flock(d->pfd, LOCK_EX | LOCK_NB) < 0 || fstat(d->pfd, &st) < 0) {
        close(d->pfd);
        d->pfd = -EBADF;
        return;
    }
    if (st.st_size >= d->item->desc->size) {
        if (ftruncate(d->pfd, 0) < 0)
            d->partial_broken = true;
        return;
    }
    d->preload = d->received = st.st_size;
}

/* The partial bytes go once the layer is made, or when they proved wrong; after a broken
 * connection they stay for the next pull. */
static void close_partial(struct dl *d)
{
    if (d->pfd < 0)
        return;
    bool keep = d->thread_r < 0 && !d->partial_broken && !d->drop_partial &&
                d->received < d->item->desc->size;
    if (!keep)
        unlinkat(d->f->partial_dir, strchr(d->item->desc->digest, ':') + 1, 0);
    close(d->pfd);
    d->pfd = -EBADF;
}

static int start_layer(struct dl *d, struct ks_error **err)
{
    open_partial(d);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return ks_error_set(err, errno, "socketpair");
    int sz = SOCK_BUF;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    shutdown(sv[0], SHUT_WR);
    d->rfd = sv[0];
    d->wfd = sv[1];
    int r = pthread_create(&d->thread, NULL, layer_thread, d);
    if (r != 0)
        return ks_error_set(err, r, "start a download thread");
    d->thread_started = true;
    report(d, KS_PROGRESS_WAITING);
    return start_transfer(d, err);
}

/* The transfer ended with every byte handed on (or queued): the layer thread gets its end of
 * stream once the queue is empty. */
static void finish_stream(struct dl *d)
{
    __atomic_store_n(&d->complete, 1, __ATOMIC_RELEASE);
    if (d->pending_len > 0) {
        d->state = DL_DRAINING;
        return;
    }
    close(d->wfd);
    d->wfd = -EBADF;
    d->state = DL_FINISHED;
}

static void fail(struct dl *d, int errnum, const char *fmt, const char *detail)
{
    if (d->err == NULL)
        ks_error_set_plain(&d->err, errnum, fmt, d->item->desc->digest, detail);
    if (errnum == EBADMSG || errnum == EPROTO)
        d->drop_partial = true;
    stop_transfer(d);
    if (d->wfd >= 0) {
        close(d->wfd);
        d->wfd = -EBADF;
    }
    d->state = DL_FAILED;
}

static bool retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

static void transfer_done(struct dl *d, CURLcode rc)
{
    struct fetch *f = d->f;
    long status = d->resp.status;
    const struct ks_curl *c = f->c;
    stop_transfer(d);
    if (d->consumer_gone) {
        fail(d, EIO, "blob %s: %s", "the layer could not be unpacked");
        return;
    }
    if (d->bad_range) {
        fail(d, EPROTO, "blob %s: %s", "the registry did not resume at the requested offset");
        return;
    }
    if (d->oversize) {
        fail(d, EBADMSG, "blob %s: %s", "the registry sent more bytes than the manifest says");
        return;
    }
    if (rc == CURLE_OK && status == 401 && d->attempts < MAX_ATTEMPTS && d->resp.www_authenticate) {
        struct ks_error *e = NULL;
        _cleanup_free_ char *ch = strdup(d->resp.www_authenticate);
        if (ks_registry_authenticate(f->r, ch, f->scope, &e) < 0) {
            fail(d, EACCES, "blob %s: %s", e->msg);
            ks_error_free(e);
            return;
        }
        struct ks_error *e2 = NULL;
        if (start_transfer(d, &e2) < 0) {
            fail(d, ENOMEM, "blob %s: %s", e2->msg);
            ks_error_free(e2);
        }
        return;
    }
    if (rc == CURLE_OK && status != 200 && status != 206) {
        struct ks_http_resp er = {.status = status, .body = d->errbody, .len = d->errlen};
        _cleanup_free_ char *why = ks_registry_error_text(&er);
        fail(d, status == 404 ? ENOENT : EPROTO, "blob %s: %s", why);
        return;
    }
    bool truncated = rc == CURLE_OK && d->received < d->item->desc->size;
    if (rc == CURLE_OK && !truncated) {
        report(d, KS_PROGRESS_DOWNLOADED);
        finish_stream(d);
        return;
    }
    if ((truncated || retryable(rc)) && d->attempts < MAX_ATTEMPTS) {
        report(d, KS_PROGRESS_RETRYING);
        struct timespec ts = {0, 200 * 1000000L * d->attempts};
        nanosleep(&ts, NULL);
        struct ks_error *e = NULL;
        if (start_transfer(d, &e) < 0) {
            fail(d, ENOMEM, "blob %s: %s", e->msg);
            ks_error_free(e);
        }
        return;
    }
    char why[256];
    if (truncated)
        snprintf(why, sizeof(why), "truncated: %" PRId64 " of %" PRId64 " bytes", d->received,
                 d->item->desc->size);
    else
        snprintf(why, sizeof(why), "%s", c->easy_strerror(rc));
    fail(d, truncated ? EBADMSG : EIO, "blob %s: %s", why);
}

static void drain(struct fetch *f)
{
    for (size_t i = 0; i < f->n; i++) {
        struct dl *d = &f->dls[i];
        if ((d->state != DL_RUNNING && d->state != DL_DRAINING) || d->pending_len == 0)
            continue;
        int r = flush_pending(d);
        if (r < 0) {
            d->consumer_gone = true;
            if (d->state == DL_DRAINING)
                fail(d, EIO, "blob %s: %s", "the layer could not be unpacked");
            continue;
        }
        if (r == 0)
            continue;
        if (d->state == DL_DRAINING) {
            close(d->wfd);
            d->wfd = -EBADF;
            d->state = DL_FINISHED;
        } else if (d->paused && d->h) {
            d->paused = false;
            f->c->easy_pause(d->h, CURLPAUSE_CONT);
        }
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool all_settled(struct fetch *f)
{
    for (size_t i = 0; i < f->n; i++) {
        struct dl *d = &f->dls[i];
        if (d->state == DL_QUEUED || d->state == DL_RUNNING || d->state == DL_DRAINING)
            return false;
        if (d->thread_started && !__atomic_load_n(&d->thread_done, __ATOMIC_ACQUIRE))
            return false;
    }
    return true;
}

static size_t active(struct fetch *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        struct dl *d = &f->dls[i];
        if (d->state == DL_RUNNING || d->state == DL_DRAINING ||
            (d->thread_started && !__atomic_load_n(&d->thread_done, __ATOMIC_ACQUIRE)))
            n++;
    }
    return n;
}

static void poll_once(struct fetch *f)
{
    struct curl_waitfd extra[64];
    unsigned n = 0;
    for (size_t i = 0; i < f->n && n < KS_ELEMENTSOF(extra); i++) {
        struct dl *d = &f->dls[i];
        if (d->pending_len > 0 && d->wfd >= 0)
            extra[n++] = (struct curl_waitfd){.fd = d->wfd, .events = CURL_WAIT_POLLOUT};
    }
    int numfds = 0;
    f->c->multi_poll(f->m, extra, n, 50, &numfds);
}

static int run(struct fetch *f, struct ks_error **err)
{
    int64_t last = 0;
    bool failed = false;
    for (;;) {
        for (size_t i = 0; i < f->n && !failed && active(f) < MAX_PARALLEL; i++) {
            struct dl *d = &f->dls[i];
            if (d->state != DL_QUEUED)
                continue;
            struct ks_error *e = NULL;
            if (start_layer(d, &e) < 0) {
                fail(d, e->errnum, "blob %s: %s", e->msg);
                ks_error_free(e);
            }
        }
        int running = 0;
        f->c->multi_perform(f->m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = f->c->multi_info_read(f->m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct dl *d = NULL;
            f->c->easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&d);
            if (d)
                transfer_done(d, msg->data.result);
        }
        drain(f);
        int64_t now = now_ms();
        bool tick = now - last >= PROGRESS_EVERY_MS;
        for (size_t i = 0; i < f->n; i++) {
            struct dl *d = &f->dls[i];
            if (d->state == DL_FAILED)
                failed = true;
            if (d->state == DL_RUNNING && tick)
                report(d, KS_PROGRESS_TRANSFER);
            if (d->thread_started && !d->reported_done &&
                __atomic_load_n(&d->thread_done, __ATOMIC_ACQUIRE)) {
                d->reported_done = true;
                if (d->thread_r < 0)
                    failed = true;
                else
                    report(d, KS_PROGRESS_DONE);
            }
        }
        if (tick)
            last = now;
        /* After a failure the queued ones are not started; the others finish or fail. */
        if (failed)
            for (size_t i = 0; i < f->n; i++)
                if (f->dls[i].state == DL_QUEUED)
                    f->dls[i].state = DL_FAILED;
        if (all_settled(f))
            break;
        poll_once(f);
    }
    /* The first failure is the one to report: a transfer's, else its layer's (also when the
     * transfer stopped only because its layer could not go on). */
    for (size_t i = 0; i < f->n; i++) {
        struct dl *d = &f->dls[i];
        if (d->err && !(d->consumer_gone && d->thread_started && d->thread_r < 0)) {
            int r = -d->err->errnum;
            if (err && *err == NULL)
                *err = TAKE_PTR(d->err);
            return r ? r : -EIO;
        }
        if (d->thread_started && d->thread_r < 0) {
            int r = d->thread_r;
            if (err && *err == NULL)
                *err = TAKE_PTR(d->thread_err);
            return r;
        }
    }
    return 0;
}

static void release(struct fetch *f)
{
    for (size_t i = 0; f->dls && i < f->n; i++) {
        struct dl *d = &f->dls[i];
        stop_transfer(d);
        if (d->wfd >= 0)
            close(d->wfd);
        d->wfd = -EBADF;
        if (d->thread_started)
            pthread_join(d->thread, NULL);
        close_partial(d);
        ks_http_resp_release(&d->resp);
        free(d->errbody);
        free(d->pending);
        free(d->rbuf);
        ks_error_free(d->err);
        ks_error_free(d->thread_err);
    }
    free(f->dls);
    if (f->m)
        f->c->multi_cleanup(f->m);
    if (f->partial_dir >= 0)
        close(f->partial_dir);
}

/* Partial downloads nobody came back for in a week are dropped (those in use are locked). */
static void drop_stale_partials(int dirfd)
{
    _cleanup_close_ int dup = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
    DIR *d = dup >= 0 ? fdopendir(dup) : NULL;
    if (d == NULL)
        return;
    dup = -EBADF; /* owned by d now */
    time_t limit = time(NULL) - PARTIAL_MAX_AGE;
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode) || st.st_mtime > limit)
            continue;
        _cleanup_close_ int fd = openat(dirfd, de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlinkat(dirfd, de->d_name, 0);
    }
    closedir(d);
}

int ks_registry_fetch_layers(struct ks_registry *r, struct ks_store *s, const char *path,
                             struct ks_fetch_item *items, size_t n, ks_progress_fn progress,
                             void *userdata, struct ks_error **err)
{
    if (n == 0)
        return 0;
    _cleanup_free_ char *scope = ks_registry_scope(path, false);
    struct fetch f = {.partial_dir = -EBADF,
                      .r = r,
                      .s = s,
                      .path = path,
                      .scope = scope,
                      .n = n,
                      .progress = progress,
                      .userdata = userdata};
    f.c = ks_curl_get(err);
    if (f.c == NULL)
        return -ENOENT;
    f.m = f.c->multi_init();
    _cleanup_free_ char *pdir = NULL;
    if (asprintf(&pdir, "%s/pull-partial", ks_store_root(s)) >= 0 &&
        (mkdir(pdir, 0700) == 0 || errno == EEXIST))
        f.partial_dir = open(pdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (f.partial_dir >= 0)
        drop_stale_partials(f.partial_dir);
    f.dls = calloc(n, sizeof(*f.dls));
    if (f.m == NULL || f.dls == NULL || scope == NULL) {
        release(&f);
        return ks_error_set(err, ENOMEM, "download");
    }
    for (size_t i = 0; i < n; i++) {
        struct dl *d = &f.dls[i];
        d->f = &f;
        d->item = &items[i];
        d->wfd = d->rfd = d->pfd = -EBADF;
        d->resp.content_length = -1;
        const char *hex = strchr(items[i].desc->digest, ':') + 1;
        snprintf(d->short_id, sizeof(d->short_id), "%.12s", hex);
    }
    int rr = run(&f, err);
    release(&f);
    return rr;
}
