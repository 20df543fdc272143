"""Roles tier: every playbook parses with every inventory, the inventories say what the issue asks, pinned
versions agree with tools/versions.env, and bad input fails before anything touches a cluster."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_run import INVENTORIES, PLAYBOOKS, ROOT, TEST_KNOBS, Result

# Keys of the chart values that the roles compute from role variables and facts. An environment values file
# that set them would be silently overridden, so the inventories must not.
COMPUTED_KEYS = {
    "backend": {"image", "replicaCount", "autoscaling", "database", "migrations", "seed", "serviceMonitor"},
    "frontend": {"image", "replicaCount", "autoscaling", "serviceMonitor"},
}
COMPUTED_INGRESS_KEYS = {"enabled", "className", "hosts", "tls"}
UNREACHABLE = "The Kubernetes API server is not reachable"


def versions_env() -> dict[str, str]:
    """tools/versions.env as a dict (KEY=VALUE lines)."""
    pairs = (
        line.split("=", 1)
        for line in (ROOT / "tools" / "versions.env").read_text().splitlines()
        if line and not line.startswith("#") and "=" in line
    )
    return {key.strip(): value.strip() for key, value in pairs}


def role_defaults(role: str) -> dict[str, Any]:
    """Merged defaults of a role (defaults/main.yml or every file of defaults/main/)."""
    single = ROOT / "roles" / role / "defaults" / "main.yml"
    files = [single] if single.exists() else sorted((ROOT / "roles" / role / "defaults" / "main").glob("*.yml"))
    merged: dict[str, Any] = {}
    for path in files:
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_syntax_check(ansible_playbook: Callable[..., Result], inventory: str) -> None:
    result = ansible_playbook("--syntax-check", "-i", f"inventories/{inventory}", *PLAYBOOKS)
    assert result.rc == 0, result.output


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_inventory(ansible_inventory: Callable[..., Result], inventory: str) -> None:
    result = ansible_inventory("-i", f"inventories/{inventory}", "--list")
    assert result.rc == 0, result.output
    data = json.loads(result.stdout)
    assert data["threetier"]["hosts"] == ["localhost"]
    host = data["_meta"]["hostvars"]["localhost"]
    assert host["ansible_connection"] == "local"
    assert host["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
    assert host["threetier_environment"] == inventory
    prod = inventory == "prod"
    assert host["threetier_database_mode"] == ("rds" if prod else "operator")
    assert host["backend_migrations_enabled"] is (not prod), "migrations: on in dev/staging (hooks), off in prod"
    if prod:
        assert host["threetier_monitoring_enabled"] is True
    if inventory == "local":
        assert host["threetier_pods_run"] is False, "inventories/local targets the KWOK cluster, which simulates pods"
    else:
        knobs = sorted(TEST_KNOBS & host.keys())
        assert not knobs, f"real environments leave the test knobs to the roles' defaults, {inventory} sets {knobs}"


@pytest.mark.parametrize("inventory", INVENTORIES)
@pytest.mark.parametrize("chart", sorted(COMPUTED_KEYS))
def test_values_files_leave_computed_keys_to_the_roles(inventory: str, chart: str) -> None:
    path = ROOT / "inventories" / inventory / "values" / f"{chart}.yaml"
    values = yaml.safe_load(path.read_text())
    assert isinstance(values, dict), f"{path} must be a mapping"
    assert not COMPUTED_KEYS[chart] & values.keys(), f"{path} sets keys the {chart} role computes"
    assert not COMPUTED_INGRESS_KEYS & values.get("ingress", {}).keys()
    assert not {"key", "existingSecret", "existingSecretKey"} & values.get("app", {}).keys()


def test_pinned_versions_agree_with_versions_env() -> None:
    pins = versions_env()
    assert role_defaults("preflight")["preflight_helm_version"] == pins["HELM_VERSION"]
    assert "v" + role_defaults("preflight")["preflight_helm_diff_version"] == pins["HELM_DIFF_VERSION"]
    assert role_defaults("database")["database_operator_chart_version"] == pins["POSTGRES_OPERATOR_CHART_VERSION"]
    assert role_defaults("monitoring")["monitoring_chart_version"] == pins["KUBE_PROMETHEUS_STACK_CHART_VERSION"]


@pytest.mark.parametrize(
    ("chart", "pin"),
    [
        ("backend", "backend_chart_version"),
        ("frontend", "frontend_chart_version"),
        ("database", "database_release_chart_version"),
    ],
)
def test_chart_version_pins_match_chart_yaml(chart: str, pin: str) -> None:
    chart_yaml = yaml.safe_load((ROOT / "charts" / chart / "Chart.yaml").read_text())
    assert role_defaults(chart)[pin] == chart_yaml["version"]


BAD_INPUT = {
    "unknown database mode": (
        ["-e", "database_mode=mysql"],
        "value of database_mode must be one of: operator, rds, external, got: mysql",
    ),
    "unknown global database mode": (
        ["-e", "threetier_database_mode=mysql"],
        "value of threetier_database_mode must be one of: operator, rds, external, got: mysql",
    ),
    "replicas max below min": (
        ["-e", "backend_autoscaling_min_replicas=5", "-e", "backend_autoscaling_max_replicas=3"],
        "backend_autoscaling_max_replicas (3) must not be below backend_autoscaling_min_replicas (5)",
    ),
    "malformed host": (
        ["-e", '{"frontend_ingress_hosts": ["bad_host!.example.com"]}'],
        'frontend_ingress_hosts has malformed host names: ["bad_host!.example.com"]',
    ),
    "missing image tag": (
        ["-e", "backend_image_tag="],
        "backend_image_tag must be a container image tag",
    ),
    "bad namespace": (
        ["-e", "threetier_app_namespace=Bad_NS"],
        'threetier_app_namespace="Bad_NS" is not a valid namespace name',
    ),
    "no database instance": (
        ["-e", "database_instances=0"],
        "database_instances must be at least 1, got 0",
    ),
    "unknown environment": (
        ["-e", "threetier_environment=qa"],
        "value of threetier_environment must be one of: local, dev, staging, prod, got: qa",
    ),
    "logical backup without a bucket": (
        ["-e", "database_logical_backup_enabled=true"],
        "database_logical_backup_s3_bucket must name the S3 bucket when database_logical_backup_enabled is true",
    ),
    "helm timeout not a Go duration": (
        ["-e", "frontend_wait_timeout=ten"],
        'frontend_wait_timeout must be a Go duration such as 10m, got "ten"',
    ),
    "logical backup schedule not cron": (
        ["-e", "database_logical_backup_schedule=daily"],
        'database_logical_backup_schedule must be a five-field cron expression, got "daily"',
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_fails_before_the_cluster(ansible_playbook: Callable[..., Result], case: str) -> None:
    extra, message = BAD_INPUT[case]
    result = ansible_playbook("-i", "inventories/local", "site.yml", *extra)
    assert result.rc != 0, result.output
    assert message in " ".join(result.output.split()), result.output
    # Validation runs before preflight asks the API server anything, and nothing changed.
    assert UNREACHABLE not in result.output, result.output
    assert "changed=0" in result.output, result.output


def test_unreachable_cluster_gives_one_clear_message(ansible_playbook: Callable[..., Result], tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "dead", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "dead", "user": {"token": "unused"}}],
                "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "dead"}}],
                "current-context": "dead",
            }
        )
    )
    result = ansible_playbook("-i", "inventories/local", "site.yml", "-e", f"threetier_kubeconfig={kubeconfig}")
    assert result.rc != 0, result.output
    flat = " ".join(result.output.split())
    assert f"{UNREACHABLE} (kubeconfig: {kubeconfig}" in flat, result.output
    assert "connection refused" in flat, result.output
    assert result.output.count("fatal:") == 1, result.output
    assert "changed=0" in result.output, result.output


@pytest.mark.parametrize("inventory", INVENTORIES)
def test_every_inventory_passes_validation(ansible_playbook: Callable[..., Result], inventory: str) -> None:
    """Each environment's values pass every role's validation; the run stops only where a cluster is needed."""
    result = ansible_playbook("-i", f"inventories/{inventory}", "site.yml")
    assert result.rc != 0, result.output
    assert result.output.count("fatal:") == 1, result.output
    assert UNREACHABLE in " ".join(result.output.split()), result.output


def run_with_env(env: dict[str, str], *args: str) -> Result:
    proc = subprocess.run(
        ["ansible-playbook", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_a_pod_without_a_kubeconfig_is_refused(ansible_env: dict[str, str], playbook: str) -> None:
    """kubernetes.core#1098: in a pod, no kubeconfig and no context would mean the pod's own service account."""
    env = {**ansible_env, "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    extra = ["-e", "threetier_kubeconfig=", "-e", "threetier_kube_context=", "-e", "rollback_release=backend"]
    result = run_with_env(env, "-i", "inventories/local", playbook, *extra)
    assert result.rc != 0, result.output
    flat = " ".join(result.output.split())
    assert "would use the pod's own service account" in flat and "kubernetes.core#1098" in flat, result.output
    assert UNREACHABLE not in flat and "changed=0" in result.output, result.output
    # The same playbook outside a pod goes on to the cluster (which does not answer here).
    outside = run_with_env(ansible_env, "-i", "inventories/local", playbook, *extra)
    assert "kubernetes.core#1098" not in outside.output


def test_a_second_cluster_credential_is_refused(ansible_env: dict[str, str]) -> None:
    """AWX's built-in Kubernetes credential beside the kubeconfig: kubernetes.core and helm would disagree."""
    env = {**ansible_env, "K8S_AUTH_HOST": "https://10.0.0.1:6443", "K8S_AUTH_API_KEY": "token"}
    result = run_with_env(env, "-i", "inventories/dev", "site.yml")
    assert result.rc != 0, result.output
    flat = " ".join(result.output.split())
    assert "K8S_AUTH_HOST and K8S_AUTH_API_KEY are set too" in flat, result.output
    assert UNREACHABLE not in flat, result.output


# kubernetes.core (pinned 6.6.0): helm and helm_info print a deprecation for every existing release (their
# status.values), and helm another for wait_timeout; the roles install releases with threetier.k8s.helm_release.
DEPRECATING_MODULES = {"kubernetes.core.helm", "kubernetes.core.helm_info", "helm", "helm_info"}


def tasks_of(node: Any) -> list[dict[str, Any]]:
    """Every task-like mapping in a parsed playbook or task file (blocks and plays included)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, list):
        for item in node:
            found += tasks_of(item)
    elif isinstance(node, dict):
        found.append(node)
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            found += tasks_of(node.get(key))
    return found


def test_no_role_or_playbook_calls_a_deprecating_helm_module() -> None:
    files = sorted((ROOT / "roles").glob("*/tasks/*.yml")) + sorted((ROOT / "playbooks").glob("*.yml"))
    offenders = [
        f"{path.relative_to(ROOT)}: {task.get('name', '?')}"
        for path in files
        for task in tasks_of(yaml.safe_load(path.read_text()))
        if DEPRECATING_MODULES & task.keys()
    ]
    assert not offenders, f"use threetier.k8s.helm_release instead: {offenders}"


@pytest.mark.parametrize("role", ["backend", "frontend"])
def test_the_app_roles_share_one_release_routine(role: str) -> None:
    """No copy of the install, validation or values assembly in the app roles: they include helm_release."""
    tasks = ROOT / "roles" / role / "tasks"
    text = "\n".join(path.read_text() for path in sorted(tasks.glob("*.yml")))
    for entry in ("validate", "dry_run", "teardown"):
        assert f"tasks_from: {entry}" in text, f"{role} does not use the routine's {entry}"
    assert "name: threetier.k8s.helm_release" in text
    assert "helm upgrade" not in text and "'upgrade'" not in text, f"{role} installs its release by itself"
    assert "query('ansible.builtin.file'" not in text, f"{role} reads its values files itself"
