/* libFuzzer harness for the fleet loader (src/lib/fleet.c) and, on what it
 * accepts, the planner (src/lib/planner.c).
 *
 * The loader must reject any input with an error message and no leak; what
 * it accepts must be something the planner can run on without crashing: a
 * plan, or -ENOSPC with a shortfall report.  The plan the planner returns is
 * checked for the invariants the router and the agent rely on (every slot
 * owned by a server of the IP's DC, every active IP inside a prefix that
 * satisfies its tag-set) and then re-planned with itself as the previous
 * plan: unchanged demand must move nothing.
 *
 * Planning is skipped when the prefixes hold more than 65536 addresses:
 * the planner keeps a bitmap per prefix, and a /8 would make every run take
 * milliseconds without reaching any new code. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fleet.h"
#include "lib/planner.h"

#define MAX_PLAN_ADDRS 65536u
#define NOW 1700000000

static uint64_t fleet_addrs(const struct su_fleet *f)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < f->n_prefixes; i++)
		n += su_prefix__size(&f->prefixes[i].prefix);
	return n;
}

static void check_plan(const struct su_plan *p)
{
	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *ip = &p->ips[i];
		const struct su_plan_prefix *px;

		if (ip->dc >= p->n_dcs || ip->demand >= p->n_demands || ip->prefix >= p->n_prefixes)
			abort();
		if (i && p->ips[i - 1].ip >= ip->ip)
			abort(); /* not sorted, or listed twice */
		px = &p->prefixes[ip->prefix];
		if (!su_prefix__contains(&px->prefix, ip->ip) || p->demands[ip->demand].dc != ip->dc)
			abort();
		if (ip->state == SU_ACTIVE && !su_tags__contains(&px->tags, &p->demands[ip->demand].tags))
			abort();
		if (su_plan__find_ip(p, ip->ip) != ip)
			abort();
		for (uint32_t s = 0; s < p->slices_per_ip; s++) {
			const struct su_plan_slot *slot = &p->slots[ip->first_slot + s];

			if (slot->state == SU_FREE)
				continue;
			if (slot->server < 0 || (uint32_t)slot->server >= p->n_servers ||
			    p->servers[slot->server].dc != ip->dc)
				abort();
			if (slot->state == SU_ACTIVE && ip->state != SU_ACTIVE)
				abort();
		}
	}
}

/* Same fleet, the plan as the previous one: nothing may change. */
static void check_stable(const struct su_fleet *f, const struct su_plan *p)
{
	struct su_plan_report report;
	struct su_plan *again = NULL;
	struct su_err err;
	int ret = su_planner__run(f, p, NOW, &again, &report, &err);

	if (ret) {
		fprintf(stderr, "re-plan of an unchanged fleet failed: %s\n", err.msg);
		abort();
	}
	if (!su_plan__equal(p, again) || again->serial != p->serial) {
		fprintf(stderr, "re-plan of an unchanged fleet changed the plan\n");
		abort();
	}
	su_plan_report__free(&report);
	su_plan__free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct su_plan_report report;
	struct su_fleet *f = NULL;
	struct su_plan *p = NULL;
	struct su_err err;
	int ret;

	if (size > 16384)
		return 0;
	err.msg[0] = '\0';
	ret = su_fleet__parse((const char *)data, size, "fuzz.yaml", &f, &err);
	if (ret) {
		if (f || ret >= 0 || (ret != -ENOMEM && !err.msg[0]))
			abort(); /* a rejection must say why and hand back nothing */
		return 0;
	}
	if (fleet_addrs(f) <= MAX_PLAN_ADDRS) {
		ret = su_planner__run(f, NULL, NOW, &p, &report, &err);
		if (ret == -ENOSPC && (p || !report.n))
			abort();
		if (!ret) {
			check_plan(p);
			check_stable(f, p);
		}
		su_plan_report__free(&report);
		su_plan__free(p);
	}
	su_fleet__free(f);
	return 0;
}
