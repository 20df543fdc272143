"""The local cluster of tests/harness/local_cluster/cluster.sh does what the Molecule tier relies on.

Admission, controllers, scheduling and the metrics API are real; only the kubelets are KWOK's
(tests/harness/local_cluster/config/).
The lifecycle test at the end runs its own throwaway cluster, so the shared one stays up for the other tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pytest

if TYPE_CHECKING:
    from conftest import ClusterScript, Kubectl

RESTRICTED_CONTAINER = {
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 101,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
}


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 90, interval: float = 1) -> Any:
    """Poll until probe returns something truthy; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}")


def container(name: str, cpu: str = "100m", memory: str = "64Mi") -> dict[str, Any]:
    return {
        "name": name,
        "image": f"registry.example/{name}:1",
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": "1", "memory": "256Mi"},
        },
        **RESTRICTED_CONTAINER,
    }


def deployment(name: str, replicas: int = 2, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels, "annotations": annotations or {}},
                "spec": {
                    "containers": [container("web")],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchLabels": labels},
                        }
                    ],
                },
            },
        },
    }


def job(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [container("migrate")],
                },
            },
        },
    }


def pods(kubectl: Kubectl, namespace: str, selector: str) -> list[dict[str, Any]]:
    return kubectl.json("get", "pods", "-n", namespace, "-l", selector)["items"]


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


# --- the shared cluster -----------------------------------------------------------------------------------


def test_control_plane_is_the_pinned_release(kubectl: Kubectl, versions: dict[str, str]) -> None:
    server = kubectl.json("version")["serverVersion"]
    assert server["gitVersion"] == versions["KUBERNETES_VERSION"]
    host = urlparse(kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout)
    assert host.scheme == "https"
    assert host.hostname == "127.0.0.1"


def listening_addresses(pid: int) -> set[str]:
    """IPv4/IPv6 addresses the process listens on (from /proc, no extra tools)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    addresses = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A = LISTEN
                addresses.add(decode_address(local.split(":")[0]))
    return addresses


def decode_address(hex_ip: str) -> str:
    raw = bytes.fromhex(hex_ip)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def test_every_component_listens_on_loopback_only(cluster: Path, cluster_script: type[ClusterScript]) -> None:
    status = cluster_script().status()
    assert status["state"] == "running", status["reasons"]
    seen = {}
    for proc in status["processes"]:
        seen[proc["component"]] = listening_addresses(proc["pid"])
    assert all(seen.values()), f"a component listens nowhere: {seen}"
    exposed = {name: addrs - {"127.0.0.1"} for name, addrs in seen.items() if addrs - {"127.0.0.1"}}
    assert not exposed, f"listening beyond 127.0.0.1: {exposed}"


def test_nodes_are_ready_in_three_zones(kubectl: Kubectl) -> None:
    nodes = kubectl.json("get", "nodes")["items"]
    assert len(nodes) == 3
    assert all(is_ready(node) for node in nodes)
    zones = {node["metadata"]["labels"]["topology.kubernetes.io/zone"] for node in nodes}
    assert len(zones) == 3
    assert sum(node["metadata"]["labels"].get("ingress-ready") == "true" for node in nodes) == 1
    for node in nodes:
        assert node["status"]["allocatable"]["cpu"] == "16"
        assert node["status"]["allocatable"]["memory"] == "64Gi"


def test_pods_become_ready_spread_over_zones_and_serve_endpoints(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(
        deployment("web", replicas=3),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
        namespace=namespace,
    )
    kubectl(
        "rollout",
        "status",
        "deployment/web",
        "-n",
        namespace,
        "--timeout=90s",
        timeout=120,
    )
    running = pods(kubectl, namespace, "app=web")
    assert len(running) == 3 and all(is_ready(pod) for pod in running)
    assert all(pod["status"].get("podIP") for pod in running)
    assert len({pod["spec"]["nodeName"] for pod in running}) == 3, "topology spread should use every zone"

    def ready_endpoints() -> list[str]:
        slices = kubectl.json(
            "get",
            "endpointslices",
            "-n",
            namespace,
            "-l",
            "kubernetes.io/service-name=web",
        )
        return [
            addr
            for item in slices["items"]
            for endpoint in item.get("endpoints") or []
            if endpoint["conditions"].get("ready")
            for addr in endpoint["addresses"]
        ]

    endpoints = wait_for("3 ready endpoints", lambda: len(ready_endpoints()) == 3 and ready_endpoints())
    assert sorted(endpoints) == sorted(pod["status"]["podIP"] for pod in running)


def test_rolling_update_replaces_pods_and_deleted_pods_go_away(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(deployment("api", replicas=2), namespace=namespace)
    kubectl(
        "rollout",
        "status",
        "deployment/api",
        "-n",
        namespace,
        "--timeout=90s",
        timeout=120,
    )
    before = {pod["metadata"]["name"] for pod in pods(kubectl, namespace, "app=api")}
    kubectl("set", "image", "deployment/api", "web=registry.example/web:2", "-n", namespace)
    kubectl(
        "rollout",
        "status",
        "deployment/api",
        "-n",
        namespace,
        "--timeout=90s",
        timeout=120,
    )

    def only_new_pods() -> list[dict[str, Any]]:
        current = pods(kubectl, namespace, "app=api")
        names = {pod["metadata"]["name"] for pod in current}
        return current if len(current) == 2 and not names & before else []

    current = wait_for("the old pods to be deleted", only_new_pods)
    assert all(pod["spec"]["containers"][0]["image"].endswith(":2") and is_ready(pod) for pod in current)
    history = kubectl.json("get", "replicasets", "-n", namespace, "-l", "app=api")["items"]
    assert sorted(rs["status"]["replicas"] for rs in history) == [0, 2]


def test_job_completes(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(job("migrate"), namespace=namespace)
    kubectl(
        "wait",
        "--for=condition=Complete",
        "job/migrate",
        "-n",
        namespace,
        "--timeout=60s",
        timeout=90,
    )
    status = kubectl.json("get", "job", "migrate", "-n", namespace)["status"]
    assert status["succeeded"] == 1
    assert not status.get("failed")


def test_failure_injection_fails_jobs_and_keeps_pods_unready(kubectl: Kubectl, namespace: str) -> None:
    fail = {"threetier.k8s/kwok-fail": "true"}
    kubectl.apply(
        job("broken", annotations=fail),
        deployment("crashing", replicas=1, annotations=fail),
        namespace=namespace,
    )
    kubectl(
        "wait",
        "--for=condition=Failed",
        "job/broken",
        "-n",
        namespace,
        "--timeout=60s",
        timeout=90,
    )

    def crashing() -> list[dict[str, Any]]:
        found = pods(kubectl, namespace, "app=crashing")
        return [p for p in found if p["status"].get("containerStatuses")]

    pod = wait_for("the crashing pod's status", crashing)[0]
    assert pod["status"]["phase"] == "Running" and not is_ready(pod)
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"


def test_pod_security_admission_rejects_privileged_pods(kubectl: Kubectl, namespace: str) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    proc = kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(privileged), check=False)
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in proc.stderr
    assert "privileged" in proc.stderr
    compliant = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "compliant"},
        "spec": {"containers": [container("app")]},
    }
    kubectl.apply(compliant, namespace=namespace)
    kubectl(
        "wait",
        "--for=condition=Ready",
        "pod/compliant",
        "-n",
        namespace,
        "--timeout=60s",
        timeout=90,
    )


def test_claims_bind_to_provisioned_volumes_and_are_reclaimed(kubectl: Kubectl, namespace: str) -> None:
    classes = kubectl.json("get", "storageclass")["items"]
    default = [
        c["metadata"]["name"]
        for c in classes
        if c["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"
    ]
    assert default == ["standard"]
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 2,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [container("postgres")]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "pgdata"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }
    kubectl.apply(statefulset, namespace=namespace)
    kubectl(
        "rollout",
        "status",
        "statefulset/db",
        "-n",
        namespace,
        "--timeout=90s",
        timeout=120,
    )
    claims = kubectl.json("get", "pvc", "-n", namespace)["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == [
        "pgdata-db-0",
        "pgdata-db-1",
    ]
    assert all(c["status"]["phase"] == "Bound" and c["spec"]["storageClassName"] == "standard" for c in claims)
    volume = claims[0]["spec"]["volumeName"]
    assert kubectl.json("get", "pv", volume)["spec"]["capacity"]["storage"] == "1Gi"

    kubectl("delete", "statefulset", "db", "-n", namespace, "--wait=true", timeout=90)
    kubectl(
        "delete",
        "pvc",
        "--all",
        "-n",
        namespace,
        "--wait=true",
        "--timeout=60s",
        timeout=90,
    )
    wait_for(
        f"volume {volume} to be reclaimed",
        lambda: kubectl("get", "pv", volume, check=False).returncode != 0,
    )


def test_ingress_class_nginx_accepts_ingresses(kubectl: Kubectl, namespace: str) -> None:
    assert kubectl.json("get", "ingressclass", "nginx")["spec"]["controller"] == "k8s.io/ingress-nginx"
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web"},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "app.local",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
        },
    }
    kubectl.apply(ingress, namespace=namespace)
    assert kubectl.json("get", "ingress", "web", "-n", namespace)["spec"]["ingressClassName"] == "nginx"


HOOKED_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
    "templates/deployment.yaml": """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 2
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: web
          image: registry.example/web:1
""",
    "templates/migrate.yaml": """
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ .Release.Name }}-migrate
  annotations:
    helm.sh/hook: post-install,post-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations: {{ .Values.jobAnnotations | toJson }}
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: registry.example/migrate:1
""",
    "templates/test.yaml": """
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    helm.sh/hook: test
spec:
  restartPolicy: Never
  containers:
    - name: probe
      image: registry.example/curl:1
""",
    "values.yaml": "jobAnnotations: {}\n",
}


def helm(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["helm", f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=300, check=False
    )
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
    return proc


def test_helm_wait_hooks_and_tests_complete_and_a_failing_hook_rolls_back(
    cluster: Path, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    for name, text in HOOKED_CHART.items():
        (tmp_path / "hooked" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "hooked" / name).write_text(text)
    chart = str(tmp_path / "hooked")
    common = ["upgrade", "--install", "app", chart, "-n", namespace, "--wait", "--wait-for-jobs", "--timeout=120s"]
    helm(cluster, *common)
    assert kubectl.json("get", "job", "app-migrate", "-n", namespace)["status"]["succeeded"] == 1
    assert kubectl.json("get", "deployment", "app", "-n", namespace)["status"]["readyReplicas"] == 2
    # A test hook pod runs to completion like any restartPolicy: Never pod.
    assert "Phase:          Succeeded" in helm(cluster, "test", "app", "-n", namespace, "--timeout=60s").stdout

    # A hook Job that fails: the upgrade fails and --atomic brings revision 1 back as revision 3.
    failed = helm(cluster, *common, "--atomic", "--set", "jobAnnotations.threetier\\.k8s/kwok-fail=true", check=False)
    assert failed.returncode != 0
    history = json.loads(helm(cluster, "history", "app", "-n", namespace, "-o", "json").stdout)
    assert [(entry["revision"], entry["status"]) for entry in history] == [
        (1, "superseded"),
        (2, "failed"),
        (3, "deployed"),
    ]


def test_helm_mirror_serves_the_upstream_charts(helm_mirror: str, versions: dict[str, str]) -> None:
    for chart, key in (
        ("postgres-operator", "POSTGRES_OPERATOR_CHART_VERSION"),
        ("kube-prometheus-stack", "KUBE_PROMETHEUS_STACK_CHART_VERSION"),
    ):
        proc = subprocess.run(
            ["helm", "show", "chart", chart, "--repo", helm_mirror, "--version", versions[key]],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert f"version: {versions[key]}" in proc.stdout
    assert urlparse(helm_mirror).hostname == "127.0.0.1"


@pytest.mark.slow
def test_upstream_charts_install_with_wait_and_a_postgresql_is_accepted(
    cluster: Path, kubectl: Kubectl, namespace: str, helm_mirror: str, versions: dict[str, str]
) -> None:
    """The operator path on this cluster: both upstream charts from the mirror reach `deployed` with --wait, and
    the Zalando CRDs accept a `postgresql` (nothing reconciles it: the operator does not really run)."""
    suffix = namespace[-5:]
    releases = {
        # The chart names one ClusterRole after the Spilo pods' ServiceAccount, "postgres-pod" by default: a
        # name of its own keeps this release clear of a deployment on the same cluster.
        f"pgo-{suffix}": (
            "postgres-operator",
            versions["POSTGRES_OPERATOR_CHART_VERSION"],
            ["--set", f"podServiceAccount.name=postgres-pod-{suffix}"],
        ),
        f"kps-{suffix}": (
            "kube-prometheus-stack",
            versions["KUBE_PROMETHEUS_STACK_CHART_VERSION"],
            # Webhooks would call an operator process that does not run (inventories/local does the same).
            [
                "--set",
                "prometheusOperator.admissionWebhooks.enabled=false",
                "--set",
                "prometheusOperator.tls.enabled=false",
            ],
        ),
    }
    try:
        for release, (chart, version, extra) in releases.items():
            helm(
                cluster,
                *("upgrade", "--install", release, chart, "--repo", helm_mirror, "--version", version),
                *("-n", namespace, "--wait", "--wait-for-jobs", "--timeout=300s", *extra),
            )
            status = json.loads(helm(cluster, "status", release, "-n", namespace, "-o", "json").stdout)
            assert status["info"]["status"] == "deployed"
        postgresql = {
            "apiVersion": "acid.zalan.do/v1",
            "kind": "postgresql",
            "metadata": {"name": "acid-it"},
            "spec": {
                "teamId": "acid",
                "numberOfInstances": 2,
                "postgresql": {"version": "17"},
                "volume": {"size": "1Gi"},
            },
        }
        kubectl.apply(postgresql, namespace=namespace)
        stored = kubectl.json("get", "postgresql", "acid-it", "-n", namespace)
        assert stored["spec"]["postgresql"]["version"] == "17"
        assert stored["spec"]["numberOfInstances"] == 2
    finally:
        for release in releases:
            helm(cluster, "uninstall", release, "-n", namespace, "--wait", "--timeout=120s", check=False)


def pod_cpu_millicores(kubectl: Kubectl, namespace: str) -> dict[str, int]:
    raw = kubectl(
        "get",
        "--raw",
        f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
        check=False,
    )
    if raw.returncode != 0:
        return {}
    result = {}
    for item in json.loads(raw.stdout)["items"]:
        usage = item["containers"][0]["usage"]["cpu"]
        result[item["metadata"]["name"]] = quantity_millicores(usage)
    return result


def quantity_millicores(value: str) -> int:
    units = {"n": 1e-6, "u": 1e-3, "m": 1}
    if value[-1] in units:
        return round(float(value[:-1]) * units[value[-1]])
    return round(float(value) * 1000)


@pytest.mark.slow
def test_metrics_api_serves_usage_and_drives_an_hpa(kubectl: Kubectl, namespace: str) -> None:
    """KWOK reports half the CPU request (50 m of 100 m) unless a pod annotation says otherwise; metrics-server
    serves that as metrics.k8s.io, and the HPA controller scales on it."""
    kubectl.apply(deployment("busy", replicas=2), namespace=namespace)
    kubectl(
        "rollout",
        "status",
        "deployment/busy",
        "-n",
        namespace,
        "--timeout=90s",
        timeout=120,
    )
    usage = wait_for(
        "pod metrics",
        lambda: (m := pod_cpu_millicores(kubectl, namespace)) and len(m) == 2 and m,
        120,
    )
    assert all(45 <= cpu <= 55 for cpu in usage.values()), usage
    top = kubectl("top", "pods", "-n", namespace, "--no-headers").stdout
    assert len(top.splitlines()) == 2
    # A node reports usage once pods run on it (an idle fake node has no CPU counter to rate).
    node_metrics = json.loads(kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").stdout)["items"]
    busy_nodes = {pod["spec"]["nodeName"] for pod in pods(kubectl, namespace, "app=busy")}
    assert busy_nodes <= {item["metadata"]["name"] for item in node_metrics}

    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "busy"},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "busy",
            },
            "minReplicas": 2,
            "maxReplicas": 4,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }
    kubectl.apply(hpa, namespace=namespace)

    def utilization() -> int | None:
        metrics = kubectl.json("get", "hpa", "busy", "-n", namespace)["status"].get("currentMetrics") or []
        return next((m["resource"]["current"].get("averageUtilization") for m in metrics), None)

    # 50 % give or take the jitter of rating a counter between two scrapes.
    assert 45 <= wait_for("the HPA to read CPU utilisation", utilization, 120) <= 55
    # Load rises: 150 m of the 100 m requested = 150 % > 70 %, so the HPA must scale up to its maximum.
    kubectl("annotate", "pods", "-n", namespace, "-l", "app=busy", "threetier.k8s/usage-cpu=150m")

    def scaled() -> bool:
        return kubectl.json("get", "deployment", "busy", "-n", namespace)["spec"]["replicas"] == 4

    wait_for("the HPA to scale the deployment to 4", scaled, 180, interval=3)


# --- lifecycle of a cluster of its own --------------------------------------------------------------------


def own_cluster_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["THREETIER_CLUSTER_DIR"] = str(tmp_path / "cluster")
    env["THREETIER_CLUSTER_NAME"] = "threetier-lifecycle"
    return env


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def component_pids(status: dict[str, Any]) -> dict[str, int]:
    return {proc["component"]: proc["pid"] for proc in status["processes"]}


def squat(port: int) -> socket.socket:
    """Listen on a port as another program would (retrying while the kernel still holds the old sockets)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def bound() -> bool:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True

    wait_for(f"port {port} to be free", bound, 90)
    sock.listen()
    return sock


@pytest.mark.slow
def test_lifecycle_reuse_stale_replacement_and_down(
    tmp_path: Path, cluster_script: type[ClusterScript], kubectl_for: type[Kubectl]
) -> None:
    own = cluster_script(own_cluster_env(tmp_path))
    home_kubeconfig = Path.home() / ".kube" / "config"
    home_before = home_kubeconfig.read_bytes() if home_kubeconfig.exists() else None
    assert own.status()["state"] == "absent"
    try:
        first = own.up()
        assert first["state"] == "running"
        kubeconfig = Path(first["kubeconfig"])
        assert kubeconfig == tmp_path / "cluster" / "kubeconfig" and kubeconfig.exists()
        pids = component_pids(first)

        # A healthy cluster is reused as it is.
        assert component_pids(own.up()) == pids

        # Half dead: the API server crashed, the other components still run. They are stopped, not leaked.
        os.kill(pids["kube-apiserver"], signal.SIGKILL)
        wait_for("kube-apiserver to exit", lambda: not alive(pids["kube-apiserver"]), 30)
        stale = own.status()
        assert stale["state"] == "stale"
        assert "kube-apiserver is not running" in stale["reasons"]
        second = own.up()
        assert second["state"] == "running"
        assert not any(alive(pid) for pid in pids.values()), "the stale cluster's processes must be gone"

        # Aborted run: every process was killed and another program took the API server's port.
        pids = component_pids(second)
        port = urlparse(second["server"]).port
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        wait_for("the components to exit", lambda: not any(alive(pid) for pid in pids.values()), 30)
        squatter = squat(port)
        try:
            assert own.status()["state"] == "stale"
            third = own.up()
        finally:
            squatter.close()
        assert third["state"] == "running"
        assert urlparse(third["server"]).port != port
        kubectl_for(kubeconfig)("wait", "--for=condition=Ready", "node", "--all", "--timeout=30s")
        pids = component_pids(third)
    finally:
        own.down()

    assert own.status()["state"] == "absent"
    assert not any(alive(pid) for pid in pids.values())
    assert not kubeconfig.exists()
    assert not (tmp_path / "cluster" / "kwok" / "clusters" / "threetier-lifecycle").exists()
    assert (home_kubeconfig.read_bytes() if home_kubeconfig.exists() else None) == home_before


def test_down_never_signals_a_process_it_did_not_start(tmp_path: Path, cluster_script: type[ClusterScript]) -> None:
    """PID files left by an aborted run may name a PID the system has since given to someone else."""
    own = cluster_script(own_cluster_env(tmp_path))
    pid_dir = tmp_path / "cluster" / "kwok" / "clusters" / "threetier-lifecycle" / "pids"
    pid_dir.mkdir(parents=True)
    bystander = subprocess.Popen(["sleep", "300"], cwd=tmp_path)
    try:
        for component in ("etcd", "kube-apiserver", "kwok-controller"):
            (pid_dir / f"{component}.pid").write_text(str(bystander.pid))
        status = own.status()
        assert status["state"] == "stale"
        assert "kube-apiserver is not running" in status["reasons"]
        own.down()
        time.sleep(0.5)
        assert bystander.poll() is None, "down signalled a process that is not part of the cluster"
        assert own.status()["state"] == "absent"
    finally:
        bystander.kill()
        bystander.wait()
