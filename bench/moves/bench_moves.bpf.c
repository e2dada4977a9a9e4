// SPDX-License-Identifier: GPL-2.0
/* Helper programs of bench/moves (not part of the product): the decap
 * (decap.bpf.c, compiled in) behind a frame restore, as bench/router does
 * for the router.  BPF_PROG_TEST_RUN with `repeat` runs a program again and
 * again on one buffer without resetting it, and the decap strips (plain
 * decapsulation) or grows (second hop) the head, so each run first puts the
 * frame back (length and first 64 bytes, from bench_tmpl); bench_restore
 * measures the restore alone, to be subtracted. */
#include "bpf/decap.bpf.c"

#include "../lib/xdp_restore.bpf.h"

SEC("xdp")
int bench_restore(struct xdp_md *ctx)
{
	return restore(ctx) ? XDP_ABORTED : XDP_PASS;
}

SEC("xdp")
int bench_decap(struct xdp_md *ctx)
{
	return restore(ctx) ? XDP_ABORTED : decap_main(ctx);
}
