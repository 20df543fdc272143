"""Shared helpers of the observability tier: rendering the charts and running promtool.

The tier needs `helm` and `promtool` on PATH (`make setup` builds both; `. scripts/env.sh` puts them on PATH).
A missing tool fails the tests that need it, with a message naming the tool.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "charts"
HERE = Path(__file__).resolve().parent
MONITORING_API = "monitoring.coreos.com/v1"

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]


def require_tool(name: str) -> str:
    """Return the path of a tool on PATH, or fail the test with the way to get it."""
    path = shutil.which(name)
    assert path, (
        f"{name} is not on PATH: run `make setup` and `. scripts/env.sh` (scripts/build-promtool.sh builds promtool)"
    )
    return path


def run_tool(cmd: list[str], cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run a command without raising; callers assert on the return code and show the output."""
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def pinned_versions() -> dict[str, str]:
    """tools/versions.env as a dict."""
    pairs = (line.split("=", 1) for line in (ROOT / "tools" / "versions.env").read_text().splitlines())
    return {key.strip(): value.strip() for key, *rest in pairs for value in rest if not key.startswith("#")}


def helm_template(
    chart: str, *args: str, release: str | None = None, namespace: str = "threetier", helm: str = "helm"
) -> list[Manifest]:
    """`helm template` a project chart at the pinned Kubernetes version, on top of values/<chart>.yaml.

    values/<chart>.yaml holds the least a chart needs to render (e.g. the backend's existing Secrets).
    `helm` names the client: helm (3.x) or helm4.
    """
    helm = require_tool(helm)
    cmd = [helm, "template", release or chart, str(CHARTS / chart), "--namespace", namespace]
    cmd += ["--kube-version", pinned_versions()["KUBERNETES_VERSION"].lstrip("v")]
    base = HERE / "values" / f"{chart}.yaml"
    if base.is_file():
        cmd += ["--values", str(base)]
    cmd += list(args)
    proc = run_tool(cmd)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="session")
def render() -> Render:
    """Render a chart; `api=True` makes helm report the Prometheus Operator API as served."""

    def _render(chart: str, *sets: str, api: bool = True, values: Path | None = None, **kw: str) -> list[Manifest]:
        args: list[str] = []
        if api:
            args += ["--api-versions", MONITORING_API]
        if values is not None:
            args += ["--values", str(values)]
        for item in sets:
            args += ["--set", item]
        return helm_template(chart, *args, **kw)

    return _render


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    """The manifests of one kind."""
    return [m for m in manifests if m.get("kind") == kind]


def only(manifests: list[Manifest], kind: str) -> Manifest:
    """The single manifest of a kind; fails when there are none or several."""
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(manifests: list[Manifest]) -> Manifest:
    """The pod spec of the chart's Deployment."""
    return only(manifests, "Deployment")["spec"]["template"]["spec"]


def container(spec: Manifest, name: str) -> Manifest:
    """A container of a pod spec, by name."""
    found = [c for c in spec.get("containers", []) if c["name"] == name]
    assert found, f"no container {name!r} in {[c['name'] for c in spec.get('containers', [])]}"
    return found[0]


# PromQL parsing: just enough to list the metric names an expression reads. promtool checks the syntax;
# this only has to find the selectors, and its own unit test keeps it honest.
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|`[^`]*`")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    }
)


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (function names, keywords and labels excluded)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("{}", text)
    text = _RANGE.sub("[]", text)
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    for match in _IDENT.finditer(text):
        token, start = match.group(0), match.start()
        if start and (text[start - 1].isdigit() or text[start - 1] in "."):
            continue  # the unit of a number or duration (5m, 1e3)
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        if token.lower() in _KEYWORDS:
            continue
        names.add(token)
    return names


def load_catalog() -> dict[str, str]:
    """known_metrics.yaml as {metric name: the component that exposes it}."""
    data = yaml.safe_load((HERE / "known_metrics.yaml").read_text())
    catalog: dict[str, str] = {}
    for source, entry in data["sources"].items():
        for metric in entry["metrics"]:
            assert metric not in catalog, f"{metric} is listed under both {catalog[metric]} and {source}"
            catalog[metric] = source
    return catalog


@pytest.fixture(scope="session")
def catalog() -> dict[str, str]:
    return load_catalog()


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


def check_rules(promtool: str, groups: list[Manifest], workdir: Path) -> None:
    """`promtool check rules` on rule groups; fails with promtool's own message."""
    path = workdir / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    proc = run_tool([promtool, "check", "rules", "--lint=all", "--lint-fatal", str(path)])
    assert proc.returncode == 0, f"promtool check rules failed:\n{proc.stdout}{proc.stderr}"


def dashboards_in(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(ConfigMap key, parsed dashboard) for every dashboard ConfigMap of a render."""
    for cm in of_kind(manifests, "ConfigMap"):
        for key, body in (cm.get("data") or {}).items():
            if key.endswith(".json"):
                yield key, json.loads(body)
