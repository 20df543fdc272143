"""Every rendered object validates strictly against the schema of the pinned Kubernetes version.

Built-in kinds go through kubernetes-validate with strict=True (unknown fields fail); custom resources go
through the openAPIV3Schema of their CRD, read from the upstream chart tarball at test time and made strict
the way the API server's strict field validation is. A kind with no schema at all fails the test instead of
passing silently (kubernetes-validate alone would only warn).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from chart_render import (
    CHARTS,
    CRD_SCHEMA_SKIPPED,
    CRD_SOURCES,
    ENVIRONMENTS,
    HELMS,
    KUBE_VERSION,
    Render,
    crd_schema,
)

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
OBJECT_META_FIELDS = {"name", "namespace", "labels", "annotations"}


@cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    schema = crd_schema(api_version, kind)
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return validator_class(schema)


def _object_meta_errors(doc: dict[str, Any]) -> list[str]:
    meta = doc.get("metadata") or {}
    errors = [f"metadata.{key} is not expected in a chart" for key in set(meta) - OBJECT_META_FIELDS]
    for field in ("labels", "annotations"):
        errors += [
            f"metadata.{field}.{k} is not a string"
            for k, v in (meta.get(field) or {}).items()
            if not isinstance(v, str)
        ]
    return errors


def validation_errors(doc: dict[str, Any]) -> list[str]:
    """Return readable schema errors of one object ([] when valid)."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    where = f"{key[1]} {doc.get('metadata', {}).get('name')}"
    if key in CRD_SCHEMA_SKIPPED:
        return []
    if key in CRD_SOURCES:
        found = [
            f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _crd_validator(*key).iter_errors(doc)
        ]
        return found + [f"{where}: {e}" for e in _object_meta_errors(doc)]
    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = "/".join(map(str, error.path))
        return [f"{where}: {path}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [
            f"{where}: no schema for {key[0]} {key[1]} at Kubernetes {KUBE_VERSION}: add a CRD source or a skip reason"
        ]
    return []


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
