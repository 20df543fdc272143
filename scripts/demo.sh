#!/usr/bin/env bash
# The main job, shown: site.yml -i inventories/local against a cluster where the application really runs.
#   scripts/demo.sh        (make demo)        converge, then print where the React app and /api answer
#   scripts/demo.sh down   (make demo-down)   stop what the demo started
#
# Where the real node can run (root, Linux with overlayfs, br_netfilter, iptables, ipset: tests/harness/real_node/node.py
# preflight), the demo builds the real node's images (cached after the first run, which takes a while), starts
# the node with its add-ons, moto's S3 for the database's backups and the chart mirror, converges with the e2e
# scenario's settings (molecule/e2e/vars.yml: Traefik as the ingress, the locally built images) and leaves it
# all running until `make demo-down`. Elsewhere it falls back to the KWOK cluster, where the API server, Helm,
# hooks and HPAs are real but no pod runs; that cluster is stopped at the end unless KEEP=1.
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
cd "$THREETIER_ROOT"
E2E_DIR=${THREETIER_E2E_DIR:-$THREETIER_CACHE/e2e}
NODE_IP=${THREETIER_E2E_NODE_IP:-10.213.0.1}
STARTED="$E2E_DIR/demo-started"

real_node_down() {
  [[ -f $STARTED ]] || { log "no real-node demo is running"; return 0; }
  while read -r service; do
    case $service in
      mirror) scripts/helm-mirror.sh stop || true ;;
      s3) tests/harness/real_node/s3.sh stop || true ;;
      node) tests/harness/real_node/node.sh down ;;
    esac
  done < <(tac "$STARTED")
  rm -f "$STARTED"
}

# start NAME STATUS_CMD... -- START_CMD...: start a service unless it runs, and remember that the demo did.
start() {
  local name=$1; shift
  local status=()
  while [[ $1 != -- ]]; do status+=("$1"); shift; done
  shift
  if "${status[@]}" > /dev/null 2>&1; then
    log "$name already runs; the demo reuses it and will not stop it"
  else
    "$@"
    echo "$name" >> "$STARTED"
  fi
}

real_node_demo() {
  make --no-print-directory e2e-images
  mkdir -p "$E2E_DIR"
  start node tests/harness/real_node/node.sh status -- tests/harness/real_node/node.sh up
  start s3 env E2E_S3_LISTEN="$NODE_IP" tests/harness/real_node/s3.sh status -- env E2E_S3_LISTEN="$NODE_IP" tests/harness/real_node/s3.sh start
  start mirror scripts/helm-mirror.sh status -- scripts/helm-mirror.sh start
  log "running site.yml -i inventories/local on the real node"
  local begin=$SECONDS
  MOLECULE_PROJECT_DIRECTORY=$THREETIER_ROOT ansible-playbook site.yml -i inventories/local \
    -e @molecule/e2e/vars.yml "$@"
  log "site.yml converged in $((SECONDS - begin)) s"
  local url=http://threetier.localtest.me:30080 path answer
  # Through the ingress as a browser asks for it (the Host header), so this does not depend on the machine's DNS.
  for path in / /api/health; do
    answer=$(curl -fsS -H 'Host: threetier.localtest.me' "http://127.0.0.1:30080$path") \
      || die "the ingress does not answer $path on 127.0.0.1:30080"
    answer=$(tr -s '\n ' ' ' <<< "$answer")
    log "GET $path: ${answer:0:100}"
  done
  local resolves="resolves to 127.0.0.1 (public DNS); or:"
  getent hosts threetier.localtest.me > /dev/null \
    || resolves="does not resolve on this machine (no public DNS): add '127.0.0.1 threetier.localtest.me' to /etc/hosts, or:"
  cat <<EOF

The application runs on the real node (kept until \`make demo-down\`):
  React app   $url/
  API         $url/api/health   $url/api/messages   $url/api/db
              (threetier.localtest.me $resolves
               curl -H 'Host: threetier.localtest.me' http://127.0.0.1:30080/api/health)
  kubectl     export KUBECONFIG=$E2E_DIR/cluster/admin.kubeconfig
EOF
}

kwok_demo() {
  cleanup() {
    if [[ ${KEEP:-0} != 1 ]]; then
      scripts/helm-mirror.sh stop || true
      tests/harness/local_cluster/cluster.sh down || true
    fi
  }
  trap cleanup EXIT
  tests/harness/local_cluster/cluster.sh up
  local mirror_url begin=$SECONDS
  mirror_url=$(scripts/helm-mirror.sh start)
  export KUBECONFIG="$THREETIER_CACHE/cluster/kubeconfig" K8S_AUTH_KUBECONFIG="$THREETIER_CACHE/cluster/kubeconfig"
  log "running site.yml -i inventories/local against $KUBECONFIG (charts from $mirror_url)"
  ansible-playbook site.yml -i inventories/local \
    -e threetier_kubeconfig="$KUBECONFIG" -e threetier_chart_repo_override="$mirror_url" "$@"
  log "site.yml converged in $((SECONDS - begin)) s (KWOK: objects and releases are real, pods are simulated)"
  if [[ ${KEEP:-0} == 1 ]]; then
    log "cluster left running: export KUBECONFIG=$KUBECONFIG; stop it with make cluster-down"
  fi
}

if [[ ${1:-} == down ]]; then
  real_node_down
  exit 0
fi
if reason=$(tests/harness/real_node/node.sh preflight 2>&1); then
  real_node_demo "$@"
else
  log "the KWOK demo instead of the real node: $(head -n1 <<< "$reason" | sed 's/^missing: //')"
  kwok_demo "$@"
fi
