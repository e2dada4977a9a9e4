/* ABI between enforce.bpf.c (the agent's tc egress ownership check) and the
 * agent.  Plain __u32/__u64 types, sizes asserted: one header, never two
 * copies.  Names are enforce_* so they never meet the router's su_* ABI. */
#ifndef SU_ENFORCE_ABI_H
#define SU_ENFORCE_ABI_H

#include <linux/types.h>

#define ENFORCE_MAX_EGRESS 4096 /* egress IPs on one server (as decap) */
#define ENFORCE_MAX_FRAGS 8192  /* datagrams in flight whose first fragment passed */

/* tc filter identity on IFACE's clsact egress: a restarted agent finds (and
 * replaces) a crashed one's program here, and never touches other filters. */
#define ENFORCE_TC_HANDLE 0x5375 /* "Su" */
#define ENFORCE_TC_PRIO 1

/* enforce_slices: egress IP (network order) -> the ports this server may send
 * from, one bit per port (bit p%64 of word p/64): TCP/UDP source ports and
 * ICMP echo identifiers alike, active and draining slices alike.  The whole
 * value is replaced by one map update, so a packet sees the old or the new
 * set, never a mix. */
struct enforce_ports {
	__u64 bits[65536 / 64];
};

/* enforce_frags: the first fragment of (saddr, daddr, id, proto) passed, so
 * its later fragments (which carry no ports) may pass too. */
struct enforce_frag_key {
	__u32 saddr, daddr; /* network order */
	__u16 id;           /* network order */
	__u8 proto, pad;
};

/* Per-CPU counters of packets whose source is an egress IP (others are not
 * counted: they are not ours to judge).  Labels double as metric labels;
 * append only. */
#define ENFORCE_STAT_LIST(X)                                                                     \
	X(PASS_PORT, "pass_port", "TCP/UDP, source port in one of our slices")                    \
	X(PASS_ECHO, "pass_echo", "ICMP echo request, identifier in one of our slices")           \
	X(PASS_ICMP_ERROR, "pass_icmp_error", "ICMP error (unreachable, time exceeded, ...)")     \
	X(PASS_FRAGMENT, "pass_fragment", "later fragment of a datagram whose first one passed")  \
	X(DROP_PORT, "drop_port", "TCP/UDP, source port outside our slices")                      \
	X(DROP_ECHO_ID, "drop_echo_id", "ICMP echo request, identifier outside our slices")       \
	X(DROP_ICMP_TYPE, "drop_icmp_type", "ICMP neither echo request nor error (echo reply...)") \
	X(DROP_PORT_PROTO, "drop_port_proto", "SCTP, UDP-Lite, DCCP: the router does not route their replies") \
	X(DROP_PROTO, "drop_proto", "any other IP protocol (raw sockets, GRE, ...)")              \
	X(DROP_FRAGMENT, "drop_fragment", "later fragment with no passed first fragment")         \
	X(DROP_MALFORMED, "drop_malformed", "truncated IPv4 or transport header")                 \
	X(DROP_ARP, "drop_arp", "ARP claiming an egress IP as sender (packet sockets)")

enum enforce_stat {
#define ENFORCE_STAT_ENUM(name, label, help) ENFORCE_STAT_##name,
	ENFORCE_STAT_LIST(ENFORCE_STAT_ENUM)
#undef ENFORCE_STAT_ENUM
	ENFORCE_STAT_MAX,
};

_Static_assert(sizeof(struct enforce_ports) == 8192, "enforce_ports layout");
_Static_assert(sizeof(struct enforce_frag_key) == 12, "enforce_frag_key layout");

#endif
