#!/usr/bin/env bash
# systemd readiness and watchdog (Type=notify units): the agent and the
# router send READY=1 only once their plan is applied, WATCHDOG=1 from their
# event loop under WatchdogSec, RELOADING=1 then READY=1 around a reload, and
# STOPPING=1 on the way out.  A python listener stands in for systemd's
# notify socket; the daemons run in a namespace of their own on a veth pair.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SU=$ROOT/${SU_BUILD:-build}/bin/softunicast
H="python3 $ROOT/tests/e2e/lib/sd_notify_listen.py"
NS=su-notify-$$
T=$(mktemp -d /tmp/su-notify.XXXXXX)
. "$ROOT/tests/e2e/lib/tap.sh" # ok, skip_all (removes $T), N, FAILS
PIDS=()

[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, XDP, nftables)"
[ -x "$SU" ] || skip_all "$SU not built"
ip netns add $NS 2>/dev/null || skip_all "cannot create network namespaces"
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in $(ip netns pids $NS 2>/dev/null); do kill "$p" 2>/dev/null; done
	sleep 0.3
	umount "$T/bpf" 2>/dev/null
	ip netns del $NS 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
# Generous: a loaded machine (CI, a package build beside it) starts daemons slowly.
wait_for() { for _ in $(seq 300); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
x() { ip netns exec $NS "$@"; }
check_log() { # check_log DESCRIPTION LOG CONDITION
	wait_for "$3"; ok $? "$1" "$(cat "$2" 2>/dev/null)"
}

x ip link set lo up
x ip link add v0 type veth peer name v1
x ip addr add 10.1.1.1/24 dev v0
x ip addr add 10.1.0.1/24 dev v1
x ip link set v0 up; x ip link set v1 up
"$SU" plan --fleet "$ROOT/examples/fleet.yaml" --out "$T/plan" --now 1700000000 >/dev/null

# The agent of lhr-s1: READY after the assignment is published.
$H "$T/agent.sock" "$T/agent.log" "$T/run/assignment" >/dev/null & PIDS+=($!)
wait_for "test -S $T/agent.sock"
NOTIFY_SOCKET=$T/agent.sock WATCHDOG_USEC=200000 ip netns exec $NS \
	"$SU" agent --plan "$T/plan" --server lhr-s1 --iface v0 --run-dir "$T/run" --state-dir "$T/state" 2>"$T/agent.err" &
APID=$!; PIDS+=($APID)
check_log "agent: READY=1 once the assignment is published" "$T/agent.log" \
	"grep -q 'READY=1 STATUS=plan serial 1 applied.* file=yes' $T/agent.log"
check_log "agent: the watchdog is fed from the event loop (WatchdogSec)" "$T/agent.log" \
	"[ \$(grep -c '^WATCHDOG=1' $T/agent.log) -ge 4 ]"
kill -HUP $APID
check_log "agent: a reload is RELOADING=1 then READY=1" "$T/agent.log" \
	"grep -A1 '^RELOADING=1' $T/agent.log | grep -q 'READY=1 STATUS=plan serial 1 applied'"
kill -TERM $APID
check_log "agent: STOPPING=1 on SIGTERM" "$T/agent.log" "grep -q '^STOPPING=1' $T/agent.log"
wait $APID 2>/dev/null

# The router of lhr (skb mode: the test needs no XDP-capable peer).
# The router refuses next hops it cannot redirect to, and lo is one: the
# servers' addresses must not be local to the router's namespace.
x ip addr del 10.1.1.1/24 dev v0
x ip addr add 10.1.1.9/24 dev v0
$H "$T/router.sock" "$T/router.log" >/dev/null & PIDS+=($!)
wait_for "test -S $T/router.sock"
mkdir -p "$T/bpf"
mount -t bpf bpf "$T/bpf" || skip_all "cannot mount a bpf filesystem"
NOTIFY_SOCKET=$T/router.sock WATCHDOG_USEC=200000 ip netns exec $NS \
	"$SU" router --plan "$T/plan" --dc lhr --iface v1 --mode skb --pin-dir "$T/bpf/lhr" 2>"$T/router.err" &
RPID=$!; PIDS+=($RPID)
check_log "router: READY=1 once the plan is applied and attached" "$T/router.log" \
	"grep -q 'READY=1 STATUS=plan serial 1 applied, forwarding' $T/router.log"
ok $(x ip link show v1 | grep -q xdp; echo $?) "router: the program was attached before READY" "$(x ip link show v1)"
check_log "router: the watchdog is fed" "$T/router.log" "[ \$(grep -c '^WATCHDOG=1' $T/router.log) -ge 4 ]"
kill -HUP $RPID
check_log "router: a reload is RELOADING=1 then READY=1" "$T/router.log" \
	"grep -A1 '^RELOADING=1' $T/router.log | grep -q 'READY=1'"
kill -TERM $RPID
check_log "router: STOPPING=1 on SIGTERM" "$T/router.log" "grep -q '^STOPPING=1' $T/router.log"
wait $RPID 2>/dev/null

# The proxy: READY=1 once it listens, the watchdog fed from its event loop,
# STOPPING=1 when SIGTERM starts the drain.
$H "$T/proxy.sock" "$T/proxy.log" >/dev/null & PIDS+=($!)
wait_for "test -S $T/proxy.sock"
printf 'listen 127.0.0.1:18081\n' >"$T/proxy.conf"
NOTIFY_SOCKET=$T/proxy.sock WATCHDOG_USEC=200000 ip netns exec $NS \
	"$SU" proxy --config "$T/proxy.conf" 2>"$T/proxy.err" &
PPID_=$!; PIDS+=($PPID_)
check_log "proxy: READY=1 once it listens" "$T/proxy.log" "grep -q 'READY=1 STATUS=listening on 1 address' $T/proxy.log"
ok $(x bash -c 'exec 3<>/dev/tcp/127.0.0.1/18081' 2>/dev/null; echo $?) "proxy: the port was open at READY" "$(cat "$T/proxy.err")"
check_log "proxy: the watchdog is fed" "$T/proxy.log" "[ \$(grep -c '^WATCHDOG=1' $T/proxy.log) -ge 4 ]"
kill -TERM $PPID_
check_log "proxy: STOPPING=1 on SIGTERM" "$T/proxy.log" "grep -q '^STOPPING=1' $T/proxy.log"
wait $PPID_ 2>/dev/null

# Outside systemd nothing is sent and nothing fails.
x "$SU" agent --plan "$T/plan" --server lhr-s1 --iface v0 --run-dir "$T/run2" --state-dir "$T/state2" 2>"$T/plain.err" & P=$!; PIDS+=($P)
wait_for "test -e $T/run2/assignment"; ok $? "agent without NOTIFY_SOCKET runs as before" "$(cat "$T/plain.err")"
kill -TERM $P; wait $P 2>/dev/null

# Under journald (stderr is the stream $JOURNAL_STREAM names) each line
# carries its syslog priority; elsewhere lines stay plain.
"$SU" show 2>"$T/plain.log"
JOURNAL_STREAM=$(stat -c '%d:%i' "$T/journal.log" 2>/dev/null || { : >"$T/journal.log"; stat -c '%d:%i' "$T/journal.log"; }) \
	"$SU" show 2>>"$T/journal.log"
ok $(grep -q '^<3>softunicast show: ' "$T/journal.log" && grep -q '^softunicast show: ' "$T/plain.log"; echo $?) \
	"errors carry syslog priority 3 under journald, none elsewhere" "$(cat "$T/journal.log" "$T/plain.log")"

echo "1..$N"
[ "$FAILS" = 0 ]
