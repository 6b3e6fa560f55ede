#!/usr/bin/env bash
# The standard `collab bench` scenarios, each run RUNS times against a fresh
# collab server on real Redis and PostgreSQL (the CI backends: eval
# "$(bash .ci/backends.sh)" first), with the floors measured in the same run.
# Prints one JSON report per line to stdout; progress goes to stderr.
# Usage: bash scripts/bench.sh [RUNS] > /tmp/bench.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
: "${COLLAB_TEST_REDIS_URL:?run eval \"\$(bash .ci/backends.sh)\" first}"
: "${COLLAB_TEST_DATABASE_URL:?run eval \"\$(bash .ci/backends.sh)\" first}"
go build -o /tmp/collab-bench-bin ./cmd/collab
SECRET=bench-secret-0123456789abcdef
ADDR=127.0.0.1:18095
ulimit -n 65536 2>/dev/null || true

# Each run gets an empty database: the test database holds campaigns whose
# audience schedules would run during the benchmark.
BENCH_DB=collab_bench
DB_URL=$(sed -E "s#/[^/?]+(\?|$)#/$BENCH_DB\1#" <<<"$COLLAB_TEST_DATABASE_URL")

scenario() { # name, then bench flags
  local name=$1; shift
  for run in $(seq "$RUNS"); do
    psql "$COLLAB_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS $BENCH_DB" -qc "CREATE DATABASE $BENCH_DB" >/dev/null 2>&1
    COLLAB_ADDR=$ADDR COLLAB_REDIS_URL=$COLLAB_TEST_REDIS_URL COLLAB_DATABASE_URL=$DB_URL \
      COLLAB_JWT_SECRET=$SECRET COLLAB_REDIS_PREFIX="bench$(date +%s%N)" COLLAB_LOG_LEVEL=warn \
      /tmp/collab-bench-bin serve 2>/tmp/collab-bench-server.log &
    local pid=$!
    for _ in $(seq 100); do curl -sf "http://$ADDR/readyz" >/dev/null && break; sleep 0.1; done
    echo "bench: $name run $run" >&2
    /tmp/collab-bench-bin bench -url "http://$ADDR" -jwt-secret "$SECRET" -workspace "bench$run" -pid "$pid" -json "$@" |
      jq -c --arg s "$name" --argjson r "$run" '{scenario: $s, run: $r} + .'
    kill -TERM "$pid"; wait "$pid" || true
  done
}

scenario "1x400 writers, closed loop"          -campaigns 1 -writers 400 -duration 15s
scenario "100x10 writers, closed loop"         -campaigns 100 -writers 10 -duration 15s
scenario "100x10 writers, 5000 edits/s"        -campaigns 100 -writers 10 -rate 5000 -duration 15s
scenario "1 writer to 1000 watchers, 20/s"     -campaigns 1 -writers 1 -watchers 1000 -rate 20 -duration 15s
scenario "10000 idle sessions"                 -campaigns 100 -writers 0 -watchers 100 -duration 10s -dial-concurrency 200
scenario "10x10 writers, 30% on one field"     -campaigns 10 -writers 10 -hot 0.3 -rate 1000 -duration 15s

# Floors, same run: the edit script alone in Redis, and a plain WebSocket's memory.
echo "bench: floors" >&2
go test ./internal/draft/ -run '^$' -bench 'EditScript' -benchtime 3s -count "$RUNS" 2>/dev/null | grep Benchmark >&2
go test ./internal/session/ -run '^$' -bench 'IdleSession_Memory' -benchtime 1x -count "$RUNS" 2>/dev/null | grep Benchmark >&2
