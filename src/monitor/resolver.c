/* The embedded DNS resolver of a container on user-defined networks, as Docker's 127.0.0.11:
 * a UDP and a TCP socket bound to 127.0.0.11:53 inside the container's network namespace
 * (made there with setns and used from here, in the host's namespace), answering the names of
 * the containers on the same networks and forwarding every other query to the upstream servers
 * from a socket in the host's namespace, so that a host resolver on loopback works too.
 *
 * Names come from the networks' hosts files, read at each query (they are small and rewritten
 * atomically by the engine), so no cache can go stale: RUN_DIR/networks lists the container's
 * networks, one ID a line, and NETWORKS_DIR/ID/hosts holds "IP name shortid alias…" lines.
 *
 * Memory stays small and bounded: at most MON_DNS_PENDING forwarded queries (512 bytes each)
 * and MON_DNS_TCP connections at a time, allocated only when the resolver is enabled. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "lib/net/dns.h"
#include "monitor.h"

#define DNS_ADDR       "127.0.0.11"
#define QUERY_MAX      KS_DNS_UDP_MAX
#define REPLY_MAX      4096 /* an upstream's EDNS answer */
#define ATTEMPT_MS     2000
#define TCP_IDLE_MS    10000
#define TICK_MS        250
#define ANSWERS_MAX    16
#define TTL            600
#define LOCAL_NAME_MAX 256
#define NETWORK_ID_MAX 64

struct pending {
    bool used;
    uint16_t client_id, our_id;
    int tcp;          /* index of the TCP connection, -1: the UDP client below */
    unsigned tcp_gen; /* the connection's generation when the query came */
    struct sockaddr_in client;
    unsigned upstream; /* the server asked now */
    unsigned attempts;
    int64_t deadline; /* monotonic ns */
    size_t len;
    uint8_t query[QUERY_MAX];
};

struct tcp_conn {
    int fd;
    unsigned gen;
    int64_t deadline;
    size_t len;
    uint8_t buf[2 + QUERY_MAX];
};

struct mon_resolver {
    int udp_fd, tcp_fd, up4_fd, up6_fd, timer_fd;
    bool timer_armed;
    struct sockaddr_storage up[MON_DNS_UPSTREAMS_MAX];
    socklen_t up_len[MON_DNS_UPSTREAMS_MAX];
    unsigned n_up, gen;
    const char *networks_dir;
    struct pending pending[MON_DNS_PENDING];
    struct tcp_conn tcp[MON_DNS_TCP];
    uint8_t reply[2 + REPLY_MAX];
};

static int upstream_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned port;
    int family = ks_dns_server_parse(s, ip, &port);
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, ip, &a->sin_addr);
        *len = sizeof(*a);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, ip, &a->sin6_addr);
        *len = sizeof(*a);
    }
    return family;
}

/* The two listening sockets, made inside the container's namespace; the caller's namespace is
 * restored before returning, whatever happens (the monitor cannot go on in the wrong one). */
static int listen_in_netns(struct mon_resolver *r, const char *netns, struct ks_error **err)
{
    _cleanup_close_ int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int target = open(netns, O_RDONLY | O_CLOEXEC);
    if (self < 0 || target < 0)
        return ks_error_set(err, errno, "open the network namespace `%s`", netns);
    if (setns(target, CLONE_NEWNET) < 0)
        return ks_error_set(err, errno, "enter the network namespace `%s`", netns);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, DNS_ADDR, &a.sin_addr);
    int en = 0, one = 1;
    r->udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    r->tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->udp_fd < 0 || r->tcp_fd < 0 ||
        setsockopt(r->tcp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(r->udp_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        bind(r->tcp_fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(r->tcp_fd, 16) < 0)
        en = errno;
    if (setns(self, CLONE_NEWNET) < 0)
        abort(); /* sockets and runtime calls in the container's namespace would be wrong */
    if (en)
        return ks_error_set(err, en, "bind %s:53 in the container's network namespace", DNS_ADDR);
    return 0;
}

int mon_resolver_open(struct monitor *m, struct ks_error **err)
{
    struct mon_resolver *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ks_error_set(err, ENOMEM, "resolver");
    m->resolver = r;
    r->udp_fd = r->tcp_fd = r->up4_fd = r->up6_fd = r->timer_fd = -EBADF;
    for (size_t i = 0; i < MON_DNS_TCP; i++)
        r->tcp[i].fd = -EBADF;
    r->networks_dir = m->o.dns_networks;
    for (unsigned i = 0; i < m->o.n_dns_upstreams; i++)
        if (upstream_parse(m->o.dns_upstreams[i], &r->up[r->n_up], &r->up_len[r->n_up]) > 0)
            r->n_up++;
    uint16_t seed = 0;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
        seed = (uint16_t)getpid();
    r->gen = seed;
    int ret = listen_in_netns(r, m->o.dns_netns, err);
    if (ret < 0)
        return ret;
    r->up4_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    r->up6_fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    r->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (r->up4_fd < 0 || r->timer_fd < 0)
        return ks_error_set(err, errno, "resolver sockets");
    return 0;
}

void mon_resolver_close(struct monitor *m)
{
    struct mon_resolver *r = m->resolver;
    if (r == NULL)
        return;
    int fds[] = {r->udp_fd, r->tcp_fd, r->up4_fd, r->up6_fd, r->timer_fd};
    for (size_t i = 0; i < KS_ELEMENTSOF(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    for (size_t i = 0; i < MON_DNS_TCP; i++)
        if (r->tcp[i].fd >= 0)
            close(r->tcp[i].fd);
    free(r);
    m->resolver = NULL;
}

/* --- the names of the container's networks --- */

struct lookup {
    const char *name; /* a name, or NULL for a reverse lookup of addr */
    int family;       /* of addr */
    uint8_t addr[16];
    uint16_t type;
    bool found; /* the name (or address) is known */
    size_t n;
    struct ks_dns_answer answers[ANSWERS_MAX];
    char ptr[LOCAL_NAME_MAX];
};

static void match_line(struct lookup *l, char *line)
{
    char *save = NULL, *ip = strtok_r(line, " \t\r\n", &save);
    uint8_t addr[16];
    int family = ip == NULL                           ? 0
                 : inet_pton(AF_INET, ip, addr) == 1  ? AF_INET
                 : inet_pton(AF_INET6, ip, addr) == 1 ? AF_INET6
                                                      : 0;
    if (family == 0)
        return;
    char *first = strtok_r(NULL, " \t\r\n", &save);
    if (first == NULL)
        return;
    if (l->name == NULL) {
        if (!l->found && family == l->family &&
            memcmp(addr, l->addr, family == AF_INET ? 4 : 16) == 0) {
            l->found = true;
            snprintf(l->ptr, sizeof(l->ptr), "%s", first);
        }
        return;
    }
    for (char *w = first; w; w = strtok_r(NULL, " \t\r\n", &save)) {
        if (!ks_dns_name_equal(w, l->name))
            continue;
        l->found = true;
        uint16_t want = family == AF_INET ? KS_DNS_TYPE_A : KS_DNS_TYPE_AAAA;
        if ((l->type == want || l->type == KS_DNS_TYPE_ANY) && l->n < ANSWERS_MAX) {
            struct ks_dns_answer *a = &l->answers[l->n++];
            *a = (struct ks_dns_answer){.type = want, .ttl = TTL};
            memcpy(a->addr, addr, family == AF_INET ? 4 : 16);
        }
        return;
    }
}

static bool network_id_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= NETWORK_ID_MAX && strspn(s, "0123456789abcdefABCDEF") == n;
}

static void lookup_networks(struct mon_resolver *r, struct lookup *l)
{
    /* The working directory is the container's run directory. */
    _cleanup_fclose_ FILE *nets = fopen("networks", "re");
    char nid[NETWORK_ID_MAX + 2];
    _cleanup_free_ char *line = NULL;
    size_t cap = 0;
    while (nets && fgets(nid, sizeof(nid), nets)) {
        nid[strcspn(nid, "\r\n")] = '\0';
        if (!network_id_ok(nid))
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s/hosts", r->networks_dir, nid);
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        while (f && getline(&line, &cap, f) > 0)
            match_line(l, line);
    }
}

/* The reply to a query about a local name into r->reply + 2; 0 when it is not ours to
 * answer (forward it). */
static int answer_local(struct mon_resolver *r, const uint8_t *q, size_t len, size_t cap)
{
    struct ks_dns_header h;
    struct ks_dns_question qq;
    if (len >= KS_DNS_HEADER_LEN && (q[2] & (KS_DNS_FLAG_QR >> 8)))
        return -1; /* a response: answering it could start a loop between two servers */
    if (ks_dns_query_parse(q, len, &h, &qq) < 0) {
        int n = ks_dns_reply_build(q, len, KS_DNS_RCODE_FORMERR, NULL, 0, r->reply + 2, cap);
        return n > 0 ? n : -1; /* not even a header: dropped */
    }
    if (qq.qclass != KS_DNS_CLASS_IN)
        return 0;
    struct lookup l = {.name = qq.name, .type = qq.type};
    if (qq.type == KS_DNS_TYPE_PTR) {
        l.family = ks_dns_reverse_parse(qq.name, l.addr);
        if (l.family < 0)
            return 0;
        l.name = NULL;
    } else if (strchr(qq.name, '\\')) {
        return 0;
    }
    lookup_networks(r, &l);
    if (!l.found)
        return 0;
    if (l.name == NULL) {
        l.answers[0] = (struct ks_dns_answer){.type = KS_DNS_TYPE_PTR, .ttl = TTL, .ptr = l.ptr};
        l.n = 1;
    }
    /* A known name without an address of the asked type: NOERROR with no answer. */
    int n = ks_dns_reply_build(q, len, KS_DNS_RCODE_NOERROR, l.answers, l.n, r->reply + 2, cap);
    return n > 0 ? n : -1;
}

/* --- forwarding --- */

static void timer_update(struct mon_resolver *r)
{
    bool busy = false;
    for (size_t i = 0; i < MON_DNS_PENDING && !busy; i++)
        busy = r->pending[i].used;
    for (size_t i = 0; i < MON_DNS_TCP && !busy; i++)
        busy = r->tcp[i].fd >= 0;
    if (busy == r->timer_armed)
        return;
    struct itimerspec its = {0};
    if (busy)
        its.it_value.tv_nsec = its.it_interval.tv_nsec = TICK_MS * 1000000L;
    if (timerfd_settime(r->timer_fd, 0, &its, NULL) == 0)
        r->timer_armed = busy;
}

static void tcp_drop(struct mon_resolver *r, size_t i)
{
    if (r->tcp[i].fd >= 0)
        close(r->tcp[i].fd);
    r->tcp[i].fd = -EBADF;
    r->tcp[i].len = 0;
}

/* Sends a reply (at r->reply + 2, n bytes) to whoever asked. */
static void reply_to(struct mon_resolver *r, int tcp, unsigned gen,
                     const struct sockaddr_in *client, size_t n)
{
    if (tcp < 0) {
        (void)sendto(r->udp_fd, r->reply + 2, n, MSG_DONTWAIT, (const struct sockaddr *)client,
                     sizeof(*client));
        return;
    }
    struct tcp_conn *c = &r->tcp[tcp];
    if (c->fd < 0 || c->gen != gen)
        return; /* the connection is gone */
    r->reply[0] = (uint8_t)(n >> 8);
    r->reply[1] = (uint8_t)n;
    /* Small, into an idle socket's buffer: a client that cannot take it is dropped. */
    if (send(c->fd, r->reply, n + 2, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)(n + 2))
        tcp_drop(r, (size_t)tcp);
    else
        c->deadline = mon_now_mono() + TCP_IDLE_MS * 1000000LL;
}

static void servfail(struct mon_resolver *r, struct pending *p)
{
    ks_dns_set_id(p->query, p->client_id);
    int n = ks_dns_reply_build(p->query, p->len, KS_DNS_RCODE_SERVFAIL, NULL, 0, r->reply + 2,
                               KS_DNS_UDP_MAX);
    if (n > 0)
        reply_to(r, p->tcp, p->tcp_gen, &p->client, (size_t)n);
    p->used = false;
}

static bool send_upstream(struct mon_resolver *r, struct pending *p)
{
    while (p->attempts < r->n_up) {
        unsigned u = p->upstream;
        int fd = r->up[u].ss_family == AF_INET ? r->up4_fd : r->up6_fd;
        p->attempts++;
        p->deadline = mon_now_mono() + ATTEMPT_MS * 1000000LL;
        if (fd >= 0 &&
            sendto(fd, p->query, p->len, 0, (struct sockaddr *)&r->up[u], r->up_len[u]) >= 0)
            return true;
        p->upstream = (u + 1) % r->n_up;
    }
    return false;
}

static void forward(struct mon_resolver *r, const uint8_t *q, size_t len, int tcp,
                    const struct sockaddr_in *client)
{
    struct pending *p = NULL;
    for (size_t i = 0; i < MON_DNS_PENDING && p == NULL; i++)
        if (!r->pending[i].used)
            p = &r->pending[i];
    if (p == NULL || len > QUERY_MAX || len < KS_DNS_HEADER_LEN)
        return; /* too many at once: dropped, the client asks again */
    *p = (struct pending){.used = true};
    memcpy(p->query, q, len);
    p->len = len;
    p->client_id = (uint16_t)(q[0] << 8 | q[1]);
    p->tcp = tcp;
    p->tcp_gen = tcp >= 0 ? r->tcp[tcp].gen : 0;
    if (client)
        p->client = *client;
    /* A fresh ID per forwarded query, unique among those pending. */
    bool clash;
    do {
        r->gen = r->gen * 1103515245u + 12345u;
        p->our_id = (uint16_t)(r->gen >> 16);
        clash = false;
        for (size_t i = 0; i < MON_DNS_PENDING; i++)
            clash |= &r->pending[i] != p && r->pending[i].used && r->pending[i].our_id == p->our_id;
    } while (clash);
    ks_dns_set_id(p->query, p->our_id);
    if (r->n_up == 0 || !send_upstream(r, p))
        servfail(r, p);
}

static void handle_query(struct mon_resolver *r, const uint8_t *q, size_t len, int tcp,
                         const struct sockaddr_in *client)
{
    size_t cap = tcp >= 0 ? REPLY_MAX : KS_DNS_UDP_MAX;
    int n = answer_local(r, q, len, cap);
    if (n > 0)
        reply_to(r, tcp, tcp >= 0 ? r->tcp[tcp].gen : 0, client, (size_t)n);
    else if (n == 0)
        forward(r, q, len, tcp, client);
}

static void on_udp(struct mon_resolver *r)
{
    uint8_t q[QUERY_MAX];
    for (int i = 0; i < 64; i++) {
        struct sockaddr_in client;
        socklen_t cl = sizeof(client);
        ssize_t n = recvfrom(r->udp_fd, q, sizeof(q), MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&client, &cl);
        if (n < 0)
            return;
        if ((size_t)n <= sizeof(q) && client.sin_family == AF_INET)
            handle_query(r, q, (size_t)n, -1, &client);
    }
}

static void on_upstream(struct mon_resolver *r, int fd)
{
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fd, r->reply + 2, REPLY_MAX, MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&from, &fl);
        if (n < 0)
            return;
        if (n < KS_DNS_HEADER_LEN || n > REPLY_MAX)
            continue;
        uint16_t id = (uint16_t)(r->reply[2] << 8 | r->reply[3]);
        for (size_t i = 0; i < MON_DNS_PENDING; i++) {
            struct pending *p = &r->pending[i];
            /* Only the server asked may answer: a spoofed reply from elsewhere is ignored. */
            if (!p->used || p->our_id != id || fl != r->up_len[p->upstream] ||
                memcmp(&from, &r->up[p->upstream], fl) != 0)
                continue;
            ks_dns_set_id(r->reply + 2, p->client_id);
            size_t len = (size_t)n;
            /* A UDP client without EDNS gets at most 512 bytes: a longer answer goes back
             * truncated (its header with TC) so that it asks again over TCP. */
            if (p->tcp < 0 && len > KS_DNS_UDP_MAX && p->len <= KS_DNS_UDP_MAX) {
                struct ks_dns_header h;
                ks_dns_header_read(p->query, p->len, &h);
                if (h.arcount == 0) {
                    int t = ks_dns_reply_build(p->query, p->len, KS_DNS_RCODE(r->reply[5]), NULL, 0,
                                               r->reply + 2, KS_DNS_UDP_MAX);
                    if (t < 0)
                        break;
                    ks_dns_set_id(r->reply + 2, p->client_id);
                    r->reply[4] |= KS_DNS_FLAG_TC >> 8;
                    len = (size_t)t;
                }
            }
            reply_to(r, p->tcp, p->tcp_gen, &p->client, len);
            p->used = false;
            break;
        }
    }
}

static void on_accept(struct mon_resolver *r)
{
    int fd = accept4(r->tcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    for (size_t i = 0; i < MON_DNS_TCP; i++)
        if (r->tcp[i].fd < 0) {
            r->tcp[i] = (struct tcp_conn){
                .fd = fd, .gen = ++r->gen, .deadline = mon_now_mono() + TCP_IDLE_MS * 1000000LL};
            return;
        }
    close(fd); /* too many connections: this one goes */
}

static void on_tcp(struct mon_resolver *r, size_t i)
{
    struct tcp_conn *c = &r->tcp[i];
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            tcp_drop(r, i);
        return;
    }
    c->len += (size_t)n;
    while (c->fd >= 0 && c->len >= 2) {
        size_t want = (size_t)c->buf[0] << 8 | c->buf[1];
        if (want < KS_DNS_HEADER_LEN || want > QUERY_MAX) {
            tcp_drop(r, i);
            return;
        }
        if (c->len < 2 + want)
            return;
        uint8_t q[QUERY_MAX];
        memcpy(q, c->buf + 2, want);
        c->len -= 2 + want;
        memmove(c->buf, c->buf + 2 + want, c->len);
        handle_query(r, q, want, (int)i, NULL);
    }
}

static void on_timer(struct mon_resolver *r)
{
    uint64_t ticks;
    (void)!read(r->timer_fd, &ticks, sizeof(ticks));
    int64_t now = mon_now_mono();
    for (size_t i = 0; i < MON_DNS_PENDING; i++) {
        struct pending *p = &r->pending[i];
        if (!p->used || now < p->deadline)
            continue;
        p->upstream = (p->upstream + 1) % r->n_up;
        if (!send_upstream(r, p))
            servfail(r, p);
    }
    for (size_t i = 0; i < MON_DNS_TCP; i++)
        if (r->tcp[i].fd >= 0 && now >= r->tcp[i].deadline)
            tcp_drop(r, i);
}

/* --- the monitor's loop --- */

size_t mon_resolver_pollfds(struct monitor *m, struct pollfd *p)
{
    struct mon_resolver *r = m->resolver;
    if (r == NULL)
        return 0;
    size_t n = 0;
    int fds[] = {r->udp_fd, r->tcp_fd, r->up4_fd, r->up6_fd, r->timer_fd};
    for (size_t i = 0; i < KS_ELEMENTSOF(fds); i++)
        p[n++] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    for (size_t i = 0; i < MON_DNS_TCP; i++)
        p[n++] = (struct pollfd){.fd = r->tcp[i].fd, .events = POLLIN};
    return n;
}

void mon_resolver_events(struct monitor *m, const struct pollfd *p, size_t n)
{
    struct mon_resolver *r = m->resolver;
    if (r == NULL || n < 5 + MON_DNS_TCP)
        return;
    if (p[0].revents)
        on_udp(r);
    if (p[2].revents)
        on_upstream(r, r->up4_fd);
    if (p[3].revents)
        on_upstream(r, r->up6_fd);
    for (size_t i = 0; i < MON_DNS_TCP; i++)
        if (p[5 + i].revents && p[5 + i].fd == r->tcp[i].fd && r->tcp[i].fd >= 0)
            on_tcp(r, i);
    if (p[1].revents)
        on_accept(r);
    if (p[4].revents)
        on_timer(r);
    timer_update(r);
}
