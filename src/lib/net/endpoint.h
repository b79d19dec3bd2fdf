/* What a container's network attachment looks like to the parts of the engine that are not the
 * network itself: /etc/hosts and /etc/resolv.conf (etc_files), the embedded DNS resolver, inspect.
 * The network code fills these at start; the others only read them. */
#pragma once

#include <arpa/inet.h>
#include <stdbool.h>

struct ks_net_endpoint {
    char network_id[65]; /* the network's full ID */
    char network_name[256];
    bool user_defined;          /* a network made by `network create`: names resolve by DNS */
    char ipv4[INET_ADDRSTRLEN]; /* "" when none */
    int prefix4;
    char gateway4[INET_ADDRSTRLEN];
    char ipv6[INET6_ADDRSTRLEN]; /* "" when none */
    int prefix6;
    char gateway6[INET6_ADDRSTRLEN];
    char mac[18];
    char **aliases; /* NULL-terminated, owned; may be NULL */
};

/* Frees the aliases of each of the n endpoints and the array itself (accepts NULL). */
void ks_net_endpoints_free(struct ks_net_endpoint *eps, size_t n);
