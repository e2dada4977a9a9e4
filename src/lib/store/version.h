/* The etcd store's version key (store.h): its value names the committed
 * version and lists the shards that version wrote, so that a node whose
 * view did not change learns so from the watch event alone.
 *
 *   SERIAL DIR\n                       always (older writers: this alone)
 *   changed NAME NAME ...\n            the shards whose record the version wrote, or
 *   changed-bloom HEX\n                when the list passes SU_CHANGED_MAX bytes: a
 *                                      Bloom filter of their names, SU_CHANGED_BLOOM
 *                                      bits as 2 hex digits per byte, bit i of byte j
 *                                      being filter bit 8j+i, 4 indexes per name from
 *                                      FNV-1a 64 (Kirsch-Mitzenmacher)
 *
 * A false positive of the filter only costs a node one look-up; a name
 * written by the version is never reported unchanged. */
#ifndef SU_STORE_VERSION_H
#define SU_STORE_VERSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SU_CHANGED_MAX 1024
#define SU_CHANGED_BLOOM 4096
#define SU_VERSION_VALUE_MAX (SU_CHANGED_MAX + SU_CHANGED_BLOOM / 4 + 128)

/* The writer's side: the shards a version writes. */
struct su_changes {
	char list[SU_CHANGED_MAX]; /* "NAME NAME ..." */
	bool overflow;             /* list too long: the filter alone */
	uint8_t bloom[SU_CHANGED_BLOOM / 8];
};

struct su_version {
	uint64_t serial;
	char dir[64];
	int64_t mod_rev; /* the key's etcd mod_revision; 0: no version key */
	enum { SU_CHANGES_UNKNOWN, SU_CHANGES_LISTED, SU_CHANGES_BLOOM } has;
	char changed[SU_CHANGED_MAX + 2]; /* listed: " NAME NAME ... " */
	uint8_t bloom[SU_CHANGED_BLOOM / 8];
};

void su_changes__add(struct su_changes *c, const char *name);
/* The value for a commit of serial in dir (NUL-terminated, at most
 * SU_VERSION_VALUE_MAX bytes with the NUL). */
void su_version__format(uint64_t serial, const char *dir, const struct su_changes *c, char *out, size_t size);
/* 0, or -EBADMSG when the first line is not "SERIAL DIR" with SERIAL > 0
 * (a change list it cannot read leaves has = SU_CHANGES_UNKNOWN). */
int su_version__parse(const char *val, struct su_version *v);
/* Shard NAME, last resolved by a node at serial `since`, is the same in v:
 * only when v is the next serial and its change list leaves NAME out. */
bool su_version__unchanged(const struct su_version *v, const char *name, uint64_t since);

#endif
