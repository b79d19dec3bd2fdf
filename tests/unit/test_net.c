/* The net module's pure parts: -p and --expose parsing, subnets and the choice of a free one
 * against a route list, address allocation, MACs, and the nftables script. */
#include <string.h>

#include "lib/base/json.h"
#include "lib/net/net.h"
#include "tap.h"

static void test_port_specs(void)
{
    struct ks_net_port_spec p;
    tap_ok(ks_net_port_spec_parse("80", &p, NULL) == 0 && p.ctr_start == 80 && p.ctr_end == 80 &&
               p.host_start == 0 && strcmp(p.proto, "tcp") == 0 && p.host_ip[0] == '\0',
           "80: container port only");
    tap_ok(ks_net_port_spec_parse("8080:80", &p, NULL) == 0 && p.host_start == 8080 &&
               p.ctr_start == 80,
           "8080:80");
    tap_ok(ks_net_port_spec_parse("127.0.0.1:8080:80/udp", &p, NULL) == 0 &&
               strcmp(p.host_ip, "127.0.0.1") == 0 && p.host_start == 8080 &&
               strcmp(p.proto, "udp") == 0,
           "ip:host:ctr/udp");
    tap_ok(ks_net_port_spec_parse("127.0.0.1::80", &p, NULL) == 0 && p.host_start == 0 &&
               strcmp(p.host_ip, "127.0.0.1") == 0,
           "ip::ctr");
    tap_ok(ks_net_port_spec_parse("[::1]:8080:80", &p, NULL) == 0 &&
               strcmp(p.host_ip, "::1") == 0 && p.host_start == 8080,
           "[v6]:host:ctr");
    tap_ok(ks_net_port_spec_parse("8000-8010:80-90", &p, NULL) == 0 && p.host_start == 8000 &&
               p.host_end == 8010 && p.ctr_start == 80 && p.ctr_end == 90,
           "ranges");
    tap_ok(ks_net_port_spec_parse("8000-8010:80", &p, NULL) == 0 && p.host_end == 8010 &&
               p.ctr_end == 80,
           "a host range for one container port");
    static const char *const bad[] = {
        "",        "abc",      "0",       "65536", "80/icmp", "1.2.3:80:80", "8000-8010:80-85",
        "[::1]80", "[zz]:1:2", "1:2:3:4", "90-80", "-1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ks_error *e = NULL;
        tap_ok(ks_net_port_spec_parse(bad[i], &p, &e) == -EINVAL && e != NULL, "rejects `%s`",
               bad[i]);
        ks_error_free(e);
    }
    unsigned lo, hi;
    char proto[4];
    tap_ok(ks_net_expose_parse("8000-8002/udp", &lo, &hi, proto, NULL) == 0 && lo == 8000 &&
               hi == 8002 && strcmp(proto, "udp") == 0,
           "--expose range/proto");
    tap_ok(ks_net_expose_parse("x", &lo, &hi, proto, NULL) < 0, "--expose rejects junk");
}

static void test_port_json(void)
{
    json_object *c = json_object_new_object(), *hc = json_object_new_object();
    tap_ok(ks_net_port_spec_add(c, hc, "127.0.0.1:8080-8081:80-81", NULL) == 0, "add a range");
    tap_ok(ks_net_port_spec_add(c, hc, "53/udp", NULL) == 0, "add udp");
    json_object *pb = ks_json_get(hc, "PortBindings");
    json_object *b = json_object_array_get_idx(ks_json_get(pb, "81/tcp"), 0);
    TAP_EQ_STR(ks_json_str(b, "HostPort"), "8081", "range maps port to port");
    TAP_EQ_STR(ks_json_str(b, "HostIp"), "127.0.0.1", "host ip kept");
    b = json_object_array_get_idx(ks_json_get(pb, "53/udp"), 0);
    TAP_EQ_STR(ks_json_str(b, "HostPort"), "", "no host port: chosen at start");
    tap_ok(ks_json_get(ks_json_get(c, "ExposedPorts"), "80/tcp") != NULL, "-p also exposes");
    tap_ok(ks_net_expose_add(c, "9000/tcp", NULL) == 0 &&
               ks_json_get(ks_json_get(c, "ExposedPorts"), "9000/tcp") != NULL,
           "--expose");
    json_object_put(c);
    json_object_put(hc);
}

static void test_subnets(void)
{
    struct ks_net_cidr c;
    tap_ok(ks_net_cidr_parse("10.1.2.3/8", &c) == 0 && c.prefix == 8 && c.addr == 0x0a010203,
           "cidr parse");
    tap_ok(ks_net_cidr_parse("10.1.2.3/33", &c) < 0 && ks_net_cidr_parse("10.1/8", &c) < 0 &&
               ks_net_cidr_parse("10.0.0.0/", &c) < 0,
           "cidr rejects junk");
    struct ks_net_cidr routes[] = {
        {0, 0},           /* default route: never a collision */
        {0xc0000200, 24}, /* 192.0.2.0/24 */
        {0xac110000, 16}, /* 172.17.0.0/16 */
        {0xac120000, 24}, /* 172.18.0.0/24 inside 172.18/16 */
    };
    tap_ok(ks_net_subnet_choose(routes, 4, &c) == 0 && c.addr == 0xac130000 && c.prefix == 16,
           "first free pool is 172.19.0.0/16");
    tap_ok(ks_net_subnet_choose(routes, 1, &c) == 0 && c.addr == 0xac110000,
           "172.17.0.0/16 when nothing collides");
    struct ks_net_cidr all172 = {0xac000000, 8};
    tap_ok(ks_net_subnet_choose(&all172, 1, &c) == 0 && c.addr == 0xc0a80000 && c.prefix == 20,
           "then 192.168.0.0/20");
    struct ks_net_cidr both[] = {{0xac000000, 8}, {0xc0a80000, 16}};
    tap_ok(ks_net_subnet_choose(both, 2, &c) == -ENOSPC, "ENOSPC when the pools are taken");
}

static void test_allocate(void)
{
    struct ks_net_cidr sub = {0x0a000000, 24};
    uint32_t gw = 0x0a000001, ip;
    tap_ok(ks_net_ip4_allocate(&sub, NULL, gw, NULL, 0, &ip) == 0 && ip == 0x0a000002,
           "first after the gateway");
    uint32_t used[] = {0x0a000003, 0x0a000002, 0x0a000005};
    tap_ok(ks_net_ip4_allocate(&sub, NULL, gw, used, 3, &ip) == 0 && ip == 0x0a000004,
           "lowest free");
    struct ks_net_cidr range = {0x0a000080, 25};
    tap_ok(ks_net_ip4_allocate(&sub, &range, gw, used, 3, &ip) == 0 && ip == 0x0a000080,
           "inside --ip-range");
    struct ks_net_cidr tiny = {0x0a000000, 30};
    uint32_t one = 0x0a000002;
    tap_ok(ks_net_ip4_allocate(&tiny, NULL, gw, &one, 1, &ip) == -ENOSPC,
           "full: no network, gateway or broadcast address handed out");
    char mac[18];
    ks_net_mac_from_ip4(0xac110002, mac);
    TAP_EQ_STR(mac, "02:42:ac:11:00:02", "MAC from the address");
    tap_ok(ks_net_mac_parse("02:42:ac:11:00:02", NULL) &&
               !ks_net_mac_parse("01:00:00:00:00:00", NULL) &&
               !ks_net_mac_parse("02:42:ac:11:00", NULL) &&
               !ks_net_mac_parse("02-42-ac-11-00-02", NULL),
           "MAC parse: unicast, six octets, colons");
}

static void test_nft_script(void)
{
    struct ks_net_nft_net nets[] = {{"kiste0", {0xac110000, 16}, false},
                                    {"ks-abc", {0x0a000000, 24}, true}};
    struct ks_net_nft_port ports[] = {{"tcp", 0, 8080, 0xac110002, 80},
                                      {"udp", 0x7f000001, 5353, 0xac110003, 53}};
    char *s = ks_net_nft_script("kiste-x", nets, 2, ports, 2);
    tap_ok(s && strncmp(s, "add table ip kiste-x\ndelete table ip kiste-x\ntable ip kiste-x {",
                        62) == 0,
           "replaces only its own table, atomically");
    tap_ok(s && strstr(s, "tcp . 8080 : 172.17.0.2 . 80"), "DNAT for every address");
    tap_ok(s && strstr(s, "127.0.0.1 . udp . 5353 : 172.17.0.3 . 53"), "DNAT for one address");
    tap_ok(s && strstr(s, "set internal { type ifname; elements = { \"ks-abc\" } }"),
           "internal networks");
    tap_ok(s && strstr(s, "172.17.0.0/16, 10.0.0.0/24"), "masqueraded subnets");
    free(s);
    s = ks_net_nft_script("kiste", NULL, 0, NULL, 0);
    TAP_EQ_STR(s, "add table ip kiste\ndelete table ip kiste\n", "no network: no table");
    free(s);
}

int main(void)
{
    tap_plan_auto();
    test_port_specs();
    test_port_json();
    test_subnets();
    test_allocate();
    test_nft_script();
    return tap_done();
}
