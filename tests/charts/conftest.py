"""Fixtures of the chart tier: the helm binaries (missing = failure, never a skip) and a render cache.

Each (helm, chart, environment) is rendered once per session, whatever number of tests read it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import cache

import pytest
from chart_render import HELMS, MONITORING_API, REQUIRED_VALUES, Render, helm_template, parse_manifests, render


def _require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not on PATH: run `make setup` and `. scripts/env.sh` (the chart tier needs it)", pytrace=False
        )
    return path


@pytest.fixture(scope="session")
def helm_bins() -> dict[str, str]:
    """Absolute paths of `helm` (3.x) and `helm4`."""
    return {name: _require_tool(name) for name in HELMS}


@pytest.fixture(scope="session")
def rendered(helm_bins: dict[str, str]) -> Callable[[str, str, str], Render]:
    """rendered(helm, chart, environment) -> Render, memoised for the session."""

    @cache
    def get(helm: str, chart: str, environment: str) -> Render:
        return render(helm_bins[helm], chart, environment)

    return get


@pytest.fixture(scope="session")
def render_with(helm_bins: dict[str, str]) -> Callable[..., Render]:
    """render_with(chart, *set_values, helm=..., api_versions=...) -> Render of the defaults plus --set values."""

    @cache
    def get(
        chart: str, *set_values: str, helm: str = "helm", api_versions: tuple[str, ...] = (MONITORING_API,)
    ) -> Render:
        text = helm_template(helm_bins[helm], chart, (), (*REQUIRED_VALUES[chart], *set_values), api_versions)
        return Render(helm, chart, "defaults", parse_manifests(text))

    return get
