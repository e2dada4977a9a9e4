/* Source port selection inside one slice (see egress_port.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "softunicast/egress.h"
#include "lib/egress_port.h"
#include "lib/sockdiag.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif
#ifndef IP_LOCAL_PORT_RANGE
#define IP_LOCAL_PORT_RANGE 51
#endif

/* Random picks before select-test-repeat sweeps the slice in order: the
 * article saw 8-12 attempts per connection near exhaustion; past that a
 * sweep is cheaper than luck and proves exhaustion. */
#define RANDOM_TRIES 16

static bool g_no_range;

bool su_port__have_range(void)
{
	return !__atomic_load_n(&g_no_range, __ATOMIC_RELAXED);
}

uint32_t su_port__random(void)
{
	static __thread uint64_t x;

	if (!x) {
		if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != sizeof(x))
			x = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)&x;
		x |= 1;
	}
	x ^= x >> 12; /* xorshift64*: port picks need spread, not secrecy */
	x ^= x << 25;
	x ^= x >> 27;
	return (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
}

unsigned su_port__window(unsigned slice)
{
	const char *v = getenv("SOFTUNICAST_WINDOW");
	unsigned w = v ? (unsigned)strtoul(v, NULL, 10) : slice / 8;

	if (w < 2)
		w = 2;
	return w > slice ? slice : w;
}

static struct sockaddr_in sin_of(uint32_t ip, uint16_t port)
{
	return (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(port),
				     .sin_addr.s_addr = htonl(ip) };
}

static int bind_to(int fd, uint32_t ip, uint16_t port)
{
	struct sockaddr_in a = sin_of(ip, port);

	return bind(fd, (struct sockaddr *)&a, sizeof(a)) ? -errno : 0;
}

static int setopt(int fd, int level, int opt, uint32_t v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v)) ? -errno : 0;
}

/* The option packs both bounds in one u32: lo | hi << 16. */
static int set_range(int fd, uint16_t lo, uint16_t hi)
{
	int rc = setopt(fd, IPPROTO_IP, IP_LOCAL_PORT_RANGE, (uint32_t)lo | (uint32_t)hi << 16);

	if (rc == -ENOPROTOOPT)
		__atomic_store_n(&g_no_range, true, __ATOMIC_RELAXED);
	return rc;
}

/* A non-blocking connect in progress is a success for the caller, who polls
 * as after connect(2); the port was already chosen (EADDRNOTAVAIL comes back
 * synchronously from the kernel's port search). */
static int do_connect(int fd, const struct sockaddr *dst, socklen_t len)
{
	if (!connect(fd, dst, len))
		return 0;
	return -errno;
}

static int new_socket(int type)
{
	int base = type & 0xff, fl = type & (SOCK_NONBLOCK | SOCK_CLOEXEC), fd;

	if (base == SOCK_STREAM)
		fd = socket(AF_INET, SOCK_STREAM | fl, IPPROTO_TCP);
	else if (base == SOCK_DGRAM)
		fd = socket(AF_INET, SOCK_DGRAM | fl, IPPROTO_UDP);
	else if (base == SU_SOCK_PING)
		fd = socket(AF_INET, SOCK_DGRAM | fl, IPPROTO_ICMP);
	else
		return -EPROTOTYPE;
	return fd < 0 ? -errno : fd;
}

/* Replaces *fd by a fresh socket of the same kind, keeping the descriptor
 * number (the LD_PRELOAD shim's caller holds it). */
static int renew(int *fd, int type);

int su_port__renew(int fd, int type)
{
	return renew(&fd, type);
}

static int renew(int *fd, int type)
{
	int n = new_socket(type), rc = 0;

	if (n < 0)
		return n;
	if (dup3(n, *fd, type & SOCK_CLOEXEC ? O_CLOEXEC : 0) < 0)
		rc = -errno;
	close(n);
	return rc;
}

static bool in_slice(const struct su_port_req *r, uint16_t p)
{
	return p >= r->lo && p <= r->hi;
}

static unsigned slice_len(const struct su_port_req *r)
{
	return (unsigned)(r->hi - r->lo) + 1;
}

/* ---- TCP -------------------------------------------------------------- */

/* Baseline: the kernel's own bind-time search of ip_local_port_range.  The
 * port is exclusive to this socket (bind() cannot know the destination),
 * so it never shares ports across destinations. */
static int tcp_kernel(const struct su_port_req *r, int *fd, const struct sockaddr *dst,
		      socklen_t len)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int rc = bind_to(*fd, r->src, 0);

	if (rc == -EADDRINUSE)
		return -EADDRNOTAVAIL;
	if (!rc && getsockname(*fd, (struct sockaddr *)&a, &al))
		rc = -errno;
	if (!rc && !in_slice(r, ntohs(a.sin_port)))
		return -EADDRNOTAVAIL; /* ip_local_port_range is not the slice */
	return rc ? rc : do_connect(*fd, dst, len);
}

/* IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(), where the
 * kernel knows the destination and can reuse a port whose 4-tuple is free;
 * IP_LOCAL_PORT_RANGE bounds that search to the slice (Linux >= 6.3; >= 6.8
 * scans it in one pass, odd and even ports alike). */
static int tcp_range_setup(const struct su_port_req *r, int fd)
{
	int rc = setopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1);

	if (!rc)
		rc = set_range(fd, r->lo, r->hi);
	if (!rc)
		rc = bind_to(fd, r->src, 0);
	return rc;
}

static int tcp_str(const struct su_port_req *r, int *fd, const struct sockaddr *dst,
		   socklen_t len);

static int read_sysctl_range(unsigned *lo, unsigned *hi)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	int rc = -ENOENT;

	if (f) {
		rc = fscanf(f, "%u %u", lo, hi) == 2 ? 0 : -EINVAL;
		fclose(f);
	}
	return rc;
}

/* IP_LOCAL_PORT_RANGE can only narrow net.ipv4.ip_local_port_range (the
 * kernel intersects the two and ignores a socket range outside it), so a
 * slice outside the system range must use explicit ports.  The agent widens
 * the sysctl to cover its slices; the value is cached for a second. */
static bool slice_in_sysctl(const struct su_port_req *r)
{
	static __thread unsigned lo, hi;
	static __thread time_t when;
	time_t now = time(NULL);

	if (now != when) {
		if (read_sysctl_range(&lo, &hi))
			lo = hi = 0;
		when = now;
	}
	return r->lo >= lo && r->hi <= hi;
}

static int tcp_range(const struct su_port_req *r, int *fd, const struct sockaddr *dst,
		     socklen_t len)
{
	int rc;

	if (!slice_in_sysctl(r))
		return tcp_str(r, fd, dst, len);
	rc = tcp_range_setup(r, *fd);

	if (rc == -ENOPROTOOPT)
		return tcp_str(r, fd, dst, len);
	return rc ? rc : do_connect(*fd, dst, len);
}

/* Random shifting window: before 6.8 the kernel walks even ports then odd
 * ones over the whole range, so a small random window is much faster.  A
 * failed connect leaves the socket unbound-port, so the next window reuses
 * it.  A full window means the slice is nearly full, so each retry doubles
 * the window (a few failed searches, not RANDOM_TRIES of them) and the last
 * is the whole slice: only a full slice fails. */
static int tcp_window(const struct su_port_req *r, int *fd, const struct sockaddr *dst,
		      socklen_t len)
{
	unsigned n = slice_len(r), w = su_port__window(n);
	int rc;

	if (!slice_in_sysctl(r))
		return tcp_str(r, fd, dst, len);
	rc = tcp_range_setup(r, *fd);

	if (rc == -ENOPROTOOPT)
		return tcp_str(r, fd, dst, len);
	for (; !rc && w < n; w *= 2) {
		uint16_t lo = (uint16_t)(r->lo + su_port__random() % (n - w + 1));

		rc = set_range(*fd, lo, (uint16_t)(lo + w - 1));
		if (!rc)
			rc = do_connect(*fd, dst, len);
		if (rc != -EADDRNOTAVAIL)
			return rc;
		rc = 0;
	}
	if (!rc)
		rc = set_range(*fd, r->lo, r->hi);
	return rc ? rc : do_connect(*fd, dst, len);
}

/* One explicit port: SO_REUSEADDR lets connected sockets share it (TCP only
 * refuses a duplicate 4-tuple, at connect() time, with EADDRNOTAVAIL). */
static int tcp_try_port(const struct su_port_req *r, int *fd, uint16_t port,
			const struct sockaddr *dst, socklen_t len)
{
	int rc = setopt(*fd, SOL_SOCKET, SO_REUSEADDR, 1);

	if (!rc)
		rc = bind_to(*fd, r->src, port);
	if (!rc)
		return do_connect(*fd, dst, len);
	if (rc == -EADDRINUSE) /* a listener or a non-reuse socket owns it */
		return -EADDRNOTAVAIL;
	return rc;
}

/* Select, test, repeat: random ports, then a sweep.  A socket whose connect
 * failed is bound for good, so each retry needs a fresh one: the syscall
 * overhead the article measured. */
static int tcp_str(const struct su_port_req *r, int *fd, const struct sockaddr *dst,
		   socklen_t len)
{
	unsigned n = slice_len(r), start = su_port__random() % n;
	int rc = -EADDRNOTAVAIL;

	for (unsigned t = 0; t < RANDOM_TRIES + n; t++) {
		unsigned off = t < RANDOM_TRIES ? su_port__random() % n : (start + t) % n;

		if (t && (rc = renew(fd, r->type)))
			return rc;
		rc = tcp_try_port(r, fd, (uint16_t)(r->lo + off), dst, len);
		if (rc != -EADDRNOTAVAIL)
			return rc;
	}
	return rc;
}

/* ---- UDP -------------------------------------------------------------- */

struct portset {
	const struct su_port_req *r;
	uint64_t *bits;
	unsigned hits;
};

static void set_used(struct portset *ps, uint16_t p)
{
	unsigned i = (unsigned)(p - ps->r->lo);

	ps->bits[i / 64] |= 1ull << (i % 64);
}

static bool is_used(const struct portset *ps, unsigned i)
{
	return ps->bits[i / 64] >> (i % 64) & 1;
}

static int mark_used(const struct su_sockdiag_sock *s, void *arg)
{
	struct portset *ps = arg;

	if (in_slice(ps->r, s->sport)) {
		set_used(ps, s->sport);
		ps->hits++;
	}
	return 0;
}

/* Ports of the slice already connected to this exact destination. */
static int udp_used(const struct su_port_req *r, struct portset *ps, int sport)
{
	struct su_sockdiag_query q = { .proto = IPPROTO_UDP, .src = r->src, .sport = sport,
				       .dst = r->dst, .dport = r->dport };

	ps->hits = 0;
	return su_sockdiag__dump(&q, mark_used, ps);
}

static int udp_pick(const struct su_port_req *r, const struct portset *ps, uint16_t *port)
{
	unsigned n = slice_len(r), start = su_port__random() % n;

	for (unsigned k = 0; k < n; k++) {
		unsigned i = (start + k) % n;

		if (!is_used(ps, i)) {
			*port = (uint16_t)(r->lo + i);
			return 0;
		}
	}
	return -EADDRNOTAVAIL;
}

/* SO_REUSEADDR lets UDP sockets share a port, but the kernel never checks
 * that two of them connect to the same destination: the second silently
 * steals the first one's replies (udp_lib_lport_inuse skips the check).  So
 * the port is chosen among those not yet connected to dst, and verified after
 * connect() in case another process raced us; both racers back off.  Without
 * sock_diag there is no way to check, so the port is taken exclusively. */
static int udp_connect(struct su_port_req *r, int *fd, const struct sockaddr *dst,
		       socklen_t len)
{
	struct portset ps = { .r = r };
	bool guarded, stale = false;
	uint16_t port;
	int rc;

	ps.bits = calloc((slice_len(r) + 63) / 64, sizeof(uint64_t));
	if (!ps.bits)
		return -ENOMEM;
	guarded = udp_used(r, &ps, -1) == 0;
	for (int t = 0; t < RANDOM_TRIES; t++) {
		rc = udp_pick(r, &ps, &port);
		if (!rc && stale && (rc = renew(fd, r->type)))
			break;
		stale = false;
		if (!rc && guarded)
			rc = setopt(*fd, SOL_SOCKET, SO_REUSEADDR, 1);
		if (!rc)
			rc = bind_to(*fd, r->src, port);
		if (rc == -EADDRINUSE) {
			set_used(&ps, port);
			continue;
		}
		if (!rc)
			rc = do_connect(*fd, dst, len);
		if (rc || !guarded)
			break;
		rc = udp_used(r, &ps, port);
		if (rc || ps.hits <= 1)
			break;
		rc = -EADDRNOTAVAIL; /* lost a race for this 4-tuple: back off */
		stale = true;
		r->conflicts++;
	}
	free(ps.bits);
	return rc == -EADDRINUSE ? -EADDRNOTAVAIL : rc;
}

/* ---- ICMP echo -------------------------------------------------------- */

/* Ping sockets match echo replies on the identifier alone (ping_lookup does
 * not look at the peer), so an identifier must not be shared even across
 * destinations: no SO_REUSEADDR, and bind() itself is the test. */
static int ping_connect(const struct su_port_req *r, int *fd, const struct sockaddr *dst,
			socklen_t len)
{
	unsigned n = slice_len(r), start = su_port__random() % n;
	int rc = -EADDRNOTAVAIL;

	for (unsigned t = 0; t < RANDOM_TRIES + n; t++) {
		unsigned off = t < RANDOM_TRIES ? su_port__random() % n : (start + t) % n;

		rc = bind_to(*fd, r->src, (uint16_t)(r->lo + off));
		if (rc != -EADDRINUSE)
			break;
		rc = -EADDRNOTAVAIL;
	}
	return rc ? rc : do_connect(*fd, dst, len);
}

/* ---- entry points ----------------------------------------------------- */

static int dispatch(struct su_port_req *r, int *fd, const struct sockaddr *dst,
		    socklen_t len)
{
	switch (r->type & 0xff) {
	case SOCK_DGRAM:
		return udp_connect(r, fd, dst, len);
	case SU_SOCK_PING:
		return ping_connect(r, fd, dst, len);
	case SOCK_STREAM:
		break;
	default:
		return -EPROTOTYPE;
	}
	switch (r->strategy) {
	case SU_STRATEGY_KERNEL:
		return tcp_kernel(r, fd, dst, len);
	case SU_STRATEGY_WINDOW:
		return tcp_window(r, fd, dst, len);
	case SU_STRATEGY_STR:
		return tcp_str(r, fd, dst, len);
	}
	return tcp_range(r, fd, dst, len);
}

int su_port__connect(struct su_port_req *r, const struct sockaddr *dst, socklen_t len)
{
	int fd = new_socket(r->type), rc;

	if (fd < 0)
		return fd;
	rc = dispatch(r, &fd, dst, len);
	if (rc == -EINPROGRESS && (r->type & SOCK_NONBLOCK))
		rc = 0;
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}

int su_port__connect_fd(struct su_port_req *r, int fd, const struct sockaddr *dst,
			socklen_t len)
{
	return dispatch(r, &fd, dst, len);
}

int su_port__socket_type(int fd, int *type)
{
	int t, proto, fl;
	socklen_t l = sizeof(t);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l))
		return -errno;
	l = sizeof(proto);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l))
		return -errno;
	if (t == SOCK_STREAM && proto == IPPROTO_TCP)
		*type = SOCK_STREAM;
	else if (t == SOCK_DGRAM && proto == IPPROTO_UDP)
		*type = SOCK_DGRAM;
	else if (t == SOCK_DGRAM && proto == IPPROTO_ICMP)
		*type = SU_SOCK_PING;
	else
		return -EPROTOTYPE;
	fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		*type |= SOCK_NONBLOCK;
	fl = fcntl(fd, F_GETFD);
	if (fl >= 0 && (fl & FD_CLOEXEC))
		*type |= SOCK_CLOEXEC;
	return 0;
}
