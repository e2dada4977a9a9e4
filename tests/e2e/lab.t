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

"$SU" lab down >/dev/null 2>&1 # a lab left over by an interrupted run
"$SU" lab up >"$T/up.log" 2>&1
ok $? "lab up" "$(cat "$T/up.log")"

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

grep -v 'lhr-s3:' "$ROOT/examples/lab.yaml" >"$T/fleet2.yaml"
"$SU" lab replan --fleet "$T/fleet2.yaml" >"$T/replan.log" 2>&1
ok $? "lab replan: lhr-s3 leaves the fleet" "$(cat "$T/replan.log")"
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
"$SU" lab down >/dev/null 2>&1
ok $? "lab down again is harmless"

echo "1..$N"
[ $FAILS = 0 ]
