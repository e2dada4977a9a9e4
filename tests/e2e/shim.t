#!/usr/bin/env bash
# End to end: the LD_PRELOAD shim under an unmodified program (python's socket
# module calls libc's connect, bind, sendto, sendmsg and sendmmsg), in a
# private network namespace:
#   lo  198.51.100.7/32  this server's egress IP: slice 2048-4095, from an
#                        assignment written here (the agent's format)
#       192.0.2.10/32    the origin: TCP and UDP servers that log every peer
# Every way a program opens an IPv4 flow must leave from the slice or fail
# with a clear errno; the origin's logs are checked at the end: no flow from
# anywhere else.  The slice lies outside ip_local_port_range, so TCP uses
# select-test-repeat, the strategy that used to replace the caller's socket.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/${SU_BUILD:-build}
PRELOAD=$B/lib/libsoftunicast-preload.so
H="python3 $ROOT/tests/e2e/lib/su_e2e.py"
NS=su-shim-$$
T=$(mktemp -d /tmp/su-shim-e2e.XXXXXX)
. "$ROOT/tests/e2e/lib/tap.sh"
# Under `make asan` the shim carries the ASan runtime, which must come first.
ASAN_RT=$(ldd "$PRELOAD" 2>/dev/null | awk '/libasan/ {print $3}')

[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces)"
[ -e "$PRELOAD" ] || skip_all "$PRELOAD not built"
command -v python3 >/dev/null || skip_all "python3 not installed"
ip netns add $NS 2>/dev/null || skip_all "cannot create network namespaces"

cleanup() {
	for p in $(ip netns pids $NS 2>/dev/null); do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	ip netns del $NS 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

x() { ip netns exec $NS "$@"; }
LO=2048 HI=4095 EIP=198.51.100.7 ORG=192.0.2.10
x ip link set lo up
x ip addr add $EIP/32 dev lo
x ip addr add $ORG/32 dev lo
x sysctl -qw net.ipv4.ping_group_range="0 2147483647"
cat >"$T/assignment" <<A
softunicast-assignment 1
serial 1
server s1
egress $EIP $LO $HI active service=warp
A
# shim TAGS CMD...: CMD under the shim in the namespace
shim() {
	local tags=$1
	shift
	x env SOFTUNICAST_ASSIGNMENT="$T/assignment" SOFTUNICAST_TAGS="$tags" \
		LD_PRELOAD="${ASAN_RT:+$ASAN_RT }$PRELOAD" ${ASAN_RT:+ASAN_OPTIONS=detect_leaks=0} "$@"
}

x $H tcp-log $ORG:8080 $ORG:8091 $ORG:8092 $ORG:8093 $ORG:8094 >"$T/tcp.log" 2>&1 &
x $H udp-echo $ORG:5353 >"$T/udp.log" 2>&1 &
wait_for "grep -q ready $T/tcp.log && grep -q ready $T/udp.log"
ok $? "origin servers up"

# Each line: KIND:PORT|NAME|EXTRA CONDITION (python, on d).  20 flows of each
# kind must all leave from the slice, without an error.
PROBES='tcp:8080|IPv4 TCP through the shim|True
tcp-mapped:8080|ipv4-mapped v6 through the shim|True
udp-mapped:5353|ipv4-mapped v6 through the shim|True
udp-connected:5353|connected UDP through the shim|True
udp-sendto:5353|unconnected UDP sendto|True
udp-sendto-mapped:5353|unconnected UDP sendto|True
udp-sendmsg:5353|unconnected UDP sendmsg|True
udp-sendmmsg:5353|unconnected UDP sendmmsg|True
tcp-nonblocking:8080|non-blocking connect|d["extra"].get("einprogress") == 20
tcp-bind0:8080|bind to 0 then connect|True
tcp-bind0-mapped:8080|bind to 0 then connect|True
udp-bind0-sendto:5353|bind to 0 then sendto|True
tcp-fastopen:8080|TCP Fast Open sendto (an implicit connect)|True
ping-sendto:0|ping sendto: identifier in the slice, reply back|d["extra"].get("replies") == 20
options:8080|socket options survive select-test-repeat|d["extra"].get("kept") == 20
options-busy:8094|socket options survive select-test-repeat, slice 93% used toward dst|d["extra"].get("kept") == 20'
shim service=warp $H shim-probe $ORG 20 $(echo "$PROBES" | cut -d'|' -f1) >"$T/probe.out" 2>&1
RES=$(LO=$LO HI=$HI PROBES="$PROBES" python3 - "$T/probe.out" <<'PY'
import json, os, sys
lines = open(sys.argv[1]).read().splitlines()
got = {}
for l in lines:
    try:
        d = json.loads(l)
        got[d["kind"]] = d
    except ValueError:
        pass
for spec in os.environ["PROBES"].splitlines():
    kp, name, cond = spec.split("|")
    kind = kp.split(":")[0]
    d = got.get(kind)
    good = bool(d) and len(d["ports"]) == 20 and not d["errors"] and \
        all(int(os.environ["LO"]) <= p <= int(os.environ["HI"]) for p in d["ports"]) and eval(cond)
    print("%d|%s: 20 of 20 from the slice (%s)|%s" % (0 if good else 1, name, kind,
          json.dumps(d) if d else "no result: " + " ".join(lines[-3:])))
PY
)
while IFS='|' read -r st name diag; do ok "$st" "$name" "$diag"; done <<<"$RES"

OUT=$(shim service=warp env SOFTUNICAST_STRATEGY=str $H fork-probe $ORG 8091 3 8 2>&1)
echo "$OUT" | python3 -c "
import json, sys
w = json.load(sys.stdin)
ok = all(len(s) == 8 and all($LO <= p <= $HI for p in s) for s in w)
sys.exit(0 if ok and len({tuple(s) for s in w}) == len(w) else 1)" 2>/dev/null
ok $? "ports differ across forked workers" "$OUT"

OUT=$(shim service=none $H shim-probe $ORG 3 tcp:8080 udp-sendto:5353 udp-sendmsg:5353 2>&1)
echo "$OUT" | python3 -c "
import json, sys
ds = [json.loads(l) for l in sys.stdin]
sys.exit(0 if len(ds) == 3 and all(not d['ports'] and d['errors'] == {'No such process': 3}
                                   for d in ds) else 1)" 2>/dev/null
ok $? "no egress matches the tags: connect, sendto, sendmsg fail (ESRCH), nothing leaves" "$OUT"

# the servers log as they accept: on a loaded machine they may lag behind
wait_for "[ \$(cat $T/tcp.log $T/udp.log | grep -cv ready) -ge 2150 ]"
PEERS=$(grep -hv ready "$T/tcp.log" "$T/udp.log")
BAD=$(echo "$PEERS" | awk -F: -v ip=$EIP -v lo=$LO -v hi=$HI \
	'$1 != ip || $2 < lo || $2 > hi' | head -5)
[ -z "$BAD" ] && [ "$(echo "$PEERS" | wc -l)" -ge 2150 ]
ok $? "the origins saw $(echo "$PEERS" | wc -l) flows, every one from $EIP:$LO-$HI" "$BAD"

done_testing
