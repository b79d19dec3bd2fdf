/* rtnetlink through libmnl: the few link, address and route requests container networking
 * needs, each one request acknowledged by the kernel. */
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "internal.h"

struct ks_nl {
    struct mnl_socket *sock;
    unsigned portid, seq;
    char buf[8192];
};

int ks_nl_open(struct ks_nl **ret, struct ks_error **err)
{
    struct ks_nl *nl = calloc(1, sizeof(*nl));
    if (nl == NULL)
        return ks_error_set(err, ENOMEM, "netlink");
    nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (nl->sock == NULL || mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
        int en = errno;
        ks_nl_close(nl);
        return ks_error_set(err, en, "netlink socket");
    }
    nl->portid = mnl_socket_get_portid(nl->sock);
    nl->seq = (unsigned)time(NULL);
    *ret = nl;
    return 0;
}

void ks_nl_close(struct ks_nl *nl)
{
    if (nl == NULL)
        return;
    if (nl->sock)
        mnl_socket_close(nl->sock);
    free(nl);
}

static struct nlmsghdr *msg_new(struct ks_nl *nl, int type, int flags)
{
    struct nlmsghdr *h = mnl_nlmsg_put_header(nl->buf);
    h->nlmsg_type = (uint16_t)type;
    h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
    h->nlmsg_seq = ++nl->seq;
    return h;
}

/* Sends h and waits for its acknowledgement; a callback (may be NULL) sees the replies. */
static int talk(struct ks_nl *nl, struct nlmsghdr *h, mnl_cb_t cb, void *data)
{
    if (mnl_socket_sendto(nl->sock, h, h->nlmsg_len) < 0)
        return -errno;
    unsigned seq = h->nlmsg_seq;
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(nl->sock, nl->buf, sizeof(nl->buf));
        if (n < 0)
            return -errno;
        int r = mnl_cb_run(nl->buf, (size_t)n, seq, nl->portid, cb, data);
        if (r < 0)
            return -errno;
        if (r == MNL_CB_STOP)
            return 0;
    }
}

static int index_cb(const struct nlmsghdr *h, void *data)
{
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
    *(int *)data = ifi->ifi_index;
    return MNL_CB_OK;
}

int ks_nl_link_index(struct ks_nl *nl, const char *name, struct ks_error **err)
{
    struct nlmsghdr *h = msg_new(nl, RTM_GETLINK, 0);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    int index = 0;
    int r = talk(nl, h, index_cb, &index);
    if (r == -ENODEV)
        return -ENODEV;
    if (r < 0)
        return ks_error_set(err, -r, "look up link %s", name);
    return index > 0 ? index : ks_error_set(err, ENODEV, "look up link %s", name);
}

int ks_nl_bridge_add(struct ks_nl *nl, const char *name, struct ks_error **err)
{
    struct nlmsghdr *h = msg_new(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = ifi->ifi_change = IFF_UP;
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    struct nlattr *info = mnl_attr_nest_start(h, IFLA_LINKINFO);
    mnl_attr_put_strz(h, IFLA_INFO_KIND, "bridge");
    mnl_attr_nest_end(h, info);
    int r = talk(nl, h, NULL, NULL);
    return r < 0 ? ks_error_set(err, -r, "create bridge %s", name) : 0;
}

int ks_nl_veth_add(struct ks_nl *nl, const char *host_name, int master_index, const char *peer_name,
                   int netns_fd, const unsigned char *mac, struct ks_error **err)
{
    struct nlmsghdr *h = msg_new(nl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_flags = ifi->ifi_change = IFF_UP;
    mnl_attr_put_strz(h, IFLA_IFNAME, host_name);
    mnl_attr_put_u32(h, IFLA_MASTER, (uint32_t)master_index);
    struct nlattr *info = mnl_attr_nest_start(h, IFLA_LINKINFO);
    mnl_attr_put_strz(h, IFLA_INFO_KIND, "veth");
    struct nlattr *data = mnl_attr_nest_start(h, IFLA_INFO_DATA);
    struct nlattr *peer = mnl_attr_nest_start(h, VETH_INFO_PEER);
    struct ifinfomsg *pifi = mnl_nlmsg_put_extra_header(h, sizeof(*pifi));
    pifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(h, IFLA_IFNAME, peer_name);
    mnl_attr_put_u32(h, IFLA_NET_NS_FD, (uint32_t)netns_fd);
    mnl_attr_put(h, IFLA_ADDRESS, 6, mac);
    mnl_attr_nest_end(h, peer);
    mnl_attr_nest_end(h, data);
    mnl_attr_nest_end(h, info);
    int r = talk(nl, h, NULL, NULL);
    return r < 0 ? ks_error_set(err, -r, "create veth pair %s", host_name) : 0;
}

int ks_nl_link_del(struct ks_nl *nl, const char *name, struct ks_error **err)
{
    struct nlmsghdr *h = msg_new(nl, RTM_DELLINK, 0);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(h, IFLA_IFNAME, name);
    int r = talk(nl, h, NULL, NULL);
    if (r == -ENODEV)
        return 0;
    return r < 0 ? ks_error_set(err, -r, "delete link %s", name) : 0;
}

int ks_nl_link_up(struct ks_nl *nl, int index, struct ks_error **err)
{
    struct nlmsghdr *h = msg_new(nl, RTM_NEWLINK, 0);
    struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(h, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = index;
    ifi->ifi_flags = ifi->ifi_change = IFF_UP;
    int r = talk(nl, h, NULL, NULL);
    return r < 0 ? ks_error_set(err, -r, "set link %d up", index) : 0;
}

int ks_nl_addr4_add(struct ks_nl *nl, int index, uint32_t a, int prefix, struct ks_error **err)
{
    struct nlmsghdr *h = msg_new(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(h, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_index = (unsigned)index;
    uint32_t be = htonl(a);
    mnl_attr_put_u32(h, IFA_LOCAL, be);
    mnl_attr_put_u32(h, IFA_ADDRESS, be);
    if (prefix < 31) {
        uint32_t bc = htonl(a | ~ks_net_mask(prefix));
        mnl_attr_put_u32(h, IFA_BROADCAST, bc);
    }
    int r = talk(nl, h, NULL, NULL);
    return r < 0 ? ks_error_set(err, -r, "add address to link %d", index) : 0;
}

int ks_nl_route4_default(struct ks_nl *nl, uint32_t gw, struct ks_error **err)
{
    struct nlmsghdr *h = msg_new(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
    struct rtmsg *rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
    rt->rtm_family = AF_INET;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = RT_SCOPE_UNIVERSE;
    rt->rtm_type = RTN_UNICAST;
    mnl_attr_put_u32(h, RTA_GATEWAY, htonl(gw));
    int r = talk(nl, h, NULL, NULL);
    return r < 0 ? ks_error_set(err, -r, "add the default route") : 0;
}
