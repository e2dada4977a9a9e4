/* SPDX-License-Identifier: GPL-2.0 */
/* Frame restore for the benches' BPF_PROG_TEST_RUN loops (not part of the
 * product).  With `repeat`, the kernel runs a program again and again on one
 * buffer without resetting it; programs that strip or grow the head would
 * see their own output.  restore() puts the frame back first: its length
 * and first TMPL_BYTES bytes, from bench_tmpl[0] (written by the bench). */
#ifndef SU_BENCH_XDP_RESTORE_BPF_H
#define SU_BENCH_XDP_RESTORE_BPF_H

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

#endif
