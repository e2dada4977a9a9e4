/* etcd v3 JSON gateway client (see etcd.h).  One curl easy handle per
 * client keeps the connection alive between requests; watches take their
 * own handle because they hold a streaming reply open. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "lib/store/etcd.h"

#define MAX_ENDPOINTS 16

struct su_etcd {
	char *eps[MAX_ENDPOINTS];
	int n_eps, cur;
	struct su_etcd_opts o;
	char *token; /* auth token, sent as the Authorization header */
	CURL *curl;
	uint64_t bytes, requests;
};

struct buf {
	char *p;
	size_t len, cap;
	bool first_only; /* a streaming reply: stop at its first whole message */
	bool got_first;
};

static int buf__append(struct buf *b, const void *data, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *np;

		while (cap < b->len + len + 1)
			cap *= 2;
		if (!(np = realloc(b->p, cap)))
			return -ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
	return 0;
}

/* ---- base64 (RFC 4648 section 4) ---------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *su_b64__encode(const void *buf, size_t len)
{
	const unsigned char *s = buf;
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0) |
			     (i + 2 < len ? s[i + 2] : 0);

		*o++ = b64[v >> 18 & 63];
		*o++ = b64[v >> 12 & 63];
		*o++ = i + 1 < len ? b64[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? b64[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int b64_val(char c)
{
	const char *p = c ? strchr(b64, c) : NULL;

	return p ? (int)(p - b64) : -1;
}

int su_b64__decode(const char *s, char **out, size_t *len)
{
	size_t n = strlen(s), o = 0;
	char *d;

	if (n % 4)
		return -EINVAL;
	if (!(d = malloc(n / 4 * 3 + 1)))
		return -ENOMEM;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];

		for (int k = 0; k < 4; k++)
			v[k] = s[i + k] == '=' && i + 4 == n && k >= 2 ? 0 : b64_val(s[i + k]);
		if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0) {
			free(d);
			return -EINVAL;
		}
		d[o++] = (char)(v[0] << 2 | v[1] >> 4);
		if (s[i + 2] != '=')
			d[o++] = (char)((v[1] & 15) << 4 | v[2] >> 2);
		if (s[i + 3] != '=')
			d[o++] = (char)((v[2] & 3) << 6 | v[3]);
	}
	d[o] = '\0';
	*out = d;
	*len = o;
	return 0;
}

json_t *su_etcd__b64(const void *buf, size_t len)
{
	char *s = su_b64__encode(buf, len);
	json_t *j = s ? json_string(s) : NULL;

	free(s);
	return j;
}

json_t *su_etcd__b64s(const char *s)
{
	return su_etcd__b64(s, strlen(s));
}

/* ---- transport --------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	json_error_t je;
	json_t *j;

	if (buf__append(b, data, size * n))
		return 0;
	if (b->first_only && (j = json_loadb(b->p, b->len, JSON_DISABLE_EOF_CHECK, &je))) {
		json_decref(j);
		b->len = je.position; /* the first message only */
		b->got_first = true;
		return 0; /* ends the transfer: the stream would stay open */
	}
	return size * n;
}

static void setup_handle(struct su_etcd *e, CURL *c, const char *url, struct curl_slist *hdrs)
{
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	if (e->o.ca)
		curl_easy_setopt(c, CURLOPT_CAINFO, e->o.ca);
	if (e->o.cert)
		curl_easy_setopt(c, CURLOPT_SSLCERT, e->o.cert);
	if (e->o.key)
		curl_easy_setopt(c, CURLOPT_SSLKEY, e->o.key);
}

static bool tls(const struct su_etcd *e)
{
	return e->o.ca || e->o.cert || e->o.key;
}

static struct curl_slist *headers(const struct su_etcd *e)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	char auth[1024];

	if (e->token) {
		snprintf(auth, sizeof(auth), "Authorization: %s", e->token);
		h = curl_slist_append(h, auth);
	}
	return h;
}

/* The gateway's error body: {"error": "...", "code": N, "message": "..."}. */
static int gateway_error(struct su_etcd *e, const char *path, long status, json_t *body, struct su_err *err)
{
	json_t *msg = body ? json_object_get(body, "message") : NULL;
	json_t *code = body ? json_object_get(body, "code") : NULL;
	const char *m = json_is_string(msg) ? json_string_value(msg) : "no message";
	int c = json_is_integer(code) ? (int)json_integer_value(code) : 0;

	/* gRPC codes: 7 PERMISSION_DENIED, 16 UNAUTHENTICATED; 3 INVALID_ARGUMENT
	 * carries "invalid auth token", "authentication failed" among others. */
	if (c == 7 || c == 16 || strstr(m, "auth"))
		return su_err__set(err, EACCES, "etcd://%s: /v3/%s: %s", e->eps[e->cur], path, m);
	return su_err__set(err, EIO, "etcd://%s: /v3/%s: HTTP %ld: %s", e->eps[e->cur], path, status, m);
}

static bool unreachable(CURLcode rc)
{
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	       rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
	       rc == CURLE_SEND_ERROR;
}

static int post_once(struct su_etcd *e, const char *path, const char *body, json_t **resp, struct su_err *err)
{
	struct curl_slist *h = headers(e);
	struct buf b = { .first_only = !strcmp(path, "lease/keepalive") };
	char url[512];
	long status = 0;
	json_error_t je;
	CURLcode rc;
	int ret = 0;

	snprintf(url, sizeof(url), "%s://%s/v3/%s", tls(e) ? "https" : "http", e->eps[e->cur], path);
	curl_easy_reset(e->curl);
	setup_handle(e, e->curl, url, h);
	curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, e->o.timeout_ms);
	curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, &b);
	rc = curl_easy_perform(e->curl);
	curl_slist_free_all(h);
	e->requests++;
	e->bytes += strlen(body) + b.len;
	if (rc == CURLE_WRITE_ERROR && b.got_first)
		rc = CURLE_OK;
	if (rc != CURLE_OK) {
		ret = su_err__set(err, unreachable(rc) ? ECONNREFUSED : EPROTO, "etcd://%s: %s", e->eps[e->cur],
				  curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
	*resp = b.p ? json_loadb(b.p, b.len, 0, &je) : NULL;
	if (status != 200) {
		ret = gateway_error(e, path, status, *resp, err);
		json_decref(*resp);
		*resp = NULL;
	} else if (!json_is_object(*resp)) {
		json_decref(*resp);
		*resp = NULL;
		ret = su_err__set(err, EPROTO, "etcd://%s: /v3/%s: reply is not a JSON object", e->eps[e->cur],
				  path);
	}
out:
	free(b.p);
	return ret;
}

/* Tries every endpoint once, starting with the one that answered last. */
static int post(struct su_etcd *e, const char *path, const char *body, json_t **resp, struct su_err *err)
{
	int ret = -ECONNREFUSED;

	for (int i = 0; i < e->n_eps; i++) {
		ret = post_once(e, path, body, resp, err);
		if (ret != -ECONNREFUSED)
			return ret;
		e->cur = (e->cur + 1) % e->n_eps;
	}
	if (e->n_eps > 1 && err) {
		char last[sizeof(err->msg)];

		snprintf(last, sizeof(last), "%s", err->msg);
		su_err__set(err, ECONNREFUSED, "etcd: none of %d members reachable (last: %s)", e->n_eps, last);
	}
	return ret;
}

static int authenticate(struct su_etcd *e, struct su_err *err)
{
	json_t *req = json_pack("{s:s,s:s}", "name", e->o.user, "password", e->o.password ? e->o.password : "");
	char *body = json_dumps(req, JSON_COMPACT);
	json_t *resp = NULL, *tok;
	int ret;

	json_decref(req);
	free(e->token);
	e->token = NULL;
	ret = post(e, "auth/authenticate", body, &resp, err);
	free(body);
	if (ret == -EIO && err) {
		char last[sizeof(err->msg)];

		snprintf(last, sizeof(last), "%s", err->msg);
		return su_err__set(err, EACCES, "%s", last);
	}
	if (ret)
		return ret;
	tok = json_object_get(resp, "token");
	if (json_is_string(tok))
		e->token = strdup(json_string_value(tok));
	json_decref(resp);
	return e->token ? 0 : su_err__set(err, EPROTO, "etcd://%s: authenticate: no token", e->eps[e->cur]);
}

int su_etcd__call(struct su_etcd *e, const char *path, json_t *req, json_t **resp, struct su_err *err)
{
	char *body = json_dumps(req, JSON_COMPACT);
	int ret;

	json_decref(req);
	*resp = NULL;
	if (!body)
		return su_err__set(err, ENOMEM, "out of memory");
	if (e->o.user && !e->token && (ret = authenticate(e, err)))
		goto out;
	ret = post(e, path, body, resp, err);
	/* Tokens expire (--auth-token-ttl): authenticate again, once. */
	if (ret == -EACCES && e->o.user && !(ret = authenticate(e, err)))
		ret = post(e, path, body, resp, err);
out:
	free(body);
	return ret;
}

int su_etcd__open(const char *endpoints, const struct su_etcd_opts *o, struct su_etcd **out, struct su_err *err)
{
	struct su_etcd *e = calloc(1, sizeof(*e));
	char *list, *save = NULL;

	*out = NULL;
	if (!e || !(list = strdup(endpoints))) {
		free(e);
		return su_err__set(err, ENOMEM, "out of memory");
	}
	for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (e->n_eps == MAX_ENDPOINTS || !strchr(t, ':') || strchr(t, '/')) {
			int n = e->n_eps;

			free(list);
			su_etcd__close(e);
			return su_err__set(err, EINVAL, "etcd://%s: %s", endpoints,
					   n == MAX_ENDPOINTS ? "too many endpoints" : "endpoint is not HOST:PORT");
		}
		e->eps[e->n_eps++] = strdup(t);
	}
	free(list);
	if (o)
		e->o = *o;
	if (!e->o.timeout_ms)
		e->o.timeout_ms = 5000;
	if (!e->n_eps || !(e->curl = curl_easy_init())) {
		su_etcd__close(e);
		return su_err__set(err, EINVAL, "etcd://%s: no endpoint", endpoints);
	}
	*out = e;
	return 0;
}

void su_etcd__close(struct su_etcd *e)
{
	if (!e)
		return;
	for (int i = 0; i < e->n_eps; i++)
		free(e->eps[i]);
	if (e->curl)
		curl_easy_cleanup(e->curl);
	free(e->token);
	free(e);
}

const char *su_etcd__endpoint(const struct su_etcd *e)
{
	return e->eps[e->cur];
}

uint64_t su_etcd__bytes_in(const struct su_etcd *e)
{
	return e->bytes;
}

uint64_t su_etcd__requests(const struct su_etcd *e)
{
	return e->requests;
}

/* ---- KV ---------------------------------------------------------------------- */

static int64_t i64_field(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

void su_etcd_kv__free(struct su_etcd_kv *kv, size_t n)
{
	for (size_t i = 0; kv && i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

int su_etcd__decode_kv(json_t *j, struct su_etcd_kv *kv)
{
	json_t *k = json_object_get(j, "key"), *v = json_object_get(j, "value");
	size_t len;

	memset(kv, 0, sizeof(*kv));
	if (!json_is_string(k) || su_b64__decode(json_string_value(k), &kv->key, &len))
		return -EPROTO;
	if (su_b64__decode(json_is_string(v) ? json_string_value(v) : "", &kv->value, &kv->value_len))
		return -EPROTO;
	kv->mod_revision = i64_field(j, "mod_revision");
	kv->create_revision = i64_field(j, "create_revision");
	return 0;
}

char *su_etcd__prefix_end(const char *prefix)
{
	char *end = strdup(prefix);
	size_t n = end ? strlen(end) : 0;

	/* etcd's clientv3.GetPrefixRangeEnd: increment the last byte below 0xff. */
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		end[--n] = '\0';
	if (n > 0)
		end[n - 1]++;
	return end;
}

int su_etcd__range(struct su_etcd *e, const char *key, const char *range_end, bool keys_only,
		   int64_t revision, struct su_etcd_kv **kvs, size_t *n, int64_t *rev, struct su_err *err)
{
	json_t *req = json_pack("{s:o}", "key", su_etcd__b64s(key)), *resp, *arr;
	char r[24];
	int ret;

	*kvs = NULL;
	*n = 0;
	if (range_end)
		json_object_set_new(req, "range_end", su_etcd__b64s(range_end));
	if (keys_only)
		json_object_set_new(req, "keys_only", json_true());
	if (revision) {
		snprintf(r, sizeof(r), "%" PRId64, revision);
		json_object_set_new(req, "revision", json_string(r));
	}
	if ((ret = su_etcd__call(e, "kv/range", req, &resp, err)))
		return ret;
	if (rev)
		*rev = i64_field(json_object_get(resp, "header"), "revision");
	arr = json_object_get(resp, "kvs");
	if (json_array_size(arr)) {
		*kvs = calloc(json_array_size(arr), sizeof(**kvs));
		for (size_t i = 0; *kvs && i < json_array_size(arr); i++, (*n)++)
			if (su_etcd__decode_kv(json_array_get(arr, i), &(*kvs)[i])) {
				ret = su_err__set(err, EPROTO, "etcd://%s: %s: undecodable key-value",
						  e->eps[e->cur], key);
				break;
			}
		if (!*kvs)
			ret = su_err__set(err, ENOMEM, "out of memory");
	}
	json_decref(resp);
	if (ret) {
		su_etcd_kv__free(*kvs, *n);
		*kvs = NULL;
		*n = 0;
	}
	return ret;
}

int su_etcd__get(struct su_etcd *e, const char *key, struct su_etcd_kv *kv, int64_t *rev, struct su_err *err)
{
	struct su_etcd_kv *kvs;
	size_t n;
	int ret = su_etcd__range(e, key, NULL, false, 0, &kvs, &n, rev, err);

	if (ret)
		return ret;
	if (!n) {
		su_etcd_kv__free(kvs, n);
		return su_err__set(err, ENOENT, "etcd://%s: key %s not found", e->eps[e->cur], key);
	}
	*kv = kvs[0];
	memset(&kvs[0], 0, sizeof(kvs[0]));
	su_etcd_kv__free(kvs, n);
	return 0;
}

int su_etcd__put(struct su_etcd *e, const char *key, const void *val, size_t len, int64_t lease,
		 struct su_err *err)
{
	json_t *req = json_pack("{s:o,s:o}", "key", su_etcd__b64s(key), "value", su_etcd__b64(val, len)), *resp;
	char l[24];
	int ret;

	if (lease) {
		snprintf(l, sizeof(l), "%" PRId64, lease);
		json_object_set_new(req, "lease", json_string(l));
	}
	ret = su_etcd__call(e, "kv/put", req, &resp, err);
	json_decref(resp);
	return ret;
}

int su_etcd__delete_prefix(struct su_etcd *e, const char *prefix, struct su_err *err)
{
	char *end = su_etcd__prefix_end(prefix);
	json_t *req = json_pack("{s:o,s:o}", "key", su_etcd__b64s(prefix), "range_end", su_etcd__b64s(end)), *resp;
	int ret = su_etcd__call(e, "kv/deleterange", req, &resp, err);

	free(end);
	json_decref(resp);
	return ret;
}

int su_etcd__lease_grant(struct su_etcd *e, int64_t ttl, int64_t *id, struct su_err *err)
{
	json_t *resp;
	int ret = su_etcd__call(e, "lease/grant", json_pack("{s:I}", "TTL", (json_int_t)ttl), &resp, err);

	if (ret)
		return ret;
	*id = i64_field(resp, "ID");
	json_decref(resp);
	return *id ? 0 : su_err__set(err, EPROTO, "etcd://%s: lease grant: no ID", e->eps[e->cur]);
}

int su_etcd__lease_keepalive(struct su_etcd *e, int64_t id, struct su_err *err)
{
	char s[24];
	json_t *resp, *result;
	int ret;

	snprintf(s, sizeof(s), "%" PRId64, id);
	/* A streaming RPC through the gateway: one request, one reply line. */
	ret = su_etcd__call(e, "lease/keepalive", json_pack("{s:s}", "ID", s), &resp, err);
	if (ret)
		return ret;
	result = json_object_get(resp, "result");
	ret = i64_field(result ? result : resp, "TTL") > 0 ? 0 :
		su_err__set(err, ENOENT, "etcd://%s: lease %s expired", e->eps[e->cur], s);
	json_decref(resp);
	return ret;
}

/* ---- watch ---------------------------------------------------------------------- */

struct watch_state {
	struct buf b;
	int64_t rev;
	json_t *kv; /* the newest event's kv (a reference) */
	bool got, failed;
	bool (*stop)(void *);
	void *arg;
};

/* The gateway streams one JSON object per reply:
 * {"result":{"header":{...},"created":true}} then {"result":{"events":[...]}}. */
static size_t on_watch(char *data, size_t size, size_t n, void *arg)
{
	struct watch_state *w = arg;
	size_t off = 0;

	if (buf__append(&w->b, data, size * n))
		return 0;
	while (off < w->b.len) {
		json_error_t je;
		json_t *msg = json_loadb(w->b.p + off, w->b.len - off, JSON_DISABLE_EOF_CHECK, &je);
		json_t *res, *events;

		if (!msg)
			break; /* incomplete: wait for more */
		off += je.position;
		while (off < w->b.len && (w->b.p[off] == '\n' || w->b.p[off] == '\r' || w->b.p[off] == ' '))
			off++;
		res = json_object_get(msg, "result");
		events = json_object_get(res, "events");
		if (json_object_get(msg, "error") || json_is_true(json_object_get(res, "canceled")))
			w->failed = true;
		if (json_array_size(events)) {
			/* The newest: several commits may come in one message. */
			json_t *ev = json_array_get(events, json_array_size(events) - 1);

			w->got = true;
			w->rev = i64_field(json_object_get(ev, "kv"), "mod_revision");
			if (!json_object_get(ev, "type")) /* PUT, the default, is omitted */
				w->kv = json_incref(json_object_get(ev, "kv"));
		}
		json_decref(msg);
	}
	memmove(w->b.p, w->b.p + off, w->b.len - off);
	w->b.len -= off;
	return w->got || w->failed ? 0 : size * n; /* 0 ends the transfer */
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct watch_state *w = arg;

	return w->stop && w->stop(w->arg);
}

int su_etcd__watch_once(struct su_etcd *e, const char *key, int64_t start_rev, bool (*stop)(void *),
			void *arg, int64_t *rev, struct su_etcd_kv *kv, struct su_err *err)
{
	struct watch_state w = { .stop = stop, .arg = arg };
	struct curl_slist *h;
	json_t *req;
	char url[512], r[24], *body;
	CURL *c;
	CURLcode rc;
	int ret;

	if (e->o.user && !e->token && (ret = authenticate(e, err)))
		return ret;
	snprintf(r, sizeof(r), "%" PRId64, start_rev);
	req = json_pack("{s:{s:o,s:s}}", "create_request", "key", su_etcd__b64s(key), "start_revision", r);
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!body || !(c = curl_easy_init())) {
		free(body);
		return su_err__set(err, ENOMEM, "out of memory");
	}
	h = headers(e);
	snprintf(url, sizeof(url), "%s://%s/v3/watch", tls(e) ? "https" : "http", e->eps[e->cur]);
	setup_handle(e, c, url, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_watch);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &w);
	rc = curl_easy_perform(c);
	e->requests++;
	if (w.got) {
		*rev = w.rev;
		ret = 0;
		if (kv && (!w.kv || su_etcd__decode_kv(w.kv, kv)))
			memset(kv, 0, sizeof(*kv)); /* a delete, or undecodable: no value */
	} else if (rc == CURLE_ABORTED_BY_CALLBACK) {
		ret = -ECANCELED;
	} else {
		ret = su_err__set(err, ECONNREFUSED, "etcd://%s: watch %s: %s", e->eps[e->cur], key,
				  w.failed ? "canceled by the server" : curl_easy_strerror(rc));
		e->cur = (e->cur + 1) % e->n_eps; /* next time, another member */
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	free(body);
	free(w.b.p);
	json_decref(w.kv);
	return ret;
}
