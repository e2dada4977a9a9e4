/* `router stats` and `router detach`: work from the pinned maps alone, so
 * they need no running router process. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cli/cli.h"
#include "cli/node_store.h"
#include "router/router.h"

struct side_opts {
	const char *dc, *pin_dir, *plan_path;
	const char *state_dir; /* --store runs: where store.json is (node_store.h) */
	const char *iface[SU_META_IFACES];
	char pin_buf[PATH_MAX];
	bool json;
};

static int parse_side_opts(const char *cmd, int argc, char **argv, struct side_opts *o,
			   const char *usage)
{
	static const struct option longopts[] = {
		{ "dc", 1, 0, 'd' },   { "pin-dir", 1, 0, 'P' }, { "plan", 1, 0, 'p' },
		{ "json", 0, 0, 'j' }, { "iface", 1, 0, 'i' },	 { "help", 0, 0, 'h' },
		{ "state-dir", 1, 0, 'S' }, { 0 }
	};
	int c, n_if = 0;

	memset(o, 0, sizeof(*o));
	while ((c = getopt_long(argc, argv, "d:P:p:ji:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': o->dc = optarg; break;
		case 'P': o->pin_dir = optarg; break;
		case 'p': o->plan_path = optarg; break;
		case 'S': o->state_dir = optarg; break;
		case 'j': o->json = true; break;
		case 'i':
			if (n_if == SU_META_IFACES)
				return cli_fail(SU_EXIT_USAGE, cmd, "at most %d --iface",
						SU_META_IFACES);
			o->iface[n_if++] = optarg;
			break;
		case 'h': printf("%s", usage); return -1;
		default: fprintf(stderr, "%s", usage); return SU_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_fail(SU_EXIT_USAGE, cmd, "unexpected argument '%s'", argv[optind]);
	if (!o->pin_dir) {
		if (!o->dc)
			return cli_fail(SU_EXIT_USAGE, cmd, "--dc (or --pin-dir) is required");
		if (su_router__default_pin_dir(o->dc, o->pin_buf, sizeof(o->pin_buf)))
			return cli_fail(SU_EXIT_USAGE, cmd, "--dc '%s': name too long", o->dc);
		o->pin_dir = o->pin_buf;
	}
	return 0;
}

static int open_pinned(const char *dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return bpf_obj_get(path);
}

int router_stats__meta(const char *dir, struct su_meta *m)
{
	int fd = open_pinned(dir, "su_meta"), rc = -ENOENT;
	uint32_t k = 0;

	if (fd < 0)
		return -errno;
	if (!bpf_map_lookup_elem(fd, &k, m) && m->magic == SU_META_MAGIC)
		rc = 0;
	close(fd);
	return rc;
}

/* ---- stats ---- */

static int cmp_target(const void *a, const void *b)
{
	const struct su_router_target *x = a, *y = b;

	return x->packets < y->packets ? 1 : x->packets > y->packets ? -1 : 0;
}

int router_stats__counters(const char *dir, uint64_t out[SU_STAT_MAX])
{
	int ncpu = libbpf_num_possible_cpus(), fd = open_pinned(dir, "su_stats");
	uint64_t *vals;

	if (fd < 0)
		return -errno;
	if (ncpu < 0 || !(vals = calloc((size_t)ncpu, sizeof(*vals)))) {
		close(fd);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < SU_STAT_MAX; i++) {
		out[i] = 0;
		if (bpf_map_lookup_elem(fd, &i, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			out[i] += vals[c];
	}
	free(vals);
	close(fd);
	return 0;
}

int router_stats__targets(const char *dir, struct su_router_target **out, size_t *n_out)
{
	int ncpu = libbpf_num_possible_cpus(), fd = open_pinned(dir, "su_targets");
	struct su_target_val *vals;
	struct su_router_target *t = NULL;
	size_t n = 0, cap = 0;
	__be32 key, next, *prev = NULL;

	if (fd < 0)
		return -errno;
	vals = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*vals));
	while (vals && !bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, vals))
			continue;
		if (n == cap) {
			struct su_router_target *nt = realloc(t, (cap = cap ? 2 * cap : 64) * sizeof(*t));

			if (!nt)
				break;
			t = nt;
		}
		t[n] = (struct su_router_target){ .addr = key };
		for (int c = 0; c < ncpu; c++) {
			t[n].packets += vals[c].packets;
			t[n].bytes += vals[c].bytes;
		}
		n++;
	}
	free(vals);
	close(fd);
	if (n)
		qsort(t, n, sizeof(*t), cmp_target);
	*out = t;
	*n_out = n;
	return 0;
}

/* "lhr-s1" for a server, "router:cdg" for a DC's router, else "". */
static void target_name(const struct su_plan *p, __be32 addr, char *buf, size_t len)
{
	uint32_t a = ntohl(addr);

	buf[0] = 0;
	if (!p)
		return;
	for (uint32_t i = 0; i < p->n_servers; i++)
		if (p->servers[i].addr == a) {
			snprintf(buf, len, "%s", p->servers[i].name);
			return;
		}
	for (uint32_t i = 0; i < p->n_dcs; i++)
		if (p->dcs[i].router == a) {
			snprintf(buf, len, "router:%s", p->dcs[i].name);
			return;
		}
}

static const char *ifname_of(uint32_t ifindex, char *buf)
{
	if (!ifindex)
		return NULL;
	if (!if_indextoname(ifindex, buf))
		snprintf(buf, IF_NAMESIZE, "#%u", ifindex);
	return buf;
}

static int print_json(const struct side_opts *o, const struct su_meta *m, bool have_meta,
		      const uint64_t *ctr, const struct su_router_target *t, size_t n, const struct su_plan *p)
{
	json_t *root = json_object(), *counters = json_object(), *targets = json_array();
	json_t *ifaces = json_array();
	char a[INET_ADDRSTRLEN], name[64], ifn[IF_NAMESIZE];

	json_object_set_new(root, "pin_dir", json_string(o->pin_dir));
	if (have_meta) {
		for (int i = 0; i < SU_META_IFACES; i++)
			if (ifname_of(m->ifindex[i], ifn))
				json_array_append_new(ifaces, json_string(ifn));
		json_object_set_new(root, "router", json_string(inet_ntop(AF_INET, &m->router, a,
									   sizeof(a))));
		json_object_set_new(root, "mode", json_string(m->xdp_flags & XDP_FLAGS_SKB_MODE ?
								  "skb" : "native"));
		json_object_set_new(root, "plan_serial", json_integer((json_int_t)m->plan_serial));
		json_object_set_new(root, "loaded_at", json_integer((json_int_t)m->loaded_at));
	}
	json_object_set_new(root, "ifaces", ifaces);
	for (int i = 0; i < SU_STAT_MAX; i++)
		json_object_set_new(counters, su_stat_desc[i].label, json_integer((json_int_t)ctr[i]));
	json_object_set_new(root, "counters", counters);
	for (size_t i = 0; i < n; i++) {
		target_name(p, t[i].addr, name, sizeof(name));
		json_array_append_new(targets,
				      json_pack("{s:s,s:s?,s:I,s:I}", "addr",
						inet_ntop(AF_INET, &t[i].addr, a, sizeof(a)), "name",
						name[0] ? name : NULL, "packets",
						(json_int_t)t[i].packets, "bytes",
						(json_int_t)t[i].bytes));
	}
	json_object_set_new(root, "targets", targets);
	if (o->dc || o->state_dir) /* null unless the router follows a store */
		json_object_set_new(root, "store", node_store__read(o->state_dir ? o->state_dir :
				    node_store__state_dir(&(struct node_store_flags){ 0 }, "router", o->dc)));
	json_dumpf(root, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(root);
	return SU_EXIT_OK;
}

static void print_text(const struct side_opts *o, const struct su_meta *m, bool have_meta,
		       const uint64_t *ctr, const struct su_router_target *t, size_t n, const struct su_plan *p)
{
	char a[INET_ADDRSTRLEN], name[64], ifn[2][IF_NAMESIZE];

	if (have_meta) {
		const char *i0 = ifname_of(m->ifindex[0], ifn[0]), *i1 = ifname_of(m->ifindex[1], ifn[1]);
		time_t at = (time_t)m->loaded_at;
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&at));
		printf("router %s on %s%s%s (%s), GUE port %u, plan serial %llu synced %s\n",
		       inet_ntop(AF_INET, &m->router, a, sizeof(a)), i0 ? i0 : "?",
		       i1 ? " + " : "", i1 ? i1 : "",
		       m->xdp_flags & XDP_FLAGS_SKB_MODE ? "skb" : "native", m->gue_port,
		       (unsigned long long)m->plan_serial, when);
	}
	if (o->dc || o->state_dir)
		node_store__print(o->state_dir ? o->state_dir :
				  node_store__state_dir(&(struct node_store_flags){ 0 }, "router", o->dc));
	for (int pass = 0; pass < 2; pass++) {
		const char *kind = pass ? "info" : "outcome";

		printf("\n%-24s %14s  %s\n", pass ? "PATH (info)" : "OUTCOME", "PACKETS",
		       "MEANING");
		for (int i = 0; i < SU_STAT_MAX; i++)
			if (!strcmp(su_stat_desc[i].kind, kind))
				printf("%-24s %14llu  %s\n", su_stat_desc[i].label,
				       (unsigned long long)ctr[i], su_stat_desc[i].help);
	}
	printf("\n%-16s %-20s %14s %16s\n", "TARGET", "NAME", "PACKETS", "BYTES");
	for (size_t i = 0; i < n; i++) {
		target_name(p, t[i].addr, name, sizeof(name));
		printf("%-16s %-20s %14llu %16llu\n", inet_ntop(AF_INET, &t[i].addr, a, sizeof(a)),
		       name[0] ? name : "-", (unsigned long long)t[i].packets,
		       (unsigned long long)t[i].bytes);
	}
}

static const char stats_usage[] =
	"Usage: softunicast router stats --dc DC [--plan PLAN] [--pin-dir DIR] [--state-dir DIR] [--json]\n"
	"Prints the router's per-reason counters and forwarded packets by target.\n";

int router_stats_main(int argc, char **argv)
{
	uint64_t ctr[SU_STAT_MAX];
	struct su_plan *p = NULL;
	struct su_router_target *t = NULL;
	struct side_opts o;
	struct su_meta m;
	struct su_err err;
	bool have_meta;
	size_t n = 0;
	int rc;

	rc = parse_side_opts("router stats", argc, argv, &o, stats_usage);
	if (rc)
		return rc < 0 ? SU_EXIT_OK : rc;
	rc = router_stats__counters(o.pin_dir, ctr);
	if (rc)
		return cli_fail(rc == -ENOENT ? SU_EXIT_NOTFOUND : SU_EXIT_FAIL, "router stats",
				"no router maps pinned in %s: %s", o.pin_dir, strerror(-rc));
	have_meta = !router_stats__meta(o.pin_dir, &m);
	if (router_stats__targets(o.pin_dir, &t, &n))
		n = 0;
	if (o.plan_path && su_plan__load(o.plan_path, &p, &err)) {
		free(t);
		return cli_fail(SU_EXIT_INVALID, "router stats", "%s", err.msg);
	}
	if (o.json)
		rc = print_json(&o, &m, have_meta, ctr, t, n, p);
	else
		print_text(&o, &m, have_meta, ctr, t, n, p);
	su_plan__free(p);
	free(t);
	return rc;
}

/* ---- detach ---- */

/* Is program id a router, and (map_id != 0) the one using map map_id, i.e.
 * the router of the pin directory being detached?  Returns an fd of the
 * program to detach it by (the kernel then replaces exactly that program,
 * XDP_FLAGS_REPLACE), or -1. */
static int router_prog_fd(uint32_t id, uint32_t map_id)
{
	uint32_t maps[64], len;
	struct bpf_prog_info info;
	int fd = bpf_prog_get_fd_by_id(id);

	if (fd < 0)
		return -1;
	memset(&info, 0, sizeof(info));
	len = sizeof(info);
	info.nr_map_ids = 64;
	info.map_ids = (uint64_t)(unsigned long)maps;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || strcmp(info.name, SU_ROUTER_PROG_NAME))
		goto no;
	if (!map_id)
		return fd;
	for (uint32_t i = 0; i < info.nr_map_ids && i < 64; i++)
		if (maps[i] == map_id)
			return fd;
no:
	close(fd);
	return -1;
}

/* Detaches a router program from ifindex in whichever mode it runs.  With
 * map_id, only the router using that map (the pinned su_ips): a router that
 * started in between with maps of its own is left alone, and the detach
 * names the program it expects, so one that replaces it between the query
 * and the detach makes the kernel refuse (EEXIST) instead of losing it. */
static int detach_iface(int ifindex, uint32_t map_id)
{
	static const uint32_t modes[] = { XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE };
	int done = 0;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts);
		uint32_t id = 0;
		int fd;

		if (bpf_xdp_query_id(ifindex, modes[i], &id) || !id)
			continue;
		fd = router_prog_fd(id, map_id);
		if (fd < 0) {
			char name[IF_NAMESIZE] = "?";

			if (map_id)
				fprintf(stderr, "%s router detach: %s runs another router (program "
					"%u, not using these pinned maps): left attached\n", su_prog,
					if_indextoname((unsigned)ifindex, name) ? name : "?", id);
			continue;
		}
		opts.old_prog_fd = fd;
		if (!bpf_xdp_detach(ifindex, modes[i], &opts))
			done++;
		close(fd);
	}
	return done;
}

/* Id of the pinned IP map, 0 if none. */
static uint32_t pinned_map_id(const char *dir)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info);
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/su_ips", dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		info.id = 0;
	close(fd);
	return info.id;
}

static int unpin_all(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX];
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "su_", 3))
			continue; /* only what this program pinned */
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!unlink(path))
			n++;
	}
	closedir(d);
	rmdir(dir);
	rmdir(SU_ROUTER_PIN_ROOT); /* fails harmlessly if other DCs remain */
	return n;
}

static const char detach_usage[] =
	"Usage: softunicast router detach --dc DC [--pin-dir DIR] [--iface IFACE]...\n"
	"Removes the router program from its interfaces (those recorded in the pinned\n"
	"maps, plus any --iface) and unpins its maps.  On the recorded interfaces only\n"
	"the router using these pinned maps is detached, by its program id (a router\n"
	"started in between is left alone); --iface detaches any router there.\n";

int router_detach_main(int argc, char **argv)
{
	struct side_opts o;
	struct su_meta m;
	uint32_t map_id;
	int rc, detached = 0, unpinned;

	rc = parse_side_opts("router detach", argc, argv, &o, detach_usage);
	if (rc)
		return rc < 0 ? SU_EXIT_OK : rc;
	map_id = pinned_map_id(o.pin_dir);
	if (!router_stats__meta(o.pin_dir, &m))
		for (int i = 0; i < SU_META_IFACES; i++)
			if (m.ifindex[i])
				detached += detach_iface((int)m.ifindex[i], map_id);
	for (int i = 0; i < SU_META_IFACES; i++) {
		int ifindex;

		if (!o.iface[i])
			continue;
		ifindex = (int)if_nametoindex(o.iface[i]);
		if (!ifindex)
			return cli_fail(SU_EXIT_USAGE, "router detach", "interface '%s': %s",
					o.iface[i], strerror(errno));
		detached += detach_iface(ifindex, 0); /* named: any router there */
	}
	unpinned = unpin_all(o.pin_dir);
	if (!detached && unpinned <= 0)
		return cli_fail(SU_EXIT_NOTFOUND, "router detach", "no router attached or pinned "
				"in %s", o.pin_dir);
	fprintf(stderr, "%s router: detached from %d interface(s), removed %d pinned map(s) "
		"from %s\n", su_prog, detached, unpinned > 0 ? unpinned : 0, o.pin_dir);
	return SU_EXIT_OK;
}
