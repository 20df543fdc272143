"""Values the charts must refuse, each with a message a human can act on (Helm 3 and Helm 4).

Type, enum and unknown-key errors come from values.schema.json; cross-field rules the schema cannot express
(minReplicas > maxReplicas, Ingress and HTTPRoute together, missing database credentials) from `fail` calls
in the templates.
"""

from __future__ import annotations

import re

import pytest
from chart_render import HELMS, REQUIRED_VALUES, RenderError, helm_template, parse_manifests
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
