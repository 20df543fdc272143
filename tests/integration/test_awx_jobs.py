"""Every AWX job template of awx/configure.yml replayed the way AWX runs it, in the execution environment.

configure.yml (the real awx.awx modules) creates the templates in the AWX API double; the local environment
is added through awx_environments, the data configure.yml turns into templates, so "threetier local <action>"
is the same definition as the dev/staging/prod templates with the local inventory (the only one whose
settings fit the KWOK cluster: dev, staging and prod expect real pods, upstream chart repositories and
certificates). The kubeconfig and vault secrets are then pasted into the credentials, as an operator does in
the UI, and the chart mirror goes into AWX's job environment setting (AWX_TASK_ENV).

tests/support/awx_jobs.py launches each template as AWX does: survey defaults and answers, project sync,
inventory import in the EE, credential injection by the credential type's injectors, AWX's job environment
and command line, `ansible-runner transmit | worker (runc pod of the EE) | process`. Every pod also has the
in-cluster configuration of a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT and a service account token) whose
"API server" is a decoy that records requests: none may reach it (kubernetes.core#1098).

The jobs run against a cluster of their own (started and stopped here), in this order: site (converge time
reported), site again (changed=0), site with another tag (upgrade), rollback, migrate, site with launch tags,
teardown refused and guarded, teardown (data kept), teardown deleting the data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ee
import pytest
import yaml
from awx_api import ApiDouble
from awx_jobs import Awx, InCluster, JobResult, LaunchRefused

if TYPE_CHECKING:
    from conftest import ClusterScript, Kubectl

ROOT = Path(__file__).resolve().parents[2]
SCM_URL = "https://git.example.com/platform/threetier-k8s.git"
TOKEN = "awx-double-token"
VAULT_PASSWORD = "vault password typed into AWX"
LOCAL = {"name": "local", "aws": False, "confirm_default": "local"}
APP_NS, DB_NS = "threetier", "threetier-db"


LOG = ROOT / "tests" / "output" / "awx-jobs.log"


def log(message: str) -> None:
    """Print a measurement and keep it in tests/output/awx-jobs.log (pytest shows captured output only on failure)."""
    print(message, file=sys.stderr)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a", encoding="utf-8") as handle:
        handle.write(message.strip() + "\n")


@pytest.fixture(scope="module")
def built() -> ee.BuiltImage:
    image = ee.build()
    log(
        f"{datetime.now().isoformat(timespec='seconds')} EE {image.image.reference}: archive "
        f"{image.archive_bytes / 2**20:.0f} MiB, build-ee.sh {image.build_seconds:.0f} s"
    )
    return image


@pytest.fixture(scope="module")
def jobs_cluster(
    cluster_script: type[ClusterScript], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str]]:
    """A cluster of the replays' own: the jobs start from an empty cluster and leave the shared one alone."""
    base = tmp_path_factory.mktemp("awx-jobs-cluster")
    env = dict(os.environ)
    env["THREETIER_CLUSTER_DIR"] = str(base / "cluster")
    env["THREETIER_CLUSTER_NAME"] = f"{os.environ.get('THREETIER_CLUSTER_NAME', 'threetier')}-awx-jobs"
    own = cluster_script(env)
    status = own.up()
    kubeconfig = Path(status["kubeconfig"])
    flat = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", "config", "view", "--raw", "--flatten", "--minify"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    try:
        yield kubeconfig, flat
    finally:
        own.down()


@pytest.fixture(scope="module")
def kube(jobs_cluster: tuple[Path, str], kubectl_for: type[Kubectl]) -> Kubectl:
    return kubectl_for(jobs_cluster[0])


@pytest.fixture(scope="module")
def awx(
    built: ee.BuiltImage,
    jobs_cluster: tuple[Path, str],
    helm_mirror: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Awx]:
    """An AWX configured by configure.yml, its secrets pasted, launching into EE pods with a decoy in-cluster API."""
    work = tmp_path_factory.mktemp("awx")
    api = ApiDouble(token=TOKEN, checkouts={SCM_URL: ROOT})
    server = api.serve()
    in_cluster = InCluster(work).start()
    try:
        environments = yaml.safe_load((ROOT / "awx" / "vars" / "main.yml").read_text())["awx_environments"]
        settings = work / "awx-settings.json"
        settings.write_text(
            json.dumps(
                {
                    "awx_environments": [*environments, LOCAL],
                    "awx_execution_environment_image": built.image.reference,
                    "awx_project_scm_url": SCM_URL,
                }
            )
        )
        collections = ROOT / ".collections" / "ansible_collections" / "awx" / "awx"
        proc = subprocess.run(
            ["ansible-playbook", "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
             "-e", f"@{settings}", str(ROOT / "awx" / "configure.yml")],
            cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
            env={**os.environ, "CONTROLLER_HOST": api.url, "CONTROLLER_OAUTH_TOKEN": TOKEN,
                 "ANSIBLE_COLLECTIONS_PATH": str(collections.resolve().parents[2]), "ANSIBLE_NOCOLOR": "1"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        # What an operator does in the UI after configure.yml: paste the secrets, set the job environment.
        kube = api.one("credentials", name="threetier kubeconfig (local)")
        api.update("credentials", kube["id"], {"inputs": {"kubeconfig": jobs_cluster[1]}})
        vault = api.one("credentials", name="threetier vault")
        api.update("credentials", vault["id"], {"inputs": {**vault["inputs"], "vault_password": VAULT_PASSWORD}})
        api.settings["jobs"]["AWX_TASK_ENV"] = {"THREETIER_CHART_REPO_OVERRIDE": helm_mirror}
        runner = shutil.which("ansible-runner")
        assert runner, "ansible-runner is not installed: run `make setup`"
        yield Awx(api, {built.image.reference: built.image}, work, runner, in_cluster)
    finally:
        in_cluster.stop()
        server.shutdown()
        server.server_close()


def succeeded(result: JobResult) -> JobResult:
    log(
        f"{datetime.now().isoformat(timespec='seconds')} job {result.job_id} {result.name!r}: {result.status}, "
        f"{result.seconds:.0f} s (ansible-playbook {playbook_seconds(result):.0f} s), {result.host_stats()}"
    )
    assert result.status == "successful" and result.rc == 0, (
        f"{result.name} ended {result.status} (rc {result.rc}):\n{result.stdout[-6000:]}"
    )
    assert result.host_stats()["failures"] == 0
    return result


def no_in_cluster_requests(awx: Awx) -> None:
    requests = awx.in_cluster.requests if awx.in_cluster else []
    assert not requests, f"a client used the pod's in-cluster configuration (kubernetes.core#1098): {requests[:5]}"


def playbook_seconds(result: JobResult) -> float:
    """How long ansible-playbook ran inside the pod: from its first to its last event."""
    stamps = [datetime.fromisoformat(e["created"]) for e in result.events if e.get("created")]
    return (max(stamps) - min(stamps)).total_seconds()


def release(kube: Kubectl, name: str, namespace: str = APP_NS) -> dict[str, Any]:
    """The Deployment of a release: its container images and the release revision Helm recorded on it."""
    deployment = kube.json("get", "deployment", name, "-n", namespace)
    images = {c["name"]: c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]}
    return {"images": images, "annotations": deployment["metadata"].get("annotations", {})}


def helm_status(kube: Kubectl, name: str, namespace: str = APP_NS) -> dict[str, Any] | None:
    proc = subprocess.run(
        ["helm", "status", name, "-n", namespace, f"--kubeconfig={kube.kubeconfig}", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def app_image_tags(kube: Kubectl, name: str) -> set[str]:
    """Tags of the release's own image (ghcr.io/threetier/<name>) in its Deployment."""
    return {
        image.rsplit(":", 1)[1]
        for image in release(kube, name)["images"].values()
        if image.rsplit(":", 1)[0].endswith(f"threetier/{name}")
    }


# ------------------------------------------------------------------------------------------ inventories


def test_every_inventory_source_imports_in_the_ee(awx: Awx) -> None:
    """AWX's inventory sync of each environment (ansible-inventory --export in the EE) yields its hosts and vars."""
    for inventory in awx.api.objects["inventories"].values():
        env = inventory["name"].split()[-1]
        script = awx.update_inventory(inventory, awx.work / "jobs")
        assert script["threetier"]["hosts"] == ["localhost"], script
        assert script["all"]["vars"]["threetier_environment"] == env
        assert script["_meta"]["hostvars"]["localhost"]["ansible_connection"] == "local"


# ------------------------------------------------------------------------------------------ site


def test_site_converges_in_the_ee(awx: Awx, kube: Kubectl, built: ee.BuiltImage) -> None:
    result = succeeded(awx.launch("threetier local site", extra_vars={"threetier_image_tag": "1.0.0"}))
    log(
        f"\nsite in the EE ({built.image.reference}, {built.archive_bytes / 2**20:.0f} MiB): "
        f"job {result.seconds:.0f} s, ansible-playbook {playbook_seconds(result):.0f} s, {result.host_stats()}"
    )
    assert result.host_stats()["changed"] > 0
    # The kubeconfig came from the credential type's file injector, as AWX writes it.
    assert re.fullmatch(r"/runner/env/tmp\w+", result.env["K8S_AUTH_KUBECONFIG"])
    assert result.env["KUBECONFIG"] == result.env["K8S_AUTH_KUBECONFIG"]
    assert result.extra_vars["threetier_confirm_environment"] == "local", "the survey default was applied"
    assert "--vault-id" in result.args and "threetier@prompt" in result.args
    for name in ("backend", "frontend"):
        assert helm_status(kube, name)["info"]["status"] == "deployed"
        assert app_image_tags(kube, name) == {"1.0.0"}
    (check,) = result.task_results("Check that the Kubernetes client uses the kubeconfig's cluster")
    assert check.get("res", {}).get("failed") is not True
    no_in_cluster_requests(awx)


def changed_tasks(result: JobResult) -> list[str]:
    return [
        e["event_data"]["task"]
        for e in result.events
        if e.get("event") in ("runner_on_ok", "runner_item_on_ok") and e["event_data"].get("res", {}).get("changed")
    ]


# Every AWX job starts in a fresh pod, so helm's repository list (client-side state under $HOME) is always empty
# and registering a chart repository reports a change on every run. Nothing in the cluster changes.
POD_LOCAL_CHANGES = re.compile(r"Register the .+ chart repository")


def test_site_again_changes_nothing_in_the_cluster(awx: Awx) -> None:
    result = succeeded(awx.launch("threetier local site", extra_vars={"threetier_image_tag": "1.0.0"}))
    log(f"\nsite re-run in the EE: job {result.seconds:.0f} s, ansible-playbook {playbook_seconds(result):.0f} s")
    changed = changed_tasks(result)
    assert all(POD_LOCAL_CHANGES.search(task) for task in changed), changed
    no_in_cluster_requests(awx)


def test_site_upgrades_to_the_survey_tag(awx: Awx, kube: Kubectl) -> None:
    before = helm_status(kube, "backend")["version"]
    succeeded(awx.launch("threetier local site", extra_vars={"threetier_image_tag": "1.0.1"}))
    assert helm_status(kube, "backend")["version"] == before + 1
    for name in ("backend", "frontend"):
        assert app_image_tags(kube, name) == {"1.0.1"}


# ------------------------------------------------------------------------------------------ rollback


def test_rollback_rolls_the_backend_back(awx: Awx, kube: Kubectl) -> None:
    """The survey defaults (release backend, revision 0 = the previous one) undo the upgrade of the backend only."""
    before = helm_status(kube, "backend")["version"]
    result = succeeded(awx.launch("threetier local rollback"))
    assert (result.extra_vars["rollback_release"], result.extra_vars["rollback_revision"]) == ("backend", 0)
    after = helm_status(kube, "backend")
    assert after["version"] == before + 1 and after["info"]["status"] == "deployed"
    assert "Rollback to" in after["info"]["description"]
    assert app_image_tags(kube, "backend") == {"1.0.0"}
    assert app_image_tags(kube, "frontend") == {"1.0.1"}
    no_in_cluster_requests(awx)


# ------------------------------------------------------------------------------------------ migrate


def test_migrate_runs_the_migrations_of_the_survey_tag(awx: Awx, kube: Kubectl) -> None:
    result = succeeded(awx.launch("threetier local migrate", extra_vars={"threetier_image_tag": "1.0.1"}))
    jobs = kube.json("get", "jobs", "-n", APP_NS, "-l", "app.kubernetes.io/component=migrate-on-demand")["items"]
    assert len(jobs) == 1, [j["metadata"]["name"] for j in jobs]
    (job,) = jobs
    conditions = {c["type"]: c["status"] for c in job["status"].get("conditions", [])}
    assert conditions.get("Complete") == "True", job["status"]
    images = [c["image"] for c in job["spec"]["template"]["spec"]["containers"]]
    assert any(image.endswith(":1.0.1") for image in images), images
    assert result.task_results("Wait for the migration Job to finish")
    no_in_cluster_requests(awx)


# ------------------------------------------------------------------------------------------ launch-time tags


def test_site_with_launch_tags_runs_only_those_roles_and_the_guard(awx: Awx) -> None:
    result = succeeded(
        awx.launch("threetier local site", extra_vars={"threetier_image_tag": "1.0.1"}, job_tags="frontend")
    )
    tasks = {e["event_data"].get("task") for e in result.events if e.get("event") == "playbook_on_task_start"}
    assert "Refuse to run when the confirmation differs from the inventory's environment" in tasks
    assert not any(task and "backend" in task.lower() and "Deploy" in task for task in tasks), sorted(
        filter(None, tasks)
    )
    with pytest.raises(LaunchRefused, match="does not prompt for limit"):
        awx.launch("threetier local site", extra_vars={"threetier_image_tag": "1.0.1"}, limit="localhost")


# ------------------------------------------------------------------------------------------ teardown


def test_teardown_needs_the_typed_confirmation(awx: Awx, kube: Kubectl) -> None:
    with pytest.raises(LaunchRefused, match="threetier_confirm_environment"):
        awx.launch("threetier local teardown")
    result = awx.launch("threetier local teardown", extra_vars={"threetier_confirm_environment": "dev"})
    assert result.status == "failed" and "Type local to run it" in result.stdout
    assert helm_status(kube, "backend") is not None, "a refused teardown must leave the releases"


def test_teardown_keeps_the_data_by_default(awx: Awx, kube: Kubectl) -> None:
    result = succeeded(awx.launch("threetier local teardown", extra_vars={"threetier_confirm_environment": "local"}))
    assert result.extra_vars["teardown_delete_data"] == "false", "the survey default"
    for name in ("backend", "frontend"):
        assert helm_status(kube, name) is None, f"{name} is still installed"
    namespaces = {ns["metadata"]["name"] for ns in kube.json("get", "namespaces")["items"]}
    assert {APP_NS, DB_NS} <= namespaces
    assert kube.json("get", "postgresql", "-n", DB_NS)["items"], "the database was deleted"
    assert kube("get", "secret", "backend-app-key", "-n", APP_NS, check=False).returncode == 0, "APP_KEY was deleted"
    no_in_cluster_requests(awx)


def test_teardown_deletes_the_data_when_the_survey_says_so(awx: Awx, kube: Kubectl) -> None:
    succeeded(
        awx.launch(
            "threetier local teardown",
            extra_vars={"threetier_confirm_environment": "local", "teardown_delete_data": "true"},
        )
    )
    namespaces = {ns["metadata"]["name"] for ns in kube.json("get", "namespaces")["items"]}
    assert not {APP_NS, DB_NS} & namespaces, namespaces
    no_in_cluster_requests(awx)


# ------------------------------------------------------------------------------------------ kubernetes.core#1098


def test_the_decoy_sees_a_client_that_falls_back_to_the_pod(awx: Awx) -> None:
    """Control: the in-cluster trap is real in this EE, and the decoy notices it."""
    site = awx.api.one("job_templates", name="threetier local site")
    inventory = {"all": {"hosts": ["localhost"]}, "_meta": {"hostvars": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}}}}  # fmt: skip
    playbook = yaml.safe_dump(
        [{"name": "A client without a kubeconfig", "hosts": "localhost", "gather_facts": False,
          "tasks": [{"name": "List namespaces", "kubernetes.core.k8s_info": {"kind": "Namespace"},
                     "ignore_errors": True}]}]
    )  # fmt: skip
    before = len(awx.in_cluster.requests)
    awx.run_playbook("in-cluster control", playbook, ee_id=site["execution_environment"], inventory=inventory)
    seen = awx.in_cluster.requests[before:]
    assert seen, "kubernetes.core did not try the pod's service account: the decoy would prove nothing"
    assert all(r["authorization"].lower() == "bearer decoy-service-account-token-of-the-awx-pod" for r in seen), seen
    del awx.in_cluster.requests[before:]


def test_a_pod_without_a_kubeconfig_is_refused(awx: Awx) -> None:
    """site.yml in the EE with no kubeconfig and no context: preflight stops before any client runs."""
    inventory = awx.api.one("inventories", name="threetier local")
    script = awx.update_inventory(inventory, awx.work / "jobs")
    site = awx.api.one("job_templates", name="threetier local site")
    playbook = yaml.safe_dump([{"name": "Deploy", "ansible.builtin.import_playbook": "threetier.k8s.site"}])
    result = awx.run_playbook(
        "site without a kubeconfig", playbook, ee_id=site["execution_environment"], inventory=script,
        extra_vars={"threetier_kubeconfig": "", "threetier_kube_context": ""},
        env=dict(awx.api.settings["jobs"]["AWX_TASK_ENV"]),
    )  # fmt: skip
    assert result.status == "failed"
    assert "kubernetes.core#1098" in result.stdout and "Refuse to fall back" in result.stdout, result.stdout[-3000:]
    assert result.host_stats()["changed"] == 0
    no_in_cluster_requests(awx)
