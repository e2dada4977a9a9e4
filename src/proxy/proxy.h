/* softunicast proxy: a forward proxy (SOCKS5, SOCKS4a, HTTP) whose egress
 * goes through libsoftunicast with tags chosen per connection.  One file per
 * concern: proxy_main.c (CLI, signals), config.c, listen.c (accept, ACL,
 * limits), conn.c (detection and the per-connection state machine), socks.c,
 * http.c, tags.c, geo.c, dns.c, dial.c (Happy Eyeballs over su_egress), relay.c,
 * log.c; parse_*.c are the pure request parsers. */
#ifndef SU_PROXY_H
#define SU_PROXY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>

#include "proxy/parse.h"
#include "proxy/stats.h"

struct event_base;
struct evconnlistener;
struct bufferevent;
struct event;
struct su_egress;
struct proxy_dns;
struct proxy_geo;

/* ---- configuration (config.c) ------------------------------------------ */
struct proxy_cidr {
	int family;
	uint8_t addr[16];
	unsigned len;
};

struct proxy_user {
	char *name, *password, *tags;
};

struct proxy_config {
	char **listen;            /* "ADDR:PORT" / "[V6]:PORT" */
	size_t nlisten;
	struct proxy_user *users; /* credentials map */
	size_t nusers;
	bool auth_required;       /* refuse clients that offer no credentials */
	bool user_tags;           /* accept "country-GB" / "tags:k=v,..." user names */
	char *base_tags;          /* added to a country found by user name or geolocation */
	char *default_tags;       /* NULL: no tags from anywhere -> refused */
	char *geo_csv, *geo_mmdb;
	char *assignment;         /* NULL: the library's default */
	char *access_log;         /* path, "-" for stdout, NULL for none */
	/* DNS */
	char *dns_tags;           /* the DC's tag-set for the resolver's own queries */
	char **dns_servers;       /* "IP[:PORT]"; none: /etc/resolv.conf */
	size_t ndns_servers;
	unsigned dns_timeout_ms, dns_cache_max, dns_min_ttl, dns_max_ttl;
	/* Happy Eyeballs (RFC 8305 §5: 250 ms recommended Connection Attempt Delay) */
	unsigned attempt_delay_ms, connect_timeout_ms;
	/* limits */
	unsigned max_conns, max_per_client, handshake_ms, idle_ms, max_header, drain_ms;
	struct proxy_cidr *acl;   /* none: everyone */
	size_t nacl;
	bool ipv6_direct;         /* IPv6 targets egress from the server's own address */
	char *metrics;            /* Prometheus endpoint ADDR:PORT, or NULL */
	bool udp;                 /* SOCKS5 UDP ASSOCIATE */
	bool splice;              /* TCP relays with splice(2) (else buffered) */
};

/* Loads a JSON config; errors name the file, line and the offending value. */
int proxy_config__load(const char *path, struct proxy_config *c, char *err, size_t errlen);
void proxy_config__defaults(struct proxy_config *c);
void proxy_config__free(struct proxy_config *c);
int proxy_cidr__parse(const char *s, struct proxy_cidr *out);
bool proxy_cidr__match(const struct proxy_cidr *c, const struct sockaddr *sa);

/* ---- geolocation (geo.c): RFC 8805 CSV and MaxMind .mmdb --------------- */
int proxy_geo__open(const char *csv, const char *mmdb, struct proxy_geo **out, char *err, size_t errlen);
/* Two-letter country of the address, or NULL. */
const char *proxy_geo__country(struct proxy_geo *g, const struct sockaddr *sa);
void proxy_geo__free(struct proxy_geo *g);

/* ---- tags (tags.c) ------------------------------------------------------ */
enum proxy_auth { AUTH_NONE = 0, AUTH_OK, AUTH_BAD };
struct proxy_tagsel {
	char tags[512];
	const char *source; /* "user", "username", "geo", "default" */
	char country[3];
};
/* Checks credentials (user may be NULL) and picks the tags, in the order of
 * docs/proxy.md: configured user -> user name form -> client geolocation ->
 * default.  -EACCES: bad credentials; -ESRCH: no tags from anywhere;
 * -EINVAL: a malformed tag query in the user name. */
int proxy_tags__select(const struct proxy_config *c, struct proxy_geo *g, const char *user,
		       const char *pass, const struct sockaddr *client, struct proxy_tagsel *out);

/* ---- the proxy and its connections -------------------------------------- */
struct su_metrics;
struct proxy {
	struct proxy_config cfg;
	struct event_base *base;
	struct evconnlistener **lev;
	size_t nlev;
	struct su_egress *egress;
	struct proxy_geo *geo;
	struct proxy_dns *dns;
	FILE *log;
	struct event *sigterm, *sigint, *sighup, *drain_timer;
	bool draining;
	struct conn *conns; /* every open connection, to close them at exit */
	struct proxy_stats st; /* stats.h: shared with the metrics thread */
	struct su_metrics *metrics;
	/* per-client connection counts: a small open-addressing table */
	struct client_slot {
		uint8_t addr[16];
		int family;
		unsigned n;
	} *clients;
	size_t nclients_cap;
};

int proxy__run(struct proxy *p);
unsigned *proxy__client_count(struct proxy *p, const struct sockaddr *sa, bool create);

/* ---- DNS (dns.c) -------------------------------------------------------- */
struct proxy_addrs {
	struct sockaddr_storage *v;
	size_t n;
};
typedef void (*proxy_dns_cb)(void *arg, int err, const struct proxy_addrs *a);
int proxy_dns__new(struct proxy *p, struct proxy_dns **out, char *err, size_t errlen);
/* Resolves A and AAAA (from the cache while the TTL lasts); cb runs later,
 * never from inside this call.  Returns a request handle for cancel. */
void *proxy_dns__resolve(struct proxy_dns *d, const char *name, uint16_t port, proxy_dns_cb cb, void *arg);
void proxy_dns__cancel(struct proxy_dns *d, void *req);
void proxy_dns__free(struct proxy_dns *d);

/* ---- dialing (dial.c): Happy Eyeballs over libsoftunicast ---------------- */
struct proxy_dial;
/* cb gets a connected non-blocking TCP socket (fd >= 0) or -errno. */
typedef void (*proxy_dial_cb)(void *arg, int fd, int err);
struct proxy_dial *proxy_dial__start(struct proxy *p, const char *tags, const struct proxy_addrs *a,
				     proxy_dial_cb cb, void *arg);
void proxy_dial__cancel(struct proxy_dial *d);

/* ---- connection (conn.c) ------------------------------------------------- */
void proxy_conn__accept(struct proxy *p, int fd, const struct sockaddr *sa, socklen_t len);
/* Closes every connection (logged as result=shutdown). */
void proxy_conn__close_all(struct proxy *p);

/* ---- access log (log.c) ------------------------------------------------- */
struct proxy_logrec {
	const struct sockaddr *client;
	const char *proto, *user, *tags, *target, *result;
	const struct sockaddr *egress;
	unsigned long long up, down;
	double secs;
};
void proxy_log__write(FILE *fp, const struct proxy_logrec *r);
void proxy_log__addr(const struct sockaddr *sa, char *buf, size_t len);

/* Arms a one-shot timer event for ms milliseconds. */
int proxy__arm(struct event *ev, unsigned ms);

#endif
