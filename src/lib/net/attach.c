/* A container's attachments: per network a veth pair (the host end on the network's bridge,
 * the other end eth0, eth1 … in the container's namespace), an address from the IPAM, the
 * default route through the first network's gateway, and the published ports. What a
 * container holds is in the endpoints and ports tables from the moment it is taken, so that a
 * release (at stop, remove, or after a crash) finds all of it. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/hash.h"
#include "../base/json.h"
#include "../engine/container.h"
#include "../image/store.h"
#include "internal.h"

static struct ks_db *db_of(struct ks_engine *e)
{
    return ks_store_db(e->store);
}

void ks_net_endpoints_free(struct ks_net_endpoint *eps, size_t n)
{
    for (size_t i = 0; eps && i < n; i++)
        ks_strv_free(eps[i].aliases);
    free(eps);
}

void ks_net_attach_result_clear(struct ks_net_attach_result *r)
{
    free(r->netns_path);
    r->netns_path = NULL;
}

static bool user_defined(const struct ks_net_record *n)
{
    return strcmp(n->driver, "bridge") == 0 && strcmp(n->name, "bridge") != 0;
}

/* --- the files the DNS resolver reads --- */

static int write_run_file(const char *dir, const char *name, const char *text,
                          struct ks_error **err)
{
    int r = ks_mkdir_p(dir, 0755, err);
    if (r < 0)
        return r;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "open `%s`", dir);
    return ks_write_file_replace(dfd, name, text, strlen(text), 0644, err);
}

/* U/networks/ID/hosts: "IP name shortid alias…" for each running container on the network. */
static int write_hosts(struct ks_engine *e, const struct ks_net_record *n, struct ks_error **err)
{
    if (!user_defined(n))
        return 0;
    struct ks_net_ep_record **eps = NULL;
    int r = ks_netdb_ep_list(db_of(e), n->id, NULL, &eps, err);
    if (r < 0)
        return r;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    for (size_t i = 0; f && eps[i]; i++) {
        _cleanup_db_container_ struct ks_db_container *c = NULL;
        if (eps[i]->ipv4 == NULL ||
            ks_db_container_get(db_of(e), eps[i]->container_id, &c, NULL) < 0)
            continue;
        fprintf(f, "%s %s %.12s", eps[i]->ipv4, c->name, c->id);
        for (size_t j = 0; eps[i]->aliases && j < json_object_array_length(eps[i]->aliases); j++)
            fprintf(f, " %s",
                    json_object_get_string(json_object_array_get_idx(eps[i]->aliases, j)));
        fputc('\n', f);
    }
    ks_net_ep_records_free(eps);
    if (f == NULL || fclose(f) != 0) {
        free(text);
        return ks_error_set(err, ENOMEM, "hosts");
    }
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/networks/%s", e->runroot, n->id) < 0)
        r = ks_error_set(err, ENOMEM, "hosts");
    else
        r = write_run_file(dir, "hosts", text, err);
    free(text);
    return r;
}

/* U/containers/ID/networks: the user-defined networks the container is on, one ID a line. */
static int write_container_networks(struct ks_engine *e, const char *id, struct ks_error **err)
{
    struct ks_net_ep_record **eps = NULL;
    int r = ks_netdb_ep_list(db_of(e), NULL, id, &eps, err);
    if (r < 0)
        return r;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    for (size_t i = 0; f && eps[i]; i++) {
        _cleanup_net_record_ struct ks_net_record *n = NULL;
        if (ks_netdb_find(db_of(e), eps[i]->network_id, &n, NULL) >= 0 && user_defined(n))
            fprintf(f, "%s\n", n->id);
    }
    ks_net_ep_records_free(eps);
    if (f == NULL || fclose(f) != 0) {
        free(text);
        return ks_error_set(err, ENOMEM, "networks file");
    }
    _cleanup_free_ char *run = ks_container_run_dir(e, id);
    r = run ? write_run_file(run, "networks", text, err) : ks_error_set(err, ENOMEM, "networks");
    free(text);
    return r;
}

/* --- release --- */

/* U/networks/ID, once the network has no container left: nothing to resolve on it. */
static void remove_run_dir(struct ks_engine *e, const struct ks_net_record *n)
{
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/networks/%s", e->runroot, n->id) >= 0)
        ks_rm_rf_at(AT_FDCWD, dir, NULL);
}

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

/* Whether U/containers/ID/netns is a bound network namespace. */
static bool netns_mounted(struct ks_engine *e, const char *id)
{
    _cleanup_free_ char *run = ks_container_run_dir(e, id), *path = NULL;
    struct statfs sf;
    return run && asprintf(&path, "%s/netns", run) >= 0 && statfs(path, &sf) == 0 &&
           (unsigned long)sf.f_type == (unsigned long)NSFS_MAGIC;
}

/* Under the network lock: everything the container's endpoints and ports hold. */
static int release_inner(struct ks_engine *e, const char *id, struct ks_error **err)
{
    struct ks_net_ep_record **eps = NULL;
    struct ks_net_port_record *ports = NULL;
    size_t n_ports = 0;
    int r = ks_netdb_ep_list(db_of(e), NULL, id, &eps, err);
    if (r < 0)
        return r;
    r = ks_netdb_port_list(db_of(e), id, &ports, &n_ports, err);
    ks_net_port_records_free(ports, n_ports);
    bool sync = n_ports > 0;
    /* While the namespace is there, its end goes with it, and the veth pair with that end,
     * deleted by the kernel in the background: deleting a link waits for an RCU grace period,
     * which a stop or a `run --rm` would otherwise wait for, once per network. */
    bool ns_takes_veths = netns_mounted(e, id);
    _cleanup_nl_ struct ks_nl *nl = NULL;
    if (r >= 0 && eps[0] && !ns_takes_veths)
        r = ks_nl_open(&nl, err);
    for (size_t i = 0; r >= 0 && eps[i]; i++) {
        if (eps[i]->veth && !ns_takes_veths)
            r = ks_nl_link_del(nl, eps[i]->veth, err);
        if (r >= 0)
            r = ks_netdb_ep_delete(db_of(e), eps[i]->network_id, id, err);
        _cleanup_net_record_ struct ks_net_record *n = NULL;
        if (r < 0 || ks_netdb_find(db_of(e), eps[i]->network_id, &n, NULL) < 0)
            continue;
        int cnt = ks_netdb_ep_count(db_of(e), n->id, err);
        if (cnt == 0) {
            r = ks_net_bridge_down(e, n, err);
            sync = true;
            remove_run_dir(e, n);
        } else if (cnt < 0) {
            r = cnt;
        } else {
            r = write_hosts(e, n, err);
        }
    }
    ks_net_ep_records_free(eps);
    if (r >= 0 && n_ports > 0)
        r = ks_netdb_ports_delete(db_of(e), id, err);
    if (r >= 0 && sync)
        r = ks_net_firewall_sync(e, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *run = ks_container_run_dir(e, id), *path = NULL;
    if (run && asprintf(&path, "%s/networks", run) >= 0)
        unlink(path);
    return ks_engine_netns_teardown(e, id, err);
}

int ks_net_release_locked(struct ks_engine *e, const char *id, struct ks_error **err)
{
    _cleanup_close_ int lock = ks_net_lock(e, err);
    if (lock < 0)
        return lock;
    return release_inner(e, id, err);
}

/* The container's lock (as ks_engine_lock) without creating its file: a remove deletes the
 * container's directory while holding the lock, and a file made anew under it would keep the
 * directory from going. -ENOENT when the container is gone. */
static int lock_existing(struct ks_engine *e, const char *id, struct ks_error **err)
{
    _cleanup_free_ char *dir = ks_container_dir(e, id), *path = NULL;
    if (dir == NULL || asprintf(&path, "%s/lock", dir) < 0)
        return ks_error_set(err, ENOMEM, "lock container");
    _cleanup_close_ int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : ks_error_set(err, errno, "open `%s`", path);
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR)
            return ks_error_set(err, errno, "lock `%s`", path);
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    if (ks_db_container_get(db_of(e), id, &c, NULL) < 0)
        return -ENOENT;
    return TAKE_FD(fd);
}

int ks_net_release(struct ks_engine *e, const char *id, struct ks_error **err)
{
    _cleanup_close_ int clock = lock_existing(e, id, err);
    if (clock == -ENOENT)
        return 0; /* removed meanwhile, and released with it */
    if (clock < 0)
        return clock;
    struct ks_container_state st;
    int r = ks_engine_state_get(e, id, &st, err);
    if (r < 0)
        return r;
    ks_engine_state_clear(&st);
    /* Started again meanwhile: the attachment is the new run's. */
    if (ks_engine_status_active(st.status))
        return 0;
    return ks_net_release_locked(e, id, err);
}

/* --- attach --- */

struct attach_ctx {
    struct ks_engine *e;
    const char *id;
    int nsfd;
    struct ks_nl *host, *ns;
    bool sync; /* the table must be rewritten */
};

/* A netlink socket inside the namespace nsfd: the thread goes in, opens it, and comes back. */
static int nl_in_netns(int nsfd, struct ks_nl **ret, struct ks_error **err)
{
    _cleanup_close_ int orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (orig < 0)
        return ks_error_set(err, errno, "open the network namespace");
    if (setns(nsfd, CLONE_NEWNET) < 0)
        return ks_error_set(err, errno, "enter the container's network namespace");
    int r = ks_nl_open(ret, err);
    if (setns(orig, CLONE_NEWNET) < 0)
        abort(); /* continuing in the container's namespace would act on the wrong stack */
    return r;
}

static void veth_name(const char *id, const char *net_id, char out[16])
{
    char hex[KS_SHA256_DIGEST_LEN];
    _cleanup_free_ char *both = NULL;
    if (asprintf(&both, "%s/%s", id, net_id) < 0 || ks_sha256_hex(both, strlen(both), hex) < 0)
        snprintf(hex, sizeof(hex), "sha256:%.12s", id);
    snprintf(out, 16, "ksv%.12s", hex + 7); /* after "sha256:" */
}

/* The address: the one asked for (user-defined networks only, as Docker), else the lowest
 * free one. */
static int pick_ip(struct ks_engine *e, const struct ks_net_record *n, json_object *epcfg,
                   const struct ks_net_cidr *sub, uint32_t gw, uint32_t *ret, struct ks_error **err)
{
    const char *want = ks_json_str(ks_json_get(epcfg, "IPAMConfig"), "IPv4Address");
    if (want && *want) {
        if (!user_defined(n))
            return ks_error_msg(err, "user specified IP address is supported on user defined "
                                     "networks only");
        if (ks_net_ip4_parse(want, ret) < 0 || !ks_net_cidr_contains(sub, *ret) || *ret == gw)
            return ks_error_msg(err, "invalid IPv4 address %s for network %s", want, n->name);
        return 0;
    }
    struct ks_net_ep_record **eps = NULL;
    int r = ks_netdb_ep_list(db_of(e), n->id, NULL, &eps, err);
    if (r < 0)
        return r;
    size_t cnt = 0;
    while (eps[cnt])
        cnt++;
    uint32_t *used = calloc(cnt + 1, sizeof(*used));
    size_t m = 0;
    for (size_t i = 0; used && i < cnt; i++)
        if (ks_net_ip4_parse(eps[i]->ipv4, &used[m]) == 0)
            m++;
    ks_net_ep_records_free(eps);
    if (used == NULL)
        return ks_error_set(err, ENOMEM, "allocate an address");
    struct ks_net_cidr range, *rp = NULL;
    if (ks_net_cidr_parse(ks_json_str(n->config, "IPRange"), &range) == 0)
        rp = &range;
    r = ks_net_ip4_allocate(sub, rp, gw, used, m, ret);
    free(used);
    if (r < 0)
        return ks_error_set_plain(err, ENOSPC, "no available IPv4 addresses on network %s",
                                  n->name);
    return 0;
}

static void fill_endpoint(struct ks_net_endpoint *ep, const struct ks_net_record *n, uint32_t ip,
                          int prefix, uint32_t gw, const char *mac, json_object *aliases)
{
    memset(ep, 0, sizeof(*ep));
    snprintf(ep->network_id, sizeof(ep->network_id), "%s", n->id);
    snprintf(ep->network_name, sizeof(ep->network_name), "%s", n->name);
    ep->user_defined = user_defined(n);
    ks_net_ip4_format(ip, ep->ipv4);
    ep->prefix4 = prefix;
    ks_net_ip4_format(gw, ep->gateway4);
    snprintf(ep->mac, sizeof(ep->mac), "%s", mac);
    size_t na = aliases ? json_object_array_length(aliases) : 0;
    if (na > 0 && (ep->aliases = calloc(na + 1, sizeof(char *))))
        for (size_t j = 0; j < na; j++)
            ep->aliases[j] = strdup(json_object_get_string(json_object_array_get_idx(aliases, j)));
}

/* One network: record the endpoint, then the veth, address and (first network) route. */
static int attach_one(struct attach_ctx *a, struct ks_net_record *n, json_object *epcfg,
                      unsigned index, struct ks_net_endpoint *ep, struct ks_error **err)
{
    struct ks_engine *e = a->e;
    int cnt = ks_netdb_ep_count(db_of(e), n->id, err);
    if (cnt < 0)
        return cnt;
    int r = ks_net_bridge_up(e, n, err);
    if (r < 0)
        return r;
    a->sync |= cnt == 0;
    struct ks_net_cidr sub;
    uint32_t gw, ip;
    if (ks_net_cidr_parse(ks_json_str(n->config, "Subnet"), &sub) < 0 ||
        ks_net_ip4_parse(ks_json_str(n->config, "Gateway"), &gw) < 0)
        return ks_error_msg(err, "network %s has no valid subnet", n->name);
    r = pick_ip(e, n, epcfg, &sub, gw, &ip, err);
    if (r < 0)
        return r;
    char mac[18], veth[16], ifname[16], ipstr[INET_ADDRSTRLEN];
    unsigned char macb[6];
    const char *want_mac = ks_json_str(epcfg, "MacAddress");
    if (want_mac && *want_mac) {
        if (!ks_net_mac_parse(want_mac, macb))
            return ks_error_msg(err, "invalid MAC address %s", want_mac);
        snprintf(mac, sizeof(mac), "%s", want_mac);
    } else {
        ks_net_mac_from_ip4(ip, mac);
        ks_net_mac_parse(mac, macb);
    }
    veth_name(a->id, n->id, veth);
    snprintf(ifname, sizeof(ifname), "eth%u", index);
    ks_net_ip4_format(ip, ipstr);
    json_object *aliases = ks_json_get_type(epcfg, "Aliases", json_type_array);
    struct ks_net_ep_record rec = {.network_id = n->id,
                                   .container_id = (char *)a->id,
                                   .ipv4 = ipstr,
                                   .mac = mac,
                                   .veth = veth,
                                   .ifname = ifname,
                                   .aliases = aliases};
    r = ks_netdb_ep_put(db_of(e), &rec, err);
    if (r < 0)
        return r;
    int br = ks_nl_link_index(a->host, ks_json_str(n->config, "Bridge"), err);
    if (br < 0)
        return br;
    r = ks_nl_veth_add(a->host, veth, br, ifname, a->nsfd, macb, err);
    int idx = r < 0 ? r : ks_nl_link_index(a->ns, ifname, err);
    if (idx < 0)
        return idx;
    r = ks_nl_addr4_add(a->ns, idx, ip, sub.prefix, err);
    if (r >= 0)
        r = ks_nl_link_up(a->ns, idx, err);
    if (r >= 0 && index == 0 && !ks_json_bool(n->config, "Internal", false))
        r = ks_nl_route4_default(a->ns, gw, err);
    if (r < 0)
        return r;
    fill_endpoint(ep, n, ip, sub.prefix, gw, mac, aliases);
    return 0;
}

struct want {
    struct ks_net_record *net;
    json_object *epcfg; /* borrowed from the config; may be NULL */
};

static void wants_free(struct want *w, size_t n)
{
    for (size_t i = 0; w && i < n; i++)
        ks_net_record_free(w[i].net);
    free(w);
}

/* The networks to attach, the NetworkMode's first, then the other EndpointsConfig entries. */
static int resolve_networks(struct ks_engine *e, const char *primary, json_object *config,
                            struct want **ret, size_t *ret_n, struct ks_error **err)
{
    json_object *ec = ks_json_get_type(ks_json_get(config, "NetworkingConfig"), "EndpointsConfig",
                                       json_type_object);
    size_t cap = 1 + (ec ? (size_t)json_object_object_length(ec) : 0), n = 0;
    struct want *w = calloc(cap, sizeof(*w));
    if (w == NULL)
        return ks_error_set(err, ENOMEM, "networks");
    int r = ks_net_find_locked(e, primary, &w[0].net, err);
    if (r >= 0 && strcmp(w[0].net->driver, "bridge") != 0)
        r = ks_error_msg(err, "container cannot be attached to network %s", primary);
    if (r < 0) {
        free(w);
        return r;
    }
    n = 1;
    if (ec) {
        json_object_object_foreach(ec, key, v)
        {
            struct ks_net_record *net = NULL;
            r = ks_net_find_locked(e, key, &net, err);
            if (r < 0)
                break;
            if (strcmp(net->id, w[0].net->id) == 0) {
                w[0].epcfg = v;
                ks_net_record_free(net);
                continue;
            }
            if (strcmp(net->driver, "bridge") != 0) {
                ks_net_record_free(net);
                r = ks_error_msg(err, "container cannot be disconnected from host network or "
                                      "connected to host network");
                break;
            }
            w[n].net = net;
            w[n++].epcfg = v;
        }
    }
    if (r < 0) {
        wants_free(w, n);
        return r;
    }
    *ret = w;
    *ret_n = n;
    return 0;
}

/* The other container's namespace (or the host's) for NetworkMode container:NAME. */
static int join_container(struct ks_engine *e, const char *name, struct ks_net_attach_result *ret,
                          struct ks_error **err)
{
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    _cleanup_json_ json_object *config = NULL;
    int r = ks_engine_lookup(e, name, &c, &config, err);
    if (r < 0)
        return r;
    struct ks_container_state st;
    r = ks_engine_state_get(e, c->id, &st, err);
    if (r < 0)
        return r;
    ks_engine_state_clear(&st);
    if (st.status != KS_CONTAINER_RUNNING && st.status != KS_CONTAINER_PAUSED)
        return ks_error_msg(err, "cannot join network of a non running container: %s", name);
    const char *mode = ks_json_str(ks_json_get(config, "HostConfig"), "NetworkMode");
    if (mode && strcmp(mode, "host") == 0) {
        ret->host_network = true;
        return 0;
    }
    _cleanup_free_ char *run = ks_container_run_dir(e, c->id);
    if (mode && strncmp(mode, "container:", 10) == 0)
        return ks_error_msg(err, "cannot join the network of %s: it shares another's", name);
    if (run == NULL || asprintf(&ret->netns_path, "%s/netns", run) < 0)
        return ks_error_set(err, ENOMEM, "network");
    return 0;
}

static int attach_all(struct attach_ctx *a, json_object *config, struct want *w, size_t n,
                      struct ks_net_endpoint *eps, struct ks_error **err)
{
    int r = ks_nl_open(&a->host, err);
    if (r >= 0)
        r = nl_in_netns(a->nsfd, &a->ns, err);
    for (size_t i = 0; r >= 0 && i < n; i++) {
        if (ks_json_get_type(w[i].epcfg, "Aliases", json_type_array) && !user_defined(w[i].net))
            return ks_error_msg(err, "network-scoped alias is supported only for containers in "
                                     "user defined networks");
        r = attach_one(a, w[i].net, w[i].epcfg, (unsigned)i, &eps[i], err);
    }
    if (r >= 0) {
        r = ks_net_publish(a->e, a->id, config, eps[0].ipv4, err);
        if (r > 0)
            a->sync = true;
    }
    if (r >= 0 && a->sync)
        r = ks_net_firewall_sync(a->e, err);
    for (size_t i = 0; r >= 0 && i < n; i++)
        r = write_hosts(a->e, w[i].net, err);
    if (r >= 0)
        r = write_container_networks(a->e, a->id, err);
    return r < 0 ? r : 0;
}

int ks_net_attach(struct ks_engine *e, const char *id, json_object *config,
                  struct ks_net_attach_result *ret, struct ks_net_endpoint **ret_eps, size_t *ret_n,
                  struct ks_error **err)
{
    memset(ret, 0, sizeof(*ret));
    *ret_eps = NULL;
    *ret_n = 0;
    const char *mode = ks_json_str(ks_json_get(config, "HostConfig"), "NetworkMode");
    if (mode == NULL || *mode == '\0' || strcmp(mode, "default") == 0)
        mode = "bridge";
    if (strcmp(mode, "host") == 0) {
        ret->host_network = true;
        return 0;
    }
    if (strncmp(mode, "container:", 10) == 0)
        return join_container(e, mode + 10, ret, err);
    _cleanup_close_ int lock = ks_net_lock(e, err);
    if (lock < 0)
        return lock;
    int r = release_inner(e, id, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *path = NULL;
    r = ks_engine_netns_setup(e, id, &path, err);
    if (r < 0)
        return r;
    if (strcmp(mode, "none") == 0) {
        ret->netns_path = TAKE_PTR(path);
        return 0;
    }
    struct want *w = NULL;
    size_t n = 0;
    struct ks_net_endpoint *eps = NULL;
    struct attach_ctx a = {.e = e, .id = id, .nsfd = -EBADF};
    r = resolve_networks(e, mode, config, &w, &n, err);
    if (r >= 0 && (eps = calloc(n, sizeof(*eps))) == NULL)
        r = ks_error_set(err, ENOMEM, "network");
    if (r >= 0 && (a.nsfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        r = ks_error_set(err, errno, "open `%s`", path);
    if (r >= 0)
        r = attach_all(&a, config, w, n, eps, err);
    if (a.nsfd >= 0)
        close(a.nsfd);
    ks_nl_close(a.host);
    ks_nl_close(a.ns);
    if (r < 0) {
        ks_net_endpoints_free(eps, n);
        release_inner(e, id, NULL);
        /* A bridge brought up for this container alone goes again. */
        for (size_t i = 0; i < n; i++)
            if (ks_netdb_ep_count(db_of(e), w[i].net->id, NULL) == 0 &&
                ks_net_bridge_down(e, w[i].net, NULL) == 0)
                remove_run_dir(e, w[i].net);
        ks_net_firewall_sync(e, NULL);
        wants_free(w, n);
        return r;
    }
    wants_free(w, n);
    ret->netns_path = TAKE_PTR(path);
    *ret_eps = eps;
    *ret_n = n;
    return 0;
}

int ks_net_attach_more(struct ks_engine *e, const char *id, struct ks_net_record *n,
                       json_object *epcfg, struct ks_error **err)
{
    if (ks_json_get_type(epcfg, "Aliases", json_type_array) && !user_defined(n))
        return ks_error_msg(err, "network-scoped alias is supported only for containers in "
                                 "user defined networks");
    struct ks_net_ep_record **eps = NULL;
    int r = ks_netdb_ep_list(db_of(e), NULL, id, &eps, err);
    if (r < 0)
        return r;
    unsigned index = 0;
    for (size_t i = 0; eps[i]; i++) {
        unsigned k;
        if (eps[i]->ifname && sscanf(eps[i]->ifname, "eth%u", &k) == 1 && k >= index)
            index = k + 1;
    }
    ks_net_ep_records_free(eps);
    _cleanup_free_ char *run = ks_container_run_dir(e, id), *path = NULL;
    if (run == NULL || asprintf(&path, "%s/netns", run) < 0)
        return ks_error_set(err, ENOMEM, "connect");
    struct attach_ctx a = {.e = e, .id = id, .nsfd = open(path, O_RDONLY | O_CLOEXEC)};
    if (a.nsfd < 0)
        return ks_error_set(err, errno, "open `%s`", path);
    struct ks_net_endpoint ep = {0};
    r = ks_nl_open(&a.host, err);
    if (r >= 0)
        r = nl_in_netns(a.nsfd, &a.ns, err);
    if (r >= 0)
        r = attach_one(&a, n, epcfg, index, &ep, err);
    if (r >= 0 && a.sync)
        r = ks_net_firewall_sync(e, err);
    if (r >= 0)
        r = write_hosts(e, n, err);
    if (r >= 0)
        r = write_container_networks(e, id, err);
    ks_strv_free(ep.aliases);
    close(a.nsfd);
    ks_nl_close(a.host);
    ks_nl_close(a.ns);
    if (r < 0)
        ks_net_detach_one(e, id, n, NULL);
    return r;
}

int ks_net_detach_one(struct ks_engine *e, const char *id, const struct ks_net_record *n,
                      struct ks_error **err)
{
    struct ks_net_ep_record **eps = NULL;
    int r = ks_netdb_ep_list(db_of(e), n->id, NULL, &eps, err);
    if (r < 0)
        return r;
    bool found = false;
    _cleanup_nl_ struct ks_nl *nl = NULL;
    for (size_t i = 0; r >= 0 && eps[i]; i++) {
        if (strcmp(eps[i]->container_id, id) != 0)
            continue;
        found = true;
        r = ks_nl_open(&nl, err);
        if (r >= 0 && eps[i]->veth)
            r = ks_nl_link_del(nl, eps[i]->veth, err);
        if (r >= 0)
            r = ks_netdb_ep_delete(db_of(e), n->id, id, err);
    }
    ks_net_ep_records_free(eps);
    if (r < 0 || !found)
        return r;
    int cnt = ks_netdb_ep_count(db_of(e), n->id, err);
    if (cnt < 0)
        return cnt;
    if (cnt == 0) {
        r = ks_net_bridge_down(e, n, err);
        if (r >= 0)
            r = ks_net_firewall_sync(e, err);
        remove_run_dir(e, n);
    } else {
        r = write_hosts(e, n, err);
    }
    if (r >= 0)
        r = write_container_networks(e, id, err);
    return r;
}
