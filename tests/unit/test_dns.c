/* The DNS wire format: queries built and parsed back, replies with A, AAAA and PTR answers,
 * NXDOMAIN and truncation, reverse names, and hostile messages (pointer loops, pointers into the
 * header or forwards, overlong names and labels, every truncation of a valid message) refused
 * without reading outside the buffer. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/json.h"
#include "engine/container.h"
#include "net/dns.h"
#include "net/endpoint.h"
#include "tap.h"

static void test_query_round_trip(void)
{
    uint8_t buf[512];
    int n = ks_dns_query_build(0x1234, "web.Example.org.", KS_DNS_TYPE_AAAA, buf, sizeof(buf));
    TAP_EQ_INT(n, 12 + 17 + 4, "query length");
    struct ks_dns_header h;
    struct ks_dns_question q;
    TAP_EQ_INT(ks_dns_query_parse(buf, (size_t)n, &h, &q), 0, "query parses");
    TAP_EQ_INT(h.id, 0x1234, "id");
    tap_ok(h.flags & KS_DNS_FLAG_RD, "recursion desired");
    TAP_EQ_STR(q.name, "web.Example.org", "name without the final dot, case kept");
    TAP_EQ_INT(q.type, KS_DNS_TYPE_AAAA, "type");
    TAP_EQ_INT(q.qclass, KS_DNS_CLASS_IN, "class");

    n = ks_dns_query_build(1, "", KS_DNS_TYPE_NS, buf, sizeof(buf));
    TAP_EQ_INT(n, 12 + 1 + 4, "root query");
    TAP_EQ_INT(ks_dns_query_parse(buf, (size_t)n, &h, &q), 0, "root parses");
    TAP_EQ_STR(q.name, "", "root is empty");

    TAP_EQ_INT(ks_dns_query_build(1, "a..b", 1, buf, sizeof(buf)), -EINVAL, "empty label");
    char label[80];
    memset(label, 'x', 64);
    label[64] = '\0';
    TAP_EQ_INT(ks_dns_query_build(1, label, 1, buf, sizeof(buf)), -EINVAL, "64-byte label");
    char longname[300];
    for (int i = 0; i < 64; i++)
        memcpy(longname + 4 * i, "abc.", 4);
    longname[255] = '\0';
    TAP_EQ_INT(ks_dns_query_build(1, longname, 1, buf, sizeof(buf)), -EINVAL,
               "a name longer than 255 bytes");
    TAP_EQ_INT(ks_dns_query_build(1, "abc", 1, buf, 16), -EMSGSIZE, "small buffer");

    /* Every cut of a valid query is refused. */
    n = ks_dns_query_build(7, "a.b.c", KS_DNS_TYPE_A, buf, sizeof(buf));
    bool all = true;
    for (int len = 0; len < n; len++)
        all &= ks_dns_query_parse(buf, (size_t)len, &h, &q) == -EBADMSG;
    tap_ok(all, "every truncation refused");

    buf[2] |= 0x80; /* QR: a response is not a query */
    TAP_EQ_INT(ks_dns_query_parse(buf, (size_t)n, &h, &q), -EBADMSG, "a response");
    buf[2] &= 0x7f;
    buf[5] = 2;
    TAP_EQ_INT(ks_dns_query_parse(buf, (size_t)n, &h, &q), -EBADMSG, "two questions");
    buf[5] = 1;
    buf[2] |= 0x10; /* opcode 2 */
    TAP_EQ_INT(ks_dns_query_parse(buf, (size_t)n, &h, &q), -EBADMSG, "not opcode QUERY");
}

/* A header with one question whose name is given in wire form. */
static size_t message(uint8_t *buf, const void *name, size_t name_len)
{
    memset(buf, 0, 12);
    buf[5] = 1;
    memcpy(buf + 12, name, name_len);
    memcpy(buf + 12 + name_len, "\0\1\0\1", 4);
    return 12 + name_len + 4;
}

static void test_hostile_names(void)
{
    uint8_t buf[1024];
    char out[KS_DNS_NAME_TEXT_MAX + 1];
    size_t off;

    message(buf, "\xc0\x0c", 2);
    off = 12;
    TAP_EQ_INT(ks_dns_name_read(buf, 18, &off, out, sizeof(out)), -EBADMSG, "pointer to itself");
    message(buf, "\xc0\x10\0\0\0", 5);
    off = 12;
    TAP_EQ_INT(ks_dns_name_read(buf, 21, &off, out, sizeof(out)), -EBADMSG, "forward pointer");
    message(buf, "\xc0\x02", 2);
    off = 12;
    TAP_EQ_INT(ks_dns_name_read(buf, 18, &off, out, sizeof(out)), -EBADMSG,
               "pointer into the header");
    message(buf,
            "\x01"
            "a\xc0\x0c",
            4);
    off = 12;
    TAP_EQ_INT(ks_dns_name_read(buf, 20, &off, out, sizeof(out)), -EBADMSG,
               "a loop through an earlier label");
    message(buf, "\x40", 1);
    off = 12;
    TAP_EQ_INT(ks_dns_name_read(buf, 17, &off, out, sizeof(out)), -EBADMSG, "extended label type");
    message(buf,
            "\x05"
            "ab",
            3);
    off = 12;
    TAP_EQ_INT(ks_dns_name_read(buf, 15, &off, out, sizeof(out)), -EBADMSG, "label past the end");

    /* Each pointer goes back to a longer suffix: 200 labels of "a" expand beyond 255. */
    size_t pos = 12, prev = 12;
    buf[pos++] = 1;
    buf[pos++] = 'a';
    buf[pos++] = 0;
    for (int i = 0; i < 200; i++) {
        size_t here = pos;
        buf[pos++] = 1;
        buf[pos++] = 'a';
        buf[pos++] = (uint8_t)(0xc0 | prev >> 8);
        buf[pos++] = (uint8_t)prev;
        prev = here;
    }
    off = pos - 4;
    TAP_EQ_INT(ks_dns_name_read(buf, pos, &off, out, sizeof(out)), -EBADMSG,
               "a pointer chain expanding beyond 255 bytes");

    /* A valid compressed name: "x.example" at 12, then "www" + pointer. */
    memcpy(buf + 12,
           "\x01x\x07"
           "example\x00\x03www\xc0\x0e",
           17);
    off = 23;
    TAP_EQ_INT(ks_dns_name_read(buf, 29, &off, out, sizeof(out)), 0, "compressed name");
    TAP_EQ_STR(out, "www.example", "compressed name expanded");
    TAP_EQ_INT(off, 29, "offset after the pointer");
    TAP_EQ_INT(ks_dns_name_read(buf, 29, &(size_t){23}, out, 8), -EMSGSIZE, "small output");

    memcpy(buf + 12,
           "\x03"
           "a.\\\x02\x01 \x00",
           8);
    off = 12;
    TAP_EQ_INT(ks_dns_name_read(buf, 20, &off, out, sizeof(out)), 0, "odd bytes");
    TAP_EQ_STR(out, "a\\046\\092.\\001\\032", "dots, backslashes and spaces escaped");
}

static void test_replies(void)
{
    uint8_t q[512], r[512];
    int qn = ks_dns_query_build(0xbeef, "db", KS_DNS_TYPE_A, q, sizeof(q));
    struct ks_dns_answer a[2] = {{.type = KS_DNS_TYPE_A, .ttl = 600},
                                 {.type = KS_DNS_TYPE_A, .ttl = 600}};
    inet_pton(AF_INET, "172.30.0.2", a[0].addr);
    inet_pton(AF_INET, "172.30.0.3", a[1].addr);
    int n = ks_dns_reply_build(q, (size_t)qn, KS_DNS_RCODE_NOERROR, a, 2, r, sizeof(r));
    TAP_EQ_INT(n, qn + 2 * 16, "reply with two A answers");
    struct ks_dns_header h;
    ks_dns_header_read(r, (size_t)n, &h);
    TAP_EQ_INT(h.id, 0xbeef, "id copied");
    tap_ok((h.flags & (KS_DNS_FLAG_QR | KS_DNS_FLAG_AA | KS_DNS_FLAG_RD | KS_DNS_FLAG_RA)) ==
               (KS_DNS_FLAG_QR | KS_DNS_FLAG_AA | KS_DNS_FLAG_RD | KS_DNS_FLAG_RA),
           "QR AA RD RA");
    TAP_EQ_INT(h.ancount, 2, "two answers");
    size_t off = 12;
    struct ks_dns_question qq;
    TAP_EQ_INT(ks_dns_question_read(r, (size_t)n, &off, &qq), 0, "question read back");
    struct ks_dns_rr rr;
    TAP_EQ_INT(ks_dns_rr_read(r, (size_t)n, &off, &rr), 0, "first answer");
    TAP_EQ_STR(rr.name, "db", "answer named by pointer");
    TAP_EQ_INT(rr.ttl, 600, "ttl");
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, r + rr.rdoff, ip, sizeof(ip));
    TAP_EQ_STR(ip, "172.30.0.2", "address");
    TAP_EQ_INT(ks_dns_rr_read(r, (size_t)n, &off, &rr), 0, "second answer");
    TAP_EQ_INT((long long)off, n, "the whole message read");
    TAP_EQ_INT(ks_dns_rr_read(r, (size_t)n - 1, &(size_t){off - 16}, &rr), -EBADMSG,
               "data past the end refused");

    /* Too small for both: the first fits, TC is set. */
    n = ks_dns_reply_build(q, (size_t)qn, 0, a, 2, r, (size_t)qn + 20);
    ks_dns_header_read(r, (size_t)n, &h);
    TAP_EQ_INT(h.ancount, 1, "truncated to one answer");
    tap_ok(h.flags & KS_DNS_FLAG_TC, "TC set");

    qn = ks_dns_query_build(9, "nope", KS_DNS_TYPE_A, q, sizeof(q));
    n = ks_dns_reply_build(q, (size_t)qn, KS_DNS_RCODE_NXDOMAIN, NULL, 0, r, sizeof(r));
    ks_dns_header_read(r, (size_t)n, &h);
    TAP_EQ_INT(KS_DNS_RCODE(h.flags), KS_DNS_RCODE_NXDOMAIN, "NXDOMAIN");
    TAP_EQ_INT(h.ancount, 0, "no answers");
    TAP_EQ_INT(h.qdcount, 1, "question kept");

    struct ks_dns_answer six = {.type = KS_DNS_TYPE_AAAA, .ttl = 1};
    inet_pton(AF_INET6, "fd00::5", six.addr);
    qn = ks_dns_query_build(3, "v6", KS_DNS_TYPE_AAAA, q, sizeof(q));
    n = ks_dns_reply_build(q, (size_t)qn, 0, &six, 1, r, sizeof(r));
    off = (size_t)qn;
    TAP_EQ_INT(ks_dns_rr_read(r, (size_t)n, &off, &rr), 0, "AAAA answer");
    TAP_EQ_INT(rr.rdlen, 16, "16 bytes");
    tap_ok(memcmp(r + rr.rdoff, six.addr, 16) == 0, "AAAA address");

    struct ks_dns_answer ptr = {.type = KS_DNS_TYPE_PTR, .ttl = 1, .ptr = "web.net1"};
    qn = ks_dns_query_build(4, "2.0.30.172.in-addr.arpa", KS_DNS_TYPE_PTR, q, sizeof(q));
    n = ks_dns_reply_build(q, (size_t)qn, 0, &ptr, 1, r, sizeof(r));
    off = (size_t)qn;
    TAP_EQ_INT(ks_dns_rr_read(r, (size_t)n, &off, &rr), 0, "PTR answer");
    char name[KS_DNS_NAME_TEXT_MAX + 1];
    size_t roff = rr.rdoff;
    TAP_EQ_INT(ks_dns_name_read(r, (size_t)n, &roff, name, sizeof(name)), 0, "PTR target");
    TAP_EQ_STR(name, "web.net1", "PTR target name");

    /* A query that does not parse: its header back with FORMERR. */
    memset(q, 0, 12);
    q[0] = 0x42;
    q[5] = 1;
    n = ks_dns_reply_build(q, 14, KS_DNS_RCODE_FORMERR, a, 1, r, sizeof(r));
    TAP_EQ_INT(n, 12, "FORMERR is a bare header");
    ks_dns_header_read(r, (size_t)n, &h);
    tap_ok(h.id == 0x4200 && KS_DNS_RCODE(h.flags) == KS_DNS_RCODE_FORMERR && h.qdcount == 0,
           "FORMERR header");
    TAP_EQ_INT(ks_dns_reply_build(q, 11, 1, NULL, 0, r, sizeof(r)), -EBADMSG, "no header");
}

/* Found by fuzz_dns: a question whose name points back into itself. Copying the question as it
 * came would keep a pointer that means something else in the reply; it is expanded instead. */
static void test_self_pointing_question(void)
{
    /* The name: a label holding 0x01, a pointer to that byte, which then reads as a label
     * holding the pointer's first byte, then a 13-byte label over the type and class. */
    static const uint8_t q[] = {0x00, 0x20, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                                0x00, 0x00, 0x01, 0x01, 0xc0, 0x0d, 0x00, 0x01, 0x00, 0x01,
                                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    struct ks_dns_header h;
    struct ks_dns_question want, got;
    uint8_t r[512];
    TAP_EQ_INT(ks_dns_query_parse(q, sizeof(q), &h, &want), 0, "self-pointing question parses");
    tap_ok(strncmp(want.name, "\\001.\\192.\\000\\001", 14) == 0, "its labels overlap");
    int n = ks_dns_reply_build(q, sizeof(q), 0, NULL, 0, r, sizeof(r));
    size_t off = KS_DNS_HEADER_LEN;
    tap_ok(n > 0 && ks_dns_question_read(r, (size_t)n, &off, &got) == 0 &&
               strcmp(got.name, want.name) == 0 && got.type == want.type,
           "the reply carries the same question");
}

static void test_reverse(void)
{
    uint8_t a[16];
    char s[INET6_ADDRSTRLEN];
    TAP_EQ_INT(ks_dns_reverse_parse("4.3.2.10.IN-ADDR.arpa.", a), AF_INET, "in-addr.arpa");
    inet_ntop(AF_INET, a, s, sizeof(s));
    TAP_EQ_STR(s, "10.2.3.4", "octets reversed");
    const char *v6 = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
    TAP_EQ_INT(ks_dns_reverse_parse(v6, a), AF_INET6, "ip6.arpa");
    inet_ntop(AF_INET6, a, s, sizeof(s));
    TAP_EQ_STR(s, "fd00::5", "nibbles reversed");
    const char *bad[] = {
        "4.3.2.in-addr.arpa",
        "256.3.2.1.in-addr.arpa",
        "04.3.2.1.in-addr.arpa",
        "a.3.2.1.in-addr.arpa",
        "5.4.3.2.1.in-addr.arpa",
        "example.org",
        "in-addr.arpa",
        "5.0.ip6.arpa",
        "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa"};
    bool all = true;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ks_dns_reverse_parse(bad[i], a) != -EINVAL) {
            tap_diag("accepted %s", bad[i]);
            all = false;
        }
    tap_ok(all, "malformed reverse names refused");
    tap_ok(ks_dns_name_equal("Web.", "web") && !ks_dns_name_equal("web", "web2"),
           "names compare case-insensitively");
}

static void test_server_parse(void)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned port;
    TAP_EQ_INT(ks_dns_server_parse("10.0.0.2", ip, &port), AF_INET, "IPv4");
    tap_ok(strcmp(ip, "10.0.0.2") == 0 && port == 53, "port 53 by default");
    TAP_EQ_INT(ks_dns_server_parse("127.0.0.1:5353", ip, &port), AF_INET, "IPv4 and port");
    tap_ok(strcmp(ip, "127.0.0.1") == 0 && port == 5353, "the port");
    TAP_EQ_INT(ks_dns_server_parse("fd00::1", ip, &port), AF_INET6, "IPv6");
    TAP_EQ_INT(ks_dns_server_parse("[::1]:54", ip, &port), AF_INET6, "IPv6 and port");
    tap_ok(strcmp(ip, "::1") == 0 && port == 54, "IPv6 port");
    const char *bad[] = {
        "",      "dns.example", "1.2.3.4:", "1.2.3.4:0",  "1.2.3.4:65536", "[1.2.3.4]:53",
        "[::1]", "::1]:53",     "1.2.3:53", "1.2.3.4:+53"};
    bool all = true;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        all &= ks_dns_server_parse(bad[i], ip, &port) == -EINVAL;
    tap_ok(all, "malformed servers refused");
}

static json_object *hc_of(const char *text)
{
    json_object *o = NULL;
    ks_json_parse(text, strlen(text), &o, NULL);
    return o;
}

static void check_resolv(const char *host, const char *hc_text, enum ks_etc_mode mode,
                         const char *want, const char *what)
{
    _cleanup_json_ json_object *hc = hc_of(hc_text);
    _cleanup_free_ char *got = NULL;
    int r = ks_etc_resolv_conf(host, hc, mode, &got, NULL);
    TAP_EQ_INT(r, 0, "%s: built", what);
    TAP_EQ_STR(got, want, "%s", what);
}

static void test_resolv_conf(void)
{
    const char *host = "# host\nsearch corp.example\nnameserver 127.0.0.53\n"
                       "nameserver 10.0.0.2\nnameserver ::1\noptions edns0\n";
    check_resolv(host, "{}", KS_ETC_MODE_DEFAULT,
                 "# host\nsearch corp.example\nnameserver 10.0.0.2\noptions edns0\n",
                 "loopback nameservers removed, the rest kept");
    check_resolv("nameserver 127.0.0.53\nsearch x.example\n", "{}", KS_ETC_MODE_DEFAULT,
                 "search x.example\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n",
                 "Docker's defaults when none remain");
    check_resolv(NULL, "{}", KS_ETC_MODE_DEFAULT, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n",
                 "no host file");
    check_resolv(host, "{\"Dns\":[\"1.1.1.1\",\"127.0.0.1:5353\"]}", KS_ETC_MODE_DEFAULT,
                 "search corp.example\nnameserver 1.1.1.1\nnameserver 127.0.0.1\n"
                 "options edns0\n",
                 "--dns replaces the servers");
    check_resolv(host, "{\"DnsSearch\":[\"a.example\",\"b.example\"],\"DnsOptions\":[\"ndots:2\"]}",
                 KS_ETC_MODE_DEFAULT,
                 "search a.example b.example\nnameserver 10.0.0.2\noptions ndots:2\n",
                 "--dns-search and --dns-option replace theirs");
    check_resolv(host, "{\"DnsSearch\":[\".\"]}", KS_ETC_MODE_DEFAULT,
                 "nameserver 10.0.0.2\noptions edns0\n", "--dns-search . drops the search");
    check_resolv(host, "{}", KS_ETC_MODE_EMBEDDED,
                 "search corp.example\nnameserver 127.0.0.11\noptions edns0 ndots:0\n",
                 "user network: the embedded resolver with ndots:0");
    check_resolv(host, "{\"DnsOptions\":[\"ndots:3\",\"timeout:1\"],\"Dns\":[\"9.9.9.9\"]}",
                 KS_ETC_MODE_EMBEDDED,
                 "search corp.example\nnameserver 127.0.0.11\noptions ndots:3 timeout:1\n",
                 "user network: the user's ndots wins, servers stay out");
    check_resolv(host, "{}", KS_ETC_MODE_HOST, host, "host network: the host's file as it is");

    _cleanup_json_ json_object *hc = hc_of("{}");
    _cleanup_strv_ char **up = NULL;
    TAP_EQ_INT(ks_etc_dns_upstreams(host, hc, &up, NULL), 0, "upstreams");
    tap_ok(up && up[0] && strcmp(up[0], "127.0.0.53") == 0 && up[1] &&
               strcmp(up[1], "10.0.0.2") == 0 && up[2] && strcmp(up[2], "::1") == 0 && !up[3],
           "the host's servers, loopback ones included");
    _cleanup_strv_ char **up2 = NULL;
    TAP_EQ_INT(ks_etc_dns_upstreams("", hc, &up2, NULL), 0, "upstreams without servers");
    tap_ok(up2 && up2[0] && strcmp(up2[0], "8.8.8.8") == 0, "Docker's defaults");
    _cleanup_json_ json_object *hc3 = hc_of("{\"Dns\":[\"127.0.0.1:5300\"]}");
    _cleanup_strv_ char **up3 = NULL;
    TAP_EQ_INT(ks_etc_dns_upstreams(host, hc3, &up3, NULL), 0, "upstreams with --dns");
    tap_ok(up3 && up3[0] && strcmp(up3[0], "127.0.0.1:5300") == 0 && !up3[1], "--dns given");
}

static void test_hosts(void)
{
    _cleanup_json_ json_object *cfg =
        hc_of("{\"Config\":{\"Hostname\":\"web\",\"Domainname\":\"corp.example\"}}");
    struct ks_net_endpoint ep = {.ipv4 = "172.18.0.2", .ipv6 = "fd00::2"};
    const char *extra[] = {"10.1.1.1\tdb", NULL};
    _cleanup_free_ char *hosts = NULL;
    TAP_EQ_INT(ks_etc_hosts(cfg, &ep, 1, extra, &hosts, NULL), 0, "hosts built");
    TAP_EQ_STR(hosts,
               "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
               "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
               "ff02::2\tip6-allrouters\n10.1.1.1\tdb\n"
               "172.18.0.2\tweb.corp.example web\nfd00::2\tweb.corp.example web\n",
               "localhost lines, extra hosts, own addresses with FQDN and name");
    _cleanup_free_ char *none = NULL;
    TAP_EQ_INT(ks_etc_hosts(cfg, NULL, 0, NULL, &none, NULL), 0, "hosts without a network");
    tap_ok(none && strstr(none, "web") == NULL, "no own line without an address");
}

int main(void)
{
    tap_plan_auto();
    test_query_round_trip();
    test_hostile_names();
    test_replies();
    test_reverse();
    test_self_pointing_question();
    test_server_parse();
    test_resolv_conf();
    test_hosts();
    return tap_done();
}
