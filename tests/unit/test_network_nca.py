"""Independent check with IBM's network-config-analyzer: its connectivity map equals the declared graph.

For the fixture graphs and every inventory's ``threetier_network``: the allow policies and the default-deny
policies of the managed namespaces, plus synthetic namespaces and pods (two replicas per component with the
named container ports, a stranger pod in every namespace, and an impostor with each component's labels in a
namespace of its own), go to ``nca --connectivity`` offline. Its map (pod -> pod and pod <-> address range, per
protocol and port) must equal, cell for cell, what np_declared says the graph declares.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.threetier.k8s.plugins.filter.default_deny_policies import default_deny_policies
from ansible_collections.threetier.k8s.plugins.filter.network_policies import network_policies
from conftest import all_graphs
from np_declared import Declared
from np_semantics import Endpoint, Pod

PROTOCOLS = ("TCP", "UDP", "SCTP")
IMPOSTORS = "impostors"
ALL = "ALL"
# Container port numbers of the named ports; the charts use http 8080 (nginx) and a metrics port.
NAMED_PORTS = {"http": ("TCP", 8080), "metrics": ("TCP", 9253)}
GRAPHS = all_graphs()

Intervals = tuple[tuple[int, int], ...]
Connections = str | tuple[tuple[str, Intervals], ...]  # ALL, or per protocol merged port intervals
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# -------------------------------------------------------------------------------------------- world


def named_ports(graph: dict[str, Any]) -> tuple[tuple[str, str, int], ...]:
    """Every port name of the graph as a container port: known ones at their chart numbers, others from 20000."""
    names: set[tuple[str, str]] = set()
    for flow in graph.get("flows") or []:
        for entry in flow["ports"]:
            spec = entry if isinstance(entry, dict) else {"port": entry}
            if isinstance(spec["port"], str) and not spec["port"].isdigit():
                names.add((spec["port"], spec.get("protocol", flow.get("protocol", "TCP")).upper()))
    result = []
    for index, (name, protocol) in enumerate(sorted(names)):
        known = NAMED_PORTS.get(name)
        result.append((name, protocol, known[1] if known and known[0] == protocol else 20000 + index))
    return tuple(result)


def world(graph: dict[str, Any], declared: Declared) -> tuple[list[Pod], list[str]]:
    ports = named_ports(graph)
    pods: list[Pod] = []
    for name, comp in sorted(declared.components.items()):
        labels = tuple(sorted({**dict(comp.labels), "pod-template-hash": "5d8f7"}.items()))
        pods += [Pod(f"{name}-{replica}", comp.namespace, labels, ports) for replica in (0, 1)]
        pods.append(Pod(f"impostor-{name}", IMPOSTORS, comp.labels, ports))
    namespaces = sorted({pod.namespace for pod in pods})
    pods += [Pod(f"stranger-{namespace}", namespace, (("app", "stranger"),), ports) for namespace in namespaces]
    return pods, namespaces


def pod_manifest(pod: Pod, index: int) -> dict[str, Any]:
    container_ports = [{"name": n, "protocol": p, "containerPort": number} for n, p, number in pod.ports]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": pod.label_map},
        "spec": {"containers": [{"name": "main", "image": "registry.invalid/app:1", "ports": container_ports}]},
        "status": {"phase": "Running", "podIP": f"10.244.{index // 250}.{index % 250 + 2}", "hostIP": "172.18.0.2"},
    }


def write_list(path: Path, items: Iterable[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": list(items)}, sort_keys=False))
    return path


def run_nca(tmp_path: Path, policies: list[dict[str, Any]], pods: list[Pod], namespaces: list[str], ipv6: bool) -> str:
    nca = shutil.which("nca")
    assert nca, "network-config-analyzer (nca) is not on PATH: run scripts/setup.sh and `. scripts/env.sh`"
    namespace_items = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": {"kubernetes.io/metadata.name": n}}}
        for n in namespaces
    ]
    command = [
        nca,
        "--connectivity",
        str(write_list(tmp_path / "policies.yaml", policies)),
        "--pod_list",
        str(write_list(tmp_path / "pods.yaml", (pod_manifest(p, i) for i, p in enumerate(pods)))),
        "--ns_list",
        str(write_list(tmp_path / "namespaces.yaml", namespace_items)),
        "--output_format",
        "txt_no_fw_rules",
        "--output_endpoints",
        "pods",
        *(["--print_ipv6"] if ipv6 else []),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"nca failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    assert f"cluster has {len(pods)} unique endpoints" in result.stdout, result.stdout[:500]
    return result.stdout


# -------------------------------------------------------------------------------------------- nca output

LINE = re.compile(r"^(?P<src>\S+) => (?P<dst>\S+) : (?P<conns>.+)$")
GROUP = re.compile(r"\{protocols:(?P<protocols>[A-Z, ]+?)(?:,dst_ports:(?P<ports>[0-9,\-]+))?\}")


def merge(intervals: Iterable[tuple[int, int]]) -> Intervals:
    merged: list[tuple[int, int]] = []
    for low, high in sorted(intervals):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return tuple(merged)


def parse_connections(text: str) -> dict[str, list[tuple[int, int]]] | str:
    if text.strip() == "All connections":
        return ALL
    groups = list(GROUP.finditer(text))
    leftover = GROUP.sub("", text).replace(",", "").replace(";", "").strip()
    assert groups and not leftover, f"unexpected nca connection text {text!r}"
    result: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for group in groups:
        ports = group.group("ports")
        intervals = [(1, 65535)] if ports is None else [_interval(part) for part in ports.split(",")]
        for protocol in (p.strip() for p in group.group("protocols").split(",")):
            assert protocol in PROTOCOLS, f"unexpected protocol {protocol!r} in {text!r}"
            result[protocol] += intervals
    return result


def _interval(text: str) -> tuple[int, int]:
    low, _dash, high = text.partition("-")
    return int(low), int(high or low)


def _endpoint_key(text: str) -> tuple[str, Any]:
    """('pod', 'ns/name') or ('ip', (first, last)) for one side of an nca line."""
    text = text.removesuffix("[Pod]")
    if "/" in text and not _is_address(text.split("/")[0]):
        return "pod", text
    first, _dash, last = text.partition("-")
    return "ip", (ipaddress.ip_address(first), ipaddress.ip_address(last or first))


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_nca(output: str) -> list[tuple[tuple[str, Any], tuple[str, Any], dict[str, list[tuple[int, int]]] | str]]:
    lines = []
    for raw in output.splitlines():
        match = LINE.match(raw.strip())
        if match and "=>" in raw:
            conns = parse_connections(match.group("conns"))
            lines.append((_endpoint_key(match.group("src")), _endpoint_key(match.group("dst")), conns))
    return lines


# -------------------------------------------------------------------------------------------- comparison


def canonical(conns: dict[str, list[tuple[int, int]]] | str) -> Connections:
    if conns == ALL:
        return ALL
    assert isinstance(conns, dict)
    return tuple(sorted((p, merge(i)) for p, i in conns.items() if i))


def union(many: Iterable[dict[str, list[tuple[int, int]]] | str]) -> Connections:
    combined: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for conns in many:
        if conns == ALL:
            return ALL
        assert isinstance(conns, dict)
        for protocol, intervals in conns.items():
            combined[protocol] += intervals
    return canonical(combined)


def port_boundaries(declared: Declared, pods: list[Pod], reported: Iterable[Any]) -> list[int]:
    points = {1, 65536}
    for port in declared.port_numbers():
        points.update({port, port + 1})
    for pod in pods:
        points.update(number + d for _name, _protocol, number in pod.ports for d in (0, 1))
    for conns in reported:
        if isinstance(conns, dict):
            points.update(b for intervals in conns.values() for low, high in intervals for b in (low, high + 1))
    return sorted(p for p in points if 1 <= p <= 65536)


def expected_connections(declared: Declared, source: Endpoint, destination: Endpoint, bounds: list[int]) -> Connections:
    if not declared.constrained(source) and not declared.constrained(destination):
        return ALL
    allowed: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for protocol in PROTOCOLS:
        for low, next_low in itertools.pairwise(bounds):
            if declared.expected(source, destination, protocol, low):
                allowed[protocol].append((low, next_low - 1))
    return canonical(allowed)


def address_segments(declared: Declared, reported: Iterable[tuple[Address, Address]], ipv6: bool) -> list[Address]:
    """Start addresses of the elementary ranges cut by every range boundary on either side."""
    starts: set[Address] = {ipaddress.IPv4Address(0)} | ({ipaddress.IPv6Address(0)} if ipv6 else set())
    for network in declared.networks():
        if network.version == 4 or ipv6:
            starts.add(network.network_address)
            starts.update(_successor(network.broadcast_address))
    for first, last in reported:
        starts.add(first)
        starts.update(_successor(last))
    return sorted(starts, key=lambda a: (a.version, int(a)))


def _successor(address: Address) -> list[Address]:
    try:
        return [address + 1]
    except ipaddress.AddressValueError:
        return []


def _contains(span: tuple[Address, Address], address: Address) -> bool:
    return span[0].version == address.version and span[0] <= address <= span[1]


def actual_map(lines: list[Any], segments: list[Address]) -> dict[tuple[str, str], Connections]:
    by_pair: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for (src_kind, src), (dst_kind, dst), conns in lines:
        if src_kind == "pod" and dst_kind == "pod":
            by_pair[(src, dst)].append(conns)
            continue
        for start in segments:
            if src_kind == "ip" and _contains(src, start):
                by_pair[(str(start), dst)].append(conns)
            if dst_kind == "ip" and _contains(dst, start):
                by_pair[(src, str(start))].append(conns)
    return {pair: union(conns) for pair, conns in by_pair.items()}


def expected_map(
    declared: Declared, pods: list[Pod], segments: list[Address], bounds: list[int]
) -> dict[tuple[str, str], Connections]:
    result = {}
    for source in pods:
        for destination in [*pods, *segments]:
            if source is destination:
                continue
            result[(_name(source), _name(destination))] = expected_connections(declared, source, destination, bounds)
            if not isinstance(destination, Pod):
                result[(_name(destination), _name(source))] = expected_connections(
                    declared, source=destination, destination=source, bounds=bounds
                )
    return {pair: conns for pair, conns in result.items() if conns}


def _name(endpoint: Endpoint) -> str:
    return f"{endpoint.namespace}/{endpoint.name}" if isinstance(endpoint, Pod) else str(endpoint)


def differences(graph: dict[str, Any], policies: list[dict[str, Any]], tmp_path: Path) -> list[str]:
    declared = Declared(graph)
    pods, namespaces = world(graph, declared)
    ipv6 = any(n.version == 6 for n in declared.networks())
    lines = parse_nca(run_nca(tmp_path, policies, pods, namespaces, ipv6))
    assert lines, "nca printed no connections"
    segments = address_segments(declared, [e[1] for line in lines for e in line[:2] if e[0] == "ip"], ipv6)
    bounds = port_boundaries(declared, pods, [line[2] for line in lines])
    actual = actual_map(lines, segments)
    expected = expected_map(declared, pods, segments, bounds)
    wrong = []
    for pair in sorted(set(actual) | set(expected)):
        if actual.get(pair) != expected.get(pair):
            wrong.append(f"{pair[0]} => {pair[1]}: nca {actual.get(pair)} != declared {expected.get(pair)}")
    return wrong


def policies_for(graph: dict[str, Any]) -> list[dict[str, Any]]:
    return network_policies(graph) + default_deny_policies(graph)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_nca_connectivity_equals_the_declared_graph(name: str, tmp_path: Path) -> None:
    graph = GRAPHS[name]
    wrong = differences(graph, policies_for(graph), tmp_path)
    assert not wrong, f"{len(wrong)} differences:\n" + "\n".join(wrong[:30])


def test_every_inventory_graph_is_checked() -> None:
    """Once the inventories define threetier_network, they are part of the run (not only the fixtures)."""
    inventories = sorted(
        p.parents[2].name
        for p in Path(__file__).resolve().parents[2].glob("inventories/*/group_vars/all/*.yml")
        if "threetier_network:" in p.read_text()
    )
    assert [n for n in GRAPHS if n.startswith("inventory-")] == [f"inventory-{n}" for n in sorted(set(inventories))]


def test_nca_comparison_catches_an_extra_port(tmp_path: Path) -> None:
    """A harness that cannot fail proves nothing: widen the backend's ingress by one port and expect a difference."""
    graph = GRAPHS["graph_operator"]
    policies = policies_for(graph)
    backend = next(p for p in policies if p["metadata"]["name"] == "threetier-backend")
    backend["spec"]["ingress"][0]["ports"].append({"protocol": "TCP", "port": 22})
    wrong = differences(graph, policies, tmp_path)
    assert wrong, "the extra port went unnoticed"
    assert all("threetier/backend-" in w.split(" => ")[1] and "(22, 22)" in w for w in wrong), wrong
