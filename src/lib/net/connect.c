/* network connect/disconnect, and what inspect and ps show of a container's network. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/hash.h"
#include "../base/json.h"
#include "../engine/container.h"
#include "../image/store.h"
#include "internal.h"

static struct ks_db *db_of(struct ks_engine *e)
{
    return ks_store_db(e->store);
}

static const char *primary_of(json_object *config)
{
    const char *mode = ks_json_str(ks_json_get(config, "HostConfig"), "NetworkMode");
    return mode == NULL || *mode == '\0' || strcmp(mode, "default") == 0 ? "bridge" : mode;
}

static json_object *endpoints_config(json_object *config)
{
    json_object *nc = ks_json_get_type(config, "NetworkingConfig", json_type_object);
    if (nc == NULL) {
        nc = json_object_new_object();
        json_object_object_add(config, "NetworkingConfig", nc);
    }
    json_object *ec = ks_json_get_type(nc, "EndpointsConfig", json_type_object);
    if (ec == NULL) {
        ec = json_object_new_object();
        json_object_object_add(nc, "EndpointsConfig", ec);
    }
    return ec;
}

/* The EndpointsConfig key that names net (by name or ID), NULL when none. */
static const char *config_key(json_object *ec, const struct ks_net_record *n)
{
    json_object_object_foreach(ec, k, v)
    {
        (void)v;
        if (strcmp(k, n->name) == 0 || strcmp(k, n->id) == 0)
            return k;
    }
    return NULL;
}

static bool running(struct ks_engine *e, const char *id)
{
    struct ks_container_state st;
    if (ks_engine_state_get(e, id, &st, NULL) < 0)
        return false;
    ks_engine_state_clear(&st);
    return st.status == KS_CONTAINER_RUNNING || st.status == KS_CONTAINER_PAUSED;
}

int ks_net_connect(struct ks_engine *e, const char *container, const char *network, const char *ip,
                   char **aliases, struct ks_error **err)
{
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    _cleanup_json_ json_object *config = NULL;
    int r = ks_engine_lookup(e, container, &c, &config, err);
    if (r < 0)
        return r;
    _cleanup_close_ int clock = ks_engine_lock(e, c->id, err);
    if (clock < 0)
        return clock;
    _cleanup_close_ int lock = ks_net_lock(e, err);
    if (lock < 0)
        return lock;
    _cleanup_net_record_ struct ks_net_record *n = NULL, *prim = NULL;
    r = ks_net_find_locked(e, network, &n, err);
    if (r < 0)
        return r;
    const char *mode = primary_of(config);
    if (strcmp(mode, "host") == 0 || strcmp(mode, "none") == 0 ||
        strncmp(mode, "container:", 10) == 0 || strcmp(n->driver, "bridge") != 0)
        return ks_error_msg(err, "container sharing network namespace with another container or "
                                 "host cannot be connected to any other network");
    json_object *ec = endpoints_config(config);
    if (config_key(ec, n) ||
        (ks_net_find_locked(e, mode, &prim, NULL) == 0 && strcmp(prim->id, n->id) == 0))
        return ks_error_set_plain(err, EEXIST, "endpoint with name %s already exists in network %s",
                                  c->name, n->name);
    json_object *ep = json_object_new_object();
    if (ip && *ip) {
        json_object *ipam = json_object_new_object();
        json_object_object_add(ipam, "IPv4Address", json_object_new_string(ip));
        json_object_object_add(ep, "IPAMConfig", ipam);
    }
    if (aliases && aliases[0]) {
        json_object *a = json_object_new_array();
        for (size_t i = 0; aliases[i]; i++)
            json_object_array_add(a, json_object_new_string(aliases[i]));
        json_object_object_add(ep, "Aliases", a);
    }
    json_object_object_add(ec, n->name, ep);
    if (running(e, c->id)) {
        r = ks_net_attach_more(e, c->id, n, ep, err);
        if (r < 0)
            return r;
    }
    return ks_db_container_set_config(db_of(e), c->id, ks_json_plain(config), err);
}

int ks_net_disconnect(struct ks_engine *e, const char *container, const char *network, bool force,
                      struct ks_error **err)
{
    (void)force;
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    _cleanup_json_ json_object *config = NULL;
    int r = ks_engine_lookup(e, container, &c, &config, err);
    if (r < 0)
        return r;
    _cleanup_close_ int clock = ks_engine_lock(e, c->id, err);
    if (clock < 0)
        return clock;
    _cleanup_close_ int lock = ks_net_lock(e, err);
    if (lock < 0)
        return lock;
    _cleanup_net_record_ struct ks_net_record *n = NULL;
    r = ks_net_find_locked(e, network, &n, err);
    if (r < 0)
        return r;
    json_object *ec = endpoints_config(config);
    const char *key = config_key(ec, n);
    if (key == NULL)
        return ks_error_msg(err, "container %s is not connected to network %s", c->name, n->name);
    r = ks_net_detach_one(e, c->id, n, err);
    if (r < 0)
        return r;
    json_object_object_del(ec, key);
    return ks_db_container_set_config(db_of(e), c->id, ks_json_plain(config), err);
}

/* --- inspect and ps --- */

static json_object *ports_json(struct ks_engine *e, const char *id, json_object *config, bool live)
{
    json_object *o = json_object_new_object();
    json_object *exposed =
        ks_json_get_type(ks_json_get(config, "Config"), "ExposedPorts", json_type_object);
    if (!live)
        return o;
    if (exposed) {
        json_object_object_foreach(exposed, k, v)
        {
            (void)v;
            json_object_object_add(o, k, NULL);
        }
    }
    struct ks_net_port_record *p = NULL;
    size_t n = 0;
    if (ks_netdb_port_list(db_of(e), id, &p, &n, NULL) < 0)
        return o;
    for (size_t i = 0; i < n; i++) {
        char key[32], hp[16];
        snprintf(key, sizeof(key), "%u/%s", p[i].ctr_port, p[i].proto);
        snprintf(hp, sizeof(hp), "%u", p[i].host_port);
        json_object *arr = ks_json_get_type(o, key, json_type_array);
        if (arr == NULL) {
            arr = json_object_new_array();
            json_object_object_add(o, key, arr);
        }
        json_object *b = json_object_new_object();
        json_object_object_add(b, "HostIp",
                               json_object_new_string(*p[i].host_ip ? p[i].host_ip : "0.0.0.0"));
        json_object_object_add(b, "HostPort", json_object_new_string(hp));
        json_object_array_add(arr, b);
    }
    ks_net_port_records_free(p, n);
    return o;
}

static json_object *endpoint_json(const struct ks_net_record *n, const char *id,
                                  const struct ks_net_ep_record *ep, json_object *epcfg)
{
    json_object *o = json_object_new_object();
    json_object *ipam = ks_json_get(epcfg, "IPAMConfig");
    json_object_object_add(o, "IPAMConfig", ipam ? json_object_get(ipam) : NULL);
    json_object_object_add(o, "Links", NULL);
    json_object *al = ep ? ep->aliases : ks_json_get(epcfg, "Aliases");
    json_object_object_add(o, "Aliases", al ? json_object_get(al) : NULL);
    json_object_object_add(o, "NetworkID", json_object_new_string(n ? n->id : ""));
    char eid[KS_SHA256_DIGEST_LEN] = "";
    if (ep && n) {
        _cleanup_free_ char *both = NULL;
        if (asprintf(&both, "%s/%s/endpoint", id, n->id) >= 0)
            ks_sha256_hex(both, strlen(both), eid);
    }
    json_object_object_add(o, "EndpointID", json_object_new_string(*eid ? eid + 7 : ""));
    const char *gw = ep && n ? ks_json_str(n->config, "Gateway") : NULL;
    const char *subnet = ep && n ? ks_json_str(n->config, "Subnet") : NULL;
    const char *slash = subnet ? strchr(subnet, '/') : NULL;
    json_object_object_add(o, "Gateway", json_object_new_string(gw ? gw : ""));
    json_object_object_add(o, "IPAddress", json_object_new_string(ep && ep->ipv4 ? ep->ipv4 : ""));
    json_object_object_add(o, "IPPrefixLen", json_object_new_int(slash ? atoi(slash + 1) : 0));
    json_object_object_add(o, "IPv6Gateway", json_object_new_string(""));
    json_object_object_add(o, "GlobalIPv6Address", json_object_new_string(""));
    json_object_object_add(o, "GlobalIPv6PrefixLen", json_object_new_int(0));
    json_object_object_add(o, "MacAddress", json_object_new_string(ep && ep->mac ? ep->mac : ""));
    json_object_object_add(o, "DriverOpts", NULL);
    return o;
}

static json_object *networks_json(struct ks_engine *e, const char *id, json_object *config,
                                  bool live)
{
    json_object *o = json_object_new_object();
    const char *mode = primary_of(config);
    if (strncmp(mode, "container:", 10) == 0)
        return o;
    json_object *ec = ks_json_get_type(ks_json_get(config, "NetworkingConfig"), "EndpointsConfig",
                                       json_type_object);
    struct ks_net_ep_record **eps = NULL;
    if (live && ks_netdb_ep_list(db_of(e), NULL, id, &eps, NULL) < 0)
        eps = NULL;
    /* The primary network first, then the others as configured. */
    size_t nkeys = 1 + (ec ? (size_t)json_object_object_length(ec) : 0), k = 0;
    const char **keys = calloc(nkeys, sizeof(char *));
    if (keys) {
        keys[k++] = mode;
        if (ec) {
            json_object_object_foreach(ec, key, v)
            {
                (void)v;
                if (strcmp(key, mode) != 0)
                    keys[k++] = key;
            }
        }
    }
    for (size_t i = 0; keys && i < k; i++) {
        _cleanup_net_record_ struct ks_net_record *n = NULL;
        ks_netdb_find(db_of(e), keys[i], &n, NULL);
        const struct ks_net_ep_record *ep = NULL;
        for (size_t j = 0; n && eps && eps[j]; j++)
            if (strcmp(eps[j]->network_id, n->id) == 0)
                ep = eps[j];
        json_object_object_add(o, n ? n->name : keys[i],
                               endpoint_json(n, id, ep, ks_json_get(ec, keys[i])));
    }
    free(keys);
    ks_net_ep_records_free(eps);
    return o;
}

int ks_net_settings_json(struct ks_engine *e, const char *id, json_object *config, bool live,
                         json_object **ret, struct ks_error **err)
{
    (void)err;
    json_object *o = json_object_new_object();
    json_object *nets = networks_json(e, id, config, live);
    json_object *bridge = ks_json_get(nets, "bridge");
    char br[16] = "";
    if (bridge && live && *ks_json_str(bridge, "IPAddress"))
        ks_net_default_bridge(e, br);
    _cleanup_free_ char *run = ks_container_run_dir(e, id), *sandbox = NULL;
    if (live && run && asprintf(&sandbox, "%s/netns", run) < 0)
        sandbox = NULL;
    json_object_object_add(o, "Bridge", json_object_new_string(br));
    json_object_object_add(o, "SandboxID", json_object_new_string(live ? id : ""));
    json_object_object_add(o, "HairpinMode", json_object_new_boolean(false));
    json_object_object_add(o, "LinkLocalIPv6Address", json_object_new_string(""));
    json_object_object_add(o, "LinkLocalIPv6PrefixLen", json_object_new_int(0));
    json_object_object_add(o, "Ports", ports_json(e, id, config, live));
    json_object_object_add(o, "SandboxKey", json_object_new_string(sandbox ? sandbox : ""));
    static const char *const top[] = {"EndpointID", "Gateway",     "GlobalIPv6Address",
                                      "IPAddress",  "IPv6Gateway", "MacAddress"};
    for (size_t i = 0; i < KS_ELEMENTSOF(top); i++) {
        const char *v = bridge ? ks_json_str(bridge, top[i]) : NULL;
        json_object_object_add(o, top[i], json_object_new_string(v ? v : ""));
    }
    json_object_object_add(o, "GlobalIPv6PrefixLen", json_object_new_int(0));
    json_object_object_add(o, "IPPrefixLen",
                           json_object_new_int((int)ks_json_int(bridge, "IPPrefixLen", 0)));
    json_object_object_add(o, "Networks", nets);
    *ret = o;
    return 0;
}

int ks_net_ports_summary(struct ks_engine *e, const char *id, json_object *config, char **ret,
                         struct ks_error **err)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return ks_error_set(err, ENOMEM, "ports");
    struct ks_net_port_record *p = NULL;
    size_t n = 0;
    int r = ks_netdb_port_list(db_of(e), id, &p, &n, err);
    bool first = true;
    for (size_t i = 0; r >= 0 && i < n; i++) {
        fprintf(f, "%s%s:%u->%u/%s", first ? "" : ", ", *p[i].host_ip ? p[i].host_ip : "0.0.0.0",
                p[i].host_port, p[i].ctr_port, p[i].proto);
        first = false;
    }
    /* Exposed ports nothing publishes, as Docker lists them. */
    json_object *exposed =
        ks_json_get_type(ks_json_get(config, "Config"), "ExposedPorts", json_type_object);
    if (r >= 0 && exposed) {
        json_object_object_foreach(exposed, k, v)
        {
            (void)v;
            bool published = false;
            for (size_t i = 0; i < n && !published; i++) {
                char key[32];
                snprintf(key, sizeof(key), "%u/%s", p[i].ctr_port, p[i].proto);
                published = strcmp(key, k) == 0;
            }
            if (!published) {
                fprintf(f, "%s%s", first ? "" : ", ", k);
                first = false;
            }
        }
    }
    ks_net_port_records_free(p, n);
    if (fclose(f) != 0 || r < 0) {
        free(text);
        return r < 0 ? r : ks_error_set(err, ENOMEM, "ports");
    }
    *ret = text;
    return 0;
}
