#!/usr/bin/env bash
# The local Kubernetes cluster (etcd + control plane built from source, fake KWOK nodes, metrics-server).
#   tests/harness/local_cluster/cluster.sh up       start it, or reuse a healthy one; a stale one (dead processes) is replaced
#   tests/harness/local_cluster/cluster.sh down     stop what `up` started (by PID) and remove its files
#   tests/harness/local_cluster/cluster.sh status   print the state, the kubeconfig and the processes (exit 0 running, 1 absent, 2 stale)
# Kubeconfig: $THREETIER_CACHE/cluster/kubeconfig. Details: docs/local-cluster.md; the logic is in cluster.py.
set -euo pipefail
# shellcheck source=../../../scripts/env.sh
. "$(dirname "$0")/../../../scripts/env.sh"
# shellcheck source=../../../scripts/lib.sh
. "$THREETIER_ROOT/scripts/lib.sh"
[[ -x $THREETIER_VENV/bin/python ]] || die "the project virtualenv is missing ($THREETIER_VENV): run \`make setup\` first"
# The harness is the package tests.harness of the repository root (tests/harness/__init__.py).
export PYTHONPATH="$THREETIER_ROOT${PYTHONPATH:+:$PYTHONPATH}"
# -P: the module path is the root, never the caller's directory (molecule/e2e has a tests/ of its own).
exec "$THREETIER_VENV/bin/python" -P -m tests.harness.local_cluster.cluster "$@"
