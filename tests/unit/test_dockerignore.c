/* .dockerignore matching: cases from Docker's documentation of the file (the examples of
 * "*\/temp*", "**", "!" exceptions and their order) and of its pattern cleaning; then a build
 * context walked and hashed on a real directory tree. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "base/fs.h"
#include "build/context.h"
#include "build/dockerignore.h"
#include "tap.h"

struct match_case {
    const char *path;
    bool excluded;
};

static void check(const char *file, const struct match_case *cases, size_t n)
{
    _cleanup_(ks_dockerignore_free_p) struct ks_dockerignore *di = NULL;
    _cleanup_error_ struct ks_error *e = NULL;
    char shown[256];
    snprintf(shown, sizeof(shown), "%s", file);
    for (char *c = shown; *c; c++)
        *c = *c == '\n' ? '|' : *c;
    if (!tap_ok(ks_dockerignore_parse(file, strlen(file), &di, &e) == 0, "parses: %s", shown)) {
        tap_diag("  %s", e->msg);
        return;
    }
    for (size_t i = 0; i < n; i++)
        tap_ok(ks_dockerignore_excluded(di, cases[i].path) == cases[i].excluded, "  %s is %s",
               cases[i].path, cases[i].excluded ? "excluded" : "included");
}

#define CHECK(file, ...)                                                                           \
    do {                                                                                           \
        static const struct match_case c[] = {__VA_ARGS__};                                        \
        check(file, c, sizeof(c) / sizeof(c[0]));                                                  \
    } while (0)

static int collect(void *ud, const char *path, int parent_fd, const char *name,
                   const struct stat *st, struct ks_error **err)
{
    char *buf = ud;
    (void)parent_fd, (void)name, (void)st, (void)err;
    snprintf(buf + strlen(buf), 1024 - strlen(buf), "%s%s", buf[0] ? "," : "", path);
    return 0;
}

static void put(int dirfd, const char *name, const char *content)
{
    _cleanup_close_ int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0 && write(fd, content, strlen(content)) < 0)
        tap_diag("write %s failed", name);
}

static void digest(int dirfd, const char *sub, const struct ks_dockerignore *di, char *out)
{
    if (ks_context_digest(dirfd, sub, di, out, NULL) < 0)
        strcpy(out, "error");
}

static void test_context(void)
{
    char tmpl[] = "/tmp/kiste-context-XXXXXX";
    if (!tap_ok(mkdtemp(tmpl) != NULL, "temporary context"))
        return;
    _cleanup_close_ int root = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    mkdirat(root, "b", 0755);
    mkdirat(root, "node_modules", 0755);
    put(root, "a.txt", "hello");
    put(root, "b/keep", "k");
    put(root, "b/drop", "d");
    put(root, "node_modules/x", "x");
    put(root, "x.log", "log");
    if (symlinkat("a.txt", root, "c") < 0)
        tap_diag("symlink failed");
    const char *ign = "b\n!b/keep\nnode_modules\n*.log\n";
    put(root, ".dockerignore", ign);
    _cleanup_(ks_dockerignore_free_p) struct ks_dockerignore *di = NULL;
    ks_dockerignore_parse(ign, strlen(ign), &di, NULL);
    char seen[1024] = "";
    tap_ok(ks_context_walk(root, "", di, collect, seen, NULL) == 0, "context walks");
    TAP_EQ_STR(seen, ".dockerignore,a.txt,b/keep,c", "excluded entries left out, exception kept");
    seen[0] = '\0';
    ks_context_walk(root, "", NULL, collect, seen, NULL);
    TAP_EQ_STR(seen, ".dockerignore,a.txt,b,b/drop,b/keep,c,node_modules,node_modules/x,x.log",
               "everything without a .dockerignore, in name order");
    seen[0] = '\0';
    ks_context_walk(root, "./b/", NULL, collect, seen, NULL);
    TAP_EQ_STR(seen, "b,b/drop,b/keep", "a sub-directory walk");
    tap_ok(ks_context_walk(root, "../etc", NULL, collect, seen, NULL) < 0,
           "a path outside the context is refused");
    /* symbolic links on the way are resolved inside the context, never out of it */
    tap_ok(symlinkat("/etc", root, "esc") == 0 && symlinkat("/", root, "top") == 0,
           "links out of the context");
    tap_ok(ks_context_walk(root, "esc/passwd", NULL, collect, seen, NULL) < 0,
           "a link to /etc does not reach the host's /etc");
    seen[0] = '\0';
    tap_ok(ks_context_walk(root, "top/b/keep", NULL, collect, seen, NULL) == 0, "link to /");
    TAP_EQ_STR(seen, "top/b/keep", "a link to / is the context's root");
    unlinkat(root, "esc", 0);
    unlinkat(root, "top", 0);

    char d1[KS_SHA256_DIGEST_LEN], d2[KS_SHA256_DIGEST_LEN], d3[KS_SHA256_DIGEST_LEN];
    digest(root, "", di, d1);
    tap_ok(strncmp(d1, "sha256:", 7) == 0, "digest %s", d1);
    struct timespec times[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};
    utimensat(root, "a.txt", times, 0);
    digest(root, "", di, d2);
    TAP_EQ_STR(d2, d1, "modification times do not count");
    put(root, "x.log", "other log");
    put(root, "b/drop", "other");
    digest(root, "", di, d2);
    TAP_EQ_STR(d2, d1, "excluded files do not count");
    put(root, "a.txt", "hellO");
    digest(root, "", di, d2);
    tap_ok(strcmp(d2, d1) != 0, "content counts");
    tap_ok(fchmodat(root, "a.txt", 0600, 0) == 0, "chmod");
    digest(root, "", di, d3);
    tap_ok(strcmp(d3, d2) != 0, "permissions count");
    digest(root, "b", di, d1);
    put(root, "a.txt", "changed again");
    digest(root, "b", di, d2);
    TAP_EQ_STR(d2, d1, "a sub-tree digest ignores the rest");
    ks_rm_rf_at(AT_FDCWD, tmpl, NULL);
}

int main(void)
{
    tap_plan_auto();
    /* the documentation's first example */
    CHECK("# comment\n*/temp*\n*/*/temp*\ntemp?\n", {"somedir/temporary.txt", true},
          {"somedir/temp", true}, {"somedir/subdir/temporary.txt", true}, {"tempa", true},
          {"tempb", true}, {"temp", false}, {"tempab", false}, {"temporary.txt", false},
          {"a/b/c/temp", false}, {"# comment", false});
    /* ** matches any number of directories, zero included */
    CHECK("**/*.go\n", {"main.go", true}, {"a/b/c/x.go", true}, {"x.gox", false}, {"a/go", false});
    CHECK("a/**/b\n", {"a/b", true}, {"a/x/b", true}, {"a/x/y/b", true}, {"a/xb", false},
          {"b", false});
    CHECK("dir/**\n", {"dir/x", true}, {"dir/x/y", true}, {"dir", false}, {"dirx/y", false});
    CHECK("**\n", {"anything", true}, {"a/b", true});
    /* exceptions and their order: the last match wins */
    CHECK("*.md\n!README.md\n", {"a.md", true}, {"README.md", false}, {"sub/a.md", false});
    CHECK("*.md\n!README*.md\nREADME-secret.md\n", {"x.md", true}, {"README-a.md", false},
          {"README-secret.md", true});
    CHECK("*.md\nREADME-secret.md\n!README*.md\n", {"x.md", true}, {"README-secret.md", false},
          {"README.md", false});
    /* a directory excludes what is below it; an exception inside re-includes */
    CHECK("build\n!build/keep\n", {"build", true}, {"build/a", true}, {"build/keep", false},
          {"build/keep/deep", false}, {"builder", false});
    /* cleaning: leading '/', "./", "a/../", trailing '/', blanks around */
    CHECK("/abs\n./dot\nx/../up\nslash/\n   spaced   \n! neg\n", {"abs", true}, {"dot", true},
          {"up", true}, {"x", false}, {"slash", true}, {"slash/f", true}, {"spaced", true},
          {"neg", false});
    /* ?, classes and escapes */
    CHECK("?.txt\n[a-c].log\n[^x]y\nlit\\*\n", {"a.txt", true}, {"ab.txt", false}, {"/.txt", false},
          {"b.log", true}, {"d.log", false}, {"ay", true}, {"xy", false}, {"lit*", true},
          {"litx", false});
    /* * does not cross '/' */
    CHECK("*.c\n", {"a.c", true}, {"d/a.c", false});
    CHECK("\xEF\xBB\xBF"
          "bom\n\n#c\n",
          {"bom", true}, {"#c", false});
    CHECK("caf\xC3\xA9?\n", {"caf\xC3\xA9x", true}, {"caf\xC3\xA9xx", false});

    /* walking into excluded directories */
    {
        _cleanup_(ks_dockerignore_free_p) struct ks_dockerignore *di = NULL;
        const char *f = "build\nnode_modules\n!build/keep\n";
        ks_dockerignore_parse(f, strlen(f), &di, NULL);
        tap_ok(di && ks_dockerignore_walk_excluded_dir(di, "build"),
               "excluded dir with an exception inside is walked");
        tap_ok(di && !ks_dockerignore_walk_excluded_dir(di, "node_modules"),
               "excluded dir without exceptions is skipped");
        char *const *p = di ? ks_dockerignore_patterns(di) : NULL;
        tap_ok(p && strcmp(p[2], "!build/keep") == 0 && p[3] == NULL, "patterns listed");
    }
    {
        _cleanup_(ks_dockerignore_free_p) struct ks_dockerignore *di = NULL;
        const char *f = "*\n!**/keep\n";
        ks_dockerignore_parse(f, strlen(f), &di, NULL);
        tap_ok(di && ks_dockerignore_walk_excluded_dir(di, "any/dir"),
               "a wildcard exception may match anywhere: walk");
        tap_ok(di && !ks_dockerignore_excluded(di, "x/y/keep"), "deep exception included");
    }
    {
        _cleanup_(ks_dockerignore_free_p) struct ks_dockerignore *di = NULL;
        _cleanup_error_ struct ks_error *e = NULL;
        tap_ok(ks_dockerignore_parse("ok\n[abc\n", 8, &di, &e) < 0 && strstr(e->msg, "line 2"),
               "unclosed [ refused with its line");
    }
    /* a pathological pattern stays linear */
    {
        char pat[600] = "", path[2100] = "";
        for (int i = 0; i < 100; i++)
            strcat(pat, "*a");
        strcat(pat, "b\n");
        memset(path, 'a', 2000);
        _cleanup_(ks_dockerignore_free_p) struct ks_dockerignore *di = NULL;
        ks_dockerignore_parse(pat, strlen(pat), &di, NULL);
        tap_ok(di && !ks_dockerignore_excluded(di, path), "no exponential backtracking");
    }
    test_context();
    return tap_done();
}
