/* The router's ABI: map keys and values, counters, limits.  The only copy,
 * included by router.bpf.c and by userspace (loader, tests, fuzzers), so the
 * two sides cannot drift apart.  Plain __u32-style types with fixed layout;
 * every struct has its size asserted.
 *
 * Byte order: every address or port stored in a map is in NETWORK order
 * (the program compares them with packet fields without swapping); the plan
 * model (lib/plan.h) is host order and the loader converts at this boundary. */
#ifndef SU_BPF_ABI_H
#define SU_BPF_ABI_H

#include <linux/types.h>

/* Defaults and limits.  The sizes of su_ips, su_slots, su_routers and
 * su_targets below are only what the object file declares: the loader sets
 * them from the plan before loading (src/router/router.h, SU_CAP_*; pins of
 * another size are replaced), so they matter only to tests and benches that
 * load the object as it is. */
#define SU_GUE_PORT_DEFAULT 6080
#define SU_MAX_IPS 65536       /* egress IPs known to one router */
#define SU_MAX_SLOTS (1 << 20) /* slot array entries (8 MiB: array values take 8 bytes) */
#define SU_MAX_ROUTERS 4096    /* DC routers on the backbone */
#define SU_MAX_FRAGS 16384     /* datagrams in reassembly-free flight */
#define SU_MAX_TARGETS 65536   /* targets per CPU (x 48-byte value x possible CPUs) */
#define SU_ICMP_RATE_DEFAULT 1000 /* frag-needed answers per second per CPU */

/* su_icmp_bucket (per-CPU): token bucket of the frag-needed answers. */
struct su_bucket {
	__u64 last_ns;
	__u64 tokens;
};

/* GUE variant 1 (draft-ietf-intarea-gue §4) is IPv4 directly in UDP: the
 * inner header's version nibble 0100 doubles as the variant bits 01.
 * Outer IPv4 (no options) + UDP, no GUE header. */
#define SU_ENCAP_LEN (20 + 8)

/* Counters, indexed into the per-CPU `su_stats` array.  Every packet bumps
 * exactly one OUTCOME counter (what became of it); INFO counters mark paths
 * taken on the way (backbone, fragments, ICMP) and overlap the outcomes.
 * The label doubles as the metric label and the `stats --json` key, so it
 * is part of the interface: never rename one, only add (at the end, so
 * indexes stay put). */
#define SU_STAT_LIST(X)                                                                        \
	X(PASS, "pass", "outcome", "not addressed to an egress IP: left to the kernel")          \
	X(FWD_LOCAL, "fwd_local", "outcome", "encapsulated to the server owning the slice")      \
	X(FWD_REMOTE, "fwd_remote", "outcome", "encapsulated to the router of the owning DC")    \
	X(NEIGH_MISS, "neigh_miss", "outcome",                                                   \
	  "encapsulated, next hop not resolved yet: handed to the kernel to forward")            \
	X(ICMP_FRAG_SENT, "icmp_frag_needed_sent", "outcome",                                    \
	  "too big once encapsulated, DF set: answered ICMP fragmentation needed")               \
	X(DROP_NO_SLICE, "drop_no_slice", "outcome", "local egress IP, port in no active slice") \
	X(DROP_PROTO, "drop_proto", "outcome", "protocol not TCP/UDP/ICMP to an egress IP")      \
	X(DROP_ICMP_TYPE, "drop_icmp_type", "outcome",                                           \
	  "ICMP type that cannot be routed by port (echo request, timestamp, ...)")              \
	X(DROP_ICMP_QUOTE, "drop_icmp_quote", "outcome",                                         \
	  "ICMP error whose quoted packet is truncated, malformed or not from the egress IP")    \
	X(DROP_FRAG_UNKNOWN, "drop_frag_unknown", "outcome",                                     \
	  "non-first fragment of a datagram whose first fragment was not seen")                  \
	X(DROP_L3_TRUNC, "drop_l3_trunc", "outcome", "truncated IPv4 header")                    \
	X(DROP_L3_BAD, "drop_l3_bad", "outcome",                                                 \
	  "malformed IPv4 header (IHL < 5, total length inconsistent)")                          \
	X(DROP_L4_TRUNC, "drop_l4_trunc", "outcome", "truncated TCP/UDP/ICMP header")            \
	X(DROP_L4_BAD, "drop_l4_bad", "outcome",                                                 \
	  "malformed TCP/UDP header (UDP length or TCP data offset inconsistent)")               \
	X(DROP_FOREIGN, "drop_foreign_router", "outcome",                                        \
	  "encapsulated packet from a sender that is not a router of the plan")                  \
	X(DROP_BACKBONE_BAD, "drop_backbone_bad", "outcome",                                     \
	  "backbone packet whose inner packet is not IPv4 to a known egress IP")                 \
	X(DROP_LOOP, "drop_loop", "outcome",                                                     \
	  "backbone packet for an IP this DC does not own: never sent to a third DC")            \
	X(DROP_MTU, "drop_mtu", "outcome", "too big once encapsulated and DF clear, or unquotable") \
	X(DROP_FIB, "drop_fib", "outcome", "no route to the encapsulation target")               \
	X(DROP_INTERNAL, "drop_internal", "outcome", "map or helper failure (should stay 0)")    \
	X(BACKBONE_IN, "backbone_in", "info", "accepted from another DC's router")               \
	X(FRAG_FIRST, "frag_first", "info", "first fragment dispatched and remembered")          \
	X(FRAG_LATER, "frag_later", "info", "later fragment that followed its first")            \
	X(ICMP_ERROR, "icmp_error", "info", "ICMP error routed by its quoted header")            \
	X(ICMP_ECHO, "icmp_echo_reply", "info", "ICMP echo reply routed by identifier")          \
	X(DROP_ICMP_RATE, "drop_icmp_ratelimit", "outcome",                                      \
	  "too big once encapsulated, DF set, but over the ICMP rate limit: dropped")

enum su_stat {
#define SU_STAT_ENUM(name, label, kind, help) SU_STAT_##name,
	SU_STAT_LIST(SU_STAT_ENUM)
#undef SU_STAT_ENUM
	SU_STAT_MAX
};

/* su_ips: egress IP (be32) -> where its packets go. */
#define SU_IP_LOCAL 0x1 /* owned by this DC: dispatch by port */

struct su_ip_val {
	__be32 router;   /* owning DC's router (remote IPs) */
	__u32 slot_base; /* first su_slots index of this IP's slice region */
	__u32 flags;     /* SU_IP_* */
};

/* su_slots: slot index -> owning server (be32), 0 when the slice is free.
 * Region of an IP: slot_base + (port >> slice_shift) - first_slice, for
 * slices_per_ip entries.  The loader double-buffers: a changed IP gets a
 * fresh region written first, then its su_ips entry flips slot_base in one
 * map update, so a packet sees either the whole old or the whole new IP. */

/* su_routers: backbone address (be32) of every other DC's router -> DC
 * index in the plan.  Encapsulated packets are only accepted from these. */

/* su_frags: first fragment's identity -> its dispatch decision, so later
 * fragments (no L4 header, RFC 791) follow it. */
struct su_frag_key {
	__be32 src;
	__be32 dst;
	__be16 id;
	__u8 proto;
	__u8 pad;
};

#define SU_TARGET_SERVER 1
#define SU_TARGET_ROUTER 2

struct su_frag_val {
	__be32 target;
	__u32 kind; /* SU_TARGET_* */
};

/* su_targets (per-CPU): target address (be32) -> packets forwarded to it,
 * and the next hop bpf_fib_lookup() found for it.  The lookup is the most
 * expensive step of a packet (about half its cost), so its answer is reused
 * for SU_NH_TTL_JIFFIES: route and neighbour changes apply within that time
 * (25 jiffies: 25 ms at CONFIG_HZ=1000, 250 ms at HZ=100).  Jiffies because
 * reading a clock costs a packet ~20 ns and the cache needs no precision. */
#define SU_NH_TTL_JIFFIES 25

struct su_target_val {
	__u64 packets;
	__u64 bytes;
	__u64 nh_expires;    /* bpf_jiffies64() deadline, 0: none */
	__u32 nh_ifindex;    /* egress interface */
	__u32 nh_in_ifindex; /* ingress interface the lookup was made for */
	__u16 nh_ok_len;     /* largest outer length the MTU check passed */
	__u8 nh_dmac[6];
	__u8 nh_smac[6];
	__u16 pad;
};

/* su_meta[0]: what the loader attached, so `router stats` and `router
 * detach` work from the pins alone.  Written by userspace only. */
#define SU_META_MAGIC 0x53554e31u /* "SUN1" */
#define SU_META_IFACES 2
struct su_meta {
	__u32 magic;
	__u32 xdp_flags; /* XDP_FLAGS_* used to attach */
	__u32 ifindex[SU_META_IFACES];
	__be32 router;
	__u32 gue_port;
	__u32 slice_shift, first_slice, slices_per_ip;
	__u32 pad;
	__u64 plan_serial;
	__u64 loaded_at; /* unix seconds of the last map sync */
};

_Static_assert(sizeof(struct su_ip_val) == 12, "su_ip_val layout");
_Static_assert(sizeof(struct su_frag_key) == 12, "su_frag_key layout");
_Static_assert(sizeof(struct su_frag_val) == 8, "su_frag_val layout");
_Static_assert(sizeof(struct su_target_val) == 48, "su_target_val layout");
_Static_assert(sizeof(struct su_meta) == 56, "su_meta layout");
_Static_assert(sizeof(struct su_bucket) == 16, "su_bucket layout");

#ifndef __bpf__
/* Userspace: labels and help for each counter, in enum order. */
struct su_stat_desc {
	const char *label;
	const char *kind; /* "outcome" or "info" */
	const char *help;
};

static const struct su_stat_desc su_stat_desc[SU_STAT_MAX] = {
#define SU_STAT_DESC(name, label, kind, help) [SU_STAT_##name] = { label, kind, help },
	SU_STAT_LIST(SU_STAT_DESC)
#undef SU_STAT_DESC
};
#endif

#endif
