"""docs/: the generated part of the architecture is fresh, and the runbook names things that exist.

A runbook that names a variable, tag or playbook the repository does not have sends an operator down a dead
end at the worst moment, so every such name in docs/runbook.md and docs/architecture.md is looked up.
"""

from __future__ import annotations

import re
import sys
from functools import cache

import pytest
import yaml
from packaging_helpers import ROOT, run

DOCS = ("docs/runbook.md", "docs/architecture.md", "docs/decisions.md")
VARIABLE_PREFIXES = (
    "threetier_", "preflight_", "namespaces_", "monitoring_", "database_", "backend_", "frontend_",
    "network_policies_", "smoke_", "rollback_", "teardown_",
)  # fmt: skip
# Where a variable can be defined or read.
SOURCES = ("roles", "playbooks", "inventories", "site.yml")


@cache
def corpus() -> str:
    """All text of the places variables live in, once."""
    texts = []
    for source in SOURCES:
        path = ROOT / source
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        texts += [
            f.read_text(encoding="utf-8", errors="replace") for f in files if f.suffix in {".yml", ".yaml", ".j2"}
        ]
    return "\n".join(texts)


def site_tags() -> set[str]:
    tags: set[str] = set()
    for play in yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text(encoding="utf-8")):
        for task in play.get("tasks", []):
            tags.update(task.get("tags", []))
    return tags


def doc_text(name: str) -> str:
    path = ROOT / name
    assert path.is_file(), f"{name} is missing"
    return path.read_text(encoding="utf-8")


def test_architecture_flow_graphs_are_generated_from_the_inventories() -> None:
    argv = [sys.executable, str(ROOT / "scripts" / "gen_docs.py"), "--check", "--only", "architecture"]
    proc = run(argv, cwd=ROOT, check=False)
    assert proc.returncode == 0, f"docs/architecture.md is stale (run scripts/gen_docs.py):\n{proc.stdout[-3000:]}"


def test_role_variable_tables_are_generated_from_the_argument_specs() -> None:
    result = run([sys.executable, str(ROOT / "scripts" / "role_docs.py"), "--check"], cwd=ROOT, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


def test_architecture_has_a_drawing_per_inventory_and_the_tiers() -> None:
    text = doc_text("docs/architecture.md")
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 2, "the tiers diagram and at least one flow graph"
    assert all(block.lstrip().startswith("flowchart") for block in blocks)
    generated = text.split("BEGIN GENERATED", 1)[1]
    for inventory in sorted((ROOT / "inventories").glob("*/hosts.yml")):
        env = inventory.parent.name
        assert re.search(rf"^### .*\b{env}\b.*\(database mode", generated, re.MULTILINE), f"no flow graph for {env}"


@pytest.mark.parametrize("name", DOCS)
def test_named_variables_exist(name: str) -> None:
    pattern = re.compile(rf"\b(?:{'|'.join(VARIABLE_PREFIXES)})[a-z0-9_]*[a-z0-9]\b")
    unknown = sorted(
        {var for var in pattern.findall(doc_text(name)) if not re.search(rf"\b{re.escape(var)}\b", corpus())}
    )
    assert not unknown, f"{name} names variables that nothing defines or reads: {unknown}"


@pytest.mark.parametrize("name", DOCS)
def test_named_tags_exist(name: str) -> None:
    tags = site_tags()
    used = {tag for group in re.findall(r"--tags[ =]([\w,]+)", doc_text(name)) for tag in group.split(",")}
    assert used <= tags, f"{name} uses tags site.yml does not have: {sorted(used - tags)}"


@pytest.mark.parametrize("name", DOCS)
def test_named_files_exist(name: str) -> None:
    paths = set(re.findall(r"\b((?:playbooks|inventories|roles|charts|scripts|awx)/[\w./-]*\w)", doc_text(name)))
    missing = sorted(p for p in paths if "<" not in p and not (ROOT / p).exists())
    assert not missing, f"{name} refers to files that do not exist: {missing}"


def test_runbook_covers_the_operations() -> None:
    headings = re.findall(r"^#+ (.+)$", doc_text("docs/runbook.md"), re.MULTILINE)
    text = " ".join(headings).lower()
    for topic in ("deploy", "upgrade", "roll back", "migrations", "rotate", "scale", "restore", "rds snapshot",
                  "logical backup", "rollout stalls"):  # fmt: skip
        assert topic in text, f"runbook has no section on {topic!r}"


def test_decisions_cover_the_trade_offs() -> None:
    headings = " ".join(re.findall(r"^#+ (.+)$", doc_text("docs/decisions.md"), re.MULTILINE)).lower()
    for topic in ("rolling", "argo rollouts", "service mesh", "gitops", "operator", "rds"):
        assert topic in headings, f"decisions page has no section on {topic!r}"


def test_docs_link_targets_exist() -> None:
    for name in DOCS:
        base = (ROOT / name).parent
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc_text(name)):
            if "://" not in target:
                assert (base / target).exists(), f"{name}: broken link {target}"
