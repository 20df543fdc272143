"""Pod Security `restricted` on every rendered pod template, plus the chart's own hardening rules.

The checker (pod_security.py) is tested first against pods that break one control each, so a checker that
let everything through would fail here rather than bless the charts.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from chart_render import CHARTS, ENVIRONMENTS, HELMS, Render, pod_templates
from pod_security import containers, restricted_violations

Rendered = Callable[[str, str, str], Render]

COMPLIANT_POD: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
    "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
    "initContainers": [
        {"name": "init", "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}},
    ],
    "containers": [
        {
            "name": "app",
            "ports": [{"containerPort": 8080}],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            },
        },
    ],
}


def _set(pod: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path; numeric parts index lists, missing dicts are created."""
    parts = path.split(".")
    node: Any = pod
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    last = parts[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value


def _unset(pod: dict[str, Any], path: str) -> None:
    parts = path.split(".")
    node: Any = pod
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    del node[parts[-1]]


# (description, mutation of COMPLIANT_POD, words the violation must contain)
BREAKS = [
    ("host network", lambda p: _set(p, "hostNetwork", True), "hostNetwork"),
    ("host PID", lambda p: _set(p, "hostPID", True), "hostPID"),
    ("host IPC", lambda p: _set(p, "hostIPC", True), "hostIPC"),
    (
        "host process",
        lambda p: _set(p, "containers.0.securityContext.windowsOptions", {"hostProcess": True}),
        "HostProcess",
    ),
    ("privileged", lambda p: _set(p, "containers.0.securityContext.privileged", True), "privileged"),
    (
        "baseline capability",
        lambda p: _set(p, "containers.0.securityContext.capabilities.add", ["SYS_ADMIN"]),
        "SYS_ADMIN",
    ),
    ("restricted capability", lambda p: _set(p, "containers.0.securityContext.capabilities.add", ["CHOWN"]), "CHOWN"),
    ("no drop ALL", lambda p: _set(p, "initContainers.0.securityContext.capabilities.drop", ["NET_RAW"]), "drop ALL"),
    ("hostPath", lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    ("nfs volume", lambda p: p["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}), "nfs"),
    ("host port", lambda p: _set(p, "containers.0.ports.0.hostPort", 80), "hostPort"),
    ("apparmor", lambda p: _set(p, "securityContext.appArmorProfile", {"type": "Unconfined"}), "AppArmor"),
    (
        "apparmor annotation",
        lambda p: _set(p, "metadata_annotations", {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}),
        "AppArmor",
    ),
    ("selinux type", lambda p: _set(p, "securityContext.seLinuxOptions", {"type": "spc_t"}), "SELinux"),
    ("selinux user", lambda p: _set(p, "containers.0.securityContext.seLinuxOptions", {"user": "root"}), "SELinux"),
    ("proc mount", lambda p: _set(p, "containers.0.securityContext.procMount", "Unmasked"), "procMount"),
    (
        "unsafe sysctl",
        lambda p: _set(p, "securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}]),
        "sysctls",
    ),
    (
        "probe host",
        lambda p: _set(p, "containers.0.readinessProbe", {"httpGet": {"host": "10.0.0.1", "port": 80}}),
        "host",
    ),
    (
        "lifecycle host",
        lambda p: _set(p, "containers.0.lifecycle", {"preStop": {"tcpSocket": {"host": "metadata", "port": 80}}}),
        "lifecycle.preStop.tcpSocket.host",
    ),
    (
        "seccomp unconfined",
        lambda p: _set(p, "containers.0.securityContext.seccompProfile", {"type": "Unconfined"}),
        "seccomp",
    ),
    ("seccomp missing", lambda p: _unset(p, "securityContext.seccompProfile"), "seccomp"),
    (
        "escalation allowed",
        lambda p: _set(p, "containers.0.securityContext.allowPrivilegeEscalation", True),
        "escalation",
    ),
    (
        "escalation unset",
        lambda p: _unset(p, "initContainers.0.securityContext.allowPrivilegeEscalation"),
        "escalation",
    ),
    ("non-root missing", lambda p: _unset(p, "securityContext.runAsNonRoot"), "non-root"),
    ("non-root false", lambda p: _set(p, "containers.0.securityContext.runAsNonRoot", False), "non-root"),
    ("root user", lambda p: _set(p, "containers.0.securityContext.runAsUser", 0), "runAsUser"),
    ("root pod user", lambda p: _set(p, "securityContext.runAsUser", 0), "runAsUser"),
]


def _violations(pod: dict[str, Any]) -> list[str]:
    spec = {k: v for k, v in pod.items() if k != "metadata_annotations"}
    return restricted_violations(spec, pod.get("metadata_annotations"))


def test_checker_accepts_a_compliant_pod() -> None:
    assert _violations(copy.deepcopy(COMPLIANT_POD)) == []


def test_checker_accepts_what_the_policy_allows() -> None:
    """Allowed values must not be flagged either: safe sysctls, localhost probes, Localhost profiles."""
    pod = copy.deepcopy(COMPLIANT_POD)
    _set(pod, "securityContext.sysctls", [{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}])
    _set(pod, "containers.0.livenessProbe", {"httpGet": {"path": "/", "port": 8080}})
    _set(pod, "containers.0.securityContext.seccompProfile", {"type": "Localhost", "localhostProfile": "p.json"})
    _set(pod, "containers.0.securityContext.seLinuxOptions", {"type": "container_engine_t"})
    _set(pod, "metadata_annotations", {"container.apparmor.security.beta.kubernetes.io/app": "localhost/custom"})
    pod["volumes"].append({"name": "eph", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}})
    assert _violations(pod) == []


@pytest.mark.parametrize(("mutate", "words"), [b[1:] for b in BREAKS], ids=[b[0] for b in BREAKS])
def test_checker_rejects(mutate: Callable[[dict[str, Any]], None], words: str) -> None:
    pod = copy.deepcopy(COMPLIANT_POD)
    mutate(pod)
    found = _violations(pod)
    assert found, "the mutation went unnoticed"
    assert any(words in v for v in found), found


def _rendered_pods(render: Render) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", meta, spec)
        for doc in render.docs
        for meta, spec in pod_templates(doc)
    ]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize("helm", HELMS)
def test_every_pod_template_is_restricted(rendered: Rendered, helm: str, chart: str, environment: str) -> None:
    pods = _rendered_pods(rendered(helm, chart, environment))
    # Deployment and the helm test Pod at least; the backend adds hook Jobs.
    assert len(pods) >= 2
    problems = {
        where: found
        for where, meta, spec in pods
        if (found := restricted_violations(spec, meta.get("annotations") or {}))
    }
    assert problems == {}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_every_container_is_hardened_beyond_restricted(rendered: Rendered, chart: str, environment: str) -> None:
    """The issue's extra rules: read-only root, explicit non-zero UID, seccomp per container, no API token."""
    for where, _meta, spec in _rendered_pods(rendered("helm", chart, environment)):
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        for name, c in containers(spec):
            context = c["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, f"{where} {name}"
            assert context["runAsUser"] > 0, f"{where} {name}"
            assert context["seccompProfile"]["type"] == "RuntimeDefault", f"{where} {name}"
            assert context["capabilities"]["drop"] == ["ALL"], f"{where} {name}"
