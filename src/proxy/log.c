/* Access log: one line per connection, written when it ends (docs/proxy.md
 * "Access log"):
 *   TIME client=IP:PORT proto=P user=U tags=T egress=IP:PORT target=H:P
 *   up=BYTES down=BYTES secs=S result=R
 * TIME is RFC 3339 UTC with milliseconds; a missing value is "-"; values are
 * %-escaped outside printable ASCII and for ' ', '%' and '"' so a line always
 * splits on spaces.  up = client -> target bytes, down = target -> client. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "proxy/proxy.h"

void proxy_log__addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;

		snprintf(buf, len, "%s:%u", inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a)), ntohs(s->sin_port));
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr))
			snprintf(buf, len, "%s:%u", inet_ntop(AF_INET, &s->sin6_addr.s6_addr[12], a, sizeof(a)),
				 ntohs(s->sin6_port));
		else
			snprintf(buf, len, "[%s]:%u", inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a)),
				 ntohs(s->sin6_port));
	} else
		snprintf(buf, len, "-");
}

static void put(FILE *fp, const char *key, const char *v)
{
	fprintf(fp, " %s=", key);
	if (!v || !*v) {
		fputc('-', fp);
		return;
	}
	for (const unsigned char *c = (const void *)v; *c; c++)
		if (*c <= ' ' || *c >= 0x7f || *c == '%' || *c == '"')
			fprintf(fp, "%%%02X", *c);
		else
			fputc(*c, fp);
}

void proxy_log__write(FILE *fp, const struct proxy_logrec *r)
{
	char ts[32], cli[64], eg[64];
	struct timeval tv;
	struct tm tm;

	if (!fp)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	proxy_log__addr(r->client, cli, sizeof(cli));
	proxy_log__addr(r->egress, eg, sizeof(eg));
	fprintf(fp, "%s.%03ldZ", ts, (long)(tv.tv_usec / 1000));
	put(fp, "client", cli);
	put(fp, "proto", r->proto);
	put(fp, "user", r->user);
	put(fp, "tags", r->tags);
	put(fp, "egress", eg);
	put(fp, "target", r->target);
	fprintf(fp, " up=%llu down=%llu secs=%.3f", r->up, r->down, r->secs);
	put(fp, "result", r->result);
	fputc('\n', fp);
	fflush(fp);
}
