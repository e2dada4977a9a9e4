/* libFuzzer harness: the proxy's HTTP request and response head parsers and
 * the chunked-body state machine.  Accepted heads must point inside the
 * buffer, end at CRLF CRLF, and have one framing; a chunked body fed in
 * two pieces must end at the same place as fed whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/parse_http.c"
#include "proxy/parse_socks.c"

static void inside(const char *p, size_t len, const uint8_t *b, size_t n)
{
	if (p && (p < (const char *)b || p + len > (const char *)b + n))
		abort();
}

static void check(const struct http_request *r, const uint8_t *b, size_t n, int rc)
{
	if (rc <= 0)
		return;
	if ((size_t)rc > n || memcmp(b + rc - 4, "\r\n\r\n", 4))
		abort();
	if (r->chunked && r->content_length >= 0)
		abort();
	for (size_t i = 0; i < r->nh; i++) {
		inside(r->h[i].name, r->h[i].name_len, b, (size_t)rc);
		inside(r->h[i].value, r->h[i].value_len, b, (size_t)rc);
	}
	if (r->method)
		inside(r->target, r->target_len, b, (size_t)rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request r;
	struct http_chunked a = { 0 }, b = { 0 };
	uint8_t *copy = malloc(size ? size : 1);
	int rc, ra, rb1, rb2 = 0;
	size_t half = size / 2;

	memcpy(copy, data, size);
	rc = http__parse_request(copy, size, 4096, &r);
	check(&r, copy, size, rc);
	rc = http__parse_response(copy, size, 4096, &r);
	check(&r, copy, size, rc);
	ra = http_chunked__feed(&a, copy, size);
	rb1 = http_chunked__feed(&b, copy, half);
	if (rb1 >= 0 && !b.done)
		rb2 = http_chunked__feed(&b, copy + half, size - half);
	/* the same bytes give the same verdict however they are split */
	if (ra >= 0 && rb1 >= 0 && rb2 >= 0) {
		int end_b = b.done && rb1 < (int)half ? rb1 : (int)half + rb2;

		if (a.done != b.done || (a.done && ra != end_b))
			abort();
	}
	free(copy);
	return 0;
}
