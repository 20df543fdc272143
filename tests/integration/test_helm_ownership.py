"""Everything in a Helm release (issue 20), on the local cluster, through site.yml itself.

One environment of its own (namespaces it-own-<suffix>), converged by playbooks/site.yml with the local
inventory, then:
- every NetworkPolicy belongs to the release that runs the pods it selects (default deny to the platform
  release), and the run had no policy pass of its own before the workloads;
- a first install takes over what an earlier version of the collection applied object by object;
- a flow removed from the graph is gone after the next run, with no prune of the collection's own;
- `helm rollback` of the frontend brings the flow back, `helm uninstall` leaves nothing of the release;
- playbooks/teardown.yml removes the rest.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.harness.proc import run

if TYPE_CHECKING:
    from conftest import Kubectl

ROOT = Path(__file__).resolve().parents[2]
ENV = {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
RELEASE_ANNOTATION = "meta.helm.sh/release-name"
MONITORING = "monitoring"
DROPPED_FLOW = {"from": "prometheus", "to": "frontend", "ports": [{"port": "metrics"}]}


def site(kubeconfig: Path, mirror: str, app_ns: str, *extra: str, playbook: str = "playbooks/site.yml") -> str:
    """One ansible-playbook run against the local cluster; its output (the run must succeed)."""
    extra_vars = {
        "threetier_kubeconfig": str(kubeconfig),
        "threetier_chart_repo_override": mirror,
        "threetier_app_namespace": app_ns,
        "threetier_db_namespace": f"{app_ns}-db",
        "threetier_monitoring_enabled": False,
    }
    proc = run(
        ["ansible-playbook", "-i", "inventories/local", playbook, "-e", json.dumps(extra_vars), *extra],
        cwd=ROOT,
        env={**os.environ, **ENV},
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return proc.stdout


def ran(output: str, task: str) -> bool:
    """Whether a task of the run's output ran (ok or changed) rather than being skipped or never reached."""
    blocks = re.split(r"^TASK \[", output, flags=re.MULTILINE)
    return any(
        block.startswith(task + "]") and re.search(r"^(ok|changed): ", block, re.MULTILINE) is not None
        for block in blocks
    )


def helm(kubeconfig: Path, *args: str) -> str:
    return run(["helm", *args, "--kubeconfig", str(kubeconfig)], timeout=300, error=AssertionError).stdout


def graph_without(flow: dict[str, Any]) -> dict[str, Any]:
    """The shared flow graph of the inventories with one flow left out (its templates stay for Ansible)."""
    network = yaml.safe_load((ROOT / "inventories/_shared/network.yml").read_text())["threetier_network"]
    flows = [f for f in network["flows"] if f != flow]
    assert len(flows) == len(network["flows"]) - 1, f"the graph has no flow {flow}"
    return {**network, "flows": flows}


def policies(kubectl: Kubectl, namespace: str) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in kubectl.json("get", "networkpolicies", "-n", namespace)["items"]}


def ingress_namespaces(policy: dict[str, Any]) -> set[str]:
    """The namespaces a policy lets in (the kubernetes.io/metadata.name of each rule's namespace selector)."""
    return {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in policy["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if "namespaceSelector" in peer
    }


@pytest.fixture(scope="module")
def env(cluster: Path, helm_mirror: str, kubectl: Kubectl) -> Iterator[dict[str, Any]]:
    """An environment converged once; torn down (data included) at the end."""
    app_ns = f"it-own-{uuid.uuid4().hex[:5]}"
    # What the previous version of the collection left: the app namespace and its default deny, applied one by
    # one with its own labels and no Helm ownership.
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": app_ns, "labels": {"app.kubernetes.io/managed-by": "threetier.k8s"}},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": "threetier-default-deny",
                "namespace": app_ns,
                "labels": {"app.kubernetes.io/managed-by": "threetier.k8s", "threetier.k8s/policy-set": "threetier"},
            },
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
    )
    state: dict[str, Any] = {"app_ns": app_ns, "db_ns": f"{app_ns}-db", "kubeconfig": cluster, "mirror": helm_mirror}
    state["first_run"] = site(cluster, helm_mirror, app_ns)
    yield state
    site(cluster, helm_mirror, app_ns, "-e", "teardown_delete_data=true", playbook="playbooks/teardown.yml")


def test_each_policy_belongs_to_the_release_of_its_pods(env: dict[str, Any], kubectl: Kubectl) -> None:
    app = policies(kubectl, env["app_ns"])
    owners = {name: p["metadata"].get("annotations", {}).get(RELEASE_ANNOTATION) for name, p in app.items()}
    assert owners == {
        "threetier-default-deny": f"{env['app_ns']}-platform",
        "threetier-backend": "backend",
        "threetier-backend-test": "backend",
        "threetier-frontend": "frontend",
        "threetier-frontend-test": "frontend",
    }
    database = policies(kubectl, env["db_ns"])
    assert (
        database["threetier-default-deny"]["metadata"]["annotations"][RELEASE_ANNOTATION] == f"{env['app_ns']}-platform"
    )
    for component in ("spilo", "pooler"):
        assert database[f"threetier-{component}"]["metadata"]["annotations"][RELEASE_ANNOTATION] == "database"
    # The namespaces are the platform release's and outlive it (keep), and no task opened flows ahead of the
    # workloads: the policies came with the releases.
    namespace = kubectl.json("get", "namespace", env["app_ns"])
    assert namespace["metadata"]["annotations"][RELEASE_ANNOTATION] == f"{env['app_ns']}-platform"
    assert namespace["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    tasks = re.findall(r"^TASK \[(.*?)\]", env["first_run"], re.MULTILINE)
    assert not [t for t in tasks if t.startswith("threetier.k8s.network_policies : Apply")], tasks
    assert not [t for t in tasks if "Open the declared flows" in t], tasks


def test_a_removed_flow_is_gone_and_rollback_brings_it_back(env: dict[str, Any], kubectl: Kubectl) -> None:
    kubeconfig, app_ns = env["kubeconfig"], env["app_ns"]
    before = policies(kubectl, app_ns)["threetier-frontend"]
    # Prometheus's namespace is let in on the metrics port before the flow is dropped, and only by that flow.
    assert MONITORING in ingress_namespaces(before), before["spec"]
    revision = json.loads(helm(kubeconfig, "history", "frontend", "-n", app_ns, "-o", "json"))[-1]["revision"]

    output = site(
        kubeconfig, env["mirror"], app_ns, "-e", json.dumps({"threetier_network": graph_without(DROPPED_FLOW)})
    )
    after = policies(kubectl, app_ns)["threetier-frontend"]
    assert MONITORING not in ingress_namespaces(after), (
        f"the prometheus -> frontend flow is still open: {after['spec']}"
    )
    assert "prune" not in output.lower()
    # The frontend changed, so it was dry-run against the API server before the first change. The backend did not:
    # helm diff found it unchanged before the dry run, which then skipped it, and its install step took that
    # verdict instead of reading the history and comparing again.
    assert ran(output, "threetier.k8s.helm_release : Dry-run against the API server, release frontend")
    assert not ran(output, "threetier.k8s.helm_release : Dry-run against the API server, release backend")
    assert ran(output, "threetier.k8s.helm_release : Take the dry run's verdict on release backend")
    assert not ran(output, "threetier.k8s.helm_release : Compare the chart and values with release backend")
    assert ran(output, "threetier.k8s.helm_release : Compare the chart and values with release frontend")

    helm(kubeconfig, "rollback", "frontend", str(revision), "-n", app_ns, "--wait")
    restored = policies(kubectl, app_ns)["threetier-frontend"]
    assert restored["spec"] == before["spec"]


def release_objects(kubectl: Kubectl, namespace: str, kinds: list[str], release: str) -> list[str]:
    """Every object of a namespace that belongs to a release: its annotation, or its instance label (the pods)."""
    left = []
    for kind in kinds:
        for item in kubectl.json("get", kind, "-n", namespace)["items"]:
            metadata = item["metadata"]
            if (
                metadata.get("annotations", {}).get(RELEASE_ANNOTATION) == release
                or metadata.get("labels", {}).get("app.kubernetes.io/instance") == release
            ):
                left.append(f"{kind}/{metadata['name']}")
    return left


def test_an_uninstall_leaves_nothing_of_the_release(env: dict[str, Any], kubectl: Kubectl) -> None:
    kubeconfig, app_ns = env["kubeconfig"], env["app_ns"]
    helm(kubeconfig, "uninstall", "frontend", "-n", app_ns, "--wait")
    kinds = kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").stdout.split()
    kinds = [kind for kind in kinds if kind not in {"events", "events.events.k8s.io"}]
    # Helm waits for the objects it deleted; their dependents (the ReplicaSets' pods) go with the garbage
    # collector a moment later.
    deadline = time.monotonic() + 120
    while (left := release_objects(kubectl, app_ns, kinds, "frontend")) and time.monotonic() < deadline:
        time.sleep(3)
    assert left == [], left
    # The other releases' objects are still there, and the next run puts the frontend back with its policies.
    assert "threetier-backend" in policies(kubectl, app_ns)
    site(kubeconfig, env["mirror"], app_ns, "--tags", "frontend")
    assert {"threetier-frontend", "threetier-frontend-test"} <= set(policies(kubectl, app_ns))
