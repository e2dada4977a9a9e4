/* A client connection: protocol detection from the first byte, the
 * handshake timer, tag selection, DNS + Happy Eyeballs to the target, the
 * access-log line and the teardown that every path ends in (one place that
 * frees, so no descriptor outlives its connection). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/conn.h"
#include "softunicast/egress.h"

static double since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

void conn_bytes(struct conn *c, bool up, size_t n)
{
	if (up) {
		c->up_bytes += n;
		STAT_ADD(c->p->st.bytes_up, n);
	} else {
		c->down_bytes += n;
		STAT_ADD(c->p->st.bytes_down, n);
	}
}

void conn_touch(struct conn *c)
{
	clock_gettime(CLOCK_MONOTONIC, &c->last);
}

static void log_conn(struct conn *c)
{
	struct proxy_logrec r = {
		.client = (struct sockaddr *)&c->client,
		.proto = proxy_proto__name(c->proto),
		.user = c->have_user ? c->user : NULL,
		.tags = c->tags.tags[0] ? c->tags.tags : NULL,
		.target = c->target_str[0] ? c->target_str : NULL,
		.result = c->result ? c->result : "closed",
		.egress = c->egress.ss_family ? (struct sockaddr *)&c->egress : NULL,
		.up = c->up_bytes,
		.down = c->down_bytes,
		.secs = since(&c->t0),
	};

	if (!c->logged) {
		proxy_log__write(c->p->log, &r);
		proxy_stats__ended(&c->p->st, (int)c->proto, r.result);
	}
	c->logged = true;
}

void conn_close(struct conn *c)
{
	struct proxy *p = c->p;

	log_conn(c);
	if (c->dns_req)
		proxy_dns__cancel(p->dns, c->dns_req);
	proxy_dial__cancel(c->dial);
	http_free(c);
	udp_free(c);
	splice_free(c);
	if (c->timer)
		event_free(c->timer);
	if (c->up)
		bufferevent_free(c->up);
	if (c->cli)
		bufferevent_free(c->cli);
	if (c->client_count && *c->client_count)
		(*c->client_count)--;
	if (c->prev)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	STAT_SUB(p->st.active, 1);
	free(c);
	if (p->draining && !p->st.active)
		event_base_loopexit(p->base, NULL);
}

static void on_flushed(struct bufferevent *bev, void *arg)
{
	conn_close(arg);
}

static void on_closing_event(struct bufferevent *bev, short what, void *arg)
{
	conn_close(arg);
}

void conn_fail(struct conn *c, const char *result)
{
	unsigned ms = c->p->cfg.handshake_ms;

	if (!c->result)
		c->result = result;
	c->st = ST_CLOSING;
	proxy__arm(c->timer, ms);
	if (c->up) {
		bufferevent_free(c->up);
		c->up = NULL;
	}
	bufferevent_disable(c->cli, EV_READ);
	if (!evbuffer_get_length(bufferevent_get_output(c->cli))) {
		conn_close(c);
		return;
	}
	/* the write callback fires once the output is empty (low watermark 0) */
	bufferevent_setcb(c->cli, NULL, on_flushed, on_closing_event, c);
	bufferevent_enable(c->cli, EV_WRITE);
}

const char *conn_errname(int err)
{
	switch (err) {
	case -ESRCH: return "no-egress-for-tags";
	case -EADDRNOTAVAIL: return "slice-exhausted";
	case -ENOENT: return "dns-not-found";
	case -EAFNOSUPPORT: return "address-family-unsupported";
	case -ECONNREFUSED: return "refused";
	case -ETIMEDOUT: return "timeout";
	case -EHOSTUNREACH: return "host-unreachable";
	case -ENETUNREACH: return "network-unreachable";
	case -EACCES: return "auth-failed";
	case -EINVAL: return "bad-tags";
	default: return "connect-failed";
	}
}

int conn_select_tags(struct conn *c)
{
	return proxy_tags__select(&c->p->cfg, c->p->geo, c->have_user ? c->user : NULL,
				  c->have_user ? c->pass : NULL, (struct sockaddr *)&c->client, &c->tags);
}

static void on_dial(void *arg, int fd, int err)
{
	struct conn *c = arg;
	socklen_t len = sizeof(c->egress);

	proxy_dial__cancel(c->dial);
	c->dial = NULL;
	if (fd >= 0) {
		getsockname(fd, (struct sockaddr *)&c->egress, &len);
		c->up = bufferevent_socket_new(c->p->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (!c->up) {
			close(fd);
			err = -ENOMEM;
		}
	}
	c->on_dialed(c, fd >= 0 && c->up ? 0 : err);
}

static void dial_addrs(struct conn *c, const struct proxy_addrs *a)
{
	c->dial = proxy_dial__start(c->p, c->tags.tags, a, on_dial, c);
	if (!c->dial)
		c->on_dialed(c, -ENOMEM);
}

static void on_resolved(void *arg, int err, const struct proxy_addrs *a)
{
	struct conn *c = arg;

	c->dns_req = NULL;
	if (err || !a->n) {
		c->result = err == -ENOENT ? "dns-not-found" : err == -ETIMEDOUT ? "dns-timeout" : "dns-failed";
		c->on_dialed(c, err ? err : -ENOENT);
		return;
	}
	dial_addrs(c, a);
}

void conn_dial(struct conn *c)
{
	struct sockaddr_storage ss = { 0 };
	struct proxy_addrs a = { &ss, 1 };

	/* from here the resolver's and the dialer's own deadlines apply, so
	 * the client always gets its protocol's error reply */
	c->st = ST_DIALING;
	evtimer_del(c->timer);
	proxy_target__str(&c->target, c->target_str, sizeof(c->target_str));
	if (c->target.kind == TARGET_NAME) {
		c->dns_req = proxy_dns__resolve(c->p->dns, c->target.name, c->target.port, on_resolved, c);
		if (!c->dns_req)
			c->on_dialed(c, -ENOMEM);
		return;
	}
	if (c->target.kind == TARGET_IPV4) {
		struct sockaddr_in *s = (void *)&ss;

		s->sin_family = AF_INET;
		s->sin_addr = c->target.v4;
		s->sin_port = htons(c->target.port);
	} else {
		struct sockaddr_in6 *s = (void *)&ss;

		s->sin6_family = AF_INET6;
		s->sin6_addr = c->target.v6;
		s->sin6_port = htons(c->target.port);
	}
	dial_addrs(c, &a);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->st == ST_DETECT) {
		uint8_t b;
		int rc;

		if (evbuffer_copyout(in, &b, 1) != 1)
			return;
		rc = proxy__detect(&b, 1, &c->proto);
		if (rc < 0) {
			conn_fail(c, "bad-protocol");
			return;
		}
		c->st = c->proto == PROXY_P_SOCKS5 ? ST_SOCKS5_GREETING
			: c->proto == PROXY_P_SOCKS4 ? ST_SOCKS4_REQUEST : ST_HTTP_HEAD;
	}
	switch (c->proto) {
	case PROXY_P_SOCKS5:
		socks5_read(c);
		break;
	case PROXY_P_SOCKS4:
		socks4_read(c);
		break;
	case PROXY_P_HTTP:
		http_read(c);
		break;
	default:
		conn_fail(c, "bad-protocol");
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	/* EOF or error before the handshake completed */
	conn_fail(c, what & BEV_EVENT_EOF ? (c->st == ST_DETECT ? "client-closed" : "client-closed-early")
					  : "client-error");
}

/* One timer per connection: the handshake deadline until the relay starts,
 * then the idle timeout (re-armed for what remains since the last byte). */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	const struct proxy_config *cfg = &c->p->cfg;
	double idle;

	if (c->st == ST_CLOSING) { /* the client does not read its error reply */
		conn_close(c);
		return;
	}
	if (c->st != ST_RELAY && c->st != ST_UDP && c->st != ST_HTTP_FORWARD) {
		conn_fail(c, "handshake-timeout");
		return;
	}
	idle = since(&c->last) * 1000.0;
	if (idle >= cfg->idle_ms) {
		c->result = "idle-timeout";
		conn_close(c);
		return;
	}
	unsigned left = cfg->idle_ms - (unsigned)idle;

	proxy__arm(c->timer, left);
}

void proxy_conn__accept(struct proxy *p, int fd, const struct sockaddr *sa, socklen_t len)
{
	struct conn *c = calloc(1, sizeof(*c));
	unsigned ms = p->cfg.handshake_ms;

	if (!c) {
		close(fd);
		return;
	}
	c->p = p;
	memcpy(&c->client, sa, len < sizeof(c->client) ? len : sizeof(c->client));
	c->client_len = len;
	clock_gettime(CLOCK_MONOTONIC, &c->t0);
	c->last = c->t0;
	STAT_ADD(p->st.active, 1);
	c->next = p->conns;
	if (p->conns)
		p->conns->prev = c;
	p->conns = c;
	c->cli = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(p->base, on_timer, c);
	if (!c->cli || !c->timer) {
		if (!c->cli)
			close(fd);
		c->result = "out-of-memory";
		conn_close(c);
		return;
	}
	c->client_count = proxy__client_count(p, sa, true);
	if (c->client_count)
		(*c->client_count)++;
	if (!c->client_count || *c->client_count > p->cfg.max_per_client ||
	    p->st.active > p->cfg.max_conns) {
		c->result = "connection-limit";
		conn_close(c);
		return;
	}
	bufferevent_setcb(c->cli, on_read, NULL, on_event, c);
	/* a header bigger than the limit is refused, never buffered */
	bufferevent_setwatermark(c->cli, EV_READ, 0, p->cfg.max_header + 1);
	bufferevent_enable(c->cli, EV_READ | EV_WRITE);
	proxy__arm(c->timer, ms);
}

void proxy_conn__close_all(struct proxy *p)
{
	while (p->conns) {
		if (!p->conns->result)
			p->conns->result = "shutdown";
		conn_close(p->conns);
	}
}
