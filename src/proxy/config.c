/* softunicast proxy configuration: one directive per line ("key value..."),
 * '#' comments.  A line format rather than JSON because every error must name
 * the file, the line and the offending value (docs/proxy.md lists the keys). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lib/tags.h"
#include "daemon/metrics.h"
#include "proxy/proxy.h"

void proxy_config__defaults(struct proxy_config *c)
{
	*c = (struct proxy_config){
		.dns_timeout_ms = 2000, .dns_cache_max = 10000, .dns_min_ttl = 5, .dns_max_ttl = 3600,
		.attempt_delay_ms = 250, .connect_timeout_ms = 10000,
		.max_conns = 10000, .max_per_client = 256, .handshake_ms = 10000,
		.idle_ms = 300000, .max_header = 16384, .drain_ms = 10000, .udp = true, .splice = true,
	};
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void proxy_config__free(struct proxy_config *c)
{
	strv_free(c->listen, c->nlisten);
	strv_free(c->dns_servers, c->ndns_servers);
	for (size_t i = 0; i < c->nusers; i++) {
		free(c->users[i].name);
		free(c->users[i].password);
		free(c->users[i].tags);
	}
	free(c->users);
	free(c->base_tags);
	free(c->default_tags);
	free(c->geo_csv);
	free(c->geo_mmdb);
	free(c->assignment);
	free(c->access_log);
	free(c->metrics);
	free(c->dns_tags);
	free(c->acl);
	memset(c, 0, sizeof(*c));
}

int proxy_cidr__parse(const char *s, struct proxy_cidr *out)
{
	char buf[64], *slash;
	unsigned long len;
	char *end;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash)
		*slash = 0;
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, buf, out->addr) == 1)
		out->family = AF_INET6;
	else
		return -EINVAL;
	len = out->family == AF_INET ? 32 : 128;
	if (slash) {
		errno = 0;
		unsigned long l = strtoul(slash + 1, &end, 10);

		if (!slash[1] || *end || errno || l > len)
			return -EINVAL;
		len = l;
	}
	out->len = (unsigned)len;
	/* host bits set is usually a typo; refuse it like su_prefix__parse */
	for (unsigned i = out->len; i < (out->family == AF_INET ? 32u : 128u); i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
			return -EINVAL;
	return 0;
}

bool proxy_cidr__match(const struct proxy_cidr *c, const struct sockaddr *sa)
{
	const uint8_t *a;
	uint8_t m4[16];

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		a = s6->sin6_addr.s6_addr;
		/* an IPv4 client on a dual-stack listener: match IPv4 rules */
		if (c->family == AF_INET && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			a += 12;
		else if (c->family != AF_INET6)
			return false;
	} else if (sa->sa_family == AF_INET) {
		if (c->family != AF_INET)
			return false;
		memcpy(m4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		a = m4;
	} else
		return false;
	for (unsigned i = 0; i < c->len; i++)
		if ((a[i / 8] ^ c->addr[i / 8]) & (0x80 >> (i % 8)))
			return false;
	return true;
}

struct ctx {
	const char *file;
	unsigned line;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(struct ctx *x, const char *fmt, ...)
{
	int o = snprintf(x->err, x->errlen, "%s:%u: ", x->file, x->line);
	va_list ap;

	va_start(ap, fmt);
	if (o >= 0 && (size_t)o < x->errlen)
		vsnprintf(x->err + o, x->errlen - (size_t)o, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

static int push(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strdup(s)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

static int parse_uint(struct ctx *x, const char *key, const char *v, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (!*v || *end || errno || n < lo || n > hi || !isdigit((unsigned char)*v))
		return fail(x, "%s: '%s' is not a number in %u-%u", key, v, lo, hi);
	*out = (unsigned)n;
	return 0;
}

static int parse_bool(struct ctx *x, const char *key, const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off"))
		*out = false;
	else
		return fail(x, "%s: '%s' is not yes or no", key, v);
	return 0;
}

static int check_tags(const char *v)
{
	struct su_tags t = { 0 };
	int rc = su_tags__parse(v, &t, NULL);

	su_tags__free(&t);
	return rc;
}

static int parse_tags(struct ctx *x, const char *key, const char *v, char **out)
{
	if (check_tags(v))
		return fail(x, "%s: '%s' is not a tag list (key=value,...)", key, v);
	return set_str(out, v);
}

static int parse_endpoint(const char *s)
{
	char host[64];
	const char *c = strrchr(s, ':');
	struct in6_addr a;
	size_t hl;
	long port;
	char *end;

	if (!c || c == s)
		return -EINVAL;
	hl = (size_t)(c - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return -EINVAL;
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = 0;
	if (inet_pton(AF_INET, host, &a) != 1 && inet_pton(AF_INET6, host, &a) != 1)
		return -EINVAL;
	port = strtol(c + 1, &end, 10);
	return *end || port < 0 || port > 65535 || !c[1] ? -EINVAL : 0;
}

/* One directive: argv[0] the key, argc >= 1. */
static int directive(struct ctx *x, struct proxy_config *c, int argc, char **argv)
{
	const char *k = argv[0], *v = argc > 1 ? argv[1] : "";
	static const struct {
		const char *key;
		size_t off;
		unsigned lo, hi;
	} nums[] = {
#define N(k, f, lo, hi) { k, offsetof(struct proxy_config, f), lo, hi }
		N("max-connections", max_conns, 1, 1000000),
		N("max-per-client", max_per_client, 1, 1000000),
		N("handshake-timeout-ms", handshake_ms, 100, 3600000),
		N("idle-timeout-ms", idle_ms, 100, 86400000),
		N("max-header-bytes", max_header, 256, 1048576),
		N("drain-timeout-ms", drain_ms, 0, 3600000),
		N("dns-timeout-ms", dns_timeout_ms, 100, 60000),
		N("dns-cache-size", dns_cache_max, 0, 10000000),
		N("dns-min-ttl", dns_min_ttl, 0, 86400),
		N("dns-max-ttl", dns_max_ttl, 0, 604800),
		N("attempt-delay-ms", attempt_delay_ms, 10, 2000), /* RFC 8305 §5: 10 ms floor, 2 s cap */
		N("connect-timeout-ms", connect_timeout_ms, 100, 600000),
#undef N
	};

	if (!strcmp(k, "user")) {
		struct proxy_user *u;

		if (argc != 4)
			return fail(x, "user: want 'user NAME PASSWORD TAGS', got %d values", argc - 1);
		if (check_tags(argv[3]))
			return fail(x, "user: '%s' is not a tag list (key=value,...)", argv[3]);
		for (size_t i = 0; i < c->nusers; i++)
			if (!strcmp(c->users[i].name, argv[1]))
				return fail(x, "user: '%s' defined twice", argv[1]);
		u = realloc(c->users, (c->nusers + 1) * sizeof(*u));
		if (!u)
			return -ENOMEM;
		c->users = u;
		u += c->nusers++;
		*u = (struct proxy_user){ strdup(argv[1]), strdup(argv[2]), strdup(argv[3]) };
		return u->name && u->password && u->tags ? 0 : -ENOMEM;
	}
	if (argc != 2)
		return fail(x, "%s: want one value, got %d", k, argc - 1);
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (!strcmp(k, nums[i].key))
			return parse_uint(x, k, v, nums[i].lo, nums[i].hi,
					  (unsigned *)((char *)c + nums[i].off));
	if (!strcmp(k, "listen")) {
		if (parse_endpoint(v))
			return fail(x, "listen: '%s' is not ADDR:PORT or [V6]:PORT", v);
		return push(&c->listen, &c->nlisten, v);
	}
	if (!strcmp(k, "dns-server")) {
		struct in_addr a;

		/* IPv4 only: the resolver's queries egress through soft-unicast */
		if (inet_pton(AF_INET, v, &a) != 1 && (parse_endpoint(v) || v[0] == '['))
			return fail(x, "dns-server: '%s' is not an IPv4 address or IPV4:PORT", v);
		return push(&c->dns_servers, &c->ndns_servers, v);
	}
	if (!strcmp(k, "allow")) {
		struct proxy_cidr cidr, *na;

		if (proxy_cidr__parse(v, &cidr))
			return fail(x, "allow: '%s' is not an address or CIDR prefix (host bits zero)", v);
		na = realloc(c->acl, (c->nacl + 1) * sizeof(*na));
		if (!na)
			return -ENOMEM;
		c->acl = na;
		na[c->nacl++] = cidr;
		return 0;
	}
	if (!strcmp(k, "auth")) {
		if (strcmp(v, "required") && strcmp(v, "optional"))
			return fail(x, "auth: '%s' is not required or optional", v);
		c->auth_required = !strcmp(v, "required");
		return 0;
	}
	if (!strcmp(k, "user-tags"))
		return parse_bool(x, k, v, &c->user_tags);
	if (!strcmp(k, "udp"))
		return parse_bool(x, k, v, &c->udp);
	if (!strcmp(k, "splice"))
		return parse_bool(x, k, v, &c->splice);
	if (!strcmp(k, "ipv6-direct"))
		return parse_bool(x, k, v, &c->ipv6_direct);
	if (!strcmp(k, "base-tags"))
		return parse_tags(x, k, v, &c->base_tags);
	if (!strcmp(k, "default-tags"))
		return parse_tags(x, k, v, &c->default_tags);
	if (!strcmp(k, "dns-tags"))
		return parse_tags(x, k, v, &c->dns_tags);
	if (!strcmp(k, "geo-csv"))
		return set_str(&c->geo_csv, v);
	if (!strcmp(k, "geo-mmdb"))
		return set_str(&c->geo_mmdb, v);
	if (!strcmp(k, "assignment"))
		return set_str(&c->assignment, v);
	if (!strcmp(k, "access-log"))
		return set_str(&c->access_log, v);
	if (!strcmp(k, "metrics")) {
		struct sockaddr_storage ss;

		if (su_metrics__parse(v, &ss))
			return fail(x, "metrics: '%s' is not IPv4:PORT, [IPv6]:PORT or :PORT", v);
		return set_str(&c->metrics, v);
	}
	return fail(x, "unknown key '%s'", k);
}

static int split(char *line, char **argv, int max)
{
	int n = 0;

	for (char *s = strtok(line, " \t\r\n"); s; s = strtok(NULL, " \t\r\n")) {
		if (n == max)
			return -E2BIG;
		argv[n++] = s;
	}
	return n;
}

int proxy_config__load(const char *path, struct proxy_config *c, char *err, size_t errlen)
{
	struct ctx x = { path, 0, err, errlen };
	FILE *fp = fopen(path, "r");
	char *line = NULL, *hash;
	size_t cap = 0;
	int rc = 0;

	if (!fp) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return rc;
	}
	while (!rc && getline(&line, &cap, fp) >= 0) {
		char *argv[8];
		int argc;

		x.line++;
		if ((hash = strchr(line, '#')))
			*hash = 0;
		argc = split(line, argv, 8);
		if (argc < 0)
			rc = fail(&x, "too many values");
		else if (argc > 0)
			rc = directive(&x, c, argc, argv);
	}
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", path);
	free(line);
	fclose(fp);
	return rc;
}
