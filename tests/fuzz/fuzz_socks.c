/* libFuzzer harness: the SOCKS parsers of the proxy (greeting, RFC 1929
 * auth, RFC 1928 request and UDP header, SOCKS4/4a).  A parser may accept,
 * ask for more or refuse; it must never read past the buffer, claim more
 * bytes than it was given, or accept a message that a prefix of it already
 * completed differently. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/parse_socks.c"

static void check_prefixes(const uint8_t *d, size_t n, int full,
			   int (*parse)(const uint8_t *, size_t))
{
	/* a complete message of length L: every shorter prefix needs more */
	if (full > 0)
		for (size_t k = 0; k < (size_t)full; k++)
			if (parse(d, k) > 0)
				abort();
}

static int p_greet(const uint8_t *d, size_t n)
{
	uint32_t m;

	return socks5__parse_greeting(d, n, &m);
}

static int p_auth(const uint8_t *d, size_t n)
{
	char u[256], p[256];
	int rc = socks5__parse_auth(d, n, u, p);

	if (rc > 0 && (strlen(u) > 255 || strlen(p) > 255 || !u[0]))
		abort();
	return rc;
}

static int p_req(const uint8_t *d, size_t n)
{
	uint8_t cmd;
	struct proxy_target t;
	char buf[300];
	int rc = socks5__parse_request(d, n, &cmd, &t);

	if (rc > 0) {
		if (t.kind == TARGET_NAME && (!t.name[0] || strlen(t.name) > 255))
			abort();
		proxy_target__str(&t, buf, sizeof(buf));
	}
	return rc;
}

static int p_s4(const uint8_t *d, size_t n)
{
	uint8_t cmd;
	struct proxy_target t;
	char user[256];

	return socks4__parse_request(d, n, &cmd, &t, user);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int (*const parsers[])(const uint8_t *, size_t) = { p_greet, p_auth, p_req, p_s4 };
	struct proxy_target t;
	enum proxy_proto pr;
	uint8_t *copy;
	int rc;

	if (!size)
		return 0;
	/* the first byte picks the parser; the copy is exactly sized so ASan
	 * catches a read past the end */
	copy = malloc(size - 1 ? size - 1 : 1);
	memcpy(copy, data + 1, size - 1);
	rc = parsers[data[0] % 4](copy, size - 1);
	if (rc > (int)(size - 1))
		abort();
	check_prefixes(copy, size - 1, rc, parsers[data[0] % 4]);
	rc = socks5__parse_udp(copy, size - 1, &t);
	if (rc > (int)(size - 1))
		abort();
	proxy__detect(copy, size - 1, &pr);
	free(copy);
	return 0;
}
