/* softunicast plan — fleet description (+ previous plan) → plan snapshot. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "lib/store/ops.h"
#include "cli/output.h"
#include "cli/store_cli.h"
#include "lib/planner.h"
#include "lib/util.h"

static const char usage_text[] =
	"Usage: softunicast plan --fleet FLEET.yaml --out PLAN [--previous PLAN]\n"
	"                        [--pin IP[/LEN]=DC]... [--now UNIX_SECONDS] [--cost]\n"
	"                        [--json] [--check]\n"
	"       softunicast plan --fleet FLEET.yaml --store URL [--dry-run] [--json]\n"
	"\n"
	"Builds the address plan: which data center owns each egress IP and which\n"
	"server owns each port slice.  Each DC gets, per egress tag-set, the fewest\n"
	"IPs that hold one slice per server (ceil(servers x slices / slices per IP)),\n"
	"contiguous where possible so the geofeed stays small.\n"
	"\n"
	"With --previous the plan is stable: every assignment that is still valid is\n"
	"kept, a new server takes free slices and moves nobody, and a removed server's\n"
	"slices (or an IP that changes DC or no longer matches its tags) go draining\n"
	"for the fleet's drain time and are not reused before.  Unchanged input gives\n"
	"a byte-identical plan with the same serial.\n"
	"\n"
	"The plan is written atomically (temporary file, fsync, rename); '-' writes it\n"
	"to standard output and the summary to standard error.\n"
	"\n"
	"With --store the previous plan is the store's current one, and the new plan\n"
	"is published as the next serial with the fleet and the operators' pins and\n"
	"drains (softunicast-move(1), softunicast-drain(1)), which it keeps.  If\n"
	"another writer published first: \"the plan changed under you (serial N),\n"
	"re-run\", exit 1, nothing written.  --dry-run prints the diff instead.\n"
	"\n"
	"Options:\n"
	"  -f, --fleet FILE      fleet description (YAML); see softunicast-plan(1)\n"
	"  -o, --out FILE        where to write the plan\n"
	"  -p, --previous FILE   the plan in force now, for a stable re-plan\n"
	"  -P, --pin IP[/LEN]=DC pin those IPs to data center DC, as `softunicast move`\n"
	"                        does in a store: with --previous the IPs change owner\n"
	"                        at once, each slice's previous owner serving its live\n"
	"                        flows until the drain deadline (second hop); a second\n"
	"                        move of an IP before then is refused (exit 1).  Repeat\n"
	"                        for several ranges.  With --store the pins join the\n"
	"                        store's operations and go out with the new fleet as\n"
	"                        one version.\n"
	"  -n, --now SECONDS     the current time (unix seconds) for drain deadlines;\n"
	"                        default: the clock.  Pin it for reproducible plans.\n"
	"  -c, --cost            add the cost per data center to the summary\n"
	"  -j, --json            print the summary as one JSON object {\"serial\",\"out\",\n"
	"                        \"changed\",\"ports\":[lo,hi],\"slice_size\",\"drain\",\n"
	"                        \"slices_per_ip\",\"demands\":[{\"dc\",\"tags\",\"servers\",\n"
	"                        \"slices_per_server\",\"ips\"}],\"cost\":{..},\"per_dc\"?} (per_dc\n"
	"                        with --cost), or the shortfall; same values as the text\n"
	"  -C, --check           validate and plan, but write nothing\n"
	"  -h, --help            this text\n"
	"      --dry-run         with --store: print what would change, write nothing\n"
	CLI_STORE_USAGE
	"\n"
	"Fleet files are refused (exit 3, file:line: reason) when larger than 16 MiB,\n"
	"nested deeper than 16, holding a value over 1024 bytes, more than 2,000,000\n"
	"nodes, YAML anchors, aliases or explicit tags, a number in a YAML-1.1\n"
	"ambiguous form (010, 0x10, 0o10, 0b10, 1_000, +5, .5, 1e3, 1:30), a drain\n"
	"below 4m without allow_short_drain: true, or a geofeed value (country,\n"
	"region, city, postal) that is not ISO 3166 per iso-codes or carries control\n"
	"or format characters, surrounding whitespace, ',' or '\"'.\n"
	"\n"
	"Exit status: 0 planned, 2 usage, 3 invalid fleet or previous plan (file:line:\n"
	"reason on stderr), 4 demand cannot be met (what is missing on stderr; nothing\n"
	"written), 1 other failure.\n";

struct opts {
	const char *fleet, *out, *previous;
	struct su_ops pins;
	int64_t now;
	bool cost, json, check, dry_run;
	struct cli_store_flags store;
};

/* --store: the --pin lines join the store's operations, so the new fleet and
 * the move are one version (as `softunicast move` after `plan` would be two:
 * the first would plan the new demand without the moved IP). */
static int add_pins(const char *cmd, struct su_ops *ops, const struct su_fleet *f, void *arg)
{
	const struct su_ops *pins = arg;
	char cidr[64], dc[256];
	struct su_prefix4 px;

	for (size_t i = 0; i < pins->n; i++) {
		bool known = false;

		if (sscanf(pins->v[i], "pin %63s %255s", cidr, dc) != 2 || su_prefix__parse(cidr, &px))
			return cli_fail(SU_EXIT_FAIL, cmd, "internal: bad pin '%s'", pins->v[i]);
		for (uint32_t d = 0; d < f->n_dcs; d++)
			known |= !strcmp(f->dcs[d].name, dc);
		if (!known)
			return cli_fail(SU_EXIT_NOTFOUND, cmd, "--pin: no data center '%s' in the fleet", dc);
		if (su_ops__pin(ops, &px, dc))
			return cli_fail(SU_EXIT_FAIL, cmd, "out of memory");
	}
	return 0;
}

/* IP[/LEN]=DC: the DC is checked against the fleet once it is read. */
static int parse_pin(const char *arg, struct su_ops *pins)
{
	char cidr[64];
	const char *eq = strchr(arg, '=');
	struct su_prefix4 px;
	size_t n = eq ? (size_t)(eq - arg) : 0;

	if (!eq || !n || n >= sizeof(cidr) - 3 || !eq[1])
		return cli_fail(SU_EXIT_USAGE, "plan", "--pin: '%s' is not IP[/LEN]=DC", arg);
	memcpy(cidr, arg, n);
	cidr[n] = '\0';
	if (!memchr(cidr, '/', n))
		strcat(cidr, "/32");
	if (su_prefix__parse(cidr, &px))
		return cli_fail(SU_EXIT_USAGE, "plan", "--pin: '%.*s' is not IP or IP/LEN (host bits zero)",
				(int)n, arg);
	return su_ops__pin(pins, &px, eq + 1) ? cli_fail(SU_EXIT_FAIL, "plan", "out of memory") : 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "fleet", required_argument, NULL, 'f' }, { "out", required_argument, NULL, 'o' },
		{ "previous", required_argument, NULL, 'p' }, { "now", required_argument, NULL, 'n' },
		{ "pin", required_argument, NULL, 'P' },
		{ "cost", no_argument, NULL, 'c' }, { "json", no_argument, NULL, 'j' },
		{ "check", no_argument, NULL, 'C' }, { "help", no_argument, NULL, 'h' },
		{ "dry-run", no_argument, NULL, 'D' }, CLI_STORE_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	uint64_t now;
	int c;

	*o = (struct opts){ .now = (int64_t)time(NULL) };
	while ((c = getopt_long(argc, argv, "f:o:p:P:n:cjCh", longopts, NULL)) != -1) {
		switch (c) {
		case 'P':
			if (parse_pin(optarg, &o->pins))
				return SU_EXIT_USAGE;
			break;
		case 'f': o->fleet = optarg; break;
		case 'o': o->out = optarg; break;
		case 'p': o->previous = optarg; break;
		case 'c': o->cost = true; break;
		case 'j': o->json = true; break;
		case 'C': o->check = true; break;
		case 'D': o->dry_run = true; break;
		case 'n':
			if (cli_parse_uint("plan", "--now", optarg, 0, INT64_MAX, &now))
				return SU_EXIT_USAGE;
			o->now = (int64_t)now;
			break;
		case 'h': fputs(usage_text, stdout); return -1;
		default:
			if ((c = cli_store_flag("plan", c, optarg, &o->store)) > 0)
				break;
			if (!c)
				fputs(usage_text, stderr);
			return SU_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_fail(SU_EXIT_USAGE, "plan", "unexpected argument '%s'", argv[optind]);
	if (o->store.url && (o->out || o->previous || o->check))
		return cli_fail(SU_EXIT_USAGE, "plan", "--store replaces --out and --previous (and --dry-run --check)");
	if (o->dry_run && !o->store.url)
		return cli_fail(SU_EXIT_USAGE, "plan", "--dry-run goes with --store; see --help");
	if (!o->fleet || (!o->out && !o->check && !o->store.url))
		return cli_fail(SU_EXIT_USAGE, "plan", "--fleet and --out (or --check) are required; see --help");
	return 0;
}

static void print_shortfall(const struct su_plan_report *r, bool json)
{
	json_t *missing = json_array();

	fprintf(stderr, "softunicast plan: egress demand cannot be met; nothing written\n"
			"  %-12s %-40s %9s %14s\n", "DC", "TAG-SET", "IPS SHORT", "FREE MATCHING");
	for (uint32_t i = 0; i < r->n; i++) {
		fprintf(stderr, "  %-12s %-40s %9u %14" PRIu64 "\n", r->v[i].dc, r->v[i].tags,
			r->v[i].ips_short, r->v[i].candidates);
		json_array_append_new(missing, json_pack("{s:s,s:s,s:i,s:I}", "dc", r->v[i].dc, "tags",
							 r->v[i].tags, "ips_short", (json_int_t)r->v[i].ips_short,
							 "free_matching", (json_int_t)r->v[i].candidates));
	}
	fprintf(stderr, "Add matching prefixes, allow these data centers on existing ones, or lower the demand.\n");
	if (json)
		cli_print_json(json_pack("{s:s,s:o}", "error", "unsatisfiable", "missing", missing));
	else
		json_decref(missing);
}

/* Active IPs and servers per demand, for the summary table. */
static void count_per_demand(const struct su_plan *p, uint32_t *ips, uint32_t *servers)
{
	uint32_t *in_dc = calloc(p->n_dcs + 1, sizeof(*in_dc));

	for (uint32_t i = 0; i < p->n_ips; i++)
		if (p->ips[i].state == SU_ACTIVE)
			ips[p->ips[i].demand]++;
	if (!in_dc)
		return;
	for (uint32_t s = 0; s < p->n_servers; s++)
		in_dc[p->servers[s].dc] += !p->servers[s].retired;
	for (uint32_t d = 0; d < p->n_demands; d++)
		servers[d] = in_dc[p->demands[d].dc];
	free(in_dc);
}

static double saving(const struct su_plan_cost *c)
{
	return c->per_server ? 100.0 * (1.0 - (double)c->active_ips / (double)c->per_server) : 0;
}

struct dc_cost {
	uint64_t servers, ips, draining, per_server;
};

/* One DC's row of --cost, shared by the text and the JSON summary. */
static struct dc_cost dc_cost(const struct su_plan *p, uint32_t dc)
{
	struct dc_cost r = { 0 };

	for (uint32_t s = 0; s < p->n_servers; s++)
		r.servers += !p->servers[s].retired && p->servers[s].dc == dc;
	for (uint32_t i = 0; i < p->n_ips; i++)
		if (p->ips[i].dc == dc)
			(*(p->ips[i].state == SU_ACTIVE ? &r.ips : &r.draining))++;
	for (uint32_t d = 0; d < p->n_demands; d++)
		if (p->demands[d].dc == dc && !p->demands[d].retired)
			r.per_server += r.servers * p->demands[d].slices;
	return r;
}

static void print_cost_per_dc(FILE *out, const struct su_plan *p)
{
	fprintf(out, "\n  %-12s %8s %8s %12s %10s\n", "DC", "SERVERS", "IPS", "PER-SERVER", "DRAINING");
	for (uint32_t dc = 0; dc < p->n_dcs; dc++) {
		struct dc_cost r = dc_cost(p, dc);

		fprintf(out, "  %-12s %8" PRIu64 " %8" PRIu64 " %12" PRIu64 " %10" PRIu64 "%s\n", p->dcs[dc].name,
			r.servers, r.ips, r.per_server, r.draining, p->dcs[dc].retired ? "  (retired)" : "");
	}
}

static json_t *cost_per_dc_json(const struct su_plan *p)
{
	json_t *a = json_array();

	for (uint32_t dc = 0; dc < p->n_dcs; dc++) {
		struct dc_cost r = dc_cost(p, dc);

		json_array_append_new(a, json_pack("{s:s,s:I,s:I,s:I,s:I,s:b}", "dc", p->dcs[dc].name, "servers",
						   (json_int_t)r.servers, "ips", (json_int_t)r.ips, "per_server",
						   (json_int_t)r.per_server, "draining", (json_int_t)r.draining,
						   "retired", p->dcs[dc].retired));
	}
	return a;
}

static void print_summary_text(FILE *out, const struct su_plan *p, const struct opts *o, bool changed)
{
	uint32_t *ips = calloc(p->n_demands + 1, sizeof(*ips)), *servers = calloc(p->n_demands + 1, sizeof(*servers));
	struct su_plan_cost c;

	su_plan__cost(p, &c);
	fprintf(out, "plan serial %" PRIu64 "%s%s%s\n", p->serial, o->check ? " (checked, not written)" : " -> ",
		o->check ? "" : o->out, changed ? "" : " (unchanged)");
	fprintf(out, "  ports %u-%u in slices of %u: %u slices per IP; drain %" PRId64 "s\n", p->port_lo,
		p->port_hi, p->slice_size, p->slices_per_ip, p->drain);
	if (ips && servers && p->n_demands <= 60) {
		count_per_demand(p, ips, servers);
		fprintf(out, "\n  %-12s %-44s %7s %6s %4s\n", "DC", "TAG-SET", "SERVERS", "SLICES", "IPS");
		for (uint32_t d = 0; d < p->n_demands; d++) {
			char *tags = su_tags__format(&p->demands[d].tags);

			if (!p->demands[d].retired)
				fprintf(out, "  %-12s %-44s %7u %6u %4u\n", p->dcs[p->demands[d].dc].name, tags ? tags : "?",
					servers[d], p->demands[d].slices, ips[d]);
			free(tags);
		}
	} else if (ips && servers) {
		fprintf(out, "  %u DC tag-sets (see `softunicast show`)\n", p->n_demands);
	}
	if (o->cost)
		print_cost_per_dc(out, p);
	fprintf(out, "\ncost: %" PRIu64 " egress IPv4 addresses in use (%" PRIu64 " draining); one IP per server per\n"
		     "      tag-set would need %" PRIu64 " (%.1f%% saved); lower bound %" PRIu64 "\n"
		     "slices: %" PRIu64 " active, %" PRIu64 " draining, %" PRIu64 " free\n",
		c.active_ips, c.draining_ips, c.per_server, saving(&c), c.lower_bound, c.slices_active,
		c.slices_draining, c.slices_free);
	free(ips);
	free(servers);
}

static int print_summary_json(const struct su_plan *p, const struct opts *o, bool changed)
{
	uint32_t *ips = calloc(p->n_demands + 1, sizeof(*ips)), *servers = calloc(p->n_demands + 1, sizeof(*servers));
	json_t *demands = json_array(), *summary;
	struct su_plan_cost c;

	if (!ips || !servers) {
		free(ips);
		free(servers);
		json_decref(demands);
		return cli_fail(SU_EXIT_FAIL, "plan", "out of memory");
	}
	su_plan__cost(p, &c);
	count_per_demand(p, ips, servers);
	for (uint32_t d = 0; d < p->n_demands; d++)
		if (!p->demands[d].retired)
			json_array_append_new(demands, json_pack("{s:s,s:o,s:i,s:i,s:i}", "dc",
				p->dcs[p->demands[d].dc].name, "tags", cli_tags_json(&p->demands[d].tags),
				"servers", servers[d], "slices_per_server", p->demands[d].slices, "ips", ips[d]));
	free(ips);
	free(servers);
	summary = json_pack("{s:I,s:s?,s:b,s:[ii],s:i,s:I,s:i,s:o,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I}}",
		"serial", (json_int_t)p->serial, "out", o->check ? NULL : o->out, "changed", changed, "ports",
		p->port_lo, p->port_hi, "slice_size", p->slice_size, "drain", (json_int_t)p->drain,
		"slices_per_ip", p->slices_per_ip, "demands", demands, "cost", "active_ips",
		(json_int_t)c.active_ips, "draining_ips", (json_int_t)c.draining_ips, "per_server_ips",
		(json_int_t)c.per_server, "lower_bound", (json_int_t)c.lower_bound, "slices", "active",
		(json_int_t)c.slices_active, "draining", (json_int_t)c.slices_draining, "free",
		(json_int_t)c.slices_free);
	if (summary && o->cost)
		json_object_set_new(summary, "per_dc", cost_per_dc_json(p));
	return cli_print_json(summary);
}

static int run(const struct opts *o, struct su_fleet *fleet, struct su_plan *prev)
{
	struct su_plan_report report;
	struct su_plan *plan;
	struct su_err err;
	bool changed;
	int ret = su_planner__run(fleet, prev, o->now, &plan, &report, &err);

	if (ret == -ENOSPC) {
		print_shortfall(&report, o->json);
		su_plan_report__free(&report);
		return SU_EXIT_UNSATISFIED;
	}
	if (ret)
		return cli_fail(ret == -EXDEV ? SU_EXIT_INVALID : SU_EXIT_FAIL, "plan", "%s", err.msg);
	changed = !prev || plan->serial != prev->serial;
	if (!o->check && su_plan__write(plan, o->out, &err))
		ret = cli_fail(SU_EXIT_FAIL, "plan", "%s", err.msg);
	else if (o->json)
		ret = print_summary_json(plan, o, changed);
	else
		print_summary_text(o->out && !strcmp(o->out, "-") ? stderr : stdout, plan, o, changed);
	su_plan__free(plan);
	return ret;
}

int plan_main(int argc, char **argv)
{
	struct su_fleet *fleet = NULL;
	struct su_plan *prev = NULL;
	struct su_err err;
	struct opts o;
	int ret = parse_opts(argc, argv, &o);

	if (ret)
		return ret < 0 ? SU_EXIT_OK : ret;
	if (o.store.url) {
		ret = cli_store_replan("plan", &o.store,
				       &(struct cli_replan){ .fleet_path = o.fleet, .now = o.now,
							     .dry_run = o.dry_run, .json = o.json,
							     .edit = o.pins.n ? add_pins : NULL,
							     .arg = &o.pins });
		su_ops__free(&o.pins);
		return ret;
	}
	if (su_fleet__load(o.fleet, &fleet, &err)) {
		su_ops__free(&o.pins);
		return cli_fail(SU_EXIT_INVALID, "plan", "%s", err.msg);
	}
	/* Strict: a pin naming a DC or range the fleet does not have is a
	 * typo, refused before anything is planned. */
	if (o.pins.n && su_ops__apply(&o.pins, fleet, true, &err))
		ret = cli_fail(SU_EXIT_USAGE, "plan", "--pin: %s", err.msg);
	if (!ret && o.previous && !(prev = cli_load_plan("plan", o.previous)))
		ret = SU_EXIT_INVALID;
	if (!ret)
		ret = run(&o, fleet, prev);
	su_plan__free(prev);
	su_fleet__free(fleet);
	su_ops__free(&o.pins);
	return ret;
}
