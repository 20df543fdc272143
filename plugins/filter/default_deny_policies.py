# Copyright: threetier.k8s maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``threetier.k8s.default_deny_policies`` filter: namespaces -> default-deny NetworkPolicies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.threetier.k8s.plugins.module_utils.network_graph import (
    NetworkGraphError,
    parse_graph,
    validate_name,
)
from ansible_collections.threetier.k8s.plugins.module_utils.network_policy import (
    default_deny_policies as build,
)

DOCUMENTATION = r"""
name: default_deny_policies
short_description: Default-deny NetworkPolicies, one per namespace
version_added: 1.0.0
author: threetier.k8s maintainers
description:
  - Returns one C(networking.k8s.io/v1) NetworkPolicy per namespace, named C(<name_prefix>-default-deny), that selects
    every pod of the namespace and allows no ingress and no egress.
  - The input is either a list of namespace names or the flow graph itself (C(threetier_network)); for a graph the
    namespaces are those holding managed components and the prefix is the graph's C(name_prefix), and a graph with
    C(enabled=false) gives an empty list.
  - The policies carry C(app.kubernetes.io/managed-by=threetier.k8s), C(threetier.k8s/policy-set=<name_prefix>) and
    C(threetier.k8s/policy-kind=default-deny), so a role that prunes stale allow policies by label can skip them.
  - Output is sorted by namespace; duplicates are removed.
options:
  _input:
    description: Namespace names, or the flow graph (see P(threetier.k8s.network_policies#filter)).
    type: raw
    required: true
  name_prefix:
    description:
      - Prefix of the policy names and value of the C(threetier.k8s/policy-set) label.
      - Defaults to the graph's C(name_prefix) for a graph, to C(threetier) for a list.
    type: str
seealso:
  - plugin: threetier.k8s.network_policies
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Deny everything in the application namespaces unless a policy allows it
  kubernetes.core.k8s:
    state: present
    definition: "{{ [threetier_app_namespace, threetier_db_namespace] | threetier.k8s.default_deny_policies }}"

- name: Default-deny for every namespace with managed components of the graph
  ansible.builtin.debug:
    msg: "{{ threetier_network | threetier.k8s.default_deny_policies | map(attribute='metadata.namespace') }}"
"""

RETURN = r"""
_value:
  description: Default-deny NetworkPolicy manifests, sorted by namespace.
  type: list
  elements: dict
"""


def _from_list(namespaces: Any, name_prefix: str | None) -> list[dict[str, Any]]:
    if isinstance(namespaces, (str, bytes)) or not isinstance(namespaces, Iterable):
        raise NetworkGraphError(f"expected a list of namespace names or the flow graph, got {namespaces!r}")
    names = [validate_name(namespace, f"namespaces[{index}]") for index, namespace in enumerate(namespaces)]
    prefix = validate_name(name_prefix or "threetier", "name_prefix", max_length=40)
    return build(names, prefix)


def _from_graph(network: Mapping[str, Any], name_prefix: str | None) -> list[dict[str, Any]]:
    graph = parse_graph(network)
    if not graph.enabled:
        return []
    prefix = validate_name(name_prefix, "name_prefix", max_length=40) if name_prefix else graph.name_prefix
    return build(graph.managed_namespaces, prefix)


def default_deny_policies(namespaces: Any, name_prefix: str | None = None) -> list[dict[str, Any]]:
    """Default-deny policies for a list of namespaces or for the managed namespaces of a graph."""
    try:
        if isinstance(namespaces, Mapping):
            return _from_graph(namespaces, name_prefix)
        return _from_list(namespaces, name_prefix)
    except NetworkGraphError as exc:
        raise AnsibleFilterError(f"threetier.k8s.default_deny_policies: {exc}") from exc


class FilterModule:
    """Default-deny NetworkPolicies."""

    def filters(self) -> dict[str, Any]:
        return {"default_deny_policies": default_deny_policies}
