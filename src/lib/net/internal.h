/* The net module's own pieces: rtnetlink requests and the network records of the state
 * database. Not for use outside src/lib/net. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "../base/error.h"
#include "../engine/db.h"
#include "net.h"

/* --- rtnetlink (netlink.c) --- */

struct ks_nl;

/* A route netlink socket in the calling thread's network namespace; it stays in that
 * namespace when the thread moves. *ret owned (ks_nl_close). */
int ks_nl_open(struct ks_nl **ret, struct ks_error **err);
void ks_nl_close(struct ks_nl *nl);
KS_DEFINE_CLEANUP(struct ks_nl *, ks_nl_close)
#define _cleanup_nl_ _cleanup_(ks_nl_close_p)

/* The index of link name; -ENODEV when there is none. */
int ks_nl_link_index(struct ks_nl *nl, const char *name, struct ks_error **err);
/* A bridge, up. */
int ks_nl_bridge_add(struct ks_nl *nl, const char *name, struct ks_error **err);
/* A veth pair: host_name on the bridge master_index, up; peer_name in the namespace netns_fd
 * with the MAC mac (6 bytes). */
int ks_nl_veth_add(struct ks_nl *nl, const char *host_name, int master_index, const char *peer_name,
                   int netns_fd, const unsigned char *mac, struct ks_error **err);
/* Deletes a link; a missing one is fine. */
int ks_nl_link_del(struct ks_nl *nl, const char *name, struct ks_error **err);
int ks_nl_link_up(struct ks_nl *nl, int index, struct ks_error **err);
/* An IPv4 address a/prefix on the link. */
int ks_nl_addr4_add(struct ks_nl *nl, int index, uint32_t a, int prefix, struct ks_error **err);
/* The default IPv4 route through gw. */
int ks_nl_route4_default(struct ks_nl *nl, uint32_t gw, struct ks_error **err);

/* --- records (netdb.c) --- */

struct ks_net_record {
    char *id, *name, *driver;
    int64_t created;
    json_object *config; /* Subnet, Gateway, IPRange, Internal, Labels, Options, Bridge */
};
void ks_net_record_free(struct ks_net_record *n);
KS_DEFINE_CLEANUP(struct ks_net_record *, ks_net_record_free)
#define _cleanup_net_record_ _cleanup_(ks_net_record_free_p)

int ks_netdb_put(struct ks_db *db, const struct ks_net_record *n, struct ks_error **err);
/* By exact ID, then name, then unique ID prefix; -ENOENT ("network X not found"). */
int ks_netdb_find(struct ks_db *db, const char *name_or_id, struct ks_net_record **ret,
                  struct ks_error **err);
int ks_netdb_delete(struct ks_db *db, const char *id, struct ks_error **err);
/* Replaces the config of a network. */
int ks_netdb_set_config(struct ks_db *db, const char *id, json_object *config,
                        struct ks_error **err);
/* All networks, oldest first; *ret is a NULL-terminated array owned by the caller
 * (ks_net_records_free). */
int ks_netdb_list(struct ks_db *db, struct ks_net_record ***ret, struct ks_error **err);
void ks_net_records_free(struct ks_net_record **v);

struct ks_net_ep_record {
    char *network_id, *container_id;
    char *ipv4, *mac, *veth, *ifname;
    json_object *aliases; /* array, may be NULL */
};
void ks_net_ep_record_free(struct ks_net_ep_record *r);

int ks_netdb_ep_put(struct ks_db *db, const struct ks_net_ep_record *r, struct ks_error **err);
int ks_netdb_ep_delete(struct ks_db *db, const char *network_id, const char *container_id,
                       struct ks_error **err);
/* The endpoints of a container (network_id NULL) or of a network (container_id NULL), as a
 * NULL-terminated array owned by the caller (ks_net_ep_records_free). */
int ks_netdb_ep_list(struct ks_db *db, const char *network_id, const char *container_id,
                     struct ks_net_ep_record ***ret, struct ks_error **err);
void ks_net_ep_records_free(struct ks_net_ep_record **v);
/* How many endpoints the network has. */
int ks_netdb_ep_count(struct ks_db *db, const char *network_id, struct ks_error **err);

struct ks_net_port_record {
    char *container_id, *proto, *host_ip, *ctr_ip;
    unsigned host_port, ctr_port;
};
int ks_netdb_port_put(struct ks_db *db, const struct ks_net_port_record *p, struct ks_error **err);
int ks_netdb_ports_delete(struct ks_db *db, const char *container_id, struct ks_error **err);
/* Every published port (container_id NULL) or those of one container. */
int ks_netdb_port_list(struct ks_db *db, const char *container_id, struct ks_net_port_record **ret,
                       size_t *ret_n, struct ks_error **err);
void ks_net_port_records_free(struct ks_net_port_record *v, size_t n);

/* --- shared by network.c and attach.c --- */

/* The root's network lock (R/network.lock), held until the returned fd is closed. */
int ks_net_lock(struct ks_engine *e, struct ks_error **err);
/* The bridge's name and the table's name for this root ("kiste0"/"kiste" for the default
 * root, with a suffix of the root's hash for others), into buffers of 16 and 32 bytes. */
void ks_net_default_bridge(struct ks_engine *e, char out[16]);
void ks_net_table_name(struct ks_engine *e, char out[32]);
/* ks_net_network_find for a caller holding the network lock, the record owned by the caller. */
int ks_net_find_locked(struct ks_engine *e, const char *name_or_id, struct ks_net_record **ret,
                       struct ks_error **err);
/* Makes the network's bridge when it has none: a free subnet for an automatic one, chosen
 * under the host-wide lock; then the table. */
int ks_net_bridge_up(struct ks_engine *e, struct ks_net_record *n, struct ks_error **err);
/* Deletes the network's bridge. */
int ks_net_bridge_down(struct ks_engine *e, const struct ks_net_record *n, struct ks_error **err);
/* Connects a running container (whose namespace exists) to one more network, and the
 * reverse; both under the container's and the network lock. */
int ks_net_attach_more(struct ks_engine *e, const char *id, struct ks_net_record *n,
                       json_object *epcfg, struct ks_error **err);
int ks_net_detach_one(struct ks_engine *e, const char *id, const struct ks_net_record *n,
                      struct ks_error **err);
/* Records the container's published ports (to ctr_ip); returns how many. */
int ks_net_publish(struct ks_engine *e, const char *id, json_object *config, const char *ctr_ip,
                   struct ks_error **err);
/* Rewrites the root's nftables table from the database (networks with endpoints, ports). */
int ks_net_firewall_sync(struct ks_engine *e, struct ks_error **err);
