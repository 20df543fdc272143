"""Scrape targets: the frontend's nginx-prometheus-exporter sidecar and both charts' ServiceMonitors, and the
values schema of the observability blocks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import (
    CHARTS,
    Render,
    container,
    helm_template,
    of_kind,
    only,
    pinned_versions,
    pod_spec,
    require_tool,
    run_tool,
)


def nginx_conf(manifests: list[dict]) -> str:
    (configmap,) = [cm for cm in of_kind(manifests, "ConfigMap") if "nginx.conf" in (cm.get("data") or {})]
    return configmap["data"]["nginx.conf"]


def test_exporter_sidecar_reads_stub_status_on_loopback(render: Render) -> None:
    manifests = render("frontend")
    exporter = container(pod_spec(manifests), "metrics-exporter")
    assert exporter["image"] == "docker.io/nginx/nginx-prometheus-exporter:1.5.1"
    assert "--nginx.scrape-uri=http://127.0.0.1:8081/stub_status" in exporter["args"]
    assert "--web.listen-address=:9113" in exporter["args"]
    assert exporter["ports"] == [{"name": "metrics", "containerPort": 9113, "protocol": "TCP"}]
    conf = nginx_conf(manifests)
    servers = re.split(r"\n\s*server \{", conf)[1:]
    loopback = [body for body in servers if re.match(r"\s*listen 127\.0\.0\.1:8081;", body)]
    assert len(loopback) == 1, "no loopback-only server for stub_status in nginx.conf"
    assert re.search(r"location = /stub_status \{\s*stub_status;", loopback[0])
    # stub_status is never reachable on the port the Service and the Ingress send traffic to.
    assert conf.count("stub_status;") == 1


def test_exporter_passes_pod_security_restricted(render: Render) -> None:
    exporter = container(pod_spec(render("frontend")), "metrics-exporter")
    ctx = exporter["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] > 0
    assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert exporter["resources"]["limits"] == {"cpu": "100m", "memory": "64Mi"}
    assert exporter["livenessProbe"]["httpGet"] == {"path": "/", "port": "metrics"}


def test_metrics_can_be_switched_off(render: Render) -> None:
    manifests = render("frontend", "metrics.enabled=false")
    assert [c["name"] for c in pod_spec(manifests)["containers"]] == ["nginx"]
    assert [p["name"] for p in only(manifests, "Service")["spec"]["ports"]] == ["http"]
    assert "stub_status" not in nginx_conf(manifests)
    assert not of_kind(manifests, "ServiceMonitor")


@pytest.mark.parametrize("chart", ["frontend", "backend"])
def test_service_monitor_scrapes_the_metrics_port(render: Render, chart: str) -> None:
    manifests = render(chart)
    monitor = only(manifests, "ServiceMonitor")
    service = only(manifests, "Service")
    assert "metrics" in [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["threetier"]}
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert not of_kind(render(chart, api=False), "ServiceMonitor"), "rendered without the Prometheus Operator API"


@pytest.mark.parametrize(
    ("chart", "values", "message"),
    [
        ("backend", {"prometheusRule": {"rules": {"errorRatio": {"threshold": "5%"}}}}, "threshold"),
        ("backend", {"prometheusRule": {"rules": {"errorRatio": {"threshold": 5}}}}, "threshold"),
        ("backend", {"prometheusRule": {"rules": {"latencyP95": {"severity": "page"}}}}, "severity"),
        ("backend", {"prometheusRule": {"rules": {"hpaMaxedOut": {"for": "15 minutes"}}}}, "for"),
        ("backend", {"prometheusRule": {"rules": {"unknownAlert": {"enabled": True}}}}, "unknownAlert"),
        ("backend", {"prometheusRule": {"database": {"postgresSelector": '{namespace="x"}'}}}, "postgresSelector"),
        ("backend", {"httpMetrics": {"requestsMetric": "requests-total"}}, "requestsMetric"),
        ("backend", {"dashboards": {"enabled": "yes"}}, "enabled"),
        ("frontend", {"metrics": {"port": "9113"}}, "port"),
        ("frontend", {"metrics": {"scrapeUri": "http://x"}}, "scrapeUri"),
        ("frontend", {"serviceMonitor": {"interval": "often"}}, "interval"),
    ],
)
def test_schema_rejects_bad_observability_values(tmp_path: Path, chart: str, values: dict, message: str) -> None:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    helm = require_tool("helm")
    base = Path(__file__).resolve().parent / "values" / f"{chart}.yaml"
    kube = pinned_versions()["KUBERNETES_VERSION"].lstrip("v")
    cmd = [helm, "template", chart, str(CHARTS / chart), "--kube-version", kube, "-f", str(base), "-f", str(path)]
    proc = run_tool(cmd)
    assert proc.returncode != 0, f"{values} was accepted"
    assert "schema" in proc.stderr and message in proc.stderr, proc.stderr


def test_defaults_render_on_a_cluster_without_monitoring() -> None:
    """Plain `helm template` without the Prometheus Operator API: no CRD objects, the ConfigMaps stay."""
    for chart in ("frontend", "backend"):
        manifests = helm_template(chart)
        kinds = {m["kind"] for m in manifests}
        assert not kinds & {"ServiceMonitor", "PrometheusRule"}
        assert any(m["metadata"]["name"].endswith("-dashboard") for m in of_kind(manifests, "ConfigMap"))


@pytest.mark.parametrize("chart", ["frontend", "backend"])
def test_helm4_renders_the_same_observability_objects(chart: str) -> None:
    """The charts are installed with Helm 3 or 4: both must render these objects identically."""
    kinds = {"PrometheusRule", "ServiceMonitor"}

    def observability_objects(helm: str) -> list[dict]:
        args = ["--api-versions", "monitoring.coreos.com/v1"]
        if chart == "backend":
            args += ["--set", "prometheusRule.database.enabled=true"]
        manifests = helm_template(chart, *args, helm=helm)
        return [m for m in manifests if m["kind"] in kinds or m["metadata"]["name"].endswith("-dashboard")]

    helm3 = observability_objects("helm")
    assert helm3 and helm3 == observability_objects("helm4")
