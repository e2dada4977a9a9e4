/* The address plan: which data center owns each egress IP and which server
 * owns each port slice of it.  Built by the planner (planner.c) from a fleet
 * (fleet.h), stored as a versioned text snapshot (snapshot.c), and read by
 * the router, the agent and the query commands.
 *
 * Addresses are host byte order.  Slices are aligned on the slice size:
 * port P belongs to slice P >> slice_shift, which is what the router's array
 * index is; only slices wholly inside the port range are used. */
#ifndef SU_PLAN_H
#define SU_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/addr.h"
#include "lib/err.h"
#include "lib/tags.h"

#define SU_PLAN_FORMAT 1

enum su_state {
	SU_FREE = 0,     /* slot unowned (IPs are never free: free IPs are absent) */
	SU_ACTIVE = 1,
	SU_DRAINING = 2, /* still routed to its old owner until `deadline` */
};

struct su_plan_dc {
	char *name;
	uint32_t router; /* backbone address of the DC's router */
	bool retired;    /* gone from the fleet; kept while its IPs drain */
};

struct su_plan_server {
	char *name;
	uint32_t addr;
	uint32_t dc;   /* index into plan->dcs */
	bool retired;  /* gone from the fleet; kept while its slices drain */
};

struct su_plan_prefix {
	struct su_prefix4 prefix;
	struct su_tags tags;
	uint32_t *dcs;  /* allow-list (indexes into plan->dcs); n_dcs == 0: any */
	uint32_t n_dcs;
	bool retired;   /* gone from the fleet; kept for its draining IPs' tags */
};

/* A live move (issue 10): a slot handed from one server to another keeps
 * the previous owner until `deadline`, so that the new owner's decap can send
 * it what belongs to no local socket (the second hop, docs/operator.md,
 * "Moves").  A slot with a previous owner is either active (the new owner
 * takes new connections) or draining (a relay: the DC a moved IP went to had
 * no demand for this slice, so its server only forwards the old flows). */
struct su_plan_slot {
	int32_t server;      /* index into plan->servers, -1 when free */
	uint8_t state;       /* enum su_state */
	int64_t deadline;    /* unix seconds; draining, or the previous owner's end */
	int32_t prev_server; /* index into plan->servers, -1: none */
};

struct su_plan_ip {
	uint32_t ip;
	uint32_t dc;      /* owner DC */
	uint32_t demand;  /* index into plan->demands: the tag-set it serves */
	uint32_t prefix;  /* index into plan->prefixes (the IP's own tags) */
	uint8_t state;    /* SU_ACTIVE or SU_DRAINING */
	int64_t deadline; /* draining: when the address is free again */
	/* An active IP moved here from another DC: its previous owner DC, -1
	 * when none, until prev_deadline (unix seconds).  A second move of the
	 * IP is refused until then (softunicast move). */
	int32_t prev_dc;
	int64_t prev_deadline;
	uint32_t first_slot; /* slots[first_slot .. first_slot + slices_per_ip) */
};

/* A tag-set a DC's servers egress with, `slices` slices per server. */
struct su_plan_demand {
	uint32_t dc;
	struct su_tags tags;
	uint32_t slices;
	bool retired; /* no longer in the fleet; kept while its IPs drain */
};

struct su_plan {
	uint64_t serial;      /* +1 whenever the content changes */
	uint32_t port_lo, port_hi;
	uint32_t slice_size, slice_shift;
	uint32_t first_slice; /* slice index of slots[ip.first_slot] */
	uint32_t slices_per_ip;
	int64_t drain;        /* seconds */

	struct su_plan_dc *dcs;
	uint32_t n_dcs;
	struct su_plan_server *servers;
	uint32_t n_servers;
	struct su_plan_prefix *prefixes; /* sorted by address */
	uint32_t n_prefixes;
	struct su_plan_demand *demands;
	uint32_t n_demands;
	struct su_plan_ip *ips;          /* sorted by address */
	uint32_t n_ips;
	/* Each IP's slices_per_ip slots from its first_slot; n_slots in all
	 * (cap_slots allocated).  IPs added by su_plan__add_slotless_ips share
	 * one block of free slots (shared_free - 1; 0: none yet). */
	struct su_plan_slot *slots;
	uint32_t n_slots, cap_slots, shared_free;
};

/* Building blocks shared by the planner and the snapshot loader (plan.c).
 * The add functions append and return the new index or -ENOMEM;
 * su_plan__canonicalize() then sorts every table into the one order the
 * snapshot is written in (so equal plans are byte-identical) and checks that
 * no entity is listed twice. */
struct su_plan *su_plan__new(void);
int su_plan__set_geometry(struct su_plan *p, uint32_t lo, uint32_t hi, uint32_t slice_size);
int su_plan__add_dc(struct su_plan *p, const char *name, uint32_t router, bool retired);
int su_plan__add_server(struct su_plan *p, const char *name, uint32_t addr, uint32_t dc, bool retired);
int su_plan__add_prefix(struct su_plan *p, const struct su_prefix4 *pfx, const struct su_tags *tags,
			const uint32_t *dcs, uint32_t n_dcs, bool retired);
int su_plan__add_demand(struct su_plan *p, uint32_t dc, const struct su_tags *tags, uint32_t slices,
			bool retired);
/* Appends an IP with all its slots free. */
int su_plan__add_ip(struct su_plan *p, uint32_t ip, uint32_t dc, uint32_t demand, uint32_t prefix,
		    uint8_t state, int64_t deadline);
/* Appends IPs first..last (host order) whose slots a view does not hold (a
 * router's view of the other DCs' IPs): they all read one block of free
 * slots, so a million of them cost their entries alone.  Their slots must
 * never be written.  0, -ENOMEM, or -EFBIG past 2^32 slots or IPs. */
int su_plan__add_slotless_ips(struct su_plan *p, uint32_t first, uint32_t last, uint32_t dc, uint32_t demand,
			      uint32_t prefix, uint8_t state, int64_t deadline);
int su_plan__canonicalize(struct su_plan *p, struct su_err *err);
/* Same content, serial aside. */
bool su_plan__equal(const struct su_plan *a, const struct su_plan *b);

/* Cost of a plan, in IPv4 addresses (the figure users pay for). */
struct su_plan_cost {
	uint64_t active_ips;   /* IPs serving a demand now */
	uint64_t draining_ips; /* IPs waiting out their drain before reuse */
	uint64_t per_server;   /* one IP per server per tag-set slice: the design it replaces */
	uint64_t lower_bound;  /* sum over DC and tag-set of ceil(slices needed / slices per IP) */
	uint64_t slices_active, slices_draining, slices_free;
};
void su_plan__cost(const struct su_plan *p, struct su_plan_cost *cost);

/* Lookups return NULL when absent.  su_plan__slot returns NULL for a port
 * outside the sliced range. */
const struct su_plan_ip *su_plan__find_ip(const struct su_plan *p, uint32_t ip);
const struct su_plan_slot *su_plan__slot(const struct su_plan *p, const struct su_plan_ip *ip,
					 uint32_t port);
int su_plan__find_dc(const struct su_plan *p, const char *name);     /* index or -ENOENT */
int su_plan__find_server(const struct su_plan *p, const char *name); /* active server, or -ENOENT */
static inline uint32_t su_plan__slot_lo(const struct su_plan *p, uint32_t slot_in_ip)
{
	return (p->first_slice + slot_in_ip) << p->slice_shift;
}

/* Snapshot I/O (snapshot.c).  Writing is atomic: temp file, fsync, rename. */
int su_plan__load(const char *path, struct su_plan **out, struct su_err *err);
int su_plan__parse(const char *buf, size_t len, const char *name, struct su_plan **out,
		   struct su_err *err);
int su_plan__write(const struct su_plan *p, const char *path, struct su_err *err);
void su_plan__free(struct su_plan *p);

/* A view: the snapshot of a subset of the plan (each mask, when non-NULL,
 * has one byte per row of its table: keep it or not; only_server >= 0 keeps
 * only that server's slots).  The result is itself a valid snapshot as long
 * as every kept row's references are kept too (the store's views do so). */
struct su_plan_view {
	const uint8_t *dcs, *servers, *prefixes, *demands, *ips;
	int32_t only_server;
	/* Write retired servers as active: a drained server's own view, so its
	 * agent finds itself and sees every slice draining. */
	bool unretire;
	/* Write "serial 0": the store's views are content-addressed, so an
	 * unchanged view is the same bytes in every version (the reader sets
	 * the serial of the version that points at it). */
	bool serial0;
	/* Optional: the kept IPs' indexes, ascending (each also set in `ips`),
	 * so a view of a few IPs among a million does not scan them all. */
	const uint32_t *ip_list;
	uint32_t n_ip_list;
	/* Optional with only_server and ip_list: only_server's slots (those it
	 * owns or hands over; never a free one), as indexes into plan->slots,
	 * in ip_list's order and ascending within an IP, so its digest visits
	 * those, not every slot of its IPs. */
	const uint32_t *slot_list;
	uint32_t n_slot_list;
	/* Only a part of the text, for the store's plan/ shards: the whole
	 * snapshot is the HEAD (header and tables), then the IPS of every IP
	 * in order, then "end N" with N = su_plan__records(). */
	enum su_plan_part { SU_PART_ALL, SU_PART_HEAD, SU_PART_IPS } part;
};
/* Formats the view (NULL: the whole plan) into a malloc'd buffer; 0 or -errno. */
int su_plan__format_view(const struct su_plan *p, const struct su_plan_view *v, char **buf, size_t *len);
/* The count on the whole snapshot's end line. */
uint64_t su_plan__records(const struct su_plan *p);

/* Digests of what the writer prints, computed without printing, so that a
 * store publishing a new version cuts only the views whose input changed:
 * equal view digests (of the same view of two plans) mean byte-identical
 * su_plan__format_view() output, up to a 64-bit collision.  One digest per
 * row of each table, of every field the writer prints for that row (names,
 * not indexes, for the rows it refers to; the indexes a view's filters use
 * are hashed too, so a renumbering only ever costs a re-cut). */
struct su_plan_digests {
	uint64_t head; /* the header lines (format, ports, slice, drain) */
	uint64_t *dcs, *servers, *prefixes, *demands, *ips; /* one per row (IPs: with every slot) */
	uint64_t *ip_heads; /* the IP's own line (a one-server view adds its slots) */
	uint64_t *server_texts; /* a server as slot lines name it: " NAME ADDR" */
};
int su_plan_digests__build(const struct su_plan *p, struct su_plan_digests *d); /* 0 or -ENOMEM */
void su_plan_digests__free(struct su_plan_digests *d);
/* The digest of view v of p (NULL: the whole plan); 0 only when out of
 * memory (0 is never a digest, so the caller cuts the view). */
uint64_t su_plan__view_digest(const struct su_plan *p, const struct su_plan_digests *d,
			      const struct su_plan_view *v);
const char *su_state__name(uint8_t state); /* "active", "draining", "free" */

#endif
