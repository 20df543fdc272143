"""The backend's PrometheusRule: when it renders, that promtool accepts it, and one unit test per alert.

Every alert has a file under rules/ named after it, with promtool unit tests that show it firing on synthetic
series and staying quiet where it should. The rule file they run against is rendered from the chart here, so
a template change is tested as it ships.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, Render, check_rules, metric_names, of_kind, only, run_tool

RULE_TESTS = Path(__file__).resolve().parent / "rules"
ALL_ON = ("prometheusRule.database.enabled=true",)
OTEL_HTTP = (
    "httpMetrics.requestsMetric=http_server_request_duration_seconds_count",
    "httpMetrics.durationBucketMetric=http_server_request_duration_seconds_bucket",
    "httpMetrics.statusLabel=http_response_status_code",
    "httpMetrics.namespaceLabel=k8s_namespace_name",
    "httpMetrics.serviceLabel=service_name",
)


def groups_of(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return only(manifests, "PrometheusRule")["spec"]["groups"]


def alerts_of(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


@pytest.fixture(scope="module")
def full_groups(render: Render) -> list[dict[str, Any]]:
    """The rule groups with every alert rendered (database alerts included)."""
    return groups_of(render("backend", *ALL_ON))


def test_not_rendered_without_the_operator_api(render: Render) -> None:
    assert not of_kind(render("backend", *ALL_ON, api=False), "PrometheusRule")


def test_not_rendered_when_disabled(render: Render) -> None:
    assert not of_kind(render("backend", "prometheusRule.enabled=false"), "PrometheusRule")


def test_rendered_by_default_when_the_api_is_served(render: Render) -> None:
    rule = only(render("backend"), "PrometheusRule")
    assert rule["metadata"]["namespace"] == "threetier"
    # kube-prometheus-stack's Prometheus selects rules with the release label of its own release.
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "backend.database" not in {g["name"] for g in rule["spec"]["groups"]}, "database alerts are opt-in"


EXPECTED_ALERTS = {
    "BackendHighErrorRatio",
    "BackendHighLatencyP95",
    "BackendHighLatencyP99",
    "BackendPodsRestarting",
    "BackendReplicasUnavailable",
    "BackendHPAMaxedOut",
    "BackendHPAUnableToScale",
    "PgBouncerPoolSaturated",
    "PostgreSQLDown",
}


def test_the_alerts_the_issue_lists(full_groups: list[dict[str, Any]]) -> None:
    assert set(alerts_of(full_groups)) == EXPECTED_ALERTS


@pytest.mark.parametrize(
    "sets",
    [
        pytest.param(ALL_ON, id="defaults-with-database"),
        pytest.param((*ALL_ON, *OTEL_HTTP), id="opentelemetry-http-metrics"),
        pytest.param(("autoscaling.enabled=false",), id="no-autoscaling"),
        pytest.param(
            (*ALL_ON, 'prometheusRule.database.pgbouncerSelector=namespace="db"\\, job=~"pooler.*"'),
            id="custom-database-selector",
        ),
    ],
)
def test_promtool_check_rules(render: Render, promtool: str, tmp_path: Path, sets: tuple[str, ...]) -> None:
    check_rules(promtool, groups_of(render("backend", *sets)), tmp_path)


def test_every_rule_reads_known_metrics(full_groups: list[dict[str, Any]], catalog: dict[str, str]) -> None:
    for name, rule in alerts_of(full_groups).items():
        unknown = metric_names(rule["expr"]) - set(catalog)
        assert not unknown, f"{name} reads metrics missing from known_metrics.yaml: {sorted(unknown)}"


def test_runbook_links_point_at_the_alert_anchor(full_groups: list[dict[str, Any]]) -> None:
    for name, rule in alerts_of(full_groups).items():
        assert rule["annotations"]["runbook_url"].endswith(f"/docs/runbook.md#{name.lower()}")
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name


def test_observability_doc_describes_every_alert(full_groups: list[dict[str, Any]]) -> None:
    doc = (ROOT / "docs" / "observability.md").read_text()
    for name in alerts_of(full_groups):
        assert f"`{name}`" in doc, f"docs/observability.md does not describe {name}"


def test_thresholds_windows_and_severities_come_from_values(render: Render, tmp_path: Path) -> None:
    # A values file, not --set: helm --set turns 0.2 into a string, which the schema rightly refuses.
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "prometheusRule": {
                    "additionalAlertLabels": {"team": "platform"},
                    "rules": {
                        "errorRatio": {"threshold": 0.2, "window": "15m"},
                        "latencyP99": {"thresholdSeconds": 3.5, "severity": "warning"},
                        "hpaMaxedOut": {"for": "45m"},
                    },
                    "database": {"enabled": True, "poolSaturation": {"threshold": 0.75}},
                }
            }
        )
    )
    rules = alerts_of(groups_of(render("backend", values=values)))
    error_ratio = rules["BackendHighErrorRatio"]["expr"]
    assert ") > 0.2\n" in error_ratio and "[15m]" in error_ratio and "[5m]" not in error_ratio
    assert rules["BackendHighLatencyP99"]["expr"].rstrip().endswith("> 3.5")
    assert rules["BackendHighLatencyP99"]["labels"] == {"severity": "warning", "team": "platform"}
    assert rules["BackendHPAMaxedOut"]["for"] == "45m"
    assert rules["PgBouncerPoolSaturated"]["expr"].rstrip().endswith(">= 0.75")


def test_each_alert_can_be_switched_off(render: Render) -> None:
    rules = alerts_of(groups_of(render("backend", *ALL_ON, "prometheusRule.rules.latencyP95.enabled=false")))
    assert "BackendHighLatencyP95" not in rules and "BackendHighLatencyP99" in rules


def test_hpa_alerts_only_with_autoscaling(render: Render) -> None:
    rules = alerts_of(groups_of(render("backend", "autoscaling.enabled=false")))
    assert not {"BackendHPAMaxedOut", "BackendHPAUnableToScale"} & set(rules)
    assert "BackendReplicasUnavailable" in rules


def test_selectors_follow_the_release(render: Render) -> None:
    rules = alerts_of(groups_of(render("backend", release="shop-backend", namespace="shop")))
    assert 'exported_namespace="shop", exported_service="shop-backend"' in rules["BackendHighErrorRatio"]["expr"]
    assert 'deployment="shop-backend"' in rules["BackendReplicasUnavailable"]["expr"]
    assert 'horizontalpodautoscaler="shop-backend"' in rules["BackendHPAMaxedOut"]["expr"]
    assert 'owner_name=~"shop-backend-[a-z0-9]+"' in rules["BackendPodsRestarting"]["expr"]


def test_selectors_name_the_objects_the_chart_renders(render: Render) -> None:
    """The names in the expressions are those of the rendered Deployment, HPA and Service, whatever they are."""
    manifests = render("backend", release="shop", namespace="shop-ns")
    rules = alerts_of(groups_of(manifests))
    deployment = only(manifests, "Deployment")["metadata"]["name"]
    hpa = only(manifests, "HorizontalPodAutoscaler")["metadata"]["name"]
    service = only(manifests, "Service")["metadata"]["name"]
    assert f'deployment="{deployment}"' in rules["BackendReplicasUnavailable"]["expr"]
    assert f'horizontalpodautoscaler="{hpa}"' in rules["BackendHPAUnableToScale"]["expr"]
    assert f'exported_service="{service}"' in rules["BackendHighLatencyP95"]["expr"]
    # ReplicaSets are named <deployment>-<pod-template-hash>.
    assert f'owner_name=~"{deployment}-[a-z0-9]+"' in rules["BackendPodsRestarting"]["expr"]


def _rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*.yaml"))


def test_every_alert_has_a_firing_and_a_quiet_unit_test(full_groups: list[dict[str, Any]]) -> None:
    for name in alerts_of(full_groups):
        path = RULE_TESTS / f"{name}.yaml"
        assert path.is_file(), f"no promtool unit test for {name} ({path.relative_to(ROOT)})"
        cases = [
            case
            for test in yaml.safe_load(path.read_text())["tests"]
            for case in test["alert_rule_test"]
            if case["alertname"] == name
        ]
        assert any(case.get("exp_alerts") for case in cases), f"{path.name} never expects {name} to fire"
        assert any(not case.get("exp_alerts") for case in cases), f"{path.name} never expects {name} to stay quiet"


@pytest.mark.parametrize("test_file", _rule_test_files(), ids=lambda p: p.stem)
def test_promtool_unit_tests(full_groups: list[dict[str, Any]], promtool: str, tmp_path: Path, test_file: Path) -> None:
    """Run one alert's unit tests against the rendered rules (release backend, namespace threetier)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": full_groups}, sort_keys=False))
    # Prepended as text, not re-serialised: PyYAML (YAML 1.1) would read series values such as 0x40 as hex numbers.
    header = f"rule_files:\n  - {json.dumps(str(rules))}\nevaluation_interval: 1m\n"
    unit = tmp_path / test_file.name
    unit.write_text(header + test_file.read_text().removeprefix("---\n"))
    proc = run_tool([promtool, "test", "rules", str(unit)])
    assert proc.returncode == 0, f"promtool test rules {test_file.name}:\n{proc.stdout}{proc.stderr}"
    assert re.search(r"SUCCESS", proc.stdout), proc.stdout
