/* libFuzzer harness: a shard's record, which a node reads from the store
 * and trusts for how much to fetch and allocate.  Anything parses without
 * crashing; what parses is within the bounds record.h promises; and it
 * formats back to a record that parses to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/record.h"

#define CHUNK (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct su_shard_record r, back;
	char *text = malloc(size + 1), buf[256];

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (!su_shard_record__parse(text, CHUNK, &r)) {
		if (r.bytes >= (1ull << 32) || (uint64_t)r.chunks * CHUNK < r.zbytes || r.chunks > r.zbytes + 1 ||
		    (r.format == 2 && r.bytes > 1032 * r.zbytes + 64) || (r.format == 1 && r.zbytes != r.bytes))
			abort();
		if (su_shard_record__format(&r, buf, sizeof(buf)) < 0 || su_shard_record__parse(buf, CHUNK, &back) ||
		    memcmp(&r, &back, sizeof(r)))
			abort();
	}
	free(text);
	return 0;
}
