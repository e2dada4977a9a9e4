/* --store for the daemons (router, agent): a follower thread keeps the
 * node's view of the store in STATE_DIR/view.plan, which the daemon applies
 * as its plan file; the daemon reports what it applied.  One per process. */
#ifndef SU_CLI_NODE_STORE_H
#define SU_CLI_NODE_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "cli/store_cli.h"
#include "lib/store/follow.h"

#define NODE_STORE_STATE_ROOT "/var/lib/softunicast"

struct node_store_flags {
	struct cli_store_flags store;
	const char *state_dir;
};

#define NODE_STORE_OPTIONS CLI_STORE_OPTIONS, { "state-dir", required_argument, NULL, 0x5310 }
#define NODE_STORE_USAGE                                                                             \
	CLI_STORE_USAGE                                                                                \
	"      --state-dir DIR        where the last good view is kept (default\n"                  \
	"                             " NODE_STORE_STATE_ROOT "/ROLE-NAME); a restart without the\n" \
	"                             store runs on it.  Secrets only in --store-config.\n"

/* 1: consumed; 0: not a store flag; <0: bad value (printed). */
int node_store__flag(const char *cmd, int c, const char *arg, struct node_store_flags *f);
/* The state directory for role/name: f->state_dir or the default. */
const char *node_store__state_dir(const struct node_store_flags *f, const char *role, const char *name);
/* Starts following; *plan_path then names the local view file.  Waits up to
 * wait_ms for a first view (fetched, or persisted by an earlier run).
 * Returns an exit code (printed). */
int node_store__start(const char *cmd, const char *role, enum su_view view, const char *name, const char *dc,
		      struct node_store_flags *f, int wait_ms, const char **plan_path);
void node_store__applied(uint64_t serial);
void node_store__stop(void);
/* STATE_DIR/store.json as written by the running daemon, or NULL. */
json_t *node_store__read(const char *state_dir);
/* The state directory of a daemon whose plan file is PATH, when PATH is a
 * followed view (STATE_DIR/view.plan); NULL otherwise.  Static buffer. */
const char *node_store__dir_of(const char *plan_path);
/* One text line "store URL: state S, applied serial N (fetched M)[, error]". */
void node_store__print(const char *state_dir);
/* The running daemon's follower status (thread-safe: any thread may ask):
 * 0, or -ENOENT when the daemon reads a plan file rather than a store. */
int node_store__status(struct su_follow_status *st);

#endif
