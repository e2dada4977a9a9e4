/* The proxy's Prometheus metrics (stats.h): counted by the event loop,
 * rendered by the metrics endpoint's thread (src/daemon/metrics.c). */
#include <string.h>

#include "daemon/metrics.h"
#include "proxy/proxy.h"

static const char *const result_label[] = {
#define L(e, label, is_error) label,
	PROXY_RESULT_LIST(L)
#undef L
};
static const unsigned char result_is_error[] = {
#define L(e, label, is_error) is_error,
	PROXY_RESULT_LIST(L)
#undef L
};
static const char *const error_label[] = {
#define L(e, label) label,
	PROXY_ERROR_LIST(L)
#undef L
};
static const char *const dns_fail_label[] = {
#define L(e, label) label,
	PROXY_DNS_FAIL_LIST(L)
#undef L
};
static const char *const relay_label[] = {
#define L(e, label) label,
	PROXY_RELAY_LIST(L)
#undef L
};

enum proxy_result proxy_result__of(const char *result)
{
	/* about forty words, once per connection: a scan costs less than the
	 * connection's own system calls */
	for (size_t i = 0; result && i < PROXY_RES_OTHER; i++)
		if (!strcmp(result, result_label[i]))
			return (enum proxy_result)i;
	return PROXY_RES_OTHER;
}

void proxy_stats__ended(struct proxy_stats *s, int proto, const char *result)
{
	if (proto < 0 || proto >= PROXY_PROTO_N)
		proto = PROXY_P_UNKNOWN;
	STAT_ADD(s->conns[proto][proxy_result__of(result ? result : "closed")], 1);
}

static void u64(FILE *out, const char *name, const char *type, const char *help, uint64_t v)
{
	su_prom__family(out, name, type, help);
	su_prom__sample_u64(out, name, NULL, v);
}

static void connections(FILE *out, struct proxy_stats *s)
{
	uint64_t err[PROXY_RES__N] = { 0 };

	su_prom__family(out, "softunicast_proxy_connections_total", "counter",
			"Client connections (and kept-alive HTTP requests) ended, by protocol and by result: "
			"the access log's proto= and result=.");
	for (int p = 0; p < PROXY_PROTO_N; p++)
		for (int r = 0; r < PROXY_RES__N; r++) {
			uint64_t v = STAT_GET(s->conns[p][r]);
			const char *l[] = { "protocol", proxy_proto__name((enum proxy_proto)p), "result",
					    result_label[r], NULL };

			err[r] += v;
			/* a zero for every pair would be 160 lines of noise; the
			 * successes of each protocol are always there */
			if (v || r == PROXY_RES_OK)
				su_prom__sample_u64(out, "softunicast_proxy_connections_total", l, v);
		}
	su_prom__family(out, "softunicast_proxy_errors_total", "counter",
			"Failures by reason: every connection result that is an error (all protocols), and "
			"errors of no connection (accept-failed, udp-dropped).");
	for (int r = 0; r < PROXY_RES__N; r++)
		if (result_is_error[r]) {
			const char *l[] = { "reason", result_label[r], NULL };

			su_prom__sample_u64(out, "softunicast_proxy_errors_total", l, err[r]);
		}
	for (int e = 0; e < PROXY_ERR__N; e++) {
		const char *l[] = { "reason", error_label[e], NULL };

		su_prom__sample_u64(out, "softunicast_proxy_errors_total", l, STAT_GET(s->errors[e]));
	}
}

int proxy_stats__render(FILE *out, void *arg)
{
	struct proxy *p = arg;
	struct proxy_stats *s = &p->st;

	u64(out, "softunicast_proxy_open_connections", "gauge", "Client connections open now.",
	    STAT_GET(s->active));
	u64(out, "softunicast_proxy_max_connections", "gauge", "The max-connections limit.", p->cfg.max_conns);
	u64(out, "softunicast_proxy_draining", "gauge",
	    "1 once SIGTERM or SIGINT closed the listeners and the open connections drain.",
	    STAT_GET(s->draining) ? 1 : 0);
	connections(out, s);
	su_prom__family(out, "softunicast_proxy_bytes_total", "counter",
			"Bytes relayed, by direction: up = client to target, down = target to client "
			"(payload: no SOCKS or HTTP proxy headers, no UDP encapsulation).");
	su_prom__sample_u64(out, "softunicast_proxy_bytes_total", (const char *[]){ "direction", "up", NULL },
			    STAT_GET(s->bytes_up));
	su_prom__sample_u64(out, "softunicast_proxy_bytes_total", (const char *[]){ "direction", "down", NULL },
			    STAT_GET(s->bytes_down));
	su_prom__family(out, "softunicast_proxy_relays_total", "counter",
			"TCP relays started, by how they move bytes (splice: zero-copy; buffered: the fallback).");
	for (int m = 0; m < PROXY_RELAY__N; m++)
		su_prom__sample_u64(out, "softunicast_proxy_relays_total", (const char *[]){ "mode", relay_label[m], NULL },
				    STAT_GET(s->relays[m]));
	u64(out, "softunicast_proxy_dns_queries_total", "counter",
	    "Names sent to the DNS servers (cache misses; one A and AAAA lookup each).", STAT_GET(s->dns_queries));
	u64(out, "softunicast_proxy_dns_cache_hits_total", "counter",
	    "Names answered from the cache (positive or negative), within their TTL.", STAT_GET(s->dns_cache_hits));
	su_prom__family(out, "softunicast_proxy_dns_failures_total", "counter",
			"Lookups that gave no address, by reason (not-found: NXDOMAIN or no A/AAAA).");
	for (int f = 0; f < PROXY_DNSF__N; f++)
		su_prom__sample_u64(out, "softunicast_proxy_dns_failures_total",
				    (const char *[]){ "reason", dns_fail_label[f], NULL }, STAT_GET(s->dns_failures[f]));
	return 0;
}
