/* Packet parsers of the router, one per header, cursor-based (xdp-tools
 * parsing_helpers.h style).  Pure functions of the packet bytes: no maps, no
 * helpers, so the same code compiles into the BPF object and into userspace
 * (the libFuzzer harness and the fixture test check it against a reference).
 *
 * Conventions: a parser takes the cursor, checks bounds against c->end before
 * every read (the verifier insists, and the fuzzer catches any miss), advances
 * the cursor past its header and returns 0, or a negative enum su_stat drop
 * reason, or SU_PARSE_PASS when the packet is simply not ours.  Every packet
 * field is left in network byte order in the results. */
#ifndef SU_BPF_PARSE_H
#define SU_BPF_PARSE_H

#include <linux/types.h>
#ifndef __bpf__
#include <netinet/in.h> /* before <linux/in.h>, which then defers to glibc */
#endif
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#define SU_PARSE_PASS 1

/* ICMP is declared here rather than taken from <linux/icmp.h>, whose
 * <linux/if.h> and <linux/in6.h> clash with glibc's in userspace builds. */
struct su_icmphdr {
	__u8 type;
	__u8 code;
	__sum16 check;
	union {
		struct {
			__be16 id;
			__be16 seq;
		} echo;
		struct {
			__be16 unused;
			__be16 mtu; /* RFC 1191 §4: next-hop MTU in frag-needed */
		} frag;
		__be32 gateway;
	} un;
};
_Static_assert(sizeof(struct su_icmphdr) == 8, "ICMP header is 8 bytes (RFC 792)");

#define SU_ICMP_ECHOREPLY 0
#define SU_ICMP_DEST_UNREACH 3
#define SU_ICMP_FRAG_NEEDED 4 /* code of DEST_UNREACH */
#define SU_ICMP_ECHO 8
#define SU_ICMP_TIME_EXCEEDED 11
#define SU_ICMP_PARAMETERPROB 12

#define SU_IP_DF 0x4000
#define SU_IP_MF 0x2000
#define SU_IP_OFFSET 0x1fff

/* end is the frame end (data_end): the verifier learns packet bounds only
 * from comparisons against it.  lim is the logical end, the enclosing IPv4
 * total length; every read checks both (su_short). */
struct su_cursor {
	void *pos;
	void *end;
	void *lim;
};

static __always_inline int su_short(const struct su_cursor *c, const void *p, __u32 n)
{
	return (const char *)p + n > (const char *)c->end || (const char *)p + n > (const char *)c->lim;
}

enum su_frag {
	SU_FRAG_NONE = 0,
	SU_FRAG_FIRST = 1, /* offset 0, MF set: carries the L4 header */
	SU_FRAG_LATER = 2, /* offset > 0: no L4 header (RFC 791) */
};

enum su_key_kind {
	SU_KEY_NONE = 0,      /* later fragment: dispatch by the fragment LRU */
	SU_KEY_PORT = 1,      /* TCP/UDP destination port */
	SU_KEY_ECHO = 2,      /* echo reply identifier */
	SU_KEY_ICMP_ERR = 3,  /* quoted source port / echo identifier */
};

/* What the dispatch needs to know about one IPv4 packet. */
struct su_flow {
	__be32 src, dst;
	__be16 id;
	__be16 tot_len;
	__u8 proto;
	__u8 frag;     /* enum su_frag */
	__u8 df;
	__u8 ihl;      /* header length in bytes */
	__u8 kind;     /* enum su_key_kind */
	__u8 tos;      /* DSCP + ECN, copied to the outer header (RFC 6040) */
	__u8 tcp_flags; /* TCP: byte 13 of the header (FIN 0x01 ... CWR 0x80) */
	__u8 pad[3];
	__be16 port;   /* dispatch key: which slice (network order) */
	__be16 sport;  /* TCP/UDP source port, for the flow hash; else 0 */
	__be16 dport;  /* TCP/UDP destination port, for the flow hash; else 0 */
};

/* Ethernet, untagged.  Returns the EtherType (host order) or SU_PARSE_PASS
 * for a runt: such a frame is not ours to judge, the kernel drops it. */
static __always_inline int su_parse_eth(struct su_cursor *c, struct ethhdr **ethp)
{
	struct ethhdr *eth = c->pos;

	if (su_short(c, eth, sizeof(*eth)))
		return -SU_PARSE_PASS;
	c->pos = eth + 1;
	*ethp = eth;
	return bpf_ntohs(eth->h_proto);
}

/* The fixed 20 bytes of an IPv4 header, enough to read the destination.
 * Anything shorter, or not version 4, cannot be addressed to an egress IP
 * as far as we can tell, so it is passed, not counted as a drop.  The
 * cursor stays at the start of the header: su_parse_ipv4 validates it once
 * the destination turned out to be ours. */
static __always_inline int su_peek_ipv4(struct su_cursor *c, struct iphdr **iphp)
{
	struct iphdr *iph = c->pos;

	if (su_short(c, iph, sizeof(*iph)) || iph->version != 4)
		return -SU_PARSE_PASS;
	*iphp = iph;
	return 0;
}

/* Full IPv4 validation (RFC 791, RFC 1812 §5.2.2 minus the checksum, which
 * the receiving server's kernel verifies) and flow extraction.  Advances the
 * cursor to the L4 header. */
static __always_inline int su_parse_ipv4(struct su_cursor *c, struct iphdr *iph,
					 struct su_flow *f)
{
	__u32 hlen = iph->ihl * 4;
	__u32 tot = bpf_ntohs(iph->tot_len);
	__u16 frag = bpf_ntohs(iph->frag_off);

	if (hlen < sizeof(*iph) || tot < hlen)
		return -SU_STAT_DROP_L3_BAD;
	if (su_short(c, iph, hlen) || su_short(c, iph, tot))
		return -SU_STAT_DROP_L3_TRUNC;
	f->src = iph->saddr;
	f->dst = iph->daddr;
	f->id = iph->id;
	f->tot_len = iph->tot_len;
	f->tos = iph->tos;
	f->proto = iph->protocol;
	f->ihl = hlen;
	f->df = !!(frag & SU_IP_DF);
	if (frag & SU_IP_OFFSET)
		f->frag = SU_FRAG_LATER;
	else if (frag & SU_IP_MF)
		f->frag = SU_FRAG_FIRST;
	else
		f->frag = SU_FRAG_NONE;
	/* The L4 end is the IP total length, not the frame end: Ethernet pads
	 * short frames (IEEE 802.3 minimum 60 bytes). */
	c->pos = (void *)iph + hlen;
	c->lim = (void *)iph + tot;
	return 0;
}

/* TCP and UDP share the port layout of their first 4 bytes; a whole
 * (unfragmented) datagram must also have a sane header length. */
static __always_inline int su_parse_ports(struct su_cursor *c, struct su_flow *f)
{
	struct udphdr *uh = c->pos;

	/* RFC 791 guarantees 8 bytes of payload in every fragment but the
	 * last, so a first fragment shorter than that is a forgery (RFC 1858
	 * tiny fragments): no ports to trust. */
	if (su_short(c, uh, sizeof(*uh)))
		return -SU_STAT_DROP_L4_TRUNC;
	f->sport = uh->source;
	f->dport = uh->dest;
	f->port = uh->dest;
	f->kind = SU_KEY_PORT;
	if (f->proto == IPPROTO_TCP) {
		struct tcphdr *th = c->pos;

		/* The flags decide whether the segment is unsolicited, so a
		 * first fragment must carry the whole fixed header: anything
		 * shorter is the RFC 1858 tiny-fragment evasion. */
		if (su_short(c, th, sizeof(*th)))
			return -SU_STAT_DROP_L4_TRUNC;
		f->tcp_flags = ((__u8 *)th)[13];
	}
	if (f->frag != SU_FRAG_NONE)
		return 0;
	if (f->proto == IPPROTO_UDP) {
		__u32 ulen = bpf_ntohs(uh->len);

		if (ulen < sizeof(*uh) || su_short(c, uh, ulen))
			return -SU_STAT_DROP_L4_BAD;
	} else {
		struct tcphdr *th = c->pos;

		if (th->doff < 5 || su_short(c, th, th->doff * 4))
			return -SU_STAT_DROP_L4_BAD;
	}
	return 0;
}

#define SU_TCP_FIN 0x01
#define SU_TCP_SYN 0x02
#define SU_TCP_RST 0x04
#define SU_TCP_ACK 0x10

/* Egress IPs carry return traffic only, and for TCP that is visible without
 * state.  Every segment of a connection a server opened carries ACK once the
 * peer has seen our SYN (RFC 9293 §3.10.7.4), and a RST answers either with
 * ACK (to our SYN) or without it (to a segment of ours that had ACK), so:
 *   SYN without ACK: someone opens a connection to the egress IP (the
 *     simultaneous open of RFC 9293 §3.5 is given up: nothing relies on it);
 *   neither ACK nor RST (FIN, NULL, XMAS probes): belongs to no connection.
 * UDP has no such bit: its unsolicited datagrams are refused on the server,
 * where the sockets are.  Returns the drop reason, or 0 for a plausible
 * reply.  Needs f->kind == SU_KEY_PORT (a first fragment or whole segment). */
static __always_inline int su_tcp_unsolicited(const struct su_flow *f)
{
	if (f->proto != IPPROTO_TCP || f->kind != SU_KEY_PORT)
		return 0;
	if ((f->tcp_flags & (SU_TCP_SYN | SU_TCP_ACK)) == SU_TCP_SYN)
		return SU_STAT_DROP_TCP_SYN;
	if (!(f->tcp_flags & (SU_TCP_ACK | SU_TCP_RST)))
		return SU_STAT_DROP_TCP_NO_ACK;
	return 0;
}

/* The packet quoted in an ICMP error is one WE sent: its source is the
 * egress IP and its source port (or echo identifier) is the server's, which
 * picks the slice.  RFC 792 quotes the IP header plus 64 bits, exactly
 * enough for the ports or the echo identifier. */
static __always_inline int su_parse_quote(struct su_cursor *c, struct su_flow *f)
{
	struct iphdr *q = c->pos;
	__u32 qlen;
	__be16 *l4;

	if (su_short(c, q, sizeof(*q)))
		return -SU_STAT_DROP_ICMP_QUOTE;
	qlen = q->ihl * 4;
	if (q->version != 4 || qlen < sizeof(*q) || q->saddr != f->dst)
		return -SU_STAT_DROP_ICMP_QUOTE;
	/* A quoted non-first fragment has no ports to route by. */
	if (bpf_ntohs(q->frag_off) & SU_IP_OFFSET)
		return -SU_STAT_DROP_ICMP_QUOTE;
	l4 = (void *)q + qlen;
	if (su_short(c, l4, 8))
		return -SU_STAT_DROP_ICMP_QUOTE;
	f->kind = SU_KEY_ICMP_ERR;
	switch (q->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		f->port = l4[0]; /* quoted source port */
		return 0;
	case IPPROTO_ICMP: {
		struct su_icmphdr *qi = (void *)l4;

		if (qi->type != SU_ICMP_ECHO)
			return -SU_STAT_DROP_ICMP_QUOTE;
		f->port = qi->un.echo.id;
		return 0;
	}
	}
	return -SU_STAT_DROP_ICMP_QUOTE;
}

static __always_inline int su_parse_icmp(struct su_cursor *c, struct su_flow *f)
{
	struct su_icmphdr *ih = c->pos;

	if (su_short(c, ih, sizeof(*ih)))
		return -SU_STAT_DROP_L4_TRUNC;
	c->pos = ih + 1;
	switch (ih->type) {
	case SU_ICMP_ECHOREPLY:
		/* Servers pick echo identifiers inside their slice, so the
		 * identifier plays the port (as Linux ping sockets do). */
		f->port = ih->un.echo.id;
		f->kind = SU_KEY_ECHO;
		return 0;
	case SU_ICMP_DEST_UNREACH: /* includes frag needed: PMTUD must work */
	case SU_ICMP_TIME_EXCEEDED:
	case SU_ICMP_PARAMETERPROB:
		/* In a first fragment the quote must be whole in it. */
		return su_parse_quote(c, f);
	}
	return -SU_STAT_DROP_ICMP_TYPE;
}

/* The dispatch key of a packet addressed to a local egress IP; the cursor
 * is at the L4 header (after su_parse_ipv4). */
static __always_inline int su_parse_key(struct su_cursor *c, struct su_flow *f)
{
	if (f->frag == SU_FRAG_LATER) {
		f->kind = SU_KEY_NONE;
		return 0;
	}
	switch (f->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		return su_parse_ports(c, f);
	case IPPROTO_ICMP:
		return su_parse_icmp(c, f);
	}
	return -SU_STAT_DROP_PROTO;
}

/* Backbone: the UDP header of a packet addressed to this router.  Returns 0
 * when it is GUE on our port (cursor at the inner IPv4 header), else
 * SU_PARSE_PASS: other traffic to the router is the kernel's. */
static __always_inline int su_parse_gue(struct su_cursor *c, const struct su_flow *outer,
					__be16 gue_port)
{
	struct udphdr *uh = c->pos;

	if (outer->proto != IPPROTO_UDP || outer->frag != SU_FRAG_NONE)
		return -SU_PARSE_PASS;
	if (su_short(c, uh, sizeof(*uh)) || uh->dest != gue_port)
		return -SU_PARSE_PASS;
	c->pos = uh + 1;
	return 0;
}

/* The outer UDP source port carries the inner flow's entropy so ECMP and
 * RSS spread tunnels (RFC 8086 §3.2.1, what fou does with
 * udp_flow_src_port); it stays in the ephemeral range 49152-65535.  The
 * ports are left out for fragments so that all fragments of a datagram take
 * the same path as the first (no reordering by ECMP). */
static __always_inline __u32 su_mix32(__u32 h)
{
	/* murmur3 finalizer: cheap, every input bit affects every output bit */
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline __be16 su_flow_sport(const struct su_flow *f)
{
	__u32 h = su_mix32(f->src ^ su_mix32(f->dst ^ f->proto));

	if (f->frag == SU_FRAG_NONE)
		h = su_mix32(h ^ (((__u32)f->sport << 16) | f->dport));
	return bpf_htons(0xc000 | (h & 0x3fff));
}

/* One's complement sum (RFC 1071) over a fixed, even number of bytes. */
static __always_inline __sum16 su_csum(const void *buf, __u32 len)
{
	__u32 sum = 0;
#ifdef __bpf__
	const __u16 *w = buf; /* the verifier checked the bounds; alignment is the JIT's */

#pragma clang loop unroll(full)
	for (__u32 i = 0; i < len / 2; i++)
		sum += w[i];
#else
	/* Userspace (tests, fuzzers): the header may sit at any address. */
	for (__u32 i = 0; i < len / 2; i++) {
		__u16 w;

		__builtin_memcpy(&w, (const __u8 *)buf + 2 * i, 2);
		sum += w;
	}
#endif
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__sum16)~sum;
}

#endif
