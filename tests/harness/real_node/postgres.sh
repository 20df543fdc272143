#!/usr/bin/env bash
# PostgreSQL 17 from Debian trixie for the e2e tier, run on this host without Docker.
#
#   tests/harness/real_node/postgres.sh start    initialise once, start, wait until it accepts connections (idempotent)
#   tests/harness/real_node/postgres.sh stop     stop the postmaster this script started (pid file); idempotent
#   tests/harness/real_node/postgres.sh status   one JSON object: running, pid, listen, port, version, ...; exit 0 running, 1 not
#   tests/harness/real_node/postgres.sh reset    drop and recreate database `app` (sessions are terminated): a fresh schema
#
# How it runs: the binaries stay in a debootstrapped trixie rootfs (e2e_rootfs postgres17 trixie
# postgresql-17, cached). The postmaster runs chrooted into that rootfs as its `postgres` user (setpriv, no
# capabilities kept), inside a private mount namespace (unshare --mount) in which the data and socket
# directories under $THREETIER_E2E_DIR/postgres are bind-mounted into the rootfs and /dev/shm is a tmpfs.
# Those mounts exist only in that namespace: they vanish with the postmaster, nothing is left mounted on the
# host, and the cached rootfs is shared read-only by any number of data directories. The network namespace
# is the host's, so the server is reachable on E2E_PG_LISTEN.
#
# Environment (defaults):
#   E2E_PG_LISTEN=127.0.0.1        the ONE address listened on (the lead passes the node's address)
#   E2E_PG_PORT=5432
#   E2E_PG_CLIENT_CIDR=127.0.0.1/32  pg_hba: scram-sha-256 from here (and from the listen address itself, i.e.
#                                  this host), database `app`, role `app` only
# Files under $THREETIER_E2E_DIR/postgres: data/ (PGDATA), run/ (Unix socket, reachable only inside the
# namespace: superuser access is `local all postgres peer`), app-password (0600, generated once, kept across
# restarts and re-applied on every start), postgres.pid, postgres.log, listen (what the running server uses).
# Needs root (unshare, chroot) and a Debian mirror (E2E_DEBIAN_MIRROR) for the first rootfs build.
set -euo pipefail
# shellcheck source=../../../scripts/env.sh
. "$(dirname "$0")/../../../scripts/env.sh"
# shellcheck source=../../../scripts/lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
# shellcheck source=../../../scripts/rootfs.sh
. "$THREETIER_ROOT/scripts/rootfs.sh"

E2E_PG_LISTEN=${E2E_PG_LISTEN:-127.0.0.1}
E2E_PG_PORT=${E2E_PG_PORT:-5432}
E2E_PG_CLIENT_CIDR=${E2E_PG_CLIENT_CIDR:-127.0.0.1/32}

PG_DIR="$THREETIER_E2E_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_RUN="$PG_DIR/run"
PG_PIDFILE="$PG_DIR/postgres.pid"
PG_LOG="$PG_DIR/postgres.log"
PG_PASSFILE="$PG_DIR/app-password"
PG_LISTENFILE="$PG_DIR/listen"
# Paths inside the rootfs.
PG_BIN=/usr/lib/postgresql/17/bin
IN_DATA=/srv/e2e-pgdata
IN_RUN=/srv/e2e-pgrun

pg_rootfs() { e2e_rootfs postgres17 trixie postgresql-17; }

# pg_ids ROOTFS: "UID GID" of the rootfs's postgres user.
pg_ids() {
  local line
  line=$(grep '^postgres:' "$1/etc/passwd") || die "no postgres user in $1/etc/passwd"
  IFS=: read -r _ _ uid gid _ <<< "$line"
  printf '%s %s\n' "$uid" "$gid"
}

# pg_ns_argv ROOTFS: sets NS_ARGV to the command prefix that runs a command as postgres, chrooted into
# ROOTFS, in a new private mount namespace with the data and socket directories bound in. Every step execs,
# so the PID of "${NS_ARGV[@]}" CMD... started in the background is CMD's own PID.
pg_ns_argv() {
  local root=$1 uid gid
  read -r uid gid < <(pg_ids "$root")
  # shellcheck disable=SC2016 # expanded by the inner shell
  NS_ARGV=(unshare --mount --propagation private -- /bin/sh -ec '
    root=$1 data=$2 run=$3 uid=$4 gid=$5 in_data=$6 in_run=$7; shift 7
    mount --bind "$data" "$root$in_data"
    mount --bind "$run" "$root$in_run"
    mount -t tmpfs -o size=256m,mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
    exec chroot "$root" /usr/bin/setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all -- "$@"
  ' pg-ns "$root" "$PG_DATA" "$PG_RUN" "$uid" "$gid" "$IN_DATA" "$IN_RUN")
}

# pg_enter ROOTFS PID CMD...: runs CMD as postgres in the running server's mount namespace (its socket).
pg_enter() {
  local root=$1 pid=$2; shift 2
  local uid gid
  read -r uid gid < <(pg_ids "$root")
  nsenter --target "$pid" --mount -- chroot "$root" \
    /usr/bin/setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all -- "$@"
}

# pg_running_pid: the PID from the pid file when that process is still our postmaster, else nothing.
pg_running_pid() {
  [[ -f $PG_PIDFILE ]] || return 0
  local pid
  pid=$(<"$PG_PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  [[ -r /proc/$pid/cmdline ]] || return 0
  # Our postmaster: the postgres binary started on the bind-mounted data directory (guards PID reuse).
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "postgres -D $IN_DATA" || return 0
  printf '%s\n' "$pid"
}

pg_validate_env() {
  [[ $E2E_PG_LISTEN =~ ^[0-9A-Fa-f.:]+$ ]] || die "E2E_PG_LISTEN must be one IP address, got '$E2E_PG_LISTEN'"
  [[ $E2E_PG_LISTEN != 0.0.0.0 && $E2E_PG_LISTEN != :: ]] \
    || die "E2E_PG_LISTEN must be one address, not the wildcard $E2E_PG_LISTEN"
  if ! [[ $E2E_PG_PORT =~ ^[0-9]+$ ]] || ((E2E_PG_PORT < 1 || E2E_PG_PORT > 65535)); then
    die "E2E_PG_PORT must be a port number, got '$E2E_PG_PORT'"
  fi
  [[ $E2E_PG_CLIENT_CIDR =~ ^[0-9A-Fa-f.:]+/[0-9]+$ ]] \
    || die "E2E_PG_CLIENT_CIDR must be an address/prefix, got '$E2E_PG_CLIENT_CIDR'"
}

pg_password() {
  if [[ ! -s $PG_PASSFILE ]]; then
    # 32 URL-safe characters: no quoting issues in SQL, URLs or YAML.
    (umask 077 && head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$PG_PASSFILE")
    log "generated the app role's password into $PG_PASSFILE"
  fi
  chmod 0600 "$PG_PASSFILE"
  local pw
  pw=$(<"$PG_PASSFILE")
  [[ $pw =~ ^[A-Za-z0-9_-]+$ ]] || die "$PG_PASSFILE holds characters other than [A-Za-z0-9_-]"
  printf '%s' "$pw"
}

# pg_write_config ROOTFS: the settings that follow the environment, rewritten on every start.
pg_write_config() {
  local root=$1 uid gid
  read -r uid gid < <(pg_ids "$root")
  grep -qxF "include 'threetier-e2e.conf'" "$PG_DATA/postgresql.conf" \
    || printf "\ninclude 'threetier-e2e.conf'\n" >> "$PG_DATA/postgresql.conf"
  cat > "$PG_DATA/threetier-e2e.conf" <<CONF
# Written by tests/harness/real_node/postgres.sh on every start; edits are lost.
listen_addresses = '$E2E_PG_LISTEN'
port = $E2E_PG_PORT
unix_socket_directories = '$IN_RUN'
password_encryption = scram-sha-256
max_connections = 100
shared_buffers = 128MB
log_destination = 'stderr'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_connections = on
log_disconnections = off
CONF
  # The clients' CIDR, plus the listen address itself: the host's own tools (the image tests of
  # build-app-images.sh, psql) connect from it whatever the pods' CIDR is.
  local self_cidr="$E2E_PG_LISTEN/32"
  [[ $E2E_PG_LISTEN != *:* ]] || self_cidr="$E2E_PG_LISTEN/128"
  cat > "$PG_DATA/pg_hba.conf" <<HBA
# Written by tests/harness/real_node/postgres.sh on every start; edits are lost.
# TYPE  DATABASE  USER      ADDRESS                  METHOD
local   all       postgres                           peer
host    app       app       $E2E_PG_CLIENT_CIDR      scram-sha-256
host    app       app       $self_cidr      scram-sha-256
HBA
  chown "$uid:$gid" "$PG_DATA/threetier-e2e.conf" "$PG_DATA/pg_hba.conf"
  chmod 0600 "$PG_DATA/threetier-e2e.conf" "$PG_DATA/pg_hba.conf"
}

pg_version() {
  local root="$THREETIER_E2E_DIR/rootfs/postgres17"
  [[ -x $root$PG_BIN/postgres ]] || return 0
  chroot "$root" "$PG_BIN/postgres" --version 2>/dev/null | sed -n 's/^postgres (PostgreSQL) \([^ ]*\).*/\1/p'
}

cmd_status() {
  local pid listen=$E2E_PG_LISTEN port=$E2E_PG_PORT running=false
  pid=$(pg_running_pid)
  if [[ -n $pid ]]; then
    running=true
    [[ -f $PG_LISTENFILE ]] && read -r listen port < "$PG_LISTENFILE"
  fi
  python3 - "$running" "${pid:-}" "$listen" "$port" "$(pg_version)" "$PG_DATA" "$PG_PASSFILE" "$PG_LOG" <<'PY'
import json
import sys

running, pid, listen, port, version, data, passfile, logfile = sys.argv[1:]
print(json.dumps({
    "running": running == "true",
    "pid": int(pid) if pid else None,
    "listen": listen,
    "port": int(port),
    "version": version or None,
    "database": "app",
    "user": "app",
    "data_dir": data,
    "password_file": passfile,
    "log": logfile,
}))
PY
  # Exit status like tests/harness/local_cluster/cluster.sh status: 0 running, 1 not (Molecule's create/destroy rely on it).
  [[ $running == true ]]
}

cmd_start() {
  pg_validate_env
  local pid
  pid=$(pg_running_pid)
  if [[ -n $pid ]]; then
    local listen port
    read -r listen port < "$PG_LISTENFILE"
    [[ $listen == "$E2E_PG_LISTEN" && $port == "$E2E_PG_PORT" ]] \
      || die "already running (PID $pid) on $listen:$port, not on $E2E_PG_LISTEN:$E2E_PG_PORT: stop it first"
    log "already running (PID $pid) on $listen:$port"
    cmd_status
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "needs root (unshare, chroot)"
  local start=$SECONDS root uid gid pw
  root=$(pg_rootfs)
  read -r uid gid < <(pg_ids "$root")
  mkdir -p "$PG_DIR" "$PG_DATA" "$PG_RUN" "$root$IN_DATA" "$root$IN_RUN"
  chown "$uid:$gid" "$PG_DATA" "$PG_RUN"
  chmod 0700 "$PG_DATA"
  chmod 0755 "$PG_RUN"
  pw=$(pg_password)
  rm -f "$PG_PIDFILE"

  if [[ ! -s $PG_DATA/PG_VERSION ]]; then
    log "initdb into $PG_DATA"
    pg_ns_argv "$root"
    ("${NS_ARGV[@]}" "$PG_BIN/initdb" -D "$IN_DATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
      --auth-local=peer --auth-host=scram-sha-256) > "$PG_DIR/initdb.log" 2>&1 \
      || { tail -n 20 "$PG_DIR/initdb.log" >&2; die "initdb failed (log: $PG_DIR/initdb.log)"; }
  fi
  pg_write_config "$root"

  log "starting PostgreSQL $(pg_version) on $E2E_PG_LISTEN:$E2E_PG_PORT (clients: $E2E_PG_CLIENT_CIDR)"
  # setsid: the postmaster leaves this script's session (it outlives it); the exec chain keeps $! its PID.
  pg_ns_argv "$root"
  setsid "${NS_ARGV[@]}" "$PG_BIN/postgres" -D "$IN_DATA" >> "$PG_LOG" 2>&1 < /dev/null &
  pid=$!
  printf '%s\n' "$pid" > "$PG_PIDFILE"
  printf '%s %s\n' "$E2E_PG_LISTEN" "$E2E_PG_PORT" > "$PG_LISTENFILE"

  local ready=false
  for _ in $(seq 120); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$PG_LOG" >&2
      rm -f "$PG_PIDFILE"
      die "postgres exited during start-up (log: $PG_LOG)"
    fi
    if chroot "$root" "$PG_BIN/pg_isready" -q -h "$E2E_PG_LISTEN" -p "$E2E_PG_PORT" -t 1; then
      ready=true
      break
    fi
    sleep 0.5
  done
  [[ $ready == true ]] || die "postgres did not accept connections within 60 s (log: $PG_LOG)"
  [[ $(head -n1 "$PG_DATA/postmaster.pid") == "$pid" ]] \
    || die "postmaster.pid does not name PID $pid: refusing to manage a process this script did not start"

  # Role and database: created once, the password re-applied on every start (the file is the truth).
  pg_enter "$root" "$pid" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$IN_RUN" -p "$E2E_PG_PORT" -U postgres -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app LOGIN; END IF;
END \$\$;
ALTER ROLE app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$pw';
SELECT 'CREATE DATABASE app OWNER app' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'app') \gexec
SQL
  log "PostgreSQL ready in $((SECONDS - start)) s (PID $pid, log $PG_LOG)"
  cmd_status
}

cmd_reset() {
  local pid root
  pid=$(pg_running_pid)
  [[ -n $pid ]] || die "not running: start it first"
  root="$THREETIER_E2E_DIR/rootfs/postgres17"
  read -r _ port < "$PG_LISTENFILE"
  pg_enter "$root" "$pid" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$IN_RUN" -p "$port" -U postgres -d postgres <<SQL
DROP DATABASE IF EXISTS app WITH (FORCE);
CREATE DATABASE app OWNER app;
SQL
  log "database app dropped and recreated (empty)"
}

cmd_stop() {
  local pid
  pid=$(pg_running_pid)
  if [[ -z $pid ]]; then
    rm -f "$PG_PIDFILE"
    log "not running"
    return 0
  fi
  # SIGINT: PostgreSQL's fast shutdown (open transactions roll back, clean checkpoint).
  kill -INT "$pid"
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -0 "$pid" 2>/dev/null && die "postgres (PID $pid) still running 30 s after a fast shutdown request"
  rm -f "$PG_PIDFILE" "$PG_LISTENFILE"
  log "stopped (PID $pid)"
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  reset) cmd_reset ;;
  *) die "usage: $0 start|stop|status|reset" ;;
esac
