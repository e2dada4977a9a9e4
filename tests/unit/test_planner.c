/* Planner invariants: minimal, complete, exclusive, deterministic, stable
 * under add/remove/retag, draining honoured, shortfalls reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>

#include "lib/planner.h"

#define NOW 1700000000

static struct su_fleet *fleet(const char *yaml)
{
	struct su_fleet *f = NULL;
	struct su_err err = { { 0 } };

	if (su_fleet__parse(yaml, strlen(yaml), "t.yaml", &f, &err))
		print_error("fleet: %s\n", err.msg);
	assert_non_null(f);
	return f;
}

static struct su_plan *plan_with(const char *yaml, const struct su_plan *prev, int64_t now)
{
	struct su_fleet *f = fleet(yaml);
	struct su_plan_report r;
	struct su_plan *p = NULL;
	struct su_err err = { { 0 } };

	if (su_planner__run(f, prev, now, &p, &r, &err))
		print_error("plan: %s\n", err.msg);
	su_plan_report__free(&r);
	su_fleet__free(f);
	assert_non_null(p);
	return p;
}

/* Two DCs; lhr has `servers` servers. */
static char *two_dcs(int servers, const char *extra_lhr_server, const char *gb_country)
{
	char *yaml, list[4096] = "";

	for (int i = 1; i <= servers; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "      lhr-s%d: 10.1.1.%d\n", i, i);
	if (extra_lhr_server)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "      %s\n", extra_lhr_server);
	assert_true(asprintf(&yaml,
		"drain: 10m\n"
		"datacenters:\n"
		"  lhr:\n    router: 10.1.0.1\n    servers:\n%s"
		"    egress:\n      - {service: cdn}\n      - {service: warp, country: GB}\n"
		"      - {service: warp, country: IE, slices: 2}\n"
		"  cdg:\n    router: 10.2.0.1\n    servers:\n      cdg-s1: 10.2.1.1\n      cdg-s2: 10.2.1.2\n"
		"    egress:\n      - {service: warp, country: GB}\n      - {service: cdn}\n"
		"prefixes:\n"
		"  - {prefix: 198.51.100.0/26, tags: {service: warp, country: %s}}\n"
		"  - {prefix: 198.51.100.64/26, tags: {service: warp, country: IE}}\n"
		"  - {prefix: 198.51.100.128/26, tags: {service: warp, country: FR}}\n"
		"  - {prefix: 203.0.113.0/24, tags: {service: cdn}}\n",
		list, gb_country) > 0);
	return yaml;
}

static uint32_t count_active(const struct su_plan *p, uint32_t server, uint32_t demand)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < p->n_ips; i++)
		for (uint32_t s = 0; s < p->slices_per_ip; s++) {
			const struct su_plan_slot *slot = &p->slots[p->ips[i].first_slot + s];

			n += p->ips[i].demand == demand && slot->state == SU_ACTIVE && slot->server == (int32_t)server;
		}
	return n;
}

/* Every active server holds exactly `slices` active slots of each demand of
 * its DC, on IPs of that DC whose prefix carries the demand's tags; every
 * demand uses the minimal number of active IPs. */
static void check_invariants(const struct su_plan *p)
{
	for (uint32_t d = 0; d < p->n_demands; d++) {
		const struct su_plan_demand *dm = &p->demands[d];
		uint32_t servers = 0, ips = 0;

		if (dm->retired)
			continue;
		for (uint32_t s = 0; s < p->n_servers; s++) {
			if (p->servers[s].retired || p->servers[s].dc != dm->dc)
				continue;
			servers++;
			assert_int_equal(count_active(p, s, d), dm->slices);
		}
		for (uint32_t i = 0; i < p->n_ips; i++) {
			const struct su_plan_ip *ip = &p->ips[i];

			if (ip->demand != d || ip->state != SU_ACTIVE)
				continue;
			ips++;
			assert_int_equal(ip->dc, dm->dc);
			assert_true(su_tags__contains(&p->prefixes[ip->prefix].tags, &dm->tags));
			assert_true(su_prefix__contains(&p->prefixes[ip->prefix].prefix, ip->ip));
		}
		assert_true(ips >= (servers * dm->slices + p->slices_per_ip - 1) / p->slices_per_ip);
	}
	for (uint32_t i = 0; i < p->n_ips; i++)
		for (uint32_t s = 0; s < p->slices_per_ip; s++) {
			const struct su_plan_slot *slot = &p->slots[p->ips[i].first_slot + s];

			if (slot->state == SU_FREE)
				continue;
			assert_int_equal(p->servers[slot->server].dc, p->ips[i].dc);
			if (slot->state == SU_ACTIVE)
				assert_false(p->servers[slot->server].retired);
		}
}

static int find_server(const struct su_plan *p, const char *name)
{
	int s = su_plan__find_server(p, name);

	assert_true(s >= 0);
	return s;
}

static void fresh_plan_is_minimal_and_complete(void **state)
{
	char *yaml = two_dcs(40, NULL, "GB");
	struct su_plan *p = plan_with(yaml, NULL, NOW);
	struct su_plan_cost c;

	check_invariants(p);
	su_plan__cost(p, &c);
	/* lhr: cdn ceil(40/31)=2, GB 2, IE ceil(80/31)=3; cdg: 1 + 1. */
	assert_int_equal(c.lower_bound, 9);
	assert_int_equal(c.active_ips, 9);
	assert_int_equal(c.per_server, 40 * 4 + 2 * 2);
	assert_int_equal(c.draining_ips, 0);
	assert_int_equal(p->serial, 1);
	su_plan__free(p);
	free(yaml);
}

static void same_input_same_plan(void **state)
{
	char *yaml = two_dcs(5, NULL, "GB");
	struct su_plan *a = plan_with(yaml, NULL, NOW), *b = plan_with(yaml, NULL, NOW + 99);

	assert_true(su_plan__equal(a, b));
	su_plan__free(a);
	su_plan__free(b);
	free(yaml);
}

static void unchanged_replan_keeps_everything(void **state)
{
	char *yaml = two_dcs(33, NULL, "GB");
	struct su_plan *a = plan_with(yaml, NULL, NOW), *b = plan_with(yaml, a, NOW + 100);

	assert_true(su_plan__equal(a, b));
	assert_int_equal(b->serial, a->serial);
	su_plan__free(a);
	su_plan__free(b);
	free(yaml);
}

/* Every slot active in `a` is active in `b` with the same owner. */
static uint32_t moved_slots(const struct su_plan *a, const struct su_plan *b)
{
	uint32_t moved = 0;

	for (uint32_t i = 0; i < a->n_ips; i++) {
		const struct su_plan_ip *x = &a->ips[i], *y = su_plan__find_ip(b, x->ip);

		for (uint32_t s = 0; s < a->slices_per_ip; s++) {
			const struct su_plan_slot *sx = &a->slots[x->first_slot + s];
			const struct su_plan_slot *sy = y ? &b->slots[y->first_slot + s] : NULL;

			if (sx->state != SU_ACTIVE)
				continue;
			if (!sy || sy->state != SU_ACTIVE ||
			    strcmp(a->servers[sx->server].name, b->servers[sy->server].name))
				moved++;
		}
	}
	return moved;
}

static void added_server_moves_nobody(void **state)
{
	char *before = two_dcs(31, NULL, "GB"), *after = two_dcs(31, "lhr-new: 10.1.2.1", "GB");
	struct su_plan *a = plan_with(before, NULL, NOW), *b = plan_with(after, a, NOW + 10);
	int s = find_server(b, "lhr-new");

	check_invariants(b);
	assert_int_equal(moved_slots(a, b), 0);
	assert_int_equal(b->serial, a->serial + 1);
	/* 31 servers filled their IPs; the 32nd needs one more per tag-set
	 * (IE: 62 slices filled 2 IPs, 64 need a third). */
	for (uint32_t d = 0; d < b->n_demands; d++)
		if (b->demands[d].dc == b->servers[s].dc)
			assert_int_equal(count_active(b, (uint32_t)s, d), b->demands[d].slices);
	su_plan__free(a);
	su_plan__free(b);
	free(before);
	free(after);
}

static void removed_server_drains_then_frees(void **state)
{
	char *before = two_dcs(3, NULL, "GB"), *after = two_dcs(2, NULL, "GB");
	struct su_plan *a = plan_with(before, NULL, NOW), *b = plan_with(after, a, NOW + 10);
	struct su_plan *c, *d;
	struct su_plan_cost cost;
	int gone = -1;

	check_invariants(b);
	assert_int_equal(moved_slots(a, b) > 0, 1); /* lhr-s3's slots, and only those */
	for (uint32_t i = 0; i < b->n_servers; i++)
		if (!strcmp(b->servers[i].name, "lhr-s3"))
			gone = (int)i;
	assert_true(gone >= 0);
	assert_true(b->servers[gone].retired);
	su_plan__cost(b, &cost);
	assert_int_equal(cost.slices_draining, 4); /* cdn + GB + 2 IE */
	for (uint32_t i = 0; i < b->n_ips; i++)
		for (uint32_t s = 0; s < b->slices_per_ip; s++) {
			const struct su_plan_slot *slot = &b->slots[b->ips[i].first_slot + s];

			if (slot->server == gone) {
				assert_int_equal(slot->state, SU_DRAINING);
				assert_int_equal(slot->deadline, NOW + 10 + 600);
			}
		}
	/* Before the deadline the slots stay draining, after it they are free. */
	c = plan_with(after, b, NOW + 600);
	su_plan__cost(c, &cost);
	assert_int_equal(cost.slices_draining, 4);
	d = plan_with(after, c, NOW + 611);
	su_plan__cost(d, &cost);
	assert_int_equal(cost.slices_draining, 0);
	check_invariants(d);
	su_plan__free(a);
	su_plan__free(b);
	su_plan__free(c);
	su_plan__free(d);
	free(before);
	free(after);
}

/* Slots with a previous owner: an active or draining slot, never the
 * owner itself, in the IP's DC or (a moved IP) the DC it came from. */
static uint32_t count_handed(const struct su_plan *p, int prev, int64_t until)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < p->n_ips; i++)
		for (uint32_t s = 0; s < p->slices_per_ip; s++) {
			const struct su_plan_slot *slot = &p->slots[p->ips[i].first_slot + s];

			if (slot->prev_server < 0 || slot->state == SU_FREE)
				continue;
			assert_int_not_equal(slot->prev_server, slot->server);
			if (slot->prev_server == prev && slot->deadline == until)
				n++;
		}
	return n;
}

/* A server replaced by a new one: the new one takes the old one's slots at
 * once, the old one stays their previous owner until the drain deadline,
 * then the slots are the new one's alone (issue 10). */
static void replaced_server_hands_its_slices_on(void **state)
{
	char *before = two_dcs(3, NULL, "GB"), *after = two_dcs(2, "lhr-s9: 10.1.1.9", "GB");
	struct su_plan *a = plan_with(before, NULL, NOW), *b = plan_with(after, a, NOW + 10), *c, *d;
	struct su_plan_cost cost;
	int gone = -1, s9;

	check_invariants(b);
	for (uint32_t i = 0; i < b->n_servers; i++)
		if (!strcmp(b->servers[i].name, "lhr-s3"))
			gone = (int)i;
	assert_true(gone >= 0 && b->servers[gone].retired);
	s9 = find_server(b, "lhr-s9");
	su_plan__cost(b, &cost);
	assert_int_equal(cost.slices_draining, 0);
	assert_int_equal(count_handed(b, gone, NOW + 10 + 600), 4); /* cdn + GB + 2 IE */
	assert_int_equal(b->n_ips, a->n_ips); /* no address more */
	for (uint32_t i = 0; i < b->n_ips; i++)
		for (uint32_t s = 0; s < b->slices_per_ip; s++)
			if (b->slots[b->ips[i].first_slot + s].prev_server == gone)
				assert_int_equal(b->slots[b->ips[i].first_slot + s].server, s9);
	/* Kept until the deadline, through a snapshot round trip; gone after. */
	c = plan_with(after, b, NOW + 600);
	assert_true(su_plan__equal(b, c));
	d = plan_with(after, c, NOW + 611);
	check_invariants(d);
	for (uint32_t i = 0; i < d->n_ips * d->slices_per_ip; i++)
		assert_int_equal(d->slots[i].prev_server, -1);
	su_plan__free(a);
	su_plan__free(b);
	su_plan__free(c);
	su_plan__free(d);
	free(before);
	free(after);
}

static char *cdn_fleet(const char *lhr_prefix_extra, const char *pin, int cdg_slices)
{
	char *yaml;

	assert_true(asprintf(&yaml,
		"drain: 10m\n"
		"datacenters:\n"
		"  lhr:\n    router: 10.1.0.1\n    servers:\n      lhr-s1: 10.1.1.1\n"
		"      lhr-s2: 10.1.1.2\n      lhr-s3: 10.1.1.3\n    egress:\n      - {service: cdn}\n"
		"  cdg:\n    router: 10.2.0.1\n    servers:\n      cdg-s1: 10.2.1.1\n      cdg-s2: 10.2.1.2\n"
		"    egress:\n      - {service: cdn, slices: %d}\n"
		"prefixes:\n"
		"  - {prefix: 203.0.113.0/32, tags: {service: cdn}}\n"
		"  - {prefix: 203.0.113.1/32, tags: {service: cdn}%s}\n%s",
		cdg_slices, pin, lhr_prefix_extra) > 0);
	return yaml;
}

/* lhr's IP pinned to cdg (what `softunicast move` stores): the IP becomes
 * cdg's at once, its slots' owners in lhr stay previous owners until the
 * deadline (cdg's servers take the slots they need, the rest relay); a
 * second move before the deadline is refused, naming it. */
static void moved_ip_changes_dc_at_once(void **state)
{
	const char *more = "  - {prefix: 192.0.2.0/24, tags: {service: cdn}}\n";
	char *before = cdn_fleet("", "", 1), *after = cdn_fleet(more, ", datacenters: [cdg]", 2);
	char *again = cdn_fleet(more, ", datacenters: [lhr]", 2);
	struct su_plan *a = plan_with(before, NULL, NOW), *b, *c;
	const struct su_plan_ip *x;
	struct su_fleet *f;
	struct su_plan_report r;
	struct su_err err;
	uint32_t active = 0, relay = 0;

	x = su_plan__find_ip(a, 0xcb007101);
	assert_non_null(x);
	assert_int_equal(x->dc, (uint32_t)su_plan__find_dc(a, "lhr"));
	b = plan_with(after, a, NOW + 5);
	check_invariants(b);
	x = su_plan__find_ip(b, 0xcb007101);
	assert_non_null(x);
	assert_int_equal(x->dc, (uint32_t)su_plan__find_dc(b, "cdg"));
	assert_int_equal(x->state, SU_ACTIVE);
	assert_int_equal(x->prev_dc, su_plan__find_dc(b, "lhr"));
	assert_int_equal(x->prev_deadline, NOW + 5 + 600);
	for (uint32_t s = 0; s < b->slices_per_ip; s++) {
		const struct su_plan_slot *sl = &b->slots[x->first_slot + s];

		if (sl->prev_server < 0)
			continue;
		assert_int_equal(b->servers[sl->server].dc, x->dc);
		active += sl->state == SU_ACTIVE;
		relay += sl->state == SU_DRAINING;
	}
	assert_int_equal(active, 2); /* cdg-s1 and cdg-s2 each needed one more */
	assert_int_equal(relay, 1);
	for (int n = 1; n <= 3; n++) {
		char name[16];

		snprintf(name, sizeof(name), "lhr-s%d", n);
		assert_int_equal(count_handed(b, find_server(b, name), NOW + 5 + 600), 1);
	}
	/* A second move before the deadline: refused with the deadline named. */
	f = fleet(again);
	assert_int_equal(su_planner__run(f, b, NOW + 6, &c, &r, &err), -EBUSY);
	assert_non_null(strstr(err.msg, "until 1700000605"));
	su_plan_report__free(&r);
	su_fleet__free(f);
	/* After it: the previous owners are gone, and a move goes through. */
	c = plan_with(after, b, NOW + 700);
	for (uint32_t i = 0; i < c->n_ips; i++)
		assert_int_equal(c->ips[i].prev_dc, -1);
	su_plan__free(b);
	b = plan_with(again, c, NOW + 701);
	check_invariants(b);
	assert_int_equal(su_plan__find_ip(b, 0xcb007101)->dc, (uint32_t)su_plan__find_dc(b, "lhr"));
	su_plan__free(a);
	su_plan__free(b);
	su_plan__free(c);
	free(before);
	free(after);
	free(again);
}

static void retagged_prefix_drains_its_ips(void **state)
{
	char *gb = two_dcs(3, NULL, "GB"), *fr = two_dcs(3, NULL, "FR");
	const char *extra = "  - {prefix: 192.0.2.0/24, tags: {service: warp, country: GB}}\n";
	char *fr_plus = NULL;
	struct su_plan *a = plan_with(gb, NULL, NOW), *b;
	struct su_plan_cost cost;

	assert_true(asprintf(&fr_plus, "%s%s", fr, extra) > 0);
	b = plan_with(fr_plus, a, NOW + 1);
	check_invariants(b);
	su_plan__cost(b, &cost);
	assert_int_equal(cost.draining_ips, 2); /* lhr's and cdg's GB IPs */
	for (uint32_t i = 0; i < b->n_ips; i++)
		if (b->ips[i].state == SU_ACTIVE && su_tags__get(&b->demands[b->ips[i].demand].tags, "country") &&
		    !strcmp(su_tags__get(&b->demands[b->ips[i].demand].tags, "country"), "GB"))
			assert_int_equal(b->ips[i].ip >> 8, 0xc00002); /* 192.0.2.x */
	su_plan__free(a);
	su_plan__free(b);
	free(gb);
	free(fr);
	free(fr_plus);
}

static void unsatisfiable_demand_is_reported(void **state)
{
	const char *yaml = "datacenters:\n  a:\n    router: 10.0.0.1\n    servers:\n      s1: 10.0.1.1\n"
			   "    egress:\n      - {service: x}\n      - {service: y}\n"
			   "prefixes:\n  - {prefix: 192.0.2.0/32, tags: {service: x}}\n";
	struct su_fleet *f = fleet(yaml);
	struct su_plan_report r;
	struct su_plan *p;
	struct su_err err;

	assert_int_equal(su_planner__run(f, NULL, NOW, &p, &r, &err), -ENOSPC);
	assert_null(p);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.v[0].dc, "a");
	assert_string_equal(r.v[0].tags, "service=y");
	assert_int_equal(r.v[0].ips_short, 1);
	su_plan_report__free(&r);
	su_fleet__free(f);
}

/* A generic demand must not eat the addresses a specific one needs. */
static void generic_demand_leaves_specific_prefix(void **state)
{
	const char *yaml = "datacenters:\n  a:\n    router: 10.0.0.1\n    servers:\n      s1: 10.0.1.1\n"
			   "    egress:\n      - {service: warp}\n      - {service: warp, country: GB}\n"
			   "prefixes:\n  - {prefix: 192.0.2.0/32, tags: {service: warp, country: GB}}\n"
			   "  - {prefix: 192.0.2.1/32, tags: {service: warp}}\n";
	struct su_plan *p = plan_with(yaml, NULL, NOW);

	check_invariants(p);
	assert_int_equal(p->n_ips, 2);
	su_plan__free(p);
}

static void slice_geometry_change_is_refused(void **state)
{
	char *yaml = two_dcs(2, NULL, "GB"), *other = NULL;
	struct su_plan *a = plan_with(yaml, NULL, NOW), *b;
	struct su_fleet *f;
	struct su_plan_report r;
	struct su_err err;

	assert_true(asprintf(&other, "ports:\n  slice: 1024\n%s", yaml) > 0);
	f = fleet(other);
	assert_int_equal(su_planner__run(f, a, NOW, &b, &r, &err), -EXDEV);
	assert_non_null(strstr(err.msg, "slice size changed"));
	su_fleet__free(f);
	su_plan__free(a);
	free(yaml);
	free(other);
}

static void fewer_slices_drain_the_excess(void **state)
{
	char *two = two_dcs(3, NULL, "GB"), *one = strdup(two);
	struct su_plan *a, *b;
	struct su_plan_cost cost;

	memcpy(strstr(one, "slices: 2"), "slices: 1", 9);
	a = plan_with(two, NULL, NOW);
	b = plan_with(one, a, NOW + 1);
	check_invariants(b);
	su_plan__cost(b, &cost);
	assert_int_equal(cost.slices_draining, 3);
	assert_int_equal(moved_slots(a, b), 3);
	su_plan__free(a);
	su_plan__free(b);
	free(two);
	free(one);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fresh_plan_is_minimal_and_complete),
		cmocka_unit_test(same_input_same_plan),
		cmocka_unit_test(unchanged_replan_keeps_everything),
		cmocka_unit_test(added_server_moves_nobody),
		cmocka_unit_test(removed_server_drains_then_frees),
		cmocka_unit_test(replaced_server_hands_its_slices_on),
		cmocka_unit_test(moved_ip_changes_dc_at_once),
		cmocka_unit_test(retagged_prefix_drains_its_ips),
		cmocka_unit_test(unsatisfiable_demand_is_reported),
		cmocka_unit_test(generic_demand_leaves_specific_prefix),
		cmocka_unit_test(slice_geometry_change_is_refused),
		cmocka_unit_test(fewer_slices_drain_the_excess),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
