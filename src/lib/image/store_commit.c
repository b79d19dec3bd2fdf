/* `docker commit`: the container's image layers, shared as they are, plus one layer written
 * from the container's upper directory, recorded as a new image through the same pending-layer
 * path that loading and pulling use. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/clock.h"
#include "../base/json.h"
#include "../engine/db.h"
#include "layer.h"
#include "store.h"
#include "store_internal.h"

struct commit {
    struct ks_store_layer **layers;
    size_t n_layers;
};

static void commit_release(struct commit *c)
{
    for (size_t i = 0; i < c->n_layers; i++)
        ks_store_layer_free(c->layers[i]);
    free(c->layers);
}

/* Writes the upper directory as a layer tar into an unnamed file under the store root (the
 * same file system as the layer directories), rewound for reading; *ret_fd is owned by the
 * caller. */
static int diff_upper(struct ks_store *s, int upper_dirfd, int *ret_fd, char **ret_diff_id,
                      struct ks_error **err)
{
    _cleanup_close_ int fd = open(ks_store_root(s), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        return ks_error_set(err, errno, "create a temporary file under `%s`", ks_store_root(s));
    const struct ks_layer_diff_opts o = {0};
    int r = ks_layer_diff(upper_dirfd, fd, &o, ret_diff_id, err);
    if (r < 0)
        return r;
    if (lseek(fd, 0, SEEK_SET) < 0)
        return ks_error_set(err, errno, "rewind the layer");
    *ret_fd = TAKE_FD(fd);
    return 0;
}

/* The new image's config: the base image's, with the container's config and the changes, one
 * more diff_id and one more history entry. *ret is owned by the caller. */
static int commit_config(const char *base_text, const struct ks_store_commit_opts *o,
                         const char *diff_id, json_object **ret, struct ks_error **err)
{
    _cleanup_json_ json_object *root = NULL;
    int r = ks_json_parse(base_text, strlen(base_text), &root, err);
    if (r < 0)
        return ks_error_wrap(err, "image `%s`", o->image_id);
    if (!json_object_is_type(root, json_type_object))
        return ks_error_set_plain(err, EBADMSG, "image `%s`: config is not an object", o->image_id);
    json_object *cfg = NULL;
    json_object *from = o->config ? o->config : ks_json_get(root, "config");
    if (from && json_object_deep_copy(from, &cfg, NULL) != 0)
        return ks_error_set(err, ENOMEM, "commit");
    if (cfg == NULL)
        cfg = json_object_new_object();
    json_object_object_add(root, "config", cfg);
    r = ks_image_config_apply_changes(cfg, o->changes, err);
    if (r < 0)
        return r;

    char created[48];
    ks_rfc3339_now(created, sizeof(created));
    json_object_object_add(root, "created", json_object_new_string(created));
    /* The base's author and comment are not the new image's. */
    const char *const keys[] = {"author", "comment"};
    const char *const vals[] = {o->author, o->comment};
    for (size_t i = 0; i < KS_ELEMENTSOF(keys); i++) {
        if (vals[i] && *vals[i])
            json_object_object_add(root, keys[i], json_object_new_string(vals[i]));
        else
            json_object_object_del(root, keys[i]);
    }

    json_object *rootfs = ks_json_get_type(root, "rootfs", json_type_object);
    if (rootfs == NULL) {
        rootfs = json_object_new_object();
        json_object_object_add(rootfs, "type", json_object_new_string("layers"));
        json_object_object_add(root, "rootfs", rootfs);
    }
    json_object *diffs = ks_json_get_type(rootfs, "diff_ids", json_type_array);
    if (diffs == NULL) {
        diffs = json_object_new_array();
        json_object_object_add(rootfs, "diff_ids", diffs);
    }
    json_object_array_add(diffs, json_object_new_string(diff_id));

    json_object *history = ks_json_get_type(root, "history", json_type_array);
    if (history == NULL) {
        history = json_object_new_array();
        json_object_object_add(root, "history", history);
    }
    json_object *h = json_object_new_object();
    json_object_object_add(h, "created", json_object_new_string(created));
    if (o->author && *o->author)
        json_object_object_add(h, "author", json_object_new_string(o->author));
    json_object_object_add(h, "created_by",
                           json_object_new_string(o->created_by ? o->created_by : ""));
    if (o->comment && *o->comment)
        json_object_object_add(h, "comment", json_object_new_string(o->comment));
    json_object_array_add(history, h);
    *ret = TAKE_PTR(root);
    return 0;
}

/* Pending layers for the base image's layers (nothing read) and the new one (unpacked from
 * the tar in fd onto the base's top layer). */
static int commit_layers(struct ks_store *s, const struct ks_db_image *base, int fd,
                         const char *diff_id, struct commit *c, struct ks_error **err)
{
    c->layers = calloc(base->n_layers + 1, sizeof(*c->layers));
    if (c->layers == NULL)
        return ks_error_set(err, ENOMEM, "commit");
    for (size_t i = 0; i < base->n_layers; i++) {
        int r = ks_store_layer_existing(s, i ? base->chain_ids[i - 1] : NULL, base->diff_ids[i],
                                        &c->layers[i], err);
        if (r < 0)
            return ks_error_wrap(err, "layer %zu of the image", i);
        c->n_layers++;
    }
    const struct ks_store_layer_opts lo = {
        .parent_chain_id = base->n_layers ? base->chain_ids[base->n_layers - 1] : NULL,
        .expected_diff_id = diff_id,
    };
    int r = ks_store_layer_add(s, fd, &lo, &c->layers[c->n_layers], err);
    if (r < 0)
        return r;
    c->n_layers++;
    return 0;
}

int ks_store_commit(struct ks_store *s, const struct ks_store_commit_opts *o, char **ret_image_id,
                    struct ks_error **err)
{
    _cleanup_db_image_ struct ks_db_image *base = NULL;
    int r = ks_db_image_get(ks_store_db(s), o->image_id, &base, err);
    if (r < 0)
        return ks_error_wrap(err, "commit");
    if (base->config == NULL)
        return ks_error_set_plain(err, ENOENT, "commit: image `%s` has no config", o->image_id);

    _cleanup_close_ int fd = -EBADF;
    _cleanup_free_ char *diff_id = NULL;
    r = diff_upper(s, o->upper_dirfd, &fd, &diff_id, err);
    if (r < 0)
        return ks_error_wrap(err, "commit: writing the container's changes");
    _cleanup_json_ json_object *config = NULL;
    r = commit_config(base->config, o, diff_id, &config, err);
    if (r < 0)
        return ks_error_wrap(err, "commit");

    _cleanup_(commit_release) struct commit c = {0};
    r = commit_layers(s, base, fd, diff_id, &c, err);
    if (r < 0)
        return ks_error_wrap(err, "commit");
    const char *text = ks_json_plain(config);
    const char *const tags[] = {o->ref, NULL};
    const struct ks_store_image_spec spec = {
        .config = text,
        .config_len = strlen(text),
        .layers = c.layers,
        .n_layers = c.n_layers,
        .tags = o->ref ? tags : NULL,
    };
    r = ks_store_image_add(s, &spec, ret_image_id, err);
    return r < 0 ? ks_error_wrap(err, "commit") : 0;
}
