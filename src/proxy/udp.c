/* SOCKS5 UDP ASSOCIATE (RFC 1928 §7).  The relay socket is bound on the
 * address the client reached us at; a datagram from the client (the TCP
 * client's IP, and the port it announced if any) carries a SOCKS UDP header
 * naming the target.  Each target gets its own egress socket from
 * libsoftunicast (connected, so the slice port is shared per 4-tuple, and the
 * reply comes back to it through the router); replies go to the client with
 * the target in the header.  The association lives as long as the TCP
 * control connection (§7) and the idle timeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/conn.h"
#include "softunicast/egress.h"

#define UDP_MAX_PEERS 64
#define UDP_MAX 65535

struct udp_peer {
	struct sockaddr_storage dst;
	int fd;
	struct event *ev;
	struct udp_assoc *u;
};

struct udp_pending { /* a datagram waiting for its target name */
	struct udp_assoc *u;
	void *req;
	size_t len;
	uint8_t data[];
};

struct udp_assoc {
	struct conn *c;
	int fd;
	struct event *ev;
	struct sockaddr_storage client; /* where replies go */
	bool client_port_known;
	struct udp_peer peers[UDP_MAX_PEERS];
	size_t npeers;
	struct udp_pending *pending[8];
	unsigned long long dropped;
};

static bool same_ip(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
}

static uint16_t port_of(const struct sockaddr_storage *s)
{
	return s->ss_family == AF_INET ? ((const struct sockaddr_in *)s)->sin_port
				       : ((const struct sockaddr_in6 *)s)->sin6_port;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	return same_ip((const struct sockaddr *)a, (const struct sockaddr *)b) && port_of(a) == port_of(b);
}

static void udp_dropped(struct udp_assoc *u)
{
	u->dropped++;
	STAT_ADD(u->c->p->st.errors[PROXY_ERR_UDP_DROPPED], 1);
}

static void on_peer(evutil_socket_t fd, short what, void *arg)
{
	struct udp_peer *pe = arg;
	struct udp_assoc *u = pe->u;
	uint8_t buf[UDP_MAX + 32];
	size_t h = socks5__udp_header(buf, (struct sockaddr *)&pe->dst);
	ssize_t n = recv(fd, buf + h, UDP_MAX + 32 - h, 0);
	socklen_t cl = u->client.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);

	if (n < 0 || !u->client_port_known)
		return;
	if (sendto(u->fd, buf, h + (size_t)n, 0, (struct sockaddr *)&u->client, cl) >= 0)
		conn_bytes(u->c, false, (size_t)n);
	conn_touch(u->c);
}

static struct udp_peer *peer_for(struct udp_assoc *u, const struct sockaddr_storage *dst)
{
	struct conn *c = u->c;
	struct udp_peer *pe;
	int fd;

	for (size_t i = 0; i < u->npeers; i++)
		if (same_addr(&u->peers[i].dst, dst))
			return &u->peers[i];
	if (u->npeers == UDP_MAX_PEERS)
		return NULL;
	if (dst->ss_family != AF_INET)
		return NULL; /* soft-unicast shares IPv4 space only */
	fd = su_egress__connect(c->p->egress, c->tags.tags, (const struct sockaddr *)dst, sizeof(struct sockaddr_in),
				SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (!c->result || !strcmp(c->result, "ok"))
			c->result = conn_errname(fd);
		return NULL;
	}
	pe = &u->peers[u->npeers];
	pe->fd = fd;
	pe->dst = *dst;
	pe->u = u;
	pe->ev = event_new(c->p->base, fd, EV_READ | EV_PERSIST, on_peer, pe);
	if (!pe->ev) {
		close(fd);
		return NULL;
	}
	event_add(pe->ev, NULL);
	u->npeers++;
	if (!c->egress.ss_family) {
		socklen_t len = sizeof(c->egress);

		getsockname(fd, (struct sockaddr *)&c->egress, &len);
		c->result = "ok";
	}
	return pe;
}

static void send_to(struct udp_assoc *u, const struct sockaddr_storage *dst, const uint8_t *data, size_t len)
{
	struct udp_peer *pe = peer_for(u, dst);

	if (!pe || send(pe->fd, data, len, 0) < 0) {
		udp_dropped(u);
		return;
	}
	conn_bytes(u->c, true, len);
}

static void on_resolved(void *arg, int err, const struct proxy_addrs *a)
{
	struct udp_pending *pd = arg;
	struct udp_assoc *u = pd->u;

	for (size_t i = 0; i < 8; i++)
		if (u->pending[i] == pd)
			u->pending[i] = NULL;
	for (size_t i = 0; !err && i < a->n; i++)
		if (a->v[i].ss_family == AF_INET) {
			send_to(u, &a->v[i], pd->data, pd->len);
			break;
		}
	free(pd);
}

static void on_client(evutil_socket_t fd, short what, void *arg)
{
	struct udp_assoc *u = arg;
	struct conn *c = u->c;
	uint8_t buf[UDP_MAX + 1];
	struct sockaddr_storage from, dst = { 0 };
	socklen_t fl = sizeof(from);
	struct proxy_target t;
	ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
	int h;

	if (n < 0)
		return;
	/* §7: only from the client that holds the association */
	if (!same_ip((struct sockaddr *)&from, (struct sockaddr *)&u->client) ||
	    (u->client_port_known && port_of(&from) != port_of(&u->client))) {
		udp_dropped(u);
		return;
	}
	if (!u->client_port_known) {
		u->client = from;
		u->client_port_known = true;
	}
	conn_touch(c);
	h = socks5__parse_udp(buf, (size_t)n, &t);
	if (h < 0) { /* malformed or fragmented: dropped, as §7 allows */
		udp_dropped(u);
		return;
	}
	proxy_target__str(&t, c->target_str, sizeof(c->target_str));
	if (t.kind == TARGET_NAME) {
		size_t slot;
		struct udp_pending *pd;

		for (slot = 0; slot < 8 && u->pending[slot]; slot++)
			;
		if (slot == 8 || !(pd = malloc(sizeof(*pd) + (size_t)n - (size_t)h))) {
			udp_dropped(u);
			return;
		}
		pd->u = u;
		pd->len = (size_t)n - (size_t)h;
		memcpy(pd->data, buf + h, pd->len);
		u->pending[slot] = pd;
		pd->req = proxy_dns__resolve(c->p->dns, t.name, t.port, on_resolved, pd);
		if (!pd->req) {
			u->pending[slot] = NULL;
			free(pd);
		}
		return;
	}
	if (t.kind == TARGET_IPV4) {
		struct sockaddr_in *s = (void *)&dst;

		s->sin_family = AF_INET;
		s->sin_addr = t.v4;
		s->sin_port = htons(t.port);
	} else {
		struct sockaddr_in6 *s = (void *)&dst;

		s->sin6_family = AF_INET6;
		s->sin6_addr = t.v6;
		s->sin6_port = htons(t.port);
	}
	send_to(u, &dst, buf + h, (size_t)n - (size_t)h);
}

static void ctl_read(struct bufferevent *bev, void *arg)
{
	/* nothing is expected on the control connection: discard */
	evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
}

static void ctl_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (!c->result)
		c->result = "ok";
	conn_close(c);
}

int udp_start(struct conn *c)
{
	struct udp_assoc *u = calloc(1, sizeof(*u));
	struct sockaddr_storage local;
	socklen_t len = sizeof(local);
	uint8_t rep[32];
	unsigned ms = c->p->cfg.idle_ms;

	if (!u)
		return -ENOMEM;
	c->udp = u;
	u->c = c;
	u->fd = -1;
	if (getsockname(bufferevent_getfd(c->cli), (struct sockaddr *)&local, &len) < 0)
		return -errno;
	if (local.ss_family == AF_INET)
		((struct sockaddr_in *)&local)->sin_port = 0;
	else
		((struct sockaddr_in6 *)&local)->sin6_port = 0;
	u->fd = socket(local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0)
		return -errno;
	if (bind(u->fd, (struct sockaddr *)&local, len) < 0 || getsockname(u->fd, (struct sockaddr *)&local, &len) < 0)
		return -errno;
	/* DST.ADDR/DST.PORT of the request: where the client will send from;
	 * zeros mean "not known yet" (the first datagram tells). */
	u->client = c->client;
	if (c->target.port) {
		u->client_port_known = true;
		if (c->client.ss_family == AF_INET)
			((struct sockaddr_in *)&u->client)->sin_port = htons(c->target.port);
		else
			((struct sockaddr_in6 *)&u->client)->sin6_port = htons(c->target.port);
	}
	u->ev = event_new(c->p->base, u->fd, EV_READ | EV_PERSIST, on_client, u);
	if (!u->ev)
		return -ENOMEM;
	event_add(u->ev, NULL);
	c->target_str[0] = 0;
	c->st = ST_UDP;
	conn_touch(c);
	proxy__arm(c->timer, ms);
	bufferevent_setcb(c->cli, ctl_read, NULL, ctl_event, c);
	bufferevent_enable(c->cli, EV_READ);
	bufferevent_write(c->cli, rep, socks5__reply(rep, SOCKS5_OK, (struct sockaddr *)&local));
	return 0;
}

void udp_free(struct conn *c)
{
	struct udp_assoc *u = c->udp;

	if (!u)
		return;
	for (size_t i = 0; i < 8; i++)
		if (u->pending[i]) {
			proxy_dns__cancel(c->p->dns, u->pending[i]->req);
			free(u->pending[i]);
		}
	for (size_t i = 0; i < u->npeers; i++) {
		event_free(u->peers[i].ev);
		close(u->peers[i].fd);
	}
	if (u->ev)
		event_free(u->ev);
	if (u->fd >= 0)
		close(u->fd);
	free(u);
	c->udp = NULL;
}
