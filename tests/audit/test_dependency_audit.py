"""Dependency audits: every pinned Python set (pip-audit) and the example frontend's lock file (npm audit).

Each report is judged by scripts/scan_policy.py against security/policy.yml, the gate the image workflow uses
too: a finding at or above the threshold fails unless an unexpired entry accepts it, and an accepted entry that
matches nothing fails as well (the fix landed: remove it).

Both audits ask a vulnerability service: pip-audit PyPI's per-release JSON API (`--vulnerability-service
pypi`; OSV, its other service, is api.osv.dev), npm audit the registry's bulk advisory endpoint. When the
service does not answer, or answers without looking a package up (pip-audit's "skip_reason"), the test skips
with what the service said. The project's skip policy (tests/conftest.py) turns that skip into a failed run
unless THREETIER_ALLOW_SKIP names the `audit` tier: an audit that did not happen is never a pass.
This tier is `make audit`, not part of `make test`: on the project's machines neither service gives a verdict
(docs/security.md), and a tier that can only skip there would keep CI red without telling anyone anything.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from scripts.scan_policy import Finding, NotAudited, judge, load_policy, npm_findings, pip_audit_findings
from scripts.scan_policy import unused_acceptances as unused
from tests.harness.proc import run

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("THREETIER_CACHE", Path.home() / ".cache" / "threetier-k8s"))
FRONTEND = ROOT / "examples" / "frontend"

# Pinned sets pip-audit checks, each with what it is.
AUDITED = {
    "requirements/constraints.txt": "every package of the project's virtualenv, and what the EE installs",
    "requirements/ee-constraints.txt": "the EE's libraries beyond constraints.txt (ansible-runner and others)",
    "requirements/checkov.txt": "checkov's virtualenv, every package",
    "requirements/runner.txt": "ansible-runner's virtualenv, every package",
    "requirements/nca.txt": "network-config-analyzer itself (its dependencies float: see NOT_AUDITED)",
    "requirements/spilo-image.txt": "Patroni in the e2e tier's Spilo image (the rest of that image is Debian's)",
}
# Requirement files that are not pinned Python sets, with why they are not audited.
NOT_AUDITED = {
    "requirements.txt": "version ranges for the user's own install; the versions installed here and in the EE "
    "are constraints.txt's pins, audited",
    "requirements/dev.txt": "its pins are repeated in constraints.txt (the full set, audited), and it includes "
    "requirements.txt's ranges, which pip-audit cannot audit without resolving them",
    "requirements/apt.txt": "Debian packages of the machine that runs the tests, not Python",
    "requirements/apt-e2e.txt": "Debian packages of the e2e node, not Python; the images' own Debian packages "
    "are Trivy's (.github/workflows/image-scan.yml)",
    "requirements/ee-bindep.txt": "the EE's Debian packages (bindep), not Python",
}  # fmt: skip


def tool(name: str) -> str:
    """A tool of the project's virtualenv (beside the interpreter), else from PATH; missing is a failure."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `make setup` (requirements/dev.txt)", pytrace=False)
    return found


def judged_report(
    scanner: str, proc: subprocess.CompletedProcess[str], findings: Callable[[Any], list[Finding]]
) -> list[Finding] | NotAudited:
    """The findings of a scanner's JSON report, or why there is no verdict (no report, or packages not looked up)."""
    try:
        return findings(json.loads(proc.stdout))
    except json.JSONDecodeError:
        return NotAudited(f"{scanner} exited {proc.returncode} without a report: {proc.stderr.strip()[-600:]}")
    except NotAudited as exc:
        return exc


def pip_audit(requirement: str) -> list[Finding] | NotAudited:
    """pip-audit of one fully pinned file, without resolving (--no-deps) or installing anything (--disable-pip)."""
    proc = run(
        [tool("pip-audit"), "--requirement", ROOT / requirement, "--no-deps", "--disable-pip",
         "--vulnerability-service", "pypi", "--format", "json", "--progress-spinner", "off", "--timeout", "30"],
        timeout=300, check=False,
    )  # fmt: skip
    return judged_report("pip-audit", proc, pip_audit_findings)


@pytest.fixture(scope="module")
def python_audits() -> dict[str, list[Finding] | NotAudited]:
    """Every AUDITED file's findings, the audits run side by side (each waits on PyPI, not on the CPU)."""
    with ThreadPoolExecutor(max_workers=len(AUDITED)) as pool:
        return dict(zip(AUDITED, pool.map(pip_audit, AUDITED), strict=True))


@pytest.fixture(scope="module")
def npm_audit(tmp_path_factory: pytest.TempPathFactory) -> list[Finding] | NotAudited:
    """npm audit of the lock file alone (--package-lock-only: no node_modules, nothing installed), dev included."""
    assert shutil.which("npm"), "npm is required (the machine's Node.js)"
    work = tmp_path_factory.mktemp("npm-audit")
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(FRONTEND / name, work / name)
    env = {**os.environ, "npm_config_cache": str(CACHE / "npm"), "npm_config_update_notifier": "false"}
    # Exit 1 means findings or an error; the JSON report tells which.
    proc = run(["npm", "audit", "--package-lock-only", "--json"], cwd=work, env=env, timeout=180, check=False)
    return judged_report("npm audit", proc, npm_findings)


def audited(result: list[Finding] | NotAudited, what: str) -> list[Finding]:
    if isinstance(result, NotAudited):
        pytest.skip(f"{what} NOT AUDITED, the vulnerability service gave no verdict: {result}")
    return result


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def test_every_requirement_file_is_audited_or_explained() -> None:
    files = {"requirements.txt", *(str(p.relative_to(ROOT)) for p in (ROOT / "requirements").glob("*.txt"))}
    assert files == set(AUDITED) | set(NOT_AUDITED), "list each requirement file in AUDITED or NOT_AUDITED"
    assert not set(AUDITED) & set(NOT_AUDITED)


@pytest.mark.parametrize("requirement", sorted(AUDITED))
def test_python_pins_pass_the_policy(requirement: str, python_audits: dict) -> None:
    findings = audited(python_audits[requirement], f"pip-audit of {requirement}:")
    verdict = judge(findings, load_policy(), today())
    assert not verdict.failing, verdict.report(requirement)


def test_python_acceptances_are_still_needed(python_audits: dict) -> None:
    findings = [f for r, result in python_audits.items() for f in audited(result, f"pip-audit of {r}:")]
    stale = unused(load_policy(), "pip-audit", findings)
    assert not stale, f"security/policy.yml accepts findings pip-audit no longer reports, remove them: {stale}"


def test_frontend_lock_file_passes_the_policy(npm_audit: list[Finding] | NotAudited) -> None:
    findings = audited(npm_audit, "npm audit of examples/frontend/package-lock.json:")
    verdict = judge(findings, load_policy(), today())
    assert not verdict.failing, verdict.report("examples/frontend/package-lock.json")
    assert not unused(load_policy(), "npm", findings), "security/policy.yml accepts npm findings no longer reported"
