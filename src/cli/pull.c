/* kiste pull, push, login, logout and search: the registry client's command line, with
 * Docker's progress display (one line per layer redrawn in place on a terminal, plain status
 * lines otherwise). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "format.h"
#include "lib/base/fs.h"
#include "lib/base/json.h"
#include "lib/image/ref.h"
#include "lib/image/store.h"
#include "lib/registry/client.h"
#include "lib/registry/credentials.h"
#include "pull.h"

#define BAR_WIDTH 50

/* --- progress --- */

struct line {
    char id[13];
    char text[160];
};

struct display {
    FILE *out;
    bool tty;
    bool push;
    struct line *lines;
    size_t n;
};

static void bar(char *buf, size_t len, const char *verb, int64_t cur, int64_t total)
{
    char c[16], t[16];
    ks_fmt_size(cur, c, sizeof(c));
    if (total <= 0) {
        snprintf(buf, len, "%s  %s", verb, c);
        return;
    }
    ks_fmt_size(total, t, sizeof(t));
    int fill = (int)(cur >= total ? BAR_WIDTH : cur * BAR_WIDTH / total);
    char b[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        b[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    b[BAR_WIDTH] = '\0';
    snprintf(buf, len, "%s [%s]  %s/%s", verb, b, c, t);
}

static void status_text(const struct display *d, const struct ks_progress *p, char *buf, size_t len)
{
    switch (p->state) {
    case KS_PROGRESS_WAITING:
        snprintf(buf, len, "%s", d->push ? "Preparing" : "Pulling fs layer");
        break;
    case KS_PROGRESS_EXISTS:
        snprintf(buf, len, "%s", d->push ? "Layer already exists" : "Already exists");
        break;
    case KS_PROGRESS_TRANSFER:
        bar(buf, len, d->push ? "Pushing" : "Downloading", p->current, p->total);
        break;
    case KS_PROGRESS_RETRYING:
        snprintf(buf, len, "Retrying (resuming at %" PRId64 " bytes)", p->current);
        break;
    case KS_PROGRESS_DOWNLOADED:
        snprintf(buf, len, "Download complete");
        break;
    case KS_PROGRESS_DONE:
        snprintf(buf, len, "%s", d->push ? "Pushed" : "Pull complete");
        break;
    case KS_PROGRESS_MOUNTED:
        snprintf(buf, len, "Mounted from %s", p->from ? p->from : "?");
        break;
    }
}

static void on_progress(void *userdata, const struct ks_progress *p)
{
    struct display *d = userdata;
    char text[160];
    status_text(d, p, text, sizeof(text));
    size_t i;
    for (i = 0; i < d->n; i++)
        if (strcmp(d->lines[i].id, p->id) == 0)
            break;
    if (i == d->n) {
        struct line *v = realloc(d->lines, (d->n + 1) * sizeof(*v));
        if (v == NULL)
            return;
        d->lines = v;
        snprintf(v[d->n].id, sizeof(v[d->n].id), "%s", p->id);
        snprintf(v[d->n].text, sizeof(v[d->n].text), "%s", text);
        d->n++;
        fprintf(d->out, "%s: %s\n", p->id, text);
        fflush(d->out);
        return;
    }
    struct line *l = &d->lines[i];
    bool changed = strcmp(l->text, text) != 0;
    snprintf(l->text, sizeof(l->text), "%s", text);
    if (!d->tty) {
        /* Transfers are not logged line by line: a log would fill with them. */
        if (changed && p->state != KS_PROGRESS_TRANSFER)
            fprintf(d->out, "%s: %s\n", p->id, text);
    } else if (changed) {
        size_t up = d->n - i;
        fprintf(d->out, "\033[%zuA\r\033[2K%s: %s\r\033[%zuB", up, p->id, text, up);
    }
    fflush(d->out);
}

/* --- pull --- */

static int split_platform(const char *platform, char **os, char **arch, char **variant)
{
    *os = *arch = *variant = NULL;
    if (platform == NULL || *platform == '\0')
        return 0;
    _cleanup_free_ char *copy = strdup(platform);
    if (copy == NULL)
        return -ENOMEM;
    char *save = NULL;
    char *a = strtok_r(copy, "/", &save), *b = strtok_r(NULL, "/", &save),
         *c = strtok_r(NULL, "/", &save);
    if (a == NULL || strtok_r(NULL, "/", &save))
        return -EINVAL;
    if (b == NULL) {
        /* "arm64" alone names the architecture, as Docker takes it */
        *os = strdup("linux");
        *arch = strdup(a);
    } else {
        *os = strdup(a);
        *arch = strdup(b);
        *variant = c ? strdup(c) : NULL;
    }
    return 0;
}

static int pull_one(struct ks_store *s, const char *name, const char *platform, bool quiet,
                    FILE *out)
{
    struct ks_error *e = NULL;
    _cleanup_ref_ struct ks_ref *ref = NULL;
    if (ks_ref_parse(name, &ref, &e) < 0)
        return ks_cli_fail(e, 1);
    _cleanup_free_ char *os = NULL, *arch = NULL, *variant = NULL;
    if (split_platform(platform, &os, &arch, &variant) < 0) {
        fprintf(stderr, "Error: invalid platform `%s`: want os/arch[/variant]\n", platform);
        return 1;
    }
    _cleanup_free_ char *familiar = ks_ref_familiar(ref), *full = ks_ref_string(ref);
    if (familiar == NULL || full == NULL)
        return ks_cli_fail(NULL, 1);
    if (!quiet)
        fprintf(out, "%s: Pulling from %s\n", ref->tag ? ref->tag : ref->digest, ref->path);
    struct display d = {.out = out, .tty = isatty(fileno(out))};
    struct ks_pull_opts o = {
        .storage_root = ks_store_root(s),
        .os = os,
        .arch = arch,
        .variant = variant,
        .progress = quiet ? NULL : on_progress,
        .userdata = &d,
    };
    struct ks_pull_result res = {0};
    int r = ks_registry_pull(s, name, &o, &res, &e);
    free(d.lines);
    if (r < 0)
        return ks_cli_fail(e, 1);
    if (!quiet) {
        fprintf(out, "Digest: %s\n", res.digest);
        fprintf(out, "Status: %s for %s\n",
                res.up_to_date ? "Image is up to date" : "Downloaded newer image", familiar);
    }
    if (out == stdout)
        printf("%s\n", full);
    ks_pull_result_release(&res);
    return 0;
}

int ks_cli_pull_image(const char *name, const char *platform, bool quiet, FILE *out)
{
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    if (ks_store_open(getenv("KISTE_ROOT"), &s, &e) < 0)
        return ks_cli_fail(e, 1);
    return pull_one(s, name, platform, quiet, out);
}

static int pull_all_tags(struct ks_store *s, const char *name, const char *platform, bool quiet)
{
    struct ks_error *e = NULL;
    _cleanup_ref_ struct ks_ref *ref = NULL;
    if (ks_ref_parse(name, &ref, &e) < 0)
        return ks_cli_fail(e, 1);
    if (strchr(name, '@') || (strrchr(name, ':') && !strchr(strrchr(name, ':'), '/'))) {
        fprintf(stderr, "Error: tag can't be used with --all-tags/-a\n");
        return 1;
    }
    _cleanup_registry_ struct ks_registry *r = NULL;
    struct ks_registry_opts ro = {.storage_root = ks_store_root(s)};
    _cleanup_strv_ char **tags = NULL;
    if (ks_registry_open(ref->domain, &ro, &r, &e) < 0 ||
        ks_registry_tags(r, ref->path, &tags, &e) < 0)
        return ks_cli_fail(e, 1);
    _cleanup_free_ char *repo = ks_ref_repository(ref);
    for (size_t i = 0; tags[i]; i++) {
        _cleanup_free_ char *one = NULL;
        if (asprintf(&one, "%s:%s", repo, tags[i]) < 0)
            return ks_cli_fail(NULL, 1);
        int st = pull_one(s, one, platform, quiet, stdout);
        if (st != 0)
            return st;
    }
    return 0;
}

int ks_cli_pull(int argc, char **argv)
{
    static const struct option opts[] = {
        {"all-tags", no_argument, NULL, 'a'},
        {"platform", required_argument, NULL, 'P'},
        {"quiet", no_argument, NULL, 'q'},
        {"disable-content-trust", optional_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool all = false, quiet = false;
    const char *platform = getenv("DOCKER_DEFAULT_PLATFORM");
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "aqh", opts, NULL)) != -1) {
        if (c == 'a')
            all = true;
        else if (c == 'q')
            quiet = true;
        else if (c == 'P')
            platform = optarg;
        else if (c == 'D')
            ;
        else if (c == 'h') {
            printf("Usage: kiste pull [OPTIONS] NAME[:TAG|@DIGEST]\n\n"
                   "Download an image from a registry\n\n"
                   "Options:\n"
                   "  -a, --all-tags          Download all tagged images in the repository\n"
                   "      --platform string   Set platform if server is multi-platform capable\n"
                   "  -q, --quiet             Suppress verbose output\n");
            return 0;
        } else
            return 1;
    }
    if (argc - optind != 1)
        return ks_cli_usage_error("pull", "requires exactly 1 argument");
    const char *name = argv[optind];
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    if (ks_store_open(getenv("KISTE_ROOT"), &s, &e) < 0)
        return ks_cli_fail(e, 1);
    if (all)
        return pull_all_tags(s, name, platform, quiet);
    bool has_tag = strchr(name, '@') || (strrchr(name, ':') && !strchr(strrchr(name, ':'), '/'));
    if (!has_tag && !quiet)
        printf("Using default tag: latest\n");
    return pull_one(s, name, platform, quiet, stdout);
}

/* --- push --- */

int ks_cli_push(int argc, char **argv)
{
    static const struct option opts[] = {
        {"quiet", no_argument, NULL, 'q'},
        {"all-tags", no_argument, NULL, 'a'},
        {"disable-content-trust", optional_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qah", opts, NULL)) != -1) {
        if (c == 'q')
            quiet = true;
        else if (c == 'a' || c == 'D')
            ;
        else if (c == 'h') {
            printf("Usage: kiste push [OPTIONS] NAME[:TAG]\n\n"
                   "Upload an image to a registry\n\n"
                   "Options:\n"
                   "  -q, --quiet   Suppress verbose output\n");
            return 0;
        } else
            return 1;
    }
    if (argc - optind != 1)
        return ks_cli_usage_error("push", "requires exactly 1 argument");
    const char *name = argv[optind];
    struct ks_error *e = NULL;
    _cleanup_ref_ struct ks_ref *ref = NULL;
    if (ks_ref_parse(name, &ref, &e) < 0)
        return ks_cli_fail(e, 1);
    _cleanup_store_ struct ks_store *s = NULL;
    if (ks_store_open(getenv("KISTE_ROOT"), &s, &e) < 0)
        return ks_cli_fail(e, 1);
    _cleanup_free_ char *repo = ks_ref_repository(ref);
    if (!quiet)
        printf("The push refers to repository [%s]\n", repo);
    struct display d = {.out = stdout, .tty = isatty(STDOUT_FILENO), .push = true};
    const char *chunk = getenv("KISTE_PUSH_CHUNK_SIZE");
    struct ks_push_opts o = {
        .storage_root = ks_store_root(s),
        .progress = quiet ? NULL : on_progress,
        .userdata = &d,
        .chunk_size = chunk ? strtoll(chunk, NULL, 10) : 0,
    };
    _cleanup_free_ char *digest = NULL;
    int64_t size = 0;
    int r = ks_registry_push(s, name, &o, &digest, &size, &e);
    free(d.lines);
    if (r < 0)
        return ks_cli_fail(e, 1);
    _cleanup_free_ char *full = ks_ref_string(ref);
    if (quiet)
        printf("%s\n", full ? full : name);
    else
        printf("%s: digest: %s size: %" PRId64 "\n", ref->tag, digest, size);
    return 0;
}

/* --- login, logout --- */

/* "https://host:port/v1/" → "host:port"; Docker Hub's names → "docker.io". */
static char *server_domain(const char *server)
{
    const char *p = server;
    if (strncmp(p, "https://", 8) == 0)
        p += 8;
    else if (strncmp(p, "http://", 7) == 0)
        p += 7;
    size_t n = strcspn(p, "/");
    _cleanup_free_ char *d = strndup(p, n);
    if (d && strcmp(ks_creds_server_key(d), ks_creds_server_key("docker.io")) == 0)
        return strdup("docker.io");
    return TAKE_PTR(d);
}

static char *read_line(FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    return line;
}

static char *prompt_password(void)
{
    struct termios old, quiet;
    bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    fprintf(stdout, "Password: ");
    fflush(stdout);
    char *p = read_line(stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stdout);
    }
    return p;
}

/* The user and password from the flags, stdin or prompts on the terminal; the message printed
 * and -1 when they cannot be had. */
static int read_credentials(const char **user, char **user_buf, const char *pass_arg,
                            bool pass_stdin, char **ret_pass)
{
    char *pass = NULL;
    if (pass_arg) {
        fprintf(stderr,
                "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n");
        pass = strdup(pass_arg);
    } else if (pass_stdin) {
        pass = read_line(stdin);
    }
    *ret_pass = pass;
    if (*user == NULL) {
        if (!isatty(STDIN_FILENO)) {
            fprintf(stderr, "Error: Cannot perform an interactive login from a non TTY device\n");
            return -1;
        }
        printf("Username: ");
        fflush(stdout);
        *user = *user_buf = read_line(stdin);
    }
    if (pass == NULL) {
        if (!isatty(STDIN_FILENO)) {
            fprintf(stderr, "Error: Cannot perform an interactive login from a non TTY device\n");
            return -1;
        }
        *ret_pass = pass = prompt_password();
    }
    if (*user == NULL || **user == '\0' || pass == NULL || *pass == '\0') {
        fprintf(stderr, "Error: Username and password are required\n");
        return -1;
    }
    return 0;
}

int ks_cli_login(int argc, char **argv)
{
    static const struct option opts[] = {
        {"username", required_argument, NULL, 'u'},
        {"password", required_argument, NULL, 'p'},
        {"password-stdin", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *user = NULL, *pass_arg = NULL;
    bool pass_stdin = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "u:p:h", opts, NULL)) != -1) {
        if (c == 'u')
            user = optarg;
        else if (c == 'p')
            pass_arg = optarg;
        else if (c == 'S')
            pass_stdin = true;
        else if (c == 'h') {
            printf("Usage: kiste login [OPTIONS] [SERVER]\n\n"
                   "Log in to a registry (default: Docker Hub)\n\n"
                   "Options:\n"
                   "  -p, --password string   Password\n"
                   "      --password-stdin    Take the password from stdin\n"
                   "  -u, --username string   Username\n");
            return 0;
        } else
            return 1;
    }
    if (argc - optind > 1)
        return ks_cli_usage_error("login", "requires at most 1 argument");
    if (pass_arg && pass_stdin) {
        fprintf(stderr, "Error: --password and --password-stdin are mutually exclusive\n");
        return 1;
    }
    if (pass_stdin && user == NULL) {
        fprintf(stderr, "Error: Must provide --username with --password-stdin\n");
        return 1;
    }
    _cleanup_free_ char *domain = server_domain(optind < argc ? argv[optind] : "docker.io");
    _cleanup_free_ char *user_buf = NULL, *pass = NULL;
    if (read_credentials(&user, &user_buf, pass_arg, pass_stdin, &pass) < 0)
        return 1;
    struct ks_error *e = NULL;
    struct ks_registry_opts ro = {
        .storage_root = getenv("KISTE_ROOT"), .username = user, .password = pass};
    _cleanup_registry_ struct ks_registry *r = NULL;
    if (ks_registry_open(domain, &ro, &r, &e) < 0 || ks_registry_ping(r, &e) < 0) {
        fprintf(stderr, "Error: login to %s failed: %s\n", domain, e->msg);
        ks_error_free(e);
        return 1;
    }
    if (ks_creds_store(domain, user, pass, &e) < 0)
        return ks_cli_fail(e, 1);
    _cleanup_free_ char *path = ks_creds_config_path();
    fprintf(stderr, "WARNING! Your password will be stored unencrypted in %s.\n", path);
    printf("Login Succeeded\n");
    return 0;
}

int ks_cli_logout(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Usage: kiste logout [SERVER]\n\nLog out from a registry (default: Docker Hub)\n");
        return 0;
    }
    if (argc > 2)
        return ks_cli_usage_error("logout", "requires at most 1 argument");
    _cleanup_free_ char *domain = server_domain(argc > 1 ? argv[1] : "docker.io");
    const char *key = ks_creds_server_key(domain);
    struct ks_error *e = NULL;
    int r = ks_creds_erase(domain, &e);
    if (r == -ENOENT) {
        ks_error_free(e);
        printf("Not logged in to %s\n", key);
        return 0;
    }
    if (r < 0)
        return ks_cli_fail(e, 1);
    printf("Removing login credentials for %s\n", key);
    return 0;
}

/* --- search --- */

struct search_filter {
    int64_t stars;
    int official, automated; /* -1: any */
};

static int parse_search_filter(struct search_filter *f, const char *s)
{
    const char *eq = strchr(s, '=');
    if (eq == NULL)
        return -1;
    size_t n = (size_t)(eq - s);
    const char *v = eq + 1;
    if (n == 5 && strncmp(s, "stars", 5) == 0) {
        char *end;
        f->stars = strtoll(v, &end, 10);
        return *end || *v == '\0' ? -1 : 0;
    }
    int b = strcmp(v, "true") == 0 ? 1 : strcmp(v, "false") == 0 ? 0 : -1;
    if (b < 0)
        return -1;
    if (n == 11 && strncmp(s, "is-official", 11) == 0)
        f->official = b;
    else if (n == 12 && strncmp(s, "is-automated", 12) == 0)
        f->automated = b;
    else
        return -1;
    return 0;
}

static json_object *search_row(const struct ks_search_result *r, bool no_trunc)
{
    json_object *o = json_object_new_object();
    char desc[64];
    const char *d = r->description;
    if (!no_trunc && strlen(d) > 45) {
        snprintf(desc, sizeof(desc), "%.42s...", d);
        d = desc;
    }
    json_object_object_add(o, "Name", json_object_new_string(r->name));
    json_object_object_add(o, "Description", json_object_new_string(d));
    json_object_object_add(o, "StarCount", json_object_new_int64(r->stars));
    json_object_object_add(o, "IsOfficial", json_object_new_boolean(r->official));
    json_object_object_add(o, "IsAutomated", json_object_new_boolean(r->automated));
    return o;
}

static void print_search_table(struct ks_search_result *v, size_t n, bool no_trunc)
{
    struct ks_table t = {0};
    ks_table_add_line(&t, "NAME\tDESCRIPTION\tSTARS\tOFFICIAL\tAUTOMATED");
    for (size_t i = 0; i < n; i++) {
        const char *d = v[i].description;
        char desc[64];
        if (!no_trunc && strlen(d) > 45) {
            snprintf(desc, sizeof(desc), "%.42s...", d);
            d = desc;
        }
        _cleanup_free_ char *line = NULL;
        if (asprintf(&line, "%s\t%s\t%" PRId64 "\t%s\t%s", v[i].name, d, v[i].stars,
                     v[i].official ? "[OK]" : "", v[i].automated ? "[OK]" : "") >= 0)
            ks_table_add_line(&t, line);
    }
    ks_table_print(stdout, &t);
    ks_table_free(&t);
}

static int print_search_format(const char *format, struct ks_search_result *v, size_t m,
                               bool no_trunc)
{
    int st = 0;
    _cleanup_free_ json_object **rows = calloc(m + 1, sizeof(*rows));
    _cleanup_json_ json_object *header = json_object_new_object();
    static const char *const h[][2] = {{"Name", "NAME"},
                                       {"Description", "DESCRIPTION"},
                                       {"StarCount", "STARS"},
                                       {"IsOfficial", "OFFICIAL"},
                                       {"IsAutomated", "AUTOMATED"}};
    for (size_t i = 0; i < KS_ELEMENTSOF(h); i++)
        json_object_object_add(header, h[i][0], json_object_new_string(h[i][1]));
    for (size_t i = 0; rows && i < m; i++)
        rows[i] = search_row(&v[i], no_trunc);
    if (rows == NULL || ks_fmt_rows(format, header, rows, m) < 0) {
        fprintf(stderr, "Error: invalid format `%s`\n", format);
        st = 1;
    }
    for (size_t i = 0; rows && i < m; i++)
        json_object_put(rows[i]);
    return st;
}

int ks_cli_search(int argc, char **argv)
{
    static const struct option opts[] = {
        {"limit", required_argument, NULL, 'l'}, {"filter", required_argument, NULL, 'f'},
        {"no-trunc", no_argument, NULL, 'n'},    {"format", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},        {0},
    };
    struct search_filter f = {.official = -1, .automated = -1};
    long limit = 25;
    bool no_trunc = false;
    const char *format = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
        if (c == 'l') {
            char *end;
            limit = strtol(optarg, &end, 10);
            if (*end || limit < 1 || limit > 100) {
                fprintf(stderr, "Error: limit %s is outside the range of [1, 100]\n", optarg);
                return 1;
            }
        } else if (c == 'f') {
            if (parse_search_filter(&f, optarg) < 0) {
                fprintf(stderr, "Error: invalid filter `%s`\n", optarg);
                return 1;
            }
        } else if (c == 'n') {
            no_trunc = true;
        } else if (c == 'F') {
            format = optarg;
        } else if (c == 'h') {
            printf("Usage: kiste search [OPTIONS] TERM\n\n"
                   "Search registries for images\n\n"
                   "Options:\n"
                   "  -f, --filter filter   Filter output based on conditions provided\n"
                   "      --format string   Pretty-print search using a Go template\n"
                   "      --limit int       Max number of search results (default 25)\n"
                   "      --no-trunc        Don't truncate output\n");
            return 0;
        } else
            return 1;
    }
    if (argc - optind != 1)
        return ks_cli_usage_error("search", "requires exactly 1 argument");
    struct ks_error *e = NULL;
    struct ks_search_result *v = NULL;
    size_t n = 0;
    if (ks_registry_search(argv[optind], getenv("KISTE_ROOT"), (size_t)limit, &v, &n, &e) < 0)
        return ks_cli_fail(e, 1);
    /* Filters apply to what came back, as Docker's client applies them. */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        bool keep = v[i].stars >= f.stars && (f.official < 0 || v[i].official == f.official) &&
                    (f.automated < 0 || v[i].automated == f.automated);
        if (keep)
            v[m++] = v[i];
        else {
            free(v[i].name);
            free(v[i].description);
        }
    }
    int st = 0;
    if (format)
        st = print_search_format(format, v, m, no_trunc);
    else
        print_search_table(v, m, no_trunc);
    ks_search_results_free(v, m);
    return st;
}
