/* The version key's value: see version.h. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/store/version.h"
#include "lib/util.h"

#define BLOOM_HASHES 4

static uint32_t bloom_bit(const char *name, unsigned i)
{
	uint64_t h = su_fnv1a64(name, strlen(name));

	/* Kirsch-Mitzenmacher: k indexes from the two halves of one hash. */
	return (uint32_t)(((h & 0xffffffffu) + i * ((h >> 32) | 1)) % SU_CHANGED_BLOOM);
}

static void bloom_add(uint8_t *bloom, const char *name)
{
	for (unsigned i = 0; i < BLOOM_HASHES; i++)
		bloom[bloom_bit(name, i) / 8] |= (uint8_t)(1u << (bloom_bit(name, i) % 8));
}

static bool bloom_has(const uint8_t *bloom, const char *name)
{
	for (unsigned i = 0; i < BLOOM_HASHES; i++)
		if (!(bloom[bloom_bit(name, i) / 8] & (1u << (bloom_bit(name, i) % 8))))
			return false;
	return true;
}

/* A name the list cannot carry (empty, "*", or with white space) sends
 * the whole set to the filter, which takes any bytes. */
static bool listable(const char *name)
{
	return *name && *name != '*' && !name[strcspn(name, " \t\r\n")];
}

void su_changes__add(struct su_changes *c, const char *name)
{
	size_t len = strlen(c->list);

	bloom_add(c->bloom, name);
	if (!c->overflow && (len + strlen(name) + 2 > SU_CHANGED_MAX || !listable(name)))
		c->overflow = true;
	if (!c->overflow)
		snprintf(c->list + len, SU_CHANGED_MAX - len, "%s%s", len ? " " : "", name);
}

static void hex_encode(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* Exactly 2n hex digits, then the end of the line; -EINVAL otherwise. */
static int hex_decode(const char *in, uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned x;

		if (!isxdigit((unsigned char)in[2 * i]) || !isxdigit((unsigned char)in[2 * i + 1]) ||
		    sscanf(in + 2 * i, "%2x", &x) != 1)
			return -EINVAL;
		b[i] = (uint8_t)x;
	}
	return in[2 * n] && in[2 * n] != '\n' ? -EINVAL : 0;
}

void su_version__format(uint64_t serial, const char *dir, const struct su_changes *c, char *out, size_t size)
{
	int at;

	if (!c->overflow) {
		snprintf(out, size, "%" PRIu64 " %s\nchanged %s\n", serial, dir, c->list);
		return;
	}
	at = snprintf(out, size, "%" PRIu64 " %s\nchanged-bloom ", serial, dir);
	if (at < 0 || (size_t)at + 2 * sizeof(c->bloom) + 2 > size) {
		snprintf(out, size, "%" PRIu64 " %s\n", serial, dir); /* no room: no list */
		return;
	}
	hex_encode(c->bloom, sizeof(c->bloom), out + at);
	strcpy(out + at + 2 * sizeof(c->bloom), "\n");
}

int su_version__parse(const char *val, struct su_version *v)
{
	const char *list = strstr(val, "\nchanged ");
	const char *bloom = strstr(val, "\nchanged-bloom ");

	memset(v, 0, sizeof(*v));
	if (sscanf(val, "%" SCNu64 " %63s", &v->serial, v->dir) != 2 || !v->serial)
		return -EBADMSG;
	if (list && (list += strlen("\nchanged ")) && *list != '*' && strcspn(list, "\n") < SU_CHANGED_MAX) {
		v->has = SU_CHANGES_LISTED; /* spaces around each name: a search for " NAME " */
		snprintf(v->changed, sizeof(v->changed), " %.*s ", (int)strcspn(list, "\n"), list);
	} else if (bloom && !hex_decode(bloom + strlen("\nchanged-bloom "), v->bloom, sizeof(v->bloom))) {
		v->has = SU_CHANGES_BLOOM;
	}
	return 0;
}

bool su_version__unchanged(const struct su_version *v, const char *name, uint64_t since)
{
	char pat[256];

	if (since + 1 != v->serial)
		return false;
	if (v->has == SU_CHANGES_BLOOM)
		return !bloom_has(v->bloom, name);
	if (v->has != SU_CHANGES_LISTED || strlen(name) + 3 > sizeof(pat) || strchr(name, ' '))
		return false;
	snprintf(pat, sizeof(pat), " %s ", name);
	return !strstr(v->changed, pat);
}
