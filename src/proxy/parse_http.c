/* HTTP/1.1 proxy request parser (RFC 9112 §3 request line, §5 fields,
 * §7.1 chunked coding; RFC 9110 §7.1 target forms, §9.3.6 CONNECT): pure
 * functions over a buffer, see parse.h. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "proxy/parse.h"

static int is_tchar(uint8_t c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int ieq(const char *a, size_t alen, const char *b)
{
	return alen == strlen(b) && !strncasecmp(a, b, alen);
}

const struct http_header *http__header(const struct http_request *r, const char *name)
{
	for (size_t i = 0; i < r->nh; i++)
		if (ieq(r->h[i].name, r->h[i].name_len, name))
			return &r->h[i];
	return NULL;
}

/* Does a comma-separated field value contain token tok (case-insensitive)? */
static int has_token(const char *v, size_t len, const char *tok, int last_only)
{
	size_t i = 0, tl = strlen(tok);
	int found = 0;

	while (i < len) {
		size_t s, e;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < len && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e == s)
			continue;
		found = e - s == tl && !strncasecmp(v + s, tok, tl);
		if (found && !last_only)
			return 1;
	}
	return found;
}

/* host, "[v6]" or name, then optional ":port"; the whole of [s, s+len). */
static int parse_authority(const char *s, size_t len, uint16_t defport, struct proxy_target *t)
{
	const char *host = s, *port = NULL;
	size_t hlen = len, plen = 0;
	char tmp[256];

	memset(t, 0, sizeof(*t));
	if (!len)
		return -EPROTO;
	if (s[0] == '[') {
		const char *e = memchr(s, ']', len);

		if (!e)
			return -EPROTO;
		host = s + 1;
		hlen = (size_t)(e - host);
		if (e + 1 < s + len) {
			if (e[1] != ':')
				return -EPROTO;
			port = e + 2;
			plen = (size_t)(s + len - port);
		}
		if (hlen >= sizeof(tmp))
			return -EPROTO;
		memcpy(tmp, host, hlen);
		tmp[hlen] = 0;
		if (inet_pton(AF_INET6, tmp, &t->v6) != 1)
			return -EPROTO;
		t->kind = TARGET_IPV6;
	} else {
		const char *c = memchr(s, ':', len);

		if (c) {
			hlen = (size_t)(c - s);
			port = c + 1;
			plen = (size_t)(s + len - port);
		}
		if (!hlen || hlen > 255)
			return -EPROTO;
		for (size_t i = 0; i < hlen; i++)
			if (!isalnum((uint8_t)host[i]) && !strchr("-._~", host[i]))
				return -EPROTO; /* reg-name without escapes is enough for DNS names */
		memcpy(tmp, host, hlen);
		tmp[hlen] = 0;
		if (inet_pton(AF_INET, tmp, &t->v4) == 1)
			t->kind = TARGET_IPV4;
		else {
			memcpy(t->name, tmp, hlen + 1);
			t->kind = TARGET_NAME;
		}
	}
	if (port) {
		unsigned long v = 0;

		if (!plen || plen > 5)
			return -EPROTO;
		for (size_t i = 0; i < plen; i++) {
			if (!isdigit((uint8_t)port[i]))
				return -EPROTO;
			v = v * 10 + (unsigned long)(port[i] - '0');
		}
		if (!v || v > 65535)
			return -EPROTO;
		t->port = (uint16_t)v;
	} else if (defport)
		t->port = defport;
	else
		return -EPROTO; /* CONNECT needs host:port (RFC 9110 §9.3.6) */
	return 0;
}

static int parse_line(const char *l, size_t len, struct http_request *r)
{
	const char *sp1 = memchr(l, ' ', len), *sp2;
	size_t rest;
	int rc;

	if (!sp1 || sp1 == l)
		return -EPROTO;
	r->method = l;
	r->method_len = (size_t)(sp1 - l);
	for (size_t i = 0; i < r->method_len; i++)
		if (!is_tchar((uint8_t)l[i]))
			return -EPROTO;
	rest = len - r->method_len - 1;
	sp2 = memchr(sp1 + 1, ' ', rest);
	if (!sp2 || sp2 == sp1 + 1)
		return -EPROTO;
	r->target = sp1 + 1;
	r->target_len = (size_t)(sp2 - r->target);
	r->version = sp2 + 1;
	if ((size_t)(l + len - r->version) != 8 || memcmp(r->version, "HTTP/1.", 7) ||
	    (r->version[7] != '0' && r->version[7] != '1'))
		return -EPROTO;
	r->minor = r->version[7] - '0';
	for (size_t i = 0; i < r->target_len; i++)
		if ((uint8_t)r->target[i] <= ' ' || (uint8_t)r->target[i] >= 0x7f)
			return -EPROTO;
	if (ieq(r->method, r->method_len, "CONNECT")) {
		r->connect = 1;
		return parse_authority(r->target, r->target_len, 0, &r->dst);
	}
	if (r->target_len >= 7 && !strncasecmp(r->target, "http://", 7)) {
		const char *a = r->target + 7, *end = r->target + r->target_len;
		const char *p = a;

		while (p < end && *p != '/' && *p != '?' && *p != '#')
			p++;
		if (memchr(a, '@', (size_t)(p - a)))
			return -EPROTO; /* userinfo is deprecated for http (RFC 9110 §4.2.4) */
		if ((rc = parse_authority(a, (size_t)(p - a), 80, &r->dst)))
			return rc;
		r->path = p < end && *p == '/' ? p : "/";
		r->path_len = p < end && *p == '/' ? (size_t)(end - p) : 1;
		return 0;
	}
	return -ENOTSUP;
}

static int parse_field(const char *l, size_t len, struct http_request *r)
{
	const char *colon = memchr(l, ':', len), *v, *e;

	if (!colon || colon == l)
		return -EPROTO;
	for (const char *c = l; c < colon; c++)
		if (!is_tchar((uint8_t)*c))
			return -EPROTO; /* also rejects obs-fold and "Name :" (RFC 9112 §5.1) */
	if (r->nh == HTTP_MAX_HEADERS)
		return -E2BIG;
	v = colon + 1;
	e = l + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	for (const char *c = v; c < e; c++)
		if ((uint8_t)*c < ' ' && *c != '\t')
			return -EPROTO;
	r->h[r->nh++] = (struct http_header){ l, v, (size_t)(colon - l), (size_t)(e - v) };
	return 0;
}

/* Message framing (RFC 9112 §6.1-6.3): Transfer-Encoding wins; a request
 * with both or with conflicting Content-Lengths is a smuggling attempt. */
static int framing(struct http_request *r)
{
	const struct http_header *te = NULL, *conn;
	int64_t cl = -1;

	for (size_t i = 0; i < r->nh; i++) {
		const struct http_header *h = &r->h[i];

		if (ieq(h->name, h->name_len, "transfer-encoding")) {
			if (te)
				return -EPROTO;
			te = h;
		} else if (ieq(h->name, h->name_len, "content-length")) {
			int64_t v = 0;

			if (!h->value_len || h->value_len > 18)
				return -EPROTO;
			for (size_t k = 0; k < h->value_len; k++) {
				if (!isdigit((uint8_t)h->value[k]))
					return -EPROTO;
				v = v * 10 + (h->value[k] - '0');
			}
			if (cl >= 0 && cl != v)
				return -EPROTO;
			cl = v;
		}
	}
	if (te) {
		if (cl >= 0 || !has_token(te->value, te->value_len, "chunked", 1))
			return -EPROTO;
		r->chunked = 1;
	}
	r->content_length = cl;
	conn = http__header(r, "connection");
	r->close = conn ? has_token(conn->value, conn->value_len, "close", 0) : 0;
	if (r->minor == 0 && !(conn && has_token(conn->value, conn->value_len, "keep-alive", 0)))
		r->close = 1;
	return 0;
}

static int parse_status(const char *l, size_t len, struct http_request *r)
{
	if (len < 12 || memcmp(l, "HTTP/1.", 7) || (l[7] != '0' && l[7] != '1') || l[8] != ' ' ||
	    !isdigit((uint8_t)l[9]) || !isdigit((uint8_t)l[10]) || !isdigit((uint8_t)l[11]) ||
	    (len > 12 && l[12] != ' '))
		return -EPROTO;
	r->minor = l[7] - '0';
	r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	return r->status < 100 ? -EPROTO : 0;
}

static int parse_head(const uint8_t *b, size_t n, size_t max, struct http_request *r,
		      int (*first_line)(const char *, size_t, struct http_request *))
{
	const char *s = (const char *)b, *end, *l;
	size_t lim = n < max ? n : max;
	int rc, first = 1;

	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	if (!n) /* b may be NULL then (an empty evbuffer's pullup) */
		return 0;
	end = memmem(s, lim, "\r\n\r\n", 4);
	if (!end)
		return n >= max ? -E2BIG : 0;
	r->head_len = (size_t)(end - s) + 4;
	/* RFC 9112 §5: each line ends in CRLF; a bare CR or LF is malformed. */
	for (l = s; l < end + 2;) {
		const char *eol = memmem(l, (size_t)(end + 2 - l), "\r\n", 2);
		size_t len = (size_t)(eol - l);

		if (memchr(l, '\r', len) || memchr(l, '\n', len) || memchr(l, 0, len))
			return -EPROTO;
		rc = first ? first_line(l, len, r) : parse_field(l, len, r);
		if (rc)
			return rc;
		first = 0;
		l = eol + 2;
	}
	if ((rc = framing(r)))
		return rc;
	return (int)r->head_len;
}

int http__parse_request(const uint8_t *b, size_t n, size_t max, struct http_request *r)
{
	return parse_head(b, n, max, r, parse_line);
}

int http__parse_response(const uint8_t *b, size_t n, size_t max, struct http_request *r)
{
	return parse_head(b, n, max, r, parse_status);
}

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LF };

int http_chunked__feed(struct http_chunked *st, const uint8_t *b, size_t n)
{
	size_t i = 0;

	while (i < n && !st->done) {
		uint8_t c = b[i];

		switch (st->state) {
		case CH_SIZE:
			if (isxdigit(c)) {
				if (st->left >> 60)
					return -E2BIG;
				st->left = st->left * 16 + (uint64_t)(isdigit(c) ? c - '0' : (c | 0x20) - 'a' + 10);
				if (++st->linelen > 16)
					return -E2BIG;
			} else if (!st->linelen)
				return -EPROTO;
			else if (c == ';' || c == ' ' || c == '\t')
				st->state = CH_EXT;
			else if (c == '\r')
				st->state = CH_SIZE_LF;
			else
				return -EPROTO;
			i++;
			break;
		case CH_EXT:
			if (c == '\r')
				st->state = CH_SIZE_LF;
			else if (c == '\n' || ++st->linelen > 1024)
				return c == '\n' ? -EPROTO : -E2BIG;
			i++;
			break;
		case CH_SIZE_LF:
			if (c != '\n')
				return -EPROTO;
			i++;
			st->linelen = 0;
			st->state = st->left ? CH_DATA : CH_TRAILER;
			break;
		case CH_DATA: {
			size_t take = n - i < st->left ? n - i : (size_t)st->left;

			i += take;
			st->left -= take;
			if (!st->left)
				st->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			if (c != '\r')
				return -EPROTO;
			i++;
			st->state = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (c != '\n')
				return -EPROTO;
			i++;
			st->state = CH_SIZE;
			break;
		case CH_TRAILER: /* trailer fields until an empty line */
			if (c == '\r')
				st->state = CH_TRAILER_LF;
			else if (++st->linelen > 8192)
				return -E2BIG;
			i++;
			break;
		case CH_TRAILER_LF:
			if (c != '\n')
				return -EPROTO;
			i++;
			if (!st->linelen)
				st->done = 1;
			st->linelen = 0;
			st->state = CH_TRAILER;
			break;
		}
	}
	return (int)i;
}
