/* bench/plan: how long does it take, and how much memory, to plan the
 * address space of a large fleet?
 *
 * A synthetic fleet is generated (deterministically) at full scale:
 * 1,000,000 egress addresses in /24s, 300 data centers of 100 servers,
 * 50 tag-sets (5 services x 10 countries) that every DC demands, one slice
 * per server each.  Each phase runs in its own child process pinned to CPU 0,
 * so its peak RSS is its own (wait4's ru_maxrss):
 *
 *   load fleet     YAML -> validated model
 *   plan           model -> plan, from scratch
 *   write plan     plan -> snapshot file (atomic: temp, fsync, rename)
 *   full plan      the three above in one process: `softunicast plan`
 *   load plan      snapshot -> plan (what a router or an agent does)
 *   re-plan +1     one server added to one DC, planned against the previous
 *                  plan; every active slice of the old plan must stay with
 *                  its owner, and the new server must get all its tag-sets
 *
 * Beside each phase: the time of the operation alone, the peak RSS of the
 * process (which also holds what the phase needed loaded first) and the
 * memory the operation itself added at its peak (VmHWM after it, reset with
 * /proc/self/clear_refs before it, minus VmRSS before it).
 *
 * The peer is the design soft-unicast replaces: one IPv4 address per server
 * per tag-set.  Goals (from the issue): full plan under 2 s and 512 MB on one
 * core; the re-plan moves zero existing slices.
 *
 * BENCH_SCALE (or --scale) scales the address space and the number of data
 * centers (servers per DC and tag-sets stay); BENCH_DIR keeps the generated
 * files there instead of a temporary directory that is removed. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/fleet.h"
#include "lib/plan.h"
#include "lib/planner.h"

#define FULL_IPS 1000000.0
#define FULL_DCS 300.0
#define SERVERS_PER_DC 100
#define GOAL_SECS 2.0
#define GOAL_MB 512.0
#define NOW 1700000000
#define POOL_BASE 0x64400000u /* 100.64.0.0: synthetic, nothing routes it */

static const char *const k_services[] = { "cdn", "warp", "images", "api", "proxy" };
static const char *const k_countries[] = { "GB", "FR", "DE", "US", "JP", "BR", "IN", "AU", "CA", "NL" };
#define N_SERVICES (sizeof(k_services) / sizeof(k_services[0]))
#define N_COUNTRIES (sizeof(k_countries) / sizeof(k_countries[0]))
#define N_TAGSETS (N_SERVICES * N_COUNTRIES)

struct shape {
	double scale;
	uint32_t n_dcs, n_ips, n_prefixes;
};

struct paths {
	char dir[256], fleet[300], fleet1[300], plan[300], plan1[300];
};

/* What a child sends back over its pipe. */
struct result {
	int rc;
	char msg[600];
	double secs;       /* the measured operation */
	double parts[4];   /* full runs: load fleet, [load plan,] plan, write */
	double phase_mb;   /* what the operation added at its peak */
	long peak_before_kb;
	uint64_t moved, new_slices, ips_before, ips_after;
	struct su_plan_cost cost;
	uint64_t plan_bytes;
};

struct row {
	const char *name;
	struct result r;
	double wall, peak_mb;
};

/* ---- measurement helpers --------------------------------------------------- */

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long status_kb(const char *field)
{
	FILE *fp = fopen("/proc/self/status", "r");
	char line[256];
	size_t n = strlen(field);
	long kb = -1;

	if (!fp)
		return -1;
	while (fgets(line, sizeof(line), fp))
		if (!strncmp(line, field, n) && line[n] == ':')
			kb = strtol(line + n + 1, NULL, 10);
	fclose(fp);
	return kb;
}

/* The process's peak before phase_begin() reset it: resetting VmHWM also
 * lowers what wait4() reports as the child's ru_maxrss. */
static long g_peak_before_kb;

/* Resets VmHWM to the current RSS (Linux >= 4.0, clear_refs "5"), so the
 * peak measured after an operation is the operation's own. */
static long phase_begin(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);

	g_peak_before_kb = status_kb("VmHWM");

	if (fd >= 0) {
		if (write(fd, "5", 1) != 1)
			(void)0; /* then the peak includes the set-up: still an upper bound */
		close(fd);
	}
	return status_kb("VmRSS");
}

static double phase_end(long rss_before_kb)
{
	long hwm = status_kb("VmHWM");

	return hwm < 0 || rss_before_kb < 0 ? -1 : (double)(hwm - rss_before_kb) / 1024.0;
}

/* ---- the synthetic fleet ----------------------------------------------------- */

static void tagset(uint32_t t, const char **service, const char **country)
{
	*service = k_services[t / N_COUNTRIES];
	*country = k_countries[t % N_COUNTRIES];
}

static void addr_str(uint32_t a, char *buf, size_t len)
{
	snprintf(buf, len, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* Each tag-set gets an equal share of the addresses: as many /24s as fit,
 * the rest in decreasing power-of-two blocks; each share starts on a /24. */
static uint32_t write_prefixes(FILE *fp, const struct shape *s)
{
	uint32_t cursor = POOL_BASE, count = 0;

	fputs("prefixes:\n", fp);
	for (uint32_t t = 0; t < N_TAGSETS; t++) {
		uint32_t share = s->n_ips / N_TAGSETS + (t < s->n_ips % N_TAGSETS);
		const char *service, *country;

		tagset(t, &service, &country);
		cursor = (cursor + 255) & ~255u;
		while (share) {
			uint32_t bits = share >= 256 ? 8 : 31 - (uint32_t)__builtin_clz(share);
			char a[16];

			addr_str(cursor, a, sizeof(a));
			fprintf(fp, "  - {prefix: %s/%u, tags: {service: %s, country: %s}}\n", a, 32 - bits,
				service, country);
			cursor += 1u << bits;
			share -= 1u << bits;
			count++;
		}
	}
	return count;
}

static int write_fleet(const char *path, struct shape *s, bool extra_server)
{
	FILE *fp = fopen(path, "w");

	if (!fp)
		return -errno;
	fprintf(fp, "# bench/plan synthetic fleet: %u DCs x %u servers, %u tag-sets, %u addresses\n"
		    "ports: {range: 1024-65535, slice: 2048}\ndrain: 10m\ndatacenters:\n",
		s->n_dcs, SERVERS_PER_DC, (unsigned)N_TAGSETS, s->n_ips);
	for (uint32_t dc = 0; dc < s->n_dcs; dc++) {
		uint32_t n = SERVERS_PER_DC + (extra_server && dc == 0);

		fprintf(fp, "  dc%03u:\n    router: 172.16.%u.%u\n    servers:\n", dc, dc >> 8, dc & 255);
		for (uint32_t j = 0; j < n; j++)
			fprintf(fp, "      dc%03u-s%03u: 10.%u.%u.%u\n", dc, j, dc >> 8, dc & 255, j + 1);
		fputs("    egress:\n", fp);
		for (uint32_t t = 0; t < N_TAGSETS; t++) {
			const char *service, *country;

			tagset(t, &service, &country);
			fprintf(fp, "      - {service: %s, country: %s}\n", service, country);
		}
	}
	s->n_prefixes = write_prefixes(fp, s);
	if (fclose(fp))
		return -errno;
	return 0;
}

/* ---- the phases (each runs in a child) ----------------------------------------- */

static int fail(struct result *r, int rc, const char *what, const struct su_err *err)
{
	r->rc = rc ? rc : -EINVAL;
	snprintf(r->msg, sizeof(r->msg), "%s: %s", what, err ? err->msg : strerror(-r->rc));
	return r->rc;
}

static int load_fleet(const char *path, struct su_fleet **f, struct result *r, double *secs)
{
	struct su_err err;
	double t0 = now_s();
	int ret = su_fleet__load(path, f, &err);

	if (secs)
		*secs = now_s() - t0;
	return ret ? fail(r, ret, "load fleet", &err) : 0;
}

static int plan(const struct su_fleet *f, const struct su_plan *prev, struct su_plan **p,
		struct result *r, double *secs)
{
	struct su_plan_report report;
	struct su_err err;
	double t0 = now_s();
	int ret = su_planner__run(f, prev, prev ? NOW + 60 : NOW, p, &report, &err);

	if (secs)
		*secs = now_s() - t0;
	su_plan_report__free(&report);
	return ret ? fail(r, ret, "plan", &err) : 0;
}

static int write_plan(const struct su_plan *p, const char *path, struct result *r, double *secs)
{
	struct su_err err;
	struct stat st;
	double t0 = now_s();
	int ret = su_plan__write(p, path, &err);

	if (secs)
		*secs = now_s() - t0;
	if (ret)
		return fail(r, ret, "write plan", &err);
	r->plan_bytes = stat(path, &st) ? 0 : (uint64_t)st.st_size;
	return 0;
}

static void phase_nothing(const struct paths *pa, struct result *r)
{
}

static void phase_load_fleet(const struct paths *pa, struct result *r)
{
	struct su_fleet *f = NULL;
	long rss = phase_begin();

	if (!load_fleet(pa->fleet, &f, r, &r->secs))
		r->phase_mb = phase_end(rss);
	su_fleet__free(f);
}

static void phase_plan(const struct paths *pa, struct result *r)
{
	struct su_fleet *f = NULL;
	struct su_plan *p = NULL;
	long rss;

	if (load_fleet(pa->fleet, &f, r, NULL))
		return;
	rss = phase_begin();
	if (!plan(f, NULL, &p, r, &r->secs)) {
		r->phase_mb = phase_end(rss);
		su_plan__cost(p, &r->cost);
	}
	su_plan__free(p);
	su_fleet__free(f);
}

static void phase_write(const struct paths *pa, struct result *r)
{
	struct su_fleet *f = NULL;
	struct su_plan *p = NULL;
	long rss;

	if (load_fleet(pa->fleet, &f, r, NULL) || plan(f, NULL, &p, r, NULL))
		goto out;
	rss = phase_begin();
	if (!write_plan(p, pa->plan, r, &r->secs))
		r->phase_mb = phase_end(rss);
out:
	su_plan__free(p);
	su_fleet__free(f);
}

/* `softunicast plan` in one process: the figure the goal is about. */
static void phase_full(const struct paths *pa, struct result *r)
{
	struct su_fleet *f = NULL;
	struct su_plan *p = NULL;
	long rss = phase_begin();

	if (!load_fleet(pa->fleet, &f, r, &r->parts[0]) && !plan(f, NULL, &p, r, &r->parts[1]) &&
	    !write_plan(p, pa->plan, r, &r->parts[2])) {
		r->secs = r->parts[0] + r->parts[1] + r->parts[2];
		r->phase_mb = phase_end(rss);
		su_plan__cost(p, &r->cost);
	}
	su_plan__free(p);
	su_fleet__free(f);
}

static void phase_load_plan(const struct paths *pa, struct result *r)
{
	struct su_plan *p = NULL;
	struct su_err err;
	long rss = phase_begin();
	double t0 = now_s();
	int ret = su_plan__load(pa->plan, &p, &err);

	r->secs = now_s() - t0;
	if (ret)
		fail(r, ret, "load plan", &err);
	else
		r->phase_mb = phase_end(rss);
	su_plan__free(p);
}

/* Every slot active in `old` must be active in `cur`, owned by the same
 * server (by name: indexes shift when a server is inserted). */
static uint64_t count_moved(const struct su_plan *old, const struct su_plan *cur)
{
	uint64_t moved = 0;

	for (uint32_t i = 0; i < old->n_ips; i++) {
		const struct su_plan_ip *oip = &old->ips[i];
		const struct su_plan_ip *nip = su_plan__find_ip(cur, oip->ip);

		for (uint32_t s = 0; s < old->slices_per_ip; s++) {
			const struct su_plan_slot *os = &old->slots[oip->first_slot + s], *ns;

			if (os->state != SU_ACTIVE)
				continue;
			ns = nip ? su_plan__slot(cur, nip, su_plan__slot_lo(old, s)) : NULL;
			moved += !(ns && ns->state == SU_ACTIVE &&
				   !strcmp(cur->dcs[nip->dc].name, old->dcs[oip->dc].name) &&
				   !strcmp(cur->servers[ns->server].name, old->servers[os->server].name));
		}
	}
	return moved;
}

static uint64_t slices_of(const struct su_plan *p, const char *server)
{
	int idx = su_plan__find_server(p, server);
	uint64_t n = 0;

	for (size_t i = 0; idx >= 0 && i < (size_t)p->n_ips * p->slices_per_ip; i++)
		n += p->slots[i].state == SU_ACTIVE && p->slots[i].server == idx;
	return n;
}

static void phase_replan(const struct paths *pa, struct result *r)
{
	struct su_fleet *f = NULL;
	struct su_plan *prev = NULL, *p = NULL;
	struct su_err err;
	long rss;
	int ret;

	if (load_fleet(pa->fleet1, &f, r, NULL))
		return;
	ret = su_plan__load(pa->plan, &prev, &err);
	if (ret) {
		fail(r, ret, "load previous plan", &err);
		goto out;
	}
	rss = phase_begin();
	if (plan(f, prev, &p, r, &r->secs))
		goto out;
	r->phase_mb = phase_end(rss);
	r->moved = count_moved(prev, p);
	r->new_slices = slices_of(p, "dc000-s100");
	r->ips_before = prev->n_ips;
	r->ips_after = p->n_ips;
	su_plan__cost(p, &r->cost);
out:
	su_plan__free(p);
	su_plan__free(prev);
	su_fleet__free(f);
}

/* `softunicast plan --previous` in one process, after the server is added. */
static void phase_full_replan(const struct paths *pa, struct result *r)
{
	struct su_fleet *f = NULL;
	struct su_plan *prev = NULL, *p = NULL;
	struct su_err err;
	long rss = phase_begin();
	double t0 = now_s();
	int ret;

	if (load_fleet(pa->fleet1, &f, r, &r->parts[0]))
		return;
	ret = su_plan__load(pa->plan, &prev, &err);
	r->parts[1] = now_s() - t0 - r->parts[0];
	if (ret)
		fail(r, ret, "load previous plan", &err);
	else if (!plan(f, prev, &p, r, &r->parts[2]) && !write_plan(p, pa->plan1, r, &r->parts[3])) {
		r->secs = now_s() - t0;
		r->phase_mb = phase_end(rss);
	}
	su_plan__free(p);
	su_plan__free(prev);
	su_fleet__free(f);
}

/* ---- the driver ----------------------------------------------------------------- */

static int run_child(void (*fn)(const struct paths *, struct result *), const struct paths *pa,
		     struct row *row)
{
	struct rusage ru;
	int fds[2], status;
	double t0 = now_s();
	pid_t pid;

	memset(&row->r, 0, sizeof(row->r));
	if (pipe(fds))
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		struct result r = { 0 };

		close(fds[0]);
		fn(pa, &r);
		r.peak_before_kb = g_peak_before_kb;
		_exit(write(fds[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	close(fds[1]);
	if (read(fds[0], &row->r, sizeof(row->r)) != sizeof(row->r)) {
		row->r.rc = -EPIPE;
		snprintf(row->r.msg, sizeof(row->r.msg), "child died before reporting");
	}
	close(fds[0]);
	if (wait4(pid, &status, 0, &ru) < 0)
		return -errno;
	row->wall = now_s() - t0;
	/* ru_maxrss is in kilobytes on Linux */
	row->peak_mb = (double)(ru.ru_maxrss > row->r.peak_before_kb ? ru.ru_maxrss : row->r.peak_before_kb) / 1024.0;
	if (!row->r.rc && !(WIFEXITED(status) && !WEXITSTATUS(status))) {
		row->r.rc = -ECHILD;
		snprintf(row->r.msg, sizeof(row->r.msg), "child exited abnormally (status %#x)", status);
	}
	return 0;
}

static void print_row(const struct row *row, const char *goal, int verdict)
{
	if (row->r.rc) {
		printf("%-16s %8s %10s %10s  %-22s %s  (%s)\n", row->name, "-", "-", "-", goal, "FAIL", row->r.msg);
		return;
	}
	printf("%-16s %8.3f %10.1f %10.1f  %-22s %s\n", row->name, row->r.secs, row->peak_mb, row->r.phase_mb,
	       goal, verdict > 0 ? "PASS" : verdict == 0 ? "MISS" : "");
}

static double parse_scale(int argc, char **argv)
{
	const char *s = getenv("BENCH_SCALE");
	double v;
	char *end;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--scale") && i + 1 < argc)
			s = argv[++i];
		else if (!strncmp(argv[i], "--scale=", 8))
			s = argv[i] + 8;
		else {
			fprintf(stderr, "usage: %s [--scale FACTOR]   (or BENCH_SCALE=FACTOR; BENCH_DIR=DIR keeps files)\n",
				argv[0]);
			exit(2);
		}
	}
	if (!s)
		return 1.0;
	v = strtod(s, &end);
	if (*end || !(v > 0) || v > 4) {
		fprintf(stderr, "bench-plan: bad scale '%s' (0 < scale <= 4)\n", s);
		exit(2);
	}
	return v;
}

static void pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fprintf(stderr, "bench-plan: cannot pin to CPU 0: %s (figures may use more cores)\n",
			strerror(errno));
}

static void print_machine(void)
{
	FILE *fp = fopen("/proc/cpuinfo", "r");
	char line[256], model[200] = "unknown CPU";
	struct utsname u;

	while (fp && fgets(line, sizeof(line), fp))
		if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
			snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	if (fp)
		fclose(fp);
	uname(&u);
	printf("machine: %s, Linux %s, pinned to CPU 0\n", model, u.release);
}

static void print_cost(const struct su_plan_cost *c, const struct shape *s)
{
	double used = (double)c->active_ips;

	printf("\n%-40s %10s %9s\n", "addresses (IPv4)", "count", "vs. used");
	printf("  %-38s %10llu %8.2fx\n", "used by the plan (active)", (unsigned long long)c->active_ips, 1.0);
	printf("  %-38s %10llu %8.2fx\n", "lower bound: sum ceil(slices / 31)",
	       (unsigned long long)c->lower_bound, used ? (double)c->lower_bound / used : 0);
	printf("  %-38s %10llu %8.2fx   (soft-unicast saves %.1f%%)\n", "peer: one IP per server per tag-set",
	       (unsigned long long)c->per_server, used ? (double)c->per_server / used : 0,
	       c->per_server ? 100.0 * (1.0 - used / (double)c->per_server) : 0);
	printf("  %-38s %10u %8.2fx%s\n", "egress pool in the fleet", s->n_ips, used ? s->n_ips / used : 0,
	       c->per_server > s->n_ips ? "   (too small for the peer)" : "");
	printf("  slices: %llu active, %llu free in used IPs (%.1f%% of slots used)\n",
	       (unsigned long long)c->slices_active, (unsigned long long)c->slices_free,
	       c->slices_active + c->slices_free
		       ? 100.0 * (double)c->slices_active / (double)(c->slices_active + c->slices_free)
		       : 0);
}

static void cleanup(const struct paths *pa, bool keep)
{
	char tmp[320];

	if (keep)
		return;
	unlink(pa->fleet);
	unlink(pa->fleet1);
	unlink(pa->plan);
	unlink(pa->plan1);
	snprintf(tmp, sizeof(tmp), "%s.tmp", pa->plan); /* in case a write was cut short */
	unlink(tmp);
	rmdir(pa->dir);
}

int main(int argc, char **argv)
{
	struct shape s = { .scale = parse_scale(argc, argv) };
	const char *keep_dir = getenv("BENCH_DIR");
	struct paths pa;
	struct row rows[7] = {
		{ .name = "load fleet" }, { .name = "plan" },       { .name = "write plan" },
		{ .name = "full plan" },  { .name = "load plan" },  { .name = "re-plan +1" },
		{ .name = "full re-plan" },
	};
	void (*fns[7])(const struct paths *, struct result *) = {
		phase_load_fleet, phase_plan,   phase_write,       phase_full,
		phase_load_plan,  phase_replan, phase_full_replan,
	};
	struct row base = { .name = "baseline" };
	struct stat st;
	double t0;
	int failures = 0;
	bool full_ok = false, replan_ok = false;

	setvbuf(stdout, NULL, _IOLBF, 0);
	s.n_ips = (uint32_t)lround(FULL_IPS * s.scale);
	s.n_dcs = (uint32_t)lround(FULL_DCS * s.scale);
	if (s.n_dcs < 1)
		s.n_dcs = 1;
	if (s.n_ips < N_TAGSETS * 64) {
		fprintf(stderr, "bench-plan: scale %g is too small for %u tag-sets\n", s.scale, (unsigned)N_TAGSETS);
		return 2;
	}
	if (keep_dir) {
		snprintf(pa.dir, sizeof(pa.dir), "%s", keep_dir);
		if (mkdir(pa.dir, 0755) && errno != EEXIST) {
			perror(pa.dir);
			return 1;
		}
	} else {
		snprintf(pa.dir, sizeof(pa.dir), "%s/bench-plan.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		if (!mkdtemp(pa.dir)) {
			perror("mkdtemp");
			return 1;
		}
	}
	snprintf(pa.fleet, sizeof(pa.fleet), "%s/fleet.yaml", pa.dir);
	snprintf(pa.fleet1, sizeof(pa.fleet1), "%s/fleet-plus-one.yaml", pa.dir);
	snprintf(pa.plan, sizeof(pa.plan), "%s/plan", pa.dir);
	snprintf(pa.plan1, sizeof(pa.plan1), "%s/plan-plus-one", pa.dir);

	pin_cpu0();
	printf("bench/plan: scale %g: %u egress addresses, %u DCs x %d servers = %u servers, %u tag-sets\n",
	       s.scale, s.n_ips, s.n_dcs, SERVERS_PER_DC, s.n_dcs * SERVERS_PER_DC, (unsigned)N_TAGSETS);
	print_machine();
	t0 = now_s();
	if (write_fleet(pa.fleet, &s, false) || write_fleet(pa.fleet1, &s, true)) {
		perror("bench-plan: writing the fleet");
		cleanup(&pa, keep_dir);
		return 1;
	}
	printf("fleet: %u prefixes, %lld KB of YAML, generated in %.2f s (%s)\n", s.n_prefixes,
	       stat(pa.fleet, &st) ? -1LL : (long long)st.st_size / 1024, now_s() - t0, pa.dir);

	/* A process that does nothing: the floor under every RSS figure. */
	run_child(phase_nothing, &pa, &base);

	printf("\n%-16s %8s %10s %10s  %-22s %s\n", "phase", "wall s", "peak MB", "phase +MB", "goal", "");
	for (int i = 0; i < 7; i++) {
		if (run_child(fns[i], &pa, &rows[i])) {
			perror("bench-plan: fork");
			cleanup(&pa, keep_dir);
			return 1;
		}
		failures += rows[i].r.rc != 0;
		switch (i) {
		case 3:
			full_ok = !rows[i].r.rc && rows[i].r.secs < GOAL_SECS && rows[i].peak_mb < GOAL_MB;
			print_row(&rows[i], "< 2 s and < 512 MB", full_ok);
			printf("%-16s   (load %.3f + plan %.3f + write %.3f s; plan file %.1f MB)\n", "",
			       rows[i].r.parts[0], rows[i].r.parts[1], rows[i].r.parts[2],
			       (double)rows[i].r.plan_bytes / (1024 * 1024));
			break;
		case 5:
			replan_ok = !rows[i].r.rc && rows[i].r.moved == 0 && rows[i].r.new_slices == N_TAGSETS;
			print_row(&rows[i], "0 slices moved", replan_ok);
			if (!rows[i].r.rc)
				printf("%-16s   (%llu active slices moved; new server holds %llu of %u slices; "
				       "IPs %llu -> %llu)\n",
				       "", (unsigned long long)rows[i].r.moved,
				       (unsigned long long)rows[i].r.new_slices, (unsigned)N_TAGSETS,
				       (unsigned long long)rows[i].r.ips_before,
				       (unsigned long long)rows[i].r.ips_after);
			break;
		case 6:
			print_row(&rows[i], "-", -1);
			printf("%-16s   (load fleet %.3f + load plan %.3f + plan %.3f + write %.3f s)\n", "",
			       rows[i].r.parts[0], rows[i].r.parts[1], rows[i].r.parts[2], rows[i].r.parts[3]);
			break;
		default:
			print_row(&rows[i], "-", -1);
		}
	}
	printf("(peak MB: the whole process, including what the phase needed loaded first; a process\n"
	       " doing nothing peaks at %.1f MB.  phase +MB: what the operation itself added.)\n",
	       base.peak_mb);
	if (!rows[3].r.rc)
		print_cost(&rows[3].r.cost, &s);
	cleanup(&pa, keep_dir);
	if (failures)
		return 1;
	printf("\ngoals: full plan %s, re-plan %s\n", full_ok ? "PASS" : "MISS", replan_ok ? "PASS" : "MISS");
	return 0;
}
