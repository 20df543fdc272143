"""Values the charts must refuse, each with a message a human can act on (Helm 3 and Helm 4).

Type, enum and unknown-key errors come from values.schema.json; cross-field rules the schema cannot express
(minReplicas > maxReplicas, Ingress and HTTPRoute together, missing database credentials) from `fail` calls
in the templates.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import (
    HELMS,
    PLATFORM,
    PLATFORM_VALUES,
    REQUIRED_VALUES,
    RenderError,
    helm_template,
    parse_manifests,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# (chart, --set values, regular expression the error must match)
REJECTED = [
    ("frontend", ["replicaCount=two"], r"at '/replicaCount': got string, want integer"),
    ("backend", ["replicaCount=two"], r"at '/replicaCount': got string, want integer"),
    ("frontend", ["replicas=3"], r"additional properties 'replicas' not allowed"),
    ("backend", ["databse.host=db"], r"additional properties 'databse' not allowed"),
    (
        "frontend",
        ["image.pullPolicy=Sometimes"],
        r"at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
    ),
    (
        "backend",
        ["database.sslmode=maybe"],
        r"at '/database/sslmode': value must be one of 'disable', 'allow', 'prefer'",
    ),
    ("frontend", ["service.type=ExternalName"], r"at '/service/type': value must be one of"),
    (
        "backend",
        ["affinityPreset.podAntiAffinity=sometimes"],
        r"at '/affinityPreset/podAntiAffinity': value must be one of",
    ),
    ("frontend", ["autoscaling.minReplicas=0"], r"at '/autoscaling/minReplicas': minimum: got 0, want 1"),
    ("backend", ["database.port=70000"], r"at '/database/port': maximum: got 70,000, want 65,535"),
    ("frontend", ["nginx.unknownKnob=1"], r"at '/nginx': additional properties 'unknownKnob' not allowed"),
    ("frontend", ["image.digest=latest"], r"at '/image/digest': 'latest' does not match pattern"),
    # The HPA can only measure a container the pod has.
    ("backend", ["autoscaling.container=redis"], r"at '/autoscaling/container': value must be one of '', 'php-fpm'"),
    ("frontend", ["autoscaling.container=php-fpm"], r"at '/autoscaling/container': value must be one of '', 'nginx'"),
    (
        "frontend",
        ["autoscaling.minReplicas=6", "autoscaling.maxReplicas=3"],
        r"autoscaling\.minReplicas \(6\) must not be greater than autoscaling\.maxReplicas \(3\)",
    ),
    (
        "backend",
        ["autoscaling.minReplicas=11"],
        r"autoscaling\.minReplicas \(11\) must not be greater than autoscaling\.maxReplicas \(10\)",
    ),
    (
        "frontend",
        ["ingress.enabled=true", "httpRoute.enabled=true", "httpRoute.parentRefs[0].name=gw"],
        r"ingress\.enabled and httpRoute\.enabled are both true",
    ),
    ("backend", ["httpRoute.enabled=true"], r"httpRoute\.parentRefs is empty"),
    ("backend", ["database.host="], r"database\.host is required"),
    ("backend", ["database.existingSecret="], r"database credentials are missing: set database\.existingSecret"),
    ("backend", ["app.key="], r"app\.key is required when app\.existingSecret is empty"),
    ("backend", ["metrics.enabled=false"], r"serviceMonitor\.enabled needs metrics\.enabled"),
]


@pytest.mark.parametrize(
    ("chart", "values", "message"), REJECTED, ids=[f"{c}:{'+'.join(v)}" for c, v, _msg in REJECTED]
)
@pytest.mark.parametrize("helm", HELMS)
def test_rejected_values(helm_bins: dict[str, str], helm: str, chart: str, values: list[str], message: str) -> None:
    with pytest.raises(RenderError) as error:
        helm_template(helm_bins[helm], chart, (), (*REQUIRED_VALUES[chart], *values))
    assert re.search(message, str(error.value)), str(error.value)


@pytest.mark.parametrize("helm", HELMS)
def test_schema_errors_name_the_chart(helm_bins: dict[str, str], helm: str) -> None:
    with pytest.raises(RenderError) as error:
        helm_template(helm_bins[helm], "backend", (), (*REQUIRED_VALUES["backend"], "replicaCount=two"))
    assert "values don't meet the specifications of the schema(s) in the following chart(s):\nbackend:" in str(
        error.value
    )


@pytest.mark.parametrize("helm", HELMS)
def test_the_required_values_are_enough(helm_bins: dict[str, str], helm: str) -> None:
    """The negative cases above fail for their own reason, not because the baseline is already broken."""
    for chart, required in REQUIRED_VALUES.items():
        assert "kind: Deployment" in helm_template(helm_bins[helm], chart, (), required)


@settings(max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(low=st.integers(min_value=1, max_value=40), high=st.integers(min_value=1, max_value=40))
def test_hpa_bounds_render_iff_ordered(helm_bins: dict[str, str], low: int, high: int) -> None:
    """Any pair of bounds renders exactly when minReplicas <= maxReplicas, and then lands in the HPA as given."""
    values = (f"autoscaling.minReplicas={low}", f"autoscaling.maxReplicas={high}")
    if low > high:
        with pytest.raises(RenderError, match=r"must not be greater than autoscaling\.maxReplicas"):
            helm_template(helm_bins["helm"], "frontend", (), values)
        return
    docs = parse_manifests(helm_template(helm_bins["helm"], "frontend", (), values))
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (low, high)


# --- The platform chart -------------------------------------------------------------------------------------

PLATFORM_BASE = yaml.safe_load(PLATFORM_VALUES.read_text(encoding="utf-8"))


def _edit(change: Any) -> dict[str, Any]:
    values = copy.deepcopy(PLATFORM_BASE)
    change(values)
    return values


def _policy(namespace: str | None = "threetier", **overrides: Any) -> dict[str, Any]:
    metadata = {"name": "threetier-extra"} | ({"namespace": namespace} if namespace else {})
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata,
        "spec": {"podSelector": {}},
    }
    return policy | overrides


# (id, edit of the test values, regular expression the error must match)
PLATFORM_REJECTED = [
    (
        "bad-level",
        lambda v: v["namespaces"][0]["podSecurity"].update(enforce="strict"),
        r"at '/namespaces/0/podSecurity/enforce': value must be one of 'privileged', 'baseline', 'restricted'",
    ),
    (
        "missing-level",
        lambda v: v["namespaces"][1]["podSecurity"].pop("warn"),
        r"at '/namespaces/1/podSecurity': missing property 'warn'",
    ),
    (
        "bad-version",
        lambda v: v.update(podSecurityVersion="1.33"),
        r"at '/podSecurityVersion': '1\.33' does not match pattern",
    ),
    (
        "duplicate-namespace",
        lambda v: v["namespaces"].append({"name": "threetier", "podSecurity": v["namespaces"][1]["podSecurity"]}),
        r"namespaces\[2\]\.name: namespace \"threetier\" is listed twice",
    ),
    (
        "namespace-not-a-dns-label",
        lambda v: v["namespaces"][1].update(name="Threetier_Monitoring"),
        r"at '/namespaces/1/name': 'Threetier_Monitoring' does not match pattern",
    ),
    (
        "unknown-namespace-key",
        lambda v: v["namespaces"][0].update(quota={}),
        r"at '/namespaces/0': additional properties 'quota' not allowed",
    ),
    (
        "policy-without-namespace",
        lambda v: v["networkPolicies"].append(_policy(namespace=None)),
        r"at '/networkPolicies/3/metadata': missing property 'namespace'",
    ),
    (
        "policy-of-another-kind",
        lambda v: v["networkPolicies"].append(_policy(kind="Service")),
        r"at '/networkPolicies/3/kind': value must be 'NetworkPolicy'",
    ),
    (
        "policy-of-another-api",
        lambda v: v["networkPolicies"].append(_policy(apiVersion="extensions/v1beta1")),
        r"at '/networkPolicies/3/apiVersion': value must be 'networking.k8s.io/v1'",
    ),
    (
        "duplicate-policy",
        lambda v: v["networkPolicies"].append(copy.deepcopy(v["networkPolicies"][0])),
        r"networkPolicies\[3\]: NetworkPolicy threetier/threetier-default-deny is listed twice",
    ),
    (
        "bad-label-value",
        lambda v: v["commonLabels"].update(tier=3),
        r"at '/commonLabels/tier': got number, want string",
    ),
]


@pytest.mark.parametrize(("edit", "message"), [c[1:] for c in PLATFORM_REJECTED], ids=[c[0] for c in PLATFORM_REJECTED])
@pytest.mark.parametrize("helm", HELMS)
def test_platform_rejected_values(
    helm_bins: dict[str, str], tmp_path: Path, helm: str, edit: Any, message: str
) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(_edit(edit)), encoding="utf-8")
    with pytest.raises(RenderError) as error:
        helm_template(helm_bins[helm], PLATFORM, (values,), namespace="default")
    assert re.search(message, str(error.value)), str(error.value)


@pytest.mark.parametrize("helm", HELMS)
def test_platform_accepts_a_policy_in_any_namespace(helm_bins: dict[str, str], tmp_path: Path, helm: str) -> None:
    """The baseline of the cases above renders, a policy outside `namespaces` included (documented)."""
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(_edit(lambda v: v["networkPolicies"].append(_policy("elsewhere")))), encoding="utf-8"
    )
    docs = parse_manifests(helm_template(helm_bins[helm], PLATFORM, (values,), namespace="default"))
    assert ("elsewhere", "threetier-extra") in {
        (d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "NetworkPolicy"
    }
