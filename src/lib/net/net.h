/* Container networking: bridges and veth pairs through rtnetlink (libmnl), addresses from an
 * IPAM kept in the state database, NAT and published ports in kiste's own nftables table
 * (libnftables, loaded with dlopen), and the per-network hosts files the DNS resolver reads.
 *
 * Kernel state follows the containers that use it: a network's bridge is made when the first
 * container attaches to it and deleted when the last one leaves, and the root's nftables table
 * (one per storage root: "kiste" for /var/lib/kiste, "kiste-<hash>" for others) is rewritten as
 * a whole from the database on every change, so it never holds a rule for a container that is
 * gone. Everything that changes a root's networks holds the root's network lock. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "../base/error.h"
#include "endpoint.h"

struct ks_engine;

/* --- addresses and subnets (ipam.c; pure) --- */

struct ks_net_cidr {
    uint32_t addr; /* host byte order, the network's first address once normalised */
    int prefix;    /* 0 … 32 */
};

/* "172.17.0.0/16" (a bare address is a /32). The address is kept as given; -EINVAL. */
int ks_net_cidr_parse(const char *s, struct ks_net_cidr *ret);
/* "a.b.c.d" into host byte order; -EINVAL. */
int ks_net_ip4_parse(const char *s, uint32_t *ret);
/* Host byte order into text; out has INET_ADDRSTRLEN bytes. */
void ks_net_ip4_format(uint32_t a, char *out);
uint32_t ks_net_mask(int prefix);
bool ks_net_cidr_overlap(const struct ks_net_cidr *a, const struct ks_net_cidr *b);
bool ks_net_cidr_contains(const struct ks_net_cidr *c, uint32_t a);

/* The first subnet of Docker's default pools (172.17.0.0/16 … 172.31.0.0/16, then
 * 192.168.0.0/20 … 192.168.240.0/20) that overlaps none of the n_avoid subnets (the host's
 * routes, other networks). -ENOSPC when all are taken. */
int ks_net_subnet_choose(const struct ks_net_cidr *avoid, size_t n_avoid, struct ks_net_cidr *ret);

/* The lowest free address of range (a part of subnet; NULL: the whole subnet), never the
 * subnet's network or broadcast address, the gateway, nor one of the n used. -ENOSPC. */
int ks_net_ip4_allocate(const struct ks_net_cidr *subnet, const struct ks_net_cidr *range,
                        uint32_t gateway, const uint32_t *used, size_t n, uint32_t *ret);

/* A MAC from an IPv4 address as Docker makes them: 02:42 followed by the address. out has 18. */
void ks_net_mac_from_ip4(uint32_t a, char *out);
/* Whether s is a unicast MAC "xx:xx:xx:xx:xx:xx"; its bytes to out when not NULL. */
bool ks_net_mac_parse(const char *s, unsigned char out[6]);

/* The host's IPv4 routes (main table) as destinations, for ks_net_subnet_choose. *ret owned. */
int ks_net_host_routes(struct ks_net_cidr **ret, size_t *ret_n, struct ks_error **err);

/* --- port specifications (ports.c; pure) --- */

struct ks_net_port_spec {
    char host_ip[46];              /* "" when none: every address */
    unsigned host_start, host_end; /* 0: a free port chosen at start */
    unsigned ctr_start, ctr_end;
    char proto[4]; /* "tcp", "udp" or "sctp" */
};

/* Docker's -p forms: "80", "8080:80", "127.0.0.1:8080:80", "127.0.0.1::80", "[::1]:8080:80",
 * ranges "8000-8010:80-90", and a "/udp" suffix. -EINVAL with a message. */
int ks_net_port_spec_parse(const char *s, struct ks_net_port_spec *ret, struct ks_error **err);
/* "80", "80/udp", "8000-8010/tcp" as --expose and EXPOSE give them. */
int ks_net_expose_parse(const char *s, unsigned *ret_start, unsigned *ret_end, char proto[4],
                        struct ks_error **err);
/* Adds -p spec s to HostConfig.PortBindings of hc and "PORT/PROTO" to Config.ExposedPorts of c,
 * as Docker's client does; -EINVAL with a message. */
int ks_net_port_spec_add(json_object *c, json_object *hc, const char *s, struct ks_error **err);
/* Adds --expose s to Config.ExposedPorts of c. */
int ks_net_expose_add(json_object *c, const char *s, struct ks_error **err);

/* --- nftables (nft.c) --- */

/* What the root's table is built from. */
struct ks_net_nft_net {
    const char *bridge;
    struct ks_net_cidr subnet;
    bool internal;
};
struct ks_net_nft_port {
    const char *proto;
    uint32_t host_ip; /* 0: every local address */
    unsigned host_port;
    uint32_t ctr_ip;
    unsigned ctr_port;
};

/* The nftables script that replaces the whole table `table` (family ip) with one holding
 * masquerade for the networks, DNAT for the ports (prerouting, and output for the host's own
 * connections, 127.0.0.1 included), hairpin NAT and the drop of an internal network's
 * forwarded traffic. With n == 0 the script only deletes the table. Owned by the caller. */
char *ks_net_nft_script(const char *table, const struct ks_net_nft_net *nets, size_t n,
                        const struct ks_net_nft_port *ports, size_t n_ports);
/* Runs an nftables script through libnftables; the error carries nft's message. */
int ks_net_nft_run(const char *script, struct ks_error **err);

/* --- engine: networks (network.c) --- */

struct ks_net_create_opts {
    const char *name;
    const char *driver;  /* NULL: "bridge" */
    const char *subnet;  /* NULL: chosen from the pools */
    const char *gateway; /* NULL: the subnet's first address */
    const char *ip_range;
    bool internal;
    char **labels;  /* "k=v", NULL-terminated; may be NULL */
    char **options; /* "k=v" (-o), NULL-terminated; may be NULL */
};

/* Creates a user-defined network; *ret_id (the full ID) is owned by the caller. -EEXIST when
 * the name is taken. */
int ks_net_network_create(struct ks_engine *e, const struct ks_net_create_opts *o, char **ret_id,
                          struct ks_error **err);
/* Resolves a network's name, full ID or unique ID prefix into its full ID (owned by the
 * caller), creating the predefined bridge, host and none networks on first use. -ENOENT. */
int ks_net_network_find(struct ks_engine *e, const char *name_or_id, char **ret_id,
                        struct ks_error **err);
/* Docker's inspect JSON of a network (Containers: its running endpoints). *ret owned. */
int ks_net_network_inspect(struct ks_engine *e, const char *id, json_object **ret,
                           struct ks_error **err);
/* Every network's inspect JSON, oldest first, as an array owned by the caller. */
int ks_net_network_list(struct ks_engine *e, json_object **ret, struct ks_error **err);
/* Removes a user-defined network; -EBUSY while a container is attached or configured to be,
 * -EPERM for the predefined ones. */
int ks_net_network_remove(struct ks_engine *e, const char *id, struct ks_error **err);
/* Removes every user-defined network no container uses; their names (owned) to *ret. */
int ks_net_network_prune(struct ks_engine *e, char ***ret, struct ks_error **err);

/* --- engine: attachments (attach.c) --- */

struct ks_net_attach_result {
    char *netns_path;  /* the namespace to join; NULL with host_network or a new empty one */
    bool host_network; /* no network namespace of its own */
};

/* Sets up the container's network per HostConfig.NetworkMode and NetworkingConfig: a
 * namespace with lo (none), the host's (host), another container's (container:NAME), or a new
 * namespace with one veth per network (bridge, user-defined networks), addresses from the IPAM
 * and published ports. The caller holds the container's lock. *ret and *ret_eps (n entries,
 * ks_net_endpoints_free) are owned by the caller; on failure nothing is left behind. */
int ks_net_attach(struct ks_engine *e, const char *id, json_object *config,
                  struct ks_net_attach_result *ret, struct ks_net_endpoint **ret_eps, size_t *ret_n,
                  struct ks_error **err);
void ks_net_attach_result_clear(struct ks_net_attach_result *r);

/* Releases what the container's network holds: veths, addresses, port rules, its namespace,
 * the hosts-file lines; bridges and the table go with their last user. Idempotent. The caller
 * holds the container's lock (ks_engine_lock). */
int ks_net_release_locked(struct ks_engine *e, const char *id, struct ks_error **err);
/* The same for a container that is not running (takes the container's lock; leaves a
 * running one alone): what its monitor runs when the container has exited for good. */
int ks_net_release(struct ks_engine *e, const char *id, struct ks_error **err);

/* Connects a container to a network (recorded in NetworkingConfig; attached at once when it
 * is running). ip may be NULL, aliases NULL-terminated or NULL. */
int ks_net_connect(struct ks_engine *e, const char *container, const char *network, const char *ip,
                   char **aliases, struct ks_error **err);
int ks_net_disconnect(struct ks_engine *e, const char *container, const char *network, bool force,
                      struct ks_error **err);

/* Docker's NetworkSettings for inspect (Ports, IPAddress, Gateway, MacAddress, Networks) of a
 * container; running says whether it has a live attachment. *ret owned by the caller. */
int ks_net_settings_json(struct ks_engine *e, const char *id, json_object *config, bool running,
                         json_object **ret, struct ks_error **err);
/* The published ports of a running container in Docker's ps form
 * ("0.0.0.0:8080->80/tcp, 443/tcp"), owned by the caller ("" when none). */
int ks_net_ports_summary(struct ks_engine *e, const char *id, json_object *config, char **ret,
                         struct ks_error **err);

/* Deletes every bridge, veth and the nftables table of this root from the kernel (the
 * database keeps the networks; they come back with the next container). For a root being
 * thrown away and for tests. */
int ks_net_teardown(struct ks_engine *e, struct ks_error **err);
