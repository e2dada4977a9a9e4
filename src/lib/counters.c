/* Shared per-slice counters (see counters.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/counters.h"

int su_counters__path(const char *assignment, char *buf, size_t size)
{
	if ((size_t)snprintf(buf, size, "%s.counters", assignment) >= size)
		return -ENAMETOOLONG;
	return 0;
}

static int map_fd(int fd, int prot, struct su_counters *c)
{
	struct stat st;
	const struct su_counters_hdr *h;

	if (fstat(fd, &st))
		return -errno;
	if ((size_t)st.st_size < sizeof(*h))
		return -EBADMSG;
	c->len = (size_t)st.st_size;
	c->map = mmap(NULL, c->len, prot, MAP_SHARED, fd, 0);
	if (c->map == MAP_FAILED) {
		c->map = NULL;
		return -errno;
	}
	h = c->map;
	if (memcmp(h->magic, SU_COUNTERS_MAGIC, 8) ||
	    sizeof(*h) + (size_t)h->n * sizeof(struct su_counter_slot) > c->len) {
		su_counters__close(c);
		return -EBADMSG;
	}
	c->n = h->n;
	c->v = (struct su_counter_slot *)(h + 1);
	return 0;
}

int su_counters__open(const char *assignment, struct su_counters *c)
{
	char path[4096];
	int fd, rc, prot = PROT_READ | PROT_WRITE;

	memset(c, 0, sizeof(*c));
	rc = su_counters__path(assignment, path, sizeof(path));
	if (rc)
		return rc;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == EACCES) {
		prot = PROT_READ;
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;
	rc = map_fd(fd, prot, c);
	close(fd);
	return rc;
}

void su_counters__close(struct su_counters *c)
{
	if (c->map)
		munmap(c->map, c->len);
	memset(c, 0, sizeof(*c));
}

struct su_counter_slot *su_counters__find(const struct su_counters *c, uint32_t ip, uint16_t lo)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->v[i].ip == ip && c->v[i].lo == lo)
			return &c->v[i];
	return NULL;
}

static void carry_over(const char *assignment, struct su_counter_slot *v, uint32_t n)
{
	struct su_counters old;

	if (su_counters__open(assignment, &old))
		return;
	for (uint32_t i = 0; i < n; i++) {
		const struct su_counter_slot *o = su_counters__find(&old, v[i].ip, v[i].lo);

		if (o && o->hi == v[i].hi) {
			v[i].connects = __atomic_load_n(&o->connects, __ATOMIC_RELAXED);
			v[i].exhausted = __atomic_load_n(&o->exhausted, __ATOMIC_RELAXED);
			v[i].conflicts = __atomic_load_n(&o->conflicts, __ATOMIC_RELAXED);
		}
	}
	su_counters__close(&old);
}

int su_counters__publish(const char *assignment, const struct su_assignment *a)
{
	size_t len = sizeof(struct su_counters_hdr) + a->n * sizeof(struct su_counter_slot);
	char path[4096], tmp[4200];
	struct su_counters_hdr *h = calloc(1, len);
	struct su_counter_slot *v;
	int fd, rc;

	if (!h)
		return -ENOMEM;
	memcpy(h->magic, SU_COUNTERS_MAGIC, 8);
	h->n = a->n;
	v = (struct su_counter_slot *)(h + 1);
	for (uint32_t i = 0; i < a->n; i++)
		v[i] = (struct su_counter_slot){ .ip = a->v[i].ip, .lo = a->v[i].lo,
						 .hi = a->v[i].hi };
	carry_over(assignment, v, a->n);
	rc = su_counters__path(assignment, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* 0666: every application user increments it (counts, not secrets). */
	fd = rc ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (!rc && fd < 0)
		rc = -errno;
	if (!rc) {
		fchmod(fd, 0666); /* past the umask */
		if (write(fd, h, len) != (ssize_t)len)
			rc = -EIO;
		close(fd);
	}
	if (!rc && rename(tmp, path))
		rc = -errno;
	free(h);
	return rc;
}
