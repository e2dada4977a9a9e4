/* Plan snapshots round-trip exactly; damaged ones are refused with the line;
 * the geofeed aggregates into the fewest CIDRs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <errno.h>

#include "lib/geofeed.h"
#include "lib/planner.h"
#include "lib/util.h"

#define NOW 1700000000

static const char fleet_yaml[] =
	"drain: 5m\n"
	"datacenters:\n"
	"  lhr:\n    router: 10.1.0.1\n    servers:\n      lhr-s1: 10.1.1.1\n      lhr-s2: 10.1.1.2\n"
	"    egress:\n      - {service: warp, country: GB}\n      - {service: cdn, slices: 2}\n"
	"  cdg:\n    router: 10.2.0.1\n    servers:\n      cdg-s1: 10.2.1.1\n"
	"    egress:\n      - {service: warp, country: GB}\n"
	"prefixes:\n"
	"  - {prefix: 198.51.100.0/24, tags: {service: warp, country: GB, region: GB-ENG, city: New York}}\n"
	"  - {prefix: 203.0.113.0/24, tags: {service: cdn}, datacenters: [lhr]}\n";

static struct su_plan *plan_of(const char *yaml, const struct su_plan *prev, int64_t now)
{
	struct su_fleet *f;
	struct su_plan *p = NULL;
	struct su_plan_report r;
	struct su_err err;

	assert_int_equal(su_fleet__parse(yaml, strlen(yaml), "t.yaml", &f, &err), 0);
	assert_int_equal(su_planner__run(f, prev, now, &p, &r, &err), 0);
	su_fleet__free(f);
	return p;
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *buf;
	size_t len;

	assert_non_null(fp);
	assert_int_equal(su_read_all(fp, &buf, &len), 0);
	fclose(fp);
	return buf;
}

/* A plan with retired entities in it: lhr-s2 removed, so its slots drain. */
static struct su_plan *plan_with_draining(void)
{
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b;
	char *smaller = strdup(fleet_yaml);

	memcpy(strstr(smaller, "      lhr-s2: 10.1.1.2\n"), "                      ", 22);
	b = plan_of(smaller, a, NOW + 5);
	su_plan__free(a);
	free(smaller);
	return b;
}

static void round_trip_is_exact(void **state)
{
	char path[] = "/tmp/su-snap-XXXXXX", path2[64];
	struct su_plan *p = plan_with_draining(), *q;
	struct su_err err;
	char *a, *b;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(su_plan__write(p, path, &err), 0);
	assert_int_equal(su_plan__load(path, &q, &err), 0);
	assert_true(su_plan__equal(p, q));
	assert_int_equal(p->serial, q->serial);
	snprintf(path2, sizeof(path2), "%s.2", path);
	assert_int_equal(su_plan__write(q, path2, &err), 0);
	a = slurp(path);
	b = slurp(path2);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, " retired\n"));
	assert_non_null(strstr(a, "draining 1700000305\n"));
	assert_non_null(strstr(a, "city=New%20York")); /* spaces escaped in tags */
	free(a);
	free(b);
	unlink(path);
	unlink(path2);
	su_plan__free(p);
	su_plan__free(q);
}

static char *plan_text(const struct su_plan *p)
{
	char path[] = "/tmp/su-snap-XXXXXX", *text;
	struct su_err err;
	int fd = mkstemp(path);

	close(fd);
	assert_int_equal(su_plan__write(p, path, &err), 0);
	text = slurp(path);
	unlink(path);
	return text;
}

/* Replaces the first occurrence of `from` with `to` in a copy of text. */
static char *edit(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *out;

	assert_non_null(at);
	assert_true(asprintf(&out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from)) > 0);
	return out;
}

static const struct damage {
	const char *what, *from, *to, *expect;
} damages[] = {
	{ "wrong magic", "softunicast-plan 1", "softunicast-plan 9", "plan format '9' not supported" },
	{ "truncated", "end ", "", "unknown record" },
	{ "record count", "\nend ", "\nslot 1.2.3.4 2048 x 1.1.1.1 active\nend ", "does not follow its ip line" },
	{ "unknown server", "lhr-s1 10.1.1.1 active", "lhr-s9 10.1.1.1 active", "unknown server of this data center" },
	{ "server of other DC", "slot 198.51.100.1 2048 lhr-s1 10.1.1.1", "slot 198.51.100.1 2048 cdg-s1 10.2.1.1", "unknown server" },
	{ "unaligned slot", "2048 lhr-s1", "2049 lhr-s1", "port 2049 is not the start of a slice" },
	{ "slot outside range", "2048 lhr-s1", "0 lhr-s1", "port 0 is not the start of a slice" },
	{ "bad state", "lhr-s1 10.1.1.1 active", "lhr-s1 10.1.1.1 busy", "bad state" },
	{ "draining without deadline", "draining 1700000305", "draining", "bad state" },
	{ "unknown DC", "server cdg-s1 cdg", "server cdg-s1 zzz", "unknown data center 'zzz'" },
	{ "bad address", "dc lhr 10.1.0.1", "dc lhr 10.1.0", "bad router address" },
	{ "out of order", "serial", "drain 5\nserial", "expected 'serial N'" },
	{ "unknown record", "dc lhr", "router lhr", "unknown record 'router'" },
	{ "IP outside prefix", "ip 198.51.100.0 cdg 198.51.100.0/24", "ip 198.51.99.0 cdg 198.51.100.0/24", "address outside its prefix" },
	{ "tags do not match", "country=GB,service=warp active", "service=cdn active", "unknown tag-set" },
	/* yaml 1.1 ambiguous numbers: plan files read numbers by the same rule. */
	{ "leading zero in serial", "\nserial ", "\nserial 0", "expected 'serial N'" },
	{ "leading zero in drain", "\ndrain 300", "\ndrain 0300", "expected 'drain SECONDS'" },
	{ "sign in slot port", "2048 lhr-s1", "+2048 lhr-s1", "p.plan:" },
	{ "leading zero in slot port", "2048 lhr-s1", "02048 lhr-s1", "p.plan:" },
	/* geofeed format characters: a hand-edited plan cannot carry them. */
	{ "format character in region", "region=GB-ENG", "region=GB-ENG\xef\xbb\xbf", "region 'GB-ENG\\uFEFF' is not fit for a geofeed: U+FEFF" },
	{ "bidi control in city", "city=New", "city=\xe2\x80\xaeNew", "U+202E (a format character)" },
};

static void damaged_plans_are_refused(void **state)
{
	struct su_plan *p = plan_with_draining(), *q;
	char *text = plan_text(p);
	int failures = 0;

	for (size_t i = 0; i < sizeof(damages) / sizeof(damages[0]); i++) {
		char *bad = edit(text, damages[i].from, damages[i].to);
		struct su_err err = { { 0 } };
		int ret = su_plan__parse(bad, strlen(bad), "p.plan", &q, &err);

		if (!ret || !strstr(err.msg, damages[i].expect) || !strstr(err.msg, "p.plan:")) {
			print_error("damage '%s': got %d '%s', expected '%s'\n", damages[i].what, ret, err.msg,
				    damages[i].expect);
			failures++;
			su_plan__free(q);
		}
		free(bad);
	}
	/* Cut anywhere: never accepted. */
	for (size_t len = 0; len < strlen(text); len += 7) {
		struct su_err err;

		if (!su_plan__parse(text, len, "p.plan", &q, &err)) {
			print_error("truncation at %zu accepted\n", len);
			failures++;
			su_plan__free(q);
		}
	}
	assert_int_equal(failures, 0);
	free(text);
	su_plan__free(p);
}

/* A plan with a live move in it: lhr-s2 replaced by lhr-s3, which takes its
 * slots with lhr-s2 as their previous owner until NOW + 5 + 300. */
static struct su_plan *plan_with_handover(void)
{
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b;
	char *replaced = strdup(fleet_yaml);

	memcpy(strstr(replaced, "lhr-s2: 10.1.1.2"), "lhr-s3: 10.1.1.3", 16);
	b = plan_of(replaced, a, NOW + 5);
	su_plan__free(a);
	free(replaced);
	return b;
}

static const struct damage from_damages[] = {
	{ "from unknown server", "from lhr-s2 10.1.1.2 lhr", "from lhr-s7 10.1.1.2 lhr", "unknown server 'lhr-s7" },
	{ "from its owner", "from lhr-s2 10.1.1.2 lhr", "from lhr-s3 10.1.1.3 lhr", "previous owner is its owner" },
	{ "from without deadline", "lhr 1700000305", "lhr", "expected 'from SERVER SERVER-ADDR DC UNTIL'" },
	{ "from deadline zero", "lhr 1700000305", "lhr 0", "bad 'from' deadline '0'" },
	{ "from on a draining slot, other clock", "lhr-s3 10.1.1.3 active from", "lhr-s3 10.1.1.3 draining 1700000999 from",
	  "a draining slot's previous owner ends at its deadline" },
	{ "IP from its own DC", "service=cdn active\n", "service=cdn active from lhr 1700000305\n",
	  "previous owner on a draining IP, or the IP's own data center" },
	{ "IP from an unknown DC", "service=cdn active\n", "service=cdn active from zzz 1700000305\n",
	  "unknown data center 'zzz'" },
};

/* Previous owners (issue 10) survive a round trip byte for byte, and every
 * damaged `from` is refused with file, line and the offending value. */
static void handover_round_trips_and_is_checked(void **state)
{
	struct su_plan *p = plan_with_handover(), *q;
	char *text = plan_text(p), *again;
	struct su_err err;
	int failures = 0;

	assert_non_null(strstr(text, " active from lhr-s2 10.1.1.2 lhr 1700000305\n"));
	assert_int_equal(su_plan__parse(text, strlen(text), "p.plan", &q, &err), 0);
	assert_true(su_plan__equal(p, q));
	again = plan_text(q);
	assert_string_equal(text, again);
	free(again);
	su_plan__free(q);
	for (size_t i = 0; i < sizeof(from_damages) / sizeof(from_damages[0]); i++) {
		char *bad = edit(text, from_damages[i].from, from_damages[i].to);
		struct su_err e = { { 0 } };
		int ret = su_plan__parse(bad, strlen(bad), "p.plan", &q, &e);

		if (!ret || !strstr(e.msg, from_damages[i].expect) || !strstr(e.msg, "p.plan:")) {
			print_error("damage '%s': got %d '%s', expected '%s'\n", from_damages[i].what, ret, e.msg,
				    from_damages[i].expect);
			failures++;
			if (!ret)
				su_plan__free(q);
		}
		free(bad);
	}
	assert_int_equal(failures, 0);
	free(text);
	su_plan__free(p);
}

static void lookups_answer_who(void **state)
{
	struct su_plan *p = plan_of(fleet_yaml, NULL, NOW);
	const struct su_plan_ip *ip = su_plan__find_ip(p, 0xcb007100); /* 203.0.113.0 */
	const struct su_plan_slot *slot;

	assert_non_null(ip);
	assert_string_equal(p->dcs[ip->dc].name, "lhr");
	slot = su_plan__slot(p, ip, 40123);
	assert_non_null(slot);
	assert_null(su_plan__slot(p, ip, 1500)); /* below the first whole slice */
	slot = su_plan__slot(p, ip, 2048 + 2047);
	assert_int_equal(slot->state, SU_ACTIVE);
	assert_string_equal(p->servers[slot->server].name, "lhr-s1");
	assert_null(su_plan__find_ip(p, 0xcb0071ff));
	su_plan__free(p);
}

/* Builds a plan by hand holding the given addresses under one location. */
static void geofeed_aggregates(void **state)
{
	struct su_plan *p = su_plan__new();
	struct su_prefix4 px = { 0xc0000200, 24 }; /* 192.0.2.0/24 */
	struct su_tags t = { 0 };
	struct su_geofeed_entry *v;
	static const uint32_t ips[] = { 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 64 };
	size_t n;

	assert_int_equal(su_plan__set_geometry(p, 1024, 65535, 2048), 0);
	su_tags__set(&t, "country", "GB");
	su_tags__set(&t, "service", "warp");
	assert_int_equal(su_plan__add_dc(p, "lhr", 1, false), 0);
	assert_int_equal(su_plan__add_prefix(p, &px, &t, NULL, 0, false), 0);
	assert_int_equal(su_plan__add_demand(p, 0, &t, 1, false), 0);
	for (size_t i = 0; i < sizeof(ips) / sizeof(ips[0]); i++)
		assert_true(su_plan__add_ip(p, px.addr + ips[i], 0, 0, 0, SU_ACTIVE, 0) >= 0);
	assert_int_equal(su_geofeed__build(p, &v, &n), 0);
	/* .1-.6 → .1/32 .2/31 .4/31 .6/32; .8-.11 → .8/30; .64/32 */
	assert_int_equal(n, 6);
	assert_int_equal(v[0].prefix.addr, px.addr + 1);
	assert_int_equal(v[0].prefix.len, 32);
	assert_int_equal(v[1].prefix.len, 31);
	assert_int_equal(v[2].prefix.addr, px.addr + 4);
	assert_int_equal(v[2].prefix.len, 31);
	assert_int_equal(v[4].prefix.addr, px.addr + 8);
	assert_int_equal(v[4].prefix.len, 30);
	assert_string_equal(v[5].country, "GB");
	assert_string_equal(v[5].region, "");
	free(v);
	su_tags__free(&t);
	su_plan__free(p);
}

static void geofeed_of_whole_prefix_is_one_line(void **state)
{
	const char *yaml = "datacenters:\n  a:\n    router: 10.0.0.1\n    servers:\n      s1: 10.0.1.1\n"
			   "      s2: 10.0.1.2\n    egress:\n      - {country: GB, slices: 62}\n"
			   "prefixes:\n  - {prefix: 192.0.2.0/30, tags: {country: GB}}\n";
	struct su_plan *p = plan_of(yaml, NULL, NOW);
	struct su_geofeed_entry *v;
	size_t n;

	assert_int_equal(p->n_ips, 4);
	assert_int_equal(su_geofeed__build(p, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].prefix.len, 30);
	free(v);
	su_plan__free(p);
}

static void tags_escape_round_trip(void **state)
{
	struct su_tags t = { 0 }, u;
	struct su_err err;
	char *s;

	su_tags__set(&t, "city", "Saint-Denis, 93%");
	su_tags__set(&t, "a", "x=y");
	s = su_tags__format(&t);
	assert_string_equal(s, "a=x%3Dy,city=Saint-Denis%2C%2093%25");
	assert_int_equal(su_tags__parse(s, &u, &err), 0);
	assert_int_equal(su_tags__cmp(&t, &u), 0);
	su_tags__free(&u);
	assert_int_not_equal(su_tags__parse("a=1,a=2", &u, &err), 0);
	assert_int_not_equal(su_tags__parse("noequals", &u, &err), 0);
	assert_int_not_equal(su_tags__parse("a=%4", &u, &err), 0);
	free(s);
	su_tags__free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_is_exact),
		cmocka_unit_test(damaged_plans_are_refused),
		cmocka_unit_test(handover_round_trips_and_is_checked),
		cmocka_unit_test(lookups_answer_who),
		cmocka_unit_test(geofeed_aggregates),
		cmocka_unit_test(geofeed_of_whole_prefix_is_one_line),
		cmocka_unit_test(tags_escape_round_trip),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
