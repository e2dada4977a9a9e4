/* softunicast proxy: command line, set-up and teardown. */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "daemon/metrics.h"
#include "proxy/conn.h"
#include "softunicast/egress.h"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: %s proxy [--listen ADDR:PORT]... [--config FILE] [OPTIONS]\n\n"
		"A forward proxy for SOCKS5 (CONNECT, UDP ASSOCIATE; no auth or user/password),\n"
		"SOCKS4/4a and HTTP/1.1 (CONNECT and absolute-URI requests), all on one port,\n"
		"told apart by the first byte.  Each connection gets tags - from its credentials,\n"
		"else the client address's country, else the default - and egresses through\n"
		"libsoftunicast from an IP of this server carrying those tags, with a source\n"
		"port in this server's slice.  Tags with no egress here are refused (SOCKS5\n"
		"reply 0x02, SOCKS4 91, HTTP 403 with X-Softunicast-Error), never replaced.\n"
		"Target names are resolved by the proxy (c-ares, TTL cache), and the resolver's\n"
		"queries egress with dns-tags, the data center's own tag-set.\n\n"
		"Options:\n"
		"  -l, --listen ADDR:PORT   listen here (repeatable; adds to the config's)\n"
		"  -c, --config FILE        configuration (see softunicast-proxy(1), docs/proxy.md)\n"
		"  -a, --assignment FILE    the agent's assignment (default: the library's,\n"
		"                           $SOFTUNICAST_ASSIGNMENT or /run/softunicast/assignment)\n"
		"  -L, --access-log FILE    one line per connection; '-' for stdout\n"
		"  -t, --default-tags TAGS  tags when nothing else names any\n"
		"  -M, --metrics ADDR:PORT  serve Prometheus metrics on http://ADDR:PORT/metrics:\n"
		"                           connections by protocol and result, errors by\n"
		"                           reason, bytes each way, relays by mode, DNS\n"
		"                           queries, cache hits and failures, open connections\n"
		"                           (the config's 'metrics' key; docs/proxy.md)\n"
		"      --check              validate the configuration and exit\n"
		"  -h, --help\n\n"
		"Signals: SIGTERM or SIGINT stop accepting and let connections drain for\n"
		"drain-timeout-ms; a second signal stops at once.\n\n"
		"Exit status: 0 ok, 1 runtime failure, 2 usage, 3 invalid configuration.\n",
		su_prog);
}

struct opts {
	const char *config;
	bool check;
};

static int set(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

static int parse_opts(int argc, char **argv, struct proxy_config *cfg, struct opts *o)
{
	static const struct option lo[] = {
		{ "listen", 1, 0, 'l' },      { "config", 1, 0, 'c' },       { "assignment", 1, 0, 'a' },
		{ "access-log", 1, 0, 'L' }, { "default-tags", 1, 0, 't' }, { "check", 0, 0, 'C' },
		{ "metrics", 1, 0, 'M' },
		{ "help", 0, 0, 'h' },        { 0 },
	};
	char **cli_listen = NULL, *assign = NULL, *alog = NULL, *dtags = NULL, *metrics = NULL;
	size_t ncli = 0;
	char err[512];
	int ch, rc = 0;

	*o = (struct opts){ 0 };
	optind = 1;
	while (!rc && (ch = getopt_long(argc, argv, "l:c:a:L:t:M:h", lo, NULL)) != -1) {
		switch (ch) {
		case 'l': {
			char **nv = realloc(cli_listen, (ncli + 1) * sizeof(*nv));

			if (!nv)
				return -ENOMEM;
			cli_listen = nv;
			nv[ncli++] = optarg;
			break;
		}
		case 'c': o->config = optarg; break;
		case 'a': assign = optarg; break;
		case 'L': alog = optarg; break;
		case 't': dtags = optarg; break;
		case 'C': o->check = true; break;
		case 'M':
			if (su_metrics__parse(optarg, &(struct sockaddr_storage){ 0 })) {
				free(cli_listen);
				fprintf(stderr, "%s proxy: --metrics '%s': expected IPv4:PORT, [IPv6]:PORT or :PORT\n",
					su_prog, optarg);
				return -EINVAL;
			}
			metrics = optarg;
			break;
		case 'h':
			usage(stdout);
			free(cli_listen);
			return 1;
		default:
			free(cli_listen);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		free(cli_listen);
		fprintf(stderr, "%s proxy: unexpected argument '%s'\n", su_prog, argv[optind]);
		return -EINVAL;
	}
	if (o->config && (rc = proxy_config__load(o->config, cfg, err, sizeof(err)))) {
		free(cli_listen);
		fprintf(stderr, "%s proxy: %s\n", su_prog, err);
		return -EBADMSG;
	}
	for (size_t i = 0; i < ncli && !rc; i++) {
		char **nv = realloc(cfg->listen, (cfg->nlisten + 1) * sizeof(*nv));

		if (!nv || !(nv[cfg->nlisten] = strdup(cli_listen[i])))
			rc = -ENOMEM;
		else {
			cfg->listen = nv;
			cfg->nlisten++;
		}
	}
	free(cli_listen);
	if (!rc && assign)
		rc = set(&cfg->assignment, assign);
	if (!rc && alog)
		rc = set(&cfg->access_log, alog);
	if (!rc && dtags)
		rc = set(&cfg->default_tags, dtags);
	if (!rc && metrics)
		rc = set(&cfg->metrics, metrics);
	if (!rc && !cfg->nlisten) {
		fprintf(stderr, "%s proxy: nothing to listen on (--listen or 'listen' in the config)\n", su_prog);
		return -EINVAL;
	}
	return rc;
}

static int setup(struct proxy *p, char *err, size_t errlen)
{
	int rc;

	if ((p->cfg.geo_csv || p->cfg.geo_mmdb) &&
	    (rc = proxy_geo__open(p->cfg.geo_csv, p->cfg.geo_mmdb, &p->geo, err, errlen)))
		return rc;
	if ((rc = su_egress__open(p->cfg.assignment, &p->egress))) {
		snprintf(err, errlen, "assignment: %s", su_strerror(rc));
		return rc;
	}
	if (p->cfg.access_log) {
		p->log = strcmp(p->cfg.access_log, "-") ? fopen(p->cfg.access_log, "ae") : stdout;
		if (!p->log) {
			rc = -errno;
			snprintf(err, errlen, "access-log %s: %s", p->cfg.access_log, strerror(errno));
			return rc;
		}
	}
	if (p->cfg.metrics) {
		struct su_err e = { 0 };

		if ((rc = su_metrics__start(p->cfg.metrics, proxy_stats__render, p, &p->metrics, &e))) {
			snprintf(err, errlen, "%s", e.msg);
			return rc;
		}
	}
	if (!(p->base = event_base_new())) {
		snprintf(err, errlen, "libevent: cannot create the event loop");
		return -ENOMEM;
	}
	return proxy_dns__new(p, &p->dns, err, errlen);
}

static void teardown(struct proxy *p)
{
	/* first: the metrics thread reads p until it stops */
	su_metrics__stop(p->metrics);
	p->metrics = NULL;
	proxy_conn__close_all(p);
	for (size_t i = 0; i < p->nlev; i++)
		evconnlistener_free(p->lev[i]);
	free(p->lev);
	proxy_dns__free(p->dns);
	if (p->sigterm)
		event_free(p->sigterm);
	if (p->sigint)
		event_free(p->sigint);
	if (p->drain_timer)
		event_free(p->drain_timer);
	if (p->base)
		event_base_free(p->base);
	if (p->log && p->log != stdout)
		fclose(p->log);
	proxy_geo__free(p->geo);
	su_egress__close(p->egress);
	free(p->clients);
	proxy_config__free(&p->cfg);
}

int proxy_main(int argc, char **argv)
{
	struct proxy p = { 0 };
	struct opts o;
	char err[512] = "";
	int rc;

	proxy_config__defaults(&p.cfg);
	rc = parse_opts(argc, argv, &p.cfg, &o);
	if (rc) {
		proxy_config__free(&p.cfg);
		if (rc == 1)
			return SU_EXIT_OK;
		if (rc == -EBADMSG)
			return SU_EXIT_INVALID;
		if (rc == -EINVAL)
			usage(stderr);
		return rc == -EINVAL ? SU_EXIT_USAGE : SU_EXIT_FAIL;
	}
	if (o.check) {
		/* geolocation files are part of the configuration */
		rc = (p.cfg.geo_csv || p.cfg.geo_mmdb) ? proxy_geo__open(p.cfg.geo_csv, p.cfg.geo_mmdb, &p.geo, err, sizeof(err)) : 0;
		proxy_geo__free(p.geo);
		proxy_config__free(&p.cfg);
		if (rc)
			return cli_fail(SU_EXIT_INVALID, "proxy", "%s", err);
		printf("configuration ok\n");
		return SU_EXIT_OK;
	}
	rc = setup(&p, err, sizeof(err));
	if (!rc)
		rc = proxy__run(&p);
	teardown(&p);
	if (rc && err[0])
		return cli_fail(rc == -EINVAL ? SU_EXIT_INVALID : SU_EXIT_FAIL, "proxy", "%s", err);
	return rc ? SU_EXIT_FAIL : SU_EXIT_OK;
}
