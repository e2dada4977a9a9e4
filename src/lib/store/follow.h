/* A node following its view of a store: a thread reads the view, watches the
 * version key, and writes each committed version whole, atomically, to a
 * local plan file (STATE_DIR/view.plan) that the daemon applies as it
 * applies any plan file (inotify).  So the node keeps its last good plan
 * across store outages and restarts, and the daemons' apply paths stay one.
 *
 * The node's applied serial and state are reported under a lease at
 * PREFIX/nodes/ROLE/NAME ({"serial","state","fetched","error","dc"}), which
 * `softunicast status` reads; the lease (TTL 10 s) expires with the node.
 * A summary is also written to STATE_DIR/store.json for `stats`/`status`. */
#ifndef SU_STORE_FOLLOW_H
#define SU_STORE_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/store/store.h"

#define SU_FOLLOW_LEASE_TTL 10

struct su_follow_opts {
	const char *url;
	struct su_store_opts store;
	enum su_view view;   /* SU_VIEW_DC (router) or SU_VIEW_SERVER (agent) */
	const char *name;    /* the DC or the server */
	const char *role;    /* "router" or "agent": the report key */
	const char *dc;      /* the node's DC, for the report (agent: may be NULL) */
	const char *state_dir;
	void (*log)(const char *msg); /* state changes; may be NULL */
};

enum su_follow_state {
	SU_FOLLOW_CONNECTING, /* no answer from the store yet */
	SU_FOLLOW_OK,         /* watching; view up to date */
	SU_FOLLOW_UNREACHABLE,/* store away: running on the last good view */
	SU_FOLLOW_REFUSED,    /* the store's version is unusable (corrupt, missing): kept the old */
};

struct su_follow_status {
	enum su_follow_state state;
	uint64_t fetched;  /* serial of the last view written locally */
	uint64_t applied;  /* as reported by the daemon */
	uint64_t fetches, failures;
	uint64_t bytes;    /* shard bytes read, all fetches */
	uint32_t held;     /* gained slices held back until the DC's router has
			    * applied the version (rollout order) */
	char error[512];   /* last error, "" when none */
};

struct su_follow;

/* Starts the thread.  The local file may already hold the view persisted by
 * an earlier run: su_follow__path() is usable at once if it exists. */
int su_follow__start(const struct su_follow_opts *o, struct su_follow **out, struct su_err *err);
const char *su_follow__path(const struct su_follow *f);
/* Waits up to timeout_ms until the local file exists; 0 or -ETIMEDOUT. */
int su_follow__wait_ready(struct su_follow *f, int timeout_ms);
/* The daemon applied serial (reported to the store and store.json). */
void su_follow__applied(struct su_follow *f, uint64_t serial);
void su_follow__status(struct su_follow *f, struct su_follow_status *st);
const char *su_follow_state__name(enum su_follow_state s);
void su_follow__stop(struct su_follow *f);

#endif
