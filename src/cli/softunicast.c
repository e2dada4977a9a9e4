/* softunicast — multi-call entry point: `softunicast COMMAND [ARGS]`. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "cli/cli.h"
#include "lib/util.h"

const char *su_prog = "softunicast";

/* Weak so that a subcommand whose file has not been written yet still links
 * and reports itself as unavailable rather than breaking the build. */
#define WEAK __attribute__((weak))
WEAK int router_main(int argc, char **argv);
WEAK int agent_main(int argc, char **argv);
WEAK int connect_main(int argc, char **argv);
WEAK int lab_main(int argc, char **argv);
/* Operations on a stored plan (ops_cli.c) and the fleet's status (status.c). */
WEAK int move_main(int argc, char **argv);
WEAK int drain_main(int argc, char **argv);
WEAK int undrain_main(int argc, char **argv);
WEAK int rollback_main(int argc, char **argv);
WEAK int status_main(int argc, char **argv);
WEAK int proxy_main(int argc, char **argv);

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{ "plan", plan_main, "build a stable address plan from a fleet description" },
	{ "who", who_main, "show who owns an egress IP or IP:PORT" },
	{ "show", show_main, "list a plan's assignments" },
	{ "geofeed", geofeed_main, "print the RFC 8805 geofeed of the egress space in use" },
	{ "diff", diff_main, "show what changed between two plans" },
	{ "report", report_main, "draw the egress address space as an HTML page" },
	{ "router", router_main, "run or inspect the XDP router of a data center" },
	{ "agent", agent_main, "run or inspect the agent of a server" },
	{ "connect", connect_main, "connect with tags from this server's slice (netcat-like)" },
	{ "proxy", proxy_main, "forward proxy (SOCKS5, SOCKS4a, HTTP) egressing with per-client tags" },
	{ "lab", lab_main, "build and run the whole system in network namespaces" },
	{ "move", move_main, "pin egress IPs to a data center (stored plan)" },
	{ "drain", drain_main, "stop new connections from a server's slices (stored plan)" },
	{ "undrain", undrain_main, "give a drained server slices again (stored plan)" },
	{ "rollback", rollback_main, "republish an older version as the next serial" },
	{ "status", status_main, "which serial each router and agent applies (etcd store)" },
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: %s COMMAND [ARGS...]\n"
		"       %s COMMAND --help\n\n"
		"softunicast shares IPv4 egress addresses between the servers of many data\n"
		"centers without stateful NAT: each egress IP belongs to one data center and its\n"
		"source ports are split into slices owned by servers.\n\n"
		"Commands:\n",
		su_prog, su_prog);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].fn)
			fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nExit status: 0 ok, 1 failure, 2 usage, 3 invalid input, 4 unsatisfiable\n"
		     "demand, 5 not found.  See softunicast(1).\n");
}

/* Under systemd, stderr is a journal stream ($JOURNAL_STREAM names its
 * device and inode, systemd.exec(5)): a "<N>" prefix then gives each line
 * its syslog priority (sd-daemon(3)), so `journalctl -p err` finds the
 * failures.  Anywhere else lines stay plain. */
static bool stderr_is_journal(void)
{
	static int cached = -1;
	unsigned long long dev, ino;
	const char *e = getenv("JOURNAL_STREAM");
	struct stat st;

	if (cached < 0)
		cached = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && !fstat(STDERR_FILENO, &st) &&
			 st.st_dev == dev && st.st_ino == ino;
	return cached;
}

static void vlog(const char *prio, const char *cmd, const char *fmt, va_list ap)
{
	if (stderr_is_journal())
		fputs(prio, stderr);
	fprintf(stderr, "%s %s: ", su_prog, cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cli_log(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(SD_INFO, cmd, fmt, ap);
	va_end(ap);
}

void cli_warn(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(SD_WARNING, cmd, fmt, ap);
	va_end(ap);
}

int cli_fail(int code, const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(SD_ERR, cmd, fmt, ap);
	va_end(ap);
	return code;
}

int cli_parse_uint(const char *cmd, const char *what, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	uint64_t v;

	if (su_number__ambiguity(s))
		return cli_fail(SU_EXIT_USAGE, cmd, "%s '%s' is ambiguous, %s", what, s, su_number__ambiguity(s));
	if (su_uint__parse(s, hi, &v) || v < lo)
		return cli_fail(SU_EXIT_USAGE, cmd, "%s '%s': expected %" PRIu64 "-%" PRIu64, what, s, lo, hi);
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return SU_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return SU_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("softunicast %s\n", SU_VERSION);
		return SU_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name))
			continue;
		if (!commands[i].fn)
			return cli_fail(SU_EXIT_USAGE, argv[1], "not built into this binary");
		return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "%s: unknown command '%s'\n\n", su_prog, argv[1]);
	usage(stderr);
	return SU_EXIT_USAGE;
}
