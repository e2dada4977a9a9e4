/* Starting real etcd members for the tests (see etcd_run.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd_run.h"

/* A port the kernel says is free now; members bind it a moment later. */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) && !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int spawn(struct etcd_run *r, int i, const char *state)
{
	char name[16], data[128], client[64], peer[64], cluster[512] = "";
	pid_t pid;

	snprintf(name, sizeof(name), "m%d", i);
	snprintf(data, sizeof(data), "%s/%s", r->dir, name);
	snprintf(client, sizeof(client), "http://127.0.0.1:%d", r->client_port[i]);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", r->peer_port[i]);
	for (int k = 0; k < r->n; k++)
		snprintf(cluster + strlen(cluster), sizeof(cluster) - strlen(cluster), "%sm%d=http://127.0.0.1:%d",
			 k ? "," : "", k, r->peer_port[k]);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char log[160];
		int fd;

		snprintf(log, sizeof(log), "%s/%s.log", r->dir, name);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("etcd", "etcd", "--name", name, "--data-dir", data, "--listen-client-urls", client,
		       "--advertise-client-urls", client, "--listen-peer-urls", peer,
		       "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
		       "--initial-cluster-state", state, "--initial-cluster-token", r->dir,
		       "--heartbeat-interval", "50", "--election-timeout", "500", (char *)NULL);
		_exit(127);
	}
	r->pid[i] = pid;
	return 0;
}

static int healthy(const struct etcd_run *r)
{
	char cmd[512];

	/* etcdctl is etcd's own client: "healthy" means a quorum answers. */
	snprintf(cmd, sizeof(cmd), "ETCDCTL_API=3 etcdctl --endpoints=%s --command-timeout=1s endpoint health "
		 ">/dev/null 2>&1", r->endpoints);
	return system(cmd) == 0;
}

static int wait_healthy(const struct etcd_run *r)
{
	for (int t = 0; t < 200; t++) {
		if (healthy(r))
			return 0;
		usleep(100 * 1000);
	}
	return -ETIMEDOUT;
}

int etcd_run__start(struct etcd_run *r, int n, const char *prefix)
{
	int ret;

	memset(r, 0, sizeof(*r));
	if (system("command -v etcd >/dev/null 2>&1") != 0)
		return -ENOENT;
	r->n = n;
	snprintf(r->dir, sizeof(r->dir), "/tmp/su-etcd-%d-XXXXXX", (int)getpid());
	if (!mkdtemp(r->dir))
		return -errno;
	for (int i = 0; i < n; i++) {
		r->client_port[i] = free_port();
		r->peer_port[i] = free_port();
		snprintf(r->endpoints + strlen(r->endpoints), sizeof(r->endpoints) - strlen(r->endpoints),
			 "%s127.0.0.1:%d", i ? "," : "", r->client_port[i]);
	}
	snprintf(r->url, sizeof(r->url), "etcd://%s%s", r->endpoints, prefix ? prefix : "");
	for (int i = 0; i < n; i++)
		if ((ret = spawn(r, i, "new"))) {
			etcd_run__stop(r);
			return ret;
		}
	if ((ret = wait_healthy(r)))
		etcd_run__stop(r);
	return ret;
}

int etcd_run__stop_member(struct etcd_run *r, int i)
{
	if (r->pid[i] <= 0)
		return 0;
	kill(r->pid[i], SIGTERM);
	waitpid(r->pid[i], NULL, 0);
	r->pid[i] = 0;
	return 0;
}

int etcd_run__start_member(struct etcd_run *r, int i)
{
	return r->pid[i] > 0 ? 0 : spawn(r, i, "existing");
}

void etcd_run__stop(struct etcd_run *r)
{
	char cmd[128];

	for (int i = 0; i < r->n; i++)
		etcd_run__stop_member(r, i);
	if (r->dir[0] && strncmp(r->dir, "/tmp/su-etcd-", 13) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "# could not remove %s\n", r->dir);
	}
}
