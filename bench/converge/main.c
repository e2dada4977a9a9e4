/* bench/converge: how fast does a plan change reach a fleet following etcd,
 * and what does each node read?
 *
 * A local etcd is started (loopback, own ports and data dir).  The bench
 * fleet's shape (bench/plan: /24s, DCs of 100 servers, 50 tag-sets each, one
 * slice per server; --scale 1 is 1,000,000 addresses and 300 DCs) is planned
 * and published.  For each N in 3, 30, 300, 3,000 (capped by --max and the
 * number of servers), N watcher threads run the daemons' read-and-watch code
 * (su_store__read of their view + su_store__wait on the version key): one in
 * a hundred follows a DC view (a router), the others a server view (an
 * agent).  Then one IP is moved to another DC (`softunicast move`: a pin,
 * re-planned) and published; the figure is the time from the start of the
 * publish to the last watcher holding the new version (LAST; AFTER: from the
 * end of the publish, i.e. the commit and the watchers' reaction), with the
 * bytes each read (AGENT-B, ROUTER-B: a view's shard bytes as read from
 * etcd, deflated; OF-PLAN: their share of the whole plan's text) and the requests and bytes all the watchers made
 * for that version (REQS, MB-MOVED: etcd's load from readers).
 *
 * Beside it, the baseline: the whole plan file copied to N readers, each of
 * which parses all of it (the file way).  Goals (issue 9): under 1 s at
 * N = 300, under 5 s at N = 3,000; an agent reads < 0.1% of the plan's
 * bytes, a router < 1%. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "../../tests/lib/etcd_run.h"
#include "lib/planner.h"
#include "lib/store/ops.h"
#include "lib/store/store.h"
#include "lib/util.h"

#define NOW 1700000000
#define SERVERS_PER_DC 100
#define POOL_BASE 0x64400000u
static const char *const k_services[] = { "cdn", "warp", "images", "api", "proxy" };
static const char *const k_countries[] = { "GB", "FR", "DE", "US", "JP", "BR", "IN", "AU", "CA", "NL" };
#define N_TAGSETS 50

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The bench/plan fleet shape, as YAML. */
static char *fleet_yaml(uint32_t n_dcs, uint32_t n_ips)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	uint32_t cursor = POOL_BASE;

	fprintf(fp, "ports: {range: 1024-65535, slice: 2048}\ndrain: 10m\ndatacenters:\n");
	for (uint32_t dc = 0; dc < n_dcs; dc++) {
		fprintf(fp, "  dc%03u:\n    router: 172.16.%u.%u\n    servers:\n", dc, dc >> 8, dc & 255);
		for (uint32_t j = 0; j < SERVERS_PER_DC; j++)
			fprintf(fp, "      dc%03u-s%03u: 10.%u.%u.%u\n", dc, j, dc >> 8, dc & 255, j + 1);
		fputs("    egress:\n", fp);
		for (uint32_t t = 0; t < N_TAGSETS; t++)
			fprintf(fp, "      - {service: %s, country: %s}\n", k_services[t / 10], k_countries[t % 10]);
	}
	fputs("prefixes:\n", fp);
	for (uint32_t t = 0; t < N_TAGSETS; t++) {
		uint32_t share = n_ips / N_TAGSETS;

		cursor = (cursor + 255) & ~255u;
		while (share) {
			uint32_t bits = share >= 256 ? 8 : 31 - (uint32_t)__builtin_clz(share);

			fprintf(fp, "  - {prefix: %u.%u.%u.%u/%u, tags: {service: %s, country: %s}}\n", cursor >> 24,
				(cursor >> 16) & 255, (cursor >> 8) & 255, cursor & 255, 32 - bits, k_services[t / 10],
				k_countries[t % 10]);
			cursor += 1u << bits;
			share -= 1u << bits;
		}
	}
	fclose(fp);
	return buf;
}

struct watcher {
	pthread_t t;
	const char *url;
	enum su_view view;
	char name[32];
	double applied_at;
	uint64_t bytes, requests, req_bytes;
	int ret;
};

static pthread_barrier_t ready;
static atomic_uint_fast64_t target;
static atomic_bool give_up;

static bool stop_fn(void *arg)
{
	return atomic_load(&give_up);
}

static void *watch_main(void *arg)
{
	struct watcher *w = arg;
	struct su_store *s = NULL;
	struct su_plan *p = NULL;
	struct su_err err;
	uint64_t bytes;
	/* Thousands of nodes share this machine's two cores with etcd: a
	 * request may wait far longer than on a node of its own. */
	struct su_store_opts o = { .etcd.timeout_ms = 60000 };
	int ret = su_store__open(w->url, &o, &s, &err);

	/* The first read of thousands of threads at once: retry as a node would. */
	for (int k = 0; !ret && k < 10; k++) {
		ret = su_store__read(s, 0, w->view, w->name, &p, &bytes, &err);
		if (ret != -ECONNREFUSED && ret != -ETIMEDOUT)
			break;
		usleep(200 * 1000 * (k + 1));
	}
	su_plan__free(p);
	pthread_barrier_wait(&ready);
	while (!ret && !atomic_load(&give_up)) {
		uint64_t r0 = su_etcd__requests(su_store__etcd(s)), b0 = su_etcd__bytes_in(su_store__etcd(s));

		if ((ret = su_store__wait(s, su_store__revision(s), stop_fn, NULL, &err)))
			break;
		if ((ret = su_store__read(s, 0, w->view, w->name, &p, &bytes, &err)))
			break;
		w->requests += su_etcd__requests(su_store__etcd(s)) - r0;
		w->req_bytes += su_etcd__bytes_in(su_store__etcd(s)) - b0;
		if (p->serial >= atomic_load(&target)) {
			w->applied_at = now_s();
			w->bytes = bytes;
			su_plan__free(p);
			break;
		}
		su_plan__free(p);
	}
	if (ret && !atomic_load(&give_up))
		fprintf(stderr, "watcher %s: %s\n", w->name, err.msg);
	w->ret = ret;
	su_store__close(s);
	return NULL;
}

/* --n "300,3000": is n listed (no list: every round)? */
static bool in_list(const char *list, uint32_t n)
{
	for (const char *p = list; p && *p; p += strcspn(p, ","), p += *p == ',')
		if (strtoul(p, NULL, 10) == n)
			return true;
	return !list;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The operators' pins, kept across versions as the store keeps them, and
 * the IPs the rounds move: carved out of their prefixes by the warm-up, so
 * each round is the usual move (one /32 changes DC), not a prefix split. */
#define CARVED 8
static struct su_ops pins;
static uint32_t carved[CARVED], n_carved, n_moved;

/* Applies every pin, re-plans against *cur and publishes. */
static int publish_pins(struct su_store *s, const char *yaml, struct su_plan **cur, double *store_t0,
			struct su_err *err)
{
	struct su_fleet *fleet;
	struct su_plan *next;
	struct su_plan_report r;
	int ret = su_fleet__parse(yaml, strlen(yaml), "bench", &fleet, err);

	if (!ret && !(ret = su_ops__apply(&pins, fleet, true, err)))
		ret = su_planner__run(fleet, *cur, NOW + 60, &next, &r, err);
	if (!ret) {
		atomic_store(&target, next->serial);
		*store_t0 = now_s(); /* the re-plan is the operator's; the store's part starts here */
		ret = su_store__publish(s, next, (*cur)->serial, err);
		su_plan__free(*cur);
		*cur = next;
	}
	su_fleet__free(fleet);
	return ret;
}

/* The warm-up: the first CARVED active IPs of dc000 pinned where they are. */
static int carve(struct su_store *s, const char *yaml, struct su_plan **cur, double *store_t0, struct su_err *err)
{
	for (uint32_t i = 0; i < (*cur)->n_ips && n_carved < CARVED; i++)
		if ((*cur)->ips[i].dc == 0 && (*cur)->ips[i].state == SU_ACTIVE) {
			struct su_prefix4 px = { (*cur)->ips[i].ip, 32 };

			carved[n_carved++] = px.addr;
			su_ops__pin(&pins, &px, "dc000");
		}
	return publish_pins(s, yaml, cur, store_t0, err);
}

/* One carved IP moves from dc000 to dc001: a one-IP change. */
static int publish_move(struct su_store *s, const char *yaml, struct su_plan **cur, double *store_t0,
			struct su_err *err)
{
	struct su_prefix4 px = { carved[n_moved++ % CARVED], 32 };

	su_ops__pin(&pins, &px, "dc001");
	return publish_pins(s, yaml, cur, store_t0, err);
}

/* Shards the current version wrote (changed), of all: from its index,
 * whose lines are "NAME HASH BYTES DATADIR DIGEST" (the newest DATADIR is
 * the version's own). */
static void changed_shards(struct su_store *s, size_t *changed, size_t *total)
{
	char *index = NULL, newest[64] = "", dir[64];
	size_t len;
	struct su_err err;

	*changed = *total = 0;
	if (su_store__read_shard(s, 0, "index", &index, &len, &err))
		return;
	for (int pass = 0; pass < 2; pass++)
		for (const char *l = index; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
			if (sscanf(l, "%*s %*s %*s %63s", dir) != 1)
				continue;
			if (pass == 0 && strcmp(dir, newest) > 0)
				snprintf(newest, sizeof(newest), "%s", dir);
			if (pass == 1) {
				*total += 1;
				*changed += !strcmp(dir, newest);
			}
		}
	free(index);
}

static size_t append_body(char *ptr, size_t size, size_t n, void *arg)
{
	FILE *fp = arg;

	return fwrite(ptr, size, n, fp);
}

/* Watchers registered in etcd (its gauge etcd_debugging_mvcc_watcher_total),
 * or -1 when the metrics cannot be read. */
static long etcd_watchers(int client_port)
{
	char url[64], *body = NULL, *at;
	size_t len = 0;
	FILE *fp = open_memstream(&body, &len);
	CURL *c = curl_easy_init();
	long n = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", client_port);
	if (fp && c) {
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, fp);
		curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
		if (curl_easy_perform(c) == CURLE_OK) {
			fflush(fp);
			if ((at = strstr(body, "\netcd_debugging_mvcc_watcher_total ")))
				n = (long)strtod(at + strlen("\netcd_debugging_mvcc_watcher_total "), NULL);
		}
	}
	if (c)
		curl_easy_cleanup(c);
	if (fp)
		fclose(fp);
	free(body);
	return n;
}

/* Until every watcher's watch is registered in etcd (a fleet's watches
 * stand long before a change): a publish racing thousands of watch
 * creations would time their set-up, not the change. */
static void wait_watches(int client_port, uint32_t n)
{
	long seen = -1;

	for (int k = 0; k < 1200 && (seen = etcd_watchers(client_port)) >= 0 && seen < (long)n; k++)
		usleep(50 * 1000);
	if (seen < (long)n)
		fprintf(stderr, "only %ld of %u watches registered; publishing anyway\n", seen, n);
	usleep(500 * 1000);
}

static void run_round(const char *url, int client_port, struct su_store *s, const char *yaml, struct su_plan **cur, uint32_t n,
		      uint64_t plan_bytes, uint32_t n_dcs)
{
	struct watcher *w = calloc(n, sizeof(*w));
	double *lat = calloc(n, sizeof(*lat)), tp, t0 = 0, t1, last = 0;
	uint64_t agent_bytes = 0, router_bytes = 0, reqs = 0, rbytes = 0;
	uint32_t n_agents = 0, n_routers = 0, done = 0;
	size_t changed, shards;
	pthread_attr_t attr;
	struct su_err err;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_barrier_init(&ready, NULL, n + 1);
	atomic_store(&give_up, false);
	atomic_store(&target, UINT64_MAX);
	for (uint32_t i = 0; i < n; i++) {
		w[i].url = url;
		w[i].view = i % 100 == 0 ? SU_VIEW_DC : SU_VIEW_SERVER;
		if (w[i].view == SU_VIEW_DC)
			snprintf(w[i].name, sizeof(w[i].name), "dc%03u", (i / 100) % n_dcs);
		else
			snprintf(w[i].name, sizeof(w[i].name), "dc%03u-s%03u", (i / SERVERS_PER_DC) % n_dcs,
				 i % SERVERS_PER_DC);
		pthread_create(&w[i].t, &attr, watch_main, &w[i]);
		if (n > 300)
			usleep(2000); /* nodes do not all start in the same millisecond */
	}
	pthread_barrier_wait(&ready);
	wait_watches(client_port, n);
	tp = now_s();
	if (publish_move(s, yaml, cur, &t0, &err))
		fprintf(stderr, "publish: %s\n", err.msg);
	t1 = now_s();
	for (int k = 0; k < 600 && done < n; k++) {
		done = 0;
		for (uint32_t i = 0; i < n; i++)
			done += w[i].applied_at > 0 || w[i].ret;
		usleep(50 * 1000);
	}
	atomic_store(&give_up, true);
	for (uint32_t i = 0; i < n; i++)
		pthread_join(w[i].t, NULL);
	done = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (w[i].applied_at <= 0)
			continue;
		lat[done++] = w[i].applied_at - t0;
		last = fmax(last, w[i].applied_at - t0);
		reqs += w[i].requests;
		rbytes += w[i].req_bytes;
		if (w[i].view == SU_VIEW_DC) {
			router_bytes += w[i].bytes;
			n_routers++;
		} else {
			agent_bytes += w[i].bytes;
			n_agents++;
		}
	}
	qsort(lat, done, sizeof(*lat), cmp_d);
	changed_shards(s, &changed, &shards);
	printf("%6u %6u %7.3f %8.3f %8.3f %8.3f %8.3f %8.3f %10.0f %8.4f%% %10.0f %7.3f%% %9" PRIu64 " %10.1f %6zu/%zu\n", n, done,
	       t0 - tp, t1 - t0, done ? lat[done / 2] : 0, done ? lat[done * 99 / 100] : 0, last, last - (t1 - t0),
	       n_agents ? (double)agent_bytes / n_agents : 0, n_agents ? 100.0 * agent_bytes / n_agents / plan_bytes : 0,
	       n_routers ? (double)router_bytes / n_routers : 0,
	       n_routers ? 100.0 * router_bytes / n_routers / plan_bytes : 0, reqs, rbytes / 1e6, changed, shards);
	fflush(stdout);
	free(w);
	free(lat);
}

static int usage(FILE *fp, const char *bad)
{
	if (fp == stderr)
		fprintf(fp, "bench/converge: bad option or value: %s\n", bad);
	fprintf(fp, "usage: converge [--scale S] [--max N] [--n N,N...]\n"
		    "Publishes a one-IP move of the bench fleet to a local etcd it starts and\n"
		    "times its arrival at N watchers (N = 3, 30, 300, 3000; a router per 100).\n"
		    "  --scale S    fleet size, 1 = 300 DCs, 30,000 servers, 1,000,000 addresses\n"
		    "               (default 0.1)\n"
		    "  --max N      largest N (default 3000)\n"
		    "  --n N,...    only these rounds\n"
		    "Columns: docs/bench.md (bench/converge).\n");
	return fp == stderr ? 2 : 0;
}

int main(int argc, char **argv)
{
	double scale = 0.1, t0;
	uint32_t max = 3000, n_dcs, n_ips, n_servers;
	const char *only = NULL; /* --n 300,3000: only these rounds */
	struct rlimit rl;
	struct etcd_run e;
	struct su_store *s;
	struct su_fleet *fleet;
	struct su_plan *plan, *copy;
	struct su_plan_report r;
	struct su_err err;
	char *yaml, *text, path[] = "/tmp/su-converge-XXXXXX";
	size_t len;
	int fd;

	for (int i = 1; i < argc; i += 2) {
		if (i + 1 < argc && !strcmp(argv[i], "--scale") && (scale = atof(argv[i + 1])) > 0)
			continue;
		if (i + 1 < argc && !strcmp(argv[i], "--max") && (max = (uint32_t)atoi(argv[i + 1])) > 0)
			continue;
		if (i + 1 < argc && !strcmp(argv[i], "--n")) {
			only = argv[i + 1];
			continue;
		}
		return usage(strcmp(argv[i], "--help") && strcmp(argv[i], "-h") ? stderr : stdout, argv[i]);
	}
	n_dcs = (uint32_t)fmax(2, lround(300 * scale));
	n_ips = (uint32_t)lround(1000000 * scale);
	n_servers = n_dcs * SERVERS_PER_DC;
	/* A watcher holds two connections (requests, the watch stream). */
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	curl_global_init(CURL_GLOBAL_ALL);
	printf("bench/converge: scale %g: %u DCs x %d servers, %d tag-sets, %u addresses\n", scale, n_dcs,
	       SERVERS_PER_DC, N_TAGSETS, n_ips);
	yaml = fleet_yaml(n_dcs, n_ips);
	t0 = now_s();
	if (su_fleet__parse(yaml, strlen(yaml), "bench", &fleet, &err) ||
	    su_planner__run(fleet, NULL, NOW, &plan, &r, &err)) {
		fprintf(stderr, "planning: %s\n", err.msg);
		return 1;
	}
	su_fleet__free(fleet);
	su_plan__format_view(plan, NULL, &text, &len);
	printf("plan: %zu bytes, planned in %.2f s\n", len, now_s() - t0);
	if (etcd_run__start(&e, 1, "/bench")) {
		fprintf(stderr, "cannot start etcd (is etcd-server installed?)\n");
		return 1;
	}
	su_store__open(e.url, NULL, &s, &err);
	t0 = now_s();
	if (su_store__publish(s, plan, 0, &err)) {
		fprintf(stderr, "publish: %s\n", err.msg);
		etcd_run__stop(&e);
		return 1;
	}
	printf("first publish (every shard): %.2f s\n\n", now_s() - t0);
	printf("%6s %6s %7s %8s %8s %8s %8s %8s %10s %9s %10s %8s %9s %10s %s\n", "N", "DONE", "REPLAN", "PUBLISH", "P50",
	       "P99", "LAST", "AFTER",
	       "AGENT-B", "OF-PLAN", "ROUTER-B", "OF-PLAN", "REQS", "MB-MOVED", "CHANGED");
	/* The first pins split their prefixes, and every server with a slot in
	 * them gets a new view: timed apart, so the rounds show the usual move. */
	{
		double tp = now_s(), ts = tp;
		size_t changed, shards;

		if (carve(s, yaml, &plan, &ts, &err))
			fprintf(stderr, "publish: %s\n", err.msg);
		changed_shards(s, &changed, &shards);
		printf("%6s %6s %7.3f %8.3f  (warm-up: %u IPs pinned where they are, splitting their prefixes: %zu/%zu shards changed)\n",
		       "-", "-", ts - tp, now_s() - ts, n_carved, changed, shards);
	}
	for (uint32_t n = 3; n <= max && n <= n_servers; n *= 10) {
		if (in_list(only, n))
			run_round(e.url, e.client_port[0], s, yaml, &plan, n, len, n_dcs);
	}

	/* The file way: the whole plan to every reader, each parsing all of it. */
	fd = mkstemp(path);
	t0 = now_s();
	if (fd >= 0 && su_write_full(fd, text, len) == 0 && !su_plan__load(path, &copy, &err)) {
		double one = now_s() - t0;

		su_plan__free(copy);
		printf("\nbaseline, the plan file copied to every reader (%zu bytes each; write + parse %.3f s per reader):\n",
		       len, one);
		for (uint32_t n = 3; n <= 3000; n *= 10)
			printf("  N=%-5u %10.1f MB moved, %8.1f s of parsing fleet-wide\n", n, (double)len * n / 1e6, one * n);
	}
	if (fd >= 0)
		close(fd);
	unlink(path);
	su_store__close(s);
	etcd_run__stop(&e);
	free(text);
	free(yaml);
	su_plan__free(plan);
	su_ops__free(&pins);
	return 0;
}
