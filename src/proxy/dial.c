/* Connecting to a target's addresses with Happy Eyeballs (RFC 8305): the
 * addresses interleaved by family, IPv6 first (§4); a new attempt every
 * attempt-delay-ms (§5, 250 ms by default) or as soon as one fails; the first
 * to connect wins and the others are closed.  IPv4 attempts go through
 * libsoftunicast with the connection's tags, so they leave from an egress IP
 * carrying those tags; soft-unicast shares IPv4 space only, so IPv6
 * attempts fail with -EAFNOSUPPORT unless ipv6-direct is set. */
#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/proxy.h"
#include "softunicast/egress.h"

#define MAX_ATTEMPTS 16

struct attempt {
	int fd;
	struct event *ev;
};

struct proxy_dial {
	struct proxy *p;
	char tags[512];
	struct sockaddr_storage *v;
	size_t n, next;
	struct attempt at[MAX_ATTEMPTS];
	size_t nat;
	struct event *delay, *deadline;
	proxy_dial_cb cb;
	void *arg;
	int err;
	bool done;
};

/* Which failure to report when all attempts failed: the one that says most
 * about the request (no egress for the tags, exhausted slice) before
 * ordinary connection errors, and those before "IPv6 not offered". */
static int rank(int err)
{
	switch (err) {
	case -ESRCH: return 5;
	case -ENOENT: return 5; /* no assignment published */
	case -EADDRNOTAVAIL: return 4;
	case -EAFNOSUPPORT: return 1;
	case 0: return 0;
	default: return 3;
	}
}

static void note(struct proxy_dial *d, int err)
{
	if (rank(err) > rank(d->err))
		d->err = err;
}

static void close_attempts(struct proxy_dial *d, int keep)
{
	for (size_t i = 0; i < d->nat; i++) {
		if (d->at[i].ev) {
			event_free(d->at[i].ev);
			d->at[i].ev = NULL;
		}
		if (d->at[i].fd >= 0 && d->at[i].fd != keep)
			close(d->at[i].fd);
		d->at[i].fd = -1;
	}
}

static void finish(struct proxy_dial *d, int fd)
{
	proxy_dial_cb cb = d->cb;
	void *arg = d->arg;
	int err = d->err ? d->err : -EHOSTUNREACH;

	close_attempts(d, fd);
	d->done = true;
	evtimer_del(d->delay);
	evtimer_del(d->deadline);
	cb(arg, fd, fd >= 0 ? 0 : err);
}

static size_t pending(const struct proxy_dial *d)
{
	size_t n = 0;

	for (size_t i = 0; i < d->nat; i++)
		n += d->at[i].fd >= 0;
	return n;
}

static void start_next(struct proxy_dial *d);

static void on_attempt(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_dial *d = arg;
	size_t i;
	int err = 0;
	socklen_t len = sizeof(err);

	for (i = 0; i < d->nat && d->at[i].fd != fd; i++)
		;
	if (i == d->nat)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (!err) {
		finish(d, fd);
		return;
	}
	note(d, -err);
	event_free(d->at[i].ev);
	d->at[i].ev = NULL;
	close(fd);
	d->at[i].fd = -1;
	/* §5: a failed attempt starts the next one at once */
	if (d->next < d->n)
		start_next(d);
	else if (!pending(d))
		finish(d, -1);
}

static int open_attempt(struct proxy_dial *d, const struct sockaddr_storage *ss)
{
	int fd, rc;
	socklen_t len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	if (ss->ss_family == AF_INET)
		return su_egress__connect(d->p->egress, d->tags, (const struct sockaddr *)ss, len,
					  SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!d->p->cfg.ipv6_direct)
		return -EAFNOSUPPORT;
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (const struct sockaddr *)ss, len);
	if (rc < 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static void start_next(struct proxy_dial *d)
{
	while (d->next < d->n && d->nat < MAX_ATTEMPTS) {
		int fd = open_attempt(d, &d->v[d->next++]);
		struct attempt *a;

		if (fd < 0) {
			note(d, fd);
			continue;
		}
		a = &d->at[d->nat++];
		a->fd = fd;
		a->ev = event_new(d->p->base, fd, EV_WRITE, on_attempt, d);
		if (!a->ev) {
			close(fd);
			a->fd = -1;
			note(d, -ENOMEM);
			continue;
		}
		event_add(a->ev, NULL);
		if (d->next < d->n)
			proxy__arm(d->delay, d->p->cfg.attempt_delay_ms);
		return;
	}
	if (!pending(d))
		/* everything failed before any wait: report from the loop */
		proxy__arm(d->deadline, 0);
}

static void on_delay(evutil_socket_t fd, short what, void *arg)
{
	start_next(arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct proxy_dial *d = arg;

	if (pending(d))
		note(d, -ETIMEDOUT);
	finish(d, -1);
}

/* RFC 8305 §4: alternate families, starting with IPv6. */
static void interleave(struct sockaddr_storage *v, size_t n)
{
	struct sockaddr_storage *t = malloc(n * sizeof(*t));
	size_t k = 0, i6 = 0, i4 = 0;

	if (!t)
		return;
	while (k < n) {
		while (i6 < n && v[i6].ss_family != AF_INET6)
			i6++;
		if (i6 < n)
			t[k++] = v[i6++];
		while (i4 < n && v[i4].ss_family != AF_INET)
			i4++;
		if (i4 < n)
			t[k++] = v[i4++];
		if (i6 >= n && i4 >= n)
			break;
	}
	memcpy(v, t, k * sizeof(*t));
	free(t);
}

struct proxy_dial *proxy_dial__start(struct proxy *p, const char *tags, const struct proxy_addrs *a,
				     proxy_dial_cb cb, void *arg)
{
	struct proxy_dial *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->p = p;
	d->cb = cb;
	d->arg = arg;
	snprintf(d->tags, sizeof(d->tags), "%s", tags);
	d->v = malloc((a->n ? a->n : 1) * sizeof(*d->v));
	d->delay = evtimer_new(p->base, on_delay, d);
	d->deadline = evtimer_new(p->base, on_deadline, d);
	if (!d->v || !d->delay || !d->deadline) {
		proxy_dial__cancel(d);
		return NULL;
	}
	memcpy(d->v, a->v, a->n * sizeof(*d->v));
	d->n = a->n;
	interleave(d->v, d->n);
	for (size_t i = 0; i < MAX_ATTEMPTS; i++)
		d->at[i].fd = -1;
	proxy__arm(d->deadline, p->cfg.connect_timeout_ms);
	start_next(d);
	return d;
}

void proxy_dial__cancel(struct proxy_dial *d)
{
	if (!d)
		return;
	close_attempts(d, -1);
	if (d->delay)
		event_free(d->delay);
	if (d->deadline)
		event_free(d->deadline);
	free(d->v);
	free(d);
}
