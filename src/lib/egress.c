/* libsoftunicast egress: pick an (IP, slice) by tags, a source port inside
 * the slice, connect.  See include/softunicast/egress.h for the contract. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "softunicast/egress.h"
#include "lib/assignment.h"
#include "lib/counters.h"
#include "lib/egress_port.h"

/* One loaded assignment, shared by concurrent connects: it is swapped, not
 * edited, when the agent publishes a new one. */
struct snapshot {
	int refs;
	struct su_assignment *a;
	struct su_counters counters;
};

struct su_egress {
	pthread_mutex_t lock;
	char *path;
	struct snapshot *snap; /* NULL until loaded or after the file vanished */
	int load_err;          /* why snap is NULL */
	struct stat st;        /* identity of the loaded file */
	struct timespec checked;
};

/* The agent replaces the file by rename, so a new inode means a new version;
 * stat at most this often so a connect storm costs no extra syscalls. */
#define RECHECK_NS (250 * 1000 * 1000L)

static void snapshot_put(struct snapshot *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	su_counters__close(&s->counters);
	su_assignment__free(s->a);
	free(s);
}

int su_egress__open(const char *path, struct su_egress **out)
{
	struct su_egress *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->path = strdup(path ? path : su_assignment__path());
	if (!e->path) {
		free(e);
		return -ENOMEM;
	}
	pthread_mutex_init(&e->lock, NULL);
	e->load_err = -ENOENT;
	*out = e;
	return 0;
}

void su_egress__close(struct su_egress *e)
{
	if (!e)
		return;
	snapshot_put(e->snap);
	pthread_mutex_destroy(&e->lock);
	free(e->path);
	free(e);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void reload(struct su_egress *e, const struct stat *st)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		e->load_err = -ENOMEM;
		return;
	}
	rc = su_assignment__load(e->path, &s->a, NULL);
	if (rc) {
		free(s);
		e->load_err = rc == -EINVAL ? -EBADMSG : rc;
		return;
	}
	su_counters__open(e->path, &s->counters); /* optional: counting only */
	s->refs = 1;
	snapshot_put(e->snap);
	e->snap = s;
	e->st = *st;
	e->load_err = 0;
}

static bool due(struct timespec *last)
{
	struct timespec now;
	long ns;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	ns = (now.tv_sec - last->tv_sec) * 1000000000L + (now.tv_nsec - last->tv_nsec);
	if (last->tv_sec && ns < RECHECK_NS)
		return false;
	*last = now;
	return true;
}

/* Returns a referenced snapshot or -errno (never NULL on success). */
static int snapshot_get(struct su_egress *e, struct snapshot **out)
{
	struct stat st;
	int rc;

	pthread_mutex_lock(&e->lock);
	if (due(&e->checked)) {
		if (stat(e->path, &st)) {
			snapshot_put(e->snap); /* agent stopped: its IPs are gone too */
			e->snap = NULL;
			e->load_err = -errno;
		} else if (!e->snap || !same_file(&st, &e->st)) {
			reload(e, &st);
		}
	}
	rc = e->load_err;
	if (!rc && e->snap) {
		__atomic_add_fetch(&e->snap->refs, 1, __ATOMIC_ACQ_REL);
		*out = e->snap;
	} else if (!rc) {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

/* ---- strategies ------------------------------------------------------- */

const char *su_strategy__name(int s)
{
	static const char *const names[] = { "auto", "kernel", "range", "window", "str" };

	return s >= 0 && s <= SU_STRATEGY_MAX ? names[s] : "?";
}

int su_strategy__parse(const char *name)
{
	for (int s = 0; s <= SU_STRATEGY_MAX; s++)
		if (!strcmp(name, su_strategy__name(s)))
			return s;
	if (!strcmp(name, "default"))
		return SU_STRATEGY_AUTO;
	return -EINVAL;
}

/* IP_LOCAL_PORT_RANGE exists since Linux 6.3; since 6.8 the kernel scans the
 * whole per-socket range in one pass instead of even ports then odd ones, so
 * the full slice is the fastest window.  Before 6.8 a small random window is
 * faster (the article measured ~30k conn/s with 500 ports vs ~3k with 10k). */
static int kernel_default(void)
{
	struct utsname u;
	int maj = 0, min = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &maj, &min) != 2)
		return SU_STRATEGY_STR;
	if (maj > 6 || (maj == 6 && min >= 8))
		return SU_STRATEGY_RANGE;
	if (maj == 6 && min >= 3)
		return SU_STRATEGY_WINDOW;
	return SU_STRATEGY_STR;
}

int su_strategy__resolve(int s)
{
	static int env = -1, kern = -1;

	if (s != SU_STRATEGY_AUTO)
		return s;
	if (__atomic_load_n(&env, __ATOMIC_RELAXED) < 0) {
		const char *v = getenv("SOFTUNICAST_STRATEGY");
		int p = v ? su_strategy__parse(v) : SU_STRATEGY_AUTO;

		__atomic_store_n(&env, p < 0 ? SU_STRATEGY_AUTO : p, __ATOMIC_RELAXED);
	}
	if (env != SU_STRATEGY_AUTO)
		return env;
	if (__atomic_load_n(&kern, __ATOMIC_RELAXED) < 0)
		__atomic_store_n(&kern, kernel_default(), __ATOMIC_RELAXED);
	if (!su_port__have_range() && kern != SU_STRATEGY_STR)
		return SU_STRATEGY_STR;
	return kern;
}

const char *su_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case ENOENT:
		return "no soft-unicast assignment published (is the softunicast agent running?)";
	case EPROTONOSUPPORT:
		return "the assignment file has a format this library does not read";
	case EBADMSG:
		return "the assignment file is corrupt";
	case ESRCH:
		return "no active egress of this server matches the tags";
	case EADDRNOTAVAIL:
		return "every matching port slice is exhausted toward this destination";
	case EINVAL:
		return "invalid tag query or argument";
	case EAFNOSUPPORT:
		return "soft-unicast egress is IPv4 only";
	case EPROTOTYPE:
		return "unsupported socket type (SOCK_STREAM, SOCK_DGRAM or SU_SOCK_PING)";
	case EACCES:
		return "permission denied (ping sockets: see net.ipv4.ping_group_range)";
	}
	return strerror(err < 0 ? -err : err);
}

/* ---- connect ---------------------------------------------------------- */

/* The IPv4 destination in dst: AF_INET, or AF_INET6 holding an IPv4-mapped
 * address ::ffff:a.b.c.d (RFC 4291 section 2.5.5.2), what dual-stack
 * runtimes (Java, Go, Node) pass for an IPv4 peer.  24 bytes is the shortest
 * sockaddr_in6 the kernel accepts (SIN6_LEN_RFC2133). */
static int dst_v4(const struct sockaddr *dst, socklen_t len, struct sockaddr_in *out)
{
	const struct sockaddr_in6 *d6 = (const struct sockaddr_in6 *)dst;

	if (!dst || len < sizeof(sa_family_t))
		return -EINVAL;
	if (dst->sa_family == AF_INET) {
		if (len < sizeof(*out))
			return -EINVAL;
		memcpy(out, dst, sizeof(*out));
		return 0;
	}
	if (dst->sa_family != AF_INET6)
		return -EAFNOSUPPORT;
	if (len < offsetof(struct sockaddr_in6, sin6_scope_id))
		return -EINVAL;
	if (!IN6_IS_ADDR_V4MAPPED(&d6->sin6_addr))
		return -EAFNOSUPPORT;
	*out = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = d6->sin6_port };
	memcpy(&out->sin_addr, &d6->sin6_addr.s6_addr[12], 4);
	return 0;
}

/* Indexes of active entries matching tags, starting at a random one so the
 * load spreads over a tag-set's IPs.  Ping sockets skip a slice handed here
 * by a live move until its previous owner's echoes are over (assignment.h,
 * "handed"): the decap sends every echo reply of that slice on to the
 * previous owner until then, so one of ours would be lost.  *quiet counts
 * the entries skipped so. */
static uint32_t candidates(const struct su_assignment *a, const char *tags, int type,
			   uint32_t *idx, uint32_t *quiet)
{
	uint32_t n = 0, start = a->n ? su_port__random() % a->n : 0;
	bool any = !strcmp(tags, "*"), ping = (type & 0xff) == SU_SOCK_PING;
	int64_t now = ping ? (int64_t)time(NULL) : 0;
	struct su_tags want = { 0 };

	/* The query is parsed once; the entries were parsed when loaded. */
	if (!any && su_tags__parse(tags, &want, NULL))
		return 0;
	for (uint32_t k = 0; k < a->n; k++) {
		uint32_t i = (start + k) % a->n;

		if (a->v[i].state != SU_SLICE_ACTIVE || !(any || su_tags__contains(&a->v[i].set, &want)))
			continue;
		if (ping && su_assignment__echo_quiet(&a->v[i], now))
			(*quiet)++;
		else
			idx[n++] = i;
	}
	su_tags__free(&want);
	return n;
}

static void count(const struct snapshot *s, const struct su_assignment_entry *en,
		  const struct su_port_req *req, int rc)
{
	struct su_counter_slot *c = su_counters__find(&s->counters, en->ip, en->lo);

	if (!c)
		return;
	for (unsigned i = 0; i < req->conflicts; i++)
		su_counter__inc(&c->conflicts);
	if (rc >= 0 || rc == -EINPROGRESS)
		su_counter__inc(&c->connects);
	else if (rc == -EADDRNOTAVAIL)
		su_counter__inc(&c->exhausted);
}

static int prepare(struct su_egress *e, const char *tags, int type, struct snapshot **snap,
		   uint32_t **idx, uint32_t *n)
{
	uint32_t quiet = 0;
	int rc = 0;

	if (!tags || su_assignment__check_tags(tags, NULL))
		rc = -EINVAL;
	if (!rc)
		rc = snapshot_get(e, snap);
	if (rc)
		return rc;
	*idx = malloc(((*snap)->a->n + 1) * sizeof(**idx));
	if (!*idx) {
		snapshot_put(*snap);
		return -ENOMEM;
	}
	*n = candidates((*snap)->a, tags, type, *idx, &quiet);
	if (!*n) {
		free(*idx);
		snapshot_put(*snap);
		return quiet ? -EADDRNOTAVAIL : -ESRCH; /* no identifier free yet */
	}
	return 0;
}

static struct su_port_req make_req(const struct su_assignment_entry *en,
				   const struct sockaddr_in *d, int type, int family, int flags)
{
	return (struct su_port_req){
		.src = en->ip, .lo = en->lo, .hi = en->hi,
		.dst = d ? ntohl(d->sin_addr.s_addr) : 0, .dport = d ? ntohs(d->sin_port) : 0,
		.type = type, .family = family,
		.strategy = su_strategy__resolve(SU_F_STRATEGY(flags)),
	};
}

int su_egress__connect(struct su_egress *e, const char *tags, const struct sockaddr *dst,
		       socklen_t len, int type, int flags)
{
	struct snapshot *snap;
	struct sockaddr_in d;
	uint32_t *idx, n;
	int rc = dst_v4(dst, len, &d);

	if (!rc)
		rc = prepare(e, tags, type, &snap, &idx, &n);
	if (rc)
		return rc;
	rc = -EADDRNOTAVAIL;
	for (uint32_t k = 0; k < n; k++) {
		const struct su_assignment_entry *en = &snap->a->v[idx[k]];
		struct su_port_req req = make_req(en, &d, type, AF_INET, flags);

		rc = su_port__connect(&req, (struct sockaddr *)&d, sizeof(d));
		count(snap, en, &req, rc);
		/* Only exhaustion moves on to the tag-set's next IP: a refused
		 * or unreachable destination would be so from any of them. */
		if (rc != -EADDRNOTAVAIL)
			break;
	}
	free(idx);
	snapshot_put(snap);
	return rc;
}

/* The caller's socket must be able to reach the IPv4 destination: an AF_INET
 * socket with an AF_INET address, or a dual-stack AF_INET6 one with a mapped
 * address (an IPV6_V6ONLY socket cannot: the kernel's answer). */
static int check_fd_family(int fd, int family, const struct sockaddr *dst)
{
	int v6only = 0;
	socklen_t l = sizeof(v6only);

	if (family != dst->sa_family)
		return family == AF_INET ? -EAFNOSUPPORT : -EINVAL;
	if (family == AF_INET6 && !getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l) && v6only)
		return -ENETUNREACH;
	return 0;
}

/* Tries the matching slices in turn on the caller's socket, which is never
 * replaced: every strategy leaves it without a port when a slice is
 * exhausted, so it can move on; if a lost race left it bound, it stops. */
typedef int (*fd_op)(struct su_port_req *r, int fd, const struct sockaddr *dst, socklen_t len);

static int on_fd(struct su_egress *e, int fd, const char *tags, const struct sockaddr *dst,
		 socklen_t len, int flags, fd_op op)
{
	struct snapshot *snap;
	struct sockaddr_in d;
	uint32_t *idx, n;
	int type, family, rc = su_port__socket_type(fd, &type, &family);

	if (!rc && dst && !(rc = dst_v4(dst, len, &d)))
		rc = check_fd_family(fd, family, dst);
	if (!rc)
		rc = prepare(e, tags, type, &snap, &idx, &n);
	if (rc)
		return rc;
	for (uint32_t k = 0; k < n; k++) {
		const struct su_assignment_entry *en = &snap->a->v[idx[k]];
		struct su_port_req req = make_req(en, dst ? &d : NULL, type, family, flags);

		if (k && su_port__has_port(fd))
			break;
		req.keep_fd = true;
		rc = op(&req, fd, dst, len);
		count(snap, en, &req, rc);
		if (rc != -EADDRNOTAVAIL)
			break;
	}
	free(idx);
	snapshot_put(snap);
	return rc;
}

static int bind_op(struct su_port_req *r, int fd, const struct sockaddr *dst, socklen_t len)
{
	(void)dst;
	(void)len;
	return su_port__bind_fd(r, fd);
}

int su_egress__connect_fd(struct su_egress *e, int fd, const char *tags,
			  const struct sockaddr *dst, socklen_t len, int flags)
{
	if (!dst)
		return -EINVAL;
	return on_fd(e, fd, tags, dst, len, flags, su_port__connect_fd);
}

int su_egress__bind_fd(struct su_egress *e, int fd, const char *tags, int flags)
{
	return on_fd(e, fd, tags, NULL, 0, flags, bind_op);
}

static struct su_egress *g_default;
static int g_default_err;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
	g_default_err = su_egress__open(NULL, &g_default);
}

int su_connect(const char *tags, const struct sockaddr *dst, socklen_t len, int type, int flags)
{
	pthread_once(&g_once, default_init);
	if (g_default_err)
		return g_default_err;
	return su_egress__connect(g_default, tags, dst, len, type, flags);
}
