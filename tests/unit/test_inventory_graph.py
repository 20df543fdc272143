"""The inventories' flow graph: written once for every environment, and as narrow as the seed's.

Every inventory's ``group_vars/all/network.yml`` is a relative link to ``inventories/_shared/network.yml``, and
the environments' graphs differ only where their own variables say (the API server, the ingress controller,
the database). The charts' ``helm test`` pods are components of their own, so no app is opened to itself and the
frontend sends nothing.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from ansible_collections.threetier.k8s.plugins.filter.network_policies import network_policies
from conftest import ROOT, inventory_graphs

INVENTORIES = ROOT / "inventories"
SHARED = INVENTORIES / "_shared" / "network.yml"
ENVIRONMENTS = sorted(path.parent.name for path in INVENTORIES.glob("*/hosts.yml"))


def test_every_inventory_links_the_one_graph() -> None:
    assert ENVIRONMENTS, "no inventory found"
    for env in ENVIRONMENTS:
        link = INVENTORIES / env / "group_vars" / "all" / "network.yml"
        assert link.is_symlink(), f"inventories/{env}: network.yml is a copy, not a link to {SHARED.relative_to(ROOT)}"
        # Relative, so it resolves in any clone and in the collection tarball (which keeps in-tree links).
        assert not os.path.isabs(os.readlink(link)), link
        assert link.resolve() == SHARED.resolve(), link
    copies = [
        str(path.relative_to(ROOT))
        for path in INVENTORIES.glob("*/group_vars/*/*.y*ml")
        if not path.is_symlink() and "threetier_network:" in path.read_text(encoding="utf-8")
    ]
    assert not copies, f"a second copy of the graph: {copies}"


def _without_environment_parts(graph: dict[str, Any]) -> dict[str, Any]:
    """The graph minus what an environment sets through its variables."""
    common = copy.deepcopy(graph)
    common.pop("database")
    common["api_server"].pop("cidrs")
    common["components"].pop("ingress")
    return common


def test_environments_differ_only_through_their_variables() -> None:
    graphs = inventory_graphs()
    assert sorted(graphs) == ENVIRONMENTS
    reference = _without_environment_parts(graphs["dev"])
    for name, graph in graphs.items():
        assert _without_environment_parts(graph) == reference, name
    # dev, staging and prod take the defaults of the shared graph; local sets its own.
    assert graphs["dev"]["api_server"]["cidrs"] == ["10.96.0.1/32", "10.0.0.0/16"]
    assert graphs["prod"]["components"]["ingress"] == graphs["dev"]["components"]["ingress"]
    assert graphs["local"]["api_server"]["cidrs"] != graphs["dev"]["api_server"]["cidrs"]


def test_no_app_is_open_to_itself_and_the_frontend_sends_nothing() -> None:
    for name, graph in inventory_graphs().items():
        assert not [f for f in graph["flows"] if f["from"] == f["to"]], name
        tests = {(f["from"], f["to"]) for f in graph["flows"] if f["from"].endswith("-test")}
        assert tests == {("frontend-test", "frontend"), ("backend-test", "backend")}, name
        policies = {p["metadata"]["name"]: p["spec"] for p in network_policies(graph)}
        frontend = policies["threetier-frontend"]
        # Egress is among the policy types, with no rule: the frontend reaches nothing, DNS included.
        assert "Egress" in frontend["policyTypes"] and not frontend.get("egress"), (name, frontend)
        backend = graph["components"]["backend"]["pod_labels"]
        peers = [peer for rule in policies["threetier-backend"].get("egress", []) for peer in rule.get("to", [])]
        assert peers and not [p for p in peers if p.get("podSelector", {}).get("matchLabels") == backend], name
