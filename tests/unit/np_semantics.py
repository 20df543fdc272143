"""A small, independent evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1).

Written for the tests from the API reference, without any code of the plugin: given namespaces, pods and
policies, may this source reach this destination on this protocol and port? A connection is allowed when the
source's egress allows it (or no policy of type Egress selects the source) AND the destination's ingress
allows it (or no policy of type Ingress selects the destination). Traffic from or to an address outside the
cluster is judged only on the pod side. A pod reaching itself is not a network flow and is not asked about.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Policy = Mapping[str, Any]


@dataclass(frozen=True, eq=False)
class Pod:
    """A pod: its container ports are (name, protocol, number). Pods are distinct objects (identity equality)."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, str, int], ...] = ()

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def named_port(self, name: str, protocol: str) -> int | None:
        for port_name, port_protocol, number in self.ports:
            if port_name == name and port_protocol == protocol:
                return number
        return None


Endpoint = Pod | ipaddress.IPv4Address | ipaddress.IPv6Address


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """LabelSelector: matchLabels AND every matchExpression; an empty selector matches everything."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values") or [],
        )
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


class Cluster:
    """Namespaces (name -> labels), pods and policies; answers :meth:`allowed`."""

    def __init__(
        self,
        namespaces: Mapping[str, Mapping[str, str]],
        pods: Iterable[Pod],
        policies: Iterable[Policy],
    ) -> None:
        self.namespaces = {name: dict(labels) for name, labels in namespaces.items()}
        self.pods = list(pods)
        self.policies = list(policies)
        self._selecting: dict[tuple[Pod, str], list[Policy]] = {}

    def _types(self, policy: Policy) -> list[str]:
        spec = policy["spec"]
        if "policyTypes" in spec:
            return list(spec["policyTypes"])
        return ["Ingress", *(["Egress"] if "egress" in spec else [])]

    def selecting(self, pod: Pod, policy_type: str) -> list[Policy]:
        """Policies of the pod's namespace that select it and have the type (memoized: pods are frozen)."""
        key = (pod, policy_type)
        if key not in self._selecting:
            self._selecting[key] = self._select(pod, policy_type)
        return self._selecting[key]

    def _select(self, pod: Pod, policy_type: str) -> list[Policy]:
        return [
            policy
            for policy in self.policies
            if policy["metadata"]["namespace"] == pod.namespace
            and policy_type in self._types(policy)
            and selector_matches(policy["spec"].get("podSelector") or {}, pod.label_map)
        ]

    def _peer_matches(self, peer: Mapping[str, Any], endpoint: Endpoint, policy_namespace: str) -> bool:
        if "ipBlock" in peer:
            if isinstance(endpoint, Pod):
                return False
            block = peer["ipBlock"]
            network = ipaddress.ip_network(block["cidr"])
            if endpoint.version != network.version or endpoint not in network:
                return False
            return not any(
                endpoint in ipaddress.ip_network(e)
                for e in block.get("except") or []
                if ipaddress.ip_network(e).version == endpoint.version
            )
        if not isinstance(endpoint, Pod):
            return False
        if "namespaceSelector" in peer:
            namespace_labels = self.namespaces.get(endpoint.namespace, {})
            if not selector_matches(peer["namespaceSelector"], namespace_labels):
                return False
        elif endpoint.namespace != policy_namespace:
            return False
        return selector_matches(peer.get("podSelector") or {}, endpoint.label_map)

    @staticmethod
    def _port_matches(entry: Mapping[str, Any], destination: Endpoint, protocol: str, port: int) -> bool:
        if entry.get("protocol", "TCP") != protocol:
            return False
        if "port" not in entry:
            return True
        value = entry["port"]
        if isinstance(value, str):
            if not isinstance(destination, Pod):
                return False
            return destination.named_port(value, protocol) == port
        return value <= port <= entry.get("endPort", value)

    def _rule_allows(
        self,
        rule: Mapping[str, Any],
        peers_key: str,
        peer: Endpoint,
        destination: Endpoint,
        protocol: str,
        port: int,
        namespace: str,
    ) -> bool:
        peers = rule.get(peers_key) or []
        if peers and not any(self._peer_matches(p, peer, namespace) for p in peers):
            return False
        ports = rule.get("ports") or []
        return not ports or any(self._port_matches(entry, destination, protocol, port) for entry in ports)

    def egress_allows(self, source: Pod, destination: Endpoint, protocol: str, port: int) -> bool:
        policies = self.selecting(source, "Egress")
        if not policies:
            return True
        return any(
            self._rule_allows(rule, "to", destination, destination, protocol, port, source.namespace)
            for policy in policies
            for rule in policy["spec"].get("egress") or []
        )

    def ingress_allows(self, source: Endpoint, destination: Pod, protocol: str, port: int) -> bool:
        policies = self.selecting(destination, "Ingress")
        if not policies:
            return True
        return any(
            self._rule_allows(rule, "from", source, destination, protocol, port, destination.namespace)
            for policy in policies
            for rule in policy["spec"].get("ingress") or []
        )

    def unrestricted(self, endpoint: Endpoint) -> bool:
        """No policy selects the endpoint (an address is never selected)."""
        return not isinstance(endpoint, Pod) or not (
            self.selecting(endpoint, "Ingress") or self.selecting(endpoint, "Egress")
        )

    def allowed(self, source: Endpoint, destination: Endpoint, protocol: str, port: int) -> bool:
        if isinstance(source, Pod) and not self.egress_allows(source, destination, protocol, port):
            return False
        return not isinstance(destination, Pod) or self.ingress_allows(source, destination, protocol, port)
