"""The collection as users get it: a tarball from `ansible-galaxy collection build`, installed offline.

After the install (in a fresh path, with the work tree out of Ansible's sight) `ansible-doc` must show
every role's argument spec and every filter plugin's documentation. The role and filter lists are read
from roles/ and plugins/filter/, so a new role or filter is covered the day it lands.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest
import yaml
from packaging_helpers import ROOT, galaxy_meta, run, tool

ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if (path / "tasks").is_dir())
FILTERS = sorted(path.stem for path in (ROOT / "plugins" / "filter").glob("*.py") if not path.stem.startswith("_"))
# Named by docs/interfaces.md; the lists above must contain them.
REQUIRED_FILTERS = {"network_policies", "default_deny_policies", "network_graph_mermaid"}
REQUIRED_ROLES = {
    "preflight", "namespaces", "monitoring", "database", "backend", "frontend", "network_policies", "smoke",
}  # fmt: skip


def ignored(member: str, patterns: list[str]) -> str | None:
    """The build_ignore pattern that excludes ``member`` (a path or one of its parent folders), if any."""
    parts = member.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
            return pattern
    return None


def ansible_doc(env: dict, *args: str) -> str:
    return run([tool("ansible-doc"), *args], cwd=env["cwd"], env=env["env"]).stdout


def test_the_lists_are_complete() -> None:
    assert set(ROLES) >= REQUIRED_ROLES, f"roles missing: {REQUIRED_ROLES - set(ROLES)}"
    assert set(FILTERS) >= REQUIRED_FILTERS, f"filter plugins missing: {REQUIRED_FILTERS - set(FILTERS)}"


def test_tarball_respects_build_ignore(tarball_members: list[str]) -> None:
    patterns = galaxy_meta()["build_ignore"]
    leaked = {member: pattern for member in tarball_members if (pattern := ignored(member, patterns))}
    assert not leaked, f"build_ignore not honoured: {leaked}"
    assert not [m for m in tarball_members if m.split("/")[0] in {".git", ".collections", ".cache", "dist"}]


def test_tarball_holds_the_collection(tarball_members: list[str]) -> None:
    members = set(tarball_members)
    for required in ("MANIFEST.json", "FILES.json", "meta/runtime.yml", "README.md", "playbooks/site.yml"):
        assert required in members, f"{required} missing from the tarball"
    for role in ROLES:
        assert f"roles/{role}/meta/argument_specs.yml" in members, f"role {role} ships without an argument spec"
    for plugin in FILTERS:
        assert f"plugins/filter/{plugin}.py" in members
    for chart in ("frontend", "backend"):
        assert f"charts/{chart}/Chart.yaml" in members, (
            f"chart {chart} missing: the roles install it from the collection"
        )
        # The library chart travels vendored, so the roles' install from the chart directory needs nothing else.
        library = yaml.safe_load((ROOT / "charts" / "common" / "Chart.yaml").read_text(encoding="utf-8"))
        vendored = f"charts/{chart}/charts/common-{library['version']}.tgz"
        assert {f"charts/{chart}/Chart.lock", vendored} <= members, (
            f"chart {chart} ships without its vendored library chart (scripts/chart_gen.py)"
        )
    # The database role installs charts/database from the collection too (no library dependency).
    assert {"charts/database/Chart.yaml", "charts/database/values.schema.json"} <= members


def test_installed_from_the_tarball(isolated_ansible_env: dict, installed_collections: Path) -> None:
    out = run(
        [tool("ansible-galaxy"), "collection", "list", "threetier.k8s", "--format", "json"],
        cwd=isolated_ansible_env["cwd"],
        env=isolated_ansible_env["env"],
    ).stdout
    found = json.loads(out)
    where = str(installed_collections / "ansible_collections")
    assert list(found) == [where], f"threetier.k8s resolved from {list(found)}, expected only the fresh install"
    assert found[where]["threetier.k8s"]["version"] == str(galaxy_meta()["version"])


def test_role_list(isolated_ansible_env: dict) -> None:
    listed = json.loads(ansible_doc(isolated_ansible_env, "-t", "role", "-l", "threetier.k8s", "--json"))
    assert sorted(name.removeprefix("threetier.k8s.") for name in listed) == ROLES


@pytest.mark.parametrize("role", ROLES)
def test_role_argument_spec_shown(role: str, isolated_ansible_env: dict, installed_collections: Path) -> None:
    """ansible-doc shows every entry point of the role with exactly the options its argument spec declares."""
    spec_file = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    declared = yaml.safe_load(spec_file.read_text(encoding="utf-8"))["argument_specs"]
    assert "main" in declared, f"{role}: no argument spec for the main entry point"
    shown = json.loads(ansible_doc(isolated_ansible_env, "-t", "role", "--json", f"threetier.k8s.{role}"))
    entry_points = shown[f"threetier.k8s.{role}"]["entry_points"]
    assert set(entry_points) == set(declared)
    for name, entry in declared.items():
        assert set(entry_points[name].get("options") or {}) == set(entry.get("options") or {}), f"{role}:{name}"
        assert entry_points[name].get("short_description"), f"{role}:{name} has no short_description"
    text = ansible_doc(isolated_ansible_env, "-t", "role", f"threetier.k8s.{role}")
    header = re.search(rf"ROLE: \W*threetier\.k8s\.{role}\W* \((.+)\)", text)
    assert header, f"ansible-doc printed no role header for {role}"
    assert Path(header.group(1)).is_relative_to(installed_collections), (
        "ansible-doc read the work tree, not the install"
    )


@pytest.mark.parametrize("plugin", FILTERS)
def test_filter_documented(plugin: str, isolated_ansible_env: dict) -> None:
    shown = json.loads(ansible_doc(isolated_ansible_env, "-t", "filter", "--json", f"threetier.k8s.{plugin}"))
    doc = shown[f"threetier.k8s.{plugin}"]
    assert doc["doc"].get("short_description"), f"{plugin}: no short_description"
    assert doc["doc"].get("positional") or doc["doc"].get("options"), f"{plugin}: no documented input"
    assert doc.get("examples"), f"{plugin}: no EXAMPLES"
    assert doc.get("return"), f"{plugin}: no RETURN"
