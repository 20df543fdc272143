"""The generated diagram page is current, the generated policies pass strict schema validation, ansible-doc works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from ansible_collections.threetier.k8s.plugins.filter.default_deny_policies import default_deny_policies
from ansible_collections.threetier.k8s.plugins.filter.network_policies import network_policies
from conftest import ROOT, all_graphs, gen_docs

GRAPHS = all_graphs()
FILTERS = ("network_policies", "default_deny_policies", "network_graph_mermaid", "network_flows")
KUBERNETES_VERSION = "1.33.0"


def test_network_graph_page_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check", "--only", "network-graph"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_network_graph_page_draws_every_inventory() -> None:
    text = (ROOT / "docs" / "network-graph.md").read_text(encoding="utf-8")
    graphs = gen_docs.inventory_graphs(ROOT)
    assert graphs, "no inventory defines threetier_network"
    for name in graphs:
        assert f"\n## {name} (database mode" in text
    assert text.count("```mermaid") == len(graphs)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_policies_pass_strict_schema_validation(name: str) -> None:
    policies: list[dict[str, Any]] = network_policies(GRAPHS[name]) + default_deny_policies(GRAPHS[name])
    assert policies
    for policy in policies:
        kubernetes_validate.validate(policy, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", FILTERS)
def test_ansible_doc_shows_the_filter(name: str, tmp_path: Path) -> None:
    ansible_doc = shutil.which("ansible-doc")
    assert ansible_doc, "ansible-doc is not on PATH: `. scripts/env.sh`"
    (tmp_path / "ansible_collections" / "threetier").mkdir(parents=True)
    (tmp_path / "ansible_collections" / "threetier" / "k8s").symlink_to(ROOT, target_is_directory=True)
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [ansible_doc, "-t", "filter", f"threetier.k8s.{name}"], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"threetier.k8s.{name}" in result.stdout
    assert "EXAMPLES" in result.stdout and "RETURN VALUES" in result.stdout
    assert "[WARNING]" not in result.stderr and "[ERROR]" not in result.stderr, result.stderr
