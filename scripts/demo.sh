#!/usr/bin/env bash
# The demo: builds softunicast and runs the whole system on this machine —
# `softunicast lab up`, `lab run` (the story, every step checked), `lab down`.
# Usage, as root on Debian 12+: bash scripts/demo.sh   (SKIP_DEPS=1: no apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_DEPS:-0}" = 1 ] || bash scripts/install-deps.sh >/dev/null
make -s
SU=build/bin/softunicast
$SU lab down >/dev/null 2>&1 || true # a lab left over by an interrupted demo
trap '$SU lab down' EXIT
$SU lab up
$SU lab run
