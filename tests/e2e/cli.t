#!/usr/bin/env bash
# The plan commands as a user runs them: exit codes, nothing written on
# failure, stable re-plans, JSON shapes, geofeed format.
set -u
SU=${SU_BUILD:-build}/bin/softunicast
FLEET=examples/fleet.yaml
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
n=0 failed=0
check() { # check DESCRIPTION COMMAND...
	local what=$1; shift
	n=$((n + 1))
	# Output goes to out/err only afterwards, so a check can grep the previous one's.
	if "$@" >"$T/out.new" 2>"$T/err.new"; then echo "ok $n - $what"
	else echo "not ok $n - $what"; sed 's/^/# /' "$T/out.new" "$T/err.new"; failed=$((failed + 1)); fi
	mv "$T/out.new" "$T/out"; mv "$T/err.new" "$T/err"
}
exits() { # exits CODE COMMAND...: the command exits with CODE
	local want=$1; shift
	"$@"; local got=$?
	[ "$got" = "$want" ] || { echo "exit $got, wanted $want" >&2; return 1; }
}

echo "1..23"
check "plan the example fleet" $SU plan --fleet $FLEET --out "$T/a.plan" --now 1700000000
check "summary shows the cost" grep -q "cost: 6 egress IPv4 addresses in use" "$T/out"
check "re-plan with no change is byte-identical" bash -c "$SU plan --fleet $FLEET --previous $T/a.plan --out $T/b.plan --now 1700000100 >/dev/null && cmp $T/a.plan $T/b.plan"
check "plan --json is one object with the cost" bash -c "$SU plan --fleet $FLEET --check --json --now 1 | jq -e '.cost.active_ips == 6 and .cost.per_server_ips == 21 and .serial == 1'"

printf 'datacenters:\n  a:\n    router: 10.0.0.1\n    servers:\n      s1: 10.0.1.300\nprefixes: []\n' >"$T/bad.yaml"
check "invalid fleet exits 3" exits 3 $SU plan --fleet "$T/bad.yaml" --out "$T/bad.plan"
check "error names file, line and value" grep -q "bad.yaml:5: server s1: bad IPv4 address '10.0.1.300'" "$T/err"
check "nothing written for an invalid fleet" test ! -e "$T/bad.plan"

sed -e 's/- {service: warp, country: IE, slices: 2}/- {service: warp, country: IE, slices: 64}/' -e 's#198.51.100.64/27#198.51.100.64/32#' $FLEET >"$T/big.yaml"
cp "$T/a.plan" "$T/keep.plan"
check "unsatisfiable demand exits 4" exits 4 $SU plan --fleet "$T/big.yaml" --out "$T/keep.plan" --now 1700000000
check "shortfall names DC, tag-set and IPs short" grep -Eq "lhr +country=IE,service=warp +[0-9]+ +[0-9]+" "$T/err"
check "existing plan untouched on failure" cmp "$T/a.plan" "$T/keep.plan"

check "who IP:PORT --json has the documented shape" bash -c "$SU who --plan $T/a.plan 198.51.100.64:7000 --json | jq -e '.ip == \"198.51.100.64\" and .port == 7000 and .dc == \"lhr\" and .server == \"lhr-s2\" and .slice == [6144,8191] and .tags.country == \"IE\" and .state == \"active\"'"
check "who IP lists the slices" bash -c "$SU who --plan $T/a.plan 198.51.100.64 --json | jq -e '.port == null and (.slices | length) == 6'"
check "who of a non-egress IP exits 5" exits 5 $SU who --plan "$T/a.plan" 192.0.2.1
check "who of a port below the slices exits 5" exits 5 $SU who --plan "$T/a.plan" 198.51.100.64:1500
check "who of a bad address exits 2" exits 2 $SU who --plan "$T/a.plan" 198.51.100.640
check "show --server --json lists that server's slices" bash -c "$SU show --plan $T/a.plan --server lhr-s2 --json | jq -e 'length == 4 and all(.[]; .server == \"lhr-s2\" and (has(\"port\") | not))'"
check "show of an unknown DC exits 5" exits 5 $SU show --plan "$T/a.plan" --dc nowhere
check "geofeed is RFC 8805 CSV" bash -c "$SU geofeed --plan $T/a.plan | grep -v '^#' | grep -Evq '^[0-9.]+/[0-9]+,[A-Z]{2},[A-Z]{2}-[A-Z0-9]+,[^,]*,\$' && exit 1 || exit 0"

sed 's/      lhr-s3: 10.1.1.3/      lhr-s3: 10.1.1.3\n      lhr-s4: 10.1.1.4/; /cdg-s3/d' $FLEET >"$T/changed.yaml"
check "re-plan after adding and removing servers" $SU plan --fleet "$T/changed.yaml" --previous "$T/a.plan" --out "$T/c.plan" --now 1700000200
check "diff shows the new server's slices and the drain" bash -c "$SU diff $T/a.plan $T/c.plan | grep -q 'assigned lhr-s4' && $SU diff $T/a.plan $T/c.plan | grep -q 'draining cdg-s3 until 1700000800'"
check "diff --json counts" bash -c "$SU diff --json $T/a.plan $T/c.plan | jq -e '.counts.assigned == 4 and .counts.draining == 3 and .counts.reassigned == 0'"
check "after the drain time the old slices show as drained" bash -c "$SU plan --fleet $T/changed.yaml --previous $T/c.plan --out $T/d.plan --now 1700009999 >/dev/null && $SU diff --json $T/c.plan $T/d.plan | jq -e '.counts.drained == 3 and .counts.freed == 0'"
check "every command has --help" bash -c "for c in plan who show geofeed diff; do $SU \$c --help | grep -q Usage || exit 1; done"

[ $failed = 0 ]
