/* softunicast connect: a netcat-like client that egresses from this server's
 * slice.  TCP and UDP relay stdin/stdout; --ping sends ICMP echo requests
 * whose identifier lies in the slice. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/util.h"
#include "softunicast/egress.h"

struct connect_opts {
	const char *tags;
	int type;
	int strategy;
	bool verbose;
	unsigned count;   /* ping */
	double interval;  /* ping, seconds */
	int timeout;      /* ping reply wait, ms */
};

static void connect_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s connect [--tags TAGS] [--udp | --ping] [OPTIONS] HOST PORT\n"
		"       %s connect --ping [--tags TAGS] [--count N] HOST\n\n"
		"Connects to HOST PORT from an egress IP of this server whose tags match TAGS,\n"
		"with a source port inside the server's slice, then copies stdin to the\n"
		"connection and the connection to stdout (TCP: until both sides closed; UDP:\n"
		"one datagram per read, until stdin ends and --wait passes).\n\n"
		"Options:\n"
		"  -t, --tags TAGS       egress tags, \"key=value,...\" (default: $SOFTUNICAST_TAGS,\n"
		"                        else '*', any egress of this server)\n"
		"  -u, --udp             UDP instead of TCP\n"
		"  -p, --ping            ICMP echo (ping socket; net.ipv4.ping_group_range must\n"
		"                        include the caller's group)\n"
		"  -c, --count N         echo requests to send (default 3)\n"
		"  -i, --interval SECS   between echo requests (default 0.2)\n"
		"  -w, --wait MS         wait for replies after stdin ends / per echo (default 1000)\n"
		"  -s, --strategy NAME   TCP port selection: auto, kernel, range, window, str\n"
		"  -v, --verbose         print the chosen source IP:PORT on stderr\n"
		"  -h, --help\n\n"
		"Environment: SOFTUNICAST_ASSIGNMENT (assignment file, default\n"
		"/run/softunicast/assignment), SOFTUNICAST_TAGS, SOFTUNICAST_STRATEGY.\n\n"
		"Exit status: 0 ok, 1 connection failure, 2 usage or bad tags, 5 no egress\n"
		"matches the tags or no assignment is published.\n",
		su_prog, su_prog);
}

static int parse_opts(int argc, char **argv, struct connect_opts *o)
{
	static const struct option lo[] = {
		{ "tags", 1, 0, 't' },	   { "udp", 0, 0, 'u' },     { "ping", 0, 0, 'p' },
		{ "count", 1, 0, 'c' },	   { "interval", 1, 0, 'i' }, { "wait", 1, 0, 'w' },
		{ "strategy", 1, 0, 's' }, { "verbose", 0, 0, 'v' }, { "help", 0, 0, 'h' },
		{ 0 },
	};
	uint64_t v;
	int c;

	*o = (struct connect_opts){ .tags = getenv("SOFTUNICAST_TAGS"), .type = SOCK_STREAM,
				    .count = 3, .interval = 0.2, .timeout = 1000 };
	while ((c = getopt_long(argc, argv, "t:upc:i:w:s:vh", lo, NULL)) != -1) {
		switch (c) {
		case 't':
			o->tags = optarg;
			break;
		case 'u':
			o->type = SOCK_DGRAM;
			break;
		case 'p':
			o->type = SU_SOCK_PING;
			break;
		case 'c':
			if (cli_parse_uint("connect", "--count", optarg, 1, 1000000, &v))
				return SU_EXIT_USAGE;
			o->count = (unsigned)v;
			break;
		case 'i':
			o->interval = strtod(optarg, NULL);
			break;
		case 'w':
			if (cli_parse_uint("connect", "--wait", optarg, 0, 3600000, &v))
				return SU_EXIT_USAGE;
			o->timeout = (int)v;
			break;
		case 's':
			o->strategy = su_strategy__parse(optarg);
			if (o->strategy < 0)
				return cli_fail(SU_EXIT_USAGE, "connect", "unknown strategy '%s'",
						optarg);
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			connect_usage(stdout);
			return SU_EXIT_OK;
		default:
			connect_usage(stderr);
			return SU_EXIT_USAGE;
		}
	}
	if (!o->tags || !*o->tags)
		o->tags = "*";
	return -1;
}

static int resolve(const char *host, const char *port, struct sockaddr_in *out)
{
	struct addrinfo hints = { .ai_family = AF_INET }, *res;
	int rc = getaddrinfo(host, port, &hints, &res);

	if (rc)
		return cli_fail(SU_EXIT_USAGE, "connect", "%s %s: %s", host, port ? port : "",
				gai_strerror(rc));
	memcpy(out, res->ai_addr, sizeof(*out));
	freeaddrinfo(res);
	return 0;
}

static int exit_code(int err)
{
	switch (-err) {
	case EINVAL:
	case EAFNOSUPPORT:
	case EPROTOTYPE:
		return SU_EXIT_USAGE;
	case ESRCH:
	case ENOENT:
		return SU_EXIT_NOTFOUND;
	}
	return SU_EXIT_FAIL;
}

/* Copies both ways until the peer closes (TCP) or stdin ended and the
 * socket stayed quiet for wait_ms (UDP). */
static int relay(int fd, bool stream, int wait_ms)
{
	struct pollfd p[2] = { { .fd = 0, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
	char buf[65536];

	for (;;) {
		int n = poll(p, 2, p[0].fd < 0 && !stream ? wait_ms : -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		if (p[1].revents) {
			ssize_t r = recv(fd, buf, sizeof(buf), 0);

			if (r < 0 && errno != EINTR)
				return errno == ECONNREFUSED && !stream ? -ECONNREFUSED : -errno;
			if (r == 0 && stream)
				return 0;
			if (r > 0 && su_write_full(1, buf, (size_t)r))
				return -EPIPE;
		}
		if (p[0].revents) {
			ssize_t r = read(0, buf, sizeof(buf));

			if (r <= 0) {
				p[0].fd = -1; /* stdin done: half-close, keep reading */
				if (stream)
					shutdown(fd, SHUT_WR);
			} else if (stream ? su_write_full(fd, buf, (size_t)r) : (send(fd, buf, (size_t)r, 0) < 0 ? -errno : 0)) {
				return -errno;
			}
		}
	}
}

static double mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* The kernel fills in the identifier (the bound "port") and checksum of a
 * ping socket's echo request; we only pick the sequence number. */
static int ping_one(int fd, uint16_t seq, int wait_ms, const char *host)
{
	struct icmphdr req = { .type = ICMP_ECHO, .un.echo.sequence = htons(seq) }, rep;
	double t0 = mono_ms();
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (send(fd, &req, sizeof(req), 0) < 0)
		return -errno;
	while (poll(&p, 1, wait_ms) > 0) {
		ssize_t r = recv(fd, &rep, sizeof(rep), 0);

		if (r < 0)
			return -errno;
		if ((size_t)r >= sizeof(rep) && rep.type == ICMP_ECHOREPLY &&
		    ntohs(rep.un.echo.sequence) == seq) {
			printf("reply from %s: icmp_seq=%u id=%u time=%.3f ms\n", host, seq,
			       ntohs(rep.un.echo.id), mono_ms() - t0);
			fflush(stdout);
			return 0;
		}
	}
	printf("no reply from %s: icmp_seq=%u\n", host, seq);
	return -ETIMEDOUT;
}

static int ping(int fd, const struct connect_opts *o, const char *host)
{
	unsigned got = 0;

	for (unsigned i = 0; i < o->count; i++) {
		if (i)
			usleep((useconds_t)(o->interval * 1e6));
		if (!ping_one(fd, (uint16_t)(i + 1), o->timeout, host))
			got++;
	}
	return got ? 0 : -ETIMEDOUT;
}

static void print_source(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	char ip[INET_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&a, &l))
		return;
	inet_ntop(AF_INET, &a.sin_addr, ip, sizeof(ip));
	fprintf(stderr, "softunicast connect: from %s:%u\n", ip, ntohs(a.sin_port));
}

int connect_main(int argc, char **argv)
{
	struct connect_opts o;
	struct sockaddr_in dst;
	int rc = parse_opts(argc, argv, &o), fd;
	bool is_ping;

	if (rc >= 0)
		return rc;
	is_ping = o.type == SU_SOCK_PING;
	if (argc - optind != (is_ping ? 1 : 2)) {
		connect_usage(stderr);
		return SU_EXIT_USAGE;
	}
	if ((rc = resolve(argv[optind], is_ping ? NULL : argv[optind + 1], &dst)))
		return rc;
	fd = su_connect(o.tags, (struct sockaddr *)&dst, sizeof(dst), o.type | SOCK_CLOEXEC,
			SU_F_STRATEGY(o.strategy));
	if (fd < 0)
		return cli_fail(exit_code(fd), "connect", "%s (tags %s): %s", argv[optind], o.tags,
				su_strerror(fd));
	if (o.verbose)
		print_source(fd);
	rc = is_ping ? ping(fd, &o, argv[optind]) : relay(fd, o.type == SOCK_STREAM, o.timeout);
	close(fd);
	if (rc)
		return cli_fail(SU_EXIT_FAIL, "connect", "%s: %s", argv[optind], strerror(-rc));
	return SU_EXIT_OK;
}
