/* --store for the commands: flags, the config file, and re-planning against
 * a store (plan, move, drain, undrain, rollback). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "cli/store_cli.h"
#include "lib/planner.h"
#include "lib/store/ops.h"
#include "lib/util.h"

int cli_store_flag(const char *cmd, int c, const char *arg, struct cli_store_flags *f)
{
	char *end;

	switch (c) {
	case 0x5300: f->url = arg; return 1;
	case 0x5301: f->config = arg; return 1;
	case 0x5302: f->ca = arg; return 1;
	case 0x5303: f->cert = arg; return 1;
	case 0x5304: f->key = arg; return 1;
	case 0x5305: f->user = arg; return 1;
	case 0x5306: f->password_file = arg; return 1;
	case 0x5307:
		errno = 0;
		f->keep = (unsigned)strtoul(arg, &end, 10);
		if (errno || *end || !f->keep || f->keep > 10000)
			return cli_fail(-1, cmd, "--keep: '%s' is not a count of versions (1-10000)", arg);
		return 1;
	default: return 0;
	}
}

/* Loaded strings live as long as the process (the store options point at
 * them), and are freed at exit. */
static char *owned[64];
static unsigned n_owned;

static void free_owned(void)
{
	while (n_owned)
		free(owned[--n_owned]);
}

static char *own(char *s)
{
	if (!s)
		return NULL;
	if (!n_owned)
		atexit(free_owned);
	if (n_owned < sizeof(owned) / sizeof(owned[0]))
		owned[n_owned++] = s;
	return s;
}

static char *first_line(const char *path, struct su_err *err)
{
	char *buf, *nl;
	size_t len;

	if (su_read_file(path, &buf, &len, err))
		return NULL;
	if ((nl = strchr(buf, '\n')))
		*nl = '\0';
	return own(buf);
}

static int config_line(const char *path, unsigned line, char *l, struct su_store_opts *o, struct su_err *err)
{
	char key[32], val[1024], extra;
	char *v;

	while (*l == ' ' || *l == '\t')
		l++;
	if (!*l || *l == '#')
		return 0;
	if (sscanf(l, "%31s %1023s %c", key, val, &extra) != 2)
		return su_err__set(err, EINVAL, "%s:%u: expected 'KEY VALUE', got '%.60s'", path, line, l);
	if (!(v = own(strdup(val))))
		return su_err__set(err, ENOMEM, "out of memory");
	if (!strcmp(key, "ca"))
		o->etcd.ca = v;
	else if (!strcmp(key, "cert"))
		o->etcd.cert = v;
	else if (!strcmp(key, "key"))
		o->etcd.key = v;
	else if (!strcmp(key, "user"))
		o->etcd.user = v;
	else if (!strcmp(key, "password"))
		o->etcd.password = v;
	else if (!strcmp(key, "password-file")) {
		o->etcd.password = first_line(v, err);
		if (!o->etcd.password)
			return -EINVAL;
	} else if (!strcmp(key, "keep") && atoi(v) > 0) {
		o->keep = (unsigned)atoi(v);
	} else {
		return su_err__set(err, EINVAL, "%s:%u: unknown key or bad value '%s %s'", path, line, key, val);
	}
	return 0;
}

static int load_config(const char *path, struct su_store_opts *o, struct su_err *err)
{
	char *buf, *save = NULL;
	size_t len;
	unsigned line = 0;
	int ret;

	if ((ret = su_read_file(path, &buf, &len, err)))
		return ret;
	for (char *l = strtok_r(buf, "\n", &save); !ret && l; l = strtok_r(NULL, "\n", &save))
		ret = config_line(path, ++line, l, o, err);
	free(buf);
	return ret;
}

int cli_store_options(const char *cmd, const struct cli_store_flags *f, struct su_store_opts *o)
{
	const char *cfg = f->config ? f->config : getenv("SOFTUNICAST_STORE_CONFIG");
	struct su_err err;

	memset(o, 0, sizeof(*o));
	if (!cfg && !access(CLI_STORE_DEFAULT_CONFIG, R_OK))
		cfg = CLI_STORE_DEFAULT_CONFIG;
	if (cfg && load_config(cfg, o, &err))
		return cli_fail(SU_EXIT_INVALID, cmd, "%s", err.msg);
	o->etcd.ca = f->ca ? f->ca : o->etcd.ca;
	o->etcd.cert = f->cert ? f->cert : o->etcd.cert;
	o->etcd.key = f->key ? f->key : o->etcd.key;
	o->etcd.user = f->user ? f->user : o->etcd.user;
	if (f->password_file && !(o->etcd.password = first_line(f->password_file, &err)))
		return cli_fail(SU_EXIT_INVALID, cmd, "%s", err.msg);
	if (f->keep)
		o->keep = f->keep;
	return 0;
}

static int open_exit = SU_EXIT_USAGE;

int cli_store_exit(void)
{
	return open_exit;
}

struct su_store *cli_store_open(const char *cmd, const struct cli_store_flags *f)
{
	struct su_store_opts o;
	struct su_store *s;
	struct su_err err;

	open_exit = SU_EXIT_USAGE;
	if (!f->url) {
		cli_fail(SU_EXIT_USAGE, cmd, "--store URL is required");
		return NULL;
	}
	if ((open_exit = cli_store_options(cmd, f, &o)))
		return NULL;
	open_exit = SU_EXIT_USAGE;
	if (su_store__open(f->url, &o, &s, &err)) {
		cli_fail(SU_EXIT_USAGE, cmd, "%s", err.msg);
		return NULL;
	}
	return s;
}

struct su_plan *cli_store_load(const char *cmd, const char *url, uint64_t serial)
{
	struct cli_store_flags f = { .url = url };
	struct su_store *s = cli_store_open(cmd, &f);
	struct su_plan *p = NULL;
	struct su_err err;
	int ret;

	if (!s)
		return NULL;
	if ((ret = su_store__read(s, serial, SU_VIEW_PLAN, NULL, &p, NULL, &err)))
		cli_fail(ret == -ENOENT ? SU_EXIT_NOTFOUND : ret == -EBADMSG ? SU_EXIT_INVALID : SU_EXIT_FAIL, cmd,
			 "%s", err.msg);
	su_store__close(s);
	return p;
}

void cli_store_print_ops(const char *url, uint64_t serial)
{
	struct cli_store_flags f = { .url = url };
	struct su_store *s = cli_store_open("show", &f);
	struct su_err err;
	char *ops = NULL;
	size_t len;

	if (!s)
		return;
	if (su_store__etcd(s) && !su_store__read_shard(s, serial, "ops", &ops, &len, &err) && len) {
		printf("\n# operations kept with plan serial %" PRIu64 " (softunicast move/drain):\n", serial);
		for (char *save = NULL, *l = strtok_r(ops, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
			printf("%s\n", l);
	}
	free(ops);
	su_store__close(s);
}

/* ---- re-planning against a store ---------------------------------------------- */

/* What a re-plan starts from: the committed plan, its fleet and operations. */
struct base {
	struct su_plan *plan;  /* NULL: empty store */
	char *fleet_text;      /* the stored fleet (NULL: none stored) */
	struct su_ops ops;
};

static void base__free(struct base *b)
{
	su_plan__free(b->plan);
	free(b->fleet_text);
	su_ops__free(&b->ops);
}

static int read_extra(struct su_store *s, uint64_t serial, const char *name, char **text, struct su_err *err)
{
	size_t len;
	int ret = su_store__read_shard(s, serial, name, text, &len, err);

	/* A version published without them (by the library): none stored. */
	return ret == -ENOENT && strstr(err->msg, " has no ") ? 0 : ret;
}

static int read_base(const char *cmd, struct su_store *s, uint64_t from, struct base *b)
{
	struct su_err err;
	char *ops = NULL;
	int ret = su_store__read(s, 0, SU_VIEW_PLAN, NULL, &b->plan, NULL, &err);

	if (ret == -ENOENT && !from && !strstr(err.msg, "serial")) /* empty store */
		ret = 0;
	if (!ret && b->plan && su_store__etcd(s))
		ret = read_extra(s, from, "fleet", &b->fleet_text, &err);
	if (!ret && b->plan && su_store__etcd(s))
		ret = read_extra(s, from, "ops", &ops, &err);
	if (!ret)
		ret = su_ops__parse(ops, "ops", &b->ops, &err);
	free(ops);
	if (ret)
		return cli_fail(ret == -ENOENT ? SU_EXIT_NOTFOUND : ret == -EBADMSG || ret == -EINVAL ?
				SU_EXIT_INVALID : SU_EXIT_FAIL, cmd, "%s", err.msg);
	return 0;
}

static int publish(const char *cmd, struct su_store *s, const struct su_plan *next, const struct base *b,
		   const char *fleet_text, bool json)
{
	char *ops = su_ops__format(&b->ops);
	struct su_shard extra[2] = {
		{ "fleet", (char *)fleet_text, strlen(fleet_text), 0 },
		{ "ops", ops, ops ? strlen(ops) : 0, 0 },
	};
	uint64_t expect = b->plan ? b->plan->serial : 0;
	struct su_err err;
	int ret;

	if (!ops)
		return cli_fail(SU_EXIT_FAIL, cmd, "out of memory");
	ret = su_store__publish_with(s, next, expect, extra, 2, &err);
	free(ops);
	if (ret)
		return cli_fail(SU_EXIT_FAIL, cmd, "%s", err.msg);
	if (json)
		return cli_print_json(json_pack("{s:s,s:I,s:I,s:b}", "store", su_store__url(s), "serial",
						(json_int_t)next->serial, "previous", (json_int_t)expect, "changed",
						next->serial != expect));
	printf("%s: plan serial %" PRIu64 "%s\n", su_store__url(s), next->serial,
	       next->serial == expect ? " (unchanged, nothing written)" : " published");
	return SU_EXIT_OK;
}

int cli_store_replan(const char *cmd, const struct cli_store_flags *f, const struct cli_replan *r)
{
	struct su_store *s = cli_store_open(cmd, f);
	struct base b = { 0 };
	struct su_fleet *fleet = NULL;
	struct su_plan *next = NULL;
	struct su_plan_report rep;
	char *fleet_text = NULL;
	struct su_err err;
	size_t len;
	int ret;

	if (!s)
		return cli_store_exit();
	if ((ret = read_base(cmd, s, r->from_serial, &b)))
		goto out;
	if (r->fleet_path && su_read_file(r->fleet_path, &fleet_text, &len, &err)) {
		ret = cli_fail(SU_EXIT_INVALID, cmd, "%s", err.msg);
		goto out;
	}
	if (!fleet_text && !(fleet_text = b.fleet_text ? strdup(b.fleet_text) : NULL)) {
		ret = cli_fail(SU_EXIT_USAGE, cmd, "%s holds no fleet description: publish one with "
				"`softunicast plan --fleet FLEET.yaml --store URL` first", su_store__url(s));
		goto out;
	}
	if (su_fleet__parse(fleet_text, strlen(fleet_text), r->fleet_path ? r->fleet_path : "fleet (stored)", &fleet,
			    &err)) {
		ret = cli_fail(SU_EXIT_INVALID, cmd, "%s", err.msg);
		goto out;
	}
	/* The command's own edit is checked against the fleet (strict); stored
	 * operations that name what the fleet no longer has are dropped. */
	if (r->edit && (ret = r->edit(cmd, &b.ops, fleet, r->arg)))
		goto out;
	if (su_ops__apply(&b.ops, fleet, false, &err)) {
		ret = cli_fail(SU_EXIT_INVALID, cmd, "%s", err.msg);
		goto out;
	}
	ret = su_planner__run(fleet, b.plan, r->now, &next, &rep, &err);
	if (ret == -ENOSPC) {
		for (uint32_t i = 0; i < rep.n; i++)
			cli_log(cmd, "cannot be met: DC %s tag-set %s short of %u IPs", rep.v[i].dc, rep.v[i].tags,
				rep.v[i].ips_short);
		su_plan_report__free(&rep);
		ret = cli_fail(SU_EXIT_UNSATISFIED, cmd, "demand cannot be met; nothing written");
		goto out;
	}
	if (ret) {
		/* -EBUSY: a live move still has old flows (planner.c, move_ip). */
		ret = cli_fail(ret == -EBUSY ? SU_EXIT_FAIL : SU_EXIT_INVALID, cmd, "%s", err.msg);
		goto out;
	}
	if (r->dry_run) {
		struct su_plan *empty = su_plan__new();

		ret = cli_diff_print(b.plan ? b.plan : empty, next, r->json);
		su_plan__free(empty);
		goto out;
	}
	ret = publish(cmd, s, next, &b, fleet_text, r->json);
out:
	su_plan__free(next);
	su_fleet__free(fleet);
	free(fleet_text);
	base__free(&b);
	su_store__close(s);
	return ret;
}
