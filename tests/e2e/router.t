#!/usr/bin/env bash
# End to end: the XDP router (native mode on veth) in network namespaces,
# real TCP and UDP flows whose return packets it must deliver.
#
#   org 10.100.0.10 (origin 192.0.2.10 on lo)
#    |                                   DC lhr
#   [fab: bridge br0] -- s1 10.100.0.11, s2 10.100.0.12 (servers)
#    |
#   lhr  e-lhr 10.100.0.1 (router lhr, XDP)    b-lhr 10.200.0.1/30 (XDP)
#                                                |  backbone
#   cdg  b-cdg 10.200.0.2/30 (router cdg, XDP)  e-cdg 10.101.0.1 (XDP)
#                                                |
#                                          c1 10.101.0.11  DC cdg
#
# Servers egress directly from (egress IP, port in their slice); the origin
# routes the whole egress prefix to lhr's router (anycast: lhr is nearest).
# Replies to lhr's IP go to the slice's server, replies to cdg's IP cross the
# backbone to cdg's router, which sends them to c1.  Servers decapsulate GUE
# with tests/e2e/lib/router_e2e.py (TUN), so a reply that arrives proves the
# router put it in the right server's tunnel.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/${SU_BUILD:-build}
SU=$B/bin/softunicast
H="python3 $ROOT/tests/e2e/lib/router_e2e.py"
ID=$$
FAB=su-fab-$ID ORG=su-org-$ID L=su-lhr-$ID C=su-cdg-$ID S1=su-s1-$ID S2=su-s2-$ID C1=su-c1-$ID
NSS="$FAB $ORG $L $C $S1 $S2 $C1"
T=$(mktemp -d /tmp/su-router-e2e.XXXXXX)
BPF=$T/bpf
PIDS=()
N=0 FAILS=0

skip_all() { echo "1..0 # SKIP $*"; rm -rf "$T"; exit 0; }
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, XDP, bpffs)"
for c in ip python3 ethtool clang; do
	command -v $c >/dev/null || skip_all "$c not installed"
done
[ -x "$SU" ] || skip_all "$SU not built"
[ -c /dev/net/tun ] || skip_all "no /dev/net/tun for the servers' GUE receivers"
ip netns add $FAB 2>/dev/null || skip_all "cannot create network namespaces"

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	# Everything started inside the test's namespaces, by pid.
	for ns in $NSS; do
		for p in $(ip netns pids $ns 2>/dev/null); do kill "$p" 2>/dev/null; done
	done
	wait 2>/dev/null
	for ns in $NSS; do ip netns del $ns 2>/dev/null; done
	umount "$BPF" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

ok() { # ok STATUS DESCRIPTION [DIAGNOSTIC]
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
x() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
bg() { "$@" & PIDS+=($!); }
wait_for() { for _ in $(seq 100); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
stat() { # stat NS DC COUNTER
	x "$1" "$SU" router stats --pin-dir "$BPF/$2" --json |
		python3 -c "import json,sys; print(json.load(sys.stdin)['counters']['$3'])"
}

# ---- topology -----------------------------------------------------------
printf '%s\n' '__attribute__((section("xdp"), used)) int xdp_pass(void *ctx) { return 2; }' \
	'char _license[] __attribute__((section("license"), used)) = "GPL";' >"$T/pass.c"
clang -O2 -target bpf -c "$T/pass.c" -o "$T/pass.o" 2>/dev/null || skip_all "clang -target bpf failed"
for ns in $NSS; do ip netns add $ns 2>/dev/null; x $ns ip link set lo up; done
x $FAB ip link add br0 type bridge
x $FAB ip link set br0 up
link() { # link NS IFACE ADDR/LEN -> port on the fabric bridge
	ip link add "$2" netns "$1" type veth peer name "p-$2" netns $FAB
	x "$1" ip link set "$2" up
	x "$1" ip addr add "$3" dev "$2"
	x $FAB ip link set "p-$2" master br0 up
	xdp_peer $FAB "p-$2"
}
# A veth hands XDP_TX/REDIRECT frames to its peer only when the peer runs
# XDP itself (xdp-tools tests do the same): give every peer an XDP_PASS.
xdp_peer() { x "$1" ip link set dev "$2" xdpdrv obj "$T/pass.o" sec xdp; }
# Checksum offload on veth leaves TCP/UDP checksums to "hardware" that never
# computes them; XDP forwards the bytes as they are.  Real NICs fill them in.
csum_off() { x "$1" ethtool -K "$2" tx off >/dev/null; }
link $ORG o0 10.100.0.10/24
link $L e-lhr 10.100.0.1/24
link $S1 s1 10.100.0.11/24
link $S2 s2 10.100.0.12/24
# The backbone and cdg's DC network carry jumbo-ish frames (MTU 1600), as
# the README asks: encapsulated full-size packets and fragments fit.
ip link add b-lhr netns $L mtu 1600 type veth peer name b-cdg netns $C mtu 1600
x $L ip link set b-lhr up; x $L ip addr add 10.200.0.1/30 dev b-lhr
x $C ip link set b-cdg up; x $C ip addr add 10.200.0.2/30 dev b-cdg
ip link add e-cdg netns $C mtu 1600 type veth peer name c1 netns $C1 mtu 1600
x $C ip link set e-cdg up; x $C ip addr add 10.101.0.1/24 dev e-cdg
x $C1 ip link set c1 up; x $C1 ip addr add 10.101.0.11/24 dev c1
xdp_peer $C1 c1
csum_off $ORG o0
for s in $S1:s1 $S2:s2 $C1:c1; do csum_off ${s%%:*} ${s##*:}; done

x $ORG ip addr add 192.0.2.10/32 dev lo
x $ORG ip route add 198.51.100.0/24 via 10.100.0.1
for s in $S1 $S2; do x $s ip route add 192.0.2.10/32 via 10.100.0.10; done
x $C1 ip route add default via 10.101.0.1
x $C ip route add default via 10.200.0.1
x $L ip route add 192.0.2.10/32 via 10.100.0.10
x $L ip route add 10.101.0.0/24 via 10.200.0.2
# The README's sysctls: forwarding (the FIB helper refuses otherwise),
# accept_local (a packet whose next hop is not resolved yet is handed to the
# kernel with the router's own address as source).
for ns in $L $C; do
	x $ns sysctl -qw net.ipv4.ip_forward=1
	x $ns sysctl -qw net.ipv4.conf.all.accept_local=1
	x $ns sysctl -qw net.ipv4.conf.all.rp_filter=0
	x $ns sysctl -qw net.ipv4.conf.all.send_redirects=0
	for i in $(x $ns ls /proc/sys/net/ipv4/conf); do
		x $ns sysctl -qw net.ipv4.conf.$i.accept_local=1 net.ipv4.conf.$i.rp_filter=0
	done
done

# ---- the plan -----------------------------------------------------------
cat >"$T/fleet.yaml" <<'YAML'
ports: {range: 1024-65535, slice: 2048}
drain: 10m
datacenters:
  lhr:
    router: 10.100.0.1
    servers: {s1: 10.100.0.11, s2: 10.100.0.12}
    egress:
      - {service: cdn}
  cdg:
    router: 10.200.0.2
    servers: {c1: 10.101.0.11}
    egress:
      - {service: cdn}
prefixes:
  - prefix: 198.51.100.0/28
    tags: {service: cdn}
YAML
"$SU" plan --fleet "$T/fleet.yaml" --out "$T/p1.plan" >/dev/null 2>&1 ||
	{ echo "1..0 # SKIP softunicast plan failed"; exit 0; }
# A second plan: server s3 joins lhr and takes a free slice of lhr's IP, so
# that IP's slot region changes while s1's slice stays.
sed 's/s2: 10.100.0.12}/s2: 10.100.0.12, s3: 10.100.0.13}/' "$T/fleet.yaml" >"$T/fleet2.yaml"
"$SU" plan --fleet "$T/fleet2.yaml" --previous "$T/p1.plan" --out "$T/p2.plan" >/dev/null 2>&1
cp "$T/p1.plan" "$T/plan"

# slice SERVER -> "IP LO" of the server's first slice
slice() {
	"$SU" show --plan "$T/p1.plan" --json | python3 -c "
import json,sys
for s in json.load(sys.stdin):
    if s['server'] == '$1': print(s['ip'], s['slice'][0]); break"
}
read -r E_L P_S1 <<<"$(slice s1)"
read -r _ P_S2 <<<"$(slice s2)"
read -r E_C P_C1 <<<"$(slice c1)"
echo "# lhr IP $E_L (s1 slice at $P_S1, s2 at $P_S2), cdg IP $E_C (c1 at $P_C1)"
FREE_PORT=60000 # slice 29: owned by nobody in either plan

for s in $S1:s1 $S2:s2 $C1:c1; do
	ns=${s%%:*}
	x $ns ip addr add $E_L/32 dev lo
	x $ns ip addr add $E_C/32 dev lo
	x $ns sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
	bg x $ns $H decap 6080 gue0 >/dev/null
	wait_for "x $ns ip link show gue0"
	x $ns ip link set gue0 up
	x $ns sysctl -qw net.ipv4.conf.gue0.rp_filter=0
done

mkdir -p "$BPF"
mount -t bpf bpf "$BPF" || skip_all "cannot mount a bpf filesystem"


# ---- routers ------------------------------------------------------------
run_router() { # run_router NS DC EDGE BACKBONE
	# ip netns exec execs the router: $! is the router's pid, for signals.
	ip netns exec "$1" "$SU" router --plan "$T/plan" --dc "$2" --iface "$3" \
		--backbone-iface "$4" --mode native --pin-dir "$BPF/$2" --persist \
		--icmp-rate 1000 --frag-table 256 \
		2>>"$T/router-$2.log" &
	RPID=$!
	PIDS+=($RPID)
	wait_for "grep -q attached $T/router-$2.log"
}
run_router $L lhr e-lhr b-lhr; LPID=$RPID
ok $? "router lhr attaches in native mode" "$(cat "$T/router-lhr.log")"
run_router $C cdg e-cdg b-cdg
ok $? "router cdg attaches in native mode" "$(cat "$T/router-cdg.log")"
x $L ip -d link show e-lhr | grep -q "prog/xdp "
ok $? "e-lhr carries a native XDP program"

# ---- flows --------------------------------------------------------------
bg x $ORG $H tcp-serve 192.0.2.10:8080 >/dev/null
bg x $ORG $H tcp-serve 192.0.2.10:8081 300000 >/dev/null
bg x $ORG $H udp-echo 192.0.2.10:7 >/dev/null
wait_for "x $ORG ss -ltn | grep -q :8081"

tcp_echo() { # tcp_echo NS SRC SPORT -> what came back
	x "$1" $H tcp-client "$2:$3" 192.0.2.10:8080 "hello $3" 2>"$T/tcp.err"
}
is "$(tcp_echo $S1 $E_L $((P_S1 + 1)))" "hello $((P_S1 + 1))" "TCP from s1's slice: the reply reaches s1" \
	"$(cat "$T/tcp.err")"

is "$(tcp_echo $S2 $E_L $((P_S2 + 1)))" "hello $((P_S2 + 1))" "TCP from s2's slice: the reply reaches s2"
is "$(tcp_echo $C1 $E_C $((P_C1 + 1)))" "hello $((P_C1 + 1))" \
	"TCP from cdg's IP: the reply crosses the backbone to c1"
is "$(x $S1 $H udp-ping $E_L:$((P_S1 + 2)) 192.0.2.10:7 5)" 5 "UDP from s1's slice: 5 of 5 echoes"
is "$(x $C1 $H udp-ping $E_C:$((P_C1 + 2)) 192.0.2.10:7 5)" 5 "UDP from c1 via the backbone: 5 of 5"
# 3000-byte datagrams come back in fragments: lhr forwards them all to cdg
# (remote IP: no port needed), cdg sends the first by its port and the
# later ones after it (fragment table); c1 reassembles them.
FF0=$(stat $C cdg frag_first) FL0=$(stat $C cdg frag_later)
is "$(x $C1 $H udp-ping $E_C:$((P_C1 + 9)) 192.0.2.10:7 3 3000)" 3 \
	"UDP 3000 bytes to c1: fragmented replies reassembled, 3 of 3"
[ "$(stat $C cdg frag_first)" -ge $((FF0 + 3)) ] && [ "$(stat $C cdg frag_later)" -ge $((FL0 + 3)) ]
ok $? "cdg routed first fragments by port and later ones by the fragment table"
# s2's tunnel must not see s1's flows: a reply sent to s2 would be dropped
# there (s2 has no such socket) and s1 would time out, as the first test shows.
is "$(x $S1 $H udp-ping $E_L:$((P_S2 + 3)) 192.0.2.10:7 2)" 0 \
	"UDP from s1 out of a port of s2's slice: the replies go to s2, not s1"

BYTES=$(x $S1 $H tcp-client $E_L:$((P_S1 + 4)) 192.0.2.10:8081 2>/dev/null)
is "$BYTES" 300000 "300 kB with full-size segments: PMTU discovery through the router"
FN=$(stat $L lhr icmp_frag_needed_sent)
[ "$FN" -gt 0 ]; ok $? "the router answered fragmentation needed ($FN)"

before=$(stat $L lhr drop_foreign_router)
x $ORG $H gue 10.100.0.10 10.100.0.1 6080 $E_L $((P_S1 + 5))
after=$(stat $L lhr drop_foreign_router)
is "$((after - before))" 1 "GUE from a host that is not a plan router is dropped and counted"

snap() { x $L "$SU" router stats --pin-dir "$BPF/lhr" --json; }
drops() { python3 -c "import json,sys; c=json.load(sys.stdin)['counters']; print(sum(v for k,v in c.items() if k.startswith('drop_')))"; }
diff_counters() { # what changed between two stats snapshots
	python3 -c "import json,sys; a=json.loads(sys.argv[1])['counters']; b=json.loads(sys.argv[2])['counters']; print(' '.join('%s+%d' % (k, b[k]-a[k]) for k in a if b[k] != a[k]))" "$1" "$2"
}

# ---- unsolicited traffic to an egress IP is refused and counted ----------
# s1 listens on a wildcard address with a port of its slice (a listener that
# was never bound to the egress IP).  Egress IPs carry return traffic only:
# a connection opened from the Internet must not reach it, at lhr's IP nor
# at cdg's (refused before the backbone).  The SYNs are built by hand: on
# veth a kernel socket's SYN may bypass the peer's native XDP (and then die
# in lhr's kernel, which has no route to the egress IPs), proving nothing.
UP=$((P_S1 + 10))
bg x $S1 $H tcp-serve 0.0.0.0:$UP >/dev/null
UPID=$!
wait_for "x $S1 ss -ltn | grep -q :$UP"
x $S1 nstat -n
before=$(stat $L lhr drop_unsolicited_syn)
for i in 1 2 3; do x $ORG $H tcp-raw 192.0.2.10 $E_L:$UP 0x02; done
sleep 0.3
after=$(stat $L lhr drop_unsolicited_syn)
is "$((after - before))" 3 "unsolicited: SYNs to a wildcard listener in s1's slice are refused at lhr"
is "$(x $S1 nstat -z TcpInSegs | awk '/TcpInSegs/ {print $2}')" 0 \
	"unsolicited: s1 saw none of them"
before=$after
x $ORG $H tcp-raw 192.0.2.10 $E_C:$((P_C1 + 10)) 0x02
x $ORG $H tcp-raw 192.0.2.10 $E_L:$UP 0x01 # FIN probe
sleep 0.3
after=$(stat $L lhr drop_unsolicited_syn)
is "$((after - before))" 1 "unsolicited: a SYN to cdg's IP is refused at lhr, before the backbone"
is "$(stat $L lhr drop_tcp_no_ack)" 1 "unsolicited: a FIN probe (no ACK) is refused"
# The listener holds its port on every address of s1: a later test binding
# E_L:$UP would fail in bind(), before sending anything (the router would
# see no packet at all).  Gone with its test; later tests use ports of
# their own (P_S1 + 11 and up).
kill $UPID 2>/dev/null; wait $UPID 2>/dev/null

# ---- GUE cannot be injected from the Internet -----------------------------
# The origin claims cdg's router address and sends GUE straight to c1 (whose
# decap trusts plan routers); lhr's edge sits on the way and drops it: e-lhr
# is the DC side, where no peer router's packet can come from.
x $ORG ip addr add 10.200.0.2/32 dev lo
x $ORG ip route add 10.101.0.0/24 via 10.100.0.1
before=$(stat $L lhr drop_spoof_router)
x $ORG $H gue 10.200.0.2 10.101.0.11 6080 $E_C $((P_C1 + 5))
after=$(stat $L lhr drop_spoof_router)
is "$((after - before))" 1 "spoof: GUE to a server with a plan router's source is dropped at the edge"
# Another host than a plan router (the origin itself): GUE past the router.
before=$(stat $L lhr drop_gue_injected)
x $ORG $H gue 192.0.2.10 10.101.0.11 6080 $E_C $((P_C1 + 5))
after=$(stat $L lhr drop_gue_injected)
is "$((after - before))" 1 "spoof: GUE to a server from any other host is dropped at the edge"
x $ORG ip route del 10.101.0.0/24 via 10.100.0.1
x $ORG ip addr del 10.200.0.2/32 dev lo

# ---- plan addresses as sources: only from the side they are reached on ----
# lhr reaches its servers through e-lhr and cdg's router through b-lhr (the
# routes say so; the router logs it).  A DC server's or an egress IP's
# source arriving over the backbone, or a peer router's arriving at the
# edge (not GUE either), is forged: each dropped under its own reason.
grep -q "e-lhr: DC side" "$T/router-lhr.log" && grep -q "b-lhr: backbone side" "$T/router-lhr.log"
ok $? "spoof: lhr takes e-lhr for the DC side and b-lhr for the backbone side" \
	"$(grep -E "e-lhr:|b-lhr:" "$T/router-lhr.log")"
forged() { # forged NS SRC DST:PORT COUNTER -> how much COUNTER rose for one SYN-ACK
	local b a
	b=$(stat $L lhr "$4")
	x "$1" ip addr add "$2/32" dev lo
	x "$1" $H tcp-raw "$2" "$3" 0x12
	x "$1" ip addr del "$2/32" dev lo
	sleep 0.2
	a=$(stat $L lhr "$4")
	echo $((a - b))
}
is "$(forged $C 10.100.0.11 $E_L:$((P_S1 + 16)) drop_spoof_server)" 1 \
	"spoof: s1's address as source over the backbone is dropped (drop_spoof_server)"
is "$(forged $C $E_L 192.0.2.10:8080 drop_spoof_egress)" 1 \
	"spoof: lhr's egress IP as source over the backbone is dropped (drop_spoof_egress)"
is "$(forged $ORG 10.200.0.2 $E_L:$((P_S1 + 16)) drop_spoof_router)" 1 \
	"spoof: cdg's router address as source at the edge (not GUE) is dropped (drop_spoof_router)"

out=$("$SU" router --plan "$T/plan" --dc lhr --iface lo --icmp-rate 1x 2>&1)
rc=$?
[ $rc = 2 ] && grep -q -- "--icmp-rate '1x'" <<<"$out"
ok $? "--icmp-rate: a bad value is refused by name (exit 2)" "exit $rc: $out"

[ "$(stat $L lhr fwd_remote)" -gt 0 ]; ok $? "lhr counted packets forwarded to cdg's router"
[ "$(stat $C cdg backbone_in)" -gt 0 ]; ok $? "cdg counted packets accepted from the backbone"
[ "$(stat $C cdg drop_loop)" = 0 ]; ok $? "no loop drops"
x $L "$SU" router stats --pin-dir "$BPF/lhr" --plan "$T/plan" >"$T/stats.txt" 2>&1
grep -Eq "^10\.100\.0\.11 +s1 +[1-9]" "$T/stats.txt"; ok $? "stats name s1 as a target" \
	"$(cat "$T/stats.txt")"
grep -Eq "^10\.200\.0\.2 +router:cdg +[1-9]" "$T/stats.txt"; ok $? "stats name cdg's router as a target"

# ---- reload under traffic -------------------------------------------------
# 4000 datagrams to s1 while the plan flips between two versions that change
# lhr's IP (s3 joins and leaves): every flip must be atomic, nothing dropped.
fwd() { python3 -c "import json,sys; print(json.load(sys.stdin)['counters']['fwd_local'])"; }
S0=$(snap)
x $S1 $H udp-count $E_L:$((P_S1 + 6)) 2 >"$T/count" &
CPID=$!
wait_for "grep -q ready $T/count"
x $ORG $H udp-send 192.0.2.10 $E_L:$((P_S1 + 6)) 4000 2000 &
SPID=$!
for i in 1 2 3 4 5 6; do
	sleep 0.25
	if [ $((i % 2)) = 1 ]; then cp "$T/p2.plan" "$T/plan.new"; else cp "$T/p1.plan" "$T/plan.new"; fi
	mv "$T/plan.new" "$T/plan" # atomic replace: the router reloads on the rename
done
kill -HUP $LPID 2>/dev/null; sleep 0.2
wait $SPID
wait $CPID
S9=$(snap)
RELOADS=$(grep -c "changed: reloading\|SIGHUP: reloading" "$T/router-lhr.log")
[ "$RELOADS" -ge 4 ]; ok $? "the router reloaded on file changes and SIGHUP ($RELOADS)" \
	"$(tail -5 "$T/router-lhr.log")"
is "$(($(drops <<<"$S9") - $(drops <<<"$S0")))" 0 "no packet dropped by the router during the reloads" \
	"$(diff_counters "$S0" "$S9")"
[ "$(($(fwd <<<"$S9") - $(fwd <<<"$S0")))" -ge 4000 ]; ok $? "all 4000 forwarded to a server"
is "$(tail -1 "$T/count")" 4000 "s1 received all 4000"

# The reply (SYN-ACK) is built by hand, as the unsolicited SYNs above: a
# kernel socket's segment may skip the native XDP of a veth peer.
before=$(stat $L lhr drop_no_slice)
x $ORG $H tcp-raw 192.0.2.10 $E_L:$FREE_PORT 0x12
sleep 0.3
after=$(stat $L lhr drop_no_slice)
[ "$after" -gt "$before" ]; ok $? "a reply to a port in no slice is dropped and counted" \
	"drop_no_slice $before -> $after"


# ---- restart keeps forwarding --------------------------------------------
cp "$T/p1.plan" "$T/plan"
kill -TERM $LPID; wait $LPID 2>/dev/null
x $L ip -d link show e-lhr | grep -q "prog/xdp "
ok $? "--persist: the program stays attached after the router exits"
is "$(tcp_echo $S1 $E_L $((P_S1 + 7)))" "hello $((P_S1 + 7))" "forwarding continues with no router process"
: >"$T/router-lhr.log"
run_router $L lhr e-lhr b-lhr; LPID=$RPID
ok $? "a new router process takes over the pinned maps"
is "$(tcp_echo $S1 $E_L $((P_S1 + 8)))" "hello $((P_S1 + 8))" "forwarding after the restart"

# ---- detach ---------------------------------------------------------------
kill -TERM $LPID; wait $LPID 2>/dev/null
x $L "$SU" router detach --pin-dir "$BPF/lhr" >/dev/null 2>&1
ok $? "router detach"
! x $L ip -d link show e-lhr | grep -q "prog/xdp " && [ ! -e "$BPF/lhr/su_ips" ]
ok $? "detach removed the program and the pins"

# ---- issue 8 §2 and §5: plan maps and start-up checks (router-sync) --------
# One block: maps sized from the plan and re-created when the pins of an
# earlier run do not fit, and the loader's checks of the interfaces, each on
# a router namespace of its own (SC, its veth peer in SP).
SC=su-sc-$ID SP=su-sp-$ID
NSS="$NSS $SC $SP"
ip netns add $SC; ip netns add $SP
ip link add v-sc netns $SC type veth peer name v-sp netns $SP
x $SC ip link set v-sc up; x $SP ip link set v-sp up
x $SC ip addr add 10.100.0.1/24 dev v-sc
xdp_peer $SP v-sp
x $SC sysctl -qw net.ipv4.ip_forward=1
sc_router() { # sc_router PIN-NAME ARGS... -> exit status; output in $T/sc.log
	x $SC "$SU" router --plan "$T/p1.plan" --dc lhr --pin-dir "$BPF/$1" --once "${@:2}" \
		>"$T/sc.log" 2>&1
}
sc_detach() { x $SC "$SU" router detach --pin-dir "$BPF/$1" >/dev/null 2>&1; }
skip() { N=$((N + 1)); echo "ok $N # SKIP $*"; }

# Pins of an earlier run with other sizes (here: a per-CPU target table of
# 65,536, the old fixed size) are replaced by maps sized from the plan, and
# forwarding goes on meanwhile.
: >"$T/router-lhr.log"
run_router $L lhr e-lhr b-lhr; LPID=$RPID
wait_for "grep -q attached $T/router-lhr.log" # a slow (sanitizer) build gets more time
kill -TERM $LPID; wait $LPID 2>/dev/null
rm -f "$BPF/lhr/su_targets"
bpftool map create "$BPF/lhr/su_targets" type percpu_hash key 4 value 48 entries 65536 \
	name su_targets 2>&1
: >"$T/router-lhr.log"
run_router $L lhr e-lhr b-lhr; LPID=$RPID
wait_for "grep -q attached $T/router-lhr.log"
grep -q "re-created and re-pinned" "$T/router-lhr.log"
ok $? "pinned maps of another size are re-created and re-pinned" \
	"$(ls "$BPF/lhr"; cat "$T/router-lhr.log")"
ENTRIES=$(bpftool map show pinned "$BPF/lhr/su_targets" 2>/dev/null | grep -o "max_entries [0-9]*")
[ -n "$ENTRIES" ] && [ "$ENTRIES" != "max_entries 65536" ]
ok $? "the per-CPU target table is sized from the DC, not 65,536 ($ENTRIES)"
# Kind: a restart that replaces pins must leave the attached program using
# exactly the maps pinned afterwards (and the sync must have filled those),
# whatever the restart re-creates: here a re-created su_targets; below the
# same sizes, a larger plan and a smaller one.  Each forwards a TCP flow on
# a port no other test uses.
uses_pins() { # does the program on e-lhr and b-lhr use every pinned map of lhr?
	local id maps m pid
	id=$(x $L ip -d link show e-lhr | grep -o "prog/xdp id [0-9]*" | awk '{print $3}')
	[ -n "$id" ] && x $L ip -d link show b-lhr | grep -q "prog/xdp id $id " || return 1
	maps=" $(bpftool prog show id "$id" | grep -o "map_ids [0-9,]*" | cut -d' ' -f2 | tr , ' ') "
	for m in su_ips su_ipv su_slots su_routers su_targets su_stats; do # su_meta: userspace only
		pid=$(bpftool map show pinned "$BPF/lhr/$m" | awk -F: 'NR == 1 {print $1}')
		[ -n "$pid" ] && [[ $maps == *" $pid "* ]] || { echo "$m (map $pid) not in$maps"; return 1; }
	done
}
restart_forwards() { # restart_forwards DESC PORT
	uses_pins >"$T/pins" 2>&1
	ok $? "restart, $1: the attached program uses the pinned maps" "$(cat "$T/pins")"
	is "$(tcp_echo $S1 $E_L "$2")" "hello $2" "restart, $1: forwarding through the maps" \
		"$(cat "$T/tcp.err"; tail -5 "$T/router-lhr.log")"
}
restart_forwards "su_targets of another layout re-created" $((P_S1 + 12))
# The same plan again: every pin reused, nothing re-created.
kill -TERM $LPID; wait $LPID 2>/dev/null
: >"$T/router-lhr.log"
run_router $L lhr e-lhr b-lhr; LPID=$RPID
! grep -q "re-created and re-pinned" "$T/router-lhr.log" && grep -q attached "$T/router-lhr.log"
ok $? "restart, same sizes: every pinned map reused" "$(cat "$T/router-lhr.log")"
restart_forwards "same sizes" $((P_S1 + 13))
bpftool map show pinned "$BPF/lhr/su_ips" 2>/dev/null | grep -q "flags 0x1"
ok $? "the egress IP map is not preallocated (BPF_F_NO_PREALLOC: replaced entries are new elements)"
grep -q "maps: ips" "$T/router-lhr.log"; ok $? "the router reports its map sizes and memory at start"
# A reload that does not fit is refused before anything changes: the old
# plan keeps forwarding.  Shrink the IP map under the router to force it.
python3 - "$T/p1.plan" "$T/big.plan" <<'PY'
import ipaddress, sys
src = open(sys.argv[1]).read().splitlines()
out, extra = [], []
for i in range(5000):
    a = ipaddress.IPv4Address("100.64.0.0") + i
    extra.append("ip %s cdg 100.64.0.0/19 service=cdn service=cdn active" % a)
for l in src:
    if l.startswith("serial "):
        l = "serial 99"
    if l.startswith("end "):
        continue
    if l.startswith("ip ") and extra:
        out.extend(extra); extra = []
    out.append(l)
pfx = [i for i, l in enumerate(out) if l.startswith("prefix ")][0]
out.insert(pfx, "prefix 100.64.0.0/19 service=cdn *")
out.append("end %d" % len([l for l in out if l and not l.startswith("#")]))
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
if "$SU" show --plan "$T/big.plan" >/dev/null 2>&1; then
	cp "$T/big.plan" "$T/plan.new"; mv "$T/plan.new" "$T/plan"
	wait_for "grep -q 'plan serial 99' $T/router-lhr.log"
	grep "plan serial 99" "$T/router-lhr.log" | grep -q "restart the router to resize"
	ok $? "a plan larger than the maps is refused with a clear error" "$(tail -3 "$T/router-lhr.log")"
	is "$(tcp_echo $S1 $E_L $((P_S1 + 11)))" "hello $((P_S1 + 11))" "the old plan keeps forwarding"
	kill -TERM $LPID; wait $LPID 2>/dev/null
	: >"$T/router-lhr.log"
	run_router $L lhr e-lhr b-lhr; LPID=$RPID
	grep -q "re-created and re-pinned" "$T/router-lhr.log" && grep -q "plan serial 99" "$T/router-lhr.log"
	ok $? "a restart resizes the maps and applies it" "$(cat "$T/router-lhr.log")"
	restart_forwards "larger plan (maps re-created bigger)" $((P_S1 + 14))
	# Back to the small plan: the IP map is now more than four times
	# too big for it and is re-created smaller.
	kill -TERM $LPID; wait $LPID 2>/dev/null
	cp "$T/p1.plan" "$T/plan"
	: >"$T/router-lhr.log"
	run_router $L lhr e-lhr b-lhr; LPID=$RPID
	grep -q "re-created and re-pinned" "$T/router-lhr.log"
	ok $? "restart, smaller plan: the maps are re-created smaller" "$(cat "$T/router-lhr.log")"
	restart_forwards "smaller plan (maps re-created smaller)" $((P_S1 + 15))
else
	for _ in 1 2 3 4 5 6 7 8; do skip "the big plan does not parse"; done
fi
kill -TERM $LPID; wait $LPID 2>/dev/null

# MTU too large for native XDP: the limit and the way out, not ERANGE.
x $SC ip link set v-sc mtu 9000; x $SP ip link set v-sp mtu 9000
sc_router s1 --iface v-sc --mode native
RC=$?
[ $RC != 0 ] && grep -q "too large for native XDP" "$T/sc.log" && grep -q -- "--mode skb" "$T/sc.log" &&
	! grep -q "Numerical result out of range$" "$T/sc.log"
ok $? "MTU 9000 on veth: refused naming the limit and the way out" "$(cat "$T/sc.log")"
x $SC ip link set v-sc mtu 1500 # the peer's stays 9000: only the attach can tell
sc_router s1 --iface v-sc --mode native
[ $? != 0 ] && grep -q "limit is [0-9]* bytes" "$T/sc.log"
ok $? "a veth peer with MTU 9000: the attach error names the limit" "$(cat "$T/sc.log")"
x $SP ip link set v-sp mtu 1500

# 802.1Q tags stripped by the NIC with VLAN devices on top: refused.
if x $SC ip link add link v-sc name v-sc.100 type vlan id 100 2>/dev/null; then
	x $SC ethtool -K v-sc rxvlan on >/dev/null 2>&1
	sc_router s2 --iface v-sc
	[ $? != 0 ] && grep -q "ethtool -K v-sc rxvlan off" "$T/sc.log"
	ok $? "rx-vlan-offload with VLAN uppers: refused naming ethtool -K rxvlan off" "$(cat "$T/sc.log")"
	x $SC ip link del v-sc.100
else
	skip "this kernel has no 802.1Q devices (8021q)"
fi

# Generic mode runs after GRO: GRO is turned off, and the router says so.
x $SC ethtool -K v-sc gro on >/dev/null 2>&1
sc_router s3 --iface v-sc --mode skb
RC=$?
[ $RC = 0 ] && grep -q "GRO turned off" "$T/sc.log" && x $SC ethtool -k v-sc | grep -q "^generic-receive-offload: off"
ok $? "--mode skb: GRO turned off and said" "$(cat "$T/sc.log")"
sc_detach s3

# A veth peer with TX checksum offload (here in the same namespace) leaves
# TCP checksums unfilled: turned off, naming the knob; one in another
# namespace is warned about.
x $SC ip link add v-bb type veth peer name v-bbp
x $SC ip link set v-bb up; x $SC ip link set v-bbp up
x $SC ethtool -K v-bbp tx on >/dev/null 2>&1
sc_router s4 --iface v-sc --backbone-iface v-bb
RC=$?
[ $RC = 0 ] && grep -q "ethtool -K v-bbp tx off" "$T/sc.log" &&
	x $SC ethtool -k v-bbp | grep -q "^tx-checksumming: off"
ok $? "TX checksum offload on a veth peer: turned off, naming ethtool -K tx off" "$(cat "$T/sc.log")"
grep -q "v-sc is a veth whose peer is in another namespace" "$T/sc.log"
ok $? "a veth peer in another namespace: warned, naming ethtool -K DEV tx off"

# detach must not detach a router that started in between: s4's router is
# replaced on v-sc by another one (own pins s5); detaching s4 leaves s5.
sc_router s5 --iface v-sc
ID5=$(x $SC ip -d link show v-sc | grep -o "prog/xdp id [0-9]*")
sc_detach s4
[ -n "$ID5" ] && [ "$(x $SC ip -d link show v-sc | grep -o "prog/xdp id [0-9]*")" = "$ID5" ] &&
	[ ! -e "$BPF/s4/su_ips" ]
ok $? "router detach leaves a router that started in between (its own pins only)"
sc_detach s5
! x $SC ip -d link show v-sc | grep -q "prog/xdp "
ok $? "and detaching that one removes it"

# Servers behind a Linux bridge on the router: the bridge cannot take XDP
# redirects, so the router refuses to start and says why.
x $SC ip link add br-sc type bridge
x $SC ip link add d-sc type dummy
x $SC ip link set d-sc master br-sc
x $SC ip link set d-sc up; x $SC ip link set br-sc up
x $SC ip addr add 10.99.0.1/24 dev br-sc
x $SC ip route add 10.100.0.12/32 dev br-sc
sc_router s6 --iface v-sc
[ $? != 0 ] && grep -q "10.100.0.12 is reached through br-sc, which cannot take XDP redirects" "$T/sc.log"
ok $? "a next hop through a Linux bridge: refused at start" "$(cat "$T/sc.log")"
! x $SC ip -d link show v-sc | grep -q "prog/xdp "
ok $? "and nothing was attached"

# ---- PTB end to end: a smaller MTU between two routers (issue 8 §3) ------
# PR routes lhr's plan; cdg's router (10.200.0.2, in PP) is two hops away,
# through PM whose link to PP has MTU 1400.  PM answers a DF GUE packet of
# PR's that does not fit with ICMP fragmentation needed (MTU 1400) to PR's
# address; PR's XDP lowers that target's tunnel MTU (su_pmtu), and a DF
# packet of the origin (PO) that no longer fits once encapsulated is
# answered by PR itself with the tunnel MTU - 28, which the origin's kernel
# then uses for the egress IP.
PR=su-pr-$ID PO=su-po-$ID PM=su-pm-$ID PP=su-pp-$ID
NSS="$NSS $PR $PO $PM $PP"
for ns in $PR $PO $PM $PP; do ip netns add $ns; x $ns ip link set lo up; done
ip link add r-e netns $PR type veth peer name o-r netns $PO
ip link add r-b netns $PR mtu 1600 type veth peer name m-r netns $PM mtu 1600
ip link add m-p netns $PM mtu 1400 type veth peer name p-m netns $PP mtu 1400
x $PR ip addr add 10.100.0.1/24 dev r-e; x $PR ip link set r-e up
x $PR ip addr add 10.210.0.1/30 dev r-b; x $PR ip link set r-b up
x $PO ip addr add 10.100.0.10/24 dev o-r; x $PO ip link set o-r up
x $PM ip addr add 10.210.0.2/30 dev m-r; x $PM ip link set m-r up
x $PM ip addr add 10.211.0.1/30 dev m-p; x $PM ip link set m-p up
x $PP ip addr add 10.211.0.2/30 dev p-m; x $PP ip link set p-m up
x $PP ip addr add 10.200.0.2/32 dev lo
xdp_peer $PO o-r; xdp_peer $PM m-r
csum_off $PO o-r
x $PO ip route add 198.51.100.0/24 via 10.100.0.1
x $PR ip route add 10.200.0.2/32 via 10.210.0.2
x $PM ip route add 10.200.0.2/32 via 10.211.0.2
x $PM ip route add 10.100.0.0/24 via 10.210.0.1
x $PP ip route add default via 10.211.0.1
for ns in $PR $PM; do
	x $ns sysctl -qw net.ipv4.ip_forward=1
	for i in $(x $ns ls /proc/sys/net/ipv4/conf); do
		x $ns sysctl -qw net.ipv4.conf.$i.accept_local=1 net.ipv4.conf.$i.rp_filter=0
	done
done
x $PR "$SU" router --plan "$T/p1.plan" --dc lhr --iface r-e --backbone-iface r-b --mode native \
	--pin-dir "$BPF/ptb" --once >"$T/ptb.log" 2>&1
ok $? "PTB: router up between the origin and a narrower backbone hop" "$(cat "$T/ptb.log")"
pstat() { x $PR "$SU" router stats --pin-dir "$BPF/ptb" --json |
	python3 -c "import json,sys; print(json.load(sys.stdin)['counters']['$1'])"; }
# Resolve PR's next hops first (a neighbour miss goes through the kernel,
# which would fragment or answer by itself).
x $PO ping -c1 -W1 10.100.0.1 >/dev/null 2>&1
x $PR ping -c1 -W1 10.210.0.2 >/dev/null 2>&1
x $PO $H udp-df $E_C:$((P_C1 + 20)) 200 >/dev/null
sleep 0.3
L0=$(pstat tunnel_pmtu_lowered) F0=$(pstat icmp_frag_needed_sent)
is "$(x $PO $H udp-df $E_C:$((P_C1 + 20)) 1450)" sent "PTB: a 1450-byte DF datagram leaves the origin"
wait_for "[ \$(pstat tunnel_pmtu_lowered) -gt $L0 ]"
ok $? "PTB: PM's frag-needed about PR's own GUE lowers the target's tunnel MTU" \
	"tunnel_pmtu_lowered $L0 -> $(pstat tunnel_pmtu_lowered)"
sleep 0.3 # the next-hop cache (25 jiffies) expires: the PMTU applies
x $PO $H udp-df $E_C:$((P_C1 + 20)) 1450 >/dev/null
sleep 0.3
[ "$(pstat icmp_frag_needed_sent)" -gt "$F0" ]
ok $? "PTB: the next DF datagram that no longer fits is answered by the router" \
	"icmp_frag_needed_sent $F0 -> $(pstat icmp_frag_needed_sent)"
x $PO ip route get $E_C | grep -q "mtu 1372"
ok $? "PTB: the origin now uses the tunnel MTU - 28 (1372) for the egress IP" \
	"$(x $PO ip route get $E_C)"
is "$(x $PO $H udp-df $E_C:$((P_C1 + 20)) 1450)" "error: Message too long" \
	"PTB: and refuses a 1450-byte DF datagram to it"
is "$(x $PO $H udp-df $E_C:$((P_C1 + 20)) 1372)" sent "PTB: 1372 bytes still go"
x $PR "$SU" router detach --pin-dir "$BPF/ptb" >/dev/null 2>&1

echo "1..$N"
[ $FAILS = 0 ]
