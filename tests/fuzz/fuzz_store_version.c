/* libFuzzer harness: the etcd store's version key value, which every node
 * reads from the store (or a watch event) and trusts to skip look-ups.
 * Anything parses without crashing; and the writer's side: for any set of
 * shard names (the input's words), the value it formats parses back, and no
 * name it wrote is ever reported unchanged (list or Bloom filter). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/version.h"

#define MAX_NAMES 400

static void parse_any(const char *text)
{
	struct su_version v;

	if (su_version__parse(text, &v))
		return;
	su_version__unchanged(&v, "server/a", v.serial - 1);
	su_version__unchanged(&v, "dc/x", v.serial - 1);
	su_version__unchanged(&v, text, v.serial - 1);
}

static void round_trip(char *text)
{
	static struct su_changes c;
	static struct su_version v;
	static char value[SU_VERSION_VALUE_MAX];
	char *names[MAX_NAMES], *save = NULL;
	int n = 0;

	memset(&c, 0, sizeof(c));
	for (char *w = strtok_r(text, " \t\r\n", &save); w && n < MAX_NAMES; w = strtok_r(NULL, " \t\r\n", &save))
		if (strlen(w) < 200)
			su_changes__add(&c, names[n++] = w);
	su_version__format(7, "00000000000000000007.0000000000000001-r", &c, value, sizeof(value));
	if (su_version__parse(value, &v) || v.serial != 7 || v.has == SU_CHANGES_UNKNOWN)
		abort();
	for (int i = 0; i < n; i++)
		if (su_version__unchanged(&v, names[i], 6))
			abort(); /* a shard the version wrote, taken for unchanged */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	parse_any(text);
	round_trip(text);
	free(text);
	return 0;
}
