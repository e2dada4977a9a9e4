/* SOCKS5 (RFC 1928) with no-auth or username/password (RFC 1929), and
 * SOCKS4/4a, on top of the pure parsers of parse_socks.c. */
#include <errno.h>
#include <string.h>

#include "proxy/conn.h"

/* The message at the head of the input, or NULL when incomplete. */
static const uint8_t *peek(struct conn *c, size_t *n)
{
	struct evbuffer *in = bufferevent_get_input(c->cli);

	*n = evbuffer_get_length(in);
	if (*n > 600) /* the longest SOCKS message is 515 bytes (RFC 1929 auth) */
		*n = 600;
	return evbuffer_pullup(in, (ssize_t)*n);
}

static void consume(struct conn *c, int n)
{
	evbuffer_drain(bufferevent_get_input(c->cli), (size_t)n);
}

/* RFC 1928 §6 reply codes for our failures. */
static uint8_t rep_for(int err)
{
	switch (err) {
	case -ESRCH:
	case -EACCES:
		return SOCKS5_NOT_ALLOWED;
	case -ENETUNREACH:
		return SOCKS5_NET_UNREACH;
	case -EHOSTUNREACH:
	case -ENOENT:
	case -ETIMEDOUT:
		return SOCKS5_HOST_UNREACH;
	case -ECONNREFUSED:
		return SOCKS5_REFUSED;
	case -EAFNOSUPPORT:
		return SOCKS5_ATYP_UNSUPP;
	case -ENOTSUP:
		return SOCKS5_CMD_UNSUPP;
	default:
		return SOCKS5_FAIL;
	}
}

static void socks5_reply(struct conn *c, uint8_t rep, const struct sockaddr *bound)
{
	uint8_t b[32];

	bufferevent_write(c->cli, b, socks5__reply(b, rep, bound));
}

static void socks5_error(struct conn *c, int err, const char *result)
{
	socks5_reply(c, rep_for(err), NULL);
	conn_fail(c, result ? result : conn_errname(err));
}

static void socks5_dialed(struct conn *c, int err)
{
	if (err) {
		socks5_error(c, err, c->result);
		return;
	}
	/* BND.ADDR/BND.PORT: the egress address the target sees (§6) */
	socks5_reply(c, SOCKS5_OK, (struct sockaddr *)&c->egress);
	relay_start(c);
}

static void socks5_request(struct conn *c, uint8_t cmd)
{
	int rc = conn_select_tags(c);

	if (rc) {
		socks5_error(c, rc, rc == -ESRCH ? "no-tags" : conn_errname(rc));
		return;
	}
	if (cmd == SOCKS5_CMD_UDP) {
		if (!c->p->cfg.udp) {
			socks5_error(c, -ENOTSUP, "udp-disabled");
			return;
		}
		if ((rc = udp_start(c)) < 0)
			socks5_error(c, rc, "udp-failed");
		return;
	}
	c->on_dialed = socks5_dialed;
	conn_dial(c);
}

void socks5_read(struct conn *c)
{
	const uint8_t *b;
	size_t n;
	int rc;

	while ((b = peek(c, &n)) && n && c->st != ST_DIALING && c->st != ST_CLOSING) {
		switch (c->st) {
		case ST_SOCKS5_GREETING: {
			uint32_t m;
			uint8_t rep[2] = { 5, SOCKS5_AUTH_NOACCEPT };

			if ((rc = socks5__parse_greeting(b, n, &m)) <= 0)
				goto out;
			consume(c, rc);
			/* Prefer credentials when the client offers them: they
			 * may name tags (RFC 1928 §3: the server picks). */
			if ((m & (1u << SOCKS5_AUTH_USERPASS)) && (c->p->cfg.nusers || c->p->cfg.user_tags))
				rep[1] = SOCKS5_AUTH_USERPASS;
			else if ((m & (1u << SOCKS5_AUTH_NONE)) && !c->p->cfg.auth_required)
				rep[1] = SOCKS5_AUTH_NONE;
			bufferevent_write(c->cli, rep, 2);
			if (rep[1] == SOCKS5_AUTH_NOACCEPT) {
				conn_fail(c, "no-acceptable-auth");
				return;
			}
			c->st = rep[1] == SOCKS5_AUTH_USERPASS ? ST_SOCKS5_AUTH : ST_SOCKS5_REQUEST;
			break;
		}
		case ST_SOCKS5_AUTH: {
			uint8_t rep[2] = { 1, 0 };
			struct proxy_tagsel t;

			if ((rc = socks5__parse_auth(b, n, c->user, c->pass)) <= 0)
				goto out;
			consume(c, rc);
			c->have_user = true;
			/* RFC 1929 §2: a non-zero status and the server closes */
			rc = proxy_tags__select(&c->p->cfg, c->p->geo, c->user, c->pass,
						(struct sockaddr *)&c->client, &t);
			if (rc == -EACCES || rc == -EINVAL) {
				rep[1] = 1;
				bufferevent_write(c->cli, rep, 2);
				conn_fail(c, rc == -EACCES ? "auth-failed" : "bad-tags");
				return;
			}
			bufferevent_write(c->cli, rep, 2);
			c->st = ST_SOCKS5_REQUEST;
			break;
		}
		case ST_SOCKS5_REQUEST: {
			uint8_t cmd = 0;

			if ((rc = socks5__parse_request(b, n, &cmd, &c->target)) <= 0)
				goto out;
			consume(c, rc);
			socks5_request(c, cmd);
			return;
		}
		default:
			return;
		}
	}
	return;
out:
	if (rc < 0) {
		/* a reply only where the protocol has one for the error */
		if (c->st == ST_SOCKS5_REQUEST)
			socks5_error(c, rc, "bad-request");
		else if (c->st == ST_SOCKS5_AUTH && b[0] == 1) {
			/* RFC 1929 §2: status != 0 and the server closes */
			bufferevent_write(c->cli, (uint8_t[]){ 1, 1 }, 2);
			conn_fail(c, "bad-auth-request");
		} else
			conn_fail(c, "bad-request");
	}
}

static void socks4_reply(struct conn *c, uint8_t code)
{
	uint8_t b[8] = { 0, code };

	bufferevent_write(c->cli, b, 8);
}

static void socks4_dialed(struct conn *c, int err)
{
	if (err) {
		socks4_reply(c, SOCKS4_REJECTED);
		conn_fail(c, c->result ? c->result : conn_errname(err));
		return;
	}
	socks4_reply(c, SOCKS4_GRANTED);
	relay_start(c);
}

void socks4_read(struct conn *c)
{
	const uint8_t *b;
	size_t n;
	uint8_t cmd;
	int rc;

	if (c->st != ST_SOCKS4_REQUEST || !(b = peek(c, &n)))
		return;
	rc = socks4__parse_request(b, n, &cmd, &c->target, c->user);
	if (!rc)
		return;
	if (rc < 0) {
		socks4_reply(c, SOCKS4_REJECTED);
		conn_fail(c, "bad-request");
		return;
	}
	consume(c, rc);
	/* SOCKS4 has a user id but no password: it names tags only in the
	 * user-tags forms; any other user id (clients send their login name)
	 * is ignored rather than taken as a failed login. */
	c->have_user = c->p->cfg.user_tags &&
		       (!strncmp(c->user, "country-", 8) || !strncmp(c->user, "tags:", 5));
	if (!c->have_user)
		c->user[0] = 0;
	if ((rc = conn_select_tags(c))) {
		proxy_target__str(&c->target, c->target_str, sizeof(c->target_str));
		socks4_reply(c, SOCKS4_REJECTED);
		conn_fail(c, rc == -ESRCH ? "no-tags" : conn_errname(rc));
		return;
	}
	c->on_dialed = socks4_dialed;
	conn_dial(c);
}
