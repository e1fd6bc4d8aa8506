#!/usr/bin/env bash
# An MLflow tracking server with a PostgreSQL backend store, for sweeps whose jobs log at the same
# time (a shared SQLite file gives "database is locked" under concurrent writers). Safe on a shared
# login node: nobody without the generated credentials can read or write the store.
#
#   launchers/tracking-server.sh start [STATE_DIR]   # prints the tracking URI when ready (no secret in it)
#   eval "$(launchers/tracking-server.sh env [STATE_DIR])"   # exports MLFLOW_TRACKING_USERNAME/PASSWORD
#   launchers/tracking-server.sh stop  [STATE_DIR]
#
# Jobs then log with tracking=server tracking.uri=http://HOST:PORT and the two variables in their
# environment (submitit and SLURM pass the submitting shell's environment on). `env` refuses to
# print to a terminal; the same lines are in STATE_DIR/secrets/client.env (mode 0600) for
# `set -a; . STATE_DIR/secrets/client.env; set +a`. Artifacts go through the server
# (--artifacts-destination), so compute nodes need no shared file system for them.
#
# Security (what a colleague on the same machine can no longer do):
# - PostgreSQL is initialised with scram-sha-256 password authentication for every connection (no
#   trust lines), listens on 127.0.0.1 and a socket in STATE_DIR/run only, and the store lives in a
#   database owned by the role `mlflow`, which is no superuser (cannot COPY ... TO PROGRAM).
# - The MLflow server runs MLflow's basic-auth app: every request but /health needs the admin
#   user's password; the auth app keeps its users in STATE_DIR/auth/basic_auth.db.
# - Every password is generated on first start (Python's `secrets`) into STATE_DIR/secrets, mode
#   0600 (the script runs under umask 077), and reaches the programs through files or their
#   environment, never a command line (visible to everyone in `ps`) or a URI; nothing prints one.
# - There is no way to turn authentication off. MLFLOW_HOST may be a non-loopback address only
#   because of that; HTTP basic auth is not encrypted, so off the login node prefer an SSH tunnel
#   (ssh -L 5000:127.0.0.1:5000 login-node) or a TLS proxy in front.
#
# Settings: MLFLOW_HOST (127.0.0.1), MLFLOW_PORT (5000), PG_PORT (5433), PYTHON (python3 of the
# environment with mlflow, psycopg2 and Flask-WTF), MLFLOW_WORKERS (4).
set -euo pipefail
umask 077  # everything this script creates (secrets, databases, logs) is its owner's alone

usage="usage: tracking-server.sh start|stop|env [STATE_DIR]"
cmd=${1:?$usage}
state=$(realpath -m "${2:-${BIONER_TRACKING_STATE:-/var/lib/bioner-grid-tracking}}")
host=${MLFLOW_HOST:-127.0.0.1}
port=${MLFLOW_PORT:-5000}
pg_port=${PG_PORT:-5433}
python=${PYTHON:-python3}
workers=${MLFLOW_WORKERS:-4}
secrets=$state/secrets
admin=admin  # the MLflow user the jobs log as
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

die() { echo "tracking-server.sh: $*" >&2; exit 1; }

as_pg() {  # PostgreSQL refuses to run as root; su keeps the environment (PGPASSWORD), not the command line
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

new_secret() {  # STATE_DIR/secrets/$1: a random password, made once (mode 0600 by the umask)
  [ -s "$secrets/$1" ] || "$python" -c 'import secrets; print(secrets.token_hex(24))' > "$secrets/$1"
}

superuser_sql() {  # SQL on stdin, run as PostgreSQL's superuser with its password from the secrets folder
  (export PGPASSWORD; PGPASSWORD=$(cat "$secrets/postgres.password")
   as_pg "$bindir/psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $pg_port -U postgres -d postgres -tA -f -")
}

case "$cmd" in
start)
  [ -x "$bindir/initdb" ] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
  "$python" -c "import flask_wtf, psycopg2" 2> /dev/null \
    || die "$python lacks Flask-WTF or psycopg2 (pip install 'mlflow[auth]' psycopg2-binary)"
  case "$host" in
    127.*|localhost|::1|\[::1\]) ;;
    *) echo "tracking-server.sh: binding to $host: reachable from other machines, with authentication on;" \
            "HTTP basic auth is unencrypted, prefer an SSH tunnel or a TLS proxy" >&2 ;;
  esac
  mkdir -p "$state"
  # The state folder holds the secrets: private to its owner. Run as root, PostgreSQL runs as user
  # postgres, which must pass through it to its own folders (pg, run), so others may traverse it
  # but not list it; the secrets are mode 0600 either way.
  if [ "$(id -u)" = 0 ]; then chmod 711 "$state"; else chmod 700 "$state"; fi
  mkdir -p "$state/pg" "$state/artifacts" "$state/run" "$state/auth" "$secrets"
  chmod 700 "$secrets"
  [ "$(id -u)" = 0 ] && chown postgres "$state/pg" "$state/run"
  new_secret postgres.password
  new_secret mlflow-db.password
  new_secret mlflow-admin.password
  new_secret flask-secret.key  # signs the auth app's CSRF tokens (the same key for every worker)
  if [ ! -f "$state/pg/PG_VERSION" ]; then
    # initdb reads the superuser's password from a file; run as root, initdb runs as user postgres,
    # which cannot read ours: a copy of its own in run/ (its 0700 folder), removed at once
    pwfile=$secrets/postgres.password
    if [ "$(id -u)" = 0 ]; then
      pwfile=$state/run/initdb.pw
      install -m 600 -o postgres "$secrets/postgres.password" "$pwfile"
    fi
    as_pg "$bindir/initdb -D '$state/pg' -U postgres --auth=scram-sha-256 --pwfile='$pwfile' --no-sync" > "$state/initdb.log" \
      || { rm -f "$state/run/initdb.pw"; die "initdb failed; see $state/initdb.log"; }
    rm -f "$state/run/initdb.pw"
  elif grep -Eq '^[[:space:]]*(local|host)[^#]*[[:space:]](trust|password)([[:space:]]|$)' "$state/pg/pg_hba.conf"; then
    die "$state/pg was initialised with trust (or plain password) authentication by an older version of" \
        "this script: anyone on this machine can take it over. Stop it, move $state/pg away and start again" \
        "(runs recorded there can be copied over with mlflow's export tools)"
  fi
  if ! as_pg "$bindir/pg_ctl -D '$state/pg' status" > /dev/null 2>&1; then
    as_pg "$bindir/pg_ctl -D '$state/pg' -l '$state/run/postgres.log' -w -o \"-p $pg_port -k '$state/run' -c listen_addresses=127.0.0.1 -c unix_socket_permissions=0700\" start" > /dev/null
  fi
  [ -s "$secrets/postgres.password" ] || die "$secrets/postgres.password is missing: cannot set up the mlflow role"
  # The store's own role: owns its database, no superuser, no CREATEDB/CREATEROLE. SQL through
  # stdin (printf is a shell builtin), so its password is on no command line.
  if ! echo "SELECT 1 FROM pg_roles WHERE rolname = 'mlflow'" | superuser_sql | grep -q 1; then
    printf "CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '%s';\n" \
      "$(cat "$secrets/mlflow-db.password")" | superuser_sql
  fi
  if ! echo "SELECT 1 FROM pg_database WHERE datname = 'mlflow'" | superuser_sql | grep -q 1; then
    printf 'CREATE DATABASE mlflow OWNER mlflow;\nREVOKE ALL ON DATABASE mlflow FROM PUBLIC;\n' | superuser_sql
  fi
  # libpq reads the role's password from this file (it must be 0600); the URI carries no password
  printf '127.0.0.1:%s:mlflow:mlflow:%s\n' "$pg_port" "$(cat "$secrets/mlflow-db.password")" > "$secrets/pgpass"
  printf 'export MLFLOW_TRACKING_USERNAME=%s\nexport MLFLOW_TRACKING_PASSWORD=%s\n' \
    "$admin" "$(cat "$secrets/mlflow-admin.password")" > "$secrets/client.env"
  cat > "$state/auth/basic_auth.ini" << EOF
[mlflow]
# Users not granted an experiment see nothing of it; the admin (whose password is in
# ../secrets/mlflow-admin.password) sees everything.
default_permission = NO_PERMISSIONS
database_uri = sqlite:///$state/auth/basic_auth.db
admin_username = $admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Checking a password is a deliberately slow hash (PBKDF2): uncached, eight jobs logging metrics
# spend minutes on it. A worker trusts a verified (user, password) for 60 s; a password change
# made through another worker reaches it within that time.
auth_cache_ttl_seconds = 60
EOF
  if [ -f "$state/mlflow.pid" ] && kill -0 "$(cat "$state/mlflow.pid")" 2> /dev/null; then
    echo "http://$host:$port"; exit 0
  fi
  # The admin password and the CSRF key reach the auth app through its environment (MLflow creates
  # the admin user with that password on the first start and ignores it afterwards).
  (export PGPASSFILE="$secrets/pgpass" MLFLOW_AUTH_CONFIG_PATH="$state/auth/basic_auth.ini" \
          MLFLOW_DISABLE_TELEMETRY=true MLFLOW_AUTH_ADMIN_PASSWORD
   MLFLOW_AUTH_ADMIN_PASSWORD=$(cat "$secrets/mlflow-admin.password")
   export MLFLOW_FLASK_SERVER_SECRET_KEY; MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$secrets/flask-secret.key")
   unset MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD PGPASSWORD
   exec nohup "$python" -m mlflow server --app-name basic-auth \
     --backend-store-uri "postgresql+psycopg2://mlflow@127.0.0.1:$pg_port/mlflow" \
     --artifacts-destination "$state/artifacts" --host "$host" --port "$port" --workers "$workers" \
     > "$state/mlflow.log" 2>&1) &
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
env)
  # For eval "$(tracking-server.sh env)": on a terminal the password would land on the screen
  # and in the scrollback, so that is refused.
  [ -t 1 ] && die "env prints the credential: use it as eval \"\$(launchers/tracking-server.sh env $state)\""
  [ -s "$secrets/client.env" ] || die "no credential in $secrets (run tracking-server.sh start $state first)"
  cat "$secrets/client.env"
  ;;
stop)
  if [ -f "$state/mlflow.pid" ]; then
    pid=$(cat "$state/mlflow.pid")
    pkill -TERM -P "$pid" 2> /dev/null || true
    kill "$pid" 2> /dev/null || true
    # uvicorn lets its workers finish first (seconds; a worker still starting up, longer): PostgreSQL
    # stopped under them makes them crash and be respawned, so wait for MLflow before stopping it
    for _ in $(seq 90); do kill -0 "$pid" 2> /dev/null || break; sleep 1; done
    rm -f "$state/mlflow.pid"
  fi
  [ -f "$state/pg/PG_VERSION" ] && as_pg "$bindir/pg_ctl -D '$state/pg' -m fast stop" > /dev/null 2>&1 || true
  ;;
*) echo "$usage" >&2; exit 2 ;;
esac
