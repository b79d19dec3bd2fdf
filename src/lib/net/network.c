/* Networks: the records, the predefined bridge/host/none networks, bridges brought up with
 * their first container and down with their last, and the root's nftables table.
 *
 * The default bridge's subnet: KISTE_BRIDGE_SUBNET (e.g. "10.99.0.0/24") when set at the time
 * the network is first made, else the first of Docker's pools that collides with no route of
 * the host nor another network of the root, chosen again whenever the bridge comes up and its
 * old subnet has been taken meanwhile (it has no containers then). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/hash.h"
#include "../base/json.h"
#include "../engine/container.h"
#include "../image/store.h"
#include "internal.h"

#define HOST_LOCK    "/run/lock/kiste-network.lock"
#define DEFAULT_ROOT "/var/lib/kiste"

static int flock_path(const char *path, struct ks_error **err)
{
    /* /run/lock may be missing, in a container for one. */
    if (strcmp(path, HOST_LOCK) == 0 && access("/run/lock", F_OK) < 0)
        mkdir("/run/lock", 01777);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ks_error_set(err, errno, "open `%s`", path);
    while (flock(fd, LOCK_EX) < 0)
        if (errno != EINTR) {
            int en = errno;
            close(fd);
            return ks_error_set(err, en, "lock `%s`", path);
        }
    return fd;
}

int ks_net_lock(struct ks_engine *e, struct ks_error **err)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "%s/network.lock", e->root) < 0)
        return ks_error_set(err, ENOMEM, "network lock");
    return flock_path(path, err);
}

/* 8 hex digits of the root's path, "" for the default root. */
static void root_suffix(struct ks_engine *e, char out[10])
{
    out[0] = '\0';
    if (strcmp(e->root, DEFAULT_ROOT) == 0)
        return;
    char hex[KS_SHA256_DIGEST_LEN];
    if (ks_sha256_hex(e->root, strlen(e->root), hex) < 0)
        return;
    snprintf(out, 10, "-%.8s", hex + 7); /* after "sha256:" */
}

void ks_net_default_bridge(struct ks_engine *e, char out[16])
{
    char s[10];
    root_suffix(e, s);
    snprintf(out, 16, "kiste0%s", s);
}

void ks_net_table_name(struct ks_engine *e, char out[32])
{
    char s[10];
    root_suffix(e, s);
    snprintf(out, 32, "kiste%s", s);
}

static int new_id(char out[65], struct ks_error **err)
{
    unsigned char b[32];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return ks_error_set(err, errno, "network ID");
    ks_hex(b, sizeof(b), out);
    return 0;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct ks_db *db_of(struct ks_engine *e)
{
    return ks_store_db(e->store);
}

/* The subnets of the root's other networks, appended to *v. */
static int add_root_subnets(struct ks_engine *e, const char *except, struct ks_net_cidr **v,
                            size_t *n, struct ks_error **err)
{
    struct ks_net_record **all = NULL;
    int r = ks_netdb_list(db_of(e), &all, err);
    if (r < 0)
        return r;
    for (size_t i = 0; all[i]; i++) {
        struct ks_net_cidr c;
        if ((except && strcmp(all[i]->id, except) == 0) ||
            ks_net_cidr_parse(ks_json_str(all[i]->config, "Subnet"), &c) < 0)
            continue;
        struct ks_net_cidr *nv = realloc(*v, (*n + 1) * sizeof(**v));
        if (nv == NULL) {
            ks_net_records_free(all);
            return ks_error_set(err, ENOMEM, "subnets");
        }
        *v = nv;
        (*v)[(*n)++] = c;
    }
    ks_net_records_free(all);
    return 0;
}

/* What a new subnet must not overlap: the host's routes and the root's other networks. */
static int avoid_list(struct ks_engine *e, const char *except, struct ks_net_cidr **ret,
                      size_t *ret_n, struct ks_error **err)
{
    int r = ks_net_host_routes(ret, ret_n, err);
    if (r >= 0)
        r = add_root_subnets(e, except, ret, ret_n, err);
    if (r < 0) {
        free(*ret);
        *ret = NULL;
    }
    return r;
}

static void set_subnet(json_object *config, const struct ks_net_cidr *c)
{
    char a[INET_ADDRSTRLEN], s[INET_ADDRSTRLEN + 4], g[INET_ADDRSTRLEN];
    uint32_t net = c->addr & ks_net_mask(c->prefix);
    ks_net_ip4_format(net, a);
    snprintf(s, sizeof(s), "%s/%d", a, c->prefix);
    ks_net_ip4_format(net + 1, g);
    json_object_object_add(config, "Subnet", json_object_new_string(s));
    json_object_object_add(config, "Gateway", json_object_new_string(g));
}

static int write_sysctl(const char *path, const char *value)
{
    _cleanup_free_ char *cur = NULL;
    if (ks_read_file(path, &cur, NULL, NULL) >= 0 && strncmp(cur, value, strlen(value)) == 0)
        return 0;
    return ks_write_file(path, value, strlen(value), NULL);
}

/* U/networks/ID/bridge: present while the network's bridge is one kiste made (and so may
 * delete); a bridge named with -o com.docker.network.bridge.name that existed before is used
 * but never deleted. Owned by the caller. */
static char *owned_marker(struct ks_engine *e, const char *id)
{
    char *p = NULL;
    return asprintf(&p, "%s/networks/%s/bridge", e->runroot, id) < 0 ? NULL : p;
}

/* Under the host-wide lock, so that two roots do not both take a free subnet. */
static int bridge_create(struct ks_engine *e, struct ks_nl *nl, struct ks_net_record *n,
                         const char *bridge, struct ks_error **err)
{
    _cleanup_close_ int hl = flock_path(HOST_LOCK, err);
    if (hl < 0)
        return hl;
    _cleanup_free_ struct ks_net_cidr *avoid = NULL;
    size_t n_avoid = 0;
    int r = avoid_list(e, n->id, &avoid, &n_avoid, err);
    if (r < 0)
        return r;
    struct ks_net_cidr sub;
    if (ks_net_cidr_parse(ks_json_str(n->config, "Subnet"), &sub) < 0)
        sub.prefix = -1;
    bool clash = sub.prefix < 0;
    for (size_t i = 0; !clash && i < n_avoid; i++)
        clash = avoid[i].prefix > 0 && ks_net_cidr_overlap(&sub, &avoid[i]);
    if (clash) {
        if (!ks_json_bool(n->config, "AutoSubnet", false))
            return ks_error_msg(err, "the subnet %s of network %s overlaps a route of the host",
                                ks_json_str(n->config, "Subnet"), n->name);
        if (ks_net_subnet_choose(avoid, n_avoid, &sub) < 0)
            return ks_error_set_plain(err, ENOSPC,
                                      "could not find an available, non-overlapping IPv4 address "
                                      "pool among the defaults to assign to the network");
        set_subnet(n->config, &sub);
        r = ks_netdb_set_config(db_of(e), n->id, n->config, err);
        if (r < 0)
            return r;
    }
    uint32_t gw;
    if (ks_net_ip4_parse(ks_json_str(n->config, "Gateway"), &gw) < 0)
        return ks_error_msg(err, "network %s has no valid gateway", n->name);
    _cleanup_free_ char *marker = owned_marker(e, n->id);
    if (marker == NULL)
        return ks_error_set(err, ENOMEM, "bridge");
    char *slash = strrchr(marker, '/');
    *slash = '\0';
    r = ks_mkdir_p(marker, 0755, err);
    *slash = '/';
    int mfd = r < 0 ? r : open(marker, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (mfd < 0 && r >= 0)
        r = ks_error_set(err, errno, "create `%s`", marker);
    if (mfd >= 0)
        close(mfd);
    if (r >= 0)
        r = ks_nl_bridge_add(nl, bridge, err);
    if (r < 0) {
        unlink(marker);
        return r;
    }
    int idx = ks_nl_link_index(nl, bridge, err);
    if (idx < 0 || (r = ks_nl_addr4_add(nl, idx, gw, sub.prefix, err)) < 0) {
        ks_nl_link_del(nl, bridge, NULL);
        return idx < 0 ? idx : r;
    }
    /* A published port on 127.0.0.1 forwards the host's loopback traffic onto the bridge. */
    _cleanup_free_ char *localnet = NULL;
    if (asprintf(&localnet, "/proc/sys/net/ipv4/conf/%s/route_localnet", bridge) >= 0)
        write_sysctl(localnet, "1");
    if (write_sysctl("/proc/sys/net/ipv4/ip_forward", "1") < 0) {
        ks_nl_link_del(nl, bridge, NULL);
        return ks_error_set(err, errno, "enable ip_forward");
    }
    return 0;
}

int ks_net_bridge_up(struct ks_engine *e, struct ks_net_record *n, struct ks_error **err)
{
    const char *bridge = ks_json_str(n->config, "Bridge");
    if (bridge == NULL)
        return ks_error_msg(err, "network %s has no bridge", n->name);
    _cleanup_nl_ struct ks_nl *nl = NULL;
    int r = ks_nl_open(&nl, err);
    if (r < 0)
        return r;
    r = ks_nl_link_index(nl, bridge, err);
    if (r != -ENODEV)
        return r < 0 ? r : 0;
    return bridge_create(e, nl, n, bridge, err);
}

int ks_net_bridge_down(struct ks_engine *e, const struct ks_net_record *n, struct ks_error **err)
{
    const char *bridge = ks_json_str(n->config, "Bridge");
    _cleanup_free_ char *marker = owned_marker(e, n->id);
    if (bridge == NULL || marker == NULL || access(marker, F_OK) < 0)
        return 0;
    _cleanup_nl_ struct ks_nl *nl = NULL;
    int r = ks_nl_open(&nl, err);
    if (r >= 0)
        r = ks_nl_link_del(nl, bridge, err);
    if (r >= 0)
        unlink(marker);
    return r;
}

int ks_net_firewall_sync(struct ks_engine *e, struct ks_error **err)
{
    struct ks_net_record **all = NULL;
    struct ks_net_port_record *ports = NULL;
    size_t n_ports = 0, n = 0;
    int r = ks_netdb_list(db_of(e), &all, err);
    if (r < 0)
        return r;
    r = ks_netdb_port_list(db_of(e), NULL, &ports, &n_ports, err);
    size_t count = 0;
    for (size_t i = 0; all[i]; i++)
        count++;
    struct ks_net_nft_net *nets = calloc(count + 1, sizeof(*nets));
    struct ks_net_nft_port *np = calloc(n_ports + 1, sizeof(*np));
    if (r >= 0 && (nets == NULL || np == NULL))
        r = ks_error_set(err, ENOMEM, "firewall");
    for (size_t i = 0; r >= 0 && all[i]; i++) {
        const char *bridge = ks_json_str(all[i]->config, "Bridge");
        struct ks_net_cidr c;
        if (bridge == NULL || ks_net_cidr_parse(ks_json_str(all[i]->config, "Subnet"), &c) < 0)
            continue;
        int cnt = ks_netdb_ep_count(db_of(e), all[i]->id, err);
        if (cnt < 0)
            r = cnt;
        else if (cnt > 0)
            nets[n++] =
                (struct ks_net_nft_net){bridge, c, ks_json_bool(all[i]->config, "Internal", false)};
    }
    size_t m = 0;
    for (size_t i = 0; r >= 0 && i < n_ports; i++) {
        struct ks_net_nft_port *p = &np[m];
        if (ks_net_ip4_parse(ports[i].ctr_ip, &p->ctr_ip) < 0)
            continue;
        if (*ports[i].host_ip && ks_net_ip4_parse(ports[i].host_ip, &p->host_ip) < 0)
            continue;
        p->proto = ports[i].proto;
        p->host_port = ports[i].host_port;
        p->ctr_port = ports[i].ctr_port;
        m++;
    }
    if (r >= 0) {
        char table[32];
        ks_net_table_name(e, table);
        _cleanup_free_ char *script = ks_net_nft_script(table, nets, n, np, m);
        r = script ? ks_net_nft_run(script, err) : ks_error_set(err, ENOMEM, "firewall");
    }
    free(nets);
    free(np);
    ks_net_port_records_free(ports, n_ports);
    ks_net_records_free(all);
    return r;
}

/* --- records --- */

static int make_predefined(struct ks_engine *e, const char *name, struct ks_error **err)
{
    char id[65];
    int r = new_id(id, err);
    if (r < 0)
        return r;
    _cleanup_json_ json_object *config = json_object_new_object();
    json_object_object_add(config, "Labels", json_object_new_object());
    json_object_object_add(config, "Options", json_object_new_object());
    const char *driver = strcmp(name, "bridge") == 0 ? "bridge"
                         : strcmp(name, "host") == 0 ? "host"
                                                     : "null";
    if (strcmp(name, "bridge") == 0) {
        char br[16];
        ks_net_default_bridge(e, br);
        json_object_object_add(config, "Bridge", json_object_new_string(br));
        const char *want = getenv("KISTE_BRIDGE_SUBNET");
        struct ks_net_cidr c;
        if (want && *want) {
            if (ks_net_cidr_parse(want, &c) < 0 || c.prefix > 30)
                return ks_error_msg(err, "invalid KISTE_BRIDGE_SUBNET `%s`", want);
        } else {
            _cleanup_free_ struct ks_net_cidr *avoid = NULL;
            size_t n_avoid = 0;
            r = avoid_list(e, NULL, &avoid, &n_avoid, err);
            if (r < 0)
                return r;
            if (ks_net_subnet_choose(avoid, n_avoid, &c) < 0)
                return ks_error_set_plain(err, ENOSPC, "no free subnet for the default bridge");
            json_object_object_add(config, "AutoSubnet", json_object_new_boolean(true));
        }
        set_subnet(config, &c);
    }
    struct ks_net_record rec = {.id = id,
                                .name = (char *)name,
                                .driver = (char *)driver,
                                .created = now_ns(),
                                .config = config};
    r = ks_netdb_put(db_of(e), &rec, err);
    return r == -EEXIST ? 0 : r;
}

static bool predefined(const char *name)
{
    return strcmp(name, "bridge") == 0 || strcmp(name, "host") == 0 || strcmp(name, "none") == 0;
}

/* The predefined networks, made the first time anything asks. */
static int ensure_predefined(struct ks_engine *e, struct ks_error **err)
{
    for (const char *const *p = (const char *const[]){"bridge", "host", "none", NULL}; *p; p++) {
        _cleanup_net_record_ struct ks_net_record *n = NULL;
        int r = ks_netdb_find(db_of(e), *p, &n, NULL);
        if (r == -ENOENT)
            r = make_predefined(e, *p, err);
        else if (r < 0)
            r = ks_netdb_find(db_of(e), *p, &n, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int ks_net_find_locked(struct ks_engine *e, const char *name_or_id, struct ks_net_record **ret,
                       struct ks_error **err)
{
    int r = ks_netdb_find(db_of(e), name_or_id, ret, NULL);
    if (r == 0)
        return 0;
    if (r == -ENOENT) {
        r = ensure_predefined(e, err);
        if (r < 0)
            return r;
    }
    return ks_netdb_find(db_of(e), name_or_id, ret, err);
}

int ks_net_network_find(struct ks_engine *e, const char *name_or_id, char **ret_id,
                        struct ks_error **err)
{
    _cleanup_net_record_ struct ks_net_record *n = NULL;
    int r = ks_netdb_find(db_of(e), name_or_id, &n, NULL);
    if (r == -ENOENT) {
        _cleanup_close_ int lock = ks_net_lock(e, err);
        if (lock < 0)
            return lock;
        r = ensure_predefined(e, err);
        if (r < 0)
            return r;
        r = ks_netdb_find(db_of(e), name_or_id, &n, err);
    } else if (r < 0) {
        r = ks_netdb_find(db_of(e), name_or_id, &n, err);
    }
    if (r < 0)
        return r;
    *ret_id = TAKE_PTR(n->id);
    return 0;
}

static json_object *kv_object(char **kv)
{
    json_object *o = json_object_new_object();
    for (size_t i = 0; kv && kv[i]; i++) {
        const char *eq = strchr(kv[i], '=');
        _cleanup_free_ char *k = eq ? strndup(kv[i], (size_t)(eq - kv[i])) : strdup(kv[i]);
        if (k)
            json_object_object_add(o, k, json_object_new_string(eq ? eq + 1 : ""));
    }
    return o;
}

/* Subnet, gateway and range of a new network, checked against each other. */
static int create_ipam(struct ks_engine *e, const struct ks_net_create_opts *o, json_object *config,
                       struct ks_error **err)
{
    struct ks_net_cidr sub;
    if (o->subnet) {
        if (ks_net_cidr_parse(o->subnet, &sub) < 0 || sub.prefix > 30)
            return ks_error_msg(err, "invalid subnet %s", o->subnet);
        _cleanup_free_ struct ks_net_cidr *others = NULL;
        size_t n = 0;
        int r = add_root_subnets(e, NULL, &others, &n, err);
        if (r < 0)
            return r;
        for (size_t i = 0; i < n; i++)
            if (ks_net_cidr_overlap(&sub, &others[i]))
                return ks_error_set_plain(err, EEXIST,
                                          "Pool overlaps with other one on this address space");
        set_subnet(config, &sub);
    } else {
        if (o->gateway || o->ip_range)
            return ks_error_msg(err, "--gateway and --ip-range need --subnet");
        _cleanup_close_ int hl = flock_path(HOST_LOCK, err);
        _cleanup_free_ struct ks_net_cidr *avoid = NULL;
        size_t n = 0;
        int r = hl < 0 ? hl : avoid_list(e, NULL, &avoid, &n, err);
        if (r < 0)
            return r;
        if (ks_net_subnet_choose(avoid, n, &sub) < 0)
            return ks_error_set_plain(err, ENOSPC,
                                      "could not find an available, non-overlapping IPv4 address "
                                      "pool among the defaults to assign to the network");
        set_subnet(config, &sub);
        json_object_object_add(config, "AutoSubnet", json_object_new_boolean(true));
    }
    if (o->gateway) {
        uint32_t gw;
        if (ks_net_ip4_parse(o->gateway, &gw) < 0 || !ks_net_cidr_contains(&sub, gw))
            return ks_error_msg(err, "invalid gateway %s for subnet %s", o->gateway, o->subnet);
        json_object_object_add(config, "Gateway", json_object_new_string(o->gateway));
    }
    if (o->ip_range) {
        struct ks_net_cidr rg;
        if (ks_net_cidr_parse(o->ip_range, &rg) < 0 || rg.prefix < sub.prefix ||
            !ks_net_cidr_contains(&sub, rg.addr))
            return ks_error_msg(err, "invalid ip-range %s for subnet %s", o->ip_range, o->subnet);
        json_object_object_add(config, "IPRange", json_object_new_string(o->ip_range));
    }
    return 0;
}

int ks_net_network_create(struct ks_engine *e, const struct ks_net_create_opts *o, char **ret_id,
                          struct ks_error **err)
{
    const char *driver = o->driver ? o->driver : "bridge";
    if (strcmp(driver, "bridge") != 0)
        return ks_error_msg(err, "plugin \"%s\" not found (only the bridge driver is supported)",
                            driver);
    if (o->name == NULL || *o->name == '\0' || strlen(o->name) > 128 ||
        !ks_container_name_valid(o->name))
        return ks_error_msg(err, "invalid network name \"%s\"", o->name ? o->name : "");
    if (predefined(o->name))
        return ks_error_set_plain(err, EPERM, "%s is a pre-defined network and cannot be created",
                                  o->name);
    _cleanup_close_ int lock = ks_net_lock(e, err);
    if (lock < 0)
        return lock;
    int r = ensure_predefined(e, err);
    if (r < 0)
        return r;
    char id[65];
    r = new_id(id, err);
    if (r < 0)
        return r;
    _cleanup_json_ json_object *config = json_object_new_object();
    json_object_object_add(config, "Labels", kv_object(o->labels));
    json_object *opts = kv_object(o->options);
    json_object_object_add(config, "Options", opts);
    json_object_object_add(config, "Internal", json_object_new_boolean(o->internal));
    const char *br = ks_json_str(opts, "com.docker.network.bridge.name");
    char brbuf[16];
    if (br && (strlen(br) == 0 || strlen(br) > 15 || strchr(br, '/') || strchr(br, ' ')))
        return ks_error_msg(err, "invalid bridge name `%s`", br);
    if (br == NULL) {
        snprintf(brbuf, sizeof(brbuf), "ks-%.12s", id);
        br = brbuf;
    }
    json_object_object_add(config, "Bridge", json_object_new_string(br));
    r = create_ipam(e, o, config, err);
    if (r < 0)
        return r;
    struct ks_net_record rec = {.id = id,
                                .name = (char *)o->name,
                                .driver = (char *)driver,
                                .created = now_ns(),
                                .config = config};
    r = ks_netdb_put(db_of(e), &rec, err);
    if (r < 0)
        return r;
    *ret_id = strdup(id);
    return *ret_id ? 0 : ks_error_set(err, ENOMEM, "create network");
}

static json_object *ipam_json(const struct ks_net_record *n)
{
    json_object *ipam = json_object_new_object();
    json_object_object_add(ipam, "Driver", json_object_new_string("default"));
    json_object_object_add(ipam, "Options", NULL);
    json_object *cfgs = json_object_new_array();
    const char *subnet = ks_json_str(n->config, "Subnet");
    if (subnet) {
        json_object *c = json_object_new_object();
        json_object_object_add(c, "Subnet", json_object_new_string(subnet));
        const char *gw = ks_json_str(n->config, "Gateway");
        const char *rg = ks_json_str(n->config, "IPRange");
        if (gw)
            json_object_object_add(c, "Gateway", json_object_new_string(gw));
        if (rg)
            json_object_object_add(c, "IPRange", json_object_new_string(rg));
        json_object_array_add(cfgs, c);
    }
    json_object_object_add(ipam, "Config", cfgs);
    return ipam;
}

static json_object *containers_json(struct ks_engine *e, const struct ks_net_record *n)
{
    json_object *o = json_object_new_object();
    struct ks_net_ep_record **eps = NULL;
    if (ks_netdb_ep_list(db_of(e), n->id, NULL, &eps, NULL) < 0)
        return o;
    const char *subnet = ks_json_str(n->config, "Subnet");
    const char *slash = subnet ? strchr(subnet, '/') : NULL;
    for (size_t i = 0; eps[i]; i++) {
        _cleanup_db_container_ struct ks_db_container *c = NULL;
        if (ks_db_container_get(db_of(e), eps[i]->container_id, &c, NULL) < 0)
            continue;
        json_object *x = json_object_new_object();
        char ip[64];
        snprintf(ip, sizeof(ip), "%s%s", eps[i]->ipv4 ? eps[i]->ipv4 : "", slash ? slash : "");
        json_object_object_add(x, "Name", json_object_new_string(c->name));
        json_object_object_add(x, "MacAddress",
                               json_object_new_string(eps[i]->mac ? eps[i]->mac : ""));
        json_object_object_add(x, "IPv4Address", json_object_new_string(ip));
        json_object_object_add(x, "IPv6Address", json_object_new_string(""));
        json_object_object_add(o, c->id, x);
    }
    ks_net_ep_records_free(eps);
    return o;
}

static json_object *network_json(struct ks_engine *e, const struct ks_net_record *n)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "Name", json_object_new_string(n->name));
    json_object_object_add(o, "Id", json_object_new_string(n->id));
    time_t secs = (time_t)(n->created / 1000000000);
    struct tm tm;
    char when[64];
    gmtime_r(&secs, &tm);
    size_t l = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + l, sizeof(when) - l, ".%09lldZ", (long long)(n->created % 1000000000));
    json_object_object_add(o, "Created", json_object_new_string(when));
    json_object_object_add(o, "Scope", json_object_new_string("local"));
    json_object_object_add(o, "Driver", json_object_new_string(n->driver));
    json_object_object_add(o, "EnableIPv6", json_object_new_boolean(false));
    json_object_object_add(o, "IPAM", ipam_json(n));
    json_object_object_add(o, "Internal",
                           json_object_new_boolean(ks_json_bool(n->config, "Internal", false)));
    json_object_object_add(o, "Attachable", json_object_new_boolean(false));
    json_object_object_add(o, "Ingress", json_object_new_boolean(false));
    json_object *cf = json_object_new_object();
    json_object_object_add(cf, "Network", json_object_new_string(""));
    json_object_object_add(o, "ConfigFrom", cf);
    json_object_object_add(o, "ConfigOnly", json_object_new_boolean(false));
    json_object_object_add(o, "Containers", containers_json(e, n));
    json_object *opts = json_object_new_object();
    json_object *given = ks_json_get_type(n->config, "Options", json_type_object);
    if (given) {
        json_object_object_foreach(given, k, v) json_object_object_add(opts, k, json_object_get(v));
    }
    const char *bridge = ks_json_str(n->config, "Bridge");
    if (bridge && !ks_json_get(opts, "com.docker.network.bridge.name"))
        json_object_object_add(opts, "com.docker.network.bridge.name",
                               json_object_new_string(bridge));
    json_object_object_add(o, "Options", opts);
    json_object *labels = json_object_get(ks_json_get_type(n->config, "Labels", json_type_object));
    json_object_object_add(o, "Labels", labels ? labels : json_object_new_object());
    return o;
}

int ks_net_network_inspect(struct ks_engine *e, const char *id, json_object **ret,
                           struct ks_error **err)
{
    _cleanup_net_record_ struct ks_net_record *n = NULL;
    int r = ks_netdb_find(db_of(e), id, &n, err);
    if (r < 0)
        return r;
    *ret = network_json(e, n);
    return 0;
}

int ks_net_network_list(struct ks_engine *e, json_object **ret, struct ks_error **err)
{
    {
        _cleanup_close_ int lock = ks_net_lock(e, err);
        if (lock < 0)
            return lock;
        int r = ensure_predefined(e, err);
        if (r < 0)
            return r;
    }
    struct ks_net_record **all = NULL;
    int r = ks_netdb_list(db_of(e), &all, err);
    if (r < 0)
        return r;
    json_object *a = json_object_new_array();
    for (size_t i = 0; all[i]; i++)
        json_object_array_add(a, network_json(e, all[i]));
    ks_net_records_free(all);
    *ret = a;
    return 0;
}

struct uses {
    const char *id, *name;
    char *user; /* a container that names the network */
};

static int uses_fn(const struct ks_db_container *c, void *userdata)
{
    struct uses *u = userdata;
    _cleanup_json_ json_object *cfg = NULL;
    if (c->config == NULL || ks_json_parse(c->config, strlen(c->config), &cfg, NULL) < 0)
        return 0;
    const char *mode = ks_json_str(ks_json_get(cfg, "HostConfig"), "NetworkMode");
    json_object *ec = ks_json_get(ks_json_get(cfg, "NetworkingConfig"), "EndpointsConfig");
    bool hit = mode && (strcmp(mode, u->id) == 0 || strcmp(mode, u->name) == 0);
    if (!hit && ec) {
        json_object_object_foreach(ec, k, v)
        {
            (void)v;
            hit |= strcmp(k, u->id) == 0 || strcmp(k, u->name) == 0;
        }
    }
    if (hit && u->user == NULL)
        u->user = strdup(c->name);
    return 0;
}

/* Under the network lock. */
static int remove_locked(struct ks_engine *e, const struct ks_net_record *n, bool quiet,
                         struct ks_error **err)
{
    if (predefined(n->name))
        return ks_error_set_plain(err, EPERM, "%s is a pre-defined network and cannot be removed",
                                  n->name);
    struct uses u = {.id = n->id, .name = n->name};
    int r = ks_db_containers_list(db_of(e), uses_fn, &u, err);
    if (r < 0)
        return r;
    int cnt = ks_netdb_ep_count(db_of(e), n->id, err);
    if (u.user || cnt > 0) {
        free(u.user);
        if (quiet)
            return -EBUSY;
        return ks_error_set_plain(err, EBUSY,
                                  "error while removing network: network %s id %s "
                                  "has active endpoints",
                                  n->name, n->id);
    }
    r = ks_net_bridge_down(e, n, err);
    if (r < 0)
        return r;
    r = ks_netdb_delete(db_of(e), n->id, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *dir = NULL;
    if (asprintf(&dir, "%s/networks/%s", e->runroot, n->id) >= 0)
        ks_rm_rf_at(AT_FDCWD, dir, NULL);
    return 0;
}

int ks_net_network_remove(struct ks_engine *e, const char *id, struct ks_error **err)
{
    _cleanup_close_ int lock = ks_net_lock(e, err);
    if (lock < 0)
        return lock;
    _cleanup_net_record_ struct ks_net_record *n = NULL;
    int r = ks_netdb_find(db_of(e), id, &n, err);
    if (r < 0)
        return r;
    return remove_locked(e, n, false, err);
}

int ks_net_network_prune(struct ks_engine *e, char ***ret, struct ks_error **err)
{
    _cleanup_close_ int lock = ks_net_lock(e, err);
    if (lock < 0)
        return lock;
    struct ks_net_record **all = NULL;
    int r = ks_netdb_list(db_of(e), &all, err);
    if (r < 0)
        return r;
    size_t n = 0;
    char **names = calloc(1, sizeof(char *));
    for (size_t i = 0; r >= 0 && names && all[i]; i++) {
        if (predefined(all[i]->name))
            continue;
        int x = remove_locked(e, all[i], true, err);
        if (x == -EBUSY)
            continue;
        if (x < 0) {
            r = x;
            break;
        }
        char **nv = realloc(names, (n + 2) * sizeof(char *));
        if (nv == NULL)
            break;
        names = nv;
        names[n++] = strdup(all[i]->name);
        names[n] = NULL;
    }
    ks_net_records_free(all);
    if (names == NULL)
        return ks_error_set(err, ENOMEM, "prune networks");
    if (r < 0) {
        ks_strv_free(names);
        return r;
    }
    *ret = names;
    return 0;
}

int ks_net_teardown(struct ks_engine *e, struct ks_error **err)
{
    _cleanup_close_ int lock = ks_net_lock(e, err);
    if (lock < 0)
        return lock;
    struct ks_net_record **all = NULL;
    int r = ks_netdb_list(db_of(e), &all, err);
    if (r < 0)
        return r;
    for (size_t i = 0; r >= 0 && all[i]; i++) {
        /* The containers' ends first: a deleted bridge leaves its ports behind. */
        struct ks_net_ep_record **eps = NULL;
        r = ks_netdb_ep_list(db_of(e), all[i]->id, NULL, &eps, err);
        _cleanup_nl_ struct ks_nl *nl = NULL;
        if (r >= 0 && eps[0])
            r = ks_nl_open(&nl, err);
        for (size_t j = 0; r >= 0 && eps[j]; j++)
            if (eps[j]->veth)
                r = ks_nl_link_del(nl, eps[j]->veth, err);
        ks_net_ep_records_free(eps);
        if (r >= 0)
            r = ks_net_bridge_down(e, all[i], err);
    }
    ks_net_records_free(all);
    if (r < 0)
        return r;
    char table[32];
    ks_net_table_name(e, table);
    _cleanup_free_ char *script = ks_net_nft_script(table, NULL, 0, NULL, 0);
    return script ? ks_net_nft_run(script, err) : ks_error_set(err, ENOMEM, "teardown");
}
