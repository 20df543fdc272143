"""Lint tier: the same gates a reviewer would run by hand, each a test so `make test` ends in one summary."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import ansible
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def run(cmd: list[str], cwd: Path = ROOT, timeout: int = 900, env: dict[str, str] | None = None) -> str:
    """Run a linter; on failure the assertion message is its whole output, so the failure explains itself."""
    tool = shutil.which(cmd[0])
    assert tool, f"{cmd[0]} is not on PATH: run `make setup` (or `. scripts/env.sh`) first"
    proc = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy(), check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{output}"
    return output


def test_yamllint() -> None:
    run(["yamllint", "--strict", "."])


def test_ruff() -> None:
    run(["ruff", "check", "plugins", "tests", "scripts", "molecule"])


def test_ruff_format() -> None:
    run(["ruff", "format", "--check", "plugins", "tests", "scripts", "molecule"])


def test_ansible_lint_production_profile() -> None:
    # ANSIBLE_COLLECTIONS_PATH is set so that ansible-lint resolves threetier.k8s.* from this checkout.
    env = os.environ.copy()
    env["ANSIBLE_COLLECTIONS_PATH"] = f"{ROOT / '.collections'}"
    run(["ansible-lint", "--profile", "production", "--offline", "--nocolor"], env=env)


def test_ansible_lint_validates_awx_arguments_with_the_real_modules(tmp_path: Path) -> None:
    """No mock_modules: ansible-lint loads the installed awx.awx, so a bad argument in configure.yml fails it."""
    (tmp_path / "awx" / "vars").mkdir(parents=True)
    shutil.copy2(ROOT / ".ansible-lint", tmp_path / ".ansible-lint")
    shutil.copy2(ROOT / "awx" / "vars" / "main.yml", tmp_path / "awx" / "vars" / "main.yml")
    text = (ROOT / "awx" / "configure.yml").read_text(encoding="utf-8")
    assert "        kind: cloud\n" in text
    (tmp_path / "awx" / "configure.yml").write_text(
        text.replace("        kind: cloud\n", "        kind: cloud\n        bogus: 1\n")
    )
    env = os.environ.copy()
    env["ANSIBLE_COLLECTIONS_PATH"] = f"{ROOT / '.collections'}"
    proc = subprocess.run(
        ["ansible-lint", "--offline", "--nocolor", "awx/configure.yml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "args[module]" in output and "bogus" in output, output


def _tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line and (ROOT / line).exists()]


def _dependencies() -> list[str]:
    """The collections galaxy.yml depends on, as namespace/name."""
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    return [name.replace(".", "/") for name in galaxy.get("dependencies", {})]


@pytest.mark.slow
def test_ansible_test_sanity(tmp_path: Path) -> None:
    """ansible-test needs the collection at ansible_collections/<namespace>/<name>: run it on a copy.

    The collections it depends on (bundled in the `ansible` package) are linked beside it, where
    ansible-test's import and validate-modules tests look for them. `--venv --requirements` lets
    ansible-test build each sanity test's virtualenv from its own pinned requirements (cached under
    ~/.ansible/test; scripts/setup.sh provides the pip bootstrap it would otherwise download), so the
    project's venv is not changed.
    """
    tree = tmp_path / "ansible_collections"
    dest = tree / "threetier" / "k8s"
    for rel in _tracked_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target, follow_symlinks=False)
    bundled = Path(ansible.__file__).resolve().parent.parent / "ansible_collections"
    for dep in _dependencies():
        assert (bundled / dep).is_dir(), f"{dep} is not in the ansible package ({bundled})"
        (tree / dep).parent.mkdir(parents=True, exist_ok=True)
        (tree / dep).symlink_to(bundled / dep)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    run(
        ["ansible-test", "sanity", "--venv", "--requirements", "--python", python, "--color", "no"],
        cwd=dest,
        timeout=1800,
    )
