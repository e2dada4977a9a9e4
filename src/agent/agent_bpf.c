/* Reading an attached program's counters back through the kernel alone
 * (program id -> its maps by name), so `agent status` and the metrics need
 * no pins: the decap (XDP) and the enforcement (tc) programs both count in
 * a per-CPU array of __u64 indexed by reason. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/agent.h"

static int prog_map(uint32_t prog_id, const char *name)
{
	struct bpf_prog_info info = { 0 };
	uint32_t ids[16], len = sizeof(info);
	int pfd = bpf_prog_get_fd_by_id(prog_id), fd = -ENOENT;

	if (pfd < 0)
		return -errno;
	info.nr_map_ids = 16;
	info.map_ids = (uint64_t)(uintptr_t)ids;
	if (bpf_obj_get_info_by_fd(pfd, &info, &len)) {
		close(pfd);
		return -errno;
	}
	close(pfd);
	for (uint32_t i = 0; i < info.nr_map_ids && i < 16 && fd < 0; i++) {
		struct bpf_map_info mi = { 0 };
		uint32_t ml = sizeof(mi);
		int mfd = bpf_map_get_fd_by_id(ids[i]);

		if (mfd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(mfd, &mi, &ml) && !strcmp(mi.name, name))
			fd = mfd;
		else
			close(mfd);
	}
	return fd;
}

int agent_bpf__sum_counters(uint32_t prog_id, const char *map, uint32_t n, uint64_t *counts)
{
	int ncpu = libbpf_num_possible_cpus(), fd = prog_map(prog_id, map), rc;
	uint64_t *vals;

	if (fd < 0)
		return fd;
	vals = ncpu > 0 ? calloc((size_t)ncpu, sizeof(*vals)) : NULL;
	for (uint32_t k = 0; vals && k < n; k++) {
		counts[k] = 0;
		if (bpf_map_lookup_elem(fd, &k, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			counts[k] += vals[c];
	}
	rc = vals ? 0 : -ENOMEM;
	free(vals);
	close(fd);
	return rc;
}
