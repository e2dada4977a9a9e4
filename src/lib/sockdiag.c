/* inet_diag dump with a kernel-side bytecode filter (see sockdiag.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/sockdiag.h"

/* Large enough for one kernel dump skb (up to 32 KiB with big pages). */
#define DUMP_BUF 65536

/* One host condition: op + struct inet_diag_hostcond + one IPv4 address,
 * spelled out because the kernel's struct ends in a flexible array. */
struct bc_host {
	struct inet_diag_bc_op op;
	uint8_t family, prefix_len;
	uint16_t pad;
	int32_t port; /* -1: any */
	uint32_t addr;
};
_Static_assert(sizeof(struct bc_host) == sizeof(struct inet_diag_bc_op) +
	       sizeof(struct inet_diag_hostcond) + 4, "bytecode host condition layout");
_Static_assert(offsetof(struct bc_host, port) - offsetof(struct bc_host, family) ==
	       offsetof(struct inet_diag_hostcond, port), "hostcond port offset");

/* Every op jumps to the next one on success and past the end (+4, which the
 * kernel's inet_diag_bc_run reads as "reject") on failure: a conjunction. */
static size_t bc_build(const struct su_sockdiag_query *q, struct bc_host *bc)
{
	size_t n = 0, total;

	if (q->src || q->sport >= 0) {
		bc[n] = (struct bc_host){ .op.code = INET_DIAG_BC_S_COND, .family = AF_INET,
					  .prefix_len = q->src ? 32 : 0, .port = q->sport,
					  .addr = htonl(q->src) };
		n++;
	}
	if (q->dst || q->dport >= 0) {
		bc[n] = (struct bc_host){ .op.code = INET_DIAG_BC_D_COND, .family = AF_INET,
					  .prefix_len = q->dst ? 32 : 0, .port = q->dport,
					  .addr = htonl(q->dst) };
		n++;
	}
	total = n * sizeof(*bc);
	for (size_t i = 0; i < n; i++) {
		bc[i].op.yes = sizeof(*bc);
		bc[i].op.no = (unsigned short)(total - i * sizeof(*bc) + 4);
	}
	return total;
}

struct walk {
	su_sockdiag_cb cb;
	void *arg;
	uint8_t proto;
	int rc;
};

static int on_msg(const struct nlmsghdr *nlh, void *data)
{
	struct walk *w = data;
	const struct inet_diag_msg *m = mnl_nlmsg_get_payload(nlh);
	struct su_sockdiag_sock s;

	unsigned w4 = 0; /* which word holds the IPv4 address */

	if (m->idiag_family == AF_INET6) {
		/* ::ffff:a.b.c.d; a pure IPv6 socket is not in our space (an empty
		 * filter lets them through) */
		if (m->id.idiag_src[0] || m->id.idiag_src[1] ||
		    m->id.idiag_src[2] != htonl(0xffff))
			return MNL_CB_OK;
		w4 = 3;
	} else if (m->idiag_family != AF_INET) {
		return MNL_CB_OK;
	}
	s = (struct su_sockdiag_sock){
		.src = ntohl(m->id.idiag_src[w4]),
		.dst = ntohl(m->id.idiag_dst[w4]),
		.sport = ntohs(m->id.idiag_sport),
		.dport = ntohs(m->id.idiag_dport),
		.proto = w->proto,
		.state = m->idiag_state,
		.inode = m->idiag_inode,
		.cookie = (uint64_t)m->id.idiag_cookie[0] | (uint64_t)m->id.idiag_cookie[1] << 32,
		.expires_ms = m->idiag_expires,
	};
	w->rc = w->cb(&s, w->arg);
	return w->rc ? MNL_CB_STOP : MNL_CB_OK;
}

static int send_request(struct mnl_socket *nl, const struct su_sockdiag_query *q, uint8_t family,
			uint32_t seq)
{
	char buf[512];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct inet_diag_req_v2 *req;
	struct bc_host bc[2];
	size_t bclen;

	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = seq;
	req = mnl_nlmsg_put_extra_header(nlh, sizeof(*req));
	req->sdiag_family = family;
	req->sdiag_protocol = q->proto;
	req->idiag_states = ~0u; /* TIME_WAIT still holds its 4-tuple */
	bclen = bc_build(q, bc);
	if (bclen)
		mnl_attr_put(nlh, INET_DIAG_REQ_BYTECODE, bclen, bc);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	return 0;
}

static int dump_family(struct mnl_socket *nl, const struct su_sockdiag_query *q, uint8_t family,
		       uint32_t seq, char *buf, struct walk *w)
{
	uint32_t portid = mnl_socket_get_portid(nl);
	int rc = send_request(nl, q, family, seq);

	while (!rc) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, DUMP_BUF);

		if (n < 0) {
			rc = -errno;
			break;
		}
		rc = mnl_cb_run(buf, (size_t)n, seq, portid, on_msg, w);
		if (rc == MNL_CB_ERROR) {
			rc = -errno;
			break;
		}
		if (rc == MNL_CB_STOP) { /* NLMSG_DONE or the callback stopped */
			rc = w->rc;
			break;
		}
		rc = 0;
	}
	return rc;
}

int su_sockdiag__dump(const struct su_sockdiag_query *q, su_sockdiag_cb cb, void *arg)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	struct walk w = { .cb = cb, .arg = arg, .proto = q->proto };
	uint32_t seq = (uint32_t)time(NULL);
	char *buf;
	int rc;

	if (!nl)
		return -errno;
	buf = malloc(DUMP_BUF);
	if (!buf) {
		mnl_socket_close(nl);
		return -ENOMEM;
	}
	rc = mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) ? -errno : 0;
	if (!rc)
		rc = dump_family(nl, q, AF_INET, seq, buf, &w);
	/* A kernel without IPv6 has no mapped sockets: its error is no news. */
	if (!rc && dump_family(nl, q, AF_INET6, seq + 1, buf, &w) && w.rc)
		rc = w.rc;
	free(buf);
	mnl_socket_close(nl);
	return rc;
}

struct su_sockdiag {
	struct mnl_socket *nl;
	uint32_t seq, portid;
	char buf[8192];
};

int su_sockdiag__open(struct su_sockdiag **out)
{
	struct su_sockdiag *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	if (!d->nl || mnl_socket_bind(d->nl, 0, MNL_SOCKET_AUTOPID)) {
		int rc = -errno;

		if (d->nl)
			mnl_socket_close(d->nl);
		free(d);
		return rc;
	}
	d->portid = mnl_socket_get_portid(d->nl);
	d->seq = (uint32_t)time(NULL);
	*out = d;
	return 0;
}

void su_sockdiag__close(struct su_sockdiag *d)
{
	if (!d)
		return;
	mnl_socket_close(d->nl);
	free(d);
}

static int on_one(const struct nlmsghdr *nlh, void *data)
{
	struct su_sockdiag_sock *s = data;
	const struct inet_diag_msg *m = mnl_nlmsg_get_payload(nlh);

	s->state = m->idiag_state;
	s->expires_ms = m->idiag_expires;
	s->inode = m->idiag_inode;
	return MNL_CB_OK;
}

int su_sockdiag__lookup(struct su_sockdiag *d, const struct su_sockdiag_query *q,
			struct su_sockdiag_sock *out)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(d->buf);
	struct inet_diag_req_v2 *req;
	ssize_t n;
	int rc;

	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST; /* no NLM_F_DUMP: inet_diag_cmd_exact */
	nlh->nlmsg_seq = ++d->seq;
	req = mnl_nlmsg_put_extra_header(nlh, sizeof(*req));
	req->sdiag_family = AF_INET;
	req->sdiag_protocol = q->proto;
	req->idiag_states = ~0u;
	req->id.idiag_src[0] = htonl(q->src);
	req->id.idiag_dst[0] = htonl(q->dst);
	req->id.idiag_sport = htons((uint16_t)q->sport);
	req->id.idiag_dport = htons((uint16_t)q->dport);
	req->id.idiag_cookie[0] = req->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (mnl_socket_sendto(d->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	*out = (struct su_sockdiag_sock){ .src = q->src, .dst = q->dst,
					  .sport = (uint16_t)q->sport,
					  .dport = (uint16_t)q->dport, .proto = q->proto };
	n = mnl_socket_recvfrom(d->nl, d->buf, sizeof(d->buf));
	if (n < 0)
		return -errno;
	rc = mnl_cb_run(d->buf, (size_t)n, d->seq, d->portid, on_one, out);
	if (rc == MNL_CB_ERROR)
		return errno == ENOENT ? 0 : -errno; /* ENOENT: no such socket */
	return 1;
}
