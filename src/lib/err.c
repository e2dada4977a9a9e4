#include <stdarg.h>
#include <stdio.h>

#include "lib/err.h"

int su_err__set(struct su_err *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -code;
}
