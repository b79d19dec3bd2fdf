/* IPv4 addresses and subnets: parsing, Docker's default address pools, and the allocation of
 * a free address in a subnet. Pure functions, apart from reading the host's routes. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/fs.h"
#include "net.h"

uint32_t ks_net_mask(int prefix)
{
    return prefix <= 0 ? 0 : prefix >= 32 ? 0xffffffffu : ~((1u << (32 - prefix)) - 1);
}

int ks_net_ip4_parse(const char *s, uint32_t *ret)
{
    struct in_addr a;
    if (s == NULL || inet_pton(AF_INET, s, &a) != 1)
        return -EINVAL;
    *ret = ntohl(a.s_addr);
    return 0;
}

void ks_net_ip4_format(uint32_t a, char *out)
{
    struct in_addr n = {.s_addr = htonl(a)};
    inet_ntop(AF_INET, &n, out, INET_ADDRSTRLEN);
}

int ks_net_cidr_parse(const char *s, struct ks_net_cidr *ret)
{
    char buf[INET_ADDRSTRLEN + 4];
    if (s == NULL || strlen(s) >= sizeof(buf))
        return -EINVAL;
    snprintf(buf, sizeof(buf), "%s", s);
    int prefix = 32;
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = '\0';
        char *end;
        long p = strtol(slash + 1, &end, 10);
        if (slash[1] == '\0' || *end || p < 0 || p > 32)
            return -EINVAL;
        prefix = (int)p;
    }
    if (ks_net_ip4_parse(buf, &ret->addr) < 0)
        return -EINVAL;
    ret->prefix = prefix;
    return 0;
}

bool ks_net_cidr_overlap(const struct ks_net_cidr *a, const struct ks_net_cidr *b)
{
    uint32_t m = ks_net_mask(a->prefix < b->prefix ? a->prefix : b->prefix);
    return (a->addr & m) == (b->addr & m);
}

bool ks_net_cidr_contains(const struct ks_net_cidr *c, uint32_t a)
{
    uint32_t m = ks_net_mask(c->prefix);
    return (c->addr & m) == (a & m);
}

int ks_net_subnet_choose(const struct ks_net_cidr *avoid, size_t n_avoid, struct ks_net_cidr *ret)
{
    /* Docker's default-address-pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s. */
    for (unsigned i = 0; i < 15 + 16; i++) {
        struct ks_net_cidr c =
            i < 15 ? (struct ks_net_cidr){(172u << 24) | ((17u + i) << 16), 16}
                   : (struct ks_net_cidr){(192u << 24) | (168u << 16) | ((i - 15) << 12), 20};
        size_t j;
        for (j = 0; j < n_avoid; j++)
            /* A default route overlaps everything; it is what leaves the host, not a link. */
            if (avoid[j].prefix > 0 && ks_net_cidr_overlap(&c, &avoid[j]))
                break;
        if (j == n_avoid) {
            *ret = c;
            return 0;
        }
    }
    return -ENOSPC;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int ks_net_ip4_allocate(const struct ks_net_cidr *subnet, const struct ks_net_cidr *range,
                        uint32_t gateway, const uint32_t *used, size_t n, uint32_t *ret)
{
    if (subnet->prefix > 30)
        return -ENOSPC;
    uint32_t m = ks_net_mask(subnet->prefix);
    uint32_t net = subnet->addr & m, bcast = net | ~m;
    uint32_t lo = net + 1, hi = bcast - 1;
    if (range) {
        uint32_t rm = ks_net_mask(range->prefix);
        uint32_t rlo = range->addr & rm, rhi = rlo | ~rm;
        lo = rlo > lo ? rlo : lo;
        hi = rhi < hi ? rhi : hi;
    }
    uint32_t *sorted = NULL;
    if (n > 0) {
        sorted = malloc(n * sizeof(*sorted));
        if (sorted == NULL)
            return -ENOMEM;
        memcpy(sorted, used, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), cmp_u32);
    }
    size_t j = 0;
    int r = -ENOSPC;
    for (uint64_t a = lo; a <= hi; a++) {
        while (j < n && sorted[j] < a)
            j++;
        if ((j < n && sorted[j] == a) || a == gateway)
            continue;
        *ret = (uint32_t)a;
        r = 0;
        break;
    }
    free(sorted);
    return r;
}

void ks_net_mac_from_ip4(uint32_t a, char *out)
{
    snprintf(out, 18, "02:42:%02x:%02x:%02x:%02x", (a >> 24) & 0xff, (a >> 16) & 0xff,
             (a >> 8) & 0xff, a & 0xff);
}

bool ks_net_mac_parse(const char *s, unsigned char out[6])
{
    unsigned v[6];
    char tail;
    if (s == NULL || strlen(s) != 17 ||
        sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) !=
            6)
        return false;
    for (int i = 0; i < 6; i++)
        if (s[i * 3 + 2] != (i == 5 ? '\0' : ':'))
            return false;
    if (v[0] & 1)
        return false; /* multicast */
    for (int i = 0; out && i < 6; i++)
        out[i] = (unsigned char)v[i];
    return true;
}

int ks_net_host_routes(struct ks_net_cidr **ret, size_t *ret_n, struct ks_error **err)
{
    _cleanup_free_ char *text = NULL;
    int r = ks_read_file("/proc/net/route", &text, NULL, err);
    if (r < 0)
        return r;
    size_t n = 0, cap = 16;
    _cleanup_free_ struct ks_net_cidr *v = malloc(cap * sizeof(*v));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "routes");
    char *save = NULL;
    /* Iface Destination Gateway Flags RefCnt Use Metric Mask …, hex in network byte order. */
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char ifname[32];
        unsigned dst, gw, flags, mask;
        if (sscanf(line, "%31s %x %x %x %*d %*d %*d %x", ifname, &dst, &gw, &flags, &mask) != 5)
            continue; /* the header */
        uint32_t m = ntohl(mask);
        int prefix = 0;
        while (prefix < 32 && (m & (1u << (31 - prefix))))
            prefix++;
        if (n == cap) {
            struct ks_net_cidr *nv = realloc(v, (cap *= 2) * sizeof(*v));
            if (nv == NULL)
                return ks_error_set(err, ENOMEM, "routes");
            v = nv;
        }
        v[n++] = (struct ks_net_cidr){ntohl(dst), prefix};
    }
    *ret = TAKE_PTR(v);
    *ret_n = n;
    return 0;
}
