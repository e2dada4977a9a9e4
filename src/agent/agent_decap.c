/* GUE decapsulation: the decap XDP program on the agent's interface. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/agent.h"
#include "bpf/decap_abi.h"
#include "cli/cli.h"
#include "decap.skel.h"

static int set_config(struct agent *a, const struct su_plan *plan, bool enabled)
{
	struct decap_cfg cfg = { .router = htonl(a->router), .port = htons(a->o.gue_port),
				 .enabled = enabled, .self = htonl(agent_plan__self(plan, a->o.server)),
				 .slice_shift = plan->slice_shift };
	uint32_t zero = 0;

	return bpf_map__update_elem(a->skel->maps.decap_config, &zero, sizeof(zero), &cfg,
				    sizeof(cfg), BPF_ANY);
}

/* Replaces the egress set: new IPs first, then stale ones out, so an IP kept
 * across a reload never misses a packet. */
static int sync_egress(struct agent *a)
{
	struct bpf_map *m = a->skel->maps.decap_egress;
	uint32_t *ips, n = agent_plan__ips(a->cur, &ips), key, next, *pkey = NULL;
	uint8_t one = 1;
	int rc = 0;

	if (!ips)
		return -ENOMEM;
	for (uint32_t i = 0; !rc && i < n; i++) {
		uint32_t be = htonl(ips[i]);

		rc = bpf_map__update_elem(m, &be, sizeof(be), &one, sizeof(one), BPF_ANY);
	}
	while (!rc && !bpf_map__get_next_key(m, pkey, &next, sizeof(next))) {
		bool keep = false;

		for (uint32_t i = 0; i < n && !keep; i++)
			keep = htonl(ips[i]) == next;
		if (!keep) {
			bpf_map__delete_elem(m, &next, sizeof(next), 0);
			continue; /* restart after the deleted key's position */
		}
		key = next;
		pkey = &key;
	}
	free(ips);
	return rc;
}

/* Unix seconds to CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns), the
 * clock the decap compares deadlines with: suspend-proof, never set. */
static uint64_t boot_ns(int64_t unix_s)
{
	struct timespec b, r;
	int64_t ns;

	clock_gettime(CLOCK_BOOTTIME, &b);
	clock_gettime(CLOCK_REALTIME, &r);
	ns = (int64_t)b.tv_sec * 1000000000 + b.tv_nsec +
	     (unix_s - (int64_t)r.tv_sec) * 1000000000 - r.tv_nsec;
	return ns > 0 ? (uint64_t)ns : 0;
}

/* Replaces the handed slices of live moves (decap_hops): the plan's, new
 * and changed ones first, then stale ones out. */
static int sync_hops(struct agent *a, const struct su_plan *plan)
{
	struct bpf_map *m = a->skel->maps.decap_hops;
	struct agent_hop *v;
	struct decap_hop_key key, next, *pkey = NULL;
	int n = agent_plan__hops(plan, a->o.server, &v), rc = 0;

	if (n < 0)
		return n;
	for (int i = 0; !rc && i < n; i++) {
		struct decap_hop_key k = { .ip = htonl(v[i].ip), .slice = v[i].slice };
		struct decap_hop h = { .peer = htonl(v[i].peer),
				       .kind = v[i].held ? DECAP_HOP_HELD : DECAP_HOP_MOVED_IN,
				       .until_ns = boot_ns(v[i].until) };

		rc = bpf_map__update_elem(m, &k, sizeof(k), &h, sizeof(h), BPF_ANY);
	}
	while (!rc && !bpf_map__get_next_key(m, pkey, &next, sizeof(next))) {
		bool keep = false;

		for (int i = 0; i < n && !keep; i++)
			keep = htonl(v[i].ip) == next.ip && v[i].slice == next.slice;
		if (!keep) {
			bpf_map__delete_elem(m, &next, sizeof(next), 0);
			continue;
		}
		key = next;
		pkey = &key;
	}
	free(v);
	return rc;
}

/* Name and id of the XDP program attached to ifindex ("" and 0: none). */
static int attached_name(int ifindex, char *name, size_t size, uint32_t *id)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct bpf_prog_info info = { 0 };
	uint32_t len = sizeof(info);
	int fd;

	name[0] = 0;
	*id = 0;
	if (bpf_xdp_query(ifindex, 0, &q) || !q.prog_id)
		return 0;
	*id = q.prog_id;
	fd = bpf_prog_get_fd_by_id(q.prog_id);
	if (fd < 0)
		return -errno;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		snprintf(name, size, "%s", info.name);
	close(fd);
	return 0;
}

/* UPDATE_IF_NOEXIST: another XDP program on the interface (a router on the
 * same box, a firewall) is not ours to replace.  A "decap" program is: an
 * agent that crashed left it (netlink-attached XDP outlives its loader), and
 * it is replaced atomically.  Drivers without native XDP get generic mode. */
static int attach(int ifindex, int prog_fd, uint32_t *mode)
{
	char name[BPF_OBJ_NAME_LEN];
	uint32_t id;
	int rc = attached_name(ifindex, name, sizeof(name), &id);

	if (!rc && id && !strcmp(name, "decap")) {
		int old = bpf_prog_get_fd_by_id(id);
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old);

		rc = old < 0 ? -errno : bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_REPLACE, &opts);
		if (old >= 0)
			close(old);
		return rc;
	}
	if (rc)
		return rc;
	if (*mode != XDP_FLAGS_SKB_MODE) {
		rc = bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
		if (rc != -EOPNOTSUPP)
			return rc;
		*mode = XDP_FLAGS_SKB_MODE;
	}
	return bpf_xdp_attach(ifindex, prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_SKB_MODE,
			      NULL);
}

/* The filter on lo that refuses this host's own packets to its egress IPs
 * (decap_local).  A fixed handle and priority: a crashed agent's filter is
 * replaced, and detach removes ours only, never the clsact qdisc that other
 * filters may share. */
#define LOCAL_HANDLE 0x5375 /* "Su" */
#define LOCAL_PRIO 0x5375

static int local_hook(struct bpf_tc_hook *hook)
{
	int lo = (int)if_nametoindex("lo");

	if (!lo)
		return -errno;
	*hook = (struct bpf_tc_hook){ .sz = sizeof(*hook), .ifindex = lo,
				      .attach_point = BPF_TC_EGRESS };
	return 0;
}

static int attach_local(struct agent *a)
{
	struct bpf_tc_hook hook;
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = LOCAL_HANDLE, .priority = LOCAL_PRIO,
		    .flags = BPF_TC_F_REPLACE,
		    .prog_fd = bpf_program__fd(a->skel->progs.decap_local));
	int rc = local_hook(&hook);

	if (rc)
		return rc;
	rc = bpf_tc_hook_create(&hook);
	if (rc && rc != -EEXIST)
		return rc;
	return bpf_tc_attach(&hook, &opts);
}

static void detach_local(void)
{
	struct bpf_tc_hook hook;
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = LOCAL_HANDLE, .priority = LOCAL_PRIO);

	if (!local_hook(&hook))
		bpf_tc_detach(&hook, &opts);
}

/* RSS for GUE: every packet from the router has the same outer addresses,
 * so a NIC that hashes UDP on addresses only puts all of them on one queue
 * and one CPU.  ETHTOOL_GRXFH tells which fields the hash covers; drivers
 * without RSS (veth) answer EOPNOTSUPP, which is nothing to warn about. */
static void check_rss(const char *iface)
{
	struct ethtool_rxnfc nfc = { .cmd = ETHTOOL_GRXFH, .flow_type = UDP_V4_FLOW };
	struct ifreq ifr = { .ifr_data = (void *)&nfc };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", iface);
	if (!ioctl(fd, SIOCETHTOOL, &ifr) && !(nfc.data & (RXH_L4_B_0_1 | RXH_L4_B_2_3)))
		cli_warn("agent",
			"warning: %s hashes UDP/IPv4 on addresses only, so all GUE from the "
			"router lands on one receive queue; run `ethtool -N %s rx-flow-hash "
			"udp4 sdfn` (docs/agent.md, RSS)",
			iface, iface);
	close(fd);
}

int agent_decap__attach(struct agent *a)
{
	int rc;

	a->skel = decap__open_and_load();
	if (!a->skel)
		return -errno ? -errno : -EINVAL;
	rc = set_config(a, a->plan, true);
	if (!rc)
		rc = sync_egress(a);
	if (!rc)
		rc = sync_hops(a, a->plan);
	if (!rc)
		rc = attach_local(a);
	/* Generic XDP on request: what a driver without native XDP gives, and
	 * how the tests reproduce a receive path that keeps the NIC's checksum
	 * verdict across the decapsulation. */
	if (getenv("SOFTUNICAST_XDP_MODE") && !strcmp(getenv("SOFTUNICAST_XDP_MODE"), "skb"))
		a->xdp_mode = XDP_FLAGS_SKB_MODE;
	if (!rc)
		rc = attach(a->ifindex, bpf_program__fd(a->skel->progs.decap), &a->xdp_mode);
	if (rc) {
		detach_local();
		decap__destroy(a->skel);
		a->skel = NULL;
		return rc;
	}
	a->xdp_attached = true;
	check_rss(a->o.iface);
	return 0;
}

int agent_decap__update(struct agent *a, const struct su_plan *plan)
{
	int rc;

	if (!a->skel)
		return 0;
	rc = sync_egress(a);
	if (!rc)
		rc = sync_hops(a, plan);
	return rc ? rc : set_config(a, plan, true);
}

void agent_decap__detach(struct agent *a)
{
	if (a->xdp_attached) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts,
			    .old_prog_fd = bpf_program__fd(a->skel->progs.decap));

		/* old_prog_fd + REPLACE: detach only if it is still ours. */
		bpf_xdp_detach(a->ifindex, XDP_FLAGS_REPLACE | a->xdp_mode, &opts);
		a->xdp_attached = false;
		detach_local();
	}
	decap__destroy(a->skel);
	a->skel = NULL;
}

int agent_decap__stats(int ifindex, uint64_t *counts)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	if (bpf_xdp_query(ifindex, 0, &q) || !q.prog_id)
		return -ENOENT;
	return agent_bpf__sum_counters(q.prog_id, "decap_stats", DECAP_STAT_MAX, counts);
}
