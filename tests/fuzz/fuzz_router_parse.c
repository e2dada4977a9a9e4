/* libFuzzer harness for the router's packet parsers (src/bpf/parse.h).
 *
 * The parsers run here exactly as router.bpf.c chains them, on a buffer
 * allocated to the frame's exact size so AddressSanitizer catches any read
 * past the end the bounds checks missed.  Their decision is compared with a
 * reference written independently below, in plain offset arithmetic on a
 * length (no cursors, no pointer comparisons), from the RFCs:
 *   - not an IPv4 frame, or fewer than 20 bytes of IPv4: pass;
 *   - to the router address: GUE on port 6080 from the backbone, else pass;
 *   - otherwise the packet is taken as addressed to a local egress IP and
 *     must yield the same drop reason, or the same flow and dispatch key;
 *     TCP that cannot be a reply (SYN without ACK; neither ACK nor RST) is
 *     refused, and a first TCP fragment must hold the whole fixed header.
 * Map lookups are outside the parsers and outside this model.
 *
 * Build with -fno-sanitize-recover=undefined to make UB fatal as well.
 * The first input byte steers the fuzzer toward deep layers: bits 0-1 pick
 * a framing (0 raw frame, 1 an Ethernet header is prepended, 2 Ethernet and
 * a backbone GUE header are prepended); bit 2 makes the (inner) IPv4 total
 * length match the bytes present; bit 3 copies its destination into the
 * source of an ICMP error's quote.  Everything else stays fuzzed. */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "bpf/parse.h"

#define ROUTER 0x0a000001u /* 10.0.0.1 */
#define GUE_PORT 6080

enum verdict { V_PASS, V_DROP, V_DISPATCH };

struct decision {
	enum verdict v;
	int reason;         /* V_DROP: enum su_stat */
	int backbone;       /* came in over the backbone */
	struct su_flow f;   /* V_DISPATCH: the fields compared below */
};

/* ---- the parsers, chained as in router.bpf.c ---- */

static void program(uint8_t *data, size_t len, struct decision *d)
{
	struct su_cursor c = { data, data + len, data + len };
	struct ethhdr *eth;
	struct iphdr *iph;
	int err;

	memset(d, 0, sizeof(*d));
	if (su_parse_eth(&c, &eth) != ETH_P_IP || su_peek_ipv4(&c, &iph)) {
		d->v = V_PASS;
		return;
	}
	if (iph->daddr == htonl(ROUTER)) {
		struct su_flow of = { 0 };

		if (su_parse_ipv4(&c, iph, &of) || su_parse_gue(&c, &of, htons(GUE_PORT))) {
			d->v = V_PASS;
			return;
		}
		if (su_peek_ipv4(&c, &iph)) {
			d->v = V_DROP;
			d->reason = SU_STAT_DROP_BACKBONE_BAD;
			return;
		}
		d->backbone = 1;
	}
	err = su_parse_ipv4(&c, c.pos, &d->f);
	if (!err)
		err = su_parse_key(&c, &d->f);
	if (!err)
		err = -su_tcp_unsolicited(&d->f);
	if (err) {
		d->v = V_DROP;
		d->reason = -err;
		return;
	}
	d->v = V_DISPATCH;
}

/* ---- the reference ---- */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t raw32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint16_t raw16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static int drop(struct decision *d, int reason)
{
	d->v = V_DROP;
	d->reason = reason;
	return -1;
}

/* The L4 dispatch key of the IPv4 packet at b[off], which must end by lim. */
static void ref_dispatch(const uint8_t *b, size_t off, size_t lim, struct decision *d)
{
	const uint8_t *ip = b + off;
	size_t hl = (ip[0] & 0xf) * 4, tot = be16(ip + 2), l4, l4len;
	uint16_t frag = be16(ip + 6);
	struct su_flow *f = &d->f;

	if (hl < 20 || tot < hl)
		return (void)drop(d, SU_STAT_DROP_L3_BAD);
	if (off + hl > lim || off + tot > lim)
		return (void)drop(d, SU_STAT_DROP_L3_TRUNC);
	f->src = raw32(ip + 12);
	f->dst = raw32(ip + 16);
	f->id = raw16(ip + 4);
	f->tot_len = raw16(ip + 2);
	f->tos = ip[1];
	f->proto = ip[9];
	f->ihl = hl;
	f->df = (frag >> 14) & 1;
	f->frag = (frag & 0x1fff) ? SU_FRAG_LATER : (frag & 0x2000) ? SU_FRAG_FIRST : SU_FRAG_NONE;
	d->v = V_DISPATCH;
	if (f->frag == SU_FRAG_LATER)
		return; /* kind NONE: the fragment LRU decides */
	l4 = off + hl;
	l4len = tot - hl;
	const uint8_t *p = b + l4;

	if (f->proto == 6 || f->proto == 17) {
		if (l4len < 8)
			return (void)drop(d, SU_STAT_DROP_L4_TRUNC);
		f->sport = raw16(p);
		f->dport = raw16(p + 2);
		f->port = f->dport;
		f->kind = SU_KEY_PORT;
		if (f->proto == 6) {
			/* RFC 1858: even a first fragment carries the flags */
			if (l4len < 20)
				return (void)drop(d, SU_STAT_DROP_L4_TRUNC);
			f->tcp_flags = p[13];
		}
		if (f->frag == SU_FRAG_NONE && f->proto == 17) {
			size_t ulen = be16(p + 4);

			if (ulen < 8 || ulen > l4len)
				return (void)drop(d, SU_STAT_DROP_L4_BAD);
		} else if (f->frag == SU_FRAG_NONE) {
			size_t doff = (p[12] >> 4) * 4;

			if (doff < 20 || doff > l4len)
				return (void)drop(d, SU_STAT_DROP_L4_BAD);
		}
		/* RFC 9293: a reply carries ACK, or is a RST */
		if (f->proto == 6 && (p[13] & 0x12) == 0x02)
			return (void)drop(d, SU_STAT_DROP_TCP_SYN);
		if (f->proto == 6 && !(p[13] & 0x14))
			return (void)drop(d, SU_STAT_DROP_TCP_NO_ACK);
		return;
	}
	if (f->proto != 1)
		return (void)drop(d, SU_STAT_DROP_PROTO);
	if (l4len < 8)
		return (void)drop(d, SU_STAT_DROP_L4_TRUNC);
	switch (p[0]) {
	case 0: /* echo reply */
		f->port = raw16(p + 4);
		f->kind = SU_KEY_ECHO;
		return;
	case 3:
	case 11:
	case 12:
		break;
	default:
		return (void)drop(d, SU_STAT_DROP_ICMP_TYPE);
	}
	/* quoted datagram: IP header + 8 bytes, from the egress IP */
	const uint8_t *q = p + 8;
	size_t qavail = l4len - 8, qhl;

	if (qavail < 20)
		return (void)drop(d, SU_STAT_DROP_ICMP_QUOTE);
	qhl = (q[0] & 0xf) * 4;
	if ((q[0] >> 4) != 4 || qhl < 20 || raw32(q + 12) != f->dst)
		return (void)drop(d, SU_STAT_DROP_ICMP_QUOTE);
	if (be16(q + 6) & 0x1fff)
		return (void)drop(d, SU_STAT_DROP_ICMP_QUOTE);
	if (qhl + 8 > qavail)
		return (void)drop(d, SU_STAT_DROP_ICMP_QUOTE);
	f->kind = SU_KEY_ICMP_ERR;
	if (q[9] == 6 || q[9] == 17)
		f->port = raw16(q + qhl);
	else if (q[9] == 1 && q[qhl] == 8)
		f->port = raw16(q + qhl + 4);
	else
		drop(d, SU_STAT_DROP_ICMP_QUOTE);
}

static void reference(const uint8_t *b, size_t len, struct decision *d)
{
	memset(d, 0, sizeof(*d));
	d->v = V_PASS;
	if (len < 14 || be16(b + 12) != 0x0800 || len < 34 || (b[14] >> 4) != 4)
		return;
	if (raw32(b + 30) == htonl(ROUTER)) {
		size_t hl = (b[14] & 0xf) * 4, tot = be16(b + 16);
		uint16_t frag = be16(b + 20);

		if (hl < 20 || tot < hl || 14 + hl > len || 14 + tot > len)
			return;
		if (b[23] != 17 || (frag & 0x3fff) || tot < hl + 8)
			return;
		if (be16(b + 14 + hl + 2) != GUE_PORT)
			return;
		size_t in = 14 + hl + 8, lim = 14 + tot;

		if (in + 20 > lim || (b[in] >> 4) != 4)
			return (void)drop(d, SU_STAT_DROP_BACKBONE_BAD);
		d->backbone = 1;
		ref_dispatch(b, in, lim, d);
		return;
	}
	ref_dispatch(b, 14, len, d);
}

/* ---- comparison ---- */

static void check(const struct decision *a, const struct decision *r)
{
	int same = a->v == r->v;

	if (same && a->v == V_DROP)
		same = a->reason == r->reason;
	if (same && a->v == V_DISPATCH)
		same = a->backbone == r->backbone && a->f.src == r->f.src && a->f.dst == r->f.dst &&
		       a->f.id == r->f.id && a->f.tot_len == r->f.tot_len &&
		       a->f.proto == r->f.proto && a->f.frag == r->f.frag && a->f.df == r->f.df &&
		       a->f.ihl == r->f.ihl && a->f.kind == r->f.kind && a->f.port == r->f.port &&
		       a->f.sport == r->f.sport && a->f.dport == r->f.dport &&
		       a->f.tos == r->f.tos && a->f.tcp_flags == r->f.tcp_flags;
	if (!same) {
		fprintf(stderr, "parser: v=%d reason=%d kind=%d port=%u bb=%d\n", a->v, a->reason,
			a->f.kind, ntohs(a->f.port), a->backbone);
		fprintf(stderr, "reference: v=%d reason=%d kind=%d port=%u bb=%d\n", r->v, r->reason,
			r->f.kind, ntohs(r->f.port), r->backbone);
		abort();
	}
}

static void fixup(uint8_t *ip, size_t n, int flags)
{
	size_t hl = (ip[0] & 0xf) * 4;

	if (flags & 4) {
		ip[2] = (uint8_t)(n >> 8);
		ip[3] = (uint8_t)n;
	}
	if ((flags & 8) && hl >= 20 && n >= hl + 8 + 20)
		memcpy(ip + hl + 8 + 12, ip + 16, 4);
}

static size_t frame(const uint8_t *in, size_t n, uint8_t **out)
{
	static const uint8_t eth[14] = { 2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00 };
	uint8_t pre[14 + 28];
	size_t np = 0, len;
	int flags = n ? in[0] : 0, mode = flags & 3;

	if (n) {
		in++;
		n--;
	}
	if (mode >= 1) {
		memcpy(pre, eth, 14);
		np = 14;
	}
	if (mode == 2) {
		/* outer IPv4/UDP from a router to us, lengths covering the rest */
		uint8_t *ip = pre + 14, *udp = ip + 20;
		uint16_t tot = (uint16_t)(28 + n);

		memset(ip, 0, 28);
		ip[0] = 0x45;
		ip[2] = tot >> 8;
		ip[3] = tot & 0xff;
		ip[8] = 64;
		ip[9] = 17;
		memcpy(ip + 12, (uint8_t[]){ 10, 2, 0, 1 }, 4);
		memcpy(ip + 16, (uint8_t[]){ 10, 0, 0, 1 }, 4);
		udp[2] = GUE_PORT >> 8;
		udp[3] = GUE_PORT & 0xff;
		udp[4] = (uint16_t)(8 + n) >> 8;
		udp[5] = (uint16_t)(8 + n) & 0xff;
		np += 28;
	}
	/* Two bytes in, like the kernel's NET_IP_ALIGN, so IPv4 headers are
	 * 4-byte aligned; the frame still ends exactly at the allocation's end
	 * for AddressSanitizer. */
	len = np + n;
	*out = malloc(len + 2);
	memcpy(*out + 2, pre, np);
	if (n)
		memcpy(*out + 2 + np, in, n);
	if (mode && n >= 20)
		fixup(*out + 2 + np, n, flags);
	return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct decision a, r;
	uint8_t *buf;
	size_t len;

	if (size > 4096)
		return 0;
	len = frame(data, size, &buf);
	program(buf + 2, len, &a);
	reference(buf + 2, len, &r);
	check(&a, &r);
	free(buf);
	return 0;
}
