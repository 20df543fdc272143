"""The execution environment image for the tests: built by scripts/build-ee.sh (cached), loaded for awx_jobs.Pod."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from awx_jobs import ExecutionEnvironment

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BuiltImage:
    """The EE as build-ee.sh reports it."""

    image: ExecutionEnvironment
    archive: Path
    bundle: Path
    archive_bytes: int
    rootfs_bytes: int
    build_seconds: float
    log: str


def build() -> BuiltImage:
    """Run scripts/build-ee.sh (seconds when nothing changed, minutes cold) and load its image.

    Not root: the tests skip (debootstrap, chroot, mount and runc need root), which fails the run unless their
    tier is in THREETIER_ALLOW_SKIP (tests/conftest.py).
    """
    if os.geteuid() != 0:
        pytest.skip("building and running the execution environment needs root (debootstrap, chroot, mount, runc)")
    start = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / "scripts" / "build-ee.sh")],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
        env=os.environ.copy(),
    )
    if proc.returncode != 0:
        raise AssertionError(f"scripts/build-ee.sh exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-8000:]}")
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    archive, bundle = Path(values["EE_ARCHIVE"]), Path(values["EE_BUNDLE"])
    return BuiltImage(
        image=ExecutionEnvironment.load(archive, bundle),
        archive=archive,
        bundle=bundle,
        archive_bytes=int(values["EE_ARCHIVE_BYTES"]),
        rootfs_bytes=int(values["EE_ROOTFS_BYTES"]),
        build_seconds=time.monotonic() - start,
        log=proc.stderr,
    )
