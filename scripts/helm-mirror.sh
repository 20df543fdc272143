#!/usr/bin/env bash
# Serves the offline chart mirror (../shared/helm-mirror: upstream chart archives + index.yaml) as a Helm
# repository on 127.0.0.1, for the tests and `make demo` (inventories read it via threetier_chart_repo_override).
#   scripts/helm-mirror.sh start    start the server, or reuse a running one; prints its URL
#   scripts/helm-mirror.sh stop     stop the server this script started (by its PID)
#   scripts/helm-mirror.sh status   print the URL and exit 0 when serving, exit 1 otherwise
# Environment: THREETIER_HELM_MIRROR_DIR (default ../shared/helm-mirror next to the repo),
# THREETIER_HELM_MIRROR_PORT (default: a free port chosen at start).
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"

MIRROR_DIR=${THREETIER_HELM_MIRROR_DIR:-$(cd "$THREETIER_ROOT/.." && pwd)/shared/helm-mirror}
STATE="$THREETIER_CACHE/helm-mirror"
PID_FILE="$STATE/pid"
PORT_FILE="$STATE/port"
LOG_FILE="$STATE/server.log"
PYTHON="$THREETIER_VENV/bin/python"
[[ -x $PYTHON ]] || PYTHON=$(command -v python3) || die "no python3 to serve the mirror with"

# ours PID: the process is alive and is the http.server this script started for MIRROR_DIR (a PID from a
# PID file may have been reused by an unrelated process after a crash or reboot).
ours() {
  local pid=$1 cmdline
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  cmdline=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"-m http.server"* && $cmdline == *"--directory $MIRROR_DIR "* ]]
}

url() { echo "http://127.0.0.1:$(cat "$PORT_FILE")"; }

serving() {
  [[ -f $PID_FILE && -f $PORT_FILE ]] && ours "$(cat "$PID_FILE")" \
    && "$PYTHON" - "$(url)/index.yaml" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
    sys.exit(0 if response.status == 200 and b"entries:" in response.read() else 1)
PY
}

free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  [[ -f $MIRROR_DIR/index.yaml ]] || die "no Helm repository at $MIRROR_DIR (index.yaml missing); set THREETIER_HELM_MIRROR_DIR"
  mkdir -p "$STATE"
  if serving; then
    url; return 0
  fi
  stop_quietly
  local port=${THREETIER_HELM_MIRROR_PORT:-$(free_port)} pid
  # setsid: the server outlives this script and the caller's process group (a pytest session, Molecule).
  # 9>&-: the server must not inherit the lock of this script (it would hold it for its whole life).
  setsid "$PYTHON" -m http.server --bind 127.0.0.1 --directory "$MIRROR_DIR" "$port" >"$LOG_FILE" 2>&1 < /dev/null 9>&- &
  pid=$!
  echo "$pid" > "$PID_FILE"
  echo "$port" > "$PORT_FILE"
  for _ in $(seq 50); do
    if serving; then
      log "helm mirror $MIRROR_DIR served at $(url) (pid $pid)"
      url; return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  stop_quietly
  die "the mirror server did not start on port $port: $(tail -n 5 "$LOG_FILE")"
}

stop_quietly() {
  if [[ -f $PID_FILE ]] && ours "$(cat "$PID_FILE")"; then
    local pid
    pid=$(cat "$PID_FILE")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$PID_FILE" "$PORT_FILE"
}

# One start or stop at a time (parallel test sessions would otherwise start two servers).
lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  # Bounded wait: a server started by an older version of this script inherited the lock and holds it.
  flock -w 30 9 || log "could not lock $STATE/.lock within 30 s; going on without it"
}

case ${1:-} in
  start)
    # A running server needs no lock; otherwise start (which checks again under the lock).
    if serving; then url; else lock; start; fi ;;
  stop) lock; stop_quietly; log "helm mirror stopped" ;;
  status)
    if serving; then url; else echo "not serving"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
