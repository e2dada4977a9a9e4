/* Egress addresses on the host: RTM_NEWADDR / RTM_DELADDR over rtnetlink. */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "agent/agent.h"

static int addr_request(int type, int flags, int ifindex, uint32_t ip)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifaddrmsg *ifa;
	uint32_t be = htonl(ip), seq = (uint32_t)time(NULL), portid;
	int rc;

	if (!nl)
		return -errno;
	nlh->nlmsg_type = (uint16_t)type;
	nlh->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
	nlh->nlmsg_seq = seq;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	ifa->ifa_prefixlen = 32; /* a /32: the address, never a subnet route */
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (uint32_t)ifindex;
	mnl_attr_put_u32(nlh, IFA_LOCAL, be);
	mnl_attr_put_u32(nlh, IFA_ADDRESS, be);
	/* No prefix route and no DAD-like games: the address is shared with
	 * other servers and must not attract anything but our own flows. */
	mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NOPREFIXROUTE);
	/* Linux >= 6.3 keeps it and reports it in dumps; older kernels ignore
	 * it (recovery then relies on the state directory's record). */
	if (type == RTM_NEWADDR)
		mnl_attr_put_u8(nlh, IFA_PROTO, AGENT_IFA_PROTO);
	rc = mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) ? -errno : 0;
	portid = mnl_socket_get_portid(nl);
	if (!rc && mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		rc = -errno;
	if (!rc) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		rc = n < 0 ? -errno : mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL);
		if (rc < 0)
			rc = -errno;
		else
			rc = 0;
	}
	mnl_socket_close(nl);
	return rc;
}

int agent_addr__add(int ifindex, uint32_t ip)
{
	return addr_request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, ip);
}

int agent_addr__del(int ifindex, uint32_t ip)
{
	return addr_request(RTM_DELADDR, 0, ifindex, ip);
}

struct ours {
	int ifindex;
	uint32_t *v;
	int n;
};

static int addr_attr(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);

	if (type <= IFA_MAX)
		tb[type] = attr;
	return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFA_MAX + 1] = { 0 };
	struct ours *o = data;
	uint32_t *v;

	if (ifa->ifa_family != AF_INET || (int)ifa->ifa_index != o->ifindex)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*ifa), addr_attr, tb);
	if (!tb[IFA_PROTO] || mnl_attr_get_u8(tb[IFA_PROTO]) != AGENT_IFA_PROTO || !tb[IFA_LOCAL])
		return MNL_CB_OK;
	v = realloc(o->v, (size_t)(o->n + 1) * sizeof(*v));
	if (!v)
		return MNL_CB_ERROR;
	o->v = v;
	o->v[o->n++] = ntohl(mnl_attr_get_u32(tb[IFA_LOCAL]));
	return MNL_CB_OK;
}

int agent_addr__ours(int ifindex, uint32_t **out)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ours o = { .ifindex = ifindex };
	struct ifaddrmsg *ifa;
	uint32_t seq = (uint32_t)time(NULL), portid;
	int rc;

	*out = NULL;
	if (!nl)
		return -errno;
	nlh->nlmsg_type = RTM_GETADDR;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = AF_INET;
	rc = mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) ? -errno : 0;
	portid = mnl_socket_get_portid(nl);
	if (!rc && mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		rc = -errno;
	while (!rc) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		if (n < 0) {
			rc = -errno;
			break;
		}
		n = mnl_cb_run(buf, (size_t)n, seq, portid, addr_cb, &o);
		if (n < 0)
			rc = -errno ? -errno : -EIO;
		if (n <= MNL_CB_STOP)
			break;
	}
	mnl_socket_close(nl);
	if (rc) {
		free(o.v);
		return rc;
	}
	*out = o.v;
	return o.n;
}
