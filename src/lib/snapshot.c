/* Plan snapshots: a line-oriented text file, one record per line, written in
 * canonical order so equal plans are byte-identical and `diff`/`grep` work on
 * them.  The loader trusts nothing: every reference, range and state is
 * checked, and a truncated file is caught by the closing `end COUNT`.
 *
 *   softunicast-plan 1
 *   serial N
 *   ports LO-HI slice SIZE
 *   drain SECONDS
 *   dc NAME ROUTER [retired]
 *   server NAME DC ADDR [retired]
 *   prefix CIDR TAGS DCS|* [retired]
 *   demand DC TAGS SLICES [retired]
 *   ip ADDR DC CIDR PREFIX-TAGS DEMAND-TAGS active|draining [DEADLINE] [from DC UNTIL]
 *   slot ADDR PORT SERVER SERVER-ADDR active|draining [DEADLINE] [from SERVER ADDR DC UNTIL]
 *   end RECORDS
 *
 * `from` (live moves, issue 10): the previous owner of a moved IP (its DC)
 * or of a handed slot (its server, which may be in another DC for an IP
 * that moved), kept until UNTIL (unix seconds).  A draining slot's UNTIL is
 * its DEADLINE: one clock for both.  Old plans have no `from`: same format.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/fleet.h"
#include "lib/geo.h"
#include "lib/plan.h"
#include "lib/strmap.h"
#include "lib/util.h"

#define MAX_FIELDS 16

/* ---- writing ---------------------------------------------------------------- */

static void write_state(FILE *fp, uint8_t state, int64_t deadline)
{
	if (state == SU_DRAINING)
		fprintf(fp, " draining %" PRId64, deadline);
	else
		fputs_unlocked(" active", fp);
}

static void write_tags(FILE *fp, const struct su_tags *t)
{
	char *s = su_tags__format(t);

	fputs(s ? s : "-", fp);
	free(s);
}

/* A view keeps a subset of every table (NULL mask: all rows). */
#define KEEP(v, tab, i) (!(v) || !(v)->tab || (v)->tab[i])

static void write_server(FILE *fp, const struct su_plan *p, const struct su_plan_view *v, uint32_t i)
{
	char a[SU_ADDR_STRLEN];

	fprintf(fp, "server %s %s %s%s\n", p->servers[i].name, p->dcs[p->servers[i].dc].name,
		su_addr__str(p->servers[i].addr, a),
		p->servers[i].retired && !(v && v->unretire) ? " retired" : "");
}

/* peers: the servers of a one-server view with its IP list (n_peers < 0:
 * scan the mask). */
static uint64_t write_tables(FILE *fp, const struct su_plan *p, const struct su_plan_view *v,
			     const int32_t *peers, int n_peers)
{
	char a[SU_PREFIX_STRLEN];
	uint64_t records = 0;

	for (uint32_t i = 0; i < p->n_dcs; i++)
		if (KEEP(v, dcs, i) && ++records)
			fprintf(fp, "dc %s %s%s\n", p->dcs[i].name, su_addr__str(p->dcs[i].router, a),
			p->dcs[i].retired ? " retired" : "");
	for (int k = 0; k < n_peers; k++, records++)
		write_server(fp, p, v, (uint32_t)peers[k]);
	for (uint32_t i = 0; n_peers < 0 && i < p->n_servers; i++)
		if (KEEP(v, servers, i) && ++records)
			write_server(fp, p, v, i);
	for (uint32_t i = 0; i < p->n_prefixes; i++) {
		const struct su_plan_prefix *x = &p->prefixes[i];

		if (!KEEP(v, prefixes, i))
			continue;
		records++;
		fprintf(fp, "prefix %s ", su_prefix__str(&x->prefix, a));
		write_tags(fp, &x->tags);
		fputc(' ', fp);
		for (uint32_t j = 0; j < x->n_dcs; j++)
			fprintf(fp, "%s%s", j ? "," : "", p->dcs[x->dcs[j]].name);
		fprintf(fp, "%s%s\n", x->n_dcs ? "" : "*", x->retired ? " retired" : "");
	}
	for (uint32_t i = 0; i < p->n_demands; i++) {
		if (!KEEP(v, demands, i))
			continue;
		records++;
		fprintf(fp, "demand %s ", p->dcs[p->demands[i].dc].name);
		write_tags(fp, &p->demands[i].tags);
		fprintf(fp, " %u%s\n", p->demands[i].slices, p->demands[i].retired ? " retired" : "");
	}
	return records;
}

/* Slot lines are most of a large plan (1.5 million for 30,000 servers x 50
 * tag-sets), so they are assembled from pieces formatted once: the IP, and
 * each server's " NAME ADDR". */
static char *u32_text(uint32_t v, char buf[11])
{
	char *p = buf + 10;

	*p = '\0';
	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	return p;
}

/* " NAME ADDR" of server s, formatted at its first use in the view. */
static const char *server_text(char **v, const struct su_plan *p, int32_t s)
{
	char a[SU_ADDR_STRLEN];

	if (s < 0 || (size_t)s >= p->n_servers)
		return NULL;
	if (!v[s] && asprintf(&v[s], " %s %s", p->servers[s].name, su_addr__str(p->servers[s].addr, a)) < 0)
		v[s] = NULL;
	return v[s];
}

/* The IP's record and its slot lines (only_server's slots when >= 0):
 * their count, or -ENOMEM. */
static int64_t write_ip(FILE *fp, const struct su_plan *p, const struct su_plan_ip *ip, char **server_texts,
			int32_t only_server)
{
	const struct su_plan_prefix *px = &p->prefixes[ip->prefix];
	char a[SU_ADDR_STRLEN], b[SU_PREFIX_STRLEN], port[11];
	int64_t records = 1;

	fprintf(fp, "ip %s %s %s ", su_addr__str(ip->ip, a), p->dcs[ip->dc].name,
		su_prefix__str(&px->prefix, b));
	write_tags(fp, &px->tags);
	fputc(' ', fp);
	write_tags(fp, &p->demands[ip->demand].tags);
	write_state(fp, ip->state, ip->deadline);
	if (ip->prev_dc >= 0)
		fprintf(fp, " from %s %" PRId64, p->dcs[ip->prev_dc].name, ip->prev_deadline);
	fputc_unlocked('\n', fp);
	for (uint32_t s = 0; s < p->slices_per_ip; s++) {
		const struct su_plan_slot *slot = &p->slots[ip->first_slot + s];

		if (slot->state == SU_FREE ||
		    (only_server >= 0 && slot->server != only_server && slot->prev_server != only_server))
			continue;
		const char *owner = server_text(server_texts, p, slot->server);
		const char *prev = slot->prev_server >= 0 ? server_text(server_texts, p, slot->prev_server) : "";

		if (!owner || !prev)
			return -ENOMEM;
		fputs_unlocked("slot ", fp);
		fputs_unlocked(a, fp);
		fputc_unlocked(' ', fp);
		fputs_unlocked(u32_text(su_plan__slot_lo(p, s), port), fp);
		fputs_unlocked(owner, fp);
		write_state(fp, slot->state, slot->deadline);
		if (slot->prev_server >= 0)
			fprintf(fp, " from%s %s %" PRId64, prev, p->dcs[p->servers[slot->prev_server].dc].name,
				slot->deadline);
		fputc_unlocked('\n', fp);
		records++;
	}
	return records;
}


static int cmp_i32(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

	return (x > y) - (x < y);
}

/* The servers a one-server view names: that server and the other end of
 * each slot it hands over or takes over (named on the slot line), ascending
 * and unique, without a scan of all 30,000.  Returns the count (malloc'd
 * *out) or -ENOMEM. */
/* The other ends of only_server's handed slots (named on their lines). */
static size_t slot_peers(const struct su_plan_slot *sl, int32_t s, int32_t *v)
{
	size_t n = 0;

	if (sl->state == SU_FREE || (sl->server != s && sl->prev_server != s))
		return 0;
	if (sl->server >= 0 && sl->server != s)
		v[n++] = sl->server;
	if (sl->prev_server >= 0 && sl->prev_server != s)
		v[n++] = sl->prev_server;
	return n;
}

static int one_server_peers(const struct su_plan *p, const struct su_plan_view *view, int32_t **out)
{
	int32_t s = view->only_server, *v;
	size_t n = 0, cap = 1 + 2 * (view->slot_list ? view->n_slot_list :
				      (size_t)(view->ip_list ? view->n_ip_list : 0) * p->slices_per_ip);

	if (!(v = malloc(cap * sizeof(*v))))
		return -ENOMEM;
	if (KEEP(view, servers, s))
		v[n++] = s;
	for (uint32_t k = 0; view->slot_list && k < view->n_slot_list; k++)
		n += slot_peers(&p->slots[view->slot_list[k]], s, v + n);
	for (uint32_t k = 0; !view->slot_list && view->ip_list && k < view->n_ip_list; k++)
		for (uint32_t j = 0; j < p->slices_per_ip; j++)
			n += slot_peers(&p->slots[p->ips[view->ip_list[k]].first_slot + j], s, v + n);
	qsort(v, n, sizeof(*v), cmp_i32);
	size_t w = 0;

	for (size_t i = 0; i < n; i++)
		if (!w || v[w - 1] != v[i])
			v[w++] = v[i];
	*out = v;
	return (int)w;
}

static int64_t write_ips(FILE *fp, const struct su_plan *p, const struct su_plan_view *v, char **texts)
{
	int32_t only = v ? v->only_server : -1;
	int64_t records = 0, r = 0;

	if (v && v->ip_list)
		for (uint32_t k = 0; r >= 0 && k < v->n_ip_list; k++, records += r)
			r = write_ip(fp, p, &p->ips[v->ip_list[k]], texts, only);
	else
		for (uint32_t i = 0; r >= 0 && i < p->n_ips; i++, records += r)
			r = KEEP(v, ips, i) ? write_ip(fp, p, &p->ips[i], texts, only) : 0;
	return r < 0 ? r : records;
}

static void write_header(FILE *fp, const struct su_plan *p, const struct su_plan_view *v)
{
	fprintf(fp, "# softunicast address plan, written by softunicast %s; do not edit by hand\n"
		    "softunicast-plan %d\nserial %" PRIu64 "\nports %u-%u slice %u\ndrain %" PRId64 "\n",
		SU_VERSION, SU_PLAN_FORMAT, v && v->serial0 ? 0 : p->serial, p->port_lo, p->port_hi, p->slice_size, p->drain);
}

static int write_view(FILE *fp, const struct su_plan *p, const struct su_plan_view *v)
{
	enum su_plan_part part = v ? v->part : SU_PART_ALL;
	int32_t *peers = NULL;
	bool listed = v && v->only_server >= 0 && v->ip_list; /* its IPs given: no scans */
	int n_peers = listed && part != SU_PART_IPS ? one_server_peers(p, v, &peers) : -1;
	/* Each server's " NAME ADDR", made at its first slot line. */
	char **texts = calloc(p->n_servers + 1, sizeof(*texts));
	int64_t records = 4, ips = 0;

	if (!texts || (listed && part != SU_PART_IPS && n_peers < 0)) {
		free(texts);
		free(peers);
		return -ENOMEM;
	}
	if (part != SU_PART_IPS) {
		write_header(fp, p, v);
		records += (int64_t)write_tables(fp, p, v, peers, n_peers);
	}
	if (part != SU_PART_HEAD)
		ips = write_ips(fp, p, v, texts);
	if (part == SU_PART_ALL && ips >= 0)
		fprintf(fp, "end %" PRId64 "\n", records + ips);
	for (uint32_t i = 0; i < p->n_servers; i++)
		free(texts[i]);
	free(texts);
	free(peers);
	return ips < 0 ? (int)ips : ferror(fp) ? -EIO : 0;
}

uint64_t su_plan__records(const struct su_plan *p)
{
	uint64_t n = 4ull + p->n_dcs + p->n_servers + p->n_prefixes + p->n_demands + p->n_ips;

	for (uint64_t k = 0; k < p->n_slots; k++)
		n += p->slots[k].state != SU_FREE;
	return n;
}

/* ---- digests of what the writer prints (su_plan__view_digest) ----------------
 * Each digest mirrors its writer above: a field printed there is hashed
 * here (tests/unit/test_store.c "view digests" changes each one). */

static uint64_t mix(uint64_t h, uint64_t v)
{
	v *= 0x9e3779b97f4a7c15ull;
	v ^= v >> 29;
	h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

static uint64_t mix_str(uint64_t h, const char *s)
{
	return mix(h, su_fnv1a64(s, strlen(s)));
}

static uint64_t mix_tags(uint64_t h, const struct su_tags *t)
{
	h = mix(h, t->n);
	for (uint32_t k = 0; k < t->n; k++)
		h = mix_str(mix_str(h, t->v[k].key), t->v[k].value);
	return h;
}

static uint64_t dc_digest(const struct su_plan_dc *d)
{
	return mix(mix(mix_str(1, d->name), d->router), d->retired);
}

/* Without its retired flag: a view prints it or not (su_plan_view.unretire). */
static uint64_t server_digest(const struct su_plan *p, const struct su_plan_server *x)
{
	return mix(mix_str(mix_str(2, x->name), p->dcs[x->dc].name), x->addr);
}

static uint64_t prefix_digest(const struct su_plan *p, const struct su_plan_prefix *x)
{
	uint64_t h = mix(mix(mix_tags(3, &x->tags), x->prefix.addr), x->prefix.len);

	for (uint32_t j = 0; j < x->n_dcs; j++)
		h = mix_str(h, p->dcs[x->dcs[j]].name);
	return mix(mix(h, x->n_dcs), x->retired);
}

static uint64_t demand_digest(const struct su_plan *p, const struct su_plan_demand *x)
{
	return mix(mix(mix_tags(mix_str(4, p->dcs[x->dc].name), &x->tags), x->slices), x->retired);
}

/* The IP's own line. */
static uint64_t ip_head_digest(const struct su_plan *p, const struct su_plan_digests *d, const struct su_plan_ip *ip)
{
	const struct su_plan_prefix *px = &p->prefixes[ip->prefix];
	uint64_t h = mix_tags(mix_str(mix(5, ip->ip), p->dcs[ip->dc].name), &px->tags); /* CIDR below */

	/* Deadlines as write_state prints them: only a draining one (an
	 * active record's clock is not printed, and hashing it would re-cut
	 * views that did not change). */
	h = mix(mix(mix(mix_tags(mix(h, px->prefix.addr ^ (uint64_t)px->prefix.len << 32),
				   &p->demands[ip->demand].tags), ip->state),
		    ip->state == SU_DRAINING ? (uint64_t)ip->deadline : 0), (uint64_t)ip->prev_dc);
	if (ip->prev_dc >= 0)
		h = mix(mix_str(h, p->dcs[ip->prev_dc].name), (uint64_t)ip->prev_deadline);
	return h;
}

/* Slot line s of an IP as write_ip prints it; the owners' indexes too (a
 * one-server view's filter uses them). */
static uint64_t slot_digest(uint64_t h, const struct su_plan *p, const struct su_plan_digests *d, uint32_t s,
			    const struct su_plan_slot *sl)
{
	h = mix(mix(mix(mix(h, s), (uint64_t)sl->server), sl->state),
		sl->state == SU_DRAINING || sl->prev_server >= 0 ? (uint64_t)sl->deadline : 0);
	/* " NAME ADDR" of the owner; of the previous one, its DC too. */
	h = mix(h, sl->server >= 0 ? d->server_texts[sl->server] : 0);
	return mix(mix(h, (uint64_t)sl->prev_server), sl->prev_server >= 0 ?
		   mix_str(d->server_texts[sl->prev_server], p->dcs[p->servers[sl->prev_server].dc].name) : 0);
}

/* The IP's line and its slot lines, only_server's alone when >= 0, as
 * write_ip prints them. */
static uint64_t ip_digest(const struct su_plan *p, const struct su_plan_digests *d, uint32_t i, int32_t only_server)
{
	const struct su_plan_ip *ip = &p->ips[i];
	uint64_t h = d->ip_heads[i];

	for (uint32_t s = 0; s < p->slices_per_ip; s++) {
		const struct su_plan_slot *sl = &p->slots[ip->first_slot + s];

		if (sl->state == SU_FREE || (only_server >= 0 && sl->server != only_server && sl->prev_server != only_server))
			continue;
		h = slot_digest(h, p, d, s, sl);
	}
	return h;
}

void su_plan_digests__free(struct su_plan_digests *d)
{
	free(d->dcs);
	free(d->servers);
	free(d->prefixes);
	free(d->demands);
	free(d->ips);
	free(d->ip_heads);
	free(d->server_texts);
	memset(d, 0, sizeof(*d));
}

int su_plan_digests__build(const struct su_plan *p, struct su_plan_digests *d)
{
	d->dcs = malloc((p->n_dcs + 1) * sizeof(uint64_t));
	d->servers = malloc((p->n_servers + 1) * sizeof(uint64_t));
	d->prefixes = malloc((p->n_prefixes + 1) * sizeof(uint64_t));
	d->demands = malloc((p->n_demands + 1) * sizeof(uint64_t));
	d->ips = malloc((p->n_ips + 1) * sizeof(uint64_t));
	d->ip_heads = malloc((p->n_ips + 1) * sizeof(uint64_t));
	d->server_texts = malloc((p->n_servers + 1) * sizeof(uint64_t));
	if (!d->dcs || !d->servers || !d->prefixes || !d->demands || !d->ips || !d->ip_heads || !d->server_texts) {
		su_plan_digests__free(d);
		return -ENOMEM;
	}
	/* The header: the slot geometry too (su_plan__slot_lo prints ports). */
	d->head = mix_str(mix(mix(mix(mix(mix(mix(mix(6, SU_PLAN_FORMAT), p->port_lo), p->port_hi), p->slice_size),
				  (uint64_t)p->drain), p->first_slice), p->slices_per_ip), SU_VERSION);
	for (uint32_t i = 0; i < p->n_dcs; i++)
		d->dcs[i] = dc_digest(&p->dcs[i]);
	for (uint32_t i = 0; i < p->n_servers; i++) {
		d->servers[i] = server_digest(p, &p->servers[i]);
		d->server_texts[i] = mix(mix_str(8, p->servers[i].name), p->servers[i].addr);
	}
	for (uint32_t i = 0; i < p->n_prefixes; i++)
		d->prefixes[i] = prefix_digest(p, &p->prefixes[i]);
	for (uint32_t i = 0; i < p->n_demands; i++)
		d->demands[i] = demand_digest(p, &p->demands[i]);
	for (uint32_t i = 0; i < p->n_ips; i++) {
		d->ip_heads[i] = ip_head_digest(p, d, &p->ips[i]);
		d->ips[i] = ip_digest(p, d, i, -1);
	}
	return 0;
}

/* Unkept rows from i (a multiple of 8) on, in whole blocks of 64 rows
 * while they last, then of 8: a one-server view keeps a few rows of tables
 * of thousands. */
static uint32_t unkept_run(const uint8_t *mask, uint32_t i, uint32_t n)
{
	uint32_t run = 0;
	uint64_t w[8];

	for (; !((i + run) & 63) && i + run + 64 <= n; run += 64) {
		uint64_t any = 0;

		memcpy(w, mask + i + run, sizeof(w));
		for (int k = 0; k < 8; k++)
			any |= w[k];
		if (any)
			break;
	}
	for (; i + run + 8 <= n && (memcpy(w, mask + i + run, 8), !w[0]); run += 8)
		;
	return run;
}

/* Kept rows of one table, by index and digest (write_tables' order). */
static uint64_t mix_rows(uint64_t h, const uint8_t *mask, const uint64_t *rows, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t skip = mask && !(i & 7) ? unkept_run(mask, i, n) : 0;

		if (skip) {
			i += skip - 1;
			continue;
		}
		if (!mask || mask[i])
			h = mix(mix(h, i), rows[i]);
	}
	return mix(h, n);
}

/* A server's line as view v prints it (retired, unless v unretires). */
static uint64_t server_row(uint64_t h, const struct su_plan *p, const struct su_plan_digests *d,
			   const struct su_plan_view *v, uint32_t i)
{
	return mix(mix(mix(h, i), d->servers[i]), p->servers[i].retired && !(v && v->unretire));
}

/* An IP as view v prints it: a one-server view only that server's slots. */
static uint64_t ip_view_digest(const struct su_plan *p, const struct su_plan_digests *d,
			       const struct su_plan_view *v, uint32_t i)
{
	return v && v->only_server >= 0 ? ip_digest(p, d, i, v->only_server) : d->ips[i];
}

/* ip_view_digest of each listed IP, from the view's slot list: the same
 * slots, in the same order, as the filter over every slot of the IP. */
static uint64_t listed_ips_digest(uint64_t h, const struct su_plan *p, const struct su_plan_digests *d,
				  const struct su_plan_view *v)
{
	uint32_t at = 0;

	for (uint32_t k = 0; k < v->n_ip_list; k++) {
		const struct su_plan_ip *ip = &p->ips[v->ip_list[k]];
		uint64_t x = d->ip_heads[v->ip_list[k]];

		for (; at < v->n_slot_list && v->slot_list[at] - ip->first_slot < p->slices_per_ip; at++)
			x = slot_digest(x, p, d, v->slot_list[at] - ip->first_slot, &p->slots[v->slot_list[at]]);
		h = mix(h, x);
	}
	return h;
}

uint64_t su_plan__view_digest(const struct su_plan *p, const struct su_plan_digests *d,
			      const struct su_plan_view *v)
{
	enum su_plan_part part = v ? v->part : SU_PART_ALL;
	bool listed = v && v->only_server >= 0 && v->ip_list;
	uint64_t h = mix(mix(7, part), v ? (uint64_t)v->only_server : ~0ull);

	if (part != SU_PART_IPS) { /* the header: serial, ports, drain */
		h = mix(mix(h, v && v->serial0 ? 0 : p->serial), d->head);
		h = mix_rows(h, v ? v->dcs : NULL, d->dcs, p->n_dcs);
		if (listed) { /* write_tables prints the peers: the same list */
			int32_t *peers = NULL;
			int n = one_server_peers(p, v, &peers);

			if (n < 0)
				return 0;
			for (int k = 0; k < n; k++)
				h = server_row(h, p, d, v, (uint32_t)peers[k]);
			free(peers);
		} else {
			for (uint32_t i = 0; i < p->n_servers; i++)
				h = KEEP(v, servers, i) ? server_row(h, p, d, v, i) : h;
		}
		h = mix_rows(h, v ? v->prefixes : NULL, d->prefixes, p->n_prefixes);
		h = mix_rows(h, v ? v->demands : NULL, d->demands, p->n_demands);
	}
	if (part == SU_PART_HEAD)
		return h | 1;
	/* IPs by digest alone (it holds the address): an IP added before
	 * them renumbers them and must not re-cut every view. */
	if (listed && v->slot_list)
		h = listed_ips_digest(h, p, d, v);
	else if (v && v->ip_list)
		for (uint32_t k = 0; k < v->n_ip_list; k++)
			h = mix(h, ip_view_digest(p, d, v, v->ip_list[k]));
	else
		for (uint32_t i = 0; i < p->n_ips; i++)
			h = KEEP(v, ips, i) ? mix(h, ip_view_digest(p, d, v, i)) : h;
	return h | 1;
}

static int write_plan(FILE *fp, const void *arg)
{
	return write_view(fp, arg, NULL);
}

int su_plan__format_view(const struct su_plan *p, const struct su_plan_view *v, char **buf, size_t *len)
{
	FILE *fp = open_memstream(buf, len);
	int ret;

	if (!fp)
		return -errno;
	ret = write_view(fp, p, v);
	if (fclose(fp) && !ret)
		ret = -EIO;
	if (ret) {
		free(*buf);
		*buf = NULL;
	}
	return ret;
}

int su_plan__write(const struct su_plan *p, const char *path, struct su_err *err)
{
	int ret = !strcmp(path, "-") ? write_plan(stdout, p) : su_write_atomic(path, write_plan, p);

	if (ret)
		return su_err__set(err, -ret, "%s: cannot write plan: %s", path, strerror(-ret));
	return 0;
}

/* ---- parsing ------------------------------------------------------------------ */

struct loader {
	const char *file;
	unsigned line;
	struct su_err *err;
	struct su_plan *p;
	struct su_strmap dcs, servers, prefixes, demands;
	uint64_t records;
	int ip; /* the IP the following slot lines belong to, -1 before any */
	int stage; /* record kinds must come in order */
	char *key; /* look-up key being built (set_key) */
	size_t key_cap;
};

__attribute__((format(printf, 2, 3))) static int bad(struct loader *l, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return su_err__set(l->err, EINVAL, "%s:%u: %s", l->file, l->line, msg);
}

/* The writer prints plain decimal; anything else (a leading zero, a sign)
 * is an edit, and the same strict reader as the fleet's decides. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	return su_uint__parse(s, max, out) ? -EINVAL : 0;
}

/* Keys join a few fields ("name/addr/dc"); tag-sets make them arbitrarily
 * long, so the buffer grows. */
__attribute__((format(printf, 2, 3))) static int set_key(struct loader *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(l->key, l->key_cap, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < l->key_cap)
		return 0;
	free(l->key);
	l->key_cap = (size_t)n + 64;
	l->key = malloc(l->key_cap);
	if (!l->key) {
		l->key_cap = 0;
		return -ENOMEM;
	}
	va_start(ap, fmt);
	vsnprintf(l->key, l->key_cap, fmt, ap);
	va_end(ap);
	return 0;
}

static int lookup(struct loader *l, struct su_strmap *m, const char *what, uint32_t *idx)
{
	if (!l->key)
		return -ENOMEM;
	if (su_strmap__get(m, l->key, idx))
		return bad(l, "unknown %s '%s'", what, l->key);
	return 0;
}

static int parse_retired(struct loader *l, char **f, int n, int fixed, bool *retired)
{
	*retired = n == fixed + 1 && !strcmp(f[fixed], "retired");
	if (n != fixed + *retired)
		return bad(l, "expected %d fields", fixed);
	return 0;
}

static int parse_state(struct loader *l, char **f, int n, int at, uint8_t *state, int64_t *deadline)
{
	uint64_t v;

	*deadline = 0;
	if (n == at + 1 && !strcmp(f[at], "active")) {
		*state = SU_ACTIVE;
		return 0;
	}
	if (n == at + 2 && !strcmp(f[at], "draining") && !parse_u64(f[at + 1], INT64_MAX, &v) && v) {
		*state = SU_DRAINING;
		*deadline = (int64_t)v;
		return 0;
	}
	return bad(l, "bad state (active, or draining DEADLINE)");
}

static int parse_tags_field(struct loader *l, const char *s, struct su_tags *t)
{
	struct su_err e;

	if (su_tags__parse(s, t, &e))
		return bad(l, "%s", e.msg);
	return 0;
}

static int parse_header(struct loader *l, char **f, int n)
{
	struct su_plan *p = l->p;
	uint64_t v, lo, hi;
	char *dash;

	if (l->stage == 0) {
		if (n != 2 || strcmp(f[0], "softunicast-plan"))
			return bad(l, "not a softunicast plan");
		if (parse_u64(f[1], 1000, &v) || v != SU_PLAN_FORMAT)
			return bad(l, "plan format '%s' not supported (this build reads %d)", f[1], SU_PLAN_FORMAT);
	} else if (l->stage == 1) {
		if (n != 2 || strcmp(f[0], "serial") || parse_u64(f[1], UINT64_MAX, &p->serial))
			return bad(l, "expected 'serial N'");
	} else if (l->stage == 2) {
		dash = n == 4 ? strchr(f[1], '-') : NULL;
		if (!dash || strcmp(f[0], "ports") || strcmp(f[2], "slice"))
			return bad(l, "expected 'ports LO-HI slice SIZE'");
		*dash = '\0';
		if (parse_u64(f[1], 65535, &lo) || parse_u64(dash + 1, 65535, &hi) ||
		    parse_u64(f[3], 32768, &v) || v < SU_MIN_SLICE ||
		    su_plan__set_geometry(p, (uint32_t)lo, (uint32_t)hi, (uint32_t)v))
			return bad(l, "bad port range or slice size");
	} else {
		if (n != 2 || strcmp(f[0], "drain") || parse_u64(f[1], 365 * 86400, &v))
			return bad(l, "expected 'drain SECONDS'");
		p->drain = (int64_t)v;
	}
	l->stage++;
	return 0;
}

static int parse_dc(struct loader *l, char **f, int n)
{
	uint32_t router;
	bool retired;
	int ret = parse_retired(l, f, n, 3, &retired);

	if (ret)
		return ret;
	if (su_addr__parse(f[2], &router))
		return bad(l, "bad router address '%s'", f[2]);
	ret = su_plan__add_dc(l->p, f[1], router, retired);
	if (ret >= 0)
		ret = su_strmap__put(&l->dcs, f[1], (uint32_t)ret);
	return ret == -EEXIST ? bad(l, "data center '%s' listed twice", f[1]) : ret;
}

static int server_key(struct loader *l, const char *name, const char *addr, const char *dc)
{
	if (set_key(l, "%s/%s/%s", name, addr, dc))
		return -ENOMEM;
	return 0;
}

static int parse_server(struct loader *l, char **f, int n)
{
	uint32_t addr, dc;
	bool retired;
	int ret = parse_retired(l, f, n, 4, &retired);

	if (ret)
		return ret;
	set_key(l, "%s", f[2]);
	if ((ret = lookup(l, &l->dcs, "data center", &dc)))
		return ret;
	if (su_addr__parse(f[3], &addr))
		return bad(l, "bad server address '%s'", f[3]);
	if ((ret = server_key(l, f[1], f[3], f[2])))
		return ret;
	ret = su_plan__add_server(l->p, f[1], addr, dc, retired);
	if (ret >= 0)
		ret = su_strmap__put(&l->servers, l->key, (uint32_t)ret);
	return ret == -EEXIST ? bad(l, "server '%s' listed twice", f[1]) : ret;
}

static int parse_prefix_dcs(struct loader *l, char *list, uint32_t *dcs, uint32_t *n)
{
	char *save = NULL;

	*n = 0;
	if (!strcmp(list, "*"))
		return 0;
	for (char *name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		int ret;

		if (*n >= l->p->n_dcs)
			return bad(l, "data center list too long");
		set_key(l, "%s", name);
		if ((ret = lookup(l, &l->dcs, "data center", &dcs[*n])))
			return ret;
		for (uint32_t i = 0; i < *n; i++)
			if (dcs[i] == dcs[*n])
				return bad(l, "data center '%s' listed twice", name);
		(*n)++;
	}
	return 0;
}

/* Prefix tags reach the geofeed: the same text rules as in the fleet (the
 * ISO look-ups are left to the geofeed command, so agents and routers do
 * not need iso-codes). */
static int check_geo(struct loader *l, const struct su_tags *tags)
{
	char why[400];

	return su_geo__check_tags(tags, NULL, why, sizeof(why)) ? bad(l, "%s", why) : 0;
}

static int parse_prefix(struct loader *l, char **f, int n)
{
	struct su_prefix4 px;
	struct su_tags tags = { 0 };
	uint32_t *dcs = calloc(l->p->n_dcs + 1, sizeof(*dcs)), n_dcs;
	bool retired;
	int ret = dcs ? parse_retired(l, f, n, 4, &retired) : -ENOMEM;

	if (!ret && su_prefix__parse(f[1], &px))
		ret = bad(l, "bad prefix '%s'", f[1]);
	if (!ret)
		ret = parse_tags_field(l, f[2], &tags);
	if (!ret)
		ret = check_geo(l, &tags);
	if (!ret)
		ret = parse_prefix_dcs(l, f[3], dcs, &n_dcs);
	if (!ret && set_key(l, "%s/%s", f[1], f[2]))
		ret = -ENOMEM;
	if (!ret)
		ret = su_plan__add_prefix(l->p, &px, &tags, dcs, n_dcs, retired);
	if (ret >= 0)
		ret = su_strmap__put(&l->prefixes, l->key, (uint32_t)ret);
	su_tags__free(&tags);
	free(dcs);
	return ret == -EEXIST ? bad(l, "prefix %s listed twice", f[1]) : ret;
}

static int parse_demand(struct loader *l, char **f, int n)
{
	struct su_tags tags = { 0 };
	uint64_t slices;
	uint32_t dc;
	bool retired;
	int ret = parse_retired(l, f, n, 4, &retired);

	if (ret)
		return ret;
	set_key(l, "%s", f[1]);
	if ((ret = lookup(l, &l->dcs, "data center", &dc)))
		return ret;
	if (parse_u64(f[3], SU_MAX_SLICES_PER_SERVER, &slices) || !slices)
		return bad(l, "bad slice count '%s'", f[3]);
	if ((ret = parse_tags_field(l, f[2], &tags)))
		return ret;
	if (set_key(l, "%s/%s", f[1], f[2]))
		ret = -ENOMEM;
	if (!ret)
		ret = su_plan__add_demand(l->p, dc, &tags, (uint32_t)slices, retired);
	if (ret >= 0)
		ret = su_strmap__put(&l->demands, l->key, (uint32_t)ret);
	su_tags__free(&tags);
	return ret == -EEXIST ? bad(l, "tag-set '%s' of '%s' listed twice", f[2], f[1]) : ret;
}

/* An active IP must be coherent: live DC and demand, inside its prefix, its
 * prefix's tags satisfying the demand, the DC allowed. A draining one only
 * needs to be routable. */
static int check_ip(struct loader *l, const struct su_plan_ip *ip)
{
	const struct su_plan *p = l->p;
	const struct su_plan_prefix *px = &p->prefixes[ip->prefix];
	bool allowed = !px->n_dcs;

	if (!su_prefix__contains(&px->prefix, ip->ip))
		return bad(l, "address outside its prefix");
	if (p->demands[ip->demand].dc != ip->dc)
		return bad(l, "tag-set belongs to another data center");
	if (ip->state == SU_DRAINING)
		return 0;
	for (uint32_t i = 0; i < px->n_dcs; i++)
		allowed |= px->dcs[i] == ip->dc;
	if (p->dcs[ip->dc].retired || p->demands[ip->demand].retired || px->retired || !allowed)
		return bad(l, "active IP on a retired or disallowed data center, prefix or tag-set");
	if (!su_tags__contains(&px->tags, &p->demands[ip->demand].tags))
		return bad(l, "prefix tags do not satisfy the tag-set");
	return 0;
}

/* The trailing "from ..." of ip and slot lines: its index, or n. */
static int from_at(char **f, int n)
{
	for (int i = 6; i < n; i++)
		if (!strcmp(f[i], "from"))
			return i;
	return n;
}

static int parse_until(struct loader *l, const char *s, int64_t *until)
{
	uint64_t v;

	if (parse_u64(s, INT64_MAX, &v) || !v)
		return bad(l, "bad 'from' deadline '%s'", s);
	*until = (int64_t)v;
	return 0;
}

/* "from DC UNTIL" of an IP: only an active IP has a previous owner DC, and
 * not its own. */
static int parse_ip_from(struct loader *l, char **f, int n, struct su_plan_ip *ip)
{
	uint32_t dc;
	int ret;

	if (n != 3)
		return bad(l, "expected 'from DC UNTIL'");
	set_key(l, "%s", f[1]);
	if ((ret = lookup(l, &l->dcs, "data center", &dc)))
		return ret;
	if (ip->state != SU_ACTIVE || dc == ip->dc)
		return bad(l, "previous owner on a draining IP, or the IP's own data center");
	ip->prev_dc = (int32_t)dc;
	return parse_until(l, f[2], &ip->prev_deadline);
}

static int parse_ip(struct loader *l, char **f, int n)
{
	struct su_plan_ip ip = { 0 };
	uint32_t dc, prefix, demand;
	int ret, from = from_at(f, n);

	if (n < 7)
		return bad(l, "expected 'ip ADDR DC CIDR PREFIX-TAGS DEMAND-TAGS STATE'");
	if (su_addr__parse(f[1], &ip.ip))
		return bad(l, "bad address '%s'", f[1]);
	if (l->ip >= 0 && l->p->ips[l->ip].ip >= ip.ip)
		return bad(l, "IPs out of order at %s", f[1]);
	set_key(l, "%s", f[2]);
	if ((ret = lookup(l, &l->dcs, "data center", &dc)))
		return ret;
	set_key(l, "%s/%s", f[3], f[4]);
	if ((ret = lookup(l, &l->prefixes, "prefix", &prefix)))
		return ret;
	set_key(l, "%s/%s", f[2], f[5]);
	if ((ret = lookup(l, &l->demands, "tag-set", &demand)))
		return ret;
	if ((ret = parse_state(l, f, from, 6, &ip.state, &ip.deadline)))
		return ret;
	ret = su_plan__add_ip(l->p, ip.ip, dc, demand, prefix, ip.state, ip.deadline);
	if (ret < 0)
		return ret;
	l->ip = ret;
	if (from < n && (ret = parse_ip_from(l, f + from, n - from, &l->p->ips[l->ip])))
		return ret;
	return check_ip(l, &l->p->ips[l->ip]);
}

/* "from SERVER ADDR DC UNTIL" of a slot: a server of the plan other than
 * the owner; a draining slot's UNTIL is its own deadline. */
static int parse_slot_from(struct loader *l, char **f, int n, struct su_plan_slot *slot)
{
	uint32_t prev;
	int64_t until = 0;
	int ret;

	if (n != 5)
		return bad(l, "expected 'from SERVER SERVER-ADDR DC UNTIL'");
	if ((ret = server_key(l, f[1], f[2], f[3])) || (ret = lookup(l, &l->servers, "server", &prev)))
		return ret;
	if ((ret = parse_until(l, f[4], &until)))
		return ret;
	if ((int32_t)prev == slot->server)
		return bad(l, "a slot's previous owner is its owner");
	if (slot->state == SU_DRAINING && until != slot->deadline)
		return bad(l, "a draining slot's previous owner ends at its deadline");
	slot->prev_server = (int32_t)prev;
	slot->deadline = until;
	return 0;
}

static int parse_slot(struct loader *l, char **f, int n)
{
	struct su_plan *p = l->p;
	struct su_plan_ip *ip;
	struct su_plan_slot *slot;
	uint32_t addr, server;
	uint64_t port;
	int ret, from = from_at(f, n);

	if (n < 6)
		return bad(l, "expected 'slot ADDR PORT SERVER SERVER-ADDR STATE'");
	if (l->ip < 0 || su_addr__parse(f[1], &addr) || addr != p->ips[l->ip].ip)
		return bad(l, "slot of %s does not follow its ip line", f[1]);
	ip = &p->ips[l->ip];
	if (parse_u64(f[2], 65535, &port) || port & (p->slice_size - 1) ||
	    !(slot = (struct su_plan_slot *)su_plan__slot(p, ip, (uint32_t)port)))
		return bad(l, "port %s is not the start of a slice", f[2]);
	if (slot->state != SU_FREE)
		return bad(l, "slot %s:%s listed twice", f[1], f[2]);
	if ((ret = server_key(l, f[3], f[4], p->dcs[ip->dc].name)) ||
	    (ret = lookup(l, &l->servers, "server of this data center", &server)))
		return ret;
	if ((ret = parse_state(l, f, from, 5, &slot->state, &slot->deadline)))
		return ret;
	if (slot->state == SU_ACTIVE && (ip->state != SU_ACTIVE || p->servers[server].retired))
		return bad(l, "active slot on a draining IP or a retired server");
	slot->server = (int32_t)server;
	return from < n ? parse_slot_from(l, f + from, n - from, slot) : 0;
}

static const struct {
	const char *kind;
	int stage;
	int (*parse)(struct loader *l, char **f, int n);
} records[] = {
	{ "dc", 4, parse_dc },         { "server", 5, parse_server }, { "prefix", 6, parse_prefix },
	{ "demand", 7, parse_demand }, { "ip", 8, parse_ip },         { "slot", 8, parse_slot },
};

static int split(char *line, char **f)
{
	int n = 0;

	for (char *save = NULL, *tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (n == MAX_FIELDS)
			return -1;
		f[n++] = tok;
	}
	return n;
}

static int parse_line(struct loader *l, char *line)
{
	char *f[MAX_FIELDS];
	uint64_t count;
	int n;

	if (line[0] == '#')
		return 0;
	n = split(line, f);
	if (n < 0)
		return bad(l, "too many fields");
	if (!n)
		return 0;
	if (l->stage == 9)
		return bad(l, "text after 'end'");
	if (l->stage < 4) {
		l->records++;
		return parse_header(l, f, n);
	}
	if (!strcmp(f[0], "end")) {
		if (n != 2 || parse_u64(f[1], UINT64_MAX, &count) || count != l->records)
			return bad(l, "record count mismatch: file truncated or edited");
		l->stage = 9;
		return 0;
	}
	for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++) {
		if (strcmp(f[0], records[i].kind))
			continue;
		if (records[i].stage < l->stage)
			return bad(l, "'%s' record out of order", f[0]);
		l->stage = records[i].stage;
		l->records++;
		return records[i].parse(l, f, n);
	}
	return bad(l, "unknown record '%s'", f[0]);
}

static int parse_all(struct loader *l, char *buf, size_t len)
{
	char *end = buf + len;

	for (char *line = buf; line < end; l->line++) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		int ret;

		if (!nl)
			return bad(l, "last line has no newline: file truncated");
		*nl = '\0';
		if (memchr(line, '\0', (size_t)(nl - line)) || memchr(line, '\t', (size_t)(nl - line)))
			return bad(l, "NUL or tab in line");
		ret = parse_line(l, line);
		if (ret)
			return ret == -ENOMEM ? su_err__set(l->err, ENOMEM, "out of memory") : ret;
		line = nl + 1;
	}
	if (l->stage != 9)
		return bad(l, "no 'end' record: file truncated");
	return 0;
}

/* Parses buf[0..len), which it may modify (lines are split in place). */
static int parse_in_place(char *buf, size_t len, const char *name, struct su_plan **out,
			  struct su_err *err)
{
	struct loader l = { .file = name, .line = 1, .err = err, .ip = -1 };
	int ret;

	*out = NULL;
	l.p = su_plan__new();
	if (!l.p)
		return su_err__set(err, ENOMEM, "out of memory");
	ret = parse_all(&l, buf, len);
	if (!ret) {
		struct su_err e;

		ret = su_plan__canonicalize(l.p, &e);
		if (ret)
			ret = su_err__set(err, -ret, "%s: %s", name, e.msg);
	}
	su_strmap__free(&l.dcs);
	su_strmap__free(&l.servers);
	su_strmap__free(&l.prefixes);
	su_strmap__free(&l.demands);
	free(l.key);
	if (ret) {
		su_plan__free(l.p);
		return ret;
	}
	*out = l.p;
	return 0;
}

int su_plan__parse(const char *buf, size_t len, const char *name, struct su_plan **out, struct su_err *err)
{
	char *copy = malloc(len + 1);
	int ret;

	*out = NULL;
	if (!copy)
		return su_err__set(err, ENOMEM, "out of memory");
	memcpy(copy, buf, len);
	copy[len] = '\0';
	ret = parse_in_place(copy, len, name, out, err);
	free(copy);
	return ret;
}

/* Parses the file's own buffer: a large plan is not held twice. */
int su_plan__load(const char *path, struct su_plan **out, struct su_err *err)
{
	char *buf;
	size_t len;
	int ret;

	*out = NULL;
	ret = su_read_file(path, &buf, &len, err);
	if (ret)
		return ret;
	ret = parse_in_place(buf, len, path, out, err);
	free(buf);
	return ret;
}
