// SPDX-License-Identifier: GPL-2.0
/* Helper programs of bench/moves (not part of the product): the decap
 * (decap.bpf.c, compiled in) behind a frame restore, as bench/router does
 * for the router.  BPF_PROG_TEST_RUN with `repeat` runs a program again and
 * again on one buffer without resetting it, and the decap strips (plain
 * decapsulation) or grows (second hop) the head, so each run first puts the
 * frame back (length and first 64 bytes, from bench_tmpl); bench_restore
 * measures the restore alone, to be subtracted. */
#include "bpf/decap.bpf.c"

#define TMPL_BYTES 64

struct tmpl {
	__u32 len;
	__u8 bytes[TMPL_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tmpl);
} bench_tmpl SEC(".maps");

static __always_inline int restore(struct xdp_md *ctx)
{
	__u32 k = 0, len = bpf_xdp_get_buff_len(ctx);
	struct tmpl *t = bpf_map_lookup_elem(&bench_tmpl, &k);
	void *data, *end;

	if (!t)
		return -1;
	if (len != t->len && bpf_xdp_adjust_head(ctx, (int)len - (int)t->len))
		return -1;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + TMPL_BYTES > end)
		return -1;
	__builtin_memcpy(data, t->bytes, TMPL_BYTES);
	return 0;
}

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
