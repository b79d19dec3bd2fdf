/* `kiste system …` (system.c) and `kiste info` (main.c). */
#pragma once

int ks_cli_system(int argc, char **argv);
int ks_cli_info(int argc, char **argv);
