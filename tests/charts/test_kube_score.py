"""Second configuration scan of the rendered manifests: kube-score, every environment, no unexplained finding.

kube-score (static and offline, tools/versions.env KUBE_SCORE_VERSION) checks what checkov does not: an
ephemeral-storage request and limit on every container, a NetworkPolicy selecting every pod and a pod behind
every NetworkPolicy, Services and Ingresses that reach their targets, PDBs and HPAs that match a workload,
probes that differ. Each environment is scanned as it is deployed, the platform chart's render with both app
charts', so the namespace's default-deny is the pods' NetworkPolicy; one run per environment, because
kube-score merges objects of the same kind, namespace and name across its input. Two optional checks the
charts meet are turned on (OPTIONAL_CHECKS); the optional requests-equal-limits checks are not: the charts give
CPU a burst on purpose (Burstable QoS), which the HPAs' utilisation targets rely on.

A finding is any check graded below OK (CRITICAL or WARNING). Project-wide exceptions are SKIPPED_CHECKS
(passed as --ignore-test), each with its reason; exceptions scoped to some objects are EXPECTED_FINDINGS, each
with its reason, and each must still occur, so the entry goes when the finding is fixed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CHARTS, ENVIRONMENTS, PLATFORM, PLATFORM_VALUES, VERSIONS, helm_template, parse_manifests

from tests.harness.proc import run

# kube-score's grades: 1 CRITICAL, 5 WARNING, 7 ALMOST_OK, 10 ALL_OK.
GRADE_OK = 10
KUBE_MINOR = ".".join(VERSIONS["KUBERNETES_VERSION"].split(".")[:2])
OPTIONAL_CHECKS = ("container-seccomp-profile", "container-ports-check")
# The kinds of the app charts' renders that kube-score has checks for (NetworkPolicy: the platform chart's, the
# app charts' own are off in these renders).
SCORED_KINDS = {"Deployment", "Job", "Pod", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                "NetworkPolicy"}  # fmt: skip

SKIPPED_CHECKS = {
    "container-image-pull-policy": (
        "pullPolicy Always (checkov's CKV_K8S_15, skipped for the same reason): IfNotPresent with immutable tags "
        "or digests is the intended policy; Always would make every pod start depend on the registry"
    ),
    "container-security-context-user-group-id": (
        "UID/GID above 10000 (checkov's CKV_K8S_40, skipped for the same reason): the images run as UID 101 "
        "(nginx) and 33 (www-data of PHP-FPM), which their file ownership depends on; runAsNonRoot and drop ALL "
        "already rule out root"
    ),
}

# (check, kube-score object name, environments) -> reason.
EXPECTED_FINDINGS = {
    ("container-ephemeral-storage-request-and-limit", "Deployment/apps/v1/threetier/frontend", ENVIRONMENTS): (
        "the nginx-prometheus-exporter sidecar writes no file and has no ephemeral-storage bounds of its own: "
        "nginx's limit is the pod's (the kubelet sums the containers' limits) and is sized for both containers' "
        "logs (charts/frontend/values.yaml, resources)"
    ),
    ("deployment-replicas", "Deployment/apps/v1/threetier/frontend", ("local",)): (
        "the local inventory runs one replica on a one-node cluster; dev, staging and prod run two or more"
    ),
    ("deployment-replicas", "Deployment/apps/v1/threetier/backend", ("local",)): (
        "the local inventory runs one replica on a one-node cluster; dev, staging and prod run two or more"
    ),
    ("networkpolicy-targets-pod", "NetworkPolicy/networking.k8s.io/v1/ingress-nginx/threetier-controller",
     ENVIRONMENTS): (
        "the platform chart's policy for the ingress controller selects the pods of the upstream ingress-nginx "
        "release, which is not rendered from this repository's charts"
    ),
    ("networkpolicy-targets-pod", "NetworkPolicy/networking.k8s.io/v1/threetier-monitoring/threetier-exporter",
     ENVIRONMENTS): (
        "the platform chart's policy for the metrics exporters selects pods of the kube-prometheus-stack release "
        "the monitoring role installs, which is not rendered from this repository's charts"
    ),
}  # fmt: skip


def kube_score_binary() -> str:
    """kube-score from PATH, else from the project cache; missing is a failure."""
    found = shutil.which("kube-score")
    cache = Path(os.environ.get("THREETIER_CACHE", Path.home() / ".cache" / "threetier-k8s"))
    fallback = cache / "bin" / "kube-score"
    if found:
        return found
    if fallback.exists():
        return str(fallback)
    pytest.fail(f"kube-score is neither on PATH nor at {fallback}: run `make setup` (scripts/build-go-tools.sh)",
                pytrace=False)  # fmt: skip


@pytest.fixture(scope="module")
def scores(rendered, helm_bins: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    """kube-score's JSON report (v2) of each environment: the platform chart and both app charts together."""
    directory = tmp_path_factory.mktemp("kube-score")
    platform = parse_manifests(helm_template(helm_bins["helm"], PLATFORM, [PLATFORM_VALUES], namespace="default"))
    (directory / "platform.yaml").write_text(yaml.safe_dump_all(platform), encoding="utf-8")
    binary = kube_score_binary()
    reports = {}
    for environment in ENVIRONMENTS:
        files = [directory / "platform.yaml"]
        for chart in CHARTS:
            files.append(directory / f"{environment}-{chart}.yaml")
            files[-1].write_text(yaml.safe_dump_all(rendered("helm", chart, environment).docs), encoding="utf-8")
        cmd = [binary, "score", "--kubernetes-version", KUBE_MINOR, "--output-format", "json", "--color", "never"]
        for check in OPTIONAL_CHECKS:
            cmd += ["--enable-optional-test", check]
        for check in sorted(SKIPPED_CHECKS):
            cmd += ["--ignore-test", check]
        # Exit 1 means "a CRITICAL finding": the report says which, and the tests below judge it.
        proc = run([*cmd, *files], timeout=120, check=False)
        assert proc.returncode in (0, 1) and proc.stdout.startswith("["), (
            f"kube-score failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
        )
        reports[environment] = json.loads(proc.stdout)
    return reports


def findings(scores: dict[str, list]) -> dict[tuple[str, str], set[str]]:
    """(check, object) -> the environments where kube-score graded that check of that object below OK."""
    found: dict[tuple[str, str], set[str]] = {}
    for environment, report in scores.items():
        for obj in report:
            for check in obj["checks"]:
                if not check["skipped"] and check["grade"] < GRADE_OK:
                    found.setdefault((check["check"]["id"], obj["object_name"]), set()).add(environment)
    return found


def test_every_rendered_object_is_scored(scores: dict[str, list], rendered) -> None:
    """Every object of a kind kube-score has checks for is in its report (it ignores ConfigMaps, CRDs and such)."""
    kinds = set()
    for environment, report in scores.items():
        names = {obj["object_name"] for obj in report}
        docs = [d for chart in CHARTS for d in rendered("helm", chart, environment).docs if d["kind"] in SCORED_KINDS]
        kinds |= {d["kind"] for d in docs}
        for doc in docs:
            meta = doc["metadata"]
            name = f"{doc['kind']}/{doc['apiVersion']}/{meta['namespace']}/{meta['name']}"
            assert name in names, f"{environment}: kube-score did not score {name}"
        assert any(obj["type_meta"]["kind"] == "NetworkPolicy" for obj in report), "the platform chart was not scored"
        checked = {c["check"]["id"] for obj in report for c in obj["checks"] if not c["skipped"]}
        # The pod, NetworkPolicy and Service checks ran: the scan looked at more than labels and API versions.
        assert {"container-resources", "pod-networkpolicy", "networkpolicy-targets-pod", "service-targets-pod",
                "pod-probes", *OPTIONAL_CHECKS} <= checked, sorted(checked)  # fmt: skip
    assert kinds == SCORED_KINDS - {"NetworkPolicy"}, f"the app charts no longer render {SCORED_KINDS - kinds}"


def test_no_unexplained_findings(scores: dict[str, list]) -> None:
    expected = {(check, name): set(envs) for check, name, envs in EXPECTED_FINDINGS}
    unexplained = sorted(
        f"{check} {name} in {sorted(envs - expected.get((check, name), set()))}"
        for (check, name), envs in findings(scores).items()
        if envs - expected.get((check, name), set())
    )
    assert unexplained == [], "fix these or list them in EXPECTED_FINDINGS with the reason"


def test_expected_findings_still_occur(scores: dict[str, list]) -> None:
    found = findings(scores)
    stale = sorted(
        f"{check} {name} in {sorted(set(envs) - found.get((check, name), set()))}"
        for check, name, envs in EXPECTED_FINDINGS
        if set(envs) - found.get((check, name), set())
    )
    assert stale == [], "these exceptions no longer occur: remove them from EXPECTED_FINDINGS"


def test_exceptions_give_reasons() -> None:
    for key, reason in [*SKIPPED_CHECKS.items(), *EXPECTED_FINDINGS.items()]:
        assert len(reason) > 60, key


def test_scan_finds_a_pod_without_bounds(helm_bins: dict[str, str], tmp_path: Path) -> None:
    """The gate can fail: a container without resources is a CRITICAL finding of this very invocation."""
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unbounded", "namespace": "threetier"},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0.0"}]},
    }  # fmt: skip
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod), encoding="utf-8")
    proc = run([kube_score_binary(), "score", "--output-format", "json", str(path)], timeout=60, check=False)
    assert proc.returncode == 1, proc.stdout[-2000:]
    report = json.loads(proc.stdout)
    assert findings({"probe": report}).get(("container-resources", "Pod/v1/threetier/unbounded")) == {"probe"}
