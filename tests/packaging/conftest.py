"""Fixtures of the packaging tier: the collection as users get it (a tarball), built and installed once."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from packaging_helpers import ROOT, run, tarball_name, tool


@pytest.fixture(scope="session")
def collection_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the collection from the work tree once per session, exactly as `make build` does."""
    out = tmp_path_factory.mktemp("dist")
    run(
        [
            tool("ansible-galaxy"),
            "collection",
            "build",
            "--force",
            "--output-path",
            str(out),
            str(ROOT),
        ]
    )
    built = out / tarball_name()
    assert built.is_file(), f"ansible-galaxy wrote no {built.name} into {out}: {sorted(p.name for p in out.iterdir())}"
    return built


@pytest.fixture(scope="session")
def tarball_members(collection_tarball: Path) -> list[str]:
    """Paths inside the tarball (no leading ./)."""
    with tarfile.open(collection_tarball) as archive:
        return [member.name.removeprefix("./") for member in archive.getmembers()]


@pytest.fixture(scope="session")
def ansible_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory with an empty ansible.cfg: Ansible run from there sees nothing of the work tree.

    The repo's ansible.cfg points at .collections (a link to the work tree), where ansible-galaxy would find
    threetier.k8s "already installed" and Ansible would load the sources instead of the tarball.
    """
    home = tmp_path_factory.mktemp("ansible-home")
    (home / "ansible.cfg").write_text("[defaults]\n", encoding="utf-8")
    return home


@pytest.fixture(scope="session")
def installed_collections(
    collection_tarball: Path, ansible_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Install the tarball offline into a fresh collections path; returns that path.

    ``--no-deps``: kubernetes.core and amazon.aws come from the ``ansible`` package in the virtualenv, as
    they would from an execution environment; nothing is fetched.
    """
    dest = tmp_path_factory.mktemp("collections")
    env = {"ANSIBLE_CONFIG": str(ansible_home / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(dest)}
    run(
        [
            tool("ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--no-deps",
            "--force",
            "--collections-path",
            str(dest),
            str(collection_tarball),
        ],
        cwd=ansible_home,
        env=env,
    )
    assert (dest / "ansible_collections" / "threetier" / "k8s" / "MANIFEST.json").is_file(), (
        "the tarball did not install"
    )
    return dest


@pytest.fixture(scope="session")
def isolated_ansible_env(installed_collections: Path, ansible_home: Path) -> dict:
    """cwd and environment in which Ansible sees the installed tarball and not the work tree."""
    env = {
        "ANSIBLE_CONFIG": str(ansible_home / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(installed_collections),
        "ANSIBLE_HOME": str(ansible_home / ".ansible"),
        "ANSIBLE_LOCAL_TEMP": str(ansible_home / "tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    return {"env": env, "cwd": ansible_home}
