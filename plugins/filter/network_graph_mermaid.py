# Copyright: threetier.k8s maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``threetier.k8s.network_graph_mermaid`` filter: flow graph -> Mermaid flowchart."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.threetier.k8s.plugins.module_utils.network_diagram import (
    DIRECTIONS,
    mermaid,
)
from ansible_collections.threetier.k8s.plugins.module_utils.network_graph import (
    NetworkGraphError,
    parse_graph,
)

DOCUMENTATION = r"""
name: network_graph_mermaid
short_description: Draw the flow graph as a Mermaid flowchart
version_added: 1.0.0
author: threetier.k8s maintainers
description:
  - Renders the flow graph (C(threetier_network)), built-in flows included, as the text of a Mermaid C(flowchart),
    for Markdown documentation (GitHub and GitLab render it).
  - One box per namespace; managed components are rectangles, peers (C(managed=false) and the built-in DNS and
    operator peers) are dashed stadiums, external CIDRs are parallelograms labelled with their C(name).
  - One arrow per (client, server) pair, labelled with the allowed ports (C(TCP/5432), C(TCP/8000-8010), C(TCP/http)).
  - The graph is validated exactly as by P(threetier.k8s.network_policies#filter); the output is deterministic.
  - Mermaid renders at most 500 arrows unless its C(maxEdges) setting is raised; a graph that large is better
    read per namespace than as one drawing.
options:
  _input:
    description: The flow graph (see P(threetier.k8s.network_policies#filter)).
    type: dict
    required: true
  direction:
    description: Direction of the flowchart.
    type: str
    choices: [LR, RL, TB, BT, TD]
    default: LR
  show_dns:
    description: Draw the DNS peer and the arrows to it (one from every component that sends anything).
    type: bool
    default: true
seealso:
  - plugin: threetier.k8s.network_policies
    plugin_type: filter
  - name: Mermaid flowchart syntax
    description: The diagram language.
    link: https://mermaid.js.org/syntax/flowchart.html
"""

EXAMPLES = r"""
- name: Write the network diagram of the environment
  ansible.builtin.copy:
    dest: "{{ playbook_dir }}/network-{{ threetier_environment }}.md"
    content: |
      ```mermaid
      {{ threetier_network | threetier.k8s.network_graph_mermaid(show_dns=false) }}
      ```
    mode: "0644"
"""

RETURN = r"""
_value:
  description: Mermaid flowchart text ending with a newline.
  type: str
"""


def network_graph_mermaid(network: Any, direction: str = "LR", show_dns: bool = True) -> str:
    """Mermaid flowchart of the graph."""
    if direction not in DIRECTIONS:
        raise AnsibleFilterError(
            f"threetier.k8s.network_graph_mermaid: direction {direction!r} is not one of {', '.join(DIRECTIONS)}"
        )
    if not isinstance(show_dns, bool):
        raise AnsibleFilterError(
            f"threetier.k8s.network_graph_mermaid: show_dns must be true or false, got {show_dns!r}"
        )
    try:
        return mermaid(parse_graph(network), direction, show_dns)
    except NetworkGraphError as exc:
        raise AnsibleFilterError(f"threetier.k8s.network_graph_mermaid: {exc}") from exc


class FilterModule:
    """Diagram of the flow graph."""

    def filters(self) -> dict[str, Any]:
        return {"network_graph_mermaid": network_graph_mermaid}
