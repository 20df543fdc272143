# Copyright: threetier.k8s maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Draw a validated :class:`Graph` as a Mermaid flowchart (one box per namespace, one arrow per peer pair)."""

from __future__ import annotations

import re
from collections import defaultdict

from ansible_collections.threetier.k8s.plugins.module_utils.network_graph import (
    DNS_COMPONENT,
    DNS_ORIGIN,
    Component,
    Edge,
    Graph,
    Port,
    cidr_sort_key,
    sorted_ports,
)

DIRECTIONS = ("LR", "RL", "TB", "BT", "TD")


def _node_id(prefix: str, name: str) -> str:
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9]', '_', name)}"


def _text(value: str) -> str:
    """Mermaid label text inside double quotes: only the quote itself needs an entity."""
    return value.replace('"', "#quot;")


Destination = tuple[tuple[str, ...], tuple[str, ...]]  # (cidrs, excepts)


def _destination_key(destination: Destination) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    return ([cidr_sort_key(c) for c in destination[0]], [cidr_sort_key(c) for c in destination[1]])


def _cidr_groups(edges: list[Edge]) -> dict[Destination, str]:
    """Every distinct (CIDRs, excepts) destination of the edges, numbered in sorted order so the ids are stable."""
    groups = sorted({(edge.cidrs, edge.excepts) for edge in edges if edge.cidrs}, key=_destination_key)
    return {destination: f"net_{index}" for index, destination in enumerate(groups)}


def _component_node(component: Component) -> str:
    node = _node_id("c", component.name)
    if component.managed:
        return f'{node}["{_text(component.name)}"]'
    return f'{node}(["{_text(component.name)}"])'


def _drawn_components(graph: Graph, edges: list[Edge], show_dns: bool) -> list[Component]:
    """All components; without DNS, the DNS peer only if a declared (not built-in) flow still names it."""
    named = {edge.source for edge in edges} | {edge.target for edge in edges if edge.target}
    return [c for c in graph.components.values() if show_dns or c.name != DNS_COMPONENT or c.name in named]


def _namespace_blocks(components: list[Component]) -> list[str]:
    by_namespace: dict[str, list[Component]] = defaultdict(list)
    for component in components:
        by_namespace[component.namespace].append(component)
    lines = []
    for namespace in sorted(by_namespace):
        lines.append(f'  subgraph {_node_id("ns", namespace)}["namespace {_text(namespace)}"]')
        lines.extend(f"    {_component_node(c)}" for c in sorted(by_namespace[namespace], key=lambda c: c.name))
        lines.append("  end")
    return lines


def _cidr_nodes(graph: Graph, groups: dict[Destination, str]) -> list[str]:
    lines = []
    for (cidrs, excepts), node in groups.items():
        title = graph.cidr_names.get(",".join(cidrs), "external")
        label = "<br/>".join([title, *cidrs, *(f"except {hole}" for hole in excepts)])
        lines.append(f'  {node}[/"{_text(label)}"/]')
    return lines


def _arrows(edges: list[Edge], groups: dict[Destination, str]) -> list[str]:
    ports: dict[tuple[str, str], set[Port]] = defaultdict(set)
    for edge in edges:
        target = _node_id("c", edge.target) if edge.target is not None else groups[(edge.cidrs, edge.excepts)]
        ports[(_node_id("c", edge.source), target)].update(edge.ports)
    lines = []
    for (source, target), port_set in sorted(ports.items()):
        label = ", ".join(port.label() for port in sorted_ports(port_set))
        lines.append(f'  {source} -->|"{_text(label)}"| {target}')
    return lines


def _styles(components: list[Component], groups: dict[Destination, str]) -> list[str]:
    peers = sorted(_node_id("c", c.name) for c in components if not c.managed)
    lines = ["  classDef peer stroke-dasharray: 4 3", "  classDef external fill:#f6f6f6,stroke:#999"]
    if peers:
        lines.append(f"  class {','.join(peers)} peer")
    if groups:
        lines.append(f"  class {','.join(groups.values())} external")
    return lines


def mermaid(graph: Graph, direction: str = "LR", show_dns: bool = True) -> str:
    """Mermaid ``flowchart`` text; managed components are boxes, peers rounded and dashed, CIDRs slanted."""
    edges = [edge for edge in graph.edges if show_dns or edge.origin != DNS_ORIGIN]
    components = _drawn_components(graph, edges, show_dns)
    groups = _cidr_groups(edges)
    lines = [f"flowchart {direction}"]
    lines += _namespace_blocks(components)
    lines += _cidr_nodes(graph, groups)
    lines += _arrows(edges, groups)
    lines += _styles(components, groups)
    return "\n".join(lines) + "\n"
