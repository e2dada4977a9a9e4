/* SOCKS5 UDP ASSOCIATE (RFC 1928 §7): not yet. */
#include <errno.h>

#include "proxy/conn.h"

int udp_start(struct conn *c)
{
	return -ENOTSUP;
}

void udp_free(struct conn *c)
{
}
