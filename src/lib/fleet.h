/* The fleet description: data centers, their routers and servers, the
 * tag-sets their servers egress with, and the egress prefixes with their
 * tags.  Loaded from YAML and fully validated (fleet.c); the planner turns it
 * into a plan (plan.h). */
#ifndef SU_FLEET_H
#define SU_FLEET_H

#include <stdbool.h>
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

/* A freed slice must not go to another server while origins may still hold
 * TIME_WAIT state for its ports: 2 x MSL, with RFC 9293's MSL of 2 minutes
 * (Linux holds 60 s, other systems up to 4 minutes).  A fleet may go below
 * it only with `allow_short_drain: true`. */
#define SU_MIN_DRAIN 240

/* Limits on a fleet file, checked on libyaml's event stream before any
 * document is built, so a hostile file is refused in milliseconds (the
 * scanner is quadratic in flow nesting: 80 KB of '[' took 14 s to reject).
 * A 30,000-server fleet is about 2 MB, 250,000 nodes, depth 5. */
#define SU_FLEET_MAX_BYTES (16u << 20) /* whole file */
#define SU_FLEET_MAX_DEPTH 16          /* nested lists and mappings */
#define SU_FLEET_MAX_SCALAR 1024       /* bytes in one key or value */
#define SU_FLEET_MAX_NODES 2000000     /* values, lists and mappings */

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
	int64_t drain; /* seconds; below SU_MIN_DRAIN only with allow_short_drain */
	bool allow_short_drain;
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

/* "90", "10m", "1h30m" (s, m, h, d); at most a year.  A bare number must be
 * plain decimal: -EDOM for YAML-1.1-ambiguous forms ("010", "1:30"). */
int su_duration__parse(const char *s, int64_t *seconds);
/* Slice geometry: index of the first slice wholly inside [lo, hi] and how many. */
int su_slices__geometry(uint32_t lo, uint32_t hi, uint32_t size, uint32_t *first, uint32_t *count);

#endif
