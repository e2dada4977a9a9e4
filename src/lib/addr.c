#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/addr.h"

/* One decimal octet: 0-255, no sign, no leading zero (inet_aton would read
 * "010" as octal, a classic source of surprise in config files). */
static const char *parse_octet(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	int digits = 0;

	while (*s >= '0' && *s <= '9') {
		if (digits && v == 0)
			return NULL;
		v = v * 10 + (uint32_t)(*s - '0');
		if (++digits > 3 || v > 255)
			return NULL;
		s++;
	}
	if (!digits)
		return NULL;
	*out = v;
	return s;
}

int su_addr__parse(const char *s, uint32_t *out)
{
	uint32_t addr = 0, octet;

	if (!s)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		s = parse_octet(s, &octet);
		if (!s)
			return -EINVAL;
		if (i < 3 && *s++ != '.')
			return -EINVAL;
		addr = addr << 8 | octet;
	}
	if (*s)
		return -EINVAL;
	*out = addr;
	return 0;
}

const char *su_addr__str(uint32_t a, char buf[SU_ADDR_STRLEN])
{
	snprintf(buf, SU_ADDR_STRLEN, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
		 a & 255);
	return buf;
}

int su_prefix__parse(const char *s, struct su_prefix4 *out)
{
	char buf[SU_PREFIX_STRLEN + 1];
	const char *slash = s ? strchr(s, '/') : NULL;
	char *end;
	long len;
	uint32_t addr;

	if (!slash || (size_t)(slash - s) >= SU_ADDR_STRLEN || !slash[1])
		return -EINVAL;
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	if (su_addr__parse(buf, &addr))
		return -EINVAL;
	if (slash[1] == '0' && slash[2])
		return -EINVAL;
	errno = 0;
	len = strtol(slash + 1, &end, 10);
	if (errno || *end || len < 0 || len > 32 || slash[1] == '+' || slash[1] == '-')
		return -EINVAL;
	if (len < 32 && (addr & (0xffffffffu >> len)))
		return -EDOM; /* host bits set */
	out->addr = addr;
	out->len = (uint8_t)len;
	return 0;
}

const char *su_prefix__str(const struct su_prefix4 *p, char buf[SU_PREFIX_STRLEN])
{
	char a[SU_ADDR_STRLEN];

	snprintf(buf, SU_PREFIX_STRLEN, "%s/%u", su_addr__str(p->addr, a), p->len);
	return buf;
}
