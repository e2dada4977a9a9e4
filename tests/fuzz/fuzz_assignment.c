/* libFuzzer harness: the assignment file every libsoftunicast user parses.
 * Anything accepted must format and re-parse to the same entries, and tag
 * queries over its tags must not crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/assignment.h"

static void same(const struct su_assignment *a, const struct su_assignment *b)
{
	if (a->n != b->n || a->serial != b->serial || strcmp(a->server[0] ? a->server : "-",
							       b->server))
		abort();
	for (uint32_t i = 0; i < a->n; i++)
		if (a->v[i].ip != b->v[i].ip || a->v[i].lo != b->v[i].lo ||
		    a->v[i].hi != b->v[i].hi || a->v[i].state != b->v[i].state ||
		    strcmp(a->v[i].tags, b->v[i].tags))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct su_assignment *a, *b;
	struct su_err err;
	char *text;

	if (su_assignment__parse((const char *)data, size, &a, &err))
		return 0;
	text = su_assignment__format(a);
	if (!text || su_assignment__parse(text, strlen(text), &b, &err))
		abort();
	same(a, b);
	for (uint32_t i = 0; i < a->n; i++) {
		su_assignment__tags_match(a->v[i].tags, a->v[i].tags);
		su_assignment__tags_match(a->v[i].tags, "service=warp,country=GB");
		if (!su_assignment__check_tags(a->v[i].tags, NULL) &&
		    !su_assignment__tags_match(a->v[i].tags, a->v[i].tags))
			abort(); /* a tag set always matches itself */
	}
	free(text);
	su_assignment__free(a);
	su_assignment__free(b);
	return 0;
}
