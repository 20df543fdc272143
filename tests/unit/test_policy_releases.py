"""Which release ships which policy, and the app charts' networkPolicy values (issue 20)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.threetier.k8s.plugins.filter.default_deny_policies import default_deny_policies
from ansible_collections.threetier.k8s.plugins.filter.network_policies import network_policies
from ansible_collections.threetier.k8s.plugins.filter.network_policies_by_release import (
    network_policies_by_release,
)
from ansible_collections.threetier.k8s.plugins.filter.network_policy_chart_values import (
    network_policy_chart_values,
)

RELEASES = {
    "backend": ["backend", "backend-test"],
    "frontend": ["frontend", "frontend-test"],
    "database": ["spilo", "pooler"],
}


def _names(policies: list[dict[str, Any]]) -> list[str]:
    return [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in policies]


def test_each_policy_goes_to_the_release_of_its_pods(reference_graph: dict[str, Any]) -> None:
    policies = network_policies(reference_graph)
    grouped = network_policies_by_release(policies, RELEASES)
    assert set(grouped) == {"platform", "backend", "frontend", "database"}
    # Nothing lost, nothing twice.
    assert sorted(_names([p for group in grouped.values() for p in group])) == sorted(_names(policies))
    for release, components in RELEASES.items():
        assert {p["metadata"]["labels"]["threetier.k8s/component"] for p in grouped[release]} <= set(components)
    assert {p["metadata"]["labels"]["threetier.k8s/component"] for p in grouped["backend"]} == {"backend"} | (
        {"backend-test"} & {p["metadata"]["labels"]["threetier.k8s/component"] for p in policies}
    )
    assert {p["metadata"]["labels"]["threetier.k8s/component"] for p in grouped["database"]} == {"spilo", "pooler"}


def test_components_listed_nowhere_and_default_deny_go_to_platform(reference_graph: dict[str, Any]) -> None:
    policies = network_policies(reference_graph) + default_deny_policies(["threetier", "threetier-db"])
    grouped = network_policies_by_release(policies, {"backend": ["backend"]})
    components = [p["metadata"]["labels"].get("threetier.k8s/component") for p in grouped["platform"]]
    assert "backend" not in components
    assert "frontend" in components and "spilo" in components
    assert [
        p["metadata"]["name"] for p in grouped["platform"] if "threetier.k8s/component" not in p["metadata"]["labels"]
    ] == [
        "threetier-default-deny",
        "threetier-default-deny",
    ]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"backend": ["backend"], "frontend": ["backend"]},
            "component 'backend' is listed under 'backend' and 'frontend'",
        ),
        ({"platform": ["backend"]}, "'platform' is implicit"),
        ({"backend": "backend"}, "release_components.backend must be a list"),
        (["backend"], "must map a release to its components"),
    ],
)
def test_a_bad_mapping_is_refused_with_the_entry(mapping: Any, message: str) -> None:
    with pytest.raises(
        AnsibleFilterError, match="threetier.k8s.network_policies_by_release: .*" + message.replace("(", r"\(")
    ):
        network_policies_by_release([], mapping)


def test_a_non_policy_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match=r"policies\[0\] is not a NetworkPolicy"):
        network_policies_by_release([{"kind": "Service"}], RELEASES)


def test_chart_values_carry_the_filters_rules_name_and_labels(reference_graph: dict[str, Any]) -> None:
    policies = network_policies(reference_graph)
    backend = next(p for p in policies if p["metadata"]["labels"]["threetier.k8s/component"] == "backend")
    values = network_policy_chart_values(policies, "backend", "backend-test")
    assert values["enabled"] is True
    assert values["name"] == backend["metadata"]["name"]
    assert values["ingress"] == backend["spec"].get("ingress", [])
    assert values["egress"] == backend["spec"].get("egress", [])
    # Helm sets managed-by itself; every other label of the filter stays, so the policy set can be listed.
    assert "app.kubernetes.io/managed-by" not in values["labels"]
    assert values["labels"] == {
        k: v for k, v in backend["metadata"]["labels"].items() if k != "app.kubernetes.io/managed-by"
    }


def test_the_test_pods_policy_comes_along_when_the_graph_has_it() -> None:
    graph = {
        "components": {
            "web": {"namespace": "app", "pod_labels": {"app": "web"}},
            "web-test": {"namespace": "app", "pod_labels": {"app": "web-test"}},
        },
        "flows": [{"from": "web-test", "to": "web", "ports": [{"port": 8080}]}],
    }
    policies = network_policies(graph)
    values = network_policy_chart_values(policies, "web", "web-test")
    assert values["ingress"] and not values["egress"]
    assert values["test"]["name"] == "threetier-web-test"
    assert values["test"]["labels"]["threetier.k8s/component"] == "web-test"
    assert values["test"]["ingress"] == []
    ports = [port for rule in values["test"]["egress"] for port in rule.get("ports", [])]
    assert {"port": 8080, "protocol": "TCP"} in ports
    # Without a test component the chart gets no test policy; without the app's, no policy at all.
    assert "test" not in network_policy_chart_values(policies, "web")
    assert network_policy_chart_values(policies, "api", "api-test") == {"enabled": False}
