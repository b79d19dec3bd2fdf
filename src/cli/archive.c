/* kiste save / kiste load: images to and from `docker save` and OCI archives. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"
#include "format.h"
#include "lib/base/fs.h"
#include "lib/image/archive.h"
#include "lib/image/store.h"

int ks_cli_save(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *output = NULL;
    enum ks_archive_format format = KS_ARCHIVE_DOCKER;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (c == 'o') {
            output = optarg;
        } else if (c == 'F') {
            if (strcmp(optarg, "docker") == 0)
                format = KS_ARCHIVE_DOCKER;
            else if (strcmp(optarg, "oci") == 0 || strcmp(optarg, "oci-archive") == 0)
                format = KS_ARCHIVE_OCI;
            else
                return ks_cli_usage_error("save", "--format must be `docker` or `oci`");
        } else if (c == 'h') {
            printf("Usage: kiste save [OPTIONS] IMAGE [IMAGE...]\n\n"
                   "Save one or more images to a tar archive (streamed to STDOUT by default)\n\n"
                   "Options:\n"
                   "  -o, --output string   Write to a file, instead of STDOUT\n"
                   "      --format string   docker (default) or oci\n");
            return 0;
        } else {
            return 1;
        }
    }
    if (optind >= argc)
        return ks_cli_usage_error("save", "requires at least 1 argument");
    if (output == NULL && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "Error: cowardly refusing to save to a terminal. Use the -o flag or "
                        "redirect\n");
        return 1;
    }
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    if (ks_store_open(getenv("KISTE_ROOT"), &s, &e) < 0)
        return ks_cli_fail(e, 1);
    /* A file is written under a temporary name and renamed at the end, so a failed save leaves
     * no truncated archive behind. */
    _cleanup_free_ char *tmp = NULL;
    _cleanup_close_ int fd = -EBADF;
    if (output) {
        if (asprintf(&tmp, "%s.kiste-tmp-%d", output, (int)getpid()) < 0)
            return ks_cli_fail(NULL, 1);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "Error: open %s: %s\n", output, strerror(errno));
            return 1;
        }
    }
    int r = ks_archive_save(s, (const char *const *)argv + optind, format,
                            output ? fd : STDOUT_FILENO, &e);
    if (r >= 0 && output && rename(tmp, output) < 0)
        r = ks_error_set(&e, errno, "rename to `%s`", output);
    if (r < 0) {
        if (tmp)
            unlink(tmp);
        return ks_cli_fail(e, 1);
    }
    return 0;
}

int ks_cli_load(int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, NULL, 'i'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *input = NULL;
    bool quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:qh", opts, NULL)) != -1) {
        if (c == 'i') {
            input = optarg;
        } else if (c == 'q') {
            quiet = true;
        } else if (c == 'h') {
            printf("Usage: kiste load [OPTIONS]\n\n"
                   "Load an image from a tar archive or STDIN\n\n"
                   "Options:\n"
                   "  -i, --input string   Read from tar archive file, instead of STDIN\n"
                   "  -q, --quiet          Suppress the load output\n");
            return 0;
        } else {
            return 1;
        }
    }
    if (optind < argc)
        return ks_cli_usage_error("load", "accepts no arguments");
    if (input == NULL && isatty(STDIN_FILENO)) {
        fprintf(stderr, "Error: requested load from stdin, but stdin is empty\n");
        return 1;
    }
    _cleanup_close_ int fd = -EBADF;
    if (input && (fd = open(input, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "Error: open %s: %s\n", input, strerror(errno));
        return 1;
    }
    struct ks_error *e = NULL;
    _cleanup_store_ struct ks_store *s = NULL;
    if (ks_store_open(getenv("KISTE_ROOT"), &s, &e) < 0)
        return ks_cli_fail(e, 1);
    _cleanup_archive_loaded_ struct ks_archive_loaded **loaded = NULL;
    if (ks_archive_load(s, input ? fd : STDIN_FILENO, &loaded, &e) < 0)
        return ks_cli_fail(e, 1);
    (void)quiet; /* Docker's -q hides only the progress, which kiste does not show */
    for (size_t i = 0; loaded[i]; i++) {
        if (loaded[i]->tags[0] == NULL)
            printf("Loaded image ID: %s\n", loaded[i]->id);
        for (size_t j = 0; loaded[i]->tags[j]; j++)
            printf("Loaded image: %s\n", loaded[i]->tags[j]);
    }
    return 0;
}
