/* Fleet loader: a valid fleet reads as written; every bad fleet in the table
 * is refused with the line and the offending value in the message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <errno.h>

#include "lib/fleet.h"

static struct su_fleet *parse(const char *yaml, struct su_err *err)
{
	struct su_fleet *f = NULL;

	memset(err, 0, sizeof(*err));
	su_fleet__parse(yaml, strlen(yaml), "t.yaml", &f, err);
	return f;
}

static void valid_fleet_reads_as_written(void **state)
{
	const char *yaml =
		"ports:\n  range: 1024-65535\n  slice: 2048\n"
		"drain: 1h30m\n"
		"datacenters:\n"
		"  lhr:\n    router: 10.1.0.1\n    servers:\n      lhr-s1: 10.1.1.1\n      lhr-s2: 10.1.1.2\n"
		"    egress:\n      - {service: cdn}\n      - {service: warp, country: IE, slices: 2}\n"
		"prefixes:\n"
		"  - prefix: 198.51.100.0/25\n    tags: {service: warp, country: IE, region: IE-L, city: Dublin}\n"
		"  - prefix: 203.0.113.0/24\n    tags: {service: cdn}\n    datacenters: [lhr]\n";
	struct su_err err;
	struct su_fleet *f = parse(yaml, &err);

	assert_non_null(f);
	assert_int_equal(f->port_lo, 1024);
	assert_int_equal(f->port_hi, 65535);
	assert_int_equal(f->slice_size, 2048);
	assert_int_equal(f->drain, 5400);
	assert_int_equal(f->n_dcs, 1);
	assert_string_equal(f->dcs[0].name, "lhr");
	assert_int_equal(f->dcs[0].router, 0x0a010001);
	assert_int_equal(f->dcs[0].n_servers, 2);
	assert_string_equal(f->dcs[0].servers[1].name, "lhr-s2");
	assert_int_equal(f->dcs[0].n_demands, 2);
	assert_int_equal(f->dcs[0].demands[1].slices, 2);
	assert_string_equal(su_tags__get(&f->dcs[0].demands[1].tags, "country"), "IE");
	assert_null(su_tags__get(&f->dcs[0].demands[1].tags, "slices"));
	assert_int_equal(f->n_prefixes, 2);
	assert_int_equal(f->prefixes[1].prefix.len, 24);
	assert_int_equal(f->prefixes[1].n_dcs, 1);
	assert_int_equal(f->prefixes[0].n_dcs, 0);
	su_fleet__free(f);
}

static void defaults_apply(void **state)
{
	const char *yaml = "datacenters:\n  a:\n    router: 10.0.0.1\n"
			   "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: x}}\n";
	struct su_err err;
	struct su_fleet *f = parse(yaml, &err);

	assert_non_null(f);
	assert_int_equal(f->port_lo, SU_DEFAULT_PORT_LO);
	assert_int_equal(f->slice_size, SU_DEFAULT_SLICE);
	assert_int_equal(f->drain, SU_DEFAULT_DRAIN);
	su_fleet__free(f);
}

/* Every bad fleet below is the good one with one thing wrong. */
#define HEAD "ports:\n  range: 1024-65535\n  slice: 2048\ndrain: 10m\n"
#define DC_A "datacenters:\n  a:\n    router: 10.0.0.1\n    servers:\n      s1: 10.0.1.1\n" \
	     "    egress:\n      - {service: x}\n"
#define PFX "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: x}}\n"

static const struct bad_fleet {
	const char *what, *yaml, *expect;
} bad_fleets[] = {
	{ "empty file", "", "empty fleet" },
	{ "YAML syntax", HEAD "datacenters: [\n", "YAML syntax error" },
	{ "root is a list", "- a\n- b\n", "t.yaml:1: the fleet description must be a mapping" },
	{ "unknown top-level key", HEAD "colour: blue\n" DC_A PFX, "t.yaml:5: unknown key 'colour'" },
	{ "duplicate top-level key", HEAD "drain: 5m\n" DC_A PFX, "t.yaml:5: fleet: duplicate key 'drain'" },
	{ "slice not a power of two", "ports:\n  slice: 3000\n" DC_A PFX, "t.yaml:2: ports: slice 3000 is not a power of two" },
	{ "slice too small", "ports:\n  slice: 16\n" DC_A PFX, "t.yaml:2: ports: slice: '16' is out of range" },
	{ "slice does not fit range", "ports:\n  range: 1024-3000\n  slice: 4096\n" DC_A PFX, "no whole 4096-port slice fits in 1024-3000" },
	{ "range reversed", "ports:\n  range: 9000-2000\n" DC_A PFX, "t.yaml:2: ports: bad range '9000-2000'" },
	{ "range out of bounds", "ports:\n  range: 1024-70000\n" DC_A PFX, "bad range '1024-70000'" },
	{ "unknown ports key", "ports:\n  size: 2048\n" DC_A PFX, "t.yaml:2: ports: unknown key 'size'" },
	{ "bad drain", "drain: soon\n" DC_A PFX, "t.yaml:1: drain: bad duration 'soon'" },
	{ "no datacenters", HEAD PFX, "no datacenters" },
	{ "no prefixes", HEAD DC_A, "no prefixes" },
	{ "bad DC name", HEAD "datacenters:\n  'a b':\n    router: 10.0.0.1\n" PFX, "t.yaml:6: bad data center name 'a b'" },
	{ "DC without router", HEAD "datacenters:\n  a:\n    servers:\n      s1: 10.0.1.1\n" PFX, "t.yaml:6: data center a has no router address" },
	{ "malformed router address", HEAD "datacenters:\n  a:\n    router: 10.0.0.256\n" PFX, "t.yaml:7: router: bad IPv4 address '10.0.0.256'" },
	{ "leading zero in address", HEAD "datacenters:\n  a:\n    router: 10.0.0.01\n" PFX, "bad IPv4 address '10.0.0.01'" },
	{ "unknown DC key", HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    rack: 7\n" PFX, "t.yaml:8: data center a: unknown key 'rack'" },
	{ "malformed server address", HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    servers:\n      s1: 10.0.1\n" PFX,
	  "t.yaml:9: server s1: bad IPv4 address '10.0.1'" },
	{ "duplicate server name in DC", HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    servers:\n      s1: 10.0.1.1\n      s1: 10.0.1.2\n" PFX,
	  "t.yaml:10: servers: duplicate key 's1'" },
	{ "duplicate server name across DCs", HEAD DC_A "  b:\n    router: 10.0.0.2\n    servers:\n      s1: 10.0.2.1\n" PFX,
	  "t.yaml:15: server name 's1' is already used (line 9)" },
	{ "duplicate server address", HEAD DC_A "  b:\n    router: 10.0.0.2\n    servers:\n      s2: 10.0.1.1\n" PFX,
	  "t.yaml:15: address 10.0.1.1 of s2 is already used by s1 (line 9)" },
	{ "server address equals router", HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    servers:\n      s1: 10.0.0.1\n" PFX,
	  "address 10.0.0.1 of s1 is already used by a" },
	{ "duplicate DC", HEAD DC_A "  a:\n    router: 10.0.0.2\n" PFX, "t.yaml:12: datacenters: duplicate key 'a'" },
	{ "egress not a list", HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    egress: {service: x}\n" PFX,
	  "t.yaml:8: egress must be a list, not a mapping" },
	{ "empty tag-set", HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    egress:\n      - {}\n" PFX, "t.yaml:9: egress tag-set of a has no tags" },
	{ "repeated tag-set", HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    egress:\n      - {service: x}\n      - {service: x}\n" PFX,
	  "t.yaml:10: egress tag-set repeated in a (first on line 9)" },
	{ "slices zero", HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    egress:\n      - {service: x, slices: 0}\n" PFX,
	  "t.yaml:9: slices: '0' is out of range 1-64" },
	{ "slices not a number", HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    egress:\n      - {service: x, slices: two}\n" PFX,
	  "slices: 'two' is not a number" },
	{ "bad tag key", HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    egress:\n      - {Service: x}\n" PFX,
	  "t.yaml:9: egress tag-set: bad tag key 'Service'" },
	{ "empty tag value", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: ''}}\n", "t.yaml:13: prefix tags: tag 'service' needs a non-empty value" },
	{ "malformed prefix", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2/24, tags: {service: x}}\n", "t.yaml:13: bad IPv4 prefix '192.0.2/24'" },
	{ "prefix host bits", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.1/24, tags: {service: x}}\n", "t.yaml:13: prefix '192.0.2.1/24' has host bits set" },
	{ "prefix length", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/33, tags: {service: x}}\n", "bad IPv4 prefix '192.0.2.0/33'" },
	{ "overlapping prefixes", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: x}}\n  - {prefix: 192.0.2.128/25, tags: {service: y}}\n",
	  "t.yaml:14: prefix 192.0.2.128/25 overlaps 192.0.2.0/24 (line 13)" },
	{ "prefix without tags", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24}\n", "t.yaml:13: prefix 192.0.2.0/24 has no tags" },
	{ "unknown prefix key", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: x}, owner: me}\n", "t.yaml:13: prefix entry: unknown key 'owner'" },
	{ "unknown DC in prefix", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: x}, datacenters: [zz]}\n", "t.yaml:13: unknown data center 'zz'" },
	{ "DC listed twice in prefix", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: x}, datacenters: [a, a]}\n", "data center 'a' listed twice" },
	{ "bad country code", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: x, country: UK}}\n", "t.yaml:13: country 'UK' is not an ISO 3166-1 alpha-2 code" },
	{ "lowercase country", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: x, country: gb}}\n", "country 'gb' is not an ISO 3166-1" },
	{ "region of another country", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: x, country: GB, region: FR-IDF}}\n", "region 'FR-IDF' is not an ISO 3166-2 subdivision of country 'GB'" },
	{ "city with comma", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: x, country: GB, city: 'London, UK'}}\n", "t.yaml:13: city 'London, UK' is not fit for a geofeed: ',' at byte 6" },
	{ "prefix larger than /8", HEAD DC_A "prefixes:\n  - {prefix: 10.0.0.0/7, tags: {service: x}}\n", "prefix '10.0.0.0/7' is larger than a /8" },
	{ "tags not a mapping", HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: [x]}\n", "prefix tags must be a mapping, not a list" },
};

static void bad_fleets_are_refused(void **state)
{
	int failures = 0;

	for (size_t i = 0; i < sizeof(bad_fleets) / sizeof(bad_fleets[0]); i++) {
		struct su_err err;
		struct su_fleet *f = parse(bad_fleets[i].yaml, &err);

		if (f || !strstr(err.msg, bad_fleets[i].expect)) {
			print_error("bad fleet '%s': got %s '%s', expected '%s'\n", bad_fleets[i].what,
				    f ? "success" : "error", err.msg, bad_fleets[i].expect);
			su_fleet__free(f);
			failures++;
		}
	}
	assert_int_equal(failures, 0);
	assert_true(sizeof(bad_fleets) / sizeof(bad_fleets[0]) >= 25);
}

static void load_reports_missing_file(void **state)
{
	struct su_fleet *f;
	struct su_err err;

	assert_int_equal(su_fleet__load("/nonexistent/fleet.yaml", &f, &err), -ENOENT);
	assert_null(f);
	assert_non_null(strstr(err.msg, "/nonexistent/fleet.yaml"));
}

static void durations_parse(void **state)
{
	int64_t s;

	assert_int_equal(su_duration__parse("90", &s), 0);
	assert_int_equal(s, 90);
	assert_int_equal(su_duration__parse("1h30m", &s), 0);
	assert_int_equal(s, 5400);
	assert_int_equal(su_duration__parse("2d", &s), 0);
	assert_int_equal(s, 172800);
	assert_int_not_equal(su_duration__parse("10x", &s), 0);
	assert_int_not_equal(su_duration__parse("m", &s), 0);
	assert_int_not_equal(su_duration__parse("", &s), 0);
	assert_int_not_equal(su_duration__parse("400d", &s), 0);
}

static void slice_geometry(void **state)
{
	uint32_t first, count;

	assert_int_equal(su_slices__geometry(1024, 65535, 2048, &first, &count), 0);
	assert_int_equal(first, 1);
	assert_int_equal(count, 31); /* the article's 31 servers per /32 */
	assert_int_equal(su_slices__geometry(1024, 65535, 1024, &first, &count), 0);
	assert_int_equal(count, 63);
	assert_int_not_equal(su_slices__geometry(1025, 2047, 1024, &first, &count), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_fleet_reads_as_written), cmocka_unit_test(defaults_apply),
		cmocka_unit_test(bad_fleets_are_refused),       cmocka_unit_test(load_reports_missing_file),
		cmocka_unit_test(durations_parse),              cmocka_unit_test(slice_geometry),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
