/* The DNS wire format. Every read is bounded by the message length; names are followed through
 * compression pointers only backwards (a pointer to itself or later could loop) and only so
 * many times, so that no message, however crafted, reads outside its buffer or loops. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"

#define NAME_WIRE_MAX 255
#define LABEL_MAX     63
#define POINTERS_MAX  127

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

int ks_dns_header_read(const uint8_t *msg, size_t len, struct ks_dns_header *ret)
{
    if (len < KS_DNS_HEADER_LEN)
        return -EBADMSG;
    ret->id = get16(msg);
    ret->flags = get16(msg + 2);
    ret->qdcount = get16(msg + 4);
    ret->ancount = get16(msg + 6);
    ret->nscount = get16(msg + 8);
    ret->arcount = get16(msg + 10);
    return 0;
}

/* Appends byte c of a label to out in presentation form; false when out is full. */
static bool put_char(char *out, size_t out_len, size_t *pos, uint8_t c)
{
    bool plain = c > 0x20 && c < 0x7f && c != '.' && c != '\\';
    size_t need = plain ? 1 : 4;
    if (*pos + need >= out_len)
        return false;
    if (plain)
        out[(*pos)++] = (char)c;
    else
        *pos += (size_t)snprintf(out + *pos, 5, "\\%03u", c);
    return true;
}

/* The name at *off, expanded to its uncompressed wire form in wire (NAME_WIRE_MAX bytes);
 * *off moves past it where it appears. */
static int name_expand(const uint8_t *msg, size_t len, size_t *off, uint8_t *wire, size_t *ret_len)
{
    size_t p = *off, end = 0, n = 0;
    unsigned jumps = 0;
    for (;;) {
        if (p >= len)
            return -EBADMSG;
        uint8_t l = msg[p];
        if ((l & 0xc0) == 0xc0) {
            if (p + 1 >= len)
                return -EBADMSG;
            size_t target = (size_t)(l & 0x3f) << 8 | msg[p + 1];
            /* Backwards only, and not into the header: no loop can form. */
            if (target >= p || target < KS_DNS_HEADER_LEN || ++jumps > POINTERS_MAX)
                return -EBADMSG;
            if (end == 0)
                end = p + 2;
            p = target;
            continue;
        }
        if (l & 0xc0)
            return -EBADMSG; /* the extended label types are obsolete */
        if (n + 1u + l > NAME_WIRE_MAX || p + 1u + l > len)
            return -EBADMSG;
        memcpy(wire + n, msg + p, 1u + l);
        n += 1u + l;
        p += 1u + l;
        if (l == 0)
            break;
    }
    *off = end ? end : p;
    *ret_len = n;
    return 0;
}

int ks_dns_name_read(const uint8_t *msg, size_t len, size_t *off, char *out, size_t out_len)
{
    uint8_t wire[NAME_WIRE_MAX];
    size_t n, p = *off, pos = 0;
    if (out_len == 0)
        return -EMSGSIZE;
    int r = name_expand(msg, len, &p, wire, &n);
    if (r < 0)
        return r;
    for (size_t i = 0; wire[i] != 0; i += 1u + wire[i]) {
        if (pos > 0) {
            if (pos + 1 >= out_len)
                return -EMSGSIZE;
            out[pos++] = '.';
        }
        for (size_t k = 0; k < wire[i]; k++)
            if (!put_char(out, out_len, &pos, wire[i + 1 + k]))
                return -EMSGSIZE;
    }
    out[pos] = '\0';
    *off = p;
    return 0;
}

int ks_dns_question_read(const uint8_t *msg, size_t len, size_t *off, struct ks_dns_question *ret)
{
    size_t p = *off;
    int r = ks_dns_name_read(msg, len, &p, ret->name, sizeof(ret->name));
    if (r < 0)
        return r;
    if (p + 4 > len)
        return -EBADMSG;
    ret->type = get16(msg + p);
    ret->qclass = get16(msg + p + 2);
    *off = p + 4;
    return 0;
}

int ks_dns_rr_read(const uint8_t *msg, size_t len, size_t *off, struct ks_dns_rr *ret)
{
    size_t p = *off;
    int r = ks_dns_name_read(msg, len, &p, ret->name, sizeof(ret->name));
    if (r < 0)
        return r;
    if (p + 10 > len)
        return -EBADMSG;
    ret->type = get16(msg + p);
    ret->rclass = get16(msg + p + 2);
    ret->ttl = (uint32_t)get16(msg + p + 4) << 16 | get16(msg + p + 6);
    ret->rdlen = get16(msg + p + 8);
    ret->rdoff = p + 10;
    if (ret->rdoff + ret->rdlen > len)
        return -EBADMSG;
    if ((ret->type == KS_DNS_TYPE_A && ret->rdlen != 4) ||
        (ret->type == KS_DNS_TYPE_AAAA && ret->rdlen != 16))
        return -EBADMSG;
    *off = ret->rdoff + ret->rdlen;
    return 0;
}

int ks_dns_query_parse(const uint8_t *msg, size_t len, struct ks_dns_header *ret_header,
                       struct ks_dns_question *ret_question)
{
    int r = ks_dns_header_read(msg, len, ret_header);
    if (r < 0)
        return r;
    if ((ret_header->flags & KS_DNS_FLAG_QR) || KS_DNS_OPCODE(ret_header->flags) != 0 ||
        ret_header->qdcount != 1)
        return -EBADMSG;
    size_t off = KS_DNS_HEADER_LEN;
    return ks_dns_question_read(msg, len, &off, ret_question);
}

int ks_dns_name_write(const char *name, uint8_t *out, size_t out_len)
{
    size_t n = strlen(name), pos = 0;
    if (n > 0 && name[n - 1] == '.')
        n--;
    for (size_t i = 0; i < n;) {
        size_t l = 0;
        while (i + l < n && name[i + l] != '.')
            l++;
        if (l == 0 || l > LABEL_MAX)
            return -EINVAL;
        if (pos + 1 + l + 1 > NAME_WIRE_MAX)
            return -EINVAL;
        if (pos + 1 + l > out_len)
            return -EMSGSIZE;
        out[pos] = (uint8_t)l;
        memcpy(out + pos + 1, name + i, l);
        pos += 1 + l;
        i += l + 1;
    }
    if (pos + 1 > out_len)
        return -EMSGSIZE;
    out[pos++] = 0;
    return (int)pos;
}

static void header_write(uint8_t *out, const struct ks_dns_header *h)
{
    put16(out, h->id);
    put16(out + 2, h->flags);
    put16(out + 4, h->qdcount);
    put16(out + 6, h->ancount);
    put16(out + 8, h->nscount);
    put16(out + 10, h->arcount);
}

int ks_dns_query_build(uint16_t id, const char *name, uint16_t type, uint8_t *out, size_t out_len)
{
    if (out_len < KS_DNS_HEADER_LEN)
        return -EMSGSIZE;
    header_write(out, &(struct ks_dns_header){.id = id, .flags = KS_DNS_FLAG_RD, .qdcount = 1});
    int n = ks_dns_name_write(name, out + KS_DNS_HEADER_LEN, out_len - KS_DNS_HEADER_LEN);
    if (n < 0)
        return n;
    size_t pos = KS_DNS_HEADER_LEN + (size_t)n;
    if (pos + 4 > out_len)
        return -EMSGSIZE;
    put16(out + pos, type);
    put16(out + pos + 2, KS_DNS_CLASS_IN);
    return (int)(pos + 4);
}

/* One answer at out[pos], named by a pointer to the question's name; its length, or 0 when it
 * does not fit. */
static size_t answer_write(const struct ks_dns_answer *a, uint8_t *out, size_t pos, size_t cap)
{
    uint8_t rdata[NAME_WIRE_MAX];
    size_t rdlen;
    if (a->type == KS_DNS_TYPE_A) {
        memcpy(rdata, a->addr, 4);
        rdlen = 4;
    } else if (a->type == KS_DNS_TYPE_AAAA) {
        memcpy(rdata, a->addr, 16);
        rdlen = 16;
    } else {
        int n = a->ptr ? ks_dns_name_write(a->ptr, rdata, sizeof(rdata)) : -EINVAL;
        if (n < 0)
            return 0;
        rdlen = (size_t)n;
    }
    if (pos + 12 + rdlen > cap)
        return 0;
    put16(out + pos, 0xc000 | KS_DNS_HEADER_LEN);
    put16(out + pos + 2, a->type);
    put16(out + pos + 4, KS_DNS_CLASS_IN);
    put16(out + pos + 6, (uint16_t)(a->ttl >> 16));
    put16(out + pos + 8, (uint16_t)a->ttl);
    put16(out + pos + 10, (uint16_t)rdlen);
    memcpy(out + pos + 12, rdata, rdlen);
    return 12 + rdlen;
}

int ks_dns_reply_build(const uint8_t *query, size_t query_len, int rcode,
                       const struct ks_dns_answer *answers, size_t n, uint8_t *out, size_t out_len)
{
    struct ks_dns_header qh;
    struct ks_dns_question q;
    if (out_len < KS_DNS_HEADER_LEN)
        return -EMSGSIZE;
    if (ks_dns_header_read(query, query_len, &qh) < 0)
        return -EBADMSG;
    struct ks_dns_header h = {
        .id = qh.id,
        .flags = (uint16_t)(KS_DNS_FLAG_QR | KS_DNS_FLAG_RA | (qh.flags & KS_DNS_FLAG_RD) |
                            (rcode & 0xf)),
    };
    size_t pos = KS_DNS_HEADER_LEN, qend = KS_DNS_HEADER_LEN;
    /* A query that does not parse gets its header back, without a question. */
    if (ks_dns_query_parse(query, query_len, &qh, &q) == 0) {
        /* The question's name uncompressed, so answers can point at it at offset 12. */
        uint8_t wire[NAME_WIRE_MAX];
        size_t wn;
        int r = name_expand(query, query_len, &qend, wire, &wn);
        if (r < 0)
            return r;
        if (pos + wn + 4 > out_len)
            return -EMSGSIZE;
        memcpy(out + pos, wire, wn);
        put16(out + pos + wn, q.type);
        put16(out + pos + wn + 2, q.qclass);
        pos += wn + 4;
        h.qdcount = 1;
        if (rcode == KS_DNS_RCODE_NOERROR || rcode == KS_DNS_RCODE_NXDOMAIN)
            h.flags |= KS_DNS_FLAG_AA;
    } else {
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        size_t w = answer_write(&answers[i], out, pos, out_len);
        if (w == 0) {
            h.flags |= KS_DNS_FLAG_TC;
            break;
        }
        pos += w;
        h.ancount++;
    }
    header_write(out, &h);
    return (int)pos;
}

void ks_dns_set_id(uint8_t *msg, uint16_t id)
{
    put16(msg, id);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool suffix_is(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && strncasecmp(s + n - m, suffix, m) == 0;
}

static int reverse4(const char *s, size_t n, uint8_t addr[16])
{
    unsigned octets[4];
    size_t i = 0, k = 0;
    for (; k < 4; k++) {
        unsigned v = 0, digits = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && digits < 4) {
            v = v * 10 + (unsigned)(s[i++] - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && s[i - digits] == '0'))
            return -EINVAL;
        octets[k] = v;
        if (k < 3 && (i >= n || s[i++] != '.'))
            return -EINVAL;
    }
    if (i != n)
        return -EINVAL;
    for (k = 0; k < 4; k++)
        addr[k] = (uint8_t)octets[3 - k];
    return AF_INET;
}

static int reverse6(const char *s, size_t n, uint8_t addr[16])
{
    if (n != 63)
        return -EINVAL;
    memset(addr, 0, 16);
    for (size_t k = 0; k < 32; k++) {
        int v = hexval(s[2 * k]);
        if (v < 0 || (k < 31 && s[2 * k + 1] != '.'))
            return -EINVAL;
        /* The first nibble in the name is the address's last. */
        size_t nib = 31 - k;
        addr[nib / 2] |= (uint8_t)(nib % 2 ? v : v << 4);
    }
    return AF_INET6;
}

int ks_dns_reverse_parse(const char *name, uint8_t ret_addr[16])
{
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (suffix_is(name, n, ".in-addr.arpa"))
        return reverse4(name, n - strlen(".in-addr.arpa"), ret_addr);
    if (suffix_is(name, n, ".ip6.arpa"))
        return reverse6(name, n - strlen(".ip6.arpa"), ret_addr);
    return -EINVAL;
}

bool ks_dns_name_equal(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 0 && a[na - 1] == '.')
        na--;
    if (nb > 0 && b[nb - 1] == '.')
        nb--;
    return na == nb && strncasecmp(a, b, na) == 0;
}

int ks_dns_server_parse(const char *s, char *ret_ip, unsigned *ret_port)
{
    char ip[INET6_ADDRSTRLEN];
    const char *port = NULL;
    size_t n;
    uint8_t addr[16];
    bool bracket = s[0] == '[';
    if (bracket) {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        n = (size_t)(close - s - 1);
        s++;
        port = close + 2;
    } else if (strchr(s, ':') && strchr(s, ':') == strrchr(s, ':')) {
        n = (size_t)(strchr(s, ':') - s); /* one colon: IPv4 and a port */
        port = s + n + 1;
    } else {
        n = strlen(s);
    }
    if (n == 0 || n >= sizeof(ip))
        return -EINVAL;
    memcpy(ip, s, n);
    ip[n] = '\0';
    int family = inet_pton(AF_INET, ip, addr) == 1    ? AF_INET
                 : inet_pton(AF_INET6, ip, addr) == 1 ? AF_INET6
                                                      : -EINVAL;
    if (family < 0 || (bracket && family != AF_INET6) || (port && !bracket && family != AF_INET))
        return -EINVAL;
    unsigned p = 53;
    if (port) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(port, &end, 10);
        if (*port < '0' || *port > '9' || *end || errno || v == 0 || v > 65535)
            return -EINVAL;
        p = (unsigned)v;
    }
    if (ret_ip)
        memcpy(ret_ip, ip, n + 1);
    if (ret_port)
        *ret_port = p;
    return family;
}
