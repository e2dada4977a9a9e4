/* IPv4 addresses and prefixes in host byte order: userspace does arithmetic
 * on them (ranges, aggregation); conversion to network order happens only at
 * the BPF map boundary. */
#ifndef SU_ADDR_H
#define SU_ADDR_H

#include <stdbool.h>
#include <stdint.h>

#define SU_ADDR_STRLEN 16   /* "255.255.255.255" + NUL */
#define SU_PREFIX_STRLEN 19 /* "255.255.255.255/32" + NUL */

struct su_prefix4 {
	uint32_t addr; /* network address, host bits zero */
	uint8_t len;
};

/* Strict dotted quad: four decimal octets, no leading zeros, nothing else. */
int su_addr__parse(const char *s, uint32_t *out);
const char *su_addr__str(uint32_t addr, char buf[SU_ADDR_STRLEN]);

/* "a.b.c.d/len"; host bits must be zero (a typo there is usually a mistake). */
int su_prefix__parse(const char *s, struct su_prefix4 *out);
const char *su_prefix__str(const struct su_prefix4 *p, char buf[SU_PREFIX_STRLEN]);

static inline uint64_t su_prefix__size(const struct su_prefix4 *p)
{
	return 1ull << (32 - p->len);
}

static inline uint32_t su_prefix__last(const struct su_prefix4 *p)
{
	return (uint32_t)(p->addr + su_prefix__size(p) - 1);
}

static inline bool su_prefix__overlaps(const struct su_prefix4 *a, const struct su_prefix4 *b)
{
	return a->addr <= su_prefix__last(b) && b->addr <= su_prefix__last(a);
}

static inline bool su_prefix__contains(const struct su_prefix4 *p, uint32_t addr)
{
	return addr >= p->addr && addr <= su_prefix__last(p);
}

#endif
