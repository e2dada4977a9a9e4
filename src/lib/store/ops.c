/* Operator decisions kept with the plan: pins (IPs held to one DC) and
 * drains (servers taking no new connections).  They are applied to the fleet
 * before each re-plan, so the planner, not the operator, moves slices and
 * keeps the drain deadlines honest.  Text form, one per line, sorted:
 *   drain SERVER
 *   pin CIDR DC */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/ops.h"

void su_ops__free(struct su_ops *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(o->v[i]);
	free(o->v);
	o->v = NULL;
	o->n = 0;
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_line(struct su_ops *o, char *line)
{
	char **nv;

	if (!line)
		return -ENOMEM;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->v[i], line)) {
			free(line);
			return 0;
		}
	if (!(nv = realloc(o->v, (o->n + 1) * sizeof(*nv)))) {
		free(line);
		return -ENOMEM;
	}
	o->v = nv;
	o->v[o->n++] = line;
	qsort(o->v, o->n, sizeof(*o->v), cmp_line);
	return 0;
}

static void remove_at(struct su_ops *o, size_t i)
{
	free(o->v[i]);
	memmove(&o->v[i], &o->v[i + 1], (o->n - i - 1) * sizeof(*o->v));
	o->n--;
}

int su_ops__parse(const char *text, const char *name, struct su_ops *o, struct su_err *err)
{
	char *copy = strdup(text ? text : ""), *save = NULL;
	unsigned line = 0;
	int ret = copy ? 0 : -ENOMEM;

	memset(o, 0, sizeof(*o));
	for (char *l = copy ? strtok_r(copy, "\n", &save) : NULL; !ret && l; l = strtok_r(NULL, "\n", &save)) {
		char a[64], b[256], extra;
		struct su_prefix4 px;

		line++;
		if (sscanf(l, "drain %255s %c", b, &extra) == 1)
			ret = add_line(o, strdup(l));
		else if (sscanf(l, "pin %63s %255s %c", a, b, &extra) == 2 && !su_prefix__parse(a, &px))
			ret = add_line(o, strdup(l));
		else
			ret = su_err__set(err, EINVAL, "%s:%u: bad operation '%.80s'", name, line, l);
	}
	free(copy);
	if (ret == -ENOMEM)
		ret = su_err__set(err, ENOMEM, "out of memory");
	if (ret)
		su_ops__free(o);
	return ret;
}

char *su_ops__format(const struct su_ops *o)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < o->n; i++)
		len += strlen(o->v[i]) + 1;
	if (!(s = malloc(len)))
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < o->n; i++)
		strcat(strcat(s, o->v[i]), "\n");
	return s;
}

int su_ops__drain(struct su_ops *o, const char *server, bool on)
{
	char *line;

	if (asprintf(&line, "drain %s", server) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->v[i], line)) {
			free(line);
			if (!on)
				remove_at(o, i);
			return 0;
		}
	if (!on) {
		free(line);
		return -ENOENT;
	}
	return add_line(o, line);
}

int su_ops__pin(struct su_ops *o, const struct su_prefix4 *px, const char *dc)
{
	char a[SU_PREFIX_STRLEN], *line;

	/* A new pin replaces the pins it covers; one inside an older, wider pin
	 * is split out of it when applied (the narrower prefix wins). */
	for (size_t i = 0; i < o->n;) {
		char c[64], d[256];
		struct su_prefix4 q;

		if (sscanf(o->v[i], "pin %63s %255s", c, d) == 2 && !su_prefix__parse(c, &q) && q.len >= px->len &&
		    su_prefix__contains(px, q.addr))
			remove_at(o, i);
		else
			i++;
	}
	if (asprintf(&line, "pin %s %s", su_prefix__str(px, a), dc) < 0)
		return -ENOMEM;
	return add_line(o, line);
}

/* ---- applying to a fleet -------------------------------------------------------- */

static int find_dc(const struct su_fleet *f, const char *name)
{
	for (uint32_t i = 0; i < f->n_dcs; i++)
		if (!strcmp(f->dcs[i].name, name))
			return (int)i;
	return -1;
}

static bool drop_server(struct su_fleet *f, const char *name)
{
	for (uint32_t d = 0; d < f->n_dcs; d++) {
		struct su_fleet_dc *dc = &f->dcs[d];

		for (uint32_t s = 0; s < dc->n_servers; s++) {
			if (strcmp(dc->servers[s].name, name))
				continue;
			free(dc->servers[s].name);
			memmove(&dc->servers[s], &dc->servers[s + 1], (dc->n_servers - s - 1) * sizeof(*dc->servers));
			dc->n_servers--;
			return true;
		}
	}
	return false;
}

/* Appends prefix q (tags of p, allow-list dcs/n) to the fleet. */
static int add_prefix(struct su_fleet *f, const struct su_prefix4 *q, const struct su_fleet_prefix *p,
		      const uint32_t *dcs, uint32_t n)
{
	struct su_fleet_prefix *nv = realloc(f->prefixes, (f->n_prefixes + 1) * sizeof(*nv)), *x;

	if (!nv)
		return -ENOMEM;
	f->prefixes = nv;
	x = &nv[f->n_prefixes];
	memset(x, 0, sizeof(*x));
	x->prefix = *q;
	x->line = p->line;
	if (su_tags__copy(&x->tags, &p->tags))
		return -ENOMEM;
	if (n && !(x->dcs = malloc(n * sizeof(*dcs)))) {
		su_tags__free(&x->tags);
		return -ENOMEM;
	}
	if (n)
		memcpy(x->dcs, dcs, n * sizeof(*dcs));
	x->n_dcs = n;
	f->n_prefixes++;
	return 0;
}

static void remove_prefix(struct su_fleet *f, uint32_t i)
{
	su_tags__free(&f->prefixes[i].tags);
	free(f->prefixes[i].dcs);
	memmove(&f->prefixes[i], &f->prefixes[i + 1], (f->n_prefixes - i - 1) * sizeof(*f->prefixes));
	f->n_prefixes--;
}

/* Prefix i contains the pin strictly: it becomes the pin plus the CIDRs of
 * the rest (the sibling of the pin's ancestor at each length). */
static int split_prefix(struct su_fleet *f, uint32_t i, const struct su_prefix4 *pin, uint32_t dc)
{
	struct su_fleet_prefix p = f->prefixes[i];
	int ret = add_prefix(f, pin, &p, &dc, 1);

	for (uint8_t len = pin->len; !ret && len > p.prefix.len; len--) {
		uint32_t mask = len ? ~0u << (32 - len) : 0;
		struct su_prefix4 sib = { (pin->addr & mask) ^ (1u << (32 - len)), len };

		ret = add_prefix(f, &sib, &p, p.dcs, p.n_dcs);
	}
	if (!ret)
		remove_prefix(f, i);
	return ret;
}

static int apply_pin(struct su_fleet *f, const struct su_prefix4 *pin, const char *dc_name, struct su_err *err)
{
	int dc = find_dc(f, dc_name), ret = 0;
	char a[SU_PREFIX_STRLEN];
	bool hit = false;

	if (dc < 0)
		return su_err__set(err, ENOENT, "pin %s: no data center '%s' in the fleet", su_prefix__str(pin, a), dc_name);
	for (uint32_t i = 0; !ret && i < f->n_prefixes;) {
		struct su_fleet_prefix *p = &f->prefixes[i];

		if (!su_prefix__overlaps(&p->prefix, pin)) {
			i++;
			continue;
		}
		hit = true;
		if (p->prefix.len >= pin->len) { /* inside the pin: this DC only */
			uint32_t *one = realloc(p->dcs, sizeof(*one));

			if (!one)
				return su_err__set(err, ENOMEM, "out of memory");
			one[0] = (uint32_t)dc;
			p->dcs = one;
			p->n_dcs = 1;
			i++;
		} else {
			ret = split_prefix(f, i, pin, (uint32_t)dc); /* the pieces are appended */
		}
	}
	if (ret)
		return su_err__set(err, ENOMEM, "out of memory");
	if (!hit)
		return su_err__set(err, ENOENT, "pin %s: no egress prefix of the fleet covers it", su_prefix__str(pin, a));
	return 0;
}

int su_ops__apply(const struct su_ops *o, struct su_fleet *f, bool strict, struct su_err *err)
{
	/* Pins in order of length, widest first: a narrower one splits out of it. */
	for (uint8_t len = 0; len <= 32; len++)
		for (size_t i = 0; i < o->n; i++) {
			char c[64], d[256];
			struct su_prefix4 q;
			int ret;

			if (sscanf(o->v[i], "pin %63s %255s", c, d) != 2 || su_prefix__parse(c, &q) || q.len != len)
				continue;
			if ((ret = apply_pin(f, &q, d, err)) && (strict || ret != -ENOENT))
				return ret;
		}
	for (size_t i = 0; i < o->n; i++) {
		char name[256];

		if (sscanf(o->v[i], "drain %255s", name) == 1 && !drop_server(f, name) && strict)
			return su_err__set(err, ENOENT, "drain: no server '%s' in the fleet", name);
	}
	return 0;
}
