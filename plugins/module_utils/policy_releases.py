# Copyright: threetier.k8s maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which Helm release ships which NetworkPolicy, and the app charts' ``networkPolicy`` values.

Every policy the flow graph produces ships with the release that runs the pods it selects, so ``helm rollback``
restores it and ``helm uninstall`` removes it with them; what no release claims ships with the platform release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COMPONENT_LABEL = "threetier.k8s/component"
PLATFORM = "platform"
# Helm sets it on every object it owns; a chart value carrying another one would only be overwritten.
HELM_OWNED_LABELS = ("app.kubernetes.io/managed-by",)

Manifest = dict[str, Any]


class PolicyReleaseError(ValueError):
    """Input the assignment cannot be made from; the message names the entry."""


def _component(policy: Any, index: int) -> str:
    if not isinstance(policy, Mapping) or policy.get("kind") != "NetworkPolicy":
        raise PolicyReleaseError(f"policies[{index}] is not a NetworkPolicy manifest: {policy!r}")
    labels = (policy.get("metadata") or {}).get("labels") or {}
    component = labels.get(COMPONENT_LABEL)
    return component if isinstance(component, str) else ""


def _owners(release_components: Any) -> dict[str, str]:
    if not isinstance(release_components, Mapping):
        raise PolicyReleaseError(f"release_components must map a release to its components, got {release_components!r}")
    owners: dict[str, str] = {}
    for release, components in release_components.items():
        if release == PLATFORM:
            raise PolicyReleaseError(f"release_components: {PLATFORM!r} is implicit (every component listed nowhere)")
        if isinstance(components, (str, bytes)) or not isinstance(components, Sequence):
            raise PolicyReleaseError(f"release_components.{release} must be a list of components, got {components!r}")
        for component in components:
            if component in owners:
                raise PolicyReleaseError(
                    f"release_components: component {component!r} is listed under {owners[component]!r} and {release!r}"
                )
            owners[component] = str(release)
    return owners


def by_release(policies: Sequence[Any], release_components: Any) -> dict[str, list[Manifest]]:
    """Policies grouped by the release that ships them; every release of the mapping and ``platform`` is a key."""
    owners = _owners(release_components)
    grouped: dict[str, list[Manifest]] = {release: [] for release in [PLATFORM, *release_components]}
    for index, policy in enumerate(policies):
        grouped[owners.get(_component(policy, index), PLATFORM)].append(dict(policy))
    return grouped


def _rules(policy: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    spec = policy.get("spec") or {}
    return list(spec.get("ingress") or []), list(spec.get("egress") or [])


def chart_values(policies: Sequence[Any], component: str, test_component: str | None = None) -> Manifest:
    """The ``networkPolicy`` values of an app chart: the component's policy, and its ``helm test`` pod's.

    The chart selects its own pods (its selector labels) and keeps the filter's name and labels, so an
    existing policy of that name is taken over by the release rather than duplicated. Without a policy for the
    component (a graph without it, or with policies disabled) the chart renders none.
    """
    found = {_component(policy, index): policy for index, policy in enumerate(policies)}
    app = found.get(component)
    if app is None:
        return {"enabled": False}
    values: Manifest = {"enabled": True, **_policy_values(app)}
    test = found.get(test_component) if test_component else None
    if test is not None:
        values["test"] = _policy_values(test)
    return values


def _policy_values(policy: Mapping[str, Any]) -> Manifest:
    """Name, labels (but those Helm sets) and rules of one policy, as the chart's values carry them."""
    metadata = policy.get("metadata") or {}
    ingress, egress = _rules(policy)
    return {
        "name": metadata.get("name", ""),
        "labels": {k: v for k, v in (metadata.get("labels") or {}).items() if k not in HELM_OWNED_LABELS},
        "ingress": ingress,
        "egress": egress,
    }
