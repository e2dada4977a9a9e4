#!/usr/bin/env bash
# End to end: the fleet's plan in a real 3-member etcd cluster, followed by a
# real `softunicast agent --store` in its own network namespace.
#
#   srv (agent s1) 10.98.0.2 s0 --veth-- o0 10.98.0.1 etc (etcd m0 m1 m2)
#
# Each kind of store trouble is one case: a member down (changes still
# commit), every member down (the agent keeps its plan, restarts on it, and
# applies the next one when the store is back), a version never committed,
# a corrupt shard, wrong credentials, a TLS mismatch, an unreachable store.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/${SU_BUILD:-build}
SU=$B/bin/softunicast
. "$ROOT/tests/e2e/lib/tap.sh"
. "$ROOT/tests/e2e/lib/etcd.sh"
S=su-sts-$$ O=su-sto-$$
T=$(mktemp -d /tmp/su-store-e2e.XXXXXX)
RUN=$T/run STATE=$T/state BPF=$T/bpf
AGENT="" ROUTER=""

[ "$(id -u)" = 0 ] || { rm -rf "$T"; skip_all "needs root (network namespaces, XDP, nftables)"; }
for c in ip nft etcd etcdctl python3; do
	command -v $c >/dev/null || { rm -rf "$T"; skip_all "$c not installed"; }
done
ip netns add $S 2>/dev/null || { rm -rf "$T"; skip_all "cannot create network namespaces"; }
ip netns add $O

cleanup() {
	[ -n "$AGENT" ] && kill "$AGENT" 2>/dev/null
	[ -n "$ROUTER" ] && kill "$ROUTER" 2>/dev/null && wait "$ROUTER" 2>/dev/null
	etcd_down
	umount "$BPF" 2>/dev/null
	for ns in $S $O; do
		for p in $(ip netns pids $ns 2>/dev/null); do kill "$p" 2>/dev/null; done
	done
	wait 2>/dev/null
	ip netns del $S 2>/dev/null
	ip netns del $O 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
xs() { ip netns exec $S "$@"; }
xo() { ip netns exec $O "$@"; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

ip link add s0 netns $S type veth peer name o0 netns $O
xs ip link set lo up; xs ip link set s0 up; xs ip addr add 10.98.0.2/24 dev s0
xo ip link set lo up; xo ip link set o0 up; xo ip addr add 10.98.0.1/24 dev o0

etcd_up $O 10.98.0.1 3 "$T/etcd"
ok $? "3-member etcd cluster up in $O" "$(tail -5 "$T/etcd/m0.log")"
URL="etcd://$ETCD_EPS/su"

cat >"$T/fleet.yaml" <<'YAML'
ports: {range: 1024-65535, slice: 2048}
drain: 10m
datacenters:
  dc1:
    router: 10.98.0.1
    servers: {s1: 10.98.0.2, s2: 10.98.0.3}
    egress:
      - {service: cdn}
  dc2:
    router: 10.97.0.1
    servers: {t1: 10.97.0.2}
    egress:
      - {service: cdn}
prefixes:
  - {prefix: 203.0.113.0/29, tags: {service: cdn}}
YAML
# Real time: an agent drops a draining slice once its deadline has passed,
# so deadlines computed from a time in the past would end every drain at once.
NOW=$(date +%s)
xo $SU plan --fleet "$T/fleet.yaml" --store "$URL" --now $((NOW + 0)) >"$T/out" 2>&1
ok $? "plan --store publishes serial 1" "$(cat "$T/out")"

# ---- the DC's router follows the store too (its view: dc1 + ranges) ---------
mkdir -p "$BPF"
mount -t bpf bpf "$BPF" || skip_all "cannot mount a bpf filesystem"
xo ip link add r0 type veth peer name r1; xo ip link set r0 up; xo ip link set r1 up
ip netns exec $O $SU router --store "$URL" --dc dc1 --iface r0 --mode skb --pin-dir "$BPF/dc1" \
	--state-dir "$T/rstate" 2>>"$T/router.log" &
ROUTER=$!
wait_for "grep -q attached $T/router.log" 150
ok $? "router --store attaches with the store's plan" "$(cat "$T/router.log")"
grep -q "1 remote egress IPs" "$T/router.log"; ok $? "router view: dc2's IP known from the ranges shard" "$(cat "$T/router.log")"
check "router view holds no slot of another DC" sh -c "! grep -q ' t1 ' '$T/rstate/view.plan'"
wait_for "xo $SU router stats --pin-dir '$BPF/dc1' --state-dir '$T/rstate' 2>/dev/null | grep -q 'applied serial 1'" 50
ok $? "router stats shows the store state and applied serial" "$(xo $SU router stats --pin-dir "$BPF/dc1" --state-dir "$T/rstate" 2>&1 | head -3)"

serial_of() { sed -n 's/^serial \([0-9]*\)$/\1/p' "$RUN/assignment" 2>/dev/null; }
states() { awk '/^egress /{print $5}' "$RUN/assignment" | sort -u | tr '\n' ' '; }
start_agent() {
	ip netns exec $S $SU agent --store "$URL" --server s1 --iface s0 --run-dir "$RUN" \
		--state-dir "$STATE" 2>>"$T/agent.log" &
	AGENT=$!
}
start_agent
wait_for '[ "$(serial_of)" = 1 ]' 150
ok $? "agent --store applies serial 1 (its own view)" "$(tail -5 "$T/agent.log")"
is "$(states)" "active " "s1's slices active"
check "the view holds only s1's slots" sh -c "! grep -q ' s2 ' '$STATE/view.plan' && ! grep -q ' t1 ' '$STATE/view.plan'"
wait_for "xo $SU status --store '$URL' 2>/dev/null | grep -Eq '^agent +s1 +dc1 +ok +1 '" 50
xo $SU status --store "$URL" >"$T/status" 2>&1
grep -Eq '^agent +s1 +dc1 +ok +1 ' "$T/status"; ok $? "status lists agent s1 at serial 1, ok" "$(cat "$T/status")"
grep -Eq '^router +dc1 +dc1 +ok +1 ' "$T/status"; ok $? "status lists router dc1 at serial 1, ok" "$(cat "$T/status")"
S_JSON=$(xs $SU agent status --run-dir "$RUN" --json 2>/dev/null | jq_ 'd["store"]["state"], d["store"]["serial"]')
is "$(echo $S_JSON)" "ok 1" "agent status --json reports store state and applied serial"

# ---- drain / undrain ------------------------------------------------------
xo $SU drain s1 --store "$URL" --now $((NOW + 100)) >"$T/out" 2>&1
ok $? "drain s1 publishes serial 2" "$(cat "$T/out")"
wait_for '[ "$(serial_of)" = 2 ]'
is "$(states)" "draining " "drained: every s1 slice draining (no new connections, live ones go on)"
xo $SU show --store "$URL" >"$T/show" 2>&1
grep -q "drain s1" "$T/show"; ok $? "show lists the drain" "$(tail -3 "$T/show")"
xo $SU undrain s1 --store "$URL" --now $((NOW + 200)) >/dev/null 2>&1
wait_for '[ "$(serial_of)" = 3 ]'
ok $? "undrain publishes serial 3 and the agent applies it"
# Slices s1 gains are held until dc1's router reports serial 3 (rollout order).
wait_for "grep -q ' active ' '$RUN/assignment'" 100
ok $? "undrained: s1 has active slices again once its router applied serial 3" "$(cat "$RUN/assignment")"

# ---- one member down: changes still commit ---------------------------------
etcd_member_stop 0
xo $SU move 203.0.113.7 --to dc2 --store "$URL" --now $((NOW + 300)) >"$T/out" 2>&1
ok $? "one member stopped: move still publishes" "$(cat "$T/out")"
wait_for '[ "$(serial_of)" = 4 ]' 150
ok $? "the agent applies serial 4 through the other members" "$(tail -3 "$T/agent.log")"

# ---- every member down: the plan stays, restarts work, next plan applies -------
etcd_down
wait_for "xs $SU agent status --run-dir '$RUN' --json 2>/dev/null | grep -q '\"unreachable\"'" 100
ok $? "store gone: agent status says unreachable" "$(xs $SU agent status --run-dir "$RUN" --json 2>&1 | grep -A3 '"store"'; ip netns pids $O; xs ss -tnp; tail -5 $T/agent.log)"
is "$(serial_of)" 4 "and the agent keeps serial 4"
kill $AGENT; wait $AGENT 2>/dev/null
start_agent
wait_for "[ -s $RUN/assignment ] && xs $SU agent status --run-dir '$RUN' --json 2>/dev/null | grep -q '\"serial\": 4'" 150
ok $? "agent restarted while the store is down runs on its kept view (serial 4)" "$(tail -3 "$T/agent.log")"
for i in 0 1 2; do etcd_member_start $i existing; done
etcd_healthy
ok $? "cluster back"
xo $SU drain s2 --store "$URL" --now $((NOW + 400)) >"$T/out" 2>&1
ok $? "next change publishes" "$(cat "$T/out")"
wait_for '[ "$(serial_of)" = 5 ]' 200
ok $? "the agent applies serial 5 once the store is back" "$(tail -3 "$T/agent.log")"

# ---- a version never committed is never applied --------------------------------
DIR=$(etcdctl_ get --print-value-only /su/version | head -1 | cut -d' ' -f2)
# s1's record: written by the version that last changed s1's view (layout 2:
# /su/m/NAME#DIR), the newest at or before the committed DIR.
REC=$(etcdctl_ get --keys-only --prefix "/su/m/server/s1#" | grep . | awk -v lim="/su/m/server/s1#$DIR" '$0 <= lim' | tail -1)
META=$(etcdctl_ get --print-value-only "$REC")
DDIR=$(echo "$META" | cut -d' ' -f7) # where s1's chunks are (the version that wrote them)
[ -n "$DDIR" ]
ok $? "s1's record found under /su/m/ ($REC)"
D9=00000000000000000009.00000000000000aa-r
for k in $(etcdctl_ get --keys-only --prefix "/su/v/$DDIR/server/s1/"); do
	V=$(etcdctl_ get --print-value-only "$k")
	etcdctl_ put "${k/$DDIR/$D9}" "$V" >/dev/null
done
etcdctl_ put "/su/m/server/s1#$D9" "$(echo "$META" | awk -v d=$D9 '{$3 = 9; $7 = d; print}')" >/dev/null
sleep 1
is "$(serial_of)" 5 "shards of serial 9 written, never committed: not applied"

# ---- a corrupt shard: refused, named, old plan kept -----------------------------
# The record claims other content than the chunk holds (bit rot, a bad restore).
etcdctl_ put "/su/v/$DDIR/server/s1/0000" "slot garbage" >/dev/null
etcdctl_ put "$REC" "$(echo "$META" | awk '{$6 = "00000000000000ff"; print}')" >/dev/null
etcdctl_ put /su/version "5 $DIR" >/dev/null
wait_for "xs $SU agent status --run-dir '$RUN' --json 2>/dev/null | grep -q '\"refused\"'" 100
ok $? "corrupt shard: agent status says refused"
xs $SU agent status --run-dir "$RUN" --json 2>/dev/null | grep -q "/su/v/$DDIR/server/s1/0000"
ok $? "the error names the corrupt key" "$(xs $SU agent status --run-dir "$RUN" --json 2>/dev/null | grep error)"
is "$(serial_of)" 5 "the old plan stays applied"

# ---- rollout order: a version reaches the agent before the router ----------------
# The router is paused (it neither applies nor reports, its lease still
# stands); s1 gains a slice in serial 6.  The agent applies serial 6 but
# holds the gained slice until the router reports 6: replies to it would be
# dropped by a router still on the old plan.
sed 's/- {service: cdn}$/- {service: cdn, slices: 2}/' "$T/fleet.yaml" >"$T/fleet2.yaml"
ACTIVE_BEFORE=$(grep -c ' active ' "$RUN/assignment")
kill -STOP $ROUTER
xo $SU plan --fleet "$T/fleet2.yaml" --store "$URL" --now $((NOW + 500)) >"$T/out" 2>&1
ok $? "plan --store with more demand publishes serial 6" "$(cat "$T/out")"
wait_for '[ "$(serial_of)" = 6 ]' 50
ok $? "the agent applies serial 6 while its router is paused"
is "$(grep -c ' active ' "$RUN/assignment")" "$ACTIVE_BEFORE" "the slice s1 gains is held back"
xs $SU agent status --run-dir "$RUN" --json 2>/dev/null | grep -q '"held": [1-9]'
ok $? "agent status reports the held slice"
kill -CONT $ROUTER
wait_for "[ \$(grep -c ' active ' '$RUN/assignment') -gt $ACTIVE_BEFORE ]" 100
ok $? "router applied serial 6: the agent uses the gained slice" "$(cat "$RUN/assignment")"

# ---- bad ways to reach a store -----------------------------------------------
OUT=$(xo $SU who --store "etcd://10.98.0.1:1/su" 203.0.113.0 2>&1)
[ $? != 0 ] && echo "$OUT" | grep -q "10.98.0.1:1"; ok $? "unreachable store: refused, endpoint named" "$OUT"
OUT=$(xo $SU who --store "$URL" --store-ca /etc/ssl/certs/ca-certificates.crt 203.0.113.0 2>&1)
[ $? != 0 ]; ok $? "TLS to a plain-text etcd: refused" "$OUT"
OUT=$(xo $SU status --store "$URL" --store-ca /etc/ssl/certs/ca-certificates.crt 2>&1)
[ $? != 0 ] && echo "$OUT" | grep -q "10.98.0.1"; ok $? "TLS mismatch names the endpoint" "$OUT"
etcdctl_ user add root --new-user-password=rootpw >/dev/null 2>&1 && etcdctl_ auth enable >/dev/null 2>&1
printf 'user root\npassword wrong\n' >"$T/bad.conf"
OUT=$(xo $SU status --store "$URL" --store-config "$T/bad.conf" 2>&1)
[ $? != 0 ] && echo "$OUT" | grep -qi "auth"; ok $? "wrong credentials: refused, says authentication" "$OUT"
printf 'user root\npassword rootpw\n' >"$T/good.conf"
OUT=$(xo $SU status --store "$URL" --store-config "$T/good.conf" 2>&1)
echo "$OUT" | grep -q "plan serial 6"; ok $? "right credentials from the config file: answered" "$OUT"
printf 'user root\npasswd x\n' >"$T/typo.conf"
OUT=$(xo $SU status --store "$URL" --store-config "$T/typo.conf" 2>&1)
[ $? = 3 ] && echo "$OUT" | grep -q "typo.conf:2"; ok $? "bad config file: file:line named, exit 3" "$OUT"

done_testing
