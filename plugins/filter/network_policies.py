# Copyright: threetier.k8s maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``threetier.k8s.network_policies`` filter: flow graph -> NetworkPolicy manifests."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.threetier.k8s.plugins.module_utils.network_graph import (
    NetworkGraphError,
    parse_graph,
)
from ansible_collections.threetier.k8s.plugins.module_utils.network_policy import (
    network_policies as build,
)

DOCUMENTATION = r"""
name: network_policies
short_description: Build least-privilege NetworkPolicies from a declarative flow graph
version_added: 1.0.0
author: threetier.k8s maintainers
description:
  - Turns the flow graph of the application (C(threetier_network) in the inventory) into one
    C(networking.k8s.io/v1) NetworkPolicy per managed component, with both C(Ingress) and C(Egress) policy types.
  - Together with the default-deny policy of each namespace (see P(threetier.k8s.default_deny_policies#filter)),
    the policies allow exactly the declared flows and nothing else.
  - Every flow becomes an egress rule on the client and an ingress rule on the server, each side only when that
    side is managed. A peer in another namespace is selected by its C(kubernetes.io/metadata.name) namespace label
    AND its pod labels, in one peer entry.
  - "Built in: DNS egress (UDP and TCP) to the DNS pods for every managed component that sends anything, unless
    O(_input.dns.enabled=false); in database mode C(operator) the Zalando Spilo pods (C(application=spilo),
    C(cluster-name=<cluster_name>)) reach each other on the database port and on 8008 (Patroni) and the API server
    CIDRs (Patroni's leader lock), the pooler pods (C(application=db-connection-pooler),
    C(connection-pooler=<cluster_name>-pooler)) reach Spilo, the operator
    (when O(_input.database.operator_namespace) is set)
    reaches Spilo on the database port (it manages roles over SQL) and on 8008, and every database client reaches
    Spilo and the pooler; in modes C(rds) and C(external) every client reaches the database CIDRs on the database port."
  - The built-in components are named C(spilo), C(pooler), C(postgres-operator) and C(kube-dns);
    flows may refer to them.
  - The output is sorted (policies by namespace and name, rules, peers and ports canonically), so the same graph
    always renders to the same YAML. Empty rule lists are left out (the type alone denies that direction).
  - Every policy carries the labels C(app.kubernetes.io/managed-by=threetier.k8s),
    C(threetier.k8s/policy-set=<name_prefix>), C(threetier.k8s/policy-kind=allow) and
    C(threetier.k8s/component=<component>), so stale policies can be pruned by label.
  - Invalid input raises an error that names the offending entry, for example the index and both ends of a bad flow;
    the message starts with V(threetier_network.flows[2] (ingress -> frontnd\).to).
options:
  _input:
    description: The flow graph.
    type: dict
    required: true
    suboptions:
      name_prefix:
        description:
          - Policies are named C(<name_prefix>-<component>); also the value of the C(threetier.k8s/policy-set) label.
        type: str
        default: threetier
      enabled:
        description: When false the filter returns an empty list (and an empty O(_input.flows) is accepted).
        type: bool
        default: true
      components:
        description:
          - Components by name (a mapping), or a list of mappings with a C(name) key
            (the list form reports duplicate names).
          - Names are lowercase DNS labels; C(spilo), C(pooler), C(postgres-operator) and C(kube-dns) are reserved.
          - Two components in one namespace must not be able to select the same pod (they need a common label key with
            different values); a component with C(managed=false) must not share a namespace with managed components.
        type: raw
        required: true
        suboptions:
          namespace:
            description: Namespace of the pods.
            type: str
            required: true
          pod_labels:
            description: Equality selector of the pods; must not be empty.
            type: dict
            required: true
          managed:
            description: When false the component is a peer only (no policy is generated for it).
            type: bool
            default: true
      flows:
        description: Allowed connections between components. Must not be empty when O(_input.enabled=true).
        type: list
        elements: dict
        suboptions:
          from:
            description: Client component.
            type: str
            required: true
          to:
            description: Server component.
            type: str
            required: true
          ports:
            description:
              - Ports on the server. Each is a number, a container port name, or a mapping with C(port),
                optional C(end_port) (a range, numeric ports only) and optional C(protocol).
            type: list
            elements: raw
            required: true
          protocol:
            description: Default protocol of the ports.
            type: str
            choices: [TCP, UDP, SCTP]
            default: TCP
          description:
            description: Free text, ignored.
            type: str
      egress:
        description: Connections from a component to external CIDRs.
        type: list
        elements: dict
        suboptions:
          from:
            description: Client component (must be managed).
            type: str
            required: true
          cidrs:
            description: Destination networks (IPv4 or IPv6, no host bits set; a bare address means a single host).
            type: list
            elements: str
            required: true
          except:
            description:
              - Networks cut out of the destinations, for example the cloud metadata address or the cluster's own
                ranges when O(_input.egress[].cidrs) is V(0.0.0.0/0).
              - Each must lie strictly inside at least one of the CIDRs and applies to every CIDR that contains it.
            type: list
            elements: str
          ports:
            description: Numeric ports or ranges, as in O(_input.flows[].ports).
            type: list
            elements: raw
            required: true
          protocol:
            description: Default protocol of the ports.
            type: str
            default: TCP
          name:
            description: Label of the destination in the diagram.
            type: str
          description:
            description: Free text, ignored.
            type: str
      dns:
        description: DNS egress added to every managed component that sends anything.
        type: dict
        suboptions:
          enabled:
            description: Add the DNS rules.
            type: bool
            default: true
          namespace:
            description: Namespace of the DNS pods.
            type: str
            default: kube-system
          pod_labels:
            description: Labels of the DNS pods.
            type: dict
            default: {k8s-app: kube-dns}
          port:
            description: DNS port, allowed over UDP and TCP.
            type: int
            default: 53
          cidrs:
            description:
              - Addresses of a node-local DNS cache (for example V(169.254.20.10/32)), allowed on the DNS port in
                addition to the DNS pods.
            type: list
            elements: str
      api_server:
        description: Endpoints of the Kubernetes API server; required in database mode C(operator).
        type: dict
        suboptions:
          cidrs:
            description:
              - Service and endpoint addresses of the API server (NetworkPolicies may see either, depending on the CNI).
            type: list
            elements: str
          ports:
            description: Ports of the API server.
            type: list
            elements: int
            default: [443, 6443]
      database:
        description: Where PostgreSQL runs; absent or C(mode=none) adds no database rules.
        type: dict
        suboptions:
          mode:
            description:
              - C(operator) for the Zalando operator in the cluster, C(rds) or C(external) for a database outside it.
            type: str
            choices: [operator, rds, external, none]
          namespace:
            description: Namespace of the Spilo and pooler pods (mode C(operator)).
            type: str
          cluster_name:
            description: Name of the C(postgresql) resource (mode C(operator)).
            type: str
          pooler:
            description: Whether the connection pooler runs (mode C(operator)).
            type: bool
            default: true
          operator_namespace:
            description: Namespace of the operator; when set, the operator may reach Spilo.
            type: str
          operator_pod_labels:
            description: Labels of the operator pods.
            type: dict
            default: {app.kubernetes.io/name: postgres-operator}
          clients:
            description: Components allowed to reach the database.
            type: list
            elements: str
          cidrs:
            description: Database networks (modes C(rds) and C(external)); must not be empty there.
            type: list
            elements: str
          port:
            description: Database port.
            type: int
            default: 5432
seealso:
  - plugin: threetier.k8s.default_deny_policies
    plugin_type: filter
  - plugin: threetier.k8s.network_graph_mermaid
    plugin_type: filter
  - plugin: threetier.k8s.network_flows
    plugin_type: filter
  - name: Kubernetes NetworkPolicy
    description: The semantics the generated policies rely on.
    link: https://kubernetes.io/docs/concepts/services-networking/network-policies/
"""

EXAMPLES = r"""
- name: Apply the allow policies of the graph
  kubernetes.core.k8s:
    state: present
    definition: "{{ threetier_network | threetier.k8s.network_policies }}"

- name: Show the policy of the backend
  ansible.builtin.debug:
    msg: >-
      {{ {
           'name_prefix': 'shop',
           'components': {
             'web': {'namespace': 'shop', 'pod_labels': {'app': 'web'}},
             'api': {'namespace': 'shop', 'pod_labels': {'app': 'api'}},
             'lb': {'namespace': 'ingress', 'pod_labels': {'app': 'lb'}, 'managed': false}
           },
           'flows': [
             {'from': 'lb', 'to': 'web', 'ports': ['http']},
             {'from': 'web', 'to': 'api', 'ports': [{'port': 8000, 'end_port': 8010}]}
           ],
           'dns': {'enabled': false}
         } | threetier.k8s.network_policies | selectattr('metadata.name', 'eq', 'shop-api') }}
    # Produces a policy selecting app=api that allows ingress from app=web on TCP 8000-8010 and no egress.
"""

RETURN = r"""
_value:
  description: NetworkPolicy manifests, sorted by namespace and name.
  type: list
  elements: dict
"""


def network_policies(network: Any) -> list[dict[str, Any]]:
    """NetworkPolicy manifests for every managed component of the graph."""
    try:
        return build(parse_graph(network))
    except NetworkGraphError as exc:
        raise AnsibleFilterError(f"threetier.k8s.network_policies: {exc}") from exc


class FilterModule:
    """The NetworkPolicy builder."""

    def filters(self) -> dict[str, Any]:
        return {"network_policies": network_policies}
