/* kiste's Dockerfile commands (build.c): each takes the arguments after the global options,
 * with argv[0] the command's name, and returns the exit status. */
#pragma once

/* `kiste dockerfile parse FILE|-`: the parse tree in BuildKit's dump format. */
int ks_cli_dockerfile(int argc, char **argv);

/* `kiste build [-t NAME]... [-f FILE] [--build-arg K=V]... [--target STAGE] [--no-cache]
 * [--network MODE] [-q] DIR`. */
int ks_cli_build(int argc, char **argv);

/* `kiste builder prune`: empties the build cache. */
int ks_cli_builder(int argc, char **argv);
