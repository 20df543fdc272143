"""What the platform chart renders: the namespaces with their Pod Security labels, quotas, limit ranges and the
policies it is given, each object in its own namespace and with exactly the expected labels.

The values (tests/charts/values/platform.yaml) have the shape the collection passes: two namespaces, one with
a quota and a limit range, and policies as the default_deny_policies and network_policies filters build them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import HELMS, PLATFORM, PLATFORM_VALUES, helm_template, parse_manifests

Docs = tuple[dict[str, Any], ...]
VALUES = yaml.safe_load(PLATFORM_VALUES.read_text(encoding="utf-8"))
# What the chart puts on every object, whatever commonLabels says about managed-by.
RELEASE_LABELS = {
    "helm.sh/chart": "platform-1.0.0",
    "app.kubernetes.io/instance": "platform",
    "app.kubernetes.io/managed-by": "Helm",
}


@pytest.fixture(scope="module")
def render_platform(helm_bins: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Docs]:
    """render_platform(helm, **overrides) -> the objects of the test values with top-level keys replaced."""
    directory = tmp_path_factory.mktemp("platform-values")

    @cache
    def get(helm: str = "helm", **overrides: Any) -> Docs:
        files: list[Path] = [PLATFORM_VALUES]
        if overrides:
            extra = directory / f"{len(list(directory.iterdir()))}.yaml"
            extra.write_text(yaml.safe_dump(overrides), encoding="utf-8")
            files.append(extra)
        return parse_manifests(helm_template(helm_bins[helm], PLATFORM, files, namespace="default"))

    return get


def _key(doc: dict[str, Any]) -> tuple[str, str, str]:
    return (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])


def _one(docs: Docs, kind: str, namespace: str, name: str) -> dict[str, Any]:
    found = [doc for doc in docs if _key(doc) == (kind, namespace, name)]
    assert len(found) == 1, f"{kind} {namespace}/{name}: found {len(found)}"
    return found[0]


@pytest.mark.parametrize("helm", HELMS)
def test_exactly_the_expected_objects(render_platform: Callable[..., Docs], helm: str) -> None:
    docs = render_platform(helm)
    assert sorted(_key(doc) for doc in docs) == sorted(
        [
            ("Namespace", "", "threetier"),
            ("Namespace", "", "threetier-monitoring"),
            ("ResourceQuota", "threetier", "threetier-quota"),
            ("LimitRange", "threetier", "threetier-limits"),
            ("NetworkPolicy", "threetier", "threetier-default-deny"),
            ("NetworkPolicy", "threetier-monitoring", "threetier-exporter"),
            ("NetworkPolicy", "ingress-nginx", "threetier-controller"),
        ]
    )
    # The release lives in `default`, but nothing of it lands there by accident.
    assert all(doc["metadata"].get("namespace") != "default" for doc in docs)


def test_namespaces_carry_pod_security_and_their_labels(render_platform: Callable[..., Docs]) -> None:
    docs = render_platform()
    common = {"app.kubernetes.io/part-of": "threetier", **RELEASE_LABELS}

    def pod_security(enforce: str, audit: str, warn: str, version: str) -> dict[str, str]:
        levels = {"enforce": enforce, "audit": audit, "warn": warn}
        labels = {f"pod-security.kubernetes.io/{mode}": level for mode, level in levels.items()}
        return labels | {f"pod-security.kubernetes.io/{mode}-version": version for mode in levels}

    app = _one(docs, "Namespace", "", "threetier")["metadata"]
    # The item's own label is kept; its pod-security.kubernetes.io/enforce=privileged loses to podSecurity.
    assert app["labels"] == common | {"team": "web"} | pod_security("restricted", "restricted", "restricted", "v1.33")
    assert app["annotations"] == {"owner": "platform-team", "helm.sh/resource-policy": "keep"}
    monitoring = _one(docs, "Namespace", "", "threetier-monitoring")["metadata"]
    # podSecurity.version overrides podSecurityVersion for this namespace only.
    assert monitoring["labels"] == common | pod_security("privileged", "baseline", "baseline", "latest")
    assert monitoring["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_quota_and_limit_range_are_the_given_specs(render_platform: Callable[..., Docs]) -> None:
    docs = render_platform()
    labels = {"app.kubernetes.io/part-of": "threetier", **RELEASE_LABELS}
    quota = _one(docs, "ResourceQuota", "threetier", "threetier-quota")
    assert (quota["metadata"]["labels"], quota["spec"]) == (labels, VALUES["namespaces"][0]["resourceQuota"])
    limits = _one(docs, "LimitRange", "threetier", "threetier-limits")
    assert (limits["metadata"]["labels"], limits["spec"]) == (labels, VALUES["namespaces"][0]["limitRange"])
    # Names come from the values, and the namespace without a quota or limit range gets neither.
    renamed = render_platform(resourceQuotaName="quota", limitRangeName="limits")
    assert {_key(d) for d in renamed if d["kind"] in {"ResourceQuota", "LimitRange"}} == {
        ("ResourceQuota", "threetier", "quota"),
        ("LimitRange", "threetier", "limits"),
    }


def test_policies_are_rendered_as_given_with_the_release_labels(render_platform: Callable[..., Docs]) -> None:
    docs = render_platform()
    for given in VALUES["networkPolicies"]:
        meta = given["metadata"]
        policy = _one(docs, "NetworkPolicy", meta["namespace"], meta["name"])
        assert policy["apiVersion"] == "networking.k8s.io/v1"
        assert policy["spec"] == given["spec"]
        # Own labels over commonLabels, Helm's fixed labels over both (managed-by: Helm, not threetier.k8s).
        assert (
            policy["metadata"]["labels"] == {"app.kubernetes.io/part-of": "threetier"} | meta["labels"] | RELEASE_LABELS
        )
        assert set(policy) == {"apiVersion", "kind", "metadata", "spec"}


def test_keep_namespaces_switches_the_resource_policy(render_platform: Callable[..., Docs]) -> None:
    kept = [d for d in render_platform() if d["kind"] == "Namespace"]
    assert [d["metadata"]["annotations"].get("helm.sh/resource-policy") for d in kept] == ["keep", "keep"]
    deletable = [d for d in render_platform(keepNamespaces=False) if d["kind"] == "Namespace"]
    assert len(deletable) == 2
    assert [d["metadata"].get("annotations") for d in deletable] == [{"owner": "platform-team"}, None]
    # Only Namespaces are kept: the release's other objects go with it.
    assert not [d for d in render_platform() if d["kind"] != "Namespace" and d["metadata"].get("annotations")]


def test_the_defaults_create_nothing(helm_bins: dict[str, str]) -> None:
    assert parse_manifests(helm_template(helm_bins["helm"], PLATFORM, namespace="default")) == ()
