/* softunicast status — which plan serial every router and agent applies,
 * from the reports they keep in the store under a lease (follow.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/store_cli.h"

static const char usage_text[] =
	"Usage: softunicast status --store URL [--json]\n"
	"\n"
	"Lists every router and agent following the store, with the plan serial it\n"
	"applies and its store state (ok, unreachable, refused: running on its last\n"
	"good plan), from the reports each keeps under a %d-second lease: a node that\n"
	"stops reporting disappears.  A node whose serial is not the store's current\n"
	"one is flagged SKEW (behind while a rollout is in progress; stuck if it stays).\n"
	"\n"
	"Options:\n"
	"  -j, --json   {\"store\",\"serial\",\"nodes\":[{\"role\",\"name\",\"dc\",\"state\",\n"
	"               \"serial\",\"fetched\",\"error\",\"skew\"}],\"skewed\"}\n"
	"  -h, --help   this text\n"
	"%s"
	"\n"
	"Exit status: 0 every node applies the current serial, 1 some node is skewed\n"
	"or the store failed, 2 usage, 5 no plan in the store.\n";

static void usage(FILE *out)
{
	fprintf(out, usage_text, 10, CLI_STORE_USAGE);
}

static json_t *node_json(const struct su_etcd_kv *kv, size_t skip, uint64_t current)
{
	json_error_t je;
	json_t *j = json_loadb(kv->value, kv->value_len, 0, &je), *out;
	const char *rn = kv->key + skip, *slash = strchr(rn, '/');
	json_int_t serial;

	if (!json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	serial = json_integer_value(json_object_get(j, "serial"));
	out = json_pack("{s:s%,s:s,s:O?,s:s,s:I,s:I,s:s,s:b}", "role", rn, slash ? (size_t)(slash - rn) : strlen(rn),
			"name", slash ? slash + 1 : "", "dc", json_object_get(j, "dc"), "state",
			json_string_value(json_object_get(j, "state")) ?: "?", "serial", serial, "fetched",
			json_integer_value(json_object_get(j, "fetched")), "error",
			json_string_value(json_object_get(j, "error")) ?: "", "skew", (uint64_t)serial != current);
	json_decref(j);
	return out;
}

static int list(struct su_store *s, uint64_t current, bool json)
{
	char *from = su_store__key(s, "nodes/"), *to = from ? su_etcd__prefix_end(from) : NULL;
	struct su_etcd_kv *kvs = NULL;
	json_t *nodes = json_array();
	struct su_err err;
	size_t n = 0, skewed = 0;
	int ret = to ? su_etcd__range(su_store__etcd(s), from, to, false, 0, &kvs, &n, NULL, &err) : -ENOMEM;

	if (ret) {
		json_decref(nodes);
		free(from);
		free(to);
		return cli_fail(SU_EXIT_FAIL, "status", "%s", ret == -ENOMEM ? "out of memory" : err.msg);
	}
	for (size_t i = 0; i < n; i++) {
		json_t *x = node_json(&kvs[i], strlen(from), current);

		skewed += json_is_true(json_object_get(x, "skew"));
		json_array_append_new(nodes, x);
	}
	su_etcd_kv__free(kvs, n);
	free(from);
	free(to);
	if (json) {
		cli_print_json(json_pack("{s:s,s:I,s:o,s:I}", "store", su_store__url(s), "serial", (json_int_t)current,
					 "nodes", nodes, "skewed", (json_int_t)skewed));
		return skewed ? SU_EXIT_FAIL : SU_EXIT_OK;
	}
	printf("%s: plan serial %" PRIu64 ", %zu node(s) reporting, %zu skewed\n", su_store__url(s), current,
	       json_array_size(nodes), skewed);
	printf("%-7s %-20s %-10s %-12s %8s %8s  %s\n", "ROLE", "NAME", "DC", "STATE", "SERIAL", "FETCHED", "");
	for (size_t i = 0; i < json_array_size(nodes); i++) {
		json_t *x = json_array_get(nodes, i);
		const char *e = json_string_value(json_object_get(x, "error"));

		printf("%-7s %-20s %-10s %-12s %8" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT "  %s%s%s\n",
		       json_string_value(json_object_get(x, "role")), json_string_value(json_object_get(x, "name")),
		       json_string_value(json_object_get(x, "dc")) ?: "-", json_string_value(json_object_get(x, "state")),
		       json_integer_value(json_object_get(x, "serial")), json_integer_value(json_object_get(x, "fetched")),
		       json_is_true(json_object_get(x, "skew")) ? "SKEW" : "", e && *e ? "  " : "", e ? e : "");
	}
	json_decref(nodes);
	return skewed ? SU_EXIT_FAIL : SU_EXIT_OK;
}

int status_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' }, CLI_STORE_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct cli_store_flags f = { 0 };
	struct su_store *s;
	struct su_err err;
	uint64_t serial = 0;
	bool json = false;
	int c, ret;

	while ((c = getopt_long(argc, argv, "jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'h': usage(stdout); return SU_EXIT_OK;
		default:
			if ((c = cli_store_flag("status", c, optarg, &f)) > 0)
				break;
			if (!c)
				usage(stderr);
			return SU_EXIT_USAGE;
		}
	}
	if (optind != argc || !f.url)
		return cli_fail(SU_EXIT_USAGE, "status", "needs --store URL and no argument; see --help");
	if (!(s = cli_store_open("status", &f)))
		return cli_store_exit();
	if (!su_store__etcd(s)) {
		su_store__close(s);
		return cli_fail(SU_EXIT_USAGE, "status", "nodes report only to an etcd store");
	}
	ret = su_store__serial(s, &serial, &err);
	if (ret)
		ret = cli_fail(ret == -ENOENT ? SU_EXIT_NOTFOUND : SU_EXIT_FAIL, "status", "%s", err.msg);
	else
		ret = list(s, serial, json);
	su_store__close(s);
	return ret;
}
