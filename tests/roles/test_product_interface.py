"""Roles tier: the product's interface holds no test knob and names no file a user does not have.

- Production inventories (every inventory but local, whose cluster is the tests' KWOK cluster) leave the test
  knobs (ansible_run.TEST_KNOBS) to the roles, which default them to what production needs.
- The chart values files come from beside the inventory (or threetier_values_dir), never from the collection's
  own inventories/: in an installed collection those are examples, not the user's environment.
- Nothing the collection ships, nor the AWX project, points at a design note or a sibling directory of the
  repository's checkout (../shared is the test harness's, which tests/harness and scripts/ may name).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_run import ROOT, TEST_KNOBS, Result

PRODUCTION_INVENTORIES = sorted(p.name for p in (ROOT / "inventories").iterdir() if p.is_dir() and p.name != "local")
# What a user gets: the collection's content (galaxy.yml's build_ignore leaves these in) and the AWX project.
SHIPPED = (
    "roles", "playbooks", "plugins", "inventories", "docs", "charts", "meta", "awx",
    "README.md", "site.yml", "galaxy.yml", "execution-environment.yml",
)  # fmt: skip
OUTSIDE_REFERENCES = re.compile(r"DESIGN\.md|\.\./shared\b")


def text_files(*roots: str) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        path = ROOT / root
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [f for f in files if f.suffix not in {".tgz", ".png", ".svg"}]


def mentions(files: list[Path], pattern: re.Pattern[str]) -> list[str]:
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return found


@pytest.mark.parametrize("inventory", PRODUCTION_INVENTORIES)
def test_production_inventories_do_not_mention_the_test_knobs(inventory: str) -> None:
    pattern = re.compile(r"\b(?:" + "|".join(sorted(TEST_KNOBS)) + r")\b")
    found = mentions(text_files(f"inventories/{inventory}"), pattern)
    assert not found, "test knobs belong to the tests, the roles default them:\n" + "\n".join(found)


def test_shipped_files_name_no_file_outside_the_repository() -> None:
    found = mentions(text_files(*SHIPPED), OUTSIDE_REFERENCES)
    assert not found, (
        "say it in the repository's own docs (docs/architecture.md, docs/decisions.md) or name the harness's "
        "environment variable instead:\n" + "\n".join(found)
    )


# Loads the defaults of the given roles (through their validate entry points, which also check them) and
# writes what the given variables resolve to.
RESOLVE_PLAY = """
- name: Resolve the roles' defaults
  hosts: threetier
  gather_facts: false
  tasks:
    - name: Validate and load the defaults of a role
      ansible.builtin.include_role:
        name: "threetier.k8s.{{ resolve_role }}"
        tasks_from: validate
        public: true
      loop: "{{ resolve_roles }}"
      loop_control:
        loop_var: resolve_role
    - name: Write what the variables resolve to
      ansible.builtin.copy:
        dest: "{{ resolve_out }}"
        mode: "0600"
        content: "{{ dict(resolve_vars | zip(query('ansible.builtin.vars', *resolve_vars))) | to_json }}"
"""
KNOB_ROLES = ["preflight", "database", "monitoring", "smoke"]
KNOB_VARS = ["database_wait", "smoke_helm_test", "database_operator_chart_repo_name", "monitoring_chart_repo_name"]
# The roles whose default values files come from beside the inventory, never from the collection.
VALUES_ROLES = ["monitoring", "backend", "frontend"]


def resolve(
    run: Callable[..., Result],
    tmp_path: Path,
    inventories: list[Path | str],
    roles: list[str],
    names: list[str],
    *,
    before: str = "",
    extra: tuple[str, ...] = (),
) -> tuple[Result, dict[str, Any]]:
    book = tmp_path / "resolve.yml"
    book.write_text(before + RESOLVE_PLAY)
    out = tmp_path / "resolved.json"
    out.unlink(missing_ok=True)
    settings = {"resolve_out": str(out), "resolve_roles": roles, "resolve_vars": names}
    args = [a for inventory in inventories for a in ("-i", str(inventory))]
    result = run(*args, str(book), "-e", json.dumps(settings), *extra)
    return result, (json.loads(out.read_text()) if out.is_file() else {})


@pytest.mark.parametrize("inventory", ["prod", "local"])
def test_roles_default_the_test_knobs_to_production(
    ansible_playbook: Callable[..., Result], tmp_path: Path, inventory: str
) -> None:
    result, resolved = resolve(ansible_playbook, tmp_path, [f"inventories/{inventory}"], KNOB_ROLES, KNOB_VARS)
    assert result.rc == 0, result.output
    pods_run = inventory != "local"
    assert resolved["database_wait"] is pods_run and resolved["smoke_helm_test"] is pods_run, resolved
    assert resolved["database_operator_chart_repo_name"] == "postgres-operator-charts", resolved
    assert resolved["monitoring_chart_repo_name"] == "prometheus-community", resolved


@pytest.mark.parametrize("role", VALUES_ROLES)
def test_values_files_never_come_from_the_collection(
    ansible_playbook: Callable[..., Result], tmp_path: Path, role: str
) -> None:
    """A user's prod inventory without values/: the role fails instead of taking the collection's example."""
    mine = tmp_path / "mine"
    shutil.copytree(ROOT / "inventories" / "prod", mine, ignore=shutil.ignore_patterns("values"))
    files = f"{role}_values_files"
    result = resolve(ansible_playbook, tmp_path, [mine], [role], [files])[0]
    assert result.rc != 0 and "No file was found when using first_found" in result.output, (
        f"{role} did not stop although {mine} has no values/: it must not take the collection's inventories/\n"
        + result.output[-3000:]
    )
    # With its own values/ folder, that is what the role reads.
    (mine / "values").mkdir()
    (mine / "values" / f"{role}.yaml").write_text("{}\n")
    result, resolved = resolve(ansible_playbook, tmp_path, [mine], [role], [files])
    assert result.rc == 0, result.output
    assert resolved[files] == [f"{mine}/values/{role}.yaml"]


@pytest.mark.parametrize("inventory", ["prod", "local"])
def test_values_files_beside_the_inventory(
    ansible_playbook: Callable[..., Result], tmp_path: Path, inventory: str
) -> None:
    names = ["monitoring_values_files"]
    result, resolved = resolve(ansible_playbook, tmp_path, [f"inventories/{inventory}"], ["monitoring"], names)
    assert result.rc == 0, result.output
    assert resolved["monitoring_values_files"] == [f"{ROOT}/inventories/{inventory}/values/monitoring.yaml"]


def test_values_files_beside_a_second_inventory_source(ansible_playbook: Callable[..., Result], tmp_path: Path) -> None:
    """Molecule's own inventory defines the host first (inventory_dir is its folder); inventories/local follows."""
    first = tmp_path / "molecule-inventory"
    first.mkdir()
    (first / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}}))
    inventories: list[Path | str] = [first / "hosts.yml", "inventories/local"]
    result, resolved = resolve(ansible_playbook, tmp_path, inventories, ["monitoring"], ["monitoring_values_files"])
    assert result.rc == 0, result.output
    assert resolved["monitoring_values_files"] == [f"{ROOT}/inventories/local/values/monitoring.yaml"]


def test_awx_jobs_take_the_values_files_from_the_project(
    ansible_playbook: Callable[..., Result], ansible_inventory: Callable[..., Result], tmp_path: Path
) -> None:
    """AWX hands a job its inventory with nothing beside it; awx/jobs/confirm.yml points at the project's files."""
    dump = ansible_inventory("-i", "inventories/prod", "--list", "--yaml")
    assert dump.rc == 0, dump.output
    runner = tmp_path / "runner" / "inventory"
    runner.mkdir(parents=True)
    (runner / "hosts.yml").write_text(dump.stdout)
    confirm = f"- name: Confirm\n  ansible.builtin.import_playbook: {ROOT}/awx/jobs/confirm.yml\n"
    result, resolved = resolve(
        ansible_playbook, tmp_path, [runner / "hosts.yml"], ["preflight", "monitoring"],
        ["threetier_values_dir", "monitoring_values_files"],
        before=confirm, extra=("-e", "threetier_confirm_environment=prod"),
    )  # fmt: skip
    assert result.rc == 0, result.output
    assert resolved["threetier_values_dir"] == f"{ROOT}/inventories/prod/values", resolved
    assert resolved["monitoring_values_files"] == [f"{ROOT}/inventories/prod/values/monitoring.yaml"]
