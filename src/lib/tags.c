#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/tags.h"

bool su_tags__valid_key(const char *key)
{
	if (!key || !*key || strlen(key) > 63)
		return false;
	for (const char *c = key; *c; c++)
		if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_' || *c == '-'))
			return false;
	return true;
}

static int find(const struct su_tags *t, const char *key, uint32_t *pos)
{
	uint32_t lo = 0, hi = t->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->v[mid].key, key);

		if (!c) {
			*pos = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return 0;
}

int su_tags__set(struct su_tags *t, const char *key, const char *value)
{
	struct su_tag *v;
	uint32_t pos;

	if (find(t, key, &pos))
		return -EEXIST;
	v = realloc(t->v, (t->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->v = v;
	memmove(v + pos + 1, v + pos, (t->n - pos) * sizeof(*v));
	v[pos].key = strdup(key);
	v[pos].value = strdup(value);
	t->n++;
	if (!v[pos].key || !v[pos].value)
		return -ENOMEM;
	return 0;
}

const char *su_tags__get(const struct su_tags *t, const char *key)
{
	uint32_t pos;

	return find(t, key, &pos) ? t->v[pos].value : NULL;
}

bool su_tags__contains(const struct su_tags *super, const struct su_tags *sub)
{
	/* Both sorted: one merge pass. */
	uint32_t i = 0;

	for (uint32_t j = 0; j < sub->n; j++) {
		while (i < super->n && strcmp(super->v[i].key, sub->v[j].key) < 0)
			i++;
		if (i == super->n || strcmp(super->v[i].key, sub->v[j].key) ||
		    strcmp(super->v[i].value, sub->v[j].value))
			return false;
	}
	return true;
}

int su_tags__cmp(const struct su_tags *a, const struct su_tags *b)
{
	for (uint32_t i = 0; i < a->n && i < b->n; i++) {
		int c = strcmp(a->v[i].key, b->v[i].key);

		if (!c)
			c = strcmp(a->v[i].value, b->v[i].value);
		if (c)
			return c;
	}
	return (a->n > b->n) - (a->n < b->n);
}

int su_tags__copy(struct su_tags *dst, const struct su_tags *src)
{
	*dst = (struct su_tags){ 0 };
	for (uint32_t i = 0; i < src->n; i++) {
		int ret = su_tags__set(dst, src->v[i].key, src->v[i].value);

		if (ret)
			return ret;
	}
	return 0;
}

static bool needs_escape(char c)
{
	return c == ' ' || c == ',' || c == '=' || c == '%' || (unsigned char)c < 0x21 || c == 0x7f;
}

static size_t escaped_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += needs_escape(*s) ? 3 : 1;
	return n;
}

static char *append_escaped(char *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		if (needs_escape(*s)) {
			*out++ = '%';
			*out++ = hex[(unsigned char)*s >> 4];
			*out++ = hex[*s & 15];
		} else {
			*out++ = *s;
		}
	}
	return out;
}

char *su_tags__format(const struct su_tags *t)
{
	size_t len = 2;
	char *buf, *p;

	for (uint32_t i = 0; i < t->n; i++)
		len += escaped_len(t->v[i].key) + escaped_len(t->v[i].value) + 2;
	buf = p = malloc(len);
	if (!buf)
		return NULL;
	if (!t->n)
		*p++ = '-';
	for (uint32_t i = 0; i < t->n; i++) {
		if (i)
			*p++ = ',';
		p = append_escaped(p, t->v[i].key);
		*p++ = '=';
		p = append_escaped(p, t->v[i].value);
	}
	*p = '\0';
	return buf;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes %XX in place; rejects truncated or invalid escapes and NUL. */
static int unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (*s == '%') {
			int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -EINVAL;
			*out++ = (char)(hi << 4 | lo);
			s += 2;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
	return 0;
}

int su_tags__parse(const char *s, struct su_tags *out, struct su_err *err)
{
	char *copy, *rest, *item;
	int ret = 0;

	*out = (struct su_tags){ 0 };
	if (!s || !strcmp(s, "-"))
		return 0;
	copy = rest = strdup(s);
	if (!copy)
		return -ENOMEM;
	/* strsep, not strtok: "a=b,,c=d" and "a=b," are typos to report. */
	while (!ret && (item = strsep(&rest, ",")) != NULL) {
		char *eq;

		while (*item == ' ')
			item++;
		eq = strchr(item, '=');
		if (!eq || eq == item) {
			ret = su_err__set(err, EINVAL, "tag '%s' is not key=value", item);
			break;
		}
		*eq = '\0';
		if (unescape(item) || unescape(eq + 1) || !su_tags__valid_key(item)) {
			ret = su_err__set(err, EINVAL, "bad tag key '%s'", item);
			break;
		}
		if (!eq[1]) {
			ret = su_err__set(err, EINVAL, "tag '%s' has an empty value", item);
			break;
		}
		ret = su_tags__set(out, item, eq + 1);
		if (ret == -EEXIST)
			ret = su_err__set(err, EINVAL, "tag '%s' given twice", item);
	}
	free(copy);
	if (ret)
		su_tags__free(out);
	return ret;
}

void su_tags__free(struct su_tags *t)
{
	for (uint32_t i = 0; i < t->n; i++) {
		free(t->v[i].key);
		free(t->v[i].value);
	}
	free(t->v);
	*t = (struct su_tags){ 0 };
}
