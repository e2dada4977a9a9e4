/* The proxy's counters, served by `softunicast proxy --metrics ADDR:PORT`
 * (src/daemon/metrics.c, libmicrohttpd) in the Prometheus text format.
 *
 * Every counter is written by the event loop's thread and read by the HTTP
 * thread of the metrics endpoint, so both sides use __atomic operations
 * (relaxed: each value is independent; a scrape need not be a snapshot).
 *
 * The lists are X-macros whose string is the metric label, as the access
 * log spells it: a result named in the log is the same word in the metrics.
 * Append only (dashboards and alerts name these labels). */
#ifndef SU_PROXY_STATS_H
#define SU_PROXY_STATS_H

#include <stdint.h>
#include <stdio.h>

/* How a client connection (or one kept-alive HTTP request) ended: the access
 * log's result=.  X(ENUM, label, is_error): is_error 0 for the ends of a
 * served or harmlessly abandoned connection. */
#define PROXY_RESULT_LIST(X)                                   \
	X(OK, "ok", 0)                                         \
	X(CLOSED, "closed", 0)                                 \
	X(SHUTDOWN, "shutdown", 0)                             \
	X(CLIENT_CLOSED, "client-closed", 0)                   \
	X(CLIENT_CLOSED_EARLY, "client-closed-early", 1)       \
	X(CLIENT_ERROR, "client-error", 1)                     \
	X(CLIENT_RESET, "client-reset", 1)                     \
	X(TARGET_RESET, "target-reset", 1)                     \
	X(TARGET_CLOSED, "target-closed", 1)                   \
	X(TARGET_CLOSED_EARLY, "target-closed-early", 1)       \
	X(IDLE_TIMEOUT, "idle-timeout", 1)                     \
	X(HANDSHAKE_TIMEOUT, "handshake-timeout", 1)           \
	X(ACL_DENIED, "acl-denied", 1)                         \
	X(CONNECTION_LIMIT, "connection-limit", 1)             \
	X(BAD_PROTOCOL, "bad-protocol", 1)                     \
	X(BAD_REQUEST, "bad-request", 1)                       \
	X(BAD_AUTH_REQUEST, "bad-auth-request", 1)             \
	X(NO_ACCEPTABLE_AUTH, "no-acceptable-auth", 1)         \
	X(AUTH_FAILED, "auth-failed", 1)                       \
	X(HEADER_TOO_LARGE, "header-too-large", 1)             \
	X(NOT_A_PROXY_REQUEST, "not-a-proxy-request", 1)       \
	X(BAD_CHUNKED_BODY, "bad-chunked-body", 1)             \
	X(BAD_CHUNKED_RESPONSE, "bad-chunked-response", 1)     \
	X(BAD_RESPONSE, "bad-response", 1)                     \
	X(BAD_TAGS, "bad-tags", 1)                             \
	X(NO_TAGS, "no-tags", 1)                               \
	X(NO_EGRESS_FOR_TAGS, "no-egress-for-tags", 1)         \
	X(SLICE_EXHAUSTED, "slice-exhausted", 1)               \
	X(DNS_NOT_FOUND, "dns-not-found", 1)                   \
	X(DNS_TIMEOUT, "dns-timeout", 1)                       \
	X(DNS_FAILED, "dns-failed", 1)                         \
	X(ADDRESS_FAMILY_UNSUPPORTED, "address-family-unsupported", 1) \
	X(REFUSED, "refused", 1)                               \
	X(TIMEOUT, "timeout", 1)                               \
	X(HOST_UNREACHABLE, "host-unreachable", 1)             \
	X(NETWORK_UNREACHABLE, "network-unreachable", 1)       \
	X(CONNECT_FAILED, "connect-failed", 1)                 \
	X(UDP_DISABLED, "udp-disabled", 1)                     \
	X(UDP_FAILED, "udp-failed", 1)                         \
	X(OUT_OF_MEMORY, "out-of-memory", 1)                   \
	X(OTHER, "other", 1) /* a result missing from this list: a bug, counted */

enum proxy_result {
#define PROXY_RESULT_ENUM(e, label, is_error) PROXY_RES_##e,
	PROXY_RESULT_LIST(PROXY_RESULT_ENUM)
#undef PROXY_RESULT_ENUM
	PROXY_RES__N
};

/* The same protocols as the access log's proto= (parse.h's enum order). */
#define PROXY_PROTO_N 4

/* Errors that belong to no connection.  X(ENUM, label). */
#define PROXY_ERROR_LIST(X)                                    \
	X(ACCEPT, "accept-failed") /* accept(2) failed: EMFILE, ENFILE, ENOBUFS */ \
	X(UDP_DROPPED, "udp-dropped") /* a client datagram not sent on: no egress, no name, send(2) failed */

enum proxy_error {
#define PROXY_ERROR_ENUM(e, label) PROXY_ERR_##e,
	PROXY_ERROR_LIST(PROXY_ERROR_ENUM)
#undef PROXY_ERROR_ENUM
	PROXY_ERR__N
};

/* Why the resolver gave no address.  X(ENUM, label). */
#define PROXY_DNS_FAIL_LIST(X)                                 \
	X(NOT_FOUND, "not-found") /* NXDOMAIN or no A/AAAA record */ \
	X(TIMEOUT, "timeout")                                  \
	X(OTHER, "other")

enum proxy_dns_fail {
#define PROXY_DNS_FAIL_ENUM(e, label) PROXY_DNSF_##e,
	PROXY_DNS_FAIL_LIST(PROXY_DNS_FAIL_ENUM)
#undef PROXY_DNS_FAIL_ENUM
	PROXY_DNSF__N
};

/* How a relay moves its bytes (relay.c).  X(ENUM, label). */
#define PROXY_RELAY_LIST(X)                                    \
	X(SPLICE, "splice") /* splice(2) through a pipe per direction, zero-copy */ \
	X(BUFFERED, "buffered") /* libevent bufferevents (userspace copies) */

enum proxy_relay_mode {
#define PROXY_RELAY_ENUM(e, label) PROXY_RELAY_##e,
	PROXY_RELAY_LIST(PROXY_RELAY_ENUM)
#undef PROXY_RELAY_ENUM
	PROXY_RELAY__N
};

struct proxy_stats {
	/* gauges (written by the loop only) */
	uint64_t active;      /* open client connections */
	uint64_t draining;    /* 1 once SIGTERM/SIGINT stopped the listeners */
	/* counters */
	uint64_t conns[PROXY_PROTO_N][PROXY_RES__N];
	uint64_t errors[PROXY_ERR__N];
	uint64_t bytes_up, bytes_down; /* client -> target, target -> client */
	uint64_t dns_queries, dns_cache_hits, dns_failures[PROXY_DNSF__N];
	uint64_t relays[PROXY_RELAY__N];
};

#define STAT_ADD(field, n) __atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED)
#define STAT_SUB(field, n) __atomic_fetch_sub(&(field), (uint64_t)(n), __ATOMIC_RELAXED)
#define STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* The enum of a result word (PROXY_RES_OTHER for one not in the list). */
enum proxy_result proxy_result__of(const char *result);
/* Counts one ended connection or request: proto an enum proxy_proto. */
void proxy_stats__ended(struct proxy_stats *s, int proto, const char *result);
/* The metrics page (su_metrics_render_fn); arg is the struct proxy. */
int proxy_stats__render(FILE *out, void *arg);

#endif
