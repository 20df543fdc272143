# Copyright: threetier.k8s maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a validated :class:`Graph` into NetworkPolicy manifests and default-deny policies.

Each managed component gets one policy in its namespace with both policy types: its ingress rules are
the edges that end at it, its egress rules the edges that start at it. Peers in another namespace are
selected by ``kubernetes.io/metadata.name`` AND the pod labels (one peer entry, so the two selectors
intersect). Rules are grouped by identical port sets, which keeps the allowed set exactly the union of
the edges (peer x ports within a rule is a cross product, and every peer of a rule has the same ports).
Everything is sorted, so the same graph always gives byte-identical YAML.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from ansible_collections.threetier.k8s.plugins.module_utils.network_graph import (
    METADATA_NAME_LABEL,
    Component,
    Edge,
    Graph,
    Port,
    cidr_sort_key,
    excepts_within,
    sorted_ports,
)

MANAGED_BY = "threetier.k8s"
LABEL_POLICY_SET = "threetier.k8s/policy-set"
LABEL_COMPONENT = "threetier.k8s/component"
LABEL_POLICY_KIND = "threetier.k8s/policy-kind"
DEFAULT_DENY_SUFFIX = "default-deny"

Manifest = dict[str, Any]


def _metadata(name: str, namespace: str, name_prefix: str, kind: str, component: str | None = None) -> Manifest:
    labels = {
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_POLICY_SET: name_prefix,
        LABEL_POLICY_KIND: kind,
    }
    if component is not None:
        labels[LABEL_COMPONENT] = component
    return {
        "name": name,
        "namespace": namespace,
        "labels": dict(sorted(labels.items())),
    }


def _port_entry(port: Port) -> Manifest:
    entry: Manifest = {"protocol": port.protocol, "port": port.port}
    if port.end_port is not None:
        entry["endPort"] = port.end_port
    return entry


def _pod_peer(component: Component, policy_namespace: str) -> Manifest:
    """Same namespace: the pod selector alone. Elsewhere: namespace AND pod selector in one entry."""
    pods = {"podSelector": {"matchLabels": component.labels}}
    if component.namespace == policy_namespace:
        return pods
    return {
        "namespaceSelector": {"matchLabels": {METADATA_NAME_LABEL: component.namespace}},
        **pods,
    }


def _ip_peer(cidr: str, excepts: list[str]) -> Manifest:
    block: Manifest = {"cidr": cidr}
    if excepts:
        block["except"] = excepts
    return {"ipBlock": block}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _rules(
    peer_ports: dict[str, set[Port]],
    peers: dict[str, tuple[tuple[Any, ...], Manifest]],
    direction: str,
) -> list[Manifest]:
    """One rule per distinct port set; its peers are every peer allowed exactly those ports."""
    by_ports: dict[tuple[Port, ...], list[str]] = defaultdict(list)
    for peer_key, ports in peer_ports.items():
        by_ports[tuple(sorted_ports(ports))].append(peer_key)
    rules = []
    for ports, peer_keys in by_ports.items():
        ordered = sorted(peer_keys, key=lambda key: peers[key][0])
        rules.append(
            {
                direction: [peers[key][1] for key in ordered],
                "ports": [_port_entry(port) for port in ports],
            }
        )
    return sorted(rules, key=_canonical)


def _component_key(component: Component) -> tuple[Any, ...]:
    return (0, component.namespace, component.pod_labels)


def _ingress(graph: Graph, component: Component, edges: Iterable[Edge]) -> list[Manifest]:
    peer_ports: dict[str, set[Port]] = defaultdict(set)
    peers: dict[str, tuple[tuple[Any, ...], Manifest]] = {}
    for edge in edges:
        if edge.target != component.name:
            continue
        source = graph.components[edge.source]
        peer_ports[source.name].update(edge.ports)
        peers[source.name] = (
            _component_key(source),
            _pod_peer(source, component.namespace),
        )
    return _rules(peer_ports, peers, "from")


def _egress(graph: Graph, component: Component, edges: Iterable[Edge]) -> list[Manifest]:
    peer_ports: dict[str, set[Port]] = defaultdict(set)
    peers: dict[str, tuple[tuple[Any, ...], Manifest]] = {}
    for edge in edges:
        if edge.source != component.name:
            continue
        if edge.target is not None:
            target = graph.components[edge.target]
            peer_ports[f"component:{target.name}"].update(edge.ports)
            peers[f"component:{target.name}"] = (
                _component_key(target),
                _pod_peer(target, component.namespace),
            )
        for cidr in edge.cidrs:
            holes = [hole for hole in edge.excepts if cidr in excepts_within([cidr], hole)]
            key = f"cidr:{cidr}|{','.join(holes)}"
            peer_ports[key].update(edge.ports)
            peers[key] = ((1, *cidr_sort_key(cidr), holes), _ip_peer(cidr, holes))
    return _rules(peer_ports, peers, "to")


def component_policy(graph: Graph, component: Component) -> Manifest:
    """The one policy of a managed component; an absent ingress/egress list (with its type) denies all."""
    spec: Manifest = {
        "podSelector": {"matchLabels": component.labels},
        "policyTypes": ["Ingress", "Egress"],
    }
    ingress = _ingress(graph, component, graph.edges)
    egress = _egress(graph, component, graph.edges)
    # Empty lists are left out: the API server drops them, and an explicit [] would make every apply a change.
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(
            f"{graph.name_prefix}-{component.name}",
            component.namespace,
            graph.name_prefix,
            "allow",
            component.name,
        ),
        "spec": spec,
    }


def network_policies(graph: Graph) -> list[Manifest]:
    """Every managed component's policy, sorted by namespace then name."""
    if not graph.enabled:
        return []
    managed = [c for c in graph.components.values() if c.managed]
    policies = [component_policy(graph, component) for component in managed]
    return sorted(policies, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))


def default_deny_policy(namespace: str, name_prefix: str) -> Manifest:
    """Selects every pod of the namespace and allows nothing in either direction."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(
            f"{name_prefix}-{DEFAULT_DENY_SUFFIX}",
            namespace,
            name_prefix,
            DEFAULT_DENY_SUFFIX,
        ),
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def default_deny_policies(namespaces: Iterable[str], name_prefix: str) -> list[Manifest]:
    return [default_deny_policy(namespace, name_prefix) for namespace in sorted(set(namespaces))]


def resolved_flows(graph: Graph) -> list[Manifest]:
    """Every edge as plain data, sorted by source, destination and origin."""
    flows = []
    for edge in graph.edges:
        source = graph.components[edge.source]
        target = graph.components[edge.target] if edge.target is not None else None
        flows.append(
            {
                "from": source.name,
                "from_namespace": source.namespace,
                "from_pod_labels": source.labels,
                "to": target.name if target else None,
                "to_namespace": target.namespace if target else None,
                "to_pod_labels": target.labels if target else None,
                "cidrs": list(edge.cidrs),
                "except": list(edge.excepts),
                "ports": [_port_entry(port) for port in sorted_ports(edge.ports)],
                "origin": edge.origin,
            }
        )
    return sorted(flows, key=lambda f: (f["from"], f["to"] or "", f["cidrs"], f["origin"]))
