"""The e2e tier's proofs against the real node: each subcommand drives real traffic or real API calls, prints
what it measured (one ``PROOF <name>: ...`` summary line, then a JSON document) and exits non-zero when the
promise does not hold.

    proofs.py app        1. the ingress serves the SPA on / and Laravel on /api, which reads and writes PostgreSQL
    proofs.py netpol     2. declared flows connect, undeclared ones are blocked (probed from real pods), and
                            `helm test` passes under them; the database's flows are db_proofs.py dbnetpol
    proofs.py rollout    3. image-tag upgrade under load: 0 failed; Recreate as the control: > 0 failed
    proofs.py hpa        4. CPU load scales the backend up from 2 and back down
    proofs.py pdb        5. a drain that would break minAvailable is refused
    proofs.py graceful   6. slow requests in flight on a deleted pod complete
    proofs.py unready    7. a backend pod whose PHP-FPM workers stop goes unready and leaves the Service, is not
                            restarted, and is ready again once they continue

Configuration comes from the environment the Molecule playbooks set: KUBECONFIG, E2E_INGRESS_URL,
E2E_HOST, E2E_NAMESPACE, E2E_TOOLBOX_IMAGE, E2E_NODE_IP, E2E_PROJECT (repo root), E2E_VARS (the
scenario's vars.yml), and PYTHONPATH (the repo root: commands run through tests/harness/proc.py).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from tests.harness import proc as harness

NS = os.environ.get("E2E_NAMESPACE", "threetier")
INGRESS = urllib.parse.urlsplit(os.environ.get("E2E_INGRESS_URL", "http://127.0.0.1:30080"))
HOST = os.environ.get("E2E_HOST", "threetier.localtest.me")
TOOLBOX = os.environ.get("E2E_TOOLBOX_IMAGE", "localhost/threetier-e2e/toolbox:trixie")
NODE_IP = os.environ.get("E2E_NODE_IP", "10.213.0.1")
PROBE_NS = "e2e-probe"


class ProofFailed(Exception):
    """The promise did not hold; the message says how."""


# --- plumbing ---------------------------------------------------------------------------------------------


def kubectl(
    *args: str, check: bool = True, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """kubectl on $KUBECONFIG (the scenario sets it); a failure is the proof's failure."""
    return harness.kubectl(
        *args, request_timeout=None, check=check, stdin=stdin, timeout=timeout, error=ProofFailed
    )  # fmt: skip


def kube_json(*args: str) -> dict:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def request(path: str, method: str = "GET", body: dict | None = None, timeout: float = 10) -> tuple[int, bytes, float]:
    """One request through the ingress on a new connection (so every request exercises the whole path)."""
    start = time.monotonic()
    conn = http.client.HTTPConnection(INGRESS.hostname or "127.0.0.1", INGRESS.port or 80, timeout=timeout)
    try:
        headers = {"Host": HOST, "Accept": "application/json", "Connection": "close"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), time.monotonic() - start
    finally:
        conn.close()


def record(line: str) -> None:
    """Print a proof's one-line result, and append it to $E2E_PROOF_LOG (make e2e's summary reads it)."""
    print(line)
    if path := os.environ.get("E2E_PROOF_LOG"):
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def emit(name: str, summary: str, data: dict) -> None:
    record(f"PROOF {name}: {summary}")
    print(json.dumps(data, indent=2, sort_keys=True, default=str))
    sys.stdout.flush()


def deployment_pods(component: str) -> list[dict]:
    pods = kube_json(
        "-n", NS, "get", "pods", "-l", f"app.kubernetes.io/name={component},app.kubernetes.io/instance={component}"
    )
    return [p for p in pods["items"] if p["metadata"].get("ownerReferences", [{}])[0].get("kind") == "ReplicaSet"]


def ready_count(component: str) -> int:
    dep = kube_json("-n", NS, "get", "deployment", component)
    return int(dep.get("status", {}).get("readyReplicas") or 0)


def wait_for(what: str, probe: Callable[[], bool], timeout: float, interval: float = 2) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if probe():
                return time.monotonic() - start
        except (ProofFailed, subprocess.TimeoutExpired, OSError, ValueError):
            pass
        time.sleep(interval)
    raise ProofFailed(f"timed out after {timeout:.0f} s waiting for {what}")


# --- load generator ---------------------------------------------------------------------------------------


@dataclass
class Load:
    """Closed-loop load through the ingress: `workers` threads, each sending one request after another."""

    paths: list[str]
    workers: int = 4
    timeout: float = 10
    results: list[tuple[float, str, int, float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _worker(self, index: int) -> None:
        n = index
        while not self._stop.is_set():
            path = self.paths[n % len(self.paths)]
            n += 1
            t = time.monotonic()
            try:
                status, body, latency = request(path, timeout=self.timeout)
                version = ""
                if status == 200 and path.startswith("/api/health"):
                    version = str(json.loads(body).get("version", ""))
                record = (t, path, status, latency, version)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                record = (t, path, 0, time.monotonic() - t, type(exc).__name__)
            with self._lock:
                self.results.append(record)

    @contextmanager
    def running(self) -> Iterator[Load]:
        threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(self.workers)]
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(timeout=self.timeout + 5)

    def report(self) -> dict:
        failed = [r for r in self.results if r[2] != 200]
        latencies = sorted(r[3] for r in self.results) or [0.0]
        span = (self.results[-1][0] - self.results[0][0]) if len(self.results) > 1 else 0.0
        return {
            "sent": len(self.results),
            "failed": len(failed),
            "by_status": dict(Counter(str(r[2]) for r in self.results)),
            "failure_examples": [{"path": r[1], "status": r[2], "error": r[4]} for r in failed[:5]],
            "versions_seen": dict(Counter(r[4] for r in self.results if r[4] and r[2] == 200)),
            "duration_s": round(span, 1),
            "rps": round(len(self.results) / span, 1) if span else 0.0,
            "latency_p50_ms": round(statistics.median(latencies) * 1000, 1),
            "latency_p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1),
            "latency_max_ms": round(latencies[-1] * 1000, 1),
        }


# --- 1. the application through the ingress ---------------------------------------------------------------


def proof_app() -> None:
    status, body, latency = request("/")
    if status != 200 or b'id="root"' not in body:
        raise ProofFailed(f"GET / through the ingress returned {status}: {body[:200]!r}")
    page_ms = latency * 1000
    status, config_js, _latency = request("/config.js")
    if status != 200 or b"apiBaseUrl" not in config_js:
        raise ProofFailed(f"GET /config.js returned {status}: {config_js[:200]!r}")
    status, body, _latency = request("/api/health")
    health = json.loads(body) if status == 200 else {}
    if health.get("status") != "ok":
        raise ProofFailed(f"GET /api/health returned {status}: {body[:300]!r}")
    marker = f"e2e-{int(time.time() * 1000)}"
    status, body, _latency = request("/api/messages", method="POST", body={"author": "e2e", "body": marker})
    if status not in (200, 201):
        raise ProofFailed(f"POST /api/messages returned {status}: {body[:300]!r}")
    status, body, _latency = request("/api/messages")
    listing = json.loads(body) if status == 200 else {}
    messages = listing.get("data", listing) if isinstance(listing, dict) else listing
    if marker not in json.dumps(messages):
        raise ProofFailed(f"the message written through POST /api/messages is not in GET /api/messages: {body[:300]!r}")
    status, body, _latency = request("/api/db")
    db = json.loads(body) if status == 200 else {}
    if status != 200:
        raise ProofFailed(f"GET /api/db returned {status}: {body[:300]!r}")
    migration = migration_evidence()
    emit(
        "app",
        f"/ 200 in {page_ms:.0f} ms, /api/health {health.get('version')}, POST+GET /api/messages round trip ok, "
        f"/api/db {db}, migrate hook: {migration['summary']}",
        {"health": health, "db": db, "message": marker, "migration": migration},
    )


def migration_evidence() -> dict:
    """The migrate hook Job ran: its events (the hook Job itself is deleted after success) and the Laravel
    migrations table it filled."""
    events = kube_json("-n", NS, "get", "events", "--field-selector", "involvedObject.kind=Job")["items"]
    jobs = sorted({e["involvedObject"]["name"] for e in events if "migrate" in e["involvedObject"]["name"]})
    completed = [e for e in events if "migrate" in e["involvedObject"]["name"] and e.get("reason") == "Completed"]
    if not completed:
        reasons = sorted({(e["involvedObject"]["name"], e.get("reason")) for e in events})
        raise ProofFailed(f"no Completed event of a migrate Job in {NS}; Job events: {reasons}")
    return {"jobs": jobs, "completed_events": len(completed), "summary": f"{', '.join(jobs)} Completed"}


# --- 2. NetworkPolicies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    name: str
    source: str  # key of SOURCES
    host: str  # a DNS name, or a target resolved by kubectl when the probe runs (see target_address)
    port: int
    allowed: bool


# Source pods carry exactly the labels the flow graph selects on (not the Services' selectors, which add
# app.kubernetes.io/component), so they never receive Service traffic themselves. The test sources carry the
# labels of the charts' `helm test` pods (charts/common, common.testLabels): a name of their own, component test.
SOURCES = {
    "ingress": ("ingress", {"app.kubernetes.io/name": "traefik", "threetier.e2e/probe": "ingress"}),
    "backend": (
        NS,
        {
            "app.kubernetes.io/name": "backend",
            "app.kubernetes.io/instance": "backend",
            "threetier.e2e/probe": "backend",
        },
    ),
    "frontend": (
        NS,
        {
            "app.kubernetes.io/name": "frontend",
            "app.kubernetes.io/instance": "frontend",
            "threetier.e2e/probe": "frontend",
        },
    ),
    "backend-test": (
        NS,
        {
            "app.kubernetes.io/name": "backend-test",
            "app.kubernetes.io/instance": "backend",
            "app.kubernetes.io/component": "test",
            "threetier.e2e/probe": "backend-test",
        },
    ),
    "frontend-test": (
        NS,
        {
            "app.kubernetes.io/name": "frontend-test",
            "app.kubernetes.io/instance": "frontend",
            "app.kubernetes.io/component": "test",
            "threetier.e2e/probe": "frontend-test",
        },
    ),
    "other-namespace": (PROBE_NS, {"threetier.e2e/probe": "other"}),
    "prometheus": ("monitoring", {"app.kubernetes.io/name": "prometheus", "threetier.e2e/probe": "prometheus"}),
}


def probes() -> list[Probe]:
    backend = f"backend.{NS}.svc.cluster.local"
    frontend = f"frontend.{NS}.svc.cluster.local"
    return [
        # Declared in threetier_network: each must connect.
        Probe("ingress -> frontend:80", "ingress", frontend, 80, True),
        Probe("ingress -> backend:80", "ingress", backend, 80, True),
        Probe("prometheus -> backend:9090 (metrics)", "prometheus", "pod:backend", 9090, True),
        # The helm test pods' own components, on the paths their tests take (by name, through DNS).
        Probe("backend-test -> backend:80", "backend-test", backend, 80, True),
        Probe("backend-test -> backend:9090 (metrics)", "backend-test", backend, 9090, True),
        Probe("frontend-test -> frontend:80", "frontend-test", frontend, 80, True),
        # Not declared: each must be blocked ...
        Probe("backend -> frontend:80", "backend", frontend, 80, False),
        Probe("other namespace -> backend:80", "other-namespace", backend, 80, False),
        Probe("backend -> node:10250 (arbitrary egress)", "backend", NODE_IP, 10250, False),
        # The apps are no longer open to themselves for the tests' sake (no backend -> backend flow) ...
        Probe("backend -> backend:80 (its own Service)", "backend", backend, 80, False),
        # ... and the frontend sends nothing: not to the backend's Service or pods, not to its own Service, not
        # even to DNS. It has no DNS, so these go by address (from kubectl): a name would fail to resolve and
        # show nothing about the policy.
        Probe("frontend -> backend Service IP:80", "frontend", "svc:backend", 80, False),
        Probe("frontend -> backend pod:8080", "frontend", "pod:backend", 8080, False),
        Probe("frontend -> frontend Service IP:80 (its own Service)", "frontend", "svc:frontend", 80, False),
        Probe("frontend -> kube-dns Service IP:53/TCP", "frontend", "dns", 53, False),
        # A test pod reaches its own app only.
        Probe("frontend-test -> backend:80", "frontend-test", backend, 80, False),
        # ... while the same targets answer where the graph allows it (the controls: each blocked target is
        # shown reachable, so "blocked" means the policy, not a dead target; frontend:80 is covered by
        # ingress -> frontend above).
        Probe("control: other namespace -> node:10250", "other-namespace", NODE_IP, 10250, True),
        Probe("control: ingress -> backend:80 (same target as the blocked ones)", "ingress", backend, 80, True),
        Probe("control: ingress -> backend Service IP:80", "ingress", "svc:backend", 80, True),
        Probe("control: ingress -> backend pod:8080", "ingress", "pod:backend", 8080, True),
        Probe("control: ingress -> frontend Service IP:80", "ingress", "svc:frontend", 80, True),
        Probe("control: backend -> kube-dns Service IP:53/TCP", "backend", "dns", 53, True),
    ]


def probe_pod_manifest(name: str, namespace: str, labels: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": TOOLBOX,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "200m", "memory": "64Mi"},
                    },
                }
            ],
        },
    }


def ensure_namespace(name: str) -> None:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
            }
        ),
    )


def start_probe_pods() -> dict[str, tuple[str, str]]:
    pods = {}
    for key, (namespace, labels) in SOURCES.items():
        if namespace in (PROBE_NS, "monitoring"):
            ensure_namespace(namespace)
        name = f"e2e-probe-{key}"
        kubectl("-n", namespace, "delete", "pod", name, "--ignore-not-found", "--wait=true")
        kubectl("apply", "-f", "-", stdin=json.dumps(probe_pod_manifest(name, namespace, labels)))
        pods[key] = (namespace, name)
    for namespace, name in pods.values():
        kubectl("-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s", timeout=150)
    return pods


def target_address(host: str) -> str:
    """A probe's host as nc gets it: `pod:<app>` a Deployment pod's IP, `svc:<app>` the app Service's cluster IP,
    `dns` the cluster DNS Service's cluster IP (read with kubectl, so the source pod needs no DNS); else as is."""
    if host.startswith("pod:"):
        pods = [p for p in deployment_pods(host[4:]) if p["status"].get("podIP")]
        if not pods:
            raise ProofFailed(f"no {host[4:]} pod has an IP")
        return pods[0]["status"]["podIP"]
    if host.startswith("svc:"):
        return kube_json("-n", NS, "get", "service", host[4:])["spec"]["clusterIP"]
    if host == "dns":
        services = kube_json("-n", "kube-system", "get", "services", "-l", "k8s-app=kube-dns")["items"]
        if not services:
            raise ProofFailed("no Service labelled k8s-app=kube-dns in kube-system")
        return services[0]["spec"]["clusterIP"]
    return host


def helm_tests() -> list[dict]:
    """`helm test` of both releases, as the smoke role runs it on this node: the charts' test pods under the
    policies just probed (their success also says the test pods' flows are enough)."""
    helm = shutil.which("helm") or str(Path(os.environ.get("THREETIER_BIN", "")) / "helm")
    results = []
    for release in ("frontend", "backend"):
        start = time.monotonic()
        proc = harness.run(
            [helm, "test", release, "--namespace", NS, "--timeout", "3m"], timeout=240, check=False, error=ProofFailed
        )
        phase = re.findall(r"^\s*Phase:\s*(\S+)", proc.stdout, flags=re.MULTILINE)
        results.append(
            {
                "release": release,
                "exit": proc.returncode,
                "phases": phase,
                "seconds": round(time.monotonic() - start, 1),
                "output_tail": (proc.stdout + proc.stderr).strip().splitlines()[-6:],
            }
        )
        verdict = "passed" if proc.returncode == 0 else "FAILED"
        print(f"  helm test {release:54} {verdict} ({time.monotonic() - start:.1f} s, phases {phase})")
    return results


def connect(namespace: str, pod: str, host: str, port: int) -> tuple[bool, float, str]:
    start = time.monotonic()
    proc = kubectl("-n", namespace, "exec", pod, "--", "nc", "-z", "-w", "3", host, str(port), check=False, timeout=30)
    return proc.returncode == 0, time.monotonic() - start, proc.stderr.strip()[-120:]


def proof_netpol() -> None:
    policies = kube_json("get", "networkpolicies", "-A")["items"]
    plan = probes()
    pods = start_probe_pods()
    results, wrong = [], []
    try:
        for probe in plan:
            host = target_address(probe.host)
            namespace, pod = pods[probe.source]
            ok, seconds, err = connect(namespace, pod, host, probe.port)
            verdict = "connected" if ok else "blocked"
            results.append(
                {
                    "flow": probe.name,
                    "expected": "connect" if probe.allowed else "blocked",
                    "result": verdict,
                    "seconds": round(seconds, 2),
                    "detail": err,
                }
            )
            expected = "connect" if probe.allowed else "blocked"
            print(f"  {probe.name:62} expected {expected:8} got {verdict} ({seconds:.1f} s)")
            if ok != probe.allowed:
                wrong.append(probe.name)
    finally:
        for namespace, name in pods.values():
            kubectl("-n", namespace, "delete", "pod", name, "--ignore-not-found", "--wait=false", check=False)
        kubectl("delete", "namespace", PROBE_NS, "monitoring", "--ignore-not-found", "--wait=false", check=False)
    tests = helm_tests()
    failed_tests = [t["release"] for t in tests if t["exit"] != 0]
    allowed = sum(1 for p in plan if p.allowed)
    summary = (
        f"{len(policies)} NetworkPolicies in the cluster; {len(results)} probes from real pods: "
        f"{allowed} expected to connect, {len(results) - allowed} expected blocked, {len(wrong)} wrong; "
        f"helm test {len(tests) - len(failed_tests)} of {len(tests)} releases passed"
    )
    emit("netpol", summary, {"probes": results, "wrong": wrong, "helm_test": tests})
    if wrong:
        raise ProofFailed("flows that did not behave as declared: " + "; ".join(wrong))
    if failed_tests:
        raise ProofFailed(f"helm test failed under the policies for {', '.join(failed_tests)}: {tests}")


# --- 3. zero-downtime rollout -----------------------------------------------------------------------------


def site_playbook(*extra: str) -> float:
    project = Path(os.environ["E2E_PROJECT"])
    cmd = [
        "ansible-playbook",
        "-i",
        str(project / "inventories" / "local"),
        "-e",
        f"@{os.environ['E2E_VARS']}",
        *extra,
        str(project / "playbooks" / "site.yml"),
    ]
    start = time.monotonic()
    harness.run(cmd, timeout=1200, error=ProofFailed)
    return time.monotonic() - start


def images_of(component: str) -> set[str]:
    dep = kube_json("-n", NS, "get", "deployment", component)
    return {c["image"] for c in dep["spec"]["template"]["spec"]["containers"]}


def proof_rollout(new_tag: str, old_tag: str) -> None:
    paths = ["/api/health", "/", "/api/health", "/config.js"]
    load = Load(paths=paths, workers=4)
    with load.running():
        time.sleep(5)
        seconds = site_playbook("-e", f"backend_image_tag={new_tag}", "-e", f"frontend_image_tag={new_tag}")
        time.sleep(5)
    rolling = load.report()
    rolling["site_yml_seconds"] = round(seconds, 1)
    rolling["images_after"] = sorted(images_of("backend") | images_of("frontend"))
    if not any(new_tag in image for image in rolling["images_after"]):
        raise ProofFailed(f"the upgrade to {new_tag} did not change the images: {rolling['images_after']}")
    print(
        f"  RollingUpdate (maxSurge 1, maxUnavailable 0) {old_tag} -> {new_tag}: sent {rolling['sent']}, "
        f"failed {rolling['failed']}, versions {rolling['versions_seen']}"
    )

    # The control: the same change with the Deployments' strategy switched to Recreate (patched directly; the
    # chart always renders RollingUpdate), which stops every old pod before a new one starts.
    control = Load(paths=paths, workers=4)
    original = {c: kube_json("-n", NS, "get", "deployment", c)["spec"]["strategy"] for c in ("backend", "frontend")}
    try:
        with control.running():
            time.sleep(5)
            for component in ("backend", "frontend"):
                dep = kube_json("-n", NS, "get", "deployment", component)
                containers = dep["spec"]["template"]["spec"]["containers"]
                patch = {
                    "spec": {
                        "strategy": {"type": "Recreate", "rollingUpdate": None},
                        "template": {
                            "spec": {
                                "containers": [
                                    {"name": c["name"], "image": c["image"].replace(f":{new_tag}", f":{old_tag}")}
                                    for c in containers
                                ]
                            }
                        },
                    }
                }
                kubectl("-n", NS, "patch", "deployment", component, "--type=strategic", "-p", json.dumps(patch))
            for component in ("backend", "frontend"):
                kubectl("-n", NS, "rollout", "status", f"deployment/{component}", "--timeout=300s", timeout=330)
            time.sleep(5)
    finally:
        for component, strategy in original.items():
            kubectl(
                "-n",
                NS,
                "patch",
                "deployment",
                component,
                "--type=merge",
                "-p",
                json.dumps({"spec": {"strategy": strategy}}),
                check=False,
            )
    recreate = control.report()
    print(f"  Recreate control {new_tag} -> {old_tag}: sent {recreate['sent']}, failed {recreate['failed']}")
    # Back to what Helm last applied (tag new_tag, RollingUpdate), so the release and the cluster agree again.
    restore = site_playbook("-e", f"backend_image_tag={new_tag}", "-e", f"frontend_image_tag={new_tag}")
    emit(
        "rollout",
        f"RollingUpdate: sent {rolling['sent']}, failed {rolling['failed']} ({rolling['rps']} req/s over "
        f"{rolling['duration_s']} s, p99 {rolling['latency_p99_ms']} ms); Recreate control: sent {recreate['sent']}, "
        f"failed {recreate['failed']}",
        {"rolling_update": rolling, "recreate_control": recreate, "restore_seconds": round(restore, 1)},
    )
    if rolling["failed"]:
        raise ProofFailed(f"{rolling['failed']} of {rolling['sent']} requests failed during the rolling update")
    if not recreate["failed"]:
        raise ProofFailed("the Recreate control lost no request: the load does not detect downtime")
    if len(rolling["versions_seen"]) < 2:
        raise ProofFailed(f"the load saw only {rolling['versions_seen']}: it did not span the rollout")


# --- 4. HPA -----------------------------------------------------------------------------------------------


def hpa_sample() -> dict:
    hpa = kube_json("-n", NS, "get", "hpa", "backend")
    cpu = None
    for metric in hpa.get("status", {}).get("currentMetrics") or []:
        # The backend scales on its php-fpm container (ContainerResource), the frontend on the pod (Resource).
        source = metric.get("containerResource") or metric.get("resource") or {}
        if source.get("name") == "cpu":
            cpu = source["current"].get("averageUtilization")
    return {
        "current": hpa["status"].get("currentReplicas"),
        "desired": hpa["status"].get("desiredReplicas"),
        "cpu_pct": cpu,
    }


def proof_hpa(up_timeout: float, down_timeout: float) -> None:
    start = time.monotonic()
    timeline: list[dict] = []

    def sample(phase: str) -> dict:
        s = hpa_sample() | {"t": round(time.monotonic() - start), "phase": phase}
        if not timeline or (s["current"], s["desired"], s["cpu_pct"]) != (
            timeline[-1]["current"],
            timeline[-1]["desired"],
            timeline[-1]["cpu_pct"],
        ):
            timeline.append(s)
            print(f"  t={s['t']:4d}s {phase:9} replicas {s['current']} (desired {s['desired']}), cpu {s['cpu_pct']}%")
        return s

    # An earlier proof's load may have scaled the backend up: let it settle at its minimum first.
    settle_deadline = time.monotonic() + down_timeout
    while sample("settle")["current"] != 2:
        if time.monotonic() > settle_deadline:
            raise ProofFailed(f"the backend HPA did not settle at 2 replicas in {down_timeout:.0f} s: {timeline}")
        time.sleep(10)
    settled = list(timeline)
    timeline.clear()
    start = time.monotonic()
    sample("idle")
    load = Load(paths=["/api/burn?ms=150"], workers=6, timeout=30)
    peak = 2
    with load.running():
        deadline = time.monotonic() + up_timeout
        while time.monotonic() < deadline:
            s = sample("load")
            peak = max(peak, s["current"] or 0)
            if peak >= 3 and ready_count("backend") >= peak:
                break
            time.sleep(5)
    up_seconds = time.monotonic() - start
    load_report = load.report()
    if peak < 3:
        raise ProofFailed(f"the backend did not scale up under load in {up_timeout:.0f} s: {timeline}")
    down_start = time.monotonic()
    deadline = down_start + down_timeout
    while time.monotonic() < deadline:
        s = sample("cooldown")
        if s["current"] == 2:
            break
        time.sleep(10)
    else:
        raise ProofFailed(f"the backend did not scale back to 2 in {down_timeout:.0f} s: {timeline}")
    emit(
        "hpa",
        f"2 -> {peak} replicas after {up_seconds:.0f} s of /api/burn load ({load_report['sent']} requests, "
        f"{load_report['failed']} failed), back to 2 after {time.monotonic() - down_start:.0f} s without load",
        {"timeline": timeline, "settle_before": settled, "peak": peak, "load": load_report},
    )


# --- 5. PDB -----------------------------------------------------------------------------------------------


def proof_pdb(node: str) -> None:
    pdb = kube_json("-n", NS, "get", "pdb", "backend")
    min_available = pdb["spec"].get("minAvailable")
    before = ready_count("backend")
    lowest = [before]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with suppress(ProofFailed):
                lowest.append(ready_count("backend"))
            time.sleep(1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.monotonic()
    try:
        # Only the backend's pods: the add-ons on this single node have no PDB and would simply be evicted.
        drain = kubectl(
            "drain",
            node,
            "--pod-selector=app.kubernetes.io/name=backend,app.kubernetes.io/component=api",
            "--delete-emptydir-data",
            "--ignore-daemonsets",
            "--timeout=40s",
            check=False,
            timeout=90,
        )
    finally:
        elapsed = time.monotonic() - start
        kubectl("uncordon", node)
        stop.set()
        watcher.join(timeout=5)
    output = drain.stdout + drain.stderr
    refusals = output.count("would violate the pod's disruption budget")
    evicted = output.count("evicted")
    wait_for("the backend back at full strength", lambda: ready_count("backend") >= before, 180)
    emit(
        "pdb",
        f"drain of {node} (backend pods) exited {drain.returncode} after {elapsed:.0f} s: {evicted} eviction(s) "
        f"allowed, {refusals} refused by the PDB (minAvailable {min_available}); ready backend pods never below "
        f"{min(lowest)}",
        {
            "exit": drain.returncode,
            "refusals": refusals,
            "evicted": evicted,
            "min_ready_seen": min(lowest),
            "ready_before": before,
            "output_tail": output.strip().splitlines()[-6:],
        },
    )
    if drain.returncode == 0 or refusals == 0:
        raise ProofFailed("the drain was not refused by the PodDisruptionBudget")
    if min(lowest) < int(min_available):
        raise ProofFailed(f"ready backend pods fell to {min(lowest)} (< minAvailable {min_available})")


# --- 6. graceful shutdown ---------------------------------------------------------------------------------


def proof_graceful(seconds: int, parallel: int) -> None:
    pods = deployment_pods("backend")
    grace = pods[0]["spec"].get("terminationGracePeriodSeconds")
    results: list[dict] = []
    lock = threading.Lock()

    def slow(index: int) -> None:
        try:
            status, body, latency = request(f"/api/slow?seconds={seconds}", timeout=seconds + 60)
            payload = json.loads(body) if status == 200 else {}
            record = {"i": index, "status": status, "seconds": round(latency, 1), "pod": payload.get("host")}
        except (OSError, http.client.HTTPException, ValueError) as exc:
            record = {"i": index, "status": 0, "error": type(exc).__name__}
        with lock:
            results.append(record)

    threads = [threading.Thread(target=slow, args=(i,)) for i in range(parallel)]
    for thread in threads:
        thread.start()
        time.sleep(0.2)
    time.sleep(3)
    victim = pods[0]["metadata"]["name"]
    deleted_at = time.monotonic()
    kubectl("-n", NS, "delete", "pod", victim, "--wait=false")
    for thread in threads:
        thread.join(timeout=seconds + 90)
    wait_for(
        f"pod {victim} to be gone", lambda: kubectl("-n", NS, "get", "pod", victim, check=False).returncode != 0, 120
    )
    gone_after = time.monotonic() - deleted_at
    on_victim = [r for r in results if r.get("pod") == victim]
    failed = [r for r in results if r.get("status") != 200]
    emit(
        "graceful",
        f"{len(results)} requests of {seconds} s in flight, pod {victim} deleted (grace period {grace} s): "
        f"{len(results) - len(failed)} completed with 200, {len(on_victim)} of them served by the deleted pod; "
        f"the pod was gone {gone_after:.0f} s after its deletion",
        {
            "results": sorted(results, key=lambda r: r["i"]),
            "victim": victim,
            "grace_period": grace,
            "gone_after_s": round(gone_after, 1),
        },
    )
    if failed:
        raise ProofFailed(f"slow requests failed when their pod was deleted: {failed}")
    if not on_victim:
        raise ProofFailed(f"no slow request was served by {victim}; the proof did not exercise the deleted pod")


# --- 7. a pod whose dependency is down goes unready, and is not restarted ---------------------------------

# Inside the php-fpm container: SIGSTOP (or SIGCONT) every child of PID 1, i.e. PHP-FPM's workers; print how
# many. The master (PID 1) keeps running and holding its socket, as it does when every worker is stuck in a
# slow request. Plain sh and /proc: the image has no ps or pkill.
WORKER_SIGNAL = """n=0
for status in /proc/[0-9]*/status; do
  pid=${status#/proc/}; pid=${pid%/status}
  [ "$pid" = 1 ] && continue
  ppid=
  while read -r key value; do [ "$key" = PPid: ] && ppid=$value && break; done 2>/dev/null < "$status"
  [ "$ppid" = 1 ] && kill -"$0" "$pid" 2>/dev/null && n=$((n + 1))
done
echo "$n"
"""


def signal_workers(pod: str, signal: str) -> int:
    proc = kubectl("-n", NS, "exec", pod, "-c", "php-fpm", "--", "/bin/sh", "-c", WORKER_SIGNAL, signal, timeout=30)
    return int(proc.stdout.strip().splitlines()[-1])


def pod_state(pod: str) -> dict:
    data = kube_json("-n", NS, "get", "pod", pod)
    conditions = {c["type"]: c["status"] for c in data["status"].get("conditions", [])}
    statuses = data["status"].get("containerStatuses", [])
    return {
        "uid": data["metadata"]["uid"],
        "ip": data["status"].get("podIP"),
        "ready": conditions.get("Ready") == "True",
        "containers_ready": {c["name"]: c["ready"] for c in statuses},
        "restarts": {c["name"]: c["restartCount"] for c in statuses},
        "spec": data["spec"],
    }


def service_endpoint_ready(ip: str) -> bool | None:
    """The backend Service's view of the pod: its endpoint's ready condition (None when it is not listed)."""
    slices = kube_json("-n", NS, "get", "endpointslices", "-l", "kubernetes.io/service-name=backend")["items"]
    for item in slices:
        for endpoint in item.get("endpoints") or []:
            if ip in endpoint.get("addresses", []):
                return bool(endpoint.get("conditions", {}).get("ready"))
    return None


def probe_events(pod: str) -> dict[str, int]:
    """How often each probe failed on the pod, from its Unhealthy events (their count aggregates repeats)."""
    events = kube_json("-n", NS, "get", "events", "--field-selector", f"involvedObject.name={pod}")["items"]
    counts = {"readiness": 0, "liveness": 0}
    for event in events:
        if event.get("reason") != "Unhealthy":
            continue
        kind = "liveness" if event.get("message", "").startswith("Liveness") else "readiness"
        counts[kind] += int(event.get("count") or (event.get("series") or {}).get("count") or 1)
    return counts


def proof_unready(margin: float) -> None:
    """Backend readiness depends on PHP-FPM's workers answering (nginx's /readyz hands them PHP-FPM's ping, the
    php-fpm container pings them over FastCGI); it never asks the database (docs/decisions.md). So the
    dependency taken down is the workers: stopped, they take no request while the master and nginx live on."""
    wait_for("two ready backend pods", lambda: ready_count("backend") >= 2, 180)
    pods = [p for p in deployment_pods("backend") if pod_state(p["metadata"]["name"])["ready"]]
    if not pods:
        raise ProofFailed("no ready backend pod")
    pod = pods[0]["metadata"]["name"]
    before = pod_state(pod)
    events_before = probe_events(pod)
    # How long liveness needs to restart a container whose check fails: periodSeconds x failureThreshold plus
    # the last timeout. The outage must last longer than that for "not restarted" to mean anything.
    liveness = {
        c["name"]: c["livenessProbe"]["periodSeconds"] * c["livenessProbe"]["failureThreshold"]
        + c["livenessProbe"]["timeoutSeconds"]
        for c in before["spec"]["containers"]
    }
    outage = max(liveness.values()) + margin
    timeline: list[dict] = []
    start = time.monotonic()

    def sample(phase: str) -> dict:
        state = pod_state(pod)
        row = {
            "t": round(time.monotonic() - start, 1),
            "phase": phase,
            "ready": state["ready"],
            "containers_ready": state["containers_ready"],
            "restarts": state["restarts"],
        }
        if not timeline or (row["ready"], row["containers_ready"], row["restarts"]) != (
            timeline[-1]["ready"],
            timeline[-1]["containers_ready"],
            timeline[-1]["restarts"],
        ):
            timeline.append(row)
            print(
                f"  t={row['t']:5.1f}s {phase:8} Ready {row['ready']}, containers {row['containers_ready']}, "
                f"restarts {row['restarts']}"
            )
        if state["uid"] != before["uid"]:
            raise ProofFailed(f"pod {pod} was replaced during the proof")
        return row

    stopped = 0
    unready_after = None
    endpoint_ready = None
    resumed = 0
    try:
        stopped = signal_workers(pod, "STOP")
        if not stopped:
            raise ProofFailed(f"no PHP-FPM worker found in {pod}")
        last_stop = time.monotonic()
        while time.monotonic() - start < outage:
            row = sample("stopped")
            if unready_after is None and not row["ready"]:
                unready_after = row["t"]
            if row["restarts"] != before["restarts"]:
                raise ProofFailed(f"a container of {pod} restarted while PHP-FPM's workers were stopped: {timeline}")
            if unready_after is not None and row["ready"]:
                raise ProofFailed(f"{pod} became ready again while its workers were stopped: {timeline}")
            # A worker the master started since (none is expected: the stopped ones count as idle) is stopped too.
            if time.monotonic() - last_stop > 5:
                signal_workers(pod, "STOP")
                last_stop = time.monotonic()
            time.sleep(1)
        if unready_after is None:
            raise ProofFailed(f"{pod} stayed Ready for {outage:.0f} s with PHP-FPM's workers stopped: {timeline}")
        endpoint_ready = service_endpoint_ready(before["ip"])
    finally:
        with suppress(ProofFailed, subprocess.TimeoutExpired):
            resumed = signal_workers(pod, "CONT")
    outage_seconds = time.monotonic() - start
    resume_at = time.monotonic()
    wait_for(f"{pod} Ready again", lambda: sample("resumed")["ready"], 120, interval=1)
    ready_again = time.monotonic() - resume_at
    after = pod_state(pod)
    events = {k: v - events_before.get(k, 0) for k, v in probe_events(pod).items()}
    endpoint = {True: "still ready", False: "not ready", None: "not listed"}[endpoint_ready]
    emit(
        "unready",
        f"backend pod {pod}, its {stopped} PHP-FPM workers stopped for {outage_seconds:.0f} s (longer than the "
        f"{max(liveness.values())} s liveness needs to restart): Ready False after {unready_after:.0f} s, its "
        f"endpoint in the Service {endpoint}, "
        f"{events['readiness']} readiness and {events['liveness']} liveness probe failures, restarts "
        f"{sum(before['restarts'].values())} -> {sum(after['restarts'].values())}; workers continued: Ready again "
        f"after {ready_again:.0f} s",
        {
            "pod": pod,
            "workers_stopped": stopped,
            "workers_resumed": resumed,
            "liveness_restart_after_s": liveness,
            "outage_s": round(outage_seconds, 1),
            "unready_after_s": unready_after,
            "endpoint_ready_during_outage": endpoint_ready,
            "probe_failures": events,
            "restarts_before": before["restarts"],
            "restarts_after": after["restarts"],
            "ready_again_after_s": round(ready_again, 1),
            "timeline": timeline,
        },
    )
    if after["restarts"] != before["restarts"]:
        raise ProofFailed(f"restart counts changed: {before['restarts']} -> {after['restarts']}")
    if endpoint_ready:
        raise ProofFailed(f"the Service still counted {pod} as a ready endpoint while it was unready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="proof", required=True)
    sub.add_parser("app")
    sub.add_parser("netpol")
    rollout = sub.add_parser("rollout")
    rollout.add_argument("--new-tag", default="1.0.1")
    rollout.add_argument("--old-tag", default="1.0.0")
    hpa = sub.add_parser("hpa")
    hpa.add_argument("--up-timeout", type=float, default=300)
    hpa.add_argument("--down-timeout", type=float, default=420)
    pdb = sub.add_parser("pdb")
    pdb.add_argument("--node", default="threetier-e2e")
    graceful = sub.add_parser("graceful")
    graceful.add_argument("--seconds", type=int, default=20)
    graceful.add_argument("--parallel", type=int, default=6)
    unready = sub.add_parser("unready")
    unready.add_argument("--margin", type=float, default=10, help="seconds the outage lasts beyond liveness's reach")
    args = parser.parse_args(argv)
    try:
        if args.proof == "app":
            proof_app()
        elif args.proof == "netpol":
            proof_netpol()
        elif args.proof == "rollout":
            proof_rollout(args.new_tag, args.old_tag)
        elif args.proof == "hpa":
            proof_hpa(args.up_timeout, args.down_timeout)
        elif args.proof == "pdb":
            proof_pdb(args.node)
        elif args.proof == "unready":
            proof_unready(args.margin)
        else:
            proof_graceful(args.seconds, args.parallel)
    except ProofFailed as exc:
        record(f"PROOF {args.proof} FAILED: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
