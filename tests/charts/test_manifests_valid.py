"""Every rendered object validates strictly against the schema of the pinned Kubernetes version.

See manifest_schema.py for how built-in kinds and custom resources are validated.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chart_render import (
    CHARTS,
    CRD_SCHEMA_SKIPPED,
    CRD_SOURCES,
    ENVIRONMENTS,
    HELMS,
    PLATFORM,
    PLATFORM_VALUES,
    Render,
    helm_template,
    parse_manifests,
)
from manifest_schema import validation_errors

Rendered = Callable[[str, str, str], Render]
RenderWith = Callable[..., Render]

# Values that switch on every optional template the environments leave off (HTTPRoute, NetworkPolicy, ...).
ALL_FEATURES = (
    "httpRoute.enabled=true",
    "ingress.enabled=false",
    "httpRoute.parentRefs[0].name=public",
    "httpRoute.parentRefs[0].namespace=gateway-system",
    "httpRoute.parentRefs[0].sectionName=https",
    "httpRoute.hostnames[0]=app.example.com",
    "networkPolicy.enabled=true",
    "networkPolicy.ingress[0].from[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=ingress-nginx",
    "networkPolicy.ingress[0].ports[0].port=http",
    "networkPolicy.egress[0].ports[0].port=53",
    "networkPolicy.egress[0].ports[0].protocol=UDP",
    "priorityClassName=threetier-high",
    "imagePullSecrets[0].name=regcred",
    "autoscaling.enabled=false",
    "podDisruptionBudget.enabled=true",
)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize("helm", HELMS)
def test_environment_renders_validate_strictly(rendered: Rendered, helm: str, chart: str, environment: str) -> None:
    render = rendered(helm, chart, environment)
    assert render.docs, "helm rendered nothing"
    errors = [e for doc in render.docs for e in validation_errors(doc)]
    assert errors == []


@pytest.mark.parametrize("chart", CHARTS)
def test_optional_templates_validate_strictly(render_with: RenderWith, chart: str) -> None:
    render = render_with(chart, *ALL_FEATURES)
    kinds = {d["kind"] for d in render.docs}
    assert {"HTTPRoute", "NetworkPolicy", "ServiceMonitor", "Deployment", "Service"} <= kinds
    assert [e for doc in render.docs for e in validation_errors(doc)] == []


def test_servicemonitor_is_really_checked_against_its_crd(render_with: RenderWith) -> None:
    """The CRD path must catch what kubernetes-validate would only warn about."""
    monitor = render_with("backend").one("ServiceMonitor")
    assert validation_errors(monitor) == []
    bad = {
        **monitor,
        "spec": {**monitor["spec"], "endpoints": [{**monitor["spec"]["endpoints"][0], "portt": "metrics"}]},
    }
    assert any("portt" in e for e in validation_errors(bad))
    wrong_type = {**monitor, "spec": {**monitor["spec"], "endpoints": [{"port": "metrics", "interval": 30}]}}
    assert any("interval" in e for e in validation_errors(wrong_type))


def test_builtin_kinds_are_strict(render_with: RenderWith) -> None:
    deployment = render_with("frontend").one("Deployment")
    bad = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    assert any("replica" in e for e in validation_errors(bad))
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert any("no schema" in e for e in validation_errors(unknown))


def test_skipped_crd_kinds_give_their_reason() -> None:
    for key, reason in CRD_SCHEMA_SKIPPED.items():
        assert len(reason) > 40, key
        assert key not in CRD_SOURCES


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_helm_3_and_4_render_the_same_objects(rendered: Rendered, chart: str, environment: str) -> None:
    assert rendered("helm", chart, environment).docs == rendered("helm4", chart, environment).docs


@pytest.fixture(scope="module")
def platform_docs(helm_bins: dict[str, str]) -> dict[str, tuple[dict, ...]]:
    """helm -> the platform chart's objects with its test values."""
    return {
        helm: parse_manifests(helm_template(helm_bins[helm], PLATFORM, [PLATFORM_VALUES], namespace="default"))
        for helm in HELMS
    }


@pytest.mark.parametrize("helm", HELMS)
def test_platform_renders_validate_strictly(platform_docs: dict[str, tuple[dict, ...]], helm: str) -> None:
    docs = platform_docs[helm]
    assert {d["kind"] for d in docs} == {"Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy"}
    assert [e for doc in docs for e in validation_errors(doc)] == []


def test_platform_objects_are_really_checked(platform_docs: dict[str, tuple[dict, ...]]) -> None:
    """A quota or limit range spec passes through the chart unchecked: the Kubernetes schema must catch it."""
    quota = next(d for d in platform_docs["helm"] if d["kind"] == "ResourceQuota")
    assert any("hrad" in e for e in validation_errors({**quota, "spec": {"hrad": {"pods": "1"}}}))
    limits = next(d for d in platform_docs["helm"] if d["kind"] == "LimitRange")
    assert any("limits" in e for e in validation_errors({**limits, "spec": {"limits": "none"}}))


def test_platform_helm_3_and_4_render_the_same_objects(platform_docs: dict[str, tuple[dict, ...]]) -> None:
    assert platform_docs["helm"] == platform_docs["helm4"]
