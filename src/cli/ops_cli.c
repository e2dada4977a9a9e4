/* softunicast move / drain / undrain / rollback — operations on a stored
 * plan.  Each records the operator's decision with the plan and re-plans
 * through the planner, so the next serial keeps every invariant (drains
 * honest, nothing moved that need not move). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/store_cli.h"
#include "lib/store/ops.h"

static const char usage_text[] =
	"Usage: softunicast move IP[/LEN] --to DC --store URL [--dry-run] [--json]\n"
	"       softunicast drain SERVER --store URL [--dry-run] [--json]\n"
	"       softunicast undrain SERVER --store URL [--dry-run] [--json]\n"
	"       softunicast rollback --to SERIAL --store URL [--dry-run] [--json]\n"
	"\n"
	"Change the fleet's plan in its store; each publishes the next serial\n"
	"through the planner, with the fleet and the operations stored beside it so\n"
	"that the next `softunicast plan` keeps them (`softunicast show --store URL`\n"
	"lists them).\n"
	"\n"
	"  move      pin the IPs of IP/LEN to data center DC, at once: DC's routers\n"
	"            and servers own them from this serial on (a server of DC that\n"
	"            needs slices takes them, new connections leave from them), and\n"
	"            each slice's previous owner keeps serving its live flows until\n"
	"            the fleet's drain time: the new owner's decap sends it what\n"
	"            belongs to no local socket (the second hop, marked in the GUE\n"
	"            header, never forwarded again).  A second move of an IP before\n"
	"            that deadline is refused, naming it (exit 1): a flow is never\n"
	"            more than one hop from its socket.  If DC has no tag-set that\n"
	"            the IP's tags serve, the IP drains where it is instead, and DC\n"
	"            may use it once drained.\n"
	"  drain     the server's slices go draining: no new connections from them,\n"
	"            live ones continue until the deadline; its agent keeps running.\n"
	"  undrain   the server takes slices again (free ones: possibly not the same).\n"
	"  rollback  re-plan with the fleet and operations of the kept version SERIAL\n"
	"            and publish that as the next serial: what moves since then goes\n"
	"            draining as any change would.\n"
	"\n"
	"Options:\n"
	"  -t, --to DC|SERIAL   target data center (move) or serial (rollback)\n"
	"  -n, --now SECONDS    the current time for drain deadlines (default: the clock)\n"
	"      --dry-run        print the diff, write nothing\n"
	"  -j, --json           print the result as JSON\n"
	"  -h, --help           this text\n"
	CLI_STORE_USAGE
	"\n"
	"Exit status: 0 published (or nothing to change), 1 store failure or the plan\n"
	"changed under you (re-run) or a move still has old flows (retry after the\n"
	"deadline it names), 2 usage, 3 invalid stored fleet, 4 demand\n"
	"cannot be met after the change (nothing written), 5 unknown server, DC or\n"
	"serial.\n";

struct op {
	const char *cmd, *arg, *to;
	struct cli_store_flags store;
	struct cli_replan r;
	struct su_prefix4 px;
};

static int parse(int argc, char **argv, struct op *o)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, 't' }, { "now", required_argument, NULL, 'n' },
		{ "dry-run", no_argument, NULL, 'D' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' }, CLI_STORE_OPTIONS, { NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	o->r.now = (int64_t)time(NULL);
	while ((c = getopt_long(argc, argv, "t:n:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 't': o->to = optarg; break;
		case 'D': o->r.dry_run = true; break;
		case 'j': o->r.json = true; break;
		case 'n':
			errno = 0;
			o->r.now = strtoll(optarg, &end, 10);
			if (errno || *end || o->r.now < 0)
				return cli_fail(SU_EXIT_USAGE, o->cmd, "--now: bad unix time '%s'", optarg);
			break;
		case 'h': fputs(usage_text, stdout); return -1;
		default:
			if ((c = cli_store_flag(o->cmd, c, optarg, &o->store)) > 0)
				break;
			if (!c)
				fputs(usage_text, stderr);
			return SU_EXIT_USAGE;
		}
	}
	if (!o->store.url)
		return cli_fail(SU_EXIT_USAGE, o->cmd, "--store URL is required; see --help");
	if (!strcmp(o->cmd, "rollback")) {
		if (optind != argc || !o->to)
			return cli_fail(SU_EXIT_USAGE, o->cmd, "needs --to SERIAL and no other argument");
		errno = 0;
		o->r.from_serial = strtoull(o->to, &end, 10);
		if (errno || *end || !o->r.from_serial)
			return cli_fail(SU_EXIT_USAGE, o->cmd, "--to: '%s' is not a plan serial", o->to);
		return 0;
	}
	if (optind != argc - 1)
		return cli_fail(SU_EXIT_USAGE, o->cmd, "needs exactly one %s; see --help",
				strcmp(o->cmd, "move") ? "SERVER" : "IP[/LEN]");
	o->arg = argv[optind];
	if (strcmp(o->cmd, "move"))
		return 0;
	if (!o->to)
		return cli_fail(SU_EXIT_USAGE, o->cmd, "needs --to DC");
	if (su_prefix__parse(o->arg, &o->px)) {
		char cidr[40];

		snprintf(cidr, sizeof(cidr), "%s/32", o->arg);
		if (strchr(o->arg, '/') || su_prefix__parse(cidr, &o->px))
			return cli_fail(SU_EXIT_USAGE, o->cmd, "'%s' is not IP or IP/LEN (host bits zero)", o->arg);
	}
	return 0;
}

static bool in_fleet(const struct su_fleet *f, const char *server)
{
	for (uint32_t d = 0; d < f->n_dcs; d++)
		for (uint32_t s = 0; s < f->dcs[d].n_servers; s++)
			if (!strcmp(f->dcs[d].servers[s].name, server))
				return true;
	return false;
}

static int edit(const char *cmd, struct su_ops *ops, const struct su_fleet *f, void *arg)
{
	const struct op *o = arg;
	int ret;

	if (!strcmp(cmd, "move")) {
		bool dc = false;

		for (uint32_t d = 0; d < f->n_dcs; d++)
			dc |= !strcmp(f->dcs[d].name, o->to);
		if (!dc)
			return cli_fail(SU_EXIT_NOTFOUND, cmd, "no data center '%s' in the fleet", o->to);
		ret = su_ops__pin(ops, &o->px, o->to);
	} else if (!strcmp(cmd, "drain")) {
		if (!in_fleet(f, o->arg))
			return cli_fail(SU_EXIT_NOTFOUND, cmd, "no server '%s' in the fleet", o->arg);
		ret = su_ops__drain(ops, o->arg, true);
	} else {
		ret = su_ops__drain(ops, o->arg, false);
		if (ret == -ENOENT)
			return cli_fail(SU_EXIT_NOTFOUND, cmd, "server '%s' is not drained", o->arg);
	}
	return ret ? cli_fail(SU_EXIT_FAIL, cmd, "%s", strerror(-ret)) : 0;
}

static int op_main(const char *cmd, int argc, char **argv)
{
	struct op o = { .cmd = cmd };
	int ret = parse(argc, argv, &o);

	if (ret)
		return ret < 0 ? SU_EXIT_OK : ret;
	if (strcmp(cmd, "rollback")) {
		o.r.edit = edit;
		o.r.arg = &o;
	}
	return cli_store_replan(cmd, &o.store, &o.r);
}

int move_main(int argc, char **argv)
{
	return op_main("move", argc, argv);
}

int drain_main(int argc, char **argv)
{
	return op_main("drain", argc, argv);
}

int undrain_main(int argc, char **argv)
{
	return op_main("undrain", argc, argv);
}

int rollback_main(int argc, char **argv)
{
	return op_main("rollback", argc, argv);
}
