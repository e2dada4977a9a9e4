#!/usr/bin/env python3
"""Helpers for tests/e2e/proxy.t (origins, a DNS server and clients), each run
inside a network namespace.

whoami IP:PORT            HTTP/1.1 origin (keep-alive): GET / answers the peer's
    "IP:PORT"; GET /chunked answers it chunked; POST answers "got N bytes";
    GET /close answers without a length and closes.
dns IP:PORT LOGFILE       DNS server over UDP: A and AAAA records of the zone
    below (TTL 60), NXDOMAIN for other names, no answer
    at all for slow.test; appends "SRC_IP:SRC_PORT NAME TYPE" per query to LOGFILE.
udp-echo IP:PORT          UDP echo server whose reply is the peer's "IP:PORT".
udp-assoc PROXY USER PASS DST_IP DST_PORT
    SOCKS5 UDP ASSOCIATE client: sends one datagram through the proxy's relay
    and prints what came back (for udp-echo: the egress IP:PORT the origin saw).
raw PROXY HEX [WAIT [SRC]] sends the bytes (from address SRC), prints the reply as hex and "closed"
    if the proxy closed the connection within WAIT seconds (default 2).
bulk-origin IP:PORT LOGFILE  reads "UP DOWN\n", then at once sends DOWN random
    bytes while it reads the client's bytes to EOF; closes when both are done and
    appends "sha256(received) sha256(sent) RECEIVED" to LOGFILE.
bulk PROXY SRC MODE DST UP DOWN [ABORT]  through the proxy (MODE socks5 or
    connect, i.e. HTTP CONNECT) to DST (IP:PORT of a bulk-origin): sends UP random
    bytes (then shuts its side) while it reads to EOF; prints "sha256(sent)
    sha256(received) RECEIVED".  With ABORT, resets the connection (SO_LINGER 0)
    once ABORT bytes have come back.
slow PROXY SECS           slow-loris: sends one byte of an HTTP request every
    0.5 s; prints after how many seconds the proxy closed (or "open").
"""
import http.server, os, select, socket, socketserver, struct, sys, threading, time

# name -> addresses, in the order the server gives them: he.test's first
# address is blackholed by the test (Happy Eyeballs must move on after the
# attempt delay), dual.test has an IPv6 address soft-unicast cannot serve.
ZONE = {"origin.test": ["192.0.2.80"], "he.test": ["192.0.2.99", "192.0.2.80"],
        "dual.test": ["2001:db8::80", "192.0.2.80"], "v6only.test": ["2001:db8::80"]}


def addr(s):
    ip, port = s.rsplit(":", 1)
    return ip, int(port)


class Who(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        peer = ("%s:%d\n" % self.client_address[:2]).encode()
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (peer[:4], peer[4:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(peer)
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(peer)))
            self.end_headers()
            self.wfile.write(peer)

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            n = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if not size:
                    self.rfile.readline()
                    break
                n += len(self.rfile.read(size))
                self.rfile.readline()
        else:
            n = len(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        body = b"got %d bytes\n" % n
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def whoami(target):
    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 1024
    S(addr(target), Who).serve_forever()


def dns(target, logfile):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(addr(target))
    log = open(logfile, "a", buffering=1)
    while True:
        q, peer = s.recvfrom(4096)
        if len(q) < 12:
            continue
        qid, flags, qd = struct.unpack("!HHH", q[:6])
        i, labels = 12, []
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode(errors="replace"))
            i += 1 + q[i]
        qtype, = struct.unpack("!H", q[i + 1:i + 3])
        question = q[12:i + 5]
        name = ".".join(labels).lower()
        log.write("%s:%d %s %d\n" % (peer[0], peer[1], name, qtype))
        if name == "slow.test":
            continue
        rcode, answers, n = 0, b"", 0
        for a in ZONE.get(name, []):
            fam, t = (socket.AF_INET6, 28) if ":" in a else (socket.AF_INET, 1)
            if t == qtype:
                rd = socket.inet_pton(fam, a)
                answers += b"\xc0\x0c" + struct.pack("!HHIH", t, 1, 60, len(rd)) + rd
                n += 1
        if name not in ZONE:
            rcode = 3
        hdr = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, n, 0, 0)
        s.sendto(hdr + question + answers, peer)


def udp_echo(target):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(addr(target))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(("%s:%d" % peer).encode(), peer)


def socks5_connect(proxy, user, passwd):
    c = socket.create_connection(addr(proxy), timeout=5)
    if user:
        c.sendall(b"\x05\x01\x02")
        assert c.recv(2) == b"\x05\x02"
        c.sendall(b"\x01" + bytes([len(user)]) + user.encode() + bytes([len(passwd)]) + passwd.encode())
        assert c.recv(2) == b"\x01\x00", "auth refused"
    else:
        c.sendall(b"\x05\x01\x00")
        assert c.recv(2) == b"\x05\x00"
    return c


def udp_assoc(proxy, user, passwd, dst_ip, dst_port):
    c = socks5_connect(proxy, user, passwd)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((c.getsockname()[0], 0))
    # DST.ADDR/PORT: where our datagrams will come from (RFC 1928 §7)
    c.sendall(b"\x05\x03\x00\x01" + socket.inet_aton(u.getsockname()[0]) + struct.pack("!H", u.getsockname()[1]))
    rep = c.recv(10)
    if len(rep) < 10 or rep[1] != 0:
        print("reply", rep.hex())
        sys.exit(1)
    relay = (socket.inet_ntoa(rep[4:8]), struct.unpack("!H", rep[8:10])[0])
    u.sendto(b"\x00\x00\x00\x01" + socket.inet_aton(dst_ip) + struct.pack("!H", int(dst_port)) + b"hello", relay)
    u.settimeout(5)
    data, _ = u.recvfrom(65535)
    print("from %s:%d %s" % (socket.inet_ntoa(data[4:8]), struct.unpack("!H", data[8:10])[0], data[10:].decode()))


def raw(proxy, hexbytes, wait=2.0, src=None):
    c = socket.create_connection(addr(proxy), timeout=5, source_address=(src, 0) if src else None)
    c.sendall(bytes.fromhex(hexbytes))
    out, end = b"", time.time() + float(wait)
    closed = False
    while time.time() < end:
        r, _, _ = select.select([c], [], [], end - time.time())
        if not r:
            break
        try:
            b = c.recv(65536)
        except ConnectionResetError:
            closed = True
            break
        if not b:
            closed = True
            break
        out += b
    print(out.hex(), "closed" if closed else "open")


def bulk_origin(target, logfile):
    import hashlib
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(addr(target))
    ls.listen(64)

    def serve(c):
        f = c.makefile("rb")
        up, down = map(int, f.readline().split())
        data = os.urandom(down)
        sent = hashlib.sha256(data).hexdigest()

        def sender():
            try:
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        t = threading.Thread(target=sender)
        t.start()
        h, n = hashlib.sha256(), 0
        try:
            while True:
                b = f.read1(1 << 20)
                if not b:
                    break
                h.update(b)
                n += len(b)
        except OSError:
            pass
        t.join()
        c.close()
        with open(logfile, "a") as log:
            log.write("%s %s %d\n" % (h.hexdigest(), sent, n))
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def bulk(proxy, src, mode, dst, up, down, abort=None):
    import hashlib
    up, down = int(up), int(down)
    ip, port = addr(dst)
    c = socket.create_connection(addr(proxy), timeout=60, source_address=(src, 0))
    if mode == "socks5":
        c.sendall(b"\x05\x01\x00\x05\x01\x00\x01" + socket.inet_aton(ip) + struct.pack("!H", port))
        rep = b""
        while len(rep) < 12:
            rep += c.recv(12 - len(rep))
        assert rep[:2] == b"\x05\x00" and rep[3] == 0, rep.hex()
    else:
        c.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (ip.encode(), port, ip.encode(), port))
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.recv(1)
        assert head.startswith(b"HTTP/1.1 200"), head
    data = os.urandom(up)

    def sender():
        try:
            c.sendall(b"%d %d\n" % (up, down))
            c.sendall(data)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    t = threading.Thread(target=sender)
    t.start()
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
        if abort is not None and n >= int(abort):
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
            print("aborted", n)
            return
    t.join()
    c.close()
    print(hashlib.sha256(data).hexdigest(), h.hexdigest(), n)


def slow(proxy, secs):
    c = socket.create_connection(addr(proxy), timeout=5)
    msg, t0 = b"GET http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\nX-Slow: " + b"a" * 200, time.time()
    for b in msg:
        try:
            c.sendall(bytes([b]))
        except OSError:
            break
        r, _, _ = select.select([c], [], [], 0.5)
        if r:
            try:
                if not c.recv(4096):
                    break
            except OSError:
                break
        if time.time() - t0 > float(secs):
            print("open")
            return
    print("%.1f" % (time.time() - t0))


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    {"whoami": lambda: whoami(a[0]), "dns": lambda: dns(a[0], a[1]), "udp-echo": lambda: udp_echo(a[0]),
     "udp-assoc": lambda: udp_assoc(*a),
     "bulk-origin": lambda: bulk_origin(*a), "bulk": lambda: bulk(*a), "raw": lambda: raw(*a), "slow": lambda: slow(*a)}[cmd]()
