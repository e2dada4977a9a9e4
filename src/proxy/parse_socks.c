/* SOCKS5 (RFC 1928, RFC 1929) and SOCKS4/4a request parsers: pure functions
 * over a buffer, see parse.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proxy/parse.h"

int proxy__detect(const uint8_t *b, size_t n, enum proxy_proto *out)
{
	*out = PROXY_P_UNKNOWN;
	if (!n)
		return 0;
	if (b[0] == 5)
		*out = PROXY_P_SOCKS5;
	else if (b[0] == 4)
		*out = PROXY_P_SOCKS4;
	else if (b[0] >= 'A' && b[0] <= 'Z') /* a method token (RFC 9110 §9.1) */
		*out = PROXY_P_HTTP;
	else
		return -EPROTO;
	return 1;
}

const char *proxy_proto__name(enum proxy_proto p)
{
	switch (p) {
	case PROXY_P_SOCKS4: return "socks4";
	case PROXY_P_SOCKS5: return "socks5";
	case PROXY_P_HTTP: return "http";
	default: return "unknown";
	}
}

const char *proxy_target__str(const struct proxy_target *t, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	switch (t->kind) {
	case TARGET_IPV4:
		snprintf(buf, len, "%s:%u", inet_ntop(AF_INET, &t->v4, a, sizeof(a)), t->port);
		break;
	case TARGET_IPV6:
		snprintf(buf, len, "[%s]:%u", inet_ntop(AF_INET6, &t->v6, a, sizeof(a)), t->port);
		break;
	case TARGET_NAME:
		snprintf(buf, len, "%s:%u", t->name, t->port);
		break;
	default:
		snprintf(buf, len, "-");
	}
	return buf;
}

int socks5__parse_greeting(const uint8_t *b, size_t n, uint32_t *methods)
{
	*methods = 0;
	if (n < 1)
		return 0;
	if (b[0] != 5)
		return -EPROTO;
	if (n < 2)
		return 0;
	/* NMETHODS = 0 leaves nothing to choose from: malformed (§3). */
	if (!b[1])
		return -EPROTO;
	if (n < 2u + b[1])
		return 0;
	for (unsigned i = 0; i < b[1]; i++)
		if (b[2 + i] < 32)
			*methods |= 1u << b[2 + i];
	return 2 + b[1];
}

/* A length-prefixed string: RFC 1929 allows 1..255 bytes. */
static int take_str(const uint8_t *b, size_t n, size_t *off, char out[256])
{
	size_t l;

	if (*off >= n)
		return 0;
	l = b[*off];
	if (*off + 1 + l > n)
		return 0;
	if (memchr(b + *off + 1, 0, l))
		return -EPROTO;
	memcpy(out, b + *off + 1, l);
	out[l] = 0;
	*off += 1 + l;
	return 1;
}

int socks5__parse_auth(const uint8_t *b, size_t n, char user[256], char pass[256])
{
	size_t off = 1;
	int rc;

	if (n < 1)
		return 0;
	if (b[0] != 1) /* sub-negotiation version, RFC 1929 §2 */
		return -EPROTO;
	if ((rc = take_str(b, n, &off, user)) <= 0)
		return rc;
	if ((rc = take_str(b, n, &off, pass)) <= 0)
		return rc;
	if (!user[0])
		return -EPROTO;
	return (int)off;
}

/* ATYP DST.ADDR DST.PORT from b[off]; returns the end offset, 0, or -errno. */
static int parse_addr(const uint8_t *b, size_t n, size_t off, struct proxy_target *t)
{
	size_t alen;

	if (n < off + 1)
		return 0;
	memset(t, 0, sizeof(*t));
	switch (b[off]) {
	case TARGET_IPV4:
		alen = 4;
		break;
	case TARGET_IPV6:
		alen = 16;
		break;
	case TARGET_NAME:
		if (n < off + 2)
			return 0;
		alen = 1 + b[off + 1];
		if (alen == 1)
			return -EPROTO;
		break;
	default:
		return -EAFNOSUPPORT; /* reply 0x08 (§6) */
	}
	if (n < off + 1 + alen + 2)
		return 0;
	t->kind = b[off];
	if (t->kind == TARGET_IPV4)
		memcpy(&t->v4, b + off + 1, 4);
	else if (t->kind == TARGET_IPV6)
		memcpy(&t->v6, b + off + 1, 16);
	else {
		if (memchr(b + off + 2, 0, alen - 1))
			return -EPROTO;
		memcpy(t->name, b + off + 2, alen - 1);
		t->name[alen - 1] = 0;
	}
	t->port = (uint16_t)(b[off + 1 + alen] << 8 | b[off + 2 + alen]);
	return (int)(off + 1 + alen + 2);
}

int socks5__parse_request(const uint8_t *b, size_t n, uint8_t *cmd, struct proxy_target *t)
{
	int rc;

	if (n < 1)
		return 0;
	if (b[0] != 5)
		return -EPROTO;
	if (n < 3)
		return 0;
	if (b[2] != 0)
		return -EPROTO;
	*cmd = b[1];
	rc = parse_addr(b, n, 3, t);
	if (rc <= 0)
		return rc;
	if (*cmd != SOCKS5_CMD_CONNECT && *cmd != SOCKS5_CMD_UDP)
		return -ENOTSUP;
	return rc;
}

int socks5__parse_udp(const uint8_t *b, size_t n, struct proxy_target *t)
{
	int rc;

	if (n < 4)
		return -EPROTO; /* a datagram arrives whole: short is malformed */
	if (b[0] || b[1])
		return -EPROTO;
	if (b[2])
		return -ENOTSUP;
	rc = parse_addr(b, n, 3, t);
	return rc == 0 ? -EPROTO : rc;
}

static size_t put_addr(uint8_t *out, const struct sockaddr *a)
{
	if (a && a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)a;

		out[0] = TARGET_IPV6;
		memcpy(out + 1, &s->sin6_addr, 16);
		memcpy(out + 17, &s->sin6_port, 2);
		return 19;
	}
	out[0] = TARGET_IPV4;
	if (a && a->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)a;

		memcpy(out + 1, &s->sin_addr, 4);
		memcpy(out + 5, &s->sin_port, 2);
	} else
		memset(out + 1, 0, 6);
	return 7;
}

size_t socks5__reply(uint8_t *out, uint8_t rep, const struct sockaddr *bound)
{
	out[0] = 5;
	out[1] = rep;
	out[2] = 0;
	return 3 + put_addr(out + 3, bound);
}

size_t socks5__udp_header(uint8_t *out, const struct sockaddr *from)
{
	out[0] = out[1] = out[2] = 0;
	return 3 + put_addr(out + 3, from);
}

int socks4__parse_request(const uint8_t *b, size_t n, uint8_t *cmd, struct proxy_target *t,
			  char user[256])
{
	const uint8_t *nul, *hn;
	size_t ulen;

	if (n < 1)
		return 0;
	if (b[0] != 4)
		return -EPROTO;
	if (n < 9)
		return 0;
	memset(t, 0, sizeof(*t));
	*cmd = b[1];
	t->port = (uint16_t)(b[2] << 8 | b[3]);
	memcpy(&t->v4, b + 4, 4);
	nul = memchr(b + 8, 0, n - 8);
	if (!nul)
		return n - 8 > 255 ? -E2BIG : 0;
	ulen = (size_t)(nul - (b + 8));
	if (ulen > 255)
		return -E2BIG;
	memcpy(user, b + 8, ulen);
	user[ulen] = 0;
	/* SOCKS4a: DSTIP 0.0.0.x with x != 0 means a host name follows. */
	if (b[4] == 0 && b[5] == 0 && b[6] == 0 && b[7] != 0) {
		size_t off = (size_t)(nul - b) + 1, hlen;

		hn = memchr(b + off, 0, n - off);
		if (!hn)
			return n - off > 255 ? -E2BIG : 0;
		hlen = (size_t)(hn - (b + off));
		if (!hlen || hlen > 255)
			return hlen ? -E2BIG : -EPROTO;
		memcpy(t->name, b + off, hlen);
		t->name[hlen] = 0;
		t->kind = TARGET_NAME;
		if (*cmd != 1)
			return -ENOTSUP;
		return (int)(off + hlen + 1);
	}
	t->kind = TARGET_IPV4;
	if (*cmd != 1) /* BIND is not offered */
		return -ENOTSUP;
	return (int)((size_t)(nul - b) + 1);
}
