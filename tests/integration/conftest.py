"""Session fixtures of the integration tier: the local cluster and the offline Helm chart mirror.

Both are started on first use and reused when already running (a developer's `make cluster-up`, an earlier
Molecule run); whatever a session started is stopped at its end, and nothing else is. The scripts and the one
kubectl() are the harness's (tests/harness/).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness import HELM_MIRROR_SH, ROOT, local_cluster
from tests.harness import proc as harness

CLUSTER_SH = local_cluster.CLUSTER_SH


def script(
    path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 1800
) -> subprocess.CompletedProcess[str]:
    """Run one of the project's scripts; its output is kept for assertion messages."""
    return harness.run([path, *args], env=env, timeout=timeout, check=False, error=AssertionError)


class ClusterScript:
    """The local cluster's cluster.sh; ``env`` selects another (THREETIER_CLUSTER_DIR, THREETIER_CLUSTER_NAME)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env

    def status(self) -> dict[str, Any]:
        proc = script(CLUSTER_SH, "status", "--json", env=self.env, timeout=120)
        assert proc.returncode in (0, 1, 2), f"cluster.sh status failed:\n{proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout)

    def up(self) -> dict[str, Any]:
        proc = script(CLUSTER_SH, "up", "--json", env=self.env)
        assert proc.returncode == 0, f"cluster.sh up failed:\n{proc.stdout}{proc.stderr}"
        return json.loads(proc.stdout)

    def down(self) -> None:
        proc = script(CLUSTER_SH, "down", env=self.env, timeout=300)
        assert proc.returncode == 0, f"cluster.sh down failed:\n{proc.stdout}{proc.stderr}"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Path]:
    """Path of the kubeconfig of the local cluster (make cluster-up), started if it is not running."""
    shared = ClusterScript()
    started = shared.status()["state"] != "running"
    status = shared.up()
    try:
        yield Path(status["kubeconfig"])
    finally:
        if started:
            shared.down()


@pytest.fixture(scope="session")
def helm_mirror() -> Iterator[str]:
    """URL of ../shared/helm-mirror served as a Helm repository on 127.0.0.1 (scripts/helm-mirror.sh)."""
    started = script(HELM_MIRROR_SH, "status", timeout=30).returncode != 0
    proc = script(HELM_MIRROR_SH, "start", timeout=60)
    assert proc.returncode == 0, f"helm-mirror.sh start failed:\n{proc.stdout}{proc.stderr}"
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        if started:
            script(HELM_MIRROR_SH, "stop", timeout=60)


@dataclass(frozen=True)
class Kubectl:
    """kubectl bound to one kubeconfig; failures carry kubectl's own message."""

    kubeconfig: Path

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        return harness.kubectl(
            *args,
            kubeconfig=self.kubeconfig,
            request_timeout=None,
            stdin=stdin,
            check=check,
            timeout=timeout,
            error=AssertionError,
        )

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)

    def apply(self, *manifests: dict[str, Any], namespace: str | None = None) -> None:
        ns = [f"--namespace={namespace}"] if namespace else []
        self(
            "apply",
            *ns,
            "-f",
            "-",
            stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)}),
        )


@pytest.fixture(scope="session")
def kubectl(cluster: Path) -> Kubectl:
    """kubectl for the shared local cluster."""
    return Kubectl(cluster)


@pytest.fixture(scope="session")
def cluster_script() -> type[ClusterScript]:
    """The ClusterScript class, for tests that run a cluster of their own."""
    return ClusterScript


@pytest.fixture(scope="session")
def kubectl_for() -> type[Kubectl]:
    """The Kubectl class, for tests with a kubeconfig of their own."""
    return Kubectl


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = f"it-{request.node.name[:40].lower().replace('_', '-')}-{uuid.uuid4().hex[:5]}".replace("--", "-")
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def versions() -> dict[str, str]:
    """tools/versions.env as a dict (the environment wins, as in the scripts)."""
    pairs = {}
    for line in (ROOT / "tools" / "versions.env").read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key.strip()] = os.environ.get(key.strip(), value.strip())
    return pairs
