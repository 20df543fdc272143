"""Regenerate the network flow graph section of docs/architecture.md from the inventories.

For every inventories/<env>/hosts.yml, Ansible renders that environment's ``threetier_network`` through the
collection's own filters (``threetier.k8s.network_graph_mermaid`` for the picture, ``threetier.k8s.network_flows``
for the table), exactly as the network_policies role sees the graph. In rds mode the database CIDRs, which the
role takes from the ``database_connection`` fact at deploy time, are filled from ``database_rds_subnets`` as
the database role does. Environments whose graphs are identical share one section.

    scripts/gen_docs.py            # rewrite the generated block of docs/architecture.md
    scripts/gen_docs.py --check    # exit 1 (and print a diff) when the committed doc is stale

Needs ansible-core on PATH (``. scripts/env.sh``). The repository is exposed to Ansible as threetier.k8s through
a temporary collections directory, so the script does not depend on the .collections link of scripts/setup.sh.
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
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


def ansible_environment(workdir: Path) -> dict[str, str]:
    """Environment for an ad-hoc run that sees this repo as threetier.k8s and prints JSON only."""
    collections = workdir / "collections" / "ansible_collections" / "threetier"
    collections.mkdir(parents=True)
    (collections / "k8s").symlink_to(ROOT, target_is_directory=True)
    config = workdir / "ansible.cfg"
    config.write_text(
        f"[defaults]\ncollections_path = {workdir / 'collections'}\nstdout_callback = ansible.builtin.json\n"
        "interpreter_python = auto_silent\nlocalhost_warning = false\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update({"ANSIBLE_CONFIG": str(config), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_NOCOLOR": "1"})
    return env


def render(inventory: Path, env: dict[str, str]) -> Rendering:
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


def generated_block(inventories: list[Path]) -> str:
    groups: dict[Rendering, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="gen-docs-") as tmp:
        env = ansible_environment(Path(tmp))
        for inventory in inventories:
            groups.setdefault(render(inventory, env), []).append(inventory.parent.name)
    body = "\n\n".join(section(envs, rendering) for rendering, envs in groups.items())
    return f"{BEGIN}\n\n{body}\n\n{END}"


def updated(document: str, block: str) -> str:
    """The document with its generated block replaced."""
    if BEGIN not in document or END not in document:
        sys.exit(f"gen_docs.py: {DOC.relative_to(ROOT)} lacks the markers {BEGIN!r} ... {END!r}")
    head, rest = document.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return head + block + tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the doc is up to date")
    args = parser.parse_args()
    order = {"local": 0, "dev": 1, "staging": 2, "prod": 3}
    inventories = sorted(ROOT.glob("inventories/*/hosts.yml"), key=lambda p: (order.get(p.parent.name, 9), p))
    current = DOC.read_text(encoding="utf-8")
    wanted = updated(current, generated_block(inventories))
    if current == wanted:
        return 0
    if args.check:
        diff = difflib.unified_diff(current.splitlines(), wanted.splitlines(), "committed", "generated", lineterm="")
        print("\n".join(diff))
        print(f"{DOC.relative_to(ROOT)} is stale: run scripts/gen_docs.py", file=sys.stderr)
        return 1
    DOC.write_text(wanted, encoding="utf-8")
    print(f"updated {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
