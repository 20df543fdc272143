"""The changelog: fragments that antsibull-changelog accepts, and a CHANGELOG.rst that matches changelog.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from packaging_helpers import ROOT, galaxy_meta, run, tool

CHANGELOGS = ROOT / "changelogs"


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("-")[0].split("."))


def test_fragments_lint() -> None:
    proc = run([tool("antsibull-changelog"), "lint"], cwd=ROOT)
    assert proc.stdout.strip() == "", f"antsibull-changelog lint reported problems:\n{proc.stdout}"


def test_every_fragment_is_yaml_with_known_sections() -> None:
    config = yaml.safe_load((CHANGELOGS / "config.yaml").read_text(encoding="utf-8"))
    known = {section[0] for section in config["sections"]} | {"release_summary", "trivial"}
    fragments = sorted((CHANGELOGS / "fragments").glob("*"))
    assert fragments, "no changelog fragments"
    for fragment in fragments:
        assert fragment.suffix in {".yml", ".yaml"}, f"{fragment.name}: ignored by antsibull-changelog"
        content = yaml.safe_load(fragment.read_text(encoding="utf-8"))
        assert isinstance(content, dict) and set(content) <= known, f"{fragment.name}: {sorted(content)}"


def test_changelog_yaml_is_valid() -> None:
    path = CHANGELOGS / "changelog.yaml"
    proc = run([tool("antsibull-changelog"), "lint-changelog-yaml", str(path)], cwd=ROOT)
    assert proc.stdout.strip() == "", proc.stdout


def test_galaxy_version_is_released_or_ahead() -> None:
    """galaxy.yml names either the latest release or the next one in development, never an older one."""
    changelog = yaml.safe_load((CHANGELOGS / "changelog.yaml").read_text(encoding="utf-8"))
    releases = sorted(changelog["releases"], key=version_key)
    assert releases, "changelog.yaml records no release"
    version = str(galaxy_meta()["version"])
    assert version in releases or version_key(version) > version_key(releases[-1])
    for release in releases:
        fragments = changelog["releases"][release].get("fragments", [])
        missing = [name for name in fragments if not (CHANGELOGS / "fragments" / name).is_file()]
        assert not missing, f"{release}: fragments recorded but gone (keep_fragments is true): {missing}"


def test_changelog_rst_is_generated_from_changelog_yaml(tmp_path: Path) -> None:
    """CHANGELOG.rst equals what `antsibull-changelog generate` writes from the committed changelog.yaml."""
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copy2(ROOT / "galaxy.yml", work / "galaxy.yml")
    # changelog.yaml records each release's plugins, so generating needs neither the plugins nor a plugin cache.
    shutil.copytree(CHANGELOGS, work / "changelogs", ignore=shutil.ignore_patterns(".plugin-cache.yaml"))
    run([tool("antsibull-changelog"), "generate"], cwd=work)
    expected = (work / "CHANGELOG.rst").read_text(encoding="utf-8")
    assert (ROOT / "CHANGELOG.rst").read_text(encoding="utf-8") == expected, (
        "CHANGELOG.rst is stale: run `make changelog` (antsibull-changelog release/generate)"
    )
