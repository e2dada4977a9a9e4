/* softunicast diff — what changed between two plans. */
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
	"Usage: softunicast diff [--json] OLD-PLAN NEW-PLAN\n"
	"       softunicast diff [--json] --store URL OLD-SERIAL [NEW-SERIAL]\n"
	"\n"
	"Shows what a plan change does to live traffic, one line per change:\n"
	"  + ip     an IP appeared (with its DC)       - ip     an IP left the plan (gone,\n"
	"  ~ ip     an IP moved to another DC                   or drained: its drain ended)\n"
	"  ! ip     an IP started draining             ! slot   a slice started draining\n"
	"  + slot   a slice was assigned               - slot   a slice was freed, or drained\n"
	"  ~ slot   a slice changed owner                       (its drain time is over)\n"
	"A live move (~ ip, ~ slot) shows \"until T\": the previous owner serves the old\n"
	"flows until then, through the new owner's second hop (docs/operator.md, Moves).\n"
	"and a count of each at the end.\n"
	"\n"
	"Options:\n"
	"  -s, --store URL  compare two serials kept in a store (NEW-SERIAL: the\n"
	"               current one); etcd keeps the last --keep versions\n"
	"  -j, --json   an object {\"old_serial\",\"new_serial\",\"changes\":[{\"what\",\"change\",\n"
	"               \"ip\",\"slice\",\"from\",\"to\",\"deadline\"}],\"counts\":{..}}\n"
	"  -h, --help   this text\n"
	"\n"
	"Exit status: 0 (also when the plans differ), 2 usage, 3 invalid plan.\n";

enum change { APPEARED, GONE, MOVED, DRAINING, DRAINED, ASSIGNED, FREED, REASSIGNED, REACTIVATED };
static const char *const change_names[] = { "appeared", "gone", "moved", "draining", "drained",
					    "assigned", "freed", "reassigned", "reactivated" };
static const char change_marks[] = "+-~!-+-~~";

struct differ {
	const struct su_plan *a, *b;
	json_t *changes; /* NULL: text output */
	unsigned counts[REACTIVATED + 1];
};


static void emit(struct differ *d, bool slot, enum change c, uint32_t ip, long slice_lo, uint32_t slice_size,
		 const char *from, const char *to, int64_t deadline)
{
	char a[SU_ADDR_STRLEN];

	d->counts[c]++;
	su_addr__str(ip, a);
	if (d->changes) {
		json_t *o = json_pack("{s:s,s:s,s:s}", "what", slot ? "slot" : "ip", "change", change_names[c], "ip", a);

		if (slice_lo >= 0)
			json_object_set_new(o, "slice", json_pack("[II]", (json_int_t)slice_lo,
								  (json_int_t)(slice_lo + slice_size - 1)));
		json_object_set_new(o, "from", from ? json_string(from) : json_null());
		json_object_set_new(o, "to", to ? json_string(to) : json_null());
		if (deadline)
			json_object_set_new(o, "deadline", json_integer(deadline));
		json_array_append_new(d->changes, o);
		return;
	}
	printf("%c %-4s %s", change_marks[c], slot ? "slot" : "ip", a);
	if (slice_lo >= 0)
		printf(":%ld-%ld", slice_lo, slice_lo + (long)slice_size - 1);
	printf("  %s", change_names[c]);
	if (from && to)
		printf(" %s -> %s", from, to);
	else if (from || to)
		printf(" %s", from ? from : to);
	if (deadline)
		printf(" until %" PRId64, deadline);
	putchar('\n');
}

static const char *owner(const struct su_plan *p, const struct su_plan_slot *s)
{
	return s->server >= 0 ? p->servers[s->server].name : NULL;
}

static bool same_owner(const struct differ *d, const struct su_plan_slot *x, const struct su_plan_slot *y)
{
	if (x->server < 0 || y->server < 0)
		return x->server == y->server;
	return d->a->servers[x->server].addr == d->b->servers[y->server].addr &&
	       !strcmp(d->a->servers[x->server].name, d->b->servers[y->server].name);
}

static void diff_slot(struct differ *d, const struct su_plan_ip *ia, const struct su_plan_ip *ib, uint32_t s)
{
	const struct su_plan_slot *x = ia ? &d->a->slots[ia->first_slot + s] : NULL;
	const struct su_plan_slot *y = ib ? &d->b->slots[ib->first_slot + s] : NULL;
	const struct su_plan *p = ib ? d->b : d->a;
	uint32_t ip = ib ? ib->ip : ia->ip, lo = su_plan__slot_lo(p, s);
	bool had = x && x->state != SU_FREE, has = y && y->state != SU_FREE;

	if (!had && has)
		emit(d, true, ASSIGNED, ip, lo, p->slice_size, NULL, owner(d->b, y), y->deadline);
	else if (had && !has)
		emit(d, true, x->state == SU_DRAINING ? DRAINED : FREED, ip, lo, p->slice_size, owner(d->a, x),
		     NULL, 0);
	else if (had && !same_owner(d, x, y))
		emit(d, true, REASSIGNED, ip, lo, p->slice_size, owner(d->a, x), owner(d->b, y), y->deadline);
	else if (had && x->state != y->state)
		emit(d, true, y->state == SU_DRAINING ? DRAINING : REACTIVATED, ip, lo, p->slice_size,
		     owner(d->b, y), NULL, y->deadline);
}

static void diff_ip(struct differ *d, const struct su_plan_ip *ia, const struct su_plan_ip *ib)
{
	bool slots_comparable = d->a->slice_size == d->b->slice_size && d->a->first_slice == d->b->first_slice &&
				d->a->slices_per_ip == d->b->slices_per_ip;

	if (!ia)
		emit(d, false, APPEARED, ib->ip, -1, 0, NULL, d->b->dcs[ib->dc].name, ib->deadline);
	else if (!ib)
		emit(d, false, ia->state == SU_DRAINING ? DRAINED : GONE, ia->ip, -1, 0, d->a->dcs[ia->dc].name,
		     NULL, 0);
	else if (strcmp(d->a->dcs[ia->dc].name, d->b->dcs[ib->dc].name))
		emit(d, false, MOVED, ia->ip, -1, 0, d->a->dcs[ia->dc].name, d->b->dcs[ib->dc].name,
		     ib->prev_dc >= 0 ? ib->prev_deadline : ib->deadline);
	else if (ia->state != ib->state)
		emit(d, false, ib->state == SU_DRAINING ? DRAINING : REACTIVATED, ib->ip, -1, 0,
		     d->b->dcs[ib->dc].name, NULL, ib->deadline);
	if (!slots_comparable && ia && ib)
		return;
	for (uint32_t s = 0; s < (ib ? d->b : d->a)->slices_per_ip; s++)
		diff_slot(d, ia, ib, s);
}

static void diff_plans(struct differ *d)
{
	uint32_t i = 0, j = 0;

	while (i < d->a->n_ips || j < d->b->n_ips) {
		const struct su_plan_ip *x = i < d->a->n_ips ? &d->a->ips[i] : NULL;
		const struct su_plan_ip *y = j < d->b->n_ips ? &d->b->ips[j] : NULL;

		if (x && y && x->ip == y->ip) {
			diff_ip(d, x, y);
			i++, j++;
		} else if (x && (!y || x->ip < y->ip)) {
			diff_ip(d, x, NULL);
			i++;
		} else {
			diff_ip(d, NULL, y);
			j++;
		}
	}
}

static int report(struct differ *d)
{
	json_t *counts = json_object();
	unsigned total = 0;

	for (int c = 0; c <= REACTIVATED; c++) {
		json_object_set_new(counts, change_names[c], json_integer(d->counts[c]));
		total += d->counts[c];
	}
	if (d->changes)
		return cli_print_json(json_pack("{s:I,s:I,s:o,s:o}", "old_serial", (json_int_t)d->a->serial,
						"new_serial", (json_int_t)d->b->serial, "changes", d->changes,
						"counts", counts));
	json_decref(counts);
	printf("serial %" PRIu64 " -> %" PRIu64 ": ", d->a->serial, d->b->serial);
	if (!total)
		printf("no changes\n");
	for (int c = 0, first = 1; c <= REACTIVATED; c++)
		if (d->counts[c]) {
			printf("%s%u %s", first ? "" : ", ", d->counts[c], change_names[c]);
			first = 0;
		}
	if (total)
		putchar('\n');
	return SU_EXIT_OK;
}

static int diff_store(const char *url, int n, char **serials, bool json)
{
	uint64_t s[2] = { 0, 0 };
	struct su_plan *a = NULL, *b = NULL;
	char *end;
	int ret = SU_EXIT_INVALID;

	if (n < 1 || n > 2)
		return cli_fail(SU_EXIT_USAGE, "diff", "--store needs OLD-SERIAL [NEW-SERIAL]; see --help");
	for (int i = 0; i < n; i++) {
		errno = 0;
		s[i] = strtoull(serials[i], &end, 10);
		if (errno || *end || !s[i])
			return cli_fail(SU_EXIT_USAGE, "diff", "'%s' is not a plan serial", serials[i]);
	}
	if ((a = cli_store_load("diff", url, s[0])) && (b = cli_store_load("diff", url, s[1])))
		ret = cli_diff_print(a, b, json);
	su_plan__free(a);
	su_plan__free(b);
	return ret;
}

int cli_diff_print(const struct su_plan *a, const struct su_plan *b, bool json)
{
	struct differ d = { .a = a, .b = b, .changes = json ? json_array() : NULL };

	diff_plans(&d);
	return report(&d);
}

int diff_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' }, { "help", no_argument, NULL, 'h' },
		{ "store", required_argument, NULL, 's' }, { NULL, 0, NULL, 0 },
	};
	const char *store = NULL;
	struct differ d = { 0 };
	struct su_plan *a = NULL, *b = NULL;
	bool json = false;
	int c, ret = SU_EXIT_INVALID;

	while ((c = getopt_long(argc, argv, "jhs:", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 's': store = optarg; break;
		case 'h': fputs(usage_text, stdout); return SU_EXIT_OK;
		default: fputs(usage_text, stderr); return SU_EXIT_USAGE;
		}
	}
	if (store)
		return diff_store(store, argc - optind, argv + optind, json);
	if (optind != argc - 2)
		return cli_fail(SU_EXIT_USAGE, "diff", "needs OLD-PLAN NEW-PLAN; see --help");
	if ((a = cli_load_plan("diff", argv[optind])) && (b = cli_load_plan("diff", argv[optind + 1]))) {
		d = (struct differ){ .a = a, .b = b, .changes = json ? json_array() : NULL };
		diff_plans(&d);
		ret = report(&d);
	}
	su_plan__free(a);
	su_plan__free(b);
	return ret;
}
