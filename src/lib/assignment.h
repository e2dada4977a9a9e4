/* The local assignment: which (egress IP, port slice, tags) this server owns
 * right now.  The agent derives it from the plan and publishes it under
 * /run/softunicast/; libsoftunicast reads it to pick a source address and
 * port.  Applications never read the plan itself: the assignment is the
 * narrow, versioned contract between the agent and the library.
 *
 * Text format (one record a line, '#' comments, fields separated by one
 * space), replaced atomically (temp file + rename) so a reader sees either
 * the old or the new version, never half of one:
 *
 *   softunicast-assignment 1          <- magic + format version
 *   serial 42                          <- plan serial it was derived from
 *   server a3
 *   updated 1763776000                 <- unix seconds
 *   egress 198.51.100.7 38912 40959 active service=warp,country=GB
 *   egress 198.51.100.9 4096 6143 draining service=warp,country=GB
 *   handed 198.51.100.7 38912 1763776300   <- IP LO UNTIL (unix seconds)
 *
 * A reader must reject an unknown format version (a newer agent may change
 * field meaning) but ignore unknown record keywords (it may add records).
 * Addresses are host byte order in memory.
 *
 * `handed` (after its egress line) says that slice was handed to this
 * server by a live move whose previous owner keeps its flows until UNTIL
 * (docs/operator.md, "Live moves").  TCP and UDP may use it at once: the
 * decap tells their flows apart by socket.  Echo identifiers may not: the
 * decap cannot look up ping sockets, so on a handed slice it gives every
 * echo reply to the previous owner until UNTIL and refuses them for
 * DECAP_ECHO_QUIET_S more (bpf/decap_abi.h); the library picks no ping
 * identifier in the slice until UNTIL + DECAP_ECHO_QUIET_S + 1.  Readers of
 * format 1 without this rule skip the record (unknown keyword). */
#ifndef SU_ASSIGNMENT_H
#define SU_ASSIGNMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/tags.h"

#define SU_ASSIGNMENT_FORMAT 1
#define SU_ASSIGNMENT_MAGIC "softunicast-assignment"
#define SU_ASSIGNMENT_DIR "/run/softunicast"
#define SU_ASSIGNMENT_PATH SU_ASSIGNMENT_DIR "/assignment"
#define SU_ASSIGNMENT_ENV "SOFTUNICAST_ASSIGNMENT"
#define SU_ASSIGNMENT_MAX 4096 /* entries; far above any real server */

enum su_slice_state {
	SU_SLICE_ACTIVE = 1,   /* new connections may use it */
	SU_SLICE_DRAINING = 2, /* live connections keep it; no new ones */
};

struct su_assignment_entry {
	uint32_t ip;       /* host byte order */
	uint16_t lo, hi;   /* inclusive port range of the slice */
	uint8_t state;     /* enum su_slice_state */
	int64_t handed_until; /* unix seconds: the live move's deadline, 0: not handed */
	char *tags;        /* canonical "k=v,k=v" text */
	struct su_tags set; /* the same, parsed once: connect() matches against it */
};

struct su_assignment {
	uint32_t format;
	uint64_t serial;
	int64_t updated;
	char server[64];
	struct su_assignment_entry *v;
	uint32_t n;
};

/* Path of the published file: $SOFTUNICAST_ASSIGNMENT or the default. */
const char *su_assignment__path(void);

int su_assignment__parse(const char *buf, size_t len, struct su_assignment **out,
			 struct su_err *err);
int su_assignment__load(const char *path, struct su_assignment **out, struct su_err *err);
/* Canonical text; malloc'd, NULL on ENOMEM. */
char *su_assignment__format(const struct su_assignment *a);
/* Atomic replace: temp file in the same directory, fsync, rename. */
int su_assignment__write(const struct su_assignment *a, const char *path, struct su_err *err);
int su_assignment__add(struct su_assignment *a, uint32_t ip, uint16_t lo, uint16_t hi,
		       uint8_t state, const char *tags);
/* Marks the slice at (ip, lo) handed until `until` (unix seconds);
 * -ENOENT when no entry starts there. */
int su_assignment__hand(struct su_assignment *a, uint32_t ip, uint16_t lo, int64_t until);
/* Whether the entry's ping identifiers are off limits at `now` (unix
 * seconds): handed, and its previous owner's echoes not yet over. */
bool su_assignment__echo_quiet(const struct su_assignment_entry *e, int64_t now);
void su_assignment__free(struct su_assignment *a);

/* Tag queries: "k=v,k=v" (order free, percent escapes allowed) or "*" for
 * any egress.  -EINVAL with a sentence in err for a malformed query. */
int su_assignment__check_tags(const char *want, struct su_err *err);
/* Every k=v of want is among the entry's tags (want "*" matches all). */
bool su_assignment__tags_match(const char *have, const char *want);

const char *su_slice_state__str(uint8_t state);

#endif
