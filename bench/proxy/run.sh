#!/usr/bin/env bash
# bench/proxy: softunicast proxy beside Dante (danted), microsocks, tinyproxy
# and a plain splice(2) relay (the ceiling), in one private network namespace,
# the same load generator (build/bench/proxy) against each, in one run:
#   - new connections per second, each a short request/response, 64 clients
#   - bulk throughput at 1, 64 and 1024 concurrent streams
#   - CPU seconds per GB relayed (the proxy's processes, during the 64-stream run)
#   - memory per idle relayed connection (RSS growth over 1000 held connections)
# Options: --secs S (per measurement, default 3), --only NAME[,NAME].
# Not a test: it prints a table; compare rows from the same run only.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$ROOT/${SU_BUILD:-build}
SU=$B/bin/softunicast
GEN=$B/bench/proxy
SECS=3 ONLY=
while [ $# -gt 0 ]; do
	case $1 in
	--secs) SECS=$2; shift 2 ;;
	--only) ONLY=$2; shift 2 ;;
	*) echo "usage: $0 [--secs S] [--only NAME,...]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench/proxy needs root (a network namespace)" >&2; exit 1; }
NS=su-pbench-$$
T=$(mktemp -d /tmp/su-pbench.XXXXXX)
ip netns add $NS || exit 1
PIDS=()
cleanup() {
	for p in $(ip netns pids $NS 2>/dev/null); do kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in $(ip netns pids $NS 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	ip netns del $NS 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
x() { ip netns exec $NS "$@"; }
x ip link set lo up
x ip addr add 10.0.0.1/32 dev lo
x ip addr add 198.51.100.1/32 dev lo
x sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65535" \
	net.ipv4.ip_local_reserved_ports="1080-1090,8000" # the peers' and the origin's ports: never a client's
ORIGIN=10.0.0.1:8000

# softunicast: one egress IP whose slice is the whole port range, on lo
cat >"$T/assignment" <<EOF
softunicast-assignment 1
serial 1
server bench
updated 0
egress 198.51.100.1 1024 65535 active service=warp,country=GB
EOF
cat >"$T/proxy.conf" <<EOF
listen 10.0.0.1:1080
assignment $T/assignment
default-tags service=warp,country=GB
max-connections 100000
max-per-client 100000
EOF
sed -e 's/:1080$/:1085/' "$T/proxy.conf" >"$T/proxy-buffered.conf"
echo "splice no" >>"$T/proxy-buffered.conf"
cat >"$T/danted.conf" <<EOF
logoutput: /dev/null
internal: 10.0.0.1 port = 1081
external: 10.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }
socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }
EOF
cat >"$T/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port 1083
Listen 10.0.0.1
Timeout 600
MaxClients 4096
LogLevel Critical
ConnectPort 8000
DisableViaHeader Yes
EOF

start() { # start NAME MODE PORT COMMAND...
	local name=$1; shift 3
	x "$@" >"$T/$name.log" 2>&1 &
	echo $!
}
# CPU ticks and RSS (kB) of a process and all its descendants (dante and
# tinyproxy work in forked children; exited children's CPU is in cstime)
tree() { local c; echo "$1"; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do tree "$c"; done; }
ticks() { local p; for p in $(tree "$1"); do awk '{print $14 + $15 + $16 + $17}' /proc/$p/stat 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
rss() { local p; for p in $(tree "$1"); do awk '/^VmRSS/ {print $2}' /proc/$p/status 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }
HZ=$(getconf CLK_TCK)

x $GEN origin $ORIGIN >/dev/null 2>&1 &
sleep 0.3
printf '%-12s %10s %10s %10s %10s %10s %10s\n' peer "conn/s" "Gb/s x1" "Gb/s x64" "Gb/s x1024" "CPU s/GB" "KiB/idle"
# each load-generator run is bounded: a peer that stalls shows "-", not a hang
gen() { x timeout $((SECS + 20)) $GEN "$@" || echo "- - -"; }
measure() { # measure NAME MODE PROXY PID
	local name=$1 mode=$2 proxy=$3 pid=$4 rate b1 b64 b1k t0 t1 bytes cpu r0 r1 idle
	# memory first, on the fresh process: after the bulk runs its heap keeps
	# freed memory that new connections reuse, and the growth reads ~0
	if [ "$mode" = direct ]; then idle=-; else
		r0=$(rss "$pid")
		# the holder keeps its 1000 connections until its stdin (a FIFO
		# held open here) closes; "ready N" says how many it got
		rm -f "$T/idle.in" "$T/idle.out"; mkfifo "$T/idle.in"
		x timeout 60 $GEN idle "$mode" "$proxy" $ORIGIN 1000 <"$T/idle.in" >"$T/idle.out" 2>/dev/null &
		local ipid=$! held=0
		exec 9>"$T/idle.in"
		for _ in $(seq 150); do grep -q ready "$T/idle.out" 2>/dev/null && break; sleep 0.2; done
		held=$(awk '/ready/ {print $2}' "$T/idle.out")
		sleep 0.5
		r1=$(rss "$pid")
		exec 9>&-
		wait $ipid 2>/dev/null
		idle=$(awk -v a="$r0" -v b="$r1" -v n="${held:-0}" 'BEGIN {if (n + 0 > 0) printf "%.1f", (b - a) / n; else printf "-"}')
	fi
	rate=$(gen rate "$mode" "$proxy" $ORIGIN 64 "$SECS" | awk '{print $1}')
	b1=$(gen bulk "$mode" "$proxy" $ORIGIN 1 "$SECS" | awk '{print $1}')
	t0=$(ticks "$pid")
	read -r b64 bytes < <(gen bulk "$mode" "$proxy" $ORIGIN 64 "$SECS" | awk '{sub("bytes=", "", $3); print $1, $3}')
	t1=$(ticks "$pid")
	b1k=$(gen bulk "$mode" "$proxy" $ORIGIN 1024 "$SECS" | awk '{print $1}')
	cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v b="${bytes:-0}" 'BEGIN {b += 0; if (b > 0) printf "%.2f", t / hz / (b / 1e9); else printf "-"}')
	printf '%-12s %10s %10s %10s %10s %10s %10s\n' "$name" "$rate" "$b1" "$b64" "$b1k" "$cpu" "$idle"
	# a row of zeros: say what the peer said
	[ "${rate:-0}" != 0 ] || tail -3 "$T/$name.log" 2>/dev/null | sed "s/^/    $name: /"
}
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
run_peer() { # run_peer NAME MODE PORT COMMAND...
	local name=$1 mode=$2 port=$3 pid
	want "$name" || return 0
	pid=$(start "$@")
	for _ in $(seq 50); do x ss -ltn | grep -q "10.0.0.1:$port " && break; sleep 0.1; done
	# dante's and tinyproxy's listeners are children: measure the whole family
	measure "$name" "$mode" "10.0.0.1:$port" "$pid"
	local fam; fam=$(tree "$pid")
	kill $fam 2>/dev/null
	wait "$pid" 2>/dev/null
	# the next peer gets the CPU to itself: let the last one's drain end
	local alive
	for _ in $(seq 50); do
		alive=0; for p in $fam; do [ -d /proc/$p ] && alive=1; done
		[ $alive = 0 ] && break; sleep 0.2
	done
}
want direct && measure direct direct 10.0.0.1:1 "$$"
run_peer splice plain 1084 $GEN splice 10.0.0.1:1084 $ORIGIN
run_peer softunicast socks5 1080 $SU proxy --config "$T/proxy.conf"
run_peer su-http http 1080 $SU proxy --config "$T/proxy.conf"
run_peer su-buffered socks5 1085 $SU proxy --config "$T/proxy-buffered.conf"
command -v danted >/dev/null && run_peer dante socks5 1081 danted -f "$T/danted.conf"
command -v microsocks >/dev/null && run_peer microsocks socks5 1082 microsocks -i 10.0.0.1 -p 1082
command -v tinyproxy >/dev/null && run_peer tinyproxy http 1083 tinyproxy -d -c "$T/tinyproxy.conf"
echo "(direct: the load generator straight to the origin; splice: a thread-per-direction"
echo " splice(2) relay, the ceiling; su-http: softunicast proxy through HTTP CONNECT;"
echo " su-buffered: softunicast proxy with 'splice no', the bufferevent relay)"
