/* Small file helpers shared by the loaders and writers. */
#ifndef SU_UTIL_H
#define SU_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Reads the whole stream into a NUL-terminated malloc'd buffer. */
int su_read_all(FILE *fp, char **buf, size_t *len);

/* write(2) until done, through EINTR and short writes; 0 or -errno. */
int su_write_full(int fd, const void *buf, size_t len);

/* Reads a whole file; errors name it ("PATH: No such file or directory"). */
struct su_err;
int su_read_file(const char *path, char **buf, size_t *len, struct su_err *err);
/* The same, refusing (-EFBIG, "PATH: N bytes: WHAT may have at most MAX")
 * a file over `max` bytes: a regular file by fstat before reading, a pipe
 * or device once max + 1 bytes have come. */
int su_read_file_max(const char *path, size_t max, const char *what, char **buf, size_t *len,
		     struct su_err *err);

/* Atomic replace: the writer callback fills a temporary file next to
 * `path`, which is then fsync'd and renamed over it, and the directory
 * fsync'd, so readers see the old file or the new one, never a torn one. */
int su_write_atomic(const char *path, int (*write_fn)(FILE *fp, const void *arg), const void *arg);

/* Strict unsigned decimal, for config files, plan files and command-line
 * flags alike: ASCII digits only, no sign, no leading zero ("0" itself is
 * fine), nothing after.  YAML 1.1 tools read "010" as 8, "0x10" as 16,
 * "1_000" as 1000, "1:30" as 90 and "+5" as 5 while YAML 1.2 tools and
 * strtoul read them otherwise, so such forms are refused rather than
 * guessed.  Returns 0, -EINVAL (not a decimal number), -EDOM (a YAML-1.1
 * ambiguous form: su_number__ambiguity() says which) or -ERANGE (> max). */
int su_uint__parse(const char *s, uint64_t max, uint64_t *out);

/* Why `s` is not a plain decimal although a YAML 1.1 or 1.2 reader takes
 * it for a number ("a leading zero: YAML 1.1 reads 010 as octal 8"), or
 * NULL when it is plain decimal or no number at all. */
const char *su_number__ambiguity(const char *s);

/* FNV-1a, 64 bits, of len bytes: the one hash of the project's tables,
 * shard checksums and digests (not for anything an attacker may choose to
 * collide). */
uint64_t su_fnv1a64(const void *buf, size_t len);

#endif
