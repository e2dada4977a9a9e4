#!/usr/bin/env python3
"""Helpers for tests/e2e/router.t, each run inside a network namespace.

decap PORT TUN            a server's GUE receiver: every UDP datagram to PORT
    is an IPv4 packet (GUE variant 1), written into TUN so the kernel
    delivers it locally.  Stands in for fou, which this kernel may lack.
udp-echo IP:PORT          echoes every datagram.
udp-ping SRC:SPORT DST:PORT N [SIZE]   sends N datagrams (of SIZE bytes)
    from SRC:SPORT, prints how many whole echoes came back.
udp-count IP:PORT IDLE    counts datagrams until IDLE seconds without one
    (after "ready"); prints the count.
udp-send SRC DST:PORT N PPS   sends N datagrams at PPS.
tcp-serve IP:PORT [BYTES]  TCP server: echoes what a client sends until it
    half-closes, or (with BYTES) sends BYTES zeros and closes.
tcp-client SRC:SPORT DST:PORT [MSG]  connects from SRC:SPORT, sends MSG,
    half-closes, prints what came back (its length when MSG is absent).
gue FROM DST PORT INNER_DST INNER_PORT   one GUE packet from FROM carrying
    UDP to INNER_DST:INNER_PORT.
tcp-raw SRC DST:PORT FLAGS   one TCP segment with FLAGS (e.g. 0x02: SYN) from
    SRC:40000, built by hand (raw socket): a kernel socket's SYN on veth may
    skip the peer's native XDP, a raw one always reaches it.
"""
import fcntl, os, select, socket, struct, sys, time


def addr(s):
    ip, port = s.rsplit(":", 1)
    return ip, int(port)


def decap(port, tun):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    # TUNSETIFF, IFF_TUN | IFF_NO_PI
    fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", tun.encode(), 0x0001 | 0x1000))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        pkt = s.recv(65535)
        if pkt and pkt[0] >> 4 == 4:
            os.write(fd, pkt)


def udp_echo(bind):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(addr(bind))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def udp_ping(src, dst, n, size):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(addr(src))
    got = 0
    for i in range(n):
        msg = (b"ping %d " % i).ljust(size, b".") if size else b"ping %d" % i
        s.sendto(msg, addr(dst))
        r, _, _ = select.select([s], [], [], 1.0)
        if r and s.recv(65535) == msg:
            got += 1
    print(got)


def udp_count(bind, idle):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(addr(bind))
    print("ready", flush=True)
    n = 0
    deadline = time.time() + 30
    while time.time() < deadline:
        r, _, _ = select.select([s], [], [], idle if n else 30)
        if not r:
            break
        s.recv(65535)
        n += 1
    print(n, flush=True)


def udp_send(src, dst, n, pps):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    t0 = time.time()
    for i in range(n):
        s.sendto(b"x" * 64, addr(dst))
        ahead = t0 + (i + 1) / pps - time.time()
        if ahead > 0:
            time.sleep(ahead)


def tcp_serve(bind, nbytes):
    import threading

    def serve(c):
        with c:
            if nbytes is not None:
                c.sendall(b"\0" * nbytes)
                return
            data = b""
            while True:
                d = c.recv(65536)
                if not d:
                    break
                data += d
            c.sendall(data)

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr(bind))
    s.listen(64)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def tcp_client(src, dst, msg):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(10)
    try:
        s.bind(addr(src))
    except OSError as e:
        # Said apart from a lost reply: nothing was sent at all.
        print("error: bind %s (nothing sent): %s" % (src, e), file=sys.stderr)
        print("")
        return
    try:
        s.connect(addr(dst))
        if msg is not None:
            s.sendall(msg.encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError as e:
        print("error: %s" % e, file=sys.stderr)
        data = b""
    print(data.decode() if msg is not None else len(data))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def gue(frm, dst, port, inner_dst, inner_port):
    udp = struct.pack("!HHHH", 53, inner_port, 8 + 4, 0) + b"abcd"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton("192.0.2.10"), socket.inet_aton(inner_dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((frm, 0))
    s.sendto(ip + udp, (dst, port))


def tcp_raw(src, dst, flags):
    ip, port = addr(dst)
    opt = bytes.fromhex("020405b40402080a000000010000000001030307")  # MSS SACK TS WS
    tcp = struct.pack("!HHIIBBHHH", 40000, port, 1, 0, (5 + len(opt) // 4) << 4, flags,
                      65535, 0, 0) + opt
    ph = socket.inet_aton(src) + socket.inet_aton(ip) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(ph + tcp)) + tcp[18:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s.bind((src, 0))
    s.sendto(tcp, (ip, 0))


def udp_df(dst, size):
    """One UDP datagram of `size` IPv4 bytes with DF set (IP_PMTUDISC_DO):
    prints 'sent', or the error (EMSGSIZE once a PMTU below size is known)."""
    ip, port = addr(dst)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO
    try:
        s.sendto(b"\0" * (size - 28), (ip, port))
        print("sent")
    except OSError as e:
        print("error: %s" % e.strerror)


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "udp-df":
        udp_df(args[0], int(args[1]))
        return
    if cmd == "decap":
        decap(int(args[0]), args[1])
    elif cmd == "udp-echo":
        udp_echo(args[0])
    elif cmd == "udp-ping":
        udp_ping(args[0], args[1], int(args[2]), int(args[3]) if len(args) > 3 else 0)
    elif cmd == "udp-count":
        udp_count(args[0], float(args[1]))
    elif cmd == "udp-send":
        udp_send(args[0], args[1], int(args[2]), float(args[3]))
    elif cmd == "tcp-serve":
        tcp_serve(args[0], int(args[1]) if len(args) > 1 else None)
    elif cmd == "tcp-client":
        tcp_client(args[0], args[1], args[2] if len(args) > 2 else None)
    elif cmd == "tcp-raw":
        tcp_raw(args[0], args[1], int(args[2], 0))
    elif cmd == "gue":
        gue(args[0], args[1], int(args[2]), args[3], int(args[4]))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
