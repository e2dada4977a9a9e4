// SPDX-License-Identifier: GPL-2.0
/* softunicast router: XDP program on a DC's edge (and backbone) interfaces.
 *
 * For IPv4 packets addressed to an egress IP of the plan:
 *   IP owned by another DC -> GUE to that DC's router;
 *   IP owned here          -> port >> slice_shift -> slice -> GUE to its server.
 * GUE packets from other DCs' routers are decapsulated and dispatched here,
 * never forwarded again (no loops).  Everything else is XDP_PASS, untouched.
 * Both lookups are O(1) and there is no per-connection state; the only
 * state written by the data path is the fragment LRU and the counters. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/parse.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Tunables, set by the loader before load (rodata: the verifier sees them as
 * constants and prunes dead branches).  Addresses/ports in network order. */
const volatile __be32 cfg_router = 0;      /* this router's backbone address */
const volatile __be16 cfg_gue_port = 0;    /* GUE UDP destination port */
const volatile __u32 cfg_slice_shift = 11; /* log2(slice size) */
const volatile __u32 cfg_first_slice = 0;  /* slice index of a region's entry 0 */
const volatile __u32 cfg_slices_per_ip = 32;
const volatile __u32 cfg_icmp_rate = SU_ICMP_RATE_DEFAULT; /* per second per CPU */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SU_MAX_IPS);
	__type(key, __be32);
	__type(value, struct su_ip_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} su_ips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SU_MAX_SLOTS);
	__type(key, __u32);
	__type(value, __be32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} su_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SU_MAX_ROUTERS);
	__type(key, __be32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} su_routers SEC(".maps");

/* Shared, not per-CPU: RSS hashes a first fragment (with ports) and the
 * later ones (without) differently, so they land on different CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SU_MAX_FRAGS);
	__type(key, struct su_frag_key);
	__type(value, struct su_frag_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} su_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SU_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} su_stats SEC(".maps");

/* Plain (not LRU) per-CPU hash: a lookup is on every forwarded packet and
 * LRU bookkeeping costs; the loader removes targets that left the plan. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, SU_MAX_TARGETS);
	__type(key, __be32);
	__type(value, struct su_target_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} su_targets SEC(".maps");

/* Not pinned: a restart may as well start with a full bucket. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct su_bucket);
} su_icmp_bucket SEC(".maps");

/* Userspace bookkeeping only (see struct su_meta). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct su_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} su_meta SEC(".maps");

static __always_inline void count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&su_stats, &stat);

	if (v)
		*v += 1; /* per-CPU: no atomics needed */
}

static __always_inline int drop(__u32 reason)
{
	count(reason);
	return XDP_DROP;
}

static __always_inline int pass(void)
{
	count(SU_STAT_PASS);
	return XDP_PASS;
}

/* The cached next hop of target for a packet of outer_len bytes that came
 * in on ifindex, or NULL when a real lookup is due. */
static __always_inline struct su_target_val *nh_cached(__be32 target, __u32 ifindex,
						       __u32 outer_len, __u64 now)
{
	struct su_target_val *v = bpf_map_lookup_elem(&su_targets, &target);

	if (v && v->nh_expires > now && v->nh_in_ifindex == ifindex && outer_len <= v->nh_ok_len)
		return v;
	return NULL;
}

/* Remembers a successful lookup (per CPU: no locking) and returns the
 * entry to count the packet in. */
static __always_inline struct su_target_val *nh_store(__be32 target, __u32 ifindex,
						      __u32 outer_len, __u64 now,
						      const struct bpf_fib_lookup *fib)
{
	struct su_target_val *v = bpf_map_lookup_elem(&su_targets, &target);

	if (!v) {
		struct su_target_val init = {};

		bpf_map_update_elem(&su_targets, &target, &init, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&su_targets, &target);
		if (!v)
			return NULL;
	}
	if (v->nh_expires <= now || v->nh_in_ifindex != ifindex || v->nh_ifindex != fib->ifindex)
		v->nh_ok_len = 0;
	if (outer_len > v->nh_ok_len)
		v->nh_ok_len = outer_len;
	v->nh_expires = now + SU_NH_TTL_JIFFIES;
	v->nh_ifindex = fib->ifindex;
	v->nh_in_ifindex = ifindex;
	__builtin_memcpy(v->nh_dmac, fib->dmac, ETH_ALEN);
	__builtin_memcpy(v->nh_smac, fib->smac, ETH_ALEN);
	return v;
}

static __always_inline void ipv4_csum(struct iphdr *iph)
{
	iph->check = 0;
	iph->check = su_csum(iph, sizeof(*iph));
}

/* RFC 1191 §4: answer "fragmentation needed" with the MTU that fits once
 * encapsulated, so the origin's PMTUD shrinks its segments instead of
 * black-holing.  The source is the egress IP the packet was sent to: it is
 * what the origin talks to and it is routable from the Internet, unlike the
 * router's backbone address.  Only option-less inner headers are quoted
 * (RFC 792: IP header + 64 bits, 28 bytes); others are counted and dropped. */
/* Like the kernel's icmp_global_allow(): whoever can make us answer must
 * not be able to make us send ICMP at line rate (to a spoofed source). */
static __always_inline int icmp_allowed(void)
{
	__u32 k = 0;
	struct su_bucket *b = bpf_map_lookup_elem(&su_icmp_bucket, &k);
	__u64 now = bpf_ktime_get_coarse_ns(), add;

	if (!b)
		return 0;
	add = (now - b->last_ns) / 1000000 * cfg_icmp_rate / 1000;
	if (add) {
		b->tokens = b->tokens + add > cfg_icmp_rate ? cfg_icmp_rate : b->tokens + add;
		b->last_ns = now;
	}
	if (!b->tokens)
		return 0;
	b->tokens--;
	return 1;
}

static __always_inline int icmp_frag_needed(struct xdp_md *ctx, __u32 inner_off,
					    const struct su_flow *f, __u32 mtu)
{
	struct {
		struct su_icmphdr h;
		__u8 quote[28];
	} msg = {};
	struct bpf_fib_lookup fib = {};
	unsigned char mac[2 * ETH_ALEN];
	void *data, *end;
	struct ethhdr *eth;
	struct iphdr *iph;
	__u32 len;
	int rc;

	if (f->ihl != 20 || mtu <= SU_ENCAP_LEN + 68)
		return drop(SU_STAT_DROP_MTU);
	if (!icmp_allowed())
		return drop(SU_STAT_DROP_ICMP_RATE);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (inner_off > 256 || data + inner_off + sizeof(msg.quote) > end ||
	    data + sizeof(mac) > end)
		return drop(SU_STAT_DROP_INTERNAL);
	__builtin_memcpy(mac, data, sizeof(mac));
	__builtin_memcpy(msg.quote, data + inner_off, sizeof(msg.quote));
	msg.h.type = SU_ICMP_DEST_UNREACH;
	msg.h.code = SU_ICMP_FRAG_NEEDED;
	msg.h.un.frag.mtu = bpf_htons(mtu - SU_ENCAP_LEN);
	msg.h.check = su_csum(&msg, sizeof(msg));

	fib.family = AF_INET;
	fib.l4_protocol = IPPROTO_ICMP;
	fib.tot_len = sizeof(*iph) + sizeof(msg);
	fib.ipv4_src = f->dst;
	fib.ipv4_dst = f->src;
	fib.ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return drop(SU_STAT_DROP_MTU);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* As in encap(): the kernel forwards it and resolves the
		 * neighbour; the frame keeps the MACs it came with. */
		__builtin_memcpy(fib.dmac, mac, ETH_ALEN);
		__builtin_memcpy(fib.smac, mac + ETH_ALEN, ETH_ALEN);
	}

	/* New frame: eth + IPv4 + ICMP + quote, built over the old one. */
	len = bpf_xdp_get_buff_len(ctx);
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(*eth) + sizeof(*iph) + sizeof(msg)) - (int)len))
		return drop(SU_STAT_DROP_INTERNAL);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) + sizeof(msg) > end)
		return drop(SU_STAT_DROP_INTERNAL);
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	iph->version = 4;
	iph->ihl = 5;
	iph->tos = 0xc0; /* internetwork control, as Linux's icmp_send() */
	iph->tot_len = bpf_htons(sizeof(*iph) + sizeof(msg));
	iph->id = 0;
	iph->frag_off = 0;
	iph->ttl = 64;
	iph->protocol = IPPROTO_ICMP;
	iph->saddr = f->dst;
	iph->daddr = f->src;
	ipv4_csum(iph);
	__builtin_memcpy(iph + 1, &msg, sizeof(msg));
	count(SU_STAT_ICMP_FRAG_SENT);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return XDP_PASS;
	if (fib.ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib.ifindex, 0);
}

/* Wraps the IPv4 packet at inner_off in IPv4/UDP (GUE variant 1) to target
 * and sends it toward the next hop the kernel's FIB names. */
static __always_inline int encap(struct xdp_md *ctx, __u32 inner_off, const struct su_flow *f,
				 __be32 target, __u32 stat)
{
	struct bpf_fib_lookup fib = {};
	__u32 inner_len = bpf_ntohs(f->tot_len);
	__u32 outer_len = inner_len + SU_ENCAP_LEN;
	__u32 in_ifindex = ctx->ingress_ifindex;
	__u64 now = bpf_jiffies64(); /* a load, where clocks cost ~20 ns */
	struct su_target_val *nh;
	unsigned char mac[2 * ETH_ALEN];
	struct ethhdr *eth;
	struct iphdr *iph;
	struct udphdr *uh;
	void *data, *end;
	int delta, rc = BPF_FIB_LKUP_RET_SUCCESS;

	if (outer_len > 0xffff)
		return drop(SU_STAT_DROP_MTU);
	nh = nh_cached(target, in_ifindex, outer_len, now);
	if (!nh) {
		fib.family = AF_INET;
		fib.l4_protocol = IPPROTO_UDP;
		fib.sport = su_flow_sport(f);
		fib.dport = cfg_gue_port;
		fib.tot_len = outer_len; /* the helper checks it against the egress MTU */
		fib.ipv4_src = cfg_router;
		fib.ipv4_dst = target;
		fib.ifindex = in_ifindex;
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED) {
			/* We cannot fragment in XDP; a DF-clear packet is dropped
			 * (the deployment should give the DC network MTU >= edge
			 * MTU + 28). */
			if (!f->df)
				return drop(SU_STAT_DROP_MTU);
			return icmp_frag_needed(ctx, inner_off, f, fib.mtu_result);
		}
		if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return drop(SU_STAT_DROP_FIB);
		if (rc == BPF_FIB_LKUP_RET_SUCCESS)
			nh = nh_store(target, in_ifindex, outer_len, now, &fib);
	}

	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(*eth) > end)
		return drop(SU_STAT_DROP_INTERNAL);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		__builtin_memcpy(mac, data, sizeof(mac));
	/* Make room for (or reuse, for backbone packets) the outer headers. */
	delta = (int)inner_off - (int)(sizeof(*eth) + SU_ENCAP_LEN);
	if (delta && bpf_xdp_adjust_head(ctx, delta))
		return drop(SU_STAT_DROP_INTERNAL);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	iph = (void *)(eth + 1);
	uh = (void *)(iph + 1);
	if ((void *)(uh + 1) > end)
		return drop(SU_STAT_DROP_INTERNAL);

	iph->version = 4;
	iph->ihl = 5;
	iph->tos = 0;
	iph->tot_len = bpf_htons(outer_len);
	/* The inner ID and DF carry over: a DF-clear outer may be fragmented
	 * on the way and needs an ID that is unique for the (src, dst) pair
	 * for as long as the inner one is (RFC 6864 §4). */
	iph->id = f->id;
	iph->frag_off = f->df ? bpf_htons(SU_IP_DF) : 0;
	iph->ttl = 64;
	iph->protocol = IPPROTO_UDP;
	iph->saddr = cfg_router;
	iph->daddr = target;
	ipv4_csum(iph);
	uh->source = su_flow_sport(f);
	uh->dest = cfg_gue_port;
	uh->len = bpf_htons(inner_len + sizeof(*uh));
	uh->check = 0; /* RFC 768: zero = no checksum; fou accepts it */
	eth->h_proto = bpf_htons(ETH_P_IP);

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* Next hop not in the neighbour table yet: let the kernel
		 * forward this one packet, which resolves it for the next.
		 * The frame keeps the MACs it arrived with, so the stack
		 * takes it as addressed to this host. */
		__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, mac + ETH_ALEN, ETH_ALEN);
		count(SU_STAT_NEIGH_MISS);
		return XDP_PASS;
	}
	count(stat);
	if (!nh) {
		/* Target table full: forward uncached and uncounted. */
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		return fib.ifindex == in_ifindex ? XDP_TX : bpf_redirect(fib.ifindex, 0);
	}
	__builtin_memcpy(eth->h_dest, nh->nh_dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->nh_smac, ETH_ALEN);
	nh->packets++;
	nh->bytes += outer_len;
	if (nh->nh_ifindex == in_ifindex)
		return XDP_TX;
	return bpf_redirect(nh->nh_ifindex, 0);
}

/* Packet at inner_off is addressed to egress IP `ipv`; parse cursor c is at
 * its IPv4 header. */
static __always_inline int dispatch(struct xdp_md *ctx, struct su_cursor *c, __u32 inner_off,
				    const struct su_ip_val *ipv, int from_backbone)
{
	struct su_flow f = {};
	struct su_frag_key fk = {};
	struct su_frag_val fv;
	__u32 slice, idx;
	__be32 *server;
	int err;

	err = su_parse_ipv4(c, c->pos, &f);
	if (err)
		return drop(-err);

	if (!(ipv->flags & SU_IP_LOCAL)) {
		/* Whoever sent it over the backbone thinks we own the IP and
		 * we think a third DC does: refuse rather than ping-pong. */
		if (from_backbone)
			return drop(SU_STAT_DROP_LOOP);
		/* Ports only feed the flow hash here; the owner validates L4. */
		if (f.frag == SU_FRAG_NONE && (f.proto == IPPROTO_TCP || f.proto == IPPROTO_UDP)) {
			struct udphdr *uh = c->pos;

			if (!su_short(c, uh, sizeof(*uh))) {
				f.sport = uh->source;
				f.dport = uh->dest;
			}
		}
		return encap(ctx, inner_off, &f, ipv->router, SU_STAT_FWD_REMOTE);
	}

	fk.src = f.src;
	fk.dst = f.dst;
	fk.id = f.id;
	fk.proto = f.proto;
	if (f.frag == SU_FRAG_LATER) {
		struct su_frag_val *v = bpf_map_lookup_elem(&su_frags, &fk);

		if (!v)
			return drop(SU_STAT_DROP_FRAG_UNKNOWN);
		count(SU_STAT_FRAG_LATER);
		return encap(ctx, inner_off, &f, v->target, SU_STAT_FWD_LOCAL);
	}

	err = su_parse_key(c, &f);
	if (err)
		return drop(-err);
	slice = bpf_ntohs(f.port) >> cfg_slice_shift;
	if (slice < cfg_first_slice || slice - cfg_first_slice >= cfg_slices_per_ip)
		return drop(SU_STAT_DROP_NO_SLICE);
	idx = ipv->slot_base + slice - cfg_first_slice;
	server = bpf_map_lookup_elem(&su_slots, &idx);
	if (!server || !*server)
		return drop(SU_STAT_DROP_NO_SLICE);

	if (f.frag == SU_FRAG_FIRST) {
		fv.target = *server;
		fv.kind = SU_TARGET_SERVER;
		if (bpf_map_update_elem(&su_frags, &fk, &fv, BPF_ANY))
			return drop(SU_STAT_DROP_INTERNAL);
		count(SU_STAT_FRAG_FIRST);
	}
	if (f.kind == SU_KEY_ICMP_ERR)
		count(SU_STAT_ICMP_ERROR);
	else if (f.kind == SU_KEY_ECHO)
		count(SU_STAT_ICMP_ECHO);
	return encap(ctx, inner_off, &f, *server, SU_STAT_FWD_LOCAL);
}

/* GUE from the backbone to this router's address. */
static __always_inline int backbone_in(struct xdp_md *ctx, struct su_cursor *c,
				       struct iphdr *outer)
{
	struct su_flow of = {};
	struct iphdr *inner;
	struct su_ip_val *ipv;
	__u32 off;

	/* Malformed or non-GUE traffic to the router's own address is the
	 * kernel's business (BGP, SSH, ...), not an egress drop. */
	if (su_parse_ipv4(c, outer, &of) || su_parse_gue(c, &of, cfg_gue_port))
		return pass();
	if (!bpf_map_lookup_elem(&su_routers, &of.src))
		return drop(SU_STAT_DROP_FOREIGN);
	if (su_peek_ipv4(c, &inner))
		return drop(SU_STAT_DROP_BACKBONE_BAD);
	ipv = bpf_map_lookup_elem(&su_ips, &inner->daddr);
	if (!ipv)
		return drop(SU_STAT_DROP_BACKBONE_BAD);
	count(SU_STAT_BACKBONE_IN);
	off = sizeof(struct ethhdr) + of.ihl + sizeof(struct udphdr);
	return dispatch(ctx, c, off, ipv, 1);
}

/* The whole program, inlinable: bench/router wraps it. */
static __always_inline int su_router_main(struct xdp_md *ctx)
{
	struct su_cursor c = {
		.pos = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
		.lim = (void *)(long)ctx->data_end,
	};
	struct su_ip_val *ipv;
	struct ethhdr *eth;
	struct iphdr *iph;

	if (su_parse_eth(&c, &eth) != ETH_P_IP || su_peek_ipv4(&c, &iph))
		return pass();
	if (cfg_router && iph->daddr == cfg_router)
		return backbone_in(ctx, &c, iph);
	ipv = bpf_map_lookup_elem(&su_ips, &iph->daddr);
	if (!ipv)
		return pass();
	return dispatch(ctx, &c, sizeof(*eth), ipv, 0);
}

SEC("xdp")
int su_router(struct xdp_md *ctx)
{
	return su_router_main(ctx);
}

char LICENSE[] SEC("license") = "GPL";
