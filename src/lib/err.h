/* Error reporting shared by every library module.
 *
 * Library functions return 0 or -errno and, when the caller passes a
 * struct su_err, leave a human sentence in it ("fleet.yaml:12: slice 3000 is
 * not a power of two").  Helpers never print and never exit(). */
#ifndef SU_ERR_H
#define SU_ERR_H

struct su_err {
	char msg[512];
};

/* Formats into err (if non-NULL) and returns -code, so callers can write
 * `return su_err__set(err, EINVAL, "...", ...);`. */
int su_err__set(struct su_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
