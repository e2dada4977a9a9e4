/* RFC 8805 geofeed of the egress addresses a plan uses. */
#ifndef SU_GEOFEED_H
#define SU_GEOFEED_H

#include <stdio.h>

#include "lib/plan.h"

struct su_geofeed_entry {
	struct su_prefix4 prefix;
	const char *country, *region, *city; /* borrowed from the plan; "" if absent */
};

/* Every active or draining IP whose tags carry a country, in the fewest
 * CIDRs: each maximal run of consecutive addresses with the same location
 * is split into its minimal aligned blocks. *out is malloc'd. */
int su_geofeed__build(const struct su_plan *p, struct su_geofeed_entry **out, size_t *n);
int su_geofeed__write(const struct su_plan *p, FILE *fp);

/* Every prefix's country, region, city and postal checked as the fleet
 * loader checks them (geo.h), ISO codes against iso-codes: a plan edited by
 * hand or written by an older planner cannot publish a bad line.  0,
 * -EINVAL ("prefix 192.0.2.0/24: region 'NL-ZZ9' is not ...") or -ENOENT
 * (iso-codes missing) with the sentence in err. */
struct su_err;
int su_geofeed__check(const struct su_plan *p, struct su_err *err);

#endif
