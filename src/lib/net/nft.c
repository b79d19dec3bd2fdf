/* kiste's nftables table: one per storage root, rewritten whole in one transaction ("add table;
 * delete table; table { … }") so that it always matches the database, never touching any other
 * table. Published ports are elements of two maps (by protocol and port for every local
 * address, by address, protocol and port for one address), looked up from the prerouting hook
 * for traffic from outside and from the output hook for the host's own connections. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

#include "../base/dl.h"
#include "net.h"

static struct {
    struct nft_ctx *(*ctx_new)(uint32_t);
    void (*ctx_free)(struct nft_ctx *);
    int (*buffer_output)(struct nft_ctx *);
    int (*buffer_error)(struct nft_ctx *);
    const char *(*error_buffer)(struct nft_ctx *);
    int (*run)(struct nft_ctx *, const char *);
} nft;

static int load_err;
static char load_msg[512];

static void load(void)
{
    const struct ks_dl_sym syms[] = {
        {"nft_ctx_new", (void **)&nft.ctx_new},
        {"nft_ctx_free", (void **)&nft.ctx_free},
        {"nft_ctx_buffer_output", (void **)&nft.buffer_output},
        {"nft_ctx_buffer_error", (void **)&nft.buffer_error},
        {"nft_ctx_get_error_buffer", (void **)&nft.error_buffer},
        {"nft_run_cmd_from_buffer", (void **)&nft.run},
    };
    struct ks_error *e = NULL;
    load_err = ks_dl_load((const char *const[]){"libnftables.so.1", NULL}, "libnftables1", syms,
                          KS_ELEMENTSOF(syms), &e);
    if (e)
        snprintf(load_msg, sizeof(load_msg), "%s", e->msg);
    ks_error_free(e);
}

int ks_net_nft_run(const char *script, struct ks_error **err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, load);
    if (load_err < 0)
        return ks_error_set_plain(err, -load_err, "%s", load_msg);
    struct nft_ctx *ctx = nft.ctx_new(0);
    if (ctx == NULL)
        return ks_error_set(err, ENOMEM, "nftables");
    nft.buffer_output(ctx);
    nft.buffer_error(ctx);
    int r = 0;
    if (nft.run(ctx, script) != 0) {
        const char *msg = nft.error_buffer(ctx);
        r = ks_error_set_plain(err, EIO, "nftables: %s", msg && *msg ? msg : "failed");
    }
    nft.ctx_free(ctx);
    return r;
}

static void ip(FILE *f, uint32_t a)
{
    char s[INET_ADDRSTRLEN];
    ks_net_ip4_format(a, s);
    fputs(s, f);
}

static void set_of_bridges(FILE *f, const char *name, const struct ks_net_nft_net *nets, size_t n,
                           bool internal_only)
{
    fprintf(f, "  set %s { type ifname;", name);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        if (internal_only && !nets[i].internal)
            continue;
        fprintf(f, "%s\"%s\"", first ? " elements = { " : ", ", nets[i].bridge);
        first = false;
    }
    fprintf(f, "%s }\n", first ? "" : " }");
}

static void port_maps(FILE *f, const struct ks_net_nft_port *ports, size_t n_ports)
{
    for (int by_addr = 0; by_addr < 2; by_addr++) {
        fprintf(f, "  map %s { type %sinet_proto . inet_service : ipv4_addr . inet_service;",
                by_addr ? "ports_addr" : "ports_any", by_addr ? "ipv4_addr . " : "");
        bool first = true;
        for (size_t i = 0; i < n_ports; i++) {
            const struct ks_net_nft_port *p = &ports[i];
            if ((p->host_ip != 0) != by_addr)
                continue;
            fputs(first ? " elements = { " : ", ", f);
            first = false;
            if (by_addr) {
                ip(f, p->host_ip);
                fputs(" . ", f);
            }
            fprintf(f, "%s . %u : ", p->proto, p->host_port);
            ip(f, p->ctr_ip);
            fprintf(f, " . %u", p->ctr_port);
        }
        fprintf(f, "%s }\n", first ? "" : " }");
    }
}

char *ks_net_nft_script(const char *table, const struct ks_net_nft_net *nets, size_t n,
                        const struct ks_net_nft_port *ports, size_t n_ports)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (f == NULL)
        return NULL;
    /* "add" first: deleting a table that does not exist would fail the whole batch. */
    fprintf(f, "add table ip %s\ndelete table ip %s\n", table, table);
    if (n > 0) {
        fprintf(f, "table ip %s {\n", table);
        set_of_bridges(f, "bridges", nets, n, false);
        set_of_bridges(f, "internal", nets, n, true);
        fputs("  set nets { type ipv4_addr; flags interval;", f);
        for (size_t i = 0; i < n; i++) {
            fputs(i == 0 ? " elements = { " : ", ", f);
            ip(f, nets[i].subnet.addr & ks_net_mask(nets[i].subnet.prefix));
            fprintf(f, "/%d", nets[i].subnet.prefix);
        }
        fputs(" } }\n", f);
        port_maps(f, ports, n_ports);
        fputs("  chain ports {\n"
              "    dnat ip to ip daddr . meta l4proto . th dport map @ports_addr\n"
              "    dnat ip to meta l4proto . th dport map @ports_any\n"
              "  }\n"
              "  chain prerouting { type nat hook prerouting priority dstnat; policy accept;\n"
              "    fib daddr type local jump ports;\n  }\n"
              "  chain output { type nat hook output priority -100; policy accept;\n"
              "    fib daddr type local jump ports;\n  }\n"
              "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;\n"
              /* Containers reaching past the host, except from internal networks. */
              "    oifname != @bridges iifname != @internal ip saddr @nets masquerade\n"
              /* The host's 127.0.0.1 cannot be a source on the bridge. */
              "    oifname @bridges ip saddr 127.0.0.0/8 masquerade\n"
              /* Hairpin: a container reaching a published port comes back through the host,
               * so the answer must too. */
              "    oifname @bridges ct status dnat ip saddr @nets masquerade\n"
              "  }\n"
              "  chain forward { type filter hook forward priority filter; policy accept;\n"
              "    iifname @internal oifname != @internal drop\n"
              "    oifname @internal iifname != @internal drop\n"
              "  }\n"
              "}\n",
              f);
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
