/* Port specifications of -p, -P/--expose and EXPOSE, parsed as Docker's client parses them and
 * stored as Docker stores them (HostConfig.PortBindings, Config.ExposedPorts). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/json.h"
#include "net.h"

static int parse_range(const char *s, size_t len, unsigned *lo, unsigned *hi, bool zero_ok)
{
    char buf[16];
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *dash = strchr(buf, '-'), *end;
    if (dash)
        *dash = '\0';
    if (buf[0] < '0' || buf[0] > '9')
        return -EINVAL;
    unsigned long a = strtoul(buf, &end, 10), b = a;
    if (*end || a > 65535)
        return -EINVAL;
    if (dash) {
        if (dash[1] < '0' || dash[1] > '9')
            return -EINVAL;
        b = strtoul(dash + 1, &end, 10);
        if (*end || b > 65535 || b < a)
            return -EINVAL;
    }
    if ((a == 0 && !zero_ok) || (a == 0 && b != 0))
        return -EINVAL;
    *lo = (unsigned)a;
    *hi = (unsigned)b;
    return 0;
}

static int parse_proto(const char *p, char proto[4])
{
    if (strcmp(p, "tcp") != 0 && strcmp(p, "udp") != 0 && strcmp(p, "sctp") != 0)
        return -EINVAL;
    snprintf(proto, 4, "%s", p);
    return 0;
}

int ks_net_expose_parse(const char *s, unsigned *ret_start, unsigned *ret_end, char proto[4],
                        struct ks_error **err)
{
    const char *slash = strrchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    if (parse_range(s, len, ret_start, ret_end, false) < 0)
        return ks_error_msg(err, "invalid range format for --expose: %s", s);
    if (parse_proto(slash ? slash + 1 : "tcp", proto) < 0)
        return ks_error_msg(err, "invalid proto: %s", slash + 1);
    return 0;
}

int ks_net_port_spec_parse(const char *s, struct ks_net_port_spec *ret, struct ks_error **err)
{
    memset(ret, 0, sizeof(*ret));
    char buf[128];
    if (s == NULL || strlen(s) >= sizeof(buf) || *s == '\0')
        return ks_error_msg(err, "invalid port format: `%s`", s ? s : "");
    snprintf(buf, sizeof(buf), "%s", s);
    char *rest = buf;
    /* An IPv6 address goes in brackets, so that its colons are not taken for separators. */
    if (*rest == '[') {
        char *close = strchr(rest, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - rest - 1) >= sizeof(ret->host_ip))
            return ks_error_msg(err, "invalid IP address in port spec: %s", s);
        memcpy(ret->host_ip, rest + 1, (size_t)(close - rest - 1));
        rest = close + 2;
        struct in6_addr a6;
        if (inet_pton(AF_INET6, ret->host_ip, &a6) != 1)
            return ks_error_msg(err, "invalid IP address in port spec: %s", s);
    }
    char *slash = strrchr(rest, '/');
    if (parse_proto(slash ? slash + 1 : "tcp", ret->proto) < 0)
        return ks_error_msg(err, "invalid proto: %s", slash + 1);
    if (slash)
        *slash = '\0';
    char *parts[3];
    size_t n = 0;
    for (char *p = rest; n < 3;) {
        parts[n++] = p;
        char *c = strchr(p, ':');
        if (c == NULL)
            break;
        *c = '\0';
        p = c + 1;
        if (n == 3)
            return ks_error_msg(err, "invalid port format: `%s`", s);
    }
    if (ret->host_ip[0] && n != 2)
        return ks_error_msg(err, "invalid port format: `%s`", s);
    const char *ctr = parts[n - 1], *host = n >= 2 ? parts[n - 2] : "";
    if (n == 3) {
        uint32_t a;
        if (ks_net_ip4_parse(parts[0], &a) < 0 || strlen(parts[0]) >= sizeof(ret->host_ip))
            return ks_error_msg(err, "invalid IP address: %s", parts[0]);
        snprintf(ret->host_ip, sizeof(ret->host_ip), "%s", parts[0]);
    }
    if (parse_range(ctr, strlen(ctr), &ret->ctr_start, &ret->ctr_end, false) < 0)
        return ks_error_msg(err, "invalid containerPort: %s", ctr);
    if (*host && parse_range(host, strlen(host), &ret->host_start, &ret->host_end, false) < 0)
        return ks_error_msg(err, "invalid hostPort: %s", host);
    /* A host range for one container port means any free one of it; otherwise sizes match. */
    if (*host && ret->ctr_end != ret->ctr_start &&
        ret->host_end - ret->host_start != ret->ctr_end - ret->ctr_start)
        return ks_error_msg(err, "invalid ranges specified for container and host Ports: %s and %s",
                            ctr, host);
    return 0;
}

static json_object *obj_child(json_object *o, const char *key)
{
    json_object *v = ks_json_get_type(o, key, json_type_object);
    if (v == NULL) {
        v = json_object_new_object();
        json_object_object_add(o, key, v);
    }
    return v;
}

int ks_net_port_spec_add(json_object *c, json_object *hc, const char *s, struct ks_error **err)
{
    struct ks_net_port_spec p;
    int r = ks_net_port_spec_parse(s, &p, err);
    if (r < 0)
        return r;
    json_object *exposed = obj_child(c, "ExposedPorts"), *pb = obj_child(hc, "PortBindings");
    for (unsigned port = p.ctr_start; port <= p.ctr_end; port++) {
        char key[32], hp[16] = "";
        snprintf(key, sizeof(key), "%u/%s", port, p.proto);
        json_object_object_add(exposed, key, json_object_new_object());
        if (p.host_start && p.ctr_end == p.ctr_start && p.host_end != p.host_start)
            snprintf(hp, sizeof(hp), "%u-%u", p.host_start, p.host_end);
        else if (p.host_start)
            snprintf(hp, sizeof(hp), "%u", p.host_start + (port - p.ctr_start));
        json_object *arr = ks_json_get_type(pb, key, json_type_array);
        if (arr == NULL) {
            arr = json_object_new_array();
            json_object_object_add(pb, key, arr);
        }
        json_object *b = json_object_new_object();
        json_object_object_add(b, "HostIp", json_object_new_string(p.host_ip));
        json_object_object_add(b, "HostPort", json_object_new_string(hp));
        json_object_array_add(arr, b);
    }
    return 0;
}

int ks_net_expose_add(json_object *c, const char *s, struct ks_error **err)
{
    unsigned lo, hi;
    char proto[4];
    int r = ks_net_expose_parse(s, &lo, &hi, proto, err);
    if (r < 0)
        return r;
    json_object *exposed = obj_child(c, "ExposedPorts");
    for (unsigned port = lo; port <= hi; port++) {
        char key[32];
        snprintf(key, sizeof(key), "%u/%s", port, proto);
        json_object_object_add(exposed, key, json_object_new_object());
    }
    return 0;
}
