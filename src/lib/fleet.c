/* Fleet description loader: YAML (libyaml's document API, which keeps line
 * numbers) → struct su_fleet, validated as it is read.  Every error names the
 * file, the line and the offending value; nothing is half-loaded. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "lib/fleet.h"
#include "lib/geo.h"
#include "lib/strmap.h"
#include "lib/util.h"

struct ctx {
	const char *file;
	yaml_document_t *doc;
	struct su_err *err;
	struct su_fleet *fleet;
	struct su_strmap dc_names; /* name -> index into fleet->dcs */
	uint32_t *dc_seen;         /* per DC: 1 + the last prefix that listed it */
	const yaml_node_t *drain;  /* checked against the floor once the file is read */
};

#define FAIL(c, node, ...) fail_at(c, node, __VA_ARGS__)

static unsigned line_of(const yaml_node_t *n)
{
	return n ? (unsigned)n->start_mark.line + 1 : 0;
}

__attribute__((format(printf, 3, 4))) static int fail_at(struct ctx *c, const yaml_node_t *n,
							  const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return su_err__set(c->err, EINVAL, "%s:%u: %s", c->file, line_of(n), msg);
}

static yaml_node_t *node(struct ctx *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *kind_name(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE: return "a value";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "empty";
	}
}

static int expect(struct ctx *c, const yaml_node_t *n, yaml_node_type_t type, const char *what)
{
	static const char *const names[] = { [YAML_SCALAR_NODE] = "a value",
					      [YAML_SEQUENCE_NODE] = "a list",
					      [YAML_MAPPING_NODE] = "a mapping" };

	if (n->type != type)
		return FAIL(c, n, "%s must be %s, not %s", what, names[type], kind_name(n));
	return 0;
}

/* Key nodes sorted by text, then by position, so duplicates are neighbours
 * and the later one (the one a reader meets second) comes second. */
static int cmp_key_node(const void *a, const void *b)
{
	const yaml_node_t *x = *(const yaml_node_t *const *)a, *y = *(const yaml_node_t *const *)b;
	int c = strcmp((const char *)x->data.scalar.value, (const char *)y->data.scalar.value);

	if (c)
		return c;
	return (x->start_mark.index > y->start_mark.index) - (x->start_mark.index < y->start_mark.index);
}

/* libyaml accepts duplicate mapping keys; a fleet must not (the second
 * silently winning is how outages start).  Sorted, so a mapping of a
 * hundred thousand servers is checked in milliseconds, not minutes. */
static int check_unique_keys(struct ctx *c, const yaml_node_t *map, const char *what)
{
	size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start), i = 0;
	const yaml_node_t **keys = calloc(n + 1, sizeof(*keys)), *dup = NULL;

	if (!keys)
		return -ENOMEM;
	for (yaml_node_pair_t *a = map->data.mapping.pairs.start; a < map->data.mapping.pairs.top; a++) {
		keys[i] = node(c, a->key);
		if (!scalar(keys[i])) {
			int ret = FAIL(c, keys[i], "%s: keys must be plain values", what);

			free(keys);
			return ret;
		}
		i++;
	}
	qsort(keys, n, sizeof(*keys), cmp_key_node);
	for (i = 1; i < n; i++)
		if (!strcmp(scalar(keys[i]), scalar(keys[i - 1])) &&
		    (!dup || keys[i]->start_mark.index < dup->start_mark.index))
			dup = keys[i];
	free(keys);
	return dup ? FAIL(c, dup, "%s: duplicate key '%s'", what, scalar(dup)) : 0;
}

#define for_each_pair(c, map, p) \
	for (yaml_node_pair_t *p = (map)->data.mapping.pairs.start; p < (map)->data.mapping.pairs.top; p++)
#define for_each_item(c, seq, it) \
	for (yaml_node_item_t *it = (seq)->data.sequence.items.start; it < (seq)->data.sequence.items.top; it++)

static bool valid_name(const char *s)
{
	if (!*s || strlen(s) > 63)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

static int parse_name(struct ctx *c, const yaml_node_t *n, const char *what, char **out)
{
	const char *s = scalar(n);

	if (!s || !valid_name(s))
		return FAIL(c, n, "bad %s name '%s' (letters, digits, '-', '_', '.'; at most 63)",
			    what, s ? s : kind_name(n));
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int parse_addr(struct ctx *c, const yaml_node_t *n, const char *what, uint32_t *out)
{
	const char *s = scalar(n);

	if (!s || su_addr__parse(s, out))
		return FAIL(c, n, "%s: bad IPv4 address '%s'", what, s ? s : kind_name(n));
	return 0;
}

/* Every number of a fleet file is read by su_uint__parse: here, in
 * parse_range and in su_duration__parse. */
static int parse_uint_text(struct ctx *c, const yaml_node_t *n, const char *s, const char *what,
			   uint32_t lo, uint32_t hi, uint32_t *out)
{
	uint64_t v;
	int ret = su_uint__parse(s, UINT32_MAX, &v);

	if (ret == -EDOM)
		return FAIL(c, n, "%s: '%s' is ambiguous, %s", what, s, su_number__ambiguity(s));
	if (ret == -EINVAL)
		return FAIL(c, n, "%s: '%s' is not a number", what, s);
	if (ret || v < lo || v > hi)
		return FAIL(c, n, "%s: '%s' is out of range %u-%u", what, s, lo, hi);
	*out = (uint32_t)v;
	return 0;
}

static int parse_uint(struct ctx *c, const yaml_node_t *n, const char *what, uint32_t lo,
		      uint32_t hi, uint32_t *out)
{
	if (!scalar(n))
		return FAIL(c, n, "%s: '%s' is not a number", what, kind_name(n));
	return parse_uint_text(c, n, scalar(n), what, lo, hi, out);
}

int su_duration__parse(const char *s, int64_t *seconds)
{
	static const struct { char unit; int64_t mult; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	int64_t total = 0;
	uint64_t bare;
	int ret;

	if (!s || !*s)
		return -EINVAL;
	/* A bare number is what YAML tools may read as a number: it must be
	 * plain decimal.  "1h05m" is a string to every reader and stays fine. */
	ret = su_uint__parse(s, 365 * 86400, &bare);
	if (ret == -EDOM || su_number__ambiguity(s))
		return -EDOM;
	if (ret != -EINVAL) {
		if (!ret)
			*seconds = (int64_t)bare;
		return ret;
	}
	while (*s) {
		int64_t v = 0, mult = 0;

		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		while (isdigit((unsigned char)*s)) {
			v = v * 10 + (*s++ - '0');
			if (v > 100000000)
				return -ERANGE;
		}
		if (!*s && total == 0) {
			mult = 1; /* bare seconds */
		} else {
			for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
				if (*s == units[i].unit)
					mult = units[i].mult;
			if (!mult)
				return -EINVAL;
			s++;
		}
		total += v * mult;
	}
	if (total > 365 * 86400)
		return -ERANGE;
	*seconds = total;
	return 0;
}

int su_slices__geometry(uint32_t lo, uint32_t hi, uint32_t size, uint32_t *first, uint32_t *count)
{
	uint32_t shift = (uint32_t)__builtin_ctz(size);
	uint32_t f = (lo + size - 1) >> shift;
	uint32_t end = (hi + 1) >> shift; /* one past the last whole slice */

	if (end <= f)
		return -ERANGE;
	*first = f;
	*count = end - f;
	return 0;
}

/* Every tag value is a name an operator reads and a program matches: no
 * invisible or malformed characters.  Values that reach the geofeed get the
 * stricter CSV rules and the ISO 3166 look-ups of geo.c. */
static int check_tag_value(struct ctx *c, const yaml_node_t *n, const char *what, const char *key,
			   const char *value)
{
	char why[128], shown[160];

	if (su_geo__check_text(value, false, why, sizeof(why)))
		return FAIL(c, n, "%s: tag %s '%s': %s", what, key, su_geo__escape(value, shown, sizeof(shown)),
			    why);
	return 0;
}

static bool has_geo_tags(const struct su_tags *t)
{
	static const char *const keys[] = { SU_GEO_KEYS };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (su_tags__get(t, keys[i]))
			return true;
	return false;
}

/* Country and region are checked against iso-codes, read on first need:
 * a fleet without geofeed tags does not need the package. */
static int check_geo_tags(struct ctx *c, const yaml_node_t *n, const struct su_tags *t)
{
	const struct su_iso3166 *db = NULL;
	struct su_err e;
	char why[400];

	if (!has_geo_tags(t))
		return 0;
	if ((su_tags__get(t, "country") || su_tags__get(t, "region")) && su_iso3166__get(&db, &e))
		return FAIL(c, n, "cannot check country and region: %s", e.msg);
	if (su_geo__check_tags(t, db, why, sizeof(why)))
		return FAIL(c, n, "%s", why);
	return 0;
}

/* A tag mapping; `extra` names one non-tag key allowed in it (or NULL) and
 * receives its node. */
static int parse_tags(struct ctx *c, const yaml_node_t *map, const char *what, const char *extra,
		      const yaml_node_t **extra_node, struct su_tags *out)
{
	int ret = expect(c, map, YAML_MAPPING_NODE, what);

	if (!ret)
		ret = check_unique_keys(c, map, what);
	for_each_pair(c, map, p) {
		const yaml_node_t *k = node(c, p->key), *v = node(c, p->value);

		if (ret)
			break;
		if (extra && !strcmp(scalar(k), extra)) {
			*extra_node = v;
			continue;
		}
		if (!su_tags__valid_key(scalar(k)))
			return FAIL(c, k, "%s: bad tag key '%s' (lowercase letters, digits, '_', '-')",
				    what, scalar(k));
		if (!scalar(v) || !*scalar(v))
			return FAIL(c, v, "%s: tag '%s' needs a non-empty value", what, scalar(k));
		ret = check_tag_value(c, v, what, scalar(k), scalar(v));
		if (!ret)
			ret = su_tags__set(out, scalar(k), scalar(v));
	}
	return ret;
}

static int find_dc(const struct ctx *c, const char *name)
{
	uint32_t i;

	return su_strmap__get(&c->dc_names, name, &i) ? -1 : (int)i;
}

static int parse_servers(struct ctx *c, const yaml_node_t *map, struct su_fleet_dc *dc)
{
	int ret = expect(c, map, YAML_MAPPING_NODE, "servers");

	if (!ret)
		ret = check_unique_keys(c, map, "servers");
	if (ret)
		return ret;
	dc->servers = calloc(map->data.mapping.pairs.top - map->data.mapping.pairs.start + 1,
			     sizeof(*dc->servers));
	if (!dc->servers)
		return -ENOMEM;
	for_each_pair(c, map, p) {
		struct su_fleet_server *s = &dc->servers[dc->n_servers];
		const yaml_node_t *k = node(c, p->key);
		char what[96];

		s->line = line_of(k);
		ret = parse_name(c, k, "server", &s->name);
		if (ret)
			return ret;
		dc->n_servers++;
		snprintf(what, sizeof(what), "server %s", s->name);
		ret = parse_addr(c, node(c, p->value), what, &s->addr);
		if (ret)
			return ret;
	}
	return 0;
}

static int cmp_demand_ptr(const void *a, const void *b)
{
	const struct su_fleet_demand *x = *(struct su_fleet_demand *const *)a;
	const struct su_fleet_demand *y = *(struct su_fleet_demand *const *)b;
	int r = su_tags__cmp(&x->tags, &y->tags);

	return r ? r : (x->line > y->line) - (x->line < y->line);
}

/* Sorted by tags then line, not pairwise, so a DC with many thousands of
 * tag-sets checks fast.  In each run of equal tag-sets the second is the
 * repeat; the earliest repeat in the file is reported. */
static int check_repeated_demands(struct ctx *c, const struct su_fleet_dc *dc)
{
	struct su_fleet_demand **v = calloc(dc->n_demands + 1, sizeof(*v));
	const struct su_fleet_demand *dup = NULL, *first = NULL;
	int ret = 0;

	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < dc->n_demands; i++)
		v[i] = &dc->demands[i];
	qsort(v, dc->n_demands, sizeof(*v), cmp_demand_ptr);
	for (uint32_t i = 1; i < dc->n_demands; i++) {
		bool repeat = !su_tags__cmp(&v[i]->tags, &v[i - 1]->tags);
		bool second = repeat && (i < 2 || su_tags__cmp(&v[i - 1]->tags, &v[i - 2]->tags));

		if (second && (!dup || v[i]->line < dup->line)) {
			dup = v[i];
			first = v[i - 1];
		}
	}
	if (dup)
		ret = su_err__set(c->err, EINVAL, "%s:%u: egress tag-set repeated in %s (first on line %u)",
				  c->file, dup->line, dc->name, first->line);
	free(v);
	return ret;
}

static int parse_egress(struct ctx *c, const yaml_node_t *seq, struct su_fleet_dc *dc)
{
	int ret = expect(c, seq, YAML_SEQUENCE_NODE, "egress");

	if (ret)
		return ret;
	dc->demands = calloc(seq->data.sequence.items.top - seq->data.sequence.items.start + 1,
			     sizeof(*dc->demands));
	if (!dc->demands)
		return -ENOMEM;
	for_each_item(c, seq, it) {
		const yaml_node_t *n = node(c, *it), *slices = NULL;
		struct su_fleet_demand *d = &dc->demands[dc->n_demands++];

		d->line = line_of(n);
		d->slices = 1;
		ret = parse_tags(c, n, "egress tag-set", "slices", &slices, &d->tags);
		if (!ret && slices)
			ret = parse_uint(c, slices, "slices", 1, SU_MAX_SLICES_PER_SERVER, &d->slices);
		if (ret)
			return ret;
		if (!d->tags.n)
			return FAIL(c, n, "egress tag-set of %s has no tags", dc->name);
	}
	return check_repeated_demands(c, dc);
}

static int parse_dc(struct ctx *c, const yaml_node_t *k, const yaml_node_t *v, struct su_fleet_dc *dc)
{
	bool have_router = false;
	int ret;

	dc->line = line_of(k);
	ret = parse_name(c, k, "data center", &dc->name);
	if (!ret)
		ret = expect(c, v, YAML_MAPPING_NODE, dc->name);
	if (!ret)
		ret = check_unique_keys(c, v, dc->name);
	for_each_pair(c, v, p) {
		const yaml_node_t *pk = node(c, p->key), *pv = node(c, p->value);
		const char *key = scalar(pk);

		if (ret)
			break;
		if (!strcmp(key, "router")) {
			ret = parse_addr(c, pv, "router", &dc->router);
			have_router = true;
		} else if (!strcmp(key, "servers")) {
			ret = parse_servers(c, pv, dc);
		} else if (!strcmp(key, "egress")) {
			ret = parse_egress(c, pv, dc);
		} else {
			ret = FAIL(c, pk, "data center %s: unknown key '%s' (router, servers, egress)",
				   dc->name, key);
		}
	}
	if (!ret && !have_router)
		ret = FAIL(c, k, "data center %s has no router address", dc->name);
	return ret;
}

static int parse_datacenters(struct ctx *c, const yaml_node_t *map)
{
	struct su_fleet *f = c->fleet;
	int ret = expect(c, map, YAML_MAPPING_NODE, "datacenters");

	if (!ret)
		ret = check_unique_keys(c, map, "datacenters");
	if (ret)
		return ret;
	f->dcs = calloc(map->data.mapping.pairs.top - map->data.mapping.pairs.start + 1, sizeof(*f->dcs));
	if (!f->dcs)
		return -ENOMEM;
	for_each_pair(c, map, p) {
		ret = parse_dc(c, node(c, p->key), node(c, p->value), &f->dcs[f->n_dcs++]);
		if (!ret)
			ret = su_strmap__put(&c->dc_names, f->dcs[f->n_dcs - 1].name, f->n_dcs - 1);
		if (ret)
			return ret;
	}
	c->dc_seen = calloc(f->n_dcs + 1, sizeof(*c->dc_seen));
	return c->dc_seen ? 0 : -ENOMEM;
}

static int parse_prefix_dcs(struct ctx *c, const yaml_node_t *seq, struct su_fleet_prefix *pfx)
{
	int ret = expect(c, seq, YAML_SEQUENCE_NODE, "prefix datacenters");

	if (ret)
		return ret;
	pfx->dcs = calloc(seq->data.sequence.items.top - seq->data.sequence.items.start + 1,
			  sizeof(*pfx->dcs));
	if (!pfx->dcs)
		return -ENOMEM;
	for_each_item(c, seq, it) {
		const yaml_node_t *n = node(c, *it);
		int dc = scalar(n) ? find_dc(c, scalar(n)) : -1;
		uint32_t stamp = (uint32_t)(pfx - c->fleet->prefixes) + 1;

		if (dc < 0)
			return FAIL(c, n, "unknown data center '%s'", scalar(n) ? scalar(n) : kind_name(n));
		if (c->dc_seen[dc] == stamp)
			return FAIL(c, n, "data center '%s' listed twice", scalar(n));
		c->dc_seen[dc] = stamp;
		pfx->dcs[pfx->n_dcs++] = (uint32_t)dc;
	}
	if (!pfx->n_dcs)
		return FAIL(c, seq, "empty datacenters list: omit the key to allow every DC");
	return 0;
}

static int parse_prefix(struct ctx *c, const yaml_node_t *n, struct su_fleet_prefix *pfx)
{
	const yaml_node_t *prefix = NULL, *tags = NULL, *dcs = NULL;
	int ret = expect(c, n, YAML_MAPPING_NODE, "prefix entry");

	pfx->line = line_of(n);
	if (!ret)
		ret = check_unique_keys(c, n, "prefix entry");
	for_each_pair(c, n, p) {
		const char *key = scalar(node(c, p->key));

		if (ret)
			return ret;
		if (!strcmp(key, "prefix"))
			prefix = node(c, p->value);
		else if (!strcmp(key, "tags"))
			tags = node(c, p->value);
		else if (!strcmp(key, "datacenters"))
			dcs = node(c, p->value);
		else
			return FAIL(c, node(c, p->key), "prefix entry: unknown key '%s' (prefix, tags, datacenters)", key);
	}
	if (ret)
		return ret;
	if (!prefix)
		return FAIL(c, n, "prefix entry has no 'prefix'");
	ret = su_prefix__parse(scalar(prefix), &pfx->prefix);
	if (ret == -EDOM)
		return FAIL(c, prefix, "prefix '%s' has host bits set", scalar(prefix));
	if (ret)
		return FAIL(c, prefix, "bad IPv4 prefix '%s'", scalar(prefix) ? scalar(prefix) : kind_name(prefix));
	if (pfx->prefix.len < 8)
		return FAIL(c, prefix, "prefix '%s' is larger than a /8", scalar(prefix));
	if (!tags)
		return FAIL(c, n, "prefix %s has no tags", scalar(prefix));
	ret = parse_tags(c, tags, "prefix tags", NULL, NULL, &pfx->tags);
	if (!ret)
		ret = check_geo_tags(c, tags, &pfx->tags);
	if (!ret && dcs)
		ret = parse_prefix_dcs(c, dcs, pfx);
	return ret;
}

static int cmp_prefix_ptr(const void *a, const void *b)
{
	const struct su_fleet_prefix *x = *(struct su_fleet_prefix *const *)a;
	const struct su_fleet_prefix *y = *(struct su_fleet_prefix *const *)b;

	if (x->prefix.addr != y->prefix.addr)
		return x->prefix.addr < y->prefix.addr ? -1 : 1;
	return (int)x->prefix.len - (int)y->prefix.len;
}

/* CIDR blocks sorted by start: if any two overlap, two neighbours do (the
 * container overlaps whatever starts inside it first).  Sorting keeps a
 * fleet of many small prefixes fast to check. */
static int check_overlaps(struct ctx *c)
{
	const struct su_fleet *f = c->fleet;
	struct su_fleet_prefix **v = calloc(f->n_prefixes + 1, sizeof(*v));
	char a[SU_PREFIX_STRLEN], b[SU_PREFIX_STRLEN];
	int ret = 0;

	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < f->n_prefixes; i++)
		v[i] = &f->prefixes[i];
	qsort(v, f->n_prefixes, sizeof(*v), cmp_prefix_ptr);
	for (uint32_t i = 1; i < f->n_prefixes && !ret; i++) {
		/* Name the one written later, as a reader meets them. */
		struct su_fleet_prefix *x = v[i - 1], *y = v[i];

		if (!su_prefix__overlaps(&x->prefix, &y->prefix))
			continue;
		if (x->line > y->line) {
			x = v[i];
			y = v[i - 1];
		}
		ret = su_err__set(c->err, EINVAL, "%s:%u: prefix %s overlaps %s (line %u)", c->file, y->line,
				  su_prefix__str(&y->prefix, a), su_prefix__str(&x->prefix, b), x->line);
	}
	free(v);
	return ret;
}

static int parse_prefixes(struct ctx *c, const yaml_node_t *seq)
{
	struct su_fleet *f = c->fleet;
	uint64_t total = 0;
	int ret = expect(c, seq, YAML_SEQUENCE_NODE, "prefixes");

	if (ret)
		return ret;
	f->prefixes = calloc(seq->data.sequence.items.top - seq->data.sequence.items.start + 1,
			     sizeof(*f->prefixes));
	if (!f->prefixes)
		return -ENOMEM;
	for_each_item(c, seq, it) {
		struct su_fleet_prefix *pfx = &f->prefixes[f->n_prefixes++];

		ret = parse_prefix(c, node(c, *it), pfx);
		if (ret)
			return ret;
		total += su_prefix__size(&pfx->prefix);
		if (total > SU_MAX_EGRESS_IPS)
			return FAIL(c, node(c, *it), "more than %u egress addresses in all", SU_MAX_EGRESS_IPS);
	}
	return check_overlaps(c);
}

/* "LO-HI", each bound a plain decimal within 1-65535. */
static int parse_range(struct ctx *c, const yaml_node_t *v, uint32_t *lo, uint32_t *hi)
{
	const char *s = scalar(v), *dash = s ? strchr(s, '-') : NULL;
	char first[16];
	uint64_t a, b;

	if (!dash || dash == s || (size_t)(dash - s) >= sizeof(first))
		return FAIL(c, v, "ports: bad range '%s' (LO-HI within 1-65535)", s ? s : kind_name(v));
	memcpy(first, s, (size_t)(dash - s));
	first[dash - s] = '\0';
	for (const char *part = first; part; part = part == first ? dash + 1 : NULL)
		if (su_number__ambiguity(part))
			return FAIL(c, v, "ports: range '%s': '%s' is ambiguous, %s", s, part,
				    su_number__ambiguity(part));
	if (su_uint__parse(first, 65535, &a) || su_uint__parse(dash + 1, 65535, &b) || a < 1 || a > b)
		return FAIL(c, v, "ports: bad range '%s' (LO-HI within 1-65535)", s);
	*lo = (uint32_t)a;
	*hi = (uint32_t)b;
	return 0;
}

static int parse_ports(struct ctx *c, const yaml_node_t *map)
{
	struct su_fleet *f = c->fleet;
	int ret = expect(c, map, YAML_MAPPING_NODE, "ports");

	if (!ret)
		ret = check_unique_keys(c, map, "ports");
	for_each_pair(c, map, p) {
		const yaml_node_t *k = node(c, p->key), *v = node(c, p->value);

		if (ret)
			return ret;
		if (!strcmp(scalar(k), "range")) {
			ret = parse_range(c, v, &f->port_lo, &f->port_hi);
		} else if (!strcmp(scalar(k), "slice")) {
			ret = parse_uint(c, v, "ports: slice", SU_MIN_SLICE, 32768, &f->slice_size);
			if (!ret && (f->slice_size & (f->slice_size - 1)))
				return FAIL(c, v, "ports: slice %u is not a power of two", f->slice_size);
		} else {
			return FAIL(c, k, "ports: unknown key '%s' (range, slice)", scalar(k));
		}
	}
	return ret;
}

/* Cross-entity rules that need the whole file: every router and server
 * address is unique, and so is every server name.  Sorted, so a fleet of
 * tens of thousands of servers checks in milliseconds. */
struct named_addr {
	const char *name;
	uint32_t addr;
	unsigned line;
	bool server;
};

static int cmp_addr(const void *a, const void *b)
{
	const struct named_addr *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

static int cmp_name(const void *a, const void *b)
{
	const struct named_addr *x = a, *y = b;
	int c = (y->server - x->server) ? (int)y->server - (int)x->server : strcmp(x->name, y->name);

	return c ? c : (x->line < y->line ? -1 : x->line > y->line);
}

static int check_uniqueness(struct ctx *c)
{
	const struct su_fleet *f = c->fleet;
	char a[SU_ADDR_STRLEN];
	size_t n = 0, cap = f->n_dcs;
	struct named_addr *all;
	int ret = 0;

	for (uint32_t i = 0; i < f->n_dcs; i++)
		cap += f->dcs[i].n_servers;
	all = calloc(cap + 1, sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (uint32_t i = 0; i < f->n_dcs; i++) {
		all[n++] = (struct named_addr){ f->dcs[i].name, f->dcs[i].router, f->dcs[i].line, false };
		for (uint32_t j = 0; j < f->dcs[i].n_servers; j++)
			all[n++] = (struct named_addr){ f->dcs[i].servers[j].name, f->dcs[i].servers[j].addr,
							f->dcs[i].servers[j].line, true };
	}
	qsort(all, n, sizeof(*all), cmp_addr);
	for (size_t i = 1; i < n && !ret; i++)
		if (all[i].addr == all[i - 1].addr)
			ret = su_err__set(c->err, EINVAL, "%s:%u: address %s of %s is already used by %s (line %u)",
					  c->file, all[i].line, su_addr__str(all[i].addr, a), all[i].name,
					  all[i - 1].name, all[i - 1].line);
	qsort(all, n, sizeof(*all), cmp_name);
	for (size_t i = 1; i < n && !ret; i++)
		if (all[i].server && all[i - 1].server && !strcmp(all[i].name, all[i - 1].name))
			ret = su_err__set(c->err, EINVAL, "%s:%u: server name '%s' is already used (line %u)",
					  c->file, all[i].line, all[i].name, all[i - 1].line);
	free(all);
	return ret;
}

static int parse_drain(struct ctx *c, const yaml_node_t *v)
{
	const char *s = scalar(v);
	int ret = s ? su_duration__parse(s, &c->fleet->drain) : -EINVAL;

	c->drain = v;
	if (ret == -EDOM)
		return FAIL(c, v, "drain: '%s' is ambiguous, %s", s,
			    su_number__ambiguity(s) ? su_number__ambiguity(s) : "write e.g. 90s or 10m");
	if (ret == -ERANGE)
		return FAIL(c, v, "drain: '%s' is longer than a year", s);
	if (ret)
		return FAIL(c, v, "drain: bad duration '%s' (e.g. 90s, 10m, 1h30m)", s ? s : kind_name(v));
	return 0;
}

/* Only the YAML 1.2 core booleans: YAML 1.1 also reads yes/no/on/off/y/n,
 * which other tools would take for strings. */
static int parse_bool(struct ctx *c, const yaml_node_t *v, const char *what, bool *out)
{
	const char *s = scalar(v);

	if (s && (!strcmp(s, "true") || !strcmp(s, "false"))) {
		*out = !strcmp(s, "true");
		return 0;
	}
	return FAIL(c, v, "%s: '%s' is not true or false%s", what, s ? s : kind_name(v),
		    s && strchr("yYnNoO", *s) ? " (YAML 1.1 reads yes/no/on/off as booleans, YAML 1.2 "
						  "as strings: write true or false)" : "");
}

static int parse_root(struct ctx *c, const yaml_node_t *root)
{
	struct su_fleet *f = c->fleet;
	const yaml_node_t *prefixes = NULL;
	bool have_dcs = false;
	int ret;

	if (!root)
		return su_err__set(c->err, EINVAL, "%s: empty fleet description", c->file);
	ret = expect(c, root, YAML_MAPPING_NODE, "the fleet description");
	if (!ret)
		ret = check_unique_keys(c, root, "fleet");
	/* prefixes name DCs, so datacenters are read first whatever the order. */
	for_each_pair(c, root, p) {
		const yaml_node_t *k = node(c, p->key), *v = node(c, p->value);
		const char *key = scalar(k);

		if (ret)
			return ret;
		if (!strcmp(key, "ports")) {
			ret = parse_ports(c, v);
		} else if (!strcmp(key, "drain")) {
			ret = parse_drain(c, v);
		} else if (!strcmp(key, "allow_short_drain")) {
			ret = parse_bool(c, v, "allow_short_drain", &f->allow_short_drain);
		} else if (!strcmp(key, "datacenters")) {
			ret = parse_datacenters(c, v);
			have_dcs = true;
		} else if (!strcmp(key, "prefixes")) {
			prefixes = v;
		} else {
			ret = FAIL(c, k, "unknown key '%s' (ports, drain, allow_short_drain, datacenters, prefixes)",
				   key);
		}
	}
	if (!ret && c->drain && f->drain < SU_MIN_DRAIN && !f->allow_short_drain)
		ret = FAIL(c, c->drain, "drain: %s is below the floor of %us: origins keep TIME_WAIT for a "
			   "connection's ports up to 2 x MSL (4 minutes), and a slice freed sooner can go to "
			   "another server while they do; set 'allow_short_drain: true' if you accept that",
			   scalar(c->drain), SU_MIN_DRAIN);
	if (ret)
		return ret;
	if (!have_dcs || !f->n_dcs)
		return FAIL(c, root, "no datacenters");
	if (!prefixes)
		return FAIL(c, root, "no prefixes");
	ret = parse_prefixes(c, prefixes);
	if (!ret)
		ret = check_uniqueness(c);
	if (!ret) {
		uint32_t first, count;

		if (su_slices__geometry(f->port_lo, f->port_hi, f->slice_size, &first, &count))
			ret = FAIL(c, root, "ports: no whole %u-port slice fits in %u-%u", f->slice_size,
				   f->port_lo, f->port_hi);
	}
	return ret;
}

static int yaml_error(const yaml_parser_t *parser, const char *name, struct su_err *err)
{
	return su_err__set(err, EINVAL, "%s:%zu: YAML syntax error: %s", name, parser->problem_mark.line + 1,
			   parser->problem ? parser->problem : "unknown");
}

/* One event against the limits; `depth` and `nodes` carry across events. */
static int prescan_event(const yaml_event_t *ev, const char *name, unsigned *depth, size_t *nodes,
			 unsigned *docs, struct su_err *err)
{
	size_t line = ev->start_mark.line + 1;
	const char *anchor = NULL, *tag = NULL;

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++*docs > 1)
			return su_err__set(err, EINVAL, "%s:%zu: a second YAML document: a fleet file holds one",
					   name, line);
		return 0;
	case YAML_ALIAS_EVENT:
		/* Aliases multiply what a small file expands to (the "billion
		 * laughs"); a fleet never needs them. */
		return su_err__set(err, EINVAL, "%s:%zu: YAML alias '*%s' refused: fleet files use no "
				   "anchors or aliases (write each value out)", name, line,
				   (const char *)ev->data.alias.anchor);
	case YAML_SCALAR_EVENT:
		anchor = (const char *)ev->data.scalar.anchor;
		tag = ev->data.scalar.plain_implicit || ev->data.scalar.quoted_implicit ?
			      NULL : (const char *)ev->data.scalar.tag;
		if (ev->data.scalar.length > SU_FLEET_MAX_SCALAR)
			return su_err__set(err, EINVAL, "%s:%zu: a value of %zu bytes: the limit is %u", name,
					   line, ev->data.scalar.length, SU_FLEET_MAX_SCALAR);
		break;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		anchor = (const char *)(ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor :
										  ev->data.mapping_start.anchor);
		if (!(ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.implicit :
							      ev->data.mapping_start.implicit))
			tag = (const char *)(ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.tag :
										       ev->data.mapping_start.tag);
		if (++*depth > SU_FLEET_MAX_DEPTH)
			return su_err__set(err, EINVAL, "%s:%zu: lists and mappings nested more than %u deep",
					   name, line, SU_FLEET_MAX_DEPTH);
		break;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		--*depth;
		return 0;
	default:
		return 0;
	}
	if (anchor)
		return su_err__set(err, EINVAL, "%s:%zu: YAML anchor '&%s' refused: fleet files use no anchors "
				   "or aliases", name, line, anchor);
	if (tag)
		return su_err__set(err, EINVAL, "%s:%zu: YAML tag '%s' refused: fleet files use no explicit "
				   "tags", name, line, tag);
	if (++*nodes > SU_FLEET_MAX_NODES)
		return su_err__set(err, EINVAL, "%s:%zu: more than %u values, lists and mappings", name, line,
				   SU_FLEET_MAX_NODES);
	return 0;
}

/* Walks libyaml's event stream once and stops at the first limit passed,
 * before libyaml builds a document: the cost of refusing a hostile file is
 * bounded by the limits, not by the file. */
static int prescan(const char *buf, size_t len, const char *name, struct su_err *err)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	unsigned depth = 0, docs = 0;
	size_t nodes = 0;
	int ret = 0;

	if (len > SU_FLEET_MAX_BYTES)
		return su_err__set(err, EFBIG, "%s: %zu bytes: a fleet file may have at most %u", name, len,
				   SU_FLEET_MAX_BYTES);
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	for (bool done = false; !done && !ret;) {
		if (!yaml_parser_parse(&parser, &ev)) {
			ret = yaml_error(&parser, name, err);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		ret = prescan_event(&ev, name, &depth, &nodes, &docs, err);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	return ret;
}

int su_fleet__parse(const char *buf, size_t len, const char *name, struct su_fleet **out,
		    struct su_err *err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct su_fleet *f = calloc(1, sizeof(*f));
	struct ctx c = { .file = name, .doc = &doc, .err = err, .fleet = f };
	int ret;

	*out = NULL;
	if (!f)
		return -ENOMEM;
	ret = prescan(buf, len, name, err);
	if (ret) {
		free(f);
		return ret;
	}
	*f = (struct su_fleet){ .port_lo = SU_DEFAULT_PORT_LO, .port_hi = SU_DEFAULT_PORT_HI,
				.slice_size = SU_DEFAULT_SLICE, .drain = SU_DEFAULT_DRAIN };
	if (!yaml_parser_initialize(&parser)) {
		free(f);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		ret = yaml_error(&parser, name, err);
		yaml_parser_delete(&parser);
		su_fleet__free(f);
		return ret;
	}
	ret = parse_root(&c, yaml_document_get_root_node(&doc));
	su_strmap__free(&c.dc_names);
	free(c.dc_seen);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (ret) {
		su_fleet__free(f);
		return ret;
	}
	*out = f;
	return 0;
}

int su_fleet__load(const char *path, struct su_fleet **out, struct su_err *err)
{
	char *buf;
	size_t len;
	int ret;

	*out = NULL;
	ret = su_read_file_max(path, SU_FLEET_MAX_BYTES, "a fleet file", &buf, &len, err);
	if (ret)
		return ret;
	ret = su_fleet__parse(buf, len, path, out, err);
	free(buf);
	return ret;
}

void su_fleet__free(struct su_fleet *f)
{
	if (!f)
		return;
	for (uint32_t i = 0; i < f->n_dcs; i++) {
		struct su_fleet_dc *dc = &f->dcs[i];

		for (uint32_t j = 0; j < dc->n_servers; j++)
			free(dc->servers[j].name);
		for (uint32_t j = 0; j < dc->n_demands; j++)
			su_tags__free(&dc->demands[j].tags);
		free(dc->servers);
		free(dc->demands);
		free(dc->name);
	}
	for (uint32_t i = 0; i < f->n_prefixes; i++) {
		su_tags__free(&f->prefixes[i].tags);
		free(f->prefixes[i].dcs);
	}
	free(f->dcs);
	free(f->prefixes);
	free(f);
}
