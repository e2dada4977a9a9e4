/* softunicast agent: the server side of soft-unicast.  It turns the plan's
 * slots owned by this server into host state (addresses, GUE decapsulation,
 * ownership enforcement) and into the assignment file applications read. */
#ifndef SU_AGENT_H
#define SU_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/assignment.h"
#include "lib/err.h"
#include "lib/plan.h"

#define AGENT_NFT_TABLE "softunicast_agent"
#define AGENT_STATE_NAME "agent.json" /* in the run directory, for `status` */
#define AGENT_STATE_DIR "/var/lib/softunicast/agent" /* recovery records, kept across boots */
/* IFA_PROTO of the egress /32s the agent adds (ip-address(8) "proto"): a
 * restarted agent recognises its own addresses on the host even when every
 * record of them is gone.  0-3 are the kernel's; 0x53 is "S". */
#define AGENT_IFA_PROTO 0x53
#define AGENT_WARN_UTIL 0.80

#define agent_log(...) cli_log("agent", __VA_ARGS__) /* cli/cli.h */
#define agent_warn(...) cli_warn("agent", __VA_ARGS__)

struct agent_opts {
	const char *plan;
	const char *server;
	const char *iface;
	const char *run_dir;
	const char *metrics;   /* ADDR:PORT of the Prometheus endpoint, or NULL */
	uint32_t metrics_top;  /* busiest destinations in the metrics */
	const char *state_dir;
	bool state_dir_default;    /* not given: created with its parents */
	uint16_t gue_port;
	bool decap, enforce, sysctl;
};

struct decap;
struct enforce;

/* What agent_plan__assignment saw besides the assignment. */
struct agent_plan_info {
	int64_t now;           /* in: draining slices past their deadline are left out */
	bool retired;          /* out: the server is gone from the fleet, kept to drain */
	int64_t next_deadline; /* out: earliest deadline of a draining entry kept, or 0 */
	uint32_t drained;      /* out: draining slices left out, their deadline passed */
};

struct agent {
	struct agent_opts o;
	int ifindex;
	struct su_plan *plan;
	struct su_assignment *cur; /* what the host is configured for */
	uint32_t router;           /* host order */
	char assignment_path[4096];

	uint32_t *added;           /* egress IPs this agent put on the host */
	uint32_t n_added;
	struct decap *skel;
	struct enforce *eskel;
	bool xdp_attached, nft_installed, tc_attached;
	uint32_t xdp_mode;         /* 0 (native) or XDP_FLAGS_SKB_MODE */
	int saved_announce;        /* IFACE's arp_announce before we set 2, or -1 */
	struct agent_plan_info info; /* of a->cur */
	int lock_fd;               /* flock on STATE_DIR/SERVER.lock while we run */
	char record_path[4200];    /* STATE_DIR/SERVER.json: what recovery needs */
	int saved_tw_reuse;        /* net.ipv4.tcp_tw_reuse before we set 1, or -1 */
	char saved_range[32];      /* ip_local_port_range before agent_ports__fit, or "" */
	char *saved_reserved;      /* ip_local_reserved_ports then (malloc'd) */
	char applied_range[32];    /* what agent_ports__fit last wrote */
};

/* agent_plan.c: this server's slots of a plan, as an assignment (IPs in plan
 * order, one entry per slot, tags are the IP's prefix tags). */
int agent_plan__assignment(const struct su_plan *p, const char *server,
			   struct agent_plan_info *info, struct su_assignment **out,
			   struct su_err *err);
/* Live moves (issue 10): the slices of this server with another owner until
 * `until` (unix seconds): taken over from `peer` (held false: its decap
 * sends there what has no local socket), or handed to `peer` (held true:
 * second hops from peer are accepted), past deadlines included (the decap
 * refuses those itself).  Addresses host order; returns the count (*out
 * malloc'd) or -ENOMEM. */
struct agent_hop {
	uint32_t ip, slice, peer;
	bool held;
	int64_t until;
};
int agent_plan__hops(const struct su_plan *p, const char *server, struct agent_hop **out);
/* This server's own address in the plan (host order), 0 when absent. */
uint32_t agent_plan__self(const struct su_plan *p, const char *server);
/* The DC router that may send this server GUE (host order). */
int agent_plan__router(const struct su_plan *p, const char *server, uint32_t *router);
/* Egress IPs of an assignment, sorted and unique; returns the count. */
uint32_t agent_plan__ips(const struct su_assignment *a, uint32_t **out);

/* agent_addr.c: rtnetlink.  add: 0, or -EEXIST when already present; the
 * address carries IFA_PROTO AGENT_IFA_PROTO. */
int agent_addr__add(int ifindex, uint32_t ip);
int agent_addr__del(int ifindex, uint32_t ip);
/* IPv4 addresses on ifindex with IFA_PROTO AGENT_IFA_PROTO (host order,
 * malloc'd into *out); returns the count or -errno. */
int agent_addr__ours(int ifindex, uint32_t **out);

/* agent_ports.c: net.ipv4.ip_local_port_range widened to cover the slices
 * of a->cur (so IP_LOCAL_PORT_RANGE works in them), every port it gains
 * outside them reserved (net.ipv4.ip_local_reserved_ports), the host's
 * values saved first.  Nothing with --no-sysctl.  0 or -errno. */
int agent_ports__fit(struct agent *a);
/* Puts back the values saved by agent_ports__fit. */
void agent_ports__undo(struct agent *a);
/* Writes a saved range ("LO HI") and reserved list (either may be NULL):
 * recovery of a record.  0 or the first -errno. */
int agent_ports__restore(const char *range, const char *reserved);

/* agent_bpf.c: sums the per-CPU __u64 array `map` (n reasons) of the
 * attached program prog_id into counts[n]; -ENOENT when it has no such map. */
int agent_bpf__sum_counters(uint32_t prog_id, const char *map, uint32_t n, uint64_t *counts);

/* agent_decap.c */
int agent_decap__attach(struct agent *a);
int agent_decap__update(struct agent *a, const struct su_plan *plan);
void agent_decap__detach(struct agent *a);
/* Sums the per-CPU counters of the decap program attached to ifindex, found
 * through the interface (no pinning): counts[DECAP_STAT_MAX]. */
int agent_decap__stats(int ifindex, uint64_t *counts);

/* agent_enforce.c: enforce.bpf.c on IFACE's tc (clsact) egress. */
int agent_enforce__attach(struct agent *a);
int agent_enforce__update(struct agent *a);
void agent_enforce__detach(struct agent *a);
/* An enforce program a crashed agent left at our handle and priority. */
bool agent_enforce__leftover(int ifindex);
void agent_enforce__remove_leftover(int ifindex);
/* Per-CPU counters summed: counts[ENFORCE_STAT_MAX]; -ENOENT: not attached. */
int agent_enforce__stats(int ifindex, uint64_t *counts);

/* agent_nft.c: table inet softunicast_agent via the nft binary. */
int agent_nft__install(const struct su_assignment *a, struct su_err *err);
int agent_nft__update(const struct su_assignment *a, struct su_err *err);
int agent_nft__remove(void);
int agent_nft__blocked(uint64_t *packets);

/* agent_usage.c: the sockets on this server's slices (sock_diag). */
struct agent_use {
	uint32_t entry;     /* index into the assignment */
	uint32_t dst;       /* destination IP, host order */
	uint16_t dport, sport;
	uint8_t proto;      /* IPPROTO_TCP or IPPROTO_UDP */
};

struct agent_usage {
	const struct su_assignment *a;
	struct agent_use *v; /* sorted by entry, proto, dst, dport, sport */
	size_t n, cap;
};

/* Per assignment entry: distinct source ports in use, sockets, and the
 * destination holding most of the slice (where connects fail first). */
struct agent_slice_stat {
	uint32_t ports, sockets, busiest, busiest_dst;
	uint16_t busiest_dport;
	uint8_t busiest_proto;
};

/* One (slice, protocol, destination IP:port) and its sockets. */
struct agent_dest_use {
	uint32_t entry, dst;
	uint16_t dport;
	uint8_t proto;
	uint32_t sockets;
};

/* Dumps the TCP and UDP sockets bound to a's IPs on a's slices: 0 or -errno
 * (u->v may hold part of them then).  Listeners and unconnected sockets hold
 * no 4-tuple and are left out. */
int agent_usage__collect(const struct su_assignment *a, struct agent_usage *u);
/* st: one entry per assignment entry, zeroed by the caller. */
void agent_usage__summarize(const struct agent_usage *u, struct agent_slice_stat *st);
/* The n busiest destinations over all slices, most sockets first; returns
 * how many out holds (<= n). */
size_t agent_usage__top(const struct agent_usage *u, struct agent_dest_use *out, size_t n);
void agent_usage__free(struct agent_usage *u);

/* agent_metrics.c: the Prometheus page (daemon/metrics.h), built from what
 * the agent published in `assignment` and from the kernel. */
struct agent_metrics {
	const char *assignment; /* path of the published assignment */
	int ifindex;            /* uplink, for the decapsulator's counters */
	uint32_t top;           /* busiest destinations reported */
};
int agent_metrics__render(FILE *out, void *arg);

int agent_run(const struct agent_opts *o);
int agent_status_main(int argc, char **argv);

#endif
