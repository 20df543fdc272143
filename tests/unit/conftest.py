"""Unit tier: import the collection's plugins straight from the checkout.

The plugins import their shared code as ``ansible_collections.threetier.k8s.plugins.module_utils...``. The
checkout is exposed under that name through a symlink in a temporary directory put on ``sys.path``, so the
tests need neither an installed collection nor scripts/setup.sh's ``.collections`` link.
``ansible_collections`` is a namespace package (the ``ansible`` wheel ships collections under it too), so the
extra path entry merges with the bundled collections.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis.configuration import set_hypothesis_home_dir

from tests.harness.collection import expose_collection

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


expose_collection("threetier-unit-")

# Hypothesis keeps its examples and caches in the project cache, not in the checkout.
set_hypothesis_home_dir(
    str(Path(os.environ.get("THREETIER_CACHE", Path.home() / ".cache" / "threetier-k8s")) / "hypothesis")
)


def load_fixture(name: str) -> Any:
    """A YAML file of tests/unit/fixtures."""
    return yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def reference_graph() -> dict[str, Any]:
    """The graph of docs/interfaces.md with the operator database (a fresh copy per test)."""
    return load_fixture("graph_operator.yml")["threetier_network"]


def _doc_script() -> ModuleType:
    """scripts/gen_docs.py, the docs generator, which also owns how an inventory's graph is templated."""
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # before it runs: its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen_docs = _doc_script()


def inventory_graphs() -> dict[str, dict[str, Any]]:
    """Every inventory's ``threetier_network`` (templated; rds/external database CIDRs stood in if empty)."""
    return gen_docs.inventory_graphs(ROOT)


def all_graphs() -> dict[str, dict[str, Any]]:
    """The fixture graphs (by file stem) plus every inventory's graph (by environment)."""
    graphs = {path.stem: load_fixture(path.name)["threetier_network"] for path in sorted(FIXTURES.glob("graph_*.yml"))}
    graphs.update({f"inventory-{name}": graph for name, graph in inventory_graphs().items()})
    return graphs
