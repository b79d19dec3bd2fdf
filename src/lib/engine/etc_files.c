/* A container's /etc/hostname, /etc/hosts and /etc/resolv.conf, written to R/containers/ID at
 * each start and bind-mounted into it, as Docker makes them:
 *
 * - hostname: Config.Hostname (the host's name with the host's network);
 * - hosts: the localhost lines, --add-host entries (host-gateway as the gateway of the first
 *   network, or the host's address), legacy --link entries, then the container's own addresses
 *   with its name (FQDN and short name with a Domainname); with the host's network the host's
 *   file with --add-host entries appended;
 * - resolv.conf: the host's with nameservers on loopback removed (Docker's 8.8.8.8 and 8.8.4.4
 *   when none remain); --dns, --dns-search and --dns-option replace their parts; on
 *   user-defined networks the embedded resolver 127.0.0.11 (with ndots:0 as Docker adds), the
 *   real servers going to the resolver; with the host's network the host's file as it is.
 *
 * The host's resolv.conf is /etc/resolv.conf, or $KISTE_RESOLV_CONF (tests use their own). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/fs.h"
#include "../base/json.h"
#include "../net/dns.h"
#include "../net/endpoint.h"
#include "container.h"

#define EMBEDDED_DNS "127.0.0.11"
#define HOSTS_HEADER                                                                               \
    "127.0.0.1\tlocalhost\n"                                                                       \
    "::1\tlocalhost ip6-localhost ip6-loopback\n"                                                  \
    "fe00::0\tip6-localnet\n"                                                                      \
    "ff00::0\tip6-mcastprefix\n"                                                                   \
    "ff02::1\tip6-allnodes\n"                                                                      \
    "ff02::2\tip6-allrouters\n"

static const char *const default_dns[] = {"8.8.8.8", "8.8.4.4", NULL};

/* A growing string; ENOMEM is reported once at the end. */
struct text {
    char *s;
    size_t len;
    bool oom;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *add = NULL;
    int n = vasprintf(&add, fmt, ap);
    va_end(ap);
    char *grown = n < 0 ? NULL : realloc(t->s, t->len + (size_t)n + 1);
    if (grown == NULL) {
        free(n < 0 ? NULL : add);
        t->oom = true;
        return;
    }
    memcpy(grown + t->len, add, (size_t)n + 1);
    free(add);
    t->s = grown;
    t->len += (size_t)n;
}

static const char *host_resolv_path(void)
{
    const char *p = getenv("KISTE_RESOLV_CONF");
    return p && *p ? p : "/etc/resolv.conf";
}

/* --- resolv.conf --- */

static bool is_local_ns(const char *ip)
{
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
}

/* The address of a "nameserver ADDR" line into ip (64 bytes); false for other lines. */
static bool nameserver_line(const char *line, char ip[64])
{
    char w0[16];
    return sscanf(line, " %15s %63s", w0, ip) == 2 && strcmp(w0, "nameserver") == 0;
}

char **ks_etc_resolv_nameservers(const char *text, bool with_local)
{
    _cleanup_free_ char *copy = strdup(text ? text : "");
    char **v = calloc(1, sizeof(char *));
    size_t n = 0;
    if (copy == NULL || v == NULL) {
        free(v);
        return NULL;
    }
    for (char *save = NULL, *p = copy, *line; (line = strtok_r(p, "\n", &save)); p = NULL) {
        char w1[64];
        if (!nameserver_line(line, w1) || (!with_local && is_local_ns(w1)) ||
            ks_dns_server_parse(w1, NULL, NULL) < 0)
            continue;
        char **g = realloc(v, (n + 2) * sizeof(char *));
        if (g == NULL || (g[n] = strdup(w1)) == NULL) {
            ks_strv_free(g ? g : v);
            return NULL;
        }
        v = g;
        v[++n] = NULL;
    }
    return v;
}

/* The words after the last line starting with key ("search", "options"), or NULL. */
static char *last_line_words(const char *text, const char *key)
{
    const char *found = NULL;
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, key, klen) == 0 && (p[klen] == ' ' || p[klen] == '\t'))
            found = p + klen;
    if (found == NULL)
        return NULL;
    found += strspn(found, " \t");
    size_t n = strcspn(found, "\n#;");
    while (n && (found[n - 1] == ' ' || found[n - 1] == '\t' || found[n - 1] == '\r'))
        n--;
    return n ? strndup(found, n) : NULL;
}

/* The values of a HostConfig string array joined by spaces, or NULL when it is empty. */
static char *joined(json_object *hc, const char *key)
{
    json_object *a = ks_json_get_type(hc, key, json_type_array);
    struct text t = {0};
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(a, i));
        if (s && *s)
            put(&t, "%s%s", t.len ? " " : "", s);
    }
    return t.s;
}

/* Docker's filtered copy: the host's text without loopback nameservers, and the default
 * servers when none remain. */
static void resolv_filtered(struct text *t, const char *host)
{
    _cleanup_free_ char *copy = strdup(host);
    bool any = false;
    if (copy == NULL) {
        t->oom = true;
        return;
    }
    for (char *p = copy, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        char w1[64];
        if (nameserver_line(p, w1)) {
            if (is_local_ns(w1))
                continue;
            any = true;
        }
        put(t, "%s%s", p, nl ? "\n" : "");
    }
    if (!any)
        for (size_t i = 0; default_dns[i]; i++)
            put(t, "%snameserver %s\n", i == 0 && t->len && t->s[t->len - 1] != '\n' ? "\n" : "",
                default_dns[i]);
}

int ks_etc_resolv_conf(const char *host, json_object *hc, enum ks_etc_mode mode, char **ret,
                       struct ks_error **err)
{
    struct text t = {0};
    host = host ? host : "";
    _cleanup_free_ char *dns = joined(hc, "Dns"), *search = joined(hc, "DnsSearch"),
                        *opts = joined(hc, "DnsOptions");
    if (mode == KS_ETC_MODE_HOST && !dns && !search && !opts) {
        put(&t, "%s", host);
    } else if (mode != KS_ETC_MODE_EMBEDDED && !dns && !search && !opts) {
        resolv_filtered(&t, host);
    } else {
        /* Docker's Build: each part the user gave replaces the host's. */
        _cleanup_free_ char *hsearch = search ? NULL : last_line_words(host, "search");
        _cleanup_free_ char *hopts = opts ? NULL : last_line_words(host, "options");
        const char *s = search ? search : hsearch;
        if (s && strcmp(s, ".") != 0)
            put(&t, "search %s\n", s);
        if (mode == KS_ETC_MODE_EMBEDDED) {
            put(&t, "nameserver %s\n", EMBEDDED_DNS);
        } else {
            _cleanup_strv_ char **ns =
                dns ? ks_json_strv(hc, "Dns") : ks_etc_resolv_nameservers(host, false);
            if (ns == NULL) {
                free(t.s);
                return ks_error_set(err, ENOMEM, "resolv.conf");
            }
            char *const *list = ns[0] ? ns : (char *const *)default_dns;
            for (size_t i = 0; list[i]; i++) {
                char ip[INET6_ADDRSTRLEN];
                if (ks_dns_server_parse(list[i], ip, NULL) > 0)
                    put(&t, "nameserver %s\n", ip);
            }
        }
        const char *o = opts ? opts : hopts;
        bool ndots = o && strstr(o, "ndots:");
        if (mode == KS_ETC_MODE_EMBEDDED && !ndots)
            put(&t, "options %s%sndots:0\n", o ? o : "", o ? " " : "");
        else if (o)
            put(&t, "options %s\n", o);
    }
    if (t.oom || t.s == NULL) {
        free(t.s);
        if (t.oom)
            return ks_error_set(err, ENOMEM, "resolv.conf");
        t.s = strdup("");
        if (t.s == NULL)
            return ks_error_set(err, ENOMEM, "resolv.conf");
    }
    *ret = t.s;
    return 0;
}

int ks_etc_dns_upstreams(const char *host, json_object *hc, char ***ret, struct ks_error **err)
{
    char **v = NULL;
    json_object *dns = ks_json_get_type(hc, "Dns", json_type_array);
    if (dns && json_object_array_length(dns) > 0)
        v = ks_json_strv(hc, "Dns");
    else
        v = ks_etc_resolv_nameservers(host, true);
    if (v && v[0] == NULL) {
        free(v);
        v = ks_strv_dup((char *const *)default_dns);
    }
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "DNS servers");
    *ret = v;
    return 0;
}

/* --- hosts --- */

int ks_etc_hosts(json_object *config, const struct ks_net_endpoint *eps, size_t n_eps,
                 const char *const *extra, char **ret, struct ks_error **err)
{
    json_object *c = ks_json_get(config, "Config");
    const char *hostname = ks_json_str(c, "Hostname");
    const char *domain = ks_json_str(c, "Domainname");
    /* The FQDN and the bare name, as Docker's etchosts.Build. */
    _cleanup_free_ char *fqdn = NULL;
    if (hostname && *hostname &&
        asprintf(&fqdn, "%s%s%s", hostname, domain && *domain ? "." : "",
                 domain && *domain ? domain : "") < 0)
        return ks_error_set(err, ENOMEM, "hosts");
    struct text t = {0};
    put(&t, "%s", HOSTS_HEADER);
    for (size_t i = 0; extra && extra[i]; i++)
        put(&t, "%s\n", extra[i]);
    char names[600] = "";
    if (fqdn) {
        const char *dot = strchr(fqdn, '.');
        if (dot)
            snprintf(names, sizeof(names), "%s %.*s", fqdn, (int)(dot - fqdn), fqdn);
        else
            snprintf(names, sizeof(names), "%s", fqdn);
    }
    for (size_t i = 0; *names && i < n_eps; i++) {
        if (eps[i].ipv4[0])
            put(&t, "%s\t%s\n", eps[i].ipv4, names);
        if (eps[i].ipv6[0])
            put(&t, "%s\t%s\n", eps[i].ipv6, names);
    }
    if (t.oom) {
        free(t.s);
        return ks_error_set(err, ENOMEM, "hosts");
    }
    *ret = t.s;
    return 0;
}

/* --- the container's files --- */

static enum ks_etc_mode etc_mode(json_object *hc, const struct ks_net_endpoint *eps, size_t n)
{
    const char *nm = ks_json_str(hc, "NetworkMode");
    if (nm && strcmp(nm, "host") == 0)
        return KS_ETC_MODE_HOST;
    for (size_t i = 0; i < n; i++)
        if (eps[i].user_defined)
            return KS_ETC_MODE_EMBEDDED;
    return KS_ETC_MODE_DEFAULT;
}

/* The host's first IPv4 address that is up and not loopback, into ip (INET_ADDRSTRLEN). */
static int host_address(char *ip, struct ks_error **err)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) < 0)
        return ks_error_set(err, errno, "getifaddrs");
    int r = -ENOENT;
    for (struct ifaddrs *p = ifa; p && r < 0; p = p->ifa_next)
        if (p->ifa_addr && p->ifa_addr->sa_family == AF_INET && (p->ifa_flags & IFF_UP) &&
            !(p->ifa_flags & IFF_LOOPBACK) &&
            inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)p->ifa_addr)->sin_addr, ip,
                      INET_ADDRSTRLEN))
            r = 0;
    freeifaddrs(ifa);
    if (r < 0)
        return ks_error_msg(err, "host-gateway: the host has no IPv4 address");
    return 0;
}

/* The address a linked container has in its own hosts file: the last line naming its
 * hostname, which is its address on its network (none when it has no network). */
static int link_address(struct ks_engine *e, const char *name, const char *alias, const char *self,
                        char **ret_line, struct ks_error **err)
{
    _cleanup_db_container_ struct ks_db_container *c = NULL;
    _cleanup_json_ json_object *cfg = NULL;
    int r = ks_engine_lookup(e, name, &c, &cfg, err);
    if (r < 0)
        return ks_error_wrap(err, "could not get container for %s", name);
    struct ks_container_state st;
    r = ks_engine_state_get(e, c->id, &st, err);
    if (r < 0)
        return r;
    ks_engine_state_clear(&st);
    if (st.status != KS_CONTAINER_RUNNING)
        return ks_error_msg(err, "Cannot link to a non running container: /%s AS /%s/%s", c->name,
                            self, alias);
    const char *hostname = ks_json_str(ks_json_get(cfg, "Config"), "Hostname");
    _cleanup_free_ char *dir = ks_container_dir(e, c->id), *path = NULL, *text = NULL;
    if (dir == NULL || asprintf(&path, "%s/hosts", dir) < 0)
        return ks_error_set(err, ENOMEM, "link");
    char ip[64] = "";
    if (hostname && ks_read_file(path, &text, NULL, NULL) >= 0) {
        for (char *save = NULL, *p = text, *line; (line = strtok_r(p, "\n", &save)); p = NULL) {
            char addr[64];
            int off = 0;
            if (sscanf(line, "%63s%n", addr, &off) != 1 || strncmp(addr, "127.", 4) == 0 ||
                strchr(addr, ':'))
                continue;
            for (char *s2 = NULL, *q = line + off, *w; (w = strtok_r(q, " \t", &s2)); q = NULL)
                if (strcmp(w, hostname) == 0)
                    snprintf(ip, sizeof(ip), "%s", addr);
        }
    }
    if (*ip == '\0')
        return ks_error_msg(err, "Cannot link to /%s, as it does not belong to the default network",
                            c->name);
    /* Docker's order: the alias, the linked container's hostname, its name unless the alias
     * is the name. */
    if (asprintf(ret_line, "%s\t%s %s%s%s", ip, alias, hostname,
                 strcmp(alias, c->name) != 0 ? " " : "",
                 strcmp(alias, c->name) != 0 ? c->name : "") < 0)
        return ks_error_set(err, ENOMEM, "link");
    return 0;
}

/* The --add-host and --link lines, "IP\tnames", NULL-terminated, owned by the caller. */
static int extra_lines(struct ks_engine *e, const char *self, json_object *hc,
                       const struct ks_net_endpoint *eps, size_t n_eps, char ***ret,
                       struct ks_error **err)
{
    _cleanup_strv_ char **hosts = ks_json_strv(hc, "ExtraHosts");
    _cleanup_strv_ char **links = ks_json_strv(hc, "Links");
    size_t nh = hosts ? ks_strv_len(hosts) : 0, nl = links ? ks_strv_len(links) : 0;
    _cleanup_strv_ char **v = calloc(nh + nl + 1, sizeof(char *));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "hosts");
    size_t n = 0;
    for (size_t i = 0; i < nh; i++) {
        char *colon = strchr(hosts[i], ':');
        if (colon == NULL)
            return ks_error_msg(err, "invalid --add-host `%s`", hosts[i]);
        *colon = '\0';
        char gw[INET6_ADDRSTRLEN] = "";
        const char *ip = colon + 1;
        if (strcmp(ip, "host-gateway") == 0) {
            for (size_t k = 0; k < n_eps && !*gw; k++)
                snprintf(gw, sizeof(gw), "%s",
                         eps[k].gateway4[0] ? eps[k].gateway4 : eps[k].gateway6);
            if (!*gw) {
                int r = host_address(gw, err);
                if (r < 0)
                    return r;
            }
            ip = gw;
        }
        if (asprintf(&v[n++], "%s\t%s", ip, hosts[i]) < 0)
            return ks_error_set(err, ENOMEM, "hosts");
    }
    for (size_t i = 0; i < nl; i++) {
        char *colon = strchr(links[i], ':');
        if (colon)
            *colon = '\0';
        const char *alias = colon && colon[1] ? colon + 1 : links[i];
        int r = link_address(e, links[i], alias, self, &v[n], err);
        if (r < 0)
            return r;
        n++;
    }
    *ret = TAKE_PTR(v);
    return 0;
}

static int host_files(json_object *hc, const char *hosts_extra_text, char **ret_hostname,
                      char **ret_hosts, struct ks_error **err)
{
    char name[256] = "";
    if (gethostname(name, sizeof(name) - 1) < 0)
        return ks_error_set(err, errno, "gethostname");
    _cleanup_free_ char *hosts = NULL;
    if (ks_read_file("/etc/hosts", &hosts, NULL, NULL) < 0)
        hosts = strdup(HOSTS_HEADER);
    size_t n = hosts ? strlen(hosts) : 0;
    if (hosts == NULL || asprintf(ret_hosts, "%s%s%s", hosts, n && hosts[n - 1] != '\n' ? "\n" : "",
                                  hosts_extra_text) < 0)
        return ks_error_set(err, ENOMEM, "hosts");
    if (asprintf(ret_hostname, "%s\n", name) < 0)
        return ks_error_set(err, ENOMEM, "hostname");
    return 0;
}

int ks_engine_etc_files_write(struct ks_engine *e, const char *id, json_object *config,
                              const struct ks_net_endpoint *eps, size_t n_eps,
                              struct ks_error **err)
{
    json_object *c = ks_json_get(config, "Config");
    json_object *hc = ks_json_get(config, "HostConfig");
    const char *nm = ks_json_str(hc, "NetworkMode");
    if (nm && strncmp(nm, "container:", 10) == 0)
        return 0; /* the other container's files are mounted */
    enum ks_etc_mode mode = etc_mode(hc, eps, n_eps);
    if (mode == KS_ETC_MODE_HOST && ks_json_get_type(hc, "Links", json_type_array) &&
        json_object_array_length(ks_json_get(hc, "Links")) > 0)
        return ks_error_msg(err, "conflicting options: host type networking can't be used with "
                                 "links. This would result in undefined behavior");
    _cleanup_free_ char *dir = ks_container_dir(e, id), *host_resolv = NULL, *resolv = NULL,
                        *hosts = NULL, *hostname = NULL;
    if (dir == NULL)
        return ks_error_set(err, ENOMEM, "etc files");
    _cleanup_strv_ char **extra = NULL;
    int r = extra_lines(e, id, hc, eps, n_eps, &extra, err);
    if (r < 0)
        return r;
    (void)ks_read_file(host_resolv_path(), &host_resolv, NULL, NULL); /* none: empty */
    r = ks_etc_resolv_conf(host_resolv, hc, mode, &resolv, err);
    if (r < 0)
        return r;
    if (mode == KS_ETC_MODE_HOST) {
        /* As Docker: the container takes the host's name (its UTS namespace, HOSTNAME). */
        char name[256] = "";
        if (gethostname(name, sizeof(name) - 1) == 0 && *name && c)
            json_object_object_add(c, "Hostname", json_object_new_string(name));
        struct text t = {0};
        for (size_t i = 0; extra[i]; i++)
            put(&t, "%s\n", extra[i]);
        r = host_files(hc, t.s ? t.s : "", &hostname, &hosts, err);
        free(t.s);
        if (t.oom)
            return ks_error_set(err, ENOMEM, "hosts");
    } else {
        const char *h = ks_json_str(c, "Hostname");
        r = ks_etc_hosts(config, eps, n_eps, (const char *const *)extra, &hosts, err);
        if (r >= 0 && asprintf(&hostname, "%s\n", h ? h : "") < 0)
            r = ks_error_set(err, ENOMEM, "hostname");
    }
    if (r < 0)
        return r;
    r = ks_mkdir_p(dir, 0700, err);
    if (r < 0)
        return r;
    _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return ks_error_set(err, errno, "open `%s`", dir);
    const struct {
        const char *name, *text;
    } files[] = {{"hostname", hostname}, {"hosts", hosts}, {"resolv.conf", resolv}};
    for (size_t i = 0; i < KS_ELEMENTSOF(files); i++) {
        r = ks_write_file_replace(dfd, files[i].name, files[i].text, strlen(files[i].text), 0644,
                                  err);
        if (r < 0)
            return ks_error_wrap(err, "write the container's %s", files[i].name);
    }
    return 0;
}

int ks_engine_etc_files_dir(struct ks_engine *e, const char *id, json_object *config, char **ret,
                            struct ks_error **err)
{
    const char *nm = ks_json_str(ks_json_get(config, "HostConfig"), "NetworkMode");
    _cleanup_db_container_ struct ks_db_container *other = NULL;
    if (nm && strncmp(nm, "container:", 10) == 0) {
        int r = ks_engine_lookup(e, nm + 10, &other, NULL, err);
        if (r < 0)
            return ks_error_wrap(err, "network mode %s", nm);
        id = other->id;
    }
    *ret = ks_container_dir(e, id);
    return *ret ? 0 : ks_error_set(err, ENOMEM, "etc files");
}

int ks_engine_dns_upstreams(json_object *config, char ***ret, struct ks_error **err)
{
    _cleanup_free_ char *host = NULL;
    (void)ks_read_file(host_resolv_path(), &host, NULL, NULL);
    return ks_etc_dns_upstreams(host, ks_json_get(config, "HostConfig"), ret, err);
}
