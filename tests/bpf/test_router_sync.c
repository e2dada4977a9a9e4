/* The plan -> router maps sync (src/router/router_sync.c, compiled in here:
 * the router's userspace is not part of libsoftunicast).  Real BPF maps from
 * the router's skeleton, unpinned; needs root to create them.
 *
 * What matters is the order of writes the data path can observe: a changed
 * IP gets a fresh slot region and its entry flips to it, the region it used
 * before is left intact (a packet that read the old entry still finds the
 * whole old assignment), unchanged IPs are not touched. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/router/router_sync.c"
#include "router.skel.h"

static struct router *skel;
static struct su_router_maps maps;

#define LHR_IP "198.51.100.1"
#define CDG_IP "198.51.100.0"

/* A plan: lhr (router 10.100.0.1) owns LHR_IP, cdg (10.200.0.2) CDG_IP.
 * `slots` lists "PORT SERVER" pairs of lhr's IP, `with_cdg` keeps cdg. */
static struct su_plan *plan(const char *slots, bool with_cdg)
{
	static const char *servers[][3] = {
		{ "s1", "lhr", "10.100.0.11" },
		{ "s2", "lhr", "10.100.0.12" },
		{ "s3", "lhr", "10.100.0.13" },
	};
	char buf[4096], line[256];
	size_t n = 0, lines = 0;
	struct su_plan *p = NULL;
	struct su_err err;
	char *dup, *tok, *save;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		snprintf(line, sizeof(line), __VA_ARGS__);                                        \
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\n", line);                    \
		lines++;                                                                          \
	} while (0)
	ADD("softunicast-plan 1");
	ADD("serial 1");
	ADD("ports 1024-65535 slice 2048");
	ADD("drain 600");
	if (with_cdg)
		ADD("dc cdg 10.200.0.2");
	ADD("dc lhr 10.100.0.1");
	if (with_cdg)
		ADD("server c1 cdg 10.101.0.11");
	for (size_t i = 0; i < 3; i++)
		ADD("server %s %s %s", servers[i][0], servers[i][1], servers[i][2]);
	ADD("prefix 198.51.100.0/28 service=cdn *");
	if (with_cdg)
		ADD("demand cdg service=cdn 1");
	ADD("demand lhr service=cdn 1");
	if (with_cdg) {
		ADD("ip " CDG_IP " cdg 198.51.100.0/28 service=cdn service=cdn active");
		ADD("slot " CDG_IP " 2048 c1 10.101.0.11 active");
	}
	ADD("ip " LHR_IP " lhr 198.51.100.0/28 service=cdn service=cdn active");
	dup = strdup(slots);
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned port;
		char name[8];

		if (sscanf(tok, "%u %7s", &port, name) != 2)
			continue;
		for (size_t i = 0; i < 3; i++)
			if (!strcmp(name, servers[i][0]))
				ADD("slot " LHR_IP " %u %s %s active", port, name, servers[i][2]);
	}
	free(dup);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "end %zu\n", lines);
#undef ADD
	if (su_plan__parse(buf, n, "test.plan", &p, &err)) {
		print_message("# plan: %s\n", err.msg);
		return NULL;
	}
	return p;
}

static struct su_ip_val ip_entry(const char *ip)
{
	struct su_ip_val v = { 0 };
	uint32_t a;
	__be32 k;

	su_addr__parse(ip, &a);
	k = htonl(a);
	v.flags = 0xdead;
	if (bpf_map_lookup_elem(maps.ips, &k, &v))
		v.flags = 0xdead; /* absent */
	return v;
}

static uint32_t slot_at(uint32_t base, uint16_t port)
{
	uint32_t idx = base + (port >> 11) - 1;
	__be32 v = 0;

	bpf_map_lookup_elem(maps.slots, &idx, &v);
	return ntohl(v);
}

static int dc_lhr(const struct su_plan *p)
{
	return su_plan__find_dc(p, "lhr");
}

static void sync_ok(struct su_plan *p, struct su_router_sync_stats *st)
{
	struct su_err err = { "" };

	assert_non_null(p);
	if (su_router__sync(&maps, p, (uint32_t)dc_lhr(p), st, &err))
		fail_msg("sync: %s", err.msg);
	su_plan__free(p);
}

static void first_sync_fills_everything(void **state)
{
	struct su_router_sync_stats st;
	struct su_ip_val l, c;
	__be32 k = htonl(0x0ac80002); /* cdg's router */
	uint32_t dc;

	sync_ok(plan("2048 s1,4096 s2", true), &st);
	assert_int_equal(st.ips_local, 1);
	assert_int_equal(st.ips_remote, 1);
	assert_int_equal(st.ips_changed, 2);
	assert_int_equal(st.routers, 1);
	l = ip_entry(LHR_IP);
	c = ip_entry(CDG_IP);
	assert_int_equal(l.flags, SU_IP_LOCAL);
	assert_int_equal(c.flags, 0);
	assert_int_equal(ntohl(c.router), 0x0ac80002);
	assert_int_equal(slot_at(l.slot_base, 2048), 0x0a64000b);
	assert_int_equal(slot_at(l.slot_base, 4096 + 100), 0x0a64000c);
	assert_int_equal(slot_at(l.slot_base, 6144), 0);
	assert_int_equal(slot_at(l.slot_base, 63488), 0);
	assert_int_equal(bpf_map_lookup_elem(maps.routers, &k, &dc), 0);
}

static void same_plan_touches_nothing(void **state)
{
	struct su_router_sync_stats st;
	struct su_ip_val before = ip_entry(LHR_IP), after;

	sync_ok(plan("2048 s1,4096 s2", true), &st);
	assert_int_equal(st.ips_changed, 0);
	assert_int_equal(st.ips_unchanged, 2);
	after = ip_entry(LHR_IP);
	assert_int_equal(after.slot_base, before.slot_base);
}

static void changed_ip_flips_to_a_new_region(void **state)
{
	struct su_router_sync_stats st;
	struct su_ip_val before = ip_entry(LHR_IP), after, cdg_before = ip_entry(CDG_IP);

	sync_ok(plan("2048 s1,4096 s2,6144 s3", true), &st);
	assert_int_equal(st.ips_changed, 1);
	after = ip_entry(LHR_IP);
	assert_int_not_equal(after.slot_base, before.slot_base);
	assert_int_equal(slot_at(after.slot_base, 2048), 0x0a64000b);
	assert_int_equal(slot_at(after.slot_base, 4096), 0x0a64000c);
	assert_int_equal(slot_at(after.slot_base, 6144), 0x0a64000d);
	/* The old region is intact: a reader of the old entry sees the
	 * whole old assignment. */
	assert_int_equal(slot_at(before.slot_base, 2048), 0x0a64000b);
	assert_int_equal(slot_at(before.slot_base, 4096), 0x0a64000c);
	assert_int_equal(slot_at(before.slot_base, 6144), 0);
	assert_int_equal(ip_entry(CDG_IP).router, cdg_before.router);
}

static void draining_slots_keep_routing(void **state)
{
	struct su_router_sync_stats st;
	struct su_plan *p = plan("2048 s1,4096 s2,6144 s3", true);
	const struct su_plan_ip *ip;
	uint32_t a;

	assert_non_null(p);
	su_addr__parse(LHR_IP, &a);
	ip = su_plan__find_ip(p, a);
	assert_non_null(ip);
	p->slots[ip->first_slot + 2].state = SU_DRAINING; /* s3's slice */
	sync_ok(p, &st);
	assert_int_equal(st.ips_changed, 0); /* same servers: nothing to flip */
	assert_int_equal(slot_at(ip_entry(LHR_IP).slot_base, 6144), 0x0a64000d);
}

static void removed_dc_and_ip_are_deleted(void **state)
{
	struct su_router_sync_stats st;
	__be32 k = htonl(0x0ac80002), gone = htonl(0x0a640063);
	struct su_target_val tv[libbpf_num_possible_cpus()];
	uint32_t dc;

	/* A departed server's next-hop/counter entry. */
	memset(tv, 0, sizeof(tv));
	assert_int_equal(bpf_map_update_elem(maps.targets, &gone, tv, BPF_ANY), 0);
	sync_ok(plan("2048 s1", false), &st);
	assert_int_equal(st.ips_removed, 1);
	assert_int_equal(ip_entry(CDG_IP).flags, 0xdead);
	assert_int_not_equal(bpf_map_lookup_elem(maps.routers, &k, &dc), 0);
	assert_int_equal(st.targets_removed, 1);
	assert_int_equal(slot_at(ip_entry(LHR_IP).slot_base, 4096), 0);
}

/* Many flips reuse freed regions: the array never runs out. */
static void flips_do_not_leak_regions(void **state)
{
	struct su_router_sync_stats st;

	for (int i = 0; i < 200; i++)
		sync_ok(plan(i % 2 ? "2048 s1" : "2048 s1,8192 s2", true), &st);
	assert_int_equal(slot_at(ip_entry(LHR_IP).slot_base, 2048), 0x0a64000b);
}

static void bad_dc_is_refused(void **state)
{
	struct su_plan *p = plan("2048 s1", true);
	struct su_router_sync_stats st;
	struct su_err err = { "" };

	assert_non_null(p);
	assert_int_equal(su_router__sync(&maps, p, 7, &st, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not in the plan"));
	su_plan__free(p);
}

static int setup(void **state)
{
	struct bpf_map *m;

	skel = router__open();
	if (!skel)
		return -1;
	bpf_object__for_each_map(m, skel->obj)
		bpf_map__set_pin_path(m, NULL);
	if (router__load(skel))
		return -1;
	maps.ips = bpf_map__fd(skel->maps.su_ips);
	maps.slots = bpf_map__fd(skel->maps.su_slots);
	maps.routers = bpf_map__fd(skel->maps.su_routers);
	maps.meta = bpf_map__fd(skel->maps.su_meta);
	maps.targets = bpf_map__fd(skel->maps.su_targets);
	return 0;
}

static int teardown(void **state)
{
	router__destroy(skel);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(first_sync_fills_everything),
		cmocka_unit_test(same_plan_touches_nothing),
		cmocka_unit_test(changed_ip_flips_to_a_new_region),
		cmocka_unit_test(draining_slots_keep_routing),
		cmocka_unit_test(removed_dc_and_ip_are_deleted),
		cmocka_unit_test(flips_do_not_leak_regions),
		cmocka_unit_test(bad_dc_is_refused),
	};

	if (geteuid() != 0) {
		printf("1..0 # SKIP needs root to create BPF maps\n");
		return 0;
	}
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
