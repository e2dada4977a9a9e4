/* Source port selection inside one slice (see egress_port.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
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

/* Bumped in the child of every fork(): a pre-forked worker inherits its
 * parent's generator state, and would otherwise draw the same ports as its
 * siblings (and lose the same races for them). */
static unsigned g_fork_gen;

static void on_fork_child(void)
{
	__atomic_add_fetch(&g_fork_gen, 1, __ATOMIC_RELAXED);
}

__attribute__((constructor)) static void register_fork(void)
{
	pthread_atfork(NULL, NULL, on_fork_child);
}

uint32_t su_port__random(void)
{
	static __thread uint64_t x;
	static __thread unsigned gen;
	unsigned g = __atomic_load_n(&g_fork_gen, __ATOMIC_RELAXED);

	if (!x || gen != g) {
		gen = g;
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

/* A dual-stack AF_INET6 socket takes IPv4 addresses as ::ffff:a.b.c.d
 * (RFC 4291 section 2.5.5.2) and shares the IPv4 port space. */
static int bind_to(const struct su_port_req *r, int fd, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(r->src) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };

	if (r->family != AF_INET6)
		return bind(fd, (struct sockaddr *)&a, sizeof(a)) ? -errno : 0;
	a6.sin6_addr.s6_addr[10] = a6.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&a6.sin6_addr.s6_addr[12], &a.sin_addr, 4);
	return bind(fd, (struct sockaddr *)&a6, sizeof(a6)) ? -errno : 0;
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

	/* Always AF_INET: only the library's own sockets are ever created here. */
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
 * number.  Only for the library's own sockets (su_port__connect): a caller's
 * socket (keep_fd) carries options that a fresh one would not. */
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

/* ---- ports in use, from the kernel ------------------------------------- */

struct portset {
	const struct su_port_req *r;
	uint64_t *bits;
	unsigned hits;
};

static int portset_init(struct portset *ps, const struct su_port_req *r)
{
	*ps = (struct portset){ .r = r };
	ps->bits = calloc((slice_len(r) + 63) / 64, sizeof(uint64_t));
	return ps->bits ? 0 : -ENOMEM;
}

static void portset_free(struct portset *ps)
{
	free(ps->bits);
}

static void set_used(struct portset *ps, uint16_t p)
{
	unsigned i = (unsigned)(p - ps->r->lo);

	ps->bits[i / 64] |= 1ull << (i % 64);
}

static bool is_used(const struct portset *ps, unsigned i)
{
	return ps->bits[i / 64] >> (i % 64) & 1;
}

#define SU_TCP_TIME_WAIT 6 /* enum in include/net/tcp_states.h */

static int mark_used(const struct su_sockdiag_sock *s, void *arg)
{
	struct portset *ps = arg;

	if (in_slice(ps->r, s->sport)) {
		set_used(ps, s->sport);
		ps->hits++;
	}
	return 0;
}

/* Ports of the slice already connected to this exact destination (sport -1)
 * or sockets on one port of it toward dst (UDP: its table is small enough to
 * dump; TCP uses exact look-ups, see tcp_str_keep). */
static int ports_used(const struct su_port_req *r, uint8_t proto, struct portset *ps, int sport)
{
	struct su_sockdiag_query q = { .proto = proto, .src = r->src, .sport = sport,
				       .dst = r->dst, .dport = r->dport };

	ps->hits = 0;
	return su_sockdiag__dump(&q, mark_used, ps);
}

/* A random port not marked in ps. */
static int pick_free(const struct su_port_req *r, const struct portset *ps, uint16_t *port)
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

/* ---- TCP -------------------------------------------------------------- */

/* Baseline: the kernel's own bind-time search of ip_local_port_range.  The
 * port is exclusive to this socket (bind() cannot know the destination),
 * so it never shares ports across destinations. */
static int tcp_kernel(const struct su_port_req *r, int *fd, const struct sockaddr *dst,
		      socklen_t len)
{
	struct sockaddr_storage a;
	socklen_t al = sizeof(a);
	int rc = bind_to(r, *fd, 0);
	uint16_t port = 0;

	if (rc == -EADDRINUSE)
		return -EADDRNOTAVAIL;
	if (!rc && getsockname(*fd, (struct sockaddr *)&a, &al))
		rc = -errno;
	if (!rc)
		port = ntohs(((struct sockaddr_in *)&a)->sin_port); /* same offset in sockaddr_in6 */
	if (!rc && !in_slice(r, port))
		return -EADDRNOTAVAIL; /* ip_local_port_range is not the slice */
	return rc ? rc : do_connect(*fd, dst, len);
}

/* IP_BIND_ADDRESS_NO_PORT defers the port choice to connect(), where the
 * kernel knows the destination and can reuse a port whose 4-tuple is free;
 * IP_LOCAL_PORT_RANGE bounds that search to the slice (Linux >= 6.3; >= 6.8
 * scans it in one pass, odd and even ports alike).  Both are IPPROTO_IP
 * options that an AF_INET6 socket accepts too (ipv6_setsockopt hands SOL_IP
 * to ip_setsockopt).  A connect that finds no port leaves the socket without
 * one, so the caller's socket can move on to another IP. */
static int tcp_range_setup(const struct su_port_req *r, int fd)
{
	int rc = setopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1);

	if (!rc)
		rc = set_range(fd, r->lo, r->hi);
	if (!rc)
		rc = bind_to(r, fd, 0);
	return rc;
}

static int tcp_str(struct su_port_req *r, int *fd, const struct sockaddr *dst, socklen_t len);

/* One or two unsigned numbers (b NULL: one). */
static int read_sysctl(const char *path, unsigned *a, unsigned *b)
{
	FILE *f = fopen(path, "re");
	int rc = -ENOENT;

	if (f) {
		if (b)
			rc = fscanf(f, "%u %u", a, b) == 2 ? 0 : -EINVAL;
		else
			rc = fscanf(f, "%u", a) == 1 ? 0 : -EINVAL;
		fclose(f);
	}
	return rc;
}

/* IP_LOCAL_PORT_RANGE can only narrow net.ipv4.ip_local_port_range (the
 * kernel intersects the two and ignores a socket range outside it), so a
 * slice outside the system range must use explicit ports.  The value is
 * cached for a second. */
static bool slice_in_sysctl(const struct su_port_req *r)
{
	static __thread unsigned lo, hi;
	static __thread time_t when;
	time_t now = time(NULL);

	if (now != when) {
		if (read_sysctl("/proc/sys/net/ipv4/ip_local_port_range", &lo, &hi))
			lo = hi = 0;
		when = now;
	}
	return r->lo >= lo && r->hi <= hi;
}

static int tcp_range(struct su_port_req *r, int *fd, const struct sockaddr *dst, socklen_t len)
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
static int tcp_window(struct su_port_req *r, int *fd, const struct sockaddr *dst, socklen_t len)
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
static int tcp_bind_port(const struct su_port_req *r, int fd, uint16_t port)
{
	int rc = setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);

	if (!rc)
		rc = bind_to(r, fd, port);
	if (rc == -EADDRINUSE) /* a listener or a non-reuse socket owns it */
		return -EADDRNOTAVAIL;
	return rc;
}

static int tcp_try_port(const struct su_port_req *r, int *fd, uint16_t port,
			const struct sockaddr *dst, socklen_t len)
{
	int rc = tcp_bind_port(r, *fd, port);

	return rc ? rc : do_connect(*fd, dst, len);
}

/* Whether connect() may take over a 4-tuple in TIME_WAIT, and how long after
 * the last segment it must wait (ms): tcp_twsk_unique() allows it with
 * net.ipv4.tcp_tw_reuse = 1 (2: loopback only) once the peer's last timestamp
 * is older than net.ipv4.tcp_tw_reuse_delay (Linux >= 6.13; before, one
 * second on a seconds clock, so up to two).  PAWS (RFC 7323 section 5) then
 * rejects the old connection's duplicates. */
static bool tw_reusable(const struct su_port_req *r, unsigned *delay_ms)
{
	static __thread unsigned reuse, delay;
	static __thread time_t when;
	time_t now = time(NULL);

	if (now != when) {
		if (read_sysctl("/proc/sys/net/ipv4/tcp_tw_reuse", &reuse, NULL))
			reuse = 0;
		if (read_sysctl("/proc/sys/net/ipv4/tcp_tw_reuse_delay", &delay, NULL))
			delay = 2000;
		when = now;
	}
	*delay_ms = delay + 100; /* the timestamp predates TIME_WAIT by up to an RTT */
	if (reuse == 2)
		return (r->src >> 24) == 127 || (r->dst >> 24) == 127;
	return reuse == 1;
}

#define SU_TIMEWAIT_MS 60000 /* TCP_TIMEWAIT_LEN */

/* Whether a port can take the 4-tuple (src:port, dst): 1 free or held in a
 * TIME_WAIT the kernel will reuse, 0 taken, -errno without sock_diag. */
static int tuple_usable(struct su_port_req *r, struct su_sockdiag *d, uint16_t port)
{
	struct su_sockdiag_query q = { .proto = IPPROTO_TCP, .src = r->src, .sport = port,
				       .dst = r->dst, .dport = r->dport };
	struct su_sockdiag_sock s;
	unsigned delay;
	int rc = su_sockdiag__lookup(d, &q, &s);

	if (rc <= 0)
		return rc < 0 ? rc : 1;
	if (s.state != SU_TCP_TIME_WAIT || !tw_reusable(r, &delay))
		return 0;
	return s.expires_ms <= SU_TIMEWAIT_MS && SU_TIMEWAIT_MS - s.expires_ms >= delay;
}

/* Select, test, repeat on the caller's socket: a TCP socket keeps the port
 * of a failed connect() for good, and replacing it would drop the options
 * the program set (TCP_NODELAY, SO_KEEPALIVE, buffers, IP_TOS, SO_MARK, BPF
 * filters, ...).  So each candidate port is tested before the socket is bound:
 * an exact sock_diag look-up of the 4-tuple toward dst (O(1); a dump walks the
 * whole established hash, tens of ms on a big host) says whether it is free,
 * or in a TIME_WAIT the kernel will reuse; bind() then tests for listeners
 * and exclusive sockets (a failed bind leaves the socket unbound); only then
 * connect() runs.  Random ports, then a sweep that proves exhaustion.  Only
 * another process taking the same 4-tuple between the look-up and connect()
 * can still fail it, with -EADDRNOTAVAIL, counted as a conflict.  Without
 * sock_diag, the first port that binds is connected. */
static int tcp_str_keep(struct su_port_req *r, int fd, const struct sockaddr *dst, socklen_t len)
{
	unsigned n = slice_len(r), start = su_port__random() % n;
	struct su_sockdiag *d = NULL;
	struct portset ps;
	int rc = portset_init(&ps, r), ok;

	if (rc)
		return rc;
	if (su_sockdiag__open(&d))
		d = NULL;
	rc = -EADDRNOTAVAIL;
	for (unsigned t = 0; t < RANDOM_TRIES + n; t++) {
		unsigned off = t < RANDOM_TRIES ? su_port__random() % n : (start + t) % n;
		uint16_t port = (uint16_t)(r->lo + off);

		if (is_used(&ps, off))
			continue;
		set_used(&ps, port);
		ok = d ? tuple_usable(r, d, port) : 1;
		if (!ok)
			continue;
		rc = tcp_bind_port(r, fd, port);
		if (rc == -EADDRNOTAVAIL) /* held exclusively: the socket is still unbound */
			continue;
		if (!rc)
			rc = do_connect(fd, dst, len);
		if (rc == -EADDRNOTAVAIL)
			r->conflicts++;
		break;
	}
	su_sockdiag__close(d);
	portset_free(&ps);
	return rc;
}

/* Select, test, repeat: random ports, then a sweep.  A socket whose connect
 * failed is bound for good, so each retry needs a fresh one: the syscall
 * overhead the article measured.  Only for the library's own socket. */
static int tcp_str(struct su_port_req *r, int *fd, const struct sockaddr *dst, socklen_t len)
{
	unsigned n = slice_len(r), start = su_port__random() % n;
	int rc = -EADDRNOTAVAIL;

	if (r->keep_fd)
		return tcp_str_keep(r, *fd, dst, len);
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

/* SO_REUSEADDR lets UDP sockets share a port, but the kernel never checks
 * that two of them connect to the same destination: the second silently
 * steals the first one's replies (udp_lib_lport_inuse skips the check).  So
 * the port is chosen among those not yet connected to dst, and verified after
 * connect() in case another process raced us; both racers back off (the
 * caller's own socket cannot take another port: it is disconnected and the
 * race reported as -EADDRNOTAVAIL).  Without sock_diag there is no way to
 * check, so the port is taken exclusively. */
static int udp_connect(struct su_port_req *r, int *fd, const struct sockaddr *dst,
		       socklen_t len)
{
	struct portset ps;
	bool guarded, stale = false;
	uint16_t port;
	int rc = portset_init(&ps, r);

	if (rc)
		return rc;
	guarded = ports_used(r, IPPROTO_UDP, &ps, -1) == 0;
	for (int t = 0; t < RANDOM_TRIES; t++) {
		rc = pick_free(r, &ps, &port);
		if (!rc && stale && (rc = renew(fd, r->type)))
			break;
		stale = false;
		if (!rc && guarded)
			rc = setopt(*fd, SOL_SOCKET, SO_REUSEADDR, 1);
		if (!rc)
			rc = bind_to(r, *fd, port);
		if (rc == -EADDRINUSE) {
			set_used(&ps, port);
			continue;
		}
		if (!rc)
			rc = do_connect(*fd, dst, len);
		if (rc || !guarded)
			break;
		rc = ports_used(r, IPPROTO_UDP, &ps, port);
		if (rc || ps.hits <= 1)
			break;
		rc = -EADDRNOTAVAIL; /* lost a race for this 4-tuple: back off */
		stale = true;
		r->conflicts++;
		if (r->keep_fd) {
			struct sockaddr un = { .sa_family = AF_UNSPEC };

			connect(*fd, &un, sizeof(un)); /* stop stealing the racer's replies */
			break;
		}
	}
	portset_free(&ps);
	return rc == -EADDRINUSE ? -EADDRNOTAVAIL : rc;
}

/* An unconnected UDP socket may talk to any peer, so its port is its own:
 * bound without SO_REUSEADDR, bind() fails on any other socket holding the
 * port on this address (udp_lib_lport_inuse), and later reuse binds fail on
 * it.  Random ports, then a sweep; failed binds leave the socket unbound. */
static int udp_bind_exclusive(const struct su_port_req *r, int fd)
{
	unsigned n = slice_len(r), start = su_port__random() % n;
	int rc = -EADDRNOTAVAIL;

	for (unsigned t = 0; t < RANDOM_TRIES + n; t++) {
		unsigned off = t < RANDOM_TRIES ? su_port__random() % n : (start + t) % n;

		rc = bind_to(r, fd, (uint16_t)(r->lo + off));
		if (rc != -EADDRINUSE)
			return rc;
	}
	return -EADDRNOTAVAIL;
}

/* ---- ICMP echo -------------------------------------------------------- */

/* Identifiers of the slice held by ping sockets bound to src or to any
 * address (a wildcard socket gets every reply with its identifier), from
 * /proc/net/icmp: "sl local_address ..." with the address as the kernel's
 * __be32 printed in hex and the identifier in host order.  only != 0: that
 * identifier alone. */
static int ping_used(const struct su_port_req *r, struct portset *ps, uint16_t only)
{
	FILE *f = fopen("/proc/net/icmp", "re");
	char line[256];

	ps->hits = 0;
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned sl, addr, id;
		uint32_t ip;

		if (sscanf(line, " %u: %x:%x", &sl, &addr, &id) != 3)
			continue; /* the header */
		ip = ntohl(addr);
		if ((ip == r->src || !ip) && in_slice(r, (uint16_t)id) && (!only || id == only)) {
			set_used(ps, (uint16_t)id);
			ps->hits++;
		}
	}
	fclose(f);
	return 0;
}

/* Ping sockets match echo replies on the identifier and the local address
 * (ping_lookup never looks at the peer), so an identifier must be unique per
 * egress IP, even across destinations, and may repeat across IPs.  The kernel
 * checks neither: ping sockets are created with SO_REUSEADDR set
 * (INET_PROTOSW_REUSE in inetsw_array), so ping_get_port() accepts any
 * explicit identifier, even one a socket on the same IP holds; and its own
 * pick (identifier 0) is host-wide, not per IP.  So the library keeps
 * identifiers unique per IP itself, from /proc/net/icmp, and checks again
 * after bind() for a racing process (both back off).  Without /proc there is
 * nothing to check against: a random identifier. */
static int ping_bind(struct su_port_req *r, int *fd)
{
	struct portset ps;
	bool guarded, stale = false;
	uint16_t id;
	int rc = portset_init(&ps, r);

	if (rc)
		return rc;
	guarded = ping_used(r, &ps, 0) == 0;
	for (unsigned t = 0; t < RANDOM_TRIES + slice_len(r); t++) {
		rc = pick_free(r, &ps, &id);
		if (rc)
			break;
		if (stale && (r->keep_fd || (rc = renew(fd, r->type)))) {
			rc = rc ? rc : -EADDRNOTAVAIL; /* the caller's socket keeps its id */
			break;
		}
		stale = false;
		rc = bind_to(r, *fd, id);
		if (rc == -EADDRINUSE) { /* a kernel that does check: taken */
			set_used(&ps, id);
			continue;
		}
		if (rc || !guarded)
			break;
		rc = ping_used(r, &ps, id);
		if (rc || ps.hits <= 1)
			break;
		rc = -EADDRNOTAVAIL;
		stale = true;
		r->conflicts++;
	}
	portset_free(&ps);
	return rc;
}

static int ping_connect(struct su_port_req *r, int *fd, const struct sockaddr *dst,
			socklen_t len)
{
	int rc = ping_bind(r, fd);

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
	r->family = AF_INET;
	r->keep_fd = false;
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

int su_port__bind_fd(struct su_port_req *r, int fd)
{
	switch (r->type & 0xff) {
	case SOCK_DGRAM:
		return udp_bind_exclusive(r, fd);
	case SU_SOCK_PING:
		return ping_bind(r, &fd);
	}
	return -EPROTOTYPE;
}

bool su_port__has_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &l))
		return true; /* cannot tell: do not touch it */
	return ((struct sockaddr_in *)&a)->sin_port != 0; /* same offset in sockaddr_in6 */
}

int su_port__socket_type(int fd, int *type, int *family)
{
	int t, proto, fl;
	socklen_t l = sizeof(t);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l))
		return -errno;
	l = sizeof(proto);
	if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l))
		return -errno;
	l = sizeof(*family);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, family, &l))
		return -errno;
	if (*family != AF_INET && *family != AF_INET6)
		return -EPROTOTYPE;
	if (t == SOCK_STREAM && proto == IPPROTO_TCP)
		*type = SOCK_STREAM;
	else if (t == SOCK_DGRAM && proto == IPPROTO_UDP)
		*type = SOCK_DGRAM;
	else if (t == SOCK_DGRAM && proto == IPPROTO_ICMP && *family == AF_INET)
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
