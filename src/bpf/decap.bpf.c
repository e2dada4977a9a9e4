// SPDX-License-Identifier: GPL-2.0
/* softunicast decap: XDP on a server's uplink.  The DC's router sends
 * return traffic for our slices as GUE variant 1 (outer IPv4 + UDP to the
 * GUE port + the inner IPv4 packet, what Linux fou with ipproto 4 takes
 * apart); kernels without fou, or hosts that should not run it, get the same
 * effect here: strip outer IP and UDP and pass the inner packet up the stack
 * as if it had arrived natively.
 *
 * Egress IPs carry return traffic only (docs/agent.md, "What the decap
 * refuses"):
 *  - they are reachable only through the DC router's GUE: an outer packet
 *    addressed to an egress IP, or GUE from anyone but the router, is dropped;
 *  - an inner packet reaches the stack only if a local socket bound to the
 *    egress IP owns its flow: a TCP socket past LISTEN (so SYN-ACK reaches
 *    SYN-SENT), a UDP socket bound to the egress IP, the quoted flow's socket
 *    for ICMP errors; echo replies go to the kernel's ping sockets, which
 *    match them by identifier (there is no BPF look-up for ping sockets,
 *    so on a slice taken over in a live move they follow the clock, see
 *    DECAP_ECHO_QUIET_S; later fragments follow their first fragment).
 *    Wildcard listeners and wildcard UDP sockets never see a packet to an
 *    egress IP; a bare SYN is never let in.
 * Every refusal is counted under its own reason (decap_abi.h). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/decap_abi.h"

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4 /* code of DEST_UNREACH */
#define ICMP_SOURCE_QUENCH 4
#define ICMP_REDIRECT 5
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ECN_MASK 3
#define ECN_ECT1 1
#define ECN_ECT0 2
#define ECN_CE 3
/* Longest inner L4 payload whose checksum is verified: 9216-byte jumbo
 * frames fit (single-buffer XDP frames are far shorter). */
#define CSUM_CHUNK 64
#define CSUM_MAX_CHUNKS 144
/* Outer IPv4 + UDP + the second-hop mark: what a second hop adds to the
 * inner packet. */
#define HOP_OVERHEAD (20 + 8 + DECAP_GUE_HOP_LEN)
#define NS_PER_S 1000000000ull

/* Fragmentation-needed answers per second per CPU (0: none), like the
 * router's --icmp-rate: whoever can make us answer must not make us send
 * ICMP at line rate to a spoofed source. */
const volatile __u32 cfg_icmp_rate = DECAP_ICMP_RATE_DEFAULT;

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

/* Handed slices of a live move (issue 10), written by the agent from its
 * plan: the slices this server took over (with their previous owner) and
 * those it gave away (with their new owner), each until the deadline. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DECAP_MAX_HOPS);
	__type(key, struct decap_hop_key);
	__type(value, struct decap_hop);
} decap_hops SEC(".maps");

/* Fragmented datagrams of a second hop: later fragments carry no port to
 * find the slice by, so the first fragment's verdict is kept for them, by
 * the datagram's identity (RFC 791: source, destination, protocol, ID), for
 * the kernel's reassembly time at most.  The value is a decap_hop: on the
 * new owner MOVED_IN (send them on to peer), on the previous owner HELD
 * (accept them from peer). */
struct frag_key {
	__be32 src, dst;
	__be16 id;
	__u8 proto, pad;
};

#define FRAG_TTL_NS (30 * NS_PER_S) /* net.ipv4.ipfrag_time's default */

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, DECAP_MAX_FRAG_HOPS);
	__type(key, struct frag_key);
	__type(value, struct decap_hop);
} decap_frag_hops SEC(".maps");

struct bucket {
	__u64 last_ns;
	__u64 tokens;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bucket);
} decap_icmp_bucket SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DECAP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

/* Verdict of the checks below: DECAP_STAT_DECAPSULATED (let it in) or the
 * drop reason; PING (not a counter) is "let in, the kernel's ping socket
 * decides by identifier": echo replies and errors quoting an echo request,
 * which no BPF look-up can check. */
#define ADMIT DECAP_STAT_DECAPSULATED
#define PING (DECAP_STAT_MAX + 1)

static __always_inline int count(__u32 stat, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&decap_stats, &stat);

	if (v)
		*v += 1;
	return verdict;
}

static __always_inline int is_egress(__be32 ip)
{
	return bpf_map_lookup_elem(&decap_egress, &ip) != NULL;
}

/* ---- socket look-ups ---------------------------------------------------- */

/* Tuple of the flow as the socket sees it from the receive side: the
 * packet's source is the peer, its destination (an egress IP) the socket's
 * bound address.  Used in the network namespace of the interface. */
static __always_inline void tuple(struct bpf_sock_tuple *t, __be32 peer, __be32 local,
				  __be16 pport, __be16 lport)
{
	__builtin_memset(t, 0, sizeof(*t));
	t->ipv4.saddr = peer;
	t->ipv4.daddr = local;
	t->ipv4.sport = pport;
	t->ipv4.dport = lport;
}

/* bpf_skc_lookup_tcp finds established, time-wait and request sockets
 * before listeners (the kernel's own __inet_lookup order), so a listener is
 * returned only when no connection of ours owns the 4-tuple. */
static __always_inline int tcp_owner(void *ctx, __be32 peer, __be32 local, __be16 pport,
				     __be16 lport)
{
	struct bpf_sock_tuple t;
	struct bpf_sock *sk;
	__u32 state, bound;

	tuple(&t, peer, local, pport, lport);
	sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return DECAP_STAT_NO_SOCKET;
	state = sk->state;
	bound = sk->src_ip4;
	bpf_sk_release(sk);
	if (state == BPF_TCP_LISTEN || state == BPF_TCP_NEW_SYN_RECV)
		return DECAP_STAT_LISTENER;
	return bound == local ? ADMIT : DECAP_STAT_UNBOUND;
}

/* The kernel prefers a connected UDP socket to a bound one, and a bound one
 * to a wildcard; only a socket whose local address is the egress IP (bound,
 * or connected from it) may receive. */
static __always_inline int udp_owner(void *ctx, __be32 peer, __be32 local, __be16 pport,
				     __be16 lport)
{
	struct bpf_sock_tuple t;
	struct bpf_sock *sk;
	__u32 bound;

	tuple(&t, peer, local, pport, lport);
	sk = bpf_sk_lookup_udp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return DECAP_STAT_NO_SOCKET;
	bound = sk->src_ip4;
	bpf_sk_release(sk);
	return bound == local ? ADMIT : DECAP_STAT_UNBOUND;
}

struct icmph {
	__u8 type, code;
	__sum16 check;
	__be16 id, seq;
};

/* RFC 792: an error quotes the IP header and 64 bits of the packet we sent,
 * so its source is the egress IP and its ports are ours: the error belongs
 * to the socket of that flow, looked up the other way round. */
static __always_inline int icmp_error_owner(void *ctx, struct iphdr *in, void *quote, void *end,
					    __be16 *lport)
{
	struct iphdr *q = quote;
	__be16 *l4;

	if ((void *)(q + 1) > end || q->version != 4 || q->ihl < 5 || q->saddr != in->daddr)
		return DECAP_STAT_ICMP_QUOTE;
	if (q->frag_off & bpf_htons(IP_OFFSET))
		return DECAP_STAT_ICMP_QUOTE; /* no ports in a later fragment */
	l4 = (void *)q + ((q->ihl * 4) & 0x3c);
	if ((void *)(l4 + 4) > end)
		return DECAP_STAT_ICMP_QUOTE;
	*lport = l4[0]; /* our port: the quoted packet's source */
	switch (q->protocol) {
	case IPPROTO_TCP:
		return tcp_owner(ctx, q->daddr, q->saddr, l4[1], l4[0]);
	case IPPROTO_UDP:
		return udp_owner(ctx, q->daddr, q->saddr, l4[1], l4[0]);
	case IPPROTO_ICMP:
		/* About an echo request of ours: ping_err() matches the ping
		 * socket by identifier, as for echo replies; the identifier
		 * (not the type and code) is what picks the slice. */
		*lport = ((struct icmph *)l4)->id;
		return ((struct icmph *)l4)->type == ICMP_ECHO ? PING : DECAP_STAT_ICMP_QUOTE;
	}
	return DECAP_STAT_ICMP_QUOTE;
}

/* Who may receive the inner packet `in` (its L4 header at l4).  *lport is
 * set to the local port (echo identifier) the verdict is about, the slice
 * it belongs to, or left 0 when there is none (later fragments). */
static __always_inline int admit(void *ctx, struct iphdr *in, void *l4, void *end, __be16 *lport)
{
	/* A later fragment has no ports: it joins its datagram only if the
	 * first fragment, which carries them, was admitted (the kernel's
	 * reassembly drops orphans). */
	if (in->frag_off & bpf_htons(IP_OFFSET))
		return ADMIT;
	switch (in->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > end)
			return DECAP_STAT_MALFORMED;
		/* Stateless: a SYN without ACK opens a connection, which an
		 * egress IP never takes (simultaneous open included). */
		if (th->syn && !th->ack)
			return DECAP_STAT_TCP_SYN;
		*lport = th->dest;
		return tcp_owner(ctx, in->saddr, in->daddr, th->source, th->dest);
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > end)
			return DECAP_STAT_MALFORMED;
		*lport = uh->dest;
		return udp_owner(ctx, in->saddr, in->daddr, uh->source, uh->dest);
	}
	case IPPROTO_ICMP: {
		struct icmph *ih = l4;

		if ((void *)(ih + 1) > end)
			return DECAP_STAT_MALFORMED;
		switch (ih->type) {
		case ICMP_ECHOREPLY:
			*lport = ih->id; /* the router's "port" of an echo */
			return PING; /* ping_rcv(): identifier + bound address */
		case ICMP_DEST_UNREACH:
		case ICMP_TIME_EXCEEDED:
		case ICMP_PARAMETERPROB:
			return icmp_error_owner(ctx, in, ih + 1, end, lport);
		}
		return DECAP_STAT_ICMP_TYPE; /* echo requests included */
	}
	}
	return DECAP_STAT_PROTO;
}

/* ---- inner checksum ----------------------------------------------------- */

static __always_inline __u32 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	return (s & 0xffff) + (s >> 16);
}

/* One's complement sum (RFC 1071) of len bytes at p, added to sum; -1 when
 * the bytes run past the frame or the loop bound. */
static __always_inline __s64 sum_bytes(__u8 *p, void *end, __u32 len, __u32 sum)
{
	__u8 tail[4] = {};

	for (int i = 0; i < CSUM_MAX_CHUNKS && len >= CSUM_CHUNK; i++) {
		if ((void *)(p + CSUM_CHUNK) > end)
			return -1;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)p, CSUM_CHUNK, sum);
		p += CSUM_CHUNK;
		len -= CSUM_CHUNK;
	}
	for (int i = 0; i < CSUM_CHUNK / 4 && len >= 4; i++) {
		if ((void *)(p + 4) > end)
			return -1;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)p, 4, sum);
		p += 4;
		len -= 4;
	}
	if (len >= 4)
		return -1;
	/* The last 1-3 bytes, zero-padded (RFC 1071 section 4.1). */
	if (len > 0) {
		if ((void *)(p + 1) > end)
			return -1;
		tail[0] = p[0];
	}
	if (len > 1) {
		if ((void *)(p + 2) > end)
			return -1;
		tail[1] = p[1];
	}
	if (len > 2) {
		if ((void *)(p + 3) > end)
			return -1;
		tail[2] = p[2];
	}
	return bpf_csum_diff(NULL, 0, (__be32 *)tail, sizeof(tail), sum);
}

struct pseudo {
	__be32 src, dst;
	__u8 zero, proto;
	__be16 len;
};

/* After XDP strips the outer headers the driver's receive checksum verdict
 * (CHECKSUM_UNNECESSARY for the outer UDP, or CHECKSUM_PARTIAL on veth from
 * a local sender) still stands and the stack would take it for the inner
 * TCP/UDP/ICMP checksum, which nobody verified.  XDP cannot reset that
 * verdict, so the checksum is verified here (RFC 793/768/792 sums). */
static __always_inline int inner_csum_ok(struct iphdr *in, void *l4, void *end)
{
	__u32 hlen = (in->ihl * 4) & 0x3c, len = bpf_ntohs(in->tot_len) - hlen, sum = 0;
	struct pseudo ph = { .src = in->saddr, .dst = in->daddr, .proto = in->protocol,
			     .len = bpf_htons(len) };
	__s64 s;

	/* The L4 checksum spans the whole datagram: for a fragment the
	 * kernel checks it after reassembly. */
	if (in->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return 1;
	if (in->protocol == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > end)
			return 0;
		if (!uh->check)
			return 1; /* RFC 768: no checksum sent */
	}
	if (in->protocol != IPPROTO_ICMP)
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&ph, sizeof(ph), 0);
	s = sum_bytes(l4, end, len, sum);
	return s >= 0 && fold((__u32)s) == 0xffff;
}

/* ---- ECN (RFC 6040 section 4.2, normal mode) ---------------------------- */

static __always_inline void set_tos(struct iphdr *ip, __u8 tos)
{
	__u16 *w = (__u16 *)ip, old = *w, new;
	__u32 s;

	ip->tos = tos;
	new = *w;
	/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') */
	s = (__u16)~ip->check + (__u16)~old + new;
	ip->check = (__u16)~fold(s);
}

/* Combines the outer ECN field into the inner header; returns the drop
 * reason for an outer CE on a Not-ECT inner packet, else ADMIT. */
static __always_inline int ecn_decap(__u8 outer_tos, struct iphdr *in)
{
	__u8 o = outer_tos & ECN_MASK, i = in->tos & ECN_MASK;

	if (o == ECN_CE) {
		if (!i)
			return DECAP_STAT_ECN; /* the inner transport cannot hear it */
		if (i != ECN_CE) {
			set_tos(in, in->tos | ECN_CE);
			count(DECAP_STAT_CE, 0);
		}
	} else if (o == ECN_ECT1 && i == ECN_ECT0) {
		set_tos(in, (in->tos & ~ECN_MASK) | ECN_ECT1);
	}
	return ADMIT;
}

/* ---- the program ---------------------------------------------------------- */

/* Outer GUE checks.  Returns ADMIT with *udpp set (and *hop when the GUE
 * header is the second-hop mark, whose source is checked against the
 * slice's new owner later), a drop reason, or -1 for "not GUE for us": the
 * kernel's. */
static __always_inline int outer_gue(struct iphdr *ip, void *end, const struct decap_cfg *cfg,
				     struct udphdr **udpp, int *hop)
{
	struct udphdr *udp = (void *)ip + ((ip->ihl * 4) & 0x3c);
	__u8 *g;

	if (ip->protocol != IPPROTO_UDP || ip->ihl < 5)
		return -1;
	/* A later fragment carries no UDP header to recognise GUE by; from
	 * the router it can only belong to a GUE packet whose first fragment
	 * is dropped below, so the kernel discards it at reassembly. */
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return ip->saddr == cfg->router ? DECAP_STAT_FRAGMENT : -1;
	if ((void *)(udp + 1) > end || udp->dest != cfg->port)
		return -1;
	/* Reassembling GUE would need a second decap path after the kernel's
	 * defragmentation; the MTU contract (docs/agent.md) says the router
	 * never fragments, so a fragment is a fault to count, not to mend. */
	if (ip->frag_off & bpf_htons(IP_MF))
		return DECAP_STAT_OUTER_FRAGMENT;
	g = (void *)(udp + 1);
	if ((void *)(g + 1) > end)
		return DECAP_STAT_MALFORMED;
	*udpp = udp;
	/* GUE variant 1 starts with the inner IP version (4: 0b01...); a
	 * variant 0 header (0b00...) is only ever our second-hop mark. */
	if (!(g[0] & 0xc0)) {
		if ((void *)(g + DECAP_GUE_HOP_LEN) > end || g[0] != DECAP_GUE_HOP_B0 ||
		    g[1] != DECAP_GUE_HOP_PROTO || g[2] || g[3] ||
		    *(__be32 *)(g + 4) != bpf_htonl(DECAP_GUE_HOP_WORD))
			return DECAP_STAT_MALFORMED;
		*hop = 1;
		return ADMIT;
	}
	if (ip->saddr != cfg->router)
		return DECAP_STAT_BAD_SOURCE;
	return ADMIT;
}

/* ---- the second hop (issue 10) ------------------------------------------ */

static __always_inline struct decap_hop *hop_of(const struct decap_cfg *cfg, __be32 ip, __be16 lport,
						__u32 kind)
{
	struct decap_hop_key k = { .ip = ip, .slice = bpf_ntohs(lport) >> (cfg->slice_shift & 15) };
	struct decap_hop *h = bpf_map_lookup_elem(&decap_hops, &k);

	return h && h->kind == kind ? h : NULL;
}

static __always_inline void frag_key_of(struct frag_key *k, const struct iphdr *in)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->src = in->saddr;
	k->dst = in->daddr;
	k->id = in->id;
	k->proto = in->protocol;
}

static __always_inline int frag_later(const struct iphdr *in)
{
	return !!(in->frag_off & bpf_htons(IP_OFFSET));
}

/* A first fragment's second-hop verdict, for the later ones: until the
 * move's deadline or the reassembly time, whichever comes first. */
static __always_inline void frag_note(const struct iphdr *in, __be32 peer, __u32 kind, __u64 until)
{
	struct decap_hop v = { .peer = peer, .kind = kind };
	__u64 ttl = bpf_ktime_get_boot_ns() + FRAG_TTL_NS;
	struct frag_key k;

	if (!(in->frag_off & bpf_htons(IP_MF)) || frag_later(in))
		return;
	v.until_ns = until < ttl ? until : ttl;
	frag_key_of(&k, in);
	bpf_map_update_elem(&decap_frag_hops, &k, &v, BPF_ANY);
}

static __always_inline struct decap_hop *frag_of(const struct iphdr *in, __u32 kind)
{
	struct frag_key k;
	struct decap_hop *v;

	frag_key_of(&k, in);
	v = bpf_map_lookup_elem(&decap_frag_hops, &k);
	return v && v->kind == kind && bpf_ktime_get_boot_ns() < v->until_ns ? v : NULL;
}

/* "No socket here" verdicts: what a previous owner may still have one for. */
static __always_inline int not_here(int why)
{
	return why == DECAP_STAT_NO_SOCKET || why == DECAP_STAT_LISTENER || why == DECAP_STAT_UNBOUND;
}

static __always_inline void ipv4_csum(struct iphdr *ip)
{
	__u32 s = 0;
	__u16 *w = (__u16 *)ip;

	ip->check = 0;
	for (int i = 0; i < (int)sizeof(*ip) / 2; i++)
		s += w[i];
	ip->check = (__u16)~fold(s);
}

/* Like the kernel's icmp_global_allow() and the router's bucket: a token
 * bucket of cfg_icmp_rate per second per CPU, at most that many in a burst;
 * the clock advances only by the time the tokens it added were worth. */
static __always_inline int icmp_allowed(void)
{
	__u32 k = 0;
	struct bucket *b = bpf_map_lookup_elem(&decap_icmp_bucket, &k);
	__u64 now = bpf_ktime_get_coarse_ns(), elapsed, add;

	if (!b || !cfg_icmp_rate)
		return 0;
	elapsed = now - b->last_ns;
	if (elapsed >= NS_PER_S) {
		b->tokens = cfg_icmp_rate;
		b->last_ns = now;
	} else {
		add = elapsed * cfg_icmp_rate / NS_PER_S;
		if (add) {
			b->tokens = b->tokens + add > cfg_icmp_rate ? cfg_icmp_rate : b->tokens + add;
			b->last_ns += add * NS_PER_S / cfg_icmp_rate;
		}
	}
	if (!b->tokens)
		return 0;
	b->tokens--;
	return 1;
}

/* RFC 1812 section 4.3.2.7, RFC 1122 section 3.2.2: no ICMP error about an
 * ICMP error, or to a source that is not one host (0/8, 127/8, multicast,
 * class E, limited broadcast).  Nor about a later fragment: a fragmented
 * datagram never has DF, so second_hop_too_big() drops it before asking. */
static __always_inline int icmp_forbidden(struct iphdr *in, void *end)
{
	__u32 src = bpf_ntohl(in->saddr);
	__u8 *type = (void *)in + ((in->ihl * 4) & 0x3c);

	if ((src >> 24) == 0 || (src >> 24) == 127 || (src >> 28) >= 0xe)
		return 1;
	if (in->protocol != IPPROTO_ICMP)
		return 0;
	if ((void *)(type + 1) > end)
		return 1;
	switch (*type) {
	case ICMP_DEST_UNREACH:
	case ICMP_SOURCE_QUENCH:
	case ICMP_REDIRECT:
	case ICMP_TIME_EXCEEDED:
	case ICMP_PARAMETERPROB:
		return 1;
	}
	return 0;
}

/* A second hop that would not fit the uplink (its MTU is mtu): XDP cannot
 * fragment, and the 8 bytes of the mark come on top of the GUE the router
 * sized the packet for.  RFC 1191 section 4: answer the origin with
 * "fragmentation needed" and the inner MTU that fits a second hop (mtu - 36),
 * from the egress IP it wrote to, so its PMTU discovery shrinks the flow's
 * packets while the flow is second-hopped.  The answer is built over the
 * frame: the new IPv4 + ICMP headers take exactly the place of the outer
 * IPv4 + UDP (20 + 8 bytes), the quote (the inner IP header and 64 bits,
 * RFC 792) is already in place after them, the tail is cut.  It goes back
 * out toward the router like any packet of this server to the Internet. */
static __attribute__((noinline)) int second_hop_too_big(struct xdp_md *ctx, __u32 mtu)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1), *in;
	struct icmph *ih;
	__u8 mac[ETH_ALEN];
	__be32 origin, egress;
	__u32 quote;
	__s64 sum;

	in = (void *)ip + sizeof(*ip) + sizeof(struct udphdr);
	if ((void *)(in + 1) > end)
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	quote = ((in->ihl * 4) & 0x3c) + 8;
	if (quote < sizeof(*in) + 8 || (void *)in + quote > end || bpf_ntohs(in->tot_len) < quote)
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	/* DF clear: the origin allowed fragmentation, which XDP cannot do;
	 * an MTU that leaves less than RFC 791's 68 bytes is a fault. */
	if (!(in->frag_off & bpf_htons(IP_DF)) || mtu < HOP_OVERHEAD + 68 || icmp_forbidden(in, end))
		return count(DECAP_STAT_SECOND_HOP_DROP_MTU, XDP_DROP);
	if (!icmp_allowed())
		return count(DECAP_STAT_SECOND_HOP_DROP_ICMP_RATE, XDP_DROP);
	origin = in->saddr;
	egress = in->daddr;
	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0xc0; /* internetwork control, as Linux's icmp_send() */
	ip->tot_len = bpf_htons(sizeof(*ip) + sizeof(*ih) + quote);
	/* An atomic datagram (DF, never fragmented: 70 bytes at most), whose
	 * identification may be 0 (RFC 6864 section 4.1). */
	ip->id = 0;
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = 64;
	ip->protocol = IPPROTO_ICMP;
	ip->saddr = egress;
	ip->daddr = origin;
	ipv4_csum(ip);
	ih = (void *)(ip + 1);
	ih->type = ICMP_DEST_UNREACH;
	ih->code = ICMP_FRAG_NEEDED;
	ih->check = 0;
	ih->id = 0;                               /* unused (RFC 1191 section 4) */
	ih->seq = bpf_htons(mtu - HOP_OVERHEAD); /* Next-Hop MTU */
	if (bpf_xdp_adjust_tail(ctx, (int)(sizeof(*eth) + sizeof(*ip) + sizeof(*ih) + quote) -
					 (int)(end - data)))
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	ih = data + sizeof(*eth) + sizeof(*ip);
	if ((void *)(ih + 1) > end)
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	sum = sum_bytes((__u8 *)ih, end, sizeof(*ih) + quote, 0);
	if (sum < 0)
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	ih->check = (__u16)~fold((__u32)sum);
	return count(DECAP_STAT_SECOND_HOP_FRAG_NEEDED, XDP_TX);
}

/* Re-encapsulates the GUE packet in place to the previous owner `to`: the
 * same outer headers moved 8 bytes forward, the second-hop mark written
 * between UDP and the inner packet, back out of the interface it came in
 * on (XDP_TX) toward the router, which routes it like any packet between
 * two servers.  Outer UDP checksum 0 (RFC 768; GUE over IPv4 allows it). */
static __always_inline int second_hop(struct xdp_md *ctx, const struct decap_cfg *cfg, __be32 to)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr eth, *neth;
	struct iphdr oip, *ip;
	struct udphdr oudp, *udp;
	__u32 mtu = 0;
	__u8 *g;

	ip = data + sizeof(eth);
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end || ip->ihl != 5)
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	/* The uplink's MTU (XDP_TX leaves by the interface the frame came
	 * in on); the rest of the path is the MTU contract (docs/operator.md,
	 * "Live moves": DC network and backbone at least edge MTU + 36). */
	if (bpf_check_mtu(ctx, 0, &mtu, DECAP_GUE_HOP_LEN, 0) == BPF_MTU_CHK_RET_FRAG_NEEDED)
		return second_hop_too_big(ctx, mtu);
	__builtin_memcpy(&eth, data, sizeof(eth));
	__builtin_memcpy(&oip, ip, sizeof(oip));
	__builtin_memcpy(&oudp, udp, sizeof(oudp));
	if (bpf_xdp_adjust_head(ctx, -DECAP_GUE_HOP_LEN))
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	neth = data;
	ip = (void *)(neth + 1);
	udp = (void *)(ip + 1);
	g = (void *)(udp + 1);
	if ((void *)(g + DECAP_GUE_HOP_LEN) > end)
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	/* Back where it came from: to the router's MAC, from ours. */
	__builtin_memcpy(neth->h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(neth->h_source, eth.h_dest, ETH_ALEN);
	neth->h_proto = bpf_htons(ETH_P_IP);
	oip.saddr = cfg->self;
	oip.daddr = to;
	oip.ttl = 64;
	oip.tot_len = bpf_htons(bpf_ntohs(oip.tot_len) + DECAP_GUE_HOP_LEN);
	__builtin_memcpy(ip, &oip, sizeof(oip));
	ipv4_csum(ip);
	oudp.len = bpf_htons(bpf_ntohs(oudp.len) + DECAP_GUE_HOP_LEN);
	oudp.check = 0;
	__builtin_memcpy(udp, &oudp, sizeof(oudp));
	g[0] = DECAP_GUE_HOP_B0;
	g[1] = DECAP_GUE_HOP_PROTO;
	g[2] = 0;
	g[3] = 0;
	*(__be32 *)(g + 4) = bpf_htonl(DECAP_GUE_HOP_WORD);
	return count(DECAP_STAT_SECOND_HOP_SENT, XDP_TX);
}

/* The verdict on a second hop received: accepted only from the slice's new
 * owner while this server still holds the slice, and only for a flow of a
 * local socket (else refused: never a third hop). */
static __always_inline int second_hop_in(const struct decap_cfg *cfg, struct iphdr *ip, struct iphdr *in,
					 int why, __be16 lport)
{
	struct decap_hop *h = lport ? hop_of(cfg, in->daddr, lport, DECAP_HOP_HELD) : NULL;

	/* A later fragment: only of a datagram whose first fragment came
	 * from the same new owner and was accepted (the kernel reassembles). */
	if (frag_later(in)) {
		h = frag_of(in, DECAP_HOP_HELD);
		return h && h->peer == ip->saddr ? why : DECAP_STAT_SECOND_HOP_REFUSED_SOURCE;
	}
	if (!h || h->peer != ip->saddr)
		return DECAP_STAT_SECOND_HOP_REFUSED_SOURCE;
	if (bpf_ktime_get_boot_ns() >= h->until_ns)
		return DECAP_STAT_SECOND_HOP_REFUSED_EXPIRED;
	if (not_here(why))
		return DECAP_STAT_SECOND_HOP_REFUSED_LOOP;
	frag_note(in, ip->saddr, DECAP_HOP_HELD, h->until_ns);
	return why; /* PING: the slice is handed, so the ping socket is ours */
}

/* On a slice taken over in a live move (h), a packet with no local socket:
 * -1 to go on with verdict *why, else the XDP action.  Before the deadline
 * it goes to the previous owner.  Echo replies and errors about echoes
 * (PING) cannot be looked up, but none is ours then: libsoftunicast picks
 * no identifier in a handed slice until the deadline + DECAP_ECHO_QUIET_S
 * (+1 s), so they all are the previous owner's; during the quiet time they
 * are refused, after it they are this server's own.  Stateless: the clock
 * and the plan decide, never a table of pings. */
static __always_inline int moved_in(struct xdp_md *ctx, const struct decap_cfg *cfg,
				    const struct decap_hop *h, const struct iphdr *in, int *why)
{
	__u64 now = bpf_ktime_get_boot_ns();

	if (now < h->until_ns) {
		frag_note(in, h->peer, DECAP_HOP_MOVED_IN, h->until_ns);
		return second_hop(ctx, cfg, h->peer);
	}
	if (*why == PING) {
		if (now - h->until_ns < DECAP_ECHO_QUIET_S * NS_PER_S)
			return count(DECAP_STAT_SECOND_HOP_REFUSED_EXPIRED, XDP_DROP);
		return -1;
	}
	/* Refused as before (its own reason), and counted as expired too. */
	count(DECAP_STAT_SECOND_HOP_REFUSED_EXPIRED, 0);
	return -1;
}

/* The whole XDP program, inlinable: bench/moves wraps it. */
static __always_inline int decap_main(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 zero = 0, hlen, ihl;
	struct decap_cfg *cfg = bpf_map_lookup_elem(&decap_config, &zero);
	struct ethhdr eth, *neth = data;
	struct iphdr *ip = (void *)(neth + 1), *in;
	struct udphdr *udp = NULL;
	struct decap_hop *h;
	__be16 lport = 0;
	int why, hop = 0, act;

	if (!cfg || !cfg->enabled)
		return XDP_PASS;
	if ((void *)(ip + 1) > end || neth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	/* Straight to an egress IP, not through the router's tunnel: a
	 * neighbour that knows our MAC, or a spoofer. */
	if (is_egress(ip->daddr))
		return count(DECAP_STAT_NOT_GUE, XDP_DROP);
	why = outer_gue(ip, end, cfg, &udp, &hop);
	if (why < 0)
		return XDP_PASS;
	if (why == DECAP_STAT_FRAGMENT)
		return count(why, XDP_PASS);
	if (why != ADMIT || !udp)
		return count(why, XDP_DROP);
	in = (void *)(udp + 1) + (hop ? DECAP_GUE_HOP_LEN : 0);
	if ((void *)(in + 1) > end || in->version != 4 || in->ihl < 5)
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	ihl = (in->ihl * 4) & 0x3c;
	if (bpf_ntohs(in->tot_len) < ihl || (void *)in + bpf_ntohs(in->tot_len) > end)
		return count(DECAP_STAT_MALFORMED, XDP_DROP);
	if (!is_egress(in->daddr))
		return count(DECAP_STAT_NOT_OURS, XDP_DROP);
	why = admit(ctx, in, (void *)in + ihl, end, &lport);
	if (hop) {
		why = second_hop_in(cfg, ip, in, why, lport);
	} else if ((not_here(why) || why == PING) && lport &&
		   (h = hop_of(cfg, in->daddr, lport, DECAP_HOP_MOVED_IN))) {
		/* A slice taken over in a live move: its previous owner may
		 * have the socket, until the deadline. */
		act = moved_in(ctx, cfg, h, in, &why);
		if (act >= 0)
			return act;
	} else if (frag_later(in) && (h = frag_of(in, DECAP_HOP_MOVED_IN))) {
		/* The rest of a datagram whose first fragment was sent on. */
		return second_hop(ctx, cfg, h->peer);
	}
	if (why == PING)
		why = ADMIT;
	if (why != ADMIT)
		return count(why, XDP_DROP);
	if (!inner_csum_ok(in, (void *)in + ihl, end))
		return count(DECAP_STAT_INNER_CSUM, XDP_DROP);
	why = ecn_decap(ip->tos, in);
	if (why != ADMIT)
		return count(why, XDP_DROP);
	if (hop)
		count(DECAP_STAT_SECOND_HOP_RECEIVED, 0);

	hlen = (__u32)((void *)in - (void *)ip);
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

SEC("xdp")
int decap(struct xdp_md *ctx)
{
	return decap_main(ctx);
}

/* tc egress on lo: a packet this host sends to one of its own egress IPs
 * would be delivered locally, to whatever socket matches, although the port
 * may belong to another server's slice of the same /32.  Egress IPs are not
 * service addresses: such packets are dropped and counted (the sender sees a
 * timeout; in-DC clients use the servers' own addresses). */
static __always_inline int local_rst(struct __sk_buff *skb)
{
	__u32 l3 = sizeof(struct ethhdr);
	__u8 vihl, proto, flags;

	if (bpf_skb_load_bytes(skb, l3, &vihl, 1) ||
	    bpf_skb_load_bytes(skb, l3 + __builtin_offsetof(struct iphdr, protocol), &proto, 1) ||
	    proto != IPPROTO_TCP)
		return 0;
	/* TCP flags: byte 13 of the TCP header; RST is 0x04. */
	if (bpf_skb_load_bytes(skb, l3 + (vihl & 0x0f) * 4 + 13, &flags, 1))
		return 0;
	return flags & 0x04;
}

SEC("tc")
int decap_local(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct decap_cfg *cfg = bpf_map_lookup_elem(&decap_config, &zero);
	__be32 dst;

	if (!cfg || !cfg->enabled || skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + __builtin_offsetof(struct iphdr, daddr), &dst,
			       sizeof(dst)))
		return TC_ACT_OK;
	if (!is_egress(dst))
		return TC_ACT_OK;
	/* The agent's ownership rule answers a connect() from outside the
	 * slices with `reject with tcp reset`: netfilter sends that RST to the
	 * local socket through lo, from the origin's address to the egress IP.
	 * A RST carries nothing to a socket and can only abort a connection
	 * of this host, so it passes: the caller gets ECONNREFUSED at once. */
	if (local_rst(skb))
		return TC_ACT_OK;
	return count(DECAP_STAT_LOCAL, TC_ACT_SHOT);
}

char LICENSE[] SEC("license") = "GPL";
