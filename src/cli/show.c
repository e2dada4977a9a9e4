/* softunicast show — a plan's assignments, filtered by DC or server. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/store_cli.h"

static const char usage_text[] =
	"Usage: softunicast show --plan PLAN [--dc DC] [--server NAME] [--json]\n"
	"       softunicast show --store URL --export FILE\n"
	"\n"
	"Lists the plan's slices, one line per owned slice: IP, port range, data\n"
	"center, server, state, tags.  Free slices are not listed.\n"
	"\n"
	"With --export the plan itself is written to FILE (atomically; '-' for\n"
	"standard output) in the snapshot format every --plan FILE reads: a copy of\n"
	"a stored plan, for a backup, a node that runs on plan files, or `diff`.\n"
	"\n"
	"Options:\n"
	"  -p, --plan FILE     the plan to read\n"
	"      --store URL     the current plan of a store (file:///PATH, etcd://HOST:PORT/PREFIX)\n"
	"  -d, --dc DC         only this data center's IPs\n"
	"  -s, --server NAME   only this server's slices (including draining ones)\n"
	"  -e, --export FILE   write the whole plan to FILE instead of listing it\n"
	"  -j, --json          an array of objects shaped like `softunicast who --json`,\n"
	"                      without \"port\"\n"
	"  -h, --help          this text\n"
	"\n"
	"Exit status: 0 ok, 1 cannot write the export, 5 unknown DC or server, 2 usage,\n"
	"3 invalid plan.\n";

struct filter {
	int dc;             /* -1: any */
	const char *server; /* NULL: any */
};

static bool wanted(const struct su_plan *p, const struct su_plan_ip *ip, const struct su_plan_slot *slot,
		   const struct filter *f)
{
	if (slot->state == SU_FREE || (f->dc >= 0 && ip->dc != (uint32_t)f->dc))
		return false;
	/* A server's slices include those it still serves as a previous owner. */
	return !f->server || !strcmp(p->servers[slot->server].name, f->server) ||
	       (slot->prev_server >= 0 && !strcmp(p->servers[slot->prev_server].name, f->server));
}

static void print_text_row(const struct su_plan *p, const struct su_plan_ip *ip, uint32_t s)
{
	const struct su_plan_slot *slot = &p->slots[ip->first_slot + s];
	char a[SU_ADDR_STRLEN], *tags = su_tags__format(&p->prefixes[ip->prefix].tags);
	uint32_t lo = su_plan__slot_lo(p, s);

	printf("%-15s %5u-%-5u %-10s %-16s %-8s %s", su_addr__str(ip->ip, a), lo, lo + p->slice_size - 1,
	       p->dcs[ip->dc].name, p->servers[slot->server].name, su_state__name(slot->state),
	       tags ? tags : "?");
	if (slot->prev_server >= 0)
		printf("  from %s until %" PRId64, p->servers[slot->prev_server].name, slot->deadline);
	putchar('\n');
	free(tags);
}

static int show(const struct su_plan *p, const struct filter *f, bool json)
{
	json_t *rows = json ? json_array() : NULL;

	if (!json)
		printf("%-15s %-11s %-10s %-16s %-8s %s\n", "IP", "SLICE", "DC", "SERVER", "STATE", "TAGS");
	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *ip = &p->ips[i];

		for (uint32_t s = 0; s < p->slices_per_ip; s++) {
			if (!wanted(p, ip, &p->slots[ip->first_slot + s], f))
				continue;
			if (json)
				json_array_append_new(rows, cli_slot_json(p, ip, s));
			else
				print_text_row(p, ip, s);
		}
	}
	return json ? cli_print_json(rows) : SU_EXIT_OK;
}

static int export_plan(const struct su_plan *p, const char *path)
{
	struct su_err err;
	char *text;
	size_t len;
	int ret;

	if (strcmp(path, "-"))
		return su_plan__write(p, path, &err) ? cli_fail(SU_EXIT_FAIL, "show", "%s", err.msg) : SU_EXIT_OK;
	if ((ret = su_plan__format_view(p, NULL, &text, &len)))
		return cli_fail(SU_EXIT_FAIL, "show", "formatting the plan: %s", strerror(-ret));
	ret = fwrite(text, 1, len, stdout) == len && !fflush(stdout) ? SU_EXIT_OK :
		cli_fail(SU_EXIT_FAIL, "show", "standard output: %s", strerror(errno));
	free(text);
	return ret;
}

static bool server_known(const struct su_plan *p, const char *name)
{
	for (uint32_t i = 0; i < p->n_servers; i++)
		if (!strcmp(p->servers[i].name, name))
			return true;
	return false;
}

int show_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "plan", required_argument, NULL, 'p' }, { "store", required_argument, NULL, 'p' }, { "dc", required_argument, NULL, 'd' },
		{ "server", required_argument, NULL, 's' }, { "json", no_argument, NULL, 'j' },
		{ "export", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *plan_path = NULL, *dc = NULL, *export = NULL;
	struct filter f = { .dc = -1 };
	struct su_plan *p;
	bool json = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "p:d:s:e:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 'd': dc = optarg; break;
		case 's': f.server = optarg; break;
		case 'j': json = true; break;
		case 'e': export = optarg; break;
		case 'h': fputs(usage_text, stdout); return SU_EXIT_OK;
		default: fputs(usage_text, stderr); return SU_EXIT_USAGE;
		}
	}
	if (!plan_path || optind != argc)
		return cli_fail(SU_EXIT_USAGE, "show", "needs --plan PLAN and no other argument; see --help");
	p = cli_load_plan("show", plan_path);
	if (!p)
		return SU_EXIT_INVALID;
	if (export)
		ret = export_plan(p, export);
	else if (dc && (f.dc = su_plan__find_dc(p, dc)) < 0)
		ret = cli_fail(SU_EXIT_NOTFOUND, "show", "no data center '%s' in the plan", dc);
	else if (f.server && !server_known(p, f.server))
		ret = cli_fail(SU_EXIT_NOTFOUND, "show", "no server '%s' in the plan", f.server);
	else
		ret = show(p, &f, json);
	if (!ret && !json && !export && strstr(plan_path, "://")) /* pins and drains kept with a stored plan */
		cli_store_print_ops(plan_path, p->serial);
	su_plan__free(p);
	return ret;
}
