/* Geofeed field checks: Unicode categories from utf8proc, ISO 3166 codes
 * from iso-codes' JSON read with jansson. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "lib/geo.h"

static int load_codes(const char *dir, const char *file, const char *list, const char *field,
		      struct su_strmap *m, struct su_err *err)
{
	char path[4096];
	json_error_t jerr;
	json_t *root, *arr;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	root = json_load_file(path, 0, &jerr);
	if (!root && json_error_code(&jerr) == json_error_cannot_open_file)
		return su_err__set(err, ENOENT, "ISO 3166 data %s cannot be read (%s): install the Debian "
				   "package iso-codes, or set %s", path, jerr.text, SU_ISO_CODES_ENV);
	if (!root)
		return su_err__set(err, EINVAL, "ISO 3166 data %s:%d: %s", path, jerr.line, jerr.text);
	arr = json_object_get(root, list);
	if (!json_is_array(arr) || !json_array_size(arr))
		ret = su_err__set(err, EINVAL, "ISO 3166 data %s has no \"%s\" list", path, list);
	for (size_t i = 0; !ret && i < json_array_size(arr); i++) {
		const char *code = json_string_value(json_object_get(json_array_get(arr, i), field));

		if (!code) {
			ret = su_err__set(err, EINVAL, "ISO 3166 data %s: entry %zu has no \"%s\"", path, i, field);
			break;
		}
		ret = su_strmap__put(m, code, 0);
		if (ret == -EEXIST)
			ret = 0;
		else if (ret)
			ret = su_err__set(err, -ret, "out of memory");
	}
	json_decref(root);
	return ret;
}

int su_iso3166__open(const char *dir, struct su_iso3166 **out, struct su_err *err)
{
	struct su_iso3166 *db = calloc(1, sizeof(*db));
	int ret;

	*out = NULL;
	if (!db)
		return su_err__set(err, ENOMEM, "out of memory");
	if (!dir)
		dir = getenv(SU_ISO_CODES_ENV);
	if (!dir || !*dir)
		dir = SU_ISO_CODES_DIR;
	ret = load_codes(dir, "iso_3166-1.json", "3166-1", "alpha_2", &db->countries, err);
	if (!ret)
		ret = load_codes(dir, "iso_3166-2.json", "3166-2", "code", &db->subdivisions, err);
	if (ret) {
		su_iso3166__free(db);
		return ret;
	}
	*out = db;
	return 0;
}

void su_iso3166__free(struct su_iso3166 *db)
{
	if (!db)
		return;
	su_strmap__free(&db->countries);
	su_strmap__free(&db->subdivisions);
	free(db);
}

static struct {
	pthread_mutex_t lock;
	struct su_iso3166 *db;
} cache = { PTHREAD_MUTEX_INITIALIZER, NULL };

/* A failed read is not cached: the package may be installed meanwhile. */
int su_iso3166__get(const struct su_iso3166 **out, struct su_err *err)
{
	int ret = 0;

	pthread_mutex_lock(&cache.lock);
	if (!cache.db)
		ret = su_iso3166__open(NULL, &cache.db, err);
	*out = cache.db;
	pthread_mutex_unlock(&cache.lock);
	return ret;
}

bool su_iso3166__country(const struct su_iso3166 *db, const char *alpha2)
{
	uint32_t v;

	return !su_strmap__get(&db->countries, alpha2, &v);
}

bool su_iso3166__subdivision(const struct su_iso3166 *db, const char *code)
{
	uint32_t v;

	return !su_strmap__get(&db->subdivisions, code, &v);
}

static const char *forbidden_category(utf8proc_int32_t c)
{
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_CC: return "a control character";
	case UTF8PROC_CATEGORY_CF: return "a format character";
	case UTF8PROC_CATEGORY_ZL: return "a line separator";
	case UTF8PROC_CATEGORY_ZP: return "a paragraph separator";
	case UTF8PROC_CATEGORY_CO: return "a private-use character";
	case UTF8PROC_CATEGORY_CS: return "a surrogate";
	default: return NULL;
	}
}

static bool is_space(utf8proc_int32_t c)
{
	return utf8proc_category(c) == UTF8PROC_CATEGORY_ZS || (c < 128 && isspace(c));
}

int su_geo__check_text(const char *s, bool csv, char *why, size_t n)
{
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
	utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(s), off = 0;
	utf8proc_int32_t c = -1, first = -1;

	while (off < len) {
		utf8proc_ssize_t k = utf8proc_iterate(p + off, len - off, &c);
		const char *cat;

		if (k < 0) {
			snprintf(why, n, "invalid UTF-8 at byte %zd", (ssize_t)off);
			return -EINVAL;
		}
		cat = forbidden_category(c);
		if (cat) {
			snprintf(why, n, "U+%04X (%s) at byte %zd", (unsigned)c, cat, (ssize_t)off);
			return -EINVAL;
		}
		if (csv && (c == ',' || c == '"')) {
			snprintf(why, n, "'%c' at byte %zd would break the CSV line", (char)c, (ssize_t)off);
			return -EINVAL;
		}
		if (first < 0)
			first = c;
		off += k;
	}
	if (first >= 0 && (is_space(first) || is_space(c))) {
		snprintf(why, n, "leading or trailing whitespace (U+%04X)",
			 (unsigned)(is_space(first) ? first : c));
		return -EINVAL;
	}
	return 0;
}

const char *su_geo__escape(const char *s, char *out, size_t n)
{
	const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
	utf8proc_ssize_t len = (utf8proc_ssize_t)strlen(s), off = 0;
	size_t w = 0;

	if (!n)
		return out;
	out[0] = '\0';
	while (off < len && w + 12 < n) {
		utf8proc_int32_t c;
		utf8proc_ssize_t k = utf8proc_iterate(p + off, len - off, &c);

		if (k < 0)
			w += (size_t)snprintf(out + w, n - w, "\\x%02X", p[off++]);
		else if (forbidden_category(c) || (c != ' ' && is_space(c)))
			w += (size_t)snprintf(out + w, n - w, "\\u%04X", (unsigned)c), off += k;
		else
			w += (size_t)snprintf(out + w, n - w, "%.*s", (int)k, s + off), off += k;
	}
	if (off < len && n > 4)
		snprintf(out + (w + 4 < n ? w : n - 4), 4, "...");
	return out;
}

/* RFC 8805 2.1.1.2: an ISO 3166-1 alpha-2 code, in upper case. */
static bool alpha2_shape(const char *s)
{
	return strlen(s) == 2 && isupper((unsigned char)s[0]) && isupper((unsigned char)s[1]);
}

/* RFC 8805 2.1.1.3: an ISO 3166-2 code ("GB-ENG") of the row's country. */
static bool region_shape(const char *region, const char *country)
{
	size_t n = strlen(region);

	if (!country || n < 4 || n > 6 || strncmp(region, country, 2) || region[2] != '-')
		return false;
	for (const char *s = region + 3; *s; s++)
		if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s))
			return false;
	return true;
}

int su_geo__check_tags(const struct su_tags *t, const struct su_iso3166 *db, char *why, size_t n)
{
	static const char *const keys[] = { SU_GEO_KEYS };
	const char *country = su_tags__get(t, "country"), *region = su_tags__get(t, "region");
	char reason[160], shown[160];

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = su_tags__get(t, keys[i]);

		if (v && su_geo__check_text(v, true, reason, sizeof(reason))) {
			snprintf(why, n, "%s '%s' is not fit for a geofeed: %s", keys[i],
				 su_geo__escape(v, shown, sizeof(shown)), reason);
			return -EINVAL;
		}
	}
	if (country && (!alpha2_shape(country) || (db && !su_iso3166__country(db, country)))) {
		snprintf(why, n, "country '%s' is not an ISO 3166-1 alpha-2 code%s", country,
			 db ? " (per iso-codes)" : "");
		return -EINVAL;
	}
	if (region && (!region_shape(region, country) || (db && !su_iso3166__subdivision(db, region)))) {
		snprintf(why, n, "region '%s' is not an ISO 3166-2 subdivision of country '%s'%s", region,
			 country ? country : "(none)", db ? " (per iso-codes)" : "");
		return -EINVAL;
	}
	for (const char *const *k = (const char *const[]){ "city", "postal", NULL }; *k; k++)
		if (su_tags__get(t, *k) && !country) {
			snprintf(why, n, "%s '%s' needs a country", *k, su_tags__get(t, *k));
			return -EINVAL;
		}
	return 0;
}
