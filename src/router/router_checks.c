/* Start-up checks of the interfaces a router attaches to and forwards out
 * of (issue 8 §5): what real NICs and veth do to packets before or after
 * XDP sees them, checked once at start with the ethtool ioctl, sysfs and
 * netlink, so that a router that would lose packets silently refuses to
 * start, or fixes the setting and says so, naming the knob. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/ethtool.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <dirent.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "cli/cli.h"
#include "router/router.h"

#define check_log(...) cli_log("router", __VA_ARGS__)
#define check_warn(...) cli_warn("router", __VA_ARGS__) /* syslog priority 4 */

/* ---- ethtool ---- */

static int ethtool(const char *ifname, void *cmd)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = cmd;
	if (ioctl(fd, SIOCETHTOOL, &ifr))
		rc = -errno;
	close(fd);
	return rc;
}

static int ethtool_get(const char *ifname, uint32_t cmd, uint32_t *val)
{
	struct ethtool_value v = { .cmd = cmd };
	int rc = ethtool(ifname, &v);

	*val = v.data;
	return rc;
}

static int ethtool_set(const char *ifname, uint32_t cmd, uint32_t val)
{
	struct ethtool_value v = { .cmd = cmd, .data = val };

	return ethtool(ifname, &v);
}

/* ---- sysfs ---- */

static int sysfs_read(const char *ifname, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/class/net/%s/%s", ifname, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

static long sysfs_long(const char *ifname, const char *file)
{
	char buf[64];

	return sysfs_read(ifname, file, buf, sizeof(buf)) ? -1 : strtol(buf, NULL, 0);
}

static bool devtype_is(const char *ifname, const char *type)
{
	char buf[1024], want[64];

	snprintf(want, sizeof(want), "DEVTYPE=%s\n", type);
	return !sysfs_read(ifname, "uevent", buf, sizeof(buf)) && strstr(buf, want);
}

static bool is_veth(const char *ifname)
{
	struct ethtool_drvinfo d = { .cmd = ETHTOOL_GDRVINFO };

	return !ethtool(ifname, &d) && !strcmp(d.driver, "veth");
}

/* The veth peer of ifname, if it lives in this namespace (its iflink
 * points back at us), else 0. */
static int veth_peer(const char *ifname, int ifindex, char *peer)
{
	long p = sysfs_long(ifname, "iflink");

	if (p <= 0 || p == ifindex || !if_indextoname((unsigned)p, peer) || !is_veth(peer) ||
	    sysfs_long(peer, "iflink") != ifindex)
		return 0;
	return (int)p;
}

/* ---- 802.1Q ---- */

/* With rx-vlan-offload on, the NIC strips the tag into metadata before XDP
 * runs; a frame the router sends back out (XDP_TX, redirect) leaves
 * untagged.  Only matters when tagged traffic is expected here, i.e. VLAN
 * devices sit on the interface. */
static int check_vlan(const char *ifname)
{
	char uppers[256] = "", path[PATH_MAX];
	uint32_t flags = 0;
	struct dirent *e;
	DIR *d;

	if (ethtool_get(ifname, ETHTOOL_GFLAGS, &flags) || !(flags & ETH_FLAG_RXVLAN))
		return 0;
	snprintf(path, sizeof(path), "/sys/class/net/%s", ifname);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		const char *up = e->d_name + 6;

		if (strncmp(e->d_name, "upper_", 6) || !devtype_is(up, "vlan"))
			continue;
		if (strlen(uppers) + strlen(up) + 2 < sizeof(uppers))
			snprintf(uppers + strlen(uppers), sizeof(uppers) - strlen(uppers), "%s%s",
				 *uppers ? " " : "", up);
	}
	closedir(d);
	if (!*uppers)
		return 0;
	return cli_fail(SU_EXIT_FAIL, "router",
			"%s strips 802.1Q tags before XDP runs (rx-vlan-offload on) and carries "
			"VLAN devices (%s): frames the router sends back out would leave untagged. "
			"Run 'ethtool -K %s rxvlan off' (the router then leaves tagged frames to the "
			"kernel) and start again", ifname, uppers, ifname);
}

/* ---- GRO in generic mode ---- */

/* Generic (skb) XDP runs after GRO: it sees merged packets up to 64 KiB,
 * and its MTU checks would answer "fragmentation needed" to segments that
 * fit on the wire.  Native XDP runs before GRO. */
static int check_gro(const char *ifname, uint32_t xdp_flags)
{
	uint32_t gro = 0, flags = 0;

	if (!(xdp_flags & XDP_FLAGS_SKB_MODE))
		return 0;
	if (!ethtool_get(ifname, ETHTOOL_GGRO, &gro) && gro) {
		if (ethtool_set(ifname, ETHTOOL_SGRO, 0))
			return cli_fail(SU_EXIT_FAIL, "router",
					"%s: --mode skb sees GRO-merged packets and GRO cannot be "
					"turned off (%s): run 'ethtool -K %s gro off' or use native "
					"mode", ifname, strerror(errno), ifname);
		check_log("%s: GRO turned off: --mode skb runs after GRO and would see merged "
			  "packets ('ethtool -K %s gro on' restores it once the router is gone)",
			  ifname, ifname);
	}
	if (!ethtool_get(ifname, ETHTOOL_GFLAGS, &flags) && (flags & ETH_FLAG_LRO)) {
		if (ethtool_set(ifname, ETHTOOL_SFLAGS, flags & ~(uint32_t)ETH_FLAG_LRO))
			return cli_fail(SU_EXIT_FAIL, "router", "%s: LRO is on and cannot be turned "
					"off: run 'ethtool -K %s lro off'", ifname, ifname);
		check_log("%s: LRO turned off, for the same reason ('ethtool -K %s lro on' "
			  "restores it)", ifname, ifname);
	}
	return 0;
}

/* ---- checksums on veth ---- */

/* A veth "offloads" TCP/UDP checksums to hardware that does not exist: the
 * sender leaves only the pseudo-header sum, the skb says CHECKSUM_PARTIAL,
 * and XDP, which sees bytes and no skb, forwards the packet as it is.  The
 * receiver drops it (TcpInCsumErrors) and the connection hangs.  Every
 * sender on the veth's side must run with TX checksumming off. */
static void check_veth_csum(const char *ifname, int ifindex)
{
	char peer[IF_NAMESIZE] = "";
	uint32_t tx = 0;

	if (!is_veth(ifname))
		return;
	if (!veth_peer(ifname, ifindex, peer)) {
		check_warn("%s is a veth whose peer is in another namespace: every sender on that "
			  "side must run with 'ethtool -K DEV tx off', or XDP forwards packets with "
			  "unfilled TCP/UDP checksums (see softunicast-router(1), VETH)", ifname);
		return;
	}
	if (ethtool_get(peer, ETHTOOL_GTXCSUM, &tx) || !tx)
		return;
	if (ethtool_set(peer, ETHTOOL_STXCSUM, 0)) {
		check_warn("%s: its veth peer %s has TX checksum offload on and it cannot be turned "
			  "off (%s): run 'ethtool -K %s tx off'", ifname, peer, strerror(errno), peer);
		return;
	}
	check_log("%s: TX checksum offload turned off on its veth peer %s (XDP would forward "
		  "packets with unfilled checksums; 'ethtool -K %s tx off' is the setting)",
		  ifname, peer, peer);
}

/* ---- MTU ---- */

/* Native XDP on veth takes one page per frame: the peer's MTU may be at
 * most a page less XDP headroom (256), skb_shared_info (320) and the
 * Ethernet header (veth_xdp_set(), drivers/net/veth.c).  Other drivers
 * have their own, similar limits; their attach fails with ERANGE. */
int su_router__veth_xdp_mtu(void)
{
	return (int)sysconf(_SC_PAGESIZE) - 256 - 320 - 14;
}

static int check_mtu(const char *ifname, int ifindex, uint32_t xdp_flags)
{
	char peer[IF_NAMESIZE] = "";
	long mtu = sysfs_long(ifname, "mtu"), pmtu = -1;
	int lim = su_router__veth_xdp_mtu();

	if (!(xdp_flags & XDP_FLAGS_DRV_MODE) || !is_veth(ifname))
		return 0;
	if (veth_peer(ifname, ifindex, peer))
		pmtu = sysfs_long(peer, "mtu");
	/* The peer's MTU is the one that counts; a veth pair normally has
	 * one MTU, so ours stands for a peer we cannot see. */
	if (pmtu > lim || (pmtu < 0 && mtu > lim))
		return cli_fail(SU_EXIT_FAIL, "router",
				"%s: MTU %ld is too large for native XDP on veth (at most %d bytes: "
				"one %ld-byte page per frame); lower it on both ends ('ip link set "
				"%s mtu %d' and its peer) or run with --mode skb",
				pmtu > lim ? peer : ifname, pmtu > lim ? pmtu : mtu, lim,
				sysconf(_SC_PAGESIZE), pmtu > lim ? peer : ifname, lim);
	return 0;
}

const char *su_router__attach_hint(const char *ifname, int rc, uint32_t xdp_flags, char *buf,
				   size_t len)
{
	if (rc == -ERANGE && (xdp_flags & XDP_FLAGS_DRV_MODE))
		snprintf(buf, len, " (the MTU of %s or of its veth peer, %ld, is too large for "
			 "native XDP on this driver; on veth the limit is %d bytes: lower it with "
			 "'ip link set DEV mtu N' on both ends, or run with --mode skb)", ifname,
			 sysfs_long(ifname, "mtu"), su_router__veth_xdp_mtu());
	else if (rc == -EOPNOTSUPP)
		snprintf(buf, len, " (try --mode skb)");
	else if (rc == -EEXIST || rc == -EBUSY)
		snprintf(buf, len, " (attached in another mode? 'router detach' first)");
	else
		*buf = 0;
	return buf;
}

/* ---- RSS ---- */

/* GUE between routers and servers is UDP between a handful of address
 * pairs: hashed on addresses only, all of it lands on one queue and one
 * CPU.  The UDP ports (the outer source port carries the inner flow's
 * entropy) must be in the hash. */
static void check_rss(const char *ifname)
{
	struct ethtool_rxnfc nfc = { .cmd = ETHTOOL_GRXFH, .flow_type = UDP_V4_FLOW };

	if (ethtool(ifname, &nfc) || !nfc.data)
		return; /* no RSS (veth, single queue): nothing to spread */
	if ((nfc.data & (RXH_L4_B_0_1 | RXH_L4_B_2_3)) == (RXH_L4_B_0_1 | RXH_L4_B_2_3))
		return;
	check_warn("%s hashes UDP on addresses only: GUE from one peer lands on one queue and "
		  "one CPU; 'ethtool -N %s rx-flow-hash udp4 sdfn' spreads it by port", ifname,
		  ifname);
}

/* ---- next hops that cannot take XDP redirects ---- */

/* netdev generic netlink family (Linux 6.3+, include/uapi/linux/netdev.h):
 * not in every libc's headers yet. */
#define SU_NETDEV_CMD_DEV_GET 1
#define SU_NETDEV_A_DEV_IFINDEX 1
#define SU_NETDEV_A_DEV_XDP_FEATURES 3
#define SU_NETDEV_XDP_ACT_NDO_XMIT 4

struct nl {
	struct mnl_socket *sk;
	uint32_t seq;
	uint16_t netdev_family;
	uint64_t u64;
	uint32_t u32;
	bool found;
};

static int attr_family_cb(const struct nlattr *a, void *data)
{
	struct nl *n = data;

	if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID) {
		n->netdev_family = mnl_attr_get_u16(a);
		n->found = true;
	}
	return MNL_CB_OK;
}

static int family_cb(const struct nlmsghdr *h, void *data)
{
	return mnl_attr_parse(h, sizeof(struct genlmsghdr), attr_family_cb, data);
}

static int attr_features_cb(const struct nlattr *a, void *data)
{
	struct nl *n = data;

	if (mnl_attr_get_type(a) == SU_NETDEV_A_DEV_XDP_FEATURES) {
		n->u64 = mnl_attr_get_u64(a);
		n->found = true;
	}
	return MNL_CB_OK;
}

static int features_cb(const struct nlmsghdr *h, void *data)
{
	return mnl_attr_parse(h, sizeof(struct genlmsghdr), attr_features_cb, data);
}

static int attr_oif_cb(const struct nlattr *a, void *data)
{
	struct nl *n = data;

	if (mnl_attr_get_type(a) == RTA_OIF) {
		n->u32 = mnl_attr_get_u32(a);
		n->found = true;
	}
	return MNL_CB_OK;
}

static int route_cb(const struct nlmsghdr *h, void *data)
{
	return mnl_attr_parse(h, sizeof(struct rtmsg), attr_oif_cb, data);
}

/* One request, one reply (no dumps here): a single read, an error reply
 * (NLMSG_ERROR) turned into -errno. */
static int nl_talk(struct nl *n, struct nlmsghdr *h, mnl_cb_t cb)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	ssize_t len;

	h->nlmsg_seq = ++n->seq;
	n->found = false;
	if (mnl_socket_sendto(n->sk, h, h->nlmsg_len) < 0)
		return -errno;
	len = mnl_socket_recvfrom(n->sk, buf, sizeof(buf));
	if (len < 0)
		return -errno;
	if (mnl_cb_run(buf, (size_t)len, n->seq, mnl_socket_get_portid(n->sk), cb, n) < 0)
		return -errno;
	return 0;
}

static struct nlmsghdr *genl_msg(char *buf, uint16_t type, uint8_t cmd)
{
	struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *g;

	h->nlmsg_type = type;
	h->nlmsg_flags = NLM_F_REQUEST;
	g = mnl_nlmsg_put_extra_header(h, sizeof(*g));
	g->cmd = cmd;
	g->version = 1;
	return h;
}

/* XDP features of ifindex (NETDEV_XDP_ACT_*), or -errno (-ENOENT: a
 * kernel without the netdev family, older than 6.3). */
static int64_t xdp_features(struct nl *gn, uint32_t ifindex)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h;
	int rc;

	if (!gn->netdev_family) {
		h = genl_msg(buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY);
		mnl_attr_put_strz(h, CTRL_ATTR_FAMILY_NAME, "netdev");
		if (nl_talk(gn, h, family_cb) || !gn->found)
			return -ENOENT;
	}
	h = genl_msg(buf, gn->netdev_family, SU_NETDEV_CMD_DEV_GET);
	mnl_attr_put_u32(h, SU_NETDEV_A_DEV_IFINDEX, ifindex);
	rc = nl_talk(gn, h, features_cb);
	if (rc || !gn->found)
		return rc ? rc : -ENOENT;
	return (int64_t)gn->u64;
}

/* Output interface of the route to addr (host order), or 0. */
static uint32_t route_oif(struct nl *rn, uint32_t addr)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *h = mnl_nlmsg_put_header(buf);
	struct rtmsg *rt;

	h->nlmsg_type = RTM_GETROUTE;
	h->nlmsg_flags = NLM_F_REQUEST;
	rt = mnl_nlmsg_put_extra_header(h, sizeof(*rt));
	rt->rtm_family = AF_INET;
	rt->rtm_dst_len = 32;
	mnl_attr_put_u32(h, RTA_DST, htonl(addr));
	return nl_talk(rn, h, route_cb) || !rn->found ? 0 : rn->u32;
}

static int nl_open(struct nl *n, int bus)
{
	memset(n, 0, sizeof(*n));
	n->seq = (uint32_t)time(NULL);
	n->sk = mnl_socket_open(bus);
	if (!n->sk || mnl_socket_bind(n->sk, 0, MNL_SOCKET_AUTOPID))
		return -errno;
	return 0;
}

/* The router forwards to its DC's servers and to the peer routers out of
 * whichever interface the kernel routes them on (XDP_TX or a redirect).
 * A device without ndo_xdp_xmit (a Linux bridge, a bond in some modes, a
 * VLAN device) drops every redirected frame; a veth takes them only while
 * its peer runs XDP (or GRO).  Checked per distinct output interface. */
static int check_next_hops(const struct su_plan *p, uint32_t dc)
{
	struct nl rn, gn;
	uint32_t seen[64];
	int n_seen = 0, rc = 0;

	if (nl_open(&rn, NETLINK_ROUTE) || nl_open(&gn, NETLINK_GENERIC)) {
		if (rn.sk)
			mnl_socket_close(rn.sk);
		if (gn.sk)
			mnl_socket_close(gn.sk);
		check_warn("cannot check the next-hop interfaces: %s", strerror(errno));
		return 0;
	}
	for (uint32_t i = 0; i < p->n_servers + p->n_dcs && !rc; i++) {
		bool server = i < p->n_servers;
		uint32_t a = server ? p->servers[i].addr : p->dcs[i - p->n_servers].router;
		uint32_t oif, k;
		char name[IF_NAMESIZE] = "?", as[SU_ADDR_STRLEN];
		int64_t f;

		if (server ? p->servers[i].dc != dc : (i - p->n_servers == dc || !a))
			continue;
		oif = route_oif(&rn, a);
		for (k = 0; k < (uint32_t)n_seen && seen[k] != oif; k++)
			;
		if (!oif || k < (uint32_t)n_seen)
			continue;
		if (n_seen < 64)
			seen[n_seen++] = oif;
		if_indextoname(oif, name);
		f = xdp_features(&gn, oif);
		if (f < 0)
			break; /* kernel too old to say: nothing checked */
		if (f & SU_NETDEV_XDP_ACT_NDO_XMIT)
			continue;
		su_addr__str(a, as);
		if (is_veth(name))
			check_warn("next hop %s (%s %s) is a veth that cannot take XDP redirects until "
				  "its peer runs an XDP program (or has GRO on): frames sent there are "
				  "lost until then", name, server ? "server" : "router", as);
		else
			rc = cli_fail(SU_EXIT_FAIL, "router",
				      "%s %s is reached through %s, which cannot take XDP redirects "
				      "(%s): every packet the router sends there would be lost. Route "
				      "the DC network over an interface whose driver takes XDP frames "
				      "(a NIC, a veth), not through a bridge on the router",
				      server ? "server" : "router", as, name,
				      devtype_is(name, "bridge") ? "a Linux bridge" :
								   "its driver has no ndo_xdp_xmit");
	}
	mnl_socket_close(rn.sk);
	mnl_socket_close(gn.sk);
	return rc;
}

/* Which attached interface reaches this DC's servers and which the peer
 * routers, by the kernel's routes: the sides a plan address may come from
 * (anti-spoofing, src/bpf/abi.h su_ifroles). */
int su_router__if_roles(const int *ifindex, int n, const struct su_plan *p, uint32_t dc,
			uint32_t *roles)
{
	struct nl rn;

	for (int i = 0; i < n; i++)
		roles[i] = 0;
	if (nl_open(&rn, NETLINK_ROUTE)) {
		int rc = -errno;

		if (rn.sk)
			mnl_socket_close(rn.sk);
		return rc;
	}
	for (uint32_t i = 0; i < p->n_servers + p->n_dcs; i++) {
		bool server = i < p->n_servers;
		uint32_t a = server ? p->servers[i].addr : p->dcs[i - p->n_servers].router, oif;

		if (server ? p->servers[i].dc != dc : (i - p->n_servers == dc || !a))
			continue;
		oif = route_oif(&rn, a);
		for (int k = 0; k < n; k++)
			if (oif && ifindex[k] == (int)oif)
				roles[k] |= server ? SU_IF_DC : SU_IF_BACKBONE;
	}
	mnl_socket_close(rn.sk);
	return 0;
}

int su_router__start_checks(const char *const *ifname, const int *ifindex, int n,
			    uint32_t xdp_flags, const struct su_plan *p, uint32_t dc)
{
	int rc;

	for (int i = 0; i < n; i++) {
		if (!ifname[i])
			continue;
		if ((rc = check_vlan(ifname[i])) || (rc = check_gro(ifname[i], xdp_flags)) ||
		    (rc = check_mtu(ifname[i], ifindex[i], xdp_flags)))
			return rc;
		check_veth_csum(ifname[i], ifindex[i]);
		check_rss(ifname[i]);
	}
	return check_next_hops(p, dc);
}
