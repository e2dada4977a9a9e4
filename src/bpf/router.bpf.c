// SPDX-License-Identifier: GPL-2.0
/* softunicast router: XDP program on a DC's edge (and backbone) interfaces.
 *
 * For IPv4 packets addressed to an egress IP of the plan:
 *   IP owned by another DC -> GUE to that DC's router;
 *   IP owned here          -> port >> slice_shift -> slice -> GUE to its server.
 * GUE packets from other DCs' routers are decapsulated and dispatched here,
 * never forwarded again (no loops).  Everything else is XDP_PASS, untouched.
 * Both lookups are O(1) and there is no per-connection state; the only
 * state written by the data path is the fragment LRU, the next-hop cache,
 * the tunnel path MTUs, the outer IP ID counters and the counters.
 *
 * Refused at the edge, statelessly (each with its own counter): TCP that
 * cannot be a reply (SYN without ACK, no ACK nor RST), GUE addressed past
 * the router (only this router encapsulates toward servers) and packets
 * claiming the router's own address as source. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/decap_abi.h" /* the second-hop mark (issue 10) */
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
const volatile __u32 cfg_icmp_rate = SU_ICMP_RATE_DEFAULT; /* per second per CPU, 0: none */
const volatile __u32 cfg_cpu_bits = 8; /* outer IP ID bits naming the CPU (su_ipid) */

/* Egress IP -> index into su_ipv, fixed for the IP's life (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SU_MAX_IPS);
	__type(key, __be32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} su_ips SEC(".maps");

/* The IPs' routes, rewritten in place under a sequence count (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SU_MAX_IPS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct su_ipv);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} su_ipv SEC(".maps");

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

/* This DC's servers and the peer routers -> SU_HOST_* (abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SU_MAX_ROUTERS);
	__type(key, __be32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} su_hosts SEC(".maps");

/* What each attached interface reaches (abi.h); written by the loader at
 * every start and plan apply, so not pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SU_META_IFACES);
	__type(key, __u32);
	__type(value, struct su_ifrole);
} su_ifroles SEC(".maps");

/* Shared, not per-CPU: RSS hashes a first fragment (with ports) and the
 * later ones (without) differently, so they land on different CPUs.
 * BPF_F_NO_COMMON_LRU: the common LRU parks up to 128 free nodes per CPU
 * (LOCAL_FREE_TARGET), so on a many-CPU router a small table evicts live
 * entries long before it is full; with per-CPU LRU lists each CPU evicts
 * only its own oldest first fragments.  The loader sizes it (--frag-table,
 * per CPU, times the possible CPUs); the default is for the fixtures.  Not
 * pinned, so its size and type can change between runs: a restart forgets
 * the few milliseconds of fragments in flight. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct su_frag_key);
	__type(value, struct su_frag_val);
} su_frags SEC(".maps");

/* Later fragments that came before their first: how many, so the first can
 * move them from drop_frag_unknown to drop_frag_early.  A table of its own,
 * so a flood of orphan fragments evicts only these marks, never su_frags. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct su_frag_key);
	__type(value, __u32);
} su_frag_early SEC(".maps");

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

/* Tunnel path MTUs (struct su_pmtu_val): written by ICMP about our own
 * GUE, read on next-hop cache misses.  Entries only for targets already in
 * su_targets, so no more than those; not pinned: a restart relearns. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SU_MAX_TARGETS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __be32);
	__type(value, struct su_pmtu_val);
} su_pmtu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} su_ipid SEC(".maps");

/* The last redirect this CPU's program asked for: XDP learns only after
 * returning whether a redirect worked, and a failure (a device without XDP
 * transmit, such as a bridge) fires the xdp_redirect_err tracepoint on the
 * same CPU right away, where su_redirect_err moves the packet from its
 * forward counter to drop_redirect_failed. */
struct su_pending {
	__u32 stat;       /* forward counter bumped, 0: none */
	__u32 ifindex;    /* redirect target device */
	__u32 in_ifindex; /* device the packet came in on */
	__be32 target;
	__u64 len;        /* outer bytes counted for target */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct su_pending);
} su_pending SEC(".maps");

/* The frag-needed answer under construction (too big for the stack beside
 * encap()'s). */
struct su_icmp_scratch {
	struct bpf_fib_lookup fib;
	struct {
		struct su_icmphdr h;
		__u8 quote[60 + 8]; /* the whole IPv4 header + 64 bits (RFC 792) */
	} msg;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct su_icmp_scratch);
} su_icmp_scratch SEC(".maps");

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

static __always_inline void count_add(__u32 stat, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&su_stats, &stat);

	if (v)
		*v += n; /* per-CPU: no atomics needed */
}

/* Moves n packets from one outcome to another on this CPU.  A CPU's own
 * value may wrap below zero; the sum over CPUs, which is what `stats`
 * reports, stays exact (unsigned arithmetic is modulo 2^64). */
static __always_inline void count_move(__u32 from, __u32 to, __u64 n)
{
	count_add(from, -n);
	count_add(to, n);
}

static __always_inline void count(__u32 stat)
{
	count_add(stat, 1);
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

/* Loads of the su_ipv read side.  The fields and the first seq load must
 * not be reordered after the second seq load (the reader's smp_rmb()).
 * With load-acquire (clang with BPF v4 atomics, Linux 6.15+) each load
 * orders the later ones after it, on any CPU.  Without it, a compiler
 * barrier: enough where the JIT's loads are not reordered with each other
 * (x86-64 is TSO); weakly ordered CPUs need a compiler with load-acquire. */
#ifdef __BPF_FEATURE_LOAD_ACQ_STORE_REL
#define SU_LOAD_ORDERED(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#else
#define SU_LOAD_ORDERED(p) ({ __u32 __v = *(volatile __u32 *)(p); asm volatile("" ::: "memory"); __v; })
#endif

enum { SU_IP_MISS = 0, SU_IP_FOUND = 1, SU_IP_BUSY = 2 };

/* The route of egress IP ip, copied whole into *out (SU_IP_FOUND), or
 * SU_IP_MISS (not an egress IP, or an entry that belongs to another IP:
 * a delete and a reuse raced this read), or SU_IP_BUSY (rewritten through
 * every re-read: the caller drops the packet, counted). */
static __always_inline int ip_lookup(__be32 ip, struct su_ip_val *out)
{
	__u32 *idx = bpf_map_lookup_elem(&su_ips, &ip), k, seq, i;
	struct su_ipv *e;
	__be32 owner;

	if (!idx)
		return SU_IP_MISS;
	k = *(volatile __u32 *)idx;
	e = bpf_map_lookup_elem(&su_ipv, &k);
	if (!e)
		return SU_IP_MISS;
#pragma unroll
	for (i = 0; i < SU_IPV_RETRIES; i++) {
		seq = SU_LOAD_ORDERED(&e->seq);
		owner = SU_LOAD_ORDERED(&e->ip);
		out->router = SU_LOAD_ORDERED(&e->v.router);
		out->slot_base = SU_LOAD_ORDERED(&e->v.slot_base);
		out->flags = SU_LOAD_ORDERED(&e->v.flags);
		if (!(seq & 1) && *(volatile __u32 *)&e->seq == seq)
			return owner == ip ? SU_IP_FOUND : SU_IP_MISS;
	}
	return SU_IP_BUSY;
}

/* Remembers a successful lookup in a bucket (per CPU: no locking). */
static __always_inline void nh_store(struct su_nh *nh, __u32 ifindex, __u32 outer_len, __u64 now,
				     const struct bpf_fib_lookup *fib)
{
	if (nh->expires <= now || nh->in_ifindex != ifindex || nh->ifindex != fib->ifindex)
		nh->ok_len = 0;
	if (outer_len > nh->ok_len)
		nh->ok_len = outer_len;
	nh->expires = now + SU_NH_TTL_JIFFIES;
	nh->ifindex = fib->ifindex;
	nh->in_ifindex = ifindex;
	__builtin_memcpy(nh->dmac, fib->dmac, ETH_ALEN);
	__builtin_memcpy(nh->smac, fib->smac, ETH_ALEN);
}

/* In .rodata: a 272-byte zero on the stack would not fit beside the rest. */
static const struct su_target_val su_target_zero = {};

/* The counter and cache entry of target, created on first use; NULL when
 * the table is full (the packet is then forwarded uncached, uncounted). */
static __always_inline struct su_target_val *target_get(__be32 target)
{
	struct su_target_val *v = bpf_map_lookup_elem(&su_targets, &target);

	if (!v) {
		bpf_map_update_elem(&su_targets, &target, &su_target_zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&su_targets, &target);
	}
	return v;
}

/* The tunnel path MTU learnt for target, 0 when none is in force. */
static __always_inline __u32 tunnel_pmtu(__be32 target)
{
	struct su_pmtu_val *v = bpf_map_lookup_elem(&su_pmtu, &target);

	if (!v || v->expires_ns <= bpf_ktime_get_coarse_ns())
		return 0;
	return v->mtu;
}

/* RFC 6864 §4: an ID is needed only where the datagram may be fragmented;
 * atomic (DF) datagrams carry 0, as Linux sends them without a socket.
 * Otherwise the CPU's bits plus its own counter: unique per router without
 * a shared (contended) counter. */
static __always_inline __be16 ip_id(int df)
{
	__u32 k = 0, shift = 16 - (cfg_cpu_bits & 15), *n;

	if (df)
		return 0;
	n = bpf_map_lookup_elem(&su_ipid, &k);
	if (!n)
		return 0;
	*n += 1;
	return bpf_htons((__u16)((bpf_get_smp_processor_id() << shift) | (*n & ((1u << shift) - 1))));
}

static __always_inline void ipv4_csum(struct iphdr *iph)
{
	iph->check = 0;
	iph->check = su_csum(iph, sizeof(*iph));
}

/* Like the kernel's icmp_global_allow(): whoever can make us answer must
 * not be able to make us send ICMP at line rate (to a spoofed source).  A
 * token bucket of cfg_icmp_rate per second, at most that many in a burst;
 * the clock advances only by the time the tokens it added were worth, so
 * the remainder is kept and any rate is exact (not 0 below 1 per ms). */
static __always_inline int icmp_allowed(void)
{
	__u32 k = 0;
	struct su_bucket *b = bpf_map_lookup_elem(&su_icmp_bucket, &k);
	__u64 now = bpf_ktime_get_coarse_ns(), elapsed, add;

	if (!b || !cfg_icmp_rate)
		return 0;
	elapsed = now - b->last_ns;
	if (elapsed >= 1000000000ull) {
		/* A second refills the whole bucket; also keeps the product
		 * below from overflowing. */
		b->tokens = cfg_icmp_rate;
		b->last_ns = now;
	} else {
		add = elapsed * cfg_icmp_rate / 1000000000ull;
		if (add) {
			b->tokens = b->tokens + add > cfg_icmp_rate ? cfg_icmp_rate : b->tokens + add;
			b->last_ns += add * 1000000000ull / cfg_icmp_rate;
		}
	}
	if (!b->tokens)
		return 0;
	b->tokens--;
	return 1;
}

/* RFC 1812 §4.3.2.7 (and RFC 1122 §3.2.2): no ICMP error about a datagram
 * that is not the first fragment, that is itself an ICMP error, or whose
 * source does not name one host (0/8, 127/8, multicast, class E and the
 * limited broadcast). */
static __always_inline int icmp_forbidden(struct xdp_md *ctx, __u32 inner_off,
					  const struct su_flow *f)
{
	__u32 src = bpf_ntohl(f->src);
	__u8 type;

	if (f->frag == SU_FRAG_LATER)
		return 1;
	if ((src >> 24) == 0 || (src >> 24) == 127 || (src >> 28) >= 0xe)
		return 1;
	if (f->proto != IPPROTO_ICMP)
		return 0;
	if (bpf_xdp_load_bytes(ctx, inner_off + f->ihl, &type, 1))
		return 1;
	switch (type) {
	case SU_ICMP_DEST_UNREACH:
	case 4: /* source quench */
	case 5: /* redirect */
	case SU_ICMP_TIME_EXCEEDED:
	case SU_ICMP_PARAMETERPROB:
		return 1;
	}
	return 0;
}

/* RFC 1191 §4: answer "fragmentation needed" with the MTU that fits once
 * encapsulated, so the origin's PMTUD shrinks its segments instead of
 * black-holing.  The source is the egress IP the packet was sent to: it is
 * what the origin talks to and it is routable from the Internet, unlike the
 * router's backbone address.  The quote is the whole IP header, options
 * included, plus 64 bits (RFC 792), so the origin can match it. */
/* Not inlined: its message and lookup would not fit on encap()'s stack. */
static __attribute__((noinline)) int icmp_frag_needed(struct xdp_md *ctx, __u32 inner_off,
						       const struct su_flow *f, __u32 mtu)
{
	__u32 k = 0, qlen = f->ihl + 8, len;
	struct su_icmp_scratch *sc = bpf_map_lookup_elem(&su_icmp_scratch, &k);
	unsigned char mac[2 * ETH_ALEN];
	struct bpf_fib_lookup *fib;
	void *data, *end;
	struct ethhdr *eth;
	struct iphdr *iph;
	int rc;

	/* RFC 791: every host takes 68 bytes; an MTU that leaves less for
	 * the inner packet is a misconfiguration, not something to announce. */
	if (mtu <= SU_ENCAP_LEN + 68)
		return drop(SU_STAT_DROP_MTU);
	if (icmp_forbidden(ctx, inner_off, f))
		return drop(SU_STAT_DROP_MTU_NO_ICMP);
	if (!icmp_allowed())
		return drop(SU_STAT_DROP_ICMP_RATE);
	if (!sc)
		return drop(SU_STAT_DROP_INTERNAL);
	__builtin_memset(sc, 0, sizeof(*sc));
	if (qlen > sizeof(sc->msg.quote) || inner_off > 256 ||
	    bpf_xdp_load_bytes(ctx, inner_off, sc->msg.quote, qlen) ||
	    bpf_xdp_load_bytes(ctx, 0, mac, sizeof(mac)))
		return drop(SU_STAT_DROP_INTERNAL);
	sc->msg.h.type = SU_ICMP_DEST_UNREACH;
	sc->msg.h.code = SU_ICMP_FRAG_NEEDED;
	sc->msg.h.un.frag.mtu = bpf_htons(mtu - SU_ENCAP_LEN);
	/* The zeros after the quote add nothing to the sum. */
	sc->msg.h.check = su_csum(&sc->msg, sizeof(sc->msg));

	fib = &sc->fib;
	fib->family = AF_INET;
	fib->l4_protocol = IPPROTO_ICMP;
	fib->tot_len = sizeof(*iph) + sizeof(sc->msg.h) + qlen;
	fib->ipv4_src = f->dst;
	fib->ipv4_dst = f->src;
	fib->ifindex = ctx->ingress_ifindex;
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return drop(SU_STAT_DROP_MTU);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* As in encap(): the kernel forwards it and resolves the
		 * neighbour; the frame keeps the MACs it came with. */
		__builtin_memcpy(fib->dmac, mac, ETH_ALEN);
		__builtin_memcpy(fib->smac, mac + ETH_ALEN, ETH_ALEN);
	}

	/* New frame: eth + IPv4 + ICMP + quote, built over the old one. */
	len = bpf_xdp_get_buff_len(ctx);
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(*eth) + sizeof(*iph) + sizeof(sc->msg.h) + qlen) -
					 (int)len))
		return drop(SU_STAT_DROP_INTERNAL);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	iph = (void *)(eth + 1);
	if ((void *)(iph + 1) > end)
		return drop(SU_STAT_DROP_INTERNAL);
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	iph->version = 4;
	iph->ihl = 5;
	iph->tos = 0xc0; /* internetwork control, as Linux's icmp_send() */
	iph->tot_len = bpf_htons(sizeof(*iph) + sizeof(sc->msg.h) + qlen);
	iph->id = ip_id(0);
	iph->frag_off = 0;
	iph->ttl = 64;
	iph->protocol = IPPROTO_ICMP;
	iph->saddr = f->dst;
	iph->daddr = f->src;
	ipv4_csum(iph);
	if (bpf_xdp_store_bytes(ctx, sizeof(*eth) + sizeof(*iph), &sc->msg, sizeof(sc->msg.h) + qlen))
		return drop(SU_STAT_DROP_INTERNAL);
	count(SU_STAT_ICMP_FRAG_SENT);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return XDP_PASS;
	if (fib->ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(fib->ifindex, 0);
}

/* Too big for the tunnel once encapsulated: XDP cannot fragment, so a
 * DF-clear packet is dropped (the MTU contract in docs/router.md: DC
 * network and backbone MTU >= edge MTU + 28). */
static __always_inline int too_big(struct xdp_md *ctx, __u32 inner_off, const struct su_flow *f,
				   __u32 mtu)
{
	if (!f->df)
		return drop(SU_STAT_DROP_MTU);
	return icmp_frag_needed(ctx, inner_off, f, mtu);
}

/* A redirect's success is known only after the program returns: remember
 * what was counted so su_redirect_err can take it back. */
static __always_inline int redirect(struct xdp_md *ctx, __u32 ifindex, __u32 stat, __be32 target,
				    __u32 len)
{
	__u32 k = 0;
	struct su_pending *p = bpf_map_lookup_elem(&su_pending, &k);

	if (p) {
		p->stat = stat;
		p->ifindex = ifindex;
		p->in_ifindex = ctx->ingress_ifindex;
		p->target = target;
		p->len = len;
	}
	return bpf_redirect(ifindex, 0);
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
	__be16 sport = su_flow_sport(f);
	__u32 bucket = bpf_ntohs(sport) & (SU_NH_BUCKETS - 1);
	struct su_target_val *tv;
	struct su_nh *nh = NULL;
	unsigned char mac[2 * ETH_ALEN];
	struct ethhdr *eth;
	struct iphdr *iph;
	struct udphdr *uh;
	void *data, *end;
	int delta, rc = BPF_FIB_LKUP_RET_SUCCESS;
	__u32 pmtu;

	if (outer_len > 0xffff)
		return drop(SU_STAT_DROP_MTU);
	tv = bpf_map_lookup_elem(&su_targets, &target);
	if (tv) {
		nh = &tv->nh[bucket];
		if (nh->expires <= now || nh->in_ifindex != in_ifindex || outer_len > nh->ok_len)
			nh = NULL;
	}
	if (!nh) {
		fib.family = AF_INET;
		fib.l4_protocol = IPPROTO_UDP;
		/* The bucket's representative, not the flow's own port: the
		 * bucket's path must not depend on which flow refreshed it. */
		fib.sport = bpf_htons(SU_NH_SPORT_BASE + bucket);
		fib.dport = cfg_gue_port;
		fib.tot_len = outer_len; /* the helper checks it against the egress MTU */
		fib.ipv4_src = cfg_router;
		fib.ipv4_dst = target;
		fib.ifindex = in_ifindex;
		rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
		if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
			return too_big(ctx, inner_off, f, fib.mtu_result);
		if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return drop(SU_STAT_DROP_FIB);
		pmtu = tunnel_pmtu(target);
		if (pmtu && outer_len > pmtu)
			return too_big(ctx, inner_off, f, pmtu);
		if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
			if (!tv)
				tv = target_get(target);
			if (tv) {
				nh = &tv->nh[bucket];
				nh_store(nh, in_ifindex, outer_len, now, &fib);
			}
		}
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
	/* RFC 6040 §4.1 normal mode: the outer ECN field is the inner one
	 * (CE marked on the way is propagated back by the decapsulator), and
	 * DSCP is copied too (RFC 2983 uniform model) so the DC network and
	 * backbone queue by the origin's marking. */
	iph->tos = f->tos;
	iph->tot_len = bpf_htons(outer_len);
	/* Never the inner ID: two origins may send the same one to us, and
	 * the outer (src, dst, proto, ID) would then collide in reassembly. */
	iph->id = ip_id(f->df);
	iph->frag_off = f->df ? bpf_htons(SU_IP_DF) : 0;
	iph->ttl = 64;
	iph->protocol = IPPROTO_UDP;
	iph->saddr = cfg_router;
	iph->daddr = target;
	ipv4_csum(iph);
	uh->source = sport;
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
	if (!nh || !tv) {
		/* Target table full: forward uncached and uncounted. */
		__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
		return fib.ifindex == in_ifindex ? XDP_TX : redirect(ctx, fib.ifindex, stat, 0, 0);
	}
	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	tv->packets++;
	tv->bytes += outer_len;
	if (nh->ifindex == in_ifindex)
		return XDP_TX;
	return redirect(ctx, nh->ifindex, stat, target, outer_len);
}

/* A later fragment found no first: remember it, in case the first is only
 * late (reordering) rather than lost or never sent. */
static __always_inline void frag_early_mark(const struct su_frag_key *fk)
{
	__u32 one = 1, *n = bpf_map_lookup_elem(&su_frag_early, fk);

	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&su_frag_early, fk, &one, BPF_NOEXIST);
}

/* The first fragment came: later ones dropped before it were early, not
 * unknown. */
static __always_inline void frag_early_settle(const struct su_frag_key *fk)
{
	__u32 *n = bpf_map_lookup_elem(&su_frag_early, fk);

	if (!n)
		return;
	count_move(SU_STAT_DROP_FRAG_UNKNOWN, SU_STAT_DROP_FRAG_EARLY, *n);
	bpf_map_delete_elem(&su_frag_early, fk);
}

/* For an IP of another DC the owner validates L4; only the TCP flags are
 * read here, so an unsolicited segment does not cross the backbone, and
 * the ports of a whole datagram for the flow hash. */
static __always_inline int remote_peek(struct su_cursor *c, struct su_flow *f)
{
	struct tcphdr *th = c->pos;

	if (f->frag == SU_FRAG_LATER || (f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP))
		return 0;
	if (su_short(c, th, sizeof(struct udphdr)))
		return 0;
	if (f->frag == SU_FRAG_NONE) {
		f->sport = th->source;
		f->dport = th->dest;
	}
	if (f->proto != IPPROTO_TCP || su_short(c, th, sizeof(*th)))
		return 0;
	f->tcp_flags = ((__u8 *)th)[13];
	f->kind = SU_KEY_PORT;
	return su_tcp_unsolicited(f);
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
		err = remote_peek(c, &f);
		if (err)
			return drop(err);
		return encap(ctx, inner_off, &f, ipv->router, SU_STAT_FWD_REMOTE);
	}

	fk.src = f.src;
	fk.dst = f.dst;
	fk.id = f.id;
	fk.proto = f.proto;
	if (f.frag == SU_FRAG_LATER) {
		struct su_frag_val *v = bpf_map_lookup_elem(&su_frags, &fk);

		if (!v) {
			frag_early_mark(&fk);
			return drop(SU_STAT_DROP_FRAG_UNKNOWN);
		}
		count(SU_STAT_FRAG_LATER);
		return encap(ctx, inner_off, &f, v->target, SU_STAT_FWD_LOCAL);
	}

	err = su_parse_key(c, &f);
	if (err)
		return drop(-err);
	err = su_tcp_unsolicited(&f);
	if (err)
		return drop(err);
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
		frag_early_settle(&fk);
	}
	if (f.kind == SU_KEY_ICMP_ERR)
		count(SU_STAT_ICMP_ERROR);
	else if (f.kind == SU_KEY_ECHO)
		count(SU_STAT_ICMP_ECHO);
	return encap(ctx, inner_off, &f, *server, SU_STAT_FWD_LOCAL);
}

/* ICMP "fragmentation needed" about a GUE packet this router sent (RFC
 * 1191 §4; the quote is our outer header): lower that target's tunnel MTU.
 * The packet still goes to the kernel, which may use it for its own. */
static __always_inline void tunnel_ptb(struct su_cursor *c, const struct su_flow *of)
{
	struct su_icmphdr *ih = c->pos;
	struct su_pmtu_val v = {};
	struct udphdr *qu;
	struct iphdr *q;
	__u32 mtu;

	if (of->proto != IPPROTO_ICMP || of->frag != SU_FRAG_NONE || su_short(c, ih, sizeof(*ih)))
		return;
	if (ih->type != SU_ICMP_DEST_UNREACH || ih->code != SU_ICMP_FRAG_NEEDED)
		return;
	q = (void *)(ih + 1);
	if (su_short(c, q, sizeof(*q)) || q->version != 4 || q->ihl < 5 ||
	    q->saddr != cfg_router || q->protocol != IPPROTO_UDP)
		return;
	qu = (void *)q + q->ihl * 4;
	if (su_short(c, qu, sizeof(*qu)) || qu->dest != cfg_gue_port)
		return;
	/* Only for targets we send to: a forged error cannot fill the map. */
	if (!bpf_map_lookup_elem(&su_targets, &q->daddr))
		return;
	mtu = bpf_ntohs(ih->un.frag.mtu);
	/* RFC 1191 §5 routers that report 0, and reports not below the
	 * packet they quote, say nothing usable. */
	if (!mtu || mtu >= bpf_ntohs(q->tot_len))
		return;
	if (mtu < SU_PMTU_MIN)
		mtu = SU_PMTU_MIN;
	v.mtu = mtu;
	v.expires_ns = bpf_ktime_get_coarse_ns() + SU_PMTU_TTL_NS;
	if (!bpf_map_update_elem(&su_pmtu, &q->daddr, &v, BPF_ANY))
		count(SU_STAT_TUNNEL_PMTU);
}

/* GUE from the backbone to this router's address. */
static __always_inline int backbone_in(struct xdp_md *ctx, struct su_cursor *c,
				       struct iphdr *outer)
{
	struct su_flow of = {};
	struct iphdr *inner;
	struct su_ip_val ipv;
	__u32 off;
	int found;

	/* Malformed or non-GUE traffic to the router's own address is the
	 * kernel's business (BGP, SSH, ...), not an egress drop. */
	if (su_parse_ipv4(c, outer, &of))
		return pass();
	if (of.proto == IPPROTO_ICMP) {
		tunnel_ptb(c, &of);
		return pass();
	}
	/* Routers send us nothing but GUE over UDP; its fragments would need
	 * reassembly, which XDP cannot do (the MTU contract avoids them). */
	if (of.proto == IPPROTO_UDP && of.frag != SU_FRAG_NONE &&
	    bpf_map_lookup_elem(&su_routers, &of.src))
		return drop(SU_STAT_DROP_GUE_FRAG);
	if (su_parse_gue(c, &of, cfg_gue_port))
		return pass();
	if (!bpf_map_lookup_elem(&su_routers, &of.src))
		return drop(SU_STAT_DROP_FOREIGN);
	if (su_peek_ipv4(c, &inner))
		return drop(SU_STAT_DROP_BACKBONE_BAD);
	found = ip_lookup(inner->daddr, &ipv);
	if (found == SU_IP_BUSY)
		return drop(SU_STAT_DROP_IP_BUSY);
	if (found != SU_IP_FOUND)
		return drop(SU_STAT_DROP_BACKBONE_BAD);
	count(SU_STAT_BACKBONE_IN);
	off = sizeof(struct ethhdr) + of.ihl + sizeof(struct udphdr);
	return dispatch(ctx, c, off, &ipv, 1);
}

/* A live move's second hop (issue 10, decap.bpf.c): a slice's new owner
 * sends what has no socket there to the previous owner, a server of this
 * DC, in GUE variant 0 with the softunicast private word.  It is routed
 * like any packet between servers, not refused as injected, when it is
 * that mark around an IPv4 packet to an egress IP of the plan; the
 * previous owner's decap accepts it only from the slice's new owner, for a
 * flow of a local socket, until the move's deadline (docs/router.md). */
static __always_inline int second_hop_transit(struct su_cursor *c, struct udphdr *uh)
{
	__u8 *g = (void *)(uh + 1);
	struct iphdr *in = (void *)(g + DECAP_GUE_HOP_LEN);

	if (su_short(c, in, sizeof(*in)) || g[0] != DECAP_GUE_HOP_B0 || g[1] != DECAP_GUE_HOP_PROTO ||
	    g[2] || g[3] || *(__be32 *)(g + 4) != bpf_htonl(DECAP_GUE_HOP_WORD) || in->version != 4)
		return 0;
	return bpf_map_lookup_elem(&su_ips, &in->daddr) != NULL;
}

/* Not addressed to an egress IP nor to this router: the kernel's, unless it
 * is GUE.  Only this router encapsulates toward servers (and other routers
 * send to this router), so GUE to any other address came from outside:
 * with the servers' decap accepting GUE from plan routers, it would be a way
 * to inject packets with a spoofed router source. */
static __always_inline int pass_or_injected(struct su_cursor *c, struct iphdr *iph)
{
	struct udphdr *uh;

	if (iph->protocol != IPPROTO_UDP || (iph->frag_off & bpf_htons(SU_IP_OFFSET)) ||
	    iph->ihl < 5)
		return pass();
	uh = (void *)iph + iph->ihl * 4;
	if (su_short(c, uh, sizeof(*uh)) || uh->dest != cfg_gue_port)
		return pass();
	if (second_hop_transit(c, uh)) {
		count(SU_STAT_SECOND_HOP);
		return XDP_PASS;
	}
	return drop(SU_STAT_DROP_GUE_INJECTED);
}

/* Anti-spoofing at the edge: a plan address as source, on an interface
 * its owner is not reached through (abi.h, su_ifroles).  The servers' decap
 * trusts plan routers and its DC's servers, and the router's sysctls
 * (rp_filter=0) let the kernel forward anything: a forged plan source must
 * stop here.  Returns the drop reason, or 0. */
static __always_inline __u32 spoofed_source(struct xdp_md *ctx, __be32 src)
{
	__u32 roles = SU_IF_DC | SU_IF_BACKBONE, k0 = 0, k1 = 1, *kind;
	struct su_ifrole *r = bpf_map_lookup_elem(&su_ifroles, &k0);
	struct su_ip_val v;

	if (r && r->ifindex == ctx->ingress_ifindex && (r->roles & SU_IF_KNOWN))
		roles = r->roles;
	else if ((r = bpf_map_lookup_elem(&su_ifroles, &k1)) &&
		 r->ifindex == ctx->ingress_ifindex && (r->roles & SU_IF_KNOWN))
		roles = r->roles;
	if ((roles & (SU_IF_DC | SU_IF_BACKBONE)) == (SU_IF_DC | SU_IF_BACKBONE))
		return 0;
	kind = bpf_map_lookup_elem(&su_hosts, &src);
	if (kind && *kind == SU_HOST_SERVER && !(roles & SU_IF_DC))
		return SU_STAT_DROP_SPOOF_SERVER;
	if (kind && *kind == SU_HOST_ROUTER && !(roles & SU_IF_BACKBONE))
		return SU_STAT_DROP_SPOOF_ROUTER;
	/* This DC's egress IPs send only from its servers.  Another DC's
	 * may well cross the backbone (its servers' traffic leaving here). */
	if (!(roles & SU_IF_DC) && bpf_map_lookup_elem(&su_ips, &src) &&
	    ip_lookup(src, &v) == SU_IP_FOUND && (v.flags & SU_IP_LOCAL))
		return SU_STAT_DROP_SPOOF_EGRESS;
	return 0;
}

/* The whole program, inlinable: bench/router wraps it. */
static __always_inline int su_router_main(struct xdp_md *ctx)
{
	struct su_cursor c = {
		.pos = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
		.lim = (void *)(long)ctx->data_end,
	};
	struct su_ip_val ipv;
	struct ethhdr *eth;
	struct iphdr *iph;
	__u32 spoof;
	int found;

	if (su_parse_eth(&c, &eth) != ETH_P_IP || su_peek_ipv4(&c, &iph))
		return pass();
	/* No one else may use our address: what arrives with it is forged
	 * (it would pass the decap's and the peers' source checks). */
	if (cfg_router && iph->saddr == cfg_router)
		return drop(SU_STAT_DROP_SPOOF_SELF);
	spoof = spoofed_source(ctx, iph->saddr);
	if (spoof)
		return drop(spoof);
	if (cfg_router && iph->daddr == cfg_router)
		return backbone_in(ctx, &c, iph);
	found = ip_lookup(iph->daddr, &ipv);
	if (found == SU_IP_BUSY)
		return drop(SU_STAT_DROP_IP_BUSY);
	if (found != SU_IP_FOUND)
		return pass_or_injected(&c, iph);
	return dispatch(ctx, &c, sizeof(*eth), &ipv, 0);
}

SEC("xdp")
int su_router(struct xdp_md *ctx)
{
	return su_router_main(ctx);
}

/* include/trace/events/xdp.h, TP_STRUCT__entry of xdp_redirect_template
 * after the 8-byte common header. */
struct su_tp_redirect_err {
	__u64 common;
	int prog_id;
	__u32 act;
	int ifindex;
	int err;
	int to_ifindex;
	__u32 map_id;
	int map_index;
};

/* A redirect of ours failed (the tracepoint fires on the CPU that ran the
 * program, before its next packet): the packet was counted forwarded and
 * was not.  Matched by devices, since the tracepoint sees every program's. */
SEC("tracepoint/xdp/xdp_redirect_err")
int su_redirect_err(struct su_tp_redirect_err *tp)
{
	__u32 k = 0;
	struct su_pending *p = bpf_map_lookup_elem(&su_pending, &k);
	struct su_target_val *tv;

	if (!p || !p->stat || (__u32)tp->to_ifindex != p->ifindex ||
	    (__u32)tp->ifindex != p->in_ifindex)
		return 0;
	count_move(p->stat, SU_STAT_DROP_REDIRECT, 1);
	if (p->target && (tv = bpf_map_lookup_elem(&su_targets, &p->target))) {
		tv->packets--;
		tv->bytes -= p->len;
	}
	p->stat = 0;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
