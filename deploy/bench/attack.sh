#!/usr/bin/env bash
# The release binary as an attacker meets it (see attack.py for the attacks and what must hold),
# on this machine's loopback only; about a minute. TWOFACTOR_BIN=path runs that binary instead of
# building one. Exits non-zero when a limit did not hold.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=deploy/bench/common.sh
source deploy/bench/common.sh
need redis-server redis-server
python3 deploy/bench/attack.py "$bin"
