/* One `<cmd>_main` per subcommand, each in its own file (wireguard-tools
 * style).  Exit codes are shared so scripts can tell failures apart. */
#ifndef SU_CLI_H
#define SU_CLI_H

#include <stdint.h>

enum su_exit {
	SU_EXIT_OK = 0,
	SU_EXIT_FAIL = 1,        /* runtime failure (I/O, kernel refused, ...) */
	SU_EXIT_USAGE = 2,       /* bad command line */
	SU_EXIT_INVALID = 3,     /* invalid fleet or plan file */
	SU_EXIT_UNSATISFIED = 4, /* the fleet's demand does not fit its prefixes */
	SU_EXIT_NOTFOUND = 5,    /* a query matched nothing */
};

extern const char *su_prog;

int plan_main(int argc, char **argv);
int who_main(int argc, char **argv);
int show_main(int argc, char **argv);
int geofeed_main(int argc, char **argv);
int diff_main(int argc, char **argv);
int report_main(int argc, char **argv);
int router_main(int argc, char **argv);
int agent_main(int argc, char **argv);
int connect_main(int argc, char **argv);
int lab_main(int argc, char **argv);
int proxy_main(int argc, char **argv);

/* Prints "softunicast CMD: message" to stderr (cli_fail also returns code,
 * for `return cli_fail(...)`). */
void cli_log(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same at syslog priority 4 (warning): something is degraded or will
 * need the operator, but the daemon goes on. */
void cli_warn(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_fail(int code, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A numeric command-line argument, read by the rule every softunicast
 * number follows (plain decimal, lib/util.h su_uint__parse): 0, or prints
 * "softunicast CMD: WHAT 'S' is ambiguous, a leading zero: ..." or
 * "... WHAT 'S': expected LO-HI" and returns SU_EXIT_USAGE. */
int cli_parse_uint(const char *cmd, const char *what, const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

#endif
