#!/usr/bin/env bash
# The local Kubernetes cluster (etcd + control plane built from source, fake KWOK nodes, metrics-server).
#   scripts/cluster.sh up       start it, or reuse a healthy one; a stale one (dead processes) is replaced
#   scripts/cluster.sh down     stop what `up` started (by PID) and remove its files
#   scripts/cluster.sh status   print the state, the kubeconfig and the processes (exit 0 running, 1 absent, 2 stale)
# Kubeconfig: $THREETIER_CACHE/cluster/kubeconfig. Details: docs/local-cluster.md; the logic is in cluster.py.
set -euo pipefail
# shellcheck source=env.sh
. "$(dirname "$0")/env.sh"
# shellcheck source=lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
[[ -x $THREETIER_VENV/bin/python ]] || die "the project virtualenv is missing ($THREETIER_VENV): run \`make setup\` first"
exec "$THREETIER_VENV/bin/python" "$THREETIER_ROOT/scripts/cluster.py" "$@"
