/* The host's ephemeral port settings, fitted to this server's slices.
 *
 * The kernel intersects a socket's IP_LOCAL_PORT_RANGE with
 * net.ipv4.ip_local_port_range and ignores a socket range outside it, so
 * a slice outside the host range would lose the kernel's in-kernel port
 * search (libsoftunicast falls back to binding explicit ports, ~30x fewer
 * connects per CPU-second near exhaustion).  Widening the host range alone
 * would let the host's own connections take ports its services listen on.
 * So the range is widened to cover the slices and every port it gains that
 * is not a slice port goes into net.ipv4.ip_local_reserved_ports, which
 * the kernel skips in every automatic port choice (inet_hash_connect and
 * bind to port 0, Documentation/networking/ip-sysctl.rst) but not for an
 * explicit bind.  The host's own connections keep their old ports plus
 * this server's slice ports, which its services cannot listen on anyway
 * (the egress sockets hold them on the egress IPs).  Both values are saved
 * first and put back on exit or by the next agent (the recovery record). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "cli/cli.h"

#define RANGE_SYSCTL "/proc/sys/net/ipv4/ip_local_port_range"
#define RESERVED_SYSCTL "/proc/sys/net/ipv4/ip_local_reserved_ports"
#define NPORTS 65536

struct portset {
	uint64_t w[NPORTS / 64];
};

static void set_bit(struct portset *s, unsigned p) { s->w[p / 64] |= 1ull << (p % 64); }
static bool has_bit(const struct portset *s, unsigned p) { return s->w[p / 64] >> (p % 64) & 1; }

static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");
	int rc = 0;

	if (!f)
		return -errno;
	if (fputs(text, f) < 0)
		rc = -EIO;
	if (fclose(f) && !rc)
		rc = -errno;
	return rc;
}

/* Whole file into a malloc'd string without its trailing newline. */
static char *read_text(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return NULL;
	n = getdelim(&buf, &cap, 0, f);
	fclose(f);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

/* "1,2-4,10" (the kernel's proc_do_large_bitmap format) into *s. */
static int parse_reserved(const char *text, struct portset *s)
{
	memset(s, 0, sizeof(*s));
	for (const char *p = text; *p;) {
		char *end;
		unsigned long lo = strtoul(p, &end, 10), hi = lo;

		if (end == p)
			return -EINVAL;
		if (*end == '-')
			hi = strtoul(end + 1, &end, 10);
		if (lo > hi || hi >= NPORTS)
			return -EINVAL;
		for (unsigned long q = lo; q <= hi; q++)
			set_bit(s, (unsigned)q);
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -EINVAL;
	}
	return 0;
}

/* *s as "a-b,c" runs; malloc'd ("" for none). */
static char *format_reserved(const struct portset *s)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	const char *sep = "";

	if (!f)
		return NULL;
	for (unsigned p = 0; p < NPORTS; p++) {
		unsigned q = p;

		if (!has_bit(s, p))
			continue;
		while (q + 1 < NPORTS && has_bit(s, q + 1))
			q++;
		fprintf(f, "%s%u", sep, p);
		sep = ",";
		if (q > p)
			fprintf(f, "-%u", q);
		p = q;
	}
	return fclose(f) ? NULL : out;
}

/* The range to apply and the reserved set: the saved host values, widened
 * to this assignment's slices, the gained non-slice ports reserved. */
static void fit(const struct agent *a, unsigned lo0, unsigned hi0, unsigned *lo, unsigned *hi,
		struct portset *res)
{
	struct portset slice = { { 0 } };

	*lo = lo0;
	*hi = hi0;
	for (uint32_t i = 0; i < a->cur->n; i++) {
		const struct su_assignment_entry *v = &a->cur->v[i];

		if (v->lo < *lo)
			*lo = v->lo ? v->lo : 1; /* the kernel's floor */
		if (v->hi > *hi)
			*hi = v->hi;
		for (unsigned p = v->lo; p <= v->hi; p++)
			set_bit(&slice, p);
	}
	if (parse_reserved(a->saved_reserved, res))
		memset(res, 0, sizeof(*res));
	for (unsigned p = *lo; p <= *hi; p++)
		if ((p < lo0 || p > hi0) && !has_bit(&slice, p))
			set_bit(res, p);
}

static int save_host(struct agent *a)
{
	char *range, *res;

	if (a->saved_range[0])
		return 0;
	range = read_text(RANGE_SYSCTL);
	res = read_text(RESERVED_SYSCTL);
	if (!range || !res) {
		free(range);
		free(res);
		return -EIO;
	}
	snprintf(a->saved_range, sizeof(a->saved_range), "%s", range);
	free(range);
	free(a->saved_reserved);
	a->saved_reserved = res;
	return 0;
}

int agent_ports__fit(struct agent *a)
{
	unsigned lo0, hi0, lo, hi;
	struct portset *res;
	char *text, range[32];
	int rc;

	if (!a->o.sysctl || !a->cur)
		return 0;
	if ((rc = save_host(a)))
		return rc;
	if (sscanf(a->saved_range, "%u %u", &lo0, &hi0) != 2)
		return -EINVAL;
	res = malloc(sizeof(*res));
	if (!res)
		return -ENOMEM;
	fit(a, lo0, hi0, &lo, &hi, res);
	text = format_reserved(res);
	free(res);
	if (!text)
		return -ENOMEM;
	snprintf(range, sizeof(range), "%u %u", lo, hi);
	/* Reserve first: the host's connections never see a gained port
	 * unreserved.  An empty write clears the list, as the kernel wants. */
	rc = write_text(RESERVED_SYSCTL, text[0] ? text : "\n");
	if (!rc)
		rc = write_text(RANGE_SYSCTL, range);
	if (!rc && (lo != lo0 || hi != hi0) && strcmp(a->applied_range, range))
		agent_log("ip_local_port_range %u-%u -> %u-%u for the slices; the ports it gains "
			  "outside them are reserved (ip_local_reserved_ports), so the host's own "
			  "connections keep their ports", lo0, hi0, lo, hi);
	snprintf(a->applied_range, sizeof(a->applied_range), "%s", range);
	free(text);
	return rc;
}

/* Range first (narrowing), then the list: the reverse of agent_ports__fit. */
int agent_ports__restore(const char *range, const char *reserved)
{
	int rc = 0;

	if (range && range[0])
		rc = write_text(RANGE_SYSCTL, range);
	if (reserved) {
		int r = write_text(RESERVED_SYSCTL, reserved[0] ? reserved : "\n");

		rc = rc ? rc : r;
	}
	return rc;
}

void agent_ports__undo(struct agent *a)
{
	if (!a->saved_range[0])
		return;
	if (agent_ports__restore(a->saved_range, a->saved_reserved))
		agent_warn("could not restore ip_local_port_range %s and its reserved ports",
			  a->saved_range);
	a->saved_range[0] = 0;
	a->applied_range[0] = 0;
	free(a->saved_reserved);
	a->saved_reserved = NULL;
}
