/* Ownership enforcement with nftables: table inet softunicast_agent, the
 * first of two layers (the second is enforce.bpf.c on tc egress, which also
 * sees packet sockets; both apply the same rule).  This one is where the
 * sending socket can still be told, at once:
 *
 * At priority raw (-300) on output, before conntrack (-200):
 *  - a packet from an egress IP whose source port (TCP/UDP) or echo
 *    identifier lies in one of our slices is marked notrack and accepted:
 *    untracked packets never reach NAT, so no rule anywhere on the host can
 *    rewrite the port the router uses to find us;  ICMP errors likewise;
 *  - later fragments carry no ports: accepted here, judged in tc by their
 *    first fragment (the output hook sees datagrams before fragmentation,
 *    so only hand-made fragments from raw sockets reach this rule);
 *  - any other TCP packet from an egress IP is counted and answered with a
 *    TCP reset: connect() fails at once with ECONNREFUSED.  A plain drop
 *    would not do: tcp_connect() ignores the EPERM of its SYN and
 *    retransmits until the timeout;
 *  - anything else from an egress IP (UDP out of the slices, echo with a
 *    foreign identifier, UDP-Lite, SCTP, DCCP, any other protocol from a
 *    raw socket) is counted and dropped: sendmsg() gets EPERM at once;
 *  - inbound packets to egress IPs are notrack too (prerouting, raw).
 * Slices are set elements, so a plan change is one atomic transaction that
 * never drops a packet of a slice we keep, and keeps the counter. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "agent/agent.h"

#define T "inet " AGENT_NFT_TABLE
#define TA "arp " AGENT_NFT_TABLE

static int nft_run(const char *script)
{
	FILE *p = popen("nft -f -", "w");
	int st;

	if (!p)
		return -errno;
	fputs(script, p);
	st = pclose(p);
	if (st == -1)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static void ip_str(uint32_t ip, char *buf)
{
	struct in_addr in = { htonl(ip) };

	inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
}

/* "add element T SET { a . lo-hi, ... }" for every entry (active and
 * draining: live connections keep their slice until it is gone). */
static void put_slices(FILE *f, const struct su_assignment *a, const char *set)
{
	char ip[INET_ADDRSTRLEN];

	if (!a->n)
		return;
	fprintf(f, "add element " T " %s {", set);
	for (uint32_t i = 0; i < a->n; i++) {
		ip_str(a->v[i].ip, ip);
		fprintf(f, "%s %s . %u-%u", i ? "," : "", ip, a->v[i].lo, a->v[i].hi);
	}
	fputs(" }\n", f);
}

static void put_ips(FILE *f, const uint32_t *ips, uint32_t n, const char *table)
{
	char ip[INET_ADDRSTRLEN];

	if (!n)
		return;
	fprintf(f, "add element %s egress {", table);
	for (uint32_t i = 0; i < n; i++) {
		ip_str(ips[i], ip);
		fprintf(f, "%s %s", i ? "," : "", ip);
	}
	fputs(" }\n", f);
}

static void put_elements(FILE *f, const struct su_assignment *a)
{
	uint32_t *ips, n = agent_plan__ips(a, &ips);

	put_ips(f, ips, n, T);
	put_ips(f, ips, n, TA);
	free(ips);
	put_slices(f, a, "owned");
	put_slices(f, a, "owned_icmp");
}

static const char k_table[] =
	"table " T " {\n"
	"  counter blocked { }\n"
	"  set egress { type ipv4_addr; }\n"
	"  set owned { type ipv4_addr . inet_service; flags interval; }\n"
	"  set owned_icmp { typeof ip saddr . icmp id; flags interval; }\n"
	"  chain output {\n"
	"    type filter hook output priority raw; policy accept;\n"
	"    meta nfproto != ipv4 accept\n"
	"    ip saddr != @egress accept\n"
	"    ip frag-off & 0x1fff != 0 notrack accept\n"
	"    meta l4proto { tcp, udp } ip saddr . th sport @owned notrack accept\n"
	"    icmp type echo-request ip saddr . icmp id @owned_icmp notrack accept\n"
	"    icmp type { destination-unreachable, source-quench, time-exceeded,"
	" parameter-problem } notrack accept\n"
	"    meta l4proto tcp counter name blocked reject with tcp reset\n"
	"    counter name blocked drop\n"
	"  }\n"
	"  chain prerouting {\n"
	"    type filter hook prerouting priority raw; policy accept;\n"
	"    meta nfproto != ipv4 accept\n"
	"    ip daddr @egress notrack\n"
	"  }\n"
	"}\n"
	/* Every server of the DC holds the egress IPs: none may answer ARP for
	 * them, or a neighbour could send raw return traffic to whichever
	 * answered last instead of through the router's GUE. */
	"table " TA " {\n"
	"  set egress { type ipv4_addr; }\n"
	"  chain input {\n"
	"    type filter hook input priority filter; policy accept;\n"
	"    arp operation request arp daddr ip @egress drop\n"
	"  }\n"
	"}\n";

static int apply(const struct su_assignment *a, bool create, struct su_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int rc;

	if (!f)
		return su_err__set(err, ENOMEM, "out of memory");
	if (create) /* stale tables from a crashed agent go, in the same transaction */
		fputs("table " T "\ndelete table " T "\ntable " TA "\ndelete table " TA "\n", f);
	fputs(k_table, f);
	if (!create)
		fputs("flush set " T " egress\nflush set " T " owned\nflush set " T " owned_icmp\n"
		      "flush set " TA " egress\n", f);
	put_elements(f, a);
	fclose(f);
	rc = nft_run(buf);
	free(buf);
	if (rc)
		return su_err__set(err, -rc, "nft refused the %s ruleset (is nftables installed?)",
				   AGENT_NFT_TABLE);
	return 0;
}

int agent_nft__install(const struct su_assignment *a, struct su_err *err)
{
	return apply(a, true, err);
}

int agent_nft__update(const struct su_assignment *a, struct su_err *err)
{
	return apply(a, false, err);
}

int agent_nft__remove(void)
{
	return nft_run("table " T "\ndelete table " T "\ntable " TA "\ndelete table " TA "\n");
}

int agent_nft__blocked(uint64_t *packets)
{
	FILE *p = popen("nft -j list counter " T " blocked 2>/dev/null", "r");
	json_error_t jerr;
	json_t *root, *arr, *it;
	size_t i;
	int rc = -ENOENT;

	if (!p)
		return -errno;
	root = json_loadf(p, 0, &jerr);
	pclose(p);
	arr = root ? json_object_get(root, "nftables") : NULL;
	json_array_foreach(arr, i, it) {
		json_t *c = json_object_get(it, "counter");

		if (c) {
			*packets = (uint64_t)json_integer_value(json_object_get(c, "packets"));
			rc = 0;
		}
	}
	json_decref(root);
	return rc;
}
