/* libsoftunicast egress API: connect from this server's share of a soft-unicast
 * egress IP.
 *
 * The agent (`softunicast agent`) publishes which (egress IP, port slice, tags)
 * this server owns in /run/softunicast/assignment.  su_connect() picks an
 * active slice whose tags match the query, binds the socket to that IP with a
 * source port inside the slice, and connects it.  Source ports are shared
 * across *different* destinations (a TCP/UDP connection is identified by its
 * 4-tuple), so one 2048-port slice carries 2048 connections per destination.
 *
 * Every function returns a non-negative value on success and -errno on
 * failure; su_strerror() explains the soft-unicast meanings:
 *   -EINVAL          malformed tag query or arguments
 *   -ENOENT          no assignment published (is the agent running?)
 *   -EPROTONOSUPPORT the assignment file has a format this library cannot read
 *   -ESRCH           no active egress of this server matches the tags
 *   -EADDRNOTAVAIL   every matching slice is exhausted for that destination;
 *                    (ping) or every matching slice was handed to this server
 *                    by a live move whose previous owner's echo replies still
 *                    arrive (until the move's deadline + 6 s)
 *   -EAFNOSUPPORT    destination is not IPv4 (soft-unicast shares IPv4 space):
 *                    neither AF_INET nor AF_INET6 with an IPv4-mapped address
 *                    ::ffff:a.b.c.d (RFC 4291 section 2.5.5.2), which is taken
 *                    as the IPv4 address it maps
 *   -EPROTOTYPE      type is not SOCK_STREAM, SOCK_DGRAM or SU_SOCK_PING
 *   -EACCES          (ping) net.ipv4.ping_group_range excludes this group
 *   anything connect(2) returns (-ECONNREFUSED, -ETIMEDOUT, ...).
 *
 * Thread-safe.  The assignment is re-read when the agent replaces it (checked
 * at most every 250 ms), so a plan change applies to the next connection. */
#ifndef SOFTUNICAST_EGRESS_H
#define SOFTUNICAST_EGRESS_H

#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ICMP echo through a ping socket (SOCK_DGRAM, IPPROTO_ICMP): the echo
 * identifier is the "port" and lies inside the slice, which is how the
 * router sends the reply to this server.  A slice handed to this server by a
 * live move gives no identifier until the previous owner's echoes are over
 * (docs/operator.md, "Live moves").  Not a valid SOCK_* value. */
#define SU_SOCK_PING 0x40

/* Source port selection.  They differ in speed near exhaustion, not in
 * correctness: each one fails only when the slice is really full for that
 * destination (see the "connect() - why are you so slow?" findings). */
enum su_strategy {
	SU_STRATEGY_AUTO = 0,   /* $SOFTUNICAST_STRATEGY, else the best this kernel has */
	SU_STRATEGY_KERNEL = 1, /* bind(ip, 0): the kernel's ephemeral range; only useful
				   when net.ipv4.ip_local_port_range is the slice (a baseline) */
	SU_STRATEGY_RANGE = 2,  /* IP_BIND_ADDRESS_NO_PORT + IP_LOCAL_PORT_RANGE = slice */
	SU_STRATEGY_WINDOW = 3, /* random shifting window inside the slice (Linux 6.3-6.7) */
	SU_STRATEGY_STR = 4,    /* select, test, repeat: random explicit port (any kernel) */
};
#define SU_STRATEGY_MAX SU_STRATEGY_STR

/* flags for su_connect(): the low four bits pick a strategy (0 = auto). */
#define SU_F_STRATEGY(s) ((s) & 0xf)

struct su_egress;

/* A handle on one assignment file (NULL: $SOFTUNICAST_ASSIGNMENT, else
 * /run/softunicast/assignment).  The file is read lazily, so opening succeeds
 * before the agent has published. */
int su_egress__open(const char *path, struct su_egress **out);
void su_egress__close(struct su_egress *e);

/* Creates a socket of `type` (SOCK_STREAM, SOCK_DGRAM or SU_SOCK_PING, may be
 * or'ed with SOCK_NONBLOCK and SOCK_CLOEXEC), binds it inside a slice whose
 * tags match `tags` ("service=warp,country=GB"; "*" for any) and connects it
 * to dst.  Returns the connected socket.  With SOCK_NONBLOCK a TCP connect may
 * still be in progress (poll for writability, as after connect(2)). */
int su_egress__connect(struct su_egress *e, const char *tags, const struct sockaddr *dst,
		       socklen_t len, int type, int flags);

/* Same for a socket the caller already created and has not bound to a port
 * (what the LD_PRELOAD shim does to an unmodified program's connect()): an
 * AF_INET socket with an AF_INET dst, or a dual-stack AF_INET6 socket with an
 * IPv4-mapped dst (it is bound to ::ffff:egress-IP; -ENETUNREACH if it is
 * IPV6_V6ONLY, as the kernel says).  Returns 0, -EINPROGRESS for a
 * non-blocking TCP connect under way, or -errno.
 *
 * The socket is never replaced, so every option set before (TCP_NODELAY,
 * SO_KEEPALIVE, buffer sizes, IP_TOS, SO_MARK, filters...) survives every
 * strategy; the library adds SO_REUSEADDR (TCP and UDP: ports are shared
 * across destinations), IP_BIND_ADDRESS_NO_PORT and IP_LOCAL_PORT_RANGE (TCP
 * range and window strategies).  A port is tested before the socket is bound
 * to it, so an exhausted slice leaves the socket unbound and the next matching
 * IP is tried on it.  Only another process taking the same 4-tuple in the
 * microseconds between test and connect() makes it fail with -EADDRNOTAVAIL
 * (counted as a conflict); the program may retry on a new socket. */
int su_egress__connect_fd(struct su_egress *e, int fd, const char *tags,
			  const struct sockaddr *dst, socklen_t len, int flags);

/* Binds an unconnected UDP or ping socket (AF_INET, or dual-stack AF_INET6
 * for UDP) inside a matching slice, for sendto()/sendmsg() toward any IPv4
 * destination: the port (ping: identifier) is one no other socket of this
 * host holds on that egress IP, since replies may come from any peer.  What
 * the shim does before an unconnected socket's first send.  0 or -errno
 * (-EPROTOTYPE for a TCP socket: connect it instead). */
int su_egress__bind_fd(struct su_egress *e, int fd, const char *tags, int flags);

/* su_egress__connect() on the process-wide default handle. */
int su_connect(const char *tags, const struct sockaddr *dst, socklen_t len, int type, int flags);

/* A sentence for a result of the functions above (errno meanings refined). */
const char *su_strerror(int err);

const char *su_strategy__name(int strategy);
/* "auto", "kernel", "range", "window", "str"; -EINVAL otherwise. */
int su_strategy__parse(const char *name);
/* What SU_STRATEGY_AUTO means on this kernel (probed once). */
int su_strategy__resolve(int strategy);

#ifdef __cplusplus
}
#endif

#endif
