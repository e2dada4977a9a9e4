/* enforce.bpf.c under BPF_PROG_TEST_RUN: table-driven fixtures {description,
 * input frame, expected verdict, expected counter}.  One kind of packet per
 * row; the e2e suite (tests/e2e/agent.t) sends the same kinds through real
 * packet and raw sockets. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include "bpf/enforce_abi.h"
#include "enforce.skel.h"
#include "pktbuild.h"

#define SERVER IP4(10, 99, 0, 2)
#define EGRESS IP4(198, 51, 100, 7)
#define ORIGIN IP4(192, 0, 2, 80)
#define LO 2048 /* our slice: 2048-4095 */
#define HI 4095
#define IN 3000
#define OUT 5000

static const uint8_t k_mac_srv[6] = { 2, 0, 0, 0, 0, 2 }, k_mac_rtr[6] = { 2, 0, 0, 0, 0, 1 };
static struct enforce *skel;

static void eth(struct pb *p) { pb_eth(p, k_mac_rtr, k_mac_srv, ETH_P_IP); }
static void tcp(struct pb *p, uint32_t src, uint16_t sport)
{
	pb_tcp(p, sport, 80);
	pb_ip(p, src, ORIGIN, IPPROTO_TCP, 1, 0, 64);
	eth(p);
}
static void udp(struct pb *p, uint16_t sport, uint16_t id, uint16_t frag)
{
	pb_fill(p, 16, 0xab);
	pb_udp(p, sport, 53);
	pb_ip(p, EGRESS, ORIGIN, IPPROTO_UDP, id, frag, 64);
	eth(p);
}
static void icmp(struct pb *p, uint8_t type, uint16_t id)
{
	pb_icmp(p, type, 0, id, 1);
	pb_ip(p, EGRESS, ORIGIN, IPPROTO_ICMP, 1, 0, 64);
	eth(p);
}
static void proto(struct pb *p, uint8_t proto, uint16_t sport)
{
	pb_fill(p, 12, 0);
	pb_udp(p, sport, 9); /* SCTP, UDP-Lite, DCCP: source port first, as UDP */
	pb_ip(p, EGRESS, ORIGIN, proto, 1, 0, 64);
	eth(p);
}

static void b_other_src(struct pb *p) { tcp(p, SERVER, OUT); }
static void b_tcp_in(struct pb *p) { tcp(p, EGRESS, IN); }
static void b_tcp_lo(struct pb *p) { tcp(p, EGRESS, LO); }
static void b_tcp_hi(struct pb *p) { tcp(p, EGRESS, HI); }
static void b_tcp_below(struct pb *p) { tcp(p, EGRESS, LO - 1); }
static void b_tcp_out(struct pb *p) { tcp(p, EGRESS, OUT); }
static void b_udp_in(struct pb *p) { udp(p, IN, 1, 0); }
static void b_udp_out(struct pb *p) { udp(p, OUT, 1, 0); }
static void b_echo_in(struct pb *p) { icmp(p, 8, IN); }
static void b_echo_out(struct pb *p) { icmp(p, 8, OUT); }
static void b_echo_reply(struct pb *p) { icmp(p, 0, IN); }
static void b_timestamp(struct pb *p) { icmp(p, 13, IN); }
static void b_unreach(struct pb *p) { icmp(p, 3, 0); }
static void b_time_exceeded(struct pb *p) { icmp(p, 11, 0); }
static void b_sctp(struct pb *p) { proto(p, IPPROTO_SCTP, IN); }
static void b_udplite(struct pb *p) { proto(p, IPPROTO_UDPLITE, IN); }
static void b_dccp(struct pb *p) { proto(p, 33, IN); }
static void b_gre(struct pb *p) { proto(p, IPPROTO_GRE, 0); }
static void b_first_frag_in(struct pb *p) { udp(p, IN, 77, PB_MF); }
static void b_next_frag_77(struct pb *p) { udp(p, IN, 77, 3); }
static void b_first_frag_out(struct pb *p) { udp(p, OUT, 78, PB_MF); }
static void b_next_frag_78(struct pb *p) { udp(p, IN, 78, 3); }
static void b_orphan_frag(struct pb *p) { udp(p, IN, 79, PB_MF | 3); }
static void b_truncated(struct pb *p)
{
	pb_fill(p, 1, 0);
	pb_ip(p, EGRESS, ORIGIN, IPPROTO_TCP, 1, 0, 64);
	eth(p);
}
static void b_vlan_out(struct pb *p)
{
	uint16_t *tag;

	pb_fill(p, 16, 0xab);
	pb_udp(p, OUT, 53);
	pb_ip(p, EGRESS, ORIGIN, IPPROTO_UDP, 1, 0, 64);
	tag = pb_push(p, 4);
	tag[0] = htons(42);
	tag[1] = htons(ETH_P_IP);
	pb_eth(p, k_mac_rtr, k_mac_srv, ETH_P_8021Q);
}
static void arp(struct pb *p, uint32_t sender)
{
	uint8_t *a = pb_push(p, 28);
	uint32_t spa = htonl(sender), tpa = htonl(ORIGIN);

	a[1] = 1;                  /* htype Ethernet */
	a[2] = 0x08;               /* ptype IPv4 */
	a[4] = 6;
	a[5] = 4;
	a[7] = 2;                  /* reply */
	memcpy(a + 8, k_mac_srv, 6);
	memcpy(a + 14, &spa, 4);
	memcpy(a + 24, &tpa, 4);
	pb_eth(p, k_mac_rtr, k_mac_srv, ETH_P_ARP);
}
static void b_arp_egress(struct pb *p) { arp(p, EGRESS); }
static void b_arp_server(struct pb *p) { arp(p, SERVER); }
static void b_ipv6(struct pb *p)
{
	pb_fill(p, 40, 0x60);
	pb_eth(p, k_mac_rtr, k_mac_srv, ETH_P_IPV6);
}

static const struct fixture {
	const char *desc;
	void (*build)(struct pb *p);
	int verdict;
	int stat; /* counter expected to move by one, -1: none */
} k_fixtures[] = {
	{ "not from an egress IP: not ours to judge", b_other_src, TC_ACT_OK, -1 },
	{ "TCP from a port in the slice", b_tcp_in, TC_ACT_OK, ENFORCE_STAT_PASS_PORT },
	{ "TCP from the slice's first port", b_tcp_lo, TC_ACT_OK, ENFORCE_STAT_PASS_PORT },
	{ "TCP from the slice's last port", b_tcp_hi, TC_ACT_OK, ENFORCE_STAT_PASS_PORT },
	{ "TCP from the port below the slice", b_tcp_below, TC_ACT_SHOT, ENFORCE_STAT_DROP_PORT },
	{ "TCP from a port outside the slice", b_tcp_out, TC_ACT_SHOT, ENFORCE_STAT_DROP_PORT },
	{ "UDP from a port in the slice", b_udp_in, TC_ACT_OK, ENFORCE_STAT_PASS_PORT },
	{ "UDP from a port outside the slice", b_udp_out, TC_ACT_SHOT, ENFORCE_STAT_DROP_PORT },
	{ "echo request, identifier in the slice", b_echo_in, TC_ACT_OK, ENFORCE_STAT_PASS_ECHO },
	{ "echo request, identifier outside", b_echo_out, TC_ACT_SHOT, ENFORCE_STAT_DROP_ECHO_ID },
	{ "echo reply: egress IPs answer nothing", b_echo_reply, TC_ACT_SHOT,
	  ENFORCE_STAT_DROP_ICMP_TYPE },
	{ "ICMP timestamp", b_timestamp, TC_ACT_SHOT, ENFORCE_STAT_DROP_ICMP_TYPE },
	{ "ICMP destination unreachable", b_unreach, TC_ACT_OK, ENFORCE_STAT_PASS_ICMP_ERROR },
	{ "ICMP time exceeded", b_time_exceeded, TC_ACT_OK, ENFORCE_STAT_PASS_ICMP_ERROR },
	{ "SCTP, port in the slice", b_sctp, TC_ACT_SHOT, ENFORCE_STAT_DROP_PORT_PROTO },
	{ "UDP-Lite, port in the slice", b_udplite, TC_ACT_SHOT, ENFORCE_STAT_DROP_PORT_PROTO },
	{ "DCCP, port in the slice", b_dccp, TC_ACT_SHOT, ENFORCE_STAT_DROP_PORT_PROTO },
	{ "GRE", b_gre, TC_ACT_SHOT, ENFORCE_STAT_DROP_PROTO },
	{ "first fragment from the slice", b_first_frag_in, TC_ACT_OK, ENFORCE_STAT_PASS_PORT },
	{ "its later fragment", b_next_frag_77, TC_ACT_OK, ENFORCE_STAT_PASS_FRAGMENT },
	{ "first fragment from outside", b_first_frag_out, TC_ACT_SHOT, ENFORCE_STAT_DROP_PORT },
	{ "later fragment of a dropped first", b_next_frag_78, TC_ACT_SHOT,
	  ENFORCE_STAT_DROP_FRAGMENT },
	{ "later fragment with no first", b_orphan_frag, TC_ACT_SHOT, ENFORCE_STAT_DROP_FRAGMENT },
	{ "TCP header cut short", b_truncated, TC_ACT_SHOT, ENFORCE_STAT_DROP_MALFORMED },
	{ "VLAN-tagged UDP from outside the slice", b_vlan_out, TC_ACT_SHOT,
	  ENFORCE_STAT_DROP_PORT },
	{ "ARP claiming an egress IP", b_arp_egress, TC_ACT_SHOT, ENFORCE_STAT_DROP_ARP },
	{ "ARP from the server's own address", b_arp_server, TC_ACT_OK, -1 },
	{ "IPv6: not judged", b_ipv6, TC_ACT_OK, -1 },
};

static uint64_t stat_sum(int k)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t vals[ncpu], sum = 0;
	uint32_t key = (uint32_t)k;

	assert_int_equal(bpf_map__lookup_elem(skel->maps.enforce_stats, &key, sizeof(key), vals,
					      sizeof(vals), 0), 0);
	for (int c = 0; c < ncpu; c++)
		sum += vals[c];
	return sum;
}

static uint64_t total(void)
{
	uint64_t t = 0;

	for (int k = 0; k < ENFORCE_STAT_MAX; k++)
		t += stat_sum(k);
	return t;
}

static void run_fixture(const struct fixture *f)
{
	struct pb in;
	uint8_t out[PB_CAP];
	uint64_t before = f->stat >= 0 ? stat_sum(f->stat) : total();
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_out = out, .data_size_out = sizeof(out));

	pb_init(&in);
	f->build(&in);
	opts.data_in = pb_data(&in);
	opts.data_size_in = (uint32_t)pb_len(&in);
	assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.enforce), &opts), 0);
	if ((int)opts.retval != f->verdict)
		fail_msg("%s: verdict %u, want %d", f->desc, opts.retval, f->verdict);
	if (f->stat >= 0 && stat_sum(f->stat) != before + 1)
		fail_msg("%s: counter %d did not move", f->desc, f->stat);
	if (f->stat < 0 && total() != before)
		fail_msg("%s: a counter moved", f->desc);
}

static void test_fixtures(void **state)
{
	for (size_t i = 0; i < sizeof(k_fixtures) / sizeof(k_fixtures[0]); i++)
		run_fixture(&k_fixtures[i]);
}

static int setup(void **state)
{
	static struct enforce_ports ports;
	uint32_t egress = htonl(EGRESS);

	for (uint32_t p = LO; p <= HI; p++)
		ports.bits[p / 64] |= 1ull << (p % 64);
	skel = enforce__open_and_load();
	if (!skel)
		return -1;
	return bpf_map__update_elem(skel->maps.enforce_slices, &egress, sizeof(egress), &ports,
				    sizeof(ports), BPF_ANY) ? -1 : 0;
}

static int teardown(void **state)
{
	enforce__destroy(skel);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures),
	};

	if (geteuid() != 0) {
		printf("1..0 # SKIP BPF_PROG_TEST_RUN needs root\n");
		return 0;
	}
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
