"""Fixtures of the roles tier: run ansible-playbook / ansible-inventory against this checkout, no cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

import pytest
from ansible_run import ROOT, Result


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "roles: tests of the roles tier (set from the folder)")


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not on PATH: run `make setup`, then `. scripts/env.sh`"
    return path


@pytest.fixture(scope="session")
def ansible_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of every run: the repo's ansible.cfg and collection link, and no reachable cluster.

    K8S_AUTH_KUBECONFIG points at a file that does not exist, so a test that got past validation by mistake
    fails in preflight instead of touching whatever cluster the developer's kubeconfig names.
    """
    collections = ROOT / ".collections" / "ansible_collections" / "threetier" / "k8s"
    assert collections.resolve() == ROOT, f"{collections} must link to the repository: run `make setup`"
    env = os.environ.copy()
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_NOCOLOR="1",
        K8S_AUTH_KUBECONFIG=str(tmp_path_factory.mktemp("kube") / "missing-kubeconfig"),
        KUBECONFIG=str(tmp_path_factory.mktemp("kube") / "missing-kubeconfig"),
    )
    env.pop("THREETIER_CHART_REPO_OVERRIDE", None)
    return env


@pytest.fixture(scope="session")
def ansible_playbook(ansible_env: dict[str, str]) -> Callable[..., Result]:
    """Run ansible-playbook from the repository root; returns the exit code and stdout+stderr."""
    binary = _tool("ansible-playbook")

    def run(*args: str, timeout: int = 300) -> Result:
        proc = subprocess.run(
            [binary, *args], cwd=ROOT, env=ansible_env, capture_output=True, text=True, timeout=timeout, check=False
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="session")
def ansible_inventory(ansible_env: dict[str, str]) -> Callable[..., Result]:
    """Run ansible-inventory from the repository root."""
    binary = _tool("ansible-inventory")

    def run(*args: str) -> Result:
        proc = subprocess.run(
            [binary, *args], cwd=ROOT, env=ansible_env, capture_output=True, text=True, timeout=120, check=False
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
