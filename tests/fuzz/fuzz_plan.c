/* libFuzzer harness for the plan snapshot loader (src/lib/snapshot.c) and
 * the queries run on what it accepts (src/lib/plan.c).
 *
 * The loader is the trust boundary of the router and the agent: a plan file
 * may be truncated, hand-edited or hostile.  Whatever it accepts must be safe
 * to query: every IP found where it sits, every port of every IP mapping to
 * a slot in range, every slot owner a server of the IP's DC, and the cost
 * adding up.  The first bytes of the input double as query addresses and
 * ports so lookups of absent IPs are exercised too. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/plan.h"

static uint32_t word(const uint8_t *data, size_t size, size_t at)
{
	uint32_t v = 0;

	for (size_t i = 0; i < 4; i++)
		v = v << 8 | (at + i < size ? data[at + i] : 0);
	return v;
}

static void check_slots(const struct su_plan *p, const struct su_plan_ip *ip)
{
	static const uint32_t ports[] = { 0, 1, 1023, 1024, 2047, 2048, 32768, 65535, 65536 };

	for (size_t i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		const struct su_plan_slot *slot = su_plan__slot(p, ip, ports[i]);

		if (!slot)
			continue;
		if (slot < &p->slots[ip->first_slot] || slot >= &p->slots[ip->first_slot + p->slices_per_ip])
			abort();
		if (slot->state != SU_FREE &&
		    (slot->server < 0 || (uint32_t)slot->server >= p->n_servers ||
		     p->servers[slot->server].dc != ip->dc))
			abort();
	}
	for (uint32_t s = 0; s < p->slices_per_ip; s++)
		if (su_plan__slot(p, ip, su_plan__slot_lo(p, s)) != &p->slots[ip->first_slot + s])
			abort();
}

static void query(const struct su_plan *p, const uint8_t *data, size_t size)
{
	struct su_plan_cost cost;

	su_plan__cost(p, &cost);
	if (cost.active_ips + cost.draining_ips != p->n_ips ||
	    cost.slices_active + cost.slices_draining + cost.slices_free !=
		    (uint64_t)p->n_ips * p->slices_per_ip)
		abort();
	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *ip = &p->ips[i];

		if (ip->dc >= p->n_dcs || ip->demand >= p->n_demands || ip->prefix >= p->n_prefixes)
			abort();
		if (su_plan__find_ip(p, ip->ip) != ip)
			abort();
		check_slots(p, ip);
	}
	for (size_t at = 0; at < 16; at += 4) {
		const struct su_plan_ip *ip = su_plan__find_ip(p, word(data, size, at));

		if (ip && ip->ip != word(data, size, at))
			abort();
		if (ip)
			su_plan__slot(p, ip, word(data, size, at + 16) & 0x1ffff);
	}
	for (uint32_t i = 0; i < p->n_dcs; i++)
		if (su_plan__find_dc(p, p->dcs[i].name) != (int)i)
			abort();
	for (uint32_t i = 0; i < p->n_servers; i++) {
		int s = su_plan__find_server(p, p->servers[i].name);

		if (s < 0 ? !p->servers[i].retired : p->servers[s].retired)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct su_plan *p = NULL;
	struct su_err err;
	int ret;

	if (size > 65536)
		return 0;
	err.msg[0] = '\0';
	ret = su_plan__parse((const char *)data, size, "fuzz.plan", &p, &err);
	if (ret) {
		if (p || ret >= 0 || (ret != -ENOMEM && !err.msg[0]))
			abort();
		return 0;
	}
	query(p, data, size);
	su_plan__free(p);
	return 0;
}
