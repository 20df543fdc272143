#!/usr/bin/env bash
# An S3 endpoint for the e2e tier's logical backups: moto in server mode (the project's virtualenv), on the
# node's address only, with the backup bucket created.
#
#   tests/harness/real_node/s3.sh start    start it (or reuse the one this script started), create the bucket
#   tests/harness/real_node/s3.sh stop     stop the server this script started (PID + start time); idempotent
#   tests/harness/real_node/s3.sh status   one JSON object: running, pid, url, bucket, objects; exit 0 running, 1 not
#
# Environment (defaults): E2E_S3_LISTEN=127.0.0.1 (the lead passes the node's address, so pods reach it),
# E2E_S3_PORT=9000, E2E_S3_BUCKET=threetier-e2e-backups. moto keeps objects in memory: a restart empties the
# bucket, which is what a throwaway tier wants. Files under $THREETIER_E2E_DIR/s3: pid, listen, server.log.
set -euo pipefail
# shellcheck source=../../../scripts/env.sh
. "$(dirname "$0")/../../../scripts/env.sh"
# shellcheck source=../../../scripts/lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"

E2E_S3_LISTEN=${E2E_S3_LISTEN:-127.0.0.1}
E2E_S3_PORT=${E2E_S3_PORT:-9000}
E2E_S3_BUCKET=${E2E_S3_BUCKET:-threetier-e2e-backups}
S3_DIR="${THREETIER_E2E_DIR:-$THREETIER_CACHE/e2e}/s3"
PID_FILE="$S3_DIR/pid"
LISTEN_FILE="$S3_DIR/listen"
LOG_FILE="$S3_DIR/server.log"
PY="$THREETIER_VENV/bin/python"

# running_pid: the PID recorded at start when that process is still the moto_server this script started (a
# PID alone may have been reused after a crash or reboot, so its start time is compared too).
running_pid() {
  local pid started
  [[ -f $PID_FILE ]] || return 1
  read -r pid started < "$PID_FILE" || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ $(cut -d' ' -f22 "/proc/$pid/stat" 2>/dev/null) == "$started" ]] || return 1
  printf '%s\n' "$pid"
}

url() { printf 'http://%s\n' "$(cat "$LISTEN_FILE")"; }

# s3 PYTHON: runs a boto3 snippet against the server (variables: client, bucket).
s3() {
  "$PY" - "$(url)" "$E2E_S3_BUCKET" <<PY
import sys, boto3
client = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                      aws_access_key_id="e2e", aws_secret_access_key="e2e")
bucket = sys.argv[2]
$1
PY
}

cmd_status() {
  local pid objects=null
  if pid=$(running_pid); then
    objects=$(s3 'print(client.list_objects_v2(Bucket=bucket).get("KeyCount", 0))' 2>/dev/null || echo null)
    printf '{"running": true, "pid": %s, "url": "%s", "bucket": "%s", "objects": %s}\n' "$pid" "$(url)" "$E2E_S3_BUCKET" "$objects"
    return 0
  fi
  printf '{"running": false}\n'
  return 1
}

cmd_start() {
  local pid
  mkdir -p "$S3_DIR"
  if pid=$(running_pid); then
    [[ $(cat "$LISTEN_FILE") == "$E2E_S3_LISTEN:$E2E_S3_PORT" ]] \
      || die "moto already runs on $(cat "$LISTEN_FILE"), not $E2E_S3_LISTEN:$E2E_S3_PORT: stop it first"
    log "moto already runs (pid $pid) at $(url)"
  else
    [[ -x $THREETIER_VENV/bin/moto_server ]] || die "moto_server is missing from $THREETIER_VENV (make setup)"
    ip -o addr show | grep -q " inet $E2E_S3_LISTEN/" \
      || die "$E2E_S3_LISTEN is not an address of this host (is the e2e node up?)"
    setsid "$THREETIER_VENV/bin/moto_server" -H "$E2E_S3_LISTEN" -p "$E2E_S3_PORT" > "$LOG_FILE" 2>&1 < /dev/null &
    pid=$!
    printf '%s %s\n' "$pid" "$(cut -d' ' -f22 "/proc/$pid/stat")" > "$PID_FILE"
    printf '%s:%s\n' "$E2E_S3_LISTEN" "$E2E_S3_PORT" > "$LISTEN_FILE"
    local deadline=$((SECONDS + 30))
    until curl -fsS -o /dev/null "$(url)/moto-api/" 2>/dev/null; do
      kill -0 "$pid" 2>/dev/null || { tail -n 20 "$LOG_FILE" >&2; die "moto_server exited"; }
      [[ $SECONDS -lt $deadline ]] || die "moto_server did not answer within 30 s (log: $LOG_FILE)"
      sleep 0.5
    done
    log "moto S3 started (pid $pid) at $(url)"
  fi
  s3 '
try:
    client.head_bucket(Bucket=bucket)
except client.exceptions.ClientError:
    client.create_bucket(Bucket=bucket)
    print(f"created bucket {bucket}", file=sys.stderr)'
  printf '%s\n' "$(url)"
}

cmd_stop() {
  local pid
  if pid=$(running_pid); then
    kill "$pid"
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && [[ $SECONDS -lt $deadline ]]; do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "moto S3 stopped (pid $pid)"
  fi
  rm -f "$PID_FILE" "$LISTEN_FILE"
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) die "usage: s3.sh start|stop|status" ;;
esac
