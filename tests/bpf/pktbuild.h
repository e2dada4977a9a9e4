/* Packet builder for router fixtures, fuzz seeds and the bench.  Builds
 * inside out: start with a payload at the end of the buffer and prepend
 * headers, so every length and checksum is known when its header is
 * written.  Addresses and ports are given in host order. */
#ifndef SU_TEST_PKTBUILD_H
#define SU_TEST_PKTBUILD_H

#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>

#include "bpf/parse.h"

#define PB_CAP 4096

/* Headers inside a frame sit at any alignment (the IPv4 header is 14 bytes
 * in): tests reach them through these 1-aligned views, which the compiler
 * reads safely (a typedef may lower alignment). */
typedef struct iphdr __attribute__((aligned(1))) pb_iphdr;
typedef struct udphdr __attribute__((aligned(1))) pb_udphdr;
typedef struct tcphdr __attribute__((aligned(1))) pb_tcphdr;
typedef struct icmphdr __attribute__((aligned(1))) pb_icmphdr;

struct pb {
	uint8_t buf[PB_CAP];
	size_t off; /* data is buf[off .. PB_CAP) */
};

static inline void pb_init(struct pb *p)
{
	p->off = PB_CAP;
}

static inline uint8_t *pb_data(const struct pb *p)
{
	return (uint8_t *)p->buf + p->off;
}

static inline size_t pb_len(const struct pb *p)
{
	return PB_CAP - p->off;
}

static inline void *pb_push(struct pb *p, size_t n)
{
	p->off -= n;
	memset(p->buf + p->off, 0, n);
	return p->buf + p->off;
}

static inline void pb_bytes(struct pb *p, const void *b, size_t n)
{
	memcpy(pb_push(p, n), b, n);
}

static inline void pb_fill(struct pb *p, size_t n, uint8_t v)
{
	memset(pb_push(p, n), v, n);
}

/* Appends at the tail (Ethernet padding). */
static inline void pb_pad(struct pb *p, size_t n)
{
	memmove(p->buf + p->off - n, p->buf + p->off, pb_len(p));
	p->off -= n;
	memset(p->buf + PB_CAP - n, 0, n);
}

static inline void pb_udp(struct pb *p, uint16_t sport, uint16_t dport)
{
	size_t len = pb_len(p) + 8;
	pb_udphdr *u = pb_push(p, 8);

	u->source = htons(sport);
	u->dest = htons(dport);
	u->len = htons(len);
}

static inline void pb_tcp(struct pb *p, uint16_t sport, uint16_t dport)
{
	pb_tcphdr *t = pb_push(p, 20);

	t->source = htons(sport);
	t->dest = htons(dport);
	t->seq = htonl(1);
	t->doff = 5;
	t->ack = 1;
	t->window = htons(65535);
}

static inline void pb_icmp(struct pb *p, uint8_t type, uint8_t code, uint16_t id, uint16_t seq)
{
	struct su_icmphdr *h = pb_push(p, 8);

	h->type = type;
	h->code = code;
	h->un.echo.id = htons(id);
	h->un.echo.seq = htons(seq);
}

#define PB_DF SU_IP_DF
#define PB_MF SU_IP_MF

/* frag: flags | offset in 8-byte units, host order. */
static inline pb_iphdr *pb_ip(struct pb *p, uint32_t src, uint32_t dst, uint8_t proto,
				  uint16_t id, uint16_t frag, uint8_t ttl)
{
	size_t len = pb_len(p) + 20;
	pb_iphdr *ip = pb_push(p, 20);

	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons(len);
	ip->id = htons(id);
	ip->frag_off = htons(frag);
	ip->ttl = ttl;
	ip->protocol = proto;
	ip->saddr = htonl(src);
	ip->daddr = htonl(dst);
	ip->check = su_csum(ip, 20);
	return ip;
}

static inline void pb_eth(struct pb *p, const uint8_t dst[6], const uint8_t src[6], uint16_t proto)
{
	struct ethhdr *e = pb_push(p, 14);

	memcpy(e->h_dest, dst, 6);
	memcpy(e->h_source, src, 6);
	e->h_proto = htons(proto);
}

#define IP4(a, b, c, d) (((uint32_t)(a) << 24) | ((b) << 16) | ((c) << 8) | (d))

#endif
