# Copyright: threetier.k8s maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``threetier.k8s.network_policy_chart_values`` filter: policies -> an app chart's networkPolicy values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.threetier.k8s.plugins.module_utils.policy_releases import (
    PolicyReleaseError,
    chart_values,
)

DOCUMENTATION = r"""
name: network_policy_chart_values
short_description: The networkPolicy values of the collection's app charts, from the flow graph's policies
version_added: 1.0.0
author: threetier.k8s maintainers
description:
  - Picks the policy of O(component) (by its C(threetier.k8s/component) label) and, when given, the policy of the
    chart's C(helm test) pod O(test_component), and returns them as the C(networkPolicy) values of
    C(charts/backend) and C(charts/frontend) - C(enabled), C(name), C(labels), C(ingress), C(egress) and
    C(test.name), C(test.labels), C(test.ingress), C(test.egress).
  - The chart selects its own pods with its selector labels; the policy keeps the filter's name and labels (except
    C(app.kubernetes.io/managed-by), which Helm sets), so an existing policy of that name is taken over by the release.
  - "Without a policy for O(component) the result is C({enabled: false})."
options:
  _input:
    description: NetworkPolicy manifests (P(threetier.k8s.network_policies#filter)).
    type: list
    elements: dict
    required: true
  component:
    description: The app's component in the flow graph.
    type: str
    required: true
  test_component:
    description: The component of the chart's C(helm test) pod.
    type: str
seealso:
  - plugin: threetier.k8s.network_policies_by_release
    plugin_type: filter
"""

EXAMPLES = r"""
- name: The backend chart's networkPolicy values
  ansible.builtin.debug:
    msg: >-
      {{ threetier_network | threetier.k8s.network_policies
         | threetier.k8s.network_policy_chart_values('backend', 'backend-test') }}
"""

RETURN = r"""
_value:
  description: The chart's C(networkPolicy) values.
  type: dict
"""


def network_policy_chart_values(
    policies: Sequence[Any], component: str, test_component: str | None = None
) -> dict[str, Any]:
    """An app chart's networkPolicy values (see DOCUMENTATION)."""
    try:
        return chart_values(policies, component, test_component)
    except PolicyReleaseError as exc:
        raise AnsibleFilterError(f"threetier.k8s.network_policy_chart_values: {exc}") from exc


class FilterModule:
    """App chart networkPolicy values."""

    def filters(self) -> dict[str, Any]:
        return {"network_policy_chart_values": network_policy_chart_values}
