/* libFuzzer harness: a router's view as it comes from the store, its DC
 * shard and the ranges shard (the input split at the first "\n%%\n"), which
 * su_layout__dc_view joins into one plan.  Anything it accepts must be a
 * plan that formats and parses back to the same plan; a range of more
 * addresses than a view may hold is refused, not allocated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/plan.h"
#include "lib/store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *cut, *out;
	struct su_plan *p, *q;
	struct su_err err;
	size_t len;

	if (!text)
		return 0;
	su_layout__max_view_bytes = 64u << 20; /* within libFuzzer's memory limit */
	memcpy(text, data, size);
	text[size] = '\0';
	if (!(cut = strstr(text, "\n%%\n")) ||
	    su_layout__dc_view(text, (size_t)(cut + 1 - text), cut + 4, strlen(cut + 4), "lhr", "fuzz", &p, &err)) {
		free(text);
		return 0;
	}
	if (su_plan__format_view(p, NULL, &out, &len))
		abort();
	if (su_plan__parse(out, len, "again", &q, &err) || !su_plan__equal(p, q))
		abort();
	su_plan__free(q);
	free(out);
	su_plan__free(p);
	free(text);
	return 0;
}
