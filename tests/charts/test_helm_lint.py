"""`helm lint --strict` of each chart with each environment's values, on Helm 3 and Helm 4."""

from __future__ import annotations

import subprocess

import pytest
from chart_render import CHARTS, CHARTS_DIR, ENVIRONMENTS, HELMS, KUBE_VERSION, values_file


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize("helm", HELMS)
def test_helm_lint_strict(helm_bins: dict[str, str], helm: str, chart: str, environment: str) -> None:
    cmd = [helm_bins[helm], "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHARTS_DIR / chart)]
    cmd += ["--values", str(values_file(chart, environment))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "1 chart(s) linted, 0 chart(s) failed" in output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output
