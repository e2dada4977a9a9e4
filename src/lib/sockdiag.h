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
};

struct su_sockdiag_query {
	uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP */
	uint32_t src;  /* 0: any source address */
	int sport;     /* -1: any source port */
	uint32_t dst;  /* 0: any destination address */
	int dport;     /* -1: any destination port */
};

typedef int (*su_sockdiag_cb)(const struct su_sockdiag_sock *s, void *arg);

/* Calls cb for every matching IPv4 socket in this network namespace (the
 * kernel filters, so the cost is one round trip per ~thousand sockets).
 * A non-zero cb result stops the walk and is returned. */
int su_sockdiag__dump(const struct su_sockdiag_query *q, su_sockdiag_cb cb, void *arg);

#endif
