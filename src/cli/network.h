/* `kiste network …` and `kiste port` (network.c). */
#pragma once

int ks_cli_network(int argc, char **argv);
/* kiste port CONTAINER [PRIVATE_PORT[/PROTO]]: the container's published ports. */
int ks_cli_network_port(int argc, char **argv);
