/* Published ports at start: HostConfig.PortBindings, and with PublishAllPorts every exposed
 * port on a free host port. A host port is taken when no container of the root has it and a
 * socket of the host can bind it (so a port some service listens on is refused, as Docker's
 * bind would be). */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../base/json.h"
#include "../engine/container.h"
#include "../image/store.h"
#include "internal.h"

#define EPHEMERAL_LO    49153
#define EPHEMERAL_HI    60999
#define EPHEMERAL_TRIES 64

static bool host_port_free(const char *proto, uint32_t ip, unsigned port)
{
    int type = strcmp(proto, "udp") == 0 ? SOCK_DGRAM : SOCK_STREAM;
    int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    if (s < 0)
        return true;
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(ip)};
    bool ok = bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(s);
    return ok;
}

/* Records one binding, choosing the host port in lo…hi (0: an ephemeral one). */
static int bind_one(struct ks_engine *e, const char *id, const char *proto, const char *host_ip,
                    unsigned lo, unsigned hi, const char *ctr_ip, unsigned ctr_port,
                    struct ks_error **err)
{
    uint32_t hip = 0;
    if (*host_ip && ks_net_ip4_parse(host_ip, &hip) < 0)
        return ks_error_msg(err, "publishing on %s is not supported (IPv4 addresses only)",
                            host_ip);
    bool ephemeral = lo == 0;
    unsigned tries = ephemeral ? EPHEMERAL_TRIES : hi - lo + 1;
    unsigned start = lo;
    if (ephemeral) {
        unsigned rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), 0) < 0)
            rnd = (unsigned)getpid();
        start = EPHEMERAL_LO + rnd % (EPHEMERAL_HI - EPHEMERAL_LO + 1);
    }
    struct ks_net_port_record p = {.container_id = (char *)id,
                                   .proto = (char *)proto,
                                   .host_ip = (char *)(hip ? host_ip : ""),
                                   .ctr_ip = (char *)ctr_ip,
                                   .ctr_port = ctr_port};
    for (unsigned i = 0; i < tries; i++) {
        p.host_port = ephemeral ? EPHEMERAL_LO +
                                      (start - EPHEMERAL_LO + i) % (EPHEMERAL_HI - EPHEMERAL_LO + 1)
                                : lo + i;
        bool last = i + 1 == tries;
        if (!host_port_free(proto, hip, p.host_port)) {
            if (last)
                return ks_error_set_plain(err, EADDRINUSE,
                                          "Bind for %s:%u failed: port is already allocated",
                                          hip ? host_ip : "0.0.0.0", p.host_port);
            continue;
        }
        int r = ks_netdb_port_put(ks_store_db(e->store), &p, last ? err : NULL);
        if (r == 0)
            return 0;
        if (r != -EADDRINUSE || last)
            return r;
    }
    return ks_error_set_plain(err, EADDRINUSE, "no free host port");
}

static int parse_key(const char *key, unsigned *port, char proto[8])
{
    char *end;
    unsigned long v = strtoul(key, &end, 10);
    if (v == 0 || v > 65535)
        return -EINVAL;
    *port = (unsigned)v;
    snprintf(proto, 8, "%s", *end == '/' ? end + 1 : "tcp");
    return strcmp(proto, "tcp") == 0 || strcmp(proto, "udp") == 0 || strcmp(proto, "sctp") == 0
               ? 0
               : -EINVAL;
}

static int bind_binding(struct ks_engine *e, const char *id, const char *key, json_object *b,
                        const char *ctr_ip, struct ks_error **err)
{
    unsigned port, lo = 0, hi = 0;
    char proto[8];
    if (parse_key(key, &port, proto) < 0)
        return ks_error_msg(err, "invalid port %s", key);
    const char *hip = ks_json_str(b, "HostIp");
    const char *hp = ks_json_str(b, "HostPort");
    if (hip == NULL || strcmp(hip, "0.0.0.0") == 0)
        hip = "";
    if (hp && *hp) {
        char *end;
        lo = hi = (unsigned)strtoul(hp, &end, 10);
        if (*end == '-')
            hi = (unsigned)strtoul(end + 1, &end, 10);
        if (*end || lo == 0 || hi > 65535 || hi < lo)
            return ks_error_msg(err, "invalid host port %s", hp);
    }
    return bind_one(e, id, proto, hip, lo, hi, ctr_ip, port, err);
}

int ks_net_publish(struct ks_engine *e, const char *id, json_object *config, const char *ctr_ip,
                   struct ks_error **err)
{
    json_object *hc = ks_json_get(config, "HostConfig");
    json_object *pb = ks_json_get_type(hc, "PortBindings", json_type_object);
    int n = 0;
    if (pb) {
        json_object_object_foreach(pb, key, arr)
        {
            size_t len =
                json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
            for (size_t i = 0; i < len; i++) {
                int r = bind_binding(e, id, key, json_object_array_get_idx(arr, i), ctr_ip, err);
                if (r < 0)
                    return r;
                n++;
            }
        }
    }
    json_object *exposed =
        ks_json_get_type(ks_json_get(config, "Config"), "ExposedPorts", json_type_object);
    if (ks_json_bool(hc, "PublishAllPorts", false) && exposed) {
        json_object_object_foreach(exposed, key, v)
        {
            (void)v;
            if (pb && ks_json_get(pb, key))
                continue;
            _cleanup_json_ json_object *b = json_object_new_object();
            int r = bind_binding(e, id, key, b, ctr_ip, err);
            if (r < 0)
                return r;
            n++;
        }
    }
    return n;
}
