/* Where plans live.  Two backends behind one interface:
 *
 *   file:///path/plan (or a bare path)  the snapshot file, replaced atomically;
 *   etcd://HOST:PORT[,HOST:PORT...][/PREFIX]  etcd v3 (JSON gateway).
 *
 * etcd layout under PREFIX (default /softunicast):
 *   PREFIX/version               "SERIAL DIR\nchanged NAME ...\n" (or
 *                                "\nchanged-bloom HEX\n", a 4096-bit Bloom
 *                                filter, when the list passes 1 KiB): the
 *                                committed version and the shards it wrote;
 *                                older writers: "SERIAL DIR" alone
 *   PREFIX/history/SERIAL        "DIR" of each kept committed version
 *   PREFIX/staging/DIR           present while a writer writes DIR (GC cleans)
 *   PREFIX/m/NAME#DIR            "softunicast-shard 2 SERIAL CHUNKS BYTES FNV1A64 DIR ZBYTES":
 *                                the record of shard NAME (BYTES of text, its
 *                                FNV-1a 64), written only by the version DIR
 *                                that changed it; version V's is the newest
 *                                committed one at or before V's DIR
 *   PREFIX/v/DIR/NAME/NNNN       chunk NNNN of shard NAME (<= 1 MiB each): the
 *                                text deflated (zlib, RFC 1950), ZBYTES in all;
 *                                format 1 records (no ZBYTES) name plain text
 * with DIR = SERIAL.NONCE-r (20 + 16 digits, so two writers never share one;
 * "-r": this layout).  Older writers' versions (DIR without "-r") keep a
 * record per shard per version at PREFIX/v/DIR/NAME/meta; they are still
 * read, and the next publish rewrites every shard in this layout.
 * and shards NAME = plan (the whole snapshot, for the tools: a manifest
 * "softunicast-parts 1" naming its parts plan/head, plan/IP and plan/end,
 * so that a small change rewrites a few parts, see layout.c), index ("NAME
 * HASH BYTES DATADIR DIGEST" per shard: the next writer shares unchanged
 * shards by HASH and does not even cut those whose input DIGEST is the
 * same, see su_plan__view_digest), ranges (which
 * DC owns each IP, as runs; kept in parts as the plan is, a manifest
 * naming ranges/head, ranges/IP and ranges/end), dc/DC (a DC's IPs, slots and servers: the
 * router's view with ranges), server/SERVER (one server's slots: the agent's
 * view).  Views are snapshots themselves (see su_plan__format_view).
 *
 * A version is written first and committed by one transaction comparing
 * the version key's mod_revision with the one the writer started from, so a
 * reader that follows the version key only ever finds complete versions and
 * two writers cannot both win.  Functions return 0 or -errno with a
 * sentence naming the store and the key in err:
 *   -EAGAIN  the plan changed under you (another writer committed)
 *   -ENOENT  no plan in the store (or no such serial, DC, server)
 *   -EBADMSG a shard is corrupt or missing
 *   -ECONNREFUSED / -ETIMEDOUT  store unreachable; -EACCES  credentials. */
#ifndef SU_STORE_H
#define SU_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/plan.h"
#include "lib/store/etcd.h"

#define SU_STORE_DEFAULT_PREFIX "/softunicast"
#define SU_STORE_DEFAULT_KEEP 10
#define SU_STORE_CHUNK (1u << 20) /* etcd's request limit is 1.5 MiB */
/* Bytes per chunk and per transaction a writer uses, at most SU_STORE_CHUNK
 * (the default; a test lowers it to see shards chunked). */
extern size_t su_store__chunk_bytes;
#define SU_STORE_TXN_OPS 128      /* etcd's --max-txn-ops default */
#define SU_LAYOUT_PART_RECORDS 4096 /* the whole plan is kept in parts of about this many lines (~256 KiB) */
#define SU_LAYOUT_RANGE_RUNS 1024   /* and the ranges in parts of about this many runs (~40 KiB) */

struct su_store_opts {
	struct su_etcd_opts etcd;
	unsigned keep; /* committed versions kept for rollback/diff; 0: default */
};

enum su_view {
	SU_VIEW_PLAN,   /* the whole plan */
	SU_VIEW_DC,     /* what DC name's router needs */
	SU_VIEW_SERVER, /* what server name's agent needs */
};

struct su_store;

int su_store__open(const char *url, const struct su_store_opts *o, struct su_store **out, struct su_err *err);
void su_store__close(struct su_store *s);
const char *su_store__url(const struct su_store *s);
bool su_store__is_file(const struct su_store *s);
/* file backend: the path; NULL for etcd. */
const char *su_store__path(const struct su_store *s);
struct su_etcd *su_store__etcd(struct su_store *s);
/* Key under the store's prefix, malloc'd. */
char *su_store__key(const struct su_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The committed serial (-ENOENT: none yet). */
int su_store__serial(struct su_store *s, uint64_t *serial, struct su_err *err);

/* A view of committed version `serial` (0: the current one).  *bytes
 * (optional) gets the bytes of shard data read. */
int su_store__read(struct su_store *s, uint64_t serial, enum su_view v, const char *name,
		   struct su_plan **out, uint64_t *bytes, struct su_err *err);

/* Publishes p if the store's committed serial is still `expect` (0: the
 * store is empty).  An equal serial is "unchanged": nothing written. */
struct su_shard;
int su_store__publish(struct su_store *s, const struct su_plan *p, uint64_t expect, struct su_err *err);
/* Same, with extra named shards stored beside the views (the fleet text and
 * the operations, so the next re-plan starts from what this one used). */
int su_store__publish_with(struct su_store *s, const struct su_plan *p, uint64_t expect,
			   const struct su_shard *extra, size_t n_extra, struct su_err *err);
/* A raw shard of committed version `serial` (0: current); -ENOENT if that
 * version has none.  *data is NUL-terminated, malloc'd. */
int su_store__read_shard(struct su_store *s, uint64_t serial, const char *name, char **data, size_t *len,
			 struct su_err *err);

/* Committed serials kept in the store, newest first (malloc'd). */
int su_store__history(struct su_store *s, uint64_t **serials, size_t *n, struct su_err *err);

/* Blocks until the committed version may differ from `seen_rev` (an etcd
 * revision returned by su_store__revision; 0: any) or stop() says so.
 * 0: maybe changed; -ECANCELED: stopped; -errno: store trouble. */
int su_store__wait(struct su_store *s, int64_t seen_rev, bool (*stop)(void *), void *arg, struct su_err *err);
/* The store revision of the last read of the version key (etcd). */
int64_t su_store__revision(const struct su_store *s);

/* Shard and view building (layout.c). */
struct su_shard {
	char *name;
	char *data;      /* NULL: not cut, its digest is the previous version's */
	size_t len;
	uint64_t digest; /* of the shard's inputs (su_plan__view_digest); 0: none */
};
/* The previous version's digest of shard NAME, 0 when unknown. */
typedef uint64_t (*su_layout_prev_fn)(void *ctx, const char *name);
/* Every shard of p: plan (its parts), ranges, dc/X per DC, server/X per
 * active server.  With prev, a view or plan part whose digest equals the
 * previous version's is not cut: its data is NULL and the caller reuses the
 * previous version's bytes (so a one-IP move cuts a handful of views, not
 * 30,000).  0 or -ENOMEM. */
int su_layout__shards(const struct su_plan *p, su_layout_prev_fn prev, void *ctx, struct su_shard **out,
		      size_t *n);
void su_layout__free(struct su_shard *v, size_t n);
/* Runs per part of the ranges, SU_LAYOUT_RANGE_RUNS (a test lowers it to
 * see parts in a small fleet). */
extern uint32_t su_layout__range_runs;
/* A DC view: its shard plus the IPs of other DCs from the ranges shard.
 * -EBADMSG (malformed, serials differ), -EFBIG (the ranges name more
 * addresses than su_layout__max_view_bytes of plan entries: default 1 GiB,
 * 22 million IPs;
 * the fuzz harness lowers it), -ENOMEM. */
extern size_t su_layout__max_view_bytes;
int su_layout__dc_view(const char *dc_text, size_t dc_len, const char *ranges, size_t ranges_len,
		       const char *dc, const char *name, struct su_plan **out, struct su_err *err);

#endif
