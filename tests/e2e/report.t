#!/usr/bin/env bash
# `softunicast report`: the HTML picture of the address space, rendered in
# headless Chromium.  Checks the DOM the browser built (one cell per slot of
# the example fleet, colours per DC, draining slots hatched, the cost chart)
# and the screenshot's pixels (every DC's colour is on screen).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SU=$ROOT/${SU_BUILD:-build}/bin/softunicast
FLEET=$ROOT/examples/fleet.yaml
T=$(mktemp -d /tmp/su-report.XXXXXX)
. "$ROOT/tests/e2e/lib/tap.sh" # ok, skip_all (removes $T), N, FAILS
trap 'rm -rf "$T"' EXIT

CHROMIUM=$(command -v chromium || command -v chromium-browser) || skip_all "chromium not installed"
for c in jq python3; do command -v $c >/dev/null || skip_all "$c not installed"; done

check() { local what=$1; shift; "$@" >"$T/out" 2>&1; ok $? "$what" "$(cat "$T/out")"; }
# The flags the workplace's probe uses: no network at all, a fresh profile.
chrome() {
	timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync \
		--user-data-dir="$(mktemp -d "$T/profile.XXXXXX")" "$@" 2>>"$T/chrome.log"
}
dom() { jq -e "$1" "$T/dom.json" >/dev/null; }

"$SU" plan --fleet "$FLEET" --out "$T/a.plan" --now 1700000000 >/dev/null
# cdg-s3 leaves the fleet: its slices go draining, so the page has all three states.
sed '/cdg-s3:/d' "$FLEET" >"$T/smaller.yaml"
"$SU" plan --fleet "$T/smaller.yaml" --previous "$T/a.plan" --out "$T/b.plan" --now 1700000100 >/dev/null
"$SU" show --plan "$T/b.plan" --json >"$T/show.json"

check "report writes the page" "$SU" report --plan "$T/b.plan" --out "$T/b.html"
check "the page is readable by others (0644)" test "$(stat -c %a "$T/b.html")" = 644
check "the page fetches nothing (no src/href to any URL)" bash -c "! grep -Eq '(src|href)=\"[a-z]+:' '$T/b.html'"
chrome --dump-dom "file://$T/b.html" >"$T/dom.html"
python3 "$ROOT/tests/e2e/lib/report_dom.py" "$T/dom.html" >"$T/dom.json"
check "Chromium parsed the page" dom '.slots > 0'

ips=$(jq '[.[].ip] | unique | length' "$T/show.json")
check "one cell per slot of the example fleet ($ips IPs x 31 slices)" dom ".slots == $ips * 31"
check "every IP of the plan has its row" bash -c "[ \"\$(jq -c '[.[].ip] | unique' '$T/show.json')\" = \"\$(jq -c .ips '$T/dom.json')\" ]"
active=$(jq '[.[] | select(.state == "active")] | length' "$T/show.json")
draining=$(jq '[.[] | select(.state == "draining")] | length' "$T/show.json")
check "active cells match the plan ($active)" dom ".states.active == $active"
check "draining cells match the plan ($draining)" dom ".states.draining == $draining and $draining > 0"
check "free cells are the rest" dom ".states.free == .slots - $active - $draining"
check "each DC has its own colour" dom '(.dc_colours | to_entries | map(.value) | unique | length) == (.dc_colours | length) and (.dc_colours | length) == 2'
check "active cells carry their DC's colour" dom '.dc_colours as $dc | [.fills | to_entries[] | .value == [$dc[.key]]] | all' 
check "draining cells are hatched" dom '[.draining_fills[] | test("^url\\(#hatch-[0-9]+\\)$")] | all'
check "cost chart: IPs in use" dom ".cost[\"cost-used\"] == $ips"
check "cost chart: one IP per server per tag-set above it" dom '.cost["cost-per-server"] > .cost["cost-used"]'

chrome --window-size=1000,1200 --screenshot="$T/shot.png" "file://$T/b.html" >/dev/null
python3 "$ROOT/tests/e2e/lib/png_colours.py" "$T/shot.png" $(jq -r '.dc_colours[]' "$T/dom.json") >"$T/px"
check "every DC's colour fills its cells on screen (more than the legend swatch)" awk '$2 < 500 { bad = 1 } END { exit bad || NR != 2 }' "$T/px"

check "--max-rows 2 draws 2 rows and says how many were left out" "$SU" report --plan "$T/b.plan" --out "$T/c.html" --max-rows 2
python3 "$ROOT/tests/e2e/lib/report_dom.py" "$T/c.html" >"$T/dom.json"
check "  ... 2 rows of cells, a note per cut prefix" dom '.slots == 62 and (.skipped | length) >= 1'

"$SU" report --plan "$T/b.plan" --out "$T/c.html" --max-rows 0 2>"$T/err"
ok $([ $? = 2 ] && grep -q "max-rows '0'" "$T/err"; echo $?) "bad --max-rows: exit 2 naming the value" "$(cat "$T/err")"
"$SU" report --plan "$T/b.plan" --out "$T/no/such/dir/x.html" 2>"$T/err"
ok $([ $? = 1 ] && grep -q "$T/no/such/dir/x.html (--out)" "$T/err"; echo $?) "unwritable --out: exit 1 naming the path" "$(cat "$T/err")"
echo garbage >"$T/bad.plan"
"$SU" report --plan "$T/bad.plan" --out "$T/d.html" 2>"$T/err"
ok $([ $? = 3 ] && [ ! -e "$T/d.html" ]; echo $?) "invalid plan: exit 3, nothing written" "$(cat "$T/err")"

echo "1..$N"
[ "$FAILS" = 0 ]
