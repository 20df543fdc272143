"""What a flow graph means, written down independently of the plugin: the connections it declares.

This is the specification side of the property and network-config-analyzer tests. It reads the raw
``threetier_network`` mapping (assumed valid) and answers "is this connection declared?", built-in rules
included, straight from docs/interfaces.md and the issue:

- DNS: every managed component that sends anything may reach the DNS pods (and ``dns.cidrs``, a node-local
  cache) on UDP and TCP ``dns.port``;
- operator mode: Spilo <-> Spilo on the database port and 8008, Spilo -> API server CIDRs x ports, pooler -> Spilo,
  operator -> Spilo on the database port and 8008, operator -> API server when it shares a managed namespace,
  clients -> the pooler on the database port when there is one, else -> Spilo; with logical_backup enabled the
  backup pods (application=spilo-logical-backup) -> Spilo on the database port, -> the API server and -> the
  backup store's CIDRs (minus except) on its ports (443 by default);
- rds/external mode: clients -> database CIDRs on the database port.

Namespaces holding a managed component get default-deny; anything else is unconstrained. So a connection is
expected when (the source is unconstrained or declared) and (the destination is unconstrained or declared).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from np_semantics import Endpoint, Pod

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Comp:
    namespace: str
    labels: tuple[tuple[str, str], ...]
    managed: bool


@dataclass(frozen=True)
class Allow:
    """One declared (source, destination, protocol, port or port range or port name)."""

    source: str
    target: str | None
    networks: tuple[Network, ...]
    protocol: str
    port: int | str
    end_port: int
    holes: tuple[Network, ...] = ()

    def covers(self, address: Any) -> bool:
        """In a network and in none of the holes that network strictly contains."""
        for network in self.networks:
            if address.version != network.version or address not in network:
                continue
            inside = [h for h in self.holes if h.version == network.version and h.subnet_of(network) and h != network]
            if not any(address in h for h in inside):
                return True
        return False


def _ports(ports: list[Any], default_protocol: str) -> list[tuple[str, int | str, int]]:
    result = []
    for entry in ports:
        spec = entry if isinstance(entry, Mapping) else {"port": entry}
        protocol = spec.get("protocol", default_protocol).upper()
        port = spec["port"]
        port = int(port) if isinstance(port, str) and port.isdigit() else port
        end = spec.get("end_port") or port
        result.append((protocol, port, end if isinstance(port, int) else 0))
    return result


class Declared:
    """The declared connectivity of one graph."""

    def __init__(self, graph: Mapping[str, Any]) -> None:
        self.components: dict[str, Comp] = {}
        self._component_of: dict[Pod, str | None] = {}
        self.allows: list[Allow] = []
        self._user_components(graph)
        self._database(graph)
        for flow in graph.get("flows") or []:
            self._allow(
                flow["from"],
                flow["to"],
                (),
                _ports(flow["ports"], flow.get("protocol", "TCP")),
            )
        for entry in graph.get("egress") or []:
            networks = tuple(ipaddress.ip_network(c) for c in entry["cidrs"])
            self._allow(
                entry["from"],
                None,
                networks,
                _ports(entry["ports"], entry.get("protocol", "TCP")),
                tuple(ipaddress.ip_network(c) for c in entry.get("except") or []),
            )
        self._dns(graph)
        self.managed_namespaces = {c.namespace for c in self.components.values() if c.managed}

    def _user_components(self, graph: Mapping[str, Any]) -> None:
        raw = graph["components"]
        items = raw.items() if isinstance(raw, Mapping) else [(c["name"], c) for c in raw]
        for name, spec in items:
            labels = tuple(sorted((k, str(v)) for k, v in spec["pod_labels"].items()))
            self.components[name] = Comp(spec["namespace"], labels, spec.get("managed", True))

    def _allow(
        self,
        source: str,
        target: str | None,
        networks: tuple[Network, ...],
        ports: list[tuple[str, int | str, int]],
        holes: tuple[Network, ...] = (),
    ) -> None:
        for protocol, port, end in ports:
            self.allows.append(Allow(source, target, networks, protocol, port, end, holes))

    def _database(self, graph: Mapping[str, Any]) -> None:
        database = graph.get("database") or {}
        mode = database.get("mode")
        port = database.get("port", 5432)
        clients = database.get("clients") or []
        if mode in ("rds", "external"):
            networks = tuple(ipaddress.ip_network(c) for c in database["cidrs"])
            for client in clients:
                self._allow(client, None, networks, [("TCP", port, port)])
        if mode != "operator":
            return
        cluster = database["cluster_name"]
        namespace = database["namespace"]
        self.components["spilo"] = Comp(namespace, (("application", "spilo"), ("cluster-name", cluster)), True)
        api = graph["api_server"]
        api_networks = tuple(ipaddress.ip_network(c) for c in api["cidrs"])
        api_ports = [("TCP", p, p) for p in api.get("ports", [443, 6443])]
        self._allow("spilo", "spilo", (), [("TCP", port, port), ("TCP", 8008, 8008)])
        self._allow("spilo", None, api_networks, api_ports)
        target = "spilo"
        if database.get("pooler", True):
            self.components["pooler"] = Comp(
                namespace,
                (
                    ("application", "db-connection-pooler"),
                    ("connection-pooler", f"{cluster}-pooler"),
                ),
                True,
            )
            self._allow("pooler", "spilo", (), [("TCP", port, port)])
            target = "pooler"
        if database.get("operator_namespace"):
            operator_namespace = database["operator_namespace"]
            shares = operator_namespace in {c.namespace for c in self.components.values() if c.managed}
            labels = database.get("operator_pod_labels") or {"app.kubernetes.io/name": "postgres-operator"}
            self.components["postgres-operator"] = Comp(operator_namespace, tuple(sorted(labels.items())), shares)
            self._allow(
                "postgres-operator",
                "spilo",
                (),
                [("TCP", port, port), ("TCP", 8008, 8008)],
            )
            if shares:
                self._allow("postgres-operator", None, api_networks, api_ports)
        for client in clients:
            self._allow(client, target, (), [("TCP", port, port)])
        backup = database.get("logical_backup") or {}
        if backup.get("enabled"):
            labels = (("application", "spilo-logical-backup"), ("cluster-name", cluster))
            self.components["logical-backup"] = Comp(namespace, labels, True)
            self._allow("logical-backup", "spilo", (), [("TCP", port, port)])
            self._allow("logical-backup", None, api_networks, api_ports)
            store = tuple(ipaddress.ip_network(c) for c in backup["cidrs"])
            holes = tuple(ipaddress.ip_network(c) for c in backup.get("except") or [])
            self._allow("logical-backup", None, store, [("TCP", p, p) for p in backup.get("ports", [443])], holes)

    def _dns(self, graph: Mapping[str, Any]) -> None:
        dns = graph.get("dns") or {}
        if not dns.get("enabled", True):
            return
        labels = dns.get("pod_labels") or {"k8s-app": "kube-dns"}
        self.components["kube-dns"] = Comp(dns.get("namespace", "kube-system"), tuple(sorted(labels.items())), False)
        port = dns.get("port", 53)
        senders = {a.source for a in self.allows if self.components[a.source].managed}
        caches = tuple(ipaddress.ip_network(c) for c in dns.get("cidrs") or [])
        for sender in senders:
            self._allow(sender, "kube-dns", (), [("UDP", port, port), ("TCP", port, port)])
            if caches:
                self._allow(sender, None, caches, [("UDP", port, port), ("TCP", port, port)])

    # ------------------------------------------------------------------------------------------ queries

    def component_of(self, pod: Pod) -> str | None:
        if pod not in self._component_of:
            self._component_of[pod] = self._find_component(pod)
        return self._component_of[pod]

    def _find_component(self, pod: Pod) -> str | None:
        labels = pod.label_map
        for name, comp in self.components.items():
            if comp.namespace == pod.namespace and all(labels.get(k) == v for k, v in comp.labels):
                return name
        return None

    def constrained(self, endpoint: Endpoint) -> bool:
        return isinstance(endpoint, Pod) and endpoint.namespace in self.managed_namespaces

    def _allow_matches(
        self,
        allow: Allow,
        destination: Endpoint,
        target: str | None,
        protocol: str,
        port: int,
    ) -> bool:
        if allow.protocol != protocol:
            return False
        if isinstance(destination, Pod):
            if allow.target is None or allow.target != target:
                return False
            if isinstance(allow.port, str):
                return destination.named_port(allow.port, protocol) == port
        elif allow.target is not None or not allow.covers(destination):
            return False
        return isinstance(allow.port, int) and allow.port <= port <= allow.end_port

    def declared(self, source: Endpoint, destination: Endpoint, protocol: str, port: int) -> bool:
        if not isinstance(source, Pod):
            return False
        source_name = self.component_of(source)
        if source_name is None:
            return False
        target = self.component_of(destination) if isinstance(destination, Pod) else None
        return any(
            a.source == source_name and self._allow_matches(a, destination, target, protocol, port) for a in self.allows
        )

    def expected(self, source: Endpoint, destination: Endpoint, protocol: str, port: int) -> bool:
        declared = self.declared(source, destination, protocol, port)
        source_ok = not self.constrained(source) or declared
        destination_ok = not self.constrained(destination) or declared
        return source_ok and destination_ok

    def port_numbers(self) -> set[int]:
        """Every numeric port and range bound the graph mentions."""
        numbers: set[int] = set()
        for allow in self.allows:
            if isinstance(allow.port, int):
                numbers.update({allow.port, allow.end_port})
        return numbers

    def networks(self) -> set[Network]:
        """Every destination network and every hole in one (the boundaries where reachability can change)."""
        return {n for a in self.allows for n in (*a.networks, *a.holes)}
