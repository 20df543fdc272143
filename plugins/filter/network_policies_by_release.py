# Copyright: threetier.k8s maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``threetier.k8s.network_policies_by_release`` filter: policies -> the Helm release that ships each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.threetier.k8s.plugins.module_utils.policy_releases import (
    PolicyReleaseError,
    by_release,
)

DOCUMENTATION = r"""
name: network_policies_by_release
short_description: Group NetworkPolicies by the Helm release that ships them
version_added: 1.0.0
author: threetier.k8s maintainers
description:
  - Groups the policies built by P(threetier.k8s.network_policies#filter) by release, reading each policy's
    C(threetier.k8s/component) label, so that each release carries the policies of the pods it runs and
    C(helm rollback) or C(helm uninstall) of that release restores or removes them with it.
  - Policies of components listed under no release (an upstream chart's component such as the postgres-operator,
    components an inventory adds) and policies without the label (default deny) go to C(platform).
  - The result has a key for every release of O(release_components) and for C(platform), each a list (possibly
    empty), in input order.
options:
  _input:
    description: NetworkPolicy manifests.
    type: list
    elements: dict
    required: true
  release_components:
    description:
      - A release name to the list of components whose policies it ships. A component may be listed once;
        C(platform) may not be a key.
    type: dict
    required: true
seealso:
  - plugin: threetier.k8s.network_policies
    plugin_type: filter
  - plugin: threetier.k8s.network_policy_chart_values
    plugin_type: filter
"""

EXAMPLES = r"""
- name: The policies the backend release ships
  ansible.builtin.debug:
    msg: >-
      {{ (threetier_network | threetier.k8s.network_policies
          | threetier.k8s.network_policies_by_release({'backend': ['backend', 'backend-test']})).backend }}
"""

RETURN = r"""
_value:
  description: Release name to its policies; C(platform) holds every policy no release claims.
  type: dict
"""


def network_policies_by_release(policies: Sequence[Any], release_components: Any) -> dict[str, list[dict[str, Any]]]:
    """Policies grouped by release (see DOCUMENTATION)."""
    try:
        return by_release(policies, release_components)
    except PolicyReleaseError as exc:
        raise AnsibleFilterError(f"threetier.k8s.network_policies_by_release: {exc}") from exc


class FilterModule:
    """NetworkPolicies by release."""

    def filters(self) -> dict[str, Any]:
        return {"network_policies_by_release": network_policies_by_release}
