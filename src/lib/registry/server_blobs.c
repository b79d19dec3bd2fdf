/* Blobs and uploads: GET/HEAD with Range, DELETE, monolithic uploads (POST ?digest=, or POST
 * then one PUT), chunked sessions (PATCH with Content-Range, PUT ?digest= to finish) and
 * cross-repository mounts. Content always goes through the blob store's writer, which hashes
 * it as it is written and renames it into place only when the digest matches. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/cleanup.h"
#include "../image/manifest.h"
#include "../image/ref.h"
#include "server_internal.h"

/* Open upload sessions beyond which new ones are refused with 429. */
#define UPLOADS_MAX 4096
#define COPY_BUF    ((size_t)1 << 20)

enum MHD_Result ks_reg_blob_get(struct ks_reg_req *rq)
{
    const char *name = rq->route.name, *digest = rq->route.ref;
    if (ks_reg_blob_linked(rq->st, name, digest) != 1)
        return ks_reg_error(rq, 404, "BLOB_UNKNOWN", "blob unknown to registry");
    _cleanup_error_ struct ks_error *e = NULL;
    int fd = -EBADF;
    int64_t size = 0;
    if (ks_blobstore_open_blob(rq->st->blobs, digest, &fd, &size, &e) < 0)
        return ks_reg_error_from(rq, e, "BLOB_UNKNOWN");
    uint64_t a = 0, b = size > 0 ? (uint64_t)size - 1 : 0;
    int r = ks_registry_range_parse(ks_reg_header(rq, "Range"), (uint64_t)size, &a, &b);
    if (r == -ERANGE) {
        close(fd);
        struct MHD_Response *resp = ks_reg_resp_buf("", 0, NULL);
        ks_reg_set(resp, "Content-Range", "bytes */%" PRId64, size);
        return ks_reg_reply(rq, 416, resp);
    }
    uint64_t len = r == 1 ? b - a + 1 : (uint64_t)size;
    struct MHD_Response *resp = ks_reg_resp_fd(fd, r == 1 ? a : 0, len);
    ks_reg_set(resp, "Content-Type", "application/octet-stream");
    ks_reg_set(resp, "Docker-Content-Digest", "%s", digest);
    ks_reg_set(resp, "ETag", "\"%s\"", digest);
    ks_reg_set(resp, "Accept-Ranges", "bytes");
    if (r == 1)
        ks_reg_set(resp, "Content-Range", "bytes %" PRIu64 "-%" PRIu64 "/%" PRId64, a, b, size);
    return ks_reg_reply(rq, r == 1 ? 206 : 200, resp);
}

enum MHD_Result ks_reg_blob_delete(struct ks_reg_req *rq)
{
    if (ks_reg_blob_linked(rq->st, rq->route.name, rq->route.ref) != 1)
        return ks_reg_error(rq, 404, "BLOB_UNKNOWN", "blob unknown to registry");
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_reg_blob_unlink(rq->st, rq->route.name, rq->route.ref, &e) < 0)
        return ks_reg_error_from(rq, e, "BLOB_UNKNOWN");
    return ks_reg_reply_empty(rq, 202);
}

/* 201 for a blob now in the repository. */
static enum MHD_Result blob_created(struct ks_reg_req *rq, const char *digest)
{
    struct MHD_Response *resp = ks_reg_resp_buf("", 0, NULL);
    ks_reg_set(resp, "Location", "/v2/%s/blobs/%s", rq->route.name, digest);
    ks_reg_set(resp, "Docker-Content-Digest", "%s", digest);
    return ks_reg_reply(rq, 201, resp);
}

/* 202 with where the session stands. */
static enum MHD_Result upload_accepted(struct ks_reg_req *rq, unsigned status, const char *uuid,
                                       uint64_t offset)
{
    struct MHD_Response *resp = ks_reg_resp_buf("", 0, NULL);
    ks_reg_set(resp, "Location", "/v2/%s/blobs/uploads/%s", rq->route.name, uuid);
    ks_reg_set(resp, "Docker-Upload-UUID", "%s", uuid);
    ks_reg_set(resp, "Range", "0-%" PRIu64, offset > 0 ? offset - 1 : 0);
    return ks_reg_reply(rq, status, resp);
}

/* Expected size from Content-Length; -1 when absent. */
static int64_t content_length(struct ks_reg_req *rq)
{
    const char *s = ks_reg_header(rq, "Content-Length");
    if (s == NULL)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return errno || end == s || *end || v < 0 ? -1 : (int64_t)v;
}

static int writer_data(struct ks_reg_req *rq, const char *data, size_t len)
{
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_blob_writer_write(rq->writer, data, len, &e) < 0)
        return ks_reg_fail(rq, e->errnum == EFBIG ? 400 : 500,
                           e->errnum == EFBIG ? "SIZE_INVALID" : "UNKNOWN", "%s", e->msg);
    return 0;
}

/* Commits the writer; the digest is checked against the one the client named. */
static enum MHD_Result writer_done(struct ks_reg_req *rq)
{
    _cleanup_error_ struct ks_error *e = NULL;
    _cleanup_free_ char *digest = NULL;
    int r = ks_blob_writer_commit(rq->writer, &digest, NULL, &e);
    if (r == -EBADMSG)
        return ks_reg_error(
            rq, 400, e && strstr(e->msg, "size") ? "SIZE_INVALID" : "DIGEST_INVALID", "%s", e->msg);
    if (r < 0)
        return ks_reg_error_from(rq, e, "BLOB_UPLOAD_UNKNOWN");
    if (ks_reg_blob_link(rq->st, rq->route.name, digest, &e) < 0)
        return ks_reg_error_from(rq, e, "NAME_UNKNOWN");
    if (rq->upload_fd >= 0) {
        /* the session this PUT finished */
        ks_closep(&rq->upload_fd);
        rq->upload_fd = -EBADF;
        struct ks_error *ignored = NULL;
        ks_reg_upload_remove(rq->st, rq->uuid, &ignored);
        ks_error_free(ignored);
    }
    return blob_created(rq, digest);
}

/* Sets up a writer for a body that is the whole blob. */
static enum MHD_Result begin_writer(struct ks_reg_req *rq, const char *digest)
{
    if (!ks_is_digest(digest))
        return ks_reg_error(rq, 400, "DIGEST_INVALID", "invalid digest `%s`", digest);
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_blob_writer_new(rq->st->blobs, digest, content_length(rq), &rq->writer, &e) < 0)
        return ks_reg_error_from(rq, e, "BLOB_UPLOAD_UNKNOWN");
    rq->on_data = writer_data;
    rq->on_done = writer_done;
    return MHD_YES;
}

static bool try_mount(struct ks_reg_req *rq, const char *digest, const char *from)
{
    if (!ks_is_digest(digest) || !ks_registry_name_valid(from) ||
        ks_reg_blob_linked(rq->st, from, digest) != 1 ||
        ks_blobstore_has(rq->st->blobs, digest, NULL) != 1)
        return false;
    _cleanup_error_ struct ks_error *e = NULL;
    return ks_reg_blob_link(rq->st, rq->route.name, digest, &e) == 0;
}

enum MHD_Result ks_reg_uploads_begin(struct ks_reg_req *rq)
{
    const char *mount = ks_reg_arg(rq, "mount"), *from = ks_reg_arg(rq, "from");
    if (mount && from && try_mount(rq, mount, from))
        return blob_created(rq, mount);
    const char *digest = ks_reg_arg(rq, "digest");
    if (digest)
        return begin_writer(rq, digest);
    if (ks_reg_upload_count(rq->st, UPLOADS_MAX) >= UPLOADS_MAX)
        return ks_reg_error(rq, 429, "TOOMANYREQUESTS", "too many open uploads");
    char uuid[KS_REGISTRY_UUID_LEN + 1];
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_reg_upload_new(rq->st, rq->route.name, uuid, &e) < 0)
        return ks_reg_error_from(rq, e, "NAME_UNKNOWN");
    return upload_accepted(rq, 202, uuid, 0);
}

static int session_data(struct ks_reg_req *rq, const char *data, size_t len)
{
    if (rq->offset + len > (uint64_t)KS_LAYER_MAX_SIZE)
        return ks_reg_fail(rq, 400, "SIZE_INVALID", "blob too large");
    ssize_t n = pwrite(rq->upload_fd, data, len, (off_t)rq->offset);
    if (n != (ssize_t)len)
        return ks_reg_fail(rq, 500, "UNKNOWN", "write upload: %s",
                           n < 0 ? strerror(errno) : "short write");
    rq->offset += len;
    return 0;
}

/* rq->body_max is Content-Range's end + 1, or 0 when the request had none: where the body must
 * end. */
static int check_body_end(struct ks_reg_req *rq)
{
    if (rq->body_max && rq->offset != rq->body_max)
        return ks_reg_fail(rq, 400, "BLOB_UPLOAD_INVALID", "the body does not match Content-Range");
    return 0;
}

static enum MHD_Result patch_done(struct ks_reg_req *rq)
{
    if (check_body_end(rq) < 0)
        return ks_reg_error(rq, rq->fail_status, rq->fail_code, "%s", rq->fail_msg);
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_reg_upload_commit(rq->st, rq->route.name, rq->route.ref, rq->upload_fd, rq->offset, &e) <
        0)
        return ks_reg_error_from(rq, e, "BLOB_UPLOAD_UNKNOWN");
    return upload_accepted(rq, 202, rq->route.ref, rq->offset);
}

/* Feeds the session's data into a writer for the digest the client named. */
static enum MHD_Result put_done(struct ks_reg_req *rq)
{
    if (check_body_end(rq) < 0)
        return ks_reg_error(rq, rq->fail_status, rq->fail_code, "%s", rq->fail_msg);
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_blob_writer_new(rq->st->blobs, rq->digest, (int64_t)rq->offset, &rq->writer, &e) < 0)
        return ks_reg_error_from(rq, e, "BLOB_UPLOAD_UNKNOWN");
    _cleanup_free_ char *buf = malloc(COPY_BUF);
    if (buf == NULL)
        return MHD_NO;
    for (uint64_t at = 0; at < rq->offset;) {
        size_t want = rq->offset - at < COPY_BUF ? (size_t)(rq->offset - at) : COPY_BUF;
        ssize_t n = pread(rq->upload_fd, buf, want, (off_t)at);
        if (n <= 0)
            return ks_reg_error(rq, 500, "UNKNOWN", "read upload: %s",
                                n < 0 ? strerror(errno) : "short file");
        if (ks_blob_writer_write(rq->writer, buf, (size_t)n, &e) < 0)
            return ks_reg_error_from(rq, e, "BLOB_UPLOAD_UNKNOWN");
        at += (uint64_t)n;
    }
    return writer_done(rq);
}

/* PATCH and PUT of a session. */
enum MHD_Result ks_reg_upload_begin(struct ks_reg_req *rq)
{
    const char *uuid = rq->route.ref;
    const char *digest = NULL;
    if (rq->method == KS_M_PUT) {
        digest = ks_reg_arg(rq, "digest");
        if (digest == NULL || !ks_is_digest(digest))
            return ks_reg_error(rq, 400, "DIGEST_INVALID", "missing or invalid digest");
    }
    _cleanup_error_ struct ks_error *e = NULL;
    int r = ks_reg_upload_open(rq->st, rq->route.name, uuid, &rq->upload_fd, &rq->offset, &e);
    if (r == -EBUSY)
        return ks_reg_error(rq, 416, "BLOB_UPLOAD_INVALID", "the upload is busy");
    if (r < 0)
        return ks_reg_error_from(rq, e, "BLOB_UPLOAD_UNKNOWN");
    const char *cr = ks_reg_header(rq, "Content-Range");
    if (cr) {
        uint64_t start, end;
        if (ks_registry_content_range_parse(cr, &start, &end) < 0)
            return ks_reg_error(rq, 400, "BLOB_UPLOAD_INVALID", "invalid Content-Range");
        if (start != rq->offset)
            return upload_accepted(rq, 416, uuid, rq->offset);
        int64_t cl = content_length(rq);
        if (cl >= 0 && (uint64_t)cl != end - start + 1)
            return ks_reg_error(rq, 400, "BLOB_UPLOAD_INVALID",
                                "Content-Length does not match Content-Range");
        rq->body_max = end + 1;
    }
    /* writer_done removes the session once its blob is stored */
    snprintf(rq->uuid, sizeof(rq->uuid), "%s", uuid);
    if (digest)
        snprintf(rq->digest, sizeof(rq->digest), "%s", digest);
    if (rq->method == KS_M_PATCH) {
        rq->on_data = session_data;
        rq->on_done = patch_done;
        return MHD_YES;
    }
    if (rq->offset == 0 && cr == NULL) {
        /* Nothing stored yet: the body is the whole blob and goes straight to the store. */
        _cleanup_error_ struct ks_error *we = NULL;
        if (ks_blob_writer_new(rq->st->blobs, digest, content_length(rq), &rq->writer, &we) < 0)
            return ks_reg_error_from(rq, we, "BLOB_UPLOAD_UNKNOWN");
        rq->on_data = writer_data;
        rq->on_done = writer_done;
        return MHD_YES;
    }
    rq->on_data = session_data;
    rq->on_done = put_done;
    return MHD_YES;
}

enum MHD_Result ks_reg_upload_status(struct ks_reg_req *rq)
{
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_reg_upload_offset(rq->st, rq->route.name, rq->route.ref, &rq->offset, &e) < 0)
        return ks_reg_error_from(rq, e, "BLOB_UPLOAD_UNKNOWN");
    return upload_accepted(rq, 204, rq->route.ref, rq->offset);
}

enum MHD_Result ks_reg_upload_cancel(struct ks_reg_req *rq)
{
    _cleanup_error_ struct ks_error *e = NULL;
    int r =
        ks_reg_upload_open(rq->st, rq->route.name, rq->route.ref, &rq->upload_fd, &rq->offset, &e);
    if (r < 0 && r != -EBUSY)
        return ks_reg_error_from(rq, e, "BLOB_UPLOAD_UNKNOWN");
    ks_error_free(TAKE_PTR(e));
    if (ks_reg_upload_remove(rq->st, rq->route.ref, &e) < 0)
        return ks_reg_error_from(rq, e, "BLOB_UPLOAD_UNKNOWN");
    return ks_reg_reply_empty(rq, 204);
}
