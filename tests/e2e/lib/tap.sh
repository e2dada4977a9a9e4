# TAP helpers for the shell e2e suites (source it; uses N, FAILS, T).
# ok STATUS DESCRIPTION [DIAGNOSTIC]: one test line, diagnostic on failure.
N=0 FAILS=0
skip_all() { echo "1..0 # SKIP $*"; [ -n "${T:-}" ] && rm -rf "$T"; exit 0; }
ok() {
	N=$((N + 1))
	if [ "$1" = 0 ]; then
		echo "ok $N - $2"
	else
		echo "not ok $N - $2"
		FAILS=$((FAILS + 1))
		[ -n "${3:-}" ] && printf '%s\n' "$3" | sed 's/^/# /'
	fi
}
check() { local d=$1; shift; "$@" >/dev/null 2>&1; ok $? "$d"; }
is() { [ "$1" = "$2" ]; ok $? "$3" "got '$1', want '$2'"; }
wait_for() { for _ in $(seq 100); do eval "$1" && return 0; sleep 0.1; done; return 1; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
done_testing() { echo "1..$N"; [ "$FAILS" = 0 ]; }
