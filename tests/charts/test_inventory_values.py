"""The inventories' own chart values files (inventories/<env>/values/<chart>.yaml) pass the same gates.

The backend and frontend roles merge those files under the values they compute (image, database, ingress
hosts, Secrets). Here the tier's environment values stand in for the computed part and the inventory file is
layered on top, then the result is linted, validated strictly and checked against Pod Security `restricted`.
"""

from __future__ import annotations

import subprocess

import pytest
from chart_render import (
    CHARTS,
    CHARTS_DIR,
    ENVIRONMENTS,
    KUBE_VERSION,
    ROOT,
    helm_template,
    parse_manifests,
    pod_templates,
    values_file,
)
from manifest_schema import validation_errors
from pod_security import restricted_violations


def inventory_values(chart: str, environment: str) -> list:
    path = ROOT / "inventories" / environment / "values" / f"{chart}.yaml"
    assert path.is_file(), f"{path} is missing: the {chart} role reads it for the {environment} environment"
    return [values_file(chart, environment), path]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
def test_inventory_values_pass_the_chart_gates(helm_bins: dict[str, str], chart: str, environment: str) -> None:
    files = inventory_values(chart, environment)
    lint = [helm_bins["helm"], "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHARTS_DIR / chart)]
    for path in files:
        lint += ["--values", str(path)]
    proc = subprocess.run(lint, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    docs = parse_manifests(helm_template(helm_bins["helm"], chart, files))
    assert [e for doc in docs for e in validation_errors(doc)] == []
    problems = {
        f"{doc['kind']}/{doc['metadata']['name']}": found
        for doc in docs
        for meta, spec in pod_templates(doc)
        if (found := restricted_violations(spec, meta.get("annotations") or {}))
    }
    assert problems == {}
