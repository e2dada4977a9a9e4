/* ABI between decap.bpf.c (the agent's GUE decapsulator) and the agent.
 * Plain __u32 types, sizes asserted: one header, never two copies.  Names
 * are decap_* so they never meet the router's su_* ABI (bpf/abi.h). */
#ifndef SU_DECAP_ABI_H
#define SU_DECAP_ABI_H

#include <linux/types.h>

#define DECAP_GUE_PORT_DEFAULT 6080 /* same default as the router's GUE port */
#define DECAP_MAX_EGRESS 4096       /* egress IPs on one server */

/* decap_config[0]; network byte order, as compared in the packet. */
struct decap_cfg {
	__u32 router; /* the only outer source accepted: this DC's router */
	__u16 port;   /* outer UDP destination port of GUE */
	__u16 enabled;
};

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
	X(LOCAL, "drop_local", "sent by this host to one of its egress IPs (loopback)")

enum decap_stat {
#define DECAP_STAT_ENUM(name, label, help) DECAP_STAT_##name,
	DECAP_STAT_LIST(DECAP_STAT_ENUM)
#undef DECAP_STAT_ENUM
	DECAP_STAT_MAX,
};

_Static_assert(sizeof(struct decap_cfg) == 8, "decap_cfg layout");

#endif
