/* Source port selection inside one slice (egress_port.c): the TCP strategies
 * of "connect() - why are you so slow?", the UDP 4-tuple guard and ping
 * identifiers.  Internal to libsoftunicast; egress.c picks the slice. */
#ifndef SU_EGRESS_PORT_H
#define SU_EGRESS_PORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct su_port_req {
	uint32_t src;      /* egress IP, host order */
	uint16_t lo, hi;   /* slice, inclusive */
	uint32_t dst;      /* host order */
	uint16_t dport;
	int type;          /* SOCK_STREAM / SOCK_DGRAM / SU_SOCK_PING | SOCK_NONBLOCK | SOCK_CLOEXEC */
	int family;        /* the socket's: AF_INET, or AF_INET6 for a dual-stack socket that
			      reaches IPv4 through ::ffff:a.b.c.d (bound to ::ffff:src) */
	int strategy;      /* resolved: never SU_STRATEGY_AUTO */
	bool keep_fd;      /* the caller's socket: never replaced (its options must survive),
			      so it is bound only to a port already found free */
	unsigned conflicts; /* out: 4-tuple or identifier races lost and backed off from */
};

/* New connected socket (fd) or -errno; -EADDRNOTAVAIL only when no port of
 * the slice is free toward dst. */
int su_port__connect(struct su_port_req *r, const struct sockaddr *dst, socklen_t len);
/* The caller's socket (r->keep_fd should be set): 0, -EINPROGRESS
 * (non-blocking TCP) or -errno.  On -EADDRNOTAVAIL the socket has no port
 * unless su_port__has_port() says otherwise (a race lost after binding). */
int su_port__connect_fd(struct su_port_req *r, int fd, const struct sockaddr *dst,
			socklen_t len);
/* Binds an unconnected UDP or ping socket to a port (identifier) of the slice
 * that no other socket of this host uses on that address, for sendto() to
 * any destination: replies may come from any peer.  0 or -errno. */
int su_port__bind_fd(struct su_port_req *r, int fd);
/* True when fd already holds a local port (it cannot take another one). */
bool su_port__has_port(int fd);
/* SOCK_STREAM / SOCK_DGRAM / SU_SOCK_PING of an existing socket, with
 * SOCK_NONBLOCK | SOCK_CLOEXEC as set, and its family (AF_INET, AF_INET6);
 * -EPROTOTYPE for anything else. */
int su_port__socket_type(int fd, int *type, int *family);
/* False once the kernel answered ENOPROTOOPT to IP_LOCAL_PORT_RANGE (< 6.3). */
bool su_port__have_range(void);
/* Random window size for SU_STRATEGY_WINDOW: $SOFTUNICAST_WINDOW or 1/8 of
 * the slice (the article's best, 500 of 28k ports, is ~2%, but a slice is
 * 14x smaller and the window must still hold free ports when it is 90% full). */
unsigned su_port__window(unsigned slice);
/* xorshift64*, per thread, reseeded from getrandom() in a child after fork()
 * (pre-forked workers must not draw the same ports). */
uint32_t su_port__random(void);

#endif
