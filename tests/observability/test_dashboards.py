"""The Grafana dashboards: valid JSON in the shape Grafana provisions, labelled for the kube-prometheus-stack
sidecar, and every panel query reading a metric that something in the stack exports (known_metrics.yaml)."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import (
    CHARTS,
    HERE,
    ROOT,
    Render,
    check_rules,
    dashboards_in,
    metric_names,
    of_kind,
    pinned_versions,
)

SCHEMA = json.loads((HERE / "grafana_dashboard.schema.json").read_text())
CHART_NAMES = ("backend", "frontend")
# Grafana's own variables, interpolated at query time.
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
OTEL_HTTP = (
    "httpMetrics.requestsMetric=http_server_request_duration_seconds_count",
    "httpMetrics.durationBucketMetric=http_server_request_duration_seconds_bucket",
    "httpMetrics.statusLabel=http_response_status_code",
    "httpMetrics.namespaceLabel=k8s_namespace_name",
    "httpMetrics.serviceLabel=service_name",
)


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(dashboard) for target in panel.get("targets", [])]


def rendered(render: Render, chart: str, *sets: str) -> dict[str, Any]:
    found = list(dashboards_in(render(chart, *sets)))
    assert len(found) == 1, f"expected one dashboard in the {chart} chart, found {len(found)}"
    return found[0][1]


def as_promql(expr: str) -> str:
    """A panel query with Grafana's variables replaced by values promtool can parse."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return VARIABLE.sub("x", expr)


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_source_json_is_valid(chart: str) -> None:
    raw = json.loads((CHARTS / chart / "dashboards" / f"{chart}.json").read_text())
    jsonschema.validate(raw, SCHEMA)


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_rendered_dashboard_matches_the_schema(render: Render, chart: str) -> None:
    jsonschema.validate(rendered(render, chart), SCHEMA)


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_no_placeholder_survives_the_render(render: Render, chart: str) -> None:
    text = json.dumps(rendered(render, chart))
    assert not re.search(r"__[A-Z][A-Z_]+__", text), re.findall(r"__[A-Z][A-Z_]+__", text)


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_panel_ids_unique_and_grid_without_overlap(render: Render, chart: str) -> None:
    board = rendered(render, chart)
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(board):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']} is wider than the 24-column grid"
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


@pytest.mark.parametrize(("chart", "sets"), [("backend", ()), ("backend", OTEL_HTTP), ("frontend", ())])
def test_every_query_reads_known_metrics(
    render: Render, catalog: dict[str, str], chart: str, sets: tuple[str, ...]
) -> None:
    for expr in queries(rendered(render, chart, *sets)):
        names = metric_names(expr)
        assert names, f"no metric found in {expr!r}"
        unknown = names - set(catalog)
        assert not unknown, f"{chart}: {expr!r} reads metrics missing from known_metrics.yaml: {sorted(unknown)}"


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_every_variable_is_defined(render: Render, chart: str) -> None:
    board = rendered(render, chart)
    defined = {var["name"] for var in board["templating"]["list"]} | GRAFANA_BUILTINS
    for expr in queries(board):
        missing = set(VARIABLE.findall(expr)) - defined
        assert not missing, f"{expr!r} uses undefined variables {missing}"


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_queries_parse_with_promtool(render: Render, promtool: str, tmp_path: Path, chart: str) -> None:
    """promtool parses each query (as a recording rule) once Grafana's variables are filled in."""
    exprs = queries(rendered(render, chart))
    rules = [{"record": f"dashboard:query_{i}:{chart}", "expr": as_promql(expr)} for i, expr in enumerate(exprs)]
    check_rules(promtool, [{"name": f"{chart}-dashboard", "rules": rules}], tmp_path)


def test_backend_dashboard_covers_what_the_issue_asks(render: Render) -> None:
    exprs = "\n".join(queries(rendered(render, "backend")))
    # request rate and errors by status, latency percentiles
    assert 'status=~"5.."' in exprs and 'status=~"2.."' in exprs
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in exprs
    # pods per Deployment against the HPA bounds, and scaling events
    for metric in ("kube_deployment_status_replicas_available", "kube_horizontalpodautoscaler_spec_min_replicas"):
        assert metric in exprs
    assert "kube_horizontalpodautoscaler_spec_max_replicas" in exprs
    assert "changes(kube_horizontalpodautoscaler_status_desired_replicas" in exprs
    # CPU and memory against requests and limits
    each = queries(rendered(render, "backend"))
    for resource, usage in (
        ("cpu", "container_cpu_usage_seconds_total"),
        ("memory", "container_memory_working_set_bytes"),
    ):
        assert any(usage in expr for expr in each), f"no {resource} usage panel"
        for bound in ("requests", "limits"):
            assert any(
                f"kube_pod_container_resource_{bound}" in expr and f'resource="{resource}"' in expr for expr in each
            ), f"no {resource} {bound} query"
    # database connections (operator mode exporters)
    assert "pgbouncer_pools_client_waiting_connections" in exprs and "pg_stat_activity_count" in exprs


def test_dashboard_follows_http_metrics_values(render: Render) -> None:
    exprs = "\n".join(queries(rendered(render, "backend", *OTEL_HTTP)))
    assert "http_server_request_duration_seconds_bucket{k8s_namespace_name=" in exprs
    assert 'http_response_status_code=~"5.."' in exprs
    assert "nginx_ingress_controller" not in exprs


def _kube_prometheus_stack_sidecar() -> dict[str, Any]:
    """grafana.sidecar.dashboards of the pinned kube-prometheus-stack chart in ../shared/helm-mirror."""
    version = pinned_versions()["KUBE_PROMETHEUS_STACK_CHART_VERSION"]
    archive = ROOT.parent / "shared" / "helm-mirror" / f"kube-prometheus-stack-{version}.tgz"
    assert archive.is_file(), f"{archive} is missing (CI lays ../shared beside the clone)"
    with tarfile.open(archive) as tar:
        member = tar.extractfile("kube-prometheus-stack/values.yaml")
        assert member is not None
        values = yaml.safe_load(member.read())
    return values["grafana"]["sidecar"]["dashboards"]


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_configmap_is_labelled_for_the_stack_sidecar(render: Render, chart: str) -> None:
    sidecar = _kube_prometheus_stack_sidecar()
    assert sidecar["enabled"] and sidecar["searchNamespace"] == "ALL", (
        "the pinned stack no longer watches every namespace"
    )
    (configmap,) = [cm for cm in of_kind(render(chart), "ConfigMap") if cm["metadata"]["name"].endswith("-dashboard")]
    assert configmap["metadata"]["labels"][sidecar["label"]] == sidecar["labelValue"]
    assert list(configmap["data"]) == [f"threetier-{chart}.json"]


@pytest.mark.parametrize("chart", CHART_NAMES)
def test_dashboard_values(render: Render, chart: str) -> None:
    assert not list(dashboards_in(render(chart, "dashboards.enabled=false")))
    manifests = render(
        chart,
        "dashboards.label=team_dashboard",
        "dashboards.labelValue=yes",
        "dashboards.namespace=monitoring",
        "dashboards.annotations.grafana_folder=Threetier",
        release=f"shop-{chart}",
        namespace="shop",
    )
    (configmap,) = [cm for cm in of_kind(manifests, "ConfigMap") if cm["metadata"]["name"].endswith("-dashboard")]
    meta = configmap["metadata"]
    assert meta["namespace"] == "monitoring" and meta["labels"]["team_dashboard"] == "yes"
    assert meta["annotations"] == {"grafana_folder": "Threetier"}
    board = json.loads(configmap["data"][f"shop-shop-{chart}.json"])
    # The uid and the variables' defaults follow the release, so two releases never overwrite each other.
    assert board["uid"] == f"shop-shop-{chart}"
    current = {var["name"]: var.get("current", {}).get("value") for var in board["templating"]["list"]}
    assert current["namespace"] == "shop" and current["deployment"] == f"shop-{chart}"


def test_metric_name_extraction() -> None:
    """The extractor the metric checks rely on: selectors found; functions, labels, keywords, durations not."""
    expr = (
        'sum by (le, pod) (rate(a_bucket{x="y{z}", pod=~"p-.*"}[5m] offset 1h)) '
        "/ on (pod) group_left (container) b_total and histogram_quantile(0.9, c:recorded) > 1e3 or vector(0)"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c:recorded"}
    assert metric_names('label_replace(up{job="a"}, "dst", "$1", "src", "(.*)")') == {"up"}
