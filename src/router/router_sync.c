/* Plan -> router maps.  The data path reads su_ips then su_slots with no
 * lock, so every write here is ordered so that any interleaving routes a
 * packet by a whole plan entry: new slot region first, then the IP flip.
 *
 * A sync is two passes over the plan.  The first only reads the maps and
 * counts what the apply will need (IP entries, slot regions, router and
 * target entries at their peak); if any map is too small the sync is
 * refused before anything is written, so the previous plan keeps
 * forwarding.  The second writes.  Both are linear in the plan and the
 * maps: sorted arrays and binary search, no map walk restarted after a
 * delete, no scan of the plan per map key. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "router/router.h"

static int cmp_be32(const void *a, const void *b)
{
	uint32_t x = ntohl(*(const __be32 *)a), y = ntohl(*(const __be32 *)b);

	return x < y ? -1 : x > y;
}

static bool in_set(const __be32 *set, uint32_t n, __be32 a)
{
	return n && bsearch(&a, set, n, sizeof(*set), cmp_be32);
}

static uint32_t local_ips(const struct su_plan *p, uint32_t dc)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < p->n_ips; i++)
		n += p->ips[i].dc == dc;
	return n;
}

static uint32_t peer_routers(const struct su_plan *p, uint32_t dc)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < p->n_dcs; i++)
		n += i != dc && p->dcs[i].router;
	return n;
}

static uint32_t dc_servers(const struct su_plan *p, uint32_t dc)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < p->n_servers; i++)
		n += p->servers[i].dc == dc;
	return n;
}

static uint32_t at_least(uint64_t v, uint32_t floor, uint64_t ceiling)
{
	if (v < floor)
		v = floor;
	return (uint32_t)(v > ceiling ? ceiling : v);
}

void su_router__caps_for_plan(const struct su_plan *p, uint32_t dc, struct su_router_caps *c)
{
	uint64_t spi = p->slices_per_ip ? p->slices_per_ip : 1;
	uint64_t targets = (uint64_t)dc_servers(p, dc) + peer_routers(p, dc);

	/* Headroom: the plan may grow by half before a restart must resize;
	 * the IP map allocates its entries on use (BPF_F_NO_PREALLOC), so
	 * the headroom costs only its bucket array. */
	c->ips = at_least((uint64_t)p->n_ips * 3 / 2, SU_CAP_MIN, SU_CAP_MAX_IPS);
	/* Two regions per local IP (double buffering), plus the headroom. */
	c->slots = (uint32_t)(at_least((uint64_t)local_ips(p, dc) * 3, SU_CAP_MIN / 16,
				       SU_CAP_MAX_SLOTS / spi) * spi);
	/* Old and new routers side by side while a plan applies. */
	c->routers = at_least((uint64_t)peer_routers(p, dc) * 2, SU_CAP_MIN / 16, SU_CAP_MAX_ROUTERS);
	/* Per CPU: what this DC forwards to (its servers and the peer
	 * routers), old and new side by side until departed ones are pruned. */
	c->targets = at_least(targets * 2, SU_CAP_MIN / 16, SU_CAP_MAX_TARGETS);
}

int su_router__check_plan(const struct su_plan *p, uint32_t dc, struct su_err *err)
{
	uint64_t local;

	if (dc >= p->n_dcs)
		return su_err__set(err, EINVAL, "DC index %u not in the plan", dc);
	if (!p->dcs[dc].router)
		return su_err__set(err, EINVAL, "DC %s has no router address in the plan",
				   p->dcs[dc].name);
	if (p->slices_per_ip == 0 || p->slice_shift > 16 ||
	    p->first_slice + p->slices_per_ip > (1u << (16 - p->slice_shift)))
		return su_err__set(err, EINVAL, "plan slicing (shift %u, first %u, %u per IP) is "
				   "not a partition of the 16-bit port space",
				   p->slice_shift, p->first_slice, p->slices_per_ip);
	if (p->n_ips > SU_CAP_MAX_IPS)
		return su_err__set(err, E2BIG, "plan has %u egress IPs, a router holds at most %u",
				   p->n_ips, SU_CAP_MAX_IPS);
	local = local_ips(p, dc);
	/* Double buffering: every local IP may need a second region at once. */
	if (local * 2 * p->slices_per_ip > SU_CAP_MAX_SLOTS)
		return su_err__set(err, E2BIG,
				   "DC %s owns %llu egress IPs x %u slices; the slot array holds at "
				   "most %u (half of it for atomic updates)",
				   p->dcs[dc].name, (unsigned long long)local, p->slices_per_ip,
				   SU_CAP_MAX_SLOTS);
	if (peer_routers(p, dc) > SU_CAP_MAX_ROUTERS)
		return su_err__set(err, E2BIG, "plan has %u peer routers, a router holds at most %u",
				   peer_routers(p, dc), SU_CAP_MAX_ROUTERS);
	return 0;
}

int su_router__map_cap(int fd, uint32_t *cap)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*cap = info.max_entries;
	return 0;
}

/* ---- su_ipv: the IPs' routes, written in place under a sequence count ---- */

/* The loader's view of su_ipv: the array mmap'd (BPF_F_MMAPABLE), so an
 * entry is written field by field in the order the readers rely on, which
 * a map update (one memcpy) does not promise. */
struct ipv_mem {
	struct su_ipv *e;
	uint32_t n;
	size_t len;
};

static int ipv_map(int fd, struct ipv_mem *mm)
{
	long page = sysconf(_SC_PAGESIZE);
	int rc = su_router__map_cap(fd, &mm->n);
	void *p;

	if (rc)
		return rc;
	mm->len = ((size_t)mm->n * sizeof(struct su_ipv) + (size_t)page - 1) & ~((size_t)page - 1);
	p = mmap(NULL, mm->len ? mm->len : (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	mm->e = p;
	return 0;
}

static void ipv_unmap(struct ipv_mem *mm)
{
	if (mm->e)
		munmap(mm->e, mm->len);
	mm->e = NULL;
}

/* seqcount write side (the reader is ip_lookup() in router.bpf.c): odd,
 * then the fields, then even, each store ordered after the one before.
 * One writer at a time (the router holds the pin directory's lock).  A
 * writer killed in the middle left seq odd: the next write starts from the
 * even value below it. */
static void ipv_write(struct su_ipv *e, __be32 ip, const struct su_ip_val *v)
{
	uint32_t seq = __atomic_load_n(&e->seq, __ATOMIC_RELAXED) & ~1u;

	__atomic_store_n(&e->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE); /* smp_wmb(): odd before the fields */
	__atomic_store_n(&e->ip, ip, __ATOMIC_RELAXED);
	__atomic_store_n(&e->v.router, v->router, __ATOMIC_RELAXED);
	__atomic_store_n(&e->v.slot_base, v->slot_base, __ATOMIC_RELAXED);
	__atomic_store_n(&e->v.flags, v->flags, __ATOMIC_RELAXED);
	__atomic_store_n(&e->seq, seq + 2, __ATOMIC_RELEASE); /* fields before even */
}

static void ipv_read(const struct su_ipv *e, __be32 *ip, struct su_ip_val *v)
{
	*ip = __atomic_load_n(&e->ip, __ATOMIC_RELAXED);
	v->router = __atomic_load_n(&e->v.router, __ATOMIC_RELAXED);
	v->slot_base = __atomic_load_n(&e->v.slot_base, __ATOMIC_RELAXED);
	v->flags = __atomic_load_n(&e->v.flags, __ATOMIC_RELAXED);
}

int su_router__ip_get(const struct su_router_maps *m, __be32 ip, struct su_ip_val *v)
{
	struct ipv_mem mm = { 0 };
	uint32_t idx;
	__be32 owner;
	int rc;

	if (bpf_map_lookup_elem(m->ips, &ip, &idx))
		return -errno;
	if ((rc = ipv_map(m->ipv, &mm)))
		return rc;
	rc = -ENOENT;
	if (idx < mm.n) {
		ipv_read(&mm.e[idx], &owner, v);
		rc = owner == ip ? 0 : -ENOENT;
	}
	ipv_unmap(&mm);
	return rc;
}

int su_router__ip_put(const struct su_router_maps *m, __be32 ip, const struct su_ip_val *v)
{
	struct ipv_mem mm = { 0 };
	uint32_t idx;
	int rc;

	if ((rc = ipv_map(m->ipv, &mm)))
		return rc;
	if (bpf_map_lookup_elem(m->ips, &ip, &idx) || idx >= mm.n) {
		/* A free index: no IP in its entry. */
		for (idx = 0; idx < mm.n && mm.e[idx].ip; idx++)
			;
		if (idx == mm.n) {
			ipv_unmap(&mm);
			return -E2BIG;
		}
		ipv_write(&mm.e[idx], ip, v);
		rc = bpf_map_update_elem(m->ips, &ip, &idx, BPF_ANY) ? -errno : 0;
	} else {
		ipv_write(&mm.e[idx], ip, v);
	}
	ipv_unmap(&mm);
	return rc;
}

/* ---- reading the maps ---- */

/* Existing su_ips content, read once per sync. */
struct ip_entry {
	__be32 ip;
	uint32_t idx; /* its su_ipv index, fixed while the IP stays */
	struct su_ip_val v;
	int keep; /* still in the plan */
	int lost; /* index out of the array or naming another IP: re-indexed */
};

static int cmp_entry(const void *a, const void *b)
{
	return cmp_be32(&((const struct ip_entry *)a)->ip, &((const struct ip_entry *)b)->ip);
}

static int grow(void **v, uint32_t *cap, uint32_t n, size_t size)
{
	void *nv;

	if (n < *cap)
		return 0;
	nv = realloc(*v, (size_t)(*cap = *cap ? 2 * *cap : 256) * size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	return 0;
}

/* Every key of a hash map, without touching it: the walk never restarts,
 * so it is linear even if the caller deletes afterwards. */
static int read_keys(int fd, __be32 **out, uint32_t *n_out)
{
	__be32 *v = NULL, key, next, *prev = NULL;
	uint32_t n = 0, cap = 0;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		if (grow((void **)&v, &cap, n, sizeof(*v))) {
			free(v);
			return -ENOMEM;
		}
		v[n++] = key = next;
		prev = &key;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_be32);
	*out = v;
	*n_out = n;
	return 0;
}

/* The whole IP map.  Batched where the kernel can (one syscall per 4096
 * entries instead of two per entry: a million-IP plan reads in tens of
 * milliseconds), key by key otherwise. */
static int read_ips_batch(int fd, struct ip_entry **out, uint32_t *n_out)
{
	enum { CHUNK = 4096 };
	__be32 keys[CHUNK];
	uint32_t vals[CHUNK];
	struct ip_entry *v = NULL;
	uint32_t n = 0, cap = 0, batch = 0;
	bool first = true;
	int rc;

	for (;;) {
		uint32_t count = CHUNK;

		rc = bpf_map_lookup_batch(fd, first ? NULL : &batch, &batch, keys, vals, &count,
					  NULL);
		first = false;
		if (rc && errno != ENOENT) {
			rc = -errno;
			break;
		}
		for (uint32_t i = 0; i < count; i++) {
			if (grow((void **)&v, &cap, n, sizeof(*v))) {
				free(v);
				return -ENOMEM;
			}
			memset(&v[n], 0, sizeof(v[n]));
			v[n].ip = keys[i];
			v[n++].idx = vals[i];
		}
		if (rc) { /* ENOENT: that was the last batch */
			rc = 0;
			break;
		}
	}
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n_out = n;
	return 0;
}

static int read_ips(int fd, struct ip_entry **out, uint32_t *n_out)
{
	__be32 *keys;
	struct ip_entry *v;
	uint32_t n, m = 0;
	int rc = read_ips_batch(fd, out, n_out);

	if (rc != -EINVAL && rc != -ENOTSUP && rc != -EOPNOTSUPP)
		goto sort;
	rc = read_keys(fd, &keys, &n);
	if (rc)
		return rc;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		free(keys);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		v[m].ip = keys[i];
		if (!bpf_map_lookup_elem(fd, &keys[i], &v[m].idx))
			m++;
	}
	free(keys);
	*out = v;
	*n_out = m;
sort:
	if (!rc && *n_out)
		qsort(*out, *n_out, sizeof(**out), cmp_entry);
	return rc;
}

static struct ip_entry *find_entry(struct ip_entry *v, uint32_t n, __be32 ip)
{
	struct ip_entry key = { .ip = ip };

	if (!n)
		return NULL;
	return bsearch(&key, v, n, sizeof(*v), cmp_entry);
}

/* The slot values an IP should have: server address per slice, 0 if free.
 * Draining slots still route to their old owner: its connections live on. */
static void want_slots(const struct su_plan *p, const struct su_plan_ip *ip, __be32 *out)
{
	for (uint32_t s = 0; s < p->slices_per_ip; s++) {
		const struct su_plan_slot *slot = &p->slots[ip->first_slot + s];

		out[s] = slot->server >= 0 && slot->state != SU_FREE ?
				 htonl(p->servers[slot->server].addr) :
				 0;
	}
}

static int slots_equal(int fd, uint32_t base, const __be32 *want, uint32_t spi)
{
	for (uint32_t s = 0; s < spi; s++) {
		uint32_t idx = base + s;
		__be32 have;

		if (bpf_map_lookup_elem(fd, &idx, &have) || have != want[s])
			return 0;
	}
	return 1;
}

static int write_slots(int fd, uint32_t base, const __be32 *want, uint32_t spi)
{
	for (uint32_t s = 0; s < spi; s++) {
		uint32_t idx = base + s;

		if (bpf_map_update_elem(fd, &idx, &want[s], BPF_ANY))
			return -errno;
	}
	return 0;
}

/* ---- the sync ---- */

/* Regions of the slot array: region r is [r * spi, (r + 1) * spi). */
struct regions {
	uint8_t *used;
	uint32_t n, spi, next, live;
};

static int regions__alloc(struct regions *r, uint32_t *base)
{
	for (; r->next < r->n; r->next++) {
		if (!r->used[r->next]) {
			r->used[r->next] = 1;
			*base = r->next++ * r->spi;
			return 0;
		}
	}
	return -ENOSPC;
}

/* Everything one sync works with. */
struct sync {
	const struct su_router_maps *m;
	const struct su_plan *p;
	uint32_t dc;
	struct su_router_caps cap;
	struct ip_entry *have; /* su_ips before the sync, sorted */
	uint32_t n_have;
	uint8_t *change;       /* per plan IP: 1 when its entry must be written */
	__be32 *want;          /* one IP's slot values */
	__be32 *routers;       /* peer routers of the plan, sorted */
	uint32_t n_routers;
	__be32 *old_routers;   /* su_routers keys before the sync, sorted */
	uint32_t n_old_routers;
	__be32 *targets;       /* what this DC forwards to in the plan, sorted */
	uint32_t n_targets;
	__be32 *old_targets;   /* su_targets keys before the sync, sorted */
	uint32_t n_old_targets;
	__be32 *old_hosts;     /* su_hosts keys before the sync, sorted */
	uint32_t n_old_hosts;
	uint32_t cap_hosts;
	struct regions reg;
	struct ipv_mem ipv;    /* su_ipv, mmap'd */
	uint8_t *idx_used;     /* per su_ipv index: held by an IP */
	uint32_t idx_next;
	struct su_router_sync_stats *st;
	struct su_err *err;
};

static void sync__free(struct sync *s)
{
	free(s->have);
	free(s->change);
	free(s->want);
	free(s->routers);
	free(s->old_routers);
	free(s->targets);
	free(s->old_targets);
	free(s->old_hosts);
	free(s->reg.used);
	free(s->idx_used);
	ipv_unmap(&s->ipv);
}

/* A su_ipv index no IP holds.  Indexes of IPs removed in this pass are
 * free again: a packet still reading one finds another IP there (or 0)
 * and takes it as a miss. */
static int sync__alloc_idx(struct sync *s, uint32_t *idx)
{
	for (; s->idx_next < s->ipv.n; s->idx_next++) {
		if (!s->idx_used[s->idx_next]) {
			s->idx_used[s->idx_next] = 1;
			*idx = s->idx_next++;
			return 0;
		}
	}
	return -ENOSPC;
}

static uint32_t sorted_unique(__be32 *v, uint32_t n)
{
	uint32_t m = 0;

	if (n)
		qsort(v, n, sizeof(*v), cmp_be32);
	for (uint32_t i = 0; i < n; i++)
		if (!m || v[m - 1] != v[i])
			v[m++] = v[i];
	return m;
}

/* The plan's peer routers and targets (this DC's servers, every server
 * owning a slot of a local IP, the peer routers), as sorted sets. */
static int sync__plan_sets(struct sync *s)
{
	const struct su_plan *p = s->p;
	uint32_t nr = 0, nt = 0;

	s->routers = calloc(p->n_dcs + 1, sizeof(*s->routers));
	s->targets = calloc((size_t)p->n_dcs + p->n_servers + 1, sizeof(*s->targets));
	if (!s->routers || !s->targets)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->n_dcs; i++) {
		if (i == s->dc || !p->dcs[i].router)
			continue;
		s->routers[nr++] = htonl(p->dcs[i].router);
		s->targets[nt++] = htonl(p->dcs[i].router);
	}
	for (uint32_t i = 0; i < p->n_servers; i++)
		if (p->servers[i].dc == s->dc)
			s->targets[nt++] = htonl(p->servers[i].addr);
	s->n_routers = sorted_unique(s->routers, nr);
	nt = sorted_unique(s->targets, nt);
	/* A slot owned by a server of another DC would be a planner bug, but
	 * it is routed all the same, so it counts as a target. */
	for (uint32_t i = 0; i < p->n_ips; i++) {
		if (p->ips[i].dc != s->dc)
			continue;
		for (uint32_t k = 0; k < p->slices_per_ip; k++) {
			int32_t sv = p->slots[p->ips[i].first_slot + k].server;

			if (sv >= 0 && p->servers[sv].dc != s->dc)
				return su_err__set(s->err, EINVAL, "slot of a local IP owned by "
						   "server %s of another DC", p->servers[sv].name);
		}
	}
	s->n_targets = nt;
	return 0;
}

/* Counts, per map, the most entries the apply will hold at any moment
 * and refuses before anything changes when one does not fit. */
static int sync__precheck(struct sync *s)
{
	const struct su_plan *p = s->p;
	uint32_t new_regions = 0, routers_union = s->n_old_routers, targets_union = s->n_old_targets;

	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *ip = &p->ips[i];
		struct ip_entry *e = find_entry(s->have, s->n_have, htonl(ip->ip));
		struct su_ip_val v = { 0 };

		if (e)
			e->keep = 1;
		if (e && e->lost) {
			s->change[i] = 1;
			new_regions += ip->dc == s->dc;
			continue;
		}
		if (ip->dc != s->dc) {
			v.router = htonl(p->dcs[ip->dc].router);
			s->change[i] = !e || memcmp(&e->v, &v, sizeof(v));
			continue;
		}
		want_slots(p, ip, s->want);
		s->change[i] = !e || !(e->v.flags & SU_IP_LOCAL) ||
			       (uint64_t)e->v.slot_base + s->reg.spi > s->cap.slots ||
			       !slots_equal(s->m->slots, e->v.slot_base, s->want, s->reg.spi);
		new_regions += s->change[i];
	}
	for (uint32_t i = 0; i < s->n_routers; i++)
		routers_union += !in_set(s->old_routers, s->n_old_routers, s->routers[i]);
	for (uint32_t i = 0; i < s->n_targets; i++)
		targets_union += !in_set(s->old_targets, s->n_old_targets, s->targets[i]);

	/* Departed IPs go first, so the IP map peaks at the new plan's size;
	 * every IP holds one su_ipv index. */
	if (p->n_ips > s->cap.ips || p->n_ips > s->ipv.n)
		return su_err__set(s->err, E2BIG, "plan serial %llu has %u egress IPs, the IP map "
				   "holds %u: restart the router to resize its maps (the current "
				   "plan keeps forwarding)", (unsigned long long)p->serial,
				   p->n_ips, s->cap.ips < s->ipv.n ? s->cap.ips : s->ipv.n);
	/* Regions still referenced by a live entry are never rewritten in the
	 * same pass: a packet may be reading them. */
	if ((uint64_t)s->reg.live + new_regions > s->reg.n)
		return su_err__set(s->err, E2BIG, "plan serial %llu needs %u new slot regions "
				   "of %u slices beside the %u in use, the slot array holds %u: "
				   "restart the router to resize its maps (the current plan keeps "
				   "forwarding)", (unsigned long long)p->serial, new_regions,
				   s->reg.spi, s->reg.live, s->reg.n);
	if (s->n_routers > s->cap.routers)
		return su_err__set(s->err, E2BIG, "plan serial %llu has %u peer routers, the router "
				   "map holds %u: restart the router to resize its maps",
				   (unsigned long long)p->serial, s->n_routers, s->cap.routers);
	if (s->m->hosts >= 0 && s->n_targets > s->cap_hosts)
		return su_err__set(s->err, E2BIG, "plan serial %llu has %u servers and peer routers, "
				   "the anti-spoofing host map holds %u: restart the router to "
				   "resize its maps", (unsigned long long)p->serial, s->n_targets,
				   s->cap_hosts);
	if (s->m->targets >= 0 && s->n_targets > s->cap.targets)
		return su_err__set(s->err, E2BIG, "plan serial %llu has %u forwarding targets (servers "
				   "and peer routers), the target map holds %u: restart the router "
				   "to resize its maps", (unsigned long long)p->serial,
				   s->n_targets, s->cap.targets);
	/* Where old and new do not fit side by side, departed entries are
	 * removed first (see sync__apply). */
	s->st->routers_first = routers_union > s->cap.routers;
	s->st->targets_first = targets_union > s->cap.targets;
	return 0;
}

static int sync__remove_routers(struct sync *s)
{
	for (uint32_t i = 0; i < s->n_old_routers; i++) {
		if (in_set(s->routers, s->n_routers, s->old_routers[i]))
			continue;
		if (bpf_map_delete_elem(s->m->routers, &s->old_routers[i]) && errno != ENOENT)
			return su_err__set(s->err, errno, "removing a departed router: %s",
					   strerror(errno));
	}
	return 0;
}

static int sync__add_routers(struct sync *s)
{
	const struct su_plan *p = s->p;

	for (uint32_t i = 0; i < p->n_dcs; i++) {
		__be32 a = htonl(p->dcs[i].router);

		if (i == s->dc || !a)
			continue;
		if (bpf_map_update_elem(s->m->routers, &a, &i, BPF_ANY))
			return su_err__set(s->err, errno, "updating the router map: %s",
					   strerror(errno));
		s->st->routers++;
	}
	return 0;
}

/* Targets (servers, routers) no longer in the plan: their counters and
 * cached next hops go, so the per-CPU table never fills up.  The data path
 * may re-create one a packet still in flight goes to; the next sync
 * removes it again. */
static void sync__prune_targets(struct sync *s)
{
	for (uint32_t i = 0; i < s->n_old_targets; i++) {
		if (in_set(s->targets, s->n_targets, s->old_targets[i]))
			continue;
		if (!bpf_map_delete_elem(s->m->targets, &s->old_targets[i]))
			s->st->targets_removed++;
	}
}

/* The flip of one IP: its su_ipv entry rewritten in place under the
 * sequence count (a packet reads the whole old or the whole new route); a
 * new IP's entry is written before its su_ips element links it. */
static int sync__write_ip(struct sync *s, __be32 key, const struct su_ip_val *v)
{
	struct ip_entry *e = find_entry(s->have, s->n_have, key);
	uint32_t idx;

	if (e && !e->lost) {
		ipv_write(&s->ipv.e[e->idx], key, v);
		return 0;
	}
	if (sync__alloc_idx(s, &idx)) /* precheck made room */
		return -ENOSPC;
	ipv_write(&s->ipv.e[idx], key, v);
	/* A lost entry's element is updated (its 4-byte index is one load
	 * for the reader), a new IP's inserted. */
	if (bpf_map_update_elem(s->m->ips, &key, &idx, e ? BPF_EXIST : BPF_NOEXIST))
		return -errno;
	return 0;
}

/* The anti-spoofing host set: departed addresses go first (the map then
 * never holds more than the new plan's), then every server of this DC and
 * peer router is written with its kind. */
static int sync__hosts(struct sync *s)
{
	for (uint32_t i = 0; i < s->n_old_hosts; i++)
		if (!in_set(s->targets, s->n_targets, s->old_hosts[i]) &&
		    bpf_map_delete_elem(s->m->hosts, &s->old_hosts[i]) && errno != ENOENT)
			return su_err__set(s->err, errno, "removing a departed host: %s",
					   strerror(errno));
	for (uint32_t i = 0; i < s->n_targets; i++) {
		uint32_t kind = in_set(s->routers, s->n_routers, s->targets[i]) ? SU_HOST_ROUTER :
										  SU_HOST_SERVER;

		if (bpf_map_update_elem(s->m->hosts, &s->targets[i], &kind, BPF_ANY))
			return su_err__set(s->err, errno, "updating the host map: %s",
					   strerror(errno));
	}
	return 0;
}

static int sync__flip_ips(struct sync *s)
{
	const struct su_plan *p = s->p;

	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *ip = &p->ips[i];
		__be32 key = htonl(ip->ip);
		struct su_ip_val v = { 0 };
		char a[SU_ADDR_STRLEN];
		int rc;

		if (ip->dc != s->dc)
			s->st->ips_remote++;
		else
			s->st->ips_local++;
		if (!s->change[i]) {
			s->st->ips_unchanged++;
			continue;
		}
		if (ip->dc != s->dc) {
			v.router = htonl(p->dcs[ip->dc].router);
		} else {
			want_slots(p, ip, s->want);
			v.flags = SU_IP_LOCAL;
			if (regions__alloc(&s->reg, &v.slot_base)) /* precheck made room */
				return su_err__set(s->err, ENOSPC, "no free slot region for %s",
						   su_addr__str(ip->ip, a));
			rc = write_slots(s->m->slots, v.slot_base, s->want, s->reg.spi);
			if (rc)
				return su_err__set(s->err, -rc, "writing slots of %s: %s",
						   su_addr__str(ip->ip, a), strerror(-rc));
		}
		if ((rc = sync__write_ip(s, key, &v)))
			return su_err__set(s->err, -rc, "updating %s: %s", su_addr__str(ip->ip, a),
					   strerror(-rc));
		s->st->ips_changed++;
	}
	return 0;
}

static int sync__apply(struct sync *s)
{
	int rc;

	/* Departed IPs first: the map then never holds more than the larger
	 * of the two plans.  Their packets go to the kernel from now on,
	 * which is what the new plan says either way. */
	for (uint32_t i = 0; i < s->n_have; i++) {
		if (s->have[i].keep)
			continue;
		if (bpf_map_delete_elem(s->m->ips, &s->have[i].ip) && errno != ENOENT)
			return su_err__set(s->err, errno, "removing a departed IP: %s",
					   strerror(errno));
		/* Unlinked first, then its entry cleared: a reader that still
		 * holds the index finds no IP there.  The index is free. */
		if (!s->have[i].lost) {
			ipv_write(&s->ipv.e[s->have[i].idx], 0, &(struct su_ip_val){ 0 });
			s->idx_used[s->have[i].idx] = 0;
		}
		s->st->ips_removed++;
	}
	/* Routers are added before the IPs that point to them and removed
	 * after, unless old and new do not fit side by side. */
	if (s->st->routers_first && (rc = sync__remove_routers(s)))
		return rc;
	if (s->m->targets >= 0 && s->st->targets_first)
		sync__prune_targets(s);
	if ((rc = sync__add_routers(s)) || (rc = sync__flip_ips(s)))
		return rc;
	if (s->m->hosts >= 0 && (rc = sync__hosts(s)))
		return rc;
	if (!s->st->routers_first && (rc = sync__remove_routers(s)))
		return rc;
	if (s->m->targets >= 0 && !s->st->targets_first)
		sync__prune_targets(s);
	return 0;
}

static int sync__read(struct sync *s)
{
	int rc;

	if ((rc = su_router__map_cap(s->m->ips, &s->cap.ips)) ||
	    (rc = su_router__map_cap(s->m->slots, &s->cap.slots)) ||
	    (rc = su_router__map_cap(s->m->routers, &s->cap.routers)))
		return su_err__set(s->err, -rc, "reading map sizes: %s", strerror(-rc));
	if (s->m->targets >= 0 && (rc = su_router__map_cap(s->m->targets, &s->cap.targets)))
		return su_err__set(s->err, -rc, "reading map sizes: %s", strerror(-rc));
	if (s->m->hosts >= 0 && (rc = su_router__map_cap(s->m->hosts, &s->cap_hosts)))
		return su_err__set(s->err, -rc, "reading map sizes: %s", strerror(-rc));
	s->reg.spi = s->p->slices_per_ip;
	s->reg.n = s->cap.slots / s->reg.spi;
	s->reg.used = calloc(s->reg.n + 1, 1);
	s->change = calloc((size_t)s->p->n_ips + 1, 1);
	s->want = calloc(s->reg.spi, sizeof(*s->want));
	if (!s->reg.used || !s->change || !s->want)
		return su_err__set(s->err, ENOMEM, "out of memory");
	rc = sync__plan_sets(s);
	if (rc == -ENOMEM)
		return su_err__set(s->err, ENOMEM, "out of memory");
	if (rc)
		return rc;
	if ((rc = ipv_map(s->m->ipv, &s->ipv)))
		return su_err__set(s->err, -rc, "mapping the IP route array: %s", strerror(-rc));
	s->idx_used = calloc(s->ipv.n + 1, 1);
	if (!s->idx_used)
		return su_err__set(s->err, ENOMEM, "out of memory");
	if ((rc = read_ips(s->m->ips, &s->have, &s->n_have)) ||
	    (rc = read_keys(s->m->routers, &s->old_routers, &s->n_old_routers)) ||
	    (s->m->targets >= 0 && (rc = read_keys(s->m->targets, &s->old_targets,
						    &s->n_old_targets))) ||
	    (s->m->hosts >= 0 && (rc = read_keys(s->m->hosts, &s->old_hosts, &s->n_old_hosts))))
		return su_err__set(s->err, -rc, "reading the maps: %s", strerror(-rc));
	/* Each IP's route, from its su_ipv entry (one writer: us). */
	for (uint32_t i = 0; i < s->n_have; i++) {
		struct ip_entry *e = &s->have[i];
		__be32 owner = 0;

		if (e->idx < s->ipv.n && !s->idx_used[e->idx])
			ipv_read(&s->ipv.e[e->idx], &owner, &e->v);
		e->lost = owner != e->ip;
		if (e->lost)
			memset(&e->v, 0, sizeof(e->v));
		else
			s->idx_used[e->idx] = 1;
	}
	/* Regions in use by the live entries are off limits for this pass,
	 * even those about to be replaced or removed: a packet may still be
	 * reading them. */
	for (uint32_t i = 0; i < s->n_have; i++) {
		uint32_t r = s->have[i].v.slot_base / s->reg.spi;

		if ((s->have[i].v.flags & SU_IP_LOCAL) && r < s->reg.n && !s->reg.used[r]) {
			s->reg.used[r] = 1;
			s->reg.live++;
		}
	}
	return 0;
}

int su_router__sync(const struct su_router_maps *m, const struct su_plan *p, uint32_t dc,
		    struct su_router_sync_stats *st, struct su_err *err)
{
	struct sync s = { .m = m, .p = p, .dc = dc, .st = st, .err = err };
	int rc;

	memset(st, 0, sizeof(*st));
	rc = su_router__check_plan(p, dc, err);
	if (!rc)
		rc = sync__read(&s);
	if (!rc)
		rc = sync__precheck(&s);
	if (!rc)
		rc = sync__apply(&s);
	sync__free(&s);
	return rc;
}

/* ---- memory ---- */

int su_router__memlock(int fd, uint64_t *bytes)
{
	char path[64], line[128];
	unsigned long long v;
	FILE *f;
	int rc = -ENOENT;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %llu", &v) == 1) {
			*bytes = v;
			rc = 0;
		}
	fclose(f);
	return rc;
}

static uint64_t round8(uint64_t v)
{
	return (v + 7) & ~7ull;
}

static uint64_t pow2(uint64_t v)
{
	uint64_t r = 1;

	while (r < v)
		r <<= 1;
	return r;
}

/* htab_map_mem_usage(): struct bpf_htab, 16-byte buckets (a power of two
 * >= max_entries), the 8 bucket-lock counters per CPU, then the elements:
 * all of them (+1 spare per CPU) when preallocated, only those in use
 * otherwise.  An element is a 48-byte struct htab_elem + key + value (a
 * pointer to the per-CPU values for per-CPU maps). */
static uint64_t htab_bytes(uint32_t max, uint32_t key, uint32_t value, bool percpu,
			   bool prealloc, uint64_t used, uint32_t ncpus)
{
	uint64_t elem = 48 + round8(key) + (percpu ? 8 : round8(value));
	uint64_t u = 1024 + 16 * pow2(max) + 4ull * ncpus * 8, n;

	if (prealloc) {
		n = (uint64_t)max + ncpus;
		u += elem * n + (percpu ? round8(value) * ncpus * n : 8ull * ncpus);
	} else {
		u += (elem + 8) * used;
		if (percpu)
			u += (16 + round8(value) * ncpus) * used;
	}
	return u;
}

void su_router__mem_estimate(const struct su_router_caps *c, uint32_t n_ips, uint32_t ncpus,
			     struct su_router_mem *out)
{
	/* su_ips (IP -> index, allocated on use) + su_ipv (mmapable array:
	 * struct bpf_array and the values, each page aligned). */
	out->ips = htab_bytes(c->ips, 4, 4, false, false, n_ips, ncpus) + 4096 +
		   ((24ull * c->ips + 4095) & ~4095ull);
	/* Array values are rounded up to 8 bytes: a 4-byte slot takes 8. */
	out->slots = 1024 + 8ull * c->slots;
	out->routers = htab_bytes(c->routers, 4, 4, false, true, 0, ncpus);
	out->targets = htab_bytes(c->targets, 4, sizeof(struct su_target_val), true, true, 0, ncpus);
	/* su_stats (per-CPU counters), the fragment tables (LRU, default
	 * --frag-table per CPU; per-CPU free lists aside), su_meta,
	 * su_icmp_bucket: independent of the plan.  su_pmtu allocates on use. */
	uint64_t frags = (uint64_t)SU_FRAGS_PER_CPU * ncpus;

	out->other = 1024 + 8ull * SU_STAT_MAX * ncpus +
		     htab_bytes(frags, sizeof(struct su_frag_key), sizeof(struct su_frag_val), false, true, 0,
				ncpus) +
		     htab_bytes(frags, sizeof(struct su_frag_key), 4, false, true, 0, ncpus) + 2048 + 16ull * ncpus;
	out->other += htab_bytes(c->targets, 4, 4, false, true, 0, ncpus); /* su_hosts */
	out->total = out->ips + out->slots + out->routers + out->targets + out->other;
}
