#!/usr/bin/env bash
# The Prometheus endpoints (--metrics) of the agent, the router and the proxy, scraped
# with curl and checked with `promtool check metrics`: every counter and drop
# reason is there under the labels `stats --json` uses, the agent reports
# per slice and per busiest (slice, destination IP:port), the top-N bound
# holds, and bad addresses or taken ports fail the start cleanly.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/${SU_BUILD:-build}
SU=$B/bin/softunicast
LIB=$B/lib/libsoftunicast.so
ASAN_RT=$(ldd "$LIB" 2>/dev/null | awk '/libasan/ {print $3}')
HL="env ${ASAN_RT:+LD_PRELOAD=$ASAN_RT ASAN_OPTIONS=detect_leaks=0} python3 $ROOT/tests/e2e/lib/su_e2e.py"
NS=su-metrics-$$
T=$(mktemp -d /tmp/su-metrics.XXXXXX)
. "$ROOT/tests/e2e/lib/tap.sh" # ok, skip_all (removes $T), N, FAILS
. "$ROOT/tests/e2e/lib/etcd.sh" # etcd_up, etcd_down
PIDS=()

[ "$(id -u)" = 0 ] || skip_all "needs root (network namespaces, XDP, nftables)"
[ -x "$SU" ] || skip_all "$SU not built"
for c in promtool curl jq python3; do command -v $c >/dev/null || skip_all "$c not installed"; done
ip netns add $NS 2>/dev/null || skip_all "cannot create network namespaces"
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in $(ip netns pids $NS 2>/dev/null); do kill "$p" 2>/dev/null; done
	[ -n "${ETCD_N:-}" ] && etcd_down
	sleep 0.5
	umount "$T/bpf" 2>/dev/null
	ip netns del $NS 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
check() { local what=$1; shift; "$@" >"$T/out" 2>&1; ok $? "$what" "$(tail -20 "$T/out")"; }
# Generous: a loaded machine (CI, a package build beside it) starts daemons slowly.
wait_for() { for _ in $(seq 300); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
x() { ip netns exec $NS "$@"; }
scrape() { x curl -sf "http://127.0.0.1:$1/metrics"; }
value() { # value FILE SERIES-REGEX: the value of the one matching sample
	grep -E "^$2 " "$1" | awk '{print $NF}'
}

x ip link set lo up
x ip link add v0 type veth peer name v1
x ip addr add 10.1.1.1/24 dev v0
x ip addr add 10.1.0.1/24 dev v1
x ip link set v0 up; x ip link set v1 up
x ip route add 192.0.2.0/24 via 10.1.0.1
"$SU" plan --fleet "$ROOT/examples/fleet.yaml" --out "$T/plan" --now 1700000000 >/dev/null

# --- agent
check "agent: a malformed --metrics is a usage error naming it" \
	sh -c "x() { ip netns exec $NS \"\$@\"; }; x $SU agent --plan $T/plan --server lhr-s1 --iface v0 --run-dir $T/bad --state-dir $T/state --metrics 127.0.0.1:99999 2>&1; [ \$? = 2 ]" 
grep -q "127.0.0.1:99999" "$T/out"; ok $? "  ... the message names the value" "$(cat "$T/out")"
x "$SU" agent --plan "$T/plan" --server lhr-s1 --iface v0 --run-dir "$T/run" --state-dir "$T/state" --metrics 127.0.0.1:9101 \
	--metrics-top 1 2>"$T/agent.err" & PIDS+=($!)
# "published" is logged once host_up is done (addresses, rules, decap):
# the assignment file alone can come first.
wait_for "grep -q published $T/agent.err && x curl -sf http://127.0.0.1:9101/metrics" ||
	ok 1 "agent started with --metrics" "$(cat "$T/agent.err")"
# 40 connected UDP sockets toward one origin, 5 toward another: the first is
# the busiest.  Each holder keeps its sockets until its stdin ends: a FIFO
# this shell holds open (read-write, so opening never blocks) until it exits.
mkfifo "$T/hold.fifo"
exec 8<>"$T/hold.fifo"
hold() { # hold N DESTINATION OUTFILE
	x env SOFTUNICAST_ASSIGNMENT="$T/run/assignment" $HL hold-udp "$LIB" service=warp,country=GB "$1" "$2" \
		<"$T/hold.fifo" >"$3" & PIDS+=($!)
}
hold 40 192.0.2.80:53 "$T/held1"
wait_for "test -s $T/held1"
hold 5 192.0.2.81:53 "$T/held2"
wait_for "test -s $T/held2"
held=$(cat "$T/held1") held2=$(cat "$T/held2")
ok $([ "$(echo "$held" | jq .ok)" = 40 ] && [ "$(echo "$held2" | jq .ok)" = 5 ]; echo $?) \
	"45 UDP sockets held from the slice" "$held $held2"

scrape 9101 >"$T/agent.prom"
check "agent: promtool check metrics passes" sh -c "promtool check metrics <'$T/agent.prom'"
check "agent: plan serial" test "$(value "$T/agent.prom" softunicast_agent_plan_serial)" = 1
x env "$SU" agent status --run-dir "$T/run" --json >"$T/status.json"
ip=$(jq -r '.slices[] | select(.tags | test("country=GB")) | .ip' "$T/status.json" | head -1)
lo=$(jq -r ".slices[] | select(.ip == \"$ip\") | .slice[0]" "$T/status.json" | head -1)
ports=$(jq -r ".slices[] | select(.ip == \"$ip\") | .ports_in_use" "$T/status.json" | head -1)
check "agent: slice ports in use match agent status ($ports)" test \
	"$(grep -E "^softunicast_agent_slice_ports_in_use\{ip=\"$ip\",slice=\"$lo-" "$T/agent.prom" | awk '{print $NF}')" = "$ports"
# 45 sockets; the library may give a socket to the second origin a port a
# socket to the first already uses (distinct 4-tuples), so 40 to 45 ports.
sockets=$(jq -r ".slices[] | select(.ip == \"$ip\") | .sockets" "$T/status.json" | head -1)
check "  ... and hold the 45 sockets ($sockets), on 40 to 45 ports" \
	test "$sockets" = 45 -a "$ports" -ge 40 -a "$ports" -le 45
check "agent: the busiest destination, its ports and share of the slice" sh -c \
	"grep -E '^softunicast_agent_destination_ports_in_use\{ip=\"$ip\",slice=\"$lo-[0-9]+\",proto=\"udp\",destination=\"192.0.2.80:53\"\} 40$' '$T/agent.prom' &&
	 grep -E '^softunicast_agent_destination_slice_utilization_ratio\{.*destination=\"192.0.2.80:53\"\} 0.01953125$' '$T/agent.prom'"
check "agent: --metrics-top 1 reports one destination only" \
	test "$(grep -c '^softunicast_agent_destination_ports_in_use{' "$T/agent.prom")" = 1
check "agent: every decap counter of agent status, by result" sh -c \
	"for k in \$(jq -r '.decap | keys[]' '$T/status.json'); do grep -q \"^softunicast_agent_decap_packets_total{result=\\\"\$k\\\"}\" '$T/agent.prom' || { echo missing \$k; exit 1; }; done"
check "agent: library counters per slice" grep -Eq "^softunicast_agent_slice_connects_total\{ip=\"$ip\",slice=\"$lo-[0-9]+\",state=\"active\"\} 45$" "$T/agent.prom"
check "agent: other paths answer 404" sh -c "[ \$(ip netns exec $NS curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9101/) = 404 ]"
check "agent: a second agent on a taken port fails, naming it" sh -c \
	"ip netns exec $NS $SU agent --plan $T/plan --server lhr-s2 --iface v0 --run-dir $T/run2 --state-dir $T/state2 --metrics 127.0.0.1:9101 2>&1; [ \$? = 1 ]"
grep -q "9101" "$T/out"; ok $? "  ... the message names the address" "$(cat "$T/out")"

# --- router
# The router refuses next hops it cannot redirect to, and lo is one: the
# servers' addresses must not be local to the router's namespace.
x ip addr del 10.1.1.1/24 dev v0
x ip addr add 10.1.1.9/24 dev v0
mkdir -p "$T/bpf"
mount -t bpf bpf "$T/bpf" || skip_all "cannot mount a bpf filesystem"
x "$SU" router --plan "$T/plan" --dc lhr --iface v1 --mode skb --pin-dir "$T/bpf/lhr" \
	--metrics 127.0.0.1:9102 2>"$T/router.err" & PIDS+=($!)
wait_for "x curl -sf http://127.0.0.1:9102/metrics | grep -q ^softunicast_router_plan_serial" || ok 1 "router started with --metrics" "$(cat "$T/router.err")"
scrape 9102 >"$T/router.prom"
x "$SU" router stats --pin-dir "$T/bpf/lhr" --json >"$T/rstats.json"
check "router: promtool check metrics passes" sh -c "promtool check metrics <'$T/router.prom'"
check "router: every counter of router stats is a metric, under its label" sh -c \
	"for k in \$(jq -r '.counters | keys[]' '$T/rstats.json'); do grep -Eq \"^softunicast_router_(path_)?packets_total\\{(outcome|path)=\\\"\$k\\\"\\}\" '$T/router.prom' || { echo missing \$k; exit 1; }; done"
check "router: plan serial" test "$(value "$T/router.prom" softunicast_router_plan_serial)" = 1
check "router: mode and interface" grep -q '^softunicast_router_info{iface="v1",mode="skb"} 1' "$T/router.prom"
check "router: a taken --metrics port fails before anything is attached" sh -c \
	"ip netns exec $NS $SU router --plan $T/plan --dc cdg --iface v0 --mode skb --pin-dir $T/bpf/cdg --metrics 127.0.0.1:9102 2>&1; [ \$? = 1 ] && ! test -e $T/bpf/cdg/su_ips"

# --- proxy (its counters are checked in proxy.t; here: served and well formed)
x "$SU" proxy --listen 127.0.0.1:1080 --assignment "$T/run/assignment" --default-tags service=warp,country=GB \
	--metrics 127.0.0.1:9103 2>"$T/proxy.err" & PIDS+=($!)
wait_for "x curl -sf http://127.0.0.1:9103/metrics" || ok 1 "proxy started with --metrics" "$(cat "$T/proxy.err")"
scrape 9103 >"$T/proxy.prom"
check "proxy: promtool check metrics passes" sh -c "promtool check metrics <'$T/proxy.prom'"


# --- plan store state: a plan file is always up; a store from the follower
store_is() { # store_is FILE ROLE BACKEND STATE UP: the state series say STATE, up says UP
	[ "$(value "$1" "softunicast_$2_store_up")" = "$5" ] &&
		[ "$(grep -c "^softunicast_$2_store_state{backend=\"$3\"" "$1")" = 4 ] &&
		[ "$(grep -E "^softunicast_$2_store_state\{.* 1$" "$1")" = "softunicast_$2_store_state{backend=\"$3\",state=\"$4\"} 1" ]
}
check "agent on a plan file: store up, state ok (backend file)" store_is "$T/agent.prom" agent file ok 1
check "router on a plan file: store up, state ok (backend file)" store_is "$T/router.prom" router file ok 1
if command -v etcd >/dev/null && etcd_up $NS 127.0.0.1 1 "$T/etcd"; then
	URL=etcd://127.0.0.1:23791/softunicast
	x "$SU" plan --fleet "$ROOT/examples/fleet.yaml" --now 1700000000 --store "$URL" >/dev/null
	# The file agent leaves v0 to an agent following the store.
	kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null
	x "$SU" agent --store "$URL" --server lhr-s1 --iface v0 --run-dir "$T/run-etcd" --state-dir "$T/state-etcd" \
		--metrics 127.0.0.1:9104 2>"$T/agent-etcd.err" & PIDS+=($!)
	wait_for "grep -q published $T/agent-etcd.err && x curl -sf http://127.0.0.1:9104/metrics | grep -q '_store_up 1'"
	scrape 9104 >"$T/agent-etcd.prom"
	check "agent following etcd: store up, state ok (backend etcd)" store_is "$T/agent-etcd.prom" agent etcd ok 1
	check "  ... the fetched serial and the failures are there" sh -c \
		"grep -q '^softunicast_agent_store_fetched_serial 1$' '$T/agent-etcd.prom' &&
		 grep -q '^softunicast_agent_store_fetch_failures_total ' '$T/agent-etcd.prom'"
	check "  ... promtool check metrics passes" sh -c "promtool check metrics <'$T/agent-etcd.prom'"
	cp "$T/agent-etcd.prom" "$T/agent-store.prom"
	etcd_down
	wait_for "x curl -sf http://127.0.0.1:9104/metrics | grep -q '^softunicast_agent_store_up 0'"
	scrape 9104 >"$T/agent-etcd.prom"
	check "etcd stopped: store down, state unreachable, the plan serial kept" sh -c \
		"$(declare -f value store_is); store_is '$T/agent-etcd.prom' agent etcd unreachable 0 &&
		 [ \"\$(value '$T/agent-etcd.prom' softunicast_agent_plan_serial)\" = 1 ]"
else
	ok 0 "agent following etcd: store metrics # SKIP etcd is not installed or did not start"
	touch "$T/agent-store.prom"
fi

# The dashboard and the alert rules only use metrics the endpoints serve.
cat "$T/agent.prom" "$T/router.prom" "$T/agent-store.prom" "$T/proxy.prom" | awk '/^# TYPE softunicast_/ {print $3}' | sort -u >"$T/served"
check "grafana dashboard: valid JSON whose queries use served metrics only" sh -c \
	"jq -r '.panels[].targets[].expr' '$ROOT/contrib/grafana/softunicast.json' | grep -o 'softunicast_[a-z_]*' | sort -u |
	 while read -r m; do grep -qx \"\$m\" '$T/served' || { echo \"not served: \$m\"; exit 1; }; done"
check "alert rules: promtool check rules" promtool check rules "$ROOT/contrib/prometheus/softunicast-alerts.yml"
check "alert rules: a store unreachable fires (promtool test rules)" promtool test rules "$ROOT/contrib/prometheus/softunicast-alerts.test.yml"
check "alert rules use served metrics only" sh -c \
	"grep -o 'softunicast_[a-z_]*' '$ROOT/contrib/prometheus/softunicast-alerts.yml' | grep -v '^softunicast_*$' | sort -u |
	 while read -r m; do grep -qx \"\$m\" '$T/served' || { echo \"not served: \$m\"; exit 1; }; done"

echo "1..$N"
[ "$FAILS" = 0 ]
