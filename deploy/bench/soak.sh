#!/usr/bin/env bash
# Memory soak on this machine's loopback only: builds the release binary, runs it under wrk for a
# fixed time WITHOUT scraping /metrics, and prints the process's resident memory (VmRSS) every 10 s,
# so memory that grows per request shows up. Stops by itself.
# Usage: deploy/bench/soak.sh [seconds] [memory|redis] [connections]
# TWOFACTOR_BIN=path runs that binary instead of building one (to compare with an older build).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${1:-180}
STORE=${2:-memory}
CONNECTIONS=${3:-32}

# shellcheck source=deploy/bench/common.sh
source deploy/bench/common.sh
need wrk wrk

python3 - "$work/customers.json" <<'PY'
import json, sys
json.dump([{"id": f"c{i}", "email": f"user{i}@example.com", "phone": "+447911123456"} for i in range(1000)],
          open(sys.argv[1], "w"))
PY

case $STORE in
  memory) url=memory:// ;;
  redis)
    need redis-server redis-server
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null &
    pids+=($!)
    sleep 0.5
    url=redis://127.0.0.1:$redis_port/ ;;
  *) echo "store must be memory or redis" >&2; exit 2 ;;
esac

port=$(free_port)
TFA__SERVER__BIND=127.0.0.1:$port TFA__STORE__URL=$url \
TFA__SECURITY__ENCRYPTION_KEY=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= \
TFA__DIRECTORY__SEED_FILE=$work/customers.json TFA__DELIVERY__OUTBOX_FILE=$work/outbox.jsonl \
TFA__LOG__FILTER=warn "$bin" serve &
pid=$!
pids+=($pid)
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

rss() { awk '/^VmRSS/ {print $2 " kB"}' "/proc/$pid/status"; }
echo "soak: ${DURATION}s, store $STORE, $CONNECTIONS connections, check-verified-contact-methods, /metrics never scraped"
echo "t=0s RSS $(rss)"
ENDPOINT=check-verified-contact-methods wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" \
  -s deploy/bench/callflow.lua "http://127.0.0.1:$port" >"$work/wrk.txt" 2>&1 &
wrk_pid=$!
pids+=($wrk_pid)
start=$(date +%s)
while kill -0 "$wrk_pid" 2>/dev/null; do
  sleep 10
  kill -0 "$pid" 2>/dev/null || { echo "the service exited" >&2; exit 1; }
  echo "t=$(( $(date +%s) - start ))s RSS $(rss)"
  # wrk stops at DURATION; this bound only guards against it hanging.
  (( $(date +%s) - start > DURATION + 30 )) && break
done
wait "$wrk_pid" 2>/dev/null || true
awk '/requests in/ {print "wrk:", $0} /Requests\/sec/ {print "wrk:", $0}' "$work/wrk.txt"
echo "after wrk: RSS $(rss)"
