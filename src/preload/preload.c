/* libsoftunicast-preload.so: makes an unmodified program's IPv4 connect()
 * egress from this server's slice.
 *
 *   SOFTUNICAST_TAGS=service=warp,country=GB \
 *   LD_PRELOAD=libsoftunicast-preload.so curl http://198.51.100.80/
 *
 * Only connect() on an AF_INET TCP, UDP or ping socket the program has not
 * bound itself is taken over; everything else goes to libc untouched.
 * Loopback and link-local destinations and port 53 (name resolution belongs to
 * the host's own address) are left alone.  When no egress matches, connect()
 * fails (errno from su_strerror's list) rather than silently leaving from the
 * host's address: the tags are a policy.  Known limits: sendto() on an
 * unconnected UDP socket is not intercepted; a program that calls the raw
 * syscall bypasses the shim. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "softunicast/egress.h"

typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

static connect_fn real_connect;
static struct su_egress *egress;
static const char *tags;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	real_connect = (connect_fn)dlsym(RTLD_NEXT, "connect");
	tags = getenv("SOFTUNICAST_TAGS");
	if (tags && *tags && su_egress__open(NULL, &egress))
		egress = NULL;
}

static bool exempt(const struct sockaddr_in *d)
{
	uint32_t a = ntohl(d->sin_addr.s_addr);

	return (a >> 24) == 127 || (a >> 16) == 0xa9fe || a == 0 || ntohs(d->sin_port) == 53;
}

/* Already bound by the program (explicit bind or an earlier connect). */
static bool bound(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &l) || a.sin_family != AF_INET)
		return true;
	return a.sin_port || a.sin_addr.s_addr;
}

__attribute__((visibility("default"))) int connect(int fd, const struct sockaddr *addr,
						   socklen_t len)
{
	int rc;

	pthread_once(&once, init);
	if (!real_connect) {
		errno = ENOSYS;
		return -1;
	}
	if (!egress || !addr || len < sizeof(struct sockaddr_in) || addr->sa_family != AF_INET ||
	    exempt((const struct sockaddr_in *)addr) || bound(fd))
		return real_connect(fd, addr, len);
	rc = su_egress__connect_fd(egress, fd, tags, addr, len, 0);
	if (rc == -EPROTOTYPE) /* not TCP/UDP/ping: not ours */
		return real_connect(fd, addr, len);
	if (rc) {
		errno = -rc;
		return -1;
	}
	return 0;
}
