"""`helm lint --strict` of each chart with each environment's values (platform: its own), on Helm 3 and Helm 4."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from chart_render import CHARTS, CHARTS_DIR, ENVIRONMENTS, HELMS, KUBE_VERSION, PLATFORM, PLATFORM_VALUES, values_file


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize("helm", HELMS)
def test_helm_lint_strict(helm_bins: dict[str, str], helm: str, chart: str, environment: str) -> None:
    _lint(helm_bins[helm], chart, values_file(chart, environment))


@pytest.mark.parametrize("helm", HELMS)
def test_platform_lint_strict(helm_bins: dict[str, str], helm: str) -> None:
    _lint(helm_bins[helm], PLATFORM, PLATFORM_VALUES)


def _lint(helm: str, chart: str, values: Path) -> None:
    cmd = [helm, "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHARTS_DIR / chart), "--values", str(values)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "1 chart(s) linted, 0 chart(s) failed" in output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output
