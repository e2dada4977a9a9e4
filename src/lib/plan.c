/* The plan model: building, canonical ordering, lookups, cost. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fleet.h"
#include "lib/plan.h"

/* Appends one zeroed element to a vector whose capacity is the next power of
 * two of its length (so no separate capacity field is needed). */
static void *grow(void *v, uint32_t n, size_t size)
{
	void *nv = v;

	if (!n || !(n & (n - 1)))
		nv = realloc(v, (size_t)(n ? 2 * n : 1) * size);
	if (nv)
		memset((char *)nv + (size_t)n * size, 0, size);
	return nv;
}

#define APPEND(vec, n)                                               \
	({                                                           \
		void *_nv = grow((vec), (n), sizeof(*(vec)));        \
		if (_nv)                                             \
			(vec) = _nv;                                 \
		_nv ? &(vec)[(n)++] : NULL;                          \
	})

struct su_plan *su_plan__new(void)
{
	return calloc(1, sizeof(struct su_plan));
}

int su_plan__set_geometry(struct su_plan *p, uint32_t lo, uint32_t hi, uint32_t slice_size)
{
	if (!slice_size || (slice_size & (slice_size - 1)) || lo > hi || hi > 65535)
		return -EINVAL;
	if (su_slices__geometry(lo, hi, slice_size, &p->first_slice, &p->slices_per_ip))
		return -ERANGE;
	p->port_lo = lo;
	p->port_hi = hi;
	p->slice_size = slice_size;
	p->slice_shift = (uint32_t)__builtin_ctz(slice_size);
	return 0;
}

int su_plan__add_dc(struct su_plan *p, const char *name, uint32_t router, bool retired)
{
	struct su_plan_dc *dc = APPEND(p->dcs, p->n_dcs);

	if (!dc)
		return -ENOMEM;
	*dc = (struct su_plan_dc){ strdup(name), router, retired };
	return dc->name ? (int)(p->n_dcs - 1) : -ENOMEM;
}

int su_plan__add_server(struct su_plan *p, const char *name, uint32_t addr, uint32_t dc, bool retired)
{
	struct su_plan_server *s = APPEND(p->servers, p->n_servers);

	if (!s)
		return -ENOMEM;
	*s = (struct su_plan_server){ strdup(name), addr, dc, retired };
	return s->name ? (int)(p->n_servers - 1) : -ENOMEM;
}

int su_plan__add_prefix(struct su_plan *p, const struct su_prefix4 *pfx, const struct su_tags *tags,
			const uint32_t *dcs, uint32_t n_dcs, bool retired)
{
	struct su_plan_prefix *x = APPEND(p->prefixes, p->n_prefixes);

	if (!x)
		return -ENOMEM;
	x->prefix = *pfx;
	x->retired = retired;
	if (n_dcs) {
		x->dcs = malloc(n_dcs * sizeof(*dcs));
		if (!x->dcs)
			return -ENOMEM;
		memcpy(x->dcs, dcs, n_dcs * sizeof(*dcs));
		x->n_dcs = n_dcs;
	}
	if (su_tags__copy(&x->tags, tags))
		return -ENOMEM;
	return (int)(p->n_prefixes - 1);
}

int su_plan__add_demand(struct su_plan *p, uint32_t dc, const struct su_tags *tags, uint32_t slices,
			bool retired)
{
	struct su_plan_demand *d = APPEND(p->demands, p->n_demands);

	if (!d)
		return -ENOMEM;
	d->dc = dc;
	d->slices = slices;
	d->retired = retired;
	return su_tags__copy(&d->tags, tags) ? -ENOMEM : (int)(p->n_demands - 1);
}

/* Room for `more` slots at the end of p->slots (capacity doubles). */
static int reserve_slots(struct su_plan *p, uint64_t more)
{
	uint64_t cap = p->cap_slots ? p->cap_slots : 16;
	struct su_plan_slot *slots;

	if ((uint64_t)p->n_slots + more <= p->cap_slots)
		return 0;
	while (cap < (uint64_t)p->n_slots + more)
		cap *= 2;
	if (cap > UINT32_MAX)
		return -EFBIG;
	if (!(slots = realloc(p->slots, cap * sizeof(*slots))))
		return -ENOMEM;
	p->slots = slots;
	p->cap_slots = (uint32_t)cap;
	return 0;
}

/* slices_per_ip free slots at the end; the first one's index. */
static int64_t add_free_slots(struct su_plan *p)
{
	uint32_t first = p->n_slots;
	int ret = reserve_slots(p, p->slices_per_ip);

	if (ret)
		return ret;
	for (uint32_t i = 0; i < p->slices_per_ip; i++)
		p->slots[first + i] = (struct su_plan_slot){ .server = -1, .prev_server = -1 };
	p->n_slots += p->slices_per_ip;
	return first;
}

static int append_ip(struct su_plan *p, uint32_t ip, uint32_t dc, uint32_t demand, uint32_t prefix,
		     uint8_t state, int64_t deadline, uint32_t first_slot)
{
	struct su_plan_ip *x = APPEND(p->ips, p->n_ips);

	if (!x)
		return -ENOMEM;
	*x = (struct su_plan_ip){ .ip = ip, .dc = dc, .demand = demand, .prefix = prefix,
				  .state = state, .deadline = deadline, .prev_dc = -1,
				  .first_slot = first_slot };
	return (int)(p->n_ips - 1);
}

int su_plan__add_ip(struct su_plan *p, uint32_t ip, uint32_t dc, uint32_t demand, uint32_t prefix,
		    uint8_t state, int64_t deadline)
{
	int64_t first = add_free_slots(p);

	return first < 0 ? (int)first : append_ip(p, ip, dc, demand, prefix, state, deadline, (uint32_t)first);
}

int su_plan__add_slotless_ips(struct su_plan *p, uint32_t first, uint32_t last, uint32_t dc, uint32_t demand,
			      uint32_t prefix, uint8_t state, int64_t deadline)
{
	if ((uint64_t)p->n_ips + ((uint64_t)last - first + 1) > INT32_MAX)
		return -EFBIG;
	if (!p->shared_free) {
		int64_t at = add_free_slots(p);

		if (at < 0)
			return (int)at;
		p->shared_free = (uint32_t)at + 1;
	}
	for (uint64_t ip = first; ip <= last; ip++) {
		int ret = append_ip(p, (uint32_t)ip, dc, demand, prefix, state, deadline, p->shared_free - 1);

		if (ret < 0)
			return ret;
	}
	return 0;
}

/* ---- canonical order ---------------------------------------------------- */

static int cmp_u32(uint32_t a, uint32_t b)
{
	return (a > b) - (a < b);
}

static int cmp_u32_ptr(const void *a, const void *b, void *ctx)
{
	return cmp_u32(*(const uint32_t *)a, *(const uint32_t *)b);
}

static int cmp_dc(const void *a, const void *b, void *ctx)
{
	const struct su_plan *p = ctx;

	return strcmp(p->dcs[*(const uint32_t *)a].name, p->dcs[*(const uint32_t *)b].name);
}

static int cmp_server(const void *a, const void *b, void *ctx)
{
	const struct su_plan *p = ctx;
	const struct su_plan_server *x = &p->servers[*(const uint32_t *)a];
	const struct su_plan_server *y = &p->servers[*(const uint32_t *)b];
	int c = strcmp(x->name, y->name);

	if (!c)
		c = cmp_u32(x->addr, y->addr);
	if (!c)
		c = strcmp(p->dcs[x->dc].name, p->dcs[y->dc].name);
	return c ? c : (int)x->retired - (int)y->retired;
}

static int cmp_prefix(const void *a, const void *b, void *ctx)
{
	const struct su_plan *p = ctx;
	const struct su_plan_prefix *x = &p->prefixes[*(const uint32_t *)a];
	const struct su_plan_prefix *y = &p->prefixes[*(const uint32_t *)b];
	int c = cmp_u32(x->prefix.addr, y->prefix.addr);

	if (!c)
		c = cmp_u32(x->prefix.len, y->prefix.len);
	if (!c)
		c = su_tags__cmp(&x->tags, &y->tags);
	return c ? c : (int)x->retired - (int)y->retired;
}

static int cmp_demand(const void *a, const void *b, void *ctx)
{
	const struct su_plan *p = ctx;
	const struct su_plan_demand *x = &p->demands[*(const uint32_t *)a];
	const struct su_plan_demand *y = &p->demands[*(const uint32_t *)b];
	int c = strcmp(p->dcs[x->dc].name, p->dcs[y->dc].name);

	return c ? c : su_tags__cmp(&x->tags, &y->tags);
}

static int cmp_ip(const void *a, const void *b, void *ctx)
{
	const struct su_plan *p = ctx;

	return cmp_u32(p->ips[*(const uint32_t *)a].ip, p->ips[*(const uint32_t *)b].ip);
}

/* Sorts a table through a permutation: order[new] = old, and fills
 * remap[old] = new.  The table itself is rearranged by the caller. */
static int sort_perm(struct su_plan *p, uint32_t n, int (*cmp)(const void *, const void *, void *),
		     uint32_t **order_out, uint32_t **remap_out)
{
	uint32_t *order = malloc((n + 1) * sizeof(*order));
	uint32_t *remap = malloc((n + 1) * sizeof(*remap));

	*order_out = order;
	*remap_out = remap;
	if (!order || !remap)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		order[i] = i;
	if (n)
		qsort_r(order, n, sizeof(*order), cmp, p);
	for (uint32_t i = 0; i < n; i++)
		remap[order[i]] = i;
	return 0;
}

static int permute(void **table, uint32_t n, size_t size, const uint32_t *order)
{
	/* The capacity grow() assumes (the next power of two), so a table can
	 * still be appended to after canonicalizing (the store's router views). */
	size_t cap = 1;
	char *src = *table, *dst;

	while (cap < n)
		cap <<= 1;
	dst = malloc(cap * size);

	if (!dst)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		memcpy(dst + (size_t)i * size, src + (size_t)order[i] * size, size);
	free(src);
	*table = dst;
	return 0;
}

/* Sorts one table and rewrites every reference to it. */
#define SORT_TABLE(p, table, n, cmp, fixup)                                          \
	({                                                                           \
		uint32_t *order = NULL, *remap = NULL;                               \
		int _r = sort_perm(p, n, cmp, &order, &remap);                       \
		if (!_r)                                                             \
			_r = permute((void **)&(table), n, sizeof(*(table)), order); \
		if (!_r) {                                                           \
			fixup;                                                       \
		}                                                                    \
		free(order);                                                         \
		free(remap);                                                         \
		_r;                                                                  \
	})

static int check_adjacent(struct su_plan *p, struct su_err *err)
{
	char a[SU_PREFIX_STRLEN];

	for (uint32_t i = 1; i < p->n_dcs; i++)
		if (!strcmp(p->dcs[i].name, p->dcs[i - 1].name))
			return su_err__set(err, EINVAL, "data center '%s' listed twice", p->dcs[i].name);
	for (uint32_t i = 1; i < p->n_servers; i++) {
		const struct su_plan_server *x = &p->servers[i], *y = &p->servers[i - 1];

		if (!strcmp(x->name, y->name) && x->addr == y->addr && x->dc == y->dc)
			return su_err__set(err, EINVAL, "server '%s' listed twice", x->name);
		if (!strcmp(x->name, y->name) && !x->retired && !y->retired)
			return su_err__set(err, EINVAL, "server '%s' active twice", x->name);
	}
	for (uint32_t i = 1; i < p->n_prefixes; i++)
		if (p->prefixes[i].prefix.addr == p->prefixes[i - 1].prefix.addr &&
		    p->prefixes[i].prefix.len == p->prefixes[i - 1].prefix.len &&
		    !su_tags__cmp(&p->prefixes[i].tags, &p->prefixes[i - 1].tags))
			return su_err__set(err, EINVAL, "prefix %s listed twice",
					   su_prefix__str(&p->prefixes[i].prefix, a));
	for (uint32_t i = 1; i < p->n_demands; i++)
		if (!cmp_demand(&(uint32_t){ i }, &(uint32_t){ i - 1 }, p))
			return su_err__set(err, EINVAL, "a tag-set of data center '%s' is listed twice",
					   p->dcs[p->demands[i].dc].name);
	for (uint32_t i = 1; i < p->n_ips; i++)
		if (p->ips[i].ip == p->ips[i - 1].ip)
			return su_err__set(err, EINVAL, "IP %s listed twice",
					   su_addr__str(p->ips[i].ip, a));
	return 0;
}

int su_plan__canonicalize(struct su_plan *p, struct su_err *err)
{
	int ret;

	ret = SORT_TABLE(p, p->dcs, p->n_dcs, cmp_dc, {
		for (uint32_t i = 0; i < p->n_servers; i++)
			p->servers[i].dc = remap[p->servers[i].dc];
		for (uint32_t i = 0; i < p->n_demands; i++)
			p->demands[i].dc = remap[p->demands[i].dc];
		for (uint32_t i = 0; i < p->n_ips; i++) {
			p->ips[i].dc = remap[p->ips[i].dc];
			if (p->ips[i].prev_dc >= 0)
				p->ips[i].prev_dc = (int32_t)remap[p->ips[i].prev_dc];
		}
		for (uint32_t i = 0; i < p->n_prefixes; i++) {
			for (uint32_t j = 0; j < p->prefixes[i].n_dcs; j++)
				p->prefixes[i].dcs[j] = remap[p->prefixes[i].dcs[j]];
			if (p->prefixes[i].n_dcs)
				qsort_r(p->prefixes[i].dcs, p->prefixes[i].n_dcs, sizeof(uint32_t),
				cmp_u32_ptr, NULL);
		}
	});
	if (!ret)
		ret = SORT_TABLE(p, p->servers, p->n_servers, cmp_server, {
			for (size_t i = 0; i < p->n_slots; i++) {
				if (p->slots[i].server >= 0)
					p->slots[i].server = (int32_t)remap[p->slots[i].server];
				if (p->slots[i].prev_server >= 0)
					p->slots[i].prev_server = (int32_t)remap[p->slots[i].prev_server];
			}
		});
	if (!ret)
		ret = SORT_TABLE(p, p->prefixes, p->n_prefixes, cmp_prefix, {
			for (uint32_t i = 0; i < p->n_ips; i++)
				p->ips[i].prefix = remap[p->ips[i].prefix];
		});
	if (!ret)
		ret = SORT_TABLE(p, p->demands, p->n_demands, cmp_demand, {
			for (uint32_t i = 0; i < p->n_ips; i++)
				p->ips[i].demand = remap[p->ips[i].demand];
		});
	if (!ret)
		ret = SORT_TABLE(p, p->ips, p->n_ips, cmp_ip, {});
	if (ret == -ENOMEM)
		return su_err__set(err, ENOMEM, "out of memory");
	return ret ? ret : check_adjacent(p, err);
}

const char *su_state__name(uint8_t state)
{
	return state == SU_ACTIVE ? "active" : state == SU_DRAINING ? "draining" : "free";
}

/* ---- lookups ------------------------------------------------------------- */

const struct su_plan_ip *su_plan__find_ip(const struct su_plan *p, uint32_t ip)
{
	uint32_t lo = 0, hi = p->n_ips;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (p->ips[mid].ip == ip)
			return &p->ips[mid];
		if (p->ips[mid].ip < ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct su_plan_slot *su_plan__slot(const struct su_plan *p, const struct su_plan_ip *ip,
					 uint32_t port)
{
	uint32_t slice = port >> p->slice_shift;

	if (port > 65535 || slice < p->first_slice || slice >= p->first_slice + p->slices_per_ip)
		return NULL;
	return &p->slots[ip->first_slot + slice - p->first_slice];
}

int su_plan__find_dc(const struct su_plan *p, const char *name)
{
	for (uint32_t i = 0; i < p->n_dcs; i++)
		if (!strcmp(p->dcs[i].name, name))
			return (int)i;
	return -ENOENT;
}

int su_plan__find_server(const struct su_plan *p, const char *name)
{
	for (uint32_t i = 0; i < p->n_servers; i++)
		if (!p->servers[i].retired && !strcmp(p->servers[i].name, name))
			return (int)i;
	return -ENOENT;
}

/* ---- comparison and cost --------------------------------------------------- */

static bool server_equal(const struct su_plan *a, int32_t x, const struct su_plan *b, int32_t y)
{
	if (x < 0 || y < 0)
		return x == y;
	return a->servers[x].addr == b->servers[y].addr && a->servers[x].retired == b->servers[y].retired &&
	       !strcmp(a->servers[x].name, b->servers[y].name);
}

static bool tables_equal(const struct su_plan *a, const struct su_plan *b)
{
	if (a->n_dcs != b->n_dcs || a->n_servers != b->n_servers || a->n_prefixes != b->n_prefixes ||
	    a->n_demands != b->n_demands || a->n_ips != b->n_ips)
		return false;
	for (uint32_t i = 0; i < a->n_dcs; i++)
		if (strcmp(a->dcs[i].name, b->dcs[i].name) || a->dcs[i].router != b->dcs[i].router ||
		    a->dcs[i].retired != b->dcs[i].retired)
			return false;
	for (uint32_t i = 0; i < a->n_servers; i++)
		if (!server_equal(a, (int32_t)i, b, (int32_t)i) || a->servers[i].dc != b->servers[i].dc)
			return false;
	for (uint32_t i = 0; i < a->n_prefixes; i++) {
		const struct su_plan_prefix *x = &a->prefixes[i], *y = &b->prefixes[i];

		if (x->prefix.addr != y->prefix.addr || x->prefix.len != y->prefix.len ||
		    x->retired != y->retired || su_tags__cmp(&x->tags, &y->tags) || x->n_dcs != y->n_dcs ||
		    (x->n_dcs && memcmp(x->dcs, y->dcs, x->n_dcs * sizeof(*x->dcs))))
			return false;
	}
	for (uint32_t i = 0; i < a->n_demands; i++) {
		const struct su_plan_demand *x = &a->demands[i], *y = &b->demands[i];

		if (x->dc != y->dc || x->slices != y->slices || x->retired != y->retired ||
		    su_tags__cmp(&x->tags, &y->tags))
			return false;
	}
	return true;
}

bool su_plan__equal(const struct su_plan *a, const struct su_plan *b)
{
	if (a->port_lo != b->port_lo || a->port_hi != b->port_hi || a->slice_size != b->slice_size ||
	    a->drain != b->drain || !tables_equal(a, b))
		return false;
	for (uint32_t i = 0; i < a->n_ips; i++) {
		const struct su_plan_ip *x = &a->ips[i], *y = &b->ips[i];

		if (x->ip != y->ip || x->dc != y->dc || x->demand != y->demand || x->prefix != y->prefix ||
		    x->state != y->state || x->deadline != y->deadline ||
		    (x->prev_dc < 0) != (y->prev_dc < 0) || x->prev_deadline != y->prev_deadline ||
		    (x->prev_dc >= 0 && strcmp(a->dcs[x->prev_dc].name, b->dcs[y->prev_dc].name)))
			return false;
		for (uint32_t s = 0; s < a->slices_per_ip; s++) {
			const struct su_plan_slot *sx = &a->slots[x->first_slot + s];
			const struct su_plan_slot *sy = &b->slots[y->first_slot + s];

			if (sx->state != sy->state || sx->deadline != sy->deadline ||
			    !server_equal(a, sx->server, b, sy->server) ||
			    !server_equal(a, sx->prev_server, b, sy->prev_server))
				return false;
		}
	}
	return true;
}

void su_plan__cost(const struct su_plan *p, struct su_plan_cost *c)
{
	uint32_t *servers_in_dc = calloc(p->n_dcs + 1, sizeof(*servers_in_dc));

	*c = (struct su_plan_cost){ 0 };
	if (!servers_in_dc)
		return;
	for (uint32_t i = 0; i < p->n_servers; i++)
		if (!p->servers[i].retired)
			servers_in_dc[p->servers[i].dc]++;
	for (uint32_t i = 0; i < p->n_demands; i++) {
		const struct su_plan_demand *d = &p->demands[i];
		uint64_t need = (uint64_t)servers_in_dc[d->dc] * d->slices;

		if (d->retired)
			continue;
		c->per_server += need;
		c->lower_bound += (need + p->slices_per_ip - 1) / p->slices_per_ip;
	}
	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *ip = &p->ips[i];

		if (ip->state == SU_ACTIVE)
			c->active_ips++;
		else
			c->draining_ips++;
		for (uint32_t s = 0; s < p->slices_per_ip; s++) {
			uint8_t st = p->slots[ip->first_slot + s].state;

			c->slices_active += st == SU_ACTIVE;
			c->slices_draining += st == SU_DRAINING;
			c->slices_free += st == SU_FREE;
		}
	}
	free(servers_in_dc);
}

void su_plan__free(struct su_plan *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->n_dcs; i++)
		free(p->dcs[i].name);
	for (uint32_t i = 0; i < p->n_servers; i++)
		free(p->servers[i].name);
	for (uint32_t i = 0; i < p->n_prefixes; i++) {
		su_tags__free(&p->prefixes[i].tags);
		free(p->prefixes[i].dcs);
	}
	for (uint32_t i = 0; i < p->n_demands; i++)
		su_tags__free(&p->demands[i].tags);
	free(p->dcs);
	free(p->servers);
	free(p->prefixes);
	free(p->demands);
	free(p->ips);
	free(p->slots);
	free(p);
}
