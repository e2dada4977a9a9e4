/* libFuzzer harness for the fleet loader (src/lib/fleet.c) and, on what it
 * accepts, the planner (src/lib/planner.c).
 *
 * The loader must reject any input with an error message and no leak; what
 * it accepts must be something the planner can run on without crashing: a
 * plan, or -ENOSPC with a shortfall report.  The plan the planner returns is
 * checked for the invariants the router and the agent rely on (every slot
 * owned by a server of the IP's DC, every active IP inside a prefix that
 * satisfies its tag-set, every server of a DC holding exactly the slices
 * each of its DC's tag-sets asks for) and then re-planned with itself as the
 * previous plan: unchanged demand must move nothing.  Then one server (picked
 * by the input's length) is removed: nobody else may move and its slices must
 * drain; it comes back, and the drain runs out, each step checked again.
 *
 * The loader's limits are fuzzed too: the input's first line must read as a
 * number only in plain decimal (what su_uint__parse accepts prints back the
 * same; nothing YAML-1.1-ambiguous is accepted); the input wrapped in k
 * levels of '[' is refused once k passes SU_FLEET_MAX_DEPTH; and, for one
 * input in 128, the input padded past SU_FLEET_MAX_BYTES is refused by its
 * size.
 *
 * Planning is skipped when the prefixes hold more than 65536 addresses:
 * the planner keeps a bitmap per prefix, and a /8 would make every run take
 * milliseconds without reaching any new code. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <inttypes.h>

#include "lib/fleet.h"
#include "lib/planner.h"
#include "lib/util.h"
#include "plan_check.h"

#define MAX_PLAN_ADDRS 65536u
#define NOW 1700000000

static uint64_t fleet_addrs(const struct su_fleet *f)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < f->n_prefixes; i++)
		n += su_prefix__size(&f->prefixes[i].prefix);
	return n;
}

/* Same fleet, the plan as the previous one: nothing may change. */
static void check_stable(const struct su_fleet *f, const struct su_plan *p)
{
	struct su_plan_report report;
	struct su_plan *again = NULL;
	struct su_err err;
	int ret = su_planner__run(f, p, NOW, &again, &report, &err);

	if (ret) {
		fprintf(stderr, "fuzz: re-plan of an unchanged fleet failed: %s\n", err.msg);
		abort();
	}
	if (!su_plan__equal(p, again) || again->serial != p->serial) {
		fprintf(stderr, "fuzz: re-plan of an unchanged fleet changed the plan\n");
		abort();
	}
	su_plan_report__free(&report);
	su_plan__free(again);
}

/* A run that may legitimately fall short (-ENOSPC); anything else fails. */
static struct su_plan *replan(const struct su_fleet *f, const struct su_plan *prev, int64_t now,
			      bool must_fit)
{
	struct su_plan_report report;
	struct su_plan *p = NULL;
	struct su_err err;
	int ret = su_planner__run(f, prev, now, &p, &report, &err);

	su_plan_report__free(&report);
	if (ret && (must_fit || ret != -ENOSPC)) {
		fprintf(stderr, "fuzz: re-plan failed: %s\n", err.msg);
		abort();
	}
	if (p)
		check_plan(p);
	return p;
}

/* One server leaves, comes back, and its old slices drain away. */
static void check_churn(struct su_fleet *f, const struct su_plan *p, size_t pick)
{
	struct su_fleet_dc *dc = &f->dcs[pick % f->n_dcs];
	struct su_plan *gone, *back, *later;
	const char *name;

	if (!dc->n_servers)
		return;
	/* Swap the picked server last and hide it from the fleet. */
	struct su_fleet_server tmp = dc->servers[pick % dc->n_servers];

	dc->servers[pick % dc->n_servers] = dc->servers[dc->n_servers - 1];
	dc->servers[dc->n_servers - 1] = tmp;
	name = tmp.name;
	dc->n_servers--;
	gone = replan(f, p, NOW + 10, true);
	dc->n_servers++;
	check_nothing_moved(p, gone, name);
	back = replan(f, gone, NOW + 20, false);
	if (back) {
		check_nothing_moved(gone, back, NULL);
		later = replan(f, back, NOW + 20 + f->drain + 1, true);
		check_nothing_moved(back, later, NULL);
		su_plan__free(later);
	}
	su_plan__free(back);
	su_plan__free(gone);
}

/* Numbers: accepted means plain decimal, which prints back unchanged. */
static void check_numbers(const uint8_t *data, size_t size)
{
	char s[32], back[32];
	size_t n = 0;
	uint64_t v;
	int64_t d;

	while (n < size && n < sizeof(s) - 1 && data[n] != '\n' && data[n])
		s[n] = (char)data[n], n++;
	s[n] = '\0';
	if (!su_uint__parse(s, UINT64_MAX, &v)) {
		snprintf(back, sizeof(back), "%" PRIu64, v);
		if (strcmp(back, s) || su_number__ambiguity(s)) {
			fprintf(stderr, "fuzz: '%s' accepted as the number %s\n", s, back);
			abort();
		}
	}
	if (!su_duration__parse(s, &d) && strspn(s, "0123456789") == strlen(s)) {
		snprintf(back, sizeof(back), "%" PRId64, d);
		if (strcmp(back, s)) {
			fprintf(stderr, "fuzz: drain '%s' accepted as %s seconds\n", s, back);
			abort();
		}
	}
}

/* Limits: must refuse, and say which, however the input looks. */
static void expect_refused(const char *buf, size_t len, const char *why1, const char *why2)
{
	struct su_fleet *f = NULL;
	struct su_err err;

	err.msg[0] = '\0';
	if (!su_fleet__parse(buf, len, "fuzz.yaml", &f, &err) || f ||
	    (!strstr(err.msg, why1) && !(why2 && strstr(err.msg, why2)))) {
		fprintf(stderr, "fuzz: over a limit (%s) but: %s\n", why1, f ? "accepted" : err.msg);
		abort();
	}
}

static void check_limits(const uint8_t *data, size_t size)
{
	unsigned k = size ? SU_FLEET_MAX_DEPTH + 1 + data[0] % 8 : SU_FLEET_MAX_DEPTH + 1;
	char *buf = malloc(size + 2 * k + 1);

	if (!buf)
		return;
	/* k '[' first: the depth limit trips at the (MAX+1)th, unless the
	 * scanner's look-ahead meets a syntax error in the input first. */
	memset(buf, '[', k);
	memcpy(buf + k, data, size);
	memset(buf + k + size, ']', k);
	expect_refused(buf, size + 2 * k, "nested more than", "YAML syntax error");
	free(buf);
	if (size && (data[size - 1] & 127) == 0) {
		size_t big = SU_FLEET_MAX_BYTES + 1;

		buf = malloc(big);
		if (!buf)
			return;
		memcpy(buf, data, size);
		memset(buf + size, '\n', big - size);
		expect_refused(buf, big, "a fleet file may have at most", NULL);
		free(buf);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct su_plan_report report;
	struct su_fleet *f = NULL;
	struct su_plan *p = NULL;
	struct su_err err;
	int ret;

	if (size > 16384)
		return 0;
	check_numbers(data, size);
	check_limits(data, size);
	err.msg[0] = '\0';
	ret = su_fleet__parse((const char *)data, size, "fuzz.yaml", &f, &err);
	if (ret) {
		if (f || ret >= 0 || (ret != -ENOMEM && !err.msg[0]))
			abort(); /* a rejection must say why and hand back nothing */
		return 0;
	}
	if (fleet_addrs(f) <= MAX_PLAN_ADDRS) {
		ret = su_planner__run(f, NULL, NOW, &p, &report, &err);
		if (ret == -ENOSPC && (p || !report.n))
			abort();
		if (!ret) {
			check_plan(p);
			check_round_trip(p);
			check_stable(f, p);
			check_churn(f, p, size);
		}
		su_plan_report__free(&report);
		su_plan__free(p);
	}
	su_fleet__free(f);
	return 0;
}
