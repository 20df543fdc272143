"""The test harness: what runs the collection for the tests, never part of the collection itself.

    proc.py          the one run() and kubectl() every part below uses
    local_cluster/   the local Kubernetes cluster (kwokctl: real control plane, fake KWOK nodes): cluster.sh
    real_node/       the e2e tier's control plane with ONE REAL NODE on this host, and the servers around it
                     (host PostgreSQL, moto's S3): node.sh, run.sh (make e2e / e2e-ci), postgres.sh, s3.sh
    images/          the e2e tier's images, built without a container engine, and their contract tests
    bench/           the benchmarks (make bench, make bench-converge)

Nothing under roles/, plugins/, charts/, playbooks/, inventories/ or awx/ imports it, and galaxy.yml's
build_ignore keeps it out of the collection tarball. Python code imports it as ``tests.harness...`` with the
repository root on the module path: pytest.ini's ``pythonpath``, ``python -m`` from the root (the Makefile),
or PYTHONPATH set by the shell entry points and by Molecule's e2e scenario for its proofs.
"""

from __future__ import annotations

from pathlib import Path

# The repository root.
ROOT = Path(__file__).resolve().parents[2]
# The offline Helm chart mirror (start | stop | status): a user-facing script that the harness starts too.
HELM_MIRROR_SH = ROOT / "scripts" / "helm-mirror.sh"
