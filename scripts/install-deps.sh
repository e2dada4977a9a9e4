#!/usr/bin/env bash
# Installs the Debian packages softunicast needs to build, test and run its
# demo (the list is .ci/packages).  Run as root on Debian 12 or later.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $(grep -v '^#' .ci/packages)
