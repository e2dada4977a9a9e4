/* softunicast agent status: per-slice port use, warnings and counters. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"
#include "bpf/decap_abi.h"
#include "bpf/enforce_abi.h"
#include "cli/cli.h"
#include "cli/node_store.h"
#include "lib/counters.h"

static json_t *load_state(const char *run_dir)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", run_dir, AGENT_STATE_NAME);
	return json_load_file(path, 0, NULL);
}

static const char *ip_s(uint32_t ip, char *buf)
{
	struct in_addr in = { htonl(ip) };

	return inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
}

struct report {
	const struct su_assignment *a;
	const struct agent_slice_stat *st;
	struct su_counters c;
	json_t *state;
	bool running, have_blocked, have_decap, have_enforce;
	uint64_t blocked, decap[DECAP_STAT_MAX], enforce[ENFORCE_STAT_MAX];
};

static const char *const enforce_labels[] = {
#define ENFORCE_LABEL(name, label, help) label,
	ENFORCE_STAT_LIST(ENFORCE_LABEL)
#undef ENFORCE_LABEL
};

static double util(uint32_t n, const struct su_assignment_entry *e)
{
	return (double)n / ((unsigned)(e->hi - e->lo) + 1);
}

static const struct su_counter_slot *slot_of(const struct report *r, uint32_t i)
{
	return su_counters__find(&r->c, r->a->v[i].ip, r->a->v[i].lo);
}

static json_t *slice_json(const struct report *r, uint32_t i)
{
	const struct su_assignment_entry *e = &r->a->v[i];
	const struct agent_slice_stat *s = &r->st[i];
	const struct su_counter_slot *c = slot_of(r, i);
	char ip[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];
	json_t *j = json_pack("{s:s, s:[i,i], s:s, s:s, s:i, s:i, s:f, s:f, s:b}", "ip",
			      ip_s(e->ip, ip), "slice", e->lo, e->hi, "state",
			      su_slice_state__str(e->state), "tags", e->tags, "ports_in_use",
			      s->ports, "sockets", s->sockets, "port_utilization", util(s->ports, e),
			      "utilization", util(s->busiest, e), "warning",
			      util(s->busiest, e) >= AGENT_WARN_UTIL);

	if (e->handed_until) /* a live move's: no ping identifier here until then + 6 s */
		json_object_set_new(j, "handed_until", json_integer(e->handed_until));
	if (s->busiest)
		json_object_set_new(j, "busiest",
				    json_pack("{s:s, s:i, s:s, s:i}", "dst", ip_s(s->busiest_dst, dst),
					      "port", s->busiest_dport, "proto",
					      s->busiest_proto == IPPROTO_TCP ? "tcp" : "udp",
					      "sockets", s->busiest));
	if (c)
		json_object_set_new(j, "counters",
				    json_pack("{s:I, s:I, s:I}", "connects", (json_int_t)c->connects,
					      "allocation_failures", (json_int_t)c->exhausted,
					      "udp_conflicts_avoided", (json_int_t)c->conflicts));
	return j;
}

static int print_json(const struct report *r)
{
	json_t *root = json_object(), *slices = json_array(), *d = json_object();
	json_t *e = json_object();
	uint64_t fails = 0;

	for (uint32_t i = 0; i < r->a->n; i++) {
		const struct su_counter_slot *c = slot_of(r, i);

		json_array_append_new(slices, slice_json(r, i));
		fails += c ? c->exhausted : 0;
	}
	json_object_set_new(root, "server", json_string(r->a->server));
	json_object_set_new(root, "serial", json_integer((json_int_t)r->a->serial));
	json_object_set_new(root, "running", json_boolean(r->running));
	if (r->state)
		json_object_set(root, "agent", r->state);
	json_object_set_new(root, "blocked_packets",
			    r->have_blocked || r->have_enforce ? json_integer((json_int_t)r->blocked) :
								  json_null());
#define ENFORCE_JSON(name, label, help)                                                       \
	json_object_set_new(e, label, json_integer((json_int_t)r->enforce[ENFORCE_STAT_##name]));
	ENFORCE_STAT_LIST(ENFORCE_JSON)
#undef ENFORCE_JSON
	json_object_set_new(root, "enforce", r->have_enforce ? e : json_null());
	if (!r->have_enforce)
		json_decref(e);
	json_object_set_new(root, "allocation_failures", json_integer((json_int_t)fails));
#define DECAP_JSON(name, label, help)                                                         \
	json_object_set_new(d, label, json_integer((json_int_t)r->decap[DECAP_STAT_##name]));
	DECAP_STAT_LIST(DECAP_JSON)
#undef DECAP_JSON
	json_object_set_new(root, "decap", r->have_decap ? d : json_null());
	if (!r->have_decap)
		json_decref(d);
	json_object_set_new(root, "slices", slices);
	if (r->state && node_store__dir_of(json_string_value(json_object_get(r->state, "plan"))))
		json_object_set_new(root, "store", node_store__read(node_store__dir_of(
				    json_string_value(json_object_get(r->state, "plan")))));
	json_dumpf(root, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(root);
	return SU_EXIT_OK;
}

static void print_header(const struct report *r)
{
	json_t *s = r->state;

	printf("agent: %s", r->running ? "running" : "NOT running (stale assignment)");
	if (s)
		printf(", pid %lld, iface %s, plan %s", json_integer_value(json_object_get(s, "pid")),
		       json_string_value(json_object_get(s, "iface")),
		       json_string_value(json_object_get(s, "plan")));
	printf("\nserver %s, plan serial %llu, %u slice(s)\n", r->a->server,
	       (unsigned long long)r->a->serial, r->a->n);
	if (s && json_is_true(json_object_get(s, "retired"))) {
		time_t d = (time_t)json_integer_value(json_object_get(s, "drain_deadline"));
		char when[32] = "?";
		struct tm tm;

		if (d && gmtime_r(&d, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (json_is_true(json_object_get(s, "drained")))
			printf("server RETIRED and drained: egress state removed\n");
		else
			printf("server RETIRED: slices draining (no new connections) until %s, then "
			       "removed\n", when);
	}
	if (r->have_blocked || r->have_enforce)
		printf("blocked packets (not this server's to send from an egress IP): %llu\n",
		       (unsigned long long)r->blocked);
	if (r->have_enforce) {
		printf("enforce (tc egress):");
#define ENFORCE_TXT(name, label, help)                                                        \
	printf(" %s %llu", label, (unsigned long long)r->enforce[ENFORCE_STAT_##name]);
		ENFORCE_STAT_LIST(ENFORCE_TXT)
#undef ENFORCE_TXT
		printf("\n");
	}
	if (r->have_decap) {
		printf("decap:");
#define DECAP_TXT(name, label, help) printf(" %s %llu", label, (unsigned long long)r->decap[DECAP_STAT_##name]);
		DECAP_STAT_LIST(DECAP_TXT)
#undef DECAP_TXT
		printf("\n");
	}
}

static int print_text(const struct report *r)
{
	char ip[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN];
	uint64_t fails = 0;

	print_header(r);
	if (r->state && node_store__dir_of(json_string_value(json_object_get(r->state, "plan"))))
		node_store__print(node_store__dir_of(json_string_value(json_object_get(r->state, "plan"))));
	printf("\n%-15s %-11s %-8s %6s %6s %7s %7s %9s %6s  %s\n", "IP", "SLICE", "STATE", "PORTS",
	       "SOCKS", "PORTS%", "BUSIEST", "CONNECTS", "FAILS", "TAGS");
	for (uint32_t i = 0; i < r->a->n; i++) {
		const struct su_assignment_entry *e = &r->a->v[i];
		const struct su_counter_slot *c = slot_of(r, i);
		char sl[16];

		snprintf(sl, sizeof(sl), "%u-%u", e->lo, e->hi);
		printf("%-15s %-11s %-8s %6u %6u %6.1f%% %6.1f%% %9llu %6llu  %s\n", ip_s(e->ip, ip),
		       sl, su_slice_state__str(e->state), r->st[i].ports, r->st[i].sockets,
		       100 * util(r->st[i].ports, e), 100 * util(r->st[i].busiest, e),
		       c ? (unsigned long long)c->connects : 0ull,
		       c ? (unsigned long long)c->exhausted : 0ull, e->tags);
		fails += c ? c->exhausted : 0;
	}
	printf("allocation failures (slice exhausted toward a destination): %llu\n",
	       (unsigned long long)fails);
	for (uint32_t i = 0; i < r->a->n; i++) {
		const struct su_assignment_entry *e = &r->a->v[i];

		if (util(r->st[i].busiest, e) >= AGENT_WARN_UTIL)
			printf("WARNING: %s %u-%u: %.0f%% of the slice in use toward %s:%u (%s);"
			       " connects there fail at 100%%\n", ip_s(e->ip, ip), e->lo, e->hi,
			       100 * util(r->st[i].busiest, e), ip_s(r->st[i].busiest_dst, dst),
			       r->st[i].busiest_dport,
			       r->st[i].busiest_proto == IPPROTO_TCP ? "tcp" : "udp");
	}
	return SU_EXIT_OK;
}

static bool alive(json_t *state)
{
	json_int_t pid = state ? json_integer_value(json_object_get(state, "pid")) : 0;

	return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

static int parse_status_opts(int argc, char **argv, bool *json, const char **dir)
{
	static const struct option lo[] = { { "json", 0, 0, 'j' }, { "run-dir", 1, 0, 'd' },
					     { "help", 0, 0, 'h' }, { 0 } };
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "jd:h", lo, NULL)) != -1) {
		switch (c) {
		case 'j': *json = true; break;
		case 'd': *dir = optarg; break;
		case 'h':
			printf("Usage: %s agent status [--json] [--run-dir DIR]\n"
			       "See `%s agent --help`.\n", su_prog, su_prog);
			return SU_EXIT_OK;
		default:
			return SU_EXIT_USAGE;
		}
	}
	return optind == argc ? -1 : SU_EXIT_USAGE;
}

int agent_status_main(int argc, char **argv)
{
	const char *dir = SU_ASSIGNMENT_DIR;
	struct report r = { 0 };
	struct agent_usage u = { 0 };
	struct su_assignment *a;
	struct su_err err;
	char path[4200];
	bool json = false;
	int rc = parse_status_opts(argc, argv, &json, &dir);
	json_int_t ifindex;

	if (rc >= 0)
		return rc;
	snprintf(path, sizeof(path), "%s/assignment", dir);
	if (su_assignment__load(path, &a, &err))
		return cli_fail(SU_EXIT_NOTFOUND, "agent status", "%s", err.msg);
	struct agent_slice_stat *st = calloc(a->n + 1, sizeof(*st));

	rc = st ? agent_usage__collect(a, &u) : -ENOMEM;
	if (rc)
		cli_fail(SU_EXIT_FAIL, "agent status", "sock_diag: %s (ports in use unknown)",
			 strerror(-rc));
	agent_usage__summarize(&u, st);
	r = (struct report){ .a = a, .st = st, .state = load_state(dir) };
	r.running = alive(r.state);
	su_counters__open(path, &r.c);
	r.have_blocked = !agent_nft__blocked(&r.blocked);
	ifindex = r.state ? json_integer_value(json_object_get(r.state, "ifindex")) : 0;
	r.have_enforce = ifindex > 0 && !agent_enforce__stats((int)ifindex, r.enforce);
	/* blocked_packets: both layers (a packet the nft rule dropped never
	 * reaches tc, so the sum counts each packet once). */
	for (uint32_t k = 0; r.have_enforce && k < ENFORCE_STAT_MAX; k++)
		if (!strncmp(enforce_labels[k], "drop_", 5))
			r.blocked += r.enforce[k];
	r.have_decap = ifindex > 0 && !agent_decap__stats((int)ifindex, r.decap);
	rc = json ? print_json(&r) : print_text(&r);
	su_counters__close(&r.c);
	json_decref(r.state);
	agent_usage__free(&u);
	free(st);
	su_assignment__free(a);
	return rc;
}
