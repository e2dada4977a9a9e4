/* Request parsers of the forward proxy: pure functions over a byte buffer
 * (no I/O, no allocation), so they can be fuzzed alone (tests/fuzz/fuzz_socks.c,
 * fuzz_http.c).  Each returns the number of bytes the message took (> 0), 0
 * when more bytes are needed, or -errno:
 *   -EPROTO     malformed message (wrong version, bad field, bad syntax)
 *   -E2BIG      the message exceeds a protocol or configured limit
 *   -ENOTSUP    well-formed but a command/method this proxy does not do */
#ifndef SU_PROXY_PARSE_H
#define SU_PROXY_PARSE_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

/* What the first bytes of a connection say (SOCKS versions are the first
 * byte, RFC 1928 §3 and SOCKS4; HTTP starts with an upper-case method). */
enum proxy_proto { PROXY_P_UNKNOWN = 0, PROXY_P_SOCKS4, PROXY_P_SOCKS5, PROXY_P_HTTP };
/* PROXY_P_UNKNOWN with 0 bytes means "need more"; -EPROTO otherwise. */
int proxy__detect(const uint8_t *b, size_t n, enum proxy_proto *out);
const char *proxy_proto__name(enum proxy_proto p);

/* A destination as the client named it.  Addresses in network byte order,
 * port in host order. */
enum target_kind { TARGET_IPV4 = 1, TARGET_NAME = 3, TARGET_IPV6 = 4 }; /* = SOCKS5 ATYP */
struct proxy_target {
	enum target_kind kind;
	struct in_addr v4;
	struct in6_addr v6;
	char name[256]; /* TARGET_NAME: NUL-terminated, 1..255 bytes, no NUL inside */
	uint16_t port;
};
/* "host:port", "[v6]:port" into buf. */
const char *proxy_target__str(const struct proxy_target *t, char *buf, size_t len);

/* ---- SOCKS5 (RFC 1928) and its username/password sub-negotiation (RFC 1929) */
#define SOCKS5_AUTH_NONE 0x00
#define SOCKS5_AUTH_USERPASS 0x02
#define SOCKS5_AUTH_NOACCEPT 0xff
#define SOCKS5_CMD_CONNECT 0x01
#define SOCKS5_CMD_BIND 0x02
#define SOCKS5_CMD_UDP 0x03
/* RFC 1928 §6 reply codes */
enum socks5_rep {
	SOCKS5_OK = 0x00, SOCKS5_FAIL = 0x01, SOCKS5_NOT_ALLOWED = 0x02, SOCKS5_NET_UNREACH = 0x03,
	SOCKS5_HOST_UNREACH = 0x04, SOCKS5_REFUSED = 0x05, SOCKS5_TTL = 0x06,
	SOCKS5_CMD_UNSUPP = 0x07, SOCKS5_ATYP_UNSUPP = 0x08,
};

/* Greeting: VER=5 NMETHODS METHODS...; *methods gets a bit per method < 8
 * (bit 0: no auth, bit 2: user/password). */
int socks5__parse_greeting(const uint8_t *b, size_t n, uint32_t *methods);
/* RFC 1929: VER=1 ULEN UNAME PLEN PASSWD; user and pass NUL-terminated
 * (a NUL inside either is -EPROTO: it would truncate the name). */
int socks5__parse_auth(const uint8_t *b, size_t n, char user[256], char pass[256]);
/* Request: VER=5 CMD RSV=0 ATYP DST.ADDR DST.PORT. */
int socks5__parse_request(const uint8_t *b, size_t n, uint8_t *cmd, struct proxy_target *t);
/* UDP ASSOCIATE datagram header (RFC 1928 §7): RSV(2)=0 FRAG ATYP ADDR PORT;
 * returns the header length.  FRAG != 0 is -ENOTSUP (fragmentation is optional
 * and we drop such datagrams, as §7 allows). */
int socks5__parse_udp(const uint8_t *b, size_t n, struct proxy_target *t);
/* Writes a reply / UDP header for an IPv4 or IPv6 bound address; returns its length. */
size_t socks5__reply(uint8_t *out, uint8_t rep, const struct sockaddr *bound);
size_t socks5__udp_header(uint8_t *out, const struct sockaddr *from);

/* ---- SOCKS4 and SOCKS4a: VER=4 CD DSTPORT DSTIP USERID NUL [HOST NUL] */
#define SOCKS4_GRANTED 90
#define SOCKS4_REJECTED 91
int socks4__parse_request(const uint8_t *b, size_t n, uint8_t *cmd, struct proxy_target *t,
			  char user[256]);

/* ---- HTTP/1.1 proxy requests (RFC 9110, 9112) */
#define HTTP_MAX_HEADERS 64
struct http_header {
	const char *name, *value; /* pointers into the caller's buffer, not NUL-terminated */
	size_t name_len, value_len;
};
struct http_request {
	const char *method, *target, *version;
	size_t method_len, target_len;
	int minor;                         /* HTTP/1.minor */
	int connect;                       /* CONNECT host:port */
	struct proxy_target dst;           /* CONNECT authority or absolute-URI host */
	const char *path;                  /* absolute-URI: path-and-query ("/" if empty) */
	size_t path_len;
	struct http_header h[HTTP_MAX_HEADERS];
	size_t nh;
	size_t head_len;                   /* request line + headers + CRLF CRLF */
	int64_t content_length;            /* -1 if absent */
	int chunked;                       /* Transfer-Encoding ends in chunked */
	int close;                         /* Connection: close, or HTTP/1.0 without keep-alive */
	int status;                        /* responses: the status code */
};
/* Parses one request head of at most max bytes (-E2BIG beyond).  Only
 * CONNECT and absolute-URI ("http://host[:port]/...") targets are proxy
 * requests; an origin-form target is -ENOTSUP, as is https:// in a plain request. */
int http__parse_request(const uint8_t *b, size_t n, size_t max, struct http_request *r);
/* A response head from the target (status line, RFC 9112 §4), same fields. */
int http__parse_response(const uint8_t *b, size_t n, size_t max, struct http_request *r);
/* The header's value if present (case-insensitive name), else NULL. */
const struct http_header *http__header(const struct http_request *r, const char *name);

/* Chunked transfer coding (RFC 9112 §7.1) as a streaming state machine: feed
 * bytes, learn where the body ends.  Returns bytes consumed (the body ends
 * when st->done), or -EPROTO / -E2BIG (a chunk-size line over 1 KiB). */
struct http_chunked {
	int state;
	uint64_t left;
	size_t linelen;
	int done;
};
int http_chunked__feed(struct http_chunked *st, const uint8_t *b, size_t n);

#endif
