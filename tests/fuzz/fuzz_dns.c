/* libFuzzer target: DNS messages reach the embedded resolver from any process in a container
 * and from upstream servers. Every section of any input is walked; whatever parses as a query
 * gets a reply built, which must parse back with the same question; a name read must be
 * re-readable and, unless escaped, re-encodable to the same text. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const uint8_t *msg, size_t len)
{
    struct ks_dns_header h;
    if (ks_dns_header_read(msg, len, &h) < 0)
        return;
    size_t off = KS_DNS_HEADER_LEN;
    for (unsigned i = 0; i < h.qdcount; i++) {
        struct ks_dns_question q;
        if (ks_dns_question_read(msg, len, &off, &q) < 0)
            return;
        if (off > len || strlen(q.name) > KS_DNS_NAME_TEXT_MAX)
            abort();
    }
    unsigned rrs = (unsigned)h.ancount + h.nscount + h.arcount;
    for (unsigned i = 0; i < rrs; i++) {
        struct ks_dns_rr rr;
        if (ks_dns_rr_read(msg, len, &off, &rr) < 0)
            return;
        if (off > len || rr.rdoff + rr.rdlen > len)
            abort();
        if (rr.type == KS_DNS_TYPE_PTR || rr.type == KS_DNS_TYPE_CNAME) {
            char target[KS_DNS_NAME_TEXT_MAX + 1];
            size_t p = rr.rdoff;
            (void)ks_dns_name_read(msg, len, &p, target, sizeof(target));
        }
    }
}

/* --dns values and resolv.conf nameservers come from users and files. */
static void server(const uint8_t *data, size_t size)
{
    char s[128], ip[INET6_ADDRSTRLEN];
    unsigned port = 0;
    if (size >= sizeof(s))
        return;
    memcpy(s, data, size);
    s[size] = '\0';
    int family = ks_dns_server_parse(s, ip, &port);
    if (family > 0 && (port == 0 || port > 65535 || strlen(ip) >= sizeof(ip)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    server(data, size);
    walk(data, size);
    struct ks_dns_header h;
    struct ks_dns_question q;
    uint8_t out[KS_DNS_UDP_MAX], addr[16];
    if (ks_dns_query_parse(data, size, &h, &q) < 0) {
        int n = ks_dns_reply_build(data, size, KS_DNS_RCODE_FORMERR, NULL, 0, out, sizeof(out));
        if (size >= KS_DNS_HEADER_LEN && n != KS_DNS_HEADER_LEN)
            abort();
        return 0;
    }
    (void)ks_dns_reverse_parse(q.name, addr);
    struct ks_dns_answer a[3] = {{.type = KS_DNS_TYPE_A, .ttl = 600, .addr = {10, 0, 0, 1}},
                                 {.type = KS_DNS_TYPE_AAAA, .ttl = 600, .addr = {0xfd}},
                                 {.type = KS_DNS_TYPE_PTR, .ttl = 600, .ptr = "c1.net"}};
    int n = ks_dns_reply_build(data, size, 0, a, 3, out, sizeof(out));
    if (n < 0)
        return 0; /* a question longer than the output buffer */
    struct ks_dns_header rh;
    struct ks_dns_question rq;
    size_t off = KS_DNS_HEADER_LEN;
    if (ks_dns_header_read(out, (size_t)n, &rh) < 0 || rh.id != h.id || rh.qdcount != 1 ||
        ks_dns_question_read(out, (size_t)n, &off, &rq) < 0 || strcmp(rq.name, q.name) != 0 ||
        rq.type != q.type)
        abort();
    for (unsigned i = 0; i < rh.ancount; i++) {
        struct ks_dns_rr rr;
        if (ks_dns_rr_read(out, (size_t)n, &off, &rr) < 0 || strcmp(rr.name, q.name) != 0)
            abort();
    }
    if (off != (size_t)n)
        abort();
    /* A name without escapes encodes back to itself. */
    if (strchr(q.name, '\\') == NULL) {
        uint8_t wire[256];
        char again[KS_DNS_NAME_TEXT_MAX + 1];
        uint8_t msg[12 + 256] = {0};
        int w = ks_dns_name_write(q.name, wire, sizeof(wire));
        if (w < 0)
            abort();
        memcpy(msg + 12, wire, (size_t)w);
        size_t p = 12;
        if (ks_dns_name_read(msg, 12 + (size_t)w, &p, again, sizeof(again)) < 0 ||
            strcmp(again, q.name) != 0)
            abort();
    }
    return 0;
}
