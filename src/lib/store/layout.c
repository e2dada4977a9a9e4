/* A plan cut into the shards each node reads (see store.h).  A router's view
 * is its DC's shard (its IPs with their slots, its servers, every DC's router
 * address) plus the ranges shard (which DC owns each run of IPs): the other
 * DCs' slots are never its business.  An agent's view is one server's slots. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/store.h"

void su_layout__free(struct su_shard *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].data);
	}
	free(v);
}

struct masks {
	uint8_t *dcs, *servers, *prefixes, *demands, *ips;
};

static void masks__free(struct masks *m)
{
	free(m->dcs);
	free(m->servers);
	free(m->prefixes);
	free(m->demands);
	free(m->ips);
}

static int masks__alloc(struct masks *m, const struct su_plan *p)
{
	m->dcs = calloc(p->n_dcs + 1, 1);
	m->servers = calloc(p->n_servers + 1, 1);
	m->prefixes = calloc(p->n_prefixes + 1, 1);
	m->demands = calloc(p->n_demands + 1, 1);
	m->ips = calloc(p->n_ips + 1, 1);
	if (m->dcs && m->servers && m->prefixes && m->demands && m->ips)
		return 0;
	masks__free(m);
	return -ENOMEM;
}

static int add_shard(struct su_shard **v, size_t *n, char *name, char *data, size_t len, uint64_t digest)
{
	struct su_shard *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!name || !nv) {
		free(name);
		free(data);
		if (nv)
			*v = nv;
		return -ENOMEM;
	}
	*v = nv;
	nv[(*n)++] = (struct su_shard){ name, data, len, digest };
	return 0;
}

/* What every cutter shares: the plan, its digests, the previous version's. */
struct cut_in {
	const struct su_plan *p;
	struct su_plan_digests d;
	su_layout_prev_fn prev;
	void *ctx;
};

/* A view's shard, formatted only when its digest differs from the previous
 * version's (an unchanged one is named with its digest and no data). */
static int add_view(struct su_shard **v, size_t *n, const struct cut_in *in, const struct su_plan_view *view,
		    char *name)
{
	uint64_t digest = name ? su_plan__view_digest(in->p, &in->d, view) : 0;
	char *data;
	size_t len;
	int ret;

	if (digest && in->prev && in->prev(in->ctx, name) == digest)
		return add_shard(v, n, name, NULL, 0, digest);
	if ((ret = su_plan__format_view(in->p, view, &data, &len))) {
		free(name);
		return ret;
	}
	return add_shard(v, n, name, data, len, digest);
}

/* The view the masks select, content-addressed (serial 0); a retired
 * server's own view unretires it. */
static struct su_plan_view mask_view(const struct su_plan *p, const struct masks *m, int32_t only_server)
{
	return (struct su_plan_view){ .dcs = m->dcs, .servers = m->servers, .prefixes = m->prefixes,
				      .demands = m->demands, .ips = m->ips, .only_server = only_server,
				      .unretire = only_server >= 0 && p->servers[only_server].retired,
				      .serial0 = true, .part = SU_PART_ALL };
}

static char *shard_name(const char *kind, const char *x)
{
	char *s;

	return asprintf(&s, "%s/%s", kind, x) < 0 ? NULL : s;
}

/* Row indexes grouped by an owner (a DC's IPs, a server's IPs), ascending
 * within each group: rows[start[g] .. start[g+1]). */
struct groups {
	uint32_t *rows;
	uint32_t *start;
};

static void groups__free(struct groups *g)
{
	free(g->rows);
	free(g->start);
}

static int dc_groups(const struct su_plan *p, struct groups *g)
{
	uint32_t *fill = calloc(p->n_dcs + 1, sizeof(*fill));

	g->start = calloc(p->n_dcs + 2, sizeof(*g->start));
	g->rows = malloc((p->n_ips + 1) * sizeof(*g->rows));
	if (!fill || !g->start || !g->rows) {
		free(fill);
		groups__free(g);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < p->n_ips; i++)
		g->start[p->ips[i].dc + 1]++;
	for (uint32_t d = 0; d < p->n_dcs; d++)
		g->start[d + 1] += g->start[d];
	for (uint32_t i = 0; i < p->n_ips; i++)
		g->rows[g->start[p->ips[i].dc] + fill[p->ips[i].dc]++] = i;
	free(fill);
	return 0;
}

static void dc_ips_mark(const struct su_plan *p, const struct groups *g, uint32_t d, struct masks *m, uint8_t on)
{
	for (uint32_t k = g->start[d]; k < g->start[d + 1]; k++) {
		const struct su_plan_ip *ip = &p->ips[g->rows[k]];

		m->ips[g->rows[k]] = on;
		m->prefixes[ip->prefix] = on;
		/* A slot's previous owner may be in the DC the IP moved from. */
		for (uint32_t j = 0; j < p->slices_per_ip; j++) {
			int32_t prev = p->slots[ip->first_slot + j].prev_server;

			if (on && prev >= 0 && p->slots[ip->first_slot + j].state != SU_FREE)
				m->servers[prev] = 1; /* reset by the next DC's server pass */
		}
	}
}

static int dc_shard(const struct cut_in *in, uint32_t d, const struct groups *g, struct masks *m,
		    struct su_shard **v, size_t *n)
{
	const struct su_plan *p = in->p;
	struct su_plan_view view;
	int ret;

	memset(m->dcs, 1, p->n_dcs); /* every DC's router: the backbone next hops */
	for (uint32_t s = 0; s < p->n_servers; s++)
		m->servers[s] = p->servers[s].dc == d;
	for (uint32_t x = 0; x < p->n_demands; x++)
		m->demands[x] = p->demands[x].dc == d;
	dc_ips_mark(p, g, d, m, 1);
	view = mask_view(p, m, -1);
	view.ip_list = g->rows + g->start[d];
	view.n_ip_list = g->start[d + 1] - g->start[d];
	ret = add_view(v, n, in, &view, shard_name("dc", p->dcs[d].name));
	dc_ips_mark(p, g, d, m, 0); /* the IP and prefix masks stay all-zero between DCs */
	return ret;
}

/* Each server's slots (as owner, or handing one over as the previous
 * owner: it serves the slot until the deadline), as indexes into
 * plan->slots, and the IPs they are on, each once, in IP order: a server's
 * view is built from them without a scan of the plan, or of every slot of
 * its IPs, per server. */
struct server_index {
	struct groups ips, slots;
};

static void server_index__free(struct server_index *o)
{
	groups__free(&o->ips);
	groups__free(&o->slots);
}

/* Pass 0 counts, pass 1 fills. */
static void server_slot_add(struct server_index *o, uint32_t *n_ips, uint32_t *n_slots, uint32_t *last_ip, int32_t s,
			    uint32_t i, uint32_t slot, int pass)
{
	if (s < 0)
		return;
	if (last_ip[s] != i + 1) {
		last_ip[s] = i + 1;
		if (pass)
			o->ips.rows[o->ips.start[s] + n_ips[s]] = i;
		n_ips[s]++;
	}
	if (pass)
		o->slots.rows[o->slots.start[s] + n_slots[s]] = slot;
	n_slots[s]++;
}

static void server_index_pass(const struct su_plan *p, struct server_index *o, uint32_t *n_ips, uint32_t *n_slots,
			      uint32_t *last_ip, int pass)
{
	memset(last_ip, 0, (p->n_servers + 1) * sizeof(*last_ip));
	for (uint32_t i = 0; i < p->n_ips; i++) {
		for (uint32_t k = 0; k < p->slices_per_ip; k++) {
			uint32_t g = p->ips[i].first_slot + k;
			const struct su_plan_slot *sl = &p->slots[g];

			if (sl->state == SU_FREE || sl->server < 0)
				continue;
			server_slot_add(o, n_ips, n_slots, last_ip, sl->server, i, g, pass);
			if (sl->prev_server != sl->server)
				server_slot_add(o, n_ips, n_slots, last_ip, sl->prev_server, i, g, pass);
		}
	}
}

/* Turns per-server counts into group starts (counts reset); -ENOMEM. */
static int groups_from_counts(struct groups *g, uint32_t *count, uint32_t n)
{
	uint32_t total = 0;

	for (uint32_t s = 0; s < n; s++) {
		g->start[s] = total;
		total += count[s];
		count[s] = 0;
	}
	g->start[n] = total;
	return (g->rows = malloc((total + 1) * sizeof(*g->rows))) ? 0 : -ENOMEM;
}

static int server_index(const struct su_plan *p, struct server_index *o)
{
	uint32_t *n_ips = calloc(p->n_servers + 1, sizeof(*n_ips));
	uint32_t *n_slots = calloc(p->n_servers + 1, sizeof(*n_slots));
	uint32_t *last_ip = malloc((p->n_servers + 1) * sizeof(*last_ip)); /* last IP listed + 1, per server */
	int ret = -ENOMEM;

	o->ips.start = calloc(p->n_servers + 2, sizeof(*o->ips.start));
	o->slots.start = calloc(p->n_servers + 2, sizeof(*o->slots.start));
	if (n_ips && n_slots && last_ip && o->ips.start && o->slots.start) {
		server_index_pass(p, o, n_ips, n_slots, last_ip, 0);
		ret = groups_from_counts(&o->ips, n_ips, p->n_servers);
		if (!ret)
			ret = groups_from_counts(&o->slots, n_slots, p->n_servers);
	}
	if (!ret)
		server_index_pass(p, o, n_ips, n_slots, last_ip, 1);
	free(n_ips);
	free(n_slots);
	free(last_ip);
	if (ret)
		server_index__free(o);
	return ret;
}

/* The other end of each handed slot of server s (its new owner, or its
 * previous one) is named on the slot line: that server and its DC are in
 * the view (the second hop's address); so is the DC an IP moved from. */
static void peers_mark(const struct su_plan *p, uint32_t s, const struct server_index *o, struct masks *m,
		       uint8_t on)
{
	for (uint32_t k = o->slots.start[s]; k < o->slots.start[s + 1]; k++) {
		const struct su_plan_slot *sl = &p->slots[o->slots.rows[k]];
		int32_t peer = sl->prev_server == (int32_t)s ? sl->server : sl->prev_server;

		if (peer < 0 || peer == (int32_t)s)
			continue;
		m->servers[peer] = on;
		m->dcs[p->servers[peer].dc] = on;
	}
	for (uint32_t k = o->ips.start[s]; k < o->ips.start[s + 1]; k++)
		if (p->ips[o->ips.rows[k]].prev_dc >= 0)
			m->dcs[p->ips[o->ips.rows[k]].prev_dc] = on;
}

static void server_ips_mark(const struct su_plan *p, uint32_t s, const struct server_index *o, struct masks *m,
			    uint8_t on)
{
	m->dcs[p->servers[s].dc] = on;
	m->servers[s] = on;
	for (uint32_t k = o->ips.start[s]; k < o->ips.start[s + 1]; k++) {
		const struct su_plan_ip *ip = &p->ips[o->ips.rows[k]];

		m->ips[o->ips.rows[k]] = on;
		m->prefixes[ip->prefix] = on;
		m->demands[ip->demand] = on;
		/* A prefix record names the DCs it allows: they must be in the view. */
		for (uint32_t j = 0; j < p->prefixes[ip->prefix].n_dcs; j++)
			m->dcs[p->prefixes[ip->prefix].dcs[j]] = on;
	}
	peers_mark(p, s, o, m, on);
}

static int server_shard(const struct cut_in *in, uint32_t s, const struct server_index *o, struct masks *m,
			struct su_shard **v, size_t *n)
{
	struct su_plan_view view;
	int ret;

	server_ips_mark(in->p, s, o, m, 1);
	/* Its IPs and slots by index: the view scans neither every IP nor
	 * every slot of its IPs. */
	view = mask_view(in->p, m, (int32_t)s);
	view.ip_list = o->ips.rows + o->ips.start[s];
	view.n_ip_list = o->ips.start[s + 1] - o->ips.start[s];
	view.slot_list = o->slots.rows + o->slots.start[s];
	view.n_slot_list = o->slots.start[s + 1] - o->slots.start[s];
	ret = add_view(v, n, in, &view, shard_name("server", in->p->servers[s].name));
	/* Undo only what was set: the masks stay all-zero between servers. */
	server_ips_mark(in->p, s, o, m, 0);
	return ret;
}

/* Retired server s names no active server and no earlier retired one. */
static bool first_retired(const struct su_plan *p, uint32_t s)
{
	if (su_plan__find_server(p, p->servers[s].name) >= 0)
		return false;
	for (uint32_t j = 0; j < s; j++)
		if (p->servers[j].retired && !strcmp(p->servers[j].name, p->servers[s].name))
			return false;
	return true;
}

static int server_shards(const struct cut_in *in, struct su_shard **v, size_t *n)
{
	const struct su_plan *p = in->p;
	struct masks m = { 0 };
	struct server_index o = { 0 };
	int ret = masks__alloc(&m, p);

	if (!ret)
		ret = server_index(p, &o);
	/* A retired server's view too (a drained one whose slices still drain),
	 * unless the name is active again elsewhere: the active one wins. */
	for (uint32_t s = 0; !ret && s < p->n_servers; s++)
		if (!p->servers[s].retired || first_retired(p, s))
			ret = server_shard(in, s, &o, &m, v, n);
	server_index__free(&o);
	masks__free(&m);
	return ret;
}

/* The whole plan, for the tools, cut into parts that a small change leaves
 * mostly untouched, so a version rewrites (and cuts) only the parts it
 * changed:
 *   plan/head         the header and the tables, with serial 0 (the version
 *                     gives the serial, as for the views);
 *   plan/IP           IP records (with their slots) from IP on, to a
 *                     content-defined boundary (part_boundary), so a change
 *                     moves only the boundaries next to it;
 *   plan/end          the end line;
 *   plan              the manifest: "softunicast-parts 1", then the part
 *                     names in order; the plan is their concatenation. */
static uint32_t ip_records(const struct su_plan *p, uint32_t i)
{
	uint32_t n = 1;

	for (uint32_t k = 0; k < p->slices_per_ip; k++)
		n += p->slots[p->ips[i].first_slot + k].state != SU_FREE;
	return n;
}

/* Where the plan's and the ranges' parts end: content-defined, so that a
 * change moves only the boundaries next to it.  Each record (an IP's line
 * and its slot lines; a run) ends its part with probability 1/limit, by a
 * hash of the IP it belongs to: a part ends before IP ip, weighing `weight`
 * records, when hash(ip) mod limit < weight, once the part holds a quarter
 * of limit (and at 8 times limit whatever the hash).  A boundary counted
 * from the start instead (a part ends at the first block start after
 * `limit` records) shifts every later part when a change adds a record
 * near a boundary, and always in a dense plan (IPs of a thousand slots,
 * where every part ended at a count): a full rewrite for a one-IP move. */
static bool part_boundary(uint64_t n, uint64_t limit, uint32_t ip, uint32_t weight)
{
	uint64_t h = ((uint64_t)ip * 0x9e3779b97f4a7c15ull) >> 32;

	return (4 * n >= limit && h % limit < weight) || n >= 8 * limit;
}

/* The IPs of the part starting at first: its end (exclusive). */
static uint32_t part_end(const struct su_plan *p, uint32_t first)
{
	uint64_t records = ip_records(p, first);
	uint32_t i = first + 1;

	for (; i < p->n_ips && !part_boundary(records, SU_LAYOUT_PART_RECORDS, p->ips[i].ip, ip_records(p, i));
	     records += ip_records(p, i++))
		;
	return i;
}

static int text_shard(struct su_shard **v, size_t *n, const char *name, char *text, size_t len)
{
	return text ? add_shard(v, n, strdup(name), text, len, 0) : -ENOMEM;
}

/* Ends the manifest mf of NAME's parts (opened on *manifest, NAME/head and
 * NAME/IP listed): NAME/end ("end COUNT"), then the manifest itself as shard
 * NAME.  ret: the parts' outcome so far; on an error nothing more is added. */
static int parts_finish(struct su_shard **v, size_t *n, const char *name, FILE *mf, char **manifest, size_t *mlen,
			uint64_t count, int ret)
{
	char end_name[64], *end = NULL;

	snprintf(end_name, sizeof(end_name), "%s/end", name);
	if (mf)
		fprintf(mf, "%s\n", end_name);
	if (!mf || fclose(mf)) {
		free(*manifest);
		return ret ? ret : -ENOMEM;
	}
	if (!ret && asprintf(&end, "end %" PRIu64 "\n", count) < 0)
		end = NULL;
	if (!ret)
		ret = text_shard(v, n, end_name, end, end ? strlen(end) : 0);
	if (ret) {
		free(*manifest);
		return ret;
	}
	return text_shard(v, n, name, *manifest, *mlen);
}

static int plan_parts(const struct cut_in *in, const uint32_t *all, struct su_shard **v, size_t *n)
{
	const struct su_plan *p = in->p;
	struct su_plan_view head = { .only_server = -1, .serial0 = true, .part = SU_PART_HEAD };
	char *manifest = NULL, name[64], a[SU_ADDR_STRLEN];
	size_t mlen = 0;
	FILE *mf = open_memstream(&manifest, &mlen);
	int ret = mf ? add_view(v, n, in, &head, strdup("plan/head")) : -ENOMEM;

	if (mf)
		fputs("softunicast-parts 1\nplan/head\n", mf);
	for (uint32_t first = 0, last; !ret && first < p->n_ips; first = last) {
		struct su_plan_view part = { .only_server = -1, .part = SU_PART_IPS };

		last = part_end(p, first);
		part.ip_list = all + first;
		part.n_ip_list = last - first;
		snprintf(name, sizeof(name), "plan/%s", su_addr__str(p->ips[first].ip, a));
		ret = add_view(v, n, in, &part, strdup(name));
		fprintf(mf, "%s\n", name);
	}
	return parts_finish(v, n, "plan", mf, &manifest, &mlen, ret ? 0 : su_plan__records(p), ret);
}

uint32_t su_layout__range_runs = SU_LAYOUT_RANGE_RUNS;

/* The run of consecutive IPs of one DC from IP index i: its end (exclusive). */
static uint32_t run_end(const struct su_plan *p, uint32_t i)
{
	uint32_t j = i + 1;

	for (; j < p->n_ips && p->ips[j].dc == p->ips[i].dc && p->ips[j].ip == p->ips[j - 1].ip + 1; j++)
		;
	return j;
}

/* The runs from IP index first on, "range FIRST LAST DC" each, to the next
 * boundary (part_boundary, a run weighing one): the end (exclusive); *runs
 * counts them. */
static uint32_t ranges_part(const struct su_plan *p, uint32_t first, FILE *fp, uint64_t *runs)
{
	char a[SU_ADDR_STRLEN], b[SU_ADDR_STRLEN];
	uint64_t n = 0;
	uint32_t i = first;

	do {
		uint32_t j = run_end(p, i);

		fprintf(fp, "range %s %s %s\n", su_addr__str(p->ips[i].ip, a), su_addr__str(p->ips[j - 1].ip, b),
			p->dcs[p->ips[i].dc].name);
		n++;
		i = j;
	} while (i < p->n_ips && !part_boundary(n, su_layout__range_runs ? su_layout__range_runs : 1, p->ips[i].ip, 1));
	*runs += n;
	return i;
}

/* Which DC owns each IP, as runs, the second half of every router's view,
 * kept in parts as the plan is (a move rewrites one part, and a router
 * downloads that one):
 *   ranges/head   "softunicast-ranges 1", "serial 0" (content-addressed);
 *   ranges/IP     the runs from IP on (ranges_part);
 *   ranges/end    "end RUNS";
 *   ranges        the manifest: "softunicast-parts 1", then the part names;
 * the ranges text su_layout__dc_view reads is their concatenation. */
static int ranges_parts(const struct su_plan *p, struct su_shard **v, size_t *n)
{
	static const char head[] = "softunicast-ranges 1\nserial 0\n";
	char *manifest = NULL, *part = NULL, name[64], a[SU_ADDR_STRLEN];
	size_t mlen = 0, plen = 0;
	uint64_t runs = 0;
	FILE *mf = open_memstream(&manifest, &mlen), *fp;
	int ret = mf ? text_shard(v, n, "ranges/head", strdup(head), sizeof(head) - 1) : -ENOMEM;

	if (mf)
		fputs("softunicast-parts 1\nranges/head\n", mf);
	for (uint32_t first = 0, last; !ret && first < p->n_ips; first = last) {
		if (!(fp = open_memstream(&part, &plen))) {
			ret = -ENOMEM;
			break;
		}
		last = ranges_part(p, first, fp, &runs);
		snprintf(name, sizeof(name), "ranges/%s", su_addr__str(p->ips[first].ip, a));
		ret = fclose(fp) ? -ENOMEM : text_shard(v, n, name, part, plen);
		fprintf(mf, "%s\n", name);
	}
	return parts_finish(v, n, "ranges", mf, &manifest, &mlen, runs, ret);
}

static int dc_shards(const struct cut_in *in, struct su_shard **v, size_t *n)
{
	struct masks m = { 0 };
	struct groups g = { 0 };
	int ret = masks__alloc(&m, in->p);

	if (!ret)
		ret = dc_groups(in->p, &g);
	for (uint32_t d = 0; !ret && d < in->p->n_dcs; d++)
		ret = dc_shard(in, d, &g, &m, v, n);
	groups__free(&g);
	masks__free(&m);
	return ret;
}

static int whole_shards(const struct cut_in *in, struct su_shard **v, size_t *n)
{
	uint32_t *all = malloc((in->p->n_ips + 1) * sizeof(*all)); /* 0, 1, ...: each part's IP list */
	int ret = all ? 0 : -ENOMEM;

	for (uint32_t i = 0; all && i < in->p->n_ips; i++)
		all[i] = i;
	if (!ret)
		ret = plan_parts(in, all, v, n);
	free(all);
	return ret ? ret : ranges_parts(in->p, v, n);
}

/* The three kinds of shards are cut side by side: each only reads the plan
 * and its digests (the formatting keeps no state), and a publish waits for
 * the slowest. */
struct cut {
	int (*fn)(const struct cut_in *in, struct su_shard **v, size_t *n);
	const struct cut_in *in;
	struct su_shard *v;
	size_t n;
	int ret;
};

static void *cut_main(void *arg)
{
	struct cut *c = arg;

	c->ret = c->fn(c->in, &c->v, &c->n);
	return NULL;
}

static int cut_all(const struct cut_in *in, struct su_shard **out, size_t *n_out)
{
	struct cut c[3] = { { whole_shards, in, NULL, 0, 0 }, { dc_shards, in, NULL, 0, 0 },
			    { server_shards, in, NULL, 0, 0 } };
	pthread_t t[3];
	bool started[3] = { false };
	struct su_shard *v = NULL;
	size_t n = 0;
	int ret = 0;

	for (int i = 1; i < 3; i++)
		started[i] = !pthread_create(&t[i], NULL, cut_main, &c[i]);
	for (int i = 0; i < 3; i++)
		if (!started[i])
			cut_main(&c[i]);
	for (int i = 0; i < 3; i++) {
		if (started[i])
			pthread_join(t[i], NULL);
		ret = ret ? ret : c[i].ret;
	}
	if (!ret && !(v = malloc((c[0].n + c[1].n + c[2].n + 1) * sizeof(*v))))
		ret = -ENOMEM;
	for (int i = 0; i < 3; i++) {
		if (!ret) {
			memcpy(v + n, c[i].v, c[i].n * sizeof(*v));
			n += c[i].n;
			free(c[i].v);
		} else {
			su_layout__free(c[i].v, c[i].n);
		}
	}
	if (ret) {
		free(v);
		return ret;
	}
	*out = v;
	*n_out = n;
	return 0;
}

int su_layout__shards(const struct su_plan *p, su_layout_prev_fn prev, void *ctx, struct su_shard **out,
		      size_t *n_out)
{
	struct cut_in in = { .p = p, .prev = prev, .ctx = ctx };
	int ret = su_plan_digests__build(p, &in.d);

	if (!ret)
		ret = cut_all(&in, out, n_out);
	su_plan_digests__free(&in.d);
	return ret;
}

/* ---- reading a router's view ------------------------------------------------ */

static int remote_demand(struct su_plan *p, uint32_t dc, int32_t *cache)
{
	struct su_tags none = { 0 };

	/* The router needs only the owner DC of a remote IP; the plan model
	 * wants a tag-set of that DC, so each remote DC gets an empty one (a
	 * valid snapshot once written: the view is persisted as a plan file). */
	if (cache[dc] < 0)
		cache[dc] = su_plan__add_demand(p, dc, &none, 1, false);
	return cache[dc];
}

static int add_remote(struct su_plan *p, uint32_t first, uint32_t last, uint32_t dc, uint32_t prefix,
		      int32_t *cache)
{
	int demand = remote_demand(p, dc, cache);
	/* A retired DC only holds IPs that drain: say so, as the plan does. */
	uint8_t state = p->dcs[dc].retired ? SU_DRAINING : SU_ACTIVE;

	/* Another DC's slots are never this router's business: its IPs share
	 * one block of free slots (a million IPs cost their entries alone). */
	return demand < 0 ? demand : su_plan__add_slotless_ips(p, first, last, dc, (uint32_t)demand, prefix, state,
							       state == SU_DRAINING ? 1 : 0);
}

size_t su_layout__max_view_bytes = (size_t)1 << 30;

/* A corrupt or hostile range ("0.0.0.0 255.255.255.255") would have the
 * router allocate an entry per address: refused fast. */
static bool too_big(const struct su_plan *p, uint64_t more)
{
	return (p->n_ips + more) * sizeof(struct su_plan_ip) > su_layout__max_view_bytes;
}

static int parse_ranges(struct su_plan *p, char *text, const char *name, uint32_t self, struct su_err *err)
{
	struct su_prefix4 any = { 0, 0 };
	struct su_tags none = { 0 };
	int32_t *cache = malloc((p->n_dcs + 1) * sizeof(*cache));
	int prefix = su_plan__add_prefix(p, &any, &none, NULL, 0, false);
	unsigned line = 0, runs = 0;
	bool ended = false;
	int ret = 0;

	if (!cache || prefix < 0) {
		free(cache);
		return su_err__set(err, ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < p->n_dcs; i++)
		cache[i] = -1;
	for (char *save = NULL, *l = strtok_r(text, "\n", &save); !ret && l; l = strtok_r(NULL, "\n", &save)) {
		char a[32], b[32], dc[256];
		uint32_t first, last;
		int d;

		line++;
		if (line <= 2 || ended)
			continue; /* header: checked by the caller */
		if (sscanf(l, "end %u", &runs) == 1 && (ended = true))
			continue;
		if (sscanf(l, "range %31s %31s %255s", a, b, dc) != 3 || su_addr__parse(a, &first) ||
		    su_addr__parse(b, &last) || last < first || (d = su_plan__find_dc(p, dc)) < 0)
			ret = su_err__set(err, EBADMSG, "%s:%u: bad range record", name, line);
		else if ((uint32_t)d != self && too_big(p, (uint64_t)last - first + 1))
			ret = su_err__set(err, EFBIG, "%s:%u: range %s-%s: more addresses than a view holds (%zu bytes at most)",
					  name, line, a, b, su_layout__max_view_bytes);
		else if ((uint32_t)d != self && (ret = add_remote(p, first, last, (uint32_t)d, (uint32_t)prefix, cache)))
			ret = su_err__set(err, -ret, "%s:%u: %s", name, line, strerror(-ret));
	}
	free(cache);
	if (!ret && !ended)
		ret = su_err__set(err, EBADMSG, "%s: no 'end' record: truncated", name);
	return ret;
}

int su_layout__dc_view(const char *dc_text, size_t dc_len, const char *ranges, size_t ranges_len,
		       const char *dc, const char *name, struct su_plan **out, struct su_err *err)
{
	struct su_plan *p;
	char *copy;
	uint64_t serial = 0;
	int self, ret = su_plan__parse(dc_text, dc_len, name, &p, err);

	if (ret)
		return ret;
	if (sscanf(ranges, "softunicast-ranges 1\nserial %" SCNu64, &serial) != 1 || serial != p->serial) {
		uint64_t shard_serial = p->serial;

		su_plan__free(p);
		return su_err__set(err, EBADMSG, "%s: ranges of serial %" PRIu64 " with a DC shard of serial %" PRIu64,
				   name, serial, shard_serial);
	}
	if ((self = su_plan__find_dc(p, dc)) < 0) {
		su_plan__free(p);
		return su_err__set(err, EBADMSG, "%s: DC %s is not in its own shard", name, dc);
	}
	if (!(copy = strndup(ranges, ranges_len))) {
		su_plan__free(p);
		return su_err__set(err, ENOMEM, "out of memory");
	}
	ret = parse_ranges(p, copy, name, (uint32_t)self, err);
	free(copy);
	if (!ret) {
		struct su_err e;

		if ((ret = su_plan__canonicalize(p, &e)))
			ret = su_err__set(err, -ret, "%s: %s", name, e.msg);
	}
	if (ret) {
		su_plan__free(p);
		return ret;
	}
	*out = p;
	return 0;
}
