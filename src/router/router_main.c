/* softunicast router: load the XDP router on a DC's edge, keep its maps in
 * step with the plan (SIGHUP, file change), detach on exit unless told to
 * persist.  `router stats` and `router detach` are in router_stats.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "cli/cli.h"
#include "daemon/metrics.h"
#include "daemon/sd.h"
#include "cli/node_store.h"
#include "router.skel.h"
#include "router/router.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif

struct router_opts {
	const char *plan_path;
	const char *dc;
	const char *iface[SU_META_IFACES]; /* edge, backbone (optional) */
	const char *pin_dir;
	const char *metrics; /* ADDR:PORT of the Prometheus endpoint, or NULL */
	char pin_buf[PATH_MAX];
	uint32_t xdp_flags;
	uint16_t gue_port;
	uint32_t icmp_rate;      /* frag-needed answers per second per CPU */
	uint32_t frags_per_cpu;  /* fragment table: datagrams in flight per CPU */
	bool persist, once, force;
	struct node_store_flags store; /* --store: the plan comes from a store (node_store.c) */
};

#define router_log(...) cli_log("router", __VA_ARGS__)
#define router_warn(...) cli_warn("router", __VA_ARGS__) /* syslog priority 4 */

static void router_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s router (--plan PLAN | --store URL) --dc DC --iface IFACE [--backbone-iface IFACE]\n"
		"                   [--mode native|skb] [--gue-port PORT] [--pin-dir DIR]\n"
		"                   [--icmp-rate N] [--frag-table N] [--persist] [--once] [--force]\n"
		"                   [--metrics ADDR:PORT]\n"
		"       %s router stats --dc DC [--plan PLAN] [--pin-dir DIR] [--json]\n"
		"       %s router detach --dc DC [--pin-dir DIR]\n\n"
		"Runs the soft-unicast router of data center DC: attaches an XDP program to\n"
		"IFACE (and to the backbone interface) that looks at every IPv4 packet whose\n"
		"destination is an egress IP of PLAN:\n"
		"  - IP owned by another DC: encapsulated to that DC's router;\n"
		"  - IP owned by DC: destination port -> slice -> encapsulated to the server\n"
		"    owning the slice (draining slices still go to their old owner);\n"
		"  - ICMP errors go by the packet they quote (its source port or echo\n"
		"    identifier), echo replies by identifier, non-first fragments follow\n"
		"    their first fragment;\n"
		"  - GUE from another DC's router of the plan is decapsulated and dispatched\n"
		"    here, never sent on to a third DC (counted as drop_loop);\n"
		"  - egress IPs carry return traffic only: TCP SYN without ACK and TCP with\n"
		"    neither ACK nor RST are refused (drop_unsolicited_syn, drop_tcp_no_ack);\n"
		"    UDP is refused by the servers' decapsulator, which has the sockets;\n"
		"  - GUE addressed past this router and packets from its own address are\n"
		"    dropped (drop_gue_injected, drop_spoof_self): no injection from outside;\n"
		"  - a DC server, egress IP of this DC or peer router as source is accepted\n"
		"    only on the interface the routes reach it through (drop_spoof_server,\n"
		"    drop_spoof_egress, drop_spoof_router);\n"
		"  - packets to unowned slices, of other protocols or malformed are counted\n"
		"    by reason and dropped.  Anything else passes to the kernel untouched.\n"
		"Encapsulation is GUE variant 1 (IPv4 in UDP, decapsulated by the kernel's\n"
		"fou or the agent), from this DC's router address in the plan, next hop from\n"
		"the kernel's routing and neighbour tables.  A packet too big for the next\n"
		"hop once encapsulated (28 bytes more), or than a tunnel MTU learnt from ICMP\n"
		"about our own GUE, is answered with ICMP fragmentation needed if DF is set\n"
		"(never about later fragments or ICMP errors), else dropped.  Keep the DC\n"
		"network and backbone MTU >= edge MTU + 28.\n\n"
		"The maps are sized from PLAN at start (half again as headroom) and pinned\n"
		"under DIR (default %s/DC), so a restarted router reuses\n"
		"them; pins that do not fit are replaced once the new program is attached.\n"
		"SIGHUP, or a new version of PLAN (atomic rename or rewrite), applies the\n"
		"plan fully or not at all: one that does not fit the maps is refused before\n"
		"anything changes; each changed IP switches atomically, no packet is dropped.\n"
		"Before attaching, the interfaces are checked: 802.1Q tags stripped by the\n"
		"NIC with VLANs on top, a veth MTU too large for native XDP, next hops that\n"
		"cannot take XDP redirects (a bridge) refuse to start; GRO in skb mode and TX\n"
		"checksum offload on a veth peer are turned off and logged; RSS hashing UDP\n"
		"on addresses only is warned about (see softunicast-router(1)).\n"
		"On SIGINT or SIGTERM the program is detached, unless --persist: then it keeps\n"
		"forwarding with the last plan after the process exits, and the next start\n"
		"replaces it without a gap.\n\n"
		"Options:\n"
		"  -p, --plan PLAN            plan snapshot (softunicast plan)\n"
		"      --store URL            follow a store instead: read only this DC's view,\n"
		"                             apply each committed version, keep the last good\n"
		"                             one across store outages and restarts\n"
		"  -d, --dc DC                this data center's name in the plan\n"
		"  -i, --iface IFACE          edge interface (Internet and DC network)\n"
		"  -b, --backbone-iface IFACE interface toward the other DCs' routers\n"
		"  -m, --mode MODE            native (driver XDP, default) or skb (generic)\n"
		"  -g, --gue-port PORT        GUE UDP destination port (default %d)\n"
		"  -P, --pin-dir DIR          where the maps are pinned (on bpffs)\n"
		"      --icmp-rate N          ICMP fragmentation-needed answers per second per\n"
		"                             CPU, also the burst (default %d; 0: never answer)\n"
		"      --frag-table N         first fragments remembered per CPU so later\n"
		"                             fragments follow them (default %d; the table\n"
		"                             holds N x possible CPUs, about 100 bytes each)\n"
		"      --persist              leave the program attached on exit\n"
		"      --once                 load, attach, sync and exit (implies --persist)\n"
		"      --force                replace an XDP program that is not a router's\n"
		"      --metrics ADDR:PORT    serve Prometheus metrics on http://ADDR:PORT/metrics\n"
		"                             (counters by outcome and drop reason, per-target\n"
		"                             packets and bytes, plan serial); :PORT for all\n"
		"                             addresses, [IPv6]:PORT\n"
		"  -h, --help\n"
		NODE_STORE_USAGE "\n"
		"stats: per-reason counters (outcomes: every packet counts in exactly one;\n"
		"info: paths taken) and packets/bytes forwarded per target, named from PLAN\n"
		"if given.  --json for scripts.\n"
		"detach: removes the program from the interfaces it was attached to and the\n"
		"pinned maps.  Forwarding for DC's egress IPs stops.\n\n"
		"Needs: root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN for bpffs), IPv4\n"
		"forwarding on the interfaces (net.ipv4.conf.IFACE.forwarding=1, the next-hop\n"
		"lookup refuses otherwise).  See softunicast-router(1).\n\n"
		"Exit status: 0 ok, 1 runtime failure, 2 usage, 3 invalid plan, 5 DC not in\n"
		"the plan or (stats, detach) no router pinned.\n",
		su_prog, su_prog, su_prog, SU_ROUTER_PIN_ROOT, SU_GUE_PORT_DEFAULT,
		SU_ICMP_RATE_DEFAULT, SU_FRAGS_PER_CPU);
}

int su_router__default_pin_dir(const char *dc, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", SU_ROUTER_PIN_ROOT, dc);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool is_bpffs(const char *path)
{
	struct statfs st;

	return !statfs(path, &st) && st.f_type == BPF_FS_MAGIC;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

int su_router__pin_dir(const char *dir, struct su_err *err)
{
	int rc;

	/* Pins live only on a bpffs; systemd mounts one at /sys/fs/bpf, minimal
	 * systems and containers often do not. */
	if (!strncmp(dir, "/sys/fs/bpf/", 12) && !is_bpffs("/sys/fs/bpf")) {
		if (mkdir("/sys/fs/bpf", 0700) && errno != EEXIST)
			return su_err__set(err, errno, "mkdir /sys/fs/bpf: %s", strerror(errno));
		if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"))
			return su_err__set(err, errno, "mounting bpffs on /sys/fs/bpf: %s",
					   strerror(errno));
	}
	rc = mkdir_p(dir, 0700);
	if (rc)
		return su_err__set(err, -rc, "mkdir %s: %s", dir, strerror(-rc));
	if (!is_bpffs(dir))
		return su_err__set(err, ENOTSUP, "%s is not on a bpf filesystem", dir);
	return 0;
}

static int parse_mode(const char *s, uint32_t *flags)
{
	if (!strcmp(s, "native") || !strcmp(s, "drv"))
		*flags = XDP_FLAGS_DRV_MODE;
	else if (!strcmp(s, "skb") || !strcmp(s, "generic"))
		*flags = XDP_FLAGS_SKB_MODE;
	else
		return cli_fail(SU_EXIT_USAGE, "router", "--mode '%s': expected native or skb", s);
	return 0;
}

static int parse_port(const char *s, uint16_t *out)
{
	uint64_t v;

	if (cli_parse_uint("router", "--gue-port", s, 1, 65535, &v))
		return SU_EXIT_USAGE;
	*out = (uint16_t)v;
	return 0;
}

/* A count option in [lo, hi], named in the error. */
static int parse_count(const char *opt, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v;

	if (cli_parse_uint("router", opt, s, lo, hi, &v))
		return SU_EXIT_USAGE;
	*out = (uint32_t)v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct router_opts *o)
{
	static const struct option longopts[] = {
		{ "plan", 1, 0, 'p' },	  { "dc", 1, 0, 'd' },	     { "iface", 1, 0, 'i' },
		{ "backbone-iface", 1, 0, 'b' }, { "mode", 1, 0, 'm' }, { "gue-port", 1, 0, 'g' },
		{ "pin-dir", 1, 0, 'P' }, { "persist", 0, 0, 'K' }, { "once", 0, 0, 'O' },
		{ "force", 0, 0, 'F' },	  { "help", 0, 0, 'h' },     { "metrics", 1, 0, 'M' },
		{ "icmp-rate", 1, 0, 'R' }, { "frag-table", 1, 0, 'T' }, NODE_STORE_OPTIONS, { 0 }
	};
	int c, rc;

	memset(o, 0, sizeof(*o));
	o->xdp_flags = XDP_FLAGS_DRV_MODE;
	o->gue_port = SU_GUE_PORT_DEFAULT;
	o->icmp_rate = SU_ICMP_RATE_DEFAULT;
	o->frags_per_cpu = SU_FRAGS_PER_CPU;
	while ((c = getopt_long(argc, argv, "p:d:i:b:m:g:P:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': o->plan_path = optarg; break;
		case 'd': o->dc = optarg; break;
		case 'i': o->iface[0] = optarg; break;
		case 'b': o->iface[1] = optarg; break;
		case 'm': if ((rc = parse_mode(optarg, &o->xdp_flags))) return rc; break;
		case 'g': if ((rc = parse_port(optarg, &o->gue_port))) return rc; break;
		case 'P': o->pin_dir = optarg; break;
		case 'K': o->persist = true; break;
		case 'O': o->once = o->persist = true; break;
		case 'F': o->force = true; break;
		case 'M':
			if (su_metrics__parse(optarg, &(struct sockaddr_storage){ 0 }))
				return cli_fail(SU_EXIT_USAGE, "router", "--metrics '%s': expected IPv4:PORT, "
						"[IPv6]:PORT or :PORT", optarg);
			o->metrics = optarg;
			break;
		case 'R':
			if ((rc = parse_count("--icmp-rate", optarg, 0, 1000000, &o->icmp_rate)))
				return rc;
			break;
		case 'T':
			if ((rc = parse_count("--frag-table", optarg, 16, 1 << 20, &o->frags_per_cpu)))
				return rc;
			break;
		case 'h': router_usage(stdout); return -1;
		default:
			if ((rc = node_store__flag("router", c, optarg, &o->store)) > 0)
				break;
			if (!rc)
				router_usage(stderr);
			return SU_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_fail(SU_EXIT_USAGE, "router", "unexpected argument '%s'", argv[optind]);
	if (o->store.store.url && o->plan_path)
		return cli_fail(SU_EXIT_USAGE, "router", "--plan or --store, not both");
	if (o->store.store.url && o->dc &&
	    (rc = node_store__start("router", "router", SU_VIEW_DC, o->dc, o->dc, &o->store, 30000, &o->plan_path)))
		return rc;
	if (!o->plan_path || !o->dc || !o->iface[0])
		return cli_fail(SU_EXIT_USAGE, "router", "--plan, --dc and --iface are required "
				"(see --help)");
	if (!o->pin_dir) {
		if (su_router__default_pin_dir(o->dc, o->pin_buf, sizeof(o->pin_buf)))
			return cli_fail(SU_EXIT_USAGE, "router", "--dc '%s': name too long", o->dc);
		o->pin_dir = o->pin_buf;
	}
	return 0;
}

/* ---- the running router ---- */

#define SU_RUNNER_MAX_FRESH 16

struct runner {
	struct router_opts *o;
	struct router *skel;
	struct su_router_maps maps;
	int ifindex[SU_META_IFACES];
	uint32_t prog_id;
	struct bpf_link *redirect_err; /* xdp_redirect_err tracepoint, unless pinned */
	uint32_t shift, first, spi; /* geometry the program was loaded with */
	uint64_t serial;
	struct su_router_caps caps; /* derived from the plan at start */
	struct bpf_map *fresh[SU_RUNNER_MAX_FRESH]; /* created anew, pinned after attach */
	int n_fresh;
	struct su_plan *start_plan; /* loaded by load(), applied by the first apply_plan() */
	uint32_t roles[SU_META_IFACES]; /* last written to su_ifroles (anti-spoofing) */
};

static int prog_name_of(uint32_t id, char *name, size_t len)
{
	struct bpf_prog_info info = { 0 };
	uint32_t ilen = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id), rc;

	if (fd < 0)
		return -errno;
	rc = bpf_obj_get_info_by_fd(fd, &info, &ilen);
	close(fd);
	if (rc)
		return -errno;
	snprintf(name, len, "%s", info.name);
	return 0;
}

/* Refuses to clobber someone else's XDP program unless --force. */
static int check_slot(const struct router_opts *o, int ifindex, const char *ifname)
{
	uint32_t id = 0;
	char name[BPF_OBJ_NAME_LEN];

	if (bpf_xdp_query_id(ifindex, o->xdp_flags, &id) || !id)
		return 0;
	if (prog_name_of(id, name, sizeof(name)))
		return 0;
	if (strcmp(name, SU_ROUTER_PROG_NAME) && !o->force)
		return cli_fail(SU_EXIT_FAIL, "router", "%s already runs XDP program %u (%s); "
				"--force replaces it", ifname, id, name);
	return 0;
}

static int read_meta(int fd, struct su_meta *m)
{
	uint32_t k = 0;

	if (bpf_map_lookup_elem(fd, &k, m) || m->magic != SU_META_MAGIC)
		return -ENOENT;
	return 0;
}

static int write_meta(struct runner *r)
{
	struct su_meta m = { 0 };
	uint32_t k = 0;

	m.magic = SU_META_MAGIC;
	m.xdp_flags = r->o->xdp_flags;
	for (int i = 0; i < SU_META_IFACES; i++)
		m.ifindex[i] = r->ifindex[i];
	m.router = r->skel->rodata->cfg_router;
	m.gue_port = r->o->gue_port;
	m.slice_shift = r->shift;
	m.first_slice = r->first;
	m.slices_per_ip = r->spi;
	m.plan_serial = r->serial;
	m.loaded_at = (uint64_t)time(NULL);
	return bpf_map_update_elem(r->maps.meta, &k, &m, BPF_ANY) ? -errno : 0;
}

static int dc_index(const struct su_plan *p, const char *dc)
{
	int i = su_plan__find_dc(p, dc);

	if (i < 0)
		return cli_fail(SU_EXIT_NOTFOUND, "router", "DC '%s' is not in the plan", dc), -1;
	return i;
}

/* Anti-spoofing: tells the program which side each interface is (the
 * routes to the DC's servers and the peer routers), logged when it changes.
 * Without an answer the entries stay unknown: no check rather than drops. */
static void write_roles(struct runner *r, const struct su_plan *p, uint32_t dc)
{
	uint32_t roles[SU_META_IFACES];
	int fd = bpf_map__fd(r->skel->maps.su_ifroles), rc;

	rc = su_router__if_roles(r->ifindex, SU_META_IFACES, p, dc, roles);
	if (rc) {
		router_warn("warning: reading routes for anti-spoofing: %s (no source checks)",
			   strerror(-rc));
		return;
	}
	for (uint32_t i = 0; i < SU_META_IFACES; i++) {
		struct su_ifrole e = { .ifindex = (uint32_t)r->ifindex[i],
				       .roles = roles[i] | SU_IF_KNOWN };

		if (!r->o->iface[i])
			e = (struct su_ifrole){ 0 };
		if (r->o->iface[i] && e.roles != r->roles[i])
			router_log("%s: %s", r->o->iface[i],
				   (roles[i] & SU_IF_DC) && (roles[i] & SU_IF_BACKBONE) ?
					   "reaches the DC servers and the peer routers: which side "
					   "a packet came from cannot be told there, no anti-spoofing "
					   "of plan addresses (give the Internet an interface of its own)" :
				   roles[i] & SU_IF_DC ?
					   "DC side: sources of peer routers are refused there "
					   "(drop_spoof_router)" :
				   roles[i] & SU_IF_BACKBONE ?
					   "backbone side: sources of DC servers and egress IPs are "
					   "refused there (drop_spoof_server, drop_spoof_egress)" :
					   "Internet side: sources of DC servers, peer routers and egress "
					   "IPs are refused there (drop_spoof_*)");
		r->roles[i] = e.roles;
		if (bpf_map_update_elem(fd, &i, &e, BPF_ANY))
			router_warn("warning: writing su_ifroles: %s", strerror(errno));
	}
}

/* Loads PLAN and syncs it into the maps.  At start-up a failure is fatal;
 * on reload it is logged and the previous plan keeps routing. */
static int apply_plan(struct runner *r)
{
	struct su_router_sync_stats st;
	struct su_plan *p;
	struct su_err err;
	int dc, rc;

	if (r->start_plan) { /* loaded once at start: a big plan takes seconds */
		p = r->start_plan;
		r->start_plan = NULL;
	} else if (su_plan__load(r->o->plan_path, &p, &err)) {
		router_log("%s", err.msg);
		return SU_EXIT_INVALID;
	}
	dc = dc_index(p, r->o->dc);
	if (dc < 0) {
		su_plan__free(p);
		return SU_EXIT_NOTFOUND;
	}
	if (p->slice_shift != r->shift || p->first_slice != r->first || p->slices_per_ip != r->spi) {
		router_log("plan serial %llu changes the slicing (shift %u first %u x%u -> shift %u "
			   "first %u x%u): restart the router to apply it",
			   (unsigned long long)p->serial, r->shift, r->first, r->spi, p->slice_shift,
			   p->first_slice, p->slices_per_ip);
		su_plan__free(p);
		return SU_EXIT_INVALID;
	}
	if (htonl(p->dcs[dc].router) != r->skel->rodata->cfg_router) {
		router_log("plan serial %llu changes this DC's router address: restart the "
			   "router to apply it", (unsigned long long)p->serial);
		su_plan__free(p);
		return SU_EXIT_INVALID;
	}
	rc = su_router__sync(&r->maps, p, (uint32_t)dc, &st, &err);
	if (rc) {
		router_log("applying plan serial %llu: %s", (unsigned long long)p->serial, err.msg);
		su_plan__free(p);
		return SU_EXIT_FAIL;
	}
	r->serial = p->serial;
	write_roles(r, p, (uint32_t)dc);
	node_store__applied(p->serial);
	router_log("plan serial %llu: %u local + %u remote egress IPs (%u changed, %u removed), "
		   "%u peer routers",
		   (unsigned long long)p->serial, st.ips_local, st.ips_remote, st.ips_changed,
		   st.ips_removed, st.routers);
	su_plan__free(p);
	write_meta(r);
	return 0;
}

/* Sizes router.bpf.c leaves to the loader: the fragment tables (per-CPU
 * LRU lists, so N per CPU times the CPUs) and the CPU bits of outer IP IDs. */
static int data_path_sizes(struct runner *r)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t n;
	uint32_t bits = 0;

	if (ncpu <= 0)
		return cli_fail(SU_EXIT_FAIL, "router", "possible CPUs: %s", strerror(-ncpu));
	while ((1 << bits) < ncpu && bits < 15)
		bits++;
	r->skel->rodata->cfg_cpu_bits = bits;
	n = (uint64_t)r->o->frags_per_cpu * (uint64_t)ncpu;
	if (n > (1u << 24))
		return cli_fail(SU_EXIT_USAGE, "router", "--frag-table %u x %d CPUs: more than %u "
				"entries", r->o->frags_per_cpu, ncpu, 1u << 24);
	if (bpf_map__set_max_entries(r->skel->maps.su_frags, (uint32_t)n) ||
	    bpf_map__set_max_entries(r->skel->maps.su_frag_early, (uint32_t)n))
		return cli_fail(SU_EXIT_FAIL, "router", "sizing the fragment table: %s",
				strerror(errno));
	return 0;
}

/* Counts redirects that fail after the program returned (bridge next hops):
 * a tracepoint program.  With --persist it is pinned beside the maps, to
 * keep counting after we exit; `router detach` removes the pin with them. */
static int attach_redirect_err(struct runner *r)
{
	char path[PATH_MAX];
	struct bpf_link *link;

	snprintf(path, sizeof(path), "%s/su_redirect_err_link", r->o->pin_dir);
	unlink(path); /* a previous run's: this program replaces it */
	link = bpf_program__attach(r->skel->progs.su_redirect_err);
	if (!link) {
		/* Forwarding works without it; only the counter is missing. */
		router_warn("warning: xdp_redirect_err tracepoint not attached (%s): failed "
			   "redirects stay counted as forwarded", strerror(errno));
		return 0;
	}
	if (!r->o->persist) {
		r->redirect_err = link; /* detached with the program at exit */
		return 0;
	}
	if (bpf_link__pin(link, path))
		router_warn("warning: pinning %s: %s", path, strerror(errno));
	bpf_link__disconnect(link); /* the pin keeps it attached after we exit */
	bpf_link__destroy(link);
	return 0;
}

/* Maps whose size follows the plan. */
static const char *const plan_maps[] = { "su_ips", "su_ipv", "su_slots", "su_routers", "su_targets",
					 "su_hosts" };

static bool is_plan_map(const char *name)
{
	for (size_t i = 0; i < sizeof(plan_maps) / sizeof(plan_maps[0]); i++)
		if (!strcmp(name, plan_maps[i]))
			return true;
	return false;
}

static uint32_t cap_of(const struct su_router_caps *c, const char *name)
{
	return !strcmp(name, "su_ips") || !strcmp(name, "su_ipv") ? c->ips :
	       !strcmp(name, "su_slots")   ? c->slots :
	       !strcmp(name, "su_routers") ? c->routers :
	       !strcmp(name, "su_hosts")   ? c->targets : /* servers + peer routers */
					     c->targets;
}

/* Is the pinned map at path one this object can use as is?  A plan map
 * is reused when it holds at least the capacity wanted and at most four
 * times it (a bigger one is replaced, so per-CPU memory follows the DC);
 * then the object's definition takes its size.  Anything else (another
 * layout, other flags, too small) is replaced. */
static bool pinned_fits(struct bpf_map *m, const char *path, bool resize)
{
	struct bpf_map_info info = { 0 };
	uint32_t len = sizeof(info), want = bpf_map__max_entries(m);
	int fd = bpf_obj_get(path);
	bool ok;

	if (fd < 0)
		return true; /* nothing pinned: libbpf creates and pins it */
	ok = !bpf_obj_get_info_by_fd(fd, &info, &len) && info.type == bpf_map__type(m) &&
	     info.key_size == bpf_map__key_size(m) && info.value_size == bpf_map__value_size(m) &&
	     info.map_flags == bpf_map__map_flags(m);
	close(fd);
	if (ok && resize && info.max_entries >= want && info.max_entries / 4 <= want)
		return !bpf_map__set_max_entries(m, info.max_entries);
	return ok && info.max_entries == want;
}

/* Sizes the maps for plan p and decides, map by map, whether the pinned
 * one of a previous run is reused.  One that is not is created unpinned
 * and only replaces the pin once the new program is attached (see
 * repin): until then the old program keeps forwarding with the old maps. */
static bool is_fresh(const struct runner *r, const struct bpf_map *m)
{
	for (int i = 0; i < r->n_fresh; i++)
		if (r->fresh[i] == m)
			return true;
	return false;
}

static int make_fresh(struct runner *r, struct bpf_map *m)
{
	if (r->n_fresh >= SU_RUNNER_MAX_FRESH || bpf_map__set_pin_path(m, NULL))
		return -EINVAL;
	r->fresh[r->n_fresh++] = m;
	return 0;
}

static int size_maps(struct runner *r, const struct su_plan *p, uint32_t dc, bool new_slicing)
{
	struct bpf_map *m;
	char path[PATH_MAX];
	int rc = 0;

	su_router__caps_for_plan(p, dc, &r->caps);
	/* Allocated on use and freed on replacement, not preallocated: see
	 * docs/router.md, "Plan changes", on element reuse. */
	bpf_map__set_map_flags(r->skel->maps.su_ips,
			       bpf_map__map_flags(r->skel->maps.su_ips) | BPF_F_NO_PREALLOC);
	r->n_fresh = 0;
	bpf_object__for_each_map(m, r->skel->obj) {
		const char *name = bpf_map__name(m);
		bool plan_map = is_plan_map(name);

		if (!bpf_map__pin_path(m))
			continue;
		if (plan_map && bpf_map__set_max_entries(m, cap_of(&r->caps, name)))
			return -EINVAL;
		snprintf(path, sizeof(path), "%s/%s", r->o->pin_dir, name);
		/* Slot regions and the entries pointing at them were laid out
		 * for one slicing: another one starts from empty maps. */
		if (pinned_fits(m, path, plan_map) &&
		    !(new_slicing && (!strcmp(name, "su_ips") || !strcmp(name, "su_ipv") ||
				      !strcmp(name, "su_slots"))))
			continue;
		if ((rc = make_fresh(r, m)))
			return rc;
	}
	/* su_ips holds indexes into su_ipv: one is reused only with the other. */
	if (is_fresh(r, r->skel->maps.su_ips) != is_fresh(r, r->skel->maps.su_ipv))
		rc = make_fresh(r, is_fresh(r, r->skel->maps.su_ips) ? r->skel->maps.su_ipv :
									 r->skel->maps.su_ips);
	return rc;
}

/* Replaces the pins of the maps created afresh, once the program using
 * them is attached: pin under a temporary name, rename over the old pin
 * (bpffs renames atomically).  The old maps are freed with their last
 * user, the old program. */
static int repin(struct runner *r)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];

	for (int i = 0; i < r->n_fresh; i++) {
		struct bpf_map *m = r->fresh[i];

		snprintf(path, sizeof(path), "%s/%s", r->o->pin_dir, bpf_map__name(m));
		snprintf(tmp, sizeof(tmp), "%s_new", path); /* bpffs refuses dots */
		unlink(tmp);
		if (bpf_obj_pin(bpf_map__fd(m), tmp) || rename(tmp, path))
			return cli_fail(SU_EXIT_FAIL, "router", "pinning %s: %s", path,
					strerror(errno));
	}
	if (r->n_fresh)
		router_log("%d map%s resized or re-created and re-pinned in %s", r->n_fresh,
			   r->n_fresh > 1 ? "s" : "", r->o->pin_dir);
	return 0;
}

static void log_memory(struct runner *r)
{
	const struct {
		const char *name;
		struct bpf_map *m;
	} maps[] = { { "ips", r->skel->maps.su_ips },
		     { "slots", r->skel->maps.su_slots },
		     { "routers", r->skel->maps.su_routers },
		     { "targets", r->skel->maps.su_targets } };
	char buf[512];
	size_t n = 0;
	uint64_t total = 0;
	struct bpf_map *m;

	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		uint64_t b = 0;
		uint32_t cap = 0;

		su_router__memlock(bpf_map__fd(maps[i].m), &b);
		su_router__map_cap(bpf_map__fd(maps[i].m), &cap);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s %u (%.0f KiB)", i ? ", " : "",
				      maps[i].name, cap, (double)b / 1024);
	}
	bpf_object__for_each_map(m, r->skel->obj) {
		uint64_t b = 0;

		if (bpf_map__fd(m) >= 0 && !su_router__memlock(bpf_map__fd(m), &b))
			total += b;
	}
	router_log("maps: %s; all maps %.1f MiB at %d possible CPUs", buf,
		   (double)total / (1 << 20), libbpf_num_possible_cpus());
}

static int load(struct runner *r)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = r->o->pin_dir);
	struct su_plan *p;
	struct su_err err;
	struct su_meta old;
	bool new_slicing = false;
	int dc, rc, fd;
	char path[PATH_MAX];

	if (su_plan__load(r->o->plan_path, &p, &err))
		return cli_fail(SU_EXIT_INVALID, "router", "%s", err.msg);
	dc = dc_index(p, r->o->dc);
	rc = dc < 0 ? SU_EXIT_NOTFOUND : 0;
	if (!rc && su_router__check_plan(p, (uint32_t)dc, &err))
		rc = cli_fail(SU_EXIT_INVALID, "router", "%s", err.msg);
	if (!rc)
		rc = su_router__start_checks(r->o->iface, r->ifindex, SU_META_IFACES,
					     r->o->xdp_flags, p, (uint32_t)dc);
	if (rc) {
		su_plan__free(p);
		return rc;
	}
	r->shift = p->slice_shift;
	r->first = p->first_slice;
	r->spi = p->slices_per_ip;

	if (su_router__pin_dir(r->o->pin_dir, &err)) {
		su_plan__free(p);
		return cli_fail(SU_EXIT_FAIL, "router", "%s", err.msg);
	}
	snprintf(path, sizeof(path), "%s/su_meta", r->o->pin_dir);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		rc = read_meta(fd, &old);
		close(fd);
		new_slicing = !rc && (old.slice_shift != r->shift || old.first_slice != r->first ||
				      old.slices_per_ip != r->spi);
		if (new_slicing)
			router_log("the pinned maps in %s use another slicing: new ones replace "
				   "them once this router is attached", r->o->pin_dir);
	}

	r->skel = router__open_opts(&oo);
	if (!r->skel) {
		su_plan__free(p);
		return cli_fail(SU_EXIT_FAIL, "router", "opening the BPF object: %s", strerror(errno));
	}
	r->skel->rodata->cfg_router = htonl(p->dcs[dc].router);
	r->skel->rodata->cfg_gue_port = htons(r->o->gue_port);
	r->skel->rodata->cfg_slice_shift = r->shift;
	r->skel->rodata->cfg_first_slice = r->first;
	r->skel->rodata->cfg_slices_per_ip = r->spi;
	r->skel->rodata->cfg_icmp_rate = r->o->icmp_rate;
	rc = data_path_sizes(r);
	if (rc) {
		su_plan__free(p);
		return rc;
	}
	rc = size_maps(r, p, (uint32_t)dc, new_slicing);
	r->start_plan = p; /* the first apply_plan() takes it */
	if (rc)
		return cli_fail(SU_EXIT_FAIL, "router", "sizing the maps: %s", strerror(-rc));
	rc = router__load(r->skel);
	if (rc)
		return cli_fail(SU_EXIT_FAIL, "router", "loading the XDP program: %s (pinned maps "
				"from another version? '%s router detach --dc %s' removes them)",
				strerror(-rc), su_prog, r->o->dc);
	r->maps.ips = bpf_map__fd(r->skel->maps.su_ips);
	r->maps.ipv = bpf_map__fd(r->skel->maps.su_ipv);
	r->maps.slots = bpf_map__fd(r->skel->maps.su_slots);
	r->maps.routers = bpf_map__fd(r->skel->maps.su_routers);
	r->maps.meta = bpf_map__fd(r->skel->maps.su_meta);
	r->maps.targets = bpf_map__fd(r->skel->maps.su_targets);
	r->maps.hosts = bpf_map__fd(r->skel->maps.su_hosts);
	return 0;
}

/* Attaches fd to interface i, replacing exactly the program seen there
 * (XDP_FLAGS_REPLACE with its fd: the kernel swaps atomically, a restart
 * loses no packet) or, if there was none, only if there still is none: a
 * router started in between is never clobbered (EEXIST). */
static int attach_one(struct runner *r, int i, int fd)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts);
	uint32_t id = 0;
	int old = -1, rc;

	if (!bpf_xdp_query_id(r->ifindex[i], r->o->xdp_flags, &id) && id)
		old = bpf_prog_get_fd_by_id(id);
	if (old >= 0)
		opts.old_prog_fd = old;
	rc = bpf_xdp_attach(r->ifindex[i], fd,
			    r->o->xdp_flags | (old >= 0 ? 0 : XDP_FLAGS_UPDATE_IF_NOEXIST), &opts);
	if (old >= 0)
		close(old);
	return rc;
}

static int attach(struct runner *r)
{
	int fd = bpf_program__fd(r->skel->progs.su_router);
	struct bpf_prog_info info = { 0 };
	uint32_t len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return cli_fail(SU_EXIT_FAIL, "router", "prog info: %s", strerror(errno));
	r->prog_id = info.id;
	attach_redirect_err(r);
	for (int i = 0; i < SU_META_IFACES; i++) {
		const char *name = r->o->iface[i];
		int rc;

		if (!name)
			continue;
		if ((rc = check_slot(r->o, r->ifindex[i], name)))
			return rc;
		rc = attach_one(r, i, fd);
		if (rc) {
			char hint[512];

			return cli_fail(SU_EXIT_FAIL, "router", "attaching XDP (%s mode) to %s: %s%s",
					r->o->xdp_flags & XDP_FLAGS_SKB_MODE ? "skb" : "native",
					name, strerror(-rc),
					su_router__attach_hint(name, rc, r->o->xdp_flags, hint,
							       sizeof(hint)));
		}
	}
	return 0;
}

static void detach(struct runner *r)
{
	int fd = bpf_program__fd(r->skel->progs.su_router);

	for (int i = 0; i < SU_META_IFACES; i++) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = fd);
		uint32_t id = 0;

		if (!r->ifindex[i] || bpf_xdp_query_id(r->ifindex[i], r->o->xdp_flags, &id) ||
		    id != r->prog_id)
			continue;
		/* Only our own program, by fd: the kernel refuses (EEXIST) if a
		 * newer router replaced it since the query. */
		bpf_xdp_detach(r->ifindex[i], r->o->xdp_flags, &opts);
	}
}

static int watch_plan(const char *path)
{
	char dup[PATH_MAX];
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

	snprintf(dup, sizeof(dup), "%s", path);
	if (fd < 0)
		return -1;
	/* The directory, not the file: `plan --out` replaces it by rename. */
	if (inotify_add_watch(fd, dirname(dup), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool plan_touched(int fd, const char *path)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	char dup[PATH_MAX];
	const char *base;
	bool hit = false;
	ssize_t n;

	snprintf(dup, sizeof(dup), "%s", path);
	base = basename(dup);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (ev->len && !strcmp(ev->name, base))
				hit = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	return hit;
}

/* A reload tells systemd it is reloading, then ready again with the serial
 * in force (the old one when the new plan was refused). */
static void reload(struct runner *r)
{
	su_sd__reloading();
	apply_plan(r);
	su_sd__ready("plan serial %llu applied", (unsigned long long)r->serial);
}

static int run_loop(struct runner *r)
{
	struct pollfd pfd[3] = { { .events = POLLIN }, { .events = POLLIN }, { .events = POLLIN } };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pfd[0].fd = signalfd(-1, &set, SFD_CLOEXEC);
	pfd[1].fd = watch_plan(r->o->plan_path);
	if (pfd[0].fd < 0)
		return cli_fail(SU_EXIT_FAIL, "router", "signalfd: %s", strerror(errno));
	if (pfd[1].fd < 0)
		router_log("not watching %s (%s): SIGHUP still reloads", r->o->plan_path,
			   strerror(errno));
	pfd[2].fd = su_sd__watchdog_fd();
	for (;;) {
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(pfd[0].fd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo != SIGHUP)
				break;
			router_log("SIGHUP: reloading %s", r->o->plan_path);
			reload(r);
		}
		if (pfd[1].fd >= 0 && (pfd[1].revents & POLLIN) &&
		    plan_touched(pfd[1].fd, r->o->plan_path)) {
			router_log("%s changed: reloading", r->o->plan_path);
			reload(r);
		}
		if (pfd[2].fd >= 0 && (pfd[2].revents & POLLIN))
			su_sd__watchdog_ping(pfd[2].fd);
	}
	su_sd__stopping();
	close(pfd[0].fd);
	if (pfd[2].fd >= 0)
		close(pfd[2].fd);
	if (pfd[1].fd >= 0)
		close(pfd[1].fd);
	return 0;
}

static int router_run(struct router_opts *o)
{
	struct runner r = { .o = o };
	struct su_metrics *metrics = NULL;
	struct su_err err;
	sigset_t set;
	int rc, lock = -1;

	for (int i = 0; i < SU_META_IFACES; i++) {
		if (!o->iface[i])
			continue;
		r.ifindex[i] = (int)if_nametoindex(o->iface[i]);
		if (!r.ifindex[i])
			return cli_fail(SU_EXIT_USAGE, "router", "interface '%s': %s", o->iface[i],
					strerror(errno));
	}
	/* Blocked before anything is attached, so a signal can never kill us
	 * between attach and the loop that detaches. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);

	/* Bound first: a taken port fails the start before anything changes. */
	if (o->metrics && !o->once &&
	    (rc = su_metrics__start(o->metrics, router_metrics__render, (void *)o->pin_dir, &metrics, &err))) {
		rc = cli_fail(SU_EXIT_FAIL, "router", "%s", err.msg);
		goto cleanup;
	}
	rc = load(&r);
	if (rc)
		goto cleanup;
	/* Two routers syncing the same maps would hand out the same spare
	 * slot regions: one per DC (per pin directory) at a time. */
	lock = open(o->pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB)) {
		rc = cli_fail(SU_EXIT_FAIL, "router", "another router is running on %s (%s)",
			      o->pin_dir, strerror(errno));
		goto cleanup;
	}
	/* Maps first, program second: it never sees a half-filled plan. */
	rc = apply_plan(&r);
	if (rc)
		goto cleanup;
	rc = attach(&r);
	if (rc) {
		detach(&r);
		goto cleanup;
	}
	rc = repin(&r);
	if (rc)
		goto cleanup;
	write_meta(&r);
	log_memory(&r);
	router_log("attached to %s%s%s (%s mode), pinned in %s%s", o->iface[0],
		   o->iface[1] ? " and " : "", o->iface[1] ? o->iface[1] : "",
		   o->xdp_flags & XDP_FLAGS_SKB_MODE ? "skb" : "native", o->pin_dir,
		   o->persist ? ", persistent" : "");
	if (o->once)
		goto cleanup;
	su_sd__ready("plan serial %llu applied, forwarding", (unsigned long long)r.serial);
	rc = run_loop(&r);
	if (!o->persist) {
		detach(&r);
		router_log("detached; maps stay pinned in %s", o->pin_dir);
	} else {
		router_log("exiting; the program stays attached (router detach removes it)");
	}
cleanup:
	su_metrics__stop(metrics);
	if (lock >= 0)
		close(lock);
	bpf_link__destroy(r.redirect_err);
	su_plan__free(r.start_plan);
	router__destroy(r.skel);
	return rc;
}

int router_main(int argc, char **argv)
{
	struct router_opts o;
	int rc;

	if (argc >= 2 && !strcmp(argv[1], "stats"))
		return router_stats_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "detach"))
		return router_detach_main(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "run")) {
		argc--;
		argv++;
	}
	rc = parse_opts(argc, argv, &o);
	if (rc)
		return rc < 0 ? SU_EXIT_OK : rc;
	rc = router_run(&o);
	node_store__stop();
	return rc;
}
