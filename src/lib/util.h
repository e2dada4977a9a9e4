/* Small file helpers shared by the loaders and writers. */
#ifndef SU_UTIL_H
#define SU_UTIL_H

#include <stddef.h>
#include <stdio.h>

/* Reads the whole stream into a NUL-terminated malloc'd buffer. */
int su_read_all(FILE *fp, char **buf, size_t *len);

/* write(2) until done, through EINTR and short writes; 0 or -errno. */
int su_write_full(int fd, const void *buf, size_t len);

/* Reads a whole file; errors name it ("PATH: No such file or directory"). */
struct su_err;
int su_read_file(const char *path, char **buf, size_t *len, struct su_err *err);

/* Atomic replace: the writer callback fills a temporary file next to
 * `path`, which is then fsync'd and renamed over it, and the directory
 * fsync'd, so readers see the old file or the new one, never a torn one. */
int su_write_atomic(const char *path, int (*write_fn)(FILE *fp, const void *arg), const void *arg);

#endif
