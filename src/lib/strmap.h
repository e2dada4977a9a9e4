/* String → uint32 map (open addressing, FNV-1a), for the name look-ups of
 * the planner and the snapshot loader.  Keys are copied. */
#ifndef SU_STRMAP_H
#define SU_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct su_strmap {
	struct su_strmap_slot {
		char *key;
		uint32_t value;
	} *slots;
	size_t cap, n;
};

/* -EEXIST if present (value untouched), -ENOMEM. */
int su_strmap__put(struct su_strmap *m, const char *key, uint32_t value);
/* 0 and *value, or -ENOENT. */
int su_strmap__get(const struct su_strmap *m, const char *key, uint32_t *value);
void su_strmap__free(struct su_strmap *m);

#endif
