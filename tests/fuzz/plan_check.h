/* Plan invariants shared by the fuzz harnesses: what the router and the
 * agent rely on, and what "stable" promises.  Each check abort()s with a
 * line on stderr, which is what libFuzzer reports as a crash. */
#ifndef SU_FUZZ_PLAN_CHECK_H
#define SU_FUZZ_PLAN_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/plan.h"

/* Each active server holds exactly `slices` active slots of each live
 * tag-set of its DC, all on IPs serving that tag-set. */
static void check_demands(const struct su_plan *p)
{
	uint32_t *held = calloc(p->n_servers + 1, sizeof(*held));

	if (!held)
		return;
	for (uint32_t d = 0; d < p->n_demands; d++) {
		const struct su_plan_demand *dm = &p->demands[d];

		if (dm->retired)
			continue;
		memset(held, 0, (p->n_servers + 1) * sizeof(*held));
		for (uint32_t i = 0; i < p->n_ips; i++) {
			const struct su_plan_ip *ip = &p->ips[i];

			for (uint32_t s = 0; ip->demand == d && s < p->slices_per_ip; s++)
				if (p->slots[ip->first_slot + s].state == SU_ACTIVE)
					held[p->slots[ip->first_slot + s].server]++;
		}
		for (uint32_t s = 0; s < p->n_servers; s++)
			if (!p->servers[s].retired && p->servers[s].dc == dm->dc && held[s] != dm->slices) {
				fprintf(stderr, "fuzz: server %s holds %u slices of a tag-set asking %u\n",
					p->servers[s].name, held[s], dm->slices);
				abort();
			}
	}
	free(held);
}

/* Indexes in range, IPs sorted and inside prefixes whose tags satisfy their
 * tag-set, slot owners servers of the IP's DC, nothing active on a retired
 * server or a draining IP. */
static void check_plan(const struct su_plan *p)
{
	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *ip = &p->ips[i];
		const struct su_plan_prefix *px;

		if (ip->dc >= p->n_dcs || ip->demand >= p->n_demands || ip->prefix >= p->n_prefixes)
			abort();
		if (i && p->ips[i - 1].ip >= ip->ip)
			abort(); /* not sorted, or listed twice */
		px = &p->prefixes[ip->prefix];
		if (!su_prefix__contains(&px->prefix, ip->ip) || p->demands[ip->demand].dc != ip->dc)
			abort();
		if (ip->state == SU_ACTIVE && !su_tags__contains(&px->tags, &p->demands[ip->demand].tags))
			abort();
		if (su_plan__find_ip(p, ip->ip) != ip)
			abort();
		for (uint32_t s = 0; s < p->slices_per_ip; s++) {
			const struct su_plan_slot *slot = &p->slots[ip->first_slot + s];

			if (slot->state == SU_FREE)
				continue;
			if (slot->server < 0 || (uint32_t)slot->server >= p->n_servers ||
			    p->servers[slot->server].dc != ip->dc)
				abort();
			if (slot->state == SU_ACTIVE && (ip->state != SU_ACTIVE || p->servers[slot->server].retired))
				abort();
			/* A previous owner (issue 10): a server, never the owner,
			 * with a deadline (the second hop stops then). */
			if (slot->prev_server >= 0 &&
			    ((uint32_t)slot->prev_server >= p->n_servers || slot->prev_server == slot->server ||
			     slot->deadline <= 0))
				abort();
		}
		if (ip->prev_dc >= 0 && ((uint32_t)ip->prev_dc >= p->n_dcs || (uint32_t)ip->prev_dc == ip->dc ||
					 ip->state != SU_ACTIVE || ip->prev_deadline <= 0))
			abort();
	}
	check_demands(p);
}

/* Every slot active in `old` still active in `cur`, same server (by name:
 * indexes shift when servers come and go), unless its server is `gone`. */
__attribute__((unused)) static void check_nothing_moved(const struct su_plan *old,
							const struct su_plan *cur, const char *gone)
{
	for (uint32_t i = 0; i < old->n_ips; i++) {
		const struct su_plan_ip *oip = &old->ips[i], *nip = su_plan__find_ip(cur, oip->ip);

		for (uint32_t s = 0; s < old->slices_per_ip; s++) {
			const struct su_plan_slot *os = &old->slots[oip->first_slot + s], *ns;
			const char *owner;

			if (os->state != SU_ACTIVE)
				continue;
			owner = old->servers[os->server].name;
			ns = nip ? su_plan__slot(cur, nip, su_plan__slot_lo(old, s)) : NULL;
			if (ns && ns->server >= 0 && ns->prev_server >= 0 && gone && !strcmp(owner, gone) &&
			    !strcmp(cur->servers[ns->prev_server].name, gone))
				continue; /* handed on, gone stays the previous owner */
			if (!ns || ns->server < 0 || strcmp(cur->servers[ns->server].name, owner)) {
				fprintf(stderr, "fuzz: slot %u of IP %#x moved away from %s\n", s, oip->ip, owner);
				abort();
			}
			/* The gone server's slot may be handed on at once, the
			 * gone one staying its previous owner (a live move). */
			if (!ns || ns->server < 0)
				abort();
			if (gone && !strcmp(owner, gone) && ns->state == SU_ACTIVE && ns->prev_server >= 0 &&
			    !strcmp(cur->servers[ns->prev_server].name, gone))
				continue;
			if (ns->state != (gone && !strcmp(owner, gone) ? SU_DRAINING : SU_ACTIVE)) {
				fprintf(stderr, "fuzz: slot %u of IP %#x of %s is %s\n", s, oip->ip, owner,
					su_state__name(ns->state));
				abort();
			}
		}
	}
}

/* The plan, written as a snapshot and loaded back, is the same plan: what
 * the planner produces, the router and the agent can load.  su_plan__write()
 * writes "-" to stdout, so stdout is pointed at a memfd once (libFuzzer
 * reports on stderr) and rewound for every plan. */
static void check_round_trip(const struct su_plan *p)
{
	static int fd = -1;
	struct su_plan *back = NULL;
	struct su_err err;
	char *buf;
	off_t len;

	if (fd < 0) {
		fd = memfd_create("plan", 0);
		if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
			abort();
	}
	fflush(stdout);
	if (ftruncate(STDOUT_FILENO, 0) || lseek(STDOUT_FILENO, 0, SEEK_SET))
		abort();
	if (su_plan__write(p, "-", &err) || fflush(stdout))
		abort();
	len = lseek(STDOUT_FILENO, 0, SEEK_CUR);
	buf = malloc((size_t)len + 1);
	if (!buf || pread(STDOUT_FILENO, buf, (size_t)len, 0) != len)
		abort();
	if (su_plan__parse(buf, (size_t)len, "round-trip", &back, &err)) {
		fprintf(stderr, "%.*s\nfuzz: the plan's own snapshot (above) does not load: %s\n", (int)len, buf,
			err.msg);
		abort();
	}
	if (!su_plan__equal(p, back) || back->serial != p->serial) {
		fprintf(stderr, "%.*s\nfuzz: the plan's snapshot (above) loads as a different plan\n", (int)len, buf);
		abort();
	}
	su_plan__free(back);
	free(buf);
}

#endif
