/* What the store shows: the image list, Docker-compatible `image inspect` JSON and history. */
#include <errno.h>
#include <string.h>

#include "../base/json.h"
#include "../engine/db.h"
#include "ref.h"
#include "store.h"

void ks_store_images_free(struct ks_store_image **v)
{
    for (size_t i = 0; v && v[i]; i++) {
        free(v[i]->id);
        ks_strv_free(v[i]->tags);
        ks_strv_free(v[i]->digests);
        free(v[i]);
    }
    free(v);
}

static int64_t config_created(const char *config, int64_t fallback)
{
    _cleanup_json_ json_object *o = NULL;
    if (config == NULL || ks_json_parse(config, strlen(config), &o, NULL) < 0)
        return fallback;
    int64_t t = ks_rfc3339_parse(ks_json_str(o, "created"));
    return t < 0 ? fallback : t;
}

struct list_ctx {
    struct ks_store_image **v;
    size_t n;
};

static int list_cb(const struct ks_db_image *img, void *userdata)
{
    struct list_ctx *c = userdata;
    struct ks_store_image **nv = realloc(c->v, (c->n + 2) * sizeof(*nv));
    if (nv == NULL)
        return -ENOMEM;
    c->v = nv;
    nv[c->n + 1] = NULL;
    struct ks_store_image *i = calloc(1, sizeof(*i));
    if (i == NULL || (i->id = strdup(img->id)) == NULL) {
        free(i);
        nv[c->n] = NULL;
        return -ENOMEM;
    }
    i->created = config_created(img->config, img->created);
    i->size = img->size;
    nv[c->n++] = i;
    return 0;
}

/* Familiar forms of the full references, in place. */
static int familiarize(char **v)
{
    for (size_t i = 0; v && v[i]; i++) {
        _cleanup_ref_ struct ks_ref *ref = NULL;
        if (ks_ref_parse(v[i], &ref, NULL) < 0)
            continue;
        char *f = ks_ref_familiar(ref);
        if (f == NULL)
            return -ENOMEM;
        free(v[i]);
        v[i] = f;
    }
    return 0;
}

static int image_names(struct ks_db *db, struct ks_store_image *i, struct ks_error **err)
{
    int r = ks_db_tags_for_image(db, i->id, &i->tags, err);
    if (r >= 0)
        r = ks_db_digests_for_image(db, i->id, &i->digests, err);
    if (r >= 0 && (familiarize(i->tags) < 0 || familiarize(i->digests) < 0))
        r = ks_error_set(err, ENOMEM, "list images");
    return r;
}

int ks_store_images(struct ks_store *s, struct ks_store_image ***ret, struct ks_error **err)
{
    struct ks_db *db = ks_store_db(s);
    struct list_ctx c = {.v = calloc(1, sizeof(struct ks_store_image *))};
    if (c.v == NULL)
        return ks_error_set(err, ENOMEM, "list images");
    int r = ks_db_images_list(db, list_cb, &c, err);
    _cleanup_store_images_ struct ks_store_image **v = c.v;
    if (r < 0)
        return r;
    for (size_t i = 0; v[i]; i++) {
        r = image_names(db, v[i], err);
        if (r < 0)
            return r;
    }
    *ret = TAKE_PTR(v);
    return 0;
}

static json_object *strv_to_json(char **v)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; v && v[i]; i++)
        json_object_array_add(a, json_object_new_string(v[i]));
    return a;
}

static json_object *copy_or(json_object *src, json_object *def)
{
    json_object *dst = NULL;
    if (src == NULL || json_object_deep_copy(src, &dst, NULL) < 0)
        return def;
    json_object_put(def);
    return dst;
}

static json_object *graph_driver(struct ks_db *db, const struct ks_db_image *img, const char *root)
{
    json_object *g = json_object_new_object();
    json_object *data = json_object_new_object();
    json_object_object_add(g, "Data", data);
    json_object_object_add(g, "Name", json_object_new_string("overlay2"));
    char *lower = NULL;
    for (size_t i = img->n_layers; i-- > 0;) {
        _cleanup_db_layer_ struct ks_db_layer *l = NULL;
        if (ks_db_layer_get(db, KS_DB_LAYER_BY_CHAIN_ID, img->chain_ids[i], &l, NULL) < 0)
            continue;
        _cleanup_free_ char *p = NULL;
        if (asprintf(&p, "%s/overlay/%s/diff", root, l->cache_id) < 0)
            continue;
        if (i == img->n_layers - 1) {
            json_object_object_add(data, "UpperDir", json_object_new_string(p));
            continue;
        }
        char *nl = NULL;
        if (asprintf(&nl, "%s%s%s", lower ? lower : "", lower ? ":" : "", p) < 0)
            continue;
        free(lower);
        lower = nl;
    }
    if (lower)
        json_object_object_add(data, "LowerDir", json_object_new_string(lower));
    free(lower);
    return g;
}

static json_object *rootfs_json(const struct ks_db_image *img)
{
    json_object *r = json_object_new_object();
    json_object_object_add(r, "Type", json_object_new_string("layers"));
    json_object_object_add(r, "Layers", strv_to_json(img->diff_ids));
    return r;
}

static void add_str(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, json_object_new_string(v ? v : ""));
}

/* The image's row and its parsed config (NULL when none is stored), both owned by the caller. */
static int image_and_config(struct ks_db *db, const char *id, struct ks_db_image **ret_img,
                            json_object **ret_cfg, struct ks_error **err)
{
    _cleanup_db_image_ struct ks_db_image *img = NULL;
    int r = ks_db_image_get(db, id, &img, err);
    if (r < 0)
        return r;
    *ret_cfg = NULL;
    if (img->config && ks_json_parse(img->config, strlen(img->config), ret_cfg, err) < 0)
        return ks_error_wrap(err, "image `%s`", id);
    *ret_img = TAKE_PTR(img);
    return 0;
}

int ks_store_inspect_json(struct ks_store *s, const char *id, json_object **ret,
                          struct ks_error **err)
{
    struct ks_db *db = ks_store_db(s);
    _cleanup_db_image_ struct ks_db_image *img = NULL;
    _cleanup_json_ json_object *cfg = NULL;
    int r = image_and_config(db, id, &img, &cfg, err);
    if (r < 0)
        return r;
    struct ks_store_image names = {.id = img->id};
    r = image_names(db, &names, err);
    _cleanup_strv_ char **tags = names.tags, **digests = names.digests;
    if (r < 0)
        return r;
    json_object *history = ks_json_get_type(cfg, "history", json_type_array);
    json_object *h0 = history ? json_object_array_get_idx(history, 0) : NULL;

    _cleanup_json_ json_object *o = json_object_new_object();
    add_str(o, "Id", img->id);
    json_object_object_add(o, "RepoTags", strv_to_json(tags));
    json_object_object_add(o, "RepoDigests", strv_to_json(digests));
    add_str(o, "Parent", "");
    /* A committed image says its comment at the top, as Docker's do; an imported one in its
     * one history entry. */
    const char *comment = ks_json_str(cfg, "comment");
    add_str(o, "Comment", comment ? comment : ks_json_str(h0, "comment"));
    add_str(o, "Created", ks_json_str(cfg, "created"));
    add_str(o, "DockerVersion", ks_json_str(cfg, "docker_version"));
    add_str(o, "Author", ks_json_str(cfg, "author"));
    json_object_object_add(o, "Config",
                           copy_or(ks_json_get(cfg, "config"), json_object_new_object()));
    add_str(o, "Architecture", ks_json_str(cfg, "architecture"));
    if (ks_json_str(cfg, "variant"))
        add_str(o, "Variant", ks_json_str(cfg, "variant"));
    add_str(o, "Os", ks_json_str(cfg, "os"));
    json_object_object_add(o, "Size", json_object_new_int64(img->size));
    json_object_object_add(o, "GraphDriver", graph_driver(db, img, ks_store_root(s)));
    json_object_object_add(o, "RootFS", rootfs_json(img));
    json_object *meta = json_object_new_object();
    add_str(meta, "LastTagTime", "0001-01-01T00:00:00Z");
    json_object_object_add(o, "Metadata", meta);
    *ret = TAKE_PTR(o);
    return 0;
}

static json_object *history_entry(json_object *h, const char *id, int64_t size)
{
    json_object *e = json_object_new_object();
    add_str(e, "Id", id);
    int64_t t = ks_rfc3339_parse(ks_json_str(h, "created"));
    json_object_object_add(e, "Created", json_object_new_int64(t < 0 ? 0 : t));
    add_str(e, "CreatedBy", ks_json_str(h, "created_by"));
    json_object_object_add(e, "Size", json_object_new_int64(size));
    add_str(e, "Comment", ks_json_str(h, "comment"));
    return e;
}

int ks_store_history_json(struct ks_store *s, const char *id, json_object **ret,
                          struct ks_error **err)
{
    struct ks_db *db = ks_store_db(s);
    _cleanup_db_image_ struct ks_db_image *img = NULL;
    _cleanup_json_ json_object *cfg = NULL;
    int r = image_and_config(db, id, &img, &cfg, err);
    if (r < 0)
        return r;
    json_object *history = ks_json_get_type(cfg, "history", json_type_array);
    size_t n = history ? json_object_array_length(history) : 0;
    _cleanup_json_ json_object *out = json_object_new_array();
    /* Entries that made a layer take the layers' sizes in order. */
    size_t layer = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *h = json_object_array_get_idx(history, i);
        int64_t size = 0;
        if (!ks_json_bool(h, "empty_layer", false) && layer < img->n_layers) {
            _cleanup_db_layer_ struct ks_db_layer *l = NULL;
            if (ks_db_layer_get(db, KS_DB_LAYER_BY_CHAIN_ID, img->chain_ids[layer++], &l, NULL) >=
                0)
                size = l->size;
        }
        json_object_array_add(out, history_entry(h, i + 1 == n ? img->id : "<missing>", size));
    }
    /* Newest first, as docker history prints it. */
    _cleanup_json_ json_object *rev = json_object_new_array();
    for (size_t i = n; i-- > 0;)
        json_object_array_add(rev, json_object_get(json_object_array_get_idx(out, i)));
    *ret = TAKE_PTR(rev);
    return 0;
}
