#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/store_cli.h"

struct su_plan *cli_load_plan(const char *cmd, const char *path)
{
	struct su_plan *p;
	struct su_err err;

	if (strstr(path, "://")) /* --store URL (or --plan URL): the store's current plan */
		return cli_store_load(cmd, path, 0);

	if (su_plan__load(path, &p, &err)) {
		cli_fail(SU_EXIT_INVALID, cmd, "%s", err.msg);
		return NULL;
	}
	return p;
}

json_t *cli_tags_json(const struct su_tags *t)
{
	json_t *o = json_object();

	for (uint32_t i = 0; i < t->n; i++)
		json_object_set_new(o, t->v[i].key, json_string(t->v[i].value));
	return o;
}

json_t *cli_slot_json(const struct su_plan *p, const struct su_plan_ip *ip, uint32_t s)
{
	const struct su_plan_slot *slot = &p->slots[ip->first_slot + s];
	uint32_t lo = su_plan__slot_lo(p, s);
	char a[SU_ADDR_STRLEN];
	json_t *o = json_object();

	json_object_set_new(o, "ip", json_string(su_addr__str(ip->ip, a)));
	json_object_set_new(o, "dc", json_string(p->dcs[ip->dc].name));
	json_object_set_new(o, "server", slot->server >= 0 ? json_string(p->servers[slot->server].name) : json_null());
	json_object_set_new(o, "server_addr", slot->server >= 0 ?
			    json_string(su_addr__str(p->servers[slot->server].addr, a)) : json_null());
	json_object_set_new(o, "slice", json_pack("[ii]", lo, lo + p->slice_size - 1));
	json_object_set_new(o, "tags", cli_tags_json(&p->prefixes[ip->prefix].tags));
	json_object_set_new(o, "state", json_string(su_state__name(slot->state)));
	if (slot->state == SU_DRAINING)
		json_object_set_new(o, "deadline", json_integer(slot->deadline));
	/* A handed slot (issue 10): who still serves its old flows, until when. */
	if (slot->prev_server >= 0) {
		const struct su_plan_server *ps = &p->servers[slot->prev_server];

		json_object_set_new(o, "previous", json_pack("{s:s,s:s,s:s,s:I}", "server", ps->name, "server_addr",
							     su_addr__str(ps->addr, a), "dc", p->dcs[ps->dc].name,
							     "until", (json_int_t)slot->deadline));
	}
	return o;
}

int cli_print_json(json_t *v)
{
	int ret = json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	json_decref(v);
	putchar('\n');
	return ret ? SU_EXIT_FAIL : SU_EXIT_OK;
}
