"""Judge a vulnerability scanner's report against security/policy.yml: one gate for every scanner.

pip-audit (tests/audit), npm audit (tests/audit) and Trivy (.github/workflows/image-scan.yml) each write
a JSON report in their own shape; this reads it into findings (advisory ID and aliases, package, version,
severity, whether a fixed version exists), sorts every finding into failing, accepted or reported, and fails
on what security/policy.yml says fails. A report that shows the scanner could not look a package up (pip-audit's
"skip_reason", npm's error object) is not a clean result: it is refused as "not audited".

    scripts/scan_policy.py check --scanner trivy --label frontend trivy-frontend.json
        exit 0: nothing fails the policy; 1: a finding or an acceptance fails it; 2: the report is not an audit
    scripts/scan_policy.py validate
        exit 1 when an accepted entry is malformed, expired or longer than max_acceptance_days
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "security" / "policy.yml"
SCANNERS = ("pip-audit", "npm", "trivy")
SEVERITIES = ("low", "medium", "high", "critical")
# How each scanner spells a severity on the common scale; None: the scanner gave no usable severity.
SEVERITY_NAMES: dict[str, str | None] = {
    "info": "low", "low": "low", "moderate": "medium", "medium": "medium", "high": "high", "critical": "critical",
    "unknown": None, "": None,
}  # fmt: skip
MIN_REASON = 40


class NotAudited(Exception):
    """The report shows that the scanner did not look some packages up (service unreachable, package unknown)."""


class PolicyError(Exception):
    """security/policy.yml is malformed."""


@dataclass(frozen=True)
class Finding:
    scanner: str
    id: str
    package: str
    version: str
    severity: str | None
    fixed: bool
    title: str = ""
    aliases: tuple[str, ...] = ()

    def ids(self) -> set[str]:
        return {self.id.upper(), *(a.upper() for a in self.aliases)}

    def describe(self) -> str:
        severity = self.severity or "no severity"
        fix = "fix available" if self.fixed else "no fix"
        title = f": {self.title}" if self.title else ""
        return f"{self.id} in {self.package} {self.version} ({severity}, {fix}){title}"


@dataclass(frozen=True)
class Acceptance:
    id: str
    package: str
    scanner: str
    reason: str
    expires: dt.date

    def matches(self, finding: Finding) -> bool:
        return (
            self.scanner == finding.scanner
            and normalize(self.package) == normalize(finding.package)
            and self.id.upper() in finding.ids()
        )


@dataclass(frozen=True)
class Policy:
    fail_on: frozenset[str]
    unknown_severity_fails: bool
    image_unfixed_fails: bool
    max_acceptance_days: int
    accepted: tuple[Acceptance, ...]


@dataclass
class Verdict:
    failing: list[Finding] = field(default_factory=list)
    accepted: list[tuple[Finding, Acceptance]] = field(default_factory=list)
    reported: list[Finding] = field(default_factory=list)

    def report(self, label: str) -> str:
        counts = f"{len(self.failing)} failing, {len(self.accepted)} accepted, {len(self.reported)} reported"
        lines = [f"{label}: {counts}"]
        lines += [f"  FAIL     {f.describe()}" for f in self.failing]
        lines += [f"  accepted {f.describe()} until {a.expires}: {a.reason}" for f, a in self.accepted]
        lines += [f"  reported {f.describe()}" for f in self.reported]
        return "\n".join(lines)


def normalize(package: str) -> str:
    """Package names compare as PEP 503 normalizes them (npm names are lowercase already)."""
    return re.sub(r"[-_.]+", "-", package).lower()


def load_policy(path: Path = POLICY) -> Policy:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: not a mapping")
    fail_on = data.get("fail_on")
    if not isinstance(fail_on, list) or not fail_on or not set(fail_on) <= set(SEVERITIES):
        raise PolicyError(f"{path}: fail_on must be a non-empty list of {SEVERITIES}, got {fail_on!r}")
    for key in ("unknown_severity_fails", "image_unfixed_fails"):
        if not isinstance(data.get(key), bool):
            raise PolicyError(f"{path}: {key} must be true or false")
    days = data.get("max_acceptance_days")
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise PolicyError(f"{path}: max_acceptance_days must be a positive integer")
    entries = data.get("accepted")
    if not isinstance(entries, list):
        raise PolicyError(f"{path}: accepted must be a list (empty: [])")
    accepted = []
    for index, entry in enumerate(entries):
        where = f"{path}: accepted[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"id", "package", "scanner", "reason", "expires"}:
            raise PolicyError(f"{where} must have exactly id, package, scanner, reason and expires")
        if entry["scanner"] not in SCANNERS:
            raise PolicyError(f"{where}: scanner must be one of {SCANNERS}")
        if not isinstance(entry["expires"], dt.date):
            raise PolicyError(f"{where}: expires must be a date, YYYY-MM-DD")
        if len(str(entry["reason"]).strip()) < MIN_REASON:
            raise PolicyError(f"{where}: the reason must say why, in {MIN_REASON} characters or more")
        accepted.append(
            Acceptance(str(entry["id"]), str(entry["package"]), entry["scanner"], str(entry["reason"]).strip(),
                       entry["expires"])
        )  # fmt: skip
    return Policy(
        frozenset(fail_on), data["unknown_severity_fails"], data["image_unfixed_fails"], days, tuple(accepted)
    )


def acceptance_problems(policy: Policy, today: dt.date) -> list[str]:
    """Acceptances that no longer hold: past their expiry, or set further ahead than the policy allows."""
    problems = []
    for a in policy.accepted:
        if a.expires < today:
            problems.append(f"{a.id} in {a.package} ({a.scanner}): the acceptance expired on {a.expires}")
        elif (a.expires - today).days > policy.max_acceptance_days:
            problems.append(
                f"{a.id} in {a.package} ({a.scanner}): expires {a.expires}, more than "
                f"{policy.max_acceptance_days} days ahead"
            )
    return problems


def severity_of(name: Any) -> str | None:
    key = str(name or "").lower()
    if key not in SEVERITY_NAMES:
        raise ValueError(f"unknown severity {name!r}")
    return SEVERITY_NAMES[key]


def pip_audit_findings(report: dict[str, Any]) -> list[Finding]:
    """pip-audit --format json: a dependency either has "vulns" or a "skip_reason" (it was not looked up)."""
    dependencies = report.get("dependencies")
    if not isinstance(dependencies, list) or not dependencies:
        raise NotAudited(f"pip-audit reported no dependencies: {json.dumps(report)[:300]}")
    skipped = [d for d in dependencies if "skip_reason" in d]
    if skipped:
        raise NotAudited(
            f"pip-audit could not look up {len(skipped)} of {len(dependencies)} packages, e.g. "
            f"{skipped[0]['skip_reason']!r} (the pypi service reads https://pypi.org/pypi/NAME/VERSION/json, the osv "
            "service api.osv.dev)"
        )
    findings = []
    for dep in dependencies:
        for vuln in dep["vulns"]:
            findings.append(
                Finding("pip-audit", vuln["id"], dep["name"], dep["version"], None, bool(vuln.get("fix_versions")),
                        aliases=tuple(vuln.get("aliases", ())))
            )  # fmt: skip
    return findings


def npm_findings(report: dict[str, Any]) -> list[Finding]:
    """npm audit --json (auditReportVersion 2): advisories are the object entries of each package's "via".

    A string in "via" names the dependency an advisory comes through; that advisory is reported once, at the
    package it is in.
    """
    if "error" in report or report.get("auditReportVersion") != 2:
        raise NotAudited(f"npm audit returned no report: {json.dumps(report)[:400]}")
    total = report.get("metadata", {}).get("dependencies", {}).get("total", 0)
    if not total:
        raise NotAudited("npm audit looked up no dependencies (an empty or unreadable lock file?)")
    findings: dict[tuple[str, str], Finding] = {}
    for vulnerable in report.get("vulnerabilities", {}).values():
        fixed = bool(vulnerable.get("fixAvailable"))
        for via in vulnerable.get("via", []):
            if not isinstance(via, dict):
                continue
            url = str(via.get("url", ""))
            advisory = url.rstrip("/").rsplit("/", 1)[-1] if "/advisories/" in url else str(via.get("source"))
            finding = Finding("npm", advisory, via["name"], str(via.get("range", "")), severity_of(via.get("severity")),
                              fixed, str(via.get("title", "")))  # fmt: skip
            findings[(finding.id, finding.package)] = finding
    return sorted(findings.values(), key=lambda f: (f.package, f.id))


def trivy_findings(report: dict[str, Any]) -> list[Finding]:
    """trivy image|sbom --format json: Results[].Vulnerabilities[]; FixedVersion is empty when nothing fixes it."""
    if report.get("SchemaVersion") != 2 or "Results" not in report:
        raise NotAudited(f"not a Trivy JSON report (SchemaVersion 2): {json.dumps(report)[:300]}")
    findings = []
    for result in report.get("Results") or []:
        for v in result.get("Vulnerabilities") or []:
            findings.append(
                Finding("trivy", v["VulnerabilityID"], v["PkgName"], v.get("InstalledVersion", ""),
                        severity_of(v.get("Severity")), bool(v.get("FixedVersion")), v.get("Title", ""))
            )  # fmt: skip
    return findings


PARSERS = {"pip-audit": pip_audit_findings, "npm": npm_findings, "trivy": trivy_findings}


def fails(finding: Finding, policy: Policy) -> bool:
    """Whether an unaccepted finding fails the build under ``policy``."""
    if finding.severity is None:
        return policy.unknown_severity_fails
    if finding.severity not in policy.fail_on:
        return False
    # An image finding nothing fixes yet is printed, unless the policy says otherwise.
    return finding.fixed or finding.scanner != "trivy" or policy.image_unfixed_fails


def judge(findings: Iterable[Finding], policy: Policy, today: dt.date) -> Verdict:
    """Sort findings: accepted (a valid acceptance matches), failing (at or above the threshold), reported.

    An acceptance past its expiry, or set further ahead than max_acceptance_days, accepts nothing.
    """
    verdict = Verdict()
    valid = [a for a in policy.accepted if 0 <= (a.expires - today).days <= policy.max_acceptance_days]
    for finding in findings:
        acceptance = next((a for a in valid if a.matches(finding)), None)
        if acceptance is not None:
            verdict.accepted.append((finding, acceptance))
        elif fails(finding, policy):
            verdict.failing.append(finding)
        else:
            verdict.reported.append(finding)
    return verdict


def unused_acceptances(policy: Policy, scanner: str, findings: Iterable[Finding]) -> list[Acceptance]:
    """Acceptances of ``scanner`` that match none of its findings: the fix landed, the entry must go."""
    found = list(findings)
    return [a for a in policy.accepted if a.scanner == scanner and not any(a.matches(f) for f in found)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", type=Path, default=POLICY)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="judge one JSON report")
    check.add_argument("--scanner", choices=SCANNERS, required=True)
    check.add_argument("--label", help="what was scanned (printed)")
    check.add_argument("report", type=Path)
    sub.add_parser("validate", help="check the accepted entries")
    args = parser.parse_args(argv)
    today = dt.datetime.now(dt.UTC).date()
    try:
        policy = load_policy(args.policy)
    except PolicyError as exc:
        print(f"invalid policy: {exc}", file=sys.stderr)
        return 1
    problems = acceptance_problems(policy, today)
    for problem in problems:
        print(f"POLICY {problem}", file=sys.stderr)
    if args.command == "validate":
        print(f"{args.policy}: {len(policy.accepted)} accepted findings, {len(problems)} problems")
        return 1 if problems else 0
    try:
        findings = PARSERS[args.scanner](json.loads(args.report.read_text(encoding="utf-8")))
    except (NotAudited, json.JSONDecodeError) as exc:
        print(f"{args.label or args.report}: NOT AUDITED: {exc}", file=sys.stderr)
        return 2
    verdict = judge(findings, policy, today)
    print(verdict.report(args.label or str(args.report)))
    return 1 if verdict.failing or problems else 0


if __name__ == "__main__":
    sys.exit(main())
