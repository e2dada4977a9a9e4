/* softunicast agent: the server side of soft-unicast.  It turns the plan's
 * slots owned by this server into host state (addresses, GUE decapsulation,
 * ownership enforcement) and into the assignment file applications read. */
#ifndef SU_AGENT_H
#define SU_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/assignment.h"
#include "lib/err.h"
#include "lib/plan.h"

#define AGENT_NFT_TABLE "softunicast_agent"
#define AGENT_STATE_NAME "agent.json" /* in the run directory, for `status` */
#define AGENT_WARN_UTIL 0.80

struct agent_opts {
	const char *plan;
	const char *server;
	const char *iface;
	const char *run_dir;
	uint16_t gue_port;
	bool decap, enforce, sysctl;
};

struct decap;

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
	bool xdp_attached, nft_installed;
	uint32_t xdp_mode;         /* 0 (native) or XDP_FLAGS_SKB_MODE */
	char saved_range[64];      /* ip_local_port_range before we widened it */
	int saved_announce;        /* IFACE's arp_announce before we set 2, or -1 */
	int saved_tw_reuse;        /* net.ipv4.tcp_tw_reuse before we set 1, or -1 */
};

/* agent_plan.c: this server's slots of a plan, as an assignment (IPs in plan
 * order, one entry per slot, tags are the IP's prefix tags). */
int agent_plan__assignment(const struct su_plan *p, const char *server,
			   struct su_assignment **out, struct su_err *err);
/* The DC router that may send this server GUE (host order). */
int agent_plan__router(const struct su_plan *p, const char *server, uint32_t *router);
/* Egress IPs of an assignment, sorted and unique; returns the count. */
uint32_t agent_plan__ips(const struct su_assignment *a, uint32_t **out);

/* agent_addr.c: rtnetlink.  add: 0, or -EEXIST when already present. */
int agent_addr__add(int ifindex, uint32_t ip);
int agent_addr__del(int ifindex, uint32_t ip);

/* agent_decap.c */
int agent_decap__attach(struct agent *a);
int agent_decap__update(struct agent *a);
void agent_decap__detach(struct agent *a);
/* Sums the per-CPU counters of the decap program attached to ifindex, found
 * through the interface (no pinning): counts[DECAP_STAT_MAX]. */
int agent_decap__stats(int ifindex, uint64_t *counts);

/* agent_nft.c: table inet softunicast_agent via the nft binary. */
int agent_nft__install(const struct su_assignment *a, struct su_err *err);
int agent_nft__update(const struct su_assignment *a, struct su_err *err);
int agent_nft__remove(void);
int agent_nft__blocked(uint64_t *packets);

int agent_run(const struct agent_opts *o);
int agent_status_main(int argc, char **argv);

#endif
