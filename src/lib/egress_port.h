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
	int strategy;      /* resolved: never SU_STRATEGY_AUTO */
	unsigned conflicts; /* out: UDP 4-tuple races lost and backed off from */
};

/* New connected socket (fd) or -errno; -EADDRNOTAVAIL only when no port of
 * the slice is free toward dst. */
int su_port__connect(struct su_port_req *r, const struct sockaddr *dst, socklen_t len);
/* The caller's socket: 0, -EINPROGRESS (non-blocking TCP) or -errno. */
int su_port__connect_fd(struct su_port_req *r, int fd, const struct sockaddr *dst,
			socklen_t len);
/* A fresh unbound socket of `type` in place of fd (same number): a socket
 * whose address is bound cannot be moved to another egress IP. */
int su_port__renew(int fd, int type);
/* SOCK_STREAM / SOCK_DGRAM / SU_SOCK_PING of an existing socket, with
 * SOCK_NONBLOCK when it is non-blocking; -EPROTOTYPE for anything else. */
int su_port__socket_type(int fd, int *type);
/* False once the kernel answered ENOPROTOOPT to IP_LOCAL_PORT_RANGE (< 6.3). */
bool su_port__have_range(void);
/* Random window size for SU_STRATEGY_WINDOW: $SOFTUNICAST_WINDOW or 1/8 of
 * the slice (the article's best, 500 of 28k ports, is ~2%, but a slice is
 * 14x smaller and the window must still hold free ports when it is 90% full). */
unsigned su_port__window(unsigned slice);
uint32_t su_port__random(void);

#endif
