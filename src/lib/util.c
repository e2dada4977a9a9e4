#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
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
