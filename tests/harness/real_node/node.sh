#!/usr/bin/env bash
# The e2e tier's cluster: control plane + one real node (containerd, kubelet, kube-proxy) on this host.
#   scripts/e2e-cluster.sh up [--no-addons]  start it (root), import the images, apply the add-ons
#   scripts/e2e-cluster.sh down              stop what `up` started (by PID) and remove every trace
#   scripts/e2e-cluster.sh status            JSON state (exit 0 running, 1 otherwise)
#   scripts/e2e-cluster.sh import-images | addons
# Kubeconfig: $THREETIER_E2E_DIR/cluster/admin.kubeconfig. The logic is in e2e_node.py.
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
[[ -x $THREETIER_VENV/bin/python ]] || die "the project virtualenv is missing ($THREETIER_VENV): run \`make setup\` first"
exec "$THREETIER_VENV/bin/python" "$THREETIER_ROOT/scripts/e2e_node.py" "$@"
