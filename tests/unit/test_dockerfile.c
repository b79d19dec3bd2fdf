/* The Dockerfile parser and the word expansion against BuildKit's own conformance data
 * (../shared/testdata/dockerfile-parser: every parse tree, every rejected file, every
 * expansion case), then cases of our own: heredocs, directives, line numbers, bounds. The data
 * directory comes as argv[1]; without it the test fails. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"
#include "build/dockerfile.h"
#include "build/instructions.h"
#include "build/scope.h"
#include "build/shell_words.h"
#include "tap.h"

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sub-directories of dir, sorted; NULL-terminated, owned by the caller. */
static char **list_dir(const char *dir)
{
    _cleanup_closedir_ DIR *d = opendir(dir);
    if (d == NULL)
        return NULL;
    char **v = calloc(1, sizeof(char *));
    size_t n = 0;
    for (struct dirent *de; v && (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        char **nv = realloc(v, (n + 2) * sizeof(char *));
        if (nv == NULL)
            break;
        v = nv;
        v[n++] = strdup(de->d_name);
        v[n] = NULL;
    }
    if (v)
        qsort(v, n, sizeof(char *), cmp_names);
    return v;
}

static char *read_case(const char *dir, const char *name, const char *file, size_t *len)
{
    _cleanup_free_ char *path = NULL;
    char *data = NULL;
    if (asprintf(&path, "%s/%s/%s", dir, name, file) < 0)
        return NULL;
    if (ks_read_file(path, &data, len, NULL) < 0)
        return NULL;
    return data;
}

static void test_positive(const char *root)
{
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/testfiles", root) < 0)
        return;
    _cleanup_strv_ char **cases = list_dir(dir);
    tap_ok(cases && cases[0], "%s lists cases", dir);
    int pass = 0, total = 0;
    for (size_t i = 0; cases && cases[i]; i++) {
        size_t dlen, rlen;
        _cleanup_free_ char *df = read_case(dir, cases[i], "Dockerfile", &dlen);
        _cleanup_free_ char *want = read_case(dir, cases[i], "result", &rlen);
        _cleanup_dockerfile_ struct ks_dockerfile *d = NULL;
        _cleanup_error_ struct ks_error *e = NULL;
        total++;
        if (df == NULL || want == NULL) {
            tap_ok(false, "testfiles/%s: readable", cases[i]);
            continue;
        }
        if (ks_dockerfile_parse(df, dlen, &d, &e) < 0) {
            tap_ok(false, "testfiles/%s parses", cases[i]);
            tap_diag("  %s", e->msg);
            continue;
        }
        _cleanup_free_ char *dump = ks_dockerfile_dump(d);
        bool ok = dump && strcmp(dump, want) == 0;
        if (!tap_ok(ok, "testfiles/%s: dump matches result", cases[i]))
            tap_diag("  got:\n%s\n  expected:\n%s", dump ? dump : "(null)", want);
        pass += ok;
    }
    tap_diag("testfiles: %d of %d cases pass", pass, total);
}

static void test_negative(const char *root)
{
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/testfiles-negative", root) < 0)
        return;
    _cleanup_strv_ char **cases = list_dir(dir);
    tap_ok(cases && cases[0], "%s lists cases", dir);
    int pass = 0, total = 0;
    for (size_t i = 0; cases && cases[i]; i++) {
        size_t dlen;
        _cleanup_free_ char *df = read_case(dir, cases[i], "Dockerfile", &dlen);
        _cleanup_dockerfile_ struct ks_dockerfile *d = NULL;
        _cleanup_error_ struct ks_error *e = NULL;
        total++;
        bool ok = df && ks_dockerfile_parse(df, dlen, &d, &e) < 0 && e && strstr(e->msg, "line ");
        tap_ok(ok, "testfiles-negative/%s is rejected (%s)", cases[i], e ? e->msg : "accepted");
        pass += ok;
    }
    tap_diag("testfiles-negative: %d of %d cases rejected", pass, total);
}

static char *trim(char *s, const char *set, bool left, bool right)
{
    if (left)
        s += strspn(s, set);
    size_t n = strlen(s);
    while (right && n > 0 && strchr(set, s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* BuildKit's envVarTest: platform|word|expected, with PWD, SHELL, KOREAN and NULL set. */
static void test_env_var(const char *root)
{
    _cleanup_free_ char *path = NULL, *data = NULL;
    if (asprintf(&path, "%s/shell/envVarTest", root) < 0)
        return;
    if (!tap_ok(ks_read_file(path, &data, NULL, NULL) == 0, "%s is readable", path))
        return;
    char *env[] = {"PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL=", NULL};
    struct ks_shell_lexer lx = {.escape = '\\'};
    int pass = 0, total = 0, lineno = 0;
    for (char *save = NULL, *line = strtok_r(data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (line[0] == '#')
            continue;
        line = trim(line, " \t", true, false);
        if (line[0] == '\0')
            continue;
        char *p1 = strchr(line, '|'), *p2 = p1 ? strchr(p1 + 1, '|') : NULL;
        if (p2 == NULL || strchr(p2 + 1, '|')) {
            tap_ok(false, "envVarTest line %d has three fields", lineno);
            continue;
        }
        *p1 = *p2 = '\0';
        const char *plat = trim(line, " \t\r\v\f", true, true);
        char *src = trim(p1 + 1, " \t\r\v\f", true, true);
        char *want = trim(p2 + 1, " \t\r\v\f", true, true);
        if (strcmp(plat, "W") == 0)
            continue; /* Windows only */
        _cleanup_free_ char *got = NULL;
        _cleanup_error_ struct ks_error *e = NULL;
        int r = ks_shell_expand_word(&lx, src, ks_shell_lookup_envv, env, &got, &e);
        bool ok = strcmp(want, "error") == 0 ? r < 0 : r == 0 && strcmp(got, want) == 0;
        total++;
        pass += ok;
        if (!tap_ok(ok, "envVarTest %s -> %s", src, want))
            tap_diag("  got %s", r < 0 ? e->msg : got);
    }
    tap_diag("envVarTest: %d of %d cases pass", pass, total);
}

/* BuildKit's wordsTest: "ENV k=v" lines add to the environment, "word | w1,w2" expect words. */
static void test_words(const char *root)
{
    _cleanup_free_ char *path = NULL, *data = NULL;
    if (asprintf(&path, "%s/shell/wordsTest", root) < 0)
        return;
    if (!tap_ok(ks_read_file(path, &data, NULL, NULL) == 0, "%s is readable", path))
        return;
    char *env[64] = {0};
    size_t n_env = 0;
    struct ks_shell_lexer lx = {.escape = '\\'};
    int pass = 0, total = 0;
    for (char *save = NULL, *line = strtok_r(data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#')
            continue;
        if (strncmp(line, "ENV ", 4) == 0) {
            if (n_env + 1 < KS_ELEMENTSOF(env))
                env[n_env++] = trim(line + 3, " ", true, false);
            continue;
        }
        char *bar = strchr(line, '|');
        if (bar == NULL || strchr(bar + 1, '|')) {
            tap_ok(false, "wordsTest line has two fields: %s", line);
            continue;
        }
        *bar = '\0';
        char *src = trim(line, " \t\r\v\f", true, true);
        char *want = trim(bar + 1, " ", true, false);
        _cleanup_strv_ char **words = NULL;
        _cleanup_error_ struct ks_error *e = NULL;
        char got[512] = "";
        if (ks_shell_expand_words(&lx, src, ks_shell_lookup_envv, env, &words, &e) < 0) {
            snprintf(got, sizeof(got), "error");
        } else {
            for (size_t i = 0; words[i]; i++)
                snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? "," : "",
                         words[i]);
        }
        bool ok = strcmp(got, want) == 0;
        total++;
        pass += ok;
        if (!tap_ok(ok, "wordsTest %s -> %s", src, want))
            tap_diag("  got %s", got);
    }
    tap_diag("wordsTest: %d of %d cases pass", pass, total);
}

static struct ks_dockerfile *parse_str(const char *text, char **ret_err)
{
    struct ks_dockerfile *d = NULL;
    _cleanup_error_ struct ks_error *e = NULL;
    if (ks_dockerfile_parse(text, strlen(text), &d, &e) < 0) {
        if (ret_err)
            *ret_err = strdup(e->msg);
        return NULL;
    }
    return d;
}

static void expect_dump(const char *text, const char *want, const char *what)
{
    _cleanup_free_ char *msg = NULL;
    _cleanup_dockerfile_ struct ks_dockerfile *d = parse_str(text, &msg);
    _cleanup_free_ char *dump = d ? ks_dockerfile_dump(d) : NULL;
    if (!tap_ok(dump && strcmp(dump, want) == 0, "%s", what))
        tap_diag("  got %s", dump ? dump : msg);
}

static void expect_error(const char *text, const char *part, const char *what)
{
    _cleanup_free_ char *msg = NULL;
    _cleanup_dockerfile_ struct ks_dockerfile *d = parse_str(text, &msg);
    if (!tap_ok(d == NULL && msg && strstr(msg, part), "%s", what))
        tap_diag("  got %s", msg ? msg : "success");
}

static void test_heredocs(void)
{
    const char *text = "# syntax=docker/dockerfile:1\n"
                       "# check=skip=all\n"
                       "FROM busybox AS base\n"
                       "RUN <<EOF cat >/x; 3<<-\"END\" sh\n"
                       "hello $HOME\n"
                       "EOF\n"
                       "\techo tab\n"
                       "\tEND\n"
                       "COPY --chmod=644 <<A <<'B' /dst/\n"
                       "a\n"
                       "A\n"
                       "B\n"
                       "ONBUILD RUN <<X\n"
                       "inside\n"
                       "X\n"
                       "RUN echo \"<<notdoc\"\n"
                       "RUN [\"sh\", \"<<EOF\"]\n";
    _cleanup_free_ char *msg = NULL;
    _cleanup_dockerfile_ struct ks_dockerfile *d = parse_str(text, &msg);
    if (!tap_ok(d != NULL, "heredoc Dockerfile parses")) {
        tap_diag("  %s", msg);
        return;
    }
    TAP_EQ_STR(d->syntax, "docker/dockerfile:1", "syntax directive");
    TAP_EQ_STR(d->check, "skip=all", "check directive");
    TAP_EQ_INT(d->n_nodes, 6, "six instructions");
    struct ks_df_node *run = &d->nodes[1];
    TAP_EQ_INT(run->n_heredocs, 2, "two heredocs on one RUN");
    if (run->n_heredocs == 2) {
        TAP_EQ_STR(run->heredocs[0].name, "EOF", "first delimiter");
        TAP_EQ_STR(run->heredocs[0].content, "hello $HOME\n", "first content");
        tap_ok(run->heredocs[0].expand && !run->heredocs[0].chomp, "unquoted: expanded");
        TAP_EQ_STR(run->heredocs[1].name, "END", "quoted delimiter without quotes");
        tap_ok(!run->heredocs[1].expand && run->heredocs[1].chomp, "quoted, <<-");
        TAP_EQ_INT(run->heredocs[1].fd, 3, "file descriptor");
        _cleanup_free_ char *c = ks_df_heredoc_chomp(run->heredocs[1].content);
        TAP_EQ_STR(c, "echo tab\n", "tabs stripped for <<-");
    }
    TAP_EQ_INT(run->start_line, 4, "RUN starts on line 4");
    TAP_EQ_INT(run->end_line, 8, "RUN ends with its last heredoc");
    struct ks_df_node *copy = &d->nodes[2];
    TAP_EQ_INT(copy->n_heredocs, 2, "COPY heredocs");
    if (copy->n_heredocs == 2) {
        TAP_EQ_STR(copy->heredocs[0].content, "a\n", "COPY first content");
        TAP_EQ_STR(copy->heredocs[1].content, "", "empty heredoc");
    }
    TAP_EQ_STR(copy->flags[0], "--chmod=644", "COPY flag");
    struct ks_df_node *ob = &d->nodes[3];
    tap_ok(ob->sub && ob->sub->instr == KS_DF_RUN && ob->n_heredocs == 1,
           "ONBUILD RUN carries its heredoc");
    TAP_EQ_INT(d->nodes[4].n_heredocs, 0, "a quoted << is no heredoc");
    TAP_EQ_INT(d->nodes[5].n_heredocs, 0, "JSON form has no heredocs");
    tap_ok(d->nodes[5].json, "JSON form marked");
    expect_error("FROM a\nRUN <<EOF\nno end\n", "line 2: unterminated heredoc",
                 "unterminated heredoc names its line");
}

static void test_syntax(void)
{
    expect_dump("# escape=`\nFROM a\nRUN echo \\\nRUN b `\n  c\n",
                "(from \"a\")\n(run \"echo \\\\\")\n(run \"b   c\")\n",
                "backtick escape: backslash is literal");
    expect_dump("FROM a\n# escape=`\nRUN b \\\n c\n", "(from \"a\")\n(run \"b  c\")\n",
                "a directive after an instruction is a comment");
    expect_dump("\xEF\xBB\xBF# escape=`\nFROM a\n", "(from \"a\")\n", "byte-order mark");
    expect_dump("FROM a\r\nRUN x \\\r\n  y\r\n", "(from \"a\")\n(run \"x   y\")\n", "CRLF lines");
    expect_dump("from a\nFoo bar\n", "(from \"a\")\n(foo \"\")\n",
                "unknown instruction kept with an empty argument");
    expect_dump("ONBUILD ONBUILD RUN x\nONBUILD\n", "(onbuild (onbuild (run \"x\")))\n(onbuild)\n",
                "nested and empty ONBUILD");
    expect_dump("CMD [\"a\", 1]x\nCMD [\"\\ud83d\\ude00\", \"\\ud800\"]\n",
                "(cmd \"[\\\"a\\\", 1]x\")\n(cmd \"\xF0\x9F\x98\x80\" \"\xEF\xBF\xBD\")\n",
                "trailing garbage is shell form; surrogates as Go decodes them");
    expect_dump("RUN --mount=type=cache,target=/c --network=none make\n",
                "(run [\"--mount=type=cache,target=/c\" \"--network=none\"] \"make\")\n",
                "RUN flags");
    expect_dump("COPY --from=\"a b\" x y\n", "(copy [\"--from=a b\"] \"x\" \"y\")\n",
                "quoted flag value");
    expect_dump("SHELL [\"/bin/sh\", \"-c\"]\nSTOPSIGNAL SIGKILL\nMAINTAINER me <m@x>\n",
                "(shell \"/bin/sh\" \"-c\")\n(stopsignal \"SIGKILL\")\n(maintainer \"me <m@x>\")\n",
                "SHELL, STOPSIGNAL, MAINTAINER");
    expect_dump("LABEL \"a b\"=c d=\"e f\"\n",
                "(label \"\\\"a b\\\"\" \"c\" \"=\" \"d\" \"\\\"e f\\\"\" \"=\")\n",
                "LABEL keeps quotes for the expansion");
    expect_dump("RUN a\x01\x7f\xff\n", "(run \"a\\x01\\x7f\\xff\")\n", "Go quoting of bytes");
    expect_dump("CMD [\"a\",]\nCMD [\"a\", {\"k\" 1}]\nCMD [\"\\x\"]\nCMD [\"a\"]  \n",
                "(cmd \"[\\\"a\\\",]\")\n(cmd \"[\\\"a\\\", {\\\"k\\\" 1}]\")\n"
                "(cmd \"[\\\"\\\\x\\\"]\")\n(cmd \"a\")\n",
                "invalid JSON falls back to the shell form");
    expect_error("CMD [\"a\", {\"k\": [1, true, null, -1.5e3]}]\n", "line 1: when using JSON",
                 "valid JSON with an object element is refused");
    expect_error("FROM a\nCMD [[\"x\"]]\n", "line 2: when using JSON array syntax",
                 "nested JSON array names its line");
    expect_error("FROM a\nENV a=b c\n", "line 2: Syntax error - can't find = in \"c\"",
                 "ENV word without =");
    expect_error("# escape=x\nFROM a\n", "invalid escape token", "bad escape directive");
    expect_error("# escape=`\n# escape=\\\nFROM a\n", "only one escape parser directive",
                 "repeated directive");
    expect_error("\n\n# c\n", "line 3: file with no instructions", "only blank lines");
    {
        _cleanup_dockerfile_ struct ks_dockerfile *d = NULL;
        _cleanup_error_ struct ks_error *e = NULL;
        tap_ok(ks_dockerfile_parse("FROM a\nRUN \0x\n", 12, &d, &e) < 0 &&
                   strstr(e->msg, "line 2: NUL byte"),
               "NUL byte refused with its line");
    }
    expect_error("ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD ONBUILD RUN x",
                 "ONBUILD nested", "ONBUILD nesting bounded");
}

static void test_bounds(void)
{
    /* a line longer than the bound, made of continuations */
    size_t n = KS_DOCKERFILE_MAX_LINE / 8 + 2, len = 0;
    char *big = malloc(n * 10 + 16);
    if (big == NULL)
        return;
    len += (size_t)sprintf(big, "RUN x");
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(big + len, "%s", "abcdefgh\\\n");
    _cleanup_free_ char *msg = NULL;
    struct ks_dockerfile *d = parse_str(big, &msg);
    tap_ok(d == NULL && msg && strstr(msg, "line longer"), "logical line bounded (%s)",
           msg ? msg : "accepted");
    ks_dockerfile_free(d);
    free(big);
    /* deep JSON: refused as JSON, kept as a shell-form string */
    char deep[20050];
    memset(deep, '[', 20040);
    memcpy(deep, "CMD ", 4);
    deep[20040] = '\0';
    _cleanup_dockerfile_ struct ks_dockerfile *dd = parse_str(deep, NULL);
    tap_ok(dd && !dd->nodes[0].json && dd->nodes[0].n_args == 1, "deep JSON nesting is text");
}

static const char *lookup_fixed(void *ud, const char *name)
{
    (void)ud;
    if (strcmp(name, "FILE") == 0)
        return "archive.tar.gz";
    if (strcmp(name, "EMPTY") == 0)
        return "";
    return NULL;
}

static void expect_word(const struct ks_shell_lexer *lx, const char *in, const char *want)
{
    _cleanup_free_ char *got = NULL;
    _cleanup_error_ struct ks_error *e = NULL;
    int r = ks_shell_expand_word(lx, in, lookup_fixed, NULL, &got, &e);
    bool ok = want ? r == 0 && strcmp(got, want) == 0 : r < 0;
    if (!tap_ok(ok, "expand %s -> %s", in, want ? want : "error"))
        tap_diag("  got %s", r < 0 ? e->msg : got);
}

static void test_expansion(void)
{
    struct ks_shell_lexer lx = {.escape = '\\'};
    expect_word(&lx, "${FILE%.gz}", "archive.tar");
    expect_word(&lx, "${FILE%%.*}", "archive");
    expect_word(&lx, "${FILE#*.}", "tar.gz");
    expect_word(&lx, "${FILE##*.}", "gz");
    expect_word(&lx, "${FILE/a/A}", "Archive.tar.gz");
    expect_word(&lx, "${FILE//a/A}", "Archive.tAr.gz");
    expect_word(&lx, "${FILE/tar/}", "archive..gz");
    expect_word(&lx, "${FILE/[a-c]r/X}", "Xchive.tar.gz");
    expect_word(&lx, "${FILE##*[!a-z]}", "gz");
    expect_word(&lx, "${FILE%\\.gz}", "archive.tar");
    expect_word(&lx, "${NOPE-def}", "def");
    expect_word(&lx, "${EMPTY-def}", "");
    expect_word(&lx, "${EMPTY:-def}", "def");
    expect_word(&lx, "${EMPTY+alt}", "alt");
    expect_word(&lx, "${NOPE+alt}", "");
    expect_word(&lx, "${NOPE?}", NULL);
    expect_word(&lx, "${NOPE:?custom}", NULL);
    struct ks_shell_lexer win = {.escape = '`'};
    expect_word(&win, "C:\\dir`$FILE", "C:\\dir$FILE");
    expect_word(&win, "\"a`\"b\"", "a\"b");
    struct ks_shell_lexer skip = {.escape = '\\', .skip_unset = true};
    expect_word(&skip, "$NOPE ${NOPE:-x} $FILE", "$NOPE ${NOPE:-x} archive.tar.gz");
    /* nesting is bounded */
    char deep[4096] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "${A:-");
    strcat(deep, "x");
    for (int i = 0; i < 40; i++)
        strcat(deep, "}");
    expect_word(&lx, deep, NULL);
}

static bool strv_has(char **v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

static void test_scope(void)
{
    char *bargs[] = {"V=cli", "HTTP_PROXY=http://p:3128", "no_proxy=x", "UNUSED=1", NULL};
    _cleanup_build_scope_ struct ks_build_scope *s = NULL;
    _cleanup_error_ struct ks_error *e = NULL;
    if (!tap_ok(ks_build_scope_new(bargs, "linux/arm/v7", "linux/amd64", &s, &e) == 0,
                "scope with build-args"))
        return;
    /* before FROM: global ARGs and the platform ARGs */
    ks_build_scope_arg(s, "V", "default", NULL);
    ks_build_scope_arg(s, "BASE", "busybox", NULL);
    TAP_EQ_STR(ks_build_scope_lookup(s, "V"), "cli", "build-arg overrides a global default");
    TAP_EQ_STR(ks_build_scope_lookup(s, "BASE"), "busybox", "global default");
    TAP_EQ_STR(ks_build_scope_lookup(s, "TARGETARCH"), "arm", "TARGETARCH");
    TAP_EQ_STR(ks_build_scope_lookup(s, "TARGETVARIANT"), "v7", "TARGETVARIANT");
    TAP_EQ_STR(ks_build_scope_lookup(s, "BUILDPLATFORM"), "linux/amd64", "BUILDPLATFORM");
    /* a stage sees globals only when it declares them again */
    char *image_env[] = {"PATH=/bin", "BASE=from-image", NULL};
    ks_build_scope_stage(s, image_env, NULL);
    tap_ok(ks_build_scope_lookup(s, "V") == NULL, "global ARG not visible in a stage");
    tap_ok(ks_build_scope_lookup(s, "TARGETOS") == NULL, "platform ARG not visible in a stage");
    ks_build_scope_arg(s, "V", NULL, NULL);
    ks_build_scope_arg(s, "TARGETOS", NULL, NULL);
    ks_build_scope_arg(s, "BASE", NULL, NULL);
    ks_build_scope_arg(s, "LOCAL", NULL, NULL);
    TAP_EQ_STR(ks_build_scope_lookup(s, "V"), "cli", "redeclared ARG takes the build-arg");
    TAP_EQ_STR(ks_build_scope_lookup(s, "TARGETOS"), "linux", "redeclared platform ARG");
    TAP_EQ_STR(ks_build_scope_lookup(s, "BASE"), "from-image", "ENV wins over ARG");
    tap_ok(ks_build_scope_lookup(s, "LOCAL") == NULL, "ARG without value is unset");
    ks_build_scope_env(s, "V", "env", NULL);
    TAP_EQ_STR(ks_build_scope_lookup(s, "V"), "env", "ENV instruction wins over ARG");
    _cleanup_strv_ char **run = ks_build_scope_run_env(s);
    tap_ok(strv_has(run, "PATH=/bin") && strv_has(run, "V=env") &&
               strv_has(run, "TARGETOS=linux") && strv_has(run, "HTTP_PROXY=http://p:3128") &&
               strv_has(run, "no_proxy=x") && !strv_has(run, "LOCAL") && !strv_has(run, "UNUSED=1"),
           "RUN environment: ENV, ARGs, proxies");
    _cleanup_strv_ char **envl = ks_build_scope_env_list(s);
    tap_ok(strv_has(envl, "V=env") && !strv_has(envl, "TARGETOS=linux"),
           "image Env holds ENV only");
    _cleanup_strv_ char **unused = ks_build_scope_unused(s);
    tap_ok(unused && strv_has(unused, "UNUSED") && !unused[1], "unused build-arg reported");
    /* a new stage forgets the previous one */
    ks_build_scope_stage(s, NULL, NULL);
    tap_ok(ks_build_scope_lookup(s, "PATH") == NULL && ks_build_scope_lookup(s, "V") == NULL,
           "next stage starts clean");
    struct ks_shell_lexer lx = {.escape = '\\'};
    ks_build_scope_arg(s, "V", NULL, NULL);
    _cleanup_free_ char *w = NULL;
    tap_ok(ks_shell_expand_word(&lx, "img:${V}", ks_build_scope_lookup, s, &w, NULL) == 0 &&
               strcmp(w, "img:cli") == 0,
           "scope as the expansion's lookup");
    tap_ok(ks_build_arg_is_proxy("https_proxy") && !ks_build_arg_is_proxy("Https_Proxy"),
           "proxy ARG names");
    _cleanup_build_scope_ struct ks_build_scope *bad = NULL;
    tap_ok(ks_build_scope_new((char *[]){"=x", NULL}, NULL, NULL, &bad, NULL) < 0,
           "build-arg without a name refused");
}

static void expect_check(const char *text, const char *part, const char *what)
{
    _cleanup_free_ char *msg = NULL;
    _cleanup_dockerfile_ struct ks_dockerfile *d = parse_str(text, &msg);
    struct ks_df_stages st = {0};
    _cleanup_error_ struct ks_error *e = NULL;
    int r = d ? ks_df_check(d, &st, &e) : -1;
    bool ok = part ? r < 0 && e && strstr(e->msg, part) : r == 0;
    if (!tap_ok(ok, "check: %s", what))
        tap_diag("  got %s", e ? e->msg : msg ? msg : "success");
    ks_df_stages_clear(&st);
}

static void test_check(void)
{
    const char *text = "ARG BASE=busybox\n"
                       "FROM --platform=$BUILDPLATFORM ${BASE} AS Build\n"
                       "RUN --mount=type=cache,target=/c --network=none make\n"
                       "COPY --from=build --chown=1:1 --link a /b\n"
                       "HEALTHCHECK --interval=1m30s --retries=3 CMD true\n"
                       "ONBUILD RUN x\n"
                       "FROM scratch\n"
                       "COPY <<EOF /x\n"
                       "y\n"
                       "EOF\n";
    _cleanup_dockerfile_ struct ks_dockerfile *d = parse_str(text, NULL);
    struct ks_df_stages st = {0};
    _cleanup_error_ struct ks_error *e = NULL;
    if (tap_ok(d && ks_df_check(d, &st, &e) == 0, "multi-stage Dockerfile checks")) {
        TAP_EQ_INT(st.n, 2, "two stages");
        TAP_EQ_INT(st.n_global, 1, "one global ARG");
        TAP_EQ_STR(st.v[0].name, "build", "stage name lower-cased");
        TAP_EQ_STR(st.v[0].base, "${BASE}", "base kept for expansion");
        TAP_EQ_STR(st.v[0].platform, "$BUILDPLATFORM", "--platform");
        tap_ok(st.v[0].from == 1 && st.v[0].end == 6 && st.v[1].from == 6 && st.v[1].end == 8,
               "stage node ranges");
        tap_ok(st.v[1].name == NULL, "unnamed stage");
        TAP_EQ_STR(ks_df_flag(&d->nodes[3], "link"), "", "bare flag");
        TAP_EQ_STR(ks_df_flag(&d->nodes[3], "chown"), "1:1", "flag value");
    } else {
        tap_diag("  %s", e ? e->msg : "parse failed");
    }
    ks_df_stages_clear(&st);
    expect_check("RUN x\n", "line 1: no build stage", "instruction before FROM");
    /* found by fuzz_dockerfile: the error named no line */
    expect_check("ARG fob_`Vthe ge wef\n", "line 1: the Dockerfile has no FROM", "ARG only");
    expect_check("FROM a\nFOO x\n", "line 2: unknown instruction: FOO", "unknown instruction");
    expect_check("FROM a\nCOPY --form=x a b\n", "unknown flag: --form", "unknown flag");
    expect_check("FROM a\nWORKDIR\n", "WORKDIR requires exactly one argument", "WORKDIR");
    expect_check("FROM a b\n", "one or three arguments", "FROM with two arguments");
    expect_check("FROM a TO b\n", "must be \"AS\"", "FROM without AS");
    expect_check("FROM a AS 1x\n", "invalid name for build stage", "bad stage name");
    expect_check("FROM a AS x\nFROM b AS X\n", "duplicate stage name", "duplicate stage");
    expect_check("FROM a\nCOPY onlyone\n", "at least two arguments", "COPY without dest");
    expect_check("FROM a\nSHELL sh -c\n", "JSON form", "SHELL shell form");
    expect_check("FROM a\nONBUILD ONBUILD RUN x\n", "Chaining ONBUILD", "ONBUILD ONBUILD");
    expect_check("FROM a\nONBUILD FROM b\n", "isn't allowed as an ONBUILD trigger", "ONBUILD FROM");
    expect_check("FROM a\nHEALTHCHECK FOO x\n", "Unknown type", "HEALTHCHECK type");
    expect_check("FROM a\nHEALTHCHECK --interval=1us CMD x\n", "less than 1ms",
                 "HEALTHCHECK interval");
    expect_check("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "negative", "HEALTHCHECK retries");
    expect_check("FROM a\nHEALTHCHECK NONE\n", NULL, "HEALTHCHECK NONE");
    expect_check("FROM a\nVOLUME [\"\"]\n", "empty string", "empty VOLUME");
    expect_check("FROM a\nENV\n", "ENV requires at least one argument", "empty ENV");
    int64_t ns = 0;
    tap_ok(ks_df_parse_duration("1h2m3.5s", &ns) == 0 && ns == 3723500000000LL, "Go duration");
    tap_ok(ks_df_parse_duration("5", &ns) < 0 && ks_df_parse_duration("s", &ns) < 0,
           "durations need a number and a unit");
}

int main(int argc, char **argv)
{
    tap_plan_auto();
    test_heredocs();
    test_syntax();
    test_bounds();
    test_expansion();
    test_scope();
    test_check();
    const char *root = argc > 1 ? argv[1] : getenv("KS_DOCKERFILE_TESTDATA");
    _cleanup_closedir_ DIR *d = root ? opendir(root) : NULL;
    if (!tap_ok(d != NULL, "conformance data at %s", root ? root : "(not given)")) {
        tap_diag("BuildKit's parser data is missing: put shared/ beside the checkout");
        return tap_done();
    }
    test_positive(root);
    test_negative(root);
    test_env_var(root);
    test_words(root);
    return tap_done();
}
