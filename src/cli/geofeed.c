/* softunicast geofeed — RFC 8805 CSV of the egress space in use. */
#include <getopt.h>
#include <stdio.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/geofeed.h"

static const char usage_text[] =
	"Usage: softunicast geofeed --plan PLAN\n"
	"\n"
	"Prints the RFC 8805 self-published geofeed of the egress addresses the plan\n"
	"uses (active and draining), one line per CIDR: prefix,country,region,city,\n"
	"(postal code left empty, as RFC 8805 section 2.1.1.5 advises).  Consecutive\n"
	"addresses with the same location are merged into the fewest CIDRs.  Addresses\n"
	"whose tags carry no country are left out.\n"
	"\n"
	"Publish it where origins look (an RPSL geofeed: attribute, RFC 9632).\n"
	"\n"
	"Options:\n"
	"  -p, --plan FILE   the plan to read\n"
	"      --store URL     the current plan of a store (file:///PATH, etcd://HOST:PORT/PREFIX)\n"
	"  -h, --help        this text\n";

int geofeed_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "plan", required_argument, NULL, 'p' }, { "store", required_argument, NULL, 'p' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *plan_path = NULL;
	struct su_plan *p;
	int c, ret;

	while ((c = getopt_long(argc, argv, "p:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 'h': fputs(usage_text, stdout); return SU_EXIT_OK;
		default: fputs(usage_text, stderr); return SU_EXIT_USAGE;
		}
	}
	if (!plan_path || optind != argc)
		return cli_fail(SU_EXIT_USAGE, "geofeed", "needs --plan PLAN; see --help");
	p = cli_load_plan("geofeed", plan_path);
	if (!p)
		return SU_EXIT_INVALID;
	ret = su_geofeed__write(p, stdout) ? cli_fail(SU_EXIT_FAIL, "geofeed", "write failed") : SU_EXIT_OK;
	su_plan__free(p);
	return ret;
}
