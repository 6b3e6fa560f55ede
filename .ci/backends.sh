#!/usr/bin/env bash
# Installs (Debian packages) and starts the real backends the integration
# suites need, on loopback ports of their own, then prints the variables that
# switch those suites on. Idempotent: a backend already running is reused.
# Usage: eval "$(bash .ci/backends.sh)"
set -euo pipefail
log() { echo "backends: $*" >&2; }

REDIS_PORT=${COLLAB_CI_REDIS_PORT:-6399}
PG_PORT=${COLLAB_CI_PG_PORT:-5439}
PG_DIR=${COLLAB_CI_PG_DIR:-/tmp/collab-ci-pg}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
if [ "${COLLAB_CI_BROWSER:-1}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
command -v node >/dev/null 2>&1 || missing+=(nodejs) # the client's unit tests
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >/tmp/collab-apt.log 2>&1 ||
    { tail -30 /tmp/collab-apt.log >&2; log "apt-get failed"; exit 1; }
fi

# Redis with an append-only file, fsync every second (the production setting
# the durability contract assumes).
if ! redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  mkdir -p /tmp/collab-ci-redis
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --dir /tmp/collab-ci-redis \
    --appendonly yes --appendfsync everysec --save "" --logfile /tmp/collab-ci-redis/redis.log >&2
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
redis-cli -p "$REDIS_PORT" ping >/dev/null || { log "redis did not start"; exit 1; }
log "redis on 127.0.0.1:$REDIS_PORT"

# A Redis Cluster of three primaries on loopback (no replicas: the suites
# prove that every campaign's keys share one slot and that nodes work over
# it; failover is the Sentinel fault test's).
CLUSTER_PORTS=${COLLAB_CI_CLUSTER_PORTS:-7101 7102 7103}
if [ "${COLLAB_CI_CLUSTER:-1}" = 1 ]; then
  first=${CLUSTER_PORTS%% *}
  if ! redis-cli -p "$first" cluster info 2>/dev/null | grep -q cluster_state:ok; then
    addrs=()
    for p in $CLUSTER_PORTS; do
      mkdir -p "/tmp/collab-ci-cluster/$p"
      redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
      rm -f "/tmp/collab-ci-cluster/$p/nodes.conf"
      redis-server --port "$p" --bind 127.0.0.1 --daemonize yes --dir "/tmp/collab-ci-cluster/$p" \
        --cluster-enabled yes --cluster-config-file nodes.conf --appendonly no --save '' \
        --logfile "/tmp/collab-ci-cluster/$p/redis.log"
      for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
      addrs+=("127.0.0.1:$p")
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >/tmp/collab-ci-cluster/create.log 2>&1 ||
      { tail -20 /tmp/collab-ci-cluster/create.log >&2; log "redis cluster create failed"; exit 1; }
    for _ in $(seq 100); do redis-cli -p "$first" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
  fi
  redis-cli -p "$first" cluster info | grep -q cluster_state:ok || { log "redis cluster not ok"; exit 1; }
  log "redis cluster on 127.0.0.1: $CLUSTER_PORTS"
fi

# PostgreSQL in a data directory of our own (initdb refuses to run as root).
PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/postgres | sort -V | tail -1)")
if ! "$PGBIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1; then
  if [ ! -f "$PG_DIR/PG_VERSION" ]; then
    mkdir -p "$PG_DIR" && chown postgres:postgres "$PG_DIR"
    runuser -u postgres -- "$PGBIN/initdb" -D "$PG_DIR" -A trust -U postgres >/dev/null
  fi
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w \
    -o "-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >&2
fi
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='collab'" | grep -q 1 ||
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE ROLE collab LOGIN PASSWORD 'collab' SUPERUSER" >&2
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='collab_test'" | grep -q 1 ||
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE collab_test OWNER collab" >&2
log "postgresql on 127.0.0.1:$PG_PORT"

echo "export COLLAB_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
echo "export COLLAB_TEST_DATABASE_URL=postgres://collab:collab@127.0.0.1:$PG_PORT/collab_test?sslmode=disable"
echo "export COLLAB_TEST_REDIS_PORT=$REDIS_PORT"
if [ "${COLLAB_CI_CLUSTER:-1}" = 1 ]; then
  echo "export COLLAB_TEST_REDIS_CLUSTER_URL=redis-cluster://$(echo $CLUSTER_PORTS | sed 's/\([0-9]*\)/127.0.0.1:\1/g; s/ /,/g')"
fi
echo "export COLLAB_TEST_PG_DIR=$PG_DIR"
