"""The charts' generated files are fresh, and the freshness check can tell when they are not.

scripts/chart_gen.py derives each app chart's values.schema.json (the library's shared schema part plus the
chart's own), its README (helm-docs from the `# --` comments of values.yaml) and the vendored library chart
(charts/common-<version>.tgz and Chart.lock), and the platform chart's schema (its own part alone) and README.
A stale copy fails here with the diff and the command to run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from chart_render import CHARTS, CHARTS_DIR, DOCUMENTED_CHARTS, PLATFORM, ROOT

GENERATOR = ROOT / "scripts" / "chart_gen.py"


def generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=300, check=False
    )


def _require_helm_docs() -> None:
    if shutil.which("helm-docs") is None:
        pytest.fail("helm-docs is not on PATH: run `make setup` and `. scripts/env.sh`", pytrace=False)


def test_generated_chart_files_are_fresh() -> None:
    _require_helm_docs()
    proc = generator("--check")
    assert proc.returncode == 0, f"stale generated chart files:\n{proc.stdout[-4000:]}{proc.stderr}"


@pytest.fixture
def charts_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "charts"
    shutil.copytree(CHARTS_DIR, copy, symlinks=True)
    return copy


@pytest.mark.parametrize(
    ("edit", "stale"),
    [
        # A values.yaml comment is the README's source.
        (("frontend/values.yaml", "# -- Replaces the chart name", "# -- Swaps the chart name"), "frontend/README.md"),
        # The shared schema part feeds both charts.
        (("common/schema/shared.json", '"minimum": 1,', '"minimum": 2,'), "backend/values.schema.json"),
        # The library's templates are vendored into each app chart.
        (("common/templates/_pdb.tpl", "PodDisruptionBudget", "PodDisruptionBudget "), "backend/charts/common-"),
        # The platform chart's README and schema have their own sources.
        (
            ("platform/values.yaml", "# -- Name of the LimitRange", "# -- The name of the LimitRange"),
            "platform/README.md",
        ),
        (("platform/schema/values.json", '"maxLength": 63', '"maxLength": 62'), "platform/values.schema.json"),
        (("platform/README.md.gotmpl", "## Decisions", "## Choices"), "platform/README.md"),
        # The database chart's schema is its own part alone.
        (("database/schema/values.json", '"maximum": 65535', '"maximum": 65534'), "database/values.schema.json"),
    ],
    ids=[
        "readme",
        "schema",
        "library",
        "platform-readme",
        "platform-schema",
        "platform-readme-template",
        "database-schema",
    ],
)
def test_the_check_notices_a_stale_file(charts_copy: Path, edit: tuple[str, str, str], stale: str) -> None:
    _require_helm_docs()
    path, old, new = edit
    source = charts_copy / path
    text = source.read_text(encoding="utf-8")
    assert old in text, f"{path} no longer contains {old!r}: update this test"
    source.write_text(text.replace(old, new, 1), encoding="utf-8")
    proc = generator("--check", "--charts", str(charts_copy))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"charts/{stale}" in proc.stderr, proc.stderr
    # Writing mode brings the copy back to fresh.
    assert generator("--charts", str(charts_copy)).returncode == 0
    assert generator("--check", "--charts", str(charts_copy)).returncode == 0


def test_the_library_chart_and_its_dependants() -> None:
    library = yaml.safe_load((CHARTS_DIR / "common" / "Chart.yaml").read_text(encoding="utf-8"))
    assert (library["name"], library["type"]) == ("common", "library")
    templates = sorted(p.name for p in (CHARTS_DIR / "common" / "templates").iterdir())
    assert templates and all(name.startswith("_") for name in templates), "a library chart only defines templates"
    for chart in CHARTS:
        meta = yaml.safe_load((CHARTS_DIR / chart / "Chart.yaml").read_text(encoding="utf-8"))
        assert meta["dependencies"] == [
            {"name": "common", "version": library["version"], "repository": "file://../common"}
        ]
        assert (CHARTS_DIR / chart / "charts" / f"common-{library['version']}.tgz").is_file()
        assert meta["annotations"]["threetier.k8s/component"]


@pytest.mark.parametrize("chart", DOCUMENTED_CHARTS)
def test_the_schema_says_where_it_comes_from(chart: str) -> None:
    schema = json.loads((CHARTS_DIR / chart / "values.schema.json").read_text(encoding="utf-8"))
    assert "scripts/chart_gen.py" in schema["$comment"]
    assert f"charts/{chart}/schema/values.json" in schema["$comment"]
    # Only the app charts take the library's shared part.
    assert ("charts/common/schema/shared.json" in schema["$comment"]) == (chart in CHARTS)


def test_the_platform_chart_stands_alone() -> None:
    """No library, nothing vendored: the platform chart's schema is its own source plus the generator's header."""
    assert not (CHARTS_DIR / PLATFORM / "charts").exists()
    assert not (CHARTS_DIR / PLATFORM / "Chart.lock").exists()
    generated = json.loads((CHARTS_DIR / PLATFORM / "values.schema.json").read_text(encoding="utf-8"))
    source = json.loads((CHARTS_DIR / PLATFORM / "schema" / "values.json").read_text(encoding="utf-8"))
    assert generated["properties"] == source["properties"]
    assert generated["definitions"] == source["definitions"]
    assert generated["additionalProperties"] is False
