#!/usr/bin/env bash
# Load benchmark of the three callflow endpoints on both stores, on this machine's loopback only.
# Builds the release binary, starts a private redis-server on a free port, seeds 1000 customers, and
# runs wrk for a fixed time against each endpoint. Usage: deploy/bench/run.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-32}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
cargo build --release --quiet

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

python3 - "$work/customers.json" <<'PY'
import json, sys
json.dump([{"id": f"c{i}", "email": f"user{i}@example.com", "phone": "+447911123456"} for i in range(1000)],
          open(sys.argv[1], "w"))
PY

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
pids+=($!)
sleep 0.5

run_store() {
  local name=$1 url=$2 port
  port=$(free_port)
  TFA__SERVER__BIND=127.0.0.1:$port TFA__STORE__URL=$url \
  TFA__SECURITY__ENCRYPTION_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= \
  TFA__DIRECTORY__SEED_FILE=$work/customers.json TFA__DELIVERY__OUTBOX_FILE=$work/outbox-$name.jsonl \
  TFA__CODES__MAX_SENDS=1000000 TFA__LOCKOUT__MAX_FAILURES=1000000 TFA__SMS__MAX_PER_NUMBER_PER_HOUR=0 \
  TFA__LOG__FILTER=warn ./target/release/twofactor serve &
  local pid=$!
  pids+=($pid)
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  for endpoint in check-verified-contact-methods send-authentication-code code-authentication; do
    printf '%-8s %-32s ' "$name" "$endpoint"
    ENDPOINT=$endpoint wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency \
      -s deploy/bench/callflow.lua "http://127.0.0.1:$port" 2>&1 |
      awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
           END {printf "%10s req/s  p50 %8s  p99 %8s  non-2xx %s\n", rps, p50, p99, (bad == "" ? 0 : bad)}'
  done
  kill "$pid"
}

echo "wrk: ${SECONDS_PER_RUN}s per endpoint, $CONNECTIONS connections, 2 threads; $(nproc) cores"
run_store memory memory://
run_store redis "redis://127.0.0.1:$redis_port/"
