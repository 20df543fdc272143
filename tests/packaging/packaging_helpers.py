"""Helpers of the packaging tier: the project's tools and the collection metadata.

Every tool is looked up next to the running interpreter first (the project's virtualenv), then on PATH.
A missing tool fails the test: this tier has no excuse to skip on a machine where ``make setup`` ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """Return the path of an executable from the project's toolchain, failing the test when it is missing."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: run `make setup` (scripts/setup.sh) first",
            pytrace=False,
        )
    return found


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: int = 300,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command and, with ``check``, fail the test with its output when it exits non-zero."""
    merged = {**os.environ, **(env or {})}
    proc = subprocess.run(
        list(argv),
        cwd=cwd,
        env=merged,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"`{' '.join(argv)}` exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n"
            f"--- stderr\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    return proc


def galaxy_meta() -> dict:
    """galaxy.yml as a dict."""
    with (ROOT / "galaxy.yml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def tarball_name() -> str:
    """The file name `ansible-galaxy collection build` gives the tarball of the current galaxy.yml."""
    meta = galaxy_meta()
    return f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"
