"""The shared release routine (roles/helm_release) on the local cluster.

- A run killed during `helm upgrade` leaves the release pending-upgrade, and Helm then refuses every other
  operation (helm/helm#7476). The next run recovers it (rollback to the last deployed revision, then
  converge) and says so; with recovery turned off it stops with the command to run.
- site.yml dry-runs the app releases against the API server before its first change: a limit below its
  request stops the run there, with the API server's field path, the release, the role and the value.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import Kubectl

ROOT = Path(__file__).resolve().parents[2]
RESTRICTED = {
    "runAsNonRoot": True,
    "runAsUser": 101,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

# A chart as small as a release gets: a ConfigMap that carries one value (so each run's values show in the
# cluster) and a Deployment whose pods land only where values.nodeSelector allows.
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: 1
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
      annotations: {run: {{ .Values.run | quote }}}
    spec:
      nodeSelector: {{ .Values.nodeSelector | toJson }}
      containers:
        - name: app
          image: registry.example/tiny:1
          resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 100m, memory: 32Mi}}
          securityContext: SECURITY_CONTEXT
""".replace("SECURITY_CONTEXT", json.dumps(RESTRICTED))
CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
data:
  run: {{ .Values.run | quote }}
"""


def tiny_chart(where: Path) -> Path:
    chart = where / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": "tiny", "version": "0.1.0"}))
    (chart / "values.yaml").write_text(yaml.safe_dump({"run": "0", "nodeSelector": {}}))
    (chart / "templates" / "deployment.yaml").write_text(DEPLOYMENT)
    (chart / "templates" / "configmap.yaml").write_text(CONFIGMAP)
    return chart


PLAYBOOK = """- name: Converge the tiny release with the shared release routine
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Install or upgrade the tiny release
      ansible.builtin.include_role:
        name: threetier.k8s.helm_release
      vars:
        helm_release:
          role: tiny
          name: tiny
          namespace: "{{ tiny_namespace }}"
          chart_ref: "{{ tiny_chart }}"
          chart_version: 0.1.0
          computed_values:
            run: "{{ tiny_run }}"
          timeout: 2m
          recover_pending: "{{ tiny_recover_pending | default(true) }}"
"""


def ansible_env() -> dict[str, str]:
    env = os.environ.copy()
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    return env


def playbook(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ansible-playbook", *args],
        cwd=ROOT,
        env=ansible_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def helm(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["helm", *args, "--kubeconfig", str(kubeconfig)], capture_output=True, text=True, timeout=120, check=False
    )


def history(kubeconfig: Path, namespace: str) -> list[dict[str, Any]]:
    proc = helm(kubeconfig, "history", "tiny", "--namespace", namespace, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    return sorted(json.loads(proc.stdout), key=lambda entry: entry["revision"])


def releases(kubeconfig: Path) -> set[tuple[str, str, str, str]]:
    """Every release outside the other tests' namespaces: name, namespace, revision, status."""
    proc = helm(kubeconfig, "list", "--all-namespaces", "--all", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    return {
        (r["name"], r["namespace"], str(r["revision"]), r["status"])
        for r in json.loads(proc.stdout)
        if not r["namespace"].startswith("it-")
    }


def converge(kubeconfig: Path, chart: Path, namespace: str, run: str, *extra: str) -> subprocess.CompletedProcess[str]:
    play = chart.parent / "play.yml"
    play.write_text(PLAYBOOK)
    inventory = chart.parent / "hosts.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    return playbook(
        "-i",
        str(inventory),
        "-e",
        json.dumps(
            {
                "threetier_kubeconfig": str(kubeconfig),
                "tiny_namespace": namespace,
                "tiny_chart": str(chart),
                "tiny_run": run,
            }
        ),
        *extra,
        str(play),
    )


def test_an_upgrade_killed_midway_is_recovered_by_the_next_run(cluster: Path, namespace: str, tmp_path: Path) -> None:
    chart = tiny_chart(tmp_path)
    first = converge(cluster, chart, namespace, "1")
    assert first.returncode == 0, first.stdout + first.stderr
    assert [(e["revision"], e["status"]) for e in history(cluster, namespace)] == [(1, "deployed")]

    # Check mode reports the change and shows helm-diff's output, and changes nothing.
    checked = converge(cluster, chart, namespace, "2", "--check", "--diff")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "changed=1" in checked.stdout and "'+   run: \"2\"'" in checked.stdout, checked.stdout
    assert [(e["revision"], e["status"]) for e in history(cluster, namespace)] == [(1, "deployed")]

    # An upgrade whose pod can never be scheduled: helm --wait waits, and is killed while it does.
    upgrade = subprocess.Popen(
        [
            "helm",
            "upgrade",
            "tiny",
            str(chart),
            "--namespace",
            namespace,
            "--kubeconfig",
            str(cluster),
            "--wait",
            "--timeout",
            "5m",
            "--set-string",
            "run=2",
            "--set-string",
            "nodeSelector.threetier-test/never=true",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "upgrade.err").open("w"),
    )
    try:
        deadline = time.monotonic() + 60
        while history(cluster, namespace)[-1]["status"] != "pending-upgrade":
            failed = (tmp_path / "upgrade.err").read_text() if upgrade.poll() is not None else ""
            assert upgrade.poll() is None, f"helm upgrade ended before it was interrupted: {failed}"
            assert time.monotonic() < deadline, f"no pending-upgrade revision: {history(cluster, namespace)}"
            time.sleep(0.5)
        time.sleep(1)
    finally:
        upgrade.send_signal(signal.SIGKILL)
        upgrade.wait(timeout=30)
    assert [(e["revision"], e["status"]) for e in history(cluster, namespace)] == [
        (1, "deployed"),
        (2, "pending-upgrade"),
    ]

    # Recovery off: one clear message with the command to run, and the release is left as it is.
    stopped = converge(cluster, chart, namespace, "3", "-e", "tiny_recover_pending=false")
    output = " ".join((stopped.stdout + stopped.stderr).split())
    assert stopped.returncode != 0, output
    assert "Release tiny in namespace " + namespace + " is pending-upgrade at revision 2" in output, output
    assert f"helm rollback tiny 1 --namespace {namespace}" in output, output
    assert "tiny_recover_pending=true" in output, output
    assert history(cluster, namespace)[-1]["status"] == "pending-upgrade"

    # Recovery on (the default): rolled back to revision 1, then upgraded to this run's values.
    recovered = converge(cluster, chart, namespace, "3")
    output = " ".join((recovered.stdout + recovered.stderr).split())
    assert recovered.returncode == 0, output
    assert "Recovering release tiny in namespace " + namespace in output, output
    assert "revision 2 was left pending-upgrade by an interrupted run; rolling back to revision 1" in output, output
    assert "[DEPRECATION WARNING]" not in output, output
    after = history(cluster, namespace)
    # Revision 3 is the rollback to revision 1, revision 4 this run's upgrade. Helm keeps the killed revision's
    # record as it was; only the newest revision's status decides whether Helm accepts an operation.
    assert [(e["revision"], e["status"]) for e in after] == [
        (1, "superseded"),
        (2, "pending-upgrade"),
        (3, "superseded"),
        (4, "deployed"),
    ], after
    assert "Rollback to 1" in after[2]["description"], after
    config = json.loads(
        subprocess.run(
            ["kubectl", "--kubeconfig", str(cluster), "-n", namespace, "get", "configmap", "tiny", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    )
    assert config["data"]["run"] == "3"

    # And the next run has nothing to do.
    again = converge(cluster, chart, namespace, "3")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed=0" in again.stdout, again.stdout
    assert history(cluster, namespace)[-1]["revision"] == 4


def test_site_stops_before_any_change_on_a_value_only_the_api_server_rejects(cluster: Path, kubectl: Kubectl) -> None:
    """A CPU limit below its request passes every client-side check; the API server's dry run stops the run."""
    suffix = uuid.uuid4().hex[:5]
    app_ns, db_ns = f"it-dry-{suffix}", f"it-dry-{suffix}-db"
    releases_before = releases(cluster)
    namespaces_before = {item["metadata"]["name"] for item in kubectl.json("get", "namespaces")["items"]}

    result = playbook(
        "-i",
        "inventories/local",
        "playbooks/site.yml",
        "-e",
        json.dumps(
            {
                "threetier_kubeconfig": str(cluster),
                "threetier_app_namespace": app_ns,
                "threetier_db_namespace": db_ns,
                "backend_values": {"phpfpm": {"resources": {"requests": {"cpu": "1500m"}, "limits": {"cpu": "1"}}}},
            }
        ),
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Release backend (role backend): the API server rejects the chart" in output, output
    assert 'resources.requests: Invalid value: "1500m"' in output, output
    assert 'phpfpm.resources.requests.cpu="1500m" (backend_values)' in output, output
    # It stopped before the first role that changes anything, and nothing was created or upgraded.
    tasks = re.findall(r"^TASK \[(.*)\]", result.stdout, re.MULTILINE)
    assert tasks[-1] == "threetier.k8s.helm_release : Check the dry run of release backend", tasks
    assert not [task for task in tasks if task.startswith("threetier.k8s.namespaces : Create")], tasks
    assert "changed=0" in output, output
    # Other tests' namespaces (it-*) come and go meanwhile; every other release and namespace stays as it was.
    assert releases(cluster) == releases_before, "a release was installed, upgraded or removed"
    namespaces_after = {item["metadata"]["name"] for item in kubectl.json("get", "namespaces")["items"]}
    assert {ns for ns in namespaces_after if not ns.startswith("it-")} == {
        ns for ns in namespaces_before if not ns.startswith("it-")
    }


@pytest.fixture(autouse=True)
def _helm_on_path() -> None:
    """The tier runs under scripts/env.sh: helm, its helm-diff plugin and kubectl come from the project cache."""
    for tool in ("helm", "kubectl", "ansible-playbook"):
        assert subprocess.run(["which", tool], capture_output=True, check=False).returncode == 0, (
            f"{tool} is not on PATH: run the tier with `make integration` (or `. scripts/env.sh`)"
        )
