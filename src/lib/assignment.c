/* Reading and writing the local assignment file (see assignment.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bpf/decap_abi.h"
#include "lib/assignment.h"
#include "lib/tags.h"
#include "lib/util.h"

const char *su_assignment__path(void)
{
	const char *p = getenv(SU_ASSIGNMENT_ENV);

	return p && *p ? p : SU_ASSIGNMENT_PATH;
}

const char *su_slice_state__str(uint8_t state)
{
	switch (state) {
	case SU_SLICE_ACTIVE:
		return "active";
	case SU_SLICE_DRAINING:
		return "draining";
	}
	return "unknown";
}

static int parse_state(const char *s, uint8_t *out)
{
	if (!strcmp(s, "active"))
		*out = SU_SLICE_ACTIVE;
	else if (!strcmp(s, "draining"))
		*out = SU_SLICE_DRAINING;
	else
		return -EINVAL;
	return 0;
}

/* Plain decimal, as the agent writes it (util.h: one rule for every number). */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	return su_uint__parse(s, max, out) ? -EINVAL : 0;
}

static int parse_ip(const char *s, uint32_t *out)
{
	struct in_addr a;

	if (inet_pton(AF_INET, s, &a) != 1)
		return -EINVAL;
	*out = ntohl(a.s_addr);
	return 0;
}

int su_assignment__add(struct su_assignment *a, uint32_t ip, uint16_t lo, uint16_t hi,
		       uint8_t state, const char *tags)
{
	struct su_assignment_entry *v;
	struct su_tags set;

	if (a->n >= SU_ASSIGNMENT_MAX)
		return -E2BIG;
	v = realloc(a->v, (a->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	a->v = v;
	if (su_tags__parse(tags && *tags ? tags : "-", &set, NULL))
		return -EINVAL;
	v[a->n] = (struct su_assignment_entry){ .ip = ip, .lo = lo, .hi = hi, .state = state,
						.tags = strdup(tags && *tags ? tags : "-"), .set = set };
	if (!v[a->n].tags) {
		su_tags__free(&set);
		return -ENOMEM;
	}
	a->n++;
	return 0;
}

int su_assignment__hand(struct su_assignment *a, uint32_t ip, uint16_t lo, int64_t until)
{
	for (uint32_t i = 0; i < a->n; i++) {
		if (a->v[i].ip == ip && a->v[i].lo == lo) {
			a->v[i].handed_until = until;
			return 0;
		}
	}
	return -ENOENT;
}

/* One second past the decap's quiet time: the agent converts the deadline
 * to CLOCK_BOOTTIME for the decap, the library reads CLOCK_REALTIME, and the
 * two must never disagree on whose an echo reply is. */
bool su_assignment__echo_quiet(const struct su_assignment_entry *e, int64_t now)
{
	return e->handed_until && now < e->handed_until + DECAP_ECHO_QUIET_S + 1;
}

/* "handed IP LO UNTIL" with the keyword consumed: its egress line first. */
static int parse_handed(struct su_assignment *a, char **f, int nf, const char *name, int line,
			struct su_err *err)
{
	uint32_t ip;
	uint64_t lo, until;

	if (nf != 3)
		return su_err__set(err, EINVAL, "%s:%d: handed wants IP LO UNTIL", name, line);
	if (parse_ip(f[0], &ip))
		return su_err__set(err, EINVAL, "%s:%d: bad handed address '%s'", name, line, f[0]);
	if (parse_u64(f[1], 65535, &lo))
		return su_err__set(err, EINVAL, "%s:%d: bad handed port '%s'", name, line, f[1]);
	if (parse_u64(f[2], INT64_MAX / 2, &until) || !until)
		return su_err__set(err, EINVAL, "%s:%d: bad handed deadline '%s'", name, line, f[2]);
	if (su_assignment__hand(a, ip, (uint16_t)lo, (int64_t)until))
		return su_err__set(err, EINVAL, "%s:%d: handed %s %s follows no egress line of that slice",
				   name, line, f[0], f[1]);
	return 0;
}

/* "egress IP LO HI STATE TAGS" with the keyword already consumed. */
static int parse_egress(struct su_assignment *a, char **f, int nf, const char *name, int line,
			struct su_err *err)
{
	uint32_t ip;
	uint64_t lo, hi;
	uint8_t state;

	if (nf != 5)
		return su_err__set(err, EINVAL, "%s:%d: egress wants IP LO HI STATE TAGS", name, line);
	if (parse_ip(f[0], &ip))
		return su_err__set(err, EINVAL, "%s:%d: bad egress address '%s'", name, line, f[0]);
	if (parse_u64(f[1], 65535, &lo) || parse_u64(f[2], 65535, &hi) || lo > hi || lo == 0)
		return su_err__set(err, EINVAL, "%s:%d: bad port range '%s %s'", name, line, f[1],
				   f[2]);
	if (parse_state(f[3], &state))
		return su_err__set(err, EINVAL, "%s:%d: bad state '%s'", name, line, f[3]);
	if (strcmp(f[4], "-") && su_assignment__check_tags(f[4], NULL))
		return su_err__set(err, EINVAL, "%s:%d: bad tags '%s'", name, line, f[4]);
	for (uint32_t i = 0; i < a->n; i++)
		if (a->v[i].ip == ip && a->v[i].lo <= hi && lo <= a->v[i].hi)
			return su_err__set(err, EINVAL, "%s:%d: slice %s %s overlaps another", name,
					   line, f[1], f[2]);
	if (su_assignment__add(a, ip, lo, hi, state, f[4]))
		return su_err__set(err, ENOMEM, "%s:%d: out of memory", name, line);
	return 0;
}

static int split_fields(char *s, char **f, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *t = strtok_r(s, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == max)
			return max + 1;
		f[n++] = t;
	}
	return n;
}

static int parse_header(struct su_assignment *a, char **f, int nf, const char *name,
			struct su_err *err)
{
	uint64_t v;

	if (nf != 2 || strcmp(f[0], SU_ASSIGNMENT_MAGIC))
		return su_err__set(err, EINVAL, "%s: not a softunicast assignment file", name);
	if (parse_u64(f[1], UINT32_MAX, &v) || v == 0)
		return su_err__set(err, EINVAL, "%s: bad format version '%s'", name, f[1]);
	if (v != SU_ASSIGNMENT_FORMAT)
		return su_err__set(err, EPROTONOSUPPORT,
				   "%s: assignment format %" PRIu64 " (this library reads %d)", name,
				   v, SU_ASSIGNMENT_FORMAT);
	a->format = (uint32_t)v;
	return 0;
}

static int parse_record(struct su_assignment *a, char **f, int nf, const char *name, int line,
			struct su_err *err)
{
	uint64_t v;

	if (!strcmp(f[0], "egress"))
		return parse_egress(a, f + 1, nf - 1, name, line, err);
	if (!strcmp(f[0], "handed"))
		return parse_handed(a, f + 1, nf - 1, name, line, err);
	if (!strcmp(f[0], "serial") || !strcmp(f[0], "updated")) {
		if (nf != 2 || parse_u64(f[1], INT64_MAX, &v))
			return su_err__set(err, EINVAL, "%s:%d: bad %s", name, line, f[0]);
		if (f[0][0] == 's')
			a->serial = v;
		else
			a->updated = (int64_t)v;
		return 0;
	}
	if (!strcmp(f[0], "server")) {
		if (nf != 2 || strlen(f[1]) >= sizeof(a->server))
			return su_err__set(err, EINVAL, "%s:%d: bad server name", name, line);
		strcpy(a->server, f[1]);
		return 0;
	}
	return 0; /* unknown records are for newer readers: skip */
}

static int parse_lines(struct su_assignment *a, char *text, const char *name, struct su_err *err)
{
	char *save = NULL, *f[8];
	int line = 0, rc;

	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		int nf;

		line++;
		if (*l == '#')
			continue;
		nf = split_fields(l, f, 7);
		if (nf == 0)
			continue;
		if (!a->format)
			rc = parse_header(a, f, nf, name, err);
		else
			rc = parse_record(a, f, nf, name, line, err);
		if (rc)
			return rc;
	}
	if (!a->format)
		return su_err__set(err, EINVAL, "%s: empty assignment file", name);
	return 0;
}

int su_assignment__parse(const char *buf, size_t len, struct su_assignment **out,
			 struct su_err *err)
{
	struct su_assignment *a = calloc(1, sizeof(*a));
	char *text = malloc(len + 1);
	int rc;

	if (!a || !text) {
		free(a);
		free(text);
		return su_err__set(err, ENOMEM, "out of memory");
	}
	memcpy(text, buf, len);
	text[len] = 0;
	rc = parse_lines(a, text, "assignment", err);
	free(text);
	if (rc) {
		su_assignment__free(a);
		return rc;
	}
	*out = a;
	return 0;
}

static int read_all(int fd, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb = cap > (1u << 24) ? NULL : realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				return -EFBIG;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return -errno;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*len = n;
	return 0;
}

int su_assignment__load(const char *path, struct su_assignment **out, struct su_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno;
		return su_err__set(err, rc, "%s: %s%s", path, strerror(rc),
				   rc == ENOENT ? " (is the softunicast agent running?)" : "");
	}
	rc = read_all(fd, &buf, &len);
	close(fd);
	if (rc)
		return su_err__set(err, -rc, "%s: %s", path, strerror(-rc));
	rc = su_assignment__parse(buf, len, out, err);
	free(buf);
	if (rc && err) {
		char msg[sizeof(err->msg)];

		/* parse() names the buffer "assignment"; name the real file. */
		snprintf(msg, sizeof(msg), "%s%s", path, err->msg + strlen("assignment"));
		memcpy(err->msg, msg, sizeof(msg));
	}
	return rc;
}

static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		int n;

		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if ((size_t)n < *cap - *len) {
			*len += (size_t)n;
			return 0;
		}
		char *nb = realloc(*buf, *cap * 2 + (size_t)n);

		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = *cap * 2 + (size_t)n;
	}
}

char *su_assignment__format(const struct su_assignment *a)
{
	size_t len = 0, cap = 512;
	char *buf = malloc(cap);
	int rc;

	if (!buf)
		return NULL;
	rc = append(&buf, &len, &cap,
		    "# softunicast assignment, published by `softunicast agent`; do not edit.\n"
		    "%s %d\nserial %" PRIu64 "\nserver %s\nupdated %" PRId64 "\n",
		    SU_ASSIGNMENT_MAGIC, SU_ASSIGNMENT_FORMAT, a->serial,
		    a->server[0] ? a->server : "-", a->updated);
	for (uint32_t i = 0; !rc && i < a->n; i++) {
		const struct su_assignment_entry *e = &a->v[i];
		struct in_addr in = { htonl(e->ip) };
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &in, ip, sizeof(ip));
		rc = append(&buf, &len, &cap, "egress %s %u %u %s %s\n", ip, e->lo, e->hi,
			    su_slice_state__str(e->state), e->tags);
		if (!rc && e->handed_until)
			rc = append(&buf, &len, &cap, "handed %s %u %" PRId64 "\n", ip, e->lo,
				    e->handed_until);
	}
	if (rc) {
		free(buf);
		return NULL;
	}
	return buf;
}

int su_assignment__write(const struct su_assignment *a, const char *path, struct su_err *err)
{
	char *text = su_assignment__format(a), tmp[4096];
	int fd, rc;

	if (!text)
		return su_err__set(err, ENOMEM, "out of memory");
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp)) {
		free(text);
		return su_err__set(err, ENAMETOOLONG, "%s: path too long", path);
	}
	/* 0644: applications of any user read it; only the agent writes. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		free(text);
		return su_err__set(err, -rc, "%s: %s", tmp, strerror(-rc));
	}
	rc = su_write_full(fd, text, strlen(text));
	if (!rc && fsync(fd))
		rc = -errno;
	if (close(fd) && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path))
		rc = -errno;
	free(text);
	if (rc) {
		unlink(tmp);
		return su_err__set(err, -rc, "%s: %s", path, strerror(-rc));
	}
	return 0;
}

void su_assignment__free(struct su_assignment *a)
{
	if (!a)
		return;
	for (uint32_t i = 0; i < a->n; i++) {
		free(a->v[i].tags);
		su_tags__free(&a->v[i].set);
	}
	free(a->v);
	free(a);
}

/* ---- tag queries ------------------------------------------------------ */

/* Tags use the one canonical form of src/lib/tags.c ("k=v,k=v", values
 * percent-escaped); '*' asks for any egress. */
int su_assignment__check_tags(const char *want, struct su_err *err)
{
	struct su_tags t;
	struct su_err e;
	int ret;

	if (!want || !*want)
		return su_err__set(err, EINVAL, "empty tag query (use '*' for any egress)");
	if (!strcmp(want, "*"))
		return 0;
	ret = su_tags__parse(want, &t, &e);
	su_tags__free(&t);
	if (ret)
		return su_err__set(err, EINVAL, "bad tags '%s': %s (want key=value,..., key in [a-z0-9_-])",
				   want, e.msg);
	return 0;
}

bool su_assignment__tags_match(const char *have, const char *want)
{
	struct su_tags h, w;
	bool match;

	if (!strcmp(want, "*"))
		return true;
	if (su_tags__parse(want, &w, NULL))
		return false;
	if (su_tags__parse(have, &h, NULL)) {
		su_tags__free(&w);
		return false;
	}
	match = su_tags__contains(&h, &w);
	su_tags__free(&h);
	su_tags__free(&w);
	return match;
}
