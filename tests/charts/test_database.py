"""The database chart: what each mode renders, the values it refuses, strict validity, and its packaged .tgz.

The chart has no pods and no environments; its values files are the shapes the `database` role feeds in each
mode (values/database-<mode>.yaml). Every test runs on Helm 3 and Helm 4 where both can differ.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest
from chart_render import (
    CHARTS_DIR,
    DATABASE_MODES,
    HELMS,
    KUBE_VERSION,
    VALUES_DIR,
    Render,
    RenderError,
    helm_template,
    parse_manifests,
)
from manifest_schema import validation_errors

CHART = "database"


def mode_values(mode: str) -> Path:
    return VALUES_DIR / f"{CHART}-{mode}.yaml"


def render(helm: str, mode: str | None, *set_values: str) -> Render:
    files = [mode_values(mode)] if mode else []
    text = helm_template(helm, CHART, files, set_values, release=CHART, namespace="threetier-db")
    return Render(helm, CHART, mode or "defaults", parse_manifests(text))


def refused(helm: str, mode: str | None, set_values: Sequence[str]) -> str:
    with pytest.raises(RenderError) as error:
        render(helm, mode, *set_values)
    return str(error.value)


@pytest.mark.parametrize("mode", DATABASE_MODES)
@pytest.mark.parametrize("helm", HELMS)
def test_helm_lint_strict(helm_bins: dict[str, str], helm: str, mode: str) -> None:
    cmd = [helm_bins[helm], "lint", "--strict", "--kube-version", KUBE_VERSION, str(CHARTS_DIR / CHART)]
    proc = subprocess.run(
        [*cmd, "--values", str(mode_values(mode))], capture_output=True, text=True, timeout=120, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "1 chart(s) linted, 0 chart(s) failed" in output
    assert "[WARNING]" not in output and "[ERROR]" not in output, output


@pytest.mark.parametrize("mode", DATABASE_MODES)
def test_every_object_validates_strictly_and_helm_3_and_4_agree(helm_bins: dict[str, str], mode: str) -> None:
    render3, render4 = (render(helm_bins[h], mode) for h in HELMS)
    assert render3.docs, "helm rendered nothing"
    assert [e for doc in render3.docs for e in validation_errors(doc)] == []
    assert render3.docs == render4.docs
    assert {doc["metadata"]["namespace"] for doc in render3.docs} == {"threetier-db"}


def test_the_postgresql_resource_is_checked_against_its_crd(helm_bins: dict[str, str]) -> None:
    cluster = render(helm_bins["helm"], "operator").one("postgresql", "acid-threetier")
    assert validation_errors(cluster) == []
    bad = {**cluster, "spec": {**cluster["spec"], "numberOfInstance": 2}}
    assert any("numberOfInstance" in e for e in validation_errors(bad))


def test_the_defaults_render_nothing(helm_bins: dict[str, str]) -> None:
    assert render(helm_bins["helm"], None).docs == ()


def test_operator_mode(helm_bins: dict[str, str]) -> None:
    out = render(helm_bins["helm"], "operator")
    assert sorted((d["kind"], d["metadata"]["name"]) for d in out.docs) == [
        ("NetworkPolicy", "threetier-spilo"),
        ("PodDisruptionBudget", "acid-threetier-pooler-pdb"),
        ("PodDisruptionBudget", "acid-threetier-replicas-pdb"),
        ("Secret", "acid-threetier-logical-backup-s3"),
        ("postgresql", "acid-threetier"),
    ]
    cluster = out.one("postgresql")
    # helm uninstall must leave the cluster and its volumes.
    assert cluster["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert cluster["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "threetier.k8s"
    assert cluster["spec"]["numberOfInstances"] == 2 and cluster["spec"]["postgresql"] == {"version": "17"}
    replicas = out.one("PodDisruptionBudget", "acid-threetier-replicas-pdb")
    assert replicas["spec"]["maxUnavailable"] == 0
    assert replicas["spec"]["selector"]["matchLabels"]["spilo-role"] == "replica"
    keys = out.one("Secret")["data"]
    assert {k: base64.b64decode(v).decode() for k, v in keys.items()} == {
        "AWS_ACCESS_KEY_ID": "test-only-access-key",
        "AWS_SECRET_ACCESS_KEY": "test-only-secret-key",
    }
    policy = out.one("NetworkPolicy")
    # Rendered as given; the missing namespace is the release's.
    assert policy["metadata"]["labels"]["threetier.k8s/component"] == "spilo"
    assert policy["metadata"]["namespace"] == "threetier-db"


def test_operator_mode_without_keep_and_without_backup_keys(helm_bins: dict[str, str]) -> None:
    out = render(helm_bins["helm"], "operator", "postgresql.keep=false", "logicalBackup.s3Secret.create=false")
    assert "annotations" not in out.one("postgresql")["metadata"]
    assert out.kinds("Secret") == []


def test_a_policy_with_its_own_namespace_keeps_it(helm_bins: dict[str, str]) -> None:
    out = render(helm_bins["helm"], "operator", "networkPolicies[0].metadata.namespace=elsewhere")
    assert out.one("NetworkPolicy")["metadata"]["namespace"] == "elsewhere"


def test_a_dns_name_becomes_an_external_name_service(helm_bins: dict[str, str]) -> None:
    out = render(helm_bins["helm"], "rds")
    assert sorted(d["kind"] for d in out.docs) == ["Secret", "Service"]
    service = out.one("Service", "postgres")
    assert service["spec"]["type"] == "ExternalName"
    assert service["spec"]["externalName"] == "threetier-dev.abcdefghijkl.eu-central-1.rds.amazonaws.com"
    assert service["spec"]["ports"] == [{"name": "postgresql", "port": 5432, "targetPort": 5432, "protocol": "TCP"}]
    assert service["metadata"]["labels"]["threetier.k8s/database-mode"] == "rds"
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == "postgresql"
    secret = out.one("Secret", "postgres-credentials")
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "username": "threetier_admin",
        "password": "test-only-password",
    }
    assert secret["metadata"]["labels"] == service["metadata"]["labels"]


def test_an_ip_address_becomes_a_service_with_an_endpoint_slice(helm_bins: dict[str, str]) -> None:
    out = render(helm_bins["helm"], "external-ip")
    # An existing Secret: the release writes none.
    assert sorted(d["kind"] for d in out.docs) == ["EndpointSlice", "Service"]
    service = out.one("Service", "postgres")
    assert service["spec"]["type"] == "ClusterIP" and "externalName" not in service["spec"]
    assert "selector" not in service["spec"]
    endpoints = out.one("EndpointSlice", "postgres-external")
    assert endpoints["metadata"]["labels"]["kubernetes.io/service-name"] == "postgres"
    assert endpoints["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "threetier.k8s"
    assert endpoints["addressType"] == "IPv4"
    assert endpoints["endpoints"] == [{"addresses": ["10.20.30.40"], "conditions": {"ready": True}}]
    assert endpoints["ports"] == [{"name": "postgresql", "port": 6432, "protocol": "TCP"}]


def test_a_name_that_only_starts_like_an_address_is_a_dns_name(helm_bins: dict[str, str]) -> None:
    out = render(helm_bins["helm"], "external-ip", "endpoint.host=10.20.30.40.nip.io")
    assert out.one("Service")["spec"]["type"] == "ExternalName"
    assert out.kinds("EndpointSlice") == []


REFUSED = [
    ("rds", ["endpoint.host="], r"at '/endpoint/host': '' does not match pattern"),
    ("rds", ["endpoint.host=DB_EXAMPLE"], r"at '/endpoint/host': 'DB_EXAMPLE' does not match pattern"),
    ("rds", ["endpoint.secret.password="], r"at '/endpoint/secret/password': minLength: got 0, want 1"),
    ("rds", ["endpoint.mode=operator"], r"at '/endpoint/mode': value must be one of 'rds', 'external'"),
    ("rds", ["endpoint.port=0"], r"at '/endpoint/port': minimum: got 0, want 1"),
    ("rds", ["endpoint.tls=true"], r"at '/endpoint': additional properties 'tls' not allowed"),
    ("operator", ["logicalBackup.s3Secret.accessKeyId="], r"at '/logicalBackup/s3Secret/accessKeyId': minLength"),
    ("operator", ["logicalBackup.s3Secret.name="], r"at '/logicalBackup/s3Secret/name': '' does not match pattern"),
    ("operator", ["postgresql.name=threetier"], r"at '/postgresql/name': 'threetier' does not match pattern"),
    (None, ["podDisruptionBudgets[0].name=replicas"], r"at '/podDisruptionBudgets/0': missing property 'spec'"),
    ("operator", ["networkPolicies[0].kind=Service"], r"at '/networkPolicies/0/kind': value must be 'NetworkPolicy'"),
    (None, ["postgresql.enabled=true"], r"at '/postgresql/spec': missing properties 'teamId'"),
    (None, ["endpoint.enabled=true"], r"at '/endpoint/host': '' does not match pattern"),
]


@pytest.mark.parametrize(("mode", "values", "message"), REFUSED)
@pytest.mark.parametrize("helm", HELMS)
def test_the_schema_refuses(
    helm_bins: dict[str, str], helm: str, mode: str | None, values: list[str], message: str
) -> None:
    assert re.search(message, refused(helm_bins[helm], mode, values))


def test_an_empty_host_is_fine_while_the_endpoint_is_off(helm_bins: dict[str, str]) -> None:
    assert render(helm_bins["helm"], None, "endpoint.host=", "endpoint.secret.password=").docs == ()


@pytest.mark.parametrize("helm", HELMS)
def test_the_package_installs_with_plain_helm_install(helm_bins: dict[str, str], helm: str, tmp_path: Path) -> None:
    """Packaged alone (no sources beside it), the .tgz renders what the directory renders and installs."""
    env = {**os.environ, "KUBECONFIG": os.devnull}

    def run(*args: str) -> str:
        proc = subprocess.run(
            [helm_bins[helm], *args], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env, check=False
        )
        assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}{proc.stderr}"
        return proc.stdout

    run("package", str(CHARTS_DIR / CHART), "--destination", str(tmp_path))
    archive = "database-1.0.0.tgz"
    for mode in DATABASE_MODES:
        args = ["template", CHART, archive, "--namespace", "threetier-db", "--kube-version", KUBE_VERSION]
        docs = parse_manifests(run(*args, "--values", str(mode_values(mode))))
        assert docs == render(helm_bins[helm], mode).docs
    if helm == "helm4":  # Helm 3's dry run still dials a cluster
        output = run(
            "install",
            CHART,
            archive,
            "--namespace",
            "threetier",
            "--dry-run=client",
            "--values",
            str(mode_values("rds")),
        )
        manifest = output.split("MANIFEST:", 1)[1].split("NOTES:", 1)[0]
        assert {doc["kind"] for doc in parse_manifests(manifest)} == {"Secret", "Service"}
