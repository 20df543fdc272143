"""The vulnerability gate itself (scripts/scan_policy.py) and the policy file it reads (security/policy.yml).

Offline: each scanner's JSON report shape (pip-audit --format json, npm audit --json report version 2, Trivy
--format json schema 2) is written here with made-up advisories, and the gate must fail, accept or report each
finding as docs/security.md says. The audits themselves run in test_dependency_audit.py.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.scan_policy import (
    POLICY,
    NotAudited,
    PolicyError,
    acceptance_problems,
    judge,
    load_policy,
    npm_findings,
    pip_audit_findings,
    trivy_findings,
    unused_acceptances,
)
from tests.harness.proc import run

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 12, 1)


def policy_file(tmp_path: Path, accepted: list[dict[str, Any]] | None = None, **overrides: Any) -> Path:
    """security/policy.yml with some keys replaced and the given accepted entries."""
    data = yaml.safe_load(POLICY.read_text(encoding="utf-8"))
    data.update(overrides, accepted=accepted or [])
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def acceptance(**fields: Any) -> dict[str, Any]:
    entry = {
        "id": "GHSA-aaaa-bbbb-cccc", "package": "vite", "scanner": "npm", "expires": TODAY + dt.timedelta(days=30),
        "reason": "the dev server is never exposed: vite only builds the bundle in CI and in the image build",
    }  # fmt: skip
    return {**entry, **fields}


def pip_report(vulns: list[dict[str, Any]], name: str = "jinja2", skip: bool = False) -> dict[str, Any]:
    dep: dict[str, Any] = (
        {"name": name, "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} (3.1.2)"}
        if skip
        else {"name": name, "version": "3.1.2", "vulns": vulns}
    )
    return {"dependencies": [{"name": "pyyaml", "version": "6.0.4", "vulns": []}, dep], "fixes": []}


def npm_report(severity: str, fix: bool = True) -> dict[str, Any]:
    advisory = {
        "source": 1100001, "name": "vite", "dependency": "vite", "title": "Dev server file read",
        "url": "https://github.com/advisories/GHSA-aaaa-bbbb-cccc", "severity": severity, "range": "<8.3.9",
    }  # fmt: skip
    return {
        "auditReportVersion": 2,
        "vulnerabilities": {
            "vite": {"name": "vite", "severity": severity, "isDirect": True, "via": [advisory], "effects": ["vitest"],
                     "range": "<8.3.9", "nodes": ["node_modules/vite"], "fixAvailable": fix},
            "vitest": {"name": "vitest", "severity": severity, "isDirect": True, "via": ["vite"], "effects": [],
                       "range": "4.1.12", "nodes": ["node_modules/vitest"], "fixAvailable": fix},
        },
        "metadata": {"vulnerabilities": {severity: 2, "total": 2}, "dependencies": {"prod": 4, "dev": 60, "total": 64}},
    }  # fmt: skip


def trivy_report(severity: str, fixed_version: str) -> dict[str, Any]:
    vuln = {"VulnerabilityID": "CVE-2026-0001", "PkgName": "libssl3t64", "InstalledVersion": "3.5.1-1",
            "FixedVersion": fixed_version, "Severity": severity, "Title": "openssl: made-up flaw"}  # fmt: skip
    return {
        "SchemaVersion": 2,
        "ArtifactName": "frontend:ci",
        "Results": [{"Target": "debian 13", "Vulnerabilities": [vuln]}],
    }


def test_the_committed_policy_is_valid_today() -> None:
    policy = load_policy()
    assert policy.fail_on and policy.fail_on <= {"low", "medium", "high", "critical"}
    assert acceptance_problems(policy, dt.datetime.now(dt.UTC).date()) == []


def test_pip_audit_findings_fail_whatever_their_severity(tmp_path: Path) -> None:
    """pip-audit reports no severity: with unknown_severity_fails, any advisory fails."""
    report = pip_report([{"id": "PYSEC-2026-1", "fix_versions": ["3.1.3"], "aliases": ["CVE-2026-1111"]}])
    findings = pip_audit_findings(report)
    assert [(f.id, f.package, f.severity) for f in findings] == [("PYSEC-2026-1", "jinja2", None)]
    assert judge(findings, load_policy(), TODAY).failing == findings
    lenient = load_policy(policy_file(tmp_path, unknown_severity_fails=False))
    assert judge(findings, lenient, TODAY).reported == findings


def test_an_alias_accepts_a_finding(tmp_path: Path) -> None:
    report = pip_report([{"id": "PYSEC-2026-1", "fix_versions": [], "aliases": ["GHSA-1111-2222-3333"]}])
    entry = acceptance(id="GHSA-1111-2222-3333", package="Jinja2", scanner="pip-audit")
    verdict = judge(pip_audit_findings(report), load_policy(policy_file(tmp_path, [entry])), TODAY)
    assert not verdict.failing and len(verdict.accepted) == 1


def test_a_package_pip_audit_did_not_look_up_is_not_a_pass() -> None:
    with pytest.raises(NotAudited, match="could not look up 1 of 2"):
        pip_audit_findings(pip_report([], skip=True))


@pytest.mark.parametrize(
    ("severity", "fails"), [("critical", True), ("high", True), ("moderate", False), ("low", False)]
)
def test_npm_threshold(severity: str, fails: bool) -> None:
    findings = npm_findings(npm_report(severity))
    # The advisory is reported once, at the package it is in (vitest only pulls vite in).
    assert [(f.id, f.package) for f in findings] == [("GHSA-aaaa-bbbb-cccc", "vite")]
    verdict = judge(findings, load_policy(), TODAY)
    assert bool(verdict.failing) is fails and bool(verdict.reported) is not fails


def test_an_npm_error_object_is_not_a_pass() -> None:
    """What npm audit prints when the registry refuses the bulk advisory request (seen here: 405)."""
    error = {"message": "405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk",
             "statusCode": 405, "error": {"summary": "", "detail": ""}}  # fmt: skip
    with pytest.raises(NotAudited, match="405"):
        npm_findings(error)


def test_an_acceptance_holds_until_it_expires(tmp_path: Path) -> None:
    findings = npm_findings(npm_report("high"))
    entry = acceptance(expires=TODAY)
    policy = load_policy(policy_file(tmp_path, [entry]))
    assert judge(findings, policy, TODAY).accepted and not judge(findings, policy, TODAY).failing
    tomorrow = TODAY + dt.timedelta(days=1)
    assert judge(findings, policy, tomorrow).failing == findings
    assert acceptance_problems(policy, tomorrow) == [
        f"GHSA-aaaa-bbbb-cccc in vite (npm): the acceptance expired on {TODAY}"
    ]


def test_an_acceptance_is_for_one_package_and_one_scanner(tmp_path: Path) -> None:
    findings = npm_findings(npm_report("high"))
    for entry in (acceptance(package="vitest"), acceptance(scanner="trivy")):
        assert judge(findings, load_policy(policy_file(tmp_path, [entry])), TODAY).failing == findings


def test_an_acceptance_cannot_run_longer_than_the_policy_allows(tmp_path: Path) -> None:
    days = load_policy().max_acceptance_days
    policy = load_policy(policy_file(tmp_path, [acceptance(expires=TODAY + dt.timedelta(days=days + 1))]))
    assert "more than" in acceptance_problems(policy, TODAY)[0]
    findings = npm_findings(npm_report("high"))
    assert judge(findings, policy, TODAY).failing == findings


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("reason", "not exploitable", "40 characters"), ("scanner", "grype", "scanner must be"),
     ("expires", "soon", "must be a date")],
)  # fmt: skip
def test_malformed_acceptances_are_refused(tmp_path: Path, field: str, value: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policy(policy_file(tmp_path, [acceptance(**{field: value})]))


def test_an_acceptance_nothing_matches_is_reported(tmp_path: Path) -> None:
    policy = load_policy(policy_file(tmp_path, [acceptance()]))
    assert unused_acceptances(policy, "npm", []) == list(policy.accepted)
    assert unused_acceptances(policy, "npm", npm_findings(npm_report("high"))) == []


@pytest.mark.parametrize(("fixed_version", "fails"), [("3.5.1-1+deb13u1", True), ("", False)])
def test_image_findings_fail_when_a_fix_exists(fixed_version: str, fails: bool, tmp_path: Path) -> None:
    findings = trivy_findings(trivy_report("HIGH", fixed_version))
    assert bool(judge(findings, load_policy(), TODAY).failing) is fails
    strict = load_policy(policy_file(tmp_path, image_unfixed_fails=True))
    assert judge(findings, strict, TODAY).failing == findings


def test_the_command_line_gate_exit_codes(tmp_path: Path) -> None:
    """What the image workflow runs: exit 1 on a failing finding, 0 below the threshold, 2 when not audited."""
    script = [sys.executable, str(ROOT / "scripts" / "scan_policy.py")]
    cases = {"fail.json": (trivy_report("CRITICAL", "1.2"), 1), "low.json": (trivy_report("LOW", "1.2"), 0),
             "broken.json": ({"error": "no database"}, 2)}  # fmt: skip
    for name, (report, code) in cases.items():
        (tmp_path / name).write_text(json.dumps(report), encoding="utf-8")
        proc = run([*script, "check", "--scanner", "trivy", "--label", name, tmp_path / name], check=False)
        assert proc.returncode == code, f"{name}: {proc.stdout}{proc.stderr}"
    assert "FAIL     CVE-2026-0001 in libssl3t64" in run([*script, "check", "--scanner", "trivy",
                                                         tmp_path / "fail.json"], check=False).stdout  # fmt: skip
    expired = policy_file(tmp_path, [acceptance(expires=dt.date(2020, 1, 1))])
    proc = run([*script, "--policy", expired, "validate"], check=False)
    assert proc.returncode == 1 and "expired on 2020-01-01" in proc.stderr, proc.stderr
