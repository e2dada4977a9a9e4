#!/usr/bin/env bash
# End to end, live moves (issue 10): the lab's steps 11 and 12 alone, on a
# lab of its own (real routers with XDP on veth, real agents, real TCP and
# UDP flows): an egress IP moved to another DC and a slice handed to another
# server of its DC, each under a live TCP stream (and a connected UDP flow);
# the new owner's second hop, its counters on every hop, new connections
# from the new owner at once, and the old flow refused and counted after the
# deadline.  Then nothing is left behind.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SU=$ROOT/${SU_BUILD:-build}/bin/softunicast
export SOFTUNICAST_LAB_NS=sulM${SU_LAB_ID:-$$} SOFTUNICAST_LAB_DIR=/run/softunicast-labm-$$
T=$(mktemp -d /tmp/su-moves-e2e.XXXXXX)
N=0

skip_all() { echo "1..0 # SKIP $*"; rm -rf "$T"; exit 0; }
[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, XDP, nftables)"
[ -x "$SU" ] || skip_all "$SU not built"
command -v python3 >/dev/null || skip_all "python3 needed (a late segment from the origin)"
cleanup() { "$SU" lab down >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT

ok() { # ok STATUS DESCRIPTION [DIAGNOSTIC]
	N=$((N + 1))
	if [ "$1" = 0 ]; then echo "ok $N - $2"; else
		echo "not ok $N - $2"
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
	fi
}

"$SU" lab down >/dev/null 2>&1 # a lab left over by an interrupted run
"$SU" lab up >"$T/up.log" 2>&1
ok $? "lab up" "$(tail -20 "$T/up.log")"

"$SU" lab run --only move --tap >"$T/run.tap" 2>&1
RUN=$?
while IFS= read -r line; do
	case $line in
	"ok "*) ok 0 "${line#* - }" ;;
	"not ok "*) ok 1 "${line#* - }" "$(grep -A3 -F -- "$line" "$T/run.tap" | tail -3)" ;;
	esac
done <"$T/run.tap"
ok $RUN "lab run --only move exits 0" "$(grep -v '^ok' "$T/run.tap" | tail -20)"
[ "$(grep -c '^ok' "$T/run.tap")" -ge 16 ]
ok $? "the move steps checked at least 16 things"

"$SU" lab down >"$T/down.log" 2>&1
ok $? "lab down" "$(cat "$T/down.log")"
left=$(ip netns list | grep -c "^$SOFTUNICAST_LAB_NS-")
ok "$([ "$left" = 0 ]; echo $?)" "no namespace left behind ($left)"
echo "1..$N"
