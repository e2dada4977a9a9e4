# TAP helpers for the bash e2e suites (source it; uses N, FAILS and, for
# skip_all's clean-up, T): ok, check, is, wait_for, skip_all, jq_.  The suite
# prints "1..$N" itself at the end (done_testing).
N=0 FAILS=0
skip_all() { echo "1..0 # SKIP $*"; [ -n "${T:-}" ] && rm -rf "$T"; exit 0; }
ok() { # ok STATUS DESCRIPTION [DIAGNOSTIC]
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
# wait_for CONDITION [TENTHS]: polls every 0.1 s, 100 times by default.
wait_for() { for _ in $(seq "${2:-100}"); do eval "$1" && return 0; sleep 0.1; done; return 1; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
done_testing() { echo "1..$N"; [ "$FAILS" = 0 ]; }
