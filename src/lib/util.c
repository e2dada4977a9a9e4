#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/util.h"

int su_read_all(FILE *fp, char **buf, size_t *len)
{
	struct stat st;
	size_t cap = 1 << 16, n = 0;
	char *b;

	/* A regular file's size is known: one allocation, not a doubling chain
	 * that would hold a large plan almost twice. */
	if (!fstat(fileno(fp), &st) && S_ISREG(st.st_mode) && st.st_size > 0)
		cap = (size_t)st.st_size + 2;
	b = malloc(cap);

	if (!b)
		return -ENOMEM;
	for (;;) {
		size_t got = fread(b + n, 1, cap - n - 1, fp);

		n += got;
		if (n + 1 < cap)
			break;
		cap *= 2;
		char *nb = realloc(b, cap);

		if (!nb) {
			free(b);
			return -ENOMEM;
		}
		b = nb;
	}
	if (ferror(fp)) {
		free(b);
		return -EIO;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

int su_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int su_read_file(const char *path, char **buf, size_t *len, struct su_err *err)
{
	FILE *fp = fopen(path, "r");
	int ret;

	if (!fp)
		return su_err__set(err, errno, "%s: %s", path, strerror(errno));
	ret = su_read_all(fp, buf, len);
	fclose(fp);
	if (ret)
		return su_err__set(err, -ret, "%s: read failed: %s", path, strerror(-ret));
	return 0;
}

int su_read_file_max(const char *path, size_t max, const char *what, char **buf, size_t *len,
		     struct su_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0, cap;
	struct stat st;
	char *b;

	if (fd < 0)
		return su_err__set(err, errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		close(fd);
		return su_err__set(err, EFBIG, "%s: %jd bytes: %s may have at most %zu", path,
				   (intmax_t)st.st_size, what, max);
	}
	cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 2 : 1 << 16;
	b = malloc(cap);
	while (b) {
		ssize_t got = read(fd, b + n, cap - n - 1);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			if (got < 0) {
				int e = errno;

				free(b);
				close(fd);
				return su_err__set(err, e, "%s: read failed: %s", path, strerror(e));
			}
			break;
		}
		n += (size_t)got;
		if (n > max) {
			free(b);
			close(fd);
			return su_err__set(err, EFBIG, "%s: more than %zu bytes: %s may have at most %zu", path,
					   max, what, max);
		}
		if (n + 1 == cap) {
			char *nb = realloc(b, cap * 2);

			if (!nb)
				free(b);
			b = nb;
			cap *= 2;
		}
	}
	close(fd);
	if (!b)
		return su_err__set(err, ENOMEM, "%s: out of memory", path);
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, ret = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	free(copy);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

int su_write_atomic(const char *path, int (*write_fn)(FILE *fp, const void *arg), const void *arg)
{
	size_t n = strlen(path) + 16;
	char *tmp = malloc(n);
	FILE *fp = NULL;
	int fd, ret;

	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, n, "%s.XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		ret = -errno;
		goto cleanup;
	}
	fp = fdopen(fd, "w");
	if (!fp) {
		ret = -errno;
		close(fd);
		goto cleanup;
	}
	ret = write_fn(fp, arg);
	if (!ret && (fflush(fp) || fsync(fileno(fp))))
		ret = -errno;
	if (!ret && fchmod(fileno(fp), 0644))
		ret = -errno;
	if (fclose(fp) && !ret)
		ret = -errno;
	fp = NULL;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (!ret)
		ret = fsync_dir_of(path);
cleanup:
	if (ret && fd >= 0)
		unlink(tmp);
	free(tmp);
	return ret;
}

static bool all_digits(const char *s, const char *extra)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(*s >= '0' && *s <= '9') && !(extra && strchr(extra, *s)))
			return false;
	return true;
}

static bool has_digit(const char *s)
{
	return strpbrk(s, "0123456789") != NULL;
}

/* The number forms of YAML 1.1 (yaml.org/type/int.html, float.html) and
 * 1.2 (core schema) that are not plain decimal. */
const char *su_number__ambiguity(const char *s)
{
	const char *body = s;

	if (!s || !*s)
		return NULL;
	if (*s == '-')
		return su_number__ambiguity(s + 1); /* "-5" is just negative: out of range */
	if (*s == '+') {
		body = s + 1;
		if (su_number__ambiguity(body) || all_digits(body, NULL) || all_digits(body, "._eE"))
			return "a sign: YAML 1.1 reads '+5' as 5; write the number without it";
	}
	if (body[0] == '0' && (body[1] == 'x' || body[1] == 'X') && body[2])
		return "a hexadecimal prefix: YAML reads '0x10' as 16; write decimal";
	if (body[0] == '0' && (body[1] == 'o' || body[1] == 'O') && body[2])
		return "an octal prefix: YAML 1.2 reads '0o10' as 8; write decimal";
	if (body[0] == '0' && (body[1] == 'b' || body[1] == 'B') && body[2] && all_digits(body + 2, "_"))
		return "a binary prefix: YAML 1.1 reads '0b10' as 2; write decimal";
	if (!strcasecmp(body, ".inf") || !strcasecmp(body, ".nan"))
		return "a YAML float (.inf, .nan)";
	if (!has_digit(body))
		return NULL;
	if (all_digits(body, ":_") && strchr(body, ':') && body[0] != ':')
		return "a sexagesimal form: YAML 1.1 reads '1:30' as 90 (base 60); write decimal";
	if (all_digits(body, "_") && strchr(body, '_'))
		return "a digit separator: YAML 1.1 reads '1_000' as 1000, YAML 1.2 as a string; write 1000";
	if (all_digits(body, "._eE+-") && (strchr(body, '.') || strpbrk(body, "eE")) &&
	    strchr("0123456789.", body[0]))
		return "a float: YAML reads '.5', '1.0' and '1e3' as floating point; write a whole decimal number";
	if (body[0] == '0' && all_digits(body, NULL) && body[1])
		return "a leading zero: YAML 1.1 reads '010' as octal 8, YAML 1.2 as 10; write it without the zero";
	return NULL;
}

uint64_t su_fnv1a64(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

int su_uint__parse(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	if (su_number__ambiguity(s))
		return -EDOM;
	if (!all_digits(s, NULL))
		return -EINVAL;
	for (; *s; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}
