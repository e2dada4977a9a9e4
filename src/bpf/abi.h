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
#define SU_FRAGS_PER_CPU 1024  /* default --frag-table: datagrams in flight per CPU */
#define SU_MAX_TARGETS 65536   /* targets per CPU (x sizeof(su_target_val) x possible CPUs) */
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
	  "too big once encapsulated, DF set, but over the ICMP rate limit: dropped")            \
	X(DROP_TCP_SYN, "drop_unsolicited_syn", "outcome",                                       \
	  "TCP SYN without ACK to an egress IP: a connection attempt, not a reply")              \
	X(DROP_TCP_NO_ACK, "drop_tcp_no_ack", "outcome",                                         \
	  "TCP segment with neither ACK nor RST to an egress IP (FIN/NULL/XMAS probe)")          \
	X(DROP_SPOOF_SELF, "drop_spoof_self", "outcome",                                         \
	  "arrived with this router's own address as source: spoofed")                           \
	X(DROP_GUE_INJECTED, "drop_gue_injected", "outcome",                                     \
	  "GUE addressed past this router (to a server or any other host): only it encapsulates") \
	X(DROP_GUE_FRAG, "drop_gue_fragment", "outcome",                                         \
	  "fragmented GUE from a plan router: not reassembled in XDP")                           \
	X(DROP_MTU_NO_ICMP, "drop_mtu_no_icmp", "outcome",                                       \
	  "too big once encapsulated, DF set, but RFC 1812 4.3.2.7 forbids an ICMP error about it " \
	  "(non-initial fragment, ICMP error, non-unicast source)")                              \
	X(DROP_FRAG_EARLY, "drop_frag_early", "outcome",                                         \
	  "later fragment that arrived before its first (moved here from drop_frag_unknown "     \
	  "when the first one comes)")                                                           \
	X(TUNNEL_PMTU, "tunnel_pmtu_lowered", "info",                                            \
	  "ICMP fragmentation needed about this router's own GUE: the target's tunnel MTU was lowered") \
	X(DROP_REDIRECT, "drop_redirect_failed", "outcome",                                      \
	  "redirect to the next-hop device failed (no XDP transmit, e.g. a bridge): moved here " \
	  "from fwd_local/fwd_remote")                                                           \
	X(DROP_IP_BUSY, "drop_ip_busy", "outcome",                                               \
	  "egress IP entry being rewritten through every bounded re-read (su_ipv seqcount)")     \
	X(DROP_SPOOF_SERVER, "drop_spoof_server", "outcome",                                     \
	  "source is a server of this DC, arrived on an interface the DC is not reached through") \
	X(DROP_SPOOF_ROUTER, "drop_spoof_router", "outcome",                                     \
	  "source is a peer router, arrived on an interface the backbone is not reached through") \
	X(DROP_SPOOF_EGRESS, "drop_spoof_egress", "outcome",                                     \
	  "source is an egress IP of this DC, arrived on an interface the DC is not reached through") \
	X(SECOND_HOP, "second_hop_forwarded", "outcome",                                         \
	  "GUE marked as a live move's second hop, inner packet to a plan egress IP: left to the " \
	  "kernel to route to the slice's previous owner (the server's decap checks the rest)")

enum su_stat {
#define SU_STAT_ENUM(name, label, kind, help) SU_STAT_##name,
	SU_STAT_LIST(SU_STAT_ENUM)
#undef SU_STAT_ENUM
	SU_STAT_MAX
};

/* Where an egress IP's packets go. */
#define SU_IP_LOCAL 0x1 /* owned by this DC: dispatch by port */

struct su_ip_val {
	__be32 router;   /* owning DC's router (remote IPs) */
	__u32 slot_base; /* first su_slots index of this IP's slice region */
	__u32 flags;     /* SU_IP_* */
};

/* su_ips (hash): egress IP (be32) -> __u32 index into su_ipv, fixed for as
 * long as the IP is in the plan: the hash element is inserted once and
 * deleted once, never updated.
 *
 * su_ipv (array, BPF_F_MMAPABLE): index -> struct su_ipv, rewritten in
 * place by the loader through the mmap'd array under a sequence count
 * (Linux's seqcount_t protocol): seq odd while the writer is in the entry,
 * the writer's stores ordered odd -> fields -> even (release), the reader's
 * loads seq -> fields -> seq.  A reader that saw the same even seq before and
 * after read one whole version; otherwise it re-reads, SU_IPV_RETRIES times
 * at most, then drops the packet as drop_ip_busy.  The entry carries its
 * IP: a reader that raced a delete and a reuse (a freed hash element or an
 * index handed to another IP) sees another IP there and takes it as a miss,
 * never as that IP's route.  Why not a hash value: hash elements are freed
 * through bpf_mem_alloc and may be reused before a reader on another CPU is
 * done with one (docs/router.md, "Entries are read whole"). */
#define SU_IPV_RETRIES 4

struct su_ipv {
	__u32 seq;  /* even: stable; odd: being written */
	__be32 ip;  /* the egress IP this entry is for, 0: free */
	struct su_ip_val v;
	__u32 pad;
};

/* su_slots: slot index -> owning server (be32), 0 when the slice is free.
 * Region of an IP: slot_base + (port >> slice_shift) - first_slice, for
 * slices_per_ip entries.  The loader double-buffers: a changed IP gets a
 * fresh region written first, then its su_ips entry flips slot_base in one
 * map update, so a packet sees either the whole old or the whole new IP. */

/* su_routers: backbone address (be32) of every other DC's router -> DC
 * index in the plan.  Encapsulated packets are only accepted from these. */

/* su_hosts: address (be32) of every server of this DC and every peer
 * router -> SU_HOST_*.  Anti-spoofing: those addresses may appear as a
 * source only on the side they are reached through (below). */
#define SU_HOST_SERVER 1
#define SU_HOST_ROUTER 2

/* su_ifroles[i] (i < SU_META_IFACES): what the loader found reachable
 * through the interface the program is attached to, from the kernel's
 * routes to the plan's servers and peer routers (strict reverse path for
 * plan addresses only; docs/router.md, "Anti-spoofing").  A packet whose
 * source is a DC server or an egress IP is dropped on an interface without
 * SU_IF_DC, one from a peer router on an interface without SU_IF_BACKBONE
 * (egress IPs of this DC only: another DC's servers may send through here).
 * An interface with both roles (Internet, DC and backbone on one link)
 * cannot tell them apart: no check there. */
#define SU_IF_DC 0x1
#define SU_IF_BACKBONE 0x2
#define SU_IF_KNOWN 0x80 /* the entry describes ifindex */

struct su_ifrole {
	__u32 ifindex;
	__u32 roles; /* SU_IF_* */
};

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
 * and the next hops bpf_fib_lookup() found for it.  The lookup is the most
 * expensive step of a packet (about half its cost), so its answer is reused
 * for SU_NH_TTL_JIFFIES: route and neighbour changes apply within that time
 * (25 jiffies: 25 ms at CONFIG_HZ=1000, 250 ms at HZ=100).  Jiffies because
 * reading a clock costs a packet ~20 ns and the cache needs no precision.
 *
 * ECMP: with an L4 multipath hash (net.ipv4.fib_multipath_hash_policy=1)
 * the kernel picks a path per flow.  One cached answer per target would make
 * the first flow's path every flow's path, changing at each refresh, so the
 * cache has SU_NH_BUCKETS entries per target: a flow's bucket is fixed by
 * its outer source port, and each bucket is looked up with a fixed
 * representative source port (SU_NH_SPORT_BASE + bucket), so a flow keeps
 * its path across refreshes for as long as the routes stay the same. */
#define SU_NH_TTL_JIFFIES 25
#define SU_NH_BUCKETS 8 /* power of two */
#define SU_NH_SPORT_BASE 0xc000

struct su_nh {
	__u64 expires;    /* bpf_jiffies64() deadline, 0: none */
	__u32 ifindex;    /* egress interface */
	__u32 in_ifindex; /* ingress interface the lookup was made for */
	__u16 ok_len;     /* largest outer length the MTU checks passed */
	__u8 dmac[6];
	__u8 smac[6];
	__u16 pad;
};

struct su_target_val {
	__u64 packets;
	__u64 bytes;
	struct su_nh nh[SU_NH_BUCKETS];
};

/* su_pmtu (shared): target (be32) -> tunnel path MTU learnt from an ICMP
 * "fragmentation needed" about our own GUE (RFC 1191 §4).  Below the first
 * hop's MTU (which bpf_fib_lookup checks) it drives the frag-needed answers
 * to origins.  Forgotten after SU_PMTU_TTL_NS (RFC 1191 §6.3 suggests trying
 * larger again after 10 minutes); never below SU_PMTU_MIN, as Linux's
 * net.ipv4.route.min_pmtu, so forged ICMP cannot shrink tunnels to nothing. */
#define SU_PMTU_TTL_NS (600ull * 1000000000ull)
#define SU_PMTU_MIN 552

struct su_pmtu_val {
	__u64 expires_ns; /* bpf_ktime_get_coarse_ns() deadline */
	__u32 mtu;        /* outer IPv4 bytes */
	__u32 pad;
};

/* su_ipid (per-CPU): the outer IPv4 ID of DF-clear packets (RFC 6864 §4.2:
 * unique per source, destination and protocol for as long as a fragment may
 * live).  The top cfg_cpu_bits bits are the CPU, the rest a per-CPU count,
 * so two CPUs (or two origins using the same inner ID) never collide. */

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
_Static_assert(sizeof(struct su_ipv) == 24, "su_ipv layout");
_Static_assert(sizeof(struct su_ifrole) == 8, "su_ifrole layout");
_Static_assert(sizeof(struct su_frag_key) == 12, "su_frag_key layout");
_Static_assert(sizeof(struct su_frag_val) == 8, "su_frag_val layout");
_Static_assert(sizeof(struct su_nh) == 32, "su_nh layout");
_Static_assert(sizeof(struct su_target_val) == 16 + 32 * SU_NH_BUCKETS, "su_target_val layout");
_Static_assert(sizeof(struct su_pmtu_val) == 16, "su_pmtu_val layout");
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
