/* libFuzzer target: Dockerfiles come from build contexts anyone can hand over. Parsing must
 * survive any input and fail with a message; what parses must dump, and every argument must
 * go through the word expansion (with each lexer setting) without crashing. The same input
 * is read as a .dockerignore file too. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "build/dockerfile.h"
#include "build/dockerignore.h"
#include "build/instructions.h"
#include "build/shell_words.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *env[] = {"PWD=/home", "EMPTY=", "FILE=archive.tar.gz", "SP=a  b ", NULL};

static void expand(const char *word, unsigned mode)
{
    struct ks_shell_lexer lx = {
        .escape = mode & 1 ? '`' : '\\',
        .raw_quotes = mode & 2,
        .raw_escapes = mode & 4,
        .skip_unset = mode & 8,
    };
    _cleanup_error_ struct ks_error *e1 = NULL, *e2 = NULL;
    _cleanup_free_ char *w = NULL;
    _cleanup_strv_ char **words = NULL;
    int r1 = ks_shell_expand_word(&lx, word, ks_shell_lookup_envv, env, &w, &e1);
    int r2 = ks_shell_expand_words(&lx, word, ks_shell_lookup_envv, env, &words, &e2);
    if ((r1 < 0 && (e1 == NULL || e1->msg == NULL)) || (r2 < 0 && (e2 == NULL || !e2->msg)))
        abort();
    if ((r1 < 0) != (r2 < 0))
        abort(); /* one lexer, two views: they fail together */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_dockerfile_ struct ks_dockerfile *df = NULL;
    _cleanup_error_ struct ks_error *err = NULL;
    if (ks_dockerfile_parse((const char *)data, size, &df, &err) < 0) {
        if (err == NULL || err->msg == NULL || strstr(err->msg, "line") == NULL)
            abort();
    } else {
        _cleanup_free_ char *dump = ks_dockerfile_dump(df);
        if (dump == NULL)
            abort();
        struct ks_df_stages st = {0};
        _cleanup_error_ struct ks_error *cerr = NULL;
        if (ks_df_check(df, &st, &cerr) == 0) {
            if (st.n == 0 || st.v[st.n - 1].end != df->n_nodes)
                abort();
            ks_df_stages_clear(&st);
        } else if (cerr == NULL || strstr(cerr->msg, "line") == NULL) {
            abort();
        }
        for (size_t i = 0; i < df->n_nodes; i++) {
            for (const struct ks_df_node *n = &df->nodes[i]; n; n = n->sub) {
                for (size_t a = 0; a < n->n_args; a++)
                    expand(n->args[a], (unsigned)(i + a));
                for (size_t h = 0; h < n->n_heredocs; h++) {
                    _cleanup_free_ char *c = ks_df_heredoc_chomp(n->heredocs[h].content);
                    if (c == NULL)
                        abort();
                }
            }
        }
    }
    /* the input as a .dockerignore, matched against its own lines as paths */
    _cleanup_(ks_dockerignore_free_p) struct ks_dockerignore *di = NULL;
    _cleanup_error_ struct ks_error *ierr = NULL;
    if (ks_dockerignore_parse((const char *)data, size, &di, &ierr) == 0) {
        _cleanup_free_ char *copy = strndup((const char *)data, size < 1024 ? size : 1024);
        char *save = NULL;
        for (char *l = copy ? strtok_r(copy, "\n", &save) : NULL; l;
             l = strtok_r(NULL, "\n", &save)) {
            (void)ks_dockerignore_excluded(di, l);
            (void)ks_dockerignore_walk_excluded_dir(di, l);
        }
    } else if (ierr == NULL || ierr->msg == NULL) {
        abort();
    }
    /* the input itself as one word */
    if (size > 0 && size < 4096) {
        _cleanup_free_ char *word = strndup((const char *)data + 1, size - 1);
        if (word)
            expand(word, data[0]);
    }
    return 0;
}
