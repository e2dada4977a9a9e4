/* A shard's record: see record.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "lib/store/record.h"

int su_shard_record__format(const struct su_shard_record *r, char *buf, size_t size)
{
	int n = r->format == 2 ?
		snprintf(buf, size, "softunicast-shard 2 %" PRIu64 " %u %" PRIu64 " %016" PRIx64 " %s %" PRIu64, r->serial,
			 r->chunks, r->bytes, r->hash, r->datadir, r->zbytes) :
		snprintf(buf, size, "softunicast-shard 1 %" PRIu64 " %u %" PRIu64 " %016" PRIx64 " %s", r->serial,
			 r->chunks, r->bytes, r->hash, r->datadir);

	return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

int su_shard_record__parse(const char *text, size_t chunk_max, struct su_shard_record *r)
{
	int got, end = 0;

	memset(r, 0, sizeof(*r));
	got = sscanf(text, "softunicast-shard %u %" SCNu64 " %u %" SCNu64 " %" SCNx64 " %63s %" SCNu64 "%n", &r->format,
		     &r->serial, &r->chunks, &r->bytes, &r->hash, r->datadir, &r->zbytes, &end);
	if (r->format == 1 && got == 6)
		r->zbytes = r->bytes;
	else if (r->format != 2 || got != 7 || text[end])
		return -EBADMSG;
	if (r->bytes >= (1ull << 32) || r->zbytes >= (1ull << 32) || r->chunks > r->zbytes + 1 ||
	    (uint64_t)r->chunks * chunk_max < r->zbytes || (r->format == 2 && r->bytes > 1032 * r->zbytes + 64))
		return -EBADMSG;
	return 0;
}
