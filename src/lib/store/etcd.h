/* A small etcd v3 client over etcd's JSON gateway (grpc-gateway), with
 * libcurl and jansson.  Every request is a POST of a JSON object to
 * /v3/<service>/<method>; keys and values travel base64-encoded and int64
 * fields as JSON strings (proto3 JSON mapping).  Endpoints are tried in
 * turn: a member that cannot be reached is skipped, so a cluster with one
 * member down still answers.
 *
 * Functions return 0 or -errno and leave a sentence naming the endpoint
 * (and the key, where there is one) in err:
 *   -ECONNREFUSED  no endpoint reachable
 *   -EACCES        authentication failed or permission denied
 *   -ENOENT        key absent (su_etcd__get)
 *   -EPROTO        the reply was not what etcd sends
 *   -EIO           etcd refused the request (its message quoted). */
#ifndef SU_STORE_ETCD_H
#define SU_STORE_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/err.h"

struct su_etcd_opts {
	const char *ca, *cert, *key;  /* PEM files; any set: https */
	const char *user, *password;  /* etcd auth (/v3/auth/authenticate) */
	long timeout_ms;              /* per request; 0: 5000 */
};

struct su_etcd;

/* endpoints: "HOST:PORT[,HOST:PORT...]". */
int su_etcd__open(const char *endpoints, const struct su_etcd_opts *o, struct su_etcd **out,
		  struct su_err *err);
void su_etcd__close(struct su_etcd *e);
/* "HOST:PORT" of the member that answered last (for messages). */
const char *su_etcd__endpoint(const struct su_etcd *e);

/* One call: POSTs req (stolen) to /v3/PATH and returns the reply object. */
int su_etcd__call(struct su_etcd *e, const char *path, json_t *req, json_t **resp, struct su_err *err);

/* Bytes moved (request + reply bodies) since open, for the benchmark. */
uint64_t su_etcd__bytes_in(const struct su_etcd *e);
uint64_t su_etcd__requests(const struct su_etcd *e);

/* Base64 helpers (RFC 4648 section 4, with padding). */
char *su_b64__encode(const void *buf, size_t len);
int su_b64__decode(const char *s, char **out, size_t *len);
json_t *su_etcd__b64(const void *buf, size_t len);
json_t *su_etcd__b64s(const char *s);

/* A key-value of a range reply, decoded. */
struct su_etcd_kv {
	char *key;
	char *value;
	size_t value_len;
	int64_t mod_revision, create_revision;
};
void su_etcd_kv__free(struct su_etcd_kv *kv, size_t n);
/* One element of a reply's "kvs" array (base64 key and value decoded);
 * -EPROTO if undecodable.  For callers that send their own kv/txn. */
int su_etcd__decode_kv(json_t *j, struct su_etcd_kv *kv);

/* Range [key, range_end) (range_end NULL: the one key; "" + prefix: use
 * su_etcd__prefix_end).  revision 0: latest.  *rev gets the store revision
 * the read saw. */
int su_etcd__range(struct su_etcd *e, const char *key, const char *range_end, bool keys_only,
		   int64_t revision, struct su_etcd_kv **kvs, size_t *n, int64_t *rev, struct su_err *err);
/* The smallest key greater than every key starting with prefix (etcd's
 * prefix range end); malloc'd. */
char *su_etcd__prefix_end(const char *prefix);
int su_etcd__get(struct su_etcd *e, const char *key, struct su_etcd_kv *kv, int64_t *rev,
		 struct su_err *err);
int su_etcd__put(struct su_etcd *e, const char *key, const void *val, size_t len, int64_t lease,
		 struct su_err *err);
int su_etcd__delete_prefix(struct su_etcd *e, const char *prefix, struct su_err *err);

/* Leases: grant (ttl seconds) and one keep-alive round. */
int su_etcd__lease_grant(struct su_etcd *e, int64_t ttl, int64_t *id, struct su_err *err);
int su_etcd__lease_keepalive(struct su_etcd *e, int64_t id, struct su_err *err);

/* Blocks on a watch of key from revision start_rev until an event arrives
 * (returns 0 with *rev the event's revision and, when kv is not NULL, the
 * key's new value in *kv, malloc'd, or all zero for a delete), stop()
 * returns true (-ECANCELED), or the stream breaks (-errno).  Its own
 * connection. */
int su_etcd__watch_once(struct su_etcd *e, const char *key, int64_t start_rev, bool (*stop)(void *),
			void *arg, int64_t *rev, struct su_etcd_kv *kv, struct su_err *err);

#endif
