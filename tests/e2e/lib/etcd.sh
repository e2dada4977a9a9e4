# Shared by the e2e suites that need a real etcd cluster (source it).
# etcd_up NS ADDR N DIR: N members (1-3) inside namespace NS (or "" for the
# host) listening on ADDR, clients on ports 23791.., peers on 23801.. (each
# namespace has its own ports, so suites run side by side); data and logs in
# DIR.  Sets ETCD_EPS (HOST:PORT,...) and ETCD_PIDS[i].
ETCD_PIDS=()
_etcd_x() { if [ -n "$ETCD_NS" ]; then ip netns exec "$ETCD_NS" "$@"; else "$@"; fi; }
etcd_member_start() { # etcd_member_start I STATE(new|existing)
	local i=$1 cluster="" k
	for k in $(seq 0 $((ETCD_N - 1))); do
		cluster="$cluster${cluster:+,}m$k=http://$ETCD_ADDR:$((23801 + k))"
	done
	local pre=()
	# Not through a function: $! must be etcd itself (ip netns exec execs it).
	[ -n "$ETCD_NS" ] && pre=(ip netns exec "$ETCD_NS")
	"${pre[@]}" etcd --name m$i --data-dir "$ETCD_DIR/m$i" \
		--listen-client-urls http://$ETCD_ADDR:$((23791 + i)) --advertise-client-urls http://$ETCD_ADDR:$((23791 + i)) \
		--listen-peer-urls http://$ETCD_ADDR:$((23801 + i)) --initial-advertise-peer-urls http://$ETCD_ADDR:$((23801 + i)) \
		--initial-cluster "$cluster" --initial-cluster-state "$2" --initial-cluster-token "su-$ETCD_DIR" \
		--heartbeat-interval 50 --election-timeout 500 >>"$ETCD_DIR/m$i.log" 2>&1 &
	ETCD_PIDS[$i]=$!
}
etcd_member_stop() { # etcd_member_stop I
	[ -n "${ETCD_PIDS[$1]:-}" ] || return 0
	kill "${ETCD_PIDS[$1]}" 2>/dev/null
	wait "${ETCD_PIDS[$1]}" 2>/dev/null
	ETCD_PIDS[$1]=""
}
etcdctl_() { _etcd_x env ETCDCTL_API=3 etcdctl --endpoints="$ETCD_EPS" --command-timeout=3s "$@"; }
etcd_healthy() { # a write commits: a quorum of members is up
	for _ in $(seq 150); do
		etcdctl_ put /softunicast-test-probe x >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
etcd_up() { # etcd_up NS ADDR N DIR
	ETCD_NS=$1 ETCD_ADDR=$2 ETCD_N=$3 ETCD_DIR=$4 ETCD_EPS=""
	mkdir -p "$ETCD_DIR"
	for i in $(seq 0 $((ETCD_N - 1))); do
		ETCD_EPS="$ETCD_EPS${ETCD_EPS:+,}$ETCD_ADDR:$((23791 + i))"
		etcd_member_start "$i" new
	done
	etcd_healthy
}
etcd_down() { for i in $(seq 0 $((ETCD_N - 1))); do etcd_member_stop "$i"; done; }
