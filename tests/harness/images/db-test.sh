# shellcheck shell=bash
# The contract test of tests/harness/images/build-db-images.sh (sourced by it; `build-db-images.sh test` runs db_test).
#
# Every container runs with runc under a private state directory ($THREETIER_E2E_DIR/db-runc), never the
# system containerd, and joins ONE private network namespace that has only a loopback interface; the
# servers the test starts itself (etcd as Patroni's DCS, moto as the S3 endpoint) run in it too, as root
# without any capability. Addresses inside it:
#   127.0.0.1:2379/2380  etcd            127.0.0.1:5000  moto (S3)        *:6432  pgbouncer
#   127.0.0.2            acid-e2e-0      127.0.0.3       acid-e2e-1       127.0.0.9  PostgreSQL for the restore
# The two Spilo pods of a real cluster each have a network namespace and address of their own; here they
# share one, so each gets its address through SPILO_CONFIGURATION (postgresql.listen and restapi.listen:
# the only test-only keys; everything else is the operator's value). For the same reason the pooler listens
# on 6432 instead of 5432, and Spilo's patroni_wait.sh (curl localhost:8008) never sees its node, so the pgq
# ticker (runit service pgqd) waits in this test.
# The network namespace, every container, every overlay mount and both servers are removed on exit, also on
# failure. Each check prints one line; the end is one summary line per image and "N passed, N failed".

CLUSTER=acid-e2e
NAMESPACE=threetier-db
SPILO_IPS=(127.0.0.2 127.0.0.3)
RESTORE_IP=127.0.0.9
POOLER_PORT=6432
S3_ENDPOINT=http://127.0.0.1:5000
S3_BUCKET=threetier-e2e-backups
# The operator's defaults of the chart (kubernetes_use_configmaps, pam_*, cluster_name_label, ...).
PAM_OAUTH2_DEFAULT='https://info.example.com/oauth2/tokeninfo?access_token= uid realm=/employees'

PASSED=0
FAILED=0
FINISHED=false
NETNS=""
STARTED=()
MOUNTS=()
SERVER_PIDS=()
declare -A NOTE=()

runc_() { runc --root "$RUNC_ROOT" "$@"; }
nsx() { ip netns exec "$NETNS" "$@"; }
now_ms() { date +%s%3N; }

# ok NAME DETAIL / bad NAME DETAIL: one line per check, counted for the summary.
ok() { PASSED=$((PASSED + 1)); printf '  ok    %-46s %s\n' "$1" "${2:-}"; }
bad() { FAILED=$((FAILED + 1)); printf '  FAIL  %-46s %s\n' "$1" "${2:-}"; }
# expect NAME WANT GOT: passes when GOT equals WANT.
expect() { if [[ $3 == "$2" ]]; then ok "$1" "$3"; else bad "$1" "got '$3', want '$2'"; fi; }
# abort NAME WHY: a failed check that the following ones depend on; the EXIT trap prints the summary.
abort() { bad "$1" "$2"; exit 1; }

# bundle NAME TAG: the image archive unpacked by umoci (rootfs + config.json), cached on the archive's stamp.
bundle() {
  local name=$1 tag=$2
  local dir="$BUILD/bundles/${name}_$tag" stamp="$THREETIER_E2E_DIR/images/${name}_$tag.stamp"
  [[ -f $stamp ]] || die "no image $name:$tag: run $0 build first"
  if [[ ! -f $dir/.stamp || $(<"$dir/.stamp") != "$(<"$stamp")" ]]; then
    log "unpacking $name:$tag for the test"
    rm -rf "$dir" "$dir.oci" && mkdir -p "$(dirname "$dir")"
    skopeo --insecure-policy copy --quiet "docker-archive:$THREETIER_E2E_DIR/images/${name}_$tag.tar" "oci:$dir.oci:$tag"
    umoci unpack --image "$dir.oci:$tag" "$dir" >/dev/null
    rm -rf "$dir.oci"
    cp "$stamp" "$dir/.stamp"
  fi
  printf '%s\n' "$dir"
}

# ctr NAME TAG ID [app_pod.py runc-config options]: the bundle of container ID, in the test's network
# namespace. With --rw-root its root filesystem is an overlay (the cached bundle below, a layer of its own
# above), as containerd's snapshotter gives each container; otherwise the bundle's rootfs, read-only.
ctr() {
  local name=$1 tag=$2 id=$3; shift 3
  local base rootfs opt
  base=$(bundle "$name" "$tag")
  rootfs="$base/rootfs"
  rm -rf "${RUN_DIR:?}/$id" && mkdir -p "$RUN_DIR/$id"
  for opt in "$@"; do
    if [[ $opt == --rw-root ]]; then
      mkdir -p "$RUN_DIR/$id/upper" "$RUN_DIR/$id/work" "$RUN_DIR/$id/rootfs"
      mount -t overlay overlay \
        -o "lowerdir=$base/rootfs,upperdir=$RUN_DIR/$id/upper,workdir=$RUN_DIR/$id/work" "$RUN_DIR/$id/rootfs"
      MOUNTS+=("$RUN_DIR/$id/rootfs")
      rootfs="$RUN_DIR/$id/rootfs"
    fi
  done
  "$PY" "$POD_PY" runc-config --base "$base/config.json" --rootfs "$rootfs" --out "$RUN_DIR/$id/config.json" \
    --hostname "$id" --netns "/var/run/netns/$NETNS" --env "HOSTNAME=$id" "$@"
}

# run_bg ID: starts a container in the background, its output to $RUN_DIR/ID.log. run_fg ID: runs one to
# completion and returns its exit status.
run_bg() { STARTED+=("$1"); runc_ run --detach --bundle "$RUN_DIR/$1" "$1" > "$RUN_DIR/$1.log" 2>&1 < /dev/null; }
run_fg() { STARTED+=("$1"); runc_ run --bundle "$RUN_DIR/$1" "$1" > "$RUN_DIR/$1.log" 2>&1 < /dev/null; }
running() { [[ $(runc_ state "$1" 2>/dev/null | "$PY" "$DB_PY" field status) == running ]]; }

# emptydir PATH UID:GID MODE: a directory standing in for a pod volume after the kubelet applied fsGroup.
emptydir() { rm -rf "$1" && mkdir -p "$1" && chown "$2" "$1" && chmod "$3" "$1"; }

# wait_for SECONDS ID CMD...: polls CMD every second until it succeeds; fails when time runs out or when
# container ID (unless "-") stops, with the end of its log.
wait_for() {
  local limit=$1 id=$2; shift 2
  local end=$((SECONDS + limit))
  while ((SECONDS < end)); do
    "$@" 2>/dev/null && return 0
    if [[ $id != - ]] && ! running "$id"; then
      tail -n 30 "$RUN_DIR/$id.log" | sed 's/^/      | /' >&2
      return 1
    fi
    sleep 1
  done
  [[ $id == - ]] || tail -n 30 "$RUN_DIR/$id.log" | sed 's/^/      | /' >&2
  return 1
}

tcp_open() { nsx bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

db_cleanup() {
  local id pid m
  for id in "${STARTED[@]}"; do runc_ delete --force "$id" >/dev/null 2>&1 || true; done
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  [[ -z $NETNS ]] || ip netns del "$NETNS" 2>/dev/null || true
  STARTED=() SERVER_PIDS=() MOUNTS=()
}

db_exit() {
  local rc=$?
  db_cleanup
  if [[ $FINISHED != true ]]; then
    printf '\nthe test stopped early (exit %s); containers, mounts, servers and the network namespace were removed\n' "$rc"
    ((FAILED > 0)) || FAILED=1
    printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
    exit 1
  fi
}

# start_server NAME CMD...: CMD inside the network namespace as root without any capability (bounding set
# emptied, no_new_privs), its output to $RUN_DIR/NAME.log; its PID is kept for the cleanup. `ip netns exec`
# and setpriv exec, so $! is the server's own PID.
start_server() {
  local name=$1; shift
  ip netns exec "$NETNS" setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- "$@" \
    > "$RUN_DIR/$name.log" 2>&1 < /dev/null &
  SERVER_PIDS+=($!)
}

pw() { head -c 18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'; }

# ---------------------------------------------------------------------------------------------- operator

test_operator() {
  echo "== postgres-operator:$OPERATOR_TAG (UID 1000, read-only root, no Kubernetes API)"
  ctr postgres-operator "$OPERATOR_TAG" operator --user 1000:1000 --image-home >/dev/null
  local start rc=0 out
  start=$(now_ms)
  run_fg operator || rc=$?
  out=$(<"$RUN_DIR/operator.log")
  expect "operator exits 1 without a cluster" 1 "$rc"
  if grep -q "Spilo operator $POSTGRES_OPERATOR_VERSION" <<< "$out"; then
    ok "operator prints its version" "$(grep -o "Spilo operator $POSTGRES_OPERATOR_VERSION" <<< "$out")"
  else
    bad "operator prints its version" "$(head -c 300 <<< "$out")"
  fi
  if grep -q "couldn't get REST config" <<< "$out"; then
    ok "operator fails on the missing API, no panic" "$(grep -o "couldn't get REST config.*" <<< "$out" | head -c 140)"
  else
    bad "operator fails on the missing API, no panic" "$(tail -c 300 <<< "$out")"
  fi
  NOTE[postgres-operator]="prints \"Spilo operator $POSTGRES_OPERATOR_VERSION\", exits $rc without a Kubernetes API after $(($(now_ms) - start)) ms"
}

# ---------------------------------------------------------------------------------------------- spilo

# psql_in ID DB SQL: psql as the superuser over the container's Unix socket (Spilo's `local all all trust`),
# unaligned, tuples only.
psql_in() { runc_ exec "$1" psql -X -q -v ON_ERROR_STOP=1 -U postgres -d "$2" -tA -c "$3"; }

# patroni ID KEY...: fields of the Patroni REST answer of node ID (GET / on its address, port 8008).
patroni() {
  local id=$1; shift
  local ip=${SPILO_IPS[${id##*-}]}
  nsx curl -s -m 3 "http://$ip:8008/" | "$PY" "$DB_PY" field "$@" | paste -sd' ' -
}
is_primary() { [[ $(patroni "$1" role state) =~ ^(primary|master)\ running$ ]]; }
is_streaming() { [[ $(patroni "$1" role state) =~ ^replica\ (streaming|running)$ ]]; }
# replica_streaming_nudged ID: is_streaming, and while ID's basebackup.sh waits for the leader's checkpoint
# (pg_basebackup's default is a spread one: minutes on an idle leader) a CHECKPOINT on the leader finishes
# it at once, as Spilo's own tests/test_spilo.sh does.
replica_streaming_nudged() {
  is_streaming "$1" && return 0
  if grep -q "bootstrap from leader" "$RUN_DIR/$1.log"; then
    psql_in "$CLUSTER-0" postgres CHECKPOINT >/dev/null 2>&1 || true
  fi
  return 1
}

start_spilo() {
  local id="$CLUSTER-$1" ip=${SPILO_IPS[$1]} config
  # The PVC at /home/postgres/pgdata (PostgresDataPath) after the kubelet applied fsGroup 103.
  emptydir "$RUN_DIR/$id-pgdata" 0:103 2775
  # The kubelet's /etc/hosts names the pod's own address.
  printf '127.0.0.1\tlocalhost\n%s\t%s\n' "$ip" "$id" > "$RUN_DIR/$id-hosts"
  config=$("$PY" "$DB_PY" spilo-configuration --parameter "shared_preload_libraries=$SHARED_PRELOAD_LIBRARIES" \
    --pg-listen "$ip:5432" --api-listen "$ip:8008")
  # generateSpiloPodEnvVars with the chart's defaults; ETCD3_HOST is the test's DCS where the real pods get
  # DCS_ENABLE_KUBERNETES_API=true. 1 GiB memory limit: Spilo sizes shared_buffers from the cgroup limit.
  ctr "$SPILO_IMAGE" "$SPILO_VERSION" "$id" --rw-root --user 101:103 --fs-group 103 --image-groups --image-home \
    --memory-limit $((1024 * 1024 * 1024)) \
    --bind "$RUN_DIR/$id-pgdata:/home/postgres/pgdata" --bind "$RUN_DIR/$id-hosts:/etc/hosts" \
    --env "SCOPE=$CLUSTER" --env PGROOT=/home/postgres/pgdata/pgroot --env "POD_IP=$ip" \
    --env "POD_NAMESPACE=$NAMESPACE" --env PGUSER_SUPERUSER=postgres --env KUBERNETES_SCOPE_LABEL=cluster-name \
    --env KUBERNETES_ROLE_LABEL=spilo-role --env "PGPASSWORD_SUPERUSER=$SUPER_PW" --env PGUSER_STANDBY=standby \
    --env "PGPASSWORD_STANDBY=$STANDBY_PW" --env "PAM_OAUTH2=$PAM_OAUTH2_DEFAULT" --env HUMAN_ROLE=zalandos \
    --env "PGVERSION=$PG_MAJOR" --env 'KUBERNETES_LABELS={"application":"spilo"}' \
    --env "SPILO_CONFIGURATION=$config" --env KUBERNETES_USE_CONFIGMAPS=true --env ETCD3_HOST=127.0.0.1:2379 >/dev/null
  run_bg "$id"
}

# process_identity ID: "PID UID GID CAPEFF NO_NEW_PRIVS" for PID 1 and for the postmaster of node ID.
process_identity() {
  # shellcheck disable=SC2016 # expanded inside the container
  runc_ exec "$1" sh -c 'for p in 1 $(head -n1 "$PGDATA/postmaster.pid"); do
      printf "%s %s\n" "$p" "$(grep -E "^(Uid|Gid|CapEff|NoNewPrivs):" /proc/$p/status | awk "{print \$2}" | paste -sd" ")"
    done'
}

test_spilo_cluster() {
  echo "== $SPILO_IMAGE:$SPILO_VERSION: two Patroni nodes of $CLUSTER (runAsUser 101, runAsGroup 103, fsGroup 103)"
  local start t_leader out
  # etcd v3 as the DCS: Spilo's configure_spilo.py turns ETCD3_HOST into Patroni's etcd3 section.
  mkdir -p "$RUN_DIR/etcd" && chmod 0700 "$RUN_DIR/etcd"
  start_server etcd "$THREETIER_BIN/etcd" --name e2e --data-dir "$RUN_DIR/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster e2e=http://127.0.0.1:2380 --log-level warn
  wait_for 30 - nsx curl -fsS -m 2 http://127.0.0.1:2379/health >/dev/null || abort "etcd answers /health" "see $RUN_DIR/etcd.log"

  start=$SECONDS
  start_spilo 0
  wait_for 240 "$CLUSTER-0" is_primary "$CLUSTER-0" || abort "$CLUSTER-0 bootstraps as the leader" "$(patroni "$CLUSTER-0" role state)"
  # The REST API says primary while Patroni still runs the bootstrap's post_init; its end is this line.
  wait_for 120 "$CLUSTER-0" grep -q 'initialized a new cluster' "$RUN_DIR/$CLUSTER-0.log" \
    || abort "$CLUSTER-0 bootstraps as the leader" "no 'initialized a new cluster' in $RUN_DIR/$CLUSTER-0.log"
  t_leader=$((SECONDS - start))
  ok "$CLUSTER-0 bootstraps as the leader" "$(patroni "$CLUSTER-0" role state) after $t_leader s (Patroni REST GET /)"

  # post_init.sh ran: its roles, extensions and schemas.
  expect "post_init roles" "admin,cron_admin,robot_zmon,zalandos" \
    "$(psql_in "$CLUSTER-0" postgres "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('admin','cron_admin','robot_zmon','zalandos')")"
  expect "post_init extensions (postgres)" "file_fdw,pg_cron,pg_stat_kcache,pg_stat_statements,plpython3u,set_user" \
    "$(psql_in "$CLUSTER-0" postgres "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension WHERE extname IN ('pg_cron','set_user','pg_stat_statements','pg_stat_kcache','file_fdw','plpython3u','pg_auth_mon')")"
  expect "post_init schemas" "metric_helpers,user_management,zmon_utils" \
    "$(psql_in "$CLUSTER-0" postgres "SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname IN ('metric_helpers','user_management','zmon_utils')")"
  expect "SHOW shared_preload_libraries" "$SHARED_PRELOAD_LIBRARIES" \
    "$(psql_in "$CLUSTER-0" postgres "SHOW shared_preload_libraries")"
  expect "ssl on, password_encryption" "on scram-sha-256" \
    "$(psql_in "$CLUSTER-0" postgres "SELECT current_setting('ssl') || ' ' || current_setting('password_encryption')")"
  NOTE[spilo-leader]="leader in $t_leader s"
  NOTE[spilo-sb]=$(psql_in "$CLUSTER-0" postgres "SHOW shared_buffers")

  # The application's role and database, as the operator creates them from the manifest, and a row.
  TOKEN="e2e-$(pw)"
  psql_in "$CLUSTER-0" postgres "CREATE ROLE app LOGIN PASSWORD '$APP_PW'" >/dev/null
  psql_in "$CLUSTER-0" postgres "CREATE DATABASE app OWNER app" >/dev/null
  # pgextwlist: the non-superuser owner may create a whitelisted extension (Spilo's extwlist.extensions).
  if out=$(runc_ exec --env "PGPASSWORD=$APP_PW" "$CLUSTER-0" psql -X -v ON_ERROR_STOP=1 \
      "host=${SPILO_IPS[0]} dbname=app user=app sslmode=require" -tA \
      -c "CREATE EXTENSION pg_trgm" -c "SELECT extname FROM pg_extension WHERE extname = 'pg_trgm'" 2>&1); then
    expect "pgextwlist: app creates pg_trgm" pg_trgm "$(tail -n1 <<< "$out")"
  else
    bad "pgextwlist: app creates pg_trgm" "$(tr '\n' ' ' <<< "$out" | head -c 200)"
  fi

  start=$SECONDS
  start_spilo 1
  wait_for 240 "$CLUSTER-1" replica_streaming_nudged "$CLUSTER-1" || abort "$CLUSTER-1 becomes a streaming replica" "$(patroni "$CLUSTER-1" role state)"
  local t_replica=$((SECONDS - start))
  ok "$CLUSTER-1 becomes a streaming replica" "$(patroni "$CLUSTER-1" role state) after $t_replica s"
  if grep -q 'replica has been created using basebackup_fast_xlog' "$RUN_DIR/$CLUSTER-1.log"; then
    ok "replica built by basebackup.sh" "$(grep -o 'replica has been created using basebackup_fast_xlog' "$RUN_DIR/$CLUSTER-1.log" | head -n1)"
  else
    bad "replica built by basebackup.sh" "no 'created using basebackup_fast_xlog' in $RUN_DIR/$CLUSTER-1.log"
  fi
  expect "pg_stat_replication on the leader" "$CLUSTER-1 streaming" \
    "$(psql_in "$CLUSTER-0" postgres "SELECT application_name || ' ' || state FROM pg_stat_replication")"

  psql_in "$CLUSTER-0" app "CREATE TABLE e2e_check (id int PRIMARY KEY, note text NOT NULL)" >/dev/null
  local t0 seen="" lag
  t0=$(now_ms)
  psql_in "$CLUSTER-0" app "INSERT INTO e2e_check VALUES (1, '$TOKEN')" >/dev/null
  for _ in $(seq 200); do
    seen=$(psql_in "$CLUSTER-1" app "SELECT note FROM e2e_check WHERE id = 1" 2>/dev/null || true)
    [[ $seen == "$TOKEN" ]] && break
    sleep 0.05
  done
  local t_row=$(($(now_ms) - t0))
  lag=$(psql_in "$CLUSTER-0" postgres "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication")
  expect "row written on the leader, read on the replica" "$TOKEN" "$seen"
  NOTE[spilo-replica]="replica streaming in $t_replica s (basebackup.sh), row on the replica after $t_row ms, lag $lag B"

  local who ident groups
  for who in 0 1; do
    ident=$(process_identity "$CLUSTER-$who")
    groups=$(runc_ exec "$CLUSTER-$who" sh -c "grep '^Groups:' /proc/1/status | cut -f2")
    # Two processes (PID 1 = dumb-init, the postmaster), each with UID, GID, CapEff and NoNewPrivs as wanted.
    if [[ $(awk '$2 == 101 && $3 == 103 && $4 == "0000000000000000" && $5 == 1' <<< "$ident" | wc -l) -eq 2 ]]; then
      ok "$CLUSTER-$who: PID 1 and postmaster" "uid 101, gid 103, CapEff 0, NoNewPrivs 1; groups ${groups% }"
    else
      bad "$CLUSTER-$who: PID 1 and postmaster" "$(tr '\n' ';' <<< "$ident")"
    fi
  done

  local imports
  # shellcheck disable=SC2016 # Python source
  if imports=$(runc_ exec "$CLUSTER-0" python3 -c '
import sys
sys.path.insert(0, "/scripts")
import etcd, psutil, psycopg2, pystache, requests, six, yaml  # noqa
import patroni.dcs.etcd3, patroni.dcs.kubernetes  # noqa
import configure_spilo, spilo_commons, callback_role, clone_with_basebackup, clone_with_wale  # noqa
import maybe_pg_upgrade, inplace_upgrade, pg_upgrade  # noqa
from patroni.version import __version__
print(sys.version.split()[0], __version__)' 2>&1); then
    expect "Python and Patroni import cleanly" "$PATRONI_VERSION" "${imports##* }"
    NOTE[spilo-python]="Python ${imports%% *}, Patroni ${imports##* }"
  else
    bad "Python and Patroni import cleanly" "$(tail -n 3 <<< "$imports" | tr '\n' ' ')"
  fi
}

# members: "NAME ROLE STATE" per member, from patronictl (the DCS view).
members() {
  runc_ exec "$CLUSTER-0" patronictl -c /home/postgres/postgres.yml list -f json "$CLUSTER" 2>/dev/null \
    | "$PY" -c 'import json,sys; [print(m["Member"], m["Role"], m["State"]) for m in json.load(sys.stdin)]'
}
members_settled() {
  [[ $(members | sort | tr '\n' ' ') == "$CLUSTER-0 Replica streaming $CLUSTER-1 Leader running " ]]
}

test_spilo_switchover() {
  echo "== $SPILO_IMAGE:$SPILO_VERSION: switchover"
  local start out t_switch
  start=$SECONDS
  if ! out=$(runc_ exec "$CLUSTER-0" patronictl -c /home/postgres/postgres.yml switchover "$CLUSTER" \
      --leader "$CLUSTER-0" --candidate "$CLUSTER-1" --force 2>&1); then
    abort "patronictl switchover" "$(tail -n 3 <<< "$out" | tr '\n' ' ')"
  fi
  wait_for 90 "$CLUSTER-1" is_primary "$CLUSTER-1" || abort "$CLUSTER-1 becomes the leader" "$(patroni "$CLUSTER-1" role state)"
  t_switch=$((SECONDS - start))
  ok "$CLUSTER-1 becomes the leader" "$(patroni "$CLUSTER-1" role state) after $t_switch s"
  wait_for 120 "$CLUSTER-0" is_streaming "$CLUSTER-0" || abort "$CLUSTER-0 follows the new leader" "$(patroni "$CLUSTER-0" role state)"
  ok "$CLUSTER-0 follows the new leader" "$(patroni "$CLUSTER-0" role state)"
  psql_in "$CLUSTER-1" app "INSERT INTO e2e_check VALUES (2, 'after switchover')" >/dev/null
  local seen=""
  for _ in $(seq 100); do
    seen=$(psql_in "$CLUSTER-0" app "SELECT note FROM e2e_check WHERE id = 2" 2>/dev/null || true)
    [[ -n $seen ]] && break
    sleep 0.1
  done
  expect "row written on the new leader, read on the old" "after switchover" "$seen"
  # The members' states in the DCS (each node refreshes its own every loop_wait, 10 s).
  if wait_for 30 - members_settled; then
    ok "patronictl list: a leader and a streaming replica" "$(members | tr '\n' ' ')"
  else
    bad "patronictl list: a leader and a streaming replica" "$(members | tr '\n' ' ')"
  fi
  runc_ exec "$CLUSTER-0" patronictl -c /home/postgres/postgres.yml list "$CLUSTER" 2>/dev/null | sed 's/^/      /' || true
  NOTE[spilo-switchover]="switchover $t_switch s"
}

# ---------------------------------------------------------------------------------------------- pooler

test_pooler() {
  echo "== pgbouncer:$OPERATOR_TAG: the operator's pooler pod (runAsUser 100, runAsGroup 101, fsGroup 103)"
  local leader="$CLUSTER-0" leader_ip=${SPILO_IPS[0]} db
  # What the operator does for a pooler: the pooler role (its credentials Secret), the lookup function in
  # every database (written here, equivalent to pkg/cluster/database.go's), the <pooler>-u Secret's userlist.
  psql_in "$leader" postgres "CREATE ROLE pooler LOGIN PASSWORD '$POOLER_PW'" >/dev/null
  for db in postgres app; do
    psql_in "$leader" "$db" "
      CREATE SCHEMA IF NOT EXISTS pooler;
      CREATE OR REPLACE FUNCTION pooler.user_lookup(i_username text, OUT uname text, OUT phash text)
        RETURNS record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
        AS \$\$ SELECT usename::text, passwd FROM pg_catalog.pg_shadow WHERE usename = i_username \$\$;
      REVOKE ALL ON FUNCTION pooler.user_lookup(text) FROM public, pooler;
      GRANT EXECUTE ON FUNCTION pooler.user_lookup(text) TO pooler;
      GRANT USAGE ON SCHEMA pooler TO pooler;" >/dev/null
  done
  printf '"%s" "%s"\n' pooler "$POOLER_PW" > "$RUN_DIR/userlist.txt"
  chown 0:103 "$RUN_DIR/userlist.txt" && chmod 0644 "$RUN_DIR/userlist.txt"
  # getConnectionPoolerEnvVars for one instance and connection_pooler_max_db_connections 4: default pool 2,
  # min 1, reserve 1, so the 8 pgbench clients below share at most 3 server connections.
  ctr pgbouncer "$OPERATOR_TAG" pooler --rw-root --user 100:101 --fs-group 103 --image-groups --image-home \
    --bind "$RUN_DIR/userlist.txt:/etc/pgbouncer/userlist.txt:ro" \
    --env "PGHOST=$leader_ip" --env PGPORT=5432 --env PGUSER=pooler --env PGSCHEMA=pooler \
    --env "PGPASSWORD=$POOLER_PW" --env "CONNECTION_POOLER_PORT=$POOLER_PORT" \
    --env CONNECTION_POOLER_MODE=transaction --env CONNECTION_POOLER_DEFAULT_SIZE=2 \
    --env CONNECTION_POOLER_MIN_SIZE=1 --env CONNECTION_POOLER_RESERVE_SIZE=1 \
    --env CONNECTION_POOLER_MAX_CLIENT_CONN=10000 --env CONNECTION_POOLER_MAX_DB_CONN=4 >/dev/null
  run_bg pooler
  wait_for 30 pooler tcp_open 127.0.0.1 "$POOLER_PORT" || abort "pooler listens" "see $RUN_DIR/pooler.log"
  ok "pooler listens" "*:$POOLER_PORT ($(runc_ exec pooler sh -c 'tr "\0" " " < /proc/1/cmdline'))"
  local ident
  ident=$(runc_ exec pooler sh -c "grep -E '^(Uid|Gid|CapEff|NoNewPrivs):' /proc/1/status | awk '{print \$2}' | paste -sd' '")
  expect "pooler PID 1: uid gid CapEff NoNewPrivs" "100 101 0000000000000000 1" "$ident"

  local via="host=127.0.0.1 port=$POOLER_PORT sslmode=require" out
  if out=$(runc_ exec --env "PGPASSWORD=$APP_PW" "$leader" psql -X "$via dbname=app user=app" -tA \
      -c "SELECT current_user || ' ssl=' || ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()" 2>&1); then
    expect "app authenticates through the pooler (auth_query), TLS to the server" "app ssl=true" "$out"
  else
    bad "app authenticates through the pooler (auth_query), TLS to the server" "$(tr '\n' ' ' <<< "$out" | head -c 200)"
  fi
  if out=$(runc_ exec --env PGPASSWORD=wrong "$leader" psql -X "$via dbname=app user=app" -tAc 'SELECT 1' 2>&1); then
    bad "a wrong password is refused" "the pooler let it in"
  elif grep -qE '(password|SASL) authentication failed' <<< "$out"; then
    ok "a wrong password is refused" "$(grep -oE '(password|SASL) authentication failed.*' <<< "$out" | head -n1)"
  else
    bad "a wrong password is refused" "failed for another reason: $(tr '\n' ' ' <<< "$out" | head -c 200)"
  fi

  # pgbench's tables straight on the leader, then its prepared-statement mode (Parse/Bind/Execute of named
  # statements, as PDO does) through transaction pooling. One thread per client (-j = -c), as PHP-FPM has one
  # process per connection: pgbench prepares each statement lazily with a blocking PQprepare, so a thread
  # serving several clients stalls inside one client while its others hold every server connection in an
  # open transaction (a deadlock of pgbench's, until pgbouncer's query_wait_timeout).
  runc_ exec --env "PGPASSWORD=$APP_PW" --env PGSSLMODE=require "$leader" \
    pgbench -i -q -s 2 -h "$leader_ip" -U app app > "$RUN_DIR/pgbench-init.log" 2>&1 \
    || abort "pgbench -i on the leader" "$(tail -n 3 "$RUN_DIR/pgbench-init.log" | tr '\n' ' ')"
  local rc=0 numbers tps failed processed latency
  runc_ exec --env "PGPASSWORD=$APP_PW" --env PGSSLMODE=require "$leader" \
    pgbench -n -M prepared -c 8 -j 8 -T 15 -h 127.0.0.1 -p "$POOLER_PORT" -U app app > "$RUN_DIR/pgbench.log" 2>&1 || rc=$?
  if numbers=$("$PY" "$DB_PY" pgbench < "$RUN_DIR/pgbench.log"); then
    read -r tps failed processed latency <<< "$numbers"
    if [[ $rc -eq 0 && $failed == 0 && $processed -gt 0 ]]; then
      ok "pgbench -M prepared, 8 clients, transaction pool" "$processed transactions, $tps tps, $failed failed, ${latency} ms"
    else
      bad "pgbench -M prepared, 8 clients, transaction pool" "exit $rc, $processed transactions, $failed failed"
    fi
  else
    bad "pgbench -M prepared, 8 clients, transaction pool" "exit $rc: $(grep -m3 -iE 'error|abort' "$RUN_DIR/pgbench.log" | tr '\n' ' ')"
    tps="?" failed="?" processed="?"
  fi

  local admin="$via dbname=pgbouncer user=pooler" pools stats servers
  pools=$(runc_ exec --env "PGPASSWORD=$POOLER_PW" "$leader" psql -X "$admin" -c 'SHOW POOLS' 2>&1) \
    || bad "admin console: SHOW POOLS" "$(head -c 200 <<< "$pools")"
  printf '%s\n' "$pools" | grep -E '^ *(database|-+\+|app )' | sed 's/^/      /'
  stats=$(runc_ exec --env "PGPASSWORD=$POOLER_PW" "$leader" psql -X "$admin" -A -F'|' -c 'SHOW STATS' 2>&1) \
    || bad "admin console: SHOW STATS" "$(head -c 200 <<< "$stats")"
  local -A st=()
  local kv
  while IFS= read -r kv; do st[${kv%%=*}]=${kv#*=}; done < <("$PY" "$DB_PY" pgbouncer-stats app <<< "$stats")
  servers=$(runc_ exec --env "PGPASSWORD=$POOLER_PW" "$leader" psql -X "$admin" -A -F'|' -t -c 'SHOW SERVERS' 2>/dev/null | grep -c '|app|' || true)
  printf '      SHOW STATS app: xact %s, client parses %s, server parses %s, binds %s; SHOW SERVERS app: %s\n' \
    "${st[total_xact_count]:-?}" "${st[total_client_parse_count]:-?}" "${st[total_server_parse_count]:-?}" \
    "${st[total_bind_count]:-?}" "$servers"
  if [[ ${st[total_bind_count]:-0} -gt 0 && ${st[total_server_parse_count]:-0} -gt 0 && $servers -ge 1 && $servers -le 4 ]]; then
    ok "prepared statements handled by the pooler" "binds ${st[total_bind_count]}, server parses ${st[total_server_parse_count]} on $servers server connections for 8 clients"
  else
    bad "prepared statements handled by the pooler" "binds ${st[total_bind_count]:-?}, server parses ${st[total_server_parse_count]:-?}, servers $servers"
  fi
  NOTE[pgbouncer]="pgbench -M prepared via transaction pooling: 8 clients on $servers server connections, 15 s, ${tps%.*} tps, $failed failed; parses client/server ${st[total_client_parse_count]:-?}/${st[total_server_parse_count]:-?}, binds ${st[total_bind_count]:-?}"
}

# ---------------------------------------------------------------------------------------------- logical backup

test_backup() {
  echo "== logical-backup:$OPERATOR_TAG: as 101:103, read-only root, /tmp only, S3 on moto"
  local src replica_ip=${SPILO_IPS[1]}
  src=$(operator_source)
  if cmp -s "$src/logical-backup/dump.sh" "$(bundle logical-backup "$OPERATOR_TAG")/rootfs/dump.sh"; then
    ok "/dump.sh is upstream's, unchanged" "$(sha256sum < "$src/logical-backup/dump.sh" | cut -c1-16)"
  else
    bad "/dump.sh is upstream's, unchanged" "differs from $src/logical-backup/dump.sh"
  fi
  start_server moto "$THREETIER_VENV/bin/moto_server" -H 127.0.0.1 -p 5000
  wait_for 60 - tcp_open 127.0.0.1 5000 || abort "moto listens" "see $RUN_DIR/moto.log"

  # generateLogicalBackupPodEnvVars with the chart's defaults; PGHOST is what dump.sh's pod search returns
  # first (a replica; it asks the Kubernetes API for it).
  local env=(--env "SCOPE=$CLUSTER" --env CLUSTER_NAME_LABEL=cluster-name --env "POD_NAMESPACE=$NAMESPACE"
    --env "PG_VERSION=$PG_MAJOR" --env PGPORT=5432 --env PGUSER=postgres --env PGDATABASE=postgres
    --env PGSSLMODE=require --env "PGPASSWORD=$SUPER_PW" --env LOGICAL_BACKUP_PROVIDER=s3
    --env "LOGICAL_BACKUP_S3_BUCKET=$S3_BUCKET" --env LOGICAL_BACKUP_S3_BUCKET_PREFIX=spilo
    --env "LOGICAL_BACKUP_S3_BUCKET_SCOPE_SUFFIX=/$(cat /proc/sys/kernel/random/uuid)"
    --env LOGICAL_BACKUP_S3_REGION=us-east-1 --env "LOGICAL_BACKUP_S3_ENDPOINT=$S3_ENDPOINT"
    --env LOGICAL_BACKUP_S3_SSE=AES256 --env LOGICAL_BACKUP_S3_RETENTION_TIME= --env AWS_ACCESS_KEY_ID=e2e
    --env AWS_SECRET_ACCESS_KEY=e2e-secret --env "PGHOST=$replica_ip")
  local job=(--user 101:103 --fs-group 103 "${env[@]}")

  # dump.sh unchanged: it needs the Kubernetes API to find its pod, which this test does not have.
  emptydir "$RUN_DIR/backup-tmp-0" 0:103 2777
  ctr logical-backup "$OPERATOR_TAG" backup-dumpsh "${job[@]}" --bind "$RUN_DIR/backup-tmp-0:/tmp" >/dev/null
  local rc=0
  run_fg backup-dumpsh || rc=$?
  if [[ $rc -ne 0 ]] && grep -q 'serviceaccount/token' "$RUN_DIR/backup-dumpsh.log"; then
    ok "dump.sh stops where it needs the Kubernetes API" "exit $rc: $(grep -m1 'serviceaccount/token' "$RUN_DIR/backup-dumpsh.log" | head -c 100)"
  else
    bad "dump.sh stops where it needs the Kubernetes API" "exit $rc: $(tail -n 2 "$RUN_DIR/backup-dumpsh.log" | tr '\n' ' ')"
  fi

  # dump.sh's own functions (estimate_size, dump, compress, upload, aws_upload, aws_delete_outdated,
  # wait_for_pg) and variables, sourced from the unchanged /dump.sh; only its pod search is left out.
  # shellcheck disable=SC2016 # runs in the container
  local backup_sh='set -euo pipefail
    if [[ "$(id -u):$(id -g)" != 101:103 ]]; then echo "runs as $(id -u):$(id -g)" >&2; exit 3; fi
    if touch /probe 2>/dev/null; then echo "the root filesystem is writable" >&2; exit 3; fi
    source <(sed -n -e "/^ALL_DB_SIZE_QUERY=/,/^ERRORCOUNT=/p" -e "/^LOGICAL_BACKUP_PROVIDER=/,/^LOGICAL_BACKUP_S3_RETENTION_TIME=/p" \
      -e "/^function estimate_size/,/^function get_pods/{/^function get_pods/!p}" -e "/^function wait_for_pg/,/^}/p" /dump.sh)
    aws s3 mb "s3://$LOGICAL_BACKUP_S3_BUCKET" --endpoint-url "$LOGICAL_BACKUP_S3_ENDPOINT" --region "$LOGICAL_BACKUP_S3_REGION" >/dev/null
    wait_for_pg
    dump | compress | upload
    [[ ${PIPESTATUS[0]} == 0 && ${PIPESTATUS[1]} == 0 && ${PIPESTATUS[2]} == 0 ]]
    aws s3 ls --recursive "s3://$LOGICAL_BACKUP_S3_BUCKET/" --endpoint-url "$LOGICAL_BACKUP_S3_ENDPOINT" --region "$LOGICAL_BACKUP_S3_REGION"'
  emptydir "$RUN_DIR/backup-tmp-1" 0:103 2777
  ctr logical-backup "$OPERATOR_TAG" backup "${job[@]}" --bind "$RUN_DIR/backup-tmp-1:/tmp" \
    --args-json "$("$PY" -c 'import json,sys; print(json.dumps(["/bin/bash","-c",sys.argv[1]]))' "$backup_sh")" >/dev/null
  local start=$SECONDS
  rc=0
  run_fg backup || rc=$?
  local t_dump=$((SECONDS - start)) listing key size
  listing=$(grep -E 'logical_backups/[0-9]+\.sql\.gz$' "$RUN_DIR/backup.log" || true)
  key=$(awk '{print $4}' <<< "$listing" | tail -n1)
  size=$(awk '{print $3}' <<< "$listing" | tail -n1)
  # The job itself fails (exit 3) when it can write to its root filesystem or does not run as 101:103.
  if [[ $rc -eq 0 && -n $key ]]; then
    ok "pg_dumpall | pigz | aws s3 cp, 101:103, ro root" "s3://$S3_BUCKET/$key, $size B in $t_dump s"
  else
    abort "pg_dumpall | pigz | aws s3 cp, 101:103, ro root" "exit $rc: $(tail -n 4 "$RUN_DIR/backup.log" | tr '\n' ' ' | head -c 300)"
  fi

  # A fresh PostgreSQL 17 from the Spilo image (as 101, on /tmp) to restore into.
  emptydir "$RUN_DIR/restore-tmp" 0:103 2777
  ctr "$SPILO_IMAGE" "$SPILO_VERSION" restore-pg --user 101:103 --fs-group 103 --image-home --bind "$RUN_DIR/restore-tmp:/tmp" \
    --args-json "[\"/bin/sh\",\"-c\",\"initdb -D /tmp/pgdata -U postgres -A trust -E UTF8 --locale=en_US.UTF-8 >/tmp/initdb.log && exec postgres -D /tmp/pgdata -c listen_addresses=$RESTORE_IP -c unix_socket_directories=/tmp -c shared_preload_libraries=$SHARED_PRELOAD_LIBRARIES\"]" >/dev/null
  run_bg restore-pg
  wait_for 60 restore-pg tcp_open "$RESTORE_IP" 5432 || abort "a fresh PostgreSQL for the restore" "see $RUN_DIR/restore-pg.log"
  # shellcheck disable=SC2016 # runs in the container
  local restore_sh='set -euo pipefail
    aws s3 cp "s3://$LOGICAL_BACKUP_S3_BUCKET/$1" /tmp/restore.sql.gz --endpoint-url "$LOGICAL_BACKUP_S3_ENDPOINT" --region "$LOGICAL_BACKUP_S3_REGION" >/dev/null
    gzip -t /tmp/restore.sql.gz
    echo "size=$(stat -c %s /tmp/restore.sql.gz)"
    gunzip -c /tmp/restore.sql.gz | PGSSLMODE=disable psql -X -q -h "$2" -U postgres -d postgres >/tmp/restore.out 2>/tmp/restore.err || true
    echo "errors=$(grep -c "ERROR" /tmp/restore.err || true) $(grep -m3 -o "ERROR: .*" /tmp/restore.err | tr "\n" ";")"
    echo "row=$(PGSSLMODE=disable psql -X -h "$2" -U postgres -d app -tAc "SELECT note FROM e2e_check WHERE id = 1")"'
  emptydir "$RUN_DIR/backup-tmp-2" 0:103 2777
  # awscli >= 2.23 checks response checksums; moto 5.2.5 reports one for the uploaded object that the CLI
  # computes differently (the upload's default CRC64NVME), so the download skips that check and the restore
  # relies on gzip's own CRC and the size instead. Uploads (all that dump.sh does) need nothing of the kind.
  ctr logical-backup "$OPERATOR_TAG" backup-restore "${job[@]}" --bind "$RUN_DIR/backup-tmp-2:/tmp" \
    --env AWS_RESPONSE_CHECKSUM_VALIDATION=when_required \
    --args-json "$("$PY" -c 'import json,sys; print(json.dumps(["/bin/bash","-c",sys.argv[1],"restore",sys.argv[2],sys.argv[3]]))' "$restore_sh" "$key" "$RESTORE_IP")" >/dev/null
  rc=0
  run_fg backup-restore || rc=$?
  local row errors got_size
  row=$(sed -n 's/^row=//p' "$RUN_DIR/backup-restore.log")
  got_size=$(sed -n 's/^size=//p' "$RUN_DIR/backup-restore.log")
  expect "downloaded object: the uploaded size, gzip intact" "$size" "$got_size"
  errors=$(sed -n 's/^errors=//p' "$RUN_DIR/backup-restore.log")
  [[ $rc -eq 0 ]] || bad "download and restore" "exit $rc: $(tail -n 3 "$RUN_DIR/backup-restore.log" | tr '\n' ' ')"
  expect "restored into a fresh PostgreSQL, row read back" "$TOKEN" "$row"
  printf '      restore: %s\n' "${errors:-?}" | cut -c1-220
  NOTE[logical-backup]="replica dumped as 101:103 (read-only root): $size B gzip on S3 in $t_dump s; restored into a fresh PostgreSQL, row read back; restore errors: ${errors:-?}"
}

# ---------------------------------------------------------------------------------------------- main

# image_table / summary_line: size of each archive, the time of this run's build step and that of the last
# build that produced a new archive (a cold one if nothing was cached).
build_times() {
  local this=${BUILD_SECONDS[$1]:-} last
  last=$(cat "$BUILD/$1.seconds" 2>/dev/null || echo '?')
  printf '%s\n' "${this:+build step $this s, }last new archive in $last s"
}

image_table() {
  local name tag archive
  for name in postgres-operator pgbouncer logical-backup "$SPILO_IMAGE"; do
    tag=$(image_tag "$name")
    archive="$THREETIER_E2E_DIR/images/${name}_$tag.tar"
    printf '%-48s %6s  %s\n' "$(oci_image_ref "$name" "$tag")" "$(du -h "$archive" | cut -f1)" "$(build_times "$name")"
  done
}

summary_line() {
  local name=$1 note=$2 tag
  tag=$(image_tag "$name")
  printf '%s:%s  %s (%s)  |  %s\n' "$name" "$tag" "$(du -h "$THREETIER_E2E_DIR/images/${name}_$tag.tar" | cut -f1)" \
    "$(build_times "$name")" "$note"
}

db_test() {
  local tool
  for tool in runc umoci skopeo ip curl setpriv; do command -v "$tool" >/dev/null || die "$tool is missing"; done
  [[ -x $THREETIER_BIN/etcd ]] || die "$THREETIER_BIN/etcd is missing (scripts/setup.sh builds it)"
  [[ -x $THREETIER_VENV/bin/moto_server ]] || die "moto_server is missing from $THREETIER_VENV (scripts/setup.sh)"
  RUN_DIR="$BUILD/run"
  # A run killed with SIGKILL leaves its containers in this script's own runc state directory and its overlays
  # mounted below RUN_DIR: both are this test's, so they go first.
  mkdir -p "$RUNC_ROOT"
  local m id
  while read -r id; do runc_ delete --force "$id" >/dev/null 2>&1 || true; done < <(runc_ list -q 2>/dev/null)
  while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done < <(awk -v d="$RUN_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts)
  rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR"
  # Bundles first (minutes for Spilo on the first run), so the timings below are the containers' own.
  local image
  for image in "postgres-operator:$OPERATOR_TAG" "pgbouncer:$OPERATOR_TAG" "logical-backup:$OPERATOR_TAG" "$SPILO_IMAGE:$SPILO_VERSION"; do
    bundle "${image%%:*}" "${image#*:}" >/dev/null
  done
  SUPER_PW=$(pw) STANDBY_PW=$(pw) APP_PW=$(pw) POOLER_PW=$(pw)
  NETNS="threetier-db-$$"
  trap db_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  ip netns add "$NETNS"
  ip -n "$NETNS" link set lo up
  log "network namespace $NETNS (loopback only); runc state in ${RUNC_ROOT/#"$THREETIER_CACHE"/\$THREETIER_CACHE}"

  test_operator
  test_spilo_cluster
  test_pooler
  test_backup
  test_spilo_switchover

  FINISHED=true
  db_cleanup
  trap - EXIT INT TERM
  echo
  summary_line postgres-operator "${NOTE[postgres-operator]:-}"
  summary_line pgbouncer "${NOTE[pgbouncer]:-}"
  summary_line logical-backup "${NOTE[logical-backup]:-}"
  summary_line "$SPILO_IMAGE" "${NOTE[spilo-leader]:-}, ${NOTE[spilo-replica]:-}, ${NOTE[spilo-switchover]:-}; shared_buffers ${NOTE[spilo-sb]:-?} (1 GiB limit); ${NOTE[spilo-python]:-}"
  printf '%s passed, %s failed\n' "$PASSED" "$FAILED"
  ((FAILED == 0))
}
