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

# fast SECONDS COMMAND...: COMMAND's status, and failure if it used more
# than SECONDS of CPU (CPU, not wall time: suites share the cores).
fast() {
	local limit=$1 rc; shift
	local TIMEFORMAT='%3U %3S'
	{ time "$@" >"$T/fast.out" 2>"$T/fast.err"; } 2>"$T/fast.time"; rc=$?
	cat "$T/fast.out"; cat "$T/fast.err" >&2
	awk -v l="$limit" '$1 + $2 > l { print "took " $1 + $2 " s of CPU, limit " l; bad = 1 } END { exit bad }' \
		"$T/fast.time" >&2 || return 1
	return $rc
}
texts_match() { python3 tests/e2e/lib/cli_text_json.py "$SU" "$@"; }

echo "1..76"
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

# ---- hostile fleet files (issue 13 section 3) ----
python3 -c "print('[' * 80000)" >"$T/deep80.yaml"
python3 -c "print('[' * 400000)" >"$T/deep400.yaml"
python3 -c "print('\n'.join(' ' * d + 'k%d:' % d for d in range(2000)))" >"$T/deepblock.yaml"
check "deep nesting refused fast: 80 KB of '[' exits 3 in under 1 s" fast 1 exits 3 $SU plan --fleet "$T/deep80.yaml" --check
check "deep nesting refused fast: file, line and reason" grep -q "deep80.yaml:1: lists and mappings nested more than 16 deep" "$T/err"
check "deep nesting refused fast: 400 KB of '['" fast 1 exits 3 $SU plan --fleet "$T/deep400.yaml" --check
check "deep nesting refused fast: indented mappings, at the line of level 17" bash -c "$SU plan --fleet $T/deepblock.yaml --check 2>&1 | grep -q 'deepblock.yaml:17: lists and mappings nested'"
truncate -s 17M "$T/huge.yaml"
check "oversized file refused: 17 MiB exits 3 in under 1 s" fast 1 exits 3 $SU plan --fleet "$T/huge.yaml" --check
# "Without reading it": no read(2), pread(2) or mmap(2) of the file at all.
strace -f -y -e trace=read,pread64,readv,mmap -o "$T/huge.strace" $SU plan --fleet "$T/huge.yaml" --check 2>/dev/null
check "oversized file refused: not one byte of it read" sh -c "! grep -q 'huge.yaml>' $T/huge.strace"
check "oversized file refused: names the file and the limit" grep -q "huge.yaml: 17825792 bytes: a fleet file may have at most 16777216" "$T/err"
printf 'a: &x [1, 2]\nb: [*x, *x]\n' >"$T/alias.yaml"
check "oversized file refused: YAML anchors and aliases (billion laughs) refused" bash -c "$SU plan --fleet $T/alias.yaml --check 2>&1 | grep -q \"alias.yaml:1: YAML anchor '&x' refused\""

sed 's/slices: 2}/slices: 010}/' $FLEET >"$T/num.yaml"
check "yaml 1.1 ambiguous numbers: slices: 010 exits 3" exits 3 $SU plan --fleet "$T/num.yaml" --check
check "yaml 1.1 ambiguous numbers: the message names the ambiguity" grep -q "num.yaml:18: slices: '010' is ambiguous, a leading zero: YAML 1.1 reads '010' as octal 8" "$T/err"
for form in 0x10 0o10 0b10 1_000 +5 .5 1e3 1:30; do
	sed "s/slice: 2048 /slice: $form /" $FLEET >"$T/num.yaml"
	check "yaml 1.1 ambiguous numbers: slice: $form refused as ambiguous" bash -c "$SU plan --fleet $T/num.yaml --check 2>&1 | grep -q \"slice: '$form' is ambiguous\""
done
check "yaml 1.1 ambiguous numbers: who IP:080 exits 2" exits 2 $SU who --plan "$T/a.plan" 198.51.100.64:07000
check "yaml 1.1 ambiguous numbers: the flag's message names it" grep -q "port '07000' is ambiguous, a leading zero" "$T/err"
check "yaml 1.1 ambiguous numbers: plan --now 0x10 exits 2" exits 2 $SU plan --fleet $FLEET --check --now 0x10
check "yaml 1.1 ambiguous numbers: router --gue-port 06080 exits 2" bash -c "$SU router --gue-port 06080 --plan $T/a.plan --dc lhr --iface lo 2>&1; [ \$? = 2 ]"
check "yaml 1.1 ambiguous numbers: agent --gue-port 06080 exits 2" bash -c "$SU agent --gue-port 06080 --plan $T/a.plan 2>&1; [ \$? = 2 ]"
check "yaml 1.1 ambiguous numbers: connect --count 1_0 exits 2" bash -c "$SU connect --ping --count 1_0 127.0.0.1 2>&1; [ \$? = 2 ]"
sed 's/^drain: 10m .*/drain: 0600/' $FLEET >"$T/num.yaml"
check "yaml 1.1 ambiguous numbers: drain: 0600 refused" bash -c "$SU plan --fleet $T/num.yaml --check 2>&1 | grep -q \"drain: '0600' is ambiguous\""

sed 's/^drain: 10m .*/drain: 30s/' $FLEET >"$T/drain.yaml"
check "drain floor: drain: 30s exits 3" exits 3 $SU plan --fleet "$T/drain.yaml" --check
check "drain floor: the message states the floor and its reason" grep -q "drain.yaml:6: drain: 30s is below the floor of 240s: origins keep TIME_WAIT" "$T/err"
sed 's/^drain: 10m .*/drain: 0/' $FLEET >"$T/drain.yaml"
check "drain floor: drain: 0 exits 3" exits 3 $SU plan --fleet "$T/drain.yaml" --check
printf 'allow_short_drain: true\n' >>"$T/drain.yaml"
check "drain floor: allow_short_drain: true lets it through" $SU plan --fleet "$T/drain.yaml" --check
sed -i 's/allow_short_drain: true/allow_short_drain: yes/' "$T/drain.yaml"
check "drain floor: the override is a strict boolean (yes refused)" exits 3 $SU plan --fleet "$T/drain.yaml" --check

sed 's/city: Dublin/city: "Dublin\\ufeff"/' $FLEET >"$T/geo.yaml"
check "geofeed format characters: city with U+FEFF exits 3" exits 3 $SU plan --fleet "$T/geo.yaml" --check
check "geofeed format characters: file, line and the character, escaped" grep -qF "geo.yaml:34: prefix tags: tag city 'Dublin\uFEFF': U+FEFF (a format character)" "$T/err"
for v in '" Dublin"' '"Dub\\u200blin"' '"Dub\\u202elin"' '"Dublin\\u00a0"' "'Dub,lin'" "'Dub\"lin'"; do
	sed "s/city: Dublin/city: $v/" $FLEET >"$T/geo.yaml"
	check "geofeed format characters: city $v exits 3" exits 3 $SU plan --fleet "$T/geo.yaml" --check
done
sed 's/city: Dublin/city: Dublin, postal: "D02\\u200b"/' $FLEET >"$T/geo.yaml"
check "geofeed format characters: postal checked too" exits 3 $SU plan --fleet "$T/geo.yaml" --check
sed "s/city=Dublin/city=Dublin$(printf '\xef\xbb\xbf')/" "$T/a.plan" >"$T/edited.plan"
check "geofeed format characters: a hand-edited plan cannot publish one" exits 3 $SU geofeed --plan "$T/edited.plan"
check "geofeed format characters: and nothing is printed" test ! -s "$T/out"

sed 's/region: IE-L/region: NL-ZZ9/; s/country: IE, region/country: NL, region/' $FLEET >"$T/iso.yaml"
check "iso 3166 region: NL-ZZ9 exits 3" exits 3 $SU plan --fleet "$T/iso.yaml" --check
check "iso 3166 region: named with file and line" grep -q "iso.yaml:34: region 'NL-ZZ9' is not an ISO 3166-2 subdivision of country 'NL' (per iso-codes)" "$T/err"
check "iso 3166 region: iso-codes missing is a clear error" bash -c "SOFTUNICAST_ISO_CODES_DIR=$T/none $SU plan --fleet $FLEET --check 2>&1 >/dev/null | grep -q 'install the Debian package iso-codes'; [ \${PIPESTATUS[0]} = 3 ]"
check "iso 3166 region: geofeed without iso-codes exits 3" env SOFTUNICAST_ISO_CODES_DIR="$T/none" bash -c "$SU geofeed --plan $T/a.plan; [ \$? = 3 ]"

# ---- the CLI prints what is true (issue 13 section 4) ----
check "text output matches json: no buffer is formatted twice in one statement" python3 tests/e2e/lib/shared_buffer_lint.py src bench tests
check "who IP names the DC's router address, not the egress IP" bash -c "$SU who --plan $T/a.plan 198.51.100.64 | head -1 | grep -q '^198.51.100.64  dc lhr (router 10.1.0.1)  active\$'"
check "text output matches json: who IP" texts_match who "$T/c.plan" 198.51.100.96
check "text output matches json: who IP:PORT (draining)" texts_match who "$T/c.plan" 198.51.100.96:7000
check "text output matches json: show" texts_match show "$T/c.plan"
check "text output matches json: show --server" texts_match show "$T/c.plan" --server cdg-s3
check "text output matches json: diff" texts_match diff "$T/a.plan" "$T/c.plan"
check "text output matches json: geofeed" texts_match geofeed "$T/c.plan"
check "text output matches json: plan --cost" texts_match plan "$T/changed.yaml" --previous "$T/a.plan" --now 1700000200

[ $failed = 0 ]
