/* Tag sets: key=value labels on egress prefixes ("service=warp,country=GB")
 * and the demands servers make for them.  A set is kept sorted by key with
 * unique keys, so its canonical text form identifies it. */
#ifndef SU_TAGS_H
#define SU_TAGS_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"

struct su_tag {
	char *key;
	char *value;
};

struct su_tags {
	struct su_tag *v;
	uint32_t n;
};

/* Keys: [a-z0-9_-]+ (they are YAML keys and metric labels).  Values: any
 * printable text; the canonical form percent-escapes ' ', ',', '=', '%'. */
bool su_tags__valid_key(const char *key);
int su_tags__set(struct su_tags *t, const char *key, const char *value);
const char *su_tags__get(const struct su_tags *t, const char *key);
/* Every tag of sub is in super with the same value. */
bool su_tags__contains(const struct su_tags *super, const struct su_tags *sub);
int su_tags__cmp(const struct su_tags *a, const struct su_tags *b);
int su_tags__copy(struct su_tags *dst, const struct su_tags *src);
/* Canonical "k=v,k=v" (empty set: "-"), malloc'd; NULL on ENOMEM. */
char *su_tags__format(const struct su_tags *t);
/* Parses the canonical form (and the friendlier unescaped form users type). */
int su_tags__parse(const char *s, struct su_tags *out, struct su_err *err);
void su_tags__free(struct su_tags *t);

#endif
