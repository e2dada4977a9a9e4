#!/usr/bin/env bash
# End to end on the lab: every step of `softunicast lab run` as an assertion,
# a long-lived TCP stream that survives a plan reload on routers and agents,
# and nothing left behind after `lab down`.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SU=$ROOT/${SU_BUILD:-build}/bin/softunicast
# Its own namespace prefix and state directory: runs beside a demo lab.
export SOFTUNICAST_LAB_NS=sulT${SU_LAB_ID:-$$} SOFTUNICAST_LAB_DIR=/run/softunicast-labt-$$
STATE=$SOFTUNICAST_LAB_DIR
T=$(mktemp -d /tmp/su-lab-e2e.XXXXXX)
N=0 FAILS=0

skip_all() { echo "1..0 # SKIP $*"; rm -rf "$T"; exit 0; }
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, XDP, nftables)"
[ -x "$SU" ] || skip_all "$SU not built"
cleanup() { exec 7>&- 2>/dev/null; "$SU" lab down >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT

ok() { # ok STATUS DESCRIPTION [DIAGNOSTIC]
	N=$((N + 1))
	if [ "$1" = 0 ]; then echo "ok $N - $2"; else
		echo "not ok $N - $2"; FAILS=$((FAILS + 1))
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
	fi
}
x() { local ns=$1; shift; ip netns exec "$SOFTUNICAST_LAB_NS-$ns" "$@"; }
wait_for() { for _ in $(seq 100); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# The BIRD configuration docs/operator.md gives for a real edge is valid.
awk '/^BIRD 2 \(/ {f = 1} f && /^```$/ {if (++n == 2) exit; next} f && n == 1' \
	"$ROOT/docs/operator.md" >"$T/edge-bird.conf"
grep -q "protocol static egress" "$T/edge-bird.conf" && bird -p -c "$T/edge-bird.conf" >"$T/bird-p" 2>&1
ok $? "docs/operator.md: the BIRD 2 configuration of a real edge parses (bird -p)" "$(cat "$T/bird-p" 2>/dev/null)"

"$SU" lab down >/dev/null 2>&1 # a lab left over by an interrupted run
"$SU" lab up >"$T/up.log" 2>&1
UP=$?
ok $UP "lab up" "$(cat "$T/up.log")"
[ $UP = 0 ] || { echo "1..$N"; exit 1; } # nothing else can pass

# ---- BGP anycast (BIRD) as built ---------------------------------------------
"$SU" lab status --json >"$T/status.json" 2>"$T/status.err"
ok $? "lab status --json" "$(cat "$T/status.err")"
[ -s "$T/status.json" ] && jq -e '(.bgp.sessions | length) >= 8 and all(.bgp.sessions[]; .state == "up" and .info == "Established")' \
	"$T/status.json" >/dev/null
ok $? "every BGP session is established (DC-ISP and ISP-transit)" "$(jq -c .bgp.sessions "$T/status.json")"
[ -s "$T/status.json" ] && jq -e '.topology as $t | [.bgp.best[] | select(.from | startswith("isp"))] as $b | ($b | length) > 0 and
	all($b[]; .from as $f | .dc == ($t[] | select(.isp == $f) | .dc) and .as_path == [65000])' \
	"$T/status.json" >/dev/null
ok $? "each ISP's best path to every egress aggregate is its own DC (AS path 65000)" \
	"$(jq -c .bgp.best "$T/status.json")"
# The DCs announce the fleet's prefixes merged into aggregates, never an
# egress IP's /32, and never configure an egress IP (or a route to one) on the
# router host: packets to them must meet the XDP program, not the local stack.
awk '$1 == "prefix" && $NF != "retired" {print $2}' "$STATE/plan" | python3 -c '
import ipaddress, sys
print(" ".join(sorted(str(n) for n in ipaddress.collapse_addresses(ipaddress.ip_network(l.strip()) for l in sys.stdin))))' >"$T/aggregates"
# inside AGGREGATES-FILE: prints the networks read on stdin that lie inside an
# aggregate (with --strict: inside and smaller), exits 1 if there is one
inside() {
	python3 -c '
import ipaddress, sys
aggs = [ipaddress.ip_network(a) for a in open(sys.argv[1]).read().split()]
bad = [l for l in sys.stdin.read().split() if any(ipaddress.ip_network(l, strict=False).subnet_of(a) and
	(sys.argv[2:] != ["--strict"] or ipaddress.ip_network(l, strict=False) != a) for a in aggs)]
print(" ".join(bad)); sys.exit(1 if bad else 0)' "$@"
}
birdc -s "$STATE/bird/isp1.ctl" show route protocol dc >"$T/isp1-from-dc" 2>&1
awk '/^[0-9]/ {print $1}' "$T/isp1-from-dc" | inside "$T/aggregates" | tr ' ' '\n' | LC_ALL=C sort | paste -sd' ' >"$T/announced"
grep -q / "$T/aggregates" && cmp -s "$T/announced" "$T/aggregates"
ok $? "cdg announces the fleet's prefixes as aggregates ($(cat "$T/aggregates"))" \
	"announced: $(cat "$T/announced"); $(cat "$T/isp1-from-dc")"
for b in isp1 isp2; do birdc -s "$STATE/bird/$b.ctl" show route protocol dc; done >"$T/from-dcs" 2>&1
grep -q Table "$T/from-dcs" && awk '/^[0-9]/ {print $1}' "$T/from-dcs" | inside "$T/aggregates" --strict >"$T/bad"
ok $? "no more-specific of an egress aggregate is announced by a DC" "$(cat "$T/bad" "$T/from-dcs")"
for dc in cdg lhr; do
	x "$dc" ip -4 -o addr show; x "$dc" ip -4 route show table all
done >"$T/dc-net"
grep -q "local" "$T/dc-net" &&
	awk '{for (f = 1; f <= NF; f++) print $f}' "$T/dc-net" | grep -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+(/[0-9]+)?$' |
	inside "$T/aggregates" >"$T/bad"
ok $? "no egress IP and no route to one is configured on a router host" "$(cat "$T/bad" "$T/dc-net")"
[ -s "$T/status.json" ] && jq -e '[.processes[] | select(.name | startswith("bird-"))] | length == 5 and all(.[]; .running)' \
	"$T/status.json" >/dev/null
ok $? "a BIRD per DC, per ISP and on the transit, running" "$(jq -c .processes "$T/status.json")"
"$SU" lab status >"$T/status.txt" 2>&1
grep -q "Established" "$T/status.txt" && grep -Eq "isp1 +[0-9./]+ +cdg " "$T/status.txt"
ok $? "lab status shows the sessions and the best paths" "$(head -30 "$T/status.txt")"

# Every check of the story, renumbered into this test's plan.
"$SU" lab run --tap >"$T/run.tap" 2>&1
RUN=$?
while IFS= read -r line; do
	case $line in
	"ok "*) ok 0 "lab run: ${line#* - }" ;;
	"not ok "*) ok 1 "lab run: ${line#* - }" ;;
	esac
done <"$T/run.tap"
ok $RUN "lab run exits 0 when every step passed" "$(grep -v '^ok' "$T/run.tap" | tail -20)"
[ "$(grep -c '^ok' "$T/run.tap")" -ge 30 ]
ok $? "lab run checked at least 30 things"
grep -q "^ok .*converged on lhr (birdc show route)" "$T/run.tap" &&
	grep -q "^ok .*replies now land at lhr" "$T/run.tap"
ok $? "lab run withdrew cdg's announcement with birdc and the Internet converged on lhr"
[ "$(grep -Ec '^ok .*promtool check metrics passes$' "$T/run.tap")" = 8 ] ||
	grep -q '^ok .*promtool check metrics # SKIP' "$T/run.tap"
ok $? "lab run scraped the 8 metrics endpoints and promtool checked each (or said why not)"
grep -q "report: $STATE/report.html" "$T/run.tap" && [ -s "$STATE/report.html" ]
ok $? "lab run wrote the plan's report and printed its path"

# ---- a live stream across a plan reload --------------------------------------
ASSIGN=$STATE/run/lhr-s1/assignment
mkfifo "$T/in"
x lhr-1 env SOFTUNICAST_ASSIGNMENT=$ASSIGN "$SU" connect --tags service=cdn 192.0.2.20 7007 \
	<"$T/in" >"$T/out" 2>&1 &
STREAM=$!
exec 7>"$T/in"
echo before-reload >&7
wait_for "grep -qx before-reload $T/out"
ok $? "lhr-s1 has a live TCP session to the echo origin"

# lhr-s3 leaves, and a new prefix arrives: BIRD announces it from every DC.
{ grep -v 'lhr-s3:' "$ROOT/examples/lab.yaml"; printf '  - prefix: 198.18.0.0/28\n    tags: {service: cdn}\n'; } >"$T/fleet2.yaml"
"$SU" lab replan --fleet "$T/fleet2.yaml" >"$T/replan.log" 2>&1
ok $? "lab replan: lhr-s3 leaves the fleet, prefix 198.18.0.0/28 joins" "$(cat "$T/replan.log")"
wait_for "birdc -s $STATE/bird/isp1.ctl show route 198.18.0.0/28 all | grep -q 'BGP.community: (65000,1)'" &&
	wait_for "birdc -s $STATE/bird/isp2.ctl show route 198.18.0.0/28 all | grep -q 'BGP.community: (65000,2)'"
ok $? "the new prefix is announced, each ISP reaching it at its own DC" \
	"$(birdc -s "$STATE/bird/isp1.ctl" show route all 2>&1 | head -30)"
wait_for "grep -q 'reloading' $STATE/logs/router-lhr.log"
ok $? "router lhr reloaded the new plan" "$(tail -3 "$STATE/logs/router-lhr.log")"
# The serial of the replanned plan (lab run's move steps re-plan too).
SERIAL=$(awk '$1 == "serial" {print $2; exit}' "$STATE/plan")
wait_for "grep -q '^serial $SERIAL\$' $STATE/run/lhr-s1/assignment"
ok $? "agent lhr-s1 published the new plan" "$(head -5 "$ASSIGN")"
echo after-reload >&7
wait_for "grep -qx after-reload $T/out"
ok $? "the live session keeps working after the reload" "$(cat "$T/out")"
"$SU" show --plan "$STATE/plan" --server lhr-s3 --json | jq -e 'length > 0 and all(.[]; .state == "draining")' >/dev/null
ok $? "lhr-s3's slices are draining, not reused"
exec 7>&-
wait $STREAM 2>/dev/null

# ---- nothing left behind --------------------------------------------------------
"$SU" lab down >"$T/down.log" 2>&1
ok $? "lab down"
! ip netns list | grep -q "^$SOFTUNICAST_LAB_NS-"
ok $? "no lab namespace is left" "$(ip netns list)"
[ ! -e "$STATE" ] && ! grep -q "$STATE" /proc/mounts
ok $? "no state directory or bpf mount is left"
! pgrep -f "softunicast (router|agent) --plan $STATE" >/dev/null
ok $? "no router or agent process is left"
! pgrep -f "bird -f -c $STATE/" >/dev/null
ok $? "no BIRD process is left" "$(pgrep -af "bird -f -c $STATE/")"
"$SU" lab down >/dev/null 2>&1
ok $? "lab down again is harmless"

echo "1..$N"
[ $FAILS = 0 ]
