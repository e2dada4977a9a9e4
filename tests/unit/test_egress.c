/* libsoftunicast egress: assignment file, tag queries, and real sockets on
 * loopback for every port selection strategy (no root needed). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "softunicast/egress.h"
#include "lib/assignment.h"
#include "lib/counters.h"
#include "lib/egress_port.h"
#include "bpf/decap_abi.h"

/* Slices inside the ephemeral range (IP_LOCAL_PORT_RANGE only narrows it),
 * near its top where the kernel's own picks rarely land. */
#define N 64
static unsigned LO, OUT_LO;

static char g_path[] = "/tmp/su-test-assignment-XXXXXX";

static char k_file[1024];

static void make_file(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	unsigned lo = 32768, hi = 60999;

	if (f) {
		if (fscanf(f, "%u %u", &lo, &hi) != 2)
			hi = 60999;
		fclose(f);
	}
	LO = (hi - 4 * N) & ~(N - 1u);
	OUT_LO = hi < 65535 - N ? (hi + N) & ~(N - 1u) : 1024; /* outside the range */
	snprintf(k_file, sizeof(k_file),
		 "# comment\n"
		 "softunicast-assignment 1\n"
		 "serial 7\n"
		 "server s1\n"
		 "updated 1763776000\n"
		 "future-record ignored by format-1 readers\n"
		 "egress 127.0.0.1 %u %u active service=warp,country=GB\n"
		 "egress 127.0.0.1 %u %u draining service=warp,country=GB\n"
		 "egress 127.0.0.1 %u %u active service=cdn\n"
		 "egress 127.0.0.1 %u %u active service=outside\n"
		 "egress 127.0.0.1 %u %u active pair=1\n"
		 "egress 127.0.0.1 %u %u active pair=1\n",
		 LO, LO + N - 1, LO + N, LO + 2 * N - 1, LO + 2 * N, LO + 3 * N - 1, OUT_LO,
		 OUT_LO + N - 1, LO - 2 * N, LO - N - 1, LO - N, LO - 1);
}

static void write_file(const char *text)
{
	FILE *f = fopen(g_path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_parse_roundtrip(void **state)
{
	struct su_assignment *a, *b;
	struct su_err err;
	char *text;

	assert_int_equal(su_assignment__parse(k_file, strlen(k_file), &a, &err), 0);
	assert_int_equal(a->serial, 7);
	assert_string_equal(a->server, "s1");
	assert_int_equal(a->n, 6);
	assert_int_equal(a->v[0].ip, 0x7f000001);
	assert_int_equal(a->v[1].state, SU_SLICE_DRAINING);
	text = su_assignment__format(a);
	assert_non_null(text);
	assert_int_equal(su_assignment__parse(text, strlen(text), &b, &err), 0);
	assert_int_equal(b->n, 6);
	assert_string_equal(b->v[2].tags, "service=cdn");
	free(text);
	su_assignment__free(a);
	su_assignment__free(b);
}

/* A live move's "handed" record round-trips, and the echo quiet time is the
 * deadline + DECAP_ECHO_QUIET_S + 1 s. */
static void test_parse_handed(void **state)
{
	static const char k[] = "softunicast-assignment 1\n"
				"egress 10.0.0.1 2048 4095 active a=b\n"
				"handed 10.0.0.1 2048 1763776300\n"
				"egress 10.0.0.1 4096 6143 active a=b\n";
	struct su_assignment *a, *b;
	struct su_err err;
	char *text;

	assert_int_equal(su_assignment__parse(k, strlen(k), &a, &err), 0);
	assert_int_equal(a->v[0].handed_until, 1763776300);
	assert_int_equal(a->v[1].handed_until, 0);
	text = su_assignment__format(a);
	assert_non_null(strstr(text, "\nhanded 10.0.0.1 2048 1763776300\n"));
	assert_int_equal(su_assignment__parse(text, strlen(text), &b, &err), 0);
	assert_int_equal(b->v[0].handed_until, 1763776300);
	assert_true(su_assignment__echo_quiet(&a->v[0], 1763776300 - 100));
	assert_true(su_assignment__echo_quiet(&a->v[0], 1763776300 + 5));
	assert_false(su_assignment__echo_quiet(&a->v[0], 1763776300 + 6));
	assert_false(su_assignment__echo_quiet(&a->v[1], 1763776300 - 100));
	free(text);
	su_assignment__free(a);
	su_assignment__free(b);
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *text;
		int rc;
		const char *msg;
	} cases[] = {
		{ "softunicast-assignment 2\n", -EPROTONOSUPPORT, "format 2" },
		{ "hello 1\n", -EINVAL, "not a softunicast" },
		{ "", -EINVAL, "empty" },
		{ "softunicast-assignment 1\negress 1.2.3 1 2 active a=b\n", -EINVAL, "address" },
		{ "softunicast-assignment 1\negress 1.2.3.4 9 2 active a=b\n", -EINVAL, "port range" },
		{ "softunicast-assignment 1\negress 1.2.3.4 1 2 gone a=b\n", -EINVAL, "state" },
		{ "softunicast-assignment 1\negress 1.2.3.4 1 2 active A=b\n", -EINVAL, "tags" },
		{ "softunicast-assignment 1\negress 1.2.3.4 1 9 active a=b\n"
		  "egress 1.2.3.4 5 20 active a=b\n", -EINVAL, "overlaps" },
		/* a live move's "handed" record: after its slice's egress line */
		{ "softunicast-assignment 1\nhanded 1.2.3.4 1 1763776300\n"
		  "egress 1.2.3.4 1 9 active a=b\n", -EINVAL, "follows no egress line" },
		{ "softunicast-assignment 1\negress 1.2.3.4 1 9 active a=b\n"
		  "handed 1.2.3.4 2 1763776300\n", -EINVAL, "follows no egress line" },
		{ "softunicast-assignment 1\negress 1.2.3.4 1 9 active a=b\n"
		  "handed 1.2.3.4 1 soon\n", -EINVAL, "bad handed deadline 'soon'" },
		{ "softunicast-assignment 1\negress 1.2.3.4 1 9 active a=b\n"
		  "handed 1.2.3.4 1\n", -EINVAL, "handed wants IP LO UNTIL" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct su_assignment *a = NULL;
		struct su_err err = { "" };

		assert_int_equal(su_assignment__parse(cases[i].text, strlen(cases[i].text), &a,
						      &err),
				 cases[i].rc);
		assert_non_null(strstr(err.msg, cases[i].msg));
	}
}

static void test_tags(void **state)
{
	assert_int_equal(su_assignment__check_tags("service=warp,country=GB", NULL), 0);
	assert_int_equal(su_assignment__check_tags("*", NULL), 0);
	assert_int_equal(su_assignment__check_tags("", NULL), -EINVAL);
	assert_int_equal(su_assignment__check_tags("service", NULL), -EINVAL);
	assert_int_equal(su_assignment__check_tags("service=", NULL), -EINVAL);
	assert_int_equal(su_assignment__check_tags("Service=x", NULL), -EINVAL);
	assert_int_equal(su_assignment__check_tags("a=b,", NULL), -EINVAL);
	assert_true(su_assignment__tags_match("country=GB,service=warp", "service=warp,country=GB"));
	assert_true(su_assignment__tags_match("country=GB,service=warp", "country=GB"));
	assert_true(su_assignment__tags_match("city=New%20York", "city=New%20York"));
	assert_false(su_assignment__tags_match("country=GB,service=warp", "country=DE"));
	assert_false(su_assignment__tags_match("service=warp", "service=warp,country=GB"));
	assert_true(su_assignment__tags_match("-", "*"));
}

static int listener(int type, struct sockaddr_in *a)
{
	socklen_t l = sizeof(*a);
	int fd = socket(AF_INET, type, 0);

	assert_true(fd >= 0);
	*a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof(*a)), 0);
	if (type == SOCK_STREAM)
		assert_int_equal(listen(fd, 4096), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)a, &l), 0);
	return fd;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	assert_int_equal(ntohl(a.sin_addr.s_addr), 0x7f000001);
	return ntohs(a.sin_port);
}

/* Linger 0: no TIME_WAIT left holding the 4-tuples for the next test. */
static void close_all(int *fds, int n)
{
	struct linger lg = { 1, 0 };

	for (int i = 0; i < n; i++) {
		setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fds[i]);
	}
}

/* Fill the slice toward one destination (every port once, none outside),
 * see the next connect fail as exhausted, and see a second destination
 * reuse the same ports. */
static void fill_slice_tags(const char *tags, unsigned lo, int type, int strategy)
{
	struct su_egress *e;
	struct sockaddr_in d1, d2;
	int l1 = listener(type, &d1), l2 = listener(type, &d2), fds[N], more;
	uint64_t seen = 0;

	write_file(k_file);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	for (int i = 0; i < N; i++) {
		uint16_t p;

		fds[i] = su_egress__connect(e, tags, (struct sockaddr *)&d1, sizeof(d1),
					    type, SU_F_STRATEGY(strategy));
		if (fds[i] < 0)
			fail_msg("%s connect %d: %s", su_strategy__name(strategy), i,
				 su_strerror(fds[i]));
		p = local_port(fds[i]);
		assert_true(p >= lo && p < lo + N);
		assert_false(seen >> (p - lo) & 1);
		seen |= 1ull << (p - lo);
	}
	assert_int_equal(su_egress__connect(e, tags, (struct sockaddr *)&d1, sizeof(d1), type,
					    SU_F_STRATEGY(strategy)),
			 -EADDRNOTAVAIL);
	more = su_egress__connect(e, tags, (struct sockaddr *)&d2, sizeof(d2), type,
				  SU_F_STRATEGY(strategy));
	assert_true(more >= 0);
	assert_true(local_port(more) >= lo && local_port(more) < lo + N);
	close_all(&more, 1);
	close_all(fds, N);
	close(l1);
	close(l2);
	su_egress__close(e);
}

static void fill_slice(int type, int strategy)
{
	fill_slice_tags("service=warp", LO, type, strategy);
}

/* A slice outside ip_local_port_range falls back to explicit ports. */
static void test_tcp_outside(void **state)
{
	fill_slice_tags("service=outside", OUT_LO, SOCK_STREAM, SU_STRATEGY_RANGE);
}

static void test_tcp_range(void **state) { fill_slice(SOCK_STREAM, SU_STRATEGY_RANGE); }
static void test_tcp_window(void **state) { fill_slice(SOCK_STREAM, SU_STRATEGY_WINDOW); }
static void test_tcp_str(void **state) { fill_slice(SOCK_STREAM, SU_STRATEGY_STR); }
static void test_tcp_auto(void **state) { fill_slice(SOCK_STREAM, SU_STRATEGY_AUTO); }
static void test_udp(void **state) { fill_slice(SOCK_DGRAM, SU_STRATEGY_AUTO); }

/* The SO_REUSEADDR pitfall: a socket of another program already connected
 * from (ip, P) to d with SO_REUSEADDR.  The kernel would let us bind P too
 * and connect to d, and the two would share one 4-tuple; the library must
 * skip P toward d (and only toward d). */
static void test_udp_guard(void **state)
{
	struct su_egress *e;
	struct sockaddr_in d, src = { .sin_family = AF_INET, .sin_port = htons((uint16_t)(LO + 5)),
				      .sin_addr.s_addr = htonl(0x7f000001) };
	int l = listener(SOCK_DGRAM, &d), other = socket(AF_INET, SOCK_DGRAM, 0), one = 1, fds[N];

	setsockopt(other, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(other, (struct sockaddr *)&src, sizeof(src)), 0);
	assert_int_equal(connect(other, (struct sockaddr *)&d, sizeof(d)), 0);
	write_file(k_file);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	for (int i = 0; i < N - 1; i++) {
		fds[i] = su_egress__connect(e, "service=warp", (struct sockaddr *)&d, sizeof(d),
					    SOCK_DGRAM, 0);
		assert_true(fds[i] >= 0);
		assert_int_not_equal(local_port(fds[i]), LO + 5);
	}
	assert_int_equal(su_egress__connect(e, "service=warp", (struct sockaddr *)&d, sizeof(d),
					    SOCK_DGRAM, 0), -EADDRNOTAVAIL);
	close_all(fds, N - 1);
	close(other);
	close(l);
	su_egress__close(e);
}

static void test_ping(void **state)
{
	struct su_egress *e;
	struct sockaddr_in d = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	int fd, probe = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);

	write_file(k_file);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	fd = su_egress__connect(e, "service=cdn", (struct sockaddr *)&d, sizeof(d), SU_SOCK_PING, 0);
	if (probe < 0) {
		/* net.ipv4.ping_group_range excludes us: the error must say so
		 * (cmocka's TAP skip reads as a failure to prove). */
		assert_int_equal(fd, -EACCES);
		assert_non_null(strstr(su_strerror(fd), "ping_group_range"));
		su_egress__close(e);
		return;
	}
	close(probe);
	assert_true(fd >= 0);
	assert_true(local_port(fd) >= LO + 2 * N && local_port(fd) < LO + 3 * N);
	close(fd);
	su_egress__close(e);
}

/* Ping identifiers on a slice handed here by a live move (issue 10): the
 * decap sends every echo reply of that slice to the previous owner until the
 * deadline, so the library picks none there until the deadline +
 * DECAP_ECHO_QUIET_S + 1 s; TCP and UDP use the slice at once (their flows
 * are told apart by socket). */
static void test_ping_handed(void **state)
{
	enum { M = 16, A = 21504, B = A + M };
	struct sockaddr_in d = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) },
			   du = { .sin_family = AF_INET, .sin_port = htons(9),
				  .sin_addr.s_addr = htonl(0x7f000001) };
	long now = (long)time(NULL);
	int fd, probe = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
	struct su_egress *e;
	char text[512];

	if (probe < 0) {
		print_message("# ping sockets not allowed here (ping_group_range): case not run\n");
		return;
	}
	close(probe);
	/* A handed until a minute from now, B not: every ping lands in B. */
	snprintf(text, sizeof(text),
		 "softunicast-assignment 1\nserial 1\nserver s1\n"
		 "egress 127.0.0.1 %u %u active h=1\nhanded 127.0.0.1 %u %ld\n"
		 "egress 127.0.0.1 %u %u active h=1\n",
		 A, A + M - 1, A, now + 60, B, B + M - 1);
	write_file(text);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	for (int i = 0; i < M; i++) {
		int fds = su_egress__connect(e, "h=1", (struct sockaddr *)&d, sizeof(d), SU_SOCK_PING, 0);

		assert_true(fds >= 0);
		assert_true(local_port(fds) >= B && local_port(fds) < B + M);
		close(fds);
	}
	su_egress__close(e);

	/* Only A, before the deadline and in the quiet time after it: no
	 * identifier (-EADDRNOTAVAIL); UDP takes the slice at once. */
	for (long until = now + 60; until >= now - DECAP_ECHO_QUIET_S; until -= 60 + DECAP_ECHO_QUIET_S) {
		snprintf(text, sizeof(text),
			 "softunicast-assignment 1\nserial 2\nserver s1\n"
			 "egress 127.0.0.1 %u %u active h=1\nhanded 127.0.0.1 %u %ld\n", A, A + M - 1,
			 A, until);
		write_file(text);
		assert_int_equal(su_egress__open(g_path, &e), 0);
		assert_int_equal(su_egress__connect(e, "h=1", (struct sockaddr *)&d, sizeof(d),
						    SU_SOCK_PING, 0), -EADDRNOTAVAIL);
		fd = su_egress__connect(e, "h=1", (struct sockaddr *)&du, sizeof(du), SOCK_DGRAM, 0);
		assert_true(fd >= 0);
		assert_true(local_port(fd) >= A && local_port(fd) < A + M);
		close(fd);
		su_egress__close(e);
	}

	/* Past the quiet time (and its second of margin): the slice's
	 * identifiers are this server's. */
	snprintf(text, sizeof(text),
		 "softunicast-assignment 1\nserial 3\nserver s1\n"
		 "egress 127.0.0.1 %u %u active h=1\nhanded 127.0.0.1 %u %ld\n", A, A + M - 1, A,
		 now - DECAP_ECHO_QUIET_S - 2);
	write_file(text);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	fd = su_egress__connect(e, "h=1", (struct sockaddr *)&d, sizeof(d), SU_SOCK_PING, 0);
	assert_true(fd >= 0);
	assert_true(local_port(fd) >= A && local_port(fd) < A + M);
	close(fd);
	su_egress__close(e);
}

static void test_errors(void **state)
{
	struct su_egress *e;
	struct sockaddr_in d = { .sin_family = AF_INET, .sin_port = htons(9),
				 .sin_addr.s_addr = htonl(0x7f000001) };
	struct sockaddr_in6 d6 = { .sin6_family = AF_INET6 };

	write_file(k_file);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	assert_int_equal(su_egress__connect(e, "country", (struct sockaddr *)&d, sizeof(d),
					    SOCK_STREAM, 0), -EINVAL);
	assert_int_equal(su_egress__connect(e, "service=warp,country=FR", (struct sockaddr *)&d,
					    sizeof(d), SOCK_STREAM, 0), -ESRCH);
	assert_int_equal(su_egress__connect(e, "*", (struct sockaddr *)&d6, sizeof(d6),
					    SOCK_STREAM, 0), -EAFNOSUPPORT);
	assert_int_equal(su_egress__connect(e, "*", (struct sockaddr *)&d, sizeof(d), SOCK_RAW, 0),
			 -EPROTOTYPE);
	assert_int_equal(su_egress__connect(e, "*", (struct sockaddr *)&d, sizeof(d), SOCK_STREAM,
					    0), -ECONNREFUSED);
	su_egress__close(e);

	assert_int_equal(su_egress__open("/nonexistent/assignment", &e), 0);
	assert_int_equal(su_egress__connect(e, "*", (struct sockaddr *)&d, sizeof(d), SOCK_STREAM,
					    0), -ENOENT);
	su_egress__close(e);

	write_file("softunicast-assignment 9\n");
	assert_int_equal(su_egress__open(g_path, &e), 0);
	assert_int_equal(su_egress__connect(e, "*", (struct sockaddr *)&d, sizeof(d), SOCK_STREAM,
					    0), -EPROTONOSUPPORT);
	su_egress__close(e);
	assert_non_null(strstr(su_strerror(-ESRCH), "matches the tags"));
}

/* A replaced file applies to the next connection; counters follow slices. */
static void test_reload_and_counters(void **state)
{
	struct su_egress *e;
	struct su_assignment *a;
	struct su_counters c;
	struct sockaddr_in d;
	int l = listener(SOCK_STREAM, &d), fd;

	write_file(k_file);
	assert_int_equal(su_assignment__load(g_path, &a, NULL), 0);
	assert_int_equal(su_counters__publish(g_path, a), 0);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	fd = su_egress__connect(e, "service=cdn", (struct sockaddr *)&d, sizeof(d), SOCK_STREAM, 0);
	assert_true(fd >= 0 && local_port(fd) >= LO + 2 * N);
	close_all(&fd, 1);

	a->v[2].lo = (uint16_t)(LO + 3 * N);
	a->v[2].hi = (uint16_t)(LO + 4 * N - 1);
	assert_int_equal(su_assignment__write(a, g_path, NULL), 0);
	usleep(300 * 1000);
	fd = su_egress__connect(e, "service=cdn", (struct sockaddr *)&d, sizeof(d), SOCK_STREAM, 0);
	assert_true(fd >= 0 && local_port(fd) >= LO + 3 * N);
	close_all(&fd, 1);
	su_egress__close(e);

	assert_int_equal(su_counters__open(g_path, &c), 0);
	assert_int_equal(c.n, 6);
	assert_int_equal(su_counters__find(&c, 0x7f000001, (uint16_t)(LO + 2 * N))->connects, 1);
	su_counters__close(&c);
	su_assignment__free(a);
	close(l);
}

static void test_connect_fd(void **state)
{
	struct su_egress *e;
	struct sockaddr_in d;
	int l = listener(SOCK_STREAM, &d), fd = socket(AF_INET, SOCK_STREAM, 0);

	write_file(k_file);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	assert_int_equal(su_egress__connect_fd(e, fd, "service=warp", (struct sockaddr *)&d,
					       sizeof(d), 0), 0);
	assert_true(local_port(fd) >= LO && local_port(fd) < LO + N);
	close_all(&fd, 1);
	su_egress__close(e);
	close(l);
}

/* An exhausted slice moves an existing socket on to the next matching IP
 * (here: the same IP's other slice with the same tags). */
static void test_connect_fd_failover(void **state)
{
	struct su_egress *e;
	struct sockaddr_in d;
	int l = listener(SOCK_STREAM, &d), fds[2 * N + 1];

	write_file(k_file);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	for (int i = 0; i < 2 * N + 1; i++) {
		int rc;

		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		rc = su_egress__connect_fd(e, fds[i], "pair=1", (struct sockaddr *)&d, sizeof(d), 0);
		assert_int_equal(rc, i < 2 * N ? 0 : -EADDRNOTAVAIL);
		if (!rc)
			assert_true(local_port(fds[i]) >= LO - 2 * N && local_port(fds[i]) < LO);
	}
	close_all(fds, 2 * N + 1);
	su_egress__close(e);
	close(l);
}


/* ---- the caller's socket: every family and strategy ------------------- */

static uint16_t any_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t l = sizeof(a);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

static struct sockaddr_in6 mapped(const struct sockaddr_in *d)
{
	struct sockaddr_in6 m = { .sin6_family = AF_INET6, .sin6_port = d->sin_port };

	m.sin6_addr.s6_addr[10] = m.sin6_addr.s6_addr[11] = 0xff;
	memcpy(&m.sin6_addr.s6_addr[12], &d->sin_addr, 4);
	return m;
}

/* An AF_INET6 socket reaching IPv4 through ::ffff:a.b.c.d, as Java and most
 * dual-stack runtimes do: bound to ::ffff:egress-IP inside the slice, for
 * TCP with every strategy and for UDP; pure IPv6 and V6ONLY refused. */
static void test_ipv4_mapped_v6(void **state)
{
	static const int strategies[] = { SU_STRATEGY_RANGE, SU_STRATEGY_WINDOW, SU_STRATEGY_STR };
	struct sockaddr_in d, du;
	struct sockaddr_in6 m, mu, v6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct su_egress *e;
	int l = listener(SOCK_STREAM, &d), lu = listener(SOCK_DGRAM, &du), fd, one = 1;

	write_file(k_file);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	m = mapped(&d);
	mu = mapped(&du);
	for (unsigned i = 0; i < 3; i++) {
		fd = socket(AF_INET6, SOCK_STREAM, 0);
		assert_int_equal(su_egress__connect_fd(e, fd, "service=warp", (struct sockaddr *)&m,
						       sizeof(m), SU_F_STRATEGY(strategies[i])), 0);
		assert_in_range(any_port(fd), LO, LO + N - 1);
		close_all(&fd, 1);
	}
	fd = socket(AF_INET6, SOCK_DGRAM, 0);
	assert_int_equal(su_egress__connect_fd(e, fd, "service=warp", (struct sockaddr *)&mu,
					       sizeof(mu), 0), 0);
	assert_in_range(any_port(fd), LO, LO + N - 1);
	close(fd);
	/* the library's own sockets take the mapped form too */
	fd = su_egress__connect(e, "service=warp", (struct sockaddr *)&m, sizeof(m), SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_in_range(local_port(fd), LO, LO + N - 1);
	close_all(&fd, 1);
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	assert_int_equal(su_egress__connect_fd(e, fd, "service=warp", (struct sockaddr *)&v6,
					       sizeof(v6), 0), -EAFNOSUPPORT);
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	assert_int_equal(su_egress__connect_fd(e, fd, "service=warp", (struct sockaddr *)&m,
					       sizeof(m), 0), -ENETUNREACH);
	close(fd);
	su_egress__close(e);
	close(l);
	close(lu);
}

/* An unconnected UDP socket gets a port of its own in the slice: no other
 * socket holds it (it may hear from any peer), and a datagram leaves from it. */
static void test_unconnected_udp_bind(void **state)
{
	struct sockaddr_in d, from;
	struct sockaddr_in6 m;
	socklen_t fl = sizeof(from);
	struct su_egress *e;
	int l = listener(SOCK_DGRAM, &d), fds[N], tcp = socket(AF_INET, SOCK_STREAM, 0);
	uint64_t seen = 0;
	char b;

	write_file(k_file);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	for (int i = 0; i < N; i++) {
		uint16_t p;

		fds[i] = socket(i % 2 ? AF_INET6 : AF_INET, SOCK_DGRAM, 0);
		assert_int_equal(su_egress__bind_fd(e, fds[i], "service=warp", 0), 0);
		p = any_port(fds[i]);
		assert_in_range(p, LO, LO + N - 1);
		assert_false(seen >> (p - LO) & 1);
		seen |= 1ull << (p - LO);
	}
	close(fds[0]);
	fds[0] = socket(AF_INET, SOCK_DGRAM, 0);
	m = mapped(&d); /* fds[1] is a dual-stack AF_INET6 socket */
	assert_int_equal(sendto(fds[1], "x", 1, 0, (struct sockaddr *)&m, sizeof(m)), 1);
	assert_int_equal(recvfrom(l, &b, 1, 0, (struct sockaddr *)&from, &fl), 1);
	assert_int_equal(ntohs(from.sin_port), any_port(fds[1]));
	/* one port was freed by closing fds[0]; a fresh socket takes it, then none */
	assert_int_equal(su_egress__bind_fd(e, fds[0], "service=warp", 0), 0);
	{
		int more = socket(AF_INET, SOCK_DGRAM, 0);

		assert_int_equal(su_egress__bind_fd(e, more, "service=warp", 0), -EADDRNOTAVAIL);
		assert_int_equal(any_port(more), 0);
		close(more);
	}
	assert_int_equal(su_egress__bind_fd(e, tcp, "service=warp", 0), -EPROTOTYPE);
	close(tcp);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	close(l);
	su_egress__close(e);
}

struct opts_seen {
	int nodelay, keepalive, sndbuf, rcvbuf, tos, mark;
	uint64_t cookie;
};

static int get_int(int fd, int level, int opt)
{
	int v = -1;
	socklen_t l = sizeof(v);

	assert_int_equal(getsockopt(fd, level, opt, &v, &l), 0);
	return v;
}

static struct opts_seen read_opts(int fd)
{
	struct opts_seen o = {
		.nodelay = get_int(fd, IPPROTO_TCP, TCP_NODELAY),
		.keepalive = get_int(fd, SOL_SOCKET, SO_KEEPALIVE),
		.sndbuf = get_int(fd, SOL_SOCKET, SO_SNDBUF),
		.rcvbuf = get_int(fd, SOL_SOCKET, SO_RCVBUF),
		.tos = get_int(fd, IPPROTO_IP, IP_TOS),
		.mark = get_int(fd, SOL_SOCKET, SO_MARK),
	};
	socklen_t l = sizeof(o.cookie);

	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &o.cookie, &l), 0);
	return o;
}

static int configured_socket(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1, buf = 65536, tos = IPTOS_LOWDELAY,
	    mark = 42;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
	setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)); /* root only: then compared */
	return fd;
}

/* Options set before connect() survive every strategy, also when the port
 * search must retry (the slice nearly full toward dst) and when it moves on
 * to the next matching IP: the same socket (SO_COOKIE) comes out connected. */
static void test_options_survive_str(void **state)
{
	static const int strategies[] = { SU_STRATEGY_STR, SU_STRATEGY_RANGE, SU_STRATEGY_WINDOW };
	struct su_egress *e;
	struct sockaddr_in d;
	int l = listener(SOCK_STREAM, &d), held[2 * N];

	write_file(k_file);
	assert_int_equal(su_egress__open(g_path, &e), 0);
	for (unsigned s = 0; s < 3; s++) {
		int n = 0;

		/* "pair=1": two slices; fill the first but one port, then more */
		for (; n < 2 * N - 1; n++) {
			int fd = configured_socket();
			struct opts_seen before = read_opts(fd), after;

			assert_int_equal(su_egress__connect_fd(e, fd, "pair=1", (struct sockaddr *)&d,
							       sizeof(d), SU_F_STRATEGY(strategies[s])),
					 0);
			after = read_opts(fd);
			assert_memory_equal(&before, &after, sizeof(before));
			assert_int_equal(after.nodelay, 1);
			assert_int_equal(after.tos, IPTOS_LOWDELAY);
			assert_in_range(local_port(fd), LO - 2 * N, LO - 1);
			held[n] = fd;
		}
		{
			int fd = configured_socket();
			struct opts_seen before = read_opts(fd), after;

			assert_int_equal(su_egress__connect_fd(e, fd, "pair=1", (struct sockaddr *)&d,
							       sizeof(d), SU_F_STRATEGY(strategies[s])),
					 0);
			after = read_opts(fd);
			assert_memory_equal(&before, &after, sizeof(before));
			held[n++] = fd;
			fd = configured_socket();
			assert_int_equal(su_egress__connect_fd(e, fd, "pair=1", (struct sockaddr *)&d,
							       sizeof(d), SU_F_STRATEGY(strategies[s])),
					 -EADDRNOTAVAIL);
			assert_int_equal(any_port(fd), 0); /* still the caller's, unbound */
			close(fd);
		}
		close_all(held, n);
	}
	su_egress__close(e);
	close(l);
}

/* Pre-forked workers: each child draws its own ports, not its parent's. */
static void test_ports_differ_across_fork(void **state)
{
	enum { WORKERS = 4, DRAWS = 8 };
	uint32_t seq[WORKERS][DRAWS];
	int p[2];

	(void)su_port__random(); /* the parent's generator is seeded before fork */
	assert_int_equal(pipe(p), 0);
	for (int w = 0; w < WORKERS; w++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (!pid) {
			uint32_t v[DRAWS + 1] = { (uint32_t)w };

			for (int i = 0; i < DRAWS; i++)
				v[i + 1] = su_port__random();
			_exit(write(p[1], v, sizeof(v)) == sizeof(v) ? 0 : 1);
		}
	}
	for (int w = 0; w < WORKERS; w++) {
		uint32_t v[DRAWS + 1];
		int st;

		assert_int_equal(read(p[0], v, sizeof(v)), sizeof(v));
		memcpy(seq[v[0]], v + 1, sizeof(seq[0]));
		wait(&st);
		assert_int_equal(st, 0);
	}
	close(p[0]);
	close(p[1]);
	for (int a = 0; a < WORKERS; a++)
		for (int b = a + 1; b < WORKERS; b++)
			assert_memory_not_equal(seq[a], seq[b], sizeof(seq[a]));
}

/* ---- ping identifiers across IPs (in a private netns, as root) ---------- */

static int netns_ping_setup(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd, rc;
	FILE *f;

	if (unshare(CLONE_NEWNET))
		return -1;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	rc = fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) ? -1 : 0;
	ifr.ifr_flags |= IFF_UP;
	if (!rc)
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	close(fd);
	f = fopen("/proc/sys/net/ipv4/ping_group_range", "w");
	if (!f)
		return -1;
	fputs("0 2147483647\n", f);
	return fclose(f) || rc ? -1 : 0;
}

static int echo_roundtrip(int fd, uint16_t seq)
{
	struct icmphdr req = { .type = ICMP_ECHO, .un.echo.sequence = htons(seq) }, rep;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (send(fd, &req, sizeof(req), 0) != sizeof(req))
		return -1;
	while (poll(&p, 1, 1000) > 0) {
		if (recv(fd, &rep, sizeof(rep), 0) < (ssize_t)sizeof(rep))
			return -1;
		if (rep.type == ICMP_ECHOREPLY)
			return ntohs(rep.un.echo.sequence) == seq ? 0 : -2;
	}
	return -3;
}

/* Child: the same slice on 127.0.0.1 and 127.0.0.2.  Every identifier is
 * usable on each IP (no false "exhausted" though the kernel keys ping binds
 * per host), unique per IP, and each socket gets its own echo replies.
 * Returns a step number on failure. */
static int ping_ids_child(void)
{
	enum { M = 16 };
	struct sockaddr_in d = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	unsigned lo = 20480;
	char text[512];
	int fds[2 * M], n = 0, extra;
	uint32_t per_ip[2] = { 0 };
	struct su_egress *e;

	if (netns_ping_setup())
		return 100;
	snprintf(text, sizeof(text),
		 "softunicast-assignment 1\nserial 1\nserver s1\n"
		 "egress 127.0.0.1 %u %u active ping=1\negress 127.0.0.2 %u %u active ping=1\n",
		 lo, lo + M - 1, lo, lo + M - 1);
	write_file(text);
	if (su_egress__open(g_path, &e))
		return 1;
	for (; n < 2 * M; n++) {
		struct sockaddr_in a;
		socklen_t l = sizeof(a);
		unsigned ip;

		fds[n] = su_egress__connect(e, "ping=1", (struct sockaddr *)&d, sizeof(d),
					    SU_SOCK_PING, 0);
		if (fds[n] < 0)
			return 2; /* a false "exhausted" */
		if (getsockname(fds[n], (struct sockaddr *)&a, &l))
			return 3;
		ip = ntohl(a.sin_addr.s_addr) & 3;
		if (ip < 1 || ntohs(a.sin_port) < lo || ntohs(a.sin_port) >= lo + M)
			return 4;
		if (per_ip[ip - 1] >> (ntohs(a.sin_port) - lo) & 1)
			return 5; /* an identifier clash on one IP */
		per_ip[ip - 1] |= 1u << (ntohs(a.sin_port) - lo);
	}
	extra = su_egress__connect(e, "ping=1", (struct sockaddr *)&d, sizeof(d), SU_SOCK_PING, 0);
	if (extra != -EADDRNOTAVAIL)
		return 6;
	for (int i = 0; i < n; i++)
		if (echo_roundtrip(fds[i], (uint16_t)(i + 1)))
			return 7; /* a reply went to the other IP's socket */
	for (int i = 0; i < n; i++)
		close(fds[i]);
	su_egress__close(e);
	return 0;
}

static void test_ping_ids_across_ips(void **state)
{
	pid_t pid;
	int st;

	if (geteuid()) {
		print_message("# not root: no private netns for ping sockets, case not run\n");
		return;
	}
	pid = fork();
	assert_true(pid >= 0);
	if (!pid)
		_exit(ping_ids_child());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st))
		fail_msg("ping ids across IPs: step %d failed", WEXITSTATUS(st));
}

static void test_strategy_names(void **state)
{
	for (int s = 0; s <= SU_STRATEGY_MAX; s++)
		assert_int_equal(su_strategy__parse(su_strategy__name(s)), s);
	assert_int_equal(su_strategy__parse("fast"), -EINVAL);
	assert_int_not_equal(su_strategy__resolve(SU_STRATEGY_AUTO), SU_STRATEGY_AUTO);
}

static int setup(void **state)
{
	int fd = mkstemp(g_path);

	if (fd < 0)
		return -1;
	close(fd);
	make_file();
	return 0;
}

static int teardown(void **state)
{
	char c[sizeof(g_path) + 16];

	unlink(g_path);
	snprintf(c, sizeof(c), "%s.counters", g_path);
	unlink(c);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_roundtrip),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_handed),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_tcp_range),
		cmocka_unit_test(test_tcp_outside),
		cmocka_unit_test(test_tcp_window),
		cmocka_unit_test(test_tcp_str),
		cmocka_unit_test(test_tcp_auto),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_udp_guard),
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_ping_handed),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_reload_and_counters),
		cmocka_unit_test(test_connect_fd),
		cmocka_unit_test(test_connect_fd_failover),
		cmocka_unit_test(test_ipv4_mapped_v6),
		cmocka_unit_test(test_unconnected_udp_bind),
		cmocka_unit_test(test_options_survive_str),
		cmocka_unit_test(test_ports_differ_across_fork),
		cmocka_unit_test(test_ping_ids_across_ips),
		cmocka_unit_test(test_strategy_names),
	};

	/* A network namespace of its own (as root), so two runs side by side
	 * (make check and make asan, two checkouts) never share loopback ports:
	 * they fill the same slice ports, and UDP saw the other's sockets. */
	if (geteuid() == 0 && netns_ping_setup())
		fprintf(stderr, "# test_egress: no private network namespace, using the current one\n");
	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
