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

static int carry_slot(struct builder *b, const struct su_plan_slot *old, uint32_t ip_idx,
		      uint32_t slot_in_ip, int demand)
{
	struct su_plan_ip *ip = &b->p->ips[ip_idx];
	struct su_plan_slot *slot = &b->p->slots[ip->first_slot + slot_in_ip];
	const struct su_plan_server *old_server;
	int server;

	if (old->state == SU_FREE || (old->state == SU_DRAINING && old->deadline <= b->now))
		return 0;
	/* A server's slots all resolve alike (same name, address and DC): look
	 * it up once, not once per slot. */
	server = b->server_of_prev[old->server];
	if (server < 0) {
		old_server = &b->prev->servers[old->server];
		server = ensure_server(b, old_server, ip->dc);
		if (server < 0)
			return server;
		b->server_of_prev[old->server] = server;
	}
	slot->server = server;
	if (demand >= 0 && old->state == SU_ACTIVE && (uint32_t)server < b->n_fleet_servers &&
	    *have_of(b, (uint32_t)server, (uint32_t)demand) < b->p->demands[demand].slices) {
		(*have_of(b, (uint32_t)server, (uint32_t)demand))++;
		slot->state = SU_ACTIVE;
		return 0;
	}
	slot->state = SU_DRAINING;
	if (old->state == SU_DRAINING)
		slot->deadline = old->deadline;
	else
		slot->deadline = ip->state == SU_DRAINING ? ip->deadline : b->now + b->p->drain;
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
				if (b->p->slots[ip->first_slot + c->slot].state == SU_FREE) {
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
			*slot = (struct su_plan_slot){ .server = (int32_t)s, .state = SU_ACTIVE };
			(*have)++;
		}
		/* Out of addresses: count what this and every later server lacks. */
		missing += want - *have;
	}
	return missing ? report_shortfall(b, r, d, missing, capacity) : 0;
}

static int allocate(struct builder *b, struct su_plan_report *r)
{
	struct demand_order *order = calloc(b->n_fleet_demands + 1, sizeof(*order));
	int ret = 0;

	if (!order)
		return -ENOMEM;
	for (uint32_t d = 0; d < b->n_fleet_demands; d++)
		order[d] = (struct demand_order){ d, demand_capacity(b, d) };
	qsort_r(order, b->n_fleet_demands, sizeof(*order), cmp_demand_order, b->p);
	for (uint32_t i = 0; i < b->n_fleet_demands && !ret; i++)
		ret = allocate_demand(b, order[i].demand, order[i].capacity, r);
	free(order);
	return ret;
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
