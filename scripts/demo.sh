#!/usr/bin/env bash
# The main job against the local cluster: start the KWOK cluster and the offline chart mirror, then
# ansible-playbook site.yml -i inventories/local. Both servers are stopped at the end unless KEEP=1
# (then `make cluster-down` and `scripts/helm-mirror.sh stop` stop them).
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
cd "$THREETIER_ROOT"
for s in scripts/cluster.sh scripts/helm-mirror.sh; do
  [[ -x $s ]] || die "$s is missing: the local cluster is not part of this checkout yet"
done
cleanup() {
  if [[ ${KEEP:-0} != 1 ]]; then
    scripts/helm-mirror.sh stop || true
    scripts/cluster.sh down || true
  fi
}
trap cleanup EXIT
scripts/cluster.sh up
mirror_url=$(scripts/helm-mirror.sh start)
export KUBECONFIG="$THREETIER_CACHE/cluster/kubeconfig" K8S_AUTH_KUBECONFIG="$THREETIER_CACHE/cluster/kubeconfig"
log "running site.yml -i inventories/local against $KUBECONFIG (charts from $mirror_url)"
start=$SECONDS
ansible-playbook site.yml -i inventories/local \
  -e threetier_kubeconfig="$KUBECONFIG" -e threetier_chart_repo_override="$mirror_url" "$@"
log "site.yml converged in $((SECONDS - start)) s"
if [[ ${KEEP:-0} == 1 ]]; then
  log "cluster left running: export KUBECONFIG=$KUBECONFIG; stop it with make cluster-down"
fi
