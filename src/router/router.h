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
	int ips, ipv, slots, routers, meta; /* ipv: su_ipv, the routes su_ips indexes */
	int targets; /* -1: leave alone */
	int hosts;   /* su_hosts (anti-spoofing); -1: leave alone */
};

/* One egress IP's route in maps m, read or written under su_ipv's
 * sequence count (src/bpf/abi.h), for fixtures and tools; the sync keeps
 * the maps itself.  0, -ENOENT (not in the maps), -E2BIG (no free index)
 * or -errno. */
int su_router__ip_get(const struct su_router_maps *m, __be32 ip, struct su_ip_val *v);
int su_router__ip_put(const struct su_router_maps *m, __be32 ip, const struct su_ip_val *v);

/* What one sync did, for the log line. */
struct su_router_sync_stats {
	uint32_t ips_local, ips_remote;  /* in the plan */
	uint32_t ips_changed, ips_removed, ips_unchanged;
	uint32_t routers;
	uint32_t targets_removed; /* next-hop/counter entries of departed targets */
	bool routers_first, targets_first; /* old + new did not fit side by side */
};

/* Map capacities (max_entries).  The loader derives them from the plan it
 * starts with (su_router__caps_for_plan): the plan plus half again, so
 * later plans may grow that much before a restart has to resize.  A sync
 * reads them back from the maps.  Ceilings: what one router accepts at
 * all; the IP map allocates entries on use, so its ceiling costs nothing
 * until used. */
#define SU_CAP_MIN 1024
#define SU_CAP_MAX_IPS (1u << 24)     /* 16,777,216 egress IPs */
#define SU_CAP_MAX_SLOTS (1u << 26)   /* slot entries, 4 bytes each: 256 MiB */
#define SU_CAP_MAX_ROUTERS 65536      /* peer DC routers */
#define SU_CAP_MAX_TARGETS (1u << 20) /* servers of the DC + peer routers */

struct su_router_caps {
	uint32_t ips;     /* su_ips entries: every egress IP of the plan */
	uint32_t slots;   /* su_slots entries: 2 regions of slices_per_ip per local IP */
	uint32_t routers; /* su_routers entries: peer routers */
	uint32_t targets; /* su_targets entries per CPU: DC servers + peer routers */
};

/* Capacities for plan p at DC dc, with headroom (see above). */
void su_router__caps_for_plan(const struct su_plan *p, uint32_t dc, struct su_router_caps *c);

/* max_entries of the map behind fd, or -errno. */
int su_router__map_cap(int fd, uint32_t *cap);

/* Can plan p be routed at all by DC dc (slicing, ceilings)?  Returns 0 or
 * -E2BIG / -EINVAL with a sentence in err. */
int su_router__check_plan(const struct su_plan *p, uint32_t dc, struct su_err *err);

/* Makes the maps route as plan p says for DC dc (index into p->dcs).
 * All or nothing: a first pass reads the maps and counts what the apply
 * needs at its peak; if a map is too small the sync returns -E2BIG before
 * writing anything (the previous plan keeps forwarding).  Then: departed
 * IPs are removed; per egress IP the update is atomic: a changed IP's
 * slices are written to a free region of the slot array first, then its
 * entry flips to it, so a packet sees the old or the new assignment, never
 * a mix; routers are added first and removed last (departed first when
 * old and new do not fit side by side); departed targets are pruned.
 * Linear in the plan and the maps.  Returns 0 or -errno (err says why);
 * past the first pass only a kernel failure (-ENOMEM) can stop it. */
int su_router__sync(const struct su_router_maps *m, const struct su_plan *p, uint32_t dc,
		    struct su_router_sync_stats *st, struct su_err *err);

/* Memory of the router's maps.  su_router__memlock: what the kernel
 * charges for the map behind fd now (fdinfo "memlock"), or -errno.
 * su_router__mem_estimate: the same computed, per map, for caps, n_ips
 * egress IPs in the IP map and ncpus possible CPUs (the kernel's own
 * accounting, kernel/bpf/hashtab.c and arraymap.c, x86-64). */
struct su_router_mem {
	uint64_t ips, slots, routers, targets, other, total;
};
int su_router__memlock(int fd, uint64_t *bytes);
void su_router__mem_estimate(const struct su_router_caps *c, uint32_t n_ips, uint32_t ncpus,
			     struct su_router_mem *out);

/* bpffs at /sys/fs/bpf (mounting it if needed) and DIR created. */
int su_router__pin_dir(const char *dir, struct su_err *err);

/* Default pin directory of a DC: SU_ROUTER_PIN_ROOT/DC. */
int su_router__default_pin_dir(const char *dc, char *buf, size_t len);

/* Start-up checks (router_checks.c) of the interfaces ifname[0..n) (NULL
 * entries skipped) in mode xdp_flags and of the next hops of plan p's DC
 * dc: refuses (returns an exit status, message printed) what would lose
 * packets silently (VLAN tags stripped, MTU over the native XDP limit,
 * next hops that cannot take redirects), fixes and logs what it can
 * (GRO/LRO off in skb mode, TX checksum offload off on a veth peer), warns
 * about the rest (veth peers it cannot see, RSS on addresses only). */
int su_router__start_checks(const char *const *ifname, const int *ifindex, int n,
			    uint32_t xdp_flags, const struct su_plan *p, uint32_t dc);
/* roles[i] (SU_IF_DC, SU_IF_BACKBONE) of interface ifindex[i]: does the
 * kernel route this DC's servers, the peer routers, through it?  0 or
 * -errno (netlink). */
int su_router__if_roles(const int *ifindex, int n, const struct su_plan *p, uint32_t dc,
			uint32_t *roles);
/* Largest MTU native XDP on veth accepts (page-size dependent). */
int su_router__veth_xdp_mtu(void);
/* " (why and what to do)" for an XDP attach failure rc, or "". */
const char *su_router__attach_hint(const char *ifname, int rc, uint32_t xdp_flags, char *buf,
				   size_t len);

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
