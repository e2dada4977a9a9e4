/* decap.bpf.c under BPF_PROG_TEST_RUN: table-driven fixtures {description,
 * input packet, expected verdict, expected output, expected counter}.
 *
 * The socket look-ups of the decap run in the network namespace of the
 * test run's device (its loopback), so the test moves into a network
 * namespace of its own and opens real sockets there: an established TCP
 * connection from the egress IP, wildcard and bound listeners, bound,
 * connected and wildcard UDP sockets.  Each fixture names the kind of
 * packet it stands for. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/pkt_cls.h>
#include <linux/virtio_net.h>

#include "bpf/decap_abi.h"
#include "decap.skel.h"
#include "pktbuild.h"

#define ROUTER IP4(10, 99, 0, 1)
#define SERVER IP4(10, 99, 0, 2)
#define EGRESS IP4(198, 51, 100, 7)
#define ORIGIN IP4(192, 0, 2, 80)
#define GUE 6080

/* Local ports of the sockets setup() opens on EGRESS (and the wildcard). */
enum {
	P_EST = 2200,        /* TCP, connected from EGRESS:2200 to ORIGIN:80 */
	P_LISTEN_ANY = 2100, /* TCP listener on 0.0.0.0 */
	P_LISTEN_EGR = 2150, /* TCP listener on EGRESS */
	P_UDP = 2300,        /* UDP bound to EGRESS */
	P_UDP_CONN = 2350,   /* UDP bound to EGRESS, connected to ORIGIN:5353 */
	P_UDP_ANY = 2400,    /* UDP bound to 0.0.0.0 */
	P_NONE = 2500,       /* no socket */
	O_TCP = 80,
	O_UDP = 5353,
};

static const uint8_t k_mac_srv[6] = { 2, 0, 0, 0, 0, 2 }, k_mac_rtr[6] = { 2, 0, 0, 0, 0, 1 };
static struct decap *skel;
static int k_fds[16], k_nfds;

/* ---- packets --------------------------------------------------------------- */

static uint32_t sum16(const uint8_t *b, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		sum += (uint32_t)b[n - 1] << 8;
	return sum;
}

/* Fills in the L4 checksum of the IPv4 packet at the front of p (RFC 793,
 * 768, 792), and sets its TOS (re-summing the IPv4 header). */
static void finish(struct pb *p, uint8_t tos)
{
	uint8_t *ip = pb_data(p), *l4 = ip + (ip[0] & 15) * 4;
	size_t len = (size_t)(ip[2] << 8 | ip[3]) - (size_t)(l4 - ip);
	size_t off = ip[9] == IPPROTO_TCP ? 16 : ip[9] == IPPROTO_UDP ? 6 : 2;
	uint32_t sum = 0;
	pb_iphdr *h = (pb_iphdr *)ip;

	h->tos = tos;
	h->check = 0;
	h->check = su_csum(ip, 20);
	l4[off] = l4[off + 1] = 0;
	if (ip[9] != IPPROTO_ICMP)
		sum = sum16(ip + 12, 8, (uint32_t)ip[9] + (uint32_t)len);
	sum = sum16(l4, len, sum);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	if (ip[9] == IPPROTO_UDP && !sum)
		sum = 0xffff;
	l4[off] = (uint8_t)(sum >> 8);
	l4[off + 1] = (uint8_t)sum;
}

/* The origin's TCP segment to EGRESS:dport, flags in byte 13 of the header. */
static void tcp(struct pb *p, uint16_t dport, uint8_t flags, size_t payload, uint8_t tos)
{
	pb_tcphdr *t;

	pb_fill(p, payload, 0xab);
	pb_tcp(p, O_TCP, dport);
	t = (pb_tcphdr *)pb_data(p);
	((uint8_t *)t)[13] = flags;
	pb_ip(p, ORIGIN, EGRESS, IPPROTO_TCP, 7, 0, 60);
	finish(p, tos);
}

static void udp(struct pb *p, uint32_t dst, uint16_t dport, size_t payload)
{
	pb_fill(p, payload, 0xcd);
	pb_udp(p, O_UDP, dport);
	pb_ip(p, ORIGIN, dst, IPPROTO_UDP, 8, 0, 60);
	finish(p, 0);
}

static void icmp_echo_id(struct pb *p, uint8_t type, uint16_t id)
{
	pb_fill(p, 12, 0x11); /* a multiple of 4: pb_icmp writes an aligned header */
	pb_icmp(p, type, 0, id, 1);
	pb_ip(p, ORIGIN, EGRESS, IPPROTO_ICMP, 9, 0, 60);
	finish(p, 0);
}

static void icmp_echo(struct pb *p, uint8_t type) { icmp_echo_id(p, type, 2600); }

/* ICMP unreachable about the echo request (identifier id) we sent. */
static void icmp_err_echo(struct pb *p, uint16_t id)
{
	pb_icmp(p, 8, 0, id, 1);
	pb_ip(p, EGRESS, ORIGIN, IPPROTO_ICMP, 5, PB_DF, 64);
	pb_icmp(p, 3, 1, 0, 0);
	pb_ip(p, ORIGIN, EGRESS, IPPROTO_ICMP, 10, 0, 60);
	finish(p, 0);
}

/* Sets DF on the IPv4 packet at the front of p (its header re-summed). */
static void set_df(struct pb *p)
{
	pb_iphdr *h = (pb_iphdr *)pb_data(p);

	h->frag_off = htons(PB_DF);
	h->check = 0;
	h->check = su_csum(h, 20);
}

/* ICMP unreachable about the packet EGRESS:sport -> ORIGIN:dport we sent. */
static void icmp_err(struct pb *p, uint8_t proto, uint32_t qsrc, uint16_t sport, uint16_t dport)
{
	uint8_t *q = pb_push(p, 8);

	q[0] = (uint8_t)(sport >> 8), q[1] = (uint8_t)sport;
	q[2] = (uint8_t)(dport >> 8), q[3] = (uint8_t)dport;
	pb_ip(p, qsrc, ORIGIN, proto, 5, PB_DF, 64);
	pb_icmp(p, 3, 1, 0, 0);
	pb_ip(p, ORIGIN, EGRESS, IPPROTO_ICMP, 10, 0, 60);
	finish(p, 0);
}

static void outer(struct pb *p, uint32_t src, uint32_t dst, uint16_t port, uint16_t frag,
		  uint8_t tos)
{
	pb_iphdr *ip;

	pb_udp(p, 40000, port);
	ip = pb_ip(p, src, dst, IPPROTO_UDP, 9, frag, 64);
	ip->tos = tos;
	ip->check = 0;
	ip->check = su_csum(ip, 20);
	pb_eth(p, k_mac_srv, k_mac_rtr, ETH_P_IP);
}

static void gue(struct pb *p) { outer(p, ROUTER, SERVER, GUE, 0, 0); }
static void eth(struct pb *p) { pb_eth(p, k_mac_srv, k_mac_rtr, ETH_P_IP); }
static void corrupt(struct pb *p) { p->buf[PB_CAP - 1] ^= 0x5a; }

#define TCP_ACK 0x10
#define TCP_SYN 0x02
#define TCP_RST 0x04

/* Return traffic to sockets bound to the egress IP: admitted. */
static void b_tcp_est(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 0); gue(p); }
static void w_tcp_est(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 0); eth(p); }
static void b_tcp_long(struct pb *p) { tcp(p, P_EST, TCP_ACK, 1400, 0); gue(p); }
static void w_tcp_long(struct pb *p) { tcp(p, P_EST, TCP_ACK, 1400, 0); eth(p); }
static void b_tcp_rst(struct pb *p) { tcp(p, P_EST, TCP_RST | TCP_ACK, 0, 0); gue(p); }
static void w_tcp_rst(struct pb *p) { tcp(p, P_EST, TCP_RST | TCP_ACK, 0, 0); eth(p); }
static void b_udp(struct pb *p) { udp(p, EGRESS, P_UDP, 7); gue(p); }
static void w_udp(struct pb *p) { udp(p, EGRESS, P_UDP, 7); eth(p); }
static void b_udp_conn(struct pb *p) { udp(p, EGRESS, P_UDP_CONN, 30); gue(p); }
static void w_udp_conn(struct pb *p) { udp(p, EGRESS, P_UDP_CONN, 30); eth(p); }
static void b_echo(struct pb *p) { icmp_echo(p, 0); gue(p); }
static void w_echo(struct pb *p) { icmp_echo(p, 0); eth(p); }
static void b_err_tcp(struct pb *p) { icmp_err(p, IPPROTO_TCP, EGRESS, P_EST, O_TCP); gue(p); }
static void w_err_tcp(struct pb *p) { icmp_err(p, IPPROTO_TCP, EGRESS, P_EST, O_TCP); eth(p); }
static void b_err_udp(struct pb *p) { icmp_err(p, IPPROTO_UDP, EGRESS, P_UDP, O_UDP); gue(p); }
static void b_err_echo(struct pb *p) { icmp_err_echo(p, 2600); gue(p); }
static void w_err_echo(struct pb *p) { icmp_err_echo(p, 2600); eth(p); }
static void w_err_udp(struct pb *p) { icmp_err(p, IPPROTO_UDP, EGRESS, P_UDP, O_UDP); eth(p); }
static void b_udp_nocsum(struct pb *p)
{
	udp(p, EGRESS, P_UDP, 7);
	((pb_udphdr *)(pb_data(p) + 20))->check = 0;
	gue(p);
}
static void w_udp_nocsum(struct pb *p)
{
	udp(p, EGRESS, P_UDP, 7);
	((pb_udphdr *)(pb_data(p) + 20))->check = 0;
	eth(p);
}

/* Unsolicited: refused. */
static void b_syn_any(struct pb *p) { tcp(p, P_LISTEN_ANY, TCP_SYN, 0, 0); gue(p); }
static void b_syn_est(struct pb *p) { tcp(p, P_EST, TCP_SYN, 0, 0); gue(p); }
static void b_ack_any(struct pb *p) { tcp(p, P_LISTEN_ANY, TCP_ACK, 0, 0); gue(p); }
static void b_ack_egr(struct pb *p) { tcp(p, P_LISTEN_EGR, TCP_ACK, 0, 0); gue(p); }
static void b_tcp_none(struct pb *p) { tcp(p, P_NONE, TCP_ACK, 0, 0); gue(p); }
static void b_udp_any(struct pb *p) { udp(p, EGRESS, P_UDP_ANY, 7); gue(p); }
static void b_udp_none(struct pb *p) { udp(p, EGRESS, P_NONE, 7); gue(p); }
static void b_err_none(struct pb *p) { icmp_err(p, IPPROTO_UDP, EGRESS, P_NONE, O_UDP); gue(p); }
static void b_err_any(struct pb *p) { icmp_err(p, IPPROTO_UDP, EGRESS, P_UDP_ANY, O_UDP); gue(p); }
static void b_err_foreign(struct pb *p)
{
	icmp_err(p, IPPROTO_TCP, IP4(198, 51, 100, 9), P_EST, O_TCP);
	gue(p);
}
static void b_err_gre(struct pb *p) { icmp_err(p, 47, EGRESS, P_EST, O_TCP); gue(p); }
static void b_echo_req(struct pb *p) { icmp_echo(p, 8); gue(p); }
static void b_gre(struct pb *p)
{
	pb_fill(p, 20, 0);
	pb_ip(p, ORIGIN, EGRESS, 47, 7, 0, 60);
	gue(p);
}

/* The inner checksum is verified, whatever the NIC said about the outer. */
static void b_tcp_bad(struct pb *p) { b_tcp_est(p); corrupt(p); }
static void b_tcp_long_bad(struct pb *p) { b_tcp_long(p); corrupt(p); }
static void b_udp_bad(struct pb *p) { b_udp(p); corrupt(p); }
static void b_echo_bad(struct pb *p) { b_echo(p); corrupt(p); }

/* RFC 6040 decapsulation. */
static void b_ce(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 0xb8 | 2); outer(p, ROUTER, SERVER, GUE, 0, 0xb8 | 3); }
static void w_ce(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 0xb8 | 3); eth(p); }
static void b_ect1(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 2); outer(p, ROUTER, SERVER, GUE, 0, 1); }
static void w_ect1(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 1); eth(p); }
static void b_ce_notect(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 0); outer(p, ROUTER, SERVER, GUE, 0, 3); }
static void b_ect0_ce(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 3); outer(p, ROUTER, SERVER, GUE, 0, 2); }
static void w_ect0_ce(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 3); eth(p); }

/* Outer checks. */
static void b_bad_src(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 0); outer(p, IP4(10, 99, 0, 9), SERVER, GUE, 0, 0); }
static void b_not_ours(struct pb *p) { udp(p, IP4(198, 51, 100, 8), P_UDP, 7); gue(p); }
static void b_other_port(struct pb *p) { tcp(p, P_EST, TCP_ACK, 0, 0); outer(p, ROUTER, SERVER, 4789, 0, 0); }
static void b_first_frag(struct pb *p) { tcp(p, P_EST, TCP_ACK, 0, 0); outer(p, ROUTER, SERVER, GUE, PB_MF, 0); }
static void b_later_frag(struct pb *p) { tcp(p, P_EST, TCP_ACK, 0, 0); outer(p, ROUTER, SERVER, GUE, 100, 0); }
static void b_plain(struct pb *p) { tcp(p, P_EST, TCP_ACK, 0, 0); eth(p); }
static void b_plain_udp(struct pb *p) { udp(p, EGRESS, P_UDP, 7); eth(p); }
static void b_gue_to_egress(struct pb *p) { tcp(p, P_EST, TCP_ACK, 0, 0); outer(p, ROUTER, EGRESS, GUE, 0, 0); }
static void b_plain_other(struct pb *p) { udp(p, SERVER, 53, 7); eth(p); }
/* What netfilter's `reject with tcp reset` sends a local socket through lo. */
static void b_plain_rst(struct pb *p) { tcp(p, P_EST, TCP_RST | TCP_ACK, 0, 0); eth(p); }
static void b_truncated(struct pb *p)
{
	pb_fill(p, 8, 0x45); /* 8 bytes of "inner": not even an IPv4 header */
	gue(p);
}

/* Live moves (issue 10): slices of EGRESS (slice size 2048) this server took
 * over from PREV (slice 3: P_MOVED; slice 4: its deadline long passed; slice
 * 6: deadline one second ago, echoes in their quiet time), and slice 1
 * (every socket's port, and echo identifier 2600) which it handed to NEW and
 * still holds; slice 5 handed to NEW, deadline passed. */
#define PREV IP4(10, 99, 0, 4)
#define NEW IP4(10, 99, 0, 3)
enum { P_MOVED = 6200, P_MOVED_EXP = 8300, P_HELD_EXP = 10300, P_MOVED_QUIET = 12400 };

/* The second-hop mark: GUE variant 0, Hlen 1, proto 4, private "SU2H". */
static void mark(struct pb *p)
{
	static const uint8_t h[8] = { 0x01, 4, 0, 0, 'S', 'U', '2', 'H' };

	memcpy(pb_push(p, 8), h, 8);
}

/* What this server sends to PREV: the inner packet marked, from SERVER, back
 * toward the router's MAC; UDP source port kept, UDP checksum 0, TTL 64. */
static void sent_on(struct pb *p)
{
	pb_eth((mark(p), pb_udp(p, 40000, GUE), pb_ip(p, SERVER, PREV, IPPROTO_UDP, 9, 0, 64), p), k_mac_rtr,
	       k_mac_srv, ETH_P_IP);
}

static void hop_from(struct pb *p, uint32_t src)
{
	mark(p);
	outer(p, src, SERVER, GUE, 0, 0);
}

static void b_mv_tcp(struct pb *p) { tcp(p, P_MOVED, TCP_ACK, 100, 0); gue(p); }
static void w_mv_tcp(struct pb *p) { tcp(p, P_MOVED, TCP_ACK, 100, 0); sent_on(p); }
static void b_mv_fin(struct pb *p) { tcp(p, P_MOVED, TCP_ACK | 0x01, 0, 0); gue(p); }
static void w_mv_fin(struct pb *p) { tcp(p, P_MOVED, TCP_ACK | 0x01, 0, 0); sent_on(p); }
static void b_mv_udp(struct pb *p) { udp(p, EGRESS, P_MOVED, 9); gue(p); }
static void w_mv_udp(struct pb *p) { udp(p, EGRESS, P_MOVED, 9); sent_on(p); }
static void b_mv_err(struct pb *p) { icmp_err(p, IPPROTO_UDP, EGRESS, P_MOVED, O_UDP); gue(p); }
static void w_mv_err(struct pb *p) { icmp_err(p, IPPROTO_UDP, EGRESS, P_MOVED, O_UDP); sent_on(p); }
static void b_mv_syn(struct pb *p) { tcp(p, P_MOVED, TCP_SYN, 0, 0); gue(p); }
static void b_mv_err_tcp(struct pb *p) { icmp_err(p, IPPROTO_TCP, EGRESS, P_MOVED, O_TCP); gue(p); }
static void w_mv_err_tcp(struct pb *p) { icmp_err(p, IPPROTO_TCP, EGRESS, P_MOVED, O_TCP); sent_on(p); }
/* Echoes: no look-up; on a handed slice, none is this server's before the
 * deadline (the library picks no identifier there). */
static void b_mv_echo(struct pb *p) { icmp_echo_id(p, 0, P_MOVED); gue(p); }
static void w_mv_echo(struct pb *p) { icmp_echo_id(p, 0, P_MOVED); sent_on(p); }
static void b_mv_err_echo(struct pb *p) { icmp_err_echo(p, P_MOVED); gue(p); }
static void w_mv_err_echo(struct pb *p) { icmp_err_echo(p, P_MOVED); sent_on(p); }
static void b_mv_echo_quiet(struct pb *p) { icmp_echo_id(p, 0, P_MOVED_QUIET); gue(p); }
static void b_mv_err_echo_quiet(struct pb *p) { icmp_err_echo(p, P_MOVED_QUIET); gue(p); }
static void b_mv_echo_after(struct pb *p) { icmp_echo_id(p, 0, P_MOVED_EXP); gue(p); }
static void w_mv_echo_after(struct pb *p) { icmp_echo_id(p, 0, P_MOVED_EXP); eth(p); }
static void b_mv_err_echo_after(struct pb *p) { icmp_err_echo(p, P_MOVED_EXP); gue(p); }
static void w_mv_err_echo_after(struct pb *p) { icmp_err_echo(p, P_MOVED_EXP); eth(p); }
static void b_mv_exp(struct pb *p) { tcp(p, P_MOVED_EXP, TCP_ACK, 10, 0); gue(p); }
static void b_mv_exp_udp(struct pb *p) { udp(p, EGRESS, P_MOVED_EXP, 9); gue(p); }
static void b_mv_exp_err(struct pb *p) { icmp_err(p, IPPROTO_TCP, EGRESS, P_MOVED_EXP, O_TCP); gue(p); }
static void b_hop_est(struct pb *p) { tcp(p, P_EST, TCP_ACK, 100, 0); hop_from(p, NEW); }
static void b_hop_udp(struct pb *p) { udp(p, EGRESS, P_UDP_CONN, 30); hop_from(p, NEW); }
static void w_hop_udp(struct pb *p) { udp(p, EGRESS, P_UDP_CONN, 30); eth(p); }
static void b_hop_err(struct pb *p) { icmp_err(p, IPPROTO_TCP, EGRESS, P_EST, O_TCP); hop_from(p, NEW); }
static void b_hop_err_udp(struct pb *p) { icmp_err(p, IPPROTO_UDP, EGRESS, P_UDP, O_UDP); hop_from(p, NEW); }

/* Fragmented datagrams (IP ID id): the first fragment carries the ports,
 * the later one (offset 72) none. */
static void frag_first(struct pb *p, uint16_t dport, uint16_t id)
{
	pb_fill(p, 64, 0xcd);
	pb_udp(p, O_UDP, dport);
	pb_ip(p, ORIGIN, EGRESS, IPPROTO_UDP, id, PB_MF, 60);
}
static void frag_rest(struct pb *p, uint16_t id)
{
	pb_fill(p, 64, 0xce);
	pb_ip(p, ORIGIN, EGRESS, IPPROTO_UDP, id, 9, 60);
}
static void b_mv_frag1(struct pb *p) { frag_first(p, P_MOVED, 501); gue(p); }
static void w_mv_frag1(struct pb *p) { frag_first(p, P_MOVED, 501); sent_on(p); }
static void b_mv_frag2(struct pb *p) { frag_rest(p, 501); gue(p); }
static void w_mv_frag2(struct pb *p) { frag_rest(p, 501); sent_on(p); }
static void b_frag2_other(struct pb *p) { frag_rest(p, 502); gue(p); }
static void w_frag2_other(struct pb *p) { frag_rest(p, 502); eth(p); }
static void b_hop_frag1(struct pb *p) { frag_first(p, P_UDP_CONN, 601); hop_from(p, NEW); }
static void w_hop_frag1(struct pb *p) { frag_first(p, P_UDP_CONN, 601); eth(p); }
static void b_hop_frag2(struct pb *p) { frag_rest(p, 601); hop_from(p, NEW); }
static void w_hop_frag2(struct pb *p) { frag_rest(p, 601); eth(p); }
static void b_hop_frag2_unknown(struct pb *p) { frag_rest(p, 602); hop_from(p, NEW); }
static void b_hop_frag2_stranger(struct pb *p) { frag_rest(p, 601); hop_from(p, IP4(10, 99, 0, 9)); }
static void b_hop_none(struct pb *p) { tcp(p, P_NONE, TCP_ACK, 10, 0); hop_from(p, NEW); }
static void b_hop_moved(struct pb *p) { tcp(p, P_MOVED, TCP_ACK, 10, 0); hop_from(p, NEW); }
static void b_hop_stranger(struct pb *p) { tcp(p, P_EST, TCP_ACK, 10, 0); hop_from(p, IP4(10, 99, 0, 9)); }
static void b_hop_router(struct pb *p) { tcp(p, P_EST, TCP_ACK, 10, 0); hop_from(p, ROUTER); }
static void b_hop_exp(struct pb *p) { tcp(p, P_HELD_EXP, TCP_ACK, 10, 0); hop_from(p, NEW); }
static void b_hop_echo(struct pb *p) { icmp_echo(p, 0); hop_from(p, NEW); }
static void b_hop_err_echo(struct pb *p) { icmp_err_echo(p, 2600); hop_from(p, NEW); }
static void b_hop_echo_exp(struct pb *p) { icmp_echo_id(p, 0, P_HELD_EXP); hop_from(p, NEW); }
static void b_hop_echo_moved(struct pb *p) { icmp_echo_id(p, 0, P_MOVED); hop_from(p, NEW); }
static void b_hop_echo_stranger(struct pb *p) { icmp_echo(p, 0); hop_from(p, IP4(10, 99, 0, 9)); }
static void b_gue0_other(struct pb *p)
{
	tcp(p, P_EST, TCP_ACK, 10, 0);
	mark(p);
	pb_data(p)[7] = 'X'; /* another private word: not ours */
	gue(p);
}

static const struct fixture {
	const char *desc;
	void (*build)(struct pb *p);
	int verdict;
	void (*want)(struct pb *p); /* NULL: output equals input */
	int stat;                   /* counter expected to move, -1: none */
} k_fixtures[] = {
	/* return traffic: sockets bound to the egress IP */
	{ "return: TCP segment of an established connection from the egress IP", b_tcp_est,
	  XDP_PASS, w_tcp_est, DECAP_STAT_DECAPSULATED },
	{ "return: 1400-byte TCP segment (checksum over many chunks)", b_tcp_long, XDP_PASS,
	  w_tcp_long, DECAP_STAT_DECAPSULATED },
	{ "return: RST to an established connection", b_tcp_rst, XDP_PASS, w_tcp_rst,
	  DECAP_STAT_DECAPSULATED },
	{ "return: UDP to a socket bound to the egress IP (odd length)", b_udp, XDP_PASS, w_udp,
	  DECAP_STAT_DECAPSULATED },
	{ "return: UDP to a connected socket", b_udp_conn, XDP_PASS, w_udp_conn,
	  DECAP_STAT_DECAPSULATED },
	{ "return: UDP without checksum (RFC 768)", b_udp_nocsum, XDP_PASS, w_udp_nocsum,
	  DECAP_STAT_DECAPSULATED },
	{ "return: echo reply (the kernel's ping sockets match the identifier)", b_echo, XDP_PASS,
	  w_echo, DECAP_STAT_DECAPSULATED },
	{ "return: ICMP error quoting our TCP flow", b_err_tcp, XDP_PASS, w_err_tcp,
	  DECAP_STAT_DECAPSULATED },
	{ "return: ICMP error quoting our bound UDP flow", b_err_udp, XDP_PASS, w_err_udp,
	  DECAP_STAT_DECAPSULATED },
	{ "return: ICMP error quoting an echo request of ours", b_err_echo, XDP_PASS, w_err_echo,
	  DECAP_STAT_DECAPSULATED },
	/* unsolicited: refused, each under its reason */
	{ "unsolicited: SYN to a wildcard listener", b_syn_any, XDP_DROP, NULL,
	  DECAP_STAT_TCP_SYN },
	{ "unsolicited: SYN to an established 4-tuple (simultaneous open)", b_syn_est, XDP_DROP,
	  NULL, DECAP_STAT_TCP_SYN },
	{ "unsolicited: ACK matching only a wildcard listener", b_ack_any, XDP_DROP, NULL,
	  DECAP_STAT_LISTENER },
	{ "unsolicited: ACK matching only a listener bound to the egress IP", b_ack_egr, XDP_DROP,
	  NULL, DECAP_STAT_LISTENER },
	{ "unsolicited: TCP with no socket", b_tcp_none, XDP_DROP, NULL, DECAP_STAT_NO_SOCKET },
	{ "unsolicited: UDP to a wildcard socket", b_udp_any, XDP_DROP, NULL,
	  DECAP_STAT_UNBOUND },
	{ "unsolicited: UDP with no socket", b_udp_none, XDP_DROP, NULL, DECAP_STAT_NO_SOCKET },
	{ "unsolicited: ICMP error about a flow with no socket", b_err_none, XDP_DROP, NULL,
	  DECAP_STAT_NO_SOCKET },
	{ "unsolicited: ICMP error about a wildcard UDP socket's port", b_err_any, XDP_DROP, NULL,
	  DECAP_STAT_UNBOUND },
	{ "unsolicited: ICMP error quoting another source", b_err_foreign, XDP_DROP, NULL,
	  DECAP_STAT_ICMP_QUOTE },
	{ "unsolicited: ICMP error quoting a GRE packet", b_err_gre, XDP_DROP, NULL,
	  DECAP_STAT_ICMP_QUOTE },
	{ "unsolicited: echo request", b_echo_req, XDP_DROP, NULL, DECAP_STAT_ICMP_TYPE },
	{ "unsolicited: other protocol (GRE)", b_gre, XDP_DROP, NULL, DECAP_STAT_PROTO },
	/* inner checksum: verified here, whatever the NIC said of the outer */
	{ "inner checksum: corrupted TCP payload", b_tcp_bad, XDP_DROP, NULL,
	  DECAP_STAT_INNER_CSUM },
	{ "inner checksum: corrupted 1400-byte TCP payload", b_tcp_long_bad, XDP_DROP, NULL,
	  DECAP_STAT_INNER_CSUM },
	{ "inner checksum: corrupted UDP payload", b_udp_bad, XDP_DROP, NULL,
	  DECAP_STAT_INNER_CSUM },
	{ "inner checksum: corrupted echo reply", b_echo_bad, XDP_DROP, NULL,
	  DECAP_STAT_INNER_CSUM },
	/* RFC 6040 */
	{ "ECN: outer CE onto inner ECT(0), DSCP kept", b_ce, XDP_PASS, w_ce, DECAP_STAT_CE },
	{ "ECN: outer ECT(1) onto inner ECT(0)", b_ect1, XDP_PASS, w_ect1,
	  DECAP_STAT_DECAPSULATED },
	{ "ECN: inner CE kept under outer ECT(0)", b_ect0_ce, XDP_PASS, w_ect0_ce,
	  DECAP_STAT_DECAPSULATED },
	{ "ECN: outer CE on Not-ECT inner", b_ce_notect, XDP_DROP, NULL, DECAP_STAT_ECN },
	/* the outer packet */
	{ "outer: GUE from another host", b_bad_src, XDP_DROP, NULL, DECAP_STAT_BAD_SOURCE },
	{ "outer: GUE for an IP that is not ours", b_not_ours, XDP_DROP, NULL,
	  DECAP_STAT_NOT_OURS },
	{ "outer: UDP to another port is not GUE, untouched", b_other_port, XDP_PASS, NULL, -1 },
	{ "outer: first fragment of GUE", b_first_frag, XDP_DROP, NULL,
	  DECAP_STAT_OUTER_FRAGMENT },
	{ "outer: later fragment from the router, left to the kernel", b_later_frag, XDP_PASS,
	  NULL, DECAP_STAT_FRAGMENT },
	{ "not through GUE: plain TCP to the egress IP", b_plain, XDP_DROP, NULL,
	  DECAP_STAT_NOT_GUE },
	{ "not through GUE: plain UDP to the egress IP", b_plain_udp, XDP_DROP, NULL,
	  DECAP_STAT_NOT_GUE },
	{ "not through GUE: GUE addressed to the egress IP", b_gue_to_egress, XDP_DROP, NULL,
	  DECAP_STAT_NOT_GUE },
	{ "other traffic to the server's own address: untouched", b_plain_other, XDP_PASS, NULL,
	  -1 },
	{ "outer: truncated inner packet", b_truncated, XDP_DROP, NULL, DECAP_STAT_MALFORMED },
	/* live moves: the new owner's second hop (issue 10) */
	{ "second hop: TCP of no local socket on a moved slice goes to the previous owner, marked",
	  b_mv_tcp, XDP_TX, w_mv_tcp, DECAP_STAT_SECOND_HOP_SENT },
	{ "second hop: FIN of an old flow on a moved slice", b_mv_fin, XDP_TX, w_mv_fin,
	  DECAP_STAT_SECOND_HOP_SENT },
	{ "second hop: UDP of no local socket on a moved slice", b_mv_udp, XDP_TX, w_mv_udp,
	  DECAP_STAT_SECOND_HOP_SENT },
	{ "second hop: ICMP error quoting an old flow of a moved slice", b_mv_err, XDP_TX, w_mv_err,
	  DECAP_STAT_SECOND_HOP_SENT },
	{ "second hop: a SYN on a moved slice is refused as ever (never a connection in)", b_mv_syn,
	  XDP_DROP, NULL, DECAP_STAT_TCP_SYN },
	{ "second hop: the move's deadline passed: refused as before, counted expired", b_mv_exp,
	  XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_REFUSED_EXPIRED },
	{ "second hop: ICMP error quoting an old TCP flow of a moved slice", b_mv_err_tcp, XDP_TX,
	  w_mv_err_tcp, DECAP_STAT_SECOND_HOP_SENT },
	{ "second hop: UDP on a moved slice past its deadline: refused, counted expired", b_mv_exp_udp,
	  XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_REFUSED_EXPIRED },
	{ "second hop: ICMP error about a TCP flow of a moved slice past its deadline: refused, counted expired",
	  b_mv_exp_err, XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_REFUSED_EXPIRED },
	/* the echo kind: decided by the clock, never by a look-up */
	{ "second hop echo: echo reply on a moved slice before the deadline goes to the previous owner",
	  b_mv_echo, XDP_TX, w_mv_echo, DECAP_STAT_SECOND_HOP_SENT },
	{ "second hop echo: ICMP error quoting an echo request on a moved slice (its identifier, not its type, picks the slice)",
	  b_mv_err_echo, XDP_TX, w_mv_err_echo, DECAP_STAT_SECOND_HOP_SENT },
	{ "second hop echo: echo reply in the quiet time after the deadline: refused, counted expired",
	  b_mv_echo_quiet, XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_REFUSED_EXPIRED },
	{ "second hop echo: ICMP error about an echo in the quiet time: refused, counted expired",
	  b_mv_err_echo_quiet, XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_REFUSED_EXPIRED },
	{ "second hop echo: after the quiet time the slice's echo replies are this server's own",
	  b_mv_echo_after, XDP_PASS, w_mv_echo_after, DECAP_STAT_DECAPSULATED },
	{ "second hop echo: after the quiet time errors about its echoes are this server's own",
	  b_mv_err_echo_after, XDP_PASS, w_mv_err_echo_after, DECAP_STAT_DECAPSULATED },
	/* live moves: the previous owner's side */
	{ "second hop in: from the new owner, for a local TCP connection: decapsulated", b_hop_est,
	  XDP_PASS, w_tcp_est, DECAP_STAT_SECOND_HOP_RECEIVED },
	{ "second hop in: a connected UDP flow", b_hop_udp, XDP_PASS, w_hop_udp,
	  DECAP_STAT_SECOND_HOP_RECEIVED },
	{ "second hop in: an ICMP error about a local flow", b_hop_err, XDP_PASS, w_err_tcp,
	  DECAP_STAT_SECOND_HOP_RECEIVED },
	{ "second hop in: an ICMP error about a local UDP flow", b_hop_err_udp, XDP_PASS, w_err_udp,
	  DECAP_STAT_SECOND_HOP_RECEIVED },
	{ "second hop in: no local socket either: refused, never a third hop", b_hop_none, XDP_DROP,
	  NULL, DECAP_STAT_SECOND_HOP_REFUSED_LOOP },
	{ "second hop in: for a slice this server took over (a loop): refused", b_hop_moved, XDP_DROP,
	  NULL, DECAP_STAT_SECOND_HOP_REFUSED_SOURCE },
	{ "second hop in: from another host than the slice's new owner", b_hop_stranger, XDP_DROP, NULL,
	  DECAP_STAT_SECOND_HOP_REFUSED_SOURCE },
	{ "second hop in: marked by the router (routers never mark)", b_hop_router, XDP_DROP, NULL,
	  DECAP_STAT_SECOND_HOP_REFUSED_SOURCE },
	{ "second hop in: the slice's deadline passed", b_hop_exp, XDP_DROP, NULL,
	  DECAP_STAT_SECOND_HOP_REFUSED_EXPIRED },
	{ "second hop in echo: echo reply from the new owner on a held slice: to our ping socket",
	  b_hop_echo, XDP_PASS, w_echo, DECAP_STAT_SECOND_HOP_RECEIVED },
	{ "second hop in echo: ICMP error about our echo request from the new owner", b_hop_err_echo,
	  XDP_PASS, w_err_echo, DECAP_STAT_SECOND_HOP_RECEIVED },
	{ "second hop in echo: the held slice's deadline passed", b_hop_echo_exp, XDP_DROP, NULL,
	  DECAP_STAT_SECOND_HOP_REFUSED_EXPIRED },
	{ "second hop in echo: for a slice this server took over (a loop): refused", b_hop_echo_moved,
	  XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_REFUSED_SOURCE },
	{ "second hop in echo: from another host than the slice's new owner", b_hop_echo_stranger,
	  XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_REFUSED_SOURCE },
	/* the fragment kind: later fragments follow their first */
	{ "second hop fragments: a first fragment on a moved slice is sent on", b_mv_frag1, XDP_TX,
	  w_mv_frag1, DECAP_STAT_SECOND_HOP_SENT },
	{ "second hop fragments: its later fragment (no port) follows it", b_mv_frag2, XDP_TX,
	  w_mv_frag2, DECAP_STAT_SECOND_HOP_SENT },
	{ "second hop fragments: a later fragment of another datagram is left to the kernel as ever",
	  b_frag2_other, XDP_PASS, w_frag2_other, DECAP_STAT_DECAPSULATED },
	{ "second hop in fragments: a first fragment of a local flow from the new owner", b_hop_frag1,
	  XDP_PASS, w_hop_frag1, DECAP_STAT_SECOND_HOP_RECEIVED },
	{ "second hop in fragments: its later fragment from the same new owner", b_hop_frag2, XDP_PASS,
	  w_hop_frag2, DECAP_STAT_SECOND_HOP_RECEIVED },
	{ "second hop in fragments: a later fragment of no datagram accepted here", b_hop_frag2_unknown,
	  XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_REFUSED_SOURCE },
	{ "second hop in fragments: a later fragment from another host", b_hop_frag2_stranger,
	  XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_REFUSED_SOURCE },
	{ "outer: GUE variant 0 that is not the second-hop mark", b_gue0_other, XDP_DROP, NULL,
	  DECAP_STAT_MALFORMED },
};

static uint64_t stat_sum(int k)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t vals[ncpu], sum = 0;
	uint32_t key = (uint32_t)k;

	assert_int_equal(bpf_map__lookup_elem(skel->maps.decap_stats, &key, sizeof(key), vals,
					      sizeof(vals), 0), 0);
	for (int c = 0; c < ncpu; c++)
		sum += vals[c];
	return sum;
}

/* ifindex: the device the frame "came in" on (its MTU is what
 * bpf_check_mtu sees); 0: the namespace's loopback. */
static int run_on(const struct bpf_program *prog, struct pb *in, uint8_t *out, uint32_t *out_len,
		  int ifindex)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_out = out, .data_size_out = PB_CAP);
	struct xdp_md ctx = { .ingress_ifindex = (uint32_t)ifindex };

	if (ifindex) {
		ctx.data_end = (uint32_t)pb_len(in); /* the kernel's rule: no metadata */
		opts.ctx_in = &ctx;
		opts.ctx_size_in = sizeof(ctx);
	}
	opts.data_in = pb_data(in);
	opts.data_size_in = (uint32_t)pb_len(in);
	assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(prog), &opts), 0);
	*out_len = opts.data_size_out;
	return (int)opts.retval;
}

static int run(const struct bpf_program *prog, struct pb *in, uint8_t *out, uint32_t *out_len)
{
	return run_on(prog, in, out, out_len, 0);
}

static int run_fixture_on(const struct fixture *f, int ifindex)
{
	struct pb in, want;
	uint8_t out[PB_CAP];
	uint32_t len;
	uint64_t before = f->stat >= 0 ? stat_sum(f->stat) : 0;
	int verdict, bad = 0;

	pb_init(&in);
	f->build(&in);
	pb_init(&want);
	(f->want ? f->want : f->build)(&want);
	verdict = run_on(skel->progs.decap, &in, out, &len, ifindex);
	if (verdict != f->verdict) {
		print_message("# %s: verdict %d, want %d\n", f->desc, verdict, f->verdict);
		bad = 1;
	} else if ((f->verdict == XDP_PASS || f->verdict == XDP_TX) &&
		   (len != pb_len(&want) || memcmp(out, pb_data(&want), len))) {
		print_message("# %s: output differs from the expected packet\n", f->desc);
		bad = 1;
	}
	if (f->stat >= 0 && stat_sum(f->stat) != before + 1) {
		if (getenv("DEBUG_STATS"))
			for (int k = 0; k < DECAP_STAT_MAX; k++)
				print_message("#   stat %d = %llu\n", k, (unsigned long long)stat_sum(k));
		print_message("# %s: counter %d did not move\n", f->desc, f->stat);
		bad = 1;
	}
	return bad;
}

static int run_fixture(const struct fixture *f)
{
	return run_fixture_on(f, 0);
}

static void test_fixtures(void **state)
{
	int bad = 0;

	for (size_t i = 0; i < sizeof(k_fixtures) / sizeof(k_fixtures[0]); i++)
		bad += run_fixture(&k_fixtures[i]);
	assert_int_equal(bad, 0);
}

/* ---- the second hop and the uplink's MTU ------------------------------------ */

/* The uplink of these fixtures: a veth with MTU 1428, so a first hop of a
 * 1400-byte inner packet fits exactly and its second hop (8 bytes more)
 * does not. */
#define MTU_DEV "sumtu0"
#define MTU 1428
#define ICMP_RATE 4 /* answers per second: enough for the fixtures below */

static void big_tcp(struct pb *p) { tcp(p, P_MOVED, TCP_ACK, 1360, 0); set_df(p); }
static void big_tcp_nodf(struct pb *p) { tcp(p, P_MOVED, TCP_ACK, 1360, 0); }
static void big_udp(struct pb *p) { udp(p, EGRESS, P_MOVED, 1372); set_df(p); }
static void big_udp_nodf(struct pb *p) { udp(p, EGRESS, P_MOVED, 1372); }
static void big_echo(struct pb *p)
{
	pb_fill(p, 1372, 0x11);
	pb_icmp(p, 0, 0, P_MOVED, 1);
	pb_ip(p, ORIGIN, EGRESS, IPPROTO_ICMP, 9, PB_DF, 60);
	finish(p, 0);
}
static void big_err(struct pb *p)
{
	pb_fill(p, 1344, 0x22);
	icmp_err(p, IPPROTO_TCP, EGRESS, P_MOVED, O_TCP);
	set_df(p);
}

/* What the origin gets: fragmentation needed (RFC 1191) from the egress IP,
 * with the inner MTU that fits a second hop, quoting the inner header and
 * 64 bits; back toward the router's MAC. */
static void ptb(struct pb *p, void (*inner)(struct pb *))
{
	struct pb in;

	pb_init(&in);
	inner(&in);
	pb_bytes(p, pb_data(&in), 28);
	pb_icmp(p, 3, 4, 0, MTU - 36);
	pb_ip(p, EGRESS, ORIGIN, IPPROTO_ICMP, 0, PB_DF, 64);
	finish(p, 0xc0);
	pb_eth(p, k_mac_rtr, k_mac_srv, ETH_P_IP);
}

static void b_big_tcp(struct pb *p) { big_tcp(p); gue(p); }
static void w_big_tcp(struct pb *p) { ptb(p, big_tcp); }
static void b_big_udp(struct pb *p) { big_udp(p); gue(p); }
static void w_big_udp(struct pb *p) { ptb(p, big_udp); }
static void b_big_echo(struct pb *p) { big_echo(p); gue(p); }
static void w_big_echo(struct pb *p) { ptb(p, big_echo); }
static void b_big_tcp_nodf(struct pb *p) { big_tcp_nodf(p); gue(p); }
static void b_big_udp_nodf(struct pb *p) { big_udp_nodf(p); gue(p); }
static void b_big_err(struct pb *p) { big_err(p); gue(p); }
static void b_big_est(struct pb *p) { tcp(p, P_EST, TCP_ACK, 1360, 0); set_df(p); gue(p); }
static void w_big_est(struct pb *p) { tcp(p, P_EST, TCP_ACK, 1360, 0); set_df(p); eth(p); }

static const struct fixture k_mtu_fixtures[] = {
	{ "second hop MTU: a TCP segment that fits once marked is sent on", b_mv_tcp, XDP_TX,
	  w_mv_tcp, DECAP_STAT_SECOND_HOP_SENT },
	{ "second hop MTU: a full-size DF TCP segment: fragmentation needed to the origin (MTU - 36)",
	  b_big_tcp, XDP_TX, w_big_tcp, DECAP_STAT_SECOND_HOP_FRAG_NEEDED },
	{ "second hop MTU: a full-size DF UDP datagram: fragmentation needed to the origin", b_big_udp,
	  XDP_TX, w_big_udp, DECAP_STAT_SECOND_HOP_FRAG_NEEDED },
	{ "second hop MTU: a full-size DF echo reply: fragmentation needed to the origin", b_big_echo,
	  XDP_TX, w_big_echo, DECAP_STAT_SECOND_HOP_FRAG_NEEDED },
	{ "second hop MTU: a full-size TCP segment without DF: dropped (XDP cannot fragment)",
	  b_big_tcp_nodf, XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_DROP_MTU },
	{ "second hop MTU: a full-size UDP datagram without DF: dropped", b_big_udp_nodf, XDP_DROP,
	  NULL, DECAP_STAT_SECOND_HOP_DROP_MTU },
	{ "second hop MTU: a full-size ICMP error: no ICMP error about an ICMP error (RFC 1812)",
	  b_big_err, XDP_DROP, NULL, DECAP_STAT_SECOND_HOP_DROP_MTU },
	{ "second hop MTU: the first hop of the same size is decapsulated as ever", b_big_est,
	  XDP_PASS, w_big_est, DECAP_STAT_DECAPSULATED },
};

static void test_second_hop_mtu(void **state)
{
	int ifindex = (int)if_nametoindex(MTU_DEV), bad = 0;

	assert_true(ifindex > 0);
	for (size_t i = 0; i < sizeof(k_mtu_fixtures) / sizeof(k_mtu_fixtures[0]); i++)
		bad += run_fixture_on(&k_mtu_fixtures[i], ifindex);
	assert_int_equal(bad, 0);
}

/* The answers are rate-limited (ICMP_RATE per second per CPU, set in the
 * skeleton's rodata at setup): a burst of oversize second hops gets some
 * answers, then drops counted under their own reason.  The bucket is per
 * CPU, so the burst runs on one. */
static void test_second_hop_ratelimit(void **state)
{
	int ifindex = (int)if_nametoindex(MTU_DEV), limited = 0, answered = 0;
	uint64_t before = stat_sum(DECAP_STAT_SECOND_HOP_DROP_ICMP_RATE);
	cpu_set_t all, one;
	uint8_t out[PB_CAP];
	uint32_t len;
	struct pb in;

	assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	for (int i = 0; i < 4 * ICMP_RATE; i++) {
		pb_init(&in);
		b_big_tcp(&in);
		switch (run_on(skel->progs.decap, &in, out, &len, ifindex)) {
		case XDP_TX:
			answered++;
			break;
		case XDP_DROP:
			limited++;
			break;
		}
	}
	sched_setaffinity(0, sizeof(all), &all);
	assert_true(limited >= 1);
	assert_true(answered <= 2 * ICMP_RATE); /* a second's worth, and a refill */
	assert_int_equal(stat_sum(DECAP_STAT_SECOND_HOP_DROP_ICMP_RATE), before + (uint64_t)limited);
}

/* The tc program on lo: this host's own packets to an egress IP. */
static void test_local(void **state)
{
	uint64_t before = stat_sum(DECAP_STAT_LOCAL);
	uint8_t out[PB_CAP];
	uint32_t len;
	struct pb in;

	pb_init(&in);
	b_plain(&in);
	assert_int_equal(run(skel->progs.decap_local, &in, out, &len), TC_ACT_SHOT);
	assert_int_equal(stat_sum(DECAP_STAT_LOCAL), before + 1);
	pb_init(&in);
	b_plain_other(&in);
	assert_int_equal(run(skel->progs.decap_local, &in, out, &len), TC_ACT_OK);
	/* local refusal kind: the ownership rule's RST to a local connect()
	 * must reach it (ECONNREFUSED at once), and is not counted */
	pb_init(&in);
	b_plain_rst(&in);
	assert_int_equal(run(skel->progs.decap_local, &in, out, &len), TC_ACT_OK);
	assert_int_equal(stat_sum(DECAP_STAT_LOCAL), before + 1);
}

/* Disabled (config not yet written by the agent): everything passes. */
static void test_disabled(void **state)
{
	struct decap_cfg cfg = { 0 };
	uint32_t zero = 0, len;
	uint8_t out[PB_CAP];
	struct pb in;

	assert_int_equal(bpf_map__update_elem(skel->maps.decap_config, &zero, sizeof(zero), &cfg,
					      sizeof(cfg), BPF_ANY), 0);
	pb_init(&in);
	b_bad_src(&in);
	assert_int_equal(run(skel->progs.decap, &in, out, &len), XDP_PASS);
	pb_init(&in);
	b_plain(&in);
	assert_int_equal(run(skel->progs.decap_local, &in, out, &len), TC_ACT_OK);
}

/* ---- a receive path that vouches for the checksum ----------------------------- */

static int sock(int type, uint32_t ip, uint16_t port);

#define P_TAP 2700
#define ORIGIN_TAP IP4(192, 0, 2, 81) /* not local: no martian source */

static void tap_frame(struct pb *p, int bad)
{
	struct virtio_net_hdr vh = { 0 };

	udp(p, EGRESS, P_TAP, 11);
	((pb_iphdr *)pb_data(p))->saddr = htonl(ORIGIN_TAP);
	((pb_iphdr *)pb_data(p))->check = 0;
	finish(p, 0);
	if (bad)
		corrupt(p);
	gue(p);
	/* A sender with TX checksum offload: the outer UDP checksum is left to
	 * "the hardware" (skb->ip_summed = CHECKSUM_PARTIAL), which a receiver
	 * takes as verified, as it takes a NIC's CHECKSUM_UNNECESSARY. */
	vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	vh.gso_type = VIRTIO_NET_HDR_GSO_NONE;
	vh.csum_start = 14 + 20;
	vh.csum_offset = 6;
	pb_bytes(p, &vh, sizeof(vh)); /* the frame may start at any alignment */
}

static int open_tap(const char *name)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr))
		return -1;
	return fd;
}

/* The decap on a TAP device whose frames arrive marked CHECKSUM_UNNECESSARY,
 * as a NIC marks GUE whose outer UDP checksum it validated: the stack then
 * never checks the inner checksum itself, so a corrupted inner datagram
 * reaches the socket unless the decap verifies it. */
static void test_checksum_verdict(void **state)
{
	uint64_t before = stat_sum(DECAP_STAT_INNER_CSUM);
	char buf[64];
	struct pb f;
	int tap = open_tap("sutap0"), rx, ifindex;

	if (tap < 0)
		skip();
	ifindex = (int)if_nametoindex("sutap0");
	assert_int_equal(system("ip link set sutap0 address 02:00:00:00:00:02 up && ip addr add 10.99.0.2/24 dev sutap0 && "
				"ip route add 192.0.2.81/32 dev sutap0"), 0);
	assert_int_equal(bpf_xdp_attach(ifindex, bpf_program__fd(skel->progs.decap), 0, NULL), 0);
	rx = sock(SOCK_DGRAM, EGRESS, P_TAP);
	assert_true(rx >= 0);

	pb_init(&f);
	tap_frame(&f, 0);
	assert_int_equal(write(tap, pb_data(&f), pb_len(&f)), (ssize_t)pb_len(&f));
	usleep(100000);
	assert_int_equal(recv(rx, buf, sizeof(buf), MSG_DONTWAIT), 11); /* the path works */

	pb_init(&f);
	tap_frame(&f, 1);
	assert_int_equal(write(tap, pb_data(&f), pb_len(&f)), (ssize_t)pb_len(&f));
	usleep(100000);
	if (recv(rx, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		fail_msg("a corrupted inner datagram reached the socket");
	assert_int_equal(stat_sum(DECAP_STAT_INNER_CSUM), before + 1);
	bpf_xdp_detach(ifindex, 0, NULL);
	close(tap);
}

/* ---- the sockets ------------------------------------------------------------ */

static int sock(int type, uint32_t ip, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(ip) };
	int one = 1, fd = socket(AF_INET, type, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	k_fds[k_nfds++] = fd;
	return fd;
}

static int connect_to(int fd, uint32_t ip, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(ip) };

	return connect(fd, (struct sockaddr *)&a, sizeof(a));
}

/* A network namespace of our own with EGRESS and ORIGIN on its loopback,
 * and one socket per kind of owner. */
static int sockets(void)
{
	int l, c;

	if (unshare(CLONE_NEWNET) ||
	    system("ip link set lo up && ip addr add 198.51.100.7/32 dev lo && "
		   "ip addr add 192.0.2.80/32 dev lo && "
		   "ip link add " MTU_DEV " mtu 1428 type veth peer name sumtu1"))
		return -1;
	l = sock(SOCK_STREAM, ORIGIN, O_TCP);
	c = sock(SOCK_STREAM, EGRESS, P_EST);
	if (l < 0 || c < 0 || listen(l, 4) || connect_to(c, ORIGIN, O_TCP))
		return -1;
	if (sock(SOCK_STREAM, 0, P_LISTEN_ANY) < 0 || listen(k_fds[k_nfds - 1], 4) ||
	    sock(SOCK_STREAM, EGRESS, P_LISTEN_EGR) < 0 || listen(k_fds[k_nfds - 1], 4))
		return -1;
	if (sock(SOCK_DGRAM, EGRESS, P_UDP) < 0 || sock(SOCK_DGRAM, 0, P_UDP_ANY) < 0)
		return -1;
	c = sock(SOCK_DGRAM, EGRESS, P_UDP_CONN);
	return c < 0 ? -1 : connect_to(c, ORIGIN, O_UDP);
}

static int setup(void **state)
{
	struct decap_cfg cfg = { .router = htonl(ROUTER), .port = htons(GUE), .enabled = 1,
				 .self = htonl(SERVER), .slice_shift = 11 };
	uint32_t zero = 0, egress = htonl(EGRESS);
	uint8_t one = 1;
	struct {
		uint32_t slice, peer, kind;
		uint64_t until;
	} hops[] = {
		{ P_MOVED >> 11, PREV, DECAP_HOP_MOVED_IN, UINT64_MAX },
		{ P_MOVED_EXP >> 11, PREV, DECAP_HOP_MOVED_IN, 1 },
		{ P_EST >> 11, NEW, DECAP_HOP_HELD, UINT64_MAX },
		{ P_HELD_EXP >> 11, NEW, DECAP_HOP_HELD, 1 },
		{ P_MOVED_QUIET >> 11, PREV, DECAP_HOP_MOVED_IN, 0 }, /* set below */
	};
	struct timespec boot;

	/* A deadline one second ago (CLOCK_BOOTTIME, bpf_ktime_get_boot_ns). */
	clock_gettime(CLOCK_BOOTTIME, &boot);
	hops[4].until = (uint64_t)boot.tv_sec * 1000000000ull + (uint64_t)boot.tv_nsec - 1000000000ull;
	if (sockets()) {
		print_message("# cannot set up the sockets: %s\n", strerror(errno));
		return -1;
	}
	skel = decap__open();
	if (!skel)
		return -1;
	skel->rodata->cfg_icmp_rate = ICMP_RATE;
	if (decap__load(skel))
		return -1;
	if (bpf_map__update_elem(skel->maps.decap_config, &zero, sizeof(zero), &cfg, sizeof(cfg),
				 BPF_ANY) ||
	    bpf_map__update_elem(skel->maps.decap_egress, &egress, sizeof(egress), &one,
				 sizeof(one), BPF_ANY))
		return -1;
	for (size_t i = 0; i < sizeof(hops) / sizeof(hops[0]); i++) {
		struct decap_hop_key k = { .ip = egress, .slice = hops[i].slice };
		struct decap_hop v = { .peer = htonl(hops[i].peer), .kind = hops[i].kind,
				       .until_ns = hops[i].until };

		if (bpf_map__update_elem(skel->maps.decap_hops, &k, sizeof(k), &v, sizeof(v), BPF_ANY))
			return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	decap__destroy(skel);
	while (k_nfds > 0)
		close(k_fds[--k_nfds]);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_second_hop_mtu),
		cmocka_unit_test(test_second_hop_ratelimit),
		cmocka_unit_test(test_local),
		cmocka_unit_test(test_checksum_verdict),
		cmocka_unit_test(test_disabled),
	};

	if (geteuid() != 0) {
		printf("1..0 # SKIP BPF_PROG_TEST_RUN needs root\n");
		return 0;
	}
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
