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

uint64_t su_layout__hash(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

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

static int add_shard(struct su_shard **v, size_t *n, char *name, char *data, size_t len)
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
	nv[(*n)++] = (struct su_shard){ name, data, len };
	return 0;
}

static int add_view(struct su_shard **v, size_t *n, const struct su_plan *p, const struct masks *m,
		    int32_t only_server, const uint32_t *ip_list, uint32_t n_ip_list, char *name)
{
	struct su_plan_view view = { m->dcs, m->servers, m->prefixes, m->demands, m->ips, only_server,
				     only_server >= 0 && p->servers[only_server].retired, true, ip_list, n_ip_list };
	char *data;
	size_t len;
	int ret = su_plan__format_view(p, &view, &data, &len);

	if (ret) {
		free(name);
		return ret;
	}
	return add_shard(v, n, name, data, len);
}

static char *shard_name(const char *kind, const char *x)
{
	char *s;

	return asprintf(&s, "%s/%s", kind, x) < 0 ? NULL : s;
}

/* "range FIRST LAST DC": runs of consecutive IPs of one DC, in address order. */
static int ranges_shard(const struct su_plan *p, struct su_shard **v, size_t *n)
{
	char a[SU_ADDR_STRLEN], b[SU_ADDR_STRLEN], *data = NULL;
	size_t len = 0;
	uint64_t runs = 0;
	FILE *fp = open_memstream(&data, &len);

	if (!fp)
		return -errno;
	fprintf(fp, "softunicast-ranges 1\nserial 0\n"); /* content-addressed, as the views */
	for (uint32_t i = 0, j; i < p->n_ips; i = j, runs++) {
		for (j = i + 1; j < p->n_ips && p->ips[j].dc == p->ips[i].dc && p->ips[j].ip == p->ips[j - 1].ip + 1; j++)
			;
		fprintf(fp, "range %s %s %s\n", su_addr__str(p->ips[i].ip, a), su_addr__str(p->ips[j - 1].ip, b),
			p->dcs[p->ips[i].dc].name);
	}
	fprintf(fp, "end %" PRIu64 "\n", runs);
	if (fclose(fp)) {
		free(data);
		return -EIO;
	}
	return add_shard(v, n, strdup("ranges"), data, len);
}

static int dc_shard(const struct su_plan *p, uint32_t d, struct masks *m, struct su_shard **v, size_t *n)
{
	int ret;

	memset(m->dcs, 1, p->n_dcs); /* every DC's router: the backbone next hops */
	for (uint32_t s = 0; s < p->n_servers; s++)
		m->servers[s] = p->servers[s].dc == d;
	for (uint32_t x = 0; x < p->n_demands; x++)
		m->demands[x] = p->demands[x].dc == d;
	memset(m->prefixes, 0, p->n_prefixes);
	for (uint32_t i = 0; i < p->n_ips; i++) {
		if (!(m->ips[i] = p->ips[i].dc == d))
			continue;
		m->prefixes[p->ips[i].prefix] = 1;
		/* A slot's previous owner may be in the DC the IP moved from. */
		for (uint32_t k = 0; k < p->slices_per_ip; k++) {
			int32_t prev = p->slots[p->ips[i].first_slot + k].prev_server;

			if (prev >= 0 && p->slots[p->ips[i].first_slot + k].state != SU_FREE)
				m->servers[prev] = 1;
		}
	}
	ret = add_view(v, n, p, m, -1, NULL, 0, shard_name("dc", p->dcs[d].name));
	return ret;
}

/* IPs holding a slot of each server, so a server's view is built without
 * scanning the whole plan once per server. */
struct owned {
	uint32_t *ips; /* ip indexes, grouped by server: ips[start[s] .. start[s+1]) */
	uint32_t *start;
};

/* IP i in server s's list (pass 0 counts, pass 1 fills), once. */
static void owned__list(struct owned *o, uint32_t *count, uint32_t *seen, int32_t s, uint32_t i,
			int pass)
{
	if (s < 0 || seen[s] == i + 1)
		return;
	seen[s] = i + 1;
	if (pass == 0)
		count[s]++;
	else
		o->ips[o->start[s] + count[s]++] = i;
}

static int owned__build(const struct su_plan *p, struct owned *o)
{
	uint32_t *count = calloc(p->n_servers + 1, sizeof(*count)), total = 0;
	uint32_t *seen = calloc(p->n_servers + 1, sizeof(*seen)); /* last IP listed + 1, per server */

	o->start = calloc(p->n_servers + 2, sizeof(*o->start));
	if (!count || !seen || !o->start)
		goto nomem;
	for (int pass = 0; pass < 2; pass++) {
		memset(seen, 0, (p->n_servers + 1) * sizeof(*seen));
		for (uint32_t i = 0; i < p->n_ips; i++) {
			for (uint32_t k = 0; k < p->slices_per_ip; k++) {
				const struct su_plan_slot *sl = &p->slots[p->ips[i].first_slot + k];

				/* Each IP once per server, ascending: the view's IP
				 * list.  The previous owner of a handed slot serves it
				 * until its deadline: the IP is in its view too. */
				if (sl->state == SU_FREE || sl->server < 0)
					continue;
				owned__list(o, count, seen, sl->prev_server, i, pass);
				owned__list(o, count, seen, sl->server, i, pass);
			}
		}
		if (pass == 0) {
			for (uint32_t s = 0; s < p->n_servers; s++) {
				o->start[s] = total;
				total += count[s];
			}
			o->start[p->n_servers] = total;
			memset(count, 0, (p->n_servers + 1) * sizeof(*count));
			if (!(o->ips = malloc((total + 1) * sizeof(*o->ips))))
				goto nomem;
		}
	}
	free(count);
	free(seen);
	return 0;
nomem:
	free(seen);
	free(count);
	free(o->start);
	return -ENOMEM;
}

/* The other end of each handed slot of server s (its new owner, or its
 * previous one) is named on the slot line: that server and its DC are in
 * the view (the second hop's address). */
static void peers_mark(const struct su_plan *p, uint32_t s, const struct owned *o, struct masks *m,
		       uint8_t on)
{
	for (uint32_t k = o->start[s]; k < o->start[s + 1]; k++) {
		const struct su_plan_ip *ip = &p->ips[o->ips[k]];

		for (uint32_t j = 0; j < p->slices_per_ip; j++) {
			const struct su_plan_slot *sl = &p->slots[ip->first_slot + j];
			int32_t peer = sl->prev_server == (int32_t)s ? sl->server :
				       sl->server == (int32_t)s ? sl->prev_server : -1;

			if (sl->state == SU_FREE || peer < 0)
				continue;
			m->servers[peer] = on;
			m->dcs[p->servers[peer].dc] = on;
		}
		if (ip->prev_dc >= 0)
			m->dcs[ip->prev_dc] = on;
	}
}

static int server_shard(const struct su_plan *p, uint32_t s, const struct owned *o, struct masks *m,
			struct su_shard **v, size_t *n)
{
	uint32_t d = p->servers[s].dc;
	int ret;

	m->dcs[d] = 1;
	m->servers[s] = 1;
	for (uint32_t k = o->start[s]; k < o->start[s + 1]; k++) {
		const struct su_plan_ip *ip = &p->ips[o->ips[k]];

		m->ips[o->ips[k]] = 1;
		m->prefixes[ip->prefix] = 1;
		m->demands[ip->demand] = 1;
		/* A prefix record names the DCs it allows: they must be in the view. */
		for (uint32_t j = 0; j < p->prefixes[ip->prefix].n_dcs; j++)
			m->dcs[p->prefixes[ip->prefix].dcs[j]] = 1;
	}
	peers_mark(p, s, o, m, 1);
	/* Its IPs by index (ascending): the view does not scan every IP. */
	ret = add_view(v, n, p, m, (int32_t)s, o->ips + o->start[s], o->start[s + 1] - o->start[s],
		       shard_name("server", p->servers[s].name));
	/* Undo only what was set: the masks stay all-zero between servers. */
	peers_mark(p, s, o, m, 0);
	m->dcs[d] = 0;
	m->servers[s] = 0;
	for (uint32_t k = o->start[s]; k < o->start[s + 1]; k++) {
		for (uint32_t j = 0; j < p->prefixes[p->ips[o->ips[k]].prefix].n_dcs; j++)
			m->dcs[p->prefixes[p->ips[o->ips[k]].prefix].dcs[j]] = 0;
		m->ips[o->ips[k]] = 0;
		m->prefixes[p->ips[o->ips[k]].prefix] = 0;
		m->demands[p->ips[o->ips[k]].demand] = 0;
	}
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

static int server_shards(const struct su_plan *p, struct su_shard **v, size_t *n)
{
	struct masks m = { 0 };
	struct owned o = { 0 };
	int ret = masks__alloc(&m, p);

	if (!ret)
		ret = owned__build(p, &o);
	/* A retired server's view too (a drained one whose slices still drain),
	 * unless the name is active again elsewhere: the active one wins. */
	for (uint32_t s = 0; !ret && s < p->n_servers; s++)
		if (!p->servers[s].retired || first_retired(p, s))
			ret = server_shard(p, s, &o, &m, v, n);
	free(o.ips);
	free(o.start);
	masks__free(&m);
	return ret;
}

/* The whole plan, for the tools, cut into parts that a small change leaves
 * mostly untouched, so a version rewrites only the parts it changed (the
 * store shares unchanged shards between versions by name and checksum):
 *   plan/head         everything before the first IP record, with serial 0
 *                     (the version gives the serial, as for the views);
 *   plan/IP           IP records (with their slots) from IP on: a part ends
 *                     before the first record of a /20 block once it holds
 *                     SU_LAYOUT_PART bytes (at any record past 4 times that),
 *                     so boundaries follow addresses and move only when a
 *                     change crosses those sizes;
 *   plan              the manifest: "softunicast-parts 1", then the part
 *                     names in order; the plan is their concatenation. */
static const char *next_ip_record(const char *at, const char *end)
{
	const char *q = at < end ? memmem(at, (size_t)(end - at), "\nip ", 4) : NULL;

	return q ? q + 1 : NULL;
}

/* The address of an "ip ADDR ..." record (not sscanf: glibc's measures
 * the whole remaining text on every call). */
static uint32_t record_ip(const char *rec)
{
	char addr[SU_ADDR_STRLEN];
	uint32_t ip = 0;
	size_t k = 0;

	for (rec += 3; k + 1 < sizeof(addr) && rec[k] && rec[k] != ' ' && rec[k] != '\n'; k++)
		addr[k] = rec[k];
	addr[k] = '\0';
	su_addr__parse(addr, &ip);
	return ip;
}

static int add_copy(struct su_shard **v, size_t *n, const char *name, const char *data, size_t len)
{
	char *d = malloc(len + 1);

	if (!d)
		return -ENOMEM;
	memcpy(d, data, len);
	d[len] = '\0';
	return add_shard(v, n, strdup(name), d, len);
}

/* plan/head: the text before the first IP record, its serial line made 0. */
static int plan_head(const char *text, const char *at, struct su_shard **v, size_t *n)
{
	const char *serial = memmem(text, (size_t)(at - text), "\nserial ", 8);
	const char *eol = serial ? memchr(serial + 1, '\n', (size_t)(at - serial - 1)) : NULL;
	char *head = NULL;
	size_t hlen = 0;
	FILE *hf = open_memstream(&head, &hlen);

	if (!hf)
		return -ENOMEM;
	if (serial && eol) {
		fwrite(text, 1, (size_t)(serial - text), hf);
		fputs("\nserial 0", hf);
		fwrite(eol, 1, (size_t)(at - eol), hf);
	} else {
		fwrite(text, 1, (size_t)(at - text), hf);
	}
	if (fclose(hf)) {
		free(head);
		return -ENOMEM;
	}
	return add_shard(v, n, strdup("plan/head"), head, hlen);
}

static int plan_parts(const struct su_plan *p, struct su_shard **v, size_t *n)
{
	char *text, *manifest = NULL, name[64], a[SU_ADDR_STRLEN];
	size_t len, mlen = 0;
	FILE *mf;
	int ret = su_plan__format_view(p, NULL, &text, &len);
	const char *end, *at;

	if (ret)
		return ret;
	end = text + len;
	at = next_ip_record(text, end);
	at = at ? at : end;
	if (!(mf = open_memstream(&manifest, &mlen))) {
		free(text);
		return -ENOMEM;
	}
	fputs("softunicast-parts 1\nplan/head\n", mf);
	ret = plan_head(text, at, v, n);
	while (!ret && at < end) {
		const char *start = at, *q = at;
		uint32_t first = record_ip(start), prev = first, ip = first;

		/* Ends before the first record of a /20 block once big enough, or
		 * before any record once four times that (a block dense in slots). */
		while ((q = next_ip_record(q, end)) && (size_t)(q - start) < 4 * SU_LAYOUT_PART &&
		       ((ip = record_ip(q)) >> 12 == prev >> 12 || (size_t)(q - start) < SU_LAYOUT_PART))
			prev = ip;
		at = q ? q : end;
		snprintf(name, sizeof(name), "plan/%s", su_addr__str(first, a));
		ret = add_copy(v, n, name, start, (size_t)(at - start));
		fprintf(mf, "%s\n", name);
	}
	free(text);
	if (fclose(mf) || ret) {
		free(manifest);
		return ret ? ret : -ENOMEM;
	}
	return add_shard(v, n, strdup("plan"), manifest, mlen);
}

static int dc_shards(const struct su_plan *p, struct su_shard **v, size_t *n)
{
	struct masks m = { 0 };
	int ret = masks__alloc(&m, p);

	for (uint32_t d = 0; !ret && d < p->n_dcs; d++)
		ret = dc_shard(p, d, &m, v, n);
	masks__free(&m);
	return ret;
}

static int whole_shards(const struct su_plan *p, struct su_shard **v, size_t *n)
{
	int ret = plan_parts(p, v, n);

	return ret ? ret : ranges_shard(p, v, n);
}

/* The three kinds of shards are cut side by side: each only reads the plan
 * (the formatting keeps no state), and a publish waits for the slowest. */
struct cut {
	int (*fn)(const struct su_plan *p, struct su_shard **v, size_t *n);
	const struct su_plan *p;
	struct su_shard *v;
	size_t n;
	int ret;
};

static void *cut_main(void *arg)
{
	struct cut *c = arg;

	c->ret = c->fn(c->p, &c->v, &c->n);
	return NULL;
}

int su_layout__shards(const struct su_plan *p, struct su_shard **out, size_t *n_out)
{
	struct cut c[3] = { { whole_shards, p, NULL, 0, 0 }, { dc_shards, p, NULL, 0, 0 }, { server_shards, p, NULL, 0, 0 } };
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

	if (demand < 0)
		return demand;
	for (uint64_t ip = first; ip <= last; ip++) {
		int ret = su_plan__add_ip(p, (uint32_t)ip, dc, (uint32_t)demand, prefix, state,
					  state == SU_DRAINING ? 1 : 0);

		if (ret < 0)
			return ret;
	}
	return 0;
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
		else if ((uint32_t)d != self)
			ret = add_remote(p, first, last, (uint32_t)d, (uint32_t)prefix, cache);
	}
	free(cache);
	if (!ret && !ended)
		ret = su_err__set(err, EBADMSG, "%s: no 'end' record: truncated", name);
	return ret == -ENOMEM ? su_err__set(err, ENOMEM, "out of memory") : ret;
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
		su_plan__free(p);
		return su_err__set(err, EBADMSG, "%s: ranges of serial %" PRIu64 " with a DC shard of serial %" PRIu64,
				   name, serial, p->serial);
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
