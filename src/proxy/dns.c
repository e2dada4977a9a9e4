/* Target names are resolved here, in the egress DC, never by the client:
 * c-ares on the proxy's libevent loop, with a cache honouring TTLs (clamped
 * to dns-min-ttl..dns-max-ttl).  The resolver's own sockets are connected
 * through libsoftunicast with dns-tags (the DC's own tag-set), so geo-aware
 * DNS answers point near where the traffic really leaves, whatever country
 * the user's traffic is tagged with. */
#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "proxy/proxy.h"
#include "softunicast/egress.h"

struct cache_entry {
	char *name;
	struct sockaddr_storage *v;
	size_t n;
	time_t expires;
	int err; /* a cached negative answer */
	struct cache_entry *next;
};

#define NBUCKETS 4096
struct proxy_dns {
	struct proxy *p;
	ares_channel ch;
	struct event *timer;
	struct fdev {
		int fd;
		struct event *ev;
		struct fdev *next;
	} *fds;
	struct cache_entry *bucket[NBUCKETS];
	size_t ncached;
};

struct dns_req {
	struct proxy_dns *d;
	proxy_dns_cb cb;
	void *arg;
	char *name;
	uint16_t port;
	bool in_ares, in_call, cancelled;
	struct event *ev; /* cache hits are reported from the loop, not the call */
	struct proxy_addrs res;
	int err;
};

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % NBUCKETS;
}

static void entry_free(struct cache_entry *e)
{
	free(e->name);
	free(e->v);
	free(e);
}

static void cache_flush(struct proxy_dns *d)
{
	for (size_t i = 0; i < NBUCKETS; i++)
		while (d->bucket[i]) {
			struct cache_entry *e = d->bucket[i];

			d->bucket[i] = e->next;
			entry_free(e);
		}
	d->ncached = 0;
}

static struct cache_entry *cache_get(struct proxy_dns *d, const char *name)
{
	struct cache_entry **pp = &d->bucket[hash(name)];
	time_t now = time(NULL);

	while (*pp) {
		struct cache_entry *e = *pp;

		if (e->expires <= now) {
			*pp = e->next;
			entry_free(e);
			d->ncached--;
			continue;
		}
		if (!strcasecmp(e->name, name))
			return e;
		pp = &e->next;
	}
	return NULL;
}

static void cache_put(struct proxy_dns *d, const char *name, const struct proxy_addrs *a, int err,
		      unsigned ttl)
{
	const struct proxy_config *c = &d->p->cfg;
	struct cache_entry *e;
	unsigned h = hash(name);

	if (!c->dns_cache_max)
		return;
	if (ttl < c->dns_min_ttl)
		ttl = c->dns_min_ttl;
	if (ttl > c->dns_max_ttl)
		ttl = c->dns_max_ttl;
	if (!ttl)
		return;
	if (d->ncached >= c->dns_cache_max)
		cache_flush(d); /* crude but bounded: a full cache starts over */
	if (!(e = calloc(1, sizeof(*e))) || !(e->name = strdup(name)) ||
	    (a->n && !(e->v = malloc(a->n * sizeof(*e->v))))) {
		if (e)
			entry_free(e);
		return;
	}
	if (a->n)
		memcpy(e->v, a->v, a->n * sizeof(*e->v));
	e->n = a->n;
	e->err = err;
	e->expires = time(NULL) + ttl;
	e->next = d->bucket[h];
	d->bucket[h] = e;
	d->ncached++;
}

/* ---- c-ares on libevent ------------------------------------------------- */
static void arm_timer(struct proxy_dns *d)
{
	struct timeval tv, *t = ares_timeout(d->ch, NULL, &tv);

	if (t)
		evtimer_add(d->timer, t);
	else
		evtimer_del(d->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_dns *d = arg;

	ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	arm_timer(d);
}

static void on_fd(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_dns *d = arg;

	ares_process_fd(d->ch, what & EV_READ ? fd : ARES_SOCKET_BAD, what & EV_WRITE ? fd : ARES_SOCKET_BAD);
	arm_timer(d);
}

static void sock_state(void *arg, ares_socket_t fd, int readable, int writable)
{
	struct proxy_dns *d = arg;
	struct fdev **pp = &d->fds, *f;

	while (*pp && (*pp)->fd != fd)
		pp = &(*pp)->next;
	f = *pp;
	if (f) {
		event_free(f->ev);
		*pp = f->next;
		free(f);
	}
	if (!readable && !writable)
		return;
	if (!(f = calloc(1, sizeof(*f))))
		return;
	f->fd = fd;
	f->ev = event_new(d->p->base, fd, (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) | EV_PERSIST),
			  on_fd, d);
	if (!f->ev) {
		free(f);
		return;
	}
	event_add(f->ev, NULL);
	f->next = d->fds;
	d->fds = f;
}

/* The resolver's sockets: ordinary ones, but connected from an egress IP of
 * the DC's dns-tags with a port in this server's slice. */
static ares_socket_t s_socket(int af, int type, int proto, void *arg)
{
	return socket(af, type | SOCK_CLOEXEC, proto);
}

static int s_close(ares_socket_t fd, void *arg)
{
	return close(fd);
}

static int s_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len, void *arg)
{
	struct proxy_dns *d = arg;
	int rc;

	if (!d->p->cfg.dns_tags || sa->sa_family != AF_INET)
		return connect(fd, sa, len);
	rc = su_egress__connect_fd(d->p->egress, fd, d->p->cfg.dns_tags, sa, len, 0);
	if (rc == 0)
		return 0;
	errno = -rc;
	return -1;
}

static ares_ssize_t s_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags, struct sockaddr *from,
			       ares_socklen_t *flen, void *arg)
{
	return recvfrom(fd, buf, len, flags, from, flen);
}

static ares_ssize_t s_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *arg)
{
	return writev(fd, iov, n);
}

static const struct ares_socket_functions sockfns = { s_socket, s_close, s_connect, s_recvfrom, s_sendv };

int proxy_dns__new(struct proxy *p, struct proxy_dns **out, char *err, size_t errlen)
{
	struct proxy_dns *d = calloc(1, sizeof(*d));
	struct ares_options o = { 0 };
	int rc;

	if (!d)
		return -ENOMEM;
	d->p = p;
	rc = ares_library_init(ARES_LIB_INIT_ALL);
	o.sock_state_cb = sock_state;
	o.sock_state_cb_data = d;
	o.timeout = (int)p->cfg.dns_timeout_ms;
	o.tries = 2;
	/* lookups "b": DNS only.  /etc/hosts of the proxy host says nothing
	 * about where the egress DC's clients should go. */
	o.lookups = (char *)"b";
	if (!rc)
		rc = ares_init_options(&d->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
						       ARES_OPT_LOOKUPS);
	if (rc) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		free(d);
		return -EIO;
	}
	ares_set_socket_functions(d->ch, &sockfns, d);
	if (p->cfg.ndns_servers) {
		char csv[1024] = "";

		for (size_t i = 0; i < p->cfg.ndns_servers; i++) {
			strncat(csv, i ? "," : "", sizeof(csv) - strlen(csv) - 1);
			strncat(csv, p->cfg.dns_servers[i], sizeof(csv) - strlen(csv) - 1);
		}
		if ((rc = ares_set_servers_ports_csv(d->ch, csv))) {
			snprintf(err, errlen, "dns-server %s: %s", csv, ares_strerror(rc));
			ares_destroy(d->ch);
			free(d);
			return -EINVAL;
		}
	}
	d->timer = evtimer_new(p->base, on_timer, d);
	*out = d;
	return 0;
}

void proxy_dns__free(struct proxy_dns *d)
{
	if (!d)
		return;
	ares_destroy(d->ch); /* runs outstanding callbacks with ARES_EDESTRUCTION */
	while (d->fds) {
		struct fdev *f = d->fds;

		d->fds = f->next;
		event_free(f->ev);
		free(f);
	}
	event_free(d->timer);
	cache_flush(d);
	free(d);
	ares_library_cleanup();
}

static void req_free(struct dns_req *r)
{
	if (r->ev)
		event_free(r->ev);
	free(r->res.v);
	free(r->name);
	free(r);
}

static void deliver(struct dns_req *r)
{
	if (!r->cancelled)
		r->cb(r->arg, r->err, &r->res);
	req_free(r);
}

static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
	deliver(arg);
}

static void set_port(struct proxy_addrs *a, uint16_t port)
{
	for (size_t i = 0; i < a->n; i++) {
		if (a->v[i].ss_family == AF_INET)
			((struct sockaddr_in *)&a->v[i])->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&a->v[i])->sin6_port = htons(port);
	}
}

static int ares_err(int status)
{
	switch (status) {
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
	case ARES_EBADNAME:
		return -ENOENT;
	case ARES_ETIMEOUT:
		return -ETIMEDOUT;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		return -ECANCELED;
	default:
		return -EIO;
	}
}

static void on_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_req *r = arg;
	unsigned ttl = ~0u;
	size_t n = 0;

	r->in_ares = false;
	if (status == ARES_SUCCESS && res)
		for (struct ares_addrinfo_node *a = res->nodes; a; a = a->ai_next)
			n++;
	if (n && (r->res.v = calloc(n, sizeof(*r->res.v)))) {
		for (struct ares_addrinfo_node *a = res->nodes; a; a = a->ai_next) {
			if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
				continue;
			memcpy(&r->res.v[r->res.n++], a->ai_addr, a->ai_addrlen);
			if ((unsigned)a->ai_ttl < ttl)
				ttl = (unsigned)a->ai_ttl;
		}
	}
	r->err = r->res.n ? 0 : status == ARES_SUCCESS ? -ENOENT : ares_err(status);
	if (r->err && r->err != -ECANCELED)
		STAT_ADD(r->d->p->st.dns_failures[r->err == -ENOENT      ? PROXY_DNSF_NOT_FOUND
						 : r->err == -ETIMEDOUT ? PROXY_DNSF_TIMEOUT
									: PROXY_DNSF_OTHER],
			 1);
	if (res)
		ares_freeaddrinfo(res);
	/* Negative answers are cached for dns-min-ttl (RFC 2308 would use the SOA
	 * minimum, which getaddrinfo does not expose); timeouts not at all. */
	if (!r->err)
		cache_put(r->d, r->name, &r->res, 0, ttl);
	else if (r->err == -ENOENT)
		cache_put(r->d, r->name, &r->res, r->err, r->d->p->cfg.dns_min_ttl);
	set_port(&r->res, r->port);
	/* An answer inside ares_getaddrinfo() itself (a malformed name) goes
	 * through the loop too: the caller has no handle yet. */
	if (r->in_call && (r->ev = evtimer_new(r->d->p->base, on_deliver, r))) {
		proxy__arm(r->ev, 0);
		return;
	}
	deliver(r);
}

void *proxy_dns__resolve(struct proxy_dns *d, const char *name, uint16_t port, proxy_dns_cb cb, void *arg)
{
	struct dns_req *r = calloc(1, sizeof(*r));
	struct cache_entry *e;

	if (!r || !(r->name = strdup(name))) {
		free(r);
		return NULL;
	}
	r->d = d;
	r->cb = cb;
	r->arg = arg;
	r->port = port;
	if ((e = cache_get(d, name))) {
		STAT_ADD(d->p->st.dns_cache_hits, 1);
		r->err = e->err;
		if (e->n && (r->res.v = malloc(e->n * sizeof(*e->v)))) {
			memcpy(r->res.v, e->v, e->n * sizeof(*e->v));
			r->res.n = e->n;
		}
		if (!r->err && !r->res.n)
			r->err = -ENOMEM;
		set_port(&r->res, port);
		r->ev = evtimer_new(d->p->base, on_deliver, r);
		if (!r->ev) {
			req_free(r);
			return NULL;
		}
		proxy__arm(r->ev, 0);
		return r;
	}
	STAT_ADD(d->p->st.dns_queries, 1);
	r->in_ares = r->in_call = true;
	ares_getaddrinfo(d->ch, name, NULL,
			 &(struct ares_addrinfo_hints){ .ai_family = AF_UNSPEC, .ai_flags = ARES_AI_NOSORT }, on_answer,
			 r);
	r->in_call = false;
	arm_timer(d);
	return r;
}

void proxy_dns__cancel(struct proxy_dns *d, void *req)
{
	struct dns_req *r = req;

	if (!r)
		return;
	if (r->in_ares)
		r->cancelled = true;
	else
		req_free(r);
}
