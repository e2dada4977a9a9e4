#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lib/geo.h"
#include "lib/geofeed.h"

static const char *tag_or_empty(const struct su_tags *t, const char *key)
{
	const char *v = su_tags__get(t, key);

	return v ? v : "";
}

static bool same_place(const struct su_geofeed_entry *a, const struct su_geofeed_entry *b)
{
	return !strcmp(a->country, b->country) && !strcmp(a->region, b->region) && !strcmp(a->city, b->city);
}

/* The largest aligned block starting at `lo` that does not pass `hi`. */
static uint8_t block_len(uint32_t lo, uint32_t hi)
{
	uint8_t len = 32;

	while (len > 0) {
		uint64_t size = 1ull << (33 - len);

		if ((lo & (size - 1)) || lo + size - 1 > hi)
			break;
		len--;
	}
	return len;
}

static int emit_run(struct su_geofeed_entry **v, size_t *n, size_t *cap, const struct su_geofeed_entry *place,
		    uint32_t lo, uint32_t hi)
{
	for (;;) {
		uint8_t len = block_len(lo, hi);

		if (*n == *cap) {
			size_t ncap = *cap ? 2 * *cap : 64;
			struct su_geofeed_entry *nv = realloc(*v, ncap * sizeof(*nv));

			if (!nv)
				return -ENOMEM;
			*v = nv;
			*cap = ncap;
		}
		(*v)[*n] = *place;
		(*v)[(*n)++].prefix = (struct su_prefix4){ lo, len };
		if (len == 0 || (uint64_t)lo + (1ull << (32 - len)) - 1 >= hi)
			return 0;
		lo += (uint32_t)(1ull << (32 - len));
	}
}

int su_geofeed__build(const struct su_plan *p, struct su_geofeed_entry **out, size_t *n_out)
{
	struct su_geofeed_entry *v = NULL, run = { 0 };
	size_t n = 0, cap = 0;
	uint32_t lo = 0, hi = 0;
	bool open = false;
	int ret = 0;

	for (uint32_t i = 0; i < p->n_ips && !ret; i++) {
		const struct su_tags *t = &p->prefixes[p->ips[i].prefix].tags;
		struct su_geofeed_entry here = { .country = tag_or_empty(t, "country"),
						 .region = tag_or_empty(t, "region"),
						 .city = tag_or_empty(t, "city") };
		uint32_t ip = p->ips[i].ip;

		if (!*here.country)
			continue;
		if (open && ip == hi + 1 && hi != UINT32_MAX && same_place(&run, &here)) {
			hi = ip;
			continue;
		}
		if (open)
			ret = emit_run(&v, &n, &cap, &run, lo, hi);
		run = here;
		lo = hi = ip;
		open = true;
	}
	if (!ret && open)
		ret = emit_run(&v, &n, &cap, &run, lo, hi);
	if (ret) {
		free(v);
		return ret;
	}
	*out = v;
	*n_out = n;
	return 0;
}

int su_geofeed__write(const struct su_plan *p, FILE *fp)
{
	struct su_geofeed_entry *v;
	char a[SU_PREFIX_STRLEN];
	size_t n;
	int ret = su_geofeed__build(p, &v, &n);

	if (ret)
		return ret;
	fprintf(fp, "# RFC 8805 geofeed of softunicast egress space in use (plan serial %" PRIu64 ")\n"
		    "# prefix,country,region,city,postal_code\n", p->serial);
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "%s,%s,%s,%s,\n", su_prefix__str(&v[i].prefix, a), v[i].country, v[i].region,
			v[i].city);
	free(v);
	return ferror(fp) ? -EIO : 0;
}

int su_geofeed__check(const struct su_plan *p, struct su_err *err)
{
	const struct su_iso3166 *db;
	char why[400], a[SU_PREFIX_STRLEN];
	int ret = su_iso3166__get(&db, err);

	for (uint32_t i = 0; !ret && i < p->n_prefixes; i++)
		if (su_geo__check_tags(&p->prefixes[i].tags, db, why, sizeof(why)))
			ret = su_err__set(err, EINVAL, "prefix %s: %s", su_prefix__str(&p->prefixes[i].prefix, a),
					  why);
	return ret;
}
