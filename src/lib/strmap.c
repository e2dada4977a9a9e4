#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/strmap.h"
#include "lib/util.h"

static uint64_t hash(const char *s)
{
	return su_fnv1a64(s, strlen(s));
}

static struct su_strmap_slot *probe(const struct su_strmap *m, const char *key)
{
	size_t i = hash(key) & (m->cap - 1);

	while (m->slots[i].key && strcmp(m->slots[i].key, key))
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

static int rehash(struct su_strmap *m, size_t cap)
{
	struct su_strmap old = *m;

	m->slots = calloc(cap, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old.slots;
		return -ENOMEM;
	}
	m->cap = cap;
	for (size_t i = 0; i < old.cap; i++)
		if (old.slots[i].key)
			*probe(m, old.slots[i].key) = old.slots[i];
	free(old.slots);
	return 0;
}

int su_strmap__put(struct su_strmap *m, const char *key, uint32_t value)
{
	struct su_strmap_slot *s;

	/* Keep the load under one half so probes stay short. */
	if (2 * (m->n + 1) > m->cap && rehash(m, m->cap ? 2 * m->cap : 64))
		return -ENOMEM;
	s = probe(m, key);
	if (s->key)
		return -EEXIST;
	s->key = strdup(key);
	if (!s->key)
		return -ENOMEM;
	s->value = value;
	m->n++;
	return 0;
}

int su_strmap__get(const struct su_strmap *m, const char *key, uint32_t *value)
{
	const struct su_strmap_slot *s;

	if (!m->cap)
		return -ENOENT;
	s = probe(m, key);
	if (!s->key)
		return -ENOENT;
	*value = s->value;
	return 0;
}

void su_strmap__free(struct su_strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	*m = (struct su_strmap){ 0 };
}
