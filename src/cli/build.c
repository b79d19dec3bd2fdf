/* `kiste dockerfile …`: the Dockerfile front end on the command line. */
#include "build.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "container.h"
#include "format.h"
#include "logs.h"
#include "lib/base/fs.h"
#include "lib/engine/container.h"
#include "lib/build/builder.h"
#include "lib/build/dockerfile.h"
#include "lib/build/instructions.h"

static int read_input(const char *path, char **ret, size_t *ret_len, struct ks_error **err)
{
    /* one byte more than the parser takes, so that an oversized file is refused, not cut */
    if (strcmp(path, "-") == 0)
        return ks_read_fd(STDIN_FILENO, KS_DOCKERFILE_MAX_SIZE + 1, ret, ret_len, err);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ks_error_set(err, errno, "%s", path);
    return ks_read_fd(fd, KS_DOCKERFILE_MAX_SIZE + 1, ret, ret_len, err);
}

/* `parse` prints the parse tree; `check` also checks the instructions as a build would and
 * prints the stages, one a line: index, name ("-" when none), base image, first and last
 * line. */
static int dockerfile_parse(int argc, char **argv, bool check)
{
    if (argc != 2 || argv[1][0] == '\0')
        return ks_cli_usage_error(check ? "dockerfile check" : "dockerfile parse",
                                  "requires exactly 1 argument (FILE or -)");
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    struct ks_error *e = NULL;
    if (read_input(argv[1], &data, &len, &e) < 0)
        return ks_cli_fail(e, 1);
    _cleanup_dockerfile_ struct ks_dockerfile *df = NULL;
    if (ks_dockerfile_parse(data, len, &df, &e) < 0) {
        ks_error_wrap(&e, "%s", argv[1]);
        return ks_cli_fail(e, 1);
    }
    for (size_t i = 0; df->warnings && df->warnings[i]; i++)
        fprintf(stderr, "Warning: %s\n", df->warnings[i]);
    if (check) {
        struct ks_df_stages st = {0};
        if (ks_df_check(df, &st, &e) < 0) {
            ks_error_wrap(&e, "%s", argv[1]);
            return ks_cli_fail(e, 1);
        }
        for (size_t i = 0; i < st.n; i++)
            printf("%zu\t%s\t%s\t%d\t%d\n", i, st.v[i].name ? st.v[i].name : "-", st.v[i].base,
                   df->nodes[st.v[i].from].start_line, df->nodes[st.v[i].end - 1].end_line);
        ks_df_stages_clear(&st);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    _cleanup_free_ char *dump = ks_dockerfile_dump(df);
    if (dump == NULL) {
        fprintf(stderr, "Error: out of memory\n");
        return 1;
    }
    fputs(dump, stdout);
    return fflush(stdout) == 0 ? 0 : 1;
}

int ks_cli_dockerfile(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "Usage: kiste dockerfile COMMAND\n\nCommands:\n"
                   "  parse FILE|-   print the Dockerfile's parse tree (BuildKit's dump format)\n"
                   "  check FILE|-   check the instructions and list the build stages\n");
        return argc < 2 ? 1 : 0;
    }
    if (strcmp(argv[1], "parse") == 0 || strcmp(argv[1], "check") == 0)
        return dockerfile_parse(argc - 1, argv + 1, strcmp(argv[1], "check") == 0);
    fprintf(stderr, "kiste dockerfile: unknown command `%s`\n", argv[1]);
    return 1;
}

struct build_cli {
    bool quiet;
};

static void print_progress(void *userdata, const char *line)
{
    const struct build_cli *c = userdata;
    if (!c->quiet)
        printf("%s\n", line);
    fflush(stdout);
}

/* A RUN step's output, from its container's log, once the step has ended. */
static void print_run_output(void *userdata, struct ks_engine *e, const char *id)
{
    const struct build_cli *c = userdata;
    if (c->quiet)
        return;
    _cleanup_free_ char *path = ks_container_log_path(e, id);
    const struct ks_logs_opts lo = {.tail = -1};
    _cleanup_error_ struct ks_error *err = NULL;
    fflush(stdout);
    if (path)
        (void)ks_cli_logs(path, &lo, NULL, NULL, &err);
    fflush(stdout);
}

/* A growing NULL-terminated list of borrowed strings (arguments). */
static int push_arg(char ***v, size_t *n, char *s)
{
    char **nv = realloc(*v, (*n + 2) * sizeof(char *));
    if (nv == NULL)
        return -ENOMEM;
    nv[(*n)++] = s;
    nv[*n] = NULL;
    *v = nv;
    return 0;
}

/* --build-arg NAME without a value takes NAME from the environment, as Docker's client does;
 * unset there, it is left out. */
static char *build_arg(const char *a)
{
    char *s = NULL;
    if (strchr(a, '='))
        return strdup(a);
    const char *v = getenv(a);
    if (v && asprintf(&s, "%s=%s", a, v) < 0)
        return NULL;
    return s;
}

/* A context unpacked from stdin is removed when the build ends. */
static void context_tmp_remove(char **dir)
{
    if (*dir) {
        (void)ks_rm_rf_at(AT_FDCWD, *dir, NULL);
        free(*dir);
    }
}

/* Unpacks the tar on stdin into a new directory under the storage root's tmp/. */
static int unpack_stdin_context(struct ks_engine *e, char **ret_dir, struct ks_error **err)
{
    _cleanup_free_ char *base = NULL;
    if (asprintf(&base, "%s/tmp", e->root) < 0)
        return ks_error_set(err, ENOMEM, "context");
    int r = ks_mkdir_p(base, 0700, err);
    if (r < 0)
        return r;
    if (asprintf(ret_dir, "%s/context-XXXXXX", base) < 0) {
        *ret_dir = NULL;
        return ks_error_set(err, ENOMEM, "context");
    }
    if (mkdtemp(*ret_dir) == NULL)
        return ks_error_set(err, errno, "%s", *ret_dir);
    int fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        return ks_error_set(err, errno, "stdin");
    r = ks_engine_copy_in(*ret_dir, "/", "", fd, err);
    if (r < 0)
        return ks_error_wrap(err, "unpacking the build context from stdin");
    return 0;
}

struct build_flags {
    char **tags;  /* borrowed strings */
    char **bargs; /* owned strings */
    size_t n_tags, n_bargs;
    const char *file, *target, *network;
    bool no_cache;
};

static void build_flags_clear(struct build_flags *f)
{
    free(f->tags);
    ks_strv_free(f->bargs);
}

/* The options of `kiste build`: 0, 1 after --help, -1 on a usage error (reported). */
static int parse_build_flags(int argc, char **argv, struct build_flags *f, struct build_cli *cli)
{
    static const struct option opts[] = {
        {"tag", required_argument, NULL, 't'},
        {"file", required_argument, NULL, 'f'},
        {"build-arg", required_argument, NULL, 'b'},
        {"target", required_argument, NULL, 'T'},
        {"no-cache", no_argument, NULL, 'n'},
        {"network", required_argument, NULL, 'N'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+t:f:qh", opts, NULL)) != -1) {
        char *a = NULL;
        switch (c) {
        case 't':
            if (push_arg(&f->tags, &f->n_tags, optarg) < 0)
                return -1;
            break;
        case 'f':
            f->file = optarg;
            break;
        case 'b':
            a = build_arg(optarg);
            if (a && push_arg(&f->bargs, &f->n_bargs, a) < 0)
                free(a);
            break;
        case 'T':
            f->target = optarg;
            break;
        case 'n':
            f->no_cache = true;
            break;
        case 'N':
            f->network = optarg;
            break;
        case 'q':
            cli->quiet = true;
            break;
        case 'h':
            printf("Usage: kiste build [OPTIONS] PATH | -\n\n"
                   "  -t, --tag NAME        tag the image (repeatable)\n"
                   "  -f, --file FILE       the Dockerfile (default: PATH/Dockerfile)\n"
                   "      --build-arg K=V   set a build-time variable\n"
                   "      --target STAGE    build up to this stage\n"
                   "      --no-cache        do not use the build cache\n"
                   "      --network MODE    RUN's network (none, host; default none)\n"
                   "  -q, --quiet           print only the image ID\n"
                   "A PATH of - reads the context as a tar from stdin.\n");
            return 1;
        default:
            ks_cli_usage_error("build", "unknown option");
            return -1;
        }
    }
    return 0;
}

int ks_cli_build(int argc, char **argv)
{
    _cleanup_(build_flags_clear) struct build_flags f = {0};
    struct build_cli cli = {0};
    int pr = parse_build_flags(argc, argv, &f, &cli);
    if (pr != 0)
        return pr < 0 ? 1 : 0;
    if (argc - optind != 1)
        return ks_cli_usage_error("build", "requires exactly 1 argument (a directory)");
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    /* "-": the context is a tar on stdin, unpacked into a directory of the build's own */
    _cleanup_(context_tmp_remove) char *tmp = NULL;
    const char *dir = argv[optind];
    if (strcmp(dir, "-") == 0) {
        if (unpack_stdin_context(e, &tmp, &err) < 0)
            return ks_cli_fail(err, 1);
        dir = tmp;
    }
    _cleanup_close_ int ctx = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ctx < 0) {
        ks_error_set(&err, errno, "unable to prepare context: %s", dir);
        return ks_cli_fail(err, 1);
    }
    /* -f names a file; in a context from stdin, a file inside it */
    _cleanup_free_ char *df_path = NULL, *data = NULL;
    if (asprintf(&df_path, "%s%s%s", f.file && !tmp ? "" : dir, f.file && !tmp ? "" : "/",
                 f.file ? f.file : "Dockerfile") < 0)
        return 1;
    size_t len = 0;
    if (read_input(df_path, &data, &len, &err) < 0)
        return ks_cli_fail(err, 1);
    const struct ks_build_opts o = {
        .context_fd = ctx,
        .dockerfile = data,
        .dockerfile_len = len,
        .build_args = f.bargs,
        .tags = f.tags,
        .target = f.target,
        .network = f.network,
        .no_cache = f.no_cache,
        .progress = print_progress,
        .run_output = print_run_output,
        .userdata = &cli,
    };
    _cleanup_free_ char *id = NULL;
    if (ks_build(e, &o, &id, &err) < 0)
        return ks_cli_fail(err, 1);
    if (cli.quiet)
        printf("%s\n", id);
    return 0;
}

int ks_cli_builder(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "prune") != 0) {
        fprintf(argc < 2 ? stderr : stdout, "Usage: kiste builder prune [-f]\n\n"
                                            "Empties the build cache.\n");
        return argc < 2 || strcmp(argv[1], "--help") != 0 ? 1 : 0;
    }
    struct ks_error *err = NULL;
    _cleanup_engine_ struct ks_engine *e = NULL;
    if (ks_cli_engine_open(&e, &err) < 0)
        return ks_cli_fail(err, 1);
    size_t n = 0;
    if (ks_build_cache_prune(e->root, &n, &err) < 0)
        return ks_cli_fail(err, 1);
    printf("Deleted build cache objects: %zu\n", n);
    return 0;
}
