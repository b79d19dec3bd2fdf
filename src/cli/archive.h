/* kiste's archive commands (archive.c): `save` and `load`, also reachable as `image save` and
 * `image load`. Each takes the arguments after the global options, argv[0] the command's name,
 * and returns the exit status. */
#pragma once

int ks_cli_save(int argc, char **argv);
int ks_cli_load(int argc, char **argv);
