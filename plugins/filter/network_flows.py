# Copyright: threetier.k8s maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``threetier.k8s.network_flows`` filter: flow graph -> resolved flows, built-in ones included."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.threetier.k8s.plugins.module_utils.network_graph import (
    NetworkGraphError,
    parse_graph,
)
from ansible_collections.threetier.k8s.plugins.module_utils.network_policy import (
    resolved_flows,
)

DOCUMENTATION = r"""
name: network_flows
short_description: List every flow the graph allows, built-in flows included
version_added: 1.0.0
author: threetier.k8s maintainers
description:
  - Validates the flow graph (C(threetier_network)) exactly as P(threetier.k8s.network_policies#filter) does and
    returns the flows the generated policies allow, after adding the built-in ones (DNS, Spilo, pooler, operator,
    database clients). Useful to assert connectivity in verify playbooks and to review what a graph means.
  - Each flow names its source component, its destination component or CIDRs, the namespaces and pod labels of both
    sides, the ports and where it came from (C(flows[3] (ingress -> frontend)), C(dns), C(database.clients (backend))).
  - Sorted by source, destination and origin.
options:
  _input:
    description: The flow graph (see P(threetier.k8s.network_policies#filter)).
    type: dict
    required: true
seealso:
  - plugin: threetier.k8s.network_policies
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Show which components may reach the database
  ansible.builtin.debug:
    msg: >-
      {{ threetier_network | threetier.k8s.network_flows
         | selectattr('to', 'eq', 'spilo') | map(attribute='from') | unique }}
"""

RETURN = r"""
_value:
  description: The resolved flows.
  type: list
  elements: dict
  contains:
    from:
      description: Source component.
      type: str
    from_namespace:
      description: Namespace of the source.
      type: str
    from_pod_labels:
      description: Pod labels of the source.
      type: dict
    to:
      description: Destination component, or null for a CIDR destination.
      type: str
    to_namespace:
      description: Namespace of the destination component, or null.
      type: str
    to_pod_labels:
      description: Pod labels of the destination component, or null.
      type: dict
    cidrs:
      description: Destination CIDRs (empty for a component destination).
      type: list
      elements: str
    except:
      description: Networks cut out of the destination CIDRs.
      type: list
      elements: str
    ports:
      description: Ports as in a NetworkPolicy (C(protocol), C(port), optional C(endPort)).
      type: list
      elements: dict
    origin:
      description: The graph entry or built-in rule the flow comes from.
      type: str
"""


def network_flows(network: Any) -> list[dict[str, Any]]:
    """The flows the policies of the graph allow, one entry per edge."""
    try:
        return resolved_flows(parse_graph(network))
    except NetworkGraphError as exc:
        raise AnsibleFilterError(f"threetier.k8s.network_flows: {exc}") from exc


class FilterModule:
    """Resolved flows of the graph."""

    def filters(self) -> dict[str, Any]:
        return {"network_flows": network_flows}
