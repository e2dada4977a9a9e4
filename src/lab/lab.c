/* softunicast lab — the whole system in network namespaces on one machine.
 *
 * The lab is orchestration (namespaces, veths, routes, starting the real
 * router and agent processes), which reads best as a shell script; this entry
 * point finds that script and the BPF objects, then hands over. */
#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static int exists(const char *path)
{
	return access(path, R_OK) == 0;
}

/* First existing of: $SOFTUNICAST_LAB_SCRIPT, the installed copy, the source
 * tree next to a build directory. */
static int find_script(const char *bindir, char *out, size_t len)
{
	const char *env = getenv("SOFTUNICAST_LAB_SCRIPT");
	const char *candidates[] = { "%s/../share/softunicast/lab.sh", "%s/../../src/lab/lab.sh" };

	if (env && exists(env)) {
		snprintf(out, len, "%s", env);
		return 0;
	}
	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		snprintf(out, len, candidates[i], bindir);
		if (exists(out))
			return 0;
	}
	return -ENOENT;
}

static void set_bpf_dir(const char *bindir)
{
	char dir[PATH_MAX + 32];

	if (getenv("SOFTUNICAST_BPF_DIR"))
		return;
	snprintf(dir, sizeof(dir), "%s/../bpf", bindir); /* build tree */
	if (!exists(dir))
		snprintf(dir, sizeof(dir), "%s/../lib/softunicast/bpf", bindir); /* installed */
	setenv("SOFTUNICAST_BPF_DIR", dir, 1);
}

int lab_main(int argc, char **argv)
{
	char exe[PATH_MAX], tmp[PATH_MAX], bindir[PATH_MAX], script[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char **args;

	if (n < 0)
		return cli_fail(SU_EXIT_FAIL, "lab", "cannot find my own executable: %s", strerror(errno));
	exe[n] = '\0';
	snprintf(tmp, sizeof(tmp), "%s", exe);
	snprintf(bindir, sizeof(bindir), "%s", dirname(tmp));
	if (find_script(bindir, script, sizeof(script)))
		return cli_fail(SU_EXIT_FAIL, "lab", "lab.sh not found (set SOFTUNICAST_LAB_SCRIPT)");
	setenv("SOFTUNICAST", exe, 1);
	set_bpf_dir(bindir);
	args = calloc((size_t)argc + 2, sizeof(*args));
	if (!args)
		return cli_fail(SU_EXIT_FAIL, "lab", "out of memory");
	args[0] = "bash";
	args[1] = script;
	for (int i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	execvp("bash", args);
	free(args);
	return cli_fail(SU_EXIT_FAIL, "lab", "cannot run bash: %s", strerror(errno));
}
