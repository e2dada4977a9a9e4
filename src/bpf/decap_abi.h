/* ABI between decap.bpf.c (the agent's GUE decapsulator) and the agent.
 * Plain __u32 types, sizes asserted: one header, never two copies.  Names
 * are decap_* so they never meet the router's su_* ABI (bpf/abi.h). */
#ifndef SU_DECAP_ABI_H
#define SU_DECAP_ABI_H

#include <linux/types.h>

#define DECAP_GUE_PORT_DEFAULT 6080 /* same default as the router's GUE port */
#define DECAP_MAX_EGRESS 4096       /* egress IPs on one server */

#define DECAP_MAX_HOPS 16384        /* slices with a previous or a new owner */
#define DECAP_MAX_FRAG_HOPS 4096    /* fragmented datagrams of second hops in flight */
#define DECAP_ICMP_RATE_DEFAULT 1000 /* second-hop frag-needed answers per second per CPU */

/* decap_config[0]; network byte order, as compared in the packet. */
struct decap_cfg {
	__u32 router; /* the only outer source accepted: this DC's router */
	__u16 port;   /* outer UDP destination port of GUE */
	__u16 enabled;
	__u32 self;   /* this server's address: outer source of its second hops */
	__u32 slice_shift; /* host order: port >> slice_shift is the slice */
};

/* The second hop of a live move (issue 10; docs/agent.md, "Second hop").
 * GUE variant 0 (draft-ietf-intarea-gue section 3.1): Ver 0, C 0, Hlen 1,
 * Proto 4 (IPv4), Flags 0, then one 32-bit word of private data (section
 * 3.3.2) saying "softunicast second hop".  A first hop is GUE variant 1
 * (the inner IPv4 header right after UDP), so the two never look alike; a
 * packet that carries the mark is never forwarded again, whatever the plans
 * say (no loops).  Byte values as on the wire. */
#define DECAP_GUE_HOP_B0 0x01       /* Ver 0, C 0, Hlen 1 */
#define DECAP_GUE_HOP_PROTO 4       /* IPPROTO_IPIP */
#define DECAP_GUE_HOP_WORD 0x53553248 /* "SU2H", host order */
#define DECAP_GUE_HOP_LEN 8

/* decap_hops: (egress IP, slice) -> the other owner of a handed slice. */
struct decap_hop_key {
	__u32 ip;    /* egress IP, network order */
	__u32 slice; /* port >> slice_shift, host order */
};

enum {
	DECAP_HOP_MOVED_IN = 1, /* ours now: what has no socket here goes to peer */
	DECAP_HOP_HELD = 2,     /* peer's now: its second hops are accepted here */
};

struct decap_hop {
	__u32 peer;     /* previous owner (MOVED_IN) or new owner (HELD), network order */
	__u32 kind;     /* DECAP_HOP_* */
	__u64 until_ns; /* CLOCK_BOOTTIME (bpf_ktime_get_boot_ns): the deadline */
};

/* Echo replies (and ICMP errors quoting an echo request) have no socket
 * look-up in BPF, so on a slice taken over in a live move they are decided
 * by the clock alone: before the deadline they belong to the previous owner
 * (libsoftunicast on the new owner picks no identifier in a handed slice,
 * see lib/assignment.h "handed"), for DECAP_ECHO_QUIET_S after it they are
 * refused (the previous owner's last requests left before its agent let go
 * of the slice; their replies must not reach a new socket of this server
 * with the same identifier), then they are this server's.  The library
 * waits one second more than this, so the two clocks (CLOCK_REALTIME there,
 * CLOCK_BOOTTIME converted by the agent here) never disagree. */
#define DECAP_ECHO_QUIET_S 5

/* Per-CPU counters; labels double as metric names. */
#define DECAP_STAT_LIST(X)                                                            \
	X(DECAPSULATED, "decapsulated", "GUE packets from the router, inner passed up") \
	X(BAD_SOURCE, "drop_bad_source", "GUE port, outer source is not the DC router")  \
	X(NOT_OURS, "drop_not_ours", "inner destination is not an egress IP of ours")    \
	X(MALFORMED, "drop_malformed", "truncated or non-IPv4 inner packet")             \
	X(FRAGMENT, "pass_fragment", "later outer fragment from the router, left to the kernel") \
	X(NOT_GUE, "drop_not_gue", "IPv4 to an egress IP that did not come in the router's GUE") \
	X(OUTER_FRAGMENT, "drop_outer_fragment", "first fragment of a GUE packet: tunnel MTU too small") \
	X(TCP_SYN, "drop_tcp_syn", "TCP SYN without ACK to an egress IP: never a connection in")  \
	X(LISTENER, "drop_listener", "TCP segment that only a listening socket matches")          \
	X(NO_SOCKET, "drop_no_socket", "no local socket for the flow (or the ICMP error's quote)")  \
	X(UNBOUND, "drop_unbound", "the matching socket is not bound to the egress IP")           \
	X(PROTO, "drop_proto", "inner protocol other than TCP, UDP and ICMP")                    \
	X(ICMP_TYPE, "drop_icmp_type", "ICMP other than echo reply and the three error types")   \
	X(ICMP_QUOTE, "drop_icmp_quote", "ICMP error quoting no TCP/UDP/echo packet of ours")     \
	X(INNER_CSUM, "drop_inner_csum", "inner TCP/UDP/ICMP checksum wrong")                    \
	X(ECN, "drop_ecn", "outer CE on a Not-ECT inner packet (RFC 6040 section 4.2)")           \
	X(CE, "ecn_ce", "outer CE copied into the inner header (RFC 6040), packet passed")        \
	X(LOCAL, "drop_local", "sent by this host to one of its egress IPs (loopback)")          \
	X(SECOND_HOP_SENT, "second_hop_sent", "no local socket on a moved slice: sent on to its previous owner") \
	X(SECOND_HOP_RECEIVED, "second_hop_received", "second hop from a slice's new owner, inner passed up") \
	X(SECOND_HOP_REFUSED_EXPIRED, "second_hop_refused_expired", "second hop not sent or refused: the move's deadline passed") \
	X(SECOND_HOP_REFUSED_LOOP, "second_hop_refused_loop", "second hop with no local socket either: never forwarded a third time") \
	X(SECOND_HOP_REFUSED_SOURCE, "second_hop_refused_source", "second hop for a slice not held here, or not from its new owner") \
	X(SECOND_HOP_FRAG_NEEDED, "second_hop_frag_needed", "second hop too big for the uplink: ICMP fragmentation needed sent to the origin (RFC 1191)") \
	X(SECOND_HOP_DROP_MTU, "second_hop_drop_mtu", "second hop too big for the uplink, and no ICMP may answer it (DF clear, ICMP error, not one host)") \
	X(SECOND_HOP_DROP_ICMP_RATE, "second_hop_drop_icmp_ratelimit", "second hop too big for the uplink, fragmentation-needed answers over their rate")

enum decap_stat {
#define DECAP_STAT_ENUM(name, label, help) DECAP_STAT_##name,
	DECAP_STAT_LIST(DECAP_STAT_ENUM)
#undef DECAP_STAT_ENUM
	DECAP_STAT_MAX,
};

_Static_assert(sizeof(struct decap_cfg) == 16, "decap_cfg layout");
_Static_assert(sizeof(struct decap_hop_key) == 8, "decap_hop_key layout");
_Static_assert(sizeof(struct decap_hop) == 16, "decap_hop layout");

#endif
