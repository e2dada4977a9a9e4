/* bench/router: what the XDP router costs and how much it forwards.
 *
 * 1. Per-packet cost of each router path, BPF_PROG_TEST_RUN with live frames
 *    (the frame is reset for every repetition, XDP_TX really transmits, the
 *    JIT is on), printed beside a baseline program that only parses Ethernet
 *    + IPv4 and bounces the frame (XDP_TX), measured in the same run.
 * 2. Packets per second through a router namespace, one generator (an XDP
 *    program run with live frames, XDP_TX out of a veth) feeding in turn:
 *    softunicast XDP, Linux forwarding with an nftables stateful SNAT rule,
 *    plain Linux forwarding.  The sink counts what comes out in XDP.
 *
 * 3. Plan reload: the time to load the bench/plan-shaped plan file (300 DCs x
 *    100 servers, 60,000 egress IPs in use, 31 slices per IP) beside the time
 *    one DC's router takes to apply it to fresh maps, to re-apply it
 *    unchanged, and to apply a plan in which 1,000 servers moved (were
 *    replaced by servers at new addresses), and the router's map memory.
 *
 * Needs root.  A benchmark, not a test: it prints figures and never fails on
 * them.  Namespaces are named su-bench-*-PID and removed on exit. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <net/if.h>
#include <linux/if_link.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "../../tests/bpf/pktbuild.h"
#include "bench_router.skel.h"
#include "router.skel.h"
#include "decap.skel.h"
#include "bpf/decap_abi.h"
#include "../../src/router/router_sync.c"

struct opts {
	unsigned repeat, runs, flows;
	unsigned long gen_packets;
	int skip_cost, skip_pps, skip_reload;
	double reload_scale;
};

static char ns_cost[64], ns_gen[64], ns_rtr[64], ns_sink[64], ns_decap[64];
static int jit; /* read in the initial namespace: net.core.bpf_jit_enable is global */
static int ns_self = -1;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc)
		fprintf(stderr, "bench/router: failed (%d): %s\n", rc, cmd);
	return rc;
}

static int enter(const char *ns)
{
	char path[128];
	int fd, rc;

	if (!ns)
		return setns(ns_self, CLONE_NEWNET);
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

static void cleanup(void)
{
	const char *all[] = { ns_cost, ns_gen, ns_rtr, ns_sink, ns_decap };

	enter(NULL);
	for (size_t i = 0; i < 5; i++)
		if (all[i][0]) {
			char cmd[160];

			snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", all[i]);
			if (system(cmd)) {
				/* already gone */
			}
		}
}

static void on_signal(int sig)
{
	cleanup();
	_exit(128 + sig);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- part 1: per-packet cost ---- */

static const uint8_t MAC_A[6] = { 2, 0, 0, 0, 0, 1 }, MAC_B[6] = { 2, 0, 0, 0, 0, 2 };
#define ROUTER IP4(10, 0, 0, 1)
#define ROUTER_B IP4(10, 2, 0, 1)
#define SRV_A IP4(10, 1, 0, 11)
#define ORIGIN IP4(203, 0, 113, 9)
#define EG_LOCAL IP4(198, 51, 100, 1)
#define EG_B IP4(198, 51, 100, 2)
#define PORT_A 40000

static void frame(struct pb *p)
{
	pb_eth(p, MAC_A, MAC_B, ETH_P_IP);
}

static void tcp_to(struct pb *p, uint32_t dst, uint16_t dport)
{
	pb_fill(p, 16, 0x42); /* 70-byte frames: the restore rewrites 64 */
	pb_tcp(p, 443, dport);
	pb_ip(p, ORIGIN, dst, IPPROTO_TCP, 0x1234, PB_DF, 57);
	frame(p);
}

static void p_local(struct pb *p) { tcp_to(p, EG_LOCAL, PORT_A); }
static void p_remote(struct pb *p) { tcp_to(p, EG_B, PORT_A); }
static void p_noslice(struct pb *p) { tcp_to(p, EG_LOCAL, 10240); }
static void p_pass(struct pb *p) { tcp_to(p, IP4(192, 0, 2, 77), PORT_A); }

static void p_backbone(struct pb *p)
{
	pb_fill(p, 16, 0x42);
	pb_tcp(p, 443, PORT_A);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_TCP, 0x1234, PB_DF, 57);
	pb_udp(p, 50000, 6080);
	pb_ip(p, ROUTER_B, ROUTER, IPPROTO_UDP, 0, PB_DF, 62);
	frame(p);
}

static void p_icmp(struct pb *p)
{
	pb_fill(p, 8, 0);
	pb_udp(p, PORT_A, 53);
	pb_ip(p, EG_LOCAL, ORIGIN, IPPROTO_UDP, 9, PB_DF, 1);
	pb_icmp(p, SU_ICMP_DEST_UNREACH, 3, 0, 0);
	pb_ip(p, IP4(192, 0, 2, 254), EG_LOCAL, IPPROTO_ICMP, 5, 0, 250);
	frame(p);
}

static void p_frag_first(struct pb *p)
{
	pb_fill(p, 32, 0x31);
	pb_udp(p, 53, PORT_A);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0x7777, PB_MF, 60);
	frame(p);
}

static void p_frag_later(struct pb *p)
{
	pb_fill(p, 40, 0x32);
	pb_ip(p, ORIGIN, EG_LOCAL, IPPROTO_UDP, 0x7777, 3, 60);
	frame(p);
}

/* ns per packet: median of o->runs runs of BPF_PROG_TEST_RUN with `repeat`
 * (the kernel times the loop and divides).  The bench_* programs restore
 * the frame first, see bench_router.bpf.c. */
static int cost_live; /* live frames: XDP_TX really transmits (to a veth peer) */

static int64_t cost(struct bench_router *b, int prog, void (*build)(struct pb *), int ifindex,
		    const struct opts *o)
{
	static struct pb p;
	uint64_t t[32];
	unsigned runs = o->runs > 32 ? 32 : o->runs;
	struct {
		uint32_t len;
		uint8_t bytes[64];
	} tmpl;
	uint32_t k = 0;

	pb_init(&p);
	build(&p);
	tmpl.len = (uint32_t)pb_len(&p);
	memcpy(tmpl.bytes, pb_data(&p), sizeof(tmpl.bytes));
	if (pb_len(&p) < sizeof(tmpl.bytes) ||
	    bpf_map__update_elem(b->maps.bench_tmpl, &k, 4, &tmpl, sizeof(tmpl), 0))
		return -EINVAL;
	for (unsigned r = 0; r < runs; r++) {
		struct xdp_md ctx = { .ingress_ifindex = ifindex, .data_end = pb_len(&p) };
		LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = pb_data(&p),
			    .data_size_in = pb_len(&p), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
			    .repeat = o->repeat,
			    .flags = cost_live ? BPF_F_TEST_XDP_LIVE_FRAMES : 0,
			    .batch_size = cost_live ? 64 : 0);

		if (bpf_prog_test_run_opts(prog, &ro))
			return -errno;
		if (!cost_live && ro.retval == XDP_ABORTED)
			return -EPROTO;
		t[r] = ro.duration;
	}
	qsort(t, runs, sizeof(t[0]), cmp_u64);
	return (int64_t)t[runs / 2];
}

static uint64_t stat_sum(struct bpf_map *stats, uint32_t stat)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t v[ncpu], n = 0;

	if (bpf_map__lookup_elem(stats, &stat, 4, v, sizeof(v), 0))
		return 0;
	for (int i = 0; i < ncpu; i++)
		n += v[i];
	return n;
}

struct router_maps {
	struct bpf_map *ips, *ipv, *slots, *routers;
};

static int fill_router(const struct router_maps *r)
{
	struct su_ip_val local = { .flags = SU_IP_LOCAL }, remote = { .router = htonl(ROUTER_B) };
	struct su_router_maps m = { .ips = bpf_map__fd(r->ips), .ipv = bpf_map__fd(r->ipv) };
	__be32 k, srv = htonl(SRV_A);
	uint32_t idx = (PORT_A >> 11) - 1, dc = 1;
	int err = 0;

	err |= su_router__ip_put(&m, htonl(EG_LOCAL), &local);
	err |= su_router__ip_put(&m, htonl(EG_B), &remote);
	err |= bpf_map__update_elem(r->slots, &idx, 4, &srv, 4, 0);
	k = htonl(ROUTER_B);
	err |= bpf_map__update_elem(r->routers, &k, 4, &dc, 4, 0);
	return err ? -1 : 0;
}

static int jit_on(void)
{
	FILE *f = fopen("/proc/sys/net/core/bpf_jit_enable", "r");
	int on = 0;

	if (f) {
		on = fgetc(f) == '1';
		fclose(f);
	}
	return on;
}

static struct router *open_router(uint32_t router_addr)
{
	struct router *r = router__open();
	struct bpf_map *m;

	if (!r)
		return NULL;
	bpf_object__for_each_map(m, r->obj)
		bpf_map__set_pin_path(m, NULL);
	r->rodata->cfg_router = htonl(router_addr);
	r->rodata->cfg_gue_port = htons(6080);
	r->rodata->cfg_slice_shift = 11;
	r->rodata->cfg_first_slice = 1;
	r->rodata->cfg_slices_per_ip = 31;
	if (router__load(r)) {
		router__destroy(r);
		return NULL;
	}
	return r;
}

static int cost_table(struct bench_router *b, const struct opts *o, int ifindex, int prog,
		      int base, int rest)
{
	static const struct {
		const char *name;
		void (*build)(struct pb *);
		const char *verdict;
		int stat; /* the outcome every packet of the run must count in */
		int grows; /* prepends 28 bytes: the restore undoes it each time */
	} paths[] = {
		{ "local slice -> server", p_local, "TX", SU_STAT_FWD_LOCAL, 1 },
		{ "remote DC -> router", p_remote, "TX", SU_STAT_FWD_REMOTE, 1 },
		{ "backbone in -> server", p_backbone, "TX", SU_STAT_FWD_LOCAL, 0 },
		{ "ICMP error -> server", p_icmp, "TX", SU_STAT_FWD_LOCAL, 1 },
		{ "later fragment -> server", p_frag_later, "TX", SU_STAT_FWD_LOCAL, 1 },
		{ "drop: no slice", p_noslice, "DROP", SU_STAT_DROP_NO_SLICE, 0 },
		{ "pass: not an egress IP", p_pass, "PASS", SU_STAT_PASS, 0 },
	};
	int64_t grow, rest0, undo;

	/* Teach the fragment LRU the datagram the later fragment belongs to. */
	if (cost(b, prog, p_frag_first, ifindex, &(struct opts){ .repeat = 1, .runs = 1 }) < 0)
		return -1;

	printf("Per-packet cost, BPF_PROG_TEST_RUN%s, repeat %u, median of %u runs, JIT %s\n",
	       cost_live ? " with live frames (XDP_TX transmits to a veth)" : " (program only)",
	       o->repeat, o->runs, jit ? "on" : "OFF");
	/* The restore's extra work on encapsulating paths: undoing the head
	 * adjustment, about half of (restore + adjust) - restore. */
	grow = cost(b, bpf_program__fd(b->progs.bench_grow), p_local, ifindex, o);
	rest0 = cost(b, rest, p_local, ifindex, o);
	undo = grow > rest0 ? (grow - rest0) / 2 : 0;
	printf("%-26s %-5s %8s %9s %7s %8s %8s\n", "path", "verd.", "ns", "baseline", "ratio",
	       "ratio*", "extra*");
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		int64_t c, b0, b1, r0, rb;
		uint64_t n0, n1;

		/* The baseline is measured right before and after each path:
		 * frequency and cache state drift over a run. */
		b0 = cost(b, base, p_local, ifindex, o);
		rb = cost(b, rest, p_local, ifindex, o);
		n0 = stat_sum(b->maps.su_stats, paths[i].stat);
		c = cost(b, prog, paths[i].build, ifindex, o);
		n1 = stat_sum(b->maps.su_stats, paths[i].stat);
		r0 = cost(b, rest, paths[i].build, ifindex, o);
		b1 = cost(b, base, p_local, ifindex, o);
		if (c < 0 || b0 < 0 || b1 < 0 || r0 < 0 || rb < 0) {
			fprintf(stderr, "bench/router: test run failed: %s\n", strerror(errno));
			return -1;
		}
		(void)r0;
		(void)rb;
		printf("%-26s %-5s %8lld %9lld %6.2fx %7.2fx %+8lld\n", paths[i].name,
		       paths[i].verdict, (long long)c, (long long)(b0 + b1) / 2,
		       2.0 * (double)c / (double)(b0 + b1),
		       2.0 * (double)(c - (paths[i].grows ? undo : 0)) / (double)(b0 + b1),
		       (long long)(c - (paths[i].grows ? undo : 0) - (b0 + b1) / 2));
		/* Every repetition must really have taken the path measured. */
		if (n1 - n0 != (uint64_t)o->repeat * o->runs)
			printf("  (!) %s counted %llu of %llu packets\n",
			       su_stat_desc[paths[i].stat].label, (unsigned long long)(n1 - n0),
			       (unsigned long long)o->repeat * o->runs);
	}
	if (!cost_live)
		printf("baseline: parse Ethernet + IPv4, swap MACs, XDP_TX, on the local path's\n"
		       "packet.  Both run behind the same frame restore (test runs reuse the buffer,\n"
		       "live frames recycle pages without re-copying): the restore-only program\n"
		       "costs %lld ns here, so the bounce itself is nearly free.\n", (long long)rest0);
	printf("ratio*, extra*: without the restore's undoing of the 28-byte head adjustment\n"
	       "(%lld ns, a bench artifact the baseline does not pay); extra* = ns over baseline.\n",
	       (long long)undo);
	printf("Goal: local and remote within 1.5x.\n\n");
	return 0;
}

static int part_cost(struct bench_router *b, const struct opts *o)
{
	struct router_maps rm = { b->maps.su_ips, b->maps.su_ipv, b->maps.su_slots, b->maps.su_routers };
	int ifindex, prog, base, rest;

	snprintf(ns_cost, sizeof(ns_cost), "su-bench-cost-%d", getpid());
	if (sh("ip netns add %s", ns_cost) || enter(ns_cost))
		return -1;
	if (sh("ip link set lo up && ip link add su0 address 02:00:00:00:00:01 type veth peer "
	       "name su0p address 02:00:00:00:00:02 && ip link set su0 up && ip link set su0p up && "
	       "ip addr add 10.0.0.1/24 dev su0 && "
	       "ip neigh replace 10.0.0.2 lladdr 02:00:00:00:00:02 nud permanent dev su0 && "
	       "ip route add 10.1.0.0/16 via 10.0.0.2 && ip route add 10.2.0.0/16 via 10.0.0.2 && "
	       "ip route add 203.0.113.0/24 via 10.0.0.2 && sysctl -qw net.ipv4.ip_forward=1"))
		return -1;
	ifindex = (int)if_nametoindex("su0");
	if (fill_router(&rm))
		return -1;
	/* su0 is the DC side (Internet and servers on one link, as in the
	 * lab): every packet pays the anti-spoofing look-up of its source. */
	{
		struct su_ifrole role = { (uint32_t)ifindex, SU_IF_DC | SU_IF_KNOWN };
		uint32_t k = 0;

		if (bpf_map__update_elem(b->maps.su_ifroles, &k, 4, &role, sizeof(role), 0))
			return -1;
	}
	prog = bpf_program__fd(b->progs.bench_router);
	base = bpf_program__fd(b->progs.bench_bounce);
	rest = bpf_program__fd(b->progs.bench_restore);

	/* Live frames transmit for real: the peer drops them in XDP (a veth
	 * takes XDP frames only when its peer runs XDP). */
	if (bpf_xdp_attach((int)if_nametoindex("su0p"), bpf_program__fd(b->progs.xdp_sink),
			   XDP_FLAGS_DRV_MODE, NULL))
		return -1;
	for (cost_live = 0; cost_live < 2; cost_live++)
		if (cost_table(b, o, ifindex, prog, base, rest))
			return -1;
	enter(NULL);
	return 0;
}

/* ---- the decap row: the agent's decap against plain decapsulation ---- */

#define D_ROUTER IP4(10, 99, 0, 1)
#define D_SERVER IP4(10, 99, 0, 2)
#define D_EGRESS IP4(198, 51, 100, 7)
#define D_ORIGIN IP4(192, 0, 2, 80)
#define D_PORT 2200

static uint32_t d_sum16(const uint8_t *b, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		sum += (uint32_t)b[n - 1] << 8;
	return sum;
}

/* The router's GUE to the server: a 100-byte TCP ACK from the origin to an
 * established socket on the egress IP, its checksum right (the decap
 * verifies it), then outer IPv4 + UDP to the GUE port. */
static void p_gue_ack(struct pb *p)
{
	uint8_t *ip, *l4;
	uint32_t sum;
	size_t len;

	pb_fill(p, 100, 0xab);
	pb_tcp(p, 80, D_PORT);
	((uint8_t *)pb_data(p))[13] = 0x10; /* ACK */
	pb_ip(p, D_ORIGIN, D_EGRESS, IPPROTO_TCP, 7, 0, 60);
	ip = pb_data(p);
	l4 = ip + 20;
	len = pb_len(p) - 20;
	l4[16] = l4[17] = 0;
	sum = d_sum16(l4, len, d_sum16(ip + 12, 8, IPPROTO_TCP + (uint32_t)len));
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	l4[16] = (uint8_t)(~sum >> 8);
	l4[17] = (uint8_t)~sum;
	pb_udp(p, 40000, 6080);
	pb_ip(p, D_ROUTER, D_SERVER, IPPROTO_UDP, 9, 0, 64);
	pb_eth(p, MAC_A, MAC_B, ETH_P_IP);
}

static int d_sock(uint32_t ip, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(ip) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	return fd;
}

/* The server side of issue 8 §1 and §3: before passing a packet up, the
 * decap looks up the socket it is for (bpf_sk_lookup_tcp, and the socket's
 * bound address) and verifies the inner TCP checksum.  Program only, the
 * same restore and tail call in front of both. */
static int part_decap(struct bench_router *b, const struct opts *o)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(80),
				  .sin_addr.s_addr = htonl(D_ORIGIN) };
	struct decap_cfg cfg = { .router = htonl(D_ROUTER), .port = htons(6080), .enabled = 1 };
	int64_t plain[2], full[2];
	uint64_t n0 = 0, n1 = 0;
	struct decap *d = NULL;
	int l, c, tail = bpf_program__fd(b->progs.bench_tail_call), rc = -1;
	uint32_t k = 0, egress = htonl(D_EGRESS);
	uint8_t one = 1;
	int ncpu = libbpf_num_possible_cpus();
	uint64_t vals[ncpu > 0 ? ncpu : 1];

	snprintf(ns_decap, sizeof(ns_decap), "su-bench-decap-%d", getpid());
	if (sh("ip netns add %s", ns_decap) || enter(ns_decap) ||
	    sh("ip link set lo up && ip addr add 198.51.100.7/32 dev lo && "
	       "ip addr add 192.0.2.80/32 dev lo"))
		return -1;
	l = d_sock(D_ORIGIN, 80);
	c = d_sock(D_EGRESS, D_PORT);
	if (l < 0 || c < 0 || listen(l, 4) || connect(c, (struct sockaddr *)&to, sizeof(to)))
		goto out;
	d = decap__open_and_load();
	if (!d || bpf_map__update_elem(d->maps.decap_config, &k, 4, &cfg, sizeof(cfg), 0) ||
	    bpf_map__update_elem(d->maps.decap_egress, &egress, 4, &one, 1, 0))
		goto out;
	printf("Decap per-packet cost, BPF_PROG_TEST_RUN (program only), repeat %u, median of %u "
	       "runs, JIT %s\n", o->repeat, o->runs, jit ? "on" : "OFF");
	for (int i = 0; i < 2; i++) { /* plain, full, plain, full: drift shows */
		int fd;

		fd = bpf_program__fd(b->progs.bench_plain_decap);
		if (bpf_map__update_elem(b->maps.bench_tail, &k, 4, &fd, 4, 0))
			goto out;
		plain[i] = cost(b, tail, p_gue_ack, 1, o);
		fd = bpf_program__fd(d->progs.decap);
		if (bpf_map__update_elem(b->maps.bench_tail, &k, 4, &fd, 4, 0))
			goto out;
		k = DECAP_STAT_DECAPSULATED;
		if (!i && !bpf_map__lookup_elem(d->maps.decap_stats, &k, 4, vals, sizeof(vals), 0))
			for (int j = 0; j < ncpu; j++)
				n0 += vals[j];
		full[i] = cost(b, tail, p_gue_ack, 1, o);
		if (!i && !bpf_map__lookup_elem(d->maps.decap_stats, &k, 4, vals, sizeof(vals), 0))
			for (int j = 0; j < ncpu; j++)
				n1 += vals[j];
		k = 0;
		if (plain[i] < 0 || full[i] < 0)
			goto out;
	}
	{
		double p = (double)(plain[0] + plain[1]) / 2, f = (double)(full[0] + full[1]) / 2;

		printf("%-42s %8s %9s %7s %8s\n", "path", "ns", "plain", "ratio", "extra");
		printf("%-42s %8.0f %9.0f %6.2fx %+8.0f\n",
		       "GUE -> TCP ACK to a socket (100 B)", f, p, f / p, f - p);
		printf("plain: outer IPv4/UDP to the GUE port checked, 28 bytes stripped, XDP_PASS.\n"
		       "The decap also checks the outer source, the egress IP, looks up the socket\n"
		       "(bpf_sk_lookup_tcp, its bound address), verifies the inner TCP checksum and\n"
		       "applies RFC 6040.  Both behind the same frame restore and tail call.\n");
		if (n1 - n0 != (uint64_t)o->repeat * o->runs)
			printf("  (!) decapsulated counted %llu of %llu packets\n",
			       (unsigned long long)(n1 - n0),
			       (unsigned long long)o->repeat * o->runs);
		printf("\n");
	}
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "bench/router: decap row failed: %s\n", strerror(errno));
	decap__destroy(d);
	if (l >= 0)
		close(l);
	if (c >= 0)
		close(c);
	enter(NULL);
	return rc;
}

/* ---- part 2: packets per second through a router namespace ---- */

static int napi_thread(const char *ifname)
{
	char want[64], comm[64], path[300];
	struct dirent *e;
	DIR *d = opendir("/proc");
	int pid = -1;

	snprintf(want, sizeof(want), "napi/%s-", ifname);
	while (d && (e = readdir(d))) {
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(comm, sizeof(comm), f) && !strncmp(comm, want, strlen(want)))
			pid = atoi(e->d_name);
		fclose(f);
	}
	if (d)
		closedir(d);
	return pid;
}

static void pin(int pid, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(pid, sizeof(set), &set);
}

static uint64_t sink_count(struct bench_router *b)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t v[ncpu], n = 0;
	uint32_t k = 0;

	if (bpf_map__lookup_elem(b->maps.counters, &k, 4, v, sizeof(v), 0))
		return 0;
	for (int i = 0; i < ncpu; i++)
		n += v[i];
	return n;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum mode { M_XDP, M_SNAT, M_FWD, M_MAX };
static struct router *bench_dbg_router;
static const char *mode_name[M_MAX] = {
	"softunicast XDP", "Linux forwarding + nftables SNAT", "Linux forwarding",
};

static int set_mode(enum mode m, struct router *r, struct bench_router *b)
{
	int rc = enter(ns_rtr);
	int r0 = (int)if_nametoindex("bnR0");

	if (rc || !r0)
		return -1;
	sh("nft delete table ip subench 2>/dev/null; true");
	if (m == M_XDP)
		rc = bpf_xdp_attach(r0, bpf_program__fd(r->progs.su_router), XDP_FLAGS_DRV_MODE, NULL);
	else
		rc = bpf_xdp_attach(r0, bpf_program__fd(b->progs.xdp_pass), XDP_FLAGS_DRV_MODE, NULL);
	enter(NULL);
	/* Threaded NAPI (the veth has NAPI once XDP runs on it), pinned away
	 * from the generator's CPU 0: otherwise one CPU does both and the
	 * comparison blurs. */
	if (!rc && sh("ip netns exec %s sh -c 'echo 1 > /sys/class/net/bnR0/threaded'", ns_rtr) == 0) {
		int napi = napi_thread("bnR0");

		if (napi > 0 && sysconf(_SC_NPROCESSORS_ONLN) > 1)
			pin(napi, 1);
	}
	if (!rc && enter(ns_rtr))
		rc = -1;
	if (!rc && m == M_SNAT)
		rc = sh("nft add table ip subench && nft add chain ip subench post "
			"'{ type nat hook postrouting priority srcnat; }' && "
			"nft add rule ip subench post oifname bnR1 snat to 198.51.100.1");
	enter(NULL);
	return rc;
}

/* One generator run: packets per second that reached the sink. */
static double pps_run(struct bench_router *b, enum mode m, const struct opts *o, double *gen_pps)
{
	static struct pb p;
	static const uint8_t g0[6] = { 2, 0, 0, 0, 0x10, 1 }, r0[6] = { 2, 0, 0, 0, 0x10, 2 };
	uint64_t before;
	double t0, t1;
	int ifindex;

	pb_init(&p);
	pb_fill(&p, 18, 0x5a); /* 64-byte frames */
	if (m == M_XDP) {
		pb_udp(&p, 443, PORT_A);
		pb_ip(&p, IP4(192, 0, 2, 10), EG_LOCAL, IPPROTO_UDP, 1, PB_DF, 60);
	} else {
		pb_udp(&p, 40000, 443);
		pb_ip(&p, IP4(10, 1, 0, 5), IP4(192, 0, 2, 10), IPPROTO_UDP, 1, PB_DF, 60);
	}
	pb_eth(&p, r0, g0, ETH_P_IP);
	{
		uint32_t k = 0;

		if (pb_len(&p) != 60 ||
		    bpf_map__update_elem(b->maps.gen_tmpl, &k, 4, pb_data(&p), 60, 0))
			return -1;
	}
	if (enter(ns_gen))
		return -1;
	ifindex = (int)if_nametoindex("bnG0");
	pin(0, 0);
	before = sink_count(b);
	t0 = now();
	{
		struct xdp_md ctx = { .ingress_ifindex = ifindex, .data_end = pb_len(&p) };
		LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = pb_data(&p),
			    .data_size_in = pb_len(&p), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
			    .repeat = (unsigned)o->gen_packets,
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);

		if (bpf_prog_test_run_opts(bpf_program__fd(b->progs.xdp_gen), &ro)) {
			fprintf(stderr, "bench/router: generator: %s\n", strerror(errno));
			enter(NULL);
			return -1;
		}
	}
	t1 = now();
	usleep(200000); /* let the router's queue drain into the sink */
	enter(NULL);
	if (getenv("SU_BENCH_DEBUG") && bench_dbg_router) {
		for (uint32_t i = 0; i < SU_STAT_MAX; i++) {
			uint64_t n = stat_sum(bench_dbg_router->maps.su_stats, i);

			if (n)
				fprintf(stderr, "  %s %llu\n", su_stat_desc[i].label, (unsigned long long)n);
		}
	}
	if (getenv("SU_BENCH_DEBUG")) {
		sh("ip netns exec %s ethtool -S bnG0 | grep -v ': 0$'", ns_gen);
		sh("ip netns exec %s ethtool -S bnR0 | grep -v ': 0$'", ns_rtr);
	}
	*gen_pps = (double)o->gen_packets / (t1 - t0);
	return (double)(sink_count(b) - before) / (t1 - t0);
}

static int part_pps(struct bench_router *b, const struct opts *o)
{
	struct router *r = NULL;
	double res[M_MAX][16], gen[M_MAX];
	unsigned runs = o->runs > 16 ? 16 : o->runs;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN), rc = -1;
	pid_t pid = getpid();

	snprintf(ns_gen, sizeof(ns_gen), "su-bench-gen-%d", pid);
	snprintf(ns_rtr, sizeof(ns_rtr), "su-bench-rtr-%d", pid);
	snprintf(ns_sink, sizeof(ns_sink), "su-bench-sink-%d", pid);
	if (sh("ip netns add %s && ip netns add %s && ip netns add %s", ns_gen, ns_rtr, ns_sink) ||
	    sh("ip link add bnG0 netns %s address 02:00:00:00:10:01 type veth peer name bnR0 netns %s "
	       "address 02:00:00:00:10:02", ns_gen, ns_rtr) ||
	    sh("ip link add bnR1 netns %s address 02:00:00:00:20:01 type veth peer name bnK0 netns %s "
	       "address 02:00:00:00:20:02", ns_rtr, ns_sink) ||
	    sh("ip -n %s link set lo up && ip -n %s link set bnG0 up && "
	       "ip -n %s addr add 10.10.0.2/24 dev bnG0", ns_gen, ns_gen, ns_gen) ||
	    sh("ip -n %s link set lo up && ip -n %s link set bnK0 up && "
	       "ip -n %s addr add 10.20.0.2/24 dev bnK0", ns_sink, ns_sink, ns_sink) ||
	    sh("ip netns exec %s sh -c 'ip link set lo up && ip link set bnR0 up && "
	       "ip link set bnR1 up && ip addr add 10.10.0.1/24 dev bnR0 && "
	       "ip addr add 10.20.0.1/24 dev bnR1 && "
	       "ip neigh replace 10.20.0.2 lladdr 02:00:00:00:20:02 nud permanent dev bnR1 && "
	       "ip neigh replace 10.10.0.2 lladdr 02:00:00:00:10:01 nud permanent dev bnR0 && "
	       "ip route add 192.0.2.0/24 via 10.20.0.2 && ip route add 10.3.0.0/16 via 10.20.0.2 && "
	       "ip route add 10.1.0.0/16 via 10.10.0.2 && sysctl -qw net.ipv4.ip_forward=1 && "
	       "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.bnR0.rp_filter=0'", ns_rtr))
		goto out;
	/* Sink: count and drop in XDP. */
	if (enter(ns_sink) ||
	    bpf_xdp_attach((int)if_nametoindex("bnK0"), bpf_program__fd(b->progs.xdp_sink),
			   XDP_FLAGS_DRV_MODE, NULL))
		goto out;
	if (enter(ns_rtr))
		goto out;
	r = open_router(IP4(10, 20, 0, 1));
	if (!r)
		goto out;
	bench_dbg_router = r;
	{
		struct su_ip_val local = { .flags = SU_IP_LOCAL };
		__be32 k = htonl(EG_LOCAL), srv = htonl(IP4(10, 3, 0, 5));
		uint32_t idx = (PORT_A >> 11) - 1;
		struct su_router_maps m = { .ips = bpf_map__fd(r->maps.su_ips),
					    .ipv = bpf_map__fd(r->maps.su_ipv) };

		if (su_router__ip_put(&m, k, &local) ||
		    bpf_map__update_elem(r->maps.su_slots, &idx, 4, &srv, 4, 0))
			goto out;
	}
	enter(NULL);

	for (unsigned i = 0; i < runs; i++) {
		for (int m = 0; m < M_MAX; m++) {
			if (set_mode((enum mode)m, r, b))
				goto out;
			pps_run(b, (enum mode)m, o, &gen[m]); /* warm-up: conntrack, caches */
			res[m][i] = pps_run(b, (enum mode)m, o, &gen[m]);
		}
	}
	printf("Packets per second through a router namespace (veth, 64-byte UDP, %u flows, "
	       "%lu packets per run, median of %u; generator CPU 0, router CPU %d)\n",
	       o->flows, o->gen_packets, runs, ncpu > 1 ? 1 : 0);
	printf("%-34s %14s %16s %12s\n", "router", "forwarded pps", "generator pps", "XDP ahead by");
	for (int m = 0; m < M_MAX; m++) {
		double v[16];

		memcpy(v, res[m], sizeof(double) * runs);
		for (unsigned i = 1; i < runs; i++) /* insertion sort for the median */
			for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
				double t = v[j];

				v[j] = v[j - 1];
				v[j - 1] = t;
			}
		res[m][0] = v[runs / 2];
	}
	for (int m = 0; m < M_MAX; m++)
		printf("%-34s %14.0f %16.0f %11.2fx\n", mode_name[m], res[m][0], gen[m],
		       res[M_XDP][0] / (res[m][0] > 0 ? res[m][0] : 1));
	printf("Goal: softunicast ahead of both, >= 2x over stateful SNAT.\n");
	rc = 0;
out:
	enter(NULL);
	router__destroy(r);
	return rc;
}


/* ---- 3. plan reload ---- */

#define RL_SERVERS 100 /* per DC, as bench/plan */
#define RL_IPS_PER_DC 200
#define RL_SLICES 25   /* active slices per IP: 5,000 per DC, 50 per server */
#define RL_MOVED 1000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The address of server s of DC d; the first `moved` servers of the fleet
 * were replaced by hosts at other addresses. */
static uint32_t rl_server(uint32_t d, uint32_t s, uint32_t moved)
{
	uint32_t i = d * RL_SERVERS + s;

	return (i < moved ? 0x0b000001u : 0x0a000001u) + i;
}

static int rl_write(const char *path, uint32_t n_dcs, uint32_t moved, uint32_t serial)
{
	FILE *f = fopen(path, "we");
	char a[SU_ADDR_STRLEN], b[SU_ADDR_STRLEN];
	unsigned long lines = 4;

	if (!f)
		return -errno;
	fprintf(f, "softunicast-plan 1\nserial %u\nports 1024-65535 slice 2048\ndrain 600\n", serial);
	for (uint32_t d = 0; d < n_dcs; d++, lines++)
		fprintf(f, "dc dc%03u %s\n", d, su_addr__str(0xac100000u + d, a));
	for (uint32_t d = 0; d < n_dcs; d++)
		for (uint32_t s = 0; s < RL_SERVERS; s++, lines++)
			fprintf(f, "server dc%03u-s%03u dc%03u %s\n", d, s, d,
				su_addr__str(rl_server(d, s, moved), a));
	fprintf(f, "prefix 100.64.0.0/10 service=cdn *\n");
	lines++;
	for (uint32_t d = 0; d < n_dcs; d++, lines++)
		fprintf(f, "demand dc%03u service=cdn 50\n", d);
	for (uint32_t d = 0; d < n_dcs; d++) {
		for (uint32_t k = 0; k < RL_IPS_PER_DC; k++) {
			su_addr__str(0x64400000u + d * RL_IPS_PER_DC + k, a);
			fprintf(f, "ip %s dc%03u 100.64.0.0/10 service=cdn service=cdn active\n", a, d);
			lines++;
			for (uint32_t j = 0; j < RL_SLICES; j++, lines++) {
				uint32_t s = (k * RL_SLICES + j) % RL_SERVERS;

				fprintf(f, "slot %s %u dc%03u-s%03u %s active\n", a, 2048 * (j + 1), d, s,
					su_addr__str(rl_server(d, s, moved), b));
			}
		}
	}
	fprintf(f, "end %lu\n", lines);
	return fclose(f) ? -errno : 0;
}

struct rl_maps {
	struct router *skel;
	struct su_router_maps m;
};

static int rl_open(struct rl_maps *r, const struct su_router_caps *c)
{
	struct bpf_map *m;

	r->skel = router__open();
	if (!r->skel)
		return -errno;
	bpf_object__for_each_map(m, r->skel->obj)
		bpf_map__set_pin_path(m, NULL);
	bpf_map__set_map_flags(r->skel->maps.su_ips, BPF_F_NO_PREALLOC);
	bpf_map__set_max_entries(r->skel->maps.su_ips, c->ips);
	bpf_map__set_max_entries(r->skel->maps.su_ipv, c->ips);
	bpf_map__set_max_entries(r->skel->maps.su_slots, c->slots);
	bpf_map__set_max_entries(r->skel->maps.su_routers, c->routers);
	bpf_map__set_max_entries(r->skel->maps.su_targets, c->targets);
	bpf_map__set_max_entries(r->skel->maps.su_hosts, c->targets);
	if (router__load(r->skel))
		return -EINVAL;
	r->m.ips = bpf_map__fd(r->skel->maps.su_ips);
	r->m.ipv = bpf_map__fd(r->skel->maps.su_ipv);
	r->m.slots = bpf_map__fd(r->skel->maps.su_slots);
	r->m.routers = bpf_map__fd(r->skel->maps.su_routers);
	r->m.meta = bpf_map__fd(r->skel->maps.su_meta);
	r->m.targets = bpf_map__fd(r->skel->maps.su_targets);
	r->m.hosts = bpf_map__fd(r->skel->maps.su_hosts);
	return 0;
}

/* What the data path would have inserted: one entry per target. */
static void rl_fill_targets(struct rl_maps *r, const struct su_plan *p, uint32_t dc)
{
	struct su_target_val tv[libbpf_num_possible_cpus()];

	memset(tv, 0, sizeof(tv));
	for (uint32_t i = 0; i < p->n_servers; i++) {
		__be32 k = htonl(p->servers[i].addr);

		if (p->servers[i].dc == dc)
			bpf_map_update_elem(r->m.targets, &k, tv, BPF_ANY);
	}
	for (uint32_t i = 0; i < p->n_dcs; i++) {
		__be32 k = htonl(p->dcs[i].router);

		if (i != dc)
			bpf_map_update_elem(r->m.targets, &k, tv, BPF_ANY);
	}
}

static int rl_load(const char *path, struct su_plan **p, double *secs)
{
	struct su_err err;
	double t = now_s();

	if (su_plan__load(path, p, &err)) {
		fprintf(stderr, "bench/router: %s\n", err.msg);
		return -1;
	}
	*secs = now_s() - t;
	return 0;
}

static int rl_apply(struct rl_maps *r, const struct su_plan *p, double *secs,
		    struct su_router_sync_stats *st)
{
	struct su_err err;
	double t = now_s();

	if (su_router__sync(&r->m, p, 0, st, &err)) {
		fprintf(stderr, "bench/router: apply: %s\n", err.msg);
		return -1;
	}
	*secs = now_s() - t;
	return 0;
}

static int part_reload(const struct opts *o)
{
	uint32_t n_dcs = (uint32_t)(300 * o->reload_scale + 0.5);
	char dir[] = "/tmp/su-bench-reload.XXXXXX", p1[64], p2[64];
	struct su_plan *a = NULL, *b = NULL;
	struct su_router_sync_stats st;
	struct su_router_caps caps;
	struct su_router_mem m2, m128;
	struct rl_maps r = { 0 };
	double t_load, t_load2, t_first, t_same, t_moved;
	uint64_t memlock = 0, old_2, old_128;
	struct bpf_map *m;
	int rc = 1;

	if (n_dcs < 2 || !mkdtemp(dir))
		return 1;
	snprintf(p1, sizeof(p1), "%s/plan", dir);
	snprintf(p2, sizeof(p2), "%s/plan-moved", dir);
	if (rl_write(p1, n_dcs, 0, 1) || rl_write(p2, n_dcs, RL_MOVED, 2) ||
	    rl_load(p1, &a, &t_load) || rl_load(p2, &b, &t_load2))
		goto out;
	su_router__caps_for_plan(a, 0, &caps);
	if (rl_open(&r, &caps))
		goto out;
	if (rl_apply(&r, a, &t_first, &st))
		goto out;
	rl_fill_targets(&r, a, 0);
	if (rl_apply(&r, a, &t_same, &st) || rl_apply(&r, b, &t_moved, &st))
		goto out;
	bpf_object__for_each_map(m, r.skel->obj) {
		uint64_t v = 0;

		if (bpf_map__fd(m) >= 0 && !su_router__memlock(bpf_map__fd(m), &v))
			memlock += v;
	}
	su_router__mem_estimate(&caps, a->n_ips, 2, &m2);
	su_router__mem_estimate(&caps, a->n_ips, 128, &m128);
	/* The fixed sizes of before (65,536 IPs preallocated, 2^20 slots,
	 * 4,096 routers, 65,536 targets per CPU), for comparison. */
	{
		struct su_router_caps old = { 65536, 1u << 20, 4096, 65536 };
		struct su_router_mem o2, o128;

		su_router__mem_estimate(&old, old.ips, 2, &o2);
		su_router__mem_estimate(&old, old.ips, 128, &o128);
		old_2 = o2.total;
		old_128 = o128.total;
	}
	printf("Plan reload: router of dc000 in a fleet of %u DCs x %d servers, %u egress IPs "
	       "(%d per DC, %d active slices each)\n", n_dcs, RL_SERVERS, a->n_ips, RL_IPS_PER_DC,
	       RL_SLICES);
	printf("%-44s %10s\n", "step", "seconds");
	printf("%-44s %10.3f\n", "load the plan file (su_plan__load)", t_load);
	printf("%-44s %10.3f\n", "apply it to fresh maps", t_first);
	printf("%-44s %10.3f\n", "re-apply it unchanged", t_same);
	printf("%-44s %10.3f   (%u IPs flipped, %u targets pruned; file load %.3f s)\n",
	       "apply a plan where 1,000 servers moved", t_moved, st.ips_changed,
	       st.targets_removed, t_load2);
	printf("Map capacities: ips %u, slots %u, routers %u, targets %u per CPU\n", caps.ips,
	       caps.slots, caps.routers, caps.targets);
	printf("Map memory: %.1f MiB charged here (%d possible CPUs); computed: %.1f MiB at 2 "
	       "CPUs, %.1f MiB at 128 (targets %.1f MiB)\n", (double)memlock / (1 << 20),
	       libbpf_num_possible_cpus(), (double)m2.total / (1 << 20),
	       (double)m128.total / (1 << 20), (double)m128.targets / (1 << 20));
	printf("            (fixed sizes before this change: %.1f MiB at 2 CPUs, %.1f MiB at 128)\n",
	       (double)old_2 / (1 << 20), (double)old_128 / (1 << 20));
	rc = 0;
out:
	router__destroy(r.skel);
	su_plan__free(a);
	su_plan__free(b);
	unlink(p1);
	unlink(p2);
	rmdir(dir);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: bench/router [--repeat N] [--runs N] [--gen-packets N] [--flows N]\n"
		   "                    [--skip-cost] [--skip-pps] [--skip-reload]\n"
		   "                    [--reload-scale F]\n"
		   "  --repeat N       packets per BPF_PROG_TEST_RUN cost run (default 1000000)\n"
		   "  --runs N         runs per figure, median reported (default 5)\n"
		   "  --gen-packets N  packets per generator run (default 3000000)\n"
		   "  --flows N        distinct UDP flows from the generator (default 256)\n"
		   "  --reload-scale F DCs of the reload fleet, x300 (default 1)\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "repeat", 1, 0, 'r' },    { "runs", 1, 0, 'n' },	{ "gen-packets", 1, 0, 'g' },
		{ "flows", 1, 0, 'f' },	    { "skip-cost", 0, 0, 'C' }, { "skip-pps", 0, 0, 'P' },
		{ "skip-reload", 0, 0, 'R' }, { "reload-scale", 1, 0, 'S' },
		{ "help", 0, 0, 'h' },	    { 0 }
	};
	struct opts o = { .repeat = 1000000, .runs = 5, .flows = 256, .gen_packets = 3000000,
			  .reload_scale = 1 };
	struct bench_router *b;
	int c, rc = 0;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'r': o.repeat = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': o.runs = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'g': o.gen_packets = strtoul(optarg, NULL, 10); break;
		case 'f': o.flows = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'C': o.skip_cost = 1; break;
		case 'P': o.skip_pps = 1; break;
		case 'R': o.skip_reload = 1; break;
		case 'S': o.reload_scale = strtod(optarg, NULL); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o.runs || !o.repeat || !o.flows || !o.gen_packets) {
		usage(stderr);
		return 2;
	}
	if (geteuid()) {
		fprintf(stderr, "bench/router: needs root (BPF, network namespaces)\n");
		return 1;
	}
	ns_self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	jit = jit_on();

	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	b = bench_router__open();
	if (!b)
		return 1;
	{
		struct bpf_map *m;

		bpf_object__for_each_map(m, b->obj)
			bpf_map__set_pin_path(m, NULL); /* its own router maps, unpinned */
	}
	b->rodata->flows = o.flows;
	b->rodata->sport_base = 1024;
	b->rodata->cfg_router = htonl(ROUTER);
	b->rodata->cfg_gue_port = htons(6080);
	b->rodata->cfg_slice_shift = 11;
	b->rodata->cfg_first_slice = 1;
	b->rodata->cfg_slices_per_ip = 31;
	if (bench_router__load(b)) {
		fprintf(stderr, "bench/router: loading the helper programs failed\n");
		return 1;
	}
	if (!o.skip_cost && (part_cost(b, &o) || part_decap(b, &o)))
		rc = 1;
	if (!o.skip_pps && part_pps(b, &o))
		rc = 1;
	if (!o.skip_reload && part_reload(&o))
		rc = 1;
	bench_router__destroy(b);
	return rc;
}
