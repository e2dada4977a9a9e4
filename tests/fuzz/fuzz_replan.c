/* libFuzzer harness for the planner's carry-over (src/lib/planner.c) fed a
 * previous plan from the snapshot loader (src/lib/snapshot.c).
 *
 * `softunicast plan --previous FILE` trusts whatever the loader accepts, and
 * the previous plan may be stale, hand-edited or from another fleet.  The
 * input is a plan snapshot; when it loads, the bundled example fleet is
 * planned against it at a time (picked by the input's length) before, across
 * or after its drain deadlines.  The planner may refuse (-ENOSPC: demand
 * does not fit beside what still drains; -EXDEV: other slice geometry) but
 * must not crash or leak, and a plan it returns must satisfy every invariant
 * (plan_check.h) and be a fixed point: re-planning it changes nothing. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fleet.h"
#include "lib/planner.h"
#include "plan_check.h"

#define NOW 1700000000

/* examples/fleet.yaml, which the seed plans were made from. */
static const char k_fleet[] =
	"ports: {range: 1024-65535, slice: 2048}\n"
	"drain: 10m\n"
	"datacenters:\n"
	"  lhr:\n"
	"    router: 10.1.0.1\n"
	"    servers: {lhr-s1: 10.1.1.1, lhr-s2: 10.1.1.2, lhr-s3: 10.1.1.3}\n"
	"    egress:\n"
	"      - {service: cdn}\n"
	"      - {service: warp, country: GB}\n"
	"      - {service: warp, country: IE, slices: 2}\n"
	"  cdg:\n"
	"    router: 10.2.0.1\n"
	"    servers: {cdg-s1: 10.2.1.1, cdg-s2: 10.2.1.2, cdg-s3: 10.2.1.3}\n"
	"    egress:\n"
	"      - {service: cdn}\n"
	"      - {service: warp, country: FR}\n"
	"      - {service: warp, country: GB}\n"
	"prefixes:\n"
	"  - {prefix: 198.51.100.0/26, tags: {service: warp, country: GB, region: GB-ENG, city: London}}\n"
	"  - {prefix: 198.51.100.64/27, tags: {service: warp, country: IE, region: IE-L, city: Dublin}}\n"
	"  - {prefix: 198.51.100.96/27, tags: {service: warp, country: FR, region: FR-IDF, city: Paris}}\n"
	"  - {prefix: 203.0.113.0/28, tags: {service: cdn}, datacenters: [lhr]}\n"
	"  - {prefix: 203.0.113.16/28, tags: {service: cdn}, datacenters: [cdg]}\n";

static struct su_fleet *fleet(void)
{
	static struct su_fleet *f;
	struct su_err err;

	if (!f && su_fleet__parse(k_fleet, sizeof(k_fleet) - 1, "example", &f, &err)) {
		fprintf(stderr, "fuzz: bundled fleet: %s\n", err.msg);
		abort();
	}
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int64_t offsets[] = { 0, 100, 650, 900, 100000 };
	int64_t now = NOW + offsets[size % (sizeof(offsets) / sizeof(offsets[0]))];
	struct su_plan *prev = NULL, *p = NULL, *again = NULL;
	struct su_plan_report report;
	struct su_err err;
	int ret;

	if (size > 65536 || su_plan__parse((const char *)data, size, "fuzz.plan", &prev, &err))
		return 0;
	ret = su_planner__run(fleet(), prev, now, &p, &report, &err);
	su_plan_report__free(&report);
	if (ret && ret != -ENOSPC && ret != -EXDEV) {
		fprintf(stderr, "fuzz: planning against a loadable previous plan failed: %s\n", err.msg);
		abort();
	}
	if (!ret) {
		check_plan(p);
		check_round_trip(p);
		ret = su_planner__run(fleet(), p, now, &again, &report, &err);
		su_plan_report__free(&report);
		if (ret || !su_plan__equal(p, again) || again->serial != p->serial) {
			fprintf(stderr, "fuzz: re-planning a fresh plan changed it (%s)\n", ret ? err.msg : "differs");
			abort();
		}
	}
	su_plan__free(again);
	su_plan__free(p);
	su_plan__free(prev);
	return 0;
}
