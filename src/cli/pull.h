/* kiste's registry client commands (pull.c): pull, push, login, logout, search. Each takes the
 * arguments after the global options, argv[0] the command's name, and returns the exit
 * status. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

int ks_cli_pull(int argc, char **argv);
int ks_cli_push(int argc, char **argv);
int ks_cli_login(int argc, char **argv);
int ks_cli_logout(int argc, char **argv);
int ks_cli_search(int argc, char **argv);

/* Pulls name as `kiste pull` does, its progress written to out (run and create use stderr);
 * platform ("os/arch[/variant]") may be NULL. 0, or the error printed and 1. */
int ks_cli_pull_image(const char *name, const char *platform, bool quiet, FILE *out);
