/* What may reach an RFC 8805 geofeed: the text checks every published field
 * passes, and ISO 3166 country and subdivision codes read at run time from
 * Debian's iso-codes package (so they follow its updates instead of a table
 * frozen in our source). */
#ifndef SU_GEO_H
#define SU_GEO_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"
#include "lib/strmap.h"
#include "lib/tags.h"

/* Where iso-codes installs its JSON; SOFTUNICAST_ISO_CODES_DIR overrides it. */
#define SU_ISO_CODES_DIR "/usr/share/iso-codes/json"
#define SU_ISO_CODES_ENV "SOFTUNICAST_ISO_CODES_DIR"

/* The tag keys whose values are published in the geofeed's CSV columns. */
#define SU_GEO_KEYS "country", "region", "city", "postal"

struct su_iso3166 {
	struct su_strmap countries;    /* ISO 3166-1 alpha-2: "IE" */
	struct su_strmap subdivisions; /* ISO 3166-2: "IE-L" */
};

/* Reads iso_3166-1.json and iso_3166-2.json from `dir` (NULL: the
 * environment variable, else SU_ISO_CODES_DIR).  -ENOENT with "install the
 * Debian package iso-codes" in err when a file is missing; -EINVAL when a
 * file is not the iso-codes JSON shape. */
int su_iso3166__open(const char *dir, struct su_iso3166 **out, struct su_err *err);
void su_iso3166__free(struct su_iso3166 *db);
/* The process-wide copy, read on first use and kept (the loaders and the
 * geofeed command call this; the fuzzers call the loader many times). */
int su_iso3166__get(const struct su_iso3166 **out, struct su_err *err);
bool su_iso3166__country(const struct su_iso3166 *db, const char *alpha2);
bool su_iso3166__subdivision(const struct su_iso3166 *db, const char *code);

/* Text an operator reads and a program matches: valid UTF-8, no control,
 * format, separator or private-use characters (Unicode Cc, Cf, Zl, Zp, Co:
 * U+FEFF, U+200B, the bidi controls...), no surrounding whitespace; with
 * `csv` (a field of a geofeed line, RFC 8805 section 2.1.1) also no ',' or
 * '"'.  0, or -EINVAL with the reason ("U+200B (a format character) at
 * byte 6") in why[n]. */
int su_geo__check_text(const char *s, bool csv, char *why, size_t n);

/* `s` for an error message: what su_geo__check_text refuses (bar ',', '"'
 * and spaces) written as \uXXXX or \xNN, so a bidi control in a value
 * cannot reorder the terminal line that reports it.  Returns out. */
const char *su_geo__escape(const char *s, char *out, size_t n);

/* Checks every geofeed field of a tag-set: the text rule above on country,
 * region, city and postal, country an ISO 3166-1 alpha-2 code, region an
 * ISO 3166-2 code of that country, city and region only with a country.
 * `db` NULL skips the ISO look-ups (shape only).  0 or -EINVAL with a
 * sentence in why[n]. */
int su_geo__check_tags(const struct su_tags *t, const struct su_iso3166 *db, char *why, size_t n);

#endif
