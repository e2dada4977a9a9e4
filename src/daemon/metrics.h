/* Prometheus metrics endpoint of the long-running commands (router, agent,
 * proxy): `--metrics ADDR:PORT` serves GET /metrics in the text exposition
 * format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/)
 * over HTTP/1.1 from libmicrohttpd's own thread.
 *
 * Each scrape calls the daemon's render function, which writes the whole
 * page into a FILE * with the su_prom__* helpers below.  The render runs in
 * the HTTP thread: it may only read what is safe to read concurrently with
 * the daemon's loop (kernel maps, files replaced atomically, values read
 * with __atomic loads). */
#ifndef SU_DAEMON_METRICS_H
#define SU_DAEMON_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "lib/err.h"

struct su_metrics;

/* Writes one scrape; 0 or -errno (the scrape then answers 500). */
typedef int (*su_metrics_render_fn)(FILE *out, void *arg);

/* "IPv4:PORT", "[IPv6]:PORT" or ":PORT" (all IPv4 addresses): 0 or -EINVAL.
 * For checking the option before anything starts. */
struct sockaddr_storage;
int su_metrics__parse(const char *listen, struct sockaddr_storage *ss);

/* Parses the address as su_metrics__parse() does and starts serving.  -EINVAL for a malformed address (err names it), -errno when the
 * socket cannot be bound (e.g. -EADDRINUSE). */
int su_metrics__start(const char *listen, su_metrics_render_fn fn, void *arg, struct su_metrics **out,
		      struct su_err *err);
/* Stops serving (waits for a scrape in progress) and frees; NULL is fine. */
void su_metrics__stop(struct su_metrics *m);

/* "# HELP name help" and "# TYPE name type" (type: counter, gauge, ...). */
void su_prom__family(FILE *out, const char *name, const char *type, const char *help);
/* One sample: name{k1="v1",...} value.  labels is a NULL-terminated list of
 * key, value pairs (NULL for none); values are escaped as the format wants
 * (backslash, double quote, newline). */
void su_prom__sample(FILE *out, const char *name, const char *const *labels, double value);
void su_prom__sample_u64(FILE *out, const char *name, const char *const *labels, uint64_t value);

/* The plan source of a daemon (ROLE "router" or "agent"), store_metrics.c:
 * softunicast_ROLE_store_up (1 for a plan file, or a store followed at its
 * current version), softunicast_ROLE_store_state{backend,state} (one series
 * per state of lib/store/follow.h), and with a store
 * softunicast_ROLE_store_fetched_serial and ..._fetch_failures_total. */
void su_prom__store(FILE *out, const char *role);

#endif
