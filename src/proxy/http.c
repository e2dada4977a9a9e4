/* HTTP/1.1 proxying: CONNECT (RFC 9110 §9.3.6) becomes a relay; an
 * absolute-URI request ("GET http://host/path") is forwarded in origin-form
 * over a fresh egress connection per request (asking the target to close
 * it), while the client's connection is kept alive across requests: the
 * response is framed by Content-Length, chunked coding or the target's close
 * (RFC 9112 §6.3), and the body is streamed, never buffered whole.
 * Proxy-Authorization: Basic carries the credentials (RFC 9110 §11.7.2). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/conn.h"

#define RESP_HEAD_MAX 65536

struct http_fwd {
	int64_t req_left;      /* Content-Length body bytes still to send; -1 chunked */
	struct http_chunked req_ch, resp_ch;
	bool req_done, resp_head_done, resp_done, until_close, resp_chunked, no_body;
	int64_t resp_left;
	bool client_close, client_10_keepalive;
	bool head;
};

void http_free(struct conn *c)
{
	free(c->http);
	c->http = NULL;
	if (c->http_head)
		evbuffer_free(c->http_head);
	c->http_head = NULL;
}

static void reply(struct conn *c, int status, const char *reason, const char *err, const char *extra)
{
	struct evbuffer *out = bufferevent_get_output(c->cli);
	char body[256];
	int blen = snprintf(body, sizeof(body), "%d %s%s%s\n", status, reason, err ? ": " : "", err ? err : "");

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, reason);
	if (err)
		evbuffer_add_printf(out, "X-Softunicast-Error: %s\r\n", err);
	if (extra)
		evbuffer_add_printf(out, "%s", extra);
	evbuffer_add_printf(out, "Content-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			    blen, body);
}

/* Status for a failure to reach the target with the chosen tags. */
static void reply_err(struct conn *c, int err)
{
	const char *name = c->result ? c->result : conn_errname(err);

	switch (err) {
	case -ESRCH:
		reply(c, 403, "Forbidden", name, NULL);
		break;
	case -EADDRNOTAVAIL:
		reply(c, 503, "Service Unavailable", name, NULL);
		break;
	case -ETIMEDOUT:
		reply(c, 504, "Gateway Timeout", name, NULL);
		break;
	default:
		reply(c, 502, "Bad Gateway", name, NULL);
	}
	conn_fail(c, name);
}

static int b64val(int ch)
{
	const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = ch ? strchr(a, ch) : NULL;

	return p ? (int)(p - a) : -1;
}

/* RFC 4648 §4 base64; returns the decoded length or -1. */
static int b64dec(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;

	while (n && s[n - 1] == '=')
		n--;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)s[i]);

		if (v < 0)
			return -1;
		acc = acc << 6 | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= cap)
				return -1;
			out[o++] = (char)(acc >> bits);
		}
	}
	out[o] = 0;
	return (int)o;
}

/* Proxy-Authorization: Basic user:pass -> c->user, c->pass. */
static int take_credentials(struct conn *c, const struct http_request *r)
{
	const struct http_header *h = http__header(r, "proxy-authorization");
	char dec[520], *colon;
	int n;

	if (!h)
		return 0;
	if (h->value_len < 6 || strncasecmp(h->value, "Basic ", 6))
		return -EACCES;
	n = b64dec(h->value + 6, h->value_len - 6, dec, sizeof(dec));
	if (n < 0 || memchr(dec, 0, (size_t)n) || !(colon = strchr(dec, ':')))
		return -EACCES;
	*colon = 0;
	if (strlen(dec) > 255 || strlen(colon + 1) > 255 || !dec[0])
		return -EACCES;
	strcpy(c->user, dec);
	strcpy(c->pass, colon + 1);
	c->have_user = true;
	return 0;
}

static void connect_dialed(struct conn *c, int err)
{
	if (err) {
		reply_err(c, err);
		return;
	}
	evbuffer_add_printf(bufferevent_get_output(c->cli), "HTTP/1.1 200 Connection established\r\n\r\n");
	relay_start(c);
}

/* hop-by-hop fields (RFC 9110 §7.6.1) and the proxy's own */
static bool hop_by_hop(const struct http_header *h)
{
	static const char *const names[] = { "connection", "proxy-connection", "keep-alive", "proxy-authorization",
					     "te", "upgrade", "proxy-authenticate" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (h->name_len == strlen(names[i]) && !strncasecmp(h->name, names[i], h->name_len))
			return true;
	return false;
}

static void fwd_pump(struct conn *c);
static void fwd_done(struct conn *c);

static void up_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	conn_touch(c);
	fwd_pump(c);
}

static void up_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	struct http_fwd *f = c->http;

	if ((what & BEV_EVENT_EOF) && f->resp_head_done) {
		fwd_pump(c); /* whatever was left */
		if (c->st != ST_HTTP_FORWARD)
			return;
		if (f->until_close) {
			f->resp_done = true;
			f->client_close = true;
			fwd_done(c);
			return;
		}
	}
	if (!f->resp_head_done) {
		reply(c, 502, "Bad Gateway", "target-closed", NULL);
		conn_fail(c, "target-closed");
		return;
	}
	/* mid-body: the client's framing is broken, only closing tells it */
	c->result = "target-closed-early";
	conn_close(c);
}

static void cli_read(struct bufferevent *bev, void *arg);
static void cli_write(struct bufferevent *bev, void *arg);
static void cli_event(struct bufferevent *bev, short what, void *arg);

/* Streams the request body (client -> target) and the response (target ->
 * client) as far as the bytes at hand go. */
static void fwd_pump(struct conn *c)
{
	struct http_fwd *f = c->http;
	struct evbuffer *cin = bufferevent_get_input(c->cli), *uin = bufferevent_get_input(c->up);
	size_t n;
	int rc;

	while (!f->req_done && (n = evbuffer_get_length(cin))) {
		size_t take = n;

		if (f->req_left >= 0) {
			take = (int64_t)n < f->req_left ? n : (size_t)f->req_left;
			f->req_left -= (int64_t)take;
			f->req_done = !f->req_left;
		} else {
			rc = http_chunked__feed(&f->req_ch, evbuffer_pullup(cin, (ssize_t)n), n);
			if (rc < 0) {
				c->result = "bad-chunked-body";
				conn_close(c);
				return;
			}
			take = (size_t)rc;
			f->req_done = f->req_ch.done;
		}
		conn_bytes(c, true, take);
		evbuffer_remove_buffer(cin, bufferevent_get_output(c->up), take);
	}
	if (f->req_done)
		bufferevent_disable(c->cli, EV_READ); /* a pipelined request waits */
	if (!f->resp_head_done) {
		struct http_request r;
		size_t len = evbuffer_get_length(uin);
		const uint8_t *b = evbuffer_pullup(uin, (ssize_t)(len < RESP_HEAD_MAX ? len : RESP_HEAD_MAX));
		struct evbuffer *out = bufferevent_get_output(c->cli);

		rc = http__parse_response(b, len, RESP_HEAD_MAX, &r);
		if (!rc)
			return;
		if (rc < 0) {
			reply(c, 502, "Bad Gateway", "bad-response", NULL);
			conn_fail(c, "bad-response");
			return;
		}
		if (r.status >= 100 && r.status < 200) { /* interim: pass on, expect another head */
			conn_bytes(c, false, (size_t)rc);
			evbuffer_remove_buffer(uin, out, (size_t)rc);
			fwd_pump(c);
			return;
		}
		f->no_body = f->head || r.status == 204 || r.status == 304;
		f->resp_chunked = !f->no_body && r.chunked;
		f->resp_left = f->no_body ? 0 : r.content_length;
		f->until_close = !f->no_body && !r.chunked && r.content_length < 0;
		if (f->until_close)
			f->client_close = true;
		evbuffer_add_printf(out, "HTTP/1.%d %.*s\r\n", 1, (int)(strcspn((const char *)b, "\r") - 9),
				    (const char *)b + 9);
		for (size_t i = 0; i < r.nh; i++)
			if (!hop_by_hop(&r.h[i]))
				evbuffer_add_printf(out, "%.*s: %.*s\r\n", (int)r.h[i].name_len, r.h[i].name,
						    (int)r.h[i].value_len, r.h[i].value);
		evbuffer_add_printf(out, "%s\r\n", f->client_close ? "Connection: close\r\n"
						     : f->client_10_keepalive ? "Connection: keep-alive\r\n" : "");
		conn_bytes(c, false, (size_t)rc);
		evbuffer_drain(uin, (size_t)rc);
		f->resp_head_done = true;
		f->resp_done = f->no_body || (!f->resp_chunked && f->resp_left == 0);
	}
	while (!f->resp_done && (n = evbuffer_get_length(uin))) {
		size_t take = n;

		if (f->resp_chunked) {
			rc = http_chunked__feed(&f->resp_ch, evbuffer_pullup(uin, (ssize_t)n), n);
			if (rc < 0) {
				c->result = "bad-chunked-response";
				conn_close(c);
				return;
			}
			take = (size_t)rc;
			f->resp_done = f->resp_ch.done;
		} else if (!f->until_close) {
			take = (int64_t)n < f->resp_left ? n : (size_t)f->resp_left;
			f->resp_left -= (int64_t)take;
			f->resp_done = !f->resp_left;
		}
		conn_bytes(c, false, take);
		evbuffer_remove_buffer(uin, bufferevent_get_output(c->cli), take);
	}
	if (f->resp_done)
		fwd_done(c);
}

/* One exchange finished: next request on the same client connection, or close. */
static void fwd_done(struct conn *c)
{
	struct http_fwd *f = c->http;

	if (!f->req_done) {
		/* the target answered before the whole body arrived: the rest
		 * of the body cannot be told apart from a next request */
		f->client_close = true;
	}
	bufferevent_free(c->up);
	c->up = NULL;
	if (!c->result || !strcmp(c->result, "ok"))
		c->result = "ok";
	if (f->client_close) {
		conn_fail(c, "ok");
		return;
	}
	/* the access log has a line per request on a kept-alive connection */
	proxy_log__write(c->p->log, &(struct proxy_logrec){
		.client = (struct sockaddr *)&c->client, .proto = "http", .user = c->have_user ? c->user : NULL,
		.tags = c->tags.tags, .target = c->target_str, .result = "ok",
		.egress = (struct sockaddr *)&c->egress, .up = c->up_bytes, .down = c->down_bytes, .secs = 0,
	});
	proxy_stats__ended(&c->p->st, PROXY_P_HTTP, "ok");
	c->up_bytes = c->down_bytes = 0;
	c->result = NULL;
	c->st = ST_HTTP_HEAD;
	http_free(c);
	{
		unsigned ms = c->p->cfg.idle_ms;

		proxy__arm(c->timer, ms);
	}
	bufferevent_setcb(c->cli, cli_read, NULL, cli_event, c);
	bufferevent_setwatermark(c->cli, EV_READ, 0, c->p->cfg.max_header + 1);
	bufferevent_enable(c->cli, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->cli)))
		http_read(c);
}

static void cli_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	conn_touch(c);
	if (c->st == ST_HTTP_FORWARD)
		fwd_pump(c);
	else
		http_read(c);
}

static void cli_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	conn_touch(c);
}

static void cli_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (!c->result)
		c->result = c->st == ST_HTTP_HEAD && !c->target_str[0] ? "client-closed" : "client-closed-early";
	if (c->st == ST_HTTP_HEAD && c->target_str[0])
		c->result = "ok";
	conn_close(c);
}

static void plain_dialed(struct conn *c, int err)
{
	if (err) {
		reply_err(c, err);
		return;
	}
	bufferevent_write_buffer(c->up, c->http_head);
	c->st = ST_HTTP_FORWARD;
	conn_touch(c);
	{
		unsigned ms = c->p->cfg.idle_ms;

		proxy__arm(c->timer, ms);
	}
	bufferevent_setcb(c->up, up_read, NULL, up_event, c);
	bufferevent_enable(c->up, EV_READ | EV_WRITE);
	bufferevent_setwatermark(c->cli, EV_READ, 0, 0);
	bufferevent_setcb(c->cli, cli_read, cli_write, cli_event, c);
	bufferevent_enable(c->cli, EV_READ);
	fwd_pump(c);
}

/* The request head rewritten for the target: origin-form, hop-by-hop
 * fields dropped, Host from the URI (RFC 9112 §3.2.2), Connection: close. */
static int start_plain(struct conn *c, const struct http_request *r)
{
	struct evbuffer *tmp = evbuffer_new();
	struct http_fwd *f = calloc(1, sizeof(*f));
	char host[300];

	if (!tmp || !f) {
		evbuffer_free(tmp);
		free(f);
		return -ENOMEM;
	}
	c->http = f;
	f->head = r->method_len == 4 && !memcmp(r->method, "HEAD", 4);
	f->client_close = r->close;
	f->client_10_keepalive = r->minor == 0 && !r->close;
	f->req_left = r->chunked ? -1 : r->content_length > 0 ? r->content_length : 0;
	f->req_done = !r->chunked && f->req_left == 0;
	evbuffer_add_printf(tmp, "%.*s %.*s HTTP/1.1\r\n", (int)r->method_len, r->method, (int)r->path_len, r->path);
	if (!http__header(r, "host")) {
		proxy_target__str(&r->dst, host, sizeof(host));
		if (r->dst.port == 80)
			host[strlen(host) - 3] = 0;
		evbuffer_add_printf(tmp, "Host: %s\r\n", host);
	}
	for (size_t i = 0; i < r->nh; i++)
		if (!hop_by_hop(&r->h[i]))
			evbuffer_add_printf(tmp, "%.*s: %.*s\r\n", (int)r->h[i].name_len, r->h[i].name,
					    (int)r->h[i].value_len, r->h[i].value);
	evbuffer_add_printf(tmp, "Connection: close\r\n\r\n");
	conn_bytes(c, true, r->head_len);
	evbuffer_drain(bufferevent_get_input(c->cli), r->head_len);
	/* queued until the target is connected: kept on a side buffer */
	c->http_head = tmp;
	return 0;
}

void http_read(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->cli);
	size_t n = evbuffer_get_length(in), max = c->p->cfg.max_header;
	struct http_request r;
	int rc;

	if (c->st != ST_HTTP_HEAD)
		return;
	rc = http__parse_request(evbuffer_pullup(in, (ssize_t)(n < max + 1 ? n : max + 1)), n, max, &r);
	if (!rc)
		return;
	if (rc < 0) {
		if (rc == -E2BIG)
			reply(c, 431, "Request Header Fields Too Large", "header-too-large", NULL);
		else if (rc == -ENOTSUP)
			reply(c, 400, "Bad Request", "not-a-proxy-request", NULL);
		else
			reply(c, 400, "Bad Request", "bad-request", NULL);
		conn_fail(c, rc == -E2BIG ? "header-too-large" : rc == -ENOTSUP ? "not-a-proxy-request" : "bad-request");
		return;
	}
	c->target = r.dst;
	proxy_target__str(&c->target, c->target_str, sizeof(c->target_str));
	if (take_credentials(c, &r) < 0) {
		reply(c, 407, "Proxy Authentication Required", "auth-failed",
		      "Proxy-Authenticate: Basic realm=\"softunicast\"\r\n");
		conn_fail(c, "auth-failed");
		return;
	}
	if ((rc = conn_select_tags(c))) {
		if (rc == -EACCES)
			reply(c, 407, "Proxy Authentication Required", "auth-failed",
			      "Proxy-Authenticate: Basic realm=\"softunicast\"\r\n");
		else
			reply(c, 403, "Forbidden", rc == -ESRCH ? "no-tags" : "bad-tags", NULL);
		conn_fail(c, rc == -EACCES ? "auth-failed" : rc == -ESRCH ? "no-tags" : "bad-tags");
		return;
	}
	if (r.connect) {
		evbuffer_drain(in, r.head_len);
		c->on_dialed = connect_dialed;
	} else {
		if ((rc = start_plain(c, &r))) {
			reply(c, 500, "Internal Server Error", "out-of-memory", NULL);
			conn_fail(c, "out-of-memory");
			return;
		}
		c->on_dialed = plain_dialed;
	}
	bufferevent_disable(c->cli, EV_READ);
	conn_dial(c);
}
