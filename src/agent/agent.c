/* softunicast agent: run (the daemon) and status. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "daemon/metrics.h"
#include "daemon/sd.h"
#include "cli/node_store.h"
#include "lib/counters.h"


static void agent_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s agent (--plan PLAN | --store URL) --server NAME --iface IFACE [OPTIONS]\n"
		"       %s agent status [--json] [--run-dir DIR]\n\n"
		"Runs the soft-unicast agent of one server until SIGINT or SIGTERM.  From the\n"
		"plan's slots owned by NAME it:\n"
		"  - adds each egress IP to IFACE as a /32;\n"
		"  - attaches an XDP program to IFACE that decapsulates GUE (IPv4 in UDP) sent\n"
		"    by this data center's router, and only by it;\n"
		"  - enforces ownership: from an egress IP leave only TCP/UDP from a source\n"
		"    port in this server's slices, ICMP echo with an identifier in them and\n"
		"    ICMP errors; everything else is dropped and counted by reason.  Two\n"
		"    layers: nftables table inet %s (output hook: the sender\n"
		"    gets an error at once, ECONNREFUSED for TCP, EPERM otherwise; egress\n"
		"    flows are untracked so conntrack/NAT never rewrite their ports) and a\n"
		"    tc egress BPF program on IFACE that raw and packet sockets meet too;\n"
		"  - keeps the egress IPs off the LAN: ARP requests for them go unanswered\n"
		"    (table arp %s), arp_announce is 2 on IFACE;\n"
		"  - sets net.ipv4.tcp_tw_reuse to 1, so connections to one destination closed\n"
		"    by this side can reuse ports held in TIME_WAIT (see docs/agent.md);\n"
		"  - publishes the assignment (IP, slice, tags, state) to applications in\n"
		"    DIR/assignment, replaced atomically, with shared counters beside it.\n"
		"  - widens net.ipv4.ip_local_port_range to cover its slices when they lie\n"
		"    outside it (the kernel ignores a socket's IP_LOCAL_PORT_RANGE outside the\n"
		"    host range) and reserves every port so gained that is not a slice port\n"
		"    (net.ipv4.ip_local_reserved_ports): the host's own connections keep the\n"
		"    ports they had, plus this server's slice ports.\n"
		"SIGHUP, or a new version of PLAN (atomic rename or rewrite), applies the new\n"
		"plan: slices kept stay untouched, so their live connections continue.  A\n"
		"plan where NAME is retired (gone from the fleet) or its slices draining is\n"
		"applied too: those slices take no new connections, live ones continue until\n"
		"the deadline, then the agent removes their egress state and logs it.  On\n"
		"exit, everything above is undone; an agent killed without that chance is\n"
		"cleaned up after by the next one, from STATE/NAME@NETNS.json and from the\n"
		"host itself (its /32s carry address protocol 0x53; tc and XDP programs and\n"
		"nft tables are found by name).  Several agents on one host (network\n"
		"namespaces, containers) need one --run-dir and one IFACE each; they may\n"
		"share STATE (records are per server and network namespace).\n\n"
		"Options:\n"
		"  -p, --plan PLAN       plan snapshot (softunicast plan)\n"
		"  -s, --server NAME     this server's name in the plan\n"
		"  -i, --iface IFACE     interface facing the router (addresses, XDP)\n"
		"  -d, --run-dir DIR     where to publish (default %s);\n"
		"                        its parent must exist\n"
		"  -S, --state-dir STATE crash-recovery record, kept across reboots and a wiped\n"
		"                        run dir (default %s, made if missing;\n"
		"                        a given STATE's parent must exist)\n"
		"  -g, --gue-port PORT   GUE UDP destination port (default 6080)\n"
		"      --no-decap        no XDP program (the kernel's fou decapsulates)\n"
		"      --no-enforce      no ownership enforcement (nftables table, tc program)\n"
		"      --no-sysctl       leave arp_announce, tcp_tw_reuse and the port range\n"
		"                        alone (libsoftunicast then binds explicit ports in\n"
		"                        slices outside the host range: slower when full)\n"
		"      --metrics ADDR:PORT  serve Prometheus metrics on http://ADDR:PORT/metrics:\n"
		"                        per slice the ports in use and the library's counters,\n"
		"                        the busiest destinations per slice, blocked packets,\n"
		"                        decap counters; :PORT for all addresses\n"
		"      --metrics-top N   busiest (slice, destination IP:port) pairs in the\n"
		"                        metrics (default 10, at most 1000)\n"
		"      --store URL       follow a store instead of --plan: read only this\n"
		"                        server's view, apply each committed version, keep the\n"
		"                        last good one across store outages and restarts\n"
		CLI_STORE_USAGE
		"                        (with --store, --state-dir also keeps the last good\n"
		"                        view: a restart without the store runs on it)\n"
		"  -h, --help\n\n"
		"status: per slice, the ports in use (sock_diag), the busiest destination's\n"
		"share of the slice (a WARNING at 80%%: connects to it fail at 100%%), sockets\n"
		"connected and allocation failures counted by libsoftunicast, packets blocked by\n"
		"the ownership rule (per reason for the tc layer), the decapsulator's counters\n"
		"and, for a retired server, its drain.  --json for machines.\n\n"
		"Exit status: 0 ok, 1 runtime failure (also a missing path, another agent),\n"
		"2 usage, 3 invalid plan, 5 server not in the plan (neither in the fleet nor\n"
		"retired) or (status) no agent published.\n",
		su_prog, su_prog, AGENT_NFT_TABLE, AGENT_NFT_TABLE, SU_ASSIGNMENT_DIR,
		AGENT_STATE_DIR);
}

enum { OPT_NO_DECAP = 256, OPT_NO_ENFORCE, OPT_NO_SYSCTL, OPT_METRICS, OPT_METRICS_TOP };

static int parse_port(const char *s, uint16_t *out)
{
	uint64_t v;

	if (cli_parse_uint("agent", "port", s, 1, 65535, &v))
		return SU_EXIT_USAGE;
	*out = (uint16_t)v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct agent_opts *o)
{
	static const struct option lo[] = {
		{ "plan", 1, 0, 'p' },	   { "server", 1, 0, 's' }, { "iface", 1, 0, 'i' },
		{ "run-dir", 1, 0, 'd' },  { "gue-port", 1, 0, 'g' }, { "state-dir", 1, 0, 'S' },
		{ "no-decap", 0, 0, OPT_NO_DECAP }, { "no-enforce", 0, 0, OPT_NO_ENFORCE },
		{ "no-sysctl", 0, 0, OPT_NO_SYSCTL }, { "help", 0, 0, 'h' },
		{ "metrics", 1, 0, OPT_METRICS }, { "metrics-top", 1, 0, OPT_METRICS_TOP }, NODE_STORE_OPTIONS, { 0 },
	};
	static struct node_store_flags store; /* --store: node_store.c follows it */
	uint64_t top;
	int c;

	*o = (struct agent_opts){ .run_dir = SU_ASSIGNMENT_DIR, .state_dir = AGENT_STATE_DIR,
				  .state_dir_default = true, .gue_port = 6080, .decap = true,
				  .enforce = true, .sysctl = true, .metrics_top = 10 };
	while ((c = getopt_long(argc, argv, "p:s:i:d:S:g:h", lo, NULL)) != -1) {
		switch (c) {
		case 'p': o->plan = optarg; break;
		case 's': o->server = optarg; break;
		case 'i': o->iface = optarg; break;
		case 'd': o->run_dir = optarg; break;
		case 'S':
			/* One state directory: the recovery record and, with
			 * --store, the last good view live side by side. */
			o->state_dir = optarg;
			o->state_dir_default = false;
			store.state_dir = optarg;
			break;
		case 'g':
			if (parse_port(optarg, &o->gue_port))
				return SU_EXIT_USAGE;
			break;
		case OPT_NO_DECAP: o->decap = false; break;
		case OPT_NO_ENFORCE: o->enforce = false; break;
		case OPT_NO_SYSCTL: o->sysctl = false; break;
		case OPT_METRICS:
			if (su_metrics__parse(optarg, &(struct sockaddr_storage){ 0 }))
				return cli_fail(SU_EXIT_USAGE, "agent", "--metrics '%s': expected IPv4:PORT, "
						"[IPv6]:PORT or :PORT", optarg);
			o->metrics = optarg;
			break;
		case OPT_METRICS_TOP:
			if (cli_parse_uint("agent", "--metrics-top", optarg, 0, 1000, &top))
				return SU_EXIT_USAGE;
			o->metrics_top = (uint32_t)top;
			break;
		case 'h':
			agent_usage(stdout);
			return SU_EXIT_OK;
		default:
			if ((c = node_store__flag("agent", c, optarg, &store)) > 0)
				break;
			if (!c)
				agent_usage(stderr);
			return SU_EXIT_USAGE;
		}
	}
	if (store.store.url && o->plan)
		return cli_fail(SU_EXIT_USAGE, "agent", "--plan or --store, not both");
	if (store.store.url && o->server && o->iface &&
	    (c = node_store__start("agent", "agent", SU_VIEW_SERVER, o->server, NULL, &store, 30000, &o->plan)))
		return c;
	if (optind != argc || !o->plan || !o->server || !o->iface) {
		agent_usage(stderr);
		return cli_fail(SU_EXIT_USAGE, "agent", "--plan, --server and --iface are required");
	}
	return -1;
}

int agent_main(int argc, char **argv)
{
	struct agent_opts o;
	int rc;

	if (argc > 1 && !strcmp(argv[1], "status"))
		return agent_status_main(argc - 1, argv + 1);
	rc = parse_opts(argc, argv, &o);
	if (rc >= 0)
		return rc;
	return agent_run(&o);
}

/* ---- host state ------------------------------------------------------- */

static int announce_path(const struct agent *a, char *buf, size_t size)
{
	if ((size_t)snprintf(buf, size, "/proc/sys/net/ipv4/conf/%s/arp_announce", a->o.iface) >=
	    size)
		return -ENAMETOOLONG;
	return 0;
}

/* arp_announce 2: ARP requests the server sends carry its own address, never
 * a shared egress IP (which would teach the neighbours that the IP lives
 * here, while it lives on every server of the DC). */
static int set_announce(struct agent *a)
{
	char path[128];
	FILE *f;
	int cur = -1;

	if (!a->o.sysctl || announce_path(a, path, sizeof(path)) || !(f = fopen(path, "re")))
		return 0; /* no such knob: nothing to protect */
	if (fscanf(f, "%d", &cur) != 1)
		cur = -1;
	fclose(f);
	if (cur < 0 || cur >= 2)
		return 0;
	if (a->saved_announce < 0)
		a->saved_announce = cur;
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fputs("2\n", f);
	return fclose(f) ? -errno : 0;
}

static void restore_announce(struct agent *a)
{
	char path[128];
	FILE *f;

	if (a->saved_announce < 0 || announce_path(a, path, sizeof(path)))
		return;
	f = fopen(path, "we");
	if (f) {
		fprintf(f, "%d\n", a->saved_announce);
		fclose(f);
	}
	a->saved_announce = -1;
}

#define TW_REUSE_SYSCTL "/proc/sys/net/ipv4/tcp_tw_reuse"

/* Churn to one destination with client-side close (HTTP/1.0, health checks)
 * holds each 4-tuple in TIME_WAIT for 60 s: a 2048-port slice would make 2048
 * connections to an origin, then fail for a minute.  tcp_tw_reuse = 1 lets
 * connect() take over a TIME_WAIT 4-tuple once the peer's last timestamp is
 * older than tcp_tw_reuse_delay (1 s); PAWS (RFC 7323 section 5) rejects the
 * old connection's duplicates.  Debian's default 2 does it on loopback only.
 * It only affects outgoing connections (docs/agent.md: the trade-off). */
static int set_tw_reuse(struct agent *a)
{
	FILE *f;
	int cur = -1;

	if (!a->o.sysctl || !(f = fopen(TW_REUSE_SYSCTL, "re")))
		return 0; /* told not to, or no such knob */
	if (fscanf(f, "%d", &cur) != 1)
		cur = -1;
	fclose(f);
	if (cur < 0 || cur == 1)
		return 0;
	if (a->saved_tw_reuse < 0)
		a->saved_tw_reuse = cur;
	f = fopen(TW_REUSE_SYSCTL, "we");
	if (!f)
		return -errno;
	fputs("1\n", f);
	agent_log("tcp_tw_reuse %d -> 1: churn to one destination reuses TIME_WAIT ports", cur);
	return fclose(f) ? -errno : 0;
}

static void restore_tw_reuse(struct agent *a)
{
	FILE *f;

	if (a->saved_tw_reuse < 0)
		return;
	f = fopen(TW_REUSE_SYSCTL, "we");
	if (f) {
		fprintf(f, "%d\n", a->saved_tw_reuse);
		fclose(f);
	}
	a->saved_tw_reuse = -1;
}

static bool has_ip(const struct su_assignment *x, uint32_t ip)
{
	for (uint32_t i = 0; x && i < x->n; i++)
		if (x->v[i].ip == ip)
			return true;
	return false;
}

static int add_addresses(struct agent *a)
{
	uint32_t *ips, n = agent_plan__ips(a->cur, &ips);
	int rc = ips ? 0 : -ENOMEM;

	for (uint32_t i = 0; !rc && i < n; i++) {
		bool ours = false;

		for (uint32_t k = 0; k < a->n_added && !ours; k++)
			ours = a->added[k] == ips[i];
		if (ours)
			continue;
		rc = agent_addr__add(a->ifindex, ips[i]);
		if (rc == -EEXIST) { /* the operator's: leave it on stop */
			rc = 0;
			continue;
		}
		if (!rc) {
			uint32_t *v = realloc(a->added, (a->n_added + 1) * sizeof(*v));

			if (!v) {
				agent_addr__del(a->ifindex, ips[i]);
				rc = -ENOMEM;
				break;
			}
			a->added = v;
			a->added[a->n_added++] = ips[i];
		}
	}
	free(ips);
	return rc;
}

/* Addresses we added that the current assignment no longer has. */
static void drop_addresses(struct agent *a, bool all)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < a->n_added; i++) {
		if (all || !has_ip(a->cur, a->added[i]))
			agent_addr__del(a->ifindex, a->added[i]);
		else
			a->added[k++] = a->added[i];
	}
	a->n_added = k;
}


static int publish(struct agent *a, struct su_err *err)
{
	int rc = su_counters__publish(a->assignment_path, a->cur);

	if (rc)
		agent_warn("counters not published: %s", strerror(-rc));
	return su_assignment__write(a->cur, a->assignment_path, err);
}

static void unpublish(struct agent *a)
{
	char c[4200], s[4200];

	unlink(a->assignment_path);
	if (!su_counters__path(a->assignment_path, c, sizeof(c)))
		unlink(c);
	snprintf(s, sizeof(s), "%s/%s", a->o.run_dir, AGENT_STATE_NAME);
	unlink(s);
}

/* When process pid started (clock ticks after boot, proc(5) stat field 22),
 * or 0 if there is no such process: with the pid it names one process, as
 * a pid alone does not (pids are reused). */
static unsigned long long proc_start(long long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long start = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
			 "%*d %*d %*d %*d %llu", &start) != 1)
		return 0;
	return start;
}

/* This process's start time, read once (the record is written at every
 * plan apply). */
static unsigned long long own_start(void)
{
	static unsigned long long start;

	if (!start)
		start = proc_start(getpid());
	return start;
}

/* Which network namespace of which boot we run in: "BOOT_ID/COOKIE".  A
 * record written in another one describes host state we cannot see from
 * here, or that died with its namespace or the last boot.  The netns
 * cookie (SO_NETNS_COOKIE, Linux 5.14) is never reused within a boot,
 * unlike the namespace's inode number, which a namespace created later
 * may get again; the boot id tells boots apart. */
static void read_netns_id(char *buf, size_t size)
{
	char boot[40] = "?";
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (f) {
		if (!fgets(boot, sizeof(boot), f))
			snprintf(boot, sizeof(boot), "?");
		boot[strcspn(boot, "\n")] = 0;
		fclose(f);
	}
	if (fd >= 0) {
		if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len))
			cookie = 0;
		close(fd);
	}
	snprintf(buf, size, "%s/%llu", boot, (unsigned long long)cookie);
}

/* Read once: an agent never changes namespace or boot, and the record is
 * written at every plan apply. */
static void netns_id(char *buf, size_t size)
{
	static char id[80];

	if (!id[0])
		read_netns_id(id, sizeof(id));
	snprintf(buf, size, "%s", id);
}

static json_t *state_json(struct agent *a)
{
	char router[INET_ADDRSTRLEN], ns[80];
	struct in_addr in = { htonl(a->router) };
	json_t *j, *added = json_array();

	inet_ntop(AF_INET, &in, router, sizeof(router));
	netns_id(ns, sizeof(ns));
	for (uint32_t i = 0; i < a->n_added; i++) {
		char ip[INET_ADDRSTRLEN];
		struct in_addr x = { htonl(a->added[i]) };

		json_array_append_new(added, json_string(inet_ntop(AF_INET, &x, ip, sizeof(ip))));
	}
	j = json_pack("{s:i, s:s, s:s, s:s, s:i, s:s, s:I, s:s, s:i, s:b, s:b, s:I, s:o, s:i}",
		      "pid", (int)getpid(), "plan", a->o.plan, "server", a->o.server, "iface",
		      a->o.iface, "ifindex", a->ifindex, "netns", ns, "serial",
		      (json_int_t)a->cur->serial, "router", router, "gue_port", a->o.gue_port,
		      "decap", a->o.decap, "enforce", a->o.enforce, "updated",
		      (json_int_t)time(NULL), "added", added, "saved_arp_announce",
		      a->saved_announce);
	if (!j)
		return NULL;
	json_object_set_new(j, "saved_tw_reuse", json_integer(a->saved_tw_reuse));
	json_object_set_new(j, "pid_start", json_integer((json_int_t)own_start()));
	if (a->saved_range[0]) {
		json_object_set_new(j, "saved_range", json_string(a->saved_range));
		json_object_set_new(j, "saved_reserved", json_string(a->saved_reserved));
	}
	json_object_set_new(j, "retired", json_boolean(a->info.retired));
	json_object_set_new(j, "drained", json_boolean(a->info.retired && !a->cur->n));
	json_object_set_new(j, "drain_deadline", a->info.next_deadline ?
				 json_integer((json_int_t)a->info.next_deadline) : json_null());
	return j;
}

static void dump_atomic(json_t *j, const char *path)
{
	char tmp[4300];

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (!json_dump_file(j, tmp, JSON_INDENT(2)))
		rename(tmp, path);
}

/* agent.json in the run directory is for `status`; the same facts go to
 * the state directory, where a wiped run directory (systemd's
 * RuntimeDirectory=, a reboot) does not take them: "added" and
 * "saved_arp_announce" and "saved_tw_reuse" are what a restarted agent
 * needs to undo. */
static void write_state(struct agent *a)
{
	char path[4200];
	json_t *j = state_json(a);

	node_store__applied(a->cur->serial); /* --store: report what the host runs */
	if (!j)
		return;
	snprintf(path, sizeof(path), "%s/%s", a->o.run_dir, AGENT_STATE_NAME);
	dump_atomic(j, path);
	dump_atomic(j, a->record_path);
	json_decref(j);
}

static void host_down(struct agent *a)
{
	unpublish(a); /* first: applications stop picking these slices */
	if (a->nft_installed && agent_nft__remove())
		agent_warn("could not remove nftables table %s", AGENT_NFT_TABLE);
	a->nft_installed = false;
	agent_enforce__detach(a);
	agent_decap__detach(a);
	drop_addresses(a, true);
	restore_announce(a);
	restore_tw_reuse(a);
	agent_ports__undo(a);
	if (a->record_path[0]) { /* a clean stop leaves nothing to recover */
		char lock[4200];

		unlink(a->record_path);
		snprintf(lock, sizeof(lock), "%.*s.lock",
			 (int)(strlen(a->record_path) - strlen(".json")), a->record_path);
		unlink(lock);
	}
}

static int host_up(struct agent *a, struct su_err *err)
{
	int rc = set_announce(a);

	if (rc)
		return su_err__set(err, -rc, "arp_announce of %s: %s", a->o.iface, strerror(-rc));
	rc = set_tw_reuse(a);
	if (rc)
		return su_err__set(err, -rc, "%s: %s", TW_REUSE_SYSCTL, strerror(-rc));
	rc = agent_ports__fit(a);
	if (rc)
		return su_err__set(err, -rc, "fitting ip_local_port_range to the slices: %s",
				   strerror(-rc));
	rc = add_addresses(a);
	write_state(a);
	if (rc)
		return su_err__set(err, -rc, "adding egress addresses to %s: %s", a->o.iface,
				   strerror(-rc));
	if (a->o.enforce) {
		rc = agent_nft__install(a->cur, err);
		if (rc)
			return rc;
		a->nft_installed = true;
		rc = agent_enforce__attach(a);
		if (rc)
			return su_err__set(err, -rc,
					   "attaching the enforce tc program to %s egress: %s%s",
					   a->o.iface, strerror(-rc),
					   rc == -EBUSY ? " (another filter holds handle 0x5375 prio 1)" : "");
	} else if (agent_enforce__leftover(a->ifindex)) {
		agent_enforce__remove_leftover(a->ifindex);
	}
	if (a->o.decap) {
		rc = agent_decap__attach(a);
		if (rc)
			return su_err__set(err, -rc,
					   "attaching the decap XDP program to %s: %s%s",
					   a->o.iface, strerror(-rc),
					   rc == -EBUSY || rc == -EEXIST ?
						   " (another XDP program is attached)" : "");
	}
	return publish(a, err);
}

/* ---- plan (re)load ---------------------------------------------------- */

static int load(struct agent *a, struct su_plan **plan, struct su_assignment **as,
		struct agent_plan_info *info, uint32_t *router, struct su_err *err)
{
	int rc = su_plan__load(a->o.plan, plan, err);

	if (rc)
		return rc;
	info->now = (int64_t)time(NULL);
	rc = agent_plan__assignment(*plan, a->o.server, info, as, err);
	if (!rc)
		rc = agent_plan__router(*plan, a->o.server, router);
	if (rc) {
		su_plan__free(*plan);
		*plan = NULL;
	}
	return rc;
}

static void log_applied(const struct agent *a, const struct agent_plan_info *was)
{
	const struct su_assignment *as = a->cur;
	char when[32] = "";
	time_t d = (time_t)a->info.next_deadline;
	struct tm tm;

	if (d && gmtime_r(&d, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (a->info.drained)
		agent_log("%u draining slice(s) past their deadline: their egress state is removed",
			  a->info.drained);
	if (a->info.retired && !as->n) {
		if (!was->retired || was->next_deadline)
			agent_log("server %s is retired and drained (plan serial %llu): egress state "
				  "removed (no egress IPs, slices or published egress left)",
				  a->o.server, (unsigned long long)as->serial);
		return;
	}
	if (a->info.retired)
		agent_log("server %s is retired in plan serial %llu: %u slice(s) draining, no new "
			  "connections; live ones continue until %s", a->o.server,
			  (unsigned long long)as->serial, as->n, when);
	else
		agent_log("plan serial %llu: %u slice(s)%s%s", (unsigned long long)as->serial, as->n,
			  when[0] ? ", next drain deadline " : "", when);
}

/* Takes plan (unless it is a->plan) and as; on failure the host may be half
 * way between the two plans, which is said. */
static int apply(struct agent *a, struct su_plan *plan, struct su_assignment *as,
		 const struct agent_plan_info *info, uint32_t router)
{
	struct su_assignment *old = a->cur;
	struct agent_plan_info was = a->info;
	struct su_err err = { "" };
	int rc;

	a->cur = as; /* new IPs and slices are allowed before they are announced */
	a->router = router;
	rc = agent_ports__fit(a);
	if (!rc)
		rc = add_addresses(a);
	if (!rc && a->nft_installed)
		rc = agent_nft__update(as, &err);
	if (!rc)
		rc = agent_enforce__update(a);
	if (!rc)
		rc = agent_decap__update(a, plan);
	if (!rc)
		rc = publish(a, &err);
	if (rc) {
		agent_warn("applying plan serial %llu failed half-way (%s); restart the agent",
			  (unsigned long long)as->serial, err.msg[0] ? err.msg : strerror(-rc));
		a->cur = old;
		su_assignment__free(as);
		if (plan != a->plan)
			su_plan__free(plan);
		return rc;
	}
	drop_addresses(a, false); /* last: nothing uses them any more */
	if (plan != a->plan) {
		su_plan__free(a->plan);
		a->plan = plan;
	}
	su_assignment__free(old);
	a->info = *info;
	write_state(a);
	log_applied(a, &was);
	return 0;
}

static int reload(struct agent *a)
{
	struct su_plan *plan;
	struct su_assignment *as;
	struct agent_plan_info info;
	struct su_err err = { "" };
	uint32_t router;
	int rc = load(a, &plan, &as, &info, &router, &err);

	if (rc) {
		agent_warn("reload failed, keeping plan serial %llu: %s",
			  (unsigned long long)a->cur->serial, err.msg);
		return rc;
	}
	return apply(a, plan, as, &info, router);
}

/* A drain deadline passed: the same plan, without what has drained. */
static int expire(struct agent *a)
{
	struct agent_plan_info info = { .now = (int64_t)time(NULL) };
	struct su_assignment *as;
	struct su_err err = { "" };

	int rc;

	if (agent_plan__assignment(a->plan, a->o.server, &info, &as, &err)) {
		agent_log("drain deadline: %s", err.msg);
		rc = -EINVAL;
	} else {
		rc = apply(a, a->plan, as, &info, a->router);
	}
	if (rc) /* try again in a while, not in a busy loop */
		a->info.next_deadline = info.now + 5;
	return rc;
}

/* ---- main loop -------------------------------------------------------- */

static int watch_plan(const char *plan)
{
	char *dup = strdup(plan);
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

	if (fd >= 0 && dup &&
	    inotify_add_watch(fd, dirname(dup), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
		close(fd);
		fd = -1;
	}
	free(dup);
	return fd;
}

/* True when an event names the plan file (its directory is watched, since
 * an atomic replace makes a new inode). */
static bool plan_changed(int fd, const char *plan)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	char *dup = strdup(plan), *base = dup ? basename(dup) : NULL;
	bool hit = false;
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (base && ev->len && !strcmp(ev->name, base))
				hit = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	free(dup);
	return hit;
}

static int signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	return signalfd(-1, &set, SFD_CLOEXEC);
}


/* Milliseconds until the next drain deadline (poll's timeout), -1: none. */
static int until_deadline(const struct agent *a)
{
	int64_t now = (int64_t)time(NULL), d = a->info.next_deadline;

	if (!d)
		return -1;
	if (d <= now)
		return 0;
	return d - now > 86400 ? 86400 * 1000 : (int)(d - now) * 1000 + 100;
}

/* systemd sees a reload and then the serial in force (see daemon/sd.h). */
static void reload_notify(struct agent *a)
{
	su_sd__reloading();
	reload(a);
	su_sd__ready("plan serial %llu applied", (unsigned long long)a->cur->serial);
}

static void loop(struct agent *a, int sfd, int ifd)
{
	/* A negative fd is ignored by poll(2): no plan watch, no watchdog. */
	struct pollfd p[3] = { { .fd = sfd, .events = POLLIN }, { .fd = ifd, .events = POLLIN },
			       { .fd = su_sd__watchdog_fd(), .events = POLLIN } };

	for (;;) {
		struct signalfd_siginfo si;
		int n = poll(p, 3, until_deadline(a));

		if (n < 0 && errno != EINTR)
			break;
		if (p[2].revents)
			su_sd__watchdog_ping(p[2].fd);
		if (n == 0 || (a->info.next_deadline && a->info.next_deadline <= time(NULL))) {
			expire(a);
			continue;
		}
		if (p[1].revents && plan_changed(ifd, a->o.plan)) {
			agent_log("%s changed: reloading", a->o.plan);
			reload_notify(a);
		}
		if (!p[0].revents || read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGHUP) {
			agent_log("signal %u: restoring the host", si.ssi_signo);
			break;
		}
		agent_log("SIGHUP: reloading %s", a->o.plan);
		reload_notify(a);
	}
	su_sd__stopping();
	if (p[2].fd >= 0)
		close(p[2].fd);
}

/* ---- recovery --------------------------------------------------------- */

static void adopt_ip(struct agent *a, uint32_t ip)
{
	uint32_t *n;

	for (uint32_t k = 0; k < a->n_added; k++)
		if (a->added[k] == ip)
			return;
	n = realloc(a->added, (a->n_added + 1) * sizeof(*n));
	if (!n)
		return;
	a->added = n;
	a->added[a->n_added++] = ip;
}

static void adopt_added(struct agent *a, json_t *added)
{
	size_t i;
	json_t *v;

	json_array_foreach(added, i, v) {
		struct in_addr in;

		if (json_is_string(v) && inet_pton(AF_INET, json_string_value(v), &in) == 1)
			adopt_ip(a, ntohl(in.s_addr));
	}
}

/* A record left by an agent that did not stop cleanly (we hold the lock, so
 * it is gone): what it added is ours to undo, if it was made here, in this
 * namespace during this boot.  True when adopted. */
static bool adopt_record(struct agent *a)
{
	json_t *j = json_load_file(a->record_path, 0, NULL);
	const char *ns, *range;
	char here[80];

	if (!j)
		return false;
	netns_id(here, sizeof(here));
	ns = json_string_value(json_object_get(j, "netns"));
	if (!ns || strcmp(ns, here)) {
		agent_log("%s was written in a network namespace or boot that is gone (%s; "
			  "here %s): its host state died with it, nothing to undo", a->record_path,
			  ns ? ns : "unknown", here);
		json_decref(j);
		return false;
	}
	agent_log("adopting what agent pid %lld left behind (it did not stop cleanly; %s)",
		  json_integer_value(json_object_get(j, "pid")), a->record_path);
	if (json_integer_value(json_object_get(j, "ifindex")) == a->ifindex)
		adopt_added(a, json_object_get(j, "added"));
	range = json_string_value(json_object_get(j, "saved_range"));
	if (range && range[0]) {
		agent_log("restoring ip_local_port_range %.*s and its reserved ports",
			  (int)strcspn(range, "\n"), range);
		agent_ports__restore(range,
				     json_string_value(json_object_get(j, "saved_reserved")));
	}
	if (json_is_integer(json_object_get(j, "saved_arp_announce")))
		a->saved_announce =
			(int)json_integer_value(json_object_get(j, "saved_arp_announce"));
	if (json_is_integer(json_object_get(j, "saved_tw_reuse")))
		a->saved_tw_reuse = (int)json_integer_value(json_object_get(j, "saved_tw_reuse"));
	json_decref(j);
	return true;
}

/* What the host itself says a crashed agent left: /32s marked with our
 * address protocol, our tc program (the XDP program and the nft tables are
 * replaced by name when they are installed again).  The host values it
 * changed (arp_announce, tcp_tw_reuse, the port range) are only in its
 * record: without one they are taken as the host's and kept on exit. */
static void adopt_host(struct agent *a, bool had_record)
{
	uint32_t *ips;
	int n = agent_addr__ours(a->ifindex, &ips), before = (int)a->n_added;

	for (int i = 0; i < n; i++)
		adopt_ip(a, ips[i]);
	if (n > 0)
		free(ips);
	if ((int)a->n_added > before)
		agent_log("adopting %d egress address(es) on %s marked by a previous agent",
			  (int)a->n_added - before, a->o.iface);
	if (n > 0 && !had_record && a->o.sysctl)
		agent_warn("no record of that agent: arp_announce, tcp_tw_reuse, "
			  "ip_local_port_range and ip_local_reserved_ports as found are kept on exit "
			  "(they may be its values; check them)");
	if (agent_enforce__leftover(a->ifindex))
		agent_log("a previous agent's tc program is on %s egress: replaced or removed",
			  a->o.iface);
}

/* One agent per server and state directory: an flock held for our life
 * (released by the kernel however we die, in any pid namespace). */
static int lock_state(struct agent *a, struct su_err *err)
{
	char path[4200];
	json_t *j;

	snprintf(path, sizeof(path), "%.*s.lock",
		 (int)(strlen(a->record_path) - strlen(".json")), a->record_path);
	a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (a->lock_fd < 0)
		return su_err__set(err, errno, "--state-dir %s: %s: %s", a->o.state_dir, path,
				   strerror(errno));
	if (!flock(a->lock_fd, LOCK_EX | LOCK_NB))
		return 0;
	j = json_load_file(a->record_path, 0, NULL);
	su_err__set(err, EBUSY, "another agent (pid %lld) runs server %s in this network "
		    "namespace (--state-dir %s)",
		    j ? json_integer_value(json_object_get(j, "pid")) : 0LL, a->o.server,
		    a->o.state_dir);
	json_decref(j);
	return -EBUSY;
}

/* An agent that is alive owns the run directory. */
/* An agent that is alive owns the run directory: the same pid started at
 * the same time (a pid reused by another process after a crash is not it). */
static int check_run_dir(struct agent *a, struct su_err *err)
{
	char path[4200];
	json_t *j;
	json_int_t pid, start;

	snprintf(path, sizeof(path), "%s/%s", a->o.run_dir, AGENT_STATE_NAME);
	j = json_load_file(path, 0, NULL);
	if (!j)
		return 0;
	pid = json_integer_value(json_object_get(j, "pid"));
	start = json_integer_value(json_object_get(j, "pid_start"));
	json_decref(j);
	if (pid <= 0 || pid == getpid() || (kill((pid_t)pid, 0) && errno != EPERM))
		return 0;
	if (start && (unsigned long long)start != proc_start(pid))
		return 0; /* that pid is another process now */
	return su_err__set(err, EBUSY, "another agent (pid %lld) publishes in %s", (long long)pid,
			   a->o.run_dir);
}

/* ---- start ------------------------------------------------------------ */

/* mkdir DIR; its parent must exist unless parents is set.  Errors name the
 * option and the path. */
static int make_dir(const char *opt, const char *dir, bool parents, struct su_err *err)
{
	char *dup, *slash, *parent;
	struct stat st;

	if (parents && dir[0] == '/') {
		char buf[4096];

		snprintf(buf, sizeof(buf), "%s", dir);
		for (char *q = buf + 1; (q = strchr(q, '/')); q++) {
			*q = 0;
			mkdir(buf, 0755);
			*q = '/';
		}
	}
	if (!mkdir(dir, 0755) || (errno == EEXIST && !stat(dir, &st) && S_ISDIR(st.st_mode)))
		return 0;
	if (errno == EEXIST)
		return su_err__set(err, ENOTDIR, "%s %s: exists and is not a directory", opt, dir);
	if (errno != ENOENT)
		return su_err__set(err, errno, "%s %s: %s", opt, dir, strerror(errno));
	dup = strdup(dir);
	slash = dup ? strrchr(dup, '/') : NULL;
	if (slash == dup)
		slash++;
	if (slash)
		*slash = 0;
	parent = slash ? dup : (char *)".";
	su_err__set(err, ENOENT, "%s %s: parent directory %s does not exist (create it first)",
		    opt, dir, parent);
	free(dup);
	return -ENOENT;
}

/* The record is per server and network namespace: agents of one server
 * name in different namespaces (tests, containers sharing /var/lib) never
 * meet; a restart in the same namespace finds its predecessor's. */
static const char *netns_ino(char *buf, size_t size)
{
	struct stat st;

	snprintf(buf, size, "%llu", stat("/proc/self/ns/net", &st) ? 0ull :
		 (unsigned long long)st.st_ino);
	return buf;
}

/* Interface and paths: every error names the option and the path. */
static int check_paths(struct agent *a, struct su_err *err)
{
	char ino[32];
	int rc;

	a->ifindex = (int)if_nametoindex(a->o.iface);
	if (!a->ifindex)
		return su_err__set(err, ENODEV, "--iface %s: no such interface", a->o.iface);
	if (access(a->o.plan, R_OK))
		return su_err__set(err, errno, "--plan %s: %s", a->o.plan, strerror(errno));
	if ((rc = make_dir("--run-dir", a->o.run_dir, false, err)) ||
	    (rc = make_dir("--state-dir", a->o.state_dir, a->o.state_dir_default, err)))
		return rc;
	if ((size_t)snprintf(a->assignment_path, sizeof(a->assignment_path), "%s/assignment",
			     a->o.run_dir) >= sizeof(a->assignment_path))
		return su_err__set(err, ENAMETOOLONG, "--run-dir %s: too long", a->o.run_dir);
	if ((size_t)snprintf(a->record_path, sizeof(a->record_path), "%s/%s@%s.json",
			     a->o.state_dir, a->o.server, netns_ino(ino, sizeof(ino))) >=
	    sizeof(a->record_path))
		return su_err__set(err, ENAMETOOLONG, "--state-dir %s: too long", a->o.state_dir);
	return 0;
}

static int prepare(struct agent *a, struct su_err *err)
{
	int rc = check_run_dir(a, err);

	if (!rc)
		rc = lock_state(a, err);
	if (rc) {
		a->record_path[0] = 0; /* another agent's: never unlink it */
		return rc;
	}
	rc = load(a, &a->plan, &a->cur, &a->info, &a->router, err);
	if (rc)
		return rc;
	adopt_host(a, adopt_record(a));
	return 0;
}

static int exit_code(int rc)
{
	if (rc == -ENOENT)
		return SU_EXIT_NOTFOUND;
	if (rc == -EINVAL || rc == -EPROTONOSUPPORT)
		return SU_EXIT_INVALID;
	return SU_EXIT_FAIL;
}

int agent_run(const struct agent_opts *o)
{
	struct agent a = { .o = *o, .saved_announce = -1, .saved_tw_reuse = -1, .lock_fd = -1 };
	struct su_err err = { "" };
	int rc = check_paths(&a, &err), sfd = -1, ifd = -1;
	struct agent_metrics mctx;
	struct su_metrics *metrics = NULL;

	if (rc) {
		a.record_path[0] = 0;
		cli_fail(SU_EXIT_FAIL, "agent", "%s", err.msg);
		rc = -EIO;
		goto cleanup;
	}
	rc = prepare(&a, &err);
	if (rc) {
		cli_fail(exit_code(rc), "agent", "%s", err.msg);
		goto cleanup;
	}
	/* Bound before the host changes: a taken port fails the start cleanly. */
	mctx = (struct agent_metrics){ a.assignment_path, a.ifindex, o->metrics_top };
	if (o->metrics && su_metrics__start(o->metrics, agent_metrics__render, &mctx, &metrics, &err)) {
		cli_fail(SU_EXIT_FAIL, "agent", "%s", err.msg);
		rc = -EIO;
		goto cleanup;
	}
	sfd = signals();
	ifd = watch_plan(o->plan);
	rc = sfd < 0 ? sfd : host_up(&a, &err);
	if (rc) {
		cli_fail(SU_EXIT_FAIL, "agent", "%s", err.msg[0] ? err.msg : strerror(-rc));
		rc = -EIO;
	} else {
		drop_addresses(&a, false); /* adopted from a crashed agent, gone from the plan */
		write_state(&a);
		agent_log("server %s: %u slice(s) on %s, plan serial %llu, published %s", o->server,
			  a.cur->n, o->iface, (unsigned long long)a.cur->serial, a.assignment_path);
		if (a.info.retired)
			log_applied(&a, &(struct agent_plan_info){ 0 });
		su_sd__ready("plan serial %llu applied, %u slice(s) published", (unsigned long long)a.cur->serial,
			     a.cur->n);
		loop(&a, sfd, ifd);
	}
	host_down(&a);
cleanup:
	su_metrics__stop(metrics);
	if (sfd >= 0)
		close(sfd);
	if (ifd >= 0)
		close(ifd);
	if (a.lock_fd >= 0)
		close(a.lock_fd);
	free(a.added);
	su_assignment__free(a.cur);
	su_plan__free(a.plan);
	return rc ? (rc == -EIO ? SU_EXIT_FAIL : exit_code(rc)) : SU_EXIT_OK;
}
