/* bench/proxy: load generator, origins and a splice relay for comparing
 * forward proxies (a benchmark, not a test; driven by bench/proxy/run.sh).
 *
 *   bench-proxy origin ADDR:PORT          short request/response origin: reads
 *       one request (up to "\n"), answers 64 bytes and closes; a request
 *       "BULK\n" is answered by an endless stream instead.
 *   bench-proxy splice LISTEN TARGET      the ceiling: relays each connection to
 *       TARGET with splice(2) through pipes, a thread per direction.
 *   bench-proxy rate MODE PROXY TARGET CLIENTS SECS
 *       new connections per second, each a short request/response through the
 *       proxy; MODE socks5 (no auth), http (CONNECT), plain (a relay with a
 *       fixed target, e.g. the splice relay) or direct (no proxy).
 *   bench-proxy bulk MODE PROXY TARGET CLIENTS SECS
 *       bytes per second read through CLIENTS concurrent streams.
 *   bench-proxy idle MODE PROXY TARGET N   opens N relayed connections and
 *       holds them until stdin closes (prints "ready" once they are up).
 * Threads with blocking sockets: simple, and the same client for every peer. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in parse(const char *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	char buf[64];
	char *c;

	snprintf(buf, sizeof(buf), "%s", s);
	c = strrchr(buf, ':');
	if (!c) {
		fprintf(stderr, "bad address %s\n", s);
		exit(2);
	}
	*c = 0;
	inet_pton(AF_INET, buf, &a.sin_addr);
	a.sin_port = htons((uint16_t)atoi(c + 1));
	return a;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int readn(int fd, void *b, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)b + got, n - got);

		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* ---- origin ------------------------------------------------------------- */
static void *origin_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[64];
	static const char out[65536] = { [0 ... 65535] = 0x78 };
	size_t n = 0;

	while (n < sizeof(req) - 1) {
		ssize_t r = read(fd, req + n, 1);

		if (r <= 0)
			goto done;
		if (req[n++] == '\n')
			break;
	}
	req[n] = 0;
	if (!strncmp(req, "BULK", 4)) {
		while (write(fd, out, sizeof(out)) > 0)
			;
	} else {

		if (write(fd, out, 64) < 0)
			goto done;
	}
done:
	close(fd);
	return NULL;
}

static int listen_on(const char *addr)
{
	struct sockaddr_in a = parse(addr);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
		perror(addr);
		exit(1);
	}
	return fd;
}

static void spawn(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	pthread_attr_t at;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&at, 256 * 1024);
	if (pthread_create(&t, &at, fn, arg))
		close((int)(intptr_t)arg);
	pthread_attr_destroy(&at);
}

__attribute__((noreturn)) static void origin(const char *addr)
{
	int l = listen_on(addr);

	for (;;) {
		int fd = accept(l, NULL, NULL);

		if (fd >= 0)
			spawn(origin_conn, (void *)(intptr_t)fd);
	}
}

/* ---- splice ceiling ------------------------------------------------------ */
struct pair {
	int from, to;
};
static struct sockaddr_in g_target;

static void *pump(void *arg)
{
	struct pair *p = arg;
	int pp[2];

	if (pipe2(pp, O_CLOEXEC) == 0) {
		for (;;) {
			ssize_t n = splice(p->from, NULL, pp[1], NULL, 1 << 20, SPLICE_F_MOVE);

			if (n <= 0)
				break;
			while (n > 0) {
				ssize_t w = splice(pp[0], NULL, p->to, NULL, (size_t)n, SPLICE_F_MOVE);

				if (w <= 0)
					goto out;
				n -= w;
			}
		}
out:
		close(pp[0]);
		close(pp[1]);
	}
	shutdown(p->to, SHUT_WR);
	shutdown(p->from, SHUT_RD);
	free(p);
	return NULL;
}

static void *splice_conn(void *arg)
{
	int c = (int)(intptr_t)arg, u = socket(AF_INET, SOCK_STREAM, 0);
	struct pair *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	pthread_t t;

	if (connect(u, (struct sockaddr *)&g_target, sizeof(g_target))) {
		close(c);
		close(u);
		free(a);
		free(b);
		return NULL;
	}
	*a = (struct pair){ c, u };
	*b = (struct pair){ u, c };
	pthread_create(&t, NULL, pump, a);
	pump(b);
	pthread_join(t, NULL);
	close(c);
	close(u);
	return NULL;
}

__attribute__((noreturn)) static void splicer(const char *lis, const char *target)
{
	int l = listen_on(lis);

	g_target = parse(target);
	for (;;) {
		int fd = accept(l, NULL, NULL);

		if (fd >= 0)
			spawn(splice_conn, (void *)(intptr_t)fd);
	}
}

/* ---- clients ------------------------------------------------------------- */
enum mode { M_SOCKS5, M_HTTP, M_DIRECT, M_PLAIN }; /* plain: a relay with a fixed target */
static enum mode g_mode;
static struct sockaddr_in g_proxy;
static atomic_ullong g_count, g_bytes, g_fail;
static atomic_int g_stop;

/* A connection to the target through the proxy, ready for application bytes. */
static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	uint8_t b[64];
	/* a stalled relay must not hang the run: a read or write blocked this
	 * long fails (and is counted) instead */
	struct timeval tv = { .tv_sec = 5 };

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)(g_mode == M_DIRECT ? &g_target : &g_proxy), sizeof(g_proxy)))
		goto fail;
	if (g_mode == M_SOCKS5) {
		uint8_t hello[3] = { 5, 1, 0 }, req[10] = { 5, 1, 0, 1 };

		memcpy(req + 4, &g_target.sin_addr, 4);
		memcpy(req + 8, &g_target.sin_port, 2);
		/* The request only after the method reply, as RFC 1928 clients
		 * (curl) do: microsocks drops a request pipelined behind the
		 * greeting, and every peer pays the same round trip. */
		if (write(fd, hello, 3) != 3 || readn(fd, b, 2) || b[1] != 0 ||
		    write(fd, req, 10) != 10 || readn(fd, b, 10) || b[1] != 0)
			goto fail;
	} else if (g_mode == M_HTTP) {
		char req[128], a[16];
		int n = snprintf(req, sizeof(req), "CONNECT %s:%u HTTP/1.1\r\n\r\n",
				 inet_ntop(AF_INET, &g_target.sin_addr, a, sizeof(a)), ntohs(g_target.sin_port));
		char resp[512];
		size_t got = 0;

		if (write(fd, req, (size_t)n) != n)
			goto fail;
		while (got < sizeof(resp) - 1) { /* to the end of the response head */
			if (read(fd, resp + got, 1) != 1)
				goto fail;
			got++;
			if (got >= 4 && !memcmp(resp + got - 4, "\r\n\r\n", 4))
				break;
		}
		if (got < 12 || memcmp(resp + 9, "200", 3))
			goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static void *rate_worker(void *arg)
{
	char buf[64];

	while (!g_stop) {
		int fd = dial();

		if (fd < 0 || write(fd, "GET\n", 4) != 4 || readn(fd, buf, 64)) {
			g_fail++;
			if (fd >= 0)
				close(fd);
			usleep(1000);
			continue;
		}
		close(fd);
		g_count++;
	}
	return NULL;
}

static void *bulk_worker(void *arg)
{
	static __thread char buf[1 << 16];
	int fd = dial();

	if (fd < 0 || write(fd, "BULK\n", 5) != 5) {
		g_fail++;
		return NULL;
	}
	while (!g_stop) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0) {
			g_fail++;
			break;
		}
		g_bytes += (unsigned long long)n;
	}
	close(fd);
	return NULL;
}

static int run(void *(*fn)(void *), int clients, double secs, const char *what)
{
	pthread_t *t = calloc((size_t)clients, sizeof(*t));
	pthread_attr_t at;
	double t0;
	unsigned long long c0, b0;

	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, 256 * 1024);
	for (int i = 0; i < clients; i++)
		pthread_create(&t[i], &at, fn, NULL);
	usleep(300000); /* warm-up: every client connected */
	c0 = g_count;
	b0 = g_bytes;
	t0 = now();
	usleep((useconds_t)(secs * 1e6));
	double dt = now() - t0;
	unsigned long long c = g_count - c0, b = g_bytes - b0;

	g_stop = 1;
	for (int i = 0; i < clients; i++)
		pthread_join(t[i], NULL);
	if (!strcmp(what, "rate"))
		printf("%.0f conn/s failures=%llu\n", (double)c / dt, (unsigned long long)g_fail);
	else
		printf("%.3f Gbit/s bytes=%llu failures=%llu\n", (double)b * 8 / dt / 1e9, b, (unsigned long long)g_fail);
	free(t);
	return 0;
}

static int idle(int n)
{
	int *fds = calloc((size_t)n, sizeof(int)), ok = 0;
	char c;

	for (int i = 0; i < n; i++)
		if ((fds[i] = dial()) >= 0)
			ok++;
	printf("ready %d\n", ok);
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	return 0;
}

int main(int argc, char **argv)
{
	struct rlimit r = { 1 << 16, 1 << 16 };

	setrlimit(RLIMIT_NOFILE, &r);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3 && !strcmp(argv[1], "origin"))
		origin(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "splice"))
		splicer(argv[2], argv[3]);
	if (argc >= 6) {
		g_mode = !strcmp(argv[2], "socks5") ? M_SOCKS5 : !strcmp(argv[2], "http") ? M_HTTP
			 : !strcmp(argv[2], "plain") ? M_PLAIN : M_DIRECT;
		g_proxy = parse(argv[3]);
		g_target = parse(argv[4]);
		if (!strcmp(argv[1], "idle"))
			return idle(atoi(argv[5]));
		if (argc == 7 && !strcmp(argv[1], "rate"))
			return run(rate_worker, atoi(argv[5]), atof(argv[6]), "rate");
		if (argc == 7 && !strcmp(argv[1], "bulk"))
			return run(bulk_worker, atoi(argv[5]), atof(argv[6]), "bulk");
	}
	fprintf(stderr, "usage: see the comment at the top of bench/proxy/main.c\n");
	return 2;
}
