"""The collection's filters and the charts agree: every policy the filters build for an inventory's flow graph
renders through the charts with the filter's name, namespace, selector and rules, so the releases adopt the
policies the collection applied object by object before, unchanged.

Each app chart takes the policies of its component and of its `helm test` component (networkPolicy and
networkPolicy.test), the platform chart every other policy and the default denies, the way the roles hand
them over. The graph is the dev inventory's, templated as scripts/gen_docs.py templates it for the docs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import PLATFORM, REQUIRED_VALUES, ROOT, helm_template, parse_manifests

from tests.harness.collection import expose_collection

Manifest = dict[str, Any]
MANAGED_BY = "app.kubernetes.io/managed-by"


def _load_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def policies() -> list[Manifest]:
    """The dev graph's allow policies and the default deny of every namespace they are in."""
    expose_collection("threetier-charts-")
    from ansible_collections.threetier.k8s.plugins.filter.default_deny_policies import default_deny_policies
    from ansible_collections.threetier.k8s.plugins.filter.network_policies import network_policies

    graph = _load_script("gen_docs").inventory_graphs(ROOT)["dev"]
    allow = network_policies(graph)
    denies = default_deny_policies(sorted({p["metadata"]["namespace"] for p in allow}))
    return [*denies, *allow]


def _component(policy: Manifest) -> str | None:
    return policy["metadata"]["labels"].get("threetier.k8s/component")


def _rendered_policy(docs: tuple[Manifest, ...], name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == name]
    assert len(found) == 1, name
    return found[0]


def _assert_same_policy(rendered: Manifest, given: Manifest) -> None:
    assert (rendered["metadata"]["name"], rendered["metadata"]["namespace"]) == (
        given["metadata"]["name"],
        given["metadata"]["namespace"],
    )
    # The filter leaves out an empty rule list; the API server drops an empty one the chart renders.
    spec = {key: value for key, value in rendered["spec"].items() if value != []}
    assert spec == given["spec"]
    labels = {k: v for k, v in given["metadata"]["labels"].items() if k != MANAGED_BY}
    assert labels.items() <= rendered["metadata"]["labels"].items()
    assert rendered["metadata"]["labels"][MANAGED_BY] == "Helm"


@pytest.mark.parametrize("chart", ["frontend", "backend"])
def test_app_charts_render_their_components_policies(
    helm_bins: dict[str, str], tmp_path: Path, policies: list[Manifest], chart: str
) -> None:
    app = next(p for p in policies if _component(p) == chart)
    test = next(p for p in policies if _component(p) == f"{chart}-test")

    def values(policy: Manifest) -> Manifest:
        return {
            "name": policy["metadata"]["name"],
            "labels": {k: v for k, v in policy["metadata"]["labels"].items() if k != MANAGED_BY},
            "ingress": policy["spec"].get("ingress", []),
            "egress": policy["spec"].get("egress", []),
        }

    network = {"enabled": True, **values(app), "test": values(test)}
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"networkPolicy": network}), encoding="utf-8")
    namespace = app["metadata"]["namespace"]
    docs = parse_manifests(helm_template(helm_bins["helm"], chart, [path], REQUIRED_VALUES[chart], namespace=namespace))
    assert len([d for d in docs if d["kind"] == "NetworkPolicy"]) == 2
    _assert_same_policy(_rendered_policy(docs, app["metadata"]["name"]), app)
    _assert_same_policy(_rendered_policy(docs, test["metadata"]["name"]), test)


def test_platform_renders_every_other_policy_as_built(
    helm_bins: dict[str, str], tmp_path: Path, policies: list[Manifest]
) -> None:
    apps = {"frontend", "backend", "frontend-test", "backend-test"}
    rest = [p for p in policies if _component(p) not in apps]
    assert any(p["metadata"]["labels"]["threetier.k8s/policy-kind"] == "default-deny" for p in rest)
    namespaces = sorted({p["metadata"]["namespace"] for p in rest})
    restricted = {"enforce": "restricted", "audit": "restricted", "warn": "restricted"}
    values = {
        "namespaces": [{"name": name, "podSecurity": restricted} for name in namespaces],
        "networkPolicies": rest,
    }
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    docs = parse_manifests(helm_template(helm_bins["helm"], PLATFORM, [path], namespace="default"))
    assert len([d for d in docs if d["kind"] == "NetworkPolicy"]) == len(rest)
    for policy in rest:
        found = [
            d
            for d in docs
            if d["kind"] == "NetworkPolicy"
            and (d["metadata"]["namespace"], d["metadata"]["name"])
            == (policy["metadata"]["namespace"], policy["metadata"]["name"])
        ]
        assert len(found) == 1
        _assert_same_policy(found[0], policy)
