"""The local Kubernetes cluster: kwokctl with real etcd and control plane, fake KWOK nodes (cluster.sh)."""

from __future__ import annotations

from pathlib import Path

# up | down | status [--json]: the entry point (sets up the environment, then runs cluster.py).
CLUSTER_SH = Path(__file__).resolve().parent / "cluster.sh"
