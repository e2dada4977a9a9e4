/* softunicast geofeed — RFC 8805 CSV of the egress space in use. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/geofeed.h"

static const char usage_text[] =
	"Usage: softunicast geofeed --plan PLAN [--json]\n"
	"\n"
	"Prints the RFC 8805 self-published geofeed of the egress addresses the plan\n"
	"uses (active and draining), one line per CIDR: prefix,country,region,city,\n"
	"(postal code left empty, as RFC 8805 section 2.1.1.5 advises).  Consecutive\n"
	"addresses with the same location are merged into the fewest CIDRs.  Addresses\n"
	"whose tags carry no country are left out.\n"
	"\n"
	"Publish it where origins look (an RPSL geofeed: attribute, RFC 9632).\n"
	"\n"
	"Before printing anything, every prefix's country and region are checked\n"
	"against ISO 3166-1 and 3166-2 as Debian's iso-codes package has them\n"
	"(/usr/share/iso-codes/json, or $SOFTUNICAST_ISO_CODES_DIR), and country,\n"
	"region, city and postal for control and format characters, surrounding\n"
	"whitespace, ',' and '\"'; a plan that fails prints nothing and exits 3.\n"
	"\n"
	"Options:\n"
	"  -p, --plan FILE   the plan to read\n"
	"      --store URL       the current plan of a store (file:///PATH, etcd://HOST:PORT/PREFIX)\n"
	"  -j, --json        the same lines as an array of {\"prefix\",\"country\",\"region\",\n"
	"                    \"city\",\"postal\"} (absent fields are \"\")\n"
	"  -h, --help        this text\n"
	"\n"
	"Exit status: 0 printed, 2 usage, 3 invalid plan (or iso-codes missing: the\n"
	"message names the package), 1 write failure.\n";

static int print_json(const struct su_plan *p)
{
	struct su_geofeed_entry *v;
	char a[SU_PREFIX_STRLEN];
	json_t *rows;
	size_t n;

	if (su_geofeed__build(p, &v, &n))
		return cli_fail(SU_EXIT_FAIL, "geofeed", "out of memory");
	rows = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(rows, json_pack("{s:s,s:s,s:s,s:s,s:s}", "prefix",
						      su_prefix__str(&v[i].prefix, a), "country", v[i].country,
						      "region", v[i].region, "city", v[i].city, "postal", ""));
	free(v);
	return cli_print_json(rows);
}

int geofeed_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "plan", required_argument, NULL, 'p' }, { "store", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	const char *plan_path = NULL;
	struct su_plan *p;
	struct su_err err;
	bool json = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "p:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 'j': json = true; break;
		case 'h': fputs(usage_text, stdout); return SU_EXIT_OK;
		default: fputs(usage_text, stderr); return SU_EXIT_USAGE;
		}
	}
	if (!plan_path || optind != argc)
		return cli_fail(SU_EXIT_USAGE, "geofeed", "needs --plan PLAN; see --help");
	p = cli_load_plan("geofeed", plan_path);
	if (!p)
		return SU_EXIT_INVALID;
	if (su_geofeed__check(p, &err))
		ret = cli_fail(SU_EXIT_INVALID, "geofeed", "%s: %s", plan_path, err.msg);
	else if (json)
		ret = print_json(p);
	else if (su_geofeed__write(p, stdout))
		ret = cli_fail(SU_EXIT_FAIL, "geofeed", "write failed");
	else
		ret = SU_EXIT_OK;
	su_plan__free(p);
	return ret;
}
