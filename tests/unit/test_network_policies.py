"""One test per rule of the NetworkPolicy builder (issue 4, docs/interfaces.md "The network graph")."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.threetier.k8s.plugins.filter.default_deny_policies import (
    default_deny_policies,
)
from ansible_collections.threetier.k8s.plugins.filter.network_flows import network_flows
from ansible_collections.threetier.k8s.plugins.filter.network_graph_mermaid import (
    network_graph_mermaid,
)
from ansible_collections.threetier.k8s.plugins.filter.network_policies import (
    FilterModule,
    network_policies,
)

Graph = dict[str, Any]

BACKEND = {"app.kubernetes.io/instance": "backend", "app.kubernetes.io/name": "backend"}
FRONTEND = {
    "app.kubernetes.io/instance": "frontend",
    "app.kubernetes.io/name": "frontend",
}
SPILO = {"application": "spilo", "cluster-name": "acid-threetier"}
POOLER = {
    "application": "db-connection-pooler",
    "connection-pooler": "acid-threetier-pooler",
}
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}


def by_name(policies: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["metadata"]["name"]: p for p in policies}


def pods(labels: dict[str, str], namespace: str | None = None) -> dict[str, Any]:
    """A peer as the builder writes it: namespace selector only across namespaces."""
    peer: dict[str, Any] = {"podSelector": {"matchLabels": labels}}
    if namespace is not None:
        peer = {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            **peer,
        }
    return peer


def rules_with(rules: list[dict[str, Any]], key: str, peer: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The port lists of the rules that name ``peer``."""
    return [rule["ports"] for rule in rules if peer in rule[key]]


def tcp(*numbers: int | str) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": n} for n in numbers]


def small_graph(**overrides: Any) -> Graph:
    """Two components in one namespace, one peer elsewhere, no DNS and no database."""
    graph: Graph = {
        "name_prefix": "shop",
        "dns": {"enabled": False},
        "components": {
            "web": {"namespace": "shop", "pod_labels": {"app": "web"}},
            "api": {"namespace": "shop", "pod_labels": {"app": "api"}},
            "lb": {"namespace": "edge", "pod_labels": {"app": "lb"}, "managed": False},
        },
        "flows": [
            {"from": "lb", "to": "web", "ports": ["http"]},
            {"from": "web", "to": "api", "ports": [8000]},
        ],
    }
    graph.update(overrides)
    return graph


# ------------------------------------------------------------------------------------------- policies


def test_filter_module_exposes_the_filter() -> None:
    assert FilterModule().filters() == {"network_policies": network_policies}


def test_one_policy_per_managed_component_with_both_types_and_labels(
    reference_graph: Graph,
) -> None:
    policies = network_policies(reference_graph)
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in policies] == [
        ("threetier", "threetier-backend"),
        ("threetier", "threetier-frontend"),
        ("threetier-db", "threetier-pooler"),
        ("threetier-db", "threetier-spilo"),
    ]
    for policy in policies:
        assert policy["apiVersion"] == "networking.k8s.io/v1"
        assert policy["kind"] == "NetworkPolicy"
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        component = policy["metadata"]["name"].removeprefix("threetier-")
        assert policy["metadata"]["labels"] == {
            "app.kubernetes.io/managed-by": "threetier.k8s",
            "threetier.k8s/policy-set": "threetier",
            "threetier.k8s/policy-kind": "allow",
            "threetier.k8s/component": component,
        }
    assert by_name(policies)["threetier-backend"]["spec"]["podSelector"] == {"matchLabels": BACKEND}


def test_unmanaged_components_get_no_policy(reference_graph: Graph) -> None:
    namespaces = {p["metadata"]["namespace"] for p in network_policies(reference_graph)}
    assert namespaces == {"threetier", "threetier-db"}


def test_same_namespace_flow_is_egress_on_client_and_ingress_on_server() -> None:
    policies = by_name(network_policies(small_graph()))
    assert policies["shop-web"]["spec"]["egress"] == [{"to": [pods({"app": "api"})], "ports": tcp(8000)}]
    assert policies["shop-api"]["spec"]["ingress"] == [{"from": [pods({"app": "web"})], "ports": tcp(8000)}]


def test_cross_namespace_flow_selects_namespace_and_pods_in_one_peer_on_both_sides() -> None:
    graph = small_graph()
    graph["components"]["lb"]["managed"] = True
    policies = by_name(network_policies(graph))
    assert policies["shop-lb"]["metadata"]["namespace"] == "edge"
    assert policies["shop-lb"]["spec"]["egress"] == [{"to": [pods({"app": "web"}, "shop")], "ports": tcp("http")}]
    assert policies["shop-web"]["spec"]["ingress"] == [{"from": [pods({"app": "lb"}, "edge")], "ports": tcp("http")}]


def test_a_direction_without_rules_is_left_out_and_denied_by_its_type() -> None:
    spec = by_name(network_policies(small_graph()))["shop-api"]["spec"]
    assert "egress" not in spec
    assert spec["policyTypes"] == ["Ingress", "Egress"]


def test_dns_egress_for_every_component_that_sends(reference_graph: Graph) -> None:
    policies = by_name(network_policies(reference_graph))
    for name in ("threetier-backend", "threetier-pooler", "threetier-spilo"):
        assert rules_with(policies[name]["spec"]["egress"], "to", DNS_PEER) == [
            [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]
        ]
    assert "egress" not in policies["threetier-frontend"]["spec"], (
        "the frontend sends nothing, so it gets no DNS either"
    )


def test_dns_can_be_moved_or_disabled(reference_graph: Graph) -> None:
    reference_graph["dns"] = {
        "namespace": "dns",
        "pod_labels": {"app": "coredns"},
        "port": 5353,
    }
    backend = by_name(network_policies(reference_graph))["threetier-backend"]["spec"]["egress"]
    peer = pods({"app": "coredns"}, "dns")
    assert rules_with(backend, "to", peer) == [[{"protocol": "TCP", "port": 5353}, {"protocol": "UDP", "port": 5353}]]
    reference_graph["dns"] = {"enabled": False}
    for policy in network_policies(reference_graph):
        assert all(rule["ports"][0]["port"] not in (53, 5353) for rule in policy["spec"].get("egress", []))


def test_dns_may_include_a_node_local_cache(reference_graph: Graph) -> None:
    reference_graph["dns"]["cidrs"] = ["169.254.20.10/32"]
    egress = by_name(network_policies(reference_graph))["threetier-backend"]["spec"]["egress"]
    dns_ports = [{"protocol": "TCP", "port": 53}, {"protocol": "UDP", "port": 53}]
    assert {"to": [DNS_PEER, {"ipBlock": {"cidr": "169.254.20.10/32"}}], "ports": dns_ports} in egress


def test_spilo_reaches_spilo_on_postgres_and_patroni(reference_graph: Graph) -> None:
    spec = by_name(network_policies(reference_graph))["threetier-spilo"]["spec"]
    assert rules_with(spec["egress"], "to", pods(SPILO)) == [tcp(5432, 8008)]
    assert tcp(5432, 8008) in rules_with(spec["ingress"], "from", pods(SPILO))


def test_spilo_reaches_the_api_server_for_the_leader_lock(
    reference_graph: Graph,
) -> None:
    egress = by_name(network_policies(reference_graph))["threetier-spilo"]["spec"]["egress"]
    assert {
        "to": [
            {"ipBlock": {"cidr": "10.96.0.1/32"}},
            {"ipBlock": {"cidr": "127.0.0.1/32"}},
        ],
        "ports": tcp(443, 6443),
    } in egress


def test_pooler_reaches_spilo(reference_graph: Graph) -> None:
    policies = by_name(network_policies(reference_graph))
    assert rules_with(policies["threetier-pooler"]["spec"]["egress"], "to", pods(SPILO)) == [tcp(5432)]
    assert rules_with(policies["threetier-spilo"]["spec"]["ingress"], "from", pods(POOLER)) == [tcp(5432)]


def test_operator_reaches_spilo_when_its_namespace_is_given(
    reference_graph: Graph,
) -> None:
    operator = pods({"app.kubernetes.io/name": "postgres-operator"}, "postgres-operator")
    ingress = by_name(network_policies(reference_graph))["threetier-spilo"]["spec"]["ingress"]
    assert rules_with(ingress, "from", operator) == [tcp(5432, 8008)]
    del reference_graph["database"]["operator_namespace"]
    ingress = by_name(network_policies(reference_graph))["threetier-spilo"]["spec"]["ingress"]
    assert rules_with(ingress, "from", operator) == []


def test_operator_next_to_spilo_gets_its_own_policy(reference_graph: Graph) -> None:
    reference_graph["database"]["operator_namespace"] = "threetier-db"
    policies = by_name(network_policies(reference_graph))
    operator = policies["threetier-postgres-operator"]["spec"]
    assert rules_with(operator["egress"], "to", pods(SPILO)) == [tcp(5432, 8008)]
    assert {
        "to": [
            {"ipBlock": {"cidr": "10.96.0.1/32"}},
            {"ipBlock": {"cidr": "127.0.0.1/32"}},
        ],
        "ports": tcp(443, 6443),
    } in operator["egress"]
    assert "ingress" not in operator


def test_clients_reach_the_pooler_only_in_operator_mode(
    reference_graph: Graph,
) -> None:
    policies = by_name(network_policies(reference_graph))
    egress = policies["threetier-backend"]["spec"]["egress"]
    assert {"to": [pods(POOLER, "threetier-db")], "ports": tcp(5432)} in egress
    assert rules_with(egress, "to", pods(SPILO, "threetier-db")) == []
    assert policies["threetier-pooler"]["spec"]["ingress"] == [
        {"from": [pods(BACKEND, "threetier")], "ports": tcp(5432)}
    ]
    assert rules_with(policies["threetier-spilo"]["spec"]["ingress"], "from", pods(BACKEND, "threetier")) == []


BACKUP = {"application": "spilo-logical-backup", "cluster-name": "acid-threetier"}


def test_logical_backup_pods_reach_spilo_the_api_server_and_the_store(reference_graph: Graph) -> None:
    reference_graph["database"]["logical_backup"] = {
        "enabled": True,
        "cidrs": ["0.0.0.0/0"],
        "except": ["169.254.169.254/32"],
    }
    policies = by_name(network_policies(reference_graph))
    backup = policies["threetier-logical-backup"]["spec"]
    assert backup["podSelector"] == {"matchLabels": BACKUP}
    assert rules_with(backup["egress"], "to", pods(SPILO)) == [tcp(5432)]
    assert {
        "to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}, {"ipBlock": {"cidr": "127.0.0.1/32"}}],
        "ports": tcp(443, 6443),
    } in backup["egress"]
    assert {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}], "ports": tcp(443)} in backup[
        "egress"
    ]
    assert "ingress" not in backup
    assert tcp(5432) in rules_with(policies["threetier-spilo"]["spec"]["ingress"], "from", pods(BACKUP))


def test_logical_backup_off_adds_nothing(reference_graph: Graph) -> None:
    reference_graph["database"]["logical_backup"] = {"enabled": False, "cidrs": ["10.0.0.0/8"]}
    assert "threetier-logical-backup" not in by_name(network_policies(reference_graph))


def test_logical_backup_needs_the_store_cidrs(reference_graph: Graph) -> None:
    reference_graph["database"]["logical_backup"] = {"enabled": True}
    with pytest.raises(AnsibleFilterError, match=r"database\.logical_backup\.cidrs: is empty"):
        network_policies(reference_graph)


def test_without_pooler_clients_reach_spilo_only(reference_graph: Graph) -> None:
    reference_graph["database"]["pooler"] = False
    policies = by_name(network_policies(reference_graph))
    assert "threetier-pooler" not in policies
    assert rules_with(
        policies["threetier-backend"]["spec"]["egress"],
        "to",
        pods(SPILO, "threetier-db"),
    ) == [tcp(5432)]


@pytest.mark.parametrize("mode", ["rds", "external"])
def test_clients_reach_database_cidrs_outside_operator_mode(reference_graph: Graph, mode: str) -> None:
    reference_graph["database"] = {
        "mode": mode,
        "clients": ["backend"],
        "cidrs": ["10.20.1.0/24", "10.20.0.0/24"],
        "port": 5432,
    }
    policies = by_name(network_policies(reference_graph))
    assert set(policies) == {"threetier-backend", "threetier-frontend"}
    egress = policies["threetier-backend"]["spec"]["egress"]
    assert {
        "to": [
            {"ipBlock": {"cidr": "10.20.0.0/24"}},
            {"ipBlock": {"cidr": "10.20.1.0/24"}},
        ],
        "ports": tcp(5432),
    } in egress


def test_ingress_controller_and_prometheus_flows_come_from_the_graph(
    reference_graph: Graph,
) -> None:
    policies = by_name(network_policies(reference_graph))
    ingress_nginx = pods({"app.kubernetes.io/name": "ingress-nginx"}, "ingress-nginx")
    assert policies["threetier-frontend"]["spec"]["ingress"] == [{"from": [ingress_nginx], "ports": tcp("http")}]
    backend = policies["threetier-backend"]["spec"]["ingress"]
    assert rules_with(backend, "from", ingress_nginx) == [tcp("http")]
    assert rules_with(backend, "from", pods({"app.kubernetes.io/name": "prometheus"}, "monitoring")) == [tcp("metrics")]


def test_named_ports_ranges_protocols_and_shorthands() -> None:
    graph = small_graph(
        flows=[
            {
                "from": "web",
                "to": "api",
                "ports": [
                    8000,
                    "9000",
                    "grpc",
                    {"port": 7000, "end_port": 7010},
                    {"port": 53, "protocol": "udp"},
                ],
            },
            {"from": "web", "to": "api", "protocol": "SCTP", "ports": [{"port": 3868}]},
        ]
    )
    ingress = by_name(network_policies(graph))["shop-api"]["spec"]["ingress"]
    assert ingress == [
        {
            "from": [pods({"app": "web"})],
            "ports": [
                {"protocol": "SCTP", "port": 3868},
                {"protocol": "TCP", "port": 7000, "endPort": 7010},
                {"protocol": "TCP", "port": 8000},
                {"protocol": "TCP", "port": 9000},
                {"protocol": "TCP", "port": "grpc"},
                {"protocol": "UDP", "port": 53},
            ],
        }
    ]


def test_a_range_of_one_port_is_a_plain_port() -> None:
    graph = small_graph(flows=[{"from": "web", "to": "api", "ports": [{"port": 8000, "end_port": 8000}]}])
    assert by_name(network_policies(graph))["shop-api"]["spec"]["ingress"][0]["ports"] == tcp(8000)


def test_flows_from_one_peer_merge_and_duplicates_vanish() -> None:
    graph = small_graph(
        flows=[
            {"from": "web", "to": "api", "ports": [8000]},
            {"from": "web", "to": "api", "ports": [8001, 8000]},
            {"from": "web", "to": "api", "ports": [8000]},
        ]
    )
    assert by_name(network_policies(graph))["shop-api"]["spec"]["ingress"] == [
        {"from": [pods({"app": "web"})], "ports": tcp(8000, 8001)}
    ]


def test_peers_with_the_same_ports_share_a_rule_and_others_do_not() -> None:
    graph = small_graph(
        components={
            "a": {"namespace": "n", "pod_labels": {"app": "a"}},
            "b": {"namespace": "n", "pod_labels": {"app": "b"}},
            "c": {"namespace": "n", "pod_labels": {"app": "c"}},
            "d": {"namespace": "n", "pod_labels": {"app": "d"}},
        },
        flows=[
            {"from": "b", "to": "a", "ports": [80]},
            {"from": "c", "to": "a", "ports": [80]},
            {"from": "d", "to": "a", "ports": [81]},
        ],
    )
    ingress = by_name(network_policies(graph))["shop-a"]["spec"]["ingress"]
    assert ingress == [
        {"from": [pods({"app": "b"}), pods({"app": "c"})], "ports": tcp(80)},
        {"from": [pods({"app": "d"})], "ports": tcp(81)},
    ]


def test_egress_to_external_cidrs_and_bare_addresses() -> None:
    graph = small_graph(
        egress=[
            {
                "from": "api",
                "cidrs": ["2001:db8::/64", "203.0.113.7", "198.51.100.0/24"],
                "ports": [443],
            }
        ]
    )
    egress = by_name(network_policies(graph))["shop-api"]["spec"]["egress"]
    assert egress == [
        {
            "to": [{"ipBlock": {"cidr": c}} for c in ("198.51.100.0/24", "203.0.113.7/32", "2001:db8::/64")],
            "ports": tcp(443),
        }
    ]


def test_egress_except_cuts_holes_into_the_cidrs_that_contain_them() -> None:
    graph = small_graph(
        egress=[
            {
                "from": "api",
                "cidrs": ["0.0.0.0/0", "10.0.0.0/8"],
                "except": ["169.254.169.254/32", "10.1.0.0/16"],
                "ports": [443],
            }
        ]
    )
    egress = by_name(network_policies(graph))["shop-api"]["spec"]["egress"]
    assert egress == [
        {
            "to": [
                {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.1.0.0/16", "169.254.169.254/32"]}},
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
            ],
            "ports": tcp(443),
        }
    ]
    assert network_flows(graph)[0]["except"] == ["10.1.0.0/16", "169.254.169.254/32"]
    assert "except 169.254.169.254/32" in network_graph_mermaid(graph)


def test_components_may_be_a_list(reference_graph: Graph) -> None:
    as_list = copy.deepcopy(reference_graph)
    as_list["components"] = [{"name": name, **spec} for name, spec in reference_graph["components"].items()]
    assert network_policies(as_list) == network_policies(reference_graph)


def test_output_is_deterministic_whatever_the_input_order(
    reference_graph: Graph,
) -> None:
    expected = yaml.safe_dump_all(network_policies(reference_graph), sort_keys=False)
    shuffler = random.Random(4)
    for _round in range(5):
        shuffled = copy.deepcopy(reference_graph)
        items = list(shuffled["components"].items())
        shuffler.shuffle(items)
        shuffled["components"] = dict(items)
        shuffler.shuffle(shuffled["flows"])
        shuffled["api_server"]["cidrs"].reverse()
        assert yaml.safe_dump_all(network_policies(shuffled), sort_keys=False) == expected


def test_disabled_graph_gives_no_policies() -> None:
    assert network_policies(small_graph(enabled=False, flows=[])) == []


def test_name_prefix_names_and_labels_the_policies() -> None:
    policy = network_policies(small_graph(name_prefix="blue"))[0]
    assert policy["metadata"]["name"].startswith("blue-")
    assert policy["metadata"]["labels"]["threetier.k8s/policy-set"] == "blue"


# ------------------------------------------------------------------------------------------- default deny


def test_default_deny_from_a_namespace_list() -> None:
    policies = default_deny_policies(["b", "a", "b"], "shop")
    assert [p["metadata"]["namespace"] for p in policies] == ["a", "b"]
    assert policies[0] == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "shop-default-deny",
            "namespace": "a",
            "labels": {
                "app.kubernetes.io/managed-by": "threetier.k8s",
                "threetier.k8s/policy-kind": "default-deny",
                "threetier.k8s/policy-set": "shop",
            },
        },
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def test_default_deny_from_the_graph_covers_managed_namespaces(
    reference_graph: Graph,
) -> None:
    policies = default_deny_policies(reference_graph)
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in policies] == [
        ("threetier", "threetier-default-deny"),
        ("threetier-db", "threetier-default-deny"),
    ]
    assert default_deny_policies(["x"])[0]["metadata"]["name"] == "threetier-default-deny"
    reference_graph["enabled"] = False
    assert default_deny_policies(reference_graph) == []


@pytest.mark.parametrize(
    ("namespaces", "message"),
    [
        (["ok", "Not_OK"], "namespaces[1]"),
        ("threetier", "expected a list"),
        ([""], "namespaces[0]"),
    ],
)
def test_default_deny_rejects_bad_namespaces(namespaces: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        default_deny_policies(namespaces)


# ------------------------------------------------------------------------------------------- diagram and flows


def test_mermaid_draws_namespaces_components_ports_and_cidrs(
    reference_graph: Graph,
) -> None:
    text = network_graph_mermaid(reference_graph)
    assert text.startswith("flowchart LR\n") and text.endswith("\n")
    assert '  subgraph ns_threetier_db["namespace threetier-db"]' in text
    assert '    c_spilo["spilo"]' in text
    assert '    c_ingress(["ingress"])' in text
    assert '  c_spilo -->|"TCP/5432, TCP/8008"| c_spilo' in text
    assert '  c_ingress -->|"TCP/http"| c_frontend' in text
    assert '  net_0[/"api-server<br/>10.96.0.1/32<br/>127.0.0.1/32"/]' in text
    assert '  c_spilo -->|"TCP/443, TCP/6443"| net_0' in text
    assert "class c_ingress,c_kube_dns,c_postgres_operator,c_prometheus peer" in text


def test_mermaid_options_and_determinism(reference_graph: Graph) -> None:
    text = network_graph_mermaid(reference_graph, direction="TB", show_dns=False)
    assert text.startswith("flowchart TB\n")
    assert "kube_dns" not in text
    assert network_graph_mermaid(copy.deepcopy(reference_graph)) == network_graph_mermaid(reference_graph)
    with pytest.raises(AnsibleFilterError, match="direction 'sideways'"):
        network_graph_mermaid(reference_graph, direction="sideways")
    with pytest.raises(AnsibleFilterError, match="show_dns"):
        network_graph_mermaid(reference_graph, show_dns="no")


def test_mermaid_without_dns_hides_the_built_in_dns_flows_only(reference_graph: Graph) -> None:
    reference_graph["dns"]["cidrs"] = ["169.254.20.10/32"]
    text = network_graph_mermaid(reference_graph, show_dns=False)
    assert "169.254.20.10" not in text and "kube_dns" not in text
    reference_graph["flows"].append({"from": "backend", "to": "kube-dns", "ports": [{"port": 9153}]})
    text = network_graph_mermaid(reference_graph, show_dns=False)
    assert '  c_backend -->|"TCP/9153"| c_kube_dns' in text
    assert '    c_kube_dns(["kube-dns"])' in text
    assert 'c_pooler -->|"TCP/53, UDP/53"|' not in text


def test_mermaid_labels_external_cidrs_with_their_name() -> None:
    graph = small_graph(
        egress=[
            {
                "from": "api",
                "name": "payments",
                "cidrs": ["198.51.100.0/24"],
                "ports": [443],
            }
        ]
    )
    assert 'net_0[/"payments<br/>198.51.100.0/24"/]' in network_graph_mermaid(graph)


def test_network_flows_lists_built_in_and_declared_flows(
    reference_graph: Graph,
) -> None:
    flows = network_flows(reference_graph)
    origins = {(f["from"], f["to"], f["origin"]) for f in flows}
    assert ("backend", "pooler", "database.clients (backend)") in origins
    assert ("spilo", "kube-dns", "dns") in origins
    assert ("ingress", "frontend", "flows[0] (ingress -> frontend)") in origins
    api = next(f for f in flows if f["origin"] == "database: Patroni leader lock in the API server")
    assert api["cidrs"] == ["10.96.0.1/32", "127.0.0.1/32"] and api["to"] is None
    assert api["ports"] == tcp(443, 6443)
    assert flows == sorted(flows, key=lambda f: (f["from"], f["to"] or "", f["cidrs"], f["origin"]))
