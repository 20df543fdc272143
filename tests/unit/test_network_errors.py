"""Every bad input is an AnsibleFilterError that names the offending entry."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.threetier.k8s.plugins.filter.network_flows import network_flows
from ansible_collections.threetier.k8s.plugins.filter.network_graph_mermaid import (
    network_graph_mermaid,
)
from ansible_collections.threetier.k8s.plugins.filter.network_policies import (
    network_policies,
)

Graph = dict[str, Any]
Mutation = Callable[[Graph], None]


def _set(path: str, value: Any) -> Mutation:
    """Set a dotted path (list indexes as numbers) in the graph."""

    def mutate(graph: Graph) -> None:
        *parents, last = path.split(".")
        node: Any = graph
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(graph: Graph) -> None:
        *parents, last = path.split(".")
        node: Any = graph
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return mutate


def _append(path: str, value: Any) -> Mutation:
    def mutate(graph: Graph) -> None:
        node: Any = graph
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        node.append(value)

    return mutate


def _components_as_list_with_duplicate(graph: Graph) -> None:
    items = [{"name": name, **spec} for name, spec in graph["components"].items()]
    graph["components"] = [
        *items,
        {"name": "backend", "namespace": "other", "pod_labels": {"app": "b"}},
    ]


CASES: dict[str, tuple[Mutation, str]] = {
    # unknown component in a flow
    "unknown flow target": (
        _set("flows.0.to", "frontnd"),
        "threetier_network.flows[0] (ingress -> frontnd).to: unknown component 'frontnd'",
    ),
    "unknown flow source": (
        _set("flows.2.from", "grafana"),
        "flows[2] (grafana -> backend).from: unknown component 'grafana'",
    ),
    "unknown egress source": (
        _set("egress.0.from", "worker"),
        "egress[0] (worker -> CIDRs).from: unknown component 'worker'",
    ),
    "unknown database client": (
        _set("database.clients", ["backend", "queue"]),
        "database.clients[1]: unknown component 'queue'",
    ),
    # ports outside 1-65535
    "port zero": (
        _set("flows.1.ports", [{"port": 0}]),
        r"flows[1] (ingress -> backend).ports[0]: port 0 is outside 1-65535",
    ),
    "port too high": (
        _set("flows.1.ports", [65536]),
        r"flows[1] (ingress -> backend).ports[0]: port 65536 is outside 1-65535",
    ),
    "end_port too high": (
        _set("flows.1.ports", [{"port": 8000, "end_port": 70000}]),
        "flows[1] (ingress -> backend).ports[0]: port 70000 is outside",
    ),
    "end_port below port": (
        _set("flows.1.ports", [{"port": 8000, "end_port": 7999}]),
        "end_port 7999 is below port 8000",
    ),
    "end_port on a named port": (
        _set("flows.1.ports", [{"port": "http", "end_port": 9000}]),
        "end_port needs a numeric port, not the name 'http'",
    ),
    "boolean port": (_set("flows.1.ports", [True]), "port True is outside 1-65535"),
    "egress port out of range": (
        _set("egress.0.ports", [-1]),
        "egress[0] (backend -> CIDRs).ports[0]: port -1 is outside",
    ),
    "api server port out of range": (
        _set("api_server.ports", [443, 99999]),
        "api_server.ports[1]: port 99999 is outside",
    ),
    "database port out of range": (
        _set("database.port", 0),
        "database.port: port 0 is outside",
    ),
    "bad port name": (
        _set("flows.1.ports", ["HTTP_PORT"]),
        "port name 'HTTP_PORT' is not a valid container port name",
    ),
    "unknown protocol": (
        _set("flows.1.protocol", "ICMP"),
        "flows[1] (ingress -> backend): protocol 'ICMP' is not one of TCP, UDP, SCTP",
    ),
    "no ports": (
        _set("flows.1.ports", []),
        "flows[1] (ingress -> backend).ports: lists no ports",
    ),
    "named port to CIDRs": (
        _set("egress.0.ports", ["https"]),
        "egress[0] (backend -> CIDRs).ports: named port 'https' cannot match a CIDR destination",
    ),
    # invalid CIDRs
    "invalid egress CIDR": (
        _set("egress.0.cidrs", ["203.0.113.0/24", "203.0.113.300/32"]),
        "egress[0] (backend -> CIDRs).cidrs[1]: invalid CIDR '203.0.113.300/32'",
    ),
    "CIDR with host bits": (
        _set("egress.0.cidrs", ["203.0.113.1/24"]),
        "egress[0] (backend -> CIDRs).cidrs[0]: invalid CIDR '203.0.113.1/24': 203.0.113.1/24 has host bits set",
    ),
    "invalid API server CIDR": (
        _set("api_server.cidrs", ["10.96.0.1/33"]),
        "api_server.cidrs[0]: invalid CIDR '10.96.0.1/33'",
    ),
    "CIDR not a string": (
        _set("egress.0.cidrs", [167772160]),
        "egress[0] (backend -> CIDRs).cidrs[0]: CIDR 167772160 is not a string",
    ),
    "except outside the CIDRs": (
        _set("egress.0.except", ["198.51.100.0/24"]),
        "egress[0] (backend -> CIDRs).except[0]: '198.51.100.0/24' is not strictly inside any of 203.0.113.0/24",
    ),
    "except equal to the CIDR": (
        _set("egress.0.except", ["203.0.113.0/24"]),
        "egress[0] (backend -> CIDRs).except[0]: '203.0.113.0/24' is not strictly inside",
    ),
    "invalid except": (
        _set("egress.0.except", ["203.0.113.0/33"]),
        "egress[0] (backend -> CIDRs).except[0]: invalid CIDR '203.0.113.0/33'",
    ),
    "no CIDRs": (
        _set("egress.0.cidrs", []),
        "egress[0] (backend -> CIDRs).cidrs: lists no CIDRs",
    ),
    "rds without CIDRs": (
        _set("database", {"mode": "rds", "clients": ["backend"], "cidrs": []}),
        "database.cidrs: lists no CIDRs",
    ),
    "invalid database CIDR": (
        _set(
            "database",
            {"mode": "external", "clients": ["backend"], "cidrs": ["db.example.com"]},
        ),
        "database.cidrs[0]: invalid CIDR 'db.example.com'",
    ),
    # components without selector labels
    "empty pod labels": (
        _set("components.frontend.pod_labels", {}),
        "components.frontend.pod_labels: has no selector labels",
    ),
    "missing pod labels": (
        _delete("components.backend.pod_labels"),
        "components.backend.pod_labels: has no selector labels",
    ),
    "empty operator labels": (
        _set("database.operator_pod_labels", {}),
        "database.operator_pod_labels: has no selector labels",
    ),
    "bad label value": (
        _set("components.frontend.pod_labels", {"app": "front end"}),
        "components.frontend.pod_labels: label app='front end' is not a valid label value",
    ),
    "bad label key": (
        _set("components.frontend.pod_labels", {"-app": "x"}),
        "components.frontend.pod_labels: label key '-app' is not a valid label name",
    ),
    # duplicate component names
    "duplicate name in list form": (
        _components_as_list_with_duplicate,
        "components[4] (backend): duplicate component name 'backend'",
    ),
    "reserved built-in name": (
        _set("components.spilo", {"namespace": "x", "pod_labels": {"a": "b"}}),
        "components.spilo: duplicate component name 'spilo': it is built in",
    ),
    # empty flow list while enabled
    "empty flows": (
        _set("flows", []),
        "threetier_network.flows: is empty while policies are enabled",
    ),
    "missing flows": (
        _delete("flows"),
        "threetier_network.flows: is empty while policies are enabled",
    ),
    # ambiguity and enforcement
    "selector contained in another": (
        _set(
            "components.worker",
            {
                "namespace": "threetier",
                "pod_labels": {"app.kubernetes.io/name": "backend"},
            },
        ),
        "components.backend: the pod_labels of 'worker' are a subset of its own in namespace 'threetier'",
    ),
    "peer in a managed namespace": (
        _set(
            "components.cron",
            {
                "namespace": "threetier",
                "pod_labels": {"app.kubernetes.io/name": "cron"},
                "managed": False,
            },
        ),
        "components.cron: is managed: false but namespace 'threetier' holds managed components",
    ),
    "flow between two peers": (
        _set("flows.0.to", "prometheus"),
        "flows[0] (ingress -> prometheus): neither 'ingress' nor 'prometheus' is managed",
    ),
    "egress from a peer": (
        _set("egress.0.from", "ingress"),
        "egress[0] (ingress -> CIDRs): neither 'ingress' is managed",
    ),
    "unmanaged database client": (
        _set("database.clients", ["prometheus"]),
        "database.clients[0]: client 'prometheus' is managed: false",
    ),
    # structure
    "operator mode without API server": (
        _delete("api_server"),
        "api_server: is required in database mode 'operator'",
    ),
    "unknown database mode": (
        _set("database.mode", "aurora"),
        "database.mode: 'aurora' is not one of operator, rds, external",
    ),
    "invalid namespace": (
        _set("components.backend.namespace", "Three_Tier"),
        "components.backend.namespace: 'Three_Tier' is not a valid name",
    ),
    "missing namespace": (
        _delete("components.backend.namespace"),
        "components.backend: has no namespace",
    ),
    "invalid component name": (
        _set("components.Bad_Name", {"namespace": "x", "pod_labels": {"a": "b"}}),
        "components.Bad_Name: 'Bad_Name' is not a valid name",
    ),
    "unknown flow key": (
        _set("flows.0.port", 80),
        "flows[0] (ingress -> frontend): unknown keys ['port']",
    ),
    "misspelt database key": (
        _set("database.pooller", False),
        "database: unknown keys ['pooller']; expected some of mode, namespace, cluster_name, pooler,",
    ),
    "misspelt dns key": (_set("dns.namesapce", "dns"), "dns: unknown keys ['namesapce']"),
    "misspelt api server key": (_set("api_server.port", 443), "api_server: unknown keys ['port']"),
    "invalid node-local DNS CIDR": (_set("dns.cidrs", ["169.254.20.10/33"]), "dns.cidrs[0]: invalid CIDR"),
    "unknown top-level key": (
        _set("flow", []),
        r"threetier_network.(root): unknown keys ['flow']",
    ),
    "flows not a list": (
        _set("flows", {"from": "ingress"}),
        "threetier_network.flows: expected a list",
    ),
    "managed not a boolean": (
        _set("components.backend.managed", "yes"),
        "components.backend.managed: expected true or false, got 'yes'",
    ),
    "invalid name prefix": (
        _set("name_prefix", "Three Tier"),
        "name_prefix: 'Three Tier' is not a valid name",
    ),
}


@pytest.fixture
def graph(reference_graph: Graph) -> Graph:
    return copy.deepcopy(reference_graph)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_names_the_offending_entry(graph: Graph, case: str) -> None:
    mutate, message = CASES[case]
    mutate(graph)
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        network_policies(graph)


@pytest.mark.parametrize("render", [network_graph_mermaid, network_flows])
def test_every_filter_validates_the_same_way(graph: Graph, render: Callable[[Graph], Any]) -> None:
    graph["flows"][0]["to"] = "frontnd"
    with pytest.raises(
        AnsibleFilterError,
        match=re.escape("flows[0] (ingress -> frontnd).to: unknown component 'frontnd'"),
    ):
        render(graph)


def test_not_a_mapping() -> None:
    with pytest.raises(
        AnsibleFilterError,
        match=re.escape("threetier_network.(root): expected a mapping, got list"),
    ):
        network_policies([])


def test_disabled_graph_accepts_empty_flows(graph: Graph) -> None:
    graph["enabled"] = False
    graph["flows"] = []
    assert network_policies(graph) == []


def test_error_message_carries_the_filter_name(graph: Graph) -> None:
    graph["flows"] = []
    with pytest.raises(
        AnsibleFilterError,
        match=r"^threetier\.k8s\.network_policies: threetier_network\.flows",
    ):
        network_policies(graph)
