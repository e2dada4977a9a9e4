/* Listening sockets, client ACLs and per-client counts, and the graceful
 * shutdown: SIGTERM/SIGINT stop accepting, the connections under way drain
 * for drain-timeout-ms, then the loop ends and the rest are closed. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/sd.h"
#include "proxy/proxy.h"

int proxy__arm(struct event *ev, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	return evtimer_add(ev, &tv);
}

static bool acl_allows(const struct proxy *p, const struct sockaddr *sa)
{
	if (!p->cfg.nacl)
		return true;
	for (size_t i = 0; i < p->cfg.nacl; i++)
		if (proxy_cidr__match(&p->cfg.acl[i], sa))
			return true;
	return false;
}

static void key_of(const struct sockaddr *sa, uint8_t out[16], int *family)
{
	memset(out, 0, 16);
	if (sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		*family = AF_INET;
	} else {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		*family = AF_INET6;
	}
}

/* Open addressing over client addresses; a slot whose count fell to 0 is
 * reused by the next new client hashing there. */
unsigned *proxy__client_count(struct proxy *p, const struct sockaddr *sa, bool create)
{
	uint8_t k[16];
	int fam;
	unsigned h = 2166136261u;
	struct client_slot *free_slot = NULL;

	if (!p->clients) {
		p->nclients_cap = 1;
		while (p->nclients_cap < 2 * (size_t)p->cfg.max_conns + 16)
			p->nclients_cap <<= 1;
		if (!(p->clients = calloc(p->nclients_cap, sizeof(*p->clients))))
			return NULL;
	}
	key_of(sa, k, &fam);
	for (int i = 0; i < 16; i++)
		h = (h ^ k[i]) * 16777619u;
	for (size_t i = 0; i < p->nclients_cap; i++) {
		struct client_slot *s = &p->clients[(h + i) & (p->nclients_cap - 1)];

		if (s->family == fam && !memcmp(s->addr, k, 16) && s->n)
			return &s->n;
		if (!s->n && !free_slot)
			free_slot = s;
		if (!s->family)
			break;
	}
	if (!create || !free_slot)
		return NULL;
	memcpy(free_slot->addr, k, 16);
	free_slot->family = fam;
	return &free_slot->n;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct proxy *p = arg;

	if (!acl_allows(p, sa)) {
		char a[64];

		proxy_log__addr(sa, a, sizeof(a));
		proxy_log__write(p->log, &(struct proxy_logrec){ .client = sa, .result = "acl-denied" });
		proxy_stats__ended(&p->st, PROXY_P_UNKNOWN, "acl-denied");
		close(fd);
		return;
	}
	proxy_conn__accept(p, fd, sa, (socklen_t)len);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	/* EMFILE and friends: the listener retries on the next readiness;
	 * back off a little so the loop does not spin. */
	STAT_ADD(((struct proxy *)arg)->st.errors[PROXY_ERR_ACCEPT], 1);
	evconnlistener_disable(l);
	usleep(10000);
	evconnlistener_enable(l);
}

static int parse_listen(const char *s, struct sockaddr_storage *ss, int *len)
{
	if (evutil_parse_sockaddr_port(s, (struct sockaddr *)ss, len))
		return -EINVAL;
	return 0;
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopexit(((struct proxy *)arg)->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct proxy *p = arg;
	unsigned ms = p->cfg.drain_ms;

	if (p->draining) { /* a second signal: stop now */
		event_base_loopexit(p->base, NULL);
		return;
	}
	p->draining = true;
	STAT_ADD(p->st.draining, 1);
	su_sd__stopping();
	/* closed, not just paused: new clients get a refusal at once and can
	 * go to another server instead of waiting in our backlog */
	for (size_t i = 0; i < p->nlev; i++)
		evconnlistener_free(p->lev[i]);
	p->nlev = 0;
	fprintf(stderr, "softunicast proxy: %s, draining %llu connection(s) for up to %u ms\n",
		strsignal((int)sig), (unsigned long long)p->st.active, ms);
	if (!p->st.active) {
		event_base_loopexit(p->base, NULL);
		return;
	}
	p->drain_timer = evtimer_new(p->base, on_drain_timeout, p);
	if (p->drain_timer)
		proxy__arm(p->drain_timer, ms);
}

/* WatchdogSec=: fed from the event loop itself (daemon/sd.h). */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	su_sd__watchdog_ping(fd);
}

int proxy__run(struct proxy *p)
{
	struct event *watchdog = NULL;
	int wfd;

	p->lev = calloc(p->cfg.nlisten, sizeof(*p->lev));
	if (!p->lev)
		return -ENOMEM;
	for (size_t i = 0; i < p->cfg.nlisten; i++) {
		struct sockaddr_storage ss;
		int len = sizeof(ss);

		if (parse_listen(p->cfg.listen[i], &ss, &len)) {
			fprintf(stderr, "softunicast proxy: listen '%s': not ADDR:PORT\n", p->cfg.listen[i]);
			return -EINVAL;
		}
		p->lev[i] = evconnlistener_new_bind(p->base, on_accept, p,
						    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
						    1024, (struct sockaddr *)&ss, len);
		if (!p->lev[i]) {
			int e = errno;

			fprintf(stderr, "softunicast proxy: listen %s: %s\n", p->cfg.listen[i], strerror(e));
			return -e;
		}
		evconnlistener_set_error_cb(p->lev[i], on_accept_error);
		p->nlev++;
	}
	p->sigterm = evsignal_new(p->base, SIGTERM, on_signal, p);
	p->sigint = evsignal_new(p->base, SIGINT, on_signal, p);
	if (!p->sigterm || !p->sigint)
		return -ENOMEM;
	evsignal_add(p->sigterm, NULL);
	evsignal_add(p->sigint, NULL);
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "softunicast proxy: listening on");
	for (size_t i = 0; i < p->cfg.nlisten; i++)
		fprintf(stderr, " %s", p->cfg.listen[i]);
	fprintf(stderr, "\n");
	wfd = su_sd__watchdog_fd();
	if (wfd >= 0 && (watchdog = event_new(p->base, wfd, EV_READ | EV_PERSIST, on_watchdog, NULL)))
		event_add(watchdog, NULL);
	su_sd__ready("listening on %zu address(es)", p->cfg.nlisten);
	event_base_dispatch(p->base);
	if (watchdog)
		event_free(watchdog);
	if (wfd >= 0)
		close(wfd);
	return 0;
}
