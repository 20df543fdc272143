"""Helpers of the roles tier: where things are, and the result of one Ansible command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INVENTORIES = ("local", "dev", "staging", "prod")
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
