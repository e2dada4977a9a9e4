/* Real etcd members for the tests: each on loopback with its own ports and
 * data directory (unique per run, so suites run side by side). */
#ifndef SU_TEST_ETCD_RUN_H
#define SU_TEST_ETCD_RUN_H

#include <sys/types.h>

#define ETCD_RUN_MAX 3

struct etcd_run {
	int n;
	pid_t pid[ETCD_RUN_MAX];
	int client_port[ETCD_RUN_MAX], peer_port[ETCD_RUN_MAX];
	char dir[64];               /* parent of every member's data dir */
	char endpoints[256];        /* "127.0.0.1:P1,127.0.0.1:P2,..." */
	char url[320];              /* "etcd://" endpoints "/PREFIX" */
};

/* Starts an n-member cluster (1..3) and waits until it answers; 0 or -errno
 * (-ENOENT: no etcd binary: the caller skips). */
int etcd_run__start(struct etcd_run *r, int n, const char *prefix);
/* Stops (SIGTERM, wait) member i, or starts it again on its data. */
int etcd_run__stop_member(struct etcd_run *r, int i);
int etcd_run__start_member(struct etcd_run *r, int i);
void etcd_run__stop(struct etcd_run *r); /* every member; removes the data */

#endif
