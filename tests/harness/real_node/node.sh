#!/usr/bin/env bash
# The e2e tier's cluster: control plane + one real node (containerd, kubelet, kube-proxy) on this host.
#   tests/harness/real_node/node.sh up [--no-addons]  start it (root), import the images, apply the add-ons
#   tests/harness/real_node/node.sh down              stop what `up` started (by PID) and remove every trace
#   tests/harness/real_node/node.sh status            JSON state (exit 0 running, 1 otherwise)
#   tests/harness/real_node/node.sh import-images | addons
# Kubeconfig: $THREETIER_E2E_DIR/cluster/admin.kubeconfig. The logic is in node.py.
set -euo pipefail
# shellcheck source=../../../scripts/env.sh
. "$(dirname "$0")/../../../scripts/env.sh"
# shellcheck source=../../../scripts/lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
[[ -x $THREETIER_VENV/bin/python ]] || die "the project virtualenv is missing ($THREETIER_VENV): run \`make setup\` first"
# The harness is the package tests.harness of the repository root; -P keeps the caller's directory off the path.
export PYTHONPATH="$THREETIER_ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$THREETIER_VENV/bin/python" -P -m tests.harness.real_node.node "$@"
