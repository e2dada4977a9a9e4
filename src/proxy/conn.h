/* One client connection of the proxy (internal to src/proxy). */
#ifndef SU_PROXY_CONN_H
#define SU_PROXY_CONN_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxy/proxy.h"

enum conn_state {
	ST_DETECT,
	ST_SOCKS5_GREETING,
	ST_SOCKS5_AUTH,
	ST_SOCKS5_REQUEST,
	ST_SOCKS4_REQUEST,
	ST_HTTP_HEAD,
	ST_DIALING,     /* DNS and connect under way */
	ST_RELAY,       /* bytes both ways (SOCKS CONNECT, HTTP CONNECT) */
	ST_HTTP_FORWARD, /* plain HTTP: one request/response exchange */
	ST_UDP,         /* SOCKS5 UDP ASSOCIATE: control connection held open */
	ST_CLOSING,     /* error reply written, closing once flushed */
};

struct http_fwd; /* http.c */
struct udp_assoc; /* udp.c */
struct splice_relay; /* splice.c */

struct conn {
	struct proxy *p;
	struct bufferevent *cli, *up;
	struct sockaddr_storage client, egress;
	socklen_t client_len;
	enum proxy_proto proto;
	enum conn_state st;
	char user[256], pass[256];
	bool have_user;
	struct proxy_tagsel tags;
	struct proxy_target target;
	char target_str[300];
	void *dns_req;
	struct proxy_dial *dial;
	struct event *timer;      /* handshake, then idle */
	struct timespec t0, last;
	unsigned long long up_bytes, down_bytes;
	const char *result;
	bool cli_eof, up_eof, logged;
	unsigned *client_count;
	/* what to do when the target is connected (fd >= 0) or not (err) */
	void (*on_dialed)(struct conn *c, int err);
	struct http_fwd *http;
	struct evbuffer *http_head; /* plain HTTP: the rewritten head, until connected */
	struct udp_assoc *udp;
	struct splice_relay *splice; /* splice.c, while a zero-copy relay runs */
	struct conn *next, *prev;
};

/* conn.c */
void conn_close(struct conn *c);
/* Writes nothing more; closes once the reply already queued is flushed
 * (or the handshake timer fires). result goes to the access log. */
void conn_fail(struct conn *c, const char *result);
/* Picks tags (credentials, geolocation, default); <0 as proxy_tags__select. */
int conn_select_tags(struct conn *c);
/* Resolves (if a name) and connects c->target with c->tags; on_dialed runs
 * with c->up set (0) or -errno. */
void conn_dial(struct conn *c);
const char *conn_errname(int err);
void conn_touch(struct conn *c);
/* Adds n relayed bytes (up: client -> target) to c and to the metrics. */
void conn_bytes(struct conn *c, bool up, size_t n);

/* socks.c */
void socks5_read(struct conn *c);
void socks4_read(struct conn *c);
/* http.c */
void http_read(struct conn *c);
void http_free(struct conn *c);
/* relay.c: relay_start picks splice (TCP <-> TCP, `splice yes`) or the
 * buffered relay; relay_buffered is the latter, also splice.c's fallback */
void relay_start(struct conn *c);
void relay_buffered(struct conn *c);
/* splice.c: 0, or -errno and c left as it was (then relay buffered) */
int splice_start(struct conn *c);
void splice_free(struct conn *c);
/* udp.c */
int udp_start(struct conn *c);
void udp_free(struct conn *c);

#endif
