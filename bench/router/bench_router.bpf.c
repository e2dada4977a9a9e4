// SPDX-License-Identifier: GPL-2.0
/* Helper programs of bench/router (not part of the product).
 *
 * BPF_PROG_TEST_RUN with `repeat` runs a program again and again on the
 * same buffer without resetting it (and live frames recycle pages without
 * re-copying the data), so a program that encapsulates would see its own
 * output from the second run on.  The bench_* programs therefore first put
 * the frame back as it was (length and first 64 bytes, from bench_tmpl),
 * then run the code under test; the restore-only program measures what that
 * costs, so it can be subtracted:
 *   bench_restore         restore, XDP_TX
 *   bench_bounce          restore + the baseline: parse Ethernet + IPv4 like
 *                         the router does, swap the MACs, XDP_TX
 *   bench_router          restore + the router (router.bpf.c, compiled in);
 *   bench_grow            restore + a 28-byte head adjustment: measures what
 *                         the restore adds to encapsulating paths;
 *   bench_tail_call       restore + tail call (the decap row, see below);
 *   bench_plain_decap     plain GUE decapsulation, the decap row's baseline;
 *   xdp_gen     the traffic generator, run with BPF_PROG_TEST_RUN live
 *               frames: varies the UDP source port over `flows` values and
 *               transmits (XDP_TX out of the generator's veth);
 *   xdp_sink    counts and drops what reaches the sink;
 *   xdp_pass    lets a veth receive XDP frames from its peer. */
/* The router itself: su_router_main() is its whole program. */
#include "bpf/router.bpf.c"

#include "../lib/xdp_restore.bpf.h"

static __always_inline int bounce(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	unsigned char tmp[ETH_ALEN];

	if ((void *)(iph + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || iph->version != 4)
		return XDP_PASS;
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	return XDP_TX;
}

SEC("xdp")
int bench_restore(struct xdp_md *ctx)
{
	return restore(ctx) ? XDP_ABORTED : XDP_TX;
}

/* What the restore costs an encapsulating path beyond the baseline: it has
 * to undo the 28-byte head adjustment every time. */
SEC("xdp")
int bench_grow(struct xdp_md *ctx)
{
	if (restore(ctx) || bpf_xdp_adjust_head(ctx, -28))
		return XDP_ABORTED;
	return XDP_TX;
}

SEC("xdp")
int bench_bounce(struct xdp_md *ctx)
{
	return restore(ctx) ? XDP_ABORTED : bounce(ctx);
}

SEC("xdp")
int bench_router(struct xdp_md *ctx)
{
	return restore(ctx) ? XDP_ABORTED : su_router_main(ctx);
}

/* The decap row: bench_tail_call restores the frame, then tail-calls
 * bench_tail[0], which the bench sets to the agent's decap (its own object,
 * src/bpf/decap.bpf.c, untouched) or to bench_plain_decap.  Both pay the
 * same restore and tail call, so their difference is the decap's checks. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} bench_tail SEC(".maps");

SEC("xdp")
int bench_tail_call(struct xdp_md *ctx)
{
	if (restore(ctx))
		return XDP_ABORTED;
	bpf_tail_call(ctx, &bench_tail, 0);
	return XDP_ABORTED;
}

/* Plain GUE decapsulation, what the kernel's fou or any decapsulator does
 * at least: outer IPv4 without options, UDP to the GUE port, strip the 28
 * bytes, keep the Ethernet header; none of softunicast's checks. */
SEC("xdp")
int bench_plain_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr eth, *e = data;
	struct iphdr *ip = (void *)(e + 1);
	struct udphdr *uh = (void *)(ip + 1);

	if ((void *)(uh + 1) > end || e->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || uh->dest != bpf_htons(6080))
		return XDP_PASS;
	__builtin_memcpy(&eth, e, sizeof(eth));
	if (bpf_xdp_adjust_head(ctx, SU_ENCAP_LEN))
		return XDP_ABORTED;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	e = data;
	if ((void *)(e + 1) > end)
		return XDP_ABORTED;
	__builtin_memcpy(e, &eth, sizeof(eth));
	return XDP_PASS;
}

const volatile __u32 flows = 1;
const volatile __u16 sport_base = 1024;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps"); /* 0: sink packets, 1: generator sequence */

/* Live frames come back to the generator's page pool after the router
 * rewrote them in place, and are not re-copied: rewrite the whole frame. */
#define GEN_BYTES 60

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8[GEN_BYTES]);
} gen_tmpl SEC(".maps");

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct udphdr *uh = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
	__u32 k = 0, s = 1;
	__u64 *seq = bpf_map_lookup_elem(&counters, &s);
	__u8 *t = bpf_map_lookup_elem(&gen_tmpl, &k);

	if (data + GEN_BYTES > end || !seq || !t)
		return XDP_ABORTED;
	__builtin_memcpy(data, t, GEN_BYTES);
	/* UDP checksum 0 (none): the port can change freely. */
	uh->source = bpf_htons(sport_base + (*seq)++ % flows);
	return XDP_TX;
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *n = bpf_map_lookup_elem(&counters, &k);

	if (n)
		*n += 1;
	return XDP_DROP;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* LICENSE comes with router.bpf.c. */
