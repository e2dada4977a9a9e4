/* The planner: fleet (+ previous plan) → plan.
 *
 * Minimal: each DC gets, per egress tag-set, ceil(slices needed / slices per
 * IP) addresses.  Stable: with a previous plan every assignment that is still
 * valid is kept; new demand takes free slots of the tag-set's IPs first, then
 * new IPs; anything that loses its owner goes draining for `drain` seconds and
 * is not reused before.  Deterministic: same inputs, same plan. */
#ifndef SU_PLANNER_H
#define SU_PLANNER_H

#include "lib/fleet.h"
#include "lib/plan.h"

/* One unmet demand: data center, tag-set, and how many IPs it lacks. */
struct su_shortfall {
	char *dc;
	char *tags;
	uint32_t ips_short;
	uint64_t candidates; /* free addresses matching the tag-set when planning began */
};

struct su_plan_report {
	struct su_shortfall *v;
	uint32_t n;
};

/* Returns 0 and *out; -ENOSPC with `report` filled when demand does not fit
 * (no plan); other -errno with err set. `now` is unix seconds. */
int su_planner__run(const struct su_fleet *f, const struct su_plan *prev, int64_t now,
		    struct su_plan **out, struct su_plan_report *report, struct su_err *err);
void su_plan_report__free(struct su_plan_report *r);

#endif
