/* The daemons' side of --store (see node_store.h). */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/node_store.h"

static struct su_follow *follower;
static char state_buf[PATH_MAX];
static const char *log_cmd = "store";

int node_store__flag(const char *cmd, int c, const char *arg, struct node_store_flags *f)
{
	if (c == 0x5310) {
		f->state_dir = arg;
		return 1;
	}
	return cli_store_flag(cmd, c, arg, &f->store);
}

const char *node_store__state_dir(const struct node_store_flags *f, const char *role, const char *name)
{
	if (f->state_dir)
		return f->state_dir;
	snprintf(state_buf, sizeof(state_buf), "%s/%s-%s", NODE_STORE_STATE_ROOT, role, name);
	return state_buf;
}

static void log_line(const char *msg)
{
	cli_log(log_cmd, "%s", msg);
}

int node_store__start(const char *cmd, const char *role, enum su_view view, const char *name, const char *dc,
		      struct node_store_flags *f, int wait_ms, const char **plan_path)
{
	struct su_store *probe = cli_store_open(cmd, &f->store); /* config file + flags, checked */
	struct su_follow_opts o = {
		.url = f->store.url, .view = view, .name = name, .role = role, .dc = dc,
		.state_dir = node_store__state_dir(f, role, name), .log = log_line,
	};
	struct su_store_opts so = { 0 };
	struct su_err err;

	if (!probe)
		return cli_store_exit();
	su_store__close(probe);
	/* The follower opens its own handles with the same options. */
	if (cli_store_options(cmd, &f->store, &so))
		return SU_EXIT_INVALID;
	o.store = so;
	log_cmd = cmd;
	if (su_follow__start(&o, &follower, &err))
		return cli_fail(SU_EXIT_FAIL, cmd, "%s", err.msg);
	if (su_follow__wait_ready(follower, wait_ms)) {
		struct su_follow_status st;

		su_follow__status(follower, &st);
		node_store__stop();
		return cli_fail(SU_EXIT_FAIL, cmd, "no plan from %s within %d s and none kept in %s%s%s", f->store.url,
				wait_ms / 1000, o.state_dir, st.error[0] ? ": " : "", st.error);
	}
	*plan_path = su_follow__path(follower);
	return 0;
}

void node_store__applied(uint64_t serial)
{
	if (follower)
		su_follow__applied(follower, serial);
}

void node_store__stop(void)
{
	su_follow__stop(follower);
	follower = NULL;
}

const char *node_store__dir_of(const char *plan_path)
{
	static char dir[PATH_MAX];
	size_t n = plan_path ? strlen(plan_path) : 0;

	if (n < 10 || strcmp(plan_path + n - 10, "/view.plan") || n - 10 >= sizeof(dir))
		return NULL;
	memcpy(dir, plan_path, n - 10);
	dir[n - 10] = '\0';
	return dir;
}

json_t *node_store__read(const char *state_dir)
{
	char path[PATH_MAX];
	json_error_t je;

	snprintf(path, sizeof(path), "%s/store.json", state_dir);
	return json_load_file(path, 0, &je);
}

void node_store__print(const char *state_dir)
{
	json_t *j = node_store__read(state_dir);
	const char *e;

	if (!j)
		return;
	e = json_string_value(json_object_get(j, "error"));
	printf("store %s: %s, applied serial %" JSON_INTEGER_FORMAT " (fetched %" JSON_INTEGER_FORMAT
	       ")%s%s\n", json_string_value(json_object_get(j, "store")),
	       json_string_value(json_object_get(j, "state")), json_integer_value(json_object_get(j, "serial")),
	       json_integer_value(json_object_get(j, "fetched")), e && *e ? "; last error: " : "", e && *e ? e : "");
	json_decref(j);
}

int node_store__status(struct su_follow_status *st)
{
	if (!follower)
		return -ENOENT;
	su_follow__status(follower, st);
	return 0;
}
