/* XDP_PASS on a veth peer.  A veth hands frames that its partner redirected
 * or bounced with XDP to the peer's XDP path only when the peer runs an XDP
 * program itself; the lab puts this one on the veth ends that face a router
 * but run no softunicast program (the "internet" side, the backbone bridge). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
