/* softunicast router, userspace side: loads router.bpf.c, keeps its pinned
 * maps in step with the plan, and reads them back for `stats`/`detach`. */
#ifndef SU_ROUTER_H
#define SU_ROUTER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bpf/abi.h"
#include "lib/err.h"
#include "lib/plan.h"

#define SU_ROUTER_PIN_ROOT "/sys/fs/bpf/softunicast"
#define SU_ROUTER_PROG_NAME "su_router"

/* File descriptors of the maps the sync writes. */
struct su_router_maps {
	int ips, slots, routers, meta;
	int targets; /* -1: leave alone */
};

/* What one sync did, for the log line. */
struct su_router_sync_stats {
	uint32_t ips_local, ips_remote;  /* in the plan */
	uint32_t ips_changed, ips_removed, ips_unchanged;
	uint32_t routers;
	uint32_t targets_removed; /* next-hop/counter entries of departed targets */
};

/* Router geometry check: does the plan's slicing fit the maps?  Returns 0
 * or -E2BIG / -EINVAL with a sentence in err. */
int su_router__check_plan(const struct su_plan *p, uint32_t dc, struct su_err *err);

/* Makes the maps route as plan p says for DC dc (index into p->dcs).
 * Per egress IP the update is atomic: a changed IP's slices are written to
 * a free region of the slot array first, then its entry flips to it, so a
 * packet sees the old or the new assignment, never a mix.  Routers are
 * added first and removed last.  Returns 0 or -errno (err says why); on
 * failure the maps are left consistent per IP, part old, part new. */
int su_router__sync(const struct su_router_maps *m, const struct su_plan *p, uint32_t dc,
		    struct su_router_sync_stats *st, struct su_err *err);

/* bpffs at /sys/fs/bpf (mounting it if needed) and DIR created. */
int su_router__pin_dir(const char *dir, struct su_err *err);

/* Default pin directory of a DC: SU_ROUTER_PIN_ROOT/DC. */
int su_router__default_pin_dir(const char *dc, char *buf, size_t len);

/* Reading a router back from its pins alone (router_stats.c): no running
 * router process is needed, and a reader in another thread (the metrics
 * endpoint) races nothing.  0 or -errno (-ENOENT: no router pinned there). */
struct su_router_target {
	__be32 addr; /* server or peer router, network order */
	uint64_t packets, bytes;
};
int router_stats__meta(const char *dir, struct su_meta *m);
/* Per-CPU counters summed: out[SU_STAT_MAX]. */
int router_stats__counters(const char *dir, uint64_t out[SU_STAT_MAX]);
/* Every target with its packets and bytes, busiest first; *out malloc'd. */
int router_stats__targets(const char *dir, struct su_router_target **out, size_t *n_out);

/* Prometheus page of the router pinned in dir (router_metrics.c), for
 * su_metrics__start(); arg is the pin directory. */
int router_metrics__render(FILE *out, void *pin_dir);

/* Sub-commands (router_stats.c). */
int router_stats_main(int argc, char **argv);
int router_detach_main(int argc, char **argv);

#endif
