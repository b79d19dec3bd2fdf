/* kiste's image commands: import, images, tag, rmi, image inspect, history, image prune, and the
 * `kiste image …` group. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "format.h"
#include "image.h"
#include "lib/base/fs.h"
#include "lib/base/json.h"
#include "lib/image/store.h"

static int open_store(struct ks_store **ret, struct ks_error **err)
{
    return ks_store_open(getenv("KISTE_ROOT"), ret, err);
}

/* --- import --- */

static int import_open(const char *file, int *ret_fd)
{
    if (strcmp(file, "-") == 0) {
        *ret_fd = STDIN_FILENO;
        return 0;
    }
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    *ret_fd = fd;
    return 0;
}

int ks_cli_import(int argc, char **argv)
{
    static const struct option opts[] = {
        {"change", required_argument, NULL, 'c'},
        {"message", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    _cleanup_free_ const char **changes = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_changes = 0;
    const char *message = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+c:m:h", opts, NULL)) != -1) {
        if (c == 'c')
            changes[n_changes++] = optarg;
        else if (c == 'm')
            message = optarg;
        else if (c == 'h') {
            printf("Usage: kiste import [OPTIONS] file|- [REPOSITORY[:TAG]]\n");
            return 0;
        } else
            return 1;
    }
    if (argc - optind < 1 || argc - optind > 2)
        return ks_cli_usage_error("import", "requires 1 or 2 arguments");
    const char *file = argv[optind], *ref = argc - optind == 2 ? argv[optind + 1] : NULL;
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    if (open_store(&s, &e) < 0)
        return ks_cli_fail(e, 1);
    int fd = -EBADF;
    int r = import_open(file, &fd);
    if (r < 0) {
        fprintf(stderr, "Error: open %s: %s\n", file, strerror(-r));
        return 1;
    }
    _cleanup_free_ char *id = NULL;
    r = ks_store_import(s, fd, changes, ref, message, &id, &e);
    if (fd != STDIN_FILENO)
        close(fd);
    if (r < 0)
        return ks_cli_fail(e, 1);
    printf("%s\n", id);
    return 0;
}

/* --- images --- */

struct images_opts {
    bool quiet, all, no_trunc, digests;
    const char *format;
    int dangling; /* -1: any */
    char **refs;  /* reference= patterns */
};

static bool ref_matches(char **patterns, const char *repo, const char *tag)
{
    if (patterns == NULL || patterns[0] == NULL)
        return true;
    _cleanup_free_ char *full = NULL;
    if (asprintf(&full, "%s:%s", repo, tag) < 0)
        return false;
    for (size_t i = 0; patterns[i]; i++)
        if (fnmatch(patterns[i], repo, 0) == 0 || fnmatch(patterns[i], full, 0) == 0)
            return true;
    return false;
}

static int parse_filter(struct images_opts *o, const char *f)
{
    const char *eq = strchr(f, '=');
    if (eq == NULL)
        return -1;
    if (strncmp(f, "dangling=", 9) == 0) {
        if (strcmp(eq + 1, "true") == 0 || strcmp(eq + 1, "1") == 0)
            o->dangling = 1;
        else if (strcmp(eq + 1, "false") == 0 || strcmp(eq + 1, "0") == 0)
            o->dangling = 0;
        else
            return -1;
        return 0;
    }
    if (strncmp(f, "reference=", 10) == 0) {
        size_t n = o->refs ? ks_strv_len(o->refs) : 0;
        char **v = realloc(o->refs, (n + 2) * sizeof(char *));
        if (v == NULL)
            return -1;
        v[n] = strdup(eq + 1);
        v[n + 1] = NULL;
        o->refs = v;
        return 0;
    }
    return -1;
}

/* "repo:tag" split at the tag's colon (not a registry port's). */
static void split_tag(const char *ref, char **repo, const char **tag)
{
    const char *c = strrchr(ref, ':');
    if (c && strchr(c, '/') == NULL) {
        *repo = strndup(ref, (size_t)(c - ref));
        *tag = c + 1;
    } else {
        *repo = strdup(ref);
        *tag = "<none>";
    }
}

static const char *digest_for(const struct ks_store_image *img, const char *repo)
{
    size_t n = strlen(repo);
    for (size_t i = 0; img->digests && img->digests[i]; i++)
        if (strncmp(img->digests[i], repo, n) == 0 && img->digests[i][n] == '@')
            return img->digests[i] + n + 1;
    return "<none>";
}

static json_object *image_row(const struct ks_store_image *img, const char *repo, const char *tag,
                              const struct images_opts *o)
{
    json_object *row = json_object_new_object();
    char buf[64];
    const char *hex = strchr(img->id, ':') ? strchr(img->id, ':') + 1 : img->id;
    if (o->no_trunc)
        json_object_object_add(row, "ID", json_object_new_string(img->id));
    else
        json_object_object_add(row, "ID", json_object_new_string_len(hex, 12));
    json_object_object_add(row, "Repository", json_object_new_string(repo));
    json_object_object_add(row, "Tag", json_object_new_string(tag));
    json_object_object_add(row, "Digest", json_object_new_string(digest_for(img, repo)));
    ks_fmt_since(img->created, buf, sizeof(buf));
    json_object_object_add(row, "CreatedSince", json_object_new_string(buf));
    ks_fmt_time(img->created, buf, sizeof(buf));
    json_object_object_add(row, "CreatedAt", json_object_new_string(buf));
    ks_fmt_size(img->size, buf, sizeof(buf));
    json_object_object_add(row, "Size", json_object_new_string(buf));
    return row;
}

static json_object *images_header(void)
{
    static const char *const h[][2] = {
        {"ID", "IMAGE ID"},   {"Repository", "REPOSITORY"}, {"Tag", "TAG"},
        {"Digest", "DIGEST"}, {"CreatedSince", "CREATED"},  {"CreatedAt", "CREATED AT"},
        {"Size", "SIZE"},
    };
    json_object *o = json_object_new_object();
    for (size_t i = 0; i < KS_ELEMENTSOF(h); i++)
        json_object_object_add(o, h[i][0], json_object_new_string(h[i][1]));
    return o;
}

/* One row per tag, or one <none> row for an image without tags. */
static int image_rows(const struct ks_store_image *img, const struct images_opts *o,
                      json_object *rows)
{
    bool dangling = img->tags == NULL || img->tags[0] == NULL;
    if (o->dangling >= 0 && dangling != (o->dangling == 1))
        return 0;
    if (dangling) {
        if (o->refs == NULL)
            json_object_array_add(rows, image_row(img, "<none>", "<none>", o));
        return 0;
    }
    for (size_t i = 0; img->tags[i]; i++) {
        _cleanup_free_ char *repo = NULL;
        const char *tag;
        split_tag(img->tags[i], &repo, &tag);
        if (repo == NULL)
            return -ENOMEM;
        if (ref_matches(o->refs, repo, tag))
            json_object_array_add(rows, image_row(img, repo, tag, o));
    }
    return 0;
}

static int images_print(struct images_opts *o)
{
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    _cleanup_store_images_ struct ks_store_image **v = NULL;
    if (open_store(&s, &e) < 0 || ks_store_images(s, &v, &e) < 0)
        return ks_cli_fail(e, 1);
    _cleanup_json_ json_object *rows = json_object_new_array();
    for (size_t i = 0; v[i]; i++)
        if (image_rows(v[i], o, rows) < 0)
            return ks_cli_fail(NULL, 1);
    const char *format = o->format;
    if (o->quiet)
        format = "{{.ID}}";
    else if (format == NULL || strcmp(format, "table") == 0)
        format = o->digests ? "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t"
                              "{{.CreatedSince}}\t{{.Size}}"
                            : "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t"
                              "{{.Size}}";
    size_t n = json_object_array_length(rows);
    _cleanup_free_ json_object **arr = calloc(n + 1, sizeof(*arr));
    size_t m = 0;
    for (size_t i = 0; arr && i < n; i++) {
        json_object *row = json_object_array_get_idx(rows, i);
        bool dup = false;
        /* -q lists each image once. */
        for (size_t j = 0; o->quiet && j < m; j++)
            dup = dup || strcmp(ks_json_str(arr[j], "ID"), ks_json_str(row, "ID")) == 0;
        if (!dup)
            arr[m++] = row;
    }
    _cleanup_json_ json_object *header = images_header();
    if (arr == NULL || ks_fmt_rows(format, header, arr, m) < 0) {
        fprintf(stderr, "Error: invalid format `%s`\n", format);
        return 1;
    }
    return 0;
}

int ks_cli_images(int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},        {"all", no_argument, NULL, 'a'},
        {"no-trunc", no_argument, NULL, 'T'},     {"digests", no_argument, NULL, 'D'},
        {"format", required_argument, NULL, 'F'}, {"filter", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},         {0},
    };
    struct images_opts o = {.dangling = -1};
    _cleanup_strv_ char **refs = NULL;
    int c, rc = -1;
    optind = 1;
    while (rc < 0 && (c = getopt_long(argc, argv, "qaf:h", opts, NULL)) != -1) {
        switch (c) {
        case 'q':
            o.quiet = true;
            break;
        case 'a':
            o.all = true;
            break;
        case 'T':
            o.no_trunc = true;
            break;
        case 'D':
            o.digests = true;
            break;
        case 'F':
            o.format = optarg;
            break;
        case 'f':
            if (parse_filter(&o, optarg) < 0) {
                fprintf(stderr, "Error: invalid filter '%s'\n", optarg);
                rc = 1;
            }
            refs = o.refs;
            break;
        case 'h':
            printf("Usage: kiste images [OPTIONS] [REPOSITORY[:TAG]]\n");
            rc = 0;
            break;
        default:
            rc = 1;
        }
    }
    if (rc >= 0)
        return rc;
    if (optind < argc && parse_filter(&o, "reference=") == 0) {
        /* `images busybox`: the same as --filter reference=busybox. */
        free(o.refs[ks_strv_len(o.refs) - 1]);
        o.refs[ks_strv_len(o.refs) - 1] = strdup(argv[optind]);
        refs = o.refs;
    }
    return images_print(&o);
}

/* --- tag, rmi --- */

int ks_cli_tag(int argc, char **argv)
{
    if (argc != 3)
        return ks_cli_usage_error("tag", "requires exactly 2 arguments");
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    if (open_store(&s, &e) < 0 || ks_store_tag(s, argv[1], argv[2], &e) < 0)
        return ks_cli_fail(e, 1);
    return 0;
}

static int rmi_one(struct ks_store *s, const char *name, bool force)
{
    struct ks_error *e = NULL;
    _cleanup_strv_ char **untagged = NULL, **deleted = NULL;
    if (ks_store_remove(s, name, force, &untagged, &deleted, &e) < 0)
        return ks_cli_fail(e, 1);
    for (size_t i = 0; untagged[i]; i++)
        printf("Untagged: %s\n", untagged[i]);
    for (size_t i = 0; deleted[i]; i++)
        printf("Deleted: %s\n", deleted[i]);
    return 0;
}

int ks_cli_rmi(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'},
        {"no-prune", no_argument, NULL, 'P'},
        {0},
    };
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
        if (c == 'f')
            force = true;
        else if (c != 'P')
            return 1;
    }
    if (optind >= argc)
        return ks_cli_usage_error(argv[0], "requires at least 1 argument");
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    if (open_store(&s, &e) < 0)
        return ks_cli_fail(e, 1);
    int rc = 0;
    for (int i = optind; i < argc; i++)
        rc |= rmi_one(s, argv[i], force);
    return rc;
}

/* --- inspect, history --- */

static int image_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"format", required_argument, NULL, 'f'},
        {0},
    };
    const char *format = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
        if (c != 'f')
            return 1;
        format = optarg;
    }
    if (optind >= argc)
        return ks_cli_usage_error("image inspect", "requires at least 1 argument");
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    if (open_store(&s, &e) < 0)
        return ks_cli_fail(e, 1);
    _cleanup_json_ json_object *all = json_object_new_array();
    int rc = 0;
    for (int i = optind; i < argc; i++) {
        _cleanup_free_ char *id = NULL;
        json_object *o = NULL;
        if (ks_store_lookup(s, argv[i], &id, &e) < 0 || ks_store_inspect_json(s, id, &o, &e) < 0) {
            rc = ks_cli_fail(TAKE_PTR(e), 1);
            continue;
        }
        json_object_array_add(all, o);
    }
    if (ks_cli_print_inspect(all, format) != 0)
        return 1;
    return rc;
}

static void history_row(struct ks_table *t, json_object *h, bool no_trunc, bool quiet)
{
    char created[64], size[32];
    const char *id = ks_json_str(h, "Id");
    _cleanup_free_ char *short_id = NULL;
    if (!no_trunc && strncmp(id, "sha256:", 7) == 0)
        short_id = strndup(id + 7, 12);
    if (quiet) {
        printf("%s\n", short_id ? short_id : id);
        return;
    }
    ks_fmt_since(ks_json_int(h, "Created", 0), created, sizeof(created));
    ks_fmt_size(ks_json_int(h, "Size", 0), size, sizeof(size));
    const char *by = ks_json_str(h, "CreatedBy");
    _cleanup_free_ char *by_short = NULL;
    if (!no_trunc && strlen(by) > 45 && asprintf(&by_short, "%.44s…", by) < 0)
        by_short = NULL;
    _cleanup_free_ char *line = NULL;
    if (asprintf(&line, "%s\t%s\t%s\t%s\t%s", short_id ? short_id : id, created,
                 by_short ? by_short : by, size, ks_json_str(h, "Comment")) >= 0)
        ks_table_add_line(t, line);
}

int ks_cli_history(int argc, char **argv)
{
    static const struct option opts[] = {
        {"no-trunc", no_argument, NULL, 'T'},
        {"quiet", no_argument, NULL, 'q'},
        {"human", required_argument, NULL, 'H'},
        {0},
    };
    bool no_trunc = false, quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qH:", opts, NULL)) != -1) {
        if (c == 'T')
            no_trunc = true;
        else if (c == 'q')
            quiet = true;
        else if (c != 'H')
            return 1;
    }
    if (argc - optind != 1)
        return ks_cli_usage_error("history", "requires exactly 1 argument");
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    _cleanup_free_ char *id = NULL;
    _cleanup_json_ json_object *h = NULL;
    if (open_store(&s, &e) < 0 || ks_store_lookup(s, argv[optind], &id, &e) < 0 ||
        ks_store_history_json(s, id, &h, &e) < 0)
        return ks_cli_fail(e, 1);
    struct ks_table t = {0};
    ks_table_add_line(&t, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT");
    for (size_t i = 0; i < json_object_array_length(h); i++)
        history_row(&t, json_object_array_get_idx(h, i), no_trunc, quiet);
    if (!quiet)
        ks_table_print(stdout, &t);
    ks_table_free(&t);
    return 0;
}

/* --- prune and the image group --- */

static int image_prune(int argc, char **argv)
{
    static const struct option opts[] = {
        {"all", no_argument, NULL, 'a'},
        {"force", no_argument, NULL, 'f'},
        {0},
    };
    bool all = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "af", opts, NULL)) != -1) {
        if (c == 'a')
            all = true;
        else if (c != 'f')
            return 1;
    }
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    _cleanup_store_images_ struct ks_store_image **v = NULL;
    if (open_store(&s, &e) < 0 || ks_store_images(s, &v, &e) < 0)
        return ks_cli_fail(e, 1);
    int64_t reclaimed = 0;
    bool header = false;
    for (size_t i = 0; v[i]; i++) {
        /* Without containers, every image is unused: -a removes them all. */
        if (!all && v[i]->tags && v[i]->tags[0])
            continue;
        _cleanup_strv_ char **untagged = NULL, **deleted = NULL;
        if (ks_store_remove(s, v[i]->id, true, &untagged, &deleted, &e) < 0)
            return ks_cli_fail(e, 1);
        if (!header)
            printf("Deleted Images:\n");
        header = true;
        for (size_t j = 0; untagged[j]; j++)
            printf("untagged: %s\n", untagged[j]);
        for (size_t j = 0; deleted[j]; j++)
            printf("deleted: %s\n", deleted[j]);
        reclaimed += v[i]->size;
    }
    /* Also what no image names any more, and layer directories an interrupted import left. */
    if (ks_store_gc(s, &e) < 0)
        return ks_cli_fail(e, 1);
    char size[32];
    ks_fmt_size(reclaimed, size, sizeof(size));
    printf("%sTotal reclaimed space: %s\n", header ? "\n" : "", size);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
} image_commands[] = {
    {"ls", ks_cli_images},       {"list", ks_cli_images},    {"rm", ks_cli_rmi},
    {"remove", ks_cli_rmi},      {"tag", ks_cli_tag},        {"import", ks_cli_import},
    {"history", ks_cli_history}, {"inspect", image_inspect}, {"prune", image_prune},
    {"save", ks_cli_save},       {"load", ks_cli_load},
};

int ks_cli_image(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "Usage: kiste image COMMAND\n\nCommands:\n");
        for (size_t i = 0; i < KS_ELEMENTSOF(image_commands); i++)
            fprintf(f, "  %s\n", image_commands[i].name);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < KS_ELEMENTSOF(image_commands); i++)
        if (strcmp(argv[1], image_commands[i].name) == 0)
            return image_commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "kiste image: unknown command `%s`\n", argv[1]);
    return 1;
}
