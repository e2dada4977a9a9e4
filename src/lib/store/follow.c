/* Following a store (see follow.h).  Two threads, each with its own store
 * handle (a curl handle is not shared between threads): the follower reads
 * and watches; the reporter keeps the node's lease and report alive. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/store/follow.h"
#include "lib/util.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 10000
#define HELD_POLL_MS 100
#define REPORT_MS 1000

struct su_follow {
	struct su_follow_opts o;
	char *url, *name, *role, *dc, *state_dir;
	char path[4096], status_path[4096];
	struct su_store *reader, *reporter;
	pthread_t follow_thread, report_thread;
	bool follow_started, report_started;
	atomic_bool stop;
	pthread_mutex_t lock;
	pthread_cond_t report_now; /* a new serial applied, or stopping */
	struct su_follow_status st;
	uint64_t reported_serial;
	int reported_state;
	uint32_t held;     /* gained slices left out of the written view */
};

const char *su_follow_state__name(enum su_follow_state s)
{
	static const char *const names[] = { "connecting", "ok", "unreachable", "refused" };

	return (unsigned)s < 4 ? names[s] : "?";
}

static bool stopping(void *arg)
{
	struct su_follow *f = arg;

	return atomic_load(&f->stop);
}

static void sleep_ms(struct su_follow *f, int ms)
{
	for (int t = 0; t < ms && !stopping(f); t += 50)
		usleep(50 * 1000);
}

static json_t *status_json(struct su_follow *f)
{
	struct su_follow_status st;
	json_t *j;

	su_follow__status(f, &st);
	pthread_mutex_lock(&f->lock); /* f->dc is set by the follower thread */
	j = json_pack("{s:s,s:s,s:s,s:s?,s:s,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:I}", "store", f->url, "role", f->role,
			 "name", f->name, "dc", f->dc, "state", su_follow_state__name(st.state), "serial",
			 (json_int_t)st.applied, "fetched", (json_int_t)st.fetched, "fetches", (json_int_t)st.fetches,
			 "failures", (json_int_t)st.failures, "bytes", (json_int_t)st.bytes, "error", st.error,
			 "held", (json_int_t)st.held,
			 "updated", (json_int_t)time(NULL));
	pthread_mutex_unlock(&f->lock);
	return j;
}

static int write_json(FILE *fp, const void *arg)
{
	return json_dumpf(arg, fp, JSON_COMPACT) ? -EIO : 0;
}

/* STATE_DIR/store.json at once, from whichever thread changed something:
 * the reporter may be stuck on a store that does not answer. */
static void save_status(struct su_follow *f)
{
	json_t *j = status_json(f);

	if (j)
		su_write_atomic(f->status_path, write_json, j);
	json_decref(j);
}

static void set_state(struct su_follow *f, enum su_follow_state s, const char *error)
{
	char msg[700];
	bool changed;

	pthread_mutex_lock(&f->lock);
	changed = f->st.state != s || strcmp(f->st.error, error ? error : "");
	f->st.state = s;
	snprintf(f->st.error, sizeof(f->st.error), "%s", error ? error : "");
	if (s != SU_FOLLOW_OK && s != SU_FOLLOW_CONNECTING)
		f->st.failures++;
	pthread_mutex_unlock(&f->lock);
	if (changed)
		save_status(f);
	if (changed && f->o.log) {
		snprintf(msg, sizeof(msg), "store %s: %s%s%s", f->url, su_follow_state__name(s), error ? ": " : "",
			 error ? error : "");
		f->o.log(msg);
	}
}

static int write_view(FILE *fp, const void *arg)
{
	char *text;
	size_t len;
	int ret = su_plan__format_view(arg, NULL, &text, &len);

	if (!ret && fwrite(text, 1, len, fp) != len)
		ret = -EIO;
	free(text);
	return ret;
}

/* One read: a new committed version is written whole to the local file. */
/* The serial the router of DC reports applied; 0 when no router of that DC
 * reports (routers on plan files: nothing to wait for). */
static uint64_t router_serial(struct su_follow *f, const char *dc)
{
	char *key = su_store__key(f->reader, "nodes/router/%s", dc);
	struct su_etcd_kv kv;
	uint64_t serial = 0;

	if (key && !su_etcd__get(su_store__etcd(f->reader), key, &kv, NULL, NULL)) {
		json_error_t je;
		json_t *j = json_loadb(kv.value, kv.value_len, 0, &je);

		serial = (uint64_t)json_integer_value(json_object_get(j, "serial"));
		serial = serial ? serial : 1; /* reporting, nothing applied yet: hold */
		json_decref(j);
		free(kv.key);
		free(kv.value);
	}
	free(key);
	return serial;
}

/* Rollout order, made safe here: a slice this server gains in version N is
 * left out of its view until its DC's router reports N applied.  Before
 * that the router still drops replies to the slice (it was free), so a
 * connection from it would fail.  Slices kept or draining are unaffected. */
static uint32_t hold_gained(struct su_follow *f, struct su_plan *p)
{
	int me = su_plan__find_server(p, f->name);
	struct su_plan *prev = NULL;
	struct su_err err;
	uint64_t applied;
	uint32_t held = 0;

	if (f->o.view != SU_VIEW_SERVER || me < 0)
		return 0;
	applied = router_serial(f, p->dcs[p->servers[me].dc].name);
	if (!applied || applied >= p->serial)
		return 0;
	su_plan__load(f->path, &prev, &err); /* none yet: every slice is gained */
	for (uint32_t i = 0; i < p->n_ips; i++) {
		const struct su_plan_ip *old = prev ? su_plan__find_ip(prev, p->ips[i].ip) : NULL;
		int prev_me = prev ? su_plan__find_server(prev, f->name) : -1;

		for (uint32_t k = 0; k < p->slices_per_ip; k++) {
			struct su_plan_slot *s = &p->slots[p->ips[i].first_slot + k];
			const struct su_plan_slot *o = old && prev->slices_per_ip == p->slices_per_ip ?
				&prev->slots[old->first_slot + k] : NULL;

			if (s->server != me || s->state != SU_ACTIVE)
				continue;
			if (o && o->server == prev_me && prev_me >= 0 && o->state == SU_ACTIVE)
				continue;
			s->server = -1;
			s->state = SU_FREE;
			held++;
		}
	}
	su_plan__free(prev);
	return held;
}

static int fetch(struct su_follow *f)
{
	struct su_plan *p;
	struct su_err err;
	uint64_t bytes = 0;
	uint32_t held;
	int ret = su_store__read(f->reader, 0, f->o.view, f->name, &p, &bytes, &err);

	pthread_mutex_lock(&f->lock);
	f->st.bytes += bytes;
	pthread_mutex_unlock(&f->lock);
	if (ret) {
		bool away = ret == -ECONNREFUSED || ret == -ETIMEDOUT || ret == -EPROTO;

		set_state(f, away ? SU_FOLLOW_UNREACHABLE : SU_FOLLOW_REFUSED, err.msg);
		return ret;
	}
	held = hold_gained(f, p);
	if ((p->serial != f->st.fetched || held != f->held) && (ret = su_write_atomic(f->path, write_view, p))) {
		char msg[4200];

		snprintf(msg, sizeof(msg), "%s: %s", f->path, strerror(-ret));
		set_state(f, SU_FOLLOW_REFUSED, msg);
		su_plan__free(p);
		return ret;
	}
	pthread_mutex_lock(&f->lock);
	f->st.fetched = p->serial;
	f->st.fetches++;
	f->st.held = f->held = held;
	/* An agent learns its DC from its view (for `status`). */
	if (!f->dc && f->o.view == SU_VIEW_SERVER && p->n_servers)
		f->dc = strdup(p->dcs[p->servers[0].dc].name);
	pthread_mutex_unlock(&f->lock);
	su_plan__free(p);
	set_state(f, SU_FOLLOW_OK, NULL);
	save_status(f);
	return 0;
}

static void *follow_main(void *arg)
{
	struct su_follow *f = arg;
	int backoff = BACKOFF_MIN_MS;

	while (!stopping(f)) {
		struct su_err err;
		int ret = fetch(f);

		if (!ret)
			backoff = BACKOFF_MIN_MS;
		/* Slices held for the router: look again soon, not only on a
		 * commit.  A handed slice is held too, and until it is released
		 * the old owner's live flows lose their second hop: the router
		 * reports at once (report_main), and this looks every 100 ms. */
		if (!ret && f->held) {
			sleep_ms(f, HELD_POLL_MS);
			continue;
		}
		/* Watch from the revision the read saw: a commit in between is an
		 * event, so none is missed.  A refused version is watched too: the
		 * next commit may repair it. */
		if (!ret || ret == -EBADMSG || ret == -ENOENT) {
			ret = su_store__wait(f->reader, su_store__revision(f->reader), stopping, f, &err);
			if (!ret || ret == -ECANCELED)
				continue;
			set_state(f, SU_FOLLOW_UNREACHABLE, err.msg);
		}
		sleep_ms(f, backoff);
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
	}
	return NULL;
}

/* ---- reports ------------------------------------------------------------------ */

static int report(struct su_follow *f, int64_t *lease)
{
	json_t *j = status_json(f);
	char *text = json_dumps(j, JSON_COMPACT), *key = su_store__key(f->reporter, "nodes/%s/%s", f->role, f->name);
	struct su_err err;
	int ret = text && key ? 0 : -ENOMEM;

	su_write_atomic(f->status_path, write_json, j);
	/* A fresh lease after any failure: the old one may have expired. */
	if (!ret && !*lease)
		ret = su_etcd__lease_grant(su_store__etcd(f->reporter), SU_FOLLOW_LEASE_TTL, lease, &err);
	if (!ret)
		ret = su_etcd__put(su_store__etcd(f->reporter), key, text, strlen(text), *lease, &err);
	if (ret)
		*lease = 0;
	free(text);
	free(key);
	json_decref(j);
	return ret;
}

static void *report_main(void *arg)
{
	struct su_follow *f = arg;
	int64_t lease = 0;

	while (!stopping(f)) {
		struct timespec until;

		/* Every second: the put refreshes the report; a keep-alive would
		 * too, but the report changes with the state anyway.  And at once
		 * when a serial is applied: agents hold the slices they gain until
		 * their router reports it (hold_gained). */
		if (report(f, &lease))
			lease = 0;
		else
			su_etcd__lease_keepalive(su_store__etcd(f->reporter), lease, NULL);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += REPORT_MS / 1000;
		pthread_mutex_lock(&f->lock);
		while (!stopping(f) && f->reported_serial == f->st.applied &&
		       pthread_cond_timedwait(&f->report_now, &f->lock, &until) != ETIMEDOUT)
			;
		f->reported_serial = f->st.applied;
		pthread_mutex_unlock(&f->lock);
	}
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------- */

static int mkdirs(const char *dir)
{
	char tmp[4096];

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	return mkdir(tmp, 0755) && errno != EEXIST ? -errno : 0;
}

int su_follow__start(const struct su_follow_opts *o, struct su_follow **out, struct su_err *err)
{
	struct su_follow *f = calloc(1, sizeof(*f));
	int ret;

	*out = NULL;
	if (!f)
		return su_err__set(err, ENOMEM, "out of memory");
	f->o = *o;
	f->url = strdup(o->url);
	f->name = strdup(o->name);
	f->role = strdup(o->role);
	f->dc = o->dc ? strdup(o->dc) : NULL;
	f->state_dir = strdup(o->state_dir);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->report_now, NULL);
	snprintf(f->path, sizeof(f->path), "%s/view.plan", o->state_dir);
	snprintf(f->status_path, sizeof(f->status_path), "%s/store.json", o->state_dir);
	if ((ret = mkdirs(o->state_dir))) {
		su_follow__stop(f);
		return su_err__set(err, -ret, "%s: %s", o->state_dir, strerror(-ret));
	}
	if ((ret = su_store__open(o->url, &o->store, &f->reader, err)) ||
	    (ret = su_store__open(o->url, &o->store, &f->reporter, err))) {
		su_follow__stop(f);
		return ret;
	}
	if (su_store__is_file(f->reader)) {
		su_follow__stop(f);
		return su_err__set(err, EINVAL, "%s: a file store is followed as a plan file, not through the store",
				   o->url);
	}
	/* The persisted view of an earlier run, if any, is what we have. */
	{
		struct su_plan *p;
		struct su_err e;

		if (!su_plan__load(f->path, &p, &e)) {
			f->st.fetched = p->serial;
			su_plan__free(p);
		}
	}
	if (pthread_create(&f->follow_thread, NULL, follow_main, f) ||
	    !(f->follow_started = true) || pthread_create(&f->report_thread, NULL, report_main, f) ||
	    !(f->report_started = true)) {
		su_follow__stop(f);
		return su_err__set(err, EAGAIN, "cannot start the store threads");
	}
	*out = f;
	return 0;
}

const char *su_follow__path(const struct su_follow *f)
{
	return f->path;
}

int su_follow__wait_ready(struct su_follow *f, int timeout_ms)
{
	for (int t = 0; t <= timeout_ms; t += 50) {
		if (!access(f->path, R_OK))
			return 0;
		usleep(50 * 1000);
	}
	return -ETIMEDOUT;
}

void su_follow__applied(struct su_follow *f, uint64_t serial)
{
	pthread_mutex_lock(&f->lock);
	f->st.applied = serial;
	pthread_cond_signal(&f->report_now);
	pthread_mutex_unlock(&f->lock);
	save_status(f);
}

void su_follow__status(struct su_follow *f, struct su_follow_status *st)
{
	pthread_mutex_lock(&f->lock);
	*st = f->st;
	pthread_mutex_unlock(&f->lock);
}

void su_follow__stop(struct su_follow *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	atomic_store(&f->stop, true);
	pthread_cond_broadcast(&f->report_now);
	pthread_mutex_unlock(&f->lock);
	if (f->follow_started)
		pthread_join(f->follow_thread, NULL);
	if (f->report_started)
		pthread_join(f->report_thread, NULL);
	su_store__close(f->reader);
	su_store__close(f->reporter);
	pthread_cond_destroy(&f->report_now);
	pthread_mutex_destroy(&f->lock);
	free(f->url);
	free(f->name);
	free(f->role);
	free(f->dc);
	free(f->state_dir);
	free(f);
}
