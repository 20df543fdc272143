"""Regenerate the variable table of every role's README from its ``meta/argument_specs.yml`` and defaults.

A role's variables are written once, in its argument specification (type, choices, description), and their
defaults once, in ``defaults/``; the README's "Variables" table is derived from both, so the three cannot
drift. ``ansible-doc -t role threetier.k8s.<role>`` shows the same specification.

    scripts/role_docs.py            # rewrite the table of every role README
    scripts/role_docs.py --check    # exit 1 (and print a diff) when a committed table is stale

The table is the block between the "| Variable | Default | Description |" header and the next blank line.
Options of every entry point are listed once, in the order the specification first names them.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
HEADER = "| Variable | Default | Description |"
DEFAULT_WIDTH = 68


def options(role: Path) -> dict[str, dict[str, Any]]:
    """Every option of every entry point, first occurrence wins (entry points share anchors)."""
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]
    merged: dict[str, dict[str, Any]] = {}
    for entry in specs.values():
        for name, spec in (entry.get("options") or {}).items():
            merged.setdefault(name, spec)
    return merged


def defaults(role: Path) -> dict[str, Any]:
    """The role's defaults as written (defaults/main.yml or every file of defaults/main/)."""
    files = [role / "defaults" / "main.yml"] if (role / "defaults" / "main.yml").is_file() else []
    files += sorted((role / "defaults" / "main").glob("*.yml"))
    values: dict[str, Any] = {}
    for path in files:
        values.update(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return values


def show_default(value: Any) -> str:
    """A default as the README shows it: scalars as YAML writes them, structures as one JSON line."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        # One line: a folded or literal block default keeps its words, not its line breaks.
        text = " ".join(value.split()) or '""'
    elif isinstance(value, (dict, list)):
        text = json.dumps(value)
    elif value is None:
        text = "null"
    else:
        text = str(value)
    if len(text) > DEFAULT_WIDTH:
        text = text[:DEFAULT_WIDTH] + "..."
    return "`" + text.replace("|", "\\|") + "`"


def describe(spec: dict[str, Any]) -> str:
    """The specification's description in Markdown: C(x) and I(x) become code, lines one paragraph."""
    text = spec.get("description", "")
    if isinstance(text, list):
        text = " ".join(text)
    text = " ".join(str(text).split())
    text = re.sub(r"[CI]\(([^)]*)\)", r"`\1`", text)
    return text.replace("|", "\\|")


def table(role: Path) -> list[str]:
    values = defaults(role)
    rows = [HEADER, "|---|---|---|"]
    for name, spec in options(role).items():
        if spec.get("required"):
            default = "*required*"
        elif name in values:
            default = show_default(values[name])
        else:
            default = show_default(spec["default"]) if "default" in spec else ""
        rows.append(f"| `{name}` | {default} | {describe(spec)} |")
    return rows


def render(readme: Path, role: Path) -> str:
    lines = readme.read_text(encoding="utf-8").splitlines()
    if HEADER not in lines:
        raise SystemExit(f"{readme.relative_to(ROOT)} has no '{HEADER}' table")
    start = lines.index(HEADER)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[:start] + table(role) + lines[end:]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a README's table is stale")
    args = parser.parse_args(argv)
    stale = []
    for role in sorted(p for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file()):
        readme = role / "README.md"
        current = readme.read_text(encoding="utf-8")
        wanted = render(readme, role)
        if current == wanted:
            continue
        if args.check:
            stale.append(readme.relative_to(ROOT))
            sys.stdout.writelines(
                difflib.unified_diff(current.splitlines(True), wanted.splitlines(True), str(readme), "generated")
            )
        else:
            readme.write_text(wanted, encoding="utf-8")
            print(f"updated {readme.relative_to(ROOT)}")
    if stale:
        print(f"stale variable tables: {', '.join(map(str, stale))}; run python scripts/role_docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
