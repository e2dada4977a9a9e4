/* bench/moves: what a live move costs the server's decap per packet.
 *
 * BPF_PROG_TEST_RUN (JIT, `repeat` packets per run, median of `runs` runs)
 * on the decap program (decap.bpf.c compiled into bench_moves.bpf.c behind
 * a frame restore whose own cost is measured and subtracted), in a network
 * namespace of its own holding a real established TCP connection, so the
 * socket look-ups are the kernel's own:
 *   plain decap          a segment of a local connection: socket found,
 *                        checksum verified, outer headers stripped;
 *   second hop sent      a segment on a slice taken over in a move with no
 *                        local socket: look-up miss, the move's entry, the
 *                        8-byte mark inserted, XDP_TX to the previous owner;
 *   second hop received  the previous owner's side: the mark, the held
 *                        slice and its new owner checked, then as plain;
 *   refused (expired)    the same as "sent" after the deadline: dropped;
 *   no socket, no move   the socket look-up's miss alone (drop_no_socket);
 *   echo reply           no look-up (ping sockets), the move's hash look-up
 *                        that every echo reply now pays, then as plain;
 *   echo reply sent on   an echo reply on a slice taken over: to PREV.
 * Each row: ns per packet and its ratio to plain decapsulation. */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "bpf/decap_abi.h"
#include "bench_moves.skel.h"
#include "../../tests/bpf/pktbuild.h"

#define ROUTER IP4(10, 99, 0, 1)
#define SERVER IP4(10, 99, 0, 2)
#define NEW IP4(10, 99, 0, 3)
#define PREV IP4(10, 99, 0, 4)
#define EGRESS IP4(198, 51, 100, 7)
#define ORIGIN IP4(192, 0, 2, 80)
#define GUE 6080
#define P_EST 2200    /* established connection EGRESS:2200 -> ORIGIN:80 (slice 1, held) */
#define P_MOVED 6200  /* slice 3: taken over from PREV, no socket */
#define P_EXPIRED 8300 /* slice 4: taken over, deadline passed */

static const uint8_t mac_srv[6] = { 2, 0, 0, 0, 0, 2 }, mac_rtr[6] = { 2, 0, 0, 0, 0, 1 };

static uint32_t sum16(const uint8_t *b, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	return s;
}

/* The origin's 100-byte TCP ACK to EGRESS:dport, checksums right. */
static void segment(struct pb *p, uint16_t dport)
{
	uint8_t *ip, *l4;
	uint32_t s;
	size_t len;

	pb_fill(p, 100, 0xab);
	pb_tcp(p, 80, dport);
	pb_ip(p, ORIGIN, EGRESS, IPPROTO_TCP, 7, 0, 60);
	ip = pb_data(p);
	l4 = ip + 20;
	len = pb_len(p) - 20;
	s = sum16(l4, len, sum16(ip + 12, 8, IPPROTO_TCP + (uint32_t)len));
	s = (s & 0xffff) + (s >> 16);
	s = ~((s & 0xffff) + (s >> 16)) & 0xffff;
	l4[16] = (uint8_t)(s >> 8);
	l4[17] = (uint8_t)s;
}

static void outer(struct pb *p, uint32_t src, int mark)
{
	static const uint8_t h[8] = { 0x01, 4, 0, 0, 'S', 'U', '2', 'H' };

	if (mark)
		memcpy(pb_push(p, 8), h, 8);
	pb_udp(p, 40000, GUE);
	pb_ip(p, src, SERVER, IPPROTO_UDP, 9, 0, 64);
	pb_eth(p, mac_srv, mac_rtr, 0x0800);
}

static void f_plain(struct pb *p) { segment(p, P_EST); outer(p, ROUTER, 0); }
static void f_sent(struct pb *p) { segment(p, P_MOVED); outer(p, ROUTER, 0); }
static void f_received(struct pb *p) { segment(p, P_EST); outer(p, NEW, 1); }
static void f_expired(struct pb *p) { segment(p, P_EXPIRED); outer(p, ROUTER, 0); }
static void f_none(struct pb *p) { segment(p, 2500); outer(p, ROUTER, 0); }

/* The origin's echo reply (identifier id, 100 bytes of data), checksum right. */
static void echo(struct pb *p, uint16_t id)
{
	uint8_t *l4;
	uint32_t s;

	pb_fill(p, 100, 0x11);
	pb_icmp(p, 0, 0, id, 1);
	l4 = pb_data(p);
	s = sum16(l4, pb_len(p), 0);
	s = (s & 0xffff) + (s >> 16);
	s = ~((s & 0xffff) + (s >> 16)) & 0xffff;
	l4[2] = (uint8_t)(s >> 8);
	l4[3] = (uint8_t)s;
	pb_ip(p, ORIGIN, EGRESS, IPPROTO_ICMP, 7, 0, 60);
}

static void f_echo(struct pb *p) { echo(p, 1100); outer(p, ROUTER, 0); } /* slice 0: no move */
static void f_echo_sent(struct pb *p) { echo(p, P_MOVED); outer(p, ROUTER, 0); }

struct row {
	const char *name;
	void (*build)(struct pb *);
	int verdict;
};

static int64_t cost(struct bench_moves *b, int prog, void (*build)(struct pb *), unsigned repeat,
		    unsigned runs, int want)
{
	static struct pb p;
	struct {
		uint32_t len;
		uint8_t bytes[64];
	} tmpl;
	uint64_t t[32];
	uint32_t k = 0;

	pb_init(&p);
	build(&p);
	tmpl.len = (uint32_t)pb_len(&p);
	memcpy(tmpl.bytes, pb_data(&p), sizeof(tmpl.bytes));
	if (bpf_map__update_elem(b->maps.bench_tmpl, &k, 4, &tmpl, sizeof(tmpl), 0))
		return -EINVAL;
	for (unsigned r = 0; r < runs; r++) {
		LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = pb_data(&p), .data_size_in = pb_len(&p),
			    .repeat = repeat);

		if (bpf_prog_test_run_opts(prog, &ro))
			return -errno;
		if (want >= 0 && (int)ro.retval != want)
			return -EPROTO;
		t[r] = ro.duration;
	}
	for (unsigned i = 1; i < runs; i++) /* insertion sort: a handful */
		for (unsigned j = i; j > 0 && t[j] < t[j - 1]; j--) {
			uint64_t x = t[j];

			t[j] = t[j - 1];
			t[j - 1] = x;
		}
	return (int64_t)t[runs / 2];
}

static int sock_at(int type, uint32_t ip, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(ip) };
	int one = 1, fd = socket(AF_INET, type, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	return fd;
}

/* Its own network namespace: EGRESS and ORIGIN on lo, one connection. */
static int setup_netns(void)
{
	struct sockaddr_in o = { .sin_family = AF_INET, .sin_port = htons(80), .sin_addr.s_addr = htonl(ORIGIN) };
	int l, c;

	if (unshare(CLONE_NEWNET) ||
	    system("ip link set lo up && ip addr add 198.51.100.7/32 dev lo && ip addr add 192.0.2.80/32 dev lo"))
		return -1;
	l = sock_at(SOCK_STREAM, ORIGIN, 80);
	c = sock_at(SOCK_STREAM, EGRESS, P_EST);
	if (l < 0 || c < 0 || listen(l, 4) || connect(c, (struct sockaddr *)&o, sizeof(o)))
		return -1;
	return 0;
}

static int configure(struct bench_moves *b)
{
	struct decap_cfg cfg = { .router = htonl(ROUTER), .port = htons(GUE), .enabled = 1, .self = htonl(SERVER),
				 .slice_shift = 11 };
	uint32_t zero = 0, egress = htonl(EGRESS);
	uint8_t one = 1;
	struct {
		uint32_t slice, peer, kind;
		uint64_t until;
	} hops[] = {
		{ P_MOVED >> 11, PREV, DECAP_HOP_MOVED_IN, UINT64_MAX },
		{ P_EXPIRED >> 11, PREV, DECAP_HOP_MOVED_IN, 1 },
		{ P_EST >> 11, NEW, DECAP_HOP_HELD, UINT64_MAX },
	};

	if (bpf_map__update_elem(b->maps.decap_config, &zero, 4, &cfg, sizeof(cfg), 0) ||
	    bpf_map__update_elem(b->maps.decap_egress, &egress, 4, &one, 1, 0))
		return -1;
	for (size_t i = 0; i < sizeof(hops) / sizeof(hops[0]); i++) {
		struct decap_hop_key k = { .ip = egress, .slice = hops[i].slice };
		struct decap_hop v = { .peer = htonl(hops[i].peer), .kind = hops[i].kind, .until_ns = hops[i].until };

		if (bpf_map__update_elem(b->maps.decap_hops, &k, sizeof(k), &v, sizeof(v), 0))
			return -1;
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: bench/moves [--repeat N] [--runs N]\n"
		   "  --repeat N   packets per BPF_PROG_TEST_RUN run (default 1000000)\n"
		   "  --runs N     runs per row, the median is kept (default 5, at most 32)\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "repeat", 1, 0, 'r' }, { "runs", 1, 0, 'n' }, { "help", 0, 0, 'h' },
					    { 0, 0, 0, 0 } };
	static const struct row rows[] = {
		{ "plain decap (socket found, stripped)", f_plain, XDP_PASS },
		{ "second hop sent (no socket, re-encapsulated)", f_sent, XDP_TX },
		{ "second hop received (previous owner)", f_received, XDP_PASS },
		{ "moved slice past its deadline (refused)", f_expired, XDP_DROP },
		{ "no socket, no move (refused as ever)", f_none, XDP_DROP },
		{ "echo reply (no move on its slice, passed)", f_echo, XDP_PASS },
		{ "echo reply sent on (slice taken over)", f_echo_sent, XDP_TX },
	};
	unsigned repeat = 1000000, runs = 5;
	struct bench_moves *b;
	int64_t base, plain = 0;
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'r': repeat = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': runs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!repeat || !runs || runs > 32) {
		usage(stderr);
		return 2;
	}
	if (geteuid()) {
		fprintf(stderr, "bench/moves: needs root (BPF_PROG_TEST_RUN, a network namespace)\n");
		return 1;
	}
	if (setup_netns()) {
		perror("bench/moves: network namespace");
		return 1;
	}
	b = bench_moves__open_and_load();
	if (!b || configure(b)) {
		fprintf(stderr, "bench/moves: cannot load or configure the decap\n");
		return 1;
	}
	base = cost(b, bpf_program__fd(b->progs.bench_restore), f_plain, repeat, runs, -1);
	printf("Live moves, the server's decap: per-packet cost, BPF_PROG_TEST_RUN, repeat %u, median of %u runs\n"
	       "(frame restore, %lld ns, subtracted)\n\n%-46s %8s %8s\n",
	       repeat, runs, (long long)base, "path", "ns/pkt", "ratio");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int64_t ns = cost(b, bpf_program__fd(b->progs.bench_decap), rows[i].build, repeat, runs,
				  rows[i].verdict);

		if (ns < 0) {
			fprintf(stderr, "bench/moves: %s: %s\n", rows[i].name,
				ns == -EPROTO ? "unexpected verdict" : strerror((int)-ns));
			bench_moves__destroy(b);
			return 1;
		}
		ns -= base;
		if (!i)
			plain = ns > 0 ? ns : 1;
		printf("%-46s %8lld %8.2f\n", rows[i].name, (long long)ns, (double)ns / (double)plain);
	}
	bench_moves__destroy(b);
	return 0;
}
