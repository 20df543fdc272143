"""Project-wide pytest policy: test tiers and the rule that a tier may not skip silently.

Every test belongs to the tier named by its folder under tests/ (unit, charts, lint, integration, ...).
A skipped test must give its reason, and a skip fails the run unless its tier is listed in the environment
variable THREETIER_ALLOW_SKIP (comma separated, e.g. ``THREETIER_ALLOW_SKIP=integration``): a gate that
quietly stops running is worse than a red one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
# The module path (pytest.ini's pythonpath) holds the root, for the harness (tests.harness), and tests/support.


def tier_of(path: Path) -> str:
    """Return the tier of a test file: the first folder below tests/."""
    try:
        return path.resolve().relative_to(TESTS).parts[0]
    except (ValueError, IndexError):
        return "other"


def allowed_skip_tiers() -> set[str]:
    raw = os.environ.get("THREETIER_ALLOW_SKIP", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(getattr(pytest.mark, tier_of(Path(str(item.path)))))


class _SkipPolicy:
    def __init__(self) -> None:
        self.forbidden: list[tuple[str, str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        tier = tier_of(Path(report.fspath))
        if tier in allowed_skip_tiers():
            return
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        self.forbidden.append((tier, report.nodeid, reason))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.forbidden:
            return
        terminalreporter.section("tiers that should have run but skipped")
        for tier, nodeid, reason in self.forbidden:
            terminalreporter.write_line(f"[{tier}] {nodeid}: {reason}")
        terminalreporter.write_line("set THREETIER_ALLOW_SKIP=<tier,...> to accept these skips knowingly")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.forbidden and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_SkipPolicy(), "threetier-skip-policy")
    for tier in ("unit", "charts", "roles", "lint", "integration", "packaging", "observability", "e2e", "examples",
                 "security", "audit"):  # fmt: skip
        config.addinivalue_line("markers", f"{tier}: tests of the {tier} tier (set from the folder)")
