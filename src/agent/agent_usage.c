/* Who uses this server's slices right now: every TCP and UDP socket bound to
 * an egress IP with a source port in one of the slices (sock_diag), grouped
 * per slice and per destination.  `agent status` and the agent's metrics
 * both read it; exhaustion is per destination (a 4-tuple needs a free
 * source port only toward the same destination IP:port), so that is how it
 * is reported. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "lib/sockdiag.h"

static int find_entry(const struct su_assignment *a, uint32_t ip, uint16_t port)
{
	for (uint32_t i = 0; i < a->n; i++)
		if (a->v[i].ip == ip && port >= a->v[i].lo && port <= a->v[i].hi)
			return (int)i;
	return -1;
}

static int on_sock(const struct su_sockdiag_sock *s, void *arg)
{
	struct agent_usage *u = arg;
	int e;

	if (s->state == 10 /* TCP_LISTEN */ || !s->dst)
		return 0; /* a listener or an unconnected socket holds no 4-tuple */
	e = find_entry(u->a, s->src, s->sport);
	if (e < 0)
		return 0;
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 1024;
		struct agent_use *v = realloc(u->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		u->v = v;
		u->cap = cap;
	}
	u->v[u->n++] = (struct agent_use){ (uint32_t)e, s->dst, s->dport, s->sport, s->proto };
	return 0;
}

static int cmp_use(const void *x, const void *y)
{
	const struct agent_use *a = x, *b = y;

	if (a->entry != b->entry)
		return a->entry < b->entry ? -1 : 1;
	if (a->proto != b->proto)
		return a->proto - b->proto;
	if (a->dst != b->dst)
		return a->dst < b->dst ? -1 : 1;
	if (a->dport != b->dport)
		return a->dport - b->dport;
	return a->sport - b->sport;
}

int agent_usage__collect(const struct su_assignment *a, struct agent_usage *u)
{
	uint32_t *ips, n = agent_plan__ips(a, &ips);
	int rc = ips ? 0 : -ENOMEM;

	u->a = a;
	for (uint32_t i = 0; !rc && i < n; i++) {
		struct su_sockdiag_query q = { .src = ips[i], .sport = -1, .dport = -1 };

		q.proto = IPPROTO_TCP;
		rc = su_sockdiag__dump(&q, on_sock, u);
		q.proto = IPPROTO_UDP;
		if (!rc)
			rc = su_sockdiag__dump(&q, on_sock, u);
	}
	free(ips);
	if (u->n)
		qsort(u->v, u->n, sizeof(*u->v), cmp_use);
	return rc;
}

void agent_usage__free(struct agent_usage *u)
{
	free(u->v);
	u->v = NULL;
	u->n = u->cap = 0;
}

/* End of the run of sockets starting at i that share slice, protocol and
 * destination (u->v is sorted that way). */
static size_t group_end(const struct agent_usage *u, size_t i)
{
	size_t j = i;

	while (j < u->n && u->v[j].entry == u->v[i].entry && u->v[j].proto == u->v[i].proto &&
	       u->v[j].dst == u->v[i].dst && u->v[j].dport == u->v[i].dport)
		j++;
	return j;
}

void agent_usage__summarize(const struct agent_usage *u, struct agent_slice_stat *st)
{
	uint8_t *seen = calloc(65536, 1);

	for (size_t i = 0, j; i < u->n; i = j) {
		struct agent_slice_stat *s = &st[u->v[i].entry];

		j = group_end(u, i);
		if (j - i > s->busiest) {
			s->busiest = (uint32_t)(j - i);
			s->busiest_dst = u->v[i].dst;
			s->busiest_dport = u->v[i].dport;
			s->busiest_proto = u->v[i].proto;
		}
	}
	for (size_t i = 0; i < u->n; i++) {
		struct agent_slice_stat *s = &st[u->v[i].entry];

		s->sockets++;
		if (seen && (i == 0 || u->v[i].entry != u->v[i - 1].entry))
			memset(seen, 0, 65536);
		if (seen && !seen[u->v[i].sport]) {
			seen[u->v[i].sport] = 1;
			s->ports++;
		}
	}
	free(seen);
}

static int cmp_dest(const void *x, const void *y)
{
	const struct agent_dest_use *a = x, *b = y;

	return a->sockets < b->sockets ? 1 : a->sockets > b->sockets ? -1 : 0;
}

size_t agent_usage__top(const struct agent_usage *u, struct agent_dest_use *out, size_t n)
{
	size_t have = 0;

	if (!n)
		return 0;
	/* Keep the n largest in out, sorted, with one insertion per group:
	 * n is small (a metrics top-N), groups may be many. */
	for (size_t i = 0, j; i < u->n; i = j) {
		struct agent_dest_use d;

		j = group_end(u, i);
		d = (struct agent_dest_use){ u->v[i].entry, u->v[i].dst, u->v[i].dport, u->v[i].proto,
					     (uint32_t)(j - i) };
		if (have == n && d.sockets <= out[n - 1].sockets)
			continue;
		if (have < n)
			have++;
		out[have - 1] = d;
		qsort(out, have, sizeof(*out), cmp_dest);
	}
	return have;
}
