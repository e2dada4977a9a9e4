/* Planner: see planner.h for the contract.
 *
 * Phases:
 *   1. tables    — the fleet's DCs, servers, prefixes and tag-set demands;
 *   2. carry     — every IP and slot of the previous plan is kept, drained,
 *                  or (drain over) dropped;
 *   3. allocate  — each demand's missing slots come from free slots of its
 *                  own IPs, then from fresh IPs, most constrained demand first;
 *   4. release   — an IP left without active slots drains and is not reused;
 *   5. canonical order, serial.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/planner.h"
#include "lib/strmap.h"

struct u32vec {
	uint32_t *v;
	uint32_t n, cap;
};

static int vec_push(struct u32vec *v, uint32_t x)
{
	if (v->n == v->cap) {
		uint32_t cap = v->cap ? 2 * v->cap : 4;
		uint32_t *nv = realloc(v->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n++] = x;
	return 0;
}

/* Free addresses of one fleet prefix.  The cursor only moves forward: within
 * one planning run addresses are taken, never returned. */
struct pool {
	uint32_t base;
	uint64_t size, cursor, free;
	uint64_t *used; /* bitmap */
	uint32_t pressure; /* how many distinct demanded tag-sets this prefix can serve */
};

struct builder {
	const struct su_fleet *f;
	const struct su_plan *prev;
	int64_t now;
	struct su_plan *p;
	struct su_err *err;

	struct su_strmap dcs;      /* name → plan dc */
	struct su_strmap servers;  /* fleet: name; retired: name/addr/dc → plan server */
	struct su_strmap demands;  /* dc/tags → plan demand */
	struct su_strmap prefixes; /* retired: cidr/tags/dcs → plan prefix */
	uint32_t n_fleet_servers, n_fleet_demands;

	/* Slots each fleet server holds per demand of its DC:
	 * have[have_base[dc] + server_local * n_demands(dc) + demand_local]. */
	uint16_t *have;
	uint32_t *have_base, *server_local, *demand_local;
	uint32_t *first_server;    /* per fleet DC: plan index of its first server */
	struct u32vec *demand_ips; /* per fleet demand: its active IPs, address order */

	int32_t *server_of_prev;    /* previous plan's server → plan server, -1 until seen */
	struct pool *pools;         /* per fleet prefix (plan index == fleet index) */
	uint32_t *prefix_order;     /* fleet prefixes by address, for containment search */
	struct u32vec *class_pools; /* per tag-set class: matching prefixes, best first */
	uint32_t *demand_class;     /* per fleet demand */
	uint32_t n_classes;
};

/* ---- phase 1: tables ------------------------------------------------------ */

static char *demand_key(const char *dc, const struct su_tags *tags)
{
	char *t = su_tags__format(tags), *key = NULL;

	if (t && asprintf(&key, "%s/%s", dc, t) < 0)
		key = NULL;
	free(t);
	return key;
}

static int put_key(struct su_strmap *m, char *key, uint32_t value)
{
	int ret = key ? su_strmap__put(m, key, value) : -ENOMEM;

	free(key);
	return ret;
}

static int add_fleet_dc(struct builder *b, uint32_t i, uint32_t *have_total)
{
	const struct su_fleet_dc *fdc = &b->f->dcs[i];
	int dc = su_plan__add_dc(b->p, fdc->name, fdc->router, false);
	int ret = dc < 0 ? dc : su_strmap__put(&b->dcs, fdc->name, (uint32_t)dc);

	b->have_base[i] = *have_total;
	b->first_server[i] = b->p->n_servers;
	*have_total += fdc->n_servers * fdc->n_demands;
	for (uint32_t j = 0; j < fdc->n_servers && !ret; j++) {
		int s = su_plan__add_server(b->p, fdc->servers[j].name, fdc->servers[j].addr, (uint32_t)dc, false);

		ret = s < 0 ? s : su_strmap__put(&b->servers, fdc->servers[j].name, (uint32_t)s);
		if (!ret)
			b->server_local[s] = j;
	}
	for (uint32_t j = 0; j < fdc->n_demands && !ret; j++) {
		int d = su_plan__add_demand(b->p, (uint32_t)dc, &fdc->demands[j].tags,
					    fdc->demands[j].slices, false);

		ret = d < 0 ? d : put_key(&b->demands, demand_key(fdc->name, &fdc->demands[j].tags), (uint32_t)d);
		if (!ret)
			b->demand_local[d] = j;
	}
	return ret;
}

static int cmp_prefix_addr(const void *a, const void *b, void *ctx)
{
	const struct su_fleet *f = ctx;
	uint32_t x = f->prefixes[*(const uint32_t *)a].prefix.addr;
	uint32_t y = f->prefixes[*(const uint32_t *)b].prefix.addr;

	return (x > y) - (x < y);
}

static int add_fleet_prefixes(struct builder *b)
{
	const struct su_fleet *f = b->f;

	b->pools = calloc(f->n_prefixes + 1, sizeof(*b->pools));
	b->prefix_order = calloc(f->n_prefixes + 1, sizeof(*b->prefix_order));
	if (!b->pools || !b->prefix_order)
		return -ENOMEM;
	for (uint32_t i = 0; i < f->n_prefixes; i++) {
		const struct su_fleet_prefix *fp = &f->prefixes[i];
		struct pool *pool = &b->pools[i];
		int ret = su_plan__add_prefix(b->p, &fp->prefix, &fp->tags, fp->dcs, fp->n_dcs, false);

		if (ret < 0)
			return ret;
		pool->base = fp->prefix.addr;
		pool->size = pool->free = su_prefix__size(&fp->prefix);
		pool->used = calloc((pool->size + 63) / 64, sizeof(uint64_t));
		if (!pool->used)
			return -ENOMEM;
		b->prefix_order[i] = i;
	}
	qsort_r(b->prefix_order, f->n_prefixes, sizeof(uint32_t), cmp_prefix_addr, (void *)f);
	return 0;
}

/* Demands with equal tags form a class; each class gets the list of prefixes
 * that can serve it, least contested first, then by address.  Preferring
 * uncontested prefixes keeps a generic demand ({service: warp}) off the
 * addresses a specific one ({service: warp, country: GB}) needs. */
static int cmp_pool_pref(const void *a, const void *b, void *ctx)
{
	const struct builder *bd = ctx;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	const struct pool *px = &bd->pools[x], *py = &bd->pools[y];

	if (px->pressure != py->pressure)
		return px->pressure < py->pressure ? -1 : 1;
	return (px->base > py->base) - (px->base < py->base);
}

static int build_classes(struct builder *b)
{
	struct su_strmap classes = { 0 };
	uint32_t *first_demand = calloc(b->n_fleet_demands + 1, sizeof(*first_demand));
	int ret = 0;

	b->demand_class = calloc(b->n_fleet_demands + 1, sizeof(*b->demand_class));
	b->class_pools = calloc(b->n_fleet_demands + 1, sizeof(*b->class_pools));
	if (!first_demand || !b->demand_class || !b->class_pools)
		ret = -ENOMEM;
	for (uint32_t d = 0; d < b->n_fleet_demands && !ret; d++) {
		char *key = su_tags__format(&b->p->demands[d].tags);
		uint32_t cls;

		if (!key) {
			ret = -ENOMEM;
			break;
		}
		if (su_strmap__get(&classes, key, &cls)) {
			cls = b->n_classes++;
			first_demand[cls] = d;
			ret = su_strmap__put(&classes, key, cls);
		}
		b->demand_class[d] = cls;
		free(key);
	}
	for (uint32_t c = 0; c < b->n_classes && !ret; c++)
		for (uint32_t i = 0; i < b->f->n_prefixes && !ret; i++)
			if (su_tags__contains(&b->f->prefixes[i].tags, &b->p->demands[first_demand[c]].tags)) {
				b->pools[i].pressure++;
				ret = vec_push(&b->class_pools[c], i);
			}
	for (uint32_t c = 0; c < b->n_classes && !ret; c++)
		if (b->class_pools[c].n)
			qsort_r(b->class_pools[c].v, b->class_pools[c].n, sizeof(uint32_t), cmp_pool_pref, b);
	su_strmap__free(&classes);
	free(first_demand);
	return ret;
}

static int build_tables(struct builder *b)
{
	const struct su_fleet *f = b->f;
	uint32_t servers = 0, demands = 0, have_total = 0;
	int ret;

	for (uint32_t i = 0; i < f->n_dcs; i++) {
		servers += f->dcs[i].n_servers;
		demands += f->dcs[i].n_demands;
	}
	b->have_base = calloc(f->n_dcs + 1, sizeof(*b->have_base));
	b->first_server = calloc(f->n_dcs + 1, sizeof(*b->first_server));
	b->server_local = calloc(servers + 1, sizeof(*b->server_local));
	b->demand_local = calloc(demands + 1, sizeof(*b->demand_local));
	b->demand_ips = calloc(demands + 1, sizeof(*b->demand_ips));
	if (!b->have_base || !b->first_server || !b->server_local || !b->demand_local || !b->demand_ips)
		return -ENOMEM;
	for (uint32_t i = 0; i < f->n_dcs; i++) {
		ret = add_fleet_dc(b, i, &have_total);
		if (ret)
			return ret;
	}
	b->n_fleet_servers = servers;
	b->n_fleet_demands = demands;
	b->have = calloc(have_total + 1, sizeof(*b->have));
	if (!b->have)
		return -ENOMEM;
	ret = add_fleet_prefixes(b);
	return ret ? ret : build_classes(b);
}

static uint16_t *have_of(struct builder *b, uint32_t server, uint32_t demand)
{
	uint32_t dc = b->p->servers[server].dc;

	return &b->have[b->have_base[dc] + b->server_local[server] * b->f->dcs[dc].n_demands +
			b->demand_local[demand]];
}

/* ---- phase 2: carry the previous plan over -------------------------------- */

static int fleet_prefix_of(const struct builder *b, uint32_t ip)
{
	uint32_t lo = 0, hi = b->f->n_prefixes;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct su_prefix4 *px = &b->f->prefixes[b->prefix_order[mid]].prefix;

		if (su_prefix__contains(px, ip))
			return (int)b->prefix_order[mid];
		if (px->addr < ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void pool_mark(struct builder *b, uint32_t ip)
{
	int i = fleet_prefix_of(b, ip);
	struct pool *pool;
	uint64_t off;

	if (i < 0)
		return;
	pool = &b->pools[i];
	off = ip - pool->base;
	if (!(pool->used[off / 64] & (1ull << (off % 64)))) {
		pool->used[off / 64] |= 1ull << (off % 64);
		pool->free--;
	}
}

static bool prefix_allows(const struct su_plan_prefix *px, uint32_t dc)
{
	if (!px->n_dcs)
		return true;
	for (uint32_t i = 0; i < px->n_dcs; i++)
		if (px->dcs[i] == dc)
			return true;
	return false;
}

/* The plan index of a previous-plan entity: the fleet's own if it is the same
 * thing, otherwise a retired copy (made once). */
static int ensure_dc(struct builder *b, const struct su_plan_dc *old)
{
	uint32_t idx;
	int ret;

	if (!su_strmap__get(&b->dcs, old->name, &idx))
		return (int)idx;
	ret = su_plan__add_dc(b->p, old->name, old->router, true);
	if (ret >= 0 && su_strmap__put(&b->dcs, old->name, (uint32_t)ret))
		return -ENOMEM;
	return ret;
}

static int ensure_demand(struct builder *b, uint32_t dc, const struct su_plan_demand *old)
{
	char *key = demand_key(b->p->dcs[dc].name, &old->tags);
	uint32_t idx;
	int ret;

	if (!key)
		return -ENOMEM;
	if (!su_strmap__get(&b->demands, key, &idx)) {
		free(key);
		return (int)idx;
	}
	ret = su_plan__add_demand(b->p, dc, &old->tags, old->slices, true);
	if (ret >= 0 && su_strmap__put(&b->demands, key, (uint32_t)ret))
		ret = -ENOMEM;
	free(key);
	return ret;
}

/* A prefix is identified by its CIDR and tags: the tags are what a draining
 * IP still needs (for the geofeed); a changed allow-list does not matter. */
static bool same_prefix(const struct builder *b, const struct su_plan_prefix *old, uint32_t fleet_idx)
{
	const struct su_plan_prefix *cur = &b->p->prefixes[fleet_idx];

	return old->prefix.addr == cur->prefix.addr && old->prefix.len == cur->prefix.len &&
	       !su_tags__cmp(&old->tags, &cur->tags);
}

static int ensure_prefix(struct builder *b, const struct su_plan_prefix *old, int fleet_idx)
{
	char cidr[SU_PREFIX_STRLEN], *tags, *key = NULL;
	uint32_t idx, *dcs;
	int ret = -ENOMEM;

	if (fleet_idx >= 0 && same_prefix(b, old, (uint32_t)fleet_idx))
		return fleet_idx;
	tags = su_tags__format(&old->tags);
	if (!tags || asprintf(&key, "%s/%s", su_prefix__str(&old->prefix, cidr), tags) < 0) {
		free(tags);
		return -ENOMEM;
	}
	free(tags);
	if (!su_strmap__get(&b->prefixes, key, &idx)) {
		free(key);
		return (int)idx;
	}
	/* A retired prefix keeps only the DCs that still exist in the plan. */
	dcs = calloc(old->n_dcs + 1, sizeof(*dcs));
	if (dcs) {
		uint32_t n = 0;

		for (uint32_t i = 0; i < old->n_dcs; i++) {
			int dc = ensure_dc(b, &b->prev->dcs[old->dcs[i]]);

			if (dc >= 0)
				dcs[n++] = (uint32_t)dc;
		}
		ret = su_plan__add_prefix(b->p, &old->prefix, &old->tags, dcs, n, true);
		free(dcs);
	}
	if (ret >= 0 && su_strmap__put(&b->prefixes, key, (uint32_t)ret))
		ret = -ENOMEM;
	free(key);
	return ret;
}

static int ensure_server(struct builder *b, const struct su_plan_server *old, uint32_t dc)
{
	char addr[SU_ADDR_STRLEN], *key = NULL;
	uint32_t idx;
	int ret;

	/* The fleet's server only if it is the same machine: same DC and address. */
	if (!su_strmap__get(&b->servers, old->name, &idx) && b->p->servers[idx].addr == old->addr &&
	    b->p->servers[idx].dc == dc)
		return (int)idx;
	if (asprintf(&key, "\001%s/%s/%s", old->name, su_addr__str(old->addr, addr), b->p->dcs[dc].name) < 0)
		return -ENOMEM;
	if (!su_strmap__get(&b->servers, key, &idx)) {
		free(key);
		return (int)idx;
	}
	ret = su_plan__add_server(b->p, old->name, old->addr, dc, true);
	if (ret >= 0 && su_strmap__put(&b->servers, key, (uint32_t)ret))
		ret = -ENOMEM;
	free(key);
	return ret;
}

/* The fleet demand an active previous IP still serves, or -1. */
static int still_valid(struct builder *b, const struct su_plan_ip *old, int *fleet_prefix)
{
	const struct su_plan *prev = b->prev;
	char *key;
	uint32_t dc, demand;
	int ret;

	*fleet_prefix = fleet_prefix_of(b, old->ip);
	if (old->state != SU_ACTIVE || *fleet_prefix < 0 ||
	    su_strmap__get(&b->dcs, prev->dcs[old->dc].name, &dc) || b->p->dcs[dc].retired)
		return -1;
	key = demand_key(prev->dcs[old->dc].name, &prev->demands[old->demand].tags);
	if (!key)
		return -ENOMEM;
	ret = su_strmap__get(&b->demands, key, &demand);
	free(key);
	if (ret || demand >= b->n_fleet_demands)
		return -1;
	if (!su_tags__contains(&b->p->prefixes[*fleet_prefix].tags, &b->p->demands[demand].tags) ||
	    !prefix_allows(&b->p->prefixes[*fleet_prefix], dc))
		return -1;
	return (int)demand;
}

/* The plan index of the previous plan's server `old` (looked up once per
 * server: a server's slots all resolve alike, same name, address and DC). */
static int map_server(struct builder *b, int32_t old)
{
	const struct su_plan_server *os = &b->prev->servers[old];
	int server = b->server_of_prev[old], dc;

	if (server >= 0)
		return server;
	dc = ensure_dc(b, &b->prev->dcs[os->dc]);
	if (dc < 0)
		return dc;
	server = ensure_server(b, os, (uint32_t)dc);
	if (server >= 0)
		b->server_of_prev[old] = server;
	return server;
}

/* A handed slot keeps its previous owner until the deadline (issue 10);
 * after it the slot is its new owner's alone. */
static int carry_prev(struct builder *b, const struct su_plan_slot *old, struct su_plan_slot *slot)
{
	int prev;

	if (old->prev_server < 0 || old->deadline <= b->now)
		return 0;
	prev = map_server(b, old->prev_server);
	if (prev < 0)
		return prev;
	slot->prev_server = prev;
	slot->deadline = old->deadline;
	return 0;
}

static int carry_slot(struct builder *b, const struct su_plan_slot *old, uint32_t ip_idx,
		      uint32_t slot_in_ip, int demand)
{
	struct su_plan_ip *ip = &b->p->ips[ip_idx];
	struct su_plan_slot *slot = &b->p->slots[ip->first_slot + slot_in_ip];
	int server, ret;
	int64_t until;

	if (old->state == SU_FREE || (old->state == SU_DRAINING && old->deadline <= b->now))
		return 0;
	server = map_server(b, old->server);
	if (server < 0)
		return server;
	slot->server = server;
	if ((ret = carry_prev(b, old, slot)))
		return ret;
	if (demand >= 0 && old->state == SU_ACTIVE && (uint32_t)server < b->n_fleet_servers &&
	    *have_of(b, (uint32_t)server, (uint32_t)demand) < b->p->demands[demand].slices) {
		(*have_of(b, (uint32_t)server, (uint32_t)demand))++;
		slot->state = SU_ACTIVE;
		return 0;
	}
	until = slot->deadline;
	slot->state = SU_DRAINING;
	if (old->state == SU_DRAINING)
		slot->deadline = old->deadline;
	else
		slot->deadline = ip->state == SU_DRAINING ? ip->deadline : b->now + b->p->drain;
	/* One clock for the slot: its previous owner stays as long as it. */
	if (until > slot->deadline)
		slot->deadline = until;
	return 0;
}

/* ---- live moves (issue 10) --------------------------------------------------
 * An active IP whose fleet prefix no longer allows its DC (`softunicast move`
 * pins it elsewhere) changes owner at once: it becomes an IP of the first
 * allowed DC with a tag-set the prefix serves (the same tags preferred), and
 * every slot that had an owner keeps that owner as its previous one until
 * the drain deadline.  The allocation then gives the slots to the new DC's
 * servers; the new owners' decaps send the old flows on (second hop). */
static int move_target(struct builder *b, const struct su_plan_ip *old, int fp, uint32_t *dc_out)
{
	const struct su_plan_prefix *px = &b->p->prefixes[fp];
	char *key;
	uint32_t demand;

	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < px->n_dcs; i++) {
			uint32_t dc = px->dcs[i];

			if (pass == 0) {
				key = demand_key(b->p->dcs[dc].name, &b->prev->demands[old->demand].tags);
				if (!key)
					return -ENOMEM;
				if (!su_strmap__get(&b->demands, key, &demand) && demand < b->n_fleet_demands) {
					free(key);
					*dc_out = dc;
					return (int)demand;
				}
				free(key);
				continue;
			}
			for (uint32_t d = 0; d < b->n_fleet_demands; d++)
				if (b->p->demands[d].dc == dc &&
				    su_tags__contains(&px->tags, &b->p->demands[d].tags)) {
					*dc_out = dc;
					return (int)d;
				}
		}
	return -1;
}

static int move_ip(struct builder *b, const struct su_plan_ip *old, int fp)
{
	const struct su_plan *prev = b->prev;
	int64_t until = b->now + b->p->drain;
	uint32_t dc;
	int demand, from, idx, ret;

	if (old->state != SU_ACTIVE || fp < 0 || !b->p->prefixes[fp].n_dcs)
		return 1;
	demand = move_target(b, old, fp, &dc);
	if (demand < 0)
		return demand == -1 ? 1 : demand;
	if (old->prev_dc >= 0 && old->prev_deadline > b->now) {
		char a[SU_ADDR_STRLEN];

		return su_err__set(b->err, EBUSY,
				   "%s moved from %s to %s and keeps old flows there until %" PRId64
				   " (unix time): a second move is refused until then",
				   su_addr__str(old->ip, a), prev->dcs[old->prev_dc].name,
				   prev->dcs[old->dc].name, old->prev_deadline);
	}
	from = ensure_dc(b, &prev->dcs[old->dc]);
	if (from < 0)
		return from;
	idx = su_plan__add_ip(b->p, old->ip, dc, (uint32_t)demand, (uint32_t)fp, SU_ACTIVE, 0);
	if (idx < 0)
		return idx;
	b->p->ips[idx].prev_dc = from;
	b->p->ips[idx].prev_deadline = until;
	pool_mark(b, old->ip);
	if ((ret = vec_push(&b->demand_ips[demand], (uint32_t)idx)))
		return ret;
	for (uint32_t s = 0; s < prev->slices_per_ip; s++) {
		const struct su_plan_slot *os = &prev->slots[old->first_slot + s];
		struct su_plan_slot *slot = &b->p->slots[b->p->ips[idx].first_slot + s];
		int server;

		if (os->state == SU_FREE || (os->state == SU_DRAINING && os->deadline <= b->now))
			continue;
		server = map_server(b, os->server);
		if (server < 0)
			return server;
		slot->prev_server = server;
		slot->deadline = os->state == SU_DRAINING && os->deadline < until ? os->deadline : until;
	}
	return 0;
}

static int carry_ip(struct builder *b, const struct su_plan_ip *old)
{
	const struct su_plan *prev = b->prev;
	int fp, demand, dc, ret, idx;
	uint8_t state = SU_ACTIVE;
	int64_t deadline = 0;

	if (old->state == SU_DRAINING && old->deadline <= b->now)
		return 0; /* drained: the address is free again */
	demand = still_valid(b, old, &fp);
	if (demand < -1)
		return demand;
	if (demand == -1 && (ret = move_ip(b, old, fp)) <= 0)
		return ret;
	dc = ensure_dc(b, &prev->dcs[old->dc]);
	if (dc < 0)
		return dc;
	if (demand < 0) {
		state = SU_DRAINING;
		deadline = old->state == SU_DRAINING ? old->deadline : b->now + b->p->drain;
		demand = ensure_demand(b, (uint32_t)dc, &prev->demands[old->demand]);
		fp = demand < 0 ? demand : ensure_prefix(b, &prev->prefixes[old->prefix], fp);
		if (fp < 0)
			return fp;
	}
	idx = su_plan__add_ip(b->p, old->ip, (uint32_t)dc, (uint32_t)demand, (uint32_t)fp, state, deadline);
	if (idx < 0)
		return idx;
	if (state == SU_ACTIVE && old->prev_dc >= 0 && old->prev_deadline > b->now) {
		int from = ensure_dc(b, &prev->dcs[old->prev_dc]);

		if (from < 0)
			return from;
		b->p->ips[idx].prev_dc = from;
		b->p->ips[idx].prev_deadline = old->prev_deadline;
	}
	pool_mark(b, old->ip);
	if (state == SU_ACTIVE && (ret = vec_push(&b->demand_ips[demand], (uint32_t)idx)))
		return ret;
	for (uint32_t s = 0; s < prev->slices_per_ip; s++) {
		ret = carry_slot(b, &prev->slots[old->first_slot + s], (uint32_t)idx, s,
				 state == SU_ACTIVE ? demand : -1);
		if (ret)
			return ret;
	}
	return 0;
}

static int carry_over(struct builder *b)
{
	const struct su_plan *prev = b->prev;

	if (prev->port_lo != b->p->port_lo || prev->port_hi != b->p->port_hi ||
	    prev->slice_size != b->p->slice_size)
		return su_err__set(b->err, EXDEV,
				   "port range or slice size changed (%u-%u/%u → %u-%u/%u): every slice "
				   "would move; plan without --previous once the old plan has drained",
				   prev->port_lo, prev->port_hi, prev->slice_size, b->p->port_lo,
				   b->p->port_hi, b->p->slice_size);
	b->server_of_prev = malloc((prev->n_servers + 1) * sizeof(*b->server_of_prev));
	if (!b->server_of_prev)
		return su_err__set(b->err, ENOMEM, "out of memory");
	memset(b->server_of_prev, 0xff, (prev->n_servers + 1) * sizeof(*b->server_of_prev));
	for (uint32_t i = 0; i < prev->n_ips; i++) {
		int ret = carry_ip(b, &prev->ips[i]);

		if (ret)
			return ret == -ENOMEM ? su_err__set(b->err, ENOMEM, "out of memory") : ret;
	}
	return 0;
}

/* ---- phase 3: allocate ----------------------------------------------------- */

static uint64_t demand_capacity(const struct builder *b, uint32_t d)
{
	const struct u32vec *cands = &b->class_pools[b->demand_class[d]];
	uint64_t n = 0;

	for (uint32_t i = 0; i < cands->n; i++)
		if (prefix_allows(&b->p->prefixes[cands->v[i]], b->p->demands[d].dc))
			n += b->pools[cands->v[i]].free;
	return n;
}

struct demand_order {
	uint32_t demand;
	uint64_t capacity;
};

static int cmp_demand_order(const void *a, const void *b, void *ctx)
{
	const struct demand_order *x = a, *y = b;
	const struct su_plan *p = ctx;
	int c;

	if (x->capacity != y->capacity)
		return x->capacity < y->capacity ? -1 : 1;
	c = strcmp(p->dcs[p->demands[x->demand].dc].name, p->dcs[p->demands[y->demand].dc].name);
	return c ? c : su_tags__cmp(&p->demands[x->demand].tags, &p->demands[y->demand].tags);
}

/* Lowest free address of the best pool this demand may use, or -ENOSPC. */
static int64_t take_address(struct builder *b, uint32_t d)
{
	const struct u32vec *cands = &b->class_pools[b->demand_class[d]];

	for (uint32_t i = 0; i < cands->n; i++) {
		struct pool *pool = &b->pools[cands->v[i]];

		if (!pool->free || !prefix_allows(&b->p->prefixes[cands->v[i]], b->p->demands[d].dc))
			continue;
		while (pool->used[pool->cursor / 64] & (1ull << (pool->cursor % 64)))
			pool->cursor++;
		pool->used[pool->cursor / 64] |= 1ull << (pool->cursor % 64);
		pool->free--;
		return (int64_t)cands->v[i] << 32 | (uint32_t)(pool->base + pool->cursor);
	}
	return -ENOSPC;
}

/* Walks the free slots of a demand's IPs in address order, opening a new
 * IP when they run out. */
/* A free slot, or a draining one of an active IP, which is handed on at
 * once (its owner stays as the previous one until the drain deadline): the
 * address space is reused without waiting, and no live flow breaks.  A
 * slot already handed once is not handed again before its deadline. */
static bool takeable(const struct su_plan_slot *sl)
{
	return sl->state == SU_FREE || (sl->state == SU_DRAINING && sl->prev_server < 0);
}

/* Gives slot to server s: a draining slot's owner becomes its previous one
 * (unless s takes back its own), a free one keeps what it had. */
static void take_slot(struct su_plan_slot *slot, uint32_t s)
{
	if (slot->state == SU_DRAINING) {
		slot->prev_server = slot->server == (int32_t)s ? -1 : slot->server;
		if (slot->prev_server < 0)
			slot->deadline = 0;
	}
	slot->server = (int32_t)s;
	slot->state = SU_ACTIVE;
	if (slot->prev_server < 0)
		slot->deadline = 0;
}

struct slot_cursor {
	uint32_t list, slot;
};

static int next_free_slot(struct builder *b, uint32_t d, struct slot_cursor *c, struct su_plan_slot **out)
{
	struct u32vec *ips = &b->demand_ips[d];

	for (;;) {
		for (; c->list < ips->n; c->list++, c->slot = 0) {
			struct su_plan_ip *ip = &b->p->ips[ips->v[c->list]];

			for (; c->slot < b->p->slices_per_ip; c->slot++)
				if (takeable(&b->p->slots[ip->first_slot + c->slot])) {
					*out = &b->p->slots[ip->first_slot + c->slot++];
					return 0;
				}
		}
		int64_t got = take_address(b, d);
		int idx;

		if (got < 0)
			return (int)got;
		idx = su_plan__add_ip(b->p, (uint32_t)got, b->p->demands[d].dc, d, (uint32_t)(got >> 32),
				      SU_ACTIVE, 0);
		if (idx < 0 || vec_push(ips, (uint32_t)idx))
			return -ENOMEM;
	}
}

static int report_shortfall(struct builder *b, struct su_plan_report *r, uint32_t d, uint64_t slices,
			    uint64_t capacity)
{
	struct su_shortfall *v = realloc(r->v, (r->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	r->v = v;
	v[r->n] = (struct su_shortfall){
		.dc = strdup(b->p->dcs[b->p->demands[d].dc].name),
		.tags = su_tags__format(&b->p->demands[d].tags),
		.ips_short = (uint32_t)((slices + b->p->slices_per_ip - 1) / b->p->slices_per_ip),
		.candidates = capacity,
	};
	r->n++;
	return v[r->n - 1].dc && v[r->n - 1].tags ? 0 : -ENOMEM;
}

static int allocate_demand(struct builder *b, uint32_t d, uint64_t capacity, struct su_plan_report *r)
{
	const struct su_fleet_dc *fdc = &b->f->dcs[b->p->demands[d].dc];
	uint32_t first_server = b->first_server[b->p->demands[d].dc], want = b->p->demands[d].slices;
	struct slot_cursor cursor = { 0 };
	uint64_t missing = 0;

	for (uint32_t s = first_server; s < first_server + fdc->n_servers; s++) {
		uint16_t *have = have_of(b, s, d);

		while (*have < want && !missing) {
			struct su_plan_slot *slot = NULL;
			int ret = next_free_slot(b, d, &cursor, &slot);

			if (ret == -ENOSPC)
				break;
			if (ret)
				return ret;
			take_slot(slot, s);
			(*have)++;
		}
		/* Out of addresses: count what this and every later server lacks. */
		missing += want - *have;
	}
	return missing ? report_shortfall(b, r, d, missing, capacity) : 0;
}

/* A DC uses an IP that moved to it first: its new connections come from
 * the IP at once, and the slices with live old flows get new owners (who
 * send the old flows on) rather than relays.  Stable otherwise. */
static void moved_ips_first(struct builder *b)
{
	for (uint32_t d = 0; d < b->n_fleet_demands; d++) {
		struct u32vec *v = &b->demand_ips[d];
		uint32_t front = 0;

		for (uint32_t i = 0; i < v->n; i++) {
			uint32_t x = v->v[i];

			if (b->p->ips[x].prev_dc < 0)
				continue;
			memmove(&v->v[front + 1], &v->v[front], (i - front) * sizeof(*v->v));
			v->v[front++] = x;
		}
	}
}

static int allocate(struct builder *b, struct su_plan_report *r)
{
	struct demand_order *order = calloc(b->n_fleet_demands + 1, sizeof(*order));
	int ret = 0;

	if (!order)
		return -ENOMEM;
	moved_ips_first(b);
	for (uint32_t d = 0; d < b->n_fleet_demands; d++)
		order[d] = (struct demand_order){ d, demand_capacity(b, d) };
	qsort_r(order, b->n_fleet_demands, sizeof(*order), cmp_demand_order, b->p);
	for (uint32_t i = 0; i < b->n_fleet_demands && !ret; i++)
		ret = allocate_demand(b, order[i].demand, order[i].capacity, r);
	free(order);
	return ret;
}

/* ---- phase 3b: relays for moved slots nobody took -------------------------- */

/* A moved IP's slot with a previous owner that its new DC did not need still
 * carries old flows: a server of the new DC relays them (second hop) until
 * the deadline, draining (the library never opens a connection from it). */
static void assign_relays(struct builder *b)
{
	struct su_plan *p = b->p;
	uint32_t turn = 0;

	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *ip = &p->ips[i];
		uint32_t dc = ip->dc, n;

		if (dc >= b->f->n_dcs || !(n = b->f->dcs[dc].n_servers))
			continue;
		for (uint32_t k = 0; k < p->slices_per_ip; k++) {
			struct su_plan_slot *sl = &p->slots[ip->first_slot + k];

			if (sl->state != SU_FREE || sl->prev_server < 0)
				continue;
			sl->server = (int32_t)(b->first_server[dc] + turn++ % n);
			sl->state = SU_DRAINING;
		}
	}
}

/* ---- phase 4: release IPs nobody uses any more ----------------------------- */

static void release_idle_ips(struct builder *b)
{
	struct su_plan *p = b->p;
	uint32_t kept = 0;

	for (uint32_t i = 0; i < p->n_ips; i++) {
		struct su_plan_ip *ip = &p->ips[i];
		int64_t last = 0;
		bool active = false;

		for (uint32_t s = 0; s < p->slices_per_ip; s++) {
			const struct su_plan_slot *slot = &p->slots[ip->first_slot + s];

			active |= slot->state == SU_ACTIVE;
			if (slot->state == SU_DRAINING && slot->deadline > last)
				last = slot->deadline;
		}
		if (ip->state == SU_ACTIVE && !active) {
			if (!last)
				continue; /* nothing in flight: free at once */
			/* Drains with its last slot: reused only after every
			 * connection on it has had its grace period. */
			ip->state = SU_DRAINING;
			ip->deadline = last;
			ip->prev_dc = -1; /* its DC's own drain covers the old flows */
			ip->prev_deadline = 0;
		}
		p->ips[kept++] = *ip;
	}
	p->n_ips = kept;
}

/* ---- driver ---------------------------------------------------------------- */

static void builder_free(struct builder *b)
{
	su_strmap__free(&b->dcs);
	su_strmap__free(&b->servers);
	su_strmap__free(&b->demands);
	su_strmap__free(&b->prefixes);
	for (uint32_t i = 0; b->demand_ips && i < b->n_fleet_demands; i++)
		free(b->demand_ips[i].v);
	for (uint32_t i = 0; b->class_pools && i < b->n_classes; i++)
		free(b->class_pools[i].v);
	for (uint32_t i = 0; b->pools && i < b->f->n_prefixes; i++)
		free(b->pools[i].used);
	free(b->server_of_prev);
	free(b->have);
	free(b->have_base);
	free(b->first_server);
	free(b->server_local);
	free(b->demand_local);
	free(b->demand_ips);
	free(b->pools);
	free(b->prefix_order);
	free(b->class_pools);
	free(b->demand_class);
}

static int cmp_shortfall(const void *a, const void *b)
{
	const struct su_shortfall *x = a, *y = b;
	int c = strcmp(x->dc, y->dc);

	return c ? c : strcmp(x->tags, y->tags);
}

int su_planner__run(const struct su_fleet *f, const struct su_plan *prev, int64_t now,
		    struct su_plan **out, struct su_plan_report *report, struct su_err *err)
{
	struct builder b = { .f = f, .prev = prev, .now = now, .err = err };
	int ret;

	*out = NULL;
	*report = (struct su_plan_report){ 0 };
	b.p = su_plan__new();
	if (!b.p)
		return su_err__set(err, ENOMEM, "out of memory");
	ret = su_plan__set_geometry(b.p, f->port_lo, f->port_hi, f->slice_size);
	b.p->drain = f->drain;
	if (!ret)
		ret = build_tables(&b);
	if (ret == -ENOMEM)
		ret = su_err__set(err, ENOMEM, "out of memory");
	if (!ret && prev)
		ret = carry_over(&b);
	if (!ret)
		ret = allocate(&b, report);
	if (!ret && report->n) {
		qsort(report->v, report->n, sizeof(*report->v), cmp_shortfall);
		ret = su_err__set(err, ENOSPC, "%u egress demand(s) cannot be met", report->n);
	}
	if (!ret) {
		assign_relays(&b);
		release_idle_ips(&b);
		ret = su_plan__canonicalize(b.p, err);
	}
	if (!ret) {
		b.p->serial = !prev ? 1 : su_plan__equal(b.p, prev) ? prev->serial : prev->serial + 1;
		*out = b.p;
		b.p = NULL;
	}
	if (ret == -ENOMEM)
		ret = su_err__set(err, ENOMEM, "out of memory");
	su_plan__free(b.p);
	builder_free(&b);
	return ret;
}

void su_plan_report__free(struct su_plan_report *r)
{
	for (uint32_t i = 0; i < r->n; i++) {
		free(r->v[i].dc);
		free(r->v[i].tags);
	}
	free(r->v);
	*r = (struct su_plan_report){ 0 };
}
