"""Proof 7: every app container runs as the UID the charts specify, on a read-only root filesystem, without
capabilities or privilege escalation, under the RuntimeDefault seccomp profile — checked from INSIDE the
running containers through testinfra's kubectl backend (``kubectl exec``), not read back from the spec.

Environment: KUBECONFIG and E2E_NAMESPACE (set by molecule/e2e/verify.yml).
"""

from __future__ import annotations

import json
import os

import pytest
import testinfra

from tests.harness.proc import kubectl

NAMESPACE = os.environ.get("E2E_NAMESPACE", "threetier")
KUBECONFIG = os.environ.get("KUBECONFIG")
# (component, container) -> the UID/GID its chart pins.
EXPECTED = {
    ("frontend", "nginx"): (101, 101),
    ("backend", "php-fpm"): (33, 33),
    ("backend", "nginx"): (101, 101),
}


def _pods() -> list[tuple[str, str, int, int]]:
    out = kubectl(
        "-n", NAMESPACE, "get", "pods", "-l", "app.kubernetes.io/component", "-o", "json", request_timeout=None
    )
    cases = []
    for pod in json.loads(out.stdout)["items"]:
        if pod["status"].get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
            continue
        component = pod["metadata"]["labels"].get("app.kubernetes.io/name", "")
        for container in pod["spec"]["containers"]:
            if (component, container["name"]) in EXPECTED:
                uid, gid = EXPECTED[(component, container["name"])]
                cases.append((pod["metadata"]["name"], container["name"], uid, gid))
    return cases


CASES = _pods()


def _host(pod: str, container: str) -> testinfra.host.Host:
    query = f"container={container}&namespace={NAMESPACE}"
    if KUBECONFIG:
        query += f"&kubeconfig={KUBECONFIG}"
    return testinfra.get_host(f"kubectl://{pod}?{query}")


def _status_field(host: testinfra.host.Host, name: str) -> str:
    for line in host.file("/proc/self/status").content_string.splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} missing from /proc/self/status")


def test_every_app_container_is_covered() -> None:
    """Both charts' containers are present, on at least the 2 replicas each Deployment keeps."""
    seen = {(pod.rsplit("-", 2)[0], container) for pod, container, _uid, _gid in CASES}
    assert {("frontend", "nginx"), ("backend", "php-fpm"), ("backend", "nginx")} <= seen, CASES
    assert len(CASES) >= 6, CASES


@pytest.mark.parametrize(("pod", "container", "uid", "gid"), CASES, ids=[f"{p}/{c}" for p, c, _uid, _gid in CASES])
def test_container_security(pod: str, container: str, uid: int, gid: int) -> None:
    host = _host(pod, container)
    # The processes the image runs (PID 1: nginx master or php-fpm master) and a shell started by exec.
    assert host.check_output("id -u") == str(uid)
    assert host.check_output("id -g") == str(gid)
    pid1 = host.file("/proc/1/status").content_string
    assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in pid1, pid1
    # Read-only root filesystem: the mount says so and a write fails.
    root = host.mount_point("/")
    assert "ro" in root.options, root.options
    write = host.run("touch /threetier-e2e-write-probe")
    assert write.rc != 0 and "Read-only file system" in write.stderr, (write.rc, write.stderr)
    # No capabilities, no privilege escalation (no_new_privs), seccomp in filter mode (RuntimeDefault).
    assert int(_status_field(host, "CapEff"), 16) == 0
    assert int(_status_field(host, "CapBnd"), 16) == 0
    assert _status_field(host, "NoNewPrivs") == "1"
    assert _status_field(host, "Seccomp") == "2"


def test_summary(capsys: pytest.CaptureFixture[str]) -> None:
    pods = sorted({case[0] for case in CASES})
    with capsys.disabled():
        print(
            f"\nPROOF podsecurity: {len(CASES)} containers in {len(pods)} pods checked from inside: "
            "UIDs 101/33/101, read-only /, CapEff=0, NoNewPrivs=1, Seccomp=2"
        )
