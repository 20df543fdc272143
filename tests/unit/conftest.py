"""Unit tier: import the collection's plugins straight from the checkout.

The plugins import their shared code as ``ansible_collections.threetier.k8s.plugins.module_utils...``. The
checkout is exposed under that name through a symlink in a temporary directory put on ``sys.path``, so the
tests need neither an installed collection nor scripts/setup.sh's ``.collections`` link.
``ansible_collections`` is a namespace package (the ``ansible`` wheel ships collections under it too), so the
extra path entry merges with the bundled collections.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _expose_collection() -> None:
    base = Path(tempfile.mkdtemp(prefix="threetier-unit-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    namespace = base / "ansible_collections" / "threetier"
    namespace.mkdir(parents=True)
    (namespace / "k8s").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(base))


_expose_collection()


def load_fixture(name: str) -> Any:
    """A YAML file of tests/unit/fixtures."""
    return yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture
def reference_graph() -> dict[str, Any]:
    """The graph of docs/interfaces.md with the operator database (a fresh copy per test)."""
    return load_fixture("graph_operator.yml")["threetier_network"]


# The database CIDRs of rds/external mode come from the database_connection fact at deploy time (the inventories
# leave them empty); the tests stand in TEST-NET-1 for them, as the network_policies role would put the real ones.
STAND_IN_DATABASE_CIDRS = ["192.0.2.0/24"]


def inventory_graphs() -> dict[str, dict[str, Any]]:
    """Every inventory's ``threetier_network``, templated with that inventory's group_vars/all (by environment name)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    graphs = {}
    for directory in sorted((ROOT / "inventories").glob("*/group_vars/all")):
        loader = DataLoader()
        variables: dict[str, Any] = {}
        for path in sorted(directory.glob("*.y*ml")):
            variables.update(loader.load_from_file(str(path), trusted_as_template=True) or {})
        if "threetier_network" not in variables:
            continue
        graph = to_plain(Templar(loader=loader, variables=variables).template(variables["threetier_network"]))
        database = graph.get("database") or {}
        if database.get("mode") in ("rds", "external") and not database.get("cidrs"):
            database["cidrs"] = list(STAND_IN_DATABASE_CIDRS)
        graphs[directory.parents[1].name] = graph
    return graphs


def to_plain(value: Any) -> Any:
    """Ansible's tagged containers and strings as plain Python data (YAML dumpers and equality then behave)."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    return value


def all_graphs() -> dict[str, dict[str, Any]]:
    """The fixture graphs (by file stem) plus every inventory's graph (by environment)."""
    graphs = {path.stem: load_fixture(path.name)["threetier_network"] for path in sorted(FIXTURES.glob("graph_*.yml"))}
    graphs.update({f"inventory-{name}": graph for name, graph in inventory_graphs().items()})
    return graphs
