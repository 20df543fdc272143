"""Rendering and schema helpers of the chart tier: run helm, split manifests, load CRD schemas.

Everything here is deterministic and offline: helm renders with the pinned Kubernetes version from
tools/versions.env, and the CRD schemas come from the chart tarballs in ../shared/helm-mirror.
"""

from __future__ import annotations

import copy
import io
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHARTS_DIR = ROOT / "charts"
VALUES_DIR = Path(__file__).resolve().parent / "values"
HELM_MIRROR = ROOT.parent / "shared" / "helm-mirror"

CHARTS = ("frontend", "backend")
# The chart of the namespaces and the policies no app chart owns: no pods, no environments of its own (its
# values are the collection's namespaces and filter output), so it has one values file, PLATFORM_VALUES.
PLATFORM = "platform"
# Charts with no pod of their own and no environments: tests/charts/test_database.py renders each with the
# values of its modes (values/database-<mode>.yaml); the documentation and generator tests cover them too.
DATABASE_MODES = ("operator", "rds", "external-ip")
DOCUMENTED_CHARTS = (*CHARTS, PLATFORM, "database")
ENVIRONMENTS = ("local", "dev", "staging", "prod")
HELMS = ("helm", "helm4")
# Rendered with this extra API so the ServiceMonitor (gated on .Capabilities) shows up.
MONITORING_API = "monitoring.coreos.com/v1"


def read_versions(path: Path = ROOT / "tools" / "versions.env") -> dict[str, str]:
    """Parse tools/versions.env (KEY=VALUE lines, # comments)."""
    versions = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key.strip()] = value.strip()
    return versions


VERSIONS = read_versions()
KUBE_VERSION = VERSIONS["KUBERNETES_VERSION"].removeprefix("v")


# Values the backend cannot render without (a database and an app key); the frontend needs none. With them,
# `defaults` shows each chart's own default numbers.
REQUIRED_VALUES = {
    "frontend": (),
    "backend": (
        "database.host=acid-threetier-pooler.threetier-db.svc",
        "database.existingSecret=app.acid-threetier.credentials.postgresql.acid.zalan.do",
        "app.key=base64:dGVzdC1vbmx5LWtleS10ZXN0LW9ubHkta2V5LTAwMDA=",
    ),
}


class RenderError(Exception):
    """helm exited non-zero; the message is helm's stderr."""


@dataclass(frozen=True)
class Render:
    """One `helm template` result."""

    helm: str
    chart: str
    environment: str
    docs: tuple[dict[str, Any], ...]

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.kinds(kind) if name is None or d["metadata"]["name"] == name]
        if len(found) != 1:
            raise AssertionError(
                f"expected one {kind} {name or ''} in {self.chart}/{self.environment}, found {len(found)}"
            )
        return found[0]


PLATFORM_VALUES = VALUES_DIR / "platform.yaml"


def values_file(chart: str, environment: str) -> Path:
    return VALUES_DIR / f"{environment}-{chart}.yaml"


def helm_template(
    helm: str,
    chart: str,
    values_files: Sequence[Path] = (),
    set_values: Sequence[str] = (),
    api_versions: Iterable[str] = (MONITORING_API,),
    release: str | None = None,
    namespace: str = "threetier",
) -> str:
    """Run `helm template` on a chart of the repo and return the manifests; RenderError on failure."""
    cmd = [
        helm,
        "template",
        release or chart,
        str(CHARTS_DIR / chart),
        "--namespace",
        namespace,
        "--kube-version",
        KUBE_VERSION,
    ]
    for api in api_versions:
        cmd += ["--api-versions", api]
    for path in values_files:
        cmd += ["--values", str(path)]
    for item in set_values:
        cmd += ["--set", item]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip())
    return proc.stdout


def parse_manifests(text: str) -> tuple[dict[str, Any], ...]:
    """Split a multi-document YAML stream, dropping empty documents."""
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


def render(helm: str, chart: str, environment: str, set_values: Sequence[str] = ()) -> Render:
    text = helm_template(helm, chart, [values_file(chart, environment)], set_values)
    return Render(helm, chart, environment, parse_manifests(text))


def pod_templates(doc: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Return (metadata, spec) of the pod a workload object runs (empty for non-workloads)."""
    kind = doc.get("kind")
    if kind == "Pod":
        return [(doc.get("metadata") or {}, doc["spec"])]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        template = doc["spec"]["template"]
        return [(template.get("metadata") or {}, template["spec"])]
    if kind == "CronJob":
        template = doc["spec"]["jobTemplate"]["spec"]["template"]
        return [(template.get("metadata") or {}, template["spec"])]
    return []


# --- Custom resources -------------------------------------------------------------------------------------

# Chart tarball and member holding each CRD kind the charts render, read at test time (never copied).
_KPS_TARBALL = f"kube-prometheus-stack-{VERSIONS['KUBE_PROMETHEUS_STACK_CHART_VERSION']}.tgz"
CRD_SOURCES = {
    ("monitoring.coreos.com/v1", kind): (_KPS_TARBALL, f"kube-prometheus-stack/charts/crds/crds/crd-{plural}.yaml")
    for kind, plural in (
        ("ServiceMonitor", "servicemonitors"),
        ("PodMonitor", "podmonitors"),
        ("PrometheusRule", "prometheusrules"),
    )
}
CRD_SOURCES[("acid.zalan.do/v1", "postgresql")] = (
    f"postgres-operator-{VERSIONS['POSTGRES_OPERATOR_CHART_VERSION']}.tgz",
    "postgres-operator/crds/postgresqls.yaml",
)
# Kinds validated by structure only, with the reason: no schema source exists offline.
CRD_SCHEMA_SKIPPED = {
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): (
        "the Gateway API CRDs are in no chart of ../shared/helm-mirror and no registry reachable here ships "
        "them; tests/charts/test_behaviour.py asserts the HTTPRoute's fields instead"
    ),
}


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """Load the openAPIV3Schema of a CRD version from its upstream chart tarball, made strict."""
    tarball, member = CRD_SOURCES[(api_version, kind)]
    with tarfile.open(HELM_MIRROR / tarball) as archive:
        extracted = archive.extractfile(member)
        if extracted is None:
            raise FileNotFoundError(f"{member} in {tarball}")
        text = extracted.read().decode("utf-8")
    crd = next(d for d in yaml.safe_load_all(io.StringIO(text)) if d and d.get("kind") == "CustomResourceDefinition")
    version = api_version.split("/")[1]
    schema = next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == version)
    return strict_schema(schema)


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Copy a structural schema, rejecting unknown fields wherever the API server would prune them.

    That is every object with declared properties, unless it preserves unknown fields; this mirrors
    `kubectl apply --validate=strict` (field validation Strict) for custom resources.
    """
    result = copy.deepcopy(schema)
    _make_strict(result)
    return result


def _make_strict(node: Any) -> None:
    """Walk the schema structurally (not every dict: a property may be called "properties")."""
    if not isinstance(node, dict):
        return
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        node["additionalProperties"] = False
    for child in (node.get("properties") or {}).values():
        _make_strict(child)
    for key in ("items", "additionalProperties", "not"):
        _make_strict(node.get(key))
    for key in ("allOf", "anyOf", "oneOf"):
        for child in node.get(key) or []:
            _make_strict(child)
