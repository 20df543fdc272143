"""Security scan of the rendered manifests with checkov (its own virtualenv), zero failures allowed.

checkov scans the manifests `helm template` produced, with `--framework kubernetes`: `--framework helm`
would need helm on checkov's PATH and, without it, logs "no runners" and exits 0 (a scan that silently
passes). The run must therefore also prove it looked at every object.

Project-wide exceptions are listed in SKIPPED_CHECKS with the reason; exceptions scoped to one object are
`checkov.io/skip<N>` annotations in the chart templates, with their reason inline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import (
    CHARTS,
    ENVIRONMENTS,
    PLATFORM,
    PLATFORM_VALUES,
    Render,
    helm_template,
    parse_manifests,
    pod_templates,
)

Rendered = Callable[[str, str, str], Render]

SKIPPED_CHECKS = {
    "CKV_K8S_40": (
        "high UID: the issue fixes UID 101 (the nginx images' user) and 33 (www-data of the PHP-FPM image); file "
        "ownership in the images depends on them, and runAsNonRoot plus drop ALL already rule out root"
    ),
    "CKV_K8S_43": (
        "image digest: supported through image.digest / nginx.image.digest and set by the inventories that pin "
        "released artifacts; the chart defaults cannot know a digest of an image built later"
    ),
    "CKV_K8S_15": (
        "pullPolicy Always: IfNotPresent with immutable tags or digests is the intended policy; Always would make "
        "every pod start depend on the registry"
    ),
    "CKV_K8S_35": (
        "secrets as env: Laravel reads APP_KEY and DB_* from the environment (12-factor); the Zalando credentials "
        "Secret is consumed key by key with secretKeyRef, never logged"
    ),
    "CKV2_K8S_6": (
        "NetworkPolicy per pod: the rules come from the collection's flow graph at run time (its network_policies "
        "filter, passed to each app chart's networkPolicy and to the platform chart), and a chart's own default "
        "is off, so a standalone install is not cut off before it is given rules"
    ),
}
# Checks the charts suppress per object with checkov.io/skip annotations (the helm test pods' probes).
ANNOTATED_SKIPS = {"CKV_K8S_8", "CKV_K8S_9"}


def checkov_binary() -> str:
    """checkov from PATH, else from its virtualenv in the project cache; missing is a failure."""
    found = shutil.which("checkov")
    cache = Path(os.environ.get("THREETIER_CACHE", Path.home() / ".cache" / "threetier-k8s"))
    fallback = cache / "venv-checkov" / "bin" / "checkov"
    if found:
        return found
    if fallback.exists():
        return str(fallback)
    pytest.fail(
        f"checkov is neither on PATH nor at {fallback}: run `make setup` (requirements/checkov.txt)", pytrace=False
    )


@pytest.fixture(scope="module")
def scan(
    rendered: Rendered, helm_bins: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], int]:
    """Write every environment's render of both app charts, and the platform chart's, and scan them in one run.

    checkov has no check of its own for the platform chart's kinds (Namespace, ResourceQuota, LimitRange,
    NetworkPolicy); they are scanned all the same, so a future check applies to them, and the graph checks
    (a pod without a NetworkPolicy) see the policies.
    """
    directory = tmp_path_factory.mktemp("rendered")
    platform = parse_manifests(helm_template(helm_bins["helm"], PLATFORM, [PLATFORM_VALUES], namespace="default"))
    (directory / "platform.yaml").write_text(yaml.safe_dump_all(platform), encoding="utf-8")
    objects = len(platform)
    for chart in CHARTS:
        for environment in ENVIRONMENTS:
            docs = rendered("helm", chart, environment).docs
            # checkov counts a workload's pod template as a resource of its own.
            objects += len(docs) + sum(1 for d in docs if d["kind"] != "Pod" and pod_templates(d))
            (directory / f"{environment}-{chart}.yaml").write_text(yaml.safe_dump_all(docs), encoding="utf-8")
    cmd = [checkov_binary(), "--framework", "kubernetes", "--directory", str(directory), "--output", "json"]
    cmd += ["--skip-download", "--skip-check", ",".join(sorted(SKIPPED_CHECKS))]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, check=False, env={**os.environ, "LOG_LEVEL": "WARNING"}
    )
    assert proc.stdout.strip(), f"checkov printed no report (exit {proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    kubernetes = [r for r in reports if r.get("check_type") == "kubernetes"]
    assert len(kubernetes) == 1, f"no kubernetes runner ran: {proc.stdout[:500]}"
    return kubernetes[0], objects


def test_scan_covers_every_rendered_object(scan: tuple[dict[str, Any], int]) -> None:
    report, objects = scan
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] == objects
    assert summary["passed"] > 20 * len(CHARTS) * len(ENVIRONMENTS)


def test_scan_has_no_failures(scan: tuple[dict[str, Any], int]) -> None:
    report = scan[0]
    failures = sorted(
        {
            f"{f['check_id']} {f['check_name']}: {f['resource']} ({f['file_path']})"
            for f in report["results"]["failed_checks"]
        }
    )
    assert failures == []


def test_only_justified_checks_are_skipped(scan: tuple[dict[str, Any], int]) -> None:
    report = scan[0]
    skipped = {s["check_id"] for s in report["results"]["skipped_checks"]}
    assert skipped <= ANNOTATED_SKIPS | set(SKIPPED_CHECKS)
    for check_id, reason in SKIPPED_CHECKS.items():
        assert len(reason) > 60, check_id
    annotated = [s for s in report["results"]["skipped_checks"] if s["check_id"] in ANNOTATED_SKIPS]
    assert annotated, "the helm test pods' annotated exceptions were not seen: is checkov reading the annotations?"
    assert all(s["resource"].startswith("Pod.") and s["resource"].endswith("-test") for s in annotated)
