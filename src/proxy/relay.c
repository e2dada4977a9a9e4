/* Relaying bytes both ways between the client and the target: splice(2)
 * zero-copy where it can (splice.c), else (this file) libevent
 * bufferevents with back-pressure (a side stops reading while the other's
 * output holds more than RELAY_HIGH bytes), TCP half-close carried across
 * (an EOF becomes shutdown(SHUT_WR) on the other side once its output is
 * flushed), and the idle timeout over both directions. */
#include <sys/socket.h>

#include "proxy/conn.h"

#define RELAY_HIGH (512 * 1024)

static struct bufferevent *other(struct conn *c, struct bufferevent *bev)
{
	return bev == c->cli ? c->up : c->cli;
}

static bool *eof_of(struct conn *c, struct bufferevent *bev)
{
	return bev == c->cli ? &c->cli_eof : &c->up_eof;
}

static void maybe_done(struct conn *c)
{
	if (c->cli_eof && c->up_eof && !evbuffer_get_length(bufferevent_get_output(c->cli)) &&
	    !evbuffer_get_length(bufferevent_get_output(c->up))) {
		if (!c->result)
			c->result = "ok";
		conn_close(c);
	}
}

/* dst's peer said EOF: pass it on once dst's output is empty. */
static void pass_eof(struct conn *c, struct bufferevent *dst)
{
	bool src_eof = *eof_of(c, other(c, dst));

	if (src_eof && !evbuffer_get_length(bufferevent_get_output(dst)))
		shutdown(bufferevent_getfd(dst), SHUT_WR);
}

static void on_read(struct bufferevent *src, void *arg)
{
	struct conn *c = arg;
	struct bufferevent *dst = other(c, src);
	struct evbuffer *in = bufferevent_get_input(src);
	size_t n = evbuffer_get_length(in);

	conn_bytes(c, src == c->cli, n);
	evbuffer_add_buffer(bufferevent_get_output(dst), in);
	conn_touch(c);
	if (evbuffer_get_length(bufferevent_get_output(dst)) > RELAY_HIGH)
		bufferevent_disable(src, EV_READ);
}

/* dst's output drained completely (write low watermark 0). */
static void on_write(struct bufferevent *dst, void *arg)
{
	struct conn *c = arg;
	struct bufferevent *src = other(c, dst);

	conn_touch(c);
	if (!*eof_of(c, src))
		bufferevent_enable(src, EV_READ);
	pass_eof(c, dst);
	maybe_done(c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_EOF) {
		*eof_of(c, bev) = true;
		/* whatever the kernel had already handed us still goes across */
		on_read(bev, c);
		pass_eof(c, other(c, bev));
		maybe_done(c);
		return;
	}
	if (!c->result)
		c->result = bev == c->cli ? "client-reset" : "target-reset";
	conn_close(c);
}

void relay_start(struct conn *c)
{
	unsigned ms = c->p->cfg.idle_ms;

	c->st = ST_RELAY;
	c->cli_eof = c->up_eof = false;
	conn_touch(c);
	proxy__arm(c->timer, ms);
	if (c->p->cfg.splice && !splice_start(c)) {
		STAT_ADD(c->p->st.relays[PROXY_RELAY_SPLICE], 1);
		return;
	}
	relay_buffered(c);
}

void relay_buffered(struct conn *c)
{
	STAT_ADD(c->p->st.relays[PROXY_RELAY_BUFFERED], 1);
	bufferevent_setwatermark(c->cli, EV_READ, 0, 0);
	bufferevent_setcb(c->cli, on_read, on_write, on_event, c);
	bufferevent_setcb(c->up, on_read, on_write, on_event, c);
	bufferevent_enable(c->cli, EV_READ | EV_WRITE);
	bufferevent_enable(c->up, EV_READ | EV_WRITE);
	/* bytes the client sent right after its request (no round trip wait) */
	if (evbuffer_get_length(bufferevent_get_input(c->cli)))
		on_read(c->cli, c);
}
