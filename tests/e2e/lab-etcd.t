#!/usr/bin/env bash
# End to end: the lab on etcd (`softunicast lab up --store etcd`): a 3-member
# cluster on the lab's management network, every router and agent following
# it.  The whole story of `lab run` as assertions, on routers and agents fed
# by the store, with its etcd steps (E1-E4: drain/undrain, a move reaching
# every node, members down and back, a version never committed); then a
# re-plan through the store, and nothing left behind after `lab down`.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SU=$ROOT/${SU_BUILD:-build}/bin/softunicast
. "$ROOT/tests/e2e/lib/tap.sh"
# Its own namespace prefix and state directory: runs beside lab.t and a demo.
export SOFTUNICAST_LAB_NS=sulE${SU_LAB_ID:-$$} SOFTUNICAST_LAB_DIR=/run/softunicast-labe-$$
STATE=$SOFTUNICAST_LAB_DIR
T=$(mktemp -d /tmp/su-lab-etcd-e2e.XXXXXX)

[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, XDP, nftables)"
[ -x "$SU" ] || skip_all "$SU not built"
for c in etcd etcdctl jq; do command -v $c >/dev/null || skip_all "$c not installed"; done
cleanup() { "$SU" lab down >/dev/null 2>&1; rm -rf "$T"; }
trap cleanup EXIT
x() { local ns=$1; shift; ip netns exec "$SOFTUNICAST_LAB_NS-$ns" "$@"; }
su_store() { x etcd "$SU" "$@" --store "$(cat "$STATE/store")"; }

"$SU" lab down >/dev/null 2>&1 # a lab left over by an interrupted run
"$SU" lab up --store etcd >"$T/up.log" 2>&1
ok $? "lab up --store etcd" "$(tail -20 "$T/up.log")"
grep -q '^etcd://' "$STATE/store" 2>/dev/null
ok $? "the lab runs on an etcd store" "$(cat "$STATE/store" 2>&1)"
for n in router-lhr agent-lhr-s1; do
	tr '\0' ' ' <"/proc/$(cat "$STATE/pids/$n")/cmdline" | grep -q -- "--store etcd://"
	ok $? "$n runs with --store etcd://..." "$(tr '\0' ' ' <"/proc/$(cat "$STATE/pids/$n")/cmdline")"
done
su_store status --json >"$T/status.json" 2>&1
jq -e '.serial == 1 and (.nodes | length) == 8 and .skewed == 0' "$T/status.json" >/dev/null
ok $? "status: 2 routers and 6 agents on serial 1" "$(cat "$T/status.json")"

"$SU" lab run --tap >"$T/run.tap" 2>&1
RUN=$?
while IFS= read -r line; do
	case $line in
	"ok "*) ok 0 "lab run: ${line#* - }" ;;
	"not ok "*) ok 1 "lab run: ${line#* - }" ;;
	esac
done <"$T/run.tap"
ok $RUN "lab run exits 0 when every step passed" "$(grep -v '^ok' "$T/run.tap" | tail -20)"
for s in E1 E2 E3 E4; do
	grep -q "^# == $s\. etcd" "$T/run.tap"
	ok $? "lab run has step $s on etcd"
done

# A re-plan goes through the store: lhr-s3 leaves, every node applies it.
grep -v 'lhr-s3:' "$ROOT/examples/lab.yaml" >"$T/fleet2.yaml"
BEFORE=$(su_store status --json 2>/dev/null | jq .serial)
"$SU" lab replan --fleet "$T/fleet2.yaml" >"$T/replan.log" 2>&1
ok $? "lab replan publishes to the store" "$(cat "$T/replan.log")"
AFTER=$(su_store status --json 2>/dev/null | jq .serial)
[ "$AFTER" = $((BEFORE + 1)) ]
ok $? "the store's serial went $BEFORE -> $((BEFORE + 1))" "got $AFTER"
wait_for "grep -q '^serial $AFTER\$' '$STATE/run/lhr-s1/assignment'" 300
ok $? "agent lhr-s1 applies serial $AFTER" "$(head -3 "$STATE/run/lhr-s1/assignment")"
"$SU" show --plan "$STATE/plan" --server lhr-s3 --json | jq -e 'length > 0 and all(.[]; .state == "draining")' >/dev/null
ok $? "lhr-s3's slices are draining in the store's plan"

# ---- nothing left behind --------------------------------------------------------
"$SU" lab down >"$T/down.log" 2>&1
ok $? "lab down"
! ip netns list | grep -q "^$SOFTUNICAST_LAB_NS-"
ok $? "no lab namespace is left (the etcd one included)" "$(ip netns list)"
[ ! -e "$STATE" ] && ! grep -q "$STATE" /proc/mounts
ok $? "no state directory (etcd data included) or bpf mount is left"
! pgrep -f "etcd --name m[0-9] --data-dir $STATE/" >/dev/null
ok $? "no etcd member is left" "$(pgrep -af "etcd --name")"
! pgrep -f "softunicast (router|agent) --store etcd://.*$STATE" >/dev/null
ok $? "no router or agent process is left"

done_testing
