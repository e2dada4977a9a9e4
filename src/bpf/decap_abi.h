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
	X(FRAGMENT, "pass_fragment", "outer IP fragment, left to the kernel")

enum decap_stat {
#define DECAP_STAT_ENUM(name, label, help) DECAP_STAT_##name,
	DECAP_STAT_LIST(DECAP_STAT_ENUM)
#undef DECAP_STAT_ENUM
	DECAP_STAT_MAX,
};

_Static_assert(sizeof(struct decap_cfg) == 8, "decap_cfg layout");

#endif
