/* The fleet description: data centers, their routers and servers, the
 * tag-sets their servers egress with, and the egress prefixes with their
 * tags.  Loaded from YAML and fully validated (fleet.c); the planner turns it
 * into a plan (plan.h). */
#ifndef SU_FLEET_H
#define SU_FLEET_H

#include <stdint.h>

#include "lib/addr.h"
#include "lib/err.h"
#include "lib/tags.h"

#define SU_DEFAULT_PORT_LO 1024
#define SU_DEFAULT_PORT_HI 65535
#define SU_DEFAULT_SLICE 2048
#define SU_DEFAULT_DRAIN 600
#define SU_MIN_SLICE 64          /* below this a server runs out of ports at once */
#define SU_MAX_SLICES_PER_SERVER 64
#define SU_MAX_EGRESS_IPS (1u << 24) /* bounds memory: a plan indexes every candidate */

struct su_fleet_server {
	char *name;
	uint32_t addr;
	unsigned line;
};

struct su_fleet_demand {
	struct su_tags tags;
	uint32_t slices; /* per server */
	unsigned line;
};

struct su_fleet_dc {
	char *name;
	uint32_t router;
	struct su_fleet_server *servers;
	uint32_t n_servers;
	struct su_fleet_demand *demands;
	uint32_t n_demands;
	unsigned line;
};

struct su_fleet_prefix {
	struct su_prefix4 prefix;
	struct su_tags tags;
	uint32_t *dcs; /* indexes into fleet->dcs; none: every DC may use it */
	uint32_t n_dcs;
	unsigned line;
};

struct su_fleet {
	uint32_t port_lo, port_hi, slice_size;
	int64_t drain; /* seconds */
	struct su_fleet_dc *dcs;
	uint32_t n_dcs;
	struct su_fleet_prefix *prefixes; /* in file order */
	uint32_t n_prefixes;
};

/* Errors name the file and line: "fleet.yaml:14: server lhr-s2: bad address '10.1.1.300'". */
int su_fleet__load(const char *path, struct su_fleet **out, struct su_err *err);
int su_fleet__parse(const char *buf, size_t len, const char *name, struct su_fleet **out,
		    struct su_err *err);
void su_fleet__free(struct su_fleet *f);

/* Shared with the plan loader. */
bool su_country__valid(const char *code);
int su_duration__parse(const char *s, int64_t *seconds);
/* Slice geometry: index of the first slice wholly inside [lo, hi] and how many. */
int su_slices__geometry(uint32_t lo, uint32_t hi, uint32_t size, uint32_t *first, uint32_t *count);

#endif
