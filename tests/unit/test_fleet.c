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

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "lib/fleet.h"
#include "lib/geo.h"
#include "lib/util.h"

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

/* CPU time, not wall time: eight suites share two cores, and what is
 * measured is the loader's work (14 s of CPU for 80 KB of '[' before). */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A string of `n` copies of `unit` after `head`. */
static char *repeat(const char *head, const char *unit, size_t n)
{
	size_t h = strlen(head), u = strlen(unit);
	char *s = malloc(h + u * n + 1);

	assert_non_null(s);
	memcpy(s, head, h);
	for (size_t i = 0; i < n; i++)
		memcpy(s + h + i * u, unit, u);
	s[h + u * n] = '\0';
	return s;
}

/* Refused, with `expect` in the message, within `limit` seconds. */
static void refused_within(const char *what, const char *yaml, size_t len, const char *expect, double limit)
{
	struct su_fleet *f = NULL;
	struct su_err err = { { 0 } };
	double t0 = now_s(), took;
	int ret = su_fleet__parse(yaml, len, "t.yaml", &f, &err);

	took = now_s() - t0;
	if (!ret || f || !strstr(err.msg, expect) || took > limit)
		fail_msg("%s: ret %d in %.3f s, error '%s', expected '%s' within %.1f s", what, ret, took, err.msg,
			 expect, limit);
}

/* Kind: the YAML scanner is quadratic in nesting; every nesting shape
 * (flow lists, flow mappings, block mappings, block lists) is refused at
 * the depth limit in well under a second, whatever the file's size. */
static void deep_nesting_refused_fast(void **state)
{
	static const struct { const char *what, *head, *unit; size_t n; } cases[] = {
		{ "80 KB of '['", "", "[", 80000 },
		{ "400 KB of '['", "", "[", 400000 },
		{ "flow mappings", "a: ", "{a: ", 100000 },
		{ "mixed flow", "prefixes: ", "[{a: ", 50000 },
		{ "block lists on one line", "", "- ", 50000 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *y = repeat(cases[i].head, cases[i].unit, cases[i].n);

		refused_within(cases[i].what, y, strlen(y), "t.yaml:1: lists and mappings nested more than 16 deep",
			       0.5);
		free(y);
	}
	/* Block mappings by indentation: the line of the 17th level is named. */
	char *y = malloc(200000), *p = y;

	for (int d = 0; d < 300; d++)
		p += sprintf(p, "%*sk%d:\n", d, "", d);
	refused_within("indented mappings", y, strlen(y), "t.yaml:17: lists and mappings nested more than 16", 0.5);
	free(y);
	/* The real nesting of a fleet (depth 5) stays well inside. */
	assert_true(SU_FLEET_MAX_DEPTH >= 8);
}

/* Kind: a file or a part of one too large to be a fleet is refused before
 * the document is built: whole size (by fstat, before reading), one value,
 * node count, and expansion through anchors and aliases (billion laughs). */
static void oversized_file_refused(void **state)
{
	char path[] = "/tmp/su-test-fleet-XXXXXX";
	struct su_fleet *f = NULL;
	struct su_err err;
	double t0;
	int fd = mkstemp(path);
	char *y;

	/* A sparse 17 MiB file: refused by its size, without reading it. */
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)SU_FLEET_MAX_BYTES + 1), 0);
	close(fd);
	t0 = now_s();
	assert_int_equal(su_fleet__load(path, &f, &err), -EFBIG);
	assert_true(now_s() - t0 < 0.1);
	assert_null(f);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "a fleet file may have at most 16777216"));
	unlink(path);
	/* A pipe or device is cut off at the limit, not read to its end. */
	assert_int_equal(su_fleet__load("/dev/zero", &f, &err), -EFBIG);
	assert_non_null(strstr(err.msg, "/dev/zero: more than 16777216 bytes"));

	y = repeat("drain: ", "1", SU_FLEET_MAX_SCALAR + 1);
	refused_within("long value", y, strlen(y), "t.yaml:1: a value of 1025 bytes: the limit is 1024", 0.5);
	free(y);
	y = repeat("prefixes: [", "1,", SU_FLEET_MAX_NODES + 1);
	/* The node limit bounds the memory of the document libyaml would build
	 * (about 100 bytes a node); time is only a sanity bound (sanitizers). */
	refused_within("many nodes", y, strlen(y), "more than 2000000 values, lists and mappings", 10.0);
	free(y);
	refused_within("billion laughs", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a]\n",
		       strlen("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a]\n"),
		       "t.yaml:1: YAML anchor '&a' refused", 0.5);
	refused_within("alias", "a: *x\n", 6, "t.yaml:1: YAML alias '*x' refused", 0.5);
	refused_within("explicit tag", "drain: !!int 600\n", 17, "t.yaml:1: YAML tag 'tag:yaml.org,2002:int' refused",
		       0.5);
	refused_within("second document", "drain: 10m\n---\ndrain: 1s\n", 25, "t.yaml:2: a second YAML document",
		       0.5);
}

/* Kind: many keys or entries are no longer compared pairwise: 60,000
 * servers in one DC and 5,000 tag-sets load in well under two seconds, and
 * a repeat among them is still found and named. */
static void many_keys_load_fast(void **state)
{
	size_t cap = 8 << 20, n = 0;
	char *y = malloc(cap);
	struct su_fleet *f = NULL;
	struct su_err err;
	double t0;

	n += (size_t)sprintf(y + n, "datacenters:\n  a:\n    router: 10.255.255.254\n    servers:\n");
	for (int i = 0; i < 60000; i++)
		n += (size_t)sprintf(y + n, "      s%d: 10.%d.%d.%d\n", i, i >> 16, (i >> 8) & 255, i & 255);
	n += (size_t)sprintf(y + n, "    egress:\n");
	for (int i = 0; i < 5000; i++)
		n += (size_t)sprintf(y + n, "      - {service: s%d}\n", i);
	n += (size_t)sprintf(y + n, "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: s1}}\n");
	t0 = now_s();
	assert_int_equal(su_fleet__parse(y, n, "t.yaml", &f, &err), 0);
	assert_true(now_s() - t0 < 2.0);
	assert_int_equal(f->dcs[0].n_servers, 60000);
	su_fleet__free(f);
	/* The same with one repeated server and one repeated tag-set. */
	memcpy(strstr(y, "s59999:"), "s7:    ", 7);
	assert_int_not_equal(su_fleet__parse(y, n, "t.yaml", &f, &err), 0);
	assert_non_null(strstr(err.msg, "servers: duplicate key"));
	free(y);
}

/* Kind: every number softunicast reads is plain decimal; each YAML 1.1/1.2
 * form that another reader takes for a different number is refused with a
 * message naming it, in every numeric field of a fleet. */
static void yaml_1_1_ambiguous_numbers(void **state)
{
	static const struct { const char *value, *says; } forms[] = {
		{ "010", "leading zero" }, { "0100", "leading zero" }, { "0x10", "hexadecimal" },
		{ "0o10", "octal prefix" }, { "0b10", "binary" }, { "1_000", "digit separator" },
		{ "+5", "a sign" }, { ".5", "a float" }, { "1e3", "a float" }, { "1.0", "a float" },
		{ "1:30", "sexagesimal" }, { "-010", "leading zero" }, { ".inf", "YAML float" },
	};
	static const char *const fields[] = {
		"ports:\n  slice: %s\n" DC_A PFX,
		"ports:\n  range: %s-65535\n" DC_A PFX,
		"ports:\n  range: 1024-%s\n" DC_A PFX,
		"drain: %s\n" DC_A PFX,
		HEAD "datacenters:\n  a:\n    router: 10.0.0.1\n    egress:\n      - {service: x, slices: %s}\n" PFX,
	};
	int failures = 0;

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		for (size_t j = 0; j < sizeof(fields) / sizeof(fields[0]); j++) {
			char yaml[1024];
			struct su_err err;
			struct su_fleet *f;

			if (forms[i].value[0] == '-' && strstr(fields[j], "range"))
				continue; /* '-' is the range's separator */
			snprintf(yaml, sizeof(yaml), fields[j], forms[i].value);
			f = parse(yaml, &err);
			if (f || !strstr(err.msg, "ambiguous") || !strstr(err.msg, forms[i].says)) {
				print_error("'%s' in field %zu: got '%s'\n", forms[i].value, j, f ? "accepted" : err.msg);
				failures++;
			}
			su_fleet__free(f);
		}
	assert_int_equal(failures, 0);

	uint64_t v;

	assert_int_equal(su_uint__parse("0", 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(su_uint__parse("65535", 65535, &v), 0);
	assert_int_equal(su_uint__parse("65536", 65535, &v), -ERANGE);
	assert_int_equal(su_uint__parse("99999999999999999999999", UINT64_MAX, &v), -ERANGE);
	assert_int_equal(su_uint__parse("010", 100, &v), -EDOM);
	assert_int_equal(su_uint__parse(" 10", 100, &v), -EINVAL);
	assert_int_equal(su_uint__parse("10 ", 100, &v), -EINVAL);
	assert_int_equal(su_uint__parse("-1", 100, &v), -EINVAL);
	assert_int_equal(su_uint__parse("ten", 100, &v), -EINVAL);
	assert_null(su_number__ambiguity("10"));
	assert_null(su_number__ambiguity("10m"));
	int64_t s;

	assert_int_equal(su_duration__parse("010", &s), -EDOM);
	assert_int_equal(su_duration__parse("1:30", &s), -EDOM);
	assert_int_equal(su_duration__parse("1h05m", &s), 0); /* a string to every YAML reader */
	assert_int_equal(s, 3900);
}

/* Kind: a drain shorter than TIME_WAIT at origins (2 x MSL) is refused
 * unless the fleet says it knows; the override is a strict boolean. */
static void drain_floor(void **state)
{
	static const struct { const char *yaml, *expect; } cases[] = {
		{ "drain: 0\n", "t.yaml:1: drain: 0 is below the floor of 240s" },
		{ "drain: 30s\n", "drain: 30s is below the floor of 240s: origins keep TIME_WAIT" },
		{ "drain: 3m59s\n", "below the floor of 240s" },
		{ "drain: 30s\nallow_short_drain: false\n", "below the floor" },
		{ "drain: 30s\nallow_short_drain: yes\n", "t.yaml:2: allow_short_drain: 'yes' is not true or false (YAML 1.1" },
		{ "allow_short_drain: on\ndrain: 30s\n", "allow_short_drain: 'on' is not true or false" },
		{ "drain: 4m\n", NULL },
		{ "drain: 30s\nallow_short_drain: true\n", NULL },
		{ "allow_short_drain: true\ndrain: 0\n", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char yaml[1024];
		struct su_err err;
		struct su_fleet *f;

		snprintf(yaml, sizeof(yaml), "%s" DC_A PFX, cases[i].yaml);
		f = parse(yaml, &err);
		if (cases[i].expect && (f || !strstr(err.msg, cases[i].expect)))
			fail_msg("'%s': got '%s', expected '%s'", cases[i].yaml, f ? "accepted" : err.msg,
				 cases[i].expect);
		if (!cases[i].expect && !f)
			fail_msg("'%s' refused: %s", cases[i].yaml, err.msg);
		su_fleet__free(f);
	}
	assert_true(SU_DEFAULT_DRAIN >= SU_MIN_DRAIN);
}

/* Kind: a value that reaches the geofeed carries no invisible, control or
 * line-breaking character and no surrounding whitespace, in any of the
 * geofeed's fields; the error shows the character escaped. */
static void geofeed_format_characters(void **state)
{
	static const struct { const char *value, *says; } bad[] = {
		{ "\"Dublin\\ufeff\"", "U+FEFF (a format character)" },
		{ "\"Dub\\u200blin\"", "U+200B (a format character)" },
		{ "\"Dub\\u202elin\"", "U+202E (a format character)" },
		{ "\"Dub\\u2066lin\"", "U+2066 (a format character)" },
		{ "\"Dub\\u00adlin\"", "U+00AD (a format character)" },
		{ "\"Dub\\u0007lin\"", "U+0007 (a control character)" },
		{ "\"Dub\\u0085lin\"", "U+0085 (a control character)" },
		{ "\"Dub\\u2028lin\"", "U+2028 (a line separator)" },
		{ "\"Dub\\ue000lin\"", "U+E000 (a private-use character)" },
		{ "\" Dublin\"", "leading or trailing whitespace" },
		{ "\"Dublin \"", "leading or trailing whitespace" },
		{ "\"Dublin\\u00a0\"", "leading or trailing whitespace (U+00A0)" },
		{ "\"Dublin\\u3000\"", "leading or trailing whitespace (U+3000)" },
		{ "'Dub,lin'", "would break the CSV line" },
		{ "'Dub\"lin'", "would break the CSV line" },
	};
	static const char *const keys[] = { "city", "postal" };
	int failures = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		for (size_t k = 0; k < 2; k++) {
			char yaml[1024];
			struct su_err err;
			struct su_fleet *f;

			snprintf(yaml, sizeof(yaml), HEAD DC_A "prefixes:\n  - prefix: 192.0.2.0/24\n    tags: {service: x, "
				 "country: IE, %s: %s}\n", keys[k], bad[i].value);
			f = parse(yaml, &err);
			if (f || !strstr(err.msg, "t.yaml:14:") || !strstr(err.msg, bad[i].says)) {
				print_error("%s %s: got '%s'\n", keys[k], bad[i].value, f ? "accepted" : err.msg);
				failures++;
			}
			su_fleet__free(f);
		}
	assert_int_equal(failures, 0);

	char why[128], shown[64];

	assert_int_equal(su_geo__check_text("Dub\xfflin", true, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "invalid UTF-8 at byte 3"));
	assert_int_equal(su_geo__check_text("Baile \xc3\x81tha Cliath", true, why, sizeof(why)), 0);
	assert_int_equal(su_geo__check_text("S\xc3\xa3o Paulo", true, why, sizeof(why)), 0);
	assert_string_equal(su_geo__escape("a\xe2\x80\xae" "b\xff", shown, sizeof(shown)), "a\\u202Eb\\xFF");
	/* Non-geofeed tags get the same invisible-character rule (no CSV rule). */
	struct su_err err;
	struct su_fleet *f = parse(HEAD DC_A "prefixes:\n  - {prefix: 192.0.2.0/24, tags: {service: \"x\\u200b\"}}\n", &err);

	assert_null(f);
	assert_non_null(strstr(err.msg, "tag service 'x\\u200B': U+200B"));
}

/* Kind: country and region are looked up in Debian's iso-codes data at run
 * time, not only checked for their shape; its absence is a clear error. */
static void iso_3166_region(void **state)
{
	static const struct { const char *tags, *expect; } cases[] = {
		{ "country: NL, region: NL-ZZ9", "region 'NL-ZZ9' is not an ISO 3166-2 subdivision of country 'NL'" },
		{ "country: GB, region: GB-XXX", "region 'GB-XXX' is not an ISO 3166-2" },
		{ "country: ZZ", "country 'ZZ' is not an ISO 3166-1 alpha-2 code" },
		{ "country: UK", "country 'UK' is not an ISO 3166-1" },
		{ "country: XK", "country 'XK' is not an ISO 3166-1" }, /* user-assigned, not in ISO 3166-1 */
		{ "region: GB-ENG", "of country '(none)'" },
		{ "country: IE, region: GB-ENG", "region 'GB-ENG' is not an ISO 3166-2 subdivision of country 'IE'" },
		{ "country: GB, region: GB-ENG, city: London", NULL },
		{ "country: NL, region: NL-NH", NULL },
		{ "country: IE, region: IE-L", NULL },
		{ "country: SS", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char yaml[1024];
		struct su_err err;
		struct su_fleet *f;

		snprintf(yaml, sizeof(yaml), HEAD DC_A "prefixes:\n  - prefix: 192.0.2.0/24\n    tags: {service: x, %s}\n",
			 cases[i].tags);
		f = parse(yaml, &err);
		if (cases[i].expect && (f || !strstr(err.msg, cases[i].expect) || !strstr(err.msg, "t.yaml:14:")))
			fail_msg("'%s': got '%s', expected '%s'", cases[i].tags, f ? "accepted" : err.msg,
				 cases[i].expect);
		if (!cases[i].expect && !f)
			fail_msg("'%s' refused: %s", cases[i].tags, err.msg);
		su_fleet__free(f);
	}

	struct su_iso3166 *db;
	struct su_err err;

	assert_int_equal(su_iso3166__open("/nonexistent/iso", &db, &err), -ENOENT);
	assert_null(db);
	assert_non_null(strstr(err.msg, "/nonexistent/iso/iso_3166-1.json"));
	assert_non_null(strstr(err.msg, "install the Debian package iso-codes"));
	assert_int_equal(su_iso3166__open(NULL, &db, &err), 0);
	assert_true(su_iso3166__country(db, "IE"));
	assert_false(su_iso3166__country(db, "ZZ"));
	assert_true(su_iso3166__subdivision(db, "GB-ENG"));
	assert_false(su_iso3166__subdivision(db, "NL-ZZ9"));
	su_iso3166__free(db);
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
		cmocka_unit_test(deep_nesting_refused_fast),    cmocka_unit_test(oversized_file_refused),
		cmocka_unit_test(many_keys_load_fast),          cmocka_unit_test(yaml_1_1_ambiguous_numbers),
		cmocka_unit_test(drain_floor),                  cmocka_unit_test(geofeed_format_characters),
		cmocka_unit_test(iso_3166_region),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
