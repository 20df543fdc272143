"""Helpers of the roles tier: where things are, and the result of one Ansible command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INVENTORIES = ("local", "dev", "staging", "prod")
# Variables that exist for the tests only (the offline chart mirror, the KWOK cluster that simulates pods): the
# roles default them to what production needs, so no production inventory names them.
TEST_KNOBS = frozenset({"threetier_pods_run", "threetier_chart_repo_override"})
PLAYBOOKS = (
    "site.yml",
    "playbooks/site.yml",
    "playbooks/rollback.yml",
    "playbooks/migrate.yml",
    "playbooks/teardown.yml",
)


@dataclass(frozen=True)
class Result:
    """Exit code and output of one Ansible command."""

    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together, for assertions on messages wherever Ansible prints them."""
        return self.stdout + self.stderr
