/* sock_diag (NETLINK_SOCK_DIAG / inet_diag) queries: which sockets use an
 * egress IP, to which destination.  The UDP connect path uses it to keep two
 * sockets from sharing one 4-tuple; the agent's status uses it to count the
 * ports in use per slice. */
#ifndef SU_SOCKDIAG_H
#define SU_SOCKDIAG_H

#include <stdint.h>

struct su_sockdiag_sock {
	uint32_t src, dst;     /* host byte order */
	uint16_t sport, dport;
	uint8_t proto, state;
	uint32_t inode;
	uint64_t cookie;
	uint32_t expires_ms;   /* TIME_WAIT: ms until the kernel frees the 4-tuple */
};

struct su_sockdiag_query {
	uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP */
	uint32_t src;  /* 0: any source address */
	int sport;     /* -1: any source port */
	uint32_t dst;  /* 0: any destination address */
	int dport;     /* -1: any destination port */
};

typedef int (*su_sockdiag_cb)(const struct su_sockdiag_sock *s, void *arg);

/* Calls cb for every matching IPv4 socket in this network namespace, and for
 * every AF_INET6 socket whose addresses are IPv4-mapped (::ffff:a.b.c.d): those
 * share the IPv4 port and 4-tuple space (one TCP ehash, one UDP table).  The
 * kernel filters (inet_diag_bc_run matches an AF_INET condition against mapped
 * addresses), so the cost is one round trip per ~thousand sockets per family.
 * A non-zero cb result stops the walk and is returned. */
int su_sockdiag__dump(const struct su_sockdiag_query *q, su_sockdiag_cb cb, void *arg);

/* Exact look-ups of one 4-tuple (inet_diag_find_one_icsk: a hash look-up,
 * O(1), where a dump walks the whole established hash, tens of ms on a big
 * host).  IPv4-mapped AF_INET6 sockets are found too (same hash). */
struct su_sockdiag;
int su_sockdiag__open(struct su_sockdiag **out);
void su_sockdiag__close(struct su_sockdiag *d);
/* q: every field exact.  1 (found, *out filled: state, expires_ms), 0 (none),
 * or -errno (no sock_diag). */
int su_sockdiag__lookup(struct su_sockdiag *d, const struct su_sockdiag_query *q,
			struct su_sockdiag_sock *out);

#endif
