"""Every number and behaviour issue 3 asks of the charts, asserted on rendered manifests.

`render_with(chart, ...)` renders the chart's own defaults (plus the few values the backend requires), so the
numbers asserted here are the defaults a plain `helm install` gets; `rendered(helm, chart, env)` renders the
environment values under tests/charts/values/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from chart_render import CHARTS, CHARTS_DIR, ENVIRONMENTS, HELMS, ROOT, Render

RenderWith = Callable[..., Render]
Rendered = Callable[[str, str, str], Render]

SELECTOR_KEYS = ("app.kubernetes.io/name", "app.kubernetes.io/instance")
# The flow graph every inventory links to (docs/decisions.md, "One flow graph").
SHARED_GRAPH = ROOT / "inventories" / "_shared" / "network.yml"


def container(pod_spec: dict[str, Any], name: str, field: str = "containers") -> dict[str, Any]:
    matches = [c for c in pod_spec.get(field) or [] if c["name"] == name]
    assert len(matches) == 1, f"expected one {field} entry named {name}"
    return matches[0]


def pod_spec(render: Render, kind: str = "Deployment", name: str | None = None) -> dict[str, Any]:
    return render.one(kind, name)["spec"]["template"]["spec"]


def pod_annotations(render: Render) -> dict[str, str]:
    return render.one("Deployment")["spec"]["template"]["metadata"]["annotations"]


def config_text(render: Render, configmap: str, key: str) -> str:
    return render.one("ConfigMap", configmap)["data"][key]


# --- Deployment shape ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chart", CHARTS)
def test_rolling_update_surges_one_and_never_drops_below_desired(render_with: RenderWith, chart: str) -> None:
    strategy = render_with(chart).one("Deployment")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


@pytest.mark.parametrize("chart", CHARTS)
def test_replicas_are_left_to_the_hpa_when_autoscaling(render_with: RenderWith, chart: str) -> None:
    assert "replicas" not in render_with(chart).one("Deployment")["spec"]
    fixed = render_with(chart, "autoscaling.enabled=false", "replicaCount=3")
    assert fixed.one("Deployment")["spec"]["replicas"] == 3
    assert fixed.kinds("HorizontalPodAutoscaler") == []
    assert render_with(chart, "autoscaling.enabled=false").one("Deployment")["spec"]["replicas"] == 2


@pytest.mark.parametrize("chart", CHARTS)
def test_hpa_defaults(render_with: RenderWith, chart: str) -> None:
    hpa = render_with(chart).one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": chart}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    assert {m["type"] for m in spec["metrics"]} == {HPA_METRIC_SOURCE[chart][0]}
    targets = {_hpa_source(m)["name"]: _hpa_source(m)["target"] for m in spec["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 70},
        "memory": {"type": "Utilization", "averageUtilization": 80},
    }
    assert {_hpa_source(m).get("container") for m in spec["metrics"]} == {HPA_METRIC_SOURCE[chart][1]}
    up, down = spec["behavior"]["scaleUp"], spec["behavior"]["scaleDown"]
    # The seed's aggressive scale-up: 2 pods per 60 s, acted on at once (no stabilization window).
    assert up["policies"] == [{"type": "Pods", "value": 2, "periodSeconds": 60}]
    assert down["policies"] == [{"type": "Percent", "value": 25, "periodSeconds": 60}]
    assert up["stabilizationWindowSeconds"] == 0
    assert down["stabilizationWindowSeconds"] == 300


# The backend scales on its php-fpm container (ContainerResource), the frontend on the whole pod (Resource).
HPA_METRIC_SOURCE = {"backend": ("ContainerResource", "php-fpm"), "frontend": ("Resource", None)}


def _hpa_source(metric: dict[str, Any]) -> dict[str, Any]:
    return metric["containerResource"] if metric["type"] == "ContainerResource" else metric["resource"]


@pytest.mark.parametrize(("chart", "container"), [("backend", ""), ("backend", "nginx"), ("frontend", "nginx")])
def test_hpa_metric_source_follows_autoscaling_container(render_with: RenderWith, chart: str, container: str) -> None:
    render = render_with(chart, f"autoscaling.container={container}")
    metrics = render.one("HorizontalPodAutoscaler")["spec"]["metrics"]
    if container:
        assert [m["type"] for m in metrics] == ["ContainerResource", "ContainerResource"]
        assert {m["containerResource"]["container"] for m in metrics} == {container}
        # The named container exists in the pod the HPA scales.
        assert container in {c["name"] for c in pod_spec(render)["containers"]}
    else:
        assert [(m["type"], m["resource"]["name"]) for m in metrics] == [("Resource", "cpu"), ("Resource", "memory")]


def test_hpa_metric_can_be_switched_off(render_with: RenderWith) -> None:
    hpa = render_with("frontend", "autoscaling.targetMemoryUtilizationPercentage=0").one("HorizontalPodAutoscaler")
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    hpa = render_with("backend", "autoscaling.targetCPUUtilizationPercentage=0").one("HorizontalPodAutoscaler")
    assert [m["containerResource"]["name"] for m in hpa["spec"]["metrics"]] == ["memory"]


@pytest.mark.parametrize("chart", CHARTS)
def test_pdb_keeps_one_pod_and_selects_the_deployment(render_with: RenderWith, chart: str) -> None:
    render = render_with(chart)
    pdb = render.one("PodDisruptionBudget")["spec"]
    assert pdb["minAvailable"] == 1
    assert pdb["selector"] == render.one("Deployment")["spec"]["selector"]


@pytest.mark.parametrize("chart", CHARTS)
def test_grace_period_is_60_seconds(render_with: RenderWith, chart: str) -> None:
    assert pod_spec(render_with(chart))["terminationGracePeriodSeconds"] == 60


def test_frontend_resources(render_with: RenderWith) -> None:
    nginx = container(pod_spec(render_with("frontend")), "nginx")
    assert nginx["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "320Mi"},
    }


def test_backend_resources(render_with: RenderWith) -> None:
    spec = pod_spec(render_with("backend"))
    assert container(spec, "php-fpm")["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "128Mi"},
        "limits": {"cpu": "1000m", "memory": "512Mi", "ephemeral-storage": "512Mi"},
    }
    assert container(spec, "nginx")["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "512Mi"},
    }


MIB = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1000 / 1024**2, "M": 1000**2 / 1024**2, "G": 1000**3 / 1024**2}
# Headroom for each container's own log files, which the kubelet counts as that container's ephemeral storage.
LOG_HEADROOM_MIB = 64


def mebibytes(quantity: str) -> float:
    match = re.fullmatch(r"([0-9.]+)([KMG]i?)?", str(quantity))
    assert match, quantity
    return float(match.group(1)) * (MIB[match.group(2)] if match.group(2) else 1 / 1024**2)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_ephemeral_storage_covers_every_emptydir(rendered: Rendered, chart: str, environment: str) -> None:
    """Containers writing to an emptyDir request and limit ephemeral-storage, and the limits add up.

    The kubelet evicts a pod whose emptyDirs and logs exceed the sum of its containers' limits: with that sum
    above every sizeLimit plus each container's logs, an overflowing emptyDir (its own sizeLimit) is the only
    storage eviction a pod can meet, and its message names the volume.
    """
    for doc in rendered("helm", chart, environment).docs:
        spec = (doc.get("spec") or {}).get("template", {}).get("spec") or (
            doc["spec"] if doc["kind"] == "Pod" else None
        )
        if not spec:
            continue
        empty_dirs = {
            v["name"]: mebibytes(v["emptyDir"]["sizeLimit"]) for v in spec.get("volumes", []) if "emptyDir" in v
        }
        containers = spec["containers"]
        for c in spec.get("initContainers", []) + containers:
            writes = [m["name"] for m in c.get("volumeMounts", []) if m["name"] in empty_dirs and not m.get("readOnly")]
            if writes:
                for bound in ("requests", "limits"):
                    assert "ephemeral-storage" in c["resources"][bound], f"{doc['kind']} {c['name']} {bound}"
        limits = [mebibytes(c["resources"]["limits"].get("ephemeral-storage", "0")) for c in containers]
        needed = sum(empty_dirs.values()) + LOG_HEADROOM_MIB * len(containers)
        if empty_dirs:
            assert sum(limits) >= needed, f"{doc['kind']} {doc['metadata']['name']}: {sum(limits)} Mi < {needed} Mi"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_every_container_has_cpu_and_memory_requests_and_limits(
    rendered: Rendered, chart: str, environment: str
) -> None:
    render = rendered("helm", chart, environment)
    for doc in render.docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec") or (doc["spec"] if doc["kind"] == "Pod" else None)
        for c in (spec or {}).get("initContainers", []) + (spec or {}).get("containers", []):
            for bound in ("requests", "limits"):
                assert set(c["resources"][bound]) >= {"cpu", "memory"}, f"{doc['kind']} {c['name']} {bound}"


# --- Security identities and the pod template ------------------------------------------------------------


def test_uids(render_with: RenderWith) -> None:
    frontend = pod_spec(render_with("frontend"))
    assert container(frontend, "nginx")["securityContext"]["runAsUser"] == 101
    backend = pod_spec(render_with("backend"))
    assert backend["securityContext"]["runAsUser"] == 33
    assert container(backend, "php-fpm")["securityContext"]["runAsUser"] == 33
    assert container(backend, "prepare", "initContainers")["securityContext"]["runAsUser"] == 33
    assert container(backend, "nginx")["securityContext"]["runAsUser"] == 101


@pytest.mark.parametrize("chart", CHARTS)
def test_service_account_token_is_not_mounted(render_with: RenderWith, chart: str) -> None:
    render = render_with(chart)
    assert render.one("ServiceAccount")["automountServiceAccountToken"] is False
    for kind in ("Deployment", "Job"):
        for doc in render.kinds(kind):
            assert doc["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    for pod in render.kinds("Pod"):
        assert pod["spec"]["automountServiceAccountToken"] is False


def test_frontend_writable_paths_are_emptydirs(render_with: RenderWith) -> None:
    spec = pod_spec(render_with("frontend"))
    mounts = {m["mountPath"]: m["name"] for m in container(spec, "nginx")["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    for path in ("/tmp", "/var/cache/nginx"):
        assert "emptyDir" in volumes[mounts[path]], path


def test_backend_writable_paths_are_emptydirs(render_with: RenderWith) -> None:
    spec = pod_spec(render_with("backend"))
    volumes = {v["name"]: v for v in spec["volumes"]}
    php = {m["mountPath"]: m["name"] for m in container(spec, "php-fpm")["volumeMounts"]}
    nginx = {m["mountPath"]: m["name"] for m in container(spec, "nginx")["volumeMounts"]}
    for path in ("/tmp", "/var/www/html/storage", "/var/www/html/bootstrap/cache"):
        assert "emptyDir" in volumes[php[path]], path
    for path in ("/tmp", "/var/cache/nginx", "/var/www/html/public"):
        assert "emptyDir" in volumes[nginx[path]], path
    # The init container fills the public/ emptyDir nginx serves.
    init = container(spec, "prepare", "initContainers")
    assert {m["name"] for m in init["volumeMounts"]} == {"public", "storage", "bootstrap-cache"}
    script = init["command"][-1]
    assert 'copy "$app/public" /work/public' in script and "app=/var/www/html" in script
    # Entries are copied one by one: `cp -a src/. dst/` fails on the emptyDir root as a non-root user.
    assert "-mindepth 1 -maxdepth 1 -exec cp -a {}" in script and '/."' not in script
    # The image's own storage/ and bootstrap/cache (optimised caches) survive the emptyDirs.
    assert 'copy "$app/bootstrap/cache" /work/bootstrap-cache' in script
    job_init = container(pod_spec(render_with("backend"), "Job", "backend-migrate"), "prepare", "initContainers")
    assert {m["name"] for m in job_init["volumeMounts"]} == {"storage", "bootstrap-cache"}


@pytest.mark.parametrize("chart", CHARTS)
def test_pod_labels_carry_the_network_graph_selectors(render_with: RenderWith, chart: str) -> None:
    render = render_with(chart)
    labels = render.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert {k: labels[k] for k in SELECTOR_KEYS} == {
        "app.kubernetes.io/name": chart,
        "app.kubernetes.io/instance": chart,
    }
    selector = render.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert render.one("Service")["spec"]["selector"] == selector


def test_image_tag_defaults_to_app_version_and_digest_wins(render_with: RenderWith) -> None:
    assert container(pod_spec(render_with("frontend")), "nginx")["image"] == "ghcr.io/threetier/frontend:1.0.0"
    digest = "sha256:" + "a" * 64
    pinned = render_with("frontend", f"image.digest={digest}", "image.tag=9.9.9")
    assert container(pod_spec(pinned), "nginx")["image"] == f"ghcr.io/threetier/frontend@{digest}"
    tagged = render_with("backend", "image.tag=2.3.4")
    spec = pod_spec(tagged)
    assert container(spec, "php-fpm")["image"] == "ghcr.io/threetier/backend:2.3.4"
    assert container(spec, "prepare", "initContainers")["image"] == "ghcr.io/threetier/backend:2.3.4"


# --- Probes and graceful shutdown ------------------------------------------------------------------------


def _handler(probe: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in probe.items() if key in ("exec", "httpGet", "tcpSocket", "grpc")}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_liveness_and_readiness_are_different_checks(rendered: Rendered, chart: str, environment: str) -> None:
    """Per container: liveness asks "is it alive", readiness "can it serve now", more often and sooner."""
    for c in pod_spec(rendered("helm", chart, environment))["containers"]:
        live, ready = c["livenessProbe"], c["readinessProbe"]
        assert _handler(live) != _handler(ready), f"{c['name']}: liveness is the readiness check"
        assert ready["periodSeconds"] < live["periodSeconds"], c["name"]
        assert ready["initialDelaySeconds"] < live["initialDelaySeconds"], c["name"]
        assert live["successThreshold"] == 1


def test_frontend_probes(render_with: RenderWith) -> None:
    render = render_with("frontend")
    nginx = container(pod_spec(render), "nginx")
    live, ready = nginx["livenessProbe"], nginx["readinessProbe"]
    assert live["httpGet"] == {"path": "/healthz", "port": "http"}
    assert ready["httpGet"] == {"path": "/readyz", "port": "http"}
    assert (ready["periodSeconds"], live["periodSeconds"]) == (5, 20)
    conf = config_text(render, "frontend-nginx", "nginx.conf")
    healthz = conf[conf.index("location = /healthz") :].split("}", 1)[0]
    assert 'return 200 "ok\\n";' in healthz, "liveness reads no file"
    readyz = conf[conf.index("location = /readyz") :].split("}", 1)[0]
    assert "try_files /index.html =503;" in readyz, "readiness serves the SPA's entry document"
    # The exporter's probes: its own landing page for liveness, a scrape for readiness.
    exporter = container(pod_spec(render), "metrics-exporter")
    assert _handler(exporter["livenessProbe"]) == {"httpGet": {"path": "/", "port": "metrics"}}
    assert _handler(exporter["readinessProbe"]) == {"httpGet": {"path": "/metrics", "port": "metrics"}}


def test_backend_probes(render_with: RenderWith) -> None:
    render = render_with("backend")
    spec = pod_spec(render)
    nginx, php = container(spec, "nginx"), container(spec, "php-fpm")
    assert nginx["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert nginx["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    # PHP-FPM listens on 127.0.0.1 (the pool config below): a kubelet TCP or HTTP probe would dial the pod IP
    # and never succeed, so both probes run inside the container, on that loopback port.
    live = php["livenessProbe"]["exec"]["command"]
    assert live[:2] == ["php", "-r"] and "fsockopen('127.0.0.1', 9000" in live[2]
    ready = php["readinessProbe"]["exec"]["command"]
    # A FastCGI request for the ping path; the script gives up 500 ms before the probe's 2 s timeout.
    assert ready == ["php", "/etc/threetier/fpm-ping.php", "127.0.0.1", "9000", "/fpm-ping", "pong", "1500"]
    mount = next(m for m in php["volumeMounts"] if m["mountPath"] == "/etc/threetier/fpm-ping.php")
    assert (mount["subPath"], mount.get("readOnly")) == ("fpm-ping.php", True)
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == "backend-probes"
    script = config_text(render, "backend-probes", "fpm-ping.php")
    assert script == (CHARTS_DIR / "backend" / "files" / "fpm-ping.php").read_text(encoding="utf-8")
    for c in (nginx, php):
        assert c["readinessProbe"]["periodSeconds"] < c["livenessProbe"]["periodSeconds"]
        assert c["readinessProbe"]["initialDelaySeconds"] < c["livenessProbe"]["initialDelaySeconds"]
    # /readyz is PHP-FPM's ping through FastCGI: ready means nginx and PHP-FPM both serve (no database).
    conf = config_text(render, "backend-nginx", "nginx.conf")
    readyz = conf[conf.index("location = /readyz") :].split("}", 1)[0]
    assert "fastcgi_param SCRIPT_NAME /fpm-ping;" in readyz
    assert "fastcgi_pass php_fpm;" in readyz
    livez = conf[conf.index("location = /livez") :].split("}", 1)[0]
    assert "fastcgi_pass" not in livez, "nginx's liveness never depends on PHP-FPM"
    pool = config_text(render, "backend-php-fpm", "zz-threetier.conf")
    assert "ping.path = /fpm-ping" in pool and "ping.response = pong" in pool
    assert "pm.status_path = /fpm-status" in pool
    assert "listen = 127.0.0.1:9000" in pool
    assert "server 127.0.0.1:9000;" in conf
    # The script's deadline follows the probe's timeout.
    slower = render_with("backend", "phpfpm.readinessProbe.timeoutSeconds=5")
    assert container(pod_spec(slower), "php-fpm")["readinessProbe"]["exec"]["command"][-1] == "4500"


def _prestop_sleep(c: dict[str, Any]) -> int:
    command = c["lifecycle"]["preStop"]["exec"]["command"][-1]
    match = re.match(r"sleep (\d+)", command)
    assert match, command
    return int(match.group(1))


def test_frontend_prestop_drains_before_nginx_quits(render_with: RenderWith) -> None:
    nginx = container(pod_spec(render_with("frontend")), "nginx")
    command = nginx["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert "nginx -c /etc/nginx/threetier/nginx.conf -s quit" in command
    # The hook holds until nginx (PID 1) exited: returning earlier lets the kubelet's SIGTERM (nginx's fast
    # shutdown) cut the requests still in flight.
    assert command.endswith("while kill -0 1 2>/dev/null; do sleep 1; done")
    assert 0 < _prestop_sleep(nginx) < 60


def test_backend_prestop_order_fits_in_the_grace_period(render_with: RenderWith) -> None:
    render = render_with("backend")
    spec = pod_spec(render)
    nginx, php = container(spec, "nginx"), container(spec, "php-fpm")
    nginx_cmd = nginx["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert "-s quit; while kill -0 1" in nginx_cmd
    php_cmd = php["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert "kill -QUIT 1" in php_cmd and "while kill -0 1" in php_cmd
    # nginx stops accepting before PHP-FPM is asked to drain, and the drain ends before SIGKILL.
    assert _prestop_sleep(nginx) < _prestop_sleep(php)
    pool = config_text(render, "backend-php-fpm", "zz-threetier.conf")
    control = int(re.search(r"process_control_timeout = (\d+)s", pool).group(1))  # type: ignore[union-attr]
    assert _prestop_sleep(php) + control < spec["terminationGracePeriodSeconds"]


# --- Configuration: nginx, the SPA runtime config, Laravel ---------------------------------------------


def test_frontend_nginx_config(render_with: RenderWith) -> None:
    conf = config_text(render_with("frontend"), "frontend-nginx", "nginx.conf")
    assert "listen 8080;" in conf
    assert "try_files $uri $uri/ /index.html;" in conf
    assert "gzip on;" in conf
    assert 'add_header Cache-Control "public, max-age=31536000, immutable" always;' in conf
    assert "log_format json escape=json" in conf and "access_log /dev/stdout json;" in conf
    assert "error_log /dev/stderr" in conf
    assert container(pod_spec(render_with("frontend")), "nginx")["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    ]


def test_frontend_gzip_can_be_disabled(render_with: RenderWith) -> None:
    conf = config_text(render_with("frontend", "nginx.gzip.enabled=false"), "frontend-nginx", "nginx.conf")
    assert "gzip off;" in conf and "gzip on;" not in conf


@pytest.mark.parametrize("helm", HELMS)
def test_spa_runtime_config_comes_from_the_environment(rendered: Rendered, helm: str) -> None:
    render = rendered(helm, "frontend", "prod")
    script = config_text(render, "frontend-runtime-config", "config.js")
    assert script.strip() == 'window["__APP_CONFIG__"] = Object.freeze({"apiBaseUrl":"/api","environment":"prod"});'
    spec = pod_spec(render)
    volume = next(v for v in spec["volumes"] if v.get("configMap", {}).get("name") == "frontend-runtime-config")
    mounts = container(spec, "nginx")["volumeMounts"]
    assert any(m["name"] == volume["name"] and m["mountPath"] == "/usr/share/nginx/runtime-config" for m in mounts)
    assert "alias /usr/share/nginx/runtime-config/config.js;" in config_text(render, "frontend-nginx", "nginx.conf")


def test_laravel_env(rendered: Rendered) -> None:
    env = rendered("helm", "backend", "dev").one("ConfigMap", "backend-env")["data"]
    assert env["LOG_CHANNEL"] == "stderr"
    assert env["LOG_STDERR_FORMATTER"] == "Monolog\\Formatter\\JsonFormatter"
    assert env["DB_CONNECTION"] == "pgsql"
    assert (env["DB_HOST"], env["DB_PORT"], env["DB_DATABASE"], env["DB_SSLMODE"]) == (
        "acid-threetier-pooler.threetier-db.svc",
        "5432",
        "app",
        "require",
    )
    assert (env["APP_ENV"], env["CACHE_STORE"], env["SESSION_DRIVER"]) == ("dev", "file", "cookie")
    assert env["OTEL_SDK_DISABLED"] == "false"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring.svc:4318"
    assert "deployment.environment.name=dev" in env["OTEL_RESOURCE_ATTRIBUTES"].split(",")
    assert {"OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_PROPAGATORS"} <= set(env)
    # Secrets never land in the ConfigMap.
    assert not {"APP_KEY", "DB_USERNAME", "DB_PASSWORD"} & set(env)


def test_otel_is_off_by_default(render_with: RenderWith) -> None:
    env = render_with("backend").one("ConfigMap", "backend-env")["data"]
    assert env["OTEL_SDK_DISABLED"] == "true"


def test_structured_logs_of_nginx_and_php_fpm(render_with: RenderWith) -> None:
    render = render_with("backend")
    conf = config_text(render, "backend-nginx", "nginx.conf")
    assert "log_format json escape=json" in conf and "access_log /dev/stdout json;" in conf
    pool = config_text(render, "backend-php-fpm", "zz-threetier.conf")
    for line in (
        "catch_workers_output = yes",
        "decorate_workers_output = no",
        "clear_env = no",
        "error_log = /proc/self/fd/2",
    ):
        assert line in pool
    assert re.search(r'access\.format = "\{\\"time\\"', pool)


def _env_ref(c: dict[str, Any], name: str) -> dict[str, str]:
    entry = next(e for e in c["env"] if e["name"] == name)
    return entry["valueFrom"]["secretKeyRef"]


@pytest.mark.parametrize("helm", HELMS)
def test_zalando_secret_is_used_as_is(rendered: Rendered, helm: str) -> None:
    render = rendered(helm, "backend", "staging")
    php = container(pod_spec(render), "php-fpm")
    zalando = "app.acid-threetier.credentials.postgresql.acid.zalan.do"
    assert _env_ref(php, "DB_USERNAME") == {"name": zalando, "key": "username"}
    assert _env_ref(php, "DB_PASSWORD") == {"name": zalando, "key": "password"}
    assert _env_ref(php, "APP_KEY") == {"name": "threetier-app-key", "key": "app-key"}
    assert php["envFrom"] == [{"configMapRef": {"name": "backend-env"}}]
    # Both secrets exist outside the chart, so it makes none.
    assert render.kinds("Secret") == []


def test_chart_made_secrets(render_with: RenderWith) -> None:
    render = render_with("backend", "database.existingSecret=", "database.username=app", "database.password=s3cret")
    secrets = {s["metadata"]["name"]: s["data"] for s in render.kinds("Secret")}
    assert set(secrets) == {"backend-app", "backend-db"}
    assert secrets["backend-db"] == {"username": "YXBw", "password": "czNjcmV0"}
    php = container(pod_spec(render), "php-fpm")
    assert _env_ref(php, "DB_PASSWORD") == {"name": "backend-db", "key": "password"}


# --- Checksums roll the pods ----------------------------------------------------------------------------


def test_frontend_checksum_follows_the_config(render_with: RenderWith) -> None:
    base = pod_annotations(render_with("frontend"))["checksum/config"]
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert pod_annotations(render_with("frontend", "runtimeConfig.values.apiBaseUrl=/v2"))["checksum/config"] != base
    assert pod_annotations(render_with("frontend", "nginx.clientMaxBodySize=2m"))["checksum/config"] != base
    assert pod_annotations(render_with("frontend", "resources.limits.cpu=1"))["checksum/config"] == base


def test_backend_checksums_follow_config_and_secret(render_with: RenderWith) -> None:
    base = pod_annotations(render_with("backend"))
    config_change = pod_annotations(render_with("backend", "app.logLevel=debug"))
    assert config_change["checksum/config"] != base["checksum/config"]
    assert config_change["checksum/secret"] == base["checksum/secret"]
    fpm_change = pod_annotations(render_with("backend", "phpfpm.maxChildren=20"))
    assert fpm_change["checksum/config"] != base["checksum/config"]
    secret_change = pod_annotations(render_with("backend", "app.key=base64:b3RoZXIta2V5"))
    assert secret_change["checksum/secret"] != base["checksum/secret"]
    assert secret_change["checksum/config"] == base["checksum/config"]


# --- Hooks ----------------------------------------------------------------------------------------------


def test_migration_and_seed_hooks(render_with: RenderWith) -> None:
    render = render_with("backend", "seed.enabled=true")
    migrate, seed = render.one("Job", "backend-migrate"), render.one("Job", "backend-seed")
    for job in (migrate, seed):
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert int(migrate["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        seed["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    assert (migrate["spec"]["backoffLimit"], migrate["spec"]["activeDeadlineSeconds"]) == (2, 600)
    assert (seed["spec"]["backoffLimit"], seed["spec"]["activeDeadlineSeconds"]) == (1, 300)
    assert container(migrate["spec"]["template"]["spec"], "migrate")["command"] == [
        "php",
        "artisan",
        "migrate",
        "--force",
        "--no-interaction",
    ]
    assert container(seed["spec"]["template"]["spec"], "seed")["command"] == [
        "php",
        "artisan",
        "db:seed",
        "--force",
        "--no-interaction",
    ]


def test_hooks_have_the_app_security_context_and_env(render_with: RenderWith) -> None:
    render = render_with("backend")
    app = container(pod_spec(render), "php-fpm")
    job_spec = pod_spec(render, "Job", "backend-migrate")
    job = container(job_spec, "migrate")
    assert job["securityContext"] == app["securityContext"]
    assert job_spec["securityContext"] == pod_spec(render)["securityContext"]
    assert job["env"] == app["env"] and job["envFrom"] == app["envFrom"]


def test_hook_switches(render_with: RenderWith, rendered: Rendered) -> None:
    assert render_with("backend", "migrations.enabled=false").kinds("Job") == []
    assert [j["metadata"]["name"] for j in render_with("backend").kinds("Job")] == ["backend-migrate"]
    assert {j["metadata"]["name"] for j in rendered("helm", "backend", "dev").kinds("Job")} == {
        "backend-migrate",
        "backend-seed",
    }
    assert {j["metadata"]["name"] for j in rendered("helm", "backend", "prod").kinds("Job")} == {"backend-migrate"}


def test_readiness_does_not_wait_for_the_hooks(render_with: RenderWith) -> None:
    """With --wait, post-install hooks run after the release is Ready: nothing in the app may wait for them."""
    render = render_with("backend")
    deployment = render.one("Deployment")
    assert "helm.sh/hook" not in (deployment["metadata"].get("annotations") or {})
    service_selector = render.one("Service")["spec"]["selector"]
    job_labels = render.one("Job", "backend-migrate")["spec"]["template"]["metadata"]["labels"]
    # The hook pods share the network graph's labels (database egress applies) but are never endpoints.
    assert {k: job_labels[k] for k in SELECTOR_KEYS} == {k: service_selector[k] for k in SELECTOR_KEYS}
    assert not service_selector.items() <= job_labels.items()
    init = container(pod_spec(render), "prepare", "initContainers")["command"][-1]
    assert "artisan" not in init and "DB_" not in init


# --- Service, ServiceMonitor, Ingress, HTTPRoute, NetworkPolicy ---------------------------------------


def test_services(render_with: RenderWith) -> None:
    frontend = render_with("frontend").one("Service")["spec"]
    assert frontend["type"] == "ClusterIP"
    assert frontend["ports"][0] == {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    backend = render_with("backend")
    ports = {p["name"]: p for p in backend.one("Service")["spec"]["ports"]}
    assert (ports["http"]["port"], ports["http"]["targetPort"]) == (80, "http")
    assert (ports["metrics"]["port"], ports["metrics"]["targetPort"]) == (9090, "metrics")
    nginx_ports = {p["name"]: p["containerPort"] for p in container(pod_spec(backend), "nginx")["ports"]}
    assert nginx_ports == {"http": 8080, "metrics": 9090}


def test_servicemonitor_only_with_the_api(render_with: RenderWith) -> None:
    render = render_with("backend")
    monitor = render.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= render.one("Service")["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["threetier"]}
    assert render_with("backend", api_versions=()).kinds("ServiceMonitor") == []
    assert render_with("backend", "serviceMonitor.enabled=false").kinds("ServiceMonitor") == []
    relabelled = render_with("backend", "serviceMonitor.labels.release=prom", "serviceMonitor.interval=15s").one(
        "ServiceMonitor"
    )
    assert relabelled["metadata"]["labels"]["release"] == "prom"
    assert relabelled["spec"]["endpoints"][0]["interval"] == "15s"


@pytest.mark.parametrize(("chart", "path"), [("frontend", "/"), ("backend", "/api")])
@pytest.mark.parametrize("helm", HELMS)
def test_ingress_routes(rendered: Rendered, helm: str, chart: str, path: str) -> None:
    dev = rendered(helm, chart, "dev").one("Ingress")["spec"]
    assert dev["ingressClassName"] == "nginx"
    assert dev["tls"] == [{"secretName": "threetier-dev-tls", "hosts": ["dev.threetier.example.com"]}]
    rule = dev["rules"][0]
    assert rule["host"] == "dev.threetier.example.com"
    assert rule["http"]["paths"] == [
        {"path": path, "pathType": "Prefix", "backend": {"service": {"name": chart, "port": {"name": "http"}}}},
    ]
    prod = rendered(helm, chart, "prod").one("Ingress")
    assert prod["spec"]["ingressClassName"] == "alb"
    assert prod["metadata"]["annotations"]["alb.ingress.kubernetes.io/group.name"] == "threetier"


def test_ingress_is_off_by_default(render_with: RenderWith) -> None:
    for chart in CHARTS:
        assert render_with(chart).kinds("Ingress") == []


@pytest.mark.parametrize(("chart", "prefix"), [("frontend", "/"), ("backend", "/api")])
def test_httproute_instead_of_ingress(render_with: RenderWith, chart: str, prefix: str) -> None:
    render = render_with(
        chart,
        "httpRoute.enabled=true",
        "httpRoute.parentRefs[0].name=public",
        "httpRoute.parentRefs[0].namespace=gateway-system",
        "httpRoute.hostnames[0]=app.example.com",
    )
    assert render.kinds("Ingress") == []
    route = render.one("HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway-system"}]
    assert route["spec"]["hostnames"] == ["app.example.com"]
    assert route["spec"]["rules"] == [
        {"matches": [{"path": {"type": "PathPrefix", "value": prefix}}], "backendRefs": [{"name": chart, "port": 80}]},
    ]


@pytest.mark.parametrize("chart", CHARTS)
def test_network_policy_is_off_by_default_and_driven_by_values(render_with: RenderWith, chart: str) -> None:
    assert render_with(chart).kinds("NetworkPolicy") == []
    render = render_with(
        chart,
        "networkPolicy.enabled=true",
        "networkPolicy.ingress[0].ports[0].port=8080",
        "networkPolicy.egress[0].ports[0].port=53",
        "networkPolicy.egress[0].ports[0].protocol=UDP",
    )
    policy = render.one("NetworkPolicy", chart)["spec"]
    # The flow graph's selector of the app (name and instance): the Deployment's pods, and the hook Jobs.
    assert policy["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": chart, "app.kubernetes.io/instance": chart}
    }
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"ports": [{"port": 8080}]}]
    assert policy["egress"] == [{"ports": [{"port": 53, "protocol": "UDP"}]}]
    # The test pod's policy is there too, denying both directions until it is given rules.
    test = render.one("NetworkPolicy", f"{chart}-test")["spec"]
    assert (test["policyTypes"], test["ingress"], test["egress"]) == (["Ingress", "Egress"], [], [])
    # Without the test pod there is no test policy.
    assert [
        p["metadata"]["name"]
        for p in render_with(chart, "networkPolicy.enabled=true", "tests.enabled=false").kinds("NetworkPolicy")
    ] == [chart]


@pytest.mark.parametrize("chart", CHARTS)
def test_network_policies_take_the_filters_names_labels_and_rules(render_with: RenderWith, chart: str) -> None:
    """What the collection's roles pass: each policy's name, its threetier.k8s/* labels and its rules."""
    render = render_with(
        chart,
        "networkPolicy.enabled=true",
        f"networkPolicy.name=threetier-{chart}",
        "networkPolicy.labels.threetier\\.k8s/policy-set=threetier",
        f"networkPolicy.labels.threetier\\.k8s/component={chart}",
        # The filter's own value: it must not replace Helm's.
        "networkPolicy.labels.app\\.kubernetes\\.io/managed-by=threetier.k8s",
        "networkPolicy.ingress[0].ports[0].port=http",
        f"networkPolicy.test.name=threetier-{chart}-test",
        f"networkPolicy.test.labels.threetier\\.k8s/component={chart}-test",
        "networkPolicy.test.egress[0].ports[0].port=53",
        "networkPolicy.test.egress[0].ports[0].protocol=UDP",
    )
    assert sorted(p["metadata"]["name"] for p in render.kinds("NetworkPolicy")) == [
        f"threetier-{chart}",
        f"threetier-{chart}-test",
    ]
    app = render.one("NetworkPolicy", f"threetier-{chart}")
    deployment_labels = render.one("Deployment")["metadata"]["labels"]
    assert app["metadata"]["labels"] == deployment_labels | {
        "threetier.k8s/policy-set": "threetier",
        "threetier.k8s/component": chart,
    }
    assert app["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert (app["spec"]["ingress"], app["spec"]["egress"]) == ([{"ports": [{"port": "http"}]}], [])

    test_pod = render.one("Pod")
    test = render.one("NetworkPolicy", f"threetier-{chart}-test")
    # The test policy carries the test pod's labels plus the passed ones, the test's component over the app's.
    assert test["metadata"]["labels"] == test_pod["metadata"]["labels"] | {
        "threetier.k8s/policy-set": "threetier",
        "threetier.k8s/component": f"{chart}-test",
    }
    assert (test["spec"]["ingress"], test["spec"]["egress"]) == ([], [{"ports": [{"port": 53, "protocol": "UDP"}]}])
    # Its selector is the test pod's identity (name and instance, the graph's selector of <chart>-test), taken
    # from the rendered test pod, without the chart and version labels that change with every chart release.
    selector = test["spec"]["podSelector"]["matchLabels"]
    assert selector == {
        key: test_pod["metadata"]["labels"][key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance")
    }
    # It selects the test pod, and no pod of the app.
    app_pods = [render.one("Deployment")["spec"]["template"]["metadata"]["labels"]]
    app_pods += [job["spec"]["template"]["metadata"]["labels"] for job in render.kinds("Job")]
    assert _selects(selector, test_pod["metadata"]["labels"])
    assert not [pod for pod in app_pods if _selects(selector, pod)]
    assert all(_selects(app["spec"]["podSelector"]["matchLabels"], pod) for pod in app_pods)


@pytest.mark.parametrize("chart", CHARTS)
def test_common_labels_add_and_never_replace(render_with: RenderWith, chart: str) -> None:
    """The collection passes one commonLabels to every chart, with its own managed-by; Helm's stays (a repeated
    key would be a duplicate in the manifest, which YAML readers resolve as they please: PyYAML's last wins)."""
    plain = render_with(chart).one("Service")["metadata"]["labels"]
    render = render_with(
        chart,
        "commonLabels.team=web",
        "commonLabels.app\\.kubernetes\\.io/managed-by=threetier.k8s",
        "commonLabels.app\\.kubernetes\\.io/name=other",
    )
    assert render.one("Service")["metadata"]["labels"] == plain | {"team": "web"}
    assert render.one("Pod")["metadata"]["labels"]["app.kubernetes.io/name"] == f"{chart}-test"


def test_network_policy_names_default_to_the_fullname(render_with: RenderWith) -> None:
    render = render_with("frontend", "networkPolicy.enabled=true", "fullnameOverride=web")
    assert sorted(p["metadata"]["name"] for p in render.kinds("NetworkPolicy")) == ["web", "web-test"]
    assert render.one("Pod")["metadata"]["name"] == "web-test"


# --- Scheduling presets, priority, pull secrets, helm test ----------------------------------------------


def test_scheduling_presets(rendered: Rendered, render_with: RenderWith) -> None:
    prod = pod_spec(rendered("helm", "backend", "prod"))
    assert prod["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule"
    assert prod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert "preferredDuringSchedulingIgnoredDuringExecution" in prod["affinity"]["podAntiAffinity"]
    local = pod_spec(rendered("helm", "backend", "local"))
    assert "affinity" not in local and "topologySpreadConstraints" not in local
    hard = pod_spec(render_with("frontend", "affinityPreset.podAntiAffinity=hard"))
    term = hard["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    custom = pod_spec(
        render_with(
            "frontend",
            "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=pool",
        )
    )
    assert set(custom["affinity"]) == {"nodeAffinity"}


@pytest.mark.parametrize("chart", CHARTS)
def test_priority_class_and_pull_secrets(render_with: RenderWith, chart: str) -> None:
    render = render_with(chart, "priorityClassName=threetier-high", "imagePullSecrets[0].name=regcred")
    spec = pod_spec(render)
    assert spec["priorityClassName"] == "threetier-high"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert "priorityClassName" not in pod_spec(render_with(chart))


@pytest.mark.parametrize("chart", CHARTS)
def test_helm_test_hook_pod(render_with: RenderWith, chart: str) -> None:
    pods = render_with(chart).kinds("Pod")
    assert len(pods) == 1
    assert pods[0]["metadata"]["annotations"]["helm.sh/hook"] == "test"
    labels = pods[0]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "test"
    assert (labels["app.kubernetes.io/name"], labels["app.kubernetes.io/instance"]) == (f"{chart}-test", chart)
    assert render_with(chart, "tests.enabled=false").kinds("Pod") == []


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize("chart", CHARTS)
def test_helm_test_pod_is_a_client_not_the_app(render_with: RenderWith, chart: str) -> None:
    """No selector of the app takes the test pod (never an endpoint, never opened to its app by the app's own
    NetworkPolicy), and the flow graph sees it as its own component <chart>-test, the app's pods as <chart>."""
    render = render_with(chart, "networkPolicy.enabled=true")
    test_pod = render.kinds("Pod")[0]["metadata"]["labels"]
    selectors = {
        "Deployment": render.one("Deployment")["spec"]["selector"]["matchLabels"],
        "Service": render.one("Service")["spec"]["selector"],
        "PodDisruptionBudget": render.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "NetworkPolicy": render.one("NetworkPolicy", chart)["spec"]["podSelector"]["matchLabels"],
    }
    assert not [kind for kind, selector in selectors.items() if _selects(selector, test_pod)]
    components = yaml.safe_load(SHARED_GRAPH.read_text(encoding="utf-8"))["threetier_network"]["components"]
    app, test = components[chart]["pod_labels"], components[f"{chart}-test"]["pod_labels"]
    app_pods = [render.one("Deployment")["spec"]["template"]["metadata"]["labels"]]
    # The backend's hook Jobs are the backend to the graph (its DNS and database flows).
    app_pods += [job["spec"]["template"]["metadata"]["labels"] for job in render.kinds("Job")]
    assert all(_selects(app, pod) and not _selects(test, pod) for pod in app_pods), app_pods
    assert _selects(test, test_pod) and not _selects(app, test_pod), test_pod
