/* softunicast who — who owns an egress IP or IP:PORT. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/util.h"

static const char usage_text[] =
	"Usage: softunicast who --plan PLAN [--json] IP[:PORT]\n"
	"\n"
	"Answers the question a router or an on-call engineer asks of a packet: which\n"
	"data center owns this egress IP and, with a port, which server owns the\n"
	"slice the port falls in.  Shows the IP's tags and the state (active, or\n"
	"draining with its deadline).  Without a port, lists every slice of the IP.\n"
	"A slice or IP that changed owner by a live move shows its previous owner\n"
	"(\"from SERVER ... until T\", \"moved from dc DC\"): until T the new owner sends\n"
	"that owner the packets of old flows (second hop; docs/operator.md, Moves).\n"
	"\n"
	"Options:\n"
	"  -p, --plan FILE   the plan to ask\n"
	"      --store URL     the current plan of a store (file:///PATH, etcd://HOST:PORT/PREFIX)\n"
	"  -j, --json        one JSON object: {\"ip\",\"port\",\"dc\",\"router\",\"server\",\n"
	"                    \"server_addr\",\"slice\":[lo,hi],\"tags\":{..},\"state\",\"deadline\"?,\n"
	"                    \"previous\"?:{\"server\",\"server_addr\",\"dc\",\"until\"}};\n"
	"                    without a port, \"port\", \"server\" and \"slice\" are null, \"state\"\n"
	"                    is the IP's and \"slices\" lists its owned slices.  The text\n"
	"                    output shows the same values\n"
	"  -h, --help        this text\n"
	"\n"
	"Exit status: 0 found, 5 not in the plan or the slice has no owner, 2 usage,\n"
	"3 invalid plan.\n";

/* IP[:PORT], the port plain decimal like every number softunicast reads. */
static int parse_target(const char *arg, uint32_t *ip, long *port)
{
	char buf[32], *colon;
	uint64_t v;

	if (strlen(arg) >= sizeof(buf))
		return cli_fail(SU_EXIT_USAGE, "who", "bad IP[:PORT] '%s'", arg);
	strcpy(buf, arg);
	*port = -1;
	colon = strchr(buf, ':');
	if (colon) {
		*colon = '\0';
		if (cli_parse_uint("who", "port", colon + 1, 0, 65535, &v))
			return SU_EXIT_USAGE;
		*port = (long)v;
	}
	if (su_addr__parse(buf, ip))
		return cli_fail(SU_EXIT_USAGE, "who", "bad IP[:PORT] '%s'", arg);
	return 0;
}

static void print_slot_text(const struct su_plan *p, const struct su_plan_ip *ip, uint32_t s)
{
	const struct su_plan_slot *slot = &p->slots[ip->first_slot + s];
	uint32_t lo = su_plan__slot_lo(p, s);
	char a[SU_ADDR_STRLEN];

	printf("  slice %5u-%-5u  ", lo, lo + p->slice_size - 1);
	if (slot->server < 0) {
		printf("free\n");
		return;
	}
	printf("%-16s %-15s %s", p->servers[slot->server].name,
	       su_addr__str(p->servers[slot->server].addr, a), su_state__name(slot->state));
	if (slot->state == SU_DRAINING)
		printf(" until %" PRId64, slot->deadline);
	if (slot->prev_server >= 0)
		printf("  from %s (%s, dc %s) until %" PRId64, p->servers[slot->prev_server].name,
		       su_addr__str(p->servers[slot->prev_server].addr, a),
		       p->dcs[p->servers[slot->prev_server].dc].name, slot->deadline);
	putchar('\n');
}

static int answer_ip(const struct su_plan *p, const struct su_plan_ip *ip, bool json)
{
	/* One buffer per address: two su_addr__str() into one buffer inside one
	 * printf print the second address twice. */
	char a[SU_ADDR_STRLEN], r[SU_ADDR_STRLEN], *tags = su_tags__format(&p->prefixes[ip->prefix].tags);

	if (json) {
		json_t *slices = json_array();

		for (uint32_t s = 0; s < p->slices_per_ip; s++)
			if (p->slots[ip->first_slot + s].state != SU_FREE)
				json_array_append_new(slices, cli_slot_json(p, ip, s));
		json_t *o = json_pack("{s:s,s:n,s:s,s:s,s:n,s:n,s:o,s:s}", "ip", su_addr__str(ip->ip, a), "port",
				      "dc", p->dcs[ip->dc].name, "router", su_addr__str(p->dcs[ip->dc].router, r),
				      "server", "slice", "tags", cli_tags_json(&p->prefixes[ip->prefix].tags),
				      "state", su_state__name(ip->state));

		if (ip->state == SU_DRAINING)
			json_object_set_new(o, "deadline", json_integer(ip->deadline));
		if (ip->prev_dc >= 0)
			json_object_set_new(o, "previous", json_pack("{s:s,s:I}", "dc", p->dcs[ip->prev_dc].name,
								     "until", (json_int_t)ip->prev_deadline));
		json_object_set_new(o, "slices", slices);
		free(tags);
		return cli_print_json(o);
	}
	printf("%s  dc %s (router %s)  %s", su_addr__str(ip->ip, a), p->dcs[ip->dc].name,
	       su_addr__str(p->dcs[ip->dc].router, r), su_state__name(ip->state));
	if (ip->state == SU_DRAINING)
		printf(" until %" PRId64, ip->deadline);
	if (ip->prev_dc >= 0)
		printf("  moved from dc %s, old flows there until %" PRId64, p->dcs[ip->prev_dc].name,
		       ip->prev_deadline);
	printf("\n  tags %s\n", tags ? tags : "?");
	free(tags);
	for (uint32_t s = 0; s < p->slices_per_ip; s++)
		print_slot_text(p, ip, s);
	return SU_EXIT_OK;
}

static int answer_port(const struct su_plan *p, const struct su_plan_ip *ip, uint32_t port, bool json)
{
	const struct su_plan_slot *slot = su_plan__slot(p, ip, port);
	char a[SU_ADDR_STRLEN];

	if (!slot)
		return cli_fail(SU_EXIT_NOTFOUND, "who", "port %u is outside the sliced ports %u-%u", port,
				p->first_slice << p->slice_shift,
				((p->first_slice + p->slices_per_ip) << p->slice_shift) - 1);
	if (slot->state == SU_FREE)
		return cli_fail(SU_EXIT_NOTFOUND, "who", "%s:%u: slice has no owner", su_addr__str(ip->ip, a), port);
	if (json) {
		json_t *o = cli_slot_json(p, ip, (uint32_t)(slot - &p->slots[ip->first_slot]));

		json_object_set_new(o, "port", json_integer(port));
		json_object_set_new(o, "router", json_string(su_addr__str(p->dcs[ip->dc].router, a)));
		return cli_print_json(o);
	}
	printf("%s:%u  dc %s\n", su_addr__str(ip->ip, a), port, p->dcs[ip->dc].name);
	print_slot_text(p, ip, (uint32_t)(slot - &p->slots[ip->first_slot]));
	return SU_EXIT_OK;
}

int who_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "plan", required_argument, NULL, 'p' }, { "store", required_argument, NULL, 'p' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *plan_path = NULL;
	const struct su_plan_ip *ip;
	struct su_plan *p;
	bool json = false;
	uint32_t addr;
	long port = -1;
	int c, ret;

	while ((c = getopt_long(argc, argv, "p:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 'j': json = true; break;
		case 'h': fputs(usage_text, stdout); return SU_EXIT_OK;
		default: fputs(usage_text, stderr); return SU_EXIT_USAGE;
		}
	}
	if (!plan_path || optind != argc - 1)
		return cli_fail(SU_EXIT_USAGE, "who", "needs --plan PLAN and one IP[:PORT]; see --help");
	if (parse_target(argv[optind], &addr, &port))
		return SU_EXIT_USAGE;
	p = cli_load_plan("who", plan_path);
	if (!p)
		return SU_EXIT_INVALID;
	ip = su_plan__find_ip(p, addr);
	if (!ip)
		ret = cli_fail(SU_EXIT_NOTFOUND, "who", "%s is not an egress IP of this plan", argv[optind]);
	else if (port < 0)
		ret = answer_ip(p, ip, json);
	else
		ret = answer_port(p, ip, (uint32_t)port, json);
	su_plan__free(p);
	return ret;
}
