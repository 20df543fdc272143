"""The e2e tier's control plane with one real node on this host, and the servers around it (node.sh, run.sh)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
# up | down | status | import-images | addons | preflight | diagnose: the node (runs node.py).
NODE_SH = HERE / "node.sh"
# start | stop | status | reset: PostgreSQL 17 on the host (the external-mode pass).
POSTGRES_SH = HERE / "postgres.sh"
