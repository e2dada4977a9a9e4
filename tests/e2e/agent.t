#!/usr/bin/env bash
# End to end: `softunicast agent` and libsoftunicast in network namespaces.
#
#   srv (server s1: agent, applications)  --veth--  org (origin + DC router)
#   10.99.0.2 s0                                    o0 10.99.0.1 (the router)
#                                                   lo 192.0.2.80-83 (origins)
# Egress leaves srv directly from (egress IP, port in s1's slice).  Replies
# to the egress prefixes are routed in org into a TUN whose reader sends them
# as GUE to 10.99.0.2:6080 from the router address (tests/e2e/lib/su_e2e.py
# gue-router: what the XDP router does); only the agent's XDP decap makes them
# reach the applications, so every successful round trip below proves it.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/${SU_BUILD:-build}
SU=$B/bin/softunicast
LIB=$B/lib/libsoftunicast.so
PRELOAD=$B/lib/libsoftunicast-preload.so
H="python3 $ROOT/tests/e2e/lib/su_e2e.py"
# Under `make asan` the library carries the ASan runtime, which must come
# first in programs not built with it (python's ctypes, curl with the shim).
ASAN_RT=$(ldd "$LIB" 2>/dev/null | awk '/libasan/ {print $3}')
HL="env ${ASAN_RT:+LD_PRELOAD=$ASAN_RT ASAN_OPTIONS=detect_leaks=0} $H"
S=su-srv-$$ O=su-org-$$
T=$(mktemp -d /tmp/su-agent-e2e.XXXXXX)
RUN=$T/run
PIDS=()
N=0 FAILS=0

skip_all() { echo "1..0 # SKIP $*"; rm -rf "$T"; exit 0; }
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, XDP, nftables)"
for c in ip nft ncat python3 curl; do
	command -v $c >/dev/null || skip_all "$c not installed"
done
[ -c /dev/net/tun ] || skip_all "no /dev/net/tun for the stand-in router"
ip netns add $S 2>/dev/null || skip_all "cannot create network namespaces"
ip netns add $O

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	# Anything else still inside our namespaces was started by this test.
	for ns in $S $O; do
		for p in $(ip netns pids $ns 2>/dev/null); do kill "$p" 2>/dev/null; done
	done
	wait 2>/dev/null
	ip netns del $S 2>/dev/null
	ip netns del $O 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

ok() { # ok COND-STATUS DESCRIPTION [DIAGNOSTIC]
	N=$((N + 1))
	if [ "$1" = 0 ]; then
		echo "ok $N - $2"
	else
		echo "not ok $N - $2"
		FAILS=$((FAILS + 1))
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
	fi
}
check() { local d=$1; shift; "$@" >/dev/null 2>&1; ok $? "$d"; }
is() { [ "$1" = "$2" ]; ok $? "$3" "got '$1', want '$2'"; }
in_slice() { [ -n "$1" ] && [ "$1" -ge "$LO" ] && [ "$1" -le "$HI" ]; }
xs() { ip netns exec $S "$@"; }
xo() { ip netns exec $O "$@"; }
# Background jobs run `ip netns exec` directly (it execs the program), so $!
# is the program itself, not a subshell, and can be signalled.
bgx() { local ns=$1; shift; ip netns exec "$ns" "$@" & PIDS+=($!); }
wait_for() { for _ in $(seq 100); do eval "$1" && return 0; sleep 0.1; done; return 1; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- topology -----------------------------------------------------------
ip link add s0 netns $S type veth peer name o0 netns $O
xs ip link set lo up; xs ip link set s0 up; xs ip addr add 10.99.0.2/24 dev s0
xo ip link set lo up; xo ip link set o0 up; xo ip addr add 10.99.0.1/24 dev o0
xo ip addr add 10.99.0.9/24 dev o0 # not the router: its GUE must be refused
for i in 80 81 82 83; do xo ip addr add 192.0.2.$i/32 dev lo; done
xs ip route add default via 10.99.0.1
xo sysctl -qw net.core.somaxconn=65535
xs sysctl -qw net.ipv4.ping_group_range="0 2147483647"
RANGE0=$(xs cat /proc/sys/net/ipv4/ip_local_port_range)
ANNOUNCE0=$(xs cat /proc/sys/net/ipv4/conf/s0/arp_announce)
TWREUSE0=$(xs cat /proc/sys/net/ipv4/tcp_tw_reuse)

cat >"$T/fleet.yaml" <<'YAML'
ports: {range: 1024-65535, slice: 2048}
drain: 10m
datacenters:
  dc1:
    router: 10.99.0.1
    servers: {s1: 10.99.0.2, s2: 10.99.0.3}
    egress:
      - {service: warp, country: GB}
      - {service: cdn}
prefixes:
  - {prefix: 198.51.100.0/30, tags: {service: warp, country: GB}}
  - {prefix: 203.0.113.0/30, tags: {service: cdn}}
  - {prefix: 100.64.0.0/30, tags: {service: api}}
YAML
$SU plan --fleet "$T/fleet.yaml" --out "$T/plan" --now 1700000000 >/dev/null 2>&1
ok $? "plan built for the test fleet"

bgx $O $H gue-router gue0 10.99.0.2 6080 10.99.0.1 >/dev/null
wait_for "xo ip link show gue0 >/dev/null 2>&1"
xo ip link set gue0 up
for p in 198.51.100.0/30 203.0.113.0/30 100.64.0.0/30; do xo ip route add $p dev gue0; done

# ---- agent up -----------------------------------------------------------
ip netns exec $S $SU agent --plan "$T/plan" --server s1 --iface s0 --run-dir "$RUN" --state-dir "$T/state0" 2>"$T/agent.log" &
AGENT=$!
PIDS+=($AGENT)
wait_for "[ -s $RUN/assignment ]"
ok $? "agent publishes $RUN/assignment" "$(cat "$T/agent.log")"
export SOFTUNICAST_ASSIGNMENT=$RUN/assignment
read -r _ WIP LO HI STATE WTAGS < <(grep '^egress 198.51.100.0 ' "$RUN/assignment")
is "$(head -2 "$RUN/assignment" | tail -1)" "softunicast-assignment 1" "assignment file is versioned"
is "$WIP $STATE $WTAGS" "198.51.100.0 active country=GB,service=warp" "warp slice: IP, state, tags"
check "egress IPs on s0 as /32" sh -c "ip -n $S addr show s0 | grep -q 'inet 198.51.100.0/32' && ip -n $S addr show s0 | grep -q 'inet 203.0.113.0/32'"
check "decap XDP program attached to s0" sh -c "ip -n $S link show s0 | grep -q 'prog/xdp'"
check "nftables table inet softunicast_agent installed" xs nft list table inet softunicast_agent
check "ARP requests for egress IPs are not answered" sh -c "ip netns exec $S nft list table arp softunicast_agent | grep -q 198.51.100.0"
is "$(xs cat /proc/sys/net/ipv4/conf/s0/arp_announce)" 2 "arp_announce 2: ARP never carries a shared egress IP"

# ---- egress -------------------------------------------------------------
bgx $O ncat -lk 192.0.2.80 8080 -v -c 'echo hello' 2>"$T/tcp.log"
bgx $O $H udp-echo 192.0.2.80:5353 >"$T/udp.log"
wait_for "grep -q ready $T/udp.log" # python starts slowly on a loaded machine
bgx $O ncat -lk 192.0.2.80 7007 -e /bin/cat
bgx $O ncat -lk 192.0.2.80 8081 -v -c 'printf "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"' 2>"$T/http.log"
wait_for "xo ss -ltn | grep -q 192.0.2.80:8081"
wait_for "grep -q ready $T/udp.log" # python starts slowly on a loaded machine

OUT=$( (sleep 1) | xs $SU connect -v --tags service=warp,country=GB 192.0.2.80 8080 2>"$T/c.err")
is "$OUT" "hello" "TCP through the slice: origin's reply came back via GUE + decap"
SPORT=$(grep -o 'Connection from 198.51.100.0:[0-9]*' "$T/tcp.log" | head -1 | cut -d: -f2)
in_slice "$SPORT"; ok $? "origin saw 198.51.100.0 with a port in $LO-$HI" "$(cat "$T/tcp.log")"

read -r _ CIP CLO CHI _ < <(grep '^egress 203.0.113.0 ' "$RUN/assignment")
OUT=$(echo datagram | xs $SU connect -v -u -w 1000 --tags service=cdn 192.0.2.80 5353 2>"$T/u.err")
is "$OUT" "datagram" "UDP echo through the cdn slice"
UPORT=$(grep -o 'from 203.0.113.0:[0-9]*' "$T/u.err" | cut -d: -f2)
[ -n "$UPORT" ] && [ "$UPORT" -ge "$CLO" ] && [ "$UPORT" -le "$CHI" ]
ok $? "UDP source port $UPORT inside $CLO-$CHI"
grep -qx "203.0.113.0:$UPORT" "$T/udp.log"; ok $? "origin saw the UDP datagram from 203.0.113.0:$UPORT" "$(cat "$T/udp.log")"

OUT=$(xs $SU connect --ping -c 2 --tags service=cdn 192.0.2.80 2>&1)
ID=$(echo "$OUT" | grep -o 'id=[0-9]*' | head -1 | cut -d= -f2)
[ -n "$ID" ] && [ "$ID" -ge "$CLO" ] && [ "$ID" -le "$CHI" ]
ok $? "ping: echo reply came back, identifier $ID inside the slice" "$OUT"

if [ -z "$ASAN_RT" ]; then
	OUT=$(xs env SOFTUNICAST_TAGS=service=warp,country=GB LD_PRELOAD=$PRELOAD \
		curl -sS --max-time 5 http://192.0.2.80:8081/ 2>&1)
	is "$OUT" "ok" "LD_PRELOAD shim: unmodified curl egresses"
else # with a preloaded ASan runtime curl deadlocks in setlocale and ncat reads nothing
	OUT=$(xs env SOFTUNICAST_TAGS=service=warp,country=GB LD_PRELOAD="$ASAN_RT $PRELOAD" \
		ASAN_OPTIONS=detect_leaks=0 python3 -c "import urllib.request as u
print(u.urlopen('http://192.0.2.80:8081/', timeout=5).read().decode().strip())" 2>&1)
	is "$OUT" "ok" "LD_PRELOAD shim: unmodified python urllib egresses"
fi
PPORT=$(grep -o 'Connection from 198.51.100.0:[0-9]*' "$T/http.log" | head -1 | cut -d: -f2)
in_slice "$PPORT"; ok $? "curl's source was 198.51.100.0:$PPORT, inside the slice" "$(cat "$T/http.log")"

# A NAT rule that would move every TCP/UDP flow to 10.99.0.2:60000-60100:
# egress flows are untracked, so it must not touch them.
xs nft -f - <<'NFT'
table ip su_test_nat {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oif "s0" meta l4proto { tcp, udp } masquerade to :60000-60100
	}
}
NFT
ok $? "a masquerade rule is installed on the server"
OUT=$( (sleep 1) | xs $SU connect -v --tags service=warp,country=GB 192.0.2.80 8080 2>/dev/null)
SPORT=$(grep -o 'Connection from [0-9.]*:[0-9]*' "$T/tcp.log" | tail -1 | cut -d' ' -f3)
[ "$OUT" = hello ] && [ "${SPORT%:*}" = 198.51.100.0 ] && in_slice "${SPORT#*:}"
ok $? "NAT leaves egress flows alone (origin saw $SPORT)" "$OUT $(tail -3 "$T/tcp.log")"
xs nft delete table ip su_test_nat

# ---- errors ---------------------------------------------------------------
OUT=$(xs $SU connect --tags country 192.0.2.80 8080 </dev/null 2>&1); RC=$?
is "$RC" 2 "malformed tags: exit 2"
echo "$OUT" | grep -q "invalid tag query"; ok $? "malformed tags: clear message" "$OUT"
OUT=$(xs $SU connect --tags service=warp,country=FR 192.0.2.80 8080 </dev/null 2>&1); RC=$?
is "$RC" 5 "no matching egress: exit 5"
echo "$OUT" | grep -q "no active egress of this server matches"; ok $? "no matching egress: clear message" "$OUT"
OUT=$(xs env SOFTUNICAST_ASSIGNMENT=$T/none $SU connect --tags service=cdn 192.0.2.80 8080 </dev/null 2>&1); RC=$?
is "$RC" 5 "no assignment published: exit 5"
echo "$OUT" | grep -q "is the softunicast agent running"; ok $? "no assignment: clear message" "$OUT"

# ---- ownership ----------------------------------------------------------
OUT=$(xs $H blocked 198.51.100.0 50000 192.0.2.80:8080 2>&1)
echo "$OUT" | grep -q "udp Operation not permitted"; ok $? "UDP from a port outside the slice is blocked" "$OUT"
echo "$OUT" | grep -q "tcp connected"; [ $? != 0 ]; ok $? "TCP from a port outside the slice does not connect" "$OUT"
BLOCKED=$(xs $SU agent status --json --run-dir "$RUN" | jq_ 'd["blocked_packets"]')
[ "${BLOCKED:-0}" -ge 2 ]; ok $? "blocked packets are counted ($BLOCKED)"
check "egress flows are not tracked by conntrack" sh -c "! ip netns exec $S cat /proc/net/nf_conntrack 2>/dev/null | grep -q 198.51.100.0"

# ---- egress IPs carry return traffic only (the decap's socket check) -----------
# The Internet (org, through the stand-in router's GUE) and the server itself
# try the egress IPs; only sockets bound to them by the library may answer.
dstat() { xs $SU agent status --json --run-dir "$RUN" | jq_ "d['decap']['$1']"; }
rose() { # rose COUNTER BEFORE DESCRIPTION
	local now; now=$(dstat "$1")
	[ "${now:-0}" -gt "$2" ]; ok $? "$3 ($1 $2 -> $now)"
}
P=$((CLO + 7)) PU=$((CLO + 9)) PB=$((CLO + 11))
bgx $S ncat -lk 0.0.0.0 $P -c 'echo wildcard'
LISTENER=$!
wait_for "xs ss -ltn | grep -q 0.0.0.0:$P"
C=$(dstat drop_tcp_syn)
OUT=$(xo $H tcp-try 203.0.113.0:$P 2)
[ "$OUT" != connected ]
ok $? "unsolicited TCP: a wildcard listener on 0.0.0.0:$P (in the slice) cannot be reached at 203.0.113.0:$P" "$OUT"
rose drop_tcp_syn "$C" "unsolicited TCP: the SYN was dropped and counted"
C=$(dstat drop_local)
OUT=$(xs $H tcp-try 203.0.113.0:$P 2 10.99.0.2)
[ "$OUT" != connected ]
ok $? "in-DC traffic: the server itself (from 10.99.0.2) cannot reach its egress IP's listener" "$OUT"
rose drop_local "$C" "in-DC traffic: dropped and counted"

bgx $S $H udp-recv 0.0.0.0:$PU 60 >"$T/wild.log"
WILD=$!
bgx $S $H udp-recv 203.0.113.0:$PB 60 >"$T/bound.log"
BOUND=$!
wait_for "grep -q ready $T/wild.log && grep -q ready $T/bound.log"
C=$(dstat drop_unbound) CS=$(dstat drop_inner_csum)
xo $H udp-to 203.0.113.0:$PU probe
xo $H gue-udp 10.99.0.1 10.99.0.2 6080 192.0.2.80:5353 203.0.113.0:$PB good-1
xo $H gue-udp 10.99.0.1 10.99.0.2 6080 192.0.2.80:5353 203.0.113.0:$PB evil-2 corrupt
wait_for "grep -q good-1 $T/bound.log"
ok $? "return UDP: a socket bound to the egress IP receives (GUE through veth)" "$(cat "$T/bound.log")"
sleep 0.3
! grep -q probe "$T/wild.log"
ok $? "unsolicited UDP: a wildcard UDP socket on 0.0.0.0:$PU receives nothing" "$(cat "$T/wild.log")"
rose drop_unbound "$C" "unsolicited UDP: dropped and counted"
! grep -q '^evil' "$T/bound.log"
ok $? "inner checksum: a corrupted inner datagram is not delivered, whatever veth's offload said of the outer UDP" "$(cat "$T/bound.log")"
rose drop_inner_csum "$CS" "inner checksum: dropped and counted"
kill $WILD $BOUND

C=$(dstat drop_icmp_type)
xo ping -c 1 -W 1 198.51.100.0 >/dev/null 2>&1
[ $? != 0 ]; ok $? "unsolicited ICMP: an echo request to the egress IP gets no answer"
rose drop_icmp_type "$C" "unsolicited ICMP: dropped and counted"

# Straight to the server's MAC, not through the router's GUE.
C=$(dstat drop_not_gue)
xo ip route add 198.51.100.0/32 via 10.99.0.2 dev o0
OUT=$(xo $H tcp-try 198.51.100.0:$P 1)
xo ip route del 198.51.100.0/32 via 10.99.0.2 dev o0
[ "$OUT" != connected ]; ok $? "not through GUE: TCP straight to the egress IP fails" "$OUT"
rose drop_not_gue "$C" "not through GUE: dropped and counted"
kill $LISTENER # its port is in the slices: free it for the tests below
OUT=$( (sleep 1) | xs $SU connect --tags service=warp,country=GB 192.0.2.80 8080 2>&1)
is "$OUT" "hello" "return traffic of a connection from the egress IP still flows"

# ---- many connections, several destinations ---------------------------------
bgx $O $H listen 192.0.2.81:9000 192.0.2.82:9000 192.0.2.83:9000 >/dev/null
wait_for "xo ss -ltn | grep -q 192.0.2.83:9000"
mkfifo "$T/hold.in"
ip netns exec $S $HL hold "$LIB" service=warp,country=GB 1700 192.0.2.81:9000 192.0.2.82:9000 \
	192.0.2.83:9000 <"$T/hold.in" >"$T/hold.out" 2>&1 &
HOLD=$!
PIDS+=($HOLD)
exec 9>"$T/hold.in"
wait_for "[ -s $T/hold.out ]"; wait_for "[ -s $T/hold.out ]"; wait_for "[ -s $T/hold.out ]"
R=$(cat "$T/hold.out")
is "$(echo "$R" | jq_ 'd["ok"]')" 5100 "5100 concurrent TCP connections through one 2048-port slice" "$R"
PORTS=$(echo "$R" | jq_ 'd["ports"]')
[ "$PORTS" -le 2048 ] && [ "$(echo "$R" | jq_ 'd["min"]')" -ge "$LO" ] && [ "$(echo "$R" | jq_ 'd["max"]')" -le "$HI" ]
ok $? "they share $PORTS ports, all inside $LO-$HI" "$R"
ST=$(xs $SU agent status --run-dir "$RUN")
echo "$ST" | grep -q "WARNING: 198.51.100.0 $LO-$HI: 83% of the slice in use toward"
ok $? "status warns at 80% utilization toward one destination" "$ST"
J=$(xs $SU agent status --json --run-dir "$RUN")
U=$(echo "$J" | jq_ '[s for s in d["slices"] if s["ip"]=="198.51.100.0"][0]["ports_in_use"]')
[ "${U:-0}" -ge 1700 ]; ok $? "status --json: ports in use from sock_diag ($U)"
OUT=$(xs $HL hold "$LIB" service=warp,country=GB 400 192.0.2.81:9000 </dev/null)
is "$(echo "$OUT" | jq_ 'd["ok"]'),$(echo "$OUT" | jq_ 'list(d["errors"])')" \
	"348,['every matching port slice is exhausted toward this destination']" \
	"past 2048 to one destination: exactly the remainder connects, then a clear error"
F=$(xs $SU agent status --json --run-dir "$RUN" | jq_ 'd["allocation_failures"]')
is "$F" 52 "allocation failures are counted"
exec 9>&-
kill $HOLD 2>/dev/null; wait $HOLD 2>/dev/null

# ---- plan reload keeps live connections -------------------------------------
ip netns exec $S $HL live "$LIB" service=warp,country=GB 192.0.2.80:7007 "$T/go" >"$T/live.out" 2>&1 &
LIVE=$!
PIDS+=($LIVE)
wait_for "grep -q 'got before' $T/live.out"; ok $? "live connection established" "$(cat "$T/live.out")"
sed -i 's/      - {service: cdn}/      - {service: cdn}\n      - {service: api}/' "$T/fleet.yaml"
$SU plan --fleet "$T/fleet.yaml" --previous "$T/plan" --out "$T/plan" --now 1700000100 >/dev/null 2>&1
ok $? "plan 2 (adds tag-set service=api) written over the plan file"
wait_for "grep -q '^serial 2' $RUN/assignment"; ok $? "agent reloaded on the file change" "$(cat "$T/agent.log")"
check "the new egress IP is on s0" sh -c "ip -n $S addr show s0 | grep -q 'inet 100.64.0.0/32'"
touch "$T/go"; wait $LIVE
grep -q "got after" "$T/live.out"; ok $? "live connection survived the reload" "$(cat "$T/live.out")"
bgx $O ncat -lk 192.0.2.80 8082 -v -c 'echo api' 2>/dev/null
wait_for "xo ss -ltn | grep -q 192.0.2.80:8082"
OUT=$( (sleep 1) | xs $SU connect --tags service=api 192.0.2.80 8082 2>&1)
is "$OUT" "api" "the new tag-set egresses after the reload"
kill -HUP $AGENT; sleep 0.5
grep -q "SIGHUP: reloading" "$T/agent.log"; ok $? "SIGHUP reloads"
kill -0 $AGENT 2>/dev/null; ok $? "agent still running after SIGHUP"

# ---- GUE from a non-router -------------------------------------------------
xo $H bad-gue 10.99.0.9 10.99.0.2 6080 198.51.100.0
sleep 0.3
BAD=$(xs $SU agent status --json --run-dir "$RUN" | jq_ 'd["decap"]["drop_bad_source"]')
[ "${BAD:-0}" -ge 3 ]; ok $? "GUE from a non-router source is dropped and counted ($BAD)"
DEC=$(xs $SU agent status --json --run-dir "$RUN" | jq_ 'd["decap"]["decapsulated"]')
[ "${DEC:-0}" -gt 0 ]; ok $? "decap counted $DEC decapsulated packets"

# ---- crash and restart ---------------------------------------------------------
kill -KILL $AGENT; wait $AGENT 2>/dev/null
check "a killed agent leaves its XDP program behind" sh -c "ip -n $S link show s0 | grep -q 'prog/xdp'"
ip netns exec $S $SU agent --plan "$T/plan" --server s1 --iface s0 --run-dir "$RUN" --state-dir "$T/state0" 2>"$T/agent2.log" &
AGENT=$!
PIDS+=($AGENT)
wait_for "grep -q 'slice(s) on s0' $T/agent2.log"
ok $? "a new agent starts over the leftovers (XDP replaced, table recreated)" "$(cat "$T/agent2.log")"
grep -q "adopting what agent pid" "$T/agent2.log"; ok $? "it adopts what the crashed agent added"
OUT=$( (sleep 1) | xs $SU connect --tags service=api 192.0.2.80 8082 2>&1)
is "$OUT" "api" "egress works after the restart"
ip netns exec $S $SU agent --plan "$T/plan" --server s1 --iface s0 --run-dir "$RUN" --state-dir "$T/state0" 2>"$T/agent3.log"
RC=$?
[ $RC = 1 ] && grep -q "another agent (pid $AGENT)" "$T/agent3.log"
ok $? "a second agent on the same run directory refuses to start" "$(cat "$T/agent3.log")"

# ---- churn to one destination (egress helper, issue 13 section 5) -------------
# Connections closed by this side hold their 4-tuple in TIME_WAIT for 60 s:
# 3000 of them to one origin through a 2048-port slice need the kernel to
# reuse TIME_WAIT ports, which the agent's tcp_tw_reuse=1 allows (Debian's
# default 2 reuses on loopback only).  Paced at 800/s: correctness, not speed.
is "$(xs cat /proc/sys/net/ipv4/tcp_tw_reuse)" 1 "agent sets tcp_tw_reuse 1 (was $TWREUSE0)"
bgx $O $H tcp-log 192.0.2.80:9100 >"$T/churn.log"
wait_for "grep -q ready $T/churn.log"
R=$(xs $HL churn "$LIB" service=warp,country=GB 3000 800 192.0.2.80:9100 2>&1)
[ "$(echo "$R" | jq_ 'd["ok"]')" = 3000 ]
ok $? "churn to one destination: 3000 connections closed by the client, one 2048-port slice, no failure" "$R"
sleep 0.5
BAD=$(grep -v ready "$T/churn.log" | awk -F: -v lo=$LO -v hi=$HI '$1 != "198.51.100.0" || $2 < lo || $2 > hi' | head -3)
[ -z "$BAD" ] && [ "$(grep -c '^198' "$T/churn.log")" -ge 3000 ]
ok $? "churn: the origin saw $(grep -c '^198' "$T/churn.log") connections, all from the slice" "$BAD"

# ---- stop restores the host ---------------------------------------------------
kill -TERM $AGENT; wait $AGENT; RC=$?
is "$RC" 0 "agent exits 0 on SIGTERM"
check "egress addresses removed" sh -c "! ip -n $S addr show s0 | grep -qE '198.51.100.0|203.0.113.0|100.64.0.0'"
check "XDP program detached" sh -c "! ip -n $S link show s0 | grep -q 'prog/xdp'"
check "nftables table removed" sh -c "! ip netns exec $S nft list table inet softunicast_agent"
check "assignment withdrawn" test ! -e "$RUN/assignment"
is "$(xs cat /proc/sys/net/ipv4/ip_local_port_range)" "$RANGE0" "ip_local_port_range restored"
is "$(xs cat /proc/sys/net/ipv4/conf/s0/arp_announce)" "$ANNOUNCE0" "arp_announce restored"
is "$(xs cat /proc/sys/net/ipv4/tcp_tw_reuse)" "$TWREUSE0" "tcp_tw_reuse restored"
check "ARP table removed" sh -c "! ip netns exec $S nft list table arp softunicast_agent"

# ---- enforcement, host settings, lifecycle, recovery (issue 13 §1) ----------
# Each check is named after the kind of fault it stands for.
ST=$T/state
xs sysctl -qw net.ipv4.ip_local_reserved_ports=41000 # the operator's, kept throughout
RESERVED0=$(xs cat /proc/sys/net/ipv4/ip_local_reserved_ports)
start_agent() { # start_agent LOG [PLAN]: an agent with its own state directory
	ip netns exec $S $SU agent --plan "${2:-$T/plan}" --server s1 --iface s0 --run-dir "$RUN" \
		--state-dir "$ST" 2>"$1" &
	AGENT=$!
	PIDS+=($AGENT)
	wait_for "grep -q 'slice(s) on s0' $1"
}
enf() { xs $SU agent status --json --run-dir "$RUN" | jq_ "d['enforce']['$1']"; }
seen() { grep -q "^$1 $2 $3 ${4:-[0-9.]*}\$" "$T/sniff.log"; } # seen KIND SRC PORT [DST]
host_clean() { # host_clean WHAT: nothing of the agent's left on the server
	check "$1: no egress /32 left" sh -c "! ip -n $S addr show s0 | grep -qE '198.51.100.0|203.0.113.0|100.64.0.0'"
	check "$1: no nftables tables left" sh -c "! ip netns exec $S nft list tables | grep -q softunicast_agent"
	check "$1: no tc program or clsact qdisc left" sh -c "! ip netns exec $S tc qdisc show dev s0 | grep -q clsact"
	check "$1: no XDP program left" sh -c "! ip -n $S link show s0 | grep -q 'prog/xdp'"
	is "$(xs cat /proc/sys/net/ipv4/ip_local_port_range)" "$RANGE0" "$1: ip_local_port_range as before"
	is "$(xs cat /proc/sys/net/ipv4/ip_local_reserved_ports)" "$RESERVED0" "$1: ip_local_reserved_ports as before"
}

# A record left in the state dir by an agent whose namespace is gone (or by
# the last boot) under a name a new namespace can get again (inode numbers
# are reused; "dev:inode" is what agents wrote before, and what a recycled
# namespace matches): its values must not be applied here.
mkdir -p "$ST"
cat >"$ST/s1@$(xs stat -L -c %i /proc/self/ns/net).json" <<JSON
{"pid": 1, "netns": "$(xs stat -L -c %d:%i /proc/self/ns/net)", "ifindex": $(xs cat /sys/class/net/s0/ifindex),
 "added": [], "saved_range": "1000 2000", "saved_reserved": "", "saved_tw_reuse": 0, "saved_arp_announce": 1}
JSON
start_agent "$T/agent4.log"; ok $? "agent started with --state-dir" "$(cat "$T/agent4.log")"
grep -q "network namespace or boot that is gone" "$T/agent4.log" && ! grep -q "adopting what agent pid" "$T/agent4.log"
ok $? "stale recovery record of a vanished namespace or boot: not adopted" "$(cat "$T/agent4.log")"
read -r _ _ LO HI _ < <(grep '^egress 198.51.100.0 ' "$RUN/assignment")
OUTP=$((HI + 1000)) INP=$((LO + 7))
check "tc egress program attached to s0" sh -c "ip netns exec $S tc filter show dev s0 egress | grep -q enforce"

# The host range is widened to cover the slices (the kernel ignores a
# socket's IP_LOCAL_PORT_RANGE outside it) and every port it gains outside
# them is reserved: the host's own connections keep their ports.
ports_ok() { # the gained ports are slice ports or reserved, the operator's reservation kept
	xs python3 - "$RANGE0" "$RUN/assignment" <<'PY'
import sys
lo0, hi0 = map(int, sys.argv[1].split())
lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
res = set()
for part in open("/proc/sys/net/ipv4/ip_local_reserved_ports").read().strip().split(","):
    if part:
        a, _, b = part.partition("-")
        res.update(range(int(a), int(b or a) + 1))
slices = set()
for line in open(sys.argv[2]):
    f = line.split()
    if f and f[0] == "egress":
        slices.update(range(int(f[2]), int(f[3]) + 1))
bad = [p for p in range(lo, hi + 1) if not (lo0 <= p <= hi0 or p in slices or p in res)]
uncovered = [p for p in slices if not lo <= p <= hi]
inslice = [p for p in slices if p in res and p != 41000]
print(f"range {lo}-{hi}; {len(bad)} gained port(s) unreserved; {len(uncovered)} slice port(s) outside; "
      f"{len(inslice)} slice port(s) reserved; operator's 41000 {'kept' if 41000 in res else 'lost'}")
sys.exit(0 if not bad and not uncovered and not inslice and 41000 in res else 1)
PY
}
R=$(ports_ok); ok $? "host port range fitted: covers the slices, gained ports reserved, operator's reservation kept" "$R"
xo python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('10.99.0.1', 8090)); s.listen(4096); time.sleep(30)" &
PIDS+=($!)
wait_for "xo ss -ltn | grep -q 10.99.0.1:8090"
R=$(xs python3 - "$RANGE0" "$RUN/assignment" <<'PY'
import socket, sys
lo0, hi0 = map(int, sys.argv[1].split())
slices = set()
for line in open(sys.argv[2]):
    f = line.split()
    if f and f[0] == "egress":
        slices.update(range(int(f[2]), int(f[3]) + 1))
socks, bad = [], []
for _ in range(300):
    c = socket.create_connection(("10.99.0.1", 8090), timeout=5)
    p = c.getsockname()[1]
    if not (lo0 <= p <= hi0 or p in slices):
        bad.append(p)
    socks.append(c)
print(f"{len(bad)} of 300 host connections outside the host range and the slices: {bad[:5]}")
sys.exit(1 if bad else 0)
PY
); ok $? "host port range fitted: the host's own connections keep their ports" "$R"
OUT=$( (sleep 1) | xs $SU connect --tags service=warp,country=GB 192.0.2.80 8080 2>&1)
is "$OUT" "hello" "host port range fitted: egress from slice $LO-$HI (outside $RANGE0) works"

OMAC=$(xo cat /sys/class/net/o0/address)
bgx $O $H sniff o0 >"$T/sniff.log"
wait_for "grep -q ready $T/sniff.log"
pkt() { xs $H packet s0 "$OMAC" "$@"; }

# Packet sockets never meet netfilter: tc egress is where they are stopped.
R=$(pkt udp 198.51.100.0 192.0.2.80 $INP)
wait_for "seen udp 198.51.100.0 $INP"; ok $? "packet socket bypass closed: control, a frame from inside the slice leaves" "$R"
R=$(pkt udp 198.51.100.0 192.0.2.80 $OUTP)
R2=$(pkt tcp 198.51.100.0 192.0.2.80 $OUTP)
R3=$(pkt arp 198.51.100.0 10.99.0.1 0)
sleep 0.5
! seen udp 198.51.100.0 $OUTP && ! seen tcp 198.51.100.0 $OUTP
ok $? "packet socket bypass closed: UDP/TCP frames from a port outside the slice never leave" "$R $R2 $(cat "$T/sniff.log")"
is "$R" ENOBUFS "packet socket bypass closed: the sender sees the drop (ENOBUFS)"
! seen arp 198.51.100.0 - ; ok $? "packet socket bypass closed: no ARP claiming an egress IP leaves" "$R3"
[ "$(enf drop_port)" -ge 2 ] && [ "$(enf drop_arp)" -ge 1 ]
ok $? "packet socket bypass closed: counted (drop_port $(enf drop_port), drop_arp $(enf drop_arp))"

# Raw sockets: netfilter refuses at once (EPERM); tc would catch them too.
R=$(xs $H raw udp 198.51.100.0 192.0.2.80 $((OUTP + 1)))
R2=$(xs $H raw tcp 198.51.100.0 192.0.2.80 $((OUTP + 2)))
sleep 0.3
[ "$R $R2" = "EPERM EPERM" ] && ! seen udp 198.51.100.0 $((OUTP + 1)) && ! seen tcp 198.51.100.0 $((OUTP + 2))
ok $? "raw socket from egress IP outside slice dropped (EPERM)" "$R $R2"

# Every protocol other than TCP/UDP/ICMP echo/ICMP errors, even from a port
# inside the slice (the router brings back only TCP/UDP/ICMP), and ICMP
# types that are not ours to send.
for k in sctp udplite dccp gre echo-reply timestamp; do pkt $k 198.51.100.0 192.0.2.80 $INP >/dev/null; done
R=$(pkt echo 198.51.100.0 192.0.2.80 $OUTP)
pkt echo 198.51.100.0 192.0.2.81 $INP >/dev/null
pkt unreach 198.51.100.0 192.0.2.80 $INP >/dev/null
pkt frag-next 198.51.100.0 192.0.2.81 $INP >/dev/null   # no first fragment went before it
pkt frag-first 198.51.100.0 192.0.2.82 $INP >/dev/null
pkt frag-next 198.51.100.0 192.0.2.82 $INP >/dev/null
wait_for "seen frag-next 198.51.100.0 - 192.0.2.82"
L=$(cat "$T/sniff.log")
! grep -qE "^(sctp|udplite|dccp|gre|echo-reply|timestamp) 198.51.100.0" "$T/sniff.log"
ok $? "SCTP/UDP-Lite/other proto counted: none of SCTP, UDP-Lite, DCCP, GRE, echo reply, timestamp leaves" "$L"
[ "$(enf drop_port_proto)" -ge 3 ] && [ "$(enf drop_proto)" -ge 1 ] && [ "$(enf drop_icmp_type)" -ge 2 ]
ok $? "SCTP/UDP-Lite/other proto counted: each under its reason (port_proto $(enf drop_port_proto), proto $(enf drop_proto), icmp_type $(enf drop_icmp_type))"
! seen echo 198.51.100.0 $OUTP && seen echo 198.51.100.0 $INP 192.0.2.81 && [ "$(enf drop_echo_id)" -ge 1 ]
ok $? "SCTP/UDP-Lite/other proto counted: echo identifier outside the slice dropped, inside passes" "$R $L"
seen unreach 198.51.100.0 $INP; ok $? "SCTP/UDP-Lite/other proto counted: ICMP errors leave"
! seen frag-next 198.51.100.0 - 192.0.2.81 && seen frag-next 198.51.100.0 - 192.0.2.82 && [ "$(enf drop_fragment)" -ge 1 ]
ok $? "SCTP/UDP-Lite/other proto counted: a later fragment leaves only behind its first" "$L"
R=$(xs $H raw sctp 198.51.100.0 192.0.2.80 $INP) R2=$(xs $H raw gre 198.51.100.0 192.0.2.80 0)
is "$R $R2" "EPERM EPERM" "SCTP/UDP-Lite/other proto counted: raw SCTP and GRE sends fail with EPERM"

# The user is told at once, not after a SYN timeout.
R=$(xs $H fastfail 198.51.100.0 $((OUTP + 10)) 192.0.2.80:8080)
is "$(echo "$R" | jq_ 'd["tcp"]')" ECONNREFUSED "out-of-slice connect fails fast with EPERM: TCP connect is refused (ECONNREFUSED)"
echo "$R" | jq_ 'd["tcp_s"] < 1' | grep -q True; ok $? "out-of-slice connect fails fast with EPERM: TCP in under 1 s" "$R"
is "$(echo "$R" | jq_ 'd["udp"]'),$(echo "$R" | jq_ 'd["ping"]')" "EPERM,EPERM" "out-of-slice connect fails fast with EPERM: UDP send and ping"

# Take netfilter away: tc alone still stops raw sockets.
xs nft delete table inet softunicast_agent
B0=$(enf drop_port)
R=$(xs $H raw udp 198.51.100.0 192.0.2.80 $((OUTP + 20)))
sleep 0.3
! seen udp 198.51.100.0 $((OUTP + 20)) && [ "$(enf drop_port)" -gt "$B0" ]
ok $? "raw socket from egress IP outside slice dropped: by tc when the nft table is gone ($R)"

# ---- recovery --------------------------------------------------------------------
kill -KILL $AGENT; wait $AGENT 2>/dev/null
check "recovery after wiped run dir: the killed agent left its tc program" sh -c "ip netns exec $S tc filter show dev s0 egress | grep -q enforce"
rm -rf "$RUN"
start_agent "$T/agent5.log"
grep -q "adopting what agent pid" "$T/agent5.log"
ok $? "recovery after wiped run dir: the new agent adopts from --state-dir" "$(cat "$T/agent5.log")"
OUT=$( (sleep 1) | xs $SU connect --tags service=api 192.0.2.80 8082 2>&1)
is "$OUT" "api" "recovery after wiped run dir: egress works"
kill -TERM $AGENT; wait $AGENT
host_clean "recovery after wiped run dir"
is "$(xs cat /proc/sys/net/ipv4/conf/s0/arp_announce)" "$ANNOUNCE0" "recovery after wiped run dir: arp_announce restored"
check "recovery after wiped run dir: the record is gone after a clean stop" sh -c "! ls $ST | grep -q json"

start_agent "$T/agent6.log"
kill -KILL $AGENT; wait $AGENT 2>/dev/null
rm -rf "$RUN" "$ST"
start_agent "$T/agent7.log"
grep -q "adopting 3 egress address(es) on s0 marked by a previous agent" "$T/agent7.log"
ok $? "recovery from the host alone (run and state dirs wiped): addresses found by their protocol" "$(cat "$T/agent7.log")"
grep -q "no record of that agent: arp_announce, tcp_tw_reuse, ip_local_port_range" "$T/agent7.log"
ok $? "recovery from the host alone: says which host values it cannot know" "$(cat "$T/agent7.log")"
kill -TERM $AGENT; wait $AGENT
# what it could not know: the values the killed agent changed
xs sysctl -qw net.ipv4.conf.s0.arp_announce="$ANNOUNCE0" net.ipv4.ip_local_port_range="$RANGE0" \
	net.ipv4.ip_local_reserved_ports="$RESERVED0" net.ipv4.tcp_tw_reuse="$TWREUSE0"
host_clean "recovery from the host alone"

# ---- a retired server ------------------------------------------------------------
NOW=$(date +%s)
$SU plan --fleet "$T/fleet.yaml" --out "$T/rplan" --now $((NOW - 700)) >/dev/null 2>&1
start_agent "$T/agent8.log" "$T/rplan"
ok $? "retired server applies plan and drains: agent up on plan 1" "$(cat "$T/agent8.log")"
rm -f "$T/go"
ip netns exec $S $HL live "$LIB" service=warp,country=GB 192.0.2.80:7007 "$T/go" >"$T/live2.out" 2>&1 &
LIVE=$!
PIDS+=($LIVE)
wait_for "grep -q 'got before' $T/live2.out"
sed 's/servers: {s1: 10.99.0.2, s2: 10.99.0.3}/servers: {s2: 10.99.0.3}/' "$T/fleet.yaml" >"$T/fleet-r.yaml"
# drain 10m from a "now" 588 s ago: the slices drain for 12 more seconds
NOW=$(date +%s)
$SU plan --fleet "$T/fleet-r.yaml" --previous "$T/rplan" --out "$T/rplan.new" --now $((NOW - 588)) >/dev/null 2>&1 &&
	mv "$T/rplan.new" "$T/rplan"
ok $? "retired server applies plan and drains: plan 2 without s1"
wait_for "grep -q '^serial 2' $RUN/assignment"
ok $? "retired server applies plan and drains: the agent applies it" "$(cat "$T/agent8.log")"
[ "$(grep -c '^egress .* active ' "$RUN/assignment")" = 0 ] && [ "$(grep -c '^egress .* draining ' "$RUN/assignment")" -ge 2 ]
ok $? "retired server applies plan and drains: every slice published as draining" "$(cat "$RUN/assignment")"
grep -q "server s1 is retired in plan serial 2" "$T/agent8.log"; ok $? "retired server applies plan and drains: logged" "$(cat "$T/agent8.log")"
xs $SU agent status --run-dir "$RUN" | grep -q "server RETIRED: slices draining"
ok $? "retired server applies plan and drains: status says so"
OUT=$(xs $SU connect --tags service=warp,country=GB 192.0.2.80 8080 </dev/null 2>&1); RC=$?
is "$RC" 5 "retired server applies plan and drains: no new connections" "$OUT"
touch "$T/go"; wait $LIVE
grep -q "got after" "$T/live2.out"; ok $? "retired server applies plan and drains: a live connection continues" "$(cat "$T/live2.out")"
wait_for "grep -q 'retired and drained' $T/agent8.log" || wait_for "grep -q 'retired and drained' $T/agent8.log"
ok $? "retired server applies plan and drains: at the deadline the agent removes its egress state" "$(cat "$T/agent8.log")"
check "retired server applies plan and drains: egress /32s removed" sh -c "! ip -n $S addr show s0 | grep -qE '198.51.100.0|203.0.113.0'"
is "$(grep -c '^egress' "$RUN/assignment")" 0 "retired server applies plan and drains: nothing published"
is "$(xs $SU agent status --json --run-dir "$RUN" | jq_ 'd["agent"]["drained"]')" True "retired server applies plan and drains: status --json drained"
kill -TERM $AGENT; wait $AGENT
host_clean "retired server stopped"

# ---- path options ----------------------------------------------------------------
ag() { xs $SU agent --plan "$1" --server s1 --iface "$2" --run-dir "$3" --state-dir "$4" 2>&1; }
OUT=$(ag "$T/plan" s0 "$T/nodir/run" "$ST"); RC=$?
[ $RC = 1 ] && echo "$OUT" | grep -qF -- "--run-dir $T/nodir/run: parent directory $T/nodir does not exist"
ok $? "path errors name path and option: --run-dir" "$OUT"
OUT=$(ag "$T/plan" s0 "$RUN" "$T/nodir/state"); RC=$?
[ $RC = 1 ] && echo "$OUT" | grep -qF -- "--state-dir $T/nodir/state: parent directory $T/nodir does not exist"
ok $? "path errors name path and option: --state-dir" "$OUT"
OUT=$(ag "$T/noplan" s0 "$RUN" "$ST"); RC=$?
[ $RC = 1 ] && echo "$OUT" | grep -qF -- "--plan $T/noplan: No such file or directory"
ok $? "path errors name path and option: --plan" "$OUT"
OUT=$(ag "$T/plan" nosuch0 "$RUN" "$ST"); RC=$?
[ $RC = 1 ] && echo "$OUT" | grep -qF -- "--iface nosuch0: no such interface"
ok $? "path errors name path and option: --iface" "$OUT"

echo "1..$N"
[ $FAILS = 0 ]
