/* kiste's image commands (image.c): each takes the arguments after the global options, with
 * argv[0] the command's name, and returns the exit status. */
#pragma once

int ks_cli_images(int argc, char **argv);
int ks_cli_image(int argc, char **argv);
int ks_cli_import(int argc, char **argv);
int ks_cli_tag(int argc, char **argv);
int ks_cli_rmi(int argc, char **argv);
int ks_cli_history(int argc, char **argv);
