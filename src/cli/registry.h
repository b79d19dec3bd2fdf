/* `kiste registry …` (registry.c): Kiste's own registry server and its garbage collection. */
#pragma once

int ks_cli_registry(int argc, char **argv);
