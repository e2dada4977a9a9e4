/* The agent's Prometheus page: per slice the ports in use and the library's
 * counters, the busiest destinations per slice (exhaustion is per
 * destination: a connect fails once every port of the slice holds a 4-tuple
 * toward the same IP:port), packets the ownership rule blocked and the
 * decapsulator's counters.  Read from what the agent published (the
 * assignment file, replaced atomically, and its shared counters) and from
 * the kernel, so the HTTP thread never touches the agent's own state. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "bpf/decap_abi.h"
#include "daemon/metrics.h"
#include "lib/counters.h"

/* Label values of one slice: ip, slice "lo-hi", state. */
struct slice_labels {
	char ip[INET_ADDRSTRLEN], range[16];
	const char *v[7];
};

static void slice_labels(const struct su_assignment_entry *e, struct slice_labels *l)
{
	struct in_addr in = { htonl(e->ip) };

	inet_ntop(AF_INET, &in, l->ip, sizeof(l->ip));
	snprintf(l->range, sizeof(l->range), "%u-%u", e->lo, e->hi);
	const char *v[7] = { "ip", l->ip, "slice", l->range, "state", su_slice_state__str(e->state), NULL };

	memcpy(l->v, v, sizeof(v));
}

static void gauge_per_slice(FILE *out, const struct su_assignment *a, const char *name, const char *help,
			    const uint32_t *vals, size_t stride)
{
	su_prom__family(out, name, "gauge", help);
	for (uint32_t i = 0; i < a->n; i++) {
		struct slice_labels l;

		slice_labels(&a->v[i], &l);
		su_prom__sample_u64(out, name, l.v, *(const uint32_t *)((const char *)vals + i * stride));
	}
}

static void slices(FILE *out, const struct su_assignment *a, const struct agent_slice_stat *st)
{
	uint32_t *size = calloc(a->n + 1, sizeof(*size));

	gauge_per_slice(out, a, "softunicast_agent_slice_ports_in_use",
			"Distinct source ports of the slice held by a socket.", &st[0].ports, sizeof(*st));
	gauge_per_slice(out, a, "softunicast_agent_slice_sockets", "Sockets on the slice.", &st[0].sockets,
			sizeof(*st));
	for (uint32_t i = 0; size && i < a->n; i++)
		size[i] = (uint32_t)(a->v[i].hi - a->v[i].lo) + 1;
	if (size)
		gauge_per_slice(out, a, "softunicast_agent_slice_size_ports", "Ports in the slice.", size,
				sizeof(*size));
	free(size);
}

static void library_counters(FILE *out, const struct su_assignment *a, const struct su_counters *c)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} f[] = {
		{ "softunicast_agent_slice_connects_total", "Sockets libsoftunicast connected from the slice.",
		  offsetof(struct su_counter_slot, connects) },
		{ "softunicast_agent_slice_allocation_failures_total",
		  "Connects that found no free port of the slice toward their destination.",
		  offsetof(struct su_counter_slot, exhausted) },
		{ "softunicast_agent_slice_udp_conflicts_avoided_total",
		  "UDP 4-tuple collisions with another socket detected and avoided.",
		  offsetof(struct su_counter_slot, conflicts) },
	};

	for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
		su_prom__family(out, f[k].name, "counter", f[k].help);
		for (uint32_t i = 0; i < a->n; i++) {
			const struct su_counter_slot *s = su_counters__find(c, a->v[i].ip, a->v[i].lo);
			struct slice_labels l;

			slice_labels(&a->v[i], &l);
			su_prom__sample_u64(out, f[k].name, l.v, s ? *(const uint64_t *)((const char *)s + f[k].off) : 0);
		}
	}
}

/* Top-N destinations: N bounds the label set whatever the traffic. */
static void destinations(FILE *out, const struct su_assignment *a, const struct agent_usage *u, uint32_t top)
{
	struct agent_dest_use *d = calloc(top ? top : 1, sizeof(*d));
	size_t n = d ? agent_usage__top(u, d, top) : 0;
	static const char *const names[] = { "softunicast_agent_destination_ports_in_use",
					     "softunicast_agent_destination_slice_utilization_ratio" };

	su_prom__family(out, names[0], "gauge",
			"Ports of the slice held toward one destination IP:port (the busiest N only).");
	su_prom__family(out, names[1], "gauge",
			"Share of the slice held toward one destination; connects there fail at 1.");
	for (size_t k = 0; k < 2; k++) {
		for (size_t i = 0; i < n; i++) {
			const struct su_assignment_entry *e = &a->v[d[i].entry];
			struct in_addr in = { htonl(d[i].dst) };
			char dst[INET_ADDRSTRLEN + 8], ip[INET_ADDRSTRLEN];
			struct slice_labels l;

			slice_labels(e, &l);
			inet_ntop(AF_INET, &in, ip, sizeof(ip));
			snprintf(dst, sizeof(dst), "%s:%u", ip, d[i].dport);
			const char *lv[] = { "ip", l.ip, "slice", l.range, "proto",
					     d[i].proto == IPPROTO_TCP ? "tcp" : "udp", "destination", dst, NULL };

			if (k == 0)
				su_prom__sample_u64(out, names[0], lv, d[i].sockets);
			else
				su_prom__sample(out, names[1], lv,
						(double)d[i].sockets / ((unsigned)(e->hi - e->lo) + 1));
		}
	}
	free(d);
}

static void host(FILE *out, int ifindex)
{
	uint64_t blocked, decap[DECAP_STAT_MAX];

	if (!agent_nft__blocked(&blocked)) {
		su_prom__family(out, "softunicast_agent_blocked_packets_total", "counter",
				"Packets from an egress IP with a source port outside this server's slices, dropped.");
		su_prom__sample_u64(out, "softunicast_agent_blocked_packets_total", NULL, blocked);
	}
	if (ifindex > 0 && !agent_decap__stats(ifindex, decap)) {
		su_prom__family(out, "softunicast_agent_decap_packets_total", "counter",
				"GUE packets seen by the decapsulator, by result (labels of decap_abi.h).");
#define DECAP_PROM(name, label, help)                                                              \
	{                                                                                              \
		const char *l[] = { "result", label, NULL };                                           \
		su_prom__sample_u64(out, "softunicast_agent_decap_packets_total", l,                  \
				    decap[DECAP_STAT_##name]);                                         \
	}
		DECAP_STAT_LIST(DECAP_PROM)
#undef DECAP_PROM
	}
}

int agent_metrics__render(FILE *out, void *arg)
{
	const struct agent_metrics *m = arg;
	struct agent_slice_stat *st = NULL;
	struct agent_usage u = { 0 };
	struct su_counters c = { 0 };
	struct su_assignment *a;
	struct su_err err;
	int rc = su_assignment__load(m->assignment, &a, &err);

	if (rc)
		return rc;
	st = calloc(a->n + 1, sizeof(*st));
	rc = st ? agent_usage__collect(a, &u) : -ENOMEM;
	if (!rc) {
		agent_usage__summarize(&u, st);
		su_prom__family(out, "softunicast_agent_plan_serial", "gauge",
				"Serial of the plan the published assignment comes from.");
		su_prom__sample_u64(out, "softunicast_agent_plan_serial", NULL, a->serial);
		su_prom__store(out, "agent");
		slices(out, a, st);
		su_counters__open(m->assignment, &c);
		library_counters(out, a, &c);
		su_counters__close(&c);
		destinations(out, a, &u, m->top);
		host(out, m->ifindex);
	}
	agent_usage__free(&u);
	free(st);
	su_assignment__free(a);
	return rc;
}
