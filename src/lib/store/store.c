/* The store interface and its two backends (see store.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "lib/store/store.h"
#include "lib/store/record.h"
#include "lib/store/version.h"
#include "lib/strmap.h"
#include "lib/util.h"

/* A shard record a node resolved last, to skip the look-up when the next
 * version did not change it.  A node reads the same few shards each time
 * (an agent one; a router its DC's and the ranges' parts, about 20 for
 * the bench fleet), so a few dozen are remembered, and their bytes cached. */
struct known_record {
	char *name, *key, *value;
	uint64_t serial;
};
#define KNOWN_RECORDS 64
#define CACHED_SHARDS 64

struct su_store {
	char *url;    /* as given, for messages */
	char *endpoints; /* etcd: for the writer's extra lanes (batch) */
	struct su_etcd_opts opts;
	char *opt_strs[5];
	char *path;   /* file backend */
	char *prefix; /* etcd backend: key prefix, no trailing '/' */
	struct su_etcd *etcd;
	unsigned keep;
	int64_t rev; /* store revision of the last version-key read */
	struct su_version seen; /* the version a watch event carried, unread yet */
	bool seen_valid;
	struct known_record known[KNOWN_RECORDS];
	unsigned known_next;
	uint64_t downloaded; /* shard bytes fetched from etcd (cache hits: none) */
	/* The last shards read: an unchanged one (same checksum) is not
	 * downloaded again. */
	struct cached { char *name; uint64_t hash; char *data; size_t len; } cache[CACHED_SHARDS];
	unsigned cache_next;
};

static struct cached *cache_find(struct su_store *s, const char *name, uint64_t hash, size_t len)
{
	for (unsigned i = 0; i < CACHED_SHARDS; i++)
		if (s->cache[i].name && !strcmp(s->cache[i].name, name) && s->cache[i].hash == hash &&
		    s->cache[i].len == len)
			return &s->cache[i];
	return NULL;
}

static void cache_put(struct su_store *s, const char *name, uint64_t hash, const char *data, size_t len)
{
	struct cached *c = &s->cache[s->cache_next++ % CACHED_SHARDS];
	char *n = strdup(name), *d = malloc(len + 1);

	if (!n || !d) {
		free(n);
		free(d);
		return;
	}
	memcpy(d, data, len + 1);
	free(c->name);
	free(c->data);
	*c = (struct cached){ n, hash, d, len };
}

/* ---- opening ----------------------------------------------------------------- */

static int open_etcd(struct su_store *s, const char *rest, const struct su_store_opts *o, struct su_err *err)
{
	const char *slash = strchr(rest, '/');
	char *eps = slash ? strndup(rest, (size_t)(slash - rest)) : strdup(rest);
	int ret;

	s->prefix = strdup(slash && slash[1] ? slash : SU_STORE_DEFAULT_PREFIX);
	if (!eps || !s->prefix) {
		free(eps);
		return su_err__set(err, ENOMEM, "out of memory");
	}
	while (strlen(s->prefix) > 1 && s->prefix[strlen(s->prefix) - 1] == '/')
		s->prefix[strlen(s->prefix) - 1] = '\0';
	ret = su_etcd__open(eps, o ? &o->etcd : NULL, &s->etcd, err);
	s->endpoints = eps;
	if (o) { /* kept for the writer's lanes: the caller's strings may go */
		const char *const *from[5] = { &o->etcd.ca, &o->etcd.cert, &o->etcd.key, &o->etcd.user,
					       &o->etcd.password };
		const char **to[5] = { &s->opts.ca, &s->opts.cert, &s->opts.key, &s->opts.user, &s->opts.password };

		s->opts.timeout_ms = o->etcd.timeout_ms;
		for (int i = 0; i < 5; i++)
			*to[i] = s->opt_strs[i] = *from[i] ? strdup(*from[i]) : NULL;
	}
	return ret;
}

int su_store__open(const char *url, const struct su_store_opts *o, struct su_store **out, struct su_err *err)
{
	struct su_store *s = calloc(1, sizeof(*s));
	int ret = 0;

	*out = NULL;
	if (!s || !(s->url = strdup(url))) {
		free(s);
		return su_err__set(err, ENOMEM, "out of memory");
	}
	s->keep = o && o->keep ? o->keep : SU_STORE_DEFAULT_KEEP;
	if (!strncmp(url, "etcd://", 7))
		ret = open_etcd(s, url + 7, o, err);
	else if (!strncmp(url, "file://", 7))
		s->path = strdup(url + 7);
	else if (strstr(url, "://"))
		ret = su_err__set(err, EINVAL, "%s: unknown store (file:///PATH or etcd://HOST:PORT[,...][/PREFIX])", url);
	else
		s->path = strdup(url);
	if (!ret && !s->etcd && (!s->path || !s->path[0]))
		ret = su_err__set(err, EINVAL, "%s: no path", url);
	if (ret) {
		su_store__close(s);
		return ret;
	}
	*out = s;
	return 0;
}

void su_store__close(struct su_store *s)
{
	if (!s)
		return;
	su_etcd__close(s->etcd);
	for (unsigned i = 0; i < CACHED_SHARDS; i++) {
		free(s->cache[i].name);
		free(s->cache[i].data);
	}
	for (unsigned i = 0; i < KNOWN_RECORDS; i++) {
		free(s->known[i].name);
		free(s->known[i].key);
		free(s->known[i].value);
	}
	for (int i = 0; i < 5; i++)
		free(s->opt_strs[i]);
	free(s->endpoints);
	free(s->url);
	free(s->path);
	free(s->prefix);
	free(s);
}

const char *su_store__url(const struct su_store *s)
{
	return s->url;
}

bool su_store__is_file(const struct su_store *s)
{
	return !s->etcd;
}

const char *su_store__path(const struct su_store *s)
{
	return s->path;
}

struct su_etcd *su_store__etcd(struct su_store *s)
{
	return s->etcd;
}

int64_t su_store__revision(const struct su_store *s)
{
	return s->rev;
}

char *su_store__key(const struct su_store *s, const char *fmt, ...)
{
	char *tail, *key;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&tail, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	if (asprintf(&key, "%s/%s", s->prefix ? s->prefix : "", tail) < 0)
		key = NULL;
	free(tail);
	return key;
}

/* Store errors carry the store URL, then what went wrong. */
static int fail(const struct su_store *s, struct su_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(const struct su_store *s, struct su_err *err, int code, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return su_err__set(err, code, "%s: %s", s->url, msg);
}

/* ---- the version key --------------------------------------------------------- */

static int parse_version(const struct su_store *s, const char *key, const char *val, struct su_version *v,
			 struct su_err *err)
{
	if (su_version__parse(val, v))
		return fail(s, err, EBADMSG, "key %s: bad version record '%.60s'", key, val);
	return 0;
}

static int read_version(struct su_store *s, struct su_version *v, struct su_err *err)
{
	char *key = su_store__key(s, "version");
	struct su_etcd_kv kv;
	struct su_err e;
	int ret;

	memset(v, 0, sizeof(*v));
	if (!key)
		return su_err__set(err, ENOMEM, "out of memory");
	ret = su_etcd__get(s->etcd, key, &kv, &s->rev, &e);
	if (ret == -ENOENT)
		ret = fail(s, err, ENOENT, "no plan published yet (key %s absent)", key);
	else if (ret)
		ret = su_err__set(err, -ret, "%s", e.msg);
	else {
		if (!(ret = parse_version(s, key, kv.value, v, err)))
			v->mod_rev = kv.mod_revision;
		free(kv.key);
		free(kv.value);
	}
	free(key);
	return ret;
}

/* The DIR of committed serial n, from the history. */
static int history_dir(struct su_store *s, uint64_t n, struct su_version *v, struct su_err *err)
{
	char *key = su_store__key(s, "history/%020" PRIu64, n);
	struct su_etcd_kv kv;
	struct su_err e;
	int ret;

	if (!key)
		return su_err__set(err, ENOMEM, "out of memory");
	ret = su_etcd__get(s->etcd, key, &kv, NULL, &e);
	if (ret == -ENOENT)
		ret = fail(s, err, ENOENT, "serial %" PRIu64 " is not kept in the store (key %s absent)", n, key);
	else if (ret)
		ret = su_err__set(err, -ret, "%s", e.msg);
	else {
		v->serial = n;
		snprintf(v->dir, sizeof(v->dir), "%s", kv.value);
		free(kv.key);
		free(kv.value);
	}
	free(key);
	return ret;
}

int su_store__serial(struct su_store *s, uint64_t *serial, struct su_err *err)
{
	struct su_version v;
	int ret;

	if (!s->etcd) {
		struct su_plan *p;

		if ((ret = su_plan__load(s->path, &p, err)))
			return ret;
		*serial = p->serial;
		su_plan__free(p);
		return 0;
	}
	if ((ret = read_version(s, &v, err)))
		return ret;
	*serial = v.serial;
	return 0;
}

/* ---- reading shards ---------------------------------------------------------- */

/* Layout 2 (a DIR ending in KEPT_MARK): a shard's record is written once,
 * by the version that changed it, at m/NAME#DIR, and outlives that version
 * while a kept version uses it; version V's record of NAME is the newest
 * committed one at or before V.DIR.  Layout 1 (older writers): a record
 * per shard per version at v/DIR/NAME/meta. */
#define KEPT_MARK "-r"

static bool records_kept(const char *dir)
{
	size_t n = strlen(dir);

	return n > strlen(KEPT_MARK) && !strcmp(dir + n - strlen(KEPT_MARK), KEPT_MARK);
}

/* Layout 2: the newest records of NAME at or before v's DIR, and the
 * staging marks, in one transaction (one snapshot): a record whose DIR
 * still has its staging mark is a writer's that has not committed (or
 * lost, or died) and is skipped.  A writer puts its mark before its
 * records and removes it only by committing or after removing them. */
#define RECORD_LOOKBACK 4

static int find_record(struct su_store *s, const struct su_version *v, const char *name, struct su_etcd_kv *out,
		       bool *missing, struct su_err *err)
{
	char *from = su_store__key(s, "m/%s#", name), *upto = su_store__key(s, "m/%s#%s", name, v->dir);
	char *to = upto ? su_etcd__prefix_end(upto) : NULL, *sfrom = su_store__key(s, "staging/");
	char *sto = sfrom ? su_etcd__prefix_end(sfrom) : NULL;
	json_t *resp = NULL, *recs, *marks;
	int ret;

	if (!from || !to || !sto) {
		ret = su_err__set(err, ENOMEM, "out of memory");
		goto out;
	}
	ret = su_etcd__call(s->etcd, "kv/txn",
			    json_pack("{s:[{s:{s:o,s:o,s:i,s:s,s:s}},{s:{s:o,s:o,s:b}}]}", "success", "request_range",
				      "key", su_etcd__b64s(from), "range_end", su_etcd__b64s(to), "limit",
				      RECORD_LOOKBACK, "sort_order", "DESCEND", "sort_target", "KEY", "request_range",
				      "key", su_etcd__b64s(sfrom), "range_end", su_etcd__b64s(sto), "keys_only", 1),
			    &resp, err);
	if (ret)
		goto out;
	recs = json_object_get(json_object_get(json_array_get(json_object_get(resp, "responses"), 0), "response_range"),
			       "kvs");
	marks = json_object_get(json_object_get(json_array_get(json_object_get(resp, "responses"), 1), "response_range"),
				"kvs");
	ret = -ENOENT;
	for (size_t i = 0; ret == -ENOENT && i < json_array_size(recs); i++) {
		struct su_etcd_kv kv;
		const char *dir;
		bool staged = false;

		if (su_etcd__decode_kv(json_array_get(recs, i), &kv)) {
			ret = fail(s, err, EBADMSG, "key %s...: undecodable record", from);
			break;
		}
		dir = kv.key + strlen(from);
		for (size_t k = 0; !staged && k < json_array_size(marks); k++) {
			struct su_etcd_kv m;

			if (!su_etcd__decode_kv(json_array_get(marks, k), &m)) {
				staged = !strcmp(m.key + strlen(sfrom), dir) && strcmp(dir, v->dir);
				free(m.key);
				free(m.value);
			}
		}
		if (!staged && !strchr(dir, '/') && !strchr(dir, '#')) {
			*out = kv;
			ret = 0;
		} else {
			free(kv.key);
			free(kv.value);
		}
	}
	if (ret == -ENOENT) {
		*missing = true;
		ret = fail(s, err, EBADMSG, "key %s missing: version %" PRIu64 " has no record of shard %s (meta missing)",
			   upto, v->serial, name);
	}
out:
	json_decref(resp);
	free(from);
	free(upto);
	free(to);
	free(sfrom);
	free(sto);
	return ret;
}

static struct known_record *known_find(struct su_store *s, const char *name)
{
	for (unsigned i = 0; i < KNOWN_RECORDS; i++)
		if (s->known[i].name && !strcmp(s->known[i].name, name))
			return &s->known[i];
	return NULL;
}

static bool known_record(struct su_store *s, const struct su_version *v, const char *name, struct su_etcd_kv *kv)
{
	struct known_record *k = known_find(s, name);

	if (!k || !su_version__unchanged(v, name, k->serial))
		return false;
	memset(kv, 0, sizeof(*kv));
	kv->key = strdup(k->key);
	kv->value = strdup(k->value);
	if (!kv->key || !kv->value) {
		free(kv->key);
		free(kv->value);
		return false;
	}
	kv->value_len = strlen(kv->value);
	k->serial = v->serial;
	return true;
}

static void known_free(struct known_record *k)
{
	free(k->name);
	free(k->key);
	free(k->value);
	memset(k, 0, sizeof(*k));
}

static void remember_record(struct su_store *s, const struct su_version *v, const char *name,
			    const struct su_etcd_kv *kv)
{
	struct known_record *k = known_find(s, name);

	if (!k)
		k = &s->known[s->known_next++ % KNOWN_RECORDS];
	known_free(k);
	k->name = strdup(name);
	k->key = strdup(kv->key);
	k->value = strdup(kv->value);
	k->serial = v->serial;
	if (!k->name || !k->key || !k->value)
		known_free(k);
}

/* The record of shard NAME in version v, either layout.  *missing: there is
 * none (no such shard, or a broken version). */
static int shard_record(struct su_store *s, const struct su_version *v, const char *name, struct su_etcd_kv *kv,
			bool *missing, struct su_err *err)
{
	char *meta;
	struct su_err e;
	int ret;

	*missing = false;
	if (records_kept(v->dir)) {
		if (known_record(s, v, name, kv))
			return 0;
		ret = find_record(s, v, name, kv, missing, err);
		if (!ret)
			remember_record(s, v, name, kv);
		return ret;
	}
	if (!(meta = su_store__key(s, "v/%s/%s/meta", v->dir, name)))
		return su_err__set(err, ENOMEM, "out of memory");
	ret = su_etcd__get(s->etcd, meta, kv, NULL, &e);
	if (ret == -ENOENT) {
		*missing = true;
		ret = fail(s, err, EBADMSG, "key %s missing: version %" PRIu64 " points at shards that are not there",
			   meta, v->serial);
	} else if (ret) {
		ret = su_err__set(err, -ret, "%s", e.msg);
	}
	free(meta);
	return ret;
}

/* A record of version v's (parsed, then checked against v). */
static bool record_of(struct su_shard_record *r, const struct su_etcd_kv *kv, const struct su_version *v)
{
	if (su_shard_record__parse(kv->value, SU_STORE_CHUNK, r))
		return false;
	/* Layout 2: the version that wrote the record, named in its key. */
	if (records_kept(v->dir))
		return r->serial <= v->serial && strrchr(kv->key, '#') && !strcmp(r->datadir, strrchr(kv->key, '#') + 1);
	return r->serial == v->serial;
}

/* The ZBYTES of the record's chunks, concatenated. */
static int read_chunks(struct su_store *s, const struct su_version *v, const char *name, const struct su_shard_record *r,
		       char *buf, char **last_key, struct su_err *err)
{
	struct su_etcd_kv kv;
	struct su_err e;
	size_t have = 0;
	int ret = 0;

	for (unsigned c = 0; !ret && c < r->chunks; c++) {
		free(*last_key);
		if (!(*last_key = su_store__key(s, "v/%s/%s/%04u", r->datadir, name, c)))
			return su_err__set(err, ENOMEM, "out of memory");
		ret = su_etcd__get(s->etcd, *last_key, &kv, NULL, &e);
		if (ret == -ENOENT)
			return fail(s, err, EBADMSG, "key %s missing: shard of version %" PRIu64 " incomplete", *last_key,
				    v->serial);
		if (ret)
			return su_err__set(err, -ret, "%s", e.msg);
		if (have + kv.value_len > r->zbytes)
			ret = fail(s, err, EBADMSG, "key %s: shard longer than its %" PRIu64 " bytes", *last_key, r->zbytes);
		else
			memcpy(buf + have, kv.value, kv.value_len);
		have += kv.value_len;
		free(kv.key);
		free(kv.value);
	}
	if (!ret && have != r->zbytes)
		ret = fail(s, err, EBADMSG, "key %s: shard corrupt (%zu of %" PRIu64 " bytes); not applied",
			   *last_key ? *last_key : name, have, r->zbytes);
	return ret;
}

/* The shard's text from its chunks: inflated (format 2) and checked. */
static int shard_text(struct su_store *s, const struct su_version *v, const char *name, const struct su_shard_record *r,
		      char **out, struct su_err *err)
{
	char *buf = malloc(r->bytes + 1), *z = r->format == 2 ? malloc(r->zbytes + 1) : NULL, *key = NULL;
	uLongf have = r->bytes;
	int ret = buf && (z || r->format != 2) ? 0 : su_err__set(err, ENOMEM, "out of memory");

	if (!ret)
		ret = read_chunks(s, v, name, r, z ? z : buf, &key, err);
	if (!ret && z && uncompress((Bytef *)buf, &have, (const Bytef *)z, r->zbytes) != Z_OK)
		have = (uLongf)-1;
	if (!ret && (have != r->bytes || su_fnv1a64(buf, r->bytes) != r->hash))
		ret = fail(s, err, EBADMSG, "key %s: shard corrupt (checksum mismatch); not applied", key ? key : name);
	if (!ret) {
		buf[r->bytes] = '\0';
		s->downloaded += r->zbytes;
		*out = buf;
		buf = NULL;
	}
	free(buf);
	free(z);
	free(key);
	return ret;
}

static int read_shard_x(struct su_store *s, const struct su_version *v, const char *name, char **data, size_t *len,
			bool *missing, struct su_err *err)
{
	struct su_shard_record r = { 0 };
	struct cached *hit;
	struct su_etcd_kv kv;
	int ret;

	*data = NULL;
	if ((ret = shard_record(s, v, name, &kv, missing, err)))
		return ret;
	if (!record_of(&r, &kv, v))
		ret = fail(s, err, EBADMSG, "key %s: bad shard record '%.60s'", kv.key, kv.value);
	free(kv.key);
	free(kv.value);
	if (ret)
		return ret;
	if ((hit = cache_find(s, name, r.hash, r.bytes))) {
		if (!(*data = malloc(r.bytes + 1)))
			return su_err__set(err, ENOMEM, "out of memory");
		memcpy(*data, hit->data, r.bytes + 1);
	} else if (!(ret = shard_text(s, v, name, &r, data, err))) {
		cache_put(s, name, r.hash, *data, r.bytes);
	}
	if (!ret)
		*len = r.bytes;
	return ret;
}

static int read_shard(struct su_store *s, const struct su_version *v, const char *name, char **data, size_t *len,
		      struct su_err *err)
{
	bool missing;

	return read_shard_x(s, v, name, data, len, &missing, err);
}

/* Parses a shard and checks it is of the version that pointed at it. */
static int parse_shard(struct su_store *s, const struct su_version *v, const char *name, const char *data,
		       size_t len, struct su_plan **out, struct su_err *err)
{
	char where[512];
	int ret;

	snprintf(where, sizeof(where), "%s: %s/v/%s/%s", s->url, s->prefix, v->dir, name);
	if ((ret = su_plan__parse(data, len, where, out, err)))
		return ret == -EINVAL ? -EBADMSG : ret;
	/* Views and the plan's head carry serial 0 (content-addressed): the
	 * version gives theirs. */
	if (!(*out)->serial)
		(*out)->serial = v->serial;
	if ((*out)->serial != v->serial) {
		ret = su_err__set(err, EBADMSG, "%s: serial %" PRIu64 " under version %" PRIu64, where,
				  (*out)->serial, v->serial);
		su_plan__free(*out);
		*out = NULL;
	}
	return ret;
}

/* Shard NAME whole: a manifest's parts, concatenated (the plan and the
 * ranges; one written whole, by an older writer, is read as it is). */
static int read_parts(struct su_store *s, const struct su_version *v, const char *name, char **data, size_t *len,
		      struct su_err *err)
{
	static const char magic[] = "softunicast-parts 1\n";
	char *manifest = NULL, *part = NULL, *buf = NULL;
	size_t mlen = 0, plen, have = 0;
	FILE *fp;
	int ret = read_shard(s, v, name, &manifest, &mlen, err);

	if (ret || strncmp(manifest, magic, sizeof(magic) - 1)) {
		*data = manifest;
		*len = mlen;
		return ret;
	}
	if (!(fp = open_memstream(&buf, &have))) {
		free(manifest);
		return su_err__set(err, ENOMEM, "out of memory");
	}
	for (char *save = NULL, *l = strtok_r(manifest + sizeof(magic) - 1, "\n", &save); !ret && l;
	     l = strtok_r(NULL, "\n", &save)) {
		if (!(ret = read_shard(s, v, l, &part, &plen, err)) && fwrite(part, 1, plen, fp) != plen)
			ret = su_err__set(err, ENOMEM, "out of memory");
		free(part);
		part = NULL;
	}
	free(manifest);
	if (fclose(fp) && !ret)
		ret = su_err__set(err, ENOMEM, "out of memory");
	if (ret) {
		free(buf);
		return ret;
	}
	*data = buf;
	*len = have;
	return 0;
}

static int read_dc_view(struct su_store *s, const struct su_version *v, const char *dc, struct su_plan **out,
			uint64_t *bytes, struct su_err *err)
{
	char *name = NULL, *text = NULL, *ranges = NULL, where[512];
	size_t len = 0, rlen = 0;
	int ret;

	if (asprintf(&name, "dc/%s", dc) < 0)
		return su_err__set(err, ENOMEM, "out of memory");
	/* The shared shard first: when it is missing, the version is broken,
	 * whereas a missing DC shard means no such DC. */
	bool missing = false;

	ret = read_parts(s, v, "ranges", &ranges, &rlen, err);
	if (!ret)
		ret = read_shard_x(s, v, name, &text, &len, &missing, err);
	if (ret == -EBADMSG && missing && ranges)
		ret = fail(s, err, ENOENT, "no data center '%s' in plan serial %" PRIu64, dc, v->serial);
	snprintf(where, sizeof(where), "%s: %s/v/%s/%s", s->url, s->prefix, v->dir, name);
	if (!ret && (ret = su_layout__dc_view(text, len, ranges, rlen, dc, where, out, err)) == -EINVAL)
		ret = -EBADMSG;
	if (!ret && !(*out)->serial)
		(*out)->serial = v->serial;
	free(name);
	free(text);
	free(ranges);
	return ret;
}

static bool shard_exists(struct su_store *s, const struct su_version *v, const char *name)
{
	struct su_etcd_kv kv;
	bool missing;
	bool yes = !shard_record(s, v, name, &kv, &missing, NULL);

	if (yes) {
		free(kv.key);
		free(kv.value);
	}
	return yes;
}

static int read_etcd(struct su_store *s, uint64_t serial, enum su_view view, const char *vname,
		     struct su_plan **out, uint64_t *bytes, struct su_err *err)
{
	struct su_version v = { 0 };
	char *name = NULL, *text = NULL;
	size_t len = 0;
	bool missing = false;
	uint64_t before = s->downloaded;
	int ret = 0;

	if (serial)
		ret = history_dir(s, serial, &v, err);
	else if (s->seen_valid) { /* the watch event's, once: a retry asks the store again */
		v = s->seen;
		s->seen_valid = false;
	} else
		ret = read_version(s, &v, err);
	if (ret)
		return ret;
	if (view == SU_VIEW_DC) {
		ret = read_dc_view(s, &v, vname, out, bytes, err);
		if (bytes)
			*bytes = s->downloaded - before;
		return ret;
	}
	if (asprintf(&name, "%s%s", view == SU_VIEW_SERVER ? "server/" : "plan", view == SU_VIEW_SERVER ? vname : "") < 0)
		return su_err__set(err, ENOMEM, "out of memory");
	ret = view == SU_VIEW_PLAN ? read_parts(s, &v, "plan", &text, &len, err) :
				     read_shard_x(s, &v, name, &text, &len, &missing, err);
	if (ret == -EBADMSG && view == SU_VIEW_SERVER && missing &&
	    shard_exists(s, &v, "ranges"))
		ret = fail(s, err, ENOENT, "no active server '%s' in plan serial %" PRIu64, vname, v.serial);
	if (!ret)
		ret = parse_shard(s, &v, name, text, len, out, err);
	if (bytes)
		*bytes = s->downloaded - before;
	free(text);
	free(name);
	return ret;
}

int su_store__read(struct su_store *s, uint64_t serial, enum su_view view, const char *name,
		   struct su_plan **out, uint64_t *bytes, struct su_err *err)
{
	int ret;

	*out = NULL;
	if (s->etcd)
		return read_etcd(s, serial, view, name, out, bytes, err);
	if ((ret = su_plan__load(s->path, out, err)))
		return ret;
	if (serial && (*out)->serial != serial) {
		ret = fail(s, err, ENOENT, "a file store keeps only its current serial %" PRIu64, (*out)->serial);
		su_plan__free(*out);
		*out = NULL;
	}
	return ret;
}

int su_store__history(struct su_store *s, uint64_t **serials, size_t *n, struct su_err *err)
{
	char *from = su_store__key(s, "history/"), *to = from ? su_etcd__prefix_end(from) : NULL;
	struct su_etcd_kv *kvs = NULL;
	size_t nk = 0;
	int ret;

	*serials = NULL;
	*n = 0;
	if (!s->etcd) {
		free(from);
		free(to);
		*serials = malloc(sizeof(**serials));
		if (!*serials)
			return su_err__set(err, ENOMEM, "out of memory");
		*n = 1;
		return su_store__serial(s, *serials, err);
	}
	ret = !to ? su_err__set(err, ENOMEM, "out of memory") :
		    su_etcd__range(s->etcd, from, to, true, 0, &kvs, &nk, NULL, err);
	if (!ret && !(*serials = calloc(nk + 1, sizeof(**serials))))
		ret = su_err__set(err, ENOMEM, "out of memory");
	/* Keys sort by their zero-padded serial: newest last. */
	for (size_t i = 0; !ret && i < nk; i++)
		(*serials)[nk - 1 - i] = strtoull(kvs[i].key + strlen(from), NULL, 10);
	if (!ret)
		*n = nk;
	su_etcd_kv__free(kvs, nk);
	free(from);
	free(to);
	return ret;
}

/* ---- publishing -------------------------------------------------------------- */

/* Puts batched into transactions of at most SU_STORE_TXN_OPS operations and
 * SU_STORE_CHUNK bytes, so no request exceeds etcd's limits.  A version is
 * many transactions whose order does not matter (nothing reads them before
 * the commit, sent after batch__finish), so up to BATCH_LANES go at once,
 * each on its own connection: etcd commits concurrent proposals in one
 * fsync, where one at a time each waits for its own. */
#define BATCH_LANES 4

struct batch {
	struct su_store *s;
	json_t *ops;
	size_t bytes;
	uint64_t requests;
	json_t *pending[BATCH_LANES];
	unsigned n_pending;
	struct su_etcd *lane[BATCH_LANES]; /* lane 0: the store's own handle */
};

struct lane_call {
	struct su_etcd *e;
	json_t *req;
	int ret;
	struct su_err err;
};

static void *lane_main(void *arg)
{
	struct lane_call *c = arg;
	json_t *resp = NULL;

	c->ret = su_etcd__call(c->e, "kv/txn", c->req, &resp, &c->err);
	json_decref(resp);
	return NULL;
}

/* Sends the pending transactions, one per lane, and waits for them all. */
static int batch__send(struct batch *b, struct su_err *err)
{
	struct lane_call c[BATCH_LANES];
	pthread_t t[BATCH_LANES];
	bool started[BATCH_LANES] = { false };
	unsigned n = b->n_pending;
	int ret = 0;

	b->lane[0] = b->s->etcd;
	for (unsigned i = 0; i < n; i++) {
		c[i] = (struct lane_call){ .e = b->lane[i], .req = b->pending[i] };
		b->pending[i] = NULL;
		/* An extra lane that cannot open: its request goes on lane 0. */
		if (i && !c[i].e && su_etcd__open(b->s->endpoints, &b->s->opts, &b->lane[i], NULL) == 0)
			c[i].e = b->lane[i];
		if (!c[i].e)
			c[i].e = b->s->etcd;
	}
	b->n_pending = 0;
	for (unsigned i = 1; i < n; i++)
		started[i] = c[i].e != b->s->etcd && !pthread_create(&t[i], NULL, lane_main, &c[i]);
	for (unsigned i = 0; i < n; i++)
		if (!started[i])
			lane_main(&c[i]);
	for (unsigned i = 0; i < n; i++) {
		if (started[i])
			pthread_join(t[i], NULL);
		if (c[i].ret && !ret) {
			ret = c[i].ret;
			if (err)
				*err = c[i].err;
		}
	}
	return ret;
}

static int batch__flush(struct batch *b, struct su_err *err)
{
	if (!json_array_size(b->ops))
		return 0;
	b->pending[b->n_pending++] = json_pack("{s:o}", "success", b->ops); /* takes the ops */
	b->ops = json_array();
	b->bytes = 0;
	b->requests++;
	return b->n_pending == BATCH_LANES ? batch__send(b, err) : 0;
}

/* With ok: everything queued sent (0 or the first error); without (an
 * earlier failure): dropped.  The lanes are closed either way. */
static int batch__finish(struct batch *b, bool ok, struct su_err *err)
{
	int ret = ok ? batch__flush(b, err) : 0, sent = 0;

	if (ok && !ret)
		sent = batch__send(b, err);
	for (unsigned i = 0; i < b->n_pending; i++)
		json_decref(b->pending[i]);
	b->n_pending = 0;

	for (unsigned i = 1; i < BATCH_LANES; i++) {
		su_etcd__close(b->lane[i]);
		b->lane[i] = NULL;
	}
	json_decref(b->ops);
	b->ops = NULL;
	return ret ? ret : sent;
}

static int batch__put(struct batch *b, char *key, const void *val, size_t len, struct su_err *err)
{
	int ret = 0;

	if (!key || !b->ops) {
		free(key);
		return su_err__set(err, ENOMEM, "out of memory");
	}
	if (json_array_size(b->ops) + 1 > SU_STORE_TXN_OPS || b->bytes + len + strlen(key) > su_store__chunk_bytes)
		ret = batch__flush(b, err);
	if (!ret)
		json_array_append_new(b->ops, json_pack("{s:{s:o,s:o}}", "request_put", "key", su_etcd__b64s(key),
							"value", su_etcd__b64(val, len)));
	b->bytes += len + strlen(key);
	free(key);
	return ret;
}

size_t su_store__chunk_bytes = SU_STORE_CHUNK;

/* Chunks under datadir/NAME only when datadir is this version's dir; an
 * unchanged shard points at the older version's chunks.  Layout 2 writes a
 * record only with the chunks (an unchanged shard costs nothing), and the
 * chunks hold the shard deflated (RFC 1950): etcd takes about 0.1 s per
 * MiB through its JSON gateway, and plan text shrinks 5 to 10 times.
 * Layout 1 wrote one record per shard per version, and the text as it is. */
static int write_shard(struct batch *b, const char *dir, const char *datadir, uint64_t serial,
		       const struct su_shard *sh, uint64_t hash, struct su_err *err)
{
	bool changed = !strcmp(dir, datadir), kept = records_kept(dir);
	uLongf zlen = kept && changed ? compressBound(sh->len) : 0;
	Bytef *z = zlen ? malloc(zlen) : NULL;
	const char *data = sh->data;
	size_t len = sh->len;
	struct su_shard_record r;
	unsigned chunks;
	char meta[200];
	int ret = 0;

	if (zlen && (!z || compress2(z, &zlen, (const Bytef *)sh->data, sh->len, 1) != Z_OK)) {
		free(z);
		return su_err__set(err, ENOMEM, "out of memory");
	}
	if (z) {
		data = (const char *)z;
		len = zlen;
	}
	chunks = (unsigned)((len + su_store__chunk_bytes - 1) / su_store__chunk_bytes);
	for (unsigned c = 0; !ret && changed && c < chunks; c++) {
		size_t off = (size_t)c * su_store__chunk_bytes;
		size_t n = len - off < su_store__chunk_bytes ? len - off : su_store__chunk_bytes;

		ret = batch__put(b, su_store__key(b->s, "v/%s/%s/%04u", dir, sh->name, c), data + off, n, err);
	}
	free(z);
	if (ret || (kept && !changed))
		return ret;
	/* The record last: a reader finding it finds every chunk (the batch
	 * may reorder, but nothing is read before the commit). */
	r = (struct su_shard_record){ .format = kept ? 2 : 1, .chunks = chunks, .serial = serial, .bytes = sh->len,
				      .hash = hash, .zbytes = len };
	snprintf(r.datadir, sizeof(r.datadir), "%s", datadir);
	if (su_shard_record__format(&r, meta, sizeof(meta)) < 0)
		return su_err__set(err, ENAMETOOLONG, "shard %s: record too long", sh->name);
	if (kept)
		return batch__put(b, su_store__key(b->s, "m/%s#%s", sh->name, dir), meta, strlen(meta), err);
	return batch__put(b, su_store__key(b->s, "v/%s/%s/meta", dir, sh->name), meta, strlen(meta), err);
}

/* A version's index: "NAME HASH BYTES DATADIR [DIGEST]" per shard, for the
 * next writer (dedup; DIGEST: the inputs a view was cut from, so an
 * unchanged view is not even cut) and the GC (which chunks a kept version
 * still uses).  Older writers wrote no DIGEST: every view is cut once. */
struct index {
	struct su_strmap names;
	struct ientry { char name[200]; uint64_t hash, bytes; char datadir[64]; uint64_t digest; } *v;
	size_t n;
};

static void index__free(struct index *x)
{
	su_strmap__free(&x->names);
	free(x->v);
	memset(x, 0, sizeof(*x));
}

static int index__parse(struct index *x, char *text)
{
	size_t cap = 0;

	for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		struct ientry e = { .digest = 0 };
		int got = sscanf(l, "%199s %" SCNx64 " %" SCNu64 " %63s %" SCNx64, e.name, &e.hash, &e.bytes, e.datadir,
				 &e.digest);

		if (got < 4)
			continue;
		if (x->n == cap) {
			struct ientry *nv = realloc(x->v, (cap = cap ? 2 * cap : 256) * sizeof(*nv));

			if (!nv)
				return -ENOMEM;
			x->v = nv;
		}
		x->v[x->n] = e;
		if (su_strmap__put(&x->names, e.name, (uint32_t)x->n) == -ENOMEM)
			return -ENOMEM;
		x->n++;
	}
	return 0;
}

/* The index of committed version v; an empty one when it has none. */
static int index__read(struct su_store *s, const struct su_version *v, struct index *x, struct su_err *err)
{
	char *text = NULL;
	size_t len;
	int ret;

	memset(x, 0, sizeof(*x));
	if (!v->serial)
		return 0;
	bool missing;

	ret = read_shard_x(s, v, "index", &text, &len, &missing, err);
	if (ret == -EBADMSG && missing)
		ret = 0; /* older layout: nothing to share */
	if (!ret && text)
		ret = index__parse(x, text);
	free(text);
	return ret;
}

static const struct ientry *index__get(const struct index *x, const char *name)
{
	uint32_t i;

	return su_strmap__get(&x->names, name, &i) ? NULL : &x->v[i];
}

static json_t *compare_version(const char *key, int64_t mod_rev)
{
	char r[24];

	snprintf(r, sizeof(r), "%" PRId64, mod_rev);
	/* Absent key: its create_revision is 0 (etcd's clientv3.CreateRevision(k) == 0). */
	if (!mod_rev)
		return json_pack("{s:o,s:s,s:s,s:s}", "key", su_etcd__b64s(key), "result", "EQUAL", "target", "CREATE",
				 "create_revision", "0");
	return json_pack("{s:o,s:s,s:s,s:s}", "key", su_etcd__b64s(key), "result", "EQUAL", "target", "MOD",
			 "mod_revision", r);
}

static json_t *put_op(const char *key, const char *val)
{
	return json_pack("{s:{s:o,s:o}}", "request_put", "key", su_etcd__b64s(key), "value", su_etcd__b64s(val));
}

static json_t *delete_op(const char *key)
{
	return json_pack("{s:{s:o}}", "request_delete_range", "key", su_etcd__b64s(key));
}

/* One transaction: if the version key is still what we read, point it at
 * dir, record it in the history and drop the staging mark. */
static int commit(struct su_store *s, const struct su_version *cur, uint64_t serial, const char *dir,
		  const struct su_changes *changed, bool *won, struct su_err *err)
{
	char *vkey = su_store__key(s, "version"), *hkey = su_store__key(s, "history/%020" PRIu64, serial),
	     *skey = su_store__key(s, "staging/%s", dir), val[SU_VERSION_VALUE_MAX];
	json_t *resp = NULL;
	int ret;

	if (!vkey || !hkey || !skey) {
		ret = su_err__set(err, ENOMEM, "out of memory");
		goto out;
	}
	su_version__format(serial, dir, changed, val, sizeof(val));
	ret = su_etcd__call(s->etcd, "kv/txn",
			    json_pack("{s:[o],s:[o,o,o]}", "compare", compare_version(vkey, cur->mod_rev), "success",
				      put_op(vkey, val), put_op(hkey, dir), delete_op(skey)),
			    &resp, err);
	if (!ret)
		*won = json_is_true(json_object_get(resp, "succeeded"));
out:
	json_decref(resp);
	free(vkey);
	free(hkey);
	free(skey);
	return ret;
}

/* Layout 2: the records DIR wrote, wherever their shard names put them (a
 * scan of the record keys: only for a writer that lost or died). */
static int delete_records(struct su_store *s, const char *dir, struct su_err *err)
{
	char *from = su_store__key(s, "m/"), *to = from ? su_etcd__prefix_end(from) : NULL;
	struct su_etcd_kv *kvs = NULL;
	size_t n = 0, dl = strlen(dir);
	struct batch b = { .s = s, .ops = json_array() };
	int ret = !to || !b.ops ? -ENOMEM : su_etcd__range(s->etcd, from, to, true, 0, &kvs, &n, NULL, err);

	for (size_t i = 0; !ret && i < n; i++) {
		size_t kl = strlen(kvs[i].key);

		if (kl <= dl + 1 || kvs[i].key[kl - dl - 1] != '#' || strcmp(kvs[i].key + kl - dl, dir))
			continue;
		if (json_array_size(b.ops) + 1 > SU_STORE_TXN_OPS)
			ret = batch__flush(&b, err);
		if (!ret)
			json_array_append_new(b.ops, delete_op(kvs[i].key));
	}
	ret = batch__finish(&b, !ret, err) ?: ret;
	su_etcd_kv__free(kvs, n);
	free(from);
	free(to);
	return ret;
}

/* Everything of DIR, its staging mark last (readers skip records whose
 * DIR still has a mark). */
static int delete_dir(struct su_store *s, const char *dir, struct su_err *err)
{
	char *p = su_store__key(s, "v/%s/", dir), *mark = su_store__key(s, "staging/%s", dir);
	int ret = p && mark ? su_etcd__delete_prefix(s->etcd, p, err) : -ENOMEM;

	if (!ret) /* by DIR's name, not its mark: debris may be of any layout */
		ret = delete_records(s, dir, err);
	if (!ret)
		ret = su_etcd__delete_prefix(s->etcd, mark, err);
	free(p);
	free(mark);
	return ret;
}

/* Deletes what a dropped version D owns and no kept version uses: its meta
 * records always, its chunks unless the oldest kept version points at them
 * (references only ever point back at a shard's first unchanged version, so
 * a later version using D's chunk implies the oldest kept one does). */
static int drop_version(struct su_store *s, const struct su_version *d, const struct index *kept, struct su_err *err)
{
	struct batch b = { .s = s, .ops = json_array() };
	struct index x;
	int ret = index__read(s, d, &x, err);

	if (!ret && !x.n) /* no index: nothing can point at it */
		ret = delete_dir(s, d->dir, err);
	for (size_t i = 0; !ret && i < x.n; i++) {
		const struct ientry *k = index__get(kept, x.v[i].name);
		bool used = k && !strcmp(k->datadir, d->dir), mine = !strcmp(x.v[i].datadir, d->dir);

		/* Layout 2: D holds only the records and chunks it wrote. */
		if (records_kept(d->dir) && (used || !mine))
			continue;
		char *key = su_store__key(s, "v/%s/%s/%s", d->dir, x.v[i].name, used ? "meta" : "");
		char *end = key && !used ? su_etcd__prefix_end(key) : NULL;
		char *rec = records_kept(d->dir) ? su_store__key(s, "m/%s#%s", x.v[i].name, d->dir) : NULL;

		if (!key || (!used && !end) || !b.ops || (records_kept(d->dir) && !rec))
			ret = su_err__set(err, ENOMEM, "out of memory");
		else if (json_array_size(b.ops) + 2 > SU_STORE_TXN_OPS)
			ret = batch__flush(&b, err);
		if (!ret)
			json_array_append_new(b.ops, json_pack("{s:{s:o,s:o*}}", "request_delete_range", "key",
							       su_etcd__b64s(key), "range_end",
							       end ? su_etcd__b64s(end) : NULL));
		if (!ret && rec)
			json_array_append_new(b.ops, delete_op(rec));
		free(rec);
		free(key);
		free(end);
	}
	ret = batch__finish(&b, !ret, err) ?: ret;
	if (!ret && x.n) {
		char *ixp = su_store__key(s, "v/%s/index/", d->dir), *ixr = su_store__key(s, "m/index#%s", d->dir);

		ret = ixp && ixr ? su_etcd__delete_prefix(s->etcd, ixp, err) : -ENOMEM;
		if (!ret && records_kept(d->dir))
			ret = su_etcd__delete_prefix(s->etcd, ixr, err);
		free(ixp);
		free(ixr);
	}
	index__free(&x);
	return ret;
}

/* Keeps the newest `keep` committed versions; drops older ones and what
 * writers that died before committing left behind (not newer than current). */
static int gc(struct su_store *s, uint64_t current, unsigned keep, struct su_err *err)
{
	char *from = su_store__key(s, "history/"), *to = from ? su_etcd__prefix_end(from) : NULL;
	char *sfrom = su_store__key(s, "staging/"), *sto = sfrom ? su_etcd__prefix_end(sfrom) : NULL;
	struct su_etcd_kv *kvs = NULL;
	struct index kept = { 0 };
	size_t n = 0;
	int ret = !to || !sto ? -ENOMEM : su_etcd__range(s->etcd, from, to, false, 0, &kvs, &n, NULL, err);

	if (!ret && n > keep) {
		struct su_version k = { .serial = strtoull(kvs[n - keep].key + strlen(from), NULL, 10) };

		snprintf(k.dir, sizeof(k.dir), "%s", kvs[n - keep].value);
		ret = index__read(s, &k, &kept, err);
	}
	for (size_t i = 0; !ret && n > keep && i < n - keep; i++) {
		struct su_version d = { .serial = strtoull(kvs[i].key + strlen(from), NULL, 10) };

		snprintf(d.dir, sizeof(d.dir), "%s", kvs[i].value);
		if (!(ret = drop_version(s, &d, &kept, err)))
			ret = su_etcd__delete_prefix(s->etcd, kvs[i].key, err);
	}
	index__free(&kept);
	su_etcd_kv__free(kvs, n);
	kvs = NULL;
	n = 0;
	if (!ret)
		ret = su_etcd__range(s->etcd, sfrom, sto, true, 0, &kvs, &n, NULL, err);
	for (size_t i = 0; !ret && i < n; i++) {
		const char *dir = kvs[i].key + strlen(sfrom);

		if (strtoull(dir, NULL, 10) <= current)
			ret = delete_dir(s, dir, err);
	}
	su_etcd_kv__free(kvs, n);
	free(from);
	free(to);
	free(sfrom);
	free(sto);
	return ret;
}

static int changed_under_you(struct su_store *s, struct su_err *err)
{
	struct su_version v;
	uint64_t now = read_version(s, &v, NULL) ? 0 : v.serial;

	return fail(s, err, EAGAIN, "the plan changed under you (serial %" PRIu64 "), re-run", now);
}

static int write_all(struct su_store *s, struct batch *b, const char *dir, uint64_t serial,
		     const struct su_shard *v, size_t n, const struct index *prev, FILE *index,
		     struct su_changes *changed, struct su_err *err)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < n; i++) {
		const struct ientry *e = index__get(prev, v[i].name);
		struct su_shard sh = v[i];
		uint64_t hash;
		const char *datadir;

		if (!sh.data && (!e || e->digest != sh.digest)) /* the layout reuses only what prev_digest gave */
			return fail(s, err, EINVAL, "shard %s: not cut and not in the previous version", sh.name);
		/* Not cut: the previous version's bytes, wherever they are. */
		hash = sh.data ? su_fnv1a64(sh.data, sh.len) : e->hash;
		sh.len = sh.data ? sh.len : e->bytes;
		datadir = e && e->hash == hash && e->bytes == sh.len ? e->datadir : dir;
		if (datadir == dir)
			su_changes__add(changed, sh.name);
		ret = write_shard(b, dir, datadir, serial, &sh, hash, err);
		fprintf(index, "%s %016" PRIx64 " %zu %s %016" PRIx64 "\n", sh.name, hash, sh.len, datadir, sh.digest);
	}
	return ret;
}

static uint64_t prev_digest(void *ctx, const char *name)
{
	const struct ientry *e = index__get(ctx, name);

	return e ? e->digest : 0;
}

static int write_version(struct su_store *s, const struct su_version *cur, const struct su_plan *p, const char *dir,
			 const struct su_shard *extra, size_t n_extra, struct su_changes *changed, struct su_err *err)
{
	struct batch b = { .s = s, .ops = json_array() };
	struct su_shard *shards = NULL, ix = { "index", NULL, 0, 0 };
	struct index prev = { 0 };
	size_t n = 0;
	FILE *index = open_memstream(&ix.data, &ix.len);
	int ret = index ? 0 : -ENOMEM;

	/* Sharing needs the previous version's records to outlive it: only
	 * layout 2 has that; after a layout-1 version every shard is written. */
	if (!ret && records_kept(cur->dir))
		ret = index__read(s, cur, &prev, err);
	if (!ret && (ret = su_layout__shards(p, prev_digest, &prev, &shards, &n)))
		ret = fail(s, err, -ret, "cutting plan serial %" PRIu64 " into shards: %s", p->serial, strerror(-ret));
	/* The staging mark first: if we die, the next writer's GC finds the debris. */
	if (!ret) {
		char *mark = su_store__key(s, "staging/%s", dir);

		ret = mark ? su_etcd__put(s->etcd, mark, "", 0, 0, err) : -ENOMEM;
		free(mark);
	}
	if (!ret)
		ret = write_all(s, &b, dir, p->serial, extra, n_extra, &prev, index, changed, err);
	if (!ret)
		ret = write_all(s, &b, dir, p->serial, shards, n, &prev, index, changed, err);
	if (index && fclose(index) && !ret)
		ret = -EIO;
	if (!ret) {
		su_changes__add(changed, ix.name);
		ret = write_shard(&b, dir, dir, p->serial, &ix, su_fnv1a64(ix.data, ix.len), err);
	}
	ret = batch__finish(&b, !ret, err) ?: ret;
	free(ix.data);
	index__free(&prev);
	su_layout__free(shards, n);
	return ret;
}

static int publish_etcd(struct su_store *s, const struct su_plan *p, uint64_t expect, const struct su_shard *extra,
			size_t n_extra, struct su_err *err)
{
	struct su_version cur;
	char dir[64];
	bool won = false;
	int ret = read_version(s, &cur, err), gc_ret;
	struct su_changes changed = { "", false, { 0 } };
	struct su_err gc_err;
	uint64_t nonce;

	if (ret && ret != -ENOENT)
		return ret;
	if (cur.serial != expect)
		return fail(s, err, EAGAIN, "the plan changed under you (serial %" PRIu64 "), re-run", cur.serial);
	if (p->serial == cur.serial)
		return 0; /* unchanged */
	if (p->serial < cur.serial)
		return fail(s, err, EINVAL, "serial %" PRIu64 " is older than the store's %" PRIu64, p->serial,
			    cur.serial);
	if (getentropy(&nonce, sizeof(nonce)))
		nonce = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
	snprintf(dir, sizeof(dir), "%020" PRIu64 ".%016" PRIx64 KEPT_MARK, p->serial, nonce);
	/* Old versions go before the new one is written, not after its commit,
	 * when thousands of nodes read at once and the GC's requests would
	 * queue with theirs: one fewer is kept, so the commit makes `keep` (the
	 * current version always stays).  A failed GC does not stop the
	 * publish; it is reported after it. */
	gc_ret = gc(s, cur.serial, s->keep > 1 ? s->keep - 1 : 1, &gc_err);
	ret = write_version(s, &cur, p, dir, extra, n_extra, &changed, err);
	if (!ret)
		ret = commit(s, &cur, p->serial, dir, &changed, &won, err);
	if (!ret && !won) {
		struct su_err ignore;

		delete_dir(s, dir, &ignore); /* the loser leaves nothing behind */
		return changed_under_you(s, err);
	}
	if (ret) {
		struct su_err ignore;

		delete_dir(s, dir, &ignore);
		return ret;
	}
	if (!gc_ret && s->keep == 1) /* the current version stayed for readers until now */
		gc_ret = gc(s, p->serial, 1, &gc_err);
	if (gc_ret && err)
		su_err__set(err, -gc_ret, "published serial %" PRIu64 ", but old versions were not removed: %s", p->serial,
			    gc_err.msg);
	return gc_ret;
}

static int publish_file(struct su_store *s, const struct su_plan *p, uint64_t expect, struct su_err *err)
{
	char *lock_path;
	struct su_plan *cur = NULL;
	uint64_t have = 0;
	int fd, ret;

	/* A lock file beside the plan serializes writers; the serial check under
	 * it is the file store's compare-and-swap. */
	if (asprintf(&lock_path, "%s.lock", s->path) < 0)
		return su_err__set(err, ENOMEM, "out of memory");
	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	free(lock_path);
	if (fd < 0 || flock(fd, LOCK_EX)) {
		ret = fail(s, err, errno, "lock: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return ret;
	}
	if (!access(s->path, F_OK)) {
		if ((ret = su_plan__load(s->path, &cur, err)))
			goto out;
		have = cur->serial;
	}
	if (have != expect)
		ret = fail(s, err, EAGAIN, "the plan changed under you (serial %" PRIu64 "), re-run", have);
	else if (p->serial != have)
		ret = su_plan__write(p, s->path, err);
out:
	su_plan__free(cur);
	close(fd);
	return ret;
}

int su_store__publish_with(struct su_store *s, const struct su_plan *p, uint64_t expect,
			   const struct su_shard *extra, size_t n_extra, struct su_err *err)
{
	return s->etcd ? publish_etcd(s, p, expect, extra, n_extra, err) : publish_file(s, p, expect, err);
}

int su_store__publish(struct su_store *s, const struct su_plan *p, uint64_t expect, struct su_err *err)
{
	return su_store__publish_with(s, p, expect, NULL, 0, err);
}

int su_store__read_shard(struct su_store *s, uint64_t serial, const char *name, char **data, size_t *len,
			 struct su_err *err)
{
	struct su_version v = { 0 };
	int ret;

	*data = NULL;
	if (!s->etcd)
		return fail(s, err, ENOENT, "a file store keeps no %s", name);
	ret = serial ? history_dir(s, serial, &v, err) : read_version(s, &v, err);
	if (ret)
		return ret;
	bool missing;

	ret = read_shard_x(s, &v, name, data, len, &missing, err);
	if (ret == -EBADMSG && missing && shard_exists(s, &v, "ranges"))
		ret = fail(s, err, ENOENT, "plan serial %" PRIu64 " has no %s", v.serial, name);
	return ret;
}

/* ---- waiting for a change ------------------------------------------------------ */

static int wait_file(struct su_store *s, bool (*stop)(void *), void *arg, struct su_err *err)
{
	char *dir = strdup(s->path), *slash = dir ? strrchr(dir, '/') : NULL;
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK), ret = -ECANCELED;

	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	if (fd < 0 || !dir || inotify_add_watch(fd, slash ? dir : ".", IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
		ret = fail(s, err, errno ? errno : ENOMEM, "inotify: %s", strerror(errno));
		goto out;
	}
	while (!(stop && stop(arg))) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };

		if (poll(&pfd, 1, 1000) > 0) {
			ret = 0;
			break;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(dir);
	return ret;
}

int su_store__wait(struct su_store *s, int64_t seen_rev, bool (*stop)(void *), void *arg, struct su_err *err)
{
	struct su_etcd_kv kv = { 0 };
	char *key;
	int64_t rev;
	int ret;

	if (!s->etcd)
		return wait_file(s, stop, arg, err);
	if (!(key = su_store__key(s, "version")))
		return su_err__set(err, ENOMEM, "out of memory");
	/* From the revision after the one we read: nothing between is missed. */
	ret = su_etcd__watch_once(s->etcd, key, seen_rev ? seen_rev + 1 : 0, stop, arg, &rev, &kv, err);
	/* The event carries the committed version: the next read of the
	 * current version starts from it instead of asking again (one request
	 * less per node per version, thousands at once after a commit). */
	s->seen_valid = !ret && kv.value && !parse_version(s, key, kv.value, &s->seen, NULL);
	if (s->seen_valid) {
		s->seen.mod_rev = kv.mod_revision;
		s->rev = rev;
	}
	free(kv.key);
	free(kv.value);
	free(key);
	return ret;
}
