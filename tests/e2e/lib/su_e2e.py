#!/usr/bin/env python3
"""Helpers for tests/e2e/agent.t, each run inside a network namespace.

gue-router TUN SERVER PORT LOCAL  stand-in for the DC router's return path:
    every IPv4 packet routed into TUN is sent as GUE variant 1 (outer IPv4 +
    UDP to SERVER:PORT from LOCAL + the inner packet), what the XDP router
    does and what the agent's decap takes apart.
bad-gue FROM SERVER PORT INNER_DST  one GUE packet from a non-router source.
listen IP:PORT...                  TCP listeners that never accept (backlog).
hold LIB TAGS N IP:PORT...          N connections to each destination with
    su_connect(); prints JSON {ok, failed, ports, min, max}; holds them until
    stdin closes.
hold-udp LIB TAGS N IP:PORT...      the same with connected UDP sockets (no
    peer needed: each still holds its 4-tuple).
live LIB TAGS IP:PORT GOFILE       one connection through su_connect to an echo
    server: echoes 'before', waits for GOFILE, echoes 'after'.
udp-echo IP:PORT                   UDP echo server; prints each peer IP:PORT.
blocked SRC_IP PORT DST:PORT        UDP send and TCP connect from a port outside
    the slice: prints what the kernel said.
packet IFACE DSTMAC KIND SRC DST PORT [bypass]  one hand-made frame through an
    AF_PACKET socket (PACKET_QDISC_BYPASS with "bypass"): netfilter never sees
    it.  KIND: udp tcp sctp udplite dccp gre echo echo-reply timestamp
    unreach frag-first frag-next arp; PORT is the source port or identifier.
raw KIND SRC DST PORT               the same IPv4 packet through a raw socket
    (IP_HDRINCL); prints "sent" or the errno name.
sniff IFACE                         prints one line per IPv4 packet or ARP seen,
    "KIND SRC PORT DST" (port or identifier; "-" for none).
fastfail SRC_IP PORT DST:PORT       TCP connect, UDP send and ICMP echo from a
    port (identifier) outside the slice: JSON {tcp, tcp_s, udp, ping}, each
    an errno name or "ok".
tcp-try DST:PORT SECONDS [SRC]      one TCP connect: prints "connected" or the error.
udp-recv IP:PORT SECONDS            UDP socket bound to IP:PORT (0.0.0.0 for a
    wildcard): prints each datagram's payload until SECONDS pass without one.
gue-udp FROM SERVER PORT SRC:SPORT DST:DPORT PAYLOAD [corrupt]  one GUE packet
    (outer UDP from FROM to SERVER:PORT, through this host's stack, so veth's
    checksum offload marks it as already verified) carrying a UDP datagram
    SRC:SPORT -> DST:DPORT; "corrupt" flips a payload byte after checksumming.
udp-to DST:PORT PAYLOAD            one plain UDP datagram (no GUE).
tcp-log IP:PORT...                 TCP servers: print each peer IP:PORT, read to EOF
    (the client closes first: client-side close), close.
shim-probe IP COUNT KIND:PORT...    run under the LD_PRELOAD shim: per KIND, open
    COUNT IPv4 flows to IP:PORT the way KIND says (shim_one) and print a JSON
    line {kind, ports: local ports, errors: {strerror: count}, extra: facts}.
fork-probe IP PORT W N              under the shim: W forked workers make N
    connections each (to PORT+1+worker); prints their local ports.
churn LIB TAGS N RATE IP:PORT       N connections to one destination through
    su_connect(), at most RATE per second, each closed by the client at once
    (this side holds TIME_WAIT); prints JSON {ok, failed, errors, secs, ports}.
"""
import errno
import ctypes, fcntl, json, os, resource, select, socket, struct, sys, time

SOCK_STREAM, SOCK_DGRAM = 1, 2


def addr(s):
    ip, port = s.rsplit(":", 1)
    return ip, int(port)


def sockaddr(ip, port):
    """struct sockaddr_in: family in host order, port and address in network order."""
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_aton(ip) + b"\0" * 8


def gue_router(tun, server, port, local):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", tun.encode(), 0x0001 | 0x1000))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((local, 0))
    print("ready", flush=True)
    while True:
        pkt = os.read(fd, 65535)
        if pkt and pkt[0] >> 4 == 4:
            s.sendto(pkt, (server, port))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def bad_gue(frm, server, port, inner_dst):
    icmp = struct.pack("!BBHHH", 8, 0, 0, 2048, 1)
    icmp = icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0,
                     socket.inet_aton("192.0.2.80"), socket.inet_aton(inner_dst))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((frm, 0))
    for _ in range(3):
        s.sendto(ip + icmp, (server, port))


def listen(targets):
    ls = []
    for t in targets:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr(t))
        s.listen(65535)
        ls.append(s)
    print("ready", flush=True)
    time.sleep(3600)


def lib(path):
    l = ctypes.CDLL(path)
    l.su_connect.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_int, ctypes.c_int]
    l.su_strerror.restype = ctypes.c_char_p
    return l


def su_connect(l, tags, ip, port, kind=SOCK_STREAM):
    sa = sockaddr(ip, port)
    return l.su_connect(tags.encode(), sa, len(sa), kind, 0)


def hold(path, tags, n, targets, kind=SOCK_STREAM):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    l = lib(path)
    fds, errs, ports = [], {}, set()
    for t in targets:
        ip, port = addr(t)
        for _ in range(n):
            fd = su_connect(l, tags, ip, port, kind)
            if fd < 0:
                e = l.su_strerror(fd).decode()
                errs[e] = errs.get(e, 0) + 1
                continue
            fds.append(fd)
            s = socket.socket(type=kind, fileno=os.dup(fd))
            ports.add(s.getsockname()[1])
            s.detach()
    print(json.dumps({"ok": len(fds), "failed": sum(errs.values()), "errors": errs,
                      "ports": len(ports), "min": min(ports) if ports else 0,
                      "max": max(ports) if ports else 0}), flush=True)
    sys.stdin.read()


def live(path, tags, target, gofile):
    l = lib(path)
    ip, port = addr(target)
    fd = su_connect(l, tags, ip, port)
    if fd < 0:
        print("connect failed:", l.su_strerror(fd).decode(), flush=True)
        sys.exit(1)
    s = socket.socket(fileno=fd)
    s.settimeout(5)
    print("port", s.getsockname()[1], flush=True)
    s.sendall(b"before\n")
    print("got", s.recv(100).decode().strip(), flush=True)
    while not os.path.exists(gofile):
        time.sleep(0.1)
    s.sendall(b"after\n")
    try:
        print("got", s.recv(100).decode().strip(), flush=True)
    except OSError as e:
        print("error", e, flush=True)


def udp_echo(target):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(addr(target))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        print("%s:%d" % peer, flush=True)
        s.sendto(data, peer)


def blocked(src, port, target):
    ip, dport = addr(target)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((src, port))
    try:
        u.sendto(b"x", (ip, dport))
        print("udp sent")
    except OSError as e:
        print("udp", e.strerror)
    t = socket.socket()
    t.bind((src, port + 1))
    t.settimeout(1.5)
    try:
        t.connect((ip, dport))
        print("tcp connected")
    except OSError as e:
        print("tcp", e.strerror or "timeout")


PROTO = {"udp": 17, "tcp": 6, "sctp": 132, "udplite": 136, "dccp": 33, "gre": 47,
         "echo": 1, "echo-reply": 1, "timestamp": 1, "unreach": 1, "frag-first": 17,
         "frag-next": 17}


def l4(kind, port):
    """Transport header (and a little payload) of KIND from PORT."""
    if kind in ("udp", "udplite", "frag-first"):
        return struct.pack("!HHHH", port, 9, 16, 0) + b"softunic"
    if kind == "tcp":
        return struct.pack("!HHIIBBHHH", port, 80, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    if kind in ("sctp", "dccp"):
        return struct.pack("!HHII", port, 9, 0, 0) + b"\0" * 8
    if kind == "gre":
        return struct.pack("!HH", 0, 0x0800) + b"\0" * 20
    if kind == "frag-next":
        return b"fragment"
    icmp_type = {"echo": 8, "echo-reply": 0, "timestamp": 13, "unreach": 3}[kind]
    icmp = struct.pack("!BBHHH", icmp_type, 0, 0, port, 1) + b"softunic"
    return icmp[:2] + struct.pack("!H", csum(icmp)) + icmp[4:]


def ipv4(kind, src, dst, port):
    body = l4(kind, port)
    frag = {"frag-first": 0x2000, "frag-next": 0x2003}.get(kind, 0)  # MF; offset 24 bytes
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0x5375, frag, 64, PROTO[kind], 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip[:10] + struct.pack("!H", csum(ip)) + ip[12:] + body


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def packet(iface, dstmac, kind, src, dst, port, bypass=""):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    if bypass:
        s.setsockopt(263, 20, 1)  # SOL_PACKET, PACKET_QDISC_BYPASS
    s.bind((iface, 0))
    me = open("/sys/class/net/%s/address" % iface).read().strip()
    if kind == "arp":  # a gratuitous reply: "SRC is at my MAC"
        body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, mac(me), socket.inet_aton(src),
                           mac(dstmac), socket.inet_aton(dst))
        frame = mac(dstmac) + mac(me) + struct.pack("!H", 0x0806) + body
    else:
        frame = mac(dstmac) + mac(me) + struct.pack("!H", 0x0800) + ipv4(kind, src, dst, port)
    try:  # a tc drop shows as ENOBUFS (NET_XMIT_DROP)
        s.send(frame)
        print("sent")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))


def raw(kind, src, dst, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        s.sendto(ipv4(kind, src, dst, port), (dst, 0))
        print("sent")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))


def sniff(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    print("ready", flush=True)
    names = {v: k for k, v in PROTO.items() if k in ("udp", "tcp", "sctp", "udplite", "dccp", "gre")}
    while True:
        f = s.recv(65535)
        etype = struct.unpack("!H", f[12:14])[0]
        if etype == 0x0806:
            print("arp %s - %s" % (socket.inet_ntoa(f[28:32]), socket.inet_ntoa(f[38:42])),
                  flush=True)
            continue
        if etype != 0x0800:
            continue
        ip = f[14:]
        hl = (ip[0] & 15) * 4
        src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
        off = struct.unpack("!H", ip[6:8])[0] & 0x1FFF
        if off:
            print("frag-next %s - %s" % (src, dst), flush=True)
        elif ip[9] == 1:
            t = ip[hl]
            kind = {8: "echo", 0: "echo-reply", 13: "timestamp", 3: "unreach"}.get(t, "icmp%d" % t)
            port = struct.unpack("!H", ip[hl + 4:hl + 6])[0]
            print("%s %s %d %s" % (kind, src, port, dst), flush=True)
        else:
            kind = names.get(ip[9], "proto%d" % ip[9])
            port = struct.unpack("!H", ip[hl:hl + 2])[0]
            print("%s %s %d %s" % (kind, src, port, dst), flush=True)


def fastfail(src, port, target):
    ip, dport = addr(target)
    out = {}
    t = socket.socket()
    t.bind((src, port))
    t.settimeout(10)
    t0 = time.monotonic()
    try:
        t.connect((ip, dport))
        out["tcp"] = "ok"
    except OSError as e:
        out["tcp"] = errno.errorcode.get(e.errno, "timeout") if e.errno else "timeout"
    out["tcp_s"] = round(time.monotonic() - t0, 3)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((src, port + 1))
    try:
        u.sendto(b"x", (ip, dport))
        out["udp"] = "ok"
    except OSError as e:
        out["udp"] = errno.errorcode.get(e.errno, str(e.errno))
    p = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    p.bind((src, port + 2))  # a ping socket's port is its echo identifier
    try:
        p.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 1), (ip, 0))
        out["ping"] = "ok"
    except OSError as e:
        out["ping"] = errno.errorcode.get(e.errno, str(e.errno))
    print(json.dumps(out))
def tcp_try(target, secs, src=None):
    t = socket.socket()
    if src:
        t.bind((src, 0))
    t.settimeout(float(secs))
    try:
        t.connect(addr(target))
        print("connected", flush=True)
    except OSError as e:
        print(e.strerror or "timeout", flush=True)


def udp_recv(target, secs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr(target))
    s.settimeout(float(secs))
    print("ready", flush=True)
    try:
        while True:
            print(s.recv(65535).decode(errors="replace"), flush=True)
    except socket.timeout:
        pass


def gue_udp(frm, server, port, src, dst, payload, corrupt=False):
    (sip, sport), (dip, dport) = addr(src), addr(dst)
    data = payload.encode()
    ulen = 8 + len(data)
    pseudo = socket.inet_aton(sip) + socket.inet_aton(dip) + struct.pack("!BBH", 0, 17, ulen)
    udp = struct.pack("!HHHH", sport, dport, ulen, 0) + data
    c = csum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    if corrupt:
        udp = udp[:-1] + bytes([udp[-1] ^ 0x5A])
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     socket.inet_aton(sip), socket.inet_aton(dip))
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((frm, 0))
    s.sendto(ip + udp, (server, int(port)))


def udp_to(target, payload):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(payload.encode(), addr(target))
def tcp_log(targets):
    import threading

    def serve(ls):
        while True:
            c, peer = ls.accept()
            print("%s:%d" % peer, flush=True)
            try:
                while c.recv(4096):
                    pass
            except OSError:
                pass
            c.close()

    for t in targets:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(addr(t))
        ls.listen(4096)
        threading.Thread(target=serve, args=(ls,), daemon=True).start()
    print("ready", flush=True)
    time.sleep(3600)


def mapped(ip):
    return "::ffff:" + ip


def sendmmsg_one(s, data, ip, port):
    """libc sendmmsg() of one datagram (Python has no binding): the shim's."""
    class iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    class msghdr(ctypes.Structure):
        _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                    ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                    ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                    ("flags", ctypes.c_int)]

    class mmsg(ctypes.Structure):
        _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]

    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(data)
    sa = ctypes.create_string_buffer(sockaddr(ip, port), 16)
    iov = iovec(ctypes.cast(buf, ctypes.c_void_p), len(data))
    m = mmsg(msghdr(ctypes.cast(sa, ctypes.c_void_p), 16, ctypes.pointer(iov), 1, None, 0, 0), 0)
    n = libc.sendmmsg(s.fileno(), ctypes.byref(m), 1, 0)
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


OPTS = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.SOL_SOCKET, socket.SO_SNDBUF, 65536), (socket.SOL_SOCKET, socket.SO_RCVBUF, 65536),
        (socket.IPPROTO_IP, socket.IP_TOS, 0x10), (socket.SOL_SOCKET, 36, 42)]  # 36: SO_MARK


def shim_one(kind, ip, port, extra):
    """One flow; returns the socket (kept open until all are done)."""
    v4 = (ip, port)
    if kind == "tcp":
        s = socket.socket()
        s.connect(v4)
    elif kind == "tcp-mapped":
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.connect((mapped(ip), port))
    elif kind == "udp-mapped":
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.connect((mapped(ip), port))
        s.send(b"x")
    elif kind == "udp-connected":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(v4)
        s.send(b"x")
    elif kind == "udp-sendto":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", v4)
    elif kind == "udp-sendto-mapped":
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.sendto(b"x", (mapped(ip), port))
    elif kind == "udp-sendmsg":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendmsg([b"x"], [], 0, v4)
    elif kind == "udp-sendmmsg":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sendmmsg_one(s, b"x", ip, port)
    elif kind == "tcp-nonblocking":
        s = socket.socket()
        s.setblocking(False)
        rc = s.connect_ex(v4)
        extra["einprogress"] = extra.get("einprogress", 0) + (rc == 115)
        select.select([], [s], [], 5)
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            raise OSError("non-blocking connect failed")
    elif kind == "tcp-bind0":
        s = socket.socket()
        s.bind(("0.0.0.0", 0))
        s.connect(v4)
    elif kind == "tcp-bind0-mapped":
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::", 0))
        s.connect((mapped(ip), port))
    elif kind == "udp-bind0-sendto":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        s.sendto(b"x", v4)
    elif kind == "tcp-fastopen":
        s = socket.socket()
        s.sendto(b"x", socket.MSG_FASTOPEN, v4)
    elif kind == "ping-sendto":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        s.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 1), (ip, 0))
        s.settimeout(2)
        rep = s.recv(64)
        extra["replies"] = extra.get("replies", 0) + (rep[0] == 0)
    elif kind == "options":
        s = socket.socket()
        for lvl, opt, v in OPTS:
            try:
                s.setsockopt(lvl, opt, v)
            except OSError:
                pass
        before = [s.getsockopt(lvl, opt) for lvl, opt, _ in OPTS]
        s.connect(v4)
        after = [s.getsockopt(lvl, opt) for lvl, opt, _ in OPTS]
        extra["kept"] = extra.get("kept", 0) + (before == after and after[0] == 1)
    else:
        raise SystemExit("unknown kind " + kind)
    return s


def shim_probe(ip, count, kinds):
    """One JSON line per KIND:PORT (one process: python starts slowly)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for kp in kinds:
        kind, port = kp.rsplit(":", 1)
        ports, errs, extra, keep = [], {}, {}, []
        if kind == "options-busy":  # 93% of the slice already used toward IP:PORT
            for _ in range(1900):
                keep.append(shim_one("tcp", ip, int(port), extra))
            kind = "options"
        for _ in range(count):
            try:
                s = shim_one(kind, ip, int(port), extra)
                ports.append(s.getsockname()[1])
                keep.append(s)
            except OSError as e:
                errs[e.strerror or str(e)] = errs.get(e.strerror or str(e), 0) + 1
        print(json.dumps({"kind": kp.rsplit(":", 1)[0], "ports": ports, "errors": errs, "extra": extra}),
              flush=True)
        for s in keep:
            s.close()


def fork_probe(ip, first_port, workers, count):
    """Pre-forked workers under the shim, each to its own destination port:
    prints one JSON list of local ports per worker."""
    s = socket.socket()
    s.connect((ip, first_port))  # the parent's generator is seeded before fork
    s.close()
    r, w = os.pipe()
    for i in range(workers):
        if os.fork() == 0:
            got = []
            for _ in range(count):
                c = socket.socket()
                try:
                    c.connect((ip, first_port + 1 + i))
                    got.append(c.getsockname()[1])
                except OSError:
                    got.append(0)
            os.write(w, (json.dumps([i, got]) + "\n").encode())
            os._exit(0)
    os.close(w)
    out = os.fdopen(r).read().split("\n")
    for _ in range(workers):
        os.wait()
    res = dict(json.loads(l) for l in out if l)
    print(json.dumps([res[i] for i in range(workers)]), flush=True)


def churn(path, tags, n, rate, target):
    l = lib(path)
    ip, port = addr(target)
    errs, ports, t0 = {}, set(), time.monotonic()
    for i in range(n):
        ahead = t0 + i / rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        fd = su_connect(l, tags, ip, port)
        if fd < 0:
            e = l.su_strerror(fd).decode()
            errs[e] = errs.get(e, 0) + 1
            continue
        s = socket.socket(fileno=fd)
        ports.add(s.getsockname()[1])
        s.close()  # client-side close: this side holds TIME_WAIT
    print(json.dumps({"ok": n - sum(errs.values()), "failed": sum(errs.values()),
                      "errors": errs, "secs": round(time.monotonic() - t0, 2),
                      "ports": len(ports)}), flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gue-router":
        gue_router(args[0], args[1], int(args[2]), args[3])
    elif cmd == "bad-gue":
        bad_gue(args[0], args[1], int(args[2]), args[3])
    elif cmd == "listen":
        listen(args)
    elif cmd == "hold":
        hold(args[0], args[1], int(args[2]), args[3:])
    elif cmd == "hold-udp":
        hold(args[0], args[1], int(args[2]), args[3:], SOCK_DGRAM)
    elif cmd == "live":
        live(*args)
    elif cmd == "udp-echo":
        udp_echo(args[0])
    elif cmd == "blocked":
        blocked(args[0], int(args[1]), args[2])
    elif cmd == "packet":
        packet(args[0], args[1], args[2], args[3], args[4], int(args[5]), *args[6:])
    elif cmd == "raw":
        raw(args[0], args[1], args[2], int(args[3]))
    elif cmd == "sniff":
        sniff(args[0])
    elif cmd == "fastfail":
        fastfail(args[0], int(args[1]), args[2])
    elif cmd == "tcp-try":
        tcp_try(*args[:3])
    elif cmd == "udp-recv":
        udp_recv(args[0], args[1])
    elif cmd == "gue-udp":
        gue_udp(*args[:6], corrupt=args[6:] == ["corrupt"])
    elif cmd == "udp-to":
        udp_to(args[0], args[1])
    elif cmd == "tcp-log":
        tcp_log(args)
    elif cmd == "shim-probe":
        shim_probe(args[0], int(args[1]), args[2:])
    elif cmd == "fork-probe":
        fork_probe(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "churn":
        churn(args[0], args[1], int(args[2]), float(args[3]), args[4])
