"""Property tests: for random graphs the policies allow every declared flow and nothing else.

Hypothesis draws graphs (components in managed and peer namespaces, flows with numeric, ranged and named
ports over TCP/UDP/SCTP, CIDR egress, DNS on or off, no database, the operator or RDS). The generated policies
plus default-deny for the managed namespaces are judged by the independent evaluator of np_semantics against
the declared model of np_declared, for every (source pod, destination pod or address, protocol, port) probe.
The pods include two replicas per component, a stranger in every namespace and, in a namespace of its own,
an impostor carrying each component's labels (it must not pass for the component).
"""

from __future__ import annotations

import copy
import ipaddress
import os
import random
from typing import Any

import yaml
from ansible_collections.threetier.k8s.plugins.filter.default_deny_policies import (
    default_deny_policies,
)
from ansible_collections.threetier.k8s.plugins.filter.network_policies import (
    network_policies,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from np_declared import Declared
from np_semantics import Cluster, Endpoint, Pod

MANAGED_NAMESPACES = ("app", "data")
PEER_NAMESPACES = ("edge", "obs")
IMPOSTOR_NAMESPACE = "elsewhere"
PORT_NAMES = {"http": "TCP", "metrics": "TCP", "syslog": "UDP", "diameter": "SCTP"}
CIDR_POOL = (
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.2.0/24",
    "10.1.2.3/32",
    "192.168.0.0/16",
    "203.0.113.0/24",
    "2001:db8::/64",
)
HOLE_POOL = ("10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "169.254.169.254/32", "203.0.113.128/25", "2001:db8::/96")
PROTOCOLS = ("TCP", "UDP", "SCTP")
# THREETIER_HYPOTHESIS_EXAMPLES raises (nightly) or lowers (a quick local loop) the number of random graphs.
EXAMPLES = int(os.environ.get("THREETIER_HYPOTHESIS_EXAMPLES", "150"))

Graph = dict[str, Any]

port_numbers = st.one_of(st.sampled_from([53, 80, 443, 5432, 8008, 8080, 65535, 1]), st.integers(1, 65535))


@st.composite
def numeric_port(draw: st.DrawFn) -> Any:
    port = draw(port_numbers)
    protocol = draw(st.sampled_from(PROTOCOLS))
    if draw(st.booleans()):
        return {"port": port, "protocol": protocol}
    if port < 65535 and draw(st.booleans()):
        return {
            "port": port,
            "end_port": draw(st.integers(port, min(port + 40, 65535))),
            "protocol": protocol,
        }
    return port if protocol == "TCP" else {"port": port, "protocol": protocol}


@st.composite
def any_port(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from(sorted(PORT_NAMES)))
        return {"port": name, "protocol": PORT_NAMES[name]}
    return draw(numeric_port())


@st.composite
def components(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 5))
    result = {}
    for index in range(count):
        managed = index == 0 or draw(st.booleans())
        namespace = draw(st.sampled_from(MANAGED_NAMESPACES if managed else PEER_NAMESPACES))
        labels = {"app": f"c{index}"}
        if draw(st.booleans()):
            labels["tier"] = draw(st.sampled_from(["web", "api", "db"]))
        result[f"c{index}"] = {
            "namespace": namespace,
            "pod_labels": labels,
            "managed": managed,
        }
    return result


@st.composite
def database(draw: st.DrawFn, managed: list[str]) -> dict[str, Any] | None:
    mode = draw(st.sampled_from(["none", "operator", "rds"]))
    clients = draw(st.lists(st.sampled_from(managed), unique=True, max_size=2))
    port = draw(st.sampled_from([5432, 6432]))
    if mode == "rds":
        return {
            "mode": "rds",
            "clients": clients,
            "cidrs": draw(st.lists(st.sampled_from(CIDR_POOL[1:6]), min_size=1, max_size=2, unique=True)),
            "port": port,
        }
    if mode == "none":
        return None
    spec = {
        "mode": "operator",
        "namespace": "data",
        "cluster_name": "acid-x",
        "pooler": draw(st.booleans()),
        "clients": clients,
        "port": port,
    }
    operator_namespace = draw(st.sampled_from([None, "ops", "data"]))
    if operator_namespace:
        spec["operator_namespace"] = operator_namespace
    if draw(st.booleans()):
        store = draw(st.lists(st.sampled_from(CIDR_POOL), min_size=1, max_size=2, unique=True))
        spec["logical_backup"] = {"enabled": draw(st.booleans()), "cidrs": store, "ports": [draw(port_numbers)]}
    return spec


@st.composite
def egress_entry(draw: st.DrawFn, managed: list[str]) -> dict[str, Any]:
    """CIDR egress, sometimes with holes: only those strictly inside a chosen CIDR are valid input."""
    cidrs = draw(st.lists(st.sampled_from(CIDR_POOL), min_size=1, max_size=2, unique=True))
    networks = [ipaddress.ip_network(c) for c in cidrs]
    candidates = [
        hole
        for hole in HOLE_POOL
        if any(
            ipaddress.ip_network(hole).version == n.version
            and ipaddress.ip_network(hole).subnet_of(n)
            and ipaddress.ip_network(hole) != n
            for n in networks
        )
    ]
    entry = {"from": draw(st.sampled_from(managed)), "cidrs": cidrs}
    if candidates and draw(st.booleans()):
        entry["except"] = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=2, unique=True))
    entry["ports"] = draw(st.lists(numeric_port(), min_size=1, max_size=2))
    return entry


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    """Random graphs; flows may also name the built-in components (DNS, Spilo, pooler) when they exist."""
    comps = draw(components())
    managed = sorted(n for n in comps if comps[n]["managed"])
    dns = draw(st.sampled_from([{"enabled": False}, {}, {"cidrs": ["169.254.20.10/32"]}, {"port": 5353}]))
    db = draw(database(managed))
    is_managed = {name: spec["managed"] for name, spec in comps.items()}
    if dns.get("enabled", True):
        is_managed["kube-dns"] = False
    if db is not None and db["mode"] == "operator":
        is_managed["spilo"] = True
        if db["pooler"]:
            is_managed["pooler"] = True
        if db.get("logical_backup", {}).get("enabled"):
            is_managed["logical-backup"] = True
    names = sorted(is_managed)
    flows = []
    for _flow in range(draw(st.integers(1, 8))):
        source, target = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        if is_managed[source] or is_managed[target]:
            flows.append({"from": source, "to": target, "ports": draw(st.lists(any_port(), min_size=1, max_size=3))})
    if not flows:
        flows.append({"from": managed[0], "to": managed[0], "ports": [draw(any_port())]})
    graph: Graph = {
        "name_prefix": "prop",
        "dns": dns,
        "api_server": {"cidrs": ["10.96.0.1/32", "172.18.0.2/32"], "ports": [443, 6443]},
        "components": comps,
        "flows": flows,
        "egress": [draw(egress_entry(managed)) for _entry in range(draw(st.integers(0, 2)))],
    }
    if db is not None:
        graph["database"] = db
    return graph


# -------------------------------------------------------------------------------------------- the world


def _named_ports(rng: random.Random) -> tuple[tuple[str, str, int], ...]:
    """Each component listens on the named ports at numbers of its own, so a name means different numbers."""
    return tuple(
        (name, protocol, rng.choice([8080, 9090, 9100, 514, 3868, 443]))
        for name, protocol in sorted(PORT_NAMES.items())
    )


def build_world(graph: Graph, declared: Declared, seed: int) -> tuple[list[Pod], dict[str, dict[str, str]]]:
    rng = random.Random(seed)
    pods: list[Pod] = []
    for name, comp in sorted(declared.components.items()):
        ports = _named_ports(rng)
        labels = tuple(sorted({**dict(comp.labels), "pod-template-hash": "abc"}.items()))
        pods += [Pod(f"{name}-{replica}", comp.namespace, labels, ports) for replica in (0, 1)]
        pods.append(Pod(f"impostor-{name}", IMPOSTOR_NAMESPACE, comp.labels, ports))
    namespaces = sorted({p.namespace for p in pods} | set(MANAGED_NAMESPACES))
    pods += [Pod(f"stranger-{ns}", ns, (("app", "stranger"),), _named_ports(rng)) for ns in namespaces]
    return pods, {ns: {"kubernetes.io/metadata.name": ns, "team": "x"} for ns in namespaces}


def probe_ports(declared: Declared, pods: list[Pod]) -> list[int]:
    numbers = {1, 65535, 53}
    for port in declared.port_numbers():
        numbers.update({port - 1, port, port + 1})
    numbers.update(number for pod in pods for _name, _protocol, number in pod.ports)
    return sorted(n for n in numbers if 1 <= n <= 65535)


def probe_addresses(declared: Declared) -> list[Endpoint]:
    addresses: set[Endpoint] = {
        ipaddress.ip_address("8.8.8.8"),
        ipaddress.ip_address("2001:db9::1"),
    }
    for network in declared.networks():
        first, last = int(network.network_address), int(network.broadcast_address)
        family = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
        addresses.update(family(n) for n in (first - 1, first, last, last + 1) if 0 <= n < 2**network.max_prefixlen)
    return sorted(addresses, key=lambda a: (a.version, int(a)))


def mismatches(graph: Graph, seed: int) -> list[str]:
    declared = Declared(graph)
    policies = network_policies(graph) + default_deny_policies(sorted(declared.managed_namespaces), "prop")
    pods, namespaces = build_world(graph, declared, seed)
    cluster = Cluster(namespaces, pods, policies)
    ports = probe_ports(declared, pods)
    destinations: list[Endpoint] = [*pods, *probe_addresses(declared)]
    sources: list[Endpoint] = [*pods, *probe_addresses(declared)]
    wrong = []
    for source in sources:
        for destination in destinations:
            if source == destination or not (isinstance(source, Pod) or isinstance(destination, Pod)):
                continue
            if (
                cluster.unrestricted(source)
                and cluster.unrestricted(destination)
                and not (declared.constrained(source) or declared.constrained(destination))
            ):
                # Both views agree that nothing restricts this pair: one probe stands for all of them.
                pair_ports, pair_protocols = ports[:1], PROTOCOLS[:1]
            else:
                pair_ports, pair_protocols = ports, PROTOCOLS
            for protocol in pair_protocols:
                for port in pair_ports:
                    got = cluster.allowed(source, destination, protocol, port)
                    if got != declared.expected(source, destination, protocol, port):
                        wrong.append(
                            f"{_name(source)} -> {_name(destination)} {protocol}/{port}:"
                            f" policies {'allow' if got else 'deny'}"
                        )
                        if len(wrong) > 5:
                            return wrong
    return wrong


def _name(endpoint: Endpoint) -> str:
    return f"{endpoint.namespace}/{endpoint.name}" if isinstance(endpoint, Pod) else str(endpoint)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=graphs(), seed=st.integers(0, 2**16))
def test_policies_allow_exactly_the_declared_flows(graph: Graph, seed: int) -> None:
    wrong = mismatches(graph, seed)
    assert not wrong, "\n".join(wrong) + "\n" + yaml.safe_dump(graph)


@settings(max_examples=EXAMPLES, deadline=None)
@given(graph=graphs(), seed=st.randoms(use_true_random=False))
def test_output_does_not_depend_on_input_order(graph: Graph, seed: random.Random) -> None:
    shuffled = copy.deepcopy(graph)
    items = list(shuffled["components"].items())
    seed.shuffle(items)
    shuffled["components"] = dict(items)
    seed.shuffle(shuffled["flows"])
    for flow in shuffled["flows"]:
        seed.shuffle(flow["ports"])
    dumped = yaml.safe_dump_all(network_policies(graph))
    assert yaml.safe_dump_all(network_policies(shuffled)) == dumped
    assert "&id" not in dumped, "shared objects would turn into YAML anchors and aliases"


def test_the_checker_catches_a_leak(reference_graph: Graph) -> None:
    """The property would be vacuous if the evaluator and the model agreed on anything: widen one rule."""
    declared = Declared(reference_graph)
    policies = network_policies(reference_graph) + default_deny_policies(sorted(declared.managed_namespaces))
    backend = next(p for p in policies if p["metadata"]["name"] == "threetier-backend")
    backend["spec"]["ingress"][0]["ports"] = [{"protocol": "TCP", "port": 1, "endPort": 65535}]
    pods, namespaces = build_world(reference_graph, declared, 1)
    cluster = Cluster(namespaces, pods, policies)
    ingress_pod = next(p for p in pods if p.name == "ingress-0")
    backend_pod = next(p for p in pods if p.name == "backend-0")
    assert cluster.allowed(ingress_pod, backend_pod, "TCP", 22)
    assert not declared.expected(ingress_pod, backend_pod, "TCP", 22)


def test_the_checker_sees_namespace_selectors(reference_graph: Graph) -> None:
    """Dropping the namespaceSelector of a peer lets the impostor in another namespace through... or not at all."""
    declared = Declared(reference_graph)
    policies = network_policies(reference_graph) + default_deny_policies(sorted(declared.managed_namespaces))
    pods, namespaces = build_world(reference_graph, declared, 1)
    cluster = Cluster(namespaces, pods, policies)
    impostor = next(p for p in pods if p.name == "impostor-ingress")
    frontend = next(p for p in pods if p.name == "frontend-0")
    http = frontend.named_port("http", "TCP")
    assert http is not None
    assert not cluster.allowed(impostor, frontend, "TCP", http)
    assert cluster.allowed(next(p for p in pods if p.name == "ingress-1"), frontend, "TCP", http)
    frontend_policy = next(p for p in policies if p["metadata"]["name"] == "threetier-frontend")
    frontend_policy["spec"]["ingress"][0]["from"][0].pop("namespaceSelector")
    assert not Cluster(namespaces, pods, policies).allowed(
        next(p for p in pods if p.name == "ingress-1"), frontend, "TCP", http
    )
