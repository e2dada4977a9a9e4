/* Where a daemon's plan comes from, as Prometheus metrics: the same family
 * names on the router and the agent (softunicast_ROLE_store_*), so one alert
 * rule covers both.  A plan file is always "up": the daemon reads it
 * whenever it changes, and a bad one is refused and logged, not unreachable.
 * With --store the state is the follower's (node_store.c, lib/store/follow.h),
 * read under its lock from the HTTP thread. */
#include <stdio.h>

#include "cli/node_store.h"
#include "daemon/metrics.h"

static void family(FILE *out, char *name, size_t len, const char *role, const char *suffix, const char *type,
		   const char *help)
{
	snprintf(name, len, "softunicast_%s_store_%s", role, suffix);
	su_prom__family(out, name, type, help);
}

void su_prom__store(FILE *out, const char *role)
{
	static const enum su_follow_state states[] = { SU_FOLLOW_CONNECTING, SU_FOLLOW_OK, SU_FOLLOW_UNREACHABLE,
						       SU_FOLLOW_REFUSED };
	struct su_follow_status st = { .state = SU_FOLLOW_OK };
	const char *backend = node_store__status(&st) ? "file" : "etcd";
	char name[96];

	family(out, name, sizeof(name), role, "up", "gauge",
	       "1 when the node follows the current plan of its store (a plan file always); 0 while "
	       "connecting, unreachable or refusing the store's version (running on the last good plan).");
	su_prom__sample(out, name, NULL, st.state == SU_FOLLOW_OK);
	family(out, name, sizeof(name), role, "state", "gauge",
	       "The plan source's state, one series per state (1: the current one).");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		const char *l[] = { "backend", backend, "state", su_follow_state__name(states[i]), NULL };

		su_prom__sample(out, name, l, st.state == states[i]);
	}
	if (backend[0] == 'f')
		return;
	family(out, name, sizeof(name), role, "fetched_serial", "gauge",
	       "Serial of the last view fetched from the store (applied: ..._plan_serial).");
	su_prom__sample_u64(out, name, NULL, st.fetched);
	family(out, name, sizeof(name), role, "fetch_failures_total", "counter",
	       "Fetches of a view from the store that failed (store away, corrupt or missing shards).");
	su_prom__sample_u64(out, name, NULL, st.failures);
}
