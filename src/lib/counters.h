/* Per-slice counters shared by every process using libsoftunicast and the
 * agent: a small file next to the assignment ("<assignment>.counters") that
 * each process mmaps and increments atomically.  Applications run as many
 * users and die at any time; a shared mapping needs no daemon round trip and
 * loses nothing when a process exits.  Processes that cannot open it for
 * writing simply do not count. */
#ifndef SU_COUNTERS_H
#define SU_COUNTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/assignment.h"

#define SU_COUNTERS_MAGIC "SUCNT001"

struct su_counter_slot {
	uint32_t ip;
	uint16_t lo, hi;
	uint64_t connects;  /* sockets connected from this slice */
	uint64_t exhausted; /* allocation failures: no free port toward a destination */
	uint64_t conflicts; /* UDP 4-tuple collisions detected and avoided */
};

struct su_counters_hdr {
	char magic[8];
	uint32_t n;
	uint32_t reserved;
	/* n struct su_counter_slot follow */
};
_Static_assert(sizeof(struct su_counter_slot) == 32, "counter slot ABI");
_Static_assert(sizeof(struct su_counters_hdr) == 16, "counter header ABI");

struct su_counters {
	void *map;
	size_t len;
	struct su_counter_slot *v;
	uint32_t n;
};

/* "<assignment path>.counters" into buf. */
int su_counters__path(const char *assignment, char *buf, size_t size);
/* Maps an existing file (writable when possible).  -errno if absent/invalid. */
int su_counters__open(const char *assignment, struct su_counters *c);
void su_counters__close(struct su_counters *c);
struct su_counter_slot *su_counters__find(const struct su_counters *c, uint32_t ip, uint16_t lo);
/* Agent side: writes a file with one slot per entry of a, carrying the values
 * of slices already counted, and renames it into place. */
int su_counters__publish(const char *assignment, const struct su_assignment *a);

static inline void su_counter__inc(uint64_t *v)
{
	__atomic_fetch_add(v, 1, __ATOMIC_RELAXED);
}

#endif
