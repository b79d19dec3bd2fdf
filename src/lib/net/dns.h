/* The DNS wire format (RFC 1035) as far as the embedded resolver needs it: reading queries and
 * answers from untrusted bytes (names with compression pointers, checked against loops and the
 * message's bounds), and building answers (A, AAAA, PTR, NXDOMAIN, SERVFAIL) and queries.
 *
 * Pure functions over caller-owned buffers: no allocation, no I/O, no errors but negative
 * errnos (-EBADMSG for a malformed message, -EMSGSIZE when a buffer is too small), so that the
 * monitor can use them without the rest of the library. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KS_DNS_HEADER_LEN 12
#define KS_DNS_UDP_MAX    512 /* a plain UDP message, without EDNS */
/* A name in presentation form: at most 255 bytes on the wire, and each byte may become "\DDD". */
#define KS_DNS_NAME_TEXT_MAX 1024

enum {
    KS_DNS_TYPE_A = 1,
    KS_DNS_TYPE_NS = 2,
    KS_DNS_TYPE_CNAME = 5,
    KS_DNS_TYPE_PTR = 12,
    KS_DNS_TYPE_AAAA = 28,
    KS_DNS_TYPE_OPT = 41,
    KS_DNS_TYPE_ANY = 255,
};
#define KS_DNS_CLASS_IN 1

enum {
    KS_DNS_RCODE_NOERROR = 0,
    KS_DNS_RCODE_FORMERR = 1,
    KS_DNS_RCODE_SERVFAIL = 2,
    KS_DNS_RCODE_NXDOMAIN = 3,
    KS_DNS_RCODE_NOTIMP = 4,
    KS_DNS_RCODE_REFUSED = 5,
};

#define KS_DNS_FLAG_QR       0x8000
#define KS_DNS_FLAG_AA       0x0400
#define KS_DNS_FLAG_TC       0x0200
#define KS_DNS_FLAG_RD       0x0100
#define KS_DNS_FLAG_RA       0x0080
#define KS_DNS_OPCODE(flags) (((flags) >> 11) & 0xf)
#define KS_DNS_RCODE(flags)  ((flags)&0xf)

struct ks_dns_header {
    uint16_t id, flags, qdcount, ancount, nscount, arcount;
};

struct ks_dns_question {
    char name[KS_DNS_NAME_TEXT_MAX + 1]; /* presentation form, no trailing dot; "" is the root */
    uint16_t type, qclass;
};

struct ks_dns_rr {
    char name[KS_DNS_NAME_TEXT_MAX + 1];
    uint16_t type, rclass;
    uint32_t ttl;
    uint16_t rdlen;
    size_t rdoff; /* where the record's data begins in the message */
};

/* The 12-byte header at the start of msg. */
int ks_dns_header_read(const uint8_t *msg, size_t len, struct ks_dns_header *ret);

/* Reads the name at *off of msg (len bytes) in presentation form into out (out_len bytes, at
 * least KS_DNS_NAME_TEXT_MAX + 1 for any name to fit): labels joined by dots, without the final
 * dot, bytes other than letters, digits, '-', '_' and other printable ASCII (not '.' or '\')
 * written as "\DDD". Compression pointers are followed only backwards, at most 127 of them, and
 * the expanded name may not exceed 255 bytes. *off moves past the name where it appears (after
 * the first pointer). */
int ks_dns_name_read(const uint8_t *msg, size_t len, size_t *off, char *out, size_t out_len);

/* One question at *off; *off moves past it. */
int ks_dns_question_read(const uint8_t *msg, size_t len, size_t *off, struct ks_dns_question *ret);
/* One resource record at *off, its data checked to lie within the message; *off moves past it. */
int ks_dns_rr_read(const uint8_t *msg, size_t len, size_t *off, struct ks_dns_rr *ret);

/* A standard query as a server sees one: QR clear, opcode QUERY, exactly one question (further
 * sections, such as an EDNS OPT record, are not read). */
int ks_dns_query_parse(const uint8_t *msg, size_t len, struct ks_dns_header *ret_header,
                       struct ks_dns_question *ret_question);

/* Writes name (dotted, an optional final dot; "" or "." is the root) in wire form to out;
 * returns its length. Labels of 1 to 63 bytes, at most 255 bytes in all; "\" escapes are not
 * interpreted. */
int ks_dns_name_write(const char *name, uint8_t *out, size_t out_len);

/* A query for name and type with a recursion-desired flag, into out; returns its length. */
int ks_dns_query_build(uint16_t id, const char *name, uint16_t type, uint8_t *out, size_t out_len);

/* One answer record: an address (A: 4 bytes, AAAA: 16) or a PTR's target name. */
struct ks_dns_answer {
    uint16_t type;
    uint32_t ttl;
    uint8_t addr[16];
    const char *ptr; /* for KS_DNS_TYPE_PTR */
};

/* The reply to the query (query_len bytes, as received) with rcode and n answers, all named as
 * its question (a compression pointer to it), into out (at most out_len bytes, e.g. 512 for UDP
 * without EDNS): ID and RD copied, QR, AA and RA set, the question copied as it came. Answers
 * that do not fit are left out and TC is set, as RFC 1035 asks. A query whose question does not
 * parse gets only its header back (for FORMERR). Returns the reply's length. */
int ks_dns_reply_build(const uint8_t *query, size_t query_len, int rcode,
                       const struct ks_dns_answer *answers, size_t n, uint8_t *out, size_t out_len);

/* Sets the ID of a message (its first two bytes). */
void ks_dns_set_id(uint8_t *msg, uint16_t id);

/* The address a reverse-lookup name stands for: "4.3.2.1.in-addr.arpa" (AF_INET, 4 bytes of
 * ret_addr) or the 32 nibbles of "….ip6.arpa" (AF_INET6, 16 bytes); case-insensitive, a final
 * dot allowed. Returns the address family, or -EINVAL for any other name. */
int ks_dns_reverse_parse(const char *name, uint8_t ret_addr[16]);

/* Whether two names in presentation form are equal as DNS compares them (ASCII case
 * insensitive, a final dot ignored). */
bool ks_dns_name_equal(const char *a, const char *b);

/* A DNS server as --dns gives it: "IP", or with a port "IPv4:PORT" or "[IPv6]:PORT" (the port
 * reaches only the embedded resolver; a resolv.conf cannot hold one). The address goes to
 * ret_ip (INET6_ADDRSTRLEN bytes, may be NULL), the port (53 when none) to ret_port, the
 * family is returned; -EINVAL for anything else. */
int ks_dns_server_parse(const char *s, char *ret_ip, unsigned *ret_port);
