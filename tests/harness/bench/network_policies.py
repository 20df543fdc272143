#!/usr/bin/env python
"""Benchmark of threetier.k8s.network_policies: a graph of 200 components and 1,000 flows (goal: under 1 s).

Usage: ``python -m tests.harness.bench.network_policies [--components N] [--flows N] [--repeat N] [--seed N]``.
The graph is random but seeded: components spread over 10 namespaces (a fifth of them unmanaged peers), flows
with one to three numeric, ranged or named ports, some CIDR egress, DNS on and the operator database with clients.
Prints the best and median wall time of the filter (validation + build) and of the Mermaid rendering.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.harness.collection import expose_collection


def _port(rng: random.Random) -> Any:
    kind = rng.random()
    if kind < 0.2:
        return rng.choice(["http", "metrics", "grpc"])
    port = rng.randint(1, 65000)
    if kind < 0.4:
        return {"port": port, "end_port": port + rng.randint(1, 100)}
    return {"port": port, "protocol": rng.choice(["TCP", "TCP", "UDP"])}


def build_graph(components: int, flows: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    comps = {}
    for index in range(components):
        managed = index % 5 != 4
        namespace = f"ns-{index % 8}" if managed else f"peer-{index % 2}"
        comps[f"c{index}"] = {
            "namespace": namespace,
            "pod_labels": {"app": f"c{index}", "tier": "x"},
            "managed": managed,
        }
    names = sorted(comps)
    managed_names = [n for n in names if comps[n]["managed"]]
    flow_list = []
    while len(flow_list) < flows:
        source, target = rng.choice(names), rng.choice(names)
        if comps[source]["managed"] or comps[target]["managed"]:
            flow_list.append(
                {"from": source, "to": target, "ports": [_port(rng) for _index in range(rng.randint(1, 3))]}
            )
    egress = [
        {"from": rng.choice(managed_names), "cidrs": [f"10.{i}.0.0/16", f"192.168.{i}.0/24"], "ports": [443]}
        for i in range(20)
    ]
    return {
        "name_prefix": "bench",
        "api_server": {"cidrs": ["10.96.0.1/32"], "ports": [443, 6443]},
        "database": {
            "mode": "operator",
            "namespace": "ns-0",
            "cluster_name": "acid-bench",
            "operator_namespace": "postgres-operator",
            "clients": managed_names[:20],
        },
        "components": comps,
        "flows": flow_list,
        "egress": egress,
    }


def timed(function: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _run in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return times, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", type=int, default=200)
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds; exit 1 when the best run is slower")
    args = parser.parse_args()
    expose_collection("threetier-bench-")
    from ansible_collections.threetier.k8s.plugins.filter.network_graph_mermaid import network_graph_mermaid
    from ansible_collections.threetier.k8s.plugins.filter.network_policies import network_policies

    graph = build_graph(args.components, args.flows, args.seed)
    policy_times, policies = timed(lambda: network_policies(graph), args.repeat)
    diagram_times, diagram = timed(lambda: network_graph_mermaid(graph), args.repeat)
    rules = sum(len(p["spec"].get("ingress", [])) + len(p["spec"].get("egress", [])) for p in policies)
    print(f"graph: {args.components} components, {args.flows} flows -> {len(policies)} policies, {rules} rules")
    print(f"network_policies:      best {min(policy_times):.3f} s, median {statistics.median(policy_times):.3f} s")
    print(f"network_graph_mermaid: best {min(diagram_times):.3f} s, median {statistics.median(diagram_times):.3f} s")
    print(f"diagram: {diagram.count(chr(10))} lines")
    if min(policy_times) >= args.budget:
        print(f"slower than the budget of {args.budget} s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
