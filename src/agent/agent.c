/* softunicast agent: run (the daemon) and status. */
#include <arpa/inet.h>
#include <errno.h>
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
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "cli/node_store.h"
#include "lib/counters.h"

#define PORT_RANGE_SYSCTL "/proc/sys/net/ipv4/ip_local_port_range"

#define agent_log(...) cli_log("agent", __VA_ARGS__)

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
		"  - installs nftables table inet %s: packets from an egress IP\n"
		"    must use a source port (or ICMP echo identifier) inside this server's\n"
		"    slices, others are dropped and counted; egress flows are untracked so\n"
		"    conntrack/NAT never rewrite their ports;\n"
		"  - keeps the egress IPs off the LAN: ARP requests for them go unanswered\n"
		"    (table arp %s), arp_announce is 2 on IFACE;\n"
		"  - widens net.ipv4.ip_local_port_range to cover the slices (the per-socket\n"
		"    IP_LOCAL_PORT_RANGE can only narrow it);\n"
		"  - publishes the assignment (IP, slice, tags, state) to applications in\n"
		"    DIR/assignment, replaced atomically, with shared counters beside it.\n"
		"SIGHUP, or a new version of PLAN (atomic rename or rewrite), applies the new\n"
		"plan: slices kept stay untouched, so their live connections continue.  On\n"
		"exit, everything above is undone; an agent killed without that chance is\n"
		"cleaned up after by the next one (DIR/agent.json records what it changed).\n\n"
		"Options:\n"
		"  -p, --plan PLAN       plan snapshot (softunicast plan)\n"
		"  -s, --server NAME     this server's name in the plan\n"
		"  -i, --iface IFACE     interface facing the router (addresses, XDP)\n"
		"  -d, --run-dir DIR     where to publish (default %s)\n"
		"  -g, --gue-port PORT   GUE UDP destination port (default 6080)\n"
		"      --no-decap        no XDP program (the kernel's fou decapsulates)\n"
		"      --no-enforce      no nftables table\n"
		"      --no-sysctl       leave ip_local_port_range alone\n"
		"  -h, --help\n"
		"      --store URL       follow a store instead of --plan: read only this\n"
		"                        server's view, apply each committed version, keep the\n"
		"                        last good one across store outages and restarts\n"
		NODE_STORE_USAGE "\n"
		"status: per slice, the ports in use (sock_diag), the busiest destination's\n"
		"share of the slice (a WARNING at 80%%: connects to it fail at 100%%), sockets\n"
		"connected and allocation failures counted by libsoftunicast, packets blocked by\n"
		"the ownership rule and the decapsulator's counters.  --json for machines.\n\n"
		"Exit status: 0 ok, 1 runtime failure, 2 usage, 3 invalid plan, 5 server not\n"
		"in the plan or (status) no agent published.\n",
		su_prog, su_prog, AGENT_NFT_TABLE, AGENT_NFT_TABLE, SU_ASSIGNMENT_DIR);
}

enum { OPT_NO_DECAP = 256, OPT_NO_ENFORCE, OPT_NO_SYSCTL };

static int parse_port(const char *s, uint16_t *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*end || !v || v > 65535)
		return cli_fail(SU_EXIT_USAGE, "agent", "bad port '%s'", s);
	*out = (uint16_t)v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct agent_opts *o)
{
	static const struct option lo[] = {
		{ "plan", 1, 0, 'p' },	   { "server", 1, 0, 's' }, { "iface", 1, 0, 'i' },
		{ "run-dir", 1, 0, 'd' },  { "gue-port", 1, 0, 'g' },
		{ "no-decap", 0, 0, OPT_NO_DECAP }, { "no-enforce", 0, 0, OPT_NO_ENFORCE },
		{ "no-sysctl", 0, 0, OPT_NO_SYSCTL }, { "help", 0, 0, 'h' }, NODE_STORE_OPTIONS, { 0 },
	};
	static struct node_store_flags store; /* --store: node_store.c follows it */
	int c;

	*o = (struct agent_opts){ .run_dir = SU_ASSIGNMENT_DIR, .gue_port = 6080, .decap = true,
				  .enforce = true, .sysctl = true };
	while ((c = getopt_long(argc, argv, "p:s:i:d:g:h", lo, NULL)) != -1) {
		switch (c) {
		case 'p': o->plan = optarg; break;
		case 's': o->server = optarg; break;
		case 'i': o->iface = optarg; break;
		case 'd': o->run_dir = optarg; break;
		case 'g':
			if (parse_port(optarg, &o->gue_port))
				return SU_EXIT_USAGE;
			break;
		case OPT_NO_DECAP: o->decap = false; break;
		case OPT_NO_ENFORCE: o->enforce = false; break;
		case OPT_NO_SYSCTL: o->sysctl = false; break;
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

static int read_range(unsigned *lo, unsigned *hi, char *raw, size_t size)
{
	FILE *f = fopen(PORT_RANGE_SYSCTL, "re");
	int rc = -EIO;

	if (!f)
		return -errno;
	if (fgets(raw, (int)size, f) && sscanf(raw, "%u %u", lo, hi) == 2)
		rc = 0;
	fclose(f);
	return rc;
}

static int write_range(const char *text)
{
	FILE *f = fopen(PORT_RANGE_SYSCTL, "we");
	int rc = 0;

	if (!f)
		return -errno;
	if (fputs(text, f) < 0)
		rc = -EIO;
	if (fclose(f) && !rc)
		rc = -errno;
	return rc;
}

/* IP_LOCAL_PORT_RANGE is intersected with the system range, so every slice
 * must lie inside it for the library's fast path; widen, never narrow. */
static int widen_range(struct agent *a)
{
	unsigned lo, hi, nlo, nhi;
	char raw[64], text[64];
	int rc;

	if (!a->o.sysctl || !a->cur->n)
		return 0;
	rc = read_range(&lo, &hi, raw, sizeof(raw));
	if (rc)
		return rc;
	nlo = lo;
	nhi = hi;
	for (uint32_t i = 0; i < a->cur->n; i++) {
		nlo = a->cur->v[i].lo < nlo ? a->cur->v[i].lo : nlo;
		nhi = a->cur->v[i].hi > nhi ? a->cur->v[i].hi : nhi;
	}
	if (nlo == lo && nhi == hi)
		return 0;
	if (!a->saved_range[0])
		snprintf(a->saved_range, sizeof(a->saved_range), "%s", raw);
	snprintf(text, sizeof(text), "%u %u\n", nlo, nhi);
	agent_log("ip_local_port_range %u-%u -> %u-%u to cover the slices", lo, hi, nlo, nhi);
	return write_range(text);
}

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

	if (announce_path(a, path, sizeof(path)) || !(f = fopen(path, "re")))
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
		agent_log("counters not published: %s", strerror(-rc));
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

static void write_state(struct agent *a)
{
	node_store__applied(a->cur->serial); /* --store: report what the host runs */
	char path[4200], tmp[4300], router[INET_ADDRSTRLEN];
	struct in_addr in = { htonl(a->router) };
	json_t *j;

	json_t *added = json_array();

	inet_ntop(AF_INET, &in, router, sizeof(router));
	for (uint32_t i = 0; i < a->n_added; i++) {
		char ip[INET_ADDRSTRLEN];
		struct in_addr x = { htonl(a->added[i]) };

		json_array_append_new(added, json_string(inet_ntop(AF_INET, &x, ip, sizeof(ip))));
	}
	/* "added" and "saved_range" let a restarted agent undo what a crashed
	 * one left behind. */
	j = json_pack("{s:i, s:s, s:s, s:s, s:i, s:I, s:s, s:i, s:b, s:b, s:I, s:o, s:s}", "pid",
		      (int)getpid(), "plan", a->o.plan, "server", a->o.server, "iface", a->o.iface,
		      "ifindex", a->ifindex, "serial", (json_int_t)a->cur->serial, "router", router,
		      "gue_port", a->o.gue_port, "decap", a->o.decap, "enforce", a->o.enforce,
		      "updated", (json_int_t)time(NULL), "added", added, "saved_range",
		      a->saved_range);
	if (j)
		json_object_set_new(j, "saved_arp_announce", json_integer(a->saved_announce));
	snprintf(path, sizeof(path), "%s/%s", a->o.run_dir, AGENT_STATE_NAME);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (j && !json_dump_file(j, tmp, JSON_INDENT(2)))
		rename(tmp, path);
	json_decref(j);
}

static void host_down(struct agent *a)
{
	unpublish(a); /* first: applications stop picking these slices */
	if (a->nft_installed && agent_nft__remove())
		agent_log("could not remove nftables table %s", AGENT_NFT_TABLE);
	a->nft_installed = false;
	agent_decap__detach(a);
	drop_addresses(a, true);
	if (a->saved_range[0] && write_range(a->saved_range))
		agent_log("could not restore ip_local_port_range");
	a->saved_range[0] = 0;
	restore_announce(a);
}

static int host_up(struct agent *a, struct su_err *err)
{
	int rc = widen_range(a);

	if (rc)
		return su_err__set(err, -rc, "ip_local_port_range: %s", strerror(-rc));
	rc = set_announce(a);
	if (rc)
		return su_err__set(err, -rc, "arp_announce of %s: %s", a->o.iface, strerror(-rc));
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
		uint32_t *router, struct su_err *err)
{
	int rc = su_plan__load(a->o.plan, plan, err);

	if (rc)
		return rc;
	rc = agent_plan__assignment(*plan, a->o.server, as, err);
	if (!rc)
		rc = agent_plan__router(*plan, a->o.server, router);
	if (rc) {
		su_plan__free(*plan);
		*plan = NULL;
	}
	return rc;
}

static int reload(struct agent *a)
{
	struct su_plan *plan;
	struct su_assignment *as, *old = a->cur;
	struct su_err err = { "" };
	uint32_t router;
	int rc = load(a, &plan, &as, &router, &err);

	if (rc) {
		agent_log("reload failed, keeping plan serial %llu: %s",
			  (unsigned long long)old->serial, err.msg);
		return rc;
	}
	a->cur = as; /* new IPs and slices are allowed before they are announced */
	a->router = router;
	rc = widen_range(a);
	if (!rc)
		rc = add_addresses(a);
	if (!rc && a->nft_installed)
		rc = agent_nft__update(as, &err);
	if (!rc)
		rc = agent_decap__update(a);
	if (!rc)
		rc = publish(a, &err);
	if (rc) {
		agent_log("reload failed half-way (%s); restart the agent", err.msg[0] ? err.msg :
			  strerror(-rc));
		a->cur = old;
		su_assignment__free(as);
		su_plan__free(plan);
		return rc;
	}
	drop_addresses(a, false); /* last: nothing uses them any more */
	su_plan__free(a->plan);
	a->plan = plan;
	su_assignment__free(old);
	write_state(a);
	agent_log("plan serial %llu: %u slice(s)", (unsigned long long)as->serial, as->n);
	return 0;
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

static void loop(struct agent *a, int sfd, int ifd)
{
	struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = ifd, .events = POLLIN } };

	for (;;) {
		struct signalfd_siginfo si;

		if (poll(p, ifd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			return;
		if (p[1].revents && plan_changed(ifd, a->o.plan)) {
			agent_log("%s changed: reloading", a->o.plan);
			reload(a);
		}
		if (!p[0].revents || read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGHUP) {
			agent_log("signal %u: restoring the host", si.ssi_signo);
			return;
		}
		agent_log("SIGHUP: reloading %s", a->o.plan);
		reload(a);
	}
}

static void adopt_added(struct agent *a, json_t *added)
{
	size_t i;
	json_t *v;

	json_array_foreach(added, i, v) {
		struct in_addr in;
		uint32_t *n;

		if (!json_is_string(v) || inet_pton(AF_INET, json_string_value(v), &in) != 1)
			continue;
		n = realloc(a->added, (a->n_added + 1) * sizeof(*n));
		if (!n)
			return;
		a->added = n;
		a->added[a->n_added++] = ntohl(in.s_addr);
	}
}

/* A state file left by an agent that is gone: it crashed, so what it added
 * (addresses, the port range change) is ours to undo.  One that is alive
 * owns the run directory. */
static int adopt_stale(struct agent *a, struct su_err *err)
{
	char path[4200];
	json_t *j;
	json_int_t pid;

	snprintf(path, sizeof(path), "%s/%s", a->o.run_dir, AGENT_STATE_NAME);
	j = json_load_file(path, 0, NULL);
	if (!j)
		return 0;
	pid = json_integer_value(json_object_get(j, "pid"));
	if (pid > 0 && pid != getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
		json_decref(j);
		return su_err__set(err, EBUSY, "another agent (pid %lld) publishes in %s",
				   (long long)pid, a->o.run_dir);
	}
	agent_log("adopting what agent pid %lld left behind (it did not stop cleanly)",
		  (long long)pid);
	if (json_integer_value(json_object_get(j, "ifindex")) == a->ifindex)
		adopt_added(a, json_object_get(j, "added"));
	snprintf(a->saved_range, sizeof(a->saved_range), "%s",
		 json_string_value(json_object_get(j, "saved_range")) ?: "");
	if (json_is_integer(json_object_get(j, "saved_arp_announce")))
		a->saved_announce =
			(int)json_integer_value(json_object_get(j, "saved_arp_announce"));
	json_decref(j);
	return 0;
}

static int prepare(struct agent *a, struct su_err *err)
{
	int rc;

	a->ifindex = (int)if_nametoindex(a->o.iface);
	if (!a->ifindex)
		return su_err__set(err, ENODEV, "no interface '%s'", a->o.iface);
	if (mkdir(a->o.run_dir, 0755) && errno != EEXIST)
		return su_err__set(err, errno, "%s: %s", a->o.run_dir, strerror(errno));
	if ((size_t)snprintf(a->assignment_path, sizeof(a->assignment_path), "%s/assignment",
			     a->o.run_dir) >= sizeof(a->assignment_path))
		return su_err__set(err, ENAMETOOLONG, "--run-dir too long");
	rc = adopt_stale(a, err);
	return rc ? rc : load(a, &a->plan, &a->cur, &a->router, err);
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
	struct agent a = { .o = *o, .saved_announce = -1 };
	struct su_err err = { "" };
	int rc = prepare(&a, &err), sfd = -1, ifd = -1;

	if (rc) {
		cli_fail(exit_code(rc), "agent", "%s", err.msg);
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
		loop(&a, sfd, ifd);
	}
	host_down(&a);
cleanup:
	if (sfd >= 0)
		close(sfd);
	if (ifd >= 0)
		close(ifd);
	free(a.added);
	su_assignment__free(a.cur);
	su_plan__free(a.plan);
	return rc ? (rc == -EIO ? SU_EXIT_FAIL : exit_code(rc)) : SU_EXIT_OK;
}
