// SPDX-License-Identifier: GPL-2.0
/* softunicast decap: XDP on a server's interface.  The DC's router sends
 * return traffic for our slices as GUE variant 1 (outer IPv4 + UDP to the
 * GUE port + the inner IPv4 packet, what Linux fou with ipproto 4 takes
 * apart); kernels without fou, or hosts that should not run it, get the same
 * effect here: strip outer IP and UDP and pass the inner packet up the stack
 * as if it had arrived natively.  Only the DC router may send GUE (anyone
 * else could otherwise inject packets "from" any origin), and only for
 * destinations that are our egress IPs. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/decap_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct decap_cfg);
} decap_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DECAP_MAX_EGRESS);
	__type(key, __u32);  /* egress IP, network order */
	__type(value, __u8);
} decap_egress SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DECAP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

static __always_inline int count(__u32 stat, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&decap_stats, &stat);

	if (v)
		*v += 1;
	return verdict;
}

/* Outer headers of a GUE packet for us, or NULL (not GUE: pass).  *hlen is
 * the outer IPv4 + UDP length to strip. */
static __always_inline struct iphdr *outer_gue(void *data, void *end,
					       const struct decap_cfg *cfg, __u32 *hlen)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp;
	__u32 ihl;

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	if (ip->protocol != IPPROTO_UDP || ip->ihl < 5)
		return NULL;
	ihl = (ip->ihl * 4) & 0x3c;
	udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > end || udp->dest != cfg->port)
		return NULL;
	*hlen = ihl + sizeof(*udp);
	return ip;
}

SEC("xdp")
int decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 zero = 0, hlen = 0;
	struct decap_cfg *cfg = bpf_map_lookup_elem(&decap_config, &zero);
	struct ethhdr eth, *neth;
	struct iphdr *ip, *inner;

	if (!cfg || !cfg->enabled)
		return XDP_PASS;
	ip = outer_gue(data, end, cfg, &hlen);
	if (!ip)
		return XDP_PASS;
	/* Non-first fragments carry no UDP header; reassembly is the kernel's. */
	if (ip->frag_off & bpf_htons(0x3fff))
		return count(DECAP_STAT_FRAGMENT, XDP_PASS);
	if (ip->saddr != cfg->router)
		return count(DECAP_STAT_BAD_SOURCE, XDP_DROP);
	inner = (void *)ip + (hlen & 0x7f);
	if ((void *)(inner + 1) > end || inner->version != 4)
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	if (!bpf_map_lookup_elem(&decap_egress, &inner->daddr))
		return count(DECAP_STAT_NOT_OURS, XDP_DROP);
	__builtin_memcpy(&eth, data, sizeof(eth));
	if (bpf_xdp_adjust_head(ctx, (int)hlen))
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	neth = data;
	if ((void *)(neth + 1) > end)
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	/* Same MACs: the stack only needs a sane Ethernet header to go on. */
	__builtin_memcpy(neth, &eth, sizeof(eth));
	neth->h_proto = bpf_htons(ETH_P_IP);
	return count(DECAP_STAT_DECAPSULATED, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
