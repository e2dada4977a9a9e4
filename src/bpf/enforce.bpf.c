// SPDX-License-Identifier: GPL-2.0
/* softunicast enforce: tc egress (clsact) on a server's uplink.  From an
 * egress IP only what the router can bring back to this server may leave:
 * TCP/UDP from a source port in one of our slices, ICMP echo requests with an
 * identifier in them, and ICMP errors (they quote a flow of ours); anything
 * else would make a peer answer a port, identifier or protocol that the
 * router sends to another server, or to nobody.  tc egress sees what the
 * netfilter output hook does not: packet sockets (AF_PACKET without
 * PACKET_QDISC_BYPASS) and frames built by hand, and it runs after every
 * netfilter rewrite, so it judges the packet as it leaves.  nftables stays in
 * front for the fast, per-socket error (EPERM, TCP reset); see agent_nft.c. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/enforce_abi.h"

#ifndef IPPROTO_DCCP
#define IPPROTO_DCCP 33
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, ENFORCE_MAX_EGRESS);
	__type(key, __u32); /* egress IP, network order */
	__type(value, struct enforce_ports);
} enforce_slices SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, ENFORCE_MAX_FRAGS);
	__type(key, struct enforce_frag_key);
	__type(value, __u8);
} enforce_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ENFORCE_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} enforce_stats SEC(".maps");

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ARP_SPA_OFF 14 /* htype, ptype, hlen, plen, op, sha[6], then spa */

static __always_inline int count(__u32 stat, int verdict)
{
	__u64 *v = bpf_map_lookup_elem(&enforce_stats, &stat);

	if (v)
		*v += 1;
	return verdict;
}

static __always_inline int passes(__u32 stat)
{
	return stat == ENFORCE_STAT_PASS_PORT || stat == ENFORCE_STAT_PASS_ECHO ||
	       stat == ENFORCE_STAT_PASS_ICMP_ERROR || stat == ENFORCE_STAT_PASS_FRAGMENT;
}

static __always_inline int judge(__u32 stat)
{
	return count(stat, passes(stat) ? TC_ACT_OK : TC_ACT_SHOT);
}

static __always_inline int owns(const struct enforce_ports *ports, __u16 port_be)
{
	__u16 p = bpf_ntohs(port_be);

	return ports->bits[(p >> 6) & 1023] >> (p & 63) & 1;
}

/* L3 offset and EtherType past up to two VLAN tags (a packet socket may
 * send tagged frames on the uplink). */
static __always_inline int l3(struct __sk_buff *skb, __u32 *off, __u16 *proto)
{
	__u16 p;

	if (bpf_skb_load_bytes(skb, 12, &p, sizeof(p)))
		return -1;
	*off = ETH_HLEN;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (p != bpf_htons(ETH_P_8021Q) && p != bpf_htons(ETH_P_8021AD))
			break;
		if (bpf_skb_load_bytes(skb, *off + 2, &p, sizeof(p)))
			return -1;
		*off += 4;
	}
	*proto = p;
	return 0;
}

static __always_inline int check_arp(struct __sk_buff *skb, __u32 off)
{
	__u32 spa;

	if (bpf_skb_load_bytes(skb, off + ARP_SPA_OFF, &spa, sizeof(spa)))
		return TC_ACT_OK; /* not an IPv4-over-Ethernet ARP we can read */
	if (!bpf_map_lookup_elem(&enforce_slices, &spa))
		return TC_ACT_OK;
	return judge(ENFORCE_STAT_DROP_ARP);
}

static __always_inline __u32 check_icmp(struct __sk_buff *skb, __u32 off,
					const struct enforce_ports *ports)
{
	__u8 h[8]; /* type, code, checksum, identifier, sequence */

	if (bpf_skb_load_bytes(skb, off, h, sizeof(h)))
		return ENFORCE_STAT_DROP_MALFORMED;
	switch (h[0]) {
	case ICMP_ECHO:
		return owns(ports, *(__u16 *)&h[4]) ? ENFORCE_STAT_PASS_ECHO :
						      ENFORCE_STAT_DROP_ECHO_ID;
	case ICMP_DEST_UNREACH:
	case ICMP_SOURCE_QUENCH:
	case ICMP_TIME_EXCEEDED:
	case ICMP_PARAMETERPROB:
		return ENFORCE_STAT_PASS_ICMP_ERROR;
	default:
		return ENFORCE_STAT_DROP_ICMP_TYPE;
	}
}

/* The verdict of an unfragmented packet or a first fragment. */
static __always_inline __u32 check_l4(struct __sk_buff *skb, __u32 off, __u8 proto,
				      const struct enforce_ports *ports)
{
	__u16 sport;

	switch (proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		if (bpf_skb_load_bytes(skb, off, &sport, sizeof(sport)))
			return ENFORCE_STAT_DROP_MALFORMED;
		return owns(ports, sport) ? ENFORCE_STAT_PASS_PORT : ENFORCE_STAT_DROP_PORT;
	case IPPROTO_ICMP:
		return check_icmp(skb, off, ports);
	case IPPROTO_UDPLITE:
	case IPPROTO_SCTP:
	case IPPROTO_DCCP:
		return ENFORCE_STAT_DROP_PORT_PROTO;
	default:
		return ENFORCE_STAT_DROP_PROTO;
	}
}

static __always_inline int check_ipv4(struct __sk_buff *skb, __u32 off)
{
	struct iphdr ip;
	const struct enforce_ports *ports;
	struct enforce_frag_key fk;
	__u16 frag;
	__u32 st;

	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)))
		return TC_ACT_OK; /* too short to carry an egress IP source */
	ports = bpf_map_lookup_elem(&enforce_slices, &ip.saddr);
	if (!ports)
		return TC_ACT_OK;
	if (ip.ihl < 5)
		return judge(ENFORCE_STAT_DROP_MALFORMED);
	frag = bpf_ntohs(ip.frag_off);
	fk = (struct enforce_frag_key){ .saddr = ip.saddr, .daddr = ip.daddr, .id = ip.id,
					.proto = ip.protocol };
	/* RFC 791: a non-zero offset means no transport header; it may pass
	 * only behind a first fragment that did (tc sees a datagram's
	 * fragments in the order ip_fragment() made them). */
	if (frag & 0x1fff)
		return judge(bpf_map_lookup_elem(&enforce_frags, &fk) ?
				     ENFORCE_STAT_PASS_FRAGMENT : ENFORCE_STAT_DROP_FRAGMENT);
	st = check_l4(skb, off + ip.ihl * 4, ip.protocol, ports);
	if ((frag & 0x2000) && passes(st)) {
		__u8 one = 1;

		bpf_map_update_elem(&enforce_frags, &fk, &one, BPF_ANY);
	}
	return judge(st);
}

SEC("tc")
int enforce(struct __sk_buff *skb)
{
	__u32 off;
	__u16 proto;

	if (l3(skb, &off, &proto))
		return TC_ACT_OK;
	if (proto == bpf_htons(ETH_P_IP))
		return check_ipv4(skb, off);
	if (proto == bpf_htons(ETH_P_ARP))
		return check_arp(skb, off);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
