/* From a plan to this server's assignment. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"
#include "lib/tags.h"

/* When a draining entry stops being ours: the earlier of the IP's deadline
 * (the IP moves DC) and the slot's (the slice moves server). */
static int64_t entry_deadline(const struct su_plan_ip *ip, const struct su_plan_slot *s)
{
	int64_t d = 0;

	if (ip->state == SU_DRAINING)
		d = ip->deadline;
	if (s->state == SU_DRAINING && (!d || (s->deadline && s->deadline < d)))
		d = s->deadline;
	return d;
}

static uint8_t entry_state(const struct su_plan_ip *ip, const struct su_plan_slot *s,
			   bool retired)
{
	/* A draining IP (moving DC) drains every slice on it; a retired
	 * server drains all of its slices, whatever the planner says. */
	if (retired || ip->state == SU_DRAINING || s->state == SU_DRAINING)
		return SU_SLICE_DRAINING;
	return SU_SLICE_ACTIVE;
}

static void note_deadline(struct agent_plan_info *info, int64_t d)
{
	if (d && (!info->next_deadline || d < info->next_deadline))
		info->next_deadline = d;
}

static int add_ip_slots(const struct su_plan *p, const struct su_plan_ip *ip, int32_t me,
			struct su_assignment *a, struct agent_plan_info *info)
{
	char *tags = NULL;
	int rc = 0;

	for (uint32_t s = 0; !rc && s < p->slices_per_ip; s++) {
		const struct su_plan_slot *slot = &p->slots[ip->first_slot + s];
		uint32_t lo = su_plan__slot_lo(p, s);
		uint8_t state = entry_state(ip, slot, info->retired);
		int64_t deadline = entry_deadline(ip, slot);

		if (slot->state == SU_FREE)
			continue;
		/* A slice handed on in a live move (issue 10): its previous
		 * owner keeps it, draining, until the deadline: its live flows
		 * go on (enforcement and decap allow them), and the library
		 * never opens a connection from a draining slice. */
		if (slot->server != me && slot->prev_server == me) {
			state = SU_SLICE_DRAINING;
			deadline = slot->deadline;
		} else if (slot->server != me) {
			continue;
		}
		/* Past its deadline a draining slice is another server's (or
		 * nobody's): the router no longer sends us its replies. */
		if (state == SU_SLICE_DRAINING && deadline && deadline <= info->now) {
			info->drained++;
			continue;
		}
		if (state == SU_SLICE_DRAINING)
			note_deadline(info, deadline);
		if (!tags && !(tags = su_tags__format(&p->prefixes[ip->prefix].tags)))
			return -ENOMEM;
		rc = su_assignment__add(a, ip->ip, (uint16_t)lo, (uint16_t)(lo + p->slice_size - 1),
					state, tags);
		/* Taken over in a live move: the library keeps its ping
		 * identifiers off the slice while the previous owner's echo
		 * replies may still come (assignment.h, "handed"); it compares
		 * the clock itself, as the decap does, so the record stays as
		 * long as the plan names the previous owner. */
		if (!rc && slot->server == me && slot->prev_server >= 0 && slot->prev_server != me &&
		    slot->deadline)
			rc = su_assignment__hand(a, ip->ip, (uint16_t)lo, slot->deadline);
	}
	free(tags);
	return rc;
}

/* The server of that name still in the fleet, else a retired one (kept in
 * the plan while its slices drain). */
static int find_server(const struct su_plan *p, const char *server, bool *retired)
{
	int me = su_plan__find_server(p, server);

	*retired = false;
	if (me >= 0)
		return me;
	for (uint32_t i = 0; i < p->n_servers; i++) {
		if (p->servers[i].retired && !strcmp(p->servers[i].name, server)) {
			*retired = true;
			return (int)i;
		}
	}
	return -ENOENT;
}

int agent_plan__assignment(const struct su_plan *p, const char *server,
			   struct agent_plan_info *info, struct su_assignment **out,
			   struct su_err *err)
{
	int me = find_server(p, server, &info->retired), rc = 0;
	struct su_assignment *a;

	info->next_deadline = 0;
	info->drained = 0;
	if (me < 0)
		return su_err__set(err, ENOENT, "server '%s' is not in the plan", server);
	a = calloc(1, sizeof(*a));
	if (!a)
		return su_err__set(err, ENOMEM, "out of memory");
	a->format = SU_ASSIGNMENT_FORMAT;
	a->serial = p->serial;
	a->updated = (int64_t)time(NULL);
	snprintf(a->server, sizeof(a->server), "%s", server);
	for (uint32_t i = 0; !rc && i < p->n_ips; i++)
		rc = add_ip_slots(p, &p->ips[i], me, a, info);
	if (rc) {
		su_assignment__free(a);
		return su_err__set(err, -rc, "building the assignment: %s", strerror(-rc));
	}
	*out = a;
	return 0;
}

int agent_plan__hops(const struct su_plan *p, const char *server, struct agent_hop **out)
{
	bool retired;
	int me = find_server(p, server, &retired);
	uint32_t n = 0, cap = 16;
	struct agent_hop *v = malloc(cap * sizeof(*v));

	*out = NULL;
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; me >= 0 && i < p->n_ips; i++)
		for (uint32_t k = 0; k < p->slices_per_ip; k++) {
			const struct su_plan_slot *sl = &p->slots[p->ips[i].first_slot + k];
			bool in = sl->server == me, held = sl->prev_server == me;

			/* Kept past the deadline, as long as the plan names the
			 * previous owner: the decap compares the clock itself,
			 * and counts what it refuses as expired. */
			if (sl->state == SU_FREE || sl->prev_server < 0 || (!in && !held))
				continue;
			if (n == cap) {
				struct agent_hop *nv = realloc(v, 2 * cap * sizeof(*v));

				if (!nv) {
					free(v);
					return -ENOMEM;
				}
				v = nv;
				cap *= 2;
			}
			v[n++] = (struct agent_hop){
				.ip = p->ips[i].ip, .slice = p->first_slice + k,
				.peer = p->servers[in ? sl->prev_server : sl->server].addr,
				.held = held, .until = sl->deadline,
			};
		}
	*out = v;
	return (int)n;
}

uint32_t agent_plan__self(const struct su_plan *p, const char *server)
{
	bool retired;
	int me = find_server(p, server, &retired);

	return me < 0 ? 0 : p->servers[me].addr;
}

int agent_plan__router(const struct su_plan *p, const char *server, uint32_t *router)
{
	bool retired;
	int me = find_server(p, server, &retired);

	if (me < 0)
		return me;
	*router = p->dcs[p->servers[me].dc].router;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

uint32_t agent_plan__ips(const struct su_assignment *a, uint32_t **out)
{
	uint32_t *v = malloc((a->n + 1) * sizeof(*v)), n = 0;

	*out = v;
	if (!v)
		return 0;
	for (uint32_t i = 0; i < a->n; i++)
		v[i] = a->v[i].ip;
	qsort(v, a->n, sizeof(*v), cmp_u32);
	for (uint32_t i = 0; i < a->n; i++)
		if (!n || v[n - 1] != v[i])
			v[n++] = v[i];
	return n;
}
