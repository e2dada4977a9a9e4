/* libsoftunicast egress: assignment file, tag queries, and real sockets on
 * loopback for every port selection strategy (no root needed). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "softunicast/egress.h"
#include "lib/assignment.h"
#include "lib/counters.h"

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
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_tcp_range),
		cmocka_unit_test(test_tcp_outside),
		cmocka_unit_test(test_tcp_window),
		cmocka_unit_test(test_tcp_str),
		cmocka_unit_test(test_tcp_auto),
		cmocka_unit_test(test_udp),
		cmocka_unit_test(test_udp_guard),
		cmocka_unit_test(test_ping),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_reload_and_counters),
		cmocka_unit_test(test_connect_fd),
		cmocka_unit_test(test_connect_fd_failover),
		cmocka_unit_test(test_strategy_names),
	};

	cmocka_set_message_output(CM_OUTPUT_TAP);
	return cmocka_run_group_tests(tests, setup, teardown);
}
