"""Structured logs and traces as the charts configure them.

The access log formats are rendered from the charts and filled in the way nginx (escape=json) and PHP-FPM
fill them, then parsed as JSON: a format whose quoting is off, or that lacks a field a log pipeline needs,
fails here. The e2e tier parses lines written by the real processes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Render, container, of_kind, pod_spec

REQUIRED_FIELDS = {"time", "method", "path", "status", "request_id"}
DURATION_FIELDS = {"request_time", "duration_ms"}

# What nginx puts in each variable for one request; values with quotes and backslashes exercise the escaping.
NGINX_SAMPLE = {
    "time_iso8601": "2026-11-26T19:00:00+00:00",
    "threetier_request_id": "6f1c2a9e0b7d4c35a8e2f1d0c9b8a7e6",
    "remote_addr": "10.244.1.7",
    "http_x_forwarded_for": "203.0.113.9",
    "request_method": "GET",
    "threetier_path": "/api/users",
    "request_uri": "/api/users?page=2",
    "server_protocol": "HTTP/1.1",
    "status": "200",
    "body_bytes_sent": "512",
    "request_time": "0.042",
    "upstream_response_time": "0.040",
    "http_referer": "https://shop.example.com/",
    "http_user_agent": 'curl/8.17.0 "quoted" \\ back',
}
# What PHP-FPM puts in each access.format placeholder, by letter ({...} arguments are ignored but for %e).
FPM_SAMPLE = {
    "m": "GET",
    "r": "/api/users",
    "Q": "?",
    "q": "page=2",
    "s": "200",
    "d": "41.250",
    "M": "2048",
    "C": "12.50",
}


def nginx_conf(manifests: list[dict[str, Any]]) -> str:
    (configmap,) = [cm for cm in of_kind(manifests, "ConfigMap") if "nginx.conf" in (cm.get("data") or {})]
    return configmap["data"]["nginx.conf"]


def nginx_log_format(conf: str) -> str:
    """The json log_format: nginx concatenates the quoted pieces that follow its name."""
    match = re.search(r"log_format json escape=json ((?:\s*'[^']*')+)\s*;", conf)
    assert match, "no `log_format json escape=json` in nginx.conf"
    return "".join(re.findall(r"'([^']*)'", match.group(1)))


def fill_nginx(fmt: str) -> str:
    """Substitute variables as nginx does with escape=json (JSON string escaping, no quotes added)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in NGINX_SAMPLE, f"log_format uses ${name}: add a sample value to NGINX_SAMPLE"
        return json.dumps(NGINX_SAMPLE[name])[1:-1]

    return re.sub(r"\$([a-z_0-9]+)", value, fmt)


def fpm_access_format(manifests: list[dict[str, Any]]) -> str:
    (configmap,) = [cm for cm in of_kind(manifests, "ConfigMap") if cm["metadata"]["name"].endswith("-php-fpm")]
    (conf,) = configmap["data"].values()
    match = re.search(r'^access\.format = "(.*)"$', conf, re.M)
    assert match, "no access.format in the PHP-FPM pool configuration"
    return match.group(1).replace('\\"', '"')


def fill_fpm(fmt: str, request_id: str) -> str:
    def value(match: re.Match[str]) -> str:
        arg, letter = match.group(1), match.group(2)
        if letter == "t":
            return "2026-11-26T19:00:00+0000"
        if letter == "e":
            params = {"{HTTP_X_REQUEST_ID}": request_id, "{THREETIER_REQUEST_PATH}": "/api/users"}
            assert arg in params, f"access.format reads %{arg}e: add it to the sample FastCGI params"
            return params[arg]
        assert letter in FPM_SAMPLE, f"access.format uses %{letter}: add a sample value to FPM_SAMPLE"
        return FPM_SAMPLE[letter]

    return re.sub(r"%(\{[^}]*\})?([a-zA-Z])", value, fmt)


def assert_log_fields(record: dict[str, Any]) -> None:
    missing = REQUIRED_FIELDS - set(record)
    assert not missing, f"log record lacks {missing}: {record}"
    assert record["status"] == 200, "status must be a JSON number"
    assert DURATION_FIELDS & set(record), f"no duration field in {record}"


@pytest.mark.parametrize("chart", ["frontend", "backend"])
def test_nginx_access_log_is_json_with_the_pipeline_fields(render: Render, chart: str) -> None:
    line = fill_nginx(nginx_log_format(nginx_conf(render(chart))))
    record = json.loads(line)
    assert_log_fields(record)
    assert record["path"] == "/api/users" and record["request_id"] == NGINX_SAMPLE["threetier_request_id"]
    assert record["user_agent"] == NGINX_SAMPLE["http_user_agent"]
    assert isinstance(record["request_time"], float)


@pytest.mark.parametrize("chart", ["frontend", "backend"])
def test_nginx_error_log_and_access_log_go_to_the_container_streams(render: Render, chart: str) -> None:
    conf = nginx_conf(render(chart))
    assert "error_log /dev/stderr" in conf and "access_log /dev/stdout json;" in conf


def test_php_fpm_access_log_is_json_with_the_request_id(render: Render) -> None:
    record = json.loads(fill_fpm(fpm_access_format(render("backend")), "6f1c2a9e0b7d4c35a8e2f1d0c9b8a7e6"))
    assert_log_fields(record)
    assert record["request_id"] == "6f1c2a9e0b7d4c35a8e2f1d0c9b8a7e6" and record["duration_ms"] == 41.25
    assert record["path"] == "/api/users", "the requested path, not the front controller's"


def request_id_pattern(conf: str) -> re.Pattern[str]:
    match = re.search(
        r'map \$http_x_request_id \$threetier_request_id \{\s*default \$request_id;\s*"~([^"]+)" \$http_x_request_id;',
        conf,
    )
    assert match, "no map from X-Request-ID to $threetier_request_id with nginx's $request_id as the default"
    return re.compile(match.group(1))


@pytest.mark.parametrize("chart", ["frontend", "backend"])
@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("6f1c2a9e0b7d4c35a8e2f1d0c9b8a7e6", True),  # ingress-nginx's $req_id
        ("0b6f5f5e-3c1d-4a57-9a7e-2f4b8c1d9e00", True),  # a UUID
        ('abc"def', False),  # would break the unescaped PHP-FPM log line
        ("a b", False),
        ("x" * 129, False),
        ("", False),
    ],
)
def test_request_id_from_the_ingress_only_when_it_is_a_plain_token(
    render: Render, chart: str, header: str, kept: bool
) -> None:
    assert bool(request_id_pattern(nginx_conf(render(chart))).fullmatch(header)) is kept


@pytest.mark.parametrize("chart", ["frontend", "backend"])
@pytest.mark.parametrize(
    ("request_uri", "path"),
    [
        ("/api/users?page=2&token=secret", "/api/users"),
        ("/", "/"),
        ("/a/b%20c", "/a/b%20c"),
        ("/?only=query", "/"),
        ('/a"b', None),  # not a path character: logged as "" rather than breaking an unescaped log line
        ("/a\\b?c", None),
    ],
)
def test_logged_path_is_the_requested_one_without_query(
    render: Render, chart: str, request_uri: str, path: str
) -> None:
    conf = nginx_conf(render(chart))
    match = re.search(r'map \$request_uri \$threetier_path \{\s*default "";\s*"~([^"]+)" \$(\w+);', conf)
    assert match, "no map from $request_uri to $threetier_path"
    found = re.match(match.group(1).replace("(?<", "(?P<"), request_uri)
    assert (found.group(match.group(2)) if found else None) == path


def test_request_id_reaches_laravel(render: Render) -> None:
    conf = nginx_conf(render("backend"))
    front_controller = re.search(r"location = /index\.php \{(?P<body>[^}]*)\}", conf)
    assert front_controller, "no front-controller location in the backend's nginx.conf"
    assert "fastcgi_param HTTP_X_REQUEST_ID $threetier_request_id;" in front_controller.group("body")
    assert "fastcgi_param THREETIER_REQUEST_PATH $threetier_path;" in front_controller.group("body")
    assert "add_header X-Request-ID $threetier_request_id always;" in conf


def test_laravel_logs_json_to_stderr(render: Render) -> None:
    (env,) = [cm for cm in of_kind(render("backend"), "ConfigMap") if cm["metadata"]["name"].endswith("-env")]
    assert env["data"]["LOG_CHANNEL"] == "stderr"
    assert env["data"]["LOG_STDERR_FORMATTER"] == "Monolog\\Formatter\\JsonFormatter"


def expand_env(
    container_spec: dict[str, Any], configmaps: dict[str, dict[str, str]], pod: dict[str, str]
) -> dict[str, str]:
    """The environment the kubelet gives a container: envFrom first, then env in order, $(VAR) expanded."""
    env: dict[str, str] = {}
    for source in container_spec.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    for var in container_spec.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(
                r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), var["value"]
            )
        elif "fieldRef" in var.get("valueFrom", {}):
            env[var["name"]] = pod[var["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def test_tracing_is_off_by_default(render: Render) -> None:
    manifests = render("backend")
    (env,) = [cm for cm in of_kind(manifests, "ConfigMap") if cm["metadata"]["name"].endswith("-env")]
    assert env["data"]["OTEL_SDK_DISABLED"] == "true"
    php = container(pod_spec(manifests), "php-fpm")
    assert not [v for v in php.get("env", []) if v["name"].startswith("OTEL_")]


def test_tracing_resource_attributes_from_the_downward_api(render: Render, tmp_path: Path) -> None:
    values = tmp_path / "otel.yaml"
    values.write_text(
        yaml.safe_dump(
            {
                "otel": {
                    "enabled": True,
                    "endpoint": "http://jaeger-collector.monitoring.svc:4318",
                    "resourceAttributes": {"deployment.environment.name": "staging"},
                }
            }
        )
    )
    manifests = render("backend", values=values)
    configmaps = {cm["metadata"]["name"]: cm.get("data") or {} for cm in of_kind(manifests, "ConfigMap")}
    pod = {
        "metadata.name": "backend-5d8f7c9b4-qxz7w",
        "metadata.uid": "0b6f5f5e-3c1d-4a57-9a7e-2f4b8c1d9e00",
        "metadata.namespace": "threetier",
        "spec.nodeName": "node-a",
    }
    workloads = [pod_spec(manifests)]
    workloads += [job["spec"]["template"]["spec"] for job in of_kind(manifests, "Job")]
    assert len(workloads) >= 2, "expected the Deployment and the migration hook Job"
    for spec in workloads:
        laravel = [c for c in spec["containers"] if any(s.get("configMapRef") for s in c.get("envFrom", []))]
        assert laravel, "no container takes the Laravel environment"
        env = expand_env(laravel[0], configmaps, pod)
        assert env["OTEL_SDK_DISABLED"] == "false"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger-collector.monitoring.svc:4318"
        assert env["OTEL_SERVICE_NAME"] == "backend"
        attributes = dict(pair.split("=", 1) for pair in env["OTEL_RESOURCE_ATTRIBUTES"].split(","))
        assert attributes == {
            "service.namespace": "threetier",
            "service.version": "1.0.0",
            "deployment.environment.name": "staging",
            "k8s.namespace.name": "threetier",
            "k8s.pod.name": "backend-5d8f7c9b4-qxz7w",
            "k8s.pod.uid": "0b6f5f5e-3c1d-4a57-9a7e-2f4b8c1d9e00",
            "k8s.node.name": "node-a",
        }
