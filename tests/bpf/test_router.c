/* Table-driven BPF_PROG_TEST_RUN fixtures for the XDP router: for every path
 * {description, input packet, expected verdict, expected output bytes,
 * expected counters}.  Runs in a private network namespace with veth
 * interfaces, static neighbours and routes, so bpf_fib_lookup() gives
 * deterministic next hops.  Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN). */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <net/if.h>
#include <cmocka.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <pthread.h>

#include "pktbuild.h"
#include "router.skel.h"
/* The loader's su_ipv writer (ipv_map, ipv_write) for the torn-read test. */
#include "../../src/router/router_sync.c"

/* The namespace: su0 faces the Internet and the DC (gateway gw0), su1 is
 * the backbone (gateway gw1).  This router is 10.0.0.1. */
static const uint8_t MAC_SU0[6] = { 2, 0, 0, 0, 0, 1 }, MAC_GW0[6] = { 2, 0, 0, 0, 0, 2 };
static const uint8_t MAC_SU1[6] = { 2, 0, 0, 0, 1, 1 }, MAC_GW1[6] = { 2, 0, 0, 0, 1, 2 };
#define ROUTER IP4(10, 0, 0, 1)
#define ROUTER_B IP4(10, 2, 0, 1) /* DC B, via su0 */
#define ROUTER_C IP4(10, 4, 0, 1) /* DC C, via su1 (backbone) */
#define STRANGER IP4(10, 66, 0, 1)
#define SRV_A IP4(10, 1, 0, 11)
#define SRV_B IP4(10, 1, 0, 12)
#define SRV_C IP4(10, 1, 0, 13)
#define SRV_NONEIGH IP4(10, 9, 0, 5)
#define SRV_NOROUTE IP4(10, 250, 0, 1)
#define ORIGIN IP4(203, 0, 113, 9)
#define EG_LOCAL IP4(198, 51, 100, 1)
#define EG_B IP4(198, 51, 100, 2)
#define EG_C IP4(198, 51, 100, 3)
#define EG_NONEIGH IP4(198, 51, 100, 4)
#define EG_NOROUTE IP4(198, 51, 100, 5)
#define EG_ECMP IP4(198, 51, 100, 8)
#define EG_BRIDGE IP4(198, 51, 100, 9)
#define SRV_ECMP IP4(10, 8, 0, 5)
#define SRV_BRIDGE IP4(10, 7, 0, 5)
#define NOT_EGRESS IP4(192, 0, 2, 77)
#define GUE 6080
/* 2048-port slices over 1024-65535: slices 1..31 are usable. */
#define SHIFT 11
#define FIRST 1
#define SPI 31
#define PORT_A 40000 /* slice 19 -> SRV_A */
#define PORT_B 41000 /* slice 20 -> SRV_B */
#define PORT_C 44000 /* slice 21 -> SRV_C (tunnel PMTU fixtures) */
#define PORT_FREE 10240 /* slice 5: nobody */
#define ICMP_RATE 5 /* frag-needed answers per second per CPU */

static const char *setup_cmds[] = {
	"ip link set lo up",
	"ip link add su0 address 02:00:00:00:00:01 mtu 1500 type veth peer name su0p",
	"ip link add su1 address 02:00:00:00:01:01 mtu 1500 type veth peer name su1p",
	"ip link set su0p up",
	"ip link set su1p up",
	"ip link set su0 up",
	"ip link set su1 up",
	"ip addr add 10.0.0.1/24 dev su0",
	"ip addr add 10.3.0.1/24 dev su1",
	"ip neigh replace 10.0.0.2 lladdr 02:00:00:00:00:02 nud permanent dev su0",
	"ip neigh replace 10.3.0.2 lladdr 02:00:00:00:01:02 nud permanent dev su1",
	"ip route add 10.1.0.0/16 via 10.0.0.2",
	"ip route add 10.2.0.0/16 via 10.0.0.2",
	"ip route add 10.4.0.0/16 via 10.3.0.2",
	"ip route add 203.0.113.0/24 via 10.0.0.2",
	"ip route add 10.9.0.0/16 dev su0",
	"ip route add unreachable 10.250.0.0/16",
	/* ECMP: two next hops toward 10.8/16 */
	"ip neigh replace 10.0.0.3 lladdr 02:00:00:00:00:03 nud permanent dev su0",
	"ip neigh replace 10.0.0.4 lladdr 02:00:00:00:00:04 nud permanent dev su0",
	"ip route add 10.8.0.0/16 nexthop via 10.0.0.3 nexthop via 10.0.0.4",
	/* A server behind a Linux bridge, which cannot take XDP redirects */
	"ip link add sbr0 type bridge",
	"ip link add sbrp type veth peer name sbrq",
	"ip link set sbrp master sbr0",
	"ip link set sbrp up",
	"ip link set sbrq up",
	"ip link set sbr0 up",
	"ip addr add 10.7.0.1/24 dev sbr0",
	"ip neigh replace 10.7.0.5 lladdr 02:00:00:00:07:05 nud permanent dev sbr0",
};

static struct router *skel;
static int ifindex0, ifindex1;

struct fixture;
typedef void (*build_fn)(struct pb *p);

enum out_kind {
	OUT_NONE,       /* dropped: output not compared */
	OUT_SAME,       /* passed untouched */
	OUT_ENCAP,      /* GUE-encapsulated to `target` via `via` */
	OUT_NEIGH_MISS, /* encapsulated, original MACs kept, for the kernel */
	OUT_CUSTOM,
};

struct fixture {
	const char *desc;
	build_fn in;
	int verdict;
	enum out_kind out;
	uint32_t target;
	int via; /* 0: su0/gw0 (XDP_TX), 1: su1/gw1 (XDP_REDIRECT) */
	void (*expect)(struct pb *out, const struct pb *in);
	int stats[6]; /* counters expected to rise by one (~stat: to fall by one) */
	int n_stats;
};

/* ---- inputs ---- */

static void frame(struct pb *p)
{
	pb_eth(p, MAC_SU0, MAC_GW0, ETH_P_IP);
}

static void tcp_to(struct pb *p, uint32_t dst, uint16_t dport)
{
	pb_fill(p, 40, 0xab);
	pb_tcp(p, 443, dport);
	pb_ip(p, ORIGIN, dst, IPPROTO_TCP, 0x1234, PB_DF, 57);
	frame(p);
}

static void in_tcp_local_a(struct pb *p) { tcp_to(p, EG_LOCAL, PORT_A); }
static void in_tcp_remote_b(struct pb *p) { tcp_to(p, EG_B, PORT_A); }
static void in_tcp_remote_c(struct pb *p) { tcp_to(p, EG_C, PORT_B); }
static void in_tcp_free(struct pb *p) { tcp_to(p, EG_LOCAL, PORT_FREE); }
static void in_tcp_low(struct pb *p) { tcp_to(p, EG_LOCAL, 80); }
static void in_tcp_top(struct pb *p) { tcp_to(p, EG_LOCAL, 65535); }
static void in_tcp_noneigh(struct pb *p) { tcp_to(p, EG_NONEIGH, PORT_A); }
static void in_tcp_noroute(struct pb *p) { tcp_to(p, EG_NOROUTE, PORT_A); }
static void in_not_egress(struct pb *p) { tcp_to(p, NOT_EGRESS, PORT_A); }

static void in_udp_local_b(struct pb *p)
{
	pb_fill(p, 100, 0x55);
	pb_udp(p, 53, PORT_B);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0x4321, 0, 60);
	frame(p);
}

/* A 60-byte minimum frame: the IP packet is 32 bytes, Ethernet pads 14. */
static void in_udp_padded(struct pb *p)
{
	pb_fill(p, 4, 0x11);
	pb_udp(p, 53, PORT_A);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 7, 0, 60);
	frame(p);
	pb_pad(p, 60 - pb_len(p));
}

static void in_arp(struct pb *p)
{
	pb_fill(p, 28, 0x01);
	pb_eth(p, MAC_SU0, MAC_GW0, ETH_P_ARP);
}

static void in_ipv6(struct pb *p)
{
	pb_fill(p, 40, 0x60);
	pb_eth(p, MAC_SU0, MAC_GW0, ETH_P_IPV6);
}

static void in_runt_ip(struct pb *p)
{
	struct pb t;

	pb_init(&t);
	tcp_to(&t, EG_LOCAL, PORT_A);
	pb_bytes(p, pb_data(&t), 14 + 19);
}

/* An ICMP error quoting a packet this DC sent from (EG_LOCAL, qport). */
static void icmp_err(struct pb *p, uint8_t type, uint8_t code, uint8_t qproto, uint16_t qport,
		     uint32_t qsrc)
{
	if (qproto == IPPROTO_ICMP)
		pb_icmp(p, SU_ICMP_ECHO, 0, qport, 1);
	else if (qproto == IPPROTO_UDP)
		pb_udp(p, qport, 53);
	else
		pb_bytes(p, (uint16_t[]){ htons(qport), htons(443), 0, 0 }, 8);
	pb_ip(p, qsrc, ORIGIN, qproto, 99, PB_DF, 1);
	pb_icmp(p, type, code, 0, type == 3 && code == 4 ? 1400 : 0);
	pb_ip(p, IP4(192, 0, 2, 254), EG_LOCAL, IPPROTO_ICMP, 5, 0, 250);
	frame(p);
}

static void in_icmp_port_unreach(struct pb *p)
{
	icmp_err(p, SU_ICMP_DEST_UNREACH, 3, IPPROTO_UDP, PORT_A, EG_LOCAL);
}
static void in_icmp_frag_needed(struct pb *p)
{
	icmp_err(p, SU_ICMP_DEST_UNREACH, SU_ICMP_FRAG_NEEDED, IPPROTO_TCP, PORT_B, EG_LOCAL);
}
static void in_icmp_time_exceeded(struct pb *p)
{
	icmp_err(p, SU_ICMP_TIME_EXCEEDED, 0, IPPROTO_ICMP, PORT_A + 1, EG_LOCAL);
}
static void in_icmp_param_problem(struct pb *p)
{
	icmp_err(p, SU_ICMP_PARAMETERPROB, 0, IPPROTO_TCP, PORT_A, EG_LOCAL);
}
static void in_icmp_wrong_quote(struct pb *p)
{
	icmp_err(p, SU_ICMP_DEST_UNREACH, 1, IPPROTO_TCP, PORT_A, EG_B);
}
static void in_icmp_quote_free_slice(struct pb *p)
{
	icmp_err(p, SU_ICMP_DEST_UNREACH, 1, IPPROTO_TCP, PORT_FREE, EG_LOCAL);
}

static void in_icmp_short_quote(struct pb *p)
{
	pb_fill(p, 4, 0);
	pb_ip(p, EG_LOCAL, ORIGIN, IPPROTO_UDP, 99, 0, 1);
	pb_icmp(p, SU_ICMP_DEST_UNREACH, 3, 0, 0);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_ICMP, 5, 0, 250);
	frame(p);
}

static void in_icmp_quote_proto(struct pb *p)
{
	pb_fill(p, 8, 0);
	pb_ip(p, EG_LOCAL, ORIGIN, 47, 99, 0, 1);
	pb_icmp(p, SU_ICMP_DEST_UNREACH, 2, 0, 0);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_ICMP, 5, 0, 250);
	frame(p);
}

static void echo(struct pb *p, uint8_t type, uint16_t id)
{
	pb_fill(p, 56, 0x77);
	pb_icmp(p, type, 0, id, 3);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_ICMP, 0x99, 0, 55);
	frame(p);
}

static void in_echo_reply(struct pb *p) { echo(p, SU_ICMP_ECHOREPLY, PORT_A + 2); }
static void in_echo_request(struct pb *p) { echo(p, SU_ICMP_ECHO, PORT_A + 2); }

static void in_icmp_trunc(struct pb *p)
{
	pb_fill(p, 4, 0);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_ICMP, 1, 0, 55);
	frame(p);
}

/* Fragments: datagram id 0x7777, UDP to PORT_B, split at 1208 bytes. */
static void in_frag_first(struct pb *p)
{
	pb_fill(p, 1200, 0x31);
	pb_udp(p, 53, PORT_B);
	/* UDP length covers the whole datagram, not this fragment. */
	((pb_udphdr *)pb_data(p))->len = htons(2000);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0x7777, PB_MF, 60);
	frame(p);
}

static void in_frag_later(struct pb *p)
{
	pb_fill(p, 520, 0x32);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0x7777, 151, 60);
	frame(p);
}

static void in_frag_unknown(struct pb *p)
{
	pb_fill(p, 520, 0x33);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0x8888, 185, 60);
	frame(p);
}

static void in_frag_tiny(struct pb *p)
{
	pb_fill(p, 4, 0x34);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0x9999, PB_MF, 60);
	frame(p);
}

static void in_gre(struct pb *p)
{
	pb_fill(p, 24, 0);
	pb_ip(p, ORIGIN, EG_LOCAL, 47, 1, 0, 60);
	frame(p);
}

/* Malformed layers.  Each starts from a good TCP packet to EG_LOCAL. */
static pb_iphdr *good_ip(struct pb *p, uint32_t dst)
{
	tcp_to(p, dst, PORT_A);
	return (pb_iphdr *)(pb_data(p) + 14);
}

static void recsum(pb_iphdr *ip)
{
	ip->check = 0;
	ip->check = su_csum(ip, 20);
}

static void recsum7(pb_iphdr *ip)
{
	ip->check = 0;
	ip->check = su_csum(ip, ip->ihl * 4);
}

static void in_ihl_small(struct pb *p)
{
	pb_iphdr *ip = good_ip(p, EG_LOCAL);

	ip->ihl = 4;
}

static void in_ihl_small_remote(struct pb *p)
{
	pb_iphdr *ip = good_ip(p, EG_B);

	ip->ihl = 4;
}

static void in_totlen_small(struct pb *p)
{
	pb_iphdr *ip = good_ip(p, EG_LOCAL);

	ip->tot_len = htons(16);
	recsum(ip);
}

static void in_totlen_big(struct pb *p)
{
	pb_iphdr *ip = good_ip(p, EG_LOCAL);

	ip->tot_len = htons(ntohs(ip->tot_len) + 1);
	recsum(ip);
}

static void in_ihl_beyond(struct pb *p)
{
	pb_iphdr *ip = pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_TCP, 1, 0, 60);

	ip->ihl = 15;
	ip->tot_len = htons(60);
	recsum(ip);
	frame(p);
}

static void in_tcp_trunc(struct pb *p)
{
	pb_bytes(p, (uint16_t[]){ htons(443), htons(PORT_A) }, 4);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_TCP, 1, 0, 60);
	frame(p);
}

static void in_tcp_doff(struct pb *p)
{
	pb_tcp(p, 443, PORT_A);
	((pb_tcphdr *)pb_data(p))->doff = 2;
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_TCP, 1, 0, 60);
	frame(p);
}

static void in_tcp_doff_beyond(struct pb *p)
{
	pb_tcp(p, 443, PORT_A);
	((pb_tcphdr *)pb_data(p))->doff = 15;
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_TCP, 1, 0, 60);
	frame(p);
}

static void in_udp_len_small(struct pb *p)
{
	pb_fill(p, 8, 0);
	pb_udp(p, 53, PORT_A);
	((pb_udphdr *)pb_data(p))->len = htons(7);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 1, 0, 60);
	frame(p);
}

static void in_udp_len_big(struct pb *p)
{
	pb_fill(p, 8, 0);
	pb_udp(p, 53, PORT_A);
	((pb_udphdr *)pb_data(p))->len = htons(17);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 1, 0, 60);
	frame(p);
}

static void in_udp_trunc(struct pb *p)
{
	pb_bytes(p, (uint16_t[]){ htons(53), htons(PORT_A), htons(8) }, 6);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 1, 0, 60);
	frame(p);
}

/* MTU: 1480-byte IP packets become 1508 bytes on a 1500-byte link. */
static void big_tcp(struct pb *p, uint16_t frag)
{
	pb_fill(p, 1440, 0x42);
	pb_tcp(p, 443, PORT_A);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_TCP, 0x2222, frag, 57);
	frame(p);
}

static void in_big_df(struct pb *p) { big_tcp(p, PB_DF); }
static void in_big_nodf(struct pb *p) { big_tcp(p, 0); }

/* Backbone: GUE from a router to 10.0.0.1:6080 wrapping `inner`. */
static void backbone(struct pb *p, uint32_t from, build_fn inner, uint16_t port)
{
	struct pb t;

	pb_init(&t);
	inner(&t);
	pb_bytes(p, pb_data(&t) + 14, pb_len(&t) - 14);
	pb_udp(p, 50000, port);
	pb_ip(p, from, ROUTER, IPPROTO_UDP, 0, PB_DF, 62);
	pb_eth(p, MAC_SU1, MAC_GW1, ETH_P_IP);
}

static void in_bb_local(struct pb *p) { backbone(p, ROUTER_B, in_tcp_local_a, GUE); }
static void in_bb_icmp(struct pb *p) { backbone(p, ROUTER_B, in_icmp_frag_needed, GUE); }
static void in_bb_loop(struct pb *p) { backbone(p, ROUTER_B, in_tcp_remote_c, GUE); }
static void in_bb_foreign(struct pb *p) { backbone(p, STRANGER, in_tcp_local_a, GUE); }
static void in_bb_not_egress(struct pb *p) { backbone(p, ROUTER_B, in_not_egress, GUE); }
static void in_bb_other_port(struct pb *p) { backbone(p, ROUTER_B, in_tcp_local_a, 4789); }
static void in_bb_runt(struct pb *p) { backbone(p, ROUTER_B, in_runt_ip, GUE); }
static void in_bb_inner_bad(struct pb *p) { backbone(p, ROUTER_B, in_ihl_small, GUE); }
static void in_bb_noslice(struct pb *p) { backbone(p, ROUTER_B, in_tcp_free, GUE); }


/* ---- egress IPs carry return traffic only ---- */

static void tcp_flags_to(struct pb *p, uint32_t dst, uint8_t flags, uint16_t frag)
{
	pb_fill(p, 40, 0xab);
	pb_tcp(p, 443, PORT_A);
	((uint8_t *)pb_data(p))[13] = flags;
	pb_ip(p, ORIGIN, dst, IPPROTO_TCP, 0x1234, frag, 57);
	frame(p);
}

static void in_syn_local(struct pb *p) { tcp_flags_to(p, EG_LOCAL, SU_TCP_SYN, PB_DF); }
static void in_syn_remote(struct pb *p) { tcp_flags_to(p, EG_C, SU_TCP_SYN, PB_DF); }
static void in_syn_fin(struct pb *p) { tcp_flags_to(p, EG_LOCAL, SU_TCP_SYN | SU_TCP_FIN, PB_DF); }
static void in_syn_first_frag(struct pb *p) { tcp_flags_to(p, EG_LOCAL, SU_TCP_SYN, PB_MF); }
static void in_fin_probe(struct pb *p) { tcp_flags_to(p, EG_LOCAL, SU_TCP_FIN, PB_DF); }
static void in_null_probe(struct pb *p) { tcp_flags_to(p, EG_LOCAL, 0, PB_DF); }
static void in_xmas_remote(struct pb *p) { tcp_flags_to(p, EG_B, 0x29, PB_DF); }
static void in_syn_ack(struct pb *p) { tcp_flags_to(p, EG_LOCAL, SU_TCP_SYN | SU_TCP_ACK, PB_DF); }
static void in_rst(struct pb *p) { tcp_flags_to(p, EG_LOCAL, SU_TCP_RST, PB_DF); }

/* A first fragment with the ports but not the flags (RFC 1858). */
static void in_tcp_tiny_first(struct pb *p)
{
	pb_bytes(p, (uint16_t[]){ htons(443), htons(PORT_A), 0, 0, 0, 0 }, 12);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_TCP, 0x4545, PB_MF, 57);
	frame(p);
}

/* GUE from the Internet straight to a server, claiming a router's source. */
static void gue_to(struct pb *p, uint32_t src, uint32_t dst, uint16_t port)
{
	struct pb t;

	pb_init(&t);
	in_tcp_local_a(&t);
	pb_bytes(p, pb_data(&t) + 14, pb_len(&t) - 14);
	pb_udp(p, 50000, port);
	pb_ip(p, src, dst, IPPROTO_UDP, 0, PB_DF, 62);
	frame(p);
}

/* A live move's second hop (issue 10): GUE variant 0 with the softunicast
 * private word ("SU2H"), from a slice's new owner (a server of another DC,
 * unknown here) to its previous owner SRV_A. */
static void second_hop_to(struct pb *p, uint32_t inner_dst, char word_end)
{
	static const uint8_t mark[8] = { 0x01, 4, 0, 0, 'S', 'U', '2', 'H' };
	struct pb t;
	uint8_t *g;

	pb_init(&t);
	in_tcp_local_a(&t);
	pb_bytes(p, pb_data(&t) + 14, pb_len(&t) - 14);
	((pb_iphdr *)pb_data(p))->daddr = htonl(inner_dst);
	g = pb_push(p, 8);
	memcpy(g, mark, 8);
	g[7] = (uint8_t)word_end;
	pb_udp(p, 50000, GUE);
	pb_ip(p, IP4(10, 2, 1, 7), SRV_A, IPPROTO_UDP, 0, PB_DF, 62);
	frame(p);
}

static void in_second_hop(struct pb *p) { second_hop_to(p, EG_B, 'H'); }
static void in_second_hop_not_egress(struct pb *p) { second_hop_to(p, NOT_EGRESS, 'H'); }
static void in_second_hop_other_word(struct pb *p) { second_hop_to(p, EG_B, 'X'); }
static void in_gue_injected_router_src(struct pb *p) { gue_to(p, ROUTER_B, SRV_A, GUE); }
static void in_gue_injected_server_src(struct pb *p) { gue_to(p, SRV_B, SRV_A, GUE); }
static void in_gue_injected_origin(struct pb *p) { gue_to(p, ORIGIN, NOT_EGRESS, GUE); }
static void in_udp_to_server(struct pb *p) { gue_to(p, ORIGIN, SRV_A, 4789); }
static void in_spoof_self(struct pb *p) { gue_to(p, ROUTER, SRV_A, 4789); }

/* Non-GUE TCP from src to dst, arriving on su1 (the backbone side) or su0
 * (Internet and DC side). */
static void tcp_from(struct pb *p, uint32_t src, uint32_t dst, int on_backbone)
{
	pb_fill(p, 20, 0xcd);
	pb_tcp(p, 443, PORT_A);
	pb_ip(p, src, dst, IPPROTO_TCP, 0x4321, PB_DF, 60);
	if (on_backbone)
		pb_eth(p, MAC_SU1, MAC_GW1, ETH_P_IP);
	else
		frame(p);
}

static void in_server_src_bb(struct pb *p) { tcp_from(p, SRV_A, NOT_EGRESS, 1); }
static void in_server_src_bb_egress(struct pb *p) { tcp_from(p, SRV_B, EG_LOCAL, 1); }
static void in_egress_src_bb(struct pb *p) { tcp_from(p, EG_LOCAL, NOT_EGRESS, 1); }
static void in_remote_egress_src_bb(struct pb *p) { tcp_from(p, EG_B, NOT_EGRESS, 1); }
static void in_router_src_edge(struct pb *p) { tcp_from(p, ROUTER_C, EG_LOCAL, 0); }
static void in_router_src_edge_pass(struct pb *p) { tcp_from(p, ROUTER_C, NOT_EGRESS, 0); }
static void in_server_src_edge(struct pb *p) { tcp_from(p, SRV_A, NOT_EGRESS, 0); }
static void in_egress_src_edge(struct pb *p) { tcp_from(p, EG_LOCAL, NOT_EGRESS, 0); }
static void in_router_src_bb(struct pb *p) { tcp_from(p, ROUTER_C, NOT_EGRESS, 1); }

/* ---- the tunnel ---- */

static void in_tos(struct pb *p)
{
	tcp_to(p, EG_LOCAL, PORT_A);
	pb_iphdr *ip = (void *)(pb_data(p) + 14);

	ip->tos = 0xbb; /* DSCP 46 (EF) + ECN CE */
	recsum(ip);
}

static void in_bb_tos(struct pb *p) { backbone(p, ROUTER_B, in_tos, GUE); }
static void in_bb_syn(struct pb *p) { backbone(p, ROUTER_B, in_syn_local, GUE); }

/* Outer fragments of GUE from B's router. */
static void in_bb_gue_first_frag(struct pb *p)
{
	backbone(p, ROUTER_B, in_tcp_local_a, GUE);
	pb_iphdr *ip = (void *)(pb_data(p) + 14);

	ip->frag_off = htons(PB_MF);
	recsum(ip);
}

static void in_bb_gue_later_frag(struct pb *p)
{
	pb_fill(p, 200, 0x61);
	pb_ip(p, ROUTER_B, ROUTER, IPPROTO_UDP, 0x5151, 100, 62);
	pb_eth(p, MAC_SU1, MAC_GW1, ETH_P_IP);
}

/* ICMP frag-needed from a hop toward SRV_C, about our GUE, `mtu`. */
static void ptb_about(struct pb *p, uint32_t qsrc, uint32_t qdst, uint16_t mtu)
{
	pb_fill(p, 8, 0);
	pb_udp(p, 50000, GUE);
	((pb_udphdr *)pb_data(p))->len = htons(1480);
	pb_ip(p, qsrc, qdst, IPPROTO_UDP, 0, PB_DF, 63);
	((pb_iphdr *)pb_data(p))->tot_len = htons(1500);
	recsum((pb_iphdr *)pb_data(p));
	pb_icmp(p, SU_ICMP_DEST_UNREACH, SU_ICMP_FRAG_NEEDED, 0, mtu);
	((struct su_icmphdr *)pb_data(p))->check = su_csum(pb_data(p), pb_len(p));
	pb_ip(p, IP4(10, 0, 0, 2), ROUTER, IPPROTO_ICMP, 0, 0, 64);
	frame(p);
}

static void in_ptb_srv_c(struct pb *p) { ptb_about(p, ROUTER, SRV_C, 1400); }
static void in_ptb_unknown_target(struct pb *p) { ptb_about(p, ROUTER, IP4(10, 1, 9, 9), 1400); }
static void in_ptb_not_ours(struct pb *p) { ptb_about(p, STRANGER, SRV_C, 1400); }
static void in_tcp_srv_c(struct pb *p) { tcp_to(p, EG_LOCAL, PORT_C); }

/* 1400 inner bytes: fit the 1500 link (1428), not the 1400 tunnel. */
static void in_mid_df_srv_c(struct pb *p)
{
	pb_fill(p, 1360, 0x43);
	pb_tcp(p, 443, PORT_C);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_TCP, 0x2323, PB_DF, 57);
	frame(p);
}


/* ---- ICMP and fragments by the RFCs ---- */

/* A first fragment (small) and a later one with DF that does not fit. */
static void in_big_frag_first(struct pb *p)
{
	pb_fill(p, 200, 0x51);
	pb_udp(p, 53, PORT_B);
	((pb_udphdr *)pb_data(p))->len = htons(3000);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0x6161, PB_MF, 60);
	frame(p);
}

static void in_big_frag_later_df(struct pb *p)
{
	pb_fill(p, 1480, 0x52);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0x6161, PB_DF | 26, 60);
	frame(p);
}

/* An ICMP error that is itself too big (a long quote), DF set. */
static void in_big_icmp_error(struct pb *p)
{
	pb_fill(p, 1440, 0x53);
	pb_udp(p, PORT_A, 53);
	pb_ip(p, EG_LOCAL, ORIGIN, IPPROTO_UDP, 99, PB_DF, 1);
	pb_icmp(p, SU_ICMP_DEST_UNREACH, 3, 0, 0);
	pb_ip(p, IP4(192, 0, 2, 254), EG_LOCAL, IPPROTO_ICMP, 5, PB_DF, 250);
	frame(p);
}

static void big_from(struct pb *p, uint32_t src)
{
	pb_fill(p, 1440, 0x54);
	pb_tcp(p, 443, PORT_A);
	pb_ip(p, src, EG_LOCAL, IPPROTO_TCP, 0x2424, PB_DF, 57);
	frame(p);
}

static void in_big_from_zero(struct pb *p) { big_from(p, 0); }
static void in_big_from_multicast(struct pb *p) { big_from(p, IP4(224, 0, 0, 9)); }
static void in_big_from_loopback(struct pb *p) { big_from(p, IP4(127, 0, 0, 1)); }

/* DF, too big, 8 bytes of IP options (two NOPs... and a 4-byte option). */
static void in_big_df_options(struct pb *p)
{
	uint8_t opt[8] = { 1, 1, 0x94, 4, 0, 0, 1, 0 }; /* NOP NOP router-alert EOL */

	pb_fill(p, 1432, 0x55);
	pb_tcp(p, 443, PORT_A);
	pb_bytes(p, opt, sizeof(opt));
	pb_iphdr *ip = pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_TCP, 0x2525, PB_DF, 57);

	ip->ihl = 7;
	/* pb_ip counted the options as payload: the length is right as is. */
	recsum7(ip);
	frame(p);
}


/* A later fragment before its first, then its first. */
static void in_early_later(struct pb *p)
{
	pb_fill(p, 520, 0x35);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0xabab, 151, 60);
	frame(p);
}

static void in_early_first(struct pb *p)
{
	pb_fill(p, 1200, 0x36);
	pb_udp(p, 53, PORT_B);
	((pb_udphdr *)pb_data(p))->len = htons(2000);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0xabab, PB_MF, 60);
	frame(p);
}

/* ---- expected outputs ---- */

/* Independent of the program: the inner flow as the fixture built it. */
static struct su_flow inner_flow(const uint8_t *ip)
{
	const pb_iphdr *h = (const void *)ip;
	struct su_flow f = { .src = h->saddr, .dst = h->daddr, .proto = h->protocol };
	uint16_t frag = ntohs(h->frag_off);

	f.frag = frag & SU_IP_OFFSET ? SU_FRAG_LATER : frag & SU_IP_MF ? SU_FRAG_FIRST : 0;
	if (!f.frag && (h->protocol == IPPROTO_TCP || h->protocol == IPPROTO_UDP)) {
		memcpy(&f.sport, ip + h->ihl * 4, 2);
		memcpy(&f.dport, ip + h->ihl * 4 + 2, 2);
	}
	return f;
}

static void expect_encap(struct pb *out, const struct pb *in, uint32_t target, int via,
			 int keep_macs)
{
	size_t off = 14;
	const pb_iphdr *outer = (const void *)(pb_data(in) + 14);
	const pb_iphdr *inner;
	struct su_flow f;

	if (outer->daddr == htonl(ROUTER))
		off += 28; /* backbone: the old outer header goes */
	inner = (const void *)(pb_data(in) + off);
	f = inner_flow((const uint8_t *)inner);
	pb_init(out);
	pb_bytes(out, inner, pb_len(in) - off);
	pb_udp(out, ntohs(su_flow_sport(&f)), GUE);
	((pb_udphdr *)pb_data(out))->len = htons(ntohs(inner->tot_len) + 8);
	/* RFC 6040 normal mode: the outer TOS is the inner one.  The outer
	 * ID is 0 for DF (atomic) packets, the router's own otherwise:
	 * run_fixture() adopts it from the output (see outer_id_unique). */
	pb_iphdr *oip = pb_ip(out, ROUTER, target, IPPROTO_UDP, 0,
			      ntohs(inner->frag_off) & SU_IP_DF, 64);
	oip->tos = inner->tos;
	recsum(oip);
	if (pb_len(out) != (size_t)ntohs(inner->tot_len) + 28) { /* padded frame */
		pb_iphdr *ip = (void *)pb_data(out);

		ip->tot_len = htons(ntohs(inner->tot_len) + 28);
		recsum(ip);
	}
	if (keep_macs)
		pb_bytes(out, pb_data(in), 14);
	else
		pb_eth(out, via ? MAC_GW1 : MAC_GW0, via ? MAC_SU1 : MAC_SU0, ETH_P_IP);
}

/* ICMP frag-needed from the egress IP back to the origin: MTU announced
 * `mtu`, quoting the whole inner IP header (options too) + 8 bytes. */
static void expect_icmp_frag(struct pb *out, const struct pb *in, uint16_t mtu)
{
	const pb_iphdr *inner = (const void *)(pb_data(in) + 14);
	size_t qlen = inner->ihl * 4 + 8;

	pb_init(out);
	pb_bytes(out, pb_data(in) + 14, qlen);
	pb_icmp(out, SU_ICMP_DEST_UNREACH, SU_ICMP_FRAG_NEEDED, 0, mtu);
	((struct su_icmphdr *)pb_data(out))->check = su_csum(pb_data(out), 8 + qlen);
	pb_iphdr *ip = pb_ip(out, ntohl(inner->daddr), ntohl(inner->saddr), IPPROTO_ICMP, 0, 0, 64);
	ip->tos = 0xc0;
	recsum(ip);
	pb_eth(out, MAC_GW0, MAC_SU0, ETH_P_IP);
}

static void expect_frag_needed(struct pb *out, const struct pb *in)
{
	expect_icmp_frag(out, in, 1500 - 28);
}

static void expect_frag_needed_1400(struct pb *out, const struct pb *in)
{
	expect_icmp_frag(out, in, 1400 - 28);
}

#define S(...) .stats = { __VA_ARGS__ }, .n_stats = sizeof((int[]){ __VA_ARGS__ }) / sizeof(int)
#define ENCAP(t, v) .out = OUT_ENCAP, .target = (t), .via = (v)

static const struct fixture fixtures[] = {
	/* local slices */
	{ "TCP to a local egress IP goes to the slice owner", in_tcp_local_a, XDP_TX,
	  ENCAP(SRV_A, 0), S(SU_STAT_FWD_LOCAL) },
	{ "UDP to the next slice goes to its other owner", in_udp_local_b, XDP_TX,
	  ENCAP(SRV_B, 0), S(SU_STAT_FWD_LOCAL) },
	{ "Ethernet padding is carried, lengths follow the IP header", in_udp_padded, XDP_TX,
	  ENCAP(SRV_A, 0), S(SU_STAT_FWD_LOCAL) },
	{ "port in a free slice is dropped", in_tcp_free, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_NO_SLICE) },
	{ "port below the sliced range is dropped", in_tcp_low, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_NO_SLICE) },
	{ "port 65535 in the last slice, unowned, is dropped", in_tcp_top, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_NO_SLICE) },
	{ "unknown protocol to an egress IP is dropped", in_gre, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_PROTO) },
	/* remote DCs */
	{ "IP owned by DC B goes to B's router (same link: XDP_TX)", in_tcp_remote_b, XDP_TX,
	  ENCAP(ROUTER_B, 0), S(SU_STAT_FWD_REMOTE) },
	{ "IP owned by DC C goes to C's router over the backbone (XDP_REDIRECT)",
	  in_tcp_remote_c, XDP_REDIRECT, ENCAP(ROUTER_C, 1), S(SU_STAT_FWD_REMOTE) },
	{ "malformed IP header to a remote IP is dropped, not carried", in_ihl_small_remote,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_L3_BAD) },
	/* backbone */
	{ "backbone GUE from B's router is decapsulated and dispatched", in_bb_local,
	  XDP_REDIRECT,
	  ENCAP(SRV_A, 0), S(SU_STAT_BACKBONE_IN, SU_STAT_FWD_LOCAL) },
	{ "backbone ICMP error is dispatched by its quote", in_bb_icmp, XDP_REDIRECT,
	  ENCAP(SRV_B, 0), S(SU_STAT_BACKBONE_IN, SU_STAT_ICMP_ERROR, SU_STAT_FWD_LOCAL) },
	{ "backbone packet for a third DC's IP is refused (no loop)", in_bb_loop, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_BACKBONE_IN, SU_STAT_DROP_LOOP) },
	{ "GUE from a sender that is not a plan router is dropped", in_bb_foreign, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_FOREIGN) },
	{ "backbone packet whose inner IP is not an egress IP is dropped", in_bb_not_egress,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_BACKBONE_BAD) },
	{ "backbone packet with a truncated inner header is dropped", in_bb_runt, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_BACKBONE_BAD) },
	{ "backbone packet with a malformed inner header is dropped", in_bb_inner_bad,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_BACKBONE_IN, SU_STAT_DROP_L3_BAD) },
	{ "backbone packet to a free slice is dropped", in_bb_noslice, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_BACKBONE_IN, SU_STAT_DROP_NO_SLICE) },
	{ "UDP to the router on another port is the kernel's", in_bb_other_port, XDP_PASS,
	  .out = OUT_SAME, S(SU_STAT_PASS) },
	/* ICMP */
	{ "port unreachable quoting UDP goes to the quoted source port's owner",
	  in_icmp_port_unreach, XDP_TX, ENCAP(SRV_A, 0),
	  S(SU_STAT_ICMP_ERROR, SU_STAT_FWD_LOCAL) },
	{ "fragmentation needed quoting TCP goes to its owner", in_icmp_frag_needed, XDP_TX,
	  ENCAP(SRV_B, 0), S(SU_STAT_ICMP_ERROR, SU_STAT_FWD_LOCAL) },
	{ "time exceeded quoting an echo request goes by its identifier",
	  in_icmp_time_exceeded, XDP_TX, ENCAP(SRV_A, 0),
	  S(SU_STAT_ICMP_ERROR, SU_STAT_FWD_LOCAL) },
	{ "parameter problem quoting TCP goes to its owner", in_icmp_param_problem, XDP_TX,
	  ENCAP(SRV_A, 0), S(SU_STAT_ICMP_ERROR, SU_STAT_FWD_LOCAL) },
	{ "ICMP error quoting another source address is dropped", in_icmp_wrong_quote,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_ICMP_QUOTE) },
	{ "ICMP error quoting fewer than 8 L4 bytes is dropped", in_icmp_short_quote,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_ICMP_QUOTE) },
	{ "ICMP error quoting an unknown protocol is dropped", in_icmp_quote_proto, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_ICMP_QUOTE) },
	{ "ICMP error quoting a free slice is dropped", in_icmp_quote_free_slice, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_NO_SLICE) },
	{ "echo reply goes by identifier", in_echo_reply, XDP_TX, ENCAP(SRV_A, 0),
	  S(SU_STAT_ICMP_ECHO, SU_STAT_FWD_LOCAL) },
	{ "echo request to an egress IP is dropped", in_echo_request, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_ICMP_TYPE) },
	{ "truncated ICMP header is dropped", in_icmp_trunc, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_L4_TRUNC) },
	/* fragments (order matters: the first fragment teaches the LRU) */
	{ "first fragment goes by port and is remembered", in_frag_first, XDP_TX,
	  ENCAP(SRV_B, 0), S(SU_STAT_FRAG_FIRST, SU_STAT_FWD_LOCAL) },
	{ "later fragment follows its first", in_frag_later, XDP_TX, ENCAP(SRV_B, 0),
	  S(SU_STAT_FRAG_LATER, SU_STAT_FWD_LOCAL) },
	{ "later fragment of an unseen datagram is dropped", in_frag_unknown, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_FRAG_UNKNOWN) },
	{ "first fragment too short for ports is dropped", in_frag_tiny, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_L4_TRUNC) },
	/* malformed and truncated, layer by layer */
	{ "IPv4 header shorter than 20 bytes is passed (no destination)", in_runt_ip,
	  XDP_PASS, .out = OUT_SAME, S(SU_STAT_PASS) },
	{ "IHL below 5 is dropped", in_ihl_small, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_L3_BAD) },
	{ "total length below the header length is dropped", in_totlen_small, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_L3_BAD) },
	{ "total length beyond the frame is dropped", in_totlen_big, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_L3_TRUNC) },
	{ "IP options beyond the frame are dropped", in_ihl_beyond, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_L3_TRUNC) },
	{ "TCP header cut after the ports is dropped", in_tcp_trunc, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_L4_TRUNC) },
	{ "TCP data offset below 5 is dropped", in_tcp_doff, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_L4_BAD) },
	{ "TCP data offset beyond the packet is dropped", in_tcp_doff_beyond, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_L4_BAD) },
	{ "UDP header cut short is dropped", in_udp_trunc, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_L4_TRUNC) },
	{ "UDP length below 8 is dropped", in_udp_len_small, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_L4_BAD) },
	{ "UDP length beyond the IP packet is dropped", in_udp_len_big, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_L4_BAD) },
	/* not ours */
	{ "IPv4 to a non-egress address is passed untouched", in_not_egress, XDP_PASS,
	  .out = OUT_SAME, S(SU_STAT_PASS) },
	{ "ARP is passed untouched", in_arp, XDP_PASS, .out = OUT_SAME, S(SU_STAT_PASS) },
	{ "IPv6 is passed untouched", in_ipv6, XDP_PASS, .out = OUT_SAME, S(SU_STAT_PASS) },
	/* MTU and next hops */
	{ "too big with DF: ICMP fragmentation needed with the reduced MTU", in_big_df, XDP_TX,
	  .out = OUT_CUSTOM, .expect = expect_frag_needed, S(SU_STAT_ICMP_FRAG_SENT) },
	{ "too big without DF: counted and dropped", in_big_nodf, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_MTU) },
	{ "unresolved next hop: encapsulated and handed to the kernel", in_tcp_noneigh,
	  XDP_PASS, .out = OUT_NEIGH_MISS, .target = SRV_NONEIGH, S(SU_STAT_NEIGH_MISS) },
	{ "no route to the server: dropped", in_tcp_noroute, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_FIB) },
	/* unsolicited traffic to egress IPs (issue 8 §1) */
	{ "unsolicited: SYN without ACK to a local egress IP is refused", in_syn_local, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_TCP_SYN) },
	{ "unsolicited: SYN to another DC's IP is refused before the backbone", in_syn_remote,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_TCP_SYN) },
	{ "unsolicited: SYN arriving over the backbone is refused", in_bb_syn, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_BACKBONE_IN, SU_STAT_DROP_TCP_SYN) },
	{ "unsolicited: SYN+FIN is a SYN without ACK", in_syn_fin, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_TCP_SYN) },
	{ "unsolicited: SYN in a first fragment is refused", in_syn_first_frag, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_TCP_SYN) },
	{ "unsolicited: FIN probe (no ACK, no RST) is refused", in_fin_probe, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_TCP_NO_ACK) },
	{ "unsolicited: NULL probe is refused", in_null_probe, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_TCP_NO_ACK) },
	{ "unsolicited: XMAS probe to another DC's IP is refused", in_xmas_remote, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_TCP_NO_ACK) },
	{ "unsolicited: a first fragment without the TCP flags is dropped (RFC 1858)",
	  in_tcp_tiny_first, XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_L4_TRUNC) },
	{ "reply: SYN-ACK is delivered", in_syn_ack, XDP_TX, ENCAP(SRV_A, 0),
	  S(SU_STAT_FWD_LOCAL) },
	{ "reply: RST without ACK is delivered", in_rst, XDP_TX, ENCAP(SRV_A, 0),
	  S(SU_STAT_FWD_LOCAL) },
	/* edge anti-spoofing */
	{ "spoof: GUE to a server with a plan router's source is dropped",
	  in_gue_injected_router_src, XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_SPOOF_ROUTER) },
	{ "spoof: GUE to a server with a plan server's source is dropped",
	  in_gue_injected_server_src, XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_GUE_INJECTED) },
	{ "spoof: GUE to any other host is dropped", in_gue_injected_origin, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_GUE_INJECTED) },
	{ "second hop: marked GUE around a packet to a plan egress IP is routed, untouched",
	  in_second_hop, XDP_PASS, .out = OUT_SAME, S(SU_STAT_SECOND_HOP) },
	{ "spoof: the second-hop mark around a packet to another address is dropped",
	  in_second_hop_not_egress, XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_GUE_INJECTED) },
	{ "spoof: GUE variant 0 with another private word is dropped", in_second_hop_other_word,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_GUE_INJECTED) },
	{ "spoof: this router's own address as source is dropped", in_spoof_self, XDP_DROP,
	  .out = OUT_NONE, S(SU_STAT_DROP_SPOOF_SELF) },
	{ "spoof: other UDP to a server is the kernel's", in_udp_to_server, XDP_PASS,
	  .out = OUT_SAME, S(SU_STAT_PASS) },
	/* plan addresses as sources, by the side they arrive on (su0: DC, su1:
	 * backbone; su_ifroles as the loader writes it from the routes) */
	{ "spoof: a DC server's source on the backbone side is dropped", in_server_src_bb,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_SPOOF_SERVER) },
	{ "spoof: a DC server's source to an egress IP on the backbone side is dropped",
	  in_server_src_bb_egress, XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_SPOOF_SERVER) },
	{ "spoof: this DC's egress IP as source on the backbone side is dropped", in_egress_src_bb,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_SPOOF_EGRESS) },
	{ "spoof: another DC's egress IP as source on the backbone side is the kernel's "
	  "(its servers' traffic)", in_remote_egress_src_bb, XDP_PASS, .out = OUT_SAME,
	  S(SU_STAT_PASS) },
	{ "spoof: a peer router's source (not GUE) on the DC side is dropped", in_router_src_edge,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_SPOOF_ROUTER) },
	{ "spoof: a peer router's source on the DC side is dropped, whatever the destination",
	  in_router_src_edge_pass, XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_SPOOF_ROUTER) },
	{ "spoof: a DC server's source on the DC side is the kernel's", in_server_src_edge,
	  XDP_PASS, .out = OUT_SAME, S(SU_STAT_PASS) },
	{ "spoof: an egress IP as source on the DC side is the kernel's", in_egress_src_edge,
	  XDP_PASS, .out = OUT_SAME, S(SU_STAT_PASS) },
	{ "spoof: a peer router's source on the backbone side is the kernel's", in_router_src_bb,
	  XDP_PASS, .out = OUT_SAME, S(SU_STAT_PASS) },
	/* the tunnel (issue 8 §3) */
	{ "tunnel: inner DSCP and ECN are copied to the outer header (RFC 6040)", in_tos, XDP_TX,
	  ENCAP(SRV_A, 0), S(SU_STAT_FWD_LOCAL) },
	{ "tunnel: re-encapsulation from the backbone keeps the inner TOS", in_bb_tos,
	  XDP_REDIRECT, ENCAP(SRV_A, 0), S(SU_STAT_BACKBONE_IN, SU_STAT_FWD_LOCAL) },
	{ "tunnel: fragmented GUE (first) from a plan router is a named drop",
	  in_bb_gue_first_frag, XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_GUE_FRAG) },
	{ "tunnel: fragmented GUE (later) from a plan router is a named drop",
	  in_bb_gue_later_frag, XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_GUE_FRAG) },
	{ "tunnel PMTU: a first packet makes SRV_C a target", in_tcp_srv_c, XDP_TX,
	  ENCAP(SRV_C, 0), S(SU_STAT_FWD_LOCAL) },
	{ "tunnel PMTU: frag-needed about a target we never sent to is ignored",
	  in_ptb_unknown_target, XDP_PASS, .out = OUT_SAME, S(SU_STAT_PASS) },
	{ "tunnel PMTU: frag-needed quoting another source is ignored", in_ptb_not_ours,
	  XDP_PASS, .out = OUT_SAME, S(SU_STAT_PASS) },
	{ "tunnel PMTU: frag-needed about our GUE lowers the target's MTU", in_ptb_srv_c,
	  XDP_PASS, .out = OUT_SAME, S(SU_STAT_PASS, SU_STAT_TUNNEL_PMTU) },
	{ "tunnel PMTU: a DF packet over it is answered with the tunnel MTU - 28",
	  in_mid_df_srv_c, XDP_TX, .out = OUT_CUSTOM, .expect = expect_frag_needed_1400,
	  S(SU_STAT_ICMP_FRAG_SENT) },
	/* ICMP and fragments by the RFCs (issue 8 §4) */
	{ "no ICMP about a later fragment: first fragment", in_big_frag_first, XDP_TX,
	  ENCAP(SRV_B, 0), S(SU_STAT_FRAG_FIRST, SU_STAT_FWD_LOCAL) },
	{ "no ICMP about a later fragment: too big with DF, dropped unanswered",
	  in_big_frag_later_df, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_FRAG_LATER, SU_STAT_DROP_MTU_NO_ICMP) },
	{ "no ICMP about an ICMP error: too big with DF, dropped unanswered", in_big_icmp_error,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_ICMP_ERROR, SU_STAT_DROP_MTU_NO_ICMP) },
	{ "no ICMP to source 0.0.0.0", in_big_from_zero, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_MTU_NO_ICMP) },
	{ "no ICMP to a multicast source", in_big_from_multicast, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_MTU_NO_ICMP) },
	{ "no ICMP to a loopback source", in_big_from_loopback, XDP_DROP, .out = OUT_NONE,
	  S(SU_STAT_DROP_MTU_NO_ICMP) },
	{ "frag-needed for a DF packet with IP options quotes the whole header",
	  in_big_df_options, XDP_TX, .out = OUT_CUSTOM, .expect = expect_frag_needed,
	  S(SU_STAT_ICMP_FRAG_SENT) },
	{ "early fragment: a later fragment before its first is dropped", in_early_later,
	  XDP_DROP, .out = OUT_NONE, S(SU_STAT_DROP_FRAG_UNKNOWN) },
	{ "early fragment: its first moves it from unknown to early", in_early_first, XDP_TX,
	  ENCAP(SRV_B, 0),
	  S(SU_STAT_FRAG_FIRST, SU_STAT_FWD_LOCAL, SU_STAT_DROP_FRAG_EARLY,
	    ~SU_STAT_DROP_FRAG_UNKNOWN) },
};

/* ---- harness ---- */

static int run_cmds(void)
{
	for (size_t i = 0; i < sizeof(setup_cmds) / sizeof(setup_cmds[0]); i++) {
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "%s >/dev/null 2>&1", setup_cmds[i]);
		if (system(cmd)) {
			fprintf(stderr, "# setup failed: %s\n", setup_cmds[i]);
			return -1;
		}
	}
	return 0;
}

static int write_sysctl(const char *path, const char *val)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fputs(val, f);
	return fclose(f) ? -errno : 0;
}

/* An egress IP: its route in su_ipv at an index of its own, su_ips -> that
 * index (the layout of src/bpf/abi.h; fixtures write before any packet runs,
 * so a plain update is enough here, the sync's seqcount writer is tested in
 * test_router_sync.c). */
static int set_ip(uint32_t ip, uint32_t router, uint32_t base, uint32_t flags)
{
	static uint32_t next;
	struct su_ipv e = { .ip = htonl(ip),
			    .v = { .router = htonl(router), .slot_base = base, .flags = flags } };
	__be32 k = htonl(ip);
	uint32_t idx;

	if (bpf_map__lookup_elem(skel->maps.su_ips, &k, sizeof(k), &idx, sizeof(idx), 0))
		idx = next++;
	return bpf_map__update_elem(skel->maps.su_ipv, &idx, sizeof(idx), &e, sizeof(e), BPF_ANY) ?:
	       bpf_map__update_elem(skel->maps.su_ips, &k, sizeof(k), &idx, sizeof(idx), BPF_ANY);
}

static int set_slot(uint32_t base, uint16_t port, uint32_t server)
{
	uint32_t idx = base + (port >> SHIFT) - FIRST;
	__be32 v = htonl(server);

	return bpf_map__update_elem(skel->maps.su_slots, &idx, sizeof(idx), &v, sizeof(v),
				    BPF_ANY);
}

/* su_ifroles as the loader writes it: su0 (Internet and DC), su1 (backbone). */
static int set_roles(uint32_t su0, uint32_t su1)
{
	struct su_ifrole r[2] = { { (uint32_t)ifindex0, su0 | SU_IF_KNOWN },
				  { (uint32_t)ifindex1, su1 | SU_IF_KNOWN } };
	int err = 0;

	for (uint32_t i = 0; i < 2; i++)
		err |= bpf_map__update_elem(skel->maps.su_ifroles, &i, sizeof(i), &r[i],
					    sizeof(r[i]), BPF_ANY);
	return err;
}

static int fill_maps(void)
{
	uint32_t routers[] = { ROUTER_B, ROUTER_C };
	uint32_t servers[] = { SRV_A, SRV_B, SRV_C, SRV_NONEIGH, SRV_NOROUTE, SRV_ECMP, SRV_BRIDGE };
	int err = 0;

	err |= set_ip(EG_LOCAL, 0, 0, SU_IP_LOCAL);
	err |= set_slot(0, PORT_A, SRV_A);
	err |= set_slot(0, PORT_B, SRV_B);
	err |= set_slot(0, PORT_C, SRV_C);
	err |= set_ip(EG_B, ROUTER_B, 0, 0);
	err |= set_ip(EG_C, ROUTER_C, 0, 0);
	err |= set_ip(EG_NONEIGH, 0, 2 * SPI, SU_IP_LOCAL);
	err |= set_slot(2 * SPI, PORT_A, SRV_NONEIGH);
	err |= set_ip(EG_NOROUTE, 0, 4 * SPI, SU_IP_LOCAL);
	err |= set_slot(4 * SPI, PORT_A, SRV_NOROUTE);
	err |= set_ip(EG_ECMP, 0, 6 * SPI, SU_IP_LOCAL);
	err |= set_slot(6 * SPI, PORT_A, SRV_ECMP);
	err |= set_ip(EG_BRIDGE, 0, 8 * SPI, SU_IP_LOCAL);
	err |= set_slot(8 * SPI, PORT_A, SRV_BRIDGE);
	for (uint32_t i = 0; i < 2; i++) {
		__be32 k = htonl(routers[i]);
		uint32_t kind = SU_HOST_ROUTER;

		err |= bpf_map__update_elem(skel->maps.su_routers, &k, sizeof(k), &i, sizeof(i),
					    BPF_ANY);
		err |= bpf_map__update_elem(skel->maps.su_hosts, &k, sizeof(k), &kind, sizeof(kind),
					    BPF_ANY);
	}
	for (size_t i = 0; i < sizeof(servers) / sizeof(servers[0]); i++) {
		__be32 k = htonl(servers[i]);
		uint32_t kind = SU_HOST_SERVER;

		err |= bpf_map__update_elem(skel->maps.su_hosts, &k, sizeof(k), &kind, sizeof(kind),
					    BPF_ANY);
	}
	err |= set_roles(SU_IF_DC, SU_IF_BACKBONE);
	return err ? -1 : 0;
}

static int group_setup(void **state)
{
	struct bpf_map *map;

	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "# unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return -1;
	}
	/* L4 multipath hash: the kernel picks a path per flow (ECMP test). */
	if (write_sysctl("/proc/sys/net/ipv4/ip_forward", "1") ||
	    write_sysctl("/proc/sys/net/ipv4/fib_multipath_hash_policy", "1") || run_cmds())
		return -1;
	ifindex0 = if_nametoindex("su0");
	ifindex1 = if_nametoindex("su1");
	skel = router__open();
	if (!skel)
		return -1;
	/* Fixtures own their maps: no pinning. */
	bpf_object__for_each_map(map, skel->obj)
		bpf_map__set_pin_path(map, NULL);
	skel->rodata->cfg_router = htonl(ROUTER);
	skel->rodata->cfg_gue_port = htons(GUE);
	skel->rodata->cfg_slice_shift = SHIFT;
	skel->rodata->cfg_first_slice = FIRST;
	skel->rodata->cfg_slices_per_ip = SPI;
	skel->rodata->cfg_icmp_rate = ICMP_RATE;
	if (router__load(skel)) {
		fprintf(stderr, "# router__load failed\n");
		return -1;
	}
	return fill_maps();
}

static int group_teardown(void **state)
{
	router__destroy(skel);
	return 0;
}

static void read_stats(uint64_t out[SU_STAT_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t vals[ncpu];

	for (uint32_t i = 0; i < SU_STAT_MAX; i++) {
		out[i] = 0;
		assert_int_equal(bpf_map__lookup_elem(skel->maps.su_stats, &i, sizeof(i), vals,
						      sizeof(vals), 0),
				 0);
		for (int c = 0; c < ncpu; c++)
			out[i] += vals[c];
	}
}

static void dump(const char *what, const uint8_t *b, size_t n)
{
	char line[3 * 16 + 1];

	print_message("# %s (%zu bytes)\n", what, n);
	for (size_t i = 0; i < n; i += 16) {
		size_t k = 0;

		for (size_t j = i; j < n && j < i + 16; j++)
			k += snprintf(line + k, sizeof(line) - k, "%02x ", b[j]);
		print_message("#   %04zx: %s\n", i, line);
	}
}

/* A DF-clear outer header carries an ID of the router's choosing (checked
 * by outer_id_unique): take it from what the program produced. */
static void adopt_outer_id(struct pb *want, const uint8_t *out, size_t out_len)
{
	pb_iphdr *ip = (void *)(pb_data(want) + 14);

	if (pb_len(want) < 34 || out_len < 34 || ip->frag_off & htons(SU_IP_DF))
		return;
	memcpy(&ip->id, out + 14 + 4, 2);
	recsum(ip);
}

static void run_fixture(void **state)
{
	const struct fixture *fx = *state;
	static struct pb in, want;
	static uint8_t out[PB_CAP + 512];
	uint64_t before[SU_STAT_MAX], after[SU_STAT_MAX];
	struct xdp_md ctx = { .ingress_ifindex = ifindex0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_out = out, .data_size_out = sizeof(out),
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);

	print_message("# %s\n", fx->desc);
	pb_init(&in);
	fx->in(&in);
	if (pb_len(&in) >= 14 && !memcmp(pb_data(&in), MAC_SU1, 6))
		ctx.ingress_ifindex = ifindex1; /* arrived on the backbone link */
	ctx.data_end = pb_len(&in);
	opts.data_in = pb_data(&in);
	opts.data_size_in = pb_len(&in);

	read_stats(before);
	assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.su_router), &opts), 0);
	read_stats(after);
	if ((int)opts.retval != fx->verdict)
		dump("output", out, opts.data_size_out);
	assert_int_equal(opts.retval, fx->verdict);

	pb_init(&want);
	switch (fx->out) {
	case OUT_NONE:
		break;
	case OUT_SAME:
		pb_bytes(&want, pb_data(&in), pb_len(&in));
		break;
	case OUT_ENCAP:
		expect_encap(&want, &in, fx->target, fx->via, 0);
		break;
	case OUT_NEIGH_MISS:
		expect_encap(&want, &in, fx->target, 0, 1);
		break;
	case OUT_CUSTOM:
		fx->expect(&want, &in);
		break;
	}
	if (fx->out != OUT_SAME && fx->out != OUT_NONE)
		adopt_outer_id(&want, out, opts.data_size_out);
	if (fx->out != OUT_NONE &&
	    (opts.data_size_out != pb_len(&want) || memcmp(out, pb_data(&want), pb_len(&want)))) {
		dump("got", out, opts.data_size_out);
		dump("want", pb_data(&want), pb_len(&want));
		fail_msg("output bytes differ");
	}

	for (int i = 0; i < SU_STAT_MAX; i++) {
		uint64_t expect = before[i];

		for (int j = 0; j < fx->n_stats; j++)
			expect += (fx->stats[j] == i) - (fx->stats[j] == ~i);
		if (after[i] != expect)
			fail_msg("counter %s: %llu, expected %llu", su_stat_desc[i].label,
				 (unsigned long long)(after[i] - before[i]),
				 (unsigned long long)(expect - before[i]));
	}
}

/* A flood of too-big DF packets gets at most the rate's worth of answers. */
static void icmp_rate_limited(void **state)
{
	static struct pb in;
	static uint8_t out[PB_CAP + 512];
	uint64_t before[SU_STAT_MAX], after[SU_STAT_MAX];
	struct xdp_md ctx = { .ingress_ifindex = ifindex0 };
	int n = 4 * ICMP_RATE;
	cpu_set_t one;

	/* The bucket is per CPU: stay on one. */
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	sched_setaffinity(0, sizeof(one), &one);
	pb_init(&in);
	in_big_df(&in);
	ctx.data_end = pb_len(&in);
	read_stats(before);
	for (int i = 0; i < n; i++) {
		LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pb_data(&in),
			    .data_size_in = pb_len(&in), .data_out = out,
			    .data_size_out = sizeof(out), .ctx_in = &ctx,
			    .ctx_size_in = sizeof(ctx), .repeat = 1);

		assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.su_router),
							&opts), 0);
	}
	read_stats(after);
	uint64_t sent = after[SU_STAT_ICMP_FRAG_SENT] - before[SU_STAT_ICMP_FRAG_SENT];
	uint64_t limited = after[SU_STAT_DROP_ICMP_RATE] - before[SU_STAT_DROP_ICMP_RATE];

	print_message("# %d too-big packets: %llu answered, %llu rate-limited\n", n,
		      (unsigned long long)sent, (unsigned long long)limited);
	assert_int_equal(sent + limited, n);
	assert_true(sent <= 2 * ICMP_RATE); /* a burst, plus what the test's time refilled */
	assert_true(limited >= (uint64_t)n - 2 * ICMP_RATE);
}

/* The outer source port spreads flows but keeps a datagram's fragments on
 * one path. */
static void flow_hash_properties(void **state)
{
	struct su_flow a = { .src = 1, .dst = 2, .proto = 6, .sport = 10, .dport = 20 };
	struct su_flow b = a, fa = a, fb = a;
	int distinct = 0;

	for (int i = 0; i < 64; i++) {
		b.sport = htons(i);
		distinct += su_flow_sport(&b) != su_flow_sport(&a);
		assert_true(ntohs(su_flow_sport(&b)) >= 49152);
	}
	assert_true(distinct >= 60);
	fa.frag = SU_FRAG_FIRST;
	fb.frag = SU_FRAG_LATER;
	fb.sport = fb.dport = 0;
	assert_int_equal(su_flow_sport(&fa), su_flow_sport(&fb));
}


/* Runs one packet; returns the verdict, the output in out/out_len. */
static int run_once(const struct pb *in, uint8_t *out, uint32_t *out_len, uint32_t flags)
{
	struct xdp_md ctx = { .ingress_ifindex = ifindex0, .data_end = pb_len(in) };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pb_data(in), .data_size_in = pb_len(in),
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1, .flags = flags);

	if (!(flags & BPF_F_TEST_XDP_LIVE_FRAMES)) {
		opts.data_out = out;
		opts.data_size_out = *out_len;
	}
	assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.su_router), &opts), 0);
	*out_len = opts.data_size_out;
	return (int)opts.retval;
}

static void udp_from(struct pb *p, uint32_t src, uint16_t id, uint16_t frag)
{
	pb_fill(p, 64, 0x56);
	pb_udp(p, 53, PORT_A);
	pb_ip(p, src, EG_LOCAL, IPPROTO_UDP, id, frag, 60);
	frame(p);
}

/* Outer IPv4 IDs are the router's: never the inner one, distinct for two
 * origins that picked the same inner ID, 0 only for DF (atomic) packets. */
static void outer_id_unique(void **state)
{
	static struct pb in;
	static uint8_t out[PB_CAP + 512];
	uint16_t ids[8];
	uint32_t len;

	for (int i = 0; i < 8; i++) {
		pb_init(&in);
		udp_from(&in, ORIGIN + i, 0x4242, 0);
		len = sizeof(out);
		assert_int_equal(run_once(&in, out, &len, 0), XDP_TX);
		memcpy(&ids[i], out + 14 + 4, 2);
		assert_int_not_equal(ntohs(ids[i]), 0x4242);
		for (int j = 0; j < i; j++)
			assert_int_not_equal(ids[i], ids[j]);
	}
	pb_init(&in);
	udp_from(&in, ORIGIN, 0x4242, PB_DF);
	len = sizeof(out);
	assert_int_equal(run_once(&in, out, &len, 0), XDP_TX);
	assert_int_equal(out[14 + 4] | out[14 + 5], 0);
}

static void tcp_flow(struct pb *p, uint32_t dst, uint16_t sport)
{
	pb_fill(p, 40, 0xab);
	pb_tcp(p, sport, PORT_A);
	pb_ip(p, ORIGIN, dst, IPPROTO_TCP, 0x1234, PB_DF, 57);
	frame(p);
}

/* ECMP with an L4 multipath hash: each inner flow keeps one path across
 * next-hop cache refreshes (whichever flow refreshes it), and the flows
 * spread over both paths. */
static void ecmp_flow_keeps_path(void **state)
{
	enum { FLOWS = 64 };
	static struct pb in;
	static uint8_t out[PB_CAP + 512];
	uint8_t path[2][FLOWS];
	int used[2] = { 0, 0 };
	uint32_t len;

	for (int round = 0; round < 2; round++) {
		for (int k = 0; k < FLOWS; k++) {
			/* The second round walks the flows backwards, so
			 * another flow is the first to refresh each entry. */
			int i = round ? FLOWS - 1 - k : k;

			pb_init(&in);
			tcp_flow(&in, EG_ECMP, 20000 + 7 * i);
			len = sizeof(out);
			assert_int_equal(run_once(&in, out, &len, 0), XDP_TX);
			assert_true(out[5] == 3 || out[5] == 4); /* 02:..:03 or 02:..:04 */
			path[round][i] = out[5];
		}
		usleep(300 * 1000); /* > SU_NH_TTL_JIFFIES at any HZ */
	}
	for (int i = 0; i < FLOWS; i++) {
		if (path[0][i] != path[1][i])
			fail_msg("flow %d moved from next hop .%d to .%d", i, path[0][i],
				 path[1][i]);
		used[path[0][i] - 3]++;
	}
	print_message("# %d flows: %d via 10.0.0.3, %d via 10.0.0.4\n", FLOWS, used[0], used[1]);
	assert_true(used[0] > 0 && used[1] > 0);
}

/* The bucket refills at exactly cfg_icmp_rate per second: polled every
 * 390 ms at 5/s (1.95 tokens a time) it must yield ~2 answers per poll,
 * not the 1 a limiter that drops the remainder gives. */
static void icmp_rate_keeps_remainder(void **state)
{
	static struct pb in;
	static uint8_t out[PB_CAP + 512];
	uint64_t before[SU_STAT_MAX], after[SU_STAT_MAX];
	cpu_set_t one;
	uint32_t len;

	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	sched_setaffinity(0, sizeof(one), &one);
	pb_init(&in);
	in_big_df(&in);
	for (int i = 0; i < 4 * ICMP_RATE; i++) { /* empty the bucket */
		len = sizeof(out);
		run_once(&in, out, &len, 0);
	}
	read_stats(before);
	for (int poll = 0; poll < 6; poll++) {
		usleep(390 * 1000);
		for (int i = 0; i < 3; i++) {
			len = sizeof(out);
			run_once(&in, out, &len, 0);
		}
	}
	read_stats(after);
	uint64_t sent = after[SU_STAT_ICMP_FRAG_SENT] - before[SU_STAT_ICMP_FRAG_SENT];

	print_message("# 6 polls 390 ms apart at %d/s: %llu answered (exact: 11)\n", ICMP_RATE,
		      (unsigned long long)sent);
	assert_true(sent >= 10 && sent <= 13);
}

/* Servers behind a bridge: the redirect fails after the program returned
 * (a bridge has no XDP transmit).  With live frames the kernel really
 * redirects; the packet must end up in drop_redirect_failed, not in
 * fwd_local, and not in the target's packets. */
static void redirect_failure_counted(void **state)
{
	static struct pb in;
	static uint8_t out[PB_CAP + 512];
	uint64_t before[SU_STAT_MAX], after[SU_STAT_MAX];
	struct bpf_link *link = bpf_program__attach(skel->progs.su_redirect_err);
	int ncpu = libbpf_num_possible_cpus();
	struct su_target_val tv[ncpu];
	__be32 k = htonl(SRV_BRIDGE);
	uint64_t fwd_to_bridge = 0;
	uint32_t len = sizeof(out);

	assert_non_null(link);
	pb_init(&in);
	tcp_to(&in, EG_BRIDGE, PORT_A);
	read_stats(before);
	assert_int_equal(run_once(&in, out, &len, BPF_F_TEST_XDP_LIVE_FRAMES), 0);
	read_stats(after);
	bpf_link__destroy(link);
	assert_int_equal(after[SU_STAT_DROP_REDIRECT] - before[SU_STAT_DROP_REDIRECT], 1);
	assert_int_equal(after[SU_STAT_FWD_LOCAL] - before[SU_STAT_FWD_LOCAL], 0);
	if (!bpf_map__lookup_elem(skel->maps.su_targets, &k, sizeof(k), tv, sizeof(tv), 0))
		for (int c = 0; c < ncpu; c++)
			fwd_to_bridge += tv[c].packets;
	assert_int_equal(fwd_to_bridge, 0);
}

/* The checks follow the interface's role: on an Internet-only interface
 * (neither DC nor backbone reached through it) every plan source is
 * refused, each under its reason; on one that reaches both nothing is (it
 * cannot tell), and an interface the loader did not describe is unchecked. */
static void spoof_by_interface_role(void **state)
{
	static struct pb in;
	static uint8_t out[PB_CAP + 512];
	const struct {
		uint32_t roles, src;
		int verdict, stat;
	} c[] = {
		{ 0, SRV_A, XDP_DROP, SU_STAT_DROP_SPOOF_SERVER },
		{ 0, ROUTER_B, XDP_DROP, SU_STAT_DROP_SPOOF_ROUTER },
		{ 0, EG_NONEIGH, XDP_DROP, SU_STAT_DROP_SPOOF_EGRESS },
		{ 0, EG_C, XDP_PASS, SU_STAT_PASS },
		{ 0, ORIGIN, XDP_PASS, SU_STAT_PASS },
		{ SU_IF_DC | SU_IF_BACKBONE, SRV_A, XDP_PASS, SU_STAT_PASS },
		{ SU_IF_DC | SU_IF_BACKBONE, ROUTER_B, XDP_PASS, SU_STAT_PASS },
		{ SU_IF_DC | SU_IF_BACKBONE, EG_LOCAL, XDP_PASS, SU_STAT_PASS },
	};
	uint64_t before[SU_STAT_MAX], after[SU_STAT_MAX];

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		uint32_t len = sizeof(out);

		assert_int_equal(set_roles(c[i].roles, SU_IF_BACKBONE), 0);
		pb_init(&in);
		tcp_from(&in, c[i].src, NOT_EGRESS, 0);
		read_stats(before);
		assert_int_equal(run_once(&in, out, &len, 0), c[i].verdict);
		read_stats(after);
		assert_int_equal(after[c[i].stat] - before[c[i].stat], 1);
	}
	/* Not described (another interface, or routes unreadable): unchecked. */
	{
		struct su_ifrole none = { 0 };
		uint32_t k = 0, len = sizeof(out);

		assert_int_equal(bpf_map__update_elem(skel->maps.su_ifroles, &k, sizeof(k), &none,
						      sizeof(none), BPF_ANY), 0);
		pb_init(&in);
		tcp_from(&in, SRV_A, NOT_EGRESS, 0);
		assert_int_equal(run_once(&in, out, &len, 0), XDP_PASS);
	}
	assert_int_equal(set_roles(SU_IF_DC, SU_IF_BACKBONE), 0);
}

/* ---- torn reads (issue 8 §2): an IP's route is read whole or not at all ---- */

#define EG_FLIP IP4(198, 51, 100, 20)
#define EG_OTHER IP4(198, 51, 100, 21)

/* Two whole routes for EG_FLIP that differ in every field: remote to
 * ROUTER_B (slot_base pointing at an empty region), or local with slot
 * region 0 (PORT_A -> SRV_A).  A read mixing them is remote to 0.0.0.0
 * (drop_fib) or local in the empty region (drop_no_slice); a read of
 * another IP's entry (BAD: remote to 0.0.0.0 as well) is drop_fib. */
static struct su_ip_val FLIP_A = { .slot_base = 10 * SPI }; /* .router: ROUTER_B, set at run */
static const struct su_ip_val FLIP_B = { .slot_base = 0, .flags = SU_IP_LOCAL };
static const struct su_ip_val FLIP_BAD = { 0 };

struct flipper {
	struct ipv_mem mm;
	uint32_t idx;
	int reuse; /* also delete EG_FLIP and hand its index to EG_OTHER */
	volatile int stop;
	uint64_t writes;
};

static void pin_cpu(int cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	sched_setaffinity(0, sizeof(one), &one);
}

static void *flip_writer(void *arg)
{
	struct flipper *f = arg;
	__be32 flip = htonl(EG_FLIP), other = htonl(EG_OTHER);
	struct su_ipv *e = &f->mm.e[f->idx];

	pin_cpu(libbpf_num_possible_cpus() > 1 ? 1 : 0);
	while (!f->stop) {
		if (!f->reuse) {
			ipv_write(e, flip, &FLIP_A);
			ipv_write(e, flip, &FLIP_B);
			f->writes += 2;
			continue;
		}
		/* Delete and reuse, as the sync does for a departed IP whose
		 * index a new IP takes in the same pass. */
		bpf_map_delete_elem(bpf_map__fd(skel->maps.su_ips), &flip);
		ipv_write(e, 0, &FLIP_BAD);
		ipv_write(e, other, &FLIP_BAD);
		bpf_map_update_elem(bpf_map__fd(skel->maps.su_ips), &other, &f->idx, BPF_ANY);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.su_ips), &other);
		ipv_write(e, flip, &FLIP_A);
		bpf_map_update_elem(bpf_map__fd(skel->maps.su_ips), &flip, &f->idx, BPF_ANY);
		f->writes += 3;
	}
	return NULL;
}

/* One reader on CPU 0 runs the real program (BPF_PROG_TEST_RUN) on packets
 * to EG_FLIP while a writer on CPU 1 rewrites its route as the loader does.
 * Every packet must have taken one of the whole routes (or, with reuse, a
 * miss), or be counted as drop_ip_busy; nothing else. */
static void flip_and_read(int reuse, int reads)
{
	static struct pb in;
	static uint8_t out[PB_CAP + 512];
	uint64_t before[SU_STAT_MAX], after[SU_STAT_MAX], other = 0;
	struct flipper f = { .reuse = reuse };
	struct su_router_maps m = { .ips = bpf_map__fd(skel->maps.su_ips),
				    .ipv = bpf_map__fd(skel->maps.su_ipv) };
	__be32 k = htonl(EG_FLIP);
	uint64_t ok_a = 0, ok_b = 0, miss = 0;
	pthread_t t;

	FLIP_A.router = htonl(ROUTER_B);
	assert_int_equal(su_router__ip_put(&m, k, &FLIP_A), 0);
	assert_int_equal(bpf_map_lookup_elem(m.ips, &k, &f.idx), 0);
	assert_int_equal(ipv_map(m.ipv, &f.mm), 0);
	pb_init(&in);
	tcp_to(&in, EG_FLIP, PORT_A);
	read_stats(before);
	assert_int_equal(pthread_create(&t, NULL, flip_writer, &f), 0);
	pin_cpu(0);
	for (int i = 0; i < reads; i++) {
		uint32_t len = sizeof(out), dst;
		int v = run_once(&in, out, &len, 0);

		memcpy(&dst, out + 14 + 16, 4);
		if (v == XDP_TX && len > 34 && dst == htonl(ROUTER_B))
			ok_a++;
		else if (v == XDP_TX && len > 34 && dst == htonl(SRV_A))
			ok_b++;
		else if (v == XDP_PASS && reuse && len == pb_len(&in))
			miss++;
		else
			other++;
	}
	f.stop = 1;
	pthread_join(t, NULL);
	read_stats(after);
	print_message("# %s: %d reads during %llu writes: route A %llu, route B %llu, miss %llu, "
		      "drop_ip_busy %llu, anything else %llu (drop_fib %llu, drop_no_slice %llu)\n",
		      reuse ? "delete and reuse" : "in-place rewrites", reads,
		      (unsigned long long)f.writes, (unsigned long long)ok_a,
		      (unsigned long long)ok_b, (unsigned long long)miss,
		      (unsigned long long)(after[SU_STAT_DROP_IP_BUSY] - before[SU_STAT_DROP_IP_BUSY]),
		      (unsigned long long)(other - (after[SU_STAT_DROP_IP_BUSY] -
						     before[SU_STAT_DROP_IP_BUSY])),
		      (unsigned long long)(after[SU_STAT_DROP_FIB] - before[SU_STAT_DROP_FIB]),
		      (unsigned long long)(after[SU_STAT_DROP_NO_SLICE] -
					   before[SU_STAT_DROP_NO_SLICE]));
	/* Bounded retries may give up, counted: everything else is a torn
	 * or foreign read. */
	assert_int_equal(other, after[SU_STAT_DROP_IP_BUSY] - before[SU_STAT_DROP_IP_BUSY]);
	assert_int_equal(after[SU_STAT_DROP_FIB] - before[SU_STAT_DROP_FIB], 0);
	assert_int_equal(after[SU_STAT_DROP_NO_SLICE] - before[SU_STAT_DROP_NO_SLICE], 0);
	assert_true(f.writes > 1000); /* the writer really ran meanwhile */
	if (!reuse)
		assert_true(ok_a > 0 && ok_b > 0);
	bpf_map_delete_elem(m.ips, &k);
	ipv_write(&f.mm.e[f.idx], 0, &FLIP_BAD);
	ipv_unmap(&f.mm);
}

static void ip_read_whole_while_rewritten(void **state)
{
	flip_and_read(0, 200000);
}

static void ip_read_whole_across_delete_and_reuse(void **state)
{
	flip_and_read(1, 200000);
}

/* The fragment tables keep per-CPU LRU lists (no common LRU whose per-CPU
 * free lists starve many-CPU routers); their size is the loader's. */
static void frag_table_per_cpu_lru(void **state)
{
	assert_true(bpf_map__map_flags(skel->maps.su_frags) & BPF_F_NO_COMMON_LRU);
	assert_true(bpf_map__map_flags(skel->maps.su_frag_early) & BPF_F_NO_COMMON_LRU);
	assert_int_equal(bpf_map__type(skel->maps.su_frags), BPF_MAP_TYPE_LRU_HASH);
}

int main(void)
{
	size_t n = sizeof(fixtures) / sizeof(fixtures[0]);
	struct CMUnitTest tests[n + 10];

	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root for BPF_PROG_TEST_RUN and a network namespace\n");
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		tests[i] = (struct CMUnitTest){ fixtures[i].desc, run_fixture, NULL, NULL,
						(void *)&fixtures[i] };
	tests[n] = (struct CMUnitTest){ "outer source port hash", flow_hash_properties, NULL, NULL,
					NULL };
	tests[n + 1] = (struct CMUnitTest){ "frag-needed answers are rate-limited",
					    icmp_rate_limited, NULL, NULL, NULL };
	tests[n + 2] = (struct CMUnitTest){ "outer IPv4 IDs are the router's own and unique",
					    outer_id_unique, NULL, NULL, NULL };
	tests[n + 3] = (struct CMUnitTest){ "ECMP: each flow keeps one path across refreshes",
					    ecmp_flow_keeps_path, NULL, NULL, NULL };
	tests[n + 4] = (struct CMUnitTest){ "ICMP rate limiter keeps its remainder",
					    icmp_rate_keeps_remainder, NULL, NULL, NULL };
	tests[n + 5] = (struct CMUnitTest){ "failed redirect (bridge) counted as its own drop",
					    redirect_failure_counted, NULL, NULL, NULL };
	tests[n + 6] = (struct CMUnitTest){ "fragment tables use per-CPU LRU lists",
					    frag_table_per_cpu_lru, NULL, NULL, NULL };
	tests[n + 7] = (struct CMUnitTest){ "torn reads: an IP rewritten in place is read whole",
					    ip_read_whole_while_rewritten, NULL, NULL, NULL };
	tests[n + 8] = (struct CMUnitTest){ "torn reads: a deleted IP's reused entry is a miss",
					    ip_read_whole_across_delete_and_reuse, NULL, NULL, NULL };
	tests[n + 9] = (struct CMUnitTest){ "spoof: plan sources by interface role",
					    spoof_by_interface_role, NULL, NULL, NULL };
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return _cmocka_run_group_tests("router", tests, n + 10, group_setup, group_teardown);
}
