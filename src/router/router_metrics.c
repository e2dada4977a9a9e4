/* The router's Prometheus page: every counter of abi.h's SU_STAT_LIST (its
 * labels are the metric labels), packets and bytes per encapsulation target,
 * and the plan in force — all read from the pinned maps, like `router stats`. */
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/metrics.h"
#include "router/router.h"

static void counters(FILE *out, const uint64_t *c)
{
	su_prom__family(out, "softunicast_router_packets_total", "counter",
			"Packets to egress IPs by outcome: each packet counts in exactly one (drop_* are "
			"drops, by reason).");
	for (int i = 0; i < SU_STAT_MAX; i++) {
		const char *l[] = { "outcome", su_stat_desc[i].label, NULL };

		if (!strcmp(su_stat_desc[i].kind, "outcome"))
			su_prom__sample_u64(out, "softunicast_router_packets_total", l, c[i]);
	}
	su_prom__family(out, "softunicast_router_path_packets_total", "counter",
			"Packets by path taken on the way (backbone, fragments, ICMP); overlaps the outcomes.");
	for (int i = 0; i < SU_STAT_MAX; i++) {
		const char *l[] = { "path", su_stat_desc[i].label, NULL };

		if (strcmp(su_stat_desc[i].kind, "outcome"))
			su_prom__sample_u64(out, "softunicast_router_path_packets_total", l, c[i]);
	}
}

/* Targets are this DC's servers and the peer DCs' routers: bounded by the
 * plan, not by traffic, so the address is a safe label. */
static void targets(FILE *out, const struct su_router_target *t, size_t n)
{
	char a[INET_ADDRSTRLEN];

	su_prom__family(out, "softunicast_router_target_packets_total", "counter",
			"Packets encapsulated to each target (a server of this DC or another DC's router).");
	for (size_t i = 0; i < n; i++) {
		const char *l[] = { "target", inet_ntop(AF_INET, &t[i].addr, a, sizeof(a)), NULL };

		su_prom__sample_u64(out, "softunicast_router_target_packets_total", l, t[i].packets);
	}
	su_prom__family(out, "softunicast_router_target_bytes_total", "counter",
			"Bytes (inner packets) encapsulated to each target.");
	for (size_t i = 0; i < n; i++) {
		const char *l[] = { "target", inet_ntop(AF_INET, &t[i].addr, a, sizeof(a)), NULL };

		su_prom__sample_u64(out, "softunicast_router_target_bytes_total", l, t[i].bytes);
	}
}

static void plan(FILE *out, const struct su_meta *m)
{
	char ifn[IF_NAMESIZE] = "";

	su_prom__family(out, "softunicast_router_plan_serial", "gauge", "Serial of the plan the maps hold.");
	su_prom__sample_u64(out, "softunicast_router_plan_serial", NULL, m->plan_serial);
	su_prom__family(out, "softunicast_router_plan_applied_timestamp_seconds", "gauge",
			"When the maps were last synced with a plan (unix seconds).");
	su_prom__sample_u64(out, "softunicast_router_plan_applied_timestamp_seconds", NULL, m->loaded_at);
	su_prom__family(out, "softunicast_router_info", "gauge", "The router's attachment (value 1).");
	if (!m->ifindex[0] || !if_indextoname(m->ifindex[0], ifn))
		ifn[0] = 0;
	const char *l[] = { "iface", ifn, "mode", m->xdp_flags & XDP_FLAGS_SKB_MODE ? "skb" : "native", NULL };

	su_prom__sample(out, "softunicast_router_info", l, 1);
}

int router_metrics__render(FILE *out, void *pin_dir)
{
	uint64_t c[SU_STAT_MAX];
	struct su_router_target *t = NULL;
	struct su_meta m;
	size_t n = 0;
	int rc = router_stats__counters(pin_dir, c);

	if (!rc)
		rc = router_stats__targets(pin_dir, &t, &n);
	if (rc)
		return rc;
	counters(out, c);
	targets(out, t, n);
	free(t);
	if (!router_stats__meta(pin_dir, &m))
		plan(out, &m);
	su_prom__store(out, "router");
	return 0;
}
