#!/usr/bin/env bash
# A tour of the planner: plans the bundled example fleet and walks through what the plan
# says — cost, who owns what, a stable re-plan, the geofeed.
# Usage: sudo bash scripts/plan-tour.sh   (installs packages unless SKIP_DEPS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_DEPS:-0}" = 1 ] || bash scripts/install-deps.sh >/dev/null
make -s
SU=build/bin/softunicast
D=build/demo
mkdir -p $D
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "1. Plan the example fleet (2 data centers x 3 servers, 6 egress tag-sets)" \
	$SU plan --fleet examples/fleet.yaml --out $D/plan --now 1700000000 --cost
step "2. Who owns a return packet to 198.51.100.64:7000?" \
	$SU who --plan $D/plan 198.51.100.64:7000
step "3. ... and to 203.0.113.16:5000, as JSON for scripts" \
	$SU who --plan $D/plan 203.0.113.16:5000 --json
step "4. Everything server lhr-s1 owns" \
	$SU show --plan $D/plan --server lhr-s1
sed 's/      lhr-s3: 10.1.1.3/      lhr-s3: 10.1.1.3\n      lhr-s4: 10.1.1.4/; /cdg-s3/d' examples/fleet.yaml >$D/fleet-changed.yaml
step "5. Re-plan after adding lhr-s4 and removing cdg-s3: nobody else moves" \
	$SU plan --fleet $D/fleet-changed.yaml --previous $D/plan --out $D/plan.2 --now 1700000300
step "6. What changed for live traffic" \
	$SU diff $D/plan $D/plan.2
step "7. The RFC 8805 geofeed of the egress space in use" \
	$SU geofeed --plan $D/plan.2
printf '\nDemo done: plans in %s.\n' "$D"
