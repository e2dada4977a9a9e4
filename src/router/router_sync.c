/* Plan -> router maps.  The data path reads su_ips then su_slots with no
 * lock, so every write here is ordered so that any interleaving routes a
 * packet by a whole plan entry: new slot region first, then the IP flip. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "router/router.h"

int su_router__check_plan(const struct su_plan *p, uint32_t dc, struct su_err *err)
{
	uint32_t local = 0;

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
	if (p->n_ips > SU_MAX_IPS)
		return su_err__set(err, E2BIG, "plan has %u egress IPs, the router holds %u",
				   p->n_ips, SU_MAX_IPS);
	for (uint32_t i = 0; i < p->n_ips; i++)
		local += p->ips[i].dc == dc;
	/* Double buffering: every local IP may need a second region at once. */
	if ((uint64_t)local * 2 * p->slices_per_ip > SU_MAX_SLOTS)
		return su_err__set(err, E2BIG,
				   "DC %s owns %u egress IPs x %u slices; the slot array holds %u "
				   "(half of it for atomic updates)",
				   p->dcs[dc].name, local, p->slices_per_ip, SU_MAX_SLOTS);
	return 0;
}

/* Regions of the slot array: region r is [r * spi, (r + 1) * spi). */
struct regions {
	uint8_t *used;
	uint32_t n, spi, next;
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

/* Existing su_ips content, read once per sync. */
struct ip_entry {
	__be32 ip;
	struct su_ip_val v;
	int keep; /* still in the plan */
};

static int cmp_entry(const void *a, const void *b)
{
	uint32_t x = ntohl(((const struct ip_entry *)a)->ip), y = ntohl(((const struct ip_entry *)b)->ip);

	return x < y ? -1 : x > y;
}

static int read_ips(int fd, struct ip_entry **out, uint32_t *n_out)
{
	struct ip_entry *v = NULL;
	uint32_t n = 0, cap = 0;
	__be32 key, next;
	__be32 *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		if (n == cap) {
			struct ip_entry *nv = realloc(v, (cap = cap ? 2 * cap : 256) * sizeof(*v));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		key = next;
		prev = &key;
		v[n].ip = key;
		v[n].keep = 0;
		if (bpf_map_lookup_elem(fd, &key, &v[n].v))
			continue; /* deleted under us: nobody else writes, but be safe */
		n++;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_entry);
	*out = v;
	*n_out = n;
	return 0;
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

static int sync_routers(int fd, const struct su_plan *p, uint32_t dc, int add,
			struct su_router_sync_stats *st)
{
	__be32 key, next, *prev = NULL;

	if (add) {
		for (uint32_t i = 0; i < p->n_dcs; i++) {
			__be32 a = htonl(p->dcs[i].router);

			if (i == dc || !a)
				continue;
			if (bpf_map_update_elem(fd, &a, &i, BPF_ANY))
				return -errno;
			st->routers++;
		}
		return 0;
	}
	/* Removal pass: restart the walk after each delete (the iteration
	 * order of a hash map changes when it is modified). */
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		int wanted = 0;

		key = next;
		prev = &key;
		for (uint32_t i = 0; i < p->n_dcs && !wanted; i++)
			wanted = i != dc && htonl(p->dcs[i].router) == key;
		if (!wanted && !bpf_map_delete_elem(fd, &key))
			prev = NULL;
	}
	return 0;
}

static int sync_ips(const struct su_router_maps *m, const struct su_plan *p, uint32_t dc,
		    struct ip_entry *have, uint32_t n_have, struct regions *reg, __be32 *want,
		    struct su_router_sync_stats *st, struct su_err *err)
{
	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *ip = &p->ips[i];
		__be32 key = htonl(ip->ip);
		struct ip_entry *e = find_entry(have, n_have, key);
		struct su_ip_val v = { 0 };
		char a[SU_ADDR_STRLEN];
		int rc;

		if (e)
			e->keep = 1;
		if (ip->dc != dc) {
			st->ips_remote++;
			v.router = htonl(p->dcs[ip->dc].router);
			if (e && !memcmp(&e->v, &v, sizeof(v))) {
				st->ips_unchanged++;
				continue;
			}
		} else {
			st->ips_local++;
			want_slots(p, ip, want);
			if (e && (e->v.flags & SU_IP_LOCAL) &&
			    slots_equal(m->slots, e->v.slot_base, want, p->slices_per_ip)) {
				st->ips_unchanged++;
				continue;
			}
			v.flags = SU_IP_LOCAL;
			if (regions__alloc(reg, &v.slot_base))
				return su_err__set(err, ENOSPC, "no free slot region for %s",
						   su_addr__str(ip->ip, a));
			rc = write_slots(m->slots, v.slot_base, want, p->slices_per_ip);
			if (rc)
				return su_err__set(err, -rc, "writing slots of %s: %s",
						   su_addr__str(ip->ip, a), strerror(-rc));
		}
		/* The flip: one map update, atomic for readers. */
		if (bpf_map_update_elem(m->ips, &key, &v, BPF_ANY))
			return su_err__set(err, errno, "updating %s: %s", su_addr__str(ip->ip, a),
					   strerror(errno));
		st->ips_changed++;
	}
	return 0;
}

/* Targets (servers, routers) no longer in the plan: their counters and
 * cached next hops go, so the per-CPU table never fills up. */
static bool is_target(const struct su_plan *p, __be32 a)
{
	uint32_t h = ntohl(a);

	for (uint32_t i = 0; i < p->n_servers; i++)
		if (p->servers[i].addr == h)
			return true;
	for (uint32_t i = 0; i < p->n_dcs; i++)
		if (p->dcs[i].router == h)
			return true;
	return false;
}

static void prune_targets(int fd, const struct su_plan *p, struct su_router_sync_stats *st)
{
	__be32 key, next, *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!is_target(p, key) && !bpf_map_delete_elem(fd, &key)) {
			st->targets_removed++;
			prev = NULL; /* the walk restarts after a delete */
		}
	}
}

int su_router__sync(const struct su_router_maps *m, const struct su_plan *p, uint32_t dc,
		    struct su_router_sync_stats *st, struct su_err *err)
{
	struct regions reg = { .spi = p->slices_per_ip };
	struct ip_entry *have = NULL;
	uint32_t n_have = 0;
	__be32 *want = NULL;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = su_router__check_plan(p, dc, err);
	if (rc)
		return rc;
	reg.n = SU_MAX_SLOTS / reg.spi;
	reg.used = calloc(reg.n, 1);
	want = calloc(reg.spi, sizeof(*want));
	if (!reg.used || !want) {
		rc = su_err__set(err, ENOMEM, "out of memory");
		goto cleanup;
	}
	rc = read_ips(m->ips, &have, &n_have);
	if (rc) {
		su_err__set(err, -rc, "reading the egress IP map: %s", strerror(-rc));
		goto cleanup;
	}
	/* Regions in use by the live entries are off limits for this pass,
	 * even those about to be replaced: a packet may still be reading
	 * them. */
	for (uint32_t i = 0; i < n_have; i++)
		if ((have[i].v.flags & SU_IP_LOCAL) && have[i].v.slot_base / reg.spi < reg.n)
			reg.used[have[i].v.slot_base / reg.spi] = 1;

	rc = sync_routers(m->routers, p, dc, 1, st);
	if (rc) {
		su_err__set(err, -rc, "updating the router map: %s", strerror(-rc));
		goto cleanup;
	}
	rc = sync_ips(m, p, dc, have, n_have, &reg, want, st, err);
	if (rc)
		goto cleanup;
	for (uint32_t i = 0; i < n_have; i++) {
		if (have[i].keep)
			continue;
		/* No longer ours to route: the kernel gets its packets. */
		bpf_map_delete_elem(m->ips, &have[i].ip);
		st->ips_removed++;
	}
	rc = sync_routers(m->routers, p, dc, 0, st);
	if (m->targets >= 0)
		prune_targets(m->targets, p, st);
cleanup:
	free(have);
	free(want);
	free(reg.used);
	return rc;
}
