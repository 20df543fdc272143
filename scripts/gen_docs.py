"""Regenerate the docs drawn from the inventories' network graphs (one generator for both pages).

Both pages draw every inventory's ``threetier_network`` with the collection's own filters:

- ``architecture``: the generated block of docs/architecture.md. For every inventories/<env>/hosts.yml,
  Ansible renders that environment's graph through ``threetier.k8s.network_graph_mermaid`` (the picture) and
  ``threetier.k8s.network_flows`` (the table), exactly as the network_policies role sees the graph. In rds
  mode the database CIDRs, which the role takes from the ``database_connection`` fact at deploy time, are
  filled from ``database_rds_subnets`` as the database role does. Environments whose graphs are identical
  share one section.
- ``network-graph``: the whole of docs/network-graph.md. Each inventory's graph is templated with that
  inventory's group_vars/all, as Ansible would, drawn, and listed with the NetworkPolicies the
  ``network_policies`` filter builds from it. In rds/external mode the database CIDRs come from the
  ``database_connection`` fact at deploy time; the page shows the stand-in TEST-NET-1 range for them.

    scripts/gen_docs.py                          # rewrite both pages (make docs)
    scripts/gen_docs.py --check                  # exit 1 (and print a diff) when a committed page is stale
    scripts/gen_docs.py --only network-graph     # one page: architecture or network-graph (make network-docs)

Needs ansible-core (``. scripts/env.sh``). The repository is exposed as threetier.k8s through a temporary
collections directory (to Ansible and to this process), so nothing depends on the .collections link of
scripts/setup.sh. A maintainer's tool, not part of the test harness: the tests only run its ``--check``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def expose_collection(workdir: Path) -> Path:
    """Link the checkout as ``<workdir>/collections/ansible_collections/threetier/k8s``; make it importable.

    Returns the collections directory (for Ansible's collections_path). ``ansible_collections`` is a namespace
    package (the ``ansible`` wheel ships collections under it too), so the extra path entry merges with those.
    """
    collections = workdir / "collections"
    (collections / "ansible_collections" / "threetier").mkdir(parents=True)
    (collections / "ansible_collections" / "threetier" / "k8s").symlink_to(ROOT, target_is_directory=True)
    sys.path.insert(0, str(collections))
    return collections


# --- docs/architecture.md: the flow graphs as Ansible renders them ---------------------------------------

ARCHITECTURE = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- BEGIN GENERATED: network flow graphs (scripts/gen_docs.py; do not edit by hand) -->"
END = "<!-- END GENERATED: network flow graphs -->"

# The graph the network_policies role applies: the inventory's graph, with the rds CIDRs the database role
# reports in database_connection (the subnets of the DB subnet group).
GRAPH = (
    "(threetier_network | combine({'database': {'cidrs': database_rds_subnets | map(attribute='cidr') | list}},"
    " recursive=True)) if (threetier_network.database.mode | default('operator')) == 'rds'"
    " and not (threetier_network.database.cidrs | default([])) else threetier_network"
)
EXPRESSION = (
    "{{ {'mode': (threetier_network.database.mode | default('operator')),"
    f" 'mermaid': ({GRAPH}) | threetier.k8s.network_graph_mermaid(show_dns=false),"
    f" 'flows': ({GRAPH}) | threetier.k8s.network_flows}} }}}}"
)


@dataclass(frozen=True)
class Rendering:
    """What one environment's graph looks like."""

    mode: str
    mermaid: str
    flows: tuple[tuple[str, str, str, str], ...]


def ansible_environment(workdir: Path, collections: Path) -> dict[str, str]:
    """Environment for an ad-hoc run that sees this repo as threetier.k8s and prints JSON only."""
    config = workdir / "ansible.cfg"
    config.write_text(
        f"[defaults]\ncollections_path = {collections}\nstdout_callback = ansible.builtin.json\n"
        "interpreter_python = auto_silent\nlocalhost_warning = false\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({"ANSIBLE_CONFIG": str(config), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_NOCOLOR": "1"})
    return env


def ansible_render(inventory: Path, env: dict[str, str]) -> Rendering:
    """Run the filters for one inventory."""
    beside = Path(sys.executable).parent / "ansible"
    ansible = str(beside) if beside.is_file() else shutil.which("ansible", path=env.get("PATH"))
    if ansible is None:
        sys.exit("gen_docs.py: `ansible` is not on PATH; run `. scripts/env.sh` first")
    proc = subprocess.run(
        [
            ansible,
            "threetier",
            "-i",
            str(inventory),
            "-m",
            "ansible.builtin.debug",
            "-a",
            json.dumps({"msg": EXPRESSION}),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    start = proc.stdout.find("{")
    if start < 0:
        sys.exit(f"gen_docs.py: ansible printed no JSON for {inventory}:\n{proc.stdout}\n{proc.stderr}")
    report = json.JSONDecoder().raw_decode(proc.stdout[start:])[0]
    result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
    if proc.returncode != 0 or result.get("failed"):
        sys.exit(f"gen_docs.py: rendering {inventory} failed: {result.get('msg', proc.stderr)}")
    msg = result["msg"]
    return Rendering(mode=msg["mode"], mermaid=msg["mermaid"].rstrip(), flows=tuple(flow_row(f) for f in msg["flows"]))


def flow_row(flow: dict) -> tuple[str, str, str, str]:
    """One table row: source, destination, ports, where the rule comes from."""
    source = f"{flow['from']} ({flow['from_namespace']})"
    if flow.get("to"):
        destination = f"{flow['to']} ({flow['to_namespace']})"
    else:
        destination = ", ".join(flow.get("cidrs") or []) or "-"
    ports = ", ".join(port_text(port) for port in flow.get("ports") or []) or "all"
    return source, destination, ports, str(flow.get("origin", ""))


def port_text(port: dict) -> str:
    protocol = port.get("protocol", "TCP")
    end = port.get("end_port")
    return f"{protocol}/{port['port']}" + (f"-{end}" if end else "")


def section(envs: list[str], rendering: Rendering) -> str:
    """Markdown for the environments that share one graph."""
    title = ", ".join(envs)
    lines = [
        f"### {title} (database mode `{rendering.mode}`)",
        "",
        "```mermaid",
        rendering.mermaid,
        "```",
        "",
        "<details><summary>Every allowed flow, built-in ones included (DNS to kube-dns is allowed for every"
        " component and left out of the picture)</summary>",
        "",
        "| from | to | ports | rule |",
        "|---|---|---|---|",
        *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rendering.flows),
        "",
        "</details>",
    ]
    return "\n".join(lines)


def generated_block(inventories: list[Path], env: dict[str, str]) -> str:
    groups: dict[Rendering, list[str]] = {}
    for inventory in inventories:
        groups.setdefault(ansible_render(inventory, env), []).append(inventory.parent.name)
    body = "\n\n".join(section(envs, rendering) for rendering, envs in groups.items())
    return f"{BEGIN}\n\n{body}\n\n{END}"


def updated(document: str, block: str) -> str:
    """The document with its generated block replaced."""
    if BEGIN not in document or END not in document:
        sys.exit(f"gen_docs.py: {ARCHITECTURE.relative_to(ROOT)} lacks the markers {BEGIN!r} ... {END!r}")
    head, rest = document.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return head + block + tail


def architecture(current: str, workdir: Path, collections: Path) -> str:
    """docs/architecture.md with its flow graphs regenerated, local, dev, staging, prod first."""
    order = {"local": 0, "dev": 1, "staging": 2, "prod": 3}
    inventories = sorted(ROOT.glob("inventories/*/hosts.yml"), key=lambda p: (order.get(p.parent.name, 9), p))
    return updated(current, generated_block(inventories, ansible_environment(workdir, collections)))


# --- docs/network-graph.md: every inventory's graph and its NetworkPolicies -------------------------------

NETWORK_GRAPH = ROOT / "docs" / "network-graph.md"
STAND_IN_DATABASE_CIDRS = ["192.0.2.0/24"]


def to_plain(value: Any) -> Any:
    """Ansible's tagged containers and strings as plain Python data."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    return value


def inventory_graphs(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """Every inventory's ``threetier_network`` by environment, templated, database CIDRs stood in if empty."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    graphs = {}
    for directory in sorted((root / "inventories").glob("*/group_vars/all")):
        loader = DataLoader()
        variables: dict[str, Any] = {}
        for path in sorted(directory.glob("*.y*ml")):
            variables.update(loader.load_from_file(str(path), trusted_as_template=True) or {})
        if "threetier_network" not in variables:
            continue
        graph = to_plain(Templar(loader=loader, variables=variables).template(variables["threetier_network"]))
        database = graph.get("database") or {}
        if database.get("mode") in ("rds", "external") and not database.get("cidrs"):
            database["cidrs"] = list(STAND_IN_DATABASE_CIDRS)
        graphs[directory.parents[1].name] = graph
    return graphs


def _policy_rows(graph: dict[str, Any]) -> list[str]:
    from ansible_collections.threetier.k8s.plugins.filter.network_policies import network_policies

    rows = ["| policy | namespace | ingress rules | egress rules |", "|---|---|---|---|"]
    for policy in network_policies(graph):
        spec = policy["spec"]
        rows.append(
            f"| `{policy['metadata']['name']}` | `{policy['metadata']['namespace']}` "
            f"| {len(spec.get('ingress', []))} | {len(spec.get('egress', []))} |"
        )
    return rows


def network_graph_page(graphs: dict[str, dict[str, Any]]) -> str:
    from ansible_collections.threetier.k8s.plugins.filter.network_graph_mermaid import network_graph_mermaid

    lines = [
        "# Network graphs of the inventories",
        "",
        "<!-- Generated by scripts/gen_docs.py from inventories/*/group_vars/all; do not edit by hand. -->",
        "",
        "Each diagram is `threetier_network | threetier.k8s.network_graph_mermaid(show_dns=false)` for one inventory:",
        "the flows of the graph plus the built-in ones (Spilo, pooler, operator, database clients, API server).",
        "Rectangles are managed components (one NetworkPolicy each, default-deny around them), dashed stadiums are",
        "peers the collection does not manage, slanted boxes are CIDRs. Arrows carry the allowed ports; named ports",
        "(`TCP/http`) resolve to the container port of that name on the destination pod. Every component that sends",
        "anything may also reach the DNS pods on UDP and TCP 53 (left out of the drawings).",
    ]
    if any((graph.get("database") or {}).get("cidrs") == STAND_IN_DATABASE_CIDRS for graph in graphs.values()):
        lines += [
            "",
            "Where an inventory leaves the `rds`/`external` database CIDRs empty (they then come from the"
            f" `database_connection` fact at deploy time), the drawing shows the stand-in"
            f" {STAND_IN_DATABASE_CIDRS[0]}.",
        ]
    for name, graph in graphs.items():
        mode = (graph.get("database") or {}).get("mode", "none")
        lines += ["", f"## {name} (database mode `{mode}`)", "", "```mermaid"]
        lines += network_graph_mermaid(graph, show_dns=False).rstrip("\n").split("\n")
        lines += ["```", ""]
        lines += _policy_rows(graph)
    return "\n".join(lines) + "\n"


def network_graph(_current: str, _workdir: Path, _collections: Path) -> str:
    """docs/network-graph.md, whole."""
    return network_graph_page(inventory_graphs())


# --- the command ------------------------------------------------------------------------------------------

# name -> (page, how to build it from its current text)
PAGES: dict[str, tuple[Path, Callable[[str, Path, Path], str]]] = {
    "architecture": (ARCHITECTURE, architecture),
    "network-graph": (NETWORK_GRAPH, network_graph),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the pages are up to date")
    parser.add_argument("--only", choices=sorted(PAGES), help="one page instead of both")
    args = parser.parse_args(argv)
    stale = False
    with tempfile.TemporaryDirectory(prefix="gen-docs-") as tmp:
        workdir = Path(tmp)
        collections = expose_collection(workdir)
        for name in [args.only] if args.only else list(PAGES):
            page, build = PAGES[name]
            current = page.read_text(encoding="utf-8") if page.exists() else ""
            wanted = build(current, workdir, collections)
            if current == wanted:
                continue
            rel = page.relative_to(ROOT)
            if args.check:
                diff = difflib.unified_diff(
                    current.splitlines(), wanted.splitlines(), "committed", "generated", lineterm=""
                )
                print("\n".join(diff))
                print(f"{rel} is stale: run scripts/gen_docs.py", file=sys.stderr)
                stale = True
                continue
            page.write_text(wanted, encoding="utf-8")
            print(f"updated {rel}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
