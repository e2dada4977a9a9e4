/* Zero-copy relaying with splice(2): for each direction a pipe, and the
 * bytes go socket -> pipe -> socket inside the kernel (the pages move, no
 * copy to user space).  splice(2) needs a pipe on one side of every call,
 * hence the pipe per direction.  Used for TCP <-> TCP relays (SOCKS
 * CONNECT, HTTP CONNECT) when `splice yes` (the default); relay.c's
 * buffered relay is the fallback when a pipe cannot be had (EMFILE,
 * ENFILE) or the kernel refuses to splice these sockets (EINVAL: e.g. a
 * socket type or ULP without splice_read).
 *
 * The connection's bufferevents stay allocated (they own and close the
 * sockets) but are disabled: what they still held - the SOCKS or HTTP reply
 * queued for the client, bytes the client sent right after its request - is
 * written first, from evbuffers, before the first splice in that
 * direction.  Half-close is carried across as in relay.c: an EOF from one
 * side becomes shutdown(SHUT_WR) of the other once its pipe is empty. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/conn.h"

/* One splice(2) moves at most a pipe's worth (64 KiB by default); asking
 * for more is harmless. */
#define SPLICE_CHUNK (1 << 20)

struct splice_dir {
	struct splice_relay *r;
	int from, to;
	int pipe[2];
	size_t inpipe;        /* bytes in the pipe, not yet written to `to` */
	bool eof, shut;       /* `from` said EOF; `to` was shut for writing */
	bool up;              /* client -> target */
	struct evbuffer *pre; /* to write to `to` before any splice */
	struct event *rev, *wev;
};

struct splice_relay {
	struct conn *c;
	struct splice_dir d[2]; /* [0] client -> target, [1] target -> client */
	bool moved;             /* a splice(2) succeeded: no more fallback */
};

/* A socket bufferevent keeps its output buffer frozen at the start (only
 * its own writes drain it): thaw it for the move (libevent's
 * evbuffer_freeze(3)). */
static void take_output(struct evbuffer *dst, struct evbuffer *out)
{
	evbuffer_unfreeze(out, 1);
	evbuffer_add_buffer(dst, out);
	evbuffer_freeze(out, 1);
}

static void give_output(struct evbuffer *out, struct evbuffer *src)
{
	evbuffer_unfreeze(out, 1);
	evbuffer_prepend_buffer(out, src);
	evbuffer_freeze(out, 1);
}

static void dir_free(struct splice_dir *d)
{
	if (d->rev)
		event_free(d->rev);
	if (d->wev)
		event_free(d->wev);
	for (int i = 0; i < 2; i++)
		if (d->pipe[i] >= 0)
			close(d->pipe[i]);
	if (d->pre)
		evbuffer_free(d->pre);
}

void splice_free(struct conn *c)
{
	struct splice_relay *r = c->splice;

	if (!r)
		return;
	dir_free(&r->d[0]);
	dir_free(&r->d[1]);
	free(r);
	c->splice = NULL;
}

/* The kernel will not splice these sockets: hand the relay, and whatever
 * was waiting, back to the buffered relay (nothing is in the pipes yet). */
static void fall_back(struct splice_relay *r)
{
	struct conn *c = r->c;

	give_output(bufferevent_get_output(c->up), r->d[0].pre);
	give_output(bufferevent_get_output(c->cli), r->d[1].pre);
	splice_free(c);
	STAT_SUB(c->p->st.relays[PROXY_RELAY_SPLICE], 1);
	relay_buffered(c);
}

static void fail(struct splice_relay *r, int fd)
{
	struct conn *c = r->c;

	if (!c->result)
		c->result = fd == bufferevent_getfd(c->cli) ? "client-reset" : "target-reset";
	conn_close(c);
}

/* Moves what it can in direction d until a socket would block; false when
 * the connection was closed (c and r are gone). */
static bool pump(struct splice_dir *d)
{
	struct splice_relay *r = d->r;
	struct conn *c = r->c;

	if (evbuffer_get_length(d->pre)) {
		if (evbuffer_write(d->pre, d->to) < 0 && errno != EAGAIN && errno != EINTR) {
			fail(r, d->to);
			return false;
		}
		if (evbuffer_get_length(d->pre)) {
			event_add(d->wev, NULL);
			return true;
		}
		conn_touch(c);
	}
	for (;;) {
		ssize_t n;

		if (d->inpipe) {
			n = splice(d->pipe[0], NULL, d->to, NULL, d->inpipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR) {
					event_add(d->wev, NULL);
					return true;
				}
				fail(r, d->to);
				return false;
			}
			d->inpipe -= (size_t)n;
			conn_touch(c);
			continue;
		}
		if (d->eof)
			break;
		n = splice(d->from, NULL, d->pipe[1], NULL, SPLICE_CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			r->moved = true;
			d->inpipe = (size_t)n;
			conn_bytes(c, d->up, (size_t)n);
			continue;
		}
		if (n == 0) {
			d->eof = true;
			break;
		}
		if (errno == EAGAIN || errno == EINTR) {
			event_add(d->rev, NULL);
			return true;
		}
		if ((errno == EINVAL || errno == ENOSYS) && !r->moved) {
			fall_back(r);
			return false;
		}
		fail(r, d->from);
		return false;
	}
	/* EOF from `from` and nothing left for `to`: pass the half-close on */
	if (!d->shut) {
		shutdown(d->to, SHUT_WR);
		d->shut = true;
	}
	if (r->d[0].shut && r->d[1].shut) {
		if (!c->result)
			c->result = "ok";
		conn_close(c);
		return false;
	}
	return true;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static int dir_init(struct splice_relay *r, struct splice_dir *d, int from, int to, bool up)
{
	struct event_base *base = r->c->p->base;

	d->r = r;
	d->from = from;
	d->to = to;
	d->up = up;
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		d->pipe[0] = d->pipe[1] = -1;
		return -errno;
	}
	d->pre = evbuffer_new();
	d->rev = event_new(base, from, EV_READ, on_ready, d);
	d->wev = event_new(base, to, EV_WRITE, on_ready, d);
	return d->pre && d->rev && d->wev ? 0 : -ENOMEM;
}

static bool is_tcp(int fd)
{
	int type = 0;
	socklen_t len = sizeof(type);

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

int splice_start(struct conn *c)
{
	int cfd = bufferevent_getfd(c->cli), ufd = bufferevent_getfd(c->up);
	struct splice_relay *r;
	int rc;

	if (!is_tcp(cfd) || !is_tcp(ufd))
		return -EOPNOTSUPP;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->c = c;
	r->d[0].pipe[0] = r->d[0].pipe[1] = r->d[1].pipe[0] = r->d[1].pipe[1] = -1;
	c->splice = r;
	/* the bufferevents stop here; their queued bytes move to `pre` */
	bufferevent_disable(c->cli, EV_READ | EV_WRITE);
	bufferevent_disable(c->up, EV_READ | EV_WRITE);
	bufferevent_setcb(c->cli, NULL, NULL, NULL, NULL);
	bufferevent_setcb(c->up, NULL, NULL, NULL, NULL);
	rc = dir_init(r, &r->d[0], cfd, ufd, true);
	if (!rc)
		rc = dir_init(r, &r->d[1], ufd, cfd, false);
	if (rc) { /* nothing taken yet: the buffered relay starts as if never here */
		splice_free(c);
		return rc;
	}
	/* bytes the client sent right after its request; the reply queued for
	 * the client, then anything the target already sent (nothing, normally) */
	conn_bytes(c, true, evbuffer_get_length(bufferevent_get_input(c->cli)));
	evbuffer_add_buffer(r->d[0].pre, bufferevent_get_input(c->cli));
	take_output(r->d[1].pre, bufferevent_get_output(c->cli));
	conn_bytes(c, false, evbuffer_get_length(bufferevent_get_input(c->up)));
	evbuffer_add_buffer(r->d[1].pre, bufferevent_get_input(c->up));
	for (int i = 0; i < 2; i++) {
		event_add(r->d[i].rev, NULL);
		if (evbuffer_get_length(r->d[i].pre))
			event_add(r->d[i].wev, NULL);
	}
	return 0;
}
