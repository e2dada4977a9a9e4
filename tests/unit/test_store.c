/* The plan store on a real etcd (started here, loopback, own ports and data):
 * layout and views, compare-and-swap between writers, garbage collection,
 * and every way a store can be wrong: each refused with the store and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>

#include <curl/curl.h>
#include <jansson.h>
#include <time.h>

#include "../lib/etcd_run.h"
#include "lib/planner.h"
#include "lib/store/follow.h"
#include "lib/store/ops.h"
#include "lib/store/store.h"
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
	"  - {prefix: 198.51.100.0/24, tags: {service: warp, country: GB}}\n"
	"  - {prefix: 203.0.113.0/24, tags: {service: cdn}, datacenters: [lhr]}\n";

static struct etcd_run cluster;
static int n_prefix; /* each test its own key prefix */

static struct su_plan *plan_of(const char *yaml, const struct su_plan *prev, int64_t now)
{
	struct su_fleet *f;
	struct su_plan *p = NULL;
	struct su_plan_report r;
	struct su_err err;

	if (su_fleet__parse(yaml, strlen(yaml), "t.yaml", &f, &err) ||
	    su_planner__run(f, prev, now, &p, &r, &err))
		fail_msg("%s", err.msg);
	su_fleet__free(f);
	return p;
}

/* The same fleet with one more server in lhr: the next serial. */
static struct su_plan *next_plan(const struct su_plan *prev, int k)
{
	char *yaml, extra[96];
	struct su_plan *p;

	snprintf(extra, sizeof(extra), "      lhr-s2: 10.1.1.2\n      lhr-x%d: 10.1.2.%d\n", k, k);
	assert_true(asprintf(&yaml, "%.*s%s%s", (int)(strstr(fleet_yaml, "      lhr-s2") - fleet_yaml), fleet_yaml,
			     extra, strstr(fleet_yaml, "    egress:")) > 0);
	p = plan_of(yaml, prev, NOW + k);
	free(yaml);
	return p;
}

static struct su_store *store_open(unsigned keep)
{
	struct su_store_opts o = { .keep = keep };
	struct su_store *s;
	struct su_err err;
	char url[400];

	snprintf(url, sizeof(url), "%s/t%d", cluster.url, ++n_prefix);
	assert_int_equal(su_store__open(url, &o, &s, &err), 0);
	return s;
}

static size_t count_keys_with(struct su_store *s, const char *under, const char *part)
{
	char *from = su_store__key(s, "%s", under), *to = su_etcd__prefix_end(from);
	struct su_etcd_kv *kvs;
	struct su_err err;
	size_t n, hits = 0;

	assert_int_equal(su_etcd__range(su_store__etcd(s), from, to, true, 0, &kvs, &n, NULL, &err), 0);
	for (size_t i = 0; i < n; i++)
		hits += strstr(kvs[i].key, part) != NULL;
	su_etcd_kv__free(kvs, n);
	free(from);
	free(to);
	return hits;
}

/* A test's own temporary directory, gone. */
static void remove_dir(const char *dir)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static size_t count_keys(struct su_store *s, const char *under)
{
	char *from = su_store__key(s, "%s", under), *to = su_etcd__prefix_end(from);
	struct su_etcd_kv *kvs;
	struct su_err err;
	size_t n;

	assert_int_equal(su_etcd__range(su_store__etcd(s), from, to, true, 0, &kvs, &n, NULL, &err), 0);
	su_etcd_kv__free(kvs, n);
	free(from);
	free(to);
	return n;
}

static int setup(void **state)
{
	int ret = etcd_run__start(&cluster, 1, NULL);

	if (ret == -ENOENT)
		skip();
	assert_int_equal(ret, 0);
	return 0;
}

static int teardown(void **state)
{
	etcd_run__stop(&cluster);
	return 0;
}

static void same_slot_owner(const struct su_plan *a, const struct su_plan_ip *ia, const struct su_plan *b,
			    const struct su_plan_ip *ib, uint32_t k)
{
	const struct su_plan_slot *x = &a->slots[ia->first_slot + k], *y = &b->slots[ib->first_slot + k];

	assert_int_equal(x->state, y->state);
	if (x->server >= 0)
		assert_string_equal(a->servers[x->server].name, b->servers[y->server].name);
}

/* A router's view routes every IP as the whole plan does; its own IPs slot by slot. */
static void dc_view_routes_as_plan(const struct su_plan *p, const struct su_plan *v, const char *dc)
{
	assert_int_equal(v->n_ips, p->n_ips);
	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *ip = &p->ips[i], *vi = su_plan__find_ip(v, ip->ip);

		assert_non_null(vi);
		assert_string_equal(v->dcs[vi->dc].name, p->dcs[ip->dc].name);
		assert_int_equal(v->dcs[vi->dc].router, p->dcs[ip->dc].router);
		for (uint32_t k = 0; k < p->slices_per_ip; k++)
			if (!strcmp(p->dcs[ip->dc].name, dc))
				same_slot_owner(p, ip, v, vi, k);
			else /* other DCs' slots are not the router's business */
				assert_int_equal(v->slots[vi->first_slot + k].state, SU_FREE);
	}
}

/* ...and costs no slot arrays for them: its own IPs' slots, plus the one
 * free block every other DC's IP shares (a router of a million-IP fleet). */
static void dc_view_holds_own_slots_only(const struct su_plan *v, const char *dc)
{
	uint32_t own = 0;

	for (uint32_t i = 0; i < v->n_ips; i++)
		own += !strcmp(v->dcs[v->ips[i].dc].name, dc);
	assert_true(own < v->n_ips);
	assert_int_equal(v->n_slots, (own + 1) * v->slices_per_ip);
}

/* An agent's view holds exactly its server's slots. */
static void server_view_is_its_slots(const struct su_plan *p, const struct su_plan *v, const char *server)
{
	int me = su_plan__find_server(p, server), vme = su_plan__find_server(v, server);
	uint32_t want = 0, have = 0;

	assert_true(me >= 0 && vme >= 0);
	assert_int_equal(v->n_servers, 1);
	for (uint32_t i = 0; i < p->n_ips; i++)
		for (uint32_t k = 0; k < p->slices_per_ip; k++)
			want += p->slots[p->ips[i].first_slot + k].server == me;
	for (uint32_t i = 0; i < v->n_ips; i++)
		for (uint32_t k = 0; k < v->slices_per_ip; k++) {
			const struct su_plan_ip *pi = su_plan__find_ip(p, v->ips[i].ip);

			if (v->slots[v->ips[i].first_slot + k].server != vme)
				continue;
			have++;
			assert_int_equal(p->slots[pi->first_slot + k].server, me);
		}
	assert_int_equal(have, want);
	assert_true(want > 0);
}

/* A node keeps its last view as a plan file: it must load back the same. */
static void view_persists(const struct su_plan *v, const char *dc)
{
	struct su_plan *back;
	struct su_err err;
	char *text;
	size_t len;

	assert_int_equal(su_plan__format_view(v, NULL, &text, &len), 0);
	if (su_plan__parse(text, len, "persisted", &back, &err))
		fail_msg("%s", err.msg);
	dc_view_routes_as_plan(v, back, dc);
	su_plan__free(back);
	free(text);
}

static void layout_views_and_whole_plan(void **state)
{
	struct su_store *s = store_open(0);
	struct su_plan *p = plan_of(fleet_yaml, NULL, NOW), *q;
	struct su_err err;
	uint64_t serial, bytes_plan, bytes;

	assert_int_equal(su_store__serial(s, &serial, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no plan published yet"));
	assert_int_equal(su_store__publish(s, p, 0, &err), 0);
	assert_int_equal(su_store__serial(s, &serial, &err), 0);
	assert_int_equal(serial, p->serial);

	assert_int_equal(su_store__read(s, 0, SU_VIEW_PLAN, NULL, &q, &bytes_plan, &err), 0);
	assert_true(su_plan__equal(p, q));
	su_plan__free(q);
	for (uint32_t d = 0; d < p->n_dcs; d++) {
		assert_int_equal(su_store__read(s, 0, SU_VIEW_DC, p->dcs[d].name, &q, &bytes, &err), 0);
		dc_view_routes_as_plan(p, q, p->dcs[d].name);
		dc_view_holds_own_slots_only(q, p->dcs[d].name);
		view_persists(q, p->dcs[d].name);
		su_plan__free(q);
	}
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "lhr-s2", &q, &bytes, &err), 0);
	server_view_is_its_slots(p, q, "lhr-s2");
	assert_true(bytes < bytes_plan);
	su_plan__free(q);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "nobody", &q, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "nobody"));
	assert_int_equal(su_store__read(s, 0, SU_VIEW_DC, "nowhere", &q, NULL, &err), -ENOENT);
	/* Nothing left staged once committed. */
	assert_int_equal(count_keys(s, "staging/"), 0);
	su_plan__free(p);
	su_store__close(s);
}

static char *committed_dir(struct su_store *s)
{
	char *key = su_store__key(s, "version"), *dir;
	struct su_etcd_kv kv;
	struct su_err err;

	assert_int_equal(su_etcd__get(su_store__etcd(s), key, &kv, NULL, &err), 0);
	dir = strndup(strchr(kv.value, ' ') + 1, strcspn(strchr(kv.value, ' ') + 1, "\n"));
	free(kv.key);
	free(kv.value);
	free(key);
	return dir;
}

/* A version re-writes only the views that changed: an unchanged one keeps
 * the record and chunks of the version that wrote it (no record of its own:
 * a small change writes a few records, not one per shard), and a reader
 * that has it downloads nothing but the small record. */
static void unchanged_views_are_shared(void **state)
{
	struct su_store *s = store_open(0), *reader = store_open(0);
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b = next_plan(a, 1), *q;
	struct su_etcd_kv kv;
	struct su_err err;
	char *dir_a, *dir_b, *key;
	uint64_t bytes;

	su_store__close(reader);
	assert_int_equal(su_store__open(su_store__url(s), NULL, &reader, &err), 0);
	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	dir_a = committed_dir(s);
	assert_int_equal(su_store__read(reader, 0, SU_VIEW_SERVER, "cdg-s1", &q, &bytes, &err), 0);
	assert_true(bytes > 0);
	su_plan__free(q);
	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);
	dir_b = committed_dir(s);
	key = su_store__key(s, "m/server/cdg-s1#%s", dir_a);
	assert_int_equal(su_etcd__get(su_store__etcd(s), key, &kv, NULL, &err), 0);
	assert_non_null(strstr(kv.value, dir_a));
	free(kv.key);
	free(kv.value);
	free(key);
	key = su_store__key(s, "m/server/cdg-s1#%s", dir_b);
	assert_int_equal(su_etcd__get(su_store__etcd(s), key, &kv, NULL, &err), -ENOENT);
	print_message("# records: %zu by serial 1, %zu by serial 2 (one server added)\n", count_keys_with(s, "m/", dir_a),
		      count_keys_with(s, "m/", dir_b));
	assert_true(count_keys_with(s, "m/", dir_b) < count_keys_with(s, "m/", dir_a));
	assert_int_equal(count_keys_with(s, "v/", "/meta"), 0);
	assert_int_equal(su_store__read(reader, 0, SU_VIEW_SERVER, "cdg-s1", &q, &bytes, &err), 0);
	assert_int_equal(q->serial, b->serial);
	assert_int_equal(bytes, 0);
	su_plan__free(q);
	free(key);
	free(dir_a);
	free(dir_b);
	su_plan__free(a);
	su_plan__free(b);
	su_store__close(reader);
	su_store__close(s);
}

/* Pins split prefixes and give them an allow-list: every view stays a
 * loadable snapshot (the DCs its prefixes name come with them). */
static void views_of_pinned_prefixes_load(void **state)
{
	struct su_store *s = store_open(0);
	struct su_fleet *f;
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b, *q;
	struct su_plan_report r;
	struct su_ops ops = { 0 };
	struct su_prefix4 px;
	struct su_err err;
	const char *names[] = { "lhr-s1", "lhr-s2", "cdg-s1" };

	assert_int_equal(su_fleet__parse(fleet_yaml, strlen(fleet_yaml), "t.yaml", &f, &err), 0);
	assert_int_equal(su_prefix__parse("198.51.100.0/30", &px), 0);
	assert_int_equal(su_ops__pin(&ops, &px, "cdg"), 0);
	assert_int_equal(su_ops__apply(&ops, f, true, &err), 0);
	assert_int_equal(su_planner__run(f, a, NOW + 10, &b, &r, &err), 0);
	su_fleet__free(f);
	/* Another IP pinned elsewhere, the first pin gone: the draining IPs keep
	 * the pinned prefix, allow-list and all. */
	assert_int_equal(su_fleet__parse(fleet_yaml, strlen(fleet_yaml), "t.yaml", &f, &err), 0);
	su_ops__free(&ops);
	assert_int_equal(su_prefix__parse("198.51.100.8/30", &px), 0);
	assert_int_equal(su_ops__pin(&ops, &px, "lhr"), 0);
	assert_int_equal(su_ops__apply(&ops, f, true, &err), 0);
	su_plan__free(a);
	a = b;
	assert_int_equal(su_planner__run(f, a, NOW + 20, &b, &r, &err), 0);
	assert_int_equal(su_store__publish(s, b, 0, &err), 0);
	for (int i = 0; i < 3; i++) {
		if (su_store__read(s, 0, SU_VIEW_SERVER, names[i], &q, NULL, &err))
			fail_msg("%s", err.msg);
		su_plan__free(q);
	}
	for (uint32_t d = 0; d < b->n_dcs; d++) {
		assert_int_equal(su_store__read(s, 0, SU_VIEW_DC, b->dcs[d].name, &q, NULL, &err), 0);
		dc_view_routes_as_plan(b, q, b->dcs[d].name);
		su_plan__free(q);
	}
	su_ops__free(&ops);
	su_fleet__free(f);
	su_plan__free(a);
	su_plan__free(b);
	su_store__close(s);
}

/* The slot of server `who` (view v) with a previous owner, or NULL; the
 * other end's name in *peer. */
static const struct su_plan_slot *handed_slot(const struct su_plan *v, const char *who, bool as_prev,
					      const char **peer)
{
	for (uint32_t i = 0; i < v->n_ips; i++)
		for (uint32_t k = 0; k < v->slices_per_ip; k++) {
			const struct su_plan_slot *sl = &v->slots[v->ips[i].first_slot + k];
			int32_t me = as_prev ? sl->prev_server : sl->server;

			if (sl->state == SU_FREE || sl->prev_server < 0 || strcmp(v->servers[me].name, who))
				continue;
			*peer = v->servers[as_prev ? sl->server : sl->prev_server].name;
			return sl;
		}
	return NULL;
}

/* A moved IP (issue 10): the new owner's view names the previous owner of
 * each slot (the second hop's address), and the previous owner's view
 * still holds the slot until the deadline, naming the new owner (the only
 * sender of second hops it accepts). */
static void views_carry_previous_owners(void **state)
{
	struct su_store *s = store_open(0);
	struct su_fleet *f;
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b, *q;
	struct su_plan_report r;
	struct su_ops ops = { 0 };
	struct su_prefix4 px;
	struct su_err err;
	const struct su_plan_slot *sl;
	const char *peer = NULL;
	char prev[64];

	assert_int_equal(su_fleet__parse(fleet_yaml, strlen(fleet_yaml), "t.yaml", &f, &err), 0);
	assert_int_equal(su_prefix__parse("198.51.100.0/30", &px), 0);
	assert_int_equal(su_ops__pin(&ops, &px, "cdg"), 0);
	assert_int_equal(su_ops__apply(&ops, f, true, &err), 0);
	assert_int_equal(su_planner__run(f, a, NOW + 10, &b, &r, &err), 0);
	assert_int_equal(su_store__publish(s, b, 0, &err), 0);

	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "cdg-s1", &q, NULL, &err), 0);
	sl = handed_slot(q, "cdg-s1", false, &peer);
	assert_non_null(sl);
	assert_int_equal(sl->deadline, NOW + 10 + 300);
	assert_int_equal(strncmp(peer, "lhr-s", 5), 0);
	snprintf(prev, sizeof(prev), "%s", peer);
	su_plan__free(q);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, prev, &q, NULL, &err), 0);
	sl = handed_slot(q, prev, true, &peer);
	assert_non_null(sl);
	assert_string_equal(peer, "cdg-s1");
	assert_int_equal(sl->deadline, NOW + 10 + 300);
	su_plan__free(q);
	for (uint32_t d = 0; d < b->n_dcs; d++) {
		assert_int_equal(su_store__read(s, 0, SU_VIEW_DC, b->dcs[d].name, &q, NULL, &err), 0);
		dc_view_routes_as_plan(b, q, b->dcs[d].name);
		su_plan__free(q);
	}
	su_ops__free(&ops);
	su_fleet__free(f);
	su_plan__free(a);
	su_plan__free(b);
	su_store__close(s);
}

/* A writer that planned from an older serial loses and writes nothing. */
static void cas_stale_writer_is_refused(void **state)
{
	struct su_store *s = store_open(0);
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b = next_plan(a, 1), *c = next_plan(a, 2);
	struct su_err err;
	size_t keys;

	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);
	keys = count_keys(s, "v/");
	assert_int_equal(su_store__publish(s, c, a->serial, &err), -EAGAIN);
	assert_non_null(strstr(err.msg, "the plan changed under you (serial 2), re-run"));
	assert_non_null(strstr(err.msg, su_store__url(s)));
	assert_int_equal(count_keys(s, "v/"), keys);
	su_plan__free(a);
	su_plan__free(b);
	su_plan__free(c);
	su_store__close(s);
}

struct racer {
	char url[400];
	struct su_plan *plan;
	uint64_t expect;
	int ret;
	char msg[512];
	pthread_barrier_t *go;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	struct su_store *s;
	struct su_err err;

	assert_int_equal(su_store__open(r->url, NULL, &s, &err), 0);
	pthread_barrier_wait(r->go);
	r->ret = su_store__publish(s, r->plan, r->expect, &err);
	snprintf(r->msg, sizeof(r->msg), "%s", r->ret ? err.msg : "");
	su_store__close(s);
	return NULL;
}

/* Writers racing from the same serial: exactly one commits; the others get
 * "changed under you" and leave no shard behind. */
static void cas_race_has_one_winner(void **state)
{
	enum { N = 4 };
	struct su_store *s = store_open(0);
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW);
	struct racer r[N];
	pthread_t t[N];
	pthread_barrier_t go;
	struct su_err err;
	int won = 0;
	struct su_plan *q;

	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	pthread_barrier_init(&go, NULL, N);
	for (int i = 0; i < N; i++) {
		r[i] = (struct racer){ .plan = next_plan(a, i + 1), .expect = a->serial, .go = &go };
		snprintf(r[i].url, sizeof(r[i].url), "%s", su_store__url(s));
		pthread_create(&t[i], NULL, race, &r[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < N; i++) {
		if (!r[i].ret)
			won++;
		else {
			assert_int_equal(r[i].ret, -EAGAIN);
			assert_non_null(strstr(r[i].msg, "changed under you (serial 2)"));
		}
	}
	assert_int_equal(won, 1);
	/* Two committed versions, no debris of the losers. */
	assert_int_equal(count_keys(s, "history/"), 2);
	assert_int_equal(count_keys(s, "staging/"), 0);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_PLAN, NULL, &q, NULL, &err), 0);
	for (int i = 0; i < N; i++)
		if (!r[i].ret)
			assert_true(su_plan__equal(q, r[i].plan));
	su_plan__free(q);
	for (int i = 0; i < N; i++)
		su_plan__free(r[i].plan);
	pthread_barrier_destroy(&go);
	su_plan__free(a);
	su_store__close(s);
}

/* The version key lists the shards each version changed: a node whose last
 * read was of the previous serial reads an unchanged view without looking
 * its record up (one request: the version key, or none after a watch
 * event), a changed one with it, and one that skipped a version looks up
 * (the list covers one version only).  Kind: a stale record taken for new. */
static void readers_skip_the_lookup_of_unchanged_shards(void **state)
{
	struct su_store *s = store_open(0), *reader;
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b = next_plan(a, 1), *c = next_plan(b, 2), *q;
	struct su_err err;
	uint64_t r0;

	assert_int_equal(su_store__open(su_store__url(s), NULL, &reader, &err), 0);
	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	assert_int_equal(su_store__read(reader, 0, SU_VIEW_SERVER, "cdg-s1", &q, NULL, &err), 0);
	su_plan__free(q);
	assert_int_equal(su_store__read(reader, 0, SU_VIEW_DC, "lhr", &q, NULL, &err), 0);
	assert_int_equal(su_plan__find_server(q, "lhr-x1"), -ENOENT);
	su_plan__free(q);
	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);

	r0 = su_etcd__requests(su_store__etcd(reader));
	assert_int_equal(su_store__read(reader, 0, SU_VIEW_SERVER, "cdg-s1", &q, NULL, &err), 0);
	assert_int_equal(q->serial, b->serial);
	assert_int_equal(su_etcd__requests(su_store__etcd(reader)) - r0, 1); /* the version key alone */
	su_plan__free(q);
	/* lhr's shard changed (a server added): looked up, the new one read. */
	assert_int_equal(su_store__read(reader, 0, SU_VIEW_DC, "lhr", &q, NULL, &err), 0);
	assert_int_equal(q->serial, b->serial);
	assert_true(su_plan__find_server(q, "lhr-x1") >= 0);
	su_plan__free(q);

	/* Two versions later: the list of the last one does not cover the
	 * one between, so the record is looked up. */
	assert_int_equal(su_store__publish(s, c, b->serial, &err), 0);
	{
		struct su_plan *d = next_plan(c, 3);

		assert_int_equal(su_store__publish(s, d, c->serial, &err), 0);
		r0 = su_etcd__requests(su_store__etcd(reader));
		assert_int_equal(su_store__read(reader, 0, SU_VIEW_SERVER, "cdg-s1", &q, NULL, &err), 0);
		assert_int_equal(q->serial, d->serial);
		assert_true(su_etcd__requests(su_store__etcd(reader)) - r0 >= 2);
		su_plan__free(q);
		su_plan__free(d);
	}
	su_plan__free(a);
	su_plan__free(b);
	su_plan__free(c);
	su_store__close(reader);
	su_store__close(s);
}

static void gc_keeps_the_newest_versions(void **state)
{
	struct su_store *s = store_open(3);
	struct su_plan *p = plan_of(fleet_yaml, NULL, NOW), *q;
	struct su_err err;
	uint64_t *serials;
	size_t n, keys_one;
	char *dir_one, under[128];

	assert_int_equal(su_store__publish(s, p, 0, &err), 0);
	dir_one = committed_dir(s);
	snprintf(under, sizeof(under), "v/%s/", dir_one);
	keys_one = count_keys(s, under);
	assert_true(keys_one > 0);
	for (int k = 1; k <= 5; k++) {
		struct su_plan *nx = next_plan(p, k);

		assert_int_equal(su_store__publish(s, nx, p->serial, &err), 0);
		su_plan__free(p);
		p = nx;
	}
	assert_int_equal(su_store__history(s, &serials, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(serials[0], 6);
	assert_int_equal(serials[2], 4);
	free(serials);
	/* Serial 1's records are gone; only chunks that kept versions still
	 * share (shards unchanged since serial 1) stay. */
	assert_int_equal(count_keys_with(s, under, "/meta"), 0);
	assert_true(count_keys(s, under) < keys_one);
	free(dir_one);
	assert_int_equal(su_store__read(s, 1, SU_VIEW_PLAN, NULL, &q, NULL, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "serial 1 is not kept"));
	assert_int_equal(su_store__read(s, 4, SU_VIEW_PLAN, NULL, &q, NULL, &err), 0);
	assert_int_equal(q->serial, 4);
	su_plan__free(q);
	/* cdg-s1's view never changed: its chunks are serial 1's, still there. */
	assert_int_equal(su_store__read(s, 4, SU_VIEW_SERVER, "cdg-s1", &q, NULL, &err), 0);
	assert_int_equal(q->serial, 4);
	su_plan__free(q);
	su_plan__free(p);
	su_store__close(s);
}

/* A damaged shard is refused naming its key; other views still read. */
static void corrupt_shard_is_refused(void **state)
{
	struct su_store *s = store_open(0);
	struct su_plan *p = plan_of(fleet_yaml, NULL, NOW), *q = NULL;
	char *dir, *key;
	struct su_err err;

	assert_int_equal(su_store__publish(s, p, 0, &err), 0);
	dir = committed_dir(s);
	key = su_store__key(s, "v/%s/server/lhr-s1/0000", dir);
	assert_int_equal(su_etcd__put(su_store__etcd(s), key, "slot garbage\n", 13, 0, &err), 0);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "lhr-s1", &q, NULL, &err), -EBADMSG);
	assert_null(q);
	assert_non_null(strstr(err.msg, key));
	assert_non_null(strstr(err.msg, "corrupt"));
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "lhr-s2", &q, NULL, &err), 0);
	su_plan__free(q);
	free(key);
	free(dir);
	su_plan__free(p);
	su_store__close(s);
}

/* The version key names shards that are not there: refused, key named. */
static void version_pointing_at_missing_shards(void **state)
{
	struct su_store *s = store_open(0);
	struct su_plan *p = plan_of(fleet_yaml, NULL, NOW), *q = NULL;
	char *key = su_store__key(s, "version");
	struct su_err err;

	assert_int_equal(su_store__publish(s, p, 0, &err), 0);
	assert_int_equal(su_etcd__put(su_store__etcd(s), key, "7 00000000000000000007.00000000deadbeef", 39, 0, &err), 0);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_DC, "lhr", &q, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "00000000000000000007.00000000deadbeef/ranges/meta missing"));
	assert_int_equal(su_store__read(s, 0, SU_VIEW_PLAN, NULL, &q, NULL, &err), -EBADMSG);
	assert_int_equal(su_etcd__put(su_store__etcd(s), key, "junk", 4, 0, &err), 0);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_PLAN, NULL, &q, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "bad version record"));
	assert_null(q);
	free(key);
	su_plan__free(p);
	su_store__close(s);
}

/* Shards of a version whose commit never happened are never read. */
static void uncommitted_version_is_never_read(void **state)
{
	struct su_store *s = store_open(0);
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b = next_plan(a, 1), *q;
	struct su_shard *shards;
	struct su_err err;
	size_t n;

	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	/* A writer that died between its shards and its commit. */
	assert_int_equal(su_layout__shards(b, NULL, NULL, &shards, &n), 0);
	for (size_t i = 0; i < n; i++) {
		char *k = su_store__key(s, "v/00000000000000000002.0000000000000001/%s/0000", shards[i].name);

		assert_int_equal(su_etcd__put(su_store__etcd(s), k, shards[i].data, shards[i].len, 0, &err), 0);
		free(k);
	}
	su_layout__free(shards, n);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_PLAN, NULL, &q, NULL, &err), 0);
	assert_int_equal(q->serial, a->serial);
	su_plan__free(q);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "lhr-s1", &q, NULL, &err), 0);
	assert_int_equal(q->serial, a->serial);
	su_plan__free(q);
	su_plan__free(a);
	su_plan__free(b);
	su_store__close(s);
}

/* A record of a writer that has not committed (its staging mark still
 * there: it lost, died, or is still writing), between the committed
 * versions, is never taken for the committed one; the next writer's GC
 * removes it. */
static void staged_records_are_skipped(void **state)
{
	struct su_store *s = store_open(0);
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b = next_plan(a, 1), *c = next_plan(b, 2), *q;
	static const char debris[] = "00000000000000000002.0000000000000000-r";
	char *k;
	struct su_err err;

	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);
	k = su_store__key(s, "staging/%s", debris);
	assert_int_equal(su_etcd__put(su_store__etcd(s), k, "", 0, 0, &err), 0);
	free(k);
	k = su_store__key(s, "m/server/cdg-s1#%s", debris);
	assert_int_equal(su_etcd__put(su_store__etcd(s), k, "softunicast-shard 1 2 1 5 0 x", 29, 0, &err), 0);
	free(k);
	/* serial 2's DIR sorts after the debris (nonce 0): the debris is the
	 * newest record at or before it, and is skipped. */
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "cdg-s1", &q, NULL, &err), 0);
	assert_int_equal(q->serial, b->serial);
	su_plan__free(q);
	assert_int_equal(count_keys_with(s, "m/", debris), 1);
	assert_int_equal(su_store__publish(s, c, b->serial, &err), 0);
	assert_int_equal(count_keys_with(s, "m/", debris), 0);
	assert_int_equal(count_keys(s, "staging/"), 0);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "cdg-s1", &q, NULL, &err), 0);
	assert_int_equal(q->serial, c->serial);
	su_plan__free(q);
	su_plan__free(a);
	su_plan__free(b);
	su_plan__free(c);
	su_store__close(s);
}

/* A version of the older layout (a record per shard per version under
 * v/DIR/NAME/meta, no index) as older writers left it: read as it is; the
 * next publish writes every shard in the new layout, and the GC drops it. */
static void layout1_version_reads_and_upgrades(void **state)
{
	struct su_store *s = store_open(1);
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b = next_plan(a, 1), *q;
	static const char dir[] = "00000000000000000001.00000000000000aa";
	struct su_shard *shards;
	struct su_err err;
	size_t n;
	char *k;

	assert_int_equal(su_layout__shards(a, NULL, NULL, &shards, &n), 0);
	for (size_t i = 0; i < n; i++) {
		char meta[200];

		assert_true(shards[i].len < SU_STORE_CHUNK);
		k = su_store__key(s, "v/%s/%s/0000", dir, shards[i].name);
		assert_int_equal(su_etcd__put(su_store__etcd(s), k, shards[i].data, shards[i].len, 0, &err), 0);
		free(k);
		snprintf(meta, sizeof(meta), "softunicast-shard 1 %" PRIu64 " 1 %zu %016" PRIx64 " %s", a->serial,
			 shards[i].len, su_fnv1a64(shards[i].data, shards[i].len), dir);
		k = su_store__key(s, "v/%s/%s/meta", dir, shards[i].name);
		assert_int_equal(su_etcd__put(su_store__etcd(s), k, meta, strlen(meta), 0, &err), 0);
		free(k);
	}
	su_layout__free(shards, n);
	k = su_store__key(s, "history/%020" PRIu64, a->serial);
	assert_int_equal(su_etcd__put(su_store__etcd(s), k, dir, strlen(dir), 0, &err), 0);
	free(k);
	k = su_store__key(s, "version");
	assert_int_equal(su_etcd__put(su_store__etcd(s), k, "1 00000000000000000001.00000000000000aa", 39, 0, &err), 0);
	free(k);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "cdg-s1", &q, NULL, &err), 0);
	assert_int_equal(q->serial, a->serial);
	su_plan__free(q);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_PLAN, NULL, &q, NULL, &err), 0);
	assert_true(su_plan__equal(a, q));
	su_plan__free(q);
	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);
	assert_int_equal(count_keys(s, "v/00000000000000000001."), 0); /* keep 1: dropped */
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "cdg-s1", &q, NULL, &err), 0);
	assert_int_equal(q->serial, b->serial);
	su_plan__free(q);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_DC, "lhr", &q, NULL, &err), 0);
	su_plan__free(q);
	su_plan__free(a);
	su_plan__free(b);
	su_store__close(s);
}

/* A plan bigger than etcd's 1.5 MiB request limit goes in chunks. */
static void big_plan_is_chunked(void **state)
{
	struct su_store *s = store_open(0), *reader;
	struct su_plan *p, *q;
	struct su_err err;
	char *yaml = NULL, *dir, *vdir;
	size_t len = 0, chunk = su_store__chunk_bytes;
	FILE *fp = open_memstream(&yaml, &len);

	fprintf(fp, "ports:\n  range: 1024-65535\n  slice: 64\ndrain: 5m\ndatacenters:\n  big:\n    router: 10.9.0.1\n    servers:\n");
	for (int i = 0; i < 700; i++)
		fprintf(fp, "      big-s%d: 10.9.%d.%d\n", i, 1 + i / 200, 1 + i % 200);
	fprintf(fp, "    egress:\n      - {service: cdn, slices: 60}\nprefixes:\n"
		    "  - {prefix: 100.64.0.0/19, tags: {service: cdn}}\n");
	fclose(fp);
	p = plan_of(yaml, NULL, NOW);
	free(yaml);
	/* Deflated, this plan's parts fit a 1 MiB chunk: smaller chunks (and
	 * transactions) show the splitting, read back by a default reader. */
	su_store__chunk_bytes = 16 << 10;
	assert_int_equal(su_store__publish(s, p, 0, &err), 0);
	su_store__chunk_bytes = chunk;
	dir = committed_dir(s);
	assert_true(asprintf(&vdir, "v/%s/", dir) > 0);
	print_message("# %zu keys are second chunks\n", count_keys_with(s, vdir, "/0001"));
	assert_true(count_keys_with(s, vdir, "/0001") >= 2);
	assert_int_equal(su_store__open(su_store__url(s), NULL, &reader, &err), 0);
	assert_int_equal(su_store__read(reader, 0, SU_VIEW_PLAN, NULL, &q, NULL, &err), 0);
	assert_true(su_plan__equal(p, q));
	su_plan__free(q);
	assert_int_equal(su_store__read(reader, 0, SU_VIEW_DC, "big", &q, NULL, &err), 0);
	dc_view_routes_as_plan(p, q, "big");
	su_plan__free(q);
	su_store__close(reader);
	free(vdir);
	free(dir);
	su_plan__free(p);
	su_store__close(s);
}

/* Kind: a stale view.  A publish cuts only the views and plan parts whose
 * digest of inputs changed and reuses the previous version's bytes for the
 * others: for a change of each field the writer prints (each table, each
 * state, the previous owners, the header), every shard not cut must be
 * byte-identical to what cutting it would give, and the change must make
 * some shard differ (else the case tests nothing).  The converse kind (a
 * digest of what is not printed: the serial in a part without a header, an
 * active record's clock) only costs time, and is caught too: no shard may
 * be cut again with the same bytes. */
static struct su_plan *plan_copy(const struct su_plan *p)
{
	struct su_plan *q = NULL;
	struct su_err err;
	char *text;
	size_t len;

	assert_int_equal(su_plan__format_view(p, NULL, &text, &len), 0);
	if (su_plan__parse(text, len, "copy", &q, &err))
		fail_msg("%s", err.msg);
	free(text);
	return q;
}

struct cut_of {
	struct su_shard *v;
	size_t n;
};

static uint64_t cut_digest(void *ctx, const char *name)
{
	const struct cut_of *c = ctx;

	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].name, name))
			return c->v[i].digest;
	return 0;
}

static const struct su_shard *cut_find(const struct cut_of *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].name, name))
			return &c->v[i];
	return NULL;
}

static uint32_t moved_slot(const struct su_plan *p, uint32_t i);

static void mutate(struct su_plan *p, int k)
{
	struct su_plan_slot *sl = &p->slots[p->ips[0].first_slot];
	uint32_t last = p->n_servers - 1;

	switch (k) {
	case 0: p->dcs[0].router ^= 1; break;
	case 1: p->dcs[1].retired = true; break;
	case 2: p->servers[0].addr ^= 1; break;
	case 3: p->servers[last].retired = true; break;
	case 4: assert_int_equal(su_tags__set(&p->prefixes[0].tags, "city", "Paris"), 0); break;
	case 5: p->prefixes[p->n_prefixes - 1].n_dcs = 0; break;
	case 6: p->prefixes[0].retired = true; break;
	case 7: assert_int_equal(su_tags__set(&p->demands[0].tags, "city", "Paris"), 0); break;
	case 8: p->demands[0].slices++; break;
	case 9: p->demands[p->n_demands - 1].retired = true; break;
	case 10: p->ips[0].state = SU_DRAINING; p->ips[0].deadline = NOW + 99; break;
	case 11: p->ips[0].prev_dc = (int32_t)(p->ips[0].dc ^ 1); p->ips[0].prev_deadline = NOW + 77; break;
	case 12: for (uint32_t j = 0; j < p->slices_per_ip; j++, sl++) /* a slot changes owner */
			 if (sl->state != SU_FREE) {
				 sl->server = sl->server == 0 ? 1 : 0;
				 break;
			 }
		 break;
	case 13: for (uint32_t j = 0; j < p->slices_per_ip; j++, sl++)
			 if (sl->state != SU_FREE) {
				 sl->state = SU_DRAINING;
				 sl->deadline = NOW + 55;
				 break;
			 }
		 break;
	case 14: for (uint32_t j = 0; j < p->slices_per_ip; j++, sl++)
			 if (sl->state != SU_FREE) {
				 sl->prev_server = (int32_t)last;
				 sl->deadline = NOW + 44;
				 break;
			 }
		 break;
	case 15: for (uint32_t j = 0; j < p->slices_per_ip; j++, sl++) /* a free slot taken */
			 if (sl->state == SU_FREE) {
				 sl->state = SU_ACTIVE;
				 sl->server = (int32_t)last;
				 break;
			 }
		 break;
	case 16: p->drain += 1; break;
	case 17: free(p->servers[0].name); p->servers[0].name = strdup("aaa-renamed"); break;
	case 18: free(p->dcs[0].name); p->dcs[0].name = strdup("aaa"); break;
	case 19: p->ips[p->n_ips - 1].ip += 1; break;
	/* Each clock alone, on the IP that prepare() gave them. */
	case 20: p->ips[2].deadline++; break;
	case 21: p->ips[1].prev_deadline++; break;
	case 22: p->slots[p->ips[1].first_slot + moved_slot(p, 1)].deadline++; break;
	}
}

/* The first slot of IP i that has an owner. */
static uint32_t moved_slot(const struct su_plan *p, uint32_t i)
{
	for (uint32_t j = 0; j < p->slices_per_ip; j++)
		if (p->slots[p->ips[i].first_slot + j].state != SU_FREE)
			return j;
	fail_msg("IP %u has no slot", i);
	return 0;
}

/* IP 1 moved from the other DC with one slot handed over; IP 2 draining. */
static void prepare(struct su_plan *p)
{
	struct su_plan_slot *sl = &p->slots[p->ips[1].first_slot + moved_slot(p, 1)];

	p->ips[2].state = SU_DRAINING;
	p->ips[2].deadline = NOW + 300;
	for (uint32_t j = 0; j < p->slices_per_ip; j++)
		if (p->slots[p->ips[2].first_slot + j].state != SU_FREE) {
			p->slots[p->ips[2].first_slot + j].state = SU_DRAINING;
			p->slots[p->ips[2].first_slot + j].deadline = NOW + 300;
		}
	p->ips[1].prev_dc = (int32_t)(p->ips[1].dc ^ 1);
	p->ips[1].prev_deadline = NOW + 200;
	sl->prev_server = sl->server == 0 ? 1 : 0;
	sl->deadline = NOW + 200;
}

static void views_are_cut_again_only_when_their_inputs_change(void **state)
{
	struct su_plan *a0 = plan_of(fleet_yaml, NULL, NOW), *a = plan_copy(a0);
	struct cut_of ca = { 0 };

	prepare(a);
	assert_int_equal(su_layout__shards(a, NULL, NULL, &ca.v, &ca.n), 0);
	for (int k = 0; k < 23; k++) {
		struct su_plan *b = plan_copy(a);
		struct cut_of inc = { 0 }, full = { 0 };
		size_t reused = 0, differ = 0, cut_same = 0;

		mutate(b, k);
		assert_int_equal(su_layout__shards(b, cut_digest, &ca, &inc.v, &inc.n), 0);
		assert_int_equal(su_layout__shards(b, NULL, NULL, &full.v, &full.n), 0);
		assert_int_equal(inc.n, full.n);
		for (size_t i = 0; i < full.n; i++) {
			const struct su_shard *old = cut_find(&ca, full.v[i].name), *got = cut_find(&inc, full.v[i].name);

			assert_non_null(got);
			differ += !old || old->len != full.v[i].len || memcmp(old->data, full.v[i].data, old->len);
			if (got->data) {
				assert_true(got->len == full.v[i].len && !memcmp(got->data, full.v[i].data, got->len));
				/* Cut again though its bytes did not change: a
				 * digest hashing what is not printed (costs a cut). */
				cut_same += got->digest && old && old->len == got->len && !memcmp(old->data, got->data, old->len);
				continue;
			}
			reused++;
			assert_non_null(old);
			if (old->len != full.v[i].len || memcmp(old->data, full.v[i].data, old->len))
				fail_msg("change %d: shard %s reused but its bytes changed", k, full.v[i].name);
		}
		if (!differ)
			fail_msg("change %d changes no shard: the case tests nothing", k);
		print_message("# change %d: %zu of %zu shards differ, %zu reused, %zu cut for nothing\n", k, differ, full.n,
			      reused, cut_same);
		if (cut_same)
			fail_msg("change %d: %zu shards cut again with the same bytes", k, cut_same);
		su_layout__free(inc.v, inc.n);
		su_layout__free(full.v, full.n);
		su_plan__free(b);
	}
	su_layout__free(ca.v, ca.n);
	su_plan__free(a);
	su_plan__free(a0);
}

/* Two DCs of 300 servers, 32 tag-sets each in a /22 of its own (d0's t0
 * wants `t0_slices` slices). */
static char *big_fleet_yaml(int t0_slices)
{
	char *yaml = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&yaml, &len);

	fprintf(fp, "ports: {range: 1024-65535, slice: 16384}\ndrain: 5m\ndatacenters:\n");
	for (int d = 0; d < 2; d++) {
		fprintf(fp, "  d%d:\n    router: 10.%d.0.1\n    servers:\n", d, d + 1);
		for (int i = 0; i < 300; i++)
			fprintf(fp, "      d%d-s%d: 10.%d.%d.%d\n", d, i, d + 1, 1 + i / 200, 1 + i % 200);
		fprintf(fp, "    egress:\n");
		for (int t = 0; t < 32; t++)
			fprintf(fp, "      - {service: t%d, slices: %d}\n", t, d == 0 && t == 0 ? t0_slices : 1);
	}
	fprintf(fp, "prefixes:\n");
	for (int t = 0; t < 32; t++) /* each tag-set in a /20 block of its own */
		fprintf(fp, "  - {prefix: 100.%d.%d.0/22, tags: {service: t%d}}\n", 64 + t / 16, 16 * (t % 16), t);
	fclose(fp);
	return yaml;
}

/* A change of many views: the version key carries a Bloom filter of their
 * names instead of the list; readers of unchanged views still skip the
 * look-up, and every view read is the one a fresh reader gets. */
static void many_changes_travel_as_a_bloom_filter(void **state)
{
	struct su_store *s = store_open(0), *known, *fresh;
	char *ya = big_fleet_yaml(1), *yb = big_fleet_yaml(3), *key, *names[] = { "d1-s5", "d1-s200", "d0-s0", "d0-s150" }; /* a reader remembers 4 */
	struct su_plan *a = plan_of(ya, NULL, NOW), *b = plan_of(yb, a, NOW + 60), *q, *r;
	struct su_etcd_kv kv;
	struct su_err err;
	unsigned skipped = 0;

	assert_int_equal(su_store__open(su_store__url(s), NULL, &known, &err), 0);
	assert_int_equal(su_store__open(su_store__url(s), NULL, &fresh, &err), 0);
	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		assert_int_equal(su_store__read(known, 0, SU_VIEW_SERVER, names[i], &q, NULL, &err), 0);
		su_plan__free(q);
	}
	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);
	key = su_store__key(s, "version");
	assert_int_equal(su_etcd__get(su_store__etcd(s), key, &kv, NULL, &err), 0);
	assert_non_null(strstr(kv.value, "\nchanged-bloom "));
	free(kv.key);
	free(kv.value);
	free(key);
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		uint64_t r0 = su_etcd__requests(su_store__etcd(known));
		char *x, *y;
		size_t xl, yl;

		assert_int_equal(su_store__read(known, 0, SU_VIEW_SERVER, names[i], &q, NULL, &err), 0);
		skipped += su_etcd__requests(su_store__etcd(known)) - r0 == 1;
		assert_int_equal(su_store__read(fresh, 0, SU_VIEW_SERVER, names[i], &r, NULL, &err), 0);
		assert_int_equal(su_plan__format_view(q, NULL, &x, &xl), 0);
		assert_int_equal(su_plan__format_view(r, NULL, &y, &yl), 0);
		if (xl != yl || memcmp(x, y, xl))
			fail_msg("%s: the view read after the filter differs from a fresh read", names[i]);
		free(x);
		free(y);
		su_plan__free(q);
		su_plan__free(r);
	}
	print_message("# %u of %zu readers skipped the look-up\n", skipped, sizeof(names) / sizeof(*names));
	assert_true(skipped >= 1);
	free(ya);
	free(yb);
	su_plan__free(a);
	su_plan__free(b);
	su_store__close(known);
	su_store__close(fresh);
	su_store__close(s);
}

/* Parts of shard NAME ("plan", "ranges") in the committed version, and how
 * many of them it wrote itself (the others it shares with older versions). */
static void count_parts(struct su_store *s, const char *name, size_t *parts, size_t *written)
{
	char *dir = committed_dir(s), *vdir, *manifest;
	size_t len = 0;
	struct su_err err;

	assert_true(asprintf(&vdir, "v/%s/", dir) > 0);
	assert_int_equal(su_store__read_shard(s, 0, name, &manifest, &len, &err), 0);
	assert_non_null(strstr(manifest, "softunicast-parts 1\n"));
	*parts = *written = 0;
	for (char *save = NULL, *l = strtok_r(manifest, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *sub;

		if (strncmp(l, name, strlen(name)) || l[strlen(name)] != '/' || !strcmp(strchr(l, '/'), "/head") ||
		    !strcmp(strchr(l, '/'), "/end"))
			continue;
		(*parts)++;
		assert_true(asprintf(&sub, "%s/0000", l) > 0);
		*written += count_keys_with(s, vdir, sub) > 0;
		free(sub);
	}
	free(manifest);
	free(vdir);
	free(dir);
}

/* The whole plan and the ranges are kept in parts (plan/IP, ranges/IP):
 * one IP moved to another DC rewrites the parts holding what changed, not
 * the whole plan or every router's ranges; the plan reads back whole, and a
 * router that read its view before downloads the changed parts alone. */
static void small_change_rewrites_few_parts(void **state)
{
	struct su_store *s = store_open(0), *router, *fresh;
	struct su_plan *a, *b, *q;
	struct su_fleet *f;
	struct su_plan_report r;
	struct su_ops ops = { 0 };
	struct su_prefix4 px = { 0, 32 };
	struct su_err err;
	char *yaml = big_fleet_yaml(1);
	size_t parts, written, rparts, rwritten;
	uint64_t first_read, after_move, fresh_read;
	uint32_t runs = su_layout__range_runs;

	su_layout__range_runs = 4; /* this fleet holds about 70 runs: parts of 4 */
	a = plan_of(yaml, NULL, NOW);
	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	assert_int_equal(su_store__open(su_store__url(s), NULL, &router, &err), 0);
	assert_int_equal(su_store__read(router, 0, SU_VIEW_DC, "d1", &q, &first_read, &err), 0);
	su_plan__free(q);
	for (uint32_t i = 0; i < a->n_ips && !px.addr; i++)
		if (a->ips[i].dc == 0 && a->ips[i].state == SU_ACTIVE)
			px.addr = a->ips[i].ip;
	assert_int_equal(su_fleet__parse(yaml, strlen(yaml), "t.yaml", &f, &err), 0);
	assert_int_equal(su_ops__pin(&ops, &px, "d1"), 0);
	assert_int_equal(su_ops__apply(&ops, f, true, &err), 0);
	assert_int_equal(su_planner__run(f, a, NOW + 60, &b, &r, &err), 0);
	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);
	count_parts(s, "plan", &parts, &written);
	count_parts(s, "ranges", &rparts, &rwritten);
	print_message("# %zu plan parts, %zu rewritten for one IP moved; %zu ranges parts, %zu rewritten\n", parts,
		      written, rparts, rwritten);
	assert_true(parts >= 6);
	assert_true(written <= 3);
	assert_true(rparts >= 6);
	/* The moved IP's part, the one of the IP its old DC takes instead, and
	 * a part the new run boundary may split off. */
	assert_true(rwritten >= 1 && rwritten <= 3);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_PLAN, NULL, &q, NULL, &err), 0);
	assert_true(su_plan__equal(b, q));
	su_plan__free(q);
	/* The router: its DC's shard changed (it gained the IP), and one or two
	 * ranges parts; and its view is the whole plan's routing. */
	assert_int_equal(su_store__read(router, 0, SU_VIEW_DC, "d1", &q, &after_move, &err), 0);
	dc_view_routes_as_plan(b, q, "d1");
	su_plan__free(q);
	q = NULL;
	assert_int_equal(su_store__open(su_store__url(s), NULL, &fresh, &err), 0);
	assert_int_equal(su_store__read(fresh, 0, SU_VIEW_DC, "d1", &q, &fresh_read, &err), 0);
	su_plan__free(q);
	su_store__close(fresh);
	print_message("# router: %" PRIu64 " bytes at first, %" PRIu64 " after the move (a fresh reader %" PRIu64 ")\n",
		      first_read, after_move, fresh_read);
	assert_true(after_move < fresh_read);
	su_layout__range_runs = runs;
	su_store__close(router);
	free(yaml);
	su_ops__free(&ops);
	su_fleet__free(f);
	su_plan__free(a);
	su_plan__free(b);
	su_store__close(s);
}

static char *dense_fleet_yaml(int servers)
{
	char *yaml = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&yaml, &len);

	fprintf(fp, "ports:\n  range: 1024-65535\n  slice: 64\ndrain: 5m\ndatacenters:\n  big:\n    router: 10.9.0.1\n    servers:\n");
	for (int i = 0; i < servers; i++)
		fprintf(fp, "      big-s%d: 10.9.%d.%d\n", i, 1 + i / 200, 1 + i % 200);
	fprintf(fp, "    egress:\n      - {service: cdn, slices: 60}\nprefixes:\n"
		    "  - {prefix: 100.64.0.0/19, tags: {service: cdn}}\n");
	fclose(fp);
	return yaml;
}

/* A dense plan (IPs of a thousand slots: a part is a few IPs) is cut into
 * parts of the usual size (boundaries counted from the start and at block
 * starts made parts 8 times larger, and shifted all later ones on any
 * change of a record count), and a server gone rewrites the parts holding
 * its IPs alone. */
static void dense_plan_change_rewrites_few_parts(void **state)
{
	struct su_store *s = store_open(0);
	char *ya = dense_fleet_yaml(700), *yb = dense_fleet_yaml(699);
	struct su_plan *a = plan_of(ya, NULL, NOW), *b = plan_of(yb, a, NOW + 60), *q;
	struct su_err err;
	size_t parts, written;

	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);
	count_parts(s, "plan", &parts, &written);
	print_message("# dense plan: %zu parts, %zu rewritten for one server gone\n", parts, written);
	assert_true(parts >= 6);
	assert_true(written <= 4);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_PLAN, NULL, &q, NULL, &err), 0);
	assert_true(su_plan__equal(b, q));
	su_plan__free(q);
	free(ya);
	free(yb);
	su_plan__free(a);
	su_plan__free(b);
	su_store__close(s);
}

static void unreachable_store_is_named(void **state)
{
	struct su_store *s;
	struct su_plan *q = NULL;
	struct su_err err;

	assert_int_equal(su_store__open("etcd://127.0.0.1:9/x", NULL, &s, &err), 0);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_PLAN, NULL, &q, NULL, &err), -ECONNREFUSED);
	assert_non_null(strstr(err.msg, "127.0.0.1:9"));
	su_store__close(s);
	assert_int_equal(su_store__open("zk://a:1", NULL, &s, &err), -EINVAL);
	assert_int_equal(su_store__open("etcd://nohostport", NULL, &s, &err), -EINVAL);
}

static void file_store_is_the_same_interface(void **state)
{
	char dir[] = "/tmp/su-store-XXXXXX", url[128];
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b = next_plan(a, 1), *q;
	struct su_store *s;
	struct su_err err;

	assert_non_null(mkdtemp(dir));
	snprintf(url, sizeof(url), "file://%s/plan", dir);
	assert_int_equal(su_store__open(url, NULL, &s, &err), 0);
	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	assert_int_equal(su_store__publish(s, b, 0, &err), -EAGAIN);
	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);
	assert_int_equal(su_store__read(s, 0, SU_VIEW_SERVER, "lhr-s1", &q, NULL, &err), 0);
	assert_true(su_plan__equal(q, b));
	su_plan__free(q);
	su_store__close(s);
	remove_dir(dir);
	su_plan__free(a);
	su_plan__free(b);
}

static uint64_t file_serial(const char *path)
{
	struct su_plan *p;
	struct su_err err;
	uint64_t n;

	if (su_plan__load(path, &p, &err))
		return 0;
	n = p->serial;
	su_plan__free(p);
	return n;
}

static bool wait_serial(const char *path, uint64_t want)
{
	for (int i = 0; i < 200; i++) {
		if (file_serial(path) == want)
			return true;
		usleep(50 * 1000);
	}
	return false;
}

static bool wait_state(struct su_follow *f, enum su_follow_state want)
{
	struct su_follow_status st;

	for (int i = 0; i < 200; i++) {
		su_follow__status(f, &st);
		if (st.state == want)
			return true;
		usleep(50 * 1000);
	}
	return false;
}

/* The watch-and-apply path of the daemons: each committed version lands
 * whole in the local file; with the store gone the file stays, and the
 * next version applies when the store is back. */
static void follower_survives_the_store_going_away(void **state)
{
	struct su_store *s = store_open(0);
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b = next_plan(a, 1), *c = next_plan(b, 2);
	char dir[] = "/tmp/su-follow-XXXXXX", path[128];
	struct su_follow_opts o = { .url = su_store__url(s), .view = SU_VIEW_SERVER, .name = "lhr-s1",
				    .role = "agent", .state_dir = dir };
	struct su_follow *f;
	struct su_err err;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/view.plan", dir);
	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	assert_int_equal(su_follow__start(&o, &f, &err), 0);
	assert_true(wait_serial(path, a->serial));
	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);
	assert_true(wait_serial(path, b->serial));
	assert_true(wait_state(f, SU_FOLLOW_OK));

	etcd_run__stop_member(&cluster, 0);
	assert_true(wait_state(f, SU_FOLLOW_UNREACHABLE));
	assert_int_equal(file_serial(path), b->serial); /* the last good view stays */
	assert_int_equal(etcd_run__start_member(&cluster, 0), 0);
	for (int i = 0; i < 100 && su_store__publish(s, c, b->serial, &err); i++)
		usleep(100 * 1000);
	assert_true(wait_serial(path, c->serial));
	su_follow__stop(f);
	remove_dir(dir);
	su_plan__free(a);
	su_plan__free(b);
	su_plan__free(c);
	su_store__close(s);
}

static unsigned slots_of(const char *path, const char *server)
{
	struct su_plan *p;
	struct su_err err;
	unsigned n = 0;
	int me;

	if (su_plan__load(path, &p, &err))
		return 0;
	me = su_plan__find_server(p, server);
	for (uint32_t i = 0; me >= 0 && i < p->n_ips; i++)
		for (uint32_t k = 0; k < p->slices_per_ip; k++)
			n += p->slots[p->ips[i].first_slot + k].server == me;
	su_plan__free(p);
	return n;
}

static bool wait_slots(const char *path, const char *server, unsigned want)
{
	for (int i = 0; i < 100; i++) {
		if (slots_of(path, server) == want)
			return true;
		usleep(50 * 1000);
	}
	return false;
}

/* Rollout order: version 2 reaches the agent before its DC's router.  The
 * slice lhr-s1 gains in it stays out of its view (the router would still
 * drop replies to it) until the router reports serial 2 applied. */
/* The serial a node's report in the store says it applied; -1: no report. */
static int64_t reported_serial(struct su_store *s, const char *key)
{
	struct su_etcd_kv kv;
	int64_t serial = -1;
	json_t *j;

	if (su_etcd__get(su_store__etcd(s), key, &kv, NULL, NULL))
		return -1;
	if ((j = json_loadb(kv.value, kv.value_len, 0, NULL)))
		serial = json_integer_value(json_object_get(j, "serial"));
	json_decref(j);
	free(kv.key);
	free(kv.value);
	return serial;
}

static double mono_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Agents hold the slices they gain until their router reports the version
 * applied, and a handed slice held is a second hop lost for the old owner's
 * live flows: a router reports a new serial at once, not on its next
 * once-a-second refresh. */
static void router_reports_applied_serial_at_once(void **state)
{
	struct su_store *s = store_open(0);
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW);
	char dir[] = "/tmp/su-report-XXXXXX";
	struct su_follow_opts o = { .url = su_store__url(s), .view = SU_VIEW_DC, .name = "lhr", .role = "router",
				    .state_dir = dir };
	char *key = su_store__key(s, "nodes/router/lhr");
	struct su_follow *f;
	struct su_err err;
	double t0, took;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	assert_int_equal(su_follow__start(&o, &f, &err), 0);
	for (int k = 0; k < 500 && reported_serial(s, key) < 0; k++)
		usleep(10 * 1000);
	assert_true(reported_serial(s, key) >= 0);
	usleep(100 * 1000); /* just after a refresh: the next is 0.9 s away */
	t0 = mono_s();
	su_follow__applied(f, a->serial);
	while (reported_serial(s, key) != (int64_t)a->serial && mono_s() - t0 < 3)
		usleep(5 * 1000);
	took = mono_s() - t0;
	print_message("# the applied serial reached the store %.3f s after the router applied it\n", took);
	assert_true(took < 0.6);
	su_follow__stop(f);
	remove_dir(dir);
	free(key);
	su_plan__free(a);
	su_store__close(s);
}

static void gained_slices_wait_for_the_router(void **state)
{
	struct su_store *s = store_open(0);
	char *more = strdup(fleet_yaml), dir[] = "/tmp/su-rollout-XXXXXX", path[128];
	struct su_plan *a = plan_of(fleet_yaml, NULL, NOW), *b;
	struct su_follow_opts o = { .url = su_store__url(s), .view = SU_VIEW_SERVER, .name = "lhr-s1",
				    .role = "agent", .state_dir = dir };
	char *rkey = su_store__key(s, "nodes/router/lhr");
	struct su_follow *f;
	struct su_err err;
	unsigned before;

	memcpy(strstr(more, "slices: 2}"), "slices: 3}", 10);
	b = plan_of(more, a, NOW + 1);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/view.plan", dir);
	assert_int_equal(su_etcd__put(su_store__etcd(s), rkey, "{\"serial\":1}", 12, 0, &err), 0);
	assert_int_equal(su_store__publish(s, a, 0, &err), 0);
	assert_int_equal(su_follow__start(&o, &f, &err), 0);
	assert_true(wait_serial(path, 1));
	before = slots_of(path, "lhr-s1");
	assert_true(before > 0);

	assert_int_equal(su_store__publish(s, b, a->serial, &err), 0);
	assert_true(wait_serial(path, 2));
	usleep(500 * 1000);
	assert_int_equal(slots_of(path, "lhr-s1"), before); /* held: the router is at 1 */
	assert_int_equal(su_etcd__put(su_store__etcd(s), rkey, "{\"serial\":2}", 12, 0, &err), 0);
	assert_true(wait_slots(path, "lhr-s1", before + 1));

	su_follow__stop(f);
	remove_dir(dir);
	free(rkey);
	free(more);
	su_plan__free(a);
	su_plan__free(b);
	su_store__close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(layout_views_and_whole_plan),
		cmocka_unit_test(cas_stale_writer_is_refused),
		cmocka_unit_test(views_of_pinned_prefixes_load),
		cmocka_unit_test(views_carry_previous_owners),
		cmocka_unit_test(unchanged_views_are_shared),
		cmocka_unit_test(cas_race_has_one_winner),
		cmocka_unit_test(readers_skip_the_lookup_of_unchanged_shards),
		cmocka_unit_test(many_changes_travel_as_a_bloom_filter),
		cmocka_unit_test(gc_keeps_the_newest_versions),
		cmocka_unit_test(corrupt_shard_is_refused),
		cmocka_unit_test(version_pointing_at_missing_shards),
		cmocka_unit_test(uncommitted_version_is_never_read),
		cmocka_unit_test(staged_records_are_skipped),
		cmocka_unit_test(layout1_version_reads_and_upgrades),
		cmocka_unit_test(big_plan_is_chunked),
		cmocka_unit_test(small_change_rewrites_few_parts),
		cmocka_unit_test(dense_plan_change_rewrites_few_parts),
		cmocka_unit_test(views_are_cut_again_only_when_their_inputs_change),
		cmocka_unit_test(unreachable_store_is_named),
		cmocka_unit_test(file_store_is_the_same_interface),
		cmocka_unit_test(gained_slices_wait_for_the_router),
		cmocka_unit_test(router_reports_applied_serial_at_once),
		cmocka_unit_test(follower_survives_the_store_going_away),
	};

	curl_global_init(CURL_GLOBAL_ALL);
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
