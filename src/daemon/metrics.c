#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/metrics.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct su_metrics {
	struct MHD_Daemon *d;
	su_metrics_render_fn fn;
	void *arg;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, char *body, size_t len,
			     const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned int status, const char *msg)
{
	char *body = strdup(msg);

	return body ? reply(c, status, body, strlen(body), "text/plain; charset=utf-8") : MHD_NO;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_len, void **ctx)
{
	struct su_metrics *m = cls;
	char *body = NULL;
	size_t len = 0;
	FILE *out;
	int rc;

	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
	if (strcmp(url, "/metrics"))
		return text(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n");
	out = open_memstream(&body, &len);
	if (!out)
		return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	rc = m->fn(out, m->arg);
	if (fclose(out) || rc) {
		free(body);
		return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot collect the metrics\n");
	}
	return reply(c, MHD_HTTP_OK, body, len, CONTENT_TYPE);
}

static int parse_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1]))
		return -EINVAL;
	v = strtoul(s, &end, 10);
	if (*end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* "IPv4:PORT", "[IPv6]:PORT" or ":PORT" into a socket address. */
int su_metrics__parse(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	const char *colon = strrchr(s, ':');
	char host[64];
	uint16_t port;
	size_t n;

	if (!colon || parse_port(colon + 1, &port))
		return -EINVAL;
	n = (size_t)(colon - s);
	if (n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = 0;
	memset(ss, 0, sizeof(*ss));
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		host[n - 1] = 0;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return inet_pton(AF_INET6, host + 1, &in6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	if (!n)
		return 0; /* INADDR_ANY */
	return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : -EINVAL;
}

int su_metrics__start(const char *listen, su_metrics_render_fn fn, void *arg, struct su_metrics **out,
		      struct su_err *err)
{
	struct sockaddr_storage ss;
	struct su_metrics *m;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;

	if (su_metrics__parse(listen, &ss))
		return su_err__set(err, EINVAL,
				   "--metrics '%s': expected IPv4:PORT, [IPv6]:PORT or :PORT", listen);
	m = calloc(1, sizeof(*m));
	if (!m)
		return su_err__set(err, ENOMEM, "out of memory");
	m->fn = fn;
	m->arg = arg;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	/* A scrape is small and rare: one connection at a time is plenty, and
	 * bounds what a misbehaving scraper can hold. */
	m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_SOCK_ADDR, &ss,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned int)16, MHD_OPTION_CONNECTION_TIMEOUT,
				(unsigned int)10, MHD_OPTION_END);
	if (!m->d) {
		int e = errno ? errno : EADDRINUSE;

		free(m);
		return su_err__set(err, e, "--metrics %s: cannot listen: %s", listen, strerror(e));
	}
	*out = m;
	return 0;
}

void su_metrics__stop(struct su_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->d);
	free(m);
}

void su_prom__family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s ", name);
	/* HELP text escapes backslash and newline only. */
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", out);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
	fprintf(out, "\n# TYPE %s %s\n", name, type);
}

static void labels_out(FILE *out, const char *const *labels)
{
	if (!labels || !labels[0])
		return;
	fputc('{', out);
	for (size_t i = 0; labels[i] && labels[i + 1]; i += 2) {
		fprintf(out, "%s%s=\"", i ? "," : "", labels[i]);
		for (const char *p = labels[i + 1]; *p; p++) {
			if (*p == '\\' || *p == '"')
				fputc('\\', out);
			if (*p == '\n')
				fputs("\\n", out);
			else
				fputc(*p, out);
		}
		fputc('"', out);
	}
	fputc('}', out);
}

void su_prom__sample(FILE *out, const char *name, const char *const *labels, double value)
{
	fputs(name, out);
	labels_out(out, labels);
	fprintf(out, " %.17g\n", value);
}

void su_prom__sample_u64(FILE *out, const char *name, const char *const *labels, uint64_t value)
{
	fputs(name, out);
	labels_out(out, labels);
	fprintf(out, " %llu\n", (unsigned long long)value);
}
