/* libsoftunicast-preload.so: makes an unmodified program's IPv4 flows egress
 * from this server's slice.
 *
 *   SOFTUNICAST_TAGS=service=warp,country=GB \
 *   LD_PRELOAD=libsoftunicast-preload.so curl http://198.51.100.80/
 *
 * Every way a program opens an IPv4 flow from a socket without a port goes
 * through the library, on the program's own socket (never a replaced one, so
 * its options survive):
 *   - connect() of a TCP, UDP or ping socket, blocking or not (EINPROGRESS as
 *     usual), AF_INET or dual-stack AF_INET6 to an IPv4-mapped ::ffff:a.b.c.d;
 *   - sendto(), sendmsg() and sendmmsg() with a destination on an unconnected
 *     UDP or ping socket: the socket first gets a port (identifier) of its own
 *     in the slice, since it may talk to any peer;
 *   - sendto()/sendmsg() with MSG_FASTOPEN on a TCP socket (an implicit
 *     connect): connected through the library, then the data is sent;
 *   - bind() to the wildcard address with port 0 (how many programs start)
 *     binds without a port (IP_BIND_ADDRESS_NO_PORT; ping: nothing), so the
 *     port is still chosen in the slice at connect() or the first send
 *     (getsockname() shows port 0 until then; a listener still gets its
 *     port at listen()).
 * Loopback and link-local destinations and port 53 (name resolution belongs
 * to the host's own address) are left alone, and so are sockets the program
 * bound to a port or to a specific address itself.  When no egress matches,
 * the call fails (errno from su_strerror's list) rather than silently leaving
 * from the host's address: the tags are a policy.  Known limits: programs that
 * issue the raw syscalls (or io_uring) bypass the shim; a datagram socket that
 * first talked to an exempt destination keeps the kernel's port for later
 * ones (the shim never rebinds a socket).  The agent's enforcement drops
 * whatever leaves an egress IP outside the slices anyway. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "softunicast/egress.h"
#include "lib/egress_port.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);
typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendto_fn)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef int (*sendmmsg_fn)(int, struct mmsghdr *, unsigned int, int);

static struct {
	connect_fn connect;
	bind_fn bind;
	sendto_fn sendto;
	sendmsg_fn sendmsg;
	sendmmsg_fn sendmmsg;
} real;
static struct su_egress *egress;
static const char *tags;
static pthread_once_t once = PTHREAD_ONCE_INIT;
/* The library's own connect()/bind() calls resolve to ours: pass them on. */
static __thread int inside;

static void init(void)
{
	real.connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
	real.bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
	real.sendto = (sendto_fn)dlsym(RTLD_NEXT, "sendto");
	real.sendmsg = (sendmsg_fn)dlsym(RTLD_NEXT, "sendmsg");
	real.sendmmsg = (sendmmsg_fn)dlsym(RTLD_NEXT, "sendmmsg");
	tags = getenv("SOFTUNICAST_TAGS");
	if (tags && *tags && su_egress__open(NULL, &egress))
		egress = NULL;
}

/* Whether the shim acts at all in this call; false inside the library. */
static bool active(void)
{
	pthread_once(&once, init);
	return egress && !inside;
}

static bool exempt(const struct sockaddr_in *d)
{
	uint32_t a = ntohl(d->sin_addr.s_addr);

	return (a >> 24) == 127 || (a >> 16) == 0xa9fe || a == 0 || ntohs(d->sin_port) == 53;
}

/* An IPv4 destination (AF_INET or IPv4-mapped AF_INET6) that must egress. */
static bool ours(const struct sockaddr *addr, socklen_t len)
{
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)addr;
	struct sockaddr_in d = { .sin_family = AF_INET };

	if (!addr || len < sizeof(sa_family_t))
		return false;
	if (addr->sa_family == AF_INET && len >= sizeof(d)) {
		memcpy(&d, addr, sizeof(d));
	} else if (addr->sa_family == AF_INET6 &&
		   len >= offsetof(struct sockaddr_in6, sin6_scope_id) &&
		   IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
		d.sin_port = a6->sin6_port;
		memcpy(&d.sin_addr, &a6->sin6_addr.s6_addr[12], 4);
	} else {
		return false;
	}
	return !exempt(&d);
}

static bool wildcard(const struct sockaddr *a, socklen_t len, bool *port0)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;

	if (a->sa_family == AF_INET && len >= sizeof(*a4)) {
		*port0 = !a4->sin_port;
		return !a4->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6 && len >= offsetof(struct sockaddr_in6, sin6_scope_id)) {
		*port0 = !a6->sin6_port;
		return IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) && !a6->sin6_addr.s6_addr32[3]);
	}
	return false;
}

/* No port and no address yet: the kernel would pick an ephemeral port at
 * connect() or the first send.  A port or an address the program bound is
 * its own choice. */
static bool unbound(int fd)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);
	bool port0 = false;

	if (getsockname(fd, (struct sockaddr *)&a, &l))
		return false;
	return wildcard((struct sockaddr *)&a, l, &port0) && port0;
}

static int fail(int rc)
{
	errno = -rc;
	return -1;
}

__attribute__((visibility("default"))) int connect(int fd, const struct sockaddr *addr,
						   socklen_t len)
{
	int rc;

	if (!active() || !ours(addr, len) || !unbound(fd))
		return real.connect ? real.connect(fd, addr, len) : fail(-ENOSYS);
	inside++;
	rc = su_egress__connect_fd(egress, fd, tags, addr, len, 0);
	inside--;
	if (rc == -EPROTOTYPE) /* not TCP/UDP/ping: not ours */
		return real.connect(fd, addr, len);
	return rc ? fail(rc) : 0;
}

/* bind(0.0.0.0:0) (or [::]:0) fixes nothing but would take an ephemeral port
 * on the spot; without the port, the choice waits for connect() or the first
 * send, where the shim makes it.  IPV6_V6ONLY sockets carry no IPv4. */
__attribute__((visibility("default"))) int bind(int fd, const struct sockaddr *addr,
						socklen_t len)
{
	int type, family, one = 1, v6only = 0;
	socklen_t l = sizeof(v6only);
	bool port0 = false;

	if (!active() || !addr || !wildcard(addr, len, &port0) || !port0 ||
	    su_port__socket_type(fd, &type, &family))
		return real.bind ? real.bind(fd, addr, len) : fail(-ENOSYS);
	if (family == AF_INET6 && !getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l) &&
	    v6only)
		return real.bind(fd, addr, len);
	if ((type & 0xff) == SU_SOCK_PING)
		return 0; /* a ping socket's bind always takes an identifier */
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
	return real.bind(fd, addr, len);
}

/* Before a send with a destination on a socket without a port: 0 to go on
 * with the real call, 1 when a TCP Fast Open send was connected here (send
 * without the address), or -errno. */
static int before_send(int fd, const struct sockaddr *addr, socklen_t len, int flags)
{
	int type, family, rc;

	if (!active() || !ours(addr, len) || !unbound(fd) ||
	    su_port__socket_type(fd, &type, &family))
		return 0;
	inside++;
	if ((type & 0xff) == SOCK_STREAM) /* MSG_FASTOPEN: an implicit connect */
		rc = flags & MSG_FASTOPEN ? su_egress__connect_fd(egress, fd, tags, addr, len, 0)
					  : 0;
	else
		rc = su_egress__bind_fd(egress, fd, tags, 0);
	inside--;
	if ((type & 0xff) == SOCK_STREAM && !rc && (flags & MSG_FASTOPEN))
		return 1;
	return rc;
}

__attribute__((visibility("default"))) ssize_t sendto(int fd, const void *buf, size_t n, int flags,
						      const struct sockaddr *addr, socklen_t len)
{
	int rc = before_send(fd, addr, len, flags);

	if (!real.sendto)
		return fail(-ENOSYS);
	if (rc < 0)
		return fail(rc);
	if (rc == 1)
		return real.sendto(fd, buf, n, flags & ~MSG_FASTOPEN, NULL, 0);
	return real.sendto(fd, buf, n, flags, addr, len);
}

__attribute__((visibility("default"))) ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	int rc = msg ? before_send(fd, msg->msg_name, msg->msg_namelen, flags) : 0;
	struct msghdr m;

	if (!real.sendmsg)
		return fail(-ENOSYS);
	if (rc < 0)
		return fail(rc);
	if (rc == 1) {
		m = *msg;
		m.msg_name = NULL;
		m.msg_namelen = 0;
		return real.sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
	}
	return real.sendmsg(fd, msg, flags);
}

/* The socket needs its port before the first datagram whichever message
 * names an egress destination. */
__attribute__((visibility("default"))) int sendmmsg(int fd, struct mmsghdr *v, unsigned int n,
						    int flags)
{
	int rc = 0;

	for (unsigned i = 0; v && i < n && !rc; i++)
		rc = before_send(fd, v[i].msg_hdr.msg_name, v[i].msg_hdr.msg_namelen,
				 flags & ~MSG_FASTOPEN);
	if (!real.sendmmsg)
		return fail(-ENOSYS);
	if (rc < 0)
		return fail(rc);
	return real.sendmmsg(fd, v, n, flags);
}
