/* decap.bpf.c under BPF_PROG_TEST_RUN: table-driven fixtures {description,
 * input packet, expected verdict, expected output, expected counter}. */
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

#include "bpf/decap_abi.h"
#include "decap.skel.h"
#include "pktbuild.h"

#define ROUTER IP4(10, 99, 0, 1)
#define SERVER IP4(10, 99, 0, 2)
#define EGRESS IP4(198, 51, 100, 7)
#define ORIGIN IP4(192, 0, 2, 80)
#define GUE 6080

static const uint8_t k_mac_srv[6] = { 2, 0, 0, 0, 0, 2 }, k_mac_rtr[6] = { 2, 0, 0, 0, 0, 1 };
static struct decap *skel;

/* The inner packet the origin sent: TCP from origin:80 to egress:port. */
static void inner(struct pb *p, uint32_t dst, uint16_t dport)
{
	pb_fill(p, 16, 0xab);
	pb_tcp(p, 80, dport);
	pb_ip(p, ORIGIN, dst, IPPROTO_TCP, 7, 0, 60);
}

static void gue(struct pb *p, uint32_t outer_src, uint16_t port, uint16_t frag)
{
	pb_udp(p, 40000, port);
	pb_ip(p, outer_src, SERVER, IPPROTO_UDP, 9, frag, 64);
	pb_eth(p, k_mac_srv, k_mac_rtr, ETH_P_IP);
}

static void b_ok(struct pb *p) { inner(p, EGRESS, 2100); gue(p, ROUTER, GUE, 0); }
static void b_bad_src(struct pb *p) { inner(p, EGRESS, 2100); gue(p, IP4(10, 99, 0, 9), GUE, 0); }
static void b_not_ours(struct pb *p) { inner(p, IP4(198, 51, 100, 8), 2100); gue(p, ROUTER, GUE, 0); }
static void b_other_port(struct pb *p) { inner(p, EGRESS, 2100); gue(p, ROUTER, 4789, 0); }
static void b_fragment(struct pb *p) { inner(p, EGRESS, 2100); gue(p, ROUTER, GUE, 0x2000); }
static void b_plain(struct pb *p)
{
	inner(p, EGRESS, 2100);
	pb_eth(p, k_mac_srv, k_mac_rtr, ETH_P_IP);
}
static void b_truncated(struct pb *p)
{
	pb_fill(p, 8, 0x45); /* 8 bytes of "inner": not even an IPv4 header */
	gue(p, ROUTER, GUE, 0);
}
static void want_inner(struct pb *p)
{
	inner(p, EGRESS, 2100);
	pb_eth(p, k_mac_srv, k_mac_rtr, ETH_P_IP);
}

static const struct fixture {
	const char *desc;
	void (*build)(struct pb *p);
	int verdict;
	void (*want)(struct pb *p); /* NULL: output equals input */
	int stat;                   /* counter expected to move, -1: none */
} k_fixtures[] = {
	{ "GUE from the router to our egress IP: inner packet passed up", b_ok, XDP_PASS,
	  want_inner, DECAP_STAT_DECAPSULATED },
	{ "GUE from another host: dropped", b_bad_src, XDP_DROP, NULL, DECAP_STAT_BAD_SOURCE },
	{ "GUE for an IP that is not ours: dropped", b_not_ours, XDP_DROP, NULL,
	  DECAP_STAT_NOT_OURS },
	{ "UDP to another port: not GUE, untouched", b_other_port, XDP_PASS, NULL, -1 },
	{ "outer fragment: left to the kernel", b_fragment, XDP_PASS, NULL, DECAP_STAT_FRAGMENT },
	{ "plain TCP to the egress IP: untouched", b_plain, XDP_PASS, NULL, -1 },
	{ "GUE with a truncated inner packet: dropped", b_truncated, XDP_DROP, NULL,
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

static void run_fixture(const struct fixture *f)
{
	struct pb in, want;
	uint8_t out[PB_CAP];
	uint64_t before = f->stat >= 0 ? stat_sum(f->stat) : 0;
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_out = out, .data_size_out = sizeof(out));

	pb_init(&in);
	f->build(&in);
	pb_init(&want);
	(f->want ? f->want : f->build)(&want);
	opts.data_in = pb_data(&in);
	opts.data_size_in = (uint32_t)pb_len(&in);
	assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.decap), &opts), 0);
	if ((int)opts.retval != f->verdict)
		fail_msg("%s: verdict %u, want %d", f->desc, opts.retval, f->verdict);
	if (f->verdict == XDP_PASS) {
		assert_int_equal(opts.data_size_out, pb_len(&want));
		assert_memory_equal(out, pb_data(&want), pb_len(&want));
	}
	if (f->stat >= 0 && stat_sum(f->stat) != before + 1)
		fail_msg("%s: counter %d did not move", f->desc, f->stat);
}

static void test_fixtures(void **state)
{
	for (size_t i = 0; i < sizeof(k_fixtures) / sizeof(k_fixtures[0]); i++)
		run_fixture(&k_fixtures[i]);
}

/* Disabled (config not yet written by the agent): everything passes. */
static void test_disabled(void **state)
{
	struct decap_cfg cfg = { 0 };
	uint32_t zero = 0;
	struct pb in;
	uint8_t out[PB_CAP];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_out = out, .data_size_out = sizeof(out));

	assert_int_equal(bpf_map__update_elem(skel->maps.decap_config, &zero, sizeof(zero), &cfg,
					      sizeof(cfg), BPF_ANY), 0);
	pb_init(&in);
	b_bad_src(&in);
	opts.data_in = pb_data(&in);
	opts.data_size_in = (uint32_t)pb_len(&in);
	assert_int_equal(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.decap), &opts), 0);
	assert_int_equal(opts.retval, XDP_PASS);
}

static int setup(void **state)
{
	struct decap_cfg cfg = { .router = htonl(ROUTER), .port = htons(GUE), .enabled = 1 };
	uint32_t zero = 0, egress = htonl(EGRESS);
	uint8_t one = 1;

	skel = decap__open_and_load();
	if (!skel)
		return -1;
	if (bpf_map__update_elem(skel->maps.decap_config, &zero, sizeof(zero), &cfg, sizeof(cfg),
				 BPF_ANY) ||
	    bpf_map__update_elem(skel->maps.decap_egress, &egress, sizeof(egress), &one,
				 sizeof(one), BPF_ANY))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	decap__destroy(skel);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixtures),
		cmocka_unit_test(test_disabled),
	};

	if (geteuid() != 0) {
		printf("1..0 # SKIP BPF_PROG_TEST_RUN needs root\n");
		return 0;
	}
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
