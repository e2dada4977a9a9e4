/* Ownership enforcement in tc: enforce.bpf.c on IFACE's clsact egress hook.
 *
 * Attached through netlink (bpf_tc_*), not a bpf_link: like the decap XDP
 * program, it outlives an agent that crashes, so egress IPs left on the host
 * stay guarded until the next agent replaces the program (found by its
 * handle, priority and name) or removes it.  A filter of anyone else at our
 * handle and priority is never replaced.  The clsact qdisc is removed on stop
 * only when no filter at all is left on it (ours was the last). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <libmnl/libmnl.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agent/agent.h"
#include "bpf/enforce_abi.h"
#include "enforce.skel.h"

#define PROG_NAME "enforce"

static void hook_of(int ifindex, struct bpf_tc_hook *h)
{
	*h = (struct bpf_tc_hook){ .sz = sizeof(*h), .ifindex = ifindex,
				   .attach_point = BPF_TC_EGRESS };
}

static void opts_of(struct bpf_tc_opts *o)
{
	*o = (struct bpf_tc_opts){ .sz = sizeof(*o), .handle = ENFORCE_TC_HANDLE,
				   .priority = ENFORCE_TC_PRIO };
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

/* Id of the program at our handle/priority (0: none) and whether it is an
 * enforce program (ours, or a crashed agent's). */
static int query(int ifindex, uint32_t *id, bool *ours)
{
	struct bpf_tc_hook h;
	struct bpf_tc_opts o;
	struct bpf_prog_info info = { 0 };
	uint32_t len = sizeof(info);
	int fd;

	libbpf_print_fn_t was;
	int rc;

	hook_of(ifindex, &h);
	opts_of(&o);
	*id = 0;
	*ours = false;
	/* "no such qdisc/filter" is the common answer, not worth a warning */
	was = libbpf_set_print(quiet);
	rc = bpf_tc_query(&h, &o);
	libbpf_set_print(was);
	if (rc)
		return 0; /* no clsact or no such filter */
	*id = o.prog_id;
	fd = bpf_prog_get_fd_by_id(o.prog_id);
	if (fd < 0)
		return -errno;
	if (!bpf_obj_get_info_by_fd(fd, &info, &len))
		*ours = !strcmp(info.name, PROG_NAME);
	close(fd);
	return 0;
}

/* One bit per port of every slice, per egress IP. */
static int sync_slices(struct agent *a)
{
	struct bpf_map *m = a->eskel->maps.enforce_slices;
	uint32_t *ips, n = agent_plan__ips(a->cur, &ips), key, next, *pkey = NULL;
	struct enforce_ports *ports = malloc(sizeof(*ports));
	int rc = ips && ports ? 0 : -ENOMEM;

	for (uint32_t i = 0; !rc && i < n; i++) {
		uint32_t be = htonl(ips[i]);

		memset(ports, 0, sizeof(*ports));
		for (uint32_t k = 0; k < a->cur->n; k++) {
			const struct su_assignment_entry *e = &a->cur->v[k];

			for (uint32_t p = e->lo; e->ip == ips[i] && p <= e->hi; p++)
				ports->bits[p / 64] |= 1ull << (p % 64);
		}
		rc = bpf_map__update_elem(m, &be, sizeof(be), ports, sizeof(*ports), BPF_ANY);
	}
	/* Stale IPs go after the new ones are in: a kept IP never misses. */
	while (!rc && !bpf_map__get_next_key(m, pkey, &next, sizeof(next))) {
		bool keep = false;

		for (uint32_t i = 0; i < n && !keep; i++)
			keep = htonl(ips[i]) == next;
		if (!keep) {
			bpf_map__delete_elem(m, &next, sizeof(next), 0);
			continue;
		}
		key = next;
		pkey = &key;
	}
	free(ports);
	free(ips);
	return rc;
}

static int attach(struct agent *a)
{
	struct bpf_tc_hook h;
	struct bpf_tc_opts o;
	uint32_t id;
	bool ours;
	int rc;

	libbpf_print_fn_t was;

	hook_of(a->ifindex, &h);
	was = libbpf_set_print(quiet);
	rc = bpf_tc_hook_create(&h); /* EEXIST: a clsact is there already */
	libbpf_set_print(was);
	if (rc && rc != -EEXIST)
		return rc;
	rc = query(a->ifindex, &id, &ours);
	if (rc)
		return rc;
	if (id && !ours)
		return -EBUSY; /* someone else's filter at our handle and priority */
	opts_of(&o);
	o.prog_fd = bpf_program__fd(a->eskel->progs.enforce);
	o.flags = BPF_TC_F_REPLACE; /* a crashed agent's program, atomically */
	return bpf_tc_attach(&h, &o);
}

int agent_enforce__attach(struct agent *a)
{
	int rc;

	a->eskel = enforce__open_and_load();
	if (!a->eskel)
		return -errno ? -errno : -EINVAL;
	rc = sync_slices(a);
	if (!rc)
		rc = attach(a);
	if (rc) {
		enforce__destroy(a->eskel);
		a->eskel = NULL;
		return rc;
	}
	a->tc_attached = true;
	return 0;
}

int agent_enforce__update(struct agent *a)
{
	return a->eskel ? sync_slices(a) : 0;
}

struct count_ctx {
	unsigned n;
};

static int count_cb(const struct nlmsghdr *nlh, void *data)
{
	struct count_ctx *c = data;

	if (nlh->nlmsg_type == RTM_NEWTFILTER)
		c->n++;
	return MNL_CB_OK;
}

/* Filters on one direction of IFACE's clsact (RTM_GETTFILTER dump). */
static int filters(int ifindex, uint32_t minor, unsigned *n)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct count_ctx c = { 0 };
	struct tcmsg *t;
	uint32_t seq = (uint32_t)time(NULL), portid;
	int rc;

	if (!nl)
		return -errno;
	nlh->nlmsg_type = RTM_GETTFILTER;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	t = mnl_nlmsg_put_extra_header(nlh, sizeof(*t));
	t->tcm_family = AF_UNSPEC;
	t->tcm_ifindex = ifindex;
	t->tcm_parent = TC_H_MAKE(TC_H_CLSACT, minor);
	rc = mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) ? -errno : 0;
	portid = mnl_socket_get_portid(nl);
	if (!rc && mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		rc = -errno;
	while (!rc) {
		ssize_t r = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		if (r < 0) {
			rc = -errno;
			break;
		}
		r = mnl_cb_run(buf, (size_t)r, seq, portid, count_cb, &c);
		if (r < 0)
			rc = -errno;
		if (r <= MNL_CB_STOP)
			break;
	}
	mnl_socket_close(nl);
	*n = c.n;
	return rc;
}

/* Our filter out (only if it is an enforce program), then the clsact qdisc
 * if nothing else hangs on it. */
static void remove_prog(int ifindex)
{
	struct bpf_tc_hook h;
	struct bpf_tc_opts o;
	unsigned in = 1, out = 1;
	uint32_t id;
	bool ours;

	if (query(ifindex, &id, &ours) || !id || !ours)
		return;
	hook_of(ifindex, &h);
	opts_of(&o);
	bpf_tc_detach(&h, &o);
	if (!filters(ifindex, TC_H_MIN_INGRESS, &in) && !filters(ifindex, TC_H_MIN_EGRESS, &out) &&
	    !in && !out) {
		h.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&h);
	}
}

void agent_enforce__detach(struct agent *a)
{
	if (a->tc_attached)
		remove_prog(a->ifindex);
	a->tc_attached = false;
	enforce__destroy(a->eskel);
	a->eskel = NULL;
}

bool agent_enforce__leftover(int ifindex)
{
	uint32_t id;
	bool ours;

	return !query(ifindex, &id, &ours) && id && ours;
}

void agent_enforce__remove_leftover(int ifindex)
{
	remove_prog(ifindex);
}

int agent_enforce__stats(int ifindex, uint64_t *counts)
{
	uint32_t id;
	bool ours;
	int rc = query(ifindex, &id, &ours);

	if (rc || !id || !ours)
		return rc ? rc : -ENOENT;
	return agent_bpf__sum_counters(id, "enforce_stats", ENFORCE_STAT_MAX, counts);
}
