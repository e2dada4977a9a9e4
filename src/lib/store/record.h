/* A shard's record in the etcd store (store.h): how big the shard is, its
 * checksum, and where its chunks are.
 *
 *   softunicast-shard 1 SERIAL CHUNKS BYTES HASH DATADIR
 *       the CHUNKS chunks under v/DATADIR/NAME/ hold the BYTES of text
 *   softunicast-shard 2 SERIAL CHUNKS BYTES HASH DATADIR ZBYTES
 *       they hold ZBYTES, the text deflated (zlib format, RFC 1950)
 *
 * SERIAL is the version that wrote the record, HASH the FNV-1a 64 of the
 * text (16 hex digits), DATADIR a version directory (at most 63 bytes). */
#ifndef SU_STORE_RECORD_H
#define SU_STORE_RECORD_H

#include <stddef.h>
#include <stdint.h>

struct su_shard_record {
	unsigned format; /* 1 or 2 */
	unsigned chunks;
	uint64_t serial, bytes, hash, zbytes; /* format 1: zbytes == bytes */
	char datadir[64];
};

/* NUL-terminated into buf; the length, or -ENOSPC when size is too small. */
int su_shard_record__format(const struct su_shard_record *r, char *buf, size_t size);
/* 0, or -EBADMSG when text is malformed or its sizes are out of bounds: a
 * shard under 4 GiB, chunks of at most chunk_max bytes and none empty, and
 * no more text than deflate can expand ZBYTES to (1,032:1, RFC 1951), so a
 * reader allocates nothing a hostile record claims beyond that. */
int su_shard_record__parse(const char *text, size_t chunk_max, struct su_shard_record *r);

#endif
