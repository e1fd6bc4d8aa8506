#!/usr/bin/env bash
# An MLflow tracking server with a PostgreSQL backend store, for sweeps whose jobs log at the same
# time (a shared SQLite file gives "database is locked" under concurrent writers).
#
#   launchers/tracking-server.sh start [STATE_DIR]   # prints the tracking URI when ready
#   launchers/tracking-server.sh stop  [STATE_DIR]
#
# Jobs then log with tracking=server tracking.uri=http://HOST:PORT. Artifacts go through the
# server (--artifacts-destination), so compute nodes need no shared file system for them.
# Settings: MLFLOW_HOST (127.0.0.1; use the login node's address on a cluster), MLFLOW_PORT (5000),
# PG_PORT (5433), PYTHON (python3 of the environment with mlflow and psycopg2), MLFLOW_WORKERS (4).
# PostgreSQL listens on 127.0.0.1 only, with trust authentication for local connections.
set -euo pipefail

cmd=${1:?usage: tracking-server.sh start|stop [STATE_DIR]}
state=$(realpath -m "${2:-${BIONER_TRACKING_STATE:-/var/lib/bioner-grid-tracking}}")
host=${MLFLOW_HOST:-127.0.0.1}
port=${MLFLOW_PORT:-5000}
pg_port=${PG_PORT:-5433}
python=${PYTHON:-python3}
workers=${MLFLOW_WORKERS:-4}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_pg() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

case "$cmd" in
start)
  mkdir -p "$state/pg" "$state/artifacts" "$state/run"
  [ "$(id -u)" = 0 ] && chown postgres "$state/pg" "$state/run"
  if [ ! -f "$state/pg/PG_VERSION" ]; then
    as_pg "$bindir/initdb -D '$state/pg' -U postgres -A trust --no-sync" > "$state/initdb.log"
  fi
  if ! as_pg "$bindir/pg_ctl -D '$state/pg' status" > /dev/null 2>&1; then
    as_pg "$bindir/pg_ctl -D '$state/pg' -l '$state/run/postgres.log' -w -o \"-p $pg_port -k '$state/run' -c listen_addresses=127.0.0.1\" start" > /dev/null
  fi
  as_pg "$bindir/psql -h 127.0.0.1 -p $pg_port -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='mlflow'\"" | grep -q 1 \
    || as_pg "$bindir/createdb -h 127.0.0.1 -p $pg_port -U postgres mlflow"
  if [ -f "$state/mlflow.pid" ] && kill -0 "$(cat "$state/mlflow.pid")" 2> /dev/null; then
    echo "http://$host:$port"; exit 0
  fi
  MLFLOW_DISABLE_TELEMETRY=true nohup "$python" -m mlflow server \
    --backend-store-uri "postgresql+psycopg2://postgres@127.0.0.1:$pg_port/mlflow" \
    --artifacts-destination "$state/artifacts" --host "$host" --port "$port" --workers "$workers" \
    > "$state/mlflow.log" 2>&1 &
  echo $! > "$state/mlflow.pid"
  for _ in $(seq 120); do
    if "$python" -c "import urllib.request,sys; urllib.request.urlopen('http://$host:$port/health', timeout=2)" 2> /dev/null; then
      echo "http://$host:$port"; exit 0
    fi
    kill -0 "$(cat "$state/mlflow.pid")" 2> /dev/null || break
    sleep 1
  done
  echo "mlflow server did not come up; last lines of $state/mlflow.log:" >&2
  tail -n 20 "$state/mlflow.log" >&2
  exit 1
  ;;
stop)
  if [ -f "$state/mlflow.pid" ]; then
    pid=$(cat "$state/mlflow.pid")
    pkill -TERM -P "$pid" 2> /dev/null || true
    kill "$pid" 2> /dev/null || true
    rm -f "$state/mlflow.pid"
  fi
  [ -f "$state/pg/PG_VERSION" ] && as_pg "$bindir/pg_ctl -D '$state/pg' -m fast stop" > /dev/null 2>&1 || true
  ;;
*) echo "usage: tracking-server.sh start|stop [STATE_DIR]" >&2; exit 2 ;;
esac
