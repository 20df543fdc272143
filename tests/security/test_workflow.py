"""The users' scanning workflow (.github/workflows/image-scan.yml): it cannot run here, so its references are checked.

No GitHub, no Docker and no vulnerability database here: what can be proven offline is that the workflow is
well-formed, says it has not run, points at files, tool pins and a Makefile target that exist, and leaves every
verdict to the one gate (scripts/scan_policy.py with security/policy.yml) instead of a threshold of its own.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "image-scan.yml"
# A repository path a step names: a known top-level folder, then anything up to a quote, space or end.
PATH_RE = re.compile(r"\b((?:scripts|tests|examples|requirements|tools|security)/[\w./-]*\w)")


@cache
def workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))


def steps(job: str) -> list[dict[str, Any]]:
    return workflow()["jobs"][job]["steps"]


def scripts_of(job: str) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


def versions() -> dict[str, str]:
    lines = (ROOT / "tools" / "versions.env").read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z0-9_]+=", line))


def test_structure() -> None:
    data = workflow()
    assert set(data) == {"name", "on", "permissions", "jobs"}, "quote the `on` key: YAML 1.1 reads a bare on as true"
    assert data["permissions"] == {"contents": "read"}
    assert set(data["on"]) >= {"push", "pull_request", "schedule"}
    assert set(data["jobs"]) == {"audit", "images"}
    for name, job in data["jobs"].items():
        assert job["runs-on"].startswith("ubuntu-") and 0 < job["timeout-minutes"] <= 60, name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{name}: a step runs a command or uses an action: {step}"
            if "uses" in step:
                # A version tag, never a moving branch (the header asks users to pin commit SHAs).
                assert re.fullmatch(r"actions/[\w-]+@v\d+", step["uses"]), step["uses"]


def test_header_says_it_has_not_run() -> None:
    header = WORKFLOW.read_text(encoding="utf-8").split("\nname:", 1)[0]
    assert "THIS WORKFLOW HAS NOT RUN" in header
    assert all(reason in header for reason in ("no GitHub", "no Docker", "vulnerability database")), header


def test_named_paths_exist() -> None:
    text = "\n".join(scripts_of(job) for job in workflow()["jobs"])
    matrix = workflow()["jobs"]["images"]["strategy"]["matrix"]["image"]
    named = set(PATH_RE.findall(text.replace("${{ matrix.image }}", "{image}")))
    assert {"scripts/scan_policy.py", "tests/audit", "requirements/constraints.txt", "tools/versions.env"} <= named
    for path in sorted(named):
        for image in matrix if "{image}" in path else [None]:
            concrete = path.format(image=image) if image else path
            assert (ROOT / concrete).exists(), f"the workflow names {concrete}, which does not exist"


def test_every_image_has_a_dockerfile_that_takes_the_version() -> None:
    for image in workflow()["jobs"]["images"]["strategy"]["matrix"]["image"]:
        dockerfile = ROOT / "examples" / image / "Dockerfile"
        assert re.search(r"^ARG APP_VERSION=", dockerfile.read_text(encoding="utf-8"), re.M), dockerfile


def test_audit_job_runs_what_make_audit_runs() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    target = re.search(r"^audit:.*\n\t(.+)$", makefile, re.M)
    assert target, "the Makefile has no audit target"
    suite = re.search(r"python -m pytest (\S+)", target.group(1))
    assert suite and f"python -m pytest {suite.group(1)}" in scripts_of("audit")
    python = [
        s["with"]["python-version"]
        for job in workflow()["jobs"]
        for s in steps(job)
        if "setup-python" in s.get("uses", "")
    ]
    assert python and set(python) == {versions()["PYTHON_VERSION"]}
    node = next(s["with"]["node-version"] for s in steps("audit") if "setup-node" in s.get("uses", ""))
    engines = json.loads((ROOT / "examples" / "frontend" / "package.json").read_text(encoding="utf-8"))["engines"]
    floor = tuple(int(p) for p in engines["node"].removeprefix(">=").split(".")[:2])
    assert tuple(int(p) for p in node.split(".")[:2]) >= floor, f"node {node} is below the frontend's {engines}"
    # pip-audit at the pin of requirements/constraints.txt (the same version `make setup` installs).
    assert "-c requirements/constraints.txt pip-audit" in scripts_of("audit")
    assert re.search(r"^pip_audit==", (ROOT / "requirements" / "constraints.txt").read_text(), re.M)


def test_scanners_are_pinned_in_versions_env() -> None:
    text = scripts_of("images")
    pins = versions()
    for variable, module in (("TRIVY_VERSION", "github.com/aquasecurity/trivy/cmd/trivy"),
                             ("SYFT_VERSION", "github.com/anchore/syft/cmd/syft")):  # fmt: skip
        assert re.fullmatch(r"v\d+\.\d+\.\d+", pins[variable]), variable
        assert f'go install "{module}@${{{variable}}}"' in text
    assert "grep -E '^(TRIVY|SYFT)_VERSION=' tools/versions.env" in text


def test_every_report_is_judged_by_the_policy_gate() -> None:
    """Trivy gets no threshold of its own; both reports of each image go through scan_policy.py."""
    text = scripts_of("images")
    assert not re.search(r"--(severity|exit-code|ignore-unfixed|ignorefile)\b", text), "the threshold is policy.yml's"
    reports = set(re.findall(r'--output "(trivy-[\w-]+-\$\{\{ matrix\.image \}\}\.json)"', text))
    assert reports == {"trivy-image-${{ matrix.image }}.json", "trivy-sbom-${{ matrix.image }}.json"}
    for report in reports:
        assert re.search(rf'scan_policy\.py check --scanner trivy [^\n]*\\\n\s+"{re.escape(report)}"', text), report
    assert "python scripts/scan_policy.py validate" in text
    assert re.search(r"trivy sbom .*\"sbom-\$\{\{ matrix\.image \}\}\.spdx\.json\"", text)
    upload = next(s for s in steps("images") if "upload-artifact" in s.get("uses", ""))
    assert upload["if"] == "always()" and "sbom-${{ matrix.image }}.spdx.json" in upload["with"]["path"]
