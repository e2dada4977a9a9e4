#!/usr/bin/env bash
# End to end: `softunicast proxy` on a server with an agent, real clients.
#
#   srv (server s1: agent, proxy on 10.99.0.2:1080) --veth-- org ("Internet")
#   10.99.0.2 s0                                     o0 10.99.0.1 (router stand-in)
#                                                    o0 10.99.0.21 client "from GB"
#                                                    o0 10.99.0.22 client "from FR"
#                                                    o0 10.99.0.23 client, no country
#                                                    o0 10.99.0.25/.26 clients "from GB/FR" (.mmdb)
#                                                    lo 192.0.2.80 origin (whoami), 192.0.2.53 DNS
# As in agent.t, replies to the egress prefixes come back only through the
# GUE stand-in and the agent's decap, so every answer proves the egress path.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/${SU_BUILD:-build}
SU=$B/bin/softunicast
LIB=$B/lib/libsoftunicast.so
H="python3 $ROOT/tests/e2e/lib/su_e2e.py"
P="python3 $ROOT/tests/e2e/lib/proxy_e2e.py"
S=su-psrv-$$ O=su-porg-$$
T=$(mktemp -d /tmp/su-proxy-e2e.XXXXXX)
RUN=$T/run
PIDS=()
N=0 FAILS=0

skip_all() { echo "1..0 # SKIP $*"; rm -rf "$T"; exit 0; }
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, XDP, nftables)"
for c in ip nft python3 curl perl promtool; do
	command -v $c >/dev/null || skip_all "$c not installed"
done
[ -c /dev/net/tun ] || skip_all "no /dev/net/tun for the stand-in router"
ip netns add $S 2>/dev/null || skip_all "cannot create network namespaces"
ip netns add $O

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for ns in $S $O; do
		for p in $(ip netns pids $ns 2>/dev/null); do kill "$p" 2>/dev/null; done
	done
	wait 2>/dev/null
	ip netns del $S 2>/dev/null
	ip netns del $O 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

ok() {
	N=$((N + 1))
	if [ "$1" = 0 ]; then
		echo "ok $N - $2"
	else
		echo "not ok $N - $2"
		FAILS=$((FAILS + 1))
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
	fi
}
is() { [ "$1" = "$2" ]; ok $? "$3" "got '$1', want '$2'"; }
like() { printf '%s' "$1" | grep -qE -- "$2"; ok $? "$3" "got '$1', want /$2/"; }
xs() { ip netns exec $S "$@"; }
xo() { ip netns exec $O "$@"; }
bgx() { local ns=$1; shift; ip netns exec "$ns" "$@" & PIDS+=($!); }
wait_for() { for _ in $(seq ${2:-100}); do eval "$1" && return 0; sleep 0.1; done; return 1; }
nfds() { ls /proc/$PROXY/fd 2>/dev/null | wc -l; }
# curl from a client address of the Internet namespace
cu() { local src=$1; shift; xo curl -sS --max-time 8 --interface "$src" "$@"; }
# egress IP of an "IP:PORT" answer, and whether the port is in that IP's slice
eip() { printf '%s' "${1%%:*}"; }
slice_of() { awk -v ip="$1" '$1 == "egress" && $2 == ip {print $3, $4}' "$RUN/assignment"; }
in_slice() { local r; r=$(slice_of "${1%%:*}"); [ -n "$r" ] && [ "${1##*:}" -ge "${r% *}" ] && [ "${1##*:}" -le "${r#* }" ]; }

# ---- topology (as agent.t) ----------------------------------------------
ip link add s0 netns $S type veth peer name o0 netns $O
xs ip link set lo up; xs ip link set s0 up; xs ip addr add 10.99.0.2/24 dev s0
xo ip link set lo up; xo ip link set o0 up; xo ip addr add 10.99.0.1/24 dev o0
for a in 21 22 23 24 25 26; do xo ip addr add 10.99.0.$a/24 dev o0; done
for a in 80 53; do xo ip addr add 192.0.2.$a/32 dev lo; done
xs ip route add default via 10.99.0.1

cat >"$T/fleet.yaml" <<'YAML'
ports: {range: 1024-65535, slice: 2048}
drain: 10m
datacenters:
  dc1:
    router: 10.99.0.1
    servers: {s1: 10.99.0.2}
    egress:
      - {service: warp, country: GB}
      - {service: warp, country: FR}
      - {service: dns, country: NL}
prefixes:
  - {prefix: 198.51.100.0/30, tags: {service: warp, country: GB}}
  - {prefix: 198.51.100.4/30, tags: {service: warp, country: FR}}
  - {prefix: 203.0.113.0/30, tags: {service: dns, country: NL}}
YAML
$SU plan --fleet "$T/fleet.yaml" --out "$T/plan" --now 1700000000 >/dev/null 2>&1
ok $? "plan built for the test fleet"
bgx $O $H gue-router gue0 10.99.0.2 6080 10.99.0.1 >/dev/null
wait_for "xo ip link show gue0 >/dev/null 2>&1"
xo ip link set gue0 up
# the stand-in sends each packet whole inside UDP over a 1500-byte veth: keep
# the packets it carries small enough not to be fragmented (the decap reads
# no fragments), as a real deployment sizes its tunnel MTU
xo ip link set gue0 mtu 1400
for p in 198.51.100.0/29 203.0.113.0/30; do xo ip route add $p dev gue0; done
bgx $S $SU agent --plan "$T/plan" --server s1 --iface s0 --run-dir "$RUN" --state-dir "$T/state" 2>"$T/agent.log"
wait_for "[ -s $RUN/assignment ]"
ok $? "agent publishes its assignment" "$(cat "$T/agent.log")"
GB_IP=$(awk '$1=="egress" && $6 ~ /country=GB/ {print $2}' "$RUN/assignment")
FR_IP=$(awk '$1=="egress" && $6 ~ /country=FR/ {print $2}' "$RUN/assignment")
DNS_IP=$(awk '$1=="egress" && $6 ~ /service=dns/ {print $2}' "$RUN/assignment")

# ---- origins ---------------------------------------------------------------
bgx $O $P whoami 192.0.2.80:80
bgx $O $P whoami 192.0.2.80:81
bgx $O $P bulk-origin 192.0.2.80:83 "$T/bulk.log"
bgx $O $P dns 192.0.2.53:53 "$T/dns.log"
bgx $O $P udp-echo 192.0.2.80:7
wait_for "xo ss -ltn | grep -q 192.0.2.80:80"

# ---- the proxy ------------------------------------------------------------
cat >"$T/geo.csv" <<'CSV'
# RFC 8805 geofeed of the client addresses
10.99.0.21/32,GB,GB-ENG,London,
10.99.0.22/32,FR,FR-IDF,Paris,
10.99.0.24/32,DE,,,
CSV
# a MaxMind database (GeoIP2-Country shape) written with Debian's
# MaxMind::DB::Writer; .21 says FR there, but the CSV (GB) wins
perl "$ROOT/tests/e2e/lib/mmdb_write.pl" "$T/geo.mmdb" 10.99.0.25/32=GB 10.99.0.26/32=FR 10.99.0.21/32=FR 2>"$T/mmdb.err"
ok $? "a test .mmdb is written (tests/e2e/lib/mmdb_write.pl)" "$(cat "$T/mmdb.err")"
cat >"$T/proxy.conf" <<EOF
listen 10.99.0.2:1080
assignment $RUN/assignment
access-log $T/access.log
geo-csv $T/geo.csv
geo-mmdb $T/geo.mmdb
base-tags service=warp
user alice s3cret service=warp,country=FR
user-tags yes
dns-server 192.0.2.53
dns-tags service=dns
handshake-timeout-ms 2000
max-header-bytes 4096
max-per-client 20
allow 10.99.0.0/24
metrics 127.0.0.1:9181
EOF
xs $SU proxy --config "$T/proxy.conf" --check >/dev/null 2>&1
ok $? "proxy --check accepts the configuration"
head -c 3000 /dev/urandom >"$T/bad.mmdb"
printf 'listen 10.99.0.2:1080\ngeo-mmdb %s\n' "$T/bad.mmdb" >"$T/badmm.conf"
ERR=$(xs $SU proxy --config "$T/badmm.conf" --check 2>&1); RC=$?
is "$RC" 3 "geolocation: a file that is no MaxMind DB is refused by --check (exit 3)"
like "$ERR" "bad.mmdb: " "  the error names the file"
printf 'listen 10.99.0.2:1080\nmax-connections lots\n' >"$T/bad.conf"
ERR=$(xs $SU proxy --config "$T/bad.conf" --check 2>&1); RC=$?
is "$RC" 3 "a malformed configuration exits 3"
like "$ERR" "bad.conf:2: max-connections: 'lots'" "the error names file, line and value"
printf 'listen 10.99.0.2:1080\n\nmetrics localhost:x\n' >"$T/badm.conf"
ERR=$(xs $SU proxy --config "$T/badm.conf" --check 2>&1); RC=$?
is "$RC:$ERR" "3:softunicast proxy: $T/badm.conf:3: metrics: 'localhost:x' is not IPv4:PORT, [IPv6]:PORT or :PORT" \
	"a malformed metrics address in the config: file, line, value, exit 3"
xs $SU proxy --listen 10.99.0.2:1080 --metrics 9181 >/dev/null 2>&1
is "$?" 2 "a malformed --metrics: usage error (exit 2)"

bgx $S $SU proxy --config "$T/proxy.conf" 2>"$T/proxy.err"
PROXY=$!
wait_for "xs ss -ltn | grep -q 10.99.0.2:1080"
ok $? "proxy listens" "$(cat "$T/proxy.err")"

# ---- step 1: tags per connection -----------------------------------------
OUT=$(cu 10.99.0.21 --socks5-hostname 10.99.0.2:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$GB_IP" "socks5 client from GB (geolocation; the CSV wins over the .mmdb's FR): egress IP tagged GB"
in_slice "$OUT"; ok $? "  its source port lies in this server's slice" "$OUT"
OUT=$(cu 10.99.0.22 --socks5-hostname 10.99.0.2:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$FR_IP" "socks5 client from FR (geolocation): egress IP tagged FR"
OUT=$(cu 10.99.0.25 --socks5-hostname 10.99.0.2:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$GB_IP" "geolocation from the .mmdb (country.iso_code GB): egress IP tagged GB"
OUT=$(cu 10.99.0.26 -p -x http://10.99.0.2:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$FR_IP" "geolocation from the .mmdb (FR), HTTP CONNECT: egress IP tagged FR"
grep -q "client=10.99.0.26:.*tags=service=warp,country=FR" "$T/access.log"
ok $? "  logged with the tags the .mmdb gave" "$(tail -2 "$T/access.log")"
OUT=$(cu 10.99.0.21 --socks5 10.99.0.2:1080 http://192.0.2.80/ 2>&1)
is "$(eip "$OUT")" "$GB_IP" "socks5 with an IPv4 target"
OUT=$(cu 10.99.0.21 --proxy socks5h://alice:s3cret@10.99.0.2:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$FR_IP" "RFC 1929 user alice (tags country=FR) from a GB address: FR"
OUT=$(cu 10.99.0.21 --proxy socks5h://alice:wrong@10.99.0.2:1080 http://origin.test/ 2>&1)
like "$OUT" "authentication|Auth|auth|SOCKS" "a wrong password is refused"
OUT=$(cu 10.99.0.22 --proxy socks5h://country-GB:x@10.99.0.2:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$GB_IP" "user name country-GB from an FR address: GB"
OUT=$(cu 10.99.0.21 --proxy socks5h://tags%3Aservice%3Dwarp%2Ccountry%3DFR:x@10.99.0.2:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$FR_IP" "user name tags:service=warp,country=FR: FR"
OUT=$(cu 10.99.0.21 --socks4a 10.99.0.2:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$GB_IP" "socks4a with a host name"
OUT=$(cu 10.99.0.22 -p -x http://10.99.0.2:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$FR_IP" "HTTP CONNECT (curl -p -x) from FR"
OUT=$(cu 10.99.0.21 -x http://country-FR:x@10.99.0.2:1080 -p http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$FR_IP" "HTTP CONNECT with Proxy-Authorization country-FR"

# ---- no egress for the tags: refused, never a fallback ---------------------
OUT=$(cu 10.99.0.24 --socks5-hostname 10.99.0.2:1080 http://origin.test/ 2>&1)
like "$OUT" "not allowed|ruleset|SOCKS5" "client from DE (no DE egress): SOCKS5 refused"
OUT=$(cu 10.99.0.24 -o /dev/null -w '%{http_code}' -p -x http://10.99.0.2:1080 http://origin.test/ 2>&1)
like "$OUT" "403" "client from DE: HTTP CONNECT 403"
OUT=$(cu 10.99.0.24 -D - -o /dev/null -x http://10.99.0.2:1080 http://origin.test/ 2>&1)
like "$OUT" "X-Softunicast-Error: no-egress-for-tags" "  with a reason header"
OUT=$(cu 10.99.0.23 --socks5-hostname 10.99.0.2:1080 http://origin.test/ 2>&1)
like "$OUT" "not allowed|SOCKS5" "client of no known country and no default tags: refused"
grep -q "client=10.99.0.24:.*tags=service=warp,country=DE.*result=no-egress-for-tags" "$T/access.log"
ok $? "access log: the refusal with client, tags and reason" "$(tail -3 "$T/access.log")"

# ---- access log ------------------------------------------------------------
grep -Eq "^[0-9T:.-]+Z client=10.99.0.21:[0-9]+ proto=socks5 user=- tags=service=warp,country=GB egress=$GB_IP:[0-9]+ target=origin.test:80 up=[1-9][0-9]* down=[1-9][0-9]* secs=[0-9.]+ result=ok$" "$T/access.log"
ok $? "access log line: client, proto, user, tags, egress, target, bytes, secs, result" "$(head -3 "$T/access.log")"

# ---- step 2: DNS in the egress DC -------------------------------------------
grep -q "^$DNS_IP:[0-9]* origin.test 1$" "$T/dns.log"
ok $? "resolver queries left from the DC's dns-tagged IP $DNS_IP" "$(cat "$T/dns.log")"
Q0=$(grep -c " origin.test 1$" "$T/dns.log")
cu 10.99.0.21 --socks5-hostname 10.99.0.2:1080 http://origin.test/ >/dev/null 2>&1
is "$(grep -c " origin.test 1$" "$T/dns.log")" "$Q0" "a repeated name is answered from the cache (TTL 60)"
OUT=$(cu 10.99.0.21 --socks5-hostname 10.99.0.2:1080 http://nx.test/ 2>&1)
like "$OUT" "unreachable|SOCKS5" "NXDOMAIN: SOCKS5 host unreachable"
OUT=$(cu 10.99.0.21 -o /dev/null -w '%{http_code}' -x http://10.99.0.2:1080 http://nx.test/ 2>&1)
is "$OUT" "502" "NXDOMAIN: HTTP 502"

# Happy Eyeballs (RFC 8305): he.test's first address is blackholed, so the
# second attempt starts after attempt-delay-ms (250 ms) and wins
xo ip route add blackhole 192.0.2.99/32
T0=$(date +%s%N)
OUT=$(cu 10.99.0.21 --socks5-hostname 10.99.0.2:1080 http://he.test/ 2>&1)
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
is "$(eip "$OUT")" "$GB_IP" "Happy Eyeballs: a blackholed first address, the second answers"
[ "$MS" -lt 3000 ]; ok $? "  without waiting for the first attempt's timeout (${MS} ms)"
OUT=$(cu 10.99.0.21 --socks5-hostname 10.99.0.2:1080 http://dual.test/ 2>&1)
is "$(eip "$OUT")" "$GB_IP" "AAAA first, then A: the IPv6 attempt (no soft-unicast IPv6) gives way to IPv4"
grep -q "^$DNS_IP:[0-9]* dual.test 28$" "$T/dns.log"; ok $? "  the proxy asked for AAAA too"
OUT=$(cu 10.99.0.21 --socks5-hostname 10.99.0.2:1080 http://v6only.test/ 2>&1)
like "$OUT" "SOCKS5|not supported|Address type" "an IPv6-only name: SOCKS5 reply 0x08" 

# ---- step 3: plain HTTP proxying --------------------------------------------
OUT=$(cu 10.99.0.22 -x http://10.99.0.2:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$FR_IP" "plain absolute-URI GET (curl -x) from FR"
OUT=$(cu 10.99.0.21 -x http://10.99.0.2:1080 http://origin.test/chunked 2>&1)
is "$(eip "$OUT")" "$GB_IP" "a chunked response is relayed"
OUT=$(cu 10.99.0.21 -x http://10.99.0.2:1080 --data-binary @/etc/services http://origin.test/post 2>&1)
is "$OUT" "got $(stat -c %s /etc/services) bytes" "a POST body is relayed"
OUT=$(cu 10.99.0.21 -x http://10.99.0.2:1080 -H 'Transfer-Encoding: chunked' --data-binary @/etc/services http://origin.test/post 2>&1)
is "$OUT" "got $(stat -c %s /etc/services) bytes" "a chunked POST body is relayed"
OUT=$(cu 10.99.0.21 -v -x http://10.99.0.2:1080 http://origin.test/a http://origin.test/chunked http://origin.test/b 2>&1)
is "$(printf '%s' "$OUT" | grep -ci 're-using existing connection')" "2" "keep-alive: three requests on one client connection" "$OUT"
OUT=$(cu 10.99.0.21 -x http://10.99.0.2:1080 http://origin.test/close 2>&1)
is "$(eip "$OUT")" "$GB_IP" "a response delimited by close"

# ---- step 3: SOCKS5 UDP ASSOCIATE --------------------------------------------
OUT=$(xo $P udp-assoc 10.99.0.2:1080 "" "" 192.0.2.80 7 2>&1)
like "$OUT" "^reply 0502" "UDP ASSOCIATE from a client of no known country: reply 0x02 (no tags)"
OUT=$(xo $P udp-assoc 10.99.0.2:1080 country-GB x 192.0.2.80 7 2>&1)
like "$OUT" "^from 192.0.2.80:7 $GB_IP:[0-9]+$" "UDP ASSOCIATE (user country-GB): the origin saw the GB egress IP" "$OUT"
in_slice "${OUT##* }"; ok $? "  from a port in this server's slice" "$OUT"
grep -q "proto=socks5 user=country-GB tags=service=warp,country=GB egress=$GB_IP:[0-9]* target=192.0.2.80:7 up=5 down=[1-9][0-9]* .*result=ok" "$T/access.log"
ok $? "  logged with its egress and bytes" "$(grep country-GB "$T/access.log" | tail -2)"

# ---- relaying: splice(2) zero-copy, exact bytes both ways, no leaked pipe ---
# 2 MiB of random bytes each way at once (32 pipefuls; the replies come back
# through the Python GUE stand-in, so not more), through SOCKS5 and HTTP CONNECT:
# the client's digests of what it sent and got must be the origin's of what
# it got and sent (bulk-origin logs "got sent n", the client prints "sent got n":
# the client's first digest must be the origin's first, and so on)
pipes() { ls -l /proc/$1/fd 2>/dev/null | grep -c 'pipe:'; }
sleep 0.3
FDR=$(nfds); PIPR=$(pipes $PROXY)
bulk_case() { # bulk_case PROXY MODE NAME
	local out want
	out=$(xo $P bulk "$1" 10.99.0.21 "$2" 192.0.2.80:83 2097152 2097152 2>&1)
	sleep 0.2
	want=$(tail -1 "$T/bulk.log")
	is "$out" "$want" "$3: 2 MiB each way at once, sha256 equal both ways"
	[ "${out##* }" = 2097152 ]; ok $? "  all 2097152 bytes came back" "$out"
}
bulk_case 10.99.0.2:1080 socks5 "splice relay, SOCKS5"
bulk_case 10.99.0.2:1080 connect "splice relay, HTTP CONNECT"
grep -q "target=192.0.2.80:83 up=2097168 down=2097152 .*result=ok" "$T/access.log"
ok $? "  the access log counts the payload each way" "$(grep 192.0.2.80:83 "$T/access.log")"
# a relay in progress holds one pipe per direction (4 descriptors)
xo $P raw 10.99.0.2:1080 05010005010001c00002500051 3 10.99.0.21 >/dev/null & RH=$!
wait_for "[ \$(xs ss -Htn state established dst 192.0.2.80:81 | wc -l) -ge 1 ]" 300
is "$(pipes $PROXY)" "$((PIPR + 4))" "a relay in progress holds two pipes (splice, one per direction)"
wait $RH
# the client resets after 256 KiB of a 16 MiB download
OUT=$(xo $P bulk 10.99.0.2:1080 10.99.0.21 socks5 192.0.2.80:83 0 16777216 262144 2>&1)
like "$OUT" "^aborted" "a client that resets mid-download" "$OUT"
wait_for "grep -q 'target=192.0.2.80:83 .*result=client-reset' '$T/access.log'" 100
ok $? "  is logged as client-reset" "$(grep 192.0.2.80:83 "$T/access.log")"
sleep 1
is "$(nfds)" "$FDR" "no descriptor leaked after the relays (sockets and pipes)"
is "$(pipes $PROXY)" "$PIPR" "  no pipe left open"

# ---- bad input: proper reply, a log line, no leaked descriptor ---------------
sleep 0.3
FD0=$(nfds)
rawc() { xo $P raw 10.99.0.2:1080 "$@"; }
is "$(rawc 0501 1)" " open" "socks5 greeting cut short: the proxy waits (the handshake timer ends it)"
is "$(rawc 0501000501010100000000010050 1)" "050005010001000000000000 closed" "socks5 RSV != 0: reply 0x01, closed"
is "$(rawc 05010005010003000050 1)" "050005010001000000000000 closed" "socks5 empty host name: reply 0x01"
is "$(rawc 050100050200010a0000010050 1)" "050005070001000000000000 closed" "socks5 BIND: reply 0x07 command not supported"
is "$(rawc 0501000501000901020304 1)" "050005080001000000000000 closed" "socks5 unknown ATYP: reply 0x08"
is "$(rawc 050100050100 1)" "0500 open" "socks5 request cut short: waits"
is "$(rawc 0501020105 1)" "0502 open" "RFC 1929 auth cut short: waits"
is "$(rawc 0501020100010078 1)" "05020101 closed" "RFC 1929 empty user name: failure status, closed"
is "$(rawc 05010205 1)" "0502 closed" "RFC 1929 wrong sub-negotiation version: closed"
is "$(rawc 0500 1)" " closed" "socks5 greeting with no methods: closed"
is "$(rawc ff00 1)" " closed" "unknown protocol byte: closed"
is "$(rawc 04010050000000016e6f626f6479 1)" " open" "socks4 request cut short: waits"
like "$(rawc 474554202f20485454502f312e310d0a0d0a 1)" "^485454502f312e3120343030.* closed$" "origin-form GET: HTTP 400, closed"
like "$(rawc 474554206874 1)" " open$" "HTTP request line cut short: waits"
BIG=$(python3 -c "print('474554206874' + '41'*5000)")
like "$(rawc "$BIG" 1)" "^485454502f312e3120343331.* closed$" "oversized header: HTTP 431, closed"
like "$(rawc 434f4e4e45435420312e322e332e343a3020485454502f312e310d0a0d0a 1)" "^485454502f312e3120343030.* closed$" "CONNECT to port 0: HTTP 400"
OUT=$(cu 10.99.0.21 --socks5 10.99.0.2:1080 http://192.0.2.80:9/ 2>&1)
like "$OUT" "refused|SOCKS5" "unreachable target (closed port): SOCKS5 refused"
OUT=$(cu 10.99.0.21 -o /dev/null -w '%{http_code}' -x http://10.99.0.2:1080 http://192.0.2.80:9/ 2>&1)
is "$OUT" "502" "unreachable target: HTTP 502"
SL=$(xo $P slow 10.99.0.2:1080 10)
like "$SL" "^[23]\." "slow-loris client closed after the handshake timeout (2 s): $SL s"
OUT=$(cu 10.99.0.21 --socks5-hostname 10.99.0.2:1080 --max-time 15 http://slow.test/ 2>&1)
like "$OUT" "unreachable|SOCKS5" "DNS timeout: SOCKS5 host unreachable"
sleep 2.5
is "$(nfds)" "$FD0" "no descriptor leaked after the bad-input cases"
grep -q "result=handshake-timeout" "$T/access.log"; ok $? "slow-loris logged as handshake-timeout"
grep -q "result=header-too-large" "$T/access.log"; ok $? "oversized header logged"

# ---- limits and ACL ----------------------------------------------------------
xs ip addr add 10.98.0.2/24 dev s0; xo ip addr add 10.98.0.1/24 dev o0
xs ip addr add 10.98.0.3/24 dev s0
printf 'listen 10.98.0.3:1080\nassignment %s\naccess-log %s\nallow 10.99.0.0/24\ndefault-tags service=warp,country=GB\nmax-per-client 2\ndns-server 192.0.2.53\ndns-tags service=dns\nsplice no\n' "$RUN/assignment" "$T/acl.log" >"$T/acl.conf"
bgx $S $SU proxy --config "$T/acl.conf" 2>"$T/proxy2.err"
PROXY2=$!
wait_for "xs ss -ltn | grep -q 10.98.0.3:1080"
OUT=$(cu 10.98.0.1 --socks5-hostname 10.98.0.3:1080 http://origin.test/ 2>&1)
like "$OUT" "^curl: \(" "a client outside 'allow 10.99.0.0/24' is refused"
grep -q "client=10.98.0.1:[0-9]* .*result=acl-denied" "$T/acl.log"; ok $? "  and logged as acl-denied" "$(cat "$T/acl.log")"
OUT=$(cu 10.99.0.23 --socks5-hostname 10.98.0.3:1080 http://origin.test/ 2>&1)
is "$(eip "$OUT")" "$GB_IP" "default-tags apply to a client of no known country"
FD2=$(ls /proc/$PROXY2/fd | wc -l); PIP2=$(pipes $PROXY2)
xo $P raw 10.98.0.3:1080 05010005010001c00002500051 3 10.99.0.21 >/dev/null & RH=$!
wait_for "[ \$(xs ss -Htn state established dst 192.0.2.80:81 | wc -l) -ge 1 ]" 300
is "$(pipes $PROXY2)" "$PIP2" "buffered relay (splice no): a relay in progress holds no pipe"
wait $RH
bulk_case 10.98.0.3:1080 socks5 "buffered relay (splice no), SOCKS5"
is "$(ls /proc/$PROXY2/fd | wc -l)" "$FD2" "  and leaks no descriptor"
# max-per-client 2: a third concurrent connection from one address is refused
xo $P raw 10.98.0.3:1080 "" 30 10.99.0.23 >/dev/null & H1=$!
xo $P raw 10.98.0.3:1080 "" 30 10.99.0.23 >/dev/null & H2=$!
held2() { [ "$(xs ss -Htn state established src 10.98.0.3:1080 dst 10.99.0.23 | wc -l)" -ge 2 ]; }
wait_for held2 300
is "$(xo $P raw 10.98.0.3:1080 050100 1 10.99.0.23)" " closed" "max-per-client 2: the third connection is closed at once"
kill $H1 $H2 2>/dev/null; wait $H1 $H2 2>/dev/null
grep -q "result=connection-limit" "$T/acl.log"; ok $? "  and logged as connection-limit" "$(cat "$T/acl.log" "$T/proxy2.err")"


# ---- exhausted slice: every port toward one destination in use -------------
# A third proxy reads an assignment whose GB slice is cut to two ports; two
# relayed connections to 192.0.2.80:81 (a fresh destination: no TIME_WAIT
# from earlier cases) hold both, so the next one to that destination must get
# its protocol's "exhausted" error, a log line and leave no descriptor.
awk -v ip="$GB_IP" '$1 == "egress" && $2 == ip {$4 = $3 + 1} {print}' "$RUN/assignment" >"$T/tiny.assignment"
printf 'listen 10.98.0.3:1081\nassignment %s\naccess-log %s\ndefault-tags service=warp,country=GB\ndns-server 192.0.2.53\ndns-tags service=dns\nhandshake-timeout-ms 2000\nmetrics 127.0.0.1:9182\n' \
	"$T/tiny.assignment" "$T/ex.log" >"$T/ex.conf"
bgx $S $SU proxy --config "$T/ex.conf" 2>"$T/proxy3.err"
PROXY3=$!
wait_for "xs ss -ltn | grep -q 10.98.0.3:1081"
ok $? "a proxy with a two-port GB slice listens" "$(cat "$T/proxy3.err")"
sleep 0.3
FD3=$(ls /proc/$PROXY3/fd 2>/dev/null | wc -l)
CONN81=05010005010001c00002500051   # SOCKS5 no auth, CONNECT 192.0.2.80:81
# (ip netns exec execs python: $! is the holder itself, for the kill below)
ip netns exec $O $P raw 10.98.0.3:1081 $CONN81 60 10.99.0.21 >/dev/null & X1=$!
ip netns exec $O $P raw 10.98.0.3:1081 $CONN81 60 10.99.0.21 >/dev/null & X2=$!
held81() { [ "$(xs ss -Htn state established dst 192.0.2.80:81 | wc -l)" -ge 2 ]; }
wait_for held81 300
ok $? "two relayed connections hold both ports of the slice toward 192.0.2.80:81" "$(xs ss -tn dst 192.0.2.80:81)"
is "$(xo $P raw 10.98.0.3:1081 $CONN81 2 10.99.0.21)" "050005010001000000000000 closed" \
	"slice exhausted: SOCKS5 reply 0x01 (general failure), closed"
is "$(xo $P raw 10.98.0.3:1081 04010051c000025000 2 10.99.0.21)" "005b000000000000 closed" \
	"slice exhausted: SOCKS4 reply 91 (rejected), closed"
OUT=$(cu 10.99.0.21 -D - -o /dev/null -p -x http://10.98.0.3:1081 http://192.0.2.80:81/ 2>&1)
like "$OUT" "HTTP/1.1 503" "slice exhausted: HTTP CONNECT 503"
like "$OUT" "X-Softunicast-Error: slice-exhausted" "  with the reason header"
OUT=$(cu 10.99.0.21 -D - -o /dev/null -x http://10.98.0.3:1081 http://192.0.2.80:81/ 2>&1)
like "$OUT" "HTTP/1.1 503" "slice exhausted: plain HTTP GET 503"
like "$OUT" "X-Softunicast-Error: slice-exhausted" "  with the reason header"
OUT=$(cu 10.99.0.21 --socks5 10.98.0.3:1081 http://192.0.2.80:80/ 2>&1)
is "$(eip "$OUT")" "$GB_IP" "another destination still gets a port of the same two"
is "$(grep -c "target=192.0.2.80:81 .*result=slice-exhausted" "$T/ex.log")" 4 \
	"every exhausted request is logged as slice-exhausted" "$(cat "$T/ex.log")"
kill $X1 $X2 2>/dev/null; wait $X1 $X2 2>/dev/null
sleep 1
is "$(ls /proc/$PROXY3/fd 2>/dev/null | wc -l)" "$FD3" "no descriptor leaked after the exhausted-slice cases"
M3=$(xs curl -sS --max-time 5 http://127.0.0.1:9182/metrics 2>&1)
like "$M3" 'softunicast_proxy_errors_total\{reason="slice-exhausted"\} 4' "metrics: errors_total{reason=slice-exhausted} counts the 4 refusals"
like "$M3" 'softunicast_proxy_connections_total\{protocol="socks4",result="slice-exhausted"\} 1' "  and connections_total by protocol (socks4) and result"
kill -TERM $PROXY3; wait $PROXY3; is $? 0 "  and that proxy exits 0"

# ---- graceful SIGTERM: stop accepting, drain, exit ---------------------------
# a relayed connection (SOCKS5 CONNECT 192.0.2.80:80) held open for 3 s
xo $P raw 10.98.0.3:1080 05010005010001c00002500050 3 10.99.0.21 >"$T/held.out" &
HELD=$!
wait_for "xs ss -tn state established | grep -q '10.98.0.3:1080 *10.99.0.21'" 300
kill -TERM $PROXY2
sleep 0.5
xs ss -ltn | grep -q 10.98.0.3:1080; is $? 1 "SIGTERM: the listener is closed at once"
kill -0 $PROXY2 2>/dev/null; ok $? "  while the open connection drains" "$(cat "$T/proxy2.err")"
wait $HELD
like "$(cat "$T/held.out")" "^050005000001" "  the drained connection had been relayed"
wait $PROXY2; is $? 0 "  then the proxy exits 0"
# ---- metrics (issue 12): everything above, counted ------------------------------
xs curl -sS --max-time 5 -o "$T/proxy.prom" -w '%{http_code} %{content_type}' http://127.0.0.1:9181/metrics >"$T/prom.hdr" 2>&1
like "$(cat "$T/prom.hdr")" "^200 text/plain; version=0.0.4" "metrics: GET /metrics answers 200 in the text format 0.0.4" "$(cat "$T/prom.hdr")"
promtool check metrics <"$T/proxy.prom" >"$T/promtool.out" 2>&1
ok $? "metrics: promtool check metrics passes" "$(cat "$T/promtool.out")"
mval() { awk -v k="$1" '$1 == k {print $2}' "$T/proxy.prom"; }
gt0() { local v; v=$(mval "$1"); [ -n "$v" ] && [ "${v%%.*}" -gt "${2:-0}" ]; ok $? "metrics: $1 > ${2:-0}" "got '$v'"; }
gt0 'softunicast_proxy_connections_total{protocol="socks5",result="ok"}' 5
gt0 'softunicast_proxy_connections_total{protocol="http",result="ok"}' 5
gt0 'softunicast_proxy_connections_total{protocol="socks4",result="ok"}'
gt0 'softunicast_proxy_errors_total{reason="no-egress-for-tags"}'
gt0 'softunicast_proxy_errors_total{reason="handshake-timeout"}'
gt0 'softunicast_proxy_errors_total{reason="header-too-large"}'
gt0 'softunicast_proxy_errors_total{reason="dns-not-found"}'
gt0 'softunicast_proxy_errors_total{reason="refused"}'
is "$(mval 'softunicast_proxy_errors_total{reason="other"}')" 0 "metrics: every result the proxy logged has its own label (none counted as other)"
gt0 'softunicast_proxy_bytes_total{direction="up"}' 10000
gt0 'softunicast_proxy_bytes_total{direction="down"}' 1000
gt0 'softunicast_proxy_dns_queries_total' 3
gt0 'softunicast_proxy_dns_cache_hits_total'
gt0 'softunicast_proxy_dns_failures_total{reason="not-found"}'
gt0 'softunicast_proxy_dns_failures_total{reason="timeout"}'
gt0 'softunicast_proxy_relays_total{mode="splice"}'
is "$(mval softunicast_proxy_open_connections)" 0 "metrics: no connection open once the clients are gone"
is "$(mval softunicast_proxy_draining)" 0 "metrics: not draining"
# the log and the metrics tell the same story: one ended connection per line
LOGN=$(grep -c . "$T/access.log")
SUMN=$(awk '$1 ~ /^softunicast_proxy_connections_total/ {s += $2} END {print s}' "$T/proxy.prom")
is "$SUMN" "$LOGN" "metrics: connections_total sums to the access log's line count"
kill -TERM $PROXY; wait $PROXY; RC=$?
is "$RC" 0 "the main proxy exits 0 on SIGTERM (under make asan: no leak)"
! grep -E "ERROR: AddressSanitizer|runtime error|LeakSanitizer" "$T/proxy.err" "$T/proxy2.err" "$T/proxy3.err"
ok $? "no sanitizer report from the proxies" "$(grep -h -A5 -E "Sanitizer|runtime error" "$T/proxy.err" "$T/proxy2.err" "$T/proxy3.err" | head -20)"

echo "1..$N"
[ "$FAILS" = 0 ]
