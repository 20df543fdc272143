"""The charts document what they accept: values.yaml, values.schema.json and README.md agree."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from chart_render import CHARTS, CHARTS_DIR


def _values(chart: str) -> dict:
    return yaml.safe_load((CHARTS_DIR / chart / "values.yaml").read_text(encoding="utf-8"))


def _schema(chart: str) -> dict:
    return json.loads((CHARTS_DIR / chart / "values.schema.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("chart", CHARTS)
def test_schema_and_values_have_the_same_top_level_keys(chart: str) -> None:
    schema = _schema(chart)
    assert schema["additionalProperties"] is False
    # `global` is Helm's own key; `common` is the values key Helm adds for the library chart dependency.
    assert set(schema["properties"]) - {"global", "common"} == set(_values(chart))


@pytest.mark.parametrize("chart", CHARTS)
def test_readme_table_lists_every_top_level_key(chart: str) -> None:
    readme = (CHARTS_DIR / chart / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Za-z0-9]+)[.`]", readme, flags=re.MULTILINE))
    assert set(_values(chart)) - documented == set()


@pytest.mark.parametrize("chart", CHARTS)
def test_chart_metadata(chart: str) -> None:
    meta = yaml.safe_load((CHARTS_DIR / chart / "Chart.yaml").read_text(encoding="utf-8"))
    assert (meta["apiVersion"], meta["name"], meta["version"], meta["type"]) == ("v2", chart, "1.0.0", "application")
    assert meta["appVersion"]
    notes = (CHARTS_DIR / chart / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    assert "helm test" in notes
