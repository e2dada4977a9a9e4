/* Client geolocation: an RFC 8805 geofeed CSV (the format `softunicast
 * geofeed` writes: ip_prefix,alpha2code,region,city,postal_code) and/or a
 * MaxMind .mmdb database (libmaxminddb).  The CSV wins when both match: it is
 * the operator's own statement about its address space. */
#include <ctype.h>
#include <errno.h>
#include <maxminddb.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

struct geo_entry {
	struct proxy_cidr net;
	char cc[3];
};

struct proxy_geo {
	struct geo_entry *v;
	size_t n;
	MMDB_s mmdb;
	bool have_mmdb;
	char mmdb_cc[3];
};

static int load_csv(struct proxy_geo *g, const char *path, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	unsigned ln = 0;
	int rc = 0;

	if (!fp) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	while (!rc && getline(&line, &cap, fp) >= 0) {
		char *f[5] = { 0 }, *s = line, *c;
		int nf = 0;
		struct geo_entry *nv;

		ln++;
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0] || line[0] == '#') /* RFC 8805 §2.1.1: '#' starts a comment line */
			continue;
		while (nf < 5) {
			f[nf++] = s;
			if (!(c = strchr(s, ',')))
				break;
			*c = 0;
			s = c + 1;
		}
		nv = realloc(g->v, (g->n + 1) * sizeof(*nv));
		if (!nv) {
			rc = -ENOMEM;
			break;
		}
		g->v = nv;
		nv += g->n;
		if (proxy_cidr__parse(f[0], &nv->net)) {
			snprintf(err, errlen, "%s:%u: '%s' is not an IP prefix", path, ln, f[0]);
			rc = -EINVAL;
		} else if (nf < 2 || (f[1][0] && (strlen(f[1]) != 2 || !isalpha((unsigned char)f[1][0]) ||
						  !isalpha((unsigned char)f[1][1])))) {
			snprintf(err, errlen, "%s:%u: '%s' is not an ISO 3166-1 alpha-2 code", path, ln,
				 nf < 2 ? "" : f[1]);
			rc = -EINVAL;
		} else if (f[1][0]) { /* an empty code means "do not geolocate" (§2.1.1.2) */
			nv->cc[0] = (char)toupper((unsigned char)f[1][0]);
			nv->cc[1] = (char)toupper((unsigned char)f[1][1]);
			nv->cc[2] = 0;
			g->n++;
		}
	}
	free(line);
	fclose(fp);
	return rc;
}

int proxy_geo__open(const char *csv, const char *mmdb, struct proxy_geo **out, char *err, size_t errlen)
{
	struct proxy_geo *g = calloc(1, sizeof(*g));
	int rc = 0;

	if (!g)
		return -ENOMEM;
	if (csv)
		rc = load_csv(g, csv, err, errlen);
	if (!rc && mmdb) {
		int s = MMDB_open(mmdb, MMDB_MODE_MMAP, &g->mmdb);

		if (s != MMDB_SUCCESS) {
			snprintf(err, errlen, "%s: %s", mmdb, MMDB_strerror(s));
			rc = -EINVAL;
		} else
			g->have_mmdb = true;
	}
	if (rc) {
		proxy_geo__free(g);
		return rc;
	}
	*out = g;
	return 0;
}

static const char *from_mmdb(struct proxy_geo *g, const struct sockaddr *sa)
{
	MMDB_entry_data_s d;
	MMDB_lookup_result_s r;
	int gai, mm;

	r = MMDB_lookup_sockaddr(&g->mmdb, sa, &mm);
	if (mm != MMDB_SUCCESS || !r.found_entry)
		return NULL;
	gai = MMDB_get_value(&r.entry, &d, "country", "iso_code", NULL);
	if (gai != MMDB_SUCCESS || !d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
		return NULL;
	g->mmdb_cc[0] = d.utf8_string[0];
	g->mmdb_cc[1] = d.utf8_string[1];
	g->mmdb_cc[2] = 0;
	return g->mmdb_cc;
}

const char *proxy_geo__country(struct proxy_geo *g, const struct sockaddr *sa)
{
	const struct geo_entry *best = NULL;

	if (!g)
		return NULL;
	for (size_t i = 0; i < g->n; i++)
		if (proxy_cidr__match(&g->v[i].net, sa) && (!best || g->v[i].net.len > best->net.len))
			best = &g->v[i];
	if (best)
		return best->cc;
	return g->have_mmdb ? from_mmdb(g, sa) : NULL;
}

void proxy_geo__free(struct proxy_geo *g)
{
	if (!g)
		return;
	if (g->have_mmdb)
		MMDB_close(&g->mmdb);
	free(g->v);
	free(g);
}
