/* Operator decisions stored with each plan version (see ops.c): pins of IP
 * ranges to a DC and drained servers.  Applied to the fleet before planning,
 * so the next `plan` keeps them.  Functions return 0 or -errno. */
#ifndef SU_STORE_OPS_H
#define SU_STORE_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/addr.h"
#include "lib/err.h"
#include "lib/fleet.h"

struct su_ops {
	char **v; /* sorted lines: "drain SERVER" | "pin CIDR DC" */
	size_t n;
};

/* text may be NULL (no operations). Errors: "NAME:LINE: bad operation '...'". */
int su_ops__parse(const char *text, const char *name, struct su_ops *o, struct su_err *err);
char *su_ops__format(const struct su_ops *o); /* malloc'd, "" when none */
void su_ops__free(struct su_ops *o);
int su_ops__drain(struct su_ops *o, const char *server, bool on); /* undrain of a non-drained: -ENOENT */
int su_ops__pin(struct su_ops *o, const struct su_prefix4 *px, const char *dc);
/* Applies to the fleet: pinned prefixes allow only their DC (split out of
 * wider prefixes), drained servers leave it.  strict: a pin or drain naming
 * nothing in the fleet is an error (-ENOENT); else it is skipped (a stored
 * operation outlived its server). */
int su_ops__apply(const struct su_ops *o, struct su_fleet *f, bool strict, struct su_err *err);

#endif
