"""Pod Security of the database: the database and operator namespaces enforce `restricted`, the API server
admits the operator's pods there (its MutatingAdmissionPolicy completes their security context), and inside
the running containers Spilo, PgBouncer and the operator run as their own non-root UIDs with no capability,
no_new_privs and seccomp in filter mode — checked through testinfra's kubectl backend, not read from the spec.

Environment: KUBECONFIG, E2E_DB_NAMESPACE, E2E_OPERATOR_NAMESPACE (molecule/e2e/verify.yml).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import testinfra

from tests.harness.proc import kubectl

DB_NAMESPACE = os.environ.get("E2E_DB_NAMESPACE", "threetier-db")
OPERATOR_NAMESPACE = os.environ.get("E2E_OPERATOR_NAMESPACE", "postgres-operator")
KUBECONFIG = os.environ.get("KUBECONFIG")
# (namespace, selector, container) -> (UID, GID, read-only root filesystem expected). The operator's image holds
# only its static binary (no shell to exec): its process is read from this host's /proc, where the node runs it.
EXPECTED = {
    (DB_NAMESPACE, "application=spilo", "postgres"): (101, 103, False),
    (DB_NAMESPACE, "application=db-connection-pooler", "connection-pooler"): (100, 101, False),
    (OPERATOR_NAMESPACE, "app.kubernetes.io/name=postgres-operator", "postgres-operator"): (1000, 1000, True),
}


def kubectl_json(*args: str) -> dict:
    out = kubectl(*args, "-o", "json", request_timeout=None)
    return json.loads(out.stdout)


def _cases() -> list[tuple[str, str, str, int, int, bool]]:
    cases = []
    for (namespace, selector, container), (uid, gid, read_only) in EXPECTED.items():
        for pod in kubectl_json("-n", namespace, "get", "pods", "-l", selector)["items"]:
            if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp"):
                cases.append((namespace, pod["metadata"]["name"], container, uid, gid, read_only))
    return cases


CASES = _cases()


def _host(namespace: str, pod: str, container: str) -> testinfra.host.Host:
    query = f"container={container}&namespace={namespace}"
    if KUBECONFIG:
        query += f"&kubeconfig={KUBECONFIG}"
    return testinfra.get_host(f"kubectl://{pod}?{query}")


def _host_status(namespace: str, pod: str, command: str) -> tuple[str, str]:
    """/proc/<pid>/status and /proc/<pid>/mountinfo of the pod's process running ``command``, read on this
    host (the e2e node): the pod's UID names its cgroup."""
    uid = kubectl_json("-n", namespace, "get", "pod", pod)["metadata"]["uid"]
    marker = "pod" + uid
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "cgroup").read_text():
                continue
            argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
            if argv0.endswith(command):
                return (proc / "status").read_text(), (proc / "mountinfo").read_text()
        except OSError:
            continue
    raise AssertionError(f"no process {command} of pod {namespace}/{pod} on this host")


def _status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} missing from a /proc status file")


@pytest.mark.parametrize("namespace", [DB_NAMESPACE, OPERATOR_NAMESPACE])
def test_namespace_enforces_restricted_and_its_pods_fit(namespace: str) -> None:
    labels = kubectl_json("get", "namespace", namespace)["metadata"]["labels"]
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", labels
    # A server-side dry run of the label re-evaluates every existing pod: Pod Security warns for each one
    # that would violate the level.
    proc = kubectl(
        "label", "--dry-run=server", "--overwrite", "namespace", namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        request_timeout=None,
    )  # fmt: skip
    assert "violate" not in proc.stderr, proc.stderr


def test_every_database_container_is_covered() -> None:
    seen = {(case[0], case[2]) for case in CASES}
    assert {
        (DB_NAMESPACE, "postgres"),
        (DB_NAMESPACE, "connection-pooler"),
        (OPERATOR_NAMESPACE, "postgres-operator"),
    } <= seen
    assert sum(1 for case in CASES if case[2] == "postgres") == 2, CASES


@pytest.mark.parametrize(
    ("namespace", "pod", "container", "uid", "gid", "read_only"), CASES, ids=[f"{c[1]}/{c[2]}" for c in CASES]
)
def test_database_container_security(
    namespace: str, pod: str, container: str, uid: int, gid: int, read_only: bool
) -> None:
    if container == "postgres-operator":
        pid1, mountinfo = _host_status(namespace, pod, "/postgres-operator")
        host = None
    else:
        host = _host(namespace, pod, container)
        # PID 1 (dumb-init in Spilo, the entrypoint's pgbouncer in the pooler) and every process it starts.
        pid1 = host.file("/proc/1/status").content_string
        mountinfo = host.file("/proc/1/mountinfo").content_string
    assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in pid1, pid1
    assert f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}" in pid1, pid1
    assert int(_status_field(pid1, "CapEff"), 16) == 0
    assert int(_status_field(pid1, "CapBnd"), 16) == 0
    assert _status_field(pid1, "NoNewPrivs") == "1"
    assert _status_field(pid1, "Seccomp") == "2"
    root = next(line.split() for line in mountinfo.splitlines() if line.split()[4] == "/")
    assert ("ro" in root[5].split(",")) == read_only, root
    if host is not None and container == "postgres":
        # The postmaster itself (Patroni starts it): the database server process is the same non-root user.
        postmaster = host.check_output("head -n1 /home/postgres/pgdata/pgroot/data/postmaster.pid")
        status = host.file(f"/proc/{postmaster}/status").content_string
        assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in status, status
        assert int(_status_field(status, "CapEff"), 16) == 0


def test_summary(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(
            f"\nPROOF dbpodsecurity: {DB_NAMESPACE} and {OPERATOR_NAMESPACE} enforce restricted with no pod in "
            f"violation; {len(CASES)} containers checked from inside: Spilo UID 101/GID 103 (postmaster too), "
            "PgBouncer 100/101, operator 1000 (read-only /), CapEff=0 CapBnd=0 NoNewPrivs=1 Seccomp=2"
        )
